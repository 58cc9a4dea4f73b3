//! The verified identity of a caller, as operations see it, and the authorisation checks
//! operations make with it.

use aos_engines::auth::{Principal, Scope, scope};
use aos_schemas::ErrorCode;
use aos_types::ActorKind;
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
    },
    /// An API key.
    Machine {
        tenant_id: Uuid,
        key_id: Uuid,
        scopes: Vec<Scope>,
        expires_at: Option<OffsetDateTime>,
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
            },
            Principal::Machine {
                tenant_id,
                key_id,
                scopes,
                expires_at,
            } => Self::Machine {
                tenant_id,
                key_id,
                scopes,
                expires_at,
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
    /// `founder`, `human` or `machine`.
    pub fn auth_type(&self) -> &'static str {
        match self {
            Self::Operator => ActorKind::Operator.as_str(),
            Self::Human { .. } => "human",
            Self::Machine { .. } => "machine",
            Self::Integration { .. } => "integration",
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

    /// Who did it, for records: `founder`, `user:<id>` or `key:<id>`.
    pub fn actor(&self) -> String {
        match self {
            Self::Operator => ActorKind::Operator.as_str().into(),
            Self::Human { user_id, .. } => format!("user:{user_id}"),
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
