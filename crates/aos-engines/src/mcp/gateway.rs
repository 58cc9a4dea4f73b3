//! AOS as an MCP server: each tenant's governed catalog behind one endpoint.
//!
//! The protocol is rmcp's: [`McpGateway::handle_http`] feeds a request to rmcp's
//! Streamable HTTP service in stateless mode (no `Mcp-Session-Id`; every request carries
//! its credentials and, for 2026-07-28 clients, its protocol version), so any replica can
//! answer any request — nothing is kept between requests but the database. Clients of the
//! initialize era (2025-03-26 .. 2025-11-25) get their `initialize` answered and then send
//! plain requests; 2026-07-28 clients use `server/discover` and per-request metadata, and
//! rmcp checks their `Mcp-Method` / `Mcp-Name` headers against the body.
//! [`McpGateway::serve_socket`] runs the same handler over one WebSocket connection.
//!
//! What the catalog holds and what a call does is the backend's business
//! ([`GatewayBackend`], implemented by the spine over the governed pipeline); this module
//! only speaks MCP: names, pagination, mapping outcomes to tool results and errors.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{Sink, SinkExt, Stream, StreamExt};
use http_body_util::{BodyExt, Full};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ClientJsonRpcMessage, ContentBlock, Implementation,
    JsonObject, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, ServerJsonRpcMessage,
    SubscriptionFilter, Tool, ToolAnnotations,
};
use rmcp::service::{RequestContext, SubscriptionContext};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::Value;
use uuid::Uuid;

/// Longest tool name MCP allows.
pub const MAX_NAME: usize = 128;
/// Tools per `tools/list` page.
pub const PAGE_SIZE: usize = 100;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One callable tool as the backend sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogTool {
    pub server_id: Uuid,
    pub server_name: String,
    pub tool_id: Uuid,
    pub tool_name: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub input_schema: Value,
    pub output_schema: Option<Value>,
    pub annotations: Option<Value>,
}

/// A catalog entry with its MCP name.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTool {
    pub name: String,
    /// The name it would have had without a collision (reported to admins).
    pub collided_with: Option<String>,
    pub tool: CatalogTool,
}

/// `_meta` of a call that the governed pipeline records.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallMeta {
    pub run_id: Option<String>,
    pub trace_id: Option<String>,
}

/// How a governed call ended, as the agent should see it.
#[derive(Debug, Clone, PartialEq)]
pub enum CallOutcome {
    /// The upstream's result (a `CallToolResult` as JSON), passed through.
    Completed(Value),
    /// Not run or not successful: a tool result with `isError: true` and this text.
    Refused(String),
}

/// Why the gateway could not answer a request.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The caller may not use the gateway (its scope, or its tenant's state).
    #[error("{0}")]
    Forbidden(String),
    /// Something on AOS's side failed; the message is safe to show.
    #[error("{0}")]
    Internal(String),
}

/// What the gateway needs from the rest of AOS, per authenticated caller.
pub trait GatewayBackend: Send + Sync + 'static {
    type Principal: Clone + Send + Sync + 'static;

    /// The caller's callable tools.
    fn catalog<'a>(&'a self, who: &'a Self::Principal) -> BoxFuture<'a, Result<Vec<CatalogTool>, GatewayError>>;

    /// Runs one call through the governed pipeline.
    fn call<'a>(
        &'a self,
        who: &'a Self::Principal,
        tool: &'a CatalogTool,
        arguments: Value,
        meta: CallMeta,
    ) -> BoxFuture<'a, Result<CallOutcome, GatewayError>>;

    /// A value that changes whenever the caller's catalog does (polled for
    /// `notifications/tools/list_changed`).
    fn catalog_revision<'a>(&'a self, who: &'a Self::Principal) -> BoxFuture<'a, Result<String, GatewayError>>;

    /// A stable identity of the caller (e.g. `key:<id>`), to remember what it was shown.
    fn principal_id(&self, who: &Self::Principal) -> String;

    /// Ticks whenever credentials may have been revoked (on this replica at once, on the
    /// others within their credential poll): an open WebSocket re-checks its caller then,
    /// not only on its catalog poll.
    fn credential_changes(&self) -> Option<tokio::sync::watch::Receiver<i64>> {
        None
    }
}

