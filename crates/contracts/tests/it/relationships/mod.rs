//! `Relationships`: every function, access rule, revert path and event.
//!
//! The patient's key creates each relationship under the patient's account
//! (`relId = keccak256(abi.encode(account, delegate))`), and the delegate acts on it
//! afterwards; the contract finds the relationship from the sender (its account, or the
//! delegate), so "someone else" always meets a different, usually unknown, id: the
//! refusals below name that id. Keys, custodians, guardians and break-glass have their
//! own modules.

use crate::harness::*;
use alloy::{
    primitives::{Address, B256, Bytes, U256, aliases::U24, keccak256},
    signers::local::PrivateKeySigner,
    sol_types::{SolCall, SolEvent},
};
use medrec_contracts::{ContractError, Registrar, Relationships as R, Rights};
use medrec_devchain::evm::Outcome;
use medrec_primitives::{RelationshipId, Status};

const NONE: u8 = 0;
const UPDATE_PENDING: u8 = Status::UpdatePending.as_u8();
const ACCEPTED: u8 = Status::Accepted.as_u8();
const REJECTED: u8 = Status::Rejected.as_u8();
const DELETED: u8 = Status::Deleted.as_u8();

/// Seconds between blocks: a transaction or a view runs this much after the last block.
const BLOCK: u64 = 12;
/// A grant window end far in the future (ten years).
const DECADE: u64 = 10 * 365 * 24 * 3600;

// ----- helpers ------------------------------------------------------------------------

fn query(n: u64) -> B256 {
    h(&format!("query {n}"))
}

fn data(n: u64) -> B256 {
    h(&format!("data {n}"))
}

fn bounty(n: u64) -> B256 {
    h(&format!("bounty {n}"))
}

/// A uint24 value (the width of the stored update count).
fn u24(v: u64) -> U24 {
    U24::from(v)
}

fn id(c: &Cast) -> RelationshipId {
    RelationshipId(c.rel_id())
}

fn create_call(c: &Cast) -> R::createCall {
    R::createCall {
        delegate: c.delegate,
        queryCommitment: query(0),
        dataHash: data(0),
        identity: identity(),
    }
}

fn add_call(c: &Cast, n: u64) -> R::addPointerCall {
    R::addPointerCall {
        account: c.patient,
        queryCommitment: query(n),
        dataHash: data(n),
        bounty: bounty(n),
    }
}

fn update_call(c: &Cast, pointer: u64, n: u64) -> R::updatePointerCall {
    R::updatePointerCall {
        account: c.patient,
        pointerId: U256::from(pointer),
        dataHash: data(n),
        bounty: bounty(n),
    }
}

fn grant_call(
    c: &Cast,
    viewer: Address,
    pointers: u128,
    not_before: u64,
    expires_at: u64,
) -> R::grantCall {
    R::grantCall {
        delegate: c.delegate,
        viewer,
        pointers,
        notBefore: u40(not_before),
        expiresAt: u40(expires_at),
        sealedKey: Bytes::new(),
    }
}

/// The delegate adds pointer content `n` (query, data and bounty labelled `n`).
fn add(c: &mut Cast, n: u64) -> Receipt {
    let (rel, delegate, call) = (c.w.rel(), c.delegate, add_call(c, n));
    c.w.send(delegate, rel, call)
}

/// The delegate records data `n` (with bounty `n`) behind `pointer`.
fn update(c: &mut Cast, pointer: u64, n: u64) -> Receipt {
    let (rel, delegate, call) = (c.w.rel(), c.delegate, update_call(c, pointer, n));
    c.w.send(delegate, rel, call)
}

/// The patient grants `viewer` with an explicit window.
fn grant_window(
    c: &mut Cast,
    viewer: Address,
    pointers: u128,
    not_before: u64,
    expires_at: u64,
) -> Receipt {
    let (rel, patient) = (c.w.rel(), c.patient);
    let call = grant_call(c, viewer, pointers, not_before, expires_at);
    c.w.send(patient, rel, call)
}

/// `from` revokes `viewer` on the cast's relationship (an unchecked event).
fn revoke(c: &mut Cast, from: Address, viewer: Address) -> Receipt {
    let (rel, rel_id) = (c.w.rel(), c.rel_id());
    c.w.send(from, rel, R::revokeCall { relId: rel_id, viewer })
}

fn consent(c: &mut Cast, from: Address, opt_in: bool) -> Receipt {
    let (rel, delegate) = (c.w.rel(), c.delegate);
    c.w.send(from, rel, R::setResearchConsentCall { delegate, optIn: opt_in })
}

fn status(c: &mut Cast) -> u8 {
    c.stored().status
}

/// The stored status, pointer count and accepted count.
fn counts(c: &mut Cast) -> (u8, u8, u8) {
    let s = c.stored();
    (s.status, s.pointerCount, s.acceptedCount)
}

/// A patient's decision on a relationship.
#[derive(Debug, Clone, Copy)]
enum Decision {
    Accept,
    Reject,
    Remove,
}

impl Decision {
    const fn target(self) -> Status {
        match self {
            Self::Accept => Status::Accepted,
            Self::Reject => Status::Rejected,
            Self::Remove => Status::Deleted,
        }
    }

    fn calldata(self, delegate: Address) -> Vec<u8> {
        match self {
            Self::Accept => R::acceptCall { delegate }.abi_encode(),
            Self::Reject => R::rejectCall { delegate }.abi_encode(),
            Self::Remove => R::removeCall { delegate }.abi_encode(),
        }
    }
}

