//! Agents: tenant-scoped identities whose **capabilities** select tools of the governed
//! catalog, with API keys bound to them, signed manifests of what they may call, and the
//! check every governed call of an agent passes.
//!
//! A capability is a selector over catalog names (`{server}.{tool}`, as
//! [`crate::mcp::gateway::base_name`] spells them): an exact name or a glob (`*` any run
//! of characters, `?` one), an optional risk ceiling (`max_risk`) and an optional
//! `requires_approval`. Capabilities are resolved at call time against the catalog, so a
//! tool added later that matches a glob is included once it is enabled, and a disabled or
//! quarantined tool never is (the catalog leaves those out).
//!
//! A **manifest-pinned** agent may call only tools whose current `tool_hash` is the one
//! in its latest manifest: a redefined tool stops for that agent until a new manifest is
//! issued.
//!
//! Everything that changes what an agent's keys may do (status, capabilities, pinning, a
//! new manifest of a pinned agent, deletion) moves the credential epoch, so every replica
//! drops its cached credentials and long-lived `/mcp/ws` sessions re-read their catalog
//! within the epoch poll interval.

use std::collections::HashMap;

use aos_drivers::{Conn, DriverError, agents as db, auth_epoch};
use aos_models::agent::{AgentChanges, AgentManifestRow, AgentRow};
use aos_models::{DbJson, DbTime, DbUuid};
use aos_types::{AgentId, AgentManifestId, AgentStatus, AuditEventType, SubjectKind, TenantId};
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;

use crate::error::{EngineError, EngineResult};
use crate::governance::audit::{self, Actor, Event};
use crate::mcp::manifest::{self, ManifestSigner, PublicJwk};
use crate::mcp::risk::RiskLevel;

/// The `typ` of an agent manifest's JWS header.
pub const MANIFEST_TYP: &str = "aos-agent-manifest+jwt";
/// At most this many capabilities per agent.
pub const MAX_CAPABILITIES: usize = 200;
/// Largest page a list may ask for.
pub const MAX_PAGE: u32 = 200;

/// One capability of an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capability {
    /// `{server}.{tool}`, exact or a glob (`*`, `?`).
    pub tool: String,
    /// The riskiest tool this capability admits; `None`: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_risk: Option<RiskLevel>,
    /// Calls through this capability wait for a human (the shipped policy rule).
    #[serde(default)]
    pub requires_approval: bool,
}

impl Capability {
    fn is_glob(&self) -> bool {
        self.tool.contains(['*', '?'])
    }

    /// Whether this capability admits the tool named `name` of risk `risk`.
    pub fn admits(&self, name: &str, risk: RiskLevel) -> bool {
        wildcard_match(&self.tool, name) && self.max_risk.is_none_or(|ceiling| risk <= ceiling)
    }
}

/// A capability as a client writes it: `max_risk` is text so an unknown level is a 422
/// naming the field, not a parse error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapabilityInput {
    pub tool: String,
    pub max_risk: Option<String>,
    pub requires_approval: bool,
}

/// `*` matches any run of characters (the dot too), `?` exactly one; everything else
/// itself. The classic linear-time two-pointer match with one backtrack point.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0_usize, 0_usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(c) if *c == '?' || Some(c) == t.get(ti) => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..).is_some_and(|rest| rest.iter().all(|c| *c == '*'))
}

fn selector_ok(tool: &str) -> bool {
    let Some((server, name)) = tool.split_once('.') else {
        return false;
    };
    let part_ok = |part: &str| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '*' | '?'))
    };
    // The tool part may hold dots only through a glob (`github.*`): names never do.
    part_ok(server) && (part_ok(name) || (name.contains('*') && name.split('.').all(part_ok)))
}

