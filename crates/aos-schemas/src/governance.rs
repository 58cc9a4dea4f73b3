//! Governed invocation, approvals, the audit chain, incidents and policy.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::mcp::RiskLevel;

type Time = OffsetDateTime;

/// `POST .../tools/{tool_id}/invoke`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvokeToolRequest {
    /// The tool's arguments; validated against its input schema.
    #[serde(default = "empty_object")]
    pub input: Value,
    #[serde(default)]
    pub run_id: Option<String>,
    #[serde(default)]
    pub step_index: Option<i32>,
    #[serde(default)]
    pub actor_id: Option<String>,
    /// `machine` (default), `human`, `agent` or `system`.
    #[serde(default)]
    pub actor_type: Option<String>,
    #[serde(default)]
    pub trace_id: Option<String>,
}

impl InvokeToolRequest {
    /// A call with these arguments and no run, actor or trace details.
    pub fn new(input: Value) -> Self {
        Self {
            input,
            run_id: None,
            step_index: None,
            actor_id: None,
            actor_type: None,
            trace_id: None,
        }
    }
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InvocationStatus {
    Success,
    Failure,
    Blocked,
    Timeout,
    PendingApproval,
    /// Sent; no outcome recorded yet.
    Running,
}

/// The outcome of a governed invocation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InvocationResult {
    pub invocation_id: Uuid,
    pub tool_id: Uuid,
    pub server_id: Uuid,
    pub status: InvocationStatus,
    /// The tool's result (`content`, `structuredContent`, `isError`).
    #[serde(default)]
    pub output: Option<Value>,
    #[serde(default)]
    pub error_code: Option<String>,
    #[serde(default)]
    pub error_message: Option<String>,
    #[serde(default)]
    pub duration_ms: Option<i64>,
    /// `allowed`, `blocked`, `flagged`, `pending_approval` or `approved`.
    pub policy_decision: String,
    #[serde(default)]
    pub policy_id: Option<String>,
    #[serde(default)]
    pub policy_revision: Option<String>,
    #[serde(default)]
    pub decision_id: Option<String>,
    /// Why the policy denied or asked for approval.
    #[serde(default)]
    pub reasons: Vec<String>,
    #[serde(default)]
    pub incident_id: Option<Uuid>,
    #[serde(default)]
    pub approval_id: Option<Uuid>,
    pub input_hash: String,
    #[serde(default)]
    pub output_hash: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ApprovalStatus {
    Pending,
    Approved,
    Denied,
    Expired,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Approval {
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// `mcp.tool_invocation` for gated tool calls.
    pub subject_type: String,
    pub subject_id: String,
    pub status: ApprovalStatus,
    #[serde(default)]
    pub reason: Option<String>,
    pub context: Value,
    pub requested_by: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Time,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Time,
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub decided_at: Option<Time>,
    #[serde(default)]
    pub decided_by: Option<String>,
    #[serde(default)]
    pub decision_reason: Option<String>,
}

/// `POST /api/v1/approvals`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApprovalRequest {
    pub subject_type: String,
    pub subject_id: String,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub context: Option<Value>,
    /// Seconds until it expires (default: `approvals.ttl_secs`), 60 to 2592000.
    #[serde(default)]
    pub ttl_secs: Option<u64>,
}

/// `POST /api/v1/approvals/{id}/approve|deny`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecideApprovalRequest {
    #[serde(default)]
    pub reason: Option<String>,
}

/// A decision and, for a gated tool call, what became of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ApprovalDecision {
    pub approval: Approval,
    #[serde(default)]
    pub invocation: Option<InvocationResult>,
}

/// Query of `GET /api/v1/approvals`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListApprovalsQuery {
    pub status: Option<ApprovalStatus>,
    #[param(minimum = 1, maximum = 200)]
    #[schema(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditEvent {
    pub id: Uuid,
    pub seq: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub occurred_at: Time,
    pub actor_type: String,
    #[serde(default)]
    pub actor_id: Option<String>,
    pub event_type: String,
    pub subject_type: String,
    #[serde(default)]
    pub subject_id: Option<String>,
    #[serde(default)]
    pub decision: Option<String>,
    #[serde(default)]
    pub policy_revision: Option<String>,
    pub details: Value,
    pub prev_hash: String,
    pub event_hash: String,
}

