//! Running mirrorgate the way operators do: systemd's notify protocol,
//! signals, reloads, metrics, logs, the unit file and the container's
//! health check.

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

fn site<'a>(name: &'a str, primary: &TestOrigin, mirrors: Vec<String>, articles: Vec<&'a str>) -> SiteSpec<'a> {
    SiteSpec::new(name, primary.url(), mirrors, articles)
}

/// Everything the daemon sent to NOTIFY_SOCKET until `until` matched.
fn notifications_until(socket: &UnixDatagram, seen: &mut Vec<String>, until: impl Fn(&[String]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buffer = [0u8; 4096];
    while !until(seen) {
        assert!(Instant::now() < deadline, "timed out; notifications so far: {seen:?}");
        if let Ok(n) = socket.recv(&mut buffer) {
            // One datagram may carry several newline-terminated assignments.
            seen.push(String::from_utf8_lossy(&buffer[..n]).trim_end().to_string());
        }
    }
}

#[tokio::test]
async fn systemd_hears_ready_status_watchdog_reload_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let primary = serving(Page::Primary).await;
    let config = dir.path().join("mirrorgate.toml");
    write_config(
        &config,
        &dir.path().join("s.db"),
        "",
        &[site("news", &primary, vec![], vec![ARTICLE])],
    );
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut daemon = Daemon::start_with_env(
        &config,
        &[
            ("NOTIFY_SOCKET", socket_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "200000"),
        ],
    );
    let mut seen = Vec::new();
    notifications_until(&socket, &mut seen, |s| s.iter().any(|m| m.contains("READY=1")));
    // Ready means serving: the listener answers at once.
    let health = get(daemon.url("/healthz")).await;
    assert_eq!(health.status(), 200);
    notifications_until(&socket, &mut seen, |s| {
        s.iter()
            .any(|m| m.starts_with("STATUS=probing 1 sites, 1 articles; last round"))
            && s.iter().filter(|m| m.as_str() == "WATCHDOG=1").count() >= 2
    });

    seen.clear();
    daemon.signal("HUP");
    notifications_until(&socket, &mut seen, |s| s.iter().any(|m| m.contains("READY=1")));
    let reloading = seen
        .iter()
        .position(|m| m.contains("RELOADING=1"))
        .expect("RELOADING=1 before READY=1");
    assert!(seen[reloading].contains("MONOTONIC_USEC="), "{seen:?}");
    assert!(reloading < seen.iter().position(|m| m.contains("READY=1")).unwrap());

    seen.clear();
    daemon.signal("TERM");
    notifications_until(&socket, &mut seen, |s| s.iter().any(|m| m.contains("STOPPING=1")));
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)), Some(0));
}

