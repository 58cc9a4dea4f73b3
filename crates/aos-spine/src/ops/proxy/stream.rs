//! A streamed answer's pump: forwards whole, redacted events to the client, re-checks the
//! kill switch on every change, and settles what was generated when the stream ends, is
//! cut by a freeze, or the client hangs up.

#[allow(clippy::wildcard_imports)]
use super::*;

/// An SSE event carrying an error (what OpenAI's SDKs raise mid-stream).
pub(super) fn error_event(code: ErrorCode, message: &str) -> Bytes {
    let event = json!({"error": {"message": message, "type": "aos_error", "code": code.as_str()}});
    Bytes::from(format!("data: {event}\n\n"))
}

/// What a stream carried so far: the text (for counting), the usage, the finish reason.
#[derive(Debug, Default)]
pub(super) struct Seen {
    pub(super) text: String,
    pub(super) usage: Option<Tokens>,
    pub(super) finish_reason: Option<String>,
}

impl Seen {
    /// Takes in one upstream event; whether it goes on to the client (the usage chunk
    /// does only when the client asked for usage).
    pub(super) fn absorb(&mut self, event: &[u8], wants_usage: bool) -> bool {
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
pub(super) async fn send_error(tx: &tokio::sync::mpsc::Sender<Bytes>, code: ErrorCode, message: &str) {
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), tx.send(error_event(code, message))).await;
}

/// A streamed call whose upstream answered 2xx: everything its pump needs.
pub(super) struct Streamed {
    pub(super) actor: AuthContext,
    pub(super) ledger: Ledger,
    pub(super) route: Route,
    pub(super) response: upstream::Response,
    /// The client asked for the usage chunk (`stream_options.include_usage`).
    pub(super) wants_usage: bool,
    pub(super) reservation: Option<budget::Reservation>,
    pub(super) request: Value,
}

/// Starts the task that forwards a streamed response event by event, and returns the
/// client's side of it.
pub(super) fn pump(shared: Arc<Shared>, stream: Streamed) -> EventStream {
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
