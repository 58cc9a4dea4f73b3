//! `/api/v1/integrations/mcp-servers`: a tenant's MCP servers and their tools. Reads need
//! `mcp:read`, changes `mcp:admin` (checked by the operations).

use actix_web::{HttpResponse, delete, get, post, put, web};
use aos_schemas::mcp::{
    InvocationsQuery, ListServersQuery, ListToolsQuery, McpDiscovery, McpHealth, McpInvocation, McpRegistration,
    McpServer, McpTool, RegisterMcpServerRequest, SetToolRiskRequest,
};
use aos_schemas::{DataEnvelope, ErrorEnvelope, ListEnvelope};
use aos_spine::Spine;
use aos_spine::ops::mcp::{
    Delete, Discover, Get, GetTool, Health, Invocations, List, ListTools, Register, SetToolEnabled, SetToolRisk,
};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::Json;

fn ok<T: serde::Serialize>(data: T) -> HttpResponse {
    HttpResponse::Ok().json(DataEnvelope::new(data))
}

/// Register an MCP server (and, unless `discover` is false, discover its tools now).
#[utoipa::path(
    tag = "mcp",
    security(("bearer" = [])),
    request_body = RegisterMcpServerRequest,
    responses(
        (status = 201, body = DataEnvelope<McpRegistration>, description = "registered; a failed discovery is reported in `discovery_error`"),
        (status = 409, body = ErrorEnvelope, description = "this URL is already registered"),
        (status = 422, body = ErrorEnvelope, description = "invalid URL, transport, credential_ref or metadata"),
    )
)]
#[post("")]
pub async fn register(
    spine: web::Data<Spine>,
    caller: Caller,
    body: Json<RegisterMcpServerRequest>,
) -> Result<HttpResponse, ApiError> {
    let registration = spine
        .run(Register {
            actor: caller.0,
            request: body.into_inner(),
        })
        .await?;
    Ok(HttpResponse::Created().json(DataEnvelope::new(registration)))
}

/// The tenant's MCP servers (`include_disabled=true` adds soft-deleted ones).
#[utoipa::path(tag = "mcp", security(("bearer" = [])), params(ListServersQuery), responses((status = 200, body = ListEnvelope<McpServer>)))]
#[get("")]
pub async fn list(
    spine: web::Data<Spine>,
    caller: Caller,
    query: web::Query<ListServersQuery>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(
        spine
            .execute(List {
                actor: caller.0,
                query: query.into_inner(),
            })
            .await?,
    ))
}

/// One server (soft-deleted servers stay readable for audit).
#[utoipa::path(tag = "mcp", security(("bearer" = [])), params(("server_id" = Uuid, Path)),
    responses((status = 200, body = DataEnvelope<McpServer>), (status = 404, body = ErrorEnvelope)))]
#[get("/{server_id}")]
pub async fn get(spine: web::Data<Spine>, caller: Caller, path: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    Ok(ok(spine
        .execute(Get {
            actor: caller.0,
            server_id: path.into_inner(),
        })
        .await?))
}

/// Soft-delete a server: hidden from lists and the catalog, kept for audit.
#[utoipa::path(tag = "mcp", security(("bearer" = [])), params(("server_id" = Uuid, Path)),
    responses((status = 200, body = DataEnvelope<McpServer>), (status = 404, body = ErrorEnvelope)))]
#[delete("/{server_id}")]
pub async fn delete_server(
    spine: web::Data<Spine>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    Ok(ok(spine
        .execute(Delete {
            actor: caller.0,
            server_id: path.into_inner(),
        })
        .await?))
}

/// Discover (or rediscover) the server's tools.
#[utoipa::path(tag = "mcp", security(("bearer" = [])), params(("server_id" = Uuid, Path)),
    responses((status = 200, body = DataEnvelope<McpDiscovery>), (status = 404, body = ErrorEnvelope),
        (status = 502, body = ErrorEnvelope, description = "the server could not be reached or misbehaved")))]
#[post("/{server_id}/discover")]
pub async fn discover(
    spine: web::Data<Spine>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    Ok(ok(spine
        .run(Discover {
            actor: caller.0,
            server_id: path.into_inner(),
        })
        .await?))
}

/// Check the server's health now (the answer, healthy or not, is a 200).
#[utoipa::path(tag = "mcp", security(("bearer" = [])), params(("server_id" = Uuid, Path)),
    responses((status = 200, body = DataEnvelope<McpHealth>), (status = 404, body = ErrorEnvelope)))]
