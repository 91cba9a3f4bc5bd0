//! Gas used by every MedRec operation, measured on the in-process EVM.
//!
//! [`measure`] deploys the contracts on a fresh [`Evm`] and runs one realistic
//! scenario (institution registers a provider and a patient, the provider creates a
//! relationship, the patient accepts and shares, the provider updates a pointer with a
//! bounty, the provider anchors its access log twice, and so on), recording the gas of
//! each transaction as a receipt would report it. The result is deterministic: it is the committed gas snapshot
//! (`contracts/gas-snapshot.json`) that CI compares against.

use crate::{
    deploy::{DeployError, deploy_medrec},
    evm::{Evm, EvmError, Outcome},
};
use alloy::{
    consensus::{SignableTransaction, TxEip1559},
    eips::Encodable2718,
    network::TxSignerSync,
    primitives::{Address, B256, Bytes, TxKind, U256, address, aliases::U40, b256, keccak256},
    signers::SignerSync,
    signers::local::PrivateKeySigner,
    sol_types::SolCall,
};
use medrec_contracts::{AccessAnchors, ContractError, Registrar, Relationships, Rights, keys};
use std::collections::BTreeMap;

/// Chain id used when signing the measured transaction (anvil's and the devchain's default).
pub const CHAIN_ID: u64 = 31337;

/// Gas used per operation, keyed by operation name (sorted), plus
/// `create_relationship_tx_bytes`, the size of a signed creation transaction.
pub type GasReport = BTreeMap<&'static str, u64>;

