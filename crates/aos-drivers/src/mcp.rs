//! MCP registry CRUD (INV-2: deterministic database operations only — no HTTP, no MCP
//! protocol, no health checks). Every query filters by `tenant_id`, except the platform
//! sweeps [`servers_due_for_health`] and [`running_invocations_due`]. Ids are typed
//! (`TenantId`, `ServerId`, `ToolId`, `InvocationId`): two ids cannot be swapped.

use aos_models::mcp::{
    InvocationStatus, McpInvocationChanges, McpInvocationRow, McpServerChanges, McpServerRow, McpToolChanges,
    McpToolRow, NewMcpServer, NewMcpTool, ServerStatus,
};
use aos_models::schema::{mcp_servers, mcp_tool_invocations, mcp_tools};
use aos_models::{DbTime, DbUuid};
use aos_types::{InvocationId, ServerId, TenantId, ToolId};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::Conn;
use crate::error::DriverResult;

// ---- servers -------------------------------------------------------------------------

pub async fn insert_server(conn: &mut Conn, new: &NewMcpServer) -> DriverResult<McpServerRow> {
    let row = on_backend!(conn, |c| diesel::insert_into(mcp_servers::table)
        .values(new)
        .returning(McpServerRow::as_returning())
        .get_result(c)
        .await)?;
    Ok(row)
}

/// A server of `tenant_id`, deleted or not (deleted servers stay readable for audit).
pub async fn get_server(conn: &mut Conn, tenant_id: TenantId, id: ServerId) -> DriverResult<McpServerRow> {
    let tenant_id = DbUuid::from(tenant_id);
    let id = DbUuid::from(id);
    let row = on_backend!(conn, |c| mcp_servers::table
        .filter(mcp_servers::tenant_id.eq(tenant_id))
        .find(id)
        .select(McpServerRow::as_select())
        .first(c)
        .await)?;
    Ok(row)
}

/// The live (not deleted) server of `tenant_id` registered at `url`, if any.
pub async fn get_live_server_by_url(
    conn: &mut Conn,
    tenant_id: TenantId,
    url: &str,
) -> DriverResult<Option<McpServerRow>> {
    let tenant_id = DbUuid::from(tenant_id);
    let row = on_backend!(conn, |c| mcp_servers::table
        .filter(mcp_servers::tenant_id.eq(tenant_id))
        .filter(mcp_servers::url.eq(url))
        .filter(mcp_servers::deleted_at.is_null())
        .select(McpServerRow::as_select())
        .first(c)
        .await
        .optional())?;
    Ok(row)
}

/// A page of `tenant_id`'s servers in registration order; deleted ones only if asked.
pub async fn list_servers(
    conn: &mut Conn,
    tenant_id: TenantId,
    include_deleted: bool,
    after: Option<(DbTime, DbUuid)>,
    limit: i64,
) -> DriverResult<Vec<McpServerRow>> {
    let tenant_id = DbUuid::from(tenant_id);
    let rows = on_backend!(conn, |c| {
        let mut query = mcp_servers::table
            .filter(mcp_servers::tenant_id.eq(tenant_id))
            .select(McpServerRow::as_select())
            .order((mcp_servers::created_at.asc(), mcp_servers::id.asc()))
            .limit(limit)
            .into_boxed();
        if !include_deleted {
            query = query.filter(mcp_servers::deleted_at.is_null());
        }
        if let Some((at, id)) = after {
            query = query.filter(
                mcp_servers::created_at
                    .gt(at)
                    .or(mcp_servers::created_at.eq(at).and(mcp_servers::id.gt(id))),
            );
        }
        query.load(c).await
    })?;
    Ok(rows)
}

pub async fn count_servers(conn: &mut Conn, tenant_id: TenantId, include_deleted: bool) -> DriverResult<i64> {
    let tenant_id = DbUuid::from(tenant_id);
    let n = on_backend!(conn, |c| {
        let mut query = mcp_servers::table
            .filter(mcp_servers::tenant_id.eq(tenant_id))
            .count()
            .into_boxed();
        if !include_deleted {
            query = query.filter(mcp_servers::deleted_at.is_null());
        }
        query.get_result(c).await
    })?;
    Ok(n)
}

pub async fn update_server(
    conn: &mut Conn,
    tenant_id: TenantId,
    id: ServerId,
    changes: &McpServerChanges,
) -> DriverResult<McpServerRow> {
    let tenant_id = DbUuid::from(tenant_id);
    let id = DbUuid::from(id);
    let row = on_backend!(conn, |c| diesel::update(
        mcp_servers::table
            .filter(mcp_servers::tenant_id.eq(tenant_id))
            .filter(mcp_servers::id.eq(id))
    )
    .set(changes)
    .returning(McpServerRow::as_returning())
    .get_result(c)
    .await)?;
    Ok(row)
}

