//! `make bench-proxy`: OpenAI chat completions through AOS's proxy against calling the
//! same fake upstream directly, at a fixed request rate, in one run (the machine is shared
//! and noisy, so overhead is read against a same-run baseline).
//!
//! - The upstream is `aos-fake-llm`, its own process, answering a small non-streamed chat
//!   completion at once.
//! - AOS runs in this process (SQLite by default, `--postgres` for PostgreSQL) with
//!   everything on: API-key authentication, the kill switch, the default guardrails
//!   (PII flagged, secrets and prompt injection blocked, size capped) and the call log
//!   with its background writer. A second AOS phase adds a daily budget, whose
//!   reservation is a database write before every upstream call.
//! - Load is open-loop: a request is started every 1/rate seconds whatever the previous
//!   ones do, and each latency is measured from its scheduled start (no coordinated
//!   omission). Latencies go into a fixed histogram (1 µs buckets up to 100 ms), so the
//!   generator's memory stays flat.
//! - Paths: direct, AOS, AOS with a budget; each gets `AOS_BENCH_PROXY_SECS` (default 60)
//!   at `AOS_BENCH_PROXY_RPS` (default 1000), in 5 interleaved rounds so drift on the
//!   shared machine hits every path alike. The process's resident memory (AOS and the
//!   load generator) is sampled every 5 s over the whole run.

// A benchmark binary: setup failures abort it.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::indexing_slicing)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aos_tests::{Options, spawn_opts};
use serde_json::json;

const BUCKETS: usize = 100_000;

/// Latencies in 1 µs buckets; the last bucket holds everything slower.
struct Histogram {
    counts: Vec<AtomicU64>,
    errors: AtomicU64,
}

impl Histogram {
    fn new() -> Self {
        Self {
            counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            errors: AtomicU64::new(0),
        }
    }

    fn record(&self, latency: Duration) {
        let us = (latency.as_micros() as usize).min(BUCKETS - 1);
        self.counts[us].fetch_add(1, Ordering::Relaxed);
    }

