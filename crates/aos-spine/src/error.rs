//! The one error that crosses from the spine into the HTTP layer: a stable code, a
//! message that is safe to show to the client, and optionally the offending field.
//!
//! **Policy: which error where, and what a client may see.**
//! - `aos-drivers` returns `DriverError` (what the database said, classified: not found,
//!   conflict, busy, unavailable); `aos-engines` returns `EngineError` (what went wrong in
//!   domain terms); the spine returns [`SpineError`]; only `aos-api` makes HTTP of it (the
//!   status of a code is [`aos_schemas::ErrorCode::http_status`], one table).
//! - A `SpineError`'s message is for the client: never SQL, a constraint or table name, a
//!   host, a URL of a customer's server, a secret or a type name. Details go to the log
//!   (`Internal` and `Unavailable` log theirs here, once, and say only what a client can act
//!   on: "quote the request id", "the database is unavailable; retry shortly").
//! - `Unavailable` names the dependency (the database, the identity provider's keys, an
//!   MCP server's credential); `Upstream` says what the customer's server did, in words.
//! - Build errors with the constructors and builders below ([`SpineError::new`] and
//!   friends, [`SpineError::on_field`], [`SpineError::retry_after`],
//!   [`SpineError::for_call`]), not with struct literals.

use aos_engines::EngineError;
use aos_engines::error::Inactive;
use aos_schemas::ErrorCode;

pub type SpineResult<T> = Result<T, SpineError>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct SpineError {
    pub code: ErrorCode,
    /// Safe to return to the client: never carries SQL, hosts or secrets.
    pub message: String,
    pub field: Option<String>,
    /// For `rate_limited` and `budget_exceeded`: seconds until a retry may succeed.
    pub retry_after: Option<u64>,
    /// For a proxied call that was refused but logged: its call log id.
    pub call_id: Option<uuid::Uuid>,
}

impl SpineError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            field: None,
            retry_after: None,
            call_id: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    /// A field breaks a rule: 422 `validation_failed` naming it (`{field}: {message}`).
    pub fn validation(field: &str, message: impl std::fmt::Display) -> Self {
        Self::new(ErrorCode::ValidationFailed, format!("{field}: {message}")).on_field(field)
    }

    /// Names the request field (or parameter) at fault.
    pub fn on_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// Seconds until a retry may succeed (`Retry-After`).
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// The call log id of the proxied call this error refused (`X-AOS-Call-Id`).
    pub fn for_call(mut self, id: uuid::Uuid) -> Self {
        self.call_id = Some(id);
        self
    }

    pub fn internal() -> Self {
        Self::new(
            ErrorCode::Internal,
            "internal error; quote the request id when reporting it",
        )
    }
}

impl From<EngineError> for SpineError {
    fn from(err: EngineError) -> Self {
        match err {
            EngineError::Invalid { field, message } => Self::validation(&field, message),
            EngineError::InvalidInput(errors) => Self::new(
                ErrorCode::InvalidToolInput,
                format!("input does not match the tool's input schema: {}", errors.join("; ")),
            )
            .on_field("input"),
            EngineError::NotFound(what) => Self::new(ErrorCode::NotFound, format!("{what} not found")),
            EngineError::Conflict(message) => Self::new(ErrorCode::Conflict, message),
            EngineError::Unauthenticated(message) => Self::new(ErrorCode::Unauthenticated, message),
            EngineError::Forbidden(message) => Self::new(ErrorCode::Forbidden, message),
            EngineError::InsufficientScope(scope) => {
                Self::new(ErrorCode::InsufficientScope, format!("this needs the {scope} scope"))
            }
            EngineError::TenantInactive(Inactive::Terminated) => Self::new(
                ErrorCode::TenantTerminated,
                "the tenant is terminated; its credentials are refused",
            ),
            EngineError::TenantInactive(Inactive::Suspended) => Self::new(
                ErrorCode::TenantSuspended,
                "the tenant is suspended; its credentials are refused",
            ),
            EngineError::RateLimited(secs) => Self::new(
                ErrorCode::RateLimited,
                format!("too many failed attempts; retry in {secs}s"),
            )
            .retry_after(secs),
            EngineError::Upstream(detail) => Self::new(ErrorCode::UpstreamError, detail),
            EngineError::Unavailable { dependency, detail } => {
                tracing::warn!(%detail, dependency, "dependency unavailable");
                Self::new(
                    ErrorCode::ServiceUnavailable,
                    format!("{dependency} is unavailable; retry shortly"),
                )
            }
            EngineError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                Self::internal()
            }
        }
    }
}

impl From<aos_drivers::DriverError> for SpineError {
    fn from(err: aos_drivers::DriverError) -> Self {
        EngineError::from(err).into()
    }
}
