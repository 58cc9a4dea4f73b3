//! A tenant's governance settings, kept under `governance` in the tenant's settings
//! document.

use aos_drivers::{Conn, tenants as tenant_db};
use aos_models::mcp::RiskLevel;
use aos_models::tenant::TenantChanges;
use aos_models::{DbJson, DbTime};
use serde_json::{Value, json};

use crate::error::{EngineError, EngineResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GovernanceSettings {
    /// HIGH-risk tools need an approval (the default policy reads this).
    pub high_requires_approval: bool,
    /// Newly discovered tools start enabled up to this risk.
    pub auto_enable_max_risk: RiskLevel,
}

impl Default for GovernanceSettings {
    fn default() -> Self {
        Self {
            high_requires_approval: true,
            auto_enable_max_risk: RiskLevel::Medium,
        }
    }
}

impl GovernanceSettings {
    /// Reads the settings out of a tenant's settings document; absent or unreadable
    /// values take the (safe) defaults.
    pub fn from_document(settings: &Value) -> Self {
        let defaults = Self::default();
        let g = settings.get("governance");
        Self {
            high_requires_approval: g
                .and_then(|g| g.get("high_requires_approval"))
                .and_then(Value::as_bool)
                .unwrap_or(defaults.high_requires_approval),
            auto_enable_max_risk: g
                .and_then(|g| g.get("auto_enable_max_risk"))
                .and_then(Value::as_str)
                .and_then(RiskLevel::parse)
                .unwrap_or(defaults.auto_enable_max_risk),
        }
    }

    pub fn to_json(self) -> Value {
        json!({
            "high_requires_approval": self.high_requires_approval,
            "auto_enable_max_risk": self.auto_enable_max_risk.as_str(),
        })
    }
}

pub async fn get(conn: &mut Conn, tenant: uuid::Uuid) -> EngineResult<GovernanceSettings> {
    let row = tenant_db::get(conn, tenant.into())
        .await
        .map_err(|_| EngineError::NotFound("tenant"))?;
    Ok(GovernanceSettings::from_document(&row.settings.0))
}

/// Changes the given settings; the rest stay.
pub async fn update(
    conn: &mut Conn,
    tenant: uuid::Uuid,
    high_requires_approval: Option<bool>,
    auto_enable_max_risk: Option<RiskLevel>,
) -> EngineResult<GovernanceSettings> {
    let row = tenant_db::get(conn, tenant.into())
        .await
        .map_err(|_| EngineError::NotFound("tenant"))?;
    let mut current = GovernanceSettings::from_document(&row.settings.0);
    if let Some(v) = high_requires_approval {
        current.high_requires_approval = v;
    }
    if let Some(v) = auto_enable_max_risk {
        current.auto_enable_max_risk = v;
    }
    let mut document = match row.settings.0 {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    document.insert("governance".into(), current.to_json());
    let changes = TenantChanges {
        settings: Some(DbJson(Value::Object(document))),
        updated_at: Some(DbTime::now()),
        ..TenantChanges::default()
    };
    tenant_db::update(conn, tenant.into(), &changes).await?;
    Ok(current)
}
