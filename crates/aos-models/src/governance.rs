//! Governance records: the per-tenant audit chain, approvals, incidents and policy
//! modules.

use aos_types::IncidentStatus;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use crate::schema::{approvals, audit_events, audit_heads, incidents, policy_modules};
use crate::types::{DbJson, DbTime, DbUuid};

/// One link of a tenant's audit chain. Never updated or deleted.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable, Insertable)]
#[diesel(table_name = audit_events)]
pub struct AuditEventRow {
    pub id: DbUuid,
    pub tenant_id: DbUuid,
    pub seq: i64,
    pub occurred_at: DbTime,
    pub actor_type: String,
    pub actor_id: Option<String>,
    pub event_type: String,
    pub subject_type: String,
    pub subject_id: Option<String>,
    pub decision: Option<String>,
    pub policy_revision: Option<String>,
    pub details: DbJson,
    pub prev_hash: String,
    pub event_hash: String,
}

/// The last link of a tenant's chain.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_heads)]
pub struct AuditHeadRow {
    pub tenant_id: DbUuid,
    pub seq: i64,
    pub head_hash: String,
}

/// Where an approval stands. Only PENDING moves, and only to one of the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ApprovalStatus {
    Pending,
    Approved,
    Denied,
    Expired,
}

impl ApprovalStatus {
    pub const ALL: [Self; 4] = [Self::Pending, Self::Approved, Self::Denied, Self::Expired];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Approved => "APPROVED",
            Self::Denied => "DENIED",
            Self::Expired => "EXPIRED",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str().eq_ignore_ascii_case(value))
    }
}

impl IncidentRow {
    /// The stored status, read leniently: an unknown value reads as `Open` (an incident
    /// nobody can tell is closed still needs a look).
    pub fn status(&self) -> IncidentStatus {
        IncidentStatus::parse(&self.status).unwrap_or(IncidentStatus::Open)
    }
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable, Insertable)]
#[diesel(table_name = approvals)]
pub struct ApprovalRow {
    pub id: DbUuid,
    pub tenant_id: DbUuid,
    /// `mcp.tool_invocation` for gated tool calls; free-form for generic requests.
    pub subject_type: String,
    pub subject_id: String,
    pub status: String,
    /// Why approval is needed.
    pub reason: Option<String>,
    pub context: DbJson,
    pub requested_by: String,
    pub created_at: DbTime,
    pub expires_at: DbTime,
    pub decided_at: Option<DbTime>,
    pub decided_by: Option<String>,
    pub decision_reason: Option<String>,
}

impl ApprovalRow {
    /// Unknown stored values read as `Expired`: never actionable.
    pub fn status(&self) -> ApprovalStatus {
        ApprovalStatus::parse(&self.status).unwrap_or(ApprovalStatus::Expired)
    }
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable, Insertable)]
#[diesel(table_name = incidents)]
pub struct IncidentRow {
    pub id: DbUuid,
    pub tenant_id: DbUuid,
    /// `INVOCATION_FAILED`, `INVOCATION_TIMEOUT`, `POLICY_ERROR`, `TOOL_DRIFT`.
    pub kind: String,
    /// A risk level: `LOW` .. `CRITICAL`.
    pub severity: String,
    /// An [`IncidentStatus`]; read it with [`IncidentRow::status`].
    pub status: String,
    pub title: String,
    pub details: DbJson,
    pub server_id: Option<DbUuid>,
    pub tool_id: Option<DbUuid>,
    pub invocation_id: Option<DbUuid>,
    pub created_at: DbTime,
    pub resolved_at: Option<DbTime>,
    pub resolved_by: Option<String>,
    pub resolution: Option<String>,
}

/// A Rego module: the platform's (`owner = "platform"`) or a tenant's (`owner` = its id).
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Identifiable, Insertable)]
#[diesel(table_name = policy_modules)]
pub struct PolicyModuleRow {
    pub id: DbUuid,
    pub owner: String,
    pub source: String,
    /// `sha256:` of the source, first 16 hex digits.
    pub revision: String,
    pub created_by: String,
    pub created_at: DbTime,
    pub retired_at: Option<DbTime>,
}

/// The owner of the platform policy module.
pub const PLATFORM_OWNER: &str = "platform";
