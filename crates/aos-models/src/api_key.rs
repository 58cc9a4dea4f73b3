//! Machine credentials (API keys). The key itself is never stored: only its SHA-256
//! hash (for lookup) and a short display prefix (for humans).

use diesel::prelude::*;

use crate::schema::api_keys;
use crate::types::{DbJson, DbTime, DbUuid};

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = api_keys)]
pub struct ApiKeyRow {
    pub id: DbUuid,
    pub tenant_id: DbUuid,
    pub name: String,
    /// `aos_sk_` and the first characters of the key: enough to recognise it.
    pub prefix: String,
    /// Lowercase hex SHA-256 of the whole key.
    pub key_hash: String,
    /// A JSON array of scope names.
    pub scopes: DbJson,
    pub created_by: String,
    pub created_at: DbTime,
    pub expires_at: Option<DbTime>,
    pub revoked_at: Option<DbTime>,
    /// The agent whose key this is: its calls are the agent's, within its capabilities.
    pub agent_id: Option<DbUuid>,
}

impl ApiKeyRow {
    /// Scope names as stored; anything that is not a string is ignored.
    pub fn scope_names(&self) -> Vec<String> {
        self.scopes
            .0
            .as_array()
            .map(|items| items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = api_keys)]
pub struct NewApiKey {
    pub id: DbUuid,
    pub tenant_id: DbUuid,
    pub name: String,
    pub prefix: String,
    pub key_hash: String,
    pub scopes: DbJson,
    pub created_by: String,
    pub created_at: DbTime,
    pub expires_at: Option<DbTime>,
    pub agent_id: Option<DbUuid>,
}
