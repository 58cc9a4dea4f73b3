//! Governed tool invocation (PIN-516 phase 4, steps 1 to 11), split into the steps the
//! spine sequences so that no transaction is held across a network call:
//!
//! 1. [`prepare`] (read): server, tool, tenant settings, active policy modules.
//! 2. [`validate_input`]: the input against the tool's input schema, before anything.
//! 3. policy ([`crate::governance::policy`]), outside any transaction (OPA is remote).
//! 4. [`admit`] (one write transaction): audit REQUESTED, ALLOWED or DENIED (and
//!    POLICY_ERROR with an incident when evaluation failed), the invocation record
//!    (RUNNING, BLOCKED or PENDING_APPROVAL with its approval), STARTED.
//! 5. [`execute`] (network): `tools/call` within the server's timeout and output cap.
//! 6. [`record_outcome`] (one write transaction): COMPLETED or FAILED, the outcome on the
//!    invocation, an incident for a failure or a timeout.
//!
//! An approval of a gated call runs [`admit_approved`] (the approval's transition plus
//! steps 4's ALLOWED and STARTED), then 5 and 6.

use aos_types::{AuditEventType, SubjectKind};
use std::time::{Duration, Instant};

use aos_drivers::{Conn, DriverError, governance as gov_db, mcp as db};
use aos_models::mcp::{InvocationStatus, McpInvocationChanges, McpInvocationRow};
use aos_models::{DbJson, DbTime, DbUuid};
use serde_json::{Map, Value, json};

use super::client::{McpRuntime, Target};
use super::hash::canonical_sha256;
use super::registry::{self, Server, Tool};
use crate::agents::{Admit, Capability, Grant};
use crate::error::{EngineError, EngineResult};
use crate::governance::approvals::{self, Approval, TOOL_INVOCATION};
use crate::governance::audit::{self, Actor, Event};
use crate::governance::incidents::{self, Incident, NewIncident};
use crate::governance::policy::{Decision, Module, Outcome, PLATFORM_PACKAGE, PolicyRequest, TENANT_PACKAGE};
use crate::governance::settings::{self as gov_settings, GovernanceSettings};

pub use aos_models::mcp::McpInvocationRow as Invocation;

/// What the caller asked.
#[derive(Debug, Clone, Default)]
pub struct InvokeRequest {
    pub input: Value,
    pub run_id: Option<String>,
    pub step_index: Option<i32>,
    pub actor_id: Option<String>,
    /// `machine` unless given.
    pub actor_type: Option<String>,
    pub trace_id: Option<String>,
}

/// Who is calling: the audit actor and the principal label (`key:..`, `user:..`) that
/// approvals compare against.
#[derive(Debug, Clone)]
pub struct Caller {
    pub actor: Actor,
    pub principal: String,
}

/// Everything the decision needs, read before it.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub server: Server,
    pub tool: Tool,
    pub settings: GovernanceSettings,
    pub modules: Vec<Module>,
    /// For an agent's call: what the agent may call (read with the rest).
    pub grant: Option<std::sync::Arc<Grant>>,
    /// The agent's capability that admits this tool (set by [`agent_admits`]).
    pub capability: Option<Capability>,
}

/// Step 1: the live server, its tool, the tenant's settings and active policy modules.
pub async fn prepare(
    conn: &mut Conn,
    tenant: uuid::Uuid,
    server_id: uuid::Uuid,
    tool_id: uuid::Uuid,
) -> EngineResult<Prepared> {
    let server = registry::get_live_server(conn, tenant, server_id).await?;
    let tool = registry::get_tool(conn, tenant, server_id, tool_id).await?;
    let settings = gov_settings::get(conn, tenant).await?;
    let modules = policy_modules(conn, tenant).await?;
    Ok(Prepared {
        server,
        tool,
        settings,
        modules,
        grant: None,
        capability: None,
    })
}

/// The platform's and the tenant's active policy modules, platform first.
async fn policy_modules(conn: &mut Conn, tenant: uuid::Uuid) -> EngineResult<Vec<Module>> {
    let tenant_owner = tenant.to_string();
    let modules = gov_db::active_policy_modules(conn, &[aos_models::governance::PLATFORM_OWNER, &tenant_owner])
        .await?
        .into_iter()
        .map(|m| Module {
            package: if m.owner == aos_models::governance::PLATFORM_OWNER {
                PLATFORM_PACKAGE
            } else {
                TENANT_PACKAGE
            },
            source: m.source,
            revision: m.revision,
        })
        .collect::<Vec<_>>();
    // Platform first: its reasons read first.
    let mut modules = modules;
    modules.sort_by_key(|m| m.package != PLATFORM_PACKAGE);
    Ok(modules)
}

/// Every catalog tool of the tenant (see [`aos_drivers::mcp::catalog`]) prepared for a
/// policy check, sharing one read of the settings and modules.
pub async fn prepare_catalog(conn: &mut Conn, tenant: uuid::Uuid) -> EngineResult<Vec<Prepared>> {
    let rows = db::catalog(conn, tenant.into()).await?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let settings = gov_settings::get(conn, tenant).await?;
    let modules = policy_modules(conn, tenant).await?;
    Ok(rows
        .into_iter()
        .map(|(server, tool)| Prepared {
            server,
            tool,
            settings,
            modules: modules.clone(),
            grant: None,
            capability: None,
        })
        .collect())
}

