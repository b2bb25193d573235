//! The one task that writes to the store.
//!
//! Probe results arrive one by one; SQLite wants few, large transactions and
//! must never block the async runtime. The writer batches (up to
//! [`BATCH_SIZE`] records or [`FLUSH_EVERY`], whichever comes first) and
//! writes on a blocking thread while it goes on taking records, so the
//! engine never waits on the disk.
//!
//! When a write fails (a lock another process holds, a full disk) the batch
//! goes back to the head of the backlog and the next attempt waits, doubling
//! from [`FIRST_RETRY`] up to [`LAST_RETRY`]: an unwritable store costs one
//! `busy_timeout` per attempt, not one per new record. The backlog is
//! bounded ([`MAX_PENDING`], oldest dropped and counted) and shown in
//! `/status` and `/metrics`.

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{Beat, Claim, ClaimLimits, Cluster, Kept, ProbeRecord, Store, StoreError, WorkPair};
use crate::clock::{UnixMillis, millis, now_ms};

const BATCH_SIZE: usize = 2000;
const FLUSH_EVERY: Duration = Duration::from_millis(500);
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Records kept while the store refuses writes; older ones are dropped.
const MAX_PENDING: usize = 500_000;
const FIRST_RETRY: Duration = Duration::from_secs(1);
const LAST_RETRY: Duration = Duration::from_secs(30);

/// How long records are kept; changed on reload.
#[derive(Clone, Copy, Debug)]
pub struct Retention {
    /// Hourly rollups (and the store's other history) are kept this long.
    pub rollups: Duration,
    /// Raw probe rows are kept this long.
    pub raw: Duration,
    pub busy_timeout: Duration,
}

/// Work run on the store between writes; it answers its caller itself.
type StoreJob = Box<dyn FnOnce(&mut dyn Store) + Send>;

enum Command {
    Record(ProbeRecord),
    Discovered(String, Vec<crate::store::DiscoveredArticle>),
    Keep(&'static str, Vec<Kept>, oneshot::Sender<bool>),
    LoadKept(oneshot::Sender<Result<Vec<Kept>, String>>),
    Heartbeat(Beat, oneshot::Sender<Result<Cluster, String>>),
    Leave(String, oneshot::Sender<()>),
    LatestSince(UnixMillis, oneshot::Sender<Result<Vec<ProbeRecord>, String>>),
    Flush(oneshot::Sender<()>),
    Configure(Retention),
    /// Anything else asked of the store, answered through the closure.
    Ask(StoreJob),
}

/// What the writer reports about the store, for /status and metrics.
#[derive(Debug, Default)]
pub struct StoreHealth {
    /// [`Store::backend`] of the store being written.
    pub backend: &'static str,
    /// [`Store::shares_work`]: instances claim pairs from the store's queue.
    pub shares_work: bool,
    /// `[store] instance`: which of several daemons sharing a store this is.
    pub instance: String,
    last_error: Mutex<Option<(UnixMillis, String)>>,
    pub written: AtomicU64,
    pub dropped: AtomicU64,
    pub pending: AtomicUsize,
    /// Failed write attempts since start.
    pub failed_writes: AtomicU64,
    /// When the next attempt is due while writes fail (0: none waiting).
    pub retry_at: AtomicI64,
    /// When a write last succeeded (0: never since start).
    pub last_write_at: AtomicI64,
    /// This instance holds the leader's lease: it alone sends alerts,
    /// prunes and writes the kept state. Always, on SQLite.
    pub leader: std::sync::atomic::AtomicBool,
    /// The instances sharing the store, as the last heartbeat found them.
    pub cluster: Mutex<Cluster>,
    /// Times this instance took the lease from one that let it expire.
    pub leases_expired: AtomicU64,
    /// Writes fail now: what "logged once per change" follows (the error
    /// shown may come from elsewhere, a failed prune for one).
    writes_failing: std::sync::atomic::AtomicBool,
}

impl StoreHealth {
    pub fn last_error(&self) -> Option<(UnixMillis, String)> {
        self.last_error.lock().map(|e| e.clone()).unwrap_or(None)
    }

    /// The store could not be reached at start: that was logged, and the
    /// writes failing until it is back are the same state.
    pub fn started_away(&self, error: String) {
        self.writes_failing.store(true, Ordering::Relaxed);
        self.set_error(Some(error));
    }

