//! The engine owns the live state: it folds probe results into article
//! views, tracks each base's health, and publishes snapshots.
//!
//! It runs as one task fed by a channel, so the state has a single owner
//! and needs no locks; readers only ever see published snapshots.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::clock::{UnixMillis, millis, now_ms};
use crate::notify::{Heartbeat, Loop};
use crate::observation::{Observation, Outcome};
use crate::snapshot::{
    ArticleView, BaseState, BaseView, Catalog, ProbeCounters, RoundInfo, SiteView, Snapshot, redirect_order,
};
use crate::store::{ProbeRecord, StoreWriter, StoredState};
use crate::uptime::UptimeCounter;
use crate::verdict::{Verdict, Version};

/// Recent ok latencies kept per base for the percentiles.
pub const LATENCY_SAMPLES: usize = 256;
/// Versions of one article kept for stale detection: bounds memory when a
/// primary's page changes on every request.
const MAX_VERSIONS: usize = 32;
/// Snapshots are published at most this often while results stream in.
const PUBLISH_EVERY: Duration = Duration::from_millis(200);

/// One probe's result, addressed by indices into the catalog its round ran
/// under (a reload may have replaced it since).
#[derive(Debug)]
pub struct ProbeResult {
    pub catalog: Arc<Catalog>,
    pub site: usize,
    pub base: usize,
    pub article: usize,
    pub observation: Observation,
}

#[derive(Debug)]
pub enum EngineEvent {
    Result(ProbeResult),
    RoundStarted {
        at: UnixMillis,
    },
    RoundFinished {
        at: UnixMillis,
        duration: Duration,
    },
    /// A reloaded config: what is still configured keeps its state.
    Reconfigure {
        catalog: Arc<Catalog>,
        down_after: u32,
        retention: Duration,
    },
}

#[derive(Debug, Default)]
struct BaseTracker {
    /// Seen ok since start (or in the restored state): only a base that was
    /// up needs `down_after` failures to go down; one never seen up is down
    /// at its first failure.
    ever_up: bool,
    consecutive_failures: u32,
    latencies: VecDeque<u32>,
    uptime: UptimeCounter,
    last_state: Option<BaseState>,
    counters: ProbeCounters,
    /// The latest failed outcome, for the log line when the base goes down.
    last_failure: Option<Outcome>,
    /// Articles per verdict, indexed like [`Verdict::ALL`]: kept up to date
    /// result by result, so publishing does not walk every article.
    verdict_counts: [usize; 5],
}

/// Adds (`sign` 1) or removes (-1) `view`'s verdicts to its bases' counts.
fn count_verdicts(trackers: &mut [BaseTracker], view: &ArticleView, sign: isize) {
    for (base, tracker) in trackers.iter_mut().enumerate() {
        if let Some(verdict) = view.verdict(base) {
            let index = Verdict::ALL.iter().position(|v| *v == verdict).unwrap_or(4);
            tracker.verdict_counts[index] = tracker.verdict_counts[index].saturating_add_signed(sign);
        }
    }
}

pub struct Engine {
    catalog: Arc<Catalog>,
    articles: Vec<Vec<Arc<ArticleView>>>,
    trackers: Vec<Vec<BaseTracker>>,
    down_after: u32,
    retention: Duration,
    round: RoundInfo,
    published: Arc<ArcSwap<Snapshot>>,
}

impl Engine {
    pub fn new(catalog: Arc<Catalog>, down_after: u32, retention: Duration, restored: Option<StoredState>) -> Self {
        // Every article starts as one shared empty view; views are replaced,
        // never mutated in place, so sharing costs nothing and saves memory.
        #[allow(clippy::rc_clone_in_vec_init)]
        let articles = catalog
            .sites
            .iter()
            .map(|site| vec![Arc::new(ArticleView::new(site.bases.len())); site.articles.len()])
            .collect();
        let trackers = catalog
            .sites
            .iter()
            .map(|site| site.bases.iter().map(|_| BaseTracker::default()).collect())
            .collect();
        let empty = Arc::new(Snapshot {
            catalog: catalog.clone(),

            sites: Vec::new(),
            round: RoundInfo::default(),
        });
        let mut engine = Engine {
            catalog,
            articles,
            trackers,
            down_after,
            retention,
            round: RoundInfo::default(),
            published: Arc::new(ArcSwap::new(empty)),
        };
        if let Some(restored) = restored {
            engine.restore(restored);
        }
        engine.publish(false);
        engine
    }

    pub fn snapshots(&self) -> Arc<ArcSwap<Snapshot>> {
        self.published.clone()
    }

