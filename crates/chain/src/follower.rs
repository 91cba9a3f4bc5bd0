//! Keeps a [`ConsentIndex`] at the chain's head.
//!
//! Each [`Follower::step`] asks the node for its head, fetches the `Relationships`
//! logs of the new blocks with `eth_getLogs` (in bounded ranges) and applies them in
//! order. On a chain that can reorganise, it remembers the hashes of recent blocks and,
//! when the block it indexed last is no longer on the chain, undoes back to the common
//! ancestor and applies the new branch. [`Health`] says whether the index is fresh
//! enough to decide requests: a gatekeeper fails closed (503) when it is not.

use crate::consent::{ChainEvent, ConsentIndex};
use alloy::{
    eips::BlockNumberOrTag,
    primitives::{Address, B256},
    providers::Provider,
    rpc::types::Filter,
};
use std::{
    collections::BTreeMap,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

/// How the follower reads the chain.
#[derive(Debug, Clone)]
pub struct FollowConfig {
    /// The `Relationships` contract.
    pub relationships: Address,
    /// The `Registrar` contract, when the index should also know which research
    /// entities are admitted (a gatekeeper that serves research bounties).
    pub registrar: Option<Address>,
    /// The block it was deployed in (nothing before it matters).
    pub from_block: u64,
    /// Blocks per `eth_getLogs` call.
    pub max_range: u64,
    /// Recent blocks whose hashes are kept to detect reorganisations (0: the chain
    /// never reorganises, e.g. the devchain or a BFT network).
    pub reorg_depth: u64,
}

impl FollowConfig {
    /// Defaults for a contract deployed at `from_block`.
    pub const fn new(relationships: Address, from_block: u64) -> Self {
        Self { relationships, registrar: None, from_block, max_range: 10_000, reorg_depth: 64 }
    }
}

/// Why a step failed (the index is left as it was).
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// The node did not answer.
    #[error("the chain node failed: {0}")]
    Rpc(String),
    /// A reorganisation deeper than the undo depth.
    #[error(transparent)]
    TooDeep(#[from] crate::consent::TooDeep),
}

/// Whether the index can be trusted to decide requests now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    /// The chain's head at the last successful step.
    pub head: u64,
    /// The last block applied to the index.
    pub indexed: u64,
    /// Time since the last successful step.
    pub since_ok: Duration,
}

impl Health {
    /// Ready when the index is at most `max_lag` blocks behind and the node answered
    /// within `max_silence`.
    pub fn is_ready(&self, max_lag: u64, max_silence: Duration) -> bool {
        self.head.saturating_sub(self.indexed) <= max_lag && self.since_ok <= max_silence
    }
}

/// Follows the chain into a shared [`ConsentIndex`].
#[derive(Debug)]
pub struct Follower<P> {
    provider: P,
    config: FollowConfig,
    index: Arc<RwLock<ConsentIndex>>,
    /// Hashes of recently indexed blocks.
    recent: BTreeMap<u64, B256>,
    next: u64,
    head: u64,
    last_ok: Option<Instant>,
}

impl<P: Provider> Follower<P> {
    /// A follower that fills `index` (normally fresh) from `config.from_block`.
    pub fn new(provider: P, config: FollowConfig, index: Arc<RwLock<ConsentIndex>>) -> Self {
        let next = config.from_block;
        Self { provider, config, index, recent: BTreeMap::new(), next, head: 0, last_ok: None }
    }

    /// The shared index.
    pub fn index(&self) -> Arc<RwLock<ConsentIndex>> {
        self.index.clone()
    }

    /// Freshness, for readiness checks.
    pub fn health(&self) -> Health {
        Health {
            head: self.head,
            indexed: self.next.saturating_sub(1),
            since_ok: self.last_ok.map_or(Duration::MAX, |t| t.elapsed()),
        }
    }

    /// Catches up with the head once; returns the last block applied.
    pub async fn step(&mut self) -> Result<u64, FollowError> {
        let rpc = |e: alloy::transports::TransportError| FollowError::Rpc(e.to_string());
        let head = self.provider.get_block_number().await.map_err(rpc)?;
        self.head = head;
        self.check_reorg().await?;
        while self.next <= head {
            let to = head.min(self.next + self.config.max_range - 1);
            let contracts: Vec<Address> =
                std::iter::once(self.config.relationships).chain(self.config.registrar).collect();
            let filter = Filter::new().address(contracts).from_block(self.next).to_block(to);
            let mut logs = self.provider.get_logs(&filter).await.map_err(rpc)?;
            logs.sort_by_key(|l| (l.block_number, l.log_index));
            {
                let mut index =
                    self.index.write().unwrap_or_else(std::sync::PoisonError::into_inner);
                for log in &logs {
                    if !log.removed {
                        let at = ChainEvent {
                            block: log.block_number.unwrap_or(to),
                            tx: log.transaction_hash,
                            time: Some(log.block_timestamp.unwrap_or_else(unix_now)),
                        };
                        index.apply_log_at(at, &log.inner);
                    }
                }
                index.advance_to(to);
            }
            if self.config.reorg_depth > 0 {
                let hash = self.block_hash(to).await?;
                self.recent.insert(to, hash);
                let keep = to.saturating_sub(self.config.reorg_depth);
                self.recent = self.recent.split_off(&keep);
            }
            self.next = to + 1;
        }
        self.last_ok = Some(Instant::now());
        Ok(self.next.saturating_sub(1))
    }

    /// Runs [`Follower::step`] every `poll` until the task is dropped; failures are
    /// logged and leave the index as it was (its health then degrades).
    pub async fn run(mut self, poll: Duration, health: tokio::sync::watch::Sender<Health>) {
        let mut ticker = tokio::time::interval(poll);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if let Err(err) = self.step().await {
                tracing::warn!(target: "medrec::chain", %err, "following the chain failed");
            }
            health.send_replace(self.health());
        }
    }

    async fn block_hash(&self, number: u64) -> Result<B256, FollowError> {
        let block = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Number(number))
            .await
            .map_err(|e| FollowError::Rpc(e.to_string()))?
            .ok_or_else(|| FollowError::Rpc(format!("block {number} is missing")))?;
        Ok(block.header.hash)
    }

    /// When a remembered block is no longer on the chain, undoes back to the newest
    /// remembered block that still is, and resumes after it.
    async fn check_reorg(&mut self) -> Result<(), FollowError> {
        let Some((&last, _)) = self.recent.last_key_value() else { return Ok(()) };
        let mut common = None;
        for (&number, &hash) in self.recent.iter().rev() {
            if number <= self.head && self.block_hash(number).await? == hash {
                common = Some(number);
                break;
            }
        }
        if common == Some(last) {
            return Ok(());
        }
        let back_to = common
            .unwrap_or_else(|| self.recent.keys().next().copied().unwrap_or(0).saturating_sub(1));
        tracing::warn!(target: "medrec::chain", from = last, to = back_to, "chain reorganised; undoing");
        self.index.write().unwrap_or_else(std::sync::PoisonError::into_inner).revert_to(back_to)?;
        // Forget the replaced blocks; keep the common ancestor and what came before.
        drop(self.recent.split_off(&(back_to + 1)));
        self.next = back_to + 1;
        Ok(())
    }
}

/// Unix seconds now (when the node does not say a log's block time).
fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
