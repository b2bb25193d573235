//! One store suite, run against both backends (Gatus's pattern): SQLite in
//! a temporary file and PostgreSQL in a schema of its own on the server CI
//! starts. Whatever the daemon restores after a restart must read back the
//! same from either.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::postgres::Schema;
use mirrorgate::fingerprint::{Hash, PageFacts, RawHash};
use mirrorgate::store::{
    DiscoveredArticle, Kept, MIGRATIONS, MinuteCount, PostgresStore, PostgresTarget, ProbeRecord, SqliteStore, Store,
};
use mirrorgate::verdict::Verdict;
use mirrorgate::verdict::observation::{Observation, Outcome};

const HOUR_MS: i64 = 3_600_000;

/// Where a test's store lives; `open` can be called again to see what a
/// restarted daemon would.
enum Backend {
    /// The directory is held so it lives as long as the backend.
    Sqlite(PathBuf, #[allow(dead_code)] tempfile::TempDir),
    Postgres(Schema),
}

impl Backend {
    fn sqlite() -> Backend {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        Backend::Sqlite(path, dir)
    }

    fn postgres(test: &str) -> Option<Backend> {
        Schema::create(test).map(Backend::Postgres)
    }

    fn open(&self) -> Box<dyn Store> {
        match self {
            Backend::Sqlite(path, _) => Box::new(SqliteStore::open(path, Duration::from_secs(1)).unwrap()),
            Backend::Postgres(schema) => Box::new(PostgresStore::open(target(&schema.url())).unwrap()),
        }
    }
}

fn target(url: &str) -> PostgresTarget {
    PostgresTarget {
        config: url.parse().unwrap(),
        name: "test".into(),
        verify_server: false,
        password_file: None,
    }
}

/// Each suite function, once per backend.
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $test() { super::$test(&super::Backend::sqlite()) })*
        }
        mod postgres {
            $(#[test] fn $test() {
                if let Some(backend) = super::Backend::postgres(stringify!($test)) {
                    super::$test(&backend)
                }
            })*
        }
    };
}

on_both_backends!(
    results_versions_and_minutes_survive_a_reopen_and_prune_by_age,
    hourly_rollups_count_every_probe_once_and_outlive_raw_rows,
    a_base_probed_twice_in_one_batch_keeps_its_newest_result,
    an_older_result_never_replaces_a_newer_one,
    discovered_articles_keep_their_order_and_replace_per_site,
    kept_state_is_replaced_per_kind_and_survives_a_reopen,
);

fn record(base: &str, article: &str, at: i64, ok: bool, fingerprint: u8) -> ProbeRecord {
    ProbeRecord {
        site: "news".into(),
        base: base.into(),
        article: article.into(),
        is_primary: base == "https://p",
        trusted: base == "https://p",
        observation: Observation {
            outcome: if ok { Outcome::Ok } else { Outcome::Timeout },
            http_status: ok.then_some(200),
            latency_ms: 7,
            raw_hash: ok.then_some(RawHash([fingerprint; 32])),
            hash: ok.then_some(Hash([fingerprint; 32])),
            page: PageFacts {
                text_len: 100,
                title_words: 3,
                flags: PageFacts::HTML,
                class: None,
            },
            rules: 7,
            checked_at: at,
            last_ok_at: Some(at),
            validators: None,
        },
        verdict: Some(if ok { Verdict::Same } else { Verdict::Unreachable }),
        lease: None,
        period_ms: None,
    }
}

fn rows(store: &mut dyn Store, table: &str) -> u64 {
    let counts = store.row_counts().unwrap();
    counts
        .iter()
        .find(|(name, _)| *name == table)
        .unwrap_or_else(|| panic!("no table {table} in {counts:?}"))
        .1
}

