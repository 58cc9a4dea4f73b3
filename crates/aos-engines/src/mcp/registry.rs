//! The registry's rules. Network steps (connect, list, ping) and database steps are
//! separate functions so that no transaction is ever held open across a call to a
//! customer's server; the spine sequences them.

use aos_types::{AuditEventType, SubjectKind};
use std::collections::{HashMap, HashSet};
use std::time::Instant;

use aos_drivers::{Conn, DriverError, mcp as db};
use aos_models::mcp::{
    McpInvocationRow, McpServerChanges, McpToolChanges, McpToolRow, NewMcpServer, NewMcpTool, RiskLevel, Transport,
};
use aos_models::{DbJson, DbTime, DbUuid};
use serde_json::Value;

use super::client::{Handshake, ListedTool, McpRuntime, McpSettings, Target};
use super::credentials::CredentialRef;
use super::manifest::{ManifestSigner, ManifestTool};
use super::{hash, poison, risk};
use crate::error::{EngineError, EngineResult};
use crate::governance::audit::{self, Actor, Event};
use crate::governance::incidents::{self, NewIncident};
use crate::governance::settings::GovernanceSettings;

pub use aos_models::mcp::{McpInvocationRow as Invocation, McpServerRow as Server, McpToolRow as Tool, ServerStatus};

const MAX_METADATA_BYTES: usize = 16 * 1024;

fn not_found(what: &'static str) -> impl Fn(DriverError) -> EngineError {
    move |e| match e {
        DriverError::NotFound => EngineError::NotFound(what),
        other => other.into(),
    }
}

/// A registration request.
#[derive(Debug, Clone)]
pub struct Registration {
    pub name: String,
    pub url: String,
    pub description: Option<String>,
    pub transport: Transport,
    pub credential_ref: Option<String>,
    pub metadata: Option<Value>,
    pub created_by: String,
    /// Budget for one tool call on this server (100 ms to 10 min); `None`: the default.
    pub call_timeout_ms: Option<u64>,
    /// Cap on one tool output (1 KiB to 64 MiB); `None`: the default.
    pub max_output_bytes: Option<u64>,
    /// Governed calls per minute to this server (1 to 100000), on each replica; `None`:
    /// no cap.
    pub max_calls_per_minute: Option<u32>,
}

/// Validates and stores a new server (PENDING). The same live URL twice is a conflict.
pub async fn register(
    conn: &mut Conn,
    runtime: &McpRuntime,
    tenant: uuid::Uuid,
    r: Registration,
) -> EngineResult<Server> {
    let name = r.name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(EngineError::invalid(
            "name",
            "must be 1 to 200 characters without control characters",
        ));
    }
    if r.description.as_deref().is_some_and(|d| d.chars().count() > 2000) {
        return Err(EngineError::invalid("description", "must be at most 2000 characters"));
    }
    let url = runtime.check_target(r.transport, r.url.trim())?;
    if let Some(reference) = &r.credential_ref {
        CredentialRef::parse(reference)?;
    }
    let metadata = r.metadata.unwrap_or_else(|| serde_json::json!({}));
    if !metadata.is_object() || metadata.to_string().len() > MAX_METADATA_BYTES {
        return Err(EngineError::invalid(
            "metadata",
            "must be a JSON object of at most 16 KiB",
        ));
    }
    if r.max_calls_per_minute.is_some_and(|n| !(1..=100_000).contains(&n)) {
        return Err(EngineError::invalid(
            "max_calls_per_minute",
            "must be between 1 and 100000",
        ));
    }
    if r.call_timeout_ms.is_some_and(|t| !(100..=600_000).contains(&t)) {
        return Err(EngineError::invalid(
            "call_timeout_ms",
            "must be between 100 and 600000",
        ));
    }
    if r.max_output_bytes
        .is_some_and(|b| !(1024..=64 * 1024 * 1024).contains(&b))
    {
        return Err(EngineError::invalid(
            "max_output_bytes",
            "must be between 1024 and 67108864",
        ));
    }
    if db::get_live_server_by_url(conn, tenant.into(), &url).await?.is_some() {
        return Err(EngineError::Conflict(format!("{url} is already registered")));
    }
    let now = DbTime::now();
    let new = NewMcpServer {
        id: DbUuid::new_v7(),
        tenant_id: tenant.into(),
        name: name.to_owned(),
        url: url.clone(),
        description: r.description,
        transport: r.transport.as_str().to_owned(),
        status: ServerStatus::Pending.as_str().to_owned(),
        credential_ref: r.credential_ref,
        metadata: DbJson(metadata),
        created_by: r.created_by,
        created_at: now,
        updated_at: now,
        call_timeout_ms: r.call_timeout_ms.and_then(|v| i64::try_from(v).ok()),
        max_output_bytes: r.max_output_bytes.and_then(|v| i64::try_from(v).ok()),
        max_calls_per_minute: r.max_calls_per_minute.and_then(|v| i32::try_from(v).ok()),
    };
    let server = db::insert_server(conn, &new).await.map_err(|e| match e {
        DriverError::Conflict(_) => EngineError::Conflict(format!("{url} is already registered")),
        other => other.into(),
    })?;
    Ok(server)
}

