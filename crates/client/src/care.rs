//! Care beyond one viewer: groups the certified institutions define (a patient grants
//! a group like one viewer and every member reads), break-glass (a clinician of an
//! emergency group opens a patient's emergency set without a prior grant, stating a
//! reason, recorded on chain and expiring by itself), and the patient's choice to allow
//! it.
//!
//! - [`InstitutionSession`]: create a group, add and remove its members.
//! - [`PatientSession`]'s care steps: allow or refuse break-glass, see the openings of
//!   one's emergency set, share a relationship with a group.
//! - [`ClinicianSession`]: the emergency groups one belongs to, break the glass, and read
//!   the patient's emergency set from every provider that holds their records.

use crate::{
    chain::Chain,
    error::{Context as _, Error, OrInvalid as _, Result, bail, ensure},
    patient::{Grant, PatientSession, Target, Window},
    retry::{PAUSE, until_caught_up},
    tx,
};
use alloy::{
    primitives::{Address, B256, U256},
    rpc::types::TransactionReceipt,
    signers::local::PrivateKeySigner,
};
pub use medrec_chain::care::{EmergencyReason, GroupInfo, Opening, OpeningState, group_address};
use medrec_contracts::Relationships;
use medrec_gatekeeper::{EMERGENCY_SET, client::ClientError};
use serde_json::Value;

/// Every group the certified institutions have created, oldest first.
///
/// # Errors
/// When the chain cannot be read.
pub async fn groups(chain: &Chain) -> Result<Vec<GroupInfo>> {
    medrec_chain::care::read_groups(chain.reader(), chain.spec().registrar, chain.spec().from_block)
        .await
        .context("cannot read the groups from the Registrar")
}

/// Group `id`, as created on chain.
///
/// # Errors
/// When there is no such group, or the chain cannot be read.
pub async fn group(chain: &Chain, id: u64) -> Result<GroupInfo> {
    groups(chain).await?.into_iter().find(|g| g.id == id).ok_or_else(|| {
        Error::invalid(format!("there is no group {id}: `medrec group list` shows the groups"))
    })
}

/// The groups `member` belongs to now (emergency or not), oldest first: what a
/// clinician checks without unlocking a key.
///
/// # Errors
/// When the chain cannot be read.
pub async fn member_groups(chain: &Chain, member: Address) -> Result<Vec<GroupInfo>> {
    let registrar = chain.registrar();
    let mut out = Vec::new();
    for g in groups(chain).await? {
        let belongs = registrar
            .isMember(U256::from(g.id), member)
            .call()
            .await
            .context("cannot read a group's members")?;
        if belongs {
            out.push(g);
        }
    }
    Ok(out)
}

/// A certified institution managing groups.
#[derive(Debug, Clone)]
pub struct InstitutionSession {
    chain: Chain,
    signer: PrivateKeySigner,
}

impl InstitutionSession {
    /// The institution that signs with `signer` on `chain`.
    pub const fn new(chain: Chain, signer: PrivateKeySigner) -> Self {
        Self { chain, signer }
    }

    /// Lets `custodian` (a parent's key for this account) act for the minor `account`
    /// with `rights` until `handover` (unix seconds), after which only the patient's own
    /// key acts.
    ///
    /// # Errors
    /// When the caller is not a certified institution, the handover date has passed, the
    /// rights include the owner's, or the key acts for another account.
    pub async fn add_minor_custodian(
        &self,
        account: Address,
        custodian: &PrivateKeySigner,
        rights: u8,
        handover: u64,
    ) -> Result<TransactionReceipt> {
        let key_sig =
            crate::patient::keys::accept_key(&self.chain, custodian, account, rights, handover)?;
        let contract = self.chain.relationships_as(self.signer.clone());
        let call = contract.addCustodian(
            account,
            custodian.address(),
            rights,
            alloy::primitives::aliases::U40::from(handover),
            key_sig,
        );
        tx::send(&call, &format!("letting {} act for the minor {account}", custodian.address()))
            .await
    }

    /// Creates a group managed by this institution: its id and the transaction.
    ///
    /// # Errors
    /// When the name is empty or longer than 64 bytes, or the caller is not a certified
    /// institution.
    pub async fn create_group(&self, name: &str, emergency: bool) -> Result<(u64, B256)> {
        let registrar = self.chain.registrar_as(self.signer.clone());
        let what = format!("creating the group '{name}'");
        let receipt = tx::send(&registrar.createGroup(name.to_owned(), emergency), &what).await?;
        let id = receipt
            .inner
            .logs()
            .iter()
            .find_map(|l| l.log_decode::<medrec_contracts::Registrar::GroupCreated>().ok())
            .map(|l| l.inner.data.id)
            .or_invalid(|| "the transaction created no group")?;
        let id = u64::try_from(id).map_err(|_| Error::invalid("a group id beyond 2^64"))?;
        Ok((id, receipt.transaction_hash))
    }

    /// Adds `member` to group `id`.
    ///
    /// # Errors
    /// When this institution does not manage the group or `member` already belongs.
    pub async fn add_member(&self, id: u64, member: Address) -> Result<TransactionReceipt> {
        let registrar = self.chain.registrar_as(self.signer.clone());
        let what = format!("adding {member} to group {id}");
        tx::send(&registrar.addMember(U256::from(id), member), &what).await
    }

