//! The wire as users meet it from outside (issue 16): every route of `/openapi.json`
//! reachable, dates as the spec declares them, clear errors naming the field, JSON-RPC
//! framing errors on `/mcp`, revocation at once, bodies that never arrive, NUL on both
//! backends, tenants that name other tenants, private SQLite files, readable upstream
//! failures. (Every response of every test is also checked against the spec by the test
//! server itself: `support/spec.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::Duration;

use aos_api::ApiConfig;
use aos_tests::mcp_servers::{self, GovServer};
use aos_tests::spec::Spec;
use aos_tests::{
    Backend, OPERATOR_TOKEN, Options, TestApp, call, mcp_tenant, register_server, spawn, spawn_opts, spawn_with,
    spawn_with_mcp, test_mcp,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

aos_tests::for_each_backend!(
    every_route_in_the_spec_reaches_its_handler,
    dates_on_the_wire_are_rfc3339_full_dates,
    bad_bodies_and_parameters_name_what_is_wrong,
    nul_is_refused_alike_on_both_backends,
    mcp_framing_errors_are_json_rpc_errors,
    revocation_bites_at_once_on_the_replica_that_revoked,
    a_body_that_never_arrives_is_cut,
    a_tenant_cannot_name_another_tenant,
    registrations_refuse_private_names_and_duplicate_spellings,
    upstream_failures_are_said_in_words,
    a_missing_credential_is_named_not_blamed_on_the_database,
);

/// A tenant admin key with every scope.
async fn admin_key(app: &TestApp, tenant: &str) -> String {
    app.create_key(tenant, &["admin"]).await.1
}

/// An integration (made with a tenant admin key) and a key for it: (integration id, key
/// id, key).
async fn integration_key(app: &TestApp, admin: &str) -> (String, String, String) {
    let (status, created) = call(
        app,
        admin,
        Method::POST,
        "/api/v1/integrations",
        Some(json!({"name": "prod", "provider": "openai"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let integration = created["data"]["id"].as_str().unwrap();
    let (status, key) = call(
        app,
        admin,
        Method::POST,
        &format!("/api/v1/integrations/{integration}/keys"),
        Some(json!({"can_read": true})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    (
        integration.to_owned(),
        key["data"]["integration_key"]["id"].as_str().unwrap().to_owned(),
        key["data"]["key"].as_str().unwrap().to_owned(),
    )
}

async fn every_route_in_the_spec_reaches_its_handler(backend: Backend) {
    let app = spawn(backend).await;
    let tenant = app.create_tenant("routes").await;
    let admin = admin_key(&app, &tenant).await;
    let spec = Spec::aos();
    assert!(spec.operations().len() > 60, "{}", spec.operations().len());
    for op in spec.operations() {
        let mut path = op.template.clone();
        for name in op.parameters() {
            path = path.replace(&format!("{{{name}}}"), &uuid::Uuid::now_v7().to_string());
        }
        let method = Method::from_bytes(op.method.as_bytes()).unwrap();
        for credential in [OPERATOR_TOKEN, admin.as_str()] {
            let mut request = app.as_(credential, method.clone(), &path);
            if matches!(op.method.as_str(), "POST" | "PUT" | "PATCH") {
                request = request.json(&json!({}));
            }
            let response = request.send().await.unwrap();
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let routed = !(status == StatusCode::METHOD_NOT_ALLOWED
                || (status == StatusCode::NOT_FOUND
                    && body["error"]["message"]
                        .as_str()
                        .is_some_and(|m| m.starts_with("no route"))));
            assert!(
                routed,
                "{} {} never reaches its handler: {status} {body}",
                op.method, op.template
            );
        }
    }
}

async fn dates_on_the_wire_are_rfc3339_full_dates(backend: Backend) {
    let app = spawn(backend).await;
    let tenant = app.create_tenant("dates").await;
    let admin = admin_key(&app, &tenant).await;
    let (_, _, key) = integration_key(&app, &admin).await;
    let response = app
        .client
        .post(app.url("/api/v1/telemetry/llm-usage"))
        .header("x-cus-integration-key", &key)
        .json(
            &json!({"call_id": "d-1", "provider": "openai", "model": "gpt-4o", "input_tokens": 1, "output_tokens": 1}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let is_date = |v: &Value| {
        let s = v.as_str().unwrap_or_default();
        s.len() == 10 && time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")).is_ok()
    };
    let (status, daily) = call(&app, &admin, Method::GET, "/api/v1/telemetry/usage/daily", None).await;
    assert_eq!(status, StatusCode::OK, "{daily}");
    let days = daily["data"].as_array().unwrap();
    assert!(!days.is_empty(), "{daily}");
    for day in days {
        assert!(is_date(&day["date"]), "not a full-date: {day}");
    }
    let (status, summary) = call(&app, &admin, Method::GET, "/api/v1/telemetry/usage/summary", None).await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    assert!(is_date(&summary["data"]["start_date"]), "{summary}");
    assert!(is_date(&summary["data"]["end_date"]), "{summary}");
}

async fn bad_bodies_and_parameters_name_what_is_wrong(backend: Backend) {
    let app = spawn(backend).await;
    let (_, key) = mcp_tenant(&app, "fields").await;
    // An unknown field: 422 naming it.
    let (status, body) = call(
        &app,
        OPERATOR_TOKEN,
        Method::POST,
        "/api/v1/admin/tenants",
        Some(json!({"name": "x", "bogus": 1})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "validation_failed");
    assert_eq!(body["error"]["field"], "bogus", "{body}");
    // A missing one.
    let (status, body) = call(
        &app,
        OPERATOR_TOKEN,
        Method::POST,
        "/api/v1/admin/tenants",
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["field"], "name", "{body}");
    // An unknown enum variant.
    let id = uuid::Uuid::now_v7();
    let (status, body) = call(
        &app,
        &key,
        Method::PUT,
        &format!("/api/v1/integrations/mcp-servers/{id}/tools/{id}/risk"),
        Some(json!({"risk_level": "EXTREME"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["field"], "risk_level", "{body}");
    // A JSON array where an object belongs is not a request.
    let (status, body) = call(
        &app,
        OPERATOR_TOKEN,
        Method::POST,
        "/api/v1/admin/tenants",
        Some(json!([true])),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    // Malformed JSON stays a 400.
    let response = app
        .operator(Method::POST, "/api/v1/admin/tenants")
        .header("content-type", "application/json")
        .body("{\"name\":")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // A path id that is not a UUID: which parameter, and what it must be.
    let (status, body) = call(
        &app,
        &key,
        Method::GET,
        &format!("/api/v1/integrations/mcp-servers/{id}/tools/not-a-uuid"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("`tool_id`") && message.contains("UUID"), "{message}");
    assert!(!message.contains("deserialize"), "{message}");
    assert_eq!(body["error"]["field"], "tool_id");
}

async fn nul_is_refused_alike_on_both_backends(backend: Backend) {
    let app = spawn(backend).await;
    let tenant = app.create_tenant("nul").await;
    let admin = admin_key(&app, &tenant).await;
    // A body: 422 naming the field, nothing stored.
    let (status, body) = call(
        &app,
        &admin,
        Method::POST,
        "/api/v1/approvals",
        Some(json!({"subject_type": "deploy", "subject_id": "x", "reason": "a\u{0}b"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["field"], "reason", "{body}");
    let (status, body) = call(
        &app,
        &admin,
        Method::PUT,
        "/api/v1/proxy/settings",
        Some(json!({"guardrails": {"allowed_models": ["gpt\u{0}"]}})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["field"], "guardrails.allowed_models[0]", "{body}");
    // A query parameter: 400 naming it.
    let (status, body) = call(&app, &admin, Method::GET, "/api/v1/audit/events?event_type=a%00b", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "event_type", "{body}");
    let (status, body) = call(&app, &admin, Method::GET, "/api/v1/proxy/calls?model=a%00b", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // A telemetry batch: the record with NUL is rejected alone, the rest stored.
    let (_, _, key) = integration_key(&app, &admin).await;
    let record = |id: &str, meta: Value| json!({"call_id": id, "provider": "openai", "model": "gpt-4o", "input_tokens": 1, "output_tokens": 1, "metadata": meta});
    let batch = json!({"records": [
        record("ok-1", json!({"team": "a"})),
        record("bad-key", json!({"te\u{0}am": "a"})),
        record("bad-value", json!({"team": "a\u{0}"})),
        record("ok-2", json!({})),
    ]});
    for _ in 0..2 {
        // Twice: a retried batch behaves the same (the good ones are duplicates now).
        let response = app
            .client
            .post(app.url("/api/v1/telemetry/llm-usage/batch"))
            .header("x-cus-integration-key", &key)
            .json(&batch)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let result: Value = response.json().await.unwrap();
        assert_eq!(result["data"]["rejected"], 2, "{result}");
        assert_eq!(
            result["data"]["accepted"].as_u64().unwrap() + result["data"]["duplicates"].as_u64().unwrap(),
            2,
            "{result}"
        );
        let fields: Vec<&str> = result["data"]["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["field"].as_str())
            .collect();
        assert_eq!(fields, vec!["metadata.te\\u0000am", "metadata.team"], "{result}");
    }
}

async fn mcp_framing_errors_are_json_rpc_errors(backend: Backend) {
    let app = spawn(backend).await;
    let (_, key) = mcp_tenant(&app, "framing").await;
    for (body, code) in [
        ("{not json", -32700),
        ("{\"hello\": 1}", -32600),
        ("[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]", -32600),
        ("{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"ping\"}", -32600),
        ("42", -32600),
    ] {
        let response = app
            .as_(&key, Method::POST, "/mcp")
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        let reply: Value = response.json().await.unwrap();
        assert_eq!(reply["jsonrpc"], "2.0", "{reply}");
        assert_eq!(reply["error"]["code"], code, "{body}: {reply}");
        assert!(reply["id"].is_null(), "{reply}");
    }
}

async fn revocation_bites_at_once_on_the_replica_that_revoked(backend: Backend) {
    let app = spawn(backend).await;
    let tenant = app.create_tenant("revoke").await;
    let (key_id, key) = app.create_key(&tenant, &["mcp:read"]).await;
    // Warm the credential cache.
    for _ in 0..3 {
        let (status, _) = call(&app, &key, Method::GET, "/api/v1/session/context", None).await;
        assert_eq!(status, StatusCode::OK);
    }
    // Requests racing the revocation, then every request after its 200.
    let hammer = {
        let (client, url, key) = (app.client.clone(), app.url("/api/v1/session/context"), key.clone());
        tokio::spawn(async move {
            for _ in 0..50 {
                let _ = client.get(&url).bearer_auth(&key).send().await;
            }
        })
    };
    let (status, body) = call(
        &app,
        OPERATOR_TOKEN,
        Method::DELETE,
        &format!("/api/v1/admin/api-keys/{key_id}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for _ in 0..20 {
        let (status, _) = call(&app, &key, Method::GET, "/api/v1/session/context", None).await;
        // 401, or 429 once its failures pass the limiter: never accepted.
        assert!(
            status == StatusCode::UNAUTHORIZED || status == StatusCode::TOO_MANY_REQUESTS,
            "a revoked key was accepted after its revocation returned: {status}"
        );
    }
    hammer.await.unwrap();
    // An integration key likewise.
    let admin = admin_key(&app, &tenant).await;
    let (integration, ik_id, ik) = integration_key(&app, &admin).await;
    let ingest = |n: usize| {
        app.client
            .post(app.url("/api/v1/telemetry/llm-usage"))
            .header("x-cus-integration-key", &ik)
            .json(&json!({"call_id": format!("r-{n}"), "provider": "openai", "model": "gpt-4o", "input_tokens": 1, "output_tokens": 1}))
            .send()
    };
    assert_eq!(ingest(0).await.unwrap().status(), StatusCode::CREATED);
    let (status, body) = call(
        &app,
        &admin,
        Method::DELETE,
        &format!("/api/v1/integrations/{integration}/keys/{ik_id}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for n in 1..=20 {
        let status = ingest(n).await.unwrap().status();
        assert!(
            status == StatusCode::UNAUTHORIZED || status == StatusCode::TOO_MANY_REQUESTS,
            "a revoked integration key stored a record: {status}"
        );
    }
}

async fn a_body_that_never_arrives_is_cut(backend: Backend) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_with(
        backend,
        ApiConfig {
            body_read_timeout_ms: 300,
            ..ApiConfig::default()
        },
    )
    .await;
    let address = app.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /api/v1/admin/tenants HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {OPERATOR_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"na"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    let mut reply = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    reply.extend_from_slice(&buf[..n]);
                    if reply.windows(4).any(|w| w == b"\r\n\r\n") && reply.ends_with(b"}") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the connection was held past 10 s");
    let text = String::from_utf8_lossy(&reply);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("request_timeout"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

async fn a_tenant_cannot_name_another_tenant(backend: Backend) {
    let app = spawn(backend).await;
    let mine = app.create_tenant("mine").await;
    let theirs = app.create_tenant("theirs").await;
    let admin = admin_key(&app, &mine).await;
    for path in ["/api/v1/proxy/settings", "/api/v1/killswitch", "/api/v1/proxy/calls"] {
        let (status, body) = call(&app, &admin, Method::GET, &format!("{path}?tenant_id={theirs}"), None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
        assert_eq!(body["error"]["field"], "tenant_id", "{body}");
        let (status, body) = call(&app, &admin, Method::GET, &format!("{path}?tenant_id={mine}"), None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
}

async fn registrations_refuse_private_names_and_duplicate_spellings(backend: Backend) {
    // The tests' default allowlists loopback; a production-like policy does not.
    let mut mcp = test_mcp();
    mcp.outbound.allow_hosts = vec!["127.0.0.1".into()];
    let app = spawn_with_mcp(backend, mcp).await;
    let (_, key) = mcp_tenant(&app, "registry").await;
    const SERVERS: &str = "/api/v1/integrations/mcp-servers";
    let (status, body) = call(
        &app,
        &key,
        Method::POST,
        SERVERS,
        Some(json!({"name": "sneaky", "url": "https://localhost:9/mcp", "discover": false})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["field"], "url", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("private"), "{body}");
    // One server, two spellings: the second is the same registration.
    let (status, body) = call(
        &app,
        &key,
        Method::POST,
        SERVERS,
        Some(json!({"name": "one", "url": "http://127.0.0.1:9/mcp/", "discover": false})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["data"]["server"]["url"], "http://127.0.0.1:9/mcp", "{body}");
    let (status, body) = call(
        &app,
        &key,
        Method::POST,
        SERVERS,
        Some(json!({"name": "two", "url": "http://127.0.0.1:9/mcp", "discover": false})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
}

async fn upstream_failures_are_said_in_words(backend: Backend) {
    let app = spawn(backend).await;
    let (_, key) = mcp_tenant(&app, "words").await;
    // Nothing listens on port 9.
    let (status, body) = call(
        &app,
        &key,
        Method::POST,
        "/api/v1/integrations/mcp-servers",
        Some(json!({"name": "down", "url": "http://127.0.0.1:9/mcp", "discover": false})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let server = body["data"]["server"]["id"].as_str().unwrap().to_owned();
    for path in [
        format!("/api/v1/integrations/mcp-servers/{server}/discover"),
        format!("/api/v1/mcp/servers/{server}/health"),
    ] {
        let (_, body) = call(&app, &key, Method::POST, &path, None).await;
        let text = body.to_string();
        assert!(text.contains("connection refused"), "{path}: {text}");
        for dump in [
            "rmcp::",
            "Transport [",
            "reqwest",
            "error sending request",
            "WorkerTransport",
        ] {
            assert!(!text.contains(dump), "{path} says {dump}: {text}");
        }
    }
}

async fn a_missing_credential_is_named_not_blamed_on_the_database(backend: Backend) {
    let app = spawn(backend).await;
    let (_, key) = mcp_tenant(&app, "creds").await;
    let gov = GovServer::default();
    let upstream = mcp_servers::streamable_http(gov, None).await;
    let (status, body) = call(
        &app,
        &key,
        Method::POST,
        "/api/v1/integrations/mcp-servers",
        Some(json!({"name": "needs-a-token", "url": upstream.url, "credential_ref": "env://AOS_TEST_SURELY_UNSET", "discover": false})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let server = body["data"]["server"]["id"].as_str().unwrap();
    let (status, body) = call(
        &app,
        &key,
        Method::POST,
        &format!("/api/v1/integrations/mcp-servers/{server}/discover"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("credential"), "{message}");
    assert!(!message.contains("database"), "{message}");
}

/// The SQLite database and its WAL are the owner's alone (they hold key hashes, audit
/// chains and call logs). SQLite only: PostgreSQL keeps its own files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_the_database_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let app = spawn(Backend::Sqlite).await;
    let (status, _) = call(
        &app,
        OPERATOR_TOKEN,
        Method::POST,
        "/api/v1/admin/tenants",
        Some(json!({"name": "x"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let url = app.database_url();
    let path = url.trim_start_matches("sqlite://").to_owned();
    for file in [path.clone(), format!("{path}-wal"), format!("{path}-shm")] {
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file} is {mode:o}");
    }
}

/// A governed call whose outcome cannot be written because PostgreSQL went away under it
/// (the open connections ended, as in a restart): the caller gets 503, not 500, and once
/// the database is back the reaper completes the invocation (FAILURE `OUTCOME_UNKNOWN`,
/// an audit event, an incident), so nothing stays RUNNING past its timeout.
/// PostgreSQL only: SQLite has no server to lose.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_call_stranded_by_a_database_restart_is_completed() {
    let mut mcp = test_mcp();
    mcp.stranded_grace_ms = 300;
    let app = spawn_opts(
        Backend::Postgres,
        Options {
            mcp,
            ..Options::default()
        },
    )
    .await;
    let (_, key) = mcp_tenant(&app, "restart").await;
    let gov = GovServer::default();
    let upstream = mcp_servers::streamable_http(gov.clone(), None).await;
    let (server, tools) = register_server(&app, &key, "gov", &upstream.url, json!({"call_timeout_ms": 3000})).await;
    let path = format!(
        "/api/v1/integrations/mcp-servers/{server}/tools/{}/invoke",
        tools["nap"]
    );
    let request = app
        .as_(&key, Method::POST, &path)
        .json(&json!({"input": {"ms": 1500}}))
        .send();
    let pending = tokio::spawn(request);
    tokio::time::sleep(Duration::from_millis(600)).await;
    app.set_database_reachable(false).await;
    let response = pending.await.unwrap().unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "service_unavailable", "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("database"),
        "{body}"
    );
    assert_eq!(gov.calls_of("nap"), 1);
    app.set_database_reachable(true).await;

    let invocations = format!("/api/v1/integrations/mcp-servers/{server}/invocations");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let row = loop {
        let (status, listed) = call(&app, &key, Method::GET, &invocations, None).await;
        if status == StatusCode::OK
            && let Some(row) = listed["data"].as_array().and_then(|rows| rows.first())
            && row["status"] != "RUNNING"
        {
            break row.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the invocation stayed RUNNING: {listed}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(row["status"], "FAILURE", "{row}");
    assert_eq!(row["error_code"], "OUTCOME_UNKNOWN", "{row}");
    assert!(row["incident_id"].is_string(), "{row}");
    let (_, events) = call(&app, &key, Method::GET, "/api/v1/audit/events?limit=500", None).await;
    let id = row["id"].as_str().unwrap();
    let types: Vec<&str> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["details"]["invocation_id"] == id)
        .filter_map(|e| e["event_type"].as_str())
        .collect();
    assert_eq!(
        types,
        [
            "TOOL_INVOCATION_REQUESTED",
            "TOOL_INVOCATION_ALLOWED",
            "TOOL_INVOCATION_STARTED",
            "TOOL_INVOCATION_FAILED",
            "INCIDENT_OPENED"
        ]
    );
    let (_, verified) = call(&app, &key, Method::GET, "/api/v1/audit/verify", None).await;
    assert_eq!(verified["data"]["valid"], true, "{verified}");
}
