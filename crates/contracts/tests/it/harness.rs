//! A small world for contract tests: an [`Evm`] with the MedRec contracts deployed and
//! helpers to send calls, expect custom errors and decode events.

use alloy::{
    primitives::{Address, B256, Bytes, Log, aliases::U40, keccak256},
    signers::{SignerSync, local::PrivateKeySigner},
    sol_types::{SolCall, SolEvent},
};
use medrec_contracts::{ContractError, Registrar, Relationships, keys};
use medrec_devchain::{
    deploy::{Deployment, deploy_medrec},
    evm::{Evm, Outcome},
};

/// Genesis time of every test chain (2026-01-01T00:00:00Z).
pub(crate) const GENESIS: u64 = 1_767_225_600;

/// A distinct, deterministic address for test actor `n`.
pub(crate) fn addr(n: u64) -> Address {
    Address::from_word(keccak256(n.to_be_bytes()))
}

/// A deterministic, non-zero 32-byte value named by `label`.
pub(crate) fn h(label: &str) -> B256 {
    keccak256(label.as_bytes())
}

/// A key whose private half the test holds (it signs EIP-712 messages), named by `label`.
pub(crate) fn signer(label: &str) -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&keccak256(format!("key {label}"))).expect("a valid key")
}

/// 36 bytes standing in for a provider's address encrypted for the patient: nothing on
/// chain reads it, only its length is checked.
pub(crate) fn identity() -> Bytes {
    keccak256("identity").iter().chain(&keccak256("tag")[..4]).copied().collect()
}

/// A uint40 argument.
pub(crate) fn u40(v: u64) -> U40 {
    U40::from(v)
}

/// What a successful transaction left behind.
#[derive(Debug)]
pub(crate) struct Receipt {
    /// Gas used.
    #[allow(dead_code)]
    pub(crate) gas_used: u64,
    /// Logs, in order.
    pub(crate) logs: Vec<Log>,
    /// Return data.
    pub(crate) output: Bytes,
}

impl Receipt {
    /// All logs decoding as `E`, in order.
    pub(crate) fn events<E: SolEvent>(&self) -> Vec<E> {
        self.logs.iter().filter_map(|log| E::decode_log(log).ok().map(|l| l.data)).collect()
    }

    /// The one log decoding as `E` (panics unless there is exactly one).
    pub(crate) fn event<E: SolEvent>(&self) -> E {
        let mut all = self.events::<E>();
        assert_eq!(all.len(), 1, "expected exactly one {} event, got {}", E::SIGNATURE, all.len());
        all.remove(0)
    }

    /// Signatures of all the logs' events as emitted by `Registrar` or `Relationships`,
    /// in order (topic 0 mapped to a name).
    pub(crate) fn event_names(&self) -> Vec<&'static str> {
        self.logs.iter().map(|log| event_name(log.topics()[0])).collect()
    }
}

fn event_name(topic: B256) -> &'static str {
    use Registrar as G;
    use Relationships as R;
    let known: &[(B256, &'static str)] = &[
        (G::InstitutionAdded::SIGNATURE_HASH, "InstitutionAdded"),
        (G::InstitutionRemoved::SIGNATURE_HASH, "InstitutionRemoved"),
        (G::ResearcherAdmitted::SIGNATURE_HASH, "ResearcherAdmitted"),
        (G::ResearcherRemoved::SIGNATURE_HASH, "ResearcherRemoved"),
        (G::ProposalCreated::SIGNATURE_HASH, "ProposalCreated"),
        (G::Voted::SIGNATURE_HASH, "Voted"),
        (G::ProposalPassed::SIGNATURE_HASH, "ProposalPassed"),
        (G::IdentityRegistered::SIGNATURE_HASH, "IdentityRegistered"),
        (G::IdentityRemapped::SIGNATURE_HASH, "IdentityRemapped"),
        (G::ProviderUpdated::SIGNATURE_HASH, "ProviderUpdated"),
        (R::RelationshipCreated::SIGNATURE_HASH, "RelationshipCreated"),
        (R::StatusChanged::SIGNATURE_HASH, "StatusChanged"),
        (R::PointerAdded::SIGNATURE_HASH, "PointerAdded"),
        (R::PointerUpdated::SIGNATURE_HASH, "PointerUpdated"),
        (R::BountyPosted::SIGNATURE_HASH, "BountyPosted"),
        (R::ViewerGranted::SIGNATURE_HASH, "ViewerGranted"),
        (R::ViewerRevoked::SIGNATURE_HASH, "ViewerRevoked"),
        (R::ResearchConsentChanged::SIGNATURE_HASH, "ResearchConsentChanged"),
        (R::BreakGlassSettingChanged::SIGNATURE_HASH, "BreakGlassSettingChanged"),
        (R::BreakGlass::SIGNATURE_HASH, "BreakGlass"),
        (R::KeyChanged::SIGNATURE_HASH, "KeyChanged"),
        (R::KeyRotated::SIGNATURE_HASH, "KeyRotated"),
        (R::GuardiansChanged::SIGNATURE_HASH, "GuardiansChanged"),
        (R::RecoveryStarted::SIGNATURE_HASH, "RecoveryStarted"),
        (R::RecoveryVetoed::SIGNATURE_HASH, "RecoveryVetoed"),
    ];
    known.iter().find(|(t, _)| *t == topic).map_or("<unknown event>", |(_, n)| n)
}

