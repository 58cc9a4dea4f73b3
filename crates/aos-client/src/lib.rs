//! # aos-client
//!
//! An async client for the AOS HTTP API. Requests and responses are the types of
//! [`aos_schemas`] (re-exported as [`schemas`]), the same structs the server serialises, so
//! client and server cannot drift apart.
//!
//! - Configured with a base URL and a key held as a [`secrecy::SecretString`]: the key is
//!   sent as `Authorization: Bearer`, marked sensitive, and never appears in `Debug` output.
//! - Timeouts for the whole request and for connecting.
//! - Retries with exponential backoff and jitter, only where repeating cannot do harm:
//!   idempotent methods (GET, PUT, DELETE) on connection failures, 429, 502, 503 and 504
//!   (honouring `Retry-After`), and any method when the connection could not be opened at
//!   all (the request was never sent).
//! - Errors are typed: [`Error::Api`] carries the server's status, error code, message and
//!   request id.
//!
//! ```no_run
//! use aos_client::Client;
//! use aos_client::schemas::governance::InvokeToolRequest;
//! use aos_client::schemas::mcp::{RegisterMcpServerRequest, RiskLevel, SetToolRiskRequest};
//! use secrecy::SecretString;
//!
//! # async fn example() -> Result<(), aos_client::Error> {
//! let key = SecretString::from(std::env::var("AOS_API_KEY").unwrap_or_default());
//! let client = Client::builder("http://127.0.0.1:8080").api_key(key).build()?;
//!
//! // Register a server; AOS discovers its tools right away.
//! let registration = client
//!     .register_mcp_server(&RegisterMcpServerRequest::new("code-analysis", "https://mcp.example.com/mcp"))
//!     .await?;
//! let tools = client.list_mcp_tools(registration.server.id, false).await?;
//! for tool in &tools {
//!     println!("{} ({:?})", tool.name, tool.risk_level);
//! }
//!
//! // Tighten a tool, then call another through the governed pipeline.
//! if let Some(tool) = tools.first() {
//!     let risk = SetToolRiskRequest { risk_level: RiskLevel::Critical, requires_approval: None };
//!     client.set_mcp_tool_risk(tool.id, &risk).await?;
//!     let result = client
//!         .invoke_mcp_tool(tool.id, &InvokeToolRequest::new(serde_json::json!({"file": "src/main.rs"})))
//!         .await?;
//!     println!("{:?}: {:?}", result.status, result.output);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Errors carry what the server said:
//!
//! ```no_run
//! # async fn example(client: aos_client::Client) {
//! use aos_client::schemas::ErrorCode;
//!
//! match client.get_mcp_server(uuid::Uuid::nil()).await {
//!     Ok(server) => println!("{}", server.name),
//!     Err(err) if err.code() == Some(ErrorCode::NotFound) => println!("no such server"),
//!     Err(err) => eprintln!("failed: {err} (request {:?})", err.request_id()),
//! }
//! # }
//! ```

mod error;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aos_schemas::agents::{
    Agent, AgentManifest, CreateAgentKeyRequest, CreateAgentRequest, CreatedAgentKey, ManifestVerification,
    UpdateAgentRequest, VerifyManifestRequest,
};
use aos_schemas::api_keys::{ApiKey, CreateApiKeyRequest, CreatedApiKey};
use aos_schemas::governance::{
    Approval, ApprovalDecision, AuditEvent, AuditVerification, CreateApprovalRequest, DecideApprovalRequest, Incident,
    InvocationResult, InvokeToolRequest, ListApprovalsQuery, ListAuditQuery, ListIncidentsQuery,
    ResolveIncidentRequest, SignedManifest,
};
use aos_schemas::killswitch::{FreezeRequest, KillSwitchOverview, KillSwitchQuery, KillSwitchState};
use aos_schemas::mcp::{
    InvocationsQuery, ListServersQuery, ListToolsQuery, McpDiscovery, McpHealth, McpInvocation, McpRegistration,
    McpServer, McpTool, RegisterMcpServerRequest, SetToolRiskRequest,
};
use aos_schemas::session::SessionContext;
use aos_schemas::tenants::{CreateTenantRequest, Tenant, UpdateTenantRequest};
use aos_schemas::{DataEnvelope, ListEnvelope, envelope::PageQuery};
use reqwest::header::{AUTHORIZATION, HeaderValue, RETRY_AFTER};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

