//! Every operation of the registry, by domain. Names are `domain.verb` and stable
//! (dashboards and logs key on them). The list is [`OPERATIONS`]; a test checks it against
//! every `Operation` and `Workflow` in this folder, so it cannot drift from the code.

pub mod agents;
pub mod api_keys;
pub mod cursor;
pub mod gateway;
pub mod governance;
pub mod killswitch;
pub mod mcp;
pub mod proxy;
pub mod session;
pub mod telemetry;
pub mod tenants;

/// How an entry of [`OPERATIONS`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An [`crate::Operation`] with `Mode::Read`: a pooled connection.
    Read,
    /// An [`crate::Operation`] with `Mode::Write`: one transaction, effects after commit.
    Write,
    /// A [`crate::Workflow`]: short transactions with network between them.
    Workflow,
    /// The proxy's request pipeline (`Spine::proxy*`): its own tracked task, no
    /// transaction but the budget reservation.
    Pipeline,
}

/// One named thing the spine does, and who may do it.
#[derive(Debug, Clone, Copy)]
pub struct OperationInfo {
    pub name: &'static str,
    pub kind: Kind,
    pub who: &'static str,
}

const fn op(name: &'static str, kind: Kind, who: &'static str) -> OperationInfo {
    OperationInfo { name, kind, who }
}

