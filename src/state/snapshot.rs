//! The in-memory state that redirects and status pages are served from.
//!
//! A [`Snapshot`] is immutable and published through an `ArcSwap`: request
//! handlers load the current one without locks and never touch the store.
//! Per-article views are individually `Arc`ed, so publishing after a batch of
//! probes copies pointers, not observations. The [`Catalog`] is the part
//! derived from config alone and is shared by every snapshot.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::clock::UnixMillis;
use crate::config::Config;
use crate::fingerprint::{Hash, Normalizer, PageFacts, RawHash, SiteSpec};
use crate::origin::Origin;
use crate::state::uptime::Uptime;
use crate::verdict::observation::{Observation, Outcome, Validators};
use crate::verdict::{self, NotFoundPage, Reason, Reference, Seen, Verdict, Version};

/// Config-derived lookups, built once per config.
#[derive(Debug)]
pub struct Catalog {
    pub sites: Vec<SiteMeta>,
    pub by_name: HashMap<String, usize>,
    /// Base origin (ASCII serialization) -> (site, base).
    pub by_origin: HashMap<String, (usize, usize)>,
    pub interval: Duration,
    /// Observations older than this say nothing (`[probe] max_age`).
    pub max_age: Duration,
    /// How often each article is probed by its tier (`[schedule]`).
    pub tiers: crate::state::tiers::TierPolicy,
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
    /// The image the reader-side probe page loads from each base.
    pub probe_asset: Arc<str>,
    /// Each article's own date, or else when this catalog's line first
    /// saw it (see [`Catalog::inherit_first_seen`]): what its tier starts from.
    pub dated: Vec<UnixMillis>,
    /// The newest `[schedule] canary_articles` articles: probed on every
    /// base every round, whatever their tier, and what says whether a base
    /// has failed as a whole.
    pub canaries: Vec<usize>,
    /// One bit per article: a reader asked for it since the last round
    /// began (see [`SiteMeta::mark_asked`]).
    asked: Box<[AtomicU64]>,
}

impl SiteMeta {
    /// How this site's pages are judged at `now`.
    pub fn rules(&self, max_age: Duration, now: UnixMillis) -> verdict::Rules {
        verdict::Rules {
            key: self.normalizer.key(),
            has_selector: self.normalizer.has_selector(),
            max_age_ms: max_age.as_millis().min(i64::MAX as u128) as i64,
            now,
        }
    }

    fn choose_canaries(&mut self, count: usize) {
        let mut newest: Vec<usize> = (0..self.articles.len()).collect();
        // Newest first; of equal dates, the earlier listed (the configured
        // articles, then discovery's newest first).
        let newer = |a: &usize, b: &usize| self.dated[*b].cmp(&self.dated[*a]).then(a.cmp(b));
        if count < newest.len() && count > 0 {
            newest.select_nth_unstable_by(count - 1, newer);
        }
        newest.truncate(count);
        newest.sort_unstable();
        self.canaries = newest;
    }

    pub fn is_canary(&self, article: usize) -> bool {
        self.canaries.binary_search(&article).is_ok()
    }

    /// A hint from the redirect path, which must not wait on anything: a
    /// plain load first, so an article already marked costs no write to a
    /// shared cache line.
    pub fn mark_asked(&self, article: usize) {
        if let Some(word) = self.asked.get(article / 64) {
            let bit = 1u64 << (article % 64);
            if word.load(Ordering::Relaxed) & bit == 0 {
                word.fetch_or(bit, Ordering::Relaxed);
            }
        }
    }

    /// The articles asked for since the last call, one bit each, and clears them.
    pub fn take_asked(&self) -> Vec<u64> {
        self.asked.iter().map(|word| word.swap(0, Ordering::Relaxed)).collect()
    }
}

impl Catalog {
    /// The indices of (site, base, article) named as the store names them.
    pub fn locate(&self, site: &str, base: &str, article: &str) -> Option<(usize, usize, usize)> {
        let &site_index = self.by_name.get(site)?;
        let meta = &self.sites[site_index];
        let base = meta.base_names.iter().position(|b| **b == *base)?;
        let &article = meta.article_index.get(article)?;
        Some((site_index, base, article))
    }

