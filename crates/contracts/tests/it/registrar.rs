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

// ----- constructor ------------------------------------------------------------------

#[test]
fn constructor_certifies_exactly_the_founding_institutions() {
    let mut w = world(3);
    for founder in institutions(3) {
        assert!(is_institution(&mut w, founder), "{founder} is a founder");
    }
    for outsider in [addr(4), addr(9_999), Address::ZERO] {
        assert!(!is_institution(&mut w, outsider), "{outsider} is not certified");
        assert!(!is_researcher(&mut w, outsider));
    }
    assert_eq!(institution_count(&mut w), U256::from(3));
    assert_eq!(epoch(&mut w), 3, "one epoch per founding institution");
    assert_eq!(proposal_count(&mut w), U256::ZERO);
}

#[test]
fn constructor_announces_each_founder_in_order() {
    let mut evm = Evm::new(31337, GENESIS);
    let founders = vec![addr(3), addr(1), addr(2)];
    let (at, receipt) = deploy_registrar(&mut evm, founders.clone());
    assert_eq!(receipt.event_names(), vec!["InstitutionAdded"; 3]);
    assert!(receipt.logs.iter().all(|log| log.address == at));
    let added: Vec<Address> =
        receipt.events::<Registrar::InstitutionAdded>().into_iter().map(|e| e.account).collect();
    assert_eq!(added, founders);
}

#[test]
fn constructor_rejects_bad_founding_lists() {
    let cases: [(&str, Vec<Address>, ContractError); 4] = [
        ("empty", vec![], ContractError::NoInstitutions),
        ("zero address", vec![addr(1), Address::ZERO], ContractError::ZeroAddress),
        ("only zero", vec![Address::ZERO], ContractError::ZeroAddress),
        (
            "duplicate",
            vec![addr(1), addr(2), addr(1)],
            ContractError::AlreadyInstitution { account: addr(1) },
        ),
    ];
    for (name, list, expected) in cases {
        assert_eq!(deployment_error(list), expected, "{name}");
    }
}

// ----- registerPatient --------------------------------------------------------------

#[test]
fn register_patient_maps_the_identity_with_role_and_time() {
    let mut w = world(2);
    let (patient, identity) = (addr(20), h("alice"));
    let r = register_patient(&mut w, addr(2), identity, patient);
    let now = w.evm.timestamp();
    assert_eq!(resolve(&mut w, identity), (patient, PATIENT, u40(now)));
    assert_eq!(r.event_names(), vec!["IdentityRegistered"]);
    let e: Registrar::IdentityRegistered = r.event();
    assert_eq!(
        (e.identity, e.account, e.role, e.institution),
        (identity, patient, PATIENT, addr(2)),
        "the event names the registering institution"
    );
    // A patient has no provider entry.
    assert!(!is_provider(&mut w, patient));
}

#[test]
fn registered_at_is_the_block_time_of_each_registration() {
    let mut w = world(1);
    register_patient(&mut w, addr(1), h("first"), addr(20));
    let first = w.evm.timestamp();
    w.evm.advance_time(86_400);
    register_patient(&mut w, addr(1), h("second"), addr(21));
    let second = w.evm.timestamp();
    assert!(second >= first + 86_400);
    assert_eq!(resolve(&mut w, h("first")).2, u40(first));
    assert_eq!(resolve(&mut w, h("second")).2, u40(second));
}

#[test]
fn unknown_identity_resolves_to_nothing() {
    let mut w = world(1);
    register_patient(&mut w, addr(1), h("alice"), addr(20));
    assert_eq!(resolve(&mut w, h("bob")), (Address::ZERO, NO_ROLE, u40(0)));
    assert_eq!(resolve(&mut w, B256::ZERO), (Address::ZERO, NO_ROLE, u40(0)));
}

#[test]
fn only_institutions_register_patients() {
    let Cast { mut w, provider, patient, stranger, .. } = Cast::new();
    for caller in [provider, patient, stranger] {
        let reg = w.reg();
        let err = w.fail(
            caller,
            reg,
            Registrar::registerPatientCall { identity: h("carol"), account: addr(21) },
        );
        assert_eq!(err, ContractError::NotInstitution { caller });
    }
    assert_eq!(resolve(&mut w, h("carol")), (Address::ZERO, NO_ROLE, u40(0)));
}

#[test]
fn register_patient_refusals() {
    let mut w = world(1);
    register_patient(&mut w, addr(1), h("alice"), addr(20));
    let cases = [
        ("zero identity", B256::ZERO, addr(21), ContractError::ZeroIdentity),
        ("zero account", h("bob"), Address::ZERO, ContractError::ZeroAddress),
        (
            "taken identity",
            h("alice"),
            addr(21),
            ContractError::IdentityTaken { identity: h("alice") },
        ),
        (
            "taken identity, same account",
            h("alice"),
            addr(20),
            ContractError::IdentityTaken { identity: h("alice") },
        ),
    ];
    for (name, identity, account, expected) in cases {
        let reg = w.reg();
        let err = w.fail(addr(1), reg, Registrar::registerPatientCall { identity, account });
        assert_eq!(err, expected, "{name}");
    }
}

