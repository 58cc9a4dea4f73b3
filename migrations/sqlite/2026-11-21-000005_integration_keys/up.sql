-- See migrations/postgres/2026-11-21-000005_integration_keys/up.sql.
-- Keys a customer's integration sends as X-CUS-Integration-Key. Hash and display prefix
-- only. Rotation gives the previous key an expiry (the grace period); revocation is
-- immediate.
CREATE TABLE cus_integration_keys (
    id             TEXT        NOT NULL PRIMARY KEY,
    tenant_id      TEXT        NOT NULL REFERENCES tenants (id),
    integration_id TEXT        NOT NULL REFERENCES cus_integrations (id),
    prefix         TEXT        NOT NULL,
    key_hash       TEXT        NOT NULL,
    can_read       INTEGER     NOT NULL,
    created_by     TEXT        NOT NULL,
    created_at     TEXT NOT NULL,
    expires_at     TEXT,
    revoked_at     TEXT
) STRICT;
CREATE UNIQUE INDEX cus_integration_keys_hash_key ON cus_integration_keys (key_hash);
CREATE INDEX cus_integration_keys_integration_idx ON cus_integration_keys (tenant_id, integration_id, created_at);
