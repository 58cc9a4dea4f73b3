//! `aos`: the operator CLI. It composes the SDK (`aos-client`) with argument parsing and
//! output; every request goes through the public HTTP API.
//!
//! Exit codes: 0 success; 1 the server refused the request (validation, conflict, rate
//! limit); 2 usage or configuration error; 3 authentication or authorisation failure
//! (401/403); 4 not found; 5 server error or AOS unreachable; 6 the command ran but its
//! outcome is negative (a tool call that did not succeed, an invalid audit chain, an
//! unhealthy server).

mod agents;
mod config;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use aos_client::schemas::api_keys::{ApiKey, CreateApiKeyRequest, CreatedApiKey};
use aos_client::schemas::envelope::PageQuery;
use aos_client::schemas::governance::{
    Approval, ApprovalDecision, ApprovalStatus, AuditEvent, DecideApprovalRequest, Incident, InvocationResult,
    InvocationStatus, InvokeToolRequest, ListApprovalsQuery, ListAuditQuery, ListIncidentsQuery,
    ResolveIncidentRequest,
};
use aos_client::schemas::killswitch::{FreezeRequest, KillSwitchOverview, KillSwitchState};
use aos_client::schemas::mcp::{
    McpHealth, McpInvocation, McpServer, McpTool, McpTransport, RegisterMcpServerRequest, RiskLevel, SetToolRiskRequest,
};
use aos_client::schemas::tenants::{CreateTenantRequest, Tenant, TenantStatus, UpdateTenantRequest};
use aos_client::{Client, Error, all_pages};
use clap::{Args, Parser, Subcommand, ValueEnum};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use secrecy::SecretString;
use uuid::Uuid;

use crate::output::{Output, fields, label, opt, opt_ts, table, ts};

/// Operate AOS from the terminal: MCP servers and tools, governed calls, approvals,
/// the audit chain, tenants and keys.
#[derive(Parser)]
#[command(name = "aos", version, propagate_version = true, max_term_width = 100)]
#[command(
    after_help = "Exit codes: 0 ok, 1 refused, 2 usage, 3 auth, 4 not found, 5 server error, 6 negative outcome."
)]
struct Cli {
    /// AOS base URL [default: the config file's `url`, else http://127.0.0.1:8080]
    #[arg(long = "aos-url", value_name = "URL", env = "AOS_URL", global = true)]
    aos_url: Option<String>,
    /// API key (or operator token). Prefer AOS_API_KEY or the config file: a flag is visible to
    /// other users in the process list.
    #[arg(long, env = "AOS_API_KEY", global = true, hide_env_values = true)]
    api_key: Option<SecretString>,
    /// Config file with `url`, `api_key` or `api_key_file`, `timeout_secs`
    /// [default: ~/.config/aos/config.toml if it exists]
    // Not AOS_CONFIG: that is the server's, and a shell set up for the server would hand
    // the CLI a file it cannot read.
    #[arg(long, env = "AOS_CLI_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Seconds one request may take [default: 60]
    #[arg(long, global = true, value_parser = clap::value_parser!(u64).range(1..=3600))]
    timeout: Option<u64>,
    /// Print the API's JSON instead of tables (stable, for scripts)
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Who AOS thinks you are: tenant, actor, scopes
    Whoami,
    /// MCP servers, their tools, and governed calls
    #[command(subcommand)]
    Mcp(McpCommand),
    /// Agents: identities with capabilities over the governed catalog
    #[command(subcommand)]
    Agents(agents::AgentsCommand),
    /// Approval requests: list, show, approve, deny
    #[command(subcommand)]
    Approvals(ApprovalsCommand),
    /// The tenant's tamper-evident audit chain
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Incidents opened by failures, timeouts, policy errors and drift
    #[command(subcommand)]
    Incidents(IncidentsCommand),
    /// Freeze or unfreeze a tenant or one API key; state and history
    #[command(subcommand)]
    Killswitch(KillswitchCommand),
    /// API keys of your tenant (or, with --tenant and the operator token, of any tenant)
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Tenants (operator token)
    #[command(subcommand)]
    Tenants(TenantsCommand),
}

#[derive(Subcommand)]
enum McpCommand {
    /// List the tenant's MCP servers
    List {
        /// Include disabled (soft-deleted) servers
        #[arg(long)]
        all: bool,
    },
    /// Register a server (and discover its tools unless --no-discover)
    Register(RegisterArgs),
    /// Show one server
    Describe { server_id: Uuid },
    /// Discover (or rediscover) a server's tools
    Discover { server_id: Uuid },
    /// Check the health of the given servers, or of every server
    Health { server_ids: Vec<Uuid> },
    /// List a server's tools
    Tools {
        server_id: Uuid,
        /// Include tools the server no longer offers
        #[arg(long)]
        all: bool,
    },
    /// Disable (soft-delete) a server
    Disable { server_id: Uuid },
    /// A server's latest tool calls, newest first
    Invocations {
        server_id: Uuid,
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=500))]
        limit: Option<u32>,
    },
    /// Enable or disable a tool, or set its risk level
    #[command(subcommand)]
    Tool(ToolCommand),
    /// Call a tool through the governed pipeline
    Invoke(InvokeArgs),
}

