//! The one error that crosses from the spine into the HTTP layer: a stable code, a
//! message that is safe to show to the client, and optionally the offending field.

use aos_engines::EngineError;
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
            EngineError::Invalid { field, message } => Self {
                code: ErrorCode::ValidationFailed,
                message: format!("{field}: {message}"),
                field: Some(field.to_owned()),
                retry_after: None,
                call_id: None,
            },
            EngineError::InvalidInput(errors) => Self {
                code: ErrorCode::InvalidToolInput,
                message: format!("input does not match the tool's input schema: {}", errors.join("; ")),
                field: Some("input".into()),
                retry_after: None,
                call_id: None,
            },
            EngineError::NotFound(what) => Self::new(ErrorCode::NotFound, format!("{what} not found")),
            EngineError::Conflict(message) => Self::new(ErrorCode::Conflict, message),
            EngineError::Unauthenticated(message) => Self::new(ErrorCode::Unauthenticated, message),
            EngineError::Forbidden(message) => Self::new(ErrorCode::Forbidden, message),
            EngineError::InsufficientScope(scope) => {
                Self::new(ErrorCode::InsufficientScope, format!("this needs the {scope} scope"))
            }
            EngineError::TenantInactive("TERMINATED") => Self::new(
                ErrorCode::TenantTerminated,
                "the tenant is terminated; its credentials are refused",
            ),
            EngineError::TenantInactive(_) => Self::new(
                ErrorCode::TenantSuspended,
                "the tenant is suspended; its credentials are refused",
            ),
            EngineError::RateLimited(secs) => Self {
                retry_after: Some(secs),
                ..Self::new(
                    ErrorCode::RateLimited,
                    format!("too many failed attempts; retry in {secs}s"),
                )
            },
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
