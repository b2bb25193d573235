//! The embedded SQLite store (WAL, one writer connection).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, params};

use super::rollups::{HOUR_MS, Rollups};
use super::{
    Cell, ColumnType, Kept, MinuteCount, ProbeRecord, Store, StoreError, StoredState, StoredVersion, TABLES, Table,
};
use crate::clock::UnixMillis;
use crate::fingerprint::{Hash, PageClass, PageFacts, RawHash};
use crate::verdict::Verdict;
use crate::verdict::observation::{Observation, Outcome};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS probes (
    id INTEGER PRIMARY KEY,
    site TEXT NOT NULL,
    base TEXT NOT NULL,
    article TEXT NOT NULL,
    at INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    http_status INTEGER,
    latency_ms INTEGER NOT NULL,
    raw_hash BLOB,
    hash BLOB
);
CREATE INDEX IF NOT EXISTS probes_at ON probes (at);
CREATE INDEX IF NOT EXISTS probes_base_ok ON probes (base, id) WHERE outcome = 'ok';
CREATE TABLE IF NOT EXISTS latest (
    site TEXT NOT NULL,
    base TEXT NOT NULL,
    article TEXT NOT NULL,
    is_primary INTEGER NOT NULL,
    at INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    http_status INTEGER,
    latency_ms INTEGER NOT NULL,
    raw_hash BLOB,
    hash BLOB,
    last_ok_at INTEGER,
    PRIMARY KEY (site, base, article)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS versions (
    site TEXT NOT NULL,
    article TEXT NOT NULL,
    hash BLOB NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    PRIMARY KEY (site, article, hash)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS article_ids (
    id INTEGER PRIMARY KEY,
    site TEXT NOT NULL,
    article TEXT NOT NULL,
    UNIQUE (site, article)
);
CREATE TABLE IF NOT EXISTS base_hours (
    site TEXT NOT NULL,
    base TEXT NOT NULL,
    hour INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    verdict TEXT NOT NULL,
    probes INTEGER NOT NULL,
    latency_sum_ms INTEGER NOT NULL,
    ms_le_50 INTEGER NOT NULL,
    ms_le_100 INTEGER NOT NULL,
    ms_le_250 INTEGER NOT NULL,
    ms_le_500 INTEGER NOT NULL,
    ms_le_1000 INTEGER NOT NULL,
    ms_le_2500 INTEGER NOT NULL,
    ms_le_5000 INTEGER NOT NULL,
    ms_over_5000 INTEGER NOT NULL,
    PRIMARY KEY (site, base, hour, outcome, verdict)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS article_hours (
    article_id INTEGER NOT NULL,
    hour INTEGER NOT NULL,
    probes INTEGER NOT NULL,
    ok INTEGER NOT NULL,
    same INTEGER NOT NULL,
    stale INTEGER NOT NULL,
    diverged INTEGER NOT NULL,
    missing INTEGER NOT NULL,
    unknown INTEGER NOT NULL,
    unreachable INTEGER NOT NULL,
    latency_sum_ms INTEGER NOT NULL,
    -- Hour first: a batch touches one hour's rows, side by side, and pruning
    -- removes a range.
    PRIMARY KEY (hour, article_id)
) WITHOUT ROWID;
-- Articles discovery found, kept so they survive a restart. first_seen
-- stays from the first run that listed the path.
CREATE TABLE IF NOT EXISTS discovered (
    site TEXT NOT NULL,
    path TEXT NOT NULL,
    position INTEGER NOT NULL,
    date INTEGER,
    source TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    PRIMARY KEY (site, path)
) WITHOUT ROWID;
-- What the daemon keeps in memory besides probes (store::Kept), as JSON.
CREATE TABLE IF NOT EXISTS kept (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (kind, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS base_minutes (
    base TEXT NOT NULL,
    minute INTEGER NOT NULL,
    probes INTEGER NOT NULL,
    ok INTEGER NOT NULL,
    PRIMARY KEY (base, minute)
) WITHOUT ROWID;
";

/// Columns added since the first schema, added to an older file when it
/// is opened: (table, column, definition).
const ADDED_COLUMNS: [(&str, &str, &str); 10] = [
    ("latest", "text_len", "INTEGER NOT NULL DEFAULT 0"),
    ("latest", "title_words", "INTEGER NOT NULL DEFAULT 0"),
    ("latest", "page_flags", "INTEGER NOT NULL DEFAULT 0"),
    ("latest", "page_class", "TEXT"),
    // What a body was fingerprinted under: 0, as stored by older versions,
    // matches no rules, so nothing from before is reused.
    ("latest", "rules", "INTEGER NOT NULL DEFAULT 0"),
    ("versions", "text_len", "INTEGER NOT NULL DEFAULT 0"),
    ("versions", "title_words", "INTEGER NOT NULL DEFAULT 0"),
    ("versions", "page_flags", "INTEGER NOT NULL DEFAULT 0"),
    ("versions", "rules", "INTEGER NOT NULL DEFAULT 0"),
    ("probes", "page_class", "TEXT"),
];

fn add_missing_columns(connection: &Connection) -> rusqlite::Result<()> {
    for (table, column, definition) in ADDED_COLUMNS {
        let mut columns = connection.prepare(&format!("PRAGMA table_info({table})"))?;
        let present = columns
            .query_map([], |row| row.get::<_, String>(1))?
            .collect::<Result<Vec<_>, _>>()?
            .iter()
            .any(|c| c == column);
        if !present {
            connection.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {definition}"))?;
        }
    }
    Ok(())
}

fn class_name(class: Option<PageClass>) -> Option<&'static str> {
    class.map(PageClass::as_str)
}

fn class_parse(name: Option<String>) -> Option<PageClass> {
    use PageClass as C;
    [C::BlockPage, C::Parked, C::Soft404, C::NotHtml, C::Truncated]
        .into_iter()
        .find(|c| name.as_deref() == Some(c.as_str()))
}

pub struct SqliteStore {
    connection: Connection,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens (creating if needed) the store for reading and writing. A
    /// lock held by another process (an operator's sqlite3) is waited on for
    /// `busy_timeout`; past that the write fails and is retried later.
    pub fn open(path: &Path, busy_timeout: Duration) -> Result<Self, StoreError> {
        let fail = |source: rusqlite::Error| StoreError {
            path: path.display().to_string(),
            source: source.into(),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // A missing directory surfaces as SQLite's own open error below.
            let _ = std::fs::create_dir_all(dir);
        }
        let connection = Connection::open(path).map_err(fail)?;
        connection.busy_timeout(busy_timeout).map_err(fail)?;
        connection
            .execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
            .map_err(fail)?;
        connection.execute_batch(SCHEMA).map_err(fail)?;
        add_missing_columns(&connection).map_err(fail)?;
        Ok(SqliteStore {
            connection,
            path: path.to_path_buf(),
        })
    }

    /// Opens an existing store without writing to it (`mirrorgate check`).
    pub fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        let connection = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .and_then(|c| {
                c.busy_timeout(Duration::from_secs(10))?;
                Ok(c)
            })
            .map_err(|source| StoreError {
                path: path.display().to_string(),
                source: source.into(),
            })?;
        Ok(SqliteStore {
            connection,
            path: path.to_path_buf(),
        })
    }

    fn error(&self, source: rusqlite::Error) -> StoreError {
        StoreError {
            path: self.path.display().to_string(),
            source: source.into(),
        }
    }

    fn write(&mut self, batch: &[ProbeRecord]) -> rusqlite::Result<()> {
        let tx = self.connection.transaction()?;
        {
            let mut insert_probe = tx.prepare_cached(
                "INSERT INTO probes (site, base, article, at, outcome, http_status, latency_ms, raw_hash, hash, page_class)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?;
            let mut upsert_latest = tx.prepare_cached(
                "INSERT INTO latest (site, base, article, is_primary, at, outcome, http_status, latency_ms, raw_hash, hash, last_ok_at,
                                     text_len, title_words, page_flags, page_class, rules)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
                 ON CONFLICT (site, base, article) DO UPDATE SET
                   is_primary = excluded.is_primary, at = excluded.at, outcome = excluded.outcome,
                   http_status = excluded.http_status, latency_ms = excluded.latency_ms,
                   raw_hash = excluded.raw_hash, hash = excluded.hash, last_ok_at = excluded.last_ok_at,
                   text_len = excluded.text_len, title_words = excluded.title_words,
                   page_flags = excluded.page_flags, page_class = excluded.page_class, rules = excluded.rules
                 WHERE excluded.at >= latest.at",
            )?;
            let mut upsert_version = tx.prepare_cached(
                "INSERT INTO versions (site, article, hash, first_seen, last_seen, text_len, title_words, page_flags, rules)
                 VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (site, article, hash) DO UPDATE SET last_seen = max(last_seen, excluded.last_seen),
                   rules = excluded.rules",
            )?;
            let mut rollups = Rollups::default();
            let mut count_minute = tx.prepare_cached(
                "INSERT INTO base_minutes (base, minute, probes, ok) VALUES (?1, ?2, 1, ?3)
                 ON CONFLICT (base, minute) DO UPDATE SET probes = probes + 1, ok = ok + excluded.ok",
            )?;
            for record in batch {
                let o = &record.observation;
                let raw = o.raw_hash.map(|h| h.0.to_vec());
                let hash = o.hash.map(|h| h.0.to_vec());
                let class = class_name(o.page.class);
                insert_probe.execute(params![
                    &*record.site,
                    &*record.base,
                    &*record.article,
                    o.checked_at,
                    o.outcome.as_str(),
                    o.http_status,
                    o.latency_ms,
                    raw,
                    hash,
                    class
                ])?;
                upsert_latest.execute(params![
                    &*record.site,
                    &*record.base,
                    &*record.article,
                    record.is_primary,
                    o.checked_at,
                    o.outcome.as_str(),
                    o.http_status,
                    o.latency_ms,
                    raw,
                    hash,
                    o.last_ok_at,
                    o.page.text_len,
                    o.page.title_words,
                    o.page.flags,
                    class,
                    o.rules as i64
                ])?;
                if record.trusted && o.is_ok() {
                    upsert_version.execute(params![
                        &*record.site,
                        &*record.article,
                        hash,
                        o.checked_at,
                        o.page.text_len,
                        o.page.title_words,
                        o.page.flags,
                        o.rules as i64
                    ])?;
                }
                count_minute.execute(params![
                    &*record.base,
                    o.checked_at.div_euclid(60_000),
                    o.is_ok() as i64
                ])?;
                rollups.add(record);
            }
            write_rollups(rollups, &tx)?;
        }
        tx.commit()
    }

    fn load(&mut self, latencies_per_base: usize) -> rusqlite::Result<StoredState> {
        let mut state = StoredState::default();
        let mut latest = self.connection.prepare(
            "SELECT site, base, article, is_primary, at, outcome, http_status, latency_ms, raw_hash, hash, last_ok_at,
                    text_len, title_words, page_flags, page_class, rules FROM latest",
        )?;
        let rows = latest.query_map([], |row| {
            let outcome: String = row.get(5)?;
            Ok(ProbeRecord {
                site: row.get::<_, String>(0)?.into(),
                base: row.get::<_, String>(1)?.into(),
                article: row.get::<_, String>(2)?.into(),
                is_primary: row.get(3)?,
                trusted: false,
                observation: Observation {
                    outcome: Outcome::parse(&outcome).unwrap_or(Outcome::Connect),
                    http_status: row.get(6)?,
                    latency_ms: row.get(7)?,
                    raw_hash: hash_column(row.get(8)?).map(|h| RawHash(h.0)),
                    hash: hash_column(row.get(9)?),
                    page: PageFacts {
                        text_len: row.get(11)?,
                        title_words: row.get(12)?,
                        flags: row.get(13)?,
                        class: class_parse(row.get(14)?),
                    },
                    rules: row.get::<_, i64>(15)? as u64,
                    checked_at: row.get(4)?,
                    last_ok_at: row.get(10)?,
                    validators: None,
                },
                verdict: None,
                lease: None,
                period_ms: None,
            })
        })?;
        for row in rows {
            state.latest.push(row?);
        }
        let mut versions = self
            .connection
            .prepare("SELECT site, article, hash, last_seen, text_len, title_words, page_flags, rules FROM versions")?;
        let rows = versions.query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                hash_column(row.get(2)?),
                row.get::<_, i64>(3)?,
                PageFacts {
                    text_len: row.get(4)?,
                    title_words: row.get(5)?,
                    flags: row.get(6)?,
                    class: None,
                },
                row.get::<_, i64>(7)? as u64,
            ))
        })?;
        for row in rows {
            let (site, article, hash, last_seen, page, rules) = row?;
            if let Some(hash) = hash {
                state.versions.push(StoredVersion {
                    site,
                    article,
                    hash,
                    page,
                    rules,
                    last_seen,
                });
            }
        }
        let mut minutes = self
            .connection
            .prepare("SELECT base, minute, probes, ok FROM base_minutes ORDER BY base, minute")?;
        let rows = minutes.query_map([], |row| {
            Ok(MinuteCount {
                base: row.get(0)?,
                minute: row.get(1)?,
                probes: row.get(2)?,
                ok: row.get(3)?,
            })
        })?;
        for row in rows {
            state.minutes.push(row?);
        }
        let bases: Vec<String> = self
            .connection
            .prepare("SELECT DISTINCT base FROM latest")?
            .query_map([], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        let mut recent = self
            .connection
            .prepare("SELECT latency_ms FROM probes WHERE base = ?1 AND outcome = 'ok' ORDER BY id DESC LIMIT ?2")?;
        for base in bases {
            let mut samples: Vec<u32> = recent
                .query_map(params![base, latencies_per_base as i64], |row| row.get(0))?
                .collect::<Result<_, _>>()?;
            samples.reverse();
            state.latencies.push((base, samples));
        }
        Ok(state)
    }
}

