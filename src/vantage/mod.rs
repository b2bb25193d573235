//! Vantage points: agents in the countries that matter probe the bases
//! from there, and readers are routed by what works where they are.
//!
//! [`agent`] is the process an operator runs in a country; [`board`] is the
//! daemon's record of agents and what their results come to; [`view`] is
//! the immutable per-country view routing and status read; [`protocol`] is
//! what the two sides send each other.

pub mod agent;
pub mod board;
pub mod geoip;
pub mod protocol;
pub mod reports;
pub mod view;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio_util::sync::CancellationToken;

use crate::clock::now_ms;
use crate::config::VantageConfig;
use crate::state::snapshot::Snapshots;
use board::Board;
use view::VantageView;

/// Requests per second an agent may make (work and results together);
/// an agent makes two or three per cycle.
const AGENT_REQUESTS_PER_SECOND: u32 = 2;
const AGENT_BURST: u32 = 10;

/// The agents' side of the daemon, shared by its handlers.
#[derive(Clone)]
pub struct Vantage {
    pub board: Arc<Mutex<Board>>,
    pub view: Arc<ArcSwap<VantageView>>,
    /// Swapped by a reload, with the board.
    pub config: Arc<ArcSwap<VantageConfig>>,
    limiter: Arc<DefaultKeyedRateLimiter<usize>>,
    /// A reload changed the board: the upkeep publishes now rather than
    /// at its next half cycle (agents added or all removed show at once).
    reconfigured: Arc<tokio::sync::Notify>,
}

impl crate::state::kept::Keeps for Vantage {
    fn kind(&self) -> &'static str {
        "vantage.board"
    }

    fn export(&self) -> Vec<(String, String)> {
        self.board.lock().unwrap_or_else(|e| e.into_inner()).export_kept()
    }

    fn restore(&self, entries: &[(String, String)]) {
        self.board
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .restore_kept(entries);
    }
}

impl Vantage {
    pub fn new(board: Board, view: Arc<ArcSwap<VantageView>>) -> Self {
        let config = Arc::new(ArcSwap::from_pointee(board.config().clone()));
        let quota = Quota::per_second(std::num::NonZeroU32::new(AGENT_REQUESTS_PER_SECOND).expect("nonzero"))
            .allow_burst(std::num::NonZeroU32::new(AGENT_BURST).expect("nonzero"));
        Vantage {
            board: Arc::new(Mutex::new(board)),
            view,
            config,
            limiter: Arc::new(RateLimiter::keyed(quota)),
            reconfigured: Default::default(),
        }
    }

    /// A reloaded config: a board for its agents and sites, holding what
    /// the old one knew of the agents and bases still configured (by
    /// name, as a restart would).
    pub fn reconfigure(&self, config: &crate::config::Config, geo: crate::vantage::geoip::Geo) {
        let mut fresh = Board::new(config, geo);
        let mut board = self.board.lock().unwrap_or_else(|e| e.into_inner());
        fresh.restore_kept(&board.export_kept());
        *board = fresh;
        self.config.store(Arc::new(config.vantage.clone()));
        self.reconfigured.notify_one();
    }

    /// Whether `agent` may make another request now.
    pub fn admit(&self, agent: usize) -> bool {
        self.limiter.check_key(&agent).is_ok()
    }

    /// Rebuilds the view from the board and swaps it in.
    pub fn publish(&self, snapshots: &Snapshots) {
        let snapshot = snapshots.load();
        let view = {
            let board = self.board.lock().unwrap_or_else(|e| e.into_inner());
            board.view(&snapshot, now_ms())
        };
        self.view.store(Arc::new(view));
    }

    /// Between batches, each half cycle: re-resolves the bases' hosts (what
    /// an agent's answers are compared with), lets silent agents lapse and
    /// publishes the view.
    pub async fn upkeep(self, snapshots: Snapshots, shutdown: CancellationToken) {
        loop {
            let period = (self.config.load().cycle / 2).max(Duration::from_millis(200));
            // Without agents nothing is compared with the hosts' addresses.
            let hosts = if self.config.load().agents.is_empty() {
                Vec::new()
            } else {
                self.board.lock().unwrap_or_else(|e| e.into_inner()).hosts()
            };
            for (host, port) in hosts {
                let host_only = host.trim_start_matches('[').trim_end_matches(']').to_string();
                if host_only.parse::<std::net::IpAddr>().is_ok() {
                    continue;
                }
                let lookup = tokio::time::timeout(
                    Duration::from_secs(5),
                    tokio::net::lookup_host((host_only.as_str(), port)),
                );
                if let Ok(Ok(found)) = lookup.await {
                    let mut addresses: Vec<std::net::IpAddr> = found.map(|a| a.ip()).collect();
                    addresses.sort();
                    addresses.dedup();
                    self.board
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .set_daemon_addresses(host_only.clone(), addresses);
                }
            }
            {
                let snapshot = snapshots.load();
                self.board
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .tick(&snapshot, now_ms());
            }
            self.publish(&snapshots);
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.reconfigured.notified() => {}
                _ = tokio::time::sleep(period) => {}
            }
        }
    }
}
