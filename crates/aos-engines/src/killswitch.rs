//! The kill switch: freeze a tenant or one API key, with a reason, and refuse its
//! governed traffic before anything goes upstream.
//!
//! The state lives in `killswitch_state`; each change is an audit event in the tenant's
//! chain (`KILLSWITCH_FROZEN` / `KILLSWITCH_UNFROZEN`), which is also its history. The
//! request path never reads the database: every replica keeps the frozen set in memory
//! ([`KillSwitch`]), applies its own changes at once and re-reads the set from the
//! database every poll interval (a fraction of a second), so a freeze made anywhere
//! takes effect everywhere within that interval.

use aos_types::{AuditEventType, SubjectKind};
use std::collections::HashMap;
use std::sync::RwLock;

use aos_drivers::{Conn, killswitch as db};
pub use aos_models::killswitch::KillSwitchRow as StateRow;
use aos_models::killswitch::{ENTITY_AGENT, ENTITY_KEY, ENTITY_TENANT, KillSwitchRow};
use aos_models::{DbTime, DbUuid};
use serde_json::json;
use uuid::Uuid;

use crate::error::{EngineError, EngineResult};
use crate::governance::audit::{self, Actor, Event};

/// What can be frozen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Entity {
    Tenant(Uuid),
    Key(Uuid),
    /// An agent: all its keys, on every surface.
    Agent(Uuid),
}

impl Entity {
    pub fn kind(self) -> &'static str {
        match self {
            Self::Tenant(_) => ENTITY_TENANT,
            Self::Key(_) => ENTITY_KEY,
            Self::Agent(_) => ENTITY_AGENT,
        }
    }

    pub fn id(self) -> Uuid {
        match self {
            Self::Tenant(id) | Self::Key(id) | Self::Agent(id) => id,
        }
    }

    fn of(row: &KillSwitchRow) -> Option<Self> {
        match row.entity_type.as_str() {
            ENTITY_TENANT => Some(Self::Tenant(row.entity_id.0)),
            ENTITY_KEY => Some(Self::Key(row.entity_id.0)),
            ENTITY_AGENT => Some(Self::Agent(row.entity_id.0)),
            _ => None,
        }
    }
}

/// Why an entity is frozen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frozen {
    pub entity: Entity,
    pub reason: Option<String>,
    pub by: String,
    pub since: DbTime,
}

/// One replica's view of what is frozen. Cheap to read on every request.
#[derive(Debug)]
pub struct KillSwitch {
    frozen: RwLock<HashMap<Entity, Frozen>>,
    /// Bumped whenever the frozen set changes, so long-running work (streams in flight)
    /// can re-check at once instead of polling.
    generation: tokio::sync::watch::Sender<u64>,
}

impl Default for KillSwitch {
    fn default() -> Self {
        Self {
            frozen: RwLock::new(HashMap::new()),
            generation: tokio::sync::watch::channel(0).0,
        }
    }
}

fn frozen_of(row: &KillSwitchRow) -> Option<Frozen> {
    let entity = Entity::of(row)?;
    row.frozen.then(|| Frozen {
        entity,
        reason: row.reason.clone(),
        by: row.changed_by.clone(),
        since: row.changed_at,
    })
}

impl KillSwitch {
    pub fn new() -> Self {
        Self::default()
    }

    /// The freeze that stops this caller, if any: the tenant's first, then the agent's,
    /// then the key's.
    pub fn check(&self, tenant: Uuid, key: Option<Uuid>, agent: Option<Uuid>) -> Option<Frozen> {
        let frozen = self.frozen.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        frozen
            .get(&Entity::Tenant(tenant))
            .or_else(|| agent.and_then(|a| frozen.get(&Entity::Agent(a))))
            .or_else(|| key.and_then(|k| frozen.get(&Entity::Key(k))))
            .cloned()
    }

    /// Whether this exact entity is frozen (not counting its tenant).
    pub fn is_frozen(&self, entity: Entity) -> bool {
        self.frozen
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains_key(&entity)
    }

    /// Applies a committed change on this replica at once.
    pub fn apply(&self, row: &KillSwitchRow) {
        let Some(entity) = Entity::of(row) else { return };
        let mut frozen = self.frozen.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let changed = match frozen_of(row) {
            Some(f) => frozen.insert(entity, f).is_none(),
            None => frozen.remove(&entity).is_some(),
        };
        drop(frozen);
        if changed {
            self.generation.send_modify(|g| *g += 1);
        }
    }

    /// Notified on every change of the frozen set (see [`KillSwitch::check`] after it).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Replaces the snapshot with the database's frozen set.
    pub async fn refresh(&self, conn: &mut Conn) -> EngineResult<()> {
        let rows = db::frozen(conn).await?;
        let next: HashMap<Entity, Frozen> = rows
            .iter()
            .filter_map(|row| frozen_of(row).map(|f| (f.entity, f)))
            .collect();
        let mut frozen = self.frozen.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let changed = frozen.len() != next.len() || next.keys().any(|k| !frozen.contains_key(k));
        *frozen = next;
        drop(frozen);
        if changed {
            self.generation.send_modify(|g| *g += 1);
        }
        Ok(())
    }
}

const MAX_REASON: usize = 500;

/// Freezes `entity` of `tenant` (409 if it already is). Returns the new state; the caller
/// applies it to its [`KillSwitch`] after commit.
pub async fn freeze(
    conn: &mut Conn,
    tenant: Uuid,
    entity: Entity,
    reason: Option<String>,
    actor: &Actor,
) -> EngineResult<KillSwitchRow> {
    if let Some(reason) = &reason
        && (reason.chars().count() > MAX_REASON || reason.chars().any(char::is_control))
    {
        return Err(EngineError::invalid(
            "reason",
            "at most 500 characters, no control characters",
        ));
    }
    change(conn, tenant, entity, true, reason, actor).await
}

