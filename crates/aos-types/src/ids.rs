//! Typed ids: a `ToolId` cannot be passed where a `ServerId` is expected, though both are
//! UUIDs underneath. On the wire each is a UUID string (serde is transparent).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! ids {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new, time-ordered id (UUID v7).
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            pub fn get(self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    )*};
}

ids! {
    /// A tenant.
    TenantId;
    /// An API key of a tenant (`aos_sk_…`).
    ApiKeyId;
    /// A customer MCP server registered by a tenant.
    ServerId;
    /// A tool of a registered MCP server.
    ToolId;
    /// One governed tool call.
    InvocationId;
    /// An approval request.
    ApprovalId;
    /// An incident.
    IncidentId;
    /// An agent: an identity with capabilities over the governed catalog.
    AgentId;
    /// A signed manifest of an agent's capabilities.
    AgentManifestId;
    /// A telemetry integration.
    IntegrationId;
    /// A key of a telemetry integration (`aos_ik_…`).
    IntegrationKeyId;
    /// One proxied LLM call in the call log.
    CallId;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_uuids_on_the_wire_and_distinct_types_in_code() {
        let tool = ToolId::new();
        let text = serde_json::to_string(&tool).unwrap_or_default();
        assert_eq!(text, format!("\"{}\"", tool.get()));
        let back: ToolId = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(back, tool);
        assert_eq!(tool.to_string().parse::<ToolId>().ok(), Some(tool));
        assert!("not-a-uuid".parse::<ServerId>().is_err());
    }
}

impl AgentId {
    /// The agent as a caller in records: `agent:<id>` (an invocation's `actor_id`, an
    /// approval's `requested_by`, the proxy call log's `actor`).
    pub fn actor(self) -> String {
        format!("agent:{self}")
    }

    /// The agent named by a caller label written by [`AgentId::actor`], if it is one.
    pub fn from_actor(actor: &str) -> Option<Self> {
        actor.strip_prefix("agent:").and_then(|id| id.parse().ok())
    }
}

#[cfg(test)]
mod agent_tests {
    use super::*;

    #[test]
    fn agent_caller_labels_round_trip() {
        let id = AgentId::new();
        assert_eq!(AgentId::from_actor(&id.actor()), Some(id));
        assert_eq!(AgentId::from_actor(&format!("key:{}", id.get())), None);
        assert_eq!(AgentId::from_actor("agent:not-a-uuid"), None);
    }
}
