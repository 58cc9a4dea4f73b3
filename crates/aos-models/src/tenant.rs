//! Tenants: the unit of isolation. Every other row belongs to exactly one tenant.

use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use crate::schema::tenants;
use crate::types::{DbJson, DbTime, DbUuid};

/// A stored tenant.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = tenants)]
pub struct TenantRow {
    pub id: DbUuid,
    pub name: String,
    /// A [`TenantStatus`] as text; read it with [`TenantRow::status`].
    pub status: String,
    /// A [`OnboardingState`] as text; read it with [`TenantRow::onboarding`].
    pub onboarding_state: String,
    pub settings: DbJson,
    pub created_at: DbTime,
    pub updated_at: DbTime,
}

impl TenantRow {
    /// The lifecycle status. An unknown stored value reads as `Suspended`: a tenant whose
    /// state we cannot interpret must not be served.
    pub fn status(&self) -> TenantStatus {
        TenantStatus::parse(&self.status).unwrap_or(TenantStatus::Suspended)
    }

    /// The onboarding state. An unknown stored value reads as `Created`, the earliest.
    pub fn onboarding(&self) -> OnboardingState {
        OnboardingState::parse(&self.onboarding_state).unwrap_or(OnboardingState::Created)
    }
}

/// A tenant to insert.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = tenants)]
pub struct NewTenant {
    pub id: DbUuid,
    pub name: String,
    pub status: String,
    pub onboarding_state: String,
    pub settings: DbJson,
    pub created_at: DbTime,
    pub updated_at: DbTime,
}

/// A partial update; `None` leaves the column alone.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = tenants)]
pub struct TenantChanges {
    pub name: Option<String>,
    pub status: Option<String>,
    pub onboarding_state: Option<String>,
    pub settings: Option<DbJson>,
    pub updated_at: Option<DbTime>,
}

/// Lifecycle status of a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TenantStatus {
    Active,
    Suspended,
    Terminated,
}

impl TenantStatus {
    pub const ALL: [TenantStatus; 3] = [Self::Active, Self::Suspended, Self::Terminated];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Suspended => "SUSPENDED",
            Self::Terminated => "TERMINATED",
        }
    }

    /// Parses the stored form, case-insensitively. `None` for anything else.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(value.trim()))
    }
}

/// How far a tenant has come through onboarding, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OnboardingState {
    Created,
    IdentityVerified,
    IntegrationConnected,
    Complete,
}

impl OnboardingState {
    pub const ALL: [OnboardingState; 4] = [
        Self::Created,
        Self::IdentityVerified,
        Self::IntegrationConnected,
        Self::Complete,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "CREATED",
            Self::IdentityVerified => "IDENTITY_VERIFIED",
            Self::IntegrationConnected => "INTEGRATION_CONNECTED",
            Self::Complete => "COMPLETE",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(value.trim()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(status: &str, onboarding: &str) -> TenantRow {
        TenantRow {
            id: DbUuid::new_v7(),
            name: "t".into(),
            status: status.into(),
            onboarding_state: onboarding.into(),
            settings: DbJson(serde_json::json!({})),
            created_at: DbTime::now(),
            updated_at: DbTime::now(),
        }
    }

    #[test]
    fn unknown_status_normalises_to_suspended() {
        assert_eq!(row("ACTIVE", "CREATED").status(), TenantStatus::Active);
        assert_eq!(row("active", "CREATED").status(), TenantStatus::Active);
        assert_eq!(row("DELETED???", "CREATED").status(), TenantStatus::Suspended);
        assert_eq!(row("", "CREATED").status(), TenantStatus::Suspended);
    }

    #[test]
    fn onboarding_states_are_ordered_and_unknown_is_created() {
        assert!(OnboardingState::Created < OnboardingState::Complete);
        assert_eq!(row("ACTIVE", "bogus").onboarding(), OnboardingState::Created);
        assert_eq!(row("ACTIVE", "complete").onboarding(), OnboardingState::Complete);
    }
}
