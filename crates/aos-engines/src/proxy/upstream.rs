//! The upstream providers: OpenAI-compatible base URLs configured by the operator, each
//! with its own pooled client and a credential resolved at start from a reference
//! (`env://NAME`, `file:///path`): the key itself is never in a configuration file, and
//! it is sent as a sensitive header, so it never reaches a client or a log line.
//!
//! Provider URLs come from the operator's configuration, never from a request; the
//! client still follows no redirects and ignores proxy variables.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// `[proxy.providers.<name>]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// e.g. `https://api.openai.com/v1`; requests go to `{base_url}/chat/completions`.
    pub base_url: String,
    /// Where the provider key is: `env://NAME` (the variable NAME) or `file:///path`.
    /// Absent: no `Authorization` header (a local model server).
    #[serde(default)]
    pub credential_ref: Option<String>,
    /// Longest wait for the response to start, and for each chunk of a stream.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Idle connections kept per host.
    #[serde(default = "default_pool_idle")]
    pub pool_max_idle: usize,
}

fn default_timeout_ms() -> u64 {
    120_000
}
fn default_connect_timeout_ms() -> u64 {
    5_000
}
fn default_pool_idle() -> usize {
    256
}

/// Resolves a provider credential reference. Errors name the reference, never a value.
pub fn resolve_credential(reference: &str) -> Result<SecretString, String> {
    if let Some(name) = reference.strip_prefix("env://") {
        let ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        if !ok {
            return Err(format!(
                "{reference}: env://NAME takes upper-case letters, digits and _"
            ));
        }
        return std::env::var(name)
            .map(SecretString::from)
            .map_err(|_| format!("{reference}: the variable is not set"));
    }
    if let Some(path) = reference.strip_prefix("file://") {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{reference}: cannot read the file: {e}"))?;
        let key = text.trim();
        if key.is_empty() {
            return Err(format!("{reference}: the file is empty"));
        }
        return Ok(SecretString::from(key.to_owned()));
    }
    Err(format!("{reference}: use env://NAME or file:///path"))
}

/// Replaces every configured provider secret in what an upstream sends back, before
/// anything reads it: the client's answer (whole bodies, each streamed event, passed-
/// through errors), the call log (response, `error_code`) and replays all see the
/// redacted bytes. An upstream that echoes the `Authorization` header it received cannot
/// hand AOS's provider key to a tenant. Secrets shorter than [`Redactor::MIN_SECRET`]
/// bytes are not searched for (they would match ordinary text); no real key is that short.
#[derive(Clone, Default)]
pub struct Redactor(Option<Arc<regex::bytes::Regex>>);

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Redactor(active)"
        } else {
            "Redactor(none)"
        })
    }
}

impl Redactor {
    pub const MIN_SECRET: usize = 8;
    /// What a secret becomes.
    pub const REPLACEMENT: &'static [u8] = b"[redacted]";

    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a SecretString>) -> Self {
        let alternatives: Vec<String> = secrets
            .into_iter()
            .map(|s| s.expose_secret())
            .filter(|s| s.len() >= Self::MIN_SECRET)
            .map(regex::escape)
            .collect();
        if alternatives.is_empty() {
            return Self(None);
        }
        let pattern = alternatives.join("|");
        Self(
            regex::bytes::RegexBuilder::new(&pattern)
                .size_limit(64 * 1024 * 1024)
                .build()
                .ok()
                .map(Arc::new),
        )
    }

    /// `input` with every secret replaced by [`Self::REPLACEMENT`].
    pub fn bytes(&self, input: Bytes) -> Bytes {
        match &self.0 {
            Some(re) if re.is_match(&input) => Bytes::from(re.replace_all(&input, Self::REPLACEMENT).into_owned()),
            _ => input,
        }
    }
}

/// One configured provider.
pub struct Provider {
    pub name: String,
    base: String,
    credential: Option<SecretString>,
    client: reqwest::Client,
    pub timeout: Duration,
    /// Every configured provider secret, removed from whatever this provider answers.
    redactor: Redactor,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("name", &self.name)
            .field("base", &self.base)
            .field("credential", &self.credential.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// Why an upstream call failed before an HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    Timeout,
    Unreachable(String),
    TooLarge(usize),
    Broken(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Timeout => f.write_str("the upstream timed out"),
            Self::Unreachable(why) => write!(f, "the upstream is unreachable: {why}"),
            Self::TooLarge(cap) => write!(f, "the upstream's response exceeds {cap} bytes"),
            Self::Broken(why) => write!(f, "the upstream's response broke off: {why}"),
        }
    }
}

fn failure(e: &reqwest::Error) -> Failure {
    if e.is_timeout() {
        Failure::Timeout
    } else if e.is_connect() {
        // Connection errors carry no secrets; strip the URL anyway.
        Failure::Unreachable("cannot connect".into())
    } else {
        Failure::Broken(e.without_url_string())
    }
}

