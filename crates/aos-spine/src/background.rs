//! Background work: every loop the spine runs (the credential-epoch and kill-switch
//! pollers, the governance sweep) is one [`every`] call: a named job run every interval,
//! stopped with the spine, whose failures are logged once when they start and once when
//! they end (a database that is down for an hour is two log lines, not 14,400).

use std::future::Future;
use std::time::Duration;

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
