//! A party's encrypted local cache: one file in its data directory, never plaintext on
//! disk.
//!
//! The file is `MAGIC ‖ nonce (12 bytes) ‖ AES-256-GCM ciphertext and tag` of a JSON
//! document. The key is derived with HKDF-SHA256 from the wallet's account key, so only
//! the wallet (its phrase and passphrase) opens the cache; the associated data binds the
//! file to the account it belongs to. Every write is atomic (a temporary file in the
//! same directory, synced, renamed) with mode 0600.

use aes_gcm::{
    Aes256Gcm, Key, Nonce,
    aead::{Aead, KeyInit, Payload},
};
use alloy::{primitives::Address, signers::local::PrivateKeySigner};
use hkdf::Hkdf;
use serde::{Serialize, de::DeserializeOwned};
use sha2::Sha256;
use std::path::PathBuf;
use zeroize::Zeroizing;

/// The first bytes of a cache file (format version 1).
const MAGIC: &[u8; 8] = b"MRCACHE1";
const NONCE_LEN: usize = 12;

/// Why the cache could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The file could not be read or written.
    #[error("cannot access the local cache {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The file is not a cache of this wallet, or it was altered.
    #[error(
        "the local cache {} cannot be decrypted with this wallet (it belongs to another wallet or was altered); delete it and fetch the records again",
        path.display()
    )]
    Undecryptable {
        /// The file.
        path: PathBuf,
    },
    /// The decrypted document is not what this version writes.
    #[error("the local cache {} is in an unknown format: {reason}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// No randomness for a nonce.
    #[error("no randomness for encrypting the local cache: {0}")]
    Random(String),
}

/// An encrypted cache file, opened with the key of one wallet account.
pub struct Cache {
    path: PathBuf,
    key: Zeroizing<[u8; 32]>,
    account: Address,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("path", &self.path)
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

impl Cache {
    /// The cache at `path`, keyed by `account`'s private key for the purpose `label`
    /// (different labels give unrelated keys).
    pub fn new(path: PathBuf, account: &PrivateKeySigner, label: &str) -> Self {
        let ikm = Zeroizing::new(account.to_bytes().0);
        let salt = format!("medrec/{label}/v1");
        let hk = Hkdf::<Sha256>::new(Some(salt.as_bytes()), ikm.as_slice());
        let mut key = Zeroizing::new([0u8; 32]);
        // 32 bytes is far below HKDF-SHA256's limit of 255 * 32, so this cannot fail.
        let _ = hk.expand(account.address().as_slice(), key.as_mut_slice());
        Self { path, key, account: account.address() }
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&Key::<Aes256Gcm>::from(*self.key))
    }

    fn aad(&self) -> Vec<u8> {
        let mut aad = MAGIC.to_vec();
        aad.extend_from_slice(self.account.as_slice());
        aad
    }

    /// Reads and decrypts the document (`None` when there is no cache yet).
    pub fn load<T: DeserializeOwned>(&self) -> Result<Option<T>, CacheError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(CacheError::Io { path: self.path.clone(), source }),
        };
        let undecryptable = || CacheError::Undecryptable { path: self.path.clone() };
        let rest = bytes.strip_prefix(MAGIC.as_slice()).ok_or_else(undecryptable)?;
        if rest.len() < NONCE_LEN {
            return Err(undecryptable());
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| undecryptable())?;
        let aad = self.aad();
        let plain = Zeroizing::new(
            self.cipher()
                .decrypt(&Nonce::from(nonce), Payload { msg: sealed, aad: &aad })
                .map_err(|_| undecryptable())?,
        );
        serde_json::from_slice(&plain)
            .map(Some)
            .map_err(|e| CacheError::Format { path: self.path.clone(), reason: e.to_string() })
    }

    /// Encrypts `value` under a fresh nonce and replaces the file atomically (mode 0600).
    pub fn save<T: Serialize>(&self, value: &T) -> Result<(), CacheError> {
        let plain =
            Zeroizing::new(serde_json::to_vec(value).map_err(|e| CacheError::Format {
                path: self.path.clone(),
                reason: e.to_string(),
            })?);
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| CacheError::Random(e.to_string()))?;
        let aad = self.aad();
        let sealed = self
            .cipher()
            .encrypt(&Nonce::from(nonce), Payload { msg: &plain, aad: &aad })
            .map_err(|_| CacheError::Random("the cipher refused the data".to_owned()))?;
        let mut bytes = Vec::with_capacity(MAGIC.len() + NONCE_LEN + sealed.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&sealed);
        medrec_wallet::fs::write_private(&self.path, &bytes)
            .map_err(|source| CacheError::Io { path: self.path.clone(), source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("medrec-cache-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("cache.bin")
    }

    #[test]
    fn round_trips_without_plaintext_on_disk() {
        let path = temp("roundtrip");
        let key = PrivateKeySigner::random();
        let cache = Cache::new(path.clone(), &key, "test");
        assert!(cache.load::<Value>().unwrap().is_none());
        let doc = json!({"code": "2498-4", "id": "obs-secret"});
        cache.save(&doc).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        for needle in ["2498-4", "obs-secret"] {
            assert!(!bytes.windows(needle.len()).any(|w| w == needle.as_bytes()));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(cache.load::<Value>().unwrap(), Some(doc));
    }

    #[test]
    fn another_key_or_label_or_a_flipped_bit_cannot_open_it() {
        let path = temp("other");
        let key = PrivateKeySigner::random();
        Cache::new(path.clone(), &key, "test").save(&json!({"a": 1})).unwrap();
        let other = Cache::new(path.clone(), &PrivateKeySigner::random(), "test");
        assert!(matches!(other.load::<Value>(), Err(CacheError::Undecryptable { .. })));
        let label = Cache::new(path.clone(), &key, "other");
        assert!(matches!(label.load::<Value>(), Err(CacheError::Undecryptable { .. })));
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let same = Cache::new(path, &key, "test");
        assert!(matches!(same.load::<Value>(), Err(CacheError::Undecryptable { .. })));
    }
}