trait WithoutUrl {
    fn without_url_string(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    fn without_url_string(&self) -> String {
        let mut text = self.to_string();
        if let Some(url) = self.url() {
            text = text.replace(url.as_str(), "<upstream>");
        }
        text
    }
}

impl Provider {
    pub fn new(name: &str, config: &ProviderConfig) -> Result<Self, String> {
        let key = |k: &str| format!("proxy.providers.{name}.{k}");
        let url = url::Url::parse(&config.base_url).map_err(|e| format!("{}: {e}", key("base_url")))?;
        if !matches!(url.scheme(), "http" | "https") || !url.username().is_empty() || url.password().is_some() {
            return Err(format!("{}: an http(s) URL without credentials", key("base_url")));
        }
        if config.timeout_ms == 0 || config.connect_timeout_ms == 0 {
            return Err(format!("{}: timeouts must be greater than 0", key("timeout_ms")));
        }
        let credential = match &config.credential_ref {
            Some(reference) => {
                Some(resolve_credential(reference).map_err(|e| format!("{}: {e}", key("credential_ref")))?)
            }
            None => None,
        };
        crate::outbound::ensure_crypto_provider();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
            .read_timeout(Duration::from_millis(config.timeout_ms))
            .pool_max_idle_per_host(config.pool_max_idle)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .user_agent(concat!("aos/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("proxy.providers.{name}: {e}"))?;
        Ok(Self {
            name: name.to_owned(),
            base: config.base_url.trim_end_matches('/').to_owned(),
            credential,
            redactor: Redactor::default(),
            client,
            timeout: Duration::from_millis(config.timeout_ms),
        })
    }

    /// This provider's credential (for building the [`Redactor`] of all of them).
    pub fn credential(&self) -> Option<&SecretString> {
        self.credential.as_ref()
    }

    /// Sets the secrets removed from this provider's answers.
    pub fn set_redactor(&mut self, redactor: Redactor) {
        self.redactor = redactor;
    }

    /// POSTs `body` (JSON) to `{base_url}/{path}`; resolves when the response head arrives.
    pub async fn post(&self, path: &str, body: Vec<u8>) -> Result<Response, Failure> {
        let mut request = self
            .client
            .post(format!("{}/{path}", self.base))
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(secret) = &self.credential {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", secret.expose_secret()))
                .map_err(|_| Failure::Unreachable("the provider credential is not a valid header value".into()))?;
            value.set_sensitive(true);
            request = request.header(AUTHORIZATION, value);
        }
        match tokio::time::timeout(self.timeout, request.send()).await {
            Err(_) => Err(Failure::Timeout),
            Ok(Err(e)) => Err(failure(&e)),
            Ok(Ok(response)) => Ok(Response {
                inner: response,
                redactor: self.redactor.clone(),
            }),
        }
    }
}

/// An upstream response whose head has arrived. Its body is only readable redacted.
#[derive(Debug)]
pub struct Response {
    inner: reqwest::Response,
    redactor: Redactor,
}

/// The body of a streamed response, chunk by chunk as the network delivers it.
pub type Chunks = std::pin::Pin<Box<dyn futures::Stream<Item = Result<Bytes, Failure>> + Send>>;

impl Response {
    pub fn status(&self) -> u16 {
        self.inner.status().as_u16()
    }

    /// The whole body, at most `cap` bytes, within `timeout`, secrets redacted.
    pub async fn read_capped(self, cap: usize, timeout: Duration) -> Result<Bytes, Failure> {
        let body = read_capped(self.inner, cap, timeout).await?;
        Ok(self.redactor.bytes(body))
    }

    /// The body as network chunks, and the splitter that turns them into whole events
    /// with the secrets redacted (a secret cannot hide across a chunk boundary: only
    /// whole events come out).
    pub fn events(self) -> (Chunks, SseSplitter) {
        let chunks: Chunks = Box::pin(self.inner.bytes_stream().map(|chunk| chunk.map_err(|e| failure(&e))));
        (
            chunks,
            SseSplitter {
                buffer: BytesMut::new(),
                redactor: self.redactor,
            },
        )
    }
}

/// Reads a whole (non-streaming) response body, refusing more than `cap` bytes.
async fn read_capped(response: reqwest::Response, cap: usize, timeout: Duration) -> Result<Bytes, Failure> {
    if response.content_length().is_some_and(|n| n > cap as u64) {
        return Err(Failure::TooLarge(cap));
    }
    let read = async {
        let mut body = BytesMut::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| failure(&e))?;
            if body.len() + chunk.len() > cap {
                return Err(Failure::TooLarge(cap));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    };
    tokio::time::timeout(timeout, read)
        .await
        .unwrap_or(Err(Failure::Timeout))
}

/// Splits a server-sent-event byte stream into whole events (each with its blank-line
/// terminator), however the network chunked it.
#[derive(Debug, Default)]
pub struct SseSplitter {
    buffer: BytesMut,
    redactor: Redactor,
}

impl SseSplitter {
    /// Largest event accepted (a misbehaving upstream cannot grow the buffer forever).
    pub const MAX_EVENT: usize = 4 * 1024 * 1024;

    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Bytes>, Failure> {
        self.buffer.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some(end) = find_event_end(&self.buffer) {
            events.push(self.redactor.bytes(self.buffer.split_to(end).freeze()));
        }
        if self.buffer.len() > Self::MAX_EVENT {
            return Err(Failure::TooLarge(Self::MAX_EVENT));
        }
        Ok(events)
    }

    /// Whatever is left when the stream ends (an unterminated last event).
    pub fn rest(&mut self) -> Option<Bytes> {
        (!self.buffer.is_empty()).then(|| self.redactor.bytes(self.buffer.split().freeze()))
    }
}

fn find_event_end(buffer: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i + 1 < buffer.len() {
        match (buffer.get(i), buffer.get(i + 1)) {
            (Some(b'\n'), Some(b'\n')) => return Some(i + 2),
            (Some(b'\r'), Some(b'\n')) if buffer.get(i + 2..i + 4) == Some(b"\r\n") => return Some(i + 4),
            _ => i += 1,
        }
    }
    None
}

/// The `data:` payload of one event (lines joined with `\n`), if it has one.
pub fn event_data(event: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(event).ok()?;
    let mut data: Option<String> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("data:") {
            let rest = rest.strip_prefix(' ').unwrap_or(rest);
            match &mut data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(rest);
                }
                None => data = Some(rest.to_owned()),
            }
        }
    }
    data
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_configured_secret_is_redacted_from_bodies_and_events() {
        let one = SecretString::from("sk-test-provider-key-0123456789");
        let two = SecretString::from("other-provider-secret-abcdef");
        let short = SecretString::from("short");
        let redactor = Redactor::new([&one, &two, &short]);
        let body = Bytes::from_static(
            b"{\"echo\":\"Bearer sk-test-provider-key-0123456789\",\"b\":\"other-provider-secret-abcdef\",\"c\":\"short\"}",
        );
        let out = redactor.bytes(body);
        let text = std::str::from_utf8(&out).unwrap();
        assert!(!text.contains("sk-test-provider-key"), "{text}");
        assert!(!text.contains("other-provider-secret"), "{text}");
        assert!(text.contains("Bearer [redacted]"), "{text}");
        assert!(text.contains("short"), "short secrets are not searched for: {text}");
        // A secret split across network chunks is redacted in the whole event.
        let mut sse = SseSplitter {
            buffer: BytesMut::new(),
            redactor: redactor.clone(),
        };
        assert!(sse.push(b"data: {\"k\":\"sk-test-prov").unwrap().is_empty());
        let events = sse.push(b"ider-key-0123456789\"}\n\n").unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(&events[0][..], b"data: {\"k\":\"[redacted]\"}\n\n");
        assert!(Redactor::default().bytes(Bytes::from_static(b"x")) == Bytes::from_static(b"x"));
    }

