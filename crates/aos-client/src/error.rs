//! What a call can fail with.

use aos_schemas::{ErrorCode, ErrorEnvelope};

/// Why a call failed. The server's own refusals are [`Error::Api`], with its code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// AOS answered with an error status.
    #[error(transparent)]
    Api(Box<ApiError>),
    /// AOS could not be reached, or the connection broke (after any retries).
    #[error("could not reach AOS: {}", chain(.0))]
    Transport(#[source] reqwest::Error),
    /// A success status with a body that is not what this call returns (a version mismatch
    /// or something other than AOS answering).
    #[error("AOS answered {status} with a body this client does not understand: {reason}")]
    Decode {
        status: u16,
        reason: String,
        request_id: Option<String>,
    },
    /// The client was configured with something unusable (a bad base URL or key).
    #[error("invalid client configuration: {0}")]
    Config(String),
}

/// The error and its causes ("connection refused" is usually two levels down).
fn chain(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// An error answer from AOS: its HTTP status and the error envelope's fields.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} ({code}, HTTP {status}{})", request_id.as_deref().map(|id| format!(", request {id}")).unwrap_or_default())]
pub struct ApiError {
    pub status: u16,
    /// The stable error code (`not_found`, `insufficient_scope`, ...); `unknown` when the
    /// body was not an AOS error envelope (a proxy in between answered, say).
    pub code: String,
    pub message: String,
    /// The `X-Request-Id` of the failed request: it finds the server's log lines.
    pub request_id: Option<String>,
    /// The offending field, for `validation_failed`.
    pub field: Option<String>,
}

impl ApiError {
    /// The code as the typed [`ErrorCode`], when this client knows it.
    pub fn error_code(&self) -> Option<ErrorCode> {
        serde_json::from_value(serde_json::Value::String(self.code.clone())).ok()
    }

    pub(crate) fn from_response(status: u16, header_request_id: Option<String>, body: &[u8]) -> Self {
        if let Ok(envelope) = serde_json::from_slice::<serde_json::Value>(body)
            && let Some(error) = envelope.get("error")
            && let Some(code) = error.get("code").and_then(|c| c.as_str())
        {
            // Parse leniently: a newer server may add codes this client does not know yet.
            let known: Option<ErrorEnvelope> = serde_json::from_value(envelope.clone()).ok();
            let text = |key: &str| error.get(key).and_then(|v| v.as_str()).map(str::to_owned);
            return Self {
                status,
                code: code.to_owned(),
                message: known
                    .as_ref()
                    .map(|k| k.error.message.clone())
                    .or_else(|| text("message"))
                    .unwrap_or_default(),
                request_id: text("request_id").or(header_request_id),
                field: text("field"),
            };
        }
        let text = String::from_utf8_lossy(body);
        let mut message: String = text.trim().chars().take(200).collect();
        if message.is_empty() {
            message = format!("HTTP {status} without an error body");
        }
        Self {
            status,
            code: "unknown".to_owned(),
            message,
            request_id: header_request_id,
            field: None,
        }
    }
}

impl Error {
    /// The HTTP status of an error answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api(api) => Some(api.status),
            Self::Decode { status, .. } => Some(*status),
            Self::Transport(err) => err.status().map(|s| s.as_u16()),
            Self::Config(_) => None,
        }
    }

    /// The server's error code, typed, when there is one this client knows.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Api(api) => api.error_code(),
            _ => None,
        }
    }

    /// The request id of the failed request, when the server sent one.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Self::Api(api) => api.request_id.as_deref(),
            Self::Decode { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }

    /// 404: no such resource, or not visible to this caller.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// 401 or 403: bad credentials, or credentials that may not do this.
    pub fn is_auth(&self) -> bool {
        matches!(self.status(), Some(401 | 403))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn envelopes_unknown_codes_and_foreign_bodies_all_become_api_errors() {
        let body = br#"{"error":{"code":"not_found","message":"no such server","request_id":"r-1"}}"#;
        let err = ApiError::from_response(404, Some("header-id".into()), body);
        assert_eq!(err.error_code(), Some(ErrorCode::NotFound));
        assert_eq!(err.message, "no such server");
        assert_eq!(err.request_id.as_deref(), Some("r-1"));
        assert_eq!(err.to_string(), "no such server (not_found, HTTP 404, request r-1)");

        let newer = br#"{"error":{"code":"brand_new","message":"m","request_id":"r-2","field":"name"}}"#;
        let err = ApiError::from_response(422, None, newer);
        assert_eq!(err.code, "brand_new");
        assert_eq!(err.error_code(), None);
        assert_eq!(err.field.as_deref(), Some("name"));

        let err = ApiError::from_response(502, Some("h".into()), b"<html>Bad Gateway</html>");
        assert_eq!(err.code, "unknown");
        assert_eq!(err.message, "<html>Bad Gateway</html>");
        assert_eq!(err.request_id.as_deref(), Some("h"));
        let err = ApiError::from_response(503, None, b"");
        assert_eq!(err.message, "HTTP 503 without an error body");
    }
}