    pub fn new(config: &Config) -> Self {
        let now = crate::clock::now_ms();
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
                let dated = site
                    .articles
                    .iter()
                    .map(|a| site.article_dates.get(a).copied().unwrap_or(now))
                    .collect();
                let article_index = articles.iter().enumerate().map(|(i, a)| (a.clone(), i)).collect();
                let normalizer = Normalizer::new(SiteSpec {
                    primary: &site.primary,
                    bases: &bases,
                    aliases: &site.aliases,
                    selector: site.content_selector.as_ref(),
                    exclude: &site.content_exclude,
                    fingerprints: config.verdicts.blockpage_fingerprints.clone(),
                })
                .with_alternate_phrases(&site.alternate_phrases);
                let mut meta = SiteMeta {
                    name: site.name.as_str().into(),
                    base_names: bases.iter().map(|b| Arc::from(b.as_str())).collect(),
                    normalizer,
                    bases,
                    articles,
                    article_index,
                    prefer_primary: site.prefer_primary,
                    probe_asset: site.probe_asset.as_str().into(),
                    asked: (0..site.articles.len().div_ceil(64))
                        .map(|_| AtomicU64::new(0))
                        .collect(),
                    dated,
                    canaries: Vec::new(),
                };
                meta.choose_canaries(config.schedule.canary_articles);
                meta
            })
            .collect();
        Catalog {
            sites,
            by_name,
            by_origin,
            interval: config.probe.interval,
            max_age: config.probe.max_age,
            tiers: crate::state::tiers::TierPolicy::new(config.probe.interval, config.schedule.clone()),
        }
    }

    /// Articles without a date of their own keep the first-seen time the
    /// catalog before this one gave them, so a reload or a discovery run
    /// does not make the whole archive new again.
    pub fn inherit_first_seen(&mut self, previous: &Catalog, config: &Config) {
        for (meta, site) in self.sites.iter_mut().zip(&config.sites) {
            let Some(&old) = previous.by_name.get(&*meta.name) else {
                continue;
            };
            let old = &previous.sites[old];
            for (i, article) in meta.articles.iter().enumerate() {
                if !site.article_dates.contains_key(&**article)
                    && let Some(&j) = old.article_index.get(article)
                {
                    meta.dated[i] = old.dated[j];
                }
            }
            meta.choose_canaries(config.schedule.canary_articles);
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

impl BaseState {
    pub const ALL: [BaseState; 3] = [BaseState::Up, BaseState::Degraded, BaseState::Down];

    /// The name `/status`, the metrics and the logs use.
    pub fn as_str(self) -> &'static str {
        match self {
            BaseState::Up => "up",
            BaseState::Degraded => "degraded",
            BaseState::Down => "down",
        }
    }
}

/// One article across all bases of its site.
///
/// A million articles on four bases means four million of these slots, so
/// the layout is compact: one allocation for the per-base slots, the
/// primary's history shared between successive views, and the redirect
/// order derived from the verdicts rather than stored.
#[derive(Clone, Debug)]
pub struct ArticleView {
    /// The primary's trusted versions within retention, newest last.
    pub history: Arc<[Version]>,
    pub reference: Option<Reference>,
    bases: Box<[BaseSlot]>,
}

/// The latest probe of one base, and its verdict: an [`Observation`] laid
/// out flat, without the `Option`s' padding.
#[derive(Clone, Debug)]
struct BaseSlot {
    /// None until probed.
    outcome: Option<Outcome>,
    verdict: Option<Verdict>,
    reason: Option<Reason>,
    /// 0 when there was no response.
    http_status: u16,
    latency_ms: u32,
    page: PageFacts,
    /// Both hashes mean something only for an ok outcome, as in [`Observation`].
    normalized: Hash,
    raw: RawHash,
    rules: u64,
    checked_at: UnixMillis,
    /// `NEVER` when the base has not served the article ok.
    last_ok_at: UnixMillis,
    validators: Option<Validators>,
}

const NEVER: UnixMillis = UnixMillis::MIN;

impl BaseSlot {
    const UNPROBED: BaseSlot = BaseSlot {
        outcome: None,
        verdict: None,
        reason: None,
        http_status: 0,
        latency_ms: 0,
        page: PageFacts {
            text_len: 0,
            title_words: 0,
            flags: 0,
            class: None,
        },
        normalized: Hash([0; 32]),
        raw: RawHash([0; 32]),
        rules: 0,
        checked_at: 0,
        last_ok_at: NEVER,
        validators: None,
    };

    fn observation(&self) -> Option<Observation> {
        let outcome = self.outcome?;
        let ok = outcome == Outcome::Ok;
        Some(Observation {
            outcome,
            http_status: (self.http_status != 0).then_some(self.http_status),
            latency_ms: self.latency_ms,
            raw_hash: ok.then_some(self.raw),
            hash: ok.then_some(self.normalized),
            page: self.page,
            rules: self.rules,
            checked_at: self.checked_at,
            last_ok_at: (self.last_ok_at != NEVER).then_some(self.last_ok_at),
            validators: self.validators.clone(),
        })
    }

    /// What the last probe saw, for the reference and the verdicts.
    fn seen(&self) -> Option<Seen> {
        let outcome = self.outcome?;
        Some(Seen {
            outcome,
            http_status: (self.http_status != 0).then_some(self.http_status),
            hash: (outcome == Outcome::Ok).then_some(self.normalized),
            page: self.page,
            rules: self.rules,
            checked_at: self.checked_at,
        })
    }
}

impl ArticleView {
    pub fn new(bases: usize) -> Self {
        ArticleView {
            history: Arc::new([]),
            reference: None,
            bases: vec![BaseSlot::UNPROBED; bases].into_boxed_slice(),
        }
    }

    /// The latest probe of `base`; None until probed.
    pub fn observation(&self, base: usize) -> Option<Observation> {
        self.bases.get(base)?.observation()
    }

    /// When `base` was last probed for the article; None until probed.
    pub fn checked_at(&self, base: usize) -> Option<UnixMillis> {
        let slot = self.bases.get(base)?;
        slot.outcome.is_some().then_some(slot.checked_at)
    }

    /// A base that failed as a whole (its canaries, since `since`) is no
    /// candidate on what it served before then: `same` becomes `unknown`
    /// until the article is probed there again.
    pub fn distrust_before(&mut self, base: usize, since: UnixMillis) {
        if let Some(slot) = self.bases.get_mut(base)
            && slot.checked_at < since
            && slot.verdict == Some(Verdict::Same)
        {
            slot.verdict = Some(Verdict::Unknown);
        }
    }

    /// None until probed.
    pub fn verdict(&self, base: usize) -> Option<Verdict> {
        self.bases.get(base)?.verdict
    }

    /// Why `base` diverges, when it does.
    pub fn reason(&self, base: usize) -> Option<Reason> {
        self.bases.get(base)?.reason
    }

    /// The oldest observation whose verdict depends on being fresh.
    pub fn oldest_check(&self) -> Option<UnixMillis> {
        self.bases
            .iter()
            .filter(|slot| slot.verdict.is_some_and(|v| v != Verdict::Unknown) || slot.outcome.is_some())
            .map(|slot| slot.checked_at)
            .min()
    }

    /// Stores `observation` as `base`'s latest; call [`Self::settle`] after.
    /// An ok observation without hashes (which [`Observation`] rules out)
    /// is kept as not ok rather than as a zero hash.
    pub fn record(&mut self, base: usize, observation: &Observation) {
        let Some(slot) = self.bases.get_mut(base) else {
            return;
        };
        let hashes = observation.raw_hash.zip(observation.hash);
        let outcome = match (observation.outcome, hashes) {
            (Outcome::Ok, None) => Outcome::HttpStatus,
            (outcome, _) => outcome,
        };
        let (raw, normalized) = hashes.unwrap_or((BaseSlot::UNPROBED.raw, BaseSlot::UNPROBED.normalized));
        *slot = BaseSlot {
            outcome: Some(outcome),
            verdict: slot.verdict,
            reason: slot.reason,
            http_status: observation.http_status.unwrap_or(0),
            latency_ms: observation.latency_ms,
            page: observation.page,
            normalized,
            raw,
            rules: observation.rules,
            checked_at: observation.checked_at,
            last_ok_at: observation.last_ok_at.unwrap_or(NEVER),
            validators: observation.validators.clone(),
        };
    }

    /// Bases to send readers to, best first: those whose verdict is `same`,
    /// in [`redirect_order`].
    pub fn candidates(&self, prefer_primary: bool) -> impl Iterator<Item = usize> + '_ {
        preference_order(self.bases.len(), prefer_primary)
            .filter(|&base| self.bases[base].verdict == Some(Verdict::Same))
    }

    /// Some base serves the reference.
    pub fn has_candidate(&self) -> bool {
        self.bases.iter().any(|slot| slot.verdict == Some(Verdict::Same))
    }

    /// Recomputes the reference and verdicts from observations and history.
    /// `not_found[b]`: base b's answer to a path that cannot exist, when it
    /// was a page (a soft 404).
    pub fn settle(&mut self, rules: &verdict::Rules, not_found: &[Option<NotFoundPage>]) {
        let seen: Vec<Option<Seen>> = self.bases.iter().map(BaseSlot::seen).collect();
        self.reference = verdict::reference(&seen, &self.history, rules, not_found);
        for (base, (slot, seen)) in self.bases.iter_mut().zip(seen).enumerate() {
            let judged = seen.map(|seen| {
                let not_found = not_found.get(base).copied().flatten();
                verdict::verdict(&seen, self.reference.as_ref(), &self.history, rules, not_found.as_ref())
            });
            slot.verdict = judged.map(|(verdict, _)| verdict);
            slot.reason = judged.and_then(|(_, reason)| reason);
        }
    }

    /// Whether the primary's latest page may stand as the reference.
    pub fn primary_trusted(&self, rules: &verdict::Rules, not_found: Option<&NotFoundPage>) -> bool {
        self.bases
            .first()
            .and_then(BaseSlot::seen)
            .is_some_and(|seen| verdict::trusted(&seen, rules, not_found, &self.history))
    }
}

