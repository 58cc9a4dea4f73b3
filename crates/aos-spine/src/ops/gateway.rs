//! AOS as an MCP server (`/mcp`, `/mcp/ws`): the spine's side of the engine's
//! [`McpGateway`]: the caller's catalog and its calls, through the same governed
//! invocation workflow as the REST endpoint.

use std::sync::Arc;

use aos_engines::auth::Scope;
use aos_engines::governance::policy::PolicyChecker;
use aos_engines::mcp::gateway::{
    self, BoxFuture, CallMeta, CallOutcome, CatalogTool, GatewayBackend, GatewayError, GatewaySettings, McpGateway,
    NamedTool,
};
use aos_engines::mcp::invoke::{self, Caller};
use aos_schemas::ErrorCode;
use aos_schemas::governance::{InvocationStatus, InvokeToolRequest};
use serde_json::Value;

use crate::context::AuthContext;
use crate::error::SpineError;
use crate::op::{Mode, OpFuture, Operation, OperationContext};
use crate::ops::governance::Invoke;
use crate::spine::Spine;

pub use aos_engines::mcp::gateway::{GatewayRequest, GatewayResponse};

/// The endpoint type the API holds.
pub type Gateway = McpGateway<SpineGateway>;

/// `mcp.gateway.agent`: whether the caller may open `/mcp/agents/{id}`: the agent is the
/// tenant's (404 otherwise) and active (403 when disabled).
pub struct AgentEndpoint {
    pub actor: AuthContext,
}

impl Operation for AgentEndpoint {
    const NAME: &'static str = "mcp.gateway.agent";
    const MODE: Mode = Mode::Read;
    type Output = ();

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let tenant = self.actor.tenant_with(Scope::McpInvoke)?;
            if let Some(agent) = self.actor.agent() {
                aos_engines::agents::cached_grant(cx.conn, cx.shared.auth.cache(), tenant.into(), agent).await?;
            }
            Ok(())
        })
    }
}

/// The caller's callable tools.
pub struct Catalog {
    pub actor: AuthContext,
}

impl Operation for Catalog {
    const NAME: &'static str = "mcp.gateway.catalog";
    const MODE: Mode = Mode::Read;
    type Output = Vec<CatalogTool>;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let tenant = self.actor.tenant_with(Scope::McpInvoke)?;
            // Long-lived connections (the WebSocket) poll this: a key revoked or expired, or
            // a tenant no longer active since the handshake, ends them here.
            if let AuthContext::Machine { key_id, .. } = &self.actor {
                aos_engines::auth::keys::still_valid(cx.conn, tenant, *key_id).await?;
            }
            let prepared = agent_catalog(cx.conn, &cx.shared.auth, tenant, &self.actor).await?;
            visible(&cx.shared.policy, tenant, &self.actor, prepared).await
        })
    }
}

/// The tenant's catalog, narrowed to the agent's capabilities when the caller is (or
/// acts for) an agent: resolved now, so a tool added later that matches a glob is in it
/// once enabled, and a pinned agent sees only its manifest's definitions.
async fn agent_catalog(
    conn: &mut aos_drivers::Conn,
    auth: &aos_engines::auth::Authenticator,
    tenant: uuid::Uuid,
    actor: &AuthContext,
) -> Result<Vec<invoke::Prepared>, SpineError> {
    let prepared = invoke::prepare_catalog(conn, tenant).await?;
    let Some(agent) = actor.agent() else {
        return Ok(prepared);
    };
    let grant = aos_engines::agents::cached_grant(conn, auth.cache(), tenant.into(), agent).await?;
    Ok(prepared
        .into_iter()
        .filter_map(|mut entry| {
            entry.grant = Some(Arc::clone(&grant));
            invoke::agent_admits(&mut entry).ok().map(|()| entry)
        })
        .collect())
}

