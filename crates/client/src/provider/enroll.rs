//! Enrolling a patient: an offer at the gatekeeper, which the patient takes.
//!
//! 1. The patient is resolved through the Registrar by identity commitment
//!    (`keccak256(salt ‖ identity)`), or taken as an address; an institution registers
//!    an unknown identity to the address given.
//! 2. The wallet's next unused delegate (`m/44'/60'/1'/0/i'`) acts for this relationship
//!    only; indexes already used on chain or in `relationships.json` are skipped, so two
//!    relationships never share a delegate.
//! 3. Pointer 0 is run, and the provider signs an offer (EIP-712: account, delegate,
//!    pointer 0's salted query commitment and data hash) with its main key.
//! 4. The gatekeeper keeps the offer with every pointer's query; the patient takes it
//!    from `GET /offers` and creates the relationship on chain from their own key, the
//!    provider encrypted for them. Nothing of this goes on chain from the provider: its
//!    address never appears next to the patient's.
//! 5. Further pointers wait in `relationships.json` until the relationship is on chain;
//!    [`ProviderSession::publish`] adds them from the delegate, each with the bounty.

use super::{
    ProviderSession,
    bounty::Bounty,
    state::{Enrolled, Enrollments},
};
use crate::{
    chain::Chain,
    error::{Context as _, Error, OrInvalid as _, Result, bail, ensure},
    retry::{PATIENCE, PAUSE, until_caught_up},
    tx,
};
use alloy::{
    primitives::{Address, B256, U256},
    signers::local::PrivateKeySigner,
};
use alloy::{signers::SignerSync as _, sol_types::SolStruct as _};
use medrec_gatekeeper::client::GatekeeperClient;
use medrec_gatekeeper::offer::{Offer, OfferBody};
use medrec_gatekeeper::pointer::{self, PointerQuery, PointerSpec};
use medrec_primitives::{IdentityCommitment, RelationshipId};
use medrec_store::{
    RecordReader,
    fhir::{ResourceId, ResourceType},
};
use std::collections::BTreeSet;

/// Who the patient is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientRef {
    /// The patient's address (registered under `identity` when that is unknown and this
    /// provider is a certified institution).
    pub address: Option<Address>,
    /// The patient's identity text (e.g. a medical record number) and the secret salt
    /// of its commitment, resolved through the Registrar.
    pub identity: Option<(String, B256)>,
}

/// What to enroll.
#[derive(Debug, Clone)]
pub struct EnrollRequest {
    /// The patient's FHIR `Patient` id in the provider's record store.
    pub patient_id: String,
    /// Who the patient is on chain.
    pub patient: PatientRef,
    /// The pointers' queries (FHIR searches), pointer 0 first; empty means
    /// [`super::DEFAULT_POINTERS`].
    pub pointers: Vec<String>,
    /// The bounty query every pointer after the first carries.
    pub bounty: Option<Bounty>,
    /// Wei sent to the patient (on a priced chain), when they hold less than half of it,
    /// to take the offer; 0 sends nothing.
    pub patient_funding: U256,
}

/// One pointer put on chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedPointer {
    /// Its number.
    pub pointer: usize,
    /// Its query.
    pub query: String,
    /// How many resources it covers now.
    pub resources: usize,
    /// Their data hash.
    pub data_hash: B256,
    /// The transaction that put it on chain (none for pointer 0, which the patient's
    /// creation carries).
    pub tx: Option<B256>,
}

/// A finished enrollment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrollment {
    /// The relationship.
    pub relationship: RelationshipId,
    /// The patient's address.
    pub patient: Address,
    /// The patient's FHIR id.
    pub patient_id: String,
    /// The relationship's delegate.
    pub delegate: Address,
    /// Its HD index.
    pub delegate_index: u32,
    /// Pointer 0, offered.
    pub pointers: Vec<PlacedPointer>,
    /// The further pointers' queries, added on chain by `publish` once the patient has
    /// taken the offer.
    pub waiting: Vec<String>,
    /// The bounty commitment the further pointers carry.
    pub bounty: Option<B256>,
    /// The identity commitment this provider registered to the patient, when it did.
    pub registered_identity: Option<B256>,
}

