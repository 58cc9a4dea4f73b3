//! `[http]` settings that shape request handling.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Largest accepted request body, in bytes (JSON or otherwise).
    pub max_body_bytes: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
        }
    }
}

impl ApiConfig {
    /// Checks values; the error names the key.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if !(1024..=64 * 1024 * 1024).contains(&self.max_body_bytes) {
            return Err(("http.max_body_bytes".into(), "must be between 1024 and 67108864".into()));
        }
        Ok(())
    }
}
