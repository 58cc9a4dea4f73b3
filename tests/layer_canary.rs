//! The layer rules must bite. `cargo deny check bans` passes on the real tree, and fails
//! — naming the offending edge — on a copy of the workspace manifests where aos-api
//! depends on aos-drivers. Requires cargo-deny (`cargo install --locked cargo-deny`,
//! which `.ci/run` does); without it this test fails, it does not skip.

// Integration tests: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn cargo_deny(manifest: &Path, checks: &[&str]) -> Output {
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .arg("deny")
        .arg("--manifest-path")
        .arg(manifest)
        .arg("check")
        .args(checks)
        .output()
        .expect("run cargo");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("no such command") && !stderr.contains("no such subcommand"),
        "cargo-deny is not installed: run `cargo install --locked cargo-deny` (.ci/run does)"
    );
    output
}

/// Workspace members, read from the root manifest's `members = [...]` list.
fn members(root_manifest: &str) -> Vec<String> {
    let start = root_manifest.find("members = [").expect("members list");
    let rest = &root_manifest[start..];
    let end = rest.find(']').expect("end of members list");
    rest[..end].split('"').skip(1).step_by(2).map(str::to_owned).collect()
}

/// Copies every manifest (plus Cargo.lock and deny.toml) and gives each member empty
/// targets, which is all `cargo metadata` needs to build the graph.
fn copy_manifests(from: &Path, to: &Path) {
    let root = std::fs::read_to_string(from.join("Cargo.toml")).unwrap();
    for file in ["Cargo.toml", "Cargo.lock", "deny.toml"] {
        std::fs::copy(from.join(file), to.join(file)).unwrap();
    }
    for member in members(&root) {
        let dir = to.join(&member);
        std::fs::create_dir_all(dir.join("src")).unwrap();
        let manifest = std::fs::read_to_string(from.join(&member).join("Cargo.toml")).unwrap();
        std::fs::write(dir.join("Cargo.toml"), &manifest).unwrap();
        // Every target path a manifest names, plus the default ones.
        let mut paths = vec!["src/lib.rs".to_owned(), "src/main.rs".to_owned()];
        for line in manifest.lines() {
            if let Some(path) = line.trim().strip_prefix("path = \"").and_then(|p| p.strip_suffix('"')) {
                paths.push(path.to_owned());
            }
        }
        for path in paths {
            let file = dir.join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, "").unwrap();
        }
    }
}

#[test]
fn the_real_tree_passes_bans_licenses_and_sources() {
    let output = cargo_deny(&workspace_root().join("Cargo.toml"), &["bans", "licenses", "sources"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn an_api_to_drivers_edge_fails_naming_the_edge() {
    let dir = tempfile::tempdir().unwrap();
    copy_manifests(&workspace_root(), dir.path());

    // Control: the unmodified copy passes, so the failure below is the edge's doing.
    let control = cargo_deny(&dir.path().join("Cargo.toml"), &["bans"]);
    assert!(
        control.status.success(),
        "copy should pass: {}",
        String::from_utf8_lossy(&control.stderr)
    );

    let api = dir.path().join("crates/aos-api/Cargo.toml");
    let manifest = std::fs::read_to_string(&api).unwrap();
    let edited = manifest.replacen("[dependencies]\n", "[dependencies]\naos-drivers.workspace = true\n", 1);
    assert_ne!(edited, manifest, "aos-api has a [dependencies] table");
    std::fs::write(&api, edited).unwrap();

    let output = cargo_deny(&dir.path().join("Cargo.toml"), &["bans"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "an api -> drivers edge must fail bans:\n{stderr}"
    );
    assert!(
        stderr.contains("direct parent 'aos-api") && stderr.contains("banned crate 'aos-drivers"),
        "the failure must name the aos-api -> aos-drivers edge:\n{stderr}"
    );
}

#[test]
fn members_are_read_from_the_root_manifest() {
    let found = members("[workspace]\nmembers = [\n  \"crates/a\",\n  \"bin/b\",\n]\n");
    assert_eq!(found, ["crates/a", "bin/b"]);
}
