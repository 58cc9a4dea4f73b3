//! The spine's part of the server configuration. Deserialised by the binary from TOML and
//! `AOS_*` variables; validated here so errors name the offending key.

use std::path::PathBuf;
use std::time::Duration;

use aos_engines::auth::{JwtSettings, JwtVerifier};
pub use aos_engines::governance::policy::{OpaSettings, PolicySettings};
pub use aos_engines::mcp::client::McpSettings;
pub use aos_engines::mcp::manifest::ManifestSettings;
pub use aos_engines::proxy::ProxyConfig;
pub use aos_engines::telemetry::TelemetrySettings;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// An invalid configuration value, naming its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// `[database]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `postgres://...` selects PostgreSQL. Absent: SQLite at `sqlite_path`.
    /// Also read from `DATABASE_URL`.
    pub url: Option<SecretString>,
    /// The embedded database file when no `url` is set.
    pub sqlite_path: PathBuf,
    /// Pool size.
    pub max_connections: usize,
    /// How long a request waits for a connection, in milliseconds.
    pub acquire_timeout_ms: u64,
    /// SQLite: how long a writer waits for the lock, in milliseconds.
    pub sqlite_busy_timeout_ms: u64,
    /// Apply pending migrations when the server starts.
    pub migrate_on_start: bool,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: None,
            sqlite_path: PathBuf::from("./data/aos.db"),
            max_connections: 10,
            acquire_timeout_ms: 5_000,
            sqlite_busy_timeout_ms: 5_000,
            migrate_on_start: true,
        }
    }
}

impl DatabaseConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.url {
            let url = url.expose_secret();
            let is_pg = url.starts_with("postgres://") || url.starts_with("postgresql://");
            let is_sqlite = url.starts_with("sqlite:");
            if !is_pg && !is_sqlite {
                return Err(ConfigError::new(
                    "database.url",
                    "must start with postgres://, postgresql:// or sqlite:",
                ));
            }
            if is_pg && url::Url::parse(url).is_err() {
                return Err(ConfigError::new("database.url", "is not a valid URL"));
            }
            if url.contains(":memory:") || url.contains("mode=memory") {
                return Err(ConfigError::new(
                    "database.url",
                    "an in-memory SQLite database cannot be used",
                ));
            }
        } else if self.sqlite_path.as_os_str().is_empty() {
            return Err(ConfigError::new("database.sqlite_path", "must not be empty"));
        }
        if !(1..=1000).contains(&self.max_connections) {
            return Err(ConfigError::new(
                "database.max_connections",
                "must be between 1 and 1000",
            ));
        }
        if self.acquire_timeout_ms == 0 {
            return Err(ConfigError::new(
                "database.acquire_timeout_ms",
                "must be greater than 0",
            ));
        }
        Ok(())
    }

    /// `postgres` or `sqlite`.
    pub fn backend_name(&self) -> &'static str {
        match &self.url {
            Some(url) if !url.expose_secret().starts_with("sqlite:") => "postgres",
            _ => "sqlite",
        }
    }

    pub(crate) fn connect_options(&self) -> aos_drivers::ConnectOptions {
        let url = match &self.url {
            Some(url) => url.clone(),
            None => SecretString::from(format!("sqlite://{}", self.sqlite_path.display())),
        };
        let mut options = aos_drivers::ConnectOptions::new(url);
        options.max_connections = self.max_connections;
        options.acquire_timeout = Duration::from_millis(self.acquire_timeout_ms);
        options.sqlite_busy_timeout = Duration::from_millis(self.sqlite_busy_timeout_ms);
        options
    }

    /// The database URL without its password: safe to log.
    pub fn redacted_url(&self) -> String {
        self.connect_options().redacted_url()
    }
}

/// `[auth]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// The platform operator's bearer token (at least 16 characters). When absent, one is
    /// read from, or generated into, `operator_token_file`.
    pub operator_token: Option<SecretString>,
    pub operator_token_file: PathBuf,
    /// Human callers: JWTs from the customer's identity provider (`[auth.jwt]`).
    pub jwt: Option<JwtSettings>,
    /// Failed authentications per address or key prefix before 429.
    pub max_failed_attempts: u32,
    /// The window those failures are counted in, in seconds.
    pub failure_window_secs: u64,
    /// How long a cached credential is trusted without re-reading it, in seconds.
    pub cache_ttl_secs: u64,
    /// How often each replica checks whether credentials changed, in milliseconds.
    /// A revoked key or suspended tenant is refused within this interval.
    pub cache_poll_ms: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            operator_token: None,
            operator_token_file: PathBuf::from("./data/operator-token"),
            jwt: None,
            max_failed_attempts: 10,
            failure_window_secs: 60,
            cache_ttl_secs: 30,
            cache_poll_ms: 250,
        }
    }
}