/// The policy question "may this caller see this tool?" (`purpose: list`, no arguments):
/// a non-empty [`Decision::hidden`] leaves it out of the caller's catalog.
pub fn catalog_policy_request(tenant: uuid::Uuid, caller: &Caller, prepared: &Prepared) -> PolicyRequest {
    let request = InvokeRequest {
        input: Value::Object(Map::new()),
        run_id: None,
        step_index: None,
        actor_id: None,
        actor_type: Some("agent".into()),
        trace_id: None,
    };
    let mut policy = policy_request(tenant, caller, &request, prepared);
    if let Some(input) = policy.input.as_object_mut() {
        input.insert("purpose".into(), json!("list"));
    }
    policy
}

fn check_text(field: &'static str, value: Option<&str>, max: usize) -> EngineResult<()> {
    match value {
        Some(v) if v.is_empty() || v.chars().count() > max || v.chars().any(char::is_control) => {
            Err(EngineError::invalid(
                field,
                format!("must be 1 to {max} characters without control characters"),
            ))
        }
        _ => Ok(()),
    }
}

/// Step 2: the request's own fields, and `input` against the tool's input schema. A
/// mismatch is [`EngineError::InvalidInput`] listing the schema errors (never the values).
pub fn validate_input(tool: &Tool, request: &InvokeRequest) -> EngineResult<Map<String, Value>> {
    check_text("run_id", request.run_id.as_deref(), 200)?;
    check_text("actor_id", request.actor_id.as_deref(), 200)?;
    check_text("trace_id", request.trace_id.as_deref(), 200)?;
    if request
        .actor_type
        .as_deref()
        .is_some_and(|kind| !matches!(kind, "machine" | "human" | "agent" | "system"))
    {
        return Err(EngineError::invalid(
            "actor_type",
            "must be one of machine, human, agent, system",
        ));
    }
    if request.step_index.is_some_and(|i| i < 0) {
        return Err(EngineError::invalid("step_index", "must not be negative"));
    }
    let Value::Object(arguments) = &request.input else {
        return Err(EngineError::InvalidInput(vec![
            "/: must be a JSON object (the tool's arguments)".into(),
        ]));
    };
    let validator = jsonschema::validator_for(&tool.input_schema.0).map_err(|e| {
        EngineError::Upstream(format!(
            "the tool's input schema is not a valid JSON Schema: {}",
            e.masked()
        ))
    })?;
    let errors: Vec<String> = validator
        .iter_errors(&request.input)
        .take(10)
        .map(|e| {
            let path = e.instance_path().to_string();
            format!("{}: {}", if path.is_empty() { "/" } else { &path }, e.masked())
        })
        .collect();
    if !errors.is_empty() {
        return Err(EngineError::InvalidInput(errors));
    }
    Ok(arguments.clone())
}

/// The policy input document (see `default.rego`).
pub fn policy_request(
    tenant: uuid::Uuid,
    caller: &Caller,
    request: &InvokeRequest,
    prepared: &Prepared,
) -> PolicyRequest {
    let tool = &prepared.tool;
    let server = &prepared.server;
    PolicyRequest {
        input: json!({
            "tenant": {"id": tenant.to_string(), "settings": {
                "high_requires_approval": prepared.settings.high_requires_approval}},
            "actor": {"id": request.actor_id.clone().unwrap_or_else(|| caller.principal.clone()),
                      "type": request.actor_type.clone().unwrap_or_else(|| "machine".into()),
                      "principal": caller.principal},
            "server": {"id": server.id.to_string(), "name": server.name, "url": server.url, "status": server.status},
            "tool": {"id": tool.id.to_string(), "name": tool.name, "risk": tool.risk().as_str(),
                     "enabled": tool.enabled && tool.available,
                     "requires_approval": tool.requires_approval,
                     // Quarantined, or a definition nobody approved: never callable.
                     "quarantined": tool.quarantined || (tool.enabled && !tool.pinned()),
                     "flags": tool.flags.0, "annotations": tool.annotations.as_ref().map(|a| a.0.clone())},
            "arguments": request.input,
            "run": {"run_id": request.run_id, "step_index": request.step_index, "trace_id": request.trace_id},
            "purpose": "call",
            "agent": prepared.grant.as_ref().map(|g| g.policy_input()),
            "capability": prepared.capability,
        }),
        modules: prepared.modules.clone(),
    }
}

/// What [`admit`] recorded.
#[derive(Debug, Clone)]
pub struct Admission {
    pub invocation: Invocation,
    pub decision: Decision,
    pub approval: Option<Approval>,
    pub incident: Option<Incident>,
}

fn subject(tool: &Tool) -> Option<String> {
    Some(tool.id.to_string())
}

fn decision_details(decision: &Decision, invocation_id: DbUuid) -> Value {
    json!({"invocation_id": invocation_id.to_string(), "decision_id": decision.decision_id,
           "policy_id": decision.policy_id, "reasons": decision.reasons, "flags": decision.flags})
}

