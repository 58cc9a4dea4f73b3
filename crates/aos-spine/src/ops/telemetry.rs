//! Customer LLM telemetry: integrations and their keys (tenant admins), ingestion
//! (integration keys), and reads (`telemetry:read`, or an integration key that may read,
//! limited to its own integration).

use aos_engines::EngineError;
use aos_engines::auth::Scope;
use aos_engines::auth::integration_keys::{self, IntegrationKey as KeyRow};
use aos_engines::telemetry::{self as engine, DayRange, IntegrationRow, Outcome, Totals, UsageInput};
use aos_schemas::ErrorCode;
use aos_schemas::telemetry as api;
use aos_schemas::{ListEnvelope, ListMeta};
use secrecy::ExposeSecret;
use time::{Date, Duration, OffsetDateTime};
use uuid::Uuid;

use crate::context::AuthContext;
use crate::error::{SpineError, SpineResult};
use crate::op::{Effect, Mode, OpFuture, Operation, OperationContext};
use crate::ops::cursor;

fn invalid(field: &str, message: impl Into<String>) -> SpineError {
    SpineError::new(ErrorCode::ValidationFailed, message).on_field(field)
}

fn integration_to_api(row: IntegrationRow) -> api::Integration {
    api::Integration {
        id: row.id.into(),
        name: row.name,
        provider: row.provider,
        status: row.status,
        created_by: row.created_by,
        created_at: row.created_at.into(),
        updated_at: row.updated_at.into(),
    }
}

fn key_to_api(row: KeyRow) -> api::IntegrationKey {
    let now = OffsetDateTime::now_utc();
    let status = if row.revoked_at.is_some() {
        "revoked"
    } else if row.expires_at.is_some_and(|t| t.get() <= now) {
        "expired"
    } else if row.expires_at.is_some() {
        "expiring"
    } else {
        "active"
    };
    api::IntegrationKey {
        id: row.id.into(),
        integration_id: row.integration_id.into(),
        prefix: row.prefix,
        can_read: row.can_read,
        status: status.into(),
        created_by: row.created_by,
        created_at: row.created_at.into(),
        expires_at: row.expires_at.map(Into::into),
        revoked_at: row.revoked_at.map(Into::into),
    }
}

fn totals_to_api(t: &Totals) -> api::UsageTotals {
    api::UsageTotals {
        calls: t.calls,
        errors: t.errors,
        error_rate: t.error_rate(),
        input_tokens: t.input_tokens,
        output_tokens: t.output_tokens,
        cached_tokens: t.cached_tokens,
        cost: t.cost_micros as f64 / 1e6,
        latency_avg_ms: t.latency_avg_ms(),
        latency_p95_ms: t.latency_p95_ms(),
    }
}

/// `telemetry.integrations.create`
pub struct CreateIntegration {
    pub actor: AuthContext,
    pub request: api::CreateIntegrationRequest,
}

impl Operation for CreateIntegration {
    const NAME: &'static str = "telemetry.integrations.create";
    const MODE: Mode = Mode::Write;
    type Output = api::Integration;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let tenant = self.actor.tenant_with(Scope::Admin)?;
            let by = self.actor.actor();
            let row =
                engine::create_integration(cx.conn, tenant, &self.request.name, &self.request.provider, &by).await?;
            Ok(integration_to_api(row))
        })
    }
}

/// `telemetry.integrations.list`
pub struct ListIntegrations {
    pub actor: AuthContext,
}

impl Operation for ListIntegrations {
    const NAME: &'static str = "telemetry.integrations.list";
    const MODE: Mode = Mode::Read;
    type Output = ListEnvelope<api::Integration>;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let tenant = self.actor.tenant_with(Scope::TelemetryRead)?;
            let mut rows = engine::list_integrations(cx.conn, tenant).await?;
            if let Some(own) = self.actor.integration() {
                rows.retain(|r| Uuid::from(r.id) == own);
            }
            let total = rows.len() as u64;
            Ok(ListEnvelope {
                data: rows.into_iter().map(integration_to_api).collect(),
                meta: ListMeta {
                    total: Some(total),
                    limit: u32::try_from(total).unwrap_or(u32::MAX),
                    next_cursor: None,
                },
            })
        })
    }
}

/// `telemetry.integrations.get`
pub struct GetIntegration {
    pub actor: AuthContext,
    pub id: Uuid,
}

impl Operation for GetIntegration {
    const NAME: &'static str = "telemetry.integrations.get";
    const MODE: Mode = Mode::Read;
    type Output = api::Integration;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let tenant = self.actor.tenant_with(Scope::TelemetryRead)?;
            if self.actor.integration().is_some_and(|own| own != self.id) {
                return Err(EngineError::NotFound("integration").into());
            }
            Ok(integration_to_api(
                engine::get_integration(cx.conn, tenant, self.id).await?,
            ))
        })
    }
}

