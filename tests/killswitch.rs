//! The kill switch end to end, on both backends: freezing a key or a tenant refuses its
//! governed tool calls (REST and `/mcp`) before anything goes upstream, on every replica
//! within a second; state, history, conflicts and tenant isolation.

// Integration tests: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::{Duration, Instant};

use aos_tests::mcp_servers::{self, GovServer};
use aos_tests::{Backend, Options, TestApp, call, register_server, spawn_opts, spawn_replicas};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const SERVERS: &str = "/api/v1/integrations/mcp-servers";

aos_tests::for_each_backend!(
    a_frozen_key_or_tenant_is_refused_before_anything_goes_upstream,
    replicas_follow_within_a_second_and_tenants_stay_apart,
);

struct Setup {
    tenant: String,
    ops_id: String,
    ops: String,
    agent_id: String,
    agent: String,
    server: String,
    echo: String,
}

/// A tenant with an admin key (`ops`) and an agent key, and a registered GovServer.
async fn setup(app: &TestApp, name: &str, upstream: &str) -> Setup {
    let tenant = app.create_tenant(name).await;
    let (ops_id, ops) = app.create_key(&tenant, &["admin"]).await;
    let (agent_id, agent) = app.create_key(&tenant, &["mcp:invoke", "mcp:read"]).await;
    let (server, tools) = register_server(app, &ops, "gov", upstream, json!({})).await;
    let echo = tools["echo"].clone();
    Setup {
        tenant,
        ops_id,
        ops,
        agent_id,
        agent,
        server,
        echo,
    }
}

async fn invoke(app: &TestApp, s: &Setup, key: &str) -> (StatusCode, Value) {
    call(
        app,
        key,
        Method::POST,
        &format!("{SERVERS}/{}/tools/{}/invoke", s.server, s.echo),
        Some(json!({"input": {"text": "hi"}})),
    )
    .await
}