/// Audits a registry change made by `actor`.
pub async fn audit_change(
    conn: &mut Conn,
    tenant: uuid::Uuid,
    actor: &Actor,
    event_type: AuditEventType,
    subject_type: SubjectKind,
    subject_id: String,
    details: Value,
) -> EngineResult<()> {
    audit::append(
        conn,
        tenant,
        actor,
        Event {
            event_type,
            subject_type,
            subject_id: Some(subject_id),
            details,
            decision: None,
            policy_revision: None,
        },
    )
    .await?;
    Ok(())
}

pub async fn get_server(conn: &mut Conn, tenant: uuid::Uuid, id: uuid::Uuid) -> EngineResult<Server> {
    db::get_server(conn, tenant.into(), id.into())
        .await
        .map_err(not_found("MCP server"))
}

/// A server that is not deleted (for anything but audit reads).
pub async fn get_live_server(conn: &mut Conn, tenant: uuid::Uuid, id: uuid::Uuid) -> EngineResult<Server> {
    let server = get_server(conn, tenant, id).await?;
    if server.deleted_at.is_some() {
        return Err(EngineError::NotFound("MCP server"));
    }
    Ok(server)
}

pub async fn list_servers(
    conn: &mut Conn,
    tenant: uuid::Uuid,
    include_deleted: bool,
    after: Option<(DbTime, DbUuid)>,
    limit: u32,
) -> EngineResult<(Vec<Server>, Option<(DbTime, DbUuid)>, u64)> {
    let limit = limit.clamp(1, 200);
    let (rows, next) = crate::paging::split(
        db::list_servers(conn, tenant.into(), include_deleted, after, i64::from(limit) + 1).await?,
        limit,
        |r| (r.created_at, r.id),
    );
    let total = u64::try_from(db::count_servers(conn, tenant.into(), include_deleted).await?).unwrap_or(0);
    Ok((rows, next, total))
}

/// Soft-deletes a server: hidden from lists and the catalog, kept for audit.
pub async fn delete_server(conn: &mut Conn, tenant: uuid::Uuid, id: uuid::Uuid) -> EngineResult<Server> {
    get_live_server(conn, tenant, id).await?;
    Ok(db::soft_delete_server(conn, tenant.into(), id.into(), DbTime::now()).await?)
}

/// How to reach a stored server.
pub fn target(server: &Server) -> EngineResult<Target> {
    Ok(Target {
        tenant_id: server.tenant_id.into(),
        transport: server
            .transport()
            .ok_or_else(|| EngineError::Internal(format!("stored transport {:?} is unknown", server.transport)))?,
        url: server.url.clone(),
        credential_ref: server.credential_ref.clone(),
    })
}

/// What `tools/list` returned, fetched over the network (no database involved).
#[derive(Debug, Clone)]
pub struct Fetched {
    pub handshake: Handshake,
    pub tools: Vec<ListedTool>,
}