#[derive(Args)]
struct RegisterArgs {
    #[arg(long)]
    name: String,
    /// `https://...` (HTTP, SSE) or `stdio://NAME`
    #[arg(long)]
    url: String,
    #[arg(long, value_enum, default_value_t = TransportArg::Http)]
    transport: TransportArg,
    #[arg(long)]
    description: Option<String>,
    /// `env://NAME`, `file:///path` or `vault://mount/path#field`
    #[arg(long)]
    credential_ref: Option<String>,
    /// Register only; discover later with `aos mcp discover`
    #[arg(long)]
    no_discover: bool,
    #[arg(long)]
    call_timeout_ms: Option<u64>,
    #[arg(long)]
    max_output_bytes: Option<u64>,
    /// Cap on governed calls per minute to this server (per replica)
    #[arg(long)]
    max_calls_per_minute: Option<u32>,
}

#[derive(Args)]
struct InvokeArgs {
    tool_id: Uuid,
    /// The tool's arguments as a JSON object
    #[arg(long, default_value = "{}", conflicts_with = "input_file")]
    input: String,
    /// Read the arguments from a file (`-` for standard input)
    #[arg(long)]
    input_file: Option<PathBuf>,
    #[arg(long)]
    run_id: Option<String>,
    #[arg(long)]
    trace_id: Option<String>,
}

