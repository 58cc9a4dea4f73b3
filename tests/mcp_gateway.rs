//! AOS as an MCP server: rmcp clients of both protocol eras over Streamable HTTP and over
//! the WebSocket, against AOS (both backends) in front of a real rmcp server; replicas;
//! bad input and tenant isolation over raw HTTP.

// Integration tests: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aos_tests::mcp_servers::{self, GovServer};
use aos_tests::{Backend, Options, TestApp, call, mcp_tenant, register_server, spawn_opts, spawn_replicas};
use reqwest::{Method, StatusCode};
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientConfig, ClientJsonRpcMessage, ProtocolVersion, ServerJsonRpcMessage,
};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, ClientServiceExt, RoleClient, ServiceExt};
use serde_json::{Value, json};

const SERVERS: &str = "/api/v1/integrations/mcp-servers";

aos_tests::for_each_backend!(
    initialize_era_clients_list_and_call_through_the_governed_pipeline,
    stateless_2026_clients_discover_and_call,
    bad_input_gets_clear_errors_and_tenants_stay_apart,
    websocket_clients_call_and_hear_catalog_changes,
    upstream_errors_reach_the_agent_and_same_origin_pages_are_accepted,
);

struct Tenant {
    id: String,
    key: String,
}

async fn tenant(app: &TestApp, name: &str) -> Tenant {
    let (id, key) = mcp_tenant(app, name).await;
    Tenant { id, key }
}

/// Registers a GovServer named `name`; returns (server id, tool ids by name).
async fn register(
    app: &TestApp,
    t: &Tenant,
    name: &str,
    url: &str,
) -> (String, std::collections::HashMap<String, String>) {
    register_server(app, &t.key, name, url, json!({})).await
}

/// A client handler that counts `tools/list_changed` notifications.
#[derive(Clone, Default)]
pub(crate) struct Watcher {
    pub(crate) config: ClientConfig,
    pub(crate) changes: Arc<AtomicUsize>,
}

impl ClientHandler for Watcher {
    fn get_info(&self) -> ClientConfig {
        self.config.clone()
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.changes.fetch_add(1, Ordering::SeqCst);
    }
}

fn http_transport(app: &TestApp, key: &str) -> StreamableHttpClientTransport<reqwest::Client> {
    StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(app.url("/mcp")).auth_header(key.to_owned()),
    )
}

async fn legacy_client(app: &TestApp, key: &str) -> RunningService<RoleClient, Watcher> {
    let watcher = Watcher {
        config: ClientConfig::default().with_protocol_version(ProtocolVersion::V_2025_06_18),
        ..Watcher::default()
    };
    watcher.serve(http_transport(app, key)).await.unwrap()
}

