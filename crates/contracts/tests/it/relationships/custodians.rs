//! `Relationships`: custodian keys. The owner key adds a spouse or a holder of power of
//! attorney with some of SEE, SHARE and DECIDE (`addKey`); a certified institution adds
//! a minor's parent until the handover date (`addCustodian`). Every act names its key.

use super::*;

const SEE_SHARE: u8 = Rights::SEE | Rights::SHARE;
const YEAR: u64 = 365 * 24 * 3600;

#[test]
fn a_custodian_with_see_and_share_grants_but_cannot_decide_or_manage_keys() {
    let mut c = cast_in(Status::UpdatePending);
    let (rel, patient, delegate, viewer, rel_id) =
        (c.w.rel(), c.patient, c.delegate, c.viewer, c.rel_id());
    let (spouse, sig) = accepted_key(&c, "spouse", patient, SEE_SHARE, 0);
    let spouse = {
        let call =
            R::addKeyCall { key: spouse.address(), rights: SEE_SHARE, until: u40(0), keySig: sig };
        let r = c.w.send(patient, rel, call);
        assert_eq!(
            r.event::<R::KeyChanged>(),
            R::KeyChanged {
                account: patient,
                key: spouse.address(),
                rights: SEE_SHARE,
                until: u40(0),
                actor: patient
            }
        );
        spouse.address()
    };
    assert_eq!(c.w.view(rel, R::actingForCall { key: spouse }).account, patient);

    let far = c.w.evm.timestamp() + DECADE;
    let r = c.w.send(spouse, rel, grant_call(&c, viewer, 1, 0, far));
    let granted = r.event::<R::ViewerGranted>();
    assert_eq!(
        (granted.relId, granted.actor),
        (rel_id, spouse),
        "the patient's relationship, by the spouse"
    );
    let r = c.w.send(spouse, rel, R::revokeCall { relId: rel_id, viewer });
    assert_eq!(r.event::<R::ViewerRevoked>().actor, spouse);

    let before = c.stored();
    for (name, calldata, needed) in patient_calls(&c, far) {
        if needed == Rights::SHARE {
            continue;
        }
        assert_eq!(
            run(&mut c, spouse, calldata).map(|r| r.event_names()).expect_err(name),
            ContractError::KeyNotAllowed { key: spouse, needed: Rights(needed) },
            "{name}"
        );
    }
    let (other, sig) = accepted_key(&c, "other", patient, Rights::SEE, 0);
    let call =
        R::addKeyCall { key: other.address(), rights: Rights::SEE, until: u40(0), keySig: sig };
    assert_eq!(
        c.w.fail(spouse, rel, call),
        ContractError::KeyNotAllowed { key: spouse, needed: Rights(Rights::OWNER) }
    );
    assert_eq!(c.stored(), before);
    assert_eq!(c.w.view(rel, R::relationshipIdCall { account: patient, delegate }), rel_id);
}

#[test]
fn a_custodian_with_decide_accepts_and_creates_in_the_patients_account_but_cannot_share() {
    let mut c = cast_in(Status::UpdatePending);
    let (rel, patient, delegate, rel_id, viewer) =
        (c.w.rel(), c.patient, c.delegate, c.rel_id(), c.viewer);
    let attorney = add_key(&mut c, "attorney", Rights::SEE | Rights::DECIDE, 0);
    let r = c.w.send(attorney, rel, R::acceptCall { delegate });
    assert_eq!(
        r.event::<R::StatusChanged>(),
        R::StatusChanged { relId: rel_id, status: ACCEPTED, actor: attorney }
    );
    let r = c.w.send(attorney, rel, R::createCall { delegate: addr(12), ..create_call(&c) });
    let created = r.event::<R::RelationshipCreated>();
    assert_eq!((created.account, created.actor), (patient, attorney));
    let key = c.w.key_of(attorney);
    assert_eq!(
        (key.account, key.rights),
        (patient, Rights::SEE | Rights::DECIDE),
        "slot unchanged"
    );
    let far = c.w.evm.timestamp() + DECADE;
    assert_eq!(
        c.w.fail(attorney, rel, grant_call(&c, viewer, 1, 0, far)),
        ContractError::KeyNotAllowed { key: attorney, needed: Rights(Rights::SHARE) }
    );
}