#[test]
fn a_refused_registration_changes_nothing() {
    let mut w = world(1);
    register_patient(&mut w, addr(1), h("alice"), addr(20));
    let before = resolve(&mut w, h("alice"));
    let reg = w.reg();
    let err = w.fail(
        addr(1),
        reg,
        Registrar::registerPatientCall { identity: h("alice"), account: addr(21) },
    );
    assert_eq!(err, ContractError::IdentityTaken { identity: h("alice") });
    assert_eq!(resolve(&mut w, h("alice")), before, "the first mapping stands");
    let err = w.fail(
        addr(9),
        reg,
        Registrar::registerPatientCall { identity: h("bob"), account: addr(22) },
    );
    assert_eq!(err, ContractError::NotInstitution { caller: addr(9) });
    assert_eq!(resolve(&mut w, h("bob")), (Address::ZERO, NO_ROLE, u40(0)));
    let err = w.fail(addr(1), reg, provider_call(h("dr who"), addr(30), "", h("key")));
    assert_eq!(err, ContractError::EmptyEndpoint);
    assert_eq!(resolve(&mut w, h("dr who")), (Address::ZERO, NO_ROLE, u40(0)));
    assert!(!is_provider(&mut w, addr(30)));
}

// ----- registerProvider -------------------------------------------------------------

#[test]
fn register_provider_fills_the_directory_and_announces_it() {
    let mut w = world(2);
    let (account, identity, key) = (addr(10), h("dr house"), h("x25519"));
    let reg = w.reg();
    let r = w.send(addr(2), reg, provider_call(identity, account, ENDPOINT, key));
    let now = w.evm.timestamp();
    assert_eq!(r.event_names(), vec!["IdentityRegistered", "ProviderUpdated"]);
    let e: Registrar::IdentityRegistered = r.event();
    assert_eq!(
        (e.identity, e.account, e.role, e.institution),
        (identity, account, PROVIDER, addr(2))
    );
    let u: Registrar::ProviderUpdated = r.event();
    assert_eq!((u.account, u.endpoint.as_str(), u.encryptionKey), (account, ENDPOINT, key));

    assert_eq!(resolve(&mut w, identity), (account, PROVIDER, u40(now)));
    assert!(is_provider(&mut w, account));
    assert_eq!(
        directory(&mut w, account),
        Registrar::Provider { identity, encryptionKey: key, endpoint: ENDPOINT.into() }
    );
}

#[test]
fn a_non_provider_has_an_empty_directory_entry() {
    let Cast { mut w, patient, stranger, institution, .. } = Cast::new();
    for account in [patient, stranger, institution, Address::ZERO] {
        assert!(!is_provider(&mut w, account));
        assert_eq!(
            directory(&mut w, account),
            Registrar::Provider {
                identity: B256::ZERO,
                encryptionKey: B256::ZERO,
                endpoint: String::new()
            }
        );
    }
}

#[test]
fn only_institutions_register_providers() {
    let Cast { mut w, provider, patient, stranger, .. } = Cast::new();
    for caller in [provider, patient, stranger] {
        let reg = w.reg();
        let err = w.fail(caller, reg, provider_call(h("dr no"), addr(12), ENDPOINT, h("key")));
        assert_eq!(err, ContractError::NotInstitution { caller });
    }
    assert!(!is_provider(&mut w, addr(12)));
    assert_eq!(resolve(&mut w, h("dr no")).0, Address::ZERO);
}

#[test]
fn register_provider_refusals() {
    let Cast { mut w, institution, provider, .. } = Cast::new();
    let fresh = addr(12);
    let cases = [
        (
            "empty endpoint",
            provider_call(h("new"), fresh, "", h("k")),
            ContractError::EmptyEndpoint,
        ),
        (
            "account already a provider under another identity",
            provider_call(h("second identity"), provider, ENDPOINT, h("k")),
            ContractError::ProviderExists { account: provider },
        ),
        (
            "identity taken by a patient",
            provider_call(h("patient"), fresh, ENDPOINT, h("k")),
            ContractError::IdentityTaken { identity: h("patient") },
        ),
        (
            "identity taken by a provider",
            provider_call(h("provider"), fresh, ENDPOINT, h("k")),
            ContractError::IdentityTaken { identity: h("provider") },
        ),
        (
            "zero identity",
            provider_call(B256::ZERO, fresh, ENDPOINT, h("k")),
            ContractError::ZeroIdentity,
        ),
        (
            "zero account",
            provider_call(h("new"), Address::ZERO, ENDPOINT, h("k")),
            ContractError::ZeroAddress,
        ),
    ];
    for (name, call, expected) in cases {
        let reg = w.reg();
        assert_eq!(w.fail(institution, reg, call), expected, "{name}");
    }
    // Nothing moved: the existing provider keeps its entry, the fresh account has none.
    assert!(!is_provider(&mut w, fresh));
    assert_eq!(resolve(&mut w, h("new")).0, Address::ZERO);
    assert_eq!(resolve(&mut w, h("second identity")).0, Address::ZERO);
    assert_eq!(directory(&mut w, provider).identity, h("provider"));
    assert_eq!(directory(&mut w, provider).encryptionKey, h("provider key"));
}

// ----- updateProvider ---------------------------------------------------------------

