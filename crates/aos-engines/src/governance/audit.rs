//! The per-tenant, append-only, tamper-evident audit chain.
//!
//! Event `n` of a tenant stores `prev_hash` (the `event_hash` of event `n - 1`, or 64
//! zeros for the first) and `event_hash = SHA-256(DOMAIN || prev_hash || "\n" ||
//! JCS(event))`, where `JCS(event)` is the RFC 8785 canonical JSON of the event's content
//! (tenant, seq, time, actor, type, subject, decision, policy revision, details). Editing,
//! removing or reordering any stored event breaks every hash from there on, which
//! [`verify`] finds.

use aos_drivers::{Conn, governance as db};
pub use aos_models::governance::AuditEventRow;
use aos_models::{DbJson, DbTime, DbUuid};
use aos_types::{ActorKind, AuditEventType, SubjectKind};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::error::EngineResult;

/// Separates audit hashes from every other SHA-256 the system computes.
pub const DOMAIN: &[u8] = b"aos.audit.v1\n";
/// `prev_hash` of a tenant's first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Who caused an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub kind: ActorKind,
    pub id: Option<String>,
}

impl Actor {
    pub fn system(what: &str) -> Self {
        Self {
            kind: ActorKind::System,
            id: Some(what.into()),
        }
    }

    /// Who, as stored in `created_by`/`changed_by` columns: the id, else the kind.
    pub fn name(&self) -> String {
        self.id.clone().unwrap_or_else(|| self.kind.as_str().to_owned())
    }
}

/// What happened.
#[derive(Debug, Clone)]
pub struct Event {
    pub event_type: AuditEventType,
    pub subject_type: SubjectKind,
    pub subject_id: Option<String>,
    pub decision: Option<String>,
    pub policy_revision: Option<String>,
    pub details: Value,
}

fn time_text(at: DbTime) -> String {
    at.to_sortable_text()
}

/// The canonical content of a stored event (everything but the hashes and the row id).
pub fn content(row: &AuditEventRow) -> Value {
    json!({
        "tenant_id": row.tenant_id.to_string(),
        "seq": row.seq,
        "occurred_at": time_text(row.occurred_at),
        "actor": {"type": row.actor_type, "id": row.actor_id},
        "type": row.event_type,
        "subject": {"type": row.subject_type, "id": row.subject_id},
        "decision": row.decision,
        "policy_revision": row.policy_revision,
        "details": row.details.0,
    })
}

/// `event_hash` of a stored event given the hash before it.
pub fn event_hash(prev_hash: &str, row: &AuditEventRow) -> String {
    let canonical =
        serde_json_canonicalizer::to_vec(&content(row)).unwrap_or_else(|_| content(row).to_string().into_bytes());
    let mut hasher = Sha256::new();
    hasher.update(DOMAIN);
    hasher.update(prev_hash.as_bytes());
    hasher.update(b"\n");
    hasher.update(&canonical);
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Appends one event to `tenant`'s chain. Must run inside a write transaction: the head
/// row stays locked until it commits, so appends for one tenant never interleave.
pub async fn append(conn: &mut Conn, tenant: uuid::Uuid, actor: &Actor, event: Event) -> EngineResult<AuditEventRow> {
    let mut rows = append_all(conn, tenant, vec![(actor.clone(), event)]).await?;
    rows.pop()
        .ok_or_else(|| crate::error::EngineError::Internal("no audit event appended".into()))
}

/// Appends several events in order, with one head lock and one insert. Call it last in
/// the transaction: the head row stays locked until commit.
pub async fn append_all(
    conn: &mut Conn,
    tenant: uuid::Uuid,
    events: Vec<(Actor, Event)>,
) -> EngineResult<Vec<AuditEventRow>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let head = db::lock_audit_head(conn, tenant.into(), GENESIS).await?;
    let (mut prev, mut seq) = (head.head_hash, head.seq);
    let now = DbTime::now();
    let mut rows = Vec::with_capacity(events.len());
    for (actor, event) in events {
        seq = seq.saturating_add(1);
        let mut row = AuditEventRow {
            id: DbUuid::new_v7(),
            tenant_id: tenant.into(),
            seq,
            occurred_at: now,
            actor_type: actor.kind.as_str().to_owned(),
            actor_id: actor.id,
            event_type: event.event_type.as_str().to_owned(),
            subject_type: event.subject_type.as_str().to_owned(),
            subject_id: event.subject_id,
            decision: event.decision,
            policy_revision: event.policy_revision,
            details: DbJson(if event.details.is_null() {
                json!({})
            } else {
                event.details
            }),
            prev_hash: prev.clone(),
            event_hash: String::new(),
        };
        row.event_hash = event_hash(&prev, &row);
        prev = row.event_hash.clone();
        rows.push(row);
    }
    db::append_audit_events(conn, &rows).await?;
    Ok(rows)
}