impl ProviderSession {
    /// Enrolls a patient (see the module's documentation for the steps). Progress is
    /// saved in `relationships.json` after each transaction, so an interrupted
    /// enrollment is finished by [`ProviderSession::publish`].
    ///
    /// # Errors
    /// When a query does not parse, the patient's records are not in the store, the
    /// patient cannot be resolved, a transaction is refused, or the gatekeeper does not
    /// take the enrollment.
    pub async fn enroll(&self, request: &EnrollRequest) -> Result<Enrollment> {
        let texts: Vec<String> = if request.pointers.is_empty() {
            super::DEFAULT_POINTERS.iter().map(|s| (*s).to_owned()).collect()
        } else {
            request.pointers.clone()
        };
        // Each pointer's commitment gets its own random salt (kept in relationships.json
        // and told to the gatekeeper), so the chain does not say which search it runs.
        let specs: Vec<PointerSpec> = texts.iter().map(PointerSpec::salted).collect();
        let queries = specs.iter().map(parse_spec).collect::<Result<Vec<_>>>()?;
        let patient_id: ResourceId = request.patient_id.parse().map_err(|_| {
            Error::invalid(format!("'{}' is not a FHIR resource id", request.patient_id))
        })?;
        if queries.len() > 1 && request.bounty.is_none() {
            bail!(
                "every pointer after the first carries a bounty query on chain: pass --bounty TEXT or --offer NAME (or give a single --pointer)"
            );
        }

        // The patient's records must be there before a pointer can hash them.
        let store = self.store().await?;
        let found = store
            .read(ResourceType::Patient, &patient_id)
            .await
            .context("cannot read the provider's record store")?;
        ensure!(
            found.is_some(),
            "there is no Patient/{} in the provider's record store: import the patient's records first (`medrec provider import`)",
            request.patient_id
        );

        // The bounty's text goes to the gatekeeper first, so that a gatekeeper that cannot
        // take it stops the enrollment before it starts.
        let bounty_commitment = match &request.bounty {
            Some(b) if queries.len() > 1 => Some(b.publish(&self.client()).await?),
            _ => None,
        };
        let chain = self.connect().await?;
        let (patient, registered_identity) = self.resolve_patient(&chain, &request.patient).await?;

        // The next delegate index not used on chain nor in relationships.json.
        let mut state = Enrollments::load(&self.dir)?;
        let mut used: BTreeSet<Address> = chain.delegates().await?;
        used.extend(state.relationships.values().map(|e| e.delegate));
        let mut index = state.next_index();
        let mut delegate = self.wallet.delegate_address(index).context("no delegate address")?;
        while used.contains(&delegate) {
            index = index.checked_add(1).or_invalid(|| "no delegate index left")?;
            delegate = self.wallet.delegate_address(index).context("no delegate address")?;
        }
        ensure!(delegate != patient, "the delegate address cannot be the patient's");
        let relationship = RelationshipId::derive(patient, delegate);

        // Pointer 0 comes with the offer, signed by the provider's main key.
        let offered = offer_relationship(
            &chain,
            self.wallet.account(),
            store.as_ref(),
            patient,
            delegate,
            &patient_id,
            &specs[0],
        )
        .await?;
        let entry = Enrolled {
            delegate_index: index,
            delegate,
            patient,
            patient_id: request.patient_id.clone(),
            pointers: specs.clone(),
            gatekeeper_enrolled: false,
            offer: Some(offered.offer.clone()),
        };
        state.relationships.insert(relationship.0, entry.clone());
        state.save(&self.dir)?;

        // On a priced chain the patient needs gas to take the offer. Sending it is a
        // public transfer from the provider to the patient, a trail the free-gas chain
        // MedRec runs on does not have (`tx::fund` sends nothing there).
        let by_provider = chain.sender(self.wallet.account().clone());
        tx::fund(&by_provider, patient, request.patient_funding, "the patient").await?;

        // The gatekeeper keeps the offer and every pointer's query.
        self.client()
            .enroll(relationship, &request.patient_id, &specs, Some(&offered.offer))
            .await
            .map_err(|e| {
                Error::gatekeeper(
                    format!("the gatekeeper did not take the offer of {}", relationship.0),
                    e,
                )
            })?;
        let mut entry = entry;
        entry.gatekeeper_enrolled = true;
        state.relationships.insert(relationship.0, entry);
        state.save(&self.dir)?;

        Ok(Enrollment {
            relationship,
            patient,
            patient_id: request.patient_id.clone(),
            delegate,
            delegate_index: index,
            pointers: vec![offered.pointer],
            waiting: specs.iter().skip(1).map(|s| s.text().to_owned()).collect(),
            bounty: bounty_commitment,
            registered_identity,
        })
    }

    /// Tells the provider's gatekeeper the pointer queries of `relationship` with their
    /// salts, waiting while it catches up with the chain.
    ///
    /// # Errors
    /// When the gatekeeper does not take them.
    pub async fn tell_gatekeeper(
        &self,
        relationship: RelationshipId,
        patient_id: &str,
        pointers: &[PointerSpec],
    ) -> Result<()> {
        tell_gatekeeper(&self.client(), relationship, patient_id, pointers).await
    }