/// Validates capabilities as given; errors name the field (`capabilities[2].max_risk`).
pub fn parse_capabilities(given: &[CapabilityInput]) -> EngineResult<Vec<Capability>> {
    if given.len() > MAX_CAPABILITIES {
        return Err(EngineError::invalid(
            "capabilities",
            format!("at most {MAX_CAPABILITIES} capabilities"),
        ));
    }
    let mut out: Vec<Capability> = Vec::with_capacity(given.len());
    for (i, cap) in given.iter().enumerate() {
        let tool = cap.tool.trim();
        if tool.is_empty() || tool.chars().count() > 200 || !selector_ok(tool) {
            return Err(EngineError::invalid_at(
                format!("capabilities[{i}].tool"),
                "must be {server}.{tool}: letters, digits, _ and -, with * and ? as wildcards (e.g. github.* or jira.get_issue)",
            ));
        }
        let max_risk = match cap.max_risk.as_deref() {
            None => None,
            Some(text) => Some(RiskLevel::parse(&text.to_ascii_uppercase()).ok_or_else(|| {
                EngineError::invalid_at(
                    format!("capabilities[{i}].max_risk"),
                    "must be LOW, MEDIUM, HIGH or CRITICAL",
                )
            })?),
        };
        let parsed = Capability {
            tool: tool.to_owned(),
            max_risk,
            requires_approval: cap.requires_approval,
        };
        if !out.contains(&parsed) {
            out.push(parsed);
        }
    }
    Ok(out)
}

/// An agent, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub id: AgentId,
    pub tenant_id: TenantId,
    pub name: String,
    pub description: Option<String>,
    pub owner: Option<String>,
    pub status: AgentStatus,
    pub capabilities: Vec<Capability>,
    pub manifest_pinned: bool,
    pub created_by: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl From<AgentRow> for Agent {
    fn from(row: AgentRow) -> Self {
        let status = row.status();
        Self {
            id: row.id.into(),
            tenant_id: row.tenant_id.into(),
            name: row.name,
            description: row.description,
            owner: row.owner,
            status,
            // A stored set that does not decode grants nothing (never more).
            capabilities: serde_json::from_value(row.capabilities.0).unwrap_or_default(),
            manifest_pinned: row.manifest_pinned,
            created_by: row.created_by,
            created_at: row.created_at.get(),
            updated_at: row.updated_at.get(),
        }
    }
}

/// One tool in an agent manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestCapability {
    /// The catalog name (`{server}.{tool}`).
    pub name: String,
    pub tool_hash: String,
    pub risk: String,
}

/// The signed content of an agent manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestClaims {
    pub iss: String,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    pub issuer: String,
    /// Issued at, RFC 3339.
    pub issued_at: String,
    pub tenant_id: String,
    pub agent_id: String,
    pub version: i64,
    pub capabilities: Vec<ManifestCapability>,
}

/// A stored manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentManifest {
    pub id: AgentManifestId,
    pub agent_id: AgentId,
    pub version: i64,
    pub jws: String,
    pub claims: ManifestClaims,
    pub issued_by: String,
    pub issued_at: OffsetDateTime,
}

impl TryFrom<AgentManifestRow> for AgentManifest {
    type Error = EngineError;

    fn try_from(row: AgentManifestRow) -> Result<Self, Self::Error> {
        let claims = serde_json::from_value(row.payload.0)
            .map_err(|e| EngineError::Internal(format!("stored agent manifest does not decode: {e}")))?;
        Ok(Self {
            id: row.id.into(),
            agent_id: row.agent_id.into(),
            version: row.version,
            jws: row.jws,
            claims,
            issued_by: row.issued_by,
            issued_at: row.issued_at.get(),
        })
    }
}

/// What an agent may call right now: the agent and, when it is manifest-pinned, the tool
/// hashes of its latest manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub agent: Agent,
    /// `(version, name → tool_hash)` of the latest manifest, read only when pinned.
    pub pinned: Option<(i64, HashMap<String, String>)>,
}

