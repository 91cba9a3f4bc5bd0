//! Offers (issue 13): the provider keeps a signed offer at its gatekeeper; the patient's
//! key asks for the offers to its account and creates the relationship on chain; the
//! chain never names the provider. And the keys of an account at the gatekeeper: a
//! custodian with the see right reads the patient's records, a rotated-away key reads
//! nothing.

use crate::fixture::{Fixture, LABORATORY, obs};
use alloy::{
    primitives::{Address, B256, Bytes, aliases::U40},
    signers::{SignerSync as _, local::PrivateKeySigner},
    sol_types::SolStruct as _,
};
use medrec_contracts::{Relationships, Rights, keys};
use medrec_gatekeeper::offer::{self, Offer, OfferBody, OfferView};
use medrec_gatekeeper::pointer::{PointerQuery, PointerSpec, run};
use medrec_primitives::RelationshipId;
use medrec_testkit::medrec::{PATIENT, PROVIDER, STRANGER};
use serde_json::json;

const CHAIN_ID: u64 = 31337;

/// A second delegate of the provider, for the offered relationship.
fn delegate() -> Address {
    Address::repeat_byte(0x4d)
}

async fn fixture() -> Fixture {
    Fixture::new(vec![
        obs("a1", "p1", "laboratory", "2026-01-01"),
        obs("b1", "p2", "laboratory", "2026-01-02"),
    ])
    .await
}

