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

/// Per sink, in config order; swapped when a reload changes the sinks.
pub type Counters = Arc<arc_swap::ArcSwap<Vec<(String, Arc<SinkCounters>)>>>;

/// The running alert tasks: their counters, and where a reload sends the
/// new `[[alerts]]`.
#[derive(Clone)]
pub struct Alerts {
    pub counters: Counters,
    reconfigure: mpsc::Sender<Vec<SinkConfig>>,
}

impl Alerts {
    /// Takes the sinks of a reloaded config: a sink whose entry is
    /// unchanged keeps its queue and counts, a changed or new one starts
    /// afresh, a removed one sends what it has queued and stops.
    pub async fn reconfigure(&self, sinks: Vec<SinkConfig>) {
        let _ = self.reconfigure.send(sinks).await;
    }
}

/// One sink as it runs.
struct Running {
    config: SinkConfig,
    queue: mpsc::Sender<Notification>,
    counters: Arc<SinkCounters>,
}

/// The sinks `configs` asks for, reusing from `old` what did not change.
fn start_sinks(
    configs: Vec<SinkConfig>,
    old: Vec<Running>,
    client: &reqwest::Client,
    stop: &CancellationToken,
) -> Vec<Running> {
    let mut old = old;
    configs
        .into_iter()
        .map(|config| {
            let same = old
                .iter()
                .position(|r| format!("{:?}", r.config) == format!("{config:?}"));
            match same {
                Some(index) => old.swap_remove(index),
                None => {
                    let (queue, rx) = mpsc::channel(QUEUE);
                    let counters = Arc::new(SinkCounters::default());
                    tokio::spawn(deliver(
                        config.clone(),
                        client.clone(),
                        rx,
                        counters.clone(),
                        stop.clone(),
                    ));
                    Running {
                        config,
                        queue,
                        counters,
                    }
                }
            }
        })
        .collect()
}

fn counters_of(running: &[Running]) -> Vec<(String, Arc<SinkCounters>)> {
    running
        .iter()
        .map(|r| (r.config.name.clone(), r.counters.clone()))
        .collect()
}

/// Notifications waiting per sink, at most.
const QUEUE: usize = 1000;
const ATTEMPTS: u32 = 5;
const FIRST_RETRY: Duration = Duration::from_secs(1);
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How often conditions are read.
const EVERY: Duration = Duration::from_secs(1);

/// A condition a sink is watching: since when it holds, and whether its
/// `firing` was sent (then a `resolved` is owed when it clears).
#[derive(Clone, Debug)]
struct Held {
    since: UnixMillis,
    fired: bool,
    condition: Condition,
}

/// Per sink name, the conditions held, by condition key. Kept in the store
/// ([`Keeps`](crate::state::kept::Keeps)): after a restart a firing alert is not
/// sent again, and its `resolved` still is.
#[derive(Default)]
pub struct Book(std::sync::Mutex<HashMap<String, HashMap<String, Held>>>);

/// A held condition as kept in the store.
#[derive(Serialize, serde::Deserialize)]
struct KeptHeld {
    since: UnixMillis,
    fired: bool,
    event: String,
    severity: Severity,
    site: Option<String>,
    base: Option<String>,
    summary: String,
}

/// Separates the sink's name from the condition's key in a kept entry.
const KEY_SEPARATOR: char = '\u{1f}';

