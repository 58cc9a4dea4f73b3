//! `integrations.mcp_servers.*`: the MCP registry for a tenant (PIN-516 phase 3). Reads
//! need `mcp:read`, changes `mcp:admin`; the tenant is always the caller's own.

use aos_engines::auth::Scope;
use aos_engines::mcp::registry::{self as engine, DiscoveryReport, Registration};
use aos_engines::mcp::registry::{Invocation, Server, ServerStatus, Tool};
use aos_engines::mcp::risk::RiskLevel;
use aos_schemas::mcp as api;
use aos_schemas::{ListEnvelope, ListMeta};
use aos_types::{AuditEventType, SubjectKind};
use uuid::Uuid;

use crate::context::AuthContext;
use crate::error::SpineResult;
use crate::op::{Mode, OpFuture, Operation, OperationContext, Workflow, WorkflowContext};
use crate::ops::cursor;
use aos_engines::mcp::client::TransportKind;

fn status(server: &Server) -> api::McpServerStatus {
    match server.status() {
        ServerStatus::Pending => api::McpServerStatus::Pending,
        ServerStatus::Active => api::McpServerStatus::Active,
        ServerStatus::Degraded => api::McpServerStatus::Degraded,
        ServerStatus::Deleted => api::McpServerStatus::Deleted,
        ServerStatus::Offline => api::McpServerStatus::Offline,
    }
}

pub(crate) fn risk(level: RiskLevel) -> api::RiskLevel {
    match level {
        RiskLevel::Low => api::RiskLevel::Low,
        RiskLevel::Medium => api::RiskLevel::Medium,
        RiskLevel::High => api::RiskLevel::High,
        RiskLevel::Critical => api::RiskLevel::Critical,
    }
}

pub(crate) fn risk_from_api(level: api::RiskLevel) -> RiskLevel {
    match level {
        api::RiskLevel::Low => RiskLevel::Low,
        api::RiskLevel::Medium => RiskLevel::Medium,
        api::RiskLevel::High => RiskLevel::High,
        api::RiskLevel::Critical => RiskLevel::Critical,
    }
}

