//! AOS's integration tests, one binary: a real server over loopback HTTP on both backends
//! (one module per area), the SDK and CLI against it, and the layer-rule canary.

mod agents;
mod cli;
mod governance;
mod http_api;
mod identity;
mod invariants;
mod jwt;
mod killswitch;
mod layer_canary;
mod mcp_gateway;
mod mcp_registry;
mod proxy;
mod sdk;
mod secrets_in_logs;
mod telemetry;
mod wire;