#[get("/{server_id}/health")]
pub async fn health(spine: web::Data<Spine>, caller: Caller, path: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    Ok(ok(spine
        .run(Health {
            actor: caller.0,
            server_id: path.into_inner(),
        })
        .await?))
}

/// The server's tools with their risk levels.
#[utoipa::path(tag = "mcp", security(("bearer" = [])), params(("server_id" = Uuid, Path), ListToolsQuery),
    responses((status = 200, body = DataEnvelope<Vec<McpTool>>), (status = 404, body = ErrorEnvelope)))]
#[get("/{server_id}/tools")]
pub async fn tools(
    spine: web::Data<Spine>,
    caller: Caller,
    path: web::Path<Uuid>,
    query: web::Query<ListToolsQuery>,
) -> Result<HttpResponse, ApiError> {
    let op = ListTools {
        actor: caller.0,
        server_id: path.into_inner(),
        include_unavailable: query.include_unavailable,
    };
    Ok(ok(spine.execute(op).await?))
}

/// One tool.
#[utoipa::path(tag = "mcp", security(("bearer" = [])), params(("server_id" = Uuid, Path), ("tool_id" = Uuid, Path)),
    responses((status = 200, body = DataEnvelope<McpTool>), (status = 404, body = ErrorEnvelope)))]
#[get("/{server_id}/tools/{tool_id}")]
pub async fn tool(
    spine: web::Data<Spine>,
    caller: Caller,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (server_id, tool_id) = path.into_inner();
    Ok(ok(spine
        .execute(GetTool {
            actor: caller.0,
            server_id,
            tool_id,
        })
        .await?))
}

/// Enable a tool.
#[utoipa::path(tag = "mcp", security(("bearer" = [])), params(("server_id" = Uuid, Path), ("tool_id" = Uuid, Path)),
    responses((status = 200, body = DataEnvelope<McpTool>), (status = 404, body = ErrorEnvelope)))]
#[post("/{server_id}/tools/{tool_id}/enable")]
pub async fn enable_tool(
    spine: web::Data<Spine>,
    caller: Caller,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (server_id, tool_id) = path.into_inner();
    Ok(ok(spine
        .execute(SetToolEnabled {
            actor: caller.0,
            server_id,
            tool_id,
            enabled: true,
        })
        .await?))
}

/// Disable a tool.
#[utoipa::path(tag = "mcp", security(("bearer" = [])), params(("server_id" = Uuid, Path), ("tool_id" = Uuid, Path)),
    responses((status = 200, body = DataEnvelope<McpTool>), (status = 404, body = ErrorEnvelope)))]
#[post("/{server_id}/tools/{tool_id}/disable")]
pub async fn disable_tool(
    spine: web::Data<Spine>,
    caller: Caller,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (server_id, tool_id) = path.into_inner();
    Ok(ok(spine
        .execute(SetToolEnabled {
            actor: caller.0,
            server_id,
            tool_id,
            enabled: false,
        })
        .await?))
}

/// Set a tool's risk level (kept across rediscovery) and optionally whether it needs approval.
#[utoipa::path(tag = "mcp", security(("bearer" = [])), params(("server_id" = Uuid, Path), ("tool_id" = Uuid, Path)),
    request_body = SetToolRiskRequest,
    responses((status = 200, body = DataEnvelope<McpTool>), (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
#[put("/{server_id}/tools/{tool_id}/risk")]
pub async fn set_tool_risk(
    spine: web::Data<Spine>,
    caller: Caller,
    path: web::Path<(Uuid, Uuid)>,
    body: Json<SetToolRiskRequest>,
) -> Result<HttpResponse, ApiError> {
    let (server_id, tool_id) = path.into_inner();
    Ok(ok(spine
        .execute(SetToolRisk {
            actor: caller.0,
            server_id,
            tool_id,
            request: body.into_inner(),
        })
        .await?))
}

/// The server's latest tool invocations, newest first.
#[utoipa::path(tag = "mcp", security(("bearer" = [])), params(("server_id" = Uuid, Path), InvocationsQuery),
    responses((status = 200, body = DataEnvelope<Vec<McpInvocation>>), (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
#[get("/{server_id}/invocations")]
pub async fn invocations(
    spine: web::Data<Spine>,
    caller: Caller,
    path: web::Path<Uuid>,
    query: web::Query<InvocationsQuery>,
) -> Result<HttpResponse, ApiError> {
    let op = Invocations {
        actor: caller.0,
        server_id: path.into_inner(),
        limit: query.limit,
    };
    Ok(ok(spine.execute(op).await?))
}
