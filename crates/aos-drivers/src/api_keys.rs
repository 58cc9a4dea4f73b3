//! API key CRUD. Every query a tenant can reach filters by `tenant_id`; the unscoped
//! ones (`find_by_hash`, `get_any`, `revoke_any`) serve authentication and the platform
//! operator only. Ids are typed (`TenantId`, `ApiKeyId`).

use aos_models::api_key::{ApiKeyRow, NewApiKey};
use aos_models::schema::api_keys;
use aos_models::{DbTime, DbUuid};
use aos_types::{ApiKeyId, TenantId};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::Conn;
use crate::error::DriverResult;

pub async fn insert(conn: &mut Conn, new: &NewApiKey) -> DriverResult<ApiKeyRow> {
    let row = on_backend!(conn, |c| diesel::insert_into(api_keys::table)
        .values(new)
        .returning(ApiKeyRow::as_returning())
        .get_result(c)
        .await)?;
    Ok(row)
}

/// The key whose hash this is, whatever its tenant or state (authentication).
pub async fn find_by_hash(conn: &mut Conn, key_hash: &str) -> DriverResult<Option<ApiKeyRow>> {
    let row = on_backend!(conn, |c| api_keys::table
        .filter(api_keys::key_hash.eq(key_hash))
        .select(ApiKeyRow::as_select())
        .first(c)
        .await
        .optional())?;
    Ok(row)
}

/// A key of `tenant_id`; `NotFound` if it belongs to another tenant.
pub async fn get(conn: &mut Conn, tenant_id: TenantId, id: ApiKeyId) -> DriverResult<ApiKeyRow> {
    let tenant_id = DbUuid::from(tenant_id);
    let id = DbUuid::from(id);
    let row = on_backend!(conn, |c| api_keys::table
        .filter(api_keys::tenant_id.eq(tenant_id))
        .find(id)
        .select(ApiKeyRow::as_select())
        .first(c)
        .await)?;
    Ok(row)
}

/// Any key by id (platform operator).
pub async fn get_any(conn: &mut Conn, id: ApiKeyId) -> DriverResult<ApiKeyRow> {
    let id = DbUuid::from(id);
    let row = on_backend!(conn, |c| api_keys::table
        .find(id)
        .select(ApiKeyRow::as_select())
        .first(c)
        .await)?;
    Ok(row)
}

/// A page of `tenant_id`'s keys in creation order, after the keyset cursor.
pub async fn list(
    conn: &mut Conn,
    tenant_id: TenantId,
    after: Option<(DbTime, DbUuid)>,
    limit: i64,
) -> DriverResult<Vec<ApiKeyRow>> {
    let tenant_id = DbUuid::from(tenant_id);
    let rows = on_backend!(conn, |c| {
        let mut query = api_keys::table
            .filter(api_keys::tenant_id.eq(tenant_id))
            .select(ApiKeyRow::as_select())
            .order((api_keys::created_at.asc(), api_keys::id.asc()))
            .limit(limit)
            .into_boxed();
        if let Some((at, id)) = after {
            query = query.filter(
                api_keys::created_at
                    .gt(at)
                    .or(api_keys::created_at.eq(at).and(api_keys::id.gt(id))),
            );
        }
        query.load(c).await
    })?;
    Ok(rows)
}

pub async fn count(conn: &mut Conn, tenant_id: TenantId) -> DriverResult<i64> {
    let tenant_id = DbUuid::from(tenant_id);
    let n = on_backend!(conn, |c| api_keys::table
        .filter(api_keys::tenant_id.eq(tenant_id))
        .count()
        .get_result(c)
        .await)?;
    Ok(n)
}

/// Marks a key of `tenant_id` revoked at `at` (idempotent: an already revoked key keeps
/// its first revocation time). `NotFound` if it is not that tenant's.
pub async fn revoke(conn: &mut Conn, tenant_id: TenantId, id: ApiKeyId, at: DbTime) -> DriverResult<ApiKeyRow> {
    let current = get(conn, tenant_id, id).await?;
    set_revoked(conn, current, at).await
}

/// Marks any key revoked (platform operator).
pub async fn revoke_any(conn: &mut Conn, id: ApiKeyId, at: DbTime) -> DriverResult<ApiKeyRow> {
    let current = get_any(conn, id).await?;
    set_revoked(conn, current, at).await
}

async fn set_revoked(conn: &mut Conn, current: ApiKeyRow, at: DbTime) -> DriverResult<ApiKeyRow> {
    if current.revoked_at.is_some() {
        return Ok(current);
    }
    let row = on_backend!(conn, |c| diesel::update(api_keys::table.find(current.id))
        .set(api_keys::revoked_at.eq(Some(at)))
        .returning(ApiKeyRow::as_returning())
        .get_result(c)
        .await)?;
    Ok(row)
}
