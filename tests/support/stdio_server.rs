//! A real MCP server over stdio for the STDIO transport tests (spawned by AOS from the
//! operator's allowlist). Logs nothing: stdout is the protocol channel.

use rmcp::ServiceExt;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let Ok(running) = aos_tests::mcp_servers::NotesServer::default()
        .serve(rmcp::transport::stdio())
        .await
    else {
        std::process::exit(1);
    };
    let _ = running.waiting().await;
}
