//! Human tables by default, `--json` for scripts: the API's own types, pretty-printed, one
//! document per command (lists as arrays), so the shape is the API's and stays stable.

use comfy_table::{Table, presets};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A serde enum as its wire name (`ACTIVE`, `HIGH`, `machine`).
pub fn label<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "?".to_owned(),
    }
}

pub fn ts(at: &OffsetDateTime) -> String {
    at.replace_nanosecond(0)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| at.to_string())
}

pub fn opt_ts(at: Option<&OffsetDateTime>) -> String {
    at.map(ts).unwrap_or_else(|| "-".to_owned())
}

pub fn opt<T: ToString>(value: Option<T>) -> String {
    value.map(|v| v.to_string()).unwrap_or_else(|| "-".to_owned())
}

/// Columns with a header, no borders (like `kubectl get`).
pub fn table(headers: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut table = Table::new();
    table.load_preset(presets::NOTHING);
    table.set_header(headers.iter().copied());
    let mut empty = true;
    for row in rows {
        empty = false;
        table.add_row(row);
    }
    if empty {
        return "(none)".to_owned();
    }
    trim_lines(&table.to_string())
}

/// `field  value` lines for one resource.
pub fn fields(pairs: impl IntoIterator<Item = (&'static str, String)>) -> String {
    let mut table = Table::new();
    table.load_preset(presets::NOTHING);
    for (key, value) in pairs {
        table.add_row(vec![key.to_owned(), value]);
    }
    trim_lines(&table.to_string())
}

fn trim_lines(text: &str) -> String {
    text.lines()
        .map(|line| line.strip_prefix(' ').unwrap_or(line).trim_end())
        .collect::<Vec<_>>()
        .join("\n")
}

/// How results are written.
#[derive(Clone, Copy)]
pub struct Output {
    pub json: bool,
}

impl Output {
    /// `--json`: the value itself; otherwise `human()`'s text.
    pub fn emit<T: Serialize>(&self, value: &T, human: impl FnOnce(&T) -> String) {
        if self.json {
            match serde_json::to_string_pretty(value) {
                Ok(text) => println!("{text}"),
                Err(err) => eprintln!("error: cannot encode the result as JSON: {err}"),
            }
        } else {
            println!("{}", human(value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_report_emptiness() {
        let text = table(
            &["NAME", "RISK"],
            vec![
                vec!["échelle".to_owned(), "LOW".to_owned()],
                vec!["b".to_owned(), "CRITICAL".to_owned()],
            ],
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        // Measured in characters: "é" is two bytes but one column.
        let column = |line: &str| line.chars().position(|c| c.is_ascii_uppercase());
        assert_eq!(column(lines[1]), column(lines[2]), "{text}");
        assert_eq!(column(lines[1]), Some("échelle".chars().count() + 2), "{text}");
        assert_eq!(table(&["A"], Vec::<Vec<String>>::new()), "(none)");
    }
}