pub(crate) fn text_of(result: &CallToolResult) -> String {
    serde_json::to_value(&result.content).unwrap()[0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

pub(crate) fn args(value: Value) -> rmcp::model::JsonObject {
    value.as_object().cloned().unwrap()
}

async fn initialize_era_clients_list_and_call_through_the_governed_pipeline(backend: Backend) {
    let app = spawn_opts(backend, Options::default()).await;
    let t = tenant(&app, "acme").await;
    let gov = GovServer::default();
    let upstream = mcp_servers::streamable_http(gov.clone(), None).await;
    let (server, tools) = register(&app, &t, "gov", &upstream.url).await;

    let client = legacy_client(&app, &t.key).await;
    let info = client.peer_info().unwrap();
    assert_eq!(info.protocol_version, ProtocolVersion::V_2025_06_18);
    assert_eq!(info.server_info.as_ref().unwrap().name, "aos");

    // The catalog: enabled tools only (`wipe` is HIGH: not auto-enabled), `{server}.{tool}`,
    // sorted, with the pinned description, schema and annotations.
    let listed = client.list_all_tools().await.unwrap();
    let names: Vec<&str> = listed.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(names, ["gov.big", "gov.echo", "gov.fail", "gov.nap"], "{names:?}");
    let echo = listed.iter().find(|t| t.name == "gov.echo").unwrap();
    assert_eq!(echo.description.as_deref(), Some("Echo the text back."));
    assert_eq!(echo.input_schema["required"], json!(["text"]));
    assert_eq!(echo.annotations.as_ref().unwrap().read_only_hint, Some(true));

    // A call runs through the pipeline: upstream called, invocation recorded for the key,
    // with run and trace ids from _meta.
    let mut params = CallToolRequestParams::new("gov.echo").with_arguments(args(json!({"text": "hi"})));
    params.meta = Some(args(json!({"run_id": "run-7", "trace_id": "trace-7"})).into());
    let result = client.call_tool(params).await.unwrap();
    assert_ne!(result.is_error, Some(true), "{result:?}");
    assert_eq!(text_of(&result), "hi");
    assert_eq!(gov.calls_of("echo"), 1);
    let (_, recorded) = call(
        &app,
        &t.key,
        Method::GET,
        &format!("{SERVERS}/{server}/invocations"),
        None,
    )
    .await;
    let row = &recorded["data"][0];
    assert_eq!(row["status"], "SUCCESS");
    assert_eq!(row["actor_type"], "agent");
    assert_eq!(
        (row["run_id"].as_str(), row["trace_id"].as_str()),
        (Some("run-7"), Some("trace-7")),
        "{row}"
    );
    let (_, events) = call(
        &app,
        &t.key,
        Method::GET,
        "/api/v1/audit/events?event_type=TOOL_INVOCATION_COMPLETED",
        None,
    )
    .await;
    assert_eq!(events["data"].as_array().unwrap().len(), 1);

    // Arguments that break the schema: a tool error the agent can read; nothing called.
    let bad = client
        .call_tool(CallToolRequestParams::new("gov.echo").with_arguments(args(json!({"text": 5}))))
        .await
        .unwrap();
    assert_eq!(bad.is_error, Some(true));
    assert!(text_of(&bad).contains("invalid arguments"), "{bad:?}");
    assert_eq!(gov.calls_of("echo"), 1);

    // An upstream failure is a tool error too, and opens an incident.
    let failed = client
        .call_tool(CallToolRequestParams::new("gov.fail").with_arguments(args(json!({}))))
        .await
        .unwrap();
    assert_eq!(failed.is_error, Some(true));
    assert!(text_of(&failed).contains("the tool failed"), "{failed:?}");

    // Enabled and made CRITICAL, `wipe` waits for an approval: isError with the approval id.
    call(
        &app,
        &t.key,
        Method::POST,
        &format!("{SERVERS}/{server}/tools/{}/enable", tools["wipe"]),
        None,
    )
    .await;
    call(
        &app,
        &t.key,
        Method::PUT,
        &format!("{SERVERS}/{server}/tools/{}/risk", tools["wipe"]),
        Some(json!({"risk_level": "CRITICAL"})),
    )
    .await;
    let pending = client
        .call_tool(CallToolRequestParams::new("gov.wipe").with_arguments(args(json!({"table": "t"}))))
        .await
        .unwrap();
    assert_eq!(pending.is_error, Some(true));
    let (_, queue) = call(&app, &t.key, Method::GET, "/api/v1/approvals?status=PENDING", None).await;
    let approval = queue["data"][0]["id"].as_str().unwrap().to_owned();
    assert!(text_of(&pending).contains(&approval), "{pending:?}");
    assert_eq!(gov.calls_of("wipe"), 0);

    // Disabled: gone from the catalog, and calling it is an unknown tool (invalid params).
    call(
        &app,
        &t.key,
        Method::POST,
        &format!("{SERVERS}/{server}/tools/{}/disable", tools["nap"]),
        None,
    )
    .await;
    let names: Vec<String> = client
        .list_all_tools()
        .await
        .unwrap()
        .iter()
        .map(|t| t.name.to_string())
        .collect();
    assert!(!names.contains(&"gov.nap".to_owned()), "{names:?}");
    let err = client
        .call_tool(CallToolRequestParams::new("gov.nap").with_arguments(args(json!({}))))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unknown tool"), "{err}");
    client.cancel().await.unwrap();

    // The admin's view of the same catalog.
    let (status, catalog) = call(&app, &t.key, Method::GET, "/api/v1/mcp/catalog", None).await;
    assert_eq!(status, StatusCode::OK, "{catalog}");
    assert!(
        catalog["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "gov.echo")
    );
    drop(t.id);
}

async fn stateless_2026_clients_discover_and_call(backend: Backend) {
    // Two replicas on one database: the client talks to one, the catalog was made on the
    // other; no session is kept anywhere but the database.
    let replicas = spawn_replicas(backend, 2).await;
    let (a, b) = (&replicas[0], &replicas[1]);
    let t = tenant(a, "acme").await;
    let gov = GovServer::default();
    let upstream = mcp_servers::streamable_http(gov.clone(), None).await;
    let (server, tools) = register(a, &t, "gov", &upstream.url).await;

    let client = Watcher::default()
        .serve_with_lifecycle(
            http_transport(b, &t.key),
            rmcp::ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        )
        .await
        .unwrap();
    assert_eq!(
        client.peer_info().unwrap().protocol_version,
        ProtocolVersion::V_2026_07_28
    );
    let names: Vec<String> = client
        .list_all_tools()
        .await
        .unwrap()
        .iter()
        .map(|t| t.name.to_string())
        .collect();
    assert!(names.contains(&"gov.echo".to_owned()), "{names:?}");
    let result = client
        .call_tool(CallToolRequestParams::new("gov.echo").with_arguments(args(json!({"text": "from b"}))))
        .await
        .unwrap();
    assert_eq!(text_of(&result), "from b");

    // subscriptions/listen on B hears a catalog change made through A.
    let mut subscription = client
        .listen(rmcp::model::SubscriptionFilter::builder().tools_list_changed().build())
        .await
        .unwrap();
    let (status, _) = call(
        a,
        &t.key,
        Method::POST,
        &format!("{SERVERS}/{server}/tools/{}/disable", tools["echo"]),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let heard = tokio::time::timeout(Duration::from_secs(10), subscription.next())
        .await
        .expect("no tools/list_changed within 10 s")
        .unwrap()
        .unwrap();
    assert!(
        matches!(heard, rmcp::model::ServerNotification::ToolListChangedNotification(_)),
        "{heard:?}"
    );
    drop(subscription);

    // A change made after the client last listed but before its listen reaches the
    // server is announced too (the baseline is what the client was shown).
    let shown = client.list_all_tools().await.unwrap();
    assert!(!shown.iter().any(|t| t.name == "gov.echo"), "echo is disabled");
    let (status, _) = call(
        a,
        &t.key,
        Method::POST,
        &format!("{SERVERS}/{server}/tools/{}/enable", tools["echo"]),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let mut subscription = client
        .listen(rmcp::model::SubscriptionFilter::builder().tools_list_changed().build())
        .await
        .unwrap();
    let heard = tokio::time::timeout(Duration::from_secs(10), subscription.next())
        .await
        .expect("the change before listen was not announced")
        .unwrap()
        .unwrap();
    assert!(
        matches!(heard, rmcp::model::ServerNotification::ToolListChangedNotification(_)),
        "{heard:?}"
    );
    drop(subscription);
    client.cancel().await.unwrap();

    // An initialize-era exchange split across replicas: initialize on A, call on B.
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}});
    let response = raw(a, &t.key, &init, &[("mcp-protocol-version", "2025-06-18")]).await;
    assert_eq!(response.0, StatusCode::OK, "{}", response.1);
    assert!(response.2.is_none(), "stateless: no Mcp-Session-Id");
    let listed = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "gov.echo", "arguments": {"text": "split"}}});
    let (status, body, _) = raw(b, &t.key, &listed, &[("mcp-protocol-version", "2025-06-18")]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"]["content"][0]["text"], "split", "{body}");
}

