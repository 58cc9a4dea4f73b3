//! Agents: identities with capabilities over the governed catalog, their keys and their
//! signed manifests (`/api/v1/agents`).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::api_keys::ApiKey;

/// `ACTIVE` (its keys work), `DISABLED` (its keys are refused) or `DELETED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AgentStatus {
    Active,
    Disabled,
    Deleted,
}

/// One capability: a selector over catalog tool names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Capability {
    /// `{server}.{tool}` as the catalog names tools (`/api/v1/mcp/catalog`), exact or a
    /// glob: `*` any run of characters, `?` one (`github.*`, `*.read_*`).
    #[schema(min_length = 1, max_length = 200, example = "github.*")]
    pub tool: String,
    /// The riskiest tool this capability admits: `LOW`, `MEDIUM`, `HIGH` or `CRITICAL`.
    /// Absent: any risk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "MEDIUM")]
    pub max_risk: Option<String>,
    /// Calls through this capability wait for a human approval (the shipped policy rule).
    #[serde(default)]
    pub requires_approval: bool,
}

/// An agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Agent {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Who answers for the agent (free text, e.g. `user:alice`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    pub status: AgentStatus,
    pub capabilities: Vec<Capability>,
    /// The agent may call only tools whose definition is the one in its latest manifest.
    pub manifest_pinned: bool,
    /// Whether the kill switch has frozen the agent (all its keys, every surface).
    pub frozen: bool,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

/// `POST /api/v1/agents`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAgentRequest {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub owner: Option<String>,
    /// At most 200. An empty set grants nothing.
    #[serde(default)]
    pub capabilities: Vec<Capability>,
    #[serde(default)]
    pub manifest_pinned: bool,
}

/// `PATCH /api/v1/agents/{id}`: fields present are changed, absent ones kept;
/// `description` and `owner` set to `null` are cleared.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateAgentRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::wire::double_option"
    )]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::wire::double_option"
    )]
    #[schema(value_type = Option<String>)]
    pub owner: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Vec<Capability>>,
    /// `ACTIVE` or `DISABLED` (DELETE removes an agent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<AgentStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_pinned: Option<bool>,
}

/// `POST /api/v1/agents/{id}/api-keys`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAgentKeyRequest {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// Any of `mcp:invoke`, `mcp:read`, `proxy:invoke`; default `["mcp:invoke"]`.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<OffsetDateTime>,
}

/// An agent's key, shown once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CreatedAgentKey {
    pub agent_id: Uuid,
    pub api_key: ApiKey,
    /// The key. Store it now: AOS keeps only its hash.
    pub key: String,
}

/// One tool of a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ManifestCapability {
    pub name: String,
    pub tool_hash: String,
    pub risk: String,
}

/// The signed content of an agent manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AgentManifestClaims {
    pub agent_id: String,
    pub tenant_id: String,
    pub version: i64,
    pub capabilities: Vec<ManifestCapability>,
    /// RFC 3339.
    pub issued_at: String,
    pub issuer: String,
    pub iss: String,
    pub iat: i64,
}

/// A signed agent manifest: an ES256 JWS (`typ` `aos-agent-manifest+jwt`) verifiable with
/// `/.well-known/jwks.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AgentManifest {
    pub id: Uuid,
    pub agent_id: Uuid,
    pub version: i64,
    /// The compact JWS.
    pub manifest: String,
    pub kid: String,
    pub payload: AgentManifestClaims,
    pub issued_by: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub issued_at: OffsetDateTime,
}

/// `POST /api/v1/agents/manifests/verify`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyManifestRequest {
    /// The compact JWS.
    pub manifest: String,
}

/// The verdict on a manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ManifestVerification {
    pub valid: bool,
    /// The verified content (only when valid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<AgentManifestClaims>,
    /// Why not (only when invalid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
