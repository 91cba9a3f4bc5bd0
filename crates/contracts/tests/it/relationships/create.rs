//! `Relationships`: create.

use super::*;

#[test]
fn create_returns_the_derived_id_and_stores_a_new_relationship() {
    let mut c = Cast::new();
    let r = c.create();
    let created_at = c.w.evm.timestamp();
    let returned = R::createCall::abi_decode_returns(&r.output).expect("create returns bytes32");
    let (rel, patient, delegate, provider) = (c.w.rel(), c.patient, c.delegate, c.provider);

    assert_eq!(returned, RelationshipId::derive(patient, delegate).0);
    assert_eq!(c.w.view(rel, R::relationshipIdCall { patient, delegate }), returned);
    assert_eq!(
        c.stored(),
        R::Relationship {
            provider,
            status: NEW,
            pointerCount: 1,
            acceptedCount: 0,
            researchOptIn: false,
            updatedAt: u40(created_at),
            updates: u24(0),
        }
    );
}

#[test]
fn create_emits_created_then_status_new_then_pointer_zero() {
    let mut c = Cast::new();
    let r = c.create();
    let rel_id = c.rel_id();

    assert_eq!(r.event_names(), ["RelationshipCreated", "StatusChanged", "PointerAdded"]);
    assert_eq!(
        r.event::<R::RelationshipCreated>(),
        R::RelationshipCreated {
            relId: rel_id,
            patient: c.patient,
            provider: c.provider,
            delegate: c.delegate,
        }
    );
    assert_eq!(r.event::<R::StatusChanged>(), R::StatusChanged { relId: rel_id, status: NEW });
    assert_eq!(
        r.event::<R::PointerAdded>(),
        R::PointerAdded {
            relId: rel_id,
            pointerId: U256::ZERO,
            queryCommitment: query(0),
            dataHash: data(0),
        }
    );
    // The patient and the provider are indexed, so summaries can be found by topic.
    let created = &r.logs[0];
    assert_eq!(created.topics()[1], rel_id);
    assert_eq!(created.topics()[2], c.patient.into_word());
    assert_eq!(created.topics()[3], c.provider.into_word());
}

#[test]
fn create_is_refused_to_everyone_but_registered_providers() {
    let mut c = Cast::new();
    let rel = c.w.rel();
    let callers = [
        ("patient", c.patient),
        ("delegate", c.delegate),
        ("stranger", c.stranger),
        ("viewer", c.viewer),
        ("institution that is not a provider", c.institution),
    ];
    for (who, caller) in callers {
        let call = create_call(&c);
        assert_eq!(c.w.fail(caller, rel, call), ContractError::NotProvider { caller }, "{who}");
    }
    assert_eq!(status(&mut c), NONE, "nothing was created");
}

#[test]
fn create_checks_the_registrar_at_call_time() {
    let mut c = Cast::new();
    let (rel, reg, institution, old) = (c.w.rel(), c.w.reg(), c.institution, c.provider);
    let rotated = addr(12);
    c.w.send(institution, reg, Registrar::remapCall { identity: h("provider"), to: rotated });

    let call = create_call(&c);
    assert_eq!(c.w.fail(old, rel, call), ContractError::NotProvider { caller: old });

    let r = c.w.send(rotated, rel, create_call(&c));
    assert_eq!(r.event::<R::RelationshipCreated>().provider, rotated);
    assert_eq!(c.stored().provider, rotated);
}

#[test]
fn create_refuses_zero_addresses() {
    let mut c = Cast::new();
    let (rel, provider) = (c.w.rel(), c.provider);
    let cases = [
        ("zero patient", Address::ZERO, c.delegate),
        ("zero delegate", c.patient, Address::ZERO),
        ("both zero", Address::ZERO, Address::ZERO),
    ];
    for (label, patient, delegate) in cases {
        let call =
            R::createCall { patient, delegate, queryCommitment: query(0), dataHash: data(0) };
        assert_eq!(c.w.fail(provider, rel, call), ContractError::ZeroAddress, "{label}");
        let stored = c
            .w
            .view(rel, R::relationshipCall { relId: RelationshipId::derive(patient, delegate).0 });
        assert_eq!(stored.status, NONE, "{label}");
    }
}

#[test]
fn create_refuses_the_patient_as_its_own_delegate() {
    let mut c = Cast::new();
    let (rel, provider, patient, stranger) = (c.w.rel(), c.provider, c.patient, c.stranger);
    let self_call = |q: B256, d: B256| R::createCall {
        patient,
        delegate: patient,
        queryCommitment: q,
        dataHash: d,
    };

    assert_eq!(
        c.w.fail(provider, rel, self_call(query(0), data(0))),
        ContractError::DelegateIsPatient
    );
    // Checked after the caller's role, before the hashes.
    assert_eq!(
        c.w.fail(stranger, rel, self_call(query(0), data(0))),
        ContractError::NotProvider { caller: stranger }
    );
    assert_eq!(
        c.w.fail(provider, rel, self_call(B256::ZERO, B256::ZERO)),
        ContractError::DelegateIsPatient,
        "before the zero hashes"
    );
    let self_id = RelationshipId::derive(patient, patient).0;
    assert_eq!(c.w.view(rel, R::relationshipCall { relId: self_id }).status, NONE);
    assert_eq!(c.w.evm.storage(rel, relationship_slot(self_id)), U256::ZERO, "nothing stored");

    // With a delegate address of the provider's own, the same creation goes through.
    c.create();
    assert_eq!(status(&mut c), NEW);
}

