-- See migrations/postgres/2026-11-21-000003_mcp_registry/up.sql.
-- The MCP registry (PIN-516 phases 1-3). Servers are soft-deleted; tools are upserted by
-- name and marked unavailable, never deleted; invocations are append-only.
CREATE TABLE mcp_servers (
    id                    TEXT        NOT NULL PRIMARY KEY,
    tenant_id             TEXT        NOT NULL REFERENCES tenants (id),
    name                  TEXT        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    url                   TEXT        NOT NULL,
    description           TEXT,
    transport             TEXT        NOT NULL,
    status                TEXT        NOT NULL,
    status_reason         TEXT,
    protocol_version      TEXT,
    capabilities          TEXT,
    capabilities_hash     TEXT,
    credential_ref        TEXT,
    metadata              TEXT       NOT NULL,
    created_by            TEXT        NOT NULL,
    created_at            TEXT NOT NULL,
    updated_at            TEXT NOT NULL,
    discovered_at         TEXT,
    last_health_check_at  TEXT,
    last_latency_ms       INTEGER,
    consecutive_failures  INTEGER     NOT NULL DEFAULT 0,
    deleted_at            TEXT,
    tool_count            INTEGER     NOT NULL DEFAULT 0
) STRICT;
-- One live registration per URL and tenant; a deleted one frees the URL.
CREATE UNIQUE INDEX mcp_servers_tenant_url_key ON mcp_servers (tenant_id, url) WHERE deleted_at IS NULL;
CREATE INDEX mcp_servers_tenant_idx ON mcp_servers (tenant_id, created_at, id);
CREATE INDEX mcp_servers_status_idx ON mcp_servers (status) WHERE deleted_at IS NULL;

CREATE TABLE mcp_tools (
    id                 TEXT        NOT NULL PRIMARY KEY,
    tenant_id          TEXT        NOT NULL REFERENCES tenants (id),
    server_id          TEXT        NOT NULL REFERENCES mcp_servers (id),
    name               TEXT        NOT NULL,
    title              TEXT,
    description        TEXT,
    input_schema       TEXT       NOT NULL,
    output_schema      TEXT,
    annotations        TEXT,
    risk_level         TEXT        NOT NULL,
    risk_source        TEXT        NOT NULL,
    risk_reasons       TEXT       NOT NULL,
    flags              TEXT       NOT NULL,
    enabled            INTEGER     NOT NULL,
    requires_approval  INTEGER     NOT NULL,
    available          INTEGER     NOT NULL,
    tool_hash          TEXT        NOT NULL,
    discovered_at      TEXT NOT NULL,
    updated_at         TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX mcp_tools_server_name_key ON mcp_tools (server_id, name);
CREATE INDEX mcp_tools_tenant_idx ON mcp_tools (tenant_id, server_id);

CREATE TABLE mcp_tool_invocations (
    id                  TEXT        NOT NULL PRIMARY KEY,
    tenant_id           TEXT        NOT NULL REFERENCES tenants (id),
    server_id           TEXT        NOT NULL REFERENCES mcp_servers (id),
    tool_id             TEXT        NOT NULL REFERENCES mcp_tools (id),
    run_id              TEXT,
    step_index          INTEGER,
    actor_id            TEXT,
    actor_type          TEXT        NOT NULL,
    trace_id            TEXT,
    status              TEXT        NOT NULL,
    error_code          TEXT,
    error_message       TEXT,
    policy_decision     TEXT,
    policy_decision_id  TEXT,
    input_hash          TEXT        NOT NULL,
    output_hash         TEXT,
    invoked_at          TEXT NOT NULL,
    completed_at        TEXT,
    duration_ms         INTEGER
) STRICT;
CREATE INDEX mcp_tool_invocations_server_idx ON mcp_tool_invocations (tenant_id, server_id, invoked_at DESC);
