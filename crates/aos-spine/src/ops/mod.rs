//! Every operation of the registry, by domain. Names are `domain.verb` and stable.
//!
//! | name | mode | who |
//! |---|---|---|
//! | `tenants.create` | write | founder |
//! | `tenants.get` | read | founder |
//! | `tenants.list` | read | founder |
//! | `tenants.update` | write | founder |

pub mod tenants;
