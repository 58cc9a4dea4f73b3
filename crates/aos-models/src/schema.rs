//! The one schema both backends share. Column types come from [`crate::sql_types`] for
//! anything whose encoding differs between PostgreSQL and SQLite. Keep it in step with
//! `migrations/postgres` and `migrations/sqlite` (the driver tests run every table on
//! both backends).

diesel::table! {
    use diesel::sql_types::*;
    use crate::sql_types::{Json, UtcTimestamp, Uuid};

    tenants (id) {
        id -> Uuid,
        name -> Text,
        status -> Text,
        onboarding_state -> Text,
        settings -> Json,
        created_at -> UtcTimestamp,
        updated_at -> UtcTimestamp,
    }
}