#[derive(Subcommand)]
enum ToolCommand {
    Enable {
        tool_id: Uuid,
    },
    Disable {
        tool_id: Uuid,
    },
    /// Set the risk level (kept across rediscovery)
    Risk {
        tool_id: Uuid,
        #[arg(long, value_enum)]
        level: RiskArg,
        /// Whether every call needs an approval
        #[arg(long)]
        requires_approval: Option<bool>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum RiskArg {
    Low,
    Medium,
    High,
    Critical,
}

impl From<RiskArg> for RiskLevel {
    fn from(value: RiskArg) -> Self {
        match value {
            RiskArg::Low => Self::Low,
            RiskArg::Medium => Self::Medium,
            RiskArg::High => Self::High,
            RiskArg::Critical => Self::Critical,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum TransportArg {
    Http,
    Sse,
    Stdio,
}

impl From<TransportArg> for McpTransport {
    fn from(value: TransportArg) -> Self {
        match value {
            TransportArg::Http => Self::Http,
            TransportArg::Sse => Self::Sse,
            TransportArg::Stdio => Self::Stdio,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum ApprovalStatusArg {
    Pending,
    Approved,
    Denied,
    Expired,
}

impl From<ApprovalStatusArg> for ApprovalStatus {
    fn from(value: ApprovalStatusArg) -> Self {
        match value {
            ApprovalStatusArg::Pending => Self::Pending,
            ApprovalStatusArg::Approved => Self::Approved,
            ApprovalStatusArg::Denied => Self::Denied,
            ApprovalStatusArg::Expired => Self::Expired,
        }
    }
}

#[derive(Subcommand)]
enum ApprovalsCommand {
    /// List approvals (all of them, oldest first; --status pending for the queue)
    List {
        #[arg(long, value_enum)]
        status: Option<ApprovalStatusArg>,
    },
    Show {
        approval_id: Uuid,
    },
    /// Approve; a gated tool call runs now, exactly once
    Approve {
        approval_id: Uuid,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Deny; a gated tool call becomes BLOCKED
    Deny {
        approval_id: Uuid,
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Recompute the audit chain on the server (exit 6 if it does not verify)
    Verify,
    /// The latest events, in chain order
    Events {
        #[arg(long = "type")]
        event_type: Option<String>,
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=500))]
        limit: u32,
    },
}

#[derive(Subcommand)]
enum IncidentsCommand {
    List {
        /// OPEN or RESOLVED
        #[arg(long)]
        status: Option<String>,
    },
    Show {
        incident_id: Uuid,
    },
    Resolve {
        incident_id: Uuid,
        #[arg(long)]
        resolution: Option<String>,
    },
}

#[derive(Subcommand)]
enum KillswitchCommand {
    /// The tenant's state and history (the operator passes --tenant)
    Status {
        #[arg(long)]
        tenant: Option<Uuid>,
    },
    /// Freeze a tenant or a key: its governed calls are refused at once
    Freeze {
        #[command(flatten)]
        target: KillTarget,
        #[arg(long)]
        reason: Option<String>,
    },
    Unfreeze {
        #[command(flatten)]
        target: KillTarget,
    },
}

#[derive(Args)]
#[group(required = true, multiple = false)]
struct KillTarget {
    #[arg(long)]
    tenant: Option<Uuid>,
    #[arg(long)]
    key: Option<Uuid>,
}

#[derive(Subcommand)]
enum KeysCommand {
    List {
        /// Another tenant's keys (operator token)
        #[arg(long)]
        tenant: Option<Uuid>,
    },
    /// Create a key; its secret is printed once
    Create {
        #[arg(long)]
        name: String,
        /// A scope (repeat it): mcp:read, mcp:admin, mcp:invoke, approvals:decide, ...
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// Create it in this tenant (operator token)
        #[arg(long)]
        tenant: Option<Uuid>,
    },
    Revoke {
        key_id: Uuid,
        /// Revoke as the operator
        #[arg(long)]
        admin: bool,
    },
}

#[derive(Subcommand)]
enum TenantsCommand {
    List,
    Create {
        #[arg(long)]
        name: String,
    },
    Show {
        tenant_id: Uuid,
    },
    /// Suspend: the tenant's credentials are refused until reactivated
    Suspend {
        tenant_id: Uuid,
    },
    /// Reactivate a suspended tenant
    Activate {
        tenant_id: Uuid,
    },
    /// Terminate (final)
    Terminate {
        tenant_id: Uuid,
    },
}

/// Why a command failed, and so its exit code.
enum Failure {
    Usage(String),
    Client(Error),
    Negative(String),
}

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        Self::Client(err)
    }
}

impl Failure {
    fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => 2,
            Self::Negative(_) => 6,
            Self::Client(err) => match err {
                Error::Config(_) => 2,
                Error::Transport(_) | Error::Decode { .. } => 5,
                _ => match err.status() {
                    Some(401 | 403) => 3,
                    Some(404) => 4,
                    Some(status) if status >= 500 => 5,
                    _ => 1,
                },
            },
        }
    }

    fn message(&self) -> String {
        match self {
            Self::Usage(msg) | Self::Negative(msg) => msg.clone(),
            Self::Client(err) => err.to_string(),
        }
    }
}

type Outcome = Result<(), Failure>;

/// A spinner on stderr while `work` runs (drawn only on a terminal).
async fn with_spinner<T>(message: &str, work: impl Future<Output = T>) -> T {
    let spinner = ProgressBar::new_spinner().with_message(message.to_owned());
    spinner.enable_steady_tick(Duration::from_millis(100));
    let result = work.await;
    spinner.finish_and_clear();
    result
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start: {err}");
            return ExitCode::from(5);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {}", failure.message());
            ExitCode::from(failure.exit_code())
        }
    }
}

async fn run(cli: Cli) -> Outcome {
    let resolved = config::resolve(cli.aos_url, cli.api_key, cli.config, cli.timeout).map_err(Failure::Usage)?;
    let mut builder = Client::builder(resolved.url).timeout(resolved.timeout);
    match resolved.api_key {
        Some(key) => builder = builder.api_key(key),
        None => {
            return Err(Failure::Usage(
                "no API key: set AOS_API_KEY, pass --api-key, or put api_key_file in the config file".to_owned(),
            ));
        }
    }
    let client = builder.build()?;
    let out = Output { json: cli.json };
    match cli.command {
        Command::Whoami => whoami(&client, out).await,
        Command::Mcp(command) => mcp(&client, out, command).await,
        Command::Agents(command) => agents::run(&client, out, command).await,
        Command::Approvals(command) => approvals(&client, out, command).await,
        Command::Audit(command) => audit(&client, out, command).await,
        Command::Incidents(command) => incidents(&client, out, command).await,
        Command::Killswitch(command) => killswitch(&client, out, command).await,
        Command::Keys(command) => keys(&client, out, command).await,
        Command::Tenants(command) => tenants(&client, out, command).await,
    }
}

async fn whoami(client: &Client, out: Output) -> Outcome {
    let context = client.session_context().await?;
    out.emit(&context, |c| {
        fields([
            ("auth_type", label(&c.auth_type)),
            ("tenant", opt(c.tenant_id)),
            ("actor", c.actor_id.clone()),
            ("scopes", c.scopes.join(" ")),
            ("roles", c.roles.join(" ")),
            (
                "tenant_status",
                c.tenant_status.as_ref().map(label).unwrap_or_else(|| "-".into()),
            ),
            ("key_expires_at", opt_ts(c.key_expires_at.as_ref())),
        ])
    });
    Ok(())
}

fn servers_table(servers: &[McpServer]) -> String {
    table(
        &["ID", "NAME", "STATUS", "TOOLS", "URL", "LAST HEALTH CHECK"],
        servers.iter().map(|s| {
            vec![
                s.id.to_string(),
                s.name.clone(),
                label(&s.status),
                s.tool_count.to_string(),
                s.url.clone(),
                opt_ts(s.last_health_check_at.as_ref()),
            ]
        }),
    )
}

fn server_fields(s: &McpServer) -> String {
    fields([
        ("id", s.id.to_string()),
        ("name", s.name.clone()),
        ("url", s.url.clone()),
        ("transport", label(&s.transport)),
        ("status", label(&s.status)),
        ("status_reason", opt(s.status_reason.as_ref())),
        ("protocol_version", opt(s.protocol_version.as_ref())),
        ("tools", s.tool_count.to_string()),
        ("credential_ref", opt(s.credential_ref.as_ref())),
        ("call_timeout_ms", opt(s.call_timeout_ms)),
        ("max_output_bytes", opt(s.max_output_bytes)),
        ("max_calls_per_minute", opt(s.max_calls_per_minute)),
        ("created_by", s.created_by.clone()),
        ("created_at", ts(&s.created_at)),
        ("discovered_at", opt_ts(s.discovered_at.as_ref())),
        ("last_health_check_at", opt_ts(s.last_health_check_at.as_ref())),
        ("last_latency_ms", opt(s.last_latency_ms)),
        ("deleted_at", opt_ts(s.deleted_at.as_ref())),
    ])
}

fn tools_table(tools: &[McpTool]) -> String {
    table(
        &["ID", "NAME", "RISK", "ENABLED", "APPROVAL", "STATE"],
        tools.iter().map(|t| {
            let state = if t.quarantined {
                "QUARANTINED"
            } else if !t.available {
                "UNAVAILABLE"
            } else {
                "-"
            };
            vec![
                t.id.to_string(),
                t.name.clone(),
                label(&t.risk_level),
                t.enabled.to_string(),
                t.requires_approval.to_string(),
                state.to_owned(),
            ]
        }),
    )
}

fn tool_line(t: &McpTool) -> String {
    format!(
        "tool {} ({}): enabled={} risk={} requires_approval={}",
        t.name,
        t.id,
        t.enabled,
        label(&t.risk_level),
        t.requires_approval
    )
}

fn health_table(results: &[McpHealth]) -> String {
    table(
        &["SERVER", "HEALTHY", "STATUS", "LATENCY MS", "ERROR"],
        results.iter().map(|h| {
            vec![
                h.server_id.to_string(),
                h.healthy.to_string(),
                label(&h.status),
                h.latency_ms.to_string(),
                opt(h.error.as_ref()),
            ]
        }),
    )
}

fn invocation_fields(r: &InvocationResult) -> String {
    let output = r
        .output
        .as_ref()
        .map(|v| serde_json::to_string(v).unwrap_or_default())
        .unwrap_or_else(|| "-".to_owned());
    fields([
        ("invocation", r.invocation_id.to_string()),
        ("status", label(&r.status)),
        ("policy_decision", r.policy_decision.clone()),
        (
            "reasons",
            if r.reasons.is_empty() {
                "-".into()
            } else {
                r.reasons.join("; ")
            },
        ),
        ("approval", opt(r.approval_id)),
        ("incident", opt(r.incident_id)),
        ("duration_ms", opt(r.duration_ms)),
        ("error", opt(r.error_message.as_ref())),
        ("output", output),
    ])
}

fn read_input(args: &InvokeArgs) -> Result<serde_json::Value, Failure> {
    let text =
        match &args.input_file {
            None => args.input.clone(),
            Some(path) if path.as_os_str() == "-" => std::io::read_to_string(std::io::stdin())
                .map_err(|err| Failure::Usage(format!("reading stdin: {err}")))?,
            Some(path) => std::fs::read_to_string(path)
                .map_err(|err| Failure::Usage(format!("reading {}: {err}", path.display())))?,
        };
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|err| Failure::Usage(format!("--input is not valid JSON: {err}")))?;
    if !value.is_object() {
        return Err(Failure::Usage("--input must be a JSON object".to_owned()));
    }
    Ok(value)
}

