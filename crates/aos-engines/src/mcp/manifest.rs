//! Signed manifests: after each discovery AOS signs the server's tool set as an ES256
//! JWS (compact JWT form) so anyone holding the published key can check that a tool list
//! is the one AOS approved. Keys are P-256; `kid` is the RFC 7638 JWK thumbprint; retired
//! keys stay published so old manifests keep verifying.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, LineEnding};
use p256::{PublicKey, SecretKey};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

/// `[manifest]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ManifestSettings {
    /// The signing key, PKCS#8 PEM, inline (prefer the file or an environment variable).
    pub signing_key: Option<SecretString>,
    /// The signing key file (PKCS#8 PEM). Generated (mode 0600) on first start when
    /// neither this file nor `signing_key` exists.
    pub signing_key_file: PathBuf,
    /// Public keys (SPKI PEM files) of retired signing keys, still published.
    pub retired_public_keys: Vec<PathBuf>,
    /// The `iss` of every manifest.
    pub issuer: String,
}

impl Default for ManifestSettings {
    fn default() -> Self {
        Self {
            signing_key: None,
            signing_key_file: PathBuf::from("./data/manifest-signing-key.pem"),
            retired_public_keys: Vec::new(),
            issuer: "aos".into(),
        }
    }
}

/// One published verification key (a JWK).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicJwk {
    pub kty: String,
    pub crv: String,
    pub x: String,
    pub y: String,
    pub kid: String,
    pub alg: String,
    #[serde(rename = "use")]
    pub use_: String,
}

impl PublicJwk {
    fn of(key: &PublicKey) -> Self {
        let point = key.to_sec1_bytes();
        // Uncompressed SEC1: 0x04 || x (32) || y (32).
        let (x, y) = match point.get(1..33).zip(point.get(33..65)) {
            Some((x, y)) => (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y)),
            None => (String::new(), String::new()),
        };
        // RFC 7638: the required members in lexicographic order, no whitespace.
        let thumbprint_input = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(thumbprint_input.as_bytes()));
        Self {
            kty: "EC".into(),
            crv: "P-256".into(),
            x,
            y,
            kid,
            alg: "ES256".into(),
            use_: "sig".into(),
        }
    }
}

/// One tool in a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestTool {
    pub name: String,
    pub tool_hash: String,
    pub risk_level: String,
}

/// The signed content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub iss: String,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    pub tenant_id: String,
    pub server_id: String,
    pub capabilities_hash: Option<String>,
    pub tools: Vec<ManifestTool>,
}

/// Holds the signing key and the published key set.
pub struct ManifestSigner {
    encoding: EncodingKey,
    current: PublicJwk,
    published: Vec<PublicJwk>,
    issuer: String,
}

impl std::fmt::Debug for ManifestSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManifestSigner")
            .field("kid", &self.current.kid)
            .finish_non_exhaustive()
    }
}

fn generate_key() -> Result<SecretKey, String> {
    use rand::RngCore;
    for _ in 0..16 {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        if let Ok(key) = SecretKey::from_slice(&bytes) {
            return Ok(key);
        }
    }
    Err("could not generate a P-256 key".into())
}

/// A fresh P-256 signing key as PKCS#8 PEM.
pub fn generate_pem() -> Result<SecretString, String> {
    let key = generate_key()?;
    key.to_pkcs8_pem(LineEnding::LF)
        .map(|pem| SecretString::from(pem.to_string()))
        .map_err(|e| format!("cannot encode the generated key: {e}"))
}