#[test]
fn remove_key_cuts_a_custodian_off_at_once() {
    let mut c = cast_in(Status::Accepted);
    let (rel, patient, viewer) = (c.w.rel(), c.patient, c.viewer);
    let spouse = add_key(&mut c, "spouse", SEE_SHARE, 0);
    let far = c.w.evm.timestamp() + DECADE;
    c.w.send(spouse, rel, grant_call(&c, viewer, 1, 0, far));

    let r = c.w.send(patient, rel, R::removeKeyCall { key: spouse });
    assert_eq!(
        r.event::<R::KeyChanged>(),
        R::KeyChanged { account: patient, key: spouse, rights: 0, until: u40(0), actor: patient }
    );
    assert_eq!(
        c.w.fail(spouse, rel, grant_call(&c, viewer, 1, 0, far)),
        ContractError::KeyNotAllowed { key: spouse, needed: Rights(Rights::SHARE) },
        "in the very next block"
    );
    assert_eq!(c.w.view(rel, R::actingForCall { key: spouse }).rights, 0);

    // Not a custodian of this account: removed already, the owner key, a stranger, a
    // custodian of another account.
    let other = c.stranger;
    c.w.send(other, rel, create_call(&c));
    let (theirs, sig) = accepted_key(&c, "theirs", other, Rights::SEE, 0);
    let call =
        R::addKeyCall { key: theirs.address(), rights: Rights::SEE, until: u40(0), keySig: sig };
    c.w.send(other, rel, call);
    for (label, key) in [
        ("removed", spouse),
        ("owner", patient),
        ("stranger", addr(77)),
        ("another's", theirs.address()),
    ] {
        assert_eq!(
            c.w.fail(patient, rel, R::removeKeyCall { key }),
            ContractError::NotAKeyOf { account: patient, key },
            "{label}"
        );
    }
    let attorney = add_key(&mut c, "attorney", Rights::SEE, 0);
    assert_eq!(
        c.w.fail(attorney, rel, R::removeKeyCall { key: attorney }),
        ContractError::KeyNotAllowed { key: attorney, needed: Rights(Rights::OWNER) }
    );
}

#[test]
fn add_key_refuses_owner_bits_a_past_end_a_wrong_signature_and_a_key_in_use() {
    let mut c = cast_in(Status::Accepted);
    let (rel, patient, stranger) = (c.w.rel(), c.patient, c.stranger);
    let key = signer("spouse");
    for rights in [0u8, Rights::OWNER, Rights::ALL, Rights::SEE | Rights::OWNER, 16, 0xff] {
        let sig = c.w.key_sig(&key, patient, rights, 0);
        let call = R::addKeyCall { key: key.address(), rights, until: u40(0), keySig: sig };
        assert_eq!(
            c.w.fail(patient, rel, call),
            ContractError::BadRights { rights: Rights(rights) },
            "{rights}"
        );
    }
    let now = c.w.evm.timestamp() + BLOCK;
    for until in [now - 1000, now] {
        let sig = c.w.key_sig(&key, patient, Rights::SEE, until);
        let call = R::addKeyCall {
            key: key.address(),
            rights: Rights::SEE,
            until: u40(until),
            keySig: sig,
        };
        assert_eq!(
            c.w.fail(patient, rel, call),
            ContractError::InvalidWindow { not_before: 0, expires_at: until },
            "until {until}"
        );
    }
    let wrong = [
        ("absent", Bytes::new()),
        ("other rights", c.w.key_sig(&key, patient, SEE_SHARE, 0)),
        ("another end", c.w.key_sig(&key, patient, Rights::SEE, now + YEAR)),
        ("another account", c.w.key_sig(&key, stranger, Rights::SEE, 0)),
        ("another key", c.w.key_sig(&signer("impostor"), patient, Rights::SEE, 0)),
    ];
    for (label, sig) in wrong {
        let call =
            R::addKeyCall { key: key.address(), rights: Rights::SEE, until: u40(0), keySig: sig };
        assert_eq!(
            c.w.fail(patient, rel, call),
            ContractError::BadKeySignature { key: key.address() },
            "{label}"
        );
    }
    // Keys that act already: the account itself, another account's owner or custodian.
    c.w.send(stranger, rel, create_call(&c));
    let theirs = {
        let (k, sig) = accepted_key(&c, "theirs", stranger, Rights::SEE, 0);
        let call =
            R::addKeyCall { key: k.address(), rights: Rights::SEE, until: u40(0), keySig: sig };
        c.w.send(stranger, rel, call);
        k.address()
    };
    let owner_sig = c.w.key_sig(&key, patient, Rights::SEE, 0);
    for (label, in_use) in
        [("the account", patient), ("another owner", stranger), ("another's custodian", theirs)]
    {
        let call = R::addKeyCall {
            key: in_use,
            rights: Rights::SEE,
            until: u40(0),
            keySig: owner_sig.clone(),
        };
        assert_eq!(
            c.w.fail(patient, rel, call),
            ContractError::KeyInUse { key: in_use },
            "{label}"
        );
    }
    assert_eq!(c.w.key_of(key.address()).account, Address::ZERO, "nothing was added");
}

