//! The batching writer: the HTTP hot path enqueues, one task appends.

use super::{AccessLog, NewEntry};
use std::{fmt, sync::Arc, time::Duration};
use tokio::{
    sync::{mpsc, oneshot},
    task::JoinHandle,
};

/// How an [`AuditWriter`] queues and retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterConfig {
    /// How many entries may wait in the queue. Beyond it, [`AuditWriter::log`] fails.
    pub capacity: usize,
    /// At most this many entries go into one transaction.
    pub max_batch: usize,
    /// How long to wait before trying a failed batch again.
    pub retry_delay: Duration,
    /// How long the task lets a small batch gather more entries before it appends it
    /// (never when a flush waits). Every append is a transaction whose commit costs
    /// about the same whatever its size, so under load a few milliseconds of lingering
    /// turns hundreds of small commits a second into a few large ones; the requests
    /// themselves never wait for it.
    pub linger: Duration,
}

impl Default for WriterConfig {
    /// 50 000 entries queued, batches of up to 5 000 lingering 5 ms, a retry every 500 ms.
    ///
    /// Measured (BENCHMARKS.md, issue 11): with batches of 500 the writer fell behind
    /// 20 000 reads per second on SQLite and the queue of 10 000 filled, so reads were
    /// refused (503) rather than served unlogged; larger batches pay the commit less
    /// often, and the queue absorbs a few seconds of a burst (about 10 MB). Lingering
    /// 5 ms caps the commits at about 200 a second (BENCHMARKS.md: the commits were a
    /// third of the server's CPU under read load without it).
    fn default() -> Self {
        Self {
            capacity: 50_000,
            max_batch: 5_000,
            retry_delay: Duration::from_millis(500),
            linger: Duration::from_millis(5),
        }
    }
}

/// Why an entry could not be queued. The gatekeeper should then refuse the request
/// (503) rather than serve it unlogged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnqueueError {
    /// The queue is full: the database is down or slower than the requests.
    #[error("the access log queue is full ({capacity} entries wait to be written)")]
    QueueFull {
        /// The queue's capacity.
        capacity: usize,
    },
    /// The writer has stopped.
    #[error("the access log writer has stopped")]
    Closed,
}

enum Message {
    Entry(NewEntry),
    Flush(oneshot::Sender<()>),
}

/// Appends queued entries to an [`AccessLog`] in batches, from a tokio task of its own.
///
/// [`log`](Self::log) only enqueues (it never waits), so a request handler pays for a
/// channel send, not a transaction. The task takes whatever has queued, up to
/// [`WriterConfig::max_batch`] entries, and appends it with one
/// [`AccessLog::append_batch`], in the order the entries were queued. When the append
/// fails (the database is down), the task keeps the batch and tries it again every
/// [`WriterConfig::retry_delay`] until it succeeds, so nothing queued is lost while the
/// process lives; meanwhile new entries wait in the queue, and once
/// [`WriterConfig::capacity`] of them wait, [`log`](Self::log) fails with
/// [`EnqueueError::QueueFull`] so that the caller can refuse the request. (At most
/// `capacity + max_batch` entries are held in memory.) A batch whose commit succeeded
/// but whose acknowledgement was lost would be appended again on retry: a duplicate
/// entry, never a lost one.
///
/// Dropping the writer (or [`shutdown`](Self::shutdown)) lets the task write what is
/// queued and end.
pub struct AuditWriter {
    sender: mpsc::Sender<Message>,
    capacity: usize,
    task: JoinHandle<()>,
}

impl fmt::Debug for AuditWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditWriter")
            .field("capacity", &self.capacity)
            .field("queued", &(self.capacity - self.sender.capacity()))
            .finish_non_exhaustive()
    }
}

impl AuditWriter {
    /// Starts the writing task on the current tokio runtime.
    pub fn spawn(log: Arc<dyn AccessLog>, config: WriterConfig) -> Self {
        let capacity = config.capacity.max(1);
        let (sender, receiver) = mpsc::channel(capacity);
        let task = tokio::spawn(run(log, receiver, config));
        Self { sender, capacity, task }
    }

    /// Queues `entry` to be appended, without waiting.
    pub fn log(&self, entry: NewEntry) -> Result<(), EnqueueError> {
        self.sender.try_send(Message::Entry(entry)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                EnqueueError::QueueFull { capacity: self.capacity }
            }
            mpsc::error::TrySendError::Closed(_) => EnqueueError::Closed,
        })
    }

    /// Waits until every entry queued before this call is appended (however long the
    /// database takes to come back; bound it with a timeout where that matters).
    pub async fn flush(&self) -> Result<(), EnqueueError> {
        let (done, wait) = oneshot::channel();
        self.sender.send(Message::Flush(done)).await.map_err(|_| EnqueueError::Closed)?;
        wait.await.map_err(|_| EnqueueError::Closed)
    }

    /// Writes everything queued, then stops the task.
    pub async fn shutdown(self) {
        let Self { sender, task, .. } = self;
        drop(sender);
        let _ = task.await;
    }
}

async fn run(log: Arc<dyn AccessLog>, mut receiver: mpsc::Receiver<Message>, config: WriterConfig) {
    let max_batch = config.max_batch.max(1);
    let mut messages = Vec::with_capacity(max_batch);
    let mut batch = Vec::with_capacity(max_batch);
    while receiver.recv_many(&mut messages, max_batch).await > 0 {
        linger(&mut receiver, &mut messages, max_batch, config.linger).await;
        for message in messages.drain(..) {
            match message {
                Message::Entry(entry) => batch.push(entry),
                Message::Flush(done) => {
                    write(&*log, &mut batch, config.retry_delay).await;
                    let _ = done.send(());
                }
            }
        }
        write(&*log, &mut batch, config.retry_delay).await;
    }
}

/// Lets `messages` gather more for up to `linger`, until the batch is full or a flush
/// arrives (a flush never waits out the linger).
async fn linger(
    receiver: &mut mpsc::Receiver<Message>,
    messages: &mut Vec<Message>,
    max_batch: usize,
    linger: Duration,
) {
    let flushing = |m: &[Message]| m.iter().any(|m| matches!(m, Message::Flush(_)));
    if linger.is_zero() || flushing(messages) {
        return;
    }
    let deadline = tokio::time::Instant::now() + linger;
    while messages.len() < max_batch {
        let seen = messages.len();
        let more = receiver.recv_many(messages, max_batch - seen);
        match tokio::time::timeout_at(deadline, more).await {
            Ok(n) if n > 0 && !flushing(&messages[seen..]) => {}
            _ => return,
        }
    }
}

/// Appends `batch` (emptying it), trying again until the log takes it.
async fn write(log: &dyn AccessLog, batch: &mut Vec<NewEntry>, retry_delay: Duration) {
    if batch.is_empty() {
        return;
    }
    let mut failures = 0u64;
    loop {
        match log.append_batch(batch.clone()).await {
            Ok(_) => {
                batch.clear();
                return;
            }
            Err(e) => {
                failures += 1;
                // Only the error and a count: entries are not logged.
                tracing::warn!(
                    error = %e, entries = batch.len(), failures,
                    "cannot append to the access log; retrying"
                );
                tokio::time::sleep(retry_delay).await;
            }
        }
    }
}
