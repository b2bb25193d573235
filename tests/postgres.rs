//! The daemon on a shared PostgreSQL store, as an operator runs it: what it
//! served comes back after kill -9 and SIGTERM, several instances start on
//! one database together, a newer schema is refused, and no password ever
//! reaches a log or an answer.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::postgres::Schema;
use common::*;
use reqwest::header;

const PASSWORD_IN_FILE: &str = "pw-from-file-7731";
const PASSWORD_IN_URL: &str = "pw-in-url-5521";

/// A config whose `[store]` is `schema`, reached with a password in the
/// URL and another in `password_file` (the local server trusts loopback,
/// so neither is checked: what matters is that neither is ever shown).
fn write_postgres_config(dir: &Path, schema: &Schema, instance: &str, probe: &str, sites: &[SiteSpec]) -> PathBuf {
    let mut url = url::Url::parse(&schema.url()).unwrap();
    url.set_password(Some(PASSWORD_IN_URL)).unwrap();
    let password_file = dir.join("pg-password");
    std::fs::write(&password_file, format!("{PASSWORD_IN_FILE}\n")).unwrap();
    let text = config_text(Path::new("UNUSED"), probe, sites).replace(
        "path = \"UNUSED\"",
        &format!(
            "url = \"{url}\"\npassword_file = \"{}\"\ninstance = \"{instance}\"",
            password_file.display()
        ),
    );
    let config = dir.join(format!("{instance}.toml"));
    std::fs::write(&config, text).unwrap();
    config
}

/// Adds sections (`[schedule]`, `[[alerts]]`) at the end of `config`.
fn append_to_config(config: &Path, sections: &str) {
    let mut text = std::fs::read_to_string(config).unwrap();
    text.push_str(sections);
    std::fs::write(config, text).unwrap();
}

fn assert_no_password(what: &str, text: &str) {
    for secret in [PASSWORD_IN_FILE, PASSWORD_IN_URL] {
        assert!(!text.contains(secret), "{what} shows a password: {text}");
    }
}

async fn stored_rows(schema: &Schema, table: &str, at_least: i64) {
    eventually(
        &format!("{at_least} rows in {table}"),
        Duration::from_secs(60),
        || async {
            let rows: i64 = schema
                .query_text(&format!("SELECT count(*) FROM {table}"))
                .parse()
                .unwrap();
            (rows >= at_least).then_some(())
        },
    )
    .await
}

// Threads of its own for the origins: waiting for the daemon to exit blocks
// the test's thread while the daemon's last probes still need answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_it_served_comes_back_after_kill_9_and_sigterm() {
    let Some(schema) = Schema::create("daemon_restart") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let primary = serving(Page::Primary).await;
    let mirror = serving(Page::Relative).await;
    let articles: Vec<String> = (0..3).map(|i| format!("{ARTICLE}?page={i}")).collect();
    let site = || {
        SiteSpec::new(
            "news",
            primary.url(),
            vec![mirror.url()],
            articles.iter().map(String::as_str).collect(),
        )
    };
    let probing = "interval = \"200ms\"\ntimeout = \"5s\"\nper_host_rate = 2000";
    let config = write_postgres_config(dir.path(), &schema, "edge-1", probing, &[site()]);
    let mut logs = String::new();

    let mut daemon = Daemon::start(&config);
    let status = rounds_completed(&daemon, 1).await;
    assert_eq!(status["store"]["backend"], "postgres", "{status}");
    assert_eq!(status["store"]["instance"], "edge-1", "{status}");
    assert_eq!(status["store"]["ok"], true, "{status}");
    // Every base of every article has a stored result before the crash.
    stored_rows(&schema, "latest", 2 * articles.len() as i64).await;
    daemon.kill_hard();
    logs += &daemon.log_text();

    let mut daemon = Daemon::start(&config);
    rounds_completed(&daemon, 2).await;
    daemon.signal("TERM");
    assert_eq!(
        daemon.exited(Duration::from_secs(30)).await,
        Some(0),
        "{}",
        daemon.log_text()
    );
    logs += &daemon.log_text();

    // Back once more with every base hanging: all it serves comes from the store.
    primary.set(Behavior::Hang);
    mirror.set(Behavior::Hang);
    let config = write_postgres_config(
        dir.path(),
        &schema,
        "edge-1",
        "interval = \"1h\"\ntimeout = \"60s\"",
        &[site()],
    );
    let daemon = Daemon::start(&config);
    let status = get_json(&daemon.url("/status")).await;
    assert_eq!(status["round"]["completed"], 0, "no round has finished yet");
    let detail = get_json(&daemon.url("/status/news")).await;
    for path in &articles {
        let bases = bases_of(&detail, path);
        assert_eq!(bases[&primary.url()]["verdict"], "same", "{path}: {detail}");
        assert_eq!(bases[&mirror.url()]["verdict"], "same", "{path}: {detail}");
    }
    let primary_summary = base_summary(&status["sites"][0], &primary.url());
    assert!(
        primary_summary["uptime"]["1h"].as_f64().unwrap() > 0.0,
        "uptime comes back from the stored minutes: {status}"
    );
    let response = get(daemon.url(&format!("/r/news{}", articles[0]))).await;
    assert_eq!(response.status(), 302);
    let location = response.headers()[header::LOCATION].to_str().unwrap().to_string();
    assert!(
        location.starts_with(&primary.url()) || location.starts_with(&mirror.url()),
        "{location}"
    );

    assert_no_password("/status", &status.to_string());
    assert_no_password("/status/news", &detail.to_string());
    assert_no_password("/metrics", &get_text(&daemon.url("/metrics")).await);
    assert_no_password("the status page", &get_text(&daemon.url("/")).await);
    logs += &daemon.log_text();
    assert_no_password("the log", &logs);
    assert!(
        logs.contains("store.url holds a password"),
        "the password in the URL is warned about"
    );
}

