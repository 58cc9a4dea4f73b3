//! The executor: [`Spine::execute`] runs an [`Operation`] (a connection or one
//! transaction, then its after-commit effects), [`Spine::run`] a [`Workflow`]; both in a
//! task of their own on the spine's runtime, tracked for shutdown, so a caller that goes
//! away never cuts a write short.

use std::sync::Arc;

use aos_drivers::TxMode;
use tracing::Instrument;

use crate::error::{SpineError, SpineResult};
use crate::op::{AfterCommit, Mode, Operation, OperationContext, Workflow, WorkflowContext};
use crate::spine::Spine;

impl Spine {
    /// Runs `op` to completion in its own task, in the database mode it declares.
    ///
    /// The task is spawned, not awaited in place: if the caller's future is dropped (the
    /// client disconnected), the operation still finishes and commits or rolls back as
    /// a whole.
    pub async fn execute<O: Operation>(&self, op: O) -> SpineResult<O::Output> {
        let shared = self.shared_arc();
        let span = tracing::info_span!("operation", name = O::NAME);
        let tasks = self.shared().tasks.clone();
        let runtime = self.shared().runtime.clone();
        let task = tasks.spawn_on(
            async move {
                let started = std::time::Instant::now();
                let effects = Arc::new(AfterCommit::default());
                let result = match O::MODE {
                    Mode::Read => {
                        let mut conn = shared.db.conn().await?;
                        op.run(OperationContext {
                            conn: &mut conn,
                            telemetry: &shared.telemetry,
                            shared: &shared,
                            effects: &effects,
                        })
                        .await
                    }
                    Mode::Write => {
                        let db = shared.db.clone();
                        let queued = Arc::clone(&effects);
                        let inner = Arc::clone(&shared);
                        db.transaction(TxMode::Write, move |conn| {
                            Box::pin(async move {
                                op.run(OperationContext {
                                    conn,
                                    telemetry: &inner.telemetry,
                                    shared: &inner,
                                    effects: &queued,
                                })
                                .await
                            })
                        })
                        .await
                    }
                };
                // Committed (or read): this replica's caches follow before the caller
                // hears of it. A failed operation's effects are dropped with it.
                if result.is_ok()
                    && let Some(effects) = Arc::into_inner(effects)
                {
                    effects.apply(&shared).await;
                }
                let elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                match &result {
                    Ok(_) => tracing::debug!(elapsed_us, "operation done"),
                    Err(e) => tracing::info!(elapsed_us, code = %e.code, "operation failed"),
                }
                result
            }
            .instrument(span),
            &runtime,
        );
        match task.await {
            Ok(result) => result,
            Err(join) => {
                tracing::error!(operation = O::NAME, error = %join, "operation task panicked or was cancelled");
                Err(SpineError::internal())
            }
        }
    }

    /// Runs a workflow to completion in its own task (see [`Workflow`]).
    pub async fn run<W: Workflow>(&self, workflow: W) -> SpineResult<W::Output> {
        let cx = WorkflowContext {
            shared: self.shared_arc(),
        };
        let span = tracing::info_span!("workflow", name = W::NAME);
        let task = self
            .shared()
            .tasks
            .spawn_on(workflow.run(cx).instrument(span), &self.shared().runtime);
        match task.await {
            Ok(result) => result,
            Err(join) => {
                tracing::error!(workflow = W::NAME, error = %join, "workflow task panicked or was cancelled");
                Err(SpineError::internal())
            }
        }
    }
}
