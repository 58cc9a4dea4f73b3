//! Governed invocation, approvals, the audit chain, incidents, policy and manifests.

use aos_types::{AuditEventType, IncidentStatus, InvocationStatus, ServerId, SubjectKind, ToolId};
use std::sync::Arc;
use std::time::Duration;

use aos_engines::EngineError;
use aos_engines::auth::Scope;
use aos_engines::governance::approvals::{self, Approval};
use aos_engines::governance::audit::{self, AuditFilter};
use aos_engines::governance::incidents::{self, Incident, IncidentFilter};
use aos_engines::governance::policy::{self, PLATFORM_PACKAGE, TENANT_PACKAGE};
use aos_engines::governance::settings as gov_settings;
use aos_engines::mcp::invoke::{self, Approved, Caller, Execution, InvokeRequest};
use aos_engines::mcp::manifest;
use aos_engines::mcp::registry;
use aos_engines::tenants::DbTime;
use aos_schemas::governance as api;
use aos_schemas::{ErrorCode, ListEnvelope, ListMeta};
use serde_json::Value;
use uuid::Uuid;

use crate::context::AuthContext;
use crate::error::{SpineError, SpineResult};
use crate::op::{Mode, OpFuture, Operation, OperationContext, Workflow, WorkflowContext};
use crate::ops::cursor;

use crate::ops::mcp::{risk as risk_to_api, risk_from_api, strings};

type Risk = aos_engines::mcp::risk::RiskLevel;

fn status_to_api(status: InvocationStatus) -> api::InvocationStatus {
    match status {
        InvocationStatus::Success => api::InvocationStatus::Success,
        InvocationStatus::Failure => api::InvocationStatus::Failure,
        InvocationStatus::Blocked => api::InvocationStatus::Blocked,
        InvocationStatus::Timeout => api::InvocationStatus::Timeout,
        InvocationStatus::PendingApproval => api::InvocationStatus::PendingApproval,
        InvocationStatus::Running => api::InvocationStatus::Running,
    }
}

fn result_to_api(row: invoke::Invocation, output: Option<Value>) -> api::InvocationResult {
    api::InvocationResult {
        invocation_id: row.id.into(),
        tool_id: row.tool_id.into(),
        server_id: row.server_id.into(),
        status: status_to_api(row.status()),
        output,
        error_code: row.error_code,
        error_message: row.error_message,
        duration_ms: row.duration_ms,
        policy_decision: row.policy_decision.unwrap_or_else(|| "allowed".into()),
        policy_id: row.policy_id,
        policy_revision: row.policy_revision,
        decision_id: row.policy_decision_id,
        reasons: row.policy_reasons.as_ref().map(|r| strings(&r.0)).unwrap_or_default(),
        incident_id: row.incident_id.map(Into::into),
        approval_id: row.approval_id.map(Into::into),
        input_hash: row.input_hash,
        output_hash: row.output_hash,
    }
}

pub(crate) fn approval_to_api(a: Approval) -> api::Approval {
    let status = match a.status() {
        approvals::ApprovalStatusKind::Pending => api::ApprovalStatus::Pending,
        approvals::ApprovalStatusKind::Approved => api::ApprovalStatus::Approved,
        approvals::ApprovalStatusKind::Denied => api::ApprovalStatus::Denied,
        approvals::ApprovalStatusKind::Expired => api::ApprovalStatus::Expired,
    };
    api::Approval {
        id: a.id.into(),
        tenant_id: a.tenant_id.into(),
        subject_type: a.subject_type,
        subject_id: a.subject_id,
        status,
        reason: a.reason,
        context: a.context.0,
        requested_by: a.requested_by,
        created_at: a.created_at.into(),
        expires_at: a.expires_at.into(),
        decided_at: a.decided_at.map(Into::into),
        decided_by: a.decided_by,
        decision_reason: a.decision_reason,
    }
}

