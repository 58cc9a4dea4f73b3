//! Embedded migrations for both backends (`migrations/postgres`, `migrations/sqlite`),
//! applied at start-up and by `aos-server migrate`, and the check behind `/readyz`.

use diesel::migration::MigrationSource;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sqlite::Sqlite;
use diesel_async::{AsyncConnection, AsyncMigrationHarness, AsyncPgConnection, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use secrecy::ExposeSecret;

use crate::db::{Backend, Database, open_sqlite};
use crate::error::{DriverError, DriverResult};

/// The PostgreSQL migrations, compiled into the binary.
pub const POSTGRES: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");
/// The SQLite migrations, compiled into the binary.
pub const SQLITE: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

/// A fingerprint of every migration file, for caching migrated test templates.
pub const FINGERPRINT: &str = env!("AOS_MIGRATIONS_FINGERPRINT");

/// An arbitrary, fixed advisory-lock key: replicas starting together migrate one at a time.
const MIGRATION_LOCK_KEY: i64 = 0x0041_4f53_5f4d_4947; // "AOS_MIG"

diesel::table! {
    /// diesel_migrations' own bookkeeping table; we only read the versions.
    __diesel_schema_migrations (version) {
        version -> Text,
    }
}

/// Which embedded migrations the database has applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationStatus {
    /// Every embedded version, in order.
    pub known: Vec<String>,
    /// Embedded versions not yet applied.
    pub pending: Vec<String>,
}

impl MigrationStatus {
    /// True when every embedded migration has been applied.
    pub fn is_current(&self) -> bool {
        self.pending.is_empty()
    }
}

/// The versions of the embedded migrations for a backend, in order.
pub fn embedded_versions(backend: Backend) -> DriverResult<Vec<String>> {
    let versions = match backend {
        Backend::Postgres => MigrationSource::<Pg>::migrations(&POSTGRES)
            .map_err(|e| DriverError::Migration(e.to_string()))?
            .iter()
            .map(|m| m.name().version().to_string())
            .collect(),
        Backend::Sqlite => MigrationSource::<Sqlite>::migrations(&SQLITE)
            .map_err(|e| DriverError::Migration(e.to_string()))?
            .iter()
            .map(|m| m.name().version().to_string())
            .collect(),
    };
    Ok(versions)
}

impl Database {
    /// Applies every pending migration and returns the versions it applied. On
    /// PostgreSQL an advisory lock serialises replicas that start at the same time.
    pub async fn run_migrations(&self) -> DriverResult<Vec<String>> {
        let url = self.options().url.expose_secret().to_owned();
        let applied = match self.backend() {
            Backend::Postgres => {
                let mut conn = AsyncPgConnection::establish(&url).await?;
                diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))
                    .execute(&mut conn)
                    .await?;
                // The harness drives async I/O from a blocking thread; the lock is
                // released when the connection closes at the end of the task.
                tokio::task::spawn_blocking(move || {
                    let mut harness = AsyncMigrationHarness::new(conn);
                    harness
                        .run_pending_migrations(POSTGRES)
                        .map(|done| done.iter().map(ToString::to_string).collect::<Vec<_>>())
                        .map_err(|e| DriverError::Migration(e.to_string()))
                })
                .await
            }
            Backend::Sqlite => {
                let path = sqlite_path_of(self)?;
                let conn = open_sqlite(&path, self.options().sqlite_busy_timeout).await?;
                tokio::task::spawn_blocking(move || {
                    let mut harness = AsyncMigrationHarness::new(conn);
                    harness
                        .run_pending_migrations(SQLITE)
                        .map(|done| done.iter().map(ToString::to_string).collect::<Vec<_>>())
                        .map_err(|e| DriverError::Migration(e.to_string()))
                })
                .await
            }
        };
        applied.map_err(|e| DriverError::Migration(format!("migration task failed: {e}")))?
    }

    /// Compares the applied migrations with the embedded ones, with one query.
    pub async fn migration_status(&self) -> DriverResult<MigrationStatus> {
        let known = embedded_versions(self.backend())?;
        let mut conn = self.conn().await?;
        let applied: Vec<String> = match on_backend!(conn, |c| __diesel_schema_migrations::table
            .select(__diesel_schema_migrations::version)
            .load::<String>(c)
            .await)
        {
            Ok(rows) => rows,
            // A database that was never migrated has no bookkeeping table yet.
            Err(diesel::result::Error::DatabaseError(_, info))
                if info.message().contains("does not exist") || info.message().contains("no such table") =>
            {
                Vec::new()
            }
            Err(other) => return Err(other.into()),
        };
        let pending = known.iter().filter(|v| !applied.contains(v)).cloned().collect();
        Ok(MigrationStatus { known, pending })
    }
}

fn sqlite_path_of(db: &Database) -> DriverResult<String> {
    let url = db.options().url.expose_secret();
    Ok(url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url)
        .to_owned())
}
