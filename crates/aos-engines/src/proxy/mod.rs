//! The OpenAI-compatible LLM proxy's engine parts: providers and routing, prices and
//! token counting, guardrails, budgets, tenant settings and the call log's writer. The
//! spine (`aos_spine::ops::proxy`) strings them together per request.

pub mod budget;
pub mod guardrails;
pub mod prices;
pub mod request;
pub mod settings;
pub mod tokens;
pub mod upstream;
pub mod writer;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

pub use aos_drivers::proxy::CallFilter;
pub use aos_models::DbJson;
pub use aos_models::proxy::{CallStatus, ProxyCallRow, ProxySpendRow, SCOPE_TENANT, agent_scope, key_scope};
pub use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use self::prices::{Price, PriceTable, Tokens};
use self::settings::{RateLimiter, SettingsCache};
use self::upstream::{Provider, ProviderConfig};
use self::writer::CallLogConfig;

/// `[proxy]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyConfig {
    /// `[proxy.providers.<name>]`: OpenAI-compatible upstreams.
    pub providers: BTreeMap<String, ProviderConfig>,
    /// `[proxy.models]`: model name → provider name.
    pub models: BTreeMap<String, String>,
    /// The provider of models not listed in `models` (none: such models are refused).
    pub default_provider: Option<String>,
    /// `[proxy.prices.<model>]`: prices on top of the built-in table.
    pub prices: BTreeMap<String, Price>,
    /// The completion size reserved against a budget when neither the request nor the
    /// price table gives one.
    pub default_max_output_tokens: u32,
    /// Largest upstream response read for a non-streaming call.
    pub max_response_bytes: usize,
    /// How long each replica trusts its copy of a tenant's settings, in milliseconds.
    pub settings_cache_ms: u64,
    /// `[proxy.log]`.
    pub log: CallLogConfig,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            providers: BTreeMap::new(),
            models: BTreeMap::new(),
            default_provider: None,
            prices: BTreeMap::new(),
            default_max_output_tokens: 4_096,
            max_response_bytes: 16 * 1024 * 1024,
            settings_cache_ms: 2_000,
            log: CallLogConfig::default(),
        }
    }
}

/// Where a model goes.
#[derive(Debug, Clone)]
pub struct Route {
    pub provider: Arc<Provider>,
    pub price: Option<Price>,
}

/// The proxy's long-lived state: providers, prices, settings cache, rate windows.
#[derive(Debug)]
pub struct Proxy {
    pub config: ProxyConfig,
    pub prices: PriceTable,
    providers: HashMap<String, Arc<Provider>>,
    pub settings: SettingsCache,
    pub limiter: RateLimiter,
}

impl Proxy {
    /// Validates the configuration and resolves provider credentials. Errors name the key.
    pub fn new(config: ProxyConfig) -> Result<Self, String> {
        let mut built = Vec::new();
        for (name, provider) in &config.providers {
            built.push((name.clone(), Provider::new(name, provider)?));
        }
        // Every provider's answers are cleaned of every configured secret.
        let redactor = upstream::Redactor::new(built.iter().filter_map(|(_, p)| p.credential()));
        let mut providers = HashMap::new();
        for (name, mut provider) in built {
            provider.set_redactor(redactor.clone());
            providers.insert(name, Arc::new(provider));
        }
        for (model, provider) in &config.models {
            if !providers.contains_key(provider) {
                return Err(format!("proxy.models.{model}: no provider named {provider}"));
            }
        }
        if let Some(provider) = &config.default_provider
            && !providers.contains_key(provider)
        {
            return Err(format!("proxy.default_provider: no provider named {provider}"));
        }
        if config.log.queue_capacity == 0 || config.log.batch_size == 0 {
            return Err("proxy.log: queue_capacity and batch_size must be at least 1".into());
        }
        if config.settings_cache_ms > 60_000 {
            return Err("proxy.settings_cache_ms: at most 60000".into());
        }
        let prices = PriceTable::load(&config.prices)?;
        Ok(Self {
            settings: SettingsCache::new(Duration::from_millis(config.settings_cache_ms)),
            limiter: RateLimiter::default(),
            prices,
            providers,
            config,
        })
    }

    /// The provider of `model`, if it is configured.
    pub fn route(&self, model: &str) -> Option<Route> {
        let provider = self
            .config
            .models
            .get(model)
            .or(self.config.default_provider.as_ref())
            .and_then(|name| self.providers.get(name))?;
        Some(Route {
            provider: Arc::clone(provider),
            price: self.prices.price(model).cloned(),
        })
    }

    /// The configured models and their providers.
    pub fn models(&self) -> Vec<(String, String)> {
        self.config.models.iter().map(|(m, p)| (m.clone(), p.clone())).collect()
    }

    /// Whether any provider is configured.
    pub fn enabled(&self) -> bool {
        !self.providers.is_empty()
    }
}

/// A page of the tenant's calls, newest first (see [`aos_drivers::proxy::list_calls`]).
pub async fn list_calls(
    conn: &mut aos_drivers::Conn,
    tenant: uuid::Uuid,
    filter: &CallFilter,
    after: Option<(aos_models::DbTime, aos_models::DbUuid)>,
    limit: i64,
) -> crate::error::EngineResult<Vec<ProxyCallRow>> {
    Ok(aos_drivers::proxy::list_calls(conn, tenant.into(), filter, after, limit).await?)
}

/// One call of the tenant.
pub async fn get_call(
    conn: &mut aos_drivers::Conn,
    tenant: uuid::Uuid,
    id: uuid::Uuid,
) -> crate::error::EngineResult<Option<ProxyCallRow>> {
    Ok(aos_drivers::proxy::get_call(conn, tenant.into(), id.into()).await?)
}

