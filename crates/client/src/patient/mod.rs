//! What a patient does: take a provider's offer (the patient's key creates the
//! relationship, with the provider encrypted for the patient), answer updates (accept,
//! reject) and delete, share pointers with a viewer (the relationship's key sealed for
//! it) and revoke, opt in or out of research ([`PatientSession`]); manage the account's
//! keys: rotation, custodians, guardians ([`keys`]); fetch every record verified against
//! the chain into the encrypted cache ([`records`]); read the access log with its
//! proofs ([`access_log`]).
//!
//! A session acts for an account (the address of the patient's first key) with a key:
//! the account's own, a rotated one, or a custodian's. Only a session that holds the
//! account's [`RecordsSecret`] reads the providers' names from the chain.

pub mod access_log;
pub mod keys;
pub mod offers;
pub mod records;

use crate::{
    chain::{Chain, pick},
    error::{OrInvalid as _, Result, bail, ensure},
    privacy::{self, RecordsSecret},
    timeline, tx,
};
use alloy::{
    primitives::{Address, B256, aliases::U40},
    rpc::types::TransactionReceipt,
    signers::local::PrivateKeySigner,
};
use medrec_chain::inbox::Summary;
use medrec_primitives::{PointerSet, RelationshipId, Status};
use medrec_wallet::Wallet;
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

/// Which of the patient's relationships a step is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// By id, or its first (at least 6) hex digits.
    Id(String),
    /// By provider, when the patient has one relationship with it.
    Provider(Address),
}

/// A relationship of the patient, as the chain tells it.
#[derive(Debug, Clone)]
pub struct Chosen {
    /// Its id.
    pub id: RelationshipId,
    /// Its summary from the chain's events.
    pub summary: Summary,
    /// Its delegate, which the patient's transactions name.
    pub delegate: Address,
}

/// The window of a grant, in Unix seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    /// From when (default: now).
    pub from: Option<u64>,
    /// Until when (wins over `duration`).
    pub until: Option<u64>,
    /// For how long from the start (default: 7 days).
    pub duration: Option<u64>,
}

/// A grant sent on chain.
#[derive(Debug, Clone)]
pub struct Grant {
    /// The relationship.
    pub relationship: RelationshipId,
    /// The viewer.
    pub viewer: Address,
    /// The pointers shared.
    pub pointers: Vec<u8>,
    /// Valid from (Unix seconds; 0 is at once).
    pub not_before: u64,
    /// Valid until (Unix seconds).
    pub expires_at: u64,
    /// The transaction.
    pub receipt: TransactionReceipt,
}

/// A patient's account, acted for by one key, connected to the chain.
#[derive(Debug, Clone)]
pub struct PatientSession {
    chain: Chain,
    signer: PrivateKeySigner,
    account: Address,
    secret: Option<RecordsSecret>,
    dir: Option<PathBuf>,
}

impl PatientSession {
    /// The patient of the opened `wallet` on `chain`; the encrypted record cache is in
    /// the wallet's directory.
    /// It signs with the wallet's key that acts now (`keys.json`: key 0 until a rotation;
    /// an unreadable file falls back to key 0, which the chain then refuses in a sentence
    /// if it was retired) and holds the account's secret, derived from key 0.
    pub fn new(chain: Chain, wallet: &Wallet) -> Self {
        let key = wallet.acting_key().unwrap_or_else(|_| wallet.account().clone());
        Self {
            chain,
            signer: key,
            account: wallet.address(),
            secret: Some(RecordsSecret::of(wallet.account())),
            dir: Some(wallet.dir().to_owned()),
        }
    }

    /// The patient who signs with `signer` (a development account, a test), with no
    /// data directory: everything but the record cache ([`PatientSession::refresh`]).
    pub fn with_signer(chain: Chain, signer: PrivateKeySigner) -> Self {
        let (account, secret) = (signer.address(), Some(RecordsSecret::of(&signer)));
        Self { chain, signer, account, secret, dir: None }
    }

    /// The patient who signs with `signer` (a demo's development account, already
    /// unlocked), keeping the encrypted record cache in `dir`.
    pub fn with_signer_in(chain: Chain, signer: PrivateKeySigner, dir: PathBuf) -> Self {
        Self { dir: Some(dir), ..Self::with_signer(chain, signer) }
    }