/// Step 4: records the request and the decision (one write transaction).
pub async fn admit(
    conn: &mut Conn,
    tenant: uuid::Uuid,
    caller: &Caller,
    request: &InvokeRequest,
    prepared: &Prepared,
    decision: Decision,
    approval_ttl: Duration,
) -> EngineResult<Admission> {
    let (tool, server) = (&prepared.tool, &prepared.server);
    let invocation_id = DbUuid::new_v7();
    let input_hash = canonical_sha256(&request.input);
    let now = DbTime::now();
    let revision = Some(decision.revision.clone());
    let mut pending = audit::Pending::default();
    requested(&mut pending, caller, request, prepared, invocation_id, &input_hash);
    let mut incident = None;
    if let Some(error) = &decision.error {
        pending.push(
            &caller.actor,
            Event {
                event_type: AuditEventType::PolicyError,
                subject_type: SubjectKind::McpTool,
                subject_id: subject(tool),
                decision: Some("blocked".into()),
                policy_revision: revision.clone(),
                details: json!({"invocation_id": invocation_id.to_string(), "error": error}),
            },
        );
        incident = Some(
            incidents::open_deferred(
                conn,
                tenant,
                &Actor::system("policy"),
                NewIncident {
                    kind: incidents::POLICY_ERROR,
                    severity: tool.risk(),
                    title: format!("policy evaluation failed for {}", tool.name),
                    details: json!({"error": error, "policy_id": decision.policy_id}),
                    server_id: Some(server.id.into()),
                    tool_id: Some(tool.id.into()),
                    invocation_id: Some(invocation_id.into()),
                },
                &mut pending,
            )
            .await?,
        );
    }
    let mut row = new_row(invocation_id, tenant, caller, request, prepared, now, input_hash);
    row.policy_decision = Some(decision.label().into());
    row.policy_decision_id = Some(decision.decision_id.clone());
    row.policy_id = Some(decision.policy_id.clone());
    row.policy_revision = revision.clone();
    row.policy_reasons = Some(DbJson(json!(decision.reasons)));
    row.incident_id = incident.as_ref().map(|i| i.id);
    let mut approval = None;
    match decision.outcome {
        Outcome::Deny => {
            pending.push(
                &caller.actor,
                Event {
                    event_type: AuditEventType::ToolInvocationDenied,
                    subject_type: SubjectKind::McpTool,
                    subject_id: subject(tool),
                    decision: Some("blocked".into()),
                    policy_revision: revision,
                    details: decision_details(&decision, invocation_id),
                },
            );
            row.status = InvocationStatus::Blocked.as_str().into();
            row.error_code = Some(
                if decision.error.is_some() {
                    "POLICY_ERROR"
                } else {
                    "POLICY_DENIED"
                }
                .into(),
            );
            row.error_message = Some(decision.reasons.join("; "));
            row.completed_at = Some(now);
            row.duration_ms = Some(0);
            db::insert_invocation(conn, &row).await?;
        }
        Outcome::RequireApproval => {
            let subject_id = invocation_id.to_string();
            let new = approvals::NewApproval {
                requested_by: &caller.principal,
                subject_type: TOOL_INVOCATION,
                subject_id: &subject_id,
                reason: Some(decision.reasons.join("; ")),
                context: json!({"invocation_id": invocation_id.to_string(), "server_id": server.id.to_string(),
                       "server_name": server.name, "tool_id": tool.id.to_string(), "tool_name": tool.name,
                       "tool_hash": tool.tool_hash, "risk_level": tool.risk().as_str(), "input": request.input,
                       "run_id": request.run_id, "trace_id": request.trace_id,
                       "decision_id": decision.decision_id, "policy_id": decision.policy_id}),
                ttl: approval_ttl,
            };
            let created = approvals::create_deferred(conn, tenant, &caller.actor, new, &mut pending).await?;
            row.status = InvocationStatus::PendingApproval.as_str().into();
            row.approval_id = Some(created.id);
            db::insert_invocation(conn, &row).await?;
            pending.push(
                &caller.actor,
                Event {
                    event_type: AuditEventType::ToolInvocationPendingApproval,
                    subject_type: SubjectKind::McpTool,
                    subject_id: subject(tool),
                    decision: Some("pending_approval".into()),
                    policy_revision: revision,
                    details: json!({"invocation_id": invocation_id.to_string(), "approval_id": created.id.to_string(),
                                    "decision_id": decision.decision_id, "reasons": decision.reasons}),
                },
            );
            approval = Some(created);
        }
        Outcome::Allow => {
            pending.push(
                &caller.actor,
                Event {
                    event_type: AuditEventType::ToolInvocationAllowed,
                    subject_type: SubjectKind::McpTool,
                    subject_id: subject(tool),
                    decision: Some(decision.label().into()),
                    policy_revision: revision,
                    details: decision_details(&decision, invocation_id),
                },
            );
            db::insert_invocation(conn, &row).await?;
            started(&mut pending, &caller.actor, tool, invocation_id);
        }
    }
    // Last: the chain head stays locked only until the commit right after.
    pending.flush(conn, tenant).await?;
    Ok(Admission {
        invocation: row,
        decision,
        approval,
        incident,
    })
}

