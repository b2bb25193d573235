//! Per-base uptime over 1h, 24h, 7d and 30d, from per-minute probe counts.
//!
//! The last hour is kept per minute and the rest per hour, so a base costs
//! about 800 small counters however long it has been watched.

use std::collections::VecDeque;

use crate::clock::UnixMillis;

#[derive(Clone, Copy, Debug, Default)]
struct Count {
    probes: u32,
    ok: u32,
}

#[derive(Clone, Debug, Default)]
pub struct UptimeCounter {
    minutes: VecDeque<(i64, Count)>,
    hours: VecDeque<(i64, Count)>,
}

/// Ratios of ok probes; None where the window holds no probe.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Uptime {
    pub hour: Option<f64>,
    pub day: Option<f64>,
    pub week: Option<f64>,
    pub month: Option<f64>,
}

const MINUTE: i64 = 60_000;
const HOUR: i64 = 3_600_000;

impl UptimeCounter {
    pub fn record(&mut self, at: UnixMillis, ok: bool) {
        self.add(at.div_euclid(MINUTE), 1, ok as u32);
    }

    /// Adds stored counts for one minute (on restore).
    pub fn add(&mut self, minute: i64, probes: u32, ok: u32) {
        bump(&mut self.minutes, minute, probes, ok);
        bump(&mut self.hours, minute.div_euclid(60), probes, ok);
    }

    pub fn uptime(&mut self, now: UnixMillis) -> Uptime {
        let this_minute = now.div_euclid(MINUTE);
        let this_hour = now.div_euclid(HOUR);
        while self.minutes.front().is_some_and(|(m, _)| *m <= this_minute - 60) {
            self.minutes.pop_front();
        }
        while self.hours.front().is_some_and(|(h, _)| *h <= this_hour - 30 * 24) {
            self.hours.pop_front();
        }
        let hours = |n: i64| ratio(self.hours.iter().filter(|(h, _)| *h > this_hour - n));
        Uptime {
            hour: ratio(self.minutes.iter()),
            day: hours(24),
            week: hours(7 * 24),
            month: hours(30 * 24),
        }
    }
}

fn bump(buckets: &mut VecDeque<(i64, Count)>, key: i64, probes: u32, ok: u32) {
    match buckets.iter_mut().rev().find(|(k, _)| *k == key) {
        Some((_, count)) => {
            count.probes += probes;
            count.ok += ok;
        }
        None => {
            let at = buckets.iter().rposition(|(k, _)| *k < key).map_or(0, |i| i + 1);
            buckets.insert(at, (key, Count { probes, ok }));
        }
    }
}

fn ratio<'a>(buckets: impl Iterator<Item = &'a (i64, Count)>) -> Option<f64> {
    let (probes, ok) = buckets.fold((0u64, 0u64), |(p, o), (_, c)| (p + c.probes as u64, o + c.ok as u64));
    (probes > 0).then(|| ok as f64 / probes as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows() {
        let now = 100 * 24 * HOUR;
        let mut counter = UptimeCounter::default();
        counter.record(now - 10 * 24 * HOUR, false); // only in 30d
        counter.record(now - 2 * 24 * HOUR, false); // 7d and 30d
        counter.record(now - 2 * HOUR, true); // 24h, 7d, 30d
        counter.record(now - 5 * MINUTE, true); // all
        counter.record(now - MINUTE, false); // all
        let uptime = counter.uptime(now);
        assert_eq!(uptime.hour, Some(0.5));
        assert_eq!(uptime.day, Some(2.0 / 3.0));
        assert_eq!(uptime.week, Some(0.5));
        assert_eq!(uptime.month, Some(0.4));
        assert_eq!(UptimeCounter::default().uptime(now), Uptime::default());
    }
}
