-- The kill switch: a tenant or one API key frozen with a reason. One row per entity,
-- changed in place; the history is in the tenant's audit chain (KILLSWITCH_* events).
CREATE TABLE killswitch_state (
    entity_type  text        NOT NULL CHECK (entity_type IN ('tenant', 'key')),
    entity_id    uuid        NOT NULL,
    tenant_id    uuid        NOT NULL REFERENCES tenants (id),
    frozen       boolean     NOT NULL,
    reason       text,
    changed_by   text        NOT NULL,
    changed_at   timestamptz NOT NULL,
    PRIMARY KEY (entity_type, entity_id)
);
-- Every replica reads the frozen set a few times a second.
CREATE INDEX killswitch_frozen_idx ON killswitch_state (frozen) WHERE frozen;
CREATE INDEX killswitch_tenant_idx ON killswitch_state (tenant_id);
