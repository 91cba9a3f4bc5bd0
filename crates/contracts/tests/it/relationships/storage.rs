//! `Relationships`: storage, atomicity, messages.

use super::*;

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
