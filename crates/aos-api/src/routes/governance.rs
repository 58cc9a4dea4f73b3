//! Governed invocation, approvals, the audit chain, incidents, policy, manifests, and the
//! SDK-proposal aliases under `/api/v1/mcp`.

use actix_web::{HttpResponse, delete, get, patch, post, put, web};
use aos_schemas::governance::{
    Approval, ApprovalDecision, AuditEvent, AuditVerification, CreateApprovalRequest, DecideApprovalRequest,
    GovernanceSettings, Incident, InvocationResult, InvokeToolRequest, ListApprovalsQuery, ListAuditQuery,
    ListIncidentsQuery, PolicyModule, PolicyOverview, PutPolicyRequest, ResolveIncidentRequest, SignedManifest,
    UpdateGovernanceSettings,
};
use aos_schemas::mcp::{McpHealth, McpTool, SetToolRiskRequest};
use aos_schemas::{DataEnvelope, ErrorEnvelope, ListEnvelope};
use aos_spine::Spine;
use aos_spine::ops::governance as ops;
use aos_spine::ops::mcp::{Health, SetToolEnabled, SetToolRisk};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{Json, OptionalJson};

fn ok<T: serde::Serialize>(data: T) -> HttpResponse {
    HttpResponse::Ok().json(DataEnvelope::new(data))
}

async fn invoke_tool(
    spine: &Spine,
    caller: Caller,
    server_id: Uuid,
    tool_id: Uuid,
    request: InvokeToolRequest,
) -> Result<HttpResponse, ApiError> {
    Ok(ok(spine
        .run(ops::Invoke {
            actor: caller.0,
            server_id,
            tool_id,
            request,
        })
        .await?))
}

/// Invoke a tool through the governed pipeline: schema validation, policy, approvals,
/// audit chain, invocation record, incidents. A blocked call or one waiting for approval
/// is a 200 with status BLOCKED or PENDING_APPROVAL.
#[utoipa::path(tag = "governance", security(("bearer" = [])),
    params(("server_id" = Uuid, Path), ("tool_id" = Uuid, Path)), request_body = InvokeToolRequest,
    responses((status = 200, body = DataEnvelope<InvocationResult>),
        (status = 400, body = ErrorEnvelope, description = "the input does not match the tool's input schema"),
        (status = 404, body = ErrorEnvelope)))]
#[post("/{server_id}/tools/{tool_id}/invoke")]
pub async fn invoke(
    spine: web::Data<Spine>,
    caller: Caller,
    path: web::Path<(Uuid, Uuid)>,
    body: Json<InvokeToolRequest>,
) -> Result<HttpResponse, ApiError> {
    let (server_id, tool_id) = path.into_inner();
    invoke_tool(&spine, caller, server_id, tool_id, body.into_inner()).await
}

/// The server's latest signed manifest (ES256 JWS) and its verified payload.
#[utoipa::path(tag = "governance", security(("bearer" = [])), params(("server_id" = Uuid, Path)),
    responses((status = 200, body = DataEnvelope<SignedManifest>), (status = 404, body = ErrorEnvelope)))]
#[get("/{server_id}/manifest")]
pub async fn manifest(
    spine: web::Data<Spine>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    Ok(ok(spine
        .execute(ops::GetManifest {
            actor: caller.0,
            server_id: path.into_inner(),
        })
        .await?))
}

async fn locate(spine: &Spine, caller: &Caller, tool_id: Uuid) -> Result<Uuid, ApiError> {
    Ok(spine
        .execute(ops::LocateTool {
            actor: caller.0.clone(),
            tool_id,
        })
        .await?)
}

/// Alias of `.../mcp-servers/{server_id}/tools/{tool_id}/invoke`.
#[utoipa::path(tag = "mcp-aliases", security(("bearer" = [])), params(("tool_id" = Uuid, Path)), request_body = InvokeToolRequest,
    responses((status = 200, body = DataEnvelope<InvocationResult>), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
#[post("/tools/{tool_id}/invoke")]
pub async fn alias_invoke(
    spine: web::Data<Spine>,
    caller: Caller,
    path: web::Path<Uuid>,
    body: Json<InvokeToolRequest>,
) -> Result<HttpResponse, ApiError> {
    let tool_id = path.into_inner();
    let server_id = locate(&spine, &caller, tool_id).await?;
    invoke_tool(&spine, caller, server_id, tool_id, body.into_inner()).await
}

async fn toggle(spine: &Spine, caller: Caller, tool_id: Uuid, enabled: bool) -> Result<HttpResponse, ApiError> {
    let server_id = locate(spine, &caller, tool_id).await?;
    Ok(ok(spine
        .execute(SetToolEnabled {
            actor: caller.0,
            server_id,
            tool_id,
            enabled,
        })
        .await?))
}

/// Alias of `.../tools/{tool_id}/enable`.
#[utoipa::path(tag = "mcp-aliases", security(("bearer" = [])), params(("tool_id" = Uuid, Path)),
    responses((status = 200, body = DataEnvelope<McpTool>), (status = 404, body = ErrorEnvelope)))]
