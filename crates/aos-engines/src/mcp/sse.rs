//! The legacy HTTP+SSE transport (MCP 2024-11-05), which rmcp no longer ships: the client
//! opens `GET <url>` as an event stream, the server's first `endpoint` event names where to
//! POST JSON-RPC messages, and replies arrive as `message` events on the stream.
//!
//! The POST endpoint must be on the same origin as the stream: a server cannot redirect
//! our requests elsewhere. Events larger than [`MAX_EVENT_BYTES`] end the stream.

use std::time::Duration;

use futures::StreamExt;
use rmcp::RoleClient;
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::mpsc;

/// Largest single event accepted.
pub const MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SseError {
    #[error("SSE request failed: {0}")]
    Http(String),
    #[error("SSE server answered {0}")]
    Status(u16),
    #[error("SSE protocol error: {0}")]
    Protocol(String),
}

fn http(err: reqwest::Error) -> SseError {
    SseError::Http(err.without_url().to_string())
}

/// One parsed server-sent event.
#[derive(Debug, Default, PartialEq, Eq)]
struct Event {
    name: String,
    data: String,
}

/// Incremental SSE parser (WHATWG event-stream format, the parts MCP uses).
#[derive(Default)]
struct Parser {
    buffer: Vec<u8>,
    event: Event,
    has_data: bool,
}

impl Parser {
    fn push(&mut self, chunk: &[u8]) -> Result<Vec<Event>, SseError> {
        self.buffer.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = self.buffer.drain(..=end).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line).into_owned();
            if line.is_empty() {
                if self.has_data {
                    let mut event = std::mem::take(&mut self.event);
                    if event.name.is_empty() {
                        event.name = "message".into();
                    }
                    events.push(event);
                }
                self.event = Event::default();
                self.has_data = false;
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line
                .split_once(':')
                .map_or((line.as_str(), ""), |(f, v)| (f, v.strip_prefix(' ').unwrap_or(v)));
            match field {
                "event" => self.event.name = value.to_owned(),
                "data" => {
                    if self.has_data {
                        self.event.data.push('\n');
                    }
                    self.event.data.push_str(value);
                    self.has_data = true;
                }
                _ => {}
            }
            if self.event.data.len() > MAX_EVENT_BYTES {
                return Err(SseError::Protocol("event too large".into()));
            }
        }
        if self.buffer.len() > MAX_EVENT_BYTES {
            return Err(SseError::Protocol("line too long".into()));
        }
        Ok(events)
    }
}

pub struct LegacySseTransport {
    client: reqwest::Client,
    endpoint: url::Url,
    auth: Option<SecretString>,
    inbound: mpsc::Receiver<RxJsonRpcMessage<RoleClient>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for LegacySseTransport {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl LegacySseTransport {
    /// Opens the event stream and waits (up to `timeout`) for the `endpoint` event.
    pub async fn connect(
        client: reqwest::Client,
        url: url::Url,
        auth: Option<SecretString>,
        timeout: Duration,
    ) -> Result<Self, SseError> {
        let mut request = client
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "text/event-stream");
        if let Some(token) = &auth {
            request = request.bearer_auth(token.expose_secret());
        }
        let response = tokio::time::timeout(timeout, request.send())
            .await
            .map_err(|_| SseError::Http("timed out opening the event stream".into()))?
            .map_err(http)?;
        if !response.status().is_success() {
            return Err(SseError::Status(response.status().as_u16()));
        }
        let mut body = response.bytes_stream();
        let mut parser = Parser::default();
        let mut early = Vec::new();
        let endpoint = tokio::time::timeout(timeout, async {
            let mut found: Option<String> = None;
            loop {
                let Some(chunk) = body.next().await else {
                    return Err(SseError::Protocol("stream ended before the endpoint event".into()));
                };
                for event in parser.push(&chunk.map_err(http)?)? {
                    if found.is_none() && event.name == "endpoint" {
                        found = Some(event.data);
                    } else if found.is_some() {
                        early.push(event);
                    }
                }
                if let Some(endpoint) = found {
                    return Ok(endpoint);
                }
            }
        })
        .await
        .map_err(|_| SseError::Protocol("no endpoint event in time".into()))??;
        let endpoint = url
            .join(endpoint.trim())
            .map_err(|_| SseError::Protocol("the endpoint event is not a URL".into()))?;
        if endpoint.scheme() != url.scheme()
            || endpoint.host() != url.host()
            || endpoint.port_or_known_default() != url.port_or_known_default()
        {
            return Err(SseError::Protocol("the endpoint is on another origin".into()));
        }
        let (tx, inbound) = mpsc::channel(64);
        let reader = tokio::spawn(async move {
            let deliver = |event: Event| {
                (event.name == "message").then(|| serde_json::from_str::<RxJsonRpcMessage<RoleClient>>(&event.data))
            };
            let mut batch = early;
            loop {
                for event in batch.drain(..) {
                    match deliver(event) {
                        Some(Ok(message)) => {
                            let delivered = tx.send(message).await;
                            if delivered.is_err() {
                                return;
                            }
                        }
                        Some(Err(e)) => tracing::debug!(error = %e, "ignoring an unparseable SSE message"),
                        None => {}
                    }
                }
                let Some(Ok(chunk)) = body.next().await else { return };
                let Ok(events) = parser.push(&chunk) else { return };
                batch = events;
            }
        });
        Ok(Self {
            client,
            endpoint,
            auth,
            inbound,
            reader,
        })
    }
}

impl Transport<RoleClient> for LegacySseTransport {
    type Error = SseError;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleClient>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let mut request = self.client.post(self.endpoint.clone()).json(&item);
        if let Some(token) = &self.auth {
            request = request.bearer_auth(token.expose_secret());
        }
        async move {
            let response = request.send().await.map_err(http)?;
            if response.status().is_success() {
                Ok(())
            } else {
                Err(SseError::Status(response.status().as_u16()))
            }
        }
    }

    fn receive(&mut self) -> impl Future<Output = Option<RxJsonRpcMessage<RoleClient>>> + Send {
        self.inbound.recv()
    }

    fn close(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.reader.abort();
        std::future::ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_parsed_across_chunks() {
        let mut parser = Parser::default();
        assert!(parser.push(b"event: endpoint\r\ndata: /messages?s").unwrap().is_empty());
        let events = parser.push(b"=1\n\n: comment\ndata: {\"a\":\ndata: 1}\n\n").unwrap();
        assert_eq!(
            events,
            [
                Event {
                    name: "endpoint".into(),
                    data: "/messages?s=1".into()
                },
                Event {
                    name: "message".into(),
                    data: "{\"a\":\n1}".into()
                },
            ]
        );
        let mut big = Parser::default();
        let huge = vec![b'x'; MAX_EVENT_BYTES + 10];
        assert!(big.push(&huge).is_err());
    }
}
