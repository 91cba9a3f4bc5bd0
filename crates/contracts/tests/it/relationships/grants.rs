//! `Relationships`: grant / revoke. Both are events only: the consent index applies a
//! grant while the relationship is accepted, and a revocation when its actor was then a
//! key of the account with SHARE (rules tested with the index, not here).

use super::*;

/// The patient's relationship slot and key slot: what a grant or a revoke must not touch.
fn slots(c: &mut Cast) -> [U256; 2] {
    let (rel, rel_id, patient) = (c.w.rel(), c.rel_id(), c.patient);
    [c.w.evm.storage(rel, relationship_slot(rel_id)), c.w.evm.storage(rel, key_slot(patient))]
}

#[test]
fn grant_emits_viewer_granted_with_its_actor_and_sealed_key_and_stores_nothing() {
    let mut c = cast_in(Status::Accepted);
    let (rel, patient, viewer, rel_id) = (c.w.rel(), c.patient, c.viewer, c.rel_id());
    let (relationship, before) = (c.stored(), slots(&mut c));
    let now = c.w.evm.timestamp();
    let (not_before, expires_at) = (now + 100, now + 1000);
    let sealed: Bytes = vec![0x5e; 80].into();

    let call = R::grantCall {
        sealedKey: sealed.clone(),
        ..grant_call(&c, viewer, 0b101, not_before, expires_at)
    };
    let r = c.w.send(patient, rel, call);
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
            actor: patient,
            sealedKey: sealed,
        }
    );
    assert_eq!(r.logs[0].topics()[1], rel_id, "the relationship is indexed");
    assert_eq!(r.logs[0].topics()[2], viewer.into_word(), "the viewer is indexed");
    assert_eq!(c.stored(), relationship, "a grant does not touch the relationship");
    assert_eq!(slots(&mut c), before);
    assert!(r.gas_used < 40_000, "no storage write: {} gas", r.gas_used);
}

#[test]
fn grant_refuses_a_zero_viewer_an_empty_set_bad_windows_and_a_long_sealed_key() {
    #[derive(Debug, Clone, Copy)]
    enum Expect {
        ZeroAddress,
        EmptyPointerSet,
        InvalidWindow,
        BadCiphertext,
    }
    let mut c = cast_in(Status::Accepted);
    let (rel, patient, viewer) = (c.w.rel(), c.patient, c.viewer);
    // Offsets are relative to the block the grant runs in; `None` is notBefore = 0.
    let cases = [
        ("zero viewer", Address::ZERO, 1, None, 1000, 0, Expect::ZeroAddress),
        ("zero viewer checked first", Address::ZERO, 0, Some(5), 1, 97, Expect::ZeroAddress),
        ("empty pointer set", viewer, 0, None, 1000, 0, Expect::EmptyPointerSet),
        ("empty set checked before window", viewer, 0, Some(5), 1, 97, Expect::EmptyPointerSet),
        ("ends when it starts", viewer, 1, Some(500), 500, 0, Expect::InvalidWindow),
        ("ends before it starts", viewer, 1, Some(500), 400, 0, Expect::InvalidWindow),
        ("already over", viewer, 1, None, -1000, 0, Expect::InvalidWindow),
        ("ends at the block's own time", viewer, 1, None, 0, 0, Expect::InvalidWindow),
        ("window checked before the key", viewer, 1, None, 0, 97, Expect::InvalidWindow),
        ("a sealed key of 97 bytes", viewer, 1, None, 1000, 97, Expect::BadCiphertext),
        ("a sealed key of 200 bytes", viewer, 1, None, 1000, 200, Expect::BadCiphertext),
    ];
    for (label, who, pointers, start, end, sealed_len, expect) in cases {
        let tx_time = c.w.evm.timestamp() + BLOCK;
        let at = |off: i64| tx_time.checked_add_signed(off).expect("in range");
        let (not_before, expires_at) = (start.map_or(0, at), at(end));
        let call = R::grantCall {
            sealedKey: vec![1u8; sealed_len].into(),
            ..grant_call(&c, who, pointers, not_before, expires_at)
        };
        let expected = match expect {
            Expect::ZeroAddress => ContractError::ZeroAddress,
            Expect::EmptyPointerSet => ContractError::EmptyPointerSet,
            Expect::InvalidWindow => ContractError::InvalidWindow { not_before, expires_at },
            Expect::BadCiphertext => {
                ContractError::BadCiphertext { length: U256::from(sealed_len) }
            }
        };
        assert_eq!(c.w.fail(patient, rel, call), expected, "{label}");
    }
    // At the limits: an empty sealed key (a viewer without an encryption key) and 96 bytes.
    for len in [0, 96] {
        let far = c.w.evm.timestamp() + DECADE;
        let call =
            R::grantCall { sealedKey: vec![2u8; len].into(), ..grant_call(&c, viewer, 1, 0, far) };
        let r = c.w.send(patient, rel, call);
        assert_eq!(r.event::<R::ViewerGranted>().sealedKey.len(), len);
    }
}

