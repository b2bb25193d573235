//! The one task that writes to the store.
//!
//! Probe results arrive one by one; SQLite wants few, large transactions and
//! must never block the async runtime. The writer batches (up to
//! [`BATCH_SIZE`] records or [`FLUSH_EVERY`], whichever comes first), writes
//! on a blocking thread, and on failure keeps the batch and retries on the
//! next tick, so an unwritable store costs history, not availability.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{ProbeRecord, Store};
use crate::clock::{UnixMillis, millis, now_ms};

const BATCH_SIZE: usize = 2000;
const FLUSH_EVERY: Duration = Duration::from_millis(500);
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Records kept for retry while the store refuses writes; older ones are dropped.
const MAX_PENDING: usize = 500_000;

enum Command {
    Record(ProbeRecord),
    Flush(oneshot::Sender<()>),
}

/// What the writer reports about the store, for /status and metrics.
#[derive(Debug, Default)]
pub struct StoreHealth {
    last_error: Mutex<Option<(UnixMillis, String)>>,
    pub written: AtomicU64,
    pub dropped: AtomicU64,
    pub pending: AtomicUsize,
}

impl StoreHealth {
    pub fn last_error(&self) -> Option<(UnixMillis, String)> {
        self.last_error.lock().map(|e| e.clone()).unwrap_or(None)
    }

    fn set_error(&self, error: Option<String>) {
        if let Ok(mut slot) = self.last_error.lock() {
            *slot = error.map(|e| (now_ms(), e));
        }
    }
}

#[derive(Clone)]
pub struct StoreWriter {
    commands: mpsc::Sender<Command>,
    pub health: Arc<StoreHealth>,
}

impl StoreWriter {
    pub fn spawn(store: Box<dyn Store>, retention: Duration) -> (Self, JoinHandle<()>) {
        let (commands, receiver) = mpsc::channel(4 * BATCH_SIZE);
        let health = Arc::new(StoreHealth::default());
        let task = tokio::spawn(write_loop(store, receiver, retention, health.clone()));
        (StoreWriter { commands, health }, task)
    }

    pub async fn record(&self, record: ProbeRecord) {
        // The writer only goes away at shutdown, after the last sender.
        let _ = self.commands.send(Command::Record(record)).await;
    }

    /// Returns once everything recorded before the call was written (or
    /// failed to be written and is queued for retry).
    pub async fn flush(&self) {
        let (ack, done) = oneshot::channel();
        if self.commands.send(Command::Flush(ack)).await.is_ok() {
            let _ = done.await;
        }
    }
}

async fn write_loop(
    store: Box<dyn Store>,
    mut commands: mpsc::Receiver<Command>,
    retention: Duration,
    health: Arc<StoreHealth>,
) {
    let store = Arc::new(Mutex::new(store));
    let mut pending: Vec<ProbeRecord> = Vec::new();
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_prune = tokio::time::Instant::now();
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                Some(Command::Record(record)) => {
                    pending.push(record);
                    if pending.len() >= BATCH_SIZE {
                        write(&store, &mut pending, &health).await;
                    }
                }
                Some(Command::Flush(ack)) => {
                    write(&store, &mut pending, &health).await;
                    let _ = ack.send(());
                }
                None => {
                    write(&store, &mut pending, &health).await;
                    return;
                }
            },
            _ = tick.tick() => {
                write(&store, &mut pending, &health).await;
                if tokio::time::Instant::now() >= next_prune {
                    next_prune += PRUNE_EVERY;
                    prune(&store, retention, &health).await;
                }
            }
        }
        health.pending.store(pending.len(), Ordering::Relaxed);
    }
}

async fn write(store: &Arc<Mutex<Box<dyn Store>>>, pending: &mut Vec<ProbeRecord>, health: &StoreHealth) {
    if pending.is_empty() {
        return;
    }
    let batch = std::mem::take(pending);
    let store = store.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let result = match store.lock() {
            Ok(mut store) => store.record_round(&batch).map_err(|e| e.to_string()),
            Err(_) => Err("store lock poisoned by an earlier panic".to_string()),
        };
        (batch, result)
    })
    .await;
    match outcome {
        Ok((batch, Ok(()))) => {
            let total = health.written.fetch_add(batch.len() as u64, Ordering::Relaxed) + batch.len() as u64;
            // The durable-so-far count: what a crash test holds the store to.
            tracing::debug!(records = batch.len(), total, "batch stored");
            if health.last_error().is_some() {
                tracing::info!(records = batch.len(), "store writable again");
            }
            health.set_error(None);
        }
        Ok((mut batch, Err(error))) => {
            tracing::error!(%error, records = batch.len(), "store write failed; keeping the records to retry");
            health.set_error(Some(error));
            batch.append(pending);
            if batch.len() > MAX_PENDING {
                let excess = batch.len() - MAX_PENDING;
                batch.drain(..excess);
                health.dropped.fetch_add(excess as u64, Ordering::Relaxed);
            }
            *pending = batch;
        }
        Err(join_error) => {
            tracing::error!(%join_error, "store writer thread failed");
            health.set_error(Some(join_error.to_string()));
        }
    }
}

async fn prune(store: &Arc<Mutex<Box<dyn Store>>>, retention: Duration, health: &StoreHealth) {
    let store = store.clone();
    let before = now_ms() - millis(retention);
    let result = tokio::task::spawn_blocking(move || match store.lock() {
        Ok(mut store) => store.prune(before).map_err(|e| e.to_string()),
        Err(_) => Err("store lock poisoned by an earlier panic".to_string()),
    })
    .await;
    match result {
        Ok(Ok(removed)) => tracing::debug!(removed, "pruned records past retention"),
        Ok(Err(error)) => {
            tracing::warn!(%error, "pruning the store failed");
            health.set_error(Some(error));
        }
        Err(e) => tracing::warn!(error = %e, "pruning the store failed"),
    }
}
