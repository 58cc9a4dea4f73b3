//! The kill switch: `killswitch.freeze` / `unfreeze` (write) and `killswitch.status`
//! (read). The platform operator may freeze any tenant or key; a tenant admin (`admin`)
//! its own tenant and keys. Enforcement is [`Spine::kill_switch_check`], called by the
//! operations that send traffic upstream before they do anything else.

use aos_engines::auth::Scope;
use aos_engines::governance::audit::{self, AuditFilter};
use aos_engines::killswitch::{self, Entity, StateRow as KillSwitchRow};
use aos_schemas::ErrorCode;
use aos_schemas::killswitch as api;
use aos_types::AgentId;
use aos_types::AuditEventType;
use uuid::Uuid;

use crate::context::AuthContext;
use crate::error::{SpineError, SpineResult};
use crate::op::{Effect, Mode, OpFuture, Operation, OperationContext};
use crate::spine::Spine;

/// What to freeze or unfreeze.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Tenant(Uuid),
    Key(Uuid),
    /// An agent of the caller's tenant (the operator names the tenant).
    Agent {
        tenant: Option<Uuid>,
        agent: Uuid,
    },
}

/// What a [`Change`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Freeze,
    Unfreeze,
}

/// `killswitch.change`: freezes or unfreezes a tenant or a key.
pub struct Change {
    pub actor: AuthContext,
    pub target: Target,
    pub action: Action,
    pub request: api::FreezeRequest,
}

fn to_api(row: &KillSwitchRow) -> api::KillSwitchState {
    api::KillSwitchState {
        entity_type: row.entity_type.clone(),
        entity_id: row.entity_id.0,
        tenant_id: row.tenant_id.0,
        frozen: row.frozen,
        reason: row.reason.clone(),
        changed_by: row.changed_by.clone(),
        changed_at: row.changed_at.into(),
    }
}

/// The tenant an admin caller may act on (`None` for the operator: any).
fn scope_of(actor: &AuthContext) -> Result<Option<Uuid>, SpineError> {
    match actor {
        AuthContext::Operator => Ok(None),
        _ => actor.tenant_with(Scope::Admin).map(Some),
    }
}

impl Operation for Change {
    const NAME: &'static str = "killswitch.change";
    const MODE: Mode = Mode::Write;
    type Output = KillSwitchRow;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let allowed = scope_of(&self.actor)?;
            let (tenant, entity) = match self.target {
                Target::Tenant(id) => {
                    if allowed.is_some_and(|own| own != id) {
                        return Err(SpineError::new(ErrorCode::NotFound, "no such tenant"));
                    }
                    aos_engines::tenants::get(cx.conn, id).await?;
                    (id, Entity::Tenant(id))
                }
                Target::Key(id) => (killswitch::key_tenant(cx.conn, allowed, id).await?, Entity::Key(id)),
                Target::Agent { tenant, agent } => {
                    let tenant = match (allowed, tenant) {
                        (Some(own), Some(named)) if named != own => {
                            return Err(SpineError::new(ErrorCode::NotFound, "agent not found"));
                        }
                        (Some(own), _) | (None, Some(own)) => own,
                        (None, None) => {
                            return Err(SpineError::bad_request(
                                "the platform operator names the tenant: ?tenant_id=",
                            ));
                        }
                    };
                    (
                        killswitch::agent_tenant(cx.conn, tenant, agent).await?,
                        Entity::Agent(agent),
                    )
                }
            };
            let actor = self.actor.audit_actor();
            let row = if self.action == Action::Freeze {
                killswitch::freeze(cx.conn, tenant, entity, self.request.reason, &actor).await?
            } else {
                // A frozen key cannot lift freezes (a runaway agent must not free itself).
                if let AuthContext::Machine { key_id, .. } = &self.actor
                    && cx.shared.kill_switch.is_frozen(Entity::Key(*key_id))
                {
                    return Err(SpineError::new(
                        ErrorCode::Forbidden,
                        "this API key is frozen; another admin or the operator must unfreeze",
                    ));
                }
                let by_operator = matches!(self.actor, AuthContext::Operator);
                killswitch::unfreeze(cx.conn, tenant, entity, &actor, by_operator).await?
            };
            cx.after_commit(Effect::KillSwitch(row.clone()));
            Ok(row)
        })
    }
}

/// `killswitch.status`: the tenant's state and history.
pub struct Status {
    pub actor: AuthContext,
    pub query: api::KillSwitchQuery,
}

impl Operation for Status {
    const NAME: &'static str = "killswitch.status";
    const MODE: Mode = Mode::Read;
    type Output = api::KillSwitchOverview;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let tenant = self.actor.tenant_named(
                self.query.tenant_id,
                &[Scope::Admin, Scope::ProxyInvoke, Scope::McpInvoke],
            )?;
            if matches!(self.actor, AuthContext::Operator) {
                aos_engines::tenants::get(cx.conn, tenant).await?;
            }
            let rows = killswitch::states(cx.conn, tenant).await?;
            let mut history = Vec::new();
            for event_type in [AuditEventType::KillSwitchFrozen, AuditEventType::KillSwitchUnfrozen] {
                let filter = AuditFilter {
                    event_type: Some(event_type.as_str().to_owned()),
                    ..AuditFilter::default()
                };
                let (events, _) = audit::list(cx.conn, tenant, &filter, 0, 500).await?;
                history.extend(events);
            }
            history.sort_by_key(|e| e.seq);
            Ok(api::KillSwitchOverview {
                tenant_id: tenant,
                tenant_frozen: rows.iter().any(|r| r.entity_type == "tenant" && r.frozen),
                frozen_keys: rows
                    .iter()
                    .filter(|r| r.entity_type == "key" && r.frozen)
                    .map(|r| r.entity_id.0)
                    .collect(),
                states: rows.iter().map(to_api).collect(),
                history: history.into_iter().map(crate::ops::governance::audit_to_api).collect(),
            })
        })
    }
}

impl Spine {
    /// Freezes or unfreezes, and applies the change on this replica at once (the others
    /// pick it up within [`crate::spine::KILLSWITCH_POLL`]).
    pub async fn kill_switch_change(&self, change: Change) -> SpineResult<api::KillSwitchState> {
        let row = self.execute(change).await?;
        Ok(to_api(&row))
    }
}

pub(crate) fn check(switch: &killswitch::KillSwitch, actor: &AuthContext) -> Result<(), SpineError> {
    let (tenant, key) = match actor {
        AuthContext::Operator => return Ok(()),
        AuthContext::Machine { tenant_id, key_id, .. } => (*tenant_id, Some(*key_id)),
        AuthContext::Human { tenant_id, .. } | AuthContext::Integration { tenant_id, .. } => (*tenant_id, None),
    };
    match switch.check(tenant, key, actor.agent().map(AgentId::get)) {
        None => Ok(()),
        Some(frozen) => {
            let what = match frozen.entity {
                Entity::Tenant(_) => "this tenant",
                Entity::Key(_) => "this API key",
                Entity::Agent(_) => "this agent",
            };
            let reason = frozen.reason.map(|r| format!(": {r}")).unwrap_or_default();
            Err(SpineError::new(
                ErrorCode::KillSwitchActive,
                format!("kill switch active: {what} is frozen{reason}"),
            ))
        }
    }
}
