//! Customer LLM telemetry: ingestion (idempotent per integration and `call_id`), rollups
//! maintained in the same transaction, and the reads dashboards make from those rollups.
//!
//! Costs are integers in millionths of a US dollar so sums are exact. Latency is kept as
//! a fixed histogram ([`BUCKET_BOUNDS_MS`]); p95 is the upper bound of the bucket holding
//! the 95th percentile, the same whether computed from rollups or from raw records.

use std::collections::{BTreeMap, HashMap, HashSet};

use aos_drivers::{Conn, DriverError, auth_epoch, usage as db};
pub use aos_models::usage::IntegrationRow;
use aos_models::usage::{DailyUsageRow, LATENCY_BUCKETS, UsageRecordRow};
use aos_models::{DbJson, DbTime, DbUuid};
use aos_types::IntegrationStatus;
use serde::Deserialize;
use serde_json::Value;
use time::{Date, Duration, OffsetDateTime};

use crate::error::{EngineError, EngineResult};

/// Upper bounds (inclusive, ms) of the latency histogram buckets; the last also takes
/// everything slower.
pub const BUCKET_BOUNDS_MS: [i64; LATENCY_BUCKETS] = [
    50, 100, 200, 300, 500, 750, 1_000, 1_500, 2_000, 3_000, 5_000, 7_500, 10_000, 20_000, 60_000, 120_000,
];

pub fn bucket_of(latency_ms: i64) -> usize {
    BUCKET_BOUNDS_MS
        .iter()
        .position(|b| latency_ms <= *b)
        .unwrap_or(LATENCY_BUCKETS - 1)
}

/// p95 from a histogram: the bound of the bucket where the running count reaches 95 %.
pub fn p95(buckets: &[i64; LATENCY_BUCKETS]) -> Option<i64> {
    let total: i64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let target = (total * 95 + 99) / 100;
    let mut running = 0;
    for (count, bound) in buckets.iter().zip(BUCKET_BOUNDS_MS) {
        running += count;
        if running >= target {
            return Some(bound);
        }
    }
    BUCKET_BOUNDS_MS.last().copied()
}

/// A price in US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub input: f64,
    pub output: f64,
    #[serde(default)]
    pub cached_input: f64,
}

/// `[telemetry]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetrySettings {
    /// Records per batch request.
    pub max_batch: usize,
    /// Largest `metadata` object accepted per record, in bytes.
    pub max_metadata_bytes: usize,
    /// Prices by `provider/model`, used when a record carries no cost.
    pub prices: BTreeMap<String, Price>,
    /// How long a replaced integration key stays valid after rotation, in seconds.
    pub key_rotation_grace_secs: u64,
    /// Longest range a summary or daily read may ask for, in days.
    pub max_range_days: i64,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        let prices = [
            (
                "openai/gpt-4o",
                Price {
                    input: 2.5,
                    output: 10.0,
                    cached_input: 1.25,
                },
            ),
            (
                "openai/gpt-4o-mini",
                Price {
                    input: 0.15,
                    output: 0.6,
                    cached_input: 0.075,
                },
            ),
            (
                "anthropic/claude-sonnet-4",
                Price {
                    input: 3.0,
                    output: 15.0,
                    cached_input: 0.3,
                },
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        Self {
            max_batch: 1_000,
            max_metadata_bytes: 4_096,
            prices,
            key_rotation_grace_secs: 86_400,
            max_range_days: 366,
        }
    }
}

/// One record as a client sends it.
#[derive(Debug, Clone, Default)]
pub struct UsageInput {
    pub call_id: String,
    pub provider: String,
    pub model: String,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cached_tokens: i64,
    pub cost_usd: Option<f64>,
    pub latency_ms: Option<i64>,
    pub status: String,
    pub error_code: Option<String>,
    pub session_id: Option<String>,
    pub run_id: Option<String>,
    pub trace_id: Option<String>,
    pub occurred_at: Option<OffsetDateTime>,
    pub metadata: Option<Value>,
}

/// What happened to one record of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Accepted {
        index: usize,
        call_id: String,
    },
    Duplicate {
        index: usize,
        call_id: String,
    },
    Rejected {
        index: usize,
        field: &'static str,
        reason: String,
    },
}

