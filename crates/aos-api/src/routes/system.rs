//! Liveness and readiness probes. Unauthenticated by design: they reveal no tenant data.

use actix_web::{HttpResponse, get, web};
use aos_schemas::system::{Liveness, Readiness};
use aos_spine::Spine;

/// Liveness: the process answers.
#[utoipa::path(tag = "system", responses((status = 200, body = Liveness)))]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Liveness {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

/// Readiness: the database answers and every migration is applied. 503 otherwise.
#[utoipa::path(tag = "system", responses(
    (status = 200, body = Readiness),
    (status = 503, body = Readiness, description = "not ready; `checks` says why"),
))]
#[get("/readyz")]
pub async fn readyz(spine: web::Data<Spine>) -> HttpResponse {
    let readiness = spine.readiness().await;
    if readiness.status == "ready" {
        HttpResponse::Ok().json(readiness)
    } else {
        HttpResponse::ServiceUnavailable().json(readiness)
    }
}
