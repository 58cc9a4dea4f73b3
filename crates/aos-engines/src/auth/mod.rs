//! Authentication: who is calling, from a presented bearer credential.
//!
//! Three kinds of caller: the platform operator (a configured or generated token), a
//! human (a JWT from the customer's IdP, see [`jwt`]) and a machine (an API key, see
//! [`keys`]). Lookups go through the [`cache::CredentialCache`]; repeated failures from
//! one address or against one key prefix are answered with 429 ([`limiter`]).
//!
//! The authenticator never opens a pool: when it needs the database (a cache miss) it
//! asks its caller for a connection.

pub mod cache;
pub mod integration_keys;
pub mod jwt;
pub mod keys;
pub mod limiter;
pub mod operator;
pub mod scope;

use crate::error::Inactive;
use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

use aos_drivers::{Conn, DriverError};
use subtle::ConstantTimeEq;

pub use cache::CredentialCache;
pub use jwt::{JwtSettings, JwtVerifier};
pub use limiter::FailureLimiter;
pub use operator::OperatorToken;
pub use scope::Scope;

use crate::error::{EngineError, EngineResult};
use crate::tenants::{self, TenantStatus};

/// A verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The platform operator: acts on every tenant.
    Operator,
    /// A tenant user, from a verified JWT.
    Human {
        tenant_id: uuid::Uuid,
        user_id: String,
        roles: Vec<String>,
        scopes: Vec<Scope>,
    },
    /// An API key.
    Machine {
        tenant_id: uuid::Uuid,
        key_id: uuid::Uuid,
        scopes: Vec<Scope>,
        expires_at: Option<time::OffsetDateTime>,
        /// The agent the key acts as.
        agent_id: Option<uuid::Uuid>,
    },
    /// A customer integration's key (`X-CUS-Integration-Key`): writes its own usage, and
    /// reads it when `can_read`.
    Integration {
        tenant_id: uuid::Uuid,
        integration_id: uuid::Uuid,
        key_id: uuid::Uuid,
        can_read: bool,
    },
}

/// Settings for [`Authenticator::new`].
pub struct AuthSettings {
    pub operator: OperatorToken,
    pub jwt: Option<JwtVerifier>,
    pub max_failures: u32,
    pub failure_window: Duration,
    pub cache_ttl: Duration,
    /// The credential epoch read at start-up.
    pub epoch: i64,
}

#[derive(Debug)]
pub struct Authenticator {
    operator: OperatorToken,
    jwt: Option<JwtVerifier>,
    cache: CredentialCache,
    limiter: FailureLimiter,
}

fn tenant_gate(status: TenantStatus) -> EngineResult<()> {
    match status {
        TenantStatus::Active => Ok(()),
        TenantStatus::Suspended => Err(EngineError::TenantInactive(Inactive::Suspended)),
        TenantStatus::Terminated => Err(EngineError::TenantInactive(Inactive::Terminated)),
    }
}

impl Authenticator {
    pub fn new(settings: AuthSettings) -> Self {
        Self {
            operator: settings.operator,
            jwt: settings.jwt,
            cache: CredentialCache::new(settings.epoch, settings.cache_ttl),
            limiter: FailureLimiter::new(settings.max_failures, settings.failure_window),
        }
    }

    pub fn cache(&self) -> &CredentialCache {
        &self.cache
    }

    /// Verifies `presented` (the bearer credential) from `peer`. `conn` is called only
    /// when the cache cannot answer.
    pub async fn authenticate<F, Fut>(&self, presented: &str, peer: Option<IpAddr>, conn: F) -> EngineResult<Principal>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Conn, DriverError>>,
    {
        match self.verify(presented, conn).await {
            Err(EngineError::Unauthenticated(why)) => {
                let mut counters = Vec::with_capacity(2);
                if let Some(ip) = peer {
                    counters.push(format!("ip:{ip}"));
                }
                if presented.starts_with(keys::KEY_PREFIX) {
                    counters.push(format!("prefix:{}", keys::display_prefix(presented)));
                }
                match self.limiter.record_failure(&counters) {
                    Some(wait) => Err(EngineError::RateLimited(wait.as_secs().max(1))),
                    None => Err(EngineError::Unauthenticated(why)),
                }
            }
            other => other,
        }
    }

    /// Verifies an integration key (`X-CUS-Integration-Key`), with the same cache,
    /// invalidation and failure limits as API keys.
    pub async fn authenticate_integration<F, Fut>(
        &self,
        presented: &str,
        peer: Option<IpAddr>,
        conn: F,
    ) -> EngineResult<Principal>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Conn, DriverError>>,
    {
        match self.integration(presented, conn).await {
            Err(EngineError::Unauthenticated(why)) => {
                let mut counters = Vec::with_capacity(2);
                if let Some(ip) = peer {
                    counters.push(format!("ip:{ip}"));
                }
                counters.push(format!("prefix:{}", presented.chars().take(15).collect::<String>()));
                match self.limiter.record_failure(&counters) {
                    Some(wait) => Err(EngineError::RateLimited(wait.as_secs().max(1))),
                    None => Err(EngineError::Unauthenticated(why)),
                }
            }
            other => other,
        }
    }

