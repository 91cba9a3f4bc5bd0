//! The same MedRec scenario against the devchain and against anvil (the reference
//! node, from the npm package `@foundry-rs/anvil-linux-amd64`, at `--hardfork london`),
//! through the same client code: what a client sees must be the same.

use alloy::{
    network::{EthereumWallet, TransactionBuilder},
    primitives::{Address, B256, Bytes, U256, aliases::U40, keccak256},
    providers::{Provider, ProviderBuilder},
    rpc::types::{Log, TransactionRequest},
    sol_types::SolCall,
};
use medrec_contracts::{ContractError, Registrar, Relationships};
use medrec_devchain::{
    chain::{Chain, ChainConfig},
    genesis::dev_accounts,
    node::{Node, SealMode},
    server,
};

/// What a client observes of one transaction.
#[derive(Debug, PartialEq)]
struct Seen {
    step: &'static str,
    tx_hash: B256,
    status: bool,
    block: Option<u64>,
    gas_used: u64,
    effective_gas_price: u128,
    logs: Vec<(Address, Vec<B256>, Bytes)>,
}

/// Everything the scenario observed on one node.
#[derive(Debug, PartialEq)]
struct Observations {
    txs: Vec<Seen>,
    reverts: Vec<(&'static str, ContractError)>,
    balances: Vec<(Address, U256)>,
    views: Vec<(&'static str, Bytes)>,
}

async fn scenario(url: &str) -> Observations {
    let accounts = dev_accounts(10);
    let [institution, provider, patient, delegate, viewer] =
        [&accounts[5], &accounts[6], &accounts[7], &accounts[8], &accounts[9]];
    let rpc = |signer: &medrec_devchain::genesis::DevAccount| {
        ProviderBuilder::new()
            .wallet(EthereumWallet::from(signer.signer()))
            .connect_http(url.parse().unwrap())
    };
    let mut txs = Vec::new();
    // Identical transactions on both nodes: fixed gas limit and fees, nonces from the node.
    let send = async |from: &medrec_devchain::genesis::DevAccount,
                      step: &'static str,
                      to: Option<Address>,
                      data: Vec<u8>|
           -> Seen {
        let p = rpc(from);
        let mut tx = TransactionRequest::default()
            .with_from(from.address)
            .with_input(data)
            .with_gas_limit(5_000_000)
            .with_max_fee_per_gas(20_000_000_000)
            .with_max_priority_fee_per_gas(1_000_000_000);
        tx = match to {
            Some(to) => tx.with_to(to),
            None => tx.into_create(),
        };
        let receipt = p.send_transaction(tx).await.unwrap().get_receipt().await.unwrap();
        Seen {
            step,
            tx_hash: receipt.transaction_hash,
            status: receipt.status(),
            block: receipt.block_number,
            gas_used: receipt.gas_used,
            effective_gas_price: receipt.effective_gas_price,
            logs: receipt
                .inner
                .logs()
                .iter()
                .map(|l: &Log| (l.address(), l.topics().to_vec(), l.data().data.clone()))
                .collect(),
        }
    };

    let init = [
        Registrar::BYTECODE.as_ref(),
        &alloy::sol_types::SolConstructor::abi_encode(&Registrar::constructorCall {
            institutions: vec![institution.address],
        }),
    ]
    .concat();
    let deployed = send(institution, "deploy Registrar", None, init).await;
    let registrar = institution.address.create(0);
    let init = [
        Relationships::BYTECODE.as_ref(),
        &alloy::sol_types::SolConstructor::abi_encode(&Relationships::constructorCall {
            registrar_: registrar,
        }),
    ]
    .concat();
    txs.push(deployed);
    txs.push(send(institution, "deploy Relationships", None, init).await);
    let relationships = institution.address.create(1);

    let call = |c: &dyn Fn() -> Vec<u8>| c();
    txs.push(
        send(
            institution,
            "register provider",
            Some(registrar),
            call(&|| {
                Registrar::registerProviderCall {
                    identity: keccak256("provider"),
                    account: provider.address,
                    endpoint: "https://gk.example".into(),
                    encryptionKey: keccak256("key"),
                }
                .abi_encode()
            }),
        )
        .await,
    );
    txs.push(
        send(institution, "register patient", Some(registrar), {
            Registrar::registerPatientCall {
                identity: keccak256("patient"),
                account: patient.address,
            }
            .abi_encode()
        })
        .await,
    );
    let rel_id = medrec_primitives::RelationshipId::derive(patient.address, delegate.address).0;
    // The provider's address encrypted for the patient (36 bytes).
    let identity: Bytes =
        [keccak256("identity").as_slice(), &keccak256("tag")[..4]].concat().into();
    txs.push(
        send(patient, "create relationship", Some(relationships), {
            Relationships::createCall {
                delegate: delegate.address,
                queryCommitment: keccak256("salted Observation?category=laboratory"),
                dataHash: keccak256("v1"),
                identity: identity.clone(),
            }
            .abi_encode()
        })
        .await,
    );
    txs.push(
        send(patient, "grant", Some(relationships), {
            Relationships::grantCall {
                delegate: delegate.address,
                viewer: viewer.address,
                pointers: 1,
                notBefore: U40::ZERO,
                expiresAt: U40::from(4_000_000_000u64),
                sealedKey: vec![0x33; 80].into(),
            }
            .abi_encode()
        })
        .await,
    );
    txs.push(
        send(delegate, "update pointer with bounty", Some(relationships), {
            Relationships::updatePointerCall {
                account: patient.address,
                pointerId: U256::ZERO,
                dataHash: keccak256("v2"),
                bounty: keccak256("mean iron last week"),
            }
            .abi_encode()
        })
        .await,
    );
    txs.push(
        send(patient, "accept the update", Some(relationships), {
            Relationships::acceptCall { delegate: delegate.address }.abi_encode()
        })
        .await,
    );
    txs.push(
        send(patient, "revoke", Some(relationships), {
            Relationships::revokeCall { relId: rel_id, viewer: viewer.address }.abi_encode()
        })
        .await,
    );
    // A transaction that reverts on chain (sent with a fixed gas limit, so it is mined):
    // the viewer has no relationship with this delegate under its own account.
    txs.push(
        send(viewer, "accept without a relationship (reverts)", Some(relationships), {
            Relationships::acceptCall { delegate: delegate.address }.abi_encode()
        })
        .await,
    );

    // Refusals as a client sees them before sending: eth_call revert data.
    let p = rpc(viewer);
    let mut reverts = Vec::new();
    let refusals: [(&'static str, Address, Vec<u8>); 3] = [
        (
            "stranger registers",
            registrar,
            Registrar::registerPatientCall { identity: B256::ZERO, account: viewer.address }
                .abi_encode(),
        ),
        (
            "create with a short identity",
            relationships,
            Relationships::createCall {
                delegate: delegate.address,
                queryCommitment: keccak256("q"),
                dataHash: keccak256("d"),
                identity: identity[..35].to_vec().into(),
            }
            .abi_encode(),
        ),
        (
            "grant with empty set",
            relationships,
            Relationships::grantCall {
                delegate: delegate.address,
                viewer: viewer.address,
                pointers: 0,
                notBefore: U40::ZERO,
                expiresAt: U40::from(1u64),
                sealedKey: Bytes::new(),
            }
            .abi_encode(),
        ),
    ];
    for (step, to, data) in refusals {
        let tx =
            TransactionRequest::default().with_from(viewer.address).with_to(to).with_input(data);
        let err = p.call(tx).await.unwrap_err();
        let revert = err.as_error_resp().and_then(|e| e.as_revert_data()).expect("revert data");
        reverts.push((step, ContractError::decode(&revert)));
    }

    // Views, with the timestamps they hold checked against the node's own blocks
    // (the two nodes run at different wall-clock moments) and then set aside.
    let mut views = Vec::new();
    let block_time = async |n: Option<u64>| {
        p.get_block_by_number(n.unwrap().into()).await.unwrap().unwrap().header.timestamp
    };
    let out = p
        .call(
            TransactionRequest::default()
                .with_to(relationships)
                .with_input(Relationships::relationshipCall { relId: rel_id }.abi_encode()),
        )
        .await
        .unwrap();
    let mut rel = Relationships::relationshipCall::abi_decode_returns(&out).unwrap();
    assert_eq!(
        rel.updatedAt.to::<u64>(),
        block_time(txs[6].block).await,
        "updatedAt is the update's block time"
    );
    rel.updatedAt = U40::ZERO;
    views.push((
        "relationship",
        Bytes::from(Relationships::relationshipCall::abi_encode_returns(&rel)),
    ));
    let out = p
        .call(
            TransactionRequest::default()
                .with_to(registrar)
                .with_input(Registrar::resolveCall { identity: keccak256("patient") }.abi_encode()),
        )
        .await
        .unwrap();
    let mut resolved = Registrar::resolveCall::abi_decode_returns(&out).unwrap();
    assert_eq!(resolved.registeredAt.to::<u64>(), block_time(txs[3].block).await);
    resolved.registeredAt = U40::ZERO;
    views.push(("resolve", Bytes::from(Registrar::resolveCall::abi_encode_returns(&resolved))));
    // The patient's key slot, opened by its first creation.
    let out = p
        .call(
            TransactionRequest::default()
                .with_to(relationships)
                .with_input(Relationships::keyOfCall { key: patient.address }.abi_encode()),
        )
        .await
        .unwrap();
    views.push(("keyOf", out));

    let mut balances = Vec::new();
    for a in [institution, provider, patient, delegate, viewer] {
        balances.push((a.address, p.get_balance(a.address).await.unwrap()));
    }
    balances.push((Address::ZERO, p.get_balance(Address::ZERO).await.unwrap()));
    Observations { txs, reverts, balances, views }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sees_the_same_on_the_devchain_and_on_anvil() {
    let anvil = medrec_testkit::Anvil::spawn(&[]);
    let config = ChainConfig { deploy_medrec: false, ..ChainConfig::default() };
    let node = Node::new(Chain::new(config).unwrap(), SealMode::Instant);
    let server = server::serve(node, "127.0.0.1:0".parse().unwrap()).await.unwrap();

    let reference = scenario(anvil.url()).await;
    let ours = scenario(&server.url()).await;

    // Sanity: the scenario did what it says on the reference node.
    assert_eq!(reference.txs.len(), 10);
    assert!(reference.txs[..9].iter().all(|t| t.status), "{:#?}", reference.txs);
    assert!(!reference.txs[9].status);
    let accounts = dev_accounts(10);
    assert_eq!(
        reference.reverts[0].1,
        ContractError::NotInstitution { caller: accounts[9].address }
    );
    assert_eq!(reference.reverts[1].1, ContractError::BadCiphertext { length: U256::from(35) });
    assert_eq!(reference.reverts[2].1, ContractError::EmptyPointerSet);
    let key = Relationships::keyOfCall::abi_decode_returns(&reference.views[2].1).unwrap();
    assert_eq!(
        (key.account, key.rights, key.until),
        (accounts[7].address, 15, U40::ZERO),
        "the first creation opened the patient's key slot"
    );

    for (a, b) in reference.txs.iter().zip(&ours.txs) {
        assert_eq!(a, b, "step '{}' differs between anvil (left) and the devchain (right)", a.step);
    }
    assert_eq!(reference.reverts, ours.reverts);
    assert_eq!(reference.views, ours.views);
    assert_eq!(reference.balances, ours.balances, "balances (anvil left, devchain right)");
    server.shutdown().await.unwrap();
}
