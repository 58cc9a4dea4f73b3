//! Agents: tenant-scoped identities whose capabilities select tools of the governed
//! catalog, and the signed manifests of those capabilities.

use aos_types::AgentStatus;
use diesel::prelude::*;

use crate::schema::{agent_manifests, agents};
use crate::types::{DbJson, DbTime, DbUuid};

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable, Insertable)]
#[diesel(table_name = agents)]
pub struct AgentRow {
    pub id: DbUuid,
    pub tenant_id: DbUuid,
    pub name: String,
    pub description: Option<String>,
    pub owner: Option<String>,
    /// An [`AgentStatus`]; read it with [`AgentRow::status`].
    pub status: String,
    /// A JSON array of capability selectors (see `aos_engines::agents::capability`).
    pub capabilities: DbJson,
    /// When set, the agent may call only tools whose current hash is the one in its
    /// latest manifest.
    pub manifest_pinned: bool,
    pub created_by: String,
    pub created_at: DbTime,
    pub updated_at: DbTime,
}

impl AgentRow {
    /// The stored status, read leniently: an unknown value reads as `Disabled` (its keys
    /// refused, the agent still listed).
    pub fn status(&self) -> AgentStatus {
        AgentStatus::parse(&self.status).unwrap_or(AgentStatus::Disabled)
    }
}

/// Columns an update may change; `None` leaves a column as it is.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = agents)]
pub struct AgentChanges {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub owner: Option<Option<String>>,
    pub status: Option<String>,
    pub capabilities: Option<DbJson>,
    pub manifest_pinned: Option<bool>,
    pub updated_at: Option<DbTime>,
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable, Insertable)]
#[diesel(table_name = agent_manifests)]
pub struct AgentManifestRow {
    pub id: DbUuid,
    pub tenant_id: DbUuid,
    pub agent_id: DbUuid,
    /// 1, 2, … per agent.
    pub version: i64,
    /// The compact JWS (ES256) of `payload`.
    pub jws: String,
    pub payload: DbJson,
    pub issued_by: String,
    pub issued_at: DbTime,
}