/// What [`Grant::admit`] says of one tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit<'a> {
    /// Callable, through this capability.
    Granted(&'a Capability),
    /// No capability selects it.
    NotGranted,
    /// Selected, but the agent is pinned and the tool's definition is not the one in its
    /// latest manifest (or it has no manifest yet).
    ManifestMismatch,
}

impl Grant {
    /// The capability that admits the tool `name` (risk `risk`, definition `tool_hash`):
    /// an exact selector before any glob, else the first glob in order.
    pub fn admit(&self, name: &str, risk: RiskLevel, tool_hash: &str) -> Admit<'_> {
        let caps = &self.agent.capabilities;
        let found = caps
            .iter()
            .find(|c| !c.is_glob() && c.admits(name, risk))
            .or_else(|| caps.iter().find(|c| c.is_glob() && c.admits(name, risk)));
        let Some(cap) = found else {
            return Admit::NotGranted;
        };
        if self.agent.manifest_pinned {
            let pinned = self
                .pinned
                .as_ref()
                .and_then(|(_, tools)| tools.get(name))
                .is_some_and(|hash| hash == tool_hash);
            if !pinned {
                return Admit::ManifestMismatch;
            }
        }
        Admit::Granted(cap)
    }

    /// The manifest version pinned, if any.
    pub fn manifest_version(&self) -> Option<i64> {
        self.pinned.as_ref().map(|(v, _)| *v)
    }

    /// The `agent` of the policy input (the admitting capability is `capability`).
    pub fn policy_input(&self) -> serde_json::Value {
        json!({
            "id": self.agent.id.to_string(),
            "name": self.agent.name,
            "capabilities": self.agent.capabilities,
            "manifest_pinned": self.agent.manifest_pinned,
            "manifest_version": self.manifest_version(),
        })
    }
}

fn not_found(err: DriverError) -> EngineError {
    match err {
        DriverError::NotFound => EngineError::NotFound("agent"),
        other => other.into(),
    }
}

fn name_conflict(err: DriverError, name: &str) -> EngineError {
    match err {
        DriverError::Conflict(_) => EngineError::Conflict(format!("an agent named {name:?} already exists")),
        other => other.into(),
    }
}

fn check_text(field: &'static str, value: &str, max: usize) -> EngineResult<()> {
    if value.is_empty() || value.chars().count() > max || value.chars().any(char::is_control) {
        return Err(EngineError::invalid(
            field,
            format!("must be 1 to {max} characters without control characters"),
        ));
    }
    Ok(())
}

/// What a new agent should be.
#[derive(Debug, Clone, Default)]
pub struct NewAgent {
    pub name: String,
    pub description: Option<String>,
    pub owner: Option<String>,
    pub capabilities: Vec<CapabilityInput>,
    pub manifest_pinned: bool,
}

async fn record(
    conn: &mut Conn,
    tenant: TenantId,
    actor: &Actor,
    event_type: AuditEventType,
    agent: &Agent,
    details: serde_json::Value,
) -> EngineResult<()> {
    audit::append(
        conn,
        tenant.get(),
        actor,
        Event {
            event_type,
            subject_type: SubjectKind::Agent,
            subject_id: Some(agent.id.to_string()),
            decision: None,
            policy_revision: None,
            details,
        },
    )
    .await?;
    Ok(())
}

/// Creates an agent (audit `AGENT_CREATED`).
pub async fn create(conn: &mut Conn, tenant: TenantId, new: NewAgent, actor: &Actor) -> EngineResult<Agent> {
    let name = new.name.trim().to_owned();
    check_text("name", &name, 200)?;
    if let Some(d) = &new.description {
        check_text("description", d, 2000)?;
    }
    if let Some(o) = &new.owner {
        check_text("owner", o, 200)?;
    }
    let capabilities = parse_capabilities(&new.capabilities)?;
    crate::tenants::get(conn, tenant.get()).await?;
    let now = DbTime::now();
    let row = AgentRow {
        id: DbUuid::new_v7(),
        tenant_id: tenant.into(),
        name: name.clone(),
        description: new.description,
        owner: new.owner,
        status: AgentStatus::Active.as_str().into(),
        capabilities: DbJson(json!(capabilities)),
        manifest_pinned: new.manifest_pinned,
        created_by: actor.name(),
        created_at: now,
        updated_at: now,
    };
    let agent = Agent::from(db::insert(conn, &row).await.map_err(|e| name_conflict(e, &name))?);
    record(
        conn,
        tenant,
        actor,
        AuditEventType::AgentCreated,
        &agent,
        json!({"name": agent.name, "capabilities": agent.capabilities, "manifest_pinned": agent.manifest_pinned}),
    )
    .await?;
    Ok(agent)
}