/// Marks a server DELETED (soft): hidden from lists, still readable by id.
pub async fn soft_delete_server(
    conn: &mut Conn,
    tenant_id: TenantId,
    id: ServerId,
    at: DbTime,
) -> DriverResult<McpServerRow> {
    let changes = McpServerChanges {
        status: Some(ServerStatus::Deleted.as_str().to_owned()),
        deleted_at: Some(Some(at)),
        updated_at: Some(at),
        ..McpServerChanges::default()
    };
    update_server(conn, tenant_id, id, &changes).await
}

/// Live servers of every tenant not health-checked since `before`, least recently
/// checked first (the platform health scheduler; not tenant-scoped by design).
pub async fn servers_due_for_health(conn: &mut Conn, before: DbTime, limit: i64) -> DriverResult<Vec<McpServerRow>> {
    let rows = on_backend!(conn, |c| mcp_servers::table
        .filter(mcp_servers::deleted_at.is_null())
        .filter(mcp_servers::status.ne(ServerStatus::Pending.as_str()))
        .filter(
            mcp_servers::last_health_check_at
                .is_null()
                .or(mcp_servers::last_health_check_at.lt(before))
        )
        .order((mcp_servers::last_health_check_at.asc(), mcp_servers::id.asc()))
        .limit(limit)
        .select(McpServerRow::as_select())
        .load(c)
        .await)?;
    Ok(rows)
}

// ---- tools ---------------------------------------------------------------------------

pub async fn insert_tool(conn: &mut Conn, new: &NewMcpTool) -> DriverResult<McpToolRow> {
    let row = on_backend!(conn, |c| diesel::insert_into(mcp_tools::table)
        .values(new)
        .returning(McpToolRow::as_returning())
        .get_result(c)
        .await)?;
    Ok(row)
}

/// Every tool of a server, available or not, by name.
pub async fn tools_of_server(
    conn: &mut Conn,
    tenant_id: TenantId,
    server_id: ServerId,
) -> DriverResult<Vec<McpToolRow>> {
    let tenant_id = DbUuid::from(tenant_id);
    let server_id = DbUuid::from(server_id);
    let rows = on_backend!(conn, |c| mcp_tools::table
        .filter(mcp_tools::tenant_id.eq(tenant_id))
        .filter(mcp_tools::server_id.eq(server_id))
        .order(mcp_tools::name.asc())
        .select(McpToolRow::as_select())
        .load(c)
        .await)?;
    Ok(rows)
}

/// `(server id, server name, tool name)` of every available tool of the tenant's live
/// servers, enabled or not (what the poisoning detector compares names against).
pub async fn tool_names(conn: &mut Conn, tenant_id: TenantId) -> DriverResult<Vec<(DbUuid, String, String)>> {
    let tenant_id = DbUuid::from(tenant_id);
    let rows = on_backend!(conn, |c| mcp_tools::table
        .inner_join(mcp_servers::table)
        .filter(mcp_tools::tenant_id.eq(tenant_id))
        .filter(mcp_servers::tenant_id.eq(tenant_id))
        .filter(mcp_servers::deleted_at.is_null())
        .filter(mcp_tools::available.eq(true))
        .select((mcp_servers::id, mcp_servers::name, mcp_tools::name))
        .load::<(DbUuid, String, String)>(c)
        .await)?;
    Ok(rows)
}

/// The tenant's callable catalog: enabled, available, non-quarantined tools of live
/// servers, with their server, ordered by server name, tool name and ids.
pub async fn catalog(conn: &mut Conn, tenant_id: TenantId) -> DriverResult<Vec<(McpServerRow, McpToolRow)>> {
    let tenant_id = DbUuid::from(tenant_id);
    let servers: Vec<McpServerRow> = on_backend!(conn, |c| mcp_servers::table
        .filter(mcp_servers::tenant_id.eq(tenant_id))
        .filter(mcp_servers::deleted_at.is_null())
        .select(McpServerRow::as_select())
        .load(c)
        .await)?;
    if servers.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<DbUuid> = servers.iter().map(|s| s.id).collect();
    let tools: Vec<McpToolRow> = on_backend!(conn, |c| mcp_tools::table
        .filter(mcp_tools::tenant_id.eq(tenant_id))
        .filter(mcp_tools::server_id.eq_any(&ids))
        .filter(mcp_tools::enabled.eq(true))
        .filter(mcp_tools::available.eq(true))
        .filter(mcp_tools::quarantined.eq(false))
        .select(McpToolRow::as_select())
        .load(c)
        .await)?;
    let by_id: std::collections::HashMap<DbUuid, McpServerRow> = servers.into_iter().map(|s| (s.id, s)).collect();
    let mut rows: Vec<(McpServerRow, McpToolRow)> = tools
        .into_iter()
        .filter_map(|tool| by_id.get(&tool.server_id).map(|server| (server.clone(), tool)))
        .collect();
    rows.sort_by(|(a_server, a), (b_server, b)| {
        (&a_server.name, &a.name, a.server_id.0, a.id.0).cmp(&(&b_server.name, &b.name, b.server_id.0, b.id.0))
    });
    Ok(rows)
}

