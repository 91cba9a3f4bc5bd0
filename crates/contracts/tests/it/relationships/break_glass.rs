//! `Relationships`: break-glass, by account. A member of an emergency group opens an
//! account's emergency set for four hours unless a key of the account with DECIDE
//! refused break-glass.

use super::*;

/// The institution's emergency group (id 1) with `clinician`, and a plain group (id 2)
/// with `clinician` too.
fn groups(c: &mut Cast, clinician: Address) -> (U256, U256) {
    let (reg, institution) = (c.w.reg(), c.institution);
    for (name, emergency) in [("Emergency departments", true), ("Cardiology", false)] {
        c.w.send(institution, reg, Registrar::createGroupCall { name: name.into(), emergency });
    }
    for id in [1u64, 2] {
        c.w.send(
            institution,
            reg,
            Registrar::addMemberCall { id: U256::from(id), member: clinician },
        );
    }
    (U256::from(1), U256::from(2))
}

fn break_glass(account: Address, group: U256) -> R::breakGlassCall {
    R::breakGlassCall { account, group, reason: 1 }
}

#[test]
fn an_emergency_clinician_opens_an_accounts_emergency_set_for_four_hours() {
    let mut c = cast_in(Status::Accepted);
    let (rel, patient, clinician) = (c.w.rel(), c.patient, addr(50));
    let (er, _) = groups(&mut c, clinician);
    let before = c.stored();
    let r = c.w.send(clinician, rel, R::breakGlassCall { account: patient, group: er, reason: 2 });
    let expires_at = c.w.evm.timestamp() + 4 * 3600;
    assert_eq!(R::breakGlassCall::abi_decode_returns(&r.output).expect("uint40"), u40(expires_at));
    assert_eq!(
        r.event::<R::BreakGlass>(),
        R::BreakGlass {
            account: patient,
            clinician,
            group: er,
            reason: 2,
            expiresAt: u40(expires_at)
        }
    );
    assert_eq!(r.logs[0].topics()[1], patient.into_word(), "the patient's app finds it by topic");
    assert!(r.gas_used <= 60_000, "break-glass costs {} gas", r.gas_used);
    assert_eq!(c.stored(), before, "nothing stored");
}

#[test]
fn break_glass_is_for_members_of_an_emergency_group_with_a_reason() {
    let mut c = cast_in(Status::Accepted);
    let (rel, patient, clinician) = (c.w.rel(), c.patient, addr(50));
    let (er, cardiology) = groups(&mut c, clinician);
    let others = [
        ("patient", patient),
        ("provider", c.provider),
        ("institution", c.institution),
        ("stranger", c.stranger),
    ];
    for (who, caller) in others {
        assert_eq!(
            c.w.fail(caller, rel, break_glass(patient, er)),
            ContractError::NotEmergencyMember { group: er, caller },
            "{who}"
        );
    }
    for (label, group) in [("a plain group", cardiology), ("an unknown group", U256::from(9))] {
        assert_eq!(
            c.w.fail(clinician, rel, break_glass(patient, group)),
            ContractError::NotEmergencyMember { group, caller: clinician },
            "{label}"
        );
    }
    let no_reason = R::breakGlassCall { account: patient, group: er, reason: 0 };
    assert_eq!(c.w.fail(clinician, rel, no_reason), ContractError::NoReason);
    assert_eq!(
        c.w.fail(clinician, rel, break_glass(Address::ZERO, er)),
        ContractError::ZeroAddress
    );

    // Leaving the group ends the right at once.
    let (reg, institution) = (c.w.reg(), c.institution);
    c.w.send(clinician, rel, break_glass(patient, er));
    c.w.send(institution, reg, Registrar::removeMemberCall { id: er, member: clinician });
    assert_eq!(
        c.w.fail(clinician, rel, break_glass(patient, er)),
        ContractError::NotEmergencyMember { group: er, caller: clinician }
    );
}

#[test]
fn a_key_with_decide_refuses_break_glass_for_the_account_and_the_refusal_survives_rotation() {
    let mut c = cast_in(Status::Accepted);
    let (rel, patient, clinician) = (c.w.rel(), c.patient, addr(50));
    let (er, _) = groups(&mut c, clinician);
    let attorney = add_key(&mut c, "attorney", Rights::SEE | Rights::DECIDE, 0);
    let spouse = add_key(&mut c, "spouse", Rights::SEE | Rights::SHARE, 0);
    assert_eq!(
        c.w.fail(spouse, rel, R::setBreakGlassCall { allowed: false }),
        ContractError::KeyNotAllowed { key: spouse, needed: Rights(Rights::DECIDE) }
    );

    let r = c.w.send(attorney, rel, R::setBreakGlassCall { allowed: false });
    assert_eq!(
        r.event::<R::BreakGlassSettingChanged>(),
        R::BreakGlassSettingChanged { account: patient, allowed: false, actor: attorney }
    );
    assert!(c.w.view(rel, R::breakGlassRefusedCall(patient)));
    assert!(!c.w.view(rel, R::breakGlassRefusedCall(attorney)), "set on the account, not the key");
    assert_eq!(
        c.w.fail(clinician, rel, break_glass(patient, er)),
        ContractError::BreakGlassRefused { patient }
    );

    // After a rotation the refusal stands, the old key cannot lift it, the new key can.
    let new = rotate(&mut c, patient, "new");
    assert_eq!(
        c.w.fail(clinician, rel, break_glass(patient, er)),
        ContractError::BreakGlassRefused { patient }
    );
    assert_eq!(
        c.w.fail(patient, rel, R::setBreakGlassCall { allowed: true }),
        ContractError::KeyNotAllowed { key: patient, needed: Rights(Rights::DECIDE) }
    );
    c.w.send(new, rel, R::setBreakGlassCall { allowed: true });
    let r = c.w.send(clinician, rel, break_glass(patient, er));
    assert_eq!(r.event::<R::BreakGlass>().account, patient);
}
