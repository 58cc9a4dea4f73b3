//! # aos-drivers (L6)
//!
//! Pure CRUD over diesel-async, written once and type-checked for both backends:
//! PostgreSQL (`AsyncPgConnection`, the production backend) and SQLite
//! (`SyncConnectionWrapper<SqliteConnection>`, the embedded default).
//!
//! **Architecture invariant:** no HTTP, no protocol logic, no business rules. A driver
//! function takes a [`Conn`] and plain values, runs SQL, and returns rows or a
//! [`DriverError`]. It never opens its own transaction: the caller (the spine) decides
//! whether the connection it passes is inside one, so driver calls compose.
//!
//! **Boundary:** only this crate knows SQL and diesel-async. Each query body is written
//! once inside [`on_backend!`], which expands it for each backend so both are
//! type-checked by the compiler.

#[macro_use]
mod macros;

pub mod agents;
pub mod api_keys;
pub mod auth_epoch;
pub mod db;
pub mod error;
pub mod governance;
pub mod killswitch;
pub mod mcp;
pub mod migrations;
pub mod proxy;
pub mod tenants;
#[cfg(feature = "testing")]
pub mod testing;
pub mod usage;

pub use db::{Backend, Conn, ConnectOptions, Database, TxFuture, TxMode};
pub use error::{DriverError, DriverResult};
pub use migrations::MigrationStatus;