fn results_versions_and_minutes_survive_a_reopen_and_prune_by_age(backend: &Backend) {
    let mut store = backend.open();
    store
        .record_round(&[
            record("https://p", "/a", 60_000, true, 1),
            record("https://m", "/a", 60_001, false, 0),
            record("https://p", "/a", 120_000, true, 2),
        ])
        .unwrap();
    drop(store);
    let mut store = backend.open();
    let state = store.load_snapshot(10).unwrap();
    assert_eq!(
        state.latest.len(),
        2,
        "one result per base and article: {:?}",
        state.latest
    );
    let primary = state.latest.iter().find(|r| &*r.base == "https://p").unwrap();
    assert_eq!(primary.observation.hash, Some(Hash([2; 32])));
    assert_eq!(primary.observation.checked_at, 120_000);
    assert!(primary.is_primary);
    assert_eq!(primary.observation.page.text_len, 100);
    assert_eq!(primary.observation.rules, 7);
    let mirror = state.latest.iter().find(|r| &*r.base == "https://m").unwrap();
    assert_eq!(mirror.observation.outcome, Outcome::Timeout);
    assert_eq!(mirror.observation.http_status, None);
    assert_eq!(
        state.versions.len(),
        2,
        "two versions of the primary: {:?}",
        state.versions
    );
    let minute = |base: &str, minute, probes, ok| MinuteCount {
        base: base.into(),
        minute,
        probes,
        ok,
    };
    assert_eq!(
        state.minutes,
        vec![
            minute("https://m", 1, 1, 0),
            minute("https://p", 1, 1, 1),
            minute("https://p", 2, 1, 1)
        ]
    );
    let latencies = &state.latencies.iter().find(|(b, _)| b == "https://p").unwrap().1;
    assert_eq!(latencies, &vec![7, 7]);
    let removed = store.prune(120_000, 120_000).unwrap();
    assert_eq!(removed, 2 + 1 + 2, "two probes, one version, two minutes");
    assert_eq!(store.load_snapshot(10).unwrap().versions.len(), 1);
}

fn hourly_rollups_count_every_probe_once_and_outlive_raw_rows(backend: &Backend) {
    let mut store = backend.open();
    // Two hours of probes every 5 minutes, 2 bases x 2 articles, written
    // in two batches so the second adds to the rows the first made.
    let mut batch = Vec::new();
    for minute in (0..120).step_by(5) {
        for base in ["https://p", "https://m"] {
            for article in ["/a", "/b"] {
                let ok = !(base == "https://m" && article == "/b");
                batch.push(record(base, article, minute * 60_000, ok, 1));
            }
        }
    }
    let (first, second) = batch.split_at(30);
    store.record_round(first).unwrap();
    store.record_round(second).unwrap();
    let store = &mut *store;
    assert_eq!(rows(store, "probes"), 96);
    // Per hour: two bases, the mirror split by outcome and verdict.
    assert_eq!(rows(store, "base_hours"), 2 * 3);
    assert_eq!(rows(store, "article_hours"), 2 * 2);
    assert_eq!(rows(store, "article_ids"), 2);
    // Raw rows older than the first hour go; every rollup stays.
    store.prune(HOUR_MS, 0).unwrap();
    assert_eq!(rows(store, "probes"), 48);
    assert_eq!(rows(store, "article_hours"), 4);
    // Past retention, the first hour's rollups go too.
    store.prune(HOUR_MS, HOUR_MS).unwrap();
    assert_eq!(rows(store, "article_hours"), 2);
    assert_eq!(rows(store, "base_hours"), 3);
}

fn a_base_probed_twice_in_one_batch_keeps_its_newest_result(backend: &Backend) {
    let mut store = backend.open();
    // The newer result first: order in the batch must not matter.
    store
        .record_round(&[
            record("https://p", "/a", 180_000, true, 3),
            record("https://p", "/a", 120_000, true, 2),
            record("https://p", "/a", 60_000, true, 3),
        ])
        .unwrap();
    let state = store.load_snapshot(10).unwrap();
    assert_eq!(state.latest.len(), 1);
    assert_eq!(state.latest[0].observation.checked_at, 180_000);
    assert_eq!(state.latest[0].observation.hash, Some(Hash([3; 32])));
    let mut versions: Vec<_> = state.versions.iter().map(|v| (v.hash.0[0], v.last_seen)).collect();
    versions.sort();
    assert_eq!(versions, vec![(2, 120_000), (3, 180_000)]);
    assert_eq!(rows(&mut *store, "probes"), 3);
}

