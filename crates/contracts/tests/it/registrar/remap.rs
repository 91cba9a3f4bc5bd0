//! `Registrar`: remap.

use super::*;

#[test]
fn remap_moves_a_patient_identity_and_keeps_role_and_registration_time() {
    let mut w = world(2);
    let (old, new) = (addr(20), addr(21));
    register_patient(&mut w, addr(1), h("alice"), old);
    let registered = w.evm.timestamp();
    w.evm.advance_time(3_600);
    let r = remap(&mut w, addr(2), h("alice"), new);
    assert_eq!(r.event_names(), vec!["IdentityRemapped"]);
    let e: Registrar::IdentityRemapped = r.event();
    assert_eq!(
        (e.identity, e.from, e.to, e.institution),
        (h("alice"), old, new, addr(2)),
        "the event names the remapping institution"
    );
    assert_eq!(resolve(&mut w, h("alice")), (new, PATIENT, u40(registered)));
}

#[test]
fn remap_back_and_forth() {
    let mut w = world(1);
    register_patient(&mut w, addr(1), h("alice"), addr(20));
    remap(&mut w, addr(1), h("alice"), addr(21));
    let r = remap(&mut w, addr(1), h("alice"), addr(20));
    let e: Registrar::IdentityRemapped = r.event();
    assert_eq!((e.from, e.to), (addr(21), addr(20)));
    assert_eq!(resolve(&mut w, h("alice")).0, addr(20));
}

#[test]
fn remap_moves_a_provider_entry() {
    let Cast { mut w, institution, provider, .. } = Cast::new();
    let registered = resolve(&mut w, h("provider")).2;
    let moved = addr(12);
    let entry = directory(&mut w, provider);
    let r = remap(&mut w, institution, h("provider"), moved);
    assert_eq!(r.event_names(), vec!["IdentityRemapped"]);
    let e: Registrar::IdentityRemapped = r.event();
    assert_eq!(
        (e.identity, e.from, e.to, e.institution),
        (h("provider"), provider, moved, institution)
    );

    assert_eq!(resolve(&mut w, h("provider")), (moved, PROVIDER, registered));
    assert!(!is_provider(&mut w, provider));
    assert!(is_provider(&mut w, moved));
    assert_eq!(directory(&mut w, moved), entry);
    assert_eq!(directory(&mut w, provider).identity, B256::ZERO);
    assert_eq!(directory(&mut w, provider).endpoint, "");

    // Only the new account may now update the entry.
    let reg = w.reg();
    let update = || Registrar::updateProviderCall {
        endpoint: "https://moved.example".into(),
        encryptionKey: h("k2"),
    };
    assert_eq!(w.fail(provider, reg, update()), ContractError::NotProvider { caller: provider });
    w.send(moved, reg, update());
    assert_eq!(directory(&mut w, moved).endpoint, "https://moved.example");

    // The old account is free to be registered as a provider again.
    register_provider(&mut w, institution, h("provider again"), provider);
    assert!(is_provider(&mut w, provider));
}

#[test]
fn only_institutions_remap() {
    let Cast { mut w, provider, patient, stranger, .. } = Cast::new();
    for caller in [provider, patient, stranger] {
        let reg = w.reg();
        let err = w.fail(caller, reg, Registrar::remapCall { identity: h("patient"), to: caller });
        assert_eq!(err, ContractError::NotInstitution { caller });
    }
    assert_eq!(resolve(&mut w, h("patient")).0, patient);
}

#[test]
fn remap_refusals() {
    let Cast { mut w, institution, provider, patient, .. } = Cast::new();
    let other_provider = addr(12);
    register_provider(&mut w, institution, h("other provider"), other_provider);
    let cases = [
        ("zero target", h("patient"), Address::ZERO, ContractError::ZeroAddress),
        (
            "unknown identity",
            h("nobody"),
            addr(21),
            ContractError::UnknownIdentity { identity: h("nobody") },
        ),
        (
            "zero identity",
            B256::ZERO,
            addr(21),
            ContractError::UnknownIdentity { identity: B256::ZERO },
        ),
        (
            "same patient account",
            h("patient"),
            patient,
            ContractError::SameAccount { account: patient },
        ),
        (
            "same provider account",
            h("provider"),
            provider,
            ContractError::SameAccount { account: provider },
        ),
        (
            "target already a provider",
            h("provider"),
            other_provider,
            ContractError::ProviderExists { account: other_provider },
        ),
    ];
    for (name, identity, to, expected) in cases {
        let reg = w.reg();
        assert_eq!(
            w.fail(institution, reg, Registrar::remapCall { identity, to }),
            expected,
            "{name}"
        );
    }
    // Nothing moved.
    assert_eq!(resolve(&mut w, h("patient")).0, patient);
    assert_eq!(resolve(&mut w, h("provider")).0, provider);
    assert_eq!(directory(&mut w, provider).identity, h("provider"));
    assert_eq!(directory(&mut w, other_provider).identity, h("other provider"));
    assert_eq!(resolve(&mut w, h("nobody")).0, Address::ZERO);
}
