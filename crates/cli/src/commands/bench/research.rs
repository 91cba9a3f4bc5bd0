//! `medrec bench research`: how long a research bounty redemption takes at the
//! provider's gatekeeper as the opted-in cohort grows.
//!
//! For each cohort size, a fresh scenario is set up before anything is timed: a
//! devchain in process (instant sealing, JSON-RPC on loopback), a gatekeeper with a
//! SQLite record store and research ledger in a temporary directory (research on, a
//! policy with a budget large enough for every bounty, rate limits off), `patients`
//! synthetic patients imported as FHIR transactions, one relationship per patient
//! from the provider, each enrolled at the gatekeeper and opted in to research by the
//! patient (a key of its own, funded from a development account), and a researcher
//! admitted by the certified institution.
//!
//! Then `bounties` pointer updates are posted on the first patient's relationship,
//! each carrying a published bounty query (alternately a mean of body weight and the
//! same mean grouped by sex and age band) and each mined by the researcher, who
//! redeems it: the first redemption computes the aggregate over every opted-in
//! patient's records (timed as `fresh`), the second returns the stored answer (timed
//! as `replayed`). Each timing is one signed `POST /research/redeem/{rel}/{seq}` over
//! loopback, from the request to the parsed answer.

use crate::output;
use alloy::{
    primitives::{Address, U256, keccak256},
    signers::local::PrivateKeySigner,
};
use anyhow::{Context, ensure};
use futures::{StreamExt, TryStreamExt};
use medrec_client::{
    ChainSpec, provider::registration::register_provider, researcher, retry::until_caught_up, tx,
};
use medrec_devchain::{
    chain::{Chain, ChainConfig},
    genesis::{DevAccount, dev_accounts},
    miner::{self, MinerConfig},
    node::{Node, SealMode},
    server::serve as serve_rpc,
};
use medrec_gatekeeper::{
    client::{ClientError, GatekeeperClient},
    limits::RateLimits,
    serve::{ResearchSetup, ServeConfig, StoreUrl, spawn},
};
use medrec_primitives::RelationshipId;
use medrec_research::policy::Policy;
use medrec_store::{
    RecordStore,
    fhir::{ResourceId, ResourceType},
    search::SearchQuery,
};
use medrec_synth::{Options as SynthOptions, generate, transaction_bundle};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const CHAIN_ID: u64 = 31337;
const INSTITUTION: usize = 0;
const PROVIDER: usize = 1;
/// The delegate of the first patient's relationship, which posts the bounties.
const BOUNTY_DELEGATE: usize = 3;
const RESEARCHER: usize = 5;
/// Pays for the patients' opt-in transactions.
const FUNDER: usize = 9;
/// The pointer each relationship is enrolled with.
const LABS: &str = "Observation?category=laboratory";
/// Mean body weight over the last five years.
const MEAN_QUERY: &str = "mean(Observation.valueQuantity) where code = http://loinc.org|29463-7 and category = vital-signs and date in last 1825 days and range 30..150";
/// The same mean, grouped by sex and age band.
const GROUPED_QUERY: &str = "mean(Observation.valueQuantity) where code = http://loinc.org|29463-7 and category = vital-signs and date in last 1825 days and range 30..150 group by sex, age_band";
/// Concurrent requests while setting up (imports, enrollments, opt-ins).
const SETUP_IN_FLIGHT: usize = 16;

/// What to measure.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// Cohort sizes, each measured in a fresh scenario.
    pub(crate) patients: Vec<usize>,
    /// Years of synthetic history per patient.
    pub(crate) years: u32,
    /// Bounties posted and redeemed per cohort size.
    pub(crate) bounties: usize,
}

/// Runs every cohort size; returns the `research` report.
pub(crate) fn measure(options: &Options) -> anyhow::Result<Value> {
    ensure!(!options.patients.is_empty(), "--patients needs at least one cohort size");
    ensure!(options.patients.iter().all(|&n| n >= 1), "every cohort size must be at least 1");
    ensure!(options.bounties >= 1, "--bounties must be at least 1");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut cohorts = Vec::new();
    for &n in &options.patients {
        output::note(&format!("research: cohort of {n} patients, {} bounties", options.bounties));
        cohorts.push(runtime.block_on(cohort(n, options))?);
    }
    Ok(json!({
        "years": options.years,
        "bounties_per_cohort": options.bounties,
        "queries": [MEAN_QUERY, GROUPED_QUERY],
        "cohorts": cohorts,
    }))
}