fn incident_to_api(i: Incident) -> api::Incident {
    api::Incident {
        id: i.id.into(),
        kind: i.kind,
        severity: risk_to_api(Risk::parse_lenient(&i.severity)),
        status: i.status,
        title: i.title,
        details: i.details.0,
        server_id: i.server_id.map(Into::into),
        tool_id: i.tool_id.map(Into::into),
        invocation_id: i.invocation_id.map(Into::into),
        created_at: i.created_at.into(),
        resolved_at: i.resolved_at.map(Into::into),
        resolved_by: i.resolved_by,
        resolution: i.resolution,
    }
}

/// A call that passed admission: what to send, and where.
struct AdmittedCall<'a> {
    invocation_id: Uuid,
    target: &'a aos_engines::mcp::client::Target,
    tool_name: &'a str,
    arguments: serde_json::Map<String, Value>,
    limits: invoke::CallLimits,
}

/// Runs an admitted call and records its outcome (the network step outside any
/// transaction).
async fn run_admitted(
    cx: &WorkflowContext,
    tenant: Uuid,
    actor: &aos_engines::governance::audit::Actor,
    call: AdmittedCall<'_>,
) -> SpineResult<api::InvocationResult> {
    let AdmittedCall {
        invocation_id,
        target,
        tool_name,
        arguments,
        limits,
    } = call;
    let execution: Execution = invoke::execute(cx.mcp(), target, tool_name, arguments, limits).await;
    let output = execution.output.clone();
    let actor = actor.clone();
    let (row, _incident) = cx
        .write(move |conn| {
            Box::pin(async move { Ok(invoke::record_outcome(conn, tenant, &actor, invocation_id, &execution).await?) })
        })
        .await?;
    Ok(result_to_api(row, output))
}

/// `integrations.mcp_servers.invoke_tool`: the governed pipeline.
pub struct Invoke {
    pub actor: AuthContext,
    pub server_id: Uuid,
    pub tool_id: Uuid,
    pub request: api::InvokeToolRequest,
}

impl Workflow for Invoke {
    const NAME: &'static str = "integrations.mcp_servers.invoke_tool";
    type Output = api::InvocationResult;

