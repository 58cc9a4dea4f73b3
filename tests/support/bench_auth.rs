//! `make bench-auth`: what authentication costs per request, as a ratio against a
//! baseline measured in the same run (the machine is shared and noisy).
//!
//! Serves AOS in-process on SQLite (or on PostgreSQL with `--postgres`), then times
//! sequential requests over loopback HTTP/1.1 keep-alive:
//! - baseline: an unauthenticated 404 (`/nope`): routing, middleware, envelope;
//! - cached key: the same 404 under `/api/` with a valid API key (credential cache hit);
//! - unknown key: a well-formed key that does not exist (a database lookup every time).
//!
//! Prints median and p99 per case and the ratio of medians to the baseline.

// A benchmark binary: setup failures abort it.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::indexing_slicing)]

use std::time::{Duration, Instant};

use aos_spine::AuthConfig;
use aos_tests::bench::quantile;
use aos_tests::{spawn_custom, test_auth, test_mcp};

const ROUNDS: usize = 3_000;

async fn measure(client: &reqwest::Client, url: &str, key: Option<&str>) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let mut request = client.get(url);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let started = Instant::now();
        let response = request.send().await.expect("request");
        let _ = response.bytes().await.expect("body");
        samples.push(started.elapsed());
    }
    samples.sort();
    samples
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let backend = aos_tests::bench::backend();
    // A limiter that never trips: the unknown-key case fails on purpose, thousands of times.
    let auth = AuthConfig {
        max_failed_attempts: u32::MAX,
        ..test_auth()
    };
    let app = spawn_custom(backend, auth, test_mcp()).await;
    let tenant = app.create_tenant("bench").await;
    let (_, key) = app.create_key(&tenant, &["mcp:read"]).await;
    let unknown = format!("aos_sk_{}", "B".repeat(43));
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    let baseline_url = app.url("/nope");
    let api_url = app.url("/api/v1/nope");

    // Warm up connections and caches.
    measure(&client, &baseline_url, None).await;
    measure(&client, &api_url, Some(&key)).await;

    let cases = [
        ("baseline (no auth)", measure(&client, &baseline_url, None).await),
        ("cached API key", measure(&client, &api_url, Some(&key)).await),
        (
            "unknown API key (DB lookup)",
            measure(&client, &api_url, Some(&unknown)).await,
        ),
    ];
    let base = quantile(&cases[0].1, 0.5).as_secs_f64();
    println!("backend: {}, {ROUNDS} sequential requests per case", backend.as_str());
    println!("{:<30} {:>10} {:>10} {:>8}", "case", "p50 µs", "p99 µs", "x base");
    for (name, samples) in &cases {
        let p50 = quantile(samples, 0.5);
        let p99 = quantile(samples, 0.99);
        println!(
            "{name:<30} {:>10.1} {:>10.1} {:>8.2}",
            p50.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6,
            p50.as_secs_f64() / base
        );
    }
}
