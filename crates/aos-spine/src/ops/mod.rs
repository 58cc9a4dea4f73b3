//! Every operation of the registry, by domain. Names are `domain.verb` and stable.
//!
//! | name | mode | who |
//! |---|---|---|
//! | `tenants.create` | write | founder |
//! | `tenants.get` | read | founder |
//! | `tenants.list` | read | founder |
//! | `tenants.update` | write | founder |
//! | `session.context` | read | anyone authenticated |
//! | `api_keys.create` | write | founder (any tenant); tenant admin (own tenant) |
//! | `api_keys.list` | read | founder (any tenant); tenant admin (own tenant) |
//! | `api_keys.revoke` | write | tenant admin (own tenant) |
//! | `api_keys.revoke_any` | write | founder |
//! | `integrations.mcp_servers.register_server` | workflow | `mcp:admin` |
//! | `integrations.mcp_servers.discover_tools` | workflow | `mcp:admin` |
//! | `integrations.mcp_servers.health_check` | workflow | `mcp:read` |
//! | `integrations.mcp_servers.get_server` / `list_servers` / `list_tools` / `get_tool` / `get_invocations` | read | `mcp:read` |
//! | `integrations.mcp_servers.delete_server` / `set_tool_enabled` / `set_tool_risk` | write | `mcp:admin` |
//! | `integrations.mcp_servers.invoke_tool` | workflow | `mcp:invoke` |
//! | `integrations.mcp_servers.get_manifest` / `locate_tool` | read | `mcp:read` |
//! | `approvals.create` | write | `mcp:invoke` |
//! | `approvals.get` / `list` | read | `approvals:decide`, `mcp:read` or `mcp:invoke` |
//! | `approvals.approve` | workflow | `approvals:decide` |
//! | `approvals.deny` | write | `approvals:decide` |
//! | `audit.list_events` / `verify` | read | `mcp:read` |
//! | `incidents.list` / `get` | read | `mcp:read` |
//! | `incidents.resolve` | write | `mcp:admin` |
//! | `policy.get` | read | `mcp:read` |
//! | `policy.put` / `policy.update_settings` | write | `mcp:admin` (tenant module); founder (platform module) |
//! | `telemetry.integrations.create` / `update` / `delete` | write | `admin` |
//! | `telemetry.integrations.list` / `get` | read | `telemetry:read` |
//! | `telemetry.integration_keys.issue` / `revoke` | write | `admin` |
//! | `telemetry.integration_keys.list` | read | `admin` |
//! | `telemetry.ingest` | write | integration key |
//! | `killswitch.change` | write | founder (any tenant or key); `admin` (own tenant and keys) |
//! | `killswitch.status` | read | founder (`?tenant_id=`); `admin`, `proxy:invoke` or `mcp:invoke` (own tenant) |
//! | `mcp.gateway.catalog` | read | `mcp:invoke` (the `/mcp` endpoint's `tools/list`; `tools/call` runs `invoke_tool`) |
//! | `mcp.gateway.named_catalog` | read | `mcp:read` or `mcp:invoke` |
//! | `telemetry.usage.summary` / `daily` / `history` | read | `telemetry:read` (integration keys: own, with `can_read`) |

pub mod api_keys;
pub mod cursor;
pub mod gateway;
pub mod governance;
pub mod killswitch;
pub mod mcp;
pub mod proxy;
pub mod session;
pub mod telemetry;
pub mod tenants;
