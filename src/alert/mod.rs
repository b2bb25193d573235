//! Alerts: conditions read from the snapshot and the daemon's health every
//! few seconds, delivered to `[[alerts]]` sinks (a generic JSON webhook,
//! Slack, ntfy) once they have held for the sink's `for`, and again as
//! resolved when they clear. Each sink has its own bounded queue and
//! retries with back-off, so a sink that hangs delays nobody else.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::clock::{UnixMillis, now_ms, rfc3339};
use crate::config::{Severity, SinkConfig, SinkKind};
use crate::state::snapshot::BaseState;
use crate::state::snapshot::Snapshots;
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
pub fn conditions(snapshot: &crate::state::snapshot::Snapshot, health: &Health) -> Vec<Condition> {
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

/// The generic webhook body (documented in the README).
#[derive(Clone, Debug, Serialize)]
pub struct Notification {
    pub sink: String,
    pub event: &'static str,
    /// `firing`, then `resolved`.
    pub status: &'static str,
    pub severity: Severity,
    pub site: Option<String>,
    pub base: Option<String>,
    pub summary: String,
    pub started_at: String,
    pub at: String,
}

/// Per sink, for `/metrics`.
#[derive(Default, Debug)]
pub struct SinkCounters {
    pub delivered: AtomicU64,
    pub failed: AtomicU64,
    pub dropped: AtomicU64,
}

pub type Counters = Arc<Vec<(String, Arc<SinkCounters>)>>;

/// Notifications waiting per sink, at most.
const QUEUE: usize = 1000;
const ATTEMPTS: u32 = 5;
const FIRST_RETRY: Duration = Duration::from_secs(1);
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How often conditions are read.
const EVERY: Duration = Duration::from_secs(1);

/// Starts the evaluator and one sender per sink; returns their counters.
pub fn spawn(
    sinks: Vec<SinkConfig>,
    snapshots: Snapshots,
    health: impl Fn() -> Health + Send + 'static,
    stop: CancellationToken,
) -> Counters {
    let client = reqwest::Client::builder()
        .timeout(SEND_TIMEOUT)
        .user_agent(format!("mirrorgate/{}", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default();
    let mut senders = Vec::new();
    let mut counters = Vec::new();
    for sink in &sinks {
        let (tx, rx) = mpsc::channel(QUEUE);
        let sink_counters = Arc::new(SinkCounters::default());
        tokio::spawn(deliver(
            sink.clone(),
            client.clone(),
            rx,
            sink_counters.clone(),
            stop.clone(),
        ));
        senders.push(tx);
        counters.push((sink.name.clone(), sink_counters));
    }
    let counters: Counters = Arc::new(counters);
    let dropped = counters.clone();
    tokio::spawn(async move {
        // Per sink: condition key -> (when first seen, sent as firing).
        let mut held: Vec<HashMap<String, (UnixMillis, bool, Condition)>> = vec![HashMap::new(); sinks.len()];
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(EVERY) => {}
            }
            let now = now_ms();
            let current = conditions(&snapshots.load(), &health());
            for (index, sink) in sinks.iter().enumerate() {
                let wanted: Vec<&Condition> = current
                    .iter()
                    .filter(|c| c.severity >= sink.min_severity)
                    .filter(|c| sink.sites.is_empty() || c.site.as_ref().is_none_or(|s| sink.sites.contains(s)))
                    .collect();
                let table = &mut held[index];
                let mut outgoing = Vec::new();
                for condition in &wanted {
                    let entry = table
                        .entry(condition.key.clone())
                        .or_insert((now, false, (*condition).clone()));
                    entry.2 = (*condition).clone();
                    if !entry.1 && now - entry.0 >= sink.hold.as_millis() as i64 {
                        entry.1 = true;
                        outgoing.push(notification(sink, condition, "firing", entry.0, now));
                    }
                }
                let cleared: Vec<String> = table
                    .keys()
                    .filter(|k| !wanted.iter().any(|c| &c.key == *k))
                    .cloned()
                    .collect();
                for key in cleared {
                    if let Some((since, fired, condition)) = table.remove(&key)
                        && fired
                    {
                        outgoing.push(notification(sink, &condition, "resolved", since, now));
                    }
                }
                for message in outgoing {
                    if senders[index].try_send(message).is_err() {
                        dropped[index].1.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    });
    counters
}

fn notification(
    sink: &SinkConfig,
    condition: &Condition,
    status: &'static str,
    since: UnixMillis,
    now: UnixMillis,
) -> Notification {
    Notification {
        sink: sink.name.clone(),
        event: condition.event,
        status,
        severity: condition.severity,
        site: condition.site.clone(),
        base: condition.base.clone(),
        summary: condition.summary.clone(),
        started_at: rfc3339(since),
        at: rfc3339(now),
    }
}

/// Sends one sink's notifications in order, each retried with back-off.
async fn deliver(
    sink: SinkConfig,
    client: reqwest::Client,
    mut queue: mpsc::Receiver<Notification>,
    counters: Arc<SinkCounters>,
    stop: CancellationToken,
) {
    while let Some(message) = tokio::select! {
        _ = stop.cancelled() => None,
        message = queue.recv() => message,
    } {
        let mut delay = FIRST_RETRY;
        let mut delivered = false;
        for attempt in 1..=ATTEMPTS {
            match send(&client, &sink, &message).await {
                Ok(()) => {
                    delivered = true;
                    break;
                }
                Err(error) => {
                    tracing::warn!(sink = sink.name, attempt, %error, event = message.event, "alert not delivered");
                    if attempt < ATTEMPTS {
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            _ = tokio::time::sleep(delay) => {}
                        }
                        delay = (delay * 2).min(Duration::from_secs(60));
                    }
                }
            }
        }
        if delivered {
            counters.delivered.fetch_add(1, Ordering::Relaxed);
        } else {
            counters.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn send(client: &reqwest::Client, sink: &SinkConfig, message: &Notification) -> Result<(), String> {
    let mut request = client.post(&sink.url);
    for (name, value) in &sink.headers {
        request = request.header(name, value);
    }
    let title = format!("[{}] {}", message.status, message.summary);
    request = match sink.kind {
        SinkKind::Webhook => request
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(message).map_err(|e| e.to_string())?),
        SinkKind::Slack => request
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(serde_json::json!({ "text": format!("mirrorgate {title}") }).to_string()),
        SinkKind::Ntfy => request
            .header("Title", format!("mirrorgate: {} {}", message.event, message.status))
            .header(
                "Priority",
                match (message.status, message.severity) {
                    ("resolved", _) | (_, Severity::Info) => "default",
                    (_, Severity::Warning) => "high",
                    (_, Severity::Critical) => "urgent",
                },
            )
            .header(
                "Tags",
                if message.status == "resolved" {
                    "white_check_mark"
                } else {
                    "warning"
                },
            )
            .body(message.summary.clone()),
    };
    let response = request
        .send()
        .await
        .map_err(|e| format!("cannot reach the sink: {e}"))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("the sink answered {}", response.status()))
    }
}
