//! Real MCP servers for the tests, built with rmcp (the official SDK) and served over
//! loopback: Streamable HTTP (optionally requiring a bearer token), the legacy HTTP+SSE
//! transport (a small bridge: rmcp dropped its SSE server), and stdio (the
//! `aos-test-mcp-stdio` binary). Plus endpoints that misbehave: down, slow, garbage.

// Test support: a failed setup step is a failed test.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::indexing_slicing)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use futures::StreamExt;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ListToolsResult, PaginatedRequestParams,
    ServerCapabilities, ServerConfig, Tool, ToolAnnotations,
};
use rmcp::service::{RequestContext, RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt, tool, tool_handler, tool_router};
use tokio_util::sync::CancellationToken;

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct SumArgs {
    /// Left operand.
    pub a: i64,
    /// Right operand.
    pub b: i64,
}

#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct SumOut {
    pub total: i64,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct NoteId {
    pub id: String,
}

/// A small notes server: one read-only tool, one destructive tool, one with output schema.
#[derive(Clone)]
pub struct NotesServer {
    tool_router: ToolRouter<Self>,
}

impl Default for NotesServer {
    fn default() -> Self {
        Self {
            tool_router: Self::tool_router(),
        }
    }
}

#[tool_router]
impl NotesServer {
    /// Read every note.
    #[tool(annotations(read_only_hint = true, open_world_hint = false))]
    async fn read_notes(&self) -> String {
        "note 1: buy milk".into()
    }

    /// Delete a note by id.
    #[tool(annotations(destructive_hint = true))]
    async fn delete_note(&self, Parameters(NoteId { id }): Parameters<NoteId>) -> String {
        format!("deleted {id}")
    }

    /// Add two numbers.
    #[tool(annotations(read_only_hint = true))]
    async fn sum(&self, Parameters(SumArgs { a, b }): Parameters<SumArgs>) -> Result<Json<SumOut>, ErrorData> {
        Ok(Json(SumOut { total: a + b }))
    }
}

#[tool_handler(router = self.tool_router, name = "notes", version = "1.0.0")]
impl ServerHandler for NotesServer {}

/// A server whose tool list changes: `always` is always listed; `sometimes` only on odd
/// listings. Lists in two pages to exercise cursors.
#[derive(Clone, Default)]
pub struct ChangingServer {
    listings: Arc<AtomicUsize>,
}

impl ServerHandler for ChangingServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _cx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let cursor = request.and_then(|r| r.cursor);
        let n = if cursor.is_none() {
            self.listings.fetch_add(1, Ordering::SeqCst) + 1
        } else {
            self.listings.load(Ordering::SeqCst)
        };
        let schema = serde_json::json!({"type": "object", "properties": {}})
            .as_object()
            .cloned()
            .unwrap();
        let mut tools = vec![
            Tool::new("always", "Always here.", schema.clone())
                .with_annotations(ToolAnnotations::new().read_only(true)),
        ];
        if n % 2 == 1 {
            tools.push(Tool::new("sometimes", "Only on odd listings.", schema));
        }
        Ok(match cursor.as_deref() {
            None => {
                let mut page = ListToolsResult::with_all_items(tools[..1].to_vec());
                if tools.len() > 1 {
                    page.next_cursor = Some("page-2".into());
                }
                page
            }
            Some("page-2") => ListToolsResult::with_all_items(tools[1..].to_vec()),
            Some(_) => return Err(ErrorData::invalid_params("bad cursor", None)),
        })
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _cx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        Ok(CallToolResult::success(vec![ContentBlock::text(request.name.to_string())]).into())
    }
}

/// A server that serves whatever tool definitions the test sets (JSON, as MCP lists them:
/// `name`, `description`, `inputSchema`, ...), for scanning real and poisoned definitions.
#[derive(Clone, Default)]
pub struct ScriptedServer {
    tools: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl ScriptedServer {
    pub fn new(tools: Vec<serde_json::Value>) -> Self {
        Self {
            tools: Arc::new(Mutex::new(tools)),
        }
    }

    /// Serves `tools` from the next listing on (a rug pull, when they differ).
    pub fn set_tools(&self, tools: Vec<serde_json::Value>) {
        *self.tools.lock().unwrap() = tools;
    }
}

impl ServerHandler for ScriptedServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _cx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let tools: Vec<Tool> = self
            .tools
            .lock()
            .unwrap()
            .iter()
            .map(|t| serde_json::from_value(t.clone()).unwrap())
            .collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _cx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        // A tool named `explain_*` answers with a tool error that explains itself.
        if request.name.starts_with("explain_") {
            return Ok(CallToolResult::error(vec![ContentBlock::text(format!(
                "{} needs a project id: pass `project` (see the project list)",
                request.name
            ))])
            .into());
        }
        Ok(CallToolResult::success(vec![ContentBlock::text(request.name.to_string())]).into())
    }
}

