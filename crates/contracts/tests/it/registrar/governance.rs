//! `Registrar`: governance: proposing and voting.

use super::*;

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
