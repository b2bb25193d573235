//! What is wrong now: the conditions an alert can be about, read from a
//! snapshot and the daemon's health. Pure: the task in `alert` decides when
//! a condition has held long enough to send.

use crate::config::Severity;
use crate::state::snapshot::{BaseState, Snapshot};
use crate::verdict::Verdict;

/// A condition that holds now.
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    /// Stable identity: the same condition keeps it while it holds.
    pub key: String,
    pub event: &'static str,
    pub severity: Severity,
    pub site: Option<String>,
    pub base: Option<String>,
    pub summary: String,
}

/// Every event a condition can be, so one read back from the store gets
/// its `&'static` name again.
pub const EVENTS: [&str; 6] = [
    "base_state",
    "content_changed",
    "article_unserved",
    "agent_offline",
    "store_unwritable",
    "reload_failed",
];

/// What the daemon's health adds to the snapshot's conditions.
#[derive(Default)]
pub struct Health {
    pub store_error: Option<String>,
    pub reload_error: Option<String>,
    /// Agents that are offline (name, country).
    pub agents_offline: Vec<(String, String)>,
}

/// Diverged on at least this share of a base's probed articles (and on
/// this many at least): a seizure or tampering, not one edit.
const MANY_SHARE: f64 = 0.5;
const MANY_AT_LEAST: usize = 3;

/// Every condition that holds in `snapshot` and `health`.
pub fn conditions(snapshot: &Snapshot, health: &Health) -> Vec<Condition> {
    let mut out = Vec::new();
    for (meta, view) in snapshot.catalog.sites.iter().zip(&snapshot.sites) {
        for (url, base) in meta.base_names.iter().zip(&view.bases) {
            let top_reason = crate::verdict::Reason::ALL
                .iter()
                .filter(|r| base.reason_counts[r.index()] > 0)
                .max_by_key(|r| base.reason_counts[r.index()])
                .map(|r| r.as_str());
            if base.state != BaseState::Up {
                let severity = if base.state == BaseState::Down {
                    Severity::Critical
                } else {
                    Severity::Warning
                };
                let why = top_reason.map(|r| format!(" ({r})")).unwrap_or_default();
                out.push(Condition {
                    key: format!("base_state/{}/{url}", meta.name),
                    event: "base_state",
                    severity,
                    site: Some(meta.name.to_string()),
                    base: Some(url.to_string()),
                    summary: format!("{url} of {} is {}{why}", meta.name, base.state.as_str()),
                });
            }
            let diverged = base.verdict_counts[Verdict::Diverged.index()];
            let probed: usize =
                base.verdict_counts.iter().sum::<usize>() - base.verdict_counts[Verdict::Unknown.index()];
            if diverged >= MANY_AT_LEAST && probed > 0 && diverged as f64 / probed as f64 >= MANY_SHARE {
                out.push(Condition {
                    key: format!("content_changed/{}/{url}", meta.name),
                    event: "content_changed",
                    severity: Severity::Critical,
                    site: Some(meta.name.to_string()),
                    base: Some(url.to_string()),
                    summary: format!(
                        "{url} of {} serves other content on {diverged} of {probed} articles{} — possible seizure or tampering",
                        meta.name,
                        top_reason.map(|r| format!(" (mostly {r})")).unwrap_or_default()
                    ),
                });
            }
        }
        let unserved = view.articles_without_base();
        if unserved > 0 {
            out.push(Condition {
                key: format!("article_unserved/{}", meta.name),
                event: "article_unserved",
                severity: Severity::Warning,
                site: Some(meta.name.to_string()),
                base: None,
                summary: format!("{unserved} article(s) of {} have no base serving them", meta.name),
            });
        }
    }
    for (agent, country) in &health.agents_offline {
        out.push(Condition {
            key: format!("agent_offline/{agent}"),
            event: "agent_offline",
            severity: Severity::Warning,
            site: None,
            base: None,
            summary: format!("agent {agent} ({country}) is offline"),
        });
    }
    if let Some(error) = &health.store_error {
        out.push(Condition {
            key: "store_unwritable".into(),
            event: "store_unwritable",
            severity: Severity::Critical,
            site: None,
            base: None,
            summary: format!("the store takes no writes: {error}"),
        });
    }
    if let Some(error) = &health.reload_error {
        out.push(Condition {
            key: "reload_failed".into(),
            event: "reload_failed",
            severity: Severity::Warning,
            site: None,
            base: None,
            summary: format!("the last config reload failed: {error}"),
        });
    }
    out
}
