//! The command line as editors, CI and newcomers use it: exit codes,
//! located config errors, `check` reports and the demo.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

fn mirrorgate(args: &[&str]) -> Output {
    Command::new(binary()).args(args).output().expect("run mirrorgate")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn validate_accepts_the_shipped_example() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/mirrorgate.toml");
    let out = mirrorgate(&["validate", "--config", example]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(": ok ("));
}

#[test]
fn validate_warns_when_a_round_cannot_fit_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("slow.toml");
    let articles: Vec<String> = (0..700).map(|i| format!("\"/a/{i}\"")).collect();
    std::fs::write(
        &path,
        format!(
            "[probe]\ninterval = \"1m\"\nper_host_rate = 10\n\n[[sites]]\nname = \"a\"\nprimary = \"https://www.example.com\"\narticles = [{}]\n",
            articles.join(", ")
        ),
    )
    .unwrap();
    let out = mirrorgate(&["validate", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "a warning is not an error");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("www.example.com: 700 articles at probe.per_host_rate = 10/s take at least 1m 10s per round, longer than probe.interval (1m)"),
        "{stderr}"
    );
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/mirrorgate.toml");
    assert_eq!(text(&mirrorgate(&["validate", "--config", example]).stderr), "");
}

#[test]
fn validate_prints_every_problem_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        r#"[probe]
intervall = "5m"
timeout = "soon"

[[sites]]
name = "a"
primary = "https://www.example.com"
mirrors = ["www.example.co.uk", "https://www.example.com"]
articles = ["/x"]

