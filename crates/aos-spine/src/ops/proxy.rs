//! The OpenAI-compatible proxy (`/v1/chat/completions`, `/v1/embeddings`, `/v1/models`,
//! `/v1/status`) and its management operations (settings, call log, replay).
//!
//! One request, in order: authenticate (the API layer) → parse → **kill switch** (memory)
//! → tenant settings (memory, refreshed every `proxy.settings_cache_ms`) → per-key rate
//! limit (memory) → route the model → **guardrails** → **budget reservation** (the only
//! database work before upstream, and only when the tenant or key has a limit) → upstream
//! → settle and log through the background writer. A streamed response is pumped by its
//! own task, which re-checks the kill switch on every change and bills what was generated
//! when the client hangs up or a freeze cuts the stream.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use aos_drivers::TxMode;
use aos_engines::auth::Scope;
use aos_engines::killswitch;
use aos_engines::proxy::DbJson;
use aos_engines::proxy::guardrails::{self, Hit};
use aos_engines::proxy::prices::{self, Tokens};
use aos_engines::proxy::settings::{self as proxy_settings, TenantSettings};
use aos_engines::proxy::writer::{Record, Writer};
use aos_engines::proxy::{
    self as engine, Bytes, CallFilter, CallStatus, Proxy, ProxyCallRow, Route, budget, tokens, upstream,
};
use aos_engines::tenants::{DbTime, DbUuid};
use aos_schemas::ErrorCode;
use aos_schemas::proxy as api;
use futures::Stream;
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::context::AuthContext;
use crate::error::{SpineError, SpineResult};
use crate::op::{Effect, Mode, OpFuture, Operation, OperationContext};
use crate::ops::cursor;
use crate::ops::killswitch::check as kill_switch_check;
use crate::spine::{Shared, Spine};

/// The proxy's state in the spine.
#[derive(Debug)]
pub(crate) struct ProxyRuntime {
    pub(crate) engine: Proxy,
    pub(crate) writer: Writer,
}

/// Which OpenAI endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Embeddings,
}

impl Endpoint {
    fn path(self) -> &'static str {
        match self {
            Self::Chat => "chat/completions",
            Self::Embeddings => "embeddings",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Chat => "chat.completions",
            Self::Embeddings => "embeddings",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        match name {
            "chat.completions" => Some(Self::Chat),
            "embeddings" => Some(Self::Embeddings),
            _ => None,
        }
    }
}

/// Server-sent events, one complete event per item.
pub type EventStream = Pin<Box<dyn Stream<Item = Bytes> + Send>>;

/// A response body for the client.
pub enum ProxyBody {
    /// A JSON document (the upstream's, byte for byte).
    Json(Bytes),
    /// `text/event-stream`.
    Stream(EventStream),
}

impl std::fmt::Debug for ProxyBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Json(b) => write!(f, "Json({} bytes)", b.len()),
            Self::Stream(_) => f.write_str("Stream"),
        }
    }
}

/// What the proxy answers.
#[derive(Debug)]
pub struct ProxyReply {
    pub call_id: Uuid,
    pub status: u16,
    pub body: ProxyBody,
}

/// The call log row being built for one request.
#[derive(Debug, Clone)]
struct Ledger {
    id: Uuid,
    tenant: Uuid,
    key: Option<Uuid>,
    actor: String,
    endpoint: Endpoint,
    model: String,
    provider: Option<String>,
    stream: bool,
    started: Instant,
    request_hash: String,
    request: Option<Value>,
    replay_eligible: bool,
    replayed_from: Option<Uuid>,
    guardrails: Vec<Hit>,
    killswitch: &'static str,
}

/// How a call ended, for its row.
#[derive(Debug, Clone)]
struct Outcome {
    status: CallStatus,
    http_status: u16,
    error_code: Option<String>,
    tokens: Tokens,
    token_source: &'static str,
    cost: i64,
    response: Option<Value>,
}

impl Outcome {
    fn refused(status: CallStatus, error: &SpineError) -> Self {
        Self {
            status,
            http_status: error.code.http_status(),
            error_code: Some(error.code.as_str().to_owned()),
            tokens: Tokens::default(),
            token_source: "none",
            cost: 0,
            response: Some(json!({"error": {"code": error.code.as_str(), "message": error.message}})),
        }
    }
}

/// A document as the call log keeps it: secrets and PII removed, `None` when too large.
fn stored(value: &Value, max_bytes: usize) -> Option<Value> {
    let mut copy = value.clone();
    guardrails::scrub(&mut copy);
    let size = serde_json::to_vec(&copy).map(|v| v.len()).unwrap_or(usize::MAX);
    (size <= max_bytes).then_some(copy)
}

fn i64_of(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Ledger {
    fn row(self, outcome: Outcome, max_body: usize) -> ProxyCallRow {
        let guardrails = serde_json::to_value(&self.guardrails).unwrap_or_else(|_| json!([]));
        ProxyCallRow {
            id: self.id.into(),
            tenant_id: self.tenant.into(),
            key_id: self.key.map(DbUuid::from),
            actor: self.actor,
            endpoint: self.endpoint.name().to_owned(),
            model: self.model,
            provider: self.provider,
            stream: self.stream,
            status: outcome.status.as_str().to_owned(),
            http_status: i32::from(outcome.http_status),
            error_code: outcome.error_code,
            latency_ms: i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX),
            input_tokens: i64_of(outcome.tokens.input),
            cached_input_tokens: i64_of(outcome.tokens.cached_input),
            output_tokens: i64_of(outcome.tokens.output),
            token_source: outcome.token_source.to_owned(),
            cost_micros: outcome.cost,
            killswitch: self.killswitch.to_owned(),
            guardrails: DbJson(guardrails),
            request_hash: self.request_hash,
            request_body: self.request.map(DbJson),
            response_body: outcome.response.as_ref().and_then(|r| stored(r, max_body)).map(DbJson),
            replay_eligible: self.replay_eligible,
            replayed_from_id: self.replayed_from.map(DbUuid::from),
            created_at: DbTime::now(),
        }
    }
}

