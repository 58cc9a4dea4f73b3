//! Wire formats of values whose serde default is not what `/openapi.json` declares.
//!
//! Also the wire rules for text every layer applies alike: NUL is never accepted (see
//! [`has_escaped_nul`], [`nul_path`]), and a serde data error names its field ([`field_of`]).
//!
//! `time::Date` serialises as `[year, ordinal]` by default; the spec says `format: date`,
//! so every date field uses [`date`] (RFC 3339 `full-date`, `YYYY-MM-DD`). Timestamps use
//! `time::serde::rfc3339`.

// `YYYY-MM-DD` (RFC 3339 `full-date`), for `#[serde(with = "crate::wire::date")]`.
time::serde::format_description!(
    pub date,
    Date,
    "[year]-[month]-[day]"
);

/// The field a serde data error is about: the path where it happened, extended by the
/// field a "missing field `x`" or "unknown field `x`" message names.
pub fn field_of(path: &str, message: &str) -> String {
    let named = ["missing field `", "unknown field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split('`').next());
    let base = if path == "." { "" } else { path };
    match named {
        // serde_path_to_error already ends the path of an unknown field with its name.
        Some(name) if base == name || base.ends_with(&format!(".{name}")) => base.to_owned(),
        Some(name) if base.is_empty() => name.to_owned(),
        Some(name) => format!("{base}.{name}"),
        None if base.is_empty() => "body".to_owned(),
        None => base.to_owned(),
    }
}

/// What a client is told about NUL in its text.
pub const NUL_REFUSED: &str = "text may not contain the NUL character (\\u0000)";

/// Where a raw JSON document holds NUL, if it does: the path of the first key or string
/// with one (`body` when the document cannot be parsed to find it). Cheap when it holds
/// none: one scan of the bytes.
pub fn nul_field(raw: &[u8]) -> Option<String> {
    if !has_escaped_nul(raw) {
        return None;
    }
    let found = serde_json::from_slice::<serde_json::Value>(raw)
        .ok()
        .and_then(|v| nul_path(&v, String::new()));
    Some(found.unwrap_or_else(|| "body".to_owned()))
}

/// Whether the raw JSON holds a `\u0000` escape (an odd run of backslashes before it; raw
/// control characters are not valid JSON, so this is the only way NUL can arrive).
pub fn has_escaped_nul(body: &[u8]) -> bool {
    body.windows(6).enumerate().any(|(i, w)| {
        w == b"\\u0000"
            && body
                .get(..i)
                .map(|before| before.iter().rev().take_while(|b| **b == b'\\').count() % 2 == 0)
                .unwrap_or(true)
    })
}

/// The path of the first key or string value holding NUL.
pub fn nul_path(value: &serde_json::Value, at: String) -> Option<String> {
    let join = |at: &str, key: &str| {
        if at.is_empty() {
            key.to_owned()
        } else {
            format!("{at}.{key}")
        }
    };
    match value {
        serde_json::Value::String(s) if s.contains('\0') => Some(if at.is_empty() { "body".into() } else { at }),
        serde_json::Value::Object(map) => map.iter().find_map(|(k, v)| {
            if k.contains('\0') {
                Some(join(&at, &k.replace('\0', "\\u0000")))
            } else {
                nul_path(v, join(&at, k))
            }
        }),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| nul_path(v, format!("{at}[{i}]"))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Day {
        #[serde(with = "super::date")]
        date: time::Date,
    }

    #[test]
    fn a_date_is_an_rfc3339_full_date_both_ways() {
        let day = Day {
            date: time::macros::date!(2026 - 11 - 30),
        };
        let json = serde_json::to_value(&day).unwrap_or_default();
        assert_eq!(json, serde_json::json!({"date": "2026-11-30"}));
        let back: Day = serde_json::from_value(json).unwrap_or(Day {
            date: time::macros::date!(2000 - 01 - 01),
        });
        assert_eq!(back, day);
    }
    #[test]
    fn an_escaped_nul_is_found_and_an_escaped_backslash_is_not_one() {
        assert!(has_escaped_nul(br#"{"a":"x\u0000y"}"#));
        assert!(has_escaped_nul(br#"{"a\u0000":1}"#));
        assert!(!has_escaped_nul(br#"{"a":"x\\u0000y"}"#));
        assert!(has_escaped_nul(br#"{"a":"x\\\u0000y"}"#));
        assert!(!has_escaped_nul(br#"{"a":"u0000"}"#));
    }

    #[test]
    fn the_field_of_a_data_error_is_named() {
        assert_eq!(field_of(".", "unknown field `bogus`, expected one of `a`"), "bogus");
        assert_eq!(field_of("bogus", "unknown field `bogus`, expected `a`"), "bogus");
        assert_eq!(field_of("records[3]", "missing field `model`"), "records[3].model");
        assert_eq!(field_of("risk_level", "unknown variant `EXTREME`"), "risk_level");
        assert_eq!(field_of(".", "invalid type: map"), "body");
    }

    #[test]
    fn nul_field_is_none_without_nul_and_names_the_path_with_one() {
        assert_eq!(nul_field(br#"{"a":"b"}"#), None);
        assert_eq!(nul_field(br#"{"a":{"b":"x\u0000"}}"#).as_deref(), Some("a.b"));
    }

    #[test]
    fn the_path_of_a_nul_names_key_or_value() {
        let v = serde_json::json!({"a": {"b": ["ok", "x\u{0}"]}});
        assert_eq!(nul_path(&v, String::new()).as_deref(), Some("a.b[1]"));
        let v = serde_json::json!({"meta": {"k\u{0}": 1}});
        assert_eq!(nul_path(&v, String::new()).as_deref(), Some("meta.k\\u0000"));
    }
}

/// `Option<Option<T>>` for a patch field: absent is `None` (keep), `null` is
/// `Some(None)` (clear), a value is `Some(Some(v))`. Use with `#[serde(default)]`.
pub mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer, T: Serialize>(value: &Option<Option<T>>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(inner) => inner.serialize(serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        deserializer: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(deserializer).map(Some)
    }
}