/// The catalog revision each caller was last shown by `tools/list` on this replica. A
/// `subscriptions/listen` is acknowledged by rmcp before the handler runs, so a change
/// committed in between would otherwise be taken as the baseline and never announced;
/// comparing against what the caller actually saw closes that gap.
#[derive(Debug, Default)]
struct Shown {
    revisions: std::sync::Mutex<HashMap<String, String>>,
}

impl Shown {
    const MAX: usize = 100_000;

    fn remember(&self, who: String, revision: String) {
        let mut map = self.revisions.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= Self::MAX && !map.contains_key(&who) {
            map.clear();
        }
        map.insert(who, revision);
    }

    fn last(&self, who: &str) -> Option<String> {
        self.revisions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(who)
            .cloned()
    }
}

/// A tool's MCP name before any collision suffix: `{server}.{tool}`, each part reduced to
/// `[A-Za-z0-9_-]`. Agents' capability selectors match this name.
pub fn base_name(server_name: &str, tool_name: &str) -> String {
    truncate(
        &format!("{}.{}", truncate(&sanitize(server_name), 64), sanitize(tool_name)),
        MAX_NAME,
    )
}

fn sanitize(part: &str) -> String {
    let cleaned: String = part
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if cleaned.is_empty() { "_".to_owned() } else { cleaned }
}

fn truncate(name: &str, max: usize) -> String {
    name.chars().take(max).collect()
}

/// `{server}.{tool}` names within MCP's rules (1..=128 of `[A-Za-z0-9_.-]`; the dot only
/// as the separator). Input must be in catalog order (server name, tool name, ids), which
/// makes the result deterministic: the first holder keeps a name, later ones get `-2`,
/// `-3`, ... and report what they collided with.
pub fn name_catalog(tools: Vec<CatalogTool>) -> Vec<NamedTool> {
    let mut taken: HashMap<String, usize> = HashMap::new();
    let mut named = Vec::with_capacity(tools.len());
    for tool in tools {
        let base = base_name(&tool.server_name, &tool.tool_name);
        let mut name = base.clone();
        let mut collided_with = None;
        if taken.contains_key(&name) {
            collided_with = Some(base.clone());
            let mut n = taken.get(&base).copied().unwrap_or(1);
            loop {
                n += 1;
                let suffix = format!("-{n}");
                let candidate = format!("{}{suffix}", truncate(&base, MAX_NAME - suffix.len()));
                if !taken.contains_key(&candidate) {
                    taken.insert(base.clone(), n);
                    name = candidate;
                    break;
                }
            }
        }
        taken.entry(name.clone()).or_insert(1);
        named.push(NamedTool {
            name,
            collided_with,
            tool,
        });
    }
    named
}

fn object(value: &Value) -> JsonObject {
    value.as_object().cloned().unwrap_or_default()
}

fn to_mcp(named: &NamedTool) -> Tool {
    let t = &named.tool;
    let mut tool = Tool::new(
        named.name.clone(),
        t.description.clone().unwrap_or_default(),
        Arc::new(object(&t.input_schema)),
    );
    if t.description.is_none() {
        tool.description = None;
    }
    if let Some(title) = &t.title {
        tool = tool.with_title(title.clone());
    }
    if let Some(schema) = t.output_schema.as_ref().filter(|v| v.is_object()) {
        tool = tool.with_raw_output_schema(Arc::new(object(schema)));
    }
    if let Some(annotations) = t
        .annotations
        .as_ref()
        .and_then(|a| serde_json::from_value::<ToolAnnotations>(a.clone()).ok())
    {
        tool = tool.with_annotations(annotations);
    }
    tool
}

fn meta_string(meta: &rmcp::model::RequestMetaObject, key: &str) -> Option<String> {
    meta.get(key)
        .and_then(|v| v.as_str())
        .map(|s| s.chars().take(200).collect())
}

/// Settings of the gateway endpoint.
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    /// Largest JSON-RPC message accepted.
    pub max_message_bytes: usize,
    /// How often a listening client's catalog is checked for changes.
    pub notify_poll: Duration,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            max_message_bytes: 1024 * 1024,
            notify_poll: Duration::from_secs(1),
        }
    }
}

/// The MCP server one caller talks to. Cheap to clone.
pub struct GatewayHandler<B: GatewayBackend> {
    backend: Arc<B>,
    /// Set for a WebSocket connection; HTTP requests carry theirs in the request.
    principal: Option<B::Principal>,
    notify_poll: Duration,
    shown: Arc<Shown>,
}