    /// The patient's address: resolved from the identity commitment, registered (by an
    /// institution) when unknown and an address is given, or the address given. Also
    /// returns the commitment when this provider registered it.
    async fn resolve_patient(
        &self,
        chain: &Chain,
        who: &PatientRef,
    ) -> Result<(Address, Option<B256>)> {
        let Some((identity, salt)) = &who.identity else {
            let address = who
                .address
                .or_invalid(|| "name the patient with --patient or --identity and --salt")?;
            return Ok((address, None));
        };
        let commitment = IdentityCommitment::new(salt, identity).0;
        let registrar = chain.registrar();
        let found = registrar.resolve(commitment).call().await.with_context(|| {
            format!(
                "cannot read the Registrar at {} on {}",
                chain.spec().registrar,
                chain.rpc_url()
            )
        })?;
        if found.account != Address::ZERO {
            // Role 1 is Patient in the Registrar.
            ensure!(
                found.role == 1,
                "the identity {commitment} belongs to a provider, not a patient"
            );
            if let Some(given) = who.address {
                ensure!(
                    given == found.account,
                    "the identity {commitment} is registered to {}, not to {given}",
                    found.account
                );
            }
            return Ok((found.account, None));
        }
        let Some(patient) = who.address else {
            bail!(
                "no patient is registered under the identity commitment {commitment}: check the identity and the salt, or give the patient's address with --patient to register it"
            );
        };
        let me = self.wallet.address();
        let is_institution = registrar
            .isInstitution(me)
            .call()
            .await
            .context("cannot ask the Registrar whether this provider is an institution")?;
        ensure!(
            is_institution,
            "no patient is registered under the identity commitment {commitment}, and only a certified institution may register one ({me} is not)"
        );
        tx::send(
            &chain.registrar_as(self.wallet.account().clone()).registerPatient(commitment, patient),
            "registering the patient",
        )
        .await?;
        Ok((patient, Some(commitment)))
    }
}

/// Parses a pointer's text, naming it in the error.
pub(super) fn parse_spec(spec: &PointerSpec) -> Result<PointerQuery> {
    spec.parse().with_context(|| format!("the pointer query '{}'", spec.text()))
}

/// A relationship offered to a patient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offered {
    /// Its id, `keccak256(patient, delegate)`.
    pub relationship: RelationshipId,
    /// Pointer 0, which comes with it.
    pub pointer: PlacedPointer,
    /// The signed offer, for the gatekeeper.
    pub offer: OfferBody,
}

/// The provider (its main key `provider`) offers `patient` a relationship with
/// `delegate`, carrying pointer 0: `query` over the records of `patient_id` in `store`,
/// by its (salted) query commitment and data hash, signed as an EIP-712 `Offer`.
///
/// # Errors
/// When the query does not parse, the store cannot be read or signing fails.
pub async fn offer_relationship(
    chain: &Chain,
    provider: &PrivateKeySigner,
    store: &dyn RecordReader,
    patient: Address,
    delegate: Address,
    patient_id: &ResourceId,
    query: &PointerSpec,
) -> Result<Offered> {
    let parsed = parse_spec(query)?;
    let data = pointer::run(store, &parsed, patient_id)
        .await
        .context("cannot compute pointer 0's data")?;
    let signed = Offer {
        account: patient,
        delegate,
        queryCommitment: parsed.commitment(),
        dataHash: data.data_hash,
    };
    let domain = medrec_gatekeeper::offer::domain(chain.chain_id(), chain.spec().relationships);
    let signature = provider
        .sign_hash_sync(&signed.eip712_signing_hash(&domain))
        .map_err(|e| Error::invalid(format!("cannot sign the offer: {e}")))?;
    Ok(Offered {
        relationship: RelationshipId::derive(patient, delegate),
        pointer: PlacedPointer {
            pointer: 0,
            query: query.text().to_owned(),
            resources: data.resources.len(),
            data_hash: data.data_hash,
            tx: None,
        },
        offer: OfferBody {
            provider: provider.address(),
            account: patient,
            delegate,
            data_hash: data.data_hash,
            signature: signature.as_bytes().to_vec().into(),
        },
    })
}

/// Tells a provider's gatekeeper (`client`, signing as the provider) the pointer
/// queries of `relationship` for the patient `patient_id`, waiting while it catches up
/// with the chain.
///
/// # Errors
/// When the gatekeeper does not take them.
pub async fn tell_gatekeeper(
    client: &GatekeeperClient,
    relationship: RelationshipId,
    patient_id: &str,
    pointers: &[PointerSpec],
) -> Result<()> {
    until_caught_up(PAUSE, PATIENCE, || client.enroll(relationship, patient_id, pointers, None))
        .await
        .map_err(|e| {
            Error::gatekeeper(
                format!("the gatekeeper did not take the enrollment of {}", relationship.0),
                e,
            )
        })
}
