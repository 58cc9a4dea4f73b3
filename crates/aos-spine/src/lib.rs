//! # aos-spine (L4)
//!
//! The operation registry. Every thing AOS does on behalf of a caller is a named
//! [`Operation`]: the spine opens the connection or the transaction it needs, runs it to
//! completion in its own task (so a client that disconnects never leaves a write
//! half-done), and turns engine results into `aos-schemas` types and [`SpineError`]s
//! with stable codes.
//!
//! **Architecture invariant:** the spine owns transactions. Engines and drivers receive a
//! connection; they never begin or commit. The spine depends on `aos-drivers` only for
//! the database handle and transactions, never for queries.
//!
//! **Boundary:** `aos-api` sees only this crate and `aos-schemas`: operations take and
//! return schema types, and fail with [`SpineError`].

mod background;
pub mod config;
pub mod context;
pub mod error;
mod executor;
pub mod op;
pub mod ops;
mod spine;

pub use aos_engines::auth::Scope;
pub use config::{
    ApprovalSettings, AuthConfig, ConfigError, DatabaseConfig, ManifestSettings, McpSettings, OpaSettings,
    PolicySettings, ProxyConfig, SpineConfig, TelemetrySettings,
};
pub use context::AuthContext;
pub use error::{SpineError, SpineResult};
pub use op::{Mode, Operation, OperationContext, Workflow, WorkflowContext};
pub use spine::{Backend, Spine};
