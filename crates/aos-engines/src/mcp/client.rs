//! Reaching a registered MCP server through rmcp: Streamable HTTP (probing the stateless
//! 2026-07-28 `server/discover` handshake first, falling back to `initialize`), the legacy
//! HTTP+SSE transport ([`super::sse`]), and STDIO children from the operator's allowlist.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub use aos_models::mcp::Transport as TransportKind;
use aos_models::mcp::Transport;
use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, ClientRequest, Implementation, PaginatedRequestParams,
    PingRequest, ProtocolVersion,
};
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientLifecycleMode, ClientServiceExt, RoleClient, ServiceExt};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;

use super::credentials::{CredentialSettings, Credentials};
use super::sse::LegacySseTransport;
use crate::error::{EngineError, EngineResult};
use crate::outbound::{Outbound, OutboundPolicy};

/// An operator-approved command a tenant may register as a STDIO server
/// (`url = "stdio://NAME"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdioCommand {
    pub command: String,
    #[serde(default)]
    pub args: Vec<String>,
    /// The child's whole environment (nothing is inherited).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// `[mcp]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct McpSettings {
    pub outbound: OutboundPolicy,
    pub credentials: CredentialSettings,
    /// The STDIO allowlist, by name.
    pub stdio: BTreeMap<String, StdioCommand>,
    /// Budget for connecting plus one request, in milliseconds.
    pub request_timeout_ms: u64,
    /// Tools accepted from one server; more is an error.
    pub max_tools: usize,
    /// Health checks: every active server this often (0 disables the scheduler).
    pub health_interval_secs: u64,
    /// Health checks running at once.
    pub health_concurrency: usize,
    /// A check slower than this marks the server DEGRADED.
    pub slow_ms: u64,
    /// Consecutive failures before OFFLINE (fewer: DEGRADED).
    pub offline_after_failures: i32,
    /// Default budget for one tool call (connect + call), in milliseconds; a server's
    /// `call_timeout_ms` overrides it.
    pub call_timeout_ms: u64,
    /// Default cap on a tool's output (its JSON), in bytes; a server's `max_output_bytes`
    /// overrides it.
    pub max_output_bytes: usize,
    /// Tool calls to a Streamable HTTP server reuse one session for this long (seconds;
    /// 0: a new session per call). Bounds how long a rotated credential may stay in use.
    pub session_reuse_secs: u64,
    /// How long past its call timeout an invocation may stay RUNNING before the reaper
    /// completes it as FAILURE `OUTCOME_UNKNOWN` (its outcome write was lost).
    pub stranded_grace_ms: u64,
}

impl Default for McpSettings {
    fn default() -> Self {
        Self {
            outbound: OutboundPolicy::default(),
            credentials: CredentialSettings::default(),
            stdio: BTreeMap::new(),
            request_timeout_ms: 15_000,
            max_tools: 1_000,
            health_interval_secs: 60,
            health_concurrency: 4,
            slow_ms: 2_000,
            offline_after_failures: 3,
            call_timeout_ms: 30_000,
            stranded_grace_ms: 30_000,
            max_output_bytes: 1024 * 1024,
            session_reuse_secs: 60,
        }
    }
}

/// A tool as the server described it.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedTool {
    pub name: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub input_schema: Value,
    pub output_schema: Option<Value>,
    pub annotations: Option<Value>,
}

/// What a handshake told us.
#[derive(Debug, Clone)]
pub struct Handshake {
    pub protocol_version: String,
    pub capabilities: Value,
    /// True for the stateless (2026-07-28) era: no `ping`, no session.
    pub stateless: bool,
}

/// An open connection to one server.
pub struct Session {
    service: RunningService<RoleClient, ClientConfig>,
    pub handshake: Handshake,
    timeout: Duration,
}

/// Where and how to reach a server.
#[derive(Debug, Clone)]
pub struct Target {
    pub tenant_id: uuid::Uuid,
    pub transport: Transport,
    pub url: String,
    pub credential_ref: Option<String>,
}

type PoolKey = (uuid::Uuid, Transport, String, Option<String>);

/// Open sessions kept for tool calls, by target.
#[derive(Default)]
struct SessionPool(std::sync::Mutex<std::collections::HashMap<PoolKey, (std::sync::Arc<Session>, Instant)>>);

impl std::fmt::Debug for SessionPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.lock().map(|m| m.len()).unwrap_or(0);
        f.debug_struct("SessionPool").field("sessions", &n).finish()
    }
}

const MAX_POOLED_SESSIONS: usize = 1024;

/// Engine state for MCP: the hardened client, credential resolution, settings.
#[derive(Debug, Clone)]
pub struct McpRuntime {
    pub settings: McpSettings,
    /// Governed calls per minute per server, on this replica (`max_calls_per_minute`).
    pub server_calls: std::sync::Arc<crate::proxy::settings::RateLimiter>,
    outbound: Outbound,
    credentials: Credentials,
    pool: std::sync::Arc<SessionPool>,
}