/// A RUNNING invocation row of this call, before the decision.
fn new_row(
    id: DbUuid,
    tenant: uuid::Uuid,
    caller: &Caller,
    request: &InvokeRequest,
    prepared: &Prepared,
    now: DbTime,
    input_hash: String,
) -> McpInvocationRow {
    // An agent's calls are the agent's, whatever the request says it is.
    let (actor_id, actor_type) = match (&prepared.grant, caller.actor.kind) {
        (Some(_), aos_types::ActorKind::Agent) => (Some(caller.principal.clone()), "agent".to_owned()),
        _ => (
            request.actor_id.clone().or_else(|| Some(caller.principal.clone())),
            request.actor_type.clone().unwrap_or_else(|| "machine".into()),
        ),
    };
    McpInvocationRow {
        id,
        tenant_id: tenant.into(),
        server_id: prepared.server.id,
        tool_id: prepared.tool.id,
        run_id: request.run_id.clone(),
        step_index: request.step_index,
        actor_id,
        actor_type,
        trace_id: request.trace_id.clone(),
        status: InvocationStatus::Running.as_str().into(),
        error_code: None,
        error_message: None,
        policy_decision: None,
        policy_decision_id: None,
        input_hash,
        output_hash: None,
        invoked_at: now,
        completed_at: None,
        duration_ms: None,
        policy_id: None,
        policy_revision: None,
        policy_reasons: None,
        incident_id: None,
        approval_id: None,
        output_bytes: None,
    }
}

/// Why an agent may not make this call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentRefusal {
    /// No capability of the agent selects the tool.
    NotGranted,
    /// The agent is manifest-pinned and the tool's definition is not its manifest's.
    ManifestMismatch { version: Option<i64> },
}

impl AgentRefusal {
    /// The invocation's `error_code`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotGranted => "CAPABILITY_NOT_GRANTED",
            Self::ManifestMismatch { .. } => "AGENT_MANIFEST_MISMATCH",
        }
    }
}

/// Whether the agent in `prepared` may call its tool; on success the admitting
/// capability is set for the policy. A caller without an agent passes.
pub fn agent_admits(prepared: &mut Prepared) -> Result<(), AgentRefusal> {
    let Some(grant) = prepared.grant.clone() else {
        return Ok(());
    };
    let name = super::gateway::base_name(&prepared.server.name, &prepared.tool.name);
    match grant.admit(&name, prepared.tool.risk(), &prepared.tool.tool_hash) {
        Admit::Granted(capability) => {
            prepared.capability = Some(capability.clone());
            Ok(())
        }
        Admit::NotGranted => Err(AgentRefusal::NotGranted),
        Admit::ManifestMismatch => Err(AgentRefusal::ManifestMismatch {
            version: grant.manifest_version(),
        }),
    }
}

/// Records an agent's call outside its capabilities (one write transaction): the
/// request and the refusal in the audit chain, the invocation BLOCKED with the reason,
/// and for a manifest mismatch an incident. Nothing goes upstream.
pub async fn refuse_for_agent(
    conn: &mut Conn,
    tenant: uuid::Uuid,
    caller: &Caller,
    request: &InvokeRequest,
    prepared: &Prepared,
    refusal: &AgentRefusal,
) -> EngineResult<(Invocation, String)> {
    let (tool, server) = (&prepared.tool, &prepared.server);
    let agent = prepared
        .grant
        .as_ref()
        .map(|g| g.agent.name.clone())
        .unwrap_or_default();
    let name = super::gateway::base_name(&server.name, &tool.name);
    let reason = match refusal {
        AgentRefusal::NotGranted => format!("capability_not_granted: agent {agent:?} has no capability for {name}"),
        AgentRefusal::ManifestMismatch { version: Some(v) } => format!(
            "capability_not_granted: {name} changed since manifest v{v} of manifest-pinned agent {agent:?}; issue a new manifest"
        ),
        AgentRefusal::ManifestMismatch { version: None } => {
            format!("capability_not_granted: manifest-pinned agent {agent:?} has no manifest yet")
        }
    };
    let invocation_id = DbUuid::new_v7();
    let now = DbTime::now();
    let mut pending = audit::Pending::default();
    let input_hash = canonical_sha256(&request.input);
    requested(&mut pending, caller, request, prepared, invocation_id, &input_hash);
    pending.push(
        &caller.actor,
        Event {
            event_type: match refusal {
                AgentRefusal::NotGranted => AuditEventType::CapabilityNotGranted,
                AgentRefusal::ManifestMismatch { .. } => AuditEventType::AgentManifestMismatch,
            },
            subject_type: SubjectKind::McpTool,
            subject_id: subject(tool),
            decision: Some("blocked".into()),
            policy_revision: None,
            details: json!({"invocation_id": invocation_id.to_string(), "agent_id": prepared.grant.as_ref().map(|g| g.agent.id.to_string()),
                            "tool": name, "tool_hash": tool.tool_hash, "reason": reason}),
        },
    );
    let incident = match refusal {
        AgentRefusal::ManifestMismatch { .. } => Some(
            incidents::open_deferred(
                conn,
                tenant,
                &Actor::system("agents"),
                NewIncident {
                    kind: incidents::AGENT_MANIFEST_MISMATCH,
                    severity: tool.risk(),
                    title: format!("{name} no longer matches the manifest of agent {agent}"),
                    details: json!({"agent_id": prepared.grant.as_ref().map(|g| g.agent.id.to_string()),
                                    "tool_hash": tool.tool_hash, "reason": reason}),
                    server_id: Some(server.id.into()),
                    tool_id: Some(tool.id.into()),
                    invocation_id: Some(invocation_id.into()),
                },
                &mut pending,
            )
            .await?,
        ),
        AgentRefusal::NotGranted => None,
    };
    let mut row = new_row(invocation_id, tenant, caller, request, prepared, now, input_hash);
    blocked(&mut row, refusal.code(), &reason, "aos.agents", now);
    row.incident_id = incident.as_ref().map(|i| i.id);
    db::insert_invocation(conn, &row).await?;
    pending.flush(conn, tenant).await?;
    Ok((row, reason))
}

