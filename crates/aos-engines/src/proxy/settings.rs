//! A tenant's proxy settings: guardrails, budgets (daily and monthly, for the tenant and
//! per key) and a per-key rate limit. Stored as one JSON document per tenant
//! (`proxy_settings`), cached on each replica for a short time so the request path does
//! not read the database.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aos_drivers::{Conn, proxy as db};
use aos_models::proxy::ProxySettingsRow;
use aos_models::{DbJson, DbTime};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::guardrails::GuardrailSettings;
use crate::error::{EngineError, EngineResult};

/// Spend limits in micro-dollars (UTC days and calendar months); none: unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Budget {
    pub daily_limit_micros: Option<i64>,
    pub monthly_limit_micros: Option<i64>,
}

impl Budget {
    fn validate(&self, key: &str) -> EngineResult<()> {
        for (name, value) in [
            ("daily_limit_micros", self.daily_limit_micros),
            ("monthly_limit_micros", self.monthly_limit_micros),
        ] {
            if value.is_some_and(|v| v < 0) {
                return Err(EngineError::Invalid {
                    field: "budgets".into(),
                    message: format!("{key}.{name} must not be negative"),
                });
            }
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.daily_limit_micros.is_none() && self.monthly_limit_micros.is_none()
    }
}

/// The settings document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenantSettings {
    pub guardrails: GuardrailSettings,
    /// The tenant's limits (all its keys together).
    pub budget: Budget,
    /// Limits of single keys, by key id.
    pub key_budgets: BTreeMap<Uuid, Budget>,
    /// Limits of single agents (all their keys together), by agent id.
    pub agent_budgets: BTreeMap<Uuid, Budget>,
    /// Requests per minute per API key, on each replica (none: unlimited).
    pub rate_limit_per_minute: Option<u32>,
}

impl TenantSettings {
    pub fn validate(&self) -> EngineResult<()> {
        self.guardrails
            .validate()
            .map_err(|(field, message)| EngineError::Invalid {
                field: field.into(),
                message,
            })?;
        self.budget.validate("budget")?;
        for (key, budget) in &self.key_budgets {
            budget.validate(&format!("key_budgets.{key}"))?;
        }
        if self.key_budgets.len() > 10_000 {
            return Err(EngineError::invalid("key_budgets", "at most 10000 keys"));
        }
        for (agent, budget) in &self.agent_budgets {
            budget.validate(&format!("agent_budgets.{agent}"))?;
        }
        if self.agent_budgets.len() > 10_000 {
            return Err(EngineError::invalid("agent_budgets", "at most 10000 agents"));
        }
        if self.rate_limit_per_minute == Some(0) {
            return Err(EngineError::invalid("rate_limit_per_minute", "must be at least 1"));
        }
        Ok(())
    }
}

/// Reads the tenant's settings (defaults when it never saved any).
pub async fn load(conn: &mut Conn, tenant: Uuid) -> EngineResult<TenantSettings> {
    match db::get_settings(conn, tenant.into()).await? {
        None => Ok(TenantSettings::default()),
        Some(row) => serde_json::from_value(row.settings.0)
            .map_err(|e| EngineError::Internal(format!("stored proxy settings of {tenant} are unreadable: {e}"))),
    }
}

/// Validates and stores the tenant's settings.
pub async fn save(conn: &mut Conn, tenant: Uuid, settings: &TenantSettings, by: &str) -> EngineResult<()> {
    settings.validate()?;
    crate::tenants::get(conn, tenant).await?;
    let document = serde_json::to_value(settings).map_err(|e| EngineError::Internal(e.to_string()))?;
    db::put_settings(
        conn,
        &ProxySettingsRow {
            tenant_id: tenant.into(),
            settings: DbJson(document),
            updated_by: by.to_owned(),
            updated_at: DbTime::now(),
        },
    )
    .await?;
    Ok(())
}

/// Each replica's short-lived copy of tenants' settings.
#[derive(Debug)]
pub struct SettingsCache {
    ttl: Duration,
    entries: Mutex<HashMap<Uuid, (Instant, Arc<TenantSettings>)>>,
}

impl SettingsCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn get(&self, tenant: Uuid) -> Option<Arc<TenantSettings>> {
        let entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        entries
            .get(&tenant)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, s)| Arc::clone(s))
    }

    pub fn put(&self, tenant: Uuid, settings: Arc<TenantSettings>) {
        let mut entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() > 100_000 {
            entries.retain(|_, (at, _)| at.elapsed() < self.ttl);
        }
        entries.insert(tenant, (Instant::now(), settings));
    }
}

/// Fixed one-minute windows per key, on this replica.
#[derive(Debug, Default)]
pub struct RateLimiter {
    windows: Mutex<HashMap<Uuid, (u64, u32)>>,
}

/// The outcome of a rate-limit check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateState {
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the window resets.
    pub reset_secs: u64,
}

impl RateLimiter {
    fn minute_now() -> (u64, u64) {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        (secs / 60, 60 - secs % 60)
    }

    /// Counts one request of `key`; `Err` when the window is full.
    pub fn take(&self, key: Uuid, limit: u32) -> Result<RateState, RateState> {
        let (minute, reset_secs) = Self::minute_now();
        let mut windows = self.windows.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if windows.len() > 100_000 {
            windows.retain(|_, (m, _)| *m == minute);
        }
        let entry = windows.entry(key).or_insert((minute, 0));
        if entry.0 != minute {
            *entry = (minute, 0);
        }
        if entry.1 >= limit {
            return Err(RateState {
                limit,
                remaining: 0,
                reset_secs,
            });
        }
        entry.1 += 1;
        Ok(RateState {
            limit,
            remaining: limit - entry.1,
            reset_secs,
        })
    }

    /// The window of `key` without counting.
    pub fn peek(&self, key: Uuid, limit: u32) -> RateState {
        let (minute, reset_secs) = Self::minute_now();
        let windows = self.windows.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let used = windows.get(&key).filter(|(m, _)| *m == minute).map_or(0, |(_, n)| *n);
        RateState {
            limit,
            remaining: limit.saturating_sub(used),
            reset_secs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_validate_and_default_round_trips() {
        let defaults = TenantSettings::default();
        assert!(defaults.validate().is_ok());
        let json = serde_json::to_value(&defaults).unwrap();
        assert_eq!(serde_json::from_value::<TenantSettings>(json).unwrap(), defaults);
        let bad = TenantSettings {
            budget: Budget {
                daily_limit_micros: Some(-1),
                monthly_limit_micros: None,
            },
            ..TenantSettings::default()
        };
        assert!(bad.validate().is_err());
        assert!(serde_json::from_str::<TenantSettings>(r#"{"budgets": {}}"#).is_err());
    }

    #[test]
    fn the_rate_limiter_counts_per_key() {
        let limiter = RateLimiter::default();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        assert_eq!(limiter.take(a, 2).unwrap().remaining, 1);
        // The window could roll over between the calls; only a full window refuses.
        let second = limiter.take(a, 2);
        let third = limiter.take(a, 2);
        assert!(second.is_ok());
        assert!(third.is_err() || third.unwrap().remaining == 1);
        assert_eq!(limiter.take(b, 2).unwrap().remaining, 1);
    }
}
