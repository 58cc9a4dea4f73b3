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

diesel::table! {
    use diesel::sql_types::*;
    use crate::sql_types::{Json, UtcTimestamp, Uuid};

    api_keys (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        name -> Text,
        prefix -> Text,
        key_hash -> Text,
        scopes -> Json,
        created_by -> Text,
        created_at -> UtcTimestamp,
        expires_at -> Nullable<UtcTimestamp>,
        revoked_at -> Nullable<UtcTimestamp>,
    }
}

diesel::table! {
    auth_epoch (id) {
        id -> Integer,
        epoch -> BigInt,
    }
}

diesel::joinable!(api_keys -> tenants (tenant_id));
diesel::allow_tables_to_appear_in_same_query!(api_keys, tenants);
