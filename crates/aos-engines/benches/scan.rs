//! `make bench-scan`: what the poisoning detector costs per tool definition.
//!
//! Inputs: the 99 real definitions (tests/fixtures/mcp-tools/benign.json), each also
//! grown to about 4 KiB of JSON by repeating its own description (the size a rich real
//! definition reaches), and the poisoned corpus; 1,000 tools of other servers as
//! neighbours for the cross-tool checks (indexed once, as a discovery does). Each definition is scanned 200 times after a warm-up; the
//! p50 and p99 of single scans are printed, with the time a 1,000-tool discovery would
//! spend scanning at the 4 KiB p99.

// A benchmark binary: setup failures abort it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::{Duration, Instant};

use aos_engines::mcp::poison::{Definition, Neighbour, Neighbours, scan};
use serde_json::Value;

fn load(name: &str) -> Vec<Value> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/mcp-tools")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn grown(tool: &Value) -> Value {
    let mut tool = tool.clone();
    let base = tool["description"].as_str().unwrap_or("A tool.").to_owned();
    let mut description = base.clone();
    while serde_json::to_string(&tool).unwrap().len() + description.len() - base.len() < 4096 {
        description.push(' ');
        description.push_str(&base);
    }
    tool["description"] = Value::String(description);
    tool
}

fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort();
    let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
    samples[i]
}

fn measure(label: &str, tools: &[Value], neighbours: &Neighbours) -> Duration {
    let mut samples = Vec::new();
    let mut bytes = 0;
    for tool in tools {
        let def = Definition {
            name: tool["name"].as_str().unwrap(),
            title: tool.get("title").and_then(Value::as_str),
            description: tool.get("description").and_then(Value::as_str),
            input_schema: &tool["inputSchema"],
            output_schema: tool.get("outputSchema"),
            annotations: tool.get("annotations"),
        };
        bytes += serde_json::to_string(tool).unwrap().len();
        for _ in 0..20 {
            std::hint::black_box(scan(&def, neighbours));
        }
        for _ in 0..200 {
            let started = Instant::now();
            std::hint::black_box(scan(&def, neighbours));
            samples.push(started.elapsed());
        }
    }
    let p50 = quantile(&mut samples, 0.5);
    let p99 = quantile(&mut samples, 0.99);
    println!(
        "{label:<38} {:>6} {:>9.1} {:>9.1}",
        bytes / tools.len(),
        p50.as_secs_f64() * 1e6,
        p99.as_secs_f64() * 1e6
    );
    p99
}

fn main() {
    let benign = load("benign.json");
    let poisoned = load("poisoned.json");
    let big: Vec<Value> = benign.iter().map(grown).collect();
    // A large tenant: 1,000 tools on other servers.
    let names: Vec<(String, String)> = (0..1000)
        .map(|i| (format!("srv{}", i % 20), format!("other_tool_{i}")))
        .collect();
    let neighbours = Neighbours::new(
        &names
            .iter()
            .map(|(server, tool)| Neighbour { server, tool })
            .collect::<Vec<_>>(),
    );
    println!("{:<38} {:>6} {:>9} {:>9}", "definitions", "bytes", "p50 µs", "p99 µs");
    measure("real (benign.json, as served)", &benign, &neighbours);
    let p99 = measure("real, grown to ~4 KiB", &big, &neighbours);
    measure("poisoned corpus", &poisoned, &neighbours);
    println!(
        "a 1,000-tool discovery at the 4 KiB p99: {:.0} ms of scanning",
        p99.as_secs_f64() * 1e3 * 1000.0
    );
}
