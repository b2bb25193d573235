//! `/metrics` in the Prometheus text format.
//!
//! Probe counters and verdict gauges come from the snapshot (the engine
//! keeps them per base); redirect and reload counters are atomics bumped
//! where those things happen. Labels are site, base, outcome and verdict
//! only: never an article or a client address, so cardinality is bounded by
//! the config.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use crate::clock::now_ms;
use crate::state::snapshot::{BaseState, DURATION_BUCKETS, Snapshot};
use crate::store::StoreHealth;
use crate::verdict::observation::Outcome;
use crate::verdict::{Reason, Verdict};

/// Counters owned by the HTTP front and the reloader.
#[derive(Debug)]
pub struct Counters {
    pub redirects_served: AtomicU64,
    pub redirects_no_candidate: AtomicU64,
    pub redirects_bad_request: AtomicU64,
    pub reload_successful: AtomicBool,
    pub reload_success_at: AtomicI64,
    pub reloads_succeeded: AtomicU64,
    pub reloads_failed: AtomicU64,
    /// Why the last reload failed, and when; cleared by a successful one.
    pub reload_error: std::sync::Mutex<Option<(i64, String)>>,
    pub connections_open: std::sync::atomic::AtomicUsize,
    pub connections_refused: AtomicU64,
    /// Answers abandoned because the reader did not take them in time.
    pub writes_timed_out: AtomicU64,
    /// Rounds that took longer than the probe interval.
    pub rounds_overrun: AtomicU64,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            redirects_served: AtomicU64::new(0),
            redirects_no_candidate: AtomicU64::new(0),
            redirects_bad_request: AtomicU64::new(0),
            // The config the daemon started with was valid, or it would not run.
            reload_successful: AtomicBool::new(true),
            reload_success_at: AtomicI64::new(now_ms()),
            reloads_succeeded: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
            reload_error: std::sync::Mutex::new(None),
            connections_open: Default::default(),
            connections_refused: AtomicU64::new(0),
            writes_timed_out: AtomicU64::new(0),
            rounds_overrun: AtomicU64::new(0),
        }
    }
}

impl Counters {
    pub fn reload_succeeded(&self) {
        self.reload_successful.store(true, Ordering::Relaxed);
        self.reload_success_at.store(now_ms(), Ordering::Relaxed);
        self.reloads_succeeded.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut error) = self.reload_error.lock() {
            *error = None;
        }
    }

    pub fn reload_failed(&self, reason: String) {
        self.reload_successful.store(false, Ordering::Relaxed);
        self.reloads_failed.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut error) = self.reload_error.lock() {
            *error = Some((now_ms(), reason));
        }
    }

    pub fn reload_error(&self) -> Option<(i64, String)> {
        self.reload_error.lock().ok().and_then(|e| e.clone())
    }
}

