//! `Relationships`: guardian recovery. The account stores only a commitment to its
//! guardians; a recovery names them, carries the signatures of `threshold` of them and
//! the new key's acceptance, waits 72 hours for the owner key's veto, then anyone
//! completes it as a rotation.

use super::*;
use medrec_contracts::keys::guardian_commitment;

const LOCK: u64 = 72 * 3600;

/// Three guardians, two of whom must sign, committed with a salt.
struct Guardians {
    keys: Vec<PrivateKeySigner>,
    /// Their addresses, ascending, as committed.
    list: Vec<Address>,
    salt: B256,
    threshold: u8,
}

impl Guardians {
    fn new() -> Self {
        let keys: Vec<_> =
            ["ana", "ben", "cy"].iter().map(|n| signer(&format!("guardian {n}"))).collect();
        let mut list: Vec<Address> = keys.iter().map(PrivateKeySigner::address).collect();
        list.sort();
        Self { keys, list, salt: h("guardian salt"), threshold: 2 }
    }

    fn commitment(&self) -> B256 {
        guardian_commitment(self.salt, &self.list, self.threshold)
    }

    /// A recovery of the cast's account to the key `new`, signed by guardians `who`
    /// (indexes into `keys`) for `nonce`.
    fn start(
        &self,
        c: &Cast,
        new: &PrivateKeySigner,
        who: &[usize],
        nonce: u32,
    ) -> R::startRecoveryCall {
        let signatures = who
            .iter()
            .map(|&i| c.w.recovery_sig(&self.keys[i], c.patient, new.address(), nonce))
            .collect();
        R::startRecoveryCall {
            account: c.patient,
            newKey: new.address(),
            keySig: c.w.key_sig(new, c.patient, Rights::ALL, 0),
            guardians: self.list.clone(),
            threshold: self.threshold,
            salt: self.salt,
            signatures,
        }
    }
}

/// A cast whose patient has set the three guardians.
fn guarded() -> (Cast, Guardians) {
    let mut c = cast_in(Status::UpdatePending);
    let g = Guardians::new();
    let (rel, patient) = (c.w.rel(), c.patient);
    let r = c.w.send(patient, rel, R::setGuardiansCall { commitment: g.commitment() });
    assert_eq!(
        r.event::<R::GuardiansChanged>(),
        R::GuardiansChanged { account: patient, actor: patient }
    );
    assert!(c.w.view(rel, R::hasGuardiansCall { account: patient }));
    (c, g)
}

