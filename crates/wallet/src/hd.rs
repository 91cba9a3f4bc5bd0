//! Hierarchical deterministic (BIP-32/BIP-44) keys derived from a [`Mnemonic`].
//!
//! Derivation paths:
//!
//! | key | path | why |
//! | --- | --- | --- |
//! | the participant's own account | `m/44'/60'/0'/0/0` ([`ACCOUNT_PATH`]) | the standard first Ethereum address, so the same phrase opens the same account in MetaMask, Ledger or Foundry |
//! | provider delegate for relationship `i` | `m/44'/60'/1'/0/i'` ([`delegate_path`]) | a separate BIP-44 account (`1'`), so delegates never show up among the user's ordinary addresses and ordinary wallets never hand one out by accident |
//!
//! The delegate's last step is hardened (`i'`): a delegate key may live on a server, and with
//! non-hardened children one leaked child private key plus the parent's extended public key
//! would give away every sibling. Hardening costs nothing here because MedRec never shares
//! extended public keys. Everything is deterministic: a provider who recovers the phrase
//! re-derives every delegate, and [`HdKeys::find_delegate`] finds which index an address had.

use std::fmt;

use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;
use coins_bip32::prelude::{Parent, XPriv};

use crate::mnemonic::Mnemonic;

/// The participant's own account: the standard first Ethereum address.
pub const ACCOUNT_PATH: &str = "m/44'/60'/0'/0/0";

/// The parent of the participant's account keys: key `n` is its child `n`
/// (`m/44'/60'/0'/0/n`, the standard n-th Ethereum address); key 0 is the account.
pub const ACCOUNT_PARENT_PATH: &str = "m/44'/60'/0'/0";

/// The parent of all provider delegates; delegate `i` is its hardened child `i'`.
pub const DELEGATE_PARENT_PATH: &str = "m/44'/60'/1'/0";

/// The largest relationship index (hardened children use the indices below 2^31).
pub const MAX_DELEGATE_INDEX: u32 = (1 << 31) - 1;

const HARDENED: u32 = 1 << 31;

/// The derivation path of the delegate for relationship `index`, e.g. `m/44'/60'/1'/0/7'`.
#[must_use]
pub fn delegate_path(index: u32) -> String {
    format!("{DELEGATE_PARENT_PATH}/{index}'")
}

/// Why a key could not be derived.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HdError {
    /// The relationship index is above [`MAX_DELEGATE_INDEX`].
    #[error("delegate index {0} is too large (the largest is 2147483647)")]
    IndexOutOfRange(u32),
    /// BIP-32 derivation failed (an invalid child key; astronomically unlikely).
    #[error("BIP-32 key derivation failed: {0}")]
    Derivation(String),
}

/// The keys derived from one phrase: the account and the delegate parent, computed once so
/// that deriving many delegates does not repeat the (deliberately slow) seed computation.
///
/// Private keys are held in `k256` signing keys, which wipe themselves on drop.
pub struct HdKeys {
    account: PrivateKeySigner,
    account_parent: XPriv,
    delegate_parent: XPriv,
}

impl fmt::Debug for HdKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HdKeys").field("account", &self.account.address()).finish_non_exhaustive()
    }
}

fn derivation(e: impl fmt::Display) -> HdError {
    HdError::Derivation(e.to_string())
}

fn signer(key: &XPriv) -> PrivateKeySigner {
    let key: &coins_bip32::ecdsa::SigningKey = key.as_ref();
    PrivateKeySigner::from_signing_key(key.clone())
}

impl HdKeys {
    /// Derives the account and the delegate parent from the phrase's seed.
    ///
    /// # Errors
    /// [`HdError::Derivation`] if BIP-32 fails.
    pub fn from_mnemonic(mnemonic: &Mnemonic) -> Result<Self, HdError> {
        let seed = mnemonic.seed();
        let master = XPriv::root_from_seed(&seed[..], None).map_err(derivation)?;
        let account_parent = master.derive_path(ACCOUNT_PARENT_PATH).map_err(derivation)?;
        let account = account_parent.derive_child(0).map_err(derivation)?;
        let delegate_parent = master.derive_path(DELEGATE_PARENT_PATH).map_err(derivation)?;
        Ok(Self { account: signer(&account), account_parent, delegate_parent })
    }