pub use aos_schemas as schemas;
pub use error::{ApiError, Error};

/// A page of a list: `data` and `meta.next_cursor`.
pub type Page<T> = ListEnvelope<T>;

/// Every item of a cursor-paged list: `fetch(cursor)` returns one page (the first with
/// `None`), and the cursors are followed to the end.
///
/// ```no_run
/// # async fn example(client: aos_client::Client) -> Result<(), aos_client::Error> {
/// use aos_client::schemas::envelope::PageQuery;
/// let keys = aos_client::all_pages(|cursor| {
///     let client = client.clone();
///     async move { client.list_api_keys(&PageQuery { limit: Some(200), cursor }).await }
/// })
/// .await?;
/// # Ok(())
/// # }
/// ```
pub async fn all_pages<T, F, Fut>(mut fetch: F) -> Result<Vec<T>, Error>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<Page<T>, Error>>,
{
    let mut all = Vec::new();
    let mut cursor = None;
    loop {
        let page = fetch(cursor.take()).await?;
        all.extend(page.data);
        match page.meta.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(all),
        }
    }
}

const MCP_SERVERS: &str = "/api/v1/mcp/servers";

/// Builds a [`Client`].
pub struct ClientBuilder {
    base_url: String,
    api_key: Option<SecretString>,
    timeout: Duration,
    connect_timeout: Duration,
    max_retries: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// The key (or operator token) sent as `Authorization: Bearer`.
    pub fn api_key(mut self, key: SecretString) -> Self {
        self.api_key = Some(key);
        self
    }

    /// Budget for one attempt, from sending to the last byte (default 30 s). Discovery and
    /// tool calls run within it, so keep it above the servers' `call_timeout_ms`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Budget for opening a connection (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How many times a retryable failure is retried (default 2; 0 turns retries off).
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// The first backoff (default 200 ms); it doubles per attempt up to `max` (default 5 s),
    /// with full jitter.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }

    pub fn build(self) -> Result<Client, Error> {
        // The URL is not repeated in errors: it may carry credentials by mistake.
        let base = url::Url::parse(&self.base_url)
            .map_err(|err| Error::Config(format!("the base URL is not a URL: {err}")))?;
        if !matches!(base.scheme(), "http" | "https") || base.host().is_none() {
            return Err(Error::Config(
                "the base URL must be http:// or https:// with a host".to_owned(),
            ));
        }
        if !base.username().is_empty() || base.password().is_some() || base.query().is_some() {
            return Err(Error::Config(
                "base URL: no credentials or query string (pass the key with api_key)".to_owned(),
            ));
        }
        let auth = match &self.api_key {
            None => None,
            Some(key) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {}", key.expose_secret()))
                    .map_err(|_| Error::Config("the API key contains characters a header cannot carry".to_owned()))?;
                value.set_sensitive(true);
                Some(value)
            }
        };
        // rustls with ring, as the server: installing it twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .user_agent(concat!("aos-client/", env!("CARGO_PKG_VERSION")))
            .timeout(self.timeout)
            .connect_timeout(self.connect_timeout)
            .build()
            .map_err(|err| Error::Config(format!("HTTP client: {err}")))?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base: base.as_str().trim_end_matches('/').to_owned(),
                auth,
                retry: Retry {
                    max_retries: self.max_retries,
                    initial: self.initial_backoff,
                    max: self.max_backoff,
                },
            }),
        })
    }
}

#[derive(Debug, Clone, Copy)]
struct Retry {
    max_retries: u32,
    initial: Duration,
    max: Duration,
}

impl Retry {
    /// Full jitter: uniform in [0, min(max, initial * 2^attempt)].
    fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self
            .initial
            .saturating_mul(2u32.saturating_pow(attempt.min(16)))
            .min(self.max);
        let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::random_range(0..=millis))
    }
}

struct Inner {
    http: reqwest::Client,
    base: String,
    auth: Option<HeaderValue>,
    retry: Retry,
}

