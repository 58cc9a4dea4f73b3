//! Approvals: PENDING → APPROVED | DENIED | EXPIRED, nothing else. Deciding is a
//! conditional update on the PENDING row, so of any number of concurrent deciders exactly
//! one wins; the others get a conflict.

use std::time::Duration;

use aos_drivers::{Conn, DriverError, governance as db};
use aos_models::governance::{ApprovalRow, ApprovalStatus};
use aos_models::{DbJson, DbTime, DbUuid};
use serde_json::{Value, json};

use super::audit::{self, Actor, Event};
use crate::error::{EngineError, EngineResult};

/// The subject type of a gated tool call; only the gateway creates these.
pub const TOOL_INVOCATION: &str = "mcp.tool_invocation";
const MAX_CONTEXT_BYTES: usize = 64 * 1024;

pub use aos_models::governance::ApprovalRow as Approval;

fn not_found(e: DriverError) -> EngineError {
    match e {
        DriverError::NotFound => EngineError::NotFound("approval"),
        other => other.into(),
    }
}

fn expiry(ttl: Duration) -> DbTime {
    let ttl = time::Duration::try_from(ttl).unwrap_or(time::Duration::HOUR);
    DbTime::from(DbTime::now().get() + ttl)
}

/// A new PENDING approval (and its `APPROVAL_REQUESTED` audit event).
#[allow(clippy::too_many_arguments)]
pub async fn create(
    conn: &mut Conn,
    tenant: uuid::Uuid,
    actor: &Actor,
    requested_by: &str,
    subject_type: &str,
    subject_id: &str,
    reason: Option<String>,
    context: Value,
    ttl: Duration,
) -> EngineResult<ApprovalRow> {
    let mut pending = audit::Pending::default();
    let row = create_deferred(
        conn,
        tenant,
        actor,
        requested_by,
        (subject_type, subject_id),
        reason,
        context,
        ttl,
        &mut pending,
    )
    .await?;
    pending.flush(conn, tenant).await?;
    Ok(row)
}

/// A new PENDING approval; its audit event goes into `pending`.
#[allow(clippy::too_many_arguments)]
pub async fn create_deferred(
    conn: &mut Conn,
    tenant: uuid::Uuid,
    actor: &Actor,
    requested_by: &str,
    (subject_type, subject_id): (&str, &str),
    reason: Option<String>,
    context: Value,
    ttl: Duration,
    pending: &mut audit::Pending,
) -> EngineResult<ApprovalRow> {
    let row = ApprovalRow {
        id: DbUuid::new_v7(),
        tenant_id: tenant.into(),
        subject_type: subject_type.to_owned(),
        subject_id: subject_id.to_owned(),
        status: ApprovalStatus::Pending.as_str().to_owned(),
        reason,
        context: DbJson(context),
        requested_by: requested_by.to_owned(),
        created_at: DbTime::now(),
        expires_at: expiry(ttl),
        decided_at: None,
        decided_by: None,
        decision_reason: None,
    };
    let row = db::insert_approval(conn, &row).await?;
    pending.push(
        actor,
        Event {
            event_type: "APPROVAL_REQUESTED",
            subject_type: "approval",
            subject_id: Some(row.id.to_string()),
            decision: Some("PENDING".into()),
            details: json!({"subject_type": row.subject_type, "subject_id": row.subject_id, "reason": row.reason,
                            "expires_at": row.expires_at.to_sortable_text()}),
            ..Event::default()
        },
    );
    Ok(row)
}

/// A request through the generic API: any subject type but the gateway's own.
#[allow(clippy::too_many_arguments)]
pub async fn create_generic(
    conn: &mut Conn,
    tenant: uuid::Uuid,
    actor: &Actor,
    requested_by: &str,
    subject_type: &str,
    subject_id: &str,
    reason: Option<String>,
    context: Option<Value>,
    ttl: Duration,
) -> EngineResult<ApprovalRow> {
    let valid_type = (1..=100).contains(&subject_type.len())
        && subject_type
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'));
    if !valid_type {
        return Err(EngineError::invalid(
            "subject_type",
            "must be 1 to 100 characters of letters, digits, _ . : -",
        ));
    }
    if subject_type == TOOL_INVOCATION {
        return Err(EngineError::invalid(
            "subject_type",
            "mcp.tool_invocation approvals are created by the gateway when a policy requires one",
        ));
    }
    if subject_id.trim().is_empty() || subject_id.chars().count() > 200 || subject_id.chars().any(char::is_control) {
        return Err(EngineError::invalid("subject_id", "must be 1 to 200 characters"));
    }
    if reason.as_deref().is_some_and(|r| r.chars().count() > 2000) {
        return Err(EngineError::invalid("reason", "must be at most 2000 characters"));
    }
    let context = context.unwrap_or_else(|| json!({}));
    if !context.is_object() || context.to_string().len() > MAX_CONTEXT_BYTES {
        return Err(EngineError::invalid(
            "context",
            "must be a JSON object of at most 64 KiB",
        ));
    }
    create(
        conn,
        tenant,
        actor,
        requested_by,
        subject_type,
        subject_id,
        reason,
        context,
        ttl,
    )
    .await
}

