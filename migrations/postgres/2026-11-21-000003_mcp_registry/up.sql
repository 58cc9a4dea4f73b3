-- The MCP registry (PIN-516 phases 1-3). Servers are soft-deleted; tools are upserted by
-- name and marked unavailable, never deleted; invocations are append-only.
CREATE TABLE mcp_servers (
    id                    uuid        PRIMARY KEY,
    tenant_id             uuid        NOT NULL REFERENCES tenants (id),
    name                  text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    url                   text        NOT NULL,
    description           text,
    transport             text        NOT NULL,
    status                text        NOT NULL,
    status_reason         text,
    protocol_version      text,
    capabilities          jsonb,
    capabilities_hash     text,
    credential_ref        text,
    metadata              jsonb       NOT NULL,
    created_by            text        NOT NULL,
    created_at            timestamptz NOT NULL,
    updated_at            timestamptz NOT NULL,
    discovered_at         timestamptz,
    last_health_check_at  timestamptz,
    last_latency_ms       bigint,
    consecutive_failures  integer     NOT NULL DEFAULT 0,
    deleted_at            timestamptz,
    tool_count            integer     NOT NULL DEFAULT 0
);
-- One live registration per URL and tenant; a deleted one frees the URL.
CREATE UNIQUE INDEX mcp_servers_tenant_url_key ON mcp_servers (tenant_id, url) WHERE deleted_at IS NULL;
CREATE INDEX mcp_servers_tenant_idx ON mcp_servers (tenant_id, created_at, id);
CREATE INDEX mcp_servers_status_idx ON mcp_servers (status) WHERE deleted_at IS NULL;

CREATE TABLE mcp_tools (
    id                 uuid        PRIMARY KEY,
    tenant_id          uuid        NOT NULL REFERENCES tenants (id),
    server_id          uuid        NOT NULL REFERENCES mcp_servers (id),
    name               text        NOT NULL,
    title              text,
    description        text,
    input_schema       jsonb       NOT NULL,
    output_schema      jsonb,
    annotations        jsonb,
    risk_level         text        NOT NULL,
    risk_source        text        NOT NULL,
    risk_reasons       jsonb       NOT NULL,
    flags              jsonb       NOT NULL,
    enabled            boolean     NOT NULL,
    requires_approval  boolean     NOT NULL,
    available          boolean     NOT NULL,
    tool_hash          text        NOT NULL,
    discovered_at      timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL
);
CREATE UNIQUE INDEX mcp_tools_server_name_key ON mcp_tools (server_id, name);
CREATE INDEX mcp_tools_tenant_idx ON mcp_tools (tenant_id, server_id);

CREATE TABLE mcp_tool_invocations (
    id                  uuid        PRIMARY KEY,
    tenant_id           uuid        NOT NULL REFERENCES tenants (id),
    server_id           uuid        NOT NULL REFERENCES mcp_servers (id),
    tool_id             uuid        NOT NULL REFERENCES mcp_tools (id),
    run_id              text,
    step_index          integer,
    actor_id            text,
    actor_type          text        NOT NULL,
    trace_id            text,
    status              text        NOT NULL,
    error_code          text,
    error_message       text,
    policy_decision     text,
    policy_decision_id  text,
    input_hash          text        NOT NULL,
    output_hash         text,
    invoked_at          timestamptz NOT NULL,
    completed_at        timestamptz,
    duration_ms         bigint
);
CREATE INDEX mcp_tool_invocations_server_idx ON mcp_tool_invocations (tenant_id, server_id, invoked_at DESC);
