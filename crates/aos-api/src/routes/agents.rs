//! `/api/v1/agents`: agents, their keys, their signed manifests, and freezing them.
//! Reading needs `mcp:read`; changing needs `mcp:admin` (freezing: `admin`).

use actix_web::{HttpResponse, delete, get, patch, post, web};
use aos_schemas::agents::{
    Agent, AgentManifest, CreateAgentKeyRequest, CreateAgentRequest, CreatedAgentKey, ManifestVerification,
    UpdateAgentRequest, VerifyManifestRequest,
};
use aos_schemas::api_keys::ApiKey;
use aos_schemas::envelope::PageQuery;
use aos_schemas::killswitch::{FreezeRequest, KillSwitchState};
use aos_schemas::{DataEnvelope, ErrorEnvelope, ListEnvelope};
use aos_spine::Spine;
use aos_spine::ops::agents::{
    Create, CreateKey, Delete, Get, GetManifest, IssueManifest, List, ListKeys, ListManifests, Update, VerifyManifest,
};
use aos_spine::ops::killswitch::{Action, Target};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{Json, OptionalJson};
use crate::routes::killswitch::change;

/// Create an agent: a name and capabilities (selectors over the governed catalog).
#[utoipa::path(tag = "agents", security(("bearer" = [])), request_body = CreateAgentRequest,
    responses((status = 201, body = DataEnvelope<Agent>),
        (status = 409, body = ErrorEnvelope, description = "an agent of that name exists"),
        (status = 422, body = ErrorEnvelope, description = "a malformed capability, named in `field`")))]
#[post("")]
pub async fn create(
    spine: web::Data<Spine>,
    caller: Caller,
    body: Json<CreateAgentRequest>,
) -> Result<HttpResponse, ApiError> {
    let agent = spine
        .execute(Create {
            actor: caller.0,
            request: body.into_inner(),
        })
        .await?;
    Ok(HttpResponse::Created().json(DataEnvelope::new(agent)))
}

/// The tenant's agents (deleted ones are left out).
#[utoipa::path(tag = "agents", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = ListEnvelope<Agent>)))]
#[get("")]
pub async fn list(
    spine: web::Data<Spine>,
    caller: Caller,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let page = spine
        .execute(List {
            actor: caller.0,
            limit: query.limit,
            cursor: query.cursor,
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// Verify a signed agent manifest against `/.well-known/jwks.json`.
#[utoipa::path(tag = "agents", security(("bearer" = [])), request_body = VerifyManifestRequest,
    responses((status = 200, body = DataEnvelope<ManifestVerification>)))]
#[post("/manifests/verify")]
pub async fn verify_manifest(
    spine: web::Data<Spine>,
    caller: Caller,
    body: Json<VerifyManifestRequest>,
) -> Result<HttpResponse, ApiError> {
    let verdict = spine
        .execute(VerifyManifest {
            actor: caller.0,
            request: body.into_inner(),
        })
        .await?;
    Ok(HttpResponse::Ok().json(DataEnvelope::new(verdict)))
}

#[utoipa::path(tag = "agents", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = DataEnvelope<Agent>), (status = 404, body = ErrorEnvelope)))]
#[get("/{id}")]
pub async fn get(spine: web::Data<Spine>, caller: Caller, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let agent = spine
        .execute(Get {
            actor: caller.0,
            id: id.into_inner(),
        })
        .await?;
    Ok(HttpResponse::Ok().json(DataEnvelope::new(agent)))
}

/// Change an agent. Its keys follow on every replica within a second.
#[utoipa::path(tag = "agents", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = UpdateAgentRequest,
    responses((status = 200, body = DataEnvelope<Agent>), (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
#[patch("/{id}")]
pub async fn update(
    spine: web::Data<Spine>,
    caller: Caller,
    id: web::Path<Uuid>,
    body: Json<UpdateAgentRequest>,
) -> Result<HttpResponse, ApiError> {
    let agent = spine
        .execute(Update {
            actor: caller.0,
            id: id.into_inner(),
            request: body.into_inner(),
        })
        .await?;
    Ok(HttpResponse::Ok().json(DataEnvelope::new(agent)))
}

/// Delete an agent (kept for audit) and revoke its keys.
#[utoipa::path(tag = "agents", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = DataEnvelope<Agent>), (status = 404, body = ErrorEnvelope)))]
#[delete("/{id}")]
pub async fn remove(spine: web::Data<Spine>, caller: Caller, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let agent = spine
        .execute(Delete {
            actor: caller.0,
            id: id.into_inner(),
        })
        .await?;
    Ok(HttpResponse::Ok().json(DataEnvelope::new(agent)))
}

/// Create a key bound to the agent (shown once): its calls are the agent's.
#[utoipa::path(tag = "agents", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = CreateAgentKeyRequest,
    responses((status = 201, body = DataEnvelope<CreatedAgentKey>), (status = 404, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope)))]
#[post("/{id}/api-keys")]
pub async fn create_key(
    spine: web::Data<Spine>,
    caller: Caller,
    id: web::Path<Uuid>,
    body: Json<CreateAgentKeyRequest>,
) -> Result<HttpResponse, ApiError> {
    let created = spine
        .execute(CreateKey {
            actor: caller.0,
            id: id.into_inner(),
            request: body.into_inner(),
        })
        .await?;
    Ok(HttpResponse::Created().json(DataEnvelope::new(created)))
}

/// The agent's keys (never the keys themselves).
#[utoipa::path(tag = "agents", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = DataEnvelope<Vec<ApiKey>>), (status = 404, body = ErrorEnvelope)))]
#[get("/{id}/api-keys")]
pub async fn list_keys(spine: web::Data<Spine>, caller: Caller, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let keys = spine
        .execute(ListKeys {
            actor: caller.0,
            id: id.into_inner(),
        })
        .await?;
    Ok(HttpResponse::Ok().json(DataEnvelope::new(keys)))
}

/// Sign a manifest of the agent's capabilities as resolved now (ES256, the manifest key).
#[utoipa::path(tag = "agents", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 201, body = DataEnvelope<AgentManifest>), (status = 404, body = ErrorEnvelope)))]
#[post("/{id}/manifests")]
pub async fn issue_manifest(
    spine: web::Data<Spine>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let manifest = spine
        .execute(IssueManifest {
            actor: caller.0,
            id: id.into_inner(),
        })
        .await?;
    Ok(HttpResponse::Created().json(DataEnvelope::new(manifest)))
}

/// The agent's manifests, newest first.
#[utoipa::path(tag = "agents", security(("bearer" = [])), params(("id" = Uuid, Path), PageQuery),
    responses((status = 200, body = DataEnvelope<Vec<AgentManifest>>), (status = 404, body = ErrorEnvelope)))]
