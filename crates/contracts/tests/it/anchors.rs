//! `AccessAnchors`: who may anchor, the growing size, what `latest` reads back, the
//! event, and each provider's anchors kept apart.

use crate::harness::*;
use alloy::primitives::{Address, B256};
use medrec_contracts::{AccessAnchors as A, ContractError, Registrar};

/// A world with two registered providers (`addr(10)`, `addr(12)`) and a patient.
fn cast() -> (Cast, Address) {
    let mut c = Cast::new();
    let other = addr(12);
    let (reg, institution) = (c.w.reg(), c.institution);
    c.w.send(
        institution,
        reg,
        Registrar::registerProviderCall {
            identity: h("second provider"),
            account: other,
            endpoint: "https://gk.clinic.example".into(),
            encryptionKey: h("second provider key"),
        },
    );
    (c, other)
}

fn anchor(c: &mut Cast, from: Address, label: &str, size: u64) -> Receipt {
    let at = c.w.at.anchors;
    c.w.send(from, at, A::anchorCall { head: h(label), size })
}

fn anchor_fails(c: &mut Cast, from: Address, head: B256, size: u64) -> ContractError {
    let at = c.w.at.anchors;
    c.w.fail(from, at, A::anchorCall { head, size })
}

fn latest(c: &mut Cast, provider: Address) -> (B256, u64, u64) {
    let at = c.w.at.anchors;
    let r = c.w.view(at, A::latestCall { provider });
    (r.head, r.size, r.blockNumber)
}

#[test]
fn the_contract_knows_its_registrar() {
    let (mut c, _) = cast();
    let (at, reg) = (c.w.at.anchors, c.w.reg());
    assert_eq!(c.w.view(at, A::registrarCall {}), reg);
}

#[test]
fn only_registered_providers_may_anchor() {
    let (mut c, _) = cast();
    for caller in [c.institution, c.patient, c.stranger, c.delegate] {
        assert_eq!(
            anchor_fails(&mut c, caller, h("head"), 1),
            ContractError::NotProvider { caller },
            "{caller} is no provider"
        );
        assert_eq!(latest(&mut c, caller), (B256::ZERO, 0, 0), "nothing stored");
    }
    let provider = c.provider;
    anchor(&mut c, provider, "head", 1);
    assert_eq!(latest(&mut c, provider).1, 1);
}

#[test]
fn the_size_must_grow_with_every_anchor() {
    let (mut c, _) = cast();
    let p = c.provider;
    assert_eq!(
        anchor_fails(&mut c, p, h("empty"), 0),
        ContractError::SizeNotGrown { anchored_size: 0, size: 0 },
        "an empty log has nothing to anchor"
    );
    anchor(&mut c, p, "entry 10", 10);
    for size in [10, 9, 0] {
        assert_eq!(
            anchor_fails(&mut c, p, h("again"), size),
            ContractError::SizeNotGrown { anchored_size: 10, size }
        );
    }
    assert_eq!(latest(&mut c, p).0, h("entry 10"), "a refusal changes nothing");
    anchor(&mut c, p, "entry 11", 11);
    anchor(&mut c, p, "entry 1000", 1000);
    assert_eq!(latest(&mut c, p).1, 1000);
    assert_eq!(
        anchor_fails(&mut c, p, h("entry 999"), 999),
        ContractError::SizeNotGrown { anchored_size: 1000, size: 999 }
    );
}

#[test]
fn a_zero_head_is_refused() {
    let (mut c, _) = cast();
    let p = c.provider;
    assert_eq!(anchor_fails(&mut c, p, B256::ZERO, 3), ContractError::EmptyHead);
    assert_eq!(latest(&mut c, p), (B256::ZERO, 0, 0));
}

#[test]
fn latest_reads_back_the_last_anchor_and_its_block() {
    let (mut c, _) = cast();
    let p = c.provider;
    assert_eq!(latest(&mut c, p), (B256::ZERO, 0, 0), "never anchored");
    anchor(&mut c, p, "entry 4", 4);
    let first_block = c.w.evm.block_number();
    assert_eq!(latest(&mut c, p), (h("entry 4"), 4, first_block));
    c.w.evm.advance_time(3600);
    anchor(&mut c, p, "entry 7", 7);
    let second_block = c.w.evm.block_number();
    assert!(second_block > first_block);
    assert_eq!(latest(&mut c, p), (h("entry 7"), 7, second_block));
}

#[test]
fn every_anchor_emits_one_event_naming_the_provider() {
    let (mut c, _) = cast();
    let p = c.provider;
    let r = anchor(&mut c, p, "entry 42", 42);
    assert_eq!(r.logs.len(), 1);
    assert_eq!(
        r.event::<A::Anchored>(),
        A::Anchored { provider: p, size: 42, head: h("entry 42") }
    );
    // The provider is an indexed topic: a patient's client filters on it.
    assert_eq!(r.logs[0].topics()[1], p.into_word());
    assert!(r.output.is_empty(), "anchor returns nothing");
}

#[test]
fn each_provider_has_its_own_anchors() {
    let (mut c, other) = cast();
    let p = c.provider;
    anchor(&mut c, p, "hospital 100", 100);
    // The clinic's log is smaller: its sizes are its own, not the hospital's.
    let r = anchor(&mut c, other, "clinic 3", 3);
    assert_eq!(r.event::<A::Anchored>().provider, other);
    assert_eq!(latest(&mut c, p).0, h("hospital 100"));
    assert_eq!((latest(&mut c, other).0, latest(&mut c, other).1), (h("clinic 3"), 3));
    assert_eq!(
        anchor_fails(&mut c, other, h("clinic 2"), 2),
        ContractError::SizeNotGrown { anchored_size: 3, size: 2 }
    );
    anchor(&mut c, other, "clinic 4", 4);
    assert_eq!(latest(&mut c, p), (h("hospital 100"), 100, latest(&mut c, p).2));
    assert_eq!(latest(&mut c, p).1, 100, "the clinic's anchors leave the hospital's alone");
}
