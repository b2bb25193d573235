//! The engine owns the live state: it folds probe results into article
//! views, tracks each base's health, keeps evidence, and publishes
//! snapshots.
//!
//! It runs as one task fed by a channel, so the state has a single owner
//! and needs no locks; readers only ever see published snapshots. (The
//! evidence store sits behind a mutex because the status endpoint reads it
//! directly; it holds a few KiB per differing base and article.)

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::clock::{UnixMillis, millis, now_ms};
use crate::probe::ProbeDetail;
use crate::state::evidence::{EvidenceStore, Judged};
use crate::state::liveness::{Heartbeat, Loop};
use crate::state::snapshot::{
    ArticleView, BaseState, BaseView, Catalog, ProbeCounters, RoundInfo, SiteView, Snapshot, redirect_order,
};
use crate::state::tiers::{Tier, failed_on};
use crate::state::uptime::UptimeCounter;
use crate::store::{ProbeRecord, StoreWriter, StoredState};
use crate::verdict::observation::{Observation, Outcome};
use crate::verdict::{NotFoundPage, Reason, Verdict, Version};

/// Recent ok latencies kept per base for the percentiles.
pub const LATENCY_SAMPLES: usize = 256;
/// Versions of one article kept for stale detection: bounds memory when a
/// primary's page changes on every request.
const MAX_VERSIONS: usize = 32;
/// Snapshots are published at most this often while results stream in.
const PUBLISH_EVERY: Duration = Duration::from_millis(200);
/// Observations that grew too old are looked for this often.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

pub type Evidence = Arc<Mutex<EvidenceStore>>;

/// One probe's result, addressed by indices into the catalog its round ran
/// under (a reload may have replaced it since).
#[derive(Debug)]
pub struct ProbeResult {
    pub catalog: Arc<Catalog>,
    pub site: usize,
    pub base: usize,
    pub article: usize,
    pub observation: Observation,
    pub detail: Option<Box<ProbeDetail>>,
    /// The lease it was probed under, when instances share the work.
    pub lease: Option<i64>,
}

#[derive(Debug)]
pub enum EngineEvent {
    Result(ProbeResult),
    /// What a base answered for a path that cannot exist.
    NotFound {
        catalog: Arc<Catalog>,
        site: usize,
        base: usize,
        observation: Observation,
    },
    RoundStarted {
        at: UnixMillis,
    },
    RoundFinished {
        at: UnixMillis,
        duration: Duration,
    },
    /// Results other instances sharing the store probed (read back from
    /// it): folded in like this instance's own, but not written again.
    Shared(Vec<ProbeRecord>),
    /// A reloaded config: what is still configured keeps its state.
    Reconfigure {
        catalog: Arc<Catalog>,
        down_after: u32,
        retention: Duration,
    },
}

#[derive(Debug, Default)]
struct BaseTracker {
    /// Seen answering since start (or in the restored state): only a base
    /// that was up needs `down_after` failures to go down; one never seen
    /// up is down at its first failure.
    ever_up: bool,
    /// Failures of the base itself in a row (see
    /// [`Outcome::is_transport_failure`]); any other answer resets it.
    consecutive_failures: u32,
    latencies: VecDeque<u32>,
    uptime: UptimeCounter,
    last_state: Option<BaseState>,
    counters: ProbeCounters,
    /// The latest failed outcome, for the log line when the base goes down.
    last_failure: Option<Outcome>,
    /// Articles per verdict and per reason, kept up to date result by
    /// result, so publishing does not walk every article.
    verdict_counts: [usize; 6],
    reason_counts: [usize; 8],
    /// The base's page for a path that cannot exist, when it serves one.
    not_found: Option<NotFoundPage>,
    /// Since when its canaries all fail the same way, if they do.
    canaries_failed_since: Option<UnixMillis>,
    /// When they last started to fail, even if they pass again now.
    canaries_last_failed_at: Option<UnixMillis>,
}

/// Takes away the verdicts of bases that failed as a whole (see
/// [`ArticleView::distrust_before`]).
fn distrust_failed(trackers: &[BaseTracker], view: &mut ArticleView) {
    for (base, tracker) in trackers.iter().enumerate() {
        if let Some(since) = tracker.canaries_failed_since {
            view.distrust_before(base, since);
        }
    }
}

