//! `Registrar`: governance: what passing proposals do.

use super::*;

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