/// Logs a call and, when it cost something or held a reservation, settles its spend.
async fn finish(runtime: &ProxyRuntime, ledger: Ledger, outcome: Outcome, reservation: Option<&budget::Reservation>) {
    let mut records = Vec::with_capacity(5);
    let cost = outcome.cost;
    if cost > 0 || reservation.is_some() {
        records.extend(
            budget::settlement(ledger.tenant, ledger.key, reservation, cost, OffsetDateTime::now_utc())
                .into_iter()
                .map(Record::Spend),
        );
    }
    records.push(Record::Call(Box::new(
        ledger.row(outcome, runtime.engine.config.log.max_body_bytes),
    )));
    runtime.writer.submit(records).await;
}

/// Logs a call that ends in `error` (nothing or nothing useful came back) and hands the
/// error back for the caller to return.
async fn refuse(
    runtime: &ProxyRuntime,
    ledger: Ledger,
    status: CallStatus,
    error: SpineError,
    reservation: Option<&budget::Reservation>,
) -> SpineError {
    let call_id = ledger.id;
    finish(runtime, ledger, Outcome::refused(status, &error), reservation).await;
    error.for_call(call_id)
}

fn upstream_error(message: impl Into<String>) -> SpineError {
    SpineError::new(ErrorCode::UpstreamError, message)
}

async fn tenant_settings(shared: &Shared, tenant: Uuid) -> SpineResult<Arc<TenantSettings>> {
    if let Some(settings) = shared.proxy.engine.settings.get(tenant) {
        return Ok(settings);
    }
    let mut conn = shared.db.conn().await?;
    let settings = Arc::new(proxy_settings::load(&mut conn, tenant).await?);
    shared.proxy.engine.settings.put(tenant, Arc::clone(&settings));
    Ok(settings)
}

fn estimate_input(endpoint: Endpoint, bpe: &tokens::CoreBPE, body: &Value) -> u64 {
    match endpoint {
        Endpoint::Chat => tokens::chat_request(bpe, body),
        Endpoint::Embeddings => body.get("input").map_or(0, |i| tokens::embedding_input(bpe, i)),
    }
}

/// The request field that limits a completion: reasoning models (`o1`, `o3`, `gpt-5`...)
/// take only `max_completion_tokens`; older and non-OpenAI models `max_tokens`.
fn token_limit_field(model: &str) -> &'static str {
    let reasoning = model.starts_with("gpt-5")
        || (model.starts_with('o') && model.chars().nth(1).is_some_and(|c| c.is_ascii_digit()));
    if reasoning {
        "max_completion_tokens"
    } else {
        "max_tokens"
    }
}

/// The largest completion a chat request may produce (its reservation's worst case).
fn worst_output(endpoint: Endpoint, body: &Value, route: &Route, default: u32) -> u64 {
    if endpoint == Endpoint::Embeddings {
        return 0;
    }
    let asked = body
        .get("max_completion_tokens")
        .and_then(Value::as_u64)
        .or_else(|| body.get("max_tokens").and_then(Value::as_u64));
    let per_choice = asked
        .or_else(|| route.price.as_ref().and_then(|p| p.max_output_tokens).map(u64::from))
        .unwrap_or(u64::from(default));
    let choices = body.get("n").and_then(Value::as_u64).unwrap_or(1).clamp(1, 128);
    per_choice.saturating_mul(choices)
}

async fn reserve(
    shared: &Shared,
    tenant: Uuid,
    limits: Vec<budget::Limit>,
    amount: i64,
) -> SpineResult<budget::Reservation> {
    shared
        .db
        .transaction(TxMode::Write, move |conn| {
            Box::pin(async move {
                match budget::reserve(conn, tenant, &limits, amount).await? {
                    Ok(reservation) => Ok(reservation),
                    // Retrying sooner cannot succeed: the client waits for the period to
                    // end (the API also sends `x-should-retry: false`).
                    Err(limit) => Err(SpineError::new(
                        ErrorCode::BudgetExceeded,
                        format!(
                            "{} of ${} is spent or held by requests in flight; nothing went upstream",
                            limit.describe(),
                            prices::dollars(limit.limit_micros)
                        ),
                    )
                    .retry_after(limit.resets_in(OffsetDateTime::now_utc()))),
                }
            })
        })
        .await
}

/// A request's validated essentials.
fn validate(endpoint: Endpoint, body: &mut Value) -> SpineResult<String> {
    let invalid = |field: &str, message: &str| {
        SpineError::new(ErrorCode::BadRequest, format!("{field}: {message}")).on_field(field.to_owned())
    };
    if !body.is_object() {
        return Err(SpineError::bad_request("the body must be a JSON object"));
    }
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .filter(|m| !m.trim().is_empty() && m.len() <= 200 && !m.chars().any(char::is_control))
        .ok_or_else(|| {
            invalid(
                "model",
                "required: a model name (at most 200 characters, no control characters)",
            )
        })?
        .to_owned();
    match endpoint {
        Endpoint::Chat => {
            let ok = body
                .get("messages")
                .and_then(Value::as_array)
                .is_some_and(|m| !m.is_empty() && m.iter().all(Value::is_object));
            if !ok {
                return Err(invalid("messages", "required: a non-empty array of message objects"));
            }
            if body.get("stream").is_some_and(|s| !s.is_boolean() && !s.is_null()) {
                return Err(invalid("stream", "must be a boolean"));
            }
            // A completion limit is a positive integer or absent (`null` is absent): a
            // float, string or negative number would slip past the max_tokens guardrail
            // and the budget's worst case, so it is refused here.
            for field in ["max_tokens", "max_completion_tokens"] {
                match body.get(field) {
                    None => {}
                    Some(Value::Null) => {
                        if let Some(object) = body.as_object_mut() {
                            object.remove(field);
                        }
                    }
                    Some(value) if value.as_u64().is_some_and(|n| n >= 1) => {}
                    Some(_) => return Err(invalid(field, "must be a positive integer")),
                }
            }
        }
        Endpoint::Embeddings => {
            let ok = match body.get("input") {
                Some(Value::String(s)) => !s.is_empty(),
                Some(Value::Array(items)) => !items.is_empty(),
                _ => false,
            };
            if !ok {
                return Err(invalid("input", "required: a string or a non-empty array"));
            }
        }
    }
    Ok(model)
}