fn upstream<E: std::error::Error + 'static>(what: &str, err: E) -> EngineError {
    EngineError::Upstream(format!("{what}: {}", describe(&err)))
}

/// What went wrong talking to a customer's server, in words (connection refused, timed
/// out, TLS failed, refused by the outbound policy), never a type dump: rmcp's and
/// reqwest's own messages name generic types and the URL. Walks the error's sources and
/// names the first it recognises; otherwise the innermost message, without the URL.
pub fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    use std::io::ErrorKind;
    let mut chain = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        chain.push(e);
        next = e.source();
    }
    for e in &chain {
        if let Some(refused) = e.downcast_ref::<crate::outbound::Refused>() {
            return format!("refused by the outbound policy: {}", refused.0);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            let said = match io.kind() {
                ErrorKind::ConnectionRefused => Some("connection refused"),
                ErrorKind::TimedOut => Some("timed out"),
                ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => {
                    Some("the connection was closed by the server")
                }
                ErrorKind::UnexpectedEof => Some("the server closed the connection mid-answer"),
                ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable => Some("the host is unreachable"),
                ErrorKind::NotFound => Some("the command or address was not found"),
                _ => None,
            };
            if let Some(said) = said {
                return said.to_owned();
            }
        }
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return format!("TLS failed: {tls}");
        }
        if let Some(http) = e.downcast_ref::<reqwest::Error>() {
            if http.is_timeout() {
                return "timed out".to_owned();
            }
            if let Some(status) = http.status() {
                return format!("the server answered HTTP {}", status.as_u16());
            }
        }
    }
    let innermost = chain.last().map(|e| e.to_string()).unwrap_or_default();
    let text = if innermost.contains("dns error") || innermost.contains("failed to lookup address") {
        "the host name does not resolve".to_owned()
    } else {
        innermost
    };
    // No URLs (they may carry a path the tenant did not mean to show) and no type paths.
    text.split_whitespace()
        .filter(|w| !w.contains("://") && !w.contains("::"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn client_config() -> ClientConfig {
    ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("aos", env!("CARGO_PKG_VERSION")),
    )
    .with_protocol_version(ProtocolVersion::V_2025_11_25)
}

impl McpRuntime {
    pub fn new(settings: McpSettings) -> Result<Self, String> {
        let outbound = Outbound::new(settings.outbound.clone()).map_err(|e| format!("mcp.outbound: {e}"))?;
        let credentials = Credentials::new(settings.credentials.clone())?;
        for (name, command) in &settings.stdio {
            if command.command.trim().is_empty() {
                return Err(format!("mcp.stdio.{name}.command: must not be empty"));
            }
        }
        Ok(Self {
            settings,
            outbound,
            credentials,
            pool: std::sync::Arc::default(),
            server_calls: std::sync::Arc::default(),
        })
    }

    fn pool_key(target: &Target) -> PoolKey {
        (
            target.tenant_id,
            target.transport,
            target.url.clone(),
            target.credential_ref.clone(),
        )
    }

    /// A session for a tool call: a pooled one (Streamable HTTP, younger than
    /// `session_reuse_secs`) or a new one. The flag says whether it is pooled (the caller
    /// must not close it).
    pub async fn call_session(&self, target: &Target) -> EngineResult<(std::sync::Arc<Session>, bool)> {
        let reuse = Duration::from_secs(self.settings.session_reuse_secs);
        if target.transport != Transport::Http || reuse.is_zero() {
            return Ok((std::sync::Arc::new(self.connect(target).await?), false));
        }
        let key = Self::pool_key(target);
        let fresh = self.pool.0.lock().ok().and_then(|pool| {
            pool.get(&key)
                .filter(|(_, opened)| opened.elapsed() < reuse)
                .map(|(session, _)| std::sync::Arc::clone(session))
        });
        if let Some(session) = fresh {
            return Ok((session, true));
        }
        let session = std::sync::Arc::new(self.connect_with(target, true).await?);
        if let Ok(mut pool) = self.pool.0.lock() {
            if pool.len() >= MAX_POOLED_SESSIONS {
                pool.retain(|_, (_, opened)| opened.elapsed() < reuse);
            }
            if pool.len() < MAX_POOLED_SESSIONS {
                pool.insert(key, (std::sync::Arc::clone(&session), Instant::now()));
            }
        }
        Ok((session, true))
    }

    /// Drops a pooled session after a failure, so the next call opens a fresh one.
    pub fn discard(&self, target: &Target, session: &std::sync::Arc<Session>) {
        if let Ok(mut pool) = self.pool.0.lock() {
            let key = Self::pool_key(target);
            if pool.get(&key).is_some_and(|(s, _)| std::sync::Arc::ptr_eq(s, session)) {
                pool.remove(&key);
            }
        }
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.settings.request_timeout_ms.max(100))
    }

    /// Validates a registration's transport and URL; returns the URL to store, normalised
    /// (lower-case host, no default port, no fragment, no trailing slash after a path), so
    /// the same server cannot be registered twice under two spellings.
    pub fn check_target(&self, transport: Transport, url: &str) -> EngineResult<String> {
        match transport {
            Transport::Http | Transport::Sse => self
                .outbound
                .check_url(url)
                .map(|mut u| {
                    u.set_fragment(None);
                    let path = u.path().to_owned();
                    if path.len() > 1 && path.ends_with('/') {
                        u.set_path(path.trim_end_matches('/'));
                    }
                    u.to_string()
                })
                .map_err(|e| EngineError::invalid("url", e.to_string())),
            Transport::Stdio => {
                let name = url
                    .strip_prefix("stdio://")
                    .ok_or_else(|| EngineError::invalid("url", "STDIO servers are registered as stdio://NAME"))?;
                if self.settings.stdio.contains_key(name) {
                    Ok(url.to_owned())
                } else {
                    Err(EngineError::invalid(
                        "url",
                        format!("{name:?} is not a STDIO command the operator allows (see mcp.stdio)"),
                    ))
                }
            }
        }
    }

    /// The network half of a registration's URL check (run before the write transaction,
    /// never inside it): a host that resolves only to private or reserved addresses is
    /// refused with 422 naming `url`, as a literal private address is.
    pub async fn check_target_resolves(&self, transport: Transport, url: &str) -> EngineResult<()> {
        if transport == Transport::Stdio {
            return Ok(());
        }
        let url = self
            .outbound
            .check_url(url)
            .map_err(|e| EngineError::invalid("url", e.to_string()))?;
        self.outbound
            .check_resolves(&url)
            .await
            .map_err(|e| EngineError::invalid("url", e.to_string()))
    }

    /// An upstream failure in words: the error's own cause when it names one, else what a
    /// TCP-level try of the URL finds (connection refused, timed out, the outbound policy).
    async fn explain<E: std::error::Error + 'static>(&self, what: &str, url: &url::Url, err: E) -> EngineError {
        let described = describe(&err);
        let known = [
            "refused",
            "timed out",
            "TLS",
            "resolve",
            "unreachable",
            "closed",
            "HTTP ",
        ];
        if known.iter().any(|k| described.contains(k)) {
            return EngineError::Upstream(format!("{what}: {described}"));
        }
        match self.outbound.diagnose(url).await {
            Some(reason) => EngineError::Upstream(format!("{what}: {reason}")),
            None => EngineError::Upstream(format!("{what}: {described}")),
        }
    }

    /// Connects and performs the handshake, within the request timeout.
    pub async fn connect(&self, target: &Target) -> EngineResult<Session> {
        self.connect_with(target, false).await
    }

    /// `reinit`: a long-lived session re-initialises itself when the server forgot it
    /// (HTTP 404: the server did not process the request, so resending is safe).
    async fn connect_with(&self, target: &Target, reinit: bool) -> EngineResult<Session> {
        let credential = match &target.credential_ref {
            Some(reference) => Some(self.credentials.resolve(target.tenant_id, reference).await?),
            None => None,
        };
        let timeout = self.timeout();
        let started = Instant::now();
        let service = tokio::time::timeout(timeout, self.open(target, credential, timeout, reinit))
            .await
            .map_err(|_| EngineError::Upstream(format!("no answer within {} ms", timeout.as_millis())))??;
        let info = service
            .peer_info()
            .ok_or_else(|| EngineError::Upstream("the server sent no handshake".into()))?;
        let protocol_version = info.protocol_version.to_string();
        let capabilities = serde_json::to_value(&info.capabilities).unwrap_or(Value::Null);
        let stateless = !info.protocol_version.has_initialize();
        tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, %protocol_version, "MCP handshake done");
        Ok(Session {
            service,
            handshake: Handshake {
                protocol_version,
                capabilities,
                stateless,
            },
            timeout,
        })
    }

    async fn open(
        &self,
        target: &Target,
        credential: Option<SecretString>,
        timeout: Duration,
        reinit: bool,
    ) -> EngineResult<RunningService<RoleClient, ClientConfig>> {
        match target.transport {
            Transport::Http => {
                let url = self.outbound.check_url(&target.url).map_err(|e| upstream("url", e))?;
                let mut config =
                    StreamableHttpClientTransportConfig::with_uri(url.to_string()).reinit_on_expired_session(reinit);
                config.retry_config =
                    std::sync::Arc::new(rmcp::transport::common::client_side_sse::NeverRetry::default());
                if let Some(token) = &credential {
                    config = config.auth_header(token.expose_secret().to_owned());
                }
                let transport = StreamableHttpClientTransport::with_client(self.outbound.client().clone(), config);
                let served = client_config()
                    .serve_with_lifecycle(
                        transport,
                        ClientLifecycleMode::Auto {
                            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
                            legacy_version: Some(ProtocolVersion::V_2025_11_25),
                        },
                    )
                    .await;
                match served {
                    Ok(service) => Ok(service),
                    Err(e) => Err(self.explain("handshake", &url, e).await),
                }
            }
            Transport::Sse => {
                let url = self.outbound.check_url(&target.url).map_err(|e| upstream("url", e))?;
                let transport =
                    match LegacySseTransport::connect(self.outbound.client().clone(), url.clone(), credential, timeout)
                        .await
                    {
                        Ok(transport) => transport,
                        Err(e) => return Err(self.explain("event stream", &url, e).await),
                    };
                match client_config()
                    .serve_with_lifecycle(transport, ClientLifecycleMode::Initialize)
                    .await
                {
                    Ok(service) => Ok(service),
                    Err(e) => Err(self.explain("handshake", &url, e).await),
                }
            }
            Transport::Stdio => {
                let name = target.url.strip_prefix("stdio://").unwrap_or_default();
                let command = self
                    .settings
                    .stdio
                    .get(name)
                    .ok_or_else(|| EngineError::Upstream(format!("STDIO command {name:?} is no longer allowed")))?;
                let mut cmd = tokio::process::Command::new(&command.command);
                cmd.args(&command.args)
                    .env_clear()
                    .envs(&command.env)
                    .kill_on_drop(true);
                if let Some(token) = &credential {
                    cmd.env("MCP_CREDENTIAL", token.expose_secret());
                }
                let (child, _stderr) = TokioChildProcess::builder(cmd)
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .map_err(|e| upstream("spawning the STDIO server", e))?;
                client_config().serve(child).await.map_err(|e| upstream("handshake", e))
            }
        }
    }
}