    /// Removes `member` from group `id`: what the group was granted stops reaching it,
    /// and its break-glass openings as a member end.
    ///
    /// # Errors
    /// When this institution does not manage the group or `member` does not belong.
    pub async fn remove_member(&self, id: u64, member: Address) -> Result<TransactionReceipt> {
        let registrar = self.chain.registrar_as(self.signer.clone());
        let what = format!("removing {member} from group {id}");
        tx::send(&registrar.removeMember(U256::from(id), member), &what).await
    }
}

impl PatientSession {
    /// Whether break-glass is allowed for this patient now (it is until refused).
    ///
    /// # Errors
    /// When the chain cannot be read.
    pub async fn break_glass_allowed(&self) -> Result<bool> {
        let refused = self
            .chain()
            .relationships()
            .call_builder(&Relationships::breakGlassRefusedCall(self.address()))
            .call()
            .await
            .context("cannot read the break-glass setting")?;
        Ok(!refused)
    }

    /// Allows or refuses break-glass access to this patient's emergency set; refusing
    /// also ends the openings in force. The transaction, or `None` when it already was so.
    ///
    /// # Errors
    /// When the chain cannot be read or the transaction fails.
    pub async fn set_break_glass(&self, allowed: bool) -> Result<Option<B256>> {
        if self.break_glass_allowed().await? == allowed {
            return Ok(None);
        }
        let contract = self.chain().relationships_as(self.signer().clone());
        let what = if allowed { "allowing break-glass" } else { "refusing break-glass" };
        let receipt = tx::send(&contract.setBreakGlass(allowed), what).await?;
        Ok(Some(receipt.transaction_hash))
    }

    /// Every break-glass opening of this patient's emergency set from block `since` on,
    /// in chain order.
    ///
    /// # Errors
    /// When the chain cannot be read.
    pub async fn openings(&self, since: u64) -> Result<Vec<Opening>> {
        let spec = self.chain().spec();
        medrec_chain::care::read_openings(
            self.chain().reader(),
            spec.relationships,
            spec.from_block,
            self.address(),
            since,
        )
        .await
        .context("cannot read the break-glass openings")
    }

    /// Shares the relationship `target` names with every member of group `id`, as
    /// [`PatientSession::share`] does with one viewer.
    ///
    /// # Errors
    /// When there is no such group, or sharing fails.
    pub async fn share_with_group(
        &self,
        target: &Target,
        id: u64,
        pointers: Option<&[u8]>,
        window: Window,
    ) -> Result<Grant> {
        let group = group(self.chain(), id).await?;
        self.share(target, group.address, pointers, window).await
    }
}

/// A break-glass opening just recorded on chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenGlass {
    /// The patient.
    pub patient: Address,
    /// The emergency group acted for.
    pub group: u64,
    /// Why.
    pub reason: EmergencyReason,
    /// End of the opening (unix seconds).
    pub expires_at: u64,
    /// The transaction.
    pub tx: B256,
}

/// What one provider holds of a patient's emergency set.
#[derive(Debug, Clone, PartialEq)]
pub struct EmergencySet {
    /// The provider.
    pub provider: Address,
    /// Its gatekeeper.
    pub endpoint: String,
    /// Allergies, medication requests and conditions (the emergency set), as served.
    pub resources: Vec<Value>,
}

/// How long a gatekeeper may take to see a break-glass just recorded.
const OPENING_PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);

/// An emergency clinician, signing with its key.
#[derive(Debug, Clone)]
pub struct ClinicianSession {
    chain: Chain,
    signer: PrivateKeySigner,
}

impl ClinicianSession {
    /// The clinician that signs with `signer` on `chain`.
    pub const fn new(chain: Chain, signer: PrivateKeySigner) -> Self {
        Self { chain, signer }
    }

    /// The clinician's address.
    pub fn address(&self) -> Address {
        self.signer.address()
    }

    /// The emergency groups the clinician belongs to now.
    ///
    /// # Errors
    /// When the chain cannot be read.
    pub async fn emergency_groups(&self) -> Result<Vec<GroupInfo>> {
        let registrar = self.chain.registrar();
        let mut out = Vec::new();
        for g in groups(&self.chain).await?.into_iter().filter(|g| g.emergency) {
            let member = registrar
                .isEmergencyMember(U256::from(g.id), self.address())
                .call()
                .await
                .context("cannot read a group's members")?;
            if member {
                out.push(g);
            }
        }
        Ok(out)
    }

    /// Every break-glass opening this clinician made, oldest first (to show the last
    /// one again after the app restarts).
    ///
    /// # Errors
    /// When the chain cannot be read.
    pub async fn openings(&self) -> Result<Vec<Opening>> {
        let spec = self.chain.spec();
        medrec_chain::care::read_openings_by(
            self.chain.reader(),
            spec.relationships,
            spec.from_block,
            self.address(),
        )
        .await
        .context("cannot read your break-glass openings")
    }

