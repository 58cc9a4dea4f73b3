-- Customer LLM telemetry. Raw records are idempotent per integration and call_id; the
-- daily rollup is maintained at ingestion so dashboards never scan raw records.
CREATE TABLE cus_integrations (
    id          uuid        PRIMARY KEY,
    tenant_id   uuid        NOT NULL REFERENCES tenants (id),
    name        text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    provider    text        NOT NULL,
    status      text        NOT NULL,
    created_by  text        NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);
CREATE UNIQUE INDEX cus_integrations_tenant_name_key ON cus_integrations (tenant_id, lower(name));

CREATE TABLE llm_usage_records (
    id             uuid        PRIMARY KEY,
    tenant_id      uuid        NOT NULL REFERENCES tenants (id),
    integration_id uuid        NOT NULL REFERENCES cus_integrations (id),
    call_id        text        NOT NULL,
    provider       text        NOT NULL,
    model          text        NOT NULL,
    input_tokens   bigint      NOT NULL,
    output_tokens  bigint      NOT NULL,
    cached_tokens  bigint      NOT NULL,
    cost_micros    bigint      NOT NULL,
    cost_source    text        NOT NULL,
    latency_ms     bigint,
    status         text        NOT NULL,
    error_code     text,
    session_id     text,
    run_id         text,
    trace_id       text,
    occurred_at    timestamptz NOT NULL,
    received_at    timestamptz NOT NULL,
    metadata       jsonb       NOT NULL
);
CREATE UNIQUE INDEX llm_usage_records_call_key ON llm_usage_records (integration_id, call_id);
CREATE INDEX llm_usage_records_history_idx ON llm_usage_records (tenant_id, occurred_at DESC, id DESC);

-- One row per tenant, integration, UTC day, provider and model. Latency is kept as a
-- fixed histogram (bucket upper bounds in aos_engines::telemetry) so p95 is exact with
-- respect to those buckets, whether computed here or from raw records.
CREATE TABLE llm_usage_daily (
    tenant_id      uuid   NOT NULL REFERENCES tenants (id),
    integration_id uuid   NOT NULL REFERENCES cus_integrations (id),
    day            text   NOT NULL,
    provider       text   NOT NULL,
    model          text   NOT NULL,
    calls          bigint NOT NULL,
    errors         bigint NOT NULL,
    input_tokens   bigint NOT NULL,
    output_tokens  bigint NOT NULL,
    cached_tokens  bigint NOT NULL,
    cost_micros    bigint NOT NULL,
    latency_count  bigint NOT NULL,
    latency_sum_ms bigint NOT NULL,
    lat_b00 bigint NOT NULL, lat_b01 bigint NOT NULL, lat_b02 bigint NOT NULL, lat_b03 bigint NOT NULL,
    lat_b04 bigint NOT NULL, lat_b05 bigint NOT NULL, lat_b06 bigint NOT NULL, lat_b07 bigint NOT NULL,
    lat_b08 bigint NOT NULL, lat_b09 bigint NOT NULL, lat_b10 bigint NOT NULL, lat_b11 bigint NOT NULL,
    lat_b12 bigint NOT NULL, lat_b13 bigint NOT NULL, lat_b14 bigint NOT NULL, lat_b15 bigint NOT NULL,
    PRIMARY KEY (tenant_id, integration_id, day, provider, model)
);
CREATE INDEX llm_usage_daily_day_idx ON llm_usage_daily (tenant_id, day);
