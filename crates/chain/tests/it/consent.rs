//! The index is fed the logs of real transactions; its decisions must equal the rules
//! at every step, as the contract's state (status, accepted pointers, keys) and the
//! grants sent (events only: nothing on chain stores them) define them.

use alloy::{
    primitives::{Address, B256, Bytes, U256, aliases::U40, keccak256},
    signers::{SignerSync as _, local::PrivateKeySigner},
    sol_types::SolCall,
};
use medrec_chain::consent::{ConsentIndex, Decision, DenyReason};
use medrec_contracts::{Registrar, Relationships, Rights, keys};
use medrec_devchain::{
    deploy::{Deployment, deploy_medrec},
    evm::{BLOCK_TIME, Evm, Outcome},
};
use medrec_primitives::{RelationshipId, Status};
use std::collections::HashMap;

struct World {
    evm: Evm,
    at: Deployment,
    index: ConsentIndex,
    /// The grants as sent: viewer → (pointers, not before, expires at).
    grants: HashMap<Address, (u128, u64, u64)>,
}

const INSTITUTION: Address = Address::repeat_byte(1);
const PROVIDER: Address = Address::repeat_byte(2);
const DELEGATE: Address = Address::repeat_byte(3);
const PATIENT: Address = Address::repeat_byte(4);
const VIEWERS: [Address; 3] =
    [Address::repeat_byte(5), Address::repeat_byte(6), Address::repeat_byte(7)];
const STRANGER: Address = Address::repeat_byte(8);

fn key(seed: u8) -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&B256::repeat_byte(seed)).unwrap()
}

impl World {
    fn new(undo_depth: u64) -> Self {
        let mut evm = Evm::new(31337, 1_767_225_600);
        let (at, _) = deploy_medrec(&mut evm, INSTITUTION, vec![INSTITUTION]).unwrap();
        let mut w = Self { evm, at, index: ConsentIndex::new(undo_depth), grants: HashMap::new() };
        w.send(
            INSTITUTION,
            w.at.registrar,
            &Registrar::registerProviderCall {
                identity: keccak256("p"),
                account: PROVIDER,
                endpoint: "https://gk".into(),
                encryptionKey: keccak256("k"),
            },
        );
        w
    }

    fn send(&mut self, from: Address, to: Address, call: &impl SolCall) {
        match self.evm.transact(from, to, call.abi_encode().into()).unwrap() {
            Outcome::Success { logs, .. } => {
                let block = self.evm.block_number();
                for log in &logs {
                    if log.address == self.at.relationships {
                        self.index.apply_log(block, log);
                    }
                }
                self.index.advance_to(block);
            }
            other => panic!("{} failed: {other:?}", std::any::type_name_of_val(call)),
        }
    }

    fn rel(&mut self, call: &impl SolCall, from: Address) {
        let to = self.at.relationships;
        self.send(from, to, call);
    }

    fn rel_id() -> RelationshipId {
        RelationshipId::derive(PATIENT, DELEGATE)
    }

    fn create(&mut self, delegate: Address) {
        let call = Relationships::createCall {
            delegate,
            queryCommitment: keccak256("q0"),
            dataHash: keccak256("d0"),
            identity: Bytes::from(vec![0x5a; 36]),
        };
        self.rel(&call, PATIENT);
    }

    /// `from` grants `viewer` (the model keeps it: the contract stores nothing).
    fn grant(&mut self, from: Address, viewer: Address, pointers: u128, nb: u64, exp: u64) {
        let call = Relationships::grantCall {
            delegate: DELEGATE,
            viewer,
            pointers,
            notBefore: U40::from(nb),
            expiresAt: U40::from(exp),
            sealedKey: Bytes::new(),
        };
        self.rel(&call, from);
        self.grants.insert(viewer, (pointers, nb, exp));
    }

