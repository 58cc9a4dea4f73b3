ALTER TABLE mcp_servers DROP COLUMN max_calls_per_minute;