fn text(field: &'static str, value: &str, max: usize) -> Result<(), (&'static str, String)> {
    if value.is_empty() || value.chars().count() > max || value.chars().any(char::is_control) {
        return Err((
            field,
            format!("must be 1 to {max} characters without control characters"),
        ));
    }
    Ok(())
}

fn optional_text(field: &'static str, value: &Option<String>, max: usize) -> Result<(), (&'static str, String)> {
    value.as_deref().map_or(Ok(()), |v| text(field, v, max))
}

/// Checks one record and turns it into a row. `Err((field, reason))` rejects it.
fn to_row(
    settings: &TelemetrySettings,
    integration: &IntegrationRow,
    input: UsageInput,
    now: OffsetDateTime,
) -> Result<UsageRecordRow, (&'static str, String)> {
    text("call_id", &input.call_id, 128)?;
    text("provider", &input.provider, 100)?;
    text("model", &input.model, 200)?;
    for (field, value) in [
        ("input_tokens", input.input_tokens),
        ("output_tokens", input.output_tokens),
        ("cached_tokens", input.cached_tokens),
    ] {
        if !(0..=1_000_000_000).contains(&value) {
            return Err((field, "must be between 0 and 1000000000".into()));
        }
    }
    if let Some(latency) = input.latency_ms
        && !(0..=86_400_000).contains(&latency)
    {
        return Err(("latency_ms", "must be between 0 and 86400000".into()));
    }
    let status = input.status.to_ascii_lowercase();
    if status != "success" && status != "error" {
        return Err(("status", "must be success or error".into()));
    }
    optional_text("error_code", &input.error_code, 100)?;
    optional_text("session_id", &input.session_id, 200)?;
    optional_text("run_id", &input.run_id, 200)?;
    optional_text("trace_id", &input.trace_id, 200)?;
    let occurred_at = input.occurred_at.unwrap_or(now);
    if occurred_at < now - Duration::days(400) || occurred_at > now + Duration::days(1) {
        return Err(("occurred_at", "must be within the last 400 days".into()));
    }
    let metadata = input.metadata.unwrap_or_else(|| serde_json::json!({}));
    if !metadata.is_object() || metadata.to_string().len() > settings.max_metadata_bytes {
        return Err((
            "metadata",
            format!("must be a JSON object of at most {} bytes", settings.max_metadata_bytes),
        ));
    }
    let (cost_micros, cost_source) = match input.cost_usd {
        Some(cost) if cost.is_finite() && (0.0..=1_000_000.0).contains(&cost) => {
            ((cost * 1e6).round() as i64, "reported")
        }
        Some(_) => return Err(("cost", "must be between 0 and 1000000 US dollars".into())),
        None => match settings.prices.get(&format!("{}/{}", input.provider, input.model)) {
            Some(price) => {
                let uncached = (input.input_tokens - input.cached_tokens).max(0) as f64;
                let usd = (uncached * price.input
                    + input.cached_tokens as f64 * price.cached_input
                    + input.output_tokens as f64 * price.output)
                    / 1e6;
                ((usd * 1e6).round() as i64, "computed")
            }
            None => (0, "unknown"),
        },
    };
    Ok(UsageRecordRow {
        id: DbUuid::new_v7(),
        tenant_id: integration.tenant_id,
        integration_id: integration.id,
        call_id: input.call_id,
        provider: input.provider,
        model: input.model,
        input_tokens: input.input_tokens,
        output_tokens: input.output_tokens,
        cached_tokens: input.cached_tokens,
        cost_micros,
        cost_source: cost_source.to_owned(),
        latency_ms: input.latency_ms,
        status,
        error_code: input.error_code,
        session_id: input.session_id,
        run_id: input.run_id,
        trace_id: input.trace_id,
        occurred_at: DbTime::from(occurred_at),
        received_at: DbTime::from(now),
        metadata: DbJson(metadata),
    })
}

/// The UTC day of an instant, as stored in the rollup.
pub fn day_of(at: DbTime) -> String {
    at.get().date().to_string()
}

