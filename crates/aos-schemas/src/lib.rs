//! # aos-schemas
//!
//! The request and response types of the AOS HTTP API and its envelopes, as plain serde
//! structs with OpenAPI schemas. Shared by the server (`aos-api`, `aos-spine`) and, later,
//! the Rust SDK, so that client and server cannot drift apart.
//!
//! **Architecture invariant:** no I/O and no behaviour beyond (de)serialisation and
//! trivial constructors. Nothing here knows SQL. The one HTTP fact here is
//! [`ErrorCode::http_status`], the status of each stable error code, because it is part of
//! the public contract and every surface (REST, `/v1`, the proxy's call log) must agree.
//!
//! **Boundary:** changing a type here changes the public API; field renames are breaking.

pub mod agents;
pub mod api_keys;
pub mod envelope;
pub mod error;
pub mod governance;
pub mod killswitch;
pub mod mcp;
pub mod proxy;
pub mod session;
pub mod system;
pub mod telemetry;
pub mod tenants;
pub mod wire;

pub use envelope::{DataEnvelope, ListEnvelope, ListMeta};
pub use error::{ErrorBody, ErrorCode, ErrorEnvelope, OpenAiErrorBody, OpenAiErrorEnvelope};
