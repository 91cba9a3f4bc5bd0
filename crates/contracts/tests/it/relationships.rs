//! `Relationships`: every function, access rule, revert path and event.
//!
//! The contract authenticates each party by recomputing the relationship id from the
//! sender (`relId = keccak256(abi.encode(patient, delegate))`), so "someone else"
//! always meets a different, usually unknown, id: the refusals below name that id.

use crate::harness::*;
use alloy::{
    primitives::{Address, B256, U256, aliases::U24, keccak256},
    sol_types::{SolCall, SolEvent},
};
use medrec_contracts::{ContractError, Registrar, Relationships as R};
use medrec_devchain::evm::Outcome;
use medrec_primitives::{RelationshipId, Status};

const NONE: u8 = 0;
const NEW: u8 = Status::New.as_u8();
const UPDATE_PENDING: u8 = Status::UpdatePending.as_u8();
const ACCEPTED: u8 = Status::Accepted.as_u8();
const REJECTED: u8 = Status::Rejected.as_u8();
const DELETED: u8 = Status::Deleted.as_u8();

/// Seconds between blocks: a transaction or a view runs this much after the last block.
const BLOCK: u64 = 12;
/// A grant window end far in the future (ten years).
const DECADE: u64 = 10 * 365 * 24 * 3600;

// ----- helpers ------------------------------------------------------------------------

fn query(n: u64) -> B256 {
    h(&format!("query {n}"))
}

fn data(n: u64) -> B256 {
    h(&format!("data {n}"))
}

fn bounty(n: u64) -> B256 {
    h(&format!("bounty {n}"))
}

/// A uint24 value (the width of the stored update count).
fn u24(v: u64) -> U24 {
    U24::from(v)
}

fn id(c: &Cast) -> RelationshipId {
    RelationshipId(c.rel_id())
}

fn create_call(c: &Cast) -> R::createCall {
    R::createCall {
        patient: c.patient,
        delegate: c.delegate,
        queryCommitment: query(0),
        dataHash: data(0),
    }
}

fn add_call(c: &Cast, n: u64) -> R::addPointerCall {
    R::addPointerCall {
        patient: c.patient,
        queryCommitment: query(n),
        dataHash: data(n),
        bounty: bounty(n),
    }
}

fn update_call(c: &Cast, pointer: u64, n: u64) -> R::updatePointerCall {
    R::updatePointerCall {
        patient: c.patient,
        pointerId: U256::from(pointer),
        dataHash: data(n),
        bounty: bounty(n),
    }
}

fn grant_call(
    c: &Cast,
    viewer: Address,
    pointers: u128,
    not_before: u64,
    expires_at: u64,
) -> R::grantCall {
    R::grantCall {
        delegate: c.delegate,
        viewer,
        pointers,
        notBefore: u40(not_before),
        expiresAt: u40(expires_at),
    }
}

/// The delegate adds pointer content `n` (query, data and bounty labelled `n`).
fn add(c: &mut Cast, n: u64) -> Receipt {
    let (rel, delegate, call) = (c.w.rel(), c.delegate, add_call(c, n));
    c.w.send(delegate, rel, call)
}

/// The delegate records data `n` (with bounty `n`) behind `pointer`.
fn update(c: &mut Cast, pointer: u64, n: u64) -> Receipt {
    let (rel, delegate, call) = (c.w.rel(), c.delegate, update_call(c, pointer, n));
    c.w.send(delegate, rel, call)
}

/// The patient grants `viewer` with an explicit window.
fn grant_window(
    c: &mut Cast,
    viewer: Address,
    pointers: u128,
    not_before: u64,
    expires_at: u64,
) -> Receipt {
    let (rel, patient) = (c.w.rel(), c.patient);
    let call = grant_call(c, viewer, pointers, not_before, expires_at);
    c.w.send(patient, rel, call)
}

fn revoke(c: &mut Cast, from: Address, viewer: Address) -> Receipt {
    let (rel, delegate) = (c.w.rel(), c.delegate);
    c.w.send(from, rel, R::revokeCall { delegate, viewer })
}

fn revoke_fails(c: &mut Cast, from: Address, viewer: Address) -> ContractError {
    let (rel, delegate) = (c.w.rel(), c.delegate);
    c.w.fail(from, rel, R::revokeCall { delegate, viewer })
}

fn consent(c: &mut Cast, from: Address, opt_in: bool) -> Receipt {
    let (rel, delegate) = (c.w.rel(), c.delegate);
    c.w.send(from, rel, R::setResearchConsentCall { delegate, optIn: opt_in })
}

fn grant_of(c: &mut Cast, rel_id: B256, viewer: Address) -> R::Grant {
    let rel = c.w.rel();
    c.w.view(rel, R::grantOfCall { relId: rel_id, viewer })
}

fn can_view_at(c: &mut Cast, rel_id: B256, viewer: Address, pointer: U256) -> bool {
    let rel = c.w.rel();
    c.w.view(rel, R::canViewCall { relId: rel_id, viewer, pointerId: pointer })
}

fn status(c: &mut Cast) -> u8 {
    c.stored().status
}

/// The stored status, pointer count and accepted count.
fn counts(c: &mut Cast) -> (u8, u8, u8) {
    let s = c.stored();
    (s.status, s.pointerCount, s.acceptedCount)
}

fn no_grant() -> R::Grant {
    R::Grant { pointers: 0, notBefore: u40(0), expiresAt: u40(0) }
}

fn register_provider(c: &mut Cast, account: Address, label: &str) {
    let (reg, institution) = (c.w.reg(), c.institution);
    c.w.send(
        institution,
        reg,
        Registrar::registerProviderCall {
            identity: h(label),
            account,
            endpoint: "https://gk.clinic.example".into(),
            encryptionKey: h(&format!("{label} key")),
        },
    );
}

/// A patient's decision on a relationship.
#[derive(Debug, Clone, Copy)]
enum Decision {
    Accept,
    Reject,
    Remove,
}

impl Decision {
    const fn target(self) -> Status {
        match self {
            Self::Accept => Status::Accepted,
            Self::Reject => Status::Rejected,
            Self::Remove => Status::Deleted,
        }
    }

    fn calldata(self, delegate: Address) -> Vec<u8> {
        match self {
            Self::Accept => R::acceptCall { delegate }.abi_encode(),
            Self::Reject => R::rejectCall { delegate }.abi_encode(),
            Self::Remove => R::removeCall { delegate }.abi_encode(),
        }
    }
}

/// Runs raw calldata on the relationships contract: the logs, or the decoded refusal.
fn run(c: &mut Cast, from: Address, calldata: Vec<u8>) -> Result<Receipt, ContractError> {
    let rel = c.w.rel();
    match c.w.evm.transact(from, rel, calldata.into()).expect("EVM accepts the tx") {
        Outcome::Success { gas_used, logs, output } => Ok(Receipt { gas_used, logs, output }),
        Outcome::Revert { output, .. } => Err(ContractError::decode(&output)),
        Outcome::Halt { reason, .. } => panic!("halted: {reason}"),
    }
}

/// `from` sends decision `d` naming the cast's delegate; panics if it is refused.
fn decide(c: &mut Cast, from: Address, d: Decision) -> Receipt {
    let calldata = d.calldata(c.delegate);
    run(c, from, calldata).unwrap_or_else(|e| panic!("{d:?} refused: {e}"))
}

/// `from` sends decision `d` naming the cast's delegate; panics unless it is refused.
fn decide_fails(c: &mut Cast, from: Address, d: Decision) -> ContractError {
    let calldata = d.calldata(c.delegate);
    match run(c, from, calldata) {
        Ok(r) => panic!("{d:?} was expected to fail, emitted {:?}", r.event_names()),
        Err(e) => e,
    }
}

/// A cast whose relationship has just reached `status` the ordinary way.
fn cast_in(status: Status) -> Cast {
    let mut c = match status {
        Status::New => {
            let mut c = Cast::new();
            c.create();
            c
        }
        Status::Accepted => Cast::new().accepted(),
        Status::UpdatePending => {
            let mut c = Cast::new().accepted();
            add(&mut c, 1);
            c
        }
        Status::Rejected => {
            let mut c = Cast::new();
            c.create();
            let patient = c.patient;
            decide(&mut c, patient, Decision::Reject);
            c
        }
        Status::Deleted => {
            let mut c = Cast::new();
            c.create();
            let patient = c.patient;
            decide(&mut c, patient, Decision::Remove);
            c
        }
    };
    assert_eq!(c.stored().status, status.as_u8(), "setting up {status:?}");
    c
}

/// Storage slot of `_relationships[relId]` (mapping at slot 0).
fn relationship_slot(rel_id: B256) -> U256 {
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(rel_id.as_slice());
    U256::from_be_bytes(keccak256(buf).0)
}