/// Adds one record to a rollup row.
pub fn accumulate(into: &mut DailyUsageRow, record: &UsageRecordRow) {
    into.calls += 1;
    into.errors += i64::from(record.status == "error");
    into.input_tokens += record.input_tokens;
    into.output_tokens += record.output_tokens;
    into.cached_tokens += record.cached_tokens;
    into.cost_micros += record.cost_micros;
    if let Some(latency) = record.latency_ms {
        into.latency_count += 1;
        into.latency_sum_ms += latency;
        if let Some(bucket) = into.bucket_mut(bucket_of(latency)) {
            *bucket += 1;
        }
    }
}

pub async fn get_integration(conn: &mut Conn, tenant: uuid::Uuid, id: uuid::Uuid) -> EngineResult<IntegrationRow> {
    db::get_integration(conn, tenant.into(), id.into())
        .await
        .map_err(|e| match e {
            DriverError::NotFound => EngineError::NotFound("integration"),
            other => other.into(),
        })
}

/// The tenant's integrations, deleted ones left out.
pub async fn list_integrations(conn: &mut Conn, tenant: uuid::Uuid) -> EngineResult<Vec<IntegrationRow>> {
    let mut rows = db::list_integrations(conn, tenant.into()).await?;
    rows.retain(|r| r.status() != IntegrationStatus::Deleted);
    Ok(rows)
}

/// Soft-deletes an integration: hidden from lists, its keys refused everywhere within
/// the credential poll interval, its usage kept for the dashboards and audit.
pub async fn delete_integration(conn: &mut Conn, tenant: uuid::Uuid, id: uuid::Uuid) -> EngineResult<IntegrationRow> {
    let current = get_integration(conn, tenant, id).await?;
    if current.status() == IntegrationStatus::Deleted {
        return Err(EngineError::NotFound("integration"));
    }
    let updated = db::update_integration(
        conn,
        current.tenant_id.into(),
        current.id.into(),
        None,
        Some(IntegrationStatus::Deleted.as_str().into()),
        DbTime::now(),
    )
    .await?;
    auth_epoch::bump(conn).await?;
    Ok(updated)
}

/// Renames and/or enables/disables an integration. Disabling refuses its keys on every
/// replica within the credential poll interval.
pub async fn update_integration(
    conn: &mut Conn,
    tenant: uuid::Uuid,
    id: uuid::Uuid,
    name: Option<String>,
    active: Option<bool>,
) -> EngineResult<IntegrationRow> {
    let current = get_integration(conn, tenant, id).await?;
    if current.status() == IntegrationStatus::Deleted {
        return Err(EngineError::NotFound("integration"));
    }
    if let Some(name) = &name {
        text("name", name.trim(), 200).map_err(|(f, r)| EngineError::invalid(f, r))?;
    }
    let status = active.map(|a| {
        if a {
            IntegrationStatus::Active
        } else {
            IntegrationStatus::Disabled
        }
        .as_str()
        .to_owned()
    });
    let updated = db::update_integration(
        conn,
        current.tenant_id.into(),
        current.id.into(),
        name.map(|n| n.trim().to_owned()),
        status,
        DbTime::now(),
    )
    .await
    .map_err(|e| match e {
        DriverError::Conflict(_) => EngineError::Conflict("an integration with that name exists".into()),
        other => other.into(),
    })?;
    if updated.status != current.status {
        auth_epoch::bump(conn).await?;
    }
    Ok(updated)
}

/// Creates an ACTIVE integration.
pub async fn create_integration(
    conn: &mut Conn,
    tenant: uuid::Uuid,
    name: &str,
    provider: &str,
    by: &str,
) -> EngineResult<IntegrationRow> {
    let now = DbTime::now();
    text("name", name.trim(), 200).map_err(|(f, r)| EngineError::invalid(f, r))?;
    text("provider", provider.trim(), 100).map_err(|(f, r)| EngineError::invalid(f, r))?;
    let row = IntegrationRow {
        id: DbUuid::new_v7(),
        tenant_id: tenant.into(),
        name: name.trim().to_owned(),
        provider: provider.trim().to_owned(),
        status: IntegrationStatus::Active.as_str().into(),
        created_by: by.to_owned(),
        created_at: now,
        updated_at: now,
    };
    db::insert_integration(conn, &row).await.map_err(|e| match e {
        DriverError::Conflict(_) => EngineError::Conflict(format!("an integration named {name:?} exists")),
        other => other.into(),
    })
}

