//! Agents: capabilities bound the catalog and the calls of an agent's keys over `/mcp`,
//! `/mcp/ws`, `/mcp/agents/{id}` and REST; signed manifests, tampering and pinning after a
//! rug pull; per-agent freeze and disable across replicas; attribution; bad input. Both
//! backends, a real rmcp upstream, rmcp clients.

// Integration tests: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use aos_tests::mcp_servers::{self, GovServer};
use aos_tests::{Backend, Options, TestApp, call, mcp_tenant, register_server, spawn_opts, spawn_replicas};
use reqwest::{Method, StatusCode};
use rmcp::model::{CallToolRequestParams, ClientConfig, ProtocolVersion};
use serde_json::{Value, json};

use crate::mcp_gateway::{Watcher, args, rpc, text_of, ws_client_at};

const SERVERS: &str = "/api/v1/integrations/mcp-servers";
const AGENTS: &str = "/api/v1/agents";

aos_tests::for_each_backend!(
    agents_are_managed_with_clear_errors_and_stay_in_their_tenant,
    an_agent_sees_and_calls_only_its_capabilities_everywhere,
    manifests_are_signed_verified_and_pin_the_agent_after_a_rug_pull,
    freezing_or_disabling_an_agent_stops_its_keys_on_every_replica,
    the_policy_sees_the_agent_and_capabilities_can_require_approval,
);

