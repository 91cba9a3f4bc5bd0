//! `Relationships`: key rotation. An account is the address of the patient's first key
//! and never changes; `rotate` moves it to a new key, which must have signed its
//! acceptance, and retires the old key from that block on.

use super::*;

#[test]
fn a_rotation_retires_the_old_key_at_once_for_every_patient_call() {
    let mut c = cast_in(Status::UpdatePending);
    let (rel, patient) = (c.w.rel(), c.patient);
    let before = c.stored();
    let (new, sig) = accepted_key(&c, "new", patient, Rights::ALL, 0);
    let r = c.w.send(patient, rel, R::rotateCall { newKey: new.address(), keySig: sig });
    assert_eq!(r.event_names(), ["KeyRotated"]);
    assert_eq!(
        r.event::<R::KeyRotated>(),
        R::KeyRotated { account: patient, oldKey: patient, newKey: new.address(), actor: patient }
    );
    let old = c.w.key_of(patient);
    assert_eq!((old.account, old.rights), (patient, 0), "the old key is retired");
    let fresh = c.w.key_of(new.address());
    assert_eq!((fresh.account, fresh.rights, fresh.until), (patient, Rights::ALL, u40(0)));
    assert_eq!(c.w.view(rel, R::actingForCall { key: patient }).rights, 0);

    let far = c.w.evm.timestamp() + DECADE;
    for (name, calldata, needed) in patient_calls(&c, far) {
        assert_eq!(
            run(&mut c, patient, calldata).map(|r| r.event_names()).expect_err(name),
            ContractError::KeyNotAllowed { key: patient, needed: Rights(needed) },
            "{name} with the old key"
        );
    }
    let (other, sig) = accepted_key(&c, "other", patient, Rights::ALL, 0);
    assert_eq!(
        c.w.fail(patient, rel, R::rotateCall { newKey: other.address(), keySig: sig }),
        ContractError::KeyNotAllowed { key: patient, needed: Rights(Rights::OWNER) },
        "the old key cannot rotate the account back"
    );
    assert_eq!(c.stored(), before, "the relationship is untouched");
}

#[test]
fn the_new_key_acts_for_the_same_account_and_finds_every_relationship_where_it_was() {
    let mut c = cast_in(Status::UpdatePending);
    let (rel, patient, delegate, rel_id, viewer) =
        (c.w.rel(), c.patient, c.delegate, c.rel_id(), c.viewer);
    let second = addr(12);
    c.w.send(patient, rel, R::createCall { delegate: second, ..create_call(&c) });
    let (first_before, second_id) = (c.stored(), RelationshipId::derive(patient, second).0);
    let new = rotate(&mut c, patient, "new");
    assert_eq!(c.stored(), first_before, "status and counts carried");

    let r = c.w.send(new, rel, R::acceptCall { delegate });
    assert_eq!(
        r.event::<R::StatusChanged>(),
        R::StatusChanged { relId: rel_id, status: ACCEPTED, actor: new }
    );
    let far = c.w.evm.timestamp() + DECADE;
    let r = c.w.send(new, rel, grant_call(&c, viewer, 1, 0, far));
    let granted = r.event::<R::ViewerGranted>();
    assert_eq!((granted.relId, granted.actor), (rel_id, new), "the same relationship id");
    let r = c.w.send(new, rel, R::setResearchConsentCall { delegate: second, optIn: true });
    assert_eq!(r.event::<R::ResearchConsentChanged>().relId, second_id);
    let r = c.w.send(new, rel, R::createCall { delegate: addr(13), ..create_call(&c) });
    let created = r.event::<R::RelationshipCreated>();
    assert_eq!((created.account, created.actor), (patient, new), "created under the account");
    let key = c.w.key_of(new);
    assert_eq!((key.account, key.rights), (patient, Rights::ALL), "creating left the slot");
    let r = c.w.send(new, rel, R::setBreakGlassCall { allowed: false });
    assert_eq!(
        r.event::<R::BreakGlassSettingChanged>(),
        R::BreakGlassSettingChanged { account: patient, allowed: false, actor: new }
    );
    assert!(c.w.view(rel, R::breakGlassRefusedCall(patient)));
    // The delegate keeps acting on the account, unaware of the rotation.
    add(&mut c, 2);
    assert_eq!(counts(&mut c), (UPDATE_PENDING, 3, 2));
}

#[test]
fn a_second_rotation_moves_on_from_the_rotated_key() {
    let mut c = cast_in(Status::Accepted);
    let (rel, patient) = (c.w.rel(), c.patient);
    let first = rotate(&mut c, patient, "first");
    let second = rotate(&mut c, first, "second");
    for (key, rights) in [(patient, 0), (first, 0), (second, Rights::ALL)] {
        let k = c.w.key_of(key);
        assert_eq!((k.account, k.rights), (patient, rights), "{key}");
    }
    assert_eq!(
        c.w.fail(first, rel, R::acceptCall { delegate: c.delegate }),
        ContractError::KeyNotAllowed { key: first, needed: Rights(Rights::DECIDE) }
    );
    c.w.send(second, rel, R::removeCall { delegate: c.delegate });
    assert_eq!(status(&mut c), DELETED);
}