pub async fn get(conn: &mut Conn, tenant: uuid::Uuid, id: uuid::Uuid) -> EngineResult<ApprovalRow> {
    db::get_approval(conn, tenant.into(), id.into())
        .await
        .map_err(not_found)
}

pub async fn list(
    conn: &mut Conn,
    tenant: uuid::Uuid,
    status: Option<ApprovalStatus>,
    after: Option<(DbTime, DbUuid)>,
    limit: u32,
) -> EngineResult<(Vec<ApprovalRow>, Option<(DbTime, DbUuid)>)> {
    let limit = limit.clamp(1, 200);
    let rows = db::list_approvals(
        conn,
        tenant.into(),
        status.map(ApprovalStatus::as_str),
        after,
        i64::from(limit) + 1,
    )
    .await?;
    Ok(crate::paging::split(rows, limit, |r| (r.created_at, r.id)))
}

/// Approves or denies a PENDING approval (with its audit event). The requester may not
/// decide its own request unless `allow_self`. Anything but PENDING is a conflict.
#[allow(clippy::too_many_arguments)]
pub async fn decide(
    conn: &mut Conn,
    tenant: uuid::Uuid,
    id: uuid::Uuid,
    approve: bool,
    actor: &Actor,
    decided_by: &str,
    reason: Option<String>,
    allow_self: bool,
) -> EngineResult<ApprovalRow> {
    if reason.as_deref().is_some_and(|r| r.chars().count() > 2000) {
        return Err(EngineError::invalid("reason", "must be at most 2000 characters"));
    }
    let current = get(conn, tenant, id).await?;
    let now = DbTime::now();
    match current.status() {
        ApprovalStatus::Pending if current.expires_at <= now => {
            return Err(EngineError::Conflict("the approval has expired".into()));
        }
        ApprovalStatus::Pending => {}
        other => {
            return Err(EngineError::Conflict(format!(
                "the approval is already {}; only PENDING approvals can be decided",
                other.as_str()
            )));
        }
    }
    if !allow_self && current.requested_by == decided_by {
        return Err(EngineError::Forbidden(
            "the requester cannot decide its own approval".into(),
        ));
    }
    let status = if approve {
        ApprovalStatus::Approved
    } else {
        ApprovalStatus::Denied
    };
    let decided = db::decide_approval(
        conn,
        tenant.into(),
        id.into(),
        status.as_str(),
        decided_by,
        reason.as_deref(),
        now,
    )
    .await?
    .ok_or_else(|| EngineError::Conflict("the approval was decided concurrently".into()))?;
    audit::append(
        conn,
        tenant,
        actor,
        Event {
            event_type: if approve { "APPROVAL_GRANTED" } else { "APPROVAL_DENIED" },
            subject_type: "approval",
            subject_id: Some(decided.id.to_string()),
            decision: Some(status.as_str().into()),
            details: json!({"subject_type": decided.subject_type, "subject_id": decided.subject_id,
                            "reason": decided.decision_reason}),
            ..Event::default()
        },
    )
    .await?;
    Ok(decided)
}

/// Expires due PENDING approvals of every tenant (with their audit events); returns them
/// so the caller can settle what waited on them.
pub async fn expire_due(conn: &mut Conn, limit: i64) -> EngineResult<Vec<ApprovalRow>> {
    let expired = db::expire_due_approvals(conn, DbTime::now(), limit).await?;
    for row in &expired {
        audit::append(
            conn,
            row.tenant_id.into(),
            &Actor::system("approval-sweeper"),
            Event {
                event_type: "APPROVAL_EXPIRED",
                subject_type: "approval",
                subject_id: Some(row.id.to_string()),
                decision: Some("EXPIRED".into()),
                details: json!({"subject_type": row.subject_type, "subject_id": row.subject_id}),
                ..Event::default()
            },
        )
        .await?;
    }
    Ok(expired)
}

pub use aos_models::governance::ApprovalStatus as ApprovalStatusKind;
