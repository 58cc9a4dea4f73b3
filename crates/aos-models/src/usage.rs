//! Customer LLM telemetry: integrations, raw usage records, and the daily rollup.

use aos_types::IntegrationStatus;
use diesel::prelude::*;

use crate::schema::{cus_integration_keys, cus_integrations, llm_usage_daily, llm_usage_records};
use crate::types::{DbJson, DbTime, DbUuid};

/// Number of latency histogram buckets in [`DailyUsageRow`].
pub const LATENCY_BUCKETS: usize = 16;

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable, Insertable)]
#[diesel(table_name = cus_integrations)]
pub struct IntegrationRow {
    pub id: DbUuid,
    pub tenant_id: DbUuid,
    pub name: String,
    pub provider: String,
    /// An [`IntegrationStatus`]; read it with [`IntegrationRow::status`].
    pub status: String,
    pub created_by: String,
    pub created_at: DbTime,
    pub updated_at: DbTime,
}

impl IntegrationRow {
    /// The stored status, read leniently: an unknown value reads as `Disabled` (its keys
    /// refused, its usage still listed).
    pub fn status(&self) -> IntegrationStatus {
        IntegrationStatus::parse(&self.status).unwrap_or(IntegrationStatus::Disabled)
    }
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable, Insertable)]
#[diesel(table_name = llm_usage_records)]
pub struct UsageRecordRow {
    pub id: DbUuid,
    pub tenant_id: DbUuid,
    pub integration_id: DbUuid,
    /// The client's idempotency key, unique per integration.
    pub call_id: String,
    pub provider: String,
    pub model: String,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cached_tokens: i64,
    /// Cost in millionths of a US dollar.
    pub cost_micros: i64,
    /// `reported` (by the client), `computed` (from the price table) or `unknown`.
    pub cost_source: String,
    pub latency_ms: Option<i64>,
    /// `success` or `error`.
    pub status: String,
    pub error_code: Option<String>,
    pub session_id: Option<String>,
    pub run_id: Option<String>,
    pub trace_id: Option<String>,
    pub occurred_at: DbTime,
    pub received_at: DbTime,
    pub metadata: DbJson,
}

/// One rollup row: the sums of every record of one tenant, integration, UTC day
/// (`YYYY-MM-DD`), provider and model; also the increment applied at ingestion.
#[derive(Debug, Clone, Default, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = llm_usage_daily)]
pub struct DailyUsageRow {
    pub tenant_id: DbUuid,
    pub integration_id: DbUuid,
    pub day: String,
    pub provider: String,
    pub model: String,
    pub calls: i64,
    pub errors: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cached_tokens: i64,
    pub cost_micros: i64,
    pub latency_count: i64,
    pub latency_sum_ms: i64,
    pub lat_b00: i64,
    pub lat_b01: i64,
    pub lat_b02: i64,
    pub lat_b03: i64,
    pub lat_b04: i64,
    pub lat_b05: i64,
    pub lat_b06: i64,
    pub lat_b07: i64,
    pub lat_b08: i64,
    pub lat_b09: i64,
    pub lat_b10: i64,
    pub lat_b11: i64,
    pub lat_b12: i64,
    pub lat_b13: i64,
    pub lat_b14: i64,
    pub lat_b15: i64,
}

impl DailyUsageRow {
    /// The latency histogram as an array.
    pub fn buckets(&self) -> [i64; LATENCY_BUCKETS] {
        [
            self.lat_b00,
            self.lat_b01,
            self.lat_b02,
            self.lat_b03,
            self.lat_b04,
            self.lat_b05,
            self.lat_b06,
            self.lat_b07,
            self.lat_b08,
            self.lat_b09,
            self.lat_b10,
            self.lat_b11,
            self.lat_b12,
            self.lat_b13,
            self.lat_b14,
            self.lat_b15,
        ]
    }

    /// Mutable access to histogram bucket `i` (`None` past the last).
    pub fn bucket_mut(&mut self, i: usize) -> Option<&mut i64> {
        Some(match i {
            0 => &mut self.lat_b00,
            1 => &mut self.lat_b01,
            2 => &mut self.lat_b02,
            3 => &mut self.lat_b03,
            4 => &mut self.lat_b04,
            5 => &mut self.lat_b05,
            6 => &mut self.lat_b06,
            7 => &mut self.lat_b07,
            8 => &mut self.lat_b08,
            9 => &mut self.lat_b09,
            10 => &mut self.lat_b10,
            11 => &mut self.lat_b11,
            12 => &mut self.lat_b12,
            13 => &mut self.lat_b13,
            14 => &mut self.lat_b14,
            15 => &mut self.lat_b15,
            _ => return None,
        })
    }
}

/// A key an integration sends as `X-CUS-Integration-Key` (hash and prefix only).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable, Insertable)]
#[diesel(table_name = cus_integration_keys)]
pub struct IntegrationKeyRow {
    pub id: DbUuid,
    pub tenant_id: DbUuid,
    pub integration_id: DbUuid,
    pub prefix: String,
    pub key_hash: String,
    /// May also read the integration's usage.
    pub can_read: bool,
    pub created_by: String,
    pub created_at: DbTime,
    /// Set when a newer key replaced this one: valid until then (the grace period).
    pub expires_at: Option<DbTime>,
    pub revoked_at: Option<DbTime>,
}