/// A live (not deleted) agent of the tenant; `NotFound` otherwise.
pub async fn get(conn: &mut Conn, tenant: TenantId, id: AgentId) -> EngineResult<Agent> {
    let agent = Agent::from(db::get(conn, tenant, id).await.map_err(not_found)?);
    if agent.status == AgentStatus::Deleted {
        return Err(EngineError::NotFound("agent"));
    }
    Ok(agent)
}

/// A page of the tenant's live agents in creation order.
pub async fn list(
    conn: &mut Conn,
    tenant: TenantId,
    after: Option<(DbTime, DbUuid)>,
    limit: u32,
) -> EngineResult<(Vec<Agent>, Option<(DbTime, DbUuid)>)> {
    let limit = limit.clamp(1, MAX_PAGE);
    let rows = db::list(conn, tenant, after, i64::from(limit) + 1).await?;
    let (rows, next) = crate::paging::split(rows, limit, |r| (r.created_at, r.id));
    Ok((rows.into_iter().map(Agent::from).collect(), next))
}

/// A change to an agent; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct AgentUpdate {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub owner: Option<Option<String>>,
    pub capabilities: Option<Vec<CapabilityInput>>,
    /// `Active` or `Disabled` (deleting is [`delete`]).
    pub status: Option<AgentStatus>,
    pub manifest_pinned: Option<bool>,
}

/// Changes an agent (audit `AGENT_UPDATED`); what its keys may do changes on every
/// replica within the credential poll interval.
pub async fn update(
    conn: &mut Conn,
    tenant: TenantId,
    id: AgentId,
    change: AgentUpdate,
    actor: &Actor,
) -> EngineResult<Agent> {
    let current = get(conn, tenant, id).await?;
    let mut changes = AgentChanges::default();
    if let Some(name) = &change.name {
        let name = name.trim();
        check_text("name", name, 200)?;
        changes.name = Some(name.to_owned());
    }
    if let Some(description) = &change.description {
        if let Some(d) = description {
            check_text("description", d, 2000)?;
        }
        changes.description = Some(description.clone());
    }
    if let Some(owner) = &change.owner {
        if let Some(o) = owner {
            check_text("owner", o, 200)?;
        }
        changes.owner = Some(owner.clone());
    }
    if let Some(caps) = &change.capabilities {
        changes.capabilities = Some(DbJson(json!(parse_capabilities(caps)?)));
    }
    if let Some(status) = change.status {
        if status == AgentStatus::Deleted {
            return Err(EngineError::invalid(
                "status",
                "must be ACTIVE or DISABLED (DELETE removes an agent)",
            ));
        }
        changes.status = Some(status.as_str().to_owned());
    }
    changes.manifest_pinned = change.manifest_pinned;
    changes.updated_at = Some(DbTime::now());
    let name = changes.name.clone().unwrap_or_else(|| current.name.clone());
    let updated = Agent::from(
        db::update(conn, tenant, id, &changes)
            .await
            .map_err(|e| name_conflict(e, &name))?,
    );
    if updated.status != current.status
        || updated.capabilities != current.capabilities
        || updated.manifest_pinned != current.manifest_pinned
    {
        auth_epoch::bump(conn).await?;
    }
    record(
        conn,
        tenant,
        actor,
        AuditEventType::AgentUpdated,
        &updated,
        json!({"name": updated.name, "status": updated.status.as_str(), "capabilities": updated.capabilities,
               "manifest_pinned": updated.manifest_pinned}),
    )
    .await?;
    Ok(updated)
}