#[tokio::test]
async fn sighup_swaps_in_a_valid_config_and_probes_new_articles_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let kept = TestOrigin::start(Behavior::Status(404)).await;
    kept.set_path(ARTICLE, Behavior::Page(Page::Primary.on(&kept)));
    let removed = serving(Page::Primary).await;
    let added = serving(Page::Primary).await;
    let config = dir.path().join("mirrorgate.toml");
    let store = dir.path().join("s.db");
    write_config(
        &config,
        &store,
        "",
        &[
            site("kept", &kept, vec![], vec![ARTICLE]),
            site("removed", &removed, vec![], vec![ARTICLE]),
        ],
    );
    let daemon = Daemon::start(&config);
    rounds_completed(&daemon, 1).await;
    let before = get_json(&daemon.url("/status/kept")).await;
    let checked_before = bases_of(&before, ARTICLE)[&kept.url()]["checked_at"].clone();

    // The interval is an hour: only a reload can make the new things show up.
    write_config(
        &config,
        &store,
        "",
        &[
            site("kept", &kept, vec![], vec![ARTICLE, "/new"]),
            site("added", &added, vec![], vec![ARTICLE]),
        ],
    );
    daemon.signal("HUP");
    // Each host worker starts with its own jitter: wait for both new things.
    let (added_url, kept_url) = (added.url(), kept.url());
    let (added_status, kept_status) = (daemon.url("/status/added"), daemon.url("/status/kept"));
    eventually(
        "the added site and the new article to be probed",
        Duration::from_secs(15),
        || {
            let (added_status, kept_status) = (added_status.clone(), kept_status.clone());
            let (added_url, kept_url) = (added_url.clone(), kept_url.clone());
            async move {
                let added = get_json(&added_status).await;
                let kept = get_json(&kept_status).await;
                let added_done = added["articles"].as_array().is_some()
                    && bases_of(&added, ARTICLE)[&added_url]["verdict"] == "same";
                let kept_done = kept["articles"].as_array().is_some_and(|a| a.len() == 2)
                    && !bases_of(&kept, "/new")[&kept_url]["http_status"].is_null();
                (added_done && kept_done).then_some(())
            }
        },
    )
    .await;
    let gone = get(daemon.url("/status/removed")).await;
    assert_eq!(gone.status(), 404);
    let status = get_json(&daemon.url("/status")).await;
    let names: Vec<&str> = status["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["kept", "added"]);
    let kept_detail = get_json(&daemon.url("/status/kept")).await;
    assert_eq!(kept_detail["articles"].as_array().unwrap().len(), 2);
    assert_eq!(
        bases_of(&kept_detail, "/new")[&kept.url()]["http_status"],
        404,
        "the new article was probed"
    );
    // What was already known is kept; it was probed again in the new round.
    let kept_now = &bases_of(&kept_detail, ARTICLE)[&kept.url()];
    assert_eq!(kept_now["verdict"], "same");
    assert!(kept_now["checked_at"].as_str() >= checked_before.as_str());
    let metrics = get_text(&daemon.url("/metrics")).await;
    assert_eq!(metric(&metrics, "mirrorgate_config_last_reload_successful"), Some(1.0));
    assert_eq!(
        metric(&metrics, "mirrorgate_config_reloads_total{result=\"success\"}"),
        Some(1.0)
    );
    assert!(!metrics.contains("site=\"removed\""));
}

#[tokio::test]
async fn sighup_with_an_invalid_config_keeps_running_on_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let primary = serving(Page::Primary).await;
    let config = dir.path().join("mirrorgate.toml");
    write_config(
        &config,
        &dir.path().join("s.db"),
        "",
        &[site("news", &primary, vec![], vec![ARTICLE])],
    );
    let mut daemon = Daemon::start(&config);
    rounds_completed(&daemon, 1).await;
    std::fs::write(&config, "[probe]\nintervall = \"5m\"\n").unwrap();
    daemon.signal("HUP");
    let url = daemon.url("/metrics");
    eventually("the failed reload to be counted", Duration::from_secs(10), || {
        let url = url.clone();
        async move {
            let metrics = get_text(&url).await;
            (metric(&metrics, "mirrorgate_config_reloads_total{result=\"failure\"}") == Some(1.0)).then_some(())
        }
    })
    .await;
    let metrics = get_text(&url).await;
    assert_eq!(metric(&metrics, "mirrorgate_config_last_reload_successful"), Some(0.0));
    let errors = daemon.log_entries(&[(
        "message",
        "config reload rejected; still running on the previous config",
    )]);
    let located: Vec<&str> = errors.iter().filter_map(|e| e["fields"]["error"].as_str()).collect();
    let file = config.display().to_string();
    assert!(
        located.contains(
            &format!("{file}:2:1: unknown key \"intervall\" in [probe] (did you mean \"interval\"?)").as_str()
        ),
        "{located:?}"
    );
    assert!(
        located
            .iter()
            .any(|e| e.starts_with(&format!("{file}:1:1: no [[sites]] configured"))),
        "{located:?}"
    );
    // Still serving the old config.
    let response = get(daemon.url(&format!("/r/news{ARTICLE}"))).await;
    assert_eq!(response.status(), 302);
    assert!(daemon.wait_exit(Duration::from_millis(100)).is_none(), "still running");
}

