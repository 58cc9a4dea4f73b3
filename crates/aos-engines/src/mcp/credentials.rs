//! Credentials by reference only (INV-3). A server stores an opaque `credential_ref`;
//! the secret is resolved at use time into a [`SecretString`] and is never stored,
//! logged or put in an error.
//!
//! References are confined to the tenant that registered the server, so a tenant can
//! neither read another tenant's secret nor an arbitrary secret of the AOS host:
//!
//! | reference | resolves to |
//! |---|---|
//! | `env://NAME` | the variable `{env_prefix}{TENANT}_{NAME}` (TENANT: the tenant id, hex, upper case) |
//! | `file:///path` | the file `{file_dir}/{tenant id}/path` (no `..`, symlinks must stay inside) |
//! | `vault://mount/path#field` | `field` of the KV v2 secret `{mount}/data/{vault_base}/{tenant id}/{path}` |

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use crate::error::{EngineError, EngineResult};

/// `[mcp.credentials]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CredentialSettings {
    pub env_prefix: String,
    pub file_dir: PathBuf,
    /// e.g. `https://vault.internal:8200`; Vault references fail without it.
    pub vault_address: Option<String>,
    pub vault_token: Option<SecretString>,
    pub vault_base: String,
}

impl Default for CredentialSettings {
    fn default() -> Self {
        Self {
            env_prefix: "AOS_MCP_SECRET_".into(),
            file_dir: PathBuf::from("./data/mcp-credentials"),
            vault_address: None,
            vault_token: None,
            vault_base: "aos".into(),
        }
    }
}

/// A parsed reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialRef {
    Env(String),
    File(PathBuf),
    Vault { mount: String, path: String, field: String },
}

fn plain(segment: &str) -> bool {
    !segment.is_empty()
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && segment != ".."
}

impl CredentialRef {
    /// Parses and validates the syntax (done at registration).
    pub fn parse(raw: &str) -> EngineResult<Self> {
        let bad = |why: &str| EngineError::invalid("credential_ref", why.to_owned());
        if raw.len() > 512 {
            return Err(bad("too long"));
        }
        if let Some(name) = raw.strip_prefix("env://") {
            if name.is_empty()
                || name.len() > 64
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
            {
                return Err(bad("env://NAME takes upper-case letters, digits and underscores"));
            }
            return Ok(Self::Env(name.to_owned()));
        }
        if let Some(path) = raw.strip_prefix("file://") {
            let path = path.trim_start_matches('/');
            let relative = Path::new(path);
            let ok = !path.is_empty()
                && relative
                    .components()
                    .all(|c| matches!(c, Component::Normal(s) if s.to_str().is_some_and(plain)));
            if !ok {
                return Err(bad("file:///path takes a relative path of plain names (no '..')"));
            }
            return Ok(Self::File(relative.to_path_buf()));
        }
        if let Some(rest) = raw.strip_prefix("vault://") {
            let (location, field) = rest
                .split_once('#')
                .ok_or_else(|| bad("vault://mount/path#field needs #field"))?;
            let (mount, path) = location
                .split_once('/')
                .ok_or_else(|| bad("vault://mount/path#field needs a path"))?;
            if !plain(mount) || !plain(field) || !path.split('/').all(plain) {
                return Err(bad("vault://mount/path#field takes plain names"));
            }
            return Ok(Self::Vault {
                mount: mount.into(),
                path: path.into(),
                field: field.into(),
            });
        }
        Err(bad("use env://, file:// or vault://"))
    }
}

/// Resolves references for one tenant.
#[derive(Debug, Clone)]
pub struct Credentials {
    settings: CredentialSettings,
    vault: Option<reqwest::Client>,
}

impl Credentials {
    pub fn new(settings: CredentialSettings) -> Result<Self, String> {
        let vault = match &settings.vault_address {
            Some(address) => {
                url::Url::parse(address).map_err(|e| format!("mcp.credentials.vault_address: {e}"))?;
                crate::outbound::ensure_crypto_provider();
                Some(
                    reqwest::Client::builder()
                        .redirect(reqwest::redirect::Policy::none())
                        .no_proxy()
                        .timeout(Duration::from_secs(5))
                        .build()
                        .map_err(|e| format!("mcp.credentials: {e}"))?,
                )
            }
            None => None,
        };
        Ok(Self { settings, vault })
    }

