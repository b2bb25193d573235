//! Probing when instances share a store's work queue: instead of a round
//! over everything, the instance claims due pairs batch by batch (see
//! `store::postgresql::work`), all the time, so a pair whose lease runs out
//! with a dead instance is taken by another within a poll, not at its
//! next round. Rounds stay as a rhythm of one interval each, for what
//! `/status` and the logs say about them.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::clock::millis;
use crate::state::engine::EngineEvent;
use crate::state::schedule::Scheduler;
use crate::state::snapshot::{Catalog, Snapshots};
use crate::store::StoreWriter;

/// How often an instance with nothing to probe asks again.
const POLL_EVERY: Duration = Duration::from_millis(250);
/// Batches in flight: the next is claimed while one still waits on slow
/// hosts, so a slow host does not hold up the whole concurrency.
const BATCHES_IN_FLIGHT: usize = 2;

pub struct SharedWork {
    writer: StoreWriter,
    events: mpsc::Sender<EngineEvent>,
    /// What each base served last, for conditional requests.
    snapshots: Snapshots,
    stop: CancellationToken,
    /// A reload: the window ends for the new config.
    wake: Arc<Notify>,
    /// The catalog whose pairs the queue holds, once synced.
    synced: Option<Arc<Catalog>>,
}

/// How one interval's window went.
pub enum Window {
    /// Everything due at its start was probed after this long (or never,
    /// the window ended with work still due).
    Ran { drained: Option<Duration> },
    /// A reload: the window ended early for the new config.
    Woken { drained: Option<Duration> },
}

impl SharedWork {
    pub fn new(
        writer: StoreWriter,
        events: mpsc::Sender<EngineEvent>,
        snapshots: Snapshots,
        stop: CancellationToken,
        wake: Arc<Notify>,
    ) -> SharedWork {
        SharedWork {
            writer,
            events,
            snapshots,
            stop,
            wake,
            synced: None,
        }
    }

    /// Claims and probes due pairs until `until`. An error means the store
    /// cannot be reached: the caller probes its own share meanwhile.
    pub async fn window(
        &mut self,
        scheduler: Arc<Scheduler>,
        conditional: bool,
        until: Instant,
    ) -> Result<Window, String> {
        let (stop, wake) = (&self.stop, &self.wake);
        if !self
            .synced
            .as_ref()
            .is_some_and(|c| Arc::ptr_eq(c, scheduler.catalog()))
        {
            self.writer
                .sync_work(scheduler.work_pairs(), millis(scheduler.interval()))
                .await?;
            self.synced = Some(scheduler.catalog().clone());
        }
        let started = Instant::now();
        let limits = scheduler.claim_limits(BATCHES_IN_FLIGHT);
        let global = Arc::new(Semaphore::new(scheduler.concurrency()));
        let mut in_flight = JoinSet::new();
        let mut drained = None;
        let outcome = loop {
            if stop.is_cancelled() {
                break Ok(Window::Ran { drained });
            }
            if in_flight.len() >= BATCHES_IN_FLIGHT || (Instant::now() >= until && !in_flight.is_empty()) {
                in_flight.join_next().await;
                continue;
            }
            if Instant::now() >= until {
                break Ok(Window::Ran { drained });
            }
            let claims = match self.writer.claim_work(limits).await {
                Ok(claims) => claims,
                Err(error) => break Err(error),
            };
            if claims.is_empty() {
                if !in_flight.is_empty() {
                    in_flight.join_next().await;
                    continue;
                }
                drained.get_or_insert_with(|| started.elapsed());
                let nap = POLL_EVERY.min(until.saturating_duration_since(Instant::now()));
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = wake.notified() => break Ok(Window::Woken { drained }),
                    _ = tokio::time::sleep(nap) => {}
                }
                continue;
            }
            let taken_over = claims.iter().filter(|c| c.taken_over).count() as u64;
            if taken_over > 0 {
                self.writer
                    .health
                    .leases_expired
                    .fetch_add(taken_over, Ordering::Relaxed);
                tracing::info!(pairs = taken_over, "took over pairs whose leases ran out");
            }
            let scheduler = scheduler.clone();
            let events = self.events.clone();
            let stop = stop.clone();
            let known = Some(self.snapshots.load_full());
            let global = global.clone();
            let writer = self.writer.clone();
            in_flight.spawn(async move {
                let unknown = scheduler
                    .leased(&claims, &events, &stop, known, conditional, global)
                    .await;
                if !unknown.is_empty()
                    && let Err(error) = writer.release_work(unknown, false).await
                {
                    tracing::debug!(%error, "could not give back pairs this config does not have");
                }
            });
        };
        while in_flight.join_next().await.is_some() {}
        outcome
    }
}