/// `telemetry.integrations.update`
pub struct UpdateIntegration {
    pub actor: AuthContext,
    pub id: Uuid,
    pub request: api::UpdateIntegrationRequest,
}

impl Operation for UpdateIntegration {
    const NAME: &'static str = "telemetry.integrations.update";
    const MODE: Mode = Mode::Write;
    type Output = api::Integration;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let tenant = self.actor.tenant_with(Scope::Admin)?;
            let active = match self.request.status.as_deref() {
                None => None,
                Some("ACTIVE") => Some(true),
                Some("DISABLED") => Some(false),
                Some(_) => return Err(invalid("status", "status: must be ACTIVE or DISABLED")),
            };
            let row = engine::update_integration(cx.conn, tenant, self.id, self.request.name, active).await?;
            cx.after_commit(Effect::CredentialsChanged);
            Ok(integration_to_api(row))
        })
    }
}

/// `telemetry.integrations.delete` (soft: usage is kept, keys are refused)
pub struct DeleteIntegration {
    pub actor: AuthContext,
    pub id: Uuid,
}

impl Operation for DeleteIntegration {
    const NAME: &'static str = "telemetry.integrations.delete";
    const MODE: Mode = Mode::Write;
    type Output = api::Integration;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let tenant = self.actor.tenant_with(Scope::Admin)?;
            let row = engine::delete_integration(cx.conn, tenant, self.id).await?;
            cx.after_commit(Effect::CredentialsChanged);
            Ok(integration_to_api(row))
        })
    }
}

/// `telemetry.integration_keys.issue`: a new key; earlier ones expire after the grace.
pub struct IssueKey {
    pub actor: AuthContext,
    pub integration_id: Uuid,
    pub request: api::CreateIntegrationKeyRequest,
}

impl Operation for IssueKey {
    const NAME: &'static str = "telemetry.integration_keys.issue";
    const MODE: Mode = Mode::Write;
    type Output = api::CreatedIntegrationKey;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let tenant = self.actor.tenant_with(Scope::Admin)?;
            let grace = Duration::seconds(i64::try_from(cx.telemetry.key_rotation_grace_secs).unwrap_or(i64::MAX));
            let by = self.actor.actor();
            let (row, key) =
                integration_keys::issue(cx.conn, tenant, self.integration_id, self.request.can_read, &by, grace)
                    .await?;
            // Issuing rotates: the previous key's grace period starts now.
            cx.after_commit(Effect::CredentialsChanged);
            tracing::info!(key_id = %row.id, integration_id = %row.integration_id, prefix = %row.prefix, "integration key issued");
            Ok(api::CreatedIntegrationKey {
                integration_key: key_to_api(row),
                key: key.expose_secret().to_owned(),
            })
        })
    }
}

/// `telemetry.integration_keys.list`
pub struct ListKeys {
    pub actor: AuthContext,
    pub integration_id: Uuid,
}

impl Operation for ListKeys {
    const NAME: &'static str = "telemetry.integration_keys.list";
    const MODE: Mode = Mode::Read;
    type Output = Vec<api::IntegrationKey>;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let tenant = self.actor.tenant_with(Scope::Admin)?;
            Ok(integration_keys::list(cx.conn, tenant, self.integration_id)
                .await?
                .into_iter()
                .map(key_to_api)
                .collect())
        })
    }
}

/// `telemetry.integration_keys.revoke`
pub struct RevokeKey {
    pub actor: AuthContext,
    pub integration_id: Uuid,
    pub key_id: Uuid,
}

impl Operation for RevokeKey {
    const NAME: &'static str = "telemetry.integration_keys.revoke";
    const MODE: Mode = Mode::Write;
    type Output = api::IntegrationKey;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let tenant = self.actor.tenant_with(Scope::Admin)?;
            let row = integration_keys::revoke(cx.conn, tenant, self.integration_id, self.key_id).await?;
            cx.after_commit(Effect::CredentialsChanged);
            Ok(key_to_api(row))
        })
    }
}