fn write_rollups(rollups: Rollups, tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    let mut base_hour = tx.prepare_cached(
        "INSERT INTO base_hours (site, base, hour, outcome, verdict, probes, latency_sum_ms,
             ms_le_50, ms_le_100, ms_le_250, ms_le_500, ms_le_1000, ms_le_2500, ms_le_5000, ms_over_5000)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
         ON CONFLICT (site, base, hour, outcome, verdict) DO UPDATE SET
           probes = probes + excluded.probes, latency_sum_ms = latency_sum_ms + excluded.latency_sum_ms,
           ms_le_50 = ms_le_50 + excluded.ms_le_50, ms_le_100 = ms_le_100 + excluded.ms_le_100,
           ms_le_250 = ms_le_250 + excluded.ms_le_250, ms_le_500 = ms_le_500 + excluded.ms_le_500,
           ms_le_1000 = ms_le_1000 + excluded.ms_le_1000, ms_le_2500 = ms_le_2500 + excluded.ms_le_2500,
           ms_le_5000 = ms_le_5000 + excluded.ms_le_5000, ms_over_5000 = ms_over_5000 + excluded.ms_over_5000",
    )?;
    for ((site, base, hour, outcome, verdict), h) in rollups.bases {
        let b = h.buckets;
        base_hour.execute(params![
            &*site,
            &*base,
            hour,
            outcome.as_str(),
            verdict.map_or("", Verdict::as_str),
            h.probes,
            h.latency_sum_ms,
            b[0],
            b[1],
            b[2],
            b[3],
            b[4],
            b[5],
            b[6],
            b[7]
        ])?;
    }
    // The article's id, created at its first probe. Looked up first: an
    // upsert would rewrite the row on every batch.
    let mut find_article = tx.prepare_cached("SELECT id FROM article_ids WHERE site = ?1 AND article = ?2")?;
    let mut new_article = tx.prepare_cached("INSERT INTO article_ids (site, article) VALUES (?1, ?2) RETURNING id")?;
    let mut article_hour = tx.prepare_cached(
        "INSERT INTO article_hours (article_id, hour, probes, ok, same, stale, diverged, missing, unknown, unreachable, latency_sum_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (hour, article_id) DO UPDATE SET
           probes = probes + excluded.probes, ok = ok + excluded.ok,
           same = same + excluded.same, stale = stale + excluded.stale, diverged = diverged + excluded.diverged,
           missing = missing + excluded.missing, unknown = unknown + excluded.unknown,
           unreachable = unreachable + excluded.unreachable, latency_sum_ms = latency_sum_ms + excluded.latency_sum_ms",
    )?;
    for ((site, article, hour), h) in rollups.articles {
        let id: i64 = match find_article.query_row(params![&*site, &*article], |row| row.get(0)) {
            Err(rusqlite::Error::QueryReturnedNoRows) => {
                new_article.query_row(params![&*site, &*article], |row| row.get(0))?
            }
            found => found?,
        };
        let v = h.verdicts;
        article_hour.execute(params![
            id,
            hour,
            h.probes,
            h.ok,
            v[0],
            v[1],
            v[2],
            v[3],
            v[4],
            v[5],
            h.latency_sum_ms
        ])?;
    }
    Ok(())
}

