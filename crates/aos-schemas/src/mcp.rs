//! The MCP registry API: servers, their tools, health and invocations.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum McpTransport {
    /// Streamable HTTP.
    Http,
    /// The legacy HTTP+SSE transport.
    Sse,
    /// An operator-allowlisted command (`url = "stdio://NAME"`).
    Stdio,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum McpServerStatus {
    Pending,
    Active,
    Degraded,
    Offline,
    Deleted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RiskLevel {
    Low,
    Medium,
    High,
    Critical,
}

type Time = OffsetDateTime;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct McpServer {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub transport: McpTransport,
    pub status: McpServerStatus,
    /// Why the server is DEGRADED or OFFLINE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<String>,
    /// The server's declared capabilities, as negotiated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Value>,
    /// SHA-256 of the RFC 8785 canonical JSON of `capabilities`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities_hash: Option<String>,
    /// The credential's reference (never the credential).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_ref: Option<String>,
    pub metadata: Value,
    pub tool_count: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_timeout_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_bytes: Option<i64>,
    /// Governed calls per minute to this server, on each replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_calls_per_minute: Option<i32>,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Time,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Time,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub discovered_at: Option<Time>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_health_check_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_latency_ms: Option<i64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub deleted_at: Option<Time>,
}

fn default_transport() -> McpTransport {
    McpTransport::Http
}

fn yes() -> bool {
    true
}

/// `POST /api/v1/integrations/mcp-servers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterMcpServerRequest {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// `https://...` (HTTP, SSE) or `stdio://NAME` (STDIO).
    pub url: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default = "default_transport")]
    pub transport: McpTransport,
    /// `env://NAME`, `file:///path` or `vault://mount/path#field`; resolved per use.
    #[serde(default)]
    pub credential_ref: Option<String>,
    #[serde(default)]
    pub metadata: Option<Value>,
    /// Discover tools right away (default true).
    #[serde(default = "yes")]
    pub discover: bool,
    /// Budget for one tool call, 100 to 600000 ms (default: `mcp.call_timeout_ms`).
    #[serde(default)]
    pub call_timeout_ms: Option<u64>,
    /// Cap on one tool output, 1024 to 67108864 bytes (default: `mcp.max_output_bytes`).
    #[serde(default)]
    pub max_output_bytes: Option<u64>,
    /// Governed calls per minute to this server, 1 to 100000, on each replica (default:
    /// no cap). Calls over it are recorded BLOCKED (`RATE_LIMITED`) and never reach it.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 100000)]
    pub max_calls_per_minute: Option<u32>,
}

impl RegisterMcpServerRequest {
    /// A Streamable HTTP server with the defaults: discover now, server-wide limits.
    pub fn new(name: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            url: url.into(),
            description: None,
            transport: McpTransport::Http,
            credential_ref: None,
            metadata: None,
            discover: true,
            call_timeout_ms: None,
            max_output_bytes: None,
            max_calls_per_minute: None,
        }
    }
}

/// What registering did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct McpRegistration {
    pub server: McpServer,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery: Option<McpDiscovery>,
    /// Why the automatic discovery failed (the server stays registered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery_error: Option<String>,
}

/// What a discovery found and changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct McpDiscovery {
    pub server_id: Uuid,
    pub protocol_version: Option<String>,
    pub capabilities: Vec<String>,
    pub capabilities_hash: Option<String>,
    pub tools_found: usize,
    pub tools_added: usize,
    pub tools_updated: usize,
    /// Tools the server no longer lists, now marked unavailable.
    pub tools_removed: usize,
    /// Tools whose approved definition changed: disabled until an admin re-approves.
    pub tools_quarantined: usize,
    pub errors: Vec<String>,
}

/// `GET .../health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct McpHealth {
    pub server_id: Uuid,
    pub healthy: bool,
    pub status: McpServerStatus,
    pub latency_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct McpTool {
    pub id: Uuid,
    pub server_id: Uuid,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub input_schema: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Value>,
    pub risk_level: RiskLevel,
    /// `auto` (assessed) or `admin` (set explicitly; kept across rediscovery).
    pub risk_source: String,
    pub risk_reasons: Vec<String>,
    /// Tool-poisoning markers found in the definition.
    pub flags: Vec<String>,
    pub enabled: bool,
    pub requires_approval: bool,
    /// False once the server stopped listing the tool.
    pub available: bool,
    /// SHA-256 of the canonical JSON of name, description, schemas and annotations.
    pub tool_hash: String,
    /// The definition hash an admin approved by enabling the tool (none: never approved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_hash: Option<String>,
    /// The approved definition changed: disabled, calls denied, until re-enabled.
    pub quarantined: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantine_reason: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub discovered_at: Time,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Time,
}

/// `PUT .../tools/{tool_id}/risk`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetToolRiskRequest {
    pub risk_level: RiskLevel,
    #[serde(default)]
    pub requires_approval: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct McpInvocation {
    pub id: Uuid,
    pub server_id: Uuid,
    pub tool_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_index: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_id: Option<String>,
    pub actor_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_decision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_decision_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_revision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<Uuid>,
    /// SHA-256 of the RFC 8785 canonical JSON of the input.
    pub input_hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_hash: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub invoked_at: Time,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub completed_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
}

/// Query of `GET /api/v1/integrations/mcp-servers`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListServersQuery {
    /// Include soft-deleted servers (for audit).
    #[serde(default)]
    pub include_disabled: bool,
    #[param(minimum = 1, maximum = 200)]
    #[schema(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// Query of `GET .../tools`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListToolsQuery {
    /// Include tools the server no longer lists.
    #[serde(default)]
    pub include_unavailable: bool,
}

/// Query of `GET .../invocations`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InvocationsQuery {
    /// 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    #[schema(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

/// One entry of the tenant's MCP catalog (`GET /api/v1/mcp/catalog`): the name agents see
/// at `/mcp`, and the tool behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CatalogEntry {
    /// `{server}.{tool}`, within MCP's name rules.
    pub name: String,
    /// Set when this name had to change because another tool already had it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collided_with: Option<String>,
    pub server_id: Uuid,
    pub server_name: String,
    pub tool_id: Uuid,
    pub tool_name: String,
}
