//! Persistence behind one narrow seam.
//!
//! The daemon never reads the store on a request path: it loads the stored
//! state once at start, keeps everything it serves in memory, and hands
//! every probe result to a writer task that batches them into transactions.
//! [`Store`] is the whole contract a backend must meet: SQLite (one
//! instance, no setup) and PostgreSQL (shared), with the same tests run
//! against both (`tests/store.rs`).

mod postgresql;
mod rollups;
mod sqlite;
mod tables;
mod writer;

pub use postgresql::{MIGRATIONS, PostgresStore, PostgresTarget};
pub use sqlite::SqliteStore;
pub use tables::{Cell, ColumnType, TABLES, Table};

/// `[store] backend = "none"`: keeps nothing. The daemon runs the same
/// (writer, batching and all), so benchmarks can price the store itself.
pub struct NullStore;

impl Store for NullStore {
    fn backend(&self) -> &'static str {
        "none"
    }

    fn record_round(&mut self, _: &[ProbeRecord]) -> Result<(), StoreError> {
        Ok(())
    }

    fn load_snapshot(&mut self, _: usize) -> Result<StoredState, StoreError> {
        Ok(StoredState::default())
    }

    fn prune(&mut self, _: UnixMillis, _: UnixMillis) -> Result<u64, StoreError> {
        Ok(0)
    }
}
pub use writer::{Retention, StoreHealth, StoreWriter};

use std::sync::Arc;

use crate::clock::UnixMillis;
use crate::fingerprint::{Hash, PageFacts};
use crate::verdict::observation::Observation;

/// A backend's failure, named by the store it happened in. The cause is
/// boxed so the trait names no driver: each backend brings its own.
#[derive(Debug, thiserror::Error)]
#[error("store {path}: {source}")]
pub struct StoreError {
    pub path: String,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync + 'static>,
}

/// One article discovery found, as kept across restarts.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DiscoveredArticle {
    pub path: String,
    /// Its lastmod or publication date (Unix ms), when the source gave one.
    pub date: Option<UnixMillis>,
    pub source: String,
}

/// One probe result, named by site, base and article rather than by index,
/// so stored state survives config edits that reorder things.
#[derive(Clone, Debug)]
pub struct ProbeRecord {
    pub site: Arc<str>,
    pub base: Arc<str>,
    pub article: Arc<str>,
    pub is_primary: bool,
    /// The primary served a page that may stand as the reference: it is a
    /// version of the article (block and parking pages are not).
    pub trusted: bool,
    pub observation: Observation,
    /// The base's verdict on the article after this probe (None when the
    /// record was restored rather than probed).
    pub verdict: Option<crate::verdict::Verdict>,
    /// The fencing token of the lease this probe was made under, when
    /// instances share the work: the record is stored only while that
    /// lease is still this instance's (no other took it over meanwhile).
    pub lease: Option<i64>,
    /// When instances share the work queue: how long until the pair is due
    /// again, by its article's tier (None: `[probe] interval`).
    pub period_ms: Option<i64>,
}

/// Everything the daemon needs to resume where it stopped.
#[derive(Debug, Default)]
pub struct StoredState {
    pub latest: Vec<ProbeRecord>,
    pub versions: Vec<StoredVersion>,
    pub minutes: Vec<MinuteCount>,
    /// Recent ok latencies per base, newest last.
    pub latencies: Vec<(String, Vec<u32>)>,
}

#[derive(Clone, Debug)]
pub struct StoredVersion {
    pub site: String,
    pub article: String,
    pub hash: Hash,
    pub page: PageFacts,
    /// The rules key it was fingerprinted under.
    pub rules: u64,
    pub last_seen: UnixMillis,
}

/// Probes of one base in one minute: the unit uptime is computed from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MinuteCount {
    pub base: String,
    pub minute: i64,
    pub probes: u32,
    pub ok: u32,
}

/// One entry of the state the daemon keeps in memory besides probe
/// results (alerts held, mirrors listed, evidence, proposals, leaks,
/// agents, reader reports), so a restart shows what it showed before.
/// Each part owns a `kind` and writes its entries as JSON it reads back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kept {
    pub kind: String,
    pub key: String,
    pub value: String,
}

/// What an instance tells the store every few seconds.
#[derive(Clone, Debug)]
pub struct Beat {
    pub instance: String,
    /// The effective config's hash, leaving out what is per instance.
    pub config_hash: String,
    pub probes_last_interval: u64,
}

/// An instance the store heard from lately.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Member {
    pub name: String,
    pub last_seen: UnixMillis,
    pub leader: bool,
    pub probes_last_interval: u64,
    pub config_hash: String,
}

/// The instances sharing a store, as one heartbeat found them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cluster {
    /// Who holds the leader's lease (runs alerts, retention, kept state).
    pub leader: Option<String>,
    pub members: Vec<Member>,
}

/// An instance not heard from for this long is gone; a leader's lease
/// lasts as long.
pub const MEMBER_TTL_MS: i64 = 15_000;

/// One (site, article, base) to probe, as the shared work queue holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkPair {
    pub site: String,
    pub article: String,
    pub base: String,
    /// `host:port`: claims take only so many of one host at a time.
    pub host: String,
}

/// How much work one claim takes.
#[derive(Clone, Copy, Debug)]
pub struct ClaimLimits {
    pub pairs: usize,
    pub per_host: usize,
    /// The lease: past it, another instance may take the pair.
    pub lease_ms: i64,
}

