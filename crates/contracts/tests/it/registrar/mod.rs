//! `Registrar`: identity commitments, the provider directory and the governance of
//! certified institutions and admitted researchers.

use crate::harness::*;
use alloy::{
    primitives::{Address, B256, U256, aliases::U40},
    sol_types::{SolCall, SolConstructor},
};
use medrec_contracts::{ContractError, Registrar};
use medrec_devchain::{
    deploy::{DeployError, deploy_medrec},
    evm::{Evm, Outcome},
};

// `Role` and `Action` as the ABI carries them.
const NO_ROLE: u8 = 0;
const PATIENT: u8 = 1;
const PROVIDER: u8 = 2;

const ADD_INSTITUTION: u8 = 0;
const REMOVE_INSTITUTION: u8 = 1;
const ADMIT_RESEARCHER: u8 = 2;
const REMOVE_RESEARCHER: u8 = 3;

const ENDPOINT: &str = "https://gk.clinic.example";

// ----- helpers ----------------------------------------------------------------------

/// Institutions `addr(1)` ..= `addr(n)`.
fn institutions(n: u64) -> Vec<Address> {
    (1..=n).map(addr).collect()
}

/// A world governed by `institutions(n)`.
fn world(n: u64) -> World {
    World::with_institutions(&institutions(n))
}

fn register_patient(w: &mut World, by: Address, identity: B256, account: Address) -> Receipt {
    let reg = w.reg();
    w.send(by, reg, Registrar::registerPatientCall { identity, account })
}

fn register_patient_fails(w: &mut World, by: Address) -> ContractError {
    let reg = w.reg();
    w.fail(
        by,
        reg,
        Registrar::registerPatientCall { identity: h("by outsider"), account: addr(29) },
    )
}

fn provider_call(
    identity: B256,
    account: Address,
    endpoint: &str,
    key: B256,
) -> Registrar::registerProviderCall {
    Registrar::registerProviderCall {
        identity,
        account,
        endpoint: endpoint.into(),
        encryptionKey: key,
    }
}

fn register_provider(w: &mut World, by: Address, identity: B256, account: Address) -> Receipt {
    let reg = w.reg();
    w.send(by, reg, provider_call(identity, account, ENDPOINT, h("key")))
}

fn remap(w: &mut World, by: Address, identity: B256, to: Address) -> Receipt {
    let reg = w.reg();
    w.send(by, reg, Registrar::remapCall { identity, to })
}

fn resolve(w: &mut World, identity: B256) -> (Address, u8, U40) {
    let reg = w.reg();
    let r = w.view(reg, Registrar::resolveCall { identity });
    (r.account, r.role, r.registeredAt)
}

fn directory(w: &mut World, account: Address) -> Registrar::Provider {
    let reg = w.reg();
    w.view(reg, Registrar::providerCall { account })
}

fn is_provider(w: &mut World, account: Address) -> bool {
    let reg = w.reg();
    w.view(reg, Registrar::isProviderCall { account })
}

fn is_institution(w: &mut World, account: Address) -> bool {
    let reg = w.reg();
    w.view(reg, Registrar::isInstitutionCall(account))
}

fn is_researcher(w: &mut World, account: Address) -> bool {
    let reg = w.reg();
    w.view(reg, Registrar::isResearcherCall(account))
}

fn institution_count(w: &mut World) -> U256 {
    let reg = w.reg();
    w.view(reg, Registrar::institutionCountCall {})
}

fn epoch(w: &mut World) -> u32 {
    let reg = w.reg();
    w.view(reg, Registrar::epochCall {})
}

fn proposal_count(w: &mut World) -> U256 {
    let reg = w.reg();
    w.view(reg, Registrar::proposalCountCall {})
}

fn proposal(w: &mut World, id: u64) -> Registrar::Proposal {
    let reg = w.reg();
    w.view(reg, Registrar::proposalCall { id: U256::from(id) })
}

fn has_voted(w: &mut World, id: u64, voter: Address) -> bool {
    let reg = w.reg();
    w.view(reg, Registrar::hasVotedCall { id: U256::from(id), voter })
}

fn propose(w: &mut World, by: Address, action: u8, subject: Address) -> Receipt {
    let reg = w.reg();
    w.send(by, reg, Registrar::proposeCall { action, subject })
}

fn propose_fails(w: &mut World, by: Address, action: u8, subject: Address) -> ContractError {
    let reg = w.reg();
    w.fail(by, reg, Registrar::proposeCall { action, subject })
}

fn vote(w: &mut World, by: Address, id: u64) -> Receipt {
    let reg = w.reg();
    w.send(by, reg, Registrar::voteCall { id: U256::from(id) })
}

fn vote_fails(w: &mut World, by: Address, id: u64) -> ContractError {
    let reg = w.reg();
    w.fail(by, reg, Registrar::voteCall { id: U256::from(id) })
}

/// Has every institution in `voters` vote for `id` (after the proposer's own vote).
fn votes(w: &mut World, id: u64, voters: &[Address]) {
    for &voter in voters {
        vote(w, voter, id);
    }
}

/// Deploys a bare `Registrar` and returns its address and the constructor's logs.
fn deploy_registrar(evm: &mut Evm, institutions: Vec<Address>) -> (Address, Receipt) {
    let args = Registrar::constructorCall { institutions }.abi_encode();
    let init = [Registrar::BYTECODE.as_ref(), args.as_slice()].concat();
    match evm.deploy(addr(9_999), init.into()).expect("EVM accepts the deployment") {
        (Some(at), Outcome::Success { gas_used, logs, output }) => {
            (at, Receipt { gas_used, logs, output })
        }
        other => panic!("deployment failed: {other:?}"),
    }
}

/// The custom error the `Registrar` constructor reverts with for `institutions`.
fn deployment_error(institutions: Vec<Address>) -> ContractError {
    let mut evm = Evm::new(31337, GENESIS);
    match deploy_medrec(&mut evm, addr(9_999), institutions) {
        Err(DeployError::Failed { contract, outcome: Outcome::Revert { output, .. } }) => {
            assert_eq!(contract, "Registrar");
            ContractError::decode(&output)
        }
        other => panic!("the deployment was expected to revert, got {other:?}"),
    }
}

mod constructor;
mod governance;
mod governance_effects;
mod patients;
mod providers;
mod refusals;
mod remap;
