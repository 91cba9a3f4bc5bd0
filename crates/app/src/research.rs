//! The researcher's workflows as the app runs them: admission, the bounties owned and
//! their redemption (answers kept beside the wallet in `redeemed.json`, as the CLI
//! keeps them), and the miner that seals blocks with the researcher as coinbase.

use alloy::{
    primitives::{Address, B256},
    signers::local::PrivateKeySigner,
};
use medrec_client::{
    Chain,
    researcher::{self, Answers, Bounty},
};
use medrec_devchain::miner::{self, MinerConfig};
use serde_json::Value;
use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};
use tokio::task::AbortHandle;

/// A research entity, signing with its account's key, connected to the chain.
#[derive(Debug, Clone)]
pub(crate) struct ResearcherSession {
    chain: Chain,
    signer: PrivateKeySigner,
    answers: PathBuf,
}

impl ResearcherSession {
    /// The researcher that signs with `signer`, keeping its answers in `dir`.
    pub(crate) fn new(chain: Chain, signer: PrivateKeySigner, dir: &Path) -> Self {
        Self { chain, signer, answers: dir.join("redeemed.json") }
    }

    /// The researcher's address.
    pub(crate) fn address(&self) -> Address {
        self.signer.address()
    }

    /// The chain.
    pub(crate) const fn chain(&self) -> &Chain {
        &self.chain
    }

    /// Whether the certified institutions admitted this researcher.
    ///
    /// # Errors
    /// When the chain cannot be read.
    pub(crate) async fn admitted(&self) -> medrec_client::Result<bool> {
        self.chain.registrar().isResearcher(self.address()).call().await.map_err(|e| {
            medrec_client::Error::Failed {
                what: "the chain node does not answer".to_owned(),
                source: Box::new(e),
            }
        })
    }

    /// The bounties this researcher owns, in chain order.
    ///
    /// # Errors
    /// When the chain cannot be read.
    pub(crate) async fn owned(&self) -> medrec_client::Result<Vec<Bounty>> {
        researcher::owned(&self.chain, Some(self.address())).await
    }

    /// The answers redeemed so far.
    ///
    /// # Errors
    /// When the file cannot be read.
    pub(crate) fn answers(&self) -> medrec_client::Result<Answers> {
        Answers::load(&self.answers)
    }

    /// The provider of each relationship the bounties came through, as far as the
    /// researcher knows it: the chain does not say who posted a bounty, so it is the
    /// provider whose gatekeeper answered a redemption (kept with the answer).
    pub(crate) fn providers(&self, answers: &Answers) -> HashMap<B256, Address> {
        answers
            .by_bounty
            .iter()
            .filter_map(|(id, a)| {
                let relationship = crate::views::researcher::relationship_of(id)?;
                let provider = a["provider"].as_str()?.parse().ok()?;
                Some((relationship, provider))
            })
            .collect()
    }

    /// Redeems the bounty `id` (one this researcher owns) at its provider's gatekeeper
    /// and keeps the answer.
    ///
    /// # Errors
    /// When the researcher does not own it, the gatekeeper refuses, or the answer
    /// cannot be kept.
    pub(crate) async fn redeem(&self, id: &str) -> medrec_client::Result<Value> {
        let owned = self.owned().await?;
        let bounty = owned.into_iter().find(|b| b.id() == id).ok_or_else(|| {
            medrec_client::Error::invalid(
                "you do not own this bounty (mine the block that posts one to own it)",
            )
        })?;
        let answer = researcher::redeem(&self.chain, &self.signer, &bounty, None).await?;
        let mut answers = self.answers()?;
        answers.by_bounty.insert(bounty.id(), answer.clone());
        answers.save()?;
        Ok(answer)
    }
}

/// The researcher's miner while it runs: blocks sealed, and why it stopped if it did.
#[derive(Debug)]
pub(crate) struct Mining {
    task: AbortHandle,
    /// Blocks sealed since it started.
    pub(crate) sealed: Arc<AtomicU64>,
    /// The newest block it sealed.
    pub(crate) last: Arc<AtomicU64>,
    /// When it started.
    pub(crate) started: Instant,
    /// Why it stopped, when it stopped by itself.
    pub(crate) failure: Arc<Mutex<Option<String>>>,
}

impl Mining {
    /// Starts mining at `rpc_url` with `coinbase` as the blocks' miner.
    pub(crate) fn start(rpc_url: String, coinbase: Address) -> Self {
        let sealed = Arc::new(AtomicU64::new(0));
        let last = Arc::new(AtomicU64::new(0));
        let failure = Arc::new(Mutex::new(None));
        let config = MinerConfig {
            rpc_url,
            coinbase,
            blocks: None,
            include: None,
            refresh: Duration::from_secs(1),
        };
        let (count, newest, failed) = (sealed.clone(), last.clone(), failure.clone());
        let task = tokio::spawn(async move {
            let result = miner::mine(&config, |m| {
                count.fetch_add(1, Ordering::Relaxed);
                newest.store(m.block, Ordering::Relaxed);
            })
            .await;
            if let Err(e) = result
                && let Ok(mut f) = failed.lock()
            {
                *f = Some(format!("Mining stopped: {e}."));
            }
        });
        Self { task: task.abort_handle(), sealed, last, started: Instant::now(), failure }
    }

    /// Whether it is still mining.
    pub(crate) fn running(&self) -> bool {
        !self.task.is_finished()
    }

    /// Stops it.
    pub(crate) fn stop(self) {
        self.task.abort();
    }
}