#[test]
fn two_of_three_guardians_move_the_account_after_the_time_lock_and_retire_the_old_key() {
    let (mut c, g) = guarded();
    let (rel, patient, delegate, stranger) = (c.w.rel(), c.patient, c.delegate, c.stranger);
    let new = signer("recovered");
    let r = c.w.send(stranger, rel, g.start(&c, &new, &[2, 0], 0));
    let ready_at = c.w.evm.timestamp() + LOCK;
    assert_eq!(
        r.event::<R::RecoveryStarted>(),
        R::RecoveryStarted { account: patient, newKey: new.address(), readyAt: u40(ready_at) }
    );
    let waiting = c.w.view(rel, R::recoveryOfCall { account: patient });
    assert_eq!((waiting.newKey, waiting.readyAt, waiting.nonce), (new.address(), u40(ready_at), 0));

    // Locked until readyAt, inclusive of its last second.
    let complete = R::completeRecoveryCall { account: patient, oldKey: patient };
    assert_eq!(
        c.w.fail(stranger, rel, complete.clone()),
        ContractError::RecoveryLocked { ready_at }
    );
    c.w.evm.advance_time(ready_at - 1 - c.w.evm.timestamp() - BLOCK);
    // A call in the next block, one second before readyAt.
    assert_eq!(c.w.view_fails(rel, complete.clone()), ContractError::RecoveryLocked { ready_at });
    assert_eq!(c.w.key_of(patient).rights, Rights::ALL, "the old key acts meanwhile");
    c.w.evm.advance_time(1);

    let r = c.w.send(stranger, rel, complete);
    assert_eq!(c.w.evm.timestamp(), ready_at);
    assert_eq!(
        r.event::<R::KeyRotated>(),
        R::KeyRotated { account: patient, oldKey: patient, newKey: new.address(), actor: stranger }
    );
    assert!(r.gas_used <= 60_000, "completing costs {} gas", r.gas_used);
    assert_eq!(
        c.w.fail(patient, rel, R::acceptCall { delegate }),
        ContractError::KeyNotAllowed { key: patient, needed: Rights(Rights::DECIDE) }
    );
    let r = c.w.send(new.address(), rel, R::acceptCall { delegate });
    assert_eq!(r.event::<R::StatusChanged>().actor, new.address());
    assert_eq!(status(&mut c), ACCEPTED, "the relationship carried over");

    // The guardians are now known: the commitment is cleared, the nonce moved on.
    assert!(!c.w.view(rel, R::hasGuardiansCall { account: patient }));
    let done = c.w.view(rel, R::recoveryOfCall { account: patient });
    assert_eq!((done.newKey, done.readyAt, done.nonce), (Address::ZERO, u40(0), 1));
    let again = g.start(&c, &signer("again"), &[0, 1], 1);
    assert_eq!(
        c.w.fail(stranger, rel, again),
        ContractError::GuardiansMismatch { account: patient }
    );
    assert_eq!(
        c.w.fail(
            stranger,
            rel,
            R::completeRecoveryCall { account: patient, oldKey: new.address() }
        ),
        ContractError::NoRecovery { account: patient }
    );
}

#[test]
fn a_recovery_needs_the_committed_guardians_salt_and_threshold() {
    let (mut c, g) = guarded();
    let (rel, patient, stranger) = (c.w.rel(), c.patient, c.stranger);
    let new = signer("recovered");
    let good = g.start(&c, &new, &[0, 1], 0);
    let mut reversed = g.list.clone();
    reversed.reverse();
    let outsider = signer("outsider").address();
    let cases = [
        ("another salt", R::startRecoveryCall { salt: h("other salt"), ..good.clone() }),
        ("a lower threshold", R::startRecoveryCall { threshold: 1, ..good.clone() }),
        ("a higher threshold", R::startRecoveryCall { threshold: 3, ..good.clone() }),
        (
            "one guardian left out",
            R::startRecoveryCall { guardians: g.list[..2].to_vec(), ..good.clone() },
        ),
        (
            "an outsider added",
            R::startRecoveryCall {
                guardians: [g.list.clone(), vec![outsider]].concat(),
                ..good.clone()
            },
        ),
        (
            "the guardians out of order",
            R::startRecoveryCall { guardians: reversed, ..good.clone() },
        ),
    ];
    for (label, call) in cases {
        assert_eq!(
            c.w.fail(stranger, rel, call),
            ContractError::GuardiansMismatch { account: patient },
            "{label}"
        );
    }
    // An account without guardians, or whose guardians were removed.
    let other = R::startRecoveryCall { account: stranger, ..good.clone() };
    assert_eq!(
        c.w.fail(patient, rel, other),
        ContractError::GuardiansMismatch { account: stranger }
    );
    c.w.send(patient, rel, R::setGuardiansCall { commitment: B256::ZERO });
    assert!(!c.w.view(rel, R::hasGuardiansCall { account: patient }));
    assert_eq!(
        c.w.fail(stranger, rel, good),
        ContractError::GuardiansMismatch { account: patient }
    );
    assert_eq!(c.w.view(rel, R::recoveryOfCall { account: patient }).newKey, Address::ZERO);
}

