//! The kill switch's state: one row per frozen (or once frozen) tenant or API key.

use diesel::prelude::*;

use crate::schema::killswitch_state;
use crate::types::{DbTime, DbUuid};

/// `tenant`, `key` or `agent`.
pub const ENTITY_TENANT: &str = "tenant";
pub const ENTITY_KEY: &str = "key";
pub const ENTITY_AGENT: &str = "agent";

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = killswitch_state)]
#[diesel(treat_none_as_null = true)]
pub struct KillSwitchRow {
    pub entity_type: String,
    pub entity_id: DbUuid,
    pub tenant_id: DbUuid,
    pub frozen: bool,
    pub reason: Option<String>,
    pub changed_by: String,
    pub changed_at: DbTime,
}
