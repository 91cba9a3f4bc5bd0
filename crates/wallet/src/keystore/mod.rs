//! Ethereum v3 keystore files ("Web3 Secret Storage").
//!
//! A keystore is JSON holding a secret encrypted with AES-128-CTR under a key stretched from
//! the passphrase by scrypt, and a MAC (`keccak256(derived_key[16..32] ++ ciphertext)`) that
//! tells a wrong passphrase (or an altered file) from a right one. Files written here use
//! scrypt with `dklen` 32 and open in geth, Foundry (`cast wallet`), MetaMask and ethers;
//! files from those tools open here, including the older PBKDF2-HMAC-SHA256 variant.
//!
//! Why not alloy's `signer-keystore` feature: it wraps `eth-keystore` 0.5, which always
//! writes scrypt with n = 2^13 (no way to choose), writes files with default permissions
//! and not atomically, only reads from paths, and brings `uuid` 0.8 and `thiserror` 1.
//! This module is a small implementation over the RustCrypto crates (`scrypt`, `aes`, `ctr`,
//! `pbkdf2`) and alloy's keccak.
//!
//! # Scrypt cost
//! [`ScryptParams::STANDARD`] is geth's standard: n = 2^18, r = 8, p = 1, i.e. 256 MiB of
//! memory and about a second of work per unlock on a laptop in an optimised build. These
//! keys control a patient's whole record and the files may be copied to backups, so an
//! offline guessing attack should be as expensive as users will tolerate; a wallet is
//! unlocked rarely (once per command or per server start). [`ScryptParams::light`] exists
//! for tests only.
//!
//! Reading is bounded: n at most 2^20, r at most 32, p at most 16 and 1 GiB of scrypt memory,
//! PBKDF2 at most 10 million rounds, so a hostile file cannot exhaust the machine.
//!
//! This module encrypts and decrypts; the JSON file format is in `format`, and scrypt
//! (with the parameters the `scrypt` crate refuses) in `kdf`.

use std::fmt;
use std::path::{Path, PathBuf};

use aes::Aes128;
use alloy::primitives::{Address, B256, keccak256};
use alloy::signers::local::PrivateKeySigner;
use ctr::cipher::{KeyIvInit, StreamCipher};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::passphrase::Passphrase;

mod format;
mod kdf;

use format::{
    CipherParams, CryptoJson, KeystoreJson, Pbkdf2Json, ScryptJson, parse, recorded_address, unhex,
};
use kdf::scrypt_any;

type Aes128Ctr = ctr::Ctr128BE<Aes128>;

const MAX_LOG_N: u8 = 20;
const MAX_R: u32 = 32;
const MAX_P: u32 = 16;
const MAX_SCRYPT_MEMORY: u64 = 1 << 30;
const MAX_PBKDF2_ROUNDS: u32 = 10_000_000;

/// Cost parameters of scrypt for new keystores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScryptParams {
    log_n: u8,
    r: u32,
    p: u32,
}

impl Default for ScryptParams {
    fn default() -> Self {
        Self::STANDARD
    }
}

impl ScryptParams {
    /// geth's standard: n = 2^18, r = 8, p = 1 (256 MiB, about a second). See the module docs.
    pub const STANDARD: Self = Self { log_n: 18, r: 8, p: 1 };

    /// n = 2^10, r = 8, p = 1: fast enough for debug-build tests. Never use it for real keys.
    #[must_use]
    pub const fn light() -> Self {
        Self { log_n: 10, r: 8, p: 1 }
    }

    /// The cost for new keystores: [`ScryptParams::STANDARD`], unless the environment
    /// sets `MEDREC_INSECURE_LIGHT_KDF=1` (tests and throw-away demos only: the files
    /// are then cheap to brute-force) for [`ScryptParams::light`].
    #[must_use]
    pub fn for_new_keystores() -> Self {
        if std::env::var("MEDREC_INSECURE_LIGHT_KDF").is_ok_and(|v| v == "1") {
            Self::light()
        } else {
            Self::STANDARD
        }
    }

    /// Chosen parameters: n = 2^`log_n`.
    ///
    /// # Errors
    /// [`KeystoreError::Unsupported`] outside 1 ≤ `log_n` ≤ 20, 1 ≤ r ≤ 32, 1 ≤ p ≤ 16, or
    /// above 1 GiB of memory.
    pub fn new(log_n: u8, r: u32, p: u32) -> Result<Self, KeystoreError> {
        let params = Self { log_n, r, p };
        params.check()?;
        Ok(params)
    }

