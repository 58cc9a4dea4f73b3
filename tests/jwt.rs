//! Human callers: JWTs minted by the tests with their own keys, verified by AOS from a PEM,
//! a PEM file, or a JWKS URL served on loopback.

// Integration tests: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aos_engines_free::*;
use aos_spine::AuthConfig;
use aos_tests::{Backend, TestApp, spawn_with_auth, test_auth};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Settings and minting helpers (kept here: the tests crate may not name aos-engines).
mod aos_engines_free {
    pub const ISSUER: &str = "https://idp.test";
    pub const AUDIENCE: &str = "aos";

    pub fn fixture(name: &str) -> String {
        std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("fixtures/jwt")
                .join(name),
        )
        .unwrap()
    }

    pub fn now() -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp()
    }
}

fn jwt_config(extra: Value) -> AuthConfig {
    let mut settings = json!({ "issuer": ISSUER, "audience": AUDIENCE });
    for (k, v) in extra.as_object().unwrap() {
        settings[k] = v.clone();
    }
    AuthConfig {
        jwt: Some(serde_json::from_value(settings).unwrap()),
        ..test_auth()
    }
}

fn mint(claims: &Value, alg: Algorithm, private_pem: &str, kid: Option<&str>) -> String {
    let key = match alg {
        Algorithm::ES256 => EncodingKey::from_ec_pem(private_pem.as_bytes()).unwrap(),
        _ => EncodingKey::from_rsa_pem(private_pem.as_bytes()).unwrap(),
    };
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

fn claims(tenant: &str, sub: &str, roles: Value) -> Value {
    json!({ "iss": ISSUER, "aud": AUDIENCE, "sub": sub, "tenant_id": tenant, "roles": roles, "exp": now() + 300, "iat": now() })
}

async fn context(app: &TestApp, token: &str) -> (StatusCode, Value) {
    let response = app
        .as_(token, Method::GET, "/api/v1/session/context")
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

async fn rs256_app(backend: Backend) -> TestApp {
    spawn_with_auth(
        backend,
        jwt_config(json!({ "public_key_pem": fixture("rs256-public.pem") })),
    )
    .await
}

aos_tests::for_each_backend!(
    an_admin_user_reads_its_context_and_manages_keys,
    roles_that_are_not_admin_grant_only_their_scopes,
    tokens_that_fail_any_check_are_refused,
    suspended_tenants_users_are_forbidden,
    es256_keys_from_a_file_are_accepted,
    jwks_keys_are_fetched_once_and_cached
);

async fn an_admin_user_reads_its_context_and_manages_keys(backend: Backend) {
    let app = rs256_app(backend).await;
    let tenant = app.create_tenant("Acme").await;
    let token = mint(
        &claims(&tenant, "alice", json!(["admin"])),
        Algorithm::RS256,
        &fixture("rs256-private.pem"),
        None,
    );

    let (status, body) = context(&app, &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let data = &body["data"];
    assert_eq!(data["auth_type"], "human");
    assert_eq!(data["tenant_id"], tenant.as_str());
    assert_eq!(data["actor_id"], "alice");
    assert_eq!(data["roles"], json!(["admin"]));
    assert_eq!(data["scopes"], json!(["admin"]));
    assert_eq!(data["tenant_status"], "ACTIVE");

    let created = app
        .as_(&token, Method::POST, "/api/v1/api-keys")
        .json(&json!({"name": "from alice", "scopes": ["mcp:read"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["data"]["api_key"]["created_by"], "user:alice");
}

async fn roles_that_are_not_admin_grant_only_their_scopes(backend: Backend) {
    let app = rs256_app(backend).await;
    let tenant = app.create_tenant("Acme").await;
    // Roles as a space-separated string, with one that is not a scope.
    let token = mint(
        &claims(&tenant, "bob", json!("mcp:read telemetry:read viewer")),
        Algorithm::RS256,
        &fixture("rs256-private.pem"),
        None,
    );
    let (status, body) = context(&app, &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["scopes"], json!(["mcp:read", "telemetry:read"]));
    let refused = app
        .as_(&token, Method::POST, "/api/v1/api-keys")
        .json(&json!({"name": "x", "scopes": ["mcp:read"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let refused: Value = refused.json().await.unwrap();
    assert_eq!(refused["error"]["code"], "insufficient_scope");
}

async fn tokens_that_fail_any_check_are_refused(backend: Backend) {
    // More failures from one address than the default limit: raise it for this test.
    let auth = AuthConfig {
        max_failed_attempts: 100,
        ..jwt_config(json!({ "public_key_pem": fixture("rs256-public.pem") }))
    };
    let app = spawn_with_auth(backend, auth).await;
    let tenant = app.create_tenant("Acme").await;
    let good = claims(&tenant, "alice", json!(["admin"]));
    let key = fixture("rs256-private.pem");
    let with = |field: &str, value: Value| {
        let mut c = good.clone();
        c[field] = value;
        c
    };
    let without = |field: &str| {
        let mut c = good.clone();
        c.as_object_mut().unwrap().remove(field);
        c
    };
    let hs256 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &good,
        &EncodingKey::from_secret(b"guess"),
    )
    .unwrap();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "signed by another key",
            mint(&good, Algorithm::RS256, &fixture("other-rs256-private.pem"), None),
            "token signature is invalid",
        ),
        (
            "wrong issuer",
            mint(&with("iss", json!("https://evil")), Algorithm::RS256, &key, None),
            "token issuer not accepted",
        ),
        (
            "wrong audience",
            mint(&with("aud", json!("other")), Algorithm::RS256, &key, None),
            "token audience not accepted",
        ),
        (
            "expired",
            mint(&with("exp", json!(now() - 120)), Algorithm::RS256, &key, None),
            "token expired",
        ),
        (
            "not yet valid",
            mint(&with("nbf", json!(now() + 600)), Algorithm::RS256, &key, None),
            "token not yet valid",
        ),
        (
            "no exp",
            mint(&without("exp"), Algorithm::RS256, &key, None),
            "token lacks exp, iss or aud",
        ),
        (
            "no tenant",
            mint(&without("tenant_id"), Algorithm::RS256, &key, None),
            "token has no tenant id claim (a UUID)",
        ),
        (
            "tenant not a uuid",
            mint(&with("tenant_id", json!("acme")), Algorithm::RS256, &key, None),
            "token has no tenant id claim (a UUID)",
        ),
        (
            "unknown tenant",
            mint(
                &with("tenant_id", json!(uuid::Uuid::now_v7().to_string())),
                Algorithm::RS256,
                &key,
                None,
            ),
            "unknown tenant",
        ),
        ("symmetric algorithm", hs256, "token algorithm not accepted"),
        ("garbage with two dots", "abc.def.ghi".to_owned(), "malformed token"),
    ];
    for (case, token, message) in cases {
        let (status, body) = context(&app, &token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{case}: {body}");
        assert_eq!(body["error"]["code"], "unauthenticated", "{case}");
        assert_eq!(body["error"]["message"], message, "{case}");
    }
}

async fn suspended_tenants_users_are_forbidden(backend: Backend) {
    let app = rs256_app(backend).await;
    let tenant = app.create_tenant("Acme").await;
    let token = mint(
        &claims(&tenant, "alice", json!(["admin"])),
        Algorithm::RS256,
        &fixture("rs256-private.pem"),
        None,
    );
    assert_eq!(context(&app, &token).await.0, StatusCode::OK);
    assert_eq!(app.set_tenant_status(&tenant, "SUSPENDED").await, StatusCode::OK);
    let started = std::time::Instant::now();
    loop {
        let (status, body) = context(&app, &token).await;
        if status == StatusCode::FORBIDDEN {
            assert_eq!(body["error"]["code"], "tenant_suspended");
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "still {status} after 1s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn es256_keys_from_a_file_are_accepted(backend: Backend) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/jwt/es256-public.pem");
    let app = spawn_with_auth(backend, jwt_config(json!({ "public_key_file": path }))).await;
    let tenant = app.create_tenant("Acme").await;
    let token = mint(
        &claims(&tenant, "carol", json!([])),
        Algorithm::ES256,
        &fixture("es256-private.pem"),
        None,
    );
    let (status, body) = context(&app, &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["scopes"], json!([]));
    // An RS256 token is not accepted by an EC key.
    let rsa = mint(
        &claims(&tenant, "carol", json!([])),
        Algorithm::RS256,
        &fixture("rs256-private.pem"),
        None,
    );
    assert_eq!(context(&app, &rsa).await.0, StatusCode::UNAUTHORIZED);
}

async fn jwks_keys_are_fetched_once_and_cached(backend: Backend) {
    // A JWKS endpoint on loopback that counts its fetches.
    let encoding = EncodingKey::from_rsa_pem(fixture("rs256-private.pem").as_bytes()).unwrap();
    let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&encoding, Algorithm::RS256).unwrap();
    jwk.common.key_id = Some("k1".into());
    let jwks = serde_json::to_string(&json!({ "keys": [jwk] })).unwrap();
    let fetches = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&fetches);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = actix_web::HttpServer::new(move || {
        let jwks = jwks.clone();
        let counter = Arc::clone(&counter);
        actix_web::App::new().route(
            "/jwks.json",
            actix_web::web::get().to(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                let jwks = jwks.clone();
                async move {
                    actix_web::HttpResponse::Ok()
                        .content_type("application/json")
                        .body(jwks)
                }
            }),
        )
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    let jwks_server = server.handle();
    tokio::spawn(server);

    let app = spawn_with_auth(
        backend,
        jwt_config(json!({ "jwks_url": format!("http://127.0.0.1:{port}/jwks.json") })),
    )
    .await;
    let tenant = app.create_tenant("Acme").await;
    let token = mint(
        &claims(&tenant, "dave", json!(["admin"])),
        Algorithm::RS256,
        &fixture("rs256-private.pem"),
        Some("k1"),
    );
    for _ in 0..5 {
        let (status, body) = context(&app, &token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "the JWKS is cached");

    // A kid the IdP does not publish (a refetch is rate-limited) and a foreign key.
    let unknown_kid = mint(
        &claims(&tenant, "dave", json!([])),
        Algorithm::RS256,
        &fixture("rs256-private.pem"),
        Some("k9"),
    );
    assert_eq!(context(&app, &unknown_kid).await.0, StatusCode::UNAUTHORIZED);
    let forged = mint(
        &claims(&tenant, "dave", json!([])),
        Algorithm::RS256,
        &fixture("other-rs256-private.pem"),
        Some("k1"),
    );
    assert_eq!(context(&app, &forged).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    drop(jwks_server.stop(false));
}