    fn run(self, cx: WorkflowContext) -> OpFuture<'static, Self::Output> {
        Box::pin(async move {
            let tenant = self.actor.tenant_with(Scope::McpInvoke)?;
            // A frozen tenant or key is refused before anything is read or sent.
            crate::ops::killswitch::check(&cx.shared.kill_switch, &self.actor)?;
            let caller = Caller {
                actor: self.actor.audit_actor(),
                principal: self.actor.actor(),
            };
            let request = InvokeRequest {
                input: self.request.input,
                run_id: self.request.run_id,
                step_index: self.request.step_index,
                actor_id: self.request.actor_id,
                actor_type: self.request.actor_type,
                trace_id: self.request.trace_id,
            };
            let (server_id, tool_id) = (self.server_id, self.tool_id);
            let agent = self.actor.agent();
            let shared = Arc::clone(&cx.shared);
            let mut prepared = cx
                .read(move |conn| {
                    Box::pin(async move {
                        let mut prepared = invoke::prepare(conn, tenant, server_id, tool_id).await?;
                        if let Some(agent) = agent {
                            let cache = shared.auth.cache();
                            let grant = aos_engines::agents::cached_grant(conn, cache, tenant.into(), agent).await?;
                            prepared.grant = Some(grant);
                        }
                        Ok(prepared)
                    })
                })
                .await?;
            // An agent calls only within its capabilities: outside them the call is
            // recorded BLOCKED with the reason, and refused (403) before anything else.
            if let Err(refusal) = invoke::agent_admits(&mut prepared) {
                let (caller, request, prepared) = (caller.clone(), request.clone(), prepared.clone());
                let (invocation, reason) = cx
                    .write(move |conn| {
                        Box::pin(async move {
                            Ok(invoke::refuse_for_agent(conn, tenant, &caller, &request, &prepared, &refusal).await?)
                        })
                    })
                    .await?;
                return Err(SpineError::new(ErrorCode::CapabilityNotGranted, reason).for_call(invocation.id.0));
            }
            let arguments = invoke::validate_input(&prepared.tool, &request)?;
            let decision = cx
                .policy()
                .check(&invoke::policy_request(tenant, &caller, &request, &prepared))
                .await;
            if let Some(error) = &decision.error {
                tracing::warn!(%error, tool_id = %tool_id, "policy evaluation failed; denied");
            }
            // The server's own cap (`max_calls_per_minute`, per replica): a call that would
            // go out now but is over it is recorded BLOCKED and never reaches the server.
            if decision.outcome == aos_engines::governance::policy::Outcome::Allow
                && let Some(limit) = prepared.server.max_calls_per_minute.and_then(|n| u32::try_from(n).ok())
                && let Err(state) = cx.mcp().server_calls.take(prepared.server.id.0, limit)
            {
                let (caller, request, prepared) = (caller.clone(), request.clone(), prepared.clone());
                let (invocation, reason) = cx
                    .write(move |conn| {
                        Box::pin(async move {
                            Ok(invoke::refuse_rate_limited(conn, tenant, &caller, &request, &prepared, limit).await?)
                        })
                    })
                    .await?;
                return Err(SpineError::new(ErrorCode::RateLimited, reason)
                    .retry_after(state.reset_secs)
                    .for_call(invocation.id.0));
            }
            let ttl = Duration::from_secs(cx.approvals().ttl_secs);
            let (limits, target) = (
                invoke::limits(cx.mcp(), &prepared.server),
                registry::target(&prepared.server)?,
            );
            let tool_name = prepared.tool.name.clone();
            let admission = {
                let (caller, request, prepared) = (caller.clone(), request.clone(), prepared.clone());
                cx.write(move |conn| {
                    Box::pin(async move {
                        Ok(invoke::admit(conn, tenant, &caller, &request, &prepared, decision, ttl).await?)
                    })
                })
                .await?
            };
            if admission.invocation.status() != InvocationStatus::Running {
                return Ok(result_to_api(admission.invocation, None));
            }
            let call = AdmittedCall {
                invocation_id: admission.invocation.id.into(),
                target: &target,
                tool_name: &tool_name,
                arguments,
                limits,
            };
            run_admitted(&cx, tenant, &caller.actor, call).await
        })
    }
}

/// `approvals.approve`: the winning approver runs a gated call, exactly once.
pub struct Approve {
    pub actor: AuthContext,
    pub approval_id: Uuid,
    pub request: api::DecideApprovalRequest,
}

impl Workflow for Approve {
    const NAME: &'static str = "approvals.approve";
    type Output = api::ApprovalDecision;

