//! The credential cache: API keys (by hash) and tenant statuses, so that authenticating
//! a request costs no database round trip in the common case.
//!
//! Invalidation is by epoch. Every change that must revoke cached credentials (a key
//! revoked, a tenant's status changed) moves the `auth_epoch` counter in the same
//! transaction. Each replica polls the counter (see [`refresh`]) and, when it moved, drops
//! everything. An entry loaded concurrently with a change is only stored if the cache's
//! epoch has not moved since the load began, so a stale read can never outlive the
//! invalidation. Entries also expire after a TTL, which bounds staleness if the
//! database is unreachable.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use aos_drivers::{Conn, auth_epoch};
use aos_models::api_key::ApiKeyRow;
use aos_models::usage::IntegrationKeyRow;

use crate::error::EngineResult;
use crate::tenants::TenantStatus;
use aos_types::AgentStatus;

/// Past this many entries the cache starts over rather than grow without bound.
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug)]
pub struct CachedKey {
    pub key: ApiKeyRow,
    pub tenant_status: TenantStatus,
    /// For an agent's key: the agent's status when loaded.
    pub agent_status: Option<AgentStatus>,
    loaded: Instant,
}

/// Where a key's owners stood when it was loaded: its tenant and, for an agent's key,
/// the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    pub tenant: TenantStatus,
    pub agent: Option<AgentStatus>,
}

impl From<TenantStatus> for Standing {
    fn from(tenant: TenantStatus) -> Self {
        Self { tenant, agent: None }
    }
}

#[derive(Debug)]
pub struct CachedIntegrationKey {
    pub key: IntegrationKeyRow,
    pub integration_active: bool,
    pub tenant_status: TenantStatus,
    loaded: Instant,
}

#[derive(Debug, Default)]
struct State {
    epoch: i64,
    keys: HashMap<String, Arc<CachedKey>>,
    integration_keys: HashMap<String, Arc<CachedIntegrationKey>>,
    tenants: HashMap<uuid::Uuid, (TenantStatus, Instant)>,
    /// Active agents' grants by (tenant, agent): every change to an agent moves the epoch.
    grants: HashMap<(uuid::Uuid, uuid::Uuid), (Arc<crate::agents::Grant>, Instant)>,
}

#[derive(Debug)]
pub struct CredentialCache {
    state: RwLock<State>,
    ttl: Duration,
    /// Bumped with the epoch each time the cache is dropped: long-lived sessions (the
    /// `/mcp/ws` socket) re-check their credential at once instead of on their next poll.
    changes: tokio::sync::watch::Sender<i64>,
}

impl CredentialCache {
    pub fn new(epoch: i64, ttl: Duration) -> Self {
        Self {
            state: RwLock::new(State {
                epoch,
                ..State::default()
            }),
            ttl,
            changes: tokio::sync::watch::Sender::new(epoch),
        }
    }

