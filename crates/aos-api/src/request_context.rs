//! The outermost middleware: gives every request an id (the client's `X-Request-Id` when
//! it is sane, else a new UUID), a tracing span carrying it (so every log line of the
//! request has it), the `X-Request-Id` response header, and a last line of defence that
//! turns any non-JSON error response (actix's own 404/405/413 and the like) into the
//! JSON error envelope.

use std::time::Instant;

use actix_web::HttpResponse;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing::Instrument;

use crate::error::ApiError;

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static REQUEST_ID: String;
    /// True on the OpenAI-compatible routes (`/v1/...`), whose errors take OpenAI's shape.
    static OPENAI_STYLE: bool;
}

/// Whether the current request's errors take OpenAI's shape.
pub fn openai_style() -> bool {
    OPENAI_STYLE.try_with(|v| *v).unwrap_or(false)
}

/// The OpenAI-compatible routes.
pub fn is_openai_path(path: &str) -> bool {
    path == "/v1" || path.starts_with("/v1/")
}

/// The id of the request being handled, or `unknown` outside one.
pub fn current_request_id() -> String {
    REQUEST_ID
        .try_with(Clone::clone)
        .unwrap_or_else(|_| "unknown".to_owned())
}

fn sane(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let request_id = req
        .headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| sane(v))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %req.method(),
        path = %req.path(),
    );
    let started = Instant::now();
    let openai = is_openai_path(req.path());
    if let Some(param) = nul_query_parameter(req.query_string()) {
        // PostgreSQL cannot store or compare NUL and SQLite can: refuse it on every route
        // before anything reads the query, so both backends answer alike.
        let api = ApiError {
            request_id: Some(request_id.clone()),
            field: Some(param.clone()),
            ..ApiError::new(
                aos_schemas::ErrorCode::BadRequest,
                format!("query parameter `{param}` may not contain the NUL character (%00)"),
            )
        };
        let mut response = HttpResponse::build(ApiError::status_of(api.code)).json(api.body(openai));
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert(REQUEST_ID_HEADER, value);
        }
        return Ok(req.into_response(response));
    }
    let result = REQUEST_ID
        .scope(request_id.clone(), OPENAI_STYLE.scope(openai, next.call(req)))
        .instrument(span.clone())
        .await;
    let mut response = match result {
        Ok(response) => envelope_errors(response.map_into_boxed_body(), &request_id, openai),
        Err(err) => {
            // An inner middleware failed before producing a response: answer it here, so
            // it still gets the envelope and the request id.
            let status = err.as_response_error().status_code();
            let api = ApiError {
                request_id: Some(request_id.clone()),
                ..ApiError::new(ApiError::code_of(status), status.canonical_reason().unwrap_or("error"))
            };
            let response = HttpResponse::build(status).json(api.body(openai));
            return Err(actix_web::error::InternalError::from_response(err, response).into());
        }
    };
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    let status = response.status().as_u16();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    if status >= 500 {
        tracing::error!(parent: &span, status, elapsed_ms, "request failed");
    } else {
        tracing::info!(parent: &span, status, elapsed_ms, "request");
    }
    Ok(response)
}

/// The name of the first query parameter whose name or value holds an encoded NUL.
fn nul_query_parameter(query: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        (name.contains("%00") || value.contains("%00")).then(|| name.replace("%00", "\\u0000"))
    })
}

/// Replaces the body of an error response that is not already JSON with the envelope.
fn envelope_errors(response: ServiceResponse<BoxBody>, request_id: &str, openai: bool) -> ServiceResponse<BoxBody> {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return response;
    }
    let message = match status.as_u16() {
        404 => "no such route".to_owned(),
        405 => "method not allowed on this route".to_owned(),
        413 => "request body too large".to_owned(),
        _ => status.canonical_reason().unwrap_or("error").to_lowercase(),
    };
    let api = ApiError {
        request_id: Some(request_id.to_owned()),
        ..ApiError::new(ApiError::code_of(status), message)
    };
    let (req, old) = response.into_parts();
    let mut new: HttpResponse = HttpResponse::build(status).json(api.body(openai));
    for (name, value) in old.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            new.headers_mut().append(name.clone(), value.clone());
        }
    }
    ServiceResponse::new(req, new)
}

#[cfg(test)]
mod tests {
    use super::{nul_query_parameter, sane};

    #[test]
    fn a_nul_in_a_query_parameter_is_named() {
        assert_eq!(
            nul_query_parameter("limit=5&event_type=a%00b").as_deref(),
            Some("event_type")
        );
        assert_eq!(nul_query_parameter("model=x"), None);
        assert_eq!(nul_query_parameter(""), None);
    }

    #[test]
    fn only_sane_request_ids_are_echoed() {
        assert!(sane("abc-123_x.y:z"));
        assert!(!sane(""));
        assert!(!sane("has space"));
        assert!(!sane("inject\nheader"));
        assert!(!sane(&"a".repeat(129)));
    }
}