/// Soft-deletes an agent and revokes its keys (audit `AGENT_DELETED`).
pub async fn delete(conn: &mut Conn, tenant: TenantId, id: AgentId, actor: &Actor) -> EngineResult<Agent> {
    get(conn, tenant, id).await?;
    let now = DbTime::now();
    let changes = AgentChanges {
        status: Some(AgentStatus::Deleted.as_str().into()),
        updated_at: Some(now),
        ..AgentChanges::default()
    };
    let deleted = Agent::from(db::update(conn, tenant, id, &changes).await.map_err(not_found)?);
    let revoked = db::revoke_keys(conn, tenant, id, now).await?;
    auth_epoch::bump(conn).await?;
    record(
        conn,
        tenant,
        actor,
        AuditEventType::AgentDeleted,
        &deleted,
        json!({"name": deleted.name, "keys_revoked": revoked}),
    )
    .await?;
    Ok(deleted)
}

/// What the agent may call now, for a call or a catalog: refused unless the agent is
/// active (a disabled or deleted agent's keys are refused at authentication too; this
/// covers sessions opened before the change).
pub async fn grant(conn: &mut Conn, tenant: TenantId, id: AgentId) -> EngineResult<Grant> {
    let agent = Agent::from(db::get(conn, tenant, id).await.map_err(not_found)?);
    match agent.status {
        AgentStatus::Active => {}
        AgentStatus::Disabled => return Err(EngineError::Forbidden("the agent is disabled".into())),
        AgentStatus::Deleted => return Err(EngineError::Unauthenticated("the agent was deleted")),
    }
    let pinned = if agent.manifest_pinned {
        match db::manifests(conn, tenant, id, 1).await?.into_iter().next() {
            Some(row) => {
                let manifest = AgentManifest::try_from(row)?;
                let tools = manifest
                    .claims
                    .capabilities
                    .into_iter()
                    .map(|c| (c.name, c.tool_hash))
                    .collect();
                Some((manifest.version, tools))
            }
            None => None,
        }
    } else {
        None
    };
    Ok(Grant { agent, pinned })
}

/// [`grant`] through the credential cache: every change that alters a grant (status,
/// capabilities, pinning, a pinned agent's new manifest, deletion) moves the credential
/// epoch, which empties the cache on every replica within its poll interval.
pub async fn cached_grant(
    conn: &mut Conn,
    cache: &crate::auth::CredentialCache,
    tenant: TenantId,
    id: AgentId,
) -> EngineResult<std::sync::Arc<Grant>> {
    if let Some(grant) = cache.grant(tenant.get(), id.get()) {
        return Ok(grant);
    }
    let seen = cache.epoch();
    let loaded = std::sync::Arc::new(grant(conn, tenant, id).await?);
    cache.insert_grant(std::sync::Arc::clone(&loaded), seen);
    Ok(loaded)
}

