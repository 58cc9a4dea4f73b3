//! The server's configuration: defaults, then an optional TOML file, then `DATABASE_URL`,
//! then `AOS_*` variables (`AOS_SECTION__KEY`, e.g. `AOS_SERVER__BIND`). Each layer's
//! part is its own crate's type; this file only assembles and validates them.

use std::net::SocketAddr;
use std::path::Path;

use aos_api::ApiConfig;
use aos_spine::{
    ApprovalSettings, AuthConfig, ConfigError, DatabaseConfig, ManifestSettings, McpSettings, PolicySettings,
    ProxyConfig, SpineConfig, TelemetrySettings,
};
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;

/// The top-level sections; an `AOS_` variable outside them is not configuration.
const SECTIONS: [&str; 11] = [
    "server",
    "http",
    "database",
    "auth",
    "mcp",
    "telemetry",
    "policy",
    "approvals",
    "manifest",
    "proxy",
    "log",
];

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub http: ApiConfig,
    pub database: DatabaseConfig,
    pub auth: AuthConfig,
    pub mcp: McpSettings,
    pub telemetry: TelemetrySettings,
    pub policy: PolicySettings,
    pub approvals: ApprovalSettings,
    pub manifest: ManifestSettings,
    pub proxy: ProxyConfig,
    pub log: LogConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on.
    pub bind: String,
    /// HTTP worker threads (default: one per core).
    pub workers: Option<usize>,
    /// Seconds to let in-flight requests finish after SIGTERM/SIGINT.
    pub shutdown_timeout_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            workers: None,
            shutdown_timeout_secs: 30,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing filter (`info`, `aos_api=debug,info`); `RUST_LOG` overrides it.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Pretty,
            filter: "info".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("configuration file {0} does not exist")]
    MissingFile(String),
    #[error("invalid configuration: {0}")]
    Parse(String),
    #[error("invalid configuration: {0}")]
    Invalid(#[from] ConfigError),
}

/// Loads and validates the configuration. `file` is optional; when given it must exist.
pub fn load(file: Option<&Path>) -> Result<Config, LoadError> {
    let mut figment = Figment::new();
    if let Some(path) = file {
        if !path.exists() {
            return Err(LoadError::MissingFile(path.display().to_string()));
        }
        figment = figment.merge(Toml::file_exact(path));
    }
    figment = figment
        .merge(Env::raw().only(&["DATABASE_URL"]).map(|_| "database.url".into()))
        .merge(
            Env::prefixed("AOS_")
                .filter(|key| {
                    let key = key.as_str().to_ascii_lowercase();
                    SECTIONS.iter().any(|s| key.starts_with(&format!("{s}__")))
                })
                .split("__"),
        );
    let config: Config = figment.extract().map_err(|e| LoadError::Parse(describe(e)))?;
    config.validate()?;
    Ok(config)
}

/// figment's errors name the key and the source; keep every one of them.
fn describe(err: figment::Error) -> String {
    err.into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let source = e.metadata.as_ref().map(|m| m.name.to_string()).unwrap_or_default();
            let kind = e.kind.to_string();
            match (key.is_empty(), source.is_empty()) {
                (false, false) => format!("{key}: {kind} (from {source})"),
                (false, true) => format!("{key}: {kind}"),
                _ => kind,
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl Config {
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.bind_addr()?;
        if self.server.workers == Some(0) {
            return Err(ConfigError::new("server.workers", "must be at least 1"));
        }
        self.http
            .validate()
            .map_err(|(key, message)| ConfigError::new(key, message))?;
        self.spine().validate()?;
        tracing_subscriber::EnvFilter::try_new(&self.log.filter)
            .map_err(|e| ConfigError::new("log.filter", e.to_string()))?;
        Ok(())
    }

    /// The spine's part of the configuration.
    pub fn spine(&self) -> SpineConfig {
        SpineConfig {
            database: self.database.clone(),
            auth: self.auth.clone(),
            mcp: self.mcp.clone(),
            telemetry: self.telemetry.clone(),
            policy: self.policy.clone(),
            approvals: self.approvals.clone(),
            manifest: self.manifest.clone(),
            proxy: self.proxy.clone(),
        }
    }

    pub fn bind_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.server
            .bind
            .parse()
            .map_err(|_| ConfigError::new("server.bind", "must be IP:PORT, e.g. 127.0.0.1:8080"))
    }
}

#[cfg(test)]
// figment::Jail's closure error type is its own (large) error; not ours to shrink.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn defaults_pick_sqlite_and_localhost() {
        Jail::expect_with(|_| {
            let config = load(None).unwrap();
            assert_eq!(config.database.backend_name(), "sqlite");
            assert_eq!(config.bind_addr().unwrap().to_string(), "127.0.0.1:8080");
            Ok(())
        });
    }

    #[test]
    fn database_url_picks_postgres_and_aos_variables_win() {
        Jail::expect_with(|jail| {
            jail.set_env("DATABASE_URL", "postgres://u:secret@db.example:5432/aos");
            jail.set_env("AOS_SERVER__BIND", "0.0.0.0:9000");
            jail.set_env("AOS_TEST_DATABASE_URL", "not config, must be ignored");
            let config = load(None).unwrap();
            assert_eq!(config.database.backend_name(), "postgres");
            assert!(!config.database.redacted_url().contains("secret"));
            assert_eq!(config.server.bind, "0.0.0.0:9000");
            Ok(())
        });
    }

    #[test]
    fn errors_name_the_bad_key() {
        Jail::expect_with(|jail| {
            jail.create_file("aos.toml", "[database]\nmax_conections = 3\n")?;
            let err = load(Some(Path::new("aos.toml"))).unwrap_err().to_string();
            assert!(err.contains("max_conections"), "{err}");

            jail.create_file("aos.toml", "[database]\nmax_connections = \"many\"\n")?;
            let err = load(Some(Path::new("aos.toml"))).unwrap_err().to_string();
            assert!(err.contains("database.max_connections"), "{err}");

            jail.create_file("aos.toml", "[database]\nmax_connections = 0\n")?;
            let err = load(Some(Path::new("aos.toml"))).unwrap_err().to_string();
            assert!(err.contains("database.max_connections"), "{err}");

            jail.create_file("aos.toml", "[server]\nbind = \"nowhere\"\n")?;
            let err = load(Some(Path::new("aos.toml"))).unwrap_err().to_string();
            assert!(err.contains("server.bind"), "{err}");

            jail.set_env("AOS_DATABASE__URL", "mysql://x");
            let err = load(None).unwrap_err().to_string();
            assert!(err.contains("database.url"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn a_named_file_must_exist() {
        Jail::expect_with(|_| {
            let err = load(Some(Path::new("missing.toml"))).unwrap_err();
            assert!(matches!(err, LoadError::MissingFile(_)));
            Ok(())
        });
    }
}
