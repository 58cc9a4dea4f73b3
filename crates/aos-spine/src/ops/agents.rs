//! Agents: `agents.*`. Reading needs `mcp:read`, changing `mcp:admin`, in the caller's
//! own tenant. An agent's keys are API keys bound to it (`agents.keys.*`); its manifests
//! are signed with the platform's manifest key (`agents.manifests.*`). Freezing an agent
//! is the kill switch's (`killswitch.change` with [`crate::ops::killswitch::Target::Agent`]).

use aos_engines::agents::{self, Agent, AgentManifest, AgentUpdate, CapabilityInput, NewAgent};
use aos_engines::auth::Scope;
use aos_engines::auth::keys::{self, NewKey};
use aos_engines::killswitch::Entity;
use aos_schemas::agents as api;
use aos_schemas::{ListEnvelope, ListMeta};
use aos_types::{AgentId, AgentStatus, TenantId};
use secrecy::ExposeSecret;
use uuid::Uuid;

use crate::context::AuthContext;
use crate::error::SpineError;
use crate::op::{Effect, Mode, OpFuture, Operation, OperationContext};
use crate::ops::cursor;

pub const DEFAULT_PAGE: u32 = 50;

fn status_to_api(status: AgentStatus) -> api::AgentStatus {
    match status {
        AgentStatus::Active => api::AgentStatus::Active,
        AgentStatus::Disabled => api::AgentStatus::Disabled,
        AgentStatus::Deleted => api::AgentStatus::Deleted,
    }
}

fn to_api(agent: Agent, frozen: bool) -> api::Agent {
    api::Agent {
        id: agent.id.get(),
        tenant_id: agent.tenant_id.get(),
        name: agent.name,
        description: agent.description,
        owner: agent.owner,
        status: status_to_api(agent.status),
        capabilities: agent
            .capabilities
            .into_iter()
            .map(|c| api::Capability {
                tool: c.tool,
                max_risk: c.max_risk.map(|r| r.as_str().to_owned()),
                requires_approval: c.requires_approval,
            })
            .collect(),
        manifest_pinned: agent.manifest_pinned,
        frozen,
        created_by: agent.created_by,
        created_at: agent.created_at,
        updated_at: agent.updated_at,
    }
}

fn inputs(caps: Vec<api::Capability>) -> Vec<CapabilityInput> {
    caps.into_iter()
        .map(|c| CapabilityInput {
            tool: c.tool,
            max_risk: c.max_risk,
            requires_approval: c.requires_approval,
        })
        .collect()
}

fn claims_to_api(c: agents::ManifestClaims) -> api::AgentManifestClaims {
    api::AgentManifestClaims {
        agent_id: c.agent_id,
        tenant_id: c.tenant_id,
        version: c.version,
        capabilities: c
            .capabilities
            .into_iter()
            .map(|t| api::ManifestCapability {
                name: t.name,
                tool_hash: t.tool_hash,
                risk: t.risk,
            })
            .collect(),
        issued_at: c.issued_at,
        issuer: c.issuer,
        iss: c.iss,
        iat: c.iat,
    }
}

fn manifest_to_api(m: AgentManifest) -> api::AgentManifest {
    api::AgentManifest {
        id: m.id.get(),
        agent_id: m.agent_id.get(),
        version: m.version,
        kid: aos_engines::mcp::manifest::kid_of(&m.jws).unwrap_or_default(),
        manifest: m.jws,
        payload: claims_to_api(m.claims),
        issued_by: m.issued_by,
        issued_at: m.issued_at,
    }
}

fn frozen(cx: &OperationContext<'_>, agent: &Agent) -> bool {
    cx.shared.kill_switch.is_frozen(Entity::Agent(agent.id.get()))
}

fn tenant(actor: &AuthContext, scope: Scope) -> Result<TenantId, SpineError> {
    actor.tenant_with(scope).map(TenantId::from)
}

/// `agents.create`
pub struct Create {
    pub actor: AuthContext,
    pub request: api::CreateAgentRequest,
}

impl Operation for Create {
    const NAME: &'static str = "agents.create";
    const MODE: Mode = Mode::Write;
    type Output = api::Agent;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let tenant = tenant(&self.actor, Scope::McpAdmin)?;
            let r = self.request;
            let new = NewAgent {
                name: r.name,
                description: r.description,
                owner: r.owner,
                capabilities: inputs(r.capabilities),
                manifest_pinned: r.manifest_pinned,
            };
            let agent = agents::create(cx.conn, tenant, new, &self.actor.audit_actor()).await?;
            tracing::info!(agent_id = %agent.id, tenant_id = %tenant, "agent created");
            Ok(to_api(agent, false))
        })
    }
}

/// `agents.get`
pub struct Get {
    pub actor: AuthContext,
    pub id: Uuid,
}

