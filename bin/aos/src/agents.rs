//! `aos agents`: agents, their keys, their signed manifests, freezing them.

use std::io::Read;

use aos_client::schemas::agents::{
    Agent, AgentManifest, Capability, CreateAgentKeyRequest, CreateAgentRequest, CreatedAgentKey, ManifestVerification,
};
use aos_client::schemas::envelope::PageQuery;
use aos_client::schemas::killswitch::FreezeRequest;
use aos_client::{Client, all_pages};
use clap::Subcommand;
use uuid::Uuid;

use crate::output::{Output, fields, label, opt, table, ts};
use crate::{Failure, Outcome, keys_table};

#[derive(Subcommand)]
pub enum AgentsCommand {
    /// The tenant's agents
    List,
    /// Create an agent
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        description: Option<String>,
        /// Who answers for it (e.g. user:alice)
        #[arg(long)]
        owner: Option<String>,
        /// A capability (repeat it): TOOL[:MAX_RISK][:approval], e.g. github.*:MEDIUM or
        /// jira.delete_issue::approval
        #[arg(long = "capability")]
        capabilities: Vec<String>,
        /// Calls only the definitions of its latest manifest
        #[arg(long)]
        pinned: bool,
    },
    /// One agent, its capabilities and state
    Describe {
        agent_id: Uuid,
    },
    /// Delete an agent (kept for audit); its keys are revoked
    Delete {
        agent_id: Uuid,
    },
    /// The agent's keys
    #[command(subcommand)]
    Keys(AgentKeysCommand),
    /// Signed manifests of the agent's capabilities
    #[command(subcommand)]
    Manifest(ManifestCommand),
    /// Freeze the agent: every key of it is refused everywhere
    Freeze {
        agent_id: Uuid,
        #[arg(long)]
        reason: Option<String>,
    },
    Unfreeze {
        agent_id: Uuid,
    },
}

#[derive(Subcommand)]
pub enum AgentKeysCommand {
    List {
        agent_id: Uuid,
    },
    /// Create a key bound to the agent; its secret is printed once
    Create {
        agent_id: Uuid,
        #[arg(long)]
        name: String,
        /// mcp:invoke (default), mcp:read, proxy:invoke (repeat it)
        #[arg(long = "scope")]
        scopes: Vec<String>,
    },
}

#[derive(Subcommand)]
pub enum ManifestCommand {
    /// Sign a manifest of the agent's capabilities as resolved now
    Issue { agent_id: Uuid },
    /// The latest manifest, or one version
    Show {
        agent_id: Uuid,
        /// A version number (default: the latest)
        #[arg(value_name = "VERSION")]
        number: Option<i64>,
    },
    /// Verify a manifest (the JWS itself, a file holding it, or - for stdin)
    Verify { manifest: String },
}

/// `TOOL[:MAX_RISK][:approval]`.
fn capability(spec: &str) -> Result<Capability, Failure> {
    let mut parts = spec.split(':');
    let tool = parts.next().unwrap_or_default().to_owned();
    let max_risk = parts.next().filter(|r| !r.is_empty()).map(str::to_owned);
    let requires_approval = match parts.next() {
        None | Some("") => false,
        Some("approval") => true,
        Some(other) => {
            return Err(Failure::Usage(format!(
                "--capability {spec}: the third part is `approval`, not {other:?}"
            )));
        }
    };
    if parts.next().is_some() {
        return Err(Failure::Usage(format!(
            "--capability {spec}: TOOL[:MAX_RISK][:approval]"
        )));
    }
    Ok(Capability {
        tool,
        max_risk,
        requires_approval,
    })
}

