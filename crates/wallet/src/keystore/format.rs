//! The v3 keystore JSON as it is on disk: the file's fields, and reading them back
//! (version check, hexadecimal fields, the recorded address).

use alloy::primitives::Address;
use serde::{Deserialize, Serialize};

use super::KeystoreError;

#[derive(Serialize, Deserialize)]
pub(super) struct KeystoreJson {
    #[serde(alias = "Crypto")]
    pub(super) crypto: CryptoJson,
    pub(super) id: String,
    pub(super) version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) address: Option<String>,
    /// MedRec marker for keystores that hold something other than a private key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) medrec: Option<String>,
}

#[derive(Serialize, Deserialize)]
pub(super) struct CryptoJson {
    pub(super) cipher: String,
    pub(super) cipherparams: CipherParams,
    pub(super) ciphertext: String,
    pub(super) kdf: String,
    pub(super) kdfparams: serde_json::Value,
    pub(super) mac: String,
}

#[derive(Serialize, Deserialize)]
pub(super) struct CipherParams {
    pub(super) iv: String,
}

#[derive(Serialize, Deserialize)]
pub(super) struct ScryptJson {
    pub(super) dklen: usize,
    pub(super) n: u64,
    pub(super) p: u32,
    pub(super) r: u32,
    pub(super) salt: String,
}

#[derive(Deserialize)]
pub(super) struct Pbkdf2Json {
    pub(super) c: u32,
    pub(super) dklen: usize,
    pub(super) prf: String,
    pub(super) salt: String,
}

pub(super) fn parse(json: &str) -> Result<KeystoreJson, KeystoreError> {
    let file: KeystoreJson =
        serde_json::from_str(json).map_err(|e| KeystoreError::Malformed(e.to_string()))?;
    if file.version != 3 {
        return Err(KeystoreError::Unsupported(format!(
            "version {} (only version 3 is supported)",
            file.version
        )));
    }
    Ok(file)
}

pub(super) fn recorded_address(file: &KeystoreJson) -> Result<Option<Address>, KeystoreError> {
    file.address
        .as_deref()
        .map(|a| {
            let bytes = unhex("address", a)?;
            if bytes.len() != 20 {
                return Err(KeystoreError::Malformed("address must be 20 bytes".to_owned()));
            }
            Ok(Address::from_slice(&bytes))
        })
        .transpose()
}

pub(super) fn unhex(field: &str, value: &str) -> Result<Vec<u8>, KeystoreError> {
    hex::decode(value.strip_prefix("0x").unwrap_or(value))
        .map_err(|_| KeystoreError::Malformed(format!("{field} is not hexadecimal")))
}
