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

/// A key's signed acceptance to act for an account, as its holder hands it to the
/// patient (the "acceptance code" a custodian's app shows and the patient's pastes):
/// the patient's key then adds the custodian without ever holding the custodian's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acceptance {
    /// The account the key will act for.
    pub account: Address,
    /// The key.
    pub key: Address,
    /// The rights accepted (SEE | SHARE | DECIDE).
    pub rights: u8,
    /// Until when (unix seconds; 0: until removed).
    pub until: u64,
    /// The key's EIP-712 `KeyAcceptance` signature.
    pub signature: Bytes,
}

/// What an acceptance code starts with.
const ACCEPTANCE_PREFIX: &str = "medrec-key-1";

impl Acceptance {
    /// `key` accepts to act for `account` with `rights` until `until`.
    ///
    /// # Errors
    /// When signing fails.
    pub fn sign(
        chain: &Chain,
        key: &PrivateKeySigner,
        account: Address,
        rights: u8,
        until: u64,
    ) -> Result<Self> {
        let signature = accept_key(chain, key, account, rights, until)?;
        Ok(Self { account, key: key.address(), rights, until, signature })
    }

    /// The code to hand over: `medrec-key-1.<account>.<key>.<rights>.<until>.<signature>`.
    pub fn code(&self) -> String {
        format!(
            "{ACCEPTANCE_PREFIX}.{}.{}.{}.{}.{}",
            self.account, self.key, self.rights, self.until, self.signature
        )
    }

    /// The acceptance of a code (whitespace and line breaks ignored).
    ///
    /// # Errors
    /// When it is not one.
    pub fn parse(code: &str) -> Result<Self> {
        let text: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        let bad =
            || Error::invalid("that is not an acceptance code (it starts with medrec-key-1.)");
        let parts: Vec<&str> = text.split('.').collect();
        let [prefix, account, key, rights, until, signature] = parts.as_slice() else {
            return Err(bad());
        };
        ensure!(
            *prefix == ACCEPTANCE_PREFIX,
            "that is not an acceptance code (it starts with medrec-key-1.)"
        );
        Ok(Self {
            account: account.parse().map_err(|_| bad())?,
            key: key.parse().map_err(|_| bad())?,
            rights: rights.parse().map_err(|_| bad())?,
            until: until.parse().map_err(|_| bad())?,
            signature: signature.parse().map_err(|_| bad())?,
        })
    }

    /// Whether the signature is the key's, for this chain's contract.
    pub fn verify(&self, chain: &Chain) -> bool {
        let domain = keys::domain(chain.chain_id(), chain.spec().relationships);
        let digest = keys::key_acceptance_hash(
            &domain,
            &keys::KeyAcceptance {
                account: self.account,
                key: self.key,
                rights: self.rights,
                until: U40::from(self.until),
            },
        );
        alloy::primitives::Signature::try_from(self.signature.as_ref())
            .ok()
            .and_then(|s| s.recover_address_from_prehash(&digest).ok())
            == Some(self.key)
    }
}

/// A key that acts (or acted) for an account, as the chain's key events left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySlot {
    /// The key.
    pub key: Address,
    /// Its rights (0: retired).
    pub rights: u8,
    /// Until when (unix seconds; 0: until removed).
    pub until: u64,
    /// The key that made the last change to it.
    pub actor: Address,
    /// The block of that change.
    pub block: u64,
}

impl KeySlot {
    /// Whether it may act now (`now`: the chain's time).
    pub const fn active(&self, now: u64) -> bool {
        self.rights != 0 && (self.until == 0 || now < self.until)
    }

    /// Whether it is the account's owner key.
    pub const fn owner(&self) -> bool {
        self.rights & Rights::OWNER != 0
    }
}

impl Chain {
    /// Every key that acts or acted for `account`, in the order of their last change,
    /// replayed from the `KeyChanged` and `KeyRotated` events (the account's first key
    /// is in it only once a rotation retired it).
    ///
    /// # Errors
    /// When the chain cannot be read.
    pub async fn account_keys(&self, account: Address) -> Result<Vec<KeySlot>> {
        use alloy::{
            eips::BlockNumberOrTag, providers::Provider as _, rpc::types::Filter,
            sol_types::SolEvent as _,
        };
        use medrec_contracts::Relationships as R;
        let filter = Filter::new()
            .address(self.spec().relationships)
            .from_block(self.spec().from_block)
            .to_block(BlockNumberOrTag::Latest)
            .event_signature(vec![R::KeyChanged::SIGNATURE_HASH, R::KeyRotated::SIGNATURE_HASH])
            .topic1(account.into_word());
        let mut logs = self.reader().get_logs(&filter).await.map_err(|e| {
            Error::invalid(format!("cannot read the keys of account {account}: {e}"))
        })?;
        logs.sort_by_key(|l| (l.block_number, l.log_index));
        let mut slots: Vec<KeySlot> = Vec::new();
        let mut set = |slot: KeySlot| {
            slots.retain(|s| s.key != slot.key);
            slots.push(slot);
        };
        for l in logs.iter().filter(|l| !l.removed) {
            let block = l.block_number.unwrap_or_default();
            if let Ok(e) = R::KeyChanged::decode_log(&l.inner) {
                set(KeySlot {
                    key: e.key,
                    rights: e.rights,
                    until: e.until.to::<u64>(),
                    actor: e.actor,
                    block,
                });
            } else if let Ok(e) = R::KeyRotated::decode_log(&l.inner) {
                set(KeySlot { key: e.oldKey, rights: 0, until: 0, actor: e.actor, block });
                set(KeySlot {
                    key: e.newKey,
                    rights: Rights::ALL,
                    until: 0,
                    actor: e.actor,
                    block,
                });
            }
        }
        Ok(slots)
    }
}

impl PatientSession {
    /// Lets the key of `acceptance` act for the account with the rights and until-date
    /// it accepted (its holder signed it; this session never sees its private key).
    ///
    /// # Errors
    /// When the acceptance is for another account or not signed by its key, this key
    /// is not the owner key, or the contract refuses.
    pub async fn add_accepted_custodian(
        &self,
        acceptance: &Acceptance,
    ) -> Result<TransactionReceipt> {
        let account = self.address();
        ensure!(
            acceptance.account == account,
            "this acceptance code is for account {}, not yours ({account})",
            acceptance.account
        );
        ensure!(
            acceptance.verify(self.chain()),
            "this acceptance code is not signed by key {} (or is for another chain)",
            acceptance.key
        );
        let contract = self.chain().relationships_as(self.signer().clone());
        tx::send(
            &contract.addKey(
                acceptance.key,
                acceptance.rights,
                U40::from(acceptance.until),
                acceptance.signature.clone(),
            ),
            &format!(
                "letting {} act for account {account} ({})",
                acceptance.key,
                Rights(acceptance.rights)
            ),
        )
        .await
    }
}
