//! The engine layer's error: what went wrong in domain terms.

use aos_drivers::DriverError;

pub type EngineResult<T> = Result<T, EngineError>;

/// Why a tenant's credentials are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inactive {
    Suspended,
    Terminated,
}

impl std::fmt::Display for Inactive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Suspended => "SUSPENDED",
            Self::Terminated => "TERMINATED",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A field of the input breaks a rule; `field` names it.
    #[error("{field}: {message}")]
    Invalid {
        field: std::borrow::Cow<'static, str>,
        message: String,
    },
    /// A tool's input does not match its input schema: the schema errors (paths and
    /// rules, never the values).
    #[error("input does not match the tool's input schema: {}", .0.join("; "))]
    InvalidInput(Vec<String>),
    /// The thing asked for does not exist (or is not the caller's).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request conflicts with current state.
    #[error("{0}")]
    Conflict(String),
    /// No or bad credentials.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The credential is valid but lacks the scope (or role) the action needs.
    #[error("missing scope {0}")]
    InsufficientScope(&'static str),
    /// The caller's tenant is not ACTIVE; its credentials are refused.
    #[error("tenant is {0}")]
    TenantInactive(Inactive),
    /// Too many failed attempts; retry after this many seconds.
    #[error("too many failed attempts; retry in {0}s")]
    RateLimited(u64),
    /// A customer's upstream (an MCP server) failed or misbehaved.
    #[error("upstream: {0}")]
    Upstream(String),
    /// A dependency is down; retry later. `dependency` is what a client may be told
    /// ("the database", "the identity provider's keys", "the MCP server's credential");
    /// `detail` goes to the log only.
    #[error("{dependency} unavailable: {detail}")]
    Unavailable { dependency: &'static str, detail: String },
    /// Anything unexpected; details go to the log, not to the client.
    #[error("internal: {0}")]
    Internal(String),
}

impl EngineError {
    /// A dependency is down: `dependency` is said to the client, `detail` only logged.
    pub fn unavailable(dependency: &'static str, detail: impl Into<String>) -> Self {
        Self::Unavailable {
            dependency,
            detail: detail.into(),
        }
    }

    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// [`EngineError::invalid`] for a field named at run time (`capabilities[2].tool`).
    pub fn invalid_at(field: String, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<DriverError> for EngineError {
    fn from(err: DriverError) -> Self {
        match err {
            DriverError::NotFound => Self::NotFound("record"),
            DriverError::Conflict(constraint) => {
                // The constraint's name is schema detail: logged, never told to a client.
                tracing::debug!(%constraint, "unique constraint refused a write");
                Self::Conflict("conflicts with an existing record".into())
            }
            DriverError::Busy => Self::unavailable("the database", "busy"),
            DriverError::Unavailable(why) => Self::unavailable("the database", why),
            other => Self::Internal(other.to_string()),
        }
    }
}