#[tokio::test]
async fn sigterm_lets_probes_finish_up_to_the_grace_then_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let fast = serving(Page::Primary).await;
    let hanging = TestOrigin::start(Behavior::Hang).await;
    let config = dir.path().join("mirrorgate.toml");
    let store = dir.path().join("s.db");
    std::fs::write(
        &config,
        config_text(
            &store,
            "interval = \"1h\"\ntimeout = \"60s\"\nper_host_rate = 100",
            &[site("news", &fast, vec![hanging.url()], vec![ARTICLE])],
        )
        .replace("[server]\n", "[server]\nshutdown_grace = \"1s\"\n"),
    )
    .unwrap();
    let mut daemon = Daemon::start(&config);
    // The fast base answered; the hanging one never will.
    let url = daemon.url("/status/news");
    let fast_url = fast.url();
    eventually("the fast base's result", Duration::from_secs(10), || {
        let (url, fast_url) = (url.clone(), fast_url.clone());
        async move {
            let detail = get_json(&url).await;
            (bases_of(&detail, ARTICLE)[&fast_url]["outcome"] == "ok").then_some(())
        }
    })
    .await;
    let requests = hanging.requests.clone();
    eventually("the hanging probe to be in flight", Duration::from_secs(10), || {
        let seen = !requests.lock().unwrap().is_empty();
        async move { seen.then_some(()) }
    })
    .await;
    let stopped = Instant::now();
    daemon.signal("TERM");
    let code = daemon.wait_exit(Duration::from_secs(10));
    let took = stopped.elapsed();
    assert_eq!(code, Some(0), "{}", daemon.log());
    assert!(took < Duration::from_secs(3), "grace 1s + 2s, took {took:?}");
    let connection = rusqlite::Connection::open(&store).unwrap();
    let outcomes: Vec<(String, String)> = connection
        .prepare("SELECT base, outcome FROM probes")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        outcomes,
        vec![(fast.url(), "ok".to_string())],
        "the finished probe is stored"
    );
}

#[tokio::test]
async fn metrics_show_real_values_after_one_round() {
    let dir = tempfile::tempdir().unwrap();
    let primary = serving(Page::Primary).await;
    let down = closed_port().await;
    let config = dir.path().join("mirrorgate.toml");
    write_config(
        &config,
        &dir.path().join("s.db"),
        "",
        &[site("news", &primary, vec![format!("http://{down}")], vec![ARTICLE])],
    );
    let daemon = Daemon::start(&config);
    rounds_completed(&daemon, 1).await;
    let served = get(daemon.url(&format!("/r/news{ARTICLE}"))).await;
    assert_eq!(served.status(), 302);
    let refused = get(daemon.url("/go?url=http://elsewhere.test/")).await;
    assert_eq!(refused.status(), 400);

    let response = get(daemon.url("/metrics")).await;
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = response.text().await.unwrap();
    let p = primary.url();
    let d = format!("http://{down}");
    let expect = [
        (
            format!("mirrorgate_probes_total{{site=\"news\",base=\"{p}\",outcome=\"ok\"}}"),
            1.0,
        ),
        (
            format!("mirrorgate_probes_total{{site=\"news\",base=\"{d}\",outcome=\"connect\"}}"),
            1.0,
        ),
        (
            format!("mirrorgate_probes_total{{site=\"news\",base=\"{p}\",outcome=\"timeout\"}}"),
            0.0,
        ),
        (
            format!("mirrorgate_probe_duration_seconds_count{{site=\"news\",base=\"{p}\"}}"),
            1.0,
        ),
        (
            format!("mirrorgate_probe_duration_seconds_bucket{{site=\"news\",base=\"{p}\",le=\"+Inf\"}}"),
            1.0,
        ),
        (
            format!("mirrorgate_verdicts{{site=\"news\",base=\"{p}\",verdict=\"same\"}}"),
            1.0,
        ),
        (
            format!("mirrorgate_verdicts{{site=\"news\",base=\"{d}\",verdict=\"unreachable\"}}"),
            1.0,
        ),
        (
            format!("mirrorgate_base_state{{site=\"news\",base=\"{d}\",state=\"down\"}}"),
            1.0,
        ),
        ("mirrorgate_redirects_total{outcome=\"served\"}".to_string(), 1.0),
        ("mirrorgate_redirects_total{outcome=\"bad_request\"}".to_string(), 1.0),
        ("mirrorgate_redirects_total{outcome=\"no_candidate\"}".to_string(), 0.0),
        ("mirrorgate_rounds_total".to_string(), 1.0),
        ("mirrorgate_config_last_reload_successful".to_string(), 1.0),
        (
            format!("mirrorgate_build_info{{version=\"{}\"}}", env!("CARGO_PKG_VERSION")),
            1.0,
        ),
        ("mirrorgate_articles{site=\"news\"}".to_string(), 1.0),
    ];
    for (series, value) in expect {
        assert_eq!(metric(&text, &series), Some(value), "{series}\n{text}");
    }
    assert!(metric(&text, "mirrorgate_round_duration_seconds").is_some_and(|s| s > 0.0));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let finished = metric(&text, "mirrorgate_round_last_finished_timestamp_seconds").unwrap();
    assert!((now - finished).abs() < 120.0);
    assert!(
        !text.contains("article=") && !text.contains(ARTICLE),
        "no per-article labels"
    );
}

