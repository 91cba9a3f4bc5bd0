use alloy::{
    primitives::{Address, Bytes, U256, address},
    sol_types::SolCall,
};
use medrec_contracts::{ContractError, Registrar};
use medrec_devchain::{
    deploy::deploy_medrec,
    evm::{BLOCK_TIME, Evm, Outcome},
};

const INSTITUTION: Address = address!("0x00000000000000000000000000000000000000a1");
const OTHER: Address = address!("0x00000000000000000000000000000000000000b2");

fn chain() -> (Evm, Address) {
    let mut evm = Evm::new(1337, 1_000_000);
    let (at, gas) = deploy_medrec(&mut evm, OTHER, vec![INSTITUTION]).unwrap();
    assert!(gas.iter().all(|g| *g > 100_000));
    (evm, at.registrar)
}

#[test]
fn every_transaction_is_a_new_block_with_a_later_timestamp() {
    let (mut evm, reg) = chain();
    assert_eq!(evm.block_number(), 3, "three deployments, three blocks");
    assert_eq!(evm.timestamp(), 1_000_000 + 3 * BLOCK_TIME);
    let call = Registrar::isInstitutionCall(INSTITUTION).abi_encode();
    evm.transact(OTHER, reg, call.into()).unwrap();
    assert_eq!(evm.block_number(), 4);
    evm.advance_time(100);
    evm.transact(OTHER, reg, Bytes::new()).unwrap();
    assert_eq!(evm.timestamp(), 1_000_000 + 5 * BLOCK_TIME + 100);
}

#[test]
fn deployed_code_is_london_code_without_push0() {
    let (evm, reg) = chain();
    let code = evm.code(reg);
    assert!(!code.is_empty());
    assert_eq!(code, *Registrar::DEPLOYED_BYTECODE);
    // PUSH0 (0x5f) is a Shanghai opcode: walk the code skipping PUSH data.
    let mut i = 0;
    while i < code.len() {
        let op = code[i];
        assert_ne!(op, 0x5f, "PUSH0 at offset {i}");
        if op == 0xfe {
            break; // INVALID marks the start of the metadata trailer
        }
        i += 1 + if (0x60..=0x7f).contains(&op) { usize::from(op - 0x5f) } else { 0 };
    }
}

#[test]
fn nonces_count_transactions_and_reverts_commit_nothing_but_the_nonce() {
    let (mut evm, reg) = chain();
    let before = evm.nonce(INSTITUTION);
    let register = |account| {
        Registrar::registerPatientCall { identity: [7u8; 32].into(), account }.abi_encode().into()
    };
    // OTHER is not an institution: reverts with the custom error.
    match evm.transact(OTHER, reg, register(OTHER)).unwrap() {
        Outcome::Revert { output, gas_used } => {
            assert_eq!(
                ContractError::decode(&output),
                ContractError::NotInstitution { caller: OTHER }
            );
            assert!(gas_used > 21_000);
        }
        other => panic!("expected a revert, got {other:?}"),
    }
    let resolve = Registrar::resolveCall { identity: [7u8; 32].into() }.abi_encode();
    let Outcome::Success { output, .. } = evm.call(OTHER, reg, resolve.clone().into()).unwrap()
    else {
        panic!("resolve fails")
    };
    assert_eq!(Registrar::resolveCall::abi_decode_returns(&output).unwrap().account, Address::ZERO);
    let Outcome::Success { logs, .. } = evm.transact(INSTITUTION, reg, register(OTHER)).unwrap()
    else {
        panic!("registration fails")
    };
    assert_eq!(logs.len(), 1);
    assert_eq!(evm.nonce(INSTITUTION), before + 1);
    let Outcome::Success { output, .. } = evm.call(OTHER, reg, resolve.into()).unwrap() else {
        panic!("resolve fails")
    };
    assert_eq!(Registrar::resolveCall::abi_decode_returns(&output).unwrap().account, OTHER);
}

#[test]
fn calls_do_not_change_state_or_advance_the_chain() {
    let (mut evm, reg) = chain();
    let (n, t) = (evm.block_number(), evm.timestamp());
    let data = Registrar::registerPatientCall { identity: [9u8; 32].into(), account: OTHER };
    let out = evm.call(INSTITUTION, reg, data.abi_encode().into()).unwrap();
    assert!(matches!(out, Outcome::Success { .. }));
    assert_eq!((evm.block_number(), evm.timestamp()), (n, t));
    let resolve = Registrar::resolveCall { identity: [9u8; 32].into() }.abi_encode();
    let Outcome::Success { output, .. } = evm.call(OTHER, reg, resolve.into()).unwrap() else {
        panic!()
    };
    assert_eq!(Registrar::resolveCall::abi_decode_returns(&output).unwrap().account, Address::ZERO);
}

#[test]
fn balances_and_funding() {
    let mut evm = Evm::new(1, 0);
    assert_eq!(evm.balance(OTHER), U256::ZERO);
    evm.fund(OTHER, U256::from(5));
    evm.fund(OTHER, U256::from(7));
    assert_eq!(evm.balance(OTHER), U256::from(12));
    assert_eq!(evm.chain_id(), 1);
    assert!(evm.code(OTHER).is_empty());
}

#[test]
fn a_failed_constructor_is_reported_with_its_reason() {
    let mut evm = Evm::new(1, 0);
    let err = deploy_medrec(&mut evm, OTHER, vec![]).unwrap_err();
    match err {
        medrec_devchain::deploy::DeployError::Failed {
            contract,
            outcome: Outcome::Revert { output, .. },
        } => {
            assert_eq!(contract, "Registrar");
            assert_eq!(ContractError::decode(&output), ContractError::NoInstitutions);
        }
        other => panic!("unexpected {other:?}"),
    }
}
