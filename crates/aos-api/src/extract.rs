//! Request bodies: one reader for every route, so every body obeys the same rules.
//!
//! - The body must arrive within `http.body_read_timeout_ms` (a client that sends headers
//!   and then nothing is cut with 408, not held for minutes) and fit `http.max_body_bytes`.
//! - JSON bodies are `application/json` (or `+json`) and a JSON **object** at the top
//!   (`[true]` is not a request, even where serde would read a struct from an array).
//! - A malformed body is 400 `bad_request`; a well-formed one that does not match the
//!   schema is 422 `validation_failed` with `field` naming where (`records[3].model`,
//!   or the unknown field itself).
//! - Strings may not contain NUL (`\u0000`): PostgreSQL cannot store it and SQLite would,
//!   so both backends refuse it the same way, with 422 naming the field. The telemetry
//!   batch takes [`JsonKeepNul`] instead, so one such record is rejected alone.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use aos_schemas::ErrorCode;
use serde::de::DeserializeOwned;

use aos_schemas::wire::{NUL_REFUSED, field_of, nul_field};

use crate::error::ApiError;

/// How long a request body may take to arrive (`http.body_read_timeout_ms`).
#[derive(Debug, Clone, Copy)]
pub struct BodyTimeout(pub Duration);

/// The body as bytes, read within the body timeout and the size limit.
pub struct Body(pub web::Bytes);

/// A JSON object body parsed as `T`, strings without NUL.
pub struct Json<T>(pub T);

/// A JSON object body parsed as `T`, NUL characters left for the handler to judge.
pub struct JsonKeepNul<T>(pub T);

/// An optional JSON body: absent or blank means `T::default()`; anything else obeys the
/// rules of [`Json`] — a malformed body is never silently treated as no body.
pub struct OptionalJson<T>(pub T);

impl<T> Json<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> JsonKeepNul<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

type Extracted<T> = Pin<Box<dyn Future<Output = Result<T, ApiError>>>>;

async fn read(req: HttpRequest, mut payload: Payload) -> Result<web::Bytes, ApiError> {
    let timeout = req
        .app_data::<web::Data<BodyTimeout>>()
        .map_or(Duration::from_secs(10), |t| t.0);
    let read = web::Bytes::from_request(&req, &mut payload);
    match tokio::time::timeout(timeout, read).await {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(err)) => Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("cannot read the body: {err}"),
        )),
        Err(_) => Err(ApiError::new(
            ErrorCode::RequestTimeout,
            format!("the body did not arrive within {} ms", timeout.as_millis()),
        )),
    }
}

fn is_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .is_some_and(|v| v == "application/json" || (v.starts_with("application/") && v.ends_with("+json")))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Nul {
    Refuse,
    Keep,
}

fn parse<T: DeserializeOwned>(req: &HttpRequest, body: &[u8], nul: Nul) -> Result<T, ApiError> {
    if !is_json(req) {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "send the body as Content-Type: application/json",
        ));
    }
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        Some(_) => {
            // Not an object: malformed JSON is a 400, a JSON value of the wrong kind a 422.
            return Err(match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
                Err(err) => ApiError::new(ErrorCode::BadRequest, format!("malformed JSON: {err}")),
                Ok(_) => ApiError::new(ErrorCode::ValidationFailed, "the body must be a JSON object"),
            });
        }
        None => {
            return Err(ApiError::new(
                ErrorCode::BadRequest,
                "the body is empty; send a JSON object",
            ));
        }
    }
    if nul == Nul::Refuse
        && let Some(field) = nul_field(body)
    {
        return Err(ApiError {
            field: Some(field.clone()),
            ..ApiError::new(ErrorCode::ValidationFailed, format!("{field}: {NUL_REFUSED}"))
        });
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_syntax() || inner.is_eof() || inner.is_io() {
            return ApiError::new(ErrorCode::BadRequest, format!("malformed JSON: {inner}"));
        }
        let message = inner.to_string();
        let field = field_of(&path, &message);
        ApiError {
            field: Some(field.clone()),
            ..ApiError::new(ErrorCode::ValidationFailed, format!("{field}: {message}"))
        }
    })
}

impl Body {
    /// Reads a body from a payload taken by hand (a handler that may upgrade instead).
    pub async fn read(req: &HttpRequest, payload: web::Payload) -> Result<Self, ApiError> {
        read(req.clone(), payload.into_inner()).await.map(Self)
    }
}

impl FromRequest for Body {
    type Error = ApiError;
    type Future = Extracted<Self>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let (req, payload) = (req.clone(), payload.take());
        Box::pin(async move { read(req, payload).await.map(Self) })
    }
}

/// Reads and parses a JSON object body under `nul`'s rule.
fn json_body<T: DeserializeOwned + 'static>(req: &HttpRequest, payload: &mut Payload, nul: Nul) -> Extracted<T> {
    let (req, payload) = (req.clone(), payload.take());
    Box::pin(async move {
        let body = read(req.clone(), payload).await?;
        parse(&req, &body, nul)
    })
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = Extracted<Self>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = json_body(req, payload, Nul::Refuse);
        Box::pin(async move { body.await.map(Self) })
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for JsonKeepNul<T> {
    type Error = ApiError;
    type Future = Extracted<Self>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = json_body(req, payload, Nul::Keep);
        Box::pin(async move { body.await.map(Self) })
    }
}

impl<T: DeserializeOwned + Default + 'static> FromRequest for OptionalJson<T> {
    type Error = ApiError;
    type Future = Extracted<Self>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let (req, payload) = (req.clone(), payload.take());
        Box::pin(async move {
            let body = read(req.clone(), payload).await?;
            if body.iter().all(u8::is_ascii_whitespace) {
                return Ok(Self(T::default()));
            }
            parse(&req, &body, Nul::Refuse).map(Self)
        })
    }
}
