//! The OpenAI-compatible proxy: `/v1/chat/completions`, `/v1/embeddings`, `/v1/models`,
//! `/v1/status` (OpenAI's wire format and error shape, so the official SDKs work
//! unchanged), and its management routes under `/api/v1/proxy`.

use std::convert::Infallible;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, get, patch, post, put, web};
use aos_schemas::proxy::{
    ProxyCall, ProxyCallQuery, ProxySettings, ProxyStatus, ReplayResult, TenantQuery, WriterStats,
};
use aos_schemas::{DataEnvelope, ErrorEnvelope, ListEnvelope, ListMeta};
use aos_spine::Spine;
use aos_spine::ops::proxy::{self as ops, Endpoint, ProxyBody};
use futures::StreamExt;
use serde_json::json;
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{Body, Json};

/// The call log id of a proxied request.
pub const CALL_ID_HEADER: &str = "x-aos-call-id";

async fn forward(spine: &Spine, caller: Caller, endpoint: Endpoint, body: Body) -> Result<HttpResponse, ApiError> {
    let reply = spine.proxy(caller.0, endpoint, body.0).await?;
    let code = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut response = HttpResponse::build(code);
    response.insert_header((CALL_ID_HEADER, reply.call_id.to_string()));
    Ok(match reply.body {
        ProxyBody::Json(bytes) => response.content_type("application/json").body(bytes),
        ProxyBody::Stream(events) => response
            .content_type("text/event-stream")
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .insert_header(("x-accel-buffering", "no"))
            .streaming(events.map(Ok::<_, Infallible>)),
    })
}

/// OpenAI chat completions, streaming (`"stream": true`, server-sent events) or not.
#[utoipa::path(tag = "openai", security(("bearer" = [])), request_body = Object,
    responses((status = 200, description = "OpenAI's chat.completion (or its event stream)"),
        (status = 400, description = "bad request, or a guardrail refused it (`guardrail_blocked`)"),
        (status = 404, description = "the model is not available through this proxy (or the provider's own 404, passed through)"),
        (status = 423, description = "kill switch active"), (status = 429, description = "budget or rate limit"),
        (status = 502, description = "the upstream provider failed")))]
#[post("/chat/completions")]
pub async fn chat_completions(spine: web::Data<Spine>, caller: Caller, body: Body) -> Result<HttpResponse, ApiError> {
    forward(&spine, caller, Endpoint::Chat, body).await
}

/// OpenAI embeddings.
#[utoipa::path(tag = "openai", security(("bearer" = [])), request_body = Object,
    responses((status = 200, description = "OpenAI's embedding list"),
        (status = 404, description = "the model is not available through this proxy (or the provider's own 404, passed through)")))]
#[post("/embeddings")]
pub async fn embeddings(spine: web::Data<Spine>, caller: Caller, body: Body) -> Result<HttpResponse, ApiError> {
    forward(&spine, caller, Endpoint::Embeddings, body).await
}

/// The models the caller may use, in OpenAI's list shape.
#[utoipa::path(tag = "openai", security(("bearer" = [])), responses((status = 200, description = "OpenAI's model list")))]
#[get("/models")]
pub async fn models(spine: web::Data<Spine>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let models = spine.proxy_models(&caller.0).await?;
    let data: Vec<_> = models
        .into_iter()
        .map(|(id, provider)| json!({"id": id, "object": "model", "created": 0, "owned_by": provider}))
        .collect();
    Ok(HttpResponse::Ok().json(json!({"object": "list", "data": data})))
}

/// The caller's protection pulse: kill switch, guardrails, today's spend, rate limit.
#[utoipa::path(tag = "openai", security(("bearer" = [])), responses((status = 200, body = ProxyStatus)))]
#[get("/status")]
pub async fn status(spine: web::Data<Spine>, caller: Caller) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(spine.execute(ops::Status { actor: caller.0 }).await?))
}

/// The tenant's proxy settings: guardrails, budgets, rate limit.
#[utoipa::path(tag = "proxy", security(("bearer" = [])), params(TenantQuery),
    responses((status = 200, body = DataEnvelope<ProxySettings>)))]
#[get("/settings")]
pub async fn get_settings(
    spine: web::Data<Spine>,
    caller: Caller,
    query: web::Query<TenantQuery>,
) -> Result<HttpResponse, ApiError> {
    let settings = spine
        .execute(ops::GetSettings {
            actor: caller.0,
            tenant_id: query.tenant_id,
        })
        .await?;
    Ok(HttpResponse::Ok().json(DataEnvelope::new(settings)))
}

