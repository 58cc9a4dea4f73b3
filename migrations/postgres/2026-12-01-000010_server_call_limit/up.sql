-- A cap on governed calls per minute to one server (protects a customer's server from an
-- agent flood); NULL: none.
ALTER TABLE mcp_servers ADD COLUMN max_calls_per_minute integer CHECK (max_calls_per_minute BETWEEN 1 AND 100000);
