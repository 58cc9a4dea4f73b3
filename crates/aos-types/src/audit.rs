//! The words of the audit chain: what happened ([`AuditEventType`]), to what
//! ([`SubjectKind`]) and by whom ([`ActorKind`]), and the stored status of a governed call
//! ([`InvocationStatus`]). One enum each, so no literal is compared
//! or written anywhere else; the strings are the stored and wire form (PIN-516's
//! `TOOL_INVOCATION_*` names stay as the seed has them).

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! words {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant,)*
        }

        impl $name {
            pub const ALL: &'static [Self] = &[$(Self::$variant,)*];

            /// The stored and wire form.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)*
                }
            }

            /// The value whose stored form is `text`, if any.
            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $($text => Some(Self::$variant),)*
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

words! {
    /// What an audit event records.
    AuditEventType {
        ToolInvocationRequested = "TOOL_INVOCATION_REQUESTED",
        ToolInvocationAllowed = "TOOL_INVOCATION_ALLOWED",
        ToolInvocationDenied = "TOOL_INVOCATION_DENIED",
        ToolInvocationPendingApproval = "TOOL_INVOCATION_PENDING_APPROVAL",
        ToolInvocationStarted = "TOOL_INVOCATION_STARTED",
        ToolInvocationCompleted = "TOOL_INVOCATION_COMPLETED",
        ToolInvocationFailed = "TOOL_INVOCATION_FAILED",
        /// The policy could not be evaluated (the call is denied, failing closed).
        PolicyError = "POLICY_ERROR",
        ApprovalRequested = "APPROVAL_REQUESTED",
        ApprovalGranted = "APPROVAL_GRANTED",
        ApprovalDenied = "APPROVAL_DENIED",
        ApprovalExpired = "APPROVAL_EXPIRED",
        IncidentOpened = "INCIDENT_OPENED",
        IncidentResolved = "INCIDENT_RESOLVED",
        McpServerRegistered = "MCP_SERVER_REGISTERED",
        McpServerDeleted = "MCP_SERVER_DELETED",
        ToolEnabled = "TOOL_ENABLED",
        ToolDisabled = "TOOL_DISABLED",
        /// A quarantined (drifted) tool's current definition approved by enabling it.
        ToolDefinitionApproved = "TOOL_DEFINITION_APPROVED",
        ToolQuarantined = "TOOL_QUARANTINED",
        ToolRiskChanged = "TOOL_RISK_CHANGED",
        PolicyUpdated = "POLICY_UPDATED",
        PolicyRemoved = "POLICY_REMOVED",
        GovernanceSettingsChanged = "GOVERNANCE_SETTINGS_CHANGED",
        KillSwitchFrozen = "KILLSWITCH_FROZEN",
        KillSwitchUnfrozen = "KILLSWITCH_UNFROZEN",
        AgentCreated = "AGENT_CREATED",
        AgentUpdated = "AGENT_UPDATED",
        AgentDeleted = "AGENT_DELETED",
        AgentKeyCreated = "AGENT_KEY_CREATED",
        AgentManifestIssued = "AGENT_MANIFEST_ISSUED",
        /// An agent called a tool outside its capabilities (the call is blocked).
        CapabilityNotGranted = "CAPABILITY_NOT_GRANTED",
        /// A manifest-pinned agent called a tool whose definition changed since its
        /// latest manifest (the call is blocked, an incident opened).
        AgentManifestMismatch = "AGENT_MANIFEST_MISMATCH",
    }
}

words! {
    /// The kind of thing an audit event is about (its `subject_type`).
    SubjectKind {
        Tenant = "tenant",
        /// An API key. (The kill switch's own table names this entity `key`.)
        ApiKey = "api_key",
        McpServer = "mcp_server",
        McpTool = "mcp_tool",
        Approval = "approval",
        Incident = "incident",
        Policy = "policy",
        Agent = "agent",
    }
}

words! {
    /// Who acted (an audit event's `actor_type`, a call log's `actor` prefix).
    ActorKind {
        /// The platform operator. Stored and sent as `founder`, the word the wire has
        /// promised since the first release; code says operator.
        Operator = "founder",
        /// An API key of a tenant.
        Machine = "machine",
        /// A person, by a JWT.
        Human = "human",
        /// A telemetry integration key.
        Integration = "integration",
        /// An agent, through one of its API keys.
        Agent = "agent",
        /// AOS itself (the approval sweeper, the stranded-call reaper, the gateway).
        System = "system",
    }
}

words! {
    /// How a governed tool call ended, or where it waits.
    InvocationStatus {
        Success = "SUCCESS",
        Failure = "FAILURE",
        Blocked = "BLOCKED",
        Timeout = "TIMEOUT",
        PendingApproval = "PENDING_APPROVAL",
        /// Allowed and sent; the outcome is not recorded yet.
        Running = "RUNNING",
    }
}

words! {
    /// Where an incident stands.
    IncidentStatus {
        Open = "OPEN",
        Resolved = "RESOLVED",
    }
}

words! {
    /// Lifecycle of an agent. Only an active agent's keys authenticate.
    AgentStatus {
        Active = "ACTIVE",
        Disabled = "DISABLED",
        /// Soft-deleted: hidden from lists, kept for audit; its keys refused.
        Deleted = "DELETED",
    }
}

words! {
    /// Lifecycle of a telemetry integration.
    IntegrationStatus {
        Active = "ACTIVE",
        Disabled = "DISABLED",
        /// Soft-deleted: hidden from lists, its keys refused, its usage kept.
        Deleted = "DELETED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_reads_back_and_serialises_as_stored() {
        for t in AuditEventType::ALL {
            assert_eq!(AuditEventType::parse(t.as_str()), Some(*t));
            assert_eq!(serde_json::to_value(t).ok(), Some(serde_json::json!(t.as_str())));
        }
        for s in SubjectKind::ALL {
            assert_eq!(SubjectKind::parse(s.as_str()), Some(*s));
        }
        for s in InvocationStatus::ALL {
            assert_eq!(InvocationStatus::parse(s.as_str()), Some(*s));
        }
        for s in IncidentStatus::ALL {
            assert_eq!(IncidentStatus::parse(s.as_str()), Some(*s));
        }
        for s in AgentStatus::ALL {
            assert_eq!(AgentStatus::parse(s.as_str()), Some(*s));
        }
        for s in IntegrationStatus::ALL {
            assert_eq!(IntegrationStatus::parse(s.as_str()), Some(*s));
        }
        for a in ActorKind::ALL {
            assert_eq!(ActorKind::parse(a.as_str()), Some(*a));
        }
        assert_eq!(ActorKind::Operator.as_str(), "founder");
        assert_eq!(AuditEventType::parse("NOT_AN_EVENT"), None);
    }
}
