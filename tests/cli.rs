//! The `aos` CLI binary end to end: a real AOS over loopback in front of a real rmcp
//! server; each command's output and exit code, and the key never printed.

// Integration tests: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::Path;
use std::process::Command;

use aos_tests::mcp_servers::{self, GovServer};
use aos_tests::{Backend, OPERATOR_TOKEN, Options, TestApp, spawn_opts, workspace_bin};
use serde_json::Value;

aos_tests::for_each_backend!(
    the_cli_runs_the_governed_flow_with_stable_exit_codes,
    the_cli_ignores_the_servers_config_and_warns_about_an_open_key_file,
    the_cli_manages_agents_their_keys_manifests_and_freezes,
);

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|err| panic!("not JSON ({err}): {}", self.stdout))
    }
}

/// Runs `aos` with a clean environment: no user config, the given URL and key (if any).
fn aos(home: &Path, url: &str, key: Option<&str>, args: &[&str]) -> Run {
    let env: Vec<(&str, &str)> = key.map(|key| ("AOS_API_KEY", key)).into_iter().collect();
    let run = aos_env(home, url, &env, args);
    if let Some(key) = key {
        assert!(
            !run.stdout.contains(key) && !run.stderr.contains(key),
            "the key was printed by {args:?}: {} {}",
            run.stdout,
            run.stderr
        );
    }
    run
}

