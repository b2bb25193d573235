//! The daemon end to end: real origins on loopback, the real binary, and
//! what readers and operators see over HTTP.

mod common;

use std::time::Duration;

use common::*;
use reqwest::header;
use serde_json::Value;

fn verdict(bases: &std::collections::HashMap<String, Value>, origin: &str) -> (String, String) {
    let base = &bases[origin];
    (
        base["verdict"].as_str().unwrap_or("null").to_string(),
        base["outcome"].as_str().unwrap_or("null").to_string(),
    )
}

#[tokio::test]
async fn verdicts_redirects_and_status_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let primary = serving(Page::Primary).await;
    let faithful = serving(Page::Faithful).await;
    let relative = serving(Page::Relative).await;
    let tampered = serving(Page::Tampered).await;
    let blockpage = serving(Page::Blocked).await;
    let moved = TestOrigin::start(Behavior::Status(404)).await;
    moved.set_path(ARTICLE, Behavior::Redirect("/amp/moved".into()));
    moved.set_path("/amp/moved", Behavior::Page(Page::Faithful.on(&moved)));
    let down = closed_port().await;
    let hanging = TestOrigin::start(Behavior::Hang).await;
    let off_site = TestOrigin::start(Behavior::Redirect(format!("http://{}/parked", closed_port().await))).await;
    let rate_limited = TestOrigin::start(Behavior::RateLimited { retry_after_secs: 3600 }).await;
    let huge = TestOrigin::start(Behavior::Bytes { size: 3 << 20 }).await;
    let down_url = format!("http://{down}");
    let mirrors = vec![
        faithful.url(),
        relative.url(),
        tampered.url(),
        blockpage.url(),
        moved.url(),
        down_url.clone(),
        hanging.url(),
        off_site.url(),
        rate_limited.url(),
        huge.url(),
    ];
    let config = dir.path().join("mirrorgate.toml");
    write_config(
        &config,
        &dir.path().join("state.db"),
        "interval = \"1h\"\ntimeout = \"2s\"\nper_host_rate = 100\nmax_body = \"1MiB\"",
        &[SiteSpec::new("news", primary.url(), mirrors, vec![ARTICLE]).extra("content_selector = \"article\"")],
    );
    let daemon = Daemon::start(&config);
    rounds_completed(&daemon, 1).await;

    let detail = get_json(&daemon.url("/status/news")).await;
    let bases = bases_of(&detail, ARTICLE);
    let expect = [
        (primary.url(), "same", "ok"),
        (faithful.url(), "same", "ok"),
        (relative.url(), "same", "ok"),
        (tampered.url(), "diverged", "ok"),
        (blockpage.url(), "diverged", "ok"),
        (moved.url(), "same", "ok"),
        (down_url.clone(), "unreachable", "connect"),
        (hanging.url(), "unreachable", "timeout"),
        (off_site.url(), "unreachable", "redirected_off_site"),
        (rate_limited.url(), "unreachable", "rate_limited"),
        (huge.url(), "diverged", "too_large"),
    ];
    for (url, want_verdict, want_outcome) in &expect {
        assert_eq!(
            verdict(&bases, url),
            (want_verdict.to_string(), want_outcome.to_string()),
            "{url} in {detail:#}"
        );
    }
    let article = article_of(&detail, ARTICLE);
    assert_eq!(article["reference"], bases[&primary.url()]["hash"]);
    assert!(article["reference"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(article["redirect_to"], format!("{}{ARTICLE}", primary.url()));
    assert_eq!(bases[&rate_limited.url()]["http_status"], 429);
    assert_eq!(bases[&primary.url()]["http_status"], 200);
    assert!(bases[&primary.url()]["last_ok_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(bases[&down_url]["last_ok_at"], Value::Null);

    // Readers: one hop to the primary, the query kept, the other faithful
    // copies offered as duplicates in config order.
    let response = get(daemon.url(&format!("/r/news{ARTICLE}?utm_source=x&a=%2F"))).await;
    assert_eq!(response.status(), 302);
    assert_eq!(
        response.headers()[header::LOCATION],
        format!("{}{ARTICLE}?utm_source=x&a=%2F", primary.url()).as_str()
    );
    assert_eq!(response.headers()[header::CACHE_CONTROL], "private, max-age=30");
    let links: Vec<&str> = response
        .headers()
        .get_all(header::LINK)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    let want: Vec<String> = [&faithful, &relative, &moved]
        .iter()
        .map(|o| format!("<{}{ARTICLE}?utm_source=x&a=%2F>; rel=duplicate", o.url()))
        .collect();
    assert_eq!(links, want);

    // /go: a configured base's URL goes to the same choice.
    let go = format!("{}{ARTICLE}", faithful.url());
    let response = client()
        .get(daemon.url("/go"))
        .query(&[("url", go.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 302);
    assert_eq!(
        response.headers()[header::LOCATION],
        format!("{}{ARTICLE}", primary.url()).as_str()
    );

    // Not a configured article: base health decides, the path is kept.
    let response = get(daemon.url("/r/news/section/world?page=2")).await;
    assert_eq!(response.status(), 302);
    assert_eq!(
        response.headers()[header::LOCATION],
        format!("{}/section/world?page=2", primary.url()).as_str()
    );

    // Anything else is refused, with the parameter named.
    for bad in [
        "http://127.0.0.1:1/x".to_string(),
        format!("http://{}@127.0.0.1:1{ARTICLE}", primary.authority()),
        format!("{}.evil.test{ARTICLE}", primary.url()),
        "not a url".into(),
        "file:///etc/passwd".into(),
    ] {
        let response = client()
            .get(daemon.url("/go"))
            .query(&[("url", bad.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{bad}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["parameter"], "url", "{bad}: {body}");
        assert!(body["error"].is_string());
    }
    let response = get(daemon.url("/go")).await;
    assert_eq!(response.status(), 400);
    let response = get(daemon.url("/r/no-such-site/x")).await;
    assert_eq!(response.status(), 404);

    // Operators: base states, uptime, latency and counts.
    let status = get_json(&daemon.url("/status")).await;
    assert!(status["generated_at"].as_str().unwrap().ends_with('Z'));
    let site = &status["sites"][0];
    assert_eq!(site["name"], "news");
    assert_eq!(site["articles"], 1);
    let summary = |url: &str| base_summary(site, url).clone();
    let primary_summary = summary(&primary.url());
    assert_eq!(primary_summary["role"], "primary");
    assert_eq!(primary_summary["state"], "up");
    assert_eq!(primary_summary["uptime"]["1h"], 1.0);
    assert_eq!(primary_summary["uptime"]["30d"], 1.0);
    assert!(primary_summary["latency_ms"]["p50"].is_u64());
    assert!(primary_summary["latency_ms"]["p95"].is_u64());
    assert_eq!(primary_summary["verdicts"]["same"], 1);
    let down_summary = summary(&down_url);
    assert_eq!(down_summary["role"], "mirror");
    assert_eq!(down_summary["state"], "down");
    assert_eq!(down_summary["uptime"]["1h"], 0.0);
    assert_eq!(down_summary["verdicts"]["unreachable"], 1);
    assert_eq!(summary(&tampered.url())["state"], "degraded");
    assert_eq!(summary(&tampered.url())["verdicts"]["diverged"], 1);
    assert_eq!(summary(&rate_limited.url())["state"], "degraded", "429 is not down");

    // The hanging base held only its own share: the others were answered
    // long before its timeout (the round as a whole waited for it).
    assert!(hanging.request_count() >= 1);
    assert_eq!(rate_limited.request_count(), 1);
}

#[tokio::test]
async fn primary_down_falls_back_to_consensus() {
    let dir = tempfile::tempdir().unwrap();
    let primary = serving(Page::Primary).await;
    let first = serving(Page::Faithful).await;
    let second = serving(Page::Relative).await;
    let tampered = serving(Page::Tampered).await;
    let config = dir.path().join("mirrorgate.toml");
    write_config(
        &config,
        &dir.path().join("state.db"),
        "interval = \"1s\"\nmax_age = \"1m\"\ntimeout = \"2s\"\nper_host_rate = 100",
        &[SiteSpec::new(
            "news",
            primary.url(),
            vec![tampered.url(), first.url(), second.url()],
            vec![ARTICLE],
        )
        .extra("content_selector = \"article\"")],
    );
    let daemon = Daemon::start(&config);
    rounds_completed(&daemon, 1).await;
    primary.set(Behavior::Status(503));
    let url = daemon.url("/status/news");
    let detail = eventually("the primary's 503 to be seen", Duration::from_secs(20), || {
        let url = url.clone();
        let primary = primary.url();
        async move {
            let detail = get_json(&url).await;
            let bases = bases_of(&detail, ARTICLE);
            (bases[&primary]["outcome"] == "http_status").then_some(detail)
        }
    })
    .await;
    let bases = bases_of(&detail, ARTICLE);
    assert_eq!(bases[&primary.url()]["http_status"], 503);
    assert_eq!(bases[&primary.url()]["verdict"], "unreachable");
    assert_eq!(verdict(&bases, &first.url()).0, "same");
    assert_eq!(verdict(&bases, &second.url()).0, "same");
    assert_eq!(verdict(&bases, &tampered.url()).0, "diverged");
    assert_eq!(article_of(&detail, ARTICLE)["reference"], bases[&first.url()]["hash"]);

    // The first faithful mirror in config order; never the tampered one listed before it.
    let response = get(daemon.url(&format!("/r/news{ARTICLE}"))).await;
    assert_eq!(response.status(), 302);
    assert_eq!(
        response.headers()[header::LOCATION],
        format!("{}{ARTICLE}", first.url()).as_str()
    );
    let links: Vec<_> = response.headers().get_all(header::LINK).iter().collect();
    assert_eq!(
        links,
        vec![format!("<{}{ARTICLE}>; rel=duplicate", second.url()).as_str()]
    );
}

#[tokio::test]
async fn a_mirror_behind_an_updated_primary_is_stale_and_not_a_candidate() {
    let dir = tempfile::tempdir().unwrap();
    let primary = serving(Page::Primary).await;
    let lagging = serving(Page::Faithful).await;
    let config = dir.path().join("mirrorgate.toml");
    write_config(
        &config,
        &dir.path().join("state.db"),
        "interval = \"1s\"\nmax_age = \"1m\"\ntimeout = \"2s\"\nper_host_rate = 100",
        &[SiteSpec::new("news", primary.url(), vec![lagging.url()], vec![ARTICLE])
            .extra("content_selector = \"article\"\nprefer_primary = false")],
    );
    let daemon = Daemon::start(&config);
    rounds_completed(&daemon, 1).await;
    let before = get_json(&daemon.url("/status/news")).await;
    assert_eq!(verdict(&bases_of(&before, ARTICLE), &lagging.url()).0, "same");
    let old_reference = article_of(&before, ARTICLE)["reference"].clone();
    // prefer_primary = false: a faithful mirror comes before the primary.
    let response = get(daemon.url(&format!("/r/news{ARTICLE}"))).await;
    assert_eq!(
        response.headers()[header::LOCATION],
        format!("{}{ARTICLE}", lagging.url()).as_str()
    );

    primary.set(Behavior::Page(Page::PrimaryV2.on(&primary)));
    let url = daemon.url("/status/news");
    let lagging_url = lagging.url();
    let detail = eventually("the mirror to be judged stale", Duration::from_secs(20), || {
        let url = url.clone();
        let lagging_url = lagging_url.clone();
        async move {
            let detail = get_json(&url).await;
            (bases_of(&detail, ARTICLE)[&lagging_url]["verdict"] == "stale").then_some(detail)
        }
    })
    .await;
    assert_ne!(article_of(&detail, ARTICLE)["reference"], old_reference);
    assert_eq!(bases_of(&detail, ARTICLE)[&lagging.url()]["hash"], old_reference);
    let response = get(daemon.url(&format!("/r/news{ARTICLE}"))).await;
    assert_eq!(response.status(), 302);
    assert_eq!(
        response.headers()[header::LOCATION],
        format!("{}{ARTICLE}", primary.url()).as_str()
    );
    assert!(
        response.headers().get(header::LINK).is_none(),
        "a stale copy is no duplicate"
    );
    let status = get_json(&daemon.url("/status")).await;
    assert_eq!(status["sites"][0]["bases"][1]["verdicts"]["stale"], 1);
}

#[tokio::test]
async fn no_live_copy_is_a_503_listing_every_base_not_known_to_serve_something_else() {
    let dir = tempfile::tempdir().unwrap();
    let primary = TestOrigin::start(Behavior::Status(500)).await;
    let mirror = TestOrigin::start(Behavior::Status(502)).await;
    // Just seen serving a block page: never offered to a reader.
    let blocked = TestOrigin::start(Behavior::Page(
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/blockpage.html"))
            .unwrap(),
    ))
    .await;
    let config = dir.path().join("mirrorgate.toml");
    write_config(
        &config,
        &dir.path().join("state.db"),
        "",
        &[SiteSpec::new(
            "news",
            primary.url(),
            vec![mirror.url(), blocked.url()],
            vec![ARTICLE],
        )],
    );
    let daemon = Daemon::start(&config);
    rounds_completed(&daemon, 1).await;
    let response = get(daemon.url(&format!("/r/news{ARTICLE}?q=1"))).await;
    assert_eq!(response.status(), 503);
    assert!(
        response.headers()[header::RETRY_AFTER]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["bases"],
        serde_json::json!([
            format!("{}{ARTICLE}?q=1", primary.url()),
            format!("{}{ARTICLE}?q=1", mirror.url())
        ])
    );
    let response = client()
        .get(daemon.url(&format!("/r/news{ARTICLE}")))
        .header(header::ACCEPT, "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert!(
        response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = response.text().await.unwrap();
    assert!(page.contains(&format!("href=\"{}{ARTICLE}\"", mirror.url())), "{page}");
    assert!(!page.contains(&blocked.url()), "{page}");
    // A path that is no article has no healthy base to go to either.
    let response = get(daemon.url("/r/news/elsewhere")).await;
    assert_eq!(response.status(), 503);
    let detail = get_json(&daemon.url("/status/news")).await;
    assert_eq!(article_of(&detail, ARTICLE)["redirect_to"], Value::Null);
}

#[tokio::test]
async fn restart_after_kill_resumes_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let primary = serving(Page::Primary).await;
    let mirror = serving(Page::Faithful).await;
    let store = dir.path().join("state.db");
    let config = dir.path().join("mirrorgate.toml");
    let write_config = |timeout: &str| {
        write_config(
            &config,
            &store,
            &format!("interval = \"1h\"\ntimeout = \"{timeout}\"\nper_host_rate = 100"),
            &[SiteSpec::new("news", primary.url(), vec![mirror.url()], vec![ARTICLE])
                .extra("content_selector = \"article\"")],
        );
    };
    write_config("2s");
    let mut daemon = Daemon::start(&config);
    rounds_completed(&daemon, 1).await;
    // The writer flushes within half a second of a result.
    let before = eventually("results to be stored", Duration::from_secs(10), || {
        let store = store.clone();
        async move {
            let connection = rusqlite::Connection::open(&store).ok()?;
            let stored: i64 = connection
                .query_row("SELECT count(*) FROM latest", [], |r| r.get(0))
                .ok()?;
            (stored == 2).then_some(())
        }
    });
    before.await;
    let detail_before = get_json(&daemon.url("/status/news")).await;
    daemon.kill_hard();

    // Now every base hangs: whatever the daemon shows next comes from the store.
    primary.set(Behavior::Hang);
    mirror.set(Behavior::Hang);
    write_config("60s");
    let daemon = Daemon::start(&config);
    let detail = get_json(&daemon.url("/status/news")).await;
    let (old, new) = (bases_of(&detail_before, ARTICLE), bases_of(&detail, ARTICLE));
    for base in [primary.url(), mirror.url()] {
        for field in ["verdict", "outcome", "hash", "checked_at", "last_ok_at", "http_status"] {
            assert_eq!(new[&base][field], old[&base][field], "{base} {field}");
        }
    }
    assert_eq!(new[&mirror.url()]["verdict"], "same");
    let response = get(daemon.url(&format!("/r/news{ARTICLE}"))).await;
    assert_eq!(response.status(), 302);
    assert_eq!(
        response.headers()[header::LOCATION],
        format!("{}{ARTICLE}", primary.url()).as_str()
    );
    let status = get_json(&daemon.url("/status")).await;
    assert_eq!(status["sites"][0]["bases"][0]["uptime"]["1h"], 1.0);
    assert_eq!(status["sites"][0]["bases"][0]["state"], "up");
    assert_eq!(status["round"]["completed"], 0, "the new round is still hanging");

    let connection = rusqlite::Connection::open(&store).unwrap();
    let check: String = connection
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

#[tokio::test]
async fn sigterm_stops_cleanly_and_keeps_results() {
    let dir = tempfile::tempdir().unwrap();
    let primary = serving(Page::Primary).await;
    let store = dir.path().join("state.db");
    let config = dir.path().join("mirrorgate.toml");
    write_config(
        &config,
        &store,
        "",
        &[SiteSpec::new(
            "news",
            primary.url(),
            vec![],
            vec![ARTICLE, "/other?id=2"],
        )],
    );
    let mut daemon = Daemon::start(&config);
    rounds_completed(&daemon, 1).await;
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)), Some(0), "{}", daemon.log());
    let connection = rusqlite::Connection::open(&store).unwrap();
    let probes: i64 = connection
        .query_row("SELECT count(*) FROM probes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(probes, 2);
    let mode: String = connection.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn unchanged_pages_are_revalidated_and_changes_still_seen() {
    let dir = tempfile::tempdir().unwrap();
    let primary = TestOrigin::start(Behavior::Status(404)).await;
    primary.set(Behavior::Validated(Page::Primary.on(&primary)));
    let mirror = TestOrigin::start(Behavior::Status(404)).await;
    mirror.set(Behavior::Validated(Page::Relative.on(&mirror)));
    let liar = TestOrigin::start(Behavior::Status(404)).await;
    liar.set(Behavior::Validated(Page::Faithful.on(&liar)));
    let config = dir.path().join("mirrorgate.toml");
    write_config(
        &config,
        &dir.path().join("state.db"),
        "interval = \"100ms\"\nmax_age = \"1m\"\ntimeout = \"2s\"\nper_host_rate = 1000",
        &[
            SiteSpec::new("news", primary.url(), vec![mirror.url(), liar.url()], vec![ARTICLE])
                .extra("content_selector = \"article\""),
        ],
    );
    let daemon = Daemon::start(&config);
    rounds_completed(&daemon, 3).await;
    let answered_304 = |origin: &TestOrigin| origin.not_modified.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        answered_304(&primary) > 0 && answered_304(&mirror) > 0,
        "unchanged pages were revalidated"
    );
    let detail = get_json(&daemon.url("/status/news")).await;
    for base in [primary.url(), mirror.url(), liar.url()] {
        let seen = &bases_of(&detail, ARTICLE)[&base];
        assert_eq!(
            (seen["verdict"].as_str(), seen["outcome"].as_str()),
            (Some("same"), Some("ok")),
            "{base}"
        );
        // A 304 confirms the full answer; /status shows that answer.
        assert_eq!(seen["http_status"], 200, "{base}");
    }

    // An update changes the primary's ETag: it is fetched in full and seen.
    primary.set(Behavior::Validated(Page::PrimaryV2.on(&primary)));
    let url = daemon.url("/status/news");
    let verdict_of = |base: String, want: &'static str| {
        let url = url.clone();
        move || {
            let (url, base) = (url.clone(), base.clone());
            async move { (bases_of(&get_json(&url).await, ARTICLE)[&base]["verdict"] == want).then_some(()) }
        }
    };
    eventually(
        "the lagging mirror to be stale",
        Duration::from_secs(20),
        verdict_of(mirror.url(), "stale"),
    )
    .await;

    // A base that answers every revalidation with 304 while it now serves a
    // block page is caught by the next round that fetches in full.
    liar.set(Behavior::StaleValidator(Page::Blocked.on(&liar)));
    eventually(
        "the lying base to be diverged",
        Duration::from_secs(60),
        verdict_of(liar.url(), "diverged"),
    )
    .await;
}

/// The first state change after a restart is told from the restored state.
#[tokio::test]
async fn state_changes_after_a_restart_start_from_the_restored_state() {
    let dir = tempfile::tempdir().unwrap();
    let primary = serving(Page::Primary).await;
    let mirror = serving(Page::Primary).await;
    let store = dir.path().join("state.db");
    let config = dir.path().join("mirrorgate.toml");
    write_config(
        &config,
        &store,
        "interval = \"300ms\"\nmax_age = \"1m\"\ntimeout = \"2s\"\nper_host_rate = 100",
        &[SiteSpec::new("news", primary.url(), vec![mirror.url()], vec![ARTICLE])],
    );
    let mut daemon = Daemon::start(&config);
    rounds_completed(&daemon, 2).await;
    let status = get_json(&daemon.url("/status")).await;
    assert_eq!(status["sites"][0]["bases"][1]["state"], "up", "{status}");
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)), Some(0));
    mirror.set(Behavior::Status(500));
    let daemon = Daemon::start(&config);
    let change = eventually("the mirror's state change", Duration::from_secs(20), || async {
        daemon
            .log_entries(&[("message", "base state changed"), ("base", mirror.url().as_str())])
            .into_iter()
            .next()
    })
    .await;
    assert_eq!(change["fields"]["from"], "up", "{change}");
    // The primary stayed up: nothing to log, unless a loaded machine made
    // a probe time out — and then that change too starts from the
    // restored `up`, not from nothing.
    let primary_changes = daemon.log_entries(&[("message", "base state changed"), ("base", primary.url().as_str())]);
    if let Some(first) = primary_changes.first() {
        assert_eq!(first["fields"]["from"], "up", "{primary_changes:?}");
    }
}

/// `[schedule]` tiers: articles older than `warm_for` whose content did not
/// change are cold, probed once per `cold_interval` rather than every round,
/// and their verdicts stay usable in between.
#[tokio::test]
async fn cold_articles_wait_for_their_tier_and_keep_their_verdicts() {
    let articles = ["/a", "/b", "/c"];
    let (primary, mirror) = primary_and_mirror(&articles).await;
    let dir = tempfile::tempdir().unwrap();
    let site = SiteSpec::new("news", primary.url(), vec![mirror.url()], articles.to_vec())
        .extra("content_selector = \"article\"");
    let probe = "interval = \"1s\"\ntimeout = \"2s\"\nper_host_rate = 100\nmax_age = \"2s\"";
    let mut text = config_text(&dir.path().join("store.db"), probe, &[site]);
    text.push_str(
        "\n[schedule]\nhot_min_articles = 1\ncanary_articles = 0\nhot_for = \"1s\"\nwarm_for = \"2s\"\nwarm_interval = \"1s\"\ncold_interval = \"1h\"\nmax_verdict_age = \"2s\"\n",
    );
    let config = dir.path().join("mirrorgate.toml");
    std::fs::write(&config, text).unwrap();
    let daemon = Daemon::start(&config);
    let detail_url = daemon.url("/status/news");
    let cold = eventually("every article cold", Duration::from_secs(30), || {
        let url = detail_url.clone();
        async move {
            let detail = get_json(&url).await;
            let articles = detail["articles"].as_array()?;
            articles.iter().all(|a| a["tier"] == "cold").then_some(detail)
        }
    })
    .await;
    let next = cold["articles"][0]["next_probe_at"].as_str().unwrap().to_string();
    let probed = (primary.request_count(), mirror.request_count());
    let status = rounds_completed(&daemon, rounds_of(&daemon).await + 3).await;
    assert_eq!(
        (primary.request_count(), mirror.request_count()),
        probed,
        "three rounds probed cold articles again"
    );
    let schedule = &status["sites"][0]["schedule"];
    assert_eq!(
        (schedule["hot"].as_u64(), schedule["cold"].as_u64()),
        (Some(0), Some(3)),
        "{schedule}"
    );
    assert_eq!(schedule["due_now"], 0, "{schedule}");
    assert_eq!(schedule["probes_per_interval"], 0, "{schedule}");
    // Older than max_age by now, yet still judged: the tier's period is
    // the margin.
    let detail = get_json(&daemon.url("/status/news")).await;
    assert_eq!(bases_of(&detail, "/a")[&mirror.url()]["verdict"], "same", "{detail}");
    assert_eq!(detail["articles"][0]["next_probe_at"], next.as_str());
    let metrics = get_text(&daemon.url("/metrics")).await;
    let hot = metric(&metrics, "mirrorgate_probes_total{tier=\"hot\"}").unwrap();
    assert!(hot >= 6.0, "the first round's probes were of hot articles: {hot}");
    assert_eq!(metric(&metrics, "mirrorgate_probes_total{tier=\"cold\"}"), Some(0.0));

    // A reader sent on a verdict older than max_verdict_age (2 s): that
    // article, and only it, is probed in the next round.
    let requests_for = |path: &str| {
        primary
            .requests
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, p)| p == path)
            .count()
    };
    let (b, c) = (requests_for("/b"), requests_for("/c"));
    let response = client().get(daemon.url("/r/news/b")).send().await.unwrap();
    assert_eq!(response.status(), 302);
    eventually("the article read probed again", Duration::from_secs(10), || {
        let again = requests_for("/b") > b;
        async move { again.then_some(()) }
    })
    .await;
    assert_eq!(requests_for("/c"), c, "an article nobody read waits for its tier");
}

async fn rounds_of(daemon: &Daemon) -> u64 {
    get_json(&daemon.url("/status")).await["round"]["completed"]
        .as_u64()
        .unwrap()
}