#[tokio::test]
async fn a_base_state_change_is_logged_once_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let primary = serving(Page::Primary).await;
    let mirror = serving(Page::Relative).await;
    let config = dir.path().join("mirrorgate.toml");
    write_config(
        &config,
        &dir.path().join("s.db"),
        "interval = \"300ms\"\nmax_age = \"1m\"\ntimeout = \"2s\"\nper_host_rate = 100\ndown_after = 2",
        &[site("news", &primary, vec![mirror.url()], vec![ARTICLE])],
    );
    let daemon = Daemon::start(&config);
    rounds_completed(&daemon, 1).await;
    mirror.set(Behavior::Status(502));
    let rounds_then = get_json(&daemon.url("/status")).await["round"]["completed"]
        .as_u64()
        .unwrap();
    rounds_completed(&daemon, rounds_then + 5).await;
    let changes = daemon.log_entries(&[("message", "base state changed"), ("base", &mirror.url())]);
    let transitions: Vec<(String, String)> = changes
        .iter()
        .map(|e| {
            (
                e["fields"]["from"].as_str().unwrap().into(),
                e["fields"]["to"].as_str().unwrap().into(),
            )
        })
        .collect();
    // Hysteresis: one failed round makes it degraded, the second down; then silence.
    assert_eq!(
        transitions,
        vec![
            ("up".to_string(), "degraded".to_string()),
            ("degraded".to_string(), "down".to_string())
        ],
        "{changes:#?}"
    );
    let down = changes.last().unwrap();
    assert_eq!(down["level"], "WARN");
    assert_eq!(
        down["fields"]["reason"],
        "2 consecutive failed probes, last: http_status"
    );

    // One success brings it back up, logged once, at info.
    mirror.set(Behavior::Page(Page::Relative.on(&mirror)));
    let rounds_down = get_json(&daemon.url("/status")).await["round"]["completed"]
        .as_u64()
        .unwrap();
    rounds_completed(&daemon, rounds_down + 3).await;
    let changes = daemon.log_entries(&[("message", "base state changed"), ("base", &mirror.url())]);
    assert_eq!(changes.len(), 3, "{changes:#?}");
    let up = &changes[2];
    assert_eq!(
        (up["fields"]["from"].as_str(), up["fields"]["to"].as_str()),
        (Some("down"), Some("up"))
    );
    assert_eq!(up["level"], "INFO");
}

#[test]
fn systemd_unit_is_hardened_and_verifies() {
    check_unit(
        "mirrorgate.service",
        &[
            "Type=notify",
            "ExecStart=/usr/bin/mirrorgate run",
            "ExecReload=/bin/kill -HUP $MAINPID",
            "StateDirectory=mirrorgate",
            "ConfigurationDirectory=mirrorgate",
        ],
    );
}

