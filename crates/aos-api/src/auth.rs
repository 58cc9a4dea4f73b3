//! Authentication, once, for every `/api/` route: the [`middleware`] turns
//! `Authorization: Bearer <credential>`, `X-API-Key: <key>` or `X-CUS-Integration-Key:
//! <integration key>` into an [`AuthContext`]
//! through the spine and stores it on the request; handlers take a [`Caller`] argument and
//! never read headers themselves. 401 when the credential is missing or invalid, 403 when
//! the tenant's status forbids it (scope checks are made by the operations), 429 after
//! repeated failures.

use std::future::{Ready, ready};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, ResponseError, dev::Payload, web};
use aos_schemas::ErrorCode;
use aos_spine::{AuthContext, Spine};

use crate::error::ApiError;

/// A customer integration's key, for telemetry ingestion (and reads when allowed).
pub const INTEGRATION_KEY_HEADER: &str = "x-cus-integration-key";

/// Paths that need a caller. Everything else (probes, OpenAPI) is public.
pub fn requires_auth(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/") || is_mcp(path) || crate::request_context::is_openai_path(path)
}

/// AOS's own MCP endpoint (`/mcp`, `/mcp/ws`).
pub fn is_mcp(path: &str) -> bool {
    path == "/mcp" || path.starts_with("/mcp/")
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller(pub AuthContext);

/// The credential a request presents.
fn presented(req: &ServiceRequest) -> Result<String, ApiError> {
    if let Some(value) = req.headers().get(header::AUTHORIZATION) {
        let value = value
            .to_str()
            .map_err(|_| ApiError::new(ErrorCode::Unauthenticated, "malformed Authorization header"))?;
        let (scheme, token) = value
            .split_once(' ')
            .ok_or_else(|| ApiError::new(ErrorCode::Unauthenticated, "use Authorization: Bearer <token>"))?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(ApiError::new(
                ErrorCode::Unauthenticated,
                "use Authorization: Bearer <token>",
            ));
        }
        return Ok(token.trim().to_owned());
    }
    if let Some(value) = req.headers().get("x-api-key") {
        return value
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| ApiError::new(ErrorCode::Unauthenticated, "malformed X-API-Key header"));
    }
    Err(ApiError::new(
        ErrorCode::Unauthenticated,
        "missing credentials: send Authorization: Bearer <token>",
    ))
}

pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if !requires_auth(req.path()) {
        return next.call(req).await.map(ServiceResponse::map_into_boxed_body);
    }
    let integration_key = req
        .headers()
        .get(INTEGRATION_KEY_HEADER)
        .map(|v| v.to_str().map(|s| s.trim().to_owned()).unwrap_or_default());
    let peer = req.peer_addr().map(|a| a.ip());
    let result = match (integration_key, req.app_data::<web::Data<Spine>>()) {
        (_, None) => Err(ApiError::new(ErrorCode::Internal, "spine not configured")),
        (Some(key), Some(spine)) => spine.authenticate_integration(&key, peer).await.map_err(ApiError::from),
        (None, Some(spine)) => match presented(&req) {
            Err(e) => Err(e),
            Ok(credential) => spine.authenticate(&credential, peer).await.map_err(ApiError::from),
        },
    };
    match result {
        Ok(context) => {
            req.extensions_mut().insert(context);
            next.call(req).await.map(ServiceResponse::map_into_boxed_body)
        }
        Err(err) => {
            if err.code == ErrorCode::Unauthenticated || err.code == ErrorCode::RateLimited {
                tracing::info!(code = %err.code, reason = %err.message, "authentication refused");
            }
            let mut response = err.error_response();
            // MCP clients find how to authenticate from here (RFC 9728 §5.1).
            if err.code == ErrorCode::Unauthenticated
                && is_mcp(req.path())
                && let Some(endpoint) = req.app_data::<web::Data<crate::routes::mcp_endpoint::Endpoint>>()
            {
                let base = crate::routes::mcp_endpoint::public_base(&endpoint.config, req.request());
                let value = format!(
                    "Bearer realm=\"aos\", resource_metadata=\"{base}/.well-known/oauth-protected-resource/mcp\""
                );
                if let Ok(value) = header::HeaderValue::from_str(&value) {
                    response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
                }
            }
            Ok(req.into_response(response))
        }
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            req.extensions()
                .get::<AuthContext>()
                .cloned()
                .map(Caller)
                .ok_or_else(|| ApiError::new(ErrorCode::Unauthenticated, "this route needs credentials")),
        )
    }
}