/// One proxied request, start to end (or, for a stream, to the first byte).
async fn run(
    shared: Arc<Shared>,
    actor: AuthContext,
    endpoint: Endpoint,
    raw: Bytes,
    replayed_from: Option<Uuid>,
) -> SpineResult<ProxyReply> {
    let started = Instant::now();
    let tenant = actor.tenant_with(Scope::ProxyInvoke)?;
    let key = match &actor {
        AuthContext::Machine { key_id, .. } => Some(*key_id),
        _ => None,
    };
    let runtime = &shared.proxy;
    let config = &runtime.engine.config;
    let mut body: Value = serde_json::from_slice(&raw)
        .map_err(|e| SpineError::bad_request(format!("the body is not valid JSON: {e}")))?;
    if aos_schemas::wire::has_escaped_nul(&raw) {
        let field = aos_schemas::wire::nul_path(&body, String::new()).unwrap_or_else(|| "body".into());
        return Err(
            SpineError::bad_request(format!("{field}: text may not contain the NUL character (\\u0000)"))
                .on_field(field.clone()),
        );
    }
    let model = validate(endpoint, &mut body)?;
    let stream = endpoint == Endpoint::Chat
        && replayed_from.is_none()
        && body.get("stream").and_then(Value::as_bool) == Some(true);
    let wants_usage = body.pointer("/stream_options/include_usage").and_then(Value::as_bool) == Some(true);
    let request = if config.log.store_bodies {
        stored(&body, config.log.max_body_bytes)
    } else {
        None
    };
    let mut ledger = Ledger {
        id: Uuid::now_v7(),
        tenant,
        key,
        actor: actor.actor(),
        endpoint,
        model: model.clone(),
        provider: None,
        stream,
        started,
        request_hash: engine::request_hash(&raw),
        replay_eligible: request.is_some(),
        request,
        replayed_from,
        guardrails: Vec::new(),
        killswitch: "passed",
    };

    // Kill switch first: a frozen caller's request goes nowhere and counts nothing.
    if let Err(error) = kill_switch_check(&shared.kill_switch, &actor) {
        ledger.killswitch = "frozen";
        return Err(refuse(runtime, ledger, CallStatus::Frozen, error, None).await);
    }
    let settings = tenant_settings(&shared, tenant).await?;
    if let (Some(key), Some(limit)) = (key, settings.rate_limit_per_minute)
        && let Err(state) = runtime.engine.limiter.take(key, limit)
    {
        let error = SpineError::new(
            ErrorCode::RateLimited,
            format!("this API key's limit of {limit} requests per minute is reached"),
        )
        .retry_after(state.reset_secs);
        return Err(refuse(runtime, ledger, CallStatus::RateLimited, error, None).await);
    }
    let Some(route) = runtime.engine.route(&model) else {
        let error = SpineError::new(
            ErrorCode::NotFound,
            format!("the model {model} is not available through this proxy"),
        )
        .on_field("model");
        return Err(refuse(runtime, ledger, CallStatus::Blocked, error, None).await);
    };
    ledger.provider = Some(route.provider.name.clone());
    match guardrails::evaluate(&settings.guardrails, &model, &mut body, raw.len()) {
        Ok(hits) => {
            if !hits.is_empty() {
                tracing::info!(call_id = %ledger.id, hits = hits.len(), "guardrails matched (flagged or redacted)");
            }
            ledger.guardrails = hits;
        }
        Err(refusal) => {
            tracing::info!(call_id = %ledger.id, guardrail = refusal.guardrail, "request refused by a guardrail");
            ledger.guardrails = refusal.hits;
            let error =
                SpineError::new(ErrorCode::GuardrailBlocked, refusal.message).on_field(refusal.guardrail.to_owned());
            return Err(refuse(runtime, ledger, CallStatus::Blocked, error, None).await);
        }
    }
    if let Some(object) = body.as_object_mut() {
        if stream {
            // Always ask for usage; the usage chunk is dropped again if the client did not.
            object.insert("stream_options".into(), json!({"include_usage": true}));
        } else {
            object.remove("stream");
            object.remove("stream_options");
        }
        // A max_tokens cap also binds requests that set no limit.
        if let Some(cap) = settings.guardrails.max_tokens
            && endpoint == Endpoint::Chat
            && !object.contains_key("max_tokens")
            && !object.contains_key("max_completion_tokens")
        {
            object.insert(token_limit_field(&model).into(), json!(cap));
        }
    }

    // Budgets: reserve the worst case before anything goes upstream.
    let encoding = route.price.as_ref().and_then(|p| p.encoding.clone());
    let limits = budget::limits(&settings, key, OffsetDateTime::now_utc());
    let mut prompt_estimate = None;
    if !limits.is_empty() && route.price.is_none() {
        let error = SpineError::new(
            ErrorCode::Forbidden,
            format!(
                "the model {model} has no price, so a budget cannot hold it; the operator adds it under [proxy.prices]"
            ),
        )
        .on_field("model");
        return Err(refuse(runtime, ledger, CallStatus::Blocked, error, None).await);
    }
    let reservation = if limits.is_empty() {
        None
    } else {
        let bpe = tokens::encoding(&model, encoding.as_deref());
        let input = estimate_input(endpoint, bpe, &body);
        prompt_estimate = Some(input);
        let output = worst_output(endpoint, &body, &route, config.default_max_output_tokens);
        let worst = route.price.as_ref().map_or(0, |p| {
            prices::cost(
                p,
                Tokens {
                    input,
                    cached_input: 0,
                    output,
                },
            )
        });
        match reserve(&shared, tenant, limits, worst).await {
            Ok(reservation) => Some(reservation),
            Err(error) if error.code == ErrorCode::BudgetExceeded => {
                return Err(refuse(runtime, ledger, CallStatus::BudgetExceeded, error, None).await);
            }
            Err(error) => return Err(error),
        }
    };

    let payload = serde_json::to_vec(&body).map_err(|_| SpineError::internal())?;
    let response = match route.provider.post(endpoint.path(), payload).await {
        Ok(response) => response,
        Err(failure) => {
            let error = upstream_error(format!("provider {}: {failure}", route.provider.name));
            tracing::warn!(call_id = %ledger.id, provider = %route.provider.name, %failure, "upstream call failed");
            return Err(refuse(runtime, ledger, CallStatus::UpstreamError, error, reservation.as_ref()).await);
        }
    };
    let status = response.status();
    if !(200..300).contains(&status) {
        let text = response
            .read_capped(64 * 1024, route.provider.timeout)
            .await
            .unwrap_or_default();
        let upstream_body: Option<Value> = serde_json::from_slice(&text).ok();
        tracing::warn!(call_id = %ledger.id, provider = %route.provider.name, status, "upstream answered an error");
        let result = match status {
            // The client's own mistake as the provider saw it: passed through as is.
            400 | 404 | 409 | 413 | 422 if upstream_body.as_ref().is_some_and(|b| b.get("error").is_some()) => Ok(text),
            // The provider's own limit: its message names the operator's account, so it is
            // not passed on.
            429 => Err(SpineError::new(
                ErrorCode::RateLimited,
                format!("provider {} is rate limiting; retry shortly", route.provider.name),
            )
            .retry_after(5)),
            401 | 403 => Err(upstream_error(format!(
                "provider {} refused AOS's credentials; the operator must check them",
                route.provider.name
            ))),
            _ => Err(upstream_error(format!(
                "provider {} answered HTTP {status}",
                route.provider.name
            ))),
        };
        let outcome = match &result {
            Ok(_) => Outcome {
                status: CallStatus::UpstreamError,
                http_status: status,
                error_code: upstream_body
                    .as_ref()
                    .and_then(|b| b.pointer("/error/code"))
                    .and_then(Value::as_str)
                    .map(|c| c.chars().filter(|ch| !ch.is_control()).take(100).collect()),
                tokens: Tokens::default(),
                token_source: "none",
                cost: 0,
                response: upstream_body,
            },
            Err(error) => Outcome::refused(CallStatus::UpstreamError, error),
        };
        let call_id = ledger.id;
        finish(runtime, ledger, outcome, reservation.as_ref()).await;
        return result.map(|text| ProxyReply {
            call_id,
            status,
            body: ProxyBody::Json(text),
        });
    }

    if stream {
        let reply = ProxyReply {
            call_id: ledger.id,
            status,
            body: ProxyBody::Stream(pump(
                Arc::clone(&shared),
                Streamed {
                    actor,
                    ledger,
                    route,
                    response,
                    wants_usage,
                    reservation,
                    request: body,
                },
            )),
        };
        return Ok(reply);
    }

    let text = match response
        .read_capped(config.max_response_bytes, route.provider.timeout)
        .await
    {
        Ok(text) => text,
        Err(failure) => {
            let error = upstream_error(format!("provider {}: {failure}", route.provider.name));
            return Err(refuse(runtime, ledger, CallStatus::UpstreamError, error, reservation.as_ref()).await);
        }
    };
    let parsed: Option<Value> = serde_json::from_slice(&text).ok();
    let (tokens, token_source) = match parsed
        .as_ref()
        .and_then(|v| v.get("usage"))
        .and_then(engine::usage_tokens)
    {
        Some(tokens) => (tokens, "upstream"),
        None => {
            let bpe = tokens::encoding(&model, encoding.as_deref());
            let input = prompt_estimate.unwrap_or_else(|| estimate_input(endpoint, bpe, &body));
            let output = parsed
                .as_ref()
                .map_or(0, |v| tokens::count(bpe, &engine::completion_text(v)));
            (
                Tokens {
                    input,
                    cached_input: 0,
                    output,
                },
                "estimated",
            )
        }
    };
    let cost = route.price.as_ref().map_or(0, |p| prices::cost(p, tokens));
    let call_id = ledger.id;
    finish(
        runtime,
        ledger,
        Outcome {
            status: CallStatus::Ok,
            http_status: status,
            error_code: None,
            tokens,
            token_source,
            cost,
            response: parsed,
        },
        reservation.as_ref(),
    )
    .await;
    Ok(ProxyReply {
        call_id,
        status,
        body: ProxyBody::Json(text),
    })
}