/// Signs a manifest of the agent's capabilities resolved against the catalog now (audit
/// `AGENT_MANIFEST_ISSUED`). Version 1, 2, … per agent.
pub async fn issue_manifest(
    conn: &mut Conn,
    signer: &ManifestSigner,
    tenant: TenantId,
    id: AgentId,
    actor: &Actor,
) -> EngineResult<AgentManifest> {
    let agent = get(conn, tenant, id).await?;
    let unpinned = Grant {
        agent: Agent {
            manifest_pinned: false,
            ..agent.clone()
        },
        pinned: None,
    };
    let mut capabilities = Vec::new();
    for (server, tool) in aos_drivers::mcp::catalog(conn, tenant).await? {
        let name = crate::mcp::gateway::base_name(&server.name, &tool.name);
        if let Admit::Granted(_) = unpinned.admit(&name, tool.risk(), &tool.tool_hash) {
            capabilities.push(ManifestCapability {
                name,
                tool_hash: tool.tool_hash.clone(),
                risk: tool.risk().as_str().to_owned(),
            });
        }
    }
    capabilities.sort_by(|a, b| a.name.cmp(&b.name));
    capabilities.dedup_by(|a, b| a.name == b.name);
    let version = db::manifests(conn, tenant, id, 1)
        .await?
        .first()
        .map_or(1, |m| m.version + 1);
    let now = OffsetDateTime::now_utc();
    let claims = ManifestClaims {
        iss: signer.issuer().to_owned(),
        iat: now.unix_timestamp(),
        issuer: signer.issuer().to_owned(),
        issued_at: now
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|e| EngineError::Internal(e.to_string()))?,
        tenant_id: tenant.to_string(),
        agent_id: id.to_string(),
        version,
        capabilities,
    };
    let jws = signer
        .sign_claims(MANIFEST_TYP, &claims)
        .map_err(|e| EngineError::Internal(format!("signing the agent manifest failed: {e}")))?;
    let row = AgentManifestRow {
        id: DbUuid::new_v7(),
        tenant_id: tenant.into(),
        agent_id: id.into(),
        version,
        jws,
        payload: DbJson(json!(claims)),
        issued_by: actor.name(),
        issued_at: DbTime::from(now),
    };
    let stored = AgentManifest::try_from(db::insert_manifest(conn, &row).await.map_err(|e| match e {
        DriverError::Conflict(_) => EngineError::Conflict("a manifest was issued concurrently; retry".into()),
        other => other.into(),
    })?)?;
    if agent.manifest_pinned {
        auth_epoch::bump(conn).await?;
    }
    record(
        conn,
        tenant,
        actor,
        AuditEventType::AgentManifestIssued,
        &agent,
        json!({"version": version, "tools": stored.claims.capabilities.len()}),
    )
    .await?;
    Ok(stored)
}

/// The agent's manifests, newest first.
pub async fn manifests(conn: &mut Conn, tenant: TenantId, id: AgentId, limit: u32) -> EngineResult<Vec<AgentManifest>> {
    db::get(conn, tenant, id).await.map_err(not_found)?;
    db::manifests(conn, tenant, id, i64::from(limit.clamp(1, MAX_PAGE)))
        .await?
        .into_iter()
        .map(AgentManifest::try_from)
        .collect()
}

/// One manifest by version.
pub async fn manifest(conn: &mut Conn, tenant: TenantId, id: AgentId, version: i64) -> EngineResult<AgentManifest> {
    db::get(conn, tenant, id).await.map_err(not_found)?;
    let row = db::manifest(conn, tenant, id, version).await.map_err(|e| match e {
        DriverError::NotFound => EngineError::NotFound("agent manifest"),
        other => other.into(),
    })?;
    AgentManifest::try_from(row)
}

/// The agent's keys (revoked ones too).
pub async fn keys(conn: &mut Conn, tenant: TenantId, id: AgentId) -> EngineResult<Vec<crate::auth::keys::ApiKey>> {
    get(conn, tenant, id).await?;
    Ok(db::keys(conn, tenant, id).await?)
}

