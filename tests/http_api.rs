//! The HTTP API from the outside: real requests over loopback against a real server on
//! each backend. Every failure must come back as the JSON error envelope with a 4xx/5xx,
//! carrying the same request id as the `X-Request-Id` header.

// Integration tests: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use aos_tests::{TestApp, on_both_backends};
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

on_both_backends!(
    liveness_and_readiness_answer,
    request_ids_are_generated_or_echoed_when_sane,
    unknown_routes_and_methods_get_the_envelope,
    malformed_bodies_get_clear_4xx_envelopes,
    bad_path_and_query_parameters_are_bad_requests,
    credentials_are_required_and_checked,
    operator_manages_tenants_end_to_end,
    openapi_document_lists_the_routes,
);

/// Asserts an error envelope with `code`, whose request id matches the header.
async fn assert_envelope(response: reqwest::Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(response.status(), status);
    let header_id = response
        .headers()
        .get("x-request-id")
        .expect("x-request-id header")
        .to_str()
        .unwrap()
        .to_owned();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("application/json"), "{content_type}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(body["error"]["request_id"], header_id.as_str(), "{body}");
    body
}

async fn liveness_and_readiness_answer(app: TestApp) {
    let live = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(live.status(), StatusCode::OK);
    assert_eq!(live.json::<Value>().await.unwrap()["status"], "ok");

    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["backend"], app.backend.as_str());
    let checks = body["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 2);
    assert!(checks.iter().all(|c| c["ok"] == true), "{body}");
}

async fn request_ids_are_generated_or_echoed_when_sane(app: TestApp) {
    let a = app.client.get(app.url("/healthz")).send().await.unwrap();
    let b = app.client.get(app.url("/healthz")).send().await.unwrap();
    let id_a = a.headers()["x-request-id"].to_str().unwrap().to_owned();
    let id_b = b.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_ne!(id_a, id_b);
    assert_eq!(id_a.len(), 36, "a UUID: {id_a}");

    let echoed = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "trace-42.a_b")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "trace-42.a_b");

    let replaced = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "bad id with spaces")
        .send()
        .await
        .unwrap();
    assert_ne!(replaced.headers()["x-request-id"], "bad id with spaces");

    // The id also lands in error bodies.
    let missing = app
        .client
        .get(app.url("/nope"))
        .header("x-request-id", "trace-43")
        .send()
        .await
        .unwrap();
    let body = assert_envelope(missing, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(body["error"]["request_id"], "trace-43");
}

