//! `make bench-guardrails`: what the guardrails cost per request, in process (no I/O), on
//! three request shapes: a short chat turn, a 4 KiB multi-message conversation, and a
//! 4 KiB conversation full of PII with `redact` on (the worst case: every detector
//! matches and rewrites). Also the call log's `scrub` of the same documents. Reports the
//! median and p99 of batches of 1000 evaluations, per evaluation.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::Instant;

use aos_engines::proxy::guardrails::{self, Action, GuardrailSettings};
use serde_json::{Value, json};

fn conversation(filler: &str, turns: usize) -> Value {
    let messages: Vec<Value> = (0..turns)
        .map(|i| json!({"role": if i % 2 == 0 { "user" } else { "assistant" }, "content": filler}))
        .collect();
    json!({"model": "gpt-4o-mini", "max_tokens": 256, "messages": messages})
}

fn time(name: &str, settings: &GuardrailSettings, body: &Value, scrub: bool) {
    let size = serde_json::to_vec(body).unwrap().len();
    let mut per_call = Vec::new();
    for _ in 0..200 {
        let mut copies: Vec<Value> = (0..1000).map(|_| body.clone()).collect();
        let started = Instant::now();
        for copy in &mut copies {
            if scrub {
                guardrails::scrub(copy);
            } else {
                let _ = guardrails::evaluate(settings, "gpt-4o-mini", copy, size);
            }
        }
        per_call.push(started.elapsed().as_nanos() as f64 / 1000.0 / 1000.0);
    }
    per_call.sort_by(f64::total_cmp);
    println!(
        "{name:<34} {size:>6} B   median {:>7.2} us   p99 {:>7.2} us",
        per_call[per_call.len() / 2],
        per_call[per_call.len() * 99 / 100]
    );
}

fn main() {
    guardrails::preload();
    let defaults = GuardrailSettings::default();
    let redact = GuardrailSettings {
        pii: Action::Redact,
        ..GuardrailSettings::default()
    };
    let short = json!({"model": "gpt-4o-mini", "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Summarise the quarterly report in one line, please."}]});
    let prose = "The quarterly report shows revenue up four percent, driven by the new region; costs held flat. ";
    let long = conversation(&prose.repeat(5), 8);
    let pii = "Contact bob@example.com or +1 415 555 0100, card 4111 1111 1111 1111, ssn 123-45-6789. ";
    let dirty = conversation(&pii.repeat(5), 8);
    println!("bench-guardrails: per evaluation, batches of 1000, 200 batches");
    time("short chat, defaults", &defaults, &short, false);
    time("4 KiB conversation, defaults", &defaults, &long, false);
    time("4 KiB all PII, redact", &redact, &dirty, false);
    time("scrub (call log), 4 KiB clean", &defaults, &long, true);
    time("scrub (call log), 4 KiB all PII", &defaults, &dirty, true);
}