/// The AOS API client. Cheap to clone; clones share one connection pool.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.base)
            .field("api_key", &self.inner.auth.as_ref().map(|_| "[redacted]"))
            .finish_non_exhaustive()
    }
}

fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS
    )
}

fn retryable_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 502 | 503 | 504)
}

fn retry_after(response: &Response) -> Option<Duration> {
    let seconds: u64 = response
        .headers()
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds))
}

fn request_id(response: &Response) -> Option<String> {
    response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

impl Client {
    /// A builder for AOS at `base_url` (`http://host:port`, optionally with a path prefix).
    pub fn builder(base_url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            base_url: base_url.into(),
            api_key: None,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            max_retries: 2,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
        }
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let builder = self.inner.http.request(method, format!("{}{path}", self.inner.base));
        match &self.inner.auth {
            Some(auth) => builder.header(AUTHORIZATION, auth.clone()),
            None => builder,
        }
    }

    /// Sends, retrying what may be retried; returns the final response, whatever its status.
    async fn send(&self, method: Method, request: RequestBuilder) -> Result<Response, Error> {
        let retry = self.inner.retry;
        let safe = idempotent(&method);
        let mut attempt = 0;
        loop {
            let this = request
                .try_clone()
                .ok_or_else(|| Error::Config("a request body that cannot be resent".to_owned()))?;
            let delay = match this.send().await {
                Ok(response) if safe && attempt < retry.max_retries && retryable_status(response.status()) => {
                    retry_after(&response)
                        .map(|d| d.min(retry.max))
                        .unwrap_or_else(|| retry.delay(attempt))
                }
                Ok(response) => return Ok(response),
                // A connection that never opened carried nothing: any method may retry it.
                Err(err) if attempt < retry.max_retries && (err.is_connect() || (safe && err.is_timeout())) => {
                    retry.delay(attempt)
                }
                Err(err) => return Err(Error::Transport(err)),
            };
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    async fn body(response: Response) -> Result<(u16, Option<String>, bytes::Bytes), Error> {
        let status = response.status().as_u16();
        let id = request_id(&response);
        let bytes = response.bytes().await.map_err(Error::Transport)?;
        if !(200..300).contains(&status) {
            return Err(Error::Api(Box::new(ApiError::from_response(status, id, &bytes))));
        }
        Ok((status, id, bytes))
    }

    fn decode<T: DeserializeOwned>(status: u16, request_id: Option<String>, bytes: &[u8]) -> Result<T, Error> {
        serde_json::from_slice(bytes).map_err(|err| Error::Decode {
            status,
            reason: err.to_string(),
            request_id,
        })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<T, Error> {
        let mut request = self.request(method.clone(), path);
        if let Some(body) = body {
            request = request.json(body);
        }
        let (status, id, bytes) = Self::body(self.send(method, request).await?).await?;
        Ok(Self::decode::<DataEnvelope<T>>(status, id, &bytes)?.data)
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        self.call(Method::GET, path, None::<&()>).await
    }

    /// A GET with a query string whose answer is one `{"data": ...}`.
    async fn get_query<T: DeserializeOwned>(&self, path: &str, query: &(impl Serialize + ?Sized)) -> Result<T, Error> {
        let request = self.request(Method::GET, path).query(query);
        let (status, id, bytes) = Self::body(self.send(Method::GET, request).await?).await?;
        Ok(Self::decode::<DataEnvelope<T>>(status, id, &bytes)?.data)
    }

    async fn page<T: DeserializeOwned>(&self, path: &str, query: &(impl Serialize + ?Sized)) -> Result<Page<T>, Error> {
        let request = self.request(Method::GET, path).query(query);
        let (status, id, bytes) = Self::body(self.send(Method::GET, request).await?).await?;
        Self::decode(status, id, &bytes)
    }

    async fn post<T: DeserializeOwned>(&self, path: &str, body: &(impl Serialize + ?Sized)) -> Result<T, Error> {
        self.call(Method::POST, path, Some(body)).await
    }

    async fn post_empty<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        self.call(Method::POST, path, None::<&()>).await
    }

    // ---- Session --------------------------------------------------------------------

    /// Who the server thinks is calling: tenant, actor, scopes.
    pub async fn session_context(&self) -> Result<SessionContext, Error> {
        self.get("/api/v1/session/context").await
    }

    // ---- MCP servers ----------------------------------------------------------------

    /// One page of the tenant's MCP servers.
    pub async fn list_mcp_servers(&self, query: &ListServersQuery) -> Result<Page<McpServer>, Error> {
        self.page(MCP_SERVERS, query).await
    }

    /// Every MCP server of the tenant, following the cursor.
    pub async fn list_all_mcp_servers(&self, include_disabled: bool) -> Result<Vec<McpServer>, Error> {
        all_pages(|cursor| async move {
            let query = ListServersQuery {
                include_disabled,
                limit: Some(200),
                cursor,
            };
            self.list_mcp_servers(&query).await
        })
        .await
    }

    /// Registers a server and, unless `discover` is false, discovers its tools now (a
    /// failed discovery is reported in the result's `discovery_error`, not as an error).
    pub async fn register_mcp_server(&self, request: &RegisterMcpServerRequest) -> Result<McpRegistration, Error> {
        self.post(MCP_SERVERS, request).await
    }

    pub async fn get_mcp_server(&self, server_id: Uuid) -> Result<McpServer, Error> {
        self.get(&format!("{MCP_SERVERS}/{server_id}")).await
    }

    /// Discovers (or rediscovers) the server's tools.
    pub async fn discover_mcp_tools(&self, server_id: Uuid) -> Result<McpDiscovery, Error> {
        self.post_empty(&format!("{MCP_SERVERS}/{server_id}/discover")).await
    }

    /// Checks the server's health now; an unhealthy server is an `Ok` with `healthy: false`.
    pub async fn check_mcp_health(&self, server_id: Uuid) -> Result<McpHealth, Error> {
        self.get(&format!("{MCP_SERVERS}/{server_id}/health")).await
    }

    /// Disables (soft-deletes) a server: hidden from lists and the catalog, kept for audit.
    pub async fn disable_mcp_server(&self, server_id: Uuid) -> Result<McpServer, Error> {
        self.call(Method::DELETE, &format!("{MCP_SERVERS}/{server_id}"), None::<&()>)
            .await
    }

    /// The server's signed tool manifest (an ES256 JWS; keys at `/.well-known/jwks.json`).
    pub async fn get_mcp_manifest(&self, server_id: Uuid) -> Result<SignedManifest, Error> {
        self.get(&format!("{MCP_SERVERS}/{server_id}/manifest")).await
    }

    /// The server's latest tool invocations, newest first.
    pub async fn list_mcp_invocations(&self, server_id: Uuid, limit: Option<u32>) -> Result<Vec<McpInvocation>, Error> {
        self.get_query(
            &format!("{MCP_SERVERS}/{server_id}/invocations"),
            &InvocationsQuery { limit },
        )
        .await
    }

    // ---- MCP tools ------------------------------------------------------------------

    /// The server's tools (`include_unavailable` adds tools the server no longer offers).
    pub async fn list_mcp_tools(&self, server_id: Uuid, include_unavailable: bool) -> Result<Vec<McpTool>, Error> {
        self.get_query(
            &format!("{MCP_SERVERS}/{server_id}/tools"),
            &ListToolsQuery { include_unavailable },
        )
        .await
    }

    pub async fn get_mcp_tool(&self, server_id: Uuid, tool_id: Uuid) -> Result<McpTool, Error> {
        self.get(&format!("{MCP_SERVERS}/{server_id}/tools/{tool_id}")).await
    }

    /// Enables a tool (and approves its current definition: later drift quarantines it).
    pub async fn enable_mcp_tool(&self, tool_id: Uuid) -> Result<McpTool, Error> {
        self.post_empty(&format!("/api/v1/mcp/tools/{tool_id}/enable")).await
    }

    pub async fn disable_mcp_tool(&self, tool_id: Uuid) -> Result<McpTool, Error> {
        self.post_empty(&format!("/api/v1/mcp/tools/{tool_id}/disable")).await
    }

    /// Sets a tool's risk level (kept across rediscovery) and optionally its approval need.
    pub async fn set_mcp_tool_risk(&self, tool_id: Uuid, request: &SetToolRiskRequest) -> Result<McpTool, Error> {
        self.call(Method::PUT, &format!("/api/v1/mcp/tools/{tool_id}/risk"), Some(request))
            .await
    }

    /// Calls a tool through the governed pipeline. A blocked call or one waiting for
    /// approval is an `Ok` whose `status` says so; never retried (a call is not idempotent).
    pub async fn invoke_mcp_tool(&self, tool_id: Uuid, request: &InvokeToolRequest) -> Result<InvocationResult, Error> {
        self.post(&format!("/api/v1/mcp/tools/{tool_id}/invoke"), request).await
    }

    // ---- Approvals ------------------------------------------------------------------

    pub async fn list_approvals(&self, query: &ListApprovalsQuery) -> Result<Page<Approval>, Error> {
        self.page("/api/v1/approvals", query).await
    }

    pub async fn get_approval(&self, approval_id: Uuid) -> Result<Approval, Error> {
        self.get(&format!("/api/v1/approvals/{approval_id}")).await
    }

    /// A generic approval request (not tied to a tool call).
    pub async fn create_approval(&self, request: &CreateApprovalRequest) -> Result<Approval, Error> {
        self.post("/api/v1/approvals", request).await
    }

    /// Approves; a gated tool call runs now, exactly once, and its result is in `invocation`.
    pub async fn approve(&self, approval_id: Uuid, request: &DecideApprovalRequest) -> Result<ApprovalDecision, Error> {
        self.post(&format!("/api/v1/approvals/{approval_id}/approve"), request)
            .await
    }

    /// Denies; a gated tool call becomes BLOCKED.
    pub async fn deny(&self, approval_id: Uuid, request: &DecideApprovalRequest) -> Result<ApprovalDecision, Error> {
        self.post(&format!("/api/v1/approvals/{approval_id}/deny"), request)
            .await
    }

    // ---- Audit and incidents --------------------------------------------------------

    pub async fn list_audit_events(&self, query: &ListAuditQuery) -> Result<Page<AuditEvent>, Error> {
        self.page("/api/v1/audit/events", query).await
    }

    /// Recomputes the tenant's audit chain on the server.
    pub async fn verify_audit(&self) -> Result<AuditVerification, Error> {
        self.get("/api/v1/audit/verify").await
    }

    pub async fn list_incidents(&self, query: &ListIncidentsQuery) -> Result<Page<Incident>, Error> {
        self.page("/api/v1/incidents", query).await
    }

    pub async fn get_incident(&self, incident_id: Uuid) -> Result<Incident, Error> {
        self.get(&format!("/api/v1/incidents/{incident_id}")).await
    }

    pub async fn resolve_incident(
        &self,
        incident_id: Uuid,
        request: &ResolveIncidentRequest,
    ) -> Result<Incident, Error> {
        self.post(&format!("/api/v1/incidents/{incident_id}/resolve"), request)
            .await
    }

    // ---- Kill switch ----------------------------------------------------------------

    /// Freezes a tenant (operator, or the tenant's admin): its governed traffic is refused.
    pub async fn freeze_tenant(&self, tenant_id: Uuid, request: &FreezeRequest) -> Result<KillSwitchState, Error> {
        self.post(&format!("/api/v1/killswitch/tenants/{tenant_id}/freeze"), request)
            .await
    }

    pub async fn unfreeze_tenant(&self, tenant_id: Uuid) -> Result<KillSwitchState, Error> {
        self.post_empty(&format!("/api/v1/killswitch/tenants/{tenant_id}/unfreeze"))
            .await
    }

    /// Freezes one API key.
    pub async fn freeze_key(&self, key_id: Uuid, request: &FreezeRequest) -> Result<KillSwitchState, Error> {
        self.post(&format!("/api/v1/killswitch/keys/{key_id}/freeze"), request)
            .await
    }

    pub async fn unfreeze_key(&self, key_id: Uuid) -> Result<KillSwitchState, Error> {
        self.post_empty(&format!("/api/v1/killswitch/keys/{key_id}/unfreeze"))
            .await
    }

    /// The tenant's kill-switch state and history (the operator names the tenant).
    pub async fn kill_switch_status(&self, tenant_id: Option<Uuid>) -> Result<KillSwitchOverview, Error> {
        self.get_query("/api/v1/killswitch", &KillSwitchQuery { tenant_id })
            .await
    }

    // ---- Agents -----------------------------------------------------------------------

    /// Creates an agent with its capabilities (`mcp:admin`).
    pub async fn create_agent(&self, request: &CreateAgentRequest) -> Result<Agent, Error> {
        self.post("/api/v1/agents", request).await
    }

    pub async fn list_agents(&self, query: &PageQuery) -> Result<Page<Agent>, Error> {
        self.page("/api/v1/agents", query).await
    }

    pub async fn get_agent(&self, agent_id: Uuid) -> Result<Agent, Error> {
        self.get(&format!("/api/v1/agents/{agent_id}")).await
    }

    /// Changes an agent; absent fields are kept.
    pub async fn update_agent(&self, agent_id: Uuid, request: &UpdateAgentRequest) -> Result<Agent, Error> {
        self.call(Method::PATCH, &format!("/api/v1/agents/{agent_id}"), Some(request))
            .await
    }

    /// Deletes an agent (kept for audit) and revokes its keys.
    pub async fn delete_agent(&self, agent_id: Uuid) -> Result<Agent, Error> {
        self.call(Method::DELETE, &format!("/api/v1/agents/{agent_id}"), None::<&()>)
            .await
    }

    /// Creates a key bound to the agent; the secret is in the result, once.
    pub async fn create_agent_key(
        &self,
        agent_id: Uuid,
        request: &CreateAgentKeyRequest,
    ) -> Result<CreatedAgentKey, Error> {
        self.post(&format!("/api/v1/agents/{agent_id}/api-keys"), request).await
    }

    pub async fn list_agent_keys(&self, agent_id: Uuid) -> Result<Vec<ApiKey>, Error> {
        self.get(&format!("/api/v1/agents/{agent_id}/api-keys")).await
    }

    /// Signs a manifest of the agent's capabilities as resolved now.
    pub async fn issue_agent_manifest(&self, agent_id: Uuid) -> Result<AgentManifest, Error> {
        self.post_empty(&format!("/api/v1/agents/{agent_id}/manifests")).await
    }

    /// The agent's manifests, newest first.
    pub async fn list_agent_manifests(&self, agent_id: Uuid) -> Result<Vec<AgentManifest>, Error> {
        self.get(&format!("/api/v1/agents/{agent_id}/manifests")).await
    }

    /// One manifest by version, or the latest (`None`).
    pub async fn get_agent_manifest(&self, agent_id: Uuid, version: Option<i64>) -> Result<AgentManifest, Error> {
        match version {
            Some(v) => self.get(&format!("/api/v1/agents/{agent_id}/manifests/{v}")).await,
            None => self.get(&format!("/api/v1/agents/{agent_id}/manifests/latest")).await,
        }
    }

    /// Checks a signed agent manifest against the published keys.
    pub async fn verify_agent_manifest(&self, manifest: &str) -> Result<ManifestVerification, Error> {
        self.post(
            "/api/v1/agents/manifests/verify",
            &VerifyManifestRequest {
                manifest: manifest.to_owned(),
            },
        )
        .await
    }

    /// Freezes an agent: every key of it is refused on every surface.
    pub async fn freeze_agent(&self, agent_id: Uuid, request: &FreezeRequest) -> Result<KillSwitchState, Error> {
        self.post(&format!("/api/v1/agents/{agent_id}/freeze"), request).await
    }

    pub async fn unfreeze_agent(&self, agent_id: Uuid) -> Result<KillSwitchState, Error> {
        self.post_empty(&format!("/api/v1/agents/{agent_id}/unfreeze")).await
    }

    // ---- API keys (the caller's tenant) ---------------------------------------------

    /// Creates a key in the caller's tenant; the secret is in the result, once.
    pub async fn create_api_key(&self, request: &CreateApiKeyRequest) -> Result<CreatedApiKey, Error> {
        self.post("/api/v1/api-keys", request).await
    }

    pub async fn list_api_keys(&self, query: &PageQuery) -> Result<Page<ApiKey>, Error> {
        self.page("/api/v1/api-keys", query).await
    }

    pub async fn revoke_api_key(&self, key_id: Uuid) -> Result<ApiKey, Error> {
        self.call(Method::DELETE, &format!("/api/v1/api-keys/{key_id}"), None::<&()>)
            .await
    }

    // ---- Platform administration (the operator token) -------------------------------

    pub async fn create_tenant(&self, request: &CreateTenantRequest) -> Result<Tenant, Error> {
        self.post("/api/v1/admin/tenants", request).await
    }

    pub async fn list_tenants(&self, query: &PageQuery) -> Result<Page<Tenant>, Error> {
        self.page("/api/v1/admin/tenants", query).await
    }

    pub async fn get_tenant(&self, tenant_id: Uuid) -> Result<Tenant, Error> {
        self.get(&format!("/api/v1/admin/tenants/{tenant_id}")).await
    }

    /// Renames, suspends, reactivates or terminates a tenant.
    pub async fn update_tenant(&self, tenant_id: Uuid, request: &UpdateTenantRequest) -> Result<Tenant, Error> {
        self.call(
            Method::PATCH,
            &format!("/api/v1/admin/tenants/{tenant_id}"),
            Some(request),
        )
        .await
    }

    /// Creates a key in any tenant (operator only).
    pub async fn admin_create_api_key(
        &self,
        tenant_id: Uuid,
        request: &CreateApiKeyRequest,
    ) -> Result<CreatedApiKey, Error> {
        self.post(&format!("/api/v1/admin/tenants/{tenant_id}/api-keys"), request)
            .await
    }

    pub async fn admin_list_api_keys(&self, tenant_id: Uuid, query: &PageQuery) -> Result<Page<ApiKey>, Error> {
        self.page(&format!("/api/v1/admin/tenants/{tenant_id}/api-keys"), query)
            .await
    }

    pub async fn admin_revoke_api_key(&self, key_id: Uuid) -> Result<ApiKey, Error> {
        self.call(Method::DELETE, &format!("/api/v1/admin/api-keys/{key_id}"), None::<&()>)
            .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn backoff_is_jittered_and_capped() {
        let retry = Retry {
            max_retries: 5,
            initial: Duration::from_millis(100),
            max: Duration::from_millis(300),
        };
        for attempt in 0..20 {
            let ceiling = Duration::from_millis((100u64 << attempt.min(2)).min(300));
            assert!(retry.delay(attempt) <= ceiling, "attempt {attempt}");
        }
    }

    #[test]
    fn only_idempotent_methods_retry_answers() {
        assert!(idempotent(&Method::GET) && idempotent(&Method::PUT) && idempotent(&Method::DELETE));
        assert!(!idempotent(&Method::POST) && !idempotent(&Method::PATCH));
        assert!(retryable_status(StatusCode::SERVICE_UNAVAILABLE) && retryable_status(StatusCode::TOO_MANY_REQUESTS));
        assert!(!retryable_status(StatusCode::INTERNAL_SERVER_ERROR) && !retryable_status(StatusCode::NOT_FOUND));
    }

    #[test]
    fn bad_base_urls_are_refused_and_the_key_stays_out_of_debug() {
        for bad in ["not a url", "ftp://host", "http://user:pw@host", "http://host/?a=b"] {
            assert!(matches!(Client::builder(bad).build(), Err(Error::Config(_))), "{bad}");
        }
        let client = Client::builder("http://127.0.0.1:9/prefix/")
            .api_key(SecretString::from("aos_k_supersecret"))
            .build()
            .unwrap();
        assert_eq!(client.base_url(), "http://127.0.0.1:9/prefix");
        let debug = format!("{client:?}");
        assert!(
            !debug.contains("supersecret") && debug.contains("[redacted]"),
            "{debug}"
        );
        let builder = Client::builder("http://h").api_key(SecretString::from("aos_k_supersecret"));
        assert!(!format!("{builder:?}").contains("supersecret"));
    }
}
