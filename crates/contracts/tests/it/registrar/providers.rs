//! `Registrar`: registerProvider.

use super::*;

#[test]
fn register_provider_fills_the_directory_and_announces_it() {
    let mut w = world(2);
    let (account, identity, key) = (addr(10), h("dr house"), h("x25519"));
    let reg = w.reg();
    let r = w.send(addr(2), reg, provider_call(identity, account, ENDPOINT, key));
    let now = w.evm.timestamp();
    assert_eq!(r.event_names(), vec!["IdentityRegistered", "ProviderUpdated"]);
    let e: Registrar::IdentityRegistered = r.event();
    assert_eq!(
        (e.identity, e.account, e.role, e.institution),
        (identity, account, PROVIDER, addr(2))
    );
    let u: Registrar::ProviderUpdated = r.event();
    assert_eq!((u.account, u.endpoint.as_str(), u.encryptionKey), (account, ENDPOINT, key));

    assert_eq!(resolve(&mut w, identity), (account, PROVIDER, u40(now)));
    assert!(is_provider(&mut w, account));
    assert_eq!(
        directory(&mut w, account),
        Registrar::Provider { identity, encryptionKey: key, endpoint: ENDPOINT.into() }
    );
}

#[test]
fn a_non_provider_has_an_empty_directory_entry() {
    let Cast { mut w, patient, stranger, institution, .. } = Cast::new();
    for account in [patient, stranger, institution, Address::ZERO] {
        assert!(!is_provider(&mut w, account));
        assert_eq!(
            directory(&mut w, account),
            Registrar::Provider {
                identity: B256::ZERO,
                encryptionKey: B256::ZERO,
                endpoint: String::new()
            }
        );
    }
}

#[test]
fn only_institutions_register_providers() {
    let Cast { mut w, provider, patient, stranger, .. } = Cast::new();
    for caller in [provider, patient, stranger] {
        let reg = w.reg();
        let err = w.fail(caller, reg, provider_call(h("dr no"), addr(12), ENDPOINT, h("key")));
        assert_eq!(err, ContractError::NotInstitution { caller });
    }
    assert!(!is_provider(&mut w, addr(12)));
    assert_eq!(resolve(&mut w, h("dr no")).0, Address::ZERO);
}

#[test]
fn register_provider_refusals() {
    let Cast { mut w, institution, provider, .. } = Cast::new();
    let fresh = addr(12);
    let cases = [
        (
            "empty endpoint",
            provider_call(h("new"), fresh, "", h("k")),
            ContractError::EmptyEndpoint,
        ),
        (
            "account already a provider under another identity",
            provider_call(h("second identity"), provider, ENDPOINT, h("k")),
            ContractError::ProviderExists { account: provider },
        ),
        (
            "identity taken by a patient",
            provider_call(h("patient"), fresh, ENDPOINT, h("k")),
            ContractError::IdentityTaken { identity: h("patient") },
        ),
        (
            "identity taken by a provider",
            provider_call(h("provider"), fresh, ENDPOINT, h("k")),
            ContractError::IdentityTaken { identity: h("provider") },
        ),
        (
            "zero identity",
            provider_call(B256::ZERO, fresh, ENDPOINT, h("k")),
            ContractError::ZeroIdentity,
        ),
        (
            "zero account",
            provider_call(h("new"), Address::ZERO, ENDPOINT, h("k")),
            ContractError::ZeroAddress,
        ),
    ];
    for (name, call, expected) in cases {
        let reg = w.reg();
        assert_eq!(w.fail(institution, reg, call), expected, "{name}");
    }
    // Nothing moved: the existing provider keeps its entry, the fresh account has none.
    assert!(!is_provider(&mut w, fresh));
    assert_eq!(resolve(&mut w, h("new")).0, Address::ZERO);
    assert_eq!(resolve(&mut w, h("second identity")).0, Address::ZERO);
    assert_eq!(directory(&mut w, provider).identity, h("provider"));
    assert_eq!(directory(&mut w, provider).encryptionKey, h("provider key"));
}

// ----- updateProvider -----

#[test]
fn a_provider_updates_its_own_entry() {
    let Cast { mut w, provider, .. } = Cast::new();
    let reg = w.reg();
    let r = w.send(
        provider,
        reg,
        Registrar::updateProviderCall {
            endpoint: "https://gk2.hospital.example".into(),
            encryptionKey: h("rotated key"),
        },
    );
    assert_eq!(r.event_names(), vec!["ProviderUpdated"]);
    let e: Registrar::ProviderUpdated = r.event();
    assert_eq!(
        (e.account, e.endpoint.as_str(), e.encryptionKey),
        (provider, "https://gk2.hospital.example", h("rotated key"))
    );
    assert_eq!(
        directory(&mut w, provider),
        Registrar::Provider {
            identity: h("provider"),
            encryptionKey: h("rotated key"),
            endpoint: "https://gk2.hospital.example".into()
        }
    );
    // The identity mapping is untouched.
    assert_eq!(resolve(&mut w, h("provider")).0, provider);
}

#[test]
fn only_the_provider_itself_updates_its_entry() {
    let Cast { mut w, institution, provider, delegate, patient, stranger, .. } = Cast::new();
    for caller in [institution, delegate, patient, stranger] {
        let reg = w.reg();
        let err = w.fail(
            caller,
            reg,
            Registrar::updateProviderCall {
                endpoint: "https://evil.example".into(),
                encryptionKey: h("evil"),
            },
        );
        assert_eq!(err, ContractError::NotProvider { caller });
        assert!(!is_provider(&mut w, caller));
    }
    let entry = directory(&mut w, provider);
    assert_eq!(entry.endpoint, "https://gk.hospital.example");
    assert_eq!(entry.encryptionKey, h("provider key"));
}

#[test]
fn update_provider_rejects_an_empty_endpoint() {
    let Cast { mut w, provider, .. } = Cast::new();
    let reg = w.reg();
    let err = w.fail(
        provider,
        reg,
        Registrar::updateProviderCall { endpoint: String::new(), encryptionKey: h("rotated key") },
    );
    assert_eq!(err, ContractError::EmptyEndpoint);
    let entry = directory(&mut w, provider);
    assert_eq!(entry.endpoint, "https://gk.hospital.example");
    assert_eq!(entry.encryptionKey, h("provider key"), "the key did not change either");
}
