//! Incidents: opened by failed or timed-out invocations, policy errors and tool
//! definition drift; resolved by a person.

use aos_drivers::{Conn, DriverError, governance as db};
use aos_models::governance::IncidentRow;
use aos_models::mcp::RiskLevel;
use aos_models::{DbJson, DbTime, DbUuid};
use aos_types::{AuditEventType, IncidentStatus, SubjectKind};
use serde_json::{Value, json};

use super::audit::{self, Actor, Event};
use crate::error::{EngineError, EngineResult};

pub use aos_models::governance::IncidentRow as Incident;
pub use db::IncidentFilter;

pub const INVOCATION_FAILED: &str = "INVOCATION_FAILED";
pub const INVOCATION_TIMEOUT: &str = "INVOCATION_TIMEOUT";
pub const POLICY_ERROR: &str = "POLICY_ERROR";
pub const TOOL_DRIFT: &str = "TOOL_DRIFT";
/// A manifest-pinned agent called a tool redefined since its latest manifest.
pub const AGENT_MANIFEST_MISMATCH: &str = "AGENT_MANIFEST_MISMATCH";
pub const KINDS: [&str; 5] = [
    INVOCATION_FAILED,
    INVOCATION_TIMEOUT,
    POLICY_ERROR,
    TOOL_DRIFT,
    AGENT_MANIFEST_MISMATCH,
];

/// What to open.
#[derive(Debug, Clone)]
pub struct NewIncident {
    pub kind: &'static str,
    pub severity: RiskLevel,
    pub title: String,
    pub details: Value,
    pub server_id: Option<uuid::Uuid>,
    pub tool_id: Option<uuid::Uuid>,
    pub invocation_id: Option<uuid::Uuid>,
}

/// Opens an incident (with its `INCIDENT_OPENED` audit event).
pub async fn open(conn: &mut Conn, tenant: uuid::Uuid, actor: &Actor, new: NewIncident) -> EngineResult<IncidentRow> {
    let mut pending = audit::Pending::default();
    let row = open_deferred(conn, tenant, actor, new, &mut pending).await?;
    pending.flush(conn, tenant).await?;
    Ok(row)
}

/// Opens an incident; its audit event goes into `pending`.
pub async fn open_deferred(
    conn: &mut Conn,
    tenant: uuid::Uuid,
    actor: &Actor,
    new: NewIncident,
    pending: &mut audit::Pending,
) -> EngineResult<IncidentRow> {
    let row = IncidentRow {
        id: DbUuid::new_v7(),
        tenant_id: tenant.into(),
        kind: new.kind.to_owned(),
        severity: new.severity.as_str().to_owned(),
        status: IncidentStatus::Open.as_str().into(),
        title: new.title,
        details: DbJson(new.details),
        server_id: new.server_id.map(Into::into),
        tool_id: new.tool_id.map(Into::into),
        invocation_id: new.invocation_id.map(Into::into),
        created_at: DbTime::now(),
        resolved_at: None,
        resolved_by: None,
        resolution: None,
    };
    let row = db::insert_incident(conn, &row).await?;
    pending.push(
        actor,
        Event {
            event_type: AuditEventType::IncidentOpened,
            subject_type: SubjectKind::Incident,
            subject_id: Some(row.id.to_string()),
            details: json!({"kind": row.kind, "severity": row.severity, "title": row.title,
                            "invocation_id": row.invocation_id.map(|i| i.to_string()),
                            "tool_id": row.tool_id.map(|i| i.to_string())}),
            decision: None,
            policy_revision: None,
        },
    );
    Ok(row)
}

pub async fn get(conn: &mut Conn, tenant: uuid::Uuid, id: uuid::Uuid) -> EngineResult<IncidentRow> {
    db::get_incident(conn, tenant.into(), id.into())
        .await
        .map_err(|e| match e {
            DriverError::NotFound => EngineError::NotFound("incident"),
            other => other.into(),
        })
}

pub async fn list(
    conn: &mut Conn,
    tenant: uuid::Uuid,
    filter: &IncidentFilter,
    after: Option<(DbTime, DbUuid)>,
    limit: u32,
) -> EngineResult<(Vec<IncidentRow>, Option<(DbTime, DbUuid)>)> {
    let limit = limit.clamp(1, 200);
    let rows = db::list_incidents(conn, tenant.into(), filter, after, i64::from(limit) + 1).await?;
    Ok(crate::paging::split(rows, limit, |r| (r.created_at, r.id)))
}

/// Resolves an OPEN incident; resolving twice is a conflict.
pub async fn resolve(
    conn: &mut Conn,
    tenant: uuid::Uuid,
    id: uuid::Uuid,
    actor: &Actor,
    by: &str,
    resolution: Option<String>,
) -> EngineResult<IncidentRow> {
    if resolution.as_deref().is_some_and(|r| r.chars().count() > 2000) {
        return Err(EngineError::invalid("resolution", "must be at most 2000 characters"));
    }
    let current = get(conn, tenant, id).await?;
    if current.status() != IncidentStatus::Open {
        return Err(EngineError::Conflict(format!(
            "the incident is already {}",
            current.status
        )));
    }
    let row = db::resolve_incident(conn, tenant.into(), id.into(), by, resolution.as_deref(), DbTime::now())
        .await?
        .ok_or_else(|| EngineError::Conflict("the incident was resolved concurrently".into()))?;
    audit::append(
        conn,
        tenant,
        actor,
        Event {
            event_type: AuditEventType::IncidentResolved,
            subject_type: SubjectKind::Incident,
            subject_id: Some(row.id.to_string()),
            details: json!({"resolution": row.resolution}),
            decision: None,
            policy_revision: None,
        },
    )
    .await?;
    Ok(row)
}
