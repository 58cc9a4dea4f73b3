//! `/mcp` (Streamable HTTP) and `/mcp/ws` (WebSocket): AOS as one MCP server per tenant.
//! This module translates HTTP only: Host and Origin checks, the caller (authenticated by
//! the middleware), the body; the protocol is the spine's gateway (rmcp underneath).
//! `/.well-known/oauth-protected-resource` tells OAuth-aware clients how to authenticate.

use std::convert::Infallible;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, get, web};
use aos_schemas::mcp::CatalogEntry;
use aos_schemas::{DataEnvelope, ErrorCode, ErrorEnvelope};
use aos_spine::Spine;
use aos_spine::ops::gateway::{Gateway, GatewayRequest, NamedCatalog};
use futures::{SinkExt, StreamExt};

use crate::auth::Caller;
use crate::config::McpEndpointConfig;
use crate::error::ApiError;
use crate::extract::Body;

/// Settings of the endpoint, shared by the handlers of one worker.
pub struct Endpoint {
    pub gateway: Arc<Gateway>,
    pub config: McpEndpointConfig,
}

fn host_allowed(config: &McpEndpointConfig, req: &HttpRequest) -> bool {
    if config.allowed_hosts.iter().any(|h| h == "*") {
        return true;
    }
    // The Host header itself (or HTTP/2's authority), never X-Forwarded-Host: a client
    // could set that to anything.
    let host = request_host(req);
    // "name:port", "[::1]:port", "name"
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default().to_owned()
    } else {
        host.rsplit_once(':').map(|(n, _)| n.to_owned()).unwrap_or(host)
    };
    config.allowed_hosts.iter().any(|h| h.eq_ignore_ascii_case(&name))
}

fn origin_allowed(config: &McpEndpointConfig, req: &HttpRequest) -> bool {
    match req.headers().get(header::ORIGIN).map(|v| v.to_str().unwrap_or("\u{0}")) {
        None => true,
        Some(origin) => {
            same_origin(req, origin)
                || config
                    .allowed_origins
                    .iter()
                    .any(|o| o == "*" || o.trim_end_matches('/').eq_ignore_ascii_case(origin))
        }
    }
}

/// An `Origin` naming the request's own `Host` (a page served by this AOS): accepted by
/// default. The Host itself must still be allowed (checked first), so a rebinding attack
/// with a hostile Host is refused before this.
fn same_origin(req: &HttpRequest, origin: &str) -> bool {
    let host = request_host(req);
    !host.is_empty()
        && origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .is_some_and(|authority| authority.trim_end_matches('/').eq_ignore_ascii_case(&host))
}

fn request_host(req: &HttpRequest) -> String {
    req.headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default()
}

/// Host, Origin and scope: the checks every `/mcp` request passes first.
fn admit(endpoint: &Endpoint, spine: &Spine, req: &HttpRequest, caller: &Caller) -> Result<(), ApiError> {
    if !host_allowed(&endpoint.config, req) {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "this Host is not allowed for /mcp (http.mcp.allowed_hosts)",
        ));
    }
    if !origin_allowed(&endpoint.config, req) {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "this Origin is not allowed for /mcp (http.mcp.allowed_origins)",
        ));
    }
    spine.authorize_mcp_gateway(&caller.0)?;
    Ok(())
}

/// The public base URL: configured, or the request's scheme and host.
pub fn public_base(config: &McpEndpointConfig, req: &HttpRequest) -> String {
    match &config.public_url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => format!("{}://{}", req.connection_info().scheme(), request_host(req)),
    }
}

/// `POST|GET|DELETE /mcp`: one Streamable HTTP exchange, stateless (any replica answers).
pub async fn http(
    req: HttpRequest,
    body: Body,
    caller: Caller,
    spine: web::Data<Spine>,
    endpoint: web::Data<Endpoint>,
) -> Result<HttpResponse, ApiError> {
    serve_http(req, body, caller, spine, endpoint).await
}