/// A pair this instance holds the lease of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub site: String,
    pub article: String,
    pub base: String,
    /// The fencing token: each claim of a pair gets a new, larger one.
    pub token: i64,
    /// It was taken from an instance whose lease had run out.
    pub taken_over: bool,
}

pub trait Store: Send + 'static {
    /// `sqlite`, `postgres` or `none`, as `/status` names the backend.
    fn backend(&self) -> &'static str;
    /// Writes a batch in one transaction: the probes, each base's latest
    /// result per article, the primary's versions and the uptime counts.
    fn record_round(&mut self, batch: &[ProbeRecord]) -> Result<(), StoreError>;
    /// The state to resume from; `latencies_per_base` bounds the samples.
    fn load_snapshot(&mut self, latencies_per_base: usize) -> Result<StoredState, StoreError>;
    /// Drops raw probe rows older than `raw_before` and aggregates and
    /// versions older than `before`; returns the rows removed.
    fn prune(&mut self, raw_before: UnixMillis, before: UnixMillis) -> Result<u64, StoreError>;
    /// How long a write waits on another process's lock (a reload changes it).
    fn set_busy_timeout(&mut self, _timeout: std::time::Duration) {}
    /// Replaces what discovery found for `site` (a site with none drops out).
    fn save_discovered(&mut self, _site: &str, _found: &[crate::store::DiscoveredArticle]) -> Result<(), StoreError> {
        Ok(())
    }
    /// What discovery found, by site, as last saved.
    fn load_discovered(
        &mut self,
    ) -> Result<std::collections::HashMap<String, Vec<crate::store::DiscoveredArticle>>, StoreError> {
        Ok(Default::default())
    }
    /// Replaces every entry of `kind` with `entries` (each `Kept::kind` is
    /// `kind`), in one transaction.
    fn save_kept(&mut self, _kind: &str, _entries: &[Kept]) -> Result<(), StoreError> {
        Ok(())
    }
    /// Every kept entry, of every kind.
    fn load_kept(&mut self) -> Result<Vec<Kept>, StoreError> {
        Ok(Vec::new())
    }
    /// Up to `limit` rows of `table` from the `offset`th on, in its order
    /// (`store copy`).
    fn read_rows(&mut self, table: &'static Table, _offset: u64, _limit: u64) -> Result<Vec<Vec<Cell>>, StoreError> {
        Err(StoreError {
            path: self.backend().into(),
            source: format!("cannot read {} from this store", table.name).into(),
        })
    }
    /// Appends rows as [`read_rows`](Self::read_rows) gives them, in one
    /// transaction.
    fn write_rows(&mut self, table: &'static Table, _rows: &[Vec<Cell>]) -> Result<(), StoreError> {
        Err(StoreError {
            path: self.backend().into(),
            source: format!("cannot write {} to this store", table.name).into(),
        })
    }
    /// Empties every table, in one transaction (`store copy --force`).
    fn clear(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
    /// After rows were written with their ids: new ids start past them.
    fn ids_copied(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Records `beat`, renews or takes the leader's lease if it is free,
    /// and says who is there. A store only one process uses (SQLite) has
    /// one member, always the leader.
    fn heartbeat(&mut self, beat: &Beat) -> Result<Cluster, StoreError> {
        Ok(Cluster {
            leader: Some(beat.instance.clone()),
            members: vec![Member {
                name: beat.instance.clone(),
                last_seen: crate::clock::now_ms(),
                leader: true,
                probes_last_interval: beat.probes_last_interval,
                config_hash: beat.config_hash.clone(),
            }],
        })
    }
    /// Each base's latest result per article checked after `since`, as
    /// any instance sharing the store wrote it (one instance alone: none).
    fn latest_since(&mut self, _since: UnixMillis) -> Result<Vec<ProbeRecord>, StoreError> {
        Ok(Vec::new())
    }
    /// At shutdown: gives up the lease and the membership, so another
    /// instance leads at once rather than after the lease runs out.
    fn leave(&mut self, _instance: &str) -> Result<(), StoreError> {
        Ok(())
    }
    /// Rows per table of [`TABLES`], for `store copy` and tests.
    fn row_counts(&mut self) -> Result<Vec<(&'static str, u64)>, StoreError> {
        Ok(Vec::new())
    }
    /// Whether instances share the probe work through [`Store::claim_work`]
    /// (a store several processes open); otherwise each probes everything.
    fn shares_work(&self) -> bool {
        false
    }
    /// Adds the pairs of this instance's catalog to the shared work, due at
    /// once when new; `interval_ms` is how long after a claim a pair is due
    /// again.
    fn sync_work(&mut self, _pairs: &[WorkPair], _interval_ms: i64) -> Result<(), StoreError> {
        Ok(())
    }
    /// Takes the leases of pairs that are due and not leased (or whose
    /// lease ran out), oldest due first, by the database's clock.
    fn claim_work(&mut self, _instance: &str, _limits: ClaimLimits) -> Result<Vec<Claim>, StoreError> {
        Ok(Vec::new())
    }
    /// Gives leases back unprobed (pairs this instance does not know, or
    /// did not get to): due again at once for `now`, else one interval on.
    fn release_work(&mut self, _tokens: &[i64], _now: bool) -> Result<(), StoreError> {
        Ok(())
    }
    /// Makes every pair of `base` due at once (its canaries failed).
    fn work_due_now(&mut self, _site: &str, _base: &str) -> Result<(), StoreError> {
        Ok(())
    }
}
