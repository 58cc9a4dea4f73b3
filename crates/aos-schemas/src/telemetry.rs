//! Customer LLM telemetry: integrations and their keys, ingestion, and the dashboards'
//! reads.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::{Date, OffsetDateTime};
use utoipa::ToSchema;
use uuid::Uuid;

type Time = OffsetDateTime;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Integration {
    pub id: Uuid,
    pub name: String,
    pub provider: String,
    /// `ACTIVE` or `DISABLED` (its keys are refused).
    pub status: String,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Time,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Time,
}

/// `POST /api/v1/integrations`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateIntegrationRequest {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// The LLM provider this integration reports on (free text, e.g. `openai`).
    pub provider: String,
}

/// `PATCH /api/v1/integrations/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateIntegrationRequest {
    pub name: Option<String>,
    /// `ACTIVE` or `DISABLED`.
    pub status: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IntegrationKey {
    pub id: Uuid,
    pub integration_id: Uuid,
    pub prefix: String,
    pub can_read: bool,
    /// `active`, `expiring` (replaced; valid until `expires_at`), `expired` or `revoked`.
    pub status: String,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Time,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Time>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<Time>,
}

/// `POST /api/v1/integrations/{id}/keys`: issue (and rotate to) a new key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateIntegrationKeyRequest {
    /// Whether the key may also read the integration's usage.
    #[serde(default)]
    pub can_read: bool,
}

/// The only time an integration key is shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CreatedIntegrationKey {
    pub integration_key: IntegrationKey,
    /// Send as `X-CUS-Integration-Key`. AOS keeps only its hash.
    pub key: String,
}

fn success() -> String {
    "success".into()
}

/// One usage record, as a client reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageRecord {
    /// The client's idempotency key: a retried record is counted once.
    pub call_id: String,
    pub provider: String,
    pub model: String,
    pub input_tokens: i64,
    pub output_tokens: i64,
    #[serde(default)]
    pub cached_tokens: i64,
    /// US dollars; when absent it is computed from the price table (the record says which).
    #[serde(default)]
    pub cost: Option<f64>,
    #[serde(default)]
    pub latency_ms: Option<i64>,
    /// `success` (default) or `error`.
    #[serde(default = "success")]
    pub status: String,
    #[serde(default)]
    pub error_code: Option<String>,
    #[serde(default)]
    pub session_id: Option<String>,
    #[serde(default)]
    pub run_id: Option<String>,
    #[serde(default)]
    pub trace_id: Option<String>,
    /// When the call happened (default: now).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub occurred_at: Option<Time>,
    /// A small JSON object of your own.
    #[serde(default)]
    pub metadata: Option<Value>,
}

/// `POST /api/v1/telemetry/llm-usage/batch`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageBatch {
    /// Each element is checked on its own: one bad record does not refuse the others.
    /// Kept as raw JSON until then, so each record is parsed once.
    #[schema(value_type = Vec<UsageRecord>)]
    pub records: Vec<Box<serde_json::value::RawValue>>,
}

/// What happened to one record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RecordResult {
    pub index: usize,
    /// `accepted`, `duplicate` or `rejected`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IngestResult {
    pub accepted: usize,
    pub duplicates: usize,
    pub rejected: usize,
    pub results: Vec<RecordResult>,
}

/// Aggregates over a set of calls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UsageTotals {
    pub calls: i64,
    pub errors: i64,
    pub error_rate: f64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cached_tokens: i64,
    /// US dollars.
    pub cost: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_avg_ms: Option<f64>,
    /// Upper bound of the latency histogram bucket that holds the 95th percentile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_p95_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelUsage {
    pub provider: String,
    pub model: String,
    #[serde(flatten)]
    pub totals: UsageTotals,
}

/// `GET /api/v1/telemetry/usage/summary`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UsageSummary {
    #[serde(with = "crate::wire::date")]
    #[schema(value_type = String, format = Date)]
    pub start_date: Date,
    #[serde(with = "crate::wire::date")]
    #[schema(value_type = String, format = Date)]
    pub end_date: Date,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integration_id: Option<Uuid>,
    #[serde(flatten)]
    pub totals: UsageTotals,
    pub by_model: Vec<ModelUsage>,
}

/// One day of `GET /api/v1/telemetry/usage/daily`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DailyUsage {
    #[serde(with = "crate::wire::date")]
    #[schema(value_type = String, format = Date)]
    pub date: Date,
    #[serde(flatten)]
    pub totals: UsageTotals,
}

/// A stored record in `GET /api/v1/telemetry/usage/history`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UsageHistoryRecord {
    pub id: Uuid,
    pub integration_id: Uuid,
    pub call_id: String,
    pub provider: String,
    pub model: String,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cached_tokens: i64,
    pub cost: f64,
    /// `reported`, `computed` or `unknown`.
    pub cost_source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<i64>,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub occurred_at: Time,
    pub metadata: Value,
}

/// Query of the summary and daily reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageRangeQuery {
    pub integration_id: Option<Uuid>,
    /// `YYYY-MM-DD` (default: 30 days before `end_date`).
    pub start_date: Option<String>,
    /// `YYYY-MM-DD` (default: today, UTC).
    pub end_date: Option<String>,
}

/// Query of the history read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageHistoryQuery {
    pub integration_id: Option<Uuid>,
    /// RFC 3339 (default: 24 hours before `end`).
    pub start: Option<String>,
    /// RFC 3339, exclusive (default: now).
    pub end: Option<String>,
    /// 1 to 500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    #[schema(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}