    fn total(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    fn quantile_us(&self, q: f64) -> u64 {
        let total = self.total();
        let target = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (us, count) in self.counts.iter().enumerate() {
            seen += count.load(Ordering::Relaxed);
            if seen >= target {
                return us as u64;
            }
        }
        BUCKETS as u64
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// Drives `secs` seconds of open-loop load at `rate` into `histogram`.
async fn phase(
    histogram: &Arc<Histogram>,
    client: &reqwest::Client,
    url: &str,
    key: Option<&str>,
    rate: u64,
    secs: u64,
) {
    let body = Arc::new(
        serde_json::to_vec(&json!({"model": "gpt-4o-mini", "max_tokens": 16,
            "messages": [{"role": "system", "content": "You are terse."},
                         {"role": "user", "content": "Summarise the quarterly report in one line, please."}]}))
        .unwrap(),
    );
    let period = Duration::from_nanos(1_000_000_000 / rate);
    let total = rate * secs;
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..total {
        ticker.tick().await;
        let scheduled = started + period * (i as u32);
        let (client, url, key, body, histogram) = (
            client.clone(),
            url.to_owned(),
            key.map(str::to_owned),
            Arc::clone(&body),
            Arc::clone(histogram),
        );
        tasks.spawn(async move {
            let mut request = client
                .post(url)
                .header("content-type", "application/json")
                .body(body.as_ref().clone());
            if let Some(key) = key {
                request = request.bearer_auth(key);
            }
            match request.send().await {
                Ok(response) if response.status().is_success() => {
                    let _ = response.bytes().await;
                    histogram.record(scheduled.elapsed());
                }
                _ => {
                    histogram.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

fn report(name: &str, h: &Histogram, secs: u64) {
    println!(
        "{name:<14} n={:<7} errors={:<4} rate={:>6.0}/s  p50={:>6} us  p99={:>6} us  p99.9={:>6} us",
        h.total(),
        h.errors.load(Ordering::Relaxed),
        h.total() as f64 / secs as f64,
        h.quantile_us(0.50),
        h.quantile_us(0.99),
        h.quantile_us(0.999),
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let backend = aos_tests::bench::backend();
    let env_u64 = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|v| *v > 0)
            .unwrap_or(default)
    };
    let rate = env_u64("AOS_BENCH_PROXY_RPS", 1000);
    let secs = env_u64("AOS_BENCH_PROXY_SECS", 60);

    // Built next to this binary (`make bench-proxy` builds both).
    let fake_bin = std::env::current_exe().unwrap().with_file_name("aos-fake-llm");
    let mut fake = std::process::Command::new(fake_bin)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start aos-fake-llm");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(fake.stdout.take().unwrap()), &mut line).unwrap();
    let port: u16 = line.trim().strip_prefix("READY ").unwrap().parse().unwrap();
    let upstream = format!("http://127.0.0.1:{port}/v1");

    let proxy = serde_json::from_value(json!({
        "providers": {"fake": {"base_url": upstream}},
        "models": {"gpt-4o-mini": "fake"},
    }))
    .unwrap();
    let app = spawn_opts(
        backend,
        Options {
            proxy,
            ..Options::default()
        },
    )
    .await;
    let tenant = app.create_tenant("bench").await;
    let (_, admin) = app.create_key(&tenant, &["admin"]).await;
    let (_, key) = app.create_key(&tenant, &["proxy:invoke"]).await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(512)
        .build()
        .unwrap();
    println!(
        "bench-proxy: {} backend, {rate} requests/s, {secs} s per phase, AOS workers {}",
        backend.as_str(),
        std::env::var("AOS_TEST_HTTP_WORKERS").unwrap_or_else(|_| "1".into())
    );
    let direct_url = format!("{upstream}/chat/completions");
    let aos_url = app.url("/v1/chat/completions");
    let set_budget = |on: bool| {
        let request = app
            .as_(&admin, reqwest::Method::PUT, "/api/v1/proxy/settings")
            .json(&if on {
                json!({"budget": {"daily_limit_micros": 1_000_000_000_000i64}})
            } else {
                json!({})
            });
        async move { assert!(request.send().await.unwrap().status().is_success()) }
    };
    // Warm both paths (connections, token tables, caches).
    let warm = Arc::new(Histogram::new());
    phase(&warm, &client, &direct_url, None, rate, 2).await;
    phase(&warm, &client, &aos_url, Some(&key), rate, 2).await;

    // Resident memory of this process (AOS, the load generator) every 5 s, all run long.
    let memory = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sampler = {
        let memory = Arc::clone(&memory);
        tokio::spawn(async move {
            let started = Instant::now();
            loop {
                memory.lock().unwrap().push((started.elapsed().as_secs(), rss_kib()));
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        })
    };
    // Interleaved rounds, so drift on the shared machine hits every path alike.
    const ROUNDS: u64 = 5;
    let slice = secs.div_ceil(ROUNDS);
    let (direct, aos, budget) = (
        Arc::new(Histogram::new()),
        Arc::new(Histogram::new()),
        Arc::new(Histogram::new()),
    );
    for _ in 0..ROUNDS {
        phase(&direct, &client, &direct_url, None, rate, slice).await;
        phase(&aos, &client, &aos_url, Some(&key), rate, slice).await;
        set_budget(true).await;
        phase(&budget, &client, &aos_url, Some(&key), rate, slice).await;
        set_budget(false).await;
    }
    sampler.abort();
    let per_path = slice * ROUNDS;
    report("direct", &direct, per_path);
    report("aos", &aos, per_path);
    report("aos + budget", &budget, per_path);
    for (name, h) in [("aos", &aos), ("aos + budget", &budget)] {
        let over = |q: f64| h.quantile_us(q) as i64 - direct.quantile_us(q) as i64;
        println!(
            "overhead {name:<13} p50 {:>+6} us  p99 {:>+6} us  p99.9 {:>+6} us",
            over(0.50),
            over(0.99),
            over(0.999)
        );
    }
    let samples = memory.lock().unwrap().clone();
    let line: Vec<String> = samples
        .iter()
        .step_by((samples.len() / 12).max(1))
        .map(|(t, kib)| format!("{t}s:{}MiB", kib / 1024))
        .collect();
    println!("rss over the run: {}", line.join(" "));
    let stats = app.spine.proxy_writer_stats(&aos_spine::AuthContext::Operator).unwrap();
    println!(
        "call log writer: queued {} written {} dropped {} batches {} retries {}",
        stats.queued, stats.written, stats.dropped, stats.batches, stats.retries
    );
    let _ = fake.kill();
    let _ = fake.wait();
}