/// `/mcp/agents/{agent_id}`: the agent's catalog for a caller allowed to act for it (the
/// agent's own key, or a person or tenant key with `mcp:admin`). A WebSocket upgrade on
/// the same path is served as `/mcp/ws` is.
pub async fn agent_http(
    req: HttpRequest,
    path: web::Path<uuid::Uuid>,
    payload: web::Payload,
    caller: Caller,
    spine: web::Data<Spine>,
    endpoint: web::Data<Endpoint>,
) -> Result<HttpResponse, ApiError> {
    let caller = act_for(&spine, caller, path.into_inner()).await?;
    let upgrade = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if upgrade {
        return serve_socket(req, payload, caller, spine, endpoint).await;
    }
    let body = Body::read(&req, payload).await?;
    serve_http(req, body, caller, spine, endpoint).await
}

/// `/mcp/agents/{agent_id}/ws`: the agent's catalog over WebSocket.
pub async fn agent_websocket(
    req: HttpRequest,
    path: web::Path<uuid::Uuid>,
    payload: web::Payload,
    caller: Caller,
    spine: web::Data<Spine>,
    endpoint: web::Data<Endpoint>,
) -> Result<HttpResponse, ApiError> {
    let caller = act_for(&spine, caller, path.into_inner()).await?;
    serve_socket(req, payload, caller, spine, endpoint).await
}

/// The caller acting for `agent`, if it may (the agent is its tenant's and active).
async fn act_for(spine: &Spine, caller: Caller, agent: uuid::Uuid) -> Result<Caller, ApiError> {
    let caller = Caller(caller.0.acting_for(agent.into())?);
    spine
        .execute(aos_spine::ops::gateway::AgentEndpoint {
            actor: caller.0.clone(),
        })
        .await?;
    Ok(caller)
}

async fn serve_http(
    req: HttpRequest,
    body: Body,
    caller: Caller,
    spine: web::Data<Spine>,
    endpoint: web::Data<Endpoint>,
) -> Result<HttpResponse, ApiError> {
    admit(&endpoint, &spine, &req, &caller)?;
    if body.0.len() > endpoint.config.max_message_bytes {
        return Err(ApiError::new(ErrorCode::PayloadTooLarge, "the message is too large"));
    }
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect();
    let request = GatewayRequest {
        method: req.method().as_str().to_owned(),
        uri: req.uri().to_string(),
        headers,
        body: body.0,
    };
    let response = endpoint.gateway.handle_http(caller.0, request).await;
    let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut out = HttpResponse::build(status);
    for (name, value) in response.headers {
        if let Ok(value) = HeaderValue::from_bytes(&value) {
            out.append_header((name, value));
        }
    }
    Ok(out.streaming(response.body.map(Ok::<_, Infallible>)))
}

/// A close frame's reason is at most 123 bytes (RFC 6455 §5.5): cut at a char boundary.
fn close_description(why: &str) -> String {
    let mut out = String::new();
    for c in why.chars() {
        if out.len() + c.len_utf8() > 123 {
            break;
        }
        out.push(c);
    }
    out
}

/// `GET /mcp/ws`: the same server over a WebSocket (subprotocol `mcp`), one JSON-RPC
/// message per text frame. Not a standard MCP transport yet.
pub async fn websocket(
    req: HttpRequest,
    payload: web::Payload,
    caller: Caller,
    spine: web::Data<Spine>,
    endpoint: web::Data<Endpoint>,
) -> Result<HttpResponse, ApiError> {
    serve_socket(req, payload, caller, spine, endpoint).await
}

