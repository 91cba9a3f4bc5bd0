//! What keeps a patient's providers off the public chain (issue 13): each relationship's
//! provider is on chain only encrypted, for the patient and for each viewer the patient
//! grants.
//!
//! - The patient's [`RecordsSecret`] is derived by HKDF-SHA256 from the account's key
//!   (the wallet's `m/44'/60'/0'/0/0`), so the seed alone recovers it.
//! - Each relationship's key is `K_rel = HKDF(secret, relId)`; the provider's address is
//!   encrypted under it with AES-256-GCM ([`encrypt_identity`]: 20 bytes of address and
//!   16 of tag; the nonce is fixed because each `K_rel` encrypts exactly one message).
//! - A grant carries `K_rel` sealed for the viewer ([`seal`]): an ephemeral X25519 key
//!   agreement with the viewer's published key (`Registrar.encryptionKeyOf`), HKDF, and
//!   AES-256-GCM: 32 + 32 + 16 = 80 bytes. The viewer's X25519 key is derived from its
//!   own account key ([`RecordsSecret::encryption_secret`]).

use aes_gcm::{
    Aes256Gcm, Key, Nonce,
    aead::{Aead, KeyInit, Payload},
};
use alloy::{primitives::Address, signers::local::PrivateKeySigner};
use hkdf::Hkdf;
use medrec_primitives::RelationshipId;
use sha2::Sha256;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

/// Length of an encrypted identity on chain.
pub const IDENTITY_BYTES: usize = 36;
/// Length of a sealed relationship key on chain.
pub const SEALED_BYTES: usize = 80;

const IDENTITY_AAD: &[u8] = b"medrec/identity/v1";
const SEAL_AAD: &[u8] = b"medrec/seal/v1";

/// The patient's (or a viewer's) secret behind every relationship key and its X25519
/// key, derived from the account's private key.
#[derive(Clone)]
pub struct RecordsSecret(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for RecordsSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecordsSecret(..)")
    }
}

fn hkdf(ikm: &[u8], salt: &str, info: &[&[u8]]) -> Zeroizing<[u8; 32]> {
    let hk = Hkdf::<Sha256>::new(Some(salt.as_bytes()), ikm);
    let mut out = Zeroizing::new([0u8; 32]);
    // 32 bytes is far below HKDF-SHA256's limit of 255 * 32, so this cannot fail.
    let _ = hk.expand_multi_info(info, out.as_mut_slice());
    out
}

impl RecordsSecret {
    /// The secret of the account whose (first) key is `account_key`.
    pub fn of(account_key: &PrivateKeySigner) -> Self {
        let ikm = Zeroizing::new(account_key.to_bytes().0);
        Self(hkdf(ikm.as_slice(), "medrec/records-secret/v1", &[account_key.address().as_slice()]))
    }

    /// The key of relationship `relationship`, `K_rel`.
    pub fn relationship_key(&self, relationship: RelationshipId) -> RelationshipKey {
        RelationshipKey(hkdf(
            self.0.as_slice(),
            "medrec/relationship-key/v1",
            &[relationship.0.as_slice()],
        ))
    }

    /// The X25519 secret to which others seal what they share with this account.
    pub fn encryption_secret(&self) -> StaticSecret {
        StaticSecret::from(*hkdf(self.0.as_slice(), "medrec/x25519/v1", &[]))
    }

    /// The X25519 public key to publish (`Registrar.setEncryptionKey`).
    pub fn encryption_key(&self) -> [u8; 32] {
        PublicKey::from(&self.encryption_secret()).to_bytes()
    }
}

/// One relationship's key.
#[derive(Clone)]
pub struct RelationshipKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for RelationshipKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RelationshipKey(..)")
    }
}

impl RelationshipKey {
    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&Key::<Aes256Gcm>::from(*self.0))
    }
}

/// The provider's address encrypted under the relationship's key (36 bytes).
pub fn encrypt_identity(key: &RelationshipKey, provider: Address) -> Vec<u8> {
    let payload = Payload { msg: provider.as_slice(), aad: IDENTITY_AAD };
    // Encrypting 20 bytes under a valid key cannot fail.
    key.cipher().encrypt(&Nonce::default(), payload).unwrap_or_default()
}

/// The provider's address, when `ciphertext` is one encrypted under `key`.
pub fn decrypt_identity(key: &RelationshipKey, ciphertext: &[u8]) -> Option<Address> {
    if ciphertext.len() != IDENTITY_BYTES {
        return None;
    }
    let plain = key
        .cipher()
        .decrypt(&Nonce::default(), Payload { msg: ciphertext, aad: IDENTITY_AAD })
        .ok()?;
    Some(Address::from_slice(&plain))
}

