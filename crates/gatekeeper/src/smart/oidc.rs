//! OpenID Connect for SMART's `openid fhirUser`: the id token (a JWS, ES256) and the key
//! that signs it.
//!
//! When the app asked for `openid`, `/token` answers an `id_token` beside the access
//! token (OpenID Connect Core §3.1.3.3, SMART App Launch 2.x "Scopes for requesting
//! identity data"). Its claims:
//!
//! - `iss`: the FHIR base URL as the app addresses it (`http(s)://host/fhir`), which is
//!   also where `/.well-known/openid-configuration` is found (OIDC Discovery §4);
//! - `sub`: the person's Ethereum address (EIP-55), the identity they signed in with;
//! - `aud`: the `client_id`; `iat` and `exp` (the access token's lifetime);
//! - `nonce`: the one sent to `/authorize`, if any (only in the code exchange's token);
//! - `fhirUser` (when the app also asked for `fhirUser`): **only for a patient with a
//!   record here**, the absolute URL of their own `Patient` (`{iss}/Patient/{id}`), which
//!   the FHIR base resolves for them (a request with their credentials reads it). A
//!   viewer, a clinician or the provider has no FHIR resource at this gatekeeper that
//!   stands for them (MedRec keeps no `Practitioner`/`RelatedPerson` for a wallet), so
//!   the claim is left out and `fhirUser` is not in the granted `scope` — the app learns
//!   who they are from `sub`, an address, rather than from a made-up reference.
//!
//! The signing key ([`IdKey`]) is a P-256 key made when the gatekeeper starts. With an
//! enrollment file configured it is kept next to it (`{enrollments}.id-token-key`, the
//! scalar in hex, mode 0600) and reused after a restart; otherwise a restart makes a new
//! one, and id tokens signed before it no longer verify against the JWKS
//! (`/.well-known/jwks.json`, named by `jwks_uri` in both discovery documents). The key
//! id (`kid`) is the key's RFC 7638 thumbprint.

use data_encoding::BASE64URL_NOPAD;
use p256::{
    EncodedPoint,
    ecdsa::{Signature, SigningKey, signature::Signer},
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::{fmt, path::Path};

/// The key that signs id tokens (ES256).
pub struct IdKey {
    key: SigningKey,
    kid: String,
    x: String,
    y: String,
}

impl fmt::Debug for IdKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdKey").field("kid", &self.kid).finish_non_exhaustive()
    }
}

/// Why the id token key could not be made, read or kept.
#[derive(Debug, thiserror::Error)]
pub enum IdKeyError {
    /// The operating system's random number generator failed.
    #[error("no randomness for the id token key")]
    Randomness,
    /// The key file could not be read or written.
    #[error("the id token key file {path} cannot be used: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The key file holds no P-256 scalar in hex.
    #[error("the id token key file {0} does not hold a P-256 private key (64 hex digits)")]
    Malformed(String),
}

