-- The kill switch: a tenant or one API key frozen with a reason. One row per entity,
-- changed in place; the history is in the tenant's audit chain (KILLSWITCH_* events).
CREATE TABLE killswitch_state (
    entity_type  TEXT    NOT NULL CHECK (entity_type IN ('tenant', 'key')),
    entity_id    TEXT    NOT NULL,
    tenant_id    TEXT    NOT NULL REFERENCES tenants (id),
    frozen       INTEGER NOT NULL,
    reason       TEXT,
    changed_by   TEXT    NOT NULL,
    changed_at   TEXT    NOT NULL,
    PRIMARY KEY (entity_type, entity_id)
) STRICT;
CREATE INDEX killswitch_frozen_idx ON killswitch_state (frozen) WHERE frozen;
CREATE INDEX killswitch_tenant_idx ON killswitch_state (tenant_id);