/// Storage slot of `_grants[relId][viewer]` (mapping at slot 1).
fn grant_slot(rel_id: B256, viewer: Address) -> U256 {
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(rel_id.as_slice());
    buf[63] = 1;
    let inner = keccak256(buf);
    buf[..32].copy_from_slice(viewer.into_word().as_slice());
    buf[32..].copy_from_slice(inner.as_slice());
    U256::from_be_bytes(keccak256(buf).0)
}

// ----- create -------------------------------------------------------------------------

#[test]
fn create_returns_the_derived_id_and_stores_a_new_relationship() {
    let mut c = Cast::new();
    let r = c.create();
    let created_at = c.w.evm.timestamp();
    let returned = R::createCall::abi_decode_returns(&r.output).expect("create returns bytes32");
    let (rel, patient, delegate, provider) = (c.w.rel(), c.patient, c.delegate, c.provider);

    assert_eq!(returned, RelationshipId::derive(patient, delegate).0);
    assert_eq!(c.w.view(rel, R::relationshipIdCall { patient, delegate }), returned);
    assert_eq!(
        c.stored(),
        R::Relationship {
            provider,
            status: NEW,
            pointerCount: 1,
            acceptedCount: 0,
            researchOptIn: false,
            updatedAt: u40(created_at),
            updates: u24(0),
        }
    );
}

#[test]
fn create_emits_created_then_status_new_then_pointer_zero() {
    let mut c = Cast::new();
    let r = c.create();
    let rel_id = c.rel_id();

    assert_eq!(r.event_names(), ["RelationshipCreated", "StatusChanged", "PointerAdded"]);
    assert_eq!(
        r.event::<R::RelationshipCreated>(),
        R::RelationshipCreated {
            relId: rel_id,
            patient: c.patient,
            provider: c.provider,
            delegate: c.delegate,
        }
    );
    assert_eq!(r.event::<R::StatusChanged>(), R::StatusChanged { relId: rel_id, status: NEW });
    assert_eq!(
        r.event::<R::PointerAdded>(),
        R::PointerAdded {
            relId: rel_id,
            pointerId: U256::ZERO,
            queryCommitment: query(0),
            dataHash: data(0),
        }
    );
    // The patient and the provider are indexed, so summaries can be found by topic.
    let created = &r.logs[0];
    assert_eq!(created.topics()[1], rel_id);
    assert_eq!(created.topics()[2], c.patient.into_word());
    assert_eq!(created.topics()[3], c.provider.into_word());
}

#[test]
fn create_is_refused_to_everyone_but_registered_providers() {
    let mut c = Cast::new();
    let rel = c.w.rel();
    let callers = [
        ("patient", c.patient),
        ("delegate", c.delegate),
        ("stranger", c.stranger),
        ("viewer", c.viewer),
        ("institution that is not a provider", c.institution),
    ];
    for (who, caller) in callers {
        let call = create_call(&c);
        assert_eq!(c.w.fail(caller, rel, call), ContractError::NotProvider { caller }, "{who}");
    }
    assert_eq!(status(&mut c), NONE, "nothing was created");
}

#[test]
fn create_checks_the_registrar_at_call_time() {
    let mut c = Cast::new();
    let (rel, reg, institution, old) = (c.w.rel(), c.w.reg(), c.institution, c.provider);
    let rotated = addr(12);
    c.w.send(institution, reg, Registrar::remapCall { identity: h("provider"), to: rotated });

    let call = create_call(&c);
    assert_eq!(c.w.fail(old, rel, call), ContractError::NotProvider { caller: old });

    let r = c.w.send(rotated, rel, create_call(&c));
    assert_eq!(r.event::<R::RelationshipCreated>().provider, rotated);
    assert_eq!(c.stored().provider, rotated);
}

#[test]
fn create_refuses_zero_addresses() {
    let mut c = Cast::new();
    let (rel, provider) = (c.w.rel(), c.provider);
    let cases = [
        ("zero patient", Address::ZERO, c.delegate),
        ("zero delegate", c.patient, Address::ZERO),
        ("both zero", Address::ZERO, Address::ZERO),
    ];
    for (label, patient, delegate) in cases {
        let call =
            R::createCall { patient, delegate, queryCommitment: query(0), dataHash: data(0) };
        assert_eq!(c.w.fail(provider, rel, call), ContractError::ZeroAddress, "{label}");
        let stored = c
            .w
            .view(rel, R::relationshipCall { relId: RelationshipId::derive(patient, delegate).0 });
        assert_eq!(stored.status, NONE, "{label}");
    }
}

#[test]
fn create_refuses_the_patient_as_its_own_delegate() {
    let mut c = Cast::new();
    let (rel, provider, patient, stranger) = (c.w.rel(), c.provider, c.patient, c.stranger);
    let self_call = |q: B256, d: B256| R::createCall {
        patient,
        delegate: patient,
        queryCommitment: q,
        dataHash: d,
    };

    assert_eq!(
        c.w.fail(provider, rel, self_call(query(0), data(0))),
        ContractError::DelegateIsPatient
    );
    // Checked after the caller's role, before the hashes.
    assert_eq!(
        c.w.fail(stranger, rel, self_call(query(0), data(0))),
        ContractError::NotProvider { caller: stranger }
    );
    assert_eq!(
        c.w.fail(provider, rel, self_call(B256::ZERO, B256::ZERO)),
        ContractError::DelegateIsPatient,
        "before the zero hashes"
    );
    let self_id = RelationshipId::derive(patient, patient).0;
    assert_eq!(c.w.view(rel, R::relationshipCall { relId: self_id }).status, NONE);
    assert_eq!(c.w.evm.storage(rel, relationship_slot(self_id)), U256::ZERO, "nothing stored");

    // With a delegate address of the provider's own, the same creation goes through.
    c.create();
    assert_eq!(status(&mut c), NEW);
}

#[test]
fn create_refuses_zero_hashes() {
    let mut c = Cast::new();
    let (rel, provider) = (c.w.rel(), c.provider);
    let cases = [
        ("zero query commitment", B256::ZERO, data(0)),
        ("zero data hash", query(0), B256::ZERO),
        ("both zero", B256::ZERO, B256::ZERO),
    ];
    for (label, q, d) in cases {
        let call = R::createCall {
            patient: c.patient,
            delegate: c.delegate,
            queryCommitment: q,
            dataHash: d,
        };
        assert_eq!(c.w.fail(provider, rel, call), ContractError::ZeroHash, "{label}");
    }
    assert_eq!(status(&mut c), NONE);
}

#[test]
fn create_refuses_an_existing_pair_whoever_asks_and_whatever_its_status() {
    let mut c = Cast::new();
    c.create();
    let (rel, provider, patient) = (c.w.rel(), c.provider, c.patient);
    let second = addr(12);
    register_provider(&mut c, second, "second provider");
    let original = c.stored();

    for (who, caller) in [("same provider", provider), ("another provider", second)] {
        let call = R::createCall {
            patient: c.patient,
            delegate: c.delegate,
            queryCommitment: query(9),
            dataHash: data(9),
        };
        assert_eq!(
            c.w.fail(caller, rel, call),
            ContractError::RelationshipExists { rel_id: id(&c) },
            "{who}"
        );
    }
    assert_eq!(c.stored(), original, "the first creation stands");

    // A deleted relationship still occupies its id: the provider needs a new delegate.
    decide(&mut c, patient, Decision::Remove);
    let call = create_call(&c);
    assert_eq!(c.w.fail(provider, rel, call), ContractError::RelationshipExists { rel_id: id(&c) });
    assert_eq!(status(&mut c), DELETED);
}

#[test]
fn relationships_are_keyed_by_the_ordered_patient_delegate_pair() {
    let mut c = Cast::new();
    c.create();
    let (rel, reg, institution) = (c.w.rel(), c.w.reg(), c.institution);
    let (patient, delegate, provider) = (c.patient, c.delegate, c.provider);
    let (delegate2, patient2) = (addr(12), addr(21));
    c.w.send(
        institution,
        reg,
        Registrar::registerPatientCall { identity: h("patient 2"), account: patient2 },
    );

    let pairs = [(patient, delegate2), (patient2, delegate)];
    let mut ids = vec![c.rel_id()];
    for (p, d) in pairs {
        let call =
            R::createCall { patient: p, delegate: d, queryCommitment: query(0), dataHash: data(0) };
        let r = c.w.send(provider, rel, call);
        let returned = R::createCall::abi_decode_returns(&r.output).expect("bytes32");
        assert_eq!(returned, RelationshipId::derive(p, d).0);
        assert_eq!(c.w.view(rel, R::relationshipIdCall { patient: p, delegate: d }), returned);
        ids.push(returned);
    }
    let swapped = c.w.view(rel, R::relationshipIdCall { patient: delegate, delegate: patient });
    ids.push(swapped);
    for (i, a) in ids.iter().enumerate() {
        for b in &ids[i + 1..] {
            assert_ne!(a, b, "ids are distinct");
        }
    }

    // Each relationship moves on its own.
    c.w.send(patient, rel, R::acceptCall { delegate: delegate2 });
    assert_eq!(c.w.view(rel, R::relationshipCall { relId: ids[1] }).status, ACCEPTED);
    assert_eq!(status(&mut c), NEW);
    assert_eq!(c.w.view(rel, R::relationshipCall { relId: ids[2] }).status, NEW);
}