#[test]
fn a_rotation_costs_the_same_whatever_the_number_of_relationships() {
    let mut gas = Vec::new();
    for relationships in [1u64, 6] {
        let mut c = cast_in(Status::Accepted);
        let (rel, patient) = (c.w.rel(), c.patient);
        for n in 1..relationships {
            c.w.send(patient, rel, R::createCall { delegate: addr(200 + n), ..create_call(&c) });
        }
        let (new, sig) = accepted_key(&c, "new", patient, Rights::ALL, 0);
        gas.push(
            c.w.send(patient, rel, R::rotateCall { newKey: new.address(), keySig: sig }).gas_used,
        );
    }
    assert_eq!(gas[0], gas[1], "nothing per relationship moves");
    assert!(gas[0] <= 60_000, "rotate costs {} gas, above the 60,000 target", gas[0]);
}

#[test]
fn a_rotation_refuses_a_key_already_in_use() {
    let mut c = cast_in(Status::Accepted);
    let (rel, patient) = (c.w.rel(), c.patient);
    let custodian = add_key(&mut c, "custodian", Rights::SEE, 0);
    // Another patient whose first creation opened its own slot.
    let other = signer("other patient");
    c.w.send(other.address(), rel, create_call(&c));
    let cases = [
        ("the account's own address", patient),
        ("a custodian of this account", custodian),
        ("another account's key", other.address()),
    ];
    for (label, key) in cases {
        // Checked before the signature: no signature could make it right.
        let sig = c.w.key_sig(&other, patient, Rights::ALL, 0);
        assert_eq!(
            c.w.fail(patient, rel, R::rotateCall { newKey: key, keySig: sig }),
            ContractError::KeyInUse { key },
            "{label}"
        );
    }
    // A key retired by a rotation never comes back.
    let new = rotate(&mut c, patient, "new");
    let retired = signer("retired");
    let retired_key = rotate(&mut c, new, "retired");
    assert_eq!(retired_key, retired.address());
    let newer = rotate(&mut c, retired_key, "newer");
    let sig = c.w.key_sig(&retired, patient, Rights::ALL, 0);
    assert_eq!(
        c.w.fail(newer, rel, R::rotateCall { newKey: retired_key, keySig: sig }),
        ContractError::KeyInUse { key: retired_key }
    );
    assert_eq!(
        c.w.fail(newer, rel, R::rotateCall { newKey: Address::ZERO, keySig: Bytes::new() }),
        ContractError::ZeroAddress
    );
    assert_eq!(c.w.key_of(newer).rights, Rights::ALL, "nothing moved");
}

#[test]
fn a_rotation_needs_the_new_keys_own_acceptance_of_exactly_this_move() {
    let mut c = cast_in(Status::Accepted);
    let (rel, patient) = (c.w.rel(), c.patient);
    let new = signer("new");
    let impostor = signer("impostor");
    let good = c.w.key_sig(&new, patient, Rights::ALL, 0);
    let mut malformed = good.to_vec();
    malformed.pop();
    let mut flipped = good.to_vec();
    flipped[10] ^= 1;
    let cases: [(&str, Bytes); 7] = [
        ("absent", Bytes::new()),
        ("64 bytes", malformed.into()),
        ("altered", flipped.into()),
        ("by another key", c.w.key_sig(&impostor, patient, Rights::ALL, 0)),
        ("for other rights", c.w.key_sig(&new, patient, Rights::SEE, 0)),
        ("with an end date", c.w.key_sig(&new, patient, Rights::ALL, 4_000_000_000)),
        ("for another account", c.w.key_sig(&new, c.stranger, Rights::ALL, 0)),
    ];
    for (label, sig) in cases {
        assert_eq!(
            c.w.fail(patient, rel, R::rotateCall { newKey: new.address(), keySig: sig }),
            ContractError::BadKeySignature { key: new.address() },
            "{label}"
        );
    }
    assert_eq!(c.w.key_of(new.address()).account, Address::ZERO, "nothing moved");
    c.w.send(patient, rel, R::rotateCall { newKey: new.address(), keySig: good });
    assert_eq!(c.w.key_of(new.address()).account, patient);
}

#[test]
fn only_the_owner_key_rotates_its_own_account() {
    let mut c = cast_in(Status::Accepted);
    let (rel, patient, stranger) = (c.w.rel(), c.patient, c.stranger);
    let custodian = add_key(&mut c, "custodian", Rights::SEE | Rights::SHARE | Rights::DECIDE, 0);
    let (new, sig) = accepted_key(&c, "new", patient, Rights::ALL, 0);
    assert_eq!(
        c.w.fail(custodian, rel, R::rotateCall { newKey: new.address(), keySig: sig.clone() }),
        ContractError::KeyNotAllowed { key: custodian, needed: Rights(Rights::OWNER) }
    );
    // A stranger's signature names the patient's account, the stranger's own is another.
    assert_eq!(
        c.w.fail(stranger, rel, R::rotateCall { newKey: new.address(), keySig: sig }),
        ContractError::BadKeySignature { key: new.address() }
    );
    assert_eq!(c.w.key_of(patient).rights, Rights::ALL, "the patient's key still acts");
}