/// A running test server; stops when dropped.
pub struct Running {
    pub url: String,
    stop: CancellationToken,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn serve_router(router: axum::Router, path: &str) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let shutdown = stop.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async move { shutdown.cancelled_owned().await })
            .await;
    });
    Running {
        url: format!("http://{addr}{path}"),
        stop,
    }
}

async fn require_token(
    State(token): State<Option<String>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if let Some(token) = token {
        let presented = request.headers().get("authorization").and_then(|v| v.to_str().ok());
        if presented != Some(format!("Bearer {token}").as_str()) {
            return StatusCode::UNAUTHORIZED.into_response();
        }
    }
    next.run(request).await
}

/// Serves `server` over Streamable HTTP at `/mcp`, requiring `Bearer <token>` if given.
pub async fn streamable_http<S>(server: S, token: Option<String>) -> Running
where
    S: ServerHandler + Clone + Send + Sync + 'static,
{
    let stop = CancellationToken::new();
    let config = StreamableHttpServerConfig::default()
        .with_cancellation_token(stop.child_token())
        .with_sse_keep_alive(None);
    let service: StreamableHttpService<S, LocalSessionManager> = StreamableHttpService::new(
        move || Ok(server.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let router = axum::Router::new()
        .nest_service("/mcp", service)
        .layer(axum::middleware::from_fn_with_state(token, require_token));
    let running = serve_router(router, "/mcp").await;
    // Tie the service's own token to the server's.
    let outer = running.stop.clone();
    tokio::spawn(async move {
        outer.cancelled().await;
        stop.cancel();
    });
    running
}

type Sessions = Arc<Mutex<HashMap<String, futures::channel::mpsc::UnboundedSender<RxJsonRpcMessage<RoleServer>>>>>;

/// Serves `NotesServer` over the legacy HTTP+SSE transport: `GET /sse`, `POST /messages`.
pub async fn legacy_sse() -> Running {
    let sessions: Sessions = Arc::default();
    let router = axum::Router::new()
        .route("/sse", get(sse_stream))
        .route("/messages", post(sse_message))
        .with_state(sessions);
    serve_router(router, "/sse").await
}

async fn sse_stream(
    State(sessions): State<Sessions>,
) -> Sse<impl futures::Stream<Item = Result<Event, std::convert::Infallible>>> {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let (to_server, from_client) = futures::channel::mpsc::unbounded::<RxJsonRpcMessage<RoleServer>>();
    let (to_client, from_server) = futures::channel::mpsc::unbounded::<TxJsonRpcMessage<RoleServer>>();
    sessions.lock().unwrap().insert(id.clone(), to_server);
    tokio::spawn(async move {
        if let Ok(running) = NotesServer::default().serve((to_client, from_client)).await {
            let _ = running.waiting().await;
        }
    });
    let endpoint = futures::stream::once(async move {
        Ok(Event::default()
            .event("endpoint")
            .data(format!("/messages?session={id}")))
    });
    let messages = from_server.map(|m| {
        Ok(Event::default()
            .event("message")
            .data(serde_json::to_string(&m).unwrap()))
    });
    Sse::new(endpoint.chain(messages))
}

async fn sse_message(
    State(sessions): State<Sessions>,
    Query(query): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> StatusCode {
    let Some(sender) = query
        .get("session")
        .and_then(|id| sessions.lock().unwrap().get(id).cloned())
    else {
        return StatusCode::NOT_FOUND;
    };
    let Ok(message) = serde_json::from_slice::<RxJsonRpcMessage<RoleServer>>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    if sender.unbounded_send(message).is_ok() {
        StatusCode::ACCEPTED
    } else {
        StatusCode::GONE
    }
}

/// An endpoint that accepts connections and never answers in time.
pub async fn slow(delay: Duration) -> Running {
    let router = axum::Router::new().route(
        "/mcp",
        any(move || async move {
            tokio::time::sleep(delay).await;
            StatusCode::OK
        }),
    );
    serve_router(router, "/mcp").await
}

/// An endpoint that answers every request with 200 and something that is not JSON-RPC.
pub async fn garbage() -> Running {
    let router = axum::Router::new().route(
        "/mcp",
        any(|headers: HeaderMap| async move {
            let _ = headers;
            (
                [("content-type", "application/json")],
                "{\"hello\": \"this is not JSON-RPC\"}",
            )
        }),
    );
    serve_router(router, "/mcp").await
}

/// A loopback URL where nothing listens.
pub fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}/mcp")
}

/// A server for governed-invocation tests: `echo` (text in, text out), `wipe` (a
/// destructive tool), `fail` (a JSON-RPC error), `big` (a large output), `nap` (sleeps
/// `ms`). Counts the calls of each tool; `drift()` changes `echo`'s description, as a rug
/// pull would.
#[derive(Clone, Default)]
pub struct GovServer {
    pub calls: Arc<Mutex<HashMap<String, usize>>>,
    drifted: Arc<std::sync::atomic::AtomicBool>,
}

impl GovServer {
    pub fn drift(&self) {
        self.drifted.store(true, Ordering::SeqCst);
    }

    pub fn calls_of(&self, tool: &str) -> usize {
        self.calls.lock().unwrap().get(tool).copied().unwrap_or(0)
    }

    fn tools(&self) -> Vec<Tool> {
        let object = |value: serde_json::Value| value.as_object().cloned().unwrap();
        let echo_description = if self.drifted.load(Ordering::SeqCst) {
            "Echo the text back, in capitals."
        } else {
            "Echo the text back."
        };
        vec![
            Tool::new(
                "echo",
                echo_description,
                object(serde_json::json!({"type": "object", "properties": {"text": {"type": "string", "maxLength": 100}},
                                          "required": ["text"], "additionalProperties": false})),
            )
            .with_annotations(ToolAnnotations::new().read_only(true)),
            Tool::new(
                "wipe",
                "Remove every record of a table.",
                object(serde_json::json!({"type": "object", "properties": {"table": {"type": "string"}}, "required": ["table"]})),
            )
            .with_annotations(ToolAnnotations::new().destructive(true)),
            Tool::new("fail", "Always fails.", object(serde_json::json!({"type": "object"})))
                .with_annotations(ToolAnnotations::new().read_only(true)),
            Tool::new("big", "Returns a large text.", object(serde_json::json!({"type": "object"})))
                .with_annotations(ToolAnnotations::new().read_only(true)),
            Tool::new(
                "nap",
                "Sleeps, then answers.",
                object(serde_json::json!({"type": "object", "properties": {"ms": {"type": "integer", "minimum": 0}}})),
            )
            .with_annotations(ToolAnnotations::new().read_only(true)),
        ]
    }
}

impl ServerHandler for GovServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _cx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _cx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let name = request.name.to_string();
        *self.calls.lock().unwrap().entry(name.clone()).or_default() += 1;
        let args = request.arguments.unwrap_or_default();
        let text = match name.as_str() {
            "echo" => args.get("text").and_then(|t| t.as_str()).unwrap_or_default().to_owned(),
            "wipe" => format!("wiped {}", args.get("table").and_then(|t| t.as_str()).unwrap_or("?")),
            "fail" => return Err(ErrorData::internal_error("the tool broke", None)),
            "big" => "x".repeat(64 * 1024),
            "nap" => {
                let ms = args.get("ms").and_then(serde_json::Value::as_u64).unwrap_or(0);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                "rested".into()
            }
            other => return Err(ErrorData::invalid_params(format!("no tool {other}"), None)),
        };
        Ok(CallToolResult::success(vec![ContentBlock::text(text)]).into())
    }
}

