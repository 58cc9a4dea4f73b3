//! The OpenAI-compatible proxy's management API: tenant settings (guardrails, budgets,
//! rate limit), the caller's protection status, the call log and replay.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

/// What a guardrail does when it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GuardrailAction {
    /// Refuse the request (400 `guardrail_blocked`, naming the guardrail).
    Block,
    /// Replace each match with `[REDACTED:<guardrail>]` before it goes upstream.
    Redact,
    /// Let it through; record the hit (never the matched text).
    Flag,
    Off,
}

/// A tenant's guardrails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GuardrailSettings {
    /// Largest request body in bytes (1024 to 67108864; default 524288).
    pub max_request_bytes: u64,
    /// Largest `max_tokens` / `max_completion_tokens` a request may ask for.
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Models this tenant may use; absent: every configured model.
    #[serde(default)]
    pub allowed_models: Option<Vec<String>>,
    /// Emails, phone numbers, card numbers (Luhn-checked), national ids. Default `flag`.
    pub pii: GuardrailAction,
    /// API keys and private keys. Default `block`.
    pub secrets: GuardrailAction,
    /// Prompt-injection phrases: `block`, `flag` or `off`. Default `block`.
    pub prompt_injection: GuardrailAction,
}

/// Spend limits in micro-dollars (1 USD = 1000000), per UTC day and calendar month.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    #[serde(default)]
    pub daily_limit_micros: Option<i64>,
    #[serde(default)]
    pub monthly_limit_micros: Option<i64>,
}

/// `GET|PUT /api/v1/proxy/settings`. Every field is optional on PUT (defaults apply).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProxySettings {
    pub guardrails: GuardrailSettings,
    /// The tenant's limits (all its keys together).
    pub budget: Budget,
    /// Limits of single API keys, by key id.
    pub key_budgets: BTreeMap<Uuid, Budget>,
    /// Limits of single agents (all their keys together), by agent id.
    #[serde(default)]
    pub agent_budgets: BTreeMap<Uuid, Budget>,
    /// Requests per minute per API key, on each replica.
    #[serde(default)]
    pub rate_limit_per_minute: Option<u32>,
}

/// Query of the settings routes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TenantQuery {
    /// The platform operator names the tenant; tenant callers act on their own.
    pub tenant_id: Option<Uuid>,
}

/// Kill-switch state of the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct KillSwitchPulse {
    pub tenant_frozen: bool,
    pub key_frozen: bool,
    /// The reason of the freeze that stops the caller, if any.
    #[serde(default)]
    pub reason: Option<String>,
}

/// A guardrail in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ActiveGuardrail {
    pub name: String,
    pub action: String,
}

/// One budget counter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BudgetUsage {
    /// `tenant` or `key:<id>`.
    pub scope: String,
    /// `day:YYYY-MM-DD` or `month:YYYY-MM` (UTC).
    pub period: String,
    #[serde(default)]
    pub limit_micros: Option<i64>,
    pub spent_micros: i64,
    /// Held by requests in flight.
    pub reserved_micros: i64,
    #[serde(default)]
    pub remaining_micros: Option<i64>,
    /// `spent_micros` in dollars, e.g. `"0.012345"`.
    pub spent_usd: String,
}

/// The caller's rate-limit window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RateLimitPulse {
    pub limit_per_minute: u32,
    pub remaining: u32,
    pub reset_secs: u64,
}

/// `GET /v1/status`: the protection pulse of the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProxyStatus {
    pub tenant_id: Uuid,
    #[serde(default)]
    pub key_id: Option<Uuid>,
    /// `active` or `frozen`.
    pub status: String,
    pub kill_switch: KillSwitchPulse,
    pub guardrails: Vec<ActiveGuardrail>,
    /// Today's and this month's spend of the tenant and of the calling key.
    pub budgets: Vec<BudgetUsage>,
    #[serde(default)]
    pub rate_limit: Option<RateLimitPulse>,
    /// Models the caller may use.
    pub models: Vec<String>,
}

/// A guardrail that matched a call (never the matched text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GuardrailHit {
    pub guardrail: String,
    pub action: GuardrailAction,
    pub count: u32,
}

/// One proxied call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProxyCall {
    pub id: Uuid,
    pub tenant_id: Uuid,
    #[serde(default)]
    pub key_id: Option<Uuid>,
    /// `key:<id>`, `user:<id>`.
    pub actor: String,
    /// `chat.completions` or `embeddings`.
    pub endpoint: String,
    pub model: String,
    #[serde(default)]
    pub provider: Option<String>,
    pub stream: bool,
    /// `ok`, `frozen`, `blocked`, `budget_exceeded`, `rate_limited`, `upstream_error`,
    /// `client_disconnected`, `aborted` (a freeze cut a stream off) or `overloaded` (AOS was
    /// at capacity: refused with 503 before anything went upstream).
    pub status: String,
    pub http_status: u16,
    #[serde(default)]
    pub error_code: Option<String>,
    pub latency_ms: i64,
    pub input_tokens: i64,
    pub cached_input_tokens: i64,
    pub output_tokens: i64,
    /// `upstream` (the provider's usage), `estimated` (counted by AOS) or `none`.
    pub token_source: String,
    pub cost_micros: i64,
    /// `passed` or `frozen`.
    pub killswitch: String,
    pub guardrails: Vec<GuardrailHit>,
    /// SHA-256 of the request body as received.
    pub request_hash: String,
    pub replay_eligible: bool,
    #[serde(default)]
    pub replayed_from_id: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// The request with secrets and PII removed (detail view only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<serde_json::Value>,
    /// The response with secrets and PII removed (detail view only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<serde_json::Value>,
}

/// Query of `GET /api/v1/proxy/calls`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ProxyCallQuery {
    pub tenant_id: Option<Uuid>,
    pub key_id: Option<Uuid>,
    pub model: Option<String>,
    pub status: Option<String>,
    /// RFC 3339; calls at or after.
    pub since: Option<String>,
    /// RFC 3339; calls before.
    pub until: Option<String>,
    /// 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    #[schema(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// `POST /api/v1/proxy/calls/{id}/replay`: the old call beside the new one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReplayResult {
    pub original: ProxyCall,
    pub replay: ReplayOutcome,
}

/// The new call of a replay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReplayOutcome {
    /// The call log id of the new call, when it got that far.
    #[serde(default)]
    pub call_id: Option<Uuid>,
    pub http_status: u16,
    /// The new response body, or the error that refused it (OpenAI's error shape).
    pub response: serde_json::Value,
}

/// `GET /api/v1/admin/proxy/writer`: the call log writer's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WriterStats {
    /// Call records accepted into the queue.
    pub queued: u64,
    /// Call records stored.
    pub written: u64,
    /// Call records lost (queue full past the timeout, or unwritten at shutdown). Should be 0.
    pub dropped: u64,
    /// Records the database refused for good (dropped one by one; the rest of their batch
    /// was written). Should be 0.
    pub rejected: u64,
    /// Spend counter updates applied (settlements, summed per counter).
    pub settled: u64,
    /// Counters with settlements not applied yet.
    pub spend_pending: u64,
    pub retries: u64,
    pub batches: u64,
    pub queue_depth: u64,
    pub queue_capacity: u64,
    /// The last batch failed and is being retried.
    pub failing: bool,
}
