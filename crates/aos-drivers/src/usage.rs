//! Telemetry CRUD: integrations, idempotent raw records, and additive daily rollups.

use aos_models::schema::{cus_integration_keys, cus_integrations, llm_usage_daily, llm_usage_records};
use aos_models::usage::{DailyUsageRow, IntegrationKeyRow, IntegrationRow, UsageRecordRow};
use aos_models::{DbTime, DbUuid};
use aos_types::{IntegrationId, IntegrationKeyId, TenantId};
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::RunQueryDsl;

use crate::db::{BackendConn, Conn};
use crate::error::DriverResult;

/// `INSERT ... ON CONFLICT (key) DO UPDATE SET col = col + excluded.col` for every
/// counter of the rollup.
macro_rules! upsert_daily {
    ($c:expr, $values:expr) => {{
        use llm_usage_daily as d;
        diesel::insert_into(d::table)
            .values($values)
            .on_conflict((d::tenant_id, d::integration_id, d::day, d::provider, d::model))
            .do_update()
            .set((
                (
                    d::calls.eq(d::calls + excluded(d::calls)),
                    d::errors.eq(d::errors + excluded(d::errors)),
                    d::input_tokens.eq(d::input_tokens + excluded(d::input_tokens)),
                    d::output_tokens.eq(d::output_tokens + excluded(d::output_tokens)),
                    d::cached_tokens.eq(d::cached_tokens + excluded(d::cached_tokens)),
                    d::cost_micros.eq(d::cost_micros + excluded(d::cost_micros)),
                    d::latency_count.eq(d::latency_count + excluded(d::latency_count)),
                    d::latency_sum_ms.eq(d::latency_sum_ms + excluded(d::latency_sum_ms)),
                ),
                (
                    d::lat_b00.eq(d::lat_b00 + excluded(d::lat_b00)),
                    d::lat_b01.eq(d::lat_b01 + excluded(d::lat_b01)),
                    d::lat_b02.eq(d::lat_b02 + excluded(d::lat_b02)),
                    d::lat_b03.eq(d::lat_b03 + excluded(d::lat_b03)),
                    d::lat_b04.eq(d::lat_b04 + excluded(d::lat_b04)),
                    d::lat_b05.eq(d::lat_b05 + excluded(d::lat_b05)),
                    d::lat_b06.eq(d::lat_b06 + excluded(d::lat_b06)),
                    d::lat_b07.eq(d::lat_b07 + excluded(d::lat_b07)),
                ),
                (
                    d::lat_b08.eq(d::lat_b08 + excluded(d::lat_b08)),
                    d::lat_b09.eq(d::lat_b09 + excluded(d::lat_b09)),
                    d::lat_b10.eq(d::lat_b10 + excluded(d::lat_b10)),
                    d::lat_b11.eq(d::lat_b11 + excluded(d::lat_b11)),
                    d::lat_b12.eq(d::lat_b12 + excluded(d::lat_b12)),
                    d::lat_b13.eq(d::lat_b13 + excluded(d::lat_b13)),
                    d::lat_b14.eq(d::lat_b14 + excluded(d::lat_b14)),
                    d::lat_b15.eq(d::lat_b15 + excluded(d::lat_b15)),
                ),
            ))
            .execute($c)
            .await?;
    }};
}

/// Rows per multi-row INSERT (keeps every backend under its bind-parameter limit).
const CHUNK: usize = 500;
/// Rows per UNNEST insert on PostgreSQL (20 array parameters whatever the size).
const CHUNK_PG: usize = 5_000;

#[derive(diesel::QueryableByName)]
struct CallId {
    #[diesel(sql_type = diesel::sql_types::Text)]
    call_id: String,
}

