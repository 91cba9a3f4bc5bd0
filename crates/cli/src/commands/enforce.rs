//! `medrec bench enforce`: time from the block that holds a grant or revoke to the
//! consent index enforcing it.

use alloy::primitives::{Address, aliases::U40, keccak256};
use anyhow::Context;
use medrec_chain::{
    consent::ConsentIndex,
    follower::{FollowConfig, Follower},
};
use medrec_client::{ChainSpec, provider::registration::register_provider, tx};
use medrec_devchain::{
    chain::{Chain, ChainConfig},
    genesis::dev_accounts,
    node::{Node, SealMode},
};
use medrec_primitives::RelationshipId;
use std::{
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

/// Percentiles of enforcement delays.
#[derive(Debug, serde::Serialize)]
pub(crate) struct EnforcementReport {
    rounds: usize,
    poll_ms: u64,
    grant_p50_ms: f64,
    grant_p99_ms: f64,
    revoke_p50_ms: f64,
    revoke_p99_ms: f64,
}

/// Sends `rounds` grant/revoke pairs and times each until the index agrees.
pub(crate) async fn measure(rounds: usize, poll_ms: u64) -> anyhow::Result<EnforcementReport> {
    let node = Node::new(Chain::new(ChainConfig::default())?, SealMode::Instant);
    let at = node.with(|c| c.deployment()).context("no contracts")?;
    let a = dev_accounts(6);
    let (provider, patient, delegate, viewer) = (&a[1], &a[2], &a[3], &a[4]);
    let spec = ChainSpec {
        rpc_url: "in-process".to_owned(),
        registrar: at.registrar,
        relationships: at.relationships,
        anchors: at.anchors,
        from_block: 0,
    };
    let chain = medrec_client::Chain::over(node.rpc_client(), spec).await?;
    register_provider(&chain, &a[0].signer(), provider.address, "p", "https://gk", keccak256("k"))
        .await?;
    // The patient creates the relationship (accepted at once), the provider encrypted
    // for the patient: what the consent index follows here is the grants.
    let id = RelationshipId::derive(patient.address, delegate.address);
    let secret = medrec_client::privacy::RecordsSecret::of(&patient.signer());
    let identity =
        medrec_client::privacy::encrypt_identity(&secret.relationship_key(id), provider.address);
    let as_patient = chain.relationships_as(patient.signer());
    let create =
        as_patient.create(delegate.address, keccak256("q"), keccak256("d"), identity.into());
    tx::send(&create, "creating the relationship").await?;

    let index = Arc::new(RwLock::new(ConsentIndex::new(0)));
    let follower = Follower::new(
        chain.reader().clone(),
        FollowConfig { reorg_depth: 0, ..FollowConfig::new(at.relationships, 0) },
        index.clone(),
    );
    let (health, _) = tokio::sync::watch::channel(follower.health());
    let task = tokio::spawn(follower.run(Duration::from_millis(poll_ms), health));

    let allowed = |v: Address| {
        index.read().map(|i| i.decide(v, &id, 0, node.now()).is_allowed()).unwrap_or(false)
    };
    let (mut grants, mut revokes) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let grant = as_patient.grant(
            delegate.address,
            viewer.address,
            1,
            U40::ZERO,
            U40::from(4_000_000_000u64),
            alloy::primitives::Bytes::new(),
        );
        tx::send(&grant, "granting").await?;
        grants.push(wait(|| allowed(viewer.address)).await?);
        tx::send(&as_patient.revoke(id.0, viewer.address), "revoking").await?;
        revokes.push(wait(|| !allowed(viewer.address)).await?);
    }
    task.abort();
    let pct = |v: &mut Vec<f64>, q: f64| {
        v.sort_by(f64::total_cmp);
        v[((v.len() - 1) as f64 * q) as usize]
    };
    Ok(EnforcementReport {
        rounds,
        poll_ms,
        grant_p50_ms: pct(&mut grants, 0.5),
        grant_p99_ms: pct(&mut grants, 0.99),
        revoke_p50_ms: pct(&mut revokes, 0.5),
        revoke_p99_ms: pct(&mut revokes, 0.99),
    })
}

/// Milliseconds until `done` holds (the receipt is in hand, so the block is sealed).
async fn wait(done: impl Fn() -> bool) -> anyhow::Result<f64> {
    let start = Instant::now();
    while !done() {
        anyhow::ensure!(start.elapsed() < Duration::from_secs(10), "not enforced within 10 s");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(start.elapsed().as_secs_f64() * 1e3)
}