/// Marks a row BLOCKED before the call, with its code and reason.
fn blocked(row: &mut McpInvocationRow, code: &str, reason: &str, by: &str, now: DbTime) {
    row.status = InvocationStatus::Blocked.as_str().into();
    row.error_code = Some(code.into());
    row.error_message = Some(reason.to_owned());
    row.policy_decision = Some("blocked".into());
    row.policy_id = Some(by.into());
    row.policy_reasons = Some(DbJson(json!([reason])));
    row.completed_at = Some(now);
    row.duration_ms = Some(0);
}

/// Records a call refused by the server's `max_calls_per_minute` (one write
/// transaction): the request and a DENIED event in the audit chain, the invocation BLOCKED
/// with `RATE_LIMITED`. Nothing reaches the server.
pub async fn refuse_rate_limited(
    conn: &mut Conn,
    tenant: uuid::Uuid,
    caller: &Caller,
    request: &InvokeRequest,
    prepared: &Prepared,
    limit: u32,
) -> EngineResult<(Invocation, String)> {
    let reason = format!(
        "rate_limited: {} takes at most {limit} governed calls per minute",
        prepared.server.name
    );
    let invocation_id = DbUuid::new_v7();
    let now = DbTime::now();
    let mut pending = audit::Pending::default();
    let input_hash = canonical_sha256(&request.input);
    requested(&mut pending, caller, request, prepared, invocation_id, &input_hash);
    pending.push(
        &caller.actor,
        Event {
            event_type: AuditEventType::ToolInvocationDenied,
            subject_type: SubjectKind::McpTool,
            subject_id: subject(&prepared.tool),
            decision: Some("blocked".into()),
            policy_revision: None,
            details: json!({"invocation_id": invocation_id.to_string(), "reasons": [reason],
                            "policy_id": "aos.protection"}),
        },
    );
    let mut row = new_row(invocation_id, tenant, caller, request, prepared, now, input_hash);
    blocked(&mut row, "RATE_LIMITED", &reason, "aos.protection", now);
    db::insert_invocation(conn, &row).await?;
    pending.flush(conn, tenant).await?;
    Ok((row, reason))
}

/// `TOOL_INVOCATION_REQUESTED`: the first event of every governed call.
fn requested(
    pending: &mut audit::Pending,
    caller: &Caller,
    request: &InvokeRequest,
    prepared: &Prepared,
    invocation: DbUuid,
    input_hash: &str,
) {
    let (tool, server) = (&prepared.tool, &prepared.server);
    pending.push(
        &caller.actor,
        Event {
            event_type: AuditEventType::ToolInvocationRequested,
            subject_type: SubjectKind::McpTool,
            subject_id: subject(tool),
            details: json!({"invocation_id": invocation.to_string(), "server_id": server.id.to_string(),
                            "tool": tool.name, "input_hash": input_hash, "run_id": request.run_id,
                            "step_index": request.step_index, "trace_id": request.trace_id}),
            decision: None,
            policy_revision: None,
        },
    );
}

fn started(pending: &mut audit::Pending, actor: &Actor, tool: &Tool, invocation: DbUuid) {
    pending.push(
        actor,
        Event {
            event_type: AuditEventType::ToolInvocationStarted,
            subject_type: SubjectKind::McpTool,
            subject_id: subject(tool),
            details: json!({"invocation_id": invocation.to_string()}),
            decision: None,
            policy_revision: None,
        },
    );
}

/// The limits of one call to a server.
#[derive(Debug, Clone, Copy)]
pub struct CallLimits {
    pub timeout: Duration,
    pub max_output_bytes: usize,
}

/// The server's limits, or the platform defaults.
pub fn limits(runtime: &McpRuntime, server: &Server) -> CallLimits {
    let timeout_ms = server
        .call_timeout_ms
        .and_then(|v| u64::try_from(v).ok())
        .unwrap_or(runtime.settings.call_timeout_ms);
    let max_output = server
        .max_output_bytes
        .and_then(|v| usize::try_from(v).ok())
        .unwrap_or(runtime.settings.max_output_bytes);
    CallLimits {
        timeout: Duration::from_millis(timeout_ms.max(1)),
        max_output_bytes: max_output,
    }
}

