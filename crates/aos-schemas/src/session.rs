//! `GET /api/v1/session/context`: who the server thinks is calling.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::tenants::{OnboardingState, TenantStatus};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuthType {
    /// The platform operator (`founder` on the wire, as since the first release).
    #[serde(rename = "founder")]
    #[schema(rename = "founder")]
    Operator,
    /// A tenant user with a JWT from the customer's identity provider.
    Human,
    /// An API key.
    Machine,
    /// An agent's API key (`agent_id` names the agent).
    Agent,
    /// A customer integration's key (`X-CUS-Integration-Key`).
    Integration,
}

/// The verified context of the caller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SessionContext {
    pub auth_type: AuthType,
    /// The agent whose key this is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<Uuid>,
    /// Absent for the platform operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<Uuid>,
    /// `founder`, the user id from the token, or the key id.
    pub actor_id: String,
    /// Roles from the token (humans only).
    #[serde(default)]
    pub roles: Vec<String>,
    /// Effective scopes (`admin` implies every scope of the tenant).
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_status: Option<TenantStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onboarding_state: Option<OnboardingState>,
    /// When the calling API key expires, if it does.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub key_expires_at: Option<OffsetDateTime>,
}
