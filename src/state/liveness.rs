//! Whether the loops that do the work are turning: the scheduler and the
//! engine each beat a [`Heartbeat`] as they go, and the systemd watchdog
//! and `/healthz` read it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// When each watched loop last turned.
pub struct Heartbeat {
    origin: Instant,
    beats: [AtomicU64; 2],
}

#[derive(Clone, Copy)]
pub enum Loop {
    Scheduler = 0,
    Engine = 1,
}

impl Heartbeat {
    pub fn new() -> Arc<Self> {
        Arc::new(Heartbeat {
            origin: Instant::now(),
            beats: [AtomicU64::new(0), AtomicU64::new(0)],
        })
    }

    pub fn beat(&self, which: Loop) {
        let now = self.origin.elapsed().as_millis() as u64;
        self.beats[which as usize].store(now, Ordering::Relaxed);
    }

    /// True when every loop beat within `within`.
    pub fn alive(&self, within: Duration) -> bool {
        self.stalled(within).is_empty()
    }

    /// The loops that have not beaten within `within`.
    pub fn stalled(&self, within: Duration) -> Vec<&'static str> {
        let now = self.origin.elapsed().as_millis() as u64;
        [(Loop::Scheduler, "scheduler"), (Loop::Engine, "engine")]
            .into_iter()
            .filter(|(which, _)| {
                now.saturating_sub(self.beats[*which as usize].load(Ordering::Relaxed)) > within.as_millis() as u64
            })
            .map(|(_, name)| name)
            .collect()
    }
}

/// How often the watched loops beat; the watchdog allows a few missed beats.
pub const BEAT_EVERY: Duration = Duration::from_secs(1);