impl Session {
    /// Every tool, following cursors, up to `max` tools.
    pub async fn list_tools(&self, max: usize) -> EngineResult<Vec<ListedTool>> {
        let mut tools = Vec::new();
        let mut cursor: Option<String> = None;
        let mut seen_cursors = std::collections::HashSet::new();
        loop {
            let params = PaginatedRequestParams::default().with_cursor(cursor.take());
            let page = tokio::time::timeout(self.timeout, self.service.list_tools(Some(params)))
                .await
                .map_err(|_| EngineError::Upstream("tools/list timed out".into()))?
                .map_err(|e| upstream("tools/list", e))?;
            for tool in page.tools {
                let json = serde_json::to_value(&tool).unwrap_or(Value::Null);
                let text = |key: &str| json.get(key).and_then(Value::as_str).map(str::to_owned);
                tools.push(ListedTool {
                    name: tool.name.to_string(),
                    title: text("title"),
                    description: text("description"),
                    input_schema: json
                        .get("inputSchema")
                        .cloned()
                        .unwrap_or_else(|| serde_json::json!({})),
                    output_schema: json.get("outputSchema").cloned(),
                    annotations: json.get("annotations").cloned(),
                });
            }
            if tools.len() > max {
                return Err(EngineError::Upstream(format!("the server lists more than {max} tools")));
            }
            match page.next_cursor {
                Some(next) if seen_cursors.insert(next.clone()) => cursor = Some(next),
                Some(_) => return Err(EngineError::Upstream("tools/list repeated a cursor".into())),
                None => return Ok(tools),
            }
        }
    }

    /// A liveness probe: `ping` on session-based servers; stateless servers already
    /// answered `server/discover` when the session opened.
    pub async fn ping(&self) -> EngineResult<()> {
        if self.handshake.stateless {
            return Ok(());
        }
        tokio::time::timeout(
            self.timeout,
            self.service
                .send_request(ClientRequest::PingRequest(PingRequest::default())),
        )
        .await
        .map_err(|_| EngineError::Upstream("ping timed out".into()))?
        .map(|_| ())
        .map_err(|e| upstream("ping", e))
    }

    /// `tools/call`: the server's result as JSON (`content`, `structuredContent`,
    /// `isError`). No timeout of its own: the caller bounds the whole call.
    pub async fn call_tool(&self, name: &str, arguments: serde_json::Map<String, Value>) -> EngineResult<Value> {
        let params = CallToolRequestParams::new(name.to_owned()).with_arguments(arguments);
        let result = self
            .service
            .call_tool(params)
            .await
            .map_err(|e| upstream("tools/call", e))?;
        serde_json::to_value(&result).map_err(|e| EngineError::Upstream(format!("tools/call result: {e}")))
    }

    pub async fn close(mut self) {
        let _ = self.service.close_with_timeout(Duration::from_secs(2)).await;
    }
}
