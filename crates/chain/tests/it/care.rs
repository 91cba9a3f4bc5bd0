//! Groups and break-glass in the consent index, fed the logs of real transactions.

use alloy::{
    primitives::{Address, U256, aliases::U40, keccak256},
    sol_types::SolCall,
};
use medrec_chain::{
    care::{EmergencyReason, group_address},
    consent::{ConsentIndex, Decision, DenyReason},
};
use medrec_contracts::{ContractError, Registrar, Relationships};
use medrec_devchain::{
    deploy::{Deployment, deploy_medrec},
    evm::{Evm, Outcome},
};
use medrec_primitives::RelationshipId;

const INSTITUTION: Address = Address::repeat_byte(1);
const PROVIDER: Address = Address::repeat_byte(2);
const DELEGATE: Address = Address::repeat_byte(3);
const PATIENT: Address = Address::repeat_byte(4);
const NURSE: Address = Address::repeat_byte(5);
const DOCTOR: Address = Address::repeat_byte(6);
const STRANGER: Address = Address::repeat_byte(7);
const GROUP: u64 = 1;

struct World {
    evm: Evm,
    at: Deployment,
    index: ConsentIndex,
}

impl World {
    fn new(undo_depth: u64) -> Self {
        let mut evm = Evm::new(31337, 1_767_225_600);
        let (at, _) = deploy_medrec(&mut evm, INSTITUTION, vec![INSTITUTION]).unwrap();
        let mut w = Self { evm, at, index: ConsentIndex::new(undo_depth) };
        let registrar = w.at.registrar;
        w.ok(
            INSTITUTION,
            registrar,
            &Registrar::registerProviderCall {
                identity: keccak256("p"),
                account: PROVIDER,
                endpoint: "https://gk".into(),
                encryptionKey: keccak256("k"),
            },
        );
        let relationships = w.at.relationships;
        w.ok(
            PATIENT,
            relationships,
            &Relationships::createCall {
                delegate: DELEGATE,
                queryCommitment: keccak256("q"),
                dataHash: keccak256("d"),
                identity: vec![0x5a; 36].into(),
            },
        );
        w
    }

    /// Sends a call; applies its logs to the index (both contracts, as the follower
    /// asks for); the revert as a typed error.
    fn send(
        &mut self,
        from: Address,
        to: Address,
        call: &impl SolCall,
    ) -> Result<(), ContractError> {
        match self.evm.transact(from, to, call.abi_encode().into()).unwrap() {
            Outcome::Success { logs, .. } => {
                let block = self.evm.block_number();
                for log in &logs {
                    if log.address == self.at.relationships || log.address == self.at.registrar {
                        self.index.apply_log(block, log);
                    }
                }
                self.index.advance_to(block);
                Ok(())
            }
            Outcome::Revert { output, .. } => Err(ContractError::decode(&output)),
            other => panic!("halted: {other:?}"),
        }
    }

    fn ok(&mut self, from: Address, to: Address, call: &impl SolCall) {
        self.send(from, to, call).unwrap();
    }

    fn registrar(&mut self, call: &impl SolCall) -> Result<(), ContractError> {
        let to = self.at.registrar;
        self.send(INSTITUTION, to, call)
    }

    fn relationships(&mut self, from: Address, call: &impl SolCall) -> Result<(), ContractError> {
        let to = self.at.relationships;
        self.send(from, to, call)
    }

    fn emergency_group(&mut self) {
        let create =
            Registrar::createGroupCall { name: "Emergency departments".into(), emergency: true };
        self.registrar(&create).unwrap();
        self.registrar(&Registrar::addMemberCall { id: U256::from(GROUP), member: NURSE }).unwrap();
    }

    fn break_glass(&mut self, clinician: Address) -> Result<(), ContractError> {
        let call = Relationships::breakGlassCall {
            account: PATIENT,
            group: U256::from(GROUP),
            reason: EmergencyReason::Unconscious.code(),
        };
        self.relationships(clinician, &call)
    }