    /// Tells of every epoch change (a revocation or status change seen by this replica).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<i64> {
        self.changes.subscribe()
    }

    /// The epoch the cached entries belong to. Read it *before* loading from the
    /// database and pass it to the `insert_*` call.
    pub fn epoch(&self) -> i64 {
        self.state.read().map(|s| s.epoch).unwrap_or(i64::MIN)
    }

    pub fn key(&self, key_hash: &str) -> Option<Arc<CachedKey>> {
        let state = self.state.read().ok()?;
        state
            .keys
            .get(key_hash)
            .filter(|e| e.loaded.elapsed() < self.ttl)
            .cloned()
    }

    /// Stores a loaded key unless the epoch moved since `seen_epoch`; returns the entry
    /// either way.
    pub fn insert_key(
        &self,
        key_hash: String,
        key: ApiKeyRow,
        standing: impl Into<Standing>,
        seen_epoch: i64,
    ) -> Arc<CachedKey> {
        let standing = standing.into();
        let entry = Arc::new(CachedKey {
            key,
            tenant_status: standing.tenant,
            agent_status: standing.agent,
            loaded: Instant::now(),
        });
        if let Ok(mut state) = self.state.write()
            && state.epoch == seen_epoch
        {
            if state.keys.len() >= MAX_ENTRIES {
                state.keys.clear();
            }
            state.keys.insert(key_hash, Arc::clone(&entry));
        }
        entry
    }

    pub fn integration_key(&self, key_hash: &str) -> Option<Arc<CachedIntegrationKey>> {
        let state = self.state.read().ok()?;
        state
            .integration_keys
            .get(key_hash)
            .filter(|e| e.loaded.elapsed() < self.ttl)
            .cloned()
    }

    /// Stores a loaded integration key unless the epoch moved since `seen_epoch`.
    pub fn insert_integration_key(
        &self,
        key_hash: String,
        key: IntegrationKeyRow,
        integration_active: bool,
        tenant_status: TenantStatus,
        seen_epoch: i64,
    ) -> Arc<CachedIntegrationKey> {
        let entry = Arc::new(CachedIntegrationKey {
            key,
            integration_active,
            tenant_status,
            loaded: Instant::now(),
        });
        if let Ok(mut state) = self.state.write()
            && state.epoch == seen_epoch
        {
            if state.integration_keys.len() >= MAX_ENTRIES {
                state.integration_keys.clear();
            }
            state.integration_keys.insert(key_hash, Arc::clone(&entry));
        }
        entry
    }

    pub fn tenant(&self, id: uuid::Uuid) -> Option<TenantStatus> {
        let state = self.state.read().ok()?;
        state
            .tenants
            .get(&id)
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(s, _)| *s)
    }

    pub fn insert_tenant(&self, id: uuid::Uuid, status: TenantStatus, seen_epoch: i64) {
        if let Ok(mut state) = self.state.write()
            && state.epoch == seen_epoch
        {
            if state.tenants.len() >= MAX_ENTRIES {
                state.tenants.clear();
            }
            state.tenants.insert(id, (status, Instant::now()));
        }
    }

    /// An active agent's grant, if cached and fresh.
    pub fn grant(&self, tenant: uuid::Uuid, agent: uuid::Uuid) -> Option<Arc<crate::agents::Grant>> {
        let state = self.state.read().ok()?;
        state
            .grants
            .get(&(tenant, agent))
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(g, _)| Arc::clone(g))
    }

    /// Stores a loaded grant unless the epoch moved since `seen_epoch`.
    pub fn insert_grant(&self, grant: Arc<crate::agents::Grant>, seen_epoch: i64) {
        if let Ok(mut state) = self.state.write()
            && state.epoch == seen_epoch
        {
            if state.grants.len() >= MAX_ENTRIES {
                state.grants.clear();
            }
            let id = (grant.agent.tenant_id.get(), grant.agent.id.get());
            state.grants.insert(id, (grant, Instant::now()));
        }
    }

    /// Moves to `epoch`, dropping every entry, if it differs from the current one.
    /// Returns whether it did.
    pub fn advance(&self, epoch: i64) -> bool {
        match self.state.write() {
            Ok(mut state) if state.epoch != epoch => {
                *state = State {
                    epoch,
                    ..State::default()
                };
                drop(state);
                self.changes.send_replace(epoch);
                true
            }
            _ => false,
        }
    }

    /// Number of cached keys (for tests and metrics).
    pub fn len(&self) -> usize {
        self.state
            .read()
            .map(|s| s.keys.len() + s.integration_keys.len() + s.tenants.len())
            .unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Reads the epoch and invalidates the cache if it moved. Run it on a short interval.
pub async fn refresh(cache: &CredentialCache, conn: &mut Conn) -> EngineResult<bool> {
    let epoch = auth_epoch::current(conn).await?;
    Ok(cache.advance(epoch))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aos_models::{DbJson, DbTime, DbUuid};

    fn row() -> ApiKeyRow {
        ApiKeyRow {
            id: DbUuid::new_v7(),
            tenant_id: DbUuid::new_v7(),
            name: "k".into(),
            prefix: "aos_sk_x".into(),
            key_hash: "h".into(),
            scopes: DbJson(serde_json::json!([])),
            created_by: "founder".into(),
            created_at: DbTime::now(),
            expires_at: None,
            revoked_at: None,
            agent_id: None,
        }
    }

    #[test]
    fn a_load_that_raced_an_invalidation_is_not_stored() {
        let cache = CredentialCache::new(5, Duration::from_secs(60));
        let seen = cache.epoch();
        // The epoch moves while the load is in flight.
        assert!(cache.advance(6));
        cache.insert_key("h".into(), row(), TenantStatus::Active, seen);
        assert!(cache.key("h").is_none());
        // A load that began after the move is stored.
        let seen = cache.epoch();
        cache.insert_key("h".into(), row(), TenantStatus::Active, seen);
        assert!(cache.key("h").is_some());
        // Advancing to the same epoch keeps entries; a new one drops them.
        assert!(!cache.advance(6));
        assert!(cache.key("h").is_some());
        assert!(cache.advance(7));
        assert!(cache.key("h").is_none());
    }

    #[test]
    fn entries_expire_after_the_ttl() {
        let cache = CredentialCache::new(0, Duration::from_millis(50));
        cache.insert_key("h".into(), row(), TenantStatus::Active, 0);
        let id = uuid::Uuid::now_v7();
        cache.insert_tenant(id, TenantStatus::Suspended, 0);
        assert!(cache.key("h").is_some());
        assert_eq!(cache.tenant(id), Some(TenantStatus::Suspended));
        std::thread::sleep(Duration::from_millis(60));
        assert!(cache.key("h").is_none());
        assert_eq!(cache.tenant(id), None);
    }
}