/// Step 5's result.
#[derive(Debug, Clone)]
pub struct Execution {
    pub status: InvocationStatus,
    /// The tool's result (`content`, `structuredContent`, `isError`) unless too large.
    pub output: Option<Value>,
    pub output_hash: Option<String>,
    pub output_bytes: Option<i64>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub duration_ms: i64,
}

/// Step 5: connects and calls the tool within the limits (network only).
pub async fn execute(
    runtime: &McpRuntime,
    target: &Target,
    tool_name: &str,
    arguments: Map<String, Value>,
    limits: CallLimits,
) -> Execution {
    let started = Instant::now();
    let call = async {
        let (session, pooled) = runtime.call_session(target).await?;
        let result = session.call_tool(tool_name, arguments).await;
        if pooled {
            if result.is_err() {
                runtime.discard(target, &session);
            }
        } else if let Ok(session) = std::sync::Arc::try_unwrap(session) {
            // Session teardown is not the caller's latency.
            tokio::spawn(session.close());
        }
        result
    };
    let outcome = tokio::time::timeout(limits.timeout, call).await;
    let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let failed = |status: InvocationStatus, code: &str, message: String| Execution {
        status,
        output: None,
        output_hash: None,
        output_bytes: None,
        error_code: Some(code.into()),
        error_message: Some(message),
        duration_ms,
    };
    match outcome {
        Err(_) => failed(
            InvocationStatus::Timeout,
            "TIMEOUT",
            format!("no result within {} ms", limits.timeout.as_millis()),
        ),
        Ok(Err(e)) => failed(InvocationStatus::Failure, "UPSTREAM_ERROR", e.to_string()),
        Ok(Ok(output)) => {
            let bytes = serde_json::to_vec(&output).map(|b| b.len()).unwrap_or(usize::MAX);
            let output_hash = Some(canonical_sha256(&output));
            let output_bytes = i64::try_from(bytes).ok();
            if bytes > limits.max_output_bytes {
                return Execution {
                    output_hash,
                    output_bytes,
                    ..failed(
                        InvocationStatus::Failure,
                        "OUTPUT_TOO_LARGE",
                        format!(
                            "the tool returned {bytes} bytes; the limit is {}",
                            limits.max_output_bytes
                        ),
                    )
                };
            }
            let is_error = output.get("isError").and_then(Value::as_bool).unwrap_or(false);
            Execution {
                status: if is_error {
                    InvocationStatus::Failure
                } else {
                    InvocationStatus::Success
                },
                error_code: is_error.then(|| "TOOL_ERROR".to_owned()),
                error_message: is_error.then(|| "the tool reported an error (isError)".to_owned()),
                output: Some(output),
                output_hash,
                output_bytes,
                duration_ms,
            }
        }
    }
}

/// Step 6: the outcome, its audit event and, for a failure or timeout, an incident.
pub async fn record_outcome(
    conn: &mut Conn,
    tenant: uuid::Uuid,
    actor: &Actor,
    invocation_id: uuid::Uuid,
    execution: &Execution,
) -> EngineResult<(Invocation, Option<Incident>)> {
    let current = get_invocation(conn, tenant, invocation_id).await?;
    let success = execution.status == InvocationStatus::Success;
    let mut pending = audit::Pending::default();
    pending.push(
        actor,
        Event {
            event_type: if success {
                AuditEventType::ToolInvocationCompleted
            } else {
                AuditEventType::ToolInvocationFailed
            },
            subject_type: SubjectKind::McpTool,
            subject_id: Some(current.tool_id.to_string()),
            decision: current.policy_decision.clone(),
            policy_revision: current.policy_revision.clone(),
            details: json!({"invocation_id": invocation_id.to_string(), "status": execution.status.as_str(),
                            "error_code": execution.error_code, "duration_ms": execution.duration_ms,
                            "output_hash": execution.output_hash}),
        },
    );
    let incident = if success {
        None
    } else {
        let tool = db::get_tool(
            conn,
            current.tenant_id.into(),
            current.server_id.into(),
            current.tool_id.into(),
        )
        .await?;
        let timeout = execution.status == InvocationStatus::Timeout;
        Some(
            incidents::open_deferred(
                conn,
                tenant,
                &Actor::system("invocation"),
                NewIncident {
                    kind: if timeout {
                        incidents::INVOCATION_TIMEOUT
                    } else {
                        incidents::INVOCATION_FAILED
                    },
                    severity: tool.risk(),
                    title: format!(
                        "{} {}: {}",
                        tool.name,
                        if timeout { "timed out" } else { "failed" },
                        execution.error_code.as_deref().unwrap_or("error")
                    ),
                    details: json!({"error_code": execution.error_code, "error_message": execution.error_message,
                                    "duration_ms": execution.duration_ms}),
                    server_id: Some(current.server_id.into()),
                    tool_id: Some(current.tool_id.into()),
                    invocation_id: Some(invocation_id),
                },
                &mut pending,
            )
            .await?,
        )
    };
    let changes = McpInvocationChanges {
        status: Some(execution.status.as_str().into()),
        error_code: Some(execution.error_code.clone()),
        error_message: Some(execution.error_message.clone()),
        output_hash: Some(execution.output_hash.clone()),
        output_bytes: Some(execution.output_bytes),
        completed_at: Some(Some(DbTime::now())),
        duration_ms: Some(Some(execution.duration_ms)),
        incident_id: incident.as_ref().map(|i| Some(i.id)),
        ..McpInvocationChanges::default()
    };
    let row = db::update_invocation(conn, tenant.into(), invocation_id.into(), &changes).await?;
    pending.flush(conn, tenant).await?;
    Ok((row, incident))
}

