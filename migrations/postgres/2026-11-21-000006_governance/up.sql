-- Governed tool invocation: pinning, per-server call limits, signed manifests, the
-- invocation lifecycle, the per-tenant audit chain, approvals, incidents and policies.

-- Pinning: enabling a tool approves its current hash; a different hash at rediscovery
-- quarantines it until an admin approves the new definition.
ALTER TABLE mcp_tools ADD COLUMN approved_hash text;
ALTER TABLE mcp_tools ADD COLUMN quarantined boolean NOT NULL DEFAULT false;
ALTER TABLE mcp_tools ADD COLUMN quarantine_reason text;
UPDATE mcp_tools SET approved_hash = tool_hash WHERE enabled;

ALTER TABLE mcp_servers ADD COLUMN call_timeout_ms bigint;
ALTER TABLE mcp_servers ADD COLUMN max_output_bytes bigint;
ALTER TABLE mcp_servers ADD COLUMN manifest text;
ALTER TABLE mcp_servers ADD COLUMN manifest_issued_at timestamptz;

ALTER TABLE mcp_tool_invocations ADD COLUMN policy_id text;
ALTER TABLE mcp_tool_invocations ADD COLUMN policy_revision text;
ALTER TABLE mcp_tool_invocations ADD COLUMN policy_reasons jsonb;
ALTER TABLE mcp_tool_invocations ADD COLUMN incident_id uuid;
ALTER TABLE mcp_tool_invocations ADD COLUMN approval_id uuid;
ALTER TABLE mcp_tool_invocations ADD COLUMN output_bytes bigint;
CREATE INDEX mcp_tool_invocations_tenant_idx ON mcp_tool_invocations (tenant_id, invoked_at, id);

-- The audit chain: per tenant, seq 1.., each event hashing the one before it.
CREATE TABLE audit_events (
    id               uuid        PRIMARY KEY,
    tenant_id        uuid        NOT NULL REFERENCES tenants (id),
    seq              bigint      NOT NULL CHECK (seq > 0),
    occurred_at      timestamptz NOT NULL,
    actor_type       text        NOT NULL,
    actor_id         text,
    event_type       text        NOT NULL,
    subject_type     text        NOT NULL,
    subject_id       text,
    decision         text,
    policy_revision  text,
    details          jsonb       NOT NULL,
    prev_hash        text        NOT NULL,
    event_hash       text        NOT NULL
);
CREATE UNIQUE INDEX audit_events_tenant_seq_key ON audit_events (tenant_id, seq);
CREATE INDEX audit_events_type_idx ON audit_events (tenant_id, event_type, seq);

-- The head of each tenant's chain; its row lock serialises appends.
CREATE TABLE audit_heads (
    tenant_id  uuid   PRIMARY KEY REFERENCES tenants (id),
    seq        bigint NOT NULL,
    head_hash  text   NOT NULL
);

CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP;
END
$$;
CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

CREATE TABLE approvals (
    id               uuid        PRIMARY KEY,
    tenant_id        uuid        NOT NULL REFERENCES tenants (id),
    subject_type     text        NOT NULL,
    subject_id       text        NOT NULL,
    status           text        NOT NULL,
    reason           text,
    context          jsonb       NOT NULL,
    requested_by     text        NOT NULL,
    created_at       timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL,
    decided_at       timestamptz,
    decided_by       text,
    decision_reason  text
);
CREATE INDEX approvals_tenant_idx ON approvals (tenant_id, created_at, id);
CREATE INDEX approvals_pending_idx ON approvals (expires_at) WHERE status = 'PENDING';

CREATE TABLE incidents (
    id             uuid        PRIMARY KEY,
    tenant_id      uuid        NOT NULL REFERENCES tenants (id),
    kind           text        NOT NULL,
    severity       text        NOT NULL,
    status         text        NOT NULL,
    title          text        NOT NULL,
    details        jsonb       NOT NULL,
    server_id      uuid,
    tool_id        uuid,
    invocation_id  uuid,
    created_at     timestamptz NOT NULL,
    resolved_at    timestamptz,
    resolved_by    text,
    resolution     text
);
CREATE INDEX incidents_tenant_idx ON incidents (tenant_id, created_at, id);

-- Rego modules: `owner` is 'platform' or a tenant id; one active module per owner.
CREATE TABLE policy_modules (
    id          uuid        PRIMARY KEY,
    owner       text        NOT NULL,
    source      text        NOT NULL,
    revision    text        NOT NULL,
    created_by  text        NOT NULL,
    created_at  timestamptz NOT NULL,
    retired_at  timestamptz
);
CREATE UNIQUE INDEX policy_modules_active_key ON policy_modules (owner) WHERE retired_at IS NULL;