pub(crate) fn strings(value: &serde_json::Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

pub(crate) fn server_to_api(s: Server) -> api::McpServer {
    let transport = match s.transport() {
        Some(TransportKind::Sse) => api::McpTransport::Sse,
        Some(TransportKind::Stdio) => api::McpTransport::Stdio,
        _ => api::McpTransport::Http,
    };
    api::McpServer {
        id: s.id.into(),
        tenant_id: s.tenant_id.into(),
        status: status(&s),
        name: s.name,
        url: s.url,
        description: s.description,
        transport,
        status_reason: s.status_reason,
        protocol_version: s.protocol_version,
        capabilities: s.capabilities.map(|c| c.0),
        capabilities_hash: s.capabilities_hash,
        credential_ref: s.credential_ref,
        metadata: s.metadata.0,
        tool_count: s.tool_count,
        call_timeout_ms: s.call_timeout_ms,
        max_output_bytes: s.max_output_bytes,
        max_calls_per_minute: s.max_calls_per_minute,
        created_by: s.created_by,
        created_at: s.created_at.into(),
        updated_at: s.updated_at.into(),
        discovered_at: s.discovered_at.map(Into::into),
        last_health_check_at: s.last_health_check_at.map(Into::into),
        last_latency_ms: s.last_latency_ms,
        deleted_at: s.deleted_at.map(Into::into),
    }
}

pub(crate) fn tool_to_api(t: Tool) -> api::McpTool {
    api::McpTool {
        id: t.id.into(),
        server_id: t.server_id.into(),
        risk_level: risk(t.risk()),
        name: t.name,
        title: t.title,
        description: t.description,
        input_schema: t.input_schema.0,
        output_schema: t.output_schema.map(|v| v.0),
        annotations: t.annotations.map(|v| v.0),
        risk_source: t.risk_source,
        risk_reasons: strings(&t.risk_reasons.0),
        flags: strings(&t.flags.0),
        enabled: t.enabled,
        requires_approval: t.requires_approval,
        available: t.available,
        tool_hash: t.tool_hash,
        approved_hash: t.approved_hash,
        quarantined: t.quarantined,
        quarantine_reason: t.quarantine_reason,
        discovered_at: t.discovered_at.into(),
        updated_at: t.updated_at.into(),
    }
}

pub(crate) fn invocation_to_api(i: Invocation) -> api::McpInvocation {
    api::McpInvocation {
        id: i.id.into(),
        server_id: i.server_id.into(),
        tool_id: i.tool_id.into(),
        run_id: i.run_id,
        step_index: i.step_index,
        actor_id: i.actor_id,
        actor_type: i.actor_type,
        trace_id: i.trace_id,
        status: i.status,
        error_code: i.error_code,
        error_message: i.error_message,
        policy_decision: i.policy_decision,
        policy_decision_id: i.policy_decision_id,
        policy_id: i.policy_id,
        policy_revision: i.policy_revision,
        incident_id: i.incident_id.map(Into::into),
        approval_id: i.approval_id.map(Into::into),
        input_hash: i.input_hash,
        output_hash: i.output_hash,
        invoked_at: i.invoked_at.into(),
        completed_at: i.completed_at.map(Into::into),
        duration_ms: i.duration_ms,
    }
}

fn discovery_to_api(r: DiscoveryReport) -> api::McpDiscovery {
    api::McpDiscovery {
        server_id: r.server.id.into(),
        protocol_version: r.server.protocol_version.clone(),
        capabilities_hash: r.server.capabilities_hash.clone(),
        capabilities: r.capabilities,
        tools_found: r.found,
        tools_added: r.added,
        tools_updated: r.updated,
        tools_removed: r.removed,
        tools_quarantined: r.quarantined,
        errors: r.errors,
    }
}

fn transport(t: api::McpTransport) -> TransportKind {
    match t {
        api::McpTransport::Http => TransportKind::Http,
        api::McpTransport::Sse => TransportKind::Sse,
        api::McpTransport::Stdio => TransportKind::Stdio,
    }
}

/// Discovery shared by `register` and `discover`: network outside any transaction, then
/// one write transaction; an unreachable server is recorded as such.
async fn discover_server(
    cx: &WorkflowContext,
    tenant: Uuid,
    server_id: Uuid,
    actor: &AuthContext,
) -> SpineResult<DiscoveryReport> {
    let server = cx
        .read(move |conn| Box::pin(async move { Ok(engine::get_live_server(conn, tenant, server_id).await?) }))
        .await?;
    let target = engine::target(&server)?;
    match engine::fetch(cx.mcp(), &target).await {
        Ok(fetched) => {
            let signer = std::sync::Arc::clone(cx.signer());
            let actor = actor.audit_actor();
            cx.write(move |conn| {
                Box::pin(async move {
                    let governance = aos_engines::governance::settings::get(conn, tenant).await?;
                    Ok(engine::apply_discovery(conn, tenant, server_id, fetched, &governance, &signer, &actor).await?)
                })
            })
            .await
        }
        Err(error) => {
            let settings = cx.mcp().settings.clone();
            let reason = error.to_string();
            cx.write(move |conn| {
                Box::pin(
                    async move { Ok(engine::record_unreachable(conn, &settings, tenant, server_id, &reason).await?) },
                )
            })
            .await?;
            Err(error.into())
        }
    }
}

/// `integrations.mcp_servers.register_server`
pub struct Register {
    pub actor: AuthContext,
    pub request: api::RegisterMcpServerRequest,
}

impl Workflow for Register {
    const NAME: &'static str = "integrations.mcp_servers.register_server";
    type Output = api::McpRegistration;

    fn run(self, cx: WorkflowContext) -> OpFuture<'static, Self::Output> {
        Box::pin(async move {
            let tenant = self.actor.tenant_with(Scope::McpAdmin)?;
            let discover = self.request.discover;
            let registration = Registration {
                name: self.request.name,
                url: self.request.url,
                description: self.request.description,
                transport: transport(self.request.transport),
                credential_ref: self.request.credential_ref,
                metadata: self.request.metadata,
                created_by: self.actor.actor(),
                call_timeout_ms: self.request.call_timeout_ms,
                max_output_bytes: self.request.max_output_bytes,
                max_calls_per_minute: self.request.max_calls_per_minute,
            };
            let mcp = cx.mcp().clone();
            mcp.check_target_resolves(registration.transport, registration.url.trim())
                .await?;
            let audit_actor = self.actor.audit_actor();
            let server = cx
                .write(move |conn| {
                    Box::pin(async move {
                        let server = engine::register(conn, &mcp, tenant, registration).await?;
                        engine::audit_change(
                            conn,
                            tenant,
                            &audit_actor,
                            AuditEventType::McpServerRegistered,
                            SubjectKind::McpServer,
                            server.id.to_string(),
                            serde_json::json!({"name": server.name, "url": server.url, "transport": server.transport}),
                        )
                        .await?;
                        Ok(server)
                    })
                })
                .await?;
            tracing::info!(server_id = %server.id, tenant_id = %tenant, transport = %server.transport, "MCP server registered");
            if !discover {
                return Ok(api::McpRegistration {
                    server: server_to_api(server),
                    discovery: None,
                    discovery_error: None,
                });
            }
            let server_id: Uuid = server.id.into();
            match discover_server(&cx, tenant, server_id, &self.actor).await {
                Ok(report) => Ok(api::McpRegistration {
                    server: server_to_api(report.server.clone()),
                    discovery: Some(discovery_to_api(report)),
                    discovery_error: None,
                }),
                Err(error) => {
                    let server = cx
                        .read(move |conn| {
                            Box::pin(async move { Ok(engine::get_server(conn, tenant, server_id).await?) })
                        })
                        .await?;
                    Ok(api::McpRegistration {
                        server: server_to_api(server),
                        discovery: None,
                        discovery_error: Some(error.message),
                    })
                }
            }
        })
    }
}

