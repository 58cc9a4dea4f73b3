//! A fake OpenAI-compatible upstream for the proxy's tests, benchmark and end-to-end
//! script: `/v1/chat/completions` (plain and streamed), `/v1/embeddings`, on loopback.
//!
//! Answers are deterministic. Markers in the last user message steer it:
//! `[[status:NNN]]` answers that HTTP status with an OpenAI error body, `[[chunks:N]]`
//! streams N content chunks (default 5), `[[slow:MS]]` waits MS between chunks,
//! `[[nousage]]` leaves usage out, `[[forever]]` streams until the client hangs up.
//! `[[echo]]` reflects the `Authorization` header it received into every kind of answer
//! (the content, an error's message and code, each streamed chunk and a mid-stream error
//! event, an embedding's model); `[[echotext]]` answers it as a non-JSON 200 body: a
//! hostile upstream, for the test that AOS's provider key never reaches a tenant.
//! Usage: `prompt_tokens` = characters of all message contents / 4 + 1,
//! `completion_tokens` = the number of content chunks (one word each).

// Test support: a failed setup step is a failed test.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::indexing_slicing)]

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// What the fake saw and did.
#[derive(Debug, Default)]
pub struct Counters {
    /// Requests received (both endpoints).
    pub requests: AtomicUsize,
    /// Streams whose client went away before the end.
    pub streams_cut: AtomicUsize,
    /// Content chunks sent, all streams.
    pub chunks_sent: AtomicU64,
    /// The last request body and `Authorization` header.
    pub last_body: Mutex<Option<Value>>,
    pub last_auth: Mutex<Option<String>>,
}

#[derive(Clone)]
struct Fake {
    counters: Arc<Counters>,
    /// When set, requests without `Authorization: Bearer <key>` get 401.
    key: Option<String>,
}

/// A running fake upstream.
pub struct FakeLlm {
    /// `http://127.0.0.1:PORT/v1`
    pub base_url: String,
    pub counters: Arc<Counters>,
}

fn marker(text: &str, name: &str) -> Option<String> {
    let start = text.find(&format!("[[{name}"))?;
    let rest = &text[start + name.len() + 2..];
    let end = rest.find("]]")?;
    Some(rest[..end].trim_start_matches(':').to_owned())
}

fn all_text(body: &Value) -> String {
    let mut text = String::new();
    if let Some(messages) = body["messages"].as_array() {
        for m in messages {
            match &m["content"] {
                Value::String(s) => text.push_str(s),
                Value::Array(parts) => parts
                    .iter()
                    .filter_map(|p| p["text"].as_str())
                    .for_each(|t| text.push_str(t)),
                _ => {}
            }
        }
    }
    text
}

fn error(status: u16, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        axum::Json(json!({"error": {"message": message, "type": "invalid_request_error", "code": "fake_error", "param": null}})),
    )
        .into_response()
}

/// `None` when the request may proceed, else the 401 to send.
fn check_auth(fake: &Fake, headers: &HeaderMap) -> Option<Response> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    *fake.counters.last_auth.lock().unwrap() = auth.clone();
    match &fake.key {
        Some(key) if auth.as_deref() != Some(&format!("Bearer {key}")) => Some(error(401, "bad upstream key")),
        _ => None,
    }
}

/// Counts a stream as cut if it is dropped before it finished.
struct CutGuard {
    counters: Arc<Counters>,
    finished: bool,
}

impl Drop for CutGuard {
    fn drop(&mut self) {
        if !self.finished {
            self.counters.streams_cut.fetch_add(1, Ordering::SeqCst);
        }
    }
}

async fn chat(State(fake): State<Fake>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    fake.counters.requests.fetch_add(1, Ordering::SeqCst);
    if let Some(response) = check_auth(&fake, &headers) {
        return response;
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error(400, "not JSON");
    };
    *fake.counters.last_body.lock().unwrap() = Some(body.clone());
    let text = all_text(&body);
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let echo = text.contains("[[echo]]").then(|| auth.clone());
    if text.contains("[[echotext]]") {
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain")],
            format!("you sent {auth}"),
        )
            .into_response();
    }
    if let Some(status) = marker(&text, "status").and_then(|s| s.parse::<u16>().ok()) {
        if let Some(auth) = &echo {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
            return (
                status,
                axum::Json(json!({"error": {"message": format!("bad header {auth}"), "type": "invalid_request_error", "code": auth, "param": null}})),
            )
                .into_response();
        }
        return error(status, "the fake upstream was asked to fail");
    }
    let model = body["model"].as_str().unwrap_or("fake").to_owned();
    let chunks: usize = marker(&text, "chunks").and_then(|s| s.parse().ok()).unwrap_or(5);
    let slow = marker(&text, "slow")
        .and_then(|s| s.parse().ok())
        .map(Duration::from_millis);
    let forever = text.contains("[[forever]]");
    let usage_on = !text.contains("[[nousage]]");
    let prompt_tokens = (text.chars().count() / 4 + 1) as u64;
    if body["stream"].as_bool() != Some(true) {
        let mut content: Vec<String> = (0..chunks).map(|i| format!("word{i}")).collect();
        content.extend(echo.clone());
        let mut response = json!({
            "id": "chatcmpl-fake", "object": "chat.completion", "created": 1_700_000_000u64, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content.join(" ")}, "finish_reason": "stop"}],
        });
        if usage_on {
            response["usage"] = json!({"prompt_tokens": prompt_tokens, "completion_tokens": chunks, "total_tokens": prompt_tokens + chunks as u64});
        }
        return axum::Json(response).into_response();
    }
    let include_usage = usage_on && body["stream_options"]["include_usage"].as_bool() == Some(true);
    let counters = Arc::clone(&fake.counters);
    let stream = async_stream(counters, model, chunks, slow, forever, include_usage, prompt_tokens);
    if let Some(auth) = echo {
        // Every chunk carries the header, then a mid-stream error event does.
        let tail = futures::stream::once(async move {
            event(&json!({"error": {"message": format!("upstream saw {auth}"), "code": auth}}))
        });
        let in_chunks = auth_for_chunks(&headers);
        let reflected = futures::StreamExt::map(stream, move |item| {
            item.map(|bytes| {
                let text = String::from_utf8_lossy(&bytes)
                    .replace("\"content\":\" word", &format!("\"content\":\" {in_chunks} word"));
                bytes::Bytes::from(text)
            })
        });
        let body = futures::StreamExt::chain(reflected, tail);
        return Response::builder()
            .status(200)
            .header(header::CONTENT_TYPE, "text/event-stream")
            .body(Body::from_stream(body))
            .unwrap();
    }
    Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap()
}