#[test]
fn create_refuses_zero_hashes() {
    let mut c = Cast::new();
    let (rel, provider) = (c.w.rel(), c.provider);
    let cases = [
        ("zero query commitment", B256::ZERO, data(0)),
        ("zero data hash", query(0), B256::ZERO),
        ("both zero", B256::ZERO, B256::ZERO),
    ];
    for (label, q, d) in cases {
        let call = R::createCall {
            patient: c.patient,
            delegate: c.delegate,
            queryCommitment: q,
            dataHash: d,
        };
        assert_eq!(c.w.fail(provider, rel, call), ContractError::ZeroHash, "{label}");
    }
    assert_eq!(status(&mut c), NONE);
}

#[test]
fn create_refuses_an_existing_pair_whoever_asks_and_whatever_its_status() {
    let mut c = Cast::new();
    c.create();
    let (rel, provider, patient) = (c.w.rel(), c.provider, c.patient);
    let second = addr(12);
    register_provider(&mut c, second, "second provider");
    let original = c.stored();

    for (who, caller) in [("same provider", provider), ("another provider", second)] {
        let call = R::createCall {
            patient: c.patient,
            delegate: c.delegate,
            queryCommitment: query(9),
            dataHash: data(9),
        };
        assert_eq!(
            c.w.fail(caller, rel, call),
            ContractError::RelationshipExists { rel_id: id(&c) },
            "{who}"
        );
    }
    assert_eq!(c.stored(), original, "the first creation stands");

    // A deleted relationship still occupies its id: the provider needs a new delegate.
    decide(&mut c, patient, Decision::Remove);
    let call = create_call(&c);
    assert_eq!(c.w.fail(provider, rel, call), ContractError::RelationshipExists { rel_id: id(&c) });
    assert_eq!(status(&mut c), DELETED);
}

#[test]
fn relationships_are_keyed_by_the_ordered_patient_delegate_pair() {
    let mut c = Cast::new();
    c.create();
    let (rel, reg, institution) = (c.w.rel(), c.w.reg(), c.institution);
    let (patient, delegate, provider) = (c.patient, c.delegate, c.provider);
    let (delegate2, patient2) = (addr(12), addr(21));
    c.w.send(
        institution,
        reg,
        Registrar::registerPatientCall { identity: h("patient 2"), account: patient2 },
    );

    let pairs = [(patient, delegate2), (patient2, delegate)];
    let mut ids = vec![c.rel_id()];
    for (p, d) in pairs {
        let call =
            R::createCall { patient: p, delegate: d, queryCommitment: query(0), dataHash: data(0) };
        let r = c.w.send(provider, rel, call);
        let returned = R::createCall::abi_decode_returns(&r.output).expect("bytes32");
        assert_eq!(returned, RelationshipId::derive(p, d).0);
        assert_eq!(c.w.view(rel, R::relationshipIdCall { patient: p, delegate: d }), returned);
        ids.push(returned);
    }
    let swapped = c.w.view(rel, R::relationshipIdCall { patient: delegate, delegate: patient });
    ids.push(swapped);
    for (i, a) in ids.iter().enumerate() {
        for b in &ids[i + 1..] {
            assert_ne!(a, b, "ids are distinct");
        }
    }

    // Each relationship moves on its own.
    c.w.send(patient, rel, R::acceptCall { delegate: delegate2 });
    assert_eq!(c.w.view(rel, R::relationshipCall { relId: ids[1] }).status, ACCEPTED);
    assert_eq!(status(&mut c), NEW);
    assert_eq!(c.w.view(rel, R::relationshipCall { relId: ids[2] }).status, NEW);
}

#[test]
fn constant_views_and_unknown_ids_read_as_empty() {
    let mut c = Cast::new();
    let (rel, reg, viewer) = (c.w.rel(), c.w.reg(), c.viewer);
    assert_eq!(c.w.view(rel, R::MAX_POINTERSCall {}), U256::from(128));
    assert_eq!(c.w.view(rel, R::registrarCall {}), reg);

    let unknown = c.rel_id();
    assert_eq!(
        c.stored(),
        R::Relationship {
            provider: Address::ZERO,
            status: NONE,
            pointerCount: 0,
            acceptedCount: 0,
            researchOptIn: false,
            updatedAt: u40(0),
            updates: u24(0),
        }
    );
    assert_eq!(grant_of(&mut c, unknown, viewer), no_grant());
    assert!(!can_view_at(&mut c, unknown, viewer, U256::ZERO));
}
