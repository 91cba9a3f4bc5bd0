use alloy::{
    network::EthereumWallet,
    primitives::{U256, keccak256},
    providers::{Provider, ProviderBuilder},
};
use medrec_contracts::{ContractError, Registrar, Relationships};
use medrec_devchain::{
    chain::{Chain, ChainConfig},
    genesis::dev_accounts,
    node::{Node, SealMode},
    server,
};

fn node() -> Node {
    Node::new(Chain::new(ChainConfig::default()).unwrap(), SealMode::Instant)
}

#[tokio::test]
async fn alloy_drives_medrec_through_the_in_process_transport() {
    let node = node();
    let accounts = dev_accounts(3);
    let deployment = node.with(|c| c.deployment()).expect("contracts are predeployed");
    let institution = ProviderBuilder::new()
        .wallet(EthereumWallet::from(accounts[0].signer()))
        .connect_client(node.rpc_client());
    assert_eq!(institution.get_chain_id().await.unwrap(), 31337);
    let block = institution.get_block_number().await.unwrap();
    assert_eq!(block, 3, "genesis plus three deployment blocks");

    let registrar = Registrar::new(deployment.registrar, &institution);
    let receipt = registrar
        .registerPatient(keccak256("patient"), accounts[1].address)
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    assert!(receipt.status());
    let event = receipt.decoded_log::<Registrar::IdentityRegistered>().unwrap();
    assert_eq!(event.account, accounts[1].address);
    assert_eq!(receipt.block_number, Some(4));

    // A refusal comes back with its revert data, decoded into the custom error.
    let stranger = ProviderBuilder::new()
        .wallet(EthereumWallet::from(accounts[2].signer()))
        .connect_client(node.rpc_client());
    let err = Registrar::new(deployment.registrar, &stranger)
        .registerPatient(keccak256("x"), accounts[2].address)
        .send()
        .await
        .unwrap_err();
    let data = err.as_revert_data().expect("revert data in the error");
    assert_eq!(
        ContractError::decode(&data),
        ContractError::NotInstitution { caller: accounts[2].address }
    );

    let logs = registrar.IdentityRegistered_filter().from_block(0).query().await.unwrap();
    assert_eq!(logs.len(), 1);
    let balance = institution.get_balance(accounts[0].address).await.unwrap();
    assert!(balance < U256::from(10_000u64) * U256::from(10u64).pow(U256::from(18)));
    let rel = Relationships::new(deployment.relationships, &institution);
    assert_eq!(rel.MAX_POINTERS().call().await.unwrap(), U256::from(128));
}

#[tokio::test]
async fn the_same_works_over_http() {
    let node = node();
    let handle = server::serve(node.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let accounts = dev_accounts(2);
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(accounts[0].signer()))
        .connect_http(handle.url().parse().unwrap());
    let deployment = node.with(|c| c.deployment()).unwrap();
    let receipt = Registrar::new(deployment.registrar, &provider)
        .registerPatient(keccak256("p"), accounts[1].address)
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    assert!(receipt.status());
    let block = provider
        .get_block_by_number(receipt.block_number.unwrap().into())
        .full()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(block.header.hash, receipt.block_hash.unwrap());
    assert_eq!(block.transactions.len(), 1);
    handle.shutdown().await.unwrap();
}
