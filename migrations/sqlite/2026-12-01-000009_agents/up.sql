-- Agents and their signed manifests; API keys bound to an agent; agents in the kill
-- switch. See the PostgreSQL migration.
CREATE TABLE agents (
    id               TEXT    PRIMARY KEY,
    tenant_id        TEXT    NOT NULL REFERENCES tenants (id),
    name             TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description      TEXT,
    owner            TEXT,
    status           TEXT    NOT NULL CHECK (status IN ('ACTIVE', 'DISABLED', 'DELETED')),
    capabilities     TEXT    NOT NULL,
    manifest_pinned  INTEGER NOT NULL DEFAULT 0,
    created_by       TEXT    NOT NULL,
    created_at       TEXT    NOT NULL,
    updated_at       TEXT    NOT NULL
) STRICT;
CREATE UNIQUE INDEX agents_live_name_key ON agents (tenant_id, lower(name)) WHERE status <> 'DELETED';
CREATE INDEX agents_tenant_idx ON agents (tenant_id, created_at, id);

CREATE TABLE agent_manifests (
    id         TEXT    PRIMARY KEY,
    tenant_id  TEXT    NOT NULL REFERENCES tenants (id),
    agent_id   TEXT    NOT NULL REFERENCES agents (id),
    version    INTEGER NOT NULL CHECK (version >= 1),
    jws        TEXT    NOT NULL,
    payload    TEXT    NOT NULL,
    issued_by  TEXT    NOT NULL,
    issued_at  TEXT    NOT NULL,
    UNIQUE (agent_id, version)
) STRICT;
CREATE INDEX agent_manifests_tenant_idx ON agent_manifests (tenant_id, agent_id, version DESC);

ALTER TABLE api_keys ADD COLUMN agent_id TEXT REFERENCES agents (id);
CREATE INDEX api_keys_agent_idx ON api_keys (agent_id) WHERE agent_id IS NOT NULL;

-- SQLite cannot change a CHECK in place: rebuild the table.
CREATE TABLE killswitch_state_new (
    entity_type  TEXT    NOT NULL CHECK (entity_type IN ('tenant', 'key', 'agent')),
    entity_id    TEXT    NOT NULL,
    tenant_id    TEXT    NOT NULL REFERENCES tenants (id),
    frozen       INTEGER NOT NULL,
    reason       TEXT,
    changed_by   TEXT    NOT NULL,
    changed_at   TEXT    NOT NULL,
    PRIMARY KEY (entity_type, entity_id)
) STRICT;
INSERT INTO killswitch_state_new SELECT * FROM killswitch_state;
DROP TABLE killswitch_state;
ALTER TABLE killswitch_state_new RENAME TO killswitch_state;
CREATE INDEX killswitch_frozen_idx ON killswitch_state (frozen) WHERE frozen;
CREATE INDEX killswitch_tenant_idx ON killswitch_state (tenant_id);
