//! `mirrorgate store copy --from SOURCE --to TARGET [--force]`: the whole
//! store, table by table, from SQLite to PostgreSQL (how an operator moves
//! to a shared store), back, or between two of a kind.
//!
//! Rows go in pages, each page one transaction on the target; ids are
//! copied as they are (the rollups name articles by id), and PostgreSQL's
//! sequences are moved past them afterwards. A target with any row is
//! refused unless `--force`, which empties it first. The counts are
//! checked against the source's at the end.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use crate::store::{PostgresStore, PostgresTarget, SqliteStore, Store, StoreError, TABLES};

/// Rows read and written at once.
const PAGE: u64 = 10_000;

/// A store named on the command line: a postgres URL, else an SQLite path.
pub enum Location {
    Sqlite(PathBuf),
    Postgres(crate::config::PostgresConfig),
}

impl Location {
    pub fn parse(text: &str) -> Result<Location, String> {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            crate::config::postgres_store(text)
                .map(Location::Postgres)
                .map_err(|e| format!("{text}: {e}"))
        } else if text.is_empty() {
            Err("an empty store location".into())
        } else if let Some((scheme, _)) = text.split_once("://") {
            Err(format!(
                "{text}: a {scheme}:// store is not supported (a postgres:// URL or an SQLite file)"
            ))
        } else {
            Ok(Location::Sqlite(PathBuf::from(text)))
        }
    }

    /// What messages call it: the path, or the URL without its password.
    pub fn shown(&self) -> String {
        match self {
            Location::Sqlite(path) => path.display().to_string(),
            Location::Postgres(config) => config.shown.clone(),
        }
    }

    fn same_as(&self, other: &Location) -> bool {
        match (self, other) {
            (Location::Sqlite(a), Location::Sqlite(b)) => {
                a == b || a.canonicalize().ok().is_some_and(|a| b.canonicalize().ok() == Some(a))
            }
            _ => self.shown() == other.shown(),
        }
    }

    fn open(&self, must_exist: bool) -> Result<Box<dyn Store>, CopyError> {
        match self {
            Location::Sqlite(path) if must_exist && !path.is_file() => {
                Err(CopyError::Usage(format!("{}: no SQLite store there", path.display())))
            }
            Location::Sqlite(path) => Ok(Box::new(SqliteStore::open(path, Duration::from_secs(5))?)),
            Location::Postgres(config) => Ok(Box::new(PostgresStore::open(PostgresTarget::of(config, None)?)?)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// Exit 2: the command line names something that cannot be used.
    #[error("{0}")]
    Usage(String),
    /// Exit 1: the target holds rows and `--force` was not given.
    #[error("{target} is not empty ({rows} rows: {tables}); --force empties it first")]
    NotEmpty { target: String, rows: u64, tables: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{table}: {copied} rows copied but the target holds {found}")]
    Mismatch {
        table: &'static str,
        copied: u64,
        found: u64,
    },
}

/// Copies every table; writes a line per table to `out` as it goes and
/// returns the rows copied per table.
pub fn copy(
    from: &Location,
    to: &Location,
    force: bool,
    out: &mut dyn Write,
) -> Result<Vec<(&'static str, u64)>, CopyError> {
    if from.same_as(to) {
        return Err(CopyError::Usage(format!(
            "--from and --to are the same store ({})",
            from.shown()
        )));
    }
    let mut source = from.open(true)?;
    let mut target = to.open(false)?;
    let held: Vec<(&str, u64)> = target.row_counts()?.into_iter().filter(|(_, n)| *n > 0).collect();
    if !held.is_empty() {
        if !force {
            return Err(CopyError::NotEmpty {
                target: to.shown(),
                rows: held.iter().map(|(_, n)| n).sum(),
                tables: held
                    .iter()
                    .map(|(t, n)| format!("{t} {n}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        target.clear()?;
    }
    let mut copied = Vec::new();
    for table in TABLES {
        let mut rows_copied = 0u64;
        loop {
            let rows = source.read_rows(table, rows_copied, PAGE)?;
            if rows.is_empty() {
                break;
            }
            target.write_rows(table, &rows)?;
            rows_copied += rows.len() as u64;
            if (rows.len() as u64) < PAGE {
                break;
            }
        }
        let _ = writeln!(out, "{:<14} {rows_copied:>12}", table.name);
        copied.push((table.name, rows_copied));
    }
    target.ids_copied()?;
    let found = target.row_counts()?;
    for (&(table, rows), (_, held)) in copied.iter().zip(&found) {
        if rows != *held {
            return Err(CopyError::Mismatch {
                table,
                copied: rows,
                found: *held,
            });
        }
    }
    Ok(copied)
}
