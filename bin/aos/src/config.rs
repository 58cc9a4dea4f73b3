//! Where the CLI finds AOS and its key: flags, then `AOS_URL` / `AOS_API_KEY` (both read by
//! clap), then a config file (`--config`, `AOS_CONFIG`, or `~/.config/aos/config.toml`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Format, Toml};
use secrecy::SecretString;
use serde::Deserialize;

pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";

/// The config file's keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    url: Option<String>,
    api_key: Option<SecretString>,
    /// A file holding the key (a mounted secret, say); read at start, trimmed.
    api_key_file: Option<PathBuf>,
    timeout_secs: Option<u64>,
}

/// What the CLI connects with.
pub struct Resolved {
    pub url: String,
    pub api_key: Option<SecretString>,
    pub timeout: Duration,
}

fn default_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))?;
    Some(base.join("aos").join("config.toml"))
}

fn read_key_file(path: &Path) -> Result<SecretString, String> {
    let text =
        std::fs::read_to_string(path).map_err(|err| format!("cannot read api_key_file {}: {err}", path.display()))?;
    let key = text.trim();
    if key.is_empty() {
        return Err(format!("api_key_file {} is empty", path.display()));
    }
    Ok(SecretString::from(key.to_owned()))
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        eprintln!(
            "warning: {} holds an API key and is readable by other users (chmod 600 it)",
            path.display()
        );
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

/// Merges flags (and the environment, which clap already folded into them) over the file.
pub fn resolve(
    flag_url: Option<String>,
    flag_key: Option<SecretString>,
    flag_config: Option<PathBuf>,
    flag_timeout: Option<u64>,
) -> Result<Resolved, String> {
    // An explicit --config must exist; the default location is optional.
    let (path, required) = match flag_config {
        Some(path) => (Some(path), true),
        None => (default_path(), false),
    };
    let mut file = FileConfig::default();
    if let Some(path) = path {
        if path.exists() {
            file = Figment::new()
                .merge(Toml::file_exact(&path))
                .extract()
                .map_err(|err| format!("config file {}: {err}", path.display()))?;
            if file.api_key.is_some() {
                warn_if_readable_by_others(&path);
            }
        } else if required {
            return Err(format!("config file {} does not exist", path.display()));
        }
    }
    let api_key = match (flag_key, file.api_key, file.api_key_file) {
        (Some(key), _, _) => Some(key),
        (None, Some(_), Some(_)) => return Err("config file: set api_key or api_key_file, not both".to_owned()),
        (None, Some(key), None) => Some(key),
        (None, None, Some(path)) => {
            warn_if_readable_by_others(&path);
            Some(read_key_file(&path)?)
        }
        (None, None, None) => None,
    };
    let timeout = flag_timeout.or(file.timeout_secs).unwrap_or(60);
    if timeout == 0 {
        return Err("the timeout must be at least one second".to_owned());
    }
    Ok(Resolved {
        url: flag_url.or(file.url).unwrap_or_else(|| DEFAULT_URL.to_owned()),
        api_key,
        timeout: Duration::from_secs(timeout),
    })
}
