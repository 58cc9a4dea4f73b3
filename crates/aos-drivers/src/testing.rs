//! Test isolation by construction (feature `testing`).
//!
//! Every PostgreSQL test gets its own database, cloned from a template that was migrated
//! once per migration fingerprint; every SQLite test gets its own file in a temporary
//! directory. Nothing is shared, so tests run in parallel without `#[serial]`.
//!
//! PostgreSQL comes from `AOS_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`). When it cannot be reached this panics
//! with a message saying so: a PostgreSQL test never passes by skipping.

// Test support: a failed setup step is a failed test, so it panics with what went wrong.
#![allow(clippy::expect_used)]

use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use secrecy::SecretString;

use crate::db::{Backend, ConnectOptions, Database};
use crate::migrations::FINGERPRINT;

/// The default server for PostgreSQL tests.
pub const DEFAULT_TEST_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The maintenance URL of the PostgreSQL test server.
pub fn admin_url() -> String {
    std::env::var("AOS_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_TEST_DATABASE_URL.to_owned())
}

/// A database that exists for one test and is removed when dropped.
pub struct TestDatabase {
    db: Database,
    url: SecretString,
    pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// The URL of this test's database, e.g. to start a server on it.
    pub fn url(&self) -> SecretString {
        self.url.clone()
    }

    pub fn backend(&self) -> Backend {
        self.db.backend()
    }

    /// PostgreSQL only: refuses (`false`) or allows new connections to this database, and
    /// on refusal ends the open ones, so the database is as good as down for its pool.
    pub async fn set_reachable(&self, reachable: bool) {
        let name = self
            .pg_name
            .as_deref()
            .expect("set_reachable is for PostgreSQL test databases");
        let mut conn = AsyncPgConnection::establish(&admin_url())
            .await
            .expect("connect to the admin database");
        diesel::sql_query(format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS {reachable}"))
            .execute(&mut conn)
            .await
            .expect("change ALLOW_CONNECTIONS");
        if !reachable {
            diesel::sql_query(format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
            ))
            .execute(&mut conn)
            .await
            .expect("end the open connections");
        }
    }
}

/// A test database is its [`Database`] to code that takes `&Database`.
impl std::ops::Deref for TestDatabase {
    type Target = Database;

    fn deref(&self) -> &Database {
        &self.db
    }
}

/// Generates `postgres::NAME` and `sqlite::NAME` for each `async fn NAME(&TestDatabase)`
/// (or `&Database`: a test database derefs to one), each test on a database of its own.
/// The one copy for every crate's tests (`aos_tests` has its own for a whole server).
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod postgres { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let test_db = $crate::testing::postgres().await;
                assert_eq!(test_db.backend(), $crate::Backend::Postgres);
                super::$name(&test_db).await;
            }
        )* }
        mod sqlite { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let test_db = $crate::testing::sqlite().await;
                assert_eq!(test_db.backend(), $crate::Backend::Sqlite);
                super::$name(&test_db).await;
            }
        )* }
    };
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        self.db.close();
        let Some(name) = self.pg_name.take() else {
            return;
        };
        // Drop runs outside async; use a private runtime on a plain thread.
        let admin = admin_url();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut conn) = AsyncPgConnection::establish(&admin).await {
                    let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

/// A fresh database on `backend`.
pub async fn database(backend: Backend) -> TestDatabase {
    match backend {
        Backend::Postgres => postgres().await,
        Backend::Sqlite => sqlite().await,
    }
}

/// A fresh, migrated SQLite database in its own temporary directory.
pub async fn sqlite() -> TestDatabase {
    let dir = tempfile::tempdir().expect("create a temporary directory for the SQLite test database");
    let path = dir.path().join("aos-test.db");
    let url = SecretString::from(format!("sqlite://{}", path.display()));
    let db = Database::connect(options(url.clone()))
        .await
        .expect("open the SQLite test database");
    db.run_migrations().await.expect("migrate the SQLite test database");
    TestDatabase {
        db,
        url,
        pg_name: None,
        _dir: Some(dir),
    }
}

/// A fresh, migrated PostgreSQL database cloned from the template.
pub async fn postgres() -> TestDatabase {
    let admin = admin_url();
    let mut conn = match AsyncPgConnection::establish(&admin).await {
        Ok(conn) => conn,
        Err(e) => panic!(
            "PostgreSQL for tests is unreachable at {} ({e}). Start it, point AOS_TEST_DATABASE_URL at one, \
             or run only the SQLite tests with AOS_TEST_BACKENDS=sqlite.",
            crate::db::redact(&admin)
        ),
    };
    let template = ensure_template(&mut conn, &admin).await;
    let name = format!("aos_test_{}", uuid::Uuid::new_v4().simple());
    diesel::sql_query(format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""))
        .execute(&mut conn)
        .await
        .expect("clone the PostgreSQL test template");
    let url = SecretString::from(with_database(&admin, &name));
    let db = Database::connect(options(url.clone()))
        .await
        .expect("open the PostgreSQL test database");
    // The template is keyed by the migrations' fingerprint, which cargo may not recompute
    // for a brand-new migration folder: apply whatever the clone lacks (usually nothing).
    db.run_migrations()
        .await
        .expect("bring the PostgreSQL test database up to date");
    TestDatabase {
        db,
        url,
        pg_name: Some(name),
        _dir: None,
    }
}