async fn unknown_routes_and_methods_get_the_envelope(app: TestApp) {
    // Under /api/ the caller is authenticated first, so routes cannot be enumerated.
    let response = app.client.get(app.url("/api/v1/does-not-exist")).send().await.unwrap();
    assert_envelope(response, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    let response = app
        .operator(Method::GET, "/api/v1/does-not-exist")
        .send()
        .await
        .unwrap();
    assert_envelope(response, StatusCode::NOT_FOUND, "not_found").await;
    let response = app.client.get(app.url("/not-api")).send().await.unwrap();
    assert_envelope(response, StatusCode::NOT_FOUND, "not_found").await;
    // A real route with a method it does not answer: 405 with `Allow`.
    let response = app.client.delete(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.headers()[header::ALLOW], "GET");
    assert_envelope(response, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    let response = app
        .operator(Method::DELETE, "/api/v1/admin/tenants")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()[header::ALLOW], "GET, POST");
    assert_envelope(response, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    let response = app
        .operator(Method::DELETE, "/api/v1/session/context")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()[header::ALLOW], "GET");
    let body = assert_envelope(response, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    assert!(
        body["error"]["message"].as_str().unwrap().contains("allowed: GET"),
        "{body}"
    );
    let id = "0190f3f4-0000-7000-8000-000000000000";
    let response = app
        .operator(Method::PUT, &format!("/api/v1/integrations/mcp-servers/{id}/tools"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()[header::ALLOW], "GET");
    assert_envelope(response, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
}

async fn malformed_bodies_get_clear_4xx_envelopes(app: TestApp) {
    let post = || app.operator(Method::POST, "/api/v1/admin/tenants");

    let broken = post()
        .header(header::CONTENT_TYPE, "application/json")
        .body("{\"name\":")
        .send()
        .await
        .unwrap();
    assert_envelope(broken, StatusCode::BAD_REQUEST, "bad_request").await;

    let not_json = post()
        .header(header::CONTENT_TYPE, "text/plain")
        .body("{\"name\":\"x\"}")
        .send()
        .await
        .unwrap();
    assert_envelope(not_json, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type").await;

    let no_type = post().body("{\"name\":\"x\"}").send().await.unwrap();
    assert_envelope(no_type, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type").await;

    let unknown_field = post()
        .json(&json!({"name": "x", "colour": "red"}))
        .send()
        .await
        .unwrap();
    assert_envelope(unknown_field, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;

    let wrong_type = post().json(&json!({"name": 7})).send().await.unwrap();
    assert_envelope(wrong_type, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;

    let blank = post().json(&json!({"name": "   "})).send().await.unwrap();
    let body = assert_envelope(blank, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(body["error"]["field"], "name");

    let huge = format!("{{\"name\":\"{}\"}}", "a".repeat(2 * 1024 * 1024));
    let oversize = post()
        .header(header::CONTENT_TYPE, "application/json")
        .body(huge.clone())
        .send()
        .await
        .unwrap();
    assert_envelope(oversize, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;

    // Without a Content-Length (chunked), the limit still applies while streaming.
    let stream = futures_stream(huge.into_bytes());
    let chunked = post()
        .header(header::CONTENT_TYPE, "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_envelope(chunked, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;

    // Nothing was written by any of the refused requests.
    let list: Value = app
        .operator(Method::GET, "/api/v1/admin/tenants")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["meta"]["total"], 0, "{list}");
}

fn futures_stream(bytes: Vec<u8>) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    let chunks: Vec<_> = bytes.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    futures::stream::iter(chunks)
}

async fn bad_path_and_query_parameters_are_bad_requests(app: TestApp) {
    let response = app
        .operator(Method::GET, "/api/v1/admin/tenants/not-a-uuid")
        .send()
        .await
        .unwrap();
    assert_envelope(response, StatusCode::BAD_REQUEST, "bad_request").await;
    let response = app
        .operator(Method::GET, "/api/v1/admin/tenants?limit=many")
        .send()
        .await
        .unwrap();
    assert_envelope(response, StatusCode::BAD_REQUEST, "bad_request").await;
    let response = app
        .operator(Method::GET, "/api/v1/admin/tenants?limit=0")
        .send()
        .await
        .unwrap();
    assert_envelope(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let response = app
        .operator(Method::GET, "/api/v1/admin/tenants?cursor=zzzz")
        .send()
        .await
        .unwrap();
    assert_envelope(response, StatusCode::BAD_REQUEST, "bad_request").await;
    let response = app
        .operator(Method::GET, "/api/v1/admin/tenants?surprise=1")
        .send()
        .await
        .unwrap();
    assert_envelope(response, StatusCode::BAD_REQUEST, "bad_request").await;
}

async fn credentials_are_required_and_checked(app: TestApp) {
    let path = "/api/v1/admin/tenants";
    let none = app.client.get(app.url(path)).send().await.unwrap();
    assert_eq!(none.headers()[header::WWW_AUTHENTICATE], "Bearer realm=\"aos\"");
    assert_envelope(none, StatusCode::UNAUTHORIZED, "unauthenticated").await;

    let wrong = app
        .client
        .get(app.url(path))
        .bearer_auth("aos_op_not_the_token")
        .send()
        .await
        .unwrap();
    assert_envelope(wrong, StatusCode::UNAUTHORIZED, "unauthenticated").await;

    let basic = app
        .client
        .get(app.url(path))
        .basic_auth("root", Some("pw"))
        .send()
        .await
        .unwrap();
    assert_envelope(basic, StatusCode::UNAUTHORIZED, "unauthenticated").await;

    let ok = app
        .client
        .get(app.url(path))
        .header("x-api-key", aos_tests::OPERATOR_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);

    // Authentication comes before body parsing: no token, bad body, still 401.
    let unauth_post = app
        .client
        .post(app.url(path))
        .header(header::CONTENT_TYPE, "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(unauth_post.status(), StatusCode::UNAUTHORIZED);
}

async fn operator_manages_tenants_end_to_end(app: TestApp) {
    let created = app
        .operator(Method::POST, "/api/v1/admin/tenants")
        .json(&json!({"name": "Acme"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let tenant: Value = created.json().await.unwrap();
    let tenant = &tenant["data"];
    assert_eq!(tenant["name"], "Acme");
    assert_eq!(tenant["status"], "ACTIVE");
    assert_eq!(tenant["onboarding_state"], "CREATED");
    let id = tenant["id"].as_str().unwrap().to_owned();

    let dup = app
        .operator(Method::POST, "/api/v1/admin/tenants")
        .json(&json!({"name": "ACME"}))
        .send()
        .await
        .unwrap();
    assert_envelope(dup, StatusCode::CONFLICT, "conflict").await;

    let got: Value = app
        .operator(Method::GET, &format!("/api/v1/admin/tenants/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["data"]["id"], id.as_str());

    let suspended = app
        .operator(Method::PATCH, &format!("/api/v1/admin/tenants/{id}"))
        .json(&json!({"status": "SUSPENDED", "onboarding_state": "IDENTITY_VERIFIED"}))
        .send()
        .await
        .unwrap();
    assert_eq!(suspended.status(), StatusCode::OK);
    let suspended: Value = suspended.json().await.unwrap();
    assert_eq!(suspended["data"]["status"], "SUSPENDED");
    assert_eq!(suspended["data"]["onboarding_state"], "IDENTITY_VERIFIED");

    let bad_status = app
        .operator(Method::PATCH, &format!("/api/v1/admin/tenants/{id}"))
        .json(&json!({"status": "ASLEEP"}))
        .send()
        .await
        .unwrap();
    assert_envelope(bad_status, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;

    for status in ["TERMINATED"] {
        let r = app
            .operator(Method::PATCH, &format!("/api/v1/admin/tenants/{id}"))
            .json(&json!({ "status": status }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    let revive = app
        .operator(Method::PATCH, &format!("/api/v1/admin/tenants/{id}"))
        .json(&json!({"status": "ACTIVE"}))
        .send()
        .await
        .unwrap();
    assert_envelope(revive, StatusCode::CONFLICT, "conflict").await;

    let missing = app
        .operator(
            Method::GET,
            "/api/v1/admin/tenants/01a1fba1-01c0-752a-bc38-ed56dd615eab",
        )
        .send()
        .await
        .unwrap();
    assert_envelope(missing, StatusCode::NOT_FOUND, "not_found").await;

    for i in 0..3 {
        let r = app
            .operator(Method::POST, "/api/v1/admin/tenants")
            .json(&json!({"name": format!("t{i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let page: Value = app
        .operator(Method::GET, "/api/v1/admin/tenants?limit=3")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["data"].as_array().unwrap().len(), 3);
    assert_eq!(page["meta"]["total"], 4);
    assert_eq!(page["meta"]["limit"], 3);
    let cursor = page["meta"]["next_cursor"].as_str().unwrap();
    let last: Value = app
        .operator(Method::GET, &format!("/api/v1/admin/tenants?limit=3&cursor={cursor}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(last["data"].as_array().unwrap().len(), 1);
    assert!(last["meta"].get("next_cursor").is_none(), "{last}");
}

async fn openapi_document_lists_the_routes(app: TestApp) {
    let doc: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/healthz",
        "/readyz",
        "/api/v1/admin/tenants",
        "/api/v1/admin/tenants/{id}",
        "/api/v1/admin/tenants/{id}/api-keys",
        "/api/v1/session/context",
        "/api/v1/api-keys",
        "/api/v1/integrations/mcp-servers",
        "/api/v1/integrations/mcp-servers/{server_id}/tools/{tool_id}/risk",
        "/api/v1/integrations",
        "/api/v1/integrations/{id}/keys",
        "/api/v1/telemetry/llm-usage/batch",
        "/api/v1/telemetry/usage/summary",
    ] {
        assert!(paths.contains_key(path), "missing {path}");
    }
    assert!(paths["/api/v1/admin/tenants/{id}"].get("patch").is_some());
    assert!(doc["components"]["schemas"].get("ErrorEnvelope").is_some());
    assert!(doc["components"]["securitySchemes"].get("bearer").is_some());
}