/// `integrations.mcp_servers.discover_tools`
pub struct Discover {
    pub actor: AuthContext,
    pub server_id: Uuid,
}

impl Workflow for Discover {
    const NAME: &'static str = "integrations.mcp_servers.discover_tools";
    type Output = api::McpDiscovery;

    fn run(self, cx: WorkflowContext) -> OpFuture<'static, Self::Output> {
        Box::pin(async move {
            let tenant = self.actor.tenant_with(Scope::McpAdmin)?;
            Ok(discovery_to_api(
                discover_server(&cx, tenant, self.server_id, &self.actor).await?,
            ))
        })
    }
}

/// `integrations.mcp_servers.health_check`
pub struct Health {
    pub actor: AuthContext,
    pub server_id: Uuid,
}

impl Workflow for Health {
    const NAME: &'static str = "integrations.mcp_servers.health_check";
    type Output = api::McpHealth;

    fn run(self, cx: WorkflowContext) -> OpFuture<'static, Self::Output> {
        Box::pin(async move {
            let tenant = self.actor.tenant_with(Scope::McpRead)?;
            let server_id = self.server_id;
            let server = cx
                .read(move |conn| Box::pin(async move { Ok(engine::get_live_server(conn, tenant, server_id).await?) }))
                .await?;
            let probe = engine::probe(cx.mcp(), &engine::target(&server)?).await;
            let settings = cx.mcp().settings.clone();
            let recorded = probe.clone();
            let updated = cx
                .write(move |conn| {
                    Box::pin(
                        async move { Ok(engine::apply_probe(conn, &settings, tenant, server_id, &recorded).await?) },
                    )
                })
                .await?;
            Ok(api::McpHealth {
                server_id,
                healthy: probe.ok,
                status: status(&updated),
                latency_ms: probe.latency_ms,
                error: probe.error,
                protocol_version: probe.protocol_version,
            })
        })
    }
}

/// `integrations.mcp_servers.get_server` (deleted servers stay readable for audit).
pub struct Get {
    pub actor: AuthContext,
    pub server_id: Uuid,
}

impl Operation for Get {
    const NAME: &'static str = "integrations.mcp_servers.get_server";
    const MODE: Mode = Mode::Read;
    type Output = api::McpServer;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let tenant = self.actor.tenant_with(Scope::McpRead)?;
            Ok(server_to_api(
                engine::get_server(cx.conn, tenant, self.server_id).await?,
            ))
        })
    }
}

/// `integrations.mcp_servers.list_servers`
pub struct List {
    pub actor: AuthContext,
    pub query: api::ListServersQuery,
}

impl Operation for List {
    const NAME: &'static str = "integrations.mcp_servers.list_servers";
    const MODE: Mode = Mode::Read;
    type Output = ListEnvelope<api::McpServer>;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let tenant = self.actor.tenant_with(Scope::McpRead)?;
            let limit = cursor::limit(self.query.limit, 50, 200)?;
            let after = self.query.cursor.as_deref().map(cursor::decode).transpose()?;
            let (rows, next, total) =
                engine::list_servers(cx.conn, tenant, self.query.include_disabled, after, limit).await?;
            Ok(ListEnvelope {
                data: rows.into_iter().map(server_to_api).collect(),
                meta: ListMeta {
                    total: Some(total),
                    limit,
                    next_cursor: next.map(|(at, id)| cursor::encode(at, id)),
                },
            })
        })
    }
}

