//! The composition root: the [`Spine`] (the database handle and shared engine state),
//! built by [`Spine::open`], which starts the background jobs (`background`). Operations
//! run through the executor (`executor`: [`Spine::execute`], [`Spine::run`]).

use std::sync::Arc;

use std::net::IpAddr;
use std::time::Duration;

use aos_drivers::Database;
use aos_engines::auth::{AuthSettings, Authenticator, JwtVerifier, OperatorToken, cache};
use aos_engines::governance::policy::{self, PolicyChecker};
use aos_engines::mcp::client::McpRuntime;
use aos_engines::mcp::manifest::ManifestSigner;
use aos_schemas::ErrorCode;
use aos_schemas::system::{Readiness, ReadinessCheck};
use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::TaskTracker;

use crate::background;
use crate::config::SpineConfig;
use crate::context::AuthContext;
use crate::error::{SpineError, SpineResult};

pub use aos_drivers::Backend;

/// State every operation may read.
pub(crate) struct Shared {
    pub(crate) db: Database,
    pub(crate) auth: Arc<Authenticator>,
    pub(crate) mcp: Arc<McpRuntime>,
    pub(crate) telemetry: aos_engines::telemetry::TelemetrySettings,
    pub(crate) policy: Arc<dyn PolicyChecker>,
    pub(crate) signer: Arc<ManifestSigner>,
    pub(crate) approvals: crate::config::ApprovalSettings,
    /// What is frozen, as this replica knows it (refreshed every [`KILLSWITCH_POLL`]).
    pub(crate) kill_switch: Arc<aos_engines::killswitch::KillSwitch>,
    /// The OpenAI-compatible proxy: providers, prices, settings cache, call log writer.
    pub(crate) proxy: crate::ops::proxy::ProxyRuntime,
    /// Stops the background loops (credential epoch, health checks) when the last handle goes.
    _poller: DropGuard,
    /// The runtime that opened the spine: operations run here, not on the (per-worker,
    /// shorter-lived) runtime of whoever called them.
    pub(crate) runtime: tokio::runtime::Handle,
    /// Operations in flight, so shutdown can wait for them.
    pub(crate) tasks: TaskTracker,
}

/// The operation registry. Cheap to clone; one per process, shared by all workers.
#[derive(Clone)]
pub struct Spine {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Spine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spine").field("db", &self.shared.db).finish()
    }
}

/// Why the spine could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot open the database at {url}: {source}")]
    Database {
        url: String,
        source: aos_drivers::DriverError,
    },
    #[error("operator token: {0}")]
    OperatorToken(String),
    #[error("{0}")]
    Jwt(String),
    #[error("{0}")]
    Mcp(String),
    #[error("{0}")]
    Policy(String),
    #[error("{0}")]
    Manifest(String),
    #[error("{0}")]
    Proxy(String),
}

/// How often each replica re-reads the frozen set: a freeze anywhere takes effect
/// everywhere within this interval.
pub const KILLSWITCH_POLL: Duration = Duration::from_millis(250);

impl Shared {
    /// Runs `task` on the spine's runtime, tracked so shutdown waits for it.
    pub(crate) fn spawn_tracked<F>(&self, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        drop(self.tasks.spawn_on(task, &self.runtime));
    }

    /// Like [`Shared::spawn_tracked`], returning the task's handle.
    pub(crate) fn spawn_tracked_handle<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tasks.spawn_on(task, &self.runtime)
    }
}

impl Spine {
    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    pub(crate) fn shared_arc(&self) -> Arc<Shared> {
        Arc::clone(&self.shared)
    }

