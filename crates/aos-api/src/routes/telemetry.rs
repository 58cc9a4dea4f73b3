//! `/api/v1/integrations` (a tenant's telemetry integrations and their keys) and
//! `/api/v1/telemetry` (ingestion with `X-CUS-Integration-Key`, and the dashboards' reads).

use actix_web::{HttpResponse, delete, get, patch, post, web};
use aos_schemas::telemetry::{
    CreateIntegrationKeyRequest, CreateIntegrationRequest, CreatedIntegrationKey, DailyUsage, IngestResult,
    Integration, IntegrationKey, RecordResult, UpdateIntegrationRequest, UsageBatch, UsageHistoryQuery,
    UsageHistoryRecord, UsageRangeQuery, UsageRecord, UsageSummary,
};
use aos_schemas::{DataEnvelope, ErrorCode, ErrorEnvelope, ListEnvelope};
use aos_spine::Spine;
use aos_spine::ops::telemetry::{
    CreateIntegration, Daily, DeleteIntegration, GetIntegration, History, Ingest, IssueKey, ListIntegrations, ListKeys,
    RevokeKey, Summary, UpdateIntegration,
};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{Json, JsonKeepNul};

fn ok<T: serde::Serialize>(data: T) -> HttpResponse {
    HttpResponse::Ok().json(DataEnvelope::new(data))
}

/// Create a telemetry integration (tenant admins).
#[utoipa::path(tag = "telemetry", security(("bearer" = [])), request_body = CreateIntegrationRequest,
    responses((status = 201, body = DataEnvelope<Integration>), (status = 409, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
#[post("")]
pub async fn create_integration(
    spine: web::Data<Spine>,
    caller: Caller,
    body: Json<CreateIntegrationRequest>,
) -> Result<HttpResponse, ApiError> {
    let integration = spine
        .execute(CreateIntegration {
            actor: caller.0,
            request: body.into_inner(),
        })
        .await?;
    Ok(HttpResponse::Created().json(DataEnvelope::new(integration)))
}

/// The tenant's integrations.
#[utoipa::path(tag = "telemetry", security(("bearer" = [])), responses((status = 200, body = ListEnvelope<Integration>)))]
#[get("")]
pub async fn list_integrations(spine: web::Data<Spine>, caller: Caller) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(spine.execute(ListIntegrations { actor: caller.0 }).await?))
}

/// One integration.
#[utoipa::path(tag = "telemetry", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = DataEnvelope<Integration>), (status = 404, body = ErrorEnvelope)))]
#[get("/{id}")]
pub async fn get_integration(
    spine: web::Data<Spine>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    Ok(ok(spine
        .execute(GetIntegration {
            actor: caller.0,
            id: id.into_inner(),
        })
        .await?))
}

/// Rename, disable (its keys are refused) or re-enable an integration.
#[utoipa::path(tag = "telemetry", security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = UpdateIntegrationRequest,
    responses((status = 200, body = DataEnvelope<Integration>), (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
#[patch("/{id}")]
pub async fn update_integration(
    spine: web::Data<Spine>,
    caller: Caller,
    id: web::Path<Uuid>,
    body: Json<UpdateIntegrationRequest>,
) -> Result<HttpResponse, ApiError> {
    Ok(ok(spine
        .execute(UpdateIntegration {
            actor: caller.0,
            id: id.into_inner(),
            request: body.into_inner(),
        })
        .await?))
}

/// Delete an integration (soft): hidden from lists, its keys refused, its usage kept.
#[utoipa::path(tag = "telemetry", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = DataEnvelope<Integration>), (status = 404, body = ErrorEnvelope)))]
#[delete("/{id}")]
pub async fn delete_integration(
    spine: web::Data<Spine>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    Ok(ok(spine
        .execute(DeleteIntegration {
            actor: caller.0,
            id: id.into_inner(),
        })
        .await?))
}

/// Issue an integration key (shown once). Earlier keys stay valid for the rotation grace.
#[utoipa::path(tag = "telemetry", security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = CreateIntegrationKeyRequest,
    responses((status = 201, body = DataEnvelope<CreatedIntegrationKey>), (status = 404, body = ErrorEnvelope)))]
#[post("/{id}/keys")]
pub async fn issue_key(
    spine: web::Data<Spine>,
    caller: Caller,
    id: web::Path<Uuid>,
    body: Json<CreateIntegrationKeyRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = body.into_inner();
    let created = spine
        .execute(IssueKey {
            actor: caller.0,
            integration_id: id.into_inner(),
            request,
        })
        .await?;
    Ok(HttpResponse::Created().json(DataEnvelope::new(created)))
}

/// An integration's keys (never the keys themselves).
#[utoipa::path(tag = "telemetry", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = DataEnvelope<Vec<IntegrationKey>>), (status = 404, body = ErrorEnvelope)))]
#[get("/{id}/keys")]
pub async fn list_keys(spine: web::Data<Spine>, caller: Caller, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    Ok(ok(spine
        .execute(ListKeys {
            actor: caller.0,
            integration_id: id.into_inner(),
        })
        .await?))
}