impl Operation for Get {
    const NAME: &'static str = "agents.get";
    const MODE: Mode = Mode::Read;
    type Output = api::Agent;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let tenant = tenant(&self.actor, Scope::McpRead)?;
            let agent = agents::get(cx.conn, tenant, AgentId::from(self.id)).await?;
            let frozen = frozen(&cx, &agent);
            Ok(to_api(agent, frozen))
        })
    }
}

/// `agents.list`
pub struct List {
    pub actor: AuthContext,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

impl Operation for List {
    const NAME: &'static str = "agents.list";
    const MODE: Mode = Mode::Read;
    type Output = ListEnvelope<api::Agent>;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let tenant = tenant(&self.actor, Scope::McpRead)?;
            let limit = cursor::limit(self.limit, DEFAULT_PAGE, agents::MAX_PAGE)?;
            let after = self.cursor.as_deref().map(cursor::decode).transpose()?;
            let (rows, next) = agents::list(cx.conn, tenant, after, limit).await?;
            Ok(ListEnvelope {
                data: rows
                    .into_iter()
                    .map(|a| {
                        let frozen = frozen(&cx, &a);
                        to_api(a, frozen)
                    })
                    .collect(),
                meta: ListMeta {
                    total: None,
                    limit,
                    next_cursor: next.map(|(at, id)| cursor::encode(at, id)),
                },
            })
        })
    }
}

/// `agents.update`: what the agent's keys may do changes on every replica within the
/// credential poll interval.
pub struct Update {
    pub actor: AuthContext,
    pub id: Uuid,
    pub request: api::UpdateAgentRequest,
}

impl Operation for Update {
    const NAME: &'static str = "agents.update";
    const MODE: Mode = Mode::Write;
    type Output = api::Agent;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let tenant = tenant(&self.actor, Scope::McpAdmin)?;
            let r = self.request;
            let status = match r.status {
                None => None,
                Some(api::AgentStatus::Active) => Some(AgentStatus::Active),
                Some(api::AgentStatus::Disabled) => Some(AgentStatus::Disabled),
                Some(api::AgentStatus::Deleted) => {
                    return Err(SpineError::validation(
                        "status",
                        "must be ACTIVE or DISABLED (DELETE /api/v1/agents/{id} removes an agent)",
                    ));
                }
            };
            let change = AgentUpdate {
                name: r.name,
                description: r.description,
                owner: r.owner,
                capabilities: r.capabilities.map(inputs),
                status,
                manifest_pinned: r.manifest_pinned,
            };
            let agent = agents::update(
                cx.conn,
                tenant,
                AgentId::from(self.id),
                change,
                &self.actor.audit_actor(),
            )
            .await?;
            cx.after_commit(Effect::CredentialsChanged);
            let frozen = frozen(&cx, &agent);
            Ok(to_api(agent, frozen))
        })
    }
}

/// `agents.delete`: soft delete; the agent's keys are revoked.
pub struct Delete {
    pub actor: AuthContext,
    pub id: Uuid,
}

impl Operation for Delete {
    const NAME: &'static str = "agents.delete";
    const MODE: Mode = Mode::Write;
    type Output = api::Agent;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let tenant = tenant(&self.actor, Scope::McpAdmin)?;
            let agent = agents::delete(cx.conn, tenant, AgentId::from(self.id), &self.actor.audit_actor()).await?;
            cx.after_commit(Effect::CredentialsChanged);
            tracing::info!(agent_id = %agent.id, tenant_id = %tenant, "agent deleted; its keys revoked");
            let frozen = frozen(&cx, &agent);
            Ok(to_api(agent, frozen))
        })
    }
}

/// `agents.keys.create`: an API key bound to the agent, shown once.
pub struct CreateKey {
    pub actor: AuthContext,
    pub id: Uuid,
    pub request: api::CreateAgentKeyRequest,
}

impl Operation for CreateKey {
    const NAME: &'static str = "agents.keys.create";
    const MODE: Mode = Mode::Write;
    type Output = api::CreatedAgentKey;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let tenant = tenant(&self.actor, Scope::McpAdmin)?;
            let agent = agents::get(cx.conn, tenant, AgentId::from(self.id)).await?;
            let new = NewKey {
                name: self.request.name,
                scopes: self
                    .request
                    .scopes
                    .unwrap_or_else(|| vec![Scope::McpInvoke.as_str().to_owned()]),
                expires_at: self.request.expires_at,
                created_by: self.actor.actor(),
                agent: Some(agent.id),
            };
            let (row, key) = keys::create(cx.conn, tenant.get(), new).await?;
            aos_engines::governance::audit::append(
                cx.conn,
                tenant.get(),
                &self.actor.audit_actor(),
                aos_engines::governance::audit::Event {
                    event_type: aos_types::AuditEventType::AgentKeyCreated,
                    subject_type: aos_types::SubjectKind::Agent,
                    subject_id: Some(agent.id.to_string()),
                    decision: None,
                    policy_revision: None,
                    details: serde_json::json!({"key_id": row.id.to_string(), "prefix": row.prefix,
                                                "scopes": row.scope_names()}),
                },
            )
            .await?;
            tracing::info!(key_id = %row.id, agent_id = %agent.id, prefix = %row.prefix, "agent key created");
            Ok(api::CreatedAgentKey {
                agent_id: agent.id.get(),
                api_key: crate::ops::api_keys::to_api(row),
                key: key.expose_secret().to_owned(),
            })
        })
    }
}

