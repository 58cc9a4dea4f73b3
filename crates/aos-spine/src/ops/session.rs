//! `session.context`: the verified context of the caller.

use aos_engines::auth::Scope;
use aos_schemas::session::{AuthType, SessionContext};

use crate::context::AuthContext;
use crate::op::{Mode, OpFuture, Operation, OperationContext};
use crate::ops::tenants::to_api;

/// `session.context`
pub struct Context {
    pub actor: AuthContext,
}

impl Operation for Context {
    const NAME: &'static str = "session.context";
    const MODE: Mode = Mode::Read;
    type Output = SessionContext;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let tenant = match self.actor.tenant_id() {
                Some(id) => Some(to_api(aos_engines::tenants::get(cx.conn, id).await?)),
                None => None,
            };
            let (auth_type, actor_id, roles, key_expires_at) = match &self.actor {
                AuthContext::Operator => (
                    AuthType::Operator,
                    aos_types::ActorKind::Operator.as_str().to_owned(),
                    Vec::new(),
                    None,
                ),
                AuthContext::Human { user_id, roles, .. } => (AuthType::Human, user_id.clone(), roles.clone(), None),
                AuthContext::Machine {
                    key_id,
                    expires_at,
                    agent_id: Some(_),
                    ..
                } => (AuthType::Agent, key_id.to_string(), Vec::new(), *expires_at),
                AuthContext::Machine { key_id, expires_at, .. } => {
                    (AuthType::Machine, key_id.to_string(), Vec::new(), *expires_at)
                }
                AuthContext::Integration { key_id, .. } => {
                    (AuthType::Integration, key_id.to_string(), Vec::new(), None)
                }
            };
            let scopes = match &self.actor {
                AuthContext::Operator => Scope::ALL.iter().map(|s| s.as_str().to_owned()).collect(),
                other => other.scopes().iter().map(|s| s.as_str().to_owned()).collect(),
            };
            Ok(SessionContext {
                auth_type,
                agent_id: self.actor.own_agent().map(aos_types::AgentId::get),
                tenant_id: self.actor.tenant_id(),
                actor_id,
                roles,
                scopes,
                tenant_status: tenant.as_ref().map(|t| t.status),
                onboarding_state: tenant.as_ref().map(|t| t.onboarding_state),
                key_expires_at,
            })
        })
    }
}
