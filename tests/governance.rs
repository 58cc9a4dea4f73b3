//! Governed tool invocation end to end, on both backends, against a real rmcp server over
//! loopback: policy (embedded Rego and a remote OPA-compatible server), approvals,
//! the audit chain, incidents, pinning and signed manifests.

// Integration tests: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::Duration;

use aos_spine::{ApprovalSettings, PolicySettings};
use aos_tests::mcp_servers::{self, GovServer};
use aos_tests::{Backend, Options, TestApp, call, mcp_tenant, register_server, spawn_opts};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const SERVERS: &str = "/api/v1/integrations/mcp-servers";

aos_tests::for_each_backend!(
    a_low_tool_runs_and_is_recorded_with_hashes,
    a_critical_tool_waits_for_approval_and_runs_exactly_once,
    denied_calls_are_blocked_and_recorded_and_policies_only_tighten,
    failures_timeouts_and_dead_upstreams_open_incidents,
    a_changed_definition_quarantines_the_tool_until_reapproved,
    the_audit_chain_verifies_and_detects_tampering,
    approvals_expire_and_block_their_calls,
    the_remote_opa_path_decides_and_fails_closed,
    tenants_cannot_reach_each_others_governance,
    a_servers_call_cap_blocks_the_excess_before_it_reaches_the_server,
);

struct Tenant {
    id: String,
    key: String,
}

async fn tenant(app: &TestApp, name: &str) -> Tenant {
    let (id, key) = mcp_tenant(app, name).await;
    Tenant { id, key }
}

/// Registers a GovServer (discovering its tools); returns (server id, tool ids by name).
async fn register(
    app: &TestApp,
    t: &Tenant,
    url: &str,
    extra: Value,
) -> (String, std::collections::HashMap<String, String>) {
    register_server(app, &t.key, "gov", url, extra).await
}

async fn invoke(app: &TestApp, key: &str, server: &str, tool: &str, input: Value) -> (StatusCode, Value) {
    call(
        app,
        key,
        Method::POST,
        &format!("{SERVERS}/{server}/tools/{tool}/invoke"),
        Some(json!({"input": input, "run_id": "run-1", "step_index": 2, "trace_id": "trace-9"})),
    )
    .await
}