    /// Opens the database and loads credentials. Does not migrate: see [`Spine::migrate`].
    pub async fn open(config: &SpineConfig) -> Result<Self, StartError> {
        config.validate()?;
        let (database, auth_config) = (&config.database, &config.auth);
        let mcp = Arc::new(McpRuntime::new(config.mcp.clone()).map_err(StartError::Mcp)?);
        let policy = policy::checker(&config.policy).map_err(StartError::Policy)?;
        let signer = Arc::new(ManifestSigner::load(&config.manifest).map_err(StartError::Manifest)?);
        tracing::info!(engine = policy.kind(), manifest_kid = signer.kid(), "governance ready");
        let operator = match &auth_config.operator_token {
            Some(token) => OperatorToken::new(token.clone()).map_err(|e| StartError::OperatorToken(e.to_string()))?,
            None => {
                let path = &auth_config.operator_token_file;
                let (token, generated) =
                    OperatorToken::load_or_generate(path).map_err(|e| StartError::OperatorToken(e.to_string()))?;
                if generated {
                    tracing::warn!(path = %path.display(), "generated an operator token (mode 0600); read it from the file");
                } else {
                    tracing::info!(path = %path.display(), "using the operator token from file");
                }
                token
            }
        };
        let jwt = match &auth_config.jwt {
            Some(settings) => Some(JwtVerifier::new(settings).map_err(StartError::Jwt)?),
            None => None,
        };
        let db = Database::connect(database.connect_options())
            .await
            .map_err(|source| StartError::Database {
                url: database.redacted_url(),
                source,
            })?;
        let auth = Arc::new(Authenticator::new(AuthSettings {
            operator,
            jwt,
            max_failures: auth_config.max_failed_attempts,
            failure_window: Duration::from_secs(auth_config.failure_window_secs),
            cache_ttl: Duration::from_secs(auth_config.cache_ttl_secs),
            // Unknown until the poller's first read; entries cached meanwhile are dropped then.
            epoch: -1,
        }));
        let stop = CancellationToken::new();
        // Keeps this replica's credential cache in step with the database: when the epoch
        // moves (a key revoked, a tenant suspended, on any replica) the cache is dropped.
        tokio::spawn({
            let (db, auth) = (db.clone(), Arc::clone(&auth));
            background::every(
                "credential-epoch poller",
                Duration::from_millis(auth_config.cache_poll_ms),
                stop.clone(),
                move || {
                    let (db, auth) = (db.clone(), Arc::clone(&auth));
                    async move {
                        let mut conn = db.conn().await.map_err(|e| e.to_string())?;
                        cache::refresh(auth.cache(), &mut conn)
                            .await
                            .map(drop)
                            .map_err(|e| e.to_string())
                    }
                },
            )
        });
        let kill_switch = Arc::new(aos_engines::killswitch::KillSwitch::new());
        // Every replica re-reads the frozen set: a freeze anywhere holds everywhere within
        // [`KILLSWITCH_POLL`] (this replica's own changes apply after their commit).
        tokio::spawn({
            let (db, switch) = (db.clone(), Arc::clone(&kill_switch));
            background::every("kill-switch poller", KILLSWITCH_POLL, stop.clone(), move || {
                let (db, switch) = (db.clone(), Arc::clone(&switch));
                async move {
                    let mut conn = db.conn().await.map_err(|e| e.to_string())?;
                    switch.refresh(&mut conn).await.map_err(|e| e.to_string())
                }
            })
        });
        if config.approvals.sweep_interval_ms > 0 {
            tokio::spawn({
                let (db, mcp) = (db.clone(), Arc::clone(&mcp));
                background::every(
                    "governance sweep",
                    Duration::from_millis(config.approvals.sweep_interval_ms),
                    stop.clone(),
                    move || {
                        let (db, mcp) = (db.clone(), Arc::clone(&mcp));
                        async move { background::sweep_governance(&db, &mcp).await }
                    },
                )
            });
        }
        if config.mcp.health_interval_secs > 0 {
            tokio::spawn(background::schedule_health_checks(
                db.clone(),
                Arc::clone(&mcp),
                stop.clone(),
            ));
        }
        let proxy_engine = aos_engines::proxy::Proxy::new(config.proxy.clone()).map_err(StartError::Proxy)?;
        if proxy_engine.enabled() {
            // Token tables and guardrail patterns load off the request path.
            tokio::task::spawn_blocking(|| {
                aos_engines::proxy::tokens::preload();
                aos_engines::proxy::guardrails::preload();
            });
        }
        if config.proxy.log.retention_days > 0 {
            tokio::spawn(background::sweep_proxy_calls(
                db.clone(),
                config.proxy.log.retention_days,
                stop.clone(),
            ));
        }
        let proxy = crate::ops::proxy::ProxyRuntime {
            writer: aos_engines::proxy::writer::Writer::start(db.clone(), &config.proxy.log),
            engine: proxy_engine,
        };
        Ok(Self {
            shared: Arc::new(Shared {
                db,
                auth,
                mcp,
                telemetry: config.telemetry.clone(),
                policy,
                signer,
                approvals: config.approvals.clone(),
                kill_switch,
                proxy,
                _poller: stop.drop_guard(),
                runtime: tokio::runtime::Handle::current(),
                tasks: TaskTracker::new(),
            }),
        })
    }