fn write_private(path: &Path, pem: &str) -> Result<(), String> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.write_all(pem.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

impl ManifestSigner {
    /// Loads the configured key, or generates one into `signing_key_file`.
    pub fn load(settings: &ManifestSettings) -> Result<Self, String> {
        let pem: SecretString = match &settings.signing_key {
            Some(pem) => pem.clone(),
            None if settings.signing_key_file.exists() => SecretString::from(
                std::fs::read_to_string(&settings.signing_key_file)
                    .map_err(|e| format!("manifest.signing_key_file: cannot read: {e}"))?,
            ),
            None => {
                let key = generate_key()?;
                let pem = key
                    .to_pkcs8_pem(LineEnding::LF)
                    .map_err(|e| format!("manifest: cannot encode the generated key: {e}"))?;
                write_private(&settings.signing_key_file, &pem)
                    .map_err(|e| format!("manifest.signing_key_file: {e}"))?;
                tracing::warn!(path = %settings.signing_key_file.display(), "generated a manifest signing key (mode 0600)");
                SecretString::from(pem.to_string())
            }
        };
        let secret = SecretKey::from_pkcs8_pem(pem.expose_secret())
            .map_err(|_| "manifest signing key: not a PKCS#8 PEM P-256 private key".to_owned())?;
        let encoding = EncodingKey::from_ec_pem(pem.expose_secret().as_bytes())
            .map_err(|e| format!("manifest signing key: {e}"))?;
        let current = PublicJwk::of(&secret.public_key());
        let mut published = vec![current.clone()];
        for path in &settings.retired_public_keys {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("manifest.retired_public_keys: cannot read {}: {e}", path.display()))?;
            let key = PublicKey::from_public_key_pem(&text).map_err(|_| {
                format!(
                    "manifest.retired_public_keys: {} is not a P-256 public key PEM",
                    path.display()
                )
            })?;
            let jwk = PublicJwk::of(&key);
            if !published.contains(&jwk) {
                published.push(jwk);
            }
        }
        if settings.issuer.trim().is_empty() {
            return Err("manifest.issuer: must not be empty".into());
        }
        Ok(Self {
            encoding,
            current,
            published,
            issuer: settings.issuer.clone(),
        })
    }

    pub fn kid(&self) -> &str {
        &self.current.kid
    }

    /// The JWK set to publish at `/.well-known/jwks.json`.
    pub fn jwks(&self) -> serde_json::Value {
        json!({ "keys": self.published })
    }

    pub fn keys(&self) -> &[PublicJwk] {
        &self.published
    }

    /// Signs a manifest of a server's tool set (tools sorted by name).
    pub fn sign(
        &self,
        tenant_id: uuid::Uuid,
        server_id: uuid::Uuid,
        capabilities_hash: Option<String>,
        mut tools: Vec<ManifestTool>,
        issued_at: time::OffsetDateTime,
    ) -> Result<String, String> {
        tools.sort_by(|a, b| a.name.cmp(&b.name));
        let manifest = Manifest {
            iss: self.issuer.clone(),
            iat: issued_at.unix_timestamp(),
            tenant_id: tenant_id.to_string(),
            server_id: server_id.to_string(),
            capabilities_hash,
            tools,
        };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.current.kid.clone());
        header.typ = Some(SERVER_MANIFEST_TYP.into());
        jsonwebtoken::encode(&header, &manifest, &self.encoding).map_err(|e| e.to_string())
    }
}

impl ManifestSigner {
    /// The `iss` every manifest carries.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Signs any claims document as an ES256 JWS with this key's `kid` and the given
    /// `typ` (agent manifests use [`crate::agents::MANIFEST_TYP`]).
    pub fn sign_claims<T: Serialize>(&self, typ: &str, claims: &T) -> Result<String, String> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.current.kid.clone());
        header.typ = Some(typ.into());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(|e| e.to_string())
    }
}

/// Verifies a JWS of type `typ` against published keys (ES256 only, `kid` published,
/// signature valid) and returns its claims. A token of another `typ` is refused, so a
/// server manifest never passes for an agent manifest or the other way round.
pub fn verify_claims<T: serde::de::DeserializeOwned>(token: &str, typ: &str, keys: &[PublicJwk]) -> Result<T, String> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| format!("not a manifest: {e}"))?;
    if header.alg != Algorithm::ES256 {
        return Err(format!("algorithm {:?} is not accepted (ES256 only)", header.alg));
    }
    if header.typ.as_deref() != Some(typ) {
        return Err(format!("not a {typ} (typ {:?})", header.typ.unwrap_or_default()));
    }
    let kid = header.kid.ok_or_else(|| "the manifest names no key (kid)".to_owned())?;
    let key = keys
        .iter()
        .find(|k| k.kid == kid)
        .ok_or_else(|| format!("key {kid} is not published"))?;
    let decoding = DecodingKey::from_ec_components(&key.x, &key.y).map_err(|e| e.to_string())?;
    let mut validation = Validation::new(Algorithm::ES256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_aud = false;
    jsonwebtoken::decode::<T>(token, &decoding, &validation)
        .map(|data| data.claims)
        .map_err(|e| format!("invalid manifest: {e}"))
}

/// The `kid` a manifest names, unverified.
pub fn kid_of(token: &str) -> Option<String> {
    jsonwebtoken::decode_header(token).ok().and_then(|h| h.kid)
}

/// The `typ` of a server manifest's JWS header.
pub const SERVER_MANIFEST_TYP: &str = "aos-manifest+jwt";