#[test]
fn a_provider_updates_its_own_entry() {
    let Cast { mut w, provider, .. } = Cast::new();
    let reg = w.reg();
    let r = w.send(
        provider,
        reg,
        Registrar::updateProviderCall {
            endpoint: "https://gk2.hospital.example".into(),
            encryptionKey: h("rotated key"),
        },
    );
    assert_eq!(r.event_names(), vec!["ProviderUpdated"]);
    let e: Registrar::ProviderUpdated = r.event();
    assert_eq!(
        (e.account, e.endpoint.as_str(), e.encryptionKey),
        (provider, "https://gk2.hospital.example", h("rotated key"))
    );
    assert_eq!(
        directory(&mut w, provider),
        Registrar::Provider {
            identity: h("provider"),
            encryptionKey: h("rotated key"),
            endpoint: "https://gk2.hospital.example".into()
        }
    );
    // The identity mapping is untouched.
    assert_eq!(resolve(&mut w, h("provider")).0, provider);
}

#[test]
fn only_the_provider_itself_updates_its_entry() {
    let Cast { mut w, institution, provider, delegate, patient, stranger, .. } = Cast::new();
    for caller in [institution, delegate, patient, stranger] {
        let reg = w.reg();
        let err = w.fail(
            caller,
            reg,
            Registrar::updateProviderCall {
                endpoint: "https://evil.example".into(),
                encryptionKey: h("evil"),
            },
        );
        assert_eq!(err, ContractError::NotProvider { caller });
        assert!(!is_provider(&mut w, caller));
    }
    let entry = directory(&mut w, provider);
    assert_eq!(entry.endpoint, "https://gk.hospital.example");
    assert_eq!(entry.encryptionKey, h("provider key"));
}

#[test]
fn update_provider_rejects_an_empty_endpoint() {
    let Cast { mut w, provider, .. } = Cast::new();
    let reg = w.reg();
    let err = w.fail(
        provider,
        reg,
        Registrar::updateProviderCall { endpoint: String::new(), encryptionKey: h("rotated key") },
    );
    assert_eq!(err, ContractError::EmptyEndpoint);
    let entry = directory(&mut w, provider);
    assert_eq!(entry.endpoint, "https://gk.hospital.example");
    assert_eq!(entry.encryptionKey, h("provider key"), "the key did not change either");
}

// ----- remap ------------------------------------------------------------------------

#[test]
fn remap_moves_a_patient_identity_and_keeps_role_and_registration_time() {
    let mut w = world(2);
    let (old, new) = (addr(20), addr(21));
    register_patient(&mut w, addr(1), h("alice"), old);
    let registered = w.evm.timestamp();
    w.evm.advance_time(3_600);
    let r = remap(&mut w, addr(2), h("alice"), new);
    assert_eq!(r.event_names(), vec!["IdentityRemapped"]);
    let e: Registrar::IdentityRemapped = r.event();
    assert_eq!(
        (e.identity, e.from, e.to, e.institution),
        (h("alice"), old, new, addr(2)),
        "the event names the remapping institution"
    );
    assert_eq!(resolve(&mut w, h("alice")), (new, PATIENT, u40(registered)));
}

#[test]
fn remap_back_and_forth() {
    let mut w = world(1);
    register_patient(&mut w, addr(1), h("alice"), addr(20));
    remap(&mut w, addr(1), h("alice"), addr(21));
    let r = remap(&mut w, addr(1), h("alice"), addr(20));
    let e: Registrar::IdentityRemapped = r.event();
    assert_eq!((e.from, e.to), (addr(21), addr(20)));
    assert_eq!(resolve(&mut w, h("alice")).0, addr(20));
}

#[test]
fn remap_moves_a_provider_entry() {
    let Cast { mut w, institution, provider, .. } = Cast::new();
    let registered = resolve(&mut w, h("provider")).2;
    let moved = addr(12);
    let entry = directory(&mut w, provider);
    let r = remap(&mut w, institution, h("provider"), moved);
    assert_eq!(r.event_names(), vec!["IdentityRemapped"]);
    let e: Registrar::IdentityRemapped = r.event();
    assert_eq!(
        (e.identity, e.from, e.to, e.institution),
        (h("provider"), provider, moved, institution)
    );

    assert_eq!(resolve(&mut w, h("provider")), (moved, PROVIDER, registered));
    assert!(!is_provider(&mut w, provider));
    assert!(is_provider(&mut w, moved));
    assert_eq!(directory(&mut w, moved), entry);
    assert_eq!(directory(&mut w, provider).identity, B256::ZERO);
    assert_eq!(directory(&mut w, provider).endpoint, "");

    // Only the new account may now update the entry.
    let reg = w.reg();
    let update = || Registrar::updateProviderCall {
        endpoint: "https://moved.example".into(),
        encryptionKey: h("k2"),
    };
    assert_eq!(w.fail(provider, reg, update()), ContractError::NotProvider { caller: provider });
    w.send(moved, reg, update());
    assert_eq!(directory(&mut w, moved).endpoint, "https://moved.example");

    // The old account is free to be registered as a provider again.
    register_provider(&mut w, institution, h("provider again"), provider);
    assert!(is_provider(&mut w, provider));
}

#[test]
fn only_institutions_remap() {
    let Cast { mut w, provider, patient, stranger, .. } = Cast::new();
    for caller in [provider, patient, stranger] {
        let reg = w.reg();
        let err = w.fail(caller, reg, Registrar::remapCall { identity: h("patient"), to: caller });
        assert_eq!(err, ContractError::NotInstitution { caller });
    }
    assert_eq!(resolve(&mut w, h("patient")).0, patient);
}