fn to_input(raw: &serde_json::value::RawValue) -> Result<UsageInput, (String, String)> {
    if let Some(field) = aos_schemas::wire::nul_field(raw.get().as_bytes()) {
        return Err((field, aos_schemas::wire::NUL_REFUSED.to_owned()));
    }
    let mut deserializer = serde_json::Deserializer::from_str(raw.get());
    let record: api::UsageRecord = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        let field = match aos_schemas::wire::field_of(&path, &message) {
            body if body == "body" => "record".to_owned(),
            field => field,
        };
        (field, message)
    })?;
    Ok(UsageInput {
        call_id: record.call_id,
        provider: record.provider,
        model: record.model,
        input_tokens: record.input_tokens,
        output_tokens: record.output_tokens,
        cached_tokens: record.cached_tokens,
        cost_usd: record.cost,
        latency_ms: record.latency_ms,
        status: record.status,
        error_code: record.error_code,
        session_id: record.session_id,
        run_id: record.run_id,
        trace_id: record.trace_id,
        occurred_at: record.occurred_at,
        metadata: record.metadata,
    })
}

/// `telemetry.ingest`: records of the calling integration, in one transaction: a 2xx
/// means every accepted record is committed.
pub struct Ingest {
    pub actor: AuthContext,
    pub records: Vec<Box<serde_json::value::RawValue>>,
}

impl Operation for Ingest {
    const NAME: &'static str = "telemetry.ingest";
    const MODE: Mode = Mode::Write;
    type Output = api::IngestResult;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let tenant = self.actor.tenant_with(Scope::TelemetryWrite)?;
            let integration = self.actor.integration().ok_or_else(|| {
                SpineError::new(
                    ErrorCode::Forbidden,
                    "ingestion takes an integration key (X-CUS-Integration-Key)",
                )
            })?;
            if self.records.len() > cx.telemetry.max_batch {
                return Err(invalid(
                    "records",
                    format!("records: at most {} per request", cx.telemetry.max_batch),
                ));
            }
            // Records that do not even parse are rejected here, with their field.
            let mut parsed = Vec::with_capacity(self.records.len());
            let mut early: Vec<(usize, String, String)> = Vec::new();
            let mut positions = Vec::with_capacity(self.records.len());
            for (index, raw) in self.records.iter().enumerate() {
                match to_input(raw) {
                    Ok(input) => {
                        positions.push(index);
                        parsed.push(input);
                    }
                    Err((field, reason)) => early.push((index, field, reason)),
                }
            }
            let outcomes = engine::ingest(cx.conn, cx.telemetry, tenant, integration, parsed).await?;
            let mut results: Vec<api::RecordResult> = early
                .into_iter()
                .map(|(index, field, reason)| api::RecordResult {
                    index,
                    status: "rejected".into(),
                    call_id: None,
                    field: Some(field),
                    reason: Some(reason),
                })
                .collect();
            for outcome in outcomes {
                let result = match outcome {
                    Outcome::Accepted { index, call_id } => api::RecordResult {
                        index: positions.get(index).copied().unwrap_or(index),
                        status: "accepted".into(),
                        call_id: Some(call_id),
                        field: None,
                        reason: None,
                    },
                    Outcome::Duplicate { index, call_id } => api::RecordResult {
                        index: positions.get(index).copied().unwrap_or(index),
                        status: "duplicate".into(),
                        call_id: Some(call_id),
                        field: None,
                        reason: None,
                    },
                    Outcome::Rejected { index, field, reason } => api::RecordResult {
                        index: positions.get(index).copied().unwrap_or(index),
                        status: "rejected".into(),
                        call_id: None,
                        field: Some(field.to_owned()),
                        reason: Some(reason),
                    },
                };
                results.push(result);
            }
            results.sort_by_key(|r| r.index);
            let count = |s: &str| results.iter().filter(|r| r.status == s).count();
            Ok(api::IngestResult {
                accepted: count("accepted"),
                duplicates: count("duplicate"),
                rejected: count("rejected"),
                results,
            })
        })
    }
}

/// Which integration a read covers: an integration key only ever its own.
async fn read_scope(
    cx: &mut OperationContext<'_>,
    actor: &AuthContext,
    asked: Option<Uuid>,
) -> SpineResult<(Uuid, Option<Uuid>)> {
    let tenant = actor.tenant_with(Scope::TelemetryRead)?;
    let integration = match (actor.integration(), asked) {
        (Some(own), Some(asked)) if own != asked => return Err(EngineError::NotFound("integration").into()),
        (Some(own), _) => Some(own),
        (None, Some(asked)) => {
            engine::get_integration(cx.conn, tenant, asked).await?;
            Some(asked)
        }
        (None, None) => None,
    };
    Ok((tenant, integration))
}

fn parse_day(field: &str, value: Option<&str>) -> SpineResult<Option<Date>> {
    value
        .map(|v| {
            Date::parse(v, &time::format_description::well_known::Iso8601::DATE)
                .map_err(|_| invalid(field, format!("{field}: must be a date, YYYY-MM-DD")))
        })
        .transpose()
}