    fn run(self, cx: WorkflowContext) -> OpFuture<'static, Self::Output> {
        Box::pin(async move {
            let tenant = self.actor.tenant_with(Scope::ApprovalsDecide)?;
            // Approving runs the stored call: not while the tenant (or this key) is frozen.
            crate::ops::killswitch::check(&cx.shared.kill_switch, &self.actor)?;
            // Nor while the agent that asked for it is frozen, disabled or deleted: an
            // approval must not be a way around the agent's own controls.
            let approval_id = self.approval_id;
            let (requester, context) = cx
                .read(move |conn| {
                    Box::pin(async move {
                        let approval = approvals::get(conn, tenant, approval_id).await?;
                        Ok((approval.requested_by, approval.context.0))
                    })
                })
                .await?;
            if let Some(agent) = aos_types::AgentId::from_actor(&requester) {
                if cx
                    .shared
                    .kill_switch
                    .is_frozen(aos_engines::killswitch::Entity::Agent(agent.get()))
                {
                    return Err(SpineError::new(
                        ErrorCode::KillSwitchActive,
                        "kill switch active: the agent that requested this call is frozen",
                    ));
                }
                let shared = Arc::clone(&cx.shared);
                let grant = cx
                    .read(move |conn| {
                        Box::pin(async move {
                            Ok(
                                aos_engines::agents::cached_grant(conn, shared.auth.cache(), tenant.into(), agent)
                                    .await
                                    .map_err(|e| {
                                        match e {
                                EngineError::NotFound(_)
                                | EngineError::Unauthenticated(_)
                                | EngineError::Forbidden(_) => EngineError::Conflict(
                                    "the agent that requested this call is disabled or deleted; deny the approval"
                                        .into(),
                                ),
                                other => other,
                            }
                                    })?,
                            )
                        })
                    })
                    .await?;
                // And the agent still holds a capability for the tool as it was requested.
                let text = |k: &str| context.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
                let name = aos_engines::mcp::gateway::base_name(&text("server_name"), &text("tool_name"));
                let risk = aos_engines::mcp::risk::RiskLevel::parse_lenient(&text("risk_level"));
                if !matches!(
                    grant.admit(&name, risk, &text("tool_hash")),
                    aos_engines::agents::Admit::Granted(_)
                ) {
                    return Err(SpineError::new(
                        ErrorCode::Conflict,
                        format!(
                            "the agent that requested this call no longer has a capability for {name}; deny the approval"
                        ),
                    ));
                }
            }
            let actor = self.actor.audit_actor();
            let by = self.actor.actor();
            let (mcp, id, reason) = (Arc::clone(cx.mcp()), self.approval_id, self.request.reason);
            let own_requests = self_decision(cx.approvals());
            let audit_actor = actor.clone();
            let approved = cx
                .write(move |conn| {
                    Box::pin(async move {
                        let decider = approvals::Decider {
                            actor: &audit_actor,
                            decided_by: &by,
                            reason,
                            own_requests,
                        };
                        Ok(invoke::admit_approved(conn, &mcp, tenant, id, decider).await?)
                    })
                })
                .await?;
            match approved {
                Approved::Recorded(approval) => Ok(api::ApprovalDecision {
                    approval: approval_to_api(approval),
                    invocation: None,
                }),
                Approved::Blocked(approval, invocation) => Ok(api::ApprovalDecision {
                    approval: approval_to_api(approval),
                    invocation: Some(result_to_api(*invocation, None)),
                }),
                Approved::Run(run) => {
                    let run = *run;
                    let call = AdmittedCall {
                        invocation_id: run.invocation.id.into(),
                        target: &run.target,
                        tool_name: &run.tool_name,
                        arguments: run.arguments,
                        limits: run.limits,
                    };
                    let invocation = run_admitted(&cx, tenant, &actor, call).await?;
                    Ok(api::ApprovalDecision {
                        approval: approval_to_api(run.approval),
                        invocation: Some(invocation),
                    })
                }
            }
        })
    }
}

/// `approvals.deny`
pub struct Deny {
    pub actor: AuthContext,
    pub approval_id: Uuid,
    pub request: api::DecideApprovalRequest,
}

impl Operation for Deny {
    const NAME: &'static str = "approvals.deny";
    const MODE: Mode = Mode::Write;
    type Output = api::ApprovalDecision;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let tenant = self.actor.tenant_with(Scope::ApprovalsDecide)?;
            let (actor, by) = (self.actor.audit_actor(), self.actor.actor());
            let decider = approvals::Decider {
                actor: &actor,
                decided_by: &by,
                reason: self.request.reason,
                own_requests: self_decision(&cx.shared.approvals),
            };
            let (approval, invocation) = invoke::deny_approval(cx.conn, tenant, self.approval_id, decider).await?;
            Ok(api::ApprovalDecision {
                approval: approval_to_api(approval),
                invocation: invocation.map(|i| result_to_api(i, None)),
            })
        })
    }
}

/// `approvals.create` (generic subjects).
pub struct CreateApproval {
    pub actor: AuthContext,
    pub request: api::CreateApprovalRequest,
}