/// Redirect order among qualifying bases, see [`preference_order`].
pub fn redirect_order(qualifies: &[bool], prefer_primary: bool) -> Vec<usize> {
    preference_order(qualifies.len(), prefer_primary)
        .filter(|&base| qualifies[base])
        .collect()
}

/// All of a site's `bases` in the order readers are offered them: the
/// primary first when preferred, else last (operators turn the preference
/// off when the primary is the blocked one); mirrors in config order.
fn preference_order(bases: usize, prefer_primary: bool) -> impl Iterator<Item = usize> {
    let primary = (bases > 0).then_some(0);
    let (first, last) = if prefer_primary {
        (primary, None)
    } else {
        (None, primary)
    };
    first.into_iter().chain(1..bases).chain(last)
}

#[derive(Clone, Debug)]
pub struct BaseView {
    pub state: BaseState,
    pub uptime: Uptime,
    pub latency_p50: Option<u32>,
    pub latency_p95: Option<u32>,
    /// Articles per verdict, indexed like [`Verdict::ALL`].
    pub verdict_counts: [usize; 6],
    /// Diverged articles per reason, indexed like [`Reason::ALL`].
    pub reason_counts: [usize; 8],
    /// Up, and most of its probed articles are `same`: fit for paths that
    /// are not configured articles.
    pub healthy: bool,
    pub probes: ProbeCounters,
    /// Its canaries (the newest articles) all fail the same way: what it
    /// served before is not trusted, and its articles are probed again.
    pub canaries_failed: bool,
    /// When its canaries last started to fail: an article judged there
    /// since then is probed at the hot rate until it is `same` again.
    pub canaries_failed_at: Option<UnixMillis>,
}