    /// `from` revokes `viewer`; the model applies it when `from` held SHARE for the
    /// patient's account.
    fn revoke(&mut self, from: Address, viewer: Address) {
        let counts =
            self.acting_for(from).is_some_and(|(a, r)| a == PATIENT && r & Rights::SHARE != 0);
        self.rel(&Relationships::revokeCall { relId: Self::rel_id().0, viewer }, from);
        if counts {
            self.grants.remove(&viewer);
        }
    }

    /// The contract's own `actingFor` (account, rights now).
    fn acting_for(&mut self, key: Address) -> Option<(Address, u8)> {
        let call = Relationships::actingForCall { key };
        let Outcome::Success { output, .. } =
            self.evm.call(key, self.at.relationships, call.abi_encode().into()).unwrap()
        else {
            panic!("actingFor failed")
        };
        let r = Relationships::actingForCall::abi_decode_returns(&output).unwrap();
        Some((r.account, r.rights))
    }

    /// The rules, from the contract's state and the grants sent.
    fn rule(&mut self, requester: Address, pointer: u8, now: u64) -> bool {
        let call = Relationships::relationshipCall { relId: Self::rel_id().0 };
        let Outcome::Success { output, .. } =
            self.evm.call(requester, self.at.relationships, call.abi_encode().into()).unwrap()
        else {
            panic!("relationship failed")
        };
        let r = Relationships::relationshipCall::abi_decode_returns(&output).unwrap();
        let Ok(status) = Status::try_from(r.status) else { return false };
        if self
            .acting_for(requester)
            .is_some_and(|(a, rights)| a == PATIENT && rights & Rights::SEE != 0)
        {
            return status != Status::Deleted;
        }
        let Some(&(set, nb, exp)) = self.grants.get(&requester) else { return false };
        status.is_accepted()
            && pointer < r.acceptedCount
            && (set >> pointer) & 1 == 1
            && nb <= now
            && now < exp
    }

    /// The index agrees with the rules for every requester and pointer, at the time the
    /// next block will have.
    fn check(&mut self, requesters: &[Address]) {
        let now = self.evm.timestamp() + BLOCK_TIME;
        let id = Self::rel_id();
        for &who in requesters.iter().chain(&VIEWERS) {
            for pointer in 0..4u8 {
                let rule = self.rule(who, pointer, now);
                let ours = self.index.decide(who, &id, pointer, now);
                assert_eq!(
                    ours.is_allowed(),
                    rule,
                    "{who} pointer {pointer}: index says {ours:?}, the rules say {rule}"
                );
            }
        }
    }
}

/// `key`'s EIP-712 acceptance of acting for the patient with `rights` until `until`.
fn acceptance(w: &World, key: &PrivateKeySigner, rights: u8, until: u64) -> Bytes {
    let domain = keys::domain(31337, w.at.relationships);
    let digest = keys::key_acceptance_hash(
        &domain,
        &keys::KeyAcceptance {
            account: PATIENT,
            key: key.address(),
            rights,
            until: U40::from(until),
        },
    );
    key.sign_hash_sync(&digest).unwrap().as_bytes().to_vec().into()
}