impl<B: GatewayBackend> Clone for GatewayHandler<B> {
    fn clone(&self) -> Self {
        Self {
            backend: Arc::clone(&self.backend),
            principal: self.principal.clone(),
            notify_poll: self.notify_poll,
            shown: Arc::clone(&self.shown),
        }
    }
}

fn internal(err: GatewayError) -> ErrorData {
    match err {
        GatewayError::Forbidden(msg) => ErrorData::invalid_request(msg, None),
        GatewayError::Internal(msg) => ErrorData::internal_error(msg, None),
    }
}

impl<B: GatewayBackend> GatewayHandler<B> {
    fn principal(&self, extensions: &rmcp::model::Extensions) -> Result<B::Principal, ErrorData> {
        if let Some(principal) = &self.principal {
            return Ok(principal.clone());
        }
        extensions
            .get::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<B::Principal>())
            .cloned()
            .ok_or_else(|| ErrorData::internal_error("no authenticated caller on this request", None))
    }

    async fn named(&self, who: &B::Principal) -> Result<Vec<NamedTool>, ErrorData> {
        Ok(name_catalog(self.backend.catalog(who).await.map_err(internal)?))
    }

    /// The caller's catalog, remembering its revision as shown to the caller.
    async fn named_and_shown(&self, who: &B::Principal) -> Result<Vec<NamedTool>, ErrorData> {
        let tools = self.backend.catalog(who).await.map_err(internal)?;
        self.shown
            .remember(self.backend.principal_id(who), catalog_revision(&tools));
        Ok(name_catalog(tools))
    }
}

impl<B: GatewayBackend> ServerHandler for GatewayHandler<B> {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .build(),
        )
        .with_server_info(Implementation::new("aos", env!("CARGO_PKG_VERSION")))
        .with_instructions(
            "AOS governed tool catalog: every call is checked by policy, may wait for an approval, and is audited.",
        )
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let who = self.principal(&context.extensions)?;
        let named = self.named_and_shown(&who).await?;
        // The cursor is the last name of the previous page: names are unique and sorted
        // deterministically, so pages stay stable while the catalog does.
        let mut sorted: Vec<&NamedTool> = named.iter().collect();
        sorted.sort_by(|a, b| a.name.cmp(&b.name));
        let after = request.and_then(|r| r.cursor);
        let start = match &after {
            None => 0,
            Some(cursor) => sorted.partition_point(|t| t.name.as_str() <= cursor.as_str()),
        };
        let page: Vec<&NamedTool> = sorted.iter().skip(start).take(PAGE_SIZE).copied().collect();
        let next = if start + page.len() < sorted.len() {
            page.last().map(|t| t.name.clone())
        } else {
            None
        };
        let mut result = ListToolsResult::with_all_items(page.into_iter().map(to_mcp).collect());
        result.next_cursor = next;
        Ok(result)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let who = self.principal(&context.extensions)?;
        let named = self.named(&who).await?;
        let Some(entry) = named.into_iter().find(|t| t.name == request.name) else {
            return Err(ErrorData::invalid_params(
                format!(
                    "unknown tool: {}",
                    request.name.chars().take(MAX_NAME).collect::<String>()
                ),
                None,
            ));
        };
        let meta = CallMeta {
            run_id: meta_string(&context.meta, "run_id"),
            trace_id: meta_string(&context.meta, "trace_id"),
        };
        let arguments = Value::Object(request.arguments.unwrap_or_default());
        let outcome = self
            .backend
            .call(&who, &entry.tool, arguments, meta)
            .await
            .map_err(internal)?;
        let result = match outcome {
            CallOutcome::Completed(value) => serde_json::from_value::<CallToolResult>(value).unwrap_or_else(|_| {
                CallToolResult::error(vec![ContentBlock::text("the tool answered a malformed result")])
            }),
            CallOutcome::Refused(text) => CallToolResult::error(vec![ContentBlock::text(text)]),
        };
        Ok(result.into())
    }

    fn accepted_subscription_filter(&self, requested: &SubscriptionFilter) -> Option<SubscriptionFilter> {
        Some(requested.supported_by(&self.get_info().capabilities))
    }

    /// 2026-07-28 `subscriptions/listen`: pushes `tools/list_changed` when the caller's
    /// catalog revision moves (polled, so a change on any replica reaches every listener).
    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        let who = self.principal(&context.request_context().extensions)?;
        // The baseline is what the caller last saw here, if it listed; else the catalog now.
        let mut last = match self.shown.last(&self.backend.principal_id(&who)) {
            Some(shown) => shown,
            None => self.backend.catalog_revision(&who).await.map_err(internal)?,
        };
        let mut tick = tokio::time::interval(self.notify_poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = context.cancelled() => return Ok(()),
                _ = tick.tick() => {}
            }
            let now = match self.backend.catalog_revision(&who).await {
                Ok(now) => now,
                Err(err) => {
                    tracing::warn!(%err, "catalog revision unavailable; will retry");
                    continue;
                }
            };
            if now != last {
                last = now;
                if context.sink().notify_tool_list_changed().await.is_err() {
                    return Ok(());
                }
            }
        }
    }
}

