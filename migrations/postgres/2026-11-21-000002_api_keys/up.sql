-- Machine credentials. Only a SHA-256 hash of the key and a short display prefix are
-- stored; the key itself is shown once, at creation.
CREATE TABLE api_keys (
    id          uuid        PRIMARY KEY,
    tenant_id   uuid        NOT NULL REFERENCES tenants (id),
    name        text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    prefix      text        NOT NULL,
    key_hash    text        NOT NULL,
    scopes      jsonb       NOT NULL,
    created_by  text        NOT NULL,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz,
    revoked_at  timestamptz
);
CREATE UNIQUE INDEX api_keys_key_hash_key ON api_keys (key_hash);
CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id, created_at, id);

-- One counter, bumped in the same transaction as any change that must revoke cached
-- credentials (key revoked, tenant status changed). Every replica polls it and drops its
-- credential cache when it moves.
CREATE TABLE auth_epoch (
    id    integer PRIMARY KEY CHECK (id = 1),
    epoch bigint  NOT NULL
);
INSERT INTO auth_epoch (id, epoch) VALUES (1, 0);