/// Events gathered during a transaction and appended at its end ([`Pending::flush`]), so
/// the tenant's chain head is locked only for the last moment of the transaction.
#[derive(Debug, Default)]
pub struct Pending(Vec<(Actor, Event)>);

impl Pending {
    pub fn push(&mut self, actor: &Actor, event: Event) {
        self.0.push((actor.clone(), event));
    }

    pub async fn flush(self, conn: &mut Conn, tenant: uuid::Uuid) -> EngineResult<Vec<AuditEventRow>> {
        append_all(conn, tenant, self.0).await
    }
}

pub use db::AuditFilter;

/// A page of events after `after_seq`, in chain order.
pub async fn list(
    conn: &mut Conn,
    tenant: uuid::Uuid,
    filter: &AuditFilter,
    after_seq: i64,
    limit: u32,
) -> EngineResult<(Vec<AuditEventRow>, Option<i64>)> {
    let limit = limit.clamp(1, 500);
    let mut rows = db::list_audit_events(conn, tenant.into(), filter, after_seq, i64::from(limit) + 1).await?;
    let next = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(|r| r.seq)
    } else {
        None
    };
    Ok((rows, next))
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub valid: bool,
    /// Events checked.
    pub length: i64,
    /// `event_hash` of the last event (GENESIS for an empty chain).
    pub head_hash: String,
    /// The first event whose link or hash does not hold.
    pub first_bad_seq: Option<i64>,
    pub reason: Option<String>,
}

/// Recomputes `tenant`'s whole chain in pages: every seq present and in order, every
/// `prev_hash` the previous `event_hash`, every `event_hash` recomputed, and the head row
/// pointing at the last event.
pub async fn verify(conn: &mut Conn, tenant: uuid::Uuid) -> EngineResult<Verification> {
    const PAGE: i64 = 1_000;
    let empty = db::AuditFilter::default();
    let (mut prev_hash, mut expected_seq, mut length) = (GENESIS.to_owned(), 1_i64, 0_i64);
    let bad = |seq: i64, length: i64, head: &str, why: String| Verification {
        valid: false,
        length,
        head_hash: head.to_owned(),
        first_bad_seq: Some(seq),
        reason: Some(why),
    };
    loop {
        let rows = db::list_audit_events(conn, tenant.into(), &empty, expected_seq - 1, PAGE).await?;
        let count = rows.len();
        for row in rows {
            if row.seq != expected_seq {
                return Ok(bad(
                    expected_seq,
                    length,
                    &prev_hash,
                    format!("event {expected_seq} is missing"),
                ));
            }
            if row.prev_hash != prev_hash {
                return Ok(bad(
                    row.seq,
                    length,
                    &prev_hash,
                    "prev_hash does not link to the previous event".into(),
                ));
            }
            let recomputed = event_hash(&prev_hash, &row);
            if recomputed != row.event_hash {
                return Ok(bad(
                    row.seq,
                    length,
                    &prev_hash,
                    "event_hash does not match the event's content".into(),
                ));
            }
            prev_hash = row.event_hash;
            expected_seq += 1;
            length += 1;
        }
        if (count as i64) < PAGE {
            break;
        }
    }
    if let Some(head) = db::get_audit_head(conn, tenant.into()).await?
        && (head.seq != length || head.head_hash != prev_hash)
    {
        return Ok(bad(
            length + 1,
            length,
            &prev_hash,
            format!("the chain head says seq {} but {length} events verify", head.seq),
        ));
    }
    Ok(Verification {
        valid: true,
        length,
        head_hash: prev_hash,
        first_bad_seq: None,
        reason: None,
    })
}