    /// The secret behind `reference` for `tenant_id`. Errors name the reference, never
    /// a value.
    pub async fn resolve(&self, tenant_id: uuid::Uuid, reference: &str) -> EngineResult<SecretString> {
        let unavailable =
            |why: String| EngineError::unavailable("the MCP server's credential", format!("{reference}: {why}"));
        match CredentialRef::parse(reference)? {
            CredentialRef::Env(name) => {
                let var = format!(
                    "{}{}_{name}",
                    self.settings.env_prefix,
                    tenant_id.simple().to_string().to_uppercase()
                );
                std::env::var(&var)
                    .map(SecretString::from)
                    .map_err(|_| unavailable("not set on this AOS host".into()))
            }
            CredentialRef::File(relative) => {
                let base = self.settings.file_dir.join(tenant_id.to_string());
                let path = base.join(relative);
                let (real, real_base) = match (std::fs::canonicalize(&path), std::fs::canonicalize(&base)) {
                    (Ok(real), Ok(real_base)) => (real, real_base),
                    _ => return Err(unavailable("no such file".into())),
                };
                if !real.starts_with(&real_base) {
                    return Err(unavailable("points outside the tenant's credential directory".into()));
                }
                let text = std::fs::read_to_string(real).map_err(|_| unavailable("unreadable".into()))?;
                Ok(SecretString::from(text.trim().to_owned()))
            }
            CredentialRef::Vault { mount, path, field } => {
                let (Some(client), Some(address)) = (&self.vault, &self.settings.vault_address) else {
                    return Err(unavailable("Vault is not configured".into()));
                };
                let url = format!(
                    "{}/v1/{mount}/data/{}/{tenant_id}/{path}",
                    address.trim_end_matches('/'),
                    self.settings.vault_base
                );
                let mut request = client.get(url);
                if let Some(token) = &self.settings.vault_token {
                    request = request.header("X-Vault-Token", secrecy::ExposeSecret::expose_secret(token));
                }
                let response = request
                    .send()
                    .await
                    .map_err(|_| unavailable("Vault unreachable".into()))?;
                if !response.status().is_success() {
                    return Err(unavailable(format!("Vault answered {}", response.status().as_u16())));
                }
                let body: serde_json::Value = response
                    .json()
                    .await
                    .map_err(|_| unavailable("Vault answer is not JSON".into()))?;
                body.pointer(&format!("/data/data/{field}"))
                    .and_then(|v| v.as_str())
                    .map(|s| SecretString::from(s.to_owned()))
                    .ok_or_else(|| unavailable(format!("field {field} missing")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn references_are_parsed_strictly() {
        assert_eq!(
            CredentialRef::parse("env://GITHUB_TOKEN").unwrap(),
            CredentialRef::Env("GITHUB_TOKEN".into())
        );
        assert_eq!(
            CredentialRef::parse("file:///github/token").unwrap(),
            CredentialRef::File("github/token".into())
        );
        assert_eq!(
            CredentialRef::parse("vault://kv/github#token").unwrap(),
            CredentialRef::Vault {
                mount: "kv".into(),
                path: "github".into(),
                field: "token".into()
            }
        );
        for bad in [
            "env://lower",
            "env://A-B",
            "env://",
            "file:///../etc/passwd",
            "file:///a/../../b",
            "file:///",
            "vault://kv#x",
            "vault://kv/a",
            "vault://kv/../x#y",
            "https://x",
            "plain",
            "",
        ] {
            assert!(CredentialRef::parse(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn env_and_file_references_stay_inside_their_tenant() {
        let dir = tempfile::tempdir().unwrap();
        let tenant = uuid::Uuid::now_v7();
        let other = uuid::Uuid::now_v7();
        std::fs::create_dir_all(dir.path().join(tenant.to_string()).join("gh")).unwrap();
        std::fs::write(dir.path().join(tenant.to_string()).join("gh/token"), "s3cret-file\n").unwrap();
        let prefix = format!("AOS_TEST_{}_", std::process::id());
        let creds = Credentials::new(CredentialSettings {
            env_prefix: prefix.clone(),
            file_dir: dir.path().to_path_buf(),
            ..CredentialSettings::default()
        })
        .unwrap();
        // Setting variables is unsafe in a threaded test; the set case is covered end to
        // end by the server-binary tests. Here: an unset variable names the reference only.
        let var = format!("{prefix}{}_TOKEN", tenant.simple().to_string().to_uppercase());
        assert!(std::env::var(&var).is_err());
        let missing = creds.resolve(tenant, "env://TOKEN").await.unwrap_err().to_string();
        assert!(
            missing.contains("env://TOKEN") && missing.contains("not set"),
            "{missing}"
        );

        let secret = creds.resolve(tenant, "file:///gh/token").await.unwrap();
        assert_eq!(secret.expose_secret(), "s3cret-file");
        // The same reference from another tenant finds nothing.
        let err = creds.resolve(other, "file:///gh/token").await.unwrap_err().to_string();
        assert!(!err.contains("s3cret"), "{err}");
        // A symlink out of the tenant's directory is refused.
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("/etc/hostname", dir.path().join(tenant.to_string()).join("escape")).unwrap();
            let err = creds.resolve(tenant, "file:///escape").await.unwrap_err().to_string();
            assert!(err.contains("outside"), "{err}");
        }
    }

    /// A minimal Vault KV v2 endpoint on loopback: answers one secret to one token.
    async fn fake_vault(tenant: uuid::Uuid) -> (String, tokio::task::JoinHandle<Vec<String>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let wanted = format!("GET /v1/kv/data/aos/{tenant}/github HTTP/1.1");
        let task = tokio::spawn(async move {
            let mut seen = Vec::new();
            for _ in 0..3 {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut buf = vec![0_u8; 4096];
                let n = socket.read(&mut buf).await.unwrap();
                let request = String::from_utf8_lossy(&buf[..n]).to_string();
                let authorised = request.to_ascii_lowercase().contains("x-vault-token: vault-root-token");
                let body = if request.starts_with(&wanted) && authorised {
                    r#"{"data":{"data":{"token":"s3cret-from-vault"},"metadata":{"version":3}}}"#
                } else {
                    r#"{"errors":["permission denied"]}"#
                };
                let status = if body.contains("errors") {
                    "403 Forbidden"
                } else {
                    "200 OK"
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                socket.write_all(response.as_bytes()).await.unwrap();
                seen.push(request.lines().next().unwrap_or_default().to_owned());
            }
            seen
        });
        (address, task)
    }

    #[tokio::test]
    async fn vault_references_read_kv_v2_under_the_tenant() {
        let tenant = uuid::Uuid::now_v7();
        let (address, vault) = fake_vault(tenant).await;
        let creds = Credentials::new(CredentialSettings {
            vault_address: Some(address),
            vault_token: Some(SecretString::from("vault-root-token")),
            ..CredentialSettings::default()
        })
        .unwrap();
        let secret = creds.resolve(tenant, "vault://kv/github#token").await.unwrap();
        assert_eq!(secret.expose_secret(), "s3cret-from-vault");
        let missing = creds
            .resolve(tenant, "vault://kv/github#password")
            .await
            .unwrap_err()
            .to_string();
        assert!(missing.contains("password") && !missing.contains("s3cret"), "{missing}");
        // Another tenant's path is a different secret (here: refused by Vault).
        let other = creds
            .resolve(uuid::Uuid::now_v7(), "vault://kv/github#token")
            .await
            .unwrap_err()
            .to_string();
        assert!(other.contains("403"), "{other}");
        let seen = vault.await.unwrap();
        assert!(
            seen[0].contains(&format!("/v1/kv/data/aos/{tenant}/github")),
            "{seen:?}"
        );
    }
}