#[test]
fn agent_unit_is_hardened_and_verifies() {
    check_unit(
        "mirrorgate-agent.service",
        &[
            "ExecStart=/usr/bin/mirrorgate agent --server",
            "--token-file ${CREDENTIALS_DIRECTORY}/agent_token",
            "LoadCredential=agent_token:/etc/mirrorgate/agent.token",
        ],
    );
}

/// The unit in systemd/ carries `directives` and the hardening both units
/// share, scores at most 1.5 in `systemd-analyze security` and verifies.
fn check_unit(name: &str, directives: &[&str]) {
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd").join(name);
    let text = std::fs::read_to_string(&unit).unwrap();
    let shared = [
        "DynamicUser=yes",
        "CapabilityBoundingSet=\n",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "SystemCallFilter=@system-service",
        "ProtectProc=invisible",
        "UMask=0077",
    ];
    for directive in directives.iter().chain(&shared) {
        assert!(text.contains(directive), "{name}: missing {directive:?}");
    }
    if Command::new("systemd-analyze").arg("--version").output().is_err() {
        eprintln!("systemd-analyze not installed: skipping the security score and verify");
        return;
    }
    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=yes"])
        .arg(&unit)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&security.stdout);
    let exposure: f64 = report
        .lines()
        .find_map(|l| l.split(&format!("Overall exposure level for {name}: ")).nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{report}"));
    assert!(exposure <= 1.5, "{name}: exposure {exposure}:\n{report}");

    // verify checks ExecStart's binary: stage a root holding the real
    // binary at /usr/bin (a hard link) and the system's own units.
    let root = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let r = root.path();
    for dir in ["usr/bin", "bin", "etc/systemd/system", "usr/lib/systemd"] {
        std::fs::create_dir_all(r.join(dir)).unwrap();
    }
    std::fs::hard_link(binary(), r.join("usr/bin/mirrorgate"))
        .or_else(|_| std::fs::copy(binary(), r.join("usr/bin/mirrorgate")).map(|_| ()))
        .unwrap();
    std::fs::copy("/bin/kill", r.join("bin/kill")).unwrap();
    std::fs::copy(&unit, r.join("etc/systemd/system").join(name)).unwrap();
    let units = ["/usr/lib/systemd/system", "/lib/systemd/system"]
        .into_iter()
        .find(|d| Path::new(d).is_dir());
    let copied = Command::new("cp")
        .args([
            "-r",
            units.expect("systemd's units"),
            r.join("usr/lib/systemd/").to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(copied.success());
    let verify = Command::new("systemd-analyze")
        .args(["verify", "--root"])
        .arg(r)
        .arg(name)
        .output()
        .unwrap();
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "systemd-analyze verify {name}:\n{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
}

#[tokio::test]
async fn the_container_health_check_and_entry_point_work() {
    let dockerfile = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile")).unwrap();
    assert!(
        dockerfile
            .contains("CMD [\"/usr/bin/mirrorgate\", \"healthcheck\", \"--url\", \"http://127.0.0.1:8080/healthz\"]")
    );
    assert!(dockerfile.contains("CMD [\"run\", \"--listen\", \"0.0.0.0:8080\"]"));
    assert!(dockerfile.contains("USER 65532:65532") && dockerfile.contains("VOLUME [\"/var/lib/mirrorgate\"]"));
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let output = Command::new(binary())
            .args(args)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    // The image's CMD, with its --listen override, against the image's own config.
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/mirrorgate.toml");
    assert_eq!(run(&["run", "--listen", "0.0.0.0:8080", "--help"], &[]).0, Some(0));
    assert_eq!(run(&["validate"], &[("MIRRORGATE_CONFIG", example)]).0, Some(0));

    let dir = tempfile::tempdir().unwrap();
    let primary = TestOrigin::start(Behavior::Status(404)).await;
    let config = dir.path().join("mirrorgate.toml");
    write_config(
        &config,
        &dir.path().join("s.db"),
        "",
        &[site("news", &primary, vec![], vec![ARTICLE])],
    );
    let daemon = Daemon::start(&config);
    let healthz = daemon.url("/healthz");
    let checked = tokio::task::spawn_blocking(move || run(&["healthcheck", "--url", &healthz], &[]))
        .await
        .unwrap();
    assert_eq!(checked.0, Some(0), "{}", checked.1);
    let dead = format!("http://{}/healthz", closed_port().await);
    let (code, stderr) = tokio::task::spawn_blocking(move || run(&["healthcheck", "--url", &dead], &[]))
        .await
        .unwrap();
    assert_eq!(code, Some(1));
    assert!(stderr.contains("unhealthy"), "{stderr}");
    // A broken config is unhealthy (1), never Docker's reserved 2.
    let (code, _) = run(&["healthcheck"], &[("MIRRORGATE_CONFIG", "/nonexistent.toml")]);
    assert_eq!(code, Some(1));
}

/// Every key changed at once and SIGHUP: each is named in the log as applied
/// or as needing a restart, and the applied ones show their effect.
#[tokio::test]
async fn a_reload_applies_every_key_or_names_it_as_needing_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let primary = serving(Page::Primary).await;
    let config = dir.path().join("mirrorgate.toml");
    let store = dir.path().join("s.db");
    let sites = [SiteSpec::new("news", primary.url(), vec![], vec![ARTICLE])];
    write_config(&config, &store, "", &sites);
    let daemon = Daemon::start_with_env(&config, &[("RUST_LOG", "")]);
    rounds_completed(&daemon, 1).await;
    assert!(
        daemon.log_entries(&[("message", "batch stored")]).is_empty(),
        "info level: no debug lines yet"
    );

    const TOKEN: &str = "a-reloaded-token-0123456789";
    let changed = config_text(
        &dir.path().join("elsewhere.db"),
        "interval = \"2h\"\ntimeout = \"3s\"\nconcurrency = 9\nper_host_rate = 50\nmax_body = \"2MiB\"\nuser_agent = \"reloaded/1\"\ndown_after = 4\nthreads = 1\nmax_age = \"7h\"",
        &sites,
    )
    .replace(
        "[server]\nlisten = \"127.0.0.1:0\"\n",
        &format!(
            "[server]\nlisten = \"127.0.0.1:1\"\nworkers = 1\nshutdown_grace = \"3s\"\nstatus_token = \"{TOKEN}\"\nrequest_header_timeout = \"4s\"\nmax_connections = 50\n"
        ),
    )
    .replace(
        "[store]\n",
        "[store]\nbackend = \"none\"\nretention = \"9d\"\nraw_retention = \"1d\"\nbusy_timeout = \"2s\"\n",
    ) + "\n[log]\nlevel = \"debug\"\n";
    std::fs::write(&config, changed).unwrap();
    daemon.signal("HUP");
    eventually("the reload", Duration::from_secs(10), || async {
        (!daemon.log_entries(&[("message", "config reloaded")]).is_empty()).then_some(())
    })
    .await;
    let applied = [
        "server.shutdown_grace",
        "server.status_token",
        "server.request_header_timeout",
        "server.max_connections",
        "store.retention",
        "store.raw_retention",
        "store.busy_timeout",
        "probe.interval",
        "probe.timeout",
        "probe.concurrency",
        "probe.per_host_rate",
        "probe.max_body",
        "probe.user_agent",
        "probe.down_after",
        "probe.max_age",
        "log.level",
    ];
    let restart = [
        "server.listen",
        "server.workers",
        "store.backend",
        "store.path",
        "probe.threads",
    ];
    for key in applied {
        assert_eq!(
            daemon
                .log_entries(&[("key", key), ("message", "config key changed; applied")])
                .len(),
            1,
            "{key}"
        );
    }
    for key in restart {
        let warned = daemon.log_entries(&[("key", key)]);
        assert_eq!(warned.len(), 1, "{key}");
        assert_eq!(warned[0]["level"], "WARN", "{key}");
        assert!(
            warned[0]["fields"]["message"].as_str().unwrap().contains("restart"),
            "{key}: {}",
            warned[0]
        );
    }
    // The effects: the token is now required, debug lines flow, the listener stays.
    assert_eq!(get(daemon.url("/status")).await.status(), 401);
    let status = client()
        .get(daemon.url("/status"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(status.status(), 200);
    let status: serde_json::Value = status.json().await.unwrap();
    assert_eq!(status["config"]["last_reload_ok"], true);
    eventually(
        "debug lines after log.level = debug",
        Duration::from_secs(10),
        || async { (!daemon.log_entries(&[("message", "batch stored")]).is_empty()).then_some(()) },
    )
    .await;

    // A broken config: the reason is in /status, not only in the metric.
    std::fs::write(&config, "[server\n").unwrap();
    daemon.signal("HUP");
    let status = eventually("the failed reload in /status", Duration::from_secs(10), || {
        let url = daemon.url("/status");
        async move {
            let status = get_json_authorized(&url, TOKEN).await?;
            (status["config"]["last_reload_ok"] == false).then_some(status)
        }
    })
    .await;
    assert!(
        status["config"]["last_reload_error"]
            .as_str()
            .unwrap()
            .contains("mirrorgate.toml:1"),
        "{}",
        status["config"]
    );
}

/// No engine can pull base images here, so the image's build stage is
/// staged by hand: exactly what its COPY lines copy, in an empty directory,
/// then `cargo metadata` and `cargo check --locked` there. A file the
/// manifest needs and the Dockerfile forgets fails this.
#[test]
fn the_container_build_stage_builds_from_what_it_copies() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
    let stage = tempfile::tempdir().unwrap();
    let build_stage = dockerfile
        .lines()
        .skip_while(|l| !l.starts_with("FROM "))
        .skip(1)
        .take_while(|l| !l.starts_with("FROM "));
    let mut copied = 0;
    for line in build_stage {
        let Some(args) = line.strip_prefix("COPY ") else {
            continue;
        };
        let words: Vec<&str> = args.split_whitespace().filter(|w| !w.starts_with("--")).collect();
        let (destination, sources) = words.split_last().unwrap();
        for source in sources {
            let to = if destination.ends_with('/') || sources.len() > 1 {
                stage.path().join(destination).join(source)
            } else {
                stage.path().join(destination)
            };
            copy_tree(&root.join(source), &to);
            copied += 1;
        }
    }
    assert!(copied >= 3, "found {copied} COPY sources in the build stage");
    let cargo = |args: &[&str]| {
        let output = Command::new(env!("CARGO"))
            .args(args)
            .current_dir(stage.path())
            .env("CARGO_TARGET_DIR", root.join("target").join("container-stage"))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "cargo {args:?} in the staged build context failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    cargo(&[
        "metadata",
        "--locked",
        "--offline",
        "--format-version",
        "1",
        "--no-deps",
    ]);
    cargo(&["check", "--locked", "--offline", "--release", "--bin", "mirrorgate"]);
}

fn copy_tree(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, to).unwrap();
    }
}

