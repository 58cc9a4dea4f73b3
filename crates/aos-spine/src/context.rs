//! The verified identity of a caller, as operations see it.

use crate::error::SpineError;

/// Who is calling, after authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthContext {
    /// The platform operator: acts on every tenant.
    Founder,
}

impl AuthContext {
    /// `auth_type` as reported by the session-context API.
    pub fn auth_type(&self) -> &'static str {
        match self {
            Self::Founder => "founder",
        }
    }

    /// Refuses anyone but the platform operator.
    pub fn require_founder(&self) -> Result<(), SpineError> {
        match self {
            Self::Founder => Ok(()),
        }
    }
}
