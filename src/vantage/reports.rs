//! What readers' browsers report about the bases they could not load
//! (`POST /p/report` from the reader probe page), counted per country.
//!
//! Reports are the least trusted input mirrorgate takes: anyone can send
//! them. So they are counted per country (no address is kept), at most one
//! per network prefix in a while, and the most they can do is move a base
//! to the end of that country's order for a bounded time; they never
//! remove a base, and agents' results are kept apart from them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::Serialize;

use crate::clock::{UnixMillis, rfc3339};
use crate::country::Country;

/// Distinct report windows from a country that demote a base there.
const DEMOTE_AFTER: u32 = 3;
/// Reports older than this no longer count, and a demotion lasts this long
/// after the last report.
const REPORT_WINDOW: Duration = Duration::from_secs(600);

#[derive(Default)]
struct Tally {
    /// Report windows (minutes) seen lately, each from some prefix.
    windows: Vec<UnixMillis>,
    last: UnixMillis,
}

/// Failure reports per country, site and base.
pub struct ReaderReports {
    tallies: Mutex<HashMap<(Country, usize, usize), Tally>>,
    limiter: DefaultKeyedRateLimiter<u128>,
    /// Some report was ever counted: until then, routing never locks.
    any: AtomicBool,
}

impl Default for ReaderReports {
    fn default() -> Self {
        // One report a minute per network prefix, a burst of two.
        let quota = Quota::per_minute(std::num::NonZeroU32::new(1).expect("nonzero"))
            .allow_burst(std::num::NonZeroU32::new(2).expect("nonzero"));
        ReaderReports {
            tallies: Mutex::new(HashMap::new()),
            limiter: RateLimiter::keyed(quota),
            any: AtomicBool::new(false),
        }
    }
}

/// Reader reports as kept in the store: each tally's windows, by country,
/// site name and base URL (indexes would point elsewhere after a config
/// change). No address or prefix is ever kept.
pub struct KeptReports {
    pub reports: std::sync::Arc<ReaderReports>,
    pub snapshots: crate::state::snapshot::Snapshots,
}

#[derive(Serialize, serde::Deserialize)]
struct KeptTally {
    windows: Vec<UnixMillis>,
    last: UnixMillis,
}

const KEPT_SEPARATOR: char = '\u{1f}';

impl crate::state::kept::Keeps for KeptReports {
    fn kind(&self) -> &'static str {
        "vantage.reader_reports"
    }

    fn export(&self) -> Vec<(String, String)> {
        let snapshot = self.snapshots.load();
        let tallies = self.reports.tallies.lock().unwrap_or_else(|e| e.into_inner());
        tallies
            .iter()
            .filter_map(|(&(country, site, base), tally)| {
                let meta = snapshot.catalog.sites.get(site)?;
                let kept = KeptTally {
                    windows: tally.windows.clone(),
                    last: tally.last,
                };
                let key = format!(
                    "{country}{S}{}{S}{}",
                    meta.name,
                    meta.base_names.get(base)?,
                    S = KEPT_SEPARATOR
                );
                Some((key, serde_json::to_string(&kept).ok()?))
            })
            .collect()
    }

    fn restore(&self, entries: &[(String, String)]) {
        let snapshot = self.snapshots.load();
        let mut tallies = self.reports.tallies.lock().unwrap_or_else(|e| e.into_inner());
        for (key, value) in entries {
            let parts: Vec<&str> = key.split(KEPT_SEPARATOR).collect();
            let [country, site, base] = parts.as_slice() else {
                continue;
            };
            let Some(country) = Country::parse(country) else {
                continue;
            };
            let Some(site_index) = snapshot.catalog.sites.iter().position(|s| &*s.name == *site) else {
                continue;
            };
            let meta = &snapshot.catalog.sites[site_index];
            let Some(base_index) = meta.base_names.iter().position(|b| &**b == *base) else {
                continue;
            };
            let Ok(kept) = serde_json::from_str::<KeptTally>(value) else {
                continue;
            };
            tallies.insert(
                (country, site_index, base_index),
                Tally {
                    windows: kept.windows,
                    last: kept.last,
                },
            );
            self.reports.any.store(true, Ordering::Relaxed);
        }
    }
}

/// The network a report counts for: a /24 (IPv4) or a /48 (IPv6).
pub fn network_prefix(address: IpAddr) -> u128 {
    match address {
        IpAddr::V4(v4) => u128::from(u32::from(v4) & 0xFFFF_FF00),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => u128::from(u32::from(v4) & 0xFFFF_FF00),
            None => (u128::from(v6) & !((1u128 << 80) - 1)) | 1,
        },
    }
}

