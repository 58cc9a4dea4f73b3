//! What the `bench-*` binaries share: fixed-concurrency runs and percentiles.

use std::sync::Arc;
use std::time::{Duration, Instant};

/// Calls per measured phase and path.
pub const CALLS_PER_PHASE: usize = 800;
const DEFAULT_CONCURRENCY: usize = 4;

/// The `q` quantile of sorted samples.
pub fn quantile(samples: &[Duration], q: f64) -> Duration {
    let index = ((samples.len() as f64 - 1.0) * q) as usize;
    samples.get(index).copied().unwrap_or_default()
}

/// The backend a bench binary runs on: PostgreSQL with `--postgres`, else SQLite.
pub fn backend() -> crate::Backend {
    if std::env::args().any(|a| a == "--postgres") {
        crate::Backend::Postgres
    } else {
        crate::Backend::Sqlite
    }
}

/// `AOS_BENCH_CONCURRENCY`, default 4.
pub fn concurrency() -> usize {
    std::env::var("AOS_BENCH_CONCURRENCY")
        .ok()
        .and_then(|c| c.parse().ok())
        .filter(|c| *c >= 1)
        .unwrap_or(DEFAULT_CONCURRENCY)
}

/// Runs `call` [`CALLS_PER_PHASE`] times from [`concurrency`] tasks; each call's latency.
pub async fn run<F, Fut>(call: F) -> Vec<Duration>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let call = Arc::new(call);
    let mut tasks = Vec::new();
    let concurrency = concurrency();
    for _ in 0..concurrency {
        let call = Arc::clone(&call);
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::with_capacity(CALLS_PER_PHASE / concurrency);
            for _ in 0..CALLS_PER_PHASE / concurrency {
                let started = Instant::now();
                call().await;
                samples.push(started.elapsed());
            }
            samples
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("a bench task finishes"));
    }
    all
}