fn an_older_result_never_replaces_a_newer_one(backend: &Backend) {
    let mut store = backend.open();
    store
        .record_round(&[record("https://m", "/a", 120_000, true, 2)])
        .unwrap();
    // A writer retrying an old batch after a newer one landed.
    store
        .record_round(&[record("https://m", "/a", 60_000, false, 0)])
        .unwrap();
    let state = store.load_snapshot(10).unwrap();
    assert_eq!(state.latest[0].observation.checked_at, 120_000);
    assert_eq!(state.latest[0].observation.outcome, Outcome::Ok);
}

fn discovered_articles_keep_their_order_and_replace_per_site(backend: &Backend) {
    let found = |paths: &[&str]| -> Vec<DiscoveredArticle> {
        paths
            .iter()
            .enumerate()
            .map(|(i, path)| DiscoveredArticle {
                path: path.to_string(),
                date: (i % 2 == 0).then_some(1_700_000_000_000 + i as i64),
                source: "sitemap".into(),
            })
            .collect()
    };
    let mut store = backend.open();
    store.save_discovered("news", &found(&["/z", "/a", "/m"])).unwrap();
    store.save_discovered("other", &found(&["/x"])).unwrap();
    store.save_discovered("news", &found(&["/new", "/z"])).unwrap();
    drop(store);
    let loaded = backend.open().load_discovered().unwrap();
    let paths = |site: &str| loaded[site].iter().map(|f| f.path.as_str()).collect::<Vec<_>>();
    assert_eq!(paths("news"), ["/new", "/z"]);
    assert_eq!(paths("other"), ["/x"]);
    assert_eq!(loaded["news"][0].date, Some(1_700_000_000_000));
    assert_eq!(loaded["news"][1].date, None);
    assert_eq!(loaded["news"][1].source, "sitemap");
}

fn kept_state_is_replaced_per_kind_and_survives_a_reopen(backend: &Backend) {
    let kept = |kind: &str, key: &str, value: &str| Kept {
        kind: kind.into(),
        key: key.into(),
        value: value.into(),
    };
    let mut store = backend.open();
    let alerts = [kept(
        "alerts",
        "ops/base_down/news/https://m",
        r#"{"since":1,"fired":true}"#,
    )];
    store.save_kept("alerts", &alerts).unwrap();
    let listed = [
        kept("listed", "https://m.example", "1700000000000"),
        kept("listed", "https://b.example", "\"ünïcødé\" and 'quotes'"),
    ];
    store.save_kept("listed", &listed).unwrap();
    // A second save of a kind replaces it whole: a key gone is gone.
    store.save_kept("listed", &listed[1..]).unwrap();
    store.save_kept("empty", &[]).unwrap();
    drop(store);
    let loaded = backend.open().load_kept().unwrap();
    assert_eq!(loaded, vec![alerts[0].clone(), listed[1].clone()]);
}

// What only the shared store has to get right.

#[test]
fn instances_starting_together_migrate_once() {
    let Some(schema) = Schema::create("migrate_once") else {
        return;
    };
    let url = schema.url();
    let opened: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || PostgresStore::open(target(&url)).map(drop).map_err(|e| e.to_string()))
        })
        .collect();
    for thread in opened {
        thread.join().unwrap().expect("every instance opens the store");
    }
    assert_eq!(
        schema.query_text("SELECT count(*) FROM mirrorgate_schema"),
        MIGRATIONS.len().to_string(),
        "each migration recorded once"
    );
}

#[test]
fn a_schema_newer_than_the_binary_is_refused_naming_both_versions() {
    let Some(schema) = Schema::create("newer_schema") else {
        return;
    };
    drop(PostgresStore::open(target(&schema.url())).unwrap());
    let newer = MIGRATIONS.len() + 1;
    schema.execute(&format!("INSERT INTO mirrorgate_schema (version) VALUES ({newer})"));
    let error = PostgresStore::open(target(&schema.url()))
        .err()
        .expect("a newer schema is refused")
        .to_string();
    assert!(
        error.contains(&format!("version {newer}")) && error.contains(&format!("mirrorgate's {}", MIGRATIONS.len())),
        "the error names both versions: {error}"
    );
}