impl IdKey {
    /// A new random key.
    pub fn generate() -> Result<Self, IdKeyError> {
        loop {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).map_err(|_| IdKeyError::Randomness)?;
            // Out of range (zero or ≥ n) with probability about 2⁻¹²⁸: draw again.
            if let Ok(key) = SigningKey::from_slice(&bytes) {
                return Ok(Self::from_signing_key(key));
            }
        }
    }

    fn from_signing_key(key: SigningKey) -> Self {
        let point: EncodedPoint = key.verifying_key().to_encoded_point(false);
        let x = BASE64URL_NOPAD.encode(point.x().map_or(&[][..], |x| &x[..]));
        let y = BASE64URL_NOPAD.encode(point.y().map_or(&[][..], |y| &y[..]));
        // RFC 7638: the SHA-256 of the required members in lexicographic order.
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid = BASE64URL_NOPAD.encode(&Sha256::digest(canonical.as_bytes()));
        Self { key, kid, x, y }
    }

    /// The key kept in `path`, or a new one written there (mode 0600) when the file does
    /// not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, IdKeyError> {
        let io = |source| IdKeyError::Io { path: path.display().to_string(), source };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let malformed = || IdKeyError::Malformed(path.display().to_string());
                let bytes =
                    alloy::hex::decode_to_array::<_, 32>(text.trim()).map_err(|_| malformed())?;
                let key = SigningKey::from_slice(&bytes).map_err(|_| malformed())?;
                restrict(path).map_err(io)?;
                Ok(Self::from_signing_key(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate()?;
                let secret = alloy::hex::encode(key.key.to_bytes());
                write_private(path, secret.as_bytes()).map_err(io)?;
                Ok(key)
            }
            Err(e) => Err(io(e)),
        }
    }

    /// The key id (RFC 7638 thumbprint).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK (RFC 7517/7518).
    pub fn jwk(&self) -> Value {
        json!({
            "kty": "EC",
            "crv": "P-256",
            "x": self.x,
            "y": self.y,
            "use": "sig",
            "alg": "ES256",
            "kid": self.kid,
        })
    }

    /// The JWK set published at `jwks_uri`.
    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.jwk()] })
    }

    /// A compact JWS (RFC 7515) of `claims`, signed with ES256.
    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": self.kid});
        let mut out = BASE64URL_NOPAD.encode(header.to_string().as_bytes());
        out.push('.');
        out.push_str(&BASE64URL_NOPAD.encode(claims.to_string().as_bytes()));
        let signature: Signature = self.key.sign(out.as_bytes());
        out.push('.');
        out.push_str(&BASE64URL_NOPAD.encode(&signature.to_bytes()));
        out
    }
}

/// Writes `bytes` to `path` readable by its owner only, atomically (a temporary file
/// beside it, renamed).
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    restrict(&tmp)?;
    std::fs::rename(&tmp, path)
}

/// Makes `path` readable by its owner only (Unix).
fn restrict(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(target: "medrec::gatekeeper", path = %path.display(), "the id token key file was readable by others: now 0600");
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// The key file kept beside the enrollment file `enrollments`.
pub fn key_path_beside(enrollments: &Path) -> std::path::PathBuf {
    let mut name = enrollments.file_name().map(std::ffi::OsStr::to_os_string).unwrap_or_default();
    name.push(".id-token-key");
    enrollments.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::{VerifyingKey, signature::Verifier};

    #[test]
    fn tokens_verify_against_the_jwk() {
        let key = IdKey::generate().unwrap();
        let jws = key.sign(&json!({"sub": "x"}));
        let (input, sig) = jws.rsplit_once('.').unwrap();
        let jwk = key.jwk();
        let coord = |k: &str| BASE64URL_NOPAD.decode(jwk[k].as_str().unwrap().as_bytes()).unwrap();
        let point = EncodedPoint::from_affine_coordinates(
            coord("x").as_slice().into(),
            coord("y").as_slice().into(),
            false,
        );
        let vk = VerifyingKey::from_encoded_point(&point).unwrap();
        let sig = Signature::from_slice(&BASE64URL_NOPAD.decode(sig.as_bytes()).unwrap()).unwrap();
        vk.verify(input.as_bytes(), &sig).unwrap();
    }

    #[test]
    fn the_key_is_kept_private_and_reused() {
        let dir = std::env::temp_dir().join(format!("medrec-idkey-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = key_path_beside(&dir.join("enrollments.json"));
        assert!(path.ends_with("enrollments.json.id-token-key"));
        let _ = std::fs::remove_file(&path);
        let first = IdKey::load_or_create(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = IdKey::load_or_create(&path).unwrap();
        assert_eq!(first.kid(), again.kid());
        assert_ne!(first.kid(), IdKey::generate().unwrap().kid());
        std::fs::write(&path, "nope").unwrap();
        assert!(matches!(IdKey::load_or_create(&path), Err(IdKeyError::Malformed(_))));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
