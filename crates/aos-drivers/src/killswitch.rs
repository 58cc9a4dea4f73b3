//! Kill-switch state CRUD. Every query but [`frozen`] filters by tenant; [`frozen`] feeds
//! each replica's in-memory snapshot.

use aos_models::DbUuid;
use aos_models::killswitch::KillSwitchRow;
use aos_models::schema::killswitch_state;
use aos_types::TenantId;
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::RunQueryDsl;

use crate::db::Conn;
use crate::error::DriverResult;

/// Writes the entity's state (insert or replace).
pub async fn put(conn: &mut Conn, row: &KillSwitchRow) -> DriverResult<()> {
    on_backend!(conn, |c| diesel::insert_into(killswitch_state::table)
        .values(row)
        .on_conflict((killswitch_state::entity_type, killswitch_state::entity_id))
        .do_update()
        .set((
            killswitch_state::frozen.eq(excluded(killswitch_state::frozen)),
            killswitch_state::reason.eq(excluded(killswitch_state::reason)),
            killswitch_state::changed_by.eq(excluded(killswitch_state::changed_by)),
            killswitch_state::changed_at.eq(excluded(killswitch_state::changed_at)),
        ))
        .execute(c)
        .await)?;
    Ok(())
}

/// One entity's state in `tenant_id`, if it was ever frozen.
pub async fn get(
    conn: &mut Conn,
    tenant_id: TenantId,
    entity_type: &str,
    entity_id: DbUuid,
) -> DriverResult<Option<KillSwitchRow>> {
    let tenant_id = DbUuid::from(tenant_id);
    let row = on_backend!(conn, |c| killswitch_state::table
        .filter(killswitch_state::tenant_id.eq(tenant_id))
        .filter(killswitch_state::entity_type.eq(entity_type))
        .filter(killswitch_state::entity_id.eq(entity_id))
        .select(KillSwitchRow::as_select())
        .first(c)
        .await
        .optional())?;
    Ok(row)
}

/// Every state row of a tenant (frozen or not), tenant first, then keys.
pub async fn of_tenant(conn: &mut Conn, tenant_id: TenantId) -> DriverResult<Vec<KillSwitchRow>> {
    let tenant_id = DbUuid::from(tenant_id);
    let rows = on_backend!(conn, |c| killswitch_state::table
        .filter(killswitch_state::tenant_id.eq(tenant_id))
        .order((killswitch_state::entity_type.desc(), killswitch_state::entity_id.asc()))
        .select(KillSwitchRow::as_select())
        .load(c)
        .await)?;
    Ok(rows)
}

/// Everything frozen right now, across tenants (the replicas' snapshot).
pub async fn frozen(conn: &mut Conn) -> DriverResult<Vec<KillSwitchRow>> {
    let rows = on_backend!(conn, |c| killswitch_state::table
        .filter(killswitch_state::frozen.eq(true))
        .select(KillSwitchRow::as_select())
        .load(c)
        .await)?;
    Ok(rows)
}