#[test]
fn a_dropped_connection_is_opened_again() {
    let Some(schema) = Schema::create("reconnect") else {
        return;
    };
    let url = format!("{}&application_name={}", schema.url(), schema.name);
    let mut store = PostgresStore::open(target(&url)).unwrap();
    store
        .record_round(&[record("https://p", "/a", 60_000, true, 1)])
        .unwrap();
    let terminated = schema.query_text(&format!(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '{}'",
        schema.name
    ));
    assert_eq!(terminated, "1", "the store's one connection was terminated");
    // The writer retries a failed batch; the next call reconnects.
    let mut attempts = Vec::new();
    for _ in 0..3 {
        let result = store.record_round(&[record("https://p", "/a", 120_000, true, 2)]);
        attempts.push(result.as_ref().map_err(ToString::to_string).map(|_| ()));
        if result.is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(attempts.last(), Some(&Ok(())), "attempts: {attempts:?}");
    assert_eq!(
        store.load_snapshot(0).unwrap().latest[0].observation.checked_at,
        120_000
    );
}

#[test]
fn tls_encrypts_with_sslmode_require_and_verify_full_checks_the_certificate() {
    let Some(schema) = Schema::create("tls") else { return };
    if schema.query_text("current_setting('ssl')") != "on" {
        common::skipped("tls", "this PostgreSQL server has ssl = off");
        return;
    }
    let url = format!("{}&sslmode=require&application_name={}", schema.url(), schema.name);
    let mut store = PostgresStore::open(target(&url)).expect("require accepts a self-signed certificate, as libpq");
    store
        .record_round(&[record("https://p", "/a", 60_000, true, 1)])
        .unwrap();
    let encrypted = schema.query_text(&format!(
        "SELECT bool_and(ssl) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) WHERE application_name = '{}'",
        schema.name
    ));
    assert_eq!(encrypted, "true", "the store's connection is encrypted");
    // The server's certificate here is Debian's self-signed snakeoil one:
    // checking it against the system's roots must fail.
    let verified = PostgresStore::open(PostgresTarget {
        verify_server: true,
        ..target(&url)
    });
    let error = verified.err().expect("an unverifiable certificate is refused");
    let error = error.to_string();
    assert!(error.to_lowercase().contains("certificate"), "{error}");
}

fn store_copy(from: &str, to: &str, force: bool) -> std::process::Output {
    let mut command = std::process::Command::new(common::binary());
    command.args(["store", "copy", "--from", from, "--to", to]);
    if force {
        command.arg("--force");
    }
    command.output().unwrap()
}

/// Everything a store gives back, in a form two backends can be compared in.
#[derive(Debug, PartialEq)]
struct Contents {
    counts: Vec<(&'static str, u64)>,
    latest: Vec<String>,
    kept: Vec<Kept>,
    discovered: String,
}

fn contents(store: &mut dyn Store) -> Contents {
    let state = store.load_snapshot(10).unwrap();
    let mut latest: Vec<String> = state
        .latest
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {:?} {}",
                r.base, r.article, r.is_primary, r.observation.hash, r.observation.checked_at
            )
        })
        .collect();
    latest.sort();
    let mut discovered: Vec<_> = store.load_discovered().unwrap().into_iter().collect();
    discovered.sort_by(|a, b| a.0.cmp(&b.0));
    Contents {
        counts: store.row_counts().unwrap(),
        latest,
        kept: store.load_kept().unwrap(),
        discovered: format!("{discovered:?}"),
    }
}

fn filled_sqlite(dir: &std::path::Path) -> PathBuf {
    let path = dir.join("source.db");
    let mut store = SqliteStore::open(&path, Duration::from_secs(1)).unwrap();
    let mut batch = Vec::new();
    for minute in 0..30 {
        for base in ["https://p", "https://m"] {
            for article in ["/a", "/b", "/c"] {
                batch.push(record(
                    base,
                    article,
                    minute * 60_000,
                    minute % 7 != 3,
                    (minute % 3) as u8,
                ));
            }
        }
    }
    store.record_round(&batch).unwrap();
    store
        .save_kept(
            "alerts.held",
            &[Kept {
                kind: "alerts.held".into(),
                key: "hook\u{1f}base_state/news/https://m".into(),
                value: r#"{"fired":true}"#.into(),
            }],
        )
        .unwrap();
    let found = [DiscoveredArticle {
        path: "/new".into(),
        date: Some(5),
        source: "sitemap".into(),
    }];
    store.save_discovered("news", &found).unwrap();
    path
}

