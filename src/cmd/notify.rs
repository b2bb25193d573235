//! The systemd side of the lifecycle: readiness, status lines, reloads,
//! stopping, and the watchdog. Every call is a no-op outside systemd
//! (no `NOTIFY_SOCKET`), so the daemon runs the same anywhere.
//!
//! The watchdog pings only while the loops that do the work are turning:
//! the scheduler and the engine each beat a [`Heartbeat`] as they go. A
//! wedged loop stops its beats, the pings stop, and systemd restarts us.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

fn send(states: &[NotifyState]) {
    if let Err(error) = sd_notify::notify(states) {
        tracing::debug!(%error, "sd_notify failed");
    }
}

pub fn ready() {
    send(&[NotifyState::Ready]);
}

pub fn status(text: &str) {
    send(&[NotifyState::Status(text)]);
}

pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

/// RELOADING=1 with the MONOTONIC_USEC that `Type=notify-reload` wants.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

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
    fn alive(&self, within: Duration) -> bool {
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

/// Pings the systemd watchdog at half its interval while the loops live.
/// Does nothing unless systemd asked for a watchdog (`WATCHDOG_USEC`).
pub fn spawn_watchdog(heartbeat: Arc<Heartbeat>, stop: CancellationToken) {
    let Some(interval) = sd_notify::watchdog_enabled() else {
        return;
    };
    let allowance = BEAT_EVERY * 5;
    tracing::info!(?interval, "systemd watchdog enabled");
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval / 2);
        let mut wedged = false;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            if heartbeat.alive(allowance) {
                send(&[NotifyState::Watchdog]);
                wedged = false;
            } else if !wedged {
                tracing::error!("a work loop has stopped turning; no longer pinging the watchdog");
                wedged = true;
            }
        }
    });
}