/// Adds (`sign` 1) or removes (-1) `view`'s verdicts to its bases' counts.
fn count_verdicts(trackers: &mut [BaseTracker], view: &ArticleView, sign: isize) {
    for (base, tracker) in trackers.iter_mut().enumerate() {
        if let Some(verdict) = view.verdict(base) {
            let count = &mut tracker.verdict_counts[verdict.index()];
            *count = count.saturating_add_signed(sign);
        }
        if let Some(reason) = view.reason(base) {
            let count = &mut tracker.reason_counts[reason.index()];
            *count = count.saturating_add_signed(sign);
        }
    }
}

pub struct Engine {
    catalog: Arc<Catalog>,
    articles: Vec<Vec<Arc<ArticleView>>>,
    trackers: Vec<Vec<BaseTracker>>,
    /// Per site: when the oldest observation it holds grows too old (or
    /// earlier); a sweep then settles the site again.
    expiry: Vec<UnixMillis>,
    down_after: u32,
    retention: Duration,
    round: RoundInfo,
    published: Arc<ArcSwap<Snapshot>>,
    evidence: Evidence,
    /// Bases (site, base) whose canaries just started to fail, for the
    /// shared work queue to make all their pairs due.
    failed_bases: Vec<(Arc<str>, Arc<str>)>,
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
            expiry: vec![UnixMillis::MAX; catalog.sites.len()],
            catalog,
            articles,
            trackers,
            down_after,
            retention,
            round: RoundInfo::default(),
            published: Arc::new(ArcSwap::new(empty)),
            evidence: Evidence::default(),
            failed_bases: Vec::new(),
        };
        if let Some(restored) = restored {
            engine.restore(restored);
            engine.adopt_restored_states();
        }
        engine.publish(false);
        engine
    }

    /// Takes each base's state from the restored observations as the last
    /// one logged, so the first change after a restart reads "from=down",
    /// not "from=unknown", and an unchanged state is not logged again.
    fn adopt_restored_states(&mut self) {
        let now = now_ms();
        for trackers in &mut self.trackers {
            for tracker in trackers.iter_mut() {
                let view = base_view(tracker, self.down_after, now);
                if view.verdict_counts.iter().sum::<usize>() > 0 {
                    tracker.last_state = Some(view.state);
                }
            }
        }
    }

    pub fn snapshots(&self) -> Arc<ArcSwap<Snapshot>> {
        self.published.clone()
    }

    /// The evidence store, shared with the status endpoint and the scheduler.
    pub fn evidence(&self) -> Evidence {
        self.evidence.clone()
    }

    fn not_found_pages(&self, site: usize) -> Vec<Option<NotFoundPage>> {
        self.trackers[site].iter().map(|t| t.not_found).collect()
    }

    /// Folds one probe result in and returns the record to store; None
    /// when a reload removed what it was about.
    pub fn apply(&mut self, result: ProbeResult) -> Option<ProbeRecord> {
        let (site, base, article) = self.locate(&result.catalog, result.site, result.base, result.article)?;
        let mut observation = result.observation;
        let meta = &self.catalog.sites[site];
        let now = now_ms();
        let rules = meta.rules(self.catalog.max_age, now);
        let not_found = self.not_found_pages(site);
        let slot = &mut self.articles[site][article];
        let mut view = ArticleView::clone(slot);
        if !observation.is_ok() {
            observation.last_ok_at = view.observation(base).and_then(|o| o.last_ok_at);
        }
        view.record(base, &observation);
        // Only a page that may stand as the reference joins the history,
        // so a block page on the primary never makes mirrors `stale`.
        let trusted = base == 0 && view.primary_trusted(&rules, not_found[0].as_ref());
        let cutoff = observation.checked_at - millis(self.retention);
        if trusted || view.history.iter().any(|v| v.last_seen < cutoff) {
            let mut history = view.history.to_vec();
            if let (true, Some(hash)) = (trusted, observation.hash) {
                remember_version(
                    &mut history,
                    Version {
                        hash,
                        page: observation.page,
                        rules: observation.rules,
                        last_seen: observation.checked_at,
                    },
                );
            }
            history.retain(|v| v.last_seen >= cutoff);
            view.history = history.into();
        }
        let tier = self.catalog.tier_of(site, article, &view, now);
        self.round.probes_by_tier[tier.index()] += 1;
        let max_age = self.catalog.tiers.max_age(tier, self.catalog.max_age);
        view.settle(&meta.rules(max_age, now), &not_found);
        distrust_failed(&self.trackers[site], &mut view);
        let trackers = &mut self.trackers[site];
        count_verdicts(trackers, slot, -1);
        count_verdicts(trackers, &view, 1);
        let view = Arc::new(view);
        *slot = view.clone();
        self.expiry[site] = self.expiry[site].min(observation.checked_at + millis(max_age));

        let tracker = &mut trackers[base];
        tracker.uptime.record(observation.checked_at, observation.is_ok());
        tracker.counters.count(observation.outcome, observation.latency_ms);
        if observation.is_ok() {
            if tracker.latencies.len() == LATENCY_SAMPLES {
                tracker.latencies.pop_front();
            }
            tracker.latencies.push_back(observation.latency_ms);
        }
        if observation.outcome.is_transport_failure(observation.http_status) {
            tracker.consecutive_failures = tracker.consecutive_failures.saturating_add(1);
            tracker.last_failure = Some(observation.outcome);
        } else if observation.outcome != Outcome::RateLimited {
            // The base answered (a 404 or a block page is an answer): it is
            // reachable. A 429 says only that it is busy.
            tracker.ever_up = true;
            tracker.consecutive_failures = 0;
        }
        self.record_evidence(site, article, base, &view, result.detail);
        let canary = self.catalog.sites[site].is_canary(article);
        if canary {
            self.judge_canaries(site, base, now);
        }
        // What the queue waits before the pair is due again: the hot rate
        // for canaries, for a failing base's articles, and for what a base
        // failed on until it is `same` again (as the rounds do).
        let tracker = &self.trackers[site][base];
        let failed_on = failed_on(
            tracker.canaries_last_failed_at,
            observation.checked_at,
            view.verdict(base),
        );
        let hot = canary || tracker.canaries_failed_since.is_some() || failed_on;
        let period = self.catalog.tiers.interval(if hot { Tier::Hot } else { tier });
        let meta = &self.catalog.sites[site];
        Some(ProbeRecord {
            site: meta.name.clone(),
            base: meta.base_names[base].clone(),
            article: meta.articles[article].clone(),
            is_primary: base == 0,
            trusted,
            observation,
            verdict: view.verdict(base),
            lease: result.lease,
            period_ms: Some(millis(period)),
        })
    }

    /// Folds in what other instances probed; a result no newer than the
    /// one held (this instance's own, or one already folded) is skipped.
    /// Returns how many were new.
    pub fn apply_shared(&mut self, records: Vec<ProbeRecord>) -> usize {
        let mut applied = 0;
        for record in records {
            let Some((site, base, article)) = self.catalog.locate(&record.site, &record.base, &record.article) else {
                continue;
            };
            let held = self.articles[site][article].observation(base).map(|o| o.checked_at);
            if held.is_some_and(|at| at >= record.observation.checked_at) {
                continue;
            }
            let result = ProbeResult {
                catalog: self.catalog.clone(),
                site,
                base,
                article,
                observation: record.observation,
                detail: None,
                lease: None,
            };
            applied += usize::from(self.apply(result).is_some());
        }
        applied
    }

    /// Keeps the text a probe brought and brings the article's evidence up
    /// to date.
    fn record_evidence(
        &mut self,
        site: usize,
        article: usize,
        probed: usize,
        view: &ArticleView,
        detail: Option<Box<ProbeDetail>>,
    ) {
        let meta = &self.catalog.sites[site];
        let (name, path) = (&meta.name, &meta.articles[article]);
        let Ok(mut store) = self.evidence.lock() else {
            return;
        };
        let observation = view.observation(probed);
        if let Some(detail) = detail {
            if let (Some(text), Some(hash)) = (detail.text, observation.as_ref().and_then(|o| o.hash)) {
                store.keep_text(name, path, hash, text);
            }
            if let Some(rule) = detail.rule {
                let hash = observation.as_ref().and_then(|o| o.hash);
                store.keep_rule(name, path, &meta.base_names[probed], hash, rule);
            }
            if let Some(leaks) = detail.leaks {
                store.keep_leaks(name, path, &meta.base_names[probed], leaks);
            }
            // Only the primary's pages say where the site's mirrors are.
            if probed == 0 {
                store.keep_proposals(name, path, &detail.alternates, now_ms());
            }
        }
        for (base, base_name) in meta.base_names.iter().enumerate() {
            let (Some(verdict), Some(observation)) = (view.verdict(base), view.observation(base)) else {
                continue;
            };
            store.update(
                name,
                path,
                base_name,
                Judged {
                    verdict,
                    reason: view.reason(base),
                    rule: None,
                    hash: observation.hash,
                    page: observation.page,
                    checked_at: observation.checked_at,
                    reference: view.reference.as_ref(),
                },
            );
        }
    }

    /// A base's answer to a path that cannot exist: a page there is its
    /// soft-404 page, which verdicts then recognise.
    pub fn not_found(&mut self, catalog: &Arc<Catalog>, site: usize, base: usize, observation: &Observation) {
        let Some((site, base, _)) = self.locate(catalog, site, base, usize::MAX) else {
            return;
        };
        let page = match (observation.is_ok(), observation.hash) {
            (true, Some(hash)) => Some(NotFoundPage {
                hash,
                page: observation.page,
            }),
            _ => None,
        };
        if self.trackers[site][base].not_found == page {
            return;
        }
        self.trackers[site][base].not_found = page;
        self.settle_site(site, now_ms());
    }

    /// A base whose canaries all fail the same way (all unreachable, or all
    /// diverged for one reason: a block page, a parked domain, other
    /// content) has failed as a whole: settles the site again so what it
    /// served before stops counting, and back when one is `same` again.
    fn judge_canaries(&mut self, site: usize, base: usize, now: UnixMillis) {
        let meta = &self.catalog.sites[site];
        let views = &self.articles[site];
        let mut failures = meta
            .canaries
            .iter()
            .map(|&a| (views[a].verdict(base), views[a].reason(base)));
        let first = failures.next();
        let failed = match first {
            Some((Some(Verdict::Unreachable | Verdict::Diverged), _)) => failures.all(|f| Some(f) == first),
            _ => false,
        };
        let tracker = &mut self.trackers[site][base];
        if failed == tracker.canaries_failed_since.is_some() {
            return;
        }
        tracker.canaries_failed_since = failed.then_some(now);
        if failed {
            tracker.canaries_last_failed_at = Some(now);
            self.failed_bases
                .push((meta.name.clone(), meta.base_names[base].clone()));
            let (verdict, reason) = first.unwrap_or_default();
            tracing::warn!(
                site = %meta.name,
                base = %meta.base_names[base],
                verdict = verdict.map_or("", |v| v.as_str()),
                reason = reason.map_or("", |r| r.as_str()),
                canaries = meta.canaries.len(),
                "every canary of the base fails the same way: not trusting what it served before, probing all its articles"
            );
        } else {
            tracing::info!(site = %meta.name, base = %meta.base_names[base], "the base's canaries pass again");
        }
        self.settle_site(site, now);
    }

    /// Settles every article of a site again (its rules or the clock moved).
    fn settle_site(&mut self, site: usize, now: UnixMillis) {
        let meta = &self.catalog.sites[site];
        let not_found = self.not_found_pages(site);
        let mut expiry = UnixMillis::MAX;
        for (article, slot) in self.articles[site].iter_mut().enumerate() {
            let mut view = ArticleView::clone(slot);
            let max_age = article_max_age(&self.catalog, site, article, &view, now);
            view.settle(&meta.rules(max_age, now), &not_found);
            distrust_failed(&self.trackers[site], &mut view);
            if let Some(checked) = view.oldest_check() {
                expiry = expiry.min(checked.saturating_add(millis(max_age)));
            }
            *slot = Arc::new(view);
        }
        self.expiry[site] = expiry;
        self.recount_site(site);
    }

    /// Observations that grew older than `max_age` leave their verdicts
    /// `unknown`: settles the sites where one did.
    pub fn sweep(&mut self, now: UnixMillis) -> bool {
        let mut any = false;
        for site in 0..self.catalog.sites.len() {
            if self.expiry[site] <= now {
                self.settle_site(site, now);
                any = true;
            }
        }
        any
    }

    /// The result's indices in the current catalog: the same indices when
    /// it ran under it, else found again by name. `article` may be out of
    /// range (for events about a base).
    fn locate(
        &self,
        catalog: &Arc<Catalog>,
        site: usize,
        base: usize,
        article: usize,
    ) -> Option<(usize, usize, usize)> {
        if Arc::ptr_eq(catalog, &self.catalog) {
            return Some((site, base, article));
        }
        let old = catalog.sites.get(site)?;
        let site = *self.catalog.by_name.get(&*old.name)?;
        let meta = &self.catalog.sites[site];
        let base_name = old.base_names.get(base)?;
        let base = meta.base_names.iter().position(|b| b == base_name)?;
        let article = match old.articles.get(article) {
            Some(path) => *meta.article_index.get(path)?,
            None => usize::MAX,
        };
        Some((site, base, article))
    }

    /// Switches to a reloaded config. Sites, bases and articles still
    /// configured keep their observations, history, uptime and counters;
    /// new ones start empty; removed ones are dropped. Verdicts are judged
    /// again under the new rules.
    pub fn reconfigure(&mut self, catalog: Arc<Catalog>, down_after: u32, retention: Duration) {
        let old_articles = std::mem::take(&mut self.articles);
        let mut old_trackers = std::mem::take(&mut self.trackers);
        let old = std::mem::replace(&mut self.catalog, catalog.clone());
        for meta in &catalog.sites {
            let old_site = old.by_name.get(&*meta.name).copied();
            let old_base =
                |name: &Arc<str>| old_site.and_then(|s| old.sites[s].base_names.iter().position(|b| b == name));
            // A site whose rules changed keeps no fingerprint from before
            // for reuse: their `rules` no longer match the normalizer's.
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
                    Arc::new(view)
                })
                .collect();
            self.articles.push(articles);
            self.trackers.push(trackers);
        }
        self.expiry = vec![UnixMillis::MAX; catalog.sites.len()];
        self.down_after = down_after;
        self.retention = retention;
        let now = now_ms();
        for site in 0..catalog.sites.len() {
            self.settle_site(site, now);
        }
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
                        let examples = examples(meta, articles, base_index);
                        log_transition(&meta.name, &meta.base_names[base_index], tracker, &view, &examples);
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

    fn recount_site(&mut self, site: usize) {
        let trackers = &mut self.trackers[site];
        for tracker in trackers.iter_mut() {
            tracker.verdict_counts = [0; 6];
            tracker.reason_counts = [0; 8];
        }
        for view in &self.articles[site] {
            count_verdicts(trackers, view, 1);
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
                remember_version(
                    histories.entry(at).or_default(),
                    Version {
                        hash: version.hash,
                        page: version.page,
                        rules: version.rules,
                        last_seen: version.last_seen,
                    },
                );
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
            let observation = &record.observation;
            if !observation.outcome.is_transport_failure(observation.http_status) {
                self.trackers[s][b].ever_up = true;
            }
            own(&mut views, shared, (s, a)).record(b, observation);
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
                if let Some(view) = view {
                    self.articles[s][a] = Arc::new(view);
                }
            }
        }
        // Judged by the clock now: what is older than max_age is unknown
        // until probed again.
        let now = now_ms();
        for site in 0..self.catalog.sites.len() {
            self.settle_site(site, now);
        }
    }
}