/// Starts the daemon (RUST_LOG unset) and returns its log lines up to the
/// one that says it is serving, then stops it.
fn log_until_serving(mut command: Command) -> Vec<String> {
    use std::io::{BufRead, BufReader};
    let mut child = command
        .env_remove("RUST_LOG")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        let serving = line.contains("serving");
        lines.push(line);
        if serving {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    lines
}

/// A config whose one base never answers (port 9, discard): for tests of
/// what the daemon says at start.
fn one_site_config(dir: &Path) -> std::path::PathBuf {
    let config = dir.join("mirrorgate.toml");
    let sites = [SiteSpec::new(
        "news",
        "http://127.0.0.1:9".to_string(),
        vec![],
        vec![ARTICLE],
    )];
    write_config(&config, &dir.join("s.db"), "", &sites);
    config
}

/// Logs to a pipe (the journal, a file) are plain text: no colour codes.
#[test]
fn logs_to_a_pipe_carry_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let config = one_site_config(dir.path());
    for env in [vec![], vec![("NO_COLOR", "1")]] {
        let mut command = Command::new(binary());
        command.args(["run", "--config"]).arg(&config).envs(env.iter().copied());
        let lines = log_until_serving(command);
        let text = lines.join("\n");
        assert!(text.contains("INFO"), "{text}");
        assert!(!text.contains('\u{1b}'), "colour codes in a pipe ({env:?}): {text:?}");
    }
}

