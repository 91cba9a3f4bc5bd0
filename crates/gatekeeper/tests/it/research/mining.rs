//! Mining: researchers own exactly the bounties of the blocks they mine, and only
//! admitted ones redeem them.

use super::{
    Clinic, FIRST_PATIENT, RESEARCHER_A, RESEARCHER_B, ROGUE, SHARP, heart_rate, refused,
    sharp_policy, single_value, until,
};
use alloy::primitives::Address;
use alloy::providers::{Provider, ProviderBuilder};
use medrec_devchain::{
    miner::{MinerConfig, mine},
    node::SealMode,
};
use medrec_primitives::RelationshipId;
use std::{
    collections::BTreeSet,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

/// Two admitted researchers mine a Proof-of-Work chain against each other while the
/// provider posts bounties; each owns exactly the bounties of the blocks it sealed,
/// and can redeem its own but not the other's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn competing_researchers_own_and_redeem_exactly_the_bounties_they_mined() {
    let clinic = Clinic::new("compete", SealMode::Pow, 1, sharp_policy(1)).await;
    let w = &clinic.world;
    assert!(w.is_researcher(w.address(RESEARCHER_A)).await);
    assert!(w.is_researcher(w.address(RESEARCHER_B)).await);
    clinic.consent([0], true).await;
    let text = heart_rate("count");
    let commitment = clinic.publish(&text).await;

    // Both researchers mine continuously (one block per round until told to stop),
    // each recording the blocks it sealed.
    let start = w.head();
    let miners = [w.address(RESEARCHER_A), w.address(RESEARCHER_B)];
    let sealed: [Arc<Mutex<BTreeSet<u64>>>; 2] = Default::default();
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = miners
        .iter()
        .zip(&sealed)
        .map(|(coinbase, record)| {
            let config = MinerConfig {
                rpc_url: w.rpc.url(),
                coinbase: *coinbase,
                blocks: Some(1),
                include: None,
                refresh: Duration::from_millis(100),
            };
            let (record, stop) = (Arc::clone(record), Arc::clone(&stop));
            tokio::spawn(async move {
                while !stop.load(Ordering::Acquire) {
                    mine(&config, |m| {
                        record.lock().unwrap().insert(m.block);
                    })
                    .await
                    .expect("mining");
                }
            })
        })
        .collect();
    // The provider posts bounties one after the other; each confirms only when one of
    // the miners seals it. Go on until each researcher owns at least two.
    let mut posted = 0u64;
    loop {
        let tx = w.queue_bounty(FIRST_PATIENT, commitment, posted);
        posted += 1;
        until("a miner sealed the bounty", || w.node.with(|c| c.receipt(&tx)).is_some()).await;
        let owners: Vec<Address> = w.bounties().iter().map(|b| b.owner).collect();
        let each = miners.map(|m| owners.iter().filter(|o| **o == m).count());
        if posted >= 6 && each.iter().all(|n| *n >= 2) {
            break;
        }
        assert!(posted < 60, "after {posted} bounties one miner still owns fewer than two");
    }
    stop.store(true, Ordering::Release);
    for t in tasks {
        t.await.expect("the miner stops after its round");
    }
    let end = w.head();

    let bounties = w.bounties();
    assert_eq!(bounties.len() as u64, posted, "every update carried one bounty");
    let reader = ProviderBuilder::new().connect_http(w.rpc.url().parse().unwrap());
    for b in &bounties {
        let block = reader.get_block_by_number(b.block.into()).await.unwrap().unwrap();
        assert_eq!(block.header.beneficiary, b.owner, "eth_getBlockByNumber's miner owns it");
        assert_eq!(
            b.owner,
            b.miner,
            "bounty {} is owned by the miner of block {}",
            b.id(),
            b.block
        );
        assert!(miners.contains(&b.owner), "a researcher mined bounty {}", b.id());
    }
    for (who, coinbase) in miners.iter().enumerate() {
        let blocks = sealed[who].lock().unwrap().clone();
        // What the miner says it sealed is what the chain credits it with.
        let credited: BTreeSet<u64> = (start + 1..=end)
            .filter(|n| w.node.with(|c| c.block(*n)).unwrap().header.beneficiary == *coinbase)
            .collect();
        assert_eq!(credited, blocks, "researcher {who}'s blocks");
        let owned: BTreeSet<(RelationshipId, u64)> = bounties
            .iter()
            .filter(|b| b.owner == *coinbase)
            .map(|b| (b.relationship, b.seq))
            .collect();
        let of_its_blocks: BTreeSet<(RelationshipId, u64)> = bounties
            .iter()
            .filter(|b| blocks.contains(&b.block))
            .map(|b| (b.relationship, b.seq))
            .collect();
        assert_eq!(
            owned, of_its_blocks,
            "researcher {who} owns exactly the bounties of its blocks"
        );
        assert!(owned.len() >= 2);
    }

    // Redeem: its own is served, the other's refused.
    clinic.caught_up().await;
    let own = *bounties.iter().find(|b| b.owner == miners[0]).unwrap();
    let other = *bounties.iter().find(|b| b.owner == miners[1]).unwrap();
    let answer = clinic.redeem(RESEARCHER_A, &own).await.expect("its own bounty is served");
    assert_eq!(answer["bounty"], own.id());
    assert_eq!(single_value(&answer["release"]).round(), 1.0, "one opted-in patient: {answer}");
    let spent = clinic.spent(RESEARCHER_A);
    assert_eq!(spent, SHARP, "the release spent its ε");
    let (status, why) = refused(clinic.redeem(RESEARCHER_A, &other).await);
    assert_eq!(status, 403, "{why}");
    assert!(why.contains("only its owner may redeem it"), "{why}");
    assert!(!clinic.released(&other), "nothing released for someone else's bounty");
    assert_eq!(clinic.spent(RESEARCHER_A), spent, "the refusal spent nothing");
    // Its owner can.
    clinic.redeem(RESEARCHER_B, &other).await.expect("the owner redeems it");
    clinic.shutdown().await;
}

/// A miner the institutions never admitted owns the bounties of its blocks on chain,
/// but the gatekeeper refuses to redeem them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miner_never_admitted_owns_bounties_but_cannot_redeem_them() {
    let clinic = Clinic::new("rogue", SealMode::Instant, 1, sharp_policy(1)).await;
    clinic.consent([0], true).await;
    let w = &clinic.world;
    assert!(!w.is_researcher(w.address(ROGUE)).await);
    let text = heart_rate("count");
    let b = clinic.bounty(ROGUE, &text).await;
    assert_eq!((b.owner, b.miner), (w.address(ROGUE), w.address(ROGUE)), "owned on chain");
    let (status, why) = refused(clinic.redeem(ROGUE, &b).await);
    assert_eq!(status, 403, "{why}");
    assert!(
        why.contains("is not a research entity admitted by the certified institutions"),
        "{why}"
    );
    assert!(!clinic.released(&b), "nothing released");
    assert_eq!(clinic.spent(ROGUE), 0.0);
    // Nor can an admitted researcher take it.
    let (status, why) = refused(clinic.redeem(RESEARCHER_A, &b).await);
    assert_eq!(status, 403, "{why}");
    assert!(why.contains("only its owner may redeem it"), "{why}");
    assert!(!clinic.released(&b));
    // The same bounty mined by an admitted researcher is served: admission was the reason.
    let good = clinic.bounty(RESEARCHER_A, &text).await;
    let answer = clinic.redeem(RESEARCHER_A, &good).await.expect("served");
    assert_eq!(single_value(&answer["release"]), 1.0);
    clinic.shutdown().await;
}
