//! The MCP registry: servers a tenant registered, the tools discovered on them, and the
//! append-only record of tool invocations.

use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use crate::schema::{mcp_servers, mcp_tool_invocations, mcp_tools};
use crate::types::{DbJson, DbTime, DbUuid};

/// Lifecycle of a registered server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServerStatus {
    /// Registered, not yet reached.
    Pending,
    Active,
    /// Reachable but slow or intermittently failing.
    Degraded,
    /// Unreachable.
    Offline,
    /// Soft-deleted: hidden from lists, kept for audit.
    Deleted,
}

impl ServerStatus {
    pub const ALL: [Self; 5] = [
        Self::Pending,
        Self::Active,
        Self::Degraded,
        Self::Offline,
        Self::Deleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Active => "ACTIVE",
            Self::Degraded => "DEGRADED",
            Self::Offline => "OFFLINE",
            Self::Deleted => "DELETED",
        }
    }

    /// Unknown stored values read as `Offline`: never served as healthy.
    pub fn parse_lenient(value: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(value))
            .unwrap_or(Self::Offline)
    }
}

/// How AOS talks to a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Transport {
    /// Streamable HTTP.
    Http,
    /// The legacy HTTP+SSE transport.
    Sse,
    /// A child process on the AOS host (operator allowlist only).
    Stdio,
}

impl Transport {
    pub const ALL: [Self; 3] = [Self::Http, Self::Sse, Self::Stdio];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "HTTP",
            Self::Sse => "SSE",
            Self::Stdio => "STDIO",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str().eq_ignore_ascii_case(value))
    }
}

/// How dangerous a tool is, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RiskLevel {
    Low,
    Medium,
    High,
    Critical,
}

impl RiskLevel {
    pub const ALL: [Self; 4] = [Self::Low, Self::Medium, Self::High, Self::Critical];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "LOW",
            Self::Medium => "MEDIUM",
            Self::High => "HIGH",
            Self::Critical => "CRITICAL",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str().eq_ignore_ascii_case(value))
    }

    /// Unknown stored values read as `Critical`: the safe side.
    pub fn parse_lenient(value: &str) -> Self {
        Self::parse(value).unwrap_or(Self::Critical)
    }
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = mcp_servers)]
pub struct McpServerRow {
    pub id: DbUuid,
    pub tenant_id: DbUuid,
    pub name: String,
    pub url: String,
    pub description: Option<String>,
    pub transport: String,
    pub status: String,
    pub status_reason: Option<String>,
    pub protocol_version: Option<String>,
    pub capabilities: Option<DbJson>,
    pub capabilities_hash: Option<String>,
    /// An opaque reference (`env://`, `file://`, `vault://`); never the secret.
    pub credential_ref: Option<String>,
    pub metadata: DbJson,
    pub created_by: String,
    pub created_at: DbTime,
    pub updated_at: DbTime,
    pub discovered_at: Option<DbTime>,
    pub last_health_check_at: Option<DbTime>,
    pub last_latency_ms: Option<i64>,
    pub consecutive_failures: i32,
    pub deleted_at: Option<DbTime>,
    pub tool_count: i32,
    /// Budget for one tool call; `None`: the platform default.
    pub call_timeout_ms: Option<i64>,
    /// Largest tool output accepted, in bytes of JSON; `None`: the platform default.
    pub max_output_bytes: Option<i64>,
    /// The latest signed manifest of the tool set (compact JWS).
    pub manifest: Option<String>,
    pub manifest_issued_at: Option<DbTime>,
    /// Governed calls per minute to this server, on each replica; `None`: no cap.
    pub max_calls_per_minute: Option<i32>,
}

impl McpInvocationRow {
    /// The stored status, read leniently: an unknown value reads as `FAILURE` (never as a
    /// success, nor as still running).
    pub fn status(&self) -> InvocationStatus {
        InvocationStatus::parse(&self.status).unwrap_or(InvocationStatus::Failure)
    }
}

impl McpServerRow {
    pub fn status(&self) -> ServerStatus {
        ServerStatus::parse_lenient(&self.status)
    }

    pub fn transport(&self) -> Option<Transport> {
        Transport::parse(&self.transport)
    }
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = mcp_servers)]
pub struct NewMcpServer {
    pub id: DbUuid,
    pub tenant_id: DbUuid,
    pub name: String,
    pub url: String,
    pub description: Option<String>,
    pub transport: String,
    pub status: String,
    pub credential_ref: Option<String>,
    pub metadata: DbJson,
    pub created_by: String,
    pub created_at: DbTime,
    pub updated_at: DbTime,
    pub call_timeout_ms: Option<i64>,
    pub max_output_bytes: Option<i64>,
    pub max_calls_per_minute: Option<i32>,
}