/// Query of `GET /api/v1/audit/events`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListAuditQuery {
    pub event_type: Option<String>,
    pub subject_type: Option<String>,
    pub subject_id: Option<String>,
    pub actor_id: Option<String>,
    /// RFC 3339; inclusive.
    pub since: Option<String>,
    /// RFC 3339; exclusive.
    pub until: Option<String>,
    /// 1 to 500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    #[schema(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// `GET /api/v1/audit/verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditVerification {
    pub valid: bool,
    pub length: i64,
    pub head_hash: String,
    #[serde(default)]
    pub first_bad_seq: Option<i64>,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Incident {
    pub id: Uuid,
    /// `INVOCATION_FAILED`, `INVOCATION_TIMEOUT`, `POLICY_ERROR` or `TOOL_DRIFT`.
    pub kind: String,
    pub severity: RiskLevel,
    /// `OPEN` or `RESOLVED`.
    pub status: String,
    pub title: String,
    pub details: Value,
    #[serde(default)]
    pub server_id: Option<Uuid>,
    #[serde(default)]
    pub tool_id: Option<Uuid>,
    #[serde(default)]
    pub invocation_id: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Time,
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub resolved_at: Option<Time>,
    #[serde(default)]
    pub resolved_by: Option<String>,
    #[serde(default)]
    pub resolution: Option<String>,
}

/// Query of `GET /api/v1/incidents`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListIncidentsQuery {
    /// `OPEN` or `RESOLVED`.
    pub status: Option<String>,
    pub kind: Option<String>,
    pub severity: Option<RiskLevel>,
    pub server_id: Option<Uuid>,
    pub tool_id: Option<Uuid>,
    #[param(minimum = 1, maximum = 200)]
    #[schema(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// `POST /api/v1/incidents/{id}/resolve`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveIncidentRequest {
    #[serde(default)]
    pub resolution: Option<String>,
}

/// A stored Rego module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PolicyModule {
    /// `aos.platform` or `aos.tenant`.
    pub package: String,
    pub source: String,
    pub revision: String,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Time,
}

/// `PUT /api/v1/policy` and `PUT /api/v1/admin/policy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutPolicyRequest {
    /// Rego v1 source declaring `package aos.tenant` (tenant) or `package aos.platform`
    /// (platform), with rules `deny`, `require_approval`, `flag` (sets of strings).
    pub source: String,
}

/// A tenant's governance settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GovernanceSettings {
    /// HIGH-risk tools need an approval (default true).
    pub high_requires_approval: bool,
    /// Newly discovered tools start enabled up to this risk (default MEDIUM).
    pub auto_enable_max_risk: RiskLevel,
}

/// `PATCH /api/v1/policy/settings`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateGovernanceSettings {
    #[serde(default)]
    pub high_requires_approval: Option<bool>,
    #[serde(default)]
    pub auto_enable_max_risk: Option<RiskLevel>,
}

/// `GET /api/v1/policy`: what decides a tenant's tool calls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PolicyOverview {
    /// `embedded` or `opa`.
    pub engine: String,
    /// The shipped default module (package `aos.invoke`), when embedded.
    #[serde(default)]
    pub default_source: Option<String>,
    #[serde(default)]
    pub platform: Option<PolicyModule>,
    #[serde(default)]
    pub tenant: Option<PolicyModule>,
    pub settings: GovernanceSettings,
}

/// `GET .../mcp-servers/{id}/manifest`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SignedManifest {
    pub server_id: Uuid,
    /// The compact JWS (ES256); verify it with `/.well-known/jwks.json`.
    pub manifest: String,
    pub kid: String,
    /// The verified payload.
    pub payload: Value,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub issued_at: Time,
}