/// An SSE event carrying an error (what OpenAI's SDKs raise mid-stream).
fn error_event(code: ErrorCode, message: &str) -> Bytes {
    let event = json!({"error": {"message": message, "type": "aos_error", "code": code.as_str()}});
    Bytes::from(format!("data: {event}\n\n"))
}

/// What a stream carried so far: the text (for counting), the usage, the finish reason.
#[derive(Debug, Default)]
struct Seen {
    text: String,
    usage: Option<Tokens>,
    finish_reason: Option<String>,
}

impl Seen {
    /// Takes in one upstream event; whether it goes on to the client (the usage chunk
    /// does only when the client asked for usage).
    fn absorb(&mut self, event: &[u8], wants_usage: bool) -> bool {
        let Some(info) = upstream::event_data(event).and_then(|data| engine::chunk_info(&data)) else {
            return true;
        };
        if self.text.len() < 4 * 1024 * 1024 {
            self.text.push_str(&info.text);
        }
        if info.finish_reason.is_some() {
            self.finish_reason = info.finish_reason;
        }
        if info.usage.is_some() {
            self.usage = info.usage;
        }
        !info.usage_only || wants_usage
    }
}

/// Sends an error event, waiting a little for room (a client that reads gets it).
async fn send_error(tx: &tokio::sync::mpsc::Sender<Bytes>, code: ErrorCode, message: &str) {
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), tx.send(error_event(code, message))).await;
}

