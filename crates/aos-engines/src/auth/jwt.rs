//! Human callers: bearer JWTs from the customer's identity provider, verified against a
//! configured issuer, audience and keys (PEM for RS*/ES*/PS*, or a JWKS URL fetched with a
//! cache and refreshed when an unknown `kid` appears). Symmetric algorithms are refused:
//! AOS never holds the IdP's signing secret.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;

use crate::error::{EngineError, EngineResult};

/// How often an unknown `kid` may trigger a JWKS refetch.
const MIN_REFETCH: Duration = Duration::from_secs(10);
/// Largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 256 * 1024;

/// `[auth.jwt]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JwtSettings {
    /// Required `iss`.
    pub issuer: String,
    /// Required `aud`.
    pub audience: String,
    /// Where the IdP publishes its keys (https, or http on a loopback address).
    pub jwks_url: Option<String>,
    /// Or: a public key in PEM.
    pub public_key_pem: Option<String>,
    /// Or: a file holding one.
    pub public_key_file: Option<PathBuf>,
    /// Accepted algorithms.
    pub algorithms: Vec<String>,
    /// Claim holding the tenant id (a UUID).
    pub tenant_claim: String,
    /// Claim holding the user id.
    pub user_claim: String,
    /// Claim holding roles (an array, or a space/comma separated string).
    pub roles_claim: String,
    /// The role that makes a user a tenant admin (every scope in the tenant).
    pub admin_role: String,
    /// Clock skew tolerated on `exp`/`nbf`, in seconds.
    pub leeway_secs: u64,
    /// How long a fetched JWKS is used before it is fetched again, in seconds.
    pub jwks_cache_secs: u64,
}

impl Default for JwtSettings {
    fn default() -> Self {
        Self {
            issuer: String::new(),
            audience: String::new(),
            jwks_url: None,
            public_key_pem: None,
            public_key_file: None,
            algorithms: vec!["RS256".into(), "ES256".into()],
            tenant_claim: "tenant_id".into(),
            user_claim: "sub".into(),
            roles_claim: "roles".into(),
            admin_role: "admin".into(),
            leeway_secs: 30,
            jwks_cache_secs: 300,
        }
    }
}

/// The verified identity a token carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HumanClaims {
    pub tenant_id: uuid::Uuid,
    pub user_id: String,
    pub roles: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Rsa,
    Ec,
    Ed,
}

fn family(alg: Algorithm) -> Option<Family> {
    use Algorithm::*;
    match alg {
        RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => Some(Family::Rsa),
        ES256 | ES384 => Some(Family::Ec),
        EdDSA => Some(Family::Ed),
        _ => None,
    }
}

enum Keys {
    Static(Vec<(Family, DecodingKey)>),
    Jwks {
        url: url::Url,
        client: reqwest::Client,
        cache: tokio::sync::Mutex<JwksCache>,
    },
}

#[derive(Default)]
struct JwksCache {
    set: Option<JwkSet>,
    fetched: Option<Instant>,
}

pub struct JwtVerifier {
    settings: JwtSettings,
    algorithms: Vec<Algorithm>,
    keys: Keys,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("issuer", &self.settings.issuer)
            .finish()
    }
}

/// Checks a JWKS URL: https anywhere, plain http only to a loopback address. No
/// credentials in the URL.
fn jwks_url(raw: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(raw).map_err(|e| format!("auth.jwt.jwks_url: {e}"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("auth.jwt.jwks_url: must not carry credentials".into());
    }
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err("auth.jwt.jwks_url: must be https (http only to a loopback address)".into()),
    }
}

fn pem_key(pem: &[u8]) -> Result<(Family, DecodingKey), String> {
    if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
        return Ok((Family::Rsa, key));
    }
    if let Ok(key) = DecodingKey::from_ec_pem(pem) {
        return Ok((Family::Ec, key));
    }
    if let Ok(key) = DecodingKey::from_ed_pem(pem) {
        return Ok((Family::Ed, key));
    }
    Err("auth.jwt.public_key_pem: not an RSA, EC or Ed25519 public key in PEM".into())
}

