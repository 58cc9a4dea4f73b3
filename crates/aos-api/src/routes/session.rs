//! `/api/v1/session/context`.

use actix_web::{HttpResponse, get, web};
use aos_schemas::session::SessionContext;
use aos_schemas::{DataEnvelope, ErrorEnvelope};
use aos_spine::Spine;
use aos_spine::ops::session::Context;

use crate::auth::Caller;
use crate::error::ApiError;

/// The verified context of the caller: who, which tenant, what it may do.
#[utoipa::path(
    tag = "session",
    security(("bearer" = [])),
    responses(
        (status = 200, body = DataEnvelope<SessionContext>),
        (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope, description = "tenant suspended or terminated"),
    )
)]
#[get("/session/context")]
pub async fn context(spine: web::Data<Spine>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let context = spine.execute(Context { actor: caller.0 }).await?;
    Ok(HttpResponse::Ok().json(DataEnvelope::new(context)))
}