/// `aos` with extra environment variables (after the clean environment of [`aos`]).
fn aos_env(home: &Path, url: &str, env: &[(&str, &str)], args: &[&str]) -> Run {
    let mut command = Command::new(workspace_bin("aos"));
    command
        .args(args)
        .env_clear()
        .env("HOME", home)
        .env("AOS_URL", url)
        .env("NO_COLOR", "1");
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

async fn the_cli_ignores_the_servers_config_and_warns_about_an_open_key_file(backend: Backend) {
    use std::os::unix::fs::PermissionsExt;
    let app: TestApp = spawn_opts(backend, Options::default()).await;
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    // A shell set up for the server: AOS_CONFIG names the server's file, which the CLI's
    // parser would refuse (`unknown field proxy`).
    let server_config = dir.join("aos-server.toml");
    std::fs::write(&server_config, "[proxy]\ndefault_provider = \"openai\"\n").unwrap();
    let server_config = server_config.to_str().unwrap().to_owned();
    let run = aos_env(
        dir,
        &app.base,
        &[("AOS_CONFIG", &server_config), ("AOS_API_KEY", OPERATOR_TOKEN)],
        &["--json", "whoami"],
    );
    assert_eq!(run.code, 0, "the CLI read the server's AOS_CONFIG: {}", run.stderr);
    assert_eq!(run.json()["auth_type"], "founder");

    // Its own variable, with a key file other users can read: it works, and warns.
    let key_file = dir.join("key");
    std::fs::write(&key_file, OPERATOR_TOKEN).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let cli_config = dir.join("cli.toml");
    std::fs::write(
        &cli_config,
        format!("api_key_file = {:?}\n", key_file.to_str().unwrap()),
    )
    .unwrap();
    let cli_config = cli_config.to_str().unwrap().to_owned();
    let run = aos_env(
        dir,
        &app.base,
        &[("AOS_CLI_CONFIG", &cli_config)],
        &["--json", "whoami"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("readable by other users"), "{}", run.stderr);
    assert!(!run.stderr.contains(OPERATOR_TOKEN) && !run.stdout.contains(OPERATOR_TOKEN));
    // Private again: no warning.
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let run = aos_env(
        dir,
        &app.base,
        &[("AOS_CLI_CONFIG", &cli_config)],
        &["--json", "whoami"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stderr.contains("readable by other users"), "{}", run.stderr);
}

fn ok(run: Run) -> Run {
    assert_eq!(run.code, 0, "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    run
}

async fn the_cli_runs_the_governed_flow_with_stable_exit_codes(backend: Backend) {
    let app: TestApp = spawn_opts(backend, Options::default()).await;
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let url = app.base.clone();
    let gov = GovServer::default();
    let upstream = mcp_servers::streamable_http(gov.clone(), None).await;

    // The operator makes a tenant and its keys with the CLI.
    let tenant = ok(aos(
        home,
        &url,
        Some(OPERATOR_TOKEN),
        &["--json", "tenants", "create", "--name", "cli-acme"],
    ))
    .json();
    let tenant_id = tenant["id"].as_str().unwrap().to_owned();
    let listed = ok(aos(home, &url, Some(OPERATOR_TOKEN), &["tenants", "list"]));
    assert!(
        listed.stdout.starts_with("ID") && listed.stdout.contains("cli-acme"),
        "{}",
        listed.stdout
    );
    let created = ok(aos(
        home,
        &url,
        Some(OPERATOR_TOKEN),
        &[
            "--json",
            "keys",
            "create",
            "--tenant",
            &tenant_id,
            "--name",
            "ops",
            "--scope",
            "mcp:read",
            "--scope",
            "mcp:admin",
            "--scope",
            "mcp:invoke",
        ],
    ))
    .json();
    let key = created["key"].as_str().unwrap().to_owned();
    let key = key.as_str();
    let (_, approver) = app.create_key(&tenant_id, &["approvals:decide"]).await;

    let who = ok(aos(home, &url, Some(key), &["--json", "whoami"])).json();
    assert_eq!(who["tenant_id"], tenant_id.as_str());
    assert_eq!(who["auth_type"], "machine");
    let who = ok(aos(home, &url, Some(key), &["whoami"]));
    assert!(who.stdout.contains("mcp:invoke"), "{}", who.stdout);

    // Register (discovering), list, describe, tools.
    let registered = ok(aos(
        home,
        &url,
        Some(key),
        &[
            "mcp",
            "register",
            "--name",
            "gov",
            "--url",
            &upstream.url,
            "--max-calls-per-minute",
            "600",
        ],
    ));
    assert!(
        registered.stdout.contains("discovered 5 tools"),
        "{}",
        registered.stdout
    );
    assert!(
        registered
            .stdout
            .lines()
            .any(|l| l.starts_with("max_calls_per_minute") && l.trim_end().ends_with(" 600")),
        "{}",
        registered.stdout
    );
    let servers = ok(aos(home, &url, Some(key), &["--json", "mcp", "list"])).json();
    assert_eq!(servers.as_array().unwrap().len(), 1, "{servers}");
    let server_id = servers[0]["id"].as_str().unwrap().to_owned();
    let table = ok(aos(home, &url, Some(key), &["mcp", "list"]));
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("NAME"),
        "{}",
        table.stdout
    );
    assert!(
        lines[1].starts_with(&server_id) && lines[1].contains("ACTIVE"),
        "{}",
        table.stdout
    );
    let described = ok(aos(home, &url, Some(key), &["mcp", "describe", &server_id]));
    assert!(described.stdout.contains(&upstream.url), "{}", described.stdout);
    let tools = ok(aos(home, &url, Some(key), &["--json", "mcp", "tools", &server_id])).json();
    let tool = |name: &str| {
        tools.as_array().unwrap().iter().find(|t| t["name"] == name).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (echo, wipe) = (tool("echo"), tool("wipe"));
    let discovered = ok(aos(home, &url, Some(key), &["--json", "mcp", "discover", &server_id])).json();
    assert_eq!(discovered["tools_found"], 5);

    // A governed call, then the ways a call can go wrong.
    let result = ok(aos(
        home,
        &url,
        Some(key),
        &[
            "--json",
            "mcp",
            "invoke",
            &echo,
            "--input",
            r#"{"text":"hi"}"#,
            "--run-id",
            "r1",
        ],
    ))
    .json();
    assert_eq!(result["status"], "SUCCESS");
    assert_eq!(result["output"]["content"][0]["text"], "hi");
    let invalid = aos(
        home,
        &url,
        Some(key),
        &["mcp", "invoke", &echo, "--input", r#"{"text":5}"#],
    );
    assert_eq!(invalid.code, 1, "{}", invalid.stderr);
    assert!(invalid.stderr.contains("invalid_tool_input"), "{}", invalid.stderr);
    let not_json = aos(home, &url, Some(key), &["mcp", "invoke", &echo, "--input", "{text"]);
    assert_eq!(not_json.code, 2, "{}", not_json.stderr);
    let usage = aos(
        home,
        &url,
        Some(key),
        &["mcp", "tool", "risk", &echo, "--level", "extreme"],
    );
    assert_eq!(usage.code, 2, "{}", usage.stderr);

    // Enable the destructive tool, make it CRITICAL: a call waits (exit 6), approve it.
    let enabled = ok(aos(home, &url, Some(key), &["--json", "mcp", "tool", "enable", &wipe])).json();
    assert_eq!(enabled["enabled"], true);
    let risky = ok(aos(
        home,
        &url,
        Some(key),
        &["--json", "mcp", "tool", "risk", &wipe, "--level", "critical"],
    ))
    .json();
    assert_eq!(risky["risk_level"], "CRITICAL");
    let pending = aos(
        home,
        &url,
        Some(key),
        &["--json", "mcp", "invoke", &wipe, "--input", r#"{"table":"t"}"#],
    );
    assert_eq!(pending.code, 6, "{}", pending.stderr);
    let pending_json = pending.json();
    assert_eq!(pending_json["status"], "PENDING_APPROVAL");
    let approval = pending_json["approval_id"].as_str().unwrap().to_owned();
    assert!(pending.stderr.contains(&approval), "{}", pending.stderr);
    let queue = ok(aos(
        home,
        &url,
        Some(key),
        &["--json", "approvals", "list", "--status", "pending"],
    ))
    .json();
    assert_eq!(queue.as_array().unwrap().len(), 1);
    assert_eq!(queue[0]["id"], approval.as_str());
    // The requester may not approve its own call: 403, exit 3.
    let own = aos(home, &url, Some(key), &["approvals", "approve", &approval]);
    assert_eq!(own.code, 3, "{}", own.stderr);
    let approved = ok(aos(
        home,
        &url,
        Some(&approver),
        &["--json", "approvals", "approve", &approval],
    ))
    .json();
    assert_eq!(approved["approval"]["status"], "APPROVED");
    assert_eq!(approved["invocation"]["status"], "SUCCESS");
    assert_eq!(gov.calls_of("wipe"), 1);
    let twice = aos(home, &url, Some(&approver), &["approvals", "approve", &approval]);
    assert_eq!(twice.code, 1, "a conflict: {}", twice.stderr);

    let disabled = ok(aos(home, &url, Some(key), &["--json", "mcp", "tool", "disable", &echo])).json();
    assert_eq!(disabled["enabled"], false);
    let blocked = aos(
        home,
        &url,
        Some(key),
        &["mcp", "invoke", &echo, "--input", r#"{"text":"x"}"#],
    );
    assert_eq!(blocked.code, 6, "{}", blocked.stderr);
    assert!(blocked.stdout.contains("BLOCKED"), "{}", blocked.stdout);

    // The kill switch from the CLI: an operator freezes the key, its call is refused
    // (exit 1, kill_switch_active), the status shows it, unfreeze restores it.
    let key_id = created["api_key"]["id"].as_str().unwrap().to_owned();
    let frozen = ok(aos(
        home,
        &url,
        Some(OPERATOR_TOKEN),
        &["killswitch", "freeze", "--key", &key_id, "--reason", "cli test"],
    ));
    assert!(
        frozen.stdout.contains("FROZEN") && frozen.stdout.contains("cli test"),
        "{}",
        frozen.stdout
    );
    let refused = aos(
        home,
        &url,
        Some(key),
        &["mcp", "invoke", &echo, "--input", r#"{"text":"x"}"#],
    );
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(refused.stderr.contains("kill_switch_active"), "{}", refused.stderr);
    let status = ok(aos(
        home,
        &url,
        Some(OPERATOR_TOKEN),
        &["--json", "killswitch", "status", "--tenant", &tenant_id],
    ))
    .json();
    assert_eq!(status["frozen_keys"], serde_json::json!([key_id]));
    ok(aos(
        home,
        &url,
        Some(OPERATOR_TOKEN),
        &["killswitch", "unfreeze", "--key", &key_id],
    ));
    let usage = aos(home, &url, Some(OPERATOR_TOKEN), &["killswitch", "freeze"]);
    assert_eq!(usage.code, 2, "{}", usage.stderr);

    // Audit and incidents.
    let verified = ok(aos(home, &url, Some(key), &["audit", "verify"]));
    assert!(
        verified.stdout.contains("valid") && verified.stdout.contains("true"),
        "{}",
        verified.stdout
    );
    let events = ok(aos(
        home,
        &url,
        Some(key),
        &["--json", "audit", "events", "--type", "APPROVAL_GRANTED"],
    ))
    .json();
    assert_eq!(events.as_array().unwrap().len(), 1, "{events}");
    let invocations = ok(aos(
        home,
        &url,
        Some(key),
        &["--json", "mcp", "invocations", &server_id],
    ))
    .json();
    assert!(invocations.as_array().unwrap().len() >= 3, "{invocations}");

    // Health of every server, then with the upstream gone: exit 6.
    let health = ok(aos(home, &url, Some(key), &["--json", "mcp", "health"])).json();
    assert_eq!(health[0]["healthy"], true, "{health}");
    drop(upstream);
    let sick = aos(home, &url, Some(key), &["mcp", "health", &server_id]);
    assert_eq!(sick.code, 6, "{} {}", sick.stdout, sick.stderr);
    assert!(sick.stdout.contains("false"), "{}", sick.stdout);

    // Exit codes for the failure classes.
    let missing = aos(
        home,
        &url,
        Some(key),
        &["mcp", "describe", &uuid::Uuid::new_v4().to_string()],
    );
    assert_eq!(missing.code, 4, "{}", missing.stderr);
    assert!(missing.stderr.contains("not_found"), "{}", missing.stderr);
    let wrong_key = "aos_k_wrong_wrong_wrong";
    let denied = aos(home, &url, Some(wrong_key), &["whoami"]);
    assert_eq!(denied.code, 3, "{}", denied.stderr);
    let forbidden = aos(home, &url, Some(key), &["tenants", "list"]);
    assert_eq!(forbidden.code, 3, "{}", forbidden.stderr);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let unreachable = aos(home, &dead, Some(key), &["whoami"]);
    assert_eq!(unreachable.code, 5, "{}", unreachable.stderr);
    let no_key = aos(home, &url, None, &["whoami"]);
    assert_eq!(no_key.code, 2, "{}", no_key.stderr);

    // The key from the flag is not echoed either, even when the call fails.
    let flagged = aos(home, &url, None, &["--api-key", wrong_key, "whoami"]);
    assert_eq!(flagged.code, 3);
    assert!(!flagged.stderr.contains(wrong_key) && !flagged.stdout.contains(wrong_key));

    // The config file: url and a key file, used when neither flag nor environment says.
    let key_file = home.join("key");
    std::fs::write(&key_file, format!("{key}\n")).unwrap();
    let config = home.join(".config/aos/config.toml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(
        &config,
        format!("url = \"{url}\"\napi_key_file = \"{}\"\n", key_file.display()),
    )
    .unwrap();
    let mut command = Command::new(workspace_bin("aos"));
    let output = command
        .args(["--json", "whoami"])
        .env_clear()
        .env("HOME", home)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let who: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(who["tenant_id"], tenant_id.as_str());
    let bad_config = aos(home, &url, Some(key), &["--config", "/nonexistent/aos.toml", "whoami"]);
    assert_eq!(bad_config.code, 2, "{}", bad_config.stderr);
    std::fs::write(&config, "url = 5\n").unwrap();
    let broken = aos(home, &url, Some(key), &["whoami"]);
    assert_eq!(broken.code, 2, "{}", broken.stderr);

    // Tenant lifecycle from the CLI: a suspended tenant's key is refused (exit 3).
    std::fs::remove_file(&config).unwrap();
    let suspended = ok(aos(
        home,
        &url,
        Some(OPERATOR_TOKEN),
        &["--json", "tenants", "suspend", &tenant_id],
    ))
    .json();
    assert_eq!(suspended["status"], "SUSPENDED");
    // (Replicas pick a status change up within a second.)
    let mut refused = aos(home, &url, Some(key), &["whoami"]);
    for _ in 0..40 {
        if refused.code != 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        refused = aos(home, &url, Some(key), &["whoami"]);
    }
    assert_eq!(refused.code, 3, "{}", refused.stderr);
    assert!(refused.stderr.contains("tenant_suspended"), "{}", refused.stderr);
}

async fn the_cli_manages_agents_their_keys_manifests_and_freezes(backend: Backend) {
    let app: TestApp = spawn_opts(backend, Options::default()).await;
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let url = app.base.clone();
    let gov = GovServer::default();
    let upstream = mcp_servers::streamable_http(gov.clone(), None).await;
    let tenant = app.create_tenant("cli-agents").await;
    let (_, admin) = app.create_key(&tenant, &["admin"]).await;
    aos_tests::register_server(&app, &admin, "gov", &upstream.url, serde_json::json!({})).await;
    let key = Some(admin.as_str());

    let agent = ok(aos(
        home,
        &url,
        key,
        &[
            "--json",
            "agents",
            "create",
            "--name",
            "bot",
            "--capability",
            "gov.echo",
            "--capability",
            "gov.n*:LOW:approval",
        ],
    ))
    .json();
    let id = agent["id"].as_str().unwrap().to_owned();
    assert_eq!(agent["capabilities"][1]["max_risk"], "LOW");
    assert_eq!(agent["capabilities"][1]["requires_approval"], true);
    let bad = aos(
        home,
        &url,
        key,
        &["agents", "create", "--name", "x", "--capability", "gov"],
    );
    assert_eq!(bad.code, 1, "{}", bad.stderr);
    assert!(bad.stderr.contains("capabilities[0].tool"), "{}", bad.stderr);
    let bad = aos(
        home,
        &url,
        key,
        &["agents", "create", "--name", "x", "--capability", "a.b:LOW:maybe"],
    );
    assert_eq!(bad.code, 2, "{}", bad.stderr);

    let table = ok(aos(home, &url, key, &["agents", "list"])).stdout;
    assert!(
        table.contains("bot") && table.contains("gov.n* (up to LOW) [approval]"),
        "{table}"
    );
    let described = ok(aos(home, &url, key, &["agents", "describe", &id])).stdout;
    assert!(described.contains("manifest_pinned"), "{described}");

    // A key of the agent: printed once, never again.
    let created = ok(aos(
        home,
        &url,
        key,
        &["--json", "agents", "keys", "create", &id, "--name", "k1"],
    ))
    .json();
    let secret = created["key"].as_str().unwrap().to_owned();
    assert_eq!(created["api_key"]["scopes"], serde_json::json!(["mcp:invoke"]));
    let keys = ok(aos(home, &url, key, &["agents", "keys", "list", &id])).stdout;
    assert!(keys.contains("k1") && !keys.contains(&secret), "{keys}");

    // Manifests: issue, show, verify (valid: 0; tampered: 6).
    let issued = ok(aos(home, &url, key, &["--json", "agents", "manifest", "issue", &id])).json();
    assert_eq!(issued["version"], 1);
    let token = issued["manifest"].as_str().unwrap().to_owned();
    let shown = ok(aos(home, &url, key, &["agents", "manifest", "show", &id])).stdout;
    assert!(shown.contains("gov.echo") && shown.contains(&token), "{shown}");
    let file = home.join("manifest.jws");
    std::fs::write(&file, &token).unwrap();
    let valid = ok(aos(
        home,
        &url,
        key,
        &["agents", "manifest", "verify", file.to_str().unwrap()],
    ))
    .stdout;
    assert!(valid.starts_with("valid: agent"), "{valid}");
    let mut tampered = token.clone();
    tampered.pop();
    let invalid = aos(home, &url, key, &["agents", "manifest", "verify", &tampered]);
    assert_eq!(invalid.code, 6, "{} {}", invalid.stdout, invalid.stderr);
    assert!(invalid.stdout.contains("INVALID"), "{}", invalid.stdout);

    // Freeze and unfreeze; delete.
    let frozen = ok(aos(home, &url, key, &["agents", "freeze", &id, "--reason", "runaway"])).stdout;
    assert!(frozen.contains("frozen (runaway)"), "{frozen}");
    assert_eq!(
        ok(aos(home, &url, key, &["--json", "agents", "describe", &id])).json()["frozen"],
        true
    );
    ok(aos(home, &url, key, &["agents", "unfreeze", &id]));
    ok(aos(home, &url, key, &["agents", "delete", &id]));
    let gone = aos(home, &url, key, &["agents", "describe", &id]);
    assert_eq!(gone.code, 4, "{}", gone.stderr);
}
