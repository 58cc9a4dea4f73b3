//! MCP: the registry of customer MCP servers (discovery, health, tool governance) and the
//! protocol client that reaches them.

pub mod client;
pub mod credentials;
pub mod gateway;
pub mod hash;
pub mod invoke;
pub mod manifest;
pub mod poison;
pub mod registry;
pub mod risk;
pub mod sse;
