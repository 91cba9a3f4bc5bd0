//! Anchoring the access log on chain.
//!
//! Every request the gatekeeper decides goes into its hash-chained access log
//! ([`medrec_store::audit`]). Once per period the [`Anchorer`] reads the log's head and,
//! if the log grew since the last anchor, sends **one** `AccessAnchors.anchor(root,
//! size)` transaction from the provider's account, however many requests the period
//! saw: the `bytes32` (the contract's `head` parameter) is the Merkle root of the log's
//! first `size` entries, against which a patient's proof is an inclusion path of
//! O(log size) hashes. When the transaction is mined it records the anchor (size, root,
//! block, transaction) in the log, so that proofs handed to patients can name it.
//!
//! A failure (node down, transaction refused or reverted, store unavailable) is logged
//! and tried again next period: the anchorer never panics and never stops on its own.
//! A transaction that was mined but not yet recorded (the store failed in between) is
//! recorded first next time, before anything new is sent. Logs carry sizes, block
//! numbers and hashes only, never an entry's contents.

use alloy::{
    primitives::{Address, B256},
    providers::Provider,
};
use medrec_contracts::{AccessAnchors, ContractError};
use medrec_store::{
    StoreError,
    audit::{AccessLog, Anchor, LogHead},
};
use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};
use tokio::{
    sync::{Mutex, oneshot},
    task::JoinHandle,
    time::MissedTickBehavior,
};

const TARGET: &str = "medrec::anchor";

/// Where and how often to anchor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnchorConfig {
    /// The `AccessAnchors` contract.
    pub anchors: Address,
    /// The provider's account: the registered provider that signs the anchors (the
    /// chain provider's wallet must hold its key).
    pub account: Address,
    /// Time between two anchors (at most one transaction per period).
    pub period: Duration,
    /// How long to wait for an anchor transaction to be mined before giving up on this
    /// period (the next period checks the chain again).
    pub receipt_timeout: Duration,
}

impl AnchorConfig {
    /// Anchors every `period` from `account` into the contract at `anchors`, waiting
    /// for each receipt at most one period.
    pub const fn new(anchors: Address, account: Address, period: Duration) -> Self {
        Self { anchors, account, period, receipt_timeout: period }
    }
}

/// What one anchoring round did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnchorOutcome {
    /// The log did not grow since the last anchor: no transaction was sent.
    Unchanged {
        /// The log's size, already anchored.
        size: u64,
    },
    /// One transaction anchored the root, and the anchor is recorded in the log.
    Anchored(Anchor),
}

/// Why an anchoring round failed (the next round tries again).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnchorError {
    /// The access log could not be read or the anchor could not be recorded in it.
    #[error("the access log could not be read or updated: {0}")]
    Store(#[from] StoreError),
    /// The chain node did not answer or the transaction could not be sent or followed.
    #[error("the chain node failed while anchoring the access log: {0}")]
    Chain(String),
    /// The `AccessAnchors` contract refused the anchor.
    #[error("the AccessAnchors contract refused the anchor: {0}")]
    Refused(ContractError),
    /// The transaction was mined but reverted.
    #[error("the anchor transaction {tx} was mined but reverted")]
    Reverted {
        /// The transaction.
        tx: B256,
    },
    /// The transaction was sent but no receipt came in time.
    #[error(
        "the anchor transaction {tx} was not mined within {timeout:?}; the next period checks again"
    )]
    NotMined {
        /// The transaction.
        tx: B256,
        /// How long the anchorer waited.
        timeout: Duration,
    },
}

#[derive(Debug, Default)]
struct State {
    /// The largest size known to be anchored on chain (recorded or not); `None` until
    /// the first round has looked at the log and the chain.
    anchored: Option<u64>,
    /// An anchor mined on chain and not yet recorded in the log.
    unrecorded: Option<Anchor>,
}

/// Anchors an [`AccessLog`]'s Merkle root on chain, at most once per period.
#[derive(Debug)]
pub struct Anchorer<P> {
    chain: P,
    log: Arc<dyn AccessLog>,
    config: AnchorConfig,
    state: Mutex<State>,
    rounds: AtomicU64,
}

impl<P: Provider> Anchorer<P> {
    /// An anchorer of `log` that sends through `chain` (an alloy provider whose wallet
    /// signs for `config.account`).
    pub fn new(chain: P, log: Arc<dyn AccessLog>, config: AnchorConfig) -> Self {
        Self { chain, log, config, state: Mutex::new(State::default()), rounds: AtomicU64::new(0) }
    }

    /// The configuration.
    pub const fn config(&self) -> &AnchorConfig {
        &self.config
    }

    /// How many rounds (periodic or [`Anchorer::anchor_now`]) have finished, whether
    /// they anchored, found nothing new or failed.
    pub fn rounds(&self) -> u64 {
        self.rounds.load(Ordering::Acquire)
    }

