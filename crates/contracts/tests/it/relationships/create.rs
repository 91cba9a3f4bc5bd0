//! `Relationships`: create, by a key of the patient's account.

use super::*;

#[test]
fn create_returns_the_derived_id_and_stores_an_accepted_relationship() {
    let mut c = Cast::new();
    let r = c.create();
    let created_at = c.w.evm.timestamp();
    let returned = R::createCall::abi_decode_returns(&r.output).expect("create returns bytes32");
    let (rel, patient, delegate) = (c.w.rel(), c.patient, c.delegate);

    assert_eq!(returned, RelationshipId::derive(patient, delegate).0);
    assert_eq!(c.w.view(rel, R::relationshipIdCall { account: patient, delegate }), returned);
    assert_eq!(
        c.stored(),
        R::Relationship {
            status: ACCEPTED,
            pointerCount: 1,
            acceptedCount: 1,
            researchOptIn: false,
            updatedAt: u40(created_at),
            updates: u24(0),
        }
    );
}

#[test]
fn create_emits_created_with_the_encrypted_identity_then_pointer_zero() {
    let mut c = Cast::new();
    let r = c.create();
    let rel_id = c.rel_id();

    assert_eq!(r.event_names(), ["RelationshipCreated", "PointerAdded"], "no StatusChanged");
    assert_eq!(
        r.event::<R::RelationshipCreated>(),
        R::RelationshipCreated {
            relId: rel_id,
            account: c.patient,
            delegate: c.delegate,
            actor: c.patient,
            identity: identity(),
        }
    );
    assert_eq!(
        r.event::<R::PointerAdded>(),
        R::PointerAdded {
            relId: rel_id,
            pointerId: U256::ZERO,
            queryCommitment: query(0),
            dataHash: data(0),
        }
    );
    // The id and the account are the only topics: a summary is found by its account.
    let created = &r.logs[0];
    assert_eq!(
        created.topics(),
        [R::RelationshipCreated::SIGNATURE_HASH, rel_id, c.patient.into_word()]
    );
}

#[test]
fn the_provider_appears_nowhere_in_the_creation() {
    let mut c = Cast::new();
    let provider = c.provider;
    let call = create_call(&c);
    let r = c.create();
    let needle = provider.as_slice();
    let contains = |hay: &[u8]| hay.windows(20).any(|w| w == needle);
    assert!(!contains(&call.abi_encode()), "not in the calldata");
    for log in &r.logs {
        assert!(!contains(&log.data.data), "not in the data of {:?}", log.topics()[0]);
        for topic in log.topics() {
            assert!(!contains(topic.as_slice()), "not a topic");
        }
    }
}

#[test]
fn the_first_creation_opens_the_accounts_key_slot_and_later_ones_leave_it() {
    let mut c = Cast::new();
    let (rel, patient) = (c.w.rel(), c.patient);
    assert_eq!(c.w.evm.storage(rel, key_slot(patient)), U256::ZERO, "no slot yet");
    assert_eq!(c.w.view(rel, R::actingForCall { key: patient }).rights, Rights::ALL);

    let first = c.create();
    let slot = U256::from_be_slice(patient.as_slice()) | (U256::from(Rights::ALL) << 160);
    assert_eq!(c.w.evm.storage(rel, key_slot(patient)), slot);
    let key = c.w.key_of(patient);
    assert_eq!((key.account, key.rights, key.until), (patient, Rights::ALL, u40(0)));

    let call = R::createCall { delegate: addr(12), ..create_call(&c) };
    let second = c.w.send(patient, rel, call);
    assert_eq!(c.w.evm.storage(rel, key_slot(patient)), slot, "unchanged");
    assert!(
        second.gas_used + 15_000 < first.gas_used,
        "only the first pays for the slot: {} then {}",
        first.gas_used,
        second.gas_used
    );
}

#[test]
fn a_strangers_create_lands_in_the_strangers_own_account_never_in_the_patients() {
    let mut c = Cast::new();
    let (rel, patient, delegate) = (c.w.rel(), c.patient, c.delegate);
    let callers = [
        ("stranger", c.stranger),
        ("provider", c.provider),
        ("viewer", c.viewer),
        ("institution", c.institution),
    ];
    for (who, caller) in callers {
        let r = c.w.send(caller, rel, create_call(&c));
        let created = r.event::<R::RelationshipCreated>();
        let theirs = RelationshipId::derive(caller, delegate).0;
        assert_eq!(
            (created.relId, created.account, created.actor),
            (theirs, caller, caller),
            "{who}"
        );
        assert_eq!(c.w.view(rel, R::relationshipCall { relId: theirs }).status, ACCEPTED, "{who}");
        assert_eq!(status(&mut c), NONE, "{who}: nothing in the patient's summary");
    }
    // The patient's own creation with the same delegate is still free.
    let r = c.create();
    assert_eq!(r.event::<R::RelationshipCreated>().account, patient);
    assert_eq!(status(&mut c), ACCEPTED);
}

#[test]
fn create_refuses_an_identity_that_is_not_36_bytes() {
    let mut c = Cast::new();
    let (rel, patient) = (c.w.rel(), c.patient);
    for length in [0usize, 1, 20, 35, 37, 64, 96] {
        let call = R::createCall { identity: vec![0xab; length].into(), ..create_call(&c) };
        assert_eq!(
            c.w.fail(patient, rel, call),
            ContractError::BadCiphertext { length: U256::from(length) },
            "{length} bytes"
        );
    }
    assert_eq!(status(&mut c), NONE);
    assert_eq!(c.w.evm.storage(rel, key_slot(patient)), U256::ZERO, "no key slot either");
    let call = R::createCall { identity: vec![0xab; 36].into(), ..create_call(&c) };
    c.w.send(patient, rel, call);
    assert_eq!(status(&mut c), ACCEPTED);
}

