//! The systemd side of the lifecycle: readiness, status lines, reloads,
//! stopping, and the watchdog. Every call is a no-op outside systemd
//! (no `NOTIFY_SOCKET`), so the daemon runs the same anywhere.
//!
//! The watchdog pings only while the loops that do the work are turning:
//! the scheduler and the engine each beat a
//! [`Heartbeat`](crate::state::liveness::Heartbeat) as they go. A
//! wedged loop stops its beats, the pings stop, and systemd restarts us.

use sd_notify::NotifyState;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use crate::state::liveness::{BEAT_EVERY, Heartbeat};

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