impl AuthConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(token) = &self.operator_token
            && token.expose_secret().trim().len() < 16
        {
            return Err(ConfigError::new(
                "auth.operator_token",
                "must be at least 16 characters",
            ));
        }
        if !(10..=1000).contains(&self.cache_poll_ms) {
            return Err(ConfigError::new("auth.cache_poll_ms", "must be between 10 and 1000"));
        }
        if self.max_failed_attempts == 0 {
            return Err(ConfigError::new("auth.max_failed_attempts", "must be at least 1"));
        }
        if self.failure_window_secs == 0 {
            return Err(ConfigError::new("auth.failure_window_secs", "must be at least 1"));
        }
        if self.cache_ttl_secs == 0 {
            return Err(ConfigError::new("auth.cache_ttl_secs", "must be at least 1"));
        }
        if let Some(jwt) = &self.jwt {
            JwtVerifier::new(jwt).map_err(|message| match message.split_once(": ") {
                Some((key, rest)) => ConfigError::new(key, rest),
                None => ConfigError::new("auth.jwt", message),
            })?;
        }
        Ok(())
    }
}

/// `[approvals]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApprovalSettings {
    /// How long an approval stays PENDING before it expires, in seconds.
    pub ttl_secs: u64,
    /// How often the sweeper expires due approvals, in milliseconds (0 disables it).
    pub sweep_interval_ms: u64,
    /// Let the requester decide its own approval (off by default: four eyes).
    pub allow_self_approval: bool,
}

impl Default for ApprovalSettings {
    fn default() -> Self {
        Self {
            ttl_secs: 3_600,
            sweep_interval_ms: 5_000,
            allow_self_approval: false,
        }
    }
}

/// Everything the spine needs to start.
#[derive(Debug, Clone, Default)]
pub struct SpineConfig {
    pub database: DatabaseConfig,
    pub auth: AuthConfig,
    pub mcp: McpSettings,
    pub telemetry: TelemetrySettings,
    pub policy: PolicySettings,
    pub approvals: ApprovalSettings,
    pub manifest: ManifestSettings,
    pub proxy: ProxyConfig,
}

impl SpineConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.database.validate()?;
        self.auth.validate()?;
        aos_engines::mcp::client::McpRuntime::new(self.mcp.clone()).map_err(|message| {
            match message.split_once(": ") {
                Some((key, rest)) => ConfigError::new(key, rest),
                None => ConfigError::new("mcp", message),
            }
        })?;
        if !(1..=100_000).contains(&self.telemetry.max_batch) {
            return Err(ConfigError::new("telemetry.max_batch", "must be between 1 and 100000"));
        }
        if self.telemetry.max_range_days < 1 {
            return Err(ConfigError::new("telemetry.max_range_days", "must be at least 1"));
        }
        if !(1..=30 * 24 * 3600).contains(&self.approvals.ttl_secs) {
            return Err(ConfigError::new("approvals.ttl_secs", "must be between 1 and 2592000"));
        }
        if !(100..=600_000).contains(&self.mcp.call_timeout_ms) {
            return Err(ConfigError::new(
                "mcp.call_timeout_ms",
                "must be between 100 and 600000",
            ));
        }
        if !(1024..=64 * 1024 * 1024).contains(&self.mcp.max_output_bytes) {
            return Err(ConfigError::new(
                "mcp.max_output_bytes",
                "must be between 1024 and 67108864",
            ));
        }
        if !matches!(self.policy.engine.as_str(), "embedded" | "opa") {
            return Err(ConfigError::new("policy.engine", "must be embedded or opa"));
        }
        aos_engines::proxy::Proxy::new(self.proxy.clone()).map_err(|message| match message.split_once(": ") {
            Some((key, rest)) => ConfigError::new(key, rest),
            None => ConfigError::new("proxy", message),
        })?;
        if self.mcp.health_concurrency == 0 {
            return Err(ConfigError::new("mcp.health_concurrency", "must be at least 1"));
        }
        Ok(())
    }
}