impl Operation for CreateApproval {
    const NAME: &'static str = "approvals.create";
    const MODE: Mode = Mode::Write;
    type Output = api::Approval;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let tenant = self
                .actor
                .tenant_with_any(&[Scope::McpInvoke, Scope::ApprovalsDecide])?;
            let ttl = match self.request.ttl_secs {
                None => cx.shared.approvals.ttl_secs,
                Some(t) if (60..=30 * 24 * 3600).contains(&t) => t,
                Some(_) => {
                    return Err(EngineError::invalid("ttl_secs", "must be between 60 and 2592000").into());
                }
            };
            let requested_by = self.actor.actor();
            let new = approvals::NewApproval {
                requested_by: &requested_by,
                subject_type: self.request.subject_type.trim(),
                subject_id: &self.request.subject_id,
                reason: self.request.reason,
                context: self.request.context.unwrap_or(Value::Null),
                ttl: Duration::from_secs(ttl),
            };
            let row = approvals::create_generic(cx.conn, tenant, &self.actor.audit_actor(), new).await?;
            Ok(approval_to_api(row))
        })
    }
}

/// The operator's `approvals.allow_self_approval`, as the engine's rule.
fn self_decision(settings: &crate::config::ApprovalSettings) -> approvals::SelfDecision {
    if settings.allow_self_approval {
        approvals::SelfDecision::Allowed
    } else {
        approvals::SelfDecision::Refused
    }
}

const APPROVAL_READERS: [Scope; 3] = [Scope::ApprovalsDecide, Scope::McpRead, Scope::McpInvoke];

/// `approvals.get`
pub struct GetApproval {
    pub actor: AuthContext,
    pub approval_id: Uuid,
}

impl Operation for GetApproval {
    const NAME: &'static str = "approvals.get";
    const MODE: Mode = Mode::Read;
    type Output = api::Approval;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let tenant = self.actor.tenant_with_any(&APPROVAL_READERS)?;
            Ok(approval_to_api(
                approvals::get(cx.conn, tenant, self.approval_id).await?,
            ))
        })
    }
}

/// `approvals.list`
pub struct ListApprovals {
    pub actor: AuthContext,
    pub query: api::ListApprovalsQuery,
}

impl Operation for ListApprovals {
    const NAME: &'static str = "approvals.list";
    const MODE: Mode = Mode::Read;
    type Output = ListEnvelope<api::Approval>;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let tenant = self.actor.tenant_with_any(&APPROVAL_READERS)?;
            let limit = cursor::limit(self.query.limit, 50, 200)?;
            let after = self.query.cursor.as_deref().map(cursor::decode).transpose()?;
            let status = self.query.status.map(|s| match s {
                api::ApprovalStatus::Pending => approvals::ApprovalStatusKind::Pending,
                api::ApprovalStatus::Approved => approvals::ApprovalStatusKind::Approved,
                api::ApprovalStatus::Denied => approvals::ApprovalStatusKind::Denied,
                api::ApprovalStatus::Expired => approvals::ApprovalStatusKind::Expired,
            });
            let (rows, next) = approvals::list(cx.conn, tenant, status, after, limit).await?;
            Ok(ListEnvelope {
                data: rows.into_iter().map(approval_to_api).collect(),
                meta: ListMeta {
                    total: None,
                    limit,
                    next_cursor: next.map(|(at, id)| cursor::encode(at, id)),
                },
            })
        })
    }
}

fn parse_time(field: &'static str, value: Option<&str>) -> SpineResult<Option<DbTime>> {
    value
        .map(|v| {
            time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
                .map(DbTime::from)
                .map_err(|_| EngineError::invalid(field, "must be an RFC 3339 timestamp").into())
        })
        .transpose()
}

fn audit_cursor(text: &str) -> SpineResult<i64> {
    text.strip_prefix("seq-")
        .and_then(|n| n.parse::<i64>().ok())
        .filter(|n| *n >= 0)
        .ok_or_else(|| SpineError::bad_request("cursor: not a cursor returned by this API"))
}

/// `audit.list_events`
pub struct ListAuditEvents {
    pub actor: AuthContext,
    pub query: api::ListAuditQuery,
}