#[test]
fn constant_views_and_unknown_ids_read_as_empty() {
    let mut c = Cast::new();
    let (rel, reg, viewer) = (c.w.rel(), c.w.reg(), c.viewer);
    assert_eq!(c.w.view(rel, R::MAX_POINTERSCall {}), U256::from(128));
    assert_eq!(c.w.view(rel, R::registrarCall {}), reg);

    let unknown = c.rel_id();
    assert_eq!(
        c.stored(),
        R::Relationship {
            provider: Address::ZERO,
            status: NONE,
            pointerCount: 0,
            acceptedCount: 0,
            researchOptIn: false,
            updatedAt: u40(0),
            updates: u24(0),
        }
    );
    assert_eq!(grant_of(&mut c, unknown, viewer), no_grant());
    assert!(!can_view_at(&mut c, unknown, viewer, U256::ZERO));
}

// ----- addPointer / updatePointer -----------------------------------------------------

#[test]
fn add_pointer_on_a_new_relationship_keeps_it_new() {
    let mut c = cast_in(Status::New);
    let miner = addr(100);
    c.w.evm.set_coinbase(miner);
    let before = c.stored();
    let r = add(&mut c, 1);
    let at = c.w.evm.timestamp();
    let rel_id = c.rel_id();

    assert_eq!(R::addPointerCall::abi_decode_returns(&r.output).expect("uint256"), U256::from(1));
    assert_eq!(r.event_names(), ["BountyPosted", "PointerAdded"], "no StatusChanged while New");
    assert_eq!(
        r.event::<R::BountyPosted>(),
        R::BountyPosted { relId: rel_id, owner: miner, seq: U256::ZERO, commitment: bounty(1) }
    );
    assert_eq!(
        r.event::<R::PointerAdded>(),
        R::PointerAdded {
            relId: rel_id,
            pointerId: U256::from(1),
            queryCommitment: query(1),
            dataHash: data(1),
        }
    );
    assert_eq!(
        c.stored(),
        R::Relationship {
            status: NEW,
            pointerCount: 2,
            updatedAt: u40(at),
            updates: u24(1),
            ..before
        }
    );
}

#[test]
fn add_pointer_on_an_accepted_relationship_makes_it_update_pending_once() {
    let mut c = cast_in(Status::Accepted);
    let rel_id = c.rel_id();

    let r = add(&mut c, 1);
    assert_eq!(r.event_names(), ["StatusChanged", "BountyPosted", "PointerAdded"]);
    assert_eq!(
        r.event::<R::StatusChanged>(),
        R::StatusChanged { relId: rel_id, status: UPDATE_PENDING }
    );
    assert_eq!(status(&mut c), UPDATE_PENDING);

    // Further changes while pending: no second StatusChanged.
    let r = add(&mut c, 2);
    assert_eq!(r.event_names(), ["BountyPosted", "PointerAdded"]);
    assert_eq!(R::addPointerCall::abi_decode_returns(&r.output).expect("uint256"), U256::from(2));
    let r = update(&mut c, 0, 3);
    assert_eq!(r.event_names(), ["BountyPosted", "PointerUpdated"]);
    let stored = c.stored();
    assert_eq!((stored.status, stored.pointerCount, stored.updates), (UPDATE_PENDING, 3, u24(3)));
}

#[test]
fn update_pointer_records_new_data_and_counts_the_change() {
    let mut c = cast_in(Status::New);
    add(&mut c, 1);
    let before = c.stored();
    let rel_id = c.rel_id();

    let r = update(&mut c, 1, 7);
    let at = c.w.evm.timestamp();
    assert!(r.output.is_empty(), "updatePointer returns nothing");
    assert_eq!(r.event_names(), ["BountyPosted", "PointerUpdated"]);
    assert_eq!(
        r.event::<R::PointerUpdated>(),
        R::PointerUpdated { relId: rel_id, pointerId: U256::from(1), dataHash: data(7) }
    );
    assert_eq!(r.event::<R::BountyPosted>().seq, U256::from(1));
    assert_eq!(r.event::<R::BountyPosted>().commitment, bounty(7));
    assert_eq!(
        c.stored(),
        R::Relationship { updatedAt: u40(at), updates: u24(2), ..before },
        "pointer count and status unchanged"
    );
    assert!(at > before.updatedAt.to::<u64>());

    // Pointer 0, the one created with the relationship, is updatable too.
    let r = update(&mut c, 0, 8);
    assert_eq!(r.event::<R::PointerUpdated>().pointerId, U256::ZERO);
}

#[test]
fn update_pointer_on_an_accepted_relationship_makes_it_update_pending() {
    let mut c = cast_in(Status::Accepted);
    let rel_id = c.rel_id();
    let r = update(&mut c, 0, 1);
    assert_eq!(r.event_names(), ["StatusChanged", "BountyPosted", "PointerUpdated"]);
    assert_eq!(
        r.event::<R::StatusChanged>(),
        R::StatusChanged { relId: rel_id, status: UPDATE_PENDING }
    );
    let stored = c.stored();
    assert_eq!((stored.status, stored.pointerCount, stored.updates), (UPDATE_PENDING, 1, u24(1)));
}

#[test]
fn bounties_belong_to_the_miner_of_each_block_and_are_numbered_across_changes() {
    let mut c = cast_in(Status::Accepted);
    let rel_id = c.rel_id();
    let miners = [addr(100), addr(101), addr(102)];

    c.w.evm.set_coinbase(miners[0]);
    let r0 = add(&mut c, 1);
    c.w.evm.set_coinbase(miners[1]);
    let r1 = update(&mut c, 0, 2);
    c.w.evm.set_coinbase(miners[2]);
    let r2 = add(&mut c, 3);

    for (seq, (r, (miner, n))) in
        [r0, r1, r2].iter().zip(miners.into_iter().zip([1, 2, 3])).enumerate()
    {
        assert_eq!(
            r.event::<R::BountyPosted>(),
            R::BountyPosted {
                relId: rel_id,
                owner: miner,
                seq: U256::from(seq),
                commitment: bounty(n),
            },
            "change {seq}"
        );
        // The owner is an indexed topic, so a miner finds its bounties by topic.
        let log = r.logs.iter().find(|l| l.topics()[0] == R::BountyPosted::SIGNATURE_HASH);
        assert_eq!(log.expect("bounty log").topics()[2], miner.into_word(), "change {seq}");
    }
    let stored = c.stored();
    assert_eq!((stored.updates, stored.pointerCount), (u24(3), 3));
}

#[test]
fn only_the_delegate_changes_pointers() {
    let mut c = cast_in(Status::New);
    let (rel, patient, delegate) = (c.w.rel(), c.patient, c.delegate);
    let before = c.stored();
    let senders = [
        ("provider's main address", c.provider),
        ("patient", c.patient),
        ("stranger", c.stranger),
        ("viewer", c.viewer),
        ("institution", c.institution),
    ];
    for (who, sender) in senders {
        let expected =
            ContractError::UnknownRelationship { rel_id: RelationshipId::derive(patient, sender) };
        let call = add_call(&c, 1);
        assert_eq!(c.w.fail(sender, rel, call), expected, "{who} adds");
        let call = update_call(&c, 0, 1);
        assert_eq!(c.w.fail(sender, rel, call), expected, "{who} updates");
    }
    // The delegate naming another patient addresses another (unknown) relationship.
    let other = c.stranger;
    let expected =
        ContractError::UnknownRelationship { rel_id: RelationshipId::derive(other, delegate) };
    let call = R::addPointerCall {
        patient: other,
        queryCommitment: query(1),
        dataHash: data(1),
        bounty: bounty(1),
    };
    assert_eq!(c.w.fail(delegate, rel, call), expected);
    let call = R::updatePointerCall {
        patient: other,
        pointerId: U256::ZERO,
        dataHash: data(1),
        bounty: bounty(1),
    };
    assert_eq!(c.w.fail(delegate, rel, call), expected);

    assert_eq!(c.stored(), before);
}

