//! Rebuild when a migration changes (diesel's `embed_migrations!` does not track the
//! files), and fingerprint the PostgreSQL migrations so that test templates built from an
//! older set are never reused.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut all = Vec::new();
    files(&root, &mut all);
    all.sort();
    let mut hasher = DefaultHasher::new();
    for path in &all {
        println!("cargo:rerun-if-changed={}", path.display());
        path.strip_prefix(&root).unwrap_or(path).hash(&mut hasher);
        std::fs::read(path).unwrap_or_default().hash(&mut hasher);
    }
    println!("cargo:rustc-env=AOS_MIGRATIONS_FINGERPRINT={:016x}", hasher.finish());
}