    /// Someone acting for `account` with `key`: a custodian (a parent, a spouse) or the
    /// patient after a rotation, with the rights the chain gives the key. Without the
    /// account's `secret` the providers' names stay encrypted.
    pub const fn acting(
        chain: Chain,
        key: PrivateKeySigner,
        account: Address,
        secret: Option<RecordsSecret>,
    ) -> Self {
        Self { chain, signer: key, account, secret, dir: None }
    }

    /// The same session, keeping its encrypted record cache in `dir` (a custodian's
    /// app: the cache is sealed under the custodian's key).
    #[must_use]
    pub fn in_dir(self, dir: PathBuf) -> Self {
        Self { dir: Some(dir), ..self }
    }

    /// The account's secret, when this session holds it.
    pub const fn secret(&self) -> Option<&RecordsSecret> {
        self.secret.as_ref()
    }

    /// The chain.
    pub const fn chain(&self) -> &Chain {
        &self.chain
    }

    /// The key the patient signs with.
    pub const fn signer(&self) -> &PrivateKeySigner {
        &self.signer
    }

    /// The data directory, when the patient has one.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The patient's account (the address of their first key, which names their
    /// relationships whatever key acts now).
    pub const fn address(&self) -> Address {
        self.account
    }

    /// The patient's relationships as the chain's events tell them, each provider
    /// decrypted when this session holds the account's secret.
    ///
    /// # Errors
    /// When the chain cannot be read.
    pub async fn relationships(&self) -> Result<BTreeMap<RelationshipId, Summary>> {
        let mut all = self.chain.patient_relationships(self.address()).await?;
        if let Some(secret) = &self.secret {
            for (id, s) in &mut all {
                s.provider = privacy::decrypt_identity(&secret.relationship_key(*id), &s.identity);
            }
        }
        Ok(all)
    }

    /// The relationship `target` names among the patient's.
    ///
    /// # Errors
    /// When it names none, or several.
    pub async fn choose(&self, target: &Target) -> Result<Chosen> {
        let mine = self.relationships().await?;
        let id = match target {
            Target::Id(text) => pick(mine.keys(), text)?,
            Target::Provider(provider) => {
                let with: Vec<_> =
                    mine.iter().filter(|(_, s)| s.provider == Some(*provider)).collect();
                match with.as_slice() {
                    [(id, _)] => **id,
                    [] => bail!("you have no relationship with provider {provider}"),
                    _ => bail!(
                        "you have {} relationships with provider {provider}; name one with --relationship ({})",
                        with.len(),
                        with.iter().map(|(id, _)| id.0.to_string()).collect::<Vec<_>>().join(", ")
                    ),
                }
            }
        };
        let summary = mine.get(&id).cloned().or_invalid(|| "the relationship disappeared")?;
        let delegate = summary
            .delegate
            .or_invalid(|| "the chain does not name this relationship's delegate")?;
        Ok(Chosen { id, summary, delegate })
    }

    /// Accepts a pending update, rejects it or deletes the
    /// relationship `target` names: `to` is [`Status::Accepted`], [`Status::Rejected`]
    /// or [`Status::Deleted`].
    ///
    /// # Errors
    /// When the relationship is not found or the contract refuses the change (e.g.
    /// `cannot go from deleted to accepted`).
    pub async fn answer(
        &self,
        target: &Target,
        to: Status,
    ) -> Result<(Chosen, TransactionReceipt)> {
        let chosen = self.choose(target).await?;
        let verb = match to {
            Status::Accepted => "accepting",
            Status::Rejected => "rejecting",
            _ => "deleting",
        };
        let contract = self.chain.relationships_as(self.signer.clone());
        let what = format!("{verb} relationship {}", chosen.id.0);
        let d = chosen.delegate;
        let receipt = match to {
            Status::Accepted => tx::send(&contract.accept(d), &what).await?,
            Status::Rejected => tx::send(&contract.reject(d), &what).await?,
            _ => tx::send(&contract.remove(d), &what).await?,
        };
        Ok((chosen, receipt))
    }

