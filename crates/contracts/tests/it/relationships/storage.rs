//! `Relationships`: storage, atomicity, messages.

use super::*;

#[test]
fn a_relationship_and_a_key_are_one_packed_slot_each() {
    let mut c = cast_in(Status::Accepted);
    let (rel, patient, rel_id) = (c.w.rel(), c.patient, c.rel_id());
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
    // status | pointerCount | acceptedCount | researchOptIn | updatedAt | updates
    let word = U256::from(s.status)
        | (U256::from(s.pointerCount) << 8)
        | (U256::from(s.acceptedCount) << 16)
        | (U256::from(u8::from(s.researchOptIn)) << 24)
        | (U256::from(s.updatedAt.to::<u64>()) << 32)
        | (U256::from(s.updates.to::<u32>()) << 72);
    let stored = c.w.evm.storage(rel, relationship_slot(rel_id));
    assert_eq!(stored, word);
    assert_eq!(stored >> 96, U256::ZERO, "no provider, nothing above the update count");

    // account | rights | until, for a custodian key with an end date.
    let until = c.w.evm.timestamp() + 1000;
    let spouse = add_key(&mut c, "spouse", Rights::SEE | Rights::SHARE, until);
    let word = U256::from_be_slice(patient.as_slice())
        | (U256::from(Rights::SEE | Rights::SHARE) << 160)
        | (U256::from(until) << 168);
    assert_eq!(c.w.evm.storage(rel, key_slot(spouse)), word);
}

/// Everything a refused call could have touched.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    relationship: R::Relationship,
    slots: [U256; 3],
    keys: [R::Key; 2],
}

fn snapshot(c: &mut Cast, custodian: Address) -> Snapshot {
    let (rel, rel_id, patient) = (c.w.rel(), c.rel_id(), c.patient);
    Snapshot {
        relationship: c.stored(),
        slots: [
            c.w.evm.storage(rel, relationship_slot(rel_id)),
            c.w.evm.storage(rel, key_slot(patient)),
            c.w.evm.storage(rel, key_slot(custodian)),
        ],
        keys: [c.w.key_of(patient), c.w.key_of(custodian)],
    }
}

#[test]
fn a_refused_call_changes_nothing() {
    let mut c = cast_in(Status::Accepted);
    let (patient, delegate, stranger) = (c.patient, c.delegate, c.stranger);
    let seer = add_key(&mut c, "seer", Rights::SEE, 0);
    let before = snapshot(&mut c, seer);
    assert!(before.slots.iter().all(|s| !s.is_zero()));

    let far = c.w.evm.timestamp() + DECADE;
    let mut zero_bounty = add_call(&c, 1);
    zero_bounty.bounty = B256::ZERO;
    let fresh = signer("fresh");
    let wrong_sig = c.w.key_sig(&fresh, patient, Rights::SEE, 0);
    let cases: Vec<(&str, Address, Vec<u8>)> = vec![
        ("RelationshipExists", patient, create_call(&c).abi_encode()),
        (
            "KeyNotAllowed",
            seer,
            R::createCall { delegate: addr(12), ..create_call(&c) }.abi_encode(),
        ),
        (
            "DelegateIsPatient",
            patient,
            R::createCall { delegate: patient, ..create_call(&c) }.abi_encode(),
        ),
        (
            "BadCiphertext",
            patient,
            R::createCall { identity: Bytes::new(), ..create_call(&c) }.abi_encode(),
        ),
        ("ZeroHash", delegate, zero_bounty.abi_encode()),
        ("UnknownRelationship", stranger, add_call(&c, 1).abi_encode()),
        ("UnknownPointer", delegate, update_call(&c, 5, 1).abi_encode()),
        ("InvalidTransition", patient, R::acceptCall { delegate }.abi_encode()),
        ("InvalidTransition", patient, R::rejectCall { delegate }.abi_encode()),
        ("KeyNotAllowed", seer, R::removeCall { delegate }.abi_encode()),
        ("EmptyPointerSet", patient, grant_call(&c, stranger, 0, 0, far).abi_encode()),
        ("InvalidWindow", patient, grant_call(&c, stranger, 1, far, far).abi_encode()),
        ("KeyNotAllowed", seer, grant_call(&c, stranger, 1, 0, far).abi_encode()),
        ("KeyNotAllowed", seer, R::setResearchConsentCall { delegate, optIn: true }.abi_encode()),
        (
            "BadKeySignature",
            patient,
            R::addKeyCall {
                key: fresh.address(),
                rights: Rights::SHARE,
                until: u40(0),
                keySig: wrong_sig.clone(),
            }
            .abi_encode(),
        ),
        (
            "BadRights",
            patient,
            R::addKeyCall {
                key: seer,
                rights: Rights::ALL,
                until: u40(0),
                keySig: wrong_sig.clone(),
            }
            .abi_encode(),
        ),
        ("NotAKeyOf", patient, R::removeKeyCall { key: stranger }.abi_encode()),
        ("KeyInUse", patient, R::rotateCall { newKey: seer, keySig: wrong_sig }.abi_encode()),
        ("KeyNotAllowed", seer, R::setGuardiansCall { commitment: h("guardians") }.abi_encode()),
        ("NoRecovery", patient, R::vetoRecoveryCall {}.abi_encode()),
    ];
    for (name, from, calldata) in cases {
        let block = c.w.evm.block_number();
        let err = run(&mut c, from, calldata).map(|r| r.event_names()).expect_err(name);
        assert_eq!(err.name(), name);
        assert_eq!(c.w.evm.block_number(), block + 1, "{name}: the transaction was mined");
        assert_eq!(snapshot(&mut c, seer), before, "{name} left a trace");
    }
}

#[test]
fn refusals_read_as_sentences_naming_the_relationship_and_the_key() {
    let mut c = cast_in(Status::Accepted);
    let (patient, delegate, stranger) = (c.patient, c.delegate, c.stranger);
    let rel = c.w.rel();
    let rel_id = id(&c);

    let call = R::createCall { delegate: patient, ..create_call(&c) };
    let err = c.w.fail(patient, rel, call);
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

    let seer = add_key(&mut c, "seer", Rights::SEE, 0);
    let err = c.w.fail(seer, rel, R::setResearchConsentCall { delegate, optIn: true });
    assert_eq!(err, ContractError::KeyNotAllowed { key: seer, needed: Rights(Rights::DECIDE) });
    assert!(err.to_string().starts_with(&format!("key {seer} may not do this")), "{err}");
    assert!(err.to_string().contains("(decide)"), "{err}");

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