async fn serve_socket(
    req: HttpRequest,
    payload: web::Payload,
    caller: Caller,
    spine: web::Data<Spine>,
    endpoint: web::Data<Endpoint>,
) -> Result<HttpResponse, ApiError> {
    admit(&endpoint, &spine, &req, &caller)?;
    let offered: Vec<String> = req
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|p| p.trim().to_owned()).collect::<Vec<_>>())
        .collect();
    if !offered.is_empty() && !offered.iter().any(|p| p == "mcp") {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            "this endpoint speaks the WebSocket subprotocol `mcp` only",
        ));
    }
    let (mut response, mut session, stream) = actix_ws::handle(&req, payload)
        .map_err(|err| ApiError::new(ErrorCode::BadRequest, format!("not a WebSocket upgrade: {err}")))?;
    if !offered.is_empty() {
        response
            .headers_mut()
            .insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static("mcp"));
    }
    let max = endpoint.config.max_message_bytes;
    let mut stream = stream
        .max_frame_size(max)
        .aggregate_continuations()
        .max_continuation_size(max);
    let (mut to_gateway, from_socket) = futures::channel::mpsc::channel::<String>(32);
    let (to_socket, mut from_gateway) = futures::channel::mpsc::channel::<String>(32);
    let gateway = Arc::clone(&endpoint.gateway);
    let principal = caller.0;
    // Frames in: text to the gateway; pings answered; close or error ends the session.
    let mut pong = session.clone();
    actix_web::rt::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            let alive = match message {
                actix_ws::AggregatedMessage::Text(text) => to_gateway.send(text.to_string()).await.is_ok(),
                actix_ws::AggregatedMessage::Ping(bytes) => pong.pong(&bytes).await.is_ok(),
                actix_ws::AggregatedMessage::Close(_) => false,
                _ => true,
            };
            if !alive {
                break;
            }
        }
    });
    // Frames out. The session is closed once, below, when the gateway is done with it.
    let closer = session.clone();
    let frames_out = actix_web::rt::spawn(async move {
        while let Some(text) = from_gateway.next().await {
            if session.text(text).await.is_err() {
                break;
            }
        }
    });
    actix_web::rt::spawn(async move {
        let why = gateway.serve_socket(principal, from_socket, to_socket).await;
        // What was already queued goes out first, then the close frame.
        let _ = frames_out.await;
        // 1008 (policy violation) with the reason when AOS ends it (the credential was
        // revoked, expired, or its tenant stopped being active); a normal close otherwise.
        let reason = why.map(|why| actix_ws::CloseReason {
            code: actix_ws::CloseCode::Policy,
            description: Some(close_description(&why)),
        });
        let _ = closer.close(reason).await;
    });
    Ok(response)
}

/// RFC 9728 protected resource metadata for `/mcp`.
#[utoipa::path(tag = "mcp-endpoint", responses((status = 200, description = "RFC 9728 metadata")))]
#[get("/.well-known/oauth-protected-resource")]
pub async fn protected_resource(req: HttpRequest, endpoint: web::Data<Endpoint>) -> HttpResponse {
    metadata(&req, &endpoint)
}

/// The same document at the path-suffixed location RFC 9728 derives for `/mcp`.
#[utoipa::path(tag = "mcp-endpoint", responses((status = 200, description = "RFC 9728 metadata")))]
#[get("/.well-known/oauth-protected-resource/mcp")]
pub async fn protected_resource_mcp(req: HttpRequest, endpoint: web::Data<Endpoint>) -> HttpResponse {
    metadata(&req, &endpoint)
}

fn metadata(req: &HttpRequest, endpoint: &Endpoint) -> HttpResponse {
    let base = public_base(&endpoint.config, req);
    HttpResponse::Ok().json(serde_json::json!({
        "resource": format!("{base}/mcp"),
        "resource_name": "AOS governed MCP endpoint",
        "authorization_servers": endpoint.config.authorization_servers,
        "bearer_methods_supported": ["header"],
        "scopes_supported": ["mcp:invoke"],
    }))
}

/// The tenant's catalog as agents see it at `/mcp`, with collisions reported.
#[utoipa::path(tag = "mcp", security(("bearer" = [])),
    responses((status = 200, body = DataEnvelope<Vec<CatalogEntry>>), (status = 403, body = ErrorEnvelope)))]
#[get("/catalog")]
pub async fn catalog(spine: web::Data<Spine>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let entries = spine.execute(NamedCatalog { actor: caller.0 }).await?;
    Ok(HttpResponse::Ok().json(DataEnvelope::new(entries)))
}