    fn now(&self) -> u64 {
        self.evm.timestamp()
    }
}

fn rel() -> RelationshipId {
    RelationshipId::derive(PATIENT, DELEGATE)
}

#[test]
fn a_grant_to_a_group_reaches_its_members_while_they_are_members() {
    let mut w = World::new(0);
    w.emergency_group();
    let (id, group) = w.index.group_at(group_address(GROUP)).expect("the index knows the group");
    assert_eq!((id, group.emergency), (GROUP, true));
    let grant = Relationships::grantCall {
        delegate: DELEGATE,
        viewer: group_address(GROUP),
        pointers: 0b1,
        notBefore: U40::ZERO,
        expiresAt: U40::from(w.now() + 3_600),
        sealedKey: Default::default(),
    };
    w.relationships(PATIENT, &grant).unwrap();
    let now = w.now() + 1;
    assert_eq!(w.index.decide(NURSE, &rel(), 0, now), Decision::AllowViewer);
    assert_eq!(w.index.decide(NURSE, &rel(), 1, now), Decision::Deny(DenyReason::UnknownPointer));
    assert_eq!(w.index.decide(STRANGER, &rel(), 0, now), Decision::Deny(DenyReason::NoGrant));
    assert_eq!(w.index.grants_reaching(&rel(), NURSE).len(), 1);
    assert!(w.index.is_participant(NURSE), "a member may ask a gatekeeper");
    // The grant's window binds members as it binds a viewer.
    assert_eq!(w.index.decide(NURSE, &rel(), 0, now + 3_600), Decision::Deny(DenyReason::Expired));
    // Another member joins and reads; a removed member no longer does.
    w.registrar(&Registrar::addMemberCall { id: U256::from(GROUP), member: DOCTOR }).unwrap();
    assert_eq!(w.index.decide(DOCTOR, &rel(), 0, now), Decision::AllowViewer);
    w.registrar(&Registrar::removeMemberCall { id: U256::from(GROUP), member: NURSE }).unwrap();
    assert_eq!(w.index.decide(NURSE, &rel(), 0, now), Decision::Deny(DenyReason::NoGrant));
    // Revoking the group cuts every member at once.
    let revoke = Relationships::revokeCall { relId: rel().0, viewer: group_address(GROUP) };
    w.relationships(PATIENT, &revoke).unwrap();
    assert_eq!(w.index.decide(DOCTOR, &rel(), 0, now), Decision::Deny(DenyReason::NoGrant));
}

#[test]
fn only_the_managing_institution_changes_a_group() {
    let mut w = World::new(0);
    w.emergency_group();
    let add = Registrar::addMemberCall { id: U256::from(GROUP), member: DOCTOR };
    let to = w.at.registrar;
    let err = w.send(PROVIDER, to, &add).unwrap_err();
    assert_eq!(err, ContractError::NotGroupManager { id: U256::from(GROUP), caller: PROVIDER });
    let err =
        w.registrar(&Registrar::addMemberCall { id: U256::from(9), member: DOCTOR }).unwrap_err();
    assert_eq!(err, ContractError::UnknownGroup { id: U256::from(9) });
    let again = Registrar::addMemberCall { id: U256::from(GROUP), member: NURSE };
    assert_eq!(
        w.registrar(&again).unwrap_err(),
        ContractError::AlreadyMember { id: U256::from(GROUP), member: NURSE }
    );
    let empty = Registrar::createGroupCall { name: String::new(), emergency: false };
    assert_eq!(w.registrar(&empty).unwrap_err(), ContractError::BadGroupName);
    let err =
        w.send(PATIENT, to, &Registrar::createGroupCall { name: "x".into(), emergency: true });
    assert_eq!(err.unwrap_err(), ContractError::NotInstitution { caller: PATIENT });
}

