//! Vantage-point agents and routing by the reader's country, on loopback:
//! the real daemon with MaxMind's test country database, agents speaking
//! the agent protocol (the test itself, to report what a censored network
//! would see; and the real `mirrorgate agent` process), and readers behind
//! a trusted proxy. The censored network itself is `tests/censorship.rs`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const GEOIP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/geoip/GeoLite2-Country-Test.mmdb");
/// In MaxMind's test database: 111.235.160.0/22 is CN, 89.160.20.128/25 SE.
const READER_CN: &str = "111.235.160.7";
const READER_SE: &str = "89.160.20.130";

const TOKENS: [(&str, &str, &str); 3] = [
    ("cn-1", "CN", "cn-one-token-0123456789"),
    ("cn-2", "CN", "cn-two-token-0123456789"),
    ("se-1", "SE", "se-one-token-0123456789"),
];

/// The config for `sites` with GeoIP, a trusted proxy on loopback and the
/// agents of [`TOKENS`].
fn vantage_config(dir: &Path, sites: &[SiteSpec], cycle: &str) -> PathBuf {
    let mut text = config_text(&dir.join("store.db"), "", sites).replace(
        "[server]\nlisten = \"127.0.0.1:0\"\n",
        "[server]\nlisten = \"127.0.0.1:0\"\ntrusted_proxies = [\"127.0.0.1/32\", \"::1\"]\n",
    );
    text.push_str(&format!(
        "\n[geoip]\ncountry_db = \"{GEOIP}\"\n\n[vantage]\ncycle = \"{cycle}\"\n"
    ));
    for (name, country, token) in TOKENS {
        let file = dir.join(format!("{name}.token"));
        std::fs::write(&file, format!("{token}\n")).unwrap();
        text.push_str(&format!(
            "\n[[vantage.agents]]\nname = \"{name}\"\ncountry = \"{country}\"\ntoken_file = \"{}\"\n",
            file.display()
        ));
    }
    let path = dir.join("mirrorgate.toml");
    std::fs::write(&path, text).unwrap();
    path
}