/// A streamed call whose upstream answered 2xx: everything its pump needs.
struct Streamed {
    actor: AuthContext,
    ledger: Ledger,
    route: Route,
    response: upstream::Response,
    /// The client asked for the usage chunk (`stream_options.include_usage`).
    wants_usage: bool,
    reservation: Option<budget::Reservation>,
    request: Value,
}

/// Starts the task that forwards a streamed response event by event, and returns the
/// client's side of it.
fn pump(shared: Arc<Shared>, stream: Streamed) -> EventStream {
    let Streamed {
        actor,
        ledger,
        route,
        response,
        wants_usage,
        reservation,
        request,
    } = stream;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(32);
    let task_shared = Arc::clone(&shared);
    let task = async move {
        use futures::StreamExt;
        let shared = task_shared;
        let (mut upstream_events, mut sse) = response.events();
        let mut changes = shared.kill_switch.subscribe();
        // Check once at the start too: a freeze between the request's check and this
        // subscription must not be missed.
        changes.mark_changed();
        let mut seen = Seen::default();
        let timeout = route.provider.timeout;
        let mut watching = true;
        // Events read from upstream, waiting for the client to take them (bounded: the
        // upstream is not read further while the client is this far behind).
        let mut pending: VecDeque<Bytes> = VecDeque::new();
        let mut upstream_done = false;
        // When the client must have taken the next event by.
        let mut stall = tokio::time::Instant::now() + timeout;
        let outcome = loop {
            if upstream_done && pending.is_empty() {
                break (CallStatus::Ok, None);
            }
            tokio::select! {
                biased;
                changed = changes.changed(), if watching => {
                    if changed.is_err() {
                        watching = false;
                        continue;
                    }
                    if let Err(error) = kill_switch_check(&shared.kill_switch, &actor) {
                        send_error(&tx, error.code, &error.message).await;
                        break (CallStatus::Aborted, Some(error.code));
                    }
                }
                () = tx.closed() => break (CallStatus::ClientDisconnected, None),
                permit = tx.reserve(), if !pending.is_empty() => {
                    let Ok(permit) = permit else {
                        break (CallStatus::ClientDisconnected, None);
                    };
                    if let Some(event) = pending.pop_front() {
                        permit.send(event);
                    }
                    stall = tokio::time::Instant::now() + timeout;
                }
                () = tokio::time::sleep_until(stall), if !pending.is_empty() => {
                    tracing::info!(call_id = %ledger.id, "the client stopped reading; stream closed");
                    break (CallStatus::ClientDisconnected, None);
                }
                next = tokio::time::timeout(timeout, upstream_events.next()), if !upstream_done && pending.len() < 64 => {
                    let events = match next {
                        Err(_) => {
                            send_error(&tx, ErrorCode::UpstreamError, "the upstream timed out mid-stream").await;
                            break (CallStatus::UpstreamError, Some(ErrorCode::UpstreamError));
                        }
                        Ok(Some(Err(_))) => {
                            send_error(&tx, ErrorCode::UpstreamError, "the upstream stream broke off").await;
                            break (CallStatus::UpstreamError, Some(ErrorCode::UpstreamError));
                        }
                        Ok(None) => {
                            upstream_done = true;
                            // A last event without its blank line still counts.
                            sse.rest().map(|rest| {
                                let mut event = rest.to_vec();
                                event.extend_from_slice(b"\n\n");
                                vec![Bytes::from(event)]
                            }).unwrap_or_default()
                        }
                        Ok(Some(Ok(chunk))) => match sse.push(&chunk) {
                            Ok(events) => events,
                            Err(_) => {
                                send_error(&tx, ErrorCode::UpstreamError, "the upstream sent an oversized event").await;
                                break (CallStatus::UpstreamError, Some(ErrorCode::UpstreamError));
                            }
                        },
                    };
                    for event in events {
                        if seen.absorb(&event, wants_usage) {
                            if pending.is_empty() {
                                stall = tokio::time::Instant::now() + timeout;
                            }
                            pending.push_back(event);
                        }
                    }
                }
            }
        };
        let Seen {
            text,
            usage,
            finish_reason,
        } = seen;
        // The client's stream ends now; accounting (which may count tokens) comes after.
        drop(tx);
        drop(upstream_events);
        // Bill what was generated: the upstream's usage if it came, else counted here.
        let encoding = route.price.as_ref().and_then(|p| p.encoding.clone());
        let (tokens, token_source) = match usage {
            Some(tokens) => (tokens, "upstream"),
            None => {
                let bpe = tokens::encoding(&ledger.model, encoding.as_deref());
                (
                    Tokens {
                        input: estimate_input(ledger.endpoint, bpe, &request),
                        cached_input: 0,
                        output: tokens::count(bpe, &text),
                    },
                    "estimated",
                )
            }
        };
        let cost = route.price.as_ref().map_or(0, |p| prices::cost(p, tokens));
        let (status, code) = outcome;
        if status != CallStatus::Ok {
            tracing::info!(call_id = %ledger.id, status = status.as_str(), "stream ended early");
        }
        let outcome = Outcome {
            status,
            http_status: 200,
            error_code: code.map(|c| c.as_str().to_owned()),
            tokens,
            token_source,
            cost,
            response: Some(json!({
                "object": "chat.completion.stream",
                "content": text,
                "finish_reason": finish_reason,
            })),
        };
        finish(&shared.proxy, ledger, outcome, reservation.as_ref()).await;
    };
    shared.spawn_tracked(task);
    Box::pin(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}

impl Spine {
    /// Proxies one OpenAI request (`/v1/chat/completions` or `/v1/embeddings`) for `actor`.
    ///
    /// Runs in its own task: a client that hangs up mid-request does not cut the
    /// accounting short.
    pub async fn proxy(&self, actor: AuthContext, endpoint: Endpoint, body: Bytes) -> SpineResult<ProxyReply> {
        let shared = self.shared_arc();
        let task = self
            .shared()
            .spawn_tracked_handle(run(Arc::clone(&shared), actor, endpoint, body, None));
        task.await.map_err(|error| {
            tracing::error!(%error, "proxy task panicked or was cancelled");
            SpineError::internal()
        })?
    }

    /// `GET /v1/models`: the models the caller may use.
    pub async fn proxy_models(&self, actor: &AuthContext) -> SpineResult<Vec<(String, String)>> {
        let tenant = actor.tenant_with(Scope::ProxyInvoke)?;
        let settings = tenant_settings(self.shared(), tenant).await?;
        let models = self.shared().proxy.engine.models();
        Ok(match &settings.guardrails.allowed_models {
            None => models,
            Some(allowed) => models.into_iter().filter(|(m, _)| allowed.contains(m)).collect(),
        })
    }

    /// The call log writer's counters (platform operator only).
    pub fn proxy_writer_stats(&self, actor: &AuthContext) -> SpineResult<api::WriterStats> {
        actor.require_operator()?;
        let s = self.shared().proxy.writer.stats();
        Ok(api::WriterStats {
            queued: s.queued,
            written: s.written,
            dropped: s.dropped,
            rejected: s.rejected,
            settled: s.settled,
            spend_pending: s.spend_pending,
            retries: s.retries,
            batches: s.batches,
            queue_depth: s.queue_depth,
            queue_capacity: s.queue_capacity,
            failing: s.failing,
        })
    }

    /// Re-sends a logged call through today's kill switch and guardrails (never
    /// streamed), and returns the new response beside the old.
    pub async fn proxy_replay(&self, actor: AuthContext, call_id: Uuid) -> SpineResult<api::ReplayResult> {
        let original = self
            .execute(GetCall {
                actor: actor.clone(),
                id: call_id,
                tenant_id: None,
            })
            .await?;
        // The rule: a replay passes the kill switch as its replayer (in the pipeline) *and*
        // as the original caller (here): a call whose key or tenant is frozen now is not
        // sent upstream again by anyone. Either refusal is reported as the replay's
        // outcome (423 beside the original), and nothing goes upstream.
        if let Some(frozen) = self.shared().kill_switch.check(original.tenant_id, original.key_id) {
            let what = match frozen.entity {
                killswitch::Entity::Tenant(_) => "its tenant",
                killswitch::Entity::Key(_) => "the API key that made it",
            };
            let code = ErrorCode::KillSwitchActive;
            return Ok(api::ReplayResult {
                original,
                replay: api::ReplayOutcome {
                    call_id: None,
                    http_status: code.http_status(),
                    response: json!({"error": {
                        "message": format!("kill switch active: this call cannot be replayed while {what} is frozen"),
                        "code": code.as_str(),
                        "param": null,
                    }}),
                },
            });
        }
        let endpoint = Endpoint::parse(&original.endpoint).ok_or_else(SpineError::internal)?;
        let request = match (&original.request, original.replay_eligible) {
            (Some(request), true) => request.clone(),
            _ => {
                return Err(SpineError::new(
                    ErrorCode::Conflict,
                    "this call cannot be replayed: its request was not kept (too large, or bodies are not stored)",
                ));
            }
        };
        let body = Bytes::from(serde_json::to_vec(&request).map_err(|_| SpineError::internal())?);
        let shared = self.shared_arc();
        let task = self
            .shared()
            .spawn_tracked_handle(run(Arc::clone(&shared), actor, endpoint, body, Some(call_id)));
        let result = task.await.map_err(|_| SpineError::internal())?;
        let replay = match result {
            Ok(reply) => {
                let response = match reply.body {
                    ProxyBody::Json(bytes) => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                    ProxyBody::Stream(_) => Value::Null,
                };
                api::ReplayOutcome {
                    call_id: Some(reply.call_id),
                    http_status: reply.status,
                    response,
                }
            }
            Err(error) => api::ReplayOutcome {
                call_id: error.call_id,
                http_status: error.code.http_status(),
                response: json!({"error": {
                    "message": error.message,
                    "code": error.code.as_str(),
                    "param": error.field,
                }}),
            },
        };
        Ok(api::ReplayResult { original, replay })
    }
}

// ---- management operations ---------------------------------------------------------------

/// The tenant an actor may manage (`admin`), or read (`admin` or `proxy:invoke`).
fn managed_tenant(actor: &AuthContext, named: Option<Uuid>, write: bool) -> SpineResult<Uuid> {
    let wanted: &[Scope] = if write {
        &[Scope::Admin]
    } else {
        &[Scope::Admin, Scope::ProxyInvoke]
    };
    actor.tenant_named(named, wanted)
}

fn settings_to_api(settings: &TenantSettings) -> SpineResult<api::ProxySettings> {
    serde_json::to_value(settings)
        .and_then(serde_json::from_value)
        .map_err(|e| {
            tracing::error!(error = %e, "proxy settings do not map onto the API schema");
            SpineError::internal()
        })
}

/// `proxy.settings.get`.
pub struct GetSettings {
    pub actor: AuthContext,
    pub tenant_id: Option<Uuid>,
}

impl Operation for GetSettings {
    const NAME: &'static str = "proxy.settings.get";
    const MODE: Mode = Mode::Read;
    type Output = api::ProxySettings;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let tenant = managed_tenant(&self.actor, self.tenant_id, false)?;
            aos_engines::tenants::get(cx.conn, tenant).await?;
            settings_to_api(&proxy_settings::load(cx.conn, tenant).await?)
        })
    }
}