/// One base's reports from one country, for `/status`.
#[derive(Clone, Debug, Serialize)]
pub struct ReportStatus {
    pub country: Country,
    pub site: String,
    pub base: String,
    /// Reports counted in the last ten minutes.
    pub failures: usize,
    /// Until when readers there get this base last, if they do.
    pub demoted_until: Option<String>,
}

impl ReaderReports {
    /// Whether a report from `prefix` may count now.
    pub fn admit(&self, prefix: u128) -> bool {
        self.limiter.check_key(&prefix).is_ok()
    }

    pub fn record(&self, country: Country, site: usize, base: usize, now: UnixMillis) {
        let mut tallies = self.tallies.lock().unwrap_or_else(|e| e.into_inner());
        let window = REPORT_WINDOW.as_millis() as i64;
        // Bounded: countries and bases come from the config.
        let tally = tallies.entry((country, site, base)).or_default();
        tally.windows.retain(|&at| now - at < window);
        tally.windows.push(now);
        tally.windows.truncate(64);
        tally.last = now;
        self.any.store(true, Ordering::Relaxed);
    }

    /// Whether any report was ever counted.
    pub fn active(&self) -> bool {
        self.any.load(Ordering::Relaxed)
    }

    /// Bases demoted in `country` for `site` now.
    pub fn demoted(&self, country: Country, site: usize, bases: usize, now: UnixMillis) -> Option<Vec<bool>> {
        let tallies = self.tallies.lock().unwrap_or_else(|e| e.into_inner());
        let window = REPORT_WINDOW.as_millis() as i64;
        let mut any = false;
        let flags: Vec<bool> = (0..bases)
            .map(|base| {
                let demoted = tallies.get(&(country, site, base)).is_some_and(|t| {
                    t.windows.iter().filter(|&&at| now - at < window).count() >= DEMOTE_AFTER as usize
                        && now - t.last < window
                });
                any |= demoted;
                demoted
            })
            .collect();
        any.then_some(flags)
    }

    /// Every country's reports still counting, for `/status`.
    pub fn status(&self, sites: &[crate::state::snapshot::SiteMeta], now: UnixMillis) -> Vec<ReportStatus> {
        let tallies = self.tallies.lock().unwrap_or_else(|e| e.into_inner());
        let window = REPORT_WINDOW.as_millis() as i64;
        let mut out: Vec<ReportStatus> = tallies
            .iter()
            .filter_map(|(&(country, site, base), tally)| {
                let failures = tally.windows.iter().filter(|&&at| now - at < window).count();
                if failures == 0 {
                    return None;
                }
                let meta = sites.get(site)?;
                Some(ReportStatus {
                    country,
                    site: meta.name.to_string(),
                    base: meta.base_names.get(base)?.to_string(),
                    failures,
                    demoted_until: (failures >= DEMOTE_AFTER as usize).then(|| rfc3339(tally.last + window)),
                })
            })
            .collect();
        out.sort_by(|a, b| (a.country, &a.site, &a.base).cmp(&(b.country, &b.site, &b.base)));
        out
    }
}

/// `order` with the demoted bases moved to its end (stable otherwise).
pub fn demote(order: Vec<usize>, demoted: Option<&[bool]>) -> Vec<usize> {
    let Some(demoted) = demoted else { return order };
    let (last, first): (Vec<usize>, Vec<usize>) = order
        .into_iter()
        .partition(|&b| demoted.get(b).copied().unwrap_or(false));
    first.into_iter().chain(last).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_demote_only_after_several_windows_and_only_for_a_while() {
        let reports = ReaderReports::default();
        let cn = Country::parse("CN").unwrap();
        reports.record(cn, 0, 1, 1_000);
        reports.record(cn, 0, 1, 2_000);
        assert!(reports.demoted(cn, 0, 3, 3_000).is_none());
        reports.record(cn, 0, 1, 3_000);
        assert_eq!(reports.demoted(cn, 0, 3, 4_000), Some(vec![false, true, false]));
        assert!(reports.demoted(Country::parse("SE").unwrap(), 0, 3, 4_000).is_none());
        assert!(reports.demoted(cn, 0, 3, 3_000 + 600_000).is_none());
        assert_eq!(demote(vec![0, 1, 2], Some(&[false, true, false])), vec![0, 2, 1]);
    }

    #[test]
    fn prefixes_group_a_network() {
        let a = network_prefix("111.235.160.7".parse().unwrap());
        assert_eq!(a, network_prefix("111.235.160.200".parse().unwrap()));
        assert_ne!(a, network_prefix("111.235.161.7".parse().unwrap()));
        assert_eq!(
            network_prefix("2001:db8:1:2::1".parse().unwrap()),
            network_prefix("2001:db8:1:ffff::9".parse().unwrap())
        );
    }
}
