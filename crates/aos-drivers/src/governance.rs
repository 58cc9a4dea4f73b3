//! Governance CRUD: the audit chain, approvals, incidents, policy modules. Every query
//! filters by `tenant_id`, except the approval sweeper's [`expire_due_approvals`] and the
//! platform policy reads.

use aos_models::governance::{ApprovalRow, ApprovalStatus, AuditEventRow, AuditHeadRow, IncidentRow, PolicyModuleRow};
use aos_models::schema::{approvals, audit_events, audit_heads, incidents, policy_modules};
use aos_models::{DbTime, DbUuid};
use aos_types::{ApprovalId, IncidentId, IncidentStatus, ServerId, TenantId, ToolId};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::{BackendConn, Conn};
use crate::error::DriverResult;

// ---- audit chain ---------------------------------------------------------------------

/// Locks `tenant_id`'s chain head for the rest of the transaction and returns it
/// (`seq` 0 and `genesis` for a new chain), in one statement: an upsert whose no-op update
/// takes the row lock on PostgreSQL (SQLite already holds the writer lock). Appends for
/// one tenant are serialised on it.
pub async fn lock_audit_head(conn: &mut Conn, tenant_id: TenantId, genesis: &str) -> DriverResult<AuditHeadRow> {
    let tenant_id = DbUuid::from(tenant_id);
    let fresh = AuditHeadRow {
        tenant_id,
        seq: 0,
        head_hash: genesis.to_owned(),
    };
    let head = on_backend!(conn, |c| diesel::insert_into(audit_heads::table)
        .values(&fresh)
        .on_conflict(audit_heads::tenant_id)
        .do_update()
        .set(audit_heads::seq.eq(audit_heads::seq))
        .returning(AuditHeadRow::as_returning())
        .get_result(c)
        .await)?;
    Ok(head)
}

/// Appends `events` (consecutive, of one tenant) and moves the head to the last. Call
/// after [`lock_audit_head`] in the same transaction.
pub async fn append_audit_events(conn: &mut Conn, events: &[AuditEventRow]) -> DriverResult<()> {
    let Some(last) = events.last() else {
        return Ok(());
    };
    match conn.backend_mut() {
        // One multi-row INSERT on PostgreSQL; SQLite (in-process) takes them one by one.
        BackendConn::Pg(c) => {
            diesel::insert_into(audit_events::table)
                .values(events)
                .execute(c)
                .await?;
        }
        BackendConn::Sqlite(c) => {
            for event in events {
                diesel::insert_into(audit_events::table)
                    .values(event)
                    .execute(c)
                    .await?;
            }
        }
    }
    on_backend!(conn, |c| diesel::update(audit_heads::table.find(last.tenant_id))
        .set((
            audit_heads::seq.eq(last.seq),
            audit_heads::head_hash.eq(&last.event_hash)
        ))
        .execute(c)
        .await)?;
    Ok(())
}

/// Filters for listing audit events.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub event_type: Option<String>,
    pub subject_type: Option<String>,
    pub subject_id: Option<String>,
    pub actor_id: Option<String>,
    pub since: Option<DbTime>,
    pub until: Option<DbTime>,
}

/// Events of `tenant_id` with `seq > after_seq`, in chain order.
pub async fn list_audit_events(
    conn: &mut Conn,
    tenant_id: TenantId,
    filter: &AuditFilter,
    after_seq: i64,
    limit: i64,
) -> DriverResult<Vec<AuditEventRow>> {
    let tenant_id = DbUuid::from(tenant_id);
    let rows = on_backend!(conn, |c| {
        let mut query = audit_events::table
            .filter(audit_events::tenant_id.eq(tenant_id))
            .filter(audit_events::seq.gt(after_seq))
            .select(AuditEventRow::as_select())
            .order(audit_events::seq.asc())
            .limit(limit)
            .into_boxed();
        if let Some(v) = &filter.event_type {
            query = query.filter(audit_events::event_type.eq(v.clone()));
        }
        if let Some(v) = &filter.subject_type {
            query = query.filter(audit_events::subject_type.eq(v.clone()));
        }
        if let Some(v) = &filter.subject_id {
            query = query.filter(audit_events::subject_id.eq(v.clone()));
        }
        if let Some(v) = &filter.actor_id {
            query = query.filter(audit_events::actor_id.eq(v.clone()));
        }
        if let Some(v) = filter.since {
            query = query.filter(audit_events::occurred_at.ge(v));
        }
        if let Some(v) = filter.until {
            query = query.filter(audit_events::occurred_at.lt(v));
        }
        query.load(c).await
    })?;
    Ok(rows)
}

pub async fn get_audit_head(conn: &mut Conn, tenant_id: TenantId) -> DriverResult<Option<AuditHeadRow>> {
    let tenant_id = DbUuid::from(tenant_id);
    let row = on_backend!(conn, |c| audit_heads::table
        .find(tenant_id)
        .select(AuditHeadRow::as_select())
        .first(c)
        .await
        .optional())?;
    Ok(row)
}