    /// The scrypt cost parameter n.
    #[must_use]
    pub const fn n(&self) -> u64 {
        1 << self.log_n
    }

    fn check(self) -> Result<(), KeystoreError> {
        let memory = 128 * u64::from(self.r) * self.n();
        if self.log_n == 0
            || self.log_n > MAX_LOG_N
            || !(1..=MAX_R).contains(&self.r)
            || !(1..=MAX_P).contains(&self.p)
            || memory > MAX_SCRYPT_MEMORY
        {
            return Err(KeystoreError::Unsupported(format!(
                "scrypt parameters n=2^{}, r={}, p={} (allowed: n up to 2^{MAX_LOG_N}, r up to {MAX_R}, p up to {MAX_P}, at most 1 GiB of memory)",
                self.log_n, self.r, self.p
            )));
        }
        Ok(())
    }
}

/// Why a keystore could not be written or opened.
#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    /// The MAC does not match: the passphrase is wrong, or the file was altered.
    #[error(
        "the passphrase does not open this keystore (wrong passphrase, or the file was altered)"
    )]
    WrongPassphrase,
    /// The JSON is not a v3 keystore.
    #[error("not a valid Ethereum v3 keystore: {0}")]
    Malformed(String),
    /// A valid keystore that uses something this implementation does not (or refuses to).
    #[error("unsupported keystore: {0}")]
    Unsupported(String),
    /// The decrypted secret is not a secp256k1 private key.
    #[error("the keystore opened but does not hold a valid secp256k1 private key")]
    InvalidKey,
    /// The `address` field disagrees with the decrypted key.
    #[error("the keystore's address field {recorded} does not match its key's address {actual}")]
    AddressMismatch {
        /// The address written in the file.
        recorded: Address,
        /// The address of the decrypted key.
        actual: Address,
    },
    /// Reading or writing the file failed.
    #[error("cannot {action} keystore file {}: {source}", path.display())]
    Io {
        /// "read" or "write".
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The operating system's random number generator failed.
    #[error("could not read randomness from the operating system: {0}")]
    Randomness(String),
}

/// What a keystore says about itself without being decrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeystoreInfo {
    /// The `address` field, if present.
    pub address: Option<Address>,
    /// MedRec's `medrec` marker of what the secret is (absent for ordinary key files).
    pub kind: Option<String>,
}

fn random<const N: usize>() -> Result<[u8; N], KeystoreError> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).map_err(|e| KeystoreError::Randomness(e.to_string()))?;
    Ok(out)
}

fn uuid_v4() -> Result<String, KeystoreError> {
    let mut b: [u8; 16] = random()?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    Ok(format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32]))
}

fn mac(derived: &[u8], ciphertext: &[u8]) -> B256 {
    let mut input = Vec::with_capacity(16 + ciphertext.len());
    input.extend_from_slice(&derived[16..32]);
    input.extend_from_slice(ciphertext);
    keccak256(&input)
}

fn apply_aes_ctr(key: &[u8], iv: &[u8], data: &mut [u8]) -> Result<(), KeystoreError> {
    let mut cipher = Aes128Ctr::new_from_slices(key, iv)
        .map_err(|_| KeystoreError::Malformed("cipherparams.iv must be 16 bytes".to_owned()))?;
    cipher.apply_keystream(data);
    Ok(())
}

/// Encrypts `secret` into v3 keystore JSON with scrypt, AES-128-CTR and a keccak MAC.
///
/// `address` is written into the `address` field (as geth does for key files); `kind`
/// into MedRec's `medrec` field for secrets that are not private keys.
///
/// # Errors
/// [`KeystoreError::Randomness`] if the OS random number generator fails.
pub fn encrypt(
    secret: &[u8],
    passphrase: &Passphrase,
    params: ScryptParams,
    address: Option<Address>,
    kind: Option<&str>,
) -> Result<String, KeystoreError> {
    params.check()?;
    let salt: [u8; 32] = random()?;
    let iv: [u8; 16] = random()?;
    let mut derived = Zeroizing::new([0u8; 32]);
    scrypt_any(
        passphrase.expose_secret().as_bytes(),
        &salt,
        params.log_n,
        params.r,
        params.p,
        &mut derived[..],
    );
    let mut ciphertext = secret.to_vec();
    apply_aes_ctr(&derived[..16], &iv, &mut ciphertext)?;
    let file = KeystoreJson {
        crypto: CryptoJson {
            cipher: "aes-128-ctr".to_owned(),
            cipherparams: CipherParams { iv: hex::encode(iv) },
            mac: hex::encode(mac(&derived[..], &ciphertext)),
            ciphertext: hex::encode(&ciphertext),
            kdf: "scrypt".to_owned(),
            kdfparams: serde_json::to_value(ScryptJson {
                dklen: 32,
                n: params.n(),
                p: params.p,
                r: params.r,
                salt: hex::encode(salt),
            })
            .map_err(|e| KeystoreError::Malformed(e.to_string()))?,
        },
        id: uuid_v4()?,
        version: 3,
        address: address.map(|a| hex::encode(a.as_slice())),
        medrec: kind.map(ToOwned::to_owned),
    };
    serde_json::to_string_pretty(&file).map_err(|e| KeystoreError::Malformed(e.to_string()))
}

