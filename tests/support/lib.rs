//! Test support: a real AOS application on a random loopback port, on its own database.

// Test support: a failed setup step is a failed test.
#![allow(clippy::expect_used, clippy::indexing_slicing)]

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::HttpServer;
use actix_web::dev::ServerHandle;
use aos_api::ApiConfig;
use aos_drivers::testing::TestDatabase;
use aos_spine::{
    ApprovalSettings, AuthConfig, DatabaseConfig, ManifestSettings, McpSettings, PolicySettings, ProxyConfig, Spine,
    TelemetrySettings,
};
use secrecy::SecretString;

pub use aos_drivers::Backend;

pub mod actors;
pub mod bench;
pub mod fake_llm;
pub mod mcp_servers;
pub mod spec;

/// The operator token every test server accepts.
pub const OPERATOR_TOKEN: &str = "aos_op_test_0123456789abcdef";

/// A running server and a client for it. Stops the server when dropped.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub backend: Backend,
    handle: ServerHandle,
    db: Arc<TestDatabase>,
    /// The server's spine (for shutdown and writer checks).
    pub spine: Spine,
    /// Holds the manifest signing key of this server (and its replicas).
    _keys: Arc<tempfile::TempDir>,
    /// Responses that did not match `/openapi.json` (see [`spec`]).
    spec_violations: spec::Violations,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The database this server runs on.
    pub fn database(&self) -> &aos_drivers::Database {
        self.db.database()
    }

    /// PostgreSQL only: takes the database away (open connections ended, new ones
    /// refused, as a restart does) or brings it back.
    pub async fn set_database_reachable(&self, reachable: bool) {
        self.db.set_reachable(reachable).await;
    }

    /// The database URL (for tests that inspect the stored bytes).
    pub fn database_url(&self) -> String {
        secrecy::ExposeSecret::expose_secret(&self.db.url()).to_owned()
    }

    /// A request builder carrying `credential` as a bearer token.
    pub fn as_(&self, credential: &str, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path)).bearer_auth(credential)
    }

    /// Creates a tenant as the operator; returns its id.
    pub async fn create_tenant(&self, name: &str) -> String {
        let response = self
            .operator(reqwest::Method::POST, "/api/v1/admin/tenants")
            .json(&serde_json::json!({ "name": name }))
            .send()
            .await
            .expect("create tenant");
        assert_eq!(response.status(), reqwest::StatusCode::CREATED);
        let body: serde_json::Value = response.json().await.expect("tenant JSON");
        body["data"]["id"].as_str().expect("tenant id").to_owned()
    }

    /// Sets a tenant's lifecycle status as the operator; returns the HTTP status.
    pub async fn set_tenant_status(&self, tenant: &str, status: &str) -> reqwest::StatusCode {
        self.operator(reqwest::Method::PATCH, &format!("/api/v1/admin/tenants/{tenant}"))
            .json(&serde_json::json!({ "status": status }))
            .send()
            .await
            .expect("patch tenant")
            .status()
    }

    /// Issues a key for `tenant` as the operator; returns (key id, key).
    pub async fn create_key(&self, tenant: &str, scopes: &[&str]) -> (String, String) {
        let response = self
            .operator(
                reqwest::Method::POST,
                &format!("/api/v1/admin/tenants/{tenant}/api-keys"),
            )
            .json(&serde_json::json!({ "name": "test key", "scopes": scopes }))
            .send()
            .await
            .expect("create key");
        assert_eq!(response.status(), reqwest::StatusCode::CREATED);
        let body: serde_json::Value = response.json().await.expect("key JSON");
        (
            body["data"]["api_key"]["id"].as_str().expect("key id").to_owned(),
            body["data"]["key"].as_str().expect("key").to_owned(),
        )
    }

    /// A request builder carrying the operator token.
    pub fn operator(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path)).bearer_auth(OPERATOR_TOKEN)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
        let violations = self.spec_violations.take();
        if !violations.is_empty() && !std::thread::panicking() {
            panic!(
                "{} response(s) did not match /openapi.json:\n{}",
                violations.len(),
                violations.join("\n")
            );
        }
    }
}

/// Starts AOS on `backend` with default API settings.
pub async fn spawn(backend: Backend) -> TestApp {
    spawn_with(backend, ApiConfig::default()).await
}

/// The auth configuration test servers use unless a test brings its own.
pub fn test_auth() -> AuthConfig {
    AuthConfig {
        operator_token: Some(SecretString::from(OPERATOR_TOKEN)),
        ..AuthConfig::default()
    }
}

pub async fn spawn_with(backend: Backend, api: ApiConfig) -> TestApp {
    let db = Arc::new(aos_drivers::testing::database(backend).await);
    serve(db, api, test_auth(), test_mcp(), TelemetrySettings::default()).await
}

