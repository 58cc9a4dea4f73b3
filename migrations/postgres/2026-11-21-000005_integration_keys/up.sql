-- Keys a customer's integration sends as X-CUS-Integration-Key. Hash and display prefix
-- only. Rotation gives the previous key an expiry (the grace period); revocation is
-- immediate.
CREATE TABLE cus_integration_keys (
    id             uuid        PRIMARY KEY,
    tenant_id      uuid        NOT NULL REFERENCES tenants (id),
    integration_id uuid        NOT NULL REFERENCES cus_integrations (id),
    prefix         text        NOT NULL,
    key_hash       text        NOT NULL,
    can_read       boolean     NOT NULL,
    created_by     text        NOT NULL,
    created_at     timestamptz NOT NULL,
    expires_at     timestamptz,
    revoked_at     timestamptz
);
CREATE UNIQUE INDEX cus_integration_keys_hash_key ON cus_integration_keys (key_hash);
CREATE INDEX cus_integration_keys_integration_idx ON cus_integration_keys (tenant_id, integration_id, created_at);
