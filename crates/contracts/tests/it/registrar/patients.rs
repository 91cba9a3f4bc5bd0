//! `Registrar`: registerPatient.

use super::*;

#[test]
fn register_patient_maps_the_identity_with_role_and_time() {
    let mut w = world(2);
    let (patient, identity) = (addr(20), h("alice"));
    let r = register_patient(&mut w, addr(2), identity, patient);
    let now = w.evm.timestamp();
    assert_eq!(resolve(&mut w, identity), (patient, PATIENT, u40(now)));
    assert_eq!(r.event_names(), vec!["IdentityRegistered"]);
    let e: Registrar::IdentityRegistered = r.event();
    assert_eq!(
        (e.identity, e.account, e.role, e.institution),
        (identity, patient, PATIENT, addr(2)),
        "the event names the registering institution"
    );
    // A patient has no provider entry.
    assert!(!is_provider(&mut w, patient));
}

#[test]
fn registered_at_is_the_block_time_of_each_registration() {
    let mut w = world(1);
    register_patient(&mut w, addr(1), h("first"), addr(20));
    let first = w.evm.timestamp();
    w.evm.advance_time(86_400);
    register_patient(&mut w, addr(1), h("second"), addr(21));
    let second = w.evm.timestamp();
    assert!(second >= first + 86_400);
    assert_eq!(resolve(&mut w, h("first")).2, u40(first));
    assert_eq!(resolve(&mut w, h("second")).2, u40(second));
}

#[test]
fn unknown_identity_resolves_to_nothing() {
    let mut w = world(1);
    register_patient(&mut w, addr(1), h("alice"), addr(20));
    assert_eq!(resolve(&mut w, h("bob")), (Address::ZERO, NO_ROLE, u40(0)));
    assert_eq!(resolve(&mut w, B256::ZERO), (Address::ZERO, NO_ROLE, u40(0)));
}

#[test]
fn only_institutions_register_patients() {
    let Cast { mut w, provider, patient, stranger, .. } = Cast::new();
    for caller in [provider, patient, stranger] {
        let reg = w.reg();
        let err = w.fail(
            caller,
            reg,
            Registrar::registerPatientCall { identity: h("carol"), account: addr(21) },
        );
        assert_eq!(err, ContractError::NotInstitution { caller });
    }
    assert_eq!(resolve(&mut w, h("carol")), (Address::ZERO, NO_ROLE, u40(0)));
}

#[test]
fn register_patient_refusals() {
    let mut w = world(1);
    register_patient(&mut w, addr(1), h("alice"), addr(20));
    let cases = [
        ("zero identity", B256::ZERO, addr(21), ContractError::ZeroIdentity),
        ("zero account", h("bob"), Address::ZERO, ContractError::ZeroAddress),
        (
            "taken identity",
            h("alice"),
            addr(21),
            ContractError::IdentityTaken { identity: h("alice") },
        ),
        (
            "taken identity, same account",
            h("alice"),
            addr(20),
            ContractError::IdentityTaken { identity: h("alice") },
        ),
    ];
    for (name, identity, account, expected) in cases {
        let reg = w.reg();
        let err = w.fail(addr(1), reg, Registrar::registerPatientCall { identity, account });
        assert_eq!(err, expected, "{name}");
    }
}

#[test]
fn a_refused_registration_changes_nothing() {
    let mut w = world(1);
    register_patient(&mut w, addr(1), h("alice"), addr(20));
    let before = resolve(&mut w, h("alice"));
    let reg = w.reg();
    let err = w.fail(
        addr(1),
        reg,
        Registrar::registerPatientCall { identity: h("alice"), account: addr(21) },
    );
    assert_eq!(err, ContractError::IdentityTaken { identity: h("alice") });
    assert_eq!(resolve(&mut w, h("alice")), before, "the first mapping stands");
    let err = w.fail(
        addr(9),
        reg,
        Registrar::registerPatientCall { identity: h("bob"), account: addr(22) },
    );
    assert_eq!(err, ContractError::NotInstitution { caller: addr(9) });
    assert_eq!(resolve(&mut w, h("bob")), (Address::ZERO, NO_ROLE, u40(0)));
    let err = w.fail(addr(1), reg, provider_call(h("dr who"), addr(30), "", h("key")));
    assert_eq!(err, ContractError::EmptyEndpoint);
    assert_eq!(resolve(&mut w, h("dr who")), (Address::ZERO, NO_ROLE, u40(0)));
    assert!(!is_provider(&mut w, addr(30)));
}