/// A chain with the MedRec contracts deployed.
#[derive(Debug)]
pub(crate) struct World {
    /// The EVM (for time travel, coinbase and raw access).
    pub(crate) evm: Evm,
    /// Contract addresses.
    pub(crate) at: Deployment,
}

impl World {
    /// Deploys with the given founding institutions.
    pub(crate) fn with_institutions(institutions: &[Address]) -> Self {
        let mut evm = Evm::new(31337, GENESIS);
        let (at, _) = deploy_medrec(&mut evm, addr(9_999), institutions.to_vec())
            .expect("deployment succeeds");
        Self { evm, at }
    }

    /// Sends `call` to `to` from `from`; panics with the decoded reason if it reverts.
    pub(crate) fn send<C: SolCall>(&mut self, from: Address, to: Address, call: C) -> Receipt {
        match self.evm.transact(from, to, call.abi_encode().into()).expect("EVM accepts the tx") {
            Outcome::Success { gas_used, logs, output } => {
                for log in &logs {
                    assert_eq!(log.address, to, "events come from the called contract");
                }
                Receipt { gas_used, logs, output }
            }
            Outcome::Revert { output, .. } => {
                panic!("{} reverted: {}", C::SIGNATURE, ContractError::decode(&output))
            }
            Outcome::Halt { reason, .. } => panic!("{} halted: {reason}", C::SIGNATURE),
        }
    }

    /// Sends `call` expecting a revert; returns the decoded custom error and checks
    /// that nothing was committed (no logs, unchanged state is checked by callers).
    pub(crate) fn fail<C: SolCall>(
        &mut self,
        from: Address,
        to: Address,
        call: C,
    ) -> ContractError {
        match self.evm.transact(from, to, call.abi_encode().into()).expect("EVM accepts the tx") {
            Outcome::Revert { output, .. } => {
                let err = ContractError::decode(&output);
                assert!(
                    !matches!(err, ContractError::Unrecognized(_) | ContractError::Panic(_)),
                    "{} must revert with a custom error, got {err:?}",
                    C::SIGNATURE
                );
                err
            }
            other => panic!("{} was expected to revert, got {other:?}", C::SIGNATURE),
        }
    }

    /// Runs a view call and decodes its return value.
    pub(crate) fn view<C: SolCall>(&mut self, to: Address, call: C) -> C::Return {
        match self.evm.call(addr(0), to, call.abi_encode().into()).expect("EVM accepts the call") {
            Outcome::Success { output, .. } => C::abi_decode_returns(&output).expect("decodes"),
            other => panic!("view {} failed: {other:?}", C::SIGNATURE),
        }
    }

    /// Like [`World::view`] but expects a revert; returns the decoded error.
    pub(crate) fn view_fails<C: SolCall>(&mut self, to: Address, call: C) -> ContractError {
        match self.evm.call(addr(0), to, call.abi_encode().into()).expect("EVM accepts the call") {
            Outcome::Revert { output, .. } => ContractError::decode(&output),
            other => panic!("view {} was expected to revert, got {other:?}", C::SIGNATURE),
        }
    }

    /// The registrar's address.
    pub(crate) const fn reg(&self) -> Address {
        self.at.registrar
    }

    /// The relationships contract's address.
    pub(crate) const fn rel(&self) -> Address {
        self.at.relationships
    }

