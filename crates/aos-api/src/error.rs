//! One error type for every failure the API reports, rendered as the JSON envelope
//! `{"error": {"code", "message", "request_id"}}` with a status derived from the code.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError, error::JsonPayloadError};
use aos_schemas::{ErrorBody, ErrorCode, ErrorEnvelope, OpenAiErrorBody, OpenAiErrorEnvelope};
use aos_spine::SpineError;

use crate::request_context;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub field: Option<String>,
    /// For `rate_limited` and `budget_exceeded`: seconds to send as `Retry-After`.
    pub retry_after: Option<u64>,
    /// A refused proxy call's log id, sent as `X-AOS-Call-Id`.
    pub call_id: Option<String>,
    /// Set when the error is rendered outside the request's task (see
    /// [`request_context`]); otherwise taken from the current request.
    pub request_id: Option<String>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            field: None,
            retry_after: None,
            call_id: None,
            request_id: None,
        }
    }

    /// The HTTP status of each code (the one table, [`ErrorCode::http_status`]).
    pub fn status_of(code: ErrorCode) -> StatusCode {
        StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The code for a status produced outside our handlers (actix defaults).
    pub fn code_of(status: StatusCode) -> ErrorCode {
        match status.as_u16() {
            401 => ErrorCode::Unauthenticated,
            403 => ErrorCode::Forbidden,
            404 => ErrorCode::NotFound,
            405 => ErrorCode::MethodNotAllowed,
            408 => ErrorCode::RequestTimeout,
            409 => ErrorCode::Conflict,
            413 => ErrorCode::PayloadTooLarge,
            415 => ErrorCode::UnsupportedMediaType,
            422 => ErrorCode::ValidationFailed,
            429 => ErrorCode::RateLimited,
            502 | 504 => ErrorCode::UpstreamError,
            503 => ErrorCode::ServiceUnavailable,
            400..=499 => ErrorCode::BadRequest,
            _ => ErrorCode::Internal,
        }
    }

    /// A malformed or refused JSON body.
    pub fn from_json(err: &JsonPayloadError) -> Self {
        match err {
            JsonPayloadError::OverflowKnownLength { length, limit } => Self::new(
                ErrorCode::PayloadTooLarge,
                format!("body of {length} bytes exceeds the limit of {limit} bytes"),
            ),
            JsonPayloadError::Overflow { limit } => Self::new(
                ErrorCode::PayloadTooLarge,
                format!("body exceeds the limit of {limit} bytes"),
            ),
            JsonPayloadError::ContentType => Self::new(
                ErrorCode::UnsupportedMediaType,
                "send the body as Content-Type: application/json",
            ),
            JsonPayloadError::Deserialize(e) if e.is_data() => Self::new(
                ErrorCode::ValidationFailed,
                format!("body does not match the schema: {e}"),
            ),
            JsonPayloadError::Deserialize(e) => Self::new(ErrorCode::BadRequest, format!("malformed JSON: {e}")),
            other => Self::new(ErrorCode::BadRequest, format!("unreadable body: {other}")),
        }
    }

    /// The error body: AOS's envelope, or OpenAI's shape (`{"error": {"message", "type",
    /// "code", "param"}}`) on the OpenAI-compatible routes. For `guardrail_blocked` the
    /// OpenAI shape also names the `guardrail`.
    pub fn body(&self, openai: bool) -> serde_json::Value {
        if !openai {
            return serde_json::to_value(self.envelope()).unwrap_or_default();
        }
        let kind = match Self::status_of(self.code).as_u16() {
            400 | 404 | 405 | 408 | 409 | 413 | 415 | 422 => "invalid_request_error",
            401 => "authentication_error",
            403 => "permission_error",
            423 => "kill_switch_error",
            429 if self.code == ErrorCode::BudgetExceeded => "insufficient_quota",
            429 => "rate_limit_error",
            _ => "api_error",
        };
        let (param, guardrail) = match self.code {
            ErrorCode::GuardrailBlocked => (None, self.field.clone()),
            _ => (self.field.clone(), None),
        };
        serde_json::to_value(OpenAiErrorEnvelope {
            error: OpenAiErrorBody {
                message: self.message.clone(),
                kind: kind.to_owned(),
                code: Some(self.code.as_str().to_owned()),
                param,
                request_id: Some(
                    self.request_id
                        .clone()
                        .unwrap_or_else(request_context::current_request_id),
                ),
                guardrail,
            },
        })
        .unwrap_or_default()
    }

    pub fn envelope(&self) -> ErrorEnvelope {
        ErrorEnvelope {
            error: ErrorBody {
                code: self.code,
                message: self.message.clone(),
                request_id: self
                    .request_id
                    .clone()
                    .unwrap_or_else(request_context::current_request_id),
                field: self.field.clone(),
            },
        }
    }
}

impl From<SpineError> for ApiError {
    fn from(err: SpineError) -> Self {
        Self {
            code: err.code,
            message: err.message,
            field: err.field,
            retry_after: err.retry_after,
            call_id: err.call_id.map(|id| id.to_string()),
            request_id: None,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        Self::status_of(self.code)
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if self.code == ErrorCode::Unauthenticated {
            response.insert_header((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"aos\""),
            ));
        }
        if let Some(secs) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        if self.code == ErrorCode::BudgetExceeded {
            // OpenAI's SDKs retry a 429 unless told not to; a spent budget does not
            // come back within their backoff.
            response.insert_header(("x-should-retry", "false"));
        }
        if let Some(id) = &self.call_id {
            response.insert_header(("x-aos-call-id", id.as_str()));
        }
        response.json(self.body(request_context::openai_style()))
    }
}