#[test]
fn the_index_decides_exactly_as_the_rules_through_a_whole_story() {
    let mut w = World::new(0);
    let id = World::rel_id();
    let everyone = [PATIENT, STRANGER, PROVIDER, DELEGATE];
    w.check(&everyone);
    // The patient creates it from the provider's offer: accepted at once.
    w.create(DELEGATE);
    assert_eq!(w.index.relationship(&id).unwrap().status, Status::Accepted);
    assert_eq!(w.index.pointer(&id, 0).unwrap().data_hash, keccak256("d0"));
    let t = w.evm.timestamp();
    w.grant(PATIENT, VIEWERS[0], 0b11, 0, t + 10_000);
    w.check(&everyone);
    assert_eq!(w.index.decide(VIEWERS[0], &id, 0, t + 20), Decision::AllowViewer);
    // A pointer added after acceptance waits for the next acceptance.
    w.rel(
        &Relationships::addPointerCall {
            account: PATIENT,
            queryCommitment: keccak256("q1"),
            dataHash: keccak256("d1"),
            bounty: keccak256("b"),
        },
        DELEGATE,
    );
    assert_eq!(w.index.relationship(&id).unwrap().status, Status::UpdatePending);
    assert_eq!(
        w.index.decide(VIEWERS[0], &id, 1, t + 20),
        Decision::Deny(DenyReason::UnknownPointer)
    );
    // The update's bounty is indexed with its owner, the block's miner.
    let bounty = (0..4).find_map(|seq| w.index.bounty(&id, seq)).expect("the bounty is indexed");
    assert_eq!(bounty.commitment, keccak256("b"));
    assert_eq!(bounty.block, w.evm.block_number());
    assert!(w.index.is_participant(bounty.owner), "a bounty owner is a participant");
    w.check(&everyone);
    w.rel(&Relationships::acceptCall { delegate: DELEGATE }, PATIENT);
    w.check(&everyone);
    w.rel(
        &Relationships::updatePointerCall {
            account: PATIENT,
            pointerId: U256::ZERO,
            dataHash: keccak256("d0'"),
            bounty: keccak256("b"),
        },
        DELEGATE,
    );
    assert_eq!(w.index.pointer(&id, 0).unwrap().data_hash, keccak256("d0'"));
    w.check(&everyone);
    // Time windows: not yet valid, valid, expired.
    let t = w.evm.timestamp();
    w.grant(PATIENT, VIEWERS[1], 0b10, t + 100, t + 200);
    w.check(&everyone);
    w.evm.advance_time(100);
    w.check(&everyone);
    w.evm.advance_time(100);
    w.check(&everyone);
    // Re-grant replaces; a stranger's revocation is recorded on chain and ignored; the
    // patient's removes at once.
    w.grant(PATIENT, VIEWERS[0], 0b01, 0, t + 50_000);
    w.check(&everyone);
    w.revoke(STRANGER, VIEWERS[0]);
    assert!(w.index.grant(&id, VIEWERS[0]).is_some(), "a stranger cannot revoke");
    w.check(&everyone);
    w.revoke(PATIENT, VIEWERS[0]);
    w.check(&everyone);
    assert!(w.index.grant(&id, VIEWERS[0]).is_none());
    // Patients and the viewers they granted are participants; nobody else is.
    assert!(w.index.is_participant(PATIENT) && w.index.is_participant(VIEWERS[1]));
    assert!(!w.index.is_participant(VIEWERS[2]) && !w.index.is_participant(PROVIDER));
    w.rel(&Relationships::setResearchConsentCall { delegate: DELEGATE, optIn: true }, PATIENT);
    assert!(w.index.relationship(&id).unwrap().research_opt_in);
    // The patient sees their own data until they delete the relationship.
    assert_eq!(w.index.decide(PATIENT, &id, 1, 0), Decision::AllowPatient);
    w.rel(&Relationships::removeCall { delegate: DELEGATE }, PATIENT);
    w.check(&everyone);
    assert!(!w.index.decide(PATIENT, &id, 0, 0).is_allowed());
}