/// The report as a small text table, one line per cohort size.
pub(crate) fn table(report: &Value) -> String {
    let mut out = format!(
        "{:>8} {:>12} {:>11} {:>10} {:>8} {:>8} {:>10} {:>8} {:>8} {:>10} {:>8}\n",
        "patients",
        "observations",
        "redemptions",
        "fresh p50",
        "p90",
        "max",
        "replay p50",
        "p90",
        "max",
        "store read",
        "setup s"
    );
    let ms = |v: &Value| v.as_f64().map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
    for c in report["cohorts"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "{:>8} {:>12} {:>11} {:>10} {:>8} {:>8} {:>10} {:>8} {:>8} {:>10} {:>8}\n",
            c["patients"].as_u64().unwrap_or(0),
            c["observations_in_cohort"].as_u64().unwrap_or(0),
            c["redemptions"].as_u64().unwrap_or(0),
            ms(&c["fresh"]["p50_ms"]),
            ms(&c["fresh"]["p90_ms"]),
            ms(&c["fresh"]["max_ms"]),
            ms(&c["replayed"]["p50_ms"]),
            ms(&c["replayed"]["p90_ms"]),
            ms(&c["replayed"]["max_ms"]),
            ms(&c["store_read_ms"]),
            ms(&c["setup_seconds"]),
        ));
    }
    out.push_str("(milliseconds, setup in seconds; store read: the cohort's records read once straight from the store)");
    out
}

