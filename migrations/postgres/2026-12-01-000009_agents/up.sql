-- Agents: tenant-scoped identities with capabilities (selectors over the governed
-- catalog). Soft-deleted (status DELETED, kept for audit); a live name is unique per tenant.
CREATE TABLE agents (
    id               uuid        PRIMARY KEY,
    tenant_id        uuid        NOT NULL REFERENCES tenants (id),
    name             text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description      text,
    owner            text,
    status           text        NOT NULL CHECK (status IN ('ACTIVE', 'DISABLED', 'DELETED')),
    capabilities     jsonb       NOT NULL,
    manifest_pinned  boolean     NOT NULL DEFAULT false,
    created_by       text        NOT NULL,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL
);
CREATE UNIQUE INDEX agents_live_name_key ON agents (tenant_id, lower(name)) WHERE status <> 'DELETED';
CREATE INDEX agents_tenant_idx ON agents (tenant_id, created_at, id);

-- Signed manifests of an agent's resolved capabilities; versions count up per agent.
CREATE TABLE agent_manifests (
    id         uuid        PRIMARY KEY,
    tenant_id  uuid        NOT NULL REFERENCES tenants (id),
    agent_id   uuid        NOT NULL REFERENCES agents (id),
    version    bigint      NOT NULL CHECK (version >= 1),
    jws        text        NOT NULL,
    payload    jsonb       NOT NULL,
    issued_by  text        NOT NULL,
    issued_at  timestamptz NOT NULL,
    UNIQUE (agent_id, version)
);
CREATE INDEX agent_manifests_tenant_idx ON agent_manifests (tenant_id, agent_id, version DESC);

-- An API key may be bound to one agent: its calls are the agent's.
ALTER TABLE api_keys ADD COLUMN agent_id uuid REFERENCES agents (id);
CREATE INDEX api_keys_agent_idx ON api_keys (agent_id) WHERE agent_id IS NOT NULL;

-- Agents can be frozen too.
ALTER TABLE killswitch_state DROP CONSTRAINT killswitch_state_entity_type_check;
ALTER TABLE killswitch_state ADD CONSTRAINT killswitch_state_entity_type_check
    CHECK (entity_type IN ('tenant', 'key', 'agent'));
