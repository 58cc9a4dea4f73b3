//! The verified identity of a caller, as operations see it, and the authorisation checks
//! operations make with it.

use aos_engines::auth::{Principal, Scope, scope};
use aos_schemas::ErrorCode;
use aos_types::{ActorKind, AgentId};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::SpineError;

/// Who is calling, after authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthContext {
    /// The platform operator: acts on every tenant, through the admin routes.
    Operator,
    /// A tenant user (JWT).
    Human {
        tenant_id: Uuid,
        user_id: String,
        roles: Vec<String>,
        scopes: Vec<Scope>,
        /// Acting for this agent (`/mcp/agents/{id}`): the agent's capabilities bound the
        /// catalog and the calls; the calls stay the person's.
        acting_for: Option<AgentId>,
    },
    /// An API key.
    Machine {
        tenant_id: Uuid,
        key_id: Uuid,
        scopes: Vec<Scope>,
        expires_at: Option<OffsetDateTime>,
        /// The agent this key belongs to: its calls are the agent's.
        agent_id: Option<AgentId>,
        /// A tenant key acting for an agent (`/mcp/agents/{id}`).
        acting_for: Option<AgentId>,
    },
    /// A customer integration's key: writes its own usage; reads it when `can_read`.
    Integration {
        tenant_id: Uuid,
        integration_id: Uuid,
        key_id: Uuid,
        scopes: Vec<Scope>,
    },
}

impl From<Principal> for AuthContext {
    fn from(p: Principal) -> Self {
        match p {
            Principal::Operator => Self::Operator,
            Principal::Human {
                tenant_id,
                user_id,
                roles,
                scopes,
            } => Self::Human {
                tenant_id,
                user_id,
                roles,
                scopes,
                acting_for: None,
            },
            Principal::Machine {
                tenant_id,
                key_id,
                scopes,
                expires_at,
                agent_id,
            } => Self::Machine {
                tenant_id,
                key_id,
                scopes,
                expires_at,
                agent_id: agent_id.map(AgentId::from),
                acting_for: None,
            },
            Principal::Integration {
                tenant_id,
                integration_id,
                key_id,
                can_read,
            } => {
                let mut scopes = vec![Scope::TelemetryWrite];
                if can_read {
                    scopes.insert(0, Scope::TelemetryRead);
                }
                Self::Integration {
                    tenant_id,
                    integration_id,
                    key_id,
                    scopes,
                }
            }
        }
    }
}

