//! The platform operator ("founder") token.
//!
//! The token is a secret: it is held as a [`SecretString`], compared in constant time,
//! and never logged. With no token configured, one is generated on first start into a
//! file readable only by its owner, and only the file's path is logged.

use std::io::Write;
use std::path::Path;

use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use crate::error::{EngineError, EngineResult};

/// Prefix of generated operator tokens, so a leaked one is recognisable in a scan.
pub const OPERATOR_TOKEN_PREFIX: &str = "aos_op_";

/// The operator token, as verified on each founder request.
#[derive(Clone)]
pub struct OperatorToken(SecretString);

impl std::fmt::Debug for OperatorToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OperatorToken(***)")
    }
}

impl OperatorToken {
    /// Wraps a configured token; refuses one too short to be safe.
    pub fn new(token: SecretString) -> EngineResult<Self> {
        if token.expose_secret().trim().len() < 16 {
            return Err(EngineError::invalid(
                "auth.operator_token",
                "must be at least 16 characters",
            ));
        }
        Ok(Self(token))
    }

    /// Reads the token from `path`, or generates one there (mode 0600) if the file does
    /// not exist. Returns the token and whether it was generated.
    pub fn load_or_generate(path: &Path) -> EngineResult<(Self, bool)> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok((Self::new(SecretString::from(text.trim().to_owned()))?, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0_u8; 32];
                rand::rng().fill_bytes(&mut bytes);
                let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                let token = format!("{OPERATOR_TOKEN_PREFIX}{hex}");
                write_private(path, &token)
                    .map_err(|e| EngineError::Internal(format!("cannot write {}: {e}", path.display())))?;
                Ok((Self(SecretString::from(token)), true))
            }
            Err(e) => Err(EngineError::Internal(format!("cannot read {}: {e}", path.display()))),
        }
    }

    /// Constant-time comparison with a presented credential.
    pub fn verify(&self, presented: &str) -> bool {
        let expected = self.0.expose_secret().as_bytes();
        // ct_eq on slices of different lengths is false without comparing contents;
        // length is not secret for a fixed-format token.
        bool::from(expected.ct_eq(presented.as_bytes()))
    }
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_token_is_private_reused_and_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("operator-token");
        let (token, generated) = OperatorToken::load_or_generate(&path).unwrap();
        assert!(generated);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(OPERATOR_TOKEN_PREFIX));
        assert!(token.verify(text.trim()));
        assert!(!token.verify("aos_op_wrong"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (again, generated) = OperatorToken::load_or_generate(&path).unwrap();
        assert!(!generated);
        assert!(again.verify(text.trim()));
        assert_eq!(format!("{again:?}"), "OperatorToken(***)");
    }

    #[test]
    fn short_tokens_are_refused() {
        assert!(OperatorToken::new(SecretString::from("short")).is_err());
        let ok = OperatorToken::new(SecretString::from("a-long-enough-token")).unwrap();
        assert!(ok.verify("a-long-enough-token"));
        assert!(!ok.verify("a-long-enough-tokeX"));
        assert!(!ok.verify(""));
    }
}