/// `proxy.settings.put`: replaces the tenant's settings (absent fields take defaults).
pub struct PutSettings {
    pub actor: AuthContext,
    pub tenant_id: Option<Uuid>,
    /// The document as sent (validated here so errors name the field).
    pub settings: Value,
}

impl Operation for PutSettings {
    const NAME: &'static str = "proxy.settings.put";
    const MODE: Mode = Mode::Write;
    type Output = api::ProxySettings;

    fn run(self, mut cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let tenant = managed_tenant(&self.actor, self.tenant_id, true)?;
            store_settings(&mut cx, tenant, self.settings, &self.actor).await
        })
    }
}

/// `proxy.settings.patch`: merges a JSON merge patch (RFC 7396) into the tenant's
/// settings: what the patch leaves out keeps its value, `null` resets a field to its
/// default. The merged document is validated as a whole, as a PUT is.
pub struct PatchSettings {
    pub actor: AuthContext,
    pub tenant_id: Option<Uuid>,
    pub patch: Value,
}

impl Operation for PatchSettings {
    const NAME: &'static str = "proxy.settings.patch";
    const MODE: Mode = Mode::Write;
    type Output = api::ProxySettings;

    fn run(self, mut cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let tenant = managed_tenant(&self.actor, self.tenant_id, true)?;
            let current = proxy_settings::load(cx.conn, tenant).await?;
            let mut document = serde_json::to_value(&current).map_err(|_| SpineError::internal())?;
            merge_patch(&mut document, self.patch);
            store_settings(&mut cx, tenant, document, &self.actor).await
        })
    }
}

