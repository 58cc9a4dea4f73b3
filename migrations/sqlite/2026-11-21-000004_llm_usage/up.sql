-- See migrations/postgres/2026-11-21-000004_llm_usage/up.sql.
-- Customer LLM telemetry. Raw records are idempotent per integration and call_id; the
-- daily rollup is maintained at ingestion so dashboards never scan raw records.
CREATE TABLE cus_integrations (
    id          TEXT        NOT NULL PRIMARY KEY,
    tenant_id   TEXT        NOT NULL REFERENCES tenants (id),
    name        TEXT        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    provider    TEXT        NOT NULL,
    status      TEXT        NOT NULL,
    created_by  TEXT        NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX cus_integrations_tenant_name_key ON cus_integrations (tenant_id, lower(name));

CREATE TABLE llm_usage_records (
    id             TEXT        NOT NULL PRIMARY KEY,
    tenant_id      TEXT        NOT NULL REFERENCES tenants (id),
    integration_id TEXT        NOT NULL REFERENCES cus_integrations (id),
    call_id        TEXT        NOT NULL,
    provider       TEXT        NOT NULL,
    model          TEXT        NOT NULL,
    input_tokens   INTEGER      NOT NULL,
    output_tokens  INTEGER      NOT NULL,
    cached_tokens  INTEGER      NOT NULL,
    cost_micros    INTEGER      NOT NULL,
    cost_source    TEXT        NOT NULL,
    latency_ms     INTEGER,
    status         TEXT        NOT NULL,
    error_code     TEXT,
    session_id     TEXT,
    run_id         TEXT,
    trace_id       TEXT,
    occurred_at    TEXT NOT NULL,
    received_at    TEXT NOT NULL,
    metadata       TEXT       NOT NULL
) STRICT;
CREATE UNIQUE INDEX llm_usage_records_call_key ON llm_usage_records (integration_id, call_id);
CREATE INDEX llm_usage_records_history_idx ON llm_usage_records (tenant_id, occurred_at DESC, id DESC);

-- One row per tenant, integration, UTC day, provider and model. Latency is kept as a
-- fixed histogram (bucket upper bounds in aos_engines::telemetry) so p95 is exact with
-- respect to those buckets, whether computed here or from raw records.
CREATE TABLE llm_usage_daily (
    tenant_id      TEXT   NOT NULL REFERENCES tenants (id),
    integration_id TEXT   NOT NULL REFERENCES cus_integrations (id),
    day            TEXT   NOT NULL,
    provider       TEXT   NOT NULL,
    model          TEXT   NOT NULL,
    calls          INTEGER NOT NULL,
    errors         INTEGER NOT NULL,
    input_tokens   INTEGER NOT NULL,
    output_tokens  INTEGER NOT NULL,
    cached_tokens  INTEGER NOT NULL,
    cost_micros    INTEGER NOT NULL,
    latency_count  INTEGER NOT NULL,
    latency_sum_ms INTEGER NOT NULL,
    lat_b00 INTEGER NOT NULL, lat_b01 INTEGER NOT NULL, lat_b02 INTEGER NOT NULL, lat_b03 INTEGER NOT NULL,
    lat_b04 INTEGER NOT NULL, lat_b05 INTEGER NOT NULL, lat_b06 INTEGER NOT NULL, lat_b07 INTEGER NOT NULL,
    lat_b08 INTEGER NOT NULL, lat_b09 INTEGER NOT NULL, lat_b10 INTEGER NOT NULL, lat_b11 INTEGER NOT NULL,
    lat_b12 INTEGER NOT NULL, lat_b13 INTEGER NOT NULL, lat_b14 INTEGER NOT NULL, lat_b15 INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, integration_id, day, provider, model)
) STRICT;
CREATE INDEX llm_usage_daily_day_idx ON llm_usage_daily (tenant_id, day);
