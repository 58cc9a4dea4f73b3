//! ARCHITECTURE.md's invariants that the dependency graph cannot check, checked over the
//! source: each test states one invariant and its named exceptions. A new exception is a
//! decision: it is added here and in ARCHITECTURE.md together.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Every `.rs` file under `dir` (relative to the workspace root), with its text.
fn sources(dir: &str) -> Vec<(String, String)> {
    fn walk(path: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(path).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let base = root();
    let mut files = Vec::new();
    walk(&base.join(dir), &mut files);
    files.sort();
    files
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(&f).unwrap();
            (f.strip_prefix(&base).unwrap().display().to_string(), text)
        })
        .collect()
}

/// Code without `#[cfg(test)]` modules (they sit at the end of a file by convention).
fn production(text: &str) -> &str {
    text.split("#[cfg(test)]").next().unwrap_or(text)
}

/// Engines hand the spine domain types; re-exporting a diesel row type (`pub use
/// aos_models::…`) hands it the database. These are the re-exports that exist today, to be
/// replaced by domain types (issue: typed vocabulary); a new one fails this test.
#[test]
fn no_new_reexports_of_models_from_engines_or_the_spine() {
    let allowed: BTreeSet<&str> = [
        "crates/aos-engines/src/auth/integration_keys.rs",
        "crates/aos-engines/src/auth/keys.rs",
        "crates/aos-engines/src/governance/approvals.rs",
        "crates/aos-engines/src/governance/audit.rs",
        "crates/aos-engines/src/governance/incidents.rs",
        "crates/aos-engines/src/governance/mod.rs",
        "crates/aos-engines/src/killswitch.rs",
        "crates/aos-engines/src/mcp/client.rs",
        "crates/aos-engines/src/mcp/invoke.rs",
        "crates/aos-engines/src/mcp/registry.rs",
        "crates/aos-engines/src/mcp/risk.rs",
        "crates/aos-engines/src/proxy/mod.rs",
        "crates/aos-engines/src/telemetry.rs",
        "crates/aos-engines/src/tenants.rs",
    ]
    .into();
    let mut found = Vec::new();
    for dir in ["crates/aos-engines/src", "crates/aos-spine/src"] {
        for (file, text) in sources(dir) {
            let count = production(&text).matches("pub use aos_models").count();
            if count > 0 && !allowed.contains(file.as_str()) {
                found.push(file);
            }
        }
    }
    assert!(found.is_empty(), "new `pub use aos_models` in {found:?}");
    let total: usize = ["crates/aos-engines/src", "crates/aos-spine/src"]
        .iter()
        .flat_map(|d| sources(d))
        .map(|(_, t)| production(&t).matches("pub use aos_models").count())
        .sum();
    assert!(total <= 17, "{total} re-exports of aos_models: the list only shrinks");
}

/// The spine owns transactions: an engine never begins one. The one exception is the
/// proxy's call-log writer, a background task with no caller whose transaction it could
/// join (it batches records from many requests).
#[test]
fn engines_open_no_transaction_but_the_call_log_writer() {
    let mut found = Vec::new();
    for (file, text) in sources("crates/aos-engines/src") {
        if file == "crates/aos-engines/src/proxy/writer.rs" {
            continue;
        }
        let code = production(&text);
        if code.contains(".transaction(") || code.contains("TxMode::") {
            found.push(file);
        }
    }
    assert!(found.is_empty(), "engines opening transactions: {found:?}");
}

/// Every driver query of a tenant's data filters by tenant. A driver function without a
/// tenant parameter is one of these named exceptions: inserts and upserts whose row
/// carries its tenant, the tenants table and the credential epoch (not tenant data),
/// lookups by a credential's hash (authentication: the tenant is not known yet), platform
/// sweeps (`*_due*`, `frozen`, `delete_calls_before`, `active_policy_modules`), and the
/// operator's own actions (`*_any`).
#[test]
fn driver_functions_without_a_tenant_are_the_named_exceptions() {
    let exceptions: BTreeSet<&str> = [
        // Inserts and upserts: the row carries tenant_id.
        "agents::insert",
        "agents::insert_manifest",
        "api_keys::insert",
        "governance::append_audit_events",
        "governance::insert_approval",
        "governance::insert_incident",
        "governance::replace_policy_module",
        "killswitch::put",
        "mcp::insert_server",
        "mcp::insert_tool",
        "mcp::insert_invocation",
        "proxy::put_settings",
        "proxy::apply_spend",
        "proxy::insert_calls",
        "usage::insert_integration",
        "usage::insert_new_records",
        "usage::add_to_daily",
        "usage::insert_integration_key",
        // Not tenant data.
        "tenants::insert",
        "tenants::get",
        "tenants::list",
        "tenants::count",
        "tenants::update",
        "auth_epoch::current",
        "auth_epoch::bump",
        // Authentication by a credential's hash.
        "api_keys::find_by_hash",
        "usage::find_integration_key",
        // Platform sweeps.
        "governance::expire_due_approvals",
        "mcp::servers_due_for_health",
        "mcp::running_invocations_due",
        "proxy::delete_calls_before",
        "killswitch::frozen",
        "governance::active_policy_modules",
        // The platform operator's actions.
        "api_keys::get_any",
        "api_keys::revoke_any",
    ]
    .into();
    let mut unscoped = BTreeSet::new();
    for (file, text) in sources("crates/aos-drivers/src") {
        let module = Path::new(&file).file_stem().unwrap().to_string_lossy().to_string();
        // The database handle and the test harness run no tenant queries.
        if module == "testing" || module == "db" {
            continue;
        }
        let code = production(&text);
        for (i, _) in code.match_indices("pub async fn ") {
            let rest = &code[i + "pub async fn ".len()..];
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            let params = rest.split("->").next().unwrap_or_default();
            if params.contains("conn") && !params.contains("tenant") {
                unscoped.insert(format!("{module}::{name}"));
            }
        }
    }
    let unlisted: Vec<_> = unscoped.iter().filter(|f| !exceptions.contains(f.as_str())).collect();
    assert!(
        unlisted.is_empty(),
        "driver functions that take no tenant and are no named exception: {unlisted:?}"
    );
    let stale: Vec<_> = exceptions.iter().filter(|f| !unscoped.contains(**f)).collect();
    assert!(stale.is_empty(), "exceptions that no longer exist: {stale:?}");
}

/// Models do no I/O. The one exception is the clock (`DbTime::now`), which is read
/// where a row is built.
#[test]
fn models_do_no_io_but_read_the_clock() {
    for (file, text) in sources("crates/aos-models/src") {
        let code = production(&text);
        for io in [
            "std::fs",
            "std::net",
            "tokio::",
            "reqwest",
            "std::process",
            "std::env::var",
        ] {
            assert!(!code.contains(io), "{file} uses {io}");
        }
    }
}

/// No event-type or subject-kind string is written outside its enum (aos-types): every
/// audit event is built from `AuditEventType` and `SubjectKind`.
#[test]
fn audit_words_are_written_only_by_their_enums() {
    for dir in ["crates/aos-engines/src", "crates/aos-spine/src"] {
        for (file, text) in sources(dir) {
            let code = production(&text);
            for field in ["event_type: \"", "subject_type: \""] {
                assert!(!code.contains(field), "{file} writes a literal {field}…");
            }
        }
    }
}