#[test]
fn break_glass_opens_the_emergency_set_for_four_hours_and_the_patient_can_refuse_it() {
    let mut w = World::new(0);
    w.emergency_group();
    // A stranger, or a member of a group that is not an emergency group, cannot.
    assert_eq!(
        w.break_glass(STRANGER).unwrap_err(),
        ContractError::NotEmergencyMember { group: U256::from(GROUP), caller: STRANGER }
    );
    let plain = Registrar::createGroupCall { name: "Pharmacists".into(), emergency: false };
    w.registrar(&plain).unwrap();
    w.registrar(&Registrar::addMemberCall { id: U256::from(2), member: DOCTOR }).unwrap();
    let as_pharmacist = Relationships::breakGlassCall {
        account: PATIENT,
        group: U256::from(2),
        reason: EmergencyReason::LifeThreatening.code(),
    };
    assert!(matches!(
        w.relationships(DOCTOR, &as_pharmacist).unwrap_err(),
        ContractError::NotEmergencyMember { .. }
    ));
    let no_reason =
        Relationships::breakGlassCall { account: PATIENT, group: U256::from(GROUP), reason: 0 };
    assert_eq!(w.relationships(NURSE, &no_reason).unwrap_err(), ContractError::NoReason);
    assert!(w.index.opening(PATIENT, NURSE, w.now()).is_none());

    w.break_glass(NURSE).unwrap();
    let opened = w.now();
    let o = w.index.opening(PATIENT, NURSE, opened).expect("open");
    assert_eq!(
        (o.group, o.reason, o.expires_at),
        (GROUP, EmergencyReason::Unconscious, opened + 4 * 3600)
    );
    assert!(w.index.opening(PATIENT, NURSE, opened + 4 * 3600 - 1).is_some());
    assert!(w.index.opening(PATIENT, NURSE, opened + 4 * 3600).is_none(), "it expires by itself");
    assert!(w.index.opening(PATIENT, DOCTOR, opened).is_none(), "only the clinician who opened it");

    // Refusing ends the opening in force, and the contract refuses the next one.
    w.relationships(PATIENT, &Relationships::setBreakGlassCall { allowed: false }).unwrap();
    assert!(w.index.opening(PATIENT, NURSE, opened + 1).is_none());
    assert_eq!(
        w.break_glass(NURSE).unwrap_err(),
        ContractError::BreakGlassRefused { patient: PATIENT }
    );
    w.relationships(PATIENT, &Relationships::setBreakGlassCall { allowed: true }).unwrap();
    w.break_glass(NURSE).unwrap();
    assert!(w.index.opening(PATIENT, NURSE, w.now()).is_some());
    // A clinician who leaves the emergency group loses the opening at once.
    w.registrar(&Registrar::removeMemberCall { id: U256::from(GROUP), member: NURSE }).unwrap();
    assert!(w.index.opening(PATIENT, NURSE, w.now()).is_none());
}

#[test]
fn a_reorganisation_undoes_groups_and_openings() {
    let mut w = World::new(64);
    let before = w.evm.block_number();
    w.emergency_group();
    w.break_glass(NURSE).unwrap();
    assert!(w.index.opening(PATIENT, NURSE, w.now()).is_some());
    w.index.revert_to(before).unwrap();
    assert!(w.index.opening(PATIENT, NURSE, w.now()).is_none());
    assert!(w.index.group_at(group_address(GROUP)).is_none());
    assert!(!w.index.is_participant(NURSE));
}

#[test]
fn the_group_address_is_the_registrars() {
    let mut w = World::new(0);
    let call = Registrar::groupAddressCall { id: U256::from(GROUP) };
    let Outcome::Success { output, .. } =
        w.evm.call(STRANGER, w.at.registrar, call.abi_encode().into()).unwrap()
    else {
        panic!("groupAddress failed")
    };
    assert_eq!(
        Registrar::groupAddressCall::abi_decode_returns(&output).unwrap(),
        group_address(GROUP)
    );
}
