//! `Relationships`: addPointer / updatePointer.

use super::*;

#[test]
fn add_pointer_while_an_update_is_pending_records_the_pointer_and_its_bounty() {
    let mut c = cast_in(Status::UpdatePending);
    let miner = addr(100);
    c.w.evm.set_coinbase(miner);
    let before = c.stored();
    let r = add(&mut c, 2);
    let at = c.w.evm.timestamp();
    let rel_id = c.rel_id();

    assert_eq!(R::addPointerCall::abi_decode_returns(&r.output).expect("uint256"), U256::from(2));
    assert_eq!(r.event_names(), ["BountyPosted", "PointerAdded"], "already pending");
    assert_eq!(
        r.event::<R::BountyPosted>(),
        R::BountyPosted { relId: rel_id, owner: miner, seq: U256::from(1), commitment: bounty(2) }
    );
    assert_eq!(
        r.event::<R::PointerAdded>(),
        R::PointerAdded {
            relId: rel_id,
            pointerId: U256::from(2),
            queryCommitment: query(2),
            dataHash: data(2),
        }
    );
    assert_eq!(
        c.stored(),
        R::Relationship {
            status: UPDATE_PENDING,
            pointerCount: 3,
            updatedAt: u40(at),
            updates: u24(2),
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
        R::StatusChanged { relId: rel_id, status: UPDATE_PENDING, actor: c.delegate }
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
    let mut c = cast_in(Status::UpdatePending);
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
        R::StatusChanged { relId: rel_id, status: UPDATE_PENDING, actor: c.delegate }
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
    let mut c = cast_in(Status::Accepted);
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
        account: other,
        queryCommitment: query(1),
        dataHash: data(1),
        bounty: bounty(1),
    };
    assert_eq!(c.w.fail(delegate, rel, call), expected);
    let call = R::updatePointerCall {
        account: other,
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
        let call =
            R::addPointerCall { account: patient, queryCommitment: q, dataHash: d, bounty: b };
        assert_eq!(c.w.fail(delegate, rel, call), ContractError::ZeroHash, "add: {label}");
    }
    let updates = [("zero data hash", z, bounty(1)), ("zero bounty", data(1), z)];
    for (label, d, b) in updates {
        let call = R::updatePointerCall {
            account: patient,
            pointerId: U256::ZERO,
            dataHash: d,
            bounty: b,
        };
        assert_eq!(c.w.fail(delegate, rel, call), ContractError::ZeroHash, "update: {label}");
    }
    assert_eq!(c.stored(), before, "still accepted, no update counted");
}

#[test]
fn update_pointer_refuses_pointers_that_do_not_exist() {
    let mut c = cast_in(Status::UpdatePending);
    let (rel, delegate, patient) = (c.w.rel(), c.delegate, c.patient);
    let before = c.stored();
    for pointer in [U256::from(2), U256::from(127), U256::from(128), U256::MAX] {
        let call = R::updatePointerCall {
            account: patient,
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
        ("rejected while update pending", || cast_in(Status::Rejected), Status::Rejected),
        (
            "rejected after a second update",
            || {
                let mut c = cast_in(Status::UpdatePending);
                update(&mut c, 0, 2);
                let patient = c.patient;
                decide(&mut c, patient, Decision::Reject);
                c
            },
            Status::Rejected,
        ),
        ("deleted while accepted", || cast_in(Status::Deleted), Status::Deleted),
        (
            "deleted while update pending",
            || {
                let mut c = cast_in(Status::UpdatePending);
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
    let mut c = cast_in(Status::Accepted);
    let (rel, delegate) = (c.w.rel(), c.delegate);
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
    assert_eq!(
        (stored.pointerCount, stored.updates, stored.status),
        (128, u24(127), UPDATE_PENDING)
    );

    let call = add_call(&c, 128);
    assert_eq!(c.w.fail(delegate, rel, call), ContractError::TooManyPointers { rel_id: id(&c) });
    assert_eq!(c.stored(), stored);

    // The first addition also moves the accepted relationship to UpdatePending.
    let gas = &gas[1..];
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
    assert_eq!(counts(&mut c), (ACCEPTED, 128, 128), "every pointer accepted");
}