impl crate::state::kept::Keeps for Book {
    fn kind(&self) -> &'static str {
        "alerts.held"
    }

    fn export(&self) -> Vec<(String, String)> {
        let book = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut entries = Vec::new();
        for (sink, held) in book.iter() {
            for (key, h) in held {
                let kept = KeptHeld {
                    since: h.since,
                    fired: h.fired,
                    event: h.condition.event.to_string(),
                    severity: h.condition.severity,
                    site: h.condition.site.clone(),
                    base: h.condition.base.clone(),
                    summary: h.condition.summary.clone(),
                };
                if let Ok(value) = serde_json::to_string(&kept) {
                    entries.push((format!("{sink}{KEY_SEPARATOR}{key}"), value));
                }
            }
        }
        entries
    }

    fn restore(&self, entries: &[(String, String)]) {
        let mut book = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for (entry_key, value) in entries {
            let Some((sink, key)) = entry_key.split_once(KEY_SEPARATOR) else {
                continue;
            };
            let Ok(kept) = serde_json::from_str::<KeptHeld>(value) else {
                continue;
            };
            let Some(event) = conditions::EVENTS.into_iter().find(|e| *e == kept.event) else {
                continue;
            };
            let condition = Condition {
                key: key.to_string(),
                event,
                severity: kept.severity,
                site: kept.site,
                base: kept.base,
                summary: kept.summary,
            };
            book.entry(sink.to_string()).or_default().insert(
                key.to_string(),
                Held {
                    since: kept.since,
                    fired: kept.fired,
                    condition,
                },
            );
        }
    }
}

impl Book {
    /// Replaces the book with a kept one (a new leader takes the old
    /// leader's).
    pub fn reload(&self, entries: &[(String, String)]) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clear();
        crate::state::kept::Keeps::restore(self, entries);
    }
}

/// Starts the evaluator and one sender per sink; returns their counters.
/// `book` holds what was held before a restart, and is kept up to date.
/// Conditions are read only while `leads()`: of instances sharing a store,
/// one sends alerts.
pub fn spawn(
    sinks: Vec<SinkConfig>,
    snapshots: Snapshots,
    health: impl Fn() -> Health + Send + 'static,
    leads: impl Fn() -> bool + Send + 'static,
    book: Arc<Book>,
    stop: CancellationToken,
) -> Alerts {
    let client = reqwest::Client::builder()
        .timeout(SEND_TIMEOUT)
        .user_agent(format!("mirrorgate/{}", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default();
    let mut running = start_sinks(sinks, Vec::new(), &client, &stop);
    let counters: Counters = Arc::new(arc_swap::ArcSwap::from_pointee(counters_of(&running)));
    let (reconfigure, mut reconfigured) = mpsc::channel(4);
    let published = counters.clone();
    tokio::spawn(async move {
        loop {
            // Sinks no longer configured owe nothing.
            book.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|name, _| running.iter().any(|r| &r.config.name == name));
            tokio::select! {
                _ = stop.cancelled() => return,
                Some(sinks) = reconfigured.recv() => {
                    running = start_sinks(sinks, std::mem::take(&mut running), &client, &stop);
                    published.store(Arc::new(counters_of(&running)));
                    continue;
                }
                _ = tokio::time::sleep(EVERY) => {}
            }
            if running.is_empty() || !leads() {
                continue;
            }
            let now = now_ms();
            let current = conditions(&snapshots.load(), &health());
            let mut book = book.0.lock().unwrap_or_else(|e| e.into_inner());
            for sink in &running {
                let config = &sink.config;
                let wanted: Vec<&Condition> = current
                    .iter()
                    .filter(|c| c.severity >= config.min_severity)
                    .filter(|c| config.sites.is_empty() || c.site.as_ref().is_none_or(|s| config.sites.contains(s)))
                    .collect();
                let table = book.entry(config.name.clone()).or_default();
                let mut outgoing = Vec::new();
                for condition in &wanted {
                    let entry = table.entry(condition.key.clone()).or_insert_with(|| Held {
                        since: now,
                        fired: false,
                        condition: (*condition).clone(),
                    });
                    entry.condition = (*condition).clone();
                    if !entry.fired && now - entry.since >= config.hold.as_millis() as i64 {
                        entry.fired = true;
                        outgoing.push(notification(config, condition, "firing", entry.since, now));
                    }
                }
                let cleared: Vec<String> = table
                    .keys()
                    .filter(|k| !wanted.iter().any(|c| &c.key == *k))
                    .cloned()
                    .collect();
                for key in cleared {
                    if let Some(held) = table.remove(&key)
                        && held.fired
                    {
                        outgoing.push(notification(config, &held.condition, "resolved", held.since, now));
                    }
                }
                for message in outgoing {
                    if sink.queue.try_send(message).is_err() {
                        sink.counters.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    });
    Alerts { counters, reconfigure }
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
