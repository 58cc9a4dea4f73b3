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

pub mod api_keys;
pub mod cursor;
pub mod mcp;
pub mod session;
pub mod telemetry;
pub mod tenants;
