//! `[http]` settings that shape request handling.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Largest accepted request body, in bytes (JSON or otherwise).
    pub max_body_bytes: usize,
    /// How long a request body may take to arrive once the headers are in; past it the
    /// request is answered 408 `request_timeout` and its connection freed.
    pub body_read_timeout_ms: u64,
    /// `[http.mcp]`: AOS's own MCP endpoint (`/mcp`, `/mcp/ws`).
    pub mcp: McpEndpointConfig,
}

/// `[http.mcp]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct McpEndpointConfig {
    /// Host names (without port) `/mcp` answers to; `*` for any. Guards against DNS
    /// rebinding. Default: loopback names only; add the public host in production.
    pub allowed_hosts: Vec<String>,
    /// Browser origins (`https://app.example.com`) allowed to call `/mcp`. Requests without
    /// an `Origin` header (agents, SDKs) are not affected; `*` allows any origin.
    pub allowed_origins: Vec<String>,
    /// The endpoint's public base URL (`https://aos.example.com`), for the OAuth protected
    /// resource metadata; default: the scheme and host of the request.
    pub public_url: Option<String>,
    /// Authorization servers advertised in the metadata (the issuers of accepted JWTs).
    pub authorization_servers: Vec<String>,
    /// Largest JSON-RPC message (HTTP body or WebSocket frame).
    pub max_message_bytes: usize,
    /// How often connected clients' catalogs are checked for `tools/list_changed`.
    pub notify_poll_ms: u64,
}

impl Default for McpEndpointConfig {
    fn default() -> Self {
        Self {
            allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            allowed_origins: Vec::new(),
            public_url: None,
            authorization_servers: Vec::new(),
            max_message_bytes: 1024 * 1024,
            notify_poll_ms: 1000,
        }
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            body_read_timeout_ms: 10_000,
            mcp: McpEndpointConfig::default(),
        }
    }
}

impl ApiConfig {
    /// Checks values; the error names the key.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if !(1024..=64 * 1024 * 1024).contains(&self.max_body_bytes) {
            return Err(("http.max_body_bytes".into(), "must be between 1024 and 67108864".into()));
        }
        if !(100..=600_000).contains(&self.body_read_timeout_ms) {
            return Err((
                "http.body_read_timeout_ms".into(),
                "must be between 100 and 600000".into(),
            ));
        }
        if !(1024..=64 * 1024 * 1024).contains(&self.mcp.max_message_bytes) {
            return Err((
                "http.mcp.max_message_bytes".into(),
                "must be between 1024 and 67108864".into(),
            ));
        }
        if !(100..=60_000).contains(&self.mcp.notify_poll_ms) {
            return Err(("http.mcp.notify_poll_ms".into(), "must be between 100 and 60000".into()));
        }
        if let Some(url) = &self.mcp.public_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(("http.mcp.public_url".into(), "must be an http(s) URL".into()));
        }
        Ok(())
    }
}
