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
use aos_engines::proxy::request::{self, estimate_input, token_limit_field, worst_output};
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
/// The OpenAI-compatible endpoints (the engine's: `aos_engines::proxy::request`).
pub use aos_engines::proxy::request::Endpoint;

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

mod manage;
mod pipeline;
mod stream;

pub use self::manage::*;
use self::pipeline::*;
use self::stream::*;

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
        let original_agent = aos_types::AgentId::from_actor(&original.actor).map(aos_types::AgentId::get);
        if let Some(frozen) = self
            .shared()
            .kill_switch
            .check(original.tenant_id, original.key_id, original_agent)
        {
            let what = match frozen.entity {
                killswitch::Entity::Tenant(_) => "its tenant",
                killswitch::Entity::Key(_) => "the API key that made it",
                killswitch::Entity::Agent(_) => "the agent that made it",
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