/// `INSERT INTO llm_usage_records SELECT * FROM UNNEST(...) ON CONFLICT DO NOTHING
/// RETURNING call_id` for PostgreSQL.
fn unnest_insert(
    rows: &[UsageRecordRow],
) -> diesel::query_builder::BoxedSqlQuery<'static, diesel::pg::Pg, diesel::query_builder::SqlQuery> {
    use aos_models::sql_types::{Json as J, UtcTimestamp as T, Uuid as U};
    use diesel::sql_types::{Array, BigInt, Nullable, Text};
    fn col<F: Fn(&UsageRecordRow) -> V, V>(rows: &[UsageRecordRow], f: F) -> Vec<V> {
        rows.iter().map(f).collect()
    }
    diesel::sql_query(
        "INSERT INTO llm_usage_records (id, tenant_id, integration_id, call_id, provider, model, input_tokens, \
         output_tokens, cached_tokens, cost_micros, cost_source, latency_ms, status, error_code, session_id, run_id, \
         trace_id, occurred_at, received_at, metadata) \
         SELECT * FROM UNNEST($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20) \
         ON CONFLICT (integration_id, call_id) DO NOTHING RETURNING call_id",
    )
    .into_boxed()
    .bind::<Array<U>, _>(col(rows, |r| r.id))
    .bind::<Array<U>, _>(col(rows, |r| r.tenant_id))
    .bind::<Array<U>, _>(col(rows, |r| r.integration_id))
    .bind::<Array<Text>, _>(col(rows, |r| r.call_id.clone()))
    .bind::<Array<Text>, _>(col(rows, |r| r.provider.clone()))
    .bind::<Array<Text>, _>(col(rows, |r| r.model.clone()))
    .bind::<Array<BigInt>, _>(col(rows, |r| r.input_tokens))
    .bind::<Array<BigInt>, _>(col(rows, |r| r.output_tokens))
    .bind::<Array<BigInt>, _>(col(rows, |r| r.cached_tokens))
    .bind::<Array<BigInt>, _>(col(rows, |r| r.cost_micros))
    .bind::<Array<Text>, _>(col(rows, |r| r.cost_source.clone()))
    .bind::<Array<Nullable<BigInt>>, _>(col(rows, |r| r.latency_ms))
    .bind::<Array<Text>, _>(col(rows, |r| r.status.clone()))
    .bind::<Array<Nullable<Text>>, _>(col(rows, |r| r.error_code.clone()))
    .bind::<Array<Nullable<Text>>, _>(col(rows, |r| r.session_id.clone()))
    .bind::<Array<Nullable<Text>>, _>(col(rows, |r| r.run_id.clone()))
    .bind::<Array<Nullable<Text>>, _>(col(rows, |r| r.trace_id.clone()))
    .bind::<Array<T>, _>(col(rows, |r| r.occurred_at))
    .bind::<Array<T>, _>(col(rows, |r| r.received_at))
    .bind::<Array<J>, _>(col(rows, |r| r.metadata.clone()))
}

pub async fn insert_integration(conn: &mut Conn, row: &IntegrationRow) -> DriverResult<IntegrationRow> {
    let row = on_backend!(conn, |c| diesel::insert_into(cus_integrations::table)
        .values(row)
        .returning(IntegrationRow::as_returning())
        .get_result(c)
        .await)?;
    Ok(row)
}

pub async fn get_integration(conn: &mut Conn, tenant_id: TenantId, id: IntegrationId) -> DriverResult<IntegrationRow> {
    let tenant_id = DbUuid::from(tenant_id);
    let id = DbUuid::from(id);
    let row = on_backend!(conn, |c| cus_integrations::table
        .filter(cus_integrations::tenant_id.eq(tenant_id))
        .find(id)
        .select(IntegrationRow::as_select())
        .first(c)
        .await)?;
    Ok(row)
}

