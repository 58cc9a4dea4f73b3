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

/// What an operation receives: a connection in the mode it declared, and settings.
pub struct OperationContext<'c> {
    pub conn: &'c mut Conn,
    pub(crate) telemetry: &'c TelemetrySettings,
    pub(crate) shared: &'c Shared,
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
