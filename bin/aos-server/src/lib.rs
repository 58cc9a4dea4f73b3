//! `aos-server` as a library: the server's own configuration type and start-up steps, so
//! the binary (`main.rs`) and the integration tests start AOS the same way — the same
//! defaults, the same validation, the same spine opening and start-up migrations. What the
//! tests change is only what isolation needs (a database of their own, a random port).

pub mod config;

use anyhow::Context;
use aos_spine::Spine;

pub use config::Config;

/// Validates `config` and opens the spine on it, applying pending migrations when
/// `database.migrate_on_start` (the default): what `aos-server serve` does before it binds.
pub async fn start(config: &Config) -> anyhow::Result<Spine> {
    config.validate().context("configuration")?;
    let spine = open(config).await?;
    if config.database.migrate_on_start {
        let applied = spine.migrate().await.context("applying migrations")?;
        if !applied.is_empty() {
            tracing::info!(applied = ?applied, "migrations applied");
        }
    }
    Ok(spine)
}

/// Opens the spine on `config` (no migrations).
pub async fn open(config: &Config) -> anyhow::Result<Spine> {
    tracing::info!(backend = config.database.backend_name(), url = %config.database.redacted_url(), "opening database");
    Spine::open(&config.spine()).await.context("starting the spine")
}
