//! The in-memory state that redirects and status pages are served from.
//!
//! A [`Snapshot`] is immutable and published through an `ArcSwap`: request
//! handlers load the current one without locks and never touch the store.
//! Per-article views are individually `Arc`ed, so publishing after a batch of
//! probes copies pointers, not observations. The [`Catalog`] is the part
//! derived from config alone and is shared by every snapshot.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::UnixMillis;
use crate::config::Config;
use crate::fingerprint::{Hash, Normalizer};
use crate::observation::Observation;
use crate::origin::Origin;
use crate::uptime::Uptime;
use crate::verdict::{Verdict, Version};

/// Config-derived lookups, built once per config.
#[derive(Debug)]
pub struct Catalog {
    pub sites: Vec<SiteMeta>,
    pub by_name: HashMap<String, usize>,
    /// Base origin (ASCII serialization) -> (site, base).
    pub by_origin: HashMap<String, (usize, usize)>,
    pub interval: Duration,
}

#[derive(Debug)]
pub struct SiteMeta {
    pub name: Arc<str>,
    /// Primary first, then mirrors in config order.
    pub bases: Vec<Origin>,
    pub base_names: Vec<Arc<str>>,
    pub articles: Vec<Arc<str>>,
    pub article_index: HashMap<Arc<str>, usize>,
    pub prefer_primary: bool,
    pub normalizer: Normalizer,
}

impl Catalog {
    pub fn new(config: &Config) -> Self {
        let mut by_name = HashMap::new();
        let mut by_origin = HashMap::new();
        let sites = config
            .sites
            .iter()
            .enumerate()
            .map(|(site_index, site)| {
                by_name.insert(site.name.clone(), site_index);
                let bases: Vec<Origin> = site.bases().cloned().collect();
                for (base_index, base) in bases.iter().enumerate() {
                    by_origin.insert(base.as_str().to_string(), (site_index, base_index));
                }
                let articles: Vec<Arc<str>> = site.articles.iter().map(|a| Arc::from(a.as_str())).collect();
                let article_index = articles.iter().enumerate().map(|(i, a)| (a.clone(), i)).collect();
                SiteMeta {
                    name: site.name.as_str().into(),
                    base_names: bases.iter().map(|b| Arc::from(b.as_str())).collect(),
                    normalizer: Normalizer::new(&site.primary, &bases, site.content_selector.clone()),
                    bases,
                    articles,
                    article_index,
                    prefer_primary: site.prefer_primary,
                }
            })
            .collect();
        Catalog {
            sites,
            by_name,
            by_origin,
            interval: config.probe.interval,
        }
    }
}

/// What a reader is told to wait before retrying when no base qualifies.
pub fn retry_after_secs(interval: Duration) -> u64 {
    interval.as_secs().clamp(1, 60)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BaseState {
    Up,
    Degraded,
    Down,
}

/// One article across all bases of its site.
#[derive(Clone, Debug)]
pub struct ArticleView {
    /// Per base, the latest probe; None until probed.
    pub observations: Vec<Option<Observation>>,
    /// The primary's versions within retention, newest last.
    pub history: Vec<Version>,
    pub reference: Option<Hash>,
    /// Per base; None until probed.
    pub verdicts: Vec<Option<Verdict>>,
    /// Bases to send readers to, best first.
    pub candidates: Vec<usize>,
}

impl ArticleView {
    pub fn new(bases: usize) -> Self {
        ArticleView {
            observations: vec![None; bases],
            history: Vec::new(),
            reference: None,
            verdicts: vec![None; bases],
            candidates: Vec::new(),
        }
    }

    /// Recomputes everything derived from observations and history.
    pub fn settle(&mut self, prefer_primary: bool) {
        let served: Vec<Option<Hash>> = self
            .observations
            .iter()
            .map(|o| o.as_ref().filter(|o| o.is_ok()).and_then(|o| o.hash))
            .collect();
        self.reference = crate::verdict::reference(&served, &self.history);
        self.verdicts = self
            .observations
            .iter()
            .zip(&served)
            .map(|(observation, hash)| {
                observation
                    .as_ref()
                    .map(|_| crate::verdict::verdict(*hash, self.reference, &self.history))
            })
            .collect();
        let qualifies: Vec<bool> = self.verdicts.iter().map(|v| *v == Some(Verdict::Same)).collect();
        self.candidates = redirect_order(&qualifies, prefer_primary);
    }
}

/// Redirect order among qualifying bases: the primary first when preferred,
/// else last (operators turn the preference off when the primary is the
/// blocked one); mirrors in config order.
pub fn redirect_order(qualifies: &[bool], prefer_primary: bool) -> Vec<usize> {
    let mirrors = (1..qualifies.len()).filter(|&b| qualifies[b]);
    let primary = qualifies.first().copied().unwrap_or(false).then_some(0);
    if prefer_primary {
        primary.into_iter().chain(mirrors).collect()
    } else {
        mirrors.chain(primary).collect()
    }
}

#[derive(Clone, Debug)]
pub struct BaseView {
    pub state: BaseState,
    pub uptime: Uptime,
    pub latency_p50: Option<u32>,
    pub latency_p95: Option<u32>,
    /// Articles per verdict, indexed like [`Verdict::ALL`].
    pub verdict_counts: [usize; 5],
    /// Up, and most of its probed articles are `same`: fit for paths that
    /// are not configured articles.
    pub healthy: bool,
    pub probes: ProbeCounters,
}

/// Upper bounds (seconds) of the probe duration histogram's buckets.
pub const DURATION_BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Probes of one base since start, for Prometheus counters.
#[derive(Clone, Debug, Default)]
pub struct ProbeCounters {
    /// Indexed like [`crate::observation::Outcome::ALL`].
    pub by_outcome: [u64; 10],
    /// Cumulative counts per [`DURATION_BUCKETS`] bound (`le`).
    pub duration_buckets: [u64; 11],
    pub duration_sum_ms: u64,
}

impl ProbeCounters {
    pub fn count(&mut self, outcome: crate::observation::Outcome, latency_ms: u32) {
        let index = crate::observation::Outcome::ALL
            .iter()
            .position(|o| *o == outcome)
            .unwrap_or(0);
        self.by_outcome[index] += 1;
        let seconds = latency_ms as f64 / 1000.0;
        for (bound, count) in DURATION_BUCKETS.iter().zip(&mut self.duration_buckets) {
            if seconds <= *bound {
                *count += 1;
            }
        }
        self.duration_sum_ms += latency_ms as u64;
    }

    pub fn total(&self) -> u64 {
        self.by_outcome.iter().sum()
    }
}

#[derive(Clone, Debug)]
pub struct SiteView {
    pub articles: Vec<Arc<ArticleView>>,
    pub bases: Vec<BaseView>,
    /// Redirect order for paths that are not configured articles.
    pub fallback: Vec<usize>,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct RoundInfo {
    pub completed: u64,
    pub last_started_at: Option<UnixMillis>,
    pub last_finished_at: Option<UnixMillis>,
    pub last_duration_ms: Option<u64>,
}

#[derive(Debug)]
pub struct Snapshot {
    pub catalog: Arc<Catalog>,

    pub sites: Vec<SiteView>,
    pub round: RoundInfo,
}
