CREATE TABLE killswitch_state_old (
    entity_type  TEXT    NOT NULL CHECK (entity_type IN ('tenant', 'key')),
    entity_id    TEXT    NOT NULL,
    tenant_id    TEXT    NOT NULL REFERENCES tenants (id),
    frozen       INTEGER NOT NULL,
    reason       TEXT,
    changed_by   TEXT    NOT NULL,
    changed_at   TEXT    NOT NULL,
    PRIMARY KEY (entity_type, entity_id)
) STRICT;
INSERT INTO killswitch_state_old SELECT * FROM killswitch_state WHERE entity_type <> 'agent';
DROP TABLE killswitch_state;
ALTER TABLE killswitch_state_old RENAME TO killswitch_state;
CREATE INDEX killswitch_frozen_idx ON killswitch_state (frozen) WHERE frozen;
CREATE INDEX killswitch_tenant_idx ON killswitch_state (tenant_id);
DROP INDEX api_keys_agent_idx;
ALTER TABLE api_keys DROP COLUMN agent_id;
DROP TABLE agent_manifests;
DROP TABLE agents;