impl Operation for ListAuditEvents {
    const NAME: &'static str = "audit.list_events";
    const MODE: Mode = Mode::Read;
    type Output = ListEnvelope<api::AuditEvent>;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let tenant = self.actor.tenant_with(Scope::McpRead)?;
            let limit = cursor::limit(self.query.limit, 100, 500)?;
            let after = self.query.cursor.as_deref().map(audit_cursor).transpose()?.unwrap_or(0);
            let filter = AuditFilter {
                event_type: self.query.event_type,
                subject_type: self.query.subject_type,
                subject_id: self.query.subject_id,
                actor_id: self.query.actor_id,
                since: parse_time("since", self.query.since.as_deref())?,
                until: parse_time("until", self.query.until.as_deref())?,
            };
            let (rows, next) = audit::list(cx.conn, tenant, &filter, after, limit).await?;
            Ok(ListEnvelope {
                data: rows.into_iter().map(audit_to_api).collect(),
                meta: ListMeta {
                    total: None,
                    limit,
                    next_cursor: next.map(|seq| format!("seq-{seq}")),
                },
            })
        })
    }
}

/// An audit-chain row as the API shows it.
pub(crate) fn audit_to_api(e: aos_engines::governance::audit::AuditEventRow) -> api::AuditEvent {
    api::AuditEvent {
        id: e.id.into(),
        seq: e.seq,
        occurred_at: e.occurred_at.into(),
        actor_type: e.actor_type,
        actor_id: e.actor_id,
        event_type: e.event_type,
        subject_type: e.subject_type,
        subject_id: e.subject_id,
        decision: e.decision,
        policy_revision: e.policy_revision,
        details: e.details.0,
        prev_hash: e.prev_hash,
        event_hash: e.event_hash,
    }
}

/// `audit.verify`
pub struct VerifyAudit {
    pub actor: AuthContext,
}

impl Operation for VerifyAudit {
    const NAME: &'static str = "audit.verify";
    const MODE: Mode = Mode::Read;
    type Output = api::AuditVerification;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let tenant = self.actor.tenant_with(Scope::McpRead)?;
            let v = audit::verify(cx.conn, tenant).await?;
            if !v.valid {
                tracing::error!(tenant_id = %tenant, first_bad_seq = ?v.first_bad_seq, "audit chain does not verify");
            }
            Ok(api::AuditVerification {
                valid: v.valid,
                length: v.length,
                head_hash: v.head_hash,
                first_bad_seq: v.first_bad_seq,
                reason: v.reason,
            })
        })
    }
}

/// `incidents.list`
pub struct ListIncidents {
    pub actor: AuthContext,
    pub query: api::ListIncidentsQuery,
}

impl Operation for ListIncidents {
    const NAME: &'static str = "incidents.list";
    const MODE: Mode = Mode::Read;
    type Output = ListEnvelope<api::Incident>;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let tenant = self.actor.tenant_with(Scope::McpRead)?;
            let limit = cursor::limit(self.query.limit, 50, 200)?;
            let after = self.query.cursor.as_deref().map(cursor::decode).transpose()?;
            let status = match self.query.status.as_deref() {
                None => None,
                Some(s) => Some(
                    IncidentStatus::parse(&s.to_ascii_uppercase())
                        .ok_or_else(|| EngineError::invalid("status", "must be OPEN or RESOLVED"))?,
                ),
            };
            let kind = match self.query.kind.as_deref() {
                None => None,
                Some(k) => Some(
                    incidents::KINDS
                        .iter()
                        .find(|known| known.eq_ignore_ascii_case(k))
                        .map(|k| (*k).to_owned())
                        .ok_or_else(|| {
                            EngineError::invalid("kind", format!("must be one of {}", incidents::KINDS.join(", ")))
                        })?,
                ),
            };
            let filter = IncidentFilter {
                status,
                kind,
                severity: self.query.severity.map(|s| risk_from_api(s).as_str().to_owned()),
                server_id: self.query.server_id.map(ServerId::from),
                tool_id: self.query.tool_id.map(ToolId::from),
            };
            let (rows, next) = incidents::list(cx.conn, tenant, &filter, after, limit).await?;
            Ok(ListEnvelope {
                data: rows.into_iter().map(incident_to_api).collect(),
                meta: ListMeta {
                    total: None,
                    limit,
                    next_cursor: next.map(|(at, id)| cursor::encode(at, id)),
                },
            })
        })
    }
}

