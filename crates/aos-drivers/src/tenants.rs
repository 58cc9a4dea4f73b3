//! Tenant CRUD. Tenants are the root of isolation, so these are the only queries that
//! are not themselves filtered by a tenant id.

use aos_models::schema::tenants;
use aos_models::tenant::{NewTenant, TenantChanges, TenantRow};
use aos_models::{DbTime, DbUuid};
use aos_types::TenantId;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::Conn;
use crate::error::DriverResult;

/// Inserts a tenant and returns the stored row.
pub async fn insert(conn: &mut Conn, new: &NewTenant) -> DriverResult<TenantRow> {
    let row = on_backend!(conn, |c| diesel::insert_into(tenants::table)
        .values(new)
        .returning(TenantRow::as_returning())
        .get_result(c)
        .await)?;
    Ok(row)
}

/// The tenant with this id, or `NotFound`.
pub async fn get(conn: &mut Conn, id: TenantId) -> DriverResult<TenantRow> {
    let id = DbUuid::from(id);
    let row = on_backend!(conn, |c| tenants::table
        .find(id)
        .select(TenantRow::as_select())
        .first(c)
        .await)?;
    Ok(row)
}

/// A page of tenants in creation order, after the keyset cursor `(created_at, id)`.
pub async fn list(conn: &mut Conn, after: Option<(DbTime, DbUuid)>, limit: i64) -> DriverResult<Vec<TenantRow>> {
    let rows = on_backend!(conn, |c| {
        let mut query = tenants::table
            .select(TenantRow::as_select())
            .order((tenants::created_at.asc(), tenants::id.asc()))
            .limit(limit)
            .into_boxed();
        if let Some((at, id)) = after {
            query = query.filter(
                tenants::created_at
                    .gt(at)
                    .or(tenants::created_at.eq(at).and(tenants::id.gt(id))),
            );
        }
        query.load(c).await
    })?;
    Ok(rows)
}

/// How many tenants exist.
pub async fn count(conn: &mut Conn) -> DriverResult<i64> {
    let n = on_backend!(conn, |c| tenants::table.count().get_result(c).await)?;
    Ok(n)
}

/// Applies `changes` and returns the updated row, or `NotFound`.
pub async fn update(conn: &mut Conn, id: TenantId, changes: &TenantChanges) -> DriverResult<TenantRow> {
    let id = DbUuid::from(id);
    let row = on_backend!(conn, |c| diesel::update(tenants::table.find(id))
        .set(changes)
        .returning(TenantRow::as_returning())
        .get_result(c)
        .await)?;
    Ok(row)
}