#[post("/tools/{tool_id}/enable")]
pub async fn alias_enable(
    spine: web::Data<Spine>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    toggle(&spine, caller, path.into_inner(), true).await
}

/// Alias of `.../tools/{tool_id}/disable`.
#[utoipa::path(tag = "mcp-aliases", security(("bearer" = [])), params(("tool_id" = Uuid, Path)),
    responses((status = 200, body = DataEnvelope<McpTool>), (status = 404, body = ErrorEnvelope)))]
#[post("/tools/{tool_id}/disable")]
pub async fn alias_disable(
    spine: web::Data<Spine>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    toggle(&spine, caller, path.into_inner(), false).await
}

/// Alias of `.../tools/{tool_id}/risk`.
#[utoipa::path(tag = "mcp-aliases", security(("bearer" = [])), params(("tool_id" = Uuid, Path)), request_body = SetToolRiskRequest,
    responses((status = 200, body = DataEnvelope<McpTool>), (status = 404, body = ErrorEnvelope)))]
#[put("/tools/{tool_id}/risk")]
pub async fn alias_risk(
    spine: web::Data<Spine>,
    caller: Caller,
    path: web::Path<Uuid>,
    body: Json<SetToolRiskRequest>,
) -> Result<HttpResponse, ApiError> {
    let tool_id = path.into_inner();
    let server_id = locate(&spine, &caller, tool_id).await?;
    Ok(ok(spine
        .execute(SetToolRisk {
            actor: caller.0,
            server_id,
            tool_id,
            request: body.into_inner(),
        })
        .await?))
}

/// Alias of `GET .../mcp-servers/{server_id}/health` (the SDK proposal uses POST). Served
/// in the `/api/v1/mcp/servers` scope: actix scopes do not fall through, so a route under
/// that prefix registered in the shorter `/api/v1/mcp` scope would never be reached.
#[utoipa::path(tag = "mcp-aliases", security(("bearer" = [])), params(("server_id" = Uuid, Path)),
    responses((status = 200, body = DataEnvelope<McpHealth>), (status = 404, body = ErrorEnvelope)))]
#[post("/{server_id}/health")]
pub async fn alias_health(
    spine: web::Data<Spine>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    Ok(ok(spine
        .run(Health {
            actor: caller.0,
            server_id: path.into_inner(),
        })
        .await?))
}

/// Request an approval for a subject of your own (`mcp.tool_invocation` approvals are
/// created by the gateway).
#[utoipa::path(tag = "approvals", security(("bearer" = [])), request_body = CreateApprovalRequest,
    responses((status = 201, body = DataEnvelope<Approval>), (status = 422, body = ErrorEnvelope)))]
#[post("/approvals")]
pub async fn create_approval(
    spine: web::Data<Spine>,
    caller: Caller,
    body: Json<CreateApprovalRequest>,
) -> Result<HttpResponse, ApiError> {
    let approval = spine
        .execute(ops::CreateApproval {
            actor: caller.0,
            request: body.into_inner(),
        })
        .await?;
    Ok(HttpResponse::Created().json(DataEnvelope::new(approval)))
}

/// The tenant's approvals, oldest first (`status=PENDING` for the queue).
#[utoipa::path(tag = "approvals", security(("bearer" = [])), params(ListApprovalsQuery),
    responses((status = 200, body = ListEnvelope<Approval>)))]
#[get("/approvals")]
pub async fn list_approvals(
    spine: web::Data<Spine>,
    caller: Caller,
    query: web::Query<ListApprovalsQuery>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(
        spine
            .execute(ops::ListApprovals {
                actor: caller.0,
                query: query.into_inner(),
            })
            .await?,
    ))
}