impl AuthContext {
    /// `founder`, `human`, `machine`, `agent` or `integration`.
    pub fn auth_type(&self) -> &'static str {
        match self {
            Self::Operator => ActorKind::Operator.as_str(),
            Self::Human { .. } => ActorKind::Human.as_str(),
            Self::Machine { agent_id: Some(_), .. } => ActorKind::Agent.as_str(),
            Self::Machine { .. } => ActorKind::Machine.as_str(),
            Self::Integration { .. } => ActorKind::Integration.as_str(),
        }
    }

    /// The agent whose capabilities bound this caller: an agent's own key, or a person
    /// or tenant key acting for an agent.
    pub fn agent(&self) -> Option<AgentId> {
        match self {
            Self::Machine {
                agent_id, acting_for, ..
            } => agent_id.or(*acting_for),
            Self::Human { acting_for, .. } => *acting_for,
            _ => None,
        }
    }

    /// The agent whose key this is (calls are attributed to it).
    pub fn own_agent(&self) -> Option<AgentId> {
        match self {
            Self::Machine { agent_id, .. } => *agent_id,
            _ => None,
        }
    }

    /// This caller acting for `agent` (`/mcp/agents/{id}`): an agent's key only for its
    /// own agent; a person or a tenant key holding `mcp:admin` (or `admin`) for any agent
    /// of the tenant (the agent's existence is checked when its catalog is read).
    pub fn acting_for(self, agent: AgentId) -> Result<Self, SpineError> {
        match self {
            Self::Machine {
                agent_id: Some(own), ..
            } if own == agent => Ok(self),
            Self::Machine { agent_id: Some(_), .. } => Err(SpineError::new(
                ErrorCode::Forbidden,
                "an agent's key may act only for its own agent",
            )),
            Self::Machine {
                tenant_id,
                key_id,
                scopes,
                expires_at,
                agent_id: None,
                ..
            } => {
                if !scope::allows(&scopes, Scope::McpAdmin) {
                    return Err(SpineError::new(
                        ErrorCode::InsufficientScope,
                        "acting for an agent needs the mcp:admin scope",
                    ));
                }
                Ok(Self::Machine {
                    tenant_id,
                    key_id,
                    scopes,
                    expires_at,
                    agent_id: None,
                    acting_for: Some(agent),
                })
            }
            Self::Human {
                tenant_id,
                user_id,
                roles,
                scopes,
                ..
            } => {
                if !scope::allows(&scopes, Scope::McpAdmin) {
                    return Err(SpineError::new(
                        ErrorCode::InsufficientScope,
                        "acting for an agent needs the mcp:admin scope",
                    ));
                }
                Ok(Self::Human {
                    tenant_id,
                    user_id,
                    roles,
                    scopes,
                    acting_for: Some(agent),
                })
            }
            Self::Operator | Self::Integration { .. } => Err(SpineError::new(
                ErrorCode::Forbidden,
                "only a tenant's people and keys may act for its agents",
            )),
        }
    }

    /// The caller's tenant; none for the platform operator.
    pub fn tenant_id(&self) -> Option<Uuid> {
        match self {
            Self::Operator => None,
            Self::Human { tenant_id, .. } | Self::Machine { tenant_id, .. } | Self::Integration { tenant_id, .. } => {
                Some(*tenant_id)
            }
        }
    }

    /// Who did it, for records: `founder`, `user:<id>`, `key:<id>` or, for an agent's
    /// key, `agent:<id>` (the key is in the call's own records).
    pub fn actor(&self) -> String {
        match self {
            Self::Operator => ActorKind::Operator.as_str().into(),
            Self::Human { user_id, .. } => format!("user:{user_id}"),
            Self::Machine {
                agent_id: Some(agent), ..
            } => agent.actor(),
            Self::Machine { key_id, .. } => format!("key:{key_id}"),
            Self::Integration { key_id, .. } => format!("integration_key:{key_id}"),
        }
    }

    pub fn scopes(&self) -> &[Scope] {
        match self {
            Self::Operator => &[],
            Self::Human { scopes, .. } | Self::Machine { scopes, .. } | Self::Integration { scopes, .. } => scopes,
        }
    }

    /// For an integration key: the one integration it may touch.
    pub fn integration(&self) -> Option<Uuid> {
        match self {
            Self::Integration { integration_id, .. } => Some(*integration_id),
            _ => None,
        }
    }

    /// Refuses anyone but the platform operator.
    pub fn require_operator(&self) -> Result<(), SpineError> {
        match self {
            Self::Operator => Ok(()),
            _ => Err(SpineError::new(
                ErrorCode::Forbidden,
                "only the platform operator may do this",
            )),
        }
    }

    /// The caller as the audit chain records it.
    pub fn audit_actor(&self) -> aos_engines::governance::audit::Actor {
        aos_engines::governance::audit::Actor {
            kind: match self {
                Self::Operator => ActorKind::Operator,
                Self::Human { .. } => ActorKind::Human,
                Self::Machine { agent_id: Some(_), .. } => ActorKind::Agent,
                Self::Machine { .. } => ActorKind::Machine,
                Self::Integration { .. } => ActorKind::Integration,
            },
            id: Some(self.actor()),
        }
    }

    /// The tenant a request acts on: the platform operator names it (`?tenant_id=`);
    /// anyone else acts on their own tenant, holding one of `wanted` in it, and may name
    /// only that tenant: naming another is refused (403), never silently ignored.
    pub fn tenant_named(&self, named: Option<Uuid>, wanted: &[Scope]) -> Result<Uuid, SpineError> {
        match (self, named) {
            (Self::Operator, Some(id)) => Ok(id),
            (Self::Operator, None) => Err(SpineError::bad_request(
                "the platform operator names the tenant: ?tenant_id=",
            )),
            (actor, named) => {
                let own = actor.tenant_with_any(wanted)?;
                match named {
                    Some(other) if other != own => Err(SpineError::new(
                        ErrorCode::Forbidden,
                        "tenant_id names another tenant; only the platform operator may name one",
                    )
                    .on_field("tenant_id")),
                    _ => Ok(own),
                }
            }
        }
    }

    /// The caller's own tenant, if the caller holds any of `wanted` in it.
    pub fn tenant_with_any(&self, wanted: &[Scope]) -> Result<Uuid, SpineError> {
        let mut last = None;
        for scope in wanted {
            match self.tenant_with(*scope) {
                Ok(tenant) => return Ok(tenant),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| SpineError::new(ErrorCode::Forbidden, "not allowed")))
    }

    /// The caller's own tenant, if the caller holds `scope` in it.
    pub fn tenant_with(&self, wanted: Scope) -> Result<Uuid, SpineError> {
        match self {
            Self::Operator => Err(SpineError::new(
                ErrorCode::Forbidden,
                "the platform operator has no tenant of its own; use the /api/v1/admin routes",
            )),
            Self::Human { tenant_id, scopes, .. }
            | Self::Machine { tenant_id, scopes, .. }
            | Self::Integration { tenant_id, scopes, .. } => {
                if scope::allows(scopes, wanted) {
                    Ok(*tenant_id)
                } else {
                    Err(SpineError::new(
                        ErrorCode::InsufficientScope,
                        format!("this needs the {wanted} scope"),
                    ))
                }
            }
        }
    }
}
