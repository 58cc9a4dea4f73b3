-- The OpenAI-compatible proxy: per-tenant settings (guardrails, model allowlist, budgets),
-- spend counters for the budgets, and the call log. See the PostgreSQL migration.
CREATE TABLE proxy_settings (
    tenant_id   TEXT PRIMARY KEY REFERENCES tenants (id),
    settings    TEXT NOT NULL,
    updated_by  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
) STRICT;

CREATE TABLE proxy_spend (
    tenant_id        TEXT    NOT NULL REFERENCES tenants (id),
    scope            TEXT    NOT NULL,
    period           TEXT    NOT NULL,
    spent_micros     INTEGER NOT NULL DEFAULT 0,
    reserved_micros  INTEGER NOT NULL DEFAULT 0,
    updated_at       TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, scope, period)
) STRICT;

CREATE TABLE proxy_calls (
    id                   TEXT    PRIMARY KEY,
    tenant_id            TEXT    NOT NULL REFERENCES tenants (id),
    key_id               TEXT,
    actor                TEXT    NOT NULL,
    endpoint             TEXT    NOT NULL,
    model                TEXT    NOT NULL,
    provider             TEXT,
    stream               INTEGER NOT NULL,
    status               TEXT    NOT NULL,
    http_status          INTEGER NOT NULL,
    error_code           TEXT,
    latency_ms           INTEGER NOT NULL,
    input_tokens         INTEGER NOT NULL,
    cached_input_tokens  INTEGER NOT NULL,
    output_tokens        INTEGER NOT NULL,
    token_source         TEXT    NOT NULL,
    cost_micros          INTEGER NOT NULL,
    killswitch           TEXT    NOT NULL,
    guardrails           TEXT    NOT NULL,
    request_hash         TEXT    NOT NULL,
    request_body         TEXT,
    response_body        TEXT,
    replay_eligible      INTEGER NOT NULL,
    replayed_from_id     TEXT,
    created_at           TEXT    NOT NULL
) STRICT;
CREATE INDEX proxy_calls_tenant_idx ON proxy_calls (tenant_id, created_at DESC, id DESC);
CREATE INDEX proxy_calls_created_idx ON proxy_calls (created_at);
