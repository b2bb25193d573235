//! Crashes and storage faults: kill -9 at random points, a store another
//! process keeps locked. Nothing the daemon reported as stored is lost, and
//! readers are served throughout.

mod common;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use reqwest::header;

fn probes_in(store: &Path) -> i64 {
    let connection = rusqlite::Connection::open(store).unwrap();
    connection
        .query_row("SELECT count(*) FROM probes", [], |r| r.get(0))
        .unwrap()
}

/// The highest running total the daemon logged as durably stored.
fn reported_stored(daemon: &Daemon) -> i64 {
    daemon
        .log_entries(&[("message", "batch stored")])
        .iter()
        .filter_map(|e| e["fields"]["total"].as_i64())
        .max()
        .unwrap_or(0)
}

fn some_millis(range: std::ops::Range<u64>) -> u64 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos() as u64;
    range.start + nanos % (range.end - range.start)
}

#[tokio::test]
async fn kill_9_at_random_points_loses_nothing_reported_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let primary = serving(Page::Primary).await;
    let mirror = serving(Page::Relative).await;
    let store = dir.path().join("s.db");
    let config = dir.path().join("mirrorgate.toml");
    let articles: Vec<String> = (0..20).map(|i| format!("{ARTICLE}?page={i}")).collect();
    let write_config = |probe: &str| {
        write_config(
            &config,
            &store,
            probe,
            &[SiteSpec::new(
                "news",
                primary.url(),
                vec![mirror.url()],
                articles.iter().map(String::as_str).collect(),
            )],
        );
    };
    write_config("interval = \"100ms\"\nmax_age = \"1m\"\ntimeout = \"2s\"\nper_host_rate = 2000");
    for run in 0..20 {
        let before = if store.exists() { probes_in(&store) } else { 0 };
        let mut daemon = Daemon::start(&config);
        tokio::time::sleep(Duration::from_millis(some_millis(100..900))).await;
        daemon.kill_hard();
        let reported = reported_stored(&daemon);
        let connection = rusqlite::Connection::open(&store).unwrap();
        let integrity: String = connection
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(integrity, "ok", "run {run}");
        let after = probes_in(&store);
        assert!(
            after >= before + reported,
            "run {run}: {before} + {reported} reported, {after} stored"
        );
    }
    assert!(probes_in(&store) > 0, "twenty runs stored something");

    // Back once more, with every base hanging: what it serves comes from the store.
    primary.set(Behavior::Hang);
    mirror.set(Behavior::Hang);
    write_config("interval = \"1h\"\ntimeout = \"60s\"\nper_host_rate = 2000");
    let daemon = Daemon::start(&config);
    let response = get(daemon.url(&format!("/r/news{}", articles[0]))).await;
    let status = get_json(&daemon.url("/status")).await;
    assert_eq!(status["round"]["completed"], 0, "no round has finished yet");
    let detail = get_json(&daemon.url("/status/news")).await;
    let stored_any = detail["articles"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["bases"][0]["verdict"] == "same");
    if stored_any {
        assert_eq!(response.status(), 302);
        assert!(
            response.headers()[header::LOCATION]
                .to_str()
                .unwrap()
                .starts_with(&primary.url())
        );
        assert!(status["sites"][0]["bases"][0]["uptime"]["1h"].as_f64().unwrap() > 0.0);
    }
    assert!(stored_any, "verdicts are back from the store: {detail}");
}