#[test]
fn pointer_changes_refuse_zero_hashes() {
    let mut c = cast_in(Status::Accepted);
    let (rel, delegate, patient) = (c.w.rel(), c.delegate, c.patient);
    let before = c.stored();
    let z = B256::ZERO;
    let adds = [
        ("zero query commitment", z, data(1), bounty(1)),
        ("zero data hash", query(1), z, bounty(1)),
        ("zero bounty", query(1), data(1), z),
    ];
    for (label, q, d, b) in adds {
        let call = R::addPointerCall { patient, queryCommitment: q, dataHash: d, bounty: b };
        assert_eq!(c.w.fail(delegate, rel, call), ContractError::ZeroHash, "add: {label}");
    }
    let updates = [("zero data hash", z, bounty(1)), ("zero bounty", data(1), z)];
    for (label, d, b) in updates {
        let call = R::updatePointerCall { patient, pointerId: U256::ZERO, dataHash: d, bounty: b };
        assert_eq!(c.w.fail(delegate, rel, call), ContractError::ZeroHash, "update: {label}");
    }
    assert_eq!(c.stored(), before, "still accepted, no update counted");
}

#[test]
fn update_pointer_refuses_pointers_that_do_not_exist() {
    let mut c = cast_in(Status::New);
    add(&mut c, 1);
    let (rel, delegate, patient) = (c.w.rel(), c.delegate, c.patient);
    let before = c.stored();
    for pointer in [U256::from(2), U256::from(127), U256::from(128), U256::MAX] {
        let call = R::updatePointerCall {
            patient,
            pointerId: pointer,
            dataHash: data(5),
            bounty: bounty(5),
        };
        assert_eq!(
            c.w.fail(delegate, rel, call),
            ContractError::UnknownPointer { rel_id: id(&c), pointer_id: pointer },
            "pointer {pointer}"
        );
    }
    assert_eq!(c.stored(), before);
}

#[test]
fn closed_relationships_take_no_pointer_changes() {
    type Setup = fn() -> Cast;
    let cases: [(&str, Setup, Status); 5] = [
        ("rejected while new", || cast_in(Status::Rejected), Status::Rejected),
        (
            "rejected while update pending",
            || {
                let mut c = cast_in(Status::UpdatePending);
                let patient = c.patient;
                decide(&mut c, patient, Decision::Reject);
                c
            },
            Status::Rejected,
        ),
        ("deleted while new", || cast_in(Status::Deleted), Status::Deleted),
        (
            "deleted while accepted",
            || {
                let mut c = cast_in(Status::Accepted);
                let patient = c.patient;
                decide(&mut c, patient, Decision::Remove);
                c
            },
            Status::Deleted,
        ),
        (
            "deleted after rejection",
            || {
                let mut c = cast_in(Status::Rejected);
                let patient = c.patient;
                decide(&mut c, patient, Decision::Remove);
                c
            },
            Status::Deleted,
        ),
    ];
    for (label, setup, closed) in cases {
        let mut c = setup();
        let (rel, delegate) = (c.w.rel(), c.delegate);
        let before = c.stored();
        assert_eq!(before.status, closed.as_u8(), "{label}");
        let expected = ContractError::RelationshipClosed { rel_id: id(&c), status: closed };
        let call = add_call(&c, 5);
        assert_eq!(c.w.fail(delegate, rel, call), expected, "{label}: add");
        let call = update_call(&c, 0, 5);
        assert_eq!(c.w.fail(delegate, rel, call), expected, "{label}: update");
        assert_eq!(c.stored(), before, "{label}");
    }
}

#[test]
fn a_relationship_holds_at_most_128_pointers_at_a_flat_gas_cost() {
    let mut c = cast_in(Status::New);
    let (rel, delegate, viewer) = (c.w.rel(), c.delegate, c.viewer);
    let mut gas = Vec::new();
    for n in 1..=127u64 {
        let r = add(&mut c, n);
        assert_eq!(
            R::addPointerCall::abi_decode_returns(&r.output).expect("uint256"),
            U256::from(n)
        );
        gas.push(r.gas_used);
    }
    let stored = c.stored();
    assert_eq!((stored.pointerCount, stored.updates, stored.status), (128, u24(127), NEW));

    let call = add_call(&c, 128);
    assert_eq!(c.w.fail(delegate, rel, call), ContractError::TooManyPointers { rel_id: id(&c) });
    assert_eq!(c.stored(), stored);

    let (min, max) = (gas.iter().min().copied(), gas.iter().max().copied());
    let (min, max) = (min.expect("some gas"), max.expect("some gas"));
    assert!(max <= 45_000, "addPointer costs {max} gas, above the 45,000 budget");
    assert!(max - min <= 1_000, "addPointer gas grows with the pointer count: {min}..{max}");

    // The last pointer is usable; the one past it does not exist.
    update(&mut c, 127, 500);
    let call = update_call(&c, 128, 501);
    assert_eq!(
        c.w.fail(delegate, rel, call),
        ContractError::UnknownPointer { rel_id: id(&c), pointer_id: U256::from(128) }
    );
    let patient = c.patient;
    decide(&mut c, patient, Decision::Accept);
    c.grant(viewer, u128::MAX, 3600);
    assert!(c.can_view(viewer, 127));
    assert!(!c.can_view(viewer, 128));
}

// ----- accept / reject / remove -------------------------------------------------------

#[test]
fn patient_decisions_follow_the_status_table() {
    use Decision::{Accept, Reject, Remove};
    use Status::{Accepted, Deleted, New, Rejected, UpdatePending};
    let table = [
        (New, Accept, true),
        (New, Reject, true),
        (New, Remove, true),
        (UpdatePending, Accept, true),
        (UpdatePending, Reject, true),
        (UpdatePending, Remove, true),
        (Accepted, Accept, false),
        (Accepted, Reject, false),
        (Accepted, Remove, true),
        (Rejected, Accept, false),
        (Rejected, Reject, false),
        (Rejected, Remove, true),
        (Deleted, Accept, false),
        (Deleted, Reject, false),
        (Deleted, Remove, false),
    ];
    for (from, decision, allowed) in table {
        let mut c = cast_in(from);
        let (patient, rel_id) = (c.patient, c.rel_id());
        let before = c.stored();
        let to = decision.target();
        if allowed {
            let r = decide(&mut c, patient, decision);
            assert_eq!(r.event_names(), ["StatusChanged"], "{from:?} {decision:?}");
            assert_eq!(
                r.event::<R::StatusChanged>(),
                R::StatusChanged { relId: rel_id, status: to.as_u8() },
                "{from:?} {decision:?}"
            );
            // Accepting accepts every pointer so far; nothing else but the status changes
            // (updatedAt tracks pointers).
            let accepted_count = match decision {
                Accept => before.pointerCount,
                Reject | Remove => before.acceptedCount,
            };
            assert_eq!(
                c.stored(),
                R::Relationship { status: to.as_u8(), acceptedCount: accepted_count, ..before },
                "{from:?} {decision:?}: only the status and the accepted count change"
            );
        } else {
            assert_eq!(
                decide_fails(&mut c, patient, decision),
                ContractError::InvalidTransition { rel_id: id(&c), from, to },
                "{from:?} {decision:?}"
            );
            assert_eq!(c.stored(), before, "{from:?} {decision:?}");
        }
    }
}

#[test]
fn only_the_patient_decides() {
    let mut c = cast_in(Status::New);
    let delegate = c.delegate;
    let senders = [
        ("provider", c.provider),
        ("delegate", c.delegate),
        ("stranger", c.stranger),
        ("viewer", c.viewer),
        ("institution", c.institution),
    ];
    for (who, sender) in senders {
        for d in [Decision::Accept, Decision::Reject, Decision::Remove] {
            assert_eq!(
                decide_fails(&mut c, sender, d),
                ContractError::UnknownRelationship {
                    rel_id: RelationshipId::derive(sender, delegate)
                },
                "{who} {d:?}"
            );
        }
    }
    // The delegate naming the patient as "its delegate" gets the swapped, unknown id.
    let (rel, patient) = (c.w.rel(), c.patient);
    assert_eq!(
        c.w.fail(delegate, rel, R::acceptCall { delegate: patient }),
        ContractError::UnknownRelationship { rel_id: RelationshipId::derive(delegate, patient) }
    );
    assert_eq!(status(&mut c), NEW);
}

#[test]
fn decisions_on_an_unknown_relationship_are_refused() {
    let mut c = Cast::new();
    let patient = c.patient;
    for d in [Decision::Accept, Decision::Reject, Decision::Remove] {
        assert_eq!(
            decide_fails(&mut c, patient, d),
            ContractError::UnknownRelationship { rel_id: id(&c) },
            "{d:?}"
        );
    }
    assert_eq!(status(&mut c), NONE);
}

