//! The kill switch: freeze a tenant or one API key.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::governance::AuditEvent;

/// `POST /api/v1/killswitch/{tenants|keys}/{id}/freeze` (body optional).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FreezeRequest {
    /// Why; shown to the refused callers. At most 500 characters.
    #[serde(default)]
    pub reason: Option<String>,
}

/// One entity's kill-switch state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct KillSwitchState {
    /// `tenant` or `key`.
    pub entity_type: String,
    pub entity_id: Uuid,
    pub tenant_id: Uuid,
    pub frozen: bool,
    #[serde(default)]
    pub reason: Option<String>,
    /// Who made the last change.
    pub changed_by: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub changed_at: OffsetDateTime,
}

/// `GET /api/v1/killswitch`: a tenant's state and its history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct KillSwitchOverview {
    pub tenant_id: Uuid,
    /// Whether the tenant itself is frozen.
    pub tenant_frozen: bool,
    /// Keys frozen right now.
    pub frozen_keys: Vec<Uuid>,
    /// Every entity ever frozen, with its current state.
    pub states: Vec<KillSwitchState>,
    /// The changes, oldest first (`KILLSWITCH_FROZEN` / `KILLSWITCH_UNFROZEN` audit events).
    pub history: Vec<AuditEvent>,
}

/// Query of `GET /api/v1/killswitch`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct KillSwitchQuery {
    /// The platform operator names the tenant; tenant callers see their own.
    pub tenant_id: Option<Uuid>,
}