/// Listening beyond loopback with no token: said at start (the container's
/// CMD listens on 0.0.0.0).
#[test]
fn listening_beyond_loopback_without_a_token_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let config = one_site_config(dir.path());
    for (listen, warned) in [("0.0.0.0:0", true), ("127.0.0.1:0", false)] {
        let mut command = Command::new(binary());
        command
            .args(["--log-format", "json", "run", "--listen", listen, "--config"])
            .arg(&config);
        let lines = log_until_serving(command);
        let found = lines
            .iter()
            .any(|l| l.contains("WARN") && l.contains("without server.status_token"));
        assert_eq!(found, warned, "{listen}: {lines:#?}");
    }
}

/// A round longer than the interval is counted and logged with its duration.
#[tokio::test]
async fn rounds_that_outlast_the_interval_are_counted_and_logged() {
    let dir = tempfile::tempdir().unwrap();
    let primary = serving(Page::Primary).await;
    let hanging = TestOrigin::start(Behavior::Hang).await;
    let config = dir.path().join("mirrorgate.toml");
    write_config(
        &config,
        &dir.path().join("s.db"),
        "interval = \"300ms\"\nmax_age = \"1m\"\ntimeout = \"1s\"\nper_host_rate = 100",
        &[SiteSpec::new("news", primary.url(), vec![hanging.url()], vec![ARTICLE])],
    );
    let daemon = Daemon::start(&config);
    rounds_completed(&daemon, 2).await;
    let status = get_json(&daemon.url("/status")).await;
    assert!(
        status["round"]["overruns"].as_u64().unwrap() >= 1,
        "{}",
        status["round"]
    );
    let metrics = get_text(&daemon.url("/metrics")).await;
    assert!(metric(&metrics, "mirrorgate_rounds_overrun_total").unwrap() >= 1.0);
    let logged = daemon.log_entries(&[(
        "message",
        "probe round took longer than probe.interval; the next one starts at once (raise probe.interval or probe.per_host_rate, or lower the article count)",
    )]);
    assert!(!logged.is_empty());
    assert!(
        logged[0]["fields"]["duration_ms"].as_u64().unwrap() >= 1000,
        "{}",
        logged[0]
    );
}