/// `integrations.mcp_servers.delete_server` (soft).
pub struct Delete {
    pub actor: AuthContext,
    pub server_id: Uuid,
}

impl Operation for Delete {
    const NAME: &'static str = "integrations.mcp_servers.delete_server";
    const MODE: Mode = Mode::Write;
    type Output = api::McpServer;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let tenant = self.actor.tenant_with(Scope::McpAdmin)?;
            let server = engine::delete_server(cx.conn, tenant, self.server_id).await?;
            engine::audit_change(
                cx.conn,
                tenant,
                &self.actor.audit_actor(),
                AuditEventType::McpServerDeleted,
                SubjectKind::McpServer,
                server.id.to_string(),
                serde_json::json!({"name": server.name}),
            )
            .await?;
            tracing::info!(server_id = %server.id, tenant_id = %tenant, "MCP server deleted (soft)");
            Ok(server_to_api(server))
        })
    }
}

/// `integrations.mcp_servers.list_tools`
pub struct ListTools {
    pub actor: AuthContext,
    pub server_id: Uuid,
    pub include_unavailable: bool,
}

impl Operation for ListTools {
    const NAME: &'static str = "integrations.mcp_servers.list_tools";
    const MODE: Mode = Mode::Read;
    type Output = Vec<api::McpTool>;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let tenant = self.actor.tenant_with(Scope::McpRead)?;
            let tools = engine::list_tools(cx.conn, tenant, self.server_id, self.include_unavailable).await?;
            Ok(tools.into_iter().map(tool_to_api).collect())
        })
    }
}

/// `integrations.mcp_servers.get_tool`
pub struct GetTool {
    pub actor: AuthContext,
    pub server_id: Uuid,
    pub tool_id: Uuid,
}

impl Operation for GetTool {
    const NAME: &'static str = "integrations.mcp_servers.get_tool";
    const MODE: Mode = Mode::Read;
    type Output = api::McpTool;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let tenant = self.actor.tenant_with(Scope::McpRead)?;
            Ok(tool_to_api(
                engine::get_tool(cx.conn, tenant, self.server_id, self.tool_id).await?,
            ))
        })
    }
}

/// `integrations.mcp_servers.enable_tool` / `disable_tool`
pub struct SetToolEnabled {
    pub actor: AuthContext,
    pub server_id: Uuid,
    pub tool_id: Uuid,
    pub enabled: bool,
}

impl Operation for SetToolEnabled {
    const NAME: &'static str = "integrations.mcp_servers.set_tool_enabled";
    const MODE: Mode = Mode::Write;
    type Output = api::McpTool;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let tenant = self.actor.tenant_with(Scope::McpAdmin)?;
            let actor = self.actor.audit_actor();
            let tool = engine::set_enabled(cx.conn, tenant, self.server_id, self.tool_id, self.enabled, &actor).await?;
            tracing::info!(tool_id = %tool.id, enabled = tool.enabled, "MCP tool toggled");
            Ok(tool_to_api(tool))
        })
    }
}

/// `integrations.mcp_servers.set_tool_risk`
pub struct SetToolRisk {
    pub actor: AuthContext,
    pub server_id: Uuid,
    pub tool_id: Uuid,
    pub request: api::SetToolRiskRequest,
}

impl Operation for SetToolRisk {
    const NAME: &'static str = "integrations.mcp_servers.set_tool_risk";
    const MODE: Mode = Mode::Write;
    type Output = api::McpTool;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let tenant = self.actor.tenant_with(Scope::McpAdmin)?;
            let choice = engine::RiskChoice {
                level: risk_from_api(self.request.risk_level),
                requires_approval: self.request.requires_approval,
            };
            let tool = engine::set_risk(
                cx.conn,
                tenant,
                (self.server_id, self.tool_id),
                choice,
                &self.actor.audit_actor(),
            )
            .await?;
            Ok(tool_to_api(tool))
        })
    }
}

/// `integrations.mcp_servers.get_invocations`
pub struct Invocations {
    pub actor: AuthContext,
    pub server_id: Uuid,
    pub limit: Option<u32>,
}

impl Operation for Invocations {
    const NAME: &'static str = "integrations.mcp_servers.get_invocations";
    const MODE: Mode = Mode::Read;
    type Output = Vec<api::McpInvocation>;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let tenant = self.actor.tenant_with(Scope::McpRead)?;
            let rows = engine::invocations(cx.conn, tenant, self.server_id, self.limit.unwrap_or(20)).await?;
            Ok(rows.into_iter().map(invocation_to_api).collect())
        })
    }
}