/// Inserts the records that are new and returns their `call_id`s; records whose
/// `(integration_id, call_id)` already exists are left alone (idempotent retries, also
/// when two retries race: the unique index decides).
pub async fn insert_new_records(conn: &mut Conn, rows: &[UsageRecordRow]) -> DriverResult<Vec<String>> {
    let mut inserted = Vec::with_capacity(rows.len());
    match conn.backend_mut() {
        // PostgreSQL: one INSERT ... SELECT FROM UNNEST of column arrays per chunk: 20 bind
        // parameters instead of 20 per row, which PostgreSQL plans and parses far faster.
        BackendConn::Pg(c) => {
            for chunk in rows.chunks(CHUNK_PG) {
                let ids: Vec<CallId> = unnest_insert(chunk).get_results(c).await?;
                inserted.extend(ids.into_iter().map(|r| r.call_id));
            }
        }
        // SQLite cannot take a multi-row insert with ON CONFLICT through diesel; one
        // statement per row inside the caller's transaction is cheap in-process.
        BackendConn::Sqlite(c) => {
            for row in rows {
                let id: Option<String> = diesel::insert_into(llm_usage_records::table)
                    .values(row)
                    .on_conflict((llm_usage_records::integration_id, llm_usage_records::call_id))
                    .do_nothing()
                    .returning(llm_usage_records::call_id)
                    .get_result(c)
                    .await
                    .optional()?;
                inserted.extend(id);
            }
        }
    }
    Ok(inserted)
}

/// Adds each increment to its rollup row, creating it if needed.
pub async fn add_to_daily(conn: &mut Conn, increments: &[DailyUsageRow]) -> DriverResult<()> {
    match conn.backend_mut() {
        BackendConn::Pg(c) => {
            for chunk in increments.chunks(CHUNK / 4) {
                upsert_daily!(c, chunk);
            }
        }
        BackendConn::Sqlite(c) => {
            for row in increments {
                upsert_daily!(c, row);
            }
        }
    }
    Ok(())
}

/// Rollup rows of a tenant for days `from..=to` (`YYYY-MM-DD`), optionally one integration.
pub async fn daily_rows(
    conn: &mut Conn,
    tenant_id: TenantId,
    integration_id: Option<IntegrationId>,
    from: &str,
    to: &str,
) -> DriverResult<Vec<DailyUsageRow>> {
    let tenant_id = DbUuid::from(tenant_id);
    let integration_id = integration_id.map(DbUuid::from);
    let rows = on_backend!(conn, |c| {
        let mut query = llm_usage_daily::table
            .filter(llm_usage_daily::tenant_id.eq(tenant_id))
            .filter(llm_usage_daily::day.ge(from))
            .filter(llm_usage_daily::day.le(to))
            .select(DailyUsageRow::as_select())
            .order((
                llm_usage_daily::day.asc(),
                llm_usage_daily::provider.asc(),
                llm_usage_daily::model.asc(),
            ))
            .into_boxed();
        if let Some(id) = integration_id {
            query = query.filter(llm_usage_daily::integration_id.eq(id));
        }
        query.load(c).await
    })?;
    Ok(rows)
}

/// Raw records of a tenant in `[from, to)`, newest first, after the keyset cursor
/// `(occurred_at, id)`.
pub async fn records(
    conn: &mut Conn,
    tenant_id: TenantId,
    integration_id: Option<IntegrationId>,
    from: DbTime,
    to: DbTime,
    before: Option<(DbTime, DbUuid)>,
    limit: i64,
) -> DriverResult<Vec<UsageRecordRow>> {
    let tenant_id = DbUuid::from(tenant_id);
    let integration_id = integration_id.map(DbUuid::from);
    let rows = on_backend!(conn, |c| {
        let mut query = llm_usage_records::table
            .filter(llm_usage_records::tenant_id.eq(tenant_id))
            .filter(llm_usage_records::occurred_at.ge(from))
            .filter(llm_usage_records::occurred_at.lt(to))
            .select(UsageRecordRow::as_select())
            .order((llm_usage_records::occurred_at.desc(), llm_usage_records::id.desc()))
            .limit(limit)
            .into_boxed();
        if let Some(id) = integration_id {
            query = query.filter(llm_usage_records::integration_id.eq(id));
        }
        if let Some((at, id)) = before {
            query = query.filter(
                llm_usage_records::occurred_at
                    .lt(at)
                    .or(llm_usage_records::occurred_at.eq(at).and(llm_usage_records::id.lt(id))),
            );
        }
        query.load(c).await
    })?;
    Ok(rows)
}