/// Reads the `address` and `medrec` fields without decrypting.
///
/// # Errors
/// [`KeystoreError::Malformed`] if the JSON is not a v3 keystore or the address is invalid.
pub fn info(json: &str) -> Result<KeystoreInfo, KeystoreError> {
    let file = parse(json)?;
    Ok(KeystoreInfo { address: recorded_address(&file)?, kind: file.medrec })
}

/// Decrypts v3 keystore JSON (scrypt or PBKDF2-HMAC-SHA256, AES-128-CTR).
///
/// # Errors
/// [`KeystoreError::WrongPassphrase`] when the MAC does not match; [`KeystoreError::Malformed`]
/// or [`KeystoreError::Unsupported`] for files this cannot read.
pub fn decrypt(json: &str, passphrase: &Passphrase) -> Result<Zeroizing<Vec<u8>>, KeystoreError> {
    let file = parse(json)?;
    let crypto = &file.crypto;
    if crypto.cipher != "aes-128-ctr" {
        return Err(KeystoreError::Unsupported(format!(
            "cipher {} (only aes-128-ctr is supported)",
            crypto.cipher
        )));
    }
    let iv = unhex("cipherparams.iv", &crypto.cipherparams.iv)?;
    let ciphertext = unhex("ciphertext", &crypto.ciphertext)?;
    let expected_mac = unhex("mac", &crypto.mac)?;
    let password = passphrase.expose_secret().as_bytes();
    let malformed = |e: serde_json::Error| KeystoreError::Malformed(format!("kdfparams: {e}"));
    let derived = match crypto.kdf.as_str() {
        "scrypt" => {
            let p: ScryptJson =
                serde_json::from_value(crypto.kdfparams.clone()).map_err(malformed)?;
            if !p.n.is_power_of_two() || p.n < 2 {
                return Err(KeystoreError::Malformed("scrypt n must be a power of two".to_owned()));
            }
            let params = ScryptParams {
                log_n: u8::try_from(p.n.trailing_zeros()).unwrap_or(u8::MAX),
                r: p.r,
                p: p.p,
            };
            params.check()?;
            let salt = unhex("kdfparams.salt", &p.salt)?;
            let mut dk = Zeroizing::new(vec![0u8; check_dklen(p.dklen)?]);
            scrypt_any(password, &salt, params.log_n, params.r, params.p, &mut dk);
            dk
        }
        "pbkdf2" => {
            let p: Pbkdf2Json =
                serde_json::from_value(crypto.kdfparams.clone()).map_err(malformed)?;
            if p.prf != "hmac-sha256" {
                return Err(KeystoreError::Unsupported(format!(
                    "PBKDF2 with {} (only hmac-sha256 is supported)",
                    p.prf
                )));
            }
            if p.c == 0 || p.c > MAX_PBKDF2_ROUNDS {
                return Err(KeystoreError::Unsupported(format!(
                    "PBKDF2 with {} rounds (at most {MAX_PBKDF2_ROUNDS})",
                    p.c
                )));
            }
            let salt = unhex("kdfparams.salt", &p.salt)?;
            let mut dk = Zeroizing::new(vec![0u8; check_dklen(p.dklen)?]);
            pbkdf2::pbkdf2_hmac::<Sha256>(password, &salt, p.c, &mut dk);
            dk
        }
        other => {
            return Err(KeystoreError::Unsupported(format!(
                "key derivation {other} (only scrypt and pbkdf2 are supported)"
            )));
        }
    };
    let actual_mac = mac(&derived, &ciphertext);
    if !constant_time_eq(actual_mac.as_slice(), &expected_mac) {
        return Err(KeystoreError::WrongPassphrase);
    }
    let mut secret = Zeroizing::new(ciphertext);
    apply_aes_ctr(&derived[..16], &iv, &mut secret)?;
    Ok(secret)
}

