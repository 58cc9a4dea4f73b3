//! `aos-fake-llm [PORT]`: the fake OpenAI-compatible upstream as a process, for the
//! end-to-end script and benchmarks. Prints `READY <port>` when listening. The upstream
//! key it requires, if any, is read from `AOS_FAKE_LLM_KEY`.

#![allow(clippy::expect_used)]

use std::sync::Arc;

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
    println!("READY {}", listener.local_addr().expect("addr").port());
    let key = std::env::var("AOS_FAKE_LLM_KEY").ok().filter(|k| !k.is_empty());
    aos_tests::fake_llm::serve(listener, key, Arc::new(aos_tests::fake_llm::Counters::default())).await;
}