/// Replaces the tenant's proxy settings (tenant admin or the operator): what the body
/// leaves out takes its default. Applies on this replica at once and on the others within
/// `proxy.settings_cache_ms`.
#[utoipa::path(tag = "proxy", security(("bearer" = [])), params(TenantQuery), request_body = ProxySettings,
    responses((status = 200, body = DataEnvelope<ProxySettings>), (status = 422, body = ErrorEnvelope)))]
#[put("/settings")]
pub async fn put_settings(
    spine: web::Data<Spine>,
    caller: Caller,
    query: web::Query<TenantQuery>,
    body: Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let settings = spine
        .execute(ops::PutSettings {
            actor: caller.0,
            tenant_id: query.tenant_id,
            settings: body.into_inner(),
        })
        .await?;
    Ok(HttpResponse::Ok().json(DataEnvelope::new(settings)))
}

/// Changes some of the tenant's proxy settings: a JSON merge patch (RFC 7396) — fields the
/// body leaves out keep their values, `null` resets one to its default.
#[utoipa::path(tag = "proxy", security(("bearer" = [])), params(TenantQuery), request_body = Object,
    responses((status = 200, body = DataEnvelope<ProxySettings>), (status = 422, body = ErrorEnvelope)))]
#[patch("/settings")]
pub async fn patch_settings(
    spine: web::Data<Spine>,
    caller: Caller,
    query: web::Query<TenantQuery>,
    body: Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let settings = spine
        .execute(ops::PatchSettings {
            actor: caller.0,
            tenant_id: query.tenant_id,
            patch: body.into_inner(),
        })
        .await?;
    Ok(HttpResponse::Ok().json(DataEnvelope::new(settings)))
}

/// The call log, newest first. A `proxy:invoke` key sees its own calls; an admin the
/// tenant's.
#[utoipa::path(tag = "proxy", security(("bearer" = [])), params(ProxyCallQuery),
    responses((status = 200, body = ListEnvelope<ProxyCall>)))]
#[get("/calls")]
pub async fn list_calls(
    spine: web::Data<Spine>,
    caller: Caller,
    query: web::Query<ProxyCallQuery>,
) -> Result<HttpResponse, ApiError> {
    let (data, limit, next_cursor) = spine
        .execute(ops::ListCalls {
            actor: caller.0,
            query: query.into_inner(),
        })
        .await?;
    Ok(HttpResponse::Ok().json(ListEnvelope {
        data,
        meta: ListMeta {
            total: None,
            limit,
            next_cursor,
        },
    }))
}

/// One call with its request and response (secrets and PII removed).
#[utoipa::path(tag = "proxy", security(("bearer" = [])), params(("call_id" = Uuid, Path), TenantQuery),
    responses((status = 200, body = DataEnvelope<ProxyCall>), (status = 404, body = ErrorEnvelope)))]
#[get("/calls/{call_id}")]
pub async fn get_call(
    spine: web::Data<Spine>,
    caller: Caller,
    path: web::Path<Uuid>,
    query: web::Query<TenantQuery>,
) -> Result<HttpResponse, ApiError> {
    let call = spine
        .execute(ops::GetCall {
            actor: caller.0,
            id: path.into_inner(),
            tenant_id: query.tenant_id,
        })
        .await?;
    Ok(HttpResponse::Ok().json(DataEnvelope::new(call)))
}

/// Re-sends a call through today's kill switch and guardrails; the new response beside
/// the old. The replay is itself logged (`replayed_from_id`).
#[utoipa::path(tag = "proxy", security(("bearer" = [])), params(("call_id" = Uuid, Path)),
    responses((status = 200, body = DataEnvelope<ReplayResult>), (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope, description = "the request was not kept")))]
#[post("/calls/{call_id}/replay")]
pub async fn replay(spine: web::Data<Spine>, caller: Caller, path: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let result = spine.proxy_replay(caller.0, path.into_inner()).await?;
    Ok(HttpResponse::Ok().json(DataEnvelope::new(result)))
}

/// The call log writer's counters (platform operator).
#[utoipa::path(tag = "proxy", security(("bearer" = [])), responses((status = 200, body = DataEnvelope<WriterStats>)))]
#[get("/proxy/writer")]
pub async fn writer_stats(spine: web::Data<Spine>, caller: Caller) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(DataEnvelope::new(spine.proxy_writer_stats(&caller.0)?)))
}