    pub fn set_error(&self, error: Option<String>) {
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
    pub fn spawn(store: Box<dyn Store>, retention: Retention, instance: String) -> (Self, JoinHandle<()>) {
        let (commands, receiver) = mpsc::channel(4 * BATCH_SIZE);
        let health = Arc::new(StoreHealth {
            backend: store.backend(),
            shares_work: store.shares_work(),
            instance,
            ..StoreHealth::default()
        });
        let writer = Writer {
            store: Arc::new(Mutex::new(store)),
            pending: Vec::new(),
            health: health.clone(),
            retention,
            busy_timeout_changed: false,
            retry_at: None,
            backoff: FIRST_RETRY,
        };
        let task = tokio::spawn(writer.run(receiver));
        (StoreWriter { commands, health }, task)
    }

    pub async fn record(&self, record: ProbeRecord) {
        // The writer only goes away at shutdown, after the last sender.
        let _ = self.commands.send(Command::Record(record)).await;
    }

    /// Returns once everything recorded before the call was written (or
    /// failed to be written and is kept for a retry).
    pub async fn flush(&self) {
        let (ack, done) = oneshot::channel();
        if self.commands.send(Command::Flush(ack)).await.is_ok() {
            let _ = done.await;
        }
    }

    /// Keeps what discovery found for `site` (written apart from probes:
    /// it changes once per discovery run at most).
    pub async fn discovered(&self, site: String, found: Vec<crate::store::DiscoveredArticle>) {
        let _ = self.commands.send(Command::Discovered(site, found)).await;
    }

    /// Replaces the kept entries of `kind`; true once written (a failure
    /// is logged, and the caller tries again with its next state).
    pub async fn keep(&self, kind: &'static str, entries: Vec<Kept>) -> bool {
        let (ack, done) = oneshot::channel();
        self.commands.send(Command::Keep(kind, entries, ack)).await.is_ok() && done.await.unwrap_or(false)
    }

    /// Every kept entry, as the store holds it now (a new leader's alert
    /// book comes from the old one's).
    pub async fn load_kept(&self) -> Result<Vec<Kept>, String> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::LoadKept(reply))
            .await
            .map_err(|_| "the writer has stopped".to_string())?;
        answer.await.map_err(|_| "the writer has stopped".to_string())?
    }

    pub async fn heartbeat(&self, beat: Beat) -> Result<Cluster, String> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Heartbeat(beat, reply))
            .await
            .map_err(|_| "the writer has stopped".to_string())?;
        answer.await.map_err(|_| "the writer has stopped".to_string())?
    }

    /// Results any instance wrote for checks after `since`.
    pub async fn latest_since(&self, since: UnixMillis) -> Result<Vec<ProbeRecord>, String> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::LatestSince(since, reply))
            .await
            .map_err(|_| "the writer has stopped".to_string())?;
        answer.await.map_err(|_| "the writer has stopped".to_string())?
    }

    pub async fn leave(&self, instance: String) {
        let (reply, answer) = oneshot::channel();
        if self.commands.send(Command::Leave(instance, reply)).await.is_ok() {
            let _ = answer.await;
        }
    }

    /// Runs `work` on the store between writes and returns its answer.
    async fn ask<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut dyn Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, String> {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(move |store: &mut dyn Store| {
            let _ = reply.send(work(store).map_err(|e| e.to_string()));
        });
        self.commands
            .send(Command::Ask(job))
            .await
            .map_err(|_| "the writer has stopped".to_string())?;
        answer.await.map_err(|_| "the writer has stopped".to_string())?
    }

    /// What discovery found, per site, as the store holds it now.
    pub async fn load_discovered(
        &self,
    ) -> Result<std::collections::HashMap<String, Vec<crate::store::DiscoveredArticle>>, String> {
        self.ask(|store| store.load_discovered()).await
    }

    pub async fn sync_work(&self, pairs: Vec<WorkPair>, interval_ms: i64) -> Result<(), String> {
        self.ask(move |store| store.sync_work(&pairs, interval_ms)).await
    }

    pub async fn claim_work(&self, limits: ClaimLimits) -> Result<Vec<Claim>, String> {
        let instance = self.health.instance.clone();
        self.ask(move |store| store.claim_work(&instance, limits)).await
    }

    pub async fn release_work(&self, tokens: Vec<i64>, due_now: bool) -> Result<(), String> {
        self.ask(move |store| store.release_work(&tokens, due_now)).await
    }

    pub async fn work_due_now(&self, site: Arc<str>, base: Arc<str>) -> Result<(), String> {
        self.ask(move |store| store.work_due_now(&site, &base)).await
    }

    /// New retention and busy timeout, from a reload.
    pub async fn configure(&self, rollups: Duration, raw: Duration, busy_timeout: Duration) {
        let retention = Retention {
            rollups,
            raw,
            busy_timeout,
        };
        let _ = self.commands.send(Command::Configure(retention)).await;
    }
}

type Shared = Arc<Mutex<Box<dyn Store>>>;
type WriteJob = JoinHandle<(Vec<ProbeRecord>, Result<(), String>)>;