fn options(url: SecretString) -> ConnectOptions {
    let mut options = ConnectOptions::new(url);
    options.max_connections = 4;
    options.acquire_timeout = Duration::from_secs(10);
    options
}

fn with_database(admin: &str, name: &str) -> String {
    let mut url = url::Url::parse(admin).expect("AOS_TEST_DATABASE_URL is a URL");
    url.set_path(name);
    url.to_string()
}

#[derive(diesel::QueryableByName)]
struct Exists {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    exists: bool,
}

/// Creates `aos_tpl_<fingerprint>` once, under an advisory lock so parallel test
/// processes agree; built under a temporary name and renamed when fully migrated, so a
/// crash never leaves a half-migrated template behind.
async fn ensure_template(conn: &mut AsyncPgConnection, admin: &str) -> String {
    let template = format!("aos_tpl_{FINGERPRINT}");
    let building = format!("{template}_building");
    diesel::sql_query("SELECT pg_advisory_lock(4242001)")
        .execute(conn)
        .await
        .expect("take the template lock");
    let found: Exists = diesel::sql_query(format!(
        "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = '{template}') AS exists"
    ))
    .get_result(conn)
    .await
    .expect("look up the template");
    if !found.exists {
        diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{building}\" WITH (FORCE)"))
            .execute(conn)
            .await
            .expect("drop a stale template");
        diesel::sql_query(format!("CREATE DATABASE \"{building}\""))
            .execute(conn)
            .await
            .expect("create the template");
        let url = SecretString::from(with_database(admin, &building));
        let db = Database::connect(options(url)).await.expect("open the template");
        db.run_migrations().await.expect("migrate the template");
        db.close();
        drop(db);
        diesel::sql_query(format!("ALTER DATABASE \"{building}\" RENAME TO \"{template}\""))
            .execute(conn)
            .await
            .expect("publish the template");
    }
    diesel::sql_query("SELECT pg_advisory_unlock(4242001)")
        .execute(conn)
        .await
        .expect("release the template lock");
    template
}

#[derive(diesel::QueryableByName)]
struct RowText {
    #[diesel(sql_type = diesel::sql_types::Text)]
    row: String,
}

#[derive(diesel::QueryableByName)]
struct ColumnName {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
}

/// Every row of `table` rendered as JSON text, for tests that prove what is (and is not)
/// stored. `table` must be a plain identifier.
pub async fn table_as_text(db: &Database, table: &str) -> Vec<String> {
    assert!(
        table.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
        "plain table name"
    );
    let mut conn = db.conn().await.expect("a connection");
    let rows: Vec<RowText> = match db.backend() {
        Backend::Postgres => on_backend!(conn, |c| diesel::sql_query(format!(
            "SELECT row_to_json(t)::text AS row FROM \"{table}\" t"
        ))
        .load(c)
        .await)
        .expect("dump table"),
        Backend::Sqlite => {
            let columns: Vec<ColumnName> = on_backend!(conn, |c| diesel::sql_query(format!(
                "SELECT name FROM pragma_table_info('{table}')"
            ))
            .load(c)
            .await)
            .expect("table columns");
            let list = columns
                .iter()
                .map(|c| format!("\"{}\"", c.name))
                .collect::<Vec<_>>()
                .join(", ");
            on_backend!(conn, |c| diesel::sql_query(format!(
                "SELECT json_array({list}) AS row FROM \"{table}\""
            ))
            .load(c)
            .await)
            .expect("dump table")
        }
    };
    rows.into_iter().map(|r| r.row).collect()
}

/// Runs raw SQL (for tests that tamper with stored rows on purpose).
pub async fn execute_sql(db: &Database, sql: &str) -> Result<usize, crate::DriverError> {
    let mut conn = db.conn().await?;
    let n = on_backend!(conn, |c| diesel::sql_query(sql).execute(c).await)?;
    Ok(n)
}

/// Holds writes to `table` back for `duration` (a slow database, as the writers see it):
/// PostgreSQL locks the table in EXCLUSIVE mode, SQLite holds its one write lock; both
/// inside a transaction on a connection of `db`, rolled back at the end.
pub async fn hold_writes(db: &Database, table: &str, duration: Duration) -> Result<(), crate::DriverError> {
    let sql = match db.backend() {
        Backend::Postgres => format!("LOCK TABLE \"{table}\" IN EXCLUSIVE MODE"),
        Backend::Sqlite => format!("DELETE FROM \"{table}\" WHERE 0"),
    };
    let held: Result<(), crate::DriverError> = db
        .transaction(crate::TxMode::Write, move |conn| {
            Box::pin(async move {
                on_backend!(conn, |c| diesel::sql_query(sql.as_str()).execute(c).await)?;
                tokio::time::sleep(duration).await;
                // Roll back: nothing was meant to change.
                Err(crate::DriverError::Conflict("held".into()))
            })
        })
        .await;
    match held {
        Err(crate::DriverError::Conflict(_)) => Ok(()),
        other => other,
    }
}
