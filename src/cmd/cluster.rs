//! Instances sharing one store: each beats every [`BEAT_EVERY`] into it
//! (its name, its config's hash, how much it probed), and the one holding
//! the leader's lease — renewed with each beat, taken over when it runs
//! out ([`crate::store::MEMBER_TTL_MS`]) — alone sends alerts, prunes and writes the kept
//! state. On SQLite the one instance always leads.
//!
//! A new leader first reads the alert book the old one kept, so a firing
//! already sent is not sent again and its `resolved` still is. Times come
//! from the database's clock, not the instances'.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::clock::{UnixMillis, millis, now_ms};
use crate::config::Config;
use crate::state::engine::EngineEvent;
use crate::state::kept::Keeps;
use crate::store::{Beat, StoreHealth, StoreWriter};

pub const BEAT_EVERY: Duration = Duration::from_secs(5);
/// How far back a refresh reads, past the newest result it saw.
const CLOCK_SLACK: Duration = Duration::from_secs(60);

/// What identifies a config across instances: everything but the keys
/// each instance sets for itself (`[server] listen`, `[store] instance`).
pub fn config_hash(config: &Config) -> String {
    let mut shared = config.clone();
    shared.server.listen = std::net::SocketAddr::from(([0, 0, 0, 0], 0));
    shared.store.instance = String::new();
    let digest = Sha256::digest(format!("{shared:?}").as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

pub struct Membership {
    pub instance: String,
    /// Of the config running now: a reload changes it.
    config_hash: Mutex<String>,
    writer: StoreWriter,
    health: Arc<StoreHealth>,
    alerts: Arc<crate::alert::Book>,
    interval: Duration,
    /// (when, results written by then): what "probes in the last interval" is read from.
    written: Mutex<VecDeque<(UnixMillis, u64)>>,
    /// Other instances' config hashes already warned about.
    warned: Mutex<HashSet<(String, String)>>,
    /// Where the others' results go: this instance serves every pair,
    /// including those another one probes. Taken at shutdown, so the
    /// engine sees its last sender go.
    events: Mutex<Option<mpsc::Sender<EngineEvent>>>,
    /// Results checked after this were read back already.
    refreshed_until: Mutex<UnixMillis>,
}

impl Membership {
    pub fn new(
        config: &Config,
        writer: StoreWriter,
        alerts: Arc<crate::alert::Book>,
        events: mpsc::Sender<EngineEvent>,
    ) -> Arc<Membership> {
        Arc::new(Membership {
            instance: config.store.instance.clone(),
            config_hash: Mutex::new(config_hash(config)),
            health: writer.health.clone(),
            writer,
            alerts,
            interval: config.probe.interval,
            written: Mutex::new(VecDeque::new()),
            warned: Mutex::new(HashSet::new()),
            events: Mutex::new(Some(events)),
            // What was stored before the start came with the restore.
            refreshed_until: Mutex::new(now_ms()),
        })
    }

    /// Folds in what the other instances probed since the last refresh.
    /// Their clocks may lag this one's (results carry the prober's time),
    /// so the window reaches back [`CLOCK_SLACK`]; what was seen already is
    /// skipped by the engine.
    async fn refresh(&self) {
        let since = *self.refreshed_until.lock().unwrap_or_else(|e| e.into_inner()) - millis(CLOCK_SLACK);
        match self.writer.latest_since(since).await {
            Ok(records) => {
                let newest = records.iter().map(|r| r.observation.checked_at).max();
                if let Some(newest) = newest {
                    let mut until = self.refreshed_until.lock().unwrap_or_else(|e| e.into_inner());
                    *until = (*until).max(newest);
                }
                let events = self.events.lock().unwrap_or_else(|e| e.into_inner()).clone();
                if let (false, Some(events)) = (records.is_empty(), events) {
                    let _ = events.send(EngineEvent::Shared(records)).await;
                }
            }
            Err(error) => tracing::debug!(%error, "cannot read the other instances' results"),
        }
    }

    fn probes_last_interval(&self, now: UnixMillis) -> u64 {
        let written = self.health.written.load(Ordering::Relaxed);
        let mut samples = self.written.lock().unwrap_or_else(|e| e.into_inner());
        samples.push_back((now, written));
        while samples.len() > 1 && samples[1].0 <= now - millis(self.interval) {
            samples.pop_front();
        }
        written - samples.front().map_or(written, |s| s.1)
    }

    /// One heartbeat: membership, the lease, and what follows from them.
    pub async fn beat(&self) {
        let now = now_ms();
        let this_config = self.config_hash.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let beat = Beat {
            instance: self.instance.clone(),
            config_hash: this_config.clone(),
            probes_last_interval: self.probes_last_interval(now),
        };
        let cluster = match self.writer.heartbeat(beat).await {
            Ok(cluster) => cluster,
            Err(error) => {
                // Unable to renew the lease: another instance may hold it
                // soon, so this one stops acting as leader at once.
                if self.health.leader.swap(false, Ordering::Relaxed) {
                    tracing::warn!(%error, "cannot reach the store to renew the leader's lease; not leading");
                }
                return;
            }
        };
        let leads = cluster.leader.as_deref() == Some(self.instance.as_str());
        let led = self.health.leader.load(Ordering::Relaxed);
        if leads && !led {
            let previous = self
                .health
                .cluster
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .leader
                .clone();
            if let Some(previous) =
                previous.filter(|p| *p != self.instance && !cluster.members.iter().any(|m| &m.name == p))
            {
                self.health.leases_expired.fetch_add(1, Ordering::Relaxed);
                tracing::info!(previous, "the leader's lease ran out; this instance took it");
            }
            // The old leader's alert book, before this one sends anything.
            match self.writer.load_kept().await {
                Ok(kept) => {
                    let book: Vec<(String, String)> = kept
                        .into_iter()
                        .filter(|k| k.kind == self.alerts.kind())
                        .map(|k| (k.key, k.value))
                        .collect();
                    self.alerts.reload(&book);
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot read the alert book; leading from the next heartbeat");
                    return;
                }
            }
            tracing::info!(
                instance = self.instance,
                "this instance leads: alerts, retention and kept state"
            );
        } else if !leads && led {
            tracing::info!(
                leader = cluster.leader.as_deref().unwrap_or("none"),
                "another instance leads now"
            );
        }
        for member in &cluster.members {
            if member.config_hash != this_config
                && self
                    .warned
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert((member.name.clone(), member.config_hash.clone()))
            {
                tracing::warn!(
                    other = member.name,
                    other_config = member.config_hash,
                    this_config,
                    "an instance sharing this store runs another config"
                );
            }
        }
        let shared = cluster.members.len() > 1;
        *self.health.cluster.lock().unwrap_or_else(|e| e.into_inner()) = cluster;
        self.health.leader.store(leads, Ordering::Relaxed);
        if shared {
            self.refresh().await;
        }
    }

    /// Beats until shutdown; the daemon leaves the cluster itself after
    /// its last write.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(BEAT_EVERY) => {}
            }
            self.beat().await;
        }
    }

    /// A reload: the others see this instance's new config with its next beat.
    pub fn reconfigured(&self, config: &Config) {
        *self.config_hash.lock().unwrap_or_else(|e| e.into_inner()) = config_hash(config);
    }

    /// No more results from the others: the engine may stop.
    pub fn stop_refreshing(&self) {
        self.events.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    pub async fn leave(&self) {
        self.health.leader.store(false, Ordering::Relaxed);
        self.writer.leave(self.instance.clone()).await;
    }
}
