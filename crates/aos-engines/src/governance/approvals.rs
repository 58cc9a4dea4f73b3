//! Approvals: PENDING → APPROVED | DENIED | EXPIRED, nothing else. Deciding is a
//! conditional update on the PENDING row, so of any number of concurrent deciders exactly
//! one wins; the others get a conflict.

use aos_types::{AuditEventType, SubjectKind};
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

/// What a new approval asks for.
#[derive(Debug, Clone)]
pub struct NewApproval<'a> {
    /// Who asks (`user:<id>`, `key:<id>`), compared with the decider's.
    pub requested_by: &'a str,
    pub subject_type: &'a str,
    pub subject_id: &'a str,
    pub reason: Option<String>,
    pub context: Value,
    /// Until it expires.
    pub ttl: Duration,
}

/// Approve or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Approve,
    Deny,
}

/// Whether the requester may decide its own request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelfDecision {
    Allowed,
    Refused,
}

/// Who decides an approval, and why.
#[derive(Debug, Clone)]
pub struct Decider<'a> {
    pub actor: &'a Actor,
    /// `user:<id>` or `key:<id>`, stored as `decided_by`.
    pub decided_by: &'a str,
    pub reason: Option<String>,
    pub own_requests: SelfDecision,
}

/// A new PENDING approval (and its `APPROVAL_REQUESTED` audit event).
pub async fn create(
    conn: &mut Conn,
    tenant: uuid::Uuid,
    actor: &Actor,
    new: NewApproval<'_>,
) -> EngineResult<ApprovalRow> {
    let mut pending = audit::Pending::default();
    let row = create_deferred(conn, tenant, actor, new, &mut pending).await?;
    pending.flush(conn, tenant).await?;
    Ok(row)
}

/// A new PENDING approval; its audit event goes into `pending`.
pub async fn create_deferred(
    conn: &mut Conn,
    tenant: uuid::Uuid,
    actor: &Actor,
    new: NewApproval<'_>,
    pending: &mut audit::Pending,
) -> EngineResult<ApprovalRow> {
    let NewApproval {
        requested_by,
        subject_type,
        subject_id,
        reason,
        context,
        ttl,
    } = new;
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
            event_type: AuditEventType::ApprovalRequested,
            subject_type: SubjectKind::Approval,
            subject_id: Some(row.id.to_string()),
            decision: Some("PENDING".into()),
            details: json!({"subject_type": row.subject_type, "subject_id": row.subject_id, "reason": row.reason,
                            "expires_at": row.expires_at.to_sortable_text()}),
            policy_revision: None,
        },
    );
    Ok(row)
}

/// A request through the generic API: any subject type but the gateway's own. `context`
/// is checked here (absent: an empty object).
pub async fn create_generic(
    conn: &mut Conn,
    tenant: uuid::Uuid,
    actor: &Actor,
    new: NewApproval<'_>,
) -> EngineResult<ApprovalRow> {
    let NewApproval {
        subject_type,
        subject_id,
        reason,
        context,
        ..
    } = &new;
    let context = if context.is_null() { json!({}) } else { context.clone() };
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
    if *subject_type == TOOL_INVOCATION {
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
    if !context.is_object() || context.to_string().len() > MAX_CONTEXT_BYTES {
        return Err(EngineError::invalid(
            "context",
            "must be a JSON object of at most 64 KiB",
        ));
    }
    create(conn, tenant, actor, NewApproval { context, ..new }).await
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
    let rows = db::list_approvals(conn, tenant.into(), status, after, i64::from(limit) + 1).await?;
    Ok(crate::paging::split(rows, limit, |r| (r.created_at, r.id)))
}

/// Approves or denies a PENDING approval (with its audit event). The requester may not
/// decide its own request unless the decider's `own_requests` allows it. Anything but
/// PENDING is a conflict.
pub async fn decide(
    conn: &mut Conn,
    tenant: uuid::Uuid,
    id: uuid::Uuid,
    verdict: Verdict,
    decider: Decider<'_>,
) -> EngineResult<ApprovalRow> {
    let Decider {
        actor,
        decided_by,
        reason,
        own_requests,
    } = decider;
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
    if own_requests == SelfDecision::Refused && current.requested_by == decided_by {
        return Err(EngineError::Forbidden(
            "the requester cannot decide its own approval".into(),
        ));
    }
    let status = match verdict {
        Verdict::Approve => ApprovalStatus::Approved,
        Verdict::Deny => ApprovalStatus::Denied,
    };
    let decided = db::decide_approval(
        conn,
        tenant.into(),
        id.into(),
        status,
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
            event_type: match verdict {
                Verdict::Approve => AuditEventType::ApprovalGranted,
                Verdict::Deny => AuditEventType::ApprovalDenied,
            },
            subject_type: SubjectKind::Approval,
            subject_id: Some(decided.id.to_string()),
            decision: Some(status.as_str().into()),
            details: json!({"subject_type": decided.subject_type, "subject_id": decided.subject_id,
                            "reason": decided.decision_reason}),
            policy_revision: None,
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
                event_type: AuditEventType::ApprovalExpired,
                subject_type: SubjectKind::Approval,
                subject_id: Some(row.id.to_string()),
                decision: Some("EXPIRED".into()),
                details: json!({"subject_type": row.subject_type, "subject_id": row.subject_id}),
                policy_revision: None,
            },
        )
        .await?;
    }
    Ok(expired)
}

pub use aos_models::governance::ApprovalStatus as ApprovalStatusKind;