pub fn render(
    snapshot: &Snapshot,
    counters: &Counters,
    store: Option<&StoreHealth>,
    vantage: &crate::vantage::view::VantageView,
) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);

    header(&mut out, "mirrorgate_build_info", "gauge", "Build information.");
    let _ = writeln!(
        out,
        "mirrorgate_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );

    header(
        &mut out,
        "mirrorgate_probes_total",
        "counter",
        "Probes by site, base and outcome; and, labelled only by tier, the same probes by their article's [schedule] tier.",
    );
    for (site, base, view) in bases(snapshot) {
        for (outcome, count) in Outcome::ALL.iter().zip(view.probes.by_outcome) {
            let _ = writeln!(
                out,
                "mirrorgate_probes_total{{site=\"{site}\",base=\"{base}\",outcome=\"{}\"}} {count}",
                outcome.as_str()
            );
        }
    }
    for (tier, count) in crate::state::tiers::Tier::ALL.iter().zip(snapshot.round.probes_by_tier) {
        let _ = writeln!(out, "mirrorgate_probes_total{{tier=\"{}\"}} {count}", tier.as_str());
    }

    header(
        &mut out,
        "mirrorgate_probe_duration_seconds",
        "histogram",
        "Probe duration, redirects and body included.",
    );
    for (site, base, view) in bases(snapshot) {
        let labels = format!("site=\"{site}\",base=\"{base}\"");
        for (bound, count) in DURATION_BUCKETS.iter().zip(view.probes.duration_buckets) {
            let _ = writeln!(
                out,
                "mirrorgate_probe_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {count}"
            );
        }
        let total = view.probes.total();
        let _ = writeln!(
            out,
            "mirrorgate_probe_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {total}"
        );
        let sum = view.probes.duration_sum_ms as f64 / 1000.0;
        let _ = writeln!(out, "mirrorgate_probe_duration_seconds_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "mirrorgate_probe_duration_seconds_count{{{labels}}} {total}");
    }

    header(
        &mut out,
        "mirrorgate_verdicts",
        "gauge",
        "Articles per site, base and current verdict.",
    );
    for (site, base, view) in bases(snapshot) {
        for (verdict, count) in Verdict::ALL.iter().zip(view.verdict_counts) {
            let _ = writeln!(
                out,
                "mirrorgate_verdicts{{site=\"{site}\",base=\"{base}\",verdict=\"{}\"}} {count}",
                verdict.as_str()
            );
        }
    }

    header(
        &mut out,
        "mirrorgate_diverged",
        "gauge",
        "Articles per site and base whose verdict is diverged, by reason.",
    );
    for (site, base, view) in bases(snapshot) {
        for (reason, count) in Reason::ALL.iter().zip(view.reason_counts) {
            let _ = writeln!(
                out,
                "mirrorgate_diverged{{site=\"{site}\",base=\"{base}\",reason=\"{}\"}} {count}",
                reason.as_str()
            );
        }
    }

    render_vantage(&mut out, snapshot, vantage);

    header(
        &mut out,
        "mirrorgate_base_state",
        "gauge",
        "1 for the base's current state (up, degraded, down).",
    );
    for (site, base, view) in bases(snapshot) {
        for state in BaseState::ALL {
            let (name, value) = (state.as_str(), u8::from(view.state == state));
            let _ = writeln!(
                out,
                "mirrorgate_base_state{{site=\"{site}\",base=\"{base}\",state=\"{name}\"}} {value}"
            );
        }
    }

    header(
        &mut out,
        "mirrorgate_articles",
        "gauge",
        "Configured articles per site.",
    );
    for meta in &snapshot.catalog.sites {
        let _ = writeln!(
            out,
            "mirrorgate_articles{{site=\"{}\"}} {}",
            escape(&meta.name),
            meta.articles.len()
        );
    }

    header(
        &mut out,
        "mirrorgate_redirects_total",
        "counter",
        "Reader requests by outcome.",
    );
    for (outcome, counter) in [
        ("served", &counters.redirects_served),
        ("no_candidate", &counters.redirects_no_candidate),
        ("bad_request", &counters.redirects_bad_request),
    ] {
        let _ = writeln!(
            out,
            "mirrorgate_redirects_total{{outcome=\"{outcome}\"}} {}",
            load(counter)
        );
    }

    let round = &snapshot.round;
    header(
        &mut out,
        "mirrorgate_rounds_total",
        "counter",
        "Completed probe rounds.",
    );
    let _ = writeln!(out, "mirrorgate_rounds_total {}", round.completed);
    if let (Some(duration), Some(finished)) = (round.last_duration_ms, round.last_finished_at) {
        header(
            &mut out,
            "mirrorgate_round_duration_seconds",
            "gauge",
            "Duration of the last completed round.",
        );
        let _ = writeln!(out, "mirrorgate_round_duration_seconds {}", duration as f64 / 1000.0);
        header(
            &mut out,
            "mirrorgate_round_last_finished_timestamp_seconds",
            "gauge",
            "When the last round finished.",
        );
        let _ = writeln!(
            out,
            "mirrorgate_round_last_finished_timestamp_seconds {}",
            finished as f64 / 1000.0
        );
    }

    header(
        &mut out,
        "mirrorgate_config_last_reload_successful",
        "gauge",
        "Whether the last config reload worked.",
    );
    let ok = u8::from(counters.reload_successful.load(Ordering::Relaxed));
    let _ = writeln!(out, "mirrorgate_config_last_reload_successful {ok}");
    header(
        &mut out,
        "mirrorgate_config_last_reload_success_timestamp_seconds",
        "gauge",
        "When the config was last loaded successfully.",
    );
    let at = counters.reload_success_at.load(Ordering::Relaxed) as f64 / 1000.0;
    let _ = writeln!(out, "mirrorgate_config_last_reload_success_timestamp_seconds {at}");
    header(
        &mut out,
        "mirrorgate_config_reloads_total",
        "counter",
        "Config reloads by result.",
    );
    let _ = writeln!(
        out,
        "mirrorgate_config_reloads_total{{result=\"success\"}} {}",
        load(&counters.reloads_succeeded)
    );
    let _ = writeln!(
        out,
        "mirrorgate_config_reloads_total{{result=\"failure\"}} {}",
        load(&counters.reloads_failed)
    );

    header(
        &mut out,
        "mirrorgate_articles_without_base",
        "gauge",
        "Articles no base serves the reference of now (readers get a 503).",
    );
    for (meta, view) in snapshot.catalog.sites.iter().zip(&snapshot.sites) {
        let _ = writeln!(
            out,
            "mirrorgate_articles_without_base{{site=\"{}\"}} {}",
            meta.name,
            view.articles_without_base()
        );
    }
    unlabelled(
        &mut out,
        "mirrorgate_rounds_overrun_total",
        "counter",
        "Rounds that took longer than probe.interval.",
        load(&counters.rounds_overrun),
    );
    unlabelled(
        &mut out,
        "mirrorgate_connections_open",
        "gauge",
        "Reader connections open now.",
        counters.connections_open.load(Ordering::Relaxed) as u64,
    );
    unlabelled(
        &mut out,
        "mirrorgate_connections_refused_total",
        "counter",
        "Reader connections refused with 503 at server.max_connections.",
        load(&counters.connections_refused),
    );
    unlabelled(
        &mut out,
        "mirrorgate_writes_timed_out_total",
        "counter",
        "Connections closed because the reader did not take an answer within request_header_timeout.",
        load(&counters.writes_timed_out),
    );

    if let Some(store) = store {
        unlabelled(
            &mut out,
            "mirrorgate_store_write_failures_total",
            "counter",
            "Store write attempts that failed (each retried after a back-off).",
            load(&store.failed_writes),
        );
        header(
            &mut out,
            "mirrorgate_store_ok",
            "gauge",
            "1 while the store accepts writes.",
        );
        let _ = writeln!(out, "mirrorgate_store_ok {}", u8::from(store.last_error().is_none()));
        let cluster = store.cluster.lock().map(|c| c.clone()).unwrap_or_default();
        header(
            &mut out,
            "mirrorgate_cluster_instances",
            "gauge",
            "Instances that beat into this store within the last 15 s (this one included).",
        );
        let _ = writeln!(out, "mirrorgate_cluster_instances {}", cluster.members.len());
        header(
            &mut out,
            "mirrorgate_cluster_leader",
            "gauge",
            "1 for the instance holding the leader's lease (alerts, retention, kept state).",
        );
        for member in &cluster.members {
            let _ = writeln!(
                out,
                "mirrorgate_cluster_leader{{instance=\"{}\"}} {}",
                escape(&member.name),
                u8::from(member.leader)
            );
        }
        unlabelled(
            &mut out,
            "mirrorgate_leases_expired_total",
            "counter",
            "Times this instance took the leader's lease after its holder let it run out.",
            load(&store.leases_expired),
        );
        header(
            &mut out,
            "mirrorgate_store_up",
            "gauge",
            "1 while the store (SQLite file or PostgreSQL server) takes writes; 0 while results wait in memory.",
        );
        let _ = writeln!(out, "mirrorgate_store_up {}", u8::from(store.last_error().is_none()));
        header(
            &mut out,
            "mirrorgate_store_records_written_total",
            "counter",
            "Probe results written to the store.",
        );
        let _ = writeln!(out, "mirrorgate_store_records_written_total {}", load(&store.written));
        header(
            &mut out,
            "mirrorgate_store_records_pending",
            "gauge",
            "Probe results waiting to be written.",
        );
        let _ = writeln!(
            out,
            "mirrorgate_store_records_pending {}",
            store.pending.load(Ordering::Relaxed)
        );
        header(
            &mut out,
            "mirrorgate_store_records_dropped_total",
            "counter",
            "Probe results dropped while the store refused writes.",
        );
        let _ = writeln!(out, "mirrorgate_store_records_dropped_total {}", load(&store.dropped));
    }
    out
}

/// Per-country base states and agents: countries and agents are bounded
/// by the config, so their labels are too.
fn render_vantage(out: &mut String, snapshot: &Snapshot, vantage: &crate::vantage::view::VantageView) {
    use crate::vantage::view::CountryState;
    if vantage.agents.is_empty() {
        return;
    }
    header(
        out,
        "mirrorgate_base_country_state",
        "gauge",
        "1 for the base's state as the agents in a country see it (reachable, blocked, down, unknown).",
    );
    for (meta, per_base) in snapshot.catalog.sites.iter().zip(&vantage.countries) {
        for (base, countries) in meta.base_names.iter().zip(per_base) {
            for (country, status) in countries {
                for state in CountryState::ALL {
                    let _ = writeln!(
                        out,
                        "mirrorgate_base_country_state{{site=\"{}\",base=\"{}\",country=\"{country}\",state=\"{}\"}} {}",
                        escape(&meta.name),
                        escape(base),
                        state.as_str(),
                        u8::from(status.state == state)
                    );
                }
            }
        }
    }
    header(
        out,
        "mirrorgate_agent_online",
        "gauge",
        "1 while the agent reports and reaches its control.",
    );
    for agent in &vantage.agents {
        let _ = writeln!(
            out,
            "mirrorgate_agent_online{{agent=\"{}\",country=\"{}\"}} {}",
            escape(&agent.name),
            agent.country,
            u8::from(agent.online)
        );
    }
    header(
        out,
        "mirrorgate_agent_results_total",
        "counter",
        "Agent results taken or refused.",
    );
    for agent in &vantage.agents {
        for (result, count) in [
            ("accepted", agent.results_accepted),
            ("rejected", agent.results_rejected),
        ] {
            let _ = writeln!(
                out,
                "mirrorgate_agent_results_total{{agent=\"{}\",result=\"{result}\"}} {count}",
                escape(&agent.name)
            );
        }
    }
}

/// Each alert sink's deliveries.
pub fn render_alerts(counters: &crate::alert::Counters) -> String {
    let counters = counters.load();
    let mut out = String::new();
    if counters.is_empty() {
        return out;
    }
    header(
        &mut out,
        "mirrorgate_alerts_total",
        "counter",
        "Alert notifications per sink: delivered, failed after every retry, dropped from a full queue.",
    );
    for (sink, c) in counters.iter() {
        for (result, value) in [
            ("delivered", c.delivered.load(Ordering::Relaxed)),
            ("failed", c.failed.load(Ordering::Relaxed)),
            ("dropped", c.dropped.load(Ordering::Relaxed)),
        ] {
            let _ = writeln!(
                out,
                "mirrorgate_alerts_total{{sink=\"{}\",result=\"{result}\"}} {value}",
                escape(sink)
            );
        }
    }
    out
}

/// Each base's leaks to other bases, over its articles' latest pages.
pub fn render_leaks(snapshot: &Snapshot, store: &crate::state::evidence::EvidenceStore) -> String {
    let mut out = String::new();
    header(
        &mut out,
        "mirrorgate_base_leaks",
        "gauge",
        "Subresources and links on another configured base, over the base's latest pages.",
    );
    for meta in &snapshot.catalog.sites {
        let totals = store.leak_totals(&meta.name);
        for base in &meta.base_names {
            let (_, resources, links) = totals.get(base).copied().unwrap_or_default();
            for (kind, value) in [("resources", resources), ("links", links)] {
                let _ = writeln!(
                    out,
                    "mirrorgate_base_leaks{{site=\"{}\",base=\"{}\",kind=\"{kind}\"}} {value}",
                    escape(&meta.name),
                    escape(base)
                );
            }
        }
    }
    out
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A series without labels: its header and its one value.
fn unlabelled(out: &mut String, name: &str, kind: &str, help: &str, value: u64) {
    header(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

fn bases(snapshot: &Snapshot) -> impl Iterator<Item = (String, String, &crate::state::snapshot::BaseView)> {
    snapshot
        .catalog
        .sites
        .iter()
        .zip(&snapshot.sites)
        .flat_map(|(meta, site)| {
            meta.base_names
                .iter()
                .zip(&site.bases)
                .map(move |(base, view)| (escape(&meta.name), escape(base), view))
        })
}

/// Label values escape backslash, double quote and newline.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