    /// Breaks the glass for `patient`: opens their emergency set to this clinician for
    /// four hours, as a member of emergency group `group` (the first the clinician
    /// belongs to when `None`), for `reason`. The patient's app is notified at once.
    ///
    /// # Errors
    /// When the clinician is in no emergency group, the patient refused break-glass, or
    /// the transaction fails.
    pub async fn break_glass(
        &self,
        patient: Address,
        group: Option<u64>,
        reason: EmergencyReason,
    ) -> Result<BrokenGlass> {
        let group = match group {
            Some(g) => g,
            None => match self.emergency_groups().await?.first() {
                Some(g) => g.id,
                None => bail!(
                    "{} is a member of no emergency group: only emergency clinicians may break the glass",
                    self.address()
                ),
            },
        };
        let contract = self.chain.relationships_as(self.signer.clone());
        let what = format!("breaking the glass for patient {patient}");
        let call = contract.breakGlass(patient, U256::from(group), reason.code());
        let receipt = tx::send(&call, &what).await?;
        let opened = receipt
            .inner
            .logs()
            .iter()
            .find_map(|l| l.log_decode::<Relationships::BreakGlass>().ok())
            .or_invalid(|| "the transaction recorded no break-glass")?;
        Ok(BrokenGlass {
            patient,
            group,
            reason,
            expires_at: opened.inner.data.expiresAt.to::<u64>(),
            tx: receipt.transaction_hash,
        })
    }

    /// The patient's emergency set from every provider holding a relationship of
    /// theirs that is not closed, while this clinician's opening lasts. These records
    /// are not under a pointer the patient accepted, so there is no hash on chain to
    /// check them against: they are what each gatekeeper serves.
    ///
    /// The chain does not say which providers hold the patient's relationships (each
    /// provider is encrypted for the patient), so every gatekeeper of the Registrar's
    /// directory is asked; those holding none refuse like one without an opening.
    ///
    /// # Errors
    /// When the chain cannot be read, no gatekeeper serves the set (no opening in
    /// force, or no relationship of the patient's anywhere), or a gatekeeper fails.
    pub async fn emergency_records(&self, patient: Address) -> Result<Vec<EmergencySet>> {
        let directory = self.chain.directory().await?;
        ensure!(!directory.is_empty(), "the Registrar's directory lists no provider to ask");
        // Which gatekeepers serve the set: asked in rounds while none does yet (one a few
        // blocks behind has not seen a break-glass just sent), and for a short grace
        // after the first does, so that a lagging holder is not left out.
        let first_type = EMERGENCY_SET[0];
        let started = std::time::Instant::now();
        let mut first_served: Option<std::time::Instant> = None;
        let mut serving: Vec<(Address, String)> = Vec::new();
        loop {
            for (provider, endpoint) in &directory {
                if serving.iter().any(|(p, _)| p == provider) {
                    continue;
                }
                let client =
                    self.chain.gatekeeper(endpoint.clone(), *provider, self.signer.clone());
                match client.search(first_type.as_str(), "").await {
                    Ok(_) => {
                        serving.push((*provider, endpoint.clone()));
                        first_served.get_or_insert_with(std::time::Instant::now);
                    }
                    Err(ClientError::Refused { status: 403 | 409 | 503, .. }) => {}
                    Err(e) => {
                        return Err(Error::gatekeeper(
                            format!("reading the emergency set at {endpoint} failed"),
                            e,
                        ));
                    }
                }
            }
            let grace_over = first_served.is_some_and(|t| t.elapsed() >= 4 * PAUSE);
            if serving.len() == directory.len()
                || grace_over
                || started.elapsed() >= OPENING_PATIENCE
            {
                break;
            }
            tokio::time::sleep(PAUSE).await;
        }
        ensure!(
            !serving.is_empty(),
            "no gatekeeper serves you the emergency set of patient {patient}: there is no break-glass opening for you in force (it lasts four hours, ends if you leave your emergency group, and the patient may refuse break-glass), or no provider holds the patient's records"
        );
        serving.sort();
        let mut out = Vec::new();
        for (provider, endpoint) in serving {
            let client = self.chain.gatekeeper(endpoint.clone(), provider, self.signer.clone());
            let mut resources = Vec::new();
            for ty in EMERGENCY_SET {
                // A gatekeeper a few blocks behind has not seen a break-glass just sent:
                // it is asked again for a few seconds before its refusal counts.
                let search = || client.search(ty.as_str(), "");
                match until_caught_up(PAUSE, OPENING_PATIENCE, search).await {
                    Ok(found) => resources.extend(found),
                    Err(ClientError::Refused { status: 403, .. }) => bail!(
                        "the gatekeeper at {endpoint} refused: there is no break-glass opening for you in force (it lasts four hours, ends if you leave your emergency group, and the patient may refuse break-glass)"
                    ),
                    Err(e) => {
                        return Err(Error::gatekeeper(
                            format!("reading the emergency set at {endpoint} failed"),
                            e,
                        ));
                    }
                }
            }
            out.push(EmergencySet { provider, endpoint, resources });
        }
        Ok(out)
    }
}