impl JwtVerifier {
    /// Validates the settings; the error names the key.
    pub fn new(settings: &JwtSettings) -> Result<Self, String> {
        if settings.issuer.trim().is_empty() {
            return Err("auth.jwt.issuer: required".into());
        }
        if settings.audience.trim().is_empty() {
            return Err("auth.jwt.audience: required".into());
        }
        let mut algorithms = Vec::new();
        for name in &settings.algorithms {
            let alg = Algorithm::from_str(name).map_err(|_| format!("auth.jwt.algorithms: unknown {name:?}"))?;
            if family(alg).is_none() {
                return Err(format!(
                    "auth.jwt.algorithms: {name} is symmetric; use RS*, PS*, ES* or EdDSA"
                ));
            }
            algorithms.push(alg);
        }
        if algorithms.is_empty() {
            return Err("auth.jwt.algorithms: give at least one".into());
        }
        let sources = [
            settings.jwks_url.is_some(),
            settings.public_key_pem.is_some(),
            settings.public_key_file.is_some(),
        ];
        if sources.iter().filter(|s| **s).count() != 1 {
            return Err("auth.jwt: set exactly one of jwks_url, public_key_pem, public_key_file".into());
        }
        let keys = if let Some(raw) = &settings.jwks_url {
            crate::outbound::ensure_crypto_provider();
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .build()
                .map_err(|e| format!("auth.jwt.jwks_url: {e}"))?;
            Keys::Jwks {
                url: jwks_url(raw)?,
                client,
                cache: tokio::sync::Mutex::new(JwksCache::default()),
            }
        } else if let Some(pem) = &settings.public_key_pem {
            Keys::Static(vec![pem_key(pem.as_bytes())?])
        } else if let Some(path) = &settings.public_key_file {
            let pem = std::fs::read(path).map_err(|e| format!("auth.jwt.public_key_file: {}: {e}", path.display()))?;
            Keys::Static(vec![
                pem_key(&pem).map_err(|e| e.replace("public_key_pem", "public_key_file"))?,
            ])
        } else {
            return Err("auth.jwt: no key source".into());
        };
        Ok(Self {
            settings: settings.clone(),
            algorithms,
            keys,
        })
    }

    pub fn admin_role(&self) -> &str {
        &self.settings.admin_role
    }

    /// Verifies signature, issuer, audience and times, then reads the identity claims.
    pub async fn verify(&self, token: &str) -> EngineResult<HumanClaims> {
        let invalid = |why: &'static str| EngineError::Unauthenticated(why);
        let header = decode_header(token).map_err(|_| invalid("malformed token"))?;
        if !self.algorithms.contains(&header.alg) {
            return Err(invalid("token algorithm not accepted"));
        }
        let wanted = family(header.alg).ok_or(invalid("token algorithm not accepted"))?;
        let candidates = match &self.keys {
            Keys::Static(keys) => keys
                .iter()
                .filter(|(f, _)| *f == wanted)
                .map(|(_, k)| k.clone())
                .collect(),
            Keys::Jwks { url, client, cache } => {
                self.jwks_keys(url, client, cache, header.kid.as_deref(), header.alg)
                    .await?
            }
        };
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&[&self.settings.audience]);
        validation.leeway = self.settings.leeway_secs;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let mut last = invalid("no key matches the token");
        for key in candidates {
            match decode::<serde_json::Map<String, serde_json::Value>>(token, &key, &validation) {
                Ok(data) => return self.claims(&data.claims),
                Err(e) => {
                    use jsonwebtoken::errors::ErrorKind::*;
                    last = match e.kind() {
                        InvalidSignature => invalid("token signature is invalid"),
                        ExpiredSignature => return Err(invalid("token expired")),
                        ImmatureSignature => return Err(invalid("token not yet valid")),
                        InvalidIssuer => return Err(invalid("token issuer not accepted")),
                        InvalidAudience => return Err(invalid("token audience not accepted")),
                        MissingRequiredClaim(_) => return Err(invalid("token lacks exp, iss or aud")),
                        _ => invalid("invalid token"),
                    };
                }
            }
        }
        Err(last)
    }

    fn claims(&self, claims: &serde_json::Map<String, serde_json::Value>) -> EngineResult<HumanClaims> {
        let tenant_id = claims
            .get(&self.settings.tenant_claim)
            .and_then(|v| v.as_str())
            .and_then(|s| uuid::Uuid::parse_str(s).ok())
            .ok_or(EngineError::Unauthenticated("token has no tenant id claim (a UUID)"))?;
        let user_id = claims
            .get(&self.settings.user_claim)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty() && s.len() <= 256)
            .ok_or(EngineError::Unauthenticated("token has no user id claim"))?
            .to_owned();
        let roles = match claims.get(&self.settings.roles_claim) {
            Some(serde_json::Value::Array(items)) => {
                items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()
            }
            Some(serde_json::Value::String(s)) => s
                .split([' ', ','])
                .filter(|r| !r.is_empty())
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        };
        Ok(HumanClaims {
            tenant_id,
            user_id,
            roles,
        })
    }

    async fn jwks_keys(
        &self,
        url: &url::Url,
        client: &reqwest::Client,
        cache: &tokio::sync::Mutex<JwksCache>,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> EngineResult<Vec<DecodingKey>> {
        let ttl = Duration::from_secs(self.settings.jwks_cache_secs);
        let mut cache = cache.lock().await;
        let stale = cache.fetched.is_none_or(|at| at.elapsed() >= ttl);
        let kid_unknown = match (&cache.set, kid) {
            (Some(set), Some(kid)) => set.find(kid).is_none(),
            _ => false,
        };
        let may_refetch = cache.fetched.is_none_or(|at| at.elapsed() >= MIN_REFETCH);
        if cache.set.is_none() || stale || (kid_unknown && may_refetch) {
            match fetch_jwks(client, url).await {
                Ok(set) => {
                    cache.set = Some(set);
                    cache.fetched = Some(Instant::now());
                }
                Err(e) if cache.set.is_some() => {
                    tracing::warn!(error = %e, "JWKS refresh failed; using the cached keys");
                    cache.fetched = Some(Instant::now());
                }
                Err(e) => {
                    return Err(EngineError::unavailable(
                        "the identity provider's signing keys (JWKS)",
                        e.to_string(),
                    ));
                }
            }
        }
        let Some(set) = &cache.set else { return Ok(Vec::new()) };
        let keys = set
            .keys
            .iter()
            .filter(|jwk| kid.is_none_or(|kid| jwk.common.key_id.as_deref() == Some(kid)))
            .filter(|jwk| {
                jwk.common
                    .key_algorithm
                    .is_none_or(|a| a.to_string() == format!("{alg:?}"))
            })
            .filter_map(|jwk| DecodingKey::from_jwk(jwk).ok())
            .collect();
        Ok(keys)
    }
}

