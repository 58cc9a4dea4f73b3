//! Customer LLM telemetry over HTTP on both backends: integrations and their keys
//! (rotation with grace, revocation, disabling), ingestion (single, batch, idempotency,
//! per-record rejection, whole-request refusal), reads (summary, daily, history), who
//! may read what, and date validation.

// Integration tests: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::{Duration, Instant};

use aos_spine::TelemetrySettings;
use aos_tests::{Backend, TestApp, spawn_with_telemetry};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

aos_tests::for_each_backend!(
    an_integration_ingests_and_its_usage_is_summarised,
    malformed_requests_are_refused_whole_and_bad_records_alone,
    keys_rotate_with_grace_and_revocation_and_disabling_bite,
    reads_are_scoped_and_dates_validated,
);

struct Setup {
    app: TestApp,
    admin: String,
    integration: String,
    key: String,
}

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    auth: (&str, &str),
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = app.client.request(method, app.url(path)).header(auth.0, auth.1);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn bearer(token: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {token}"))
}

async fn setup(backend: Backend, telemetry: TelemetrySettings, can_read: bool) -> Setup {
    let app = spawn_with_telemetry(backend, telemetry).await;
    let tenant = app.create_tenant("Acme").await;
    let (_, admin) = app.create_key(&tenant, &["admin"]).await;
    let b = bearer(&admin);
    let (status, created) = send(
        &app,
        Method::POST,
        "/api/v1/integrations",
        (b.0, &b.1),
        Some(json!({"name": "prod", "provider": "openai"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let integration = created["data"]["id"].as_str().unwrap().to_owned();
    let (status, key) = send(
        &app,
        Method::POST,
        &format!("/api/v1/integrations/{integration}/keys"),
        (b.0, &b.1),
        Some(json!({"can_read": can_read})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let key = key["data"]["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("aos_ik_"));
    Setup {
        app,
        admin,
        integration,
        key,
    }
}

fn record(call_id: &str, day_offset: i64) -> Value {
    let at = time::OffsetDateTime::now_utc() - time::Duration::days(day_offset);
    json!({
        "call_id": call_id,
        "provider": "openai",
        "model": "gpt-4o",
        "input_tokens": 1000,
        "output_tokens": 100,
        "latency_ms": 120,
        "occurred_at": at.format(&time::format_description::well_known::Rfc3339).unwrap(),
    })
}

const IK: &str = "x-cus-integration-key";

async fn an_integration_ingests_and_its_usage_is_summarised(backend: Backend) {
    let s = setup(backend, TelemetrySettings::default(), true).await;
    let (app, ik) = (&s.app, (IK, s.key.as_str()));

    let (status, first) = send(
        app,
        Method::POST,
        "/api/v1/telemetry/llm-usage",
        ik,
        Some(record("c-1", 0)),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["data"]["status"], "accepted");
    let (status, again) = send(
        app,
        Method::POST,
        "/api/v1/telemetry/llm-usage",
        ik,
        Some(record("c-1", 0)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["data"]["status"], "duplicate");

    let mut batch: Vec<Value> = (2..=5).map(|i| record(&format!("c-{i}"), 2)).collect();
    batch.push(json!({"call_id": "c-err", "provider": "openai", "model": "gpt-4o", "input_tokens": 10, "output_tokens": 0, "status": "error", "error_code": "timeout", "cost": 0.25}));
    batch.push(record("c-1", 0));
    let (status, result) = send(
        app,
        Method::POST,
        "/api/v1/telemetry/llm-usage/batch",
        ik,
        Some(json!({"records": batch})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!(result["data"]["accepted"], 5);
    assert_eq!(result["data"]["duplicates"], 1);
    assert_eq!(result["data"]["results"][5]["status"], "duplicate");

    // Summary: 6 calls; cost computed for gpt-4o (1000 in at $2.50/M + 100 out at $10/M = $0.0035 each).
    let (status, summary) = send(app, Method::GET, "/api/v1/telemetry/usage/summary", ik, None).await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    let data = &summary["data"];
    assert_eq!(data["calls"], 6);
    assert_eq!(data["errors"], 1);
    assert_eq!(data["input_tokens"], 5010);
    assert!(
        (data["cost"].as_f64().unwrap() - (5.0 * 0.0035 + 0.25)).abs() < 1e-9,
        "{data}"
    );
    assert!((data["error_rate"].as_f64().unwrap() - 1.0 / 6.0).abs() < 1e-9);
    assert_eq!(data["latency_p95_ms"], 200);
    assert_eq!(data["by_model"][0]["model"], "gpt-4o");

    // Daily: every day of the range, zeros included.
    let today = time::OffsetDateTime::now_utc().date();
    let start = today - time::Duration::days(3);
    let path = format!("/api/v1/telemetry/usage/daily?start_date={start}&end_date={today}");
    let (status, daily) = send(app, Method::GET, &path, ik, None).await;
    assert_eq!(status, StatusCode::OK, "{daily}");
    let calls: Vec<i64> = daily["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["calls"].as_i64().unwrap())
        .collect();
    assert_eq!(calls, [0, 4, 0, 2]);

    // History: newest first, keyset pages.
    let since = (time::OffsetDateTime::now_utc() - time::Duration::days(10))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (status, page) = send(
        app,
        Method::GET,
        &format!("/api/v1/telemetry/usage/history?limit=4&start={since}"),
        ik,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["data"].as_array().unwrap().len(), 4);
    let cursor = page["meta"]["next_cursor"].as_str().unwrap().to_owned();
    let (_, rest) = send(
        app,
        Method::GET,
        &format!("/api/v1/telemetry/usage/history?limit=4&start={since}&cursor={cursor}"),
        ik,
        None,
    )
    .await;
    assert_eq!(rest["data"].as_array().unwrap().len(), 2);
    assert!(rest["meta"].get("next_cursor").is_none());
    let first_page_times: Vec<time::OffsetDateTime> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            time::OffsetDateTime::parse(
                r["occurred_at"].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap()
        })
        .collect();
    let mut sorted = first_page_times.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(first_page_times, sorted, "newest first");
    let all: Vec<&Value> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["data"].as_array().unwrap())
        .collect();
    assert_eq!(all.len(), 6);
    assert_eq!(
        all.iter().find(|r| r["call_id"] == "c-err").unwrap()["cost_source"],
        "reported"
    );
    assert_eq!(
        all.iter().find(|r| r["call_id"] == "c-2").unwrap()["cost_source"],
        "computed"
    );
}

async fn malformed_requests_are_refused_whole_and_bad_records_alone(backend: Backend) {
    let settings = TelemetrySettings {
        max_batch: 3,
        ..TelemetrySettings::default()
    };
    let s = setup(backend, settings, true).await;
    let (app, ik) = (&s.app, (IK, s.key.as_str()));

    // One bad record among good ones: rejected alone, with index, field and reason.
    let batch = json!({"records": [record("ok-1", 0), {"call_id": "bad", "provider": "openai", "model": "gpt-4o", "input_tokens": "lots", "output_tokens": 1}, record("ok-2", 0)]});
    let (status, result) = send(app, Method::POST, "/api/v1/telemetry/llm-usage/batch", ik, Some(batch)).await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!(result["data"]["accepted"], 2);
    let rejected = &result["data"]["results"][1];
    assert_eq!(rejected["status"], "rejected");
    assert_eq!(rejected["index"], 1);
    assert_eq!(rejected["field"], "input_tokens");

    let (status, one) = send(
        app,
        Method::POST,
        "/api/v1/telemetry/llm-usage",
        ik,
        Some(json!({"call_id": "x", "provider": "p", "model": "m", "input_tokens": -5, "output_tokens": 0})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{one}");
    assert_eq!(one["error"]["field"], "input_tokens");

    // Refused whole, nothing written: too many records, bad JSON, wrong or missing key.
    let four = json!({"records": [record("n-1", 0), record("n-2", 0), record("n-3", 0), record("n-4", 0)]});
    let (status, err) = send(app, Method::POST, "/api/v1/telemetry/llm-usage/batch", ik, Some(four)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    let raw = app
        .client
        .post(app.url("/api/v1/telemetry/llm-usage/batch"))
        .header(IK, &s.key)
        .header("content-type", "application/json")
        .body("{\"records\": [")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), StatusCode::BAD_REQUEST);
    let wrong = format!("aos_ik_{}", "C".repeat(43));
    let (status, _) = send(
        app,
        Method::POST,
        "/api/v1/telemetry/llm-usage",
        (IK, &wrong),
        Some(record("w-1", 0)),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = send(
        app,
        Method::POST,
        "/api/v1/telemetry/llm-usage",
        (IK, "not-a-key"),
        Some(record("w-2", 0)),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // An API key cannot ingest: ingestion is per integration.
    let b = bearer(&s.admin);
    let (status, err) = send(
        app,
        Method::POST,
        "/api/v1/telemetry/llm-usage",
        (b.0, &b.1),
        Some(record("w-3", 0)),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{err}");

    let (_, summary) = send(app, Method::GET, "/api/v1/telemetry/usage/summary", ik, None).await;
    assert_eq!(summary["data"]["calls"], 2, "{summary}");
}

async fn keys_rotate_with_grace_and_revocation_and_disabling_bite(backend: Backend) {
    let settings = TelemetrySettings {
        key_rotation_grace_secs: 2,
        ..TelemetrySettings::default()
    };
    let s = setup(backend, settings, false).await;
    let app = &s.app;
    let b = bearer(&s.admin);
    let admin = (b.0, b.1.as_str());
    let post = |key: String, id: &'static str| async move {
        send(
            app,
            Method::POST,
            "/api/v1/telemetry/llm-usage",
            (IK, &key),
            Some(record(id, 0)),
        )
        .await
        .0
    };

    // Rotate: the new key works at once, the old one until the grace ends.
    let (status, rotated) = send(
        app,
        Method::POST,
        &format!("/api/v1/integrations/{}/keys", s.integration),
        admin,
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let new_key = rotated["data"]["key"].as_str().unwrap().to_owned();
    assert_eq!(post(new_key.clone(), "r-1").await, StatusCode::CREATED);
    assert_eq!(
        post(s.key.clone(), "r-2").await,
        StatusCode::CREATED,
        "old key within grace"
    );
    let (_, keys) = send(
        app,
        Method::GET,
        &format!("/api/v1/integrations/{}/keys", s.integration),
        admin,
        None,
    )
    .await;
    let statuses: Vec<&str> = keys["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["expiring", "active"]);
    assert!(!keys.to_string().contains(&new_key));
    let started = Instant::now();
    while post(s.key.clone(), "r-3").await != StatusCode::UNAUTHORIZED {
        assert!(started.elapsed() < Duration::from_secs(6), "old key outlived its grace");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Revoke: refused within a second.
    let new_id = rotated["data"]["integration_key"]["id"].as_str().unwrap();
    let (status, _) = send(
        app,
        Method::DELETE,
        &format!("/api/v1/integrations/{}/keys/{new_id}", s.integration),
        admin,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let started = Instant::now();
    while post(new_key.clone(), "r-4").await != StatusCode::UNAUTHORIZED {
        assert!(started.elapsed() < Duration::from_secs(1), "revoked key still accepted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Disable the integration: its (fresh) key is refused with 403.
    let (_, third) = send(
        app,
        Method::POST,
        &format!("/api/v1/integrations/{}/keys", s.integration),
        admin,
        Some(json!({})),
    )
    .await;
    let third = third["data"]["key"].as_str().unwrap().to_owned();
    assert_eq!(post(third.clone(), "r-5").await, StatusCode::CREATED);
    let (status, _) = send(
        app,
        Method::PATCH,
        &format!("/api/v1/integrations/{}", s.integration),
        admin,
        Some(json!({"status": "DISABLED"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let started = Instant::now();
    while post(third.clone(), "r-6").await != StatusCode::FORBIDDEN {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "disabled integration still ingests"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, _) = send(
        app,
        Method::PATCH,
        &format!("/api/v1/integrations/{}", s.integration),
        admin,
        Some(json!({"status": "ASLEEP"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

async fn reads_are_scoped_and_dates_validated(backend: Backend) {
    let s = setup(backend, TelemetrySettings::default(), false).await;
    let app = &s.app;
    let b = bearer(&s.admin);
    let admin = (b.0, b.1.as_str());
    let ik = (IK, s.key.as_str());
    assert_eq!(
        send(
            app,
            Method::POST,
            "/api/v1/telemetry/llm-usage",
            ik,
            Some(record("a-1", 0))
        )
        .await
        .0,
        StatusCode::CREATED
    );

    // A key that may only write cannot read.
    let (status, err) = send(app, Method::GET, "/api/v1/telemetry/usage/summary", ik, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{err}");
    assert_eq!(err["error"]["code"], "insufficient_scope");
    // An API key with telemetry:read reads the tenant's usage.
    let tenant_reader = app
        .create_key(&app.create_tenant("Other").await, &["telemetry:read"])
        .await
        .1;
    let (status, summary) = send(app, Method::GET, "/api/v1/telemetry/usage/summary", admin, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(summary["data"]["calls"], 1);
    // Another tenant sees nothing of this one, and cannot name its integration.
    let other = bearer(&tenant_reader);
    let (status, theirs) = send(
        app,
        Method::GET,
        "/api/v1/telemetry/usage/summary",
        (other.0, &other.1),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(theirs["data"]["calls"], 0);
    let (status, _) = send(
        app,
        Method::GET,
        &format!("/api/v1/telemetry/usage/summary?integration_id={}", s.integration),
        (other.0, &other.1),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = send(
        app,
        Method::GET,
        &format!("/api/v1/integrations/{}", s.integration),
        (other.0, &other.1),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Nor reach any of its integration's endpoints.
    let first_key_id = {
        let (_, keys) = send(
            app,
            Method::GET,
            &format!("/api/v1/integrations/{}/keys", s.integration),
            admin,
            None,
        )
        .await;
        keys["data"][0]["id"].as_str().unwrap().to_owned()
    };
    let other_admin = app.create_key(&app.create_tenant("Third").await, &["admin"]).await.1;
    let oa = bearer(&other_admin);
    for (method, path, body) in [
        (Method::GET, format!("/api/v1/integrations/{}", s.integration), None),
        (
            Method::PATCH,
            format!("/api/v1/integrations/{}", s.integration),
            Some(json!({"status": "DISABLED"})),
        ),
        (Method::DELETE, format!("/api/v1/integrations/{}", s.integration), None),
        (
            Method::POST,
            format!("/api/v1/integrations/{}/keys", s.integration),
            Some(json!({})),
        ),
        (
            Method::GET,
            format!("/api/v1/integrations/{}/keys", s.integration),
            None,
        ),
        (
            Method::DELETE,
            format!("/api/v1/integrations/{}/keys/{first_key_id}", s.integration),
            None,
        ),
    ] {
        let (status, body) = send(app, method.clone(), &path, (oa.0, &oa.1), body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {body}");
    }
    let (_, listed) = send(app, Method::GET, "/api/v1/integrations", (oa.0, &oa.1), None).await;
    assert_eq!(listed["data"], json!([]));
    assert_eq!(
        send(
            app,
            Method::POST,
            "/api/v1/telemetry/llm-usage",
            ik,
            Some(record("a-2", 0))
        )
        .await
        .0,
        StatusCode::CREATED
    );

    // A reading integration key sees only its own integration.
    let (_, second) = send(
        app,
        Method::POST,
        "/api/v1/integrations",
        admin,
        Some(json!({"name": "staging", "provider": "anthropic"})),
    )
    .await;
    let second_id = second["data"]["id"].as_str().unwrap().to_owned();
    let (_, reader) = send(
        app,
        Method::POST,
        &format!("/api/v1/integrations/{second_id}/keys"),
        admin,
        Some(json!({"can_read": true})),
    )
    .await;
    let reader = reader["data"]["key"].as_str().unwrap().to_owned();
    let (status, own) = send(app, Method::GET, "/api/v1/telemetry/usage/summary", (IK, &reader), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(own["data"]["calls"], 0, "the first integration's call is not its own");
    let (status, _) = send(
        app,
        Method::GET,
        &format!("/api/v1/telemetry/usage/daily?integration_id={}", s.integration),
        (IK, &reader),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Dates: clear 422s naming the field.
    for (query, field) in [
        ("start_date=2026-03-01&end_date=2026-02-01", "start_date"),
        ("start_date=yesterday", "start_date"),
        ("start_date=2020-01-01&end_date=2026-01-01", "end_date"),
    ] {
        let (status, body) = send(
            app,
            Method::GET,
            &format!("/api/v1/telemetry/usage/summary?{query}"),
            admin,
            None,
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
        assert_eq!(body["error"]["field"], field, "{query}");
    }
    let (status, body) = send(
        app,
        Method::GET,
        "/api/v1/telemetry/usage/history?start=2026-01-02T00:00:00Z&end=2026-01-01T00:00:00Z",
        admin,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}
