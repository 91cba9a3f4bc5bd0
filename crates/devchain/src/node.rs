//! A running devchain: the [`Chain`] behind a lock, its sealing mode and clock.
//!
//! [`Node`] is cheap to clone and shared by the JSON-RPC server, the in-process alloy
//! transport and the sealing task.

use crate::chain::{Chain, ChainError, Selection, TxError, WorkTemplate};
use alloy::primitives::{Address, B256};
use std::collections::HashMap;
use std::{
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};
use tokio::sync::watch;

/// When blocks are sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealMode {
    /// A block as soon as a transaction can execute (one per `eth_sendRawTransaction`).
    Instant,
    /// A block every interval, with whatever is pending (possibly empty).
    Interval(Duration),
    /// Only when a miner submits a valid Proof-of-Work solution.
    Pow,
}

#[derive(Debug)]
struct Inner {
    chain: Mutex<Chain>,
    seal: SealMode,
    time_offset: AtomicU64,
    /// Instant sealing paused: transactions wait for a miner (see [`Node::hold`]).
    held: std::sync::atomic::AtomicBool,
    head: watch::Sender<u64>,
    works: Mutex<HashMap<B256, WorkTemplate>>,
}

/// Most work packages kept at once (older ones are forgotten).
const MAX_WORKS: usize = 256;

/// A shared handle to a running chain.
#[derive(Debug, Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

impl Node {
    /// Wraps `chain`, sealed according to `seal`. For [`SealMode::Interval`], also call
    /// [`Node::run_interval_sealer`] on a runtime.
    pub fn new(chain: Chain, seal: SealMode) -> Self {
        let head = watch::Sender::new(chain.latest().header.number);
        Self {
            inner: Arc::new(Inner {
                chain: Mutex::new(chain),
                seal,
                time_offset: AtomicU64::new(0),
                held: std::sync::atomic::AtomicBool::new(false),
                head,
                works: Mutex::new(HashMap::new()),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Chain> {
        // A panic while holding the lock cannot leave the chain half-written: every
        // mutation completes or returns before touching shared state.
        self.inner.chain.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `f` on the chain.
    pub fn with<R>(&self, f: impl FnOnce(&Chain) -> R) -> R {
        f(&self.lock())
    }

    /// Runs `f` on the chain, mutably.
    pub fn with_mut<R>(&self, f: impl FnOnce(&mut Chain) -> R) -> R {
        f(&mut self.lock())
    }

    /// The sealing mode.
    pub fn seal_mode(&self) -> SealMode {
        self.inner.seal
    }

    /// Whether the node seals blocks by itself.
    pub fn is_mining(&self) -> bool {
        self.inner.seal != SealMode::Pow
    }

    /// The chain's clock: wall time plus any `evm_increaseTime` offset.
    pub fn now(&self) -> u64 {
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        wall + self.inner.time_offset.load(Ordering::Relaxed)
    }

    /// Moves the clock forward; returns the total offset in seconds.
    pub fn increase_time(&self, seconds: u64) -> u64 {
        self.inner.time_offset.fetch_add(seconds, Ordering::Relaxed) + seconds
    }

    /// Receives the number of every new head block.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.head.subscribe()
    }

    /// Queues a signed transaction; in instant mode also seals it into a block before
    /// returning.
    pub fn submit_raw(&self, raw: &[u8]) -> Result<B256, TxError> {
        let now = self.now();
        let (hash, sealed) = {
            let mut chain = self.lock();
            let hash = chain.submit(raw)?;
            let sealed = if self.inner.seal == SealMode::Instant
                && !self.inner.held.load(Ordering::Acquire)
            {
                chain.seal(Address::ZERO, now, &Selection::All).ok()
            } else {
                None
            };
            (hash, sealed)
        };
        if let Some(number) = sealed {
            self.inner.head.send_replace(number);
        }
        Ok(hash)
    }

    /// Work for a Proof-of-Work miner whose coinbase is `coinbase`, with the selected
    /// pending transactions.
    pub fn get_work(&self, coinbase: Address, selection: &Selection) -> WorkTemplate {
        let now = self.now();
        let work = self.with(|c| c.prepare_work(coinbase, now, selection));
        let mut works = self.inner.works.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if works.len() >= MAX_WORKS {
            works.clear();
        }
        works.insert(work.seal_hash, work.clone());
        work
    }

    /// Seals the block of the work `seal_hash` with `nonce`; the first valid solution
    /// wins, later ones are stale.
    pub fn submit_work(&self, seal_hash: B256, nonce: u64) -> Result<u64, WorkError> {
        let work = {
            let works = self.inner.works.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            works.get(&seal_hash).cloned().ok_or(WorkError::Unknown)?
        };
        let number = self.with_mut(|c| c.seal_work(&work, nonce))?;
        self.inner.head.send_replace(number);
        Ok(number)
    }

    /// Pauses (`true`) or resumes (`false`) instant sealing: while held, transactions
    /// wait in the pool until a Proof-of-Work miner seals them with its own coinbase
    /// (so that a researcher can mine a chosen bounty on an otherwise instant chain, as
    /// the demo does). Resuming seals whatever is still pending. No effect in the
    /// other modes.
    ///
    /// # Errors
    /// When sealing the pending transactions on resume fails.
    pub fn hold(&self, on: bool) -> Result<(), ChainError> {
        self.inner.held.store(on, Ordering::Release);
        if !on && self.inner.seal == SealMode::Instant && self.with(Chain::pending_count) > 0 {
            self.mine_now()?;
        }
        Ok(())
    }

    /// Seals a block now with everything pending (`evm_mine`).
    pub fn mine_now(&self) -> Result<u64, ChainError> {
        if self.inner.seal == SealMode::Pow {
            return Err(ChainError::Halted(
                "this chain seals by Proof of Work only: run a miner (medrec research mine)".into(),
            ));
        }
        let now = self.now();
        let number = self.with_mut(|c| c.seal(Address::ZERO, now, &Selection::All))?;
        self.inner.head.send_replace(number);
        Ok(number)
    }

    /// Seals a block every `interval` until the node is dropped by every other holder.
    pub async fn run_interval_sealer(self, interval: Duration) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            if Arc::strong_count(&self.inner) == 1 {
                return;
            }
            if let Err(err) = self.mine_now() {
                tracing::error!(target: "medrec::devchain", %err, "sealing failed");
            }
        }
    }
}

/// Why a Proof-of-Work solution was refused.
#[derive(Debug, thiserror::Error)]
pub enum WorkError {
    /// The seal hash was never handed out (or was forgotten).
    #[error("unknown work: ask for work with medrec_getWork first")]
    Unknown,
    /// Stale, invalid, or the chain failed.
    #[error(transparent)]
    Chain(#[from] ChainError),
}
