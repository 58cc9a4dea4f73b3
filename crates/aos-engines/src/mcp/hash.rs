//! Integrity hashes: SHA-256 over the canonical JSON (RFC 8785) of a value, so the same
//! content always hashes the same whatever key order or number formatting a server used.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Lowercase hex SHA-256 of the RFC 8785 canonical form of `value`.
pub fn canonical_sha256(value: &Value) -> String {
    // Canonicalising a `serde_json::Value` cannot fail (no non-finite numbers exist in
    // one); fall back to the plain serialisation rather than panic.
    let bytes = serde_json_canonicalizer::to_vec(value).unwrap_or_else(|_| value.to_string().into_bytes());
    Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The hash that pins a tool definition: name, description, input schema, output schema
/// and annotations. Any change to what an agent is told about the tool changes it.
pub fn tool_hash(
    name: &str,
    description: Option<&str>,
    input_schema: &Value,
    output_schema: Option<&Value>,
    annotations: Option<&Value>,
) -> String {
    canonical_sha256(&json!({
        "name": name,
        "description": description,
        "inputSchema": input_schema,
        "outputSchema": output_schema,
        "annotations": annotations,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_order_and_number_spelling_do_not_change_the_hash() {
        let a: Value = serde_json::from_str(r#"{"b": 1.0, "a": [1, {"y": 2, "x": 1}]}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a": [1, {"x": 1, "y": 2}], "b": 1}"#).unwrap();
        assert_eq!(canonical_sha256(&a), canonical_sha256(&b));
        assert_ne!(canonical_sha256(&a), canonical_sha256(&json!({"a": [1], "b": 1})));
        assert_eq!(canonical_sha256(&json!({})).len(), 64);
    }

    #[test]
    fn every_pinned_field_changes_the_tool_hash() {
        let schema = json!({"type": "object"});
        let base = tool_hash("read", Some("reads"), &schema, None, None);
        assert_eq!(
            base,
            tool_hash("read", Some("reads"), &json!({"type": "object"}), None, None)
        );
        assert_ne!(base, tool_hash("read2", Some("reads"), &schema, None, None));
        assert_ne!(base, tool_hash("read", Some("reads!"), &schema, None, None));
        assert_ne!(base, tool_hash("read", None, &schema, None, None));
        assert_ne!(
            base,
            tool_hash("read", Some("reads"), &json!({"type": "string"}), None, None)
        );
        assert_ne!(base, tool_hash("read", Some("reads"), &schema, Some(&json!({})), None));
        assert_ne!(
            base,
            tool_hash(
                "read",
                Some("reads"),
                &schema,
                None,
                Some(&json!({"readOnlyHint": true}))
            )
        );
    }
}