#[utoipa::path(tag = "approvals", security(("bearer" = [])), params(("approval_id" = Uuid, Path)),
    responses((status = 200, body = DataEnvelope<Approval>), (status = 404, body = ErrorEnvelope)))]
#[get("/approvals/{approval_id}")]
pub async fn get_approval(
    spine: web::Data<Spine>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    Ok(ok(spine
        .execute(ops::GetApproval {
            actor: caller.0,
            approval_id: path.into_inner(),
        })
        .await?))
}

/// Approve (needs `approvals:decide`; not your own request). A gated tool call runs now,
/// exactly once; its result is in `invocation`.
#[utoipa::path(tag = "approvals", security(("bearer" = [])), params(("approval_id" = Uuid, Path)), request_body = Option<DecideApprovalRequest>,
    responses((status = 200, body = DataEnvelope<ApprovalDecision>), (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope, description = "not PENDING")))]
#[post("/approvals/{approval_id}/approve")]
pub async fn approve(
    spine: web::Data<Spine>,
    caller: Caller,
    path: web::Path<Uuid>,
    body: OptionalJson<DecideApprovalRequest>,
) -> Result<HttpResponse, ApiError> {
    Ok(ok(spine
        .run(ops::Approve {
            actor: caller.0,
            approval_id: path.into_inner(),
            request: body.0,
        })
        .await?))
}

/// Deny (needs `approvals:decide`); a gated tool call becomes BLOCKED.
#[utoipa::path(tag = "approvals", security(("bearer" = [])), params(("approval_id" = Uuid, Path)), request_body = Option<DecideApprovalRequest>,
    responses((status = 200, body = DataEnvelope<ApprovalDecision>), (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope, description = "not PENDING")))]
#[post("/approvals/{approval_id}/deny")]
pub async fn deny(
    spine: web::Data<Spine>,
    caller: Caller,
    path: web::Path<Uuid>,
    body: OptionalJson<DecideApprovalRequest>,
) -> Result<HttpResponse, ApiError> {
    Ok(ok(spine
        .execute(ops::Deny {
            actor: caller.0,
            approval_id: path.into_inner(),
            request: body.0,
        })
        .await?))
}

/// The tenant's audit chain, in order (keyset cursor).
#[utoipa::path(tag = "audit", security(("bearer" = [])), params(ListAuditQuery),
    responses((status = 200, body = ListEnvelope<AuditEvent>)))]
#[get("/audit/events")]
pub async fn audit_events(
    spine: web::Data<Spine>,
    caller: Caller,
    query: web::Query<ListAuditQuery>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(
        spine
            .execute(ops::ListAuditEvents {
                actor: caller.0,
                query: query.into_inner(),
            })
            .await?,
    ))
}

/// Recomputes the tenant's audit chain.
#[utoipa::path(tag = "audit", security(("bearer" = [])), responses((status = 200, body = DataEnvelope<AuditVerification>)))]
#[get("/audit/verify")]
pub async fn audit_verify(spine: web::Data<Spine>, caller: Caller) -> Result<HttpResponse, ApiError> {
    Ok(ok(spine.execute(ops::VerifyAudit { actor: caller.0 }).await?))
}

#[utoipa::path(tag = "incidents", security(("bearer" = [])), params(ListIncidentsQuery),
    responses((status = 200, body = ListEnvelope<Incident>)))]
#[get("/incidents")]
pub async fn list_incidents(
    spine: web::Data<Spine>,
    caller: Caller,
    query: web::Query<ListIncidentsQuery>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(
        spine
            .execute(ops::ListIncidents {
                actor: caller.0,
                query: query.into_inner(),
            })
            .await?,
    ))
}

#[utoipa::path(tag = "incidents", security(("bearer" = [])), params(("incident_id" = Uuid, Path)),
    responses((status = 200, body = DataEnvelope<Incident>), (status = 404, body = ErrorEnvelope)))]
#[get("/incidents/{incident_id}")]
pub async fn get_incident(
    spine: web::Data<Spine>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    Ok(ok(spine
        .execute(ops::GetIncident {
            actor: caller.0,
            incident_id: path.into_inner(),
        })
        .await?))
}

