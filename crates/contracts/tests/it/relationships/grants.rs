//! `Relationships`: grant / revoke / canView / grantOf.

use super::*;

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