async fn mcp(client: &Client, out: Output, command: McpCommand) -> Outcome {
    match command {
        McpCommand::List { all } => {
            let servers = client.list_all_mcp_servers(all).await?;
            out.emit(&servers, |s| servers_table(s));
        }
        McpCommand::Register(args) => {
            let mut request = RegisterMcpServerRequest::new(args.name, args.url);
            request.transport = args.transport.into();
            request.description = args.description;
            request.credential_ref = args.credential_ref;
            request.discover = !args.no_discover;
            request.call_timeout_ms = args.call_timeout_ms;
            request.max_output_bytes = args.max_output_bytes;
            request.max_calls_per_minute = args.max_calls_per_minute;
            let message = if request.discover {
                "registering and discovering tools"
            } else {
                "registering"
            };
            let registration = with_spinner(message, client.register_mcp_server(&request)).await?;
            out.emit(&registration, |r| {
                let mut text = server_fields(&r.server);
                if let Some(d) = &r.discovery {
                    text.push_str(&format!(
                        "\n\ndiscovered {} tools ({} added, {} updated)",
                        d.tools_found, d.tools_added, d.tools_updated
                    ));
                }
                if let Some(err) = &r.discovery_error {
                    text.push_str(&format!("\n\ndiscovery failed: {err}"));
                }
                text
            });
        }
        McpCommand::Describe { server_id } => {
            let server = client.get_mcp_server(server_id).await?;
            out.emit(&server, server_fields);
        }
        McpCommand::Discover { server_id } => {
            let discovery = with_spinner("discovering tools", client.discover_mcp_tools(server_id)).await?;
            out.emit(&discovery, |d| {
                let mut pairs = vec![
                    ("server", d.server_id.to_string()),
                    ("protocol_version", opt(d.protocol_version.as_ref())),
                    ("capabilities", d.capabilities.join(" ")),
                    ("tools_found", d.tools_found.to_string()),
                    ("tools_added", d.tools_added.to_string()),
                    ("tools_updated", d.tools_updated.to_string()),
                    ("tools_removed", d.tools_removed.to_string()),
                    ("tools_quarantined", d.tools_quarantined.to_string()),
                ];
                for err in &d.errors {
                    pairs.push(("error", err.clone()));
                }
                fields(pairs)
            });
        }
        McpCommand::Health { server_ids } => return health(client, out, server_ids).await,
        McpCommand::Tools { server_id, all } => {
            let tools = client.list_mcp_tools(server_id, all).await?;
            out.emit(&tools, |t| tools_table(t));
        }
        McpCommand::Disable { server_id } => {
            let server = client.disable_mcp_server(server_id).await?;
            out.emit(&server, |s| format!("server {} ({}) disabled", s.name, s.id));
        }
        McpCommand::Invocations { server_id, limit } => {
            let invocations = client.list_mcp_invocations(server_id, limit).await?;
            out.emit(&invocations, |list: &Vec<McpInvocation>| {
                table(
                    &["ID", "TOOL", "STATUS", "DECISION", "DURATION MS", "INVOKED AT"],
                    list.iter().map(|i| {
                        vec![
                            i.id.to_string(),
                            i.tool_id.to_string(),
                            i.status.clone(),
                            opt(i.policy_decision.as_ref()),
                            opt(i.duration_ms),
                            ts(&i.invoked_at),
                        ]
                    }),
                )
            });
        }
        McpCommand::Tool(ToolCommand::Enable { tool_id }) => {
            let tool = client.enable_mcp_tool(tool_id).await?;
            out.emit(&tool, tool_line);
        }
        McpCommand::Tool(ToolCommand::Disable { tool_id }) => {
            let tool = client.disable_mcp_tool(tool_id).await?;
            out.emit(&tool, tool_line);
        }
        McpCommand::Tool(ToolCommand::Risk {
            tool_id,
            level,
            requires_approval,
        }) => {
            let request = SetToolRiskRequest {
                risk_level: level.into(),
                requires_approval,
            };
            let tool = client.set_mcp_tool_risk(tool_id, &request).await?;
            out.emit(&tool, tool_line);
        }
        McpCommand::Invoke(args) => {
            let mut request = InvokeToolRequest::new(read_input(&args)?);
            request.run_id = args.run_id;
            request.trace_id = args.trace_id;
            let result = with_spinner("calling the tool", client.invoke_mcp_tool(args.tool_id, &request)).await?;
            out.emit(&result, invocation_fields);
            if result.status != InvocationStatus::Success {
                return Err(Failure::Negative(format!(
                    "the call ended {}{}",
                    label(&result.status),
                    result
                        .approval_id
                        .map(|id| format!(": approval {id} is pending"))
                        .unwrap_or_default()
                )));
            }
        }
    }
    Ok(())
}

