//! `/api/v1/admin/tenants`: tenant administration by the platform operator.

use actix_web::{HttpResponse, get, patch, post, web};
use aos_schemas::envelope::PageQuery;
use aos_schemas::tenants::{CreateTenantRequest, Tenant, UpdateTenantRequest};
use aos_schemas::{DataEnvelope, ErrorEnvelope, ListEnvelope};
use aos_spine::Spine;
use aos_spine::ops::tenants::{Create, Get, List, Update};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::Json;

/// Create a tenant (ACTIVE, onboarding CREATED).
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    request_body = CreateTenantRequest,
    responses(
        (status = 201, body = DataEnvelope<Tenant>),
        (status = 401, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope, description = "name taken"),
        (status = 422, body = ErrorEnvelope),
    )
)]
#[post("/tenants")]
pub async fn create(
    spine: web::Data<Spine>,
    caller: Caller,
    body: Json<CreateTenantRequest>,
) -> Result<HttpResponse, ApiError> {
    let tenant = spine
        .execute(Create {
            actor: caller.0,
            request: body.into_inner(),
        })
        .await?;
    Ok(HttpResponse::Created().json(DataEnvelope::new(tenant)))
}

/// List tenants in creation order.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(PageQuery),
    responses((status = 200, body = ListEnvelope<Tenant>), (status = 401, body = ErrorEnvelope))
)]
#[get("/tenants")]
pub async fn list(
    spine: web::Data<Spine>,
    caller: Caller,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let page = spine
        .execute(List {
            actor: caller.0,
            limit: query.limit,
            cursor: query.cursor,
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// One tenant.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = DataEnvelope<Tenant>), (status = 404, body = ErrorEnvelope))
)]
#[get("/tenants/{id}")]
pub async fn get(spine: web::Data<Spine>, caller: Caller, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let tenant = spine
        .execute(Get {
            actor: caller.0,
            id: id.into_inner(),
        })
        .await?;
    Ok(HttpResponse::Ok().json(DataEnvelope::new(tenant)))
}

/// Rename, suspend, reactivate or terminate a tenant, or move its onboarding forward.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    request_body = UpdateTenantRequest,
    responses(
        (status = 200, body = DataEnvelope<Tenant>),
        (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope, description = "illegal transition"),
    )
)]
#[patch("/tenants/{id}")]
pub async fn update(
    spine: web::Data<Spine>,
    caller: Caller,
    id: web::Path<Uuid>,
    body: Json<UpdateTenantRequest>,
) -> Result<HttpResponse, ApiError> {
    let tenant = spine
        .execute(Update {
            actor: caller.0,
            id: id.into_inner(),
            request: body.into_inner(),
        })
        .await?;
    Ok(HttpResponse::Ok().json(DataEnvelope::new(tenant)))
}