/// The provider's signed offer to dev account `patient` of pointer 0 = the laboratory
/// results of FHIR patient `p2`.
async fn signed_offer(f: &Fixture, patient: usize) -> (OfferBody, PointerSpec, B256) {
    let spec = PointerSpec::salted(LABORATORY);
    let query: PointerQuery = spec.parse().unwrap();
    // The same records as the gatekeeper's store, for pointer 0's hash.
    let store = medrec_store::sqlite::SqliteStore::open_in_memory().unwrap();
    medrec_store::RecordWriter::update_all(
        &store,
        vec![obs("b1", "p2", "laboratory", "2026-01-02")],
    )
    .await
    .unwrap();
    let data = run(&store, &query, &"p2".parse().unwrap()).await.unwrap();
    let account = f.m.address(patient);
    let signed = Offer {
        account,
        delegate: delegate(),
        queryCommitment: query.commitment(),
        dataHash: data.data_hash,
    };
    let hash = signed.eip712_signing_hash(&offer::domain(CHAIN_ID, f.m.at.relationships));
    let signature = f.signer(PROVIDER).sign_hash_sync(&hash).unwrap();
    let body = OfferBody {
        provider: f.m.address(PROVIDER),
        account,
        delegate: delegate(),
        data_hash: data.data_hash,
        signature: signature.as_bytes().to_vec().into(),
    };
    (body, spec, query.commitment())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patient_takes_an_offer_the_chain_never_names_the_provider() {
    let mut f = fixture().await;
    let (body, spec, commitment) = signed_offer(&f, STRANGER).await;
    let id = body.relationship();
    let path = format!("/enrollments/{}", id.0);

    // Before anything: the would-be patient is nobody to this gatekeeper.
    assert_eq!(f.get("/offers", STRANGER).await.status, 403);
    // An enrollment of a relationship the chain does not show needs the offer.
    let bare = json!({"patient": "p2", "pointers": [spec]});
    assert_eq!(f.send("PUT", &path, &bare, PROVIDER).await.status, 409);
    // An offer whose account and delegate do not make the id is refused.
    let wrong = json!({"patient": "p2", "pointers": [spec], "offer": body});
    let other = format!("/enrollments/{}", B256::repeat_byte(9));
    assert_eq!(f.send("PUT", &other, &wrong, PROVIDER).await.status, 400);
    // Only the provider enrolls.
    assert_eq!(f.send("PUT", &path, &wrong, STRANGER).await.status, 403);
    assert_eq!(f.send("PUT", &path, &wrong, PROVIDER).await.status, 204);

    // The patient's key sees its offer, signed by the provider; nobody else does.
    let answer = f.get("/offers", STRANGER).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let offers: Vec<OfferView> = serde_json::from_value(answer.body).unwrap();
    assert_eq!(offers.len(), 1);
    assert_eq!((offers[0].relationship, offers[0].query_commitment), (id, commitment));
    offers[0].verify(&offer::domain(CHAIN_ID, f.m.at.relationships)).unwrap();
    let theirs = f.get("/offers", PATIENT).await;
    assert_eq!(theirs.body, json!([]), "another patient sees none of it");

    // The patient creates it: the offer is no longer waiting, the records are served.
    let rels = Relationships::new(f.m.at.relationships, f.m.wallet(STRANGER));
    let identity = Bytes::from(vec![0x5a; 36]);
    let create = rels.create(delegate(), commitment, offers[0].data_hash, identity);
    assert!(create.send().await.unwrap().get_receipt().await.unwrap().status());
    f.catch_up().await;
    assert_eq!(f.get("/offers", STRANGER).await.body, json!([]));
    assert_eq!(f.ids("/fhir/Observation", STRANGER).await, ["b1"]);
    // The chain's creation names the account and the delegate, never the provider.
    let rel = *f.index.read().unwrap().relationship(&id).unwrap();
    assert_eq!((rel.patient, rel.delegate), (f.m.address(STRANGER), delegate()));
    assert_eq!(id, RelationshipId::derive(f.m.address(STRANGER), delegate()));
}

/// `key`'s acceptance of acting for `account` with `rights` until `until`.
fn acceptance(f: &Fixture, account: Address, key: &PrivateKeySigner, rights: u8) -> Bytes {
    let domain = keys::domain(CHAIN_ID, f.m.at.relationships);
    let digest = keys::key_acceptance_hash(
        &domain,
        &keys::KeyAcceptance { account, key: key.address(), rights, until: U40::ZERO },
    );
    key.sign_hash_sync(&digest).unwrap().as_bytes().to_vec().into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custodian_reads_as_the_patient_and_a_rotated_key_reads_nothing() {
    let mut f = fixture().await;
    let rels = Relationships::new(f.m.at.relationships, f.m.wallet(PATIENT));
    let patient = f.m.address(PATIENT);
    // A custodian who may see, and one who may only share.
    let (spouse, helper) = (PrivateKeySigner::random(), PrivateKeySigner::random());
    for (key, rights) in [(&spouse, Rights::SEE), (&helper, Rights::SHARE)] {
        let call =
            rels.addKey(key.address(), rights, U40::ZERO, acceptance(&f, patient, key, rights));
        assert!(call.send().await.unwrap().get_receipt().await.unwrap().status());
    }
    f.catch_up().await;
    let as_key = |k: &PrivateKeySigner| crate::client::As::Key(k.clone());
    let seen = f.client.get("/fhir/Observation", &as_key(&spouse)).await;
    assert_eq!((seen.status, seen.ids()), (200, vec!["a1".to_owned()]), "{}", seen.body);
    let helper_sees = f.client.get("/fhir/Observation", &as_key(&helper)).await;
    assert_eq!(helper_sees.status, 403, "share without see reads nothing: {}", helper_sees.body);

    // The patient moves to a new key: the old one reads nothing from the next block.
    let new = PrivateKeySigner::random();
    let call = rels.rotate(new.address(), acceptance(&f, patient, &new, Rights::ALL));
    assert!(call.send().await.unwrap().get_receipt().await.unwrap().status());
    f.catch_up().await;
    let new_sees = f.client.get("/fhir/Observation", &as_key(&new)).await;
    assert_eq!(new_sees.ids(), ["a1"]);
    let old = f.get("/fhir/Observation", PATIENT).await;
    assert_eq!(old.status, 403, "the retired key reads nothing: {}", old.body);
    // The custodian is untouched by the rotation.
    assert_eq!(f.client.get("/fhir/Observation", &as_key(&spouse)).await.ids(), ["a1"]);
}
