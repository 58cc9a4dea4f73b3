//! `make bench-gateway`: a `tools/call` through AOS's own MCP endpoint (`/mcp`) against
//! calling the same MCP server directly, in one run (the machine is shared and noisy).
//!
//! An rmcp server (the tests' `GovServer`, tool `echo`) on loopback Streamable HTTP:
//! - direct: an rmcp client with one open session calls `echo`;
//! - gateway: an rmcp client connected to AOS `/mcp` (stateless Streamable HTTP, an API
//!   key) calls `bench.echo`: authentication, the catalog lookup with its policy `hide`
//!   check, then the whole governed invocation (schema, policy, audit chain, record, the
//!   call upstream, the outcome);
//! - agent: the gateway path with an agent's key (capability `bench.*`): the same call
//!   plus resolving the agent's capabilities, which must not add to it;
//! - rest: the same governed invocation through `POST .../invoke`, for reference.
//!
//! All at a fixed concurrency (4; `AOS_BENCH_CONCURRENCY` overrides), phases interleaved;
//! prints p50 / p99 of each and what the gateway adds. SQLite by default, `--postgres`
//! for PostgreSQL.

// A benchmark binary: setup failures abort it.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::indexing_slicing)]

use std::sync::Arc;

use aos_tests::bench::{concurrency, quantile, run};
use aos_tests::mcp_servers::{self, GovServer};
use aos_tests::{Options, spawn_opts};
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
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
    let gateway_client = Arc::new(
        ClientConfig::new(ClientCapabilities::default(), Implementation::new("bench", "1"))
            .with_protocol_version(rmcp::model::ProtocolVersion::V_2025_06_18)
            .serve(StreamableHttpClientTransport::from_config(
                StreamableHttpClientTransportConfig::with_uri(app.url("/mcp")).auth_header(key.clone()),
            ))
            .await
            .unwrap(),
    );
    let agent_key = {
        let (status, agent) = aos_tests::call(
            &app,
            &key,
            reqwest::Method::POST,
            "/api/v1/agents",
            Some(json!({"name": "bench-agent", "capabilities": [{"tool": "bench.*"}]})),
        )
        .await;
        assert_eq!(status, reqwest::StatusCode::CREATED, "{agent}");
        let id = agent["data"]["id"].as_str().unwrap().to_owned();
        let (status, created) = aos_tests::call(
            &app,
            &key,
            reqwest::Method::POST,
            &format!("/api/v1/agents/{id}/api-keys"),
            Some(json!({"name": "bench"})),
        )
        .await;
        assert_eq!(status, reqwest::StatusCode::CREATED, "{created}");
        created["data"]["key"].as_str().unwrap().to_owned()
    };
    let agent_client = Arc::new(
        ClientConfig::new(ClientCapabilities::default(), Implementation::new("bench", "1"))
            .with_protocol_version(rmcp::model::ProtocolVersion::V_2025_06_18)
            .serve(StreamableHttpClientTransport::from_config(
                StreamableHttpClientTransportConfig::with_uri(app.url("/mcp")).auth_header(agent_key),
            ))
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
    let gateway = {
        let (client, args) = (Arc::clone(&gateway_client), args.clone());
        move || {
            let (client, args) = (Arc::clone(&client), args.clone());
            async move {
                let result = client
                    .call_tool(CallToolRequestParams::new("bench.echo").with_arguments(args))
                    .await
                    .unwrap();
                assert_ne!(result.is_error, Some(true), "{result:?}");
            }
        }
    };
    let as_agent = {
        let (client, args) = (Arc::clone(&agent_client), args.clone());
        move || {
            let (client, args) = (Arc::clone(&client), args.clone());
            async move {
                let result = client
                    .call_tool(CallToolRequestParams::new("bench.echo").with_arguments(args))
                    .await
                    .unwrap();
                assert_ne!(result.is_error, Some(true), "{result:?}");
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
    run(gateway.clone()).await;
    run(as_agent.clone()).await;
    run(governed.clone()).await;
    let (mut d, mut m, mut a, mut g) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..PHASES {
        d.extend(run(direct.clone()).await);
        m.extend(run(gateway.clone()).await);
        a.extend(run(as_agent.clone()).await);
        g.extend(run(governed.clone()).await);
    }
    d.sort();
    m.sort();
    a.sort();
    g.sort();
    println!(
        "backend: {}, {} calls per path at concurrency {}, {PHASES} interleaved phases",
        backend.as_str(),
        d.len(),
        concurrency()
    );
    println!("{:<34} {:>10} {:>10}", "path", "p50 ms", "p99 ms");
    for (name, samples) in [
        ("direct (rmcp client, one session)", &d),
        ("gateway (rmcp client -> AOS /mcp)", &m),
        ("gateway as an agent (agent key)", &a),
        ("rest (POST .../invoke)", &g),
    ] {
        println!(
            "{name:<34} {:>10.3} {:>10.3}",
            quantile(samples, 0.5).as_secs_f64() * 1e3,
            quantile(samples, 0.99).as_secs_f64() * 1e3
        );
    }
    println!(
        "{:<34} {:>10.3} {:>10.3}",
        "added by the gateway",
        (quantile(&m, 0.5).as_secs_f64() - quantile(&d, 0.5).as_secs_f64()) * 1e3,
        (quantile(&m, 0.99).as_secs_f64() - quantile(&d, 0.99).as_secs_f64()) * 1e3
    );
    println!(
        "{:<34} {:>10.2} {:>10.2}",
        "gateway / direct (ratio)",
        quantile(&m, 0.5).as_secs_f64() / quantile(&d, 0.5).as_secs_f64(),
        quantile(&m, 0.99).as_secs_f64() / quantile(&d, 0.99).as_secs_f64()
    );
    println!(
        "{:<34} {:>10.2} {:>10.2}",
        "agent / tenant key (ratio)",
        quantile(&a, 0.5).as_secs_f64() / quantile(&m, 0.5).as_secs_f64(),
        quantile(&a, 0.99).as_secs_f64() / quantile(&m, 0.99).as_secs_f64()
    );
}