pub async fn get_invocation(conn: &mut Conn, tenant: uuid::Uuid, id: uuid::Uuid) -> EngineResult<Invocation> {
    db::get_invocation(conn, tenant.into(), id.into())
        .await
        .map_err(|e| match e {
            DriverError::NotFound => EngineError::NotFound("invocation"),
            other => other.into(),
        })
}

/// What approving a gated call leads to.
#[derive(Debug, Clone)]
pub enum Approved {
    /// A generic approval: nothing to run.
    Recorded(Approval),
    /// The tool changed (or went away) since the request: the call is BLOCKED.
    Blocked(Approval, Box<Invocation>),
    /// Admitted: run it (exactly once: only the winning approver gets here).
    Run(Box<ApprovedRun>),
}

#[derive(Debug, Clone)]
pub struct ApprovedRun {
    pub approval: Approval,
    pub invocation: Invocation,
    pub target: Target,
    pub tool_name: String,
    pub arguments: Map<String, Value>,
    pub limits: CallLimits,
}

async fn block(
    conn: &mut Conn,
    tenant: uuid::Uuid,
    actor: &Actor,
    invocation: &Invocation,
    code: &str,
    message: &str,
) -> EngineResult<Invocation> {
    let mut pending = audit::Pending::default();
    pending.push(
        actor,
        Event {
            event_type: AuditEventType::ToolInvocationDenied,
            subject_type: SubjectKind::McpTool,
            subject_id: Some(invocation.tool_id.to_string()),
            decision: Some("blocked".into()),
            policy_revision: invocation.policy_revision.clone(),
            details: json!({"invocation_id": invocation.id.to_string(), "error_code": code, "reasons": [message]}),
        },
    );
    let changes = McpInvocationChanges {
        status: Some(InvocationStatus::Blocked.as_str().into()),
        error_code: Some(Some(code.into())),
        error_message: Some(Some(message.into())),
        policy_decision: Some(Some("blocked".into())),
        completed_at: Some(Some(DbTime::now())),
        ..McpInvocationChanges::default()
    };
    let row = db::update_invocation(conn, tenant.into(), invocation.id.into(), &changes).await?;
    pending.flush(conn, tenant).await?;
    Ok(row)
}

fn pending_invocation(approval: &Approval) -> Option<uuid::Uuid> {
    (approval.subject_type == TOOL_INVOCATION)
        .then(|| uuid::Uuid::parse_str(&approval.subject_id).ok())
        .flatten()
}

/// Approves (one write transaction). For a gated tool call the winner re-checks the tool
/// (still enabled, not quarantined, the same definition hash as when requested) and
/// either admits the call (ALLOWED, STARTED) or blocks it.
pub async fn admit_approved(
    conn: &mut Conn,
    runtime: &McpRuntime,
    tenant: uuid::Uuid,
    approval_id: uuid::Uuid,
    decider: approvals::Decider<'_>,
) -> EngineResult<Approved> {
    let actor = decider.actor;
    let approval = approvals::decide(conn, tenant, approval_id, approvals::Verdict::Approve, decider).await?;
    let Some(invocation_id) = pending_invocation(&approval) else {
        return Ok(Approved::Recorded(approval));
    };
    let invocation = get_invocation(conn, tenant, invocation_id).await?;
    let context = &approval.context.0;
    let server = registry::get_live_server(conn, tenant, invocation.server_id.into()).await;
    let tool = registry::get_tool(conn, tenant, invocation.server_id.into(), invocation.tool_id.into()).await;
    let (server, tool) = match (server, tool) {
        (Ok(s), Ok(t)) => (s, t),
        _ => {
            let row = block(
                conn,
                tenant,
                actor,
                &invocation,
                "TOOL_UNAVAILABLE",
                "the server or tool is gone",
            )
            .await?;
            return Ok(Approved::Blocked(approval, Box::new(row)));
        }
    };
    let requested_hash = context.get("tool_hash").and_then(Value::as_str);
    if !tool.callable() || requested_hash != Some(tool.tool_hash.as_str()) {
        let row = block(
            conn,
            tenant,
            actor,
            &invocation,
            "TOOL_CHANGED",
            "the tool was disabled, quarantined or redefined after approval was requested",
        )
        .await?;
        return Ok(Approved::Blocked(approval, Box::new(row)));
    }
    let arguments = match context.get("input") {
        Some(Value::Object(map)) => map.clone(),
        _ => Map::new(),
    };
    let mut pending = audit::Pending::default();
    pending.push(
        actor,
        Event {
            event_type: AuditEventType::ToolInvocationAllowed,
            subject_type: SubjectKind::McpTool,
            subject_id: Some(tool.id.to_string()),
            decision: Some("approved".into()),
            policy_revision: invocation.policy_revision.clone(),
            details: json!({"invocation_id": invocation.id.to_string(), "approval_id": approval.id.to_string()}),
        },
    );
    started(&mut pending, actor, &tool, invocation.id);
    let invocation = db::update_invocation(
        conn,
        tenant.into(),
        invocation.id.into(),
        &McpInvocationChanges {
            status: Some(InvocationStatus::Running.as_str().into()),
            policy_decision: Some(Some("approved".into())),
            ..McpInvocationChanges::default()
        },
    )
    .await?;
    pending.flush(conn, tenant).await?;
    Ok(Approved::Run(Box::new(ApprovedRun {
        limits: limits(runtime, &server),
        target: registry::target(&server)?,
        tool_name: tool.name,
        approval,
        invocation,
        arguments,
    })))
}

