//! Connections: a pool per backend, a [`Conn`] that is either backend, and transactions
//! that the caller owns.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use diesel::sqlite::SqliteConnection;
use diesel::{IntoSql, sql_types::Integer};
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection, TransactionManager};
use secrecy::{ExposeSecret, SecretString};

use crate::error::{DriverError, DriverResult};

/// The SQLite connection type: diesel's synchronous connection run on tokio's blocking pool.
pub type SqliteConn = SyncConnectionWrapper<SqliteConnection>;

/// Which database a [`Database`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Sqlite => "sqlite",
        }
    }
}

/// How to reach the database.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// `postgres://...` or `postgresql://...` for PostgreSQL; `sqlite://PATH`,
    /// `sqlite:PATH` or a plain file path for SQLite. Secret: it may carry a password.
    pub url: SecretString,
    /// Pool size.
    pub max_connections: usize,
    /// How long to wait for a pooled connection before giving up.
    pub acquire_timeout: Duration,
    /// SQLite only: how long a writer waits for the lock before `Busy`.
    pub sqlite_busy_timeout: Duration,
}

impl ConnectOptions {
    pub fn new(url: SecretString) -> Self {
        Self {
            url,
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
            sqlite_busy_timeout: Duration::from_secs(5),
        }
    }

    /// The backend this URL selects.
    pub fn backend(&self) -> Backend {
        backend_of(self.url.expose_secret())
    }

    /// The URL with any password removed: safe to log.
    pub fn redacted_url(&self) -> String {
        redact(self.url.expose_secret())
    }
}

fn backend_of(url: &str) -> Backend {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Backend::Postgres
    } else {
        Backend::Sqlite
    }
}

/// Strips the password (and query string) from a database URL for logs and errors.
pub fn redact(url: &str) -> String {
    match backend_of(url) {
        Backend::Sqlite => url.to_owned(),
        Backend::Postgres => match url::Url::parse(url) {
            Ok(mut parsed) => {
                if parsed.password().is_some() {
                    let _ = parsed.set_password(Some("***"));
                }
                parsed.set_query(None);
                parsed.to_string()
            }
            Err(_) => "postgres://<unparseable>".to_owned(),
        },
    }
}

/// The SQLite file path of a URL (`sqlite://PATH`, `sqlite:PATH` or `PATH`).
fn sqlite_path(url: &str) -> DriverResult<PathBuf> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    if path.is_empty() || path == ":memory:" || path.contains("mode=memory") {
        return Err(DriverError::Config(
            "an in-memory SQLite database cannot be shared by a pool; give a file path".into(),
        ));
    }
    Ok(PathBuf::from(path))
}

#[derive(Clone)]
enum Pools {
    Pg(Pool<AsyncPgConnection>),
    Sqlite(Pool<SqliteConn>),
}

/// A handle on the database: cheap to clone, shared by every request.
#[derive(Clone)]
pub struct Database {
    pools: Pools,
    options: Arc<ConnectOptions>,
    /// SQLite has one writer: this process's write transactions queue here, in order,
    /// instead of spinning in SQLite's busy handler (which sleeps up to 100 ms a turn).
    writer: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("backend", &self.backend())
            .field("url", &self.options.redacted_url())
            .finish()
    }
}

/// Whether a transaction will write. On SQLite a write transaction starts with
/// `BEGIN IMMEDIATE`, taking the writer lock up front so that it waits for
/// `busy_timeout` instead of failing half-way when it first writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxMode {
    Read,
    Write,
}

/// The future a transaction body returns: boxed so the body may borrow the connection.
pub type TxFuture<'c, T> = Pin<Box<dyn Future<Output = T> + Send + 'c>>;