fn capabilities_text(caps: &[Capability]) -> String {
    if caps.is_empty() {
        return "(none: the agent can call nothing)".to_owned();
    }
    caps.iter()
        .map(|c| {
            let mut text = c.tool.clone();
            if let Some(risk) = &c.max_risk {
                text.push_str(&format!(" (up to {risk})"));
            }
            if c.requires_approval {
                text.push_str(" [approval]");
            }
            text
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn agents_table(agents: &[Agent]) -> String {
    table(
        &["ID", "NAME", "STATUS", "FROZEN", "PINNED", "CAPABILITIES"],
        agents.iter().map(|a| {
            vec![
                a.id.to_string(),
                a.name.clone(),
                label(&a.status),
                a.frozen.to_string(),
                a.manifest_pinned.to_string(),
                capabilities_text(&a.capabilities),
            ]
        }),
    )
}

fn describe(a: &Agent) -> String {
    fields([
        ("id", a.id.to_string()),
        ("name", a.name.clone()),
        ("description", opt(a.description.as_ref())),
        ("owner", opt(a.owner.as_ref())),
        ("status", label(&a.status)),
        ("frozen", a.frozen.to_string()),
        ("manifest_pinned", a.manifest_pinned.to_string()),
        ("capabilities", capabilities_text(&a.capabilities)),
        ("created", format!("{} by {}", ts(&a.created_at), a.created_by)),
        ("updated", ts(&a.updated_at)),
    ])
}

fn manifest_text(m: &AgentManifest) -> String {
    let mut text = fields([
        ("agent", m.agent_id.to_string()),
        ("version", m.version.to_string()),
        ("kid", m.kid.clone()),
        ("issued", format!("{} by {}", ts(&m.issued_at), m.issued_by)),
    ]);
    text.push_str("\n\n");
    text.push_str(&table(
        &["TOOL", "RISK", "TOOL HASH"],
        m.payload
            .capabilities
            .iter()
            .map(|c| vec![c.name.clone(), c.risk.clone(), c.tool_hash.clone()]),
    ));
    text.push_str("\n\n");
    text.push_str(&m.manifest);
    text
}

fn read_manifest(arg: &str) -> Result<String, Failure> {
    let text = if arg == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Failure::Usage(format!("cannot read stdin: {e}")))?;
        text
    } else if std::path::Path::new(arg).is_file() {
        std::fs::read_to_string(arg).map_err(|e| Failure::Usage(format!("cannot read {arg}: {e}")))?
    } else {
        arg.to_owned()
    };
    Ok(text.trim().to_owned())
}

pub async fn run(client: &Client, out: Output, command: AgentsCommand) -> Outcome {
    match command {
        AgentsCommand::List => {
            let all = all_pages(|cursor| async move {
                client
                    .list_agents(&PageQuery {
                        limit: Some(200),
                        cursor,
                    })
                    .await
            })
            .await?;
            out.emit(&all, |a| agents_table(a));
        }
        AgentsCommand::Create {
            name,
            description,
            owner,
            capabilities,
            pinned,
        } => {
            let request = CreateAgentRequest {
                name,
                description,
                owner,
                capabilities: capabilities.iter().map(|c| capability(c)).collect::<Result<_, _>>()?,
                manifest_pinned: pinned,
            };
            let agent = client.create_agent(&request).await?;
            out.emit(&agent, describe);
        }
        AgentsCommand::Describe { agent_id } => {
            let agent = client.get_agent(agent_id).await?;
            out.emit(&agent, describe);
        }
        AgentsCommand::Delete { agent_id } => {
            let agent = client.delete_agent(agent_id).await?;
            out.emit(&agent, |a| {
                format!("agent {} ({}) deleted; its keys are revoked", a.name, a.id)
            });
        }
        AgentsCommand::Keys(AgentKeysCommand::List { agent_id }) => {
            let keys = client.list_agent_keys(agent_id).await?;
            out.emit(&keys, |k| keys_table(k));
        }
        AgentsCommand::Keys(AgentKeysCommand::Create { agent_id, name, scopes }) => {
            let request = CreateAgentKeyRequest {
                name,
                scopes: (!scopes.is_empty()).then_some(scopes),
                expires_at: None,
            };
            let created = client.create_agent_key(agent_id, &request).await?;
            out.emit(&created, |c: &CreatedAgentKey| {
                format!(
                    "{}\n\nkey: {}\n(shown once: store it now)",
                    keys_table(std::slice::from_ref(&c.api_key)),
                    c.key
                )
            });
        }
        AgentsCommand::Manifest(ManifestCommand::Issue { agent_id }) => {
            let manifest = client.issue_agent_manifest(agent_id).await?;
            out.emit(&manifest, manifest_text);
        }
        AgentsCommand::Manifest(ManifestCommand::Show { agent_id, number }) => {
            let manifest = client.get_agent_manifest(agent_id, number).await?;
            out.emit(&manifest, manifest_text);
        }
        AgentsCommand::Manifest(ManifestCommand::Verify { manifest }) => {
            let token = read_manifest(&manifest)?;
            let verdict = client.verify_agent_manifest(&token).await?;
            out.emit(&verdict, |v: &ManifestVerification| match (&v.payload, &v.reason) {
                (Some(p), _) => format!(
                    "valid: agent {} version {} ({} tools), issued {} by {}",
                    p.agent_id,
                    p.version,
                    p.capabilities.len(),
                    p.issued_at,
                    p.issuer
                ),
                (None, reason) => format!("INVALID: {}", opt(reason.as_ref())),
            });
            if !verdict.valid {
                return Err(Failure::Negative("the manifest does not verify".into()));
            }
        }
        AgentsCommand::Freeze { agent_id, reason } => {
            let state = client.freeze_agent(agent_id, &FreezeRequest { reason }).await?;
            out.emit(&state, |s| {
                format!("agent {} frozen ({})", s.entity_id, opt(s.reason.as_ref()))
            });
        }
        AgentsCommand::Unfreeze { agent_id } => {
            let state = client.unfreeze_agent(agent_id).await?;
            out.emit(&state, |s| format!("agent {} unfrozen", s.entity_id));
        }
    }
    Ok(())
}
