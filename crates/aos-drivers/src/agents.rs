//! Agent and agent-manifest CRUD. Every query filters by `tenant_id`; ids are typed.
//! Deleted agents stay (status `DELETED`) for audit and are left out of lists.

use aos_models::agent::{AgentChanges, AgentManifestRow, AgentRow};
use aos_models::schema::{agent_manifests, agents, api_keys};
use aos_models::{DbTime, DbUuid};
use aos_types::{AgentId, AgentStatus, TenantId};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::Conn;
use crate::error::DriverResult;

pub async fn insert(conn: &mut Conn, row: &AgentRow) -> DriverResult<AgentRow> {
    let row = on_backend!(conn, |c| diesel::insert_into(agents::table)
        .values(row)
        .returning(AgentRow::as_returning())
        .get_result(c)
        .await)?;
    Ok(row)
}

/// An agent of `tenant_id`, deleted or not; `NotFound` if it is another tenant's.
pub async fn get(conn: &mut Conn, tenant_id: TenantId, id: AgentId) -> DriverResult<AgentRow> {
    let tenant_id = DbUuid::from(tenant_id);
    let id = DbUuid::from(id);
    let row = on_backend!(conn, |c| agents::table
        .filter(agents::tenant_id.eq(tenant_id))
        .find(id)
        .select(AgentRow::as_select())
        .first(c)
        .await)?;
    Ok(row)
}

/// A page of `tenant_id`'s live (not deleted) agents in creation order.
pub async fn list(
    conn: &mut Conn,
    tenant_id: TenantId,
    after: Option<(DbTime, DbUuid)>,
    limit: i64,
) -> DriverResult<Vec<AgentRow>> {
    let tenant_id = DbUuid::from(tenant_id);
    let rows = on_backend!(conn, |c| {
        let mut query = agents::table
            .filter(agents::tenant_id.eq(tenant_id))
            .filter(agents::status.ne(AgentStatus::Deleted.as_str()))
            .select(AgentRow::as_select())
            .order((agents::created_at.asc(), agents::id.asc()))
            .limit(limit)
            .into_boxed();
        if let Some((at, id)) = after {
            query = query.filter(
                agents::created_at
                    .gt(at)
                    .or(agents::created_at.eq(at).and(agents::id.gt(id))),
            );
        }
        query.load(c).await
    })?;
    Ok(rows)
}

/// Applies `changes` to an agent of `tenant_id`; `NotFound` if it is another tenant's.
pub async fn update(
    conn: &mut Conn,
    tenant_id: TenantId,
    id: AgentId,
    changes: &AgentChanges,
) -> DriverResult<AgentRow> {
    let tenant_id = DbUuid::from(tenant_id);
    let id = DbUuid::from(id);
    let row = on_backend!(conn, |c| diesel::update(
        agents::table
            .filter(agents::tenant_id.eq(tenant_id))
            .filter(agents::id.eq(id))
    )
    .set(changes)
    .returning(AgentRow::as_returning())
    .get_result(c)
    .await)?;
    Ok(row)
}

/// Revokes every live key of the agent at `at`; returns how many.
pub async fn revoke_keys(conn: &mut Conn, tenant_id: TenantId, id: AgentId, at: DbTime) -> DriverResult<usize> {
    let tenant_id = DbUuid::from(tenant_id);
    let id = DbUuid::from(id);
    let n = on_backend!(conn, |c| diesel::update(
        api_keys::table
            .filter(api_keys::tenant_id.eq(tenant_id))
            .filter(api_keys::agent_id.eq(Some(id)))
            .filter(api_keys::revoked_at.is_null())
    )
    .set(api_keys::revoked_at.eq(Some(at)))
    .execute(c)
    .await)?;
    Ok(n)
}

pub async fn insert_manifest(conn: &mut Conn, row: &AgentManifestRow) -> DriverResult<AgentManifestRow> {
    let row = on_backend!(conn, |c| diesel::insert_into(agent_manifests::table)
        .values(row)
        .returning(AgentManifestRow::as_returning())
        .get_result(c)
        .await)?;
    Ok(row)
}

/// The agent's manifests, newest version first, at most `limit`.
pub async fn manifests(
    conn: &mut Conn,
    tenant_id: TenantId,
    agent_id: AgentId,
    limit: i64,
) -> DriverResult<Vec<AgentManifestRow>> {
    let tenant_id = DbUuid::from(tenant_id);
    let agent_id = DbUuid::from(agent_id);
    let rows = on_backend!(conn, |c| agent_manifests::table
        .filter(agent_manifests::tenant_id.eq(tenant_id))
        .filter(agent_manifests::agent_id.eq(agent_id))
        .order(agent_manifests::version.desc())
        .limit(limit)
        .select(AgentManifestRow::as_select())
        .load(c)
        .await)?;
    Ok(rows)
}

/// One manifest of the agent by version; `NotFound` if there is none.
pub async fn manifest(
    conn: &mut Conn,
    tenant_id: TenantId,
    agent_id: AgentId,
    version: i64,
) -> DriverResult<AgentManifestRow> {
    let tenant_id = DbUuid::from(tenant_id);
    let agent_id = DbUuid::from(agent_id);
    let row = on_backend!(conn, |c| agent_manifests::table
        .filter(agent_manifests::tenant_id.eq(tenant_id))
        .filter(agent_manifests::agent_id.eq(agent_id))
        .filter(agent_manifests::version.eq(version))
        .select(AgentManifestRow::as_select())
        .first(c)
        .await)?;
    Ok(row)
}

/// The agent's API keys (revoked ones too), in creation order.
pub async fn keys(
    conn: &mut Conn,
    tenant_id: TenantId,
    id: AgentId,
) -> DriverResult<Vec<aos_models::api_key::ApiKeyRow>> {
    let tenant_id = DbUuid::from(tenant_id);
    let id = DbUuid::from(id);
    let rows = on_backend!(conn, |c| api_keys::table
        .filter(api_keys::tenant_id.eq(tenant_id))
        .filter(api_keys::agent_id.eq(Some(id)))
        .order((api_keys::created_at.asc(), api_keys::id.asc()))
        .select(aos_models::api_key::ApiKeyRow::as_select())
        .load(c)
        .await)?;
    Ok(rows)
}
