//! Tenants and identities over HTTP on both backends: API keys end to end, revocation and
//! suspension across replicas within a second, tenant isolation, scopes, expiry, what is
//! stored, and brute-force protection.

// Integration tests: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::{Duration, Instant};

use aos_tests::{Backend, TestApp, on_both_backends, spawn_replicas};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

on_both_backends!(
    operator_issues_a_key_and_its_holder_reads_the_session_context,
    tenant_isolation_holds_on_every_tenant_scoped_endpoint,
    scopes_decide_who_manages_keys,
    expired_and_malformed_keys_are_refused,
    only_a_hash_and_a_prefix_of_a_key_are_stored,
    repeated_failures_are_rate_limited_without_locking_out_the_holder,
    keys_cannot_be_issued_for_inactive_tenants,
);

mod replicas {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_revocation_and_suspension_reach_every_replica_within_a_second() {
        super::revocation_and_suspension_reach_every_replica_within_a_second(aos_tests::Backend::Postgres).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_revocation_and_suspension_reach_every_replica_within_a_second() {
        super::revocation_and_suspension_reach_every_replica_within_a_second(aos_tests::Backend::Sqlite).await;
    }
}

async fn body(response: reqwest::Response) -> Value {
    response.json().await.unwrap()
}

async fn operator_issues_a_key_and_its_holder_reads_the_session_context(app: TestApp) {
    let tenant = app.create_tenant("Acme").await;
    let expires = (time::OffsetDateTime::now_utc() + time::Duration::days(30))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let created = app
        .operator(Method::POST, &format!("/api/v1/admin/tenants/{tenant}/api-keys"))
        .json(&json!({"name": "ci runner", "scopes": ["mcp:read", "mcp:invoke"], "expires_at": expires}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let created = body(created).await;
    let key = created["data"]["key"].as_str().unwrap().to_owned();
    let meta = &created["data"]["api_key"];
    assert!(key.starts_with("aos_sk_") && key.len() == 50, "{key}");
    assert!(key.starts_with(meta["prefix"].as_str().unwrap()));
    assert_eq!(meta["status"], "active");
    assert_eq!(meta["created_by"], "founder");
    assert_eq!(meta["scopes"], json!(["mcp:read", "mcp:invoke"]));

    let context = body(
        app.as_(&key, Method::GET, "/api/v1/session/context")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let context = &context["data"];
    assert_eq!(context["auth_type"], "machine");
    assert_eq!(context["tenant_id"], tenant.as_str());
    assert_eq!(context["actor_id"], meta["id"]);
    assert_eq!(context["scopes"], json!(["mcp:read", "mcp:invoke"]));
    assert_eq!(context["tenant_status"], "ACTIVE");
    assert_eq!(context["onboarding_state"], "CREATED");
    assert!(context["key_expires_at"].as_str().is_some(), "{context}");

    // X-API-Key works too; the operator's own context has no tenant.
    let by_header = app
        .client
        .get(app.url("/api/v1/session/context"))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(by_header.status(), StatusCode::OK);
    let operator = body(
        app.operator(Method::GET, "/api/v1/session/context")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(operator["data"]["auth_type"], "founder");
    assert!(operator["data"].get("tenant_id").is_none());

    // The key is listed, never shown again.
    let listed = body(
        app.operator(Method::GET, &format!("/api/v1/admin/tenants/{tenant}/api-keys"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(listed["meta"]["total"], 1);
    assert!(listed["data"][0].get("key").is_none());
    assert!(!listed.to_string().contains(&key));
}

async fn revocation_and_suspension_reach_every_replica_within_a_second(backend: Backend) {
    let replicas = spawn_replicas(backend, 2).await;
    let (a, b) = (&replicas[0], &replicas[1]);
    let tenant = a.create_tenant("Acme").await;
    let (key_id, key) = a.create_key(&tenant, &["mcp:read"]).await;
    let on_b = || b.as_(&key, Method::GET, "/api/v1/session/context").send();

    // Warm replica B's cache.
    assert_eq!(on_b().await.unwrap().status(), StatusCode::OK);
    assert_eq!(on_b().await.unwrap().status(), StatusCode::OK);

    /// Polls until `status` (and `code`) is seen; returns how long it took.
    async fn until<F, Fut>(request: F, status: StatusCode, code: &str) -> Duration
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = reqwest::Result<reqwest::Response>>,
    {
        let started = Instant::now();
        loop {
            let response = request().await.unwrap();
            if response.status() == status {
                let body: Value = response.json().await.unwrap();
                if code.is_empty() || body["error"]["code"] == code {
                    return started.elapsed();
                }
            }
            assert!(started.elapsed() < Duration::from_secs(5), "never saw {status} {code}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    // Suspend on A: B refuses the key with 403 within a second.
    assert_eq!(a.set_tenant_status(&tenant, "SUSPENDED").await, StatusCode::OK);
    let took = until(on_b, StatusCode::FORBIDDEN, "tenant_suspended").await;
    assert!(took < Duration::from_secs(1), "suspension took {took:?}");

    // Reactivate: the key works again.
    assert_eq!(a.set_tenant_status(&tenant, "ACTIVE").await, StatusCode::OK);
    let took = until(on_b, StatusCode::OK, "").await;
    assert!(took < Duration::from_secs(1), "reactivation took {took:?}");

    // Revoke on A: B refuses the key with 401 within a second.
    let revoke = a
        .operator(Method::DELETE, &format!("/api/v1/admin/api-keys/{key_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), StatusCode::OK);
    assert_eq!(body(revoke).await["data"]["status"], "revoked");
    let took = until(on_b, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    assert!(took < Duration::from_secs(1), "revocation took {took:?}");
    let refused = body(on_b().await.unwrap()).await;
    assert_eq!(refused["error"]["message"], "API key revoked");

    // Terminated tenants are refused with their own code.
    let (_, other) = a.create_key(&tenant, &["mcp:read"]).await;
    assert_eq!(a.set_tenant_status(&tenant, "TERMINATED").await, StatusCode::OK);
    let took = until(
        || b.as_(&other, Method::GET, "/api/v1/session/context").send(),
        StatusCode::FORBIDDEN,
        "tenant_terminated",
    )
    .await;
    assert!(took < Duration::from_secs(1), "termination took {took:?}");
}

/// For every tenant-scoped endpoint, tenant B's credentials must not reach tenant A's
/// objects: 404 for A's objects, never A's data in lists, 403 on operator routes.
async fn tenant_isolation_holds_on_every_tenant_scoped_endpoint(app: TestApp) {
    let tenant_a = app.create_tenant("A").await;
    let tenant_b = app.create_tenant("B").await;
    let (a_key_id, a_admin) = app.create_key(&tenant_a, &["admin"]).await;
    let (_, b_admin) = app.create_key(&tenant_b, &["admin"]).await;
    let (a_other_id, a_other) = app.create_key(&tenant_a, &["mcp:read"]).await;

    // (method, path, body, expected status) — extend as endpoints are added.
    let cases: Vec<(Method, String, Option<Value>, StatusCode)> = vec![
        (
            Method::DELETE,
            format!("/api/v1/api-keys/{a_other_id}"),
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            Method::DELETE,
            format!("/api/v1/api-keys/{a_key_id}"),
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            Method::GET,
            format!("/api/v1/admin/tenants/{tenant_a}"),
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            Method::PATCH,
            format!("/api/v1/admin/tenants/{tenant_a}"),
            Some(json!({"status": "SUSPENDED"})),
            StatusCode::FORBIDDEN,
        ),
        (
            Method::GET,
            format!("/api/v1/admin/tenants/{tenant_a}/api-keys"),
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            Method::POST,
            format!("/api/v1/admin/tenants/{tenant_a}/api-keys"),
            Some(json!({"name": "x", "scopes": ["admin"]})),
            StatusCode::FORBIDDEN,
        ),
        (
            Method::DELETE,
            format!("/api/v1/admin/api-keys/{a_other_id}"),
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            Method::GET,
            "/api/v1/admin/tenants".to_owned(),
            None,
            StatusCode::FORBIDDEN,
        ),
    ];
    for (method, path, json_body, expected) in cases {
        let mut request = app.as_(&b_admin, method.clone(), &path);
        if let Some(b) = &json_body {
            request = request.json(b);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), expected, "{method} {path}");
        let text = response.text().await.unwrap();
        assert!(!text.contains(&tenant_a), "{method} {path} leaked tenant A: {text}");
    }

    // Lists show only the caller's own tenant.
    let b_list = app.as_(&b_admin, Method::GET, "/api/v1/api-keys").send().await.unwrap();
    assert_eq!(b_list.status(), StatusCode::OK);
    let b_list = body(b_list).await;
    assert_eq!(b_list["meta"]["total"], 1);
    assert!(
        b_list["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["tenant_id"] == tenant_b.as_str())
    );
    assert!(!b_list.to_string().contains(&tenant_a));
    let a_list = body(app.as_(&a_admin, Method::GET, "/api/v1/api-keys").send().await.unwrap()).await;
    assert_eq!(a_list["meta"]["total"], 2);

    // Each sees its own context; A's keys still work after B's attempts.
    let b_context = body(
        app.as_(&b_admin, Method::GET, "/api/v1/session/context")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(b_context["data"]["tenant_id"], tenant_b.as_str());
    let still = app
        .as_(&a_other, Method::GET, "/api/v1/session/context")
        .send()
        .await
        .unwrap();
    assert_eq!(still.status(), StatusCode::OK);
}

async fn scopes_decide_who_manages_keys(app: TestApp) {
    let tenant = app.create_tenant("Acme").await;
    let (_, reader) = app.create_key(&tenant, &["mcp:read"]).await;
    let (admin_id, admin) = app.create_key(&tenant, &["admin"]).await;
    let new_key = json!({"name": "child", "scopes": ["telemetry:write"]});

    let refused = app
        .as_(&reader, Method::POST, "/api/v1/api-keys")
        .json(&new_key)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(body(refused).await["error"]["code"], "insufficient_scope");
    let refused = app.as_(&reader, Method::GET, "/api/v1/api-keys").send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);

    let created = app
        .as_(&admin, Method::POST, "/api/v1/api-keys")
        .json(&new_key)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let created = body(created).await;
    assert_eq!(created["data"]["api_key"]["created_by"], format!("key:{admin_id}"));
    assert_eq!(created["data"]["api_key"]["tenant_id"], tenant.as_str());
    let child_id = created["data"]["api_key"]["id"].as_str().unwrap().to_owned();
    let child = created["data"]["key"].as_str().unwrap().to_owned();
    assert_eq!(
        app.as_(&child, Method::GET, "/api/v1/session/context")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    let revoked = app
        .as_(&admin, Method::DELETE, &format!("/api/v1/api-keys/{child_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK);

    // The operator has no tenant of its own; a tenant key is no operator.
    let operator = app
        .operator(Method::POST, "/api/v1/api-keys")
        .json(&new_key)
        .send()
        .await
        .unwrap();
    assert_eq!(operator.status(), StatusCode::FORBIDDEN);
    let not_founder = app
        .as_(&admin, Method::GET, "/api/v1/admin/tenants")
        .send()
        .await
        .unwrap();
    assert_eq!(not_founder.status(), StatusCode::FORBIDDEN);

    // Bad requests are 422 with the field named.
    for (bad, field) in [
        (json!({"name": "x", "scopes": []}), "scopes"),
        (json!({"name": "x", "scopes": ["root"]}), "scopes"),
        (json!({"name": "", "scopes": ["admin"]}), "name"),
        (
            json!({"name": "x", "scopes": ["admin"], "expires_at": "2001-01-01T00:00:00Z"}),
            "expires_at",
        ),
    ] {
        let response = app
            .as_(&admin, Method::POST, "/api/v1/api-keys")
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert_eq!(body(response).await["error"]["field"], field, "{bad}");
    }
    let bad_date = app
        .as_(&admin, Method::POST, "/api/v1/api-keys")
        .json(&json!({"name": "x", "scopes": ["admin"], "expires_at": "next tuesday"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_date.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

async fn expired_and_malformed_keys_are_refused(app: TestApp) {
    let tenant = app.create_tenant("Acme").await;
    let soon = (time::OffsetDateTime::now_utc() + time::Duration::milliseconds(1500))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let created = app
        .operator(Method::POST, &format!("/api/v1/admin/tenants/{tenant}/api-keys"))
        .json(&json!({"name": "short-lived", "scopes": ["mcp:read"], "expires_at": soon}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let key = body(created).await["data"]["key"].as_str().unwrap().to_owned();
    assert_eq!(
        app.as_(&key, Method::GET, "/api/v1/session/context")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(1700)).await;
    let expired = app
        .as_(&key, Method::GET, "/api/v1/session/context")
        .send()
        .await
        .unwrap();
    assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(body(expired).await["error"]["message"], "API key expired");

    for bad in [
        "aos_sk_short",
        "aos_sk_!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
        "not-a-token",
        "a.b.c",
    ] {
        let response = app
            .as_(bad, Method::GET, "/api/v1/session/context")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{bad}");
    }
    // A well-formed key that was never issued.
    let unknown = format!("aos_sk_{}", "A".repeat(43));
    let response = app
        .as_(&unknown, Method::GET, "/api/v1/session/context")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

async fn only_a_hash_and_a_prefix_of_a_key_are_stored(app: TestApp) {
    let tenant = app.create_tenant("Acme").await;
    let mut keys = Vec::new();
    for _ in 0..3 {
        keys.push(app.create_key(&tenant, &["admin"]).await.1);
    }
    let rows = aos_drivers::testing::table_as_text(app.database(), "api_keys").await;
    assert_eq!(rows.len(), 3);
    let all = rows.join("\n");
    for key in &keys {
        assert!(!all.contains(key.as_str()), "plaintext key stored");
        // The random part never appears beyond the display prefix.
        let secret_tail = &key[15..];
        assert!(!all.contains(secret_tail), "key material stored");
        assert!(all.contains(&key[..15]), "display prefix stored");
    }
    if app.backend == Backend::Sqlite {
        // Every byte SQLite wrote (database and write-ahead log).
        let path = app.database_url().trim_start_matches("sqlite://").to_owned();
        for file in [path.clone(), format!("{path}-wal")] {
            let bytes = std::fs::read(&file).unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes);
            for key in &keys {
                assert!(!text.contains(&key[15..]), "key material in {file}");
            }
        }
    }
}

async fn repeated_failures_are_rate_limited_without_locking_out_the_holder(app: TestApp) {
    let tenant = app.create_tenant("Acme").await;
    let (_, key) = app.create_key(&tenant, &["mcp:read"]).await;
    // Guesses that share the real key's display prefix, from the same address.
    let guess = |i: usize| format!("{}{i:0>35}", &key[..15]);
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for i in 0..12 {
        let response = app
            .as_(&guess(i), Method::GET, "/api/v1/session/context")
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            retry_after = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
            assert_eq!(body(response).await["error"]["code"], "rate_limited");
            statuses.push(429);
        } else {
            statuses.push(response.status().as_u16());
        }
    }
    assert_eq!(&statuses[..10], &[401; 10], "{statuses:?}");
    assert_eq!(&statuses[10..], &[429, 429], "{statuses:?}");
    let retry_after = retry_after.unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");

    // The real key holder, same address and prefix, is not locked out.
    let real = app
        .as_(&key, Method::GET, "/api/v1/session/context")
        .send()
        .await
        .unwrap();
    assert_eq!(real.status(), StatusCode::OK);
}

async fn keys_cannot_be_issued_for_inactive_tenants(app: TestApp) {
    let tenant = app.create_tenant("Acme").await;
    assert_eq!(app.set_tenant_status(&tenant, "SUSPENDED").await, StatusCode::OK);
    let response = app
        .operator(Method::POST, &format!("/api/v1/admin/tenants/{tenant}/api-keys"))
        .json(&json!({"name": "x", "scopes": ["admin"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let missing = app
        .operator(
            Method::POST,
            &format!("/api/v1/admin/tenants/{}/api-keys", uuid::Uuid::now_v7()),
        )
        .json(&json!({"name": "x", "scopes": ["admin"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}
