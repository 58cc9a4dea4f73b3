//! The OpenAPI document's shared parts: the bearer scheme, and the error answers every
//! operation can give, derived from the operation's shape so generated clients know them:
//!
//! - every operation: 429 (`rate_limited`), 500 (`internal`), 503 (`service_unavailable`);
//! - with security: 401 (`unauthenticated`), 403 (`forbidden`, `insufficient_scope`,
//!   `tenant_suspended`, `tenant_terminated`);
//! - with path or query parameters: 400 (`bad_request`: a parameter of the wrong form) and
//!   422 (`validation_failed`: a value out of range, e.g. `limit`);
//! - with a path parameter, or a query parameter naming an id: 404 (`not_found`);
//! - with a request body: 400 (malformed JSON), 408 (`request_timeout`), 413, 415, 422
//!   (`validation_failed`);
//! - writes (POST, PUT, PATCH, DELETE): 409 (`conflict`);
//! - calls that go upstream (`.../invoke`, `.../approve`, `.../replay`,
//!   `/v1/chat/completions`, `/v1/embeddings`): 423 (`kill_switch_active`) and 502
//!   (`upstream_error`).
//!
//! Under `/v1` the body is OpenAI's error shape ([`OpenAiErrorEnvelope`]); everywhere else
//! AOS's envelope ([`ErrorEnvelope`]). A status an operation documents itself keeps its
//! description; it only gains the body schema when it had none.

use aos_schemas::{ErrorEnvelope, OpenAiErrorEnvelope};
use utoipa::openapi::path::{Operation, ParameterIn, PathItem};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Content, OpenApi, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, ToSchema};

pub(crate) struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
        // Telemetry ingestion authenticates with an integration key in its own header.
        components.add_security_scheme(
            "integration_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-CUS-Integration-Key"))),
        );
    }
}

pub(crate) struct ErrorResponses;

/// The operations of a path item with their (lower-case) methods.
pub(crate) fn operations(item: &PathItem) -> impl Iterator<Item = (&'static str, &Operation)> {
    [
        ("get", item.get.as_ref()),
        ("post", item.post.as_ref()),
        ("put", item.put.as_ref()),
        ("patch", item.patch.as_ref()),
        ("delete", item.delete.as_ref()),
    ]
    .into_iter()
    .filter_map(|(method, op)| op.map(|op| (method, op)))
}

fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = (&'static str, &mut Operation)> {
    [
        ("get", item.get.as_mut()),
        ("post", item.post.as_mut()),
        ("put", item.put.as_mut()),
        ("patch", item.patch.as_mut()),
        ("delete", item.delete.as_mut()),
    ]
    .into_iter()
    .filter_map(|(method, op)| op.map(|op| (method, op)))
}

fn describe(status: &str) -> &'static str {
    match status {
        "400" => "malformed request: bad JSON, or a path or query parameter of the wrong form",
        "401" => "no credentials, or credentials that are not valid",
        "403" => "the credentials may not do this (forbidden, insufficient_scope, tenant_suspended, tenant_terminated)",
        "404" => "no such resource, or not visible to the caller",
        "409" => "conflicts with the current state",
        "408" => "the body did not arrive within http.body_read_timeout_ms",
        "413" => "the body exceeds the configured limit",
        "415" => "the body is not application/json",
        "422" => "a field or parameter is invalid (`field` names it)",
        "423" => "the kill switch holds the caller's tenant or key; nothing went upstream",
        "502" => "the upstream (an MCP server or LLM provider) failed or timed out",
        "429" => "too many requests; see Retry-After",
        "503" => "a dependency is unavailable; retry later",
        _ => "internal error; quote the request id",
    }
}

fn error_statuses(path: &str, method: &str, op: &Operation) -> Vec<&'static str> {
    let mut statuses = vec!["429", "500", "503"];
    let params = op.parameters.as_deref().unwrap_or_default();
    if op.security.as_ref().is_some_and(|s| !s.is_empty()) {
        statuses.extend(["401", "403"]);
    }
    if !params.is_empty() || op.request_body.is_some() {
        statuses.push("400");
    }
    if !params.is_empty() {
        statuses.push("422");
    }
    // A path id, or a query parameter naming one (`?integration_id=`), may name nothing.
    if params
        .iter()
        .any(|p| matches!(p.parameter_in, ParameterIn::Path) || p.name.ends_with("_id"))
    {
        statuses.push("404");
    }
    if op.request_body.is_some() {
        statuses.extend(["408", "413", "415", "422"]);
    }
    if method != "get" {
        statuses.push("409");
    }
    let upstream = [
        "/invoke",
        "/approve",
        "/replay",
        "/v1/chat/completions",
        "/v1/embeddings",
    ];
    if upstream.iter().any(|suffix| path.ends_with(suffix)) {
        statuses.extend(["423", "502"]);
    }
    statuses.sort_unstable();
    statuses.dedup();
    statuses
}

impl Modify for ErrorResponses {
    fn modify(&self, openapi: &mut OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let schema = if path == "/v1" || path.starts_with("/v1/") {
                OpenAiErrorEnvelope::name()
            } else {
                ErrorEnvelope::name()
            };
            for (method, op) in operations_mut(item) {
                for status in error_statuses(path, method, op) {
                    let content = || Content::new(Some(Ref::from_schema_name(schema.clone())));
                    match op.responses.responses.get_mut(status) {
                        Some(RefOr::T(response)) => {
                            if response.content.is_empty() {
                                response.content.insert("application/json".into(), content());
                            }
                        }
                        Some(RefOr::Ref(_)) => {}
                        None => {
                            let response = ResponseBuilder::new()
                                .description(describe(status))
                                .content("application/json", content())
                                .build();
                            op.responses.responses.insert(status.into(), RefOr::T(response));
                        }
                    }
                }
            }
        }
    }
}