/// Latency summary of `samples` (seconds), in milliseconds.
fn latency(samples: &[f64]) -> Value {
    let mut ms: Vec<f64> = samples.iter().map(|s| s * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    // Nearest rank: the smallest sample with at least q % of the samples at or below it.
    let at = |q: usize| ms.get((ms.len() * q).div_ceil(100).saturating_sub(1)).copied();
    let round = |v: Option<f64>| v.map(|v| (v * 100.0).round() / 100.0);
    json!({
        "count": ms.len(),
        "p50_ms": round(at(50)),
        "p90_ms": round(at(90)),
        "max_ms": round(ms.last().copied()),
    })
}

/// One patient of the cohort: their key, their relationship's delegate and record id.
struct Member {
    signer: PrivateKeySigner,
    delegate: Address,
    record: String,
}

/// Reads a patient and all their Observations as the gatekeeper's redemption does
/// (pages of 500); returns how many Observations.
async fn read_patient(store: &dyn RecordStore, patient: &ResourceId) -> anyhow::Result<usize> {
    store.read(ResourceType::Patient, patient).await?.context("a patient is missing")?;
    let mut read = 0usize;
    loop {
        let mut query = SearchQuery::all(ResourceType::Observation);
        query.patient = Some(patient.clone());
        query.count = 500;
        query.offset = u32::try_from(read)?;
        let page = store.search(&query).await?;
        let got = page.entries.len();
        read += got;
        if got == 0 || read as u64 >= page.total {
            return Ok(read);
        }
    }
}

#[allow(clippy::too_many_lines)]
async fn cohort(n: usize, options: &Options) -> anyhow::Result<Value> {
    let setup_started = Instant::now();
    let accounts: Vec<DevAccount> = dev_accounts(10);
    let dir =
        std::env::temp_dir().join(format!("medrec-bench-research-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let result = async {
        let chain_config = ChainConfig {
            dev_accounts: 10,
            // The researcher seals each bounty's block by Proof of Work: keep it quick.
            pow_initial_difficulty: 1 << 12,
            ..ChainConfig::default()
        };
        let node = Node::new(Chain::new(chain_config)?, SealMode::Instant);
        let at = node.with(Chain::deployment).context("the contracts are deployed")?;
        let rpc_server = serve_rpc(node.clone(), "127.0.0.1:0".parse()?).await?;
        let rpc = rpc_server.url();
        let chain = ChainSpec {
            rpc_url: rpc.clone(),
            registrar: at.registrar,
            relationships: at.relationships,
            anchors: at.anchors,
            from_block: 0,
        }
        .connect()
        .await?;

        let provider = &accounts[PROVIDER];
        let mut config = ServeConfig::new(
            "127.0.0.1:0".parse()?,
            StoreUrl::Sqlite(dir.join("records.db")),
            rpc.clone(),
            at.relationships,
            provider.address,
            CHAIN_ID,
        );
        config.reorg_depth = 0;
        config.poll = Duration::from_millis(20);
        config.limits = RateLimits::off();
        config.research = Some(ResearchSetup {
            registrar: at.registrar,
            policy: Policy {
                epsilon_per_bounty: 0.5,
                budget_per_researcher: 1.0e9,
                ..Policy::default()
            },
            ledger: dir.join("research.db"),
        });
        let running = spawn(config).await.context("the gatekeeper could not start")?;
        let url = running.url();

        register_provider(
            &chain,
            &accounts[INSTITUTION].signer(),
            provider.address,
            "Bench Clinic",
            &url,
            keccak256(b"Bench Clinic key"),
        )
        .await?;

        // The records.
        output::note(&format!("  generating and importing {n} synthetic patients"));
        let records = generate(&SynthOptions {
            patients: n,
            years: options.years,
            seed: 29,
            ..SynthOptions::default()
        });
        let observations: usize = records
            .iter()
            .map(|r| r.resources.iter().filter(|x| x["resourceType"] == "Observation").count())
            .sum();
        let by_provider =
            GatekeeperClient::new(url.clone(), provider.address, CHAIN_ID, provider.signer());
        futures::stream::iter(records.iter().map(|record| {
            let client = &by_provider;
            async move {
                client.import(&transaction_bundle(record)).await.context("importing the records")
            }
        }))
        .buffer_unordered(SETUP_IN_FLIGHT)
        .try_collect::<Vec<_>>()
        .await?;

        // The relationships, each created by its patient from the provider's offer.
        output::note("  funding the patients; each creates its relationship");
        let members: Vec<Member> = records
            .iter()
            .enumerate()
            .map(|(i, record)| -> anyhow::Result<Member> {
                let signer =
                    PrivateKeySigner::from_bytes(&keccak256(format!("bench research patient {i}")))?;
                let delegate = if i == 0 {
                    accounts[BOUNTY_DELEGATE].address
                } else {
                    Address::from_word(keccak256(format!("bench research delegate {i}")))
                };
                Ok(Member { signer, delegate, record: record.id.clone() })
            })
            .collect::<anyhow::Result<_>>()?;
        let labs = medrec_gatekeeper::pointer::PointerSpec::salted(LABS);
        let query = labs.parse()?;
        let funder = chain.sender(accounts[FUNDER].signer());
        let gas = U256::from(10u64).pow(U256::from(17u64));
        for m in &members {
            tx::fund(&funder, m.signer.address(), gas, "a patient").await?;
            let id = RelationshipId::derive(m.signer.address(), m.delegate);
            let secret = medrec_client::privacy::RecordsSecret::of(&m.signer);
            let identity = medrec_client::privacy::encrypt_identity(
                &secret.relationship_key(id),
                provider.address,
            );
            let by_patient = chain.relationships_as(m.signer.clone());
            let create = by_patient.create(
                m.delegate,
                query.commitment(),
                keccak256(m.record.as_bytes()),
                identity.into(),
            );
            tx::send(&create, "creating a relationship").await?;
        }
        output::note("  enrolling the relationships at the gatekeeper");
        futures::stream::iter(members.iter().map(|m| {
            let client = &by_provider;
            let labs = &labs;
            async move {
                let id = RelationshipId::derive(m.signer.address(), m.delegate);
                until_caught_up(Duration::from_millis(20), Duration::from_secs(6), || client.enroll(id, &m.record, std::slice::from_ref(labs), None)).await
            }
        }))
        .buffer_unordered(SETUP_IN_FLIGHT)
        .try_collect::<Vec<_>>()
        .await?;

        output::note("  every patient opts in to research");
        let chain_ref = &chain;
        futures::stream::iter(members.iter().map(|m| async move {
            let by_patient = chain_ref.relationships_as(m.signer.clone());
            tx::send(&by_patient.setResearchConsent(m.delegate, true), "opting in").await
        }))
        .buffer_unordered(SETUP_IN_FLIGHT)
        .try_collect::<Vec<_>>()
        .await?;

        let researcher = &accounts[RESEARCHER];
        researcher::admit(&chain, &accounts[INSTITUTION].signer(), researcher.address).await?;
        let commitments = [
            by_provider.publish_bounty(MEAN_QUERY).await.context("publishing the mean query")?,
            by_provider
                .publish_bounty(GROUPED_QUERY)
                .await
                .context("publishing the grouped query")?,
        ];
        let setup_seconds = setup_started.elapsed().as_secs_f64();

        // For comparison: the same reads straight from the record store, no HTTP.
        let store = StoreUrl::Sqlite(dir.join("records.db")).open().await?;
        let started = Instant::now();
        let mut read = 0usize;
        for m in &members {
            read += read_patient(store.as_ref(), &m.record.parse()?).await?;
        }
        let store_read_seconds = started.elapsed().as_secs_f64();
        ensure!(read == observations, "the store holds {read} Observations, {observations} were imported");
        drop(store);

        // The bounties: each posted, mined by the researcher, redeemed twice.
        output::note(&format!("  posting and redeeming {} bounties", options.bounties));
        let first = &members[0];
        let bounty_rel = RelationshipId::derive(first.signer.address(), first.delegate);
        let by_delegate = chain.relationships_as(accounts[BOUNTY_DELEGATE].signer());
        let by_researcher =
            GatekeeperClient::new(url.clone(), provider.address, CHAIN_ID, researcher.signer());
        let (mut fresh, mut replayed) = (Vec::new(), Vec::new());
        let mut fresh_by_query = [Vec::new(), Vec::new()];
        let (mut mining_seconds, mut cells, mut suppressed) = (0.0, 0usize, 0usize);
        for b in 0..options.bounties {
            let update = by_delegate.updatePointer(
                first.signer.address(),
                U256::ZERO,
                keccak256(format!("bench research update {b}")),
                commitments[b % commitments.len()],
            );
            let mining_started = Instant::now();
            node.hold(true)?;
            let (receipt, (mining, released)) = tx::send_and_seal(&update, "updating the pointer", |tx| {
                let miner_config = MinerConfig {
                    rpc_url: rpc.clone(),
                    coinbase: researcher.address,
                    blocks: Some(1),
                    include: Some(vec![tx]),
                    refresh: Duration::from_millis(200),
                };
                let node = &node;
                async move { (miner::mine(&miner_config, |_| {}).await, node.hold(false)) }
            })
            .await
            .inspect_err(|_| drop(node.hold(false)))?;
            mining.context("the researcher's miner failed")?;
            released?;
            mining_seconds += mining_started.elapsed().as_secs_f64();
            let posted = researcher::posted(&receipt).context("the update posted no bounty")?;
            ensure!(posted.owner == researcher.address, "the bounty belongs to someone else");
            let seq = posted.seq;

            // Fresh: time the attempt that is served (earlier ones wait for the index).
            let mut answer = None;
            for _ in 0..300 {
                let started = Instant::now();
                match by_researcher.redeem(bounty_rel, seq).await {
                    Ok(a) => {
                        let took = started.elapsed().as_secs_f64();
                        fresh.push(took);
                        fresh_by_query[b % commitments.len()].push(took);
                        answer = Some(a);
                        break;
                    }
                    Err(ClientError::Refused { status: 503, .. }) => {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    Err(e) => return Err(e).context("redeeming a bounty"),
                }
            }
            let answer = answer.context("the gatekeeper never caught up with the bounty's block")?;
            ensure!(answer["replayed"] == false, "a first redemption was a replay: {answer}");
            for cell in answer["release"]["cells"].as_array().into_iter().flatten() {
                cells += 1;
                suppressed += usize::from(cell["suppressed"] == true);
            }
            let started = Instant::now();
            let again = by_researcher.redeem(bounty_rel, seq).await.context("redeeming again")?;
            replayed.push(started.elapsed().as_secs_f64());
            ensure!(again["replayed"] == true, "a second redemption was not a replay");
            ensure!(again["release"] == answer["release"], "a replay gave a different answer");
        }

        running.shutdown().await?;
        rpc_server.shutdown().await?;
        anyhow::Ok(json!({
            "patients": n,
            "opted_in": n,
            "observations_in_cohort": observations,
            "observations_read_per_redemption": observations,
            "redemptions": fresh.len() + replayed.len(),
            "cells": cells,
            "cells_suppressed": suppressed,
            "fresh": latency(&fresh),
            "replayed": latency(&replayed),
            "fresh_by_query": {
                "mean": latency(&fresh_by_query[0]),
                "grouped": latency(&fresh_by_query[1]),
            },
            "store_read_ms": (store_read_seconds * 100_000.0).round() / 100.0,
            "setup_seconds": (setup_seconds * 100.0).round() / 100.0,
            "mining_seconds_per_bounty": (mining_seconds / options.bounties as f64 * 1000.0).round() / 1000.0,
        }))
    }
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_reports_nearest_rank_percentiles() {
        let samples: Vec<f64> = (1..=10).map(|i| f64::from(i) / 1000.0).collect();
        let v = latency(&samples);
        assert_eq!(v["count"], 10);
        assert_eq!(v["p50_ms"], 5.0);
        assert_eq!(v["p90_ms"], 9.0);
        assert_eq!(v["max_ms"], 10.0);
        assert_eq!(latency(&[])["p50_ms"], Value::Null);
    }
}
