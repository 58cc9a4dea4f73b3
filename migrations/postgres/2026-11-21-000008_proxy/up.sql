-- The OpenAI-compatible proxy: per-tenant settings (guardrails, model allowlist, budgets),
-- spend counters for the budgets, and the call log.
CREATE TABLE proxy_settings (
    tenant_id   uuid        PRIMARY KEY REFERENCES tenants (id),
    settings    jsonb       NOT NULL,
    updated_by  text        NOT NULL,
    updated_at  timestamptz NOT NULL
);

-- One counter per tenant (scope 'tenant') or key (scope 'key:<id>') and period
-- ('day:YYYY-MM-DD' or 'month:YYYY-MM', UTC). A request reserves its worst-case cost
-- before going upstream (conditional UPDATE: spent + reserved + cost <= limit) and the
-- background writer settles it (reserved -= reservation, spent += real cost).
CREATE TABLE proxy_spend (
    tenant_id        uuid        NOT NULL REFERENCES tenants (id),
    scope            text        NOT NULL,
    period           text        NOT NULL,
    spent_micros     bigint      NOT NULL DEFAULT 0,
    reserved_micros  bigint      NOT NULL DEFAULT 0,
    updated_at       timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, scope, period)
);

CREATE TABLE proxy_calls (
    id                   uuid        PRIMARY KEY,
    tenant_id            uuid        NOT NULL REFERENCES tenants (id),
    key_id               uuid,
    actor                text        NOT NULL,
    endpoint             text        NOT NULL,
    model                text        NOT NULL,
    provider             text,
    stream               boolean     NOT NULL,
    status               text        NOT NULL,
    http_status          integer     NOT NULL,
    error_code           text,
    latency_ms           bigint      NOT NULL,
    input_tokens         bigint      NOT NULL,
    cached_input_tokens  bigint      NOT NULL,
    output_tokens        bigint      NOT NULL,
    token_source         text        NOT NULL,
    cost_micros          bigint      NOT NULL,
    killswitch           text        NOT NULL,
    guardrails           jsonb       NOT NULL,
    request_hash         text        NOT NULL,
    request_body         jsonb,
    response_body        jsonb,
    replay_eligible      boolean     NOT NULL,
    replayed_from_id     uuid,
    created_at           timestamptz NOT NULL
);
CREATE INDEX proxy_calls_tenant_idx ON proxy_calls (tenant_id, created_at DESC, id DESC);
CREATE INDEX proxy_calls_created_idx ON proxy_calls (created_at);
