//! `[schedule]`: how often an article is probed by how old it is and how
//! lately it changed, so a round's cost follows what can have changed
//! rather than the size of the archive.

use std::time::Duration;

use toml::de::DeTable;

use super::walker::{Walker, find};

pub(super) const SCHEDULE_KEYS: &[&str] = &[
    "hot_for",
    "warm_for",
    "warm_interval",
    "cold_interval",
    "hot_min_articles",
    "canary_articles",
    "max_verdict_age",
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleConfig {
    /// Younger than this (by its own date, or since its content last
    /// changed): hot, probed every `[probe] interval`.
    pub hot_for: Duration,
    /// Younger than this: warm, probed every `warm_interval`; older: cold.
    pub warm_for: Duration,
    pub warm_interval: Duration,
    pub cold_interval: Duration,
    /// A site with fewer articles has them all hot.
    pub hot_min_articles: usize,
    /// Newest articles probed every interval on each base, beside its home page.
    pub canary_articles: usize,
    /// A redirect resting on an older verdict queues the article for a probe.
    pub max_verdict_age: Duration,
}

impl ScheduleConfig {
    /// The defaults for a `[probe] interval`.
    pub fn for_interval(interval: Duration) -> ScheduleConfig {
        const DAY: Duration = Duration::from_secs(86_400);
        ScheduleConfig {
            hot_for: 2 * DAY,
            warm_for: 30 * DAY,
            warm_interval: interval.saturating_mul(6),
            cold_interval: DAY,
            hot_min_articles: 1000,
            canary_articles: 20,
            max_verdict_age: DAY,
        }
    }
}

impl Walker<'_> {
    pub(super) fn schedule(&mut self, table: &DeTable<'_>, interval: Option<Duration>) -> Option<ScheduleConfig> {
        self.unknown_keys(table, "[schedule]", SCHEDULE_KEYS);
        let defaults = ScheduleConfig::for_interval(interval.unwrap_or(Duration::from_secs(300)));
        let hot_for = self.duration(table, "schedule", "hot_for", defaults.hot_for);
        let warm_for = self.duration(table, "schedule", "warm_for", defaults.warm_for);
        let warm_interval = self.duration(table, "schedule", "warm_interval", defaults.warm_interval);
        let cold_interval = self.duration(table, "schedule", "cold_interval", defaults.cold_interval);
        let hot_min_articles = self.integer(table, "schedule", "hot_min_articles", 0, i64::MAX);
        let canary_articles = self.integer(table, "schedule", "canary_articles", 0, 10_000);
        let cold = cold_interval?;
        let max_verdict_age = self.duration(table, "schedule", "max_verdict_age", cold);
        let (hot_for, warm_for, warm_interval) = (hot_for?, warm_for?, warm_interval?);
        // Each bound is checked against the one before it, where it is written.
        let mut order = |key: &str, value: Duration, floor: Duration, floor_name: &str| {
            if value < floor {
                let span = find(table, key).map_or(0..0, |v| v.span());
                self.error(
                    span,
                    format!(
                        "`schedule.{key}` ({}) must be at least {floor_name} ({})",
                        humantime::format_duration(value),
                        humantime::format_duration(floor)
                    ),
                );
                return false;
            }
            true
        };
        let mut valid = order("warm_for", warm_for, hot_for, "`schedule.hot_for`");
        if let Some(interval) = interval {
            valid &= order("warm_interval", warm_interval, interval, "`probe.interval`");
        }
        valid &= order("cold_interval", cold, warm_interval, "`schedule.warm_interval`");
        valid.then_some(())?;
        Some(ScheduleConfig {
            hot_for,
            warm_for,
            warm_interval,
            cold_interval: cold,
            hot_min_articles: hot_min_articles?.unwrap_or(defaults.hot_min_articles),
            canary_articles: canary_articles?.unwrap_or(defaults.canary_articles),
            max_verdict_age: max_verdict_age?,
        })
    }
}