#[test]
fn a_full_lifecycle_emits_each_status_in_order() {
    let mut c = Cast::new();
    let patient = c.patient;
    let mut receipts = vec![c.create()];
    receipts.push(decide(&mut c, patient, Decision::Accept));
    receipts.push(add(&mut c, 1));
    receipts.push(decide(&mut c, patient, Decision::Accept));
    receipts.push(update(&mut c, 1, 2));
    receipts.push(update(&mut c, 0, 3));
    receipts.push(decide(&mut c, patient, Decision::Reject));
    receipts.push(decide(&mut c, patient, Decision::Remove));

    let statuses: Vec<u8> =
        receipts.iter().flat_map(|r| r.events::<R::StatusChanged>()).map(|e| e.status).collect();
    assert_eq!(
        statuses,
        [NEW, ACCEPTED, UPDATE_PENDING, ACCEPTED, UPDATE_PENDING, REJECTED, DELETED]
    );
    let stored = c.stored();
    assert_eq!((stored.status, stored.pointerCount, stored.updates), (DELETED, 2, u24(3)));
    assert_eq!(stored.acceptedCount, 2);
}

#[test]
fn accepting_accepts_every_pointer_so_far_and_nothing_else_moves_the_count() {
    let mut c = Cast::new();
    let patient = c.patient;
    c.create();
    assert_eq!(counts(&mut c), (NEW, 1, 0), "created: nothing accepted yet");

    // Pointers added while New are accepted with the relationship.
    add(&mut c, 1);
    assert_eq!(counts(&mut c), (NEW, 2, 0), "added while new");
    decide(&mut c, patient, Decision::Accept);
    assert_eq!(counts(&mut c), (ACCEPTED, 2, 2), "first acceptance");

    // Pointers added afterwards wait; updates of accepted pointers change no count.
    add(&mut c, 2);
    assert_eq!(counts(&mut c), (UPDATE_PENDING, 3, 2), "added after acceptance");
    update(&mut c, 0, 3);
    add(&mut c, 4);
    update(&mut c, 3, 5);
    assert_eq!(counts(&mut c), (UPDATE_PENDING, 4, 2), "more changes while pending");
    decide(&mut c, patient, Decision::Accept);
    assert_eq!(counts(&mut c), (ACCEPTED, 4, 4), "second acceptance");

    // An update alone leaves the count where it is, through its acceptance.
    update(&mut c, 1, 6);
    assert_eq!(counts(&mut c), (UPDATE_PENDING, 4, 4), "update of an accepted pointer");
    decide(&mut c, patient, Decision::Accept);
    assert_eq!(counts(&mut c), (ACCEPTED, 4, 4));

    // Rejecting or deleting accepts nothing.
    add(&mut c, 7);
    assert_eq!(counts(&mut c), (UPDATE_PENDING, 5, 4));
    decide(&mut c, patient, Decision::Reject);
    assert_eq!(counts(&mut c), (REJECTED, 5, 4), "rejected");
    decide(&mut c, patient, Decision::Remove);
    assert_eq!(counts(&mut c), (DELETED, 5, 4), "deleted");

    // Deleting a pending update directly accepts nothing either.
    let mut c = cast_in(Status::UpdatePending);
    let patient = c.patient;
    assert_eq!(counts(&mut c), (UPDATE_PENDING, 2, 1));
    decide(&mut c, patient, Decision::Remove);
    assert_eq!(counts(&mut c), (DELETED, 2, 1));
}

// ----- grant / revoke / canView / grantOf ---------------------------------------------

#[test]
fn grant_stores_the_window_and_emits_viewer_granted() {
    let mut c = cast_in(Status::Accepted);
    let (viewer, rel_id) = (c.viewer, c.rel_id());
    let relationship = c.stored();
    let now = c.w.evm.timestamp();
    let (not_before, expires_at) = (now + 100, now + 1000);

    let r = grant_window(&mut c, viewer, 0b101, not_before, expires_at);
    assert!(r.output.is_empty());
    assert_eq!(r.event_names(), ["ViewerGranted"]);
    assert_eq!(
        r.event::<R::ViewerGranted>(),
        R::ViewerGranted {
            relId: rel_id,
            viewer,
            pointers: 0b101,
            notBefore: u40(not_before),
            expiresAt: u40(expires_at),
        }
    );
    assert_eq!(r.logs[0].topics()[2], viewer.into_word(), "the viewer is indexed");
    assert_eq!(
        grant_of(&mut c, rel_id, viewer),
        R::Grant { pointers: 0b101, notBefore: u40(not_before), expiresAt: u40(expires_at) }
    );
    assert_eq!(c.stored(), relationship, "a grant does not touch the relationship");
}

#[test]
fn grant_refuses_a_zero_viewer_an_empty_set_and_bad_windows() {
    #[derive(Debug, Clone, Copy)]
    enum Expect {
        ZeroAddress,
        EmptyPointerSet,
        InvalidWindow,
    }
    let mut c = cast_in(Status::Accepted);
    let (rel, patient, viewer, rel_id) = (c.w.rel(), c.patient, c.viewer, c.rel_id());
    // Offsets are relative to the block the grant runs in; `None` is notBefore = 0.
    let cases = [
        ("zero viewer", Address::ZERO, 1, None, 1000, Expect::ZeroAddress),
        ("zero viewer checked first", Address::ZERO, 0, Some(5), 1, Expect::ZeroAddress),
        ("empty pointer set", viewer, 0, None, 1000, Expect::EmptyPointerSet),
        ("empty set checked before window", viewer, 0, Some(5), 1, Expect::EmptyPointerSet),
        ("ends when it starts", viewer, 1, Some(500), 500, Expect::InvalidWindow),
        ("ends before it starts", viewer, 1, Some(500), 400, Expect::InvalidWindow),
        ("already over", viewer, 1, None, -1000, Expect::InvalidWindow),
        ("ends at the block's own time", viewer, 1, None, 0, Expect::InvalidWindow),
    ];
    for (label, who, pointers, start, end, expect) in cases {
        let tx_time = c.w.evm.timestamp() + BLOCK;
        let at = |off: i64| tx_time.checked_add_signed(off).expect("in range");
        let (not_before, expires_at) = (start.map_or(0, at), at(end));
        let call = R::grantCall {
            delegate: c.delegate,
            viewer: who,
            pointers,
            notBefore: u40(not_before),
            expiresAt: u40(expires_at),
        };
        let expected = match expect {
            Expect::ZeroAddress => ContractError::ZeroAddress,
            Expect::EmptyPointerSet => ContractError::EmptyPointerSet,
            Expect::InvalidWindow => ContractError::InvalidWindow { not_before, expires_at },
        };
        assert_eq!(c.w.fail(patient, rel, call), expected, "{label}");
    }
    assert_eq!(grant_of(&mut c, rel_id, viewer), no_grant());
    assert_eq!(grant_of(&mut c, rel_id, Address::ZERO), no_grant());
    assert!(!c.can_view(viewer, 0));
}

#[test]
fn a_grant_must_outlast_the_block_it_is_made_in() {
    let mut c = cast_in(Status::Accepted);
    let (rel, patient, viewer, rel_id) = (c.w.rel(), c.patient, c.viewer, c.rel_id());

    let tx_time = c.w.evm.timestamp() + BLOCK;
    let call = grant_call(&c, viewer, 1, 0, tx_time);
    assert_eq!(
        c.w.fail(patient, rel, call),
        ContractError::InvalidWindow { not_before: 0, expires_at: tx_time }
    );

    // One second past the block's time is a valid (if useless) window.
    let tx_time = c.w.evm.timestamp() + BLOCK;
    grant_window(&mut c, viewer, 1, 0, tx_time + 1);
    assert_eq!(grant_of(&mut c, rel_id, viewer).expiresAt, u40(tx_time + 1));
    assert!(!c.can_view(viewer, 0), "expired by the next block");
}

#[test]
fn grants_written_by_anyone_but_the_patient_open_nothing() {
    let mut c = cast_in(Status::Accepted);
    let (rel, delegate, viewer, rel_id) = (c.w.rel(), c.delegate, c.viewer, c.rel_id());
    let far = c.w.evm.timestamp() + DECADE;
    let writers = [
        ("stranger", c.stranger),
        ("provider", c.provider),
        ("delegate", c.delegate),
        ("the viewer itself", c.viewer),
    ];
    for (who, writer) in writers {
        let call = grant_call(&c, viewer, u128::MAX, 0, far);
        let r = c.w.send(writer, rel, call);
        let elsewhere = RelationshipId::derive(writer, delegate).0;
        let event = r.event::<R::ViewerGranted>();
        assert_eq!(event.relId, elsewhere, "{who}: written under the writer's own id");
        assert_ne!(event.relId, rel_id, "{who}");
        assert_eq!(grant_of(&mut c, rel_id, viewer), no_grant(), "{who}");
        assert!(!c.can_view(viewer, 0), "{who}");
        assert!(!can_view_at(&mut c, elsewhere, viewer, U256::ZERO), "{who}: no such relationship");
    }
}