#[utoipa::path(tag = "incidents", security(("bearer" = [])), params(("incident_id" = Uuid, Path)), request_body = Option<ResolveIncidentRequest>,
    responses((status = 200, body = DataEnvelope<Incident>), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
#[post("/incidents/{incident_id}/resolve")]
pub async fn resolve_incident(
    spine: web::Data<Spine>,
    caller: Caller,
    path: web::Path<Uuid>,
    body: OptionalJson<ResolveIncidentRequest>,
) -> Result<HttpResponse, ApiError> {
    Ok(ok(spine
        .execute(ops::ResolveIncident {
            actor: caller.0,
            incident_id: path.into_inner(),
            request: body.0,
        })
        .await?))
}

/// What decides the caller's tool calls: engine, default, platform and tenant modules,
/// settings.
#[utoipa::path(tag = "policy", security(("bearer" = [])), responses((status = 200, body = DataEnvelope<PolicyOverview>)))]
#[get("/policy")]
pub async fn get_policy(spine: web::Data<Spine>, caller: Caller) -> Result<HttpResponse, ApiError> {
    Ok(ok(spine.execute(ops::GetPolicy { actor: caller.0 }).await?))
}

/// Upload the tenant's Rego module (`package aos.tenant`); validated before it is stored.
#[utoipa::path(tag = "policy", security(("bearer" = [])), request_body = PutPolicyRequest,
    responses((status = 200, body = DataEnvelope<PolicyModule>), (status = 422, body = ErrorEnvelope, description = "the module does not compile or has the wrong shape")))]
#[put("/policy")]
pub async fn put_policy(
    spine: web::Data<Spine>,
    caller: Caller,
    body: Json<PutPolicyRequest>,
) -> Result<HttpResponse, ApiError> {
    Ok(ok(spine
        .execute(ops::PutPolicy {
            actor: caller.0,
            module: ops::PolicyModuleOf::Tenant,
            source: Some(body.into_inner().source),
        })
        .await?))
}

/// Remove the tenant's module (the default and platform modules still apply).
#[utoipa::path(tag = "policy", security(("bearer" = [])), responses((status = 204)))]
#[delete("/policy")]
pub async fn delete_policy(spine: web::Data<Spine>, caller: Caller) -> Result<HttpResponse, ApiError> {
    spine
        .execute(ops::PutPolicy {
            actor: caller.0,
            module: ops::PolicyModuleOf::Tenant,
            source: None,
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Change the tenant's governance settings.
#[utoipa::path(tag = "policy", security(("bearer" = [])), request_body = UpdateGovernanceSettings,
    responses((status = 200, body = DataEnvelope<GovernanceSettings>)))]
#[patch("/policy/settings")]
pub async fn update_settings(
    spine: web::Data<Spine>,
    caller: Caller,
    body: Json<UpdateGovernanceSettings>,
) -> Result<HttpResponse, ApiError> {
    Ok(ok(spine
        .execute(ops::UpdateSettings {
            actor: caller.0,
            request: body.into_inner(),
        })
        .await?))
}

/// Set the platform module (`package aos.platform`, operator only); tenants cannot
/// override it.
#[utoipa::path(tag = "policy", security(("bearer" = [])), request_body = PutPolicyRequest,
    responses((status = 200, body = DataEnvelope<PolicyModule>), (status = 403, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
#[put("/policy")]
pub async fn put_platform_policy(
    spine: web::Data<Spine>,
    caller: Caller,
    body: Json<PutPolicyRequest>,
) -> Result<HttpResponse, ApiError> {
    Ok(ok(spine
        .execute(ops::PutPolicy {
            actor: caller.0,
            module: ops::PolicyModuleOf::Platform,
            source: Some(body.into_inner().source),
        })
        .await?))
}

/// Remove the platform module.
#[utoipa::path(tag = "policy", security(("bearer" = [])), responses((status = 204), (status = 403, body = ErrorEnvelope)))]
#[delete("/policy")]
pub async fn delete_platform_policy(spine: web::Data<Spine>, caller: Caller) -> Result<HttpResponse, ApiError> {
    spine
        .execute(ops::PutPolicy {
            actor: caller.0,
            module: ops::PolicyModuleOf::Platform,
            source: None,
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The public keys that verify manifests (ES256; kid = RFC 7638 thumbprint).
#[utoipa::path(tag = "governance", responses((status = 200, description = "a JWK set")))]
#[get("/.well-known/jwks.json")]
pub async fn jwks(spine: web::Data<Spine>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "public, max-age=300"))
        .json(spine.jwks())
}