/// Why the measurement could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum GasError {
    /// Deploying the contracts failed.
    #[error(transparent)]
    Deploy(#[from] DeployError),
    /// The EVM refused a transaction.
    #[error(transparent)]
    Evm(#[from] EvmError),
    /// A step of the scenario reverted (the scenario and the contracts disagree).
    #[error("{step} reverted: {reason}")]
    Reverted {
        /// The step.
        step: &'static str,
        /// The decoded reason.
        reason: ContractError,
    },
    /// A step halted.
    #[error("{step} failed: {outcome:?}")]
    Failed {
        /// The step.
        step: &'static str,
        /// What happened.
        outcome: Outcome,
    },
    /// Signing the sample transaction failed.
    #[error("signing failed: {0}")]
    Sign(#[from] alloy::signers::Error),
}

// Fixed, well-known development identities (never use them on a real network).
const INSTITUTION: Address = address!("0x1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d");
const PROVIDER: Address = address!("0xa0ee7a142d267c1f36714e4a8f75612f20a79720");
const VIEWER: Address = address!("0x90f79bf6eb2c4f870365e785982e1f101e93b906");
const DELEGATE: Address = address!("0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc");
const DELEGATE_2: Address = address!("0x15d34aaf54267db7d7c367839aaf71a00a2c6a65");
const MINER: Address = address!("0x9965507d1a55bcc2695c58ba16fb37d819b0a4dc");
const CLINICIAN: Address = address!("0x976ea74026e726554db657fa54763abd0c3a0aa9");
/// Private key of the measured patient: the second account of the standard test
/// mnemonic `test test ... junk` (public knowledge, dev only).
const PATIENT_KEY: B256 =
    b256!("0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d");

/// A fixed development key from a seed byte (dev only).
fn dev_key(seed: u8) -> Result<PrivateKeySigner, GasError> {
    PrivateKeySigner::from_bytes(&B256::repeat_byte(seed))
        .map_err(|e| GasError::Sign(alloy::signers::Error::other(e)))
}

/// 65-byte signature of `key` over an EIP-712 digest.
fn sign(key: &PrivateKeySigner, digest: B256) -> Result<Bytes, GasError> {
    Ok(key.sign_hash_sync(&digest)?.as_bytes().to_vec().into())
}

/// Runs the scenario and returns the gas of each operation.
pub fn measure() -> Result<GasReport, GasError> {
    let patient_signer =
        PrivateKeySigner::from_bytes(&PATIENT_KEY).map_err(alloy::signers::Error::other)?;
    let patient = patient_signer.address();
    let mut evm = Evm::new(CHAIN_ID, 1_767_225_600);
    evm.set_coinbase(MINER);
    let (deployment, [registrar_gas, relationships_gas, anchors_gas]) =
        deploy_medrec(&mut evm, INSTITUTION, vec![INSTITUTION])?;
    let mut report = GasReport::new();
    report.insert("deploy_registrar", registrar_gas);
    report.insert("deploy_relationships", relationships_gas);
    report.insert("deploy_access_anchors", anchors_gas);
    let mut run = Runner { evm: &mut evm, report: &mut report };

    let (reg, rel) = (deployment.registrar, deployment.relationships);
    let domain = keys::domain(CHAIN_ID, rel);
    let h = |s: &str| keccak256(s.as_bytes());
    // A provider's address encrypted for the patient (36 bytes) and a relationship key
    // sealed for a viewer (80 bytes): random-looking bytes of the real sizes.
    let identity: Bytes = h("identity").iter().chain(&h("tag")[..4]).copied().collect();
    let sealed: Bytes = [h("ephemeral"), h("sealed key"), h("tag")].concat()[..80].to_vec().into();

    run.step(
        "register_provider",
        INSTITUTION,
        reg,
        &Registrar::registerProviderCall {
            identity: h("provider:general-hospital"),
            account: PROVIDER,
            endpoint: "https://gatekeeper.general-hospital.example".into(),
            encryptionKey: h("x25519:general-hospital"),
        },
    )?;
    run.step(
        "register_patient",
        INSTITUTION,
        reg,
        &Registrar::registerPatientCall { identity: h("patient:MRN-000123"), account: patient },
    )?;
    run.step(
        "set_encryption_key",
        VIEWER,
        reg,
        &Registrar::setEncryptionKeyCall { encryptionKey: h("x25519:viewer") },
    )?;
    // The patient's first relationship also opens the account's key slot.
    let create = Relationships::createCall {
        delegate: DELEGATE,
        queryCommitment: h("medrec/pointer-query/v1\nsalt Observation?category=laboratory"),
        dataHash: h("data:v1"),
        identity: identity.clone(),
    };
    let create_data: Bytes = create.abi_encode().into();
    let create_gas = run.step("create_relationship", patient, rel, &create)?;
    run.step(
        "grant",
        patient,
        rel,
        &Relationships::grantCall {
            delegate: DELEGATE,
            viewer: VIEWER,
            pointers: 0b1,
            notBefore: U40::ZERO,
            expiresAt: U40::from(1_798_761_600u64),
            sealedKey: sealed,
        },
    )?;
    run.step(
        "update_pointer",
        DELEGATE,
        rel,
        &Relationships::updatePointerCall {
            account: patient,
            pointerId: U256::ZERO,
            dataHash: h("data:v2"),
            bounty: h("mean(Observation.valueQuantity) code=http://loinc.org|2498-4 window=7d"),
        },
    )?;
    run.step(
        "add_pointer",
        DELEGATE,
        rel,
        &Relationships::addPointerCall {
            account: patient,
            queryCommitment: h("medrec/pointer-query/v1\nsalt MedicationRequest?status=active"),
            dataHash: h("meds:v1"),
            bounty: h("count(MedicationRequest) window=7d"),
        },
    )?;
    run.step("accept_update", patient, rel, &Relationships::acceptCall { delegate: DELEGATE })?;
    run.step(
        "research_opt_in",
        patient,
        rel,
        &Relationships::setResearchConsentCall { delegate: DELEGATE, optIn: true },
    )?;
    let rel_id = keccak256([patient.into_word(), DELEGATE.into_word()].concat());
    run.step("revoke", patient, rel, &Relationships::revokeCall { relId: rel_id, viewer: VIEWER })?;
    run.step("delete", patient, rel, &Relationships::removeCall { delegate: DELEGATE })?;
    run.step(
        "create_relationship_second",
        patient,
        rel,
        &Relationships::createCall {
            delegate: DELEGATE_2,
            queryCommitment: h("medrec/pointer-query/v1\nsalt Immunization"),
            dataHash: h("imm:v1"),
            identity,
        },
    )?;
    run.step(
        "update_pointer_second",
        DELEGATE_2,
        rel,
        &Relationships::updatePointerCall {
            account: patient,
            pointerId: U256::ZERO,
            dataHash: h("imm:v2"),
            bounty: h("count(Immunization) window=7d"),
        },
    )?;
    run.step("reject", patient, rel, &Relationships::rejectCall { delegate: DELEGATE_2 })?;
    // A gatekeeper anchors its access log once per period, whatever the number of
    // requests: the first anchor creates the provider's slots, later ones overwrite them.
    run.step(
        "anchor_first",
        PROVIDER,
        deployment.anchors,
        &AccessAnchors::anchorCall { head: h("access log entry 120"), size: 120 },
    )?;
    run.step(
        "anchor",
        PROVIDER,
        deployment.anchors,
        &AccessAnchors::anchorCall { head: h("access log entry 345"), size: 345 },
    )?;
    run.step(
        "propose",
        INSTITUTION,
        reg,
        &Registrar::proposeCall {
            action: 0, // AddInstitution
            subject: address!("0x2546bcd3c84621e976d8185a91a922ae77ecec30"),
        },
    )?;

    // Emergency care: an institution defines the emergency departments' group with one
    // clinician, who breaks the glass for the patient; the patient then refuses it.
    run.step(
        "create_group",
        INSTITUTION,
        reg,
        &Registrar::createGroupCall { name: "Emergency departments".into(), emergency: true },
    )?;
    run.step(
        "add_group_member",
        INSTITUTION,
        reg,
        &Registrar::addMemberCall { id: U256::from(1), member: CLINICIAN },
    )?;
    run.step(
        "break_glass",
        CLINICIAN,
        rel,
        &Relationships::breakGlassCall { account: patient, group: U256::from(1), reason: 1 },
    )?;
    run.step(
        "refuse_break_glass",
        patient,
        rel,
        &Relationships::setBreakGlassCall { allowed: false },
    )?;

    // Keys: a spouse as custodian, the patient's key rotated, guardians set, a recovery
    // started by two of three guardians, vetoed, started again and completed.
    let accept = |key: &PrivateKeySigner, rights: u8, until: u64| {
        let digest = keys::key_acceptance_hash(
            &domain,
            &keys::KeyAcceptance {
                account: patient,
                key: key.address(),
                rights,
                until: U40::from(until),
            },
        );
        sign(key, digest)
    };
    let spouse = dev_key(0x51)?;
    run.step(
        "add_custodian_key",
        patient,
        rel,
        &Relationships::addKeyCall {
            key: spouse.address(),
            rights: Rights::SEE | Rights::SHARE,
            until: U40::ZERO,
            keySig: accept(&spouse, Rights::SEE | Rights::SHARE, 0)?,
        },
    )?;
    let new_key = dev_key(0x52)?;
    run.step(
        "rotate_key",
        patient,
        rel,
        &Relationships::rotateCall {
            newKey: new_key.address(),
            keySig: accept(&new_key, Rights::ALL, 0)?,
        },
    )?;
    let guardians = [dev_key(0x61)?, dev_key(0x62)?, dev_key(0x63)?];
    let mut guardian_addresses: Vec<Address> = guardians.iter().map(|g| g.address()).collect();
    guardian_addresses.sort();
    let salt = h("guardian salt");
    run.step(
        "set_guardians",
        new_key.address(),
        rel,
        &Relationships::setGuardiansCall {
            commitment: keys::guardian_commitment(salt, &guardian_addresses, 2),
        },
    )?;
    let recovered = dev_key(0x53)?;
    let start = |nonce: u32| -> Result<Relationships::startRecoveryCall, GasError> {
        let digest = keys::recovery_hash(
            &domain,
            &keys::Recovery { account: patient, newKey: recovered.address(), nonce },
        );
        Ok(Relationships::startRecoveryCall {
            account: patient,
            newKey: recovered.address(),
            keySig: accept(&recovered, Rights::ALL, 0)?,
            guardians: guardian_addresses.clone(),
            threshold: 2,
            salt,
            signatures: vec![sign(&guardians[2], digest)?, sign(&guardians[0], digest)?],
        })
    };
    run.step("start_recovery", MINER, rel, &start(0)?)?;
    run.step("veto_recovery", new_key.address(), rel, &Relationships::vetoRecoveryCall {})?;
    run.step("start_recovery_again", MINER, rel, &start(1)?)?;
    run.evm.advance_time(72 * 3600);
    run.step(
        "complete_recovery",
        MINER,
        rel,
        &Relationships::completeRecoveryCall { account: patient, oldKey: new_key.address() },
    )?;

    // The signed creation transaction, as a patient's wallet would send it.
    let tx = TxEip1559 {
        chain_id: CHAIN_ID,
        nonce: 42,
        gas_limit: create_gas * 6 / 5,
        max_fee_per_gas: 30_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        to: TxKind::Call(rel),
        value: U256::ZERO,
        access_list: Default::default(),
        input: create_data,
    };
    let mut tx = tx;
    let signature = patient_signer.sign_transaction_sync(&mut tx)?;
    let signed = tx.into_signed(signature);
    report.insert("create_relationship_tx_bytes", signed.encode_2718_len() as u64);
    Ok(report)
}

struct Runner<'a> {
    evm: &'a mut Evm,
    report: &'a mut GasReport,
}

impl Runner<'_> {
    fn step(
        &mut self,
        step: &'static str,
        from: Address,
        to: Address,
        call: &impl SolCall,
    ) -> Result<u64, GasError> {
        match self.evm.transact(from, to, call.abi_encode().into())? {
            Outcome::Success { gas_used, .. } => {
                self.report.insert(step, gas_used);
                Ok(gas_used)
            }
            Outcome::Revert { output, .. } => {
                Err(GasError::Reverted { step, reason: ContractError::decode(&output) })
            }
            outcome @ Outcome::Halt { .. } => Err(GasError::Failed { step, outcome }),
        }
    }
}