/// Connects, lists every tool, disconnects.
pub async fn fetch(runtime: &McpRuntime, target: &Target) -> EngineResult<Fetched> {
    let session = runtime.connect(target).await?;
    let listed = session.list_tools(runtime.settings.max_tools).await;
    let handshake = session.handshake.clone();
    session.close().await;
    Ok(Fetched {
        handshake,
        tools: listed?,
    })
}

/// What a discovery changed.
#[derive(Debug, Clone)]
pub struct DiscoveryReport {
    pub server: Server,
    pub capabilities: Vec<String>,
    pub found: usize,
    pub added: usize,
    pub updated: usize,
    pub removed: usize,
    /// Tools whose approved definition changed: quarantined.
    pub quarantined: usize,
    pub errors: Vec<String>,
}

fn valid_tool_name(name: &str) -> bool {
    (1..=128).contains(&name.chars().count()) && !name.chars().any(char::is_control)
}

/// Applies a fetched tool list: idempotent upsert by name, vanished tools marked
/// unavailable (never deleted), admin choices (risk set by an admin, enabled,
/// requires_approval) kept. New tools start enabled (their definition approved) only up
/// to the tenant's `auto_enable_max_risk`. A tool whose approved definition changed is
/// quarantined, with an incident and an audit event. Signs a manifest of the result.
pub async fn apply_discovery(
    conn: &mut Conn,
    tenant: uuid::Uuid,
    server_id: uuid::Uuid,
    fetched: Fetched,
    governance: &GovernanceSettings,
    signer: &ManifestSigner,
    actor: &Actor,
) -> EngineResult<DiscoveryReport> {
    let server = get_live_server(conn, tenant, server_id).await?;
    let existing: HashMap<String, McpToolRow> = db::tools_of_server(conn, server.tenant_id.into(), server.id.into())
        .await?
        .into_iter()
        .map(|t| (t.name.clone(), t))
        .collect();
    // The tenant's tools on its other servers, enabled or not: the detector's cross-tool checks
    // (shadowing, name collisions) compare against them.
    let others: Vec<(String, String)> = db::tool_names(conn, server.tenant_id.into())
        .await?
        .into_iter()
        .filter(|(id, _, _)| *id != server.id)
        .map(|(_, server, tool)| (server, tool))
        .collect();
    let neighbours = poison::Neighbours::new(
        &others
            .iter()
            .map(|(server, tool)| poison::Neighbour { server, tool })
            .collect::<Vec<_>>(),
    );
    let now = DbTime::now();
    let mut report_errors = Vec::new();
    let (mut added, mut updated, mut quarantined, mut seen) = (0, 0, 0, HashSet::new());
    for tool in &fetched.tools {
        if !valid_tool_name(&tool.name) {
            report_errors.push(format!(
                "skipped a tool with an invalid name ({} characters)",
                tool.name.chars().count()
            ));
            continue;
        }
        if !seen.insert(tool.name.clone()) {
            report_errors.push(format!("tool {:?} listed twice; kept the first", tool.name));
            continue;
        }
        let definition = poison::Definition {
            name: &tool.name,
            title: tool.title.as_deref(),
            description: tool.description.as_deref(),
            input_schema: &tool.input_schema,
            output_schema: tool.output_schema.as_ref(),
            annotations: tool.annotations.as_ref(),
        };
        let assessment = risk::assess_in(&definition, &neighbours);
        let flagged = !assessment.flags.is_empty();
        let tool_hash = hash::tool_hash(
            &tool.name,
            tool.description.as_deref(),
            &tool.input_schema,
            tool.output_schema.as_ref(),
            tool.annotations.as_ref(),
        );
        let reasons = DbJson(serde_json::json!(assessment.reasons));
        let flags = DbJson(serde_json::json!(assessment.flags));
        match existing.get(&tool.name) {
            Some(current) if current.tool_hash == tool_hash && current.available => {}
            Some(current) => {
                let auto = current.risk_source != "admin";
                // A poisoning flag outranks an admin's level: at least HIGH, whatever was set.
                let admin_level = RiskLevel::parse_lenient(&current.risk_level);
                let risk_level = if auto {
                    Some(assessment.level)
                } else if flagged && admin_level < RiskLevel::High {
                    Some(RiskLevel::High)
                } else {
                    None
                };
                // A rug pull: the definition an admin approved is not the one served now.
                let drifted = current.approved_hash.as_ref().is_some_and(|a| *a != tool_hash) && !current.quarantined;
                let changes = McpToolChanges {
                    title: Some(tool.title.clone()),
                    description: Some(tool.description.clone()),
                    input_schema: Some(DbJson(tool.input_schema.clone())),
                    output_schema: Some(tool.output_schema.clone().map(DbJson)),
                    annotations: Some(tool.annotations.clone().map(DbJson)),
                    risk_level: risk_level.map(|l| l.as_str().to_owned()),
                    risk_reasons: if auto {
                        Some(reasons)
                    } else if risk_level.is_some() {
                        Some(DbJson(serde_json::json!([
                            "set by an admin; raised to HIGH: the new definition is flagged as poisoned"
                        ])))
                    } else {
                        None
                    },
                    flags: Some(flags),
                    available: Some(true),
                    tool_hash: Some(tool_hash.clone()),
                    discovered_at: Some(now),
                    updated_at: Some(now),
                    enabled: drifted.then_some(false),
                    quarantined: drifted.then_some(true),
                    quarantine_reason: drifted.then(|| {
                        Some(format!(
                            "definition changed at rediscovery (approved {}, now {})",
                            current.approved_hash.as_deref().unwrap_or("-").get(..12).unwrap_or("-"),
                            tool_hash.get(..12).unwrap_or("-")
                        ))
                    }),
                    ..McpToolChanges::default()
                };
                let tool_row = db::update_tool(conn, server.tenant_id.into(), current.id.into(), &changes).await?;
                updated += 1;
                if drifted {
                    quarantined += 1;
                    quarantine(conn, tenant, actor, &server, current, &tool_row).await?;
                }
            }
            None => {
                let auto_enable = !flagged && assessment.level <= governance.auto_enable_max_risk;
                let new = NewMcpTool {
                    id: DbUuid::new_v7(),
                    tenant_id: server.tenant_id,
                    server_id: server.id,
                    name: tool.name.clone(),
                    title: tool.title.clone(),
                    description: tool.description.clone(),
                    input_schema: DbJson(tool.input_schema.clone()),
                    output_schema: tool.output_schema.clone().map(DbJson),
                    annotations: tool.annotations.clone().map(DbJson),
                    risk_level: assessment.level.as_str().to_owned(),
                    risk_source: "auto".into(),
                    risk_reasons: reasons,
                    // A definition carrying poisoning markers, or riskier than the tenant
                    // allows, starts disabled and unapproved.
                    enabled: auto_enable,
                    approved_hash: auto_enable.then(|| tool_hash.clone()),
                    quarantined: false,
                    quarantine_reason: None,
                    flags,
                    requires_approval: false,
                    available: true,
                    tool_hash,
                    discovered_at: now,
                    updated_at: now,
                };
                db::insert_tool(conn, &new).await?;
                added += 1;
            }
        }
    }
    let mut removed = 0;
    for (name, current) in &existing {
        if current.available && !seen.contains(name) {
            let changes = McpToolChanges {
                available: Some(false),
                updated_at: Some(now),
                ..McpToolChanges::default()
            };
            db::update_tool(conn, server.tenant_id.into(), current.id.into(), &changes).await?;
            removed += 1;
        }
    }
    let capabilities = fetched.handshake.capabilities;
    let capability_names = capabilities
        .as_object()
        .map(|o| o.iter().filter(|(_, v)| !v.is_null()).map(|(k, _)| k.clone()).collect())
        .unwrap_or_default();
    let capabilities_hash = hash::canonical_sha256(&capabilities);
    let manifest_tools = db::tools_of_server(conn, server.tenant_id.into(), server.id.into())
        .await?
        .into_iter()
        .filter(|t| t.available)
        .map(|t| ManifestTool {
            risk_level: t.risk().as_str().to_owned(),
            name: t.name,
            tool_hash: t.tool_hash,
        })
        .collect();
    let manifest = signer
        .sign(
            tenant,
            server_id,
            Some(capabilities_hash.clone()),
            manifest_tools,
            now.get(),
        )
        .map_err(|e| EngineError::Internal(format!("manifest signing: {e}")))?;
    let changes = McpServerChanges {
        status: Some(ServerStatus::Active.as_str().to_owned()),
        status_reason: Some(None),
        protocol_version: Some(Some(fetched.handshake.protocol_version)),
        manifest: Some(Some(manifest)),
        manifest_issued_at: Some(Some(now)),
        capabilities_hash: Some(Some(capabilities_hash)),
        capabilities: Some(Some(DbJson(capabilities))),
        discovered_at: Some(Some(now)),
        consecutive_failures: Some(0),
        tool_count: Some(i32::try_from(seen.len()).unwrap_or(i32::MAX)),
        updated_at: Some(now),
        ..McpServerChanges::default()
    };
    let server = db::update_server(conn, server.tenant_id.into(), server.id.into(), &changes).await?;
    Ok(DiscoveryReport {
        server,
        capabilities: capability_names,
        found: fetched.tools.len(),
        added,
        updated,
        removed,
        quarantined,
        errors: report_errors,
    })
}