#[test]
fn can_view_follows_the_pointer_bits_and_the_accepted_count() {
    let mut c = cast_in(Status::Accepted);
    let (patient, viewer, other, rel_id) = (c.patient, c.viewer, c.stranger, c.rel_id());
    add(&mut c, 1);
    add(&mut c, 2);
    decide(&mut c, patient, Decision::Accept);
    assert_eq!(c.stored().pointerCount, 3);

    c.grant(viewer, 0b1101, DECADE); // pointers 0, 2 and 3 (which does not exist yet)
    let expected = [(0, true), (1, false), (2, true), (3, false), (4, false), (127, false)];
    for (pointer, allowed) in expected {
        assert_eq!(c.can_view(viewer, pointer), allowed, "pointer {pointer}");
        assert!(!c.can_view(other, pointer), "ungranted viewer, pointer {pointer}");
    }
    for pointer in [U256::from(128), U256::from(256), U256::MAX] {
        assert!(!can_view_at(&mut c, rel_id, viewer, pointer), "pointer {pointer}");
    }

    // Once pointer 3 exists, the grant that named it covers it only after the patient
    // accepts it; the accepted pointers stay viewable while the update is pending.
    add(&mut c, 3);
    assert_eq!(counts(&mut c), (UPDATE_PENDING, 4, 3));
    assert!(!c.can_view(viewer, 3), "added since the last acceptance");
    assert!(c.can_view(viewer, 0) && c.can_view(viewer, 2));
    decide(&mut c, patient, Decision::Accept);
    assert!(c.can_view(viewer, 3));
    assert!(!c.can_view(viewer, 1));
}

#[test]
fn a_pointer_added_after_acceptance_waits_for_the_next_acceptance() {
    let mut c = cast_in(Status::Accepted);
    let (patient, viewer, second) = (c.patient, c.viewer, addr(31));
    c.grant(viewer, 0b11, DECADE); // pointers 0 and 1: only 0 exists, and it is accepted
    c.grant(second, 0b10, DECADE); // pointer 1 only
    assert_eq!(counts(&mut c), (ACCEPTED, 1, 1));
    assert!(c.can_view(viewer, 0));
    assert!(!c.can_view(viewer, 1), "pointer 1 does not exist yet");

    let r = add(&mut c, 1);
    assert_eq!(R::addPointerCall::abi_decode_returns(&r.output).expect("uint256"), U256::from(1));
    assert_eq!(counts(&mut c), (UPDATE_PENDING, 2, 1));
    assert!(!c.can_view(viewer, 1), "pointer 1 is not accepted yet, though granted");
    assert!(!c.can_view(second, 1), "nor for a viewer granted pointer 1 alone");
    assert!(c.can_view(viewer, 0), "the accepted pointer stays viewable while pending");

    // Updating the accepted pointer keeps it viewable and opens nothing new; nor does
    // time.
    update(&mut c, 0, 2);
    assert_eq!(counts(&mut c), (UPDATE_PENDING, 2, 1));
    assert!(c.can_view(viewer, 0), "an updated, accepted pointer stays viewable");
    assert!(!c.can_view(viewer, 1));
    c.w.evm.advance_time(3600);
    assert!(!c.can_view(viewer, 1), "waiting does not accept it");

    decide(&mut c, patient, Decision::Accept);
    assert_eq!(counts(&mut c), (ACCEPTED, 2, 2));
    assert!(c.can_view(viewer, 0) && c.can_view(viewer, 1), "accepted: both viewable");
    assert!(c.can_view(second, 1) && !c.can_view(second, 0), "the second grant names 1 only");
}

#[test]
fn a_rejected_update_never_opens_its_new_pointer() {
    let mut c = cast_in(Status::Accepted);
    let (rel, patient, delegate, viewer) = (c.w.rel(), c.patient, c.delegate, c.viewer);
    c.grant(viewer, 0b11, DECADE);
    add(&mut c, 1);
    assert!(c.can_view(viewer, 0) && !c.can_view(viewer, 1));

    decide(&mut c, patient, Decision::Reject);
    assert_eq!(counts(&mut c), (REJECTED, 2, 1));
    assert!(!c.can_view(viewer, 0) && !c.can_view(viewer, 1), "closed: nothing viewable");
    assert_eq!(
        c.w.fail(patient, rel, R::acceptCall { delegate }),
        ContractError::InvalidTransition {
            rel_id: id(&c),
            from: Status::Rejected,
            to: Status::Accepted
        },
        "a rejected relationship cannot be accepted later"
    );
    assert_eq!(counts(&mut c), (REJECTED, 2, 1));
    assert!(!c.can_view(viewer, 1));
}

#[test]
fn can_view_waits_for_not_before_inclusive() {
    let mut c = cast_in(Status::Accepted);
    let viewer = c.viewer;
    let grant_time = c.w.evm.timestamp() + BLOCK;
    let not_before = grant_time + 100;
    grant_window(&mut c, viewer, 1, not_before, not_before + 1000);
    assert_eq!(c.w.evm.timestamp(), grant_time);

    assert!(!c.can_view(viewer, 0), "views run at {}", grant_time + BLOCK);
    c.w.evm.advance_time(not_before - 1 - grant_time - BLOCK);
    assert_eq!(c.w.evm.timestamp() + BLOCK, not_before - 1);
    assert!(!c.can_view(viewer, 0), "one second early");
    c.w.evm.advance_time(1);
    assert!(c.can_view(viewer, 0), "valid from notBefore itself");
}

#[test]
fn can_view_ends_at_expiry_exclusive() {
    let mut c = cast_in(Status::Accepted);
    let (viewer, rel_id) = (c.viewer, c.rel_id());
    let grant_time = c.w.evm.timestamp() + BLOCK;
    let expires_at = grant_time + 100;
    grant_window(&mut c, viewer, 1, 0, expires_at);

    assert!(c.can_view(viewer, 0));
    c.w.evm.advance_time(expires_at - 1 - grant_time - BLOCK);
    assert!(c.can_view(viewer, 0), "last second of the window");
    c.w.evm.advance_time(1);
    assert!(!c.can_view(viewer, 0), "expiresAt is exclusive");
    assert_eq!(grant_of(&mut c, rel_id, viewer).pointers, 1, "the expired grant stays stored");
}

#[test]
fn a_grant_without_expiry_lasts() {
    let mut c = cast_in(Status::Accepted);
    let viewer = c.viewer;
    let forever = (1u64 << 40) - 1;
    grant_window(&mut c, viewer, 1, 0, forever);
    c.w.evm.advance_time(DECADE * 10);
    assert!(c.can_view(viewer, 0));
}

#[test]
fn a_grant_takes_effect_only_while_the_relationship_is_accepted() {
    let mut c = cast_in(Status::New);
    let (patient, viewer, rel_id) = (c.patient, c.viewer, c.rel_id());

    let r = c.grant(viewer, 1, DECADE);
    assert_eq!(r.event::<R::ViewerGranted>().relId, rel_id, "the grant itself succeeds");
    assert_eq!(grant_of(&mut c, rel_id, viewer).pointers, 1);
    assert!(!c.can_view(viewer, 0), "inert while New");

    decide(&mut c, patient, Decision::Accept);
    assert!(c.can_view(viewer, 0), "effective once accepted");

    add(&mut c, 1);
    assert_eq!(status(&mut c), UPDATE_PENDING);
    assert!(c.can_view(viewer, 0), "still effective while an update is pending");

    decide(&mut c, patient, Decision::Reject);
    assert!(!c.can_view(viewer, 0), "off once rejected");

    decide(&mut c, patient, Decision::Remove);
    assert!(!c.can_view(viewer, 0), "off once deleted");
    assert_eq!(grant_of(&mut c, rel_id, viewer).pointers, 1, "the grant slot itself remains");
}

#[test]
fn deleting_an_accepted_relationship_ends_its_grants() {
    let mut c = cast_in(Status::Accepted);
    let (patient, viewer) = (c.patient, c.viewer);
    c.grant(viewer, 1, DECADE);
    assert!(c.can_view(viewer, 0));
    decide(&mut c, patient, Decision::Remove);
    assert!(!c.can_view(viewer, 0));
}

#[test]
fn grants_on_closed_or_unknown_relationships_are_inert() {
    // After rejection.
    let mut c = cast_in(Status::Rejected);
    let viewer = c.viewer;
    let r = c.grant(viewer, 1, DECADE);
    assert_eq!(r.event_names(), ["ViewerGranted"]);
    assert!(!c.can_view(viewer, 0));

    // Before the relationship exists: stored under the patient's id, no effect...
    let mut c = Cast::new();
    let (patient, viewer, rel_id) = (c.patient, c.viewer, c.rel_id());
    let r = c.grant(viewer, 1, DECADE);
    assert_eq!(r.event::<R::ViewerGranted>().relId, rel_id);
    assert!(!c.can_view(viewer, 0));
    assert_eq!(status(&mut c), NONE, "a grant creates no relationship");
    // ...until a provider creates that relationship and the patient accepts it: the
    // patient's own earlier grant then applies, as a grant made before acceptance does.
    c.create();
    assert!(!c.can_view(viewer, 0));
    decide(&mut c, patient, Decision::Accept);
    assert!(c.can_view(viewer, 0));
}