/// `agents.keys.list`
pub struct ListKeys {
    pub actor: AuthContext,
    pub id: Uuid,
}

impl Operation for ListKeys {
    const NAME: &'static str = "agents.keys.list";
    const MODE: Mode = Mode::Read;
    type Output = Vec<aos_schemas::api_keys::ApiKey>;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let tenant = tenant(&self.actor, Scope::McpRead)?;
            let rows = agents::keys(cx.conn, tenant, AgentId::from(self.id)).await?;
            Ok(rows.into_iter().map(crate::ops::api_keys::to_api).collect())
        })
    }
}

/// `agents.manifests.issue`: signs the agent's capabilities as resolved now.
pub struct IssueManifest {
    pub actor: AuthContext,
    pub id: Uuid,
}

impl Operation for IssueManifest {
    const NAME: &'static str = "agents.manifests.issue";
    const MODE: Mode = Mode::Write;
    type Output = api::AgentManifest;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let tenant = tenant(&self.actor, Scope::McpAdmin)?;
            let signer = &cx.shared.signer;
            let manifest = agents::issue_manifest(
                cx.conn,
                signer,
                tenant,
                AgentId::from(self.id),
                &self.actor.audit_actor(),
            )
            .await?;
            // A pinned agent's calls follow the new manifest on every replica.
            cx.after_commit(Effect::CredentialsChanged);
            Ok(manifest_to_api(manifest))
        })
    }
}

/// `agents.manifests.list`: newest first.
pub struct ListManifests {
    pub actor: AuthContext,
    pub id: Uuid,
    pub limit: Option<u32>,
}

impl Operation for ListManifests {
    const NAME: &'static str = "agents.manifests.list";
    const MODE: Mode = Mode::Read;
    type Output = Vec<api::AgentManifest>;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let tenant = tenant(&self.actor, Scope::McpRead)?;
            let limit = cursor::limit(self.limit, DEFAULT_PAGE, agents::MAX_PAGE)?;
            let rows = agents::manifests(cx.conn, tenant, AgentId::from(self.id), limit).await?;
            Ok(rows.into_iter().map(manifest_to_api).collect())
        })
    }
}

/// `agents.manifests.get`: one version, or the latest.
pub struct GetManifest {
    pub actor: AuthContext,
    pub id: Uuid,
    /// `None`: the latest.
    pub version: Option<i64>,
}

impl Operation for GetManifest {
    const NAME: &'static str = "agents.manifests.get";
    const MODE: Mode = Mode::Read;
    type Output = api::AgentManifest;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let tenant = tenant(&self.actor, Scope::McpRead)?;
            let id = AgentId::from(self.id);
            let manifest = match self.version {
                Some(version) => agents::manifest(cx.conn, tenant, id, version).await?,
                None => agents::manifests(cx.conn, tenant, id, 1)
                    .await?
                    .into_iter()
                    .next()
                    .ok_or_else(|| {
                        SpineError::new(
                            aos_schemas::ErrorCode::NotFound,
                            "no manifest yet: POST /api/v1/agents/{id}/manifests issues one",
                        )
                    })?,
            };
            Ok(manifest_to_api(manifest))
        })
    }
}

/// `agents.manifests.verify`: checks a manifest against the published keys (any
/// authenticated tenant caller; nothing is read from the database).
pub struct VerifyManifest {
    pub actor: AuthContext,
    pub request: api::VerifyManifestRequest,
}

impl Operation for VerifyManifest {
    const NAME: &'static str = "agents.manifests.verify";
    const MODE: Mode = Mode::Read;
    type Output = api::ManifestVerification;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            self.actor.tenant_with_any(&[Scope::McpRead, Scope::McpInvoke])?;
            Ok(
                match agents::verify_manifest(&self.request.manifest, cx.shared.signer.keys()) {
                    Ok(claims) => api::ManifestVerification {
                        valid: true,
                        payload: Some(claims_to_api(claims)),
                        reason: None,
                    },
                    Err(reason) => api::ManifestVerification {
                        valid: false,
                        payload: None,
                        reason: Some(reason),
                    },
                },
            )
        })
    }
}