/// Denies (one write transaction); a gated call becomes BLOCKED.
pub async fn deny_approval(
    conn: &mut Conn,
    tenant: uuid::Uuid,
    approval_id: uuid::Uuid,
    decider: approvals::Decider<'_>,
) -> EngineResult<(Approval, Option<Invocation>)> {
    let actor = decider.actor;
    let approval = approvals::decide(conn, tenant, approval_id, approvals::Verdict::Deny, decider).await?;
    let Some(invocation_id) = pending_invocation(&approval) else {
        return Ok((approval, None));
    };
    let invocation = get_invocation(conn, tenant, invocation_id).await?;
    let why = approval
        .decision_reason
        .clone()
        .map_or_else(|| "approval denied".to_owned(), |r| format!("approval denied: {r}"));
    let row = block(conn, tenant, actor, &invocation, "APPROVAL_DENIED", &why).await?;
    Ok((approval, Some(row)))
}

/// Expires due approvals of every tenant; their gated calls become BLOCKED.
/// The error code of an invocation whose outcome was never recorded.
pub const OUTCOME_UNKNOWN: &str = "OUTCOME_UNKNOWN";

/// Completes invocations stranded in RUNNING: their call ended (by its timeout at the
/// latest) but the outcome was never written, e.g. because the database restarted in
/// between. Each becomes FAILURE with [`OUTCOME_UNKNOWN`], an audit event and an incident,
/// as a failed call does. Platform sweep (every tenant); returns how many it completed.
pub async fn reap_stranded(
    conn: &mut Conn,
    runtime: &McpRuntime,
    now: time::OffsetDateTime,
    limit: i64,
) -> EngineResult<usize> {
    // A call ends by its timeout at the latest, so only a lost outcome write leaves it
    // RUNNING past timeout + grace. The earliest that can be: the shortest timeout a server
    // may have.
    let grace = Duration::from_millis(runtime.settings.stranded_grace_ms);
    let shortest = Duration::from_millis(100) + grace;
    let before = DbTime::from(now - shortest);
    let candidates = db::running_invocations_due(conn, before, limit).await?;
    let actor = Actor::system("invocation-reaper");
    let mut reaped = 0;
    for invocation in candidates {
        let tenant: uuid::Uuid = invocation.tenant_id.into();
        let server = match registry::get_server(conn, tenant, invocation.server_id.into()).await {
            Ok(server) => server,
            Err(EngineError::NotFound(_)) => continue,
            Err(other) => return Err(other),
        };
        let started = invocation.invoked_at.get();
        let deadline = started + limits(runtime, &server).timeout + grace;
        if deadline > now {
            continue;
        }
        let elapsed = now - started;
        let execution = Execution {
            status: InvocationStatus::Failure,
            output: None,
            output_hash: None,
            output_bytes: None,
            error_code: Some(OUTCOME_UNKNOWN.to_owned()),
            error_message: Some(
                "the call's outcome was never recorded (AOS lost its database while the call ran); \
                 it may or may not have taken effect upstream"
                    .to_owned(),
            ),
            duration_ms: i64::try_from(elapsed.whole_milliseconds()).unwrap_or(i64::MAX),
        };
        record_outcome(conn, tenant, &actor, invocation.id.into(), &execution).await?;
        tracing::warn!(invocation_id = %invocation.id, tenant_id = %tenant, "stranded invocation completed as OUTCOME_UNKNOWN");
        reaped += 1;
    }
    Ok(reaped)
}

pub async fn expire_approvals(conn: &mut Conn, limit: i64) -> EngineResult<usize> {
    let expired = approvals::expire_due(conn, limit).await?;
    let actor = Actor::system("approval-sweeper");
    for approval in &expired {
        if let Some(invocation_id) = pending_invocation(approval) {
            let tenant: uuid::Uuid = approval.tenant_id.into();
            let invocation = get_invocation(conn, tenant, invocation_id).await?;
            block(
                conn,
                tenant,
                &actor,
                &invocation,
                "APPROVAL_EXPIRED",
                "approval expired",
            )
            .await?;
        }
    }
    Ok(expired.len())
}