#[test]
fn a_grant_must_outlast_the_block_it_is_made_in() {
    let mut c = cast_in(Status::Accepted);
    let (rel, patient, viewer) = (c.w.rel(), c.patient, c.viewer);

    let tx_time = c.w.evm.timestamp() + BLOCK;
    let call = grant_call(&c, viewer, 1, 0, tx_time);
    assert_eq!(
        c.w.fail(patient, rel, call),
        ContractError::InvalidWindow { not_before: 0, expires_at: tx_time }
    );

    // One second past the block's time is a valid (if useless) window.
    let tx_time = c.w.evm.timestamp() + BLOCK;
    let r = grant_window(&mut c, viewer, 1, 0, tx_time + 1);
    assert_eq!(r.event::<R::ViewerGranted>().expiresAt, u40(tx_time + 1));

    // A grant without expiry.
    let forever = (1u64 << 40) - 1;
    let r = grant_window(&mut c, viewer, 1, 0, forever);
    assert_eq!(r.event::<R::ViewerGranted>().expiresAt, u40(forever));
}

#[test]
fn grants_written_by_anyone_but_the_patient_land_under_their_own_account() {
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
        let event = r.event::<R::ViewerGranted>();
        assert_eq!(event.relId, RelationshipId::derive(writer, delegate).0, "{who}: its own id");
        assert_ne!(event.relId, rel_id, "{who}");
        assert_eq!(event.actor, writer, "{who}");
    }
}

#[test]
fn a_grant_is_recorded_whatever_the_relationships_status_and_applied_by_the_index() {
    // The contract does not read the relationship: the index applies a grant only while
    // the relationship is accepted (or pending), so a grant made before a creation or
    // after a rejection is an event that opens nothing.
    for status in [Status::UpdatePending, Status::Rejected, Status::Deleted] {
        let mut c = cast_in(status);
        let (viewer, rel_id) = (c.viewer, c.rel_id());
        let before = c.stored();
        let r = c.grant(viewer, 1, DECADE);
        assert_eq!(r.event::<R::ViewerGranted>().relId, rel_id, "{status:?}");
        assert_eq!(c.stored(), before, "{status:?}");
    }
    let mut c = Cast::new();
    let (viewer, rel_id) = (c.viewer, c.rel_id());
    let r = c.grant(viewer, 1, DECADE);
    assert_eq!(r.event::<R::ViewerGranted>().relId, rel_id);
    assert_eq!(status(&mut c), NONE, "a grant creates no relationship");
}

#[test]
fn revoke_is_an_event_naming_its_actor_and_stores_nothing() {
    let mut c = cast_in(Status::Accepted);
    let (patient, viewer, rel_id) = (c.patient, c.viewer, c.rel_id());
    c.grant(viewer, 1, DECADE);
    let before = slots(&mut c);

    let r = revoke(&mut c, patient, viewer);
    assert!(r.output.is_empty());
    assert_eq!(r.event_names(), ["ViewerRevoked"]);
    assert_eq!(
        r.event::<R::ViewerRevoked>(),
        R::ViewerRevoked { relId: rel_id, viewer, actor: patient }
    );
    assert_eq!(r.logs[0].topics()[2], viewer.into_word(), "the viewer is indexed");
    assert!(r.gas_used <= 25_000, "revoke costs {} gas, above the 25,000 target", r.gas_used);
    assert_eq!(slots(&mut c), before);

    // Revoking twice, or a viewer never granted, is the same event again.
    let r = revoke(&mut c, patient, viewer);
    assert_eq!(r.event::<R::ViewerRevoked>().actor, patient);
    let never = addr(31);
    assert_eq!(revoke(&mut c, patient, never).event::<R::ViewerRevoked>().viewer, never);
}

#[test]
fn a_revoke_by_anyone_is_recorded_with_that_actor_for_the_index_to_ignore() {
    let mut c = cast_in(Status::Accepted);
    let (viewer, rel_id) = (c.viewer, c.rel_id());
    c.grant(viewer, 1, DECADE);
    let before = (c.stored(), slots(&mut c));
    let senders = [
        ("stranger", c.stranger),
        ("provider", c.provider),
        ("delegate", c.delegate),
        ("the viewer itself", c.viewer),
    ];
    for (who, sender) in senders {
        let r = revoke(&mut c, sender, viewer);
        assert_eq!(
            r.event::<R::ViewerRevoked>(),
            R::ViewerRevoked { relId: rel_id, viewer, actor: sender },
            "{who}: the actor is the sender, which is no key of the account"
        );
        assert_eq!((c.stored(), slots(&mut c)), before, "{who}");
    }
}