/// RFC 7396: objects merge key by key, `null` removes, anything else replaces.
fn merge_patch(target: &mut Value, patch: Value) {
    match patch {
        Value::Object(fields) => {
            if !target.is_object() {
                *target = json!({});
            }
            if let Some(object) = target.as_object_mut() {
                for (key, value) in fields {
                    if value.is_null() {
                        object.remove(&key);
                    } else {
                        merge_patch(object.entry(key).or_insert(Value::Null), value);
                    }
                }
            }
        }
        other => *target = other,
    }
}

/// Validates a whole settings document (errors name the field), stores it, and has this
/// replica's settings cache hold it once the transaction commits.
async fn store_settings(
    cx: &mut OperationContext<'_>,
    tenant: Uuid,
    document: Value,
    actor: &AuthContext,
) -> SpineResult<api::ProxySettings> {
    let settings: TenantSettings = serde_path_to_error::deserialize(document).map_err(|e| {
        let path = e.path().to_string();
        SpineError::new(ErrorCode::ValidationFailed, format!("{path}: {}", e.inner())).on_field(path.clone())
    })?;
    let api = settings_to_api(&settings)?;
    proxy_settings::save(cx.conn, tenant, &settings, &actor.actor()).await?;
    cx.after_commit(Effect::ProxySettings(tenant, Arc::new(settings)));
    Ok(api)
}

#[cfg(test)]
mod merge_tests {
    use super::*;

    #[test]
    fn a_merge_patch_keeps_what_it_leaves_out_and_null_removes() {
        let mut doc = json!({"guardrails": {"pii": "flag", "max_tokens": 5}, "budget": {"daily_limit_micros": 1}});
        merge_patch(&mut doc, json!({"guardrails": {"pii": "block", "max_tokens": null}}));
        assert_eq!(
            doc,
            json!({"guardrails": {"pii": "block"}, "budget": {"daily_limit_micros": 1}})
        );
        merge_patch(&mut doc, json!({"budget": 3}));
        assert_eq!(doc["budget"], 3);
    }
}

fn call_to_api(row: ProxyCallRow, detail: bool) -> api::ProxyCall {
    api::ProxyCall {
        id: row.id.0,
        tenant_id: row.tenant_id.0,
        key_id: row.key_id.map(|k| k.0),
        actor: row.actor,
        endpoint: row.endpoint,
        model: row.model,
        provider: row.provider,
        stream: row.stream,
        status: row.status,
        http_status: u16::try_from(row.http_status).unwrap_or(0),
        error_code: row.error_code,
        latency_ms: row.latency_ms,
        input_tokens: row.input_tokens,
        cached_input_tokens: row.cached_input_tokens,
        output_tokens: row.output_tokens,
        token_source: row.token_source,
        cost_micros: row.cost_micros,
        killswitch: row.killswitch,
        guardrails: serde_json::from_value(row.guardrails.0).unwrap_or_default(),
        request_hash: row.request_hash,
        replay_eligible: row.replay_eligible,
        replayed_from_id: row.replayed_from_id.map(|k| k.0),
        created_at: row.created_at.into(),
        request: if detail { row.request_body.map(|b| b.0) } else { None },
        response: if detail { row.response_body.map(|b| b.0) } else { None },
    }
}

/// Whose calls an actor sees: an admin (or the operator) the tenant's, a `proxy:invoke`
/// key only its own.
fn call_scope(actor: &AuthContext, named: Option<Uuid>) -> SpineResult<(Uuid, Option<Uuid>)> {
    if let Ok(tenant) = managed_tenant(actor, named, true) {
        return Ok((tenant, None));
    }
    let tenant = managed_tenant(actor, named, false)?;
    match actor {
        AuthContext::Machine { key_id, .. } => Ok((tenant, Some(*key_id))),
        _ => Err(SpineError::new(
            ErrorCode::InsufficientScope,
            "reading the call log needs the admin scope",
        )),
    }
}

fn parse_time(field: &str, text: &Option<String>) -> SpineResult<Option<DbTime>> {
    text.as_deref()
        .map(|t| {
            OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                .map(DbTime::from)
                .map_err(|_| {
                    SpineError::new(ErrorCode::ValidationFailed, format!("{field}: an RFC 3339 time"))
                        .on_field(field.to_owned())
                })
        })
        .transpose()
}

/// `proxy.calls.list`.
pub struct ListCalls {
    pub actor: AuthContext,
    pub query: api::ProxyCallQuery,
}

