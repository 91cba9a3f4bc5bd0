//! `Registrar`: constructor.

use super::*;

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
