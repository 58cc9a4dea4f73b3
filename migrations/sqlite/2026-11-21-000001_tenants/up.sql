CREATE TABLE tenants (
    id               TEXT NOT NULL PRIMARY KEY,
    name             TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    status           TEXT NOT NULL,
    onboarding_state TEXT NOT NULL,
    settings         TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(settings)),
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX tenants_name_key ON tenants (lower(name));
CREATE INDEX tenants_created_at_idx ON tenants (created_at, id);