/// A prepared catalog entry as the gateway sees it.
pub fn catalog_tool(prepared: &super::invoke::Prepared) -> CatalogTool {
    let (server, row) = (&prepared.server, &prepared.tool);
    CatalogTool {
        server_id: server.id.0,
        server_name: server.name.clone(),
        tool_id: row.id.0,
        tool_name: row.name.clone(),
        title: row.title.clone(),
        description: row.description.clone(),
        input_schema: row.input_schema.0.clone(),
        output_schema: row.output_schema.as_ref().map(|v| v.0.clone()),
        annotations: row.annotations.as_ref().map(|v| v.0.clone()),
    }
}

/// A fingerprint of a catalog: changes when a tool is added, removed, renamed or redefined.
pub fn catalog_revision(tools: &[CatalogTool]) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for tool in name_catalog(tools.to_vec()) {
        hasher.update(tool.name.as_bytes());
        hasher.update([0]);
        hasher.update(tool.tool.tool_id.as_bytes());
        hasher.update(tool.tool.description.as_deref().unwrap_or_default().as_bytes());
        hasher.update([0]);
        hasher.update(tool.tool.input_schema.to_string().as_bytes());
        hasher.update([0]);
    }
    format!("{:x}", hasher.finalize())
}

/// A plain HTTP request for the gateway (the API layer translates its framework's).
pub struct GatewayRequest {
    pub method: String,
    pub uri: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Bytes,
}

/// The gateway's answer: status, headers and a body that may stream (SSE).
pub struct GatewayResponse {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Pin<Box<dyn Stream<Item = Bytes> + Send>>,
}

/// The endpoint: one per process (or per worker), shared by every tenant.
pub struct McpGateway<B: GatewayBackend> {
    backend: Arc<B>,
    settings: GatewaySettings,
    shown: Arc<Shown>,
    http: StreamableHttpService<GatewayHandler<B>, NeverSessionManager>,
}

impl<B: GatewayBackend> McpGateway<B> {
    pub fn new(backend: Arc<B>, settings: GatewaySettings) -> Self {
        let shown = Arc::new(Shown::default());
        let handler = GatewayHandler {
            backend: Arc::clone(&backend),
            principal: None,
            notify_poll: settings.notify_poll,
            shown: Arc::clone(&shown),
        };
        // Host and Origin are checked (with AOS's error envelope) before a request gets
        // here, so rmcp's own checks are off; stateless so that any replica can answer.
        let config = StreamableHttpServerConfig::default()
            .with_legacy_session_mode(false)
            .with_json_response(true)
            .with_max_request_body_bytes(settings.max_message_bytes)
            .disable_allowed_hosts()
            .disable_allowed_origins();
        let http = StreamableHttpService::new(
            move || Ok(handler.clone()),
            Arc::new(NeverSessionManager::default()),
            config,
        );
        Self {
            backend,
            settings,
            shown,
            http,
        }
    }

