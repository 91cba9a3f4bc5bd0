//! The index is fed the logs of real transactions; its decisions must equal the
//! contract's own `canView` at every step.

use alloy::{
    primitives::{Address, U256, aliases::U40, keccak256},
    sol_types::SolCall,
};
use medrec_chain::consent::{ConsentIndex, Decision, DenyReason};
use medrec_contracts::{Registrar, Relationships};
use medrec_devchain::{
    deploy::{Deployment, deploy_medrec},
    evm::{BLOCK_TIME, Evm, Outcome},
};
use medrec_primitives::{RelationshipId, Status};

struct World {
    evm: Evm,
    at: Deployment,
    index: ConsentIndex,
}

const INSTITUTION: Address = Address::repeat_byte(1);
const PROVIDER: Address = Address::repeat_byte(2);
const DELEGATE: Address = Address::repeat_byte(3);
const PATIENT: Address = Address::repeat_byte(4);
const VIEWERS: [Address; 3] =
    [Address::repeat_byte(5), Address::repeat_byte(6), Address::repeat_byte(7)];

impl World {
    fn new(undo_depth: u64) -> Self {
        let mut evm = Evm::new(31337, 1_767_225_600);
        let (at, _) = deploy_medrec(&mut evm, INSTITUTION, vec![INSTITUTION]).unwrap();
        let mut w = Self { evm, at, index: ConsentIndex::new(undo_depth) };
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

    /// The index agrees with the contract's canView for every viewer and pointer, at
    /// the time the next block will have.
    fn check(&mut self) {
        let now = self.evm.timestamp() + BLOCK_TIME;
        let id = Self::rel_id();
        for viewer in VIEWERS {
            for pointer in 0..4u8 {
                let call = Relationships::canViewCall {
                    relId: id.0,
                    viewer,
                    pointerId: U256::from(pointer),
                };
                let Outcome::Success { output, .. } =
                    self.evm.call(viewer, self.at.relationships, call.abi_encode().into()).unwrap()
                else {
                    panic!("canView failed")
                };
                let chain = Relationships::canViewCall::abi_decode_returns(&output).unwrap();
                let ours = self.index.decide(viewer, &id, pointer, now);
                assert_eq!(
                    ours.is_allowed(),
                    chain,
                    "viewer {viewer} pointer {pointer}: index says {ours:?}, contract says {chain}"
                );
            }
        }
    }
}

fn grant(
    viewer: Address,
    pointers: u128,
    not_before: u64,
    expires_at: u64,
) -> Relationships::grantCall {
    Relationships::grantCall {
        delegate: DELEGATE,
        viewer,
        pointers,
        notBefore: U40::from(not_before),
        expiresAt: U40::from(expires_at),
    }
}

#[test]
fn the_index_decides_exactly_as_the_contract_through_a_whole_story() {
    let mut w = World::new(0);
    let id = World::rel_id();
    w.check();
    w.rel(
        &Relationships::createCall {
            patient: PATIENT,
            delegate: DELEGATE,
            queryCommitment: keccak256("q0"),
            dataHash: keccak256("d0"),
        },
        PROVIDER,
    );
    assert_eq!(w.index.relationship(&id).unwrap().status, Status::New);
    assert_eq!(w.index.pointer(&id, 0).unwrap().data_hash, keccak256("d0"));
    // A grant before acceptance is inert.
    let t = w.evm.timestamp();
    w.rel(&grant(VIEWERS[0], 0b11, 0, t + 10_000), PATIENT);
    w.check();
    assert_eq!(w.index.decide(VIEWERS[0], &id, 0, t + 20), Decision::Deny(DenyReason::NotAccepted));
    w.rel(&Relationships::acceptCall { delegate: DELEGATE }, PATIENT);
    w.check();
    // A pointer added after acceptance waits for the next acceptance.
    w.rel(
        &Relationships::addPointerCall {
            patient: PATIENT,
            queryCommitment: keccak256("q1"),
            dataHash: keccak256("d1"),
            bounty: keccak256("b"),
        },
        DELEGATE,
    );
    assert_eq!(w.index.relationship(&id).unwrap().status, Status::UpdatePending);
    // The update's bounty is indexed with its owner, the block's miner.
    let bounty = (0..4).find_map(|seq| w.index.bounty(&id, seq)).expect("the bounty is indexed");
    assert_eq!(bounty.commitment, keccak256("b"));
    assert_eq!(bounty.block, w.evm.block_number());
    assert!(w.index.is_participant(bounty.owner), "a bounty owner is a participant");
    w.check();
    w.rel(&Relationships::acceptCall { delegate: DELEGATE }, PATIENT);
    w.check();
    w.rel(
        &Relationships::updatePointerCall {
            patient: PATIENT,
            pointerId: U256::ZERO,
            dataHash: keccak256("d0'"),
            bounty: keccak256("b"),
        },
        DELEGATE,
    );
    assert_eq!(w.index.pointer(&id, 0).unwrap().data_hash, keccak256("d0'"));
    w.check();
    // Time windows: not yet valid, valid, expired.
    let t = w.evm.timestamp();
    w.rel(&grant(VIEWERS[1], 0b10, t + 100, t + 200), PATIENT);
    w.check();
    w.evm.advance_time(100);
    w.check();
    w.evm.advance_time(100);
    w.check();
    // Re-grant replaces, revoke removes at once.
    w.rel(&grant(VIEWERS[0], 0b01, 0, t + 50_000), PATIENT);
    w.check();
    w.rel(&Relationships::revokeCall { delegate: DELEGATE, viewer: VIEWERS[0] }, PATIENT);
    w.check();
    assert!(w.index.grant(&id, VIEWERS[0]).is_none());
    // Patients and the viewers they granted are participants; nobody else is.
    assert!(w.index.is_participant(PATIENT) && w.index.is_participant(VIEWERS[1]));
    assert!(!w.index.is_participant(VIEWERS[2]) && !w.index.is_participant(PROVIDER));
    w.rel(&Relationships::setResearchConsentCall { delegate: DELEGATE, optIn: true }, PATIENT);
    assert!(w.index.relationship(&id).unwrap().research_opt_in);
    // The patient sees their own data until they delete the relationship.
    assert_eq!(w.index.decide(PATIENT, &id, 1, 0), Decision::AllowPatient);
    w.rel(&Relationships::removeCall { delegate: DELEGATE }, PATIENT);
    w.check();
    assert!(!w.index.decide(PATIENT, &id, 0, 0).is_allowed());
    assert_eq!(w.index.relationships_of(PROVIDER).count(), 1);
    assert_eq!(w.index.relationships_of(INSTITUTION).count(), 0);
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
    w.rel(
        &Relationships::createCall {
            patient: PATIENT,
            delegate: DELEGATE,
            queryCommitment: keccak256("q0"),
            dataHash: keccak256("d0"),
        },
        PROVIDER,
    );
    w.rel(&Relationships::acceptCall { delegate: DELEGATE }, PATIENT);
    let t = w.evm.timestamp();
    w.rel(&grant(VIEWERS[0], 1, 0, t + 10_000), PATIENT);
    let before_revoke = w.index.height();
    w.rel(&Relationships::revokeCall { delegate: DELEGATE, viewer: VIEWERS[0] }, PATIENT);
    assert!(!w.index.decide(VIEWERS[0], &id, 0, t + 1).is_allowed());
    // The revoking block is replaced: the grant is back.
    w.index.revert_to(before_revoke).unwrap();
    assert_eq!(w.index.decide(VIEWERS[0], &id, 0, t + 1), Decision::AllowViewer);
    assert_eq!(w.index.height(), before_revoke);
    // Back past the creation: nothing is known.
    w.index.revert_to(before_revoke - 3).unwrap();
    assert!(w.index.relationship(&id).is_none());
    assert_eq!(w.index.grant_count(), 0);
    let mut shallow = World::new(1);
    for i in 0..3u8 {
        shallow.rel(
            &Relationships::createCall {
                patient: PATIENT,
                delegate: Address::with_last_byte(0xd0 + i),
                queryCommitment: keccak256("q"),
                dataHash: keccak256("d"),
            },
            PROVIDER,
        );
    }
    let err = shallow.index.revert_to(shallow.index.height() - 2).unwrap_err();
    assert!(err.to_string().contains("rebuild the index"), "{err}");
}