[[sites]]
name = "a"
primary = "https://b.example.org"
articles = []
"#,
    )
    .unwrap();
    let out = mirrorgate(&["validate", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    let file = path.display().to_string();
    let lines: Vec<&str> = stderr.lines().collect();
    let expected = [
        format!("{file}:2:1: unknown key \"intervall\" in [probe] (did you mean \"interval\"?)"),
        format!("{file}:3:11: `probe.timeout` \"soon\" is not a duration"),
        format!("{file}:8:12: `sites[0].mirrors[0]`: mirror \"www.example.co.uk\" has no scheme"),
        format!("{file}:8:33: `sites[0].mirrors[1]`: base \"https://www.example.com\" is listed twice"),
        format!("{file}:12:8: duplicate site name \"a\""),
        format!("{file}:14:12: `sites[1].articles` is empty"),
    ];
    assert_eq!(lines.len(), expected.len(), "{stderr}");
    for (line, want) in lines.iter().zip(&expected) {
        assert!(line.starts_with(want.as_str()), "got {line:?}, want {want:?}");
    }
}

#[test]
fn a_postgres_store_is_checked_where_it_is_written_and_its_password_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.toml");
    let file = path.display().to_string();
    let site = "\n[[sites]]\nname = \"a\"\nprimary = \"https://www.example.com\"\narticles = [\"/x\"]\n";
    let validate = |store: &str| {
        std::fs::write(&path, format!("[store]\n{store}\n{site}")).unwrap();
        let out = mirrorgate(&["validate", "--config", &file]);
        (out.status.code(), text(&out.stdout) + &text(&out.stderr))
    };

    let (code, said) = validate("path = \"m.db\"\nurl = \"postgres://mg@127.0.0.1:5432/mg\"");
    assert_eq!(code, Some(2), "{said}");
    assert!(
        said.contains(&format!(
            "{file}:3:7: `store.url` (3:7) and `store.path` (2:8) are both set"
        )),
        "both keys, each with line:column: {said}"
    );
    let (code, said) = validate("url = \"mysql://mg@127.0.0.1/mg\"");
    assert_eq!(code, Some(2), "{said}");
    assert!(said.contains("must be a postgres:// or postgresql:// URL"), "{said}");
    let (code, said) = validate("url = \"postgres://mg@127.0.0.1/mg?sslmode=sometimes\"");
    assert_eq!(code, Some(2), "{said}");
    assert!(said.contains("sslmode=sometimes"), "{said}");
    let (code, said) = validate("url = \"postgres://mg@127.0.0.1/mg?sslrootcert=ca.pem\"");
    assert_eq!(code, Some(2), "{said}");
    assert!(said.contains("unknown parameter `sslrootcert`"), "{said}");
    let (code, said) = validate("url = \"postgresql://mg@127.0.0.1/mg\"\npassword_file = \"absent\"");
    assert_eq!(code, Some(2), "{said}");
    assert!(
        said.contains("`store.password_file`") && said.contains("absent"),
        "{said}"
    );

    for url in [
        "postgres://mg@db.internal:5432/mirrorgate?sslmode=verify-full",
        "postgresql://mg@127.0.0.1/mirrorgate?sslmode=require",
        "postgres://mg@127.0.0.1/mirrorgate?sslmode=disable&application_name=edge",
    ] {
        let (code, said) = validate(&format!("url = \"{url}\""));
        assert_eq!(code, Some(0), "{url}: {said}");
    }
    let (code, said) = validate("url = \"postgres://mg:hunter2-in-url@127.0.0.1/mg\"\ninstance = \"edge-1\"");
    assert_eq!(code, Some(0), "a password in the URL is accepted: {said}");
    assert!(said.contains("store.url holds a password"), "and warned about: {said}");
    assert!(!said.contains("hunter2"), "never shown: {said}");
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(mirrorgate(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(
        mirrorgate(&["check", "--format", "yaml", "--config", "x"])
            .status
            .code(),
        Some(2)
    );
    let out = mirrorgate(&["run", "--config", "/nonexistent/mirrorgate.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).starts_with("/nonexistent/mirrorgate.toml:1:1: cannot read config"));
    let out = Command::new(binary())
        .args(["validate"])
        .env("MIRRORGATE_CONFIG", "/nonexistent/from-env.toml")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("/nonexistent/from-env.toml"),
        "the env var names the config"
    );
}

async fn check(config: &std::path::Path, format: &str) -> Output {
    let config = config.to_path_buf();
    let format = format.to_string();
    tokio::task::spawn_blocking(move || {
        Command::new(binary())
            .args(["check", "--format", &format, "--config"])
            .arg(&config)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn check_reports_verdicts_and_exits_by_whether_every_article_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let primary = TestOrigin::start(Behavior::Status(404)).await;
    primary.set_path(ARTICLE, Behavior::Page(Page::Primary.on(&primary)));
    let mirror = TestOrigin::start(Behavior::Status(404)).await;
    mirror.set_path(ARTICLE, Behavior::Page(Page::Relative.on(&mirror)));
    let blocked = serving(Page::Blocked).await;
    let write = |articles: Vec<&str>| {
        let path = dir.path().join("check.toml");
        write_config(
            &path,
            &dir.path().join("never-created.db"),
            "",
            &[SiteSpec {
                name: "news",
                primary: primary.url(),
                mirrors: vec![mirror.url(), blocked.url()],
                articles,
                extra: "content_selector = \"article\"",
            }],
        );
        path
    };

    let served = write(vec![ARTICLE]);
    let out = check(&served, "text").await;
    assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stdout), text(&out.stderr));
    let report = text(&out.stdout);
    assert!(
        report.contains(&format!("{ARTICLE}  ->  {}{ARTICLE}", primary.url())),
        "{report}"
    );
    assert!(report.contains("1 of 1 articles have a live base"), "{report}");
    // The bases first, then the articles that are not fine; no log lines.
    let summary = report.find(&format!("  {}", mirror.url())).unwrap_or(usize::MAX);
    let blocked_row = report.lines().find(|l| l.ends_with(&blocked.url())).unwrap_or("");
    assert!(blocked_row.contains("mirror"), "{report}");
    assert!(summary < report.find(&format!("{ARTICLE}  ->")).unwrap(), "{report}");
    assert_eq!(text(&out.stderr), "", "check logs nothing when the run itself is fine");
    assert!(!dir.path().join("never-created.db").exists(), "check writes nothing");

    let out = check(&served, "json").await;
    assert_eq!(out.status.code(), Some(0));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["ok"], true);
    let bases = bases_of(&json["sites"][0], ARTICLE);
    assert_eq!(bases[&primary.url()]["verdict"], "same");
    assert_eq!(bases[&mirror.url()]["verdict"], "same");
    assert_eq!(bases[&blocked.url()]["verdict"], "diverged");

    // An article only the block page "serves": nothing faithful is reachable.
    let unserved = write(vec![ARTICLE, "/gone"]);
    let out = check(&unserved, "json").await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["ok"], false);
    let gone = bases_of(&json["sites"][0], "/gone");
    assert_eq!(
        gone[&primary.url()]["verdict"],
        "missing",
        "a 404 says the article is not there"
    );
    assert_eq!(gone[&primary.url()]["http_status"], 404);
    assert_eq!(
        gone[&blocked.url()]["verdict"],
        "diverged",
        "a recognised block page needs no reference to be wrong"
    );
    assert_eq!(gone[&blocked.url()]["diverged_reason"], "block_page");
}

#[test]
fn demo_runs_the_daemon_against_its_loopback_origins() {
    let mut child = Command::new(binary())
        .args(["demo", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut status_url = None;
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        if let Some(url) = line
            .trim()
            .strip_prefix("curl -s ")
            .filter(|u| u.ends_with("/status/demo-news"))
        {
            status_url = Some(url.to_string());
            break;
        }
    }
    // The pipe is closed here, mid-banner: the demo must carry on regardless.
    let status_url = status_url.expect("the demo prints its status URL");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let verdicts = runtime.block_on(eventually("the demo's first round", Duration::from_secs(20), || {
        let url = status_url.clone();
        async move {
            let detail = get_json(&url).await;
            let bases = detail["articles"][0]["bases"].as_array()?.clone();
            let verdicts: Vec<String> = bases
                .iter()
                .map(|b| b["verdict"].as_str().map(str::to_string))
                .collect::<Option<_>>()?;
            Some(verdicts)
        }
    }));
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(verdicts[0], "same", "primary");
    assert_eq!(verdicts[1], "same", "faithful mirror");
    assert!(
        verdicts[2] == "same" || verdicts[2] == "stale",
        "stale mirror before/after the update"
    );
    assert_eq!(verdicts[3], "diverged", "block page");
    assert_eq!(verdicts[4], "unreachable", "down mirror");
}