    /// Folds one probe result in and returns the record to store; None
    /// when a reload removed what it was about.
    pub fn apply(&mut self, result: ProbeResult) -> Option<ProbeRecord> {
        let (site, base, article) = self.locate(&result)?;
        let mut observation = result.observation;
        let meta = &self.catalog.sites[site];
        let slot = &mut self.articles[site][article];
        let mut view = ArticleView::clone(slot);
        if !observation.is_ok() {
            observation.last_ok_at = view.observation(base).and_then(|o| o.last_ok_at);
        }
        let new_version = observation.hash.filter(|_| base == 0 && observation.is_ok());
        let cutoff = observation.checked_at - millis(self.retention);
        if new_version.is_some() || view.history.iter().any(|v| v.last_seen < cutoff) {
            let mut history = view.history.to_vec();
            if let Some(hash) = new_version {
                remember_version(&mut history, hash, observation.checked_at);
            }
            history.retain(|v| v.last_seen >= cutoff);
            view.history = history.into();
        }
        view.record(base, &observation);
        view.settle();
        let trackers = &mut self.trackers[site];
        count_verdicts(trackers, slot, -1);
        count_verdicts(trackers, &view, 1);
        *slot = Arc::new(view);

        let tracker = &mut trackers[base];
        tracker.uptime.record(observation.checked_at, observation.is_ok());
        tracker.counters.count(observation.outcome, observation.latency_ms);
        if observation.is_ok() {
            tracker.ever_up = true;
            tracker.consecutive_failures = 0;
            if tracker.latencies.len() == LATENCY_SAMPLES {
                tracker.latencies.pop_front();
            }
            tracker.latencies.push_back(observation.latency_ms);
        } else if observation.outcome != Outcome::RateLimited {
            // A 429 means the host is alive and asks us to slow down: not a failure.
            tracker.consecutive_failures = tracker.consecutive_failures.saturating_add(1);
            tracker.last_failure = Some(observation.outcome);
        }
        Some(ProbeRecord {
            site: meta.name.clone(),
            base: meta.base_names[base].clone(),
            article: meta.articles[article].clone(),
            is_primary: base == 0,
            observation,
        })
    }

    /// The result's indices in the current catalog: the same indices when
    /// it ran under it, else found again by name.
    fn locate(&self, result: &ProbeResult) -> Option<(usize, usize, usize)> {
        if Arc::ptr_eq(&result.catalog, &self.catalog) {
            return Some((result.site, result.base, result.article));
        }
        let old = result.catalog.sites.get(result.site)?;
        let site = *self.catalog.by_name.get(&*old.name)?;
        let meta = &self.catalog.sites[site];
        let base_name = old.base_names.get(result.base)?;
        let base = meta.base_names.iter().position(|b| b == base_name)?;
        let article = *meta.article_index.get(old.articles.get(result.article)?)?;
        Some((site, base, article))
    }

    /// Switches to a reloaded config. Sites, bases and articles still
    /// configured keep their observations, history, uptime and counters;
    /// new ones start empty; removed ones are dropped.
    pub fn reconfigure(&mut self, catalog: Arc<Catalog>, down_after: u32, retention: Duration) {
        let old_articles = std::mem::take(&mut self.articles);
        let mut old_trackers = std::mem::take(&mut self.trackers);
        let old = std::mem::replace(&mut self.catalog, catalog.clone());
        for meta in &catalog.sites {
            let old_site = old.by_name.get(&*meta.name).copied();
            let old_base =
                |name: &Arc<str>| old_site.and_then(|s| old.sites[s].base_names.iter().position(|b| b == name));
            let trackers = meta
                .base_names
                .iter()
                .map(|name| match (old_site, old_base(name)) {
                    (Some(s), Some(b)) => std::mem::take(&mut old_trackers[s][b]),
                    _ => BaseTracker::default(),
                })
                .collect();
            let articles = meta
                .articles
                .iter()
                .map(|path| {
                    let mut view = ArticleView::new(meta.bases.len());
                    let previous = old_site.and_then(|s| Some((s, *old.sites[s].article_index.get(path)?)));
                    if let Some((s, a)) = previous {
                        let before = &old_articles[s][a];
                        view.history = before.history.clone();
                        for (b, name) in meta.base_names.iter().enumerate() {
                            if let Some(observation) = old_base(name).and_then(|ob| before.observation(ob)) {
                                view.record(b, &observation);
                            }
                        }
                    }
                    view.settle();
                    Arc::new(view)
                })
                .collect();
            self.articles.push(articles);
            self.trackers.push(trackers);
        }
        self.recount_verdicts();
        self.down_after = down_after;
        self.retention = retention;
        self.publish(false);
    }