/// The inputs an OPA test server received.
pub type OpaInputs = Arc<Mutex<Vec<serde_json::Value>>>;

/// A small OPA-compatible server: `POST /v1/data/aos/invoke` with `{"input": ...}`.
/// Denies `wipe`, asks approval for `nap`, allows the rest; answers 500 for `fail`.
/// `url` is the server's base (no path).
pub async fn opa() -> (Running, OpaInputs) {
    let inputs: OpaInputs = Arc::default();
    let router = axum::Router::new()
        .route(
            "/v1/data/aos/invoke",
            post(
                |State(inputs): State<OpaInputs>, axum::Json(body): axum::Json<serde_json::Value>| async move {
                    let input = body["input"].clone();
                    inputs.lock().unwrap().push(input.clone());
                    let result = match input["tool"]["name"].as_str() {
                        Some("wipe") => serde_json::json!({"deny": ["opa: wipe is never allowed"]}),
                        Some("nap") => serde_json::json!({"require_approval": ["opa: naps need a manager"]}),
                        Some("fail") => return (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
                        _ => serde_json::json!({"deny": [], "flag": []}),
                    };
                    axum::Json(serde_json::json!({"result": result, "decision_id": "opa-decision-1"})).into_response()
                },
            ),
        )
        .with_state(Arc::clone(&inputs));
    let running = serve_router(router, "").await;
    (running, inputs)
}
