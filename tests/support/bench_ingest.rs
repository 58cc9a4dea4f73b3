//! `make bench-ingest`: telemetry batch ingestion through the HTTP API into PostgreSQL,
//! in records per second, beside what PostgreSQL itself does with the same rows in the
//! same run (`COPY` into a table of the same shape and indexes). Then the latency of the
//! summary and daily reads with everything stored.
//!
//! `AOS_BENCH_RECORDS` (default 1,000,000) records in batches of 1,000, sent by 4
//! concurrent clients.

// A benchmark binary: setup failures abort it.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::indexing_slicing)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use aos_tests::{Backend, spawn_with_telemetry};
use futures::SinkExt;
use serde_json::{Value, json};

const BATCH: usize = 1_000;
const CLIENTS: usize = 4;

fn batch_json(offset: usize, base: time::OffsetDateTime) -> Value {
    let models = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4", "llm-x"];
    let records: Vec<Value> = (offset..offset + BATCH)
        .map(|i| {
            let at = base - time::Duration::minutes((i % (60 * 24 * 28)) as i64);
            json!({
                "call_id": format!("call-{i}"),
                "provider": "openai",
                "model": models[i % models.len()],
                "input_tokens": 500 + (i % 1000),
                "output_tokens": 50 + (i % 300),
                "latency_ms": 100 + (i % 5000),
                "occurred_at": at.format(&time::format_description::well_known::Rfc3339).unwrap(),
            })
        })
        .collect();
    json!({ "records": records })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let total: usize = std::env::var("AOS_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let total = total.div_ceil(BATCH) * BATCH;
    let app = Arc::new(spawn_with_telemetry(Backend::Postgres, aos_spine::TelemetrySettings::default()).await);
    let tenant = app.create_tenant("bench").await;
    let (_, admin) = app.create_key(&tenant, &["admin"]).await;
    let created: Value = app
        .as_(&admin, reqwest::Method::POST, "/api/v1/integrations")
        .json(&json!({"name": "bench", "provider": "openai"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let integration = created["data"]["id"].as_str().unwrap().to_owned();
    let issued: Value = app
        .as_(
            &admin,
            reqwest::Method::POST,
            &format!("/api/v1/integrations/{integration}/keys"),
        )
        .json(&json!({"can_read": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = issued["data"]["key"].as_str().unwrap().to_owned();
    let base = time::OffsetDateTime::now_utc();

    // Bodies are built before the clock starts: we time AOS, not the client's JSON.
    let bodies: Vec<Vec<u8>> = (0..total / BATCH)
        .map(|b| serde_json::to_vec(&batch_json(b * BATCH, base)).unwrap())
        .collect();
    let bodies = Arc::new(bodies);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let (app, key, bodies, next) = (Arc::clone(&app), key.clone(), Arc::clone(&bodies), Arc::clone(&next));
        clients.push(tokio::spawn(async move {
            let client = reqwest::Client::builder().no_proxy().build().unwrap();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(body) = bodies.get(i) else { return };
                let response = client
                    .post(app.url("/api/v1/telemetry/llm-usage/batch"))
                    .header("x-cus-integration-key", &key)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                assert!(response.status().is_success(), "{}", response.text().await.unwrap());
            }
        }));
    }
    for c in clients {
        c.await.unwrap();
    }
    let api = started.elapsed();

    // The database's own limit: COPY the same rows into a table shaped like the real one.
    let admin_url = app.database_url();
    let (pg, connection) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    pg.batch_execute("CREATE TABLE bench_copy (LIKE llm_usage_records INCLUDING ALL)")
        .await
        .unwrap();
    let tenant_id = tenant.clone();
    let started = Instant::now();
    {
        let sink = pg
            .copy_in("COPY bench_copy (id, tenant_id, integration_id, call_id, provider, model, input_tokens, output_tokens, cached_tokens, cost_micros, cost_source, latency_ms, status, occurred_at, received_at, metadata) FROM STDIN")
            .await
            .unwrap();
        futures::pin_mut!(sink);
        let mut chunk = String::with_capacity(1 << 20);
        for i in 0..total {
            let at = base - time::Duration::minutes((i % (60 * 24 * 28)) as i64);
            chunk.push_str(&format!(
                "{}\t{tenant_id}\t{integration}\tcall-{i}\topenai\tgpt-4o\t{}\t{}\t0\t3500\tcomputed\t{}\tsuccess\t{}\t{}\t{{}}\n",
                uuid::Uuid::now_v7(),
                500 + (i % 1000),
                50 + (i % 300),
                100 + (i % 5000),
                at.format(&time::format_description::well_known::Rfc3339).unwrap(),
                base.format(&time::format_description::well_known::Rfc3339).unwrap(),
            ));
            if chunk.len() > (1 << 20) {
                sink.send(bytes::Bytes::from(std::mem::take(&mut chunk))).await.unwrap();
            }
        }
        sink.send(bytes::Bytes::from(chunk)).await.unwrap();
        sink.finish().await.unwrap();
    }
    let copy = started.elapsed();

    // Reads with everything stored.
    let time_read = |path: String| {
        let app = Arc::clone(&app);
        let key = key.clone();
        async move {
            let client = reqwest::Client::builder().no_proxy().build().unwrap();
            let mut samples = Vec::new();
            for _ in 0..50 {
                let started = Instant::now();
                let response = client
                    .get(app.url(&path))
                    .header("x-cus-integration-key", &key)
                    .send()
                    .await
                    .unwrap();
                assert!(response.status().is_success());
                let _ = response.bytes().await.unwrap();
                samples.push(started.elapsed());
            }
            samples.sort();
            (samples[samples.len() / 2], samples[samples.len() * 99 / 100])
        }
    };
    let (summary_p50, summary_p99) = time_read("/api/v1/telemetry/usage/summary".into()).await;
    let (daily_p50, daily_p99) = time_read("/api/v1/telemetry/usage/daily".into()).await;

    let rate = |d: Duration| total as f64 / d.as_secs_f64();
    println!("records: {total} (batches of {BATCH}, {CLIENTS} clients), PostgreSQL");
    println!(
        "{:<34} {:>10.1} s {:>12.0} rec/s",
        "API batch ingestion",
        api.as_secs_f64(),
        rate(api)
    );
    println!(
        "{:<34} {:>10.1} s {:>12.0} rec/s",
        "COPY of the same rows (baseline)",
        copy.as_secs_f64(),
        rate(copy)
    );
    println!("{:<34} {:>12.2}", "API / COPY throughput", rate(api) / rate(copy));
    println!(
        "{:<34} p50 {:>7.1} ms  p99 {:>7.1} ms",
        "summary read",
        summary_p50.as_secs_f64() * 1e3,
        summary_p99.as_secs_f64() * 1e3
    );
    println!(
        "{:<34} p50 {:>7.1} ms  p99 {:>7.1} ms",
        "daily read (30 days)",
        daily_p50.as_secs_f64() * 1e3,
        daily_p99.as_secs_f64() * 1e3
    );
}