/// Ingests records for one integration in the caller's transaction: every valid new
/// record is stored and added to the rollups; retries of a stored `call_id` (also within
/// the same request) are duplicates; invalid records are rejected with their field.
pub async fn ingest(
    conn: &mut Conn,
    settings: &TelemetrySettings,
    tenant: uuid::Uuid,
    integration_id: uuid::Uuid,
    inputs: Vec<UsageInput>,
) -> EngineResult<Vec<Outcome>> {
    if inputs.len() > settings.max_batch {
        return Err(EngineError::invalid(
            "records",
            format!("at most {} records per request", settings.max_batch),
        ));
    }
    let integration = get_integration(conn, tenant, integration_id).await?;
    if integration.status() != IntegrationStatus::Active {
        return Err(EngineError::Forbidden("the integration is disabled".into()));
    }
    let now = OffsetDateTime::now_utc();
    let mut outcomes = Vec::with_capacity(inputs.len());
    let mut rows = Vec::with_capacity(inputs.len());
    let mut row_index = Vec::with_capacity(inputs.len());
    let mut in_request = HashSet::new();
    for (index, input) in inputs.into_iter().enumerate() {
        match to_row(settings, &integration, input, now) {
            Err((field, reason)) => outcomes.push(Some(Outcome::Rejected { index, field, reason })),
            Ok(row) if !in_request.insert(row.call_id.clone()) => outcomes.push(Some(Outcome::Duplicate {
                index,
                call_id: row.call_id,
            })),
            Ok(row) => {
                outcomes.push(None);
                row_index.push(index);
                rows.push(row);
            }
        }
    }
    let inserted: HashSet<String> = db::insert_new_records(conn, &rows).await?.into_iter().collect();
    let mut increments: HashMap<(String, String, String), DailyUsageRow> = HashMap::new();
    for (row, index) in rows.into_iter().zip(row_index) {
        let outcome = if inserted.contains(&row.call_id) {
            let key = (day_of(row.occurred_at), row.provider.clone(), row.model.clone());
            let entry = increments.entry(key.clone()).or_insert_with(|| DailyUsageRow {
                tenant_id: row.tenant_id,
                integration_id: row.integration_id,
                day: key.0,
                provider: key.1,
                model: key.2,
                ..DailyUsageRow::default()
            });
            accumulate(entry, &row);
            Outcome::Accepted {
                index,
                call_id: row.call_id,
            }
        } else {
            Outcome::Duplicate {
                index,
                call_id: row.call_id,
            }
        };
        if let Some(slot) = outcomes.get_mut(index) {
            *slot = Some(outcome);
        }
    }
    let mut increments: Vec<DailyUsageRow> = increments.into_values().collect();
    // A fixed order keeps concurrent ingestions from deadlocking on rollup rows.
    increments.sort_by(|a, b| (&a.day, &a.provider, &a.model).cmp(&(&b.day, &b.provider, &b.model)));
    db::add_to_daily(conn, &increments).await?;
    Ok(outcomes.into_iter().flatten().collect())
}

/// Totals over a set of rollup rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub calls: i64,
    pub errors: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cached_tokens: i64,
    pub cost_micros: i64,
    pub latency_count: i64,
    pub latency_sum_ms: i64,
    pub buckets: [i64; LATENCY_BUCKETS],
}

impl Totals {
    pub fn add(&mut self, row: &DailyUsageRow) {
        self.calls += row.calls;
        self.errors += row.errors;
        self.input_tokens += row.input_tokens;
        self.output_tokens += row.output_tokens;
        self.cached_tokens += row.cached_tokens;
        self.cost_micros += row.cost_micros;
        self.latency_count += row.latency_count;
        self.latency_sum_ms += row.latency_sum_ms;
        for (total, count) in self.buckets.iter_mut().zip(row.buckets()) {
            *total += count;
        }
    }

    pub fn error_rate(&self) -> f64 {
        if self.calls == 0 {
            0.0
        } else {
            self.errors as f64 / self.calls as f64
        }
    }

    pub fn latency_avg_ms(&self) -> Option<f64> {
        (self.latency_count > 0).then(|| self.latency_sum_ms as f64 / self.latency_count as f64)
    }