pub async fn list_integrations(conn: &mut Conn, tenant_id: TenantId) -> DriverResult<Vec<IntegrationRow>> {
    let tenant_id = DbUuid::from(tenant_id);
    let rows = on_backend!(conn, |c| cus_integrations::table
        .filter(cus_integrations::tenant_id.eq(tenant_id))
        .order((cus_integrations::created_at.asc(), cus_integrations::id.asc()))
        .select(IntegrationRow::as_select())
        .load(c)
        .await)?;
    Ok(rows)
}

/// Sets an integration's name and/or status.
pub async fn update_integration(
    conn: &mut Conn,
    tenant_id: TenantId,
    id: IntegrationId,
    name: Option<String>,
    status: Option<String>,
    at: DbTime,
) -> DriverResult<IntegrationRow> {
    let tenant_id = DbUuid::from(tenant_id);
    let id = DbUuid::from(id);
    let row = on_backend!(conn, |c| diesel::update(
        cus_integrations::table
            .filter(cus_integrations::tenant_id.eq(tenant_id))
            .filter(cus_integrations::id.eq(id))
    )
    .set((
        name.clone().map(|n| cus_integrations::name.eq(n)),
        status.clone().map(|s| cus_integrations::status.eq(s)),
        cus_integrations::updated_at.eq(at),
    ))
    .returning(IntegrationRow::as_returning())
    .get_result(c)
    .await)?;
    Ok(row)
}

pub async fn insert_integration_key(conn: &mut Conn, row: &IntegrationKeyRow) -> DriverResult<IntegrationKeyRow> {
    let row = on_backend!(conn, |c| diesel::insert_into(cus_integration_keys::table)
        .values(row)
        .returning(IntegrationKeyRow::as_returning())
        .get_result(c)
        .await)?;
    Ok(row)
}

pub async fn integration_keys(
    conn: &mut Conn,
    tenant_id: TenantId,
    integration_id: IntegrationId,
) -> DriverResult<Vec<IntegrationKeyRow>> {
    let tenant_id = DbUuid::from(tenant_id);
    let integration_id = DbUuid::from(integration_id);
    let rows = on_backend!(conn, |c| cus_integration_keys::table
        .filter(cus_integration_keys::tenant_id.eq(tenant_id))
        .filter(cus_integration_keys::integration_id.eq(integration_id))
        .order((cus_integration_keys::created_at.asc(), cus_integration_keys::id.asc()))
        .select(IntegrationKeyRow::as_select())
        .load(c)
        .await)?;
    Ok(rows)
}

/// Sets the expiry and/or revocation of a key of `tenant_id`.
pub async fn update_integration_key(
    conn: &mut Conn,
    tenant_id: TenantId,
    id: IntegrationKeyId,
    expires_at: Option<DbTime>,
    revoked_at: Option<DbTime>,
) -> DriverResult<IntegrationKeyRow> {
    let tenant_id = DbUuid::from(tenant_id);
    let id = DbUuid::from(id);
    let row = on_backend!(conn, |c| diesel::update(
        cus_integration_keys::table
            .filter(cus_integration_keys::tenant_id.eq(tenant_id))
            .filter(cus_integration_keys::id.eq(id))
    )
    .set((
        expires_at.map(|t| cus_integration_keys::expires_at.eq(Some(t))),
        revoked_at.map(|t| cus_integration_keys::revoked_at.eq(Some(t))),
    ))
    .returning(IntegrationKeyRow::as_returning())
    .get_result(c)
    .await)?;
    Ok(row)
}

/// The key with this hash, whatever its tenant (authentication).
pub async fn find_integration_key(conn: &mut Conn, key_hash: &str) -> DriverResult<Option<IntegrationKeyRow>> {
    let row = on_backend!(conn, |c| cus_integration_keys::table
        .filter(cus_integration_keys::key_hash.eq(key_hash))
        .select(IntegrationKeyRow::as_select())
        .first(c)
        .await
        .optional())?;
    Ok(row)
}