fn seal_key(shared: &[u8; 32], ephemeral: &[u8; 32], recipient: &[u8; 32]) -> Aes256Gcm {
    let key = hkdf(shared, "medrec/seal/v1", &[ephemeral, recipient]);
    Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key))
}

/// `key` sealed for the holder of the X25519 public key `recipient` (80 bytes).
///
/// # Errors
/// When the system's random source fails.
pub fn seal(recipient: [u8; 32], key: &RelationshipKey) -> Result<Vec<u8>, getrandom::Error> {
    let mut seed = Zeroizing::new([0u8; 32]);
    getrandom::fill(seed.as_mut_slice())?;
    let ephemeral = StaticSecret::from(*seed);
    let ephemeral_public = PublicKey::from(&ephemeral).to_bytes();
    let shared = Zeroizing::new(ephemeral.diffie_hellman(&PublicKey::from(recipient)).to_bytes());
    let body = seal_key(&shared, &ephemeral_public, &recipient)
        .encrypt(&Nonce::default(), Payload { msg: key.0.as_slice(), aad: SEAL_AAD })
        .unwrap_or_default();
    Ok([ephemeral_public.as_slice(), &body].concat())
}

/// The relationship key sealed in `sealed` for the holder of `secret`.
pub fn open(secret: &RecordsSecret, sealed: &[u8]) -> Option<RelationshipKey> {
    if sealed.len() != SEALED_BYTES {
        return None;
    }
    let (ephemeral, body) = sealed.split_at(32);
    let ephemeral: [u8; 32] = ephemeral.try_into().ok()?;
    let own = secret.encryption_secret();
    let recipient = PublicKey::from(&own).to_bytes();
    let shared = Zeroizing::new(own.diffie_hellman(&PublicKey::from(ephemeral)).to_bytes());
    let plain = Zeroizing::new(
        seal_key(&shared, &ephemeral, &recipient)
            .decrypt(&Nonce::default(), Payload { msg: body, aad: SEAL_AAD })
            .ok()?,
    );
    let key: [u8; 32] = plain.as_slice().try_into().ok()?;
    Some(RelationshipKey(Zeroizing::new(key)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::B256;

    #[test]
    fn the_patient_recovers_the_provider_and_nobody_else_does() {
        let patient = RecordsSecret::of(&PrivateKeySigner::random());
        let rel = RelationshipId(B256::repeat_byte(1));
        let provider = Address::repeat_byte(0xab);
        let ct = encrypt_identity(&patient.relationship_key(rel), provider);
        assert_eq!(ct.len(), IDENTITY_BYTES);
        assert_eq!(decrypt_identity(&patient.relationship_key(rel), &ct), Some(provider));
        // Another relationship's key, another patient's, a flipped bit: nothing.
        let other = RelationshipId(B256::repeat_byte(2));
        assert_eq!(decrypt_identity(&patient.relationship_key(other), &ct), None);
        let stranger = RecordsSecret::of(&PrivateKeySigner::random());
        assert_eq!(decrypt_identity(&stranger.relationship_key(rel), &ct), None);
        let mut flipped = ct.clone();
        flipped[3] ^= 1;
        assert_eq!(decrypt_identity(&patient.relationship_key(rel), &flipped), None);
        // The same relationship, two providers: unrelated ciphertexts of one length.
        let ct2 = encrypt_identity(&patient.relationship_key(other), provider);
        assert_ne!(ct, ct2);
    }

    #[test]
    fn a_sealed_key_opens_only_for_its_viewer() {
        let patient = RecordsSecret::of(&PrivateKeySigner::random());
        let viewer = RecordsSecret::of(&PrivateKeySigner::random());
        let rel = RelationshipId(B256::repeat_byte(7));
        let key = patient.relationship_key(rel);
        let sealed = seal(viewer.encryption_key(), &key).unwrap();
        assert_eq!(sealed.len(), SEALED_BYTES);
        let opened = open(&viewer, &sealed).expect("the viewer opens it");
        let provider = Address::repeat_byte(0x42);
        let ct = encrypt_identity(&key, provider);
        assert_eq!(decrypt_identity(&opened, &ct), Some(provider));
        let stranger = RecordsSecret::of(&PrivateKeySigner::random());
        assert!(open(&stranger, &sealed).is_none());
        // Two seals of one key for one viewer differ (a fresh ephemeral key each).
        assert_ne!(sealed, seal(viewer.encryption_key(), &key).unwrap());
    }
}