/// `incidents.get`
pub struct GetIncident {
    pub actor: AuthContext,
    pub incident_id: Uuid,
}

impl Operation for GetIncident {
    const NAME: &'static str = "incidents.get";
    const MODE: Mode = Mode::Read;
    type Output = api::Incident;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let tenant = self.actor.tenant_with(Scope::McpRead)?;
            Ok(incident_to_api(
                incidents::get(cx.conn, tenant, self.incident_id).await?,
            ))
        })
    }
}

/// `incidents.resolve`
pub struct ResolveIncident {
    pub actor: AuthContext,
    pub incident_id: Uuid,
    pub request: api::ResolveIncidentRequest,
}

impl Operation for ResolveIncident {
    const NAME: &'static str = "incidents.resolve";
    const MODE: Mode = Mode::Write;
    type Output = api::Incident;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let tenant = self.actor.tenant_with(Scope::McpAdmin)?;
            let row = incidents::resolve(
                cx.conn,
                tenant,
                self.incident_id,
                &self.actor.audit_actor(),
                &self.actor.actor(),
                self.request.resolution,
            )
            .await?;
            Ok(incident_to_api(row))
        })
    }
}

fn module_to_api(row: aos_engines::governance::PolicyModule) -> api::PolicyModule {
    api::PolicyModule {
        package: if row.owner == aos_engines::governance::PLATFORM_OWNER {
            PLATFORM_PACKAGE
        } else {
            TENANT_PACKAGE
        }
        .to_owned(),
        source: row.source,
        revision: row.revision,
        created_by: row.created_by,
        created_at: row.created_at.into(),
    }
}

fn settings_to_api(s: gov_settings::GovernanceSettings) -> api::GovernanceSettings {
    api::GovernanceSettings {
        high_requires_approval: s.high_requires_approval,
        auto_enable_max_risk: risk_to_api(s.auto_enable_max_risk),
    }
}

/// `policy.get`: what decides the caller's tool calls.
pub struct GetPolicy {
    pub actor: AuthContext,
}

impl Operation for GetPolicy {
    const NAME: &'static str = "policy.get";
    const MODE: Mode = Mode::Read;
    type Output = api::PolicyOverview;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let tenant = self.actor.tenant_with(Scope::McpRead)?;
            let (platform, own) = aos_engines::governance::modules_of(cx.conn, Some(tenant)).await?;
            let settings = gov_settings::get(cx.conn, tenant).await?;
            let engine = cx.shared.policy.kind();
            Ok(api::PolicyOverview {
                engine: engine.to_owned(),
                default_source: (engine == "embedded").then(|| policy::DEFAULT_POLICY.to_owned()),
                platform: platform.map(module_to_api),
                tenant: own.map(module_to_api),
                settings: settings_to_api(settings),
            })
        })
    }
}

fn refuse_under_opa(cx: &OperationContext<'_>) -> SpineResult<()> {
    if cx.shared.policy.kind() == "opa" {
        return Err(SpineError::new(
            ErrorCode::Conflict,
            "policy is decided by the configured OPA server; load modules there",
        ));
    }
    Ok(())
}

/// `policy.put_tenant` / `policy.put_platform` / deletes: validates a module before it
/// is stored; `source: None` removes the active one.
/// Which policy module a [`PutPolicy`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyModuleOf {
    /// The caller's tenant's module (`package aos.tenant`).
    Tenant,
    /// The platform module (`package aos.platform`), the operator's.
    Platform,
}

pub struct PutPolicy {
    pub actor: AuthContext,
    pub module: PolicyModuleOf,
    /// `None` removes the active module.
    pub source: Option<String>,
}

