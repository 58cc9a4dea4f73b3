//! Credentials from headers, turned into an [`AuthContext`] by the spine. Handlers take
//! a [`Caller`] argument; none reads headers itself.

use std::future::{Ready, ready};

use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use aos_schemas::ErrorCode;
use aos_spine::{AuthContext, Spine};

use crate::error::ApiError;

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller(pub AuthContext);

/// The credential a request presents: `Authorization: Bearer <token>` or `X-API-Key`.
fn presented(req: &HttpRequest) -> Result<&str, ApiError> {
    if let Some(value) = req.headers().get(header::AUTHORIZATION) {
        let value = value.to_str().map_err(|_| {
            ApiError::new(ErrorCode::Unauthenticated, "malformed Authorization header")
        })?;
        let (scheme, token) = value.split_once(' ').ok_or_else(|| {
            ApiError::new(
                ErrorCode::Unauthenticated,
                "use Authorization: Bearer <token>",
            )
        })?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(ApiError::new(
                ErrorCode::Unauthenticated,
                "use Authorization: Bearer <token>",
            ));
        }
        return Ok(token.trim());
    }
    if let Some(value) = req.headers().get("x-api-key") {
        return value
            .to_str()
            .ok()
            .filter(|v| !v.trim().is_empty())
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::new(ErrorCode::Unauthenticated, "malformed X-API-Key header")
            });
    }
    Err(ApiError::new(
        ErrorCode::Unauthenticated,
        "missing credentials: send Authorization: Bearer <token>",
    ))
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let result = (|| {
            let spine = req
                .app_data::<web::Data<Spine>>()
                .ok_or_else(|| ApiError::new(ErrorCode::Internal, "spine not configured"))?;
            let token = presented(req)?;
            Ok(Caller(spine.authenticate(token)?))
        })();
        ready(result)
    }
}