/// Runs raw calldata on the relationships contract: the logs, or the decoded refusal.
fn run(c: &mut Cast, from: Address, calldata: Vec<u8>) -> Result<Receipt, ContractError> {
    let rel = c.w.rel();
    match c.w.evm.transact(from, rel, calldata.into()).expect("EVM accepts the tx") {
        Outcome::Success { gas_used, logs, output } => Ok(Receipt { gas_used, logs, output }),
        Outcome::Revert { output, .. } => Err(ContractError::decode(&output)),
        Outcome::Halt { reason, .. } => panic!("halted: {reason}"),
    }
}

/// `from` sends decision `d` naming the cast's delegate; panics if it is refused.
fn decide(c: &mut Cast, from: Address, d: Decision) -> Receipt {
    let calldata = d.calldata(c.delegate);
    run(c, from, calldata).unwrap_or_else(|e| panic!("{d:?} refused: {e}"))
}

/// `from` sends decision `d` naming the cast's delegate; panics unless it is refused.
fn decide_fails(c: &mut Cast, from: Address, d: Decision) -> ContractError {
    let calldata = d.calldata(c.delegate);
    match run(c, from, calldata) {
        Ok(r) => panic!("{d:?} was expected to fail, emitted {:?}", r.event_names()),
        Err(e) => e,
    }
}

/// A cast whose relationship has just reached `status` the ordinary way (a relationship
/// is never New: the patient creates it accepted).
fn cast_in(status: Status) -> Cast {
    let c = match status {
        Status::New => panic!("no relationship is ever {status:?}"),
        Status::Accepted => Cast::new().accepted(),
        Status::UpdatePending => {
            let mut c = Cast::new().accepted();
            add(&mut c, 1);
            c
        }
        Status::Rejected => {
            let mut c = cast_in(Status::UpdatePending);
            let patient = c.patient;
            decide(&mut c, patient, Decision::Reject);
            c
        }
        Status::Deleted => {
            let mut c = Cast::new().accepted();
            let patient = c.patient;
            decide(&mut c, patient, Decision::Remove);
            c
        }
    };
    let mut c = c;
    assert_eq!(c.stored().status, status.as_u8(), "setting up {status:?}");
    c
}

/// Storage slot of `_relationships[relId]` (mapping at slot 0).
fn relationship_slot(rel_id: B256) -> U256 {
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(rel_id.as_slice());
    U256::from_be_bytes(keccak256(buf).0)
}

/// Storage slot of `_keys[key]` (mapping at slot 1).
fn key_slot(key: Address) -> U256 {
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(key.into_word().as_slice());
    buf[63] = 1;
    U256::from_be_bytes(keccak256(buf).0)
}

/// The key `label`, accepted to act for `account` with `rights` until `until`.
fn accepted_key(
    c: &Cast,
    label: &str,
    account: Address,
    rights: u8,
    until: u64,
) -> (PrivateKeySigner, Bytes) {
    let key = signer(label);
    let sig = c.w.key_sig(&key, account, rights, until);
    (key, sig)
}

/// The patient's (owner) key adds `label` as a custodian key with `rights` until
/// `until`; returns its address.
fn add_key(c: &mut Cast, label: &str, rights: u8, until: u64) -> Address {
    let (key, sig) = accepted_key(c, label, c.patient, rights, until);
    let (rel, patient) = (c.w.rel(), c.patient);
    let call = R::addKeyCall { key: key.address(), rights, until: u40(until), keySig: sig };
    c.w.send(patient, rel, call);
    key.address()
}

/// The account's owner key `from` rotates the patient's account to the key `label`;
/// returns its address.
fn rotate(c: &mut Cast, from: Address, label: &str) -> Address {
    let (key, sig) = accepted_key(c, label, c.patient, Rights::ALL, 0);
    let rel = c.w.rel();
    c.w.send(from, rel, R::rotateCall { newKey: key.address(), keySig: sig });
    key.address()
}

/// Every patient-side call a key could try on the cast's account, with the right it needs.
fn patient_calls(c: &Cast, far: u64) -> Vec<(&'static str, Vec<u8>, u8)> {
    let delegate = c.delegate;
    vec![
        (
            "create",
            R::createCall { delegate: addr(13), ..create_call(c) }.abi_encode(),
            Rights::DECIDE,
        ),
        ("grant", grant_call(c, addr(31), 1, 0, far).abi_encode(), Rights::SHARE),
        ("accept", R::acceptCall { delegate }.abi_encode(), Rights::DECIDE),
        ("reject", R::rejectCall { delegate }.abi_encode(), Rights::DECIDE),
        ("remove", R::removeCall { delegate }.abi_encode(), Rights::DECIDE),
        (
            "setResearchConsent",
            R::setResearchConsentCall { delegate, optIn: true }.abi_encode(),
            Rights::DECIDE,
        ),
        ("setBreakGlass", R::setBreakGlassCall { allowed: false }.abi_encode(), Rights::DECIDE),
        (
            "setGuardians",
            R::setGuardiansCall { commitment: h("guardians") }.abi_encode(),
            Rights::OWNER,
        ),
        ("removeKey", R::removeKeyCall { key: addr(77) }.abi_encode(), Rights::OWNER),
        ("vetoRecovery", R::vetoRecoveryCall {}.abi_encode(), Rights::OWNER),
    ]
}

mod break_glass;
mod create;
mod custodians;
mod decisions;
mod grants;
mod guardians;
mod keys;
mod pointers;
mod research_consent;
mod storage;