    /// Answers one Streamable HTTP request of an authenticated caller.
    pub async fn handle_http(&self, principal: B::Principal, request: GatewayRequest) -> GatewayResponse {
        if request.method.eq_ignore_ascii_case("POST")
            && let Some((code, message)) = framing_error(&request.body)
        {
            return json_rpc_error(400, code, &message);
        }
        let mut builder = http::Request::builder()
            .method(request.method.as_str())
            .uri(request.uri.as_str());
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_slice());
        }
        let mut http_request = match builder.body(Full::new(request.body)) {
            Ok(r) => r,
            Err(err) => {
                return GatewayResponse {
                    status: 400,
                    headers: vec![("content-type".into(), b"text/plain".to_vec())],
                    body: Box::pin(futures::stream::once(async move {
                        Bytes::from(format!("bad request: {err}"))
                    })),
                };
            }
        };
        http_request.extensions_mut().insert(principal);
        let response = self.http.handle(http_request).await;
        let (parts, body) = response.into_parts();
        let headers = parts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec()))
            .collect();
        let body = body
            .into_data_stream()
            .map(|chunk: Result<Bytes, Infallible>| chunk.unwrap_or_else(|never| match never {}));
        GatewayResponse {
            status: parts.status.as_u16(),
            headers,
            body: Box::pin(body),
        }
    }

    /// Serves one WebSocket connection (text frames in and out, one JSON-RPC message
    /// each) until either side closes. Catalog changes are pushed as
    /// `notifications/tools/list_changed` for as long as the connection lives. Returns
    /// why the server ended it (the caller's credential stopped being good), or `None`
    /// when the client went away.
    pub async fn serve_socket<I, O>(&self, principal: B::Principal, incoming: I, outgoing: O) -> Option<String>
    where
        I: Stream<Item = String> + Send + Unpin + 'static,
        O: Sink<String> + Send + Unpin + 'static,
    {
        let handler = GatewayHandler {
            backend: Arc::clone(&self.backend),
            principal: Some(principal.clone()),
            notify_poll: self.settings.notify_poll,
            shown: Arc::clone(&self.shown),
        };
        let (to_service, from_socket) = futures::channel::mpsc::channel::<ClientJsonRpcMessage>(32);
        let (to_socket, mut from_service) = futures::channel::mpsc::channel::<ServerJsonRpcMessage>(32);
        let max = self.settings.max_message_bytes;
        let (errors_tx, mut errors_rx) = futures::channel::mpsc::channel::<String>(8);
        // Socket → service: a frame that is not a JSON-RPC message gets a parse error
        // back on the socket and the connection lives on.
        let reader = tokio::spawn({
            let mut to_service = to_service;
            let mut errors_tx = errors_tx;
            let mut incoming = incoming;
            async move {
                while let Some(text) = incoming.next().await {
                    if text.len() > max {
                        let _ = errors_tx.send(jsonrpc_error(-32600, "message too large")).await;
                        continue;
                    }
                    match serde_json::from_str::<ClientJsonRpcMessage>(&text) {
                        Ok(message) => {
                            if to_service.send(message).await.is_err() {
                                break;
                            }
                        }
                        Err(_) => {
                            let code = if serde_json::from_str::<Value>(&text).is_ok() {
                                -32600
                            } else {
                                -32700
                            };
                            let _ = errors_tx.send(jsonrpc_error(code, "not a JSON-RPC message")).await;
                        }
                    }
                }
            }
        });
        // Service → socket, plus list_changed pushes.
        let backend = Arc::clone(&self.backend);
        let poll = self.settings.notify_poll;
        let writer = tokio::spawn(async move {
            let mut outgoing = outgoing;
            let mut last = backend.catalog_revision(&principal).await.ok();
            let mut revocations = backend.credential_changes();
            let mut tick = tokio::time::interval(poll);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // Once the reader is gone its channel answers None at once, forever: stop
            // polling it, or this loop would spin and starve the worker.
            let mut errors_open = true;
            loop {
                let check = tokio::select! {
                    message = from_service.next() => match message {
                        Some(message) => {
                            if let Some(text) = serde_json::to_string(&message).ok()
                                && outgoing.send(text).await.is_err()
                            {
                                return None;
                            }
                            continue;
                        }
                        None => return None,
                    },
                    error = errors_rx.next(), if errors_open => {
                        errors_open = error.is_some();
                        if let Some(text) = error
                            && outgoing.send(text).await.is_err()
                        {
                            return None;
                        }
                        continue;
                    }
                    _ = tick.tick() => true,
                    changed = async {
                        match revocations.as_mut() {
                            Some(changes) => changes.changed().await.is_ok(),
                            None => std::future::pending().await,
                        }
                    } => {
                        if !changed {
                            revocations = None;
                        }
                        changed
                    }
                };
                if !check {
                    continue;
                }
                let now = match backend.catalog_revision(&principal).await {
                    Ok(now) => Some(now),
                    // The credential is no longer good (revoked, expired, tenant
                    // suspended): end the connection, saying why.
                    Err(GatewayError::Forbidden(why)) => {
                        tracing::info!(%why, "MCP WebSocket closed: the caller is no longer authorised");
                        return Some(why);
                    }
                    Err(_) => None,
                };
                if now.is_some() && now != last {
                    let changed = last.is_some();
                    last = now;
                    if changed
                        && outgoing
                            .send(r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#.to_owned())
                            .await
                            .is_err()
                    {
                        return None;
                    }
                }
            }
        });
        let service = async {
            match rmcp::serve_server(handler, (to_socket, from_socket)).await {
                Ok(running) => {
                    let _ = running.waiting().await;
                }
                Err(err) => tracing::info!(%err, "MCP WebSocket session did not start"),
            }
        };
        let mut writer = writer;
        let why = tokio::select! {
            () = service => None,
            ended = &mut writer => ended.ok().flatten(),
        };
        reader.abort();
        writer.abort();
        why
    }
}