async fn ask_for_work(daemon: &Daemon, token: &str) -> reqwest::Response {
    client()
        .get(daemon.url("/agent/v1/work"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn work(daemon: &Daemon, token: &str) -> Value {
    let response = ask_for_work(daemon, token).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn post(daemon: &Daemon, token: &str, body: &Value) -> (u16, Value) {
    let response = client()
        .post(daemon.url("/agent/v1/results"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// One result as an agent reports it.
fn probed(base: &str, outcome: &str, hash: Option<&str>) -> Value {
    json!({
        "site": "news", "base": base, "article": ARTICLE, "checked_at": now_ms(),
        "outcome": outcome, "http_status": if outcome == "ok" { Some(200) } else { None },
        "latency_ms": 12, "hash": hash,
        "page": {"text_len": 1000, "title_words": 0, "flags": 1, "class": null},
        "addresses": []
    })
}

/// A redirect for a reader at `reader`, arriving through the trusted proxy.
async fn location_for(daemon: &Daemon, reader: Option<&str>) -> String {
    let mut request = client().get(daemon.url(&format!("/r/news{ARTICLE}")));
    if let Some(reader) = reader {
        // The left-most entry is the reader's own claim, never believed.
        request = request.header("X-Forwarded-For", format!("{READER_SE}, {reader}"));
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 302, "reader {reader:?}");
    response.headers()["location"].to_str().unwrap().to_string()
}

/// Both CN agents report, over two cycles of `cycle`, the primary reset at
/// TCP and the mirror serving the daemon's reference; returns /status once
/// CN counts the primary as blocked.
async fn cn_blocks_the_primary(daemon: &Daemon, primary: &str, mirror: &str, cycle: Duration) -> Value {
    let detail = get_json(&daemon.url("/status/news")).await;
    let reference = article_of(&detail, ARTICLE)["reference"].as_str().unwrap().to_string();
    let reference = reference.as_str();
    for round in 0..2 {
        for (_, _, token) in &TOKENS[..2] {
            let work = work(daemon, token).await;
            let report = json!({
                "work_id": work["work_id"], "control_ok": true,
                "results": [probed(primary, "connect", None), probed(mirror, "ok", Some(reference))]
            });
            let (status, answer) = post(daemon, token, &report).await;
            assert_eq!(status, 200, "{answer}");
        }
        if round == 0 {
            tokio::time::sleep(cycle + Duration::from_millis(100)).await;
        }
    }
    eventually("CN decided", Duration::from_secs(10), || {
        let url = daemon.url("/status");
        let primary = primary.to_string();
        async move {
            let status = get_json(&url).await;
            (country_of(&status, &primary, "CN")["state"] == "blocked").then_some(status)
        }
    })
    .await
}

fn country_of(status: &Value, base: &str, country: &str) -> Value {
    base_summary(&status["sites"][0], base)["countries"][country].clone()
}

#[tokio::test]
async fn agents_reports_block_bases_per_country_and_readers_there_go_around_them() {
    let primary = serving_article(Page::Primary).await;
    // Exact copies under their own hosts: the same article without a selector.
    let reset = serving_article(Page::Primary).await;
    let poisoned = serving_article(Page::Primary).await;
    let clean = serving_article(Page::Relative).await;
    let dir = tempfile::tempdir().unwrap();
    let bases = [primary.url(), reset.url(), poisoned.url(), clean.url()];
    let site = SiteSpec::new("news", primary.url(), bases[1..].to_vec(), vec![ARTICLE]);
    let config = vantage_config(dir.path(), &[site], "1s");
    let daemon = Daemon::start(&config);
    rounds_completed(&daemon, 1).await;
    let detail = get_json(&daemon.url("/status/news")).await;
    for (url, base) in bases_of(&detail, ARTICLE) {
        assert_eq!(base["verdict"], "same", "{url}: {detail}");
    }
    let reference = article_of(&detail, ARTICLE)["reference"].as_str().unwrap().to_string();

    // Agents must identify themselves, as themselves.
    let anonymous = client().get(daemon.url("/agent/v1/work")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let wrong = client()
        .get(daemon.url("/agent/v1/work"))
        .bearer_auth("not-a-token-of-anyone-at-all")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let impostor = client()
        .get(daemon.url("/agent/v1/work"))
        .bearer_auth(TOKENS[0].2)
        .header("X-Mirrorgate-Agent", "se-1")
        .send()
        .await
        .unwrap();
    assert_eq!(impostor.status(), 403);
    assert!(!daemon.log().contains(TOKENS[0].2), "a token reached the log");

    // Before any agent reports, readers everywhere get the daemon's order.
    assert_eq!(
        location_for(&daemon, Some(READER_CN)).await,
        format!("{}{ARTICLE}", bases[0])
    );

    // What a censored network's agents would see: the primary reset at TCP,
    // one mirror's name answering elsewhere, one mirror clean. Two cycles,
    // since a state holds for two before it counts.
    let report = |work_id: u64| {
        json!({
            "work_id": work_id, "control_ok": true,
            "results": [
                probed(&bases[0], "connect", None),
                probed(&bases[1], "connect", None),
                probed(&bases[2], "dns", None),
                probed(&bases[3], "ok", Some(&reference)),
            ]
        })
    };
    let mut accepted = 0;
    for _ in 0..3 {
        for (_, _, token) in &TOKENS[..2] {
            let work = work(&daemon, token).await;
            assert_eq!(work["country"], "CN");
            assert_eq!(work["sites"][0]["articles"][0], ARTICLE);
            let (status, answer) = post(&daemon, token, &report(work["work_id"].as_u64().unwrap())).await;
            assert_eq!(status, 200, "{answer}");
            assert_eq!(answer["accepted"], 4, "{answer}");
            accepted += 4;
        }
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    let status = eventually("CN states", Duration::from_secs(10), || {
        let (url, clean) = (daemon.url("/status"), bases[3].clone());
        async move {
            let status = get_json(&url).await;
            (country_of(&status, &clean, "CN")["state"] == "reachable").then_some(status)
        }
    })
    .await;
    assert_eq!(country_of(&status, &bases[0], "CN")["state"], "blocked", "{status}");
    assert_eq!(country_of(&status, &bases[0], "CN")["kind"], "tcp_ip");
    assert_eq!(country_of(&status, &bases[2], "CN")["kind"], "dns");
    assert_eq!(country_of(&status, &bases[3], "CN")["agents"], 2);
    // Sweden's agent never reported: nothing is known there.
    assert_eq!(country_of(&status, &bases[0], "SE")["state"], "unknown");
    let agents = status["agents"].as_array().unwrap();
    let cn1 = agents.iter().find(|a| a["name"] == "cn-1").unwrap();
    assert_eq!(cn1["online"], true);
    assert_eq!(cn1["country"], "CN");
    assert_eq!(cn1["results_accepted"].as_u64().unwrap() * 2, accepted);
    assert_eq!(agents.iter().find(|a| a["name"] == "se-1").unwrap()["online"], false);

    // Readers in China go to the clean mirror, everyone else to the primary;
    // a reader's own X-Forwarded-For claim (left of the proxy's) changes nothing.
    assert_eq!(
        location_for(&daemon, Some(READER_CN)).await,
        format!("{}{ARTICLE}", bases[3])
    );
    assert_eq!(
        location_for(&daemon, Some(READER_SE)).await,
        format!("{}{ARTICLE}", bases[0])
    );
    assert_eq!(location_for(&daemon, None).await, format!("{}{ARTICLE}", bases[0]));
    let go = client()
        .get(daemon.url(&format!("/go?url={}{ARTICLE}", bases[0])))
        .header("Forwarded", format!("for={READER_CN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(go.headers()["location"], format!("{}{ARTICLE}", bases[3]).as_str());

    // The public mirror list for China leaves out what is blocked there.
    let cn = get_json(&daemon.url("/mirrors.json?country=CN")).await;
    let listed: Vec<&str> = cn["sites"][0]["available_alternatives"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["url"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [bases[3].as_str()], "{cn}");
    let everywhere = get_json(&daemon.url("/mirrors.json")).await;
    assert_eq!(
        everywhere["sites"][0]["available_alternatives"]
            .as_array()
            .unwrap()
            .len(),
        3,
        "{everywhere}"
    );

    let metrics = get_text(&daemon.url("/metrics")).await;
    let series = format!(
        "mirrorgate_base_country_state{{site=\"news\",base=\"{}\",country=\"CN\",state=\"blocked\"}}",
        bases[2]
    );
    assert_eq!(metric(&metrics, &series), Some(1.0), "{metrics}");
    assert_eq!(
        metric(&metrics, "mirrorgate_agent_online{agent=\"cn-1\",country=\"CN\"}"),
        Some(1.0)
    );
}

#[tokio::test]
async fn agents_and_country_states_come_back_after_a_restart() {
    let primary = serving_article(Page::Primary).await;
    let mirror = serving_article(Page::Primary).await;
    let dir = tempfile::tempdir().unwrap();
    let site = SiteSpec::new("news", primary.url(), vec![mirror.url()], vec![ARTICLE]);
    // Results stay fresh for three cycles: long past the restart below.
    let config = vantage_config(dir.path(), &[site], "3s");
    let mut daemon = Daemon::start(&config);
    rounds_completed(&daemon, 1).await;
    let before = cn_blocks_the_primary(&daemon, &primary.url(), &mirror.url(), Duration::from_secs(3)).await;
    assert_eq!(
        location_for(&daemon, Some(READER_CN)).await,
        format!("{}{ARTICLE}", mirror.url())
    );
    daemon.signal("TERM");
    assert_eq!(daemon.exited(Duration::from_secs(30)).await, Some(0));

    let daemon = Daemon::start(&config);
    let after = eventually("the view published", Duration::from_secs(10), || {
        let url = daemon.url("/status");
        async move {
            let status = get_json(&url).await;
            status["agents"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
                .then_some(status)
        }
    })
    .await;
    assert_eq!(
        country_of(&after, &primary.url(), "CN"),
        country_of(&before, &primary.url(), "CN"),
        "{after}"
    );
    assert_eq!(country_of(&after, &mirror.url(), "CN")["state"], "reachable", "{after}");
    for name in ["cn-1", "cn-2", "se-1"] {
        let agent = |status: &Value| {
            status["agents"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["name"] == name)
                .cloned()
        };
        let (was, is) = (agent(&before).unwrap(), agent(&after).unwrap());
        assert_eq!(is["results_accepted"], was["results_accepted"], "{name}: {is}");
        assert_eq!(is["results_rejected"], was["results_rejected"], "{name}: {is}");
        assert_eq!(is["last_seen"], was["last_seen"], "{name}: {is}");
    }
    // Readers in China still go around the primary, with no agent back yet.
    assert_eq!(
        location_for(&daemon, Some(READER_CN)).await,
        format!("{}{ARTICLE}", mirror.url())
    );
}

#[tokio::test]
async fn a_reload_changes_the_agents_and_keeps_what_the_others_reported() {
    let primary = serving_article(Page::Primary).await;
    let mirror = serving_article(Page::Primary).await;
    let dir = tempfile::tempdir().unwrap();
    let site = SiteSpec::new("news", primary.url(), vec![mirror.url()], vec![ARTICLE]);
    let config = vantage_config(dir.path(), &[site], "3s");
    let daemon = Daemon::start(&config);
    rounds_completed(&daemon, 1).await;
    let before = cn_blocks_the_primary(&daemon, &primary.url(), &mirror.url(), Duration::from_secs(3)).await;

    // se-1 leaves, se-2 joins: one reload, no restart.
    let text = std::fs::read_to_string(&config).unwrap();
    let se2_token = dir.path().join("se-2.token");
    std::fs::write(&se2_token, "se-two-token-0123456789\n").unwrap();
    let se1 = format!(
        "\n[[vantage.agents]]\nname = \"se-1\"\ncountry = \"SE\"\ntoken_file = \"{}\"\n",
        dir.path().join("se-1.token").display()
    );
    assert!(text.contains(&se1), "{text}");
    let se2 = format!(
        "\n[[vantage.agents]]\nname = \"se-2\"\ncountry = \"SE\"\ntoken_file = \"{}\"\n",
        se2_token.display()
    );
    std::fs::write(&config, text.replace(&se1, &se2)).unwrap();
    daemon.signal("HUP");
    eventually("the reload", Duration::from_secs(10), || async {
        (!daemon.log_entries(&[("message", "config reloaded")]).is_empty()).then_some(())
    })
    .await;
    let applied = daemon.log_entries(&[("key", "vantage.agents"), ("message", "config key changed; applied")]);
    assert_eq!(applied.len(), 1, "{}", daemon.log());
    assert_eq!(work(&daemon, "se-two-token-0123456789").await["country"], "SE");
    let gone = ask_for_work(&daemon, TOKENS[2].2).await;
    assert_eq!(gone.status(), 401, "a removed agent's token no longer works");
    // The view is published every half cycle.
    let after = eventually("the new agents in /status", Duration::from_secs(10), || {
        let url = daemon.url("/status");
        async move {
            let status = get_json(&url).await;
            let names: Vec<String> = status["agents"]
                .as_array()?
                .iter()
                .filter_map(|a| Some(a["name"].as_str()?.to_string()))
                .collect();
            (names == ["cn-1", "cn-2", "se-2"]).then_some(status)
        }
    })
    .await;
    assert_eq!(
        country_of(&after, &primary.url(), "CN"),
        country_of(&before, &primary.url(), "CN"),
        "{after}"
    );
    let cn1 = |status: &serde_json::Value| status["agents"][0]["results_accepted"].clone();
    assert_eq!(cn1(&after), cn1(&before));
    assert_eq!(
        location_for(&daemon, Some(READER_CN)).await,
        format!("{}{ARTICLE}", mirror.url())
    );
}

/// What `/agent/v1/work` answers `token` with, by status code only.
async fn work_status(daemon: &Daemon, token: &str) -> u16 {
    ask_for_work(daemon, token).await.status().as_u16()
}

async fn reloaded(daemon: &Daemon, times: usize) {
    eventually("the reload", Duration::from_secs(10), || async {
        (daemon.log_entries(&[("message", "config reloaded")]).len() >= times).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_reload_adds_the_first_agents_and_removes_the_last() {
    let primary = serving_article(Page::Primary).await;
    let mirror = serving_article(Page::Primary).await;
    let dir = tempfile::tempdir().unwrap();
    let site = SiteSpec::new("news", primary.url(), vec![mirror.url()], vec![ARTICLE]);
    let config = vantage_config(dir.path(), &[site], "3s");
    let with_agents = std::fs::read_to_string(&config).unwrap();
    let (without_agents, _) = with_agents.split_once("\n[[vantage.agents]]").unwrap();
    std::fs::write(&config, without_agents).unwrap();
    let daemon = Daemon::start(&config);
    rounds_completed(&daemon, 1).await;
    let token = TOKENS[0].2;
    assert_eq!(work_status(&daemon, token).await, 404, "no agents configured yet");

    std::fs::write(&config, &with_agents).unwrap();
    daemon.signal("HUP");
    reloaded(&daemon, 1).await;
    let applied = daemon.log_entries(&[("key", "vantage.agents"), ("message", "config key changed; applied")]);
    assert_eq!(applied.len(), 1, "{}", daemon.log());
    assert_eq!(work(&daemon, token).await["agent"], TOKENS[0].0);
    cn_blocks_the_primary(&daemon, &primary.url(), &mirror.url(), Duration::from_secs(3)).await;
    assert_eq!(
        location_for(&daemon, Some(READER_CN)).await,
        format!("{}{ARTICLE}", mirror.url()),
        "the new agents' view routes readers"
    );

    std::fs::write(&config, without_agents).unwrap();
    daemon.signal("HUP");
    reloaded(&daemon, 2).await;
    assert_eq!(work_status(&daemon, token).await, 404, "the agents were removed");
    eventually("no agents in /status", Duration::from_secs(10), || {
        let url = daemon.url("/status");
        async move {
            let status = get_json(&url).await;
            status["agents"].as_array().is_some_and(|a| a.is_empty()).then_some(())
        }
    })
    .await;
    assert_eq!(
        location_for(&daemon, Some(READER_CN)).await,
        format!("{}{ARTICLE}", primary.url()),
        "with no agents, every reader goes to the live primary"
    );
}

#[tokio::test]
async fn results_are_checked_against_the_work_given() {
    let primary = serving(Page::Primary).await;
    let mirror = serving(Page::Faithful).await;
    let dir = tempfile::tempdir().unwrap();
    let site = SiteSpec::new("news", primary.url(), vec![mirror.url()], vec![ARTICLE, "/other"]);
    let config = vantage_config(dir.path(), &[site], "1m");
    let daemon = Daemon::start(&config);
    rounds_completed(&daemon, 1).await;
    let token = TOKENS[2].2;
    let work = work(&daemon, token).await;
    let id = work["work_id"].as_u64().unwrap();
    assert_eq!(work["agent"], "se-1");
    assert!(work["cycle_secs"].as_u64().unwrap() == 60);

    // Work never given, or another agent's.
    let (status, _) = post(
        &daemon,
        token,
        &json!({"work_id": id + 1000, "control_ok": true, "results": []}),
    )
    .await;
    assert_eq!(status, 409);
    let (status, _) = post(
        &daemon,
        TOKENS[0].2,
        &json!({"work_id": id, "control_ok": true, "results": []}),
    )
    .await;
    assert_eq!(status, 409);
    let (status, _) = post(&daemon, token, &json!({"work_id": "x"})).await;
    assert_eq!(status, 400);

    // Unknown site, base or article, impossible times: refused one by one.
    let mut foreign = probed(&primary.url(), "ok", Some("sha256:00"));
    foreign["hash"] = json!("sha256:zz");
    let mut old = probed(&primary.url(), "connect", None);
    old["checked_at"] = json!(1_000);
    let mut not_base = probed("https://elsewhere.example", "connect", None);
    not_base["site"] = json!("news");
    let mut not_site = probed(&primary.url(), "connect", None);
    not_site["site"] = json!("other");
    let mut not_article = probed(&primary.url(), "connect", None);
    not_article["article"] = json!("/never-configured");
    let body = json!({"work_id": id, "control_ok": true,
        "results": [probed(&mirror.url(), "connect", None), foreign, old, not_base, not_site, not_article]});
    let (status, answer) = post(&daemon, token, &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accepted"], 1, "{answer}");
    assert_eq!(answer["rejected"], 5, "{answer}");
    let errors = answer["errors"].to_string();
    for expected in ["sha256", "checked_at", "not a base", "unknown site", "not in the work"] {
        assert!(errors.contains(expected), "{expected} in {errors}");
    }
    let status = get_json(&daemon.url("/status")).await;
    let se1 = status["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "se-1")
        .unwrap()
        .clone();
    assert_eq!(se1["results_rejected"], 5);

    // A flood is cut short.
    let mut limited = false;
    for _ in 0..40 {
        let response = client()
            .get(daemon.url("/agent/v1/work"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        if response.status() == 429 {
            limited = true;
            break;
        }
    }
    assert!(limited, "40 requests at once were all answered");
}

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_agent_process_probes_and_reports() {
    let primary = serving(Page::Primary).await;
    let mirror = serving(Page::Faithful).await;
    let dir = tempfile::tempdir().unwrap();
    let site = SiteSpec::new("news", primary.url(), vec![mirror.url()], vec![ARTICLE]);
    let config = vantage_config(dir.path(), &[site], "1s");
    let daemon = Daemon::start(&config);
    rounds_completed(&daemon, 1).await;
    let _agent = Agent(
        Command::new(binary())
            .args([
                "--log-format",
                "json",
                "agent",
                "--server",
                &daemon.url("/"),
                "--name",
                "se-1",
            ])
            .arg("--token-file")
            .arg(dir.path().join("se-1.token"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // From loopback the agent sees what the daemon sees: reachable.
    let status = eventually("the agent's reports", Duration::from_secs(20), || {
        let url = daemon.url("/status");
        async move {
            let status = get_json(&url).await;
            let reachable = status["sites"][0]["bases"]
                .as_array()?
                .iter()
                .all(|b| b["countries"]["SE"]["state"] == "reachable");
            reachable.then_some(status)
        }
    })
    .await;
    let se1 = status["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "se-1")
        .unwrap()
        .clone();
    assert_eq!(se1["online"], true, "{se1}");
    assert_eq!(se1["results_rejected"], 0, "{se1}");
    // Two cycles' batches, a probe per base each: a state holds two cycles before it counts.
    assert!(se1["results_accepted"].as_u64().unwrap() >= 4, "{se1}");
    assert_eq!(
        location_for(&daemon, Some(READER_SE)).await,
        format!("{}{ARTICLE}", primary.url())
    );

    // A token that is not in the file is a usage error, before anything runs.
    let bad = dir.path().join("short.token");
    std::fs::write(&bad, "short\n").unwrap();
    let output = Command::new(binary())
        .args(["agent", "--server", &daemon.url("/")])
        .arg("--token-file")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("short.token"));
}

#[tokio::test]
async fn the_probe_page_tries_the_candidates_and_readers_reports_demote_for_a_while() {
    use base64::Engine;
    use sha2::Digest;
    // Each serves the article at its path only (a page on every path reads
    // as a soft 404).
    let article_on = |page: Page| async move {
        let origin = TestOrigin::start(Behavior::Status(404)).await;
        origin.set_path(ARTICLE, Behavior::Page(page.on(&origin)));
        origin
    };
    let primary = article_on(Page::Primary).await;
    let mirror = article_on(Page::Faithful).await;
    let other = article_on(Page::Relative).await;
    let dir = tempfile::tempdir().unwrap();
    let site = SiteSpec::new("news", primary.url(), vec![mirror.url(), other.url()], vec![ARTICLE])
        .extra("probe_asset = \"/pixel.png\"\ncontent_selector = \"article\"");
    let config = vantage_config(dir.path(), &[site], "1m");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("trusted_proxies =", "reader_probe = true\ntrusted_proxies =");
    std::fs::write(&config, text).unwrap();
    let daemon = Daemon::start(&config);
    rounds_completed(&daemon, 1).await;

    let detail = get_json(&daemon.url("/status/news")).await;
    let response = get(daemon.url(&format!("/p/news{ARTICLE}"))).await;
    assert_eq!(response.status(), 200, "{detail}");
    let headers = response.headers().clone();
    let page = response.text().await.unwrap();
    assert!(page.len() < 4096, "{} bytes", page.len());
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/html"));
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    // The one script allowed is the one inline script, by its hash.
    let script = page
        .split("<script>")
        .nth(1)
        .unwrap()
        .split("</script>")
        .next()
        .unwrap();
    let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(script.as_bytes()));
    assert!(csp.contains(&format!("script-src 'sha256-{hash}'")), "{csp}");
    for base in [primary.url(), mirror.url(), other.url()] {
        assert!(
            page.contains(&format!("{base}/pixel.png")),
            "{base} in {page}\n{detail}"
        );
        assert!(csp.contains(&base), "{csp}");
    }
    assert!(
        page.contains(&format!("url={}{ARTICLE}", primary.url())),
        "no-script fallback"
    );
    assert!(!page.contains("<link") && !page.contains("<img") && !page.contains("src=\""));
    assert!(headers["cache-control"].to_str().unwrap().contains("private"));

    // With reader_probe on, browsers asking /r/ get the page; other clients the 302.
    let browser = client()
        .get(daemon.url(&format!("/r/news{ARTICLE}")))
        .header("Accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(browser.status(), 200);
    assert_eq!(location_for(&daemon, None).await, format!("{}{ARTICLE}", primary.url()));

    // Reports from three Chinese networks that the primary failed move it
    // last for Chinese readers only; a fourth from one network is refused.
    let report = |reader: &'static str| {
        client()
            .post(daemon.url("/p/report"))
            .header("X-Forwarded-For", reader)
            .body(format!("{{\"site\":\"news\",\"failed\":[\"{}\"]}}", primary.url()))
            .send()
    };
    for reader in ["111.235.160.7", "111.235.161.7"] {
        assert_eq!(report(reader).await.unwrap().status(), 204);
    }
    assert_eq!(
        location_for(&daemon, Some(READER_CN)).await,
        format!("{}{ARTICLE}", primary.url())
    );
    assert_eq!(report("111.235.162.7").await.unwrap().status(), 204);
    assert_eq!(
        location_for(&daemon, Some(READER_CN)).await,
        format!("{}{ARTICLE}", mirror.url())
    );
    assert_eq!(
        location_for(&daemon, Some(READER_SE)).await,
        format!("{}{ARTICLE}", primary.url())
    );
    let mut limited = false;
    for _ in 0..3 {
        limited |= report("111.235.160.9").await.unwrap().status() == 429;
    }
    assert!(limited, "one network reported without limit");
    let status = get_json(&daemon.url("/status")).await;
    let reports = status["reader_reports"].as_array().unwrap();
    assert_eq!(reports.len(), 1, "{status}");
    assert_eq!(reports[0]["country"], "CN");
    assert_eq!(reports[0]["base"], primary.url().as_str());
    assert!(reports[0]["demoted_until"].is_string());
    // A report from nowhere in the database counts for nothing.
    assert_eq!(report("127.0.0.9").await.unwrap().status(), 204);
}

/// A 1×1 PNG, the probe asset a working base serves.
const PIXEL_PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=";

#[tokio::test]
async fn a_browser_running_the_probe_page_lands_on_the_first_base_that_loads() {
    use base64::Engine;
    let Some(chromium) = chromium() else {
        eprintln!("SKIPPED: no Chromium here; CI installs it");
        return;
    };
    let pixel = base64::engine::general_purpose::STANDARD.decode(PIXEL_PNG).unwrap();
    // The primary's probe asset is missing (as from a network that blocks
    // it); the mirror's loads.
    let primary = TestOrigin::start(Behavior::Status(404)).await;
    primary.set_path(ARTICLE, Behavior::Page(Page::Primary.on(&primary)));
    let mirror = TestOrigin::start(Behavior::Status(404)).await;
    mirror.set_path(ARTICLE, Behavior::Page(Page::Faithful.on(&mirror)));
    mirror.set_path(
        "/pixel.png",
        Behavior::Raw {
            headers: vec![("content-type", "image/png".to_string())],
            body: pixel,
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let site = SiteSpec::new("news", primary.url(), vec![mirror.url()], vec![ARTICLE])
        .extra("probe_asset = \"/pixel.png\"\ncontent_selector = \"article\"");
    let config = vantage_config(dir.path(), &[site], "1m");
    let daemon = Daemon::start(&config);
    rounds_completed(&daemon, 1).await;
    let profile = tempfile::tempdir().unwrap();
    let output = tokio::process::Command::new(chromium)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--virtual-time-budget=15000", "--dump-dom"])
        .arg(daemon.url(&format!("/p/news{ARTICLE}")))
        .output()
        .await
        .unwrap();
    let dom = String::from_utf8_lossy(&output.stdout);
    let requests = |origin: &TestOrigin| -> Vec<String> {
        origin
            .requests
            .lock()
            .unwrap()
            .iter()
            .map(|(_, path)| path.clone())
            .collect()
    };
    assert!(
        requests(&primary).iter().any(|p| p.starts_with("/pixel.png?mg=")),
        "the primary's asset was tried: {:?}",
        requests(&primary)
    );
    assert!(
        dom.contains("You are reading a mirror"),
        "the browser ended on the mirror's article:\n{dom}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(requests(&mirror).iter().any(|p| p == ARTICLE));
}