/// How old an observation of `article` may be and still count: longer for
/// an article whose tier probes it less often.
fn article_max_age(catalog: &Catalog, site: usize, article: usize, view: &ArticleView, now: UnixMillis) -> Duration {
    catalog
        .tiers
        .max_age(catalog.tier_of(site, article, view, now), catalog.max_age)
}

fn remember_version(history: &mut Vec<Version>, version: Version) {
    match history.iter_mut().find(|v| v.hash == version.hash) {
        Some(known) => {
            known.last_seen = known.last_seen.max(version.last_seen);
            known.page = version.page;
        }
        None => history.push(version),
    }
    history.sort_by_key(|v| v.last_seen);
    if history.len() > MAX_VERSIONS {
        history.drain(..history.len() - MAX_VERSIONS);
    }
}

fn base_view(tracker: &mut BaseTracker, down_after: u32, now: UnixMillis) -> BaseView {
    let verdict_counts = tracker.verdict_counts;
    let same = verdict_counts[Verdict::Same.index()];
    // Not `missing`: a mirror that has not copied the newest articles yet
    // still serves the others, and a 404 says nothing about the host.
    let not_fine = [Verdict::Stale, Verdict::Diverged, Verdict::Unreachable]
        .iter()
        .map(|v| verdict_counts[v.index()])
        .sum::<usize>();
    let probed: usize = verdict_counts.iter().sum();
    let threshold = if tracker.ever_up { down_after } else { 1 };
    let state = if probed == 0 || tracker.consecutive_failures >= threshold {
        BaseState::Down
    } else if not_fine > 0 {
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
        reason_counts: tracker.reason_counts,
        healthy: state != BaseState::Down && same * 2 > probed,
        probes: tracker.counters.clone(),
        canaries_failed: tracker.canaries_failed_since.is_some(),
        canaries_failed_at: tracker.canaries_last_failed_at,
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

/// Up to three of a base's articles that are not fine, with what they are.
fn examples(meta: &crate::state::snapshot::SiteMeta, articles: &[Arc<ArticleView>], base: usize) -> Vec<String> {
    articles
        .iter()
        .zip(&meta.articles)
        .filter_map(|(view, path)| {
            let verdict = view.verdict(base)?;
            if matches!(verdict, Verdict::Same | Verdict::Unknown) {
                return None;
            }
            let what = view.reason(base).map_or(verdict.as_str(), Reason::as_str);
            Some(format!("{path} ({what})"))
        })
        .take(3)
        .collect()
}

fn log_transition(site: &str, base: &str, tracker: &BaseTracker, view: &BaseView, examples: &[String]) {
    let counts = view.verdict_counts;
    let count = |v: Verdict| counts[v.index()];
    let from = tracker.last_state.map_or("unknown", BaseState::as_str);
    let to = view.state.as_str();
    let failure = tracker.last_failure.map_or("none", |o| o.as_str());
    let reasons: Vec<String> = Reason::ALL
        .iter()
        .zip(view.reason_counts)
        .filter(|(_, n)| *n > 0)
        .map(|(reason, n)| format!("{}: {n}", reason.as_str()))
        .collect();
    // Up to three articles that show it, e.g. "/a (diverged: block_page)".
    let articles = examples.join(", ");
    let reason = match view.state {
        BaseState::Up => format!("{} articles same", count(Verdict::Same)),
        BaseState::Degraded => format!(
            "{} same, {} stale, {} diverged{}, {} missing, {} unreachable",
            count(Verdict::Same),
            count(Verdict::Stale),
            count(Verdict::Diverged),
            if reasons.is_empty() {
                String::new()
            } else {
                format!(" ({})", reasons.join(", "))
            },
            count(Verdict::Missing),
            count(Verdict::Unreachable),
        ),
        BaseState::Down => format!(
            "{} consecutive failed probes, last: {failure}",
            tracker.consecutive_failures
        ),
    };
    if view.state == BaseState::Up {
        tracing::info!(site, base, from, to, %reason, articles, "base state changed");
    } else {
        tracing::warn!(site, base, from, to, %reason, articles, "base state changed");
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
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut dirty = false;
        loop {
            tokio::select! {
                event = receiver.recv() => match event {
                    Some(EngineEvent::Result(result)) => {
                        if let (Some(record), Some(writer)) = (engine.apply(result), &writer) {
                            writer.record(record).await;
                        }
                        for (site, base) in std::mem::take(&mut engine.failed_bases) {
                            if let Some(writer) = writer.clone() {
                                tokio::spawn(async move {
                                    if let Err(error) = writer.work_due_now(site, base).await {
                                        tracing::debug!(%error, "could not make a failed base's pairs due");
                                    }
                                });
                            }
                        }
                        dirty = true;
                    }
                    Some(EngineEvent::Shared(records)) => {
                        dirty |= engine.apply_shared(records) > 0;
                    }
                    Some(EngineEvent::NotFound { catalog, site, base, observation }) => {
                        engine.not_found(&catalog, site, base, &observation);
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
                _ = sweep.tick() => {
                    if engine.sweep(now_ms()) {
                        engine.publish(false);
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
    use crate::fingerprint::Hash;

    #[test]
    fn percentiles() {
        let samples: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&samples, 50), Some(50));
        assert_eq!(percentile(&samples, 95), Some(95));
        assert_eq!(percentile(&[7], 95), Some(7));
        assert_eq!(percentile(&[], 50), None);
    }

    #[test]
    fn hashes_fit_the_version_history() {
        let mut history = Vec::new();
        for n in 0..40u8 {
            remember_version(
                &mut history,
                Version {
                    hash: Hash([n; 32]),
                    page: Default::default(),
                    rules: 0,
                    last_seen: i64::from(n),
                },
            );
        }
        assert_eq!(history.len(), MAX_VERSIONS);
        assert_eq!(history.last().unwrap().hash, Hash([39; 32]));
    }
}