fn hash_column(bytes: Option<Vec<u8>>) -> Option<Hash> {
    let bytes: [u8; 32] = bytes?.try_into().ok()?;
    Some(Hash(bytes))
}

impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn record_round(&mut self, batch: &[ProbeRecord]) -> Result<(), StoreError> {
        self.write(batch).map_err(|e| self.error(e))
    }

    fn load_snapshot(&mut self, latencies_per_base: usize) -> Result<StoredState, StoreError> {
        self.load(latencies_per_base).map_err(|e| self.error(e))
    }

    fn save_discovered(&mut self, site: &str, found: &[crate::store::DiscoveredArticle]) -> Result<(), StoreError> {
        let result = (|| {
            let tx = self.connection.transaction()?;
            let first_seen: std::collections::HashMap<String, i64> = {
                let mut statement = tx.prepare("SELECT path, first_seen FROM discovered WHERE site = ?1")?;
                let rows = statement.query_map([site], |row| Ok((row.get(0)?, row.get(1)?)))?;
                rows.collect::<Result<_, _>>()?
            };
            tx.execute("DELETE FROM discovered WHERE site = ?1", [site])?;
            {
                let mut insert = tx.prepare(
                    "INSERT INTO discovered (site, path, position, date, source, first_seen) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?;
                let now = crate::clock::now_ms();
                for (position, entry) in found.iter().enumerate() {
                    let seen = first_seen.get(&entry.path).copied().unwrap_or(now);
                    insert.execute(rusqlite::params![
                        site,
                        entry.path,
                        position as i64,
                        entry.date,
                        entry.source,
                        seen
                    ])?;
                }
            }
            tx.commit()
        })();
        result.map_err(|source| self.error(source))
    }

    fn load_discovered(
        &mut self,
    ) -> Result<std::collections::HashMap<String, Vec<crate::store::DiscoveredArticle>>, StoreError> {
        let result = (|| {
            let mut statement = self
                .connection
                .prepare("SELECT site, path, date, source FROM discovered ORDER BY site, position")?;
            let rows = statement.query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    crate::store::DiscoveredArticle {
                        path: row.get(1)?,
                        date: row.get(2)?,
                        source: row.get(3)?,
                    },
                ))
            })?;
            let mut found: std::collections::HashMap<String, Vec<crate::store::DiscoveredArticle>> = Default::default();
            for row in rows {
                let (site, entry) = row?;
                found.entry(site).or_default().push(entry);
            }
            Ok(found)
        })();
        result.map_err(|source: rusqlite::Error| self.error(source))
    }

    fn save_kept(&mut self, kind: &str, entries: &[Kept]) -> Result<(), StoreError> {
        let result = (|| {
            let tx = self.connection.transaction()?;
            tx.execute("DELETE FROM kept WHERE kind = ?1", [kind])?;
            {
                let mut insert =
                    tx.prepare_cached("INSERT OR REPLACE INTO kept (kind, key, value) VALUES (?1, ?2, ?3)")?;
                for entry in entries {
                    insert.execute(params![kind, entry.key, entry.value])?;
                }
            }
            tx.commit()
        })();
        result.map_err(|source| self.error(source))
    }

    fn load_kept(&mut self) -> Result<Vec<Kept>, StoreError> {
        let result = (|| {
            let mut statement = self
                .connection
                .prepare("SELECT kind, key, value FROM kept ORDER BY kind, key")?;
            let rows = statement.query_map([], |row| {
                Ok(Kept {
                    kind: row.get(0)?,
                    key: row.get(1)?,
                    value: row.get(2)?,
                })
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })();
        result.map_err(|source| self.error(source))
    }

    fn read_rows(&mut self, table: &'static Table, offset: u64, limit: u64) -> Result<Vec<Vec<Cell>>, StoreError> {
        let sql = format!(
            "SELECT {} FROM {} ORDER BY {} LIMIT ?1 OFFSET ?2",
            table.column_list(),
            table.name,
            table.order_by
        );
        let result = (|| {
            let mut statement = self.connection.prepare(&sql)?;
            let rows = statement.query_map(params![limit as i64, offset as i64], |row| {
                let mut cells = Vec::with_capacity(table.columns.len());
                for (index, (_, kind)) in table.columns.iter().enumerate() {
                    use rusqlite::types::ValueRef;
                    cells.push(match (row.get_ref(index)?, kind) {
                        (ValueRef::Null, _) => Cell::Null,
                        (ValueRef::Integer(i), ColumnType::Bool) => Cell::Bool(i != 0),
                        (ValueRef::Integer(i), _) => Cell::Int(i),
                        (ValueRef::Real(r), _) => Cell::Int(r as i64),
                        (ValueRef::Text(t), _) => Cell::Text(String::from_utf8_lossy(t).into_owned()),
                        (ValueRef::Blob(b), _) => Cell::Bytes(b.to_vec()),
                    });
                }
                Ok(cells)
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })();
        result.map_err(|source| self.error(source))
    }

    fn write_rows(&mut self, table: &'static Table, rows: &[Vec<Cell>]) -> Result<(), StoreError> {
        let placeholders: Vec<String> = (1..=table.columns.len()).map(|i| format!("?{i}")).collect();
        let sql = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            table.name,
            table.column_list(),
            placeholders.join(", ")
        );
        let result = (|| {
            let tx = self.connection.transaction()?;
            {
                let mut insert = tx.prepare_cached(&sql)?;
                for row in rows {
                    let values: Vec<rusqlite::types::Value> = row
                        .iter()
                        .map(|cell| match cell {
                            Cell::Null => rusqlite::types::Value::Null,
                            Cell::Int(i) => rusqlite::types::Value::Integer(*i),
                            Cell::Bool(b) => rusqlite::types::Value::Integer(i64::from(*b)),
                            Cell::Text(t) => rusqlite::types::Value::Text(t.clone()),
                            Cell::Bytes(b) => rusqlite::types::Value::Blob(b.clone()),
                        })
                        .collect();
                    insert.execute(rusqlite::params_from_iter(values))?;
                }
            }
            tx.commit()
        })();
        result.map_err(|source| self.error(source))
    }

    fn clear(&mut self) -> Result<(), StoreError> {
        let result = (|| {
            let tx = self.connection.transaction()?;
            for table in TABLES {
                tx.execute(&format!("DELETE FROM {}", table.name), [])?;
            }
            tx.commit()
        })();
        result.map_err(|source| self.error(source))
    }

    fn row_counts(&mut self) -> Result<Vec<(&'static str, u64)>, StoreError> {
        let mut counts = Vec::new();
        for table in super::TABLES {
            let table = table.name;
            let count: i64 = self
                .connection
                .query_row(&format!("SELECT count(*) FROM {table}"), [], |row| row.get(0))
                .map_err(|e| self.error(e))?;
            counts.push((table, count as u64));
        }
        Ok(counts)
    }

    fn set_busy_timeout(&mut self, timeout: Duration) {
        if let Err(error) = self.connection.busy_timeout(timeout) {
            tracing::warn!(%error, "store.busy_timeout could not be changed");
        }
    }

    fn prune(&mut self, raw_before: UnixMillis, before: UnixMillis) -> Result<u64, StoreError> {
        let result = (|| {
            let tx = self.connection.transaction()?;
            let mut removed = tx.execute("DELETE FROM probes WHERE at < ?1", [raw_before.max(before)])?;
            removed += tx.execute("DELETE FROM versions WHERE last_seen < ?1", [before])?;
            removed += tx.execute(
                "DELETE FROM base_minutes WHERE minute < ?1",
                [before.div_euclid(60_000)],
            )?;
            let hour = before.div_euclid(HOUR_MS);
            removed += tx.execute("DELETE FROM base_hours WHERE hour < ?1", [hour])?;
            removed += tx.execute("DELETE FROM article_hours WHERE hour < ?1", [hour])?;
            tx.commit()?;
            Ok(removed as u64)
        })();
        result.map_err(|e| self.error(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // What both backends must do is tests/store.rs; this is SQLite's own.
    #[test]
    fn the_file_is_in_wal_mode() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("m.db"), Duration::from_secs(1)).unwrap();
        let mode: String = store
            .connection
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }
}

#[cfg(test)]
mod rollup_tests {
    use super::*;

    fn probe(base: &str, article: &str, at: i64, ok: bool, latency_ms: u32) -> ProbeRecord {
        ProbeRecord {
            site: "s".into(),
            base: base.into(),
            article: article.into(),
            is_primary: false,
            trusted: false,
            observation: Observation {
                outcome: if ok { Outcome::Ok } else { Outcome::Connect },
                http_status: ok.then_some(200),
                latency_ms,
                raw_hash: ok.then_some(RawHash([1; 32])),
                hash: ok.then_some(Hash([1; 32])),
                page: PageFacts::default(),
                rules: 1,
                checked_at: at,
                last_ok_at: None,
                validators: None,
            },
            verdict: Some(if ok { Verdict::Same } else { Verdict::Unreachable }),
            lease: None,
            period_ms: None,
        }
    }

    fn count(store: &SqliteStore, table: &str) -> i64 {
        store
            .connection
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn raw_rows_go_after_raw_retention_and_hourly_rollups_stay_for_retention() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(&dir.path().join("r.db"), Duration::from_secs(1)).unwrap();
        // Two hours of probes every 5 minutes: 2 bases x 2 articles.
        let mut batch = Vec::new();
        for minute in (0..120).step_by(5) {
            let at = minute * 60_000;
            for base in ["https://p", "https://m"] {
                for article in ["/a", "/b"] {
                    let ok = !(base == "https://m" && article == "/b");
                    batch.push(probe(base, article, at, ok, 30 + minute as u32 * 10));
                }
            }
        }
        store.record_round(&batch).unwrap();
        assert_eq!(count(&store, "probes"), 96);
        // Per hour: 2 bases, the mirror split by outcome and verdict.
        assert_eq!(count(&store, "base_hours"), 2 * 3);
        assert_eq!(count(&store, "article_hours"), 2 * 2);
        let (probes, ok, same, unreachable, latency): (i64, i64, i64, i64, i64) = store
            .connection
            .query_row(
                "SELECT probes, ok, same, unreachable, latency_sum_ms FROM article_hours
                 JOIN article_ids ON id = article_id WHERE article = '/b' AND hour = 0",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .unwrap();
        assert_eq!((probes, ok, same, unreachable), (24, 12, 12, 12));
        let expected: i64 = (0..60).step_by(5).map(|m| 2 * (30 + m * 10)).sum();
        assert_eq!(latency, expected);
        let buckets: i64 = store
            .connection
            .query_row(
                "SELECT sum(ms_le_50 + ms_le_100 + ms_le_250 + ms_le_500 + ms_le_1000 + ms_le_2500 + ms_le_5000 + ms_over_5000) - sum(probes) FROM base_hours",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(buckets, 0, "every probe in exactly one bucket");
        // Raw rows older than the first hour go; every rollup stays.
        store.prune(HOUR_MS, 0).unwrap();
        assert_eq!(count(&store, "probes"), 48);
        assert_eq!(count(&store, "article_hours"), 4);
        // Past retention, the first hour's rollups go too.
        store.prune(HOUR_MS, HOUR_MS).unwrap();
        assert_eq!(count(&store, "article_hours"), 2);
        assert_eq!(count(&store, "base_hours"), 3);
    }
}