#[test]
fn add_key_again_changes_a_custodians_rights_with_its_new_acceptance() {
    let mut c = cast_in(Status::UpdatePending);
    let (rel, patient, delegate) = (c.w.rel(), c.patient, c.delegate);
    let spouse = add_key(&mut c, "spouse", Rights::SEE, 0);
    assert_eq!(
        c.w.fail(spouse, rel, R::acceptCall { delegate }),
        ContractError::KeyNotAllowed { key: spouse, needed: Rights(Rights::DECIDE) }
    );
    add_key(&mut c, "spouse", Rights::SEE | Rights::DECIDE, 0);
    assert_eq!(c.w.key_of(spouse).rights, Rights::SEE | Rights::DECIDE);
    c.w.send(spouse, rel, R::acceptCall { delegate });
    assert_eq!(status(&mut c), ACCEPTED);
    assert_eq!(c.w.key_of(patient).rights, Rights::ALL);
}

#[test]
fn a_custodians_powers_end_at_its_end_date() {
    let mut c = cast_in(Status::Accepted);
    let (rel, viewer) = (c.w.rel(), c.viewer);
    let until = c.w.evm.timestamp() + 1000;
    let spouse = add_key(&mut c, "spouse", SEE_SHARE, until);
    let far = c.w.evm.timestamp() + DECADE;
    c.w.send(spouse, rel, grant_call(&c, viewer, 1, 0, far));
    c.w.evm.advance_time(until - c.w.evm.timestamp() - BLOCK - 1);
    c.w.send(spouse, rel, grant_call(&c, viewer, 1, 0, far));
    assert_eq!(c.w.evm.timestamp(), until - 1, "the last second");
    assert_eq!(
        c.w.fail(spouse, rel, grant_call(&c, viewer, 1, 0, far)),
        ContractError::KeyNotAllowed { key: spouse, needed: Rights(Rights::SHARE) },
        "ended at its date"
    );
    assert_eq!(c.w.view(rel, R::actingForCall { key: spouse }).rights, 0);
}

