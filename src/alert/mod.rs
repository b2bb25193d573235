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
use crate::state::snapshot::Snapshots;

mod conditions;
pub use conditions::{Condition, Health, conditions};

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