pub async fn get_tool(
    conn: &mut Conn,
    tenant_id: TenantId,
    server_id: ServerId,
    id: ToolId,
) -> DriverResult<McpToolRow> {
    let tenant_id = DbUuid::from(tenant_id);
    let server_id = DbUuid::from(server_id);
    let id = DbUuid::from(id);
    let row = on_backend!(conn, |c| mcp_tools::table
        .filter(mcp_tools::tenant_id.eq(tenant_id))
        .filter(mcp_tools::server_id.eq(server_id))
        .find(id)
        .select(McpToolRow::as_select())
        .first(c)
        .await)?;
    Ok(row)
}

pub async fn update_tool(
    conn: &mut Conn,
    tenant_id: TenantId,
    id: ToolId,
    changes: &McpToolChanges,
) -> DriverResult<McpToolRow> {
    let tenant_id = DbUuid::from(tenant_id);
    let id = DbUuid::from(id);
    let row = on_backend!(conn, |c| diesel::update(
        mcp_tools::table
            .filter(mcp_tools::tenant_id.eq(tenant_id))
            .filter(mcp_tools::id.eq(id))
    )
    .set(changes)
    .returning(McpToolRow::as_returning())
    .get_result(c)
    .await)?;
    Ok(row)
}

// ---- invocations -------------------------------------------------------------------------

pub async fn insert_invocation(conn: &mut Conn, row: &McpInvocationRow) -> DriverResult<McpInvocationRow> {
    let row = on_backend!(conn, |c| diesel::insert_into(mcp_tool_invocations::table)
        .values(row)
        .returning(McpInvocationRow::as_returning())
        .get_result(c)
        .await)?;
    Ok(row)
}

/// Invocations of every tenant still RUNNING that started before `before`, oldest first
/// (the stranded-call reaper; not tenant-scoped by design, like every `*_due_*` sweep).
pub async fn running_invocations_due(
    conn: &mut Conn,
    before: DbTime,
    limit: i64,
) -> DriverResult<Vec<McpInvocationRow>> {
    let rows = on_backend!(conn, |c| mcp_tool_invocations::table
        .filter(mcp_tool_invocations::status.eq(InvocationStatus::Running.as_str()))
        .filter(mcp_tool_invocations::invoked_at.lt(before))
        .order((mcp_tool_invocations::invoked_at.asc(), mcp_tool_invocations::id.asc()))
        .limit(limit)
        .select(McpInvocationRow::as_select())
        .load(c)
        .await)?;
    Ok(rows)
}

/// The newest invocations of a server first.
pub async fn invocations_of_server(
    conn: &mut Conn,
    tenant_id: TenantId,
    server_id: ServerId,
    limit: i64,
) -> DriverResult<Vec<McpInvocationRow>> {
    let tenant_id = DbUuid::from(tenant_id);
    let server_id = DbUuid::from(server_id);
    let rows = on_backend!(conn, |c| mcp_tool_invocations::table
        .filter(mcp_tool_invocations::tenant_id.eq(tenant_id))
        .filter(mcp_tool_invocations::server_id.eq(server_id))
        .order((mcp_tool_invocations::invoked_at.desc(), mcp_tool_invocations::id.desc()))
        .limit(limit)
        .select(McpInvocationRow::as_select())
        .load(c)
        .await)?;
    Ok(rows)
}

pub async fn get_invocation(conn: &mut Conn, tenant_id: TenantId, id: InvocationId) -> DriverResult<McpInvocationRow> {
    let tenant_id = DbUuid::from(tenant_id);
    let id = DbUuid::from(id);
    let row = on_backend!(conn, |c| mcp_tool_invocations::table
        .filter(mcp_tool_invocations::tenant_id.eq(tenant_id))
        .find(id)
        .select(McpInvocationRow::as_select())
        .first(c)
        .await)?;
    Ok(row)
}

/// Records an invocation's outcome (its request fields never change).
pub async fn update_invocation(
    conn: &mut Conn,
    tenant_id: TenantId,
    id: InvocationId,
    changes: &McpInvocationChanges,
) -> DriverResult<McpInvocationRow> {
    let tenant_id = DbUuid::from(tenant_id);
    let id = DbUuid::from(id);
    let row = on_backend!(conn, |c| diesel::update(
        mcp_tool_invocations::table
            .filter(mcp_tool_invocations::tenant_id.eq(tenant_id))
            .filter(mcp_tool_invocations::id.eq(id))
    )
    .set(changes)
    .returning(McpInvocationRow::as_returning())
    .get_result(c)
    .await)?;
    Ok(row)
}

/// A tool of `tenant_id` by id alone (for routes that do not name the server).
pub async fn get_tool_by_id(conn: &mut Conn, tenant_id: TenantId, id: ToolId) -> DriverResult<McpToolRow> {
    let tenant_id = DbUuid::from(tenant_id);
    let id = DbUuid::from(id);
    let row = on_backend!(conn, |c| mcp_tools::table
        .filter(mcp_tools::tenant_id.eq(tenant_id))
        .find(id)
        .select(McpToolRow::as_select())
        .first(c)
        .await)?;
    Ok(row)
}
