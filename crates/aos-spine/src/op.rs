//! Named operations and how the spine runs them.

use std::future::Future;
use std::pin::Pin;

use std::sync::Arc;

use aos_drivers::{Conn, TxFuture, TxMode};
use aos_engines::mcp::client::McpRuntime;
use aos_engines::telemetry::TelemetrySettings;

use crate::error::{SpineError, SpineResult};
use crate::spine::Shared;

/// How an operation touches the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Plain reads on a pooled connection, no transaction.
    Read,
    /// One transaction, committed if the operation returns `Ok`. On SQLite it takes the
    /// writer lock up front (`BEGIN IMMEDIATE`).
    Write,
}

/// What an operation receives: a connection in the mode it declared, settings, and the
/// list of effects to apply on this replica once its transaction commits.
pub struct OperationContext<'c> {
    pub conn: &'c mut Conn,
    pub(crate) telemetry: &'c TelemetrySettings,
    pub(crate) shared: &'c Shared,
    pub(crate) effects: &'c AfterCommit,
}

impl OperationContext<'_> {
    /// Queues `effect` for after the commit: it is applied by [`crate::Spine::execute`]
    /// when (and only when) the operation's transaction commits, so no caller can commit
    /// a change its own replica ignores until the next poll.
    pub(crate) fn after_commit(&self, effect: Effect) {
        self.effects.push(effect);
    }
}

/// An effect on this replica's in-memory state that must follow a committed change.
pub(crate) enum Effect {
    /// The credential epoch moved (a key or integration key revoked, a tenant's status
    /// changed): this replica re-reads it and drops its credential cache now.
    CredentialsChanged,
    /// A freeze or unfreeze: this replica's kill switch applies it now.
    KillSwitch(aos_engines::killswitch::StateRow),
    /// A tenant's proxy settings: this replica's settings cache holds them now.
    ProxySettings(uuid::Uuid, Arc<aos_engines::proxy::settings::TenantSettings>),
}

/// The effects an operation queued, applied after its commit (see [`Effect`]).
#[derive(Default)]
pub(crate) struct AfterCommit(std::sync::Mutex<Vec<Effect>>);

impl AfterCommit {
    fn push(&self, effect: Effect) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(effect);
    }

    /// Applies the queued effects on this replica.
    pub(crate) async fn apply(self, shared: &Shared) {
        let effects = self.0.into_inner().unwrap_or_else(|e| e.into_inner());
        for effect in effects {
            match effect {
                Effect::CredentialsChanged => {
                    let refreshed = match shared.db.conn().await {
                        Ok(mut conn) => aos_engines::auth::cache::refresh(shared.auth.cache(), &mut conn)
                            .await
                            .map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    };
                    if let Err(error) = refreshed {
                        // The poller catches up within `auth.cache_poll_ms`.
                        tracing::warn!(%error, "cannot re-read the credential epoch after a change");
                    }
                }
                Effect::KillSwitch(row) => shared.kill_switch.apply(&row),
                Effect::ProxySettings(tenant, settings) => shared.proxy.engine.settings.put(tenant, settings),
            }
        }
    }
}

pub type OpFuture<'c, T> = Pin<Box<dyn Future<Output = Result<T, SpineError>> + Send + 'c>>;

/// One named thing the spine can do. Implementations live in [`crate::ops`]; the name
/// appears on the tracing span of every run and is stable (dashboards key on it).
pub trait Operation: Send + 'static {
    /// `domain.verb`, e.g. `tenants.create`.
    const NAME: &'static str;
    const MODE: Mode;
    type Output: Send + 'static;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output>;
}

/// A named multi-step task: reads and writes in separate transactions, with work that must
/// not hold a transaction in between (calls to customer servers). Like an operation it
/// runs to completion in its own task.
pub trait Workflow: Send + 'static {
    /// `domain.verb`.
    const NAME: &'static str;
    type Output: Send + 'static;

    fn run(self, cx: WorkflowContext) -> OpFuture<'static, Self::Output>;
}

/// What a workflow receives: short transactions on demand, and the engines' state.
#[derive(Clone)]
pub struct WorkflowContext {
    pub(crate) shared: Arc<Shared>,
}

impl WorkflowContext {
    pub fn mcp(&self) -> &Arc<McpRuntime> {
        &self.shared.mcp
    }

    pub fn policy(&self) -> &Arc<dyn aos_engines::governance::policy::PolicyChecker> {
        &self.shared.policy
    }

    pub fn signer(&self) -> &Arc<aos_engines::mcp::manifest::ManifestSigner> {
        &self.shared.signer
    }

    pub fn approvals(&self) -> &crate::config::ApprovalSettings {
        &self.shared.approvals
    }

    /// Runs `body` on a pooled connection, no transaction.
    pub async fn read<T, F>(&self, body: F) -> SpineResult<T>
    where
        F: for<'c> FnOnce(&'c mut Conn) -> TxFuture<'c, SpineResult<T>> + Send,
        T: Send,
    {
        let mut conn = self.shared.db.conn().await?;
        body(&mut conn).await
    }

    /// Runs `body` in one write transaction.
    pub async fn write<T, F>(&self, body: F) -> SpineResult<T>
    where
        F: for<'c> FnOnce(&'c mut Conn) -> TxFuture<'c, SpineResult<T>> + Send,
        T: Send,
    {
        self.shared.db.transaction(TxMode::Write, body).await
    }
}