#[test]
fn remap_refusals() {
    let Cast { mut w, institution, provider, patient, .. } = Cast::new();
    let other_provider = addr(12);
    register_provider(&mut w, institution, h("other provider"), other_provider);
    let cases = [
        ("zero target", h("patient"), Address::ZERO, ContractError::ZeroAddress),
        (
            "unknown identity",
            h("nobody"),
            addr(21),
            ContractError::UnknownIdentity { identity: h("nobody") },
        ),
        (
            "zero identity",
            B256::ZERO,
            addr(21),
            ContractError::UnknownIdentity { identity: B256::ZERO },
        ),
        (
            "same patient account",
            h("patient"),
            patient,
            ContractError::SameAccount { account: patient },
        ),
        (
            "same provider account",
            h("provider"),
            provider,
            ContractError::SameAccount { account: provider },
        ),
        (
            "target already a provider",
            h("provider"),
            other_provider,
            ContractError::ProviderExists { account: other_provider },
        ),
    ];
    for (name, identity, to, expected) in cases {
        let reg = w.reg();
        assert_eq!(
            w.fail(institution, reg, Registrar::remapCall { identity, to }),
            expected,
            "{name}"
        );
    }
    // Nothing moved.
    assert_eq!(resolve(&mut w, h("patient")).0, patient);
    assert_eq!(resolve(&mut w, h("provider")).0, provider);
    assert_eq!(directory(&mut w, provider).identity, h("provider"));
    assert_eq!(directory(&mut w, other_provider).identity, h("other provider"));
    assert_eq!(resolve(&mut w, h("nobody")).0, Address::ZERO);
}

// ----- governance: proposing and voting ---------------------------------------------

#[test]
fn a_sole_institution_passes_its_proposal_at_once() {
    let mut w = world(1);
    let newcomer = addr(7);
    let r = propose(&mut w, addr(1), ADD_INSTITUTION, newcomer);
    assert_eq!(
        Registrar::proposeCall::abi_decode_returns(&r.output).expect("returns the id"),
        U256::ZERO
    );
    assert_eq!(
        r.event_names(),
        vec!["ProposalCreated", "Voted", "ProposalPassed", "InstitutionAdded"]
    );
    let c: Registrar::ProposalCreated = r.event();
    assert_eq!(
        (c.id, c.action, c.subject, c.proposer),
        (U256::ZERO, ADD_INSTITUTION, newcomer, addr(1))
    );
    let v: Registrar::Voted = r.event();
    assert_eq!((v.id, v.voter, v.votes), (U256::ZERO, addr(1), U256::from(1)));
    assert_eq!(r.event::<Registrar::ProposalPassed>().id, U256::ZERO);
    assert_eq!(r.event::<Registrar::InstitutionAdded>().account, newcomer);

    assert!(is_institution(&mut w, newcomer));
    assert_eq!(institution_count(&mut w), U256::from(2));
    assert_eq!(epoch(&mut w), 2);
    assert_eq!(
        proposal(&mut w, 0),
        Registrar::Proposal {
            subject: newcomer,
            action: ADD_INSTITUTION,
            executed: true,
            votes: 1,
            epoch: 1
        }
    );
}

#[test]
fn the_proposers_vote_is_cast_with_the_proposal() {
    let mut w = world(3);
    let r = propose(&mut w, addr(2), ADMIT_RESEARCHER, addr(50));
    assert_eq!(r.event_names(), vec!["ProposalCreated", "Voted"]);
    let v: Registrar::Voted = r.event();
    assert_eq!((v.id, v.voter, v.votes), (U256::ZERO, addr(2), U256::from(1)));
    assert!(has_voted(&mut w, 0, addr(2)));
    assert!(!has_voted(&mut w, 0, addr(1)));
    assert!(!has_voted(&mut w, 0, addr(3)));
    assert_eq!(
        proposal(&mut w, 0),
        Registrar::Proposal {
            subject: addr(50),
            action: ADMIT_RESEARCHER,
            executed: false,
            votes: 1,
            epoch: 3
        }
    );
    assert!(!is_researcher(&mut w, addr(50)));
    assert_eq!(
        vote_fails(&mut w, addr(2), 0),
        ContractError::AlreadyVoted { id: U256::ZERO, voter: addr(2) }
    );
}

#[test]
fn proposals_are_numbered_and_counted() {
    let mut w = world(3);
    assert_eq!(proposal_count(&mut w), U256::ZERO);
    let subjects = [addr(50), addr(51), addr(52)];
    for (i, subject) in subjects.into_iter().enumerate() {
        let r = propose(&mut w, addr(1), ADMIT_RESEARCHER, subject);
        let id = U256::from(i);
        assert_eq!(Registrar::proposeCall::abi_decode_returns(&r.output).expect("id"), id);
        assert_eq!(r.event::<Registrar::ProposalCreated>().id, id);
        assert_eq!(proposal_count(&mut w), U256::from(i + 1));
    }
    for (i, subject) in subjects.into_iter().enumerate() {
        assert_eq!(proposal(&mut w, i as u64).subject, subject);
    }
    assert!(!has_voted(&mut w, 3, addr(1)), "no vote on a proposal that does not exist");
}

