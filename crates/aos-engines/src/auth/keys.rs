//! API keys: `aos_sk_` followed by 32 random bytes in base64url (43 characters). Only the
//! SHA-256 hash and a display prefix are stored; the key is returned once.

use aos_drivers::{Conn, DriverError, api_keys as db, auth_epoch};
use aos_models::api_key::{ApiKeyRow, NewApiKey};
use aos_models::{DbJson, DbTime, DbUuid};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use super::cache::Standing;
use super::scope::Scope;
use crate::error::{EngineError, EngineResult};
use crate::tenants::{self, TenantStatus};
use aos_types::{AgentId, AgentStatus};

pub use aos_models::api_key::ApiKeyRow as ApiKey;

pub const KEY_PREFIX: &str = "aos_sk_";
/// Characters of the random part shown in the display prefix.
const DISPLAY_CHARS: usize = 8;
const RANDOM_LEN: usize = 43;

/// Largest page a list may ask for.
pub const MAX_PAGE: u32 = 200;

/// Lowercase hex SHA-256 of a presented key.
pub fn hash_key(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// True when `presented` has the shape of an AOS API key (no database lookup needed to
/// refuse anything else).
pub fn looks_like_key(presented: &str) -> bool {
    presented.strip_prefix(KEY_PREFIX).is_some_and(|rest| {
        rest.len() == RANDOM_LEN
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// The display prefix of a key: `aos_sk_` and its first random characters.
pub fn display_prefix(key: &str) -> String {
    key.chars().take(KEY_PREFIX.len() + DISPLAY_CHARS).collect()
}

/// A fresh key.
pub fn generate() -> SecretString {
    let mut bytes = [0_u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    SecretString::from(format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// Validates and de-duplicates requested scope names.
pub fn parse_scopes(names: &[String]) -> EngineResult<Vec<Scope>> {
    if names.is_empty() {
        return Err(EngineError::invalid("scopes", "give at least one scope"));
    }
    let mut scopes = Vec::new();
    for name in names {
        let scope = Scope::parse(name).ok_or_else(|| {
            EngineError::invalid(
                "scopes",
                format!(
                    "unknown scope {name:?}; known: {}",
                    Scope::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                ),
            )
        })?;
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    scopes.sort();
    Ok(scopes)
}

/// Scopes stored on a key; unknown stored names are dropped (never widened).
pub fn scopes_of(key: &ApiKeyRow) -> Vec<Scope> {
    key.scope_names().iter().filter_map(|s| Scope::parse(s)).collect()
}

/// What a new key should be.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub name: String,
    pub scopes: Vec<String>,
    pub expires_at: Option<time::OffsetDateTime>,
    /// Who asked: `founder`, `user:<id>` or `key:<id>`.
    pub created_by: String,
    /// The agent the key acts as; its scopes are then limited to [`AGENT_SCOPES`].
    pub agent: Option<AgentId>,
}

/// What an agent's key may hold: calling and reading tools, and the LLM proxy. Never
/// administration (an agent does not manage itself) or approvals.
pub const AGENT_SCOPES: [Scope; 3] = [Scope::McpInvoke, Scope::McpRead, Scope::ProxyInvoke];

/// Creates a key for an ACTIVE tenant. Returns the stored row and the key itself,
/// which exists nowhere else afterwards.
pub async fn create(conn: &mut Conn, tenant_id: uuid::Uuid, new: NewKey) -> EngineResult<(ApiKeyRow, SecretString)> {
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(EngineError::invalid(
            "name",
            "must be 1 to 200 characters without control characters",
        ));
    }
    let scopes = parse_scopes(&new.scopes)?;
    if new.agent.is_some()
        && let Some(bad) = scopes.iter().find(|s| !AGENT_SCOPES.contains(s))
    {
        return Err(EngineError::invalid(
            "scopes",
            format!("an agent's key may hold mcp:invoke, mcp:read and proxy:invoke, not {bad}"),
        ));
    }
    if let Some(at) = new.expires_at
        && at <= time::OffsetDateTime::now_utc()
    {
        return Err(EngineError::invalid("expires_at", "must be in the future"));
    }
    let tenant = tenants::get(conn, tenant_id).await?;
    if tenant.status() != TenantStatus::Active {
        return Err(EngineError::Conflict(format!(
            "cannot issue keys for a {} tenant",
            tenant.status().as_str()
        )));
    }
    let key = generate();
    let row = NewApiKey {
        id: DbUuid::new_v7(),
        tenant_id: tenant.id,
        name: name.to_owned(),
        prefix: display_prefix(key.expose_secret()),
        key_hash: hash_key(key.expose_secret()),
        scopes: DbJson(serde_json::json!(scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>())),
        created_by: new.created_by,
        created_at: DbTime::now(),
        expires_at: new.expires_at.map(DbTime::from),
        agent_id: new.agent.map(DbUuid::from),
    };
    let stored = db::insert(conn, &row).await?;
    Ok((stored, key))
}

fn not_found(err: DriverError) -> EngineError {
    match err {
        DriverError::NotFound => EngineError::NotFound("api key"),
        other => other.into(),
    }
}

/// Keys of one tenant, a page at a time.
pub async fn list(
    conn: &mut Conn,
    tenant_id: uuid::Uuid,
    after: Option<(DbTime, DbUuid)>,
    limit: u32,
) -> EngineResult<(Vec<ApiKeyRow>, Option<(DbTime, DbUuid)>, u64)> {
    tenants::get(conn, tenant_id).await?;
    let limit = limit.clamp(1, MAX_PAGE);
    let (rows, next) = crate::paging::split(
        db::list(conn, tenant_id.into(), after, i64::from(limit) + 1).await?,
        limit,
        |r| (r.created_at, r.id),
    );
    let total = u64::try_from(db::count(conn, tenant_id.into()).await?).unwrap_or(0);
    Ok((rows, next, total))
}

/// Revokes a key of `tenant_id` (or of any tenant when `None`: the platform operator),
/// and moves the credential epoch so every replica drops it from its cache.
pub async fn revoke(conn: &mut Conn, tenant_id: Option<uuid::Uuid>, id: uuid::Uuid) -> EngineResult<ApiKeyRow> {
    let now = DbTime::now();
    let row = match tenant_id {
        Some(tenant) => db::revoke(conn, tenant.into(), id.into(), now).await,
        None => db::revoke_any(conn, id.into(), now).await,
    }
    .map_err(not_found)?;
    auth_epoch::bump(conn).await?;
    Ok(row)
}

/// Fails (Unauthenticated / TenantInactive) if the key was revoked, has expired, or its
/// tenant is no longer active: the check long-lived connections repeat.
pub async fn still_valid(conn: &mut Conn, tenant_id: uuid::Uuid, key_id: uuid::Uuid) -> EngineResult<()> {
    let key = db::get(conn, tenant_id.into(), key_id.into())
        .await
        .map_err(|_| EngineError::Unauthenticated("this API key no longer exists"))?;
    if key.revoked_at.is_some() {
        return Err(EngineError::Unauthenticated("this API key was revoked"));
    }
    if key.expires_at.is_some_and(|at| at <= DbTime::now()) {
        return Err(EngineError::Unauthenticated("this API key has expired"));
    }
    let tenant = tenants::get(conn, tenant_id).await?;
    // An agent key's agent is checked where its grant is read (`agents::grant`).
    super::tenant_gate(tenant.status())
}

/// The key for a presented key's hash, if any, and where its tenant and (for an agent's
/// key) its agent stand (authentication).
pub async fn lookup(conn: &mut Conn, key_hash: &str) -> EngineResult<Option<(ApiKeyRow, Standing)>> {
    let Some(key) = db::find_by_hash(conn, key_hash).await? else {
        return Ok(None);
    };
    let tenant = tenants::get(conn, key.tenant_id.into()).await?;
    let agent = match key.agent_id {
        Some(agent) => Some(
            aos_drivers::agents::get(conn, key.tenant_id.into(), agent.into())
                .await?
                .status(),
        ),
        None => None,
    };
    Ok(Some((
        key,
        Standing {
            tenant: tenant.status(),
            agent,
        },
    )))
}

/// Refuses an agent's key whose agent is not active.
pub fn agent_gate(agent: Option<AgentStatus>) -> EngineResult<()> {
    match agent {
        None | Some(AgentStatus::Active) => Ok(()),
        Some(AgentStatus::Disabled) => Err(EngineError::Forbidden("the agent is disabled".into())),
        Some(AgentStatus::Deleted) => Err(EngineError::Unauthenticated("the agent was deleted")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_documented_shape() {
        let a = generate();
        let b = generate();
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert!(looks_like_key(a.expose_secret()), "{}", a.expose_secret().len());
        assert_eq!(a.expose_secret().len(), KEY_PREFIX.len() + RANDOM_LEN);
        assert_eq!(
            display_prefix(a.expose_secret()).len(),
            KEY_PREFIX.len() + DISPLAY_CHARS
        );
        assert!(a.expose_secret().starts_with(&display_prefix(a.expose_secret())));
        assert_eq!(hash_key(a.expose_secret()).len(), 64);
        assert!(!looks_like_key("aos_sk_short"));
        assert!(!looks_like_key(&format!("aos_pk_{}", "a".repeat(RANDOM_LEN))));
        assert!(!looks_like_key(&format!("aos_sk_{}!", "a".repeat(RANDOM_LEN - 1))));
    }

    #[test]
    fn scopes_are_validated_and_deduplicated() {
        let parsed = parse_scopes(&["mcp:read".into(), "admin".into(), "mcp:read".into()]).unwrap();
        assert_eq!(parsed, [Scope::McpRead, Scope::Admin]);
        assert!(parse_scopes(&[]).is_err());
        assert!(parse_scopes(&["root".into()]).is_err());
    }
}