/// MCP settings for tests: loopback is allowlisted (real servers run on 127.0.0.1), health
/// checks are left to the tests (no scheduler), timeouts are short.
pub fn test_mcp() -> McpSettings {
    let mut mcp = McpSettings::default();
    mcp.outbound.allow_hosts = vec!["127.0.0.1".into(), "localhost".into()];
    mcp.health_interval_secs = 0;
    mcp.request_timeout_ms = 5_000;
    mcp
}

/// Starts AOS with its own telemetry settings.
pub async fn spawn_with_telemetry(backend: Backend, telemetry: TelemetrySettings) -> TestApp {
    let db = Arc::new(aos_drivers::testing::database(backend).await);
    serve(db, ApiConfig::default(), test_auth(), test_mcp(), telemetry).await
}

/// Starts AOS with its own auth and MCP configuration.
pub async fn spawn_custom(backend: Backend, auth: AuthConfig, mcp: McpSettings) -> TestApp {
    let db = Arc::new(aos_drivers::testing::database(backend).await);
    serve(db, ApiConfig::default(), auth, mcp, TelemetrySettings::default()).await
}

/// Starts AOS with its own MCP configuration.
pub async fn spawn_with_mcp(backend: Backend, mcp: McpSettings) -> TestApp {
    let db = Arc::new(aos_drivers::testing::database(backend).await);
    serve(db, ApiConfig::default(), test_auth(), mcp, TelemetrySettings::default()).await
}

/// Starts AOS with its own auth configuration (e.g. with `[auth.jwt]`).
pub async fn spawn_with_auth(backend: Backend, auth: AuthConfig) -> TestApp {
    let db = Arc::new(aos_drivers::testing::database(backend).await);
    serve(db, ApiConfig::default(), auth, test_mcp(), TelemetrySettings::default()).await
}

/// `n` independent servers ("replicas") sharing one database.
pub async fn spawn_replicas(backend: Backend, n: usize) -> Vec<TestApp> {
    spawn_replicas_opts(backend, n, Options::default()).await
}

/// `n` replicas sharing one database, each with `options`.
pub async fn spawn_replicas_opts(backend: Backend, n: usize, options: Options) -> Vec<TestApp> {
    let db = Arc::new(aos_drivers::testing::database(backend).await);
    // Replicas share one manifest signing key, as production replicas must.
    let keys = Arc::new(tempfile::tempdir().expect("key dir"));
    let mut apps = Vec::with_capacity(n);
    for _ in 0..n {
        apps.push(serve_opts(Arc::clone(&db), options.clone(), Arc::clone(&keys)).await);
    }
    apps
}

/// reqwest is built without a default TLS provider (see the workspace manifest).
pub fn ensure_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Everything a test server can be configured with.
#[derive(Clone)]
pub struct Options {
    pub api: ApiConfig,
    pub auth: AuthConfig,
    pub mcp: McpSettings,
    pub telemetry: TelemetrySettings,
    pub policy: PolicySettings,
    pub approvals: ApprovalSettings,
    pub proxy: ProxyConfig,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            api: ApiConfig::default(),
            auth: test_auth(),
            mcp: test_mcp(),
            telemetry: TelemetrySettings::default(),
            policy: PolicySettings::default(),
            // The sweeper runs often so expiry tests are quick.
            approvals: ApprovalSettings {
                sweep_interval_ms: 200,
                ..ApprovalSettings::default()
            },
            proxy: ProxyConfig::default(),
        }
    }
}

/// Starts AOS on `backend` with `options`.
pub async fn spawn_opts(backend: Backend, options: Options) -> TestApp {
    let db = Arc::new(aos_drivers::testing::database(backend).await);
    serve_opts(db, options, Arc::new(tempfile::tempdir().expect("key dir"))).await
}

async fn serve(
    db: Arc<TestDatabase>,
    api: ApiConfig,
    auth: AuthConfig,
    mcp: McpSettings,
    telemetry: TelemetrySettings,
) -> TestApp {
    let options = Options {
        api,
        auth,
        mcp,
        telemetry,
        ..Options::default()
    };
    serve_opts(db, options, Arc::new(tempfile::tempdir().expect("key dir"))).await
}

