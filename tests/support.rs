//! Test support: a real AOS application on a random loopback port, on its own database.

// Test support: a failed setup step is a failed test.
#![allow(clippy::expect_used)]

use std::net::TcpListener;

use actix_web::HttpServer;
use actix_web::dev::ServerHandle;
use aos_api::ApiConfig;
use aos_drivers::testing::TestDatabase;
use aos_spine::{AuthConfig, DatabaseConfig, Spine};
use secrecy::SecretString;

pub use aos_drivers::Backend;

/// The operator token every test server accepts.
pub const OPERATOR_TOKEN: &str = "aos_op_test_0123456789abcdef";

/// A running server and a client for it. Stops the server when dropped.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub backend: Backend,
    handle: ServerHandle,
    _db: TestDatabase,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request builder carrying the operator token.
    pub fn founder(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path)).bearer_auth(OPERATOR_TOKEN)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

/// Starts AOS on `backend` with default API settings.
pub async fn spawn(backend: Backend) -> TestApp {
    spawn_with(backend, ApiConfig::default()).await
}

pub async fn spawn_with(backend: Backend, api: ApiConfig) -> TestApp {
    let db = aos_drivers::testing::database(backend).await;
    let database = DatabaseConfig {
        url: Some(db.url()),
        ..DatabaseConfig::default()
    };
    let auth = AuthConfig {
        operator_token: Some(SecretString::from(OPERATOR_TOKEN)),
        ..AuthConfig::default()
    };
    let spine = Spine::open(&database, &auth).await.expect("open the spine");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let port = listener.local_addr().expect("local address").port();
    let server = HttpServer::new(move || aos_api::app(spine.clone(), api.clone()))
        .workers(1)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
    let handle = server.handle();
    tokio::spawn(server);
    TestApp {
        base: format!("http://127.0.0.1:{port}"),
        client: reqwest::Client::builder().no_proxy().build().expect("HTTP client"),
        backend,
        handle,
        _db: db,
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
