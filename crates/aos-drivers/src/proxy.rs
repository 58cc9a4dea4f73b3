//! The proxy's CRUD: tenant settings, budget spend counters and the call log. Every query
//! filters by tenant, except the retention sweep (which deletes by age across tenants).

use aos_models::proxy::{ProxyCallRow, ProxySettingsRow, ProxySpendRow};
use aos_models::schema::{proxy_calls, proxy_settings, proxy_spend};
use aos_models::{DbTime, DbUuid};
use aos_types::{ApiKeyId, CallId, TenantId};
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::RunQueryDsl;

use crate::db::{BackendConn, Conn};
use crate::error::DriverResult;

// ---- settings ----------------------------------------------------------------------------

pub async fn get_settings(conn: &mut Conn, tenant_id: TenantId) -> DriverResult<Option<ProxySettingsRow>> {
    let tenant_id = DbUuid::from(tenant_id);
    let row = on_backend!(conn, |c| proxy_settings::table
        .find(tenant_id)
        .select(ProxySettingsRow::as_select())
        .first(c)
        .await
        .optional())?;
    Ok(row)
}

/// Writes the tenant's settings (insert or replace).
pub async fn put_settings(conn: &mut Conn, row: &ProxySettingsRow) -> DriverResult<()> {
    on_backend!(conn, |c| diesel::insert_into(proxy_settings::table)
        .values(row)
        .on_conflict(proxy_settings::tenant_id)
        .do_update()
        .set((
            proxy_settings::settings.eq(excluded(proxy_settings::settings)),
            proxy_settings::updated_by.eq(excluded(proxy_settings::updated_by)),
            proxy_settings::updated_at.eq(excluded(proxy_settings::updated_at)),
        ))
        .execute(c)
        .await)?;
    Ok(())
}

// ---- spend counters ----------------------------------------------------------------------

/// Creates the counter at zero unless it exists.
pub async fn ensure_counter(
    conn: &mut Conn,
    tenant_id: TenantId,
    scope: &str,
    period: &str,
    now: DbTime,
) -> DriverResult<()> {
    let tenant_id = DbUuid::from(tenant_id);
    let row = ProxySpendRow {
        tenant_id,
        scope: scope.to_owned(),
        period: period.to_owned(),
        spent_micros: 0,
        reserved_micros: 0,
        updated_at: now,
    };
    on_backend!(conn, |c| diesel::insert_into(proxy_spend::table)
        .values(&row)
        .on_conflict((proxy_spend::tenant_id, proxy_spend::scope, proxy_spend::period))
        .do_nothing()
        .execute(c)
        .await)?;
    Ok(())
}

/// Adds `amount` to the counter's reservation if `spent + reserved + amount <= limit`, in
/// one conditional UPDATE (atomic under concurrency on both backends). False when the
/// limit would be passed (nothing changed). Written as `spent + reserved <= limit -
/// amount` so no sum can overflow (callers pass `0 <= amount <= limit`).
pub async fn reserve(
    conn: &mut Conn,
    tenant_id: TenantId,
    scope: &str,
    period: &str,
    amount: i64,
    limit: i64,
    now: DbTime,
) -> DriverResult<bool> {
    let tenant_id = DbUuid::from(tenant_id);
    let updated = on_backend!(conn, |c| diesel::update(
        proxy_spend::table
            .filter(proxy_spend::tenant_id.eq(tenant_id))
            .filter(proxy_spend::scope.eq(scope))
            .filter(proxy_spend::period.eq(period))
            .filter((proxy_spend::spent_micros + proxy_spend::reserved_micros).le(limit - amount)),
    )
    .set((
        proxy_spend::reserved_micros.eq(proxy_spend::reserved_micros + amount),
        proxy_spend::updated_at.eq(now),
    ))
    .execute(c)
    .await)?;
    Ok(updated == 1)
}

/// Adds signed deltas to a counter (creating it): a settlement moves a reservation into
/// spend (`reserved_delta` negative, `spent_delta` the real cost).
pub async fn apply_spend(conn: &mut Conn, row: &ProxySpendRow) -> DriverResult<()> {
    on_backend!(conn, |c| diesel::insert_into(proxy_spend::table)
        .values(row)
        .on_conflict((proxy_spend::tenant_id, proxy_spend::scope, proxy_spend::period))
        .do_update()
        .set((
            proxy_spend::spent_micros.eq(proxy_spend::spent_micros + excluded(proxy_spend::spent_micros)),
            proxy_spend::reserved_micros.eq(proxy_spend::reserved_micros + excluded(proxy_spend::reserved_micros)),
            proxy_spend::updated_at.eq(excluded(proxy_spend::updated_at)),
        ))
        .execute(c)
        .await)?;
    Ok(())
}