    use super::*;

    #[test]
    fn events_are_split_across_arbitrary_chunks() {
        let mut sse = SseSplitter::default();
        let stream = b"data: {\"a\":1}\n\ndata: {\"b\":2}\r\n\r\ndata: [DONE]\n\n";
        let mut events = Vec::new();
        for chunk in stream.chunks(5) {
            events.extend(sse.push(chunk).unwrap());
        }
        assert_eq!(events.len(), 3);
        assert_eq!(event_data(&events[0]).as_deref(), Some("{\"a\":1}"));
        assert_eq!(event_data(&events[1]).as_deref(), Some("{\"b\":2}"));
        assert_eq!(event_data(&events[2]).as_deref(), Some("[DONE]"));
        assert!(sse.rest().is_none());
        assert_eq!(event_data(b": keep-alive\n\n"), None);
    }

    #[test]
    fn credentials_resolve_from_env_or_file_and_errors_hide_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "sk-from-file\n").unwrap();
        let secret = resolve_credential(&format!("file://{}", path.display())).unwrap();
        assert_eq!(secret.expose_secret(), "sk-from-file");
        let err = resolve_credential("env://AOS_TEST_SURELY_UNSET_VAR").unwrap_err();
        assert!(err.contains("not set"));
        assert!(resolve_credential("sk-literal-key").unwrap_err().contains("use env://"));
    }

    #[test]
    fn base_urls_must_be_http_without_credentials() {
        let config = |url: &str| ProviderConfig {
            base_url: url.into(),
            credential_ref: None,
            timeout_ms: 1000,
            connect_timeout_ms: 1000,
            pool_max_idle: 1,
        };
        assert!(Provider::new("p", &config("http://127.0.0.1:9/v1")).is_ok());
        assert!(Provider::new("p", &config("ftp://x/v1")).is_err());
        assert!(Provider::new("p", &config("https://user:pw@x/v1")).is_err());
        let debug = format!("{:?}", Provider::new("p", &config("https://x/v1")).unwrap());
        assert!(debug.contains("\"p\""));
    }
}
