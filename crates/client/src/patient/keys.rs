//! The keys of a patient's account (issue 13): rotating the owner key, custodians (a
//! spouse, a holder of power of attorney; a parent for a minor until the handover date,
//! added by an institution), and guardians who move the account to a new key after a
//! time-lock the patient can veto.
//!
//! Every new key signs its acceptance (EIP-712 `KeyAcceptance`), so that a typo cannot
//! hand an account away; guardians sign a `Recovery` for the account's current nonce.
//! Who the guardians are is on chain only as a salted commitment until a recovery uses
//! them.

use super::PatientSession;
use crate::{
    chain::Chain,
    error::{Error, Result, ensure},
    tx,
};
use alloy::{
    primitives::{Address, B256, Bytes, aliases::U40},
    rpc::types::TransactionReceipt,
    signers::{SignerSync, local::PrivateKeySigner},
};
use medrec_contracts::{Rights, keys};

/// A key's signature accepting to act for `account` with `rights` until `until`.
///
/// # Errors
/// When signing fails.
pub fn accept_key(
    chain: &Chain,
    key: &PrivateKeySigner,
    account: Address,
    rights: u8,
    until: u64,
) -> Result<Bytes> {
    let domain = keys::domain(chain.chain_id(), chain.spec().relationships);
    let digest = keys::key_acceptance_hash(
        &domain,
        &keys::KeyAcceptance { account, key: key.address(), rights, until: U40::from(until) },
    );
    sign(key, digest)
}

/// A guardian's approval of moving `account` to `new_key`, for the account's recovery
/// `nonce` (see [`Chain::recovery`]).
///
/// # Errors
/// When signing fails.
pub fn approve_recovery(
    chain: &Chain,
    guardian: &PrivateKeySigner,
    account: Address,
    new_key: Address,
    nonce: u32,
) -> Result<Bytes> {
    let domain = keys::domain(chain.chain_id(), chain.spec().relationships);
    let digest = keys::recovery_hash(&domain, &keys::Recovery { account, newKey: new_key, nonce });
    sign(guardian, digest)
}

fn sign(key: &PrivateKeySigner, digest: B256) -> Result<Bytes> {
    let signature =
        key.sign_hash_sync(&digest).map_err(|e| Error::invalid(format!("cannot sign: {e}")))?;
    Ok(signature.as_bytes().to_vec().into())
}

/// An account's guardians as the patient keeps them off chain (the chain holds only
/// their commitment).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Guardians {
    /// The guardians' addresses, ascending.
    pub guardians: Vec<Address>,
    /// How many must sign.
    pub threshold: u8,
    /// The commitment's salt.
    pub salt: B256,
}

impl Guardians {
    /// `threshold` of `guardians`, with a fresh random salt.
    ///
    /// # Errors
    /// When the threshold is 0 or above the number of guardians, there are more than 16
    /// or a guardian is named twice.
    pub fn new(mut guardians: Vec<Address>, threshold: u8) -> Result<Self> {
        guardians.sort();
        guardians.dedup();
        ensure!((1..=16).contains(&guardians.len()), "name between 1 and 16 different guardians");
        ensure!(
            threshold >= 1 && usize::from(threshold) <= guardians.len(),
            "the threshold must be between 1 and the number of guardians ({})",
            guardians.len()
        );
        let mut salt = [0u8; 32];
        getrandom::fill(&mut salt)
            .map_err(|e| Error::invalid(format!("no randomness for the salt: {e}")))?;
        Ok(Self { guardians, threshold, salt: B256::from(salt) })
    }

    /// The commitment the chain stores.
    pub fn commitment(&self) -> B256 {
        keys::guardian_commitment(self.salt, &self.guardians, self.threshold)
    }
}

/// A recovery waiting on chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waiting {
    /// The key the account would move to (zero: none waiting).
    pub new_key: Address,
    /// When it may complete (unix seconds).
    pub ready_at: u64,
    /// The account's recovery nonce, which guardians sign.
    pub nonce: u32,
}

impl Chain {
    /// The account's waiting recovery and recovery nonce.
    ///
    /// # Errors
    /// When the chain cannot be read.
    pub async fn recovery(&self, account: Address) -> Result<Waiting> {
        let r =
            self.relationships().recoveryOf(account).call().await.map_err(|e| {
                Error::invalid(format!("cannot read the recovery of {account}: {e}"))
            })?;
        Ok(Waiting { new_key: r.newKey, ready_at: r.readyAt.to::<u64>(), nonce: r.nonce })
    }

