//! `make bench-invoke`: what governance adds to a tool call, against calling the same MCP
//! server directly, in one run (the machine is shared and noisy).
//!
//! An rmcp server (the tests' `GovServer`, tool `echo`) on loopback Streamable HTTP:
//! - direct: an rmcp client with one open session calls `echo`;
//! - governed: `POST .../tools/{id}/invoke` through AOS (auth, schema validation, Rego
//!   policy, audit chain, invocation record, the call upstream, the outcome).
//!
//! Both at a fixed concurrency (4; `AOS_BENCH_CONCURRENCY` overrides), phases interleaved; prints p50 / p99 of each and the
//! difference. SQLite by default, `--postgres` for PostgreSQL.

// A benchmark binary: setup failures abort it.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::indexing_slicing)]

use std::sync::Arc;

use aos_tests::bench::{concurrency, quantile, run};
use aos_tests::mcp_servers::{self, GovServer};
use aos_tests::{Options, spawn_opts};
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation};
use rmcp::transport::StreamableHttpClientTransport;
use serde_json::json;

const PHASES: usize = 3;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let backend = aos_tests::bench::backend();
    let app = Arc::new(spawn_opts(backend, Options::default()).await);
    let upstream = mcp_servers::streamable_http(GovServer::default(), None).await;
    let (_, key) = aos_tests::mcp_tenant(&app, "bench").await;
    let (server, tools) = aos_tests::register_server(&app, &key, "bench", &upstream.url, json!({})).await;
    let echo = tools["echo"].clone();
    let invoke_url = app.url(&format!(
        "/api/v1/integrations/mcp-servers/{server}/tools/{echo}/invoke"
    ));

    let client = Arc::new(
        ClientConfig::new(ClientCapabilities::default(), Implementation::new("bench", "1"))
            .serve(StreamableHttpClientTransport::from_uri(upstream.url.clone()))
            .await
            .unwrap(),
    );
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let args = json!({"text": "hello"}).as_object().cloned().unwrap();

    let direct = {
        let (client, args) = (Arc::clone(&client), args.clone());
        move || {
            let (client, args) = (Arc::clone(&client), args.clone());
            async move {
                let result = client
                    .call_tool(CallToolRequestParams::new("echo").with_arguments(args))
                    .await
                    .unwrap();
                assert_ne!(result.is_error, Some(true));
            }
        }
    };
    let governed = {
        let (http, url, key) = (http.clone(), invoke_url.clone(), key.clone());
        move || {
            let (http, url, key) = (http.clone(), url.clone(), key.clone());
            async move {
                let response = http
                    .post(&url)
                    .bearer_auth(&key)
                    .json(&json!({"input": {"text": "hello"}}))
                    .send()
                    .await
                    .unwrap();
                let body: serde_json::Value = response.json().await.unwrap();
                assert_eq!(body["data"]["status"], "SUCCESS", "{body}");
            }
        }
    };
    // Warm-up.
    run(direct.clone()).await;
    run(governed.clone()).await;
    let (mut d, mut g) = (Vec::new(), Vec::new());
    for _ in 0..PHASES {
        d.extend(run(direct.clone()).await);
        g.extend(run(governed.clone()).await);
    }
    d.sort();
    g.sort();
    println!(
        "backend: {}, {} calls per path at concurrency {}, {PHASES} interleaved phases",
        backend.as_str(),
        d.len(),
        concurrency()
    );
    println!("{:<34} {:>10} {:>10}", "path", "p50 ms", "p99 ms");
    for (name, samples) in [("direct (rmcp client, one session)", &d), ("governed (AOS invoke)", &g)] {
        println!(
            "{name:<34} {:>10.3} {:>10.3}",
            quantile(samples, 0.5).as_secs_f64() * 1e3,
            quantile(samples, 0.99).as_secs_f64() * 1e3
        );
    }
    println!(
        "{:<34} {:>10.3} {:>10.3}",
        "added by governance",
        (quantile(&g, 0.5).as_secs_f64() - quantile(&d, 0.5).as_secs_f64()) * 1e3,
        (quantile(&g, 0.99).as_secs_f64() - quantile(&d, 0.99).as_secs_f64()) * 1e3
    );
}