/// A raw POST /mcp; returns (status, JSON body or text, Mcp-Session-Id).
async fn raw(app: &TestApp, key: &str, body: &Value, headers: &[(&str, &str)]) -> (StatusCode, Value, Option<String>) {
    let mut request = app
        .as_(key, Method::POST, "/mcp")
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(body.to_string());
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    send(request).await
}

/// One JSON-RPC message POSTed to `path` (`/mcp`, `/mcp/agents/{id}`).
pub(crate) async fn rpc(app: &TestApp, key: &str, path: &str, body: &Value) -> (StatusCode, Value) {
    let request = app
        .as_(key, Method::POST, path)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(body.to_string());
    let (status, body, _) = send(request).await;
    (status, body)
}

async fn send(request: reqwest::RequestBuilder) -> (StatusCode, Value, Option<String>) {
    let response = request.send().await.unwrap();
    let status = response.status();
    let session = response
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
        session,
    )
}

async fn bad_input_gets_clear_errors_and_tenants_stay_apart(backend: Backend) {
    let app = spawn_opts(backend, Options::default()).await;
    let acme = tenant(&app, "acme").await;
    let other = tenant(&app, "other").await;
    let gov = GovServer::default();
    let upstream = mcp_servers::streamable_http(gov.clone(), None).await;
    register(&app, &acme, "gov", &upstream.url).await;
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}});

    // No credentials: 401 pointing at the protected resource metadata.
    let response = app
        .client
        .post(app.url("/mcp"))
        .header("accept", "application/json, text/event-stream")
        .json(&list)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = response.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(challenge.contains("resource_metadata="), "{challenge}");
    let metadata_url = challenge
        .split("resource_metadata=\"")
        .nth(1)
        .unwrap()
        .trim_end_matches('"');
    let metadata: Value = app.client.get(metadata_url).send().await.unwrap().json().await.unwrap();
    assert_eq!(metadata["resource"], app.url("/mcp"));
    assert_eq!(metadata["scopes_supported"], json!(["mcp:invoke"]));
    assert_eq!(metadata["bearer_methods_supported"], json!(["header"]));

    // A key without mcp:invoke: 403 in the error envelope.
    let (_, reader) = app.create_key(&acme.id, &["mcp:read"]).await;
    let (status, body, _) = raw(&app, &reader, &list, &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "insufficient_scope");

    // Host and Origin outside the configuration.
    let (status, body, _) = raw(&app, &acme.key, &list, &[("origin", "https://evil.example")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("Origin"));
    let (status, body, _) = raw(&app, &acme.key, &list, &[("host", "attacker.example")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    // Malformed JSON, a non-JSON-RPC body, an unknown method, an oversize message.
    let (status, body, _) = send(
        app.as_(&acme.key, Method::POST, "/mcp")
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .body("{not json"),
    )
    .await;
    assert!(status.is_client_error(), "{status} {body}");
    let (status, body, _) = raw(&app, &acme.key, &json!({"hello": "world"}), &[]).await;
    assert!(status.is_client_error(), "{status} {body}");
    let (status, body, _) = raw(
        &app,
        &acme.key,
        &json!({"jsonrpc": "2.0", "id": 3, "method": "tools/frobnicate"}),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["error"]["code"], -32601, "{body}");
    let huge = json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call",
        "params": {"name": "gov.echo", "arguments": {"text": "x".repeat(2 * 1024 * 1024)}}});
    let (status, _, _) = raw(&app, &acme.key, &huge, &[]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(gov.calls_of("echo"), 0);

    // The other tenant sees an empty catalog and cannot call acme's tools by name.
    let (status, body, _) = raw(&app, &other.key, &list, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"]["tools"], json!([]), "{body}");
    let steal = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
        "params": {"name": "gov.echo", "arguments": {"text": "mine"}}});
    let (_, body, _) = raw(&app, &other.key, &steal, &[]).await;
    assert_eq!(body["error"]["code"], -32602, "{body}");
    assert_eq!(gov.calls_of("echo"), 0);
}