/// Records a quarantine: an audit event and a TOOL_DRIFT incident.
async fn quarantine(
    conn: &mut Conn,
    tenant: uuid::Uuid,
    actor: &Actor,
    server: &Server,
    before: &Tool,
    after: &Tool,
) -> EngineResult<()> {
    tracing::warn!(tool_id = %after.id, tool = %after.name, "tool definition changed; quarantined");
    audit::append(
        conn,
        tenant,
        actor,
        Event {
            event_type: AuditEventType::ToolQuarantined,
            subject_type: SubjectKind::McpTool,
            subject_id: Some(after.id.to_string()),
            decision: Some("quarantined".into()),
            details: serde_json::json!({"server_id": server.id.to_string(), "tool": after.name,
                "approved_hash": before.approved_hash, "new_hash": after.tool_hash}),
            policy_revision: None,
        },
    )
    .await?;
    incidents::open(
        conn,
        tenant,
        actor,
        NewIncident {
            kind: incidents::TOOL_DRIFT,
            severity: before.risk().max(after.risk()),
            title: format!(
                "tool {} on {} changed its definition; quarantined",
                after.name, server.name
            ),
            details: serde_json::json!({"approved_hash": before.approved_hash, "new_hash": after.tool_hash,
                "description_changed": before.description != after.description,
                "input_schema_changed": before.input_schema != after.input_schema,
                "annotations_changed": before.annotations != after.annotations}),
            server_id: Some(server.id.into()),
            tool_id: Some(after.id.into()),
            invocation_id: None,
        },
    )
    .await?;
    Ok(())
}