    pub fn latency_p95_ms(&self) -> Option<i64> {
        p95(&self.buckets)
    }
}

/// A validated inclusive range of UTC days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayRange {
    pub start: Date,
    pub end: Date,
}

impl DayRange {
    /// At most `max_days` long, start not after end.
    pub fn new(start: Date, end: Date, max_days: i64) -> EngineResult<Self> {
        if start > end {
            return Err(EngineError::invalid("start_date", "must not be after end_date"));
        }
        if (end - start).whole_days() >= max_days {
            return Err(EngineError::invalid(
                "end_date",
                format!("the range may span at most {max_days} days"),
            ));
        }
        Ok(Self { start, end })
    }

    pub fn days(&self) -> impl Iterator<Item = Date> {
        let end = self.end;
        std::iter::successors(Some(self.start), move |d| d.next_day().filter(|n| *n <= end))
    }
}

/// Totals and a per provider/model breakdown, from the rollups.
pub async fn summary(
    conn: &mut Conn,
    tenant: uuid::Uuid,
    integration: Option<uuid::Uuid>,
    range: DayRange,
) -> EngineResult<(Totals, Vec<((String, String), Totals)>)> {
    let rows = db::daily_rows(
        conn,
        tenant.into(),
        integration.map(Into::into),
        &range.start.to_string(),
        &range.end.to_string(),
    )
    .await?;
    let mut total = Totals::default();
    let mut by: BTreeMap<(String, String), Totals> = BTreeMap::new();
    for row in &rows {
        total.add(row);
        by.entry((row.provider.clone(), row.model.clone()))
            .or_default()
            .add(row);
    }
    Ok((total, by.into_iter().collect()))
}

/// One row per day of the range (days without usage as zeros), from the rollups.
pub async fn daily(
    conn: &mut Conn,
    tenant: uuid::Uuid,
    integration: Option<uuid::Uuid>,
    range: DayRange,
) -> EngineResult<Vec<(Date, Totals)>> {
    let rows = db::daily_rows(
        conn,
        tenant.into(),
        integration.map(Into::into),
        &range.start.to_string(),
        &range.end.to_string(),
    )
    .await?;
    let mut per_day: BTreeMap<String, Totals> = BTreeMap::new();
    for row in &rows {
        per_day.entry(row.day.clone()).or_default().add(row);
    }
    Ok(range
        .days()
        .map(|d| (d, per_day.remove(&d.to_string()).unwrap_or_default()))
        .collect())
}

/// Raw records, newest first, a page at a time.
pub async fn history(
    conn: &mut Conn,
    tenant: uuid::Uuid,
    integration: Option<uuid::Uuid>,
    from: OffsetDateTime,
    to: OffsetDateTime,
    before: Option<(DbTime, DbUuid)>,
    limit: u32,
) -> EngineResult<(Vec<UsageRecordRow>, Option<(DbTime, DbUuid)>)> {
    let rows = db::records(
        conn,
        tenant.into(),
        integration.map(Into::into),
        from.into(),
        to.into(),
        before,
        i64::from(limit) + 1,
    )
    .await?;
    Ok(crate::paging::split(rows, limit, |r| (r.occurred_at, r.id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_and_p95_follow_the_bounds() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(50), 0);
        assert_eq!(bucket_of(51), 1);
        assert_eq!(bucket_of(10_000_000), LATENCY_BUCKETS - 1);
        let mut buckets = [0; LATENCY_BUCKETS];
        buckets[0] = 94;
        buckets[3] = 6;
        assert_eq!(p95(&buckets), Some(300));
        buckets[0] = 95;
        buckets[3] = 5;
        assert_eq!(p95(&buckets), Some(50));
        assert_eq!(p95(&[0; LATENCY_BUCKETS]), None);
    }

    #[test]
    fn day_ranges_are_checked() {
        let d = |s: &str| Date::parse(s, &time::format_description::well_known::Iso8601::DATE).unwrap();
        assert!(DayRange::new(d("2026-01-02"), d("2026-01-01"), 366).is_err());
        assert!(DayRange::new(d("2026-01-01"), d("2027-06-01"), 366).is_err());
        let r = DayRange::new(d("2026-02-27"), d("2026-03-02"), 366).unwrap();
        assert_eq!(r.days().count(), 4);
    }
}
