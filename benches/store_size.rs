//! How large the SQLite store grows: a simulated month of probe rounds
//! written through the real store (`record_round` per round, `prune` every
//! hour, as the writer does), then the file size and each table's rows.
//!
//! cargo bench --bench store_size -- [articles] [days] [interval_minutes]
//! (defaults 1000, 30, 5; 4 bases, raw_retention 2 days, retention 30 days)
//!
//! Every table's rows are linear in the article count, so the figure for
//! 100,000 articles is this run's bytes per article times 100,000; the run
//! prints both, and says which is measured.

use std::time::{Duration, Instant};

use mirrorgate::fingerprint::{Hash, PageFacts, RawHash};
use mirrorgate::store::{ProbeRecord, SqliteStore, Store};
use mirrorgate::verdict::Verdict;
use mirrorgate::verdict::observation::{Observation, Outcome};

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;
const BASES: [&str; 4] = [
    "https://www.example.com",
    "https://www.example.co.uk",
    "https://mirror.example.net",
    "https://news.example.org",
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let number = |at: usize, default: i64| args.get(at).and_then(|a| a.parse().ok()).unwrap_or(default);
    let (articles, days, interval_minutes) = (number(0, 1000), number(1, 30), number(2, 5));
    let (raw_retention, retention) = (2 * DAY_MS, 30 * DAY_MS);
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("size.db");
    let mut store = SqliteStore::open(&path, Duration::from_secs(5)).expect("open the store");
    let sites: std::sync::Arc<str> = "news".into();
    let bases: Vec<std::sync::Arc<str>> = BASES.iter().map(|b| (*b).into()).collect();
    let paths: Vec<std::sync::Arc<str>> = (0..articles)
        .map(|i| {
            format!(
                "/Detail/2026/11/{:02}/{i}/an-article-title-of-typical-length",
                i % 28 + 1
            )
            .into()
        })
        .collect();
    let interval = interval_minutes * 60_000;
    let rounds = days * DAY_MS / interval;
    let started = Instant::now();
    let mut next_prune = HOUR_MS;
    let mut batch = Vec::with_capacity((articles as usize) * BASES.len());
    for round in 0..rounds {
        let at = round * interval;
        batch.clear();
        for (a, path) in paths.iter().enumerate() {
            for (b, base) in bases.iter().enumerate() {
                // Mostly faithful; the last mirror blocked a tenth of the time,
                // the third one down now and then.
                let seed = (a as i64 * 31 + b as i64 * 7 + round * 13) % 100;
                let (outcome, verdict) = match (b, seed) {
                    (3, 0..=9) => (Outcome::Ok, Verdict::Diverged),
                    (2, 0..=2) => (Outcome::Connect, Verdict::Unreachable),
                    _ => (Outcome::Ok, Verdict::Same),
                };
                let ok = outcome == Outcome::Ok;
                let hash = Hash([(a % 251) as u8 ^ (verdict as u8); 32]);
                batch.push(ProbeRecord {
                    site: sites.clone(),
                    base: base.clone(),
                    article: path.clone(),
                    is_primary: b == 0,
                    trusted: b == 0,
                    observation: Observation {
                        outcome,
                        http_status: ok.then_some(200),
                        latency_ms: 20 + (seed as u32 * 17) % 900,
                        raw_hash: ok.then_some(RawHash(hash.0)),
                        hash: ok.then_some(hash),
                        page: PageFacts::default(),
                        rules: 42,
                        checked_at: at + (a as i64 * 37) % interval,
                        last_ok_at: ok.then_some(at),
                        validators: None,
                    },
                    verdict: Some(verdict),
                    lease: None,
                    period_ms: None,
                });
            }
        }
        store.record_round(&batch).expect("write a round");
        if at >= next_prune {
            next_prune += HOUR_MS;
            store.prune(at - raw_retention, at - retention).expect("prune");
        }
    }
    let elapsed = started.elapsed();
    drop(store);
    let connection = rusqlite::Connection::open(&path).expect("reopen");
    connection
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .expect("checkpoint");
    let rows = |table: &str| -> i64 {
        connection
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap_or(0)
    };
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!(
        "simulated {days} days, {articles} articles x {} bases, a round every {interval_minutes} min: {rounds} rounds, {} records in {:.0} s",
        BASES.len(),
        rounds * articles * BASES.len() as i64,
        elapsed.as_secs_f64()
    );
    // Bytes per table with its indexes, from SQLite's own page accounting.
    let bytes = |name: &str| -> i64 {
        connection
            .query_row(
                "SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name = ?1 OR name IN
                   (SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?1)",
                [name],
                |r| r.get(0),
            )
            .unwrap_or(0)
    };
    for table in [
        "probes",
        "latest",
        "versions",
        "article_ids",
        "article_hours",
        "base_hours",
        "base_minutes",
    ] {
        let (count, size) = (rows(table), bytes(table));
        println!(
            "  {table:<14} {count:>12} rows {:>10.1} MiB with indexes, {:>5} B per row",
            size as f64 / 1048576.0,
            size.checked_div(count).unwrap_or(0)
        );
    }
    let free: i64 = connection
        .query_row(
            "SELECT freelist_count * page_size FROM pragma_freelist_count, pragma_page_size",
            [],
            |r| r.get(0),
        )
        .unwrap_or(0);
    println!(
        "  free pages     {:>10.1} MiB (reused by later writes)",
        free as f64 / 1048576.0
    );
    let per_article = size as f64 / articles as f64;
    println!(
        "store file (measured): {:.1} MiB, {:.0} bytes per article",
        size as f64 / 1048576.0,
        per_article
    );
    println!(
        "at 100,000 articles (this run's bytes per article x 100,000): {:.1} GiB",
        per_article * 100_000.0 / 1073741824.0
    );
}