#[test]
fn a_new_grant_replaces_the_earlier_one() {
    let mut c = cast_in(Status::Accepted);
    let (viewer, rel_id) = (c.viewer, c.rel_id());
    add(&mut c, 1);
    let patient = c.patient;
    decide(&mut c, patient, Decision::Accept);

    c.grant(viewer, 0b11, DECADE);
    assert!(c.can_view(viewer, 0) && c.can_view(viewer, 1));

    let grant_time = c.w.evm.timestamp() + BLOCK;
    let r = grant_window(&mut c, viewer, 0b10, 0, grant_time + 100);
    assert_eq!(r.event_names(), ["ViewerGranted"]);
    assert_eq!(
        grant_of(&mut c, rel_id, viewer),
        R::Grant { pointers: 0b10, notBefore: u40(0), expiresAt: u40(grant_time + 100) }
    );
    assert!(!c.can_view(viewer, 0), "pointer 0 no longer granted");
    assert!(c.can_view(viewer, 1));
    c.w.evm.advance_time(100);
    assert!(!c.can_view(viewer, 1), "the shorter window replaced the long one");
}

#[test]
fn revoke_clears_the_grant_at_once_and_only_that_viewer() {
    let mut c = cast_in(Status::Accepted);
    let (patient, viewer, other, rel_id) = (c.patient, c.viewer, addr(31), c.rel_id());
    c.grant(viewer, 1, DECADE);
    c.grant(other, 1, DECADE);

    let r = revoke(&mut c, patient, viewer);
    assert!(r.output.is_empty());
    assert_eq!(r.event_names(), ["ViewerRevoked"]);
    assert_eq!(r.event::<R::ViewerRevoked>(), R::ViewerRevoked { relId: rel_id, viewer });
    assert_eq!(r.logs[0].topics()[2], viewer.into_word(), "the viewer is indexed");
    assert_eq!(grant_of(&mut c, rel_id, viewer), no_grant());
    let rel = c.w.rel();
    assert_eq!(c.w.evm.storage(rel, grant_slot(rel_id, viewer)), U256::ZERO, "slot cleared");
    assert!(!c.can_view(viewer, 0), "in the very next block");
    assert!(c.can_view(other, 0), "other viewers keep their grants");

    // A revoked viewer can be granted again.
    c.grant(viewer, 1, DECADE);
    assert!(c.can_view(viewer, 0));
}

#[test]
fn revoke_is_refused_without_a_grant_under_the_callers_id() {
    let mut c = cast_in(Status::Accepted);
    let (patient, delegate, viewer, rel_id) = (c.patient, c.delegate, c.viewer, c.rel_id());
    c.grant(viewer, 1, DECADE);
    let cases = [
        ("stranger", c.stranger, viewer),
        ("provider", c.provider, viewer),
        ("delegate", c.delegate, viewer),
        ("the viewer itself", c.viewer, viewer),
    ];
    for (who, sender, target) in cases {
        assert_eq!(
            revoke_fails(&mut c, sender, target),
            ContractError::NoSuchGrant { rel_id: RelationshipId::derive(sender, delegate), viewer },
            "{who}"
        );
    }
    let ungranted = addr(31);
    assert_eq!(
        revoke_fails(&mut c, patient, ungranted),
        ContractError::NoSuchGrant { rel_id: id(&c), viewer: ungranted }
    );
    let (rel, wrong_delegate) = (c.w.rel(), addr(12));
    assert_eq!(
        c.w.fail(patient, rel, R::revokeCall { delegate: wrong_delegate, viewer }),
        ContractError::NoSuchGrant {
            rel_id: RelationshipId::derive(patient, wrong_delegate),
            viewer
        }
    );
    assert!(c.can_view(viewer, 0), "the grant survived every refused revoke");
    assert_eq!(grant_of(&mut c, rel_id, viewer).pointers, 1);

    revoke(&mut c, patient, viewer);
    assert_eq!(
        revoke_fails(&mut c, patient, viewer),
        ContractError::NoSuchGrant { rel_id: id(&c), viewer },
        "revoking twice"
    );
}

// ----- setResearchConsent -------------------------------------------------------------

#[test]
fn research_consent_defaults_out_and_toggles() {
    let mut c = cast_in(Status::Accepted);
    let (patient, rel_id) = (c.patient, c.rel_id());
    let before = c.stored();
    assert!(!before.researchOptIn);

    for opt_in in [true, true, false] {
        let r = consent(&mut c, patient, opt_in);
        assert_eq!(r.event_names(), ["ResearchConsentChanged"]);
        assert_eq!(
            r.event::<R::ResearchConsentChanged>(),
            R::ResearchConsentChanged { relId: rel_id, optedIn: opt_in }
        );
        assert_eq!(c.stored(), R::Relationship { researchOptIn: opt_in, ..before }, "{opt_in}");
    }
}

#[test]
fn only_the_patient_sets_research_consent() {
    let mut c = cast_in(Status::Accepted);
    let (rel, patient, delegate) = (c.w.rel(), c.patient, c.delegate);
    let before = c.stored();
    let senders = [
        ("provider", c.provider),
        ("delegate", c.delegate),
        ("stranger", c.stranger),
        ("viewer", c.viewer),
    ];
    for (who, sender) in senders {
        let call = R::setResearchConsentCall { delegate, optIn: true };
        assert_eq!(
            c.w.fail(sender, rel, call),
            ContractError::UnknownRelationship { rel_id: RelationshipId::derive(sender, delegate) },
            "{who}"
        );
    }
    let unknown = addr(12);
    assert_eq!(
        c.w.fail(patient, rel, R::setResearchConsentCall { delegate: unknown, optIn: true }),
        ContractError::UnknownRelationship { rel_id: RelationshipId::derive(patient, unknown) }
    );
    assert_eq!(c.stored(), before);
}

#[test]
fn research_consent_is_open_while_new_pending_or_accepted() {
    for open in [Status::New, Status::UpdatePending, Status::Accepted] {
        let mut c = cast_in(open);
        let (patient, rel_id) = (c.patient, c.rel_id());
        let before = c.stored();
        for opt_in in [true, false] {
            let r = consent(&mut c, patient, opt_in);
            assert_eq!(
                r.event::<R::ResearchConsentChanged>(),
                R::ResearchConsentChanged { relId: rel_id, optedIn: opt_in },
                "{open:?} {opt_in}"
            );
            assert_eq!(
                c.stored(),
                R::Relationship { researchOptIn: opt_in, ..before },
                "{open:?} {opt_in}: only the flag changes"
            );
        }
    }
}

#[test]
fn research_consent_is_refused_once_the_relationship_is_closed() {
    type Setup = fn() -> Cast;
    // (label, setup, closed status, whether the patient had opted in before closing)
    let cases: [(&str, Setup, Status, bool); 5] = [
        ("rejected while new", || cast_in(Status::Rejected), Status::Rejected, false),
        (
            "rejected while update pending, opted in",
            || {
                let mut c = cast_in(Status::UpdatePending);
                let patient = c.patient;
                consent(&mut c, patient, true);
                decide(&mut c, patient, Decision::Reject);
                c
            },
            Status::Rejected,
            true,
        ),
        ("deleted while new", || cast_in(Status::Deleted), Status::Deleted, false),
        (
            "deleted while accepted, opted in",
            || {
                let mut c = cast_in(Status::Accepted);
                let patient = c.patient;
                consent(&mut c, patient, true);
                decide(&mut c, patient, Decision::Remove);
                c
            },
            Status::Deleted,
            true,
        ),
        (
            "deleted after rejection",
            || {
                let mut c = cast_in(Status::Rejected);
                let patient = c.patient;
                decide(&mut c, patient, Decision::Remove);
                c
            },
            Status::Deleted,
            false,
        ),
    ];
    for (label, setup, closed, opted_in) in cases {
        let mut c = setup();
        let (rel, patient, delegate, rel_id) = (c.w.rel(), c.patient, c.delegate, c.rel_id());
        let before = c.stored();
        let slot = c.w.evm.storage(rel, relationship_slot(rel_id));
        assert_eq!((before.status, before.researchOptIn), (closed.as_u8(), opted_in), "{label}");
        for opt_in in [true, false] {
            let block = c.w.evm.block_number();
            let call = R::setResearchConsentCall { delegate, optIn: opt_in };
            assert_eq!(
                c.w.fail(patient, rel, call),
                ContractError::RelationshipClosed { rel_id: id(&c), status: closed },
                "{label}: opt {}",
                if opt_in { "in" } else { "out" }
            );
            assert_eq!(c.w.evm.block_number(), block + 1, "{label}: the transaction was mined");
            assert_eq!(c.stored(), before, "{label}: {opt_in} changed the relationship");
            assert_eq!(c.w.evm.storage(rel, relationship_slot(rel_id)), slot, "{label}");
        }
    }
}