#[test]
fn the_compose_file_is_valid_and_its_config_validates() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let compose = std::fs::read_to_string(root.join("compose.yaml")).unwrap();
    for service in ["postgres:", "mirrorgate-a:", "mirrorgate-b:", "agent:"] {
        assert!(
            compose.contains(&format!("\n  {service}")),
            "compose.yaml has {service}"
        );
    }
    // mirrorgate-b takes instance a's, healthcheck included (`<<: *instance`).
    assert_eq!(compose.matches("healthcheck:").count(), 3, "a healthcheck each");
    assert!(compose.contains("mirrorgate-b:\n    <<: *instance"));
    let docker_compose = Command::new("docker")
        .args(["compose", "version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if docker_compose {
        let out = Command::new("docker")
            .args(["compose", "-f"])
            .arg(root.join("compose.yaml"))
            .args(["config", "--quiet"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    } else {
        skipped("compose config", "no `docker compose` on this machine");
    }
    // The config both instances read validates, with the compose secrets
    // where the containers have them.
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root.join("config/compose/mirrorgate.toml"))
        .unwrap()
        .replace(
            "/run/secrets/pg-password",
            root.join("config/compose/pg-password").to_str().unwrap(),
        )
        .replace(
            "/run/secrets/agent-token",
            root.join("config/compose/agent-token").to_str().unwrap(),
        );
    let config = dir.path().join("mirrorgate.toml");
    std::fs::write(&config, text).unwrap();
    let out = Command::new(binary())
        .args(["validate", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}