#[test]
fn create_refuses_a_zero_delegate_the_patient_as_delegate_and_zero_hashes() {
    let mut c = Cast::new();
    let (rel, patient) = (c.w.rel(), c.patient);
    let base = create_call(&c);
    let cases = [
        (
            "zero delegate",
            R::createCall { delegate: Address::ZERO, ..base.clone() },
            ContractError::ZeroAddress,
        ),
        (
            "the patient as delegate",
            R::createCall { delegate: patient, ..base.clone() },
            ContractError::DelegateIsPatient,
        ),
        (
            "the patient as delegate, before the zero hashes",
            R::createCall { delegate: patient, queryCommitment: B256::ZERO, ..base.clone() },
            ContractError::DelegateIsPatient,
        ),
        (
            "zero query commitment",
            R::createCall { queryCommitment: B256::ZERO, ..base.clone() },
            ContractError::ZeroHash,
        ),
        (
            "zero data hash",
            R::createCall { dataHash: B256::ZERO, ..base.clone() },
            ContractError::ZeroHash,
        ),
        (
            "zero hashes, before the identity's length",
            R::createCall { dataHash: B256::ZERO, identity: Bytes::new(), ..base },
            ContractError::ZeroHash,
        ),
    ];
    for (label, call, expected) in cases {
        assert_eq!(c.w.fail(patient, rel, call), expected, "{label}");
    }
    let self_id = RelationshipId::derive(patient, patient).0;
    assert_eq!(c.w.evm.storage(rel, relationship_slot(self_id)), U256::ZERO, "nothing stored");
    assert_eq!(status(&mut c), NONE);
}

#[test]
fn create_refuses_an_existing_pair_whatever_its_status() {
    let mut c = Cast::new();
    c.create();
    let (rel, patient) = (c.w.rel(), c.patient);
    let original = c.stored();
    let call = R::createCall { queryCommitment: query(9), dataHash: data(9), ..create_call(&c) };
    assert_eq!(c.w.fail(patient, rel, call), ContractError::RelationshipExists { rel_id: id(&c) });
    assert_eq!(c.stored(), original, "the first creation stands");

    // A deleted relationship still occupies its id: the provider offers a new delegate.
    decide(&mut c, patient, Decision::Remove);
    let call = create_call(&c);
    assert_eq!(c.w.fail(patient, rel, call), ContractError::RelationshipExists { rel_id: id(&c) });
    assert_eq!(status(&mut c), DELETED);
}

#[test]
fn relationships_are_keyed_by_the_ordered_account_delegate_pair() {
    let mut c = Cast::new();
    c.create();
    let (rel, patient, delegate) = (c.w.rel(), c.patient, c.delegate);
    let (delegate2, patient2) = (addr(12), addr(21));

    let pairs = [(patient, delegate2), (patient2, delegate)];
    let mut ids = vec![c.rel_id()];
    for (p, d) in pairs {
        let call = R::createCall { delegate: d, ..create_call(&c) };
        let r = c.w.send(p, rel, call);
        let returned = R::createCall::abi_decode_returns(&r.output).expect("bytes32");
        assert_eq!(returned, RelationshipId::derive(p, d).0);
        assert_eq!(c.w.view(rel, R::relationshipIdCall { account: p, delegate: d }), returned);
        ids.push(returned);
    }
    ids.push(c.w.view(rel, R::relationshipIdCall { account: delegate, delegate: patient }));
    for (i, a) in ids.iter().enumerate() {
        for b in &ids[i + 1..] {
            assert_ne!(a, b, "ids are distinct");
        }
    }

    // Each relationship moves on its own.
    c.w.send(patient, rel, R::removeCall { delegate: delegate2 });
    assert_eq!(c.w.view(rel, R::relationshipCall { relId: ids[1] }).status, DELETED);
    assert_eq!(status(&mut c), ACCEPTED);
    assert_eq!(c.w.view(rel, R::relationshipCall { relId: ids[2] }).status, ACCEPTED);
}

#[test]
fn constant_views_and_unknown_ids_read_as_empty() {
    let mut c = Cast::new();
    let (rel, reg) = (c.w.rel(), c.w.reg());
    assert_eq!(c.w.view(rel, R::MAX_POINTERSCall {}), U256::from(128));
    assert_eq!(c.w.view(rel, R::IDENTITY_BYTESCall {}), U256::from(36));
    assert_eq!(c.w.view(rel, R::MAX_SEALED_KEY_BYTESCall {}), U256::from(96));
    assert_eq!(c.w.view(rel, R::registrarCall {}), reg);
    let rights = [
        c.w.view(rel, R::SEECall {}),
        c.w.view(rel, R::SHARECall {}),
        c.w.view(rel, R::DECIDECall {}),
        c.w.view(rel, R::OWNERCall {}),
        c.w.view(rel, R::ALLCall {}),
    ];
    assert_eq!(rights, [Rights::SEE, Rights::SHARE, Rights::DECIDE, Rights::OWNER, Rights::ALL]);
    assert_eq!(c.w.view(rel, R::RECOVERY_DELAYCall {}), u40(72 * 3600));
    assert_eq!(c.w.view(rel, R::BREAK_GLASS_SECONDSCall {}), u40(4 * 3600));

    assert_eq!(
        c.stored(),
        R::Relationship {
            status: NONE,
            pointerCount: 0,
            acceptedCount: 0,
            researchOptIn: false,
            updatedAt: u40(0),
            updates: u24(0),
        }
    );
}
