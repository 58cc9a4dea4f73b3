//! `/api/v1/killswitch`: freeze and unfreeze a tenant or one API key; state and history.
//! The platform operator may act on any tenant or key, a tenant admin on its own.

use actix_web::{HttpResponse, get, post, web};
use aos_schemas::killswitch::{FreezeRequest, KillSwitchOverview, KillSwitchQuery, KillSwitchState};
use aos_schemas::{DataEnvelope, ErrorEnvelope};
use aos_spine::Spine;
use aos_spine::ops::killswitch::{Action, Change, Status, Target};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::OptionalJson;

pub(crate) async fn change(
    spine: &Spine,
    caller: Caller,
    target: Target,
    action: Action,
    body: FreezeRequest,
) -> Result<HttpResponse, ApiError> {
    let state = spine
        .kill_switch_change(Change {
            actor: caller.0,
            target,
            action,
            request: body,
        })
        .await?;
    Ok(HttpResponse::Ok().json(DataEnvelope::new(state)))
}

/// Freeze a tenant: its governed traffic is refused (423 `kill_switch_active`) on every
/// replica within a second.
#[utoipa::path(tag = "killswitch", security(("bearer" = [])), params(("tenant_id" = Uuid, Path)),
    request_body = Option<FreezeRequest>,
    responses((status = 200, body = DataEnvelope<KillSwitchState>), (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope, description = "already frozen")))]
#[post("/tenants/{tenant_id}/freeze")]
pub async fn freeze_tenant(
    spine: web::Data<Spine>,
    caller: Caller,
    path: web::Path<Uuid>,
    body: OptionalJson<FreezeRequest>,
) -> Result<HttpResponse, ApiError> {
    change(
        &spine,
        caller,
        Target::Tenant(path.into_inner()),
        Action::Freeze,
        body.0,
    )
    .await
}

#[utoipa::path(tag = "killswitch", security(("bearer" = [])), params(("tenant_id" = Uuid, Path)),
    responses((status = 200, body = DataEnvelope<KillSwitchState>), (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope, description = "not frozen")))]
#[post("/tenants/{tenant_id}/unfreeze")]
pub async fn unfreeze_tenant(
    spine: web::Data<Spine>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    change(
        &spine,
        caller,
        Target::Tenant(path.into_inner()),
        Action::Unfreeze,
        FreezeRequest::default(),
    )
    .await
}

/// Freeze one API key.
#[utoipa::path(tag = "killswitch", security(("bearer" = [])), params(("key_id" = Uuid, Path)),
    request_body = Option<FreezeRequest>,
    responses((status = 200, body = DataEnvelope<KillSwitchState>), (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope, description = "already frozen")))]
#[post("/keys/{key_id}/freeze")]
pub async fn freeze_key(
    spine: web::Data<Spine>,
    caller: Caller,
    path: web::Path<Uuid>,
    body: OptionalJson<FreezeRequest>,
) -> Result<HttpResponse, ApiError> {
    change(&spine, caller, Target::Key(path.into_inner()), Action::Freeze, body.0).await
}

#[utoipa::path(tag = "killswitch", security(("bearer" = [])), params(("key_id" = Uuid, Path)),
    responses((status = 200, body = DataEnvelope<KillSwitchState>), (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope, description = "not frozen")))]
#[post("/keys/{key_id}/unfreeze")]
pub async fn unfreeze_key(
    spine: web::Data<Spine>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    change(
        &spine,
        caller,
        Target::Key(path.into_inner()),
        Action::Unfreeze,
        FreezeRequest::default(),
    )
    .await
}

/// The tenant's kill-switch state and its history.
#[utoipa::path(tag = "killswitch", security(("bearer" = [])), params(KillSwitchQuery),
    responses((status = 200, body = DataEnvelope<KillSwitchOverview>), (status = 404, body = ErrorEnvelope)))]
#[get("")]
pub async fn status(
    spine: web::Data<Spine>,
    caller: Caller,
    query: web::Query<KillSwitchQuery>,
) -> Result<HttpResponse, ApiError> {
    let overview = spine
        .execute(Status {
            actor: caller.0,
            query: query.into_inner(),
        })
        .await?;
    Ok(HttpResponse::Ok().json(DataEnvelope::new(overview)))
}