async fn mcp_call(app: &TestApp, key: &str) -> Value {
    let response = app
        .as_(key, Method::POST, "/mcp")
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                      "params": {"name": "gov.echo", "arguments": {"text": "hi"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn invocation_count(app: &TestApp, s: &Setup) -> usize {
    let (_, body) = call(
        app,
        &s.ops,
        Method::GET,
        &format!("{SERVERS}/{}/invocations?limit=100", s.server),
        None,
    )
    .await;
    body["data"].as_array().unwrap().len()
}

async fn a_frozen_key_or_tenant_is_refused_before_anything_goes_upstream(backend: Backend) {
    let app = spawn_opts(backend, Options::default()).await;
    let gov = GovServer::default();
    let upstream = mcp_servers::streamable_http(gov.clone(), None).await;
    let s = setup(&app, "acme", &upstream.url).await;
    assert_eq!(invoke(&app, &s, &s.agent).await.0, StatusCode::OK);
    assert_eq!(gov.calls_of("echo"), 1);

    // The admin freezes the agent's key, with a reason.
    let (status, body) = call(
        &app,
        &s.ops,
        Method::POST,
        &format!("/api/v1/killswitch/keys/{}/freeze", s.agent_id),
        Some(json!({"reason": "runaway loop"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["frozen"], true);
    assert_eq!(body["data"]["entity_type"], "key");
    let before = invocation_count(&app, &s).await;
    let (status, body) = invoke(&app, &s, &s.agent).await;
    assert_eq!(status, StatusCode::LOCKED, "{body}");
    assert_eq!(body["error"]["code"], "kill_switch_active");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("runaway loop"),
        "{body}"
    );
    let refused = mcp_call(&app, &s.agent).await;
    assert_eq!(refused["result"]["isError"], true, "{refused}");
    assert!(
        refused["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("kill switch active")
    );
    // Nothing went upstream and nothing was recorded as a call.
    assert_eq!(gov.calls_of("echo"), 1);
    assert_eq!(invocation_count(&app, &s).await, before);
    // Other keys of the tenant are unaffected.
    assert_eq!(invoke(&app, &s, &s.ops).await.0, StatusCode::OK);

    // Freezing twice is a conflict; the state and history show the freeze.
    let (status, _) = call(
        &app,
        &s.ops,
        Method::POST,
        &format!("/api/v1/killswitch/keys/{}/freeze", s.agent_id),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, overview) = call(&app, &s.ops, Method::GET, "/api/v1/killswitch", None).await;
    assert_eq!(status, StatusCode::OK, "{overview}");
    assert_eq!(overview["data"]["tenant_frozen"], false);
    assert_eq!(overview["data"]["frozen_keys"], json!([s.agent_id]));
    assert_eq!(overview["data"]["history"][0]["event_type"], "KILLSWITCH_FROZEN");
    assert_eq!(overview["data"]["history"][0]["details"]["reason"], "runaway loop");

    // Unfrozen: calls go through again.
    let (status, _) = call(
        &app,
        &s.ops,
        Method::POST,
        &format!("/api/v1/killswitch/keys/{}/unfreeze", s.agent_id),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(invoke(&app, &s, &s.agent).await.0, StatusCode::OK);
    let (status, _) = call(
        &app,
        &s.ops,
        Method::POST,
        &format!("/api/v1/killswitch/keys/{}/unfreeze", s.agent_id),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "unfreezing what is not frozen");

    // The operator freezes the whole tenant: every key is refused, and the tenant's admin
    // can still see the state and unfreeze.
    let (status, body) = app
        .operator(Method::POST, &format!("/api/v1/killswitch/tenants/{}/freeze", s.tenant))
        .json(&json!({"reason": "unpaid invoice"}))
        .send()
        .await
        .map(|r| (r.status(), r))
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{:?}", body.text().await);
    for key in [&s.agent, &s.ops] {
        let (status, body) = invoke(&app, &s, key).await;
        assert_eq!(status, StatusCode::LOCKED, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("this tenant is frozen: unpaid invoice")
        );
    }
    let (_, overview) = call(&app, &s.ops, Method::GET, "/api/v1/killswitch", None).await;
    assert_eq!(overview["data"]["tenant_frozen"], true);
    let founder_view: Value = app
        .operator(Method::GET, &format!("/api/v1/killswitch?tenant_id={}", s.tenant))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(founder_view["data"]["tenant_frozen"], true);
    // The operator's freeze is the operator's to lift.
    let (status, body) = call(
        &app,
        &s.ops,
        Method::POST,
        &format!("/api/v1/killswitch/tenants/{}/unfreeze", s.tenant),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let status = app
        .operator(
            Method::POST,
            &format!("/api/v1/killswitch/tenants/{}/unfreeze", s.tenant),
        )
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(invoke(&app, &s, &s.agent).await.0, StatusCode::OK);

    // A frozen admin key cannot free itself; another admin can.
    let ops_id = s.ops_id.clone();
    let (status, _) = call(
        &app,
        &s.ops,
        Method::POST,
        &format!("/api/v1/killswitch/keys/{ops_id}/freeze"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = call(
        &app,
        &s.ops,
        Method::POST,
        &format!("/api/v1/killswitch/keys/{ops_id}/unfreeze"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (_, other_admin) = app.create_key(&s.tenant, &["admin"]).await;
    let (status, _) = call(
        &app,
        &other_admin,
        Method::POST,
        &format!("/api/v1/killswitch/keys/{ops_id}/unfreeze"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // A malformed body is refused, not read as "no reason".
    let response = app
        .as_(
            &s.ops,
            Method::POST,
            &format!("/api/v1/killswitch/keys/{}/freeze", s.agent_id),
        )
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let (status, body) = call(
        &app,
        &s.ops,
        Method::POST,
        &format!("/api/v1/killswitch/keys/{}/freeze", s.agent_id),
        Some(json!({"reason": "x", "extra": 1})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "unknown fields are refused");
    assert_eq!(body["error"]["code"], "validation_failed", "{body}");
    assert_eq!(body["error"]["field"], "extra", "{body}");
    assert_eq!(gov.calls_of("echo"), 4);

    // A key without `admin` may read the state but not change it; a bad reason is a 422.
    let (status, _) = call(&app, &s.agent, Method::GET, "/api/v1/killswitch", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(
        &app,
        &s.agent,
        Method::POST,
        &format!("/api/v1/killswitch/keys/{}/freeze", s.agent_id),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = call(
        &app,
        &s.ops,
        Method::POST,
        &format!("/api/v1/killswitch/keys/{}/freeze", s.agent_id),
        Some(json!({"reason": "x".repeat(501)})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

async fn replicas_follow_within_a_second_and_tenants_stay_apart(backend: Backend) {
    let replicas = spawn_replicas(backend, 2).await;
    let (a, b) = (&replicas[0], &replicas[1]);
    let gov = GovServer::default();
    let upstream = mcp_servers::streamable_http(gov.clone(), None).await;
    let s = setup(a, "acme", &upstream.url).await;
    let other = setup(a, "other", &upstream.url).await;
    assert_eq!(invoke(b, &s, &s.agent).await.0, StatusCode::OK);

    // Frozen through A; B refuses within a second.
    let (status, _) = call(
        a,
        &s.ops,
        Method::POST,
        &format!("/api/v1/killswitch/keys/{}/freeze", s.agent_id),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let started = Instant::now();
    loop {
        let (status, _) = invoke(b, &s, &s.agent).await;
        if status == StatusCode::LOCKED {
            break;
        }
        assert_eq!(status, StatusCode::OK);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "replica B still served after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Unfrozen through B; A serves again within a second.
    let (status, _) = call(
        b,
        &s.ops,
        Method::POST,
        &format!("/api/v1/killswitch/keys/{}/unfreeze", s.agent_id),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let started = Instant::now();
    while invoke(a, &s, &s.agent).await.0 != StatusCode::OK {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "replica A still refused after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Another tenant's admin can neither freeze nor see acme's key or tenant.
    for path in [
        format!("/api/v1/killswitch/keys/{}/freeze", s.agent_id),
        format!("/api/v1/killswitch/tenants/{}/freeze", s.tenant),
    ] {
        let (status, body) = call(a, &other.ops, Method::POST, &path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
    }
    let (status, overview) = call(
        a,
        &other.ops,
        Method::GET,
        &format!("/api/v1/killswitch?tenant_id={}", s.tenant),
        None,
    )
    .await;
    // Naming another tenant is refused, not silently answered with one's own.
    assert_eq!(status, StatusCode::FORBIDDEN, "{overview}");
    let (_, overview) = call(a, &other.ops, Method::GET, "/api/v1/killswitch", None).await;
    assert_eq!(
        overview["data"]["tenant_id"],
        other.tenant.as_str(),
        "a tenant sees its own state only"
    );
    assert_eq!(invoke(a, &s, &s.agent).await.0, StatusCode::OK);
    // The operator must name a tenant; an unknown one is a 404.
    let status = a
        .operator(Method::GET, "/api/v1/killswitch")
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let status = a
        .operator(
            Method::POST,
            &format!("/api/v1/killswitch/tenants/{}/freeze", uuid::Uuid::now_v7()),
        )
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::NOT_FOUND);
}