fn auth_for_chunks(headers: &HeaderMap) -> String {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn event(value: &Value) -> Result<bytes::Bytes, Infallible> {
    Ok(bytes::Bytes::from(format!("data: {value}\n\n")))
}

fn async_stream(
    counters: Arc<Counters>,
    model: String,
    chunks: usize,
    slow: Option<Duration>,
    forever: bool,
    include_usage: bool,
    prompt_tokens: u64,
) -> impl futures::Stream<Item = Result<bytes::Bytes, Infallible>> + Send {
    let chunk = move |delta: Value, finish: Value| {
        let mut c = json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1_700_000_000u64, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        if include_usage {
            c["usage"] = Value::Null;
        }
        c
    };
    futures::stream::unfold(
        (
            0usize,
            CutGuard {
                counters,
                finished: false,
            },
        ),
        move |(i, mut guard)| {
            let chunk = chunk.clone();
            async move {
                let total = if forever { usize::MAX - 8 } else { chunks };
                if let Some(delay) = slow.filter(|_| i > 0) {
                    tokio::time::sleep(delay).await;
                } else if forever && i > 0 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let item = if i == 0 {
                    chunk(json!({"role": "assistant", "content": ""}), Value::Null)
                } else if i <= total {
                    guard.counters.chunks_sent.fetch_add(1, Ordering::SeqCst);
                    chunk(json!({"content": format!(" word{}", i - 1)}), Value::Null)
                } else if i == total + 1 {
                    chunk(json!({}), json!("stop"))
                } else if i == total + 2 && include_usage {
                    json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1_700_000_000u64,
                        "choices": [], "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": chunks, "total_tokens": prompt_tokens + chunks as u64}})
                } else if i <= total + 3 {
                    guard.finished = true;
                    return Some((Ok(bytes::Bytes::from_static(b"data: [DONE]\n\n")), (total + 4, guard)));
                } else {
                    return None;
                };
                let next = if i == total + 1 && !include_usage {
                    total + 3
                } else {
                    i + 1
                };
                Some((event(&item), (next, guard)))
            }
        },
    )
}

async fn embeddings(State(fake): State<Fake>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    fake.counters.requests.fetch_add(1, Ordering::SeqCst);
    if let Some(response) = check_auth(&fake, &headers) {
        return response;
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error(400, "not JSON");
    };
    *fake.counters.last_body.lock().unwrap() = Some(body.clone());
    let echo = body["input"].to_string().contains("[[echo]]");
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let inputs: Vec<String> = match &body["input"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_owned())
            .collect(),
        _ => return error(400, "input"),
    };
    let chars: usize = inputs.iter().map(|s| s.chars().count()).sum();
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let seed = s.len() as f64;
            let vector: Vec<f64> = (0..8).map(|d| ((seed + d as f64) / 10.0).sin()).collect();
            json!({"object": "embedding", "index": i, "embedding": vector})
        })
        .collect();
    let tokens = (chars / 4 + 1) as u64;
    let model = if echo { json!(auth) } else { body["model"].clone() };
    axum::Json(json!({"object": "list", "data": data, "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}))
    .into_response()
}

/// Serves the fake on `listener`.
pub async fn serve(listener: tokio::net::TcpListener, key: Option<String>, counters: Arc<Counters>) {
    let app = Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/embeddings", post(embeddings))
        .with_state(Fake { counters, key });
    axum::serve(listener, app).await.expect("the fake upstream serves");
}

/// Starts the fake on a random loopback port; requires `key` when given.
pub async fn start(key: Option<&str>) -> FakeLlm {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let counters = Arc::new(Counters::default());
    tokio::spawn(serve(listener, key.map(str::to_owned), Arc::clone(&counters)));
    FakeLlm {
        base_url: format!("http://127.0.0.1:{port}/v1"),
        counters,
    }
}