    /// `key`'s EIP-712 acceptance to act for `account` with `rights` until `until`.
    pub(crate) fn key_sig(
        &self,
        key: &PrivateKeySigner,
        account: Address,
        rights: u8,
        until: u64,
    ) -> Bytes {
        let acceptance =
            keys::KeyAcceptance { account, key: key.address(), rights, until: u40(until) };
        let digest = keys::key_acceptance_hash(&self.domain(), &acceptance);
        key.sign_hash_sync(&digest).expect("signs").as_bytes().to_vec().into()
    }

    /// `guardian`'s EIP-712 approval of moving `account` to `new_key` at `nonce`.
    pub(crate) fn recovery_sig(
        &self,
        guardian: &PrivateKeySigner,
        account: Address,
        new_key: Address,
        nonce: u32,
    ) -> Bytes {
        let recovery = keys::Recovery { account, newKey: new_key, nonce };
        let digest = keys::recovery_hash(&self.domain(), &recovery);
        guardian.sign_hash_sync(&digest).expect("signs").as_bytes().to_vec().into()
    }

    fn domain(&self) -> alloy::sol_types::Eip712Domain {
        keys::domain(self.evm.chain_id(), self.rel())
    }

    /// The slot of `key` in the relationships contract.
    pub(crate) fn key_of(&mut self, key: Address) -> Relationships::Key {
        let rel = self.rel();
        self.view(rel, Relationships::keyOfCall { key })
    }
}

/// The cast of a relationship scenario, with a registered provider and patient.
#[derive(Debug)]
pub(crate) struct Cast {
    /// The world.
    pub(crate) w: World,
    /// The certified institution.
    pub(crate) institution: Address,
    /// A registered provider.
    pub(crate) provider: Address,
    /// The provider's delegate for the relationship with `patient`.
    pub(crate) delegate: Address,
    /// A registered patient.
    pub(crate) patient: Address,
    /// A would-be viewer (a pharmacist).
    pub(crate) viewer: Address,
    /// Someone with no role at all.
    pub(crate) stranger: Address,
}

impl Cast {
    /// Deploys, registers a provider and a patient; no relationship yet.
    pub(crate) fn new() -> Self {
        let institution = addr(1);
        let mut w = World::with_institutions(&[institution]);
        let (provider, patient) = (addr(10), addr(20));
        w.send(
            institution,
            w.reg(),
            Registrar::registerProviderCall {
                identity: h("provider"),
                account: provider,
                endpoint: "https://gk.hospital.example".into(),
                encryptionKey: h("provider key"),
            },
        );
        w.send(
            institution,
            w.reg(),
            Registrar::registerPatientCall { identity: h("patient"), account: patient },
        );
        Self {
            w,
            institution,
            provider,
            delegate: addr(11),
            patient,
            viewer: addr(30),
            stranger: addr(40),
        }
    }

    /// The id of the patient's relationship with `delegate`.
    pub(crate) fn rel_id(&self) -> B256 {
        medrec_primitives::RelationshipId::derive(self.patient, self.delegate).0
    }

    /// The patient's key creates the relationship from the provider's offer (pointer 0,
    /// already accepted); returns the receipt.
    pub(crate) fn create(&mut self) -> Receipt {
        let rel = self.w.rel();
        self.w.send(
            self.patient,
            rel,
            Relationships::createCall {
                delegate: self.delegate,
                queryCommitment: h("query 0"),
                dataHash: h("data 0"),
                identity: identity(),
            },
        )
    }

    /// A cast whose relationship exists (created by the patient: accepted).
    pub(crate) fn accepted(mut self) -> Self {
        self.create();
        self
    }

    /// The stored relationship.
    pub(crate) fn stored(&mut self) -> Relationships::Relationship {
        let (rel, id) = (self.w.rel(), self.rel_id());
        self.w.view(rel, Relationships::relationshipCall { relId: id })
    }

    /// The patient grants `viewer` `pointers` from now for `secs` seconds.
    pub(crate) fn grant(&mut self, viewer: Address, pointers: u128, secs: u64) -> Receipt {
        let (rel, until) = (self.w.rel(), self.w.evm.timestamp() + secs);
        self.w.send(
            self.patient,
            rel,
            Relationships::grantCall {
                delegate: self.delegate,
                viewer,
                pointers,
                notBefore: u40(0),
                expiresAt: u40(until),
                sealedKey: Bytes::new(),
            },
        )
    }
}