    /// One round now: records an anchor left unrecorded by an earlier round, then, if
    /// the log grew since the last anchor, sends one anchor transaction, waits for it
    /// and records it. Rounds never overlap: a call waits for a round in progress.
    pub async fn anchor_now(&self) -> Result<AnchorOutcome, AnchorError> {
        let result = self.round().await;
        self.rounds.fetch_add(1, Ordering::AcqRel);
        result
    }

    async fn round(&self) -> Result<AnchorOutcome, AnchorError> {
        let mut state = self.state.lock().await;
        if let Some(anchor) = state.unrecorded {
            self.log.record_anchor(anchor).await?;
            state.unrecorded = None;
            tracing::info!(target: TARGET, size = anchor.size, block = anchor.block, tx = %anchor.tx, "recorded an earlier anchor");
        }
        let anchored = match state.anchored {
            Some(size) => size,
            None => {
                let size = self.known_anchored_size().await?;
                state.anchored = Some(size);
                size
            }
        };
        let LogHead { size, root, .. } = self.log.head().await?;
        if size <= anchored {
            return Ok(AnchorOutcome::Unchanged { size });
        }
        let anchor = self.send(root, size).await.inspect_err(|e| {
            if let AnchorError::Refused(ContractError::SizeNotGrown { anchored_size, .. }) = e {
                // An earlier transaction that was not seen mined in time got there first:
                // wait for the log to grow past it.
                state.anchored = Some(anchored.max(*anchored_size));
            }
        })?;
        state.anchored = Some(size);
        state.unrecorded = Some(anchor);
        self.log.record_anchor(anchor).await?;
        state.unrecorded = None;
        tracing::info!(target: TARGET, size, block = anchor.block, tx = %anchor.tx, "anchored the access log");
        Ok(AnchorOutcome::Anchored(anchor))
    }

    /// The larger of the last anchor recorded in the log and the provider's latest
    /// anchor on chain (which may be unrecorded if the store failed after it was mined).
    async fn known_anchored_size(&self) -> Result<u64, AnchorError> {
        let recorded = self.log.anchors().await?.last().map_or(0, |a| a.size);
        let on_chain = AccessAnchors::new(self.config.anchors, &self.chain)
            .latest(self.config.account)
            .call()
            .await
            .map_err(|e| contract_error(&e))?
            .size;
        if on_chain > recorded {
            tracing::warn!(
                target: TARGET,
                recorded,
                on_chain,
                "the chain holds a later anchor than the access log records; anchoring from there"
            );
        }
        Ok(recorded.max(on_chain))
    }

    async fn send(&self, root: B256, size: u64) -> Result<Anchor, AnchorError> {
        // The provider's account also sends relationships and pointer updates (from
        // other processes): take the node's next nonce each time rather than a count
        // kept here, which another sender would make stale.
        let nonce = self
            .chain
            .get_transaction_count(self.config.account)
            .pending()
            .await
            .map_err(|e| AnchorError::Chain(e.to_string()))?;
        let pending = AccessAnchors::new(self.config.anchors, &self.chain)
            .anchor(root, size)
            .from(self.config.account)
            .nonce(nonce)
            .send()
            .await
            .map_err(|e| contract_error(&e))?;
        let tx = *pending.tx_hash();
        let timeout = self.config.receipt_timeout;
        let receipt =
            pending.with_timeout(Some(timeout)).get_receipt().await.map_err(|e| match e {
                alloy::providers::PendingTransactionError::TxWatcher(_) => {
                    AnchorError::NotMined { tx, timeout }
                }
                other => AnchorError::Chain(other.to_string()),
            })?;
        if !receipt.status() {
            return Err(AnchorError::Reverted { tx });
        }
        let block = receipt
            .block_number
            .ok_or_else(|| AnchorError::Chain(format!("the receipt of {tx} names no block")))?;
        Ok(Anchor { size, root, block, tx })
    }

    /// Runs a round every period until the handle is shut down; the first round comes
    /// one period after the start.
    pub fn spawn(self: Arc<Self>) -> AnchorerHandle
    where
        P: 'static,
    {
        let (stop, mut stopped) = oneshot::channel::<()>();
        let period = self.config.period;
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = ticks.tick() => {
                        if let Err(e) = self.anchor_now().await {
                            tracing::warn!(target: TARGET, error = %e, "anchoring the access log failed; trying again next period");
                        }
                    }
                }
            }
        });
        AnchorerHandle { stop, task }
    }
}

/// A running [`Anchorer`] (see [`Anchorer::spawn`]).
#[derive(Debug)]
pub struct AnchorerHandle {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl AnchorerHandle {
    /// Stops the periodic rounds, letting a round in progress finish.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        if let Err(e) = self.task.await {
            tracing::error!(target: TARGET, error = %e, "the anchoring task ended abnormally");
        }
    }
}

fn contract_error(e: &alloy::contract::Error) -> AnchorError {
    match e.as_revert_data() {
        Some(data) => AnchorError::Refused(ContractError::decode(&data)),
        None => AnchorError::Chain(e.to_string()),
    }
}