/// Upper bounds (seconds) of the probe duration histogram's buckets.
pub const DURATION_BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Probes of one base since start, for Prometheus counters.
#[derive(Clone, Debug, Default)]
pub struct ProbeCounters {
    /// Indexed like [`crate::verdict::observation::Outcome::ALL`].
    pub by_outcome: [u64; 10],
    /// Cumulative counts per [`DURATION_BUCKETS`] bound (`le`).
    pub duration_buckets: [u64; 11],
    pub duration_sum_ms: u64,
}

impl ProbeCounters {
    pub fn count(&mut self, outcome: crate::verdict::observation::Outcome, latency_ms: u32) {
        let index = crate::verdict::observation::Outcome::ALL
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

impl SiteView {
    /// Articles that no base serves the reference of now.
    pub fn articles_without_base(&self) -> usize {
        self.articles.iter().filter(|a| !a.has_candidate()).count()
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub struct RoundInfo {
    pub completed: u64,
    pub last_started_at: Option<UnixMillis>,
    pub last_finished_at: Option<UnixMillis>,
    pub last_duration_ms: Option<u64>,
    /// Probes since start by the tier of their article, indexed like
    /// [`crate::state::tiers::Tier::ALL`].
    pub probes_by_tier: [u64; 3],
}

#[derive(Debug)]
pub struct Snapshot {
    pub catalog: Arc<Catalog>,

    pub sites: Vec<SiteView>,
    pub round: RoundInfo,
}

/// The published snapshot: the engine stores a new one per change, and
/// request handlers, alerts and the agents' board load it lock-free.
pub type Snapshots = Arc<ArcSwap<Snapshot>>;

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(outcome: Outcome, hash: u8, checked_at: UnixMillis) -> Observation {
        let ok = outcome == Outcome::Ok;
        Observation {
            outcome,
            http_status: Some(if ok { 200 } else { 503 }),
            latency_ms: 12,
            raw_hash: ok.then_some(RawHash([hash ^ 0xff; 32])),
            hash: ok.then_some(Hash([hash; 32])),
            page: PageFacts {
                flags: if ok { PageFacts::HTML } else { 0 },
                ..PageFacts::default()
            },
            rules: 42,
            checked_at,
            last_ok_at: ok.then_some(checked_at),
            validators: Validators::new(Some("\"v1\""), None),
        }
    }

    const RULES: verdict::Rules = verdict::Rules {
        key: 42,
        has_selector: false,
        max_age_ms: 60_000,
        now: 2_000,
    };

    #[test]
    fn a_slot_gives_back_the_observation_it_was_given() {
        let mut view = ArticleView::new(3);
        let ok = probe(Outcome::Ok, 7, 1_000);
        let mut failed = probe(Outcome::Timeout, 0, 2_000);
        failed.http_status = None;
        failed.last_ok_at = Some(500);
        failed.validators = None;
        view.record(0, &ok);
        view.record(1, &failed);
        assert_eq!(view.observation(0), Some(ok));
        assert_eq!(view.observation(1), Some(failed));
        assert_eq!(view.observation(2), None);
        assert_eq!(view.observation(3), None);
    }

    #[test]
    fn an_ok_observation_without_hashes_is_not_kept_as_served() {
        let mut view = ArticleView::new(1);
        let mut broken = probe(Outcome::Ok, 1, 1_000);
        broken.hash = None;
        view.record(0, &broken);
        view.settle(&RULES, &[]);
        assert_eq!(view.observation(0).map(|o| o.is_ok()), Some(false));
        assert_eq!(view.verdict(0), Some(Verdict::Unreachable));
    }

    #[test]
    fn candidates_follow_the_redirect_order_of_same_verdicts() {
        // Bases 0, 2 and 3 serve the reference; base 1 a diverged page; base 4 is down.
        let mut view = ArticleView::new(5);
        for (base, hash) in [(0, 1), (1, 2), (2, 1), (3, 1)] {
            view.record(base, &probe(Outcome::Ok, hash, 1_000));
        }
        view.record(4, &probe(Outcome::Connect, 0, 1_000));
        view.settle(&RULES, &[]);
        let qualifies: Vec<bool> = (0..5).map(|b| view.verdict(b) == Some(Verdict::Same)).collect();
        assert_eq!(qualifies, [true, false, true, true, false]);
        for prefer_primary in [true, false] {
            let derived: Vec<usize> = view.candidates(prefer_primary).collect();
            assert_eq!(derived, redirect_order(&qualifies, prefer_primary));
        }
        assert_eq!(view.candidates(false).collect::<Vec<_>>(), [2, 3, 0]);
        assert!(view.has_candidate());
    }

    #[test]
    fn a_base_slot_stays_compact() {
        // Four million of these with a million articles on four bases. The
        // page facts, reason and rules key that verdicts need took it from
        // 120 to 144 bytes; more than that should be a decision, not drift.
        assert!(
            std::mem::size_of::<BaseSlot>() <= 144,
            "{}",
            std::mem::size_of::<BaseSlot>()
        );
    }
}
