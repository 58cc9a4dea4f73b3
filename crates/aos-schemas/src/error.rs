//! The one error envelope: `{"error": {"code", "message", "request_id"}}`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Stable, machine-readable error codes. Clients branch on these, never on messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request is malformed (bad JSON, bad query string, bad path parameter).
    BadRequest,
    /// The body is well-formed but a field is invalid.
    ValidationFailed,
    /// A tool's input does not match the tool's input schema (400).
    InvalidToolInput,
    /// The body is not `application/json`.
    UnsupportedMediaType,
    /// The body is larger than the configured limit.
    PayloadTooLarge,
    /// The body did not arrive within `http.body_read_timeout_ms` (408).
    RequestTimeout,
    /// No credentials, or credentials that are not valid.
    Unauthenticated,
    /// Valid credentials that may not do this.
    Forbidden,
    /// Valid credentials without the scope (or role) this needs.
    InsufficientScope,
    /// An agent's key called a tool outside the agent's capabilities (403); the call is
    /// recorded as BLOCKED and nothing went upstream.
    CapabilityNotGranted,
    /// The caller's tenant is SUSPENDED: its credentials are refused.
    TenantSuspended,
    /// The caller's tenant is TERMINATED: its credentials are refused.
    TenantTerminated,
    /// No such resource (or not visible to the caller).
    NotFound,
    /// The route exists but not with this method.
    MethodNotAllowed,
    /// The request conflicts with the current state (duplicate name, illegal transition).
    Conflict,
    /// Too many requests; retry after the `Retry-After` header.
    RateLimited,
    /// The caller's tenant or key is frozen by the kill switch (423); nothing went upstream.
    KillSwitchActive,
    /// A guardrail refused the request (400); `field` names the guardrail.
    GuardrailBlocked,
    /// A spend limit would be passed (429); nothing went upstream.
    BudgetExceeded,
    /// A customer's upstream (an MCP server) failed, timed out or answered garbage.
    UpstreamError,
    /// A dependency (the database) is unavailable; retry later.
    ServiceUnavailable,
    /// A bug or an unexpected failure; the request id finds it in the logs.
    Internal,
}

impl ErrorCode {
    /// The HTTP status every AOS surface (REST envelope, OpenAI shape, the call log)
    /// gives this code: the one table, part of the public contract like the codes.
    pub fn http_status(self) -> u16 {
        match self {
            Self::BadRequest | Self::InvalidToolInput | Self::GuardrailBlocked => 400,
            Self::ValidationFailed => 422,
            Self::UnsupportedMediaType => 415,
            Self::PayloadTooLarge => 413,
            Self::RequestTimeout => 408,
            Self::Unauthenticated => 401,
            Self::Forbidden
            | Self::InsufficientScope
            | Self::CapabilityNotGranted
            | Self::TenantSuspended
            | Self::TenantTerminated => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::Conflict => 409,
            Self::RateLimited | Self::BudgetExceeded => 429,
            Self::KillSwitchActive => 423,
            Self::UpstreamError => 502,
            Self::ServiceUnavailable => 503,
            Self::Internal => 500,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::ValidationFailed => "validation_failed",
            Self::InvalidToolInput => "invalid_tool_input",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::PayloadTooLarge => "payload_too_large",
            Self::RequestTimeout => "request_timeout",
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden => "forbidden",
            Self::InsufficientScope => "insufficient_scope",
            Self::CapabilityNotGranted => "capability_not_granted",
            Self::TenantSuspended => "tenant_suspended",
            Self::TenantTerminated => "tenant_terminated",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Conflict => "conflict",
            Self::RateLimited => "rate_limited",
            Self::KillSwitchActive => "kill_switch_active",
            Self::GuardrailBlocked => "guardrail_blocked",
            Self::BudgetExceeded => "budget_exceeded",
            Self::UpstreamError => "upstream_error",
            Self::ServiceUnavailable => "service_unavailable",
            Self::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub code: ErrorCode,
    /// Human-readable; may change between releases.
    pub message: String,
    /// The request id, also sent as the `X-Request-Id` header and in every log line.
    pub request_id: String,
    /// Which input field was wrong, for `validation_failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// The error body on the OpenAI-compatible routes (`/v1/...`): OpenAI's own shape, so
/// the official SDKs parse it, plus AOS's request id (and, for `guardrail_blocked`, the
/// guardrail that refused).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OpenAiErrorEnvelope {
    pub error: OpenAiErrorBody,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OpenAiErrorBody {
    pub message: String,
    /// OpenAI's error type: `invalid_request_error`, `authentication_error`,
    /// `permission_error`, `rate_limit_error`, `insufficient_quota`, `kill_switch_error`,
    /// `api_error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// AOS's stable code (the strings of [`ErrorCode`]); on a provider's own 4xx about
    /// the request, passed through as is, the provider's code.
    pub code: Option<String>,
    /// The request parameter at fault, when one is.
    pub param: Option<String>,
    /// AOS's request id (absent only on a provider's passed-through error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// For `guardrail_blocked`: which guardrail refused the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guardrail: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialise_as_their_stable_strings() {
        for code in [
            ErrorCode::BadRequest,
            ErrorCode::ValidationFailed,
            ErrorCode::InvalidToolInput,
            ErrorCode::UnsupportedMediaType,
            ErrorCode::PayloadTooLarge,
            ErrorCode::RequestTimeout,
            ErrorCode::Unauthenticated,
            ErrorCode::Forbidden,
            ErrorCode::InsufficientScope,
            ErrorCode::CapabilityNotGranted,
            ErrorCode::TenantSuspended,
            ErrorCode::TenantTerminated,
            ErrorCode::NotFound,
            ErrorCode::MethodNotAllowed,
            ErrorCode::Conflict,
            ErrorCode::RateLimited,
            ErrorCode::KillSwitchActive,
            ErrorCode::GuardrailBlocked,
            ErrorCode::BudgetExceeded,
            ErrorCode::UpstreamError,
            ErrorCode::ServiceUnavailable,
            ErrorCode::Internal,
        ] {
            assert_eq!(serde_json::to_value(code).unwrap(), serde_json::json!(code.as_str()));
        }
    }
}