impl Database {
    /// Opens a pool and proves it with one connection, so a bad URL or an unreachable
    /// server fails here rather than on the first request.
    pub async fn connect(options: ConnectOptions) -> DriverResult<Self> {
        let pools = match options.backend() {
            Backend::Postgres => {
                let url = options.url.expose_secret().to_owned();
                let mut config = ManagerConfig::default();
                config.recycling_method = RecyclingMethod::Fast;
                let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(url, config);
                Pools::Pg(build_pool(manager, &options)?)
            }
            Backend::Sqlite => {
                let path = sqlite_path(options.url.expose_secret())?;
                ensure_parent_dir(&path)?;
                create_private(&path)?;
                let busy = options.sqlite_busy_timeout;
                let mut config = ManagerConfig::<SqliteConn>::default();
                config.recycling_method = RecyclingMethod::Fast;
                config.custom_setup = Box::new(move |url| {
                    let url = url.to_owned();
                    Box::pin(async move { open_sqlite(&url, busy).await })
                });
                let manager = AsyncDieselConnectionManager::<SqliteConn>::new_with_config(
                    path.to_string_lossy().into_owned(),
                    config,
                );
                Pools::Sqlite(build_pool(manager, &options)?)
            }
        };
        let db = Self {
            pools,
            options: Arc::new(options),
            writer: Arc::new(tokio::sync::Mutex::new(())),
        };
        db.conn().await?;
        Ok(db)
    }

    pub fn backend(&self) -> Backend {
        match self.pools {
            Pools::Pg(_) => Backend::Postgres,
            Pools::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// The connection options this handle was opened with.
    pub fn options(&self) -> &ConnectOptions {
        &self.options
    }

    /// A pooled connection, not in a transaction.
    pub async fn conn(&self) -> DriverResult<Conn> {
        Ok(Conn {
            inner: match &self.pools {
                Pools::Pg(pool) => ConnInner::Pg(pool.get().await?),
                Pools::Sqlite(pool) => ConnInner::Sqlite(pool.get().await?),
            },
        })
    }

    /// Runs `body` inside one transaction on one connection: committed when it returns
    /// `Ok`, rolled back when it returns `Err`. Driver calls made with the connection it
    /// receives compose into that transaction.
    pub async fn transaction<T, E, F>(&self, mode: TxMode, body: F) -> Result<T, E>
    where
        F: for<'c> FnOnce(&'c mut Conn) -> TxFuture<'c, Result<T, E>> + Send,
        E: From<DriverError>,
        T: Send,
    {
        let _writer = match (mode, &self.pools) {
            (TxMode::Write, Pools::Sqlite(_)) => Some(self.writer.lock().await),
            _ => None,
        };
        let mut conn = self.conn().await?;
        conn.begin(mode).await?;
        match body(&mut conn).await {
            Ok(value) => {
                conn.commit().await?;
                Ok(value)
            }
            Err(err) => {
                if let Err(rollback) = conn.rollback().await {
                    tracing::warn!(error = %rollback, "rollback failed; connection discarded");
                }
                Err(err)
            }
        }
    }

    /// A trivial round trip.
    pub async fn ping(&self) -> DriverResult<()> {
        let mut conn = self.conn().await?;
        let one: i32 = on_backend!(conn, |c| diesel::select(1_i32.into_sql::<Integer>())
            .get_result(c)
            .await)?;
        if one == 1 {
            Ok(())
        } else {
            Err(DriverError::Database("SELECT 1 returned something else".into()))
        }
    }

    /// Closes the pool: idle connections are dropped and new requests fail.
    pub fn close(&self) {
        match &self.pools {
            Pools::Pg(pool) => pool.close(),
            Pools::Sqlite(pool) => pool.close(),
        }
    }
}

fn build_pool<C>(manager: AsyncDieselConnectionManager<C>, options: &ConnectOptions) -> DriverResult<Pool<C>>
where
    C: diesel_async::pooled_connection::PoolableConnection + Send + 'static,
    for<'a> diesel::dsl::select<diesel::dsl::AsExprOf<i32, Integer>>: diesel_async::methods::LoadQuery<'a, C, i32>,
    diesel::query_builder::SqlQuery: diesel::query_builder::QueryFragment<C::Backend>,
{
    Pool::builder(manager)
        .max_size(options.max_connections.max(1))
        .wait_timeout(Some(options.acquire_timeout))
        .create_timeout(Some(options.acquire_timeout))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| DriverError::Config(e.to_string()))
}