    /// Starts moving `account` to `new_key` with the guardians' `approvals` (anyone may
    /// send it, from `sender`).
    ///
    /// # Errors
    /// When the guardians do not match the commitment, too few signed, or a recovery is
    /// already waiting.
    pub async fn start_recovery(
        &self,
        sender: PrivateKeySigner,
        account: Address,
        new_key: &PrivateKeySigner,
        guardians: &Guardians,
        approvals: Vec<Bytes>,
    ) -> Result<TransactionReceipt> {
        let key_sig = accept_key(self, new_key, account, Rights::ALL, 0)?;
        let contract = self.relationships_as(sender);
        let call = contract.startRecovery(
            account,
            new_key.address(),
            key_sig,
            guardians.guardians.clone(),
            guardians.threshold,
            guardians.salt,
            approvals,
        );
        tx::send(&call, &format!("starting the recovery of account {account}")).await
    }

    /// Completes `account`'s recovery after its time-lock, retiring `old_key` (anyone
    /// may send it, from `sender`).
    ///
    /// # Errors
    /// When no recovery waits, its time-lock has not passed, or `old_key` is not the
    /// account's owner key.
    pub async fn complete_recovery(
        &self,
        sender: PrivateKeySigner,
        account: Address,
        old_key: Address,
    ) -> Result<TransactionReceipt> {
        let contract = self.relationships_as(sender);
        tx::send(
            &contract.completeRecovery(account, old_key),
            &format!("completing the recovery of account {account}"),
        )
        .await
    }
}

impl PatientSession {
    /// Moves the account to `new_key`: this session's key is retired from the next
    /// block on; relationships and grants stay. Returns the session of the new key.
    ///
    /// # Errors
    /// When this key is not the owner key, or the new key already acts for an account.
    pub async fn rotate(&self, new_key: PrivateKeySigner) -> Result<(Self, TransactionReceipt)> {
        let account = self.address();
        let key_sig = accept_key(self.chain(), &new_key, account, Rights::ALL, 0)?;
        let contract = self.chain().relationships_as(self.signer().clone());
        let receipt = tx::send(
            &contract.rotate(new_key.address(), key_sig),
            &format!("moving account {account} to key {}", new_key.address()),
        )
        .await?;
        let next = Self::acting(self.chain().clone(), new_key, account, self.secret().cloned());
        Ok((Self { dir: self.dir.clone(), ..next }, receipt))
    }

    /// Lets `custodian` (its key for this account) act with `rights` until `until` (0:
    /// until removed).
    ///
    /// # Errors
    /// When this key is not the owner key, the rights include the owner's, or the
    /// custodian's key acts for another account.
    pub async fn add_custodian(
        &self,
        custodian: &PrivateKeySigner,
        rights: u8,
        until: u64,
    ) -> Result<TransactionReceipt> {
        let account = self.address();
        let key_sig = accept_key(self.chain(), custodian, account, rights, until)?;
        let contract = self.chain().relationships_as(self.signer().clone());
        tx::send(
            &contract.addKey(custodian.address(), rights, U40::from(until), key_sig),
            &format!(
                "letting {} act for account {account} ({})",
                custodian.address(),
                Rights(rights)
            ),
        )
        .await
    }

    /// Retires a custodian's key at once.
    ///
    /// # Errors
    /// When this key is not the owner key or `key` is no custodian of the account.
    pub async fn remove_custodian(&self, key: Address) -> Result<TransactionReceipt> {
        let contract = self.chain().relationships_as(self.signer().clone());
        tx::send(&contract.removeKey(key), &format!("retiring custodian key {key}")).await
    }

    /// Names the account's guardians (their commitment goes on chain; keep `guardians`
    /// off chain, it is what a recovery shows).
    ///
    /// # Errors
    /// When this key is not the owner key.
    pub async fn set_guardians(&self, guardians: &Guardians) -> Result<TransactionReceipt> {
        let contract = self.chain().relationships_as(self.signer().clone());
        tx::send(
            &contract.setGuardians(guardians.commitment()),
            &format!(
                "naming {} guardians of account {}",
                guardians.guardians.len(),
                self.address()
            ),
        )
        .await
    }

    /// Stops the waiting recovery of the account.
    ///
    /// # Errors
    /// When this key is not the owner key or no recovery waits.
    pub async fn veto_recovery(&self) -> Result<TransactionReceipt> {
        let contract = self.chain().relationships_as(self.signer().clone());
        tx::send(
            &contract.vetoRecovery(),
            &format!("vetoing the recovery of account {}", self.address()),
        )
        .await
    }
}