#[test]
fn a_vote_below_the_threshold_only_counts() {
    let mut w = world(4);
    propose(&mut w, addr(1), ADD_INSTITUTION, addr(7));
    let r = vote(&mut w, addr(3), 0);
    assert_eq!(r.event_names(), vec!["Voted"]);
    let v: Registrar::Voted = r.event();
    assert_eq!((v.id, v.voter, v.votes), (U256::ZERO, addr(3), U256::from(2)));
    assert!(has_voted(&mut w, 0, addr(3)));
    assert_eq!(proposal(&mut w, 0).votes, 2);
    assert!(!proposal(&mut w, 0).executed);
    assert!(!is_institution(&mut w, addr(7)), "half of four is not a majority");
    assert_eq!(institution_count(&mut w), U256::from(4));
}

#[test]
fn a_proposal_passes_on_a_strict_majority_of_institutions() {
    // (institutions, votes needed): more than half, never just half.
    let table: [(u64, u32); 6] = [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3), (6, 4)];
    for (n, needed) in table {
        let mut w = world(n);
        let subject = addr(50);
        let r = propose(&mut w, addr(1), ADMIT_RESEARCHER, subject);
        let mut receipts = vec![r];
        for voter in 2..=u64::from(needed) {
            receipts.push(vote(&mut w, addr(voter), 0));
        }
        for (k, r) in receipts.iter().enumerate() {
            let cast = u32::try_from(k).expect("small") + 1;
            let passed = r.event_names().contains(&"ProposalPassed");
            assert_eq!(passed, cast == needed, "{n} institutions, vote {cast}: passed = {passed}");
            assert_eq!(r.event::<Registrar::Voted>().votes, U256::from(cast));
        }
        let last = receipts.last().expect("at least the proposal");
        let tail: Vec<_> = last.event_names().into_iter().rev().take(3).rev().collect();
        assert_eq!(tail, vec!["Voted", "ProposalPassed", "ResearcherAdmitted"], "{n} institutions");
        assert!(is_researcher(&mut w, subject), "{n} institutions, {needed} votes");
        let p = proposal(&mut w, 0);
        assert!(p.executed);
        assert_eq!(p.votes, needed);
        if u64::from(needed) < n {
            // Whoever has not voted yet is too late.
            let late = addr(u64::from(needed) + 1);
            assert_eq!(
                vote_fails(&mut w, late, 0),
                ContractError::ProposalExecuted { id: U256::ZERO }
            );
            assert!(!has_voted(&mut w, 0, late));
        }
    }
}

#[test]
fn one_vote_short_of_a_strict_majority_changes_nothing() {
    for n in 2..=6 {
        let mut w = world(n);
        let short = n / 2; // exactly half (even n) or just under half (odd n)
        propose(&mut w, addr(1), ADD_INSTITUTION, addr(7));
        votes(&mut w, 0, &institutions(short)[1..]);
        let p = proposal(&mut w, 0);
        assert_eq!(u64::from(p.votes), short, "{n} institutions");
        assert!(!p.executed, "{n} institutions, {short} votes");
        assert!(!is_institution(&mut w, addr(7)), "{n} institutions, {short} votes");
    }
}

#[test]
fn propose_and_vote_are_only_for_institutions() {
    let Cast { mut w, institution, provider, patient, stranger, .. } = Cast::new();
    // A researcher is not an institution either.
    propose(&mut w, institution, ADMIT_RESEARCHER, addr(50));
    assert!(is_researcher(&mut w, addr(50)));
    propose(&mut w, institution, ADD_INSTITUTION, addr(2));
    let pending = propose(&mut w, institution, ADD_INSTITUTION, addr(3));
    assert_eq!(pending.event_names(), vec!["ProposalCreated", "Voted"]);
    for caller in [provider, patient, stranger, addr(50)] {
        assert_eq!(
            propose_fails(&mut w, caller, ADD_INSTITUTION, caller),
            ContractError::NotInstitution { caller }
        );
        assert_eq!(vote_fails(&mut w, caller, 2), ContractError::NotInstitution { caller });
        assert_eq!(vote_fails(&mut w, caller, 99), ContractError::NotInstitution { caller });
        assert!(!has_voted(&mut w, 2, caller));
    }
    assert_eq!(proposal_count(&mut w), U256::from(3));
    assert_eq!(proposal(&mut w, 2).votes, 1);
}

#[test]
fn proposals_must_be_applicable_to_their_subject() {
    let mut w = world(2);
    propose(&mut w, addr(1), ADMIT_RESEARCHER, addr(50));
    vote(&mut w, addr(2), 0);
    assert!(is_researcher(&mut w, addr(50)));
    let cases = [
        (
            "add an institution",
            ADD_INSTITUTION,
            addr(2),
            ContractError::AlreadyInstitution { account: addr(2) },
        ),
        (
            "add itself",
            ADD_INSTITUTION,
            addr(1),
            ContractError::AlreadyInstitution { account: addr(1) },
        ),
        (
            "remove a non-institution",
            REMOVE_INSTITUTION,
            addr(7),
            ContractError::NotAnInstitution { account: addr(7) },
        ),
        (
            "remove a researcher as institution",
            REMOVE_INSTITUTION,
            addr(50),
            ContractError::NotAnInstitution { account: addr(50) },
        ),
        (
            "admit a researcher",
            ADMIT_RESEARCHER,
            addr(50),
            ContractError::AlreadyResearcher { account: addr(50) },
        ),
        (
            "remove a non-researcher",
            REMOVE_RESEARCHER,
            addr(51),
            ContractError::NotResearcher { account: addr(51) },
        ),
        (
            "remove an institution as researcher",
            REMOVE_RESEARCHER,
            addr(2),
            ContractError::NotResearcher { account: addr(2) },
        ),
        ("add zero", ADD_INSTITUTION, Address::ZERO, ContractError::ZeroAddress),
        ("remove zero", REMOVE_INSTITUTION, Address::ZERO, ContractError::ZeroAddress),
        ("admit zero", ADMIT_RESEARCHER, Address::ZERO, ContractError::ZeroAddress),
        ("remove zero researcher", REMOVE_RESEARCHER, Address::ZERO, ContractError::ZeroAddress),
    ];
    for (name, action, subject, expected) in cases {
        assert_eq!(propose_fails(&mut w, addr(1), action, subject), expected, "{name}");
    }
    assert_eq!(proposal_count(&mut w), U256::from(1), "no refused proposal was recorded");
}

