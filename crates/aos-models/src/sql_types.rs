//! Portable SQL types: one diesel `SqlType` per concept, carrying both its PostgreSQL
//! and its SQLite representation, so that one `table!` schema serves both backends.

use diesel::query_builder::QueryId;
use diesel::sql_types::SqlType;

/// A UUID: native `uuid` on PostgreSQL, canonical lowercase hyphenated text on SQLite.
#[derive(Debug, Clone, Copy, Default, QueryId, SqlType)]
#[diesel(postgres_type(oid = 2950, array_oid = 2951))]
#[diesel(sqlite_type(name = "Text"))]
pub struct Uuid;

/// An instant in UTC: `timestamptz` on PostgreSQL; on SQLite, RFC 3339 text with a
/// fixed six-digit fraction and a `Z` suffix, so that text order is time order.
#[derive(Debug, Clone, Copy, Default, QueryId, SqlType)]
#[diesel(postgres_type(oid = 1184, array_oid = 1185))]
#[diesel(sqlite_type(name = "Text"))]
pub struct UtcTimestamp;

/// A JSON document: `jsonb` on PostgreSQL, JSON text on SQLite.
#[derive(Debug, Clone, Copy, Default, QueryId, SqlType)]
#[diesel(postgres_type(oid = 3802, array_oid = 3807))]
#[diesel(sqlite_type(name = "Text"))]
pub struct Json;
