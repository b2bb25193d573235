//! Keeps what the daemon holds in memory besides probe results — alerts
//! held and sent, when each mirror was first listed, evidence, proposals,
//! leaks — in the store, so a restart shows what it showed before and
//! sends no alert twice.
//!
//! Each part implements [`Keeps`]. Every [`EVERY`] the keeper asks each
//! part what it holds and writes the kinds that changed (through the
//! writer, never from a request path); shutdown saves once more after the
//! last round, so only a kill -9 can lose up to [`EVERY`] of it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::state::kept::Keeps;
use crate::store::{Kept, StoreWriter};

pub const EVERY: Duration = Duration::from_secs(2);

pub struct Keeper {
    parts: Vec<Arc<dyn Keeps>>,
    /// What was last written per kind, so an unchanged kind costs nothing.
    written: Mutex<HashMap<&'static str, Vec<(String, String)>>>,
    /// [`Keeps::changes`] at the last write, per kind that counts them.
    changes: Mutex<HashMap<&'static str, u64>>,
    /// What the store kept was handed to the parts. Not yet when the
    /// store was away at start: then nothing is written before it was, so
    /// this instance's partial memory never replaces what is kept.
    restored: std::sync::atomic::AtomicBool,
}

impl Keeper {
    /// Hands each part the entries of its kind from `kept` (loaded at
    /// start; None when the store was away, and read at the first save).
    pub fn restore(parts: Vec<Arc<dyn Keeps>>, kept: Option<Vec<Kept>>) -> Arc<Keeper> {
        let keeper = Arc::new(Keeper {
            parts,
            written: Mutex::new(HashMap::new()),
            changes: Mutex::new(HashMap::new()),
            restored: std::sync::atomic::AtomicBool::new(kept.is_some()),
        });
        if let Some(kept) = kept {
            keeper.hand_over(kept);
        }
        keeper
    }

    fn hand_over(&self, kept: Vec<Kept>) {
        let mut by_kind: HashMap<String, Vec<(String, String)>> = HashMap::new();
        for entry in kept {
            by_kind.entry(entry.kind).or_default().push((entry.key, entry.value));
        }
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        for part in &self.parts {
            let entries = by_kind.remove(part.kind()).unwrap_or_default();
            part.restore(&entries);
            written.insert(part.kind(), entries);
        }
        drop(written);
        for part in &self.parts {
            self.note_changes(part.kind(), part.changes());
        }
    }

    /// Writes every kind whose entries changed since the last save; only
    /// the leader writes (instances sharing a store would overwrite each
    /// other's).
    pub async fn save(&self, writer: &StoreWriter) {
        if !writer.health.leader.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        if !self.restored.load(std::sync::atomic::Ordering::Relaxed) {
            match writer.load_kept().await {
                Ok(kept) => {
                    self.hand_over(kept);
                    self.restored.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                Err(_) => return,
            }
        }
        for part in &self.parts {
            let changes = part.changes();
            let last = self
                .changes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(part.kind())
                .copied();
            if changes.is_some() && changes == last {
                continue;
            }
            let mut entries = part.export();
            entries.sort();
            let unchanged = self
                .written
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(part.kind())
                .is_some_and(|last| *last == entries);
            if unchanged {
                self.note_changes(part.kind(), changes);
                continue;
            }
            let rows = entries
                .iter()
                .map(|(key, value)| Kept {
                    kind: part.kind().to_string(),
                    key: key.clone(),
                    value: value.clone(),
                })
                .collect();
            if !writer.keep(part.kind(), rows).await {
                continue;
            }
            self.written
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(part.kind(), entries);
            self.note_changes(part.kind(), changes);
        }
    }

    fn note_changes(&self, kind: &'static str, changes: Option<u64>) {
        if let Some(changes) = changes {
            self.changes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(kind, changes);
        }
    }

    /// Saves every [`EVERY`] until shutdown (which saves once more itself).
    pub async fn run(self: Arc<Self>, writer: StoreWriter, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(EVERY) => {}
            }
            self.save(&writer).await;
        }
    }
}