async fn audit_types(app: &TestApp, key: &str, invocation: &str) -> Vec<String> {
    let (status, body) = call(app, key, Method::GET, "/api/v1/audit/events?limit=500", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["details"]["invocation_id"] == invocation)
        .map(|e| e["event_type"].as_str().unwrap().to_owned())
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

async fn set_risk(app: &TestApp, t: &Tenant, server: &str, tool: &str, level: &str) {
    let (status, body) = call(
        app,
        &t.key,
        Method::PUT,
        &format!("{SERVERS}/{server}/tools/{tool}/risk"),
        Some(json!({"risk_level": level})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn enable(app: &TestApp, t: &Tenant, server: &str, tool: &str) -> Value {
    let (status, body) = call(
        app,
        &t.key,
        Method::POST,
        &format!("{SERVERS}/{server}/tools/{tool}/enable"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"].clone()
}

async fn a_low_tool_runs_and_is_recorded_with_hashes(backend: Backend) {
    let app = spawn_opts(backend, Options::default()).await;
    let t = tenant(&app, "acme").await;
    let gov = GovServer::default();
    let upstream = mcp_servers::streamable_http(gov.clone(), None).await;
    let (server, tools) = register(&app, &t, &upstream.url, json!({})).await;

    let (status, body) = invoke(&app, &t.key, &server, &tools["echo"], json!({"text": "hi"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let result = &body["data"];
    assert_eq!(result["status"], "SUCCESS", "{body}");
    assert_eq!(result["policy_decision"], "allowed");
    assert_eq!(result["output"]["content"][0]["text"], "hi");
    // RFC 8785 of {"text":"hi"} is exactly these bytes.
    assert_eq!(result["input_hash"], sha256_hex(br#"{"text":"hi"}"#));
    assert_eq!(result["output_hash"].as_str().unwrap().len(), 64);
    assert!(
        result["policy_revision"]
            .as_str()
            .unwrap()
            .starts_with("aos.invoke@sha256:")
    );
    assert!(result["decision_id"].is_string());
    assert_eq!(gov.calls_of("echo"), 1);
    let invocation = result["invocation_id"].as_str().unwrap().to_owned();
    assert_eq!(
        audit_types(&app, &t.key, &invocation).await,
        [
            "TOOL_INVOCATION_REQUESTED",
            "TOOL_INVOCATION_ALLOWED",
            "TOOL_INVOCATION_STARTED",
            "TOOL_INVOCATION_COMPLETED"
        ]
    );
    let (_, record) = call(
        &app,
        &t.key,
        Method::GET,
        &format!("{SERVERS}/{server}/invocations"),
        None,
    )
    .await;
    let row = &record["data"][0];
    assert_eq!(
        (row["id"].as_str(), row["status"].as_str()),
        (Some(invocation.as_str()), Some("SUCCESS"))
    );
    assert_eq!(
        (
            row["run_id"].as_str(),
            row["trace_id"].as_str(),
            row["step_index"].as_i64()
        ),
        (Some("run-1"), Some("trace-9"), Some(2))
    );
    assert_eq!(row["output_hash"], result["output_hash"]);

    // Input that breaks the schema never leaves: 400 naming the rule, nothing called.
    for bad in [
        json!({"text": 5}),
        json!({}),
        json!({"text": "a", "extra": 1}),
        json!("text"),
    ] {
        let (status, body) = invoke(&app, &t.key, &server, &tools["echo"], bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(
            ["invalid_tool_input", "validation_failed"].contains(&body["error"]["code"].as_str().unwrap()),
            "{body}"
        );
    }
    let (_, body) = invoke(&app, &t.key, &server, &tools["echo"], json!({"text": "x".repeat(101)})).await;
    assert!(body["error"]["message"].as_str().unwrap().contains("/text"), "{body}");
    assert!(
        !body["error"]["message"].as_str().unwrap().contains("xxxx"),
        "values are not echoed: {body}"
    );
    assert_eq!(gov.calls_of("echo"), 1);

    // The SDK-proposal alias runs the same pipeline.
    let (status, body) = call(
        &app,
        &t.key,
        Method::POST,
        &format!("/api/v1/mcp/tools/{}/invoke", tools["echo"]),
        Some(json!({"input": {"text": "alias"}})),
    )
    .await;
    assert_eq!(
        (status, body["data"]["status"].as_str()),
        (StatusCode::OK, Some("SUCCESS")),
        "{body}"
    );
    let (status, body) = call(
        &app,
        &t.key,
        Method::GET,
        &format!("/api/v1/mcp/servers/{server}/tools"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(gov.calls_of("echo"), 2);

    // A key without mcp:invoke cannot invoke.
    let (_, reader) = app.create_key(&t.id, &["mcp:read"]).await;
    let (status, body) = invoke(&app, &reader, &server, &tools["echo"], json!({"text": "hi"})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("insufficient_scope"))
    );
    // Unknown tool or server: 404.
    let (status, _) = invoke(&app, &t.key, &server, &uuid::Uuid::now_v7().to_string(), json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn a_critical_tool_waits_for_approval_and_runs_exactly_once(backend: Backend) {
    let app = spawn_opts(backend, Options::default()).await;
    let t = tenant(&app, "acme").await;
    let gov = GovServer::default();
    let upstream = mcp_servers::streamable_http(gov.clone(), None).await;
    let (server, tools) = register(&app, &t, &upstream.url, json!({})).await;
    let wipe = &tools["wipe"];
    set_risk(&app, &t, &server, wipe, "CRITICAL").await;
    enable(&app, &t, &server, wipe).await;

    let (_, requester) = app.create_key(&t.id, &["mcp:invoke", "approvals:decide"]).await;
    let (status, body) = invoke(&app, &requester, &server, wipe, json!({"table": "users"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["status"], "PENDING_APPROVAL", "{body}");
    assert_eq!(body["data"]["policy_decision"], "pending_approval");
    assert!(body["data"]["reasons"].to_string().contains("CRITICAL"), "{body}");
    let approval = body["data"]["approval_id"].as_str().unwrap().to_owned();
    let invocation = body["data"]["invocation_id"].as_str().unwrap().to_owned();
    assert_eq!(gov.calls_of("wipe"), 0, "nothing runs before approval");

    let (_, pending) = call(&app, &requester, Method::GET, "/api/v1/approvals?status=PENDING", None).await;
    let listed = &pending["data"][0];
    assert_eq!(
        (listed["id"].as_str(), listed["subject_type"].as_str()),
        (Some(approval.as_str()), Some("mcp.tool_invocation"))
    );
    assert_eq!(
        listed["context"]["input"]["table"], "users",
        "approvers see what they approve"
    );

    // Four eyes: the requester cannot approve its own request.
    let (status, body) = call(
        &app,
        &requester,
        Method::POST,
        &format!("/api/v1/approvals/{approval}/approve"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // A key without approvals:decide cannot either.
    let (status, _) = call(
        &app,
        &t.key,
        Method::POST,
        &format!("/api/v1/approvals/{approval}/approve"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Two approvers at once: exactly one wins and the call runs exactly once.
    let (_, first) = app.create_key(&t.id, &["approvals:decide"]).await;
    let (_, second) = app.create_key(&t.id, &["approvals:decide"]).await;
    let path = format!("/api/v1/approvals/{approval}/approve");
    let (a, b) = tokio::join!(
        call(&app, &first, Method::POST, &path, Some(json!({"reason": "ok"}))),
        call(&app, &second, Method::POST, &path, Some(json!({"reason": "ok"}))),
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::CONFLICT], "{} / {}", a.1, b.1);
    let winner = if a.0 == StatusCode::OK { &a.1 } else { &b.1 };
    assert_eq!(winner["data"]["approval"]["status"], "APPROVED");
    assert_eq!(winner["data"]["invocation"]["status"], "SUCCESS", "{winner}");
    assert_eq!(
        winner["data"]["invocation"]["output"]["content"][0]["text"],
        "wiped users"
    );
    assert_eq!(gov.calls_of("wipe"), 1);
    let (status, _) = call(&app, &first, Method::POST, &path, None).await;
    assert_eq!(status, StatusCode::CONFLICT, "APPROVED is final");
    let (status, _) = call(
        &app,
        &first,
        Method::POST,
        &format!("/api/v1/approvals/{approval}/deny"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(gov.calls_of("wipe"), 1);
    assert_eq!(
        audit_types(&app, &t.key, &invocation).await,
        [
            "TOOL_INVOCATION_REQUESTED",
            "TOOL_INVOCATION_PENDING_APPROVAL",
            "TOOL_INVOCATION_ALLOWED",
            "TOOL_INVOCATION_STARTED",
            "TOOL_INVOCATION_COMPLETED"
        ]
    );
    let (_, got) = call(
        &app,
        &t.key,
        Method::GET,
        &format!("/api/v1/approvals/{approval}"),
        None,
    )
    .await;
    assert!(got["data"]["decided_by"].as_str().unwrap().starts_with("key:"), "{got}");

    // Denied: the call is BLOCKED with who and why.
    let (_, body) = invoke(&app, &requester, &server, wipe, json!({"table": "orders"})).await;
    let approval = body["data"]["approval_id"].as_str().unwrap().to_owned();
    let (status, body) = call(
        &app,
        &first,
        Method::POST,
        &format!("/api/v1/approvals/{approval}/deny"),
        Some(json!({"reason": "not on a Friday"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["approval"]["status"], "DENIED");
    assert_eq!(body["data"]["approval"]["decision_reason"], "not on a Friday");
    assert_eq!(body["data"]["invocation"]["status"], "BLOCKED");
    assert_eq!(body["data"]["invocation"]["error_code"], "APPROVAL_DENIED");
    assert_eq!(gov.calls_of("wipe"), 1);

    // Generic approvals: any subject but the gateway's own.
    let (status, body) = call(
        &app,
        &requester,
        Method::POST,
        "/api/v1/approvals",
        Some(json!({"subject_type": "budget_override", "subject_id": "b-1", "context": {"amount": 10}})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let generic = body["data"]["id"].as_str().unwrap().to_owned();
    let (status, body) = call(
        &app,
        &first,
        Method::POST,
        &format!("/api/v1/approvals/{generic}/approve"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["data"]["invocation"].is_null());
    let (status, _) = call(
        &app,
        &requester,
        Method::POST,
        "/api/v1/approvals",
        Some(json!({"subject_type": "mcp.tool_invocation", "subject_id": "x"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = call(
        &app,
        &first,
        Method::POST,
        &format!("/api/v1/approvals/{}/approve", uuid::Uuid::now_v7()),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn denied_calls_are_blocked_and_recorded_and_policies_only_tighten(backend: Backend) {
    let app = spawn_opts(backend, Options::default()).await;
    let t = tenant(&app, "acme").await;
    let gov = GovServer::default();
    let upstream = mcp_servers::streamable_http(gov.clone(), None).await;
    let (server, tools) = register(&app, &t, &upstream.url, json!({})).await;

    // `wipe` is destructive: above MEDIUM, so it was not enabled at discovery.
    let (_, wipe) = call(
        &app,
        &t.key,
        Method::GET,
        &format!("{SERVERS}/{server}/tools/{}", tools["wipe"]),
        None,
    )
    .await;
    assert_eq!(wipe["data"]["enabled"], false, "{wipe}");
    let (status, body) = invoke(&app, &t.key, &server, &tools["wipe"], json!({"table": "t"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["status"], "BLOCKED");
    assert_eq!(body["data"]["policy_decision"], "blocked");
    assert_eq!(body["data"]["error_code"], "POLICY_DENIED");
    assert_eq!(body["data"]["reasons"], json!(["tool is disabled"]));
    let invocation = body["data"]["invocation_id"].as_str().unwrap().to_owned();
    assert_eq!(
        audit_types(&app, &t.key, &invocation).await,
        ["TOOL_INVOCATION_REQUESTED", "TOOL_INVOCATION_DENIED"]
    );
    let (_, record) = call(
        &app,
        &t.key,
        Method::GET,
        &format!("{SERVERS}/{server}/invocations"),
        None,
    )
    .await;
    assert_eq!(record["data"][0]["status"], "BLOCKED", "blocked calls are recorded too");
    assert_eq!(gov.calls_of("wipe"), 0);

    // A HIGH tool needs approval unless the tenant says otherwise.
    enable(&app, &t, &server, &tools["wipe"]).await;
    set_risk(&app, &t, &server, &tools["wipe"], "HIGH").await;
    let (_, body) = invoke(&app, &t.key, &server, &tools["wipe"], json!({"table": "t"})).await;
    assert_eq!(body["data"]["status"], "PENDING_APPROVAL", "{body}");
    let (status, body) = call(
        &app,
        &t.key,
        Method::PATCH,
        "/api/v1/policy/settings",
        Some(json!({"high_requires_approval": false})),
    )
    .await;
    assert_eq!(
        (status, body["data"]["high_requires_approval"].as_bool()),
        (StatusCode::OK, Some(false)),
        "{body}"
    );
    let (_, body) = invoke(&app, &t.key, &server, &tools["wipe"], json!({"table": "t"})).await;
    assert_eq!(body["data"]["status"], "SUCCESS", "{body}");

    // A tenant module tightens; it is validated before it is stored.
    let source = "package aos.tenant\nimport rego.v1\ndeny contains \"no secrets in echo\" if contains(input.arguments.text, \"secret\")\n";
    let (status, body) = call(
        &app,
        &t.key,
        Method::PUT,
        "/api/v1/policy",
        Some(json!({"source": source})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let tenant_revision = body["data"]["revision"].as_str().unwrap().to_owned();
    let (_, body) = invoke(&app, &t.key, &server, &tools["echo"], json!({"text": "my secret"})).await;
    assert_eq!(body["data"]["status"], "BLOCKED", "{body}");
    assert_eq!(body["data"]["reasons"], json!(["no secrets in echo"]));
    assert!(
        body["data"]["policy_revision"]
            .as_str()
            .unwrap()
            .contains(&tenant_revision)
    );
    let (_, body) = invoke(&app, &t.key, &server, &tools["echo"], json!({"text": "hello"})).await;
    assert_eq!(body["data"]["status"], "SUCCESS", "{body}");
    for bad in [
        "package aos.tenant\ndeny contains",
        "package aos.platform\nimport rego.v1\n",
        "package aos.tenant\nimport rego.v1\ndeny := 3\n",
    ] {
        let (status, body) = call(
            &app,
            &t.key,
            Method::PUT,
            "/api/v1/policy",
            Some(json!({"source": bad})),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
    }
    let (_, overview) = call(&app, &t.key, Method::GET, "/api/v1/policy", None).await;
    assert_eq!(
        overview["data"]["tenant"]["revision"],
        tenant_revision.as_str(),
        "a refused upload changes nothing"
    );
    assert_eq!(overview["data"]["engine"], "embedded");

    // The operator's platform module applies to every tenant; tenants cannot set it.
    let platform =
        "package aos.platform\nimport rego.v1\ndeny contains \"platform: no naps\" if input.tool.name == \"nap\"\n";
    let (status, _) = call(
        &app,
        &t.key,
        Method::PUT,
        "/api/v1/admin/policy",
        Some(json!({"source": platform})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = app
        .operator(Method::PUT, "/api/v1/admin/policy")
        .json(&json!({"source": platform}))
        .send()
        .await
        .map(|r| (r.status(), r))
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{:?}", body.text().await);
    let (_, body) = invoke(&app, &t.key, &server, &tools["nap"], json!({"ms": 1})).await;
    assert_eq!(body["data"]["status"], "BLOCKED", "{body}");
    assert_eq!(body["data"]["reasons"], json!(["platform: no naps"]));
    // Removing the tenant's module leaves the platform's in force.
    let (status, _) = call(&app, &t.key, Method::DELETE, "/api/v1/policy", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, body) = invoke(&app, &t.key, &server, &tools["nap"], json!({"ms": 1})).await;
    assert_eq!(body["data"]["status"], "BLOCKED");
    assert_eq!(gov.calls_of("nap"), 0);
}

async fn incident_kinds(app: &TestApp, key: &str) -> Vec<(String, String, String)> {
    let (_, body) = call(app, key, Method::GET, "/api/v1/incidents?limit=200", None).await;
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["kind"].as_str().unwrap().to_owned(),
                i["invocation_id"].as_str().unwrap_or_default().to_owned(),
                i["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn failures_timeouts_and_dead_upstreams_open_incidents(backend: Backend) {
    let app = spawn_opts(backend, Options::default()).await;
    let t = tenant(&app, "acme").await;
    let gov = GovServer::default();
    let upstream = mcp_servers::streamable_http(gov.clone(), None).await;
    let (server, tools) = register(
        &app,
        &t,
        &upstream.url,
        json!({"call_timeout_ms": 700, "max_output_bytes": 4096}),
    )
    .await;
    // Severity follows the tool's risk.
    set_risk(&app, &t, &server, &tools["fail"], "LOW").await;

    let (_, failed) = invoke(&app, &t.key, &server, &tools["fail"], json!({})).await;
    assert_eq!(failed["data"]["status"], "FAILURE", "{failed}");
    assert!(failed["data"]["incident_id"].is_string(), "{failed}");
    let failed_id = failed["data"]["invocation_id"].as_str().unwrap().to_owned();
    assert_eq!(
        audit_types(&app, &t.key, &failed_id).await[3..],
        ["TOOL_INVOCATION_FAILED", "INCIDENT_OPENED"]
    );

    let (_, big) = invoke(&app, &t.key, &server, &tools["big"], json!({})).await;
    assert_eq!(
        (big["data"]["status"].as_str(), big["data"]["error_code"].as_str()),
        (Some("FAILURE"), Some("OUTPUT_TOO_LARGE")),
        "{big}"
    );
    assert!(big["data"]["output"].is_null(), "an oversize output is not returned");

    let (_, slow) = invoke(&app, &t.key, &server, &tools["nap"], json!({"ms": 3000})).await;
    assert_eq!(slow["data"]["status"], "TIMEOUT", "{slow}");
    let slow_id = slow["data"]["invocation_id"].as_str().unwrap().to_owned();

    drop(upstream);
    let (_, dead) = invoke(&app, &t.key, &server, &tools["echo"], json!({"text": "anyone?"})).await;
    assert_eq!(dead["data"]["status"], "FAILURE", "{dead}");
    assert_eq!(dead["data"]["error_code"], "UPSTREAM_ERROR");
    let dead_id = dead["data"]["invocation_id"].as_str().unwrap().to_owned();

    let incidents = incident_kinds(&app, &t.key).await;
    for (kind, invocation) in [
        ("INVOCATION_FAILED", &failed_id),
        ("INVOCATION_TIMEOUT", &slow_id),
        ("INVOCATION_FAILED", &dead_id),
    ] {
        assert!(
            incidents.iter().any(|(k, i, _)| k == kind && i == invocation),
            "{kind} for {invocation} in {incidents:?}"
        );
    }
    let incident = failed["data"]["incident_id"].as_str().unwrap();
    let (_, got) = call(
        &app,
        &t.key,
        Method::GET,
        &format!("/api/v1/incidents/{incident}"),
        None,
    )
    .await;
    assert_eq!(
        (got["data"]["status"].as_str(), got["data"]["severity"].as_str()),
        (Some("OPEN"), Some("LOW")),
        "{got}"
    );
    let path = format!("/api/v1/incidents/{incident}/resolve");
    let (status, body) = call(
        &app,
        &t.key,
        Method::POST,
        &path,
        Some(json!({"resolution": "fixed upstream"})),
    )
    .await;
    assert_eq!(
        (status, body["data"]["status"].as_str()),
        (StatusCode::OK, Some("RESOLVED")),
        "{body}"
    );
    let (status, _) = call(&app, &t.key, Method::POST, &path, None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (_, open) = call(&app, &t.key, Method::GET, "/api/v1/incidents?status=OPEN", None).await;
    assert!(open["data"].as_array().unwrap().iter().all(|i| i["id"] != incident));
    let (status, _) = call(&app, &t.key, Method::GET, "/api/v1/incidents?kind=NOPE", None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

async fn a_changed_definition_quarantines_the_tool_until_reapproved(backend: Backend) {
    let app = spawn_opts(backend, Options::default()).await;
    let t = tenant(&app, "acme").await;
    let gov = GovServer::default();
    let upstream = mcp_servers::streamable_http(gov.clone(), None).await;
    let (server, tools) = register(&app, &t, &upstream.url, json!({})).await;
    let echo = &tools["echo"];

    // The manifest of the first discovery verifies against the published keys.
    let (status, manifest) = call(&app, &t.key, Method::GET, &format!("{SERVERS}/{server}/manifest"), None).await;
    assert_eq!(status, StatusCode::OK, "{manifest}");
    let first_hash = manifest["data"]["payload"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "echo")
        .unwrap()["tool_hash"]
        .clone();
    let jwks: Value = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["kid"], manifest["data"]["kid"]);
    assert_eq!(jwks["keys"][0]["alg"], "ES256");
    assert!(jwks["keys"][0].get("d").is_none());

    gov.drift();
    let (status, body) = call(
        &app,
        &t.key,
        Method::POST,
        &format!("{SERVERS}/{server}/discover"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["tools_quarantined"], 1, "{body}");
    let (_, tool) = call(
        &app,
        &t.key,
        Method::GET,
        &format!("{SERVERS}/{server}/tools/{echo}"),
        None,
    )
    .await;
    assert_eq!(
        (tool["data"]["quarantined"].as_bool(), tool["data"]["enabled"].as_bool()),
        (Some(true), Some(false)),
        "{tool}"
    );
    assert_ne!(tool["data"]["approved_hash"], tool["data"]["tool_hash"]);
    let (_, body) = invoke(&app, &t.key, &server, echo, json!({"text": "hi"})).await;
    assert_eq!(body["data"]["status"], "BLOCKED", "{body}");
    assert_eq!(gov.calls_of("echo"), 0);
    let incidents = incident_kinds(&app, &t.key).await;
    assert!(incidents.iter().any(|(k, _, _)| k == "TOOL_DRIFT"), "{incidents:?}");
    let (_, events) = call(
        &app,
        &t.key,
        Method::GET,
        "/api/v1/audit/events?event_type=TOOL_QUARANTINED",
        None,
    )
    .await;
    assert_eq!(events["data"][0]["subject_id"], echo.as_str(), "{events}");
    // Rediscovering again does not un-quarantine or open a second incident.
    call(
        &app,
        &t.key,
        Method::POST,
        &format!("{SERVERS}/{server}/discover"),
        None,
    )
    .await;
    assert_eq!(
        incident_kinds(&app, &t.key)
            .await
            .iter()
            .filter(|(k, _, _)| k == "TOOL_DRIFT")
            .count(),
        1
    );

    // The manifest was re-signed with the new definition.
    let (_, manifest) = call(&app, &t.key, Method::GET, &format!("{SERVERS}/{server}/manifest"), None).await;
    let new_hash = &manifest["data"]["payload"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "echo")
        .unwrap()["tool_hash"];
    assert_ne!(*new_hash, first_hash);
    assert_eq!(*new_hash, tool["data"]["tool_hash"]);

    // An admin re-approves the new definition by enabling it.
    let approved = enable(&app, &t, &server, echo).await;
    assert_eq!(approved["approved_hash"], approved["tool_hash"]);
    assert_eq!(approved["quarantined"], false);
    let (_, body) = invoke(&app, &t.key, &server, echo, json!({"text": "hi"})).await;
    assert_eq!(body["data"]["status"], "SUCCESS", "{body}");
    let (_, events) = call(
        &app,
        &t.key,
        Method::GET,
        "/api/v1/audit/events?event_type=TOOL_DEFINITION_APPROVED",
        None,
    )
    .await;
    assert_eq!(events["data"].as_array().unwrap().len(), 1, "{events}");
}

async fn the_audit_chain_verifies_and_detects_tampering(backend: Backend) {
    let app = spawn_opts(backend, Options::default()).await;
    let t = tenant(&app, "acme").await;
    let other = tenant(&app, "other").await;
    let gov = GovServer::default();
    let upstream = mcp_servers::streamable_http(gov.clone(), None).await;
    let (server, tools) = register(&app, &t, &upstream.url, json!({})).await;
    for text in ["a", "b", "c"] {
        invoke(&app, &t.key, &server, &tools["echo"], json!({"text": text})).await;
    }
    let (status, verify) = call(&app, &t.key, Method::GET, "/api/v1/audit/verify", None).await;
    assert_eq!(status, StatusCode::OK, "{verify}");
    assert_eq!(verify["data"]["valid"], true, "{verify}");
    let length = verify["data"]["length"].as_i64().unwrap();
    assert!(length >= 13, "{verify}");

    // Keyset pages cover the chain exactly, linked hash to hash.
    let (mut seen, mut cursor, mut prev) = (Vec::new(), None::<String>, "0".repeat(64));
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/audit/events?limit=5&cursor={c}"),
            None => "/api/v1/audit/events?limit=5".to_owned(),
        };
        let (_, page) = call(&app, &t.key, Method::GET, &path, None).await;
        for e in page["data"].as_array().unwrap() {
            assert_eq!(e["prev_hash"], prev.as_str());
            prev = e["event_hash"].as_str().unwrap().to_owned();
            seen.push(e["seq"].as_i64().unwrap());
        }
        match page["meta"]["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, (1..=length).collect::<Vec<_>>());
    assert_eq!(verify["data"]["head_hash"], prev.as_str());
    // The other tenant's chain is its own.
    let (_, theirs) = call(&app, &other.key, Method::GET, "/api/v1/audit/verify", None).await;
    assert_eq!(
        (theirs["data"]["valid"].as_bool(), theirs["data"]["length"].as_i64()),
        (Some(true), Some(0))
    );

    // Updates and deletes are refused by the database itself.
    let db = app.database();
    let edit = format!(
        "UPDATE audit_events SET details = '{{\"forged\": true}}' WHERE seq = 3 AND tenant_id = '{}'",
        t.id
    );
    assert!(
        aos_drivers::testing::execute_sql(db, &edit).await.is_err(),
        "UPDATE must be refused"
    );
    assert!(
        aos_drivers::testing::execute_sql(db, "DELETE FROM audit_events")
            .await
            .is_err(),
        "DELETE must be refused"
    );
    // Someone with the database owner's rights tampers anyway; verify finds where.
    let disable = match backend {
        Backend::Postgres => "ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_change",
        Backend::Sqlite => "DROP TRIGGER audit_events_no_update",
    };
    aos_drivers::testing::execute_sql(db, disable).await.unwrap();
    assert_eq!(aos_drivers::testing::execute_sql(db, &edit).await.unwrap(), 1);
    let (_, verify) = call(&app, &t.key, Method::GET, "/api/v1/audit/verify", None).await;
    assert_eq!(verify["data"]["valid"], false, "{verify}");
    assert_eq!(verify["data"]["first_bad_seq"], 3, "{verify}");
    assert_eq!(verify["data"]["length"], 2);
}

async fn approvals_expire_and_block_their_calls(backend: Backend) {
    let options = Options {
        approvals: ApprovalSettings {
            ttl_secs: 1,
            sweep_interval_ms: 100,
            allow_self_approval: false,
        },
        ..Options::default()
    };
    let app = spawn_opts(backend, options).await;
    let t = tenant(&app, "acme").await;
    let gov = GovServer::default();
    let upstream = mcp_servers::streamable_http(gov.clone(), None).await;
    let (server, tools) = register(&app, &t, &upstream.url, json!({})).await;
    set_risk(&app, &t, &server, &tools["wipe"], "CRITICAL").await;
    enable(&app, &t, &server, &tools["wipe"]).await;
    let (_, body) = invoke(&app, &t.key, &server, &tools["wipe"], json!({"table": "t"})).await;
    let approval = body["data"]["approval_id"].as_str().unwrap().to_owned();
    let (_, approver) = app.create_key(&t.id, &["approvals:decide"]).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, got) = call(
            &app,
            &approver,
            Method::GET,
            &format!("/api/v1/approvals/{approval}"),
            None,
        )
        .await;
        if got["data"]["status"] == "EXPIRED" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never expired: {got}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, _) = call(
        &app,
        &approver,
        Method::POST,
        &format!("/api/v1/approvals/{approval}/approve"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (_, record) = call(
        &app,
        &t.key,
        Method::GET,
        &format!("{SERVERS}/{server}/invocations"),
        None,
    )
    .await;
    assert_eq!(record["data"][0]["status"], "BLOCKED", "{record}");
    assert_eq!(record["data"][0]["error_code"], "APPROVAL_EXPIRED");
    assert_eq!(gov.calls_of("wipe"), 0);
}

async fn the_remote_opa_path_decides_and_fails_closed(backend: Backend) {
    let (opa, inputs) = mcp_servers::opa().await;
    let mut policy = PolicySettings {
        engine: "opa".into(),
        ..PolicySettings::default()
    };
    policy.opa.url = Some(opa.url.clone());
    let app = spawn_opts(
        backend,
        Options {
            policy,
            ..Options::default()
        },
    )
    .await;
    let t = tenant(&app, "acme").await;
    let gov = GovServer::default();
    let upstream = mcp_servers::streamable_http(gov.clone(), None).await;
    let (server, tools) = register(&app, &t, &upstream.url, json!({})).await;
    for name in ["wipe", "nap", "fail"] {
        enable(&app, &t, &server, &tools[name]).await;
    }

    let (_, body) = invoke(&app, &t.key, &server, &tools["echo"], json!({"text": "hi"})).await;
    assert_eq!(body["data"]["status"], "SUCCESS", "{body}");
    assert_eq!(body["data"]["decision_id"], "opa-decision-1");
    assert_eq!(body["data"]["policy_id"], "opa:aos.invoke");
    let (_, body) = invoke(&app, &t.key, &server, &tools["wipe"], json!({"table": "t"})).await;
    assert_eq!(body["data"]["status"], "BLOCKED", "{body}");
    assert_eq!(body["data"]["reasons"], json!(["opa: wipe is never allowed"]));
    let (_, body) = invoke(&app, &t.key, &server, &tools["nap"], json!({"ms": 1})).await;
    assert_eq!(body["data"]["status"], "PENDING_APPROVAL", "{body}");
    // OPA answers 500: fail closed, with an incident and a POLICY_ERROR event.
    let (_, body) = invoke(&app, &t.key, &server, &tools["fail"], json!({})).await;
    assert_eq!(body["data"]["status"], "BLOCKED", "{body}");
    assert_eq!(body["data"]["error_code"], "POLICY_ERROR");
    let invocation = body["data"]["invocation_id"].as_str().unwrap().to_owned();
    assert!(
        audit_types(&app, &t.key, &invocation)
            .await
            .contains(&"POLICY_ERROR".to_owned())
    );
    assert!(
        incident_kinds(&app, &t.key)
            .await
            .iter()
            .any(|(k, i, _)| k == "POLICY_ERROR" && *i == invocation)
    );
    assert_eq!(
        (gov.calls_of("wipe"), gov.calls_of("fail"), gov.calls_of("nap")),
        (0, 0, 0)
    );

    let seen = inputs.lock().unwrap().clone();
    let first = &seen[0];
    assert_eq!(first["tenant"]["id"], t.id.as_str());
    assert_eq!(first["tool"]["name"], "echo");
    assert_eq!(first["arguments"]["text"], "hi");
    assert_eq!(first["run"]["run_id"], "run-1");
    // Modules live in OPA: uploads here are refused.
    let (status, _) = call(
        &app,
        &t.key,
        Method::PUT,
        "/api/v1/policy",
        Some(json!({"source": "package aos.tenant\n"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    drop(opa);
    let (_, body) = invoke(&app, &t.key, &server, &tools["echo"], json!({"text": "hi"})).await;
    assert_eq!(body["data"]["status"], "BLOCKED", "OPA down fails closed: {body}");
}

async fn tenants_cannot_reach_each_others_governance(backend: Backend) {
    let app = spawn_opts(backend, Options::default()).await;
    let a = tenant(&app, "a").await;
    let b = tenant(&app, "b").await;
    let (_, b_decider) = app
        .create_key(&b.id, &["approvals:decide", "mcp:read", "mcp:admin"])
        .await;
    let gov = GovServer::default();
    let upstream = mcp_servers::streamable_http(gov.clone(), None).await;
    let (server, tools) = register(&app, &a, &upstream.url, json!({})).await;
    set_risk(&app, &a, &server, &tools["wipe"], "CRITICAL").await;
    enable(&app, &a, &server, &tools["wipe"]).await;
    let (_, pending) = invoke(&app, &a.key, &server, &tools["wipe"], json!({"table": "t"})).await;
    let approval = pending["data"]["approval_id"].as_str().unwrap().to_owned();
    let (_, failed) = invoke(&app, &a.key, &server, &tools["fail"], json!({})).await;
    let incident = failed["data"]["incident_id"].as_str().unwrap().to_owned();

    let (status, _) = invoke(&app, &b.key, &server, &tools["echo"], json!({"text": "hi"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(
        &app,
        &b.key,
        Method::POST,
        &format!("/api/v1/mcp/tools/{}/invoke", tools["echo"]),
        Some(json!({"input": {"text": "x"}})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for path in [
        format!("/api/v1/approvals/{approval}"),
        format!("/api/v1/incidents/{incident}"),
        format!("{SERVERS}/{server}/manifest"),
    ] {
        let (status, _) = call(&app, &b_decider, Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    let (status, _) = call(
        &app,
        &b_decider,
        Method::POST,
        &format!("/api/v1/approvals/{approval}/approve"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(
        &app,
        &b_decider,
        Method::POST,
        &format!("/api/v1/incidents/{incident}/resolve"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = call(&app, &b_decider, Method::GET, "/api/v1/approvals", None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0);
    let (_, list) = call(&app, &b_decider, Method::GET, "/api/v1/incidents", None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0);
    let (_, list) = call(&app, &b_decider, Method::GET, "/api/v1/audit/events", None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0);
    assert_eq!(gov.calls_of("wipe"), 0);
    // The operator has no tenant of its own here.
    let response = app.operator(Method::GET, "/api/v1/audit/verify").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

async fn a_servers_call_cap_blocks_the_excess_before_it_reaches_the_server(backend: Backend) {
    let app = spawn_opts(backend, Options::default()).await;
    let t = tenant(&app, "acme").await;
    let gov = GovServer::default();
    let upstream = mcp_servers::streamable_http(gov.clone(), None).await;
    // Bad input first: the field is named.
    let (status, err) = call(
        &app,
        &t.key,
        Method::POST,
        SERVERS,
        Some(json!({"name": "capped", "url": upstream.url, "max_calls_per_minute": 0})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!(err["error"]["field"], "max_calls_per_minute");
    let (server, tools) = register(&app, &t, &upstream.url, json!({"max_calls_per_minute": 2})).await;
    let (_, shown) = call(&app, &t.key, Method::GET, &format!("{SERVERS}/{server}"), None).await;
    assert_eq!(shown["data"]["max_calls_per_minute"], 2, "{shown}");

    // The cap counts per clock minute: start clear of a minute's end.
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if secs % 60 > 50 {
        tokio::time::sleep(std::time::Duration::from_secs(61 - secs % 60)).await;
    }
    for text in ["a", "b"] {
        let (status, body) = invoke(&app, &t.key, &server, &tools["echo"], json!({"text": text})).await;
        assert_eq!(
            (status, body["data"]["status"].as_str()),
            (StatusCode::OK, Some("SUCCESS")),
            "{body}"
        );
    }
    let response = app
        .as_(
            &t.key,
            Method::POST,
            &format!("{SERVERS}/{server}/tools/{}/invoke", tools["echo"]),
        )
        .json(&json!({"input": {"text": "c"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().get("retry-after").is_some());
    let call_id = response.headers()["x-aos-call-id"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    assert_eq!(gov.calls_of("echo"), 2, "the excess never reached the server");
    let (_, recorded) = call(
        &app,
        &t.key,
        Method::GET,
        &format!("{SERVERS}/{server}/invocations"),
        None,
    )
    .await;
    let blocked = &recorded["data"][0];
    assert_eq!(
        (
            blocked["id"].as_str(),
            blocked["status"].as_str(),
            blocked["error_code"].as_str()
        ),
        (Some(call_id.as_str()), Some("BLOCKED"), Some("RATE_LIMITED")),
        "{recorded}"
    );
    // Through /mcp: a tool error that says why; still nothing upstream.
    let (_, body) = crate::mcp_gateway::rpc(
        &app,
        &t.key,
        "/mcp",
        &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": "gov.echo", "arguments": {"text": "d"}}}),
    )
    .await;
    assert_eq!(body["result"]["isError"], true, "{body}");
    assert!(
        body["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("rate_limited"),
        "{body}"
    );
    assert_eq!(gov.calls_of("echo"), 2);
}