#[test]
fn a_recovery_needs_threshold_distinct_guardians_signatures() {
    let (mut c, g) = guarded();
    let (rel, patient, stranger) = (c.w.rel(), c.patient, c.stranger);
    let new = signer("recovered");
    let outsider = signer("outsider");
    let one = g.start(&c, &new, &[1], 0);
    let sig =
        |key: &PrivateKeySigner, nonce: u32| c.w.recovery_sig(key, patient, new.address(), nonce);
    let cases: [(&str, Vec<Bytes>, u64); 6] = [
        ("none", vec![], 0),
        ("one of two", one.signatures.clone(), 1),
        ("the same guardian twice", vec![sig(&g.keys[1], 0), sig(&g.keys[1], 0)], 1),
        ("a guardian and an outsider", vec![sig(&g.keys[1], 0), sig(&outsider, 0)], 1),
        ("one for a later nonce", vec![sig(&g.keys[1], 0), sig(&g.keys[0], 1)], 1),
        (
            "one for another new key",
            vec![sig(&g.keys[1], 0), c.w.recovery_sig(&g.keys[0], patient, outsider.address(), 0)],
            1,
        ),
    ];
    for (label, signatures, signed) in cases {
        let call = R::startRecoveryCall { signatures, ..one.clone() };
        assert_eq!(
            c.w.fail(stranger, rel, call),
            ContractError::NotEnoughGuardians {
                signed: U256::from(signed),
                threshold: U256::from(2)
            },
            "{label}"
        );
    }
    // The new key's own acceptance is needed too, whoever signs for it.
    let full = g.start(&c, &new, &[0, 1], 0);
    for (label, key_sig) in [
        ("absent", Bytes::new()),
        ("by a guardian", c.w.key_sig(&g.keys[0], patient, Rights::ALL, 0)),
    ] {
        let call = R::startRecoveryCall { keySig: key_sig, ..full.clone() };
        assert_eq!(
            c.w.fail(stranger, rel, call),
            ContractError::BadKeySignature { key: new.address() },
            "{label}"
        );
    }
    // A key that acts already cannot be the new key.
    let call = R::startRecoveryCall { newKey: patient, ..full };
    assert_eq!(c.w.fail(stranger, rel, call), ContractError::KeyInUse { key: patient });
    assert_eq!(c.w.view(rel, R::recoveryOfCall { account: patient }).newKey, Address::ZERO);

    // Three of two is fine, and a second recovery waits for the first.
    c.w.send(stranger, rel, g.start(&c, &new, &[0, 1, 2], 0));
    let other = g.start(&c, &signer("other"), &[0, 1], 0);
    assert_eq!(c.w.fail(stranger, rel, other), ContractError::RecoveryPending { account: patient });
}