async fn fetch_jwks(client: &reqwest::Client, url: &url::Url) -> Result<JwkSet, String> {
    let mut response = client
        .get(url.clone())
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
    if !response.status().is_success() {
        return Err(format!("JWKS endpoint answered {}", response.status()));
    }
    if response.content_length().is_some_and(|n| n > MAX_JWKS_BYTES as u64) {
        return Err("JWKS document too large".into());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.without_url().to_string())? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_JWKS_BYTES {
            return Err("JWKS document too large".into());
        }
    }
    serde_json::from_slice(&body).map_err(|e| format!("JWKS is not valid: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_validated_with_named_keys() {
        let base = JwtSettings {
            issuer: "https://idp".into(),
            audience: "aos".into(),
            jwks_url: Some("https://idp/.well-known/jwks.json".into()),
            ..JwtSettings::default()
        };
        assert!(JwtVerifier::new(&base).is_ok());
        let err = |s: JwtSettings| JwtVerifier::new(&s).unwrap_err();
        assert!(
            err(JwtSettings {
                issuer: "".into(),
                ..base.clone()
            })
            .contains("auth.jwt.issuer")
        );
        assert!(
            err(JwtSettings {
                algorithms: vec!["HS256".into()],
                ..base.clone()
            })
            .contains("symmetric")
        );
        assert!(
            err(JwtSettings {
                jwks_url: Some("http://idp.example/jwks".into()),
                ..base.clone()
            })
            .contains("https")
        );
        assert!(
            err(JwtSettings {
                jwks_url: Some("https://u:p@idp/jwks".into()),
                ..base.clone()
            })
            .contains("credentials")
        );
        assert!(
            JwtVerifier::new(&JwtSettings {
                jwks_url: Some("http://127.0.0.1:9/jwks".into()),
                ..base.clone()
            })
            .is_ok()
        );
        assert!(
            err(JwtSettings {
                public_key_pem: Some("x".into()),
                ..base.clone()
            })
            .contains("exactly one")
        );
        assert!(
            err(JwtSettings {
                jwks_url: None,
                public_key_pem: Some("not a pem".into()),
                ..base.clone()
            })
            .contains("public_key_pem")
        );
    }
}