/// Unfreezes `entity` of `tenant` (409 if it is not frozen). A freeze the platform
/// operator made is lifted by the operator only (`by_operator`).
pub async fn unfreeze(
    conn: &mut Conn,
    tenant: Uuid,
    entity: Entity,
    actor: &Actor,
    by_operator: bool,
) -> EngineResult<KillSwitchRow> {
    if !by_operator {
        let current = db::get(conn, tenant.into(), entity.kind(), entity.id().into()).await?;
        if current.is_some_and(|row| row.frozen && row.changed_by == aos_types::ActorKind::Operator.as_str()) {
            return Err(EngineError::Forbidden(
                "the platform operator froze this; only the operator can unfreeze it".into(),
            ));
        }
    }
    change(conn, tenant, entity, false, None, actor).await
}

async fn change(
    conn: &mut Conn,
    tenant: Uuid,
    entity: Entity,
    frozen: bool,
    reason: Option<String>,
    actor: &Actor,
) -> EngineResult<KillSwitchRow> {
    let current = db::get(conn, tenant.into(), entity.kind(), entity.id().into()).await?;
    let is_frozen = current.as_ref().is_some_and(|row| row.frozen);
    if is_frozen == frozen {
        let what = if frozen { "already frozen" } else { "not frozen" };
        return Err(EngineError::Conflict(format!("this {} is {what}", entity.kind())));
    }
    let row = KillSwitchRow {
        entity_type: entity.kind().to_owned(),
        entity_id: DbUuid(entity.id()),
        tenant_id: tenant.into(),
        frozen,
        reason: if frozen {
            reason
        } else {
            current.and_then(|row| row.reason)
        },
        changed_by: actor.name(),
        changed_at: DbTime::now(),
    };
    db::put(conn, &row).await?;
    audit::append(
        conn,
        tenant,
        actor,
        Event {
            event_type: if frozen {
                AuditEventType::KillSwitchFrozen
            } else {
                AuditEventType::KillSwitchUnfrozen
            },
            subject_type: match entity {
                Entity::Tenant(_) => SubjectKind::Tenant,
                Entity::Key(_) => SubjectKind::ApiKey,
                Entity::Agent(_) => SubjectKind::Agent,
            },
            subject_id: Some(entity.id().to_string()),
            decision: None,
            policy_revision: None,
            details: json!({"reason": row.reason}),
        },
    )
    .await?;
    Ok(row)
}

/// The tenant a key belongs to: within `tenant` when given (404 otherwise), any for the
/// platform operator.
pub async fn key_tenant(conn: &mut Conn, tenant: Option<Uuid>, key: Uuid) -> EngineResult<Uuid> {
    let row = match tenant {
        Some(tenant) => aos_drivers::api_keys::get(conn, tenant.into(), key.into()).await?,
        None => aos_drivers::api_keys::get_any(conn, key.into()).await?,
    };
    Ok(row.tenant_id.0)
}

/// Checks the agent is the tenant's (404 otherwise) and returns the tenant.
pub async fn agent_tenant(conn: &mut Conn, tenant: Uuid, agent: Uuid) -> EngineResult<Uuid> {
    crate::agents::get(conn, tenant.into(), agent.into()).await?;
    Ok(tenant)
}

/// The tenant's kill-switch rows (current state of everything ever frozen).
pub async fn states(conn: &mut Conn, tenant: Uuid) -> EngineResult<Vec<KillSwitchRow>> {
    Ok(db::of_tenant(conn, tenant.into()).await?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn row(entity: Entity, frozen: bool) -> KillSwitchRow {
        KillSwitchRow {
            entity_type: entity.kind().into(),
            entity_id: DbUuid(entity.id()),
            tenant_id: DbUuid(Uuid::nil()),
            frozen,
            reason: Some("runaway".into()),
            changed_by: "ops".into(),
            changed_at: DbTime::now(),
        }
    }

    #[test]
    fn the_tenant_freeze_wins_and_unfreezing_clears() {
        let (tenant, key, other) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let switch = KillSwitch::new();
        assert!(switch.check(tenant, Some(key), None).is_none());
        switch.apply(&row(Entity::Key(key), true));
        assert_eq!(switch.check(tenant, Some(key), None).unwrap().entity, Entity::Key(key));
        assert!(switch.check(tenant, Some(other), None).is_none());
        assert!(switch.check(tenant, None, None).is_none());
        switch.apply(&row(Entity::Tenant(tenant), true));
        assert_eq!(
            switch.check(tenant, Some(key), None).unwrap().entity,
            Entity::Tenant(tenant)
        );
        assert_eq!(
            switch.check(tenant, None, None).unwrap().reason.as_deref(),
            Some("runaway")
        );
        switch.apply(&row(Entity::Tenant(tenant), false));
        switch.apply(&row(Entity::Key(key), false));
        assert!(switch.check(tenant, Some(key), None).is_none());
        // An agent's freeze stops every key of the agent, and nothing else.
        let agent = Uuid::now_v7();
        switch.apply(&row(Entity::Agent(agent), true));
        assert_eq!(
            switch.check(tenant, Some(key), Some(agent)).unwrap().entity,
            Entity::Agent(agent)
        );
        assert_eq!(
            switch.check(tenant, Some(other), Some(agent)).unwrap().entity,
            Entity::Agent(agent)
        );
        assert!(switch.check(tenant, Some(key), None).is_none());
        assert!(switch.check(tenant, Some(key), Some(other)).is_none());
    }
}
