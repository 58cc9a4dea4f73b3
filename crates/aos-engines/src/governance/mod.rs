//! Governance: the audit chain, policy, approvals, incidents and a tenant's governance
//! settings.

pub mod approvals;
pub mod audit;
pub mod incidents;
pub mod policy;
pub mod settings;

use aos_drivers::{Conn, governance as db};
use aos_models::{DbTime, DbUuid};
use aos_types::{AuditEventType, SubjectKind};

pub use aos_models::governance::{PLATFORM_OWNER, PolicyModuleRow as PolicyModule};

use crate::error::{EngineError, EngineResult};

/// The active platform module and, given a tenant, the tenant's.
pub async fn modules_of(
    conn: &mut Conn,
    tenant: Option<uuid::Uuid>,
) -> EngineResult<(Option<PolicyModule>, Option<PolicyModule>)> {
    let tenant_owner = tenant.map(|t| t.to_string());
    let mut owners = vec![PLATFORM_OWNER];
    if let Some(owner) = &tenant_owner {
        owners.push(owner);
    }
    let rows = db::active_policy_modules(conn, &owners).await?;
    let (mut platform, mut own) = (None, None);
    for row in rows {
        if row.owner == PLATFORM_OWNER {
            platform = Some(row);
        } else {
            own = Some(row);
        }
    }
    Ok((platform, own))
}

/// Validates and stores a module as the active one of its owner (the platform when
/// `tenant` is `None`), or removes the active one (`source: None`). A tenant change is
/// audited in the tenant's chain.
pub async fn put_module(
    conn: &mut Conn,
    tenant: Option<uuid::Uuid>,
    package: &'static str,
    source: Option<&str>,
    actor: &audit::Actor,
) -> EngineResult<Option<PolicyModule>> {
    let owner = tenant.map_or_else(|| PLATFORM_OWNER.to_owned(), |t| t.to_string());
    let now = DbTime::now();
    let new = match source {
        Some(source) => {
            let revision = policy::validate_module(package, source).map_err(|e| EngineError::invalid("source", e))?;
            Some(PolicyModule {
                id: DbUuid::new_v7(),
                owner: owner.clone(),
                source: source.to_owned(),
                revision,
                created_by: actor.name(),
                created_at: now,
                retired_at: None,
            })
        }
        None => None,
    };
    let stored = db::replace_policy_module(conn, &owner, new.as_ref(), now).await?;
    if let Some(tenant) = tenant {
        audit::append(
            conn,
            tenant,
            actor,
            audit::Event {
                event_type: if stored.is_some() {
                    AuditEventType::PolicyUpdated
                } else {
                    AuditEventType::PolicyRemoved
                },
                subject_type: SubjectKind::Policy,
                subject_id: Some(package.to_owned()),
                policy_revision: stored.as_ref().map(|m| m.revision.clone()),
                decision: None,
                details: serde_json::Value::Null,
            },
        )
        .await?;
    }
    Ok(stored)
}