/// Revoke an integration key now.
#[utoipa::path(tag = "telemetry", security(("bearer" = [])), params(("id" = Uuid, Path), ("key_id" = Uuid, Path)),
    responses((status = 200, body = DataEnvelope<IntegrationKey>), (status = 404, body = ErrorEnvelope)))]
#[delete("/{id}/keys/{key_id}")]
pub async fn revoke_key(
    spine: web::Data<Spine>,
    caller: Caller,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (integration_id, key_id) = path.into_inner();
    Ok(ok(spine
        .execute(RevokeKey {
            actor: caller.0,
            integration_id,
            key_id,
        })
        .await?))
}

/// Ingest one usage record (`X-CUS-Integration-Key`). 201 stored, 200 duplicate, 422 rejected.
#[utoipa::path(tag = "telemetry", security(("integration_key" = [])), request_body = UsageRecord,
    responses((status = 201, body = DataEnvelope<RecordResult>), (status = 200, body = DataEnvelope<RecordResult>, description = "a duplicate call_id: counted once"),
        (status = 401, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
#[post("/llm-usage")]
pub async fn ingest_one(
    spine: web::Data<Spine>,
    caller: Caller,
    body: Json<Box<serde_json::value::RawValue>>,
) -> Result<HttpResponse, ApiError> {
    let result = spine
        .execute(Ingest {
            actor: caller.0,
            records: vec![body.into_inner()],
        })
        .await?;
    let Some(record) = result.results.into_iter().next() else {
        return Err(ApiError::new(ErrorCode::Internal, "no result for the record"));
    };
    match record.status.as_str() {
        "accepted" => Ok(HttpResponse::Created().json(DataEnvelope::new(record))),
        "duplicate" => Ok(ok(record)),
        _ => Err(ApiError {
            field: record.field.clone(),
            ..ApiError::new(
                ErrorCode::ValidationFailed,
                format!(
                    "{}: {}",
                    record.field.as_deref().unwrap_or("record"),
                    record.reason.unwrap_or_default()
                ),
            )
        }),
    }
}

/// Ingest up to `telemetry.max_batch` records; each is accepted, a duplicate, or rejected
/// with its index, field and reason. A request malformed as a whole writes nothing.
#[utoipa::path(tag = "telemetry", security(("integration_key" = [])), request_body = UsageBatch,
    responses((status = 200, body = DataEnvelope<IngestResult>), (status = 401, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope, description = "too many records")))]
#[post("/llm-usage/batch")]
pub async fn ingest_batch(
    spine: web::Data<Spine>,
    caller: Caller,
    body: JsonKeepNul<UsageBatch>,
) -> Result<HttpResponse, ApiError> {
    Ok(ok(spine
        .execute(Ingest {
            actor: caller.0,
            records: body.into_inner().records,
        })
        .await?))
}

/// Totals and per-model breakdown over a range of days (from rollups).
#[utoipa::path(tag = "telemetry", security(("bearer" = [])), params(UsageRangeQuery),
    responses((status = 200, body = DataEnvelope<UsageSummary>), (status = 422, body = ErrorEnvelope)))]
#[get("/usage/summary")]
pub async fn summary(
    spine: web::Data<Spine>,
    caller: Caller,
    query: web::Query<UsageRangeQuery>,
) -> Result<HttpResponse, ApiError> {
    Ok(ok(spine
        .execute(Summary {
            actor: caller.0,
            query: query.into_inner(),
        })
        .await?))
}

/// One row per day of the range, zeros included (from rollups).
#[utoipa::path(tag = "telemetry", security(("bearer" = [])), params(UsageRangeQuery),
    responses((status = 200, body = DataEnvelope<Vec<DailyUsage>>), (status = 422, body = ErrorEnvelope)))]
#[get("/usage/daily")]
pub async fn daily(
    spine: web::Data<Spine>,
    caller: Caller,
    query: web::Query<UsageRangeQuery>,
) -> Result<HttpResponse, ApiError> {
    Ok(ok(spine
        .execute(Daily {
            actor: caller.0,
            query: query.into_inner(),
        })
        .await?))
}

/// Stored records, newest first, keyset pages.
#[utoipa::path(tag = "telemetry", security(("bearer" = [])), params(UsageHistoryQuery),
    responses((status = 200, body = ListEnvelope<UsageHistoryRecord>), (status = 422, body = ErrorEnvelope)))]
#[get("/usage/history")]
pub async fn history(
    spine: web::Data<Spine>,
    caller: Caller,
    query: web::Query<UsageHistoryQuery>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(
        spine
            .execute(History {
                actor: caller.0,
                query: query.into_inner(),
            })
            .await?,
    ))
}
