//! What a credential may do.

use std::fmt;

/// A permission carried by an API key (or granted to a human through a role).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    McpRead,
    McpAdmin,
    McpInvoke,
    ProxyInvoke,
    TelemetryRead,
    TelemetryWrite,
    ApprovalsDecide,
    /// Tenant administration: manage keys and settings; implies every other scope.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 8] = [
        Self::McpRead,
        Self::McpAdmin,
        Self::McpInvoke,
        Self::ProxyInvoke,
        Self::TelemetryRead,
        Self::TelemetryWrite,
        Self::ApprovalsDecide,
        Self::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::McpRead => "mcp:read",
            Self::McpAdmin => "mcp:admin",
            Self::McpInvoke => "mcp:invoke",
            Self::ProxyInvoke => "proxy:invoke",
            Self::TelemetryRead => "telemetry:read",
            Self::TelemetryWrite => "telemetry:write",
            Self::ApprovalsDecide => "approvals:decide",
            Self::Admin => "admin",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == value)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// True when `granted` allows `wanted` (`admin` allows everything).
pub fn allows(granted: &[Scope], wanted: Scope) -> bool {
    granted.iter().any(|g| *g == wanted || *g == Scope::Admin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_admin_implies_all() {
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()), Some(scope));
            assert!(allows(&[Scope::Admin], scope));
        }
        assert_eq!(Scope::parse("MCP:READ"), None);
        assert!(allows(&[Scope::McpRead], Scope::McpRead));
        assert!(!allows(&[Scope::McpRead], Scope::McpInvoke));
        assert!(!allows(&[], Scope::McpRead));
    }
}