fn check_dklen(dklen: usize) -> Result<usize, KeystoreError> {
    if (32..=64).contains(&dklen) {
        Ok(dklen)
    } else {
        Err(KeystoreError::Malformed(format!("dklen {dklen} (must be 32 to 64)")))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Encrypts a private key into standard v3 keystore JSON (with its `address`).
///
/// # Errors
/// As [`encrypt`].
pub fn encrypt_key(
    signer: &PrivateKeySigner,
    passphrase: &Passphrase,
    params: ScryptParams,
) -> Result<String, KeystoreError> {
    let key = Zeroizing::new(signer.to_bytes().0);
    encrypt(&key[..], passphrase, params, Some(signer.address()), None)
}

/// Decrypts a private key from v3 keystore JSON, checking the `address` field if present.
///
/// # Errors
/// As [`decrypt`], plus [`KeystoreError::InvalidKey`] and [`KeystoreError::AddressMismatch`].
pub fn decrypt_key(json: &str, passphrase: &Passphrase) -> Result<PrivateKeySigner, KeystoreError> {
    let secret = decrypt(json, passphrase)?;
    if secret.len() != 32 {
        return Err(KeystoreError::InvalidKey);
    }
    let signer = PrivateKeySigner::from_slice(&secret).map_err(|_| KeystoreError::InvalidKey)?;
    if let Some(recorded) = recorded_address(&parse(json)?)?
        && recorded != signer.address()
    {
        return Err(KeystoreError::AddressMismatch { recorded, actual: signer.address() });
    }
    Ok(signer)
}

/// Writes a private key as a v3 keystore file, atomically and with mode 0600.
///
/// # Errors
/// As [`encrypt_key`], plus [`KeystoreError::Io`].
pub fn write_key_file(
    path: &Path,
    signer: &PrivateKeySigner,
    passphrase: &Passphrase,
    params: ScryptParams,
) -> Result<(), KeystoreError> {
    let json = encrypt_key(signer, passphrase, params)?;
    crate::fs::write_private(path, json.as_bytes()).map_err(|source| KeystoreError::Io {
        action: "write",
        path: path.to_path_buf(),
        source,
    })
}

/// Reads and decrypts a v3 keystore file holding a private key.
///
/// # Errors
/// As [`decrypt_key`], plus [`KeystoreError::Io`].
pub fn read_key_file(
    path: &Path,
    passphrase: &Passphrase,
) -> Result<PrivateKeySigner, KeystoreError> {
    decrypt_key(&read_file(path)?, passphrase)
}

pub(crate) fn read_file(path: &Path) -> Result<String, KeystoreError> {
    std::fs::read_to_string(path).map_err(|source| KeystoreError::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    })
}

impl fmt::Display for ScryptParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "scrypt n=2^{} r={} p={}", self.log_n, self.r, self.p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_wrong_passphrase() {
        let pass = Passphrase::new("open sesame").unwrap();
        let json =
            encrypt(b"0123456789abcdef", &pass, ScryptParams::light(), None, Some("x")).unwrap();
        assert_eq!(&decrypt(&json, &pass).unwrap()[..], b"0123456789abcdef");
        assert_eq!(info(&json).unwrap().kind.as_deref(), Some("x"));
        let wrong = Passphrase::new("open sesame!").unwrap();
        assert!(matches!(decrypt(&json, &wrong), Err(KeystoreError::WrongPassphrase)));
        assert!(!json.contains("0123456789abcdef"));
    }

    #[test]
    fn hostile_parameters_are_refused() {
        let pass = Passphrase::new("pw").unwrap();
        let json = encrypt(&[7u8; 32], &pass, ScryptParams::light(), None, None).unwrap();
        let huge = json.replace("\"n\": 1024", "\"n\": 4294967296");
        assert!(matches!(decrypt(&huge, &pass), Err(KeystoreError::Unsupported(_))));
        let odd = json.replace("\"n\": 1024", "\"n\": 1000");
        assert!(matches!(decrypt(&odd, &pass), Err(KeystoreError::Malformed(_))));
        assert!(ScryptParams::new(21, 8, 1).is_err());
        assert_eq!(ScryptParams::default(), ScryptParams::STANDARD);
        assert_eq!(ScryptParams::STANDARD.n(), 262_144);
    }
}
