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
        agent_id -> Nullable<Uuid>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::sql_types::{Json, UtcTimestamp, Uuid};

    agents (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        name -> Text,
        description -> Nullable<Text>,
        owner -> Nullable<Text>,
        status -> Text,
        capabilities -> Json,
        manifest_pinned -> Bool,
        created_by -> Text,
        created_at -> UtcTimestamp,
        updated_at -> UtcTimestamp,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::sql_types::{Json, UtcTimestamp, Uuid};

    agent_manifests (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        agent_id -> Uuid,
        version -> BigInt,
        jws -> Text,
        payload -> Json,
        issued_by -> Text,
        issued_at -> UtcTimestamp,
    }
}

diesel::table! {
    auth_epoch (id) {
        id -> Integer,
        epoch -> BigInt,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::sql_types::{Json, UtcTimestamp, Uuid};

    mcp_servers (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        name -> Text,
        url -> Text,
        description -> Nullable<Text>,
        transport -> Text,
        status -> Text,
        status_reason -> Nullable<Text>,
        protocol_version -> Nullable<Text>,
        capabilities -> Nullable<Json>,
        capabilities_hash -> Nullable<Text>,
        credential_ref -> Nullable<Text>,
        metadata -> Json,
        created_by -> Text,
        created_at -> UtcTimestamp,
        updated_at -> UtcTimestamp,
        discovered_at -> Nullable<UtcTimestamp>,
        last_health_check_at -> Nullable<UtcTimestamp>,
        last_latency_ms -> Nullable<BigInt>,
        consecutive_failures -> Integer,
        deleted_at -> Nullable<UtcTimestamp>,
        tool_count -> Integer,
        call_timeout_ms -> Nullable<BigInt>,
        max_output_bytes -> Nullable<BigInt>,
        manifest -> Nullable<Text>,
        manifest_issued_at -> Nullable<UtcTimestamp>,
        max_calls_per_minute -> Nullable<Integer>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::sql_types::{Json, UtcTimestamp, Uuid};

    mcp_tools (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        server_id -> Uuid,
        name -> Text,
        title -> Nullable<Text>,
        description -> Nullable<Text>,
        input_schema -> Json,
        output_schema -> Nullable<Json>,
        annotations -> Nullable<Json>,
        risk_level -> Text,
        risk_source -> Text,
        risk_reasons -> Json,
        flags -> Json,
        enabled -> Bool,
        requires_approval -> Bool,
        available -> Bool,
        tool_hash -> Text,
        discovered_at -> UtcTimestamp,
        updated_at -> UtcTimestamp,
        approved_hash -> Nullable<Text>,
        quarantined -> Bool,
        quarantine_reason -> Nullable<Text>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::sql_types::{Json, UtcTimestamp, Uuid};

    mcp_tool_invocations (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        server_id -> Uuid,
        tool_id -> Uuid,
        run_id -> Nullable<Text>,
        step_index -> Nullable<Integer>,
        actor_id -> Nullable<Text>,
        actor_type -> Text,
        trace_id -> Nullable<Text>,
        status -> Text,
        error_code -> Nullable<Text>,
        error_message -> Nullable<Text>,
        policy_decision -> Nullable<Text>,
        policy_decision_id -> Nullable<Text>,
        input_hash -> Text,
        output_hash -> Nullable<Text>,
        invoked_at -> UtcTimestamp,
        completed_at -> Nullable<UtcTimestamp>,
        duration_ms -> Nullable<BigInt>,
        policy_id -> Nullable<Text>,
        policy_revision -> Nullable<Text>,
        policy_reasons -> Nullable<Json>,
        incident_id -> Nullable<Uuid>,
        approval_id -> Nullable<Uuid>,
        output_bytes -> Nullable<BigInt>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::sql_types::{UtcTimestamp, Uuid};

    cus_integrations (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        name -> Text,
        provider -> Text,
        status -> Text,
        created_by -> Text,
        created_at -> UtcTimestamp,
        updated_at -> UtcTimestamp,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::sql_types::{Json, UtcTimestamp, Uuid};

    llm_usage_records (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        integration_id -> Uuid,
        call_id -> Text,
        provider -> Text,
        model -> Text,
        input_tokens -> BigInt,
        output_tokens -> BigInt,
        cached_tokens -> BigInt,
        cost_micros -> BigInt,
        cost_source -> Text,
        latency_ms -> Nullable<BigInt>,
        status -> Text,
        error_code -> Nullable<Text>,
        session_id -> Nullable<Text>,
        run_id -> Nullable<Text>,
        trace_id -> Nullable<Text>,
        occurred_at -> UtcTimestamp,
        received_at -> UtcTimestamp,
        metadata -> Json,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::sql_types::Uuid;

    llm_usage_daily (tenant_id, integration_id, day, provider, model) {
        tenant_id -> Uuid,
        integration_id -> Uuid,
        day -> Text,
        provider -> Text,
        model -> Text,
        calls -> BigInt,
        errors -> BigInt,
        input_tokens -> BigInt,
        output_tokens -> BigInt,
        cached_tokens -> BigInt,
        cost_micros -> BigInt,
        latency_count -> BigInt,
        latency_sum_ms -> BigInt,
        lat_b00 -> BigInt,
        lat_b01 -> BigInt,
        lat_b02 -> BigInt,
        lat_b03 -> BigInt,
        lat_b04 -> BigInt,
        lat_b05 -> BigInt,
        lat_b06 -> BigInt,
        lat_b07 -> BigInt,
        lat_b08 -> BigInt,
        lat_b09 -> BigInt,
        lat_b10 -> BigInt,
        lat_b11 -> BigInt,
        lat_b12 -> BigInt,
        lat_b13 -> BigInt,
        lat_b14 -> BigInt,
        lat_b15 -> BigInt,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::sql_types::{UtcTimestamp, Uuid};

    cus_integration_keys (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        integration_id -> Uuid,
        prefix -> Text,
        key_hash -> Text,
        can_read -> Bool,
        created_by -> Text,
        created_at -> UtcTimestamp,
        expires_at -> Nullable<UtcTimestamp>,
        revoked_at -> Nullable<UtcTimestamp>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::sql_types::{Json, UtcTimestamp, Uuid};

    audit_events (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        seq -> BigInt,
        occurred_at -> UtcTimestamp,
        actor_type -> Text,
        actor_id -> Nullable<Text>,
        event_type -> Text,
        subject_type -> Text,
        subject_id -> Nullable<Text>,
        decision -> Nullable<Text>,
        policy_revision -> Nullable<Text>,
        details -> Json,
        prev_hash -> Text,
        event_hash -> Text,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::sql_types::Uuid;

    audit_heads (tenant_id) {
        tenant_id -> Uuid,
        seq -> BigInt,
        head_hash -> Text,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::sql_types::{Json, UtcTimestamp, Uuid};

    approvals (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        subject_type -> Text,
        subject_id -> Text,
        status -> Text,
        reason -> Nullable<Text>,
        context -> Json,
        requested_by -> Text,
        created_at -> UtcTimestamp,
        expires_at -> UtcTimestamp,
        decided_at -> Nullable<UtcTimestamp>,
        decided_by -> Nullable<Text>,
        decision_reason -> Nullable<Text>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::sql_types::{Json, UtcTimestamp, Uuid};

    incidents (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        kind -> Text,
        severity -> Text,
        status -> Text,
        title -> Text,
        details -> Json,
        server_id -> Nullable<Uuid>,
        tool_id -> Nullable<Uuid>,
        invocation_id -> Nullable<Uuid>,
        created_at -> UtcTimestamp,
        resolved_at -> Nullable<UtcTimestamp>,
        resolved_by -> Nullable<Text>,
        resolution -> Nullable<Text>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::sql_types::{UtcTimestamp, Uuid};

    policy_modules (id) {
        id -> Uuid,
        owner -> Text,
        source -> Text,
        revision -> Text,
        created_by -> Text,
        created_at -> UtcTimestamp,
        retired_at -> Nullable<UtcTimestamp>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::sql_types::{UtcTimestamp, Uuid};

    killswitch_state (entity_type, entity_id) {
        entity_type -> Text,
        entity_id -> Uuid,
        tenant_id -> Uuid,
        frozen -> Bool,
        reason -> Nullable<Text>,
        changed_by -> Text,
        changed_at -> UtcTimestamp,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::sql_types::{Json, UtcTimestamp, Uuid};

    proxy_settings (tenant_id) {
        tenant_id -> Uuid,
        settings -> Json,
        updated_by -> Text,
        updated_at -> UtcTimestamp,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::sql_types::{UtcTimestamp, Uuid};

    proxy_spend (tenant_id, scope, period) {
        tenant_id -> Uuid,
        scope -> Text,
        period -> Text,
        spent_micros -> BigInt,
        reserved_micros -> BigInt,
        updated_at -> UtcTimestamp,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::sql_types::{Json, UtcTimestamp, Uuid};

    proxy_calls (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        key_id -> Nullable<Uuid>,
        actor -> Text,
        endpoint -> Text,
        model -> Text,
        provider -> Nullable<Text>,
        stream -> Bool,
        status -> Text,
        http_status -> Integer,
        error_code -> Nullable<Text>,
        latency_ms -> BigInt,
        input_tokens -> BigInt,
        cached_input_tokens -> BigInt,
        output_tokens -> BigInt,
        token_source -> Text,
        cost_micros -> BigInt,
        killswitch -> Text,
        guardrails -> Json,
        request_hash -> Text,
        request_body -> Nullable<Json>,
        response_body -> Nullable<Json>,
        replay_eligible -> Bool,
        replayed_from_id -> Nullable<Uuid>,
        created_at -> UtcTimestamp,
    }
}

diesel::joinable!(api_keys -> tenants (tenant_id));
diesel::joinable!(agents -> tenants (tenant_id));
diesel::joinable!(agent_manifests -> agents (agent_id));
diesel::joinable!(mcp_servers -> tenants (tenant_id));
diesel::joinable!(mcp_tools -> mcp_servers (server_id));
diesel::allow_tables_to_appear_in_same_query!(
    api_keys,
    tenants,
    mcp_servers,
    mcp_tools,
    mcp_tool_invocations,
    cus_integrations,
    llm_usage_records,
    llm_usage_daily,
    cus_integration_keys,
    audit_events,
    audit_heads,
    approvals,
    incidents,
    policy_modules,
    killswitch_state,
    proxy_settings,
    proxy_spend,
    proxy_calls,
    agents,
    agent_manifests
);
