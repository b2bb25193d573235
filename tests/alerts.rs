//! Alerts against loopback receivers that work, fail then recover, and
//! hang: a base that goes down is told once after `for`, and again when it
//! comes back; one sink's trouble delays no other.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::receiver::receiver;
use common::*;

#[tokio::test]
async fn a_base_going_down_and_back_is_told_once_each_way() {
    let primary = serving_article(Page::Primary).await;
    let mirror = TestOrigin::start(Behavior::Hang).await;
    let good = receiver(0, false).await;
    let flaky = receiver(2, false).await;
    let stuck = receiver(0, true).await;
    let elsewhere = receiver(0, false).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mirrorgate.toml");
    let site = SiteSpec::new("news", primary.url(), vec![mirror.url()], vec![ARTICLE]);
    let mut text = config_text(
        &dir.path().join("store.db"),
        "interval = \"1s\"\ntimeout = \"1s\"\nper_host_rate = 100",
        &[site],
    );
    for (name, url, extra) in [
        ("hook", &good.url, "headers = { Authorization = \"Bearer sink-token\" }"),
        ("flaky", &flaky.url, ""),
        ("stuck", &stuck.url, ""),
        ("other-site", &elsewhere.url, "sites = [\"another\"]"),
    ] {
        text.push_str(&format!(
            "\n[[alerts]]\nname = \"{name}\"\ntype = \"webhook\"\nurl = \"{url}\"\nfor = \"1s\"\nmin_severity = \"critical\"\n{extra}\n"
        ));
    }
    std::fs::write(&config, text).unwrap();
    let daemon = Daemon::start(&config);
    let firing = good.first("firing", Duration::from_secs(30)).await;
    assert_eq!(firing["event"], "base_state", "{firing}");
    assert_eq!(firing["severity"], "critical");
    assert_eq!(firing["site"], "news");
    assert_eq!(firing["base"], mirror.url().as_str());
    assert_eq!(firing["sink"], "hook");
    assert!(firing["summary"].as_str().unwrap().contains("down"), "{firing}");

    // It comes back: one resolved notice, and no second firing meanwhile.
    mirror.set_path(ARTICLE, Behavior::Page(Page::Primary.on(&mirror)));
    mirror.set(Behavior::Status(404));
    let resolved = good.first("resolved", Duration::from_secs(30)).await;
    assert_eq!(resolved["base"], mirror.url().as_str());
    assert_eq!(resolved["started_at"], firing["started_at"]);
    let statuses = good.statuses();
    assert_eq!(statuses.iter().filter(|s| *s == "firing").count(), 1, "{statuses:?}");

    // The flaky sink got it after its failures; the stuck one held up nobody.
    eventually("the flaky sink's delivery", Duration::from_secs(20), || {
        let bodies = flaky.bodies.clone();
        async move { (!bodies.lock().unwrap().is_empty()).then_some(()) }
    })
    .await;
    assert!(flaky.attempts.load(Ordering::SeqCst) >= 3);
    assert!(stuck.attempts.load(Ordering::SeqCst) >= 1);
    assert!(
        elsewhere.bodies.lock().unwrap().is_empty(),
        "a sink for another site was told"
    );
    let metrics = get_text(&daemon.url("/metrics")).await;
    assert!(
        metric(&metrics, "mirrorgate_alerts_total{sink=\"hook\",result=\"delivered\"}").unwrap() >= 2.0,
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            "mirrorgate_alerts_total{sink=\"other-site\",result=\"delivered\"}"
        ),
        Some(0.0)
    );
}

/// The alert book as the store keeps it.
fn kept_alerts(store: &std::path::Path) -> String {
    let connection = rusqlite::Connection::open(store).unwrap();
    let mut statement = connection
        .prepare("SELECT value FROM kept WHERE kind = 'alerts.held'")
        .unwrap();
    let values: Vec<String> = statement
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    values.join("\n")
}