#[test]
fn an_unknown_action_is_not_a_custom_error_and_records_nothing() {
    let mut w = world(1);
    let reg = w.reg();
    let data = Registrar::proposeCall { action: 4, subject: addr(7) }.abi_encode();
    let outcome = w.evm.transact(addr(1), reg, data.into()).expect("EVM accepts the tx");
    assert!(matches!(outcome, Outcome::Revert { .. }), "{outcome:?}");
    assert_eq!(proposal_count(&mut w), U256::ZERO);
    assert!(!is_institution(&mut w, addr(7)));
}

#[test]
fn votes_on_unknown_proposals_are_refused() {
    let mut w = world(2);
    assert_eq!(vote_fails(&mut w, addr(1), 0), ContractError::UnknownProposal { id: U256::ZERO });
    propose(&mut w, addr(1), ADMIT_RESEARCHER, addr(50));
    assert_eq!(
        vote_fails(&mut w, addr(2), 1),
        ContractError::UnknownProposal { id: U256::from(1) }
    );
    let reg = w.reg();
    let huge = w.fail(addr(2), reg, Registrar::voteCall { id: U256::MAX });
    assert_eq!(huge, ContractError::UnknownProposal { id: U256::MAX });
    assert_eq!(proposal(&mut w, 0).votes, 1);
}

#[test]
fn the_proposal_view_of_an_unknown_id_reverts() {
    let mut w = world(1);
    let reg = w.reg();
    assert_eq!(
        w.view_fails(reg, Registrar::proposalCall { id: U256::ZERO }),
        ContractError::UnknownProposal { id: U256::ZERO }
    );
    propose(&mut w, addr(1), ADMIT_RESEARCHER, addr(50));
    assert_eq!(proposal(&mut w, 0).subject, addr(50));
    assert_eq!(
        w.view_fails(reg, Registrar::proposalCall { id: U256::from(1) }),
        ContractError::UnknownProposal { id: U256::from(1) }
    );
}

#[test]
fn an_executed_proposal_takes_no_more_votes() {
    let mut w = world(3);
    propose(&mut w, addr(1), ADD_INSTITUTION, addr(7));
    vote(&mut w, addr(2), 0);
    assert!(proposal(&mut w, 0).executed);
    for voter in [addr(1), addr(2), addr(3), addr(7)] {
        assert_eq!(
            vote_fails(&mut w, voter, 0),
            ContractError::ProposalExecuted { id: U256::ZERO }
        );
    }
    assert_eq!(proposal(&mut w, 0).votes, 2);
    assert_eq!(institution_count(&mut w), U256::from(4));
}

#[test]
fn proposals_go_stale_when_an_institution_is_added() {
    let mut w = world(3);
    propose(&mut w, addr(1), ADMIT_RESEARCHER, addr(50)); // 0, pending
    propose(&mut w, addr(1), ADD_INSTITUTION, addr(4)); // 1
    vote(&mut w, addr(2), 1);
    assert!(is_institution(&mut w, addr(4)));
    assert_eq!(epoch(&mut w), 4);
    assert_eq!(proposal(&mut w, 0).epoch, 3);
    for voter in [addr(2), addr(3), addr(4)] {
        assert_eq!(vote_fails(&mut w, voter, 0), ContractError::ProposalStale { id: U256::ZERO });
    }
    // The proposer's own repeat vote is reported as stale too: staleness is checked first.
    assert_eq!(vote_fails(&mut w, addr(1), 0), ContractError::ProposalStale { id: U256::ZERO });
    assert!(!is_researcher(&mut w, addr(50)));
    // Proposing again works under the new epoch.
    propose(&mut w, addr(1), ADMIT_RESEARCHER, addr(50));
    assert_eq!(proposal(&mut w, 2).epoch, 4);
    vote(&mut w, addr(4), 2);
    vote(&mut w, addr(3), 2);
    assert!(is_researcher(&mut w, addr(50)));
}

#[test]
fn proposals_go_stale_when_an_institution_is_removed() {
    let mut w = world(3);
    propose(&mut w, addr(1), ADD_INSTITUTION, addr(7)); // 0, pending
    propose(&mut w, addr(1), REMOVE_INSTITUTION, addr(3)); // 1
    vote(&mut w, addr(2), 1);
    assert!(!is_institution(&mut w, addr(3)));
    assert_eq!(vote_fails(&mut w, addr(2), 0), ContractError::ProposalStale { id: U256::ZERO });
    assert!(!proposal(&mut w, 0).executed);
}

