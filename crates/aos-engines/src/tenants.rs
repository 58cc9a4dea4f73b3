//! Tenant lifecycle: creation, status transitions and onboarding progress.
//!
//! Rules: names are 1 to 200 characters after trimming, without control characters, and
//! unique ignoring case. TERMINATED is final. Onboarding only moves forward.

use aos_drivers::{Conn, DriverError, auth_epoch, tenants as db};
use aos_models::DbJson;
use aos_models::tenant::{NewTenant, TenantChanges};

pub use aos_models::tenant::{OnboardingState, TenantRow as Tenant, TenantStatus};
pub use aos_models::{DbTime, DbUuid};

use crate::error::{EngineError, EngineResult};

/// Largest page a list may ask for.
pub const MAX_PAGE: u32 = 200;

fn validate_name(name: &str) -> EngineResult<String> {
    let name = name.trim();
    if name.is_empty() {
        return Err(EngineError::invalid("name", "must not be empty"));
    }
    if name.chars().count() > 200 {
        return Err(EngineError::invalid("name", "must be at most 200 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(EngineError::invalid("name", "must not contain control characters"));
    }
    Ok(name.to_owned())
}

fn name_conflict(err: DriverError, name: &str) -> EngineError {
    match err {
        DriverError::Conflict(_) => EngineError::Conflict(format!("a tenant named {name:?} already exists")),
        other => other.into(),
    }
}

/// Creates an ACTIVE tenant in onboarding state CREATED.
pub async fn create(conn: &mut Conn, name: &str) -> EngineResult<Tenant> {
    let name = validate_name(name)?;
    let now = DbTime::now();
    let new = NewTenant {
        id: DbUuid::new_v7(),
        name: name.clone(),
        status: TenantStatus::Active.as_str().to_owned(),
        onboarding_state: OnboardingState::Created.as_str().to_owned(),
        settings: DbJson(serde_json::json!({})),
        created_at: now,
        updated_at: now,
    };
    db::insert(conn, &new).await.map_err(|e| name_conflict(e, &name))
}

pub async fn get(conn: &mut Conn, id: uuid::Uuid) -> EngineResult<Tenant> {
    db::get(conn, id.into()).await.map_err(|e| match e {
        DriverError::NotFound => EngineError::NotFound("tenant"),
        other => other.into(),
    })
}

/// A keyset cursor over `(created_at, id)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: DbTime,
    pub id: DbUuid,
}

/// One page of tenants and the cursor of the next, if any.
pub async fn list(
    conn: &mut Conn,
    after: Option<Cursor>,
    limit: u32,
) -> EngineResult<(Vec<Tenant>, Option<Cursor>, u64)> {
    let limit = limit.clamp(1, MAX_PAGE);
    // Fetch one extra row to know whether another page exists.
    let rows = db::list(conn, after.map(|c| (c.created_at, c.id)), i64::from(limit) + 1).await?;
    let (rows, next) = crate::paging::split(rows, limit, |r| Cursor {
        created_at: r.created_at,
        id: r.id,
    });
    let total = u64::try_from(db::count(conn).await?).unwrap_or(0);
    Ok((rows, next, total))
}

/// A requested change to a tenant.
#[derive(Debug, Clone, Default)]
pub struct TenantUpdate {
    pub name: Option<String>,
    pub status: Option<TenantStatus>,
    pub onboarding: Option<OnboardingState>,
}

/// Applies `update` after checking the lifecycle rules against the current row.
pub async fn update(conn: &mut Conn, id: uuid::Uuid, update: TenantUpdate) -> EngineResult<Tenant> {
    let current = get(conn, id).await?;
    let mut changes = TenantChanges::default();
    if let Some(name) = &update.name {
        changes.name = Some(validate_name(name)?);
    }
    if let Some(next) = update.status {
        let now = current.status();
        if now == TenantStatus::Terminated && next != TenantStatus::Terminated {
            return Err(EngineError::Conflict("a TERMINATED tenant cannot change status".into()));
        }
        changes.status = Some(next.as_str().to_owned());
    }
    if let Some(next) = update.onboarding {
        if next < current.onboarding() {
            return Err(EngineError::Conflict(format!(
                "onboarding only moves forward (now {}, asked {})",
                current.onboarding().as_str(),
                next.as_str()
            )));
        }
        changes.onboarding_state = Some(next.as_str().to_owned());
    }
    changes.updated_at = Some(DbTime::now());
    let name = changes.name.clone().unwrap_or_default();
    let updated = db::update(conn, current.id.into(), &changes)
        .await
        .map_err(|e| name_conflict(e, &name))?;
    if updated.status != current.status {
        // Credentials of this tenant are cached on every replica: make them look again.
        auth_epoch::bump(conn).await?;
    }
    Ok(updated)
}