/// A partial update of a server; `None` leaves a column alone, `Some(None)` clears it.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = mcp_servers)]
pub struct McpServerChanges {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub status: Option<String>,
    pub status_reason: Option<Option<String>>,
    pub protocol_version: Option<Option<String>>,
    pub capabilities: Option<Option<DbJson>>,
    pub capabilities_hash: Option<Option<String>>,
    pub updated_at: Option<DbTime>,
    pub discovered_at: Option<Option<DbTime>>,
    pub last_health_check_at: Option<Option<DbTime>>,
    pub last_latency_ms: Option<Option<i64>>,
    pub consecutive_failures: Option<i32>,
    pub deleted_at: Option<Option<DbTime>>,
    pub tool_count: Option<i32>,
    pub manifest: Option<Option<String>>,
    pub manifest_issued_at: Option<Option<DbTime>>,
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = mcp_tools)]
pub struct McpToolRow {
    pub id: DbUuid,
    pub tenant_id: DbUuid,
    pub server_id: DbUuid,
    pub name: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub input_schema: DbJson,
    pub output_schema: Option<DbJson>,
    pub annotations: Option<DbJson>,
    pub risk_level: String,
    /// `auto` (assessed at discovery) or `admin` (an explicit choice, kept across
    /// rediscovery).
    pub risk_source: String,
    pub risk_reasons: DbJson,
    /// Findings of the tool-poisoning scan (a JSON array of strings).
    pub flags: DbJson,
    pub enabled: bool,
    pub requires_approval: bool,
    /// False once the server stopped listing the tool.
    pub available: bool,
    pub tool_hash: String,
    pub discovered_at: DbTime,
    pub updated_at: DbTime,
    /// The definition hash an admin approved (by enabling the tool); `None`: never approved.
    pub approved_hash: Option<String>,
    /// The definition changed under an approval: disabled until an admin re-approves.
    pub quarantined: bool,
    pub quarantine_reason: Option<String>,
}

impl McpToolRow {
    pub fn risk(&self) -> RiskLevel {
        RiskLevel::parse_lenient(&self.risk_level)
    }

    /// True when the current definition is the one an admin approved.
    pub fn pinned(&self) -> bool {
        self.approved_hash.as_deref() == Some(self.tool_hash.as_str())
    }

    /// Whether a call may go out at all: enabled, not quarantined, definition pinned.
    pub fn callable(&self) -> bool {
        self.enabled && !self.quarantined && self.available && self.pinned()
    }
}

/// A tool as discovery saw it; inserted, or applied to the existing row of that name.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = mcp_tools)]
pub struct NewMcpTool {
    pub id: DbUuid,
    pub tenant_id: DbUuid,
    pub server_id: DbUuid,
    pub name: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub input_schema: DbJson,
    pub output_schema: Option<DbJson>,
    pub annotations: Option<DbJson>,
    pub risk_level: String,
    pub risk_source: String,
    pub risk_reasons: DbJson,
    pub flags: DbJson,
    pub enabled: bool,
    pub requires_approval: bool,
    pub available: bool,
    pub tool_hash: String,
    pub discovered_at: DbTime,
    pub updated_at: DbTime,
    pub approved_hash: Option<String>,
    pub quarantined: bool,
    pub quarantine_reason: Option<String>,
}

#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = mcp_tools)]
pub struct McpToolChanges {
    pub title: Option<Option<String>>,
    pub description: Option<Option<String>>,
    pub input_schema: Option<DbJson>,
    pub output_schema: Option<Option<DbJson>>,
    pub annotations: Option<Option<DbJson>>,
    pub risk_level: Option<String>,
    pub risk_source: Option<String>,
    pub risk_reasons: Option<DbJson>,
    pub flags: Option<DbJson>,
    pub enabled: Option<bool>,
    pub requires_approval: Option<bool>,
    pub available: Option<bool>,
    pub tool_hash: Option<String>,
    pub discovered_at: Option<DbTime>,
    pub updated_at: Option<DbTime>,
    pub approved_hash: Option<Option<String>>,
    pub quarantined: Option<bool>,
    pub quarantine_reason: Option<Option<String>>,
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable, Insertable)]
#[diesel(table_name = mcp_tool_invocations)]
pub struct McpInvocationRow {
    pub id: DbUuid,
    pub tenant_id: DbUuid,
    pub server_id: DbUuid,
    pub tool_id: DbUuid,
    pub run_id: Option<String>,
    pub step_index: Option<i32>,
    pub actor_id: Option<String>,
    pub actor_type: String,
    pub trace_id: Option<String>,
    pub status: String,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub policy_decision: Option<String>,
    pub policy_decision_id: Option<String>,
    pub input_hash: String,
    pub output_hash: Option<String>,
    pub invoked_at: DbTime,
    pub completed_at: Option<DbTime>,
    pub duration_ms: Option<i64>,
    pub policy_id: Option<String>,
    pub policy_revision: Option<String>,
    pub policy_reasons: Option<DbJson>,
    pub incident_id: Option<DbUuid>,
    pub approval_id: Option<DbUuid>,
    pub output_bytes: Option<i64>,
}

/// How an invocation ended (or where it waits): the vocabulary's type (`aos-types`),
/// stored as its text.
pub use aos_types::InvocationStatus;

/// The outcome written onto an invocation once it is known.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = mcp_tool_invocations)]
pub struct McpInvocationChanges {
    pub status: Option<String>,
    pub error_code: Option<Option<String>>,
    pub error_message: Option<Option<String>>,
    pub policy_decision: Option<Option<String>>,
    pub output_hash: Option<Option<String>>,
    pub output_bytes: Option<Option<i64>>,
    pub completed_at: Option<Option<DbTime>>,
    pub duration_ms: Option<Option<i64>>,
    pub incident_id: Option<Option<DbUuid>>,
}
