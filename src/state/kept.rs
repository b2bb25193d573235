//! The seam between what the daemon holds in memory and the store's
//! `kept` table: a part says what it holds and takes it back. Pure (no
//! store, no I/O), so parts at any layer — the evidence, the alert book,
//! the vantage board — can implement it; `cmd::keep` does the writing.

/// A part of the daemon whose in-memory state is kept in the store: it
/// names its kind, says what it holds now as (key, JSON) entries, and takes
/// them back at start. Entries it cannot read are skipped, not fatal: a
/// restart must never fail on what an older version kept.
pub trait Keeps: Send + Sync {
    fn kind(&self) -> &'static str;
    /// A count that moves whenever what [`export`](Self::export) returns
    /// would: when it has not, the keeper skips the export. None: always
    /// export (small parts).
    fn changes(&self) -> Option<u64> {
        None
    }
    fn export(&self) -> Vec<(String, String)>;
    fn restore(&self, entries: &[(String, String)]);
}