// ---- approvals -----------------------------------------------------------------------

pub async fn insert_approval(conn: &mut Conn, row: &ApprovalRow) -> DriverResult<ApprovalRow> {
    let row = on_backend!(conn, |c| diesel::insert_into(approvals::table)
        .values(row)
        .returning(ApprovalRow::as_returning())
        .get_result(c)
        .await)?;
    Ok(row)
}

pub async fn get_approval(conn: &mut Conn, tenant_id: TenantId, id: ApprovalId) -> DriverResult<ApprovalRow> {
    let tenant_id = DbUuid::from(tenant_id);
    let id = DbUuid::from(id);
    let row = on_backend!(conn, |c| approvals::table
        .filter(approvals::tenant_id.eq(tenant_id))
        .find(id)
        .select(ApprovalRow::as_select())
        .first(c)
        .await)?;
    Ok(row)
}

/// Moves a PENDING, unexpired approval to `status`. `None` when it was not PENDING (or
/// had expired): the caller lost the race or the transition is illegal. Concurrent
/// callers serialise on the row, so exactly one of them gets `Some`.
pub async fn decide_approval(
    conn: &mut Conn,
    tenant_id: TenantId,
    id: ApprovalId,
    status: ApprovalStatus,
    decided_by: &str,
    reason: Option<&str>,
    now: DbTime,
) -> DriverResult<Option<ApprovalRow>> {
    let tenant_id = DbUuid::from(tenant_id);
    let id = DbUuid::from(id);
    let row = on_backend!(conn, |c| diesel::update(
        approvals::table
            .filter(approvals::tenant_id.eq(tenant_id))
            .filter(approvals::id.eq(id))
            .filter(approvals::status.eq(ApprovalStatus::Pending.as_str()))
            .filter(approvals::expires_at.gt(now))
    )
    .set((
        approvals::status.eq(status.as_str()),
        approvals::decided_at.eq(Some(now)),
        approvals::decided_by.eq(Some(decided_by)),
        approvals::decision_reason.eq(reason),
    ))
    .returning(ApprovalRow::as_returning())
    .get_result(c)
    .await
    .optional())?;
    Ok(row)
}

/// Expires PENDING approvals whose time has passed (any tenant), up to `limit`.
pub async fn expire_due_approvals(conn: &mut Conn, now: DbTime, limit: i64) -> DriverResult<Vec<ApprovalRow>> {
    let due: Vec<DbUuid> = on_backend!(conn, |c| approvals::table
        .filter(approvals::status.eq(ApprovalStatus::Pending.as_str()))
        .filter(approvals::expires_at.le(now))
        .order(approvals::expires_at.asc())
        .limit(limit)
        .select(approvals::id)
        .load(c)
        .await)?;
    if due.is_empty() {
        return Ok(Vec::new());
    }
    let rows = on_backend!(conn, |c| diesel::update(
        approvals::table
            .filter(approvals::id.eq_any(&due))
            .filter(approvals::status.eq(ApprovalStatus::Pending.as_str()))
    )
    .set((
        approvals::status.eq(ApprovalStatus::Expired.as_str()),
        approvals::decided_at.eq(Some(now)),
        approvals::decided_by.eq(Some("system:expiry")),
    ))
    .returning(ApprovalRow::as_returning())
    .get_results(c)
    .await)?;
    Ok(rows)
}

pub async fn list_approvals(
    conn: &mut Conn,
    tenant_id: TenantId,
    status: Option<ApprovalStatus>,
    after: Option<(DbTime, DbUuid)>,
    limit: i64,
) -> DriverResult<Vec<ApprovalRow>> {
    let tenant_id = DbUuid::from(tenant_id);
    let rows = on_backend!(conn, |c| {
        let mut query = approvals::table
            .filter(approvals::tenant_id.eq(tenant_id))
            .select(ApprovalRow::as_select())
            .order((approvals::created_at.asc(), approvals::id.asc()))
            .limit(limit)
            .into_boxed();
        if let Some(status) = status {
            query = query.filter(approvals::status.eq(status.as_str()));
        }
        if let Some((at, id)) = after {
            query = query.filter(
                approvals::created_at
                    .gt(at)
                    .or(approvals::created_at.eq(at).and(approvals::id.gt(id))),
            );
        }
        query.load(c).await
    })?;
    Ok(rows)
}

// ---- incidents -----------------------------------------------------------------------

pub async fn insert_incident(conn: &mut Conn, row: &IncidentRow) -> DriverResult<IncidentRow> {
    let row = on_backend!(conn, |c| diesel::insert_into(incidents::table)
        .values(row)
        .returning(IncidentRow::as_returning())
        .get_result(c)
        .await)?;
    Ok(row)
}

