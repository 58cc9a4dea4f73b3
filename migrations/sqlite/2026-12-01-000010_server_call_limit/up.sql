-- See the PostgreSQL migration.
ALTER TABLE mcp_servers ADD COLUMN max_calls_per_minute INTEGER CHECK (max_calls_per_minute BETWEEN 1 AND 100000);
