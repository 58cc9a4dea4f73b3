-- See migrations/postgres/2026-11-21-000006_governance/up.sql.
ALTER TABLE mcp_tools ADD COLUMN approved_hash TEXT;
ALTER TABLE mcp_tools ADD COLUMN quarantined INTEGER NOT NULL DEFAULT 0;
ALTER TABLE mcp_tools ADD COLUMN quarantine_reason TEXT;
UPDATE mcp_tools SET approved_hash = tool_hash WHERE enabled;

ALTER TABLE mcp_servers ADD COLUMN call_timeout_ms INTEGER;
ALTER TABLE mcp_servers ADD COLUMN max_output_bytes INTEGER;
ALTER TABLE mcp_servers ADD COLUMN manifest TEXT;
ALTER TABLE mcp_servers ADD COLUMN manifest_issued_at TEXT;

ALTER TABLE mcp_tool_invocations ADD COLUMN policy_id TEXT;
ALTER TABLE mcp_tool_invocations ADD COLUMN policy_revision TEXT;
ALTER TABLE mcp_tool_invocations ADD COLUMN policy_reasons TEXT;
ALTER TABLE mcp_tool_invocations ADD COLUMN incident_id TEXT;
ALTER TABLE mcp_tool_invocations ADD COLUMN approval_id TEXT;
ALTER TABLE mcp_tool_invocations ADD COLUMN output_bytes INTEGER;
CREATE INDEX mcp_tool_invocations_tenant_idx ON mcp_tool_invocations (tenant_id, invoked_at, id);

CREATE TABLE audit_events (
    id               TEXT    NOT NULL PRIMARY KEY,
    tenant_id        TEXT    NOT NULL REFERENCES tenants (id),
    seq              INTEGER NOT NULL CHECK (seq > 0),
    occurred_at      TEXT    NOT NULL,
    actor_type       TEXT    NOT NULL,
    actor_id         TEXT,
    event_type       TEXT    NOT NULL,
    subject_type     TEXT    NOT NULL,
    subject_id       TEXT,
    decision         TEXT,
    policy_revision  TEXT,
    details          TEXT    NOT NULL,
    prev_hash        TEXT    NOT NULL,
    event_hash       TEXT    NOT NULL
) STRICT;
CREATE UNIQUE INDEX audit_events_tenant_seq_key ON audit_events (tenant_id, seq);
CREATE INDEX audit_events_type_idx ON audit_events (tenant_id, event_type, seq);

CREATE TABLE audit_heads (
    tenant_id  TEXT    NOT NULL PRIMARY KEY REFERENCES tenants (id),
    seq        INTEGER NOT NULL,
    head_hash  TEXT    NOT NULL
) STRICT;

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only: UPDATE refused');
END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only: DELETE refused');
END;

CREATE TABLE approvals (
    id               TEXT NOT NULL PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants (id),
    subject_type     TEXT NOT NULL,
    subject_id       TEXT NOT NULL,
    status           TEXT NOT NULL,
    reason           TEXT,
    context          TEXT NOT NULL,
    requested_by     TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    expires_at       TEXT NOT NULL,
    decided_at       TEXT,
    decided_by       TEXT,
    decision_reason  TEXT
) STRICT;
CREATE INDEX approvals_tenant_idx ON approvals (tenant_id, created_at, id);
CREATE INDEX approvals_pending_idx ON approvals (expires_at) WHERE status = 'PENDING';

CREATE TABLE incidents (
    id             TEXT NOT NULL PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants (id),
    kind           TEXT NOT NULL,
    severity       TEXT NOT NULL,
    status         TEXT NOT NULL,
    title          TEXT NOT NULL,
    details        TEXT NOT NULL,
    server_id      TEXT,
    tool_id        TEXT,
    invocation_id  TEXT,
    created_at     TEXT NOT NULL,
    resolved_at    TEXT,
    resolved_by    TEXT,
    resolution     TEXT
) STRICT;
CREATE INDEX incidents_tenant_idx ON incidents (tenant_id, created_at, id);

CREATE TABLE policy_modules (
    id          TEXT NOT NULL PRIMARY KEY,
    owner       TEXT NOT NULL,
    source      TEXT NOT NULL,
    revision    TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    retired_at  TEXT
) STRICT;
CREATE UNIQUE INDEX policy_modules_active_key ON policy_modules (owner) WHERE retired_at IS NULL;