struct Writer {
    store: Shared,
    pending: Vec<ProbeRecord>,
    health: Arc<StoreHealth>,
    retention: Retention,
    busy_timeout_changed: bool,
    /// Set while writes fail: no attempt before it.
    retry_at: Option<Instant>,
    backoff: Duration,
}

impl Writer {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut in_flight: Option<WriteJob> = None;
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut next_prune = Instant::now();
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Record(record)) => {
                        self.pending.push(record);
                        self.bound_backlog();
                        if self.pending.len() >= BATCH_SIZE && in_flight.is_none() && self.may_write() {
                            in_flight = Some(self.start_write());
                        }
                    }
                    Some(Command::Discovered(site, found)) => {
                        let store = self.store.clone();
                        let saved = tokio::task::spawn_blocking(move || {
                            store.lock().map_err(|_| "the store lock is poisoned".to_string())?
                                .save_discovered(&site, &found)
                                .map_err(|e| e.to_string())
                        })
                        .await;
                        if let Ok(Err(error)) = saved {
                            tracing::warn!(%error, "discovered articles not stored; they are found again after a restart");
                        }
                    }
                    Some(Command::Keep(kind, entries, ack)) => {
                        let store = self.store.clone();
                        let saved = tokio::task::spawn_blocking(move || {
                            store.lock().map_err(|_| "the store lock is poisoned".to_string())?
                                .save_kept(kind, &entries)
                                .map_err(|e| e.to_string())
                        })
                        .await;
                        let stored = match saved {
                            Ok(Ok(())) => true,
                            Ok(Err(error)) => {
                                tracing::warn!(%error, kind, "kept state not stored; tried again at the next save");
                                false
                            }
                            Err(_) => false,
                        };
                        let _ = ack.send(stored);
                    }
                    Some(Command::LoadKept(reply)) => {
                        let store = self.store.clone();
                        let loaded = tokio::task::spawn_blocking(move || {
                            store.lock().map_err(|_| "the store lock is poisoned".to_string())?
                                .load_kept()
                                .map_err(|e| e.to_string())
                        })
                        .await
                        .unwrap_or_else(|e| Err(e.to_string()));
                        let _ = reply.send(loaded);
                    }
                    Some(Command::Heartbeat(beat, reply)) => {
                        let store = self.store.clone();
                        let cluster = tokio::task::spawn_blocking(move || {
                            store.lock().map_err(|_| "the store lock is poisoned".to_string())?
                                .heartbeat(&beat)
                                .map_err(|e| e.to_string())
                        })
                        .await
                        .unwrap_or_else(|e| Err(e.to_string()));
                        let _ = reply.send(cluster);
                    }
                    Some(Command::LatestSince(since, reply)) => {
                        let store = self.store.clone();
                        let found = tokio::task::spawn_blocking(move || {
                            store.lock().map_err(|_| "the store lock is poisoned".to_string())?
                                .latest_since(since)
                                .map_err(|e| e.to_string())
                        })
                        .await
                        .unwrap_or_else(|e| Err(e.to_string()));
                        let _ = reply.send(found);
                    }
                    Some(Command::Leave(instance, reply)) => {
                        let store = self.store.clone();
                        let _ = tokio::task::spawn_blocking(move || {
                            if let Ok(mut store) = store.lock()
                                && let Err(error) = store.leave(&instance)
                            {
                                tracing::warn!(%error, "could not give up the leader's lease; it runs out by itself");
                            }
                        })
                        .await;
                        let _ = reply.send(());
                    }
                    Some(Command::Ask(job)) => {
                        let store = self.store.clone();
                        // A poisoned lock drops the job: its caller hears the writer stopped.
                        let _ = tokio::task::spawn_blocking(move || {
                            if let Ok(mut store) = store.lock() {
                                job(&mut **store);
                            }
                        })
                        .await;
                    }
                    Some(Command::Flush(ack)) => {
                        self.write_everything(&mut in_flight).await;
                        let _ = ack.send(());
                    }
                    Some(Command::Configure(retention)) => {
                        self.busy_timeout_changed |= retention.busy_timeout != self.retention.busy_timeout;
                        self.retention = retention;
                        // A new retention is applied at once, not within the hour.
                        next_prune = Instant::now();
                    }
                    None => {
                        self.write_everything(&mut in_flight).await;
                        return;
                    }
                },
                done = async { in_flight.as_mut().expect("guarded by the condition").await }, if in_flight.is_some() => {
                    in_flight = None;
                    self.finished(done);
                }
                _ = tick.tick() => {
                    if in_flight.is_none() && !self.pending.is_empty() && self.may_write() {
                        in_flight = Some(self.start_write());
                    } else if in_flight.is_none()
                        && Instant::now() >= next_prune
                        && self.retry_at.is_none()
                        && self.health.leader.load(Ordering::Relaxed)
                    {
                        next_prune = Instant::now() + PRUNE_EVERY;
                        self.prune().await;
                    }
                }
            }
            self.health.pending.store(self.pending.len(), Ordering::Relaxed);
        }
    }

    /// Waits for the write in flight, then writes what is pending now,
    /// back-off or not (a flush, or the last write before stopping).
    async fn write_everything(&mut self, in_flight: &mut Option<WriteJob>) {
        if let Some(job) = in_flight.take() {
            self.finished(job.await);
        }
        if !self.pending.is_empty() {
            let job = self.start_write();
            self.finished(job.await);
        }
    }

    fn may_write(&self) -> bool {
        self.retry_at.is_none_or(|at| Instant::now() >= at)
    }

    fn bound_backlog(&mut self) {
        if self.pending.len() > MAX_PENDING {
            let excess = self.pending.len() - MAX_PENDING;
            self.pending.drain(..excess);
            self.health.dropped.fetch_add(excess as u64, Ordering::Relaxed);
        }
    }

    fn start_write(&mut self) -> WriteJob {
        let batch = std::mem::take(&mut self.pending);
        let store = self.store.clone();
        let busy_timeout = std::mem::take(&mut self.busy_timeout_changed).then_some(self.retention.busy_timeout);
        tokio::task::spawn_blocking(move || {
            let result = match store.lock() {
                Ok(mut store) => {
                    if let Some(timeout) = busy_timeout {
                        store.set_busy_timeout(timeout);
                    }
                    store.record_round(&batch).map_err(|e| e.to_string())
                }
                Err(_) => Err("store lock poisoned by an earlier panic".to_string()),
            };
            (batch, result)
        })
    }

    fn finished(&mut self, done: Result<(Vec<ProbeRecord>, Result<(), String>), tokio::task::JoinError>) {
        let health = self.health.clone();
        match done {
            Ok((batch, Ok(()))) => {
                let total = health.written.fetch_add(batch.len() as u64, Ordering::Relaxed) + batch.len() as u64;
                // The durable-so-far count: what a crash test holds the store to.
                tracing::debug!(records = batch.len(), total, "batch stored");
                if health.writes_failing.swap(false, Ordering::Relaxed) {
                    tracing::info!(
                        records = batch.len(),
                        backlog = self.pending.len(),
                        "store writable again"
                    );
                }
                health.set_error(None);
                health.retry_at.store(0, Ordering::Relaxed);
                health.last_write_at.store(now_ms(), Ordering::Relaxed);
                self.retry_at = None;
                self.backoff = FIRST_RETRY;
            }
            Ok((mut batch, Err(error))) => {
                health.failed_writes.fetch_add(1, Ordering::Relaxed);
                let retry_in = self.backoff;
                // Logged when it starts failing (and when it works again),
                // not at every attempt of a long outage.
                if !health.writes_failing.swap(true, Ordering::Relaxed) {
                    tracing::error!(
                        %error,
                        backlog = batch.len() + self.pending.len(),
                        retry_in_ms = retry_in.as_millis() as u64,
                        "store write failed; keeping the records and retrying later"
                    );
                } else {
                    tracing::debug!(%error, retry_in_ms = retry_in.as_millis() as u64, "store write failed again");
                }
                health.set_error(Some(error));
                batch.append(&mut self.pending);
                self.pending = batch;
                self.bound_backlog();
                self.retry_at = Some(Instant::now() + retry_in);
                health.retry_at.store(now_ms() + millis(retry_in), Ordering::Relaxed);
                self.backoff = (self.backoff * 2).min(LAST_RETRY);
            }
            Err(join_error) => {
                tracing::error!(%join_error, "store writer thread failed");
                health.set_error(Some(join_error.to_string()));
            }
        }
        health.pending.store(self.pending.len(), Ordering::Relaxed);
    }

    async fn prune(&self) {
        let store = self.store.clone();
        let now = now_ms();
        let raw_before = now - millis(self.retention.raw);
        let before = now - millis(self.retention.rollups);
        let result = tokio::task::spawn_blocking(move || match store.lock() {
            Ok(mut store) => store.prune(raw_before, before).map_err(|e| e.to_string()),
            Err(_) => Err("store lock poisoned by an earlier panic".to_string()),
        })
        .await;
        match result {
            Ok(Ok(removed)) => tracing::debug!(removed, "pruned records past retention"),
            Ok(Err(error)) => {
                tracing::warn!(%error, "pruning the store failed");
                self.health.set_error(Some(error));
            }
            Err(e) => tracing::warn!(error = %e, "pruning the store failed"),
        }
    }
}