/// The catalog minus what the policy hides from this caller (`hide` rules, evaluated with
/// `purpose: list`; an evaluation error hides, failing closed).
async fn visible(
    policy: &Arc<dyn PolicyChecker>,
    tenant: uuid::Uuid,
    actor: &AuthContext,
    prepared: Vec<invoke::Prepared>,
) -> Result<Vec<CatalogTool>, SpineError> {
    let caller = Caller {
        actor: actor.audit_actor(),
        principal: actor.actor(),
    };
    let mut tools = Vec::with_capacity(prepared.len());
    for entry in &prepared {
        let decision = policy
            .check(&invoke::catalog_policy_request(tenant, &caller, entry))
            .await;
        if decision.hidden.is_empty() {
            tools.push(gateway::catalog_tool(entry));
        }
    }
    Ok(tools)
}

/// The catalog with its MCP names, for admins (`GET /api/v1/mcp/catalog`): shows which
/// names were changed to resolve a collision.
pub struct NamedCatalog {
    pub actor: AuthContext,
}

impl Operation for NamedCatalog {
    const NAME: &'static str = "mcp.gateway.named_catalog";
    const MODE: Mode = Mode::Read;
    type Output = Vec<aos_schemas::mcp::CatalogEntry>;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let tenant = self.actor.tenant_with_any(&[Scope::McpRead, Scope::McpInvoke])?;
            let prepared = agent_catalog(cx.conn, &cx.shared.auth, tenant, &self.actor).await?;
            let named: Vec<NamedTool> =
                gateway::name_catalog(visible(&cx.shared.policy, tenant, &self.actor, prepared).await?);
            Ok(named
                .into_iter()
                .map(|n| aos_schemas::mcp::CatalogEntry {
                    name: n.name,
                    collided_with: n.collided_with,
                    server_id: n.tool.server_id,
                    server_name: n.tool.server_name,
                    tool_id: n.tool.tool_id,
                    tool_name: n.tool.tool_name,
                })
                .collect())
        })
    }
}

/// A tool result with AOS's invocation id in its `_meta` (`aos/invocation_id`).
fn with_invocation(mut result: Value, invocation: uuid::Uuid) -> Value {
    if let Some(object) = result.as_object_mut() {
        let meta = object
            .entry("_meta")
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        if let Some(meta) = meta.as_object_mut() {
            meta.insert("aos/invocation_id".into(), Value::String(invocation.to_string()));
        }
    }
    result
}

/// The spine as the gateway's backend.
pub struct SpineGateway {
    spine: Spine,
}

fn to_gateway(err: SpineError) -> GatewayError {
    match err.code {
        ErrorCode::Forbidden
        | ErrorCode::InsufficientScope
        | ErrorCode::TenantSuspended
        | ErrorCode::TenantTerminated
        | ErrorCode::Unauthenticated
        | ErrorCode::NotFound
        | ErrorCode::CapabilityNotGranted => GatewayError::Forbidden(err.message),
        _ => GatewayError::Internal(err.message),
    }
}

impl GatewayBackend for SpineGateway {
    type Principal = AuthContext;

    fn catalog<'a>(&'a self, who: &'a AuthContext) -> BoxFuture<'a, Result<Vec<CatalogTool>, GatewayError>> {
        Box::pin(async move {
            self.spine
                .execute(Catalog { actor: who.clone() })
                .await
                .map_err(to_gateway)
        })
    }