/// An rmcp client over a WebSocket to `/mcp/ws`.
async fn ws_client(app: &TestApp, key: &str, watcher: Watcher, era_2026: bool) -> RunningService<RoleClient, Watcher> {
    ws_client_at(app, "/mcp/ws", key, watcher, era_2026).await
}

/// An rmcp client over a WebSocket at `path` (`/mcp/ws`, `/mcp/agents/{id}/ws`).
pub(crate) async fn ws_client_at(
    app: &TestApp,
    path: &str,
    key: &str,
    watcher: Watcher,
    era_2026: bool,
) -> RunningService<RoleClient, Watcher> {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};
    let mut request = app.url(path).replace("http://", "ws://").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "mcp".parse().unwrap());
    let (socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.headers()["sec-websocket-protocol"], "mcp");
    let (mut sink, mut stream) = socket.split();
    let (to_server, mut outgoing) = futures::channel::mpsc::channel::<ClientJsonRpcMessage>(16);
    let (mut incoming_tx, incoming) = futures::channel::mpsc::channel::<ServerJsonRpcMessage>(16);
    tokio::spawn(async move {
        while let Some(message) = outgoing.next().await {
            if sink
                .send(Message::Text(serde_json::to_string(&message).unwrap().into()))
                .await
                .is_err()
            {
                break;
            }
        }
    });
    tokio::spawn(async move {
        while let Some(Ok(frame)) = stream.next().await {
            if let Message::Text(text) = frame
                && let Ok(message) = serde_json::from_str::<ServerJsonRpcMessage>(&text)
                && incoming_tx.send(message).await.is_err()
            {
                break;
            }
        }
    });
    if era_2026 {
        watcher
            .serve_with_lifecycle(
                (to_server, incoming),
                rmcp::ClientLifecycleMode::Discover {
                    preferred_versions: vec![ProtocolVersion::V_2026_07_28],
                },
            )
            .await
            .unwrap()
    } else {
        watcher.serve((to_server, incoming)).await.unwrap()
    }
}