#[tokio::test]
async fn instances_started_together_share_one_store() {
    let Some(schema) = Schema::create("two_instances") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let primary = serving(Page::Primary).await;
    let probing = "interval = \"200ms\"\ntimeout = \"5s\"\nper_host_rate = 2000";
    let configs: Vec<PathBuf> = ["edge-a", "edge-b"]
        .iter()
        .map(|name| {
            let site = SiteSpec::new("news", primary.url(), vec![], vec![ARTICLE]);
            write_postgres_config(dir.path(), &schema, name, probing, &[site])
        })
        .collect();
    // Both migrate an empty database at once: the advisory lock orders them.
    let starting: Vec<_> = configs
        .into_iter()
        .map(|config| std::thread::spawn(move || Daemon::start(&config)))
        .collect();
    let daemons: Vec<Daemon> = starting.into_iter().map(|t| t.join().unwrap()).collect();
    for (daemon, name) in daemons.iter().zip(["edge-a", "edge-b"]) {
        let status = rounds_completed(daemon, 1).await;
        assert_eq!(status["store"]["instance"], name);
        assert_eq!(status["store"]["ok"], true, "{status}");
    }
    assert_eq!(
        schema.query_text("SELECT count(*) FROM mirrorgate_schema"),
        mirrorgate::store::MIGRATIONS.len().to_string(),
        "each migration applied once"
    );
    stored_rows(&schema, "probes", 2).await;
}