impl Operation for ListCalls {
    const NAME: &'static str = "proxy.calls.list";
    const MODE: Mode = Mode::Read;
    type Output = (Vec<api::ProxyCall>, u32, Option<String>);

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let q = self.query;
            let (tenant, own_key) = call_scope(&self.actor, q.tenant_id)?;
            let limit = cursor::limit(q.limit, 50, 200)?;
            if let Some(status) = &q.status
                && CallStatus::parse(status).is_none()
            {
                return Err(
                    SpineError::new(ErrorCode::ValidationFailed, format!("status: unknown status {status}"))
                        .on_field("status"),
                );
            }
            let key_id = match (own_key, q.key_id) {
                (Some(own), Some(asked)) if own != asked => {
                    return Err(SpineError::new(
                        ErrorCode::Forbidden,
                        "a proxy:invoke key reads only its own calls",
                    ));
                }
                (Some(own), _) => Some(own),
                (None, asked) => asked,
            };
            let filter = CallFilter {
                key_id: key_id.map(DbUuid::from),
                model: q.model,
                status: q.status,
                since: parse_time("since", &q.since)?,
                until: parse_time("until", &q.until)?,
            };
            let after = q.cursor.as_deref().map(cursor::decode).transpose()?;
            let rows = aos_engines::proxy::list_calls(cx.conn, tenant, &filter, after, i64::from(limit) + 1).await?;
            let (rows, next) = aos_engines::paging::split(rows, limit, |r| cursor::encode(r.created_at, r.id));
            Ok((rows.into_iter().map(|r| call_to_api(r, false)).collect(), limit, next))
        })
    }
}

/// `proxy.calls.get`.
pub struct GetCall {
    pub actor: AuthContext,
    pub id: Uuid,
    pub tenant_id: Option<Uuid>,
}

impl Operation for GetCall {
    const NAME: &'static str = "proxy.calls.get";
    const MODE: Mode = Mode::Read;
    type Output = api::ProxyCall;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let (tenant, own_key) = call_scope(&self.actor, self.tenant_id)?;
            let row = aos_engines::proxy::get_call(cx.conn, tenant, self.id)
                .await?
                .filter(|row| own_key.is_none_or(|k| row.key_id.map(|r| r.0) == Some(k)))
                .ok_or_else(|| SpineError::new(ErrorCode::NotFound, "no such call"))?;
            Ok(call_to_api(row, true))
        })
    }
}

/// `proxy.status`: the protection pulse of the caller (`GET /v1/status`).
pub struct Status {
    pub actor: AuthContext,
}

impl Operation for Status {
    const NAME: &'static str = "proxy.status";
    const MODE: Mode = Mode::Read;
    type Output = api::ProxyStatus;

    fn run(self, cx: OperationContext<'_>) -> OpFuture<'_, Self::Output> {
        Box::pin(async move {
            let tenant = self.actor.tenant_with(Scope::ProxyInvoke)?;
            let key = match &self.actor {
                AuthContext::Machine { key_id, .. } => Some(*key_id),
                _ => None,
            };
            let runtime = &cx.shared.proxy;
            let settings = proxy_settings::load(cx.conn, tenant).await?;
            let switch = &cx.shared.kill_switch;
            let tenant_frozen = switch.is_frozen(aos_engines::killswitch::Entity::Tenant(tenant));
            let key_frozen = key.is_some_and(|k| switch.is_frozen(aos_engines::killswitch::Entity::Key(k)));
            let reason = switch.check(tenant, key).and_then(|f| f.reason);
            let (day, month) = budget::periods(OffsetDateTime::now_utc());
            let mut scopes = vec![aos_engines::proxy::SCOPE_TENANT.to_owned()];
            scopes.extend(key.map(aos_engines::proxy::key_scope));
            let rows = aos_engines::proxy::counters(cx.conn, tenant, &scopes, &[day.clone(), month.clone()]).await?;
            let limit_of = |scope: &str, period: &str| {
                let budget = if scope == aos_engines::proxy::SCOPE_TENANT {
                    Some(&settings.budget)
                } else {
                    key.and_then(|k| settings.key_budgets.get(&k))
                };
                budget.and_then(|b| {
                    if period.starts_with("day:") {
                        b.daily_limit_micros
                    } else {
                        b.monthly_limit_micros
                    }
                })
            };
            let mut budgets = Vec::new();
            for scope in &scopes {
                for period in [&day, &month] {
                    let row = rows.iter().find(|r| &r.scope == scope && &r.period == period);
                    let (spent, reserved) = row.map_or((0, 0), |r| (r.spent_micros, r.reserved_micros));
                    let limit = limit_of(scope, period);
                    budgets.push(api::BudgetUsage {
                        scope: scope.clone(),
                        period: period.clone(),
                        limit_micros: limit,
                        spent_micros: spent,
                        reserved_micros: reserved,
                        remaining_micros: limit.map(|l| (l - spent - reserved).max(0)),
                        spent_usd: prices::dollars(spent),
                    });
                }
            }
            let rate_limit = match (key, settings.rate_limit_per_minute) {
                (Some(k), Some(limit)) => {
                    let state = runtime.engine.limiter.peek(k, limit);
                    Some(api::RateLimitPulse {
                        limit_per_minute: state.limit,
                        remaining: state.remaining,
                        reset_secs: state.reset_secs,
                    })
                }
                _ => None,
            };
            let models = runtime
                .engine
                .models()
                .into_iter()
                .map(|(m, _)| m)
                .filter(|m| {
                    settings
                        .guardrails
                        .allowed_models
                        .as_ref()
                        .is_none_or(|a| a.contains(m))
                })
                .collect();
            Ok(api::ProxyStatus {
                tenant_id: tenant,
                key_id: key,
                status: if tenant_frozen || key_frozen {
                    "frozen"
                } else {
                    "active"
                }
                .to_owned(),
                kill_switch: api::KillSwitchPulse {
                    tenant_frozen,
                    key_frozen,
                    reason,
                },
                guardrails: settings
                    .guardrails
                    .active()
                    .into_iter()
                    .map(|(name, action)| api::ActiveGuardrail {
                        name: name.to_owned(),
                        action,
                    })
                    .collect(),
                budgets,
                rate_limit,
                models,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_settings_schema_matches_the_engine_document() {
        let defaults = TenantSettings::default();
        let api = settings_to_api(&defaults).unwrap();
        let back: TenantSettings = serde_json::from_value(serde_json::to_value(&api).unwrap()).unwrap();
        assert_eq!(back, defaults);
    }
}