    pub fn backend(&self) -> Backend {
        self.shared.db.backend()
    }

    /// The manifest verification keys (`/.well-known/jwks.json`).
    pub fn jwks(&self) -> serde_json::Value {
        self.shared.signer.jwks()
    }

    /// Applies pending migrations; returns the versions applied.
    pub async fn migrate(&self) -> SpineResult<Vec<String>> {
        self.shared.db.run_migrations().await.map_err(|e| {
            tracing::error!(error = %e, "migration failed");
            SpineError::new(ErrorCode::ServiceUnavailable, format!("migration failed: {e}"))
        })
    }

    /// Readiness of this replica: database reachable and migrations current.
    pub async fn readiness(&self) -> Readiness {
        let checks = aos_engines::system::readiness(&self.shared.db).await;
        let ready = checks.iter().all(|c| c.ok);
        Readiness {
            status: if ready { "ready" } else { "not_ready" }.to_owned(),
            backend: self.backend().as_str().to_owned(),
            checks: checks
                .into_iter()
                .map(|c| ReadinessCheck {
                    name: c.name.to_owned(),
                    ok: c.ok,
                    detail: c.detail,
                })
                .collect(),
        }
    }

    /// Verifies a bearer credential presented from `peer`. Answers from the credential
    /// cache when it can; reads the database otherwise.
    pub async fn authenticate(&self, presented: &str, peer: Option<IpAddr>) -> SpineResult<AuthContext> {
        let db = self.shared.db.clone();
        let principal = self
            .shared
            .auth
            .authenticate(presented, peer, move || async move { db.conn().await })
            .await?;
        Ok(principal.into())
    }

    /// Waits up to `timeout` for operations still in flight (e.g. of clients that hung up)
    /// to finish, then closes the pool. Call once the HTTP server has stopped.
    pub async fn shutdown(&self, timeout: std::time::Duration) {
        self.shared.tasks.close();
        if tokio::time::timeout(timeout, self.shared.tasks.wait()).await.is_err() {
            tracing::warn!(
                in_flight = self.shared.tasks.len(),
                "operations still running at shutdown"
            );
        }
        // Streams have ended; flush the call log before the pool goes.
        self.shared.proxy.writer.shutdown().await;
        let stats = self.shared.proxy.writer.stats();
        tracing::info!(
            written = stats.written,
            dropped = stats.dropped,
            "proxy call log flushed"
        );
        self.shared.db.close();
    }

    /// Verifies an integration key (`X-CUS-Integration-Key`) presented from `peer`.
    pub async fn authenticate_integration(&self, presented: &str, peer: Option<IpAddr>) -> SpineResult<AuthContext> {
        let db = self.shared.db.clone();
        let principal = self
            .shared
            .auth
            .authenticate_integration(presented, peer, move || async move { db.conn().await })
            .await?;
        Ok(principal.into())
    }
}
