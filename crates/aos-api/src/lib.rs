//! # aos-api (L2)
//!
//! HTTP translation only: routing, extraction and validation of requests, credentials
//! from headers, and the response envelopes. Every handler calls the spine and renders
//! what it returns.
//!
//! **Architecture invariant:** depends on `aos-spine` and `aos-schemas` only. No SQL, no
//! engine calls, no business rules: if a handler needs to decide something, the decision
//! belongs in an operation.
//!
//! **Boundary:** only this crate knows HTTP. Status codes, headers, actix types and the
//! JSON error envelope stop here.

mod app;
pub mod auth;
pub mod config;
pub mod error;
pub mod extract;
mod openapi;
pub mod request_context;
mod routes;

pub use app::{app, openapi};
pub use config::ApiConfig;
pub use error::ApiError;