    /// Lets `viewer` see `pointers` (all when `None`) of the relationship `target` names,
    /// in `window`.
    ///
    /// # Errors
    /// When the relationship is not accepted, has no such pointer, the window ends
    /// before it starts or before now, or the contract refuses.
    pub async fn share(
        &self,
        target: &Target,
        viewer: Address,
        pointers: Option<&[u8]>,
        window: Window,
    ) -> Result<Grant> {
        let Chosen { id, summary, delegate } = self.choose(target).await?;
        if let Some(status) = summary.status {
            ensure!(
                status.is_accepted(),
                "relationship {} is {status}: accept it before sharing it",
                id.0
            );
        }
        let count = summary.pointers.len();
        ensure!(count > 0, "relationship {} has no data pointers to share", id.0);
        let ids: Vec<u8> = match pointers {
            None | Some([]) => (0..u8::try_from(count).unwrap_or(u8::MAX)).collect(),
            Some(given) => {
                for n in given {
                    ensure!(
                        usize::from(*n) < count,
                        "relationship {} has pointers 0 to {}; there is no pointer {n}",
                        id.0,
                        count - 1
                    );
                }
                given.to_vec()
            }
        };
        let set = PointerSet::from_ids(ids.iter().copied())
            .map_err(|e| crate::Error::invalid(format!("pointer {} is out of range", e.0)))?;
        let now = self.chain.now().await?;
        let not_before = window.from.unwrap_or(0);
        let expires_at = match (window.until, window.duration) {
            (Some(until), _) => until,
            (None, Some(d)) => not_before.max(now) + d,
            (None, None) => not_before.max(now) + 7 * 86_400,
        };
        ensure!(
            expires_at > now && expires_at > not_before,
            "the grant would end ({}) before it starts or before now: choose a later --until",
            timeline::when(expires_at)
        );
        let to40 = |t: u64| U40::from(t.min((1u64 << 40) - 1));
        // The relationship's key, sealed for the viewer when it published an encryption
        // key and this session holds the account's secret: the viewer then reads the
        // provider from the chain; otherwise it asks the directory's gatekeepers.
        let sealed = match (&self.secret, self.chain.encryption_key_of(viewer).await?) {
            (Some(secret), Some(key)) => privacy::seal(key, &secret.relationship_key(id))
                .map_err(|e| crate::Error::invalid(format!("no randomness for sealing: {e}")))?,
            _ => Vec::new(),
        };
        let contract = self.chain.relationships_as(self.signer.clone());
        let what = format!("sharing relationship {} with {viewer}", id.0);
        let call = contract.grant(
            delegate,
            viewer,
            set.bits(),
            to40(not_before),
            to40(expires_at),
            sealed.into(),
        );
        let receipt = tx::send(&call, &what).await?;
        Ok(Grant { relationship: id, viewer, pointers: ids, not_before, expires_at, receipt })
    }

    /// Withdraws everything `viewer` may see of the relationship `target` names.
    ///
    /// # Errors
    /// When the viewer has no access to it, or the contract refuses.
    pub async fn revoke(
        &self,
        target: &Target,
        viewer: Address,
    ) -> Result<(RelationshipId, TransactionReceipt)> {
        let Chosen { id, summary, .. } = self.choose(target).await?;
        ensure!(
            summary.grants.contains_key(&viewer),
            "{viewer} has no access to relationship {} to revoke",
            id.0
        );
        // The contract records any revocation; the consent index applies it only from a
        // key with the share right, so check it here rather than send one that is
        // ignored.
        let (account, rights) = self.chain.acting_for(self.signer.address()).await?;
        ensure!(
            account == self.account && rights & medrec_contracts::Rights::SHARE != 0,
            "key {} may not revoke for account {}: it lacks the share right, was retired, or its powers ended",
            self.signer.address(),
            self.account
        );
        let contract = self.chain.relationships_as(self.signer.clone());
        let what = format!("revoking {viewer}'s access to relationship {}", id.0);
        let receipt = tx::send(&contract.revoke(id.0, viewer), &what).await?;
        Ok((id, receipt))
    }

    /// Opts the relationship `target` names in to research bounties (`on`) or out.
    /// Returns its id and the transaction, `None` when it already was so.
    ///
    /// # Errors
    /// When the relationship is not found or the contract refuses.
    pub async fn set_research(
        &self,
        target: &Target,
        on: bool,
    ) -> Result<(RelationshipId, Option<B256>)> {
        let Chosen { id, summary, delegate } = self.choose(target).await?;
        if summary.research_opt_in == on {
            return Ok((id, None));
        }
        let contract = self.chain.relationships_as(self.signer.clone());
        let what = format!("opting relationship {} {}", id.0, if on { "in" } else { "out" });
        let receipt = tx::send(&contract.setResearchConsent(delegate, on), &what).await?;
        Ok((id, Some(receipt.transaction_hash)))
    }
}