fn day_range(query: &api::UsageRangeQuery, max_days: i64) -> SpineResult<DayRange> {
    let end = parse_day("end_date", query.end_date.as_deref())?.unwrap_or_else(|| OffsetDateTime::now_utc().date());
    let start = parse_day("start_date", query.start_date.as_deref())?.unwrap_or(end - Duration::days(29));
    DayRange::new(start, end, max_days).map_err(SpineError::from)
}

/// `telemetry.usage.summary` (from the rollups)
pub struct Summary {
    pub actor: AuthContext,
    pub query: api::UsageRangeQuery,
}

impl Operation for Summary {
    const NAME: &'static str = "telemetry.usage.summary";
    const MODE: Mode = Mode::Read;
    type Output = api::UsageSummary;

    fn run(self, mut cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let range = day_range(&self.query, cx.telemetry.max_range_days)?;
            let (tenant, integration) = read_scope(&mut cx, &self.actor, self.query.integration_id).await?;
            let (total, by) = engine::summary(cx.conn, tenant, integration, range).await?;
            Ok(api::UsageSummary {
                start_date: range.start,
                end_date: range.end,
                integration_id: integration,
                totals: totals_to_api(&total),
                by_model: by
                    .into_iter()
                    .map(|((provider, model), t)| api::ModelUsage {
                        provider,
                        model,
                        totals: totals_to_api(&t),
                    })
                    .collect(),
            })
        })
    }
}

/// `telemetry.usage.daily` (from the rollups; every day of the range)
pub struct Daily {
    pub actor: AuthContext,
    pub query: api::UsageRangeQuery,
}

impl Operation for Daily {
    const NAME: &'static str = "telemetry.usage.daily";
    const MODE: Mode = Mode::Read;
    type Output = Vec<api::DailyUsage>;

    fn run(self, mut cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let range = day_range(&self.query, cx.telemetry.max_range_days)?;
            let (tenant, integration) = read_scope(&mut cx, &self.actor, self.query.integration_id).await?;
            let days = engine::daily(cx.conn, tenant, integration, range).await?;
            Ok(days
                .into_iter()
                .map(|(date, t)| api::DailyUsage {
                    date,
                    totals: totals_to_api(&t),
                })
                .collect())
        })
    }
}

/// `telemetry.usage.history` (raw records, newest first, keyset pages)
pub struct History {
    pub actor: AuthContext,
    pub query: api::UsageHistoryQuery,
}

fn parse_instant(field: &str, value: Option<&str>) -> SpineResult<Option<OffsetDateTime>> {
    value
        .map(|v| {
            OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
                .map_err(|_| invalid(field, format!("{field}: must be an RFC 3339 timestamp")))
        })
        .transpose()
}

impl Operation for History {
    const NAME: &'static str = "telemetry.usage.history";
    const MODE: Mode = Mode::Read;
    type Output = ListEnvelope<api::UsageHistoryRecord>;

    fn run(self, mut cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let end = parse_instant("end", self.query.end.as_deref())?.unwrap_or_else(OffsetDateTime::now_utc);
            let start = parse_instant("start", self.query.start.as_deref())?.unwrap_or(end - Duration::days(1));
            if start >= end {
                return Err(invalid("start", "start: must be before end"));
            }
            if end - start > Duration::days(cx.telemetry.max_range_days) {
                return Err(invalid(
                    "end",
                    format!("end: the range may span at most {} days", cx.telemetry.max_range_days),
                ));
            }
            let limit = cursor::limit(self.query.limit, 100, 500)?;
            let before = self.query.cursor.as_deref().map(cursor::decode).transpose()?;
            let (tenant, integration) = read_scope(&mut cx, &self.actor, self.query.integration_id).await?;
            let (rows, next) = engine::history(cx.conn, tenant, integration, start, end, before, limit).await?;
            Ok(ListEnvelope {
                data: rows
                    .into_iter()
                    .map(|r| api::UsageHistoryRecord {
                        id: r.id.into(),
                        integration_id: r.integration_id.into(),
                        call_id: r.call_id,
                        provider: r.provider,
                        model: r.model,
                        input_tokens: r.input_tokens,
                        output_tokens: r.output_tokens,
                        cached_tokens: r.cached_tokens,
                        cost: r.cost_micros as f64 / 1e6,
                        cost_source: r.cost_source,
                        latency_ms: r.latency_ms,
                        status: r.status,
                        error_code: r.error_code,
                        session_id: r.session_id,
                        run_id: r.run_id,
                        trace_id: r.trace_id,
                        occurred_at: r.occurred_at.into(),
                        metadata: r.metadata.0,
                    })
                    .collect(),
                meta: ListMeta {
                    total: None,
                    limit,
                    next_cursor: next.map(|(at, id)| cursor::encode(at, id)),
                },
            })
        })
    }
}
