//! No key, token or operator secret ever reaches the logs: every log line (at DEBUG) of a
//! session that creates, uses, misuses and revokes credentials is captured and searched.

// Integration tests: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use aos_spine::AuthConfig;
use aos_tests::{Backend, OPERATOR_TOKEN, Options, spawn_opts, test_auth, test_mcp};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs one process-wide subscriber writing JSON lines (with span fields) to memory.
fn captured() -> Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Captured::default();
        let writer = logs.clone();
        tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_max_level(tracing_subscriber::filter::LevelFilter::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        logs
    })
    .clone()
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/jwt")
            .join(name),
    )
    .unwrap()
}

async fn no_secret_is_logged(backend: Backend) {
    let logs = captured();
    let auth = AuthConfig {
        jwt: Some(
            serde_json::from_value(json!({
                "issuer": "https://idp.test",
                "audience": "aos",
                "public_key_pem": fixture("rs256-public.pem"),
            }))
            .unwrap(),
        ),
        ..test_auth()
    };
    let credentials = tempfile::tempdir().unwrap();
    let mut mcp = test_mcp();
    mcp.credentials.file_dir = credentials.path().to_path_buf();
    // The LLM proxy in front of a fake upstream that wants its own key.
    let upstream_key = "sk-upstream-Qm81zz-0123456789abcdef";
    let fake = aos_tests::fake_llm::start(Some(upstream_key)).await;
    std::fs::write(credentials.path().join("upstream-key"), upstream_key).unwrap();
    let proxy = serde_json::from_value(json!({
        "providers": {
            "fake": {"base_url": fake.base_url, "credential_ref": format!("file://{}", credentials.path().join("upstream-key").display())},
            "nokey": {"base_url": fake.base_url},
        },
        "models": {"gpt-4o-mini": "fake", "nokey-model": "nokey"},
    }))
    .unwrap();
    let app = spawn_opts(
        backend,
        Options {
            auth,
            mcp,
            proxy,
            ..Options::default()
        },
    )
    .await;
    let tenant = app.create_tenant("Leaky").await;
    let (key_id, key) = app.create_key(&tenant, &["admin"]).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &json!({"iss": "https://idp.test", "aud": "aos", "sub": "alice", "tenant_id": tenant, "roles": ["admin"], "exp": now + 300}),
        &EncodingKey::from_rsa_pem(fixture("rs256-private.pem").as_bytes()).unwrap(),
    )
    .unwrap();

    let ok = [
        app.as_(&key, Method::GET, "/api/v1/session/context")
            .send()
            .await
            .unwrap(),
        app.client
            .get(app.url("/api/v1/api-keys"))
            .header("x-api-key", &key)
            .send()
            .await
            .unwrap(),
        app.as_(&token, Method::GET, "/api/v1/session/context")
            .send()
            .await
            .unwrap(),
        app.as_(&token, Method::POST, "/api/v1/api-keys")
            .json(&json!({"name": "n", "scopes": ["mcp:read"]}))
            .send()
            .await
            .unwrap(),
    ];
    for response in ok {
        assert!(response.status().is_success(), "{}", response.status());
    }
    let wrong_key = format!("{}{}", &key[..15], "x".repeat(35));
    let refused = [
        app.as_(&wrong_key, Method::GET, "/api/v1/session/context")
            .send()
            .await
            .unwrap(),
        app.as_(&format!("{OPERATOR_TOKEN}-typo"), Method::GET, "/api/v1/admin/tenants")
            .send()
            .await
            .unwrap(),
        app.as_(&format!("{token}x"), Method::GET, "/api/v1/session/context")
            .send()
            .await
            .unwrap(),
    ];
    for response in refused {
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    // An MCP server whose credential is resolved from a reference, used and refused.
    let mcp_secret = "mcp-credential-Vx93kq";
    let dir = credentials.path().join(&tenant);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("token"), mcp_secret).unwrap();
    let server = aos_tests::mcp_servers::streamable_http(
        aos_tests::mcp_servers::NotesServer::default(),
        Some(mcp_secret.to_owned()),
    )
    .await;
    let registered = app
        .as_(&key, Method::POST, "/api/v1/integrations/mcp-servers")
        .json(&json!({"name": "notes", "url": server.url, "credential_ref": "file:///token"}))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), StatusCode::CREATED);
    let registered: serde_json::Value = registered.json().await.unwrap();
    assert!(registered["data"].get("discovery_error").is_none(), "{registered}");
    assert!(!registered.to_string().contains(mcp_secret));
    // A wrong credential: the server refuses, the error must not echo the secret.
    std::fs::write(dir.join("token"), format!("{mcp_secret}-wrong")).unwrap();
    let id = registered["data"]["server"]["id"].as_str().unwrap();
    let refused = app
        .as_(
            &key,
            Method::POST,
            &format!("/api/v1/integrations/mcp-servers/{id}/discover"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_GATEWAY);
    assert!(!refused.text().await.unwrap().contains(mcp_secret));

    // Proxied calls: one that works, one whose provider refuses, one a guardrail refuses
    // for the secret in its prompt, one with PII flagged.
    let prompt_secret = "sk-proj-PromptSecret0123456789abcdefgh";
    let pii = "carol.leaky@example.com";
    for (model, text, expected) in [
        ("gpt-4o-mini", "hello".to_owned(), StatusCode::OK),
        ("nokey-model", "hello".to_owned(), StatusCode::BAD_GATEWAY),
        ("gpt-4o-mini", format!("use {prompt_secret}"), StatusCode::BAD_REQUEST),
        ("gpt-4o-mini", format!("mail {pii}"), StatusCode::OK),
    ] {
        let response = app
            .as_(&key, Method::POST, "/v1/chat/completions")
            .json(&json!({"model": model, "messages": [{"role": "user", "content": text}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), expected);
        let body = response.text().await.unwrap();
        assert!(!body.contains(upstream_key) && !body.contains(prompt_secret), "{body}");
    }

    let revoked = app
        .operator(Method::DELETE, &format!("/api/v1/admin/api-keys/{key_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK);

    let text = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    // The capture works: the events we expect are there, with request ids.
    assert!(text.contains("API key created"), "nothing captured?");
    assert!(text.contains("authentication refused"));
    assert!(text.contains("request refused by a guardrail"));
    assert!(text.contains("upstream answered an error"));
    assert!(text.contains("request_id"));
    // And no secret is.
    let signature = token.rsplit('.').next().unwrap();
    for (what, secret) in [
        ("API key", key.as_str()),
        ("API key material", &key[15..]),
        ("mistyped key material", &wrong_key[15..]),
        ("operator token", OPERATOR_TOKEN),
        ("JWT", token.as_str()),
        ("JWT signature", signature),
        ("MCP server credential", mcp_secret),
        ("upstream provider key", upstream_key),
        ("secret in a prompt", prompt_secret),
        ("PII in a prompt", pii),
    ] {
        assert!(!text.contains(secret), "{what} found in the logs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_no_secret_is_logged() {
    no_secret_is_logged(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_no_secret_is_logged() {
    no_secret_is_logged(Backend::Sqlite).await;
}
