//! # aos-models (L7)
//!
//! The database schema (one diesel `table!` set for PostgreSQL and SQLite), the row
//! structs that map to it, and the domain enums stored in it.
//!
//! **Architecture invariant:** no I/O. Nothing here opens a connection, spawns a task or
//! reads the clock except through values passed in. Everything above may depend on it;
//! it depends on nothing of ours.
//!
//! **Boundary:** the portable column types in [`sql_types`] and their Rust values in
//! [`types`] are the only place that knows how a UUID, a timestamp or a JSON document is
//! encoded on each backend (native `uuid`/`timestamptz`/`jsonb` on PostgreSQL, text on
//! SQLite).

pub mod agent;
pub mod api_key;
pub mod governance;
pub mod killswitch;
pub mod mcp;
pub mod proxy;
pub mod schema;
pub mod sql_types;
pub mod tenant;
pub mod types;
pub mod usage;

pub use types::{DbJson, DbTime, DbUuid};