    pub fn round_started(&mut self, at: UnixMillis) {
        self.round.last_started_at = Some(at);
    }

    pub fn round_finished(&mut self, at: UnixMillis, duration: Duration) {
        self.round.completed += 1;
        self.round.last_finished_at = Some(at);
        self.round.last_duration_ms = Some(duration.as_millis() as u64);
    }

    /// Publishes a new snapshot. At a round's end (`judge_transitions`),
    /// base state changes are also logged: mid-round a base can look stale
    /// for a moment, between the primary's new version and its own probe.
    pub fn publish(&mut self, judge_transitions: bool) {
        let now = now_ms();
        let mut sites = Vec::with_capacity(self.catalog.sites.len());
        for (site_index, meta) in self.catalog.sites.iter().enumerate() {
            let articles = &self.articles[site_index];
            let mut bases = Vec::with_capacity(meta.bases.len());
            for (base_index, tracker) in self.trackers[site_index].iter_mut().enumerate() {
                let view = base_view(tracker, self.down_after, now);
                // Logged once per change; a base first seen up is the normal case.
                let probed = view.verdict_counts.iter().sum::<usize>() > 0;
                let first_and_up = tracker.last_state.is_none() && view.state == BaseState::Up;
                if judge_transitions && probed && tracker.last_state != Some(view.state) {
                    if !first_and_up {
                        log_transition(&meta.name, &meta.base_names[base_index], tracker, &view);
                    }
                    tracker.last_state = Some(view.state);
                }
                bases.push(view);
            }
            let healthy: Vec<bool> = bases.iter().map(|b| b.healthy).collect();
            sites.push(SiteView {
                articles: articles.clone(),
                bases,
                fallback: redirect_order(&healthy, meta.prefer_primary),
            });
        }

        self.published.store(Arc::new(Snapshot {
            catalog: self.catalog.clone(),

            sites,
            round: self.round,
        }));
    }

    fn recount_verdicts(&mut self) {
        for (trackers, articles) in self.trackers.iter_mut().zip(&self.articles) {
            for tracker in trackers.iter_mut() {
                tracker.verdict_counts = [0; 5];
            }
            for view in articles {
                count_verdicts(trackers, view, 1);
            }
        }
    }

    fn restore(&mut self, state: StoredState) {
        let catalog = self.catalog.clone();
        let locate_base = |base: &str| catalog.by_origin.get(base).copied();
        let locate_article = |site: &str, article: &str| {
            let s = *catalog.by_name.get(site)?;
            Some((s, *catalog.sites[s].article_index.get(article)?))
        };
        // Only articles with stored state get a view of their own; the rest
        // keep sharing the empty one.
        let mut views: Vec<Vec<Option<ArticleView>>> = self.articles.iter().map(|a| vec![None; a.len()]).collect();
        let shared = &self.articles;
        fn own<'v>(
            views: &'v mut [Vec<Option<ArticleView>>],
            shared: &[Vec<Arc<ArticleView>>],
            (s, a): (usize, usize),
        ) -> &'v mut ArticleView {
            views[s][a].get_or_insert_with(|| ArticleView::clone(&shared[s][a]))
        }
        let mut histories: HashMap<(usize, usize), Vec<Version>> = HashMap::new();
        for version in state.versions {
            if let Some(at) = locate_article(&version.site, &version.article) {
                remember_version(histories.entry(at).or_default(), version.hash, version.last_seen);
            }
        }
        for (at, history) in histories {
            own(&mut views, shared, at).history = history.into();
        }
        for record in state.latest {
            let Some((s, b)) = locate_base(&record.base) else {
                continue;
            };
            let Some((site, a)) = locate_article(&record.site, &record.article) else {
                continue;
            };
            if site != s {
                continue;
            }
            if record.observation.is_ok() {
                self.trackers[s][b].ever_up = true;
            }
            own(&mut views, shared, (s, a)).record(b, &record.observation);
        }
        for count in state.minutes {
            if let Some((s, b)) = locate_base(&count.base) {
                self.trackers[s][b].uptime.add(count.minute, count.probes, count.ok);
            }
        }
        for (base, samples) in state.latencies {
            if let Some((s, b)) = locate_base(&base) {
                self.trackers[s][b].latencies = samples.into_iter().collect();
            }
        }
        // A base that was failing when we stopped is still down on restart.
        for (s, trackers) in self.trackers.iter_mut().enumerate() {
            for (b, tracker) in trackers.iter_mut().enumerate() {
                let seen = views[s].iter().flatten().any(|v| v.observation(b).is_some());
                if seen && !tracker.ever_up {
                    tracker.consecutive_failures = self.down_after;
                }
            }
        }
        for (s, site_views) in views.into_iter().enumerate() {
            for (a, view) in site_views.into_iter().enumerate() {
                if let Some(mut view) = view {
                    view.settle();
                    self.articles[s][a] = Arc::new(view);
                }
            }
        }
        self.recount_verdicts();
    }
}