#[test]
fn researcher_decisions_do_not_make_proposals_stale() {
    let mut w = world(3);
    propose(&mut w, addr(1), ADD_INSTITUTION, addr(7)); // 0, pending
    propose(&mut w, addr(1), ADMIT_RESEARCHER, addr(50)); // 1
    vote(&mut w, addr(2), 1);
    assert!(is_researcher(&mut w, addr(50)));
    assert_eq!(epoch(&mut w), 3, "the institution set did not change");
    vote(&mut w, addr(3), 0);
    assert!(is_institution(&mut w, addr(7)));
}

#[test]
fn a_proposal_that_became_inapplicable_cannot_pass() {
    let mut w = world(3);
    propose(&mut w, addr(1), ADMIT_RESEARCHER, addr(50)); // 0
    propose(&mut w, addr(2), ADMIT_RESEARCHER, addr(50)); // 1, a duplicate
    vote(&mut w, addr(3), 0);
    assert!(is_researcher(&mut w, addr(50)));
    assert_eq!(
        vote_fails(&mut w, addr(3), 1),
        ContractError::AlreadyResearcher { account: addr(50) }
    );
    assert!(!has_voted(&mut w, 1, addr(3)), "the refused vote was not recorded");
    let p = proposal(&mut w, 1);
    assert_eq!((p.votes, p.executed), (1, false));
}

// ----- governance: what passing proposals do ----------------------------------------

#[test]
fn an_added_institution_can_register_and_govern() {
    let mut w = world(2);
    let newcomer = addr(7);
    assert_eq!(
        register_patient_fails(&mut w, newcomer),
        ContractError::NotInstitution { caller: newcomer }
    );
    propose(&mut w, addr(2), ADD_INSTITUTION, newcomer);
    let r = vote(&mut w, addr(1), 0);
    assert_eq!(r.event_names(), vec!["Voted", "ProposalPassed", "InstitutionAdded"]);
    assert_eq!(r.event::<Registrar::InstitutionAdded>().account, newcomer);
    assert_eq!(r.event::<Registrar::ProposalPassed>().id, U256::ZERO);
    assert!(is_institution(&mut w, newcomer));
    assert_eq!(institution_count(&mut w), U256::from(3));
    assert_eq!(epoch(&mut w), 3);

    let reg = register_patient(&mut w, newcomer, h("alice"), addr(20));
    assert_eq!(reg.event::<Registrar::IdentityRegistered>().institution, newcomer);
    let created = propose(&mut w, newcomer, ADMIT_RESEARCHER, addr(50));
    assert_eq!(created.event::<Registrar::ProposalCreated>().proposer, newcomer);
}

#[test]
fn a_removed_institution_loses_its_powers() {
    let mut w = world(3);
    let removed = addr(3);
    propose(&mut w, addr(3), ADMIT_RESEARCHER, addr(50)); // 0, by the soon removed
    let r = propose(&mut w, addr(1), REMOVE_INSTITUTION, removed); // 1
    let c: Registrar::ProposalCreated = r.event();
    assert_eq!(
        (c.id, c.action, c.subject, c.proposer),
        (U256::from(1), REMOVE_INSTITUTION, removed, addr(1))
    );
    let r = vote(&mut w, addr(2), 1);
    assert_eq!(r.event_names(), vec!["Voted", "ProposalPassed", "InstitutionRemoved"]);
    assert_eq!(r.event::<Registrar::InstitutionRemoved>().account, removed);
    assert_eq!(r.event::<Registrar::ProposalPassed>().id, U256::from(1));

    assert!(!is_institution(&mut w, removed));
    assert_eq!(institution_count(&mut w), U256::from(2));
    assert_eq!(epoch(&mut w), 4);
    assert_eq!(
        register_patient_fails(&mut w, removed),
        ContractError::NotInstitution { caller: removed }
    );
    assert_eq!(
        propose_fails(&mut w, removed, ADD_INSTITUTION, addr(8)),
        ContractError::NotInstitution { caller: removed }
    );
    assert_eq!(vote_fails(&mut w, removed, 1), ContractError::NotInstitution { caller: removed });
    let reg = w.reg();
    assert_eq!(
        w.fail(removed, reg, Registrar::remapCall { identity: h("x"), to: addr(8) }),
        ContractError::NotInstitution { caller: removed }
    );
    // With two institutions left, a strict majority is now two.
    propose(&mut w, addr(1), ADD_INSTITUTION, addr(8));
    assert!(!is_institution(&mut w, addr(8)));
    vote(&mut w, addr(2), 2);
    assert!(is_institution(&mut w, addr(8)));
}

#[test]
fn an_institution_may_vote_for_its_own_removal() {
    let mut w = world(2);
    propose(&mut w, addr(1), REMOVE_INSTITUTION, addr(2));
    assert!(is_institution(&mut w, addr(2)), "one vote of two is not a majority");
    let r = vote(&mut w, addr(2), 0);
    assert_eq!(r.event::<Registrar::InstitutionRemoved>().account, addr(2));
    assert!(!is_institution(&mut w, addr(2)));
    assert_eq!(institution_count(&mut w), U256::from(1));
}