/// Verifies a server manifest against published keys: ES256 only, `typ`
/// [`SERVER_MANIFEST_TYP`], `kid` must name one of `keys`, the signature must hold.
/// Returns the manifest.
pub fn verify(token: &str, keys: &[PublicJwk]) -> Result<Manifest, String> {
    verify_claims(token, SERVER_MANIFEST_TYP, keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(dir: &Path) -> ManifestSigner {
        ManifestSigner::load(&ManifestSettings {
            signing_key_file: dir.join("key.pem"),
            ..ManifestSettings::default()
        })
        .unwrap()
    }

    fn tools() -> Vec<ManifestTool> {
        vec![
            ManifestTool {
                name: "write".into(),
                tool_hash: "b".repeat(64),
                risk_level: "HIGH".into(),
            },
            ManifestTool {
                name: "read".into(),
                tool_hash: "a".repeat(64),
                risk_level: "LOW".into(),
            },
        ]
    }

    #[test]
    fn manifests_verify_and_tampering_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let signer = signer(dir.path());
        let (tenant, server) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
        let token = signer
            .sign(
                tenant,
                server,
                Some("c".repeat(64)),
                tools(),
                time::OffsetDateTime::now_utc(),
            )
            .unwrap();
        let manifest = verify(&token, signer.keys()).unwrap();
        assert_eq!(manifest.server_id, server.to_string());
        assert_eq!(manifest.tools[0].name, "read", "tools are sorted");
        assert_eq!(manifest.tools.len(), 2);

        // Tampered payload: a risk level lowered.
        let parts: Vec<&str> = token.split('.').collect();
        let mut payload: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        payload["tools"][1]["risk_level"] = json!("LOW");
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(payload.to_string()),
            parts[2]
        );
        assert!(verify(&forged, signer.keys()).unwrap_err().contains("invalid"));
        // Tampered signature.
        let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        sig[0] ^= 1;
        let forged = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(sig));
        assert!(verify(&forged, signer.keys()).is_err());
        // alg=none and HS256 are refused whatever the payload.
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none","kid":"x"}"#),
            parts[1]
        );
        assert!(verify(&none, signer.keys()).is_err());
        let hs = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"HS256","kid":"{}"}}"#, signer.kid())),
            parts[1],
            parts[2]
        );
        assert!(verify(&hs, signer.keys()).is_err());
        // Another key's signature with the same kid claimed.
        let other_dir = tempfile::tempdir().unwrap();
        let other = signer_from(other_dir.path());
        let foreign = other
            .sign(tenant, server, None, tools(), time::OffsetDateTime::now_utc())
            .unwrap();
        assert!(verify(&foreign, signer.keys()).unwrap_err().contains("not published"));
    }

    fn signer_from(dir: &Path) -> ManifestSigner {
        signer(dir)
    }

    #[test]
    fn the_key_is_generated_once_and_retired_keys_stay_published() {
        let dir = tempfile::tempdir().unwrap();
        let first = signer(dir.path());
        let again = signer(dir.path());
        assert_eq!(first.kid(), again.kid(), "the generated key is kept");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("key.pem"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(first.kid().len(), 43, "base64url SHA-256 thumbprint");
        // Rotate: a new key, the old public key retired but published.
        let old_token = first
            .sign(
                uuid::Uuid::nil(),
                uuid::Uuid::nil(),
                None,
                tools(),
                time::OffsetDateTime::now_utc(),
            )
            .unwrap();
        let secret = SecretKey::from_pkcs8_pem(&std::fs::read_to_string(dir.path().join("key.pem")).unwrap()).unwrap();
        let public_pem = p256::pkcs8::EncodePublicKey::to_public_key_pem(&secret.public_key(), LineEnding::LF).unwrap();
        std::fs::write(dir.path().join("old.pub.pem"), public_pem).unwrap();
        let new_dir = tempfile::tempdir().unwrap();
        let rotated = ManifestSigner::load(&ManifestSettings {
            signing_key_file: new_dir.path().join("key.pem"),
            retired_public_keys: vec![dir.path().join("old.pub.pem")],
            ..ManifestSettings::default()
        })
        .unwrap();
        assert_ne!(rotated.kid(), first.kid());
        assert_eq!(rotated.keys().len(), 2);
        assert!(verify(&old_token, rotated.keys()).is_ok(), "old manifests still verify");
        let jwks = rotated.jwks();
        assert_eq!(jwks["keys"][1]["kid"], json!(first.kid()));
        assert!(
            jwks.to_string().find("\"d\"").is_none(),
            "no private member is published"
        );
        // A garbage key is refused.
        let bad = ManifestSigner::load(&ManifestSettings {
            signing_key: Some(SecretString::from(
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            )),
            ..ManifestSettings::default()
        });
        assert!(bad.is_err());
    }
}