    /// The participant's own account key (`m/44'/60'/0'/0/0`).
    #[must_use]
    pub const fn account(&self) -> &PrivateKeySigner {
        &self.account
    }

    /// The participant's key number `index` (`m/44'/60'/0'/0/index`): key 0 is the
    /// account; a key rotation moves the account to the next one, so the phrase
    /// recovers every key the account ever used.
    ///
    /// # Errors
    /// [`HdError::IndexOutOfRange`] from 2^31 on (those would be hardened children).
    pub fn account_key(&self, index: u32) -> Result<PrivateKeySigner, HdError> {
        if index > MAX_DELEGATE_INDEX {
            return Err(HdError::IndexOutOfRange(index));
        }
        let child = self.account_parent.derive_child(index).map_err(derivation)?;
        Ok(signer(&child))
    }

    /// The delegate key for relationship `index` (`m/44'/60'/1'/0/index'`).
    ///
    /// # Errors
    /// [`HdError::IndexOutOfRange`] above [`MAX_DELEGATE_INDEX`].
    pub fn delegate(&self, index: u32) -> Result<PrivateKeySigner, HdError> {
        if index > MAX_DELEGATE_INDEX {
            return Err(HdError::IndexOutOfRange(index));
        }
        let child = self.delegate_parent.derive_child(index | HARDENED).map_err(derivation)?;
        Ok(signer(&child))
    }

    /// The address of the delegate for relationship `index`.
    ///
    /// # Errors
    /// As [`HdKeys::delegate`].
    pub fn delegate_address(&self, index: u32) -> Result<Address, HdError> {
        Ok(self.delegate(index)?.address())
    }

    /// Finds the relationship index of `address` among the delegates `0..limit`.
    ///
    /// Returns `None` if no delegate below `limit` has that address.
    ///
    /// # Errors
    /// As [`HdKeys::delegate`].
    pub fn find_delegate(&self, address: Address, limit: u32) -> Result<Option<u32>, HdError> {
        for index in 0..limit.min(MAX_DELEGATE_INDEX.saturating_add(1)) {
            if self.delegate_address(index)? == address {
                return Ok(Some(index));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::address;
    use alloy::signers::local::MnemonicBuilder;
    use coins_bip39::English;

    const TEST_PHRASE: &str = "test test test test test test test test test test test junk";

    #[test]
    fn account_is_the_standard_first_address() {
        let keys = HdKeys::from_mnemonic(&Mnemonic::parse(TEST_PHRASE).unwrap()).unwrap();
        assert_eq!(
            keys.account().address(),
            address!("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266")
        );
    }

    #[test]
    fn delegates_match_alloys_mnemonic_builder() {
        let keys = HdKeys::from_mnemonic(&Mnemonic::parse(TEST_PHRASE).unwrap()).unwrap();
        for index in [0, 1, 42] {
            let theirs = MnemonicBuilder::<English>::default()
                .phrase(TEST_PHRASE)
                .derivation_path(delegate_path(index))
                .unwrap()
                .build()
                .unwrap();
            assert_eq!(keys.delegate_address(index).unwrap(), theirs.address());
        }
    }

    #[test]
    fn account_keys_are_the_standard_nth_addresses() {
        let keys = HdKeys::from_mnemonic(&Mnemonic::parse(TEST_PHRASE).unwrap()).unwrap();
        assert_eq!(keys.account_key(0).unwrap().address(), keys.account().address());
        assert_eq!(
            keys.account_key(1).unwrap().address(),
            address!("0x70997970C51812dc3A010C7d01b50e0d17dc79C8")
        );
        assert!(keys.account_key(MAX_DELEGATE_INDEX + 1).is_err());
    }

    #[test]
    fn index_range_is_checked() {
        let keys = HdKeys::from_mnemonic(&Mnemonic::parse(TEST_PHRASE).unwrap()).unwrap();
        assert_eq!(
            keys.delegate(MAX_DELEGATE_INDEX + 1).unwrap_err(),
            HdError::IndexOutOfRange(MAX_DELEGATE_INDEX + 1)
        );
        assert!(keys.delegate(MAX_DELEGATE_INDEX).is_ok());
        assert_eq!(delegate_path(3), "m/44'/60'/1'/0/3'");
    }
}