#[get("/{id}/manifests")]
pub async fn list_manifests(
    spine: web::Data<Spine>,
    caller: Caller,
    id: web::Path<Uuid>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let manifests = spine
        .execute(ListManifests {
            actor: caller.0,
            id: id.into_inner(),
            limit: query.limit,
        })
        .await?;
    Ok(HttpResponse::Ok().json(DataEnvelope::new(manifests)))
}

/// The agent's latest manifest.
#[utoipa::path(tag = "agents", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = DataEnvelope<AgentManifest>), (status = 404, body = ErrorEnvelope)))]
#[get("/{id}/manifests/latest")]
pub async fn latest_manifest(
    spine: web::Data<Spine>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let manifest = spine
        .execute(GetManifest {
            actor: caller.0,
            id: id.into_inner(),
            version: None,
        })
        .await?;
    Ok(HttpResponse::Ok().json(DataEnvelope::new(manifest)))
}

/// One manifest of the agent by version.
#[utoipa::path(tag = "agents", security(("bearer" = [])), params(("id" = Uuid, Path), ("version" = i64, Path)),
    responses((status = 200, body = DataEnvelope<AgentManifest>), (status = 404, body = ErrorEnvelope)))]
#[get("/{id}/manifests/{version}")]
pub async fn get_manifest(
    spine: web::Data<Spine>,
    caller: Caller,
    path: web::Path<(Uuid, i64)>,
) -> Result<HttpResponse, ApiError> {
    let (id, version) = path.into_inner();
    let manifest = spine
        .execute(GetManifest {
            actor: caller.0,
            id,
            version: Some(version),
        })
        .await?;
    Ok(HttpResponse::Ok().json(DataEnvelope::new(manifest)))
}

/// Freeze the agent: every key of it is refused (423 `kill_switch_active`) on REST,
/// `/mcp` and `/v1`, on every replica within a second.
#[utoipa::path(tag = "agents", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = Option<FreezeRequest>,
    responses((status = 200, body = DataEnvelope<KillSwitchState>), (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope, description = "already frozen")))]
#[post("/{id}/freeze")]
pub async fn freeze(
    spine: web::Data<Spine>,
    caller: Caller,
    id: web::Path<Uuid>,
    body: OptionalJson<FreezeRequest>,
) -> Result<HttpResponse, ApiError> {
    let target = Target::Agent {
        tenant: None,
        agent: id.into_inner(),
    };
    change(&spine, caller, target, Action::Freeze, body.0).await
}

#[utoipa::path(tag = "agents", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = DataEnvelope<KillSwitchState>), (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope, description = "not frozen")))]
#[post("/{id}/unfreeze")]
pub async fn unfreeze(spine: web::Data<Spine>, caller: Caller, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let target = Target::Agent {
        tenant: None,
        agent: id.into_inner(),
    };
    change(&spine, caller, target, Action::Unfreeze, FreezeRequest::default()).await
}