pub async fn get_incident(conn: &mut Conn, tenant_id: TenantId, id: IncidentId) -> DriverResult<IncidentRow> {
    let tenant_id = DbUuid::from(tenant_id);
    let id = DbUuid::from(id);
    let row = on_backend!(conn, |c| incidents::table
        .filter(incidents::tenant_id.eq(tenant_id))
        .find(id)
        .select(IncidentRow::as_select())
        .first(c)
        .await)?;
    Ok(row)
}

/// Resolves an OPEN incident; `None` when it was not OPEN.
pub async fn resolve_incident(
    conn: &mut Conn,
    tenant_id: TenantId,
    id: IncidentId,
    by: &str,
    resolution: Option<&str>,
    now: DbTime,
) -> DriverResult<Option<IncidentRow>> {
    let tenant_id = DbUuid::from(tenant_id);
    let id = DbUuid::from(id);
    let row = on_backend!(conn, |c| diesel::update(
        incidents::table
            .filter(incidents::tenant_id.eq(tenant_id))
            .filter(incidents::id.eq(id))
            .filter(incidents::status.eq(IncidentStatus::Open.as_str()))
    )
    .set((
        incidents::status.eq(IncidentStatus::Resolved.as_str()),
        incidents::resolved_at.eq(Some(now)),
        incidents::resolved_by.eq(Some(by)),
        incidents::resolution.eq(resolution),
    ))
    .returning(IncidentRow::as_returning())
    .get_result(c)
    .await
    .optional())?;
    Ok(row)
}

/// Filters for listing incidents.
#[derive(Debug, Clone, Default)]
pub struct IncidentFilter {
    pub status: Option<IncidentStatus>,
    pub kind: Option<String>,
    pub severity: Option<String>,
    pub server_id: Option<ServerId>,
    pub tool_id: Option<ToolId>,
}

pub async fn list_incidents(
    conn: &mut Conn,
    tenant_id: TenantId,
    filter: &IncidentFilter,
    after: Option<(DbTime, DbUuid)>,
    limit: i64,
) -> DriverResult<Vec<IncidentRow>> {
    let tenant_id = DbUuid::from(tenant_id);
    let rows = on_backend!(conn, |c| {
        let mut query = incidents::table
            .filter(incidents::tenant_id.eq(tenant_id))
            .select(IncidentRow::as_select())
            .order((incidents::created_at.asc(), incidents::id.asc()))
            .limit(limit)
            .into_boxed();
        if let Some(v) = &filter.status {
            query = query.filter(incidents::status.eq(v.as_str()));
        }
        if let Some(v) = &filter.kind {
            query = query.filter(incidents::kind.eq(v.clone()));
        }
        if let Some(v) = &filter.severity {
            query = query.filter(incidents::severity.eq(v.clone()));
        }
        if let Some(v) = filter.server_id {
            query = query.filter(incidents::server_id.eq(DbUuid::from(v)));
        }
        if let Some(v) = filter.tool_id {
            query = query.filter(incidents::tool_id.eq(DbUuid::from(v)));
        }
        if let Some((at, id)) = after {
            query = query.filter(
                incidents::created_at
                    .gt(at)
                    .or(incidents::created_at.eq(at).and(incidents::id.gt(id))),
            );
        }
        query.load(c).await
    })?;
    Ok(rows)
}

// ---- policy modules ------------------------------------------------------------------

/// The active modules of the given owners (`platform` and/or a tenant id).
pub async fn active_policy_modules(conn: &mut Conn, owners: &[&str]) -> DriverResult<Vec<PolicyModuleRow>> {
    let owners: Vec<String> = owners.iter().map(|o| (*o).to_owned()).collect();
    let rows = on_backend!(conn, |c| policy_modules::table
        .filter(policy_modules::owner.eq_any(&owners))
        .filter(policy_modules::retired_at.is_null())
        .select(PolicyModuleRow::as_select())
        .load(c)
        .await)?;
    Ok(rows)
}

/// Retires `owner`'s active module (if any) and, given one, makes `new` active.
pub async fn replace_policy_module(
    conn: &mut Conn,
    owner: &str,
    new: Option<&PolicyModuleRow>,
    now: DbTime,
) -> DriverResult<Option<PolicyModuleRow>> {
    on_backend!(conn, |c| diesel::update(
        policy_modules::table
            .filter(policy_modules::owner.eq(owner))
            .filter(policy_modules::retired_at.is_null())
    )
    .set(policy_modules::retired_at.eq(Some(now)))
    .execute(c)
    .await)?;
    let Some(new) = new else {
        return Ok(None);
    };
    let row = on_backend!(conn, |c| diesel::insert_into(policy_modules::table)
        .values(new)
        .returning(PolicyModuleRow::as_returning())
        .get_result(c)
        .await)?;
    Ok(Some(row))
}