/// The outcome of one liveness probe (network only).
#[derive(Debug, Clone)]
pub struct Probe {
    pub ok: bool,
    pub latency_ms: i64,
    pub error: Option<String>,
    pub protocol_version: Option<String>,
}

/// Connects and pings; failures are the answer, not an error.
pub async fn probe(runtime: &McpRuntime, target: &Target) -> Probe {
    let started = Instant::now();
    let result = async {
        let session = runtime.connect(target).await?;
        let version = session.handshake.protocol_version.clone();
        let pinged = session.ping().await;
        session.close().await;
        pinged.map(|()| version)
    }
    .await;
    let latency_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    match result {
        Ok(version) => Probe {
            ok: true,
            latency_ms,
            error: None,
            protocol_version: Some(version),
        },
        Err(e) => Probe {
            ok: false,
            latency_ms,
            error: Some(e.to_string()),
            protocol_version: None,
        },
    }
}

/// Moves a server's status after a probe: slow → DEGRADED; a failure → DEGRADED, then
/// OFFLINE after `offline_after_failures` in a row; success → ACTIVE. The reason is kept.
pub async fn apply_probe(
    conn: &mut Conn,
    settings: &McpSettings,
    tenant: uuid::Uuid,
    server_id: uuid::Uuid,
    probe: &Probe,
) -> EngineResult<Server> {
    let server = get_live_server(conn, tenant, server_id).await?;
    let now = DbTime::now();
    let (status, reason, failures) = if probe.ok {
        if probe.latency_ms > i64::try_from(settings.slow_ms).unwrap_or(i64::MAX) {
            (
                ServerStatus::Degraded,
                Some(format!("slow: {} ms", probe.latency_ms)),
                0,
            )
        } else {
            (ServerStatus::Active, None, 0)
        }
    } else {
        let failures = server.consecutive_failures.saturating_add(1);
        let status = if failures >= settings.offline_after_failures {
            ServerStatus::Offline
        } else {
            ServerStatus::Degraded
        };
        (status, probe.error.clone(), failures)
    };
    let changes = McpServerChanges {
        status: Some(status.as_str().to_owned()),
        status_reason: Some(reason),
        consecutive_failures: Some(failures),
        last_health_check_at: Some(Some(now)),
        last_latency_ms: Some(Some(probe.latency_ms)),
        updated_at: Some(now),
        ..McpServerChanges::default()
    };
    Ok(db::update_server(conn, server.tenant_id.into(), server.id.into(), &changes).await?)
}

