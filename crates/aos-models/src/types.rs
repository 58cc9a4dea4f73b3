//! Rust values of the portable SQL types in [`crate::sql_types`], with their encodings
//! for each backend. Timestamps are normalised to UTC with microsecond precision on
//! both backends, so a value reads back equal whichever backend stored it.

use std::fmt;

use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sqlite::{Sqlite, SqliteValue};
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

use crate::sql_types;

/// A UUID column value.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, AsExpression, FromSqlRow, Serialize, Deserialize,
)]
#[diesel(sql_type = sql_types::Uuid)]
#[serde(transparent)]
pub struct DbUuid(pub uuid::Uuid);

impl DbUuid {
    /// A new time-ordered (v7) id: index-friendly on both backends.
    pub fn new_v7() -> Self {
        Self(uuid::Uuid::now_v7())
    }
}

impl From<uuid::Uuid> for DbUuid {
    fn from(value: uuid::Uuid) -> Self {
        Self(value)
    }
}

impl From<DbUuid> for uuid::Uuid {
    fn from(value: DbUuid) -> Self {
        value.0
    }
}

/// The typed ids of `aos-types` are stored as [`DbUuid`]s: drivers take typed ids, so a
/// `ToolId` cannot be passed where a `ServerId` is queried.
macro_rules! typed_id_columns {
    ($($id:ident),*) => {$(
        impl From<aos_types::$id> for DbUuid {
            fn from(value: aos_types::$id) -> Self {
                Self(value.0)
            }
        }

        impl From<DbUuid> for aos_types::$id {
            fn from(value: DbUuid) -> Self {
                Self(value.0)
            }
        }
    )*};
}

typed_id_columns!(
    TenantId,
    ApiKeyId,
    ServerId,
    ToolId,
    InvocationId,
    ApprovalId,
    IncidentId,
    IntegrationId,
    IntegrationKeyId,
    CallId,
    AgentId,
    AgentManifestId
);

impl fmt::Display for DbUuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl ToSql<sql_types::Uuid, Pg> for DbUuid {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <uuid::Uuid as ToSql<diesel::sql_types::Uuid, Pg>>::to_sql(&self.0, out)
    }
}

impl FromSql<sql_types::Uuid, Pg> for DbUuid {
    fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
        <uuid::Uuid as FromSql<diesel::sql_types::Uuid, Pg>>::from_sql(bytes).map(Self)
    }
}

impl ToSql<sql_types::Uuid, Sqlite> for DbUuid {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(self.0.hyphenated().to_string());
        Ok(IsNull::No)
    }
}

impl FromSql<sql_types::Uuid, Sqlite> for DbUuid {
    fn from_sql(bytes: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        let text = <String as FromSql<diesel::sql_types::Text, Sqlite>>::from_sql(bytes)?;
        Ok(Self(uuid::Uuid::parse_str(&text)?))
    }
}

/// A timestamp column value, always UTC with microsecond precision.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, AsExpression, FromSqlRow, Serialize, Deserialize,
)]
#[diesel(sql_type = sql_types::UtcTimestamp)]
#[serde(transparent)]
pub struct DbTime(#[serde(with = "time::serde::rfc3339")] OffsetDateTime);

impl DbTime {
    /// The current instant, normalised.
    pub fn now() -> Self {
        Self::from(OffsetDateTime::now_utc())
    }

    /// The wrapped instant (UTC).
    pub fn get(self) -> OffsetDateTime {
        self.0
    }

    /// The SQLite encoding: `YYYY-MM-DDTHH:MM:SS.ffffffZ`. Fixed width, so text order
    /// is time order for years 0000 to 9999.
    pub fn to_sortable_text(self) -> String {
        let t = self.0;
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.microsecond()
        )
    }
}

impl From<OffsetDateTime> for DbTime {
    fn from(value: OffsetDateTime) -> Self {
        let utc = value.to_offset(UtcOffset::UTC);
        // Truncate to microseconds: what PostgreSQL keeps, so both backends agree.
        let micros = utc.microsecond();
        Self(utc.replace_microsecond(micros).unwrap_or(utc))
    }
}

impl From<DbTime> for OffsetDateTime {
    fn from(value: DbTime) -> Self {
        value.0
    }
}

impl ToSql<sql_types::UtcTimestamp, Pg> for DbTime {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <OffsetDateTime as ToSql<diesel::sql_types::Timestamptz, Pg>>::to_sql(&self.0, out)
    }
}

impl FromSql<sql_types::UtcTimestamp, Pg> for DbTime {
    fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
        <OffsetDateTime as FromSql<diesel::sql_types::Timestamptz, Pg>>::from_sql(bytes).map(Self::from)
    }
}

impl ToSql<sql_types::UtcTimestamp, Sqlite> for DbTime {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(self.to_sortable_text());
        Ok(IsNull::No)
    }
}

impl FromSql<sql_types::UtcTimestamp, Sqlite> for DbTime {
    fn from_sql(bytes: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        let text = <String as FromSql<diesel::sql_types::Text, Sqlite>>::from_sql(bytes)?;
        Ok(Self::from(OffsetDateTime::parse(&text, &Rfc3339)?))
    }
}

/// A JSON column value.
#[derive(Debug, Clone, PartialEq, AsExpression, FromSqlRow, Serialize, Deserialize)]
#[diesel(sql_type = sql_types::Json)]
#[serde(transparent)]
pub struct DbJson(pub serde_json::Value);

impl From<serde_json::Value> for DbJson {
    fn from(value: serde_json::Value) -> Self {
        Self(value)
    }
}

impl ToSql<sql_types::Json, Pg> for DbJson {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <serde_json::Value as ToSql<diesel::sql_types::Jsonb, Pg>>::to_sql(&self.0, out)
    }
}

impl FromSql<sql_types::Json, Pg> for DbJson {
    fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
        <serde_json::Value as FromSql<diesel::sql_types::Jsonb, Pg>>::from_sql(bytes).map(Self)
    }
}

impl ToSql<sql_types::Json, Sqlite> for DbJson {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(serde_json::to_string(&self.0)?);
        Ok(IsNull::No)
    }
}

impl FromSql<sql_types::Json, Sqlite> for DbJson {
    fn from_sql(bytes: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        let text = <String as FromSql<diesel::sql_types::Text, Sqlite>>::from_sql(bytes)?;
        Ok(Self(serde_json::from_str(&text)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn sortable_text_is_fixed_width_utc_and_round_trips() {
        let t = DbTime::from(datetime!(2026-03-04 05:06:07.123456789 +02:00));
        let text = t.to_sortable_text();
        assert_eq!(text, "2026-03-04T03:06:07.123456Z");
        let back = DbTime::from(OffsetDateTime::parse(&text, &Rfc3339).unwrap());
        assert_eq!(back, t);
    }

    #[test]
    fn sortable_text_orders_like_time() {
        let a = DbTime::from(datetime!(2026-01-01 00:00:00.5 UTC));
        let b = DbTime::from(datetime!(2026-01-01 00:00:01 UTC));
        assert!(a < b);
        assert!(a.to_sortable_text() < b.to_sortable_text());
    }
}