fn jsonrpc_error(code: i64, message: &str) -> String {
    serde_json::json!({"jsonrpc": "2.0", "id": null, "error": {"code": code, "message": message}}).to_string()
}

/// JSON-RPC's own answer to a POSTed body that is not one JSON-RPC message (rmcp would
/// refuse it with 415, which MCP clients do not expect): -32700 for bytes that are not
/// JSON, -32600 for JSON that is not a request, notification or response (a batch
/// included: MCP 2025-06-18 removed batching).
fn framing_error(body: &[u8]) -> Option<(i64, String)> {
    let value: serde_json::Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        Err(err) => return Some((-32700, format!("Parse error: the body is not JSON ({err})"))),
    };
    let Some(message) = value.as_object() else {
        let what = if value.is_array() {
            "a JSON-RPC batch is not supported; send one message per request"
        } else {
            "the body is not a JSON-RPC message object"
        };
        return Some((-32600, format!("Invalid Request: {what}")));
    };
    if message.get("jsonrpc").and_then(serde_json::Value::as_str) != Some("2.0") {
        return Some((-32600, "Invalid Request: \"jsonrpc\" must be \"2.0\"".to_owned()));
    }
    let is_request = message.get("method").is_some_and(serde_json::Value::is_string);
    let is_response = message.contains_key("result") || message.contains_key("error");
    if !is_request && !is_response {
        return Some((
            -32600,
            "Invalid Request: a message needs a string \"method\" (or a \"result\"/\"error\")".to_owned(),
        ));
    }
    None
}

fn json_rpc_error(status: u16, code: i64, message: &str) -> GatewayResponse {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {"code": code, "message": message},
    });
    let bytes = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
    GatewayResponse {
        status,
        headers: vec![("content-type".into(), b"application/json".to_vec())],
        body: Box::pin(futures::stream::once(async move { bytes })),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn tool(server: &str, name: &str, n: u128) -> CatalogTool {
        CatalogTool {
            server_id: Uuid::from_u128(n),
            server_name: server.into(),
            tool_id: Uuid::from_u128(n + 1000),
            tool_name: name.into(),
            title: None,
            description: None,
            input_schema: serde_json::json!({"type": "object"}),
            output_schema: None,
            annotations: None,
        }
    }

    #[test]
    fn names_follow_the_mcp_rules_and_collisions_resolve_deterministically() {
        let named = name_catalog(vec![
            tool("Git Hub", "create issue", 1),
            tool("git.hub", "create_issue", 2),
            tool("Git_Hub", "create issue", 3),
            tool(&"s".repeat(300), &"t".repeat(300), 4),
            tool("", "", 5),
        ]);
        let names: Vec<&str> = named.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names[0], "Git_Hub.create_issue");
        assert_eq!(names[1], "git_hub.create_issue");
        assert_eq!(names[2], "Git_Hub.create_issue-2");
        assert_eq!(named[2].collided_with.as_deref(), Some("Git_Hub.create_issue"));
        assert_eq!(names[3].len(), MAX_NAME);
        assert_eq!(names[4], "_._");
        for name in &names {
            assert!(!name.is_empty() && name.len() <= MAX_NAME);
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            );
        }
        // Same input, same names.
        let again = name_catalog(named.iter().map(|t| t.tool.clone()).collect());
        assert_eq!(again, named);
    }
}
