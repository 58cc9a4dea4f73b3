//! The OpenAI-compatible proxy's rows: per-tenant settings, budget spend counters and the
//! call log.

use diesel::prelude::*;

use crate::schema::{proxy_calls, proxy_settings, proxy_spend};
use crate::types::{DbJson, DbTime, DbUuid};

/// A tenant's proxy settings document (guardrails, model allowlist, budgets, rate limit).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = proxy_settings)]
pub struct ProxySettingsRow {
    pub tenant_id: DbUuid,
    pub settings: DbJson,
    pub updated_by: String,
    pub updated_at: DbTime,
}

/// The spend counter of a tenant (`scope` = [`SCOPE_TENANT`]) or a key (`key:<id>`)
/// in one period (`day:YYYY-MM-DD` or `month:YYYY-MM`, UTC).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = proxy_spend)]
pub struct ProxySpendRow {
    pub tenant_id: DbUuid,
    pub scope: String,
    pub period: String,
    pub spent_micros: i64,
    pub reserved_micros: i64,
    pub updated_at: DbTime,
}

pub const SCOPE_TENANT: &str = "tenant";

/// The scope text of one key's counters.
pub fn key_scope(key_id: uuid::Uuid) -> String {
    format!("key:{key_id}")
}

/// The scope text of one agent's counters (all its keys together).
pub fn agent_scope(agent_id: uuid::Uuid) -> String {
    format!("agent:{agent_id}")
}

/// One proxied request, as the call log keeps it.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = proxy_calls)]
#[diesel(treat_none_as_default_value = false)]
pub struct ProxyCallRow {
    pub id: DbUuid,
    pub tenant_id: DbUuid,
    pub key_id: Option<DbUuid>,
    pub actor: String,
    /// `chat.completions` or `embeddings`.
    pub endpoint: String,
    pub model: String,
    pub provider: Option<String>,
    pub stream: bool,
    /// See [`CallStatus`].
    pub status: String,
    pub http_status: i32,
    pub error_code: Option<String>,
    pub latency_ms: i64,
    pub input_tokens: i64,
    pub cached_input_tokens: i64,
    pub output_tokens: i64,
    /// `upstream` (the provider's usage), `estimated` (tiktoken) or `none`.
    pub token_source: String,
    pub cost_micros: i64,
    /// `passed` or `frozen`.
    pub killswitch: String,
    /// `[{"guardrail", "action", "count"}]`, never the matched text.
    pub guardrails: DbJson,
    pub request_hash: String,
    pub request_body: Option<DbJson>,
    pub response_body: Option<DbJson>,
    pub replay_eligible: bool,
    pub replayed_from_id: Option<DbUuid>,
    pub created_at: DbTime,
}

/// How a proxied call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallStatus {
    /// The upstream answered (2xx).
    Ok,
    /// Refused by the kill switch before anything went upstream.
    Frozen,
    /// Refused by a guardrail.
    Blocked,
    /// Refused by a spend limit.
    BudgetExceeded,
    /// Refused by the per-key rate limit.
    RateLimited,
    /// The upstream failed, timed out or answered an error.
    UpstreamError,
    /// The client went away mid-stream; billed for what was generated.
    ClientDisconnected,
    /// A freeze cut the stream off mid-way; billed for what was generated.
    Aborted,
    /// Refused because AOS was at capacity (no room to record the call); nothing went
    /// upstream.
    Overloaded,
}

impl CallStatus {
    pub const ALL: [Self; 9] = [
        Self::Ok,
        Self::Frozen,
        Self::Blocked,
        Self::BudgetExceeded,
        Self::RateLimited,
        Self::UpstreamError,
        Self::ClientDisconnected,
        Self::Aborted,
        Self::Overloaded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Frozen => "frozen",
            Self::Blocked => "blocked",
            Self::BudgetExceeded => "budget_exceeded",
            Self::RateLimited => "rate_limited",
            Self::UpstreamError => "upstream_error",
            Self::ClientDisconnected => "client_disconnected",
            Self::Aborted => "aborted",
            Self::Overloaded => "overloaded",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip() {
        for status in CallStatus::ALL {
            assert_eq!(CallStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(CallStatus::parse("OK"), None);
    }
}