    async fn integration<F, Fut>(&self, presented: &str, conn: F) -> EngineResult<Principal>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Conn, DriverError>>,
    {
        if !integration_keys::looks_like_key(presented) {
            return Err(EngineError::Unauthenticated("malformed integration key"));
        }
        let hash = keys::hash_key(presented);
        let entry = match self.cache.integration_key(&hash) {
            Some(entry) => entry,
            None => {
                let seen = self.cache.epoch();
                let mut conn = conn().await?;
                let Some(key) = aos_drivers::usage::find_integration_key(&mut conn, &hash).await? else {
                    return Err(EngineError::Unauthenticated("invalid integration key"));
                };
                let integration =
                    crate::telemetry::get_integration(&mut conn, key.tenant_id.into(), key.integration_id.into())
                        .await?;
                let tenant = tenants::get(&mut conn, key.tenant_id.into()).await?;
                self.cache.insert_integration_key(
                    hash.clone(),
                    key,
                    integration.status() == aos_types::IntegrationStatus::Active,
                    tenant.status(),
                    seen,
                )
            }
        };
        if !bool::from(entry.key.key_hash.as_bytes().ct_eq(hash.as_bytes())) {
            return Err(EngineError::Unauthenticated("invalid integration key"));
        }
        if entry.key.revoked_at.is_some() {
            return Err(EngineError::Unauthenticated("integration key revoked"));
        }
        if !integration_keys::is_live(&entry.key, time::OffsetDateTime::now_utc()) {
            return Err(EngineError::Unauthenticated("integration key expired (rotated)"));
        }
        tenant_gate(entry.tenant_status)?;
        if !entry.integration_active {
            return Err(EngineError::Forbidden("the integration is disabled".into()));
        }
        Ok(Principal::Integration {
            tenant_id: entry.key.tenant_id.into(),
            integration_id: entry.key.integration_id.into(),
            key_id: entry.key.id.into(),
            can_read: entry.key.can_read,
        })
    }

    async fn verify<F, Fut>(&self, presented: &str, conn: F) -> EngineResult<Principal>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Conn, DriverError>>,
    {
        if keys::looks_like_key(presented) {
            return self.machine(presented, conn).await;
        }
        if presented.starts_with(keys::KEY_PREFIX) {
            return Err(EngineError::Unauthenticated("malformed API key"));
        }
        if self.operator.verify(presented) {
            return Ok(Principal::Operator);
        }
        if let Some(jwt) = &self.jwt
            && presented.bytes().filter(|b| *b == b'.').count() == 2
        {
            return self.human(jwt, presented, conn).await;
        }
        Err(EngineError::Unauthenticated("invalid credentials"))
    }

    async fn machine<F, Fut>(&self, presented: &str, conn: F) -> EngineResult<Principal>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Conn, DriverError>>,
    {
        let hash = keys::hash_key(presented);
        let entry = match self.cache.key(&hash) {
            Some(entry) => entry,
            None => {
                let seen = self.cache.epoch();
                let mut conn = conn().await?;
                let Some((key, standing)) = keys::lookup(&mut conn, &hash).await? else {
                    return Err(EngineError::Unauthenticated("invalid API key"));
                };
                self.cache.insert_key(hash.clone(), key, standing, seen)
            }
        };
        // The lookup was by hash; compare in constant time anyway so no path depends on
        // how much of a hash matched.
        if !bool::from(entry.key.key_hash.as_bytes().ct_eq(hash.as_bytes())) {
            return Err(EngineError::Unauthenticated("invalid API key"));
        }
        if entry.key.revoked_at.is_some() {
            return Err(EngineError::Unauthenticated("API key revoked"));
        }
        let expires_at = entry.key.expires_at.map(|t| t.get());
        if expires_at.is_some_and(|at| at <= time::OffsetDateTime::now_utc()) {
            return Err(EngineError::Unauthenticated("API key expired"));
        }
        tenant_gate(entry.tenant_status)?;
        keys::agent_gate(entry.agent_status)?;
        Ok(Principal::Machine {
            tenant_id: entry.key.tenant_id.into(),
            key_id: entry.key.id.into(),
            scopes: keys::scopes_of(&entry.key),
            expires_at,
            agent_id: entry.key.agent_id.map(Into::into),
        })
    }

    async fn human<F, Fut>(&self, jwt: &JwtVerifier, token: &str, conn: F) -> EngineResult<Principal>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Conn, DriverError>>,
    {
        let claims = jwt.verify(token).await?;
        let status = match self.cache.tenant(claims.tenant_id) {
            Some(status) => status,
            None => {
                let seen = self.cache.epoch();
                let mut conn = conn().await?;
                let tenant = match tenants::get(&mut conn, claims.tenant_id).await {
                    Ok(tenant) => tenant,
                    Err(EngineError::NotFound(_)) => return Err(EngineError::Unauthenticated("unknown tenant")),
                    Err(other) => return Err(other),
                };
                self.cache.insert_tenant(claims.tenant_id, tenant.status(), seen);
                tenant.status()
            }
        };
        tenant_gate(status)?;
        let scopes = if claims.roles.iter().any(|r| r == jwt.admin_role()) {
            vec![Scope::Admin]
        } else {
            let mut scopes: Vec<Scope> = claims.roles.iter().filter_map(|r| Scope::parse(r)).collect();
            scopes.sort();
            scopes.dedup();
            scopes
        };
        Ok(Principal::Human {
            tenant_id: claims.tenant_id,
            user_id: claims.user_id,
            roles: claims.roles,
            scopes,
        })
    }
}