/// Health of the named servers, or of every server, a few at a time with a progress bar.
async fn health(client: &Client, out: Output, server_ids: Vec<Uuid>) -> Outcome {
    let ids = if server_ids.is_empty() {
        with_spinner("listing servers", client.list_all_mcp_servers(false))
            .await?
            .into_iter()
            .map(|s| s.id)
            .collect()
    } else {
        server_ids
    };
    let bar = ProgressBar::new(ids.len() as u64).with_message("checking health");
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} {pos}/{len}") {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(100));
    let mut results: Vec<(usize, Result<McpHealth, Error>)> = futures::stream::iter(ids.iter().copied().enumerate())
        .map(|(i, id)| {
            let bar = bar.clone();
            async move {
                let result = client.check_mcp_health(id).await;
                bar.inc(1);
                (i, result)
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    bar.finish_and_clear();
    results.sort_by_key(|(i, _)| *i);
    let mut healths = Vec::with_capacity(results.len());
    for (_, result) in results {
        healths.push(result?);
    }
    out.emit(&healths, |h| health_table(h));
    let unhealthy = healths.iter().filter(|h| !h.healthy).count();
    if unhealthy > 0 {
        return Err(Failure::Negative(format!(
            "{unhealthy} of {} servers unhealthy",
            healths.len()
        )));
    }
    Ok(())
}

fn approvals_table(approvals: &[Approval]) -> String {
    table(
        &["ID", "STATUS", "SUBJECT", "REQUESTED BY", "CREATED", "EXPIRES"],
        approvals.iter().map(|a| {
            vec![
                a.id.to_string(),
                label(&a.status),
                format!("{} {}", a.subject_type, a.subject_id),
                a.requested_by.clone(),
                ts(&a.created_at),
                ts(&a.expires_at),
            ]
        }),
    )
}

fn approval_fields(a: &Approval) -> String {
    fields([
        ("id", a.id.to_string()),
        ("status", label(&a.status)),
        ("subject", format!("{} {}", a.subject_type, a.subject_id)),
        ("reason", opt(a.reason.as_ref())),
        ("requested_by", a.requested_by.clone()),
        ("created_at", ts(&a.created_at)),
        ("expires_at", ts(&a.expires_at)),
        ("decided_by", opt(a.decided_by.as_ref())),
        ("decided_at", opt_ts(a.decided_at.as_ref())),
        ("decision_reason", opt(a.decision_reason.as_ref())),
    ])
}

fn decision_text(d: &ApprovalDecision) -> String {
    let mut text = approval_fields(&d.approval);
    if let Some(invocation) = &d.invocation {
        text.push_str("\n\n");
        text.push_str(&invocation_fields(invocation));
    }
    text
}

async fn approvals(client: &Client, out: Output, command: ApprovalsCommand) -> Outcome {
    match command {
        ApprovalsCommand::List { status } => {
            let status: Option<ApprovalStatus> = status.map(Into::into);
            let all = all_pages(|cursor| async move {
                let query = ListApprovalsQuery {
                    status,
                    limit: Some(200),
                    cursor,
                };
                client.list_approvals(&query).await
            })
            .await?;
            out.emit(&all, |a| approvals_table(a));
        }
        ApprovalsCommand::Show { approval_id } => {
            let approval = client.get_approval(approval_id).await?;
            out.emit(&approval, approval_fields);
        }
        ApprovalsCommand::Approve { approval_id, reason } => {
            let decision = with_spinner(
                "approving",
                client.approve(approval_id, &DecideApprovalRequest { reason }),
            )
            .await?;
            out.emit(&decision, decision_text);
        }
        ApprovalsCommand::Deny { approval_id, reason } => {
            let decision = client.deny(approval_id, &DecideApprovalRequest { reason }).await?;
            out.emit(&decision, decision_text);
        }
    }
    Ok(())
}

async fn audit(client: &Client, out: Output, command: AuditCommand) -> Outcome {
    match command {
        AuditCommand::Verify => {
            let verification = with_spinner("verifying the audit chain", client.verify_audit()).await?;
            out.emit(&verification, |v| {
                fields([
                    ("valid", v.valid.to_string()),
                    ("length", v.length.to_string()),
                    ("head_hash", v.head_hash.clone()),
                    ("first_bad_seq", opt(v.first_bad_seq)),
                    ("reason", opt(v.reason.as_ref())),
                ])
            });
            if !verification.valid {
                return Err(Failure::Negative(format!(
                    "the audit chain does not verify at seq {}",
                    opt(verification.first_bad_seq)
                )));
            }
        }
        AuditCommand::Events { event_type, limit } => {
            let query = ListAuditQuery {
                event_type,
                limit: Some(limit),
                ..ListAuditQuery::default()
            };
            let page = client.list_audit_events(&query).await?;
            out.emit(&page.data, |events: &Vec<AuditEvent>| {
                table(
                    &["SEQ", "AT", "EVENT", "ACTOR", "SUBJECT", "DECISION"],
                    events.iter().map(|e| {
                        vec![
                            e.seq.to_string(),
                            ts(&e.occurred_at),
                            e.event_type.clone(),
                            opt(e.actor_id.as_ref()),
                            format!("{} {}", e.subject_type, opt(e.subject_id.as_ref())),
                            opt(e.decision.as_ref()),
                        ]
                    }),
                )
            });
        }
    }
    Ok(())
}

fn incident_fields(i: &Incident) -> String {
    fields([
        ("id", i.id.to_string()),
        ("kind", i.kind.clone()),
        ("severity", label(&i.severity)),
        ("status", i.status.clone()),
        ("title", i.title.clone()),
        ("server", opt(i.server_id)),
        ("tool", opt(i.tool_id)),
        ("invocation", opt(i.invocation_id)),
        ("created_at", ts(&i.created_at)),
        ("resolved_at", opt_ts(i.resolved_at.as_ref())),
        ("resolved_by", opt(i.resolved_by.as_ref())),
        ("resolution", opt(i.resolution.as_ref())),
    ])
}

async fn incidents(client: &Client, out: Output, command: IncidentsCommand) -> Outcome {
    match command {
        IncidentsCommand::List { status } => {
            let query = ListIncidentsQuery {
                status,
                kind: None,
                severity: None,
                server_id: None,
                tool_id: None,
                limit: Some(200),
                cursor: None,
            };
            let page = client.list_incidents(&query).await?;
            out.emit(&page.data, |list: &Vec<Incident>| {
                table(
                    &["ID", "KIND", "SEVERITY", "STATUS", "CREATED", "TITLE"],
                    list.iter().map(|i| {
                        vec![
                            i.id.to_string(),
                            i.kind.clone(),
                            label(&i.severity),
                            i.status.clone(),
                            ts(&i.created_at),
                            i.title.clone(),
                        ]
                    }),
                )
            });
        }
        IncidentsCommand::Show { incident_id } => {
            let incident = client.get_incident(incident_id).await?;
            out.emit(&incident, incident_fields);
        }
        IncidentsCommand::Resolve {
            incident_id,
            resolution,
        } => {
            let incident = client
                .resolve_incident(incident_id, &ResolveIncidentRequest { resolution })
                .await?;
            out.emit(&incident, incident_fields);
        }
    }
    Ok(())
}

fn kill_state_line(s: &KillSwitchState) -> String {
    format!(
        "{} {}: {}{}",
        s.entity_type,
        s.entity_id,
        if s.frozen { "FROZEN" } else { "active" },
        s.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
    )
}

async fn killswitch(client: &Client, out: Output, command: KillswitchCommand) -> Outcome {
    match command {
        KillswitchCommand::Status { tenant } => {
            let overview = client.kill_switch_status(tenant).await?;
            out.emit(&overview, |o: &KillSwitchOverview| {
                let mut text = fields([
                    ("tenant", o.tenant_id.to_string()),
                    ("tenant_frozen", o.tenant_frozen.to_string()),
                    (
                        "frozen_keys",
                        if o.frozen_keys.is_empty() {
                            "-".into()
                        } else {
                            o.frozen_keys.iter().map(Uuid::to_string).collect::<Vec<_>>().join(" ")
                        },
                    ),
                ]);
                text.push_str("\n\n");
                text.push_str(&table(
                    &["AT", "EVENT", "SUBJECT", "BY", "REASON"],
                    o.history.iter().map(|e| {
                        vec![
                            ts(&e.occurred_at),
                            e.event_type.clone(),
                            format!("{} {}", e.subject_type, opt(e.subject_id.as_ref())),
                            opt(e.actor_id.as_ref()),
                            e.details
                                .get("reason")
                                .and_then(|v| v.as_str())
                                .unwrap_or("-")
                                .to_owned(),
                        ]
                    }),
                ));
                text
            });
        }
        KillswitchCommand::Freeze { target, reason } => {
            let request = FreezeRequest { reason };
            let state = match (target.tenant, target.key) {
                (Some(tenant), _) => client.freeze_tenant(tenant, &request).await?,
                (None, Some(key)) => client.freeze_key(key, &request).await?,
                (None, None) => return Err(Failure::Usage("name --tenant or --key".into())),
            };
            out.emit(&state, kill_state_line);
        }
        KillswitchCommand::Unfreeze { target } => {
            let state = match (target.tenant, target.key) {
                (Some(tenant), _) => client.unfreeze_tenant(tenant).await?,
                (None, Some(key)) => client.unfreeze_key(key).await?,
                (None, None) => return Err(Failure::Usage("name --tenant or --key".into())),
            };
            out.emit(&state, kill_state_line);
        }
    }
    Ok(())
}

fn keys_table(keys: &[ApiKey]) -> String {
    table(
        &["ID", "NAME", "PREFIX", "STATUS", "SCOPES", "CREATED", "EXPIRES"],
        keys.iter().map(|k| {
            vec![
                k.id.to_string(),
                k.name.clone(),
                k.prefix.clone(),
                label(&k.status),
                k.scopes.join(" "),
                ts(&k.created_at),
                opt_ts(k.expires_at.as_ref()),
            ]
        }),
    )
}

async fn keys(client: &Client, out: Output, command: KeysCommand) -> Outcome {
    match command {
        KeysCommand::List { tenant } => {
            let all = all_pages(|cursor| async move {
                let query = PageQuery {
                    limit: Some(200),
                    cursor,
                };
                match tenant {
                    Some(tenant) => client.admin_list_api_keys(tenant, &query).await,
                    None => client.list_api_keys(&query).await,
                }
            })
            .await?;
            out.emit(&all, |k| keys_table(k));
        }
        KeysCommand::Create { name, scopes, tenant } => {
            let request = CreateApiKeyRequest {
                name,
                scopes,
                expires_at: None,
            };
            let created = match tenant {
                Some(tenant) => client.admin_create_api_key(tenant, &request).await?,
                None => client.create_api_key(&request).await?,
            };
            out.emit(&created, |c: &CreatedApiKey| {
                format!(
                    "{}\n\nkey: {}\n(shown once: store it now)",
                    keys_table(std::slice::from_ref(&c.api_key)),
                    c.key
                )
            });
        }
        KeysCommand::Revoke { key_id, admin } => {
            let key = if admin {
                client.admin_revoke_api_key(key_id).await?
            } else {
                client.revoke_api_key(key_id).await?
            };
            out.emit(&key, |k| format!("key {} ({}) {}", k.name, k.id, label(&k.status)));
        }
    }
    Ok(())
}

fn tenant_fields(t: &Tenant) -> String {
    fields([
        ("id", t.id.to_string()),
        ("name", t.name.clone()),
        ("status", label(&t.status)),
        ("onboarding_state", label(&t.onboarding_state)),
        ("created_at", ts(&t.created_at)),
        ("updated_at", ts(&t.updated_at)),
    ])
}

async fn set_status(client: &Client, out: Output, tenant_id: Uuid, status: TenantStatus) -> Outcome {
    let request = UpdateTenantRequest {
        status: Some(status),
        ..UpdateTenantRequest::default()
    };
    let tenant = client.update_tenant(tenant_id, &request).await?;
    out.emit(&tenant, tenant_fields);
    Ok(())
}

async fn tenants(client: &Client, out: Output, command: TenantsCommand) -> Outcome {
    match command {
        TenantsCommand::List => {
            let all = all_pages(|cursor| async move {
                let query = PageQuery {
                    limit: Some(200),
                    cursor,
                };
                client.list_tenants(&query).await
            })
            .await?;
            out.emit(&all, |list: &Vec<Tenant>| {
                table(
                    &["ID", "NAME", "STATUS", "ONBOARDING", "CREATED"],
                    list.iter().map(|t| {
                        vec![
                            t.id.to_string(),
                            t.name.clone(),
                            label(&t.status),
                            label(&t.onboarding_state),
                            ts(&t.created_at),
                        ]
                    }),
                )
            });
        }
        TenantsCommand::Create { name } => {
            let tenant = client.create_tenant(&CreateTenantRequest { name }).await?;
            out.emit(&tenant, tenant_fields);
        }
        TenantsCommand::Show { tenant_id } => {
            let tenant = client.get_tenant(tenant_id).await?;
            out.emit(&tenant, tenant_fields);
        }
        TenantsCommand::Suspend { tenant_id } => set_status(client, out, tenant_id, TenantStatus::Suspended).await?,
        TenantsCommand::Activate { tenant_id } => set_status(client, out, tenant_id, TenantStatus::Active).await?,
        TenantsCommand::Terminate { tenant_id } => set_status(client, out, tenant_id, TenantStatus::Terminated).await?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn exit_codes_follow_the_documented_classes() {
        let api = |status: u16| {
            Failure::Client(Error::Api(Box::new(aos_client::ApiError {
                status,
                code: "x".into(),
                message: "m".into(),
                request_id: None,
                field: None,
            })))
        };
        assert_eq!(api(401).exit_code(), 3);
        assert_eq!(api(403).exit_code(), 3);
        assert_eq!(api(404).exit_code(), 4);
        assert_eq!(api(409).exit_code(), 1);
        assert_eq!(api(422).exit_code(), 1);
        assert_eq!(api(503).exit_code(), 5);
        assert_eq!(Failure::Usage("u".into()).exit_code(), 2);
        assert_eq!(Failure::Negative("n".into()).exit_code(), 6);
    }
}
