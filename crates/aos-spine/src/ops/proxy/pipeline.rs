//! The proxy's request pipeline: parse and validate, kill switch, settings, rate limit,
//! route, guardrails, budget reservation, upstream, and the call log row of every request
//! (answered or refused).

use super::*;
#[allow(clippy::wildcard_imports)]
use aos_types::AgentId;

/// The call log row being built for one request.
#[derive(Debug)]
pub(super) struct Ledger {
    pub(super) id: Uuid,
    pub(super) tenant: Uuid,
    pub(super) key: Option<Uuid>,
    /// The agent whose key this is (its budget is charged too).
    pub(super) agent: Option<Uuid>,
    pub(super) actor: String,
    pub(super) endpoint: Endpoint,
    pub(super) model: String,
    pub(super) provider: Option<String>,
    pub(super) stream: bool,
    pub(super) started: Instant,
    pub(super) request_hash: String,
    pub(super) request: Option<Value>,
    pub(super) replay_eligible: bool,
    pub(super) replayed_from: Option<Uuid>,
    pub(super) guardrails: Vec<Hit>,
    pub(super) killswitch: &'static str,
    /// The call log slot taken at admission: the row of an answered call is never dropped.
    pub(super) slot: Option<aos_engines::proxy::writer::Slot>,
}

/// How a call ended, for its row.
#[derive(Debug, Clone)]
pub(super) struct Outcome {
    pub(super) status: CallStatus,
    pub(super) http_status: u16,
    pub(super) error_code: Option<String>,
    pub(super) tokens: Tokens,
    pub(super) token_source: &'static str,
    pub(super) cost: i64,
    pub(super) response: Option<Value>,
}

impl Outcome {
    pub(super) fn refused(status: CallStatus, error: &SpineError) -> Self {
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
pub(super) fn stored(value: &Value, max_bytes: usize) -> Option<Value> {
    let mut copy = value.clone();
    guardrails::scrub(&mut copy);
    let size = serde_json::to_vec(&copy).map(|v| v.len()).unwrap_or(usize::MAX);
    (size <= max_bytes).then_some(copy)
}

pub(super) fn i64_of(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Ledger {
    pub(super) fn row(self, outcome: Outcome, max_body: usize) -> ProxyCallRow {
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
pub(super) async fn finish(
    runtime: &ProxyRuntime,
    mut ledger: Ledger,
    outcome: Outcome,
    reservation: Option<&budget::Reservation>,
) {
    let slot = ledger.slot.take();
    let mut records = Vec::with_capacity(5);
    let cost = outcome.cost;
    if cost > 0 || reservation.is_some() {
        records.extend(
            budget::settlement(
                ledger.tenant,
                ledger.key,
                ledger.agent,
                reservation,
                cost,
                OffsetDateTime::now_utc(),
            )
            .into_iter()
            .map(Record::Spend),
        );
    }
    records.push(Record::Call(Box::new(
        ledger.row(outcome, runtime.engine.config.log.max_body_bytes),
    )));
    match slot {
        Some(slot) => runtime.writer.submit_in(slot, records),
        None => runtime.writer.submit(records).await,
    }
}

/// Logs a call that ends in `error` (nothing or nothing useful came back) and hands the
/// error back for the caller to return.
pub(super) async fn refuse(
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

pub(super) fn upstream_error(message: impl Into<String>) -> SpineError {
    SpineError::new(ErrorCode::UpstreamError, message)
}

pub(super) async fn tenant_settings(shared: &Shared, tenant: Uuid) -> SpineResult<Arc<TenantSettings>> {
    if let Some(settings) = shared.proxy.engine.settings.get(tenant) {
        return Ok(settings);
    }
    let mut conn = shared.db.conn().await?;
    let settings = Arc::new(proxy_settings::load(&mut conn, tenant).await?);
    shared.proxy.engine.settings.put(tenant, Arc::clone(&settings));
    Ok(settings)
}

pub(super) async fn reserve(
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

/// A request's validated essentials (the rules are the engine's: `proxy::request`).
pub(super) fn validate(endpoint: Endpoint, body: &mut Value) -> SpineResult<String> {
    request::validate(endpoint, body)
        .map_err(|invalid| SpineError::new(ErrorCode::BadRequest, invalid.to_string()).on_field(invalid.field))
}

/// One proxied request, start to end (or, for a stream, to the first byte).
pub(super) async fn run(
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
    if let Some(field) = aos_schemas::wire::nul_field(&raw) {
        return Err(SpineError::bad_request(format!("{field}: {}", aos_schemas::wire::NUL_REFUSED)).on_field(field));
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
        agent: actor.agent().map(AgentId::get),
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
        slot: None,
    };
    // Admission: a place for this call's row in the call log, before any work. Without
    // one AOS is past what it can record, and says so instead of answering unrecorded.
    match runtime.writer.admit() {
        Some(slot) => ledger.slot = Some(slot),
        None => {
            let error = SpineError::new(
                ErrorCode::ServiceUnavailable,
                "AOS is at capacity (the call log cannot keep up); retry shortly",
            )
            .retry_after(1);
            let call_id = ledger.id;
            runtime.writer.try_submit(vec![Record::Call(Box::new(ledger.row(
                Outcome::refused(CallStatus::Overloaded, &error),
                runtime.engine.config.log.max_body_bytes,
            )))]);
            return Err(error.for_call(call_id));
        }
    }

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
    let limits = budget::limits(
        &settings,
        key,
        actor.agent().map(AgentId::get),
        OffsetDateTime::now_utc(),
    );
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