fn remember_version(history: &mut Vec<Version>, hash: crate::fingerprint::Hash, seen: UnixMillis) {
    match history.iter_mut().find(|v| v.hash == hash) {
        Some(version) => version.last_seen = version.last_seen.max(seen),
        None => history.push(Version { hash, last_seen: seen }),
    }
    history.sort_by_key(|v| v.last_seen);
    if history.len() > MAX_VERSIONS {
        history.drain(..history.len() - MAX_VERSIONS);
    }
}

fn base_view(tracker: &mut BaseTracker, down_after: u32, now: UnixMillis) -> BaseView {
    let verdict_counts = tracker.verdict_counts;
    let [same, stale, diverged, _unknown, unreachable] = verdict_counts;
    let probed: usize = verdict_counts.iter().sum();
    let threshold = if tracker.ever_up { down_after } else { 1 };
    let state = if probed == 0 || tracker.consecutive_failures >= threshold {
        BaseState::Down
    } else if unreachable + stale + diverged > 0 {
        BaseState::Degraded
    } else {
        BaseState::Up
    };
    let mut sorted: Vec<u32> = tracker.latencies.iter().copied().collect();
    sorted.sort_unstable();
    BaseView {
        state,
        uptime: tracker.uptime.uptime(now),
        latency_p50: percentile(&sorted, 50),
        latency_p95: percentile(&sorted, 95),
        verdict_counts,
        healthy: state != BaseState::Down && same * 2 > probed,
        probes: tracker.counters.clone(),
    }
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[u32], p: usize) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    Some(sorted[rank - 1])
}

fn log_transition(site: &str, base: &str, tracker: &BaseTracker, view: &BaseView) {
    let [same, stale, diverged, _, unreachable] = view.verdict_counts;
    let name = |s: BaseState| match s {
        BaseState::Up => "up",
        BaseState::Degraded => "degraded",
        BaseState::Down => "down",
    };
    let from = tracker.last_state.map_or("unknown", name);
    let to = name(view.state);
    let failure = tracker.last_failure.map_or("none", |o| o.as_str());
    let reason = match view.state {
        BaseState::Up => format!("{same} articles same"),
        BaseState::Degraded => format!(
            "{same} same, {stale} stale, {diverged} diverged, {unreachable} unreachable (last failure: {failure})"
        ),
        BaseState::Down => format!(
            "{} consecutive failed probes, last: {failure}",
            tracker.consecutive_failures
        ),
    };
    if view.state == BaseState::Up {
        tracing::info!(site, base, from, to, %reason, "base state changed");
    } else {
        tracing::warn!(site, base, from, to, %reason, "base state changed");
    }
}

/// Runs the engine as a task: results and round events in, snapshots out.
/// Returns the engine when every sender is gone.
pub fn spawn(
    mut engine: Engine,
    writer: Option<StoreWriter>,
    heartbeat: Option<Arc<Heartbeat>>,
) -> (mpsc::Sender<EngineEvent>, JoinHandle<Engine>) {
    let (events, mut receiver) = mpsc::channel::<EngineEvent>(1024);
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(PUBLISH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut dirty = false;
        loop {
            tokio::select! {
                event = receiver.recv() => match event {
                    Some(EngineEvent::Result(result)) => {
                        if let (Some(record), Some(writer)) = (engine.apply(result), &writer) {
                            writer.record(record).await;
                        }
                        dirty = true;
                    }
                    Some(EngineEvent::Reconfigure { catalog, down_after, retention }) => {
                        engine.reconfigure(catalog, down_after, retention);
                        dirty = false;
                    }
                    Some(EngineEvent::RoundStarted { at }) => engine.round_started(at),
                    Some(EngineEvent::RoundFinished { at, duration }) => {
                        engine.round_finished(at, duration);
                        engine.publish(true);
                        dirty = false;
                    }
                    None => break,
                },
                _ = tick.tick() => {
                    if let Some(heartbeat) = &heartbeat {
                        heartbeat.beat(Loop::Engine);
                    }
                    if dirty {
                        engine.publish(false);
                        dirty = false;
                    }
                }
            }
        }
        engine.publish(false);
        engine
    });
    (events, task)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let samples: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&samples, 50), Some(50));
        assert_eq!(percentile(&samples, 95), Some(95));
        assert_eq!(percentile(&[7], 95), Some(7));
        assert_eq!(percentile(&[], 50), None);
    }
}