#[test]
fn an_institution_adds_a_minors_parent_until_the_handover_then_only_the_minor_acts() {
    let mut c = cast_in(Status::UpdatePending);
    let (rel, minor, delegate, institution, viewer) =
        (c.w.rel(), c.patient, c.delegate, c.institution, c.viewer);
    let handover = c.w.evm.timestamp() + YEAR;
    let rights = Rights::SEE | Rights::SHARE | Rights::DECIDE;
    let (parent, sig) = accepted_key(&c, "parent", minor, rights, handover);
    let call = R::addCustodianCall {
        account: minor,
        key: parent.address(),
        rights,
        handover: u40(handover),
        keySig: sig,
    };
    let r = c.w.send(institution, rel, call);
    let parent = parent.address();
    assert_eq!(
        r.event::<R::KeyChanged>(),
        R::KeyChanged {
            account: minor,
            key: parent,
            rights,
            until: u40(handover),
            actor: institution
        }
    );

    // Before the handover the parent acts for the minor.
    let r = c.w.send(parent, rel, R::acceptCall { delegate });
    assert_eq!(r.event::<R::StatusChanged>().actor, parent);
    let far = handover + DECADE;
    assert_eq!(
        c.w.send(parent, rel, grant_call(&c, viewer, 1, 0, far)).event::<R::ViewerGranted>().actor,
        parent
    );
    c.w.send(parent, rel, R::createCall { delegate: addr(12), ..create_call(&c) });

    // From the handover on, the parent is refused everything; the minor's key acts.
    c.w.evm.advance_time(handover - c.w.evm.timestamp());
    let calls = [
        (
            "create",
            R::createCall { delegate: addr(13), ..create_call(&c) }.abi_encode(),
            Rights::DECIDE,
        ),
        ("grant", grant_call(&c, viewer, 1, 0, far).abi_encode(), Rights::SHARE),
        ("remove", R::removeCall { delegate }.abi_encode(), Rights::DECIDE),
        (
            "setResearchConsent",
            R::setResearchConsentCall { delegate, optIn: true }.abi_encode(),
            Rights::DECIDE,
        ),
    ];
    for (name, calldata, needed) in calls {
        assert_eq!(
            run(&mut c, parent, calldata).map(|r| r.event_names()).expect_err(name),
            ContractError::KeyNotAllowed { key: parent, needed: Rights(needed) },
            "{name} after the handover"
        );
    }
    c.w.send(minor, rel, grant_call(&c, viewer, 1, 0, far));
    c.w.send(minor, rel, R::removeCall { delegate });
    assert_eq!(status(&mut c), DELETED);
}

#[test]
fn add_custodian_is_for_certified_institutions_with_a_future_handover_and_custodian_rights() {
    let mut c = cast_in(Status::Accepted);
    let (rel, reg, minor, institution) = (c.w.rel(), c.w.reg(), c.patient, c.institution);
    let parent = signer("parent");
    let handover = c.w.evm.timestamp() + YEAR;
    let call = |rights: u8, handover: u64, account: Address, sig: Bytes| R::addCustodianCall {
        account,
        key: parent.address(),
        rights,
        handover: u40(handover),
        keySig: sig,
    };
    let sig = c.w.key_sig(&parent, minor, SEE_SHARE, handover);
    for (who, caller) in [
        ("patient", minor),
        ("provider", c.provider),
        ("stranger", c.stranger),
        ("delegate", c.delegate),
    ] {
        assert_eq!(
            c.w.fail(caller, rel, call(SEE_SHARE, handover, minor, sig.clone())),
            ContractError::NotInstitution { caller },
            "{who}"
        );
    }
    assert!(c.w.view(reg, Registrar::isInstitutionCall(institution)));
    assert_eq!(
        c.w.fail(institution, rel, call(SEE_SHARE, handover, Address::ZERO, sig.clone())),
        ContractError::ZeroAddress
    );
    let now = c.w.evm.timestamp() + BLOCK;
    for past in [now - 1, now] {
        assert_eq!(
            c.w.fail(institution, rel, call(SEE_SHARE, past, minor, sig.clone())),
            ContractError::InvalidWindow { not_before: 0, expires_at: past },
            "handover {past}"
        );
    }
    for rights in [0u8, Rights::OWNER, Rights::ALL] {
        let sig = c.w.key_sig(&parent, minor, rights, handover);
        assert_eq!(
            c.w.fail(institution, rel, call(rights, handover, minor, sig)),
            ContractError::BadRights { rights: Rights(rights) },
            "{rights}"
        );
    }
    let other_rights = c.w.key_sig(&parent, minor, Rights::SEE, handover);
    assert_eq!(
        c.w.fail(institution, rel, call(SEE_SHARE, handover, minor, other_rights)),
        ContractError::BadKeySignature { key: parent.address() }
    );
    assert_eq!(c.w.key_of(parent.address()).account, Address::ZERO, "nothing was added");
    c.w.send(institution, rel, call(SEE_SHARE, handover, minor, sig));
    assert_eq!(c.w.key_of(parent.address()).until, u40(handover));
}