    fn call<'a>(
        &'a self,
        who: &'a AuthContext,
        tool: &'a CatalogTool,
        arguments: Value,
        meta: CallMeta,
    ) -> BoxFuture<'a, Result<CallOutcome, GatewayError>> {
        Box::pin(async move {
            let mut request = InvokeToolRequest::new(arguments);
            request.run_id = meta.run_id;
            request.trace_id = meta.trace_id;
            request.actor_type = Some("agent".to_owned());
            let invoked = self
                .spine
                .run(Invoke {
                    actor: who.clone(),
                    server_id: tool.server_id,
                    tool_id: tool.tool_id,
                    request,
                })
                .await;
            let result = match invoked {
                Ok(result) => result,
                // Bad arguments are the agent's to fix: a tool error it can read.
                Err(err) if err.code == ErrorCode::InvalidToolInput => {
                    return Ok(CallOutcome::Refused(format!("invalid arguments: {}", err.message)));
                }
                Err(err)
                    if matches!(
                        err.code,
                        ErrorCode::KillSwitchActive | ErrorCode::CapabilityNotGranted | ErrorCode::RateLimited
                    ) =>
                {
                    return Ok(CallOutcome::Refused(err.message));
                }
                Err(err) if err.code == ErrorCode::NotFound => {
                    return Ok(CallOutcome::Refused("this tool is no longer available".to_owned()));
                }
                Err(err) => return Err(to_gateway(err)),
            };
            let reasons = if result.reasons.is_empty() {
                String::new()
            } else {
                format!(": {}", result.reasons.join("; "))
            };
            let invocation = result.invocation_id;
            Ok(match result.status {
                InvocationStatus::Success => {
                    CallOutcome::Completed(with_invocation(result.output.unwrap_or(Value::Null), invocation))
                }
                // The upstream's own error result (`isError: true`): its content is what the
                // model needs to read, so it passes through as the upstream wrote it.
                InvocationStatus::Failure
                    if result
                        .output
                        .as_ref()
                        .is_some_and(|o| o.get("isError") == Some(&Value::Bool(true))) =>
                {
                    CallOutcome::Completed(with_invocation(result.output.unwrap_or(Value::Null), invocation))
                }
                InvocationStatus::PendingApproval => CallOutcome::Refused(format!(
                    "this call needs an approval{reasons}; approval id {} (invocation {}). It runs once approved.",
                    result.approval_id.map(|id| id.to_string()).unwrap_or_default(),
                    result.invocation_id
                )),
                InvocationStatus::Blocked => CallOutcome::Refused(format!(
                    "denied by policy{reasons} (invocation {})",
                    result.invocation_id
                )),
                InvocationStatus::Timeout => {
                    CallOutcome::Refused(format!("the tool timed out (invocation {})", result.invocation_id))
                }
                InvocationStatus::Failure | InvocationStatus::Running => CallOutcome::Refused(format!(
                    "the tool failed: {} (invocation {})",
                    result.error_message.as_deref().unwrap_or("unknown error"),
                    result.invocation_id
                )),
            })
        })
    }

    fn catalog_revision<'a>(&'a self, who: &'a AuthContext) -> BoxFuture<'a, Result<String, GatewayError>> {
        Box::pin(async move {
            let tools = self.catalog(who).await?;
            Ok(gateway::catalog_revision(&tools))
        })
    }

    fn principal_id(&self, who: &AuthContext) -> String {
        // A session opened for an agent is that agent's catalog only.
        match who.agent() {
            Some(agent) => format!("{}@agent:{agent}", who.actor()),
            None => who.actor(),
        }
    }

    fn credential_changes(&self) -> Option<tokio::sync::watch::Receiver<i64>> {
        Some(self.spine.shared().auth.cache().subscribe())
    }
}

impl Spine {
    /// The MCP endpoint over this spine (the API builds one per worker).
    pub fn mcp_gateway(&self, settings: GatewaySettings) -> Arc<Gateway> {
        Arc::new(McpGateway::new(
            Arc::new(SpineGateway { spine: self.clone() }),
            settings,
        ))
    }

    /// Whether `who` may use the MCP endpoint at all (`mcp:invoke` in an active tenant).
    pub fn authorize_mcp_gateway(&self, who: &AuthContext) -> Result<(), SpineError> {
        who.tenant_with(Scope::McpInvoke).map(|_| ())
    }
}

pub use aos_engines::mcp::gateway::GatewaySettings as McpGatewaySettings;
