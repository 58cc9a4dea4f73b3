//! The OpenAI request rules AOS applies before anything else reads a proxied request:
//! which endpoint, which model, the shape of `messages`/`input`, completion limits that
//! are positive integers (`null` is absent), and the worst case a request can cost (the
//! budget's reservation). Pure functions over the parsed body; the spine sequences them.

use serde_json::Value;

use super::Route;
use super::tokens;

/// The OpenAI-compatible endpoints the proxy serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Embeddings,
}

impl Endpoint {
    /// The upstream path under the provider's base URL.
    pub fn path(self) -> &'static str {
        match self {
            Self::Chat => "chat/completions",
            Self::Embeddings => "embeddings",
        }
    }

    /// The name in the call log.
    pub fn name(self) -> &'static str {
        match self {
            Self::Chat => "chat.completions",
            Self::Embeddings => "embeddings",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "chat.completions" => Some(Self::Chat),
            "embeddings" => Some(Self::Embeddings),
            _ => None,
        }
    }
}

/// A request parameter that breaks a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Checks a request and returns its model. Normalises what OpenAI treats as absent: a
/// `null` completion limit is removed (a cap, if any, then applies).
pub fn validate(endpoint: Endpoint, body: &mut Value) -> Result<String, Invalid> {
    let invalid = |field: &str, message: &str| Invalid {
        field: field.to_owned(),
        message: message.to_owned(),
    };
    if !body.is_object() {
        return Err(invalid("body", "must be a JSON object"));
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

pub fn estimate_input(endpoint: Endpoint, bpe: &tokens::CoreBPE, body: &Value) -> u64 {
    match endpoint {
        Endpoint::Chat => tokens::chat_request(bpe, body),
        Endpoint::Embeddings => body.get("input").map_or(0, |i| tokens::embedding_input(bpe, i)),
    }
}

/// The request field that limits a completion: reasoning models (`o1`, `o3`, `gpt-5`...)
/// take only `max_completion_tokens`; older and non-OpenAI models `max_tokens`.
pub fn token_limit_field(model: &str) -> &'static str {
    let reasoning = model.starts_with("gpt-5")
        || (model.starts_with('o') && model.chars().nth(1).is_some_and(|c| c.is_ascii_digit()));
    if reasoning {
        "max_completion_tokens"
    } else {
        "max_tokens"
    }
}

/// The largest completion a chat request may produce (its reservation's worst case).
pub fn worst_output(endpoint: Endpoint, body: &Value, route: &Route, default: u32) -> u64 {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completion_limits_are_positive_integers_and_null_is_absent() {
        let mut body = serde_json::json!({"model": "m", "messages": [{"role": "user"}], "max_tokens": null});
        assert_eq!(validate(Endpoint::Chat, &mut body).ok().as_deref(), Some("m"));
        assert!(body.get("max_tokens").is_none());
        for bad in [
            serde_json::json!(1.5),
            serde_json::json!("5"),
            serde_json::json!(-1),
            serde_json::json!(0),
        ] {
            let mut body =
                serde_json::json!({"model": "m", "messages": [{"role": "user"}], "max_completion_tokens": bad});
            let err = validate(Endpoint::Chat, &mut body).err();
            assert_eq!(err.map(|e| e.field).as_deref(), Some("max_completion_tokens"));
        }
        let mut body = serde_json::json!({"model": "m", "input": []});
        assert_eq!(
            validate(Endpoint::Embeddings, &mut body)
                .err()
                .map(|e| e.field)
                .as_deref(),
            Some("input")
        );
    }

    #[test]
    fn reasoning_models_take_max_completion_tokens() {
        assert_eq!(token_limit_field("o3-mini"), "max_completion_tokens");
        assert_eq!(token_limit_field("gpt-5"), "max_completion_tokens");
        assert_eq!(token_limit_field("gpt-4o-mini"), "max_tokens");
    }
}