/// A raw WebSocket to `/mcp/ws`.
async fn raw_socket(
    app: &TestApp,
    key: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = app
        .url("/mcp/ws")
        .replace("http://", "ws://")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    tokio_tungstenite::connect_async(request).await.unwrap().0
}

async fn websocket_clients_call_and_hear_catalog_changes(backend: Backend) {
    let app = spawn_opts(backend, Options::default()).await;
    let t = tenant(&app, "acme").await;
    let gov = GovServer::default();
    let upstream = mcp_servers::streamable_http(gov.clone(), None).await;
    let (server, tools) = register(&app, &t, "gov", &upstream.url).await;

    let watcher = Watcher {
        config: ClientConfig::default().with_protocol_version(ProtocolVersion::V_2025_06_18),
        ..Watcher::default()
    };
    let changes = Arc::clone(&watcher.changes);
    let client = ws_client(&app, &t.key, watcher, false).await;
    let result = client
        .call_tool(CallToolRequestParams::new("gov.echo").with_arguments(args(json!({"text": "over ws"}))))
        .await
        .unwrap();
    assert_eq!(text_of(&result), "over ws");

    // Disabling a tool (a catalog change) reaches the connected client.
    call(
        &app,
        &t.key,
        Method::POST,
        &format!("{SERVERS}/{server}/tools/{}/disable", tools["echo"]),
        None,
    )
    .await;
    let mut waited = Duration::ZERO;
    while changes.load(Ordering::SeqCst) == 0 && waited < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += Duration::from_millis(100);
    }
    assert_eq!(
        changes.load(Ordering::SeqCst),
        1,
        "no tools/list_changed after {waited:?}"
    );
    let names: Vec<String> = client
        .list_all_tools()
        .await
        .unwrap()
        .iter()
        .map(|t| t.name.to_string())
        .collect();
    assert!(!names.contains(&"gov.echo".to_owned()), "{names:?}");
    client.cancel().await.unwrap();

    // A 2026-07-28 client over the socket: server/discover, then a call.
    let modern = ws_client(&app, &t.key, Watcher::default(), true).await;
    assert_eq!(
        modern.peer_info().unwrap().protocol_version,
        ProtocolVersion::V_2026_07_28
    );
    let result = modern
        .call_tool(CallToolRequestParams::new("gov.nap").with_arguments(args(json!({"ms": 1}))))
        .await
        .unwrap();
    assert_eq!(text_of(&result), "rested");
    modern.cancel().await.unwrap();

    // Frames that are not JSON-RPC get a JSON-RPC error back; the connection lives on.
    {
        use futures::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message;
        let mut socket = raw_socket(&app, &t.key).await;
        for (frame, code) in [("{not json", -32700), (r#"{"hello":"world"}"#, -32600)] {
            socket.send(Message::Text(frame.into())).await.unwrap();
            let reply = tokio::time::timeout(Duration::from_secs(5), socket.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            let reply: Value = serde_json::from_str(reply.to_text().unwrap()).unwrap();
            assert_eq!(reply["error"]["code"], code, "{frame}: {reply}");
        }
    }

    // A key revoked while its socket is open: the connection is closed with 1008 (policy
    // violation) and a reason, within the second the README promises (on the replica
    // that revoked it: at once).
    {
        use futures::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
        let (key_id, doomed) = app.create_key(&t.id, &["mcp:invoke"]).await;
        let mut socket = raw_socket(&app, &doomed).await;
        let status = app
            .operator(Method::DELETE, &format!("/api/v1/admin/api-keys/{key_id}"))
            .send()
            .await
            .unwrap()
            .status();
        assert!(status.is_success(), "{status}");
        let revoked = std::time::Instant::now();
        let close = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match socket.next().await {
                    Some(Ok(Message::Close(frame))) => break frame,
                    None | Some(Err(_)) => break None,
                    Some(Ok(_)) => {}
                }
            }
        })
        .await
        .expect("the socket of a revoked key stayed open");
        let frame = close.expect("a close frame, not a dropped connection");
        assert_eq!(frame.code, CloseCode::Policy, "{frame:?}");
        assert!(frame.reason.contains("revoked"), "{frame:?}");
        assert!(
            revoked.elapsed() < Duration::from_secs(1),
            "closed after {:?}",
            revoked.elapsed()
        );
    }

    // Without credentials the upgrade is refused with 401.
    let anonymous = app.url("/mcp/ws").replace("http://", "ws://");
    let refused = tokio::time::timeout(Duration::from_secs(10), tokio_tungstenite::connect_async(anonymous))
        .await
        .expect("the refusal arrives");
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 401);
        }
        other => panic!("expected a 401, got {other:?}"),
    }
}