/// Verifies an agent manifest against the published keys: ES256, a published `kid`,
/// `typ` [`MANIFEST_TYP`], an intact signature.
pub fn verify_manifest(token: &str, keys: &[PublicJwk]) -> Result<ManifestClaims, String> {
    manifest::verify_claims(token, MANIFEST_TYP, keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_like_shell_globs() {
        assert!(wildcard_match("github.*", "github.create_issue"));
        assert!(wildcard_match("github.*", "github."));
        assert!(!wildcard_match("github.*", "gitlab.create_issue"));
        assert!(wildcard_match("*.read_*", "jira.read_ticket"));
        assert!(!wildcard_match("*.read_*", "jira.write_ticket"));
        assert!(wildcard_match("jira.get_?", "jira.get_x"));
        assert!(!wildcard_match("jira.get_?", "jira.get_xy"));
        assert!(wildcard_match("a*b*c", "a-b-x-c"));
        assert!(!wildcard_match("a*b*c", "a-b-x-d"));
        assert!(wildcard_match("exact.name", "exact.name"));
        assert!(!wildcard_match("exact.name", "exact.names"));
    }

    fn input(tool: &str, max_risk: Option<&str>) -> CapabilityInput {
        CapabilityInput {
            tool: tool.into(),
            max_risk: max_risk.map(str::to_owned),
            requires_approval: false,
        }
    }

    #[test]
    fn malformed_selectors_and_risks_name_their_field() {
        for bad in ["github", ".x", "x.", "git hub.x", "a.b/c", "a.b.c", ""] {
            match parse_capabilities(&[input("ok.tool", None), input(bad, None)]) {
                Err(EngineError::Invalid { field, .. }) => assert_eq!(field, "capabilities[1].tool", "{bad}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
        match parse_capabilities(&[input("a.b", Some("SEVERE"))]) {
            Err(EngineError::Invalid { field, .. }) => assert_eq!(field, "capabilities[0].max_risk"),
            other => panic!("{other:?}"),
        }
        let ok = parse_capabilities(&[input("github.*", Some("medium")), input("a.*.x*", None)]).unwrap();
        assert_eq!(ok[0].max_risk, Some(RiskLevel::Medium));
    }

    fn grant(caps: Vec<Capability>, pinned: Option<(i64, HashMap<String, String>)>) -> Grant {
        let now = OffsetDateTime::now_utc();
        Grant {
            agent: Agent {
                id: AgentId::new(),
                tenant_id: TenantId::new(),
                name: "bot".into(),
                description: None,
                owner: None,
                status: AgentStatus::Active,
                capabilities: caps,
                manifest_pinned: pinned.is_some(),
                created_by: "t".into(),
                created_at: now,
                updated_at: now,
            },
            pinned,
        }
    }

    #[test]
    fn exact_capabilities_win_over_globs_and_risk_ceilings_hold() {
        let caps = vec![
            Capability {
                tool: "github.*".into(),
                max_risk: Some(RiskLevel::Medium),
                requires_approval: false,
            },
            Capability {
                tool: "github.delete_repo".into(),
                max_risk: None,
                requires_approval: true,
            },
        ];
        let g = grant(caps, None);
        assert!(matches!(g.admit("github.list", RiskLevel::Low, "h"), Admit::Granted(c) if !c.requires_approval));
        assert_eq!(g.admit("github.merge", RiskLevel::High, "h"), Admit::NotGranted);
        assert!(
            matches!(g.admit("github.delete_repo", RiskLevel::Critical, "h"), Admit::Granted(c) if c.requires_approval)
        );
        assert_eq!(g.admit("jira.read", RiskLevel::Low, "h"), Admit::NotGranted);
    }

    #[test]
    fn pinned_agents_call_only_the_manifested_definition() {
        let caps = vec![Capability {
            tool: "*.*".into(),
            max_risk: None,
            requires_approval: false,
        }];
        let tools = HashMap::from([("s.read".to_owned(), "h1".to_owned())]);
        let g = grant(caps.clone(), Some((3, tools)));
        assert!(matches!(g.admit("s.read", RiskLevel::Low, "h1"), Admit::Granted(_)));
        assert_eq!(g.admit("s.read", RiskLevel::Low, "h2"), Admit::ManifestMismatch);
        assert_eq!(g.admit("s.other", RiskLevel::Low, "h1"), Admit::ManifestMismatch);
        let mut never = grant(caps, None);
        never.agent.manifest_pinned = true;
        assert_eq!(never.admit("s.read", RiskLevel::Low, "h1"), Admit::ManifestMismatch);
    }
}