/// Every operation, workflow and pipeline of the spine.
pub const OPERATIONS: &[OperationInfo] = &[
    op("tenants.create", Kind::Write, "operator"),
    op("tenants.get", Kind::Read, "operator"),
    op("tenants.list", Kind::Read, "operator"),
    op("tenants.update", Kind::Write, "operator"),
    op("session.context", Kind::Read, "anyone authenticated"),
    op(
        "api_keys.create",
        Kind::Write,
        "operator (any tenant); tenant admin (own tenant)",
    ),
    op(
        "api_keys.list",
        Kind::Read,
        "operator (any tenant); tenant admin (own tenant)",
    ),
    op("api_keys.revoke", Kind::Write, "tenant admin (own tenant)"),
    op("api_keys.revoke_any", Kind::Write, "operator"),
    op("agents.create", Kind::Write, "mcp:admin"),
    op("agents.get", Kind::Read, "mcp:read"),
    op("agents.list", Kind::Read, "mcp:read"),
    op("agents.update", Kind::Write, "mcp:admin"),
    op("agents.delete", Kind::Write, "mcp:admin"),
    op("agents.keys.create", Kind::Write, "mcp:admin"),
    op("agents.keys.list", Kind::Read, "mcp:read"),
    op("agents.manifests.issue", Kind::Write, "mcp:admin"),
    op("agents.manifests.list", Kind::Read, "mcp:read"),
    op("agents.manifests.get", Kind::Read, "mcp:read"),
    op("agents.manifests.verify", Kind::Read, "mcp:read or mcp:invoke"),
    op("integrations.mcp_servers.register_server", Kind::Workflow, "mcp:admin"),
    op("integrations.mcp_servers.discover_tools", Kind::Workflow, "mcp:admin"),
    op("integrations.mcp_servers.health_check", Kind::Workflow, "mcp:read"),
    op("integrations.mcp_servers.get_server", Kind::Read, "mcp:read"),
    op("integrations.mcp_servers.list_servers", Kind::Read, "mcp:read"),
    op("integrations.mcp_servers.list_tools", Kind::Read, "mcp:read"),
    op("integrations.mcp_servers.get_tool", Kind::Read, "mcp:read"),
    op("integrations.mcp_servers.get_invocations", Kind::Read, "mcp:read"),
    op("integrations.mcp_servers.delete_server", Kind::Write, "mcp:admin"),
    op("integrations.mcp_servers.set_tool_enabled", Kind::Write, "mcp:admin"),
    op("integrations.mcp_servers.set_tool_risk", Kind::Write, "mcp:admin"),
    op("integrations.mcp_servers.invoke_tool", Kind::Workflow, "mcp:invoke"),
    op("integrations.mcp_servers.get_manifest", Kind::Read, "mcp:read"),
    op("integrations.mcp_servers.locate_tool", Kind::Read, "mcp:read"),
    op("approvals.create", Kind::Write, "mcp:invoke"),
    op("approvals.get", Kind::Read, "approvals:decide, mcp:read or mcp:invoke"),
    op("approvals.list", Kind::Read, "approvals:decide, mcp:read or mcp:invoke"),
    op("approvals.approve", Kind::Workflow, "approvals:decide"),
    op("approvals.deny", Kind::Write, "approvals:decide"),
    op("audit.list_events", Kind::Read, "mcp:read"),
    op("audit.verify", Kind::Read, "mcp:read"),
    op("incidents.list", Kind::Read, "mcp:read"),
    op("incidents.get", Kind::Read, "mcp:read"),
    op("incidents.resolve", Kind::Write, "mcp:admin"),
    op("policy.get", Kind::Read, "mcp:read"),
    op(
        "policy.put",
        Kind::Write,
        "mcp:admin (tenant module); operator (platform module)",
    ),
    op("policy.update_settings", Kind::Write, "mcp:admin"),
    op("telemetry.integrations.create", Kind::Write, "admin"),
    op("telemetry.integrations.update", Kind::Write, "admin"),
    op("telemetry.integrations.delete", Kind::Write, "admin"),
    op("telemetry.integrations.list", Kind::Read, "telemetry:read"),
    op("telemetry.integrations.get", Kind::Read, "telemetry:read"),
    op("telemetry.integration_keys.issue", Kind::Write, "admin"),
    op("telemetry.integration_keys.revoke", Kind::Write, "admin"),
    op("telemetry.integration_keys.list", Kind::Read, "admin"),
    op("telemetry.ingest", Kind::Write, "integration key"),
    op(
        "telemetry.usage.summary",
        Kind::Read,
        "telemetry:read (integration keys: own, with can_read)",
    ),
    op(
        "telemetry.usage.daily",
        Kind::Read,
        "telemetry:read (integration keys: own, with can_read)",
    ),
    op(
        "telemetry.usage.history",
        Kind::Read,
        "telemetry:read (integration keys: own, with can_read)",
    ),
    op(
        "killswitch.change",
        Kind::Write,
        "operator (any tenant or key); admin (own tenant and keys)",
    ),
    op(
        "killswitch.status",
        Kind::Read,
        "operator (?tenant_id=); admin, proxy:invoke or mcp:invoke (own tenant)",
    ),
    op(
        "mcp.gateway.catalog",
        Kind::Read,
        "mcp:invoke (/mcp tools/list; tools/call runs invoke_tool)",
    ),
    op("mcp.gateway.named_catalog", Kind::Read, "mcp:read or mcp:invoke"),
    op("mcp.gateway.agent", Kind::Read, "mcp:invoke (acting for the agent)"),
    op(
        "proxy.settings.get",
        Kind::Read,
        "admin or proxy:invoke (own tenant); operator (?tenant_id=)",
    ),
    op(
        "proxy.settings.put",
        Kind::Write,
        "admin (own tenant); operator (?tenant_id=)",
    ),
    op(
        "proxy.settings.patch",
        Kind::Write,
        "admin (own tenant); operator (?tenant_id=)",
    ),
    op(
        "proxy.calls.list",
        Kind::Read,
        "admin (the tenant's calls); proxy:invoke (its own)",
    ),
    op(
        "proxy.calls.get",
        Kind::Read,
        "admin (the tenant's calls); proxy:invoke (its own)",
    ),
    op("proxy.status", Kind::Read, "proxy:invoke"),
    op(
        "proxy.invoke",
        Kind::Pipeline,
        "proxy:invoke (Spine::proxy: /v1/chat/completions, /v1/embeddings)",
    ),
    op("proxy.models", Kind::Pipeline, "proxy:invoke (Spine::proxy_models)"),
    op(
        "proxy.replay",
        Kind::Pipeline,
        "admin or proxy:invoke (Spine::proxy_replay)",
    ),
    op(
        "proxy.writer_stats",
        Kind::Pipeline,
        "operator (Spine::proxy_writer_stats)",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// `(name, kind)` of every `Operation` and `Workflow` implemented under `src/ops`.
    fn implemented() -> Vec<(String, Kind)> {
        fn files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    files(&path, out);
                } else {
                    out.push(path);
                }
            }
        }
        let mut paths = Vec::new();
        files(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/ops"),
            &mut paths,
        );
        let mut found = Vec::new();
        for path in paths {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let mut lines = text.lines().peekable();
            while let Some(line) = lines.next() {
                let Some(rest) = line.trim().strip_prefix("const NAME: &'static str = \"") else {
                    continue;
                };
                let name = rest.trim_end_matches("\";").to_owned();
                let kind = match lines.peek().map(|l| l.trim()) {
                    Some("const MODE: Mode = Mode::Read;") => Kind::Read,
                    Some("const MODE: Mode = Mode::Write;") => Kind::Write,
                    _ => Kind::Workflow,
                };
                found.push((name, kind));
            }
        }
        found
    }

    #[test]
    fn the_list_names_every_operation_with_its_kind_and_nothing_else() {
        let implemented = implemented();
        assert!(implemented.len() > 50, "{implemented:?}");
        for (name, kind) in &implemented {
            let listed = OPERATIONS.iter().find(|o| o.name == name);
            assert!(listed.is_some(), "{name} is not in OPERATIONS");
            assert_eq!(listed.map(|o| o.kind), Some(*kind), "{name}");
        }
        for listed in OPERATIONS.iter().filter(|o| o.kind != Kind::Pipeline) {
            assert!(
                implemented.iter().any(|(name, _)| name == listed.name),
                "{} is listed but not implemented",
                listed.name
            );
        }
        let mut names: Vec<_> = OPERATIONS.iter().map(|o| o.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), OPERATIONS.len(), "a name is listed twice");
    }
}
