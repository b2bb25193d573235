//! Which tier an article is in, and so how often each of its bases is
//! probed: hot articles every interval, warm and cold ones less often,
//! because an old article that has not changed almost never will.

use std::time::Duration;

use crate::clock::{UnixMillis, millis};
use crate::config::ScheduleConfig;
use crate::state::snapshot::ArticleView;
use crate::verdict::Verdict;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    Hot,
    Warm,
    Cold,
}

impl Tier {
    pub const ALL: [Tier; 3] = [Tier::Hot, Tier::Warm, Tier::Cold];

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Hot => "hot",
            Tier::Warm => "warm",
            Tier::Cold => "cold",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// `[schedule]` against `[probe] interval`.
#[derive(Clone, Debug)]
pub struct TierPolicy {
    interval: Duration,
    schedule: ScheduleConfig,
}

impl TierPolicy {
    pub fn new(interval: Duration, schedule: ScheduleConfig) -> TierPolicy {
        TierPolicy { interval, schedule }
    }

    /// `articles` is how many the site has; `dated` the article's own date
    /// (or when the daemon first saw it). A failing base changes nothing
    /// here: only the primary's versions count as content changes.
    pub fn tier(&self, articles: usize, dated: UnixMillis, view: &ArticleView, now: UnixMillis) -> Tier {
        if articles < self.schedule.hot_min_articles {
            return Tier::Hot;
        }
        let newest = dated.max(changed_at(view).unwrap_or(UnixMillis::MIN));
        let age = now.saturating_sub(newest);
        if age < millis(self.schedule.hot_for) {
            Tier::Hot
        } else if age < millis(self.schedule.warm_for) {
            Tier::Warm
        } else {
            Tier::Cold
        }
    }

    /// Older than this, the verdict behind a reader's redirect has its
    /// article probed in the next round, whatever its tier.
    pub fn max_verdict_age(&self) -> Duration {
        self.schedule.max_verdict_age
    }

    pub fn interval(&self, tier: Tier) -> Duration {
        match tier {
            Tier::Hot => self.interval,
            Tier::Warm => self.schedule.warm_interval,
            Tier::Cold => self.schedule.cold_interval,
        }
    }

    /// When a base last probed at `checked_at` is next due. Rounds start
    /// one interval apart, so a period that ends within the next half
    /// interval is taken in this round rather than a whole round late.
    pub fn next_probe_at(&self, tier: Tier, checked_at: UnixMillis) -> UnixMillis {
        checked_at.saturating_add(millis(self.interval(tier)))
    }

    pub fn due(&self, tier: Tier, checked_at: Option<UnixMillis>, now: UnixMillis) -> bool {
        checked_at.is_none_or(|at| self.next_probe_at(tier, at) <= now.saturating_add(millis(self.interval / 2)))
    }

    /// How long an observation stays usable: `[probe] max_age` is the
    /// margin past a hot article's period, and a warm or cold article's
    /// verdict keeps the same margin past its own longer period, so it
    /// does not turn unknown between its probes.
    pub fn max_age(&self, tier: Tier, max_age: Duration) -> Duration {
        max_age.saturating_add(self.interval(tier).saturating_sub(self.interval))
    }
}

/// An article's place in the schedule, for `/status`.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    pub tier: Tier,
    /// The earliest of its bases' next probes (now, for a base never probed).
    pub next_probe_at: UnixMillis,
}

/// Judged on a base since its canaries last started to fail, and not
/// `same`: probed at the hot rate until it is.
pub fn failed_on(canaries_failed_at: Option<UnixMillis>, checked_at: UnixMillis, verdict: Option<Verdict>) -> bool {
    canaries_failed_at.is_some_and(|at| checked_at >= at) && verdict != Some(Verdict::Same)
}

