//! The follower keeps the index at the head of a real JSON-RPC chain.

use alloy::{
    network::EthereumWallet,
    primitives::{aliases::U40, keccak256},
    providers::{Provider, ProviderBuilder},
};
use medrec_chain::{
    consent::{ConsentIndex, Decision},
    follower::{FollowConfig, Follower},
};
use medrec_contracts::{Registrar, Relationships};
use medrec_devchain::{
    chain::{Chain, ChainConfig},
    genesis::{DevAccount, dev_accounts},
    node::{Node, SealMode},
};
use medrec_primitives::RelationshipId;
use medrec_testkit::medrec::{DELEGATE, Medrec, PATIENT, VIEWER};
use std::{
    sync::{Arc, RwLock},
    time::Duration,
};

#[tokio::test]
async fn grants_and_revocations_are_enforced_after_one_step() {
    let m = Medrec::new().await;
    let index = Arc::new(RwLock::new(ConsentIndex::new(64)));
    let mut follower =
        Follower::new(m.reader(), FollowConfig::new(m.at.relationships, 0), index.clone());
    follower.step().await.unwrap();
    assert_eq!(
        follower.health().indexed,
        4,
        "genesis, three deployments, the provider's registration"
    );

    let id = m.relate(keccak256("q"), keccak256("d")).await;
    m.grant(VIEWER).await;
    let (viewer, now) = (m.address(VIEWER), m.node.now());
    assert!(!index.read().unwrap().decide(viewer, &id, 0, now).is_allowed(), "not followed yet");
    let height = follower.step().await.unwrap();
    assert_eq!(height, m.node.with(|c| c.latest().header.number));
    assert_eq!(index.read().unwrap().decide(viewer, &id, 0, now), Decision::AllowViewer);
    assert_eq!(
        index.read().unwrap().decide(m.address(PATIENT), &id, 0, now),
        Decision::AllowPatient
    );

    m.revoke(VIEWER).await;
    follower.step().await.unwrap();
    assert!(
        !index.read().unwrap().decide(viewer, &id, 0, now).is_allowed(),
        "revoked at the next step"
    );
    assert!(follower.health().is_ready(0, Duration::from_secs(60)));
    // The chain names the patient's account and the delegate, never the provider.
    let rel = *index.read().unwrap().relationship(&id).unwrap();
    assert_eq!((rel.patient, rel.delegate), (m.address(PATIENT), m.address(DELEGATE)));
}

#[tokio::test]
async fn an_index_that_falls_behind_or_loses_the_node_is_not_ready() {
    let node = Node::new(Chain::new(ChainConfig::default()).unwrap(), SealMode::Instant);
    let at = node.with(|c| c.deployment()).unwrap();
    let reader = ProviderBuilder::new().connect_client(node.rpc_client());
    let index = Arc::new(RwLock::new(ConsentIndex::new(0)));
    let mut follower = Follower::new(
        reader,
        FollowConfig { reorg_depth: 0, ..FollowConfig::new(at.relationships, 0) },
        index,
    );
    assert!(!follower.health().is_ready(5, Duration::from_secs(60)), "never synced");
    follower.step().await.unwrap();
    assert!(follower.health().is_ready(0, Duration::from_secs(60)));
    for _ in 0..3 {
        node.mine_now().unwrap();
    }
    // The follower has not looked yet: it still believes it is at the head...
    assert!(follower.health().is_ready(0, Duration::from_secs(60)));
    // ...but a stale last answer counts as not ready.
    assert!(!follower.health().is_ready(0, Duration::ZERO));
    follower.step().await.unwrap();
    assert_eq!(follower.health().indexed, 6, "three deployments and three mined blocks");
    // A node that stops answering: the step fails and the index stays as it was.
    let dead = ProviderBuilder::new().connect_http("http://127.0.0.1:9".parse().unwrap());
    let mut orphan = Follower::new(
        dead,
        FollowConfig::new(at.relationships, 0),
        Arc::new(RwLock::new(ConsentIndex::new(0))),
    );
    let err = orphan.step().await.unwrap_err();
    assert!(err.to_string().starts_with("the chain node failed"), "{err}");
    assert!(!orphan.health().is_ready(u64::MAX, Duration::from_secs(3600)));
}

/// anvil replaces the block holding a grant (anvil_reorg): the follower notices the
/// block hash changed, undoes it, and the grant no longer opens anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reorganised_grant_is_undone() {
    let anvil = medrec_testkit::Anvil::spawn(&[]);
    let url: alloy::transports::http::reqwest::Url = anvil.url().parse().unwrap();
    let a = dev_accounts(6);
    let (institution, provider, patient, delegate, viewer) = (&a[0], &a[1], &a[2], &a[3], &a[4]);
    let on = |who: &DevAccount| {
        ProviderBuilder::new().wallet(EthereumWallet::from(who.signer())).connect_http(url.clone())
    };
    let inst = on(institution);
    let registrar = Registrar::deploy(inst.clone(), vec![institution.address]).await.unwrap();
    let relationships = Relationships::deploy(inst, *registrar.address()).await.unwrap();
    registrar
        .registerProvider(keccak256("p"), provider.address, "https://gk".into(), keccak256("k"))
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let at = *relationships.address();
    let as_patient = Relationships::new(at, on(patient));
    as_patient
        .create(delegate.address, keccak256("q"), keccak256("d"), vec![0x5a; 36].into())
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();

    let index = Arc::new(RwLock::new(ConsentIndex::new(64)));
    let reader = ProviderBuilder::new().connect_http(url.clone());
    let mut follower = Follower::new(reader.clone(), FollowConfig::new(at, 0), index.clone());
    follower.step().await.unwrap();
    as_patient
        .grant(
            delegate.address,
            viewer.address,
            1,
            U40::ZERO,
            U40::from(4_000_000_000u64),
            Default::default(),
        )
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let granted_in = follower.step().await.unwrap();
    let id = RelationshipId::derive(patient.address, delegate.address);
    let now = 1_900_000_000;
    assert_eq!(index.read().unwrap().decide(viewer.address, &id, 0, now), Decision::AllowViewer);

    // Replace the last block (the grant) with an empty one at the same height.
    reader
        .raw_request::<_, serde_json::Value>(
            "anvil_reorg".into(),
            (1u64, Vec::<serde_json::Value>::new()),
        )
        .await
        .unwrap();
    assert_eq!(reader.get_block_number().await.unwrap(), granted_in);
    follower.step().await.unwrap();
    assert!(
        !index.read().unwrap().decide(viewer.address, &id, 0, now).is_allowed(),
        "the grant was reorganised away"
    );
    assert!(index.read().unwrap().relationship(&id).is_some(), "earlier blocks are kept");
}