async fn create_agent(app: &TestApp, key: &str, body: Value) -> Value {
    let (status, created) = call(app, key, Method::POST, AGENTS, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["data"].clone()
}

async fn agent_key(app: &TestApp, key: &str, agent: &str, scopes: Value) -> (String, String) {
    let (status, body) = call(
        app,
        key,
        Method::POST,
        &format!("{AGENTS}/{agent}/api-keys"),
        Some(json!({"name": "bot key", "scopes": scopes})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["data"]["agent_id"], agent);
    (
        body["data"]["api_key"]["id"].as_str().unwrap().to_owned(),
        body["data"]["key"].as_str().unwrap().to_owned(),
    )
}

async fn invoke(app: &TestApp, key: &str, server: &str, tool: &str, input: Value) -> (StatusCode, Value) {
    call(
        app,
        key,
        Method::POST,
        &format!("{SERVERS}/{server}/tools/{tool}/invoke"),
        Some(json!({"input": input})),
    )
    .await
}

async fn listed(app: &TestApp, key: &str, path: &str) -> Vec<String> {
    let (status, body) = rpc(
        app,
        key,
        path,
        &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

async fn agents_are_managed_with_clear_errors_and_stay_in_their_tenant(backend: Backend) {
    let app = spawn_opts(backend, Options::default()).await;
    let (_, key) = mcp_tenant(&app, "acme").await;
    let (_, other) = mcp_tenant(&app, "other").await;
    let agent = create_agent(
        &app,
        &key,
        json!({"name": "Support Bot", "description": "reads tickets", "owner": "user:alice",
               "capabilities": [{"tool": "jira.get_*", "max_risk": "medium"}]}),
    )
    .await;
    let id = agent["id"].as_str().unwrap().to_owned();
    assert_eq!(agent["status"], "ACTIVE");
    assert_eq!(agent["frozen"], false);
    assert_eq!(
        agent["capabilities"],
        json!([{"tool": "jira.get_*", "max_risk": "MEDIUM", "requires_approval": false}])
    );

    // Bad input: the field is named; a duplicate live name conflicts.
    for (body, field) in [
        (
            json!({"name": "x", "capabilities": [{"tool": "jira"}]}),
            "capabilities[0].tool",
        ),
        (
            json!({"name": "x", "capabilities": [{"tool": "a.b"}, {"tool": "a.b/c"}]}),
            "capabilities[1].tool",
        ),
        (
            json!({"name": "x", "capabilities": [{"tool": "a.b", "max_risk": "SEVERE"}]}),
            "capabilities[0].max_risk",
        ),
        (json!({"name": "", "capabilities": []}), "name"),
    ] {
        let (status, err) = call(&app, &key, Method::POST, AGENTS, Some(body.clone())).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {err}");
        assert_eq!(err["error"]["field"], field, "{err}");
    }
    let (status, err) = call(&app, &key, Method::POST, AGENTS, Some(json!({"name": "support bot"}))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    let (status, err) = call(
        &app,
        &key,
        Method::POST,
        &format!("{AGENTS}/{id}/api-keys"),
        Some(json!({"name": "too strong", "scopes": ["admin"]})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!(err["error"]["field"], "scopes");

    // Another tenant's agent does not exist for the caller.
    for (method, path, body) in [
        (Method::GET, format!("{AGENTS}/{id}"), None),
        (Method::PATCH, format!("{AGENTS}/{id}"), Some(json!({"name": "mine"}))),
        (Method::DELETE, format!("{AGENTS}/{id}"), None),
        (
            Method::POST,
            format!("{AGENTS}/{id}/api-keys"),
            Some(json!({"name": "k"})),
        ),
        (Method::POST, format!("{AGENTS}/{id}/manifests"), None),
        (Method::POST, format!("{AGENTS}/{id}/freeze"), None),
    ] {
        let (status, err) = call(&app, &other, method.clone(), &path, body).await;
        // Freezing needs `admin`, which the other tenant's MCP key lacks: 403 before 404.
        let expected = if path.ends_with("/freeze") {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::NOT_FOUND
        };
        assert_eq!(status, expected, "{method} {path}: {err}");
    }
    let (_, theirs) = call(&app, &other, Method::GET, AGENTS, None).await;
    assert_eq!(theirs["data"], json!([]));

    // Patch: present fields change, null clears, absent stay.
    let (status, patched) = call(
        &app,
        &key,
        Method::PATCH,
        &format!("{AGENTS}/{id}"),
        Some(json!({"description": null, "status": "DISABLED"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["data"]["status"], "DISABLED");
    assert!(patched["data"].get("description").is_none(), "{patched}");
    assert_eq!(patched["data"]["owner"], "user:alice");

    // Delete: gone from reads and lists, its keys revoked, kept in the audit chain.
    let (_, bot_key) = agent_key(&app, &key, &id, json!(["mcp:invoke"])).await;
    let (status, _) = call(&app, &key, Method::DELETE, &format!("{AGENTS}/{id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(&app, &key, Method::GET, &format!("{AGENTS}/{id}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = call(&app, &key, Method::GET, AGENTS, None).await;
    assert_eq!(list["data"], json!([]));
    let (status, _) = call(&app, &bot_key, Method::POST, "/mcp", Some(json!({}))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, events) = call(&app, &key, Method::GET, "/api/v1/audit/events?limit=100", None).await;
    let kinds: Vec<&str> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["subject_type"] == "agent")
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["AGENT_CREATED", "AGENT_UPDATED", "AGENT_KEY_CREATED", "AGENT_DELETED"],
        "{events}"
    );
}

async fn an_agent_sees_and_calls_only_its_capabilities_everywhere(backend: Backend) {
    let app = spawn_opts(backend, Options::default()).await;
    let (_, key) = mcp_tenant(&app, "acme").await;
    let gov = GovServer::default();
    let upstream = mcp_servers::streamable_http(gov.clone(), None).await;
    let (server, tools) = register_server(&app, &key, "gov", &upstream.url, json!({})).await;
    let agent = create_agent(
        &app,
        &key,
        json!({"name": "bot", "capabilities": [{"tool": "gov.echo"}, {"tool": "gov.n?p"}, {"tool": "gov.w*"}]}),
    )
    .await;
    let id = agent["id"].as_str().unwrap().to_owned();
    let (_, bot) = agent_key(&app, &key, &id, json!(["mcp:invoke", "mcp:read"])).await;

    // The tenant's key sees the whole catalog; the agent's key its capabilities only
    // (`wipe` matches `gov.w*` but is not enabled: never in a catalog).
    assert_eq!(
        listed(&app, &key, "/mcp").await,
        ["gov.big", "gov.echo", "gov.fail", "gov.nap"]
    );
    assert_eq!(listed(&app, &bot, "/mcp").await, ["gov.echo", "gov.nap"]);
    // /mcp/agents/{id}: the same catalog for an admin acting for the agent, and for the
    // agent itself.
    assert_eq!(
        listed(&app, &key, &format!("/mcp/agents/{id}")).await,
        ["gov.echo", "gov.nap"]
    );
    assert_eq!(
        listed(&app, &bot, &format!("/mcp/agents/{id}")).await,
        ["gov.echo", "gov.nap"]
    );

    // Outside its set: -32602 like an unknown tool, and nothing reaches the upstream.
    for path in ["/mcp".to_owned(), format!("/mcp/agents/{id}")] {
        let (_, body) = rpc(
            &app,
            &bot,
            &path,
            &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "gov.fail", "arguments": {}}}),
        )
        .await;
        assert_eq!(body["error"]["code"], -32602, "{path}: {body}");
    }
    assert_eq!(gov.calls_of("fail"), 0);
    // Over REST: 403 capability_not_granted, recorded as BLOCKED with the reason.
    let (status, err) = invoke(&app, &bot, &server, &tools["fail"], json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{err}");
    assert_eq!(err["error"]["code"], "capability_not_granted", "{err}");
    assert_eq!(gov.calls_of("fail"), 0);
    let (_, recorded) = call(
        &app,
        &key,
        Method::GET,
        &format!("{SERVERS}/{server}/invocations"),
        None,
    )
    .await;
    let blocked = &recorded["data"][0];
    assert_eq!(blocked["status"], "BLOCKED", "{recorded}");
    assert_eq!(blocked["error_code"], "CAPABILITY_NOT_GRANTED");
    assert_eq!(blocked["actor_type"], "agent");
    assert_eq!(blocked["actor_id"], format!("agent:{id}"));

    // Inside it: called, attributed to the agent in the invocation and the audit chain.
    let (status, done) = invoke(&app, &bot, &server, &tools["echo"], json!({"text": "hi"})).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["data"]["status"], "SUCCESS");
    let (_, recorded) = call(
        &app,
        &key,
        Method::GET,
        &format!("{SERVERS}/{server}/invocations"),
        None,
    )
    .await;
    assert_eq!(recorded["data"][0]["actor_id"], format!("agent:{id}"));
    let (_, events) = call(
        &app,
        &key,
        Method::GET,
        "/api/v1/audit/events?event_type=TOOL_INVOCATION_COMPLETED",
        None,
    )
    .await;
    let last = events["data"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["actor_type"].as_str(), last["actor_id"].as_str()),
        (Some("agent"), Some(format!("agent:{id}").as_str())),
        "{last}"
    );
    let (_, events) = call(
        &app,
        &key,
        Method::GET,
        "/api/v1/audit/events?event_type=CAPABILITY_NOT_GRANTED",
        None,
    )
    .await;
    assert_eq!(events["data"].as_array().unwrap().len(), 1, "{events}");

    // Over the agent's WebSocket: calls work, and enabling `wipe` later (it matches a
    // glob) reaches the agent as tools/list_changed and then in its catalog.
    let watcher = Watcher {
        config: ClientConfig::default().with_protocol_version(ProtocolVersion::V_2025_06_18),
        ..Watcher::default()
    };
    let changes = Arc::clone(&watcher.changes);
    let client = ws_client_at(&app, &format!("/mcp/agents/{id}/ws"), &bot, watcher, false).await;
    let result = client
        .call_tool(CallToolRequestParams::new("gov.echo").with_arguments(args(json!({"text": "ws"}))))
        .await
        .unwrap();
    assert_eq!(text_of(&result), "ws");
    let (status, body) = call(
        &app,
        &key,
        Method::POST,
        &format!("{SERVERS}/{server}/tools/{}/enable", tools["wipe"]),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let started = Instant::now();
    while changes.load(Ordering::SeqCst) == 0 && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(changes.load(Ordering::SeqCst) >= 1, "no tools/list_changed");
    let names: Vec<String> = client
        .list_all_tools()
        .await
        .unwrap()
        .iter()
        .map(|t| t.name.to_string())
        .collect();
    assert_eq!(names, ["gov.echo", "gov.nap", "gov.wipe"]);
    client.cancel().await.unwrap();

    // Narrowing the capabilities narrows the catalog at once.
    let (status, _) = call(
        &app,
        &key,
        Method::PATCH,
        &format!("{AGENTS}/{id}"),
        Some(json!({"capabilities": [{"tool": "gov.*", "max_risk": "MEDIUM"}]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, all) = call(&app, &key, Method::GET, &format!("{SERVERS}/{server}/tools"), None).await;
    let mut expected: Vec<String> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["enabled"] == true && (t["risk_level"] == "LOW" || t["risk_level"] == "MEDIUM"))
        .map(|t| format!("gov.{}", t["name"].as_str().unwrap()))
        .collect();
    expected.sort();
    assert!(
        !expected.is_empty() && !expected.contains(&"gov.wipe".to_owned()),
        "{all}"
    );
    assert_eq!(listed(&app, &bot, "/mcp").await, expected);

    // Bad agent endpoints: unknown agent 404; another agent's key 403; another tenant 404.
    let (status, _) = rpc(
        &app,
        &key,
        &format!("/mcp/agents/{}", uuid::Uuid::now_v7()),
        &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let other_agent = create_agent(&app, &key, json!({"name": "other bot"})).await;
    let (status, _) = rpc(
        &app,
        &bot,
        &format!("/mcp/agents/{}", other_agent["id"].as_str().unwrap()),
        &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, stranger) = mcp_tenant(&app, "stranger").await;
    let (status, _) = rpc(
        &app,
        &stranger,
        &format!("/mcp/agents/{id}"),
        &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn manifest(app: &TestApp, key: &str, agent: &str) -> Value {
    let (status, body) = call(app, key, Method::POST, &format!("{AGENTS}/{agent}/manifests"), None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["data"].clone()
}

async fn verify(app: &TestApp, key: &str, token: &str) -> Value {
    let (status, body) = call(
        app,
        key,
        Method::POST,
        &format!("{AGENTS}/manifests/verify"),
        Some(json!({"manifest": token})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"].clone()
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

async fn manifests_are_signed_verified_and_pin_the_agent_after_a_rug_pull(backend: Backend) {
    let app = spawn_opts(backend, Options::default()).await;
    let (_, key) = mcp_tenant(&app, "acme").await;
    let gov = GovServer::default();
    let upstream = mcp_servers::streamable_http(gov.clone(), None).await;
    let (server, tools) = register_server(&app, &key, "gov", &upstream.url, json!({})).await;
    let agent = create_agent(
        &app,
        &key,
        json!({"name": "bot", "capabilities": [{"tool": "gov.echo"}, {"tool": "gov.nap"}]}),
    )
    .await;
    let id = agent["id"].as_str().unwrap().to_owned();
    let (_, bot) = agent_key(&app, &key, &id, json!(["mcp:invoke"])).await;
    let (status, _) = call(
        &app,
        &key,
        Method::GET,
        &format!("{AGENTS}/{id}/manifests/latest"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let first = manifest(&app, &key, &id).await;
    assert_eq!(first["version"], 1);
    let payload = &first["payload"];
    assert_eq!(
        (payload["agent_id"].as_str(), payload["version"].as_i64()),
        (Some(id.as_str()), Some(1))
    );
    let names: Vec<&str> = payload["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["gov.echo", "gov.nap"]);
    let token = first["manifest"].as_str().unwrap().to_owned();
    let ok = verify(&app, &bot, &token).await;
    assert_eq!(ok["valid"], true, "{ok}");
    assert_eq!(ok["payload"]["capabilities"], payload["capabilities"]);
    // It verifies with the published key, by kid.
    let (_, jwks) = call(&app, &key, Method::GET, "/.well-known/jwks.json", None).await;
    assert!(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == first["kid"]),
        "{jwks}"
    );

    // Tampering: a payload byte, the signature, alg none, a foreign key, a server manifest.
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: Value = {
        use base64::Engine as _;
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(parts[1])
                .unwrap(),
        )
        .unwrap()
    };
    claims["capabilities"][0]["name"] = json!("gov.wipe");
    let forged_payload = format!("{}.{}.{}", parts[0], b64(claims.to_string().as_bytes()), parts[2]);
    let mut sig = parts[2].to_owned();
    sig.replace_range(0..1, if sig.starts_with('A') { "B" } else { "A" });
    let forged_sig = format!("{}.{}.{sig}", parts[0], parts[1]);
    let none = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "aos-agent-manifest+jwt"})
            .to_string()
            .as_bytes()),
        parts[1]
    );
    // Signed properly, but by a key AOS does not publish (a test-only P-256 key).
    let foreign = {
        let pem = include_bytes!("fixtures/foreign-manifest-key.pem");
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = first["kid"].as_str().map(str::to_owned);
        header.typ = Some("aos-agent-manifest+jwt".into());
        jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_ec_pem(pem).unwrap()).unwrap()
    };
    let (_, server_manifest) = call(&app, &key, Method::GET, &format!("{SERVERS}/{server}/manifest"), None).await;
    for (what, bad) in [
        ("payload", forged_payload),
        ("signature", forged_sig),
        ("alg none", none),
        ("foreign key", foreign),
        (
            "server manifest",
            server_manifest["data"]["manifest"].as_str().unwrap().to_owned(),
        ),
        ("garbage", "not.a.jws".to_owned()),
    ] {
        let verdict = verify(&app, &bot, &bad).await;
        assert_eq!(verdict["valid"], false, "{what}: {verdict}");
        assert!(
            verdict["reason"].is_string() && verdict.get("payload").is_none(),
            "{what}: {verdict}"
        );
    }

    // Pinned: the agent calls only the manifest's definitions.
    let (status, _) = call(
        &app,
        &key,
        Method::PATCH,
        &format!("{AGENTS}/{id}"),
        Some(json!({"manifest_pinned": true})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, done) = invoke(&app, &bot, &server, &tools["echo"], json!({"text": "a"})).await;
    assert_eq!(
        (status, done["data"]["status"].as_str()),
        (StatusCode::OK, Some("SUCCESS")),
        "{done}"
    );

    // The rug pull: `echo` is redefined upstream, quarantined, and an admin re-approves the
    // new definition. The tenant's key may call it again; the pinned agent may not.
    gov.drift();
    call(&app, &key, Method::POST, &format!("{SERVERS}/{server}/discover"), None).await;
    let (status, body) = call(
        &app,
        &key,
        Method::POST,
        &format!("{SERVERS}/{server}/tools/{}/enable", tools["echo"]),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, done) = invoke(&app, &key, &server, &tools["echo"], json!({"text": "b"})).await;
    assert_eq!(done["data"]["status"], "SUCCESS", "{done}");
    let before = gov.calls_of("echo");
    let (status, err) = invoke(&app, &bot, &server, &tools["echo"], json!({"text": "c"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{err}");
    assert_eq!(err["error"]["code"], "capability_not_granted");
    assert!(
        err["error"]["message"].as_str().unwrap().contains("manifest v1"),
        "{err}"
    );
    assert_eq!(gov.calls_of("echo"), before);
    assert!(!listed(&app, &bot, "/mcp").await.contains(&"gov.echo".to_owned()));
    let (_, incidents) = call(
        &app,
        &key,
        Method::GET,
        "/api/v1/incidents?kind=AGENT_MANIFEST_MISMATCH",
        None,
    )
    .await;
    assert_eq!(incidents["data"].as_array().unwrap().len(), 1, "{incidents}");
    let (_, events) = call(
        &app,
        &key,
        Method::GET,
        "/api/v1/audit/events?event_type=AGENT_MANIFEST_MISMATCH",
        None,
    )
    .await;
    assert_eq!(events["data"].as_array().unwrap().len(), 1, "{events}");

    // A new manifest names the new definition; the agent calls again.
    let second = manifest(&app, &key, &id).await;
    assert_eq!(second["version"], 2);
    let (status, done) = invoke(&app, &bot, &server, &tools["echo"], json!({"text": "d"})).await;
    assert_eq!(
        (status, done["data"]["status"].as_str()),
        (StatusCode::OK, Some("SUCCESS")),
        "{done}"
    );
    let (_, all) = call(&app, &key, Method::GET, &format!("{AGENTS}/{id}/manifests"), None).await;
    let versions: Vec<i64> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, [2, 1]);
    let (_, v1) = call(&app, &key, Method::GET, &format!("{AGENTS}/{id}/manifests/1"), None).await;
    assert_eq!(v1["data"]["manifest"], token.as_str());
    let (_, latest) = call(
        &app,
        &key,
        Method::GET,
        &format!("{AGENTS}/{id}/manifests/latest"),
        None,
    )
    .await;
    assert_eq!(latest["data"]["version"], 2);
}

async fn freezing_or_disabling_an_agent_stops_its_keys_on_every_replica(backend: Backend) {
    let replicas = spawn_replicas(backend, 2).await;
    let (a, b) = (&replicas[0], &replicas[1]);
    let tenant = a.create_tenant("acme").await;
    let (_, admin) = a.create_key(&tenant, &["admin"]).await;
    let gov = GovServer::default();
    let upstream = mcp_servers::streamable_http(gov.clone(), None).await;
    let (server, tools) = register_server(a, &admin, "gov", &upstream.url, json!({})).await;
    let agent = create_agent(a, &admin, json!({"name": "bot", "capabilities": [{"tool": "gov.*"}]})).await;
    let other = create_agent(a, &admin, json!({"name": "other", "capabilities": [{"tool": "gov.*"}]})).await;
    let id = agent["id"].as_str().unwrap().to_owned();
    let (_, bot) = agent_key(a, &admin, &id, json!(["mcp:invoke"])).await;
    let (_, bystander) = agent_key(a, &admin, other["id"].as_str().unwrap(), json!(["mcp:invoke"])).await;
    let echo = tools["echo"].clone();
    assert_eq!(
        invoke(b, &bot, &server, &echo, json!({"text": "x"})).await.0,
        StatusCode::OK
    );

    // Frozen through A: B refuses within a second (423), nothing goes upstream; the other
    // agent is untouched.
    let (status, state) = call(
        a,
        &admin,
        Method::POST,
        &format!("{AGENTS}/{id}/freeze"),
        Some(json!({"reason": "runaway"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{state}");
    assert_eq!(state["data"]["entity_type"], "agent");
    let until = |what: &'static str, want: StatusCode| {
        let (bot, server, echo) = (bot.clone(), server.clone(), echo.clone());
        async move {
            let started = Instant::now();
            loop {
                let (status, body) = invoke(b, &bot, &server, &echo, json!({"text": "x"})).await;
                if status == want {
                    return body;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(1),
                    "{what}: still {status} after {:?}",
                    started.elapsed()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let refused = until("freeze", StatusCode::LOCKED).await;
    assert_eq!(refused["error"]["code"], "kill_switch_active");
    assert!(
        refused["error"]["message"].as_str().unwrap().contains("agent"),
        "{refused}"
    );
    let calls = gov.calls_of("echo");
    assert_eq!(
        invoke(b, &bot, &server, &echo, json!({"text": "x"})).await.0,
        StatusCode::LOCKED
    );
    assert_eq!(gov.calls_of("echo"), calls);
    assert_eq!(
        invoke(b, &bystander, &server, &echo, json!({"text": "x"})).await.0,
        StatusCode::OK
    );
    let (_, shown) = call(b, &admin, Method::GET, &format!("{AGENTS}/{id}"), None).await;
    assert_eq!(shown["data"]["frozen"], true);
    let (status, _) = call(a, &admin, Method::POST, &format!("{AGENTS}/{id}/unfreeze"), None).await;
    assert_eq!(status, StatusCode::OK);
    until("unfreeze", StatusCode::OK).await;

    // Disabled through A: B refuses its keys (403) within a second; enabled again, back.
    let (status, _) = call(
        a,
        &admin,
        Method::PATCH,
        &format!("{AGENTS}/{id}"),
        Some(json!({"status": "DISABLED"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let refused = until("disable", StatusCode::FORBIDDEN).await;
    assert!(
        refused["error"]["message"].as_str().unwrap().contains("disabled"),
        "{refused}"
    );
    let (status, _) = call(
        a,
        &admin,
        Method::PATCH,
        &format!("{AGENTS}/{id}"),
        Some(json!({"status": "ACTIVE"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    until("enable", StatusCode::OK).await;

    // Deleted through A: B answers 401 within a second.
    let (status, _) = call(a, &admin, Method::DELETE, &format!("{AGENTS}/{id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    until("delete", StatusCode::UNAUTHORIZED).await;
}

async fn the_policy_sees_the_agent_and_capabilities_can_require_approval(backend: Backend) {
    let app = spawn_opts(backend, Options::default()).await;
    let (_, key) = mcp_tenant(&app, "acme").await;
    let gov = GovServer::default();
    let upstream = mcp_servers::streamable_http(gov.clone(), None).await;
    let (server, tools) = register_server(&app, &key, "gov", &upstream.url, json!({})).await;
    let agent = create_agent(
        &app,
        &key,
        json!({"name": "careful", "capabilities": [{"tool": "gov.echo", "requires_approval": true}, {"tool": "gov.nap"}]}),
    )
    .await;
    let id = agent["id"].as_str().unwrap().to_owned();
    let (_, bot) = agent_key(&app, &key, &id, json!(["mcp:invoke"])).await;

    // The shipped rule: a capability marked requires_approval makes the call wait.
    let (status, body) = invoke(&app, &bot, &server, &tools["echo"], json!({"text": "x"})).await;
    assert!(status.is_success(), "{body}");
    assert_eq!(body["data"]["status"], "PENDING_APPROVAL", "{body}");
    assert!(
        body["data"]["reasons"]
            .to_string()
            .contains("capability gov.echo of agent careful"),
        "{body}"
    );
    assert_eq!(gov.calls_of("echo"), 0);

    // Approving does not get around the agent's controls: frozen → 423, disabled → 409,
    // nothing runs; active again → the stored call runs once.
    let approval = body["data"]["approval_id"].as_str().unwrap().to_owned();
    let tenant_id = app
        .as_(&key, Method::GET, "/api/v1/session/context")
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["data"]["tenant_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, approver) = app.create_key(&tenant_id, &["approvals:decide", "admin"]).await;
    let approve = |approver: String, approval: String| {
        let app = &app;
        async move {
            call(
                app,
                &approver,
                Method::POST,
                &format!("/api/v1/approvals/{approval}/approve"),
                Some(json!({"reason": "ok"})),
            )
            .await
        }
    };
    let (status, _) = call(&app, &approver, Method::POST, &format!("{AGENTS}/{id}/freeze"), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, err) = approve(approver.clone(), approval.clone()).await;
    assert_eq!(status, StatusCode::LOCKED, "{err}");
    call(&app, &approver, Method::POST, &format!("{AGENTS}/{id}/unfreeze"), None).await;
    call(
        &app,
        &key,
        Method::PATCH,
        &format!("{AGENTS}/{id}"),
        Some(json!({"status": "DISABLED"})),
    )
    .await;
    let (status, err) = approve(approver.clone(), approval.clone()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    assert_eq!(gov.calls_of("echo"), 0);
    // Active again, but without a capability for the tool: still refused.
    call(
        &app,
        &key,
        Method::PATCH,
        &format!("{AGENTS}/{id}"),
        Some(json!({"status": "ACTIVE", "capabilities": [{"tool": "gov.nap"}]})),
    )
    .await;
    let (status, err) = approve(approver.clone(), approval.clone()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    assert!(err["error"]["message"].as_str().unwrap().contains("gov.echo"), "{err}");
    call(
        &app,
        &key,
        Method::PATCH,
        &format!("{AGENTS}/{id}"),
        Some(json!({"capabilities": [{"tool": "gov.echo", "requires_approval": true}, {"tool": "gov.nap"}]})),
    )
    .await;
    let (status, decided) = approve(approver.clone(), approval.clone()).await;
    assert_eq!(status, StatusCode::OK, "{decided}");
    assert_eq!(decided["data"]["invocation"]["status"], "SUCCESS", "{decided}");
    assert_eq!(gov.calls_of("echo"), 1);

    // A tenant module names the agent: this one keeps `careful` away from naps.
    let module = r#"package aos.tenant
import rego.v1
deny contains sprintf("agent %s may not nap", [input.agent.name]) if {
	input.agent.name == "careful"
	input.tool.name == "nap"
}"#;
    let (status, body) = call(
        &app,
        &key,
        Method::PUT,
        "/api/v1/policy",
        Some(json!({"source": module})),
    )
    .await;
    assert!(status.is_success(), "{body}");
    let (_, body) = invoke(&app, &bot, &server, &tools["nap"], json!({"ms": 1})).await;
    assert_eq!(body["data"]["status"], "BLOCKED", "{body}");
    assert!(
        body["data"]["reasons"]
            .to_string()
            .contains("agent careful may not nap"),
        "{body}"
    );
    // The tenant's own key is not an agent: the rule does not apply.
    let (_, body) = invoke(&app, &key, &server, &tools["nap"], json!({"ms": 1})).await;
    assert_eq!(body["data"]["status"], "SUCCESS", "{body}");
}