impl crate::state::snapshot::Catalog {
    /// The tier of `article` of `site`, whose state is `view`, at `now`.
    pub fn tier_of(&self, site: usize, article: usize, view: &ArticleView, now: UnixMillis) -> Tier {
        let meta = &self.sites[site];
        self.tiers.tier(meta.articles.len(), meta.dated[article], view, now)
    }

    pub fn plan(&self, site: usize, article: usize, view: &ArticleView, now: UnixMillis) -> Plan {
        let meta = &self.sites[site];
        let tier = self.tier_of(site, article, view, now);
        let next_probe_at = (0..meta.bases.len())
            .map(|base| {
                view.checked_at(base)
                    .map_or(now, |at| self.tiers.next_probe_at(tier, at))
            })
            .min()
            .unwrap_or(now);
        Plan { tier, next_probe_at }
    }

    /// Each tier's share of a round: how many of `bases` probes an article
    /// of `tier` costs per `[probe] interval` on average.
    pub fn probes_per_interval(&self, tier: Tier, bases: usize) -> f64 {
        let period = self.tiers.interval(tier).as_secs_f64().max(1e-3);
        bases as f64 * self.interval.as_secs_f64() / period
    }
}

/// When the primary last served another version than its current one:
/// the moment its content changed, as near as the probes saw it.
fn changed_at(view: &ArticleView) -> Option<UnixMillis> {
    let history = &view.history;
    (history.len() >= 2).then(|| history[history.len() - 2].last_seen)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint::Hash;
    use crate::verdict::Version;

    const HOUR: i64 = 3_600_000;
    const DAY: i64 = 24 * HOUR;

    fn policy() -> TierPolicy {
        TierPolicy::new(
            Duration::from_secs(300),
            ScheduleConfig::for_interval(Duration::from_secs(300)),
        )
    }

    fn view_with_versions(last_seen: &[UnixMillis]) -> ArticleView {
        let mut view = ArticleView::new(2);
        view.history = last_seen
            .iter()
            .enumerate()
            .map(|(i, &at)| Version {
                hash: Hash([i as u8; 32]),
                page: Default::default(),
                rules: 0,
                last_seen: at,
            })
            .collect();
        view
    }

    #[test]
    fn tiers_follow_the_article_date_and_its_last_change() {
        let policy = policy();
        let now = 100 * DAY;
        let unchanged = view_with_versions(&[now - HOUR]);
        assert_eq!(policy.tier(5000, now - DAY, &unchanged, now), Tier::Hot);
        assert_eq!(policy.tier(5000, now - 3 * DAY, &unchanged, now), Tier::Warm);
        assert_eq!(policy.tier(5000, now - 40 * DAY, &unchanged, now), Tier::Cold);
        // An old article whose primary served another version a day ago.
        let changed = view_with_versions(&[now - DAY, now - HOUR]);
        assert_eq!(policy.tier(5000, now - 40 * DAY, &changed, now), Tier::Hot);
        assert_eq!(
            policy.tier(999, now - 40 * DAY, &unchanged, now),
            Tier::Hot,
            "a small site stays hot"
        );
    }

    #[test]
    fn a_pair_is_due_once_its_tier_period_has_passed() {
        let policy = policy();
        let now = 100 * DAY;
        assert!(policy.due(Tier::Cold, None, now), "never probed: due whatever the tier");
        assert!(policy.due(Tier::Hot, Some(now - 5 * 60_000), now));
        assert!(
            policy.due(Tier::Hot, Some(now - 4 * 60_000), now),
            "within half an interval of due"
        );
        assert!(!policy.due(Tier::Warm, Some(now - 10 * 60_000), now));
        assert!(policy.due(Tier::Warm, Some(now - 30 * 60_000), now));
        assert!(!policy.due(Tier::Cold, Some(now - 20 * HOUR), now));
        assert!(policy.due(Tier::Cold, Some(now - DAY), now));
        assert_eq!(
            policy.max_age(Tier::Cold, Duration::from_secs(900)),
            Duration::from_secs(86_400 - 300 + 900)
        );
    }
}