async fn serve_opts(db: Arc<TestDatabase>, options: Options, keys: Arc<tempfile::TempDir>) -> TestApp {
    ensure_crypto_provider();
    let database = DatabaseConfig {
        url: Some(db.url()),
        ..DatabaseConfig::default()
    };
    let Options {
        api,
        auth,
        mcp,
        telemetry,
        policy,
        approvals,
        proxy,
    } = options;
    // The server binary's own configuration type and start-up path (validation, spine,
    // start-up migrations); only what isolation needs differs: the database and the port.
    let config = aos_server::Config {
        http: api.clone(),
        database,
        auth,
        mcp,
        telemetry,
        policy,
        approvals,
        manifest: ManifestSettings {
            signing_key_file: keys.path().join("manifest-signing-key.pem"),
            ..ManifestSettings::default()
        },
        proxy,
        ..aos_server::Config::default()
    };
    let spine = aos_server::start(&config)
        .await
        .expect("start AOS as `aos-server serve` does");
    let app_spine = spine.clone();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let port = listener.local_addr().expect("local address").port();
    // One worker keeps tests light; benchmarks ask for one per core, as production runs.
    let workers = std::env::var("AOS_TEST_HTTP_WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(1);
    // Debug builds (the test suite) check every response against /openapi.json; release
    // builds (the benchmarks) measure the server alone.
    let spec_violations = spec::Violations::default();
    let check = cfg!(debug_assertions).then(|| actix_web::web::Data::new(spec_violations.clone()));
    let server = HttpServer::new(move || {
        let app = aos_api::app(spine.clone(), api.clone());
        let app = match &check {
            Some(check) => app.app_data(check.clone()),
            None => app,
        };
        app.wrap(actix_web::middleware::from_fn(spec::middleware))
    })
    .workers(workers)
    .disable_signals()
    .listen(listener)
    .expect("listen")
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    TestApp {
        base: format!("http://127.0.0.1:{port}"),
        client: reqwest::Client::builder().no_proxy().build().expect("HTTP client"),
        backend: db.backend(),
        handle,
        db,
        spine: app_spine,
        _keys: keys,
        spec_violations,
    }
}

/// Generates `postgres::NAME` and `sqlite::NAME` for each `async fn NAME(TestApp)`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod postgres { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::spawn($crate::Backend::Postgres).await).await; }
        )* }
        mod sqlite { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::spawn($crate::Backend::Sqlite).await).await; }
        )* }
    };
}

/// Generates `postgres::NAME` and `sqlite::NAME` for each `async fn NAME(Backend)`, for
/// tests that set their server up themselves.
#[macro_export]
macro_rules! for_each_backend {
    ($($name:ident),* $(,)?) => {
        mod postgres { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::Backend::Postgres).await }
        )* }
        mod sqlite { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::Backend::Sqlite).await }
        )* }
    };
}

/// A binary of this workspace, built next to the test executables (`target/debug/NAME`).
/// `make test` builds it first; run `cargo build -p aos-cli` before running tests by hand.
pub fn workspace_bin(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/debug/deps/<test> -> target/debug/<name>
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binaries live in target/<profile>/deps");
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is not built: run `cargo build -p aos-cli` (make test does) before these tests",
        path.display()
    );
    path
}

/// A request as `key` with an optional JSON body; the status and the body (JSON, or the
/// text as a JSON string when it is not JSON).
pub async fn call(
    app: &TestApp,
    key: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> (reqwest::StatusCode, serde_json::Value) {
    let mut request = app.as_(key, method, path);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("the request reaches the server");
    let status = response.status();
    let text = response.text().await.expect("a readable body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

/// A tenant with a key holding the MCP scopes (`mcp:read`, `mcp:admin`, `mcp:invoke`):
/// (tenant id, key).
pub async fn mcp_tenant(app: &TestApp, name: &str) -> (String, String) {
    let id = app.create_tenant(name).await;
    let (_, key) = app.create_key(&id, &["mcp:read", "mcp:admin", "mcp:invoke"]).await;
    (id, key)
}

/// Registers the MCP server at `url` as `name` (plus `extra` fields), discovering its
/// tools: (server id, tool ids by tool name).
pub async fn register_server(
    app: &TestApp,
    key: &str,
    name: &str,
    url: &str,
    extra: serde_json::Value,
) -> (String, std::collections::HashMap<String, String>) {
    const SERVERS: &str = "/api/v1/integrations/mcp-servers";
    let mut body = serde_json::json!({"name": name, "url": url});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let (status, body) = call(app, key, reqwest::Method::POST, SERVERS, Some(body)).await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");
    assert!(body["data"]["discovery"].is_object(), "{body}");
    let server = body["data"]["server"]["id"].as_str().expect("a server id").to_owned();
    let (_, tools) = call(
        app,
        key,
        reqwest::Method::GET,
        &format!("{SERVERS}/{server}/tools"),
        None,
    )
    .await;
    let ids = tools["data"]
        .as_array()
        .expect("a tool list")
        .iter()
        .filter_map(|t| Some((t["name"].as_str()?.to_owned(), t["id"].as_str()?.to_owned())))
        .collect();
    (server, ids)
}