/// Records a failed discovery on the server (as a failed probe would).
pub async fn record_unreachable(
    conn: &mut Conn,
    settings: &McpSettings,
    tenant: uuid::Uuid,
    server_id: uuid::Uuid,
    error: &str,
) -> EngineResult<Server> {
    let probe = Probe {
        ok: false,
        latency_ms: 0,
        error: Some(error.to_owned()),
        protocol_version: None,
    };
    apply_probe(conn, settings, tenant, server_id, &probe).await
}

/// Servers of every tenant due for a health check (platform scheduler).
pub async fn due_for_health(conn: &mut Conn, older_than: std::time::Duration, limit: i64) -> EngineResult<Vec<Server>> {
    let cutoff = time::OffsetDateTime::now_utc() - older_than;
    Ok(db::servers_due_for_health(conn, DbTime::from(cutoff), limit).await?)
}

// ---- tools -------------------------------------------------------------------------------

pub async fn list_tools(
    conn: &mut Conn,
    tenant: uuid::Uuid,
    server_id: uuid::Uuid,
    include_unavailable: bool,
) -> EngineResult<Vec<Tool>> {
    let server = get_server(conn, tenant, server_id).await?;
    let tools = db::tools_of_server(conn, server.tenant_id.into(), server.id.into()).await?;
    Ok(tools
        .into_iter()
        .filter(|t| include_unavailable || t.available)
        .collect())
}

pub async fn get_tool(
    conn: &mut Conn,
    tenant: uuid::Uuid,
    server_id: uuid::Uuid,
    tool_id: uuid::Uuid,
) -> EngineResult<Tool> {
    db::get_tool(conn, tenant.into(), server_id.into(), tool_id.into())
        .await
        .map_err(not_found("MCP tool"))
}

/// Enables or disables a tool (an admin choice kept across rediscovery). Enabling
/// approves (pins) the tool's current definition and lifts a quarantine.
pub async fn set_enabled(
    conn: &mut Conn,
    tenant: uuid::Uuid,
    server_id: uuid::Uuid,
    tool_id: uuid::Uuid,
    enabled: bool,
    actor: &Actor,
) -> EngineResult<Tool> {
    get_live_server(conn, tenant, server_id).await?;
    let tool = get_tool(conn, tenant, server_id, tool_id).await?;
    let changes = McpToolChanges {
        enabled: Some(enabled),
        approved_hash: enabled.then(|| Some(tool.tool_hash.clone())),
        quarantined: enabled.then_some(false),
        quarantine_reason: enabled.then_some(None),
        updated_at: Some(DbTime::now()),
        ..McpToolChanges::default()
    };
    let updated = db::update_tool(conn, tool.tenant_id.into(), tool.id.into(), &changes).await?;
    let flags = tool.flags.0.as_array().map_or(0, Vec::len);
    let event_type = match (
        enabled,
        flags > 0 || tool.quarantined || (tool.approved_hash.is_some() && !tool.pinned()),
    ) {
        (true, true) => AuditEventType::ToolDefinitionApproved,
        (true, false) => AuditEventType::ToolEnabled,
        (false, _) => AuditEventType::ToolDisabled,
    };
    audit_change(
        conn,
        tenant,
        actor,
        event_type,
        SubjectKind::McpTool,
        tool.id.to_string(),
        serde_json::json!({"server_id": server_id.to_string(), "tool": tool.name, "tool_hash": tool.tool_hash,
                           "poisoning_flags": tool.flags.0}),
    )
    .await?;
    Ok(updated)
}