#[test]
fn research_consent_on_an_unknown_relationship_is_refused() {
    let mut c = Cast::new();
    let (rel, patient, delegate, rel_id) = (c.w.rel(), c.patient, c.delegate, c.rel_id());
    for opt_in in [true, false] {
        let call = R::setResearchConsentCall { delegate, optIn: opt_in };
        assert_eq!(
            c.w.fail(patient, rel, call),
            ContractError::UnknownRelationship { rel_id: id(&c) },
            "{opt_in}"
        );
    }
    assert_eq!(c.w.evm.storage(rel, relationship_slot(rel_id)), U256::ZERO, "nothing stored");
    assert!(!c.stored().researchOptIn);

    // Once the relationship exists, the same call goes through.
    c.create();
    consent(&mut c, patient, true);
    assert!(c.stored().researchOptIn);
}

// ----- storage, atomicity, messages ---------------------------------------------------

#[test]
fn a_relationship_and_a_grant_are_one_packed_slot_each() {
    let mut c = cast_in(Status::Accepted);
    let (rel, patient, viewer, rel_id) = (c.w.rel(), c.patient, c.viewer, c.rel_id());
    // Every field distinct, so a field in the wrong place shows.
    add(&mut c, 1);
    decide(&mut c, patient, Decision::Accept);
    add(&mut c, 2);
    update(&mut c, 0, 3);
    consent(&mut c, patient, true);
    let s = c.stored();
    assert_eq!(
        (s.status, s.pointerCount, s.acceptedCount, s.researchOptIn, s.updates),
        (UPDATE_PENDING, 3, 2, true, u24(3))
    );
    // provider | status | pointerCount | acceptedCount | researchOptIn | updatedAt | updates
    let word = U256::from_be_slice(s.provider.as_slice())
        | (U256::from(s.status) << 160)
        | (U256::from(s.pointerCount) << 168)
        | (U256::from(s.acceptedCount) << 176)
        | (U256::from(u8::from(s.researchOptIn)) << 184)
        | (U256::from(s.updatedAt.to::<u64>()) << 192)
        | (U256::from(s.updates.to::<u32>()) << 232);
    let stored = c.w.evm.storage(rel, relationship_slot(rel_id));
    assert_eq!(stored, word);
    let bits = |shift: usize, width: usize| {
        ((stored >> shift) & ((U256::from(1) << width) - U256::from(1))).to::<u64>()
    };
    assert_eq!(
        (bits(160, 8), bits(168, 8), bits(176, 8), bits(184, 8)),
        (2, 3, 2, 1),
        "status, pointerCount, acceptedCount, researchOptIn"
    );
    assert_eq!(bits(192, 40), s.updatedAt.to::<u64>(), "updatedAt");
    assert_eq!(stored >> 232, U256::from(3), "updates fills the top 24 bits");

    let now = c.w.evm.timestamp();
    grant_window(&mut c, viewer, 0b11, now + 50, now + 5000);
    let word = U256::from(0b11u8) | (U256::from(now + 50) << 128) | (U256::from(now + 5000) << 168);
    assert_eq!(c.w.evm.storage(rel, grant_slot(rel_id, viewer)), word);
}

/// Everything a refused call could have touched.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    relationship: R::Relationship,
    grant: R::Grant,
    other_grant: R::Grant,
    slots: [U256; 3],
    can_view: bool,
}

fn snapshot(c: &mut Cast, other: Address) -> Snapshot {
    let (rel, rel_id, viewer) = (c.w.rel(), c.rel_id(), c.viewer);
    Snapshot {
        relationship: c.stored(),
        grant: grant_of(c, rel_id, viewer),
        other_grant: grant_of(c, rel_id, other),
        slots: [
            c.w.evm.storage(rel, relationship_slot(rel_id)),
            c.w.evm.storage(rel, grant_slot(rel_id, viewer)),
            c.w.evm.storage(rel, grant_slot(rel_id, other)),
        ],
        can_view: c.can_view(viewer, 0),
    }
}

#[test]
fn a_refused_call_changes_nothing() {
    let mut c = cast_in(Status::Accepted);
    let (patient, delegate, provider, stranger, viewer) =
        (c.patient, c.delegate, c.provider, c.stranger, c.viewer);
    let other = addr(31);
    c.grant(viewer, 1, DECADE);
    let before = snapshot(&mut c, other);
    assert!(before.can_view);
    assert!(!before.slots[0].is_zero() && !before.slots[1].is_zero());
    assert!(before.slots[2].is_zero(), "the other viewer holds no grant");

    let far = c.w.evm.timestamp() + DECADE;
    let mut zero_bounty = add_call(&c, 1);
    zero_bounty.bounty = B256::ZERO;
    let cases: Vec<(&str, Address, Vec<u8>)> = vec![
        ("RelationshipExists", provider, create_call(&c).abi_encode()),
        ("NotProvider", stranger, create_call(&c).abi_encode()),
        (
            "DelegateIsPatient",
            provider,
            R::createCall {
                patient,
                delegate: patient,
                queryCommitment: query(0),
                dataHash: data(0),
            }
            .abi_encode(),
        ),
        ("ZeroHash", delegate, zero_bounty.abi_encode()),
        ("UnknownRelationship", stranger, add_call(&c, 1).abi_encode()),
        ("UnknownPointer", delegate, update_call(&c, 5, 1).abi_encode()),
        ("InvalidTransition", patient, R::acceptCall { delegate }.abi_encode()),
        ("InvalidTransition", patient, R::rejectCall { delegate }.abi_encode()),
        ("EmptyPointerSet", patient, grant_call(&c, other, 0, 0, far).abi_encode()),
        ("InvalidWindow", patient, grant_call(&c, other, 1, far, far).abi_encode()),
        ("ZeroAddress", patient, grant_call(&c, Address::ZERO, 1, 0, far).abi_encode()),
        ("NoSuchGrant", stranger, R::revokeCall { delegate, viewer }.abi_encode()),
        ("NoSuchGrant", patient, R::revokeCall { delegate, viewer: other }.abi_encode()),
        (
            "UnknownRelationship",
            stranger,
            R::setResearchConsentCall { delegate, optIn: true }.abi_encode(),
        ),
    ];
    for (name, from, calldata) in cases {
        let block = c.w.evm.block_number();
        let err = run(&mut c, from, calldata).map(|r| r.event_names()).expect_err(name);
        assert_eq!(err.name(), name);
        assert_eq!(c.w.evm.block_number(), block + 1, "{name}: the transaction was mined");
        assert_eq!(snapshot(&mut c, other), before, "{name} left a trace");
    }
}

#[test]
fn refusals_read_as_sentences_naming_the_relationship_and_viewer() {
    let mut c = cast_in(Status::Accepted);
    let (patient, delegate, stranger, viewer) = (c.patient, c.delegate, c.stranger, c.viewer);
    let (rel, provider) = (c.w.rel(), c.provider);
    let rel_id = id(&c);

    let call =
        R::createCall { patient, delegate: patient, queryCommitment: query(0), dataHash: data(0) };
    let err = c.w.fail(provider, rel, call);
    assert_eq!(
        err.to_string(),
        "the delegate must be an address of the provider's, not the patient's own address"
    );

    let err = decide_fails(&mut c, stranger, Decision::Accept);
    let theirs = RelationshipId::derive(stranger, delegate);
    assert_eq!(
        err.to_string(),
        format!(
            "relationship {theirs} does not exist for this caller: check the patient, the \
             delegate and the account that signs"
        )
    );
    assert!(err.to_string().contains(&format!("{:x}", theirs.0)), "full hex id: {err}");

    let err = decide_fails(&mut c, patient, Decision::Reject);
    assert_eq!(
        err.to_string(),
        format!("relationship {rel_id} cannot go from accepted to rejected")
    );

    let err = revoke_fails(&mut c, patient, viewer);
    assert_eq!(err.to_string(), format!("{viewer} holds no grant on relationship {rel_id}"));

    decide(&mut c, patient, Decision::Remove);
    let call = add_call(&c, 1);
    let err = c.w.fail(delegate, rel, call);
    assert_eq!(
        err.to_string(),
        format!("relationship {rel_id} is deleted and takes no more changes")
    );
    let err = c.w.fail(patient, rel, R::setResearchConsentCall { delegate, optIn: false });
    assert_eq!(
        err.to_string(),
        format!("relationship {rel_id} is deleted and takes no more changes")
    );
}