impl Operation for PutPolicy {
    const NAME: &'static str = "policy.put";
    const MODE: Mode = Mode::Write;
    type Output = Option<api::PolicyModule>;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let tenant = match self.module {
                PolicyModuleOf::Platform => {
                    self.actor.require_operator()?;
                    None
                }
                PolicyModuleOf::Tenant => Some(self.actor.tenant_with(Scope::McpAdmin)?),
            };
            refuse_under_opa(&cx)?;
            let package = match self.module {
                PolicyModuleOf::Platform => PLATFORM_PACKAGE,
                PolicyModuleOf::Tenant => TENANT_PACKAGE,
            };
            let stored = aos_engines::governance::put_module(
                cx.conn,
                tenant,
                package,
                self.source.as_deref(),
                &self.actor.audit_actor(),
            )
            .await?;
            tracing::info!(package, revision = ?stored.as_ref().map(|m| m.revision.clone()), "policy module changed");
            Ok(stored.map(module_to_api))
        })
    }
}

/// `policy.update_settings`
pub struct UpdateSettings {
    pub actor: AuthContext,
    pub request: api::UpdateGovernanceSettings,
}

impl Operation for UpdateSettings {
    const NAME: &'static str = "policy.update_settings";
    const MODE: Mode = Mode::Write;
    type Output = api::GovernanceSettings;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let tenant = self.actor.tenant_with(Scope::McpAdmin)?;
            let updated = gov_settings::update(
                cx.conn,
                tenant,
                self.request.high_requires_approval,
                self.request.auto_enable_max_risk.map(risk_from_api),
            )
            .await?;
            audit::append(
                cx.conn,
                tenant,
                &self.actor.audit_actor(),
                audit::Event {
                    event_type: AuditEventType::GovernanceSettingsChanged,
                    subject_type: SubjectKind::Tenant,
                    subject_id: Some(tenant.to_string()),
                    details: updated.to_json(),
                    decision: None,
                    policy_revision: None,
                },
            )
            .await?;
            Ok(settings_to_api(updated))
        })
    }
}

/// `integrations.mcp_servers.get_manifest`
pub struct GetManifest {
    pub actor: AuthContext,
    pub server_id: Uuid,
}

impl Operation for GetManifest {
    const NAME: &'static str = "integrations.mcp_servers.get_manifest";
    const MODE: Mode = Mode::Read;
    type Output = api::SignedManifest;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let tenant = self.actor.tenant_with(Scope::McpRead)?;
            let server = registry::get_server(cx.conn, tenant, self.server_id).await?;
            let (Some(token), Some(issued_at)) = (server.manifest, server.manifest_issued_at) else {
                return Err(SpineError::new(
                    ErrorCode::NotFound,
                    "no manifest yet: the server has not been discovered",
                ));
            };
            let signer = &cx.shared.signer;
            let payload = manifest::verify(&token, signer.keys()).map_err(|e| {
                tracing::error!(server_id = %self.server_id, error = %e, "a stored manifest does not verify");
                SpineError::internal()
            })?;
            let kid = manifest::kid_of(&token).unwrap_or_default();
            Ok(api::SignedManifest {
                server_id: self.server_id,
                manifest: token,
                kid,
                payload: serde_json::to_value(payload).unwrap_or(Value::Null),
                issued_at: issued_at.into(),
            })
        })
    }
}

/// `integrations.mcp_servers.locate_tool`: the server of a tool (for the
/// `/api/v1/mcp/tools/{tool_id}/...` aliases).
pub struct LocateTool {
    pub actor: AuthContext,
    pub tool_id: Uuid,
}

impl Operation for LocateTool {
    const NAME: &'static str = "integrations.mcp_servers.locate_tool";
    const MODE: Mode = Mode::Read;
    type Output = Uuid;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let tenant = self
                .actor
                .tenant_with_any(&[Scope::McpRead, Scope::McpInvoke, Scope::McpAdmin])?;
            Ok(registry::server_of_tool(cx.conn, tenant, self.tool_id).await?)
        })
    }
}
