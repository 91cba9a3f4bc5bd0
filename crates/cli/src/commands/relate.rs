//! A relationship the way v2 makes one, for the benches: the provider signs an offer
//! (pointer 0) and the patient's key creates the relationship from it on chain, the
//! provider's address encrypted for the patient. The demo and the CLI take offers from
//! the gatekeeper instead (`PatientSession::offers` / `take`); the benches skip that
//! round trip.

use alloy::{primitives::Address, signers::local::PrivateKeySigner};
use medrec_client::{
    Chain,
    privacy::{RecordsSecret, encrypt_identity},
    provider::enroll::{Offered, offer_relationship},
    tx,
};
use medrec_gatekeeper::pointer::PointerSpec;
use medrec_store::{RecordStore, fhir::ResourceId};

/// `provider` offers `patient` a relationship with `delegate` carrying `query` over the
/// records of `patient_id` in `store`, and the patient creates it at once.
pub(crate) async fn offered_and_taken(
    chain: &Chain,
    provider: &PrivateKeySigner,
    patient: &PrivateKeySigner,
    store: &dyn RecordStore,
    delegate: Address,
    patient_id: &ResourceId,
    query: &PointerSpec,
) -> anyhow::Result<Offered> {
    let offered =
        offer_relationship(chain, provider, store, patient.address(), delegate, patient_id, query)
            .await?;
    let secret = RecordsSecret::of(patient);
    let identity =
        encrypt_identity(&secret.relationship_key(offered.relationship), provider.address());
    let contract = chain.relationships_as(patient.clone());
    let create = contract.create(
        delegate,
        query.parse()?.commitment(),
        offered.pointer.data_hash,
        identity.into(),
    );
    tx::send(&create, "the patient's creation of a relationship").await?;
    Ok(offered)
}
