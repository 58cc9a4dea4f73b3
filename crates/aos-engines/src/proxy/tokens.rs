//! Token counts when the upstream reports none (or a stream is cut off before its usage
//! chunk): OpenAI's own BPE tables via tiktoken-rs, `o200k_base` or `cl100k_base` by
//! model. Each call record says whether its tokens came from the upstream or from here.

use serde_json::Value;
pub use tiktoken_rs::CoreBPE;
use tiktoken_rs::tokenizer::{Tokenizer, get_tokenizer};

/// The encoding of `model`: the price table's word if it has one, else tiktoken's model
/// map, else `o200k_base` (every current OpenAI model).
pub fn encoding(model: &str, from_table: Option<&str>) -> &'static CoreBPE {
    match from_table {
        Some("cl100k_base") => return tiktoken_rs::cl100k_base_singleton(),
        Some("o200k_base") => return tiktoken_rs::o200k_base_singleton(),
        _ => {}
    }
    match get_tokenizer(model) {
        Some(Tokenizer::Cl100kBase) => tiktoken_rs::cl100k_base_singleton(),
        _ => tiktoken_rs::o200k_base_singleton(),
    }
}

/// Loads both tables (a few hundred milliseconds) so the first request does not pay.
pub fn preload() {
    let _ = tiktoken_rs::o200k_base_singleton();
    let _ = tiktoken_rs::cl100k_base_singleton();
}

pub fn count(bpe: &CoreBPE, text: &str) -> u64 {
    if text.is_empty() {
        return 0;
    }
    u64::try_from(bpe.encode_ordinary(text).len()).unwrap_or(u64::MAX)
}

/// The text parts of a message's `content` (a string, or an array of `{"type": "text"}`
/// parts).
pub fn content_texts(content: &Value) -> Vec<&str> {
    match content {
        Value::String(s) => vec![s.as_str()],
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        _ => Vec::new(),
    }
}

/// Prompt tokens of a chat request, counted the way OpenAI bills them: 3 per message,
/// its role, name and content, and 3 priming the reply.
pub fn chat_prompt(bpe: &CoreBPE, messages: &[Value]) -> u64 {
    let mut total = 3u64;
    for message in messages {
        total += 3;
        for key in ["role", "name"] {
            if let Some(text) = message.get(key).and_then(Value::as_str) {
                total += count(bpe, text);
            }
        }
        if let Some(content) = message.get("content") {
            total += content_texts(content).into_iter().map(|t| count(bpe, t)).sum::<u64>();
        }
        if let Some(calls) = message.get("tool_calls") {
            total += count(bpe, &calls.to_string());
        }
    }
    total
}

/// Prompt tokens of a whole chat request: its messages and its tool definitions.
pub fn chat_request(bpe: &CoreBPE, body: &Value) -> u64 {
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let tools = body.get("tools").map_or(0, |t| count(bpe, &t.to_string()));
    chat_prompt(bpe, messages) + tools
}

/// Input tokens of an embeddings request (`input`: a string or an array of strings).
pub fn embedding_input(bpe: &CoreBPE, input: &Value) -> u64 {
    match input {
        Value::String(s) => count(bpe, s),
        Value::Array(items) => items.iter().filter_map(Value::as_str).map(|s| count(bpe, s)).sum(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn counts_match_openai_tables() {
        // "hello world" is two tokens in both encodings.
        assert_eq!(count(encoding("gpt-4o", None), "hello world"), 2);
        assert_eq!(count(encoding("gpt-3.5-turbo", None), "hello world"), 2);
        assert_eq!(count(encoding("gpt-4o", None), ""), 0);
    }

    #[test]
    fn chat_prompts_include_per_message_overhead() {
        let bpe = encoding("gpt-4o", None);
        let messages = vec![json!({"role": "user", "content": "hello world"})];
        // 3 priming + 3 per message + "user" (1) + "hello world" (2).
        assert_eq!(chat_prompt(bpe, &messages), 9);
        let parts = vec![json!({"role": "user", "content": [{"type": "text", "text": "hello world"}]})];
        assert_eq!(chat_prompt(bpe, &parts), 9);
        assert_eq!(embedding_input(bpe, &json!(["hello world", "hello world"])), 4);
    }
}
