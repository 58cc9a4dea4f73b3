//! API keys: `/api/v1/api-keys` (a tenant's admins, for their own tenant) and
//! `/api/v1/admin/...` (the platform operator, for any tenant).

use actix_web::{HttpResponse, delete, get, post, web};
use aos_schemas::api_keys::{ApiKey, CreateApiKeyRequest, CreatedApiKey};
use aos_schemas::envelope::PageQuery;
use aos_schemas::{DataEnvelope, ErrorEnvelope, ListEnvelope};
use aos_spine::Spine;
use aos_spine::ops::api_keys::{Create, List, Revoke, RevokeAny, Target};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::Json;

async fn create_for(
    spine: &Spine,
    caller: Caller,
    target: Target,
    body: CreateApiKeyRequest,
) -> Result<HttpResponse, ApiError> {
    let created = spine
        .execute(Create {
            actor: caller.0,
            target,
            request: body,
        })
        .await?;
    Ok(HttpResponse::Created().json(DataEnvelope::new(created)))
}

async fn list_for(spine: &Spine, caller: Caller, target: Target, query: PageQuery) -> Result<HttpResponse, ApiError> {
    let page = spine
        .execute(List {
            actor: caller.0,
            target,
            limit: query.limit,
            cursor: query.cursor,
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// Create a key for the caller's tenant (admin role or `admin` scope). The key is in the
/// response once; only its hash is kept.
#[utoipa::path(
    tag = "api-keys",
    security(("bearer" = [])),
    request_body = CreateApiKeyRequest,
    responses(
        (status = 201, body = DataEnvelope<CreatedApiKey>),
        (status = 403, body = ErrorEnvelope, description = "not a tenant admin"),
        (status = 422, body = ErrorEnvelope),
    )
)]
#[post("/api-keys")]
pub async fn create(
    spine: web::Data<Spine>,
    caller: Caller,
    body: Json<CreateApiKeyRequest>,
) -> Result<HttpResponse, ApiError> {
    create_for(&spine, caller, Target::Own, body.into_inner()).await
}

/// The caller's tenant's keys (never the keys themselves).
#[utoipa::path(
    tag = "api-keys",
    security(("bearer" = [])),
    params(PageQuery),
    responses((status = 200, body = ListEnvelope<ApiKey>), (status = 403, body = ErrorEnvelope))
)]
#[get("/api-keys")]
pub async fn list(
    spine: web::Data<Spine>,
    caller: Caller,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    list_for(&spine, caller, Target::Own, query.into_inner()).await
}

/// Revoke a key of the caller's tenant. Refused everywhere within a second.
#[utoipa::path(
    tag = "api-keys",
    security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = DataEnvelope<ApiKey>), (status = 404, body = ErrorEnvelope))
)]
#[delete("/api-keys/{id}")]
pub async fn revoke(spine: web::Data<Spine>, caller: Caller, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let key = spine
        .execute(Revoke {
            actor: caller.0,
            id: id.into_inner(),
        })
        .await?;
    Ok(HttpResponse::Ok().json(DataEnvelope::new(key)))
}

/// Create a key for any tenant (platform operator).
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "tenant id")),
    request_body = CreateApiKeyRequest,
    responses(
        (status = 201, body = DataEnvelope<CreatedApiKey>),
        (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope, description = "tenant not ACTIVE"),
    )
)]
#[post("/tenants/{id}/api-keys")]
pub async fn admin_create(
    spine: web::Data<Spine>,
    caller: Caller,
    id: web::Path<Uuid>,
    body: Json<CreateApiKeyRequest>,
) -> Result<HttpResponse, ApiError> {
    create_for(&spine, caller, Target::Tenant(id.into_inner()), body.into_inner()).await
}

/// A tenant's keys (platform operator).
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "tenant id"), PageQuery),
    responses((status = 200, body = ListEnvelope<ApiKey>), (status = 404, body = ErrorEnvelope))
)]
#[get("/tenants/{id}/api-keys")]
pub async fn admin_list(
    spine: web::Data<Spine>,
    caller: Caller,
    id: web::Path<Uuid>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    list_for(&spine, caller, Target::Tenant(id.into_inner()), query.into_inner()).await
}

/// Revoke any key (platform operator).
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = DataEnvelope<ApiKey>), (status = 404, body = ErrorEnvelope))
)]
#[delete("/api-keys/{id}")]
pub async fn admin_revoke(
    spine: web::Data<Spine>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let key = spine
        .execute(RevokeAny {
            actor: caller.0,
            id: id.into_inner(),
        })
        .await?;
    Ok(HttpResponse::Ok().json(DataEnvelope::new(key)))
}