/// An admin's risk decision for a tool.
#[derive(Debug, Clone, Copy)]
pub struct RiskChoice {
    pub level: RiskLevel,
    /// `None` leaves the tool's `requires_approval` as it is.
    pub requires_approval: Option<bool>,
}

/// Sets a tool's risk level (and optionally whether it needs approval) as an explicit
/// admin choice: rediscovery no longer recomputes it.
pub async fn set_risk(
    conn: &mut Conn,
    tenant: uuid::Uuid,
    (server_id, tool_id): (uuid::Uuid, uuid::Uuid),
    choice: RiskChoice,
    actor: &Actor,
) -> EngineResult<Tool> {
    let RiskChoice {
        level,
        requires_approval,
    } = choice;
    let by = actor.name();
    get_live_server(conn, tenant, server_id).await?;
    let tool = get_tool(conn, tenant, server_id, tool_id).await?;
    // A definition flagged as poisoned stays at least HIGH whatever an admin sets; using
    // it takes an explicit approval (enabling it), which the audit chain records.
    let flagged = tool.flags.0.as_array().is_some_and(|f| !f.is_empty());
    let (level, why) = if flagged && level < RiskLevel::High {
        (
            RiskLevel::High,
            format!(
                "set by {by} as {}; kept at HIGH: the definition is flagged as poisoned",
                level.as_str()
            ),
        )
    } else {
        (level, format!("set by {by}"))
    };
    let changes = McpToolChanges {
        risk_level: Some(level.as_str().to_owned()),
        risk_source: Some("admin".into()),
        risk_reasons: Some(DbJson(serde_json::json!([why]))),
        requires_approval,
        updated_at: Some(DbTime::now()),
        ..McpToolChanges::default()
    };
    let updated = db::update_tool(conn, tool.tenant_id.into(), tool.id.into(), &changes).await?;
    audit_change(
        conn,
        tenant,
        actor,
        AuditEventType::ToolRiskChanged,
        SubjectKind::McpTool,
        tool.id.to_string(),
        serde_json::json!({"from": tool.risk_level, "to": level.as_str(),
                           "requires_approval": updated.requires_approval}),
    )
    .await?;
    Ok(updated)
}

/// The newest invocations of a server (1 to 100).
pub async fn invocations(
    conn: &mut Conn,
    tenant: uuid::Uuid,
    server_id: uuid::Uuid,
    limit: u32,
) -> EngineResult<Vec<McpInvocationRow>> {
    if !(1..=100).contains(&limit) {
        return Err(EngineError::invalid("limit", "must be between 1 and 100"));
    }
    let server = get_server(conn, tenant, server_id).await?;
    Ok(db::invocations_of_server(conn, server.tenant_id.into(), server.id.into(), i64::from(limit)).await?)
}

/// The server a tool of `tenant` belongs to.
pub async fn server_of_tool(conn: &mut Conn, tenant: uuid::Uuid, tool_id: uuid::Uuid) -> EngineResult<uuid::Uuid> {
    let tool = db::get_tool_by_id(conn, tenant.into(), tool_id.into())
        .await
        .map_err(not_found("MCP tool"))?;
    Ok(tool.server_id.into())
}