#[test]
fn the_owner_key_vetoes_and_the_vetoed_signatures_no_longer_work() {
    let (mut c, g) = guarded();
    let (rel, patient, stranger) = (c.w.rel(), c.patient, c.stranger);
    let new = signer("recovered");
    let first = g.start(&c, &new, &[0, 1], 0);
    c.w.send(stranger, rel, first.clone());

    // Nobody but the owner key vetoes: a custodian lacks OWNER, anyone else has no
    // recovery of its own account waiting.
    let custodian = add_key(&mut c, "custodian", Rights::SEE | Rights::SHARE | Rights::DECIDE, 0);
    assert_eq!(
        c.w.fail(custodian, rel, R::vetoRecoveryCall {}),
        ContractError::KeyNotAllowed { key: custodian, needed: Rights(Rights::OWNER) }
    );
    assert_eq!(
        c.w.fail(stranger, rel, R::vetoRecoveryCall {}),
        ContractError::NoRecovery { account: stranger }
    );
    assert_eq!(
        c.w.fail(new.address(), rel, R::vetoRecoveryCall {}),
        ContractError::NoRecovery { account: new.address() },
        "the waiting new key is not a key of the account yet"
    );

    let r = c.w.send(patient, rel, R::vetoRecoveryCall {});
    assert_eq!(
        r.event::<R::RecoveryVetoed>(),
        R::RecoveryVetoed { account: patient, actor: patient }
    );
    let vetoed = c.w.view(rel, R::recoveryOfCall { account: patient });
    assert_eq!((vetoed.newKey, vetoed.readyAt, vetoed.nonce), (Address::ZERO, u40(0), 1));
    c.w.evm.advance_time(LOCK);
    let complete = R::completeRecoveryCall { account: patient, oldKey: patient };
    assert_eq!(c.w.fail(stranger, rel, complete), ContractError::NoRecovery { account: patient });
    assert_eq!(
        c.w.fail(patient, rel, R::vetoRecoveryCall {}),
        ContractError::NoRecovery { account: patient }
    );

    // Replaying the same signatures fails: they were for nonce 0.
    assert_eq!(
        c.w.fail(stranger, rel, first),
        ContractError::NotEnoughGuardians { signed: U256::ZERO, threshold: U256::from(2) }
    );
    // Signed again for nonce 1, the guardians start it anew.
    c.w.send(stranger, rel, g.start(&c, &new, &[0, 1], 1));
    assert_eq!(c.w.view(rel, R::recoveryOfCall { account: patient }).nonce, 1);
    assert_eq!(c.w.key_of(patient).rights, Rights::ALL, "the veto kept the patient's key");
}

#[test]
fn completing_names_the_current_owner_key() {
    let (mut c, g) = guarded();
    let (rel, patient, stranger) = (c.w.rel(), c.patient, c.stranger);
    let new = signer("recovered");
    c.w.send(stranger, rel, g.start(&c, &new, &[0, 2], 0));
    let custodian = add_key(&mut c, "custodian", Rights::SEE, 0);
    // The owner rotates during the lock (without vetoing): the rotated key is the owner now.
    let rotated = rotate(&mut c, patient, "rotated");
    c.w.evm.advance_time(LOCK);
    for (label, old) in [
        ("retired key", patient),
        ("custodian", custodian),
        ("stranger", stranger),
        ("the new key", new.address()),
    ] {
        assert_eq!(
            c.w.fail(stranger, rel, R::completeRecoveryCall { account: patient, oldKey: old }),
            ContractError::NotOwnerKey { account: patient, key: old },
            "{label}"
        );
    }
    c.w.send(stranger, rel, R::completeRecoveryCall { account: patient, oldKey: rotated });
    assert_eq!(c.w.key_of(rotated).rights, 0, "retired");
    assert_eq!(c.w.key_of(new.address()).rights, Rights::ALL);
    assert_eq!(c.w.key_of(custodian).rights, Rights::SEE, "custodians stay");
}

#[test]
fn only_the_owner_key_sets_the_guardians() {
    let mut c = cast_in(Status::Accepted);
    let (rel, patient, stranger) = (c.w.rel(), c.patient, c.stranger);
    let custodian = add_key(&mut c, "custodian", Rights::SEE | Rights::SHARE | Rights::DECIDE, 0);
    let commitment = Guardians::new().commitment();
    assert_eq!(
        c.w.fail(custodian, rel, R::setGuardiansCall { commitment }),
        ContractError::KeyNotAllowed { key: custodian, needed: Rights(Rights::OWNER) }
    );
    // A stranger sets guardians for its own account only.
    let r = c.w.send(stranger, rel, R::setGuardiansCall { commitment });
    assert_eq!(r.event::<R::GuardiansChanged>().account, stranger);
    assert!(!c.w.view(rel, R::hasGuardiansCall { account: patient }));
    // The commitment reveals nothing but itself: no guardian address is in the log.
    let g = Guardians::new();
    let r = c.w.send(patient, rel, R::setGuardiansCall { commitment });
    for guardian in &g.list {
        assert!(!r.logs[0].data.data.windows(20).any(|w| w == guardian.as_slice()));
    }
}