async fn upstream_errors_reach_the_agent_and_same_origin_pages_are_accepted(backend: Backend) {
    use aos_tests::mcp_servers::ScriptedServer;
    let app = spawn_opts(backend, Options::default()).await;
    let t = tenant(&app, "acme").await;
    let scripted = ScriptedServer::new(vec![json!({"name": "explain_me", "description": "Explains itself.",
        "inputSchema": {"type": "object"}, "annotations": {"readOnlyHint": true}})]);
    let upstream = mcp_servers::streamable_http(scripted, None).await;
    let (server, tools) = register(&app, &t, "scripted", &upstream.url).await;

    // The upstream's own error result reaches the agent as written, with AOS's invocation id.
    let request = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "scripted.explain_me", "arguments": {}}});
    let (status, body) = rpc(&app, &t.key, "/mcp", &request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let result = &body["result"];
    assert_eq!(result["isError"], true, "{body}");
    assert_eq!(
        result["content"][0]["text"], "explain_me needs a project id: pass `project` (see the project list)",
        "{body}"
    );
    let invocation = result["_meta"]["aos/invocation_id"].as_str().unwrap().to_owned();
    let (_, recorded) = call(
        &app,
        &t.key,
        Method::GET,
        &format!("{SERVERS}/{server}/invocations"),
        None,
    )
    .await;
    assert_eq!(recorded["data"][0]["id"], invocation.as_str(), "{recorded}");
    assert_eq!(recorded["data"][0]["status"], "FAILURE");
    // REST invoke keeps it too.
    let (_, invoked) = call(
        &app,
        &t.key,
        Method::POST,
        &format!("{SERVERS}/{server}/tools/{}/invoke", tools["explain_me"]),
        Some(json!({"input": {}})),
    )
    .await;
    assert!(
        invoked["data"]["output"].to_string().contains("needs a project id"),
        "{invoked}"
    );

    // A page served by this AOS (Origin = its own Host) may call /mcp; another origin not.
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let own = app.base.trim_end_matches('/').to_owned();
    let (status, _, _) = raw(&app, &t.key, &list, &[("origin", own.as_str())]).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = raw(&app, &t.key, &list, &[("origin", "http://evil.example")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}
