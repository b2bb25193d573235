//! A batch's hourly aggregates, summed in memory before any backend
//! writes them: the same shape for SQLite and PostgreSQL.

use std::collections::HashMap;
use std::sync::Arc;

use super::ProbeRecord;
use crate::verdict::Verdict;
use crate::verdict::observation::Outcome;

/// Upper bounds (ms) of the rollups' latency buckets; one more counts the rest.
pub(super) const LATENCY_BOUNDS_MS: [u32; 7] = [50, 100, 250, 500, 1000, 2500, 5000];

/// One hour of one base, by outcome and verdict.
#[derive(Default)]
pub(super) struct BaseHour {
    pub(super) probes: i64,
    pub(super) latency_sum_ms: i64,
    /// Not cumulative: each probe counts in the first bucket its latency fits.
    pub(super) buckets: [i64; 8],
}

/// One hour of one article, over all its bases.
#[derive(Default)]
pub(super) struct ArticleHour {
    pub(super) probes: i64,
    pub(super) ok: i64,
    /// Indexed like [`Verdict::ALL`].
    pub(super) verdicts: [i64; 6],
    pub(super) latency_sum_ms: i64,
}

/// A batch's hourly aggregates, summed in memory first: a batch holds the
/// same few base-hours and each article's bases together, so this turns
/// thousands of records into far fewer upserts.
#[derive(Default)]
pub(super) struct Rollups {
    pub(super) bases: HashMap<BaseHourKey, BaseHour>,
    pub(super) articles: HashMap<(Arc<str>, Arc<str>, i64), ArticleHour>,
}

/// Site, base, hour, outcome, verdict.
pub(super) type BaseHourKey = (Arc<str>, Arc<str>, i64, Outcome, Option<Verdict>);

pub(super) const HOUR_MS: i64 = 3_600_000;

impl Rollups {
    pub(super) fn add(&mut self, record: &ProbeRecord) {
        let o = &record.observation;
        let hour = o.checked_at.div_euclid(HOUR_MS);
        let latency = i64::from(o.latency_ms);
        let base = self
            .bases
            .entry((
                record.site.clone(),
                record.base.clone(),
                hour,
                o.outcome,
                record.verdict,
            ))
            .or_default();
        base.probes += 1;
        base.latency_sum_ms += latency;
        let bucket = LATENCY_BOUNDS_MS
            .iter()
            .position(|&bound| o.latency_ms <= bound)
            .unwrap_or(LATENCY_BOUNDS_MS.len());
        base.buckets[bucket] += 1;
        let article = self
            .articles
            .entry((record.site.clone(), record.article.clone(), hour))
            .or_default();
        article.probes += 1;
        article.ok += i64::from(o.is_ok());
        article.latency_sum_ms += latency;
        if let Some(verdict) = record.verdict {
            article.verdicts[verdict.index()] += 1;
        }
    }
}