#[tokio::test]
async fn a_restart_neither_sends_a_firing_again_nor_loses_its_resolved() {
    let primary = serving_article(Page::Primary).await;
    let mirror = TestOrigin::start(Behavior::Hang).await;
    let hook = receiver(0, false).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mirrorgate.toml");
    let store = dir.path().join("store.db");
    let site = SiteSpec::new("news", primary.url(), vec![mirror.url()], vec![ARTICLE]);
    let mut text = config_text(
        &store,
        "interval = \"1s\"\ntimeout = \"1s\"\nper_host_rate = 100",
        &[site],
    );
    text.push_str(&format!(
        "\n[[alerts]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{}\"\nfor = \"1s\"\nmin_severity = \"critical\"\n",
        hook.url
    ));
    std::fs::write(&config, text).unwrap();

    let mut daemon = Daemon::start(&config);
    let firing = hook.first("firing", Duration::from_secs(30)).await;
    eventually("the firing kept in the store", Duration::from_secs(30), || {
        let kept = kept_alerts(&store);
        async move { kept.contains("\"fired\":true").then_some(()) }
    })
    .await;

    // Killed, then stopped: each time the mirror is still down when the
    // daemon is back, long past `for`, and nobody is told again.
    daemon.kill_hard();
    let mut daemon = Daemon::start(&config);
    rounds_completed(&daemon, 3).await;
    assert_eq!(hook.statuses(), ["firing"], "after kill -9");
    daemon.signal("TERM");
    assert_eq!(daemon.exited(Duration::from_secs(30)).await, Some(0));
    let daemon = Daemon::start(&config);
    rounds_completed(&daemon, 3).await;
    assert_eq!(hook.statuses(), ["firing"], "after SIGTERM");

    // It comes back: the resolved notice the first daemon owed is sent.
    mirror.set_path(ARTICLE, Behavior::Page(Page::Primary.on(&mirror)));
    mirror.set(Behavior::Status(404));
    let resolved = hook.first("resolved", Duration::from_secs(30)).await;
    assert_eq!(resolved["started_at"], firing["started_at"], "{resolved}");
    assert_eq!(hook.statuses(), ["firing", "resolved"]);
}

#[tokio::test]
async fn a_sink_added_by_sighup_is_told_and_one_removed_is_not() {
    let primary = serving_article(Page::Primary).await;
    let mirror = TestOrigin::start(Behavior::Hang).await;
    let hook = receiver(0, false).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mirrorgate.toml");
    let site = SiteSpec::new("news", primary.url(), vec![mirror.url()], vec![ARTICLE]);
    let text = config_text(
        &dir.path().join("store.db"),
        "interval = \"1s\"\ntimeout = \"1s\"\nper_host_rate = 100",
        &[site],
    );
    // No sink at start: the mirror goes down unannounced.
    std::fs::write(&config, &text).unwrap();
    let daemon = Daemon::start(&config);
    rounds_completed(&daemon, 3).await;
    let sink = format!(
        "\n[[alerts]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{}\"\nfor = \"1s\"\nmin_severity = \"critical\"\n",
        hook.url
    );
    std::fs::write(&config, format!("{text}{sink}")).unwrap();
    daemon.signal("HUP");
    let firing = hook.first("firing", Duration::from_secs(30)).await;
    assert_eq!(firing["base"], mirror.url().as_str(), "{firing}");
    let applied = daemon.log_entries(&[("key", "alerts"), ("message", "config key changed; applied")]);
    assert_eq!(applied.len(), 1, "{}", daemon.log());
    let metrics = get_text(&daemon.url("/metrics")).await;
    assert!(
        metric(&metrics, "mirrorgate_alerts_total{sink=\"hook\",result=\"delivered\"}").is_some_and(|n| n >= 1.0),
        "{metrics}"
    );

    // Removed again: it is not told that the mirror came back.
    std::fs::write(&config, &text).unwrap();
    daemon.signal("HUP");
    eventually("the second reload", Duration::from_secs(10), || async {
        (daemon.log_entries(&[("message", "config reloaded")]).len() >= 2).then_some(())
    })
    .await;
    mirror.set_path(ARTICLE, Behavior::Page(Page::Primary.on(&mirror)));
    mirror.set(Behavior::Status(404));
    eventually("the mirror back", Duration::from_secs(30), || {
        let url = daemon.url("/status");
        let mirror = mirror.url();
        async move {
            let status = get_json(&url).await;
            (base_summary(&status["sites"][0], &mirror)["state"] == "up").then_some(())
        }
    })
    .await;
    rounds_completed(&daemon, 8).await;
    assert_eq!(hook.statuses(), ["firing"], "a removed sink is told nothing more");
    let metrics = get_text(&daemon.url("/metrics")).await;
    assert!(!metrics.contains("sink=\"hook\""), "{metrics}");
}

#[test]
fn bad_alert_config_is_located() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[[alerts]]\nname = \"x\"\ntype = \"pager\"\nurl = \"ftp://h\"\nmin_severity = \"loud\"\n\n\
         [[sites]]\nname = \"a\"\nprimary = \"https://www.example.com\"\narticles = [\"/a\"]\n",
    )
    .unwrap();
    let out = std::process::Command::new(binary())
        .args(["validate", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for expected in [
        ":3:8: `alerts[0].type`",
        ":4:7: `alerts[0].url`",
        ":5:16: `alerts[0].min_severity`",
    ] {
        assert!(stderr.contains(expected), "{expected} in {stderr}");
    }
}