/// The tenant's counters for the given scopes in the given periods.
pub async fn counters(
    conn: &mut Conn,
    tenant_id: TenantId,
    scopes: &[String],
    periods: &[String],
) -> DriverResult<Vec<ProxySpendRow>> {
    let tenant_id = DbUuid::from(tenant_id);
    let rows = on_backend!(conn, |c| proxy_spend::table
        .filter(proxy_spend::tenant_id.eq(tenant_id))
        .filter(proxy_spend::scope.eq_any(scopes))
        .filter(proxy_spend::period.eq_any(periods))
        .select(ProxySpendRow::as_select())
        .load(c)
        .await)?;
    Ok(rows)
}

// ---- call log ----------------------------------------------------------------------------

/// Rows per multi-row INSERT on PostgreSQL (25 columns each, well under the 65535
/// parameter limit).
const CHUNK_PG: usize = 500;

/// Inserts a batch of calls; a call already stored (a retried batch) is left alone.
pub async fn insert_calls(conn: &mut Conn, rows: &[ProxyCallRow]) -> DriverResult<()> {
    match conn.backend_mut() {
        BackendConn::Pg(c) => {
            for chunk in rows.chunks(CHUNK_PG) {
                diesel::insert_into(proxy_calls::table)
                    .values(chunk)
                    .on_conflict(proxy_calls::id)
                    .do_nothing()
                    .execute(c)
                    .await?;
            }
        }
        // One statement per row inside the caller's transaction: cheap in-process.
        BackendConn::Sqlite(c) => {
            for row in rows {
                diesel::insert_into(proxy_calls::table)
                    .values(row)
                    .on_conflict(proxy_calls::id)
                    .do_nothing()
                    .execute(c)
                    .await?;
            }
        }
    }
    Ok(())
}

/// Filters of the call log.
#[derive(Debug, Clone, Default)]
pub struct CallFilter {
    pub key_id: Option<ApiKeyId>,
    pub model: Option<String>,
    pub status: Option<String>,
    pub since: Option<DbTime>,
    pub until: Option<DbTime>,
}

/// A page of the tenant's calls, newest first, after the keyset cursor `(created_at, id)`.
pub async fn list_calls(
    conn: &mut Conn,
    tenant_id: TenantId,
    filter: &CallFilter,
    after: Option<(DbTime, DbUuid)>,
    limit: i64,
) -> DriverResult<Vec<ProxyCallRow>> {
    let tenant_id = DbUuid::from(tenant_id);
    let rows = on_backend!(conn, |c| {
        let mut query = proxy_calls::table
            .filter(proxy_calls::tenant_id.eq(tenant_id))
            .select(ProxyCallRow::as_select())
            .order((proxy_calls::created_at.desc(), proxy_calls::id.desc()))
            .limit(limit)
            .into_boxed();
        if let Some(v) = filter.key_id {
            query = query.filter(proxy_calls::key_id.eq(DbUuid::from(v)));
        }
        if let Some(v) = &filter.model {
            query = query.filter(proxy_calls::model.eq(v.clone()));
        }
        if let Some(v) = &filter.status {
            query = query.filter(proxy_calls::status.eq(v.clone()));
        }
        if let Some(v) = filter.since {
            query = query.filter(proxy_calls::created_at.ge(v));
        }
        if let Some(v) = filter.until {
            query = query.filter(proxy_calls::created_at.lt(v));
        }
        if let Some((at, id)) = after {
            query = query.filter(
                proxy_calls::created_at
                    .lt(at)
                    .or(proxy_calls::created_at.eq(at).and(proxy_calls::id.lt(id))),
            );
        }
        query.load(c).await
    })?;
    Ok(rows)
}

pub async fn get_call(conn: &mut Conn, tenant_id: TenantId, id: CallId) -> DriverResult<Option<ProxyCallRow>> {
    let tenant_id = DbUuid::from(tenant_id);
    let id = DbUuid::from(id);
    let row = on_backend!(conn, |c| proxy_calls::table
        .filter(proxy_calls::tenant_id.eq(tenant_id))
        .find(id)
        .select(ProxyCallRow::as_select())
        .first(c)
        .await
        .optional())?;
    Ok(row)
}

/// Deletes calls older than `before` (the retention setting), across tenants. Returns how
/// many went.
pub async fn delete_calls_before(conn: &mut Conn, before: DbTime) -> DriverResult<usize> {
    let n = on_backend!(conn, |c| diesel::delete(
        proxy_calls::table.filter(proxy_calls::created_at.lt(before))
    )
    .execute(c)
    .await)?;
    Ok(n)
}