#[test]
fn store_copy_moves_a_store_to_postgresql_and_back_unchanged() {
    let Some(schema) = Schema::create("copy") else { return };
    let dir = tempfile::tempdir().unwrap();
    let source = filled_sqlite(dir.path());
    let source_text = source.to_str().unwrap();
    let expected = contents(&mut SqliteStore::open(&source, Duration::from_secs(1)).unwrap());
    assert!(
        expected.counts.iter().all(|(_, rows)| *rows > 0),
        "every table has rows: {:?}",
        expected.counts
    );

    let out = store_copy(source_text, &schema.url(), false);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (table, rows) in &expected.counts {
        assert!(
            stdout
                .lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>() == [*table, &rows.to_string()]),
            "{table} {rows} in:\n{stdout}"
        );
    }
    let mut postgres = PostgresStore::open(target(&schema.url())).unwrap();
    assert_eq!(contents(&mut postgres), expected);
    // New ids start past the copied ones: the daemon writes on.
    postgres
        .record_round(&[record("https://p", "/new-article", 99 * 60_000, true, 9)])
        .unwrap();
    drop(postgres);

    let back = dir.path().join("back.db");
    let out = store_copy(&schema.url(), back.to_str().unwrap(), false);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let mut again = SqliteStore::open(&back, Duration::from_secs(1)).unwrap();
    let counts = contents(&mut again).counts;
    assert_eq!(
        rows(&mut again, "probes"),
        rows(
            &mut SqliteStore::open(&source, Duration::from_secs(1)).unwrap(),
            "probes"
        ) + 1,
        "{counts:?}"
    );
}

#[test]
fn store_copy_refuses_a_store_with_rows_unless_forced_and_names_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let source = filled_sqlite(dir.path());
    let source_text = source.to_str().unwrap();
    let target = dir.path().join("target.db");
    let target_text = target.to_str().unwrap();
    assert_eq!(store_copy(source_text, target_text, false).status.code(), Some(0));
    let out = store_copy(source_text, target_text, false);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("not empty") && stderr.contains("--force"), "{stderr}");
    let forced = store_copy(source_text, target_text, true);
    assert_eq!(
        forced.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&forced.stderr)
    );
    let expected = contents(&mut SqliteStore::open(&source, Duration::from_secs(1)).unwrap());
    assert_eq!(
        contents(&mut SqliteStore::open(&target, Duration::from_secs(1)).unwrap()),
        expected
    );

    for (from, to, named) in [
        ("/nonexistent/m.db", target_text, "/nonexistent/m.db"),
        (source_text, "postgres://", "--to"),
        (source_text, "mysql://u@h/db", "mysql:// store is not supported"),
        (source_text, source_text, "the same store"),
    ] {
        let out = store_copy(from, to, true);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{from} -> {to}: {stderr}");
        assert!(stderr.contains(named), "{named} in {stderr}");
    }
}

#[test]
fn the_password_file_is_read_again_at_every_connect() {
    let Some(schema) = Schema::create("password_file") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pg-password");
    // This server trusts loopback: the password is not checked, but the
    // file must be read for each new connection.
    std::fs::write(&file, "first\n").unwrap();
    let url = format!("{}&application_name={}", schema.url(), schema.name);
    let mut store = PostgresStore::open(PostgresTarget {
        password_file: Some(file.clone()),
        ..target(&url)
    })
    .unwrap();
    store
        .record_round(&[record("https://p", "/a", 60_000, true, 1)])
        .unwrap();
    std::fs::remove_file(&file).unwrap();
    schema.query_text(&format!(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '{}'",
        schema.name
    ));
    let mut errors = Vec::new();
    for _ in 0..3 {
        match store.record_round(&[record("https://p", "/a", 120_000, true, 2)]) {
            Ok(()) => panic!("reconnected without reading the password file"),
            Err(e) => errors.push(e.to_string()),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        errors
            .last()
            .is_some_and(|e| e.contains("store.password_file") && e.contains("pg-password")),
        "{errors:?}"
    );
    std::fs::write(&file, "second\n").unwrap();
    store
        .record_round(&[record("https://p", "/a", 120_000, true, 2)])
        .unwrap();
}