fn counter_total(metrics: &str, prefix: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn a_store_locked_by_another_process_costs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let primary = serving(Page::Primary).await;
    let store = dir.path().join("s.db");
    let config = dir.path().join("mirrorgate.toml");
    std::fs::write(
        &config,
        config_text(
            &store,
            "interval = \"200ms\"\nmax_age = \"1m\"\ntimeout = \"2s\"\nper_host_rate = 1000",
            &[SiteSpec::new("news", primary.url(), vec![], vec![ARTICLE, "/second"])],
        )
        .replace("[store]\n", "[store]\nbusy_timeout = \"300ms\"\n"),
    )
    .unwrap();
    let daemon = Daemon::start(&config);
    rounds_completed(&daemon, 1).await;

    // An operator's sqlite3 holds the write lock for longer than the busy timeout.
    let operator = rusqlite::Connection::open(&store).unwrap();
    operator.execute_batch("BEGIN IMMEDIATE").unwrap();
    let url = daemon.url("/status");
    let failing = eventually("the store error to show in /status", Duration::from_secs(15), || {
        let url = url.clone();
        async move {
            let status = get_json(&url).await;
            (status["store"]["ok"] == false).then_some(status)
        }
    })
    .await;
    assert!(
        failing["store"]["error"].as_str().unwrap().contains("locked"),
        "{}",
        failing["store"]
    );
    let metrics = get_text(&daemon.url("/metrics")).await;
    assert_eq!(metric(&metrics, "mirrorgate_store_ok"), Some(0.0));
    // Still probing and serving from memory.
    let rounds_then = failing["round"]["completed"].as_u64().unwrap();
    rounds_completed(&daemon, rounds_then + 2).await;
    let response = get(daemon.url(&format!("/r/news{ARTICLE}"))).await;
    assert_eq!(response.status(), 302);
    assert!(
        !daemon
            .log_entries(&[("message", "store write failed; keeping the records and retrying later")])
            .is_empty()
    );
    // Held for seconds more: the writer backs off (1 s, 2 s, 4 s...) instead
    // of paying busy_timeout on every tick, and the engine keeps turning.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let metrics = get_text(&daemon.url("/metrics")).await;
    let attempts = metric(&metrics, "mirrorgate_store_write_failures_total").unwrap();
    assert!((1.0..=5.0).contains(&attempts), "{attempts} failed attempts in ~5 s");
    assert!(metric(&metrics, "mirrorgate_store_records_pending").unwrap() > 0.0);
    let status = get_json(&daemon.url("/status")).await;
    assert!(status["store"]["backlog"].as_u64().unwrap() > 0, "{}", status["store"]);
    assert!(status["store"]["next_retry_at"].is_string(), "{}", status["store"]);
    let health = get(daemon.url("/healthz")).await;
    assert_eq!(health.status(), 503);
    let health: serde_json::Value = health.json().await.unwrap();
    let problems = health["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "only the store, no stalled loop: {health}");
    assert!(problems[0].as_str().unwrap().contains("store"), "{health}");

    // The lock goes away: the kept records are written, none is missing.
    operator.execute_batch("COMMIT").unwrap();
    drop(operator);
    let metrics_url = daemon.url("/metrics");
    let store_path = store.clone();
    eventually("every probe result to be stored", Duration::from_secs(15), || {
        let (url, store) = (metrics_url.clone(), store_path.clone());
        async move {
            let metrics = get_text(&url).await;
            let probed = counter_total(&metrics, "mirrorgate_probes_total{site=");
            let ok = metric(&metrics, "mirrorgate_store_ok") == Some(1.0);
            let pending = metric(&metrics, "mirrorgate_store_records_pending") == Some(0.0);
            // Probes keep finishing meanwhile, at most one round (2) either way;
            // a lost batch would leave the store several rounds behind.
            let stored = probes_in(&store) as f64;
            (ok && pending && (stored - probed).abs() <= 2.0).then_some(())
        }
    })
    .await;
    let metrics = get_text(&daemon.url("/metrics")).await;
    assert_eq!(metric(&metrics, "mirrorgate_store_records_dropped_total"), Some(0.0));
    let status = get_json(&daemon.url("/status")).await;
    assert_eq!(status["store"]["ok"], true);
}

/// Kinds of kept state with at least one entry in the SQLite store.
fn kept_kinds(store: &Path) -> Vec<String> {
    let Ok(connection) = rusqlite::Connection::open(store) else {
        return Vec::new();
    };
    let Ok(mut statement) = connection.prepare("SELECT DISTINCT kind FROM kept ORDER BY kind") else {
        return Vec::new();
    };
    statement
        .query_map([], |row| row.get(0))
        .map(|rows| rows.filter_map(Result::ok).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn evidence_proposals_and_leaks_come_back_after_kill_9() {
    let primary = TestOrigin::start(Behavior::Status(404)).await;
    let naming = Page::Primary.on(&primary).replace(
        "</head>",
        "<link rel=\"alternate\" href=\"https://new-mirror.example/\"></head>",
    );
    primary.set_path(ARTICLE, Behavior::Page(naming));
    let leaking = TestOrigin::start(Behavior::Status(404)).await;
    let page = Page::Faithful.on(&leaking).replace(
        "</head>",
        &format!("<script src=\"//{}/app.js\"></script></head>", primary.authority()),
    );
    leaking.set_path(ARTICLE, Behavior::Page(page));
    let tampered = serving(Page::Tampered).await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s.db");
    let config = dir.path().join("mirrorgate.toml");
    let site = || {
        SiteSpec::new(
            "news",
            primary.url(),
            vec![leaking.url(), tampered.url()],
            vec![ARTICLE],
        )
    };
    write_config(
        &config,
        &store,
        "interval = \"300ms\"\ntimeout = \"5s\"\nper_host_rate = 1000",
        &[site()],
    );
    let mut daemon = Daemon::start(&config);
    let encoded: String = url::form_urlencoded::byte_serialize(tampered.url().as_bytes()).collect();
    let evidence_url = format!("/status/news/evidence?path={ARTICLE}&base={encoded}");
    // Each part is there once its base was probed (and the diff once both
    // texts were at hand): wait for all three, not for one.
    let (evidence, leaks) = eventually("a diff, a leak and a proposal", Duration::from_secs(60), || {
        let (evidence_url, detail_url, status_url) = (
            daemon.url(&evidence_url),
            daemon.url("/status/news"),
            daemon.url("/status"),
        );
        let leaking = leaking.url();
        async move {
            let evidence = get_json(&evidence_url).await;
            let detail = get_json(&detail_url).await;
            let leaks = bases_of(&detail, ARTICLE).get(&leaking)?["leaks"].clone();
            let proposed = get_json(&status_url).await["proposed_mirrors"][0]["host"] == "new-mirror.example";
            (evidence["diff"].is_string() && leaks["resources"] == 1 && proposed).then_some((evidence, leaks))
        }
    })
    .await;
    eventually("every part kept", Duration::from_secs(30), || {
        let kinds = kept_kinds(&store);
        async move {
            let all = ["evidence.diffs", "evidence.leaks", "evidence.proposals"];
            all.iter().all(|k| kinds.iter().any(|have| have == k)).then_some(())
        }
    })
    .await;
    // Give the keeper one more save of the newest state, then crash.
    tokio::time::sleep(mirrorgate::cmd::keep::EVERY * 2).await;
    daemon.kill_hard();

    // Back with every base hanging: nothing can be probed again.
    for origin in [&primary, &leaking, &tampered] {
        origin.set(Behavior::Hang);
        origin.set_path(ARTICLE, Behavior::Hang);
    }
    write_config(&config, &store, "interval = \"1h\"\ntimeout = \"60s\"", &[site()]);
    let daemon = Daemon::start(&config);
    let restored = get_json(&daemon.url(&evidence_url)).await;
    assert_eq!(restored["verdict"], "diverged", "{restored}");
    assert!(
        restored["diff"].as_str().is_some_and(|d| d.contains("@@")),
        "the diff is back: {restored}"
    );
    assert_eq!(restored["diff"], evidence["diff"], "the same pages, the same diff");
    let detail = get_json(&daemon.url("/status/news")).await;
    assert_eq!(bases_of(&detail, ARTICLE)[&leaking.url()]["leaks"], leaks, "{detail}");
    let status = get_json(&daemon.url("/status")).await;
    assert_eq!(status["round"]["completed"], 0);
    let proposed = &status["proposed_mirrors"][0];
    assert_eq!(proposed["host"], "new-mirror.example", "{status}");
    assert_eq!(proposed["via"], "link");
    assert_eq!(proposed["pages"], 1);
}