/// The tenant's spend counters for `scopes` in `periods`.
pub async fn counters(
    conn: &mut aos_drivers::Conn,
    tenant: uuid::Uuid,
    scopes: &[String],
    periods: &[String],
) -> crate::error::EngineResult<Vec<ProxySpendRow>> {
    Ok(aos_drivers::proxy::counters(conn, tenant.into(), scopes, periods).await?)
}

/// Deletes calls past the retention (`[proxy.log] retention_days`); returns how many.
pub async fn sweep_calls(conn: &mut aos_drivers::Conn, retention_days: u32) -> crate::error::EngineResult<usize> {
    match writer::retention_cutoff(retention_days) {
        Some(cutoff) => Ok(aos_drivers::proxy::delete_calls_before(conn, cutoff).await?),
        None => Ok(0),
    }
}

/// SHA-256 (hex) of a request body as received.
pub fn request_hash(body: &[u8]) -> String {
    Sha256::digest(body).iter().map(|b| format!("{b:02x}")).collect()
}

/// The tokens an OpenAI `usage` object reports (chat and embeddings).
pub fn usage_tokens(usage: &Value) -> Option<Tokens> {
    let input = usage.get("prompt_tokens").and_then(Value::as_u64)?;
    let output = usage.get("completion_tokens").and_then(Value::as_u64).unwrap_or(0);
    let cached = usage
        .get("prompt_tokens_details")
        .and_then(|d| d.get("cached_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    Some(Tokens {
        input,
        cached_input: cached.min(input),
        output,
    })
}

/// The assistant text of a chat completion (for counting when usage is missing).
pub fn completion_text(response: &Value) -> String {
    let mut text = String::new();
    if let Some(choices) = response.get("choices").and_then(Value::as_array) {
        for choice in choices {
            if let Some(content) = choice.pointer("/message/content").and_then(Value::as_str) {
                text.push_str(content);
            }
            if let Some(calls) = choice.pointer("/message/tool_calls").and_then(Value::as_array) {
                for call in calls {
                    text.push_str(
                        call.pointer("/function/name")
                            .and_then(Value::as_str)
                            .unwrap_or_default(),
                    );
                    text.push_str(
                        call.pointer("/function/arguments")
                            .and_then(Value::as_str)
                            .unwrap_or_default(),
                    );
                }
            }
        }
    }
    text
}

/// What one streamed chunk carries.
#[derive(Debug, Default, PartialEq)]
pub struct ChunkInfo {
    /// Delta text of the chunk's choices.
    pub text: String,
    pub finish_reason: Option<String>,
    /// The usage object, when this is the usage chunk.
    pub usage: Option<Tokens>,
    /// A usage-only chunk (`choices: []`): the one stripped when the client did not ask.
    pub usage_only: bool,
}

pub fn chunk_info(data: &str) -> Option<ChunkInfo> {
    let value: Value = serde_json::from_str(data).ok()?;
    let mut info = ChunkInfo::default();
    let choices = value.get("choices").and_then(Value::as_array);
    if let Some(choices) = choices {
        for choice in choices {
            if let Some(t) = choice.pointer("/delta/content").and_then(Value::as_str) {
                info.text.push_str(t);
            }
            if let Some(calls) = choice.pointer("/delta/tool_calls").and_then(Value::as_array) {
                for call in calls {
                    info.text.push_str(
                        call.pointer("/function/name")
                            .and_then(Value::as_str)
                            .unwrap_or_default(),
                    );
                    info.text.push_str(
                        call.pointer("/function/arguments")
                            .and_then(Value::as_str)
                            .unwrap_or_default(),
                    );
                }
            }
            if let Some(r) = choice.get("finish_reason").and_then(Value::as_str) {
                info.finish_reason = Some(r.to_owned());
            }
        }
    }
    info.usage = value.get("usage").and_then(usage_tokens);
    info.usage_only = info.usage.is_some() && choices.is_none_or(Vec::is_empty);
    Some(info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn usage_and_chunks_are_read() {
        let usage = json!({"prompt_tokens": 10, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 4}});
        assert_eq!(
            usage_tokens(&usage),
            Some(Tokens {
                input: 10,
                cached_input: 4,
                output: 5
            })
        );
        let chunk =
            chunk_info(r#"{"choices":[{"delta":{"content":"Hi"},"finish_reason":null}],"usage":null}"#).unwrap();
        assert_eq!(chunk.text, "Hi");
        assert!(!chunk.usage_only);
        let last = chunk_info(r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#).unwrap();
        assert!(last.usage_only);
        assert_eq!(last.usage.unwrap().output, 1);
        assert!(chunk_info("[DONE]").is_none());
    }

    #[test]
    fn routing_needs_a_known_provider() {
        let mut config = ProxyConfig::default();
        config.models.insert("gpt-4o-mini".into(), "missing".into());
        assert!(
            Proxy::new(config.clone())
                .unwrap_err()
                .contains("proxy.models.gpt-4o-mini")
        );
        config.providers.insert(
            "local".into(),
            ProviderConfig {
                base_url: "http://127.0.0.1:9/v1".into(),
                credential_ref: None,
                timeout_ms: 1000,
                connect_timeout_ms: 1000,
                pool_max_idle: 1,
            },
        );
        config.models.insert("gpt-4o-mini".into(), "local".into());
        let proxy = Proxy::new(config).unwrap();
        assert_eq!(proxy.route("gpt-4o-mini").unwrap().provider.name, "local");
        assert_eq!(proxy.route("gpt-4o-mini").unwrap().price.unwrap().input, 150_000);
        assert!(proxy.route("other").is_none());
    }
}
