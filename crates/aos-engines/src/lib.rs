//! # aos-engines (L5)
//!
//! Business logic: the rules of each domain (tenant lifecycle, credentials, and later
//! MCP governance, the LLM proxy, telemetry) and every outbound protocol.
//!
//! **Architecture invariant:** an engine function takes a [`aos_drivers::Conn`] handed to
//! it by the spine and never opens a transaction or a pool itself; it knows nothing of
//! HTTP. It reads and writes only through `aos-drivers`.
//!
//! **Boundary:** engines return domain types (re-exported from `aos-models`) and
//! [`EngineError`]; the spine turns them into API types and error codes.

pub mod agents;
pub mod auth;
pub mod error;
pub mod governance;
pub mod killswitch;
pub mod mcp;
pub mod outbound;
pub mod paging;
pub mod proxy;
pub mod system;
pub mod telemetry;
pub mod tenants;

pub use error::{EngineError, EngineResult};
