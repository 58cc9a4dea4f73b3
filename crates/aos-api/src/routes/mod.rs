//! Handlers, one module per area. Each one: extract, call the spine, render.

pub mod admin_tenants;
pub mod agents;
pub mod api_keys;
pub mod governance;
pub mod killswitch;
pub mod mcp_endpoint;
pub mod mcp_servers;
pub mod proxy;
pub mod session;
pub mod system;
pub mod telemetry;