#[tokio::test]
async fn a_schema_newer_than_the_binary_is_refused_at_start() {
    let Some(schema) = Schema::create("newer_at_start") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    schema
        .execute("CREATE TABLE mirrorgate_schema (version BIGINT NOT NULL); INSERT INTO mirrorgate_schema VALUES (99)");
    let site = SiteSpec::new("news", "http://127.0.0.1:9".into(), vec![], vec!["/a"]);
    let config = write_postgres_config(dir.path(), &schema, "edge-1", "", &[site]);
    let out = tokio::task::spawn_blocking(move || {
        Command::new(binary())
            .args(["run", "--config"])
            .arg(&config)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let known = mirrorgate::store::MIGRATIONS.len();
    assert!(
        stderr.contains("version 99") && stderr.contains(&format!("mirrorgate's {known}")),
        "names both versions: {stderr}"
    );
    assert_no_password("the error", &stderr);
}

/// A loopback TCP path to the PostgreSQL server that the test can cut (new
/// connections are closed at once, open ones dropped) and mend: the server
/// going away and coming back, without touching the server other tests use.
struct Cable {
    url: String,
    cut: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Cable {
    async fn to(schema: &Schema) -> Cable {
        let mut url = url::Url::parse(&schema.url()).unwrap();
        let upstream = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let local = listener.local_addr().unwrap();
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(local.port())).unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (is_cut, connections) = (cut.clone(), open.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if is_cut.load(Ordering::SeqCst) {
                    continue;
                }
                let upstream = upstream.clone();
                connections.lock().unwrap().push(tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                }));
            }
        });
        Cable {
            url: url.to_string(),
            cut,
            open,
        }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for connection in self.open.lock().unwrap().drain(..) {
            connection.abort();
        }
    }

    fn mend(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

// Two threads: the daemon's start blocks this test's thread while it
// reaches PostgreSQL through the cable, which runs on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_postgresql_is_away_readers_are_served_and_results_wait() {
    let Some(schema) = Schema::create("outage") else { return };
    let cable = Cable::to(&schema).await;
    let dir = tempfile::tempdir().unwrap();
    let primary = serving(Page::Primary).await;
    let site = SiteSpec::new("news", primary.url(), vec![], vec![ARTICLE]);
    let text = config_text(
        Path::new("UNUSED"),
        "interval = \"200ms\"\ntimeout = \"5s\"\nper_host_rate = 2000",
        &[site],
    )
    .replace("path = \"UNUSED\"", &format!("url = \"{}\"", cable.url));
    let config = dir.path().join("mirrorgate.toml");
    std::fs::write(&config, text).unwrap();
    let daemon = Daemon::start(&config);
    rounds_completed(&daemon, 1).await;
    stored_rows(&schema, "probes", 1).await;

    cable.cut();
    let status = eventually("the store reported away", Duration::from_secs(30), || {
        let url = daemon.url("/status");
        async move {
            let status = get_json(&url).await;
            (status["store"]["ok"] == false).then_some(status)
        }
    })
    .await;
    assert_eq!(status["store"]["backend"], "postgres");
    assert!(
        status["store"]["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{status}"
    );
    // Three failed attempts (1 s, 2 s, then 4 s apart) while readers are served.
    let metrics = eventually("three failed writes", Duration::from_secs(30), || {
        let url = daemon.url("/metrics");
        async move {
            let metrics = get_text(&url).await;
            (metric(&metrics, "mirrorgate_store_write_failures_total")? >= 3.0).then_some(metrics)
        }
    })
    .await;
    assert_eq!(metric(&metrics, "mirrorgate_store_up"), Some(0.0), "{metrics}");
    assert!(metric(&metrics, "mirrorgate_store_records_pending").unwrap() > 0.0);
    let response = get(daemon.url(&format!("/r/news{ARTICLE}"))).await;
    assert_eq!(response.status(), 302);
    assert_eq!(get(daemon.url("/healthz")).await.status(), 200, "the process serves");
    let logged = daemon.log_entries(&[("message", "store write failed; keeping the records and retrying later")]);
    assert!(
        !logged.is_empty() && logged.len() <= 2,
        "logged once per change, not per attempt: {logged:?}"
    );

    cable.mend();
    eventually("the store back", Duration::from_secs(60), || {
        let url = daemon.url("/status");
        async move { (get_json(&url).await["store"]["ok"] == true).then_some(()) }
    })
    .await;
    // Everything the daemon reports written is in the database.
    let reported = daemon
        .log_entries(&[("message", "batch stored")])
        .iter()
        .filter_map(|e| e["fields"]["total"].as_i64())
        .max()
        .unwrap();
    let stored: i64 = schema.query_text("SELECT count(*) FROM probes").parse().unwrap();
    assert!(
        stored >= reported,
        "{reported} reported written, {stored} in the database"
    );
    let metrics = get_text(&daemon.url("/metrics")).await;
    assert_eq!(metric(&metrics, "mirrorgate_store_up"), Some(1.0));
    assert_eq!(metric(&metrics, "mirrorgate_store_records_dropped_total"), Some(0.0));
}

fn leaders(status: &serde_json::Value) -> Vec<String> {
    status["cluster"]["instances"]
        .as_array()
        .map(|all| {
            all.iter()
                .filter(|i| i["leader"] == true)
                .map(|i| i["name"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

// Several threads: each daemon's start blocks one while the origins and
// the receiver answer on the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn three_instances_have_one_leader_which_alone_alerts_and_is_replaced_when_killed() {
    let Some(schema) = Schema::create("three_instances") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let primary = serving_article(Page::Primary).await;
    let mirror = TestOrigin::start(Behavior::Hang).await;
    let receiver = common::receiver::receiver(0, false).await;
    let hook = receiver.url.clone();
    let names = ["edge-a", "edge-b", "edge-c"];
    let probing = "interval = \"1s\"\ntimeout = \"1s\"\nper_host_rate = 1000";
    let mut daemons: Vec<Option<Daemon>> = Vec::new();
    for name in names {
        let site = SiteSpec::new("news", primary.url(), vec![mirror.url()], vec![ARTICLE]);
        let config = write_postgres_config(dir.path(), &schema, name, probing, &[site]);
        append_to_config(
            &config,
            &format!(
                "\n[[alerts]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{hook}\"\nfor = \"1s\"\nmin_severity = \"critical\"\n"
            ),
        );
        daemons.push(Some(Daemon::start(&config)));
    }
    // Every instance sees all three and the same one leader.
    let mut leader = String::new();
    for daemon in daemons.iter().flatten() {
        let status = eventually("three instances, one leader", Duration::from_secs(30), || {
            let url = daemon.url("/status");
            async move {
                let status = get_json(&url).await;
                let three = status["cluster"]["instances"].as_array().is_some_and(|i| i.len() == 3);
                (three && leaders(&status).len() == 1).then_some(status)
            }
        })
        .await;
        assert_eq!(status["cluster"]["backend"], "postgres");
        let hashes: Vec<&str> = status["cluster"]["instances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["config_hash"].as_str().unwrap())
            .collect();
        assert!(hashes.windows(2).all(|w| w[0] == w[1]), "one config: {status}");
        let this = leaders(&status).remove(0);
        assert!(leader.is_empty() || leader == this, "{leader} and {this} lead");
        assert_eq!(status["cluster"]["leader"], this.as_str());
        leader = this;
    }
    // The mirror hangs: one firing for the cluster, not one per instance.
    let firing = receiver.first("firing", Duration::from_secs(60)).await;
    let leader_index = names.iter().position(|n| *n == leader).unwrap();
    let metrics = get_text(&daemons[leader_index].as_ref().unwrap().url("/metrics")).await;
    assert_eq!(metric(&metrics, "mirrorgate_cluster_instances"), Some(3.0), "{metrics}");
    assert_eq!(
        metric(&metrics, &format!("mirrorgate_cluster_leader{{instance=\"{leader}\"}}")),
        Some(1.0)
    );

    // Kill the leader once its book says the firing went out: another
    // takes the lease when it runs out (15 s) and sends nothing again.
    eventually("the firing in the kept book", Duration::from_secs(30), || {
        let book = schema.query_text("SELECT string_agg(value, ' ') FROM kept WHERE kind = 'alerts.held'");
        async move { book.contains("\"fired\":true").then_some(()) }
    })
    .await;
    daemons[leader_index].take().unwrap().kill_hard();
    let survivor = daemons.iter().flatten().next().unwrap();
    let status = eventually("a new leader", Duration::from_secs(40), || {
        let url = survivor.url("/status");
        let old = leader.clone();
        async move {
            let status = get_json(&url).await;
            let now = leaders(&status);
            (now.len() == 1 && now[0] != old).then_some(status)
        }
    })
    .await;
    let new_leader = leaders(&status).remove(0);
    let new_index = names.iter().position(|n| *n == new_leader).unwrap();
    rounds_completed(daemons[new_index].as_ref().unwrap(), 3).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let statuses = receiver.statuses();
    let firings = statuses.iter().filter(|s| *s == "firing").count();
    assert_eq!(firings, 1, "one firing for the cluster: {statuses:?}");
    // The dead leader's pair at least; on a loaded machine also a pair of
    // a live instance whose probe of the hanging mirror ran its whole
    // timeout and whose result came after its lease (2 s) had run out.
    let metrics = get_text(&daemons[new_index].as_ref().unwrap().url("/metrics")).await;
    let taken_over = metric(&metrics, "mirrorgate_leases_expired_total").unwrap_or(0.0);
    assert!(taken_over >= 1.0, "{metrics}");

    // The mirror comes back: the new leader owes, and sends, the resolved.
    mirror.set_path(ARTICLE, Behavior::Page(Page::Primary.on(&mirror)));
    mirror.set(Behavior::Status(404));
    let resolved = receiver.first("resolved", Duration::from_secs(60)).await;
    assert_eq!(resolved["started_at"], firing["started_at"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_starts_while_postgresql_is_away_and_takes_up_what_was_kept() {
    let Some(schema) = Schema::create("away_at_start") else {
        return;
    };
    let primary = serving(Page::Primary).await;
    let mirror = serving(Page::Relative).await;
    // What an earlier instance kept: the mirror first listed in 2020. (The
    // store's calls block: off the test's runtime.)
    let (url, mirror_url) = (schema.url(), mirror.url());
    tokio::task::spawn_blocking(move || {
        use mirrorgate::store::Store;
        let mut earlier = mirrorgate::store::PostgresStore::open(mirrorgate::store::PostgresTarget {
            config: url.parse().unwrap(),
            name: "earlier".into(),
            verify_server: false,
            password_file: None,
        })
        .unwrap();
        let listed = mirrorgate::store::Kept {
            kind: "mirror_list.listed".into(),
            key: mirror_url,
            value: "1600000000000".into(),
        };
        earlier.save_kept("mirror_list.listed", &[listed]).unwrap();
    })
    .await
    .unwrap();

    let cable = Cable::to(&schema).await;
    cable.cut();
    let dir = tempfile::tempdir().unwrap();
    let site = SiteSpec::new("news", primary.url(), vec![mirror.url()], vec![ARTICLE]);
    let text = config_text(
        Path::new("UNUSED"),
        "interval = \"300ms\"\ntimeout = \"5s\"\nper_host_rate = 2000",
        &[site],
    )
    .replace(
        "path = \"UNUSED\"",
        &format!("url = \"{}\"\ninstance = \"late\"", cable.url),
    );
    let config = dir.path().join("mirrorgate.toml");
    std::fs::write(&config, text).unwrap();
    let daemon = Daemon::start(&config);
    assert!(daemon.log().contains("store unreachable"), "{}", daemon.log());
    let status = rounds_completed(&daemon, 1).await;
    assert_eq!(status["store"]["ok"], false, "{status}");
    assert_eq!(
        status["cluster"]["leader"],
        serde_json::Value::Null,
        "not leading without the store"
    );
    assert_eq!(get(daemon.url(&format!("/r/news{ARTICLE}"))).await.status(), 302);
    assert_eq!(get(daemon.url("/healthz")).await.status(), 200);

    cable.mend();
    eventually(
        "the store back and this instance leading",
        Duration::from_secs(60),
        || {
            let url = daemon.url("/status");
            async move {
                let status = get_json(&url).await;
                (status["store"]["ok"] == true && status["cluster"]["leader"] == "late").then_some(())
            }
        },
    )
    .await;
    stored_rows(&schema, "probes", 2).await;
    // The kept date is taken up, not replaced by this instance's own.
    let created_at = eventually("the mirror's kept date", Duration::from_secs(30), || {
        let url = daemon.url("/mirrors.json");
        async move {
            let list = get_json(&url).await;
            let created = list["sites"][0]["available_alternatives"][0]["created_at"].clone();
            (created == "2020-09-13T12:26:40.000Z").then_some(created)
        }
    })
    .await;
    assert_eq!(created_at, "2020-09-13T12:26:40.000Z");
}

/// Probes per (base, article) pair the store recorded since `since` (ms),
/// and how many pairs had one.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// When each (base, article) was probed since `since`, oldest first, as
/// the store recorded it.
fn probe_times_since(schema: &Schema, since: i64) -> std::collections::BTreeMap<String, Vec<i64>> {
    let text = schema.query_text(&format!(
        "SELECT string_agg(base || ' ' || article || ' ' || at, ',' ORDER BY at) FROM probes WHERE at > {since}"
    ));
    let mut times: std::collections::BTreeMap<String, Vec<i64>> = Default::default();
    for row in text.split(',').filter(|r| !r.is_empty()) {
        let (pair, at) = row.rsplit_once(' ').unwrap();
        times.entry(pair.to_string()).or_default().push(at.parse().unwrap());
    }
    times
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn instances_share_the_probes_by_lease_and_take_over_a_killed_ones() {
    let Some(schema) = Schema::create("share_probes") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Slow answers, so an instance holds leases for a while each round.
    let slow = |page: Page| async move {
        let origin = serving(page).await;
        let body = page.on(&origin);
        origin.set(Behavior::Slow {
            delay: Duration::from_millis(300),
            then: Box::new(Behavior::Page(body)),
        });
        origin
    };
    let primary = slow(Page::Primary).await;
    let mirror = slow(Page::Relative).await;
    let articles: Vec<String> = (0..12).map(|i| format!("{ARTICLE}?page={i}")).collect();
    let pairs = 2 * articles.len();
    let (interval, timeout) = (3_000, 1_000);
    let mut daemons = Vec::new();
    for name in ["share-a", "share-b", "share-c"] {
        let site = SiteSpec::new(
            "news",
            primary.url(),
            vec![mirror.url()],
            articles.iter().map(String::as_str).collect(),
        );
        let probing = "interval = \"3s\"\ntimeout = \"1s\"\nconcurrency = 4\nper_host_rate = 1000";
        let config = write_postgres_config(dir.path(), &schema, name, probing, &[site]);
        daemons.push(Some(Daemon::start(&config)));
    }
    for daemon in daemons.iter().flatten() {
        eventually("three instances", Duration::from_secs(30), || {
            let url = daemon.url("/status");
            async move {
                let status = get_json(&url).await;
                status["cluster"]["instances"]
                    .as_array()
                    .is_some_and(|i| i.len() == 3)
                    .then_some(())
            }
        })
        .await;
    }
    tokio::time::sleep(Duration::from_millis(interval as u64)).await;
    let since = now_ms();
    // Killed while it holds leases, mid-round.
    tokio::time::sleep(Duration::from_millis(interval as u64)).await;
    eventually("share-a holding leases", Duration::from_secs(30), || async {
        let held: i64 = schema
            .query_text("SELECT count(*) FROM work WHERE owner = 'share-a' AND expires_at IS NOT NULL")
            .parse()
            .unwrap();
        (held > 0).then_some(())
    })
    .await;
    daemons[0].take().unwrap().kill_hard();
    let killed_at = now_ms();
    tokio::time::sleep(Duration::from_millis(4 * interval as u64)).await;
    let until = now_ms();

    // From the store's own records: every pair probed throughout; none
    // waited longer than an interval plus two timeouts (the killed
    // instance's leases running out) — plus a second for a loaded
    // machine's polls — and none was probed three times in one interval.
    let times = probe_times_since(&schema, since);
    assert_eq!(times.len(), pairs, "every pair probed: {times:?}");
    for (pair, at) in &times {
        let mut gaps: Vec<i64> = at.windows(2).map(|w| w[1] - w[0]).collect();
        gaps.push(until - at.last().unwrap());
        let longest = gaps.iter().max().unwrap();
        assert!(
            *longest <= interval + 2 * timeout + 1_000,
            "{pair} went {longest} ms without a probe (killed at {killed_at}): {at:?}"
        );
        for three in at.windows(3) {
            assert!(
                three[2] - three[0] >= interval,
                "{pair} probed three times within one interval: {at:?}"
            );
        }
    }
    let mut expired = 0;
    for daemon in daemons.iter().flatten() {
        let metrics = reqwest::get(daemon.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        expired += metrics
            .lines()
            .find_map(|l| l.strip_prefix("mirrorgate_leases_expired_total "))
            .map_or(0, |v| v.trim().parse::<u64>().unwrap());
    }
    assert!(
        expired > 0,
        "the killed instance's leases were taken over by the others"
    );

    // Each instance serves every pair, those the others probe included.
    for daemon in daemons.iter().flatten() {
        let detail = eventually("every pair known", Duration::from_secs(20), || {
            let url = daemon.url("/status/news");
            let articles = articles.clone();
            async move {
                let detail = get_json(&url).await;
                articles
                    .iter()
                    .all(|a| bases_of(&detail, a).values().all(|b| b["verdict"] == "same"))
                    .then_some(detail)
            }
        })
        .await;
        assert_eq!(detail["articles"].as_array().unwrap().len(), articles.len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_alone_discovers_and_the_others_probe_what_it_found() {
    let Some(schema) = Schema::create("leader_discovers") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let origin = serving_article(Page::Primary).await;
    origin.set_path("/news/found", Behavior::Page(Page::Primary.on(&origin)));
    let sitemap = format!("<urlset><url><loc>{}/news/found</loc></url></urlset>", origin.url());
    origin.set_path(
        "/sitemap.xml",
        Behavior::Raw {
            headers: vec![("content-type", "application/xml".to_string())],
            body: sitemap.into(),
        },
    );
    let extra = format!(
        "[sites.discover]\nsitemaps = [\"{}/sitemap.xml\"]\ninterval = \"1h\"\n",
        origin.url()
    );
    let daemons: Vec<Daemon> = ["find-a", "find-b"]
        .into_iter()
        .map(|name| {
            let site = SiteSpec::new("news", origin.url(), vec![], vec![ARTICLE]).extra(&extra);
            Daemon::start(&write_postgres_config(dir.path(), &schema, name, "", &[site]))
        })
        .collect();
    for daemon in &daemons {
        eventually("the discovered article, probed", Duration::from_secs(40), || {
            let url = daemon.url("/status/news");
            async move {
                let detail = get_json(&url).await;
                let found = detail["articles"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|a| a["path"] == "/news/found"));
                (found
                    && bases_of(&detail, "/news/found")
                        .values()
                        .all(|b| b["verdict"] == "same"))
                .then_some(())
            }
        })
        .await;
    }
    let fetches = |origin: &TestOrigin| {
        origin
            .requests
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, path)| path == "/sitemap.xml")
            .count()
    };
    assert_eq!(fetches(&origin), 1, "the sitemap was fetched once for the cluster");
}

#[tokio::test]
async fn a_reload_that_shortens_the_interval_brings_the_next_probes_forward() {
    let Some(schema) = Schema::create("reload_interval") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let primary = serving_article(Page::Primary).await;
    let site = || SiteSpec::new("news", primary.url(), vec![], vec![ARTICLE]);
    let config = write_postgres_config(dir.path(), &schema, "reloads", "interval = \"1h\"", &[site()]);
    let daemon = Daemon::start(&config);
    stored_rows(&schema, "probes", 1).await;
    let probed = || article_probes(&primary);
    let before = probed();
    write_postgres_config(dir.path(), &schema, "reloads", "interval = \"1s\"", &[site()]);
    daemon.signal("HUP");
    eventually("probes at the new interval", Duration::from_secs(20), || {
        let more = probed() >= before + 3;
        async move { more.then_some(()) }
    })
    .await;
}

/// Requests `origin` has had for [`ARTICLE`].
fn article_probes(origin: &TestOrigin) -> usize {
    origin
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, p)| p == ARTICLE)
        .count()
}

#[tokio::test]
async fn the_work_queue_makes_a_cold_article_due_a_cold_interval_later() {
    let Some(schema) = Schema::create("tiers") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let primary = serving_article(Page::Primary).await;
    let site = SiteSpec::new("news", primary.url(), vec![], vec![ARTICLE]);
    let config = write_postgres_config(
        dir.path(),
        &schema,
        "tiers",
        "interval = \"1s\"\nmax_age = \"2s\"",
        &[site],
    );
    append_to_config(
        &config,
        "\n[schedule]\nhot_min_articles = 1\ncanary_articles = 0\nhot_for = \"1s\"\nwarm_for = \"2s\"\nwarm_interval = \"1s\"\ncold_interval = \"1h\"\n",
    );
    let daemon = Daemon::start(&config);
    let url = daemon.url("/status/news");
    eventually("the article cold", Duration::from_secs(30), || {
        let url = url.clone();
        async move { (get_json(&url).await["articles"][0]["tier"] == "cold").then_some(()) }
    })
    .await;
    let probed = || article_probes(&primary);
    // A probe claimed while the article was still warm may yet complete.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = probed();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(probed(), before, "a cold article was claimed again within seconds");
    let due_in: i64 = schema
        .query_text("SELECT min(due_at) - (extract(epoch FROM clock_timestamp()) * 1000)::bigint FROM work")
        .trim()
        .parse()
        .unwrap();
    assert!(due_in > 50 * 60_000, "due again in {due_in} ms");
}

/// The work queue and canaries: a mirror turned block page, whose cold
/// articles the queue would hand out only tomorrow, has them made due at
/// once and judged again.
#[tokio::test]
async fn a_failed_mirrors_cold_articles_are_made_due_in_the_work_queue() {
    let Some(schema) = Schema::create("canaries") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let paths = [ARTICLE, "/news/new", "/news/old-1"];
    let (primary, mirror) = primary_and_mirror(&paths).await;
    let base = primary.url();
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
    let sitemap = format!(
        "<?xml version=\"1.0\"?><urlset xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\">\
         <url><loc>{base}/news/new</loc><lastmod>{now}</lastmod></url>\
         <url><loc>{base}/news/old-1</loc><lastmod>2020-01-01</lastmod></url></urlset>"
    );
    primary.set_path(
        "/sitemap.xml",
        Behavior::Raw {
            headers: vec![("content-type", "application/xml".to_string())],
            body: sitemap.into(),
        },
    );
    let extra = format!(
        "content_selector = \"article\"\n[sites.discover]\nsitemaps = [\"{base}/sitemap.xml\"]\ninterval = \"1h\"\nmax_age = \"100000d\"\n"
    );
    let site = SiteSpec::new("news", base.clone(), vec![mirror.url()], vec![ARTICLE]).extra(&extra);
    let config = write_postgres_config(
        dir.path(),
        &schema,
        "canaries",
        "interval = \"1s\"\ntimeout = \"1s\"",
        &[site],
    );
    append_to_config(
        &config,
        "\n[schedule]\nhot_min_articles = 1\nhot_for = \"1d\"\nwarm_for = \"2d\"\nwarm_interval = \"1h\"\ncold_interval = \"1d\"\ncanary_articles = 2\n",
    );
    let daemon = Daemon::start(&config);
    let mirror_url = mirror.url();
    eventually(
        "the cold article judged same on the mirror",
        Duration::from_secs(30),
        || {
            let (url, mirror_url) = (daemon.url("/status/news"), mirror_url.clone());
            async move {
                let detail = get_json(&url).await;
                let articles = detail["articles"].as_array()?;
                (articles.len() == 3
                    && article_of(&detail, "/news/old-1")["tier"] == "cold"
                    && bases_of(&detail, "/news/old-1")[&mirror_url]["verdict"] == "same")
                    .then_some(())
            }
        },
    )
    .await;
    let due_in = || -> i64 {
        schema
            .query_text(&format!(
                "SELECT due_at - (extract(epoch FROM clock_timestamp()) * 1000)::bigint FROM work \
                 WHERE article = '/news/old-1' AND base = '{}'",
                mirror.url()
            ))
            .trim()
            .parse()
            .unwrap()
    };
    // Probed, it is due again only a cold interval after its claim.
    eventually("the cold pair due tomorrow", Duration::from_secs(10), || {
        let later = due_in() > 3_600_000;
        async move { later.then_some(()) }
    })
    .await;

    for path in paths {
        mirror.set_path(path, Behavior::Page(Page::Blocked.on(&mirror)));
    }
    eventually(
        "the cold article judged again on the mirror",
        Duration::from_secs(20),
        || {
            let (url, mirror_url) = (daemon.url("/status/news"), mirror_url.clone());
            async move {
                let detail = get_json(&url).await;
                (bases_of(&detail, "/news/old-1")[&mirror_url]["diverged_reason"] == "block_page").then_some(())
            }
        },
    )
    .await;
}