fn ensure_parent_dir(path: &Path) -> DriverResult<()> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => std::fs::create_dir_all(parent)
            .map_err(|e| DriverError::Config(format!("cannot create {}: {e}", parent.display()))),
        _ => Ok(()),
    }
}

/// Creates the SQLite file readable by its owner only (0600) if it does not exist yet.
/// SQLite gives the `-wal` and `-shm` files it creates the database file's mode, so they
/// are private too: the database holds key hashes, audit chains and call logs.
fn create_private(path: &Path) -> DriverResult<()> {
    if path.as_os_str() == ":memory:" || path.exists() {
        return Ok(());
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(DriverError::Config(format!("cannot create {}: {e}", path.display()))),
    }
}

/// Opens one SQLite connection tuned for a server: WAL so readers never block the
/// writer, a busy timeout instead of instant `SQLITE_BUSY`, enforced foreign keys.
pub(crate) async fn open_sqlite(path: &str, busy_timeout: Duration) -> diesel::ConnectionResult<SqliteConn> {
    let mut conn = SqliteConn::establish(path).await?;
    let pragmas = format!(
        "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
        busy_timeout.as_millis()
    );
    conn.batch_execute(&pragmas)
        .await
        .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))?;
    Ok(conn)
}

// One Conn per running operation, never stored in bulk: boxing the PostgreSQL variant
// would cost an allocation per checkout to save stack space nobody is short of.
#[allow(clippy::large_enum_variant)]
enum ConnInner {
    Pg(Object<AsyncPgConnection>),
    Sqlite(Object<SqliteConn>),
}

/// One pooled connection to either backend. Driver functions take `&mut Conn`; whether
/// it is inside a transaction is the caller's business.
pub struct Conn {
    inner: ConnInner,
}

/// The backend-specific connection behind a [`Conn`], for [`on_backend!`].
pub enum BackendConn<'a> {
    Pg(&'a mut AsyncPgConnection),
    Sqlite(&'a mut SqliteConn),
}

impl Conn {
    pub fn backend(&self) -> Backend {
        match self.inner {
            ConnInner::Pg(_) => Backend::Postgres,
            ConnInner::Sqlite(_) => Backend::Sqlite,
        }
    }

    pub(crate) fn backend_mut(&mut self) -> BackendConn<'_> {
        match &mut self.inner {
            ConnInner::Pg(c) => BackendConn::Pg(c),
            ConnInner::Sqlite(c) => BackendConn::Sqlite(c),
        }
    }

    async fn begin(&mut self, mode: TxMode) -> DriverResult<()> {
        match (self.backend_mut(), mode) {
            (BackendConn::Sqlite(c), TxMode::Write) => {
                c.spawn_blocking(|inner| {
                    diesel::connection::AnsiTransactionManager::begin_transaction_sql(inner, "BEGIN IMMEDIATE")
                })
                .await?
            }
            (BackendConn::Sqlite(c), TxMode::Read) => begin(c).await?,
            (BackendConn::Pg(c), _) => begin(c).await?,
        }
        Ok(())
    }

    async fn commit(&mut self) -> DriverResult<()> {
        on_backend!(self, |c| commit(c).await)?;
        Ok(())
    }

    async fn rollback(&mut self) -> DriverResult<()> {
        on_backend!(self, |c| rollback(c).await)?;
        Ok(())
    }
}

async fn begin<C: AsyncConnection>(conn: &mut C) -> diesel::QueryResult<()> {
    C::TransactionManager::begin_transaction(conn).await
}

async fn commit<C: AsyncConnection>(conn: &mut C) -> diesel::QueryResult<()> {
    C::TransactionManager::commit_transaction(conn).await
}

async fn rollback<C: AsyncConnection>(conn: &mut C) -> diesel::QueryResult<()> {
    C::TransactionManager::rollback_transaction(conn).await
}