#[test]
fn the_last_institution_cannot_be_removed() {
    let mut w = world(1);
    assert_eq!(
        propose_fails(&mut w, addr(1), REMOVE_INSTITUTION, addr(1)),
        ContractError::LastInstitution
    );
    assert!(is_institution(&mut w, addr(1)));
    assert_eq!(proposal_count(&mut w), U256::ZERO);

    // Down from two to one, then the survivor cannot remove itself either.
    let mut w = world(2);
    propose(&mut w, addr(2), REMOVE_INSTITUTION, addr(1));
    vote(&mut w, addr(1), 0);
    assert_eq!(institution_count(&mut w), U256::from(1));
    assert_eq!(
        propose_fails(&mut w, addr(2), REMOVE_INSTITUTION, addr(2)),
        ContractError::LastInstitution
    );
    assert!(is_institution(&mut w, addr(2)));
    assert_eq!(institution_count(&mut w), U256::from(1));
}

#[test]
fn mutual_removal_proposals_leave_one_institution() {
    // Two proposals to remove each other: the first to pass makes the other stale, so
    // governance can never be left empty.
    let mut w = world(2);
    propose(&mut w, addr(1), REMOVE_INSTITUTION, addr(2)); // 0
    propose(&mut w, addr(2), REMOVE_INSTITUTION, addr(1)); // 1
    vote(&mut w, addr(2), 0);
    assert!(!is_institution(&mut w, addr(2)));
    assert_eq!(vote_fails(&mut w, addr(1), 1), ContractError::ProposalStale { id: U256::from(1) });
    assert!(is_institution(&mut w, addr(1)));
    assert_eq!(institution_count(&mut w), U256::from(1));
}

#[test]
fn researchers_are_admitted_and_removed_by_vote() {
    let mut w = world(3);
    let researcher = addr(50);
    propose(&mut w, addr(1), ADMIT_RESEARCHER, researcher);
    let r = vote(&mut w, addr(3), 0);
    assert_eq!(r.event_names(), vec!["Voted", "ProposalPassed", "ResearcherAdmitted"]);
    assert_eq!(r.event::<Registrar::ResearcherAdmitted>().account, researcher);
    assert!(is_researcher(&mut w, researcher));
    assert!(!is_institution(&mut w, researcher), "a researcher is not an institution");

    let r = propose(&mut w, addr(2), REMOVE_RESEARCHER, researcher);
    let c: Registrar::ProposalCreated = r.event();
    assert_eq!(
        (c.id, c.action, c.subject, c.proposer),
        (U256::from(1), REMOVE_RESEARCHER, researcher, addr(2))
    );
    assert!(is_researcher(&mut w, researcher), "one vote of three");
    let r = vote(&mut w, addr(1), 1);
    assert_eq!(r.event_names(), vec!["Voted", "ProposalPassed", "ResearcherRemoved"]);
    assert_eq!(r.event::<Registrar::ResearcherRemoved>().account, researcher);
    assert!(!is_researcher(&mut w, researcher));
    assert_eq!(epoch(&mut w), 3);
    assert_eq!(institution_count(&mut w), U256::from(3));
    assert_eq!(
        proposal(&mut w, 1),
        Registrar::Proposal {
            subject: researcher,
            action: REMOVE_RESEARCHER,
            executed: true,
            votes: 2,
            epoch: 3
        }
    );
    // And may be admitted again.
    propose(&mut w, addr(1), ADMIT_RESEARCHER, researcher);
    vote(&mut w, addr(2), 2);
    assert!(is_researcher(&mut w, researcher));
}

#[test]
fn an_institution_can_also_be_a_researcher() {
    let mut w = world(1);
    let r = propose(&mut w, addr(1), ADMIT_RESEARCHER, addr(1));
    assert_eq!(r.event::<Registrar::ResearcherAdmitted>().account, addr(1));
    assert!(is_researcher(&mut w, addr(1)));
    assert!(is_institution(&mut w, addr(1)));
}

// ----- refusals read as sentences ---------------------------------------------------

#[test]
fn refusals_read_as_sentences_with_their_details() {
    let Cast { mut w, institution, stranger, .. } = Cast::new();
    let reg = w.reg();

    let err = w.fail(
        stranger,
        reg,
        Registrar::registerPatientCall { identity: h("x"), account: addr(21) },
    );
    let text = err.to_string();
    assert!(text.starts_with(&stranger.to_string()), "{text}");
    assert!(text.contains("is not a certified institution"), "{text}");

    let err = w.fail(
        institution,
        reg,
        Registrar::registerPatientCall { identity: h("patient"), account: addr(21) },
    );
    let text = err.to_string();
    assert!(text.contains(&h("patient").to_string()), "{text}");
    assert!(text.contains("already registered"), "{text}");

    let err = w.fail(
        stranger,
        reg,
        Registrar::updateProviderCall { endpoint: "x".into(), encryptionKey: h("k") },
    );
    assert!(err.to_string().contains(&stranger.to_string()), "{err}");
    assert!(err.to_string().contains("not a registered provider"), "{err}");

    let mut w = world(3);
    propose(&mut w, addr(1), ADMIT_RESEARCHER, addr(50));
    let text = vote_fails(&mut w, addr(1), 0).to_string();
    assert_eq!(text, format!("{} has already voted for proposal 0", addr(1)));

    let text = propose_fails(&mut w, addr(1), REMOVE_INSTITUTION, addr(9)).to_string();
    assert!(text.contains(&addr(9).to_string()), "{text}");
    assert!(text.ends_with("cannot be removed"), "{text}");
}