#[test]
fn custodians_read_as_the_patient_with_see_and_revoke_only_with_share_and_old_keys_stop() {
    let mut w = World::new(0);
    let id = World::rel_id();
    w.create(DELEGATE);
    let t = w.evm.timestamp();
    w.grant(PATIENT, VIEWERS[0], 0b1, 0, t + 100_000);
    // A spouse who sees, until a date; a helper who may only share.
    let (spouse, helper) = (key(0x31), key(0x32));
    let until = t + 1_000;
    let call = Relationships::addKeyCall {
        key: spouse.address(),
        rights: Rights::SEE,
        until: U40::from(until),
        keySig: acceptance(&w, &spouse, Rights::SEE, until),
    };
    w.rel(&call, PATIENT);
    let call = Relationships::addKeyCall {
        key: helper.address(),
        rights: Rights::SHARE,
        until: U40::ZERO,
        keySig: acceptance(&w, &helper, Rights::SHARE, 0),
    };
    w.rel(&call, PATIENT);
    let (s, h) = (spouse.address(), helper.address());
    assert!(w.index.is_participant(s) && w.index.is_participant(h), "keys are participants");
    w.check(&[PATIENT, s, h]);
    assert_eq!(w.index.decide(s, &id, 0, t + 1), Decision::AllowPatient);
    assert!(!w.index.decide(h, &id, 0, t + 1).is_allowed(), "share without see reads nothing");
    assert!(!w.index.decide(s, &id, 0, until).is_allowed(), "the spouse's powers ended");
    // The spouse cannot revoke (no share): recorded on chain, ignored by the index.
    w.revoke(s, VIEWERS[0]);
    assert!(w.index.grant(&id, VIEWERS[0]).is_some());
    // The helper may: the grant is gone.
    w.revoke(h, VIEWERS[0]);
    assert!(w.index.grant(&id, VIEWERS[0]).is_none());
    w.check(&[PATIENT, s, h]);
    // Removing a custodian cuts it off at once.
    w.rel(&Relationships::removeKeyCall { key: s }, PATIENT);
    assert!(!w.index.decide(s, &id, 0, t + 1).is_allowed());
    assert!(!w.index.is_participant(s), "a retired key is nobody");
    // Rotation: the old key stops at once, the new one reads as the patient.
    let new = key(0x33);
    let call = Relationships::rotateCall {
        newKey: new.address(),
        keySig: acceptance(&w, &new, Rights::ALL, 0),
    };
    w.rel(&call, PATIENT);
    assert_eq!(w.index.account_of(new.address()), Some(PATIENT));
    assert_eq!(w.index.decide(new.address(), &id, 0, t + 1), Decision::AllowPatient);
    assert!(!w.index.decide(PATIENT, &id, 0, t + 1).is_allowed(), "the old key is retired");
    assert_eq!(w.index.account_of(PATIENT), None);
    w.check(&[PATIENT, new.address(), s, h]);
    // A retired key's revocation is ignored too.
    w.grant(new.address(), VIEWERS[1], 0b1, 0, t + 100_000);
    w.revoke(PATIENT, VIEWERS[1]);
    assert!(w.index.grant(&id, VIEWERS[1]).is_some());
    w.check(&[PATIENT, new.address()]);
}

#[test]
fn unknown_relationships_and_strangers_are_denied() {
    let w = World::new(0);
    let d = w.index.decide(VIEWERS[0], &RelationshipId::derive(VIEWERS[1], DELEGATE), 0, 0);
    assert_eq!(d, Decision::Deny(DenyReason::UnknownRelationship));
}

#[test]
fn recent_blocks_can_be_undone_after_a_reorganisation() {
    let mut w = World::new(10);
    let id = World::rel_id();
    w.create(DELEGATE);
    let t = w.evm.timestamp();
    w.grant(PATIENT, VIEWERS[0], 1, 0, t + 10_000);
    let before_revoke = w.index.height();
    w.revoke(PATIENT, VIEWERS[0]);
    assert!(!w.index.decide(VIEWERS[0], &id, 0, t + 1).is_allowed());
    // The revoking block is replaced: the grant is back.
    w.index.revert_to(before_revoke).unwrap();
    assert_eq!(w.index.decide(VIEWERS[0], &id, 0, t + 1), Decision::AllowViewer);
    assert_eq!(w.index.height(), before_revoke);
    // Back past the creation: nothing is known.
    w.index.revert_to(before_revoke - 2).unwrap();
    assert!(w.index.relationship(&id).is_none());
    assert_eq!(w.index.grant_count(), 0);
    let mut shallow = World::new(1);
    for i in 0..3u8 {
        shallow.create(Address::with_last_byte(0xd0 + i));
    }
    let err = shallow.index.revert_to(shallow.index.height() - 2).unwrap_err();
    assert!(err.to_string().contains("rebuild the index"), "{err}");
}
