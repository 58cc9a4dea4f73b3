//! Integration keys: `aos_ik_` + 32 random bytes (base64url), sent by a customer's
//! integration as `X-CUS-Integration-Key`. Stored as hash and display prefix only.
//! Issuing a new key rotates: earlier live keys stay valid for the grace period, then
//! expire. Revocation is immediate. Both move the credential epoch.

use aos_drivers::{Conn, DriverError, auth_epoch, usage as db};
use aos_models::usage::IntegrationKeyRow;
use aos_models::{DbTime, DbUuid};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use time::{Duration, OffsetDateTime};

use super::keys::hash_key;
use crate::error::{EngineError, EngineResult};
use crate::telemetry;

pub use aos_models::usage::IntegrationKeyRow as IntegrationKey;

pub const PREFIX: &str = "aos_ik_";
const RANDOM_LEN: usize = 43;

pub fn looks_like_key(presented: &str) -> bool {
    presented.strip_prefix(PREFIX).is_some_and(|rest| {
        rest.len() == RANDOM_LEN
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

fn generate() -> SecretString {
    let mut bytes = [0_u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    SecretString::from(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// True when the key may authenticate at `now`.
pub fn is_live(key: &IntegrationKeyRow, now: OffsetDateTime) -> bool {
    key.revoked_at.is_none() && key.expires_at.is_none_or(|t| t.get() > now)
}

/// Issues a key; live earlier keys of the integration expire after `grace`.
pub async fn issue(
    conn: &mut Conn,
    tenant: uuid::Uuid,
    integration_id: uuid::Uuid,
    can_read: bool,
    by: &str,
    grace: Duration,
) -> EngineResult<(IntegrationKeyRow, SecretString)> {
    let integration = telemetry::get_integration(conn, tenant, integration_id).await?;
    let now = OffsetDateTime::now_utc();
    let mut rotated = false;
    for key in db::integration_keys(conn, integration.tenant_id.into(), integration.id.into()).await? {
        let deadline = now + grace;
        if is_live(&key, now) && key.expires_at.is_none_or(|t| t.get() > deadline) {
            db::update_integration_key(
                conn,
                key.tenant_id.into(),
                key.id.into(),
                Some(DbTime::from(deadline)),
                None,
            )
            .await?;
            rotated = true;
        }
    }
    let key = generate();
    let row = IntegrationKeyRow {
        id: DbUuid::new_v7(),
        tenant_id: integration.tenant_id,
        integration_id: integration.id,
        prefix: key.expose_secret().chars().take(PREFIX.len() + 8).collect(),
        key_hash: hash_key(key.expose_secret()),
        can_read,
        created_by: by.to_owned(),
        created_at: DbTime::from(now),
        expires_at: None,
        revoked_at: None,
    };
    let stored = db::insert_integration_key(conn, &row).await?;
    if rotated {
        auth_epoch::bump(conn).await?;
    }
    Ok((stored, key))
}

pub async fn list(
    conn: &mut Conn,
    tenant: uuid::Uuid,
    integration_id: uuid::Uuid,
) -> EngineResult<Vec<IntegrationKeyRow>> {
    let integration = telemetry::get_integration(conn, tenant, integration_id).await?;
    Ok(db::integration_keys(conn, integration.tenant_id.into(), integration.id.into()).await?)
}

/// Revokes a key of the integration, effective on every replica within the poll interval.
pub async fn revoke(
    conn: &mut Conn,
    tenant: uuid::Uuid,
    integration_id: uuid::Uuid,
    key_id: uuid::Uuid,
) -> EngineResult<IntegrationKeyRow> {
    let keys = list(conn, tenant, integration_id).await?;
    let key = keys
        .into_iter()
        .find(|k| k.id == key_id.into())
        .ok_or(EngineError::NotFound("integration key"))?;
    if key.revoked_at.is_some() {
        return Ok(key);
    }
    let row = db::update_integration_key(conn, key.tenant_id.into(), key.id.into(), None, Some(DbTime::now()))
        .await
        .map_err(|e| match e {
            DriverError::NotFound => EngineError::NotFound("integration key"),
            other => other.into(),
        })?;
    auth_epoch::bump(conn).await?;
    Ok(row)
}
