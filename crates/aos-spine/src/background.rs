//! Background work, in one place: the jobs the spine runs (the credential-epoch and
//! kill-switch pollers and the governance sweep, each one [`every`] call; the MCP health
//! scheduler; the proxy call-log retention sweep). A periodic job is one [`every`] call: a named job run every interval,
//! stopped with the spine, whose failures are logged once when they start and once when
//! they end (a database that is down for an hour is two log lines, not 14,400).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aos_drivers::{Database, TxMode};
use aos_engines::mcp::client::McpRuntime;
use aos_engines::mcp::invoke as mcp_invoke;
use aos_engines::mcp::registry as mcp_registry;
use tokio_util::sync::CancellationToken;

/// Runs `job` every `interval` until `stop`, the first time one interval after the call
/// (the start-up migrations, which may create the job's tables on a new database, run
/// first); `name` is what the log lines say. A run that fails logs a warning if the one
/// before succeeded; a run that succeeds after failures logs that the job recovered.
pub(crate) async fn every<J, F>(name: &'static str, interval: Duration, stop: CancellationToken, mut job: J)
where
    J: FnMut() -> F + Send,
    F: Future<Output = Result<(), String>> + Send,
{
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        match job().await {
            Ok(()) if failing => {
                tracing::info!(job = name, "background job recovered");
                failing = false;
            }
            Ok(()) => {}
            Err(error) if !failing => {
                tracing::warn!(job = name, %error, "background job failing; will retry every interval");
                failing = true;
            }
            Err(_) => {}
        }
    }
}

// ---- the jobs -----------------------------------------------------------------------------

/// One run of the governance sweep: expires due approvals (their gated calls become
/// BLOCKED) and completes invocations stranded in RUNNING (their outcome write was lost;
/// see [`mcp_invoke::reap_stranded`]).
pub(crate) async fn sweep_governance(db: &Database, mcp: &Arc<McpRuntime>) -> Result<(), String> {
    let expired = db
        .transaction(TxMode::Write, |conn| {
            Box::pin(async move { mcp_invoke::expire_approvals(conn, 500).await })
        })
        .await
        .map_err(|e| format!("approval expiry: {e}"))?;
    if expired > 0 {
        tracing::info!(expired, "approvals expired");
    }
    let runtime = Arc::clone(mcp);
    let completed = db
        .transaction(TxMode::Write, move |conn| {
            Box::pin(
                async move { mcp_invoke::reap_stranded(conn, &runtime, time::OffsetDateTime::now_utc(), 100).await },
            )
        })
        .await
        .map_err(|e| format!("stranded-invocation reaper: {e}"))?;
    if completed > 0 {
        tracing::warn!(completed, "stranded invocations completed as OUTCOME_UNKNOWN");
    }
    Ok(())
}

/// Health-checks every live MCP server about every `mcp.health_interval_secs`: the least
/// recently checked first, starts spread over the interval, at most
/// `mcp.health_concurrency` at once.
pub(crate) async fn schedule_health_checks(db: Database, mcp: Arc<McpRuntime>, stop: CancellationToken) {
    let interval = Duration::from_secs(mcp.settings.health_interval_secs.max(1));
    let permits = Arc::new(tokio::sync::Semaphore::new(mcp.settings.health_concurrency.max(1)));
    let tick = (interval / 4).clamp(Duration::from_millis(200), Duration::from_secs(15));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(tick) => {}
        }
        let due = match db.conn().await {
            Ok(mut conn) => mcp_registry::due_for_health(&mut conn, interval, 100).await,
            Err(e) => Err(e.into()),
        };
        let due = match due {
            Ok(due) => due,
            Err(error) => {
                tracing::warn!(%error, "cannot list servers due for a health check");
                continue;
            }
        };
        let spacing = (tick / u32::try_from(due.len().max(1)).unwrap_or(u32::MAX)).min(Duration::from_secs(1));
        for server in due {
            if stop.is_cancelled() {
                return;
            }
            let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
                return;
            };
            let (db, mcp) = (db.clone(), Arc::clone(&mcp));
            tokio::spawn(async move {
                let _permit = permit;
                let Ok(target) = mcp_registry::target(&server) else {
                    return;
                };
                let probe = mcp_registry::probe(&mcp, &target).await;
                let (tenant, id) = (server.tenant_id.into(), server.id.into());
                let settings = mcp.settings.clone();
                let result = db
                    .transaction(TxMode::Write, move |conn| {
                        Box::pin(async move { mcp_registry::apply_probe(conn, &settings, tenant, id, &probe).await })
                    })
                    .await;
                match result {
                    Ok(updated) => tracing::debug!(server_id = %updated.id, status = %updated.status, "health checked"),
                    Err(error) => tracing::warn!(server_id = %server.id, %error, "health check not recorded"),
                }
            });
            tokio::time::sleep(spacing).await;
        }
    }
}

/// Deletes proxy calls past their retention, hourly (and once shortly after start).
pub(crate) async fn sweep_proxy_calls(db: Database, retention_days: u32, stop: CancellationToken) {
    let mut wait = Duration::from_secs(60);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = Duration::from_secs(3600);
        let result = db
            .transaction(TxMode::Write, move |conn| {
                Box::pin(async move { aos_engines::proxy::sweep_calls(conn, retention_days).await })
            })
            .await;
        match result {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "proxy calls past their retention deleted"),
            Err(error) => tracing::warn!(%error, "proxy call retention sweep failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn a_job_runs_every_interval_through_failures_until_stopped() {
        let runs = Arc::new(AtomicUsize::new(0));
        let stop = CancellationToken::new();
        let counted = Arc::clone(&runs);
        let task = tokio::spawn(every("test", Duration::from_millis(50), stop.clone(), move || {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                if n.is_multiple_of(2) {
                    Err("down".to_owned())
                } else {
                    Ok(())
                }
            }
        }));
        // Timers never fire early: nothing runs before the first interval.
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 0, "the first run waits one interval");
        // Failing runs do not stop the loop.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while runs.load(Ordering::SeqCst) < 4 {
            assert!(tokio::time::Instant::now() < deadline, "the job stopped running");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.cancel();
        assert!(task.await.is_ok());
        let seen = runs.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(runs.load(Ordering::SeqCst), seen, "stopped");
    }
}
