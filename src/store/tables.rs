//! The tables every backend keeps, column by column, in one place: what
//! `store copy` moves between SQLite and PostgreSQL, and what both
//! backends' schemas must match (tests/store.rs copies both ways).

/// How a column's values travel between backends. PostgreSQL needs the
/// exact width; SQLite keeps every integer as one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnType {
    /// BIGINT.
    Int,
    /// INTEGER (32-bit in PostgreSQL).
    Int32,
    Text,
    Bytes,
    /// BOOLEAN in PostgreSQL, 0/1 in SQLite.
    Bool,
}

/// One value of a copied row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cell {
    Null,
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
    Bool(bool),
}

pub struct Table {
    pub name: &'static str,
    pub columns: &'static [(&'static str, ColumnType)],
    /// What rows are read in order of, for paging.
    pub order_by: &'static str,
    /// A column filled from a sequence (PostgreSQL's must move past what
    /// a copy wrote).
    pub serial: Option<&'static str>,
}

use ColumnType::{Bool, Bytes, Int, Int32, Text};

/// Every table, in the order a copy writes them (ids before what names them).
pub const TABLES: &[Table] = &[
    Table {
        name: "article_ids",
        columns: &[("id", Int), ("site", Text), ("article", Text)],
        order_by: "id",
        serial: Some("id"),
    },
    Table {
        name: "probes",
        columns: &[
            ("id", Int),
            ("site", Text),
            ("base", Text),
            ("article", Text),
            ("at", Int),
            ("outcome", Text),
            ("http_status", Int32),
            ("latency_ms", Int),
            ("raw_hash", Bytes),
            ("hash", Bytes),
            ("page_class", Text),
        ],
        order_by: "id",
        serial: Some("id"),
    },
    Table {
        name: "latest",
        columns: &[
            ("site", Text),
            ("base", Text),
            ("article", Text),
            ("is_primary", Bool),
            ("at", Int),
            ("outcome", Text),
            ("http_status", Int32),
            ("latency_ms", Int),
            ("raw_hash", Bytes),
            ("hash", Bytes),
            ("last_ok_at", Int),
            ("text_len", Int),
            ("title_words", Int),
            ("page_flags", Int32),
            ("page_class", Text),
            ("rules", Int),
        ],
        order_by: "site, base, article",
        serial: None,
    },
    Table {
        name: "versions",
        columns: &[
            ("site", Text),
            ("article", Text),
            ("hash", Bytes),
            ("first_seen", Int),
            ("last_seen", Int),
            ("text_len", Int),
            ("title_words", Int),
            ("page_flags", Int32),
            ("rules", Int),
        ],
        order_by: "site, article, hash",
        serial: None,
    },
    Table {
        name: "base_hours",
        columns: &[
            ("site", Text),
            ("base", Text),
            ("hour", Int),
            ("outcome", Text),
            ("verdict", Text),
            ("probes", Int),
            ("latency_sum_ms", Int),
            ("ms_le_50", Int),
            ("ms_le_100", Int),
            ("ms_le_250", Int),
            ("ms_le_500", Int),
            ("ms_le_1000", Int),
            ("ms_le_2500", Int),
            ("ms_le_5000", Int),
            ("ms_over_5000", Int),
        ],
        order_by: "site, base, hour, outcome, verdict",
        serial: None,
    },
    Table {
        name: "article_hours",
        columns: &[
            ("article_id", Int),
            ("hour", Int),
            ("probes", Int),
            ("ok", Int),
            ("same", Int),
            ("stale", Int),
            ("diverged", Int),
            ("missing", Int),
            ("unknown", Int),
            ("unreachable", Int),
            ("latency_sum_ms", Int),
        ],
        order_by: "hour, article_id",
        serial: None,
    },
    Table {
        name: "base_minutes",
        columns: &[("base", Text), ("minute", Int), ("probes", Int), ("ok", Int)],
        order_by: "base, minute",
        serial: None,
    },
    Table {
        name: "discovered",
        columns: &[
            ("site", Text),
            ("path", Text),
            ("position", Int),
            ("date", Int),
            ("source", Text),
            ("first_seen", Int),
        ],
        order_by: "site, path",
        serial: None,
    },
    Table {
        name: "kept",
        columns: &[("kind", Text), ("key", Text), ("value", Text)],
        order_by: "kind, key",
        serial: None,
    },
];

impl Table {
    pub fn column_list(&self) -> String {
        self.columns
            .iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join(", ")
    }
}
