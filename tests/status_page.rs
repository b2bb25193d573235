//! The status page as a person sees it: real Chromium against the real
//! daemon, a stale and a blocked mirror visibly marked, the evidence link
//! opening the diff. Writes docs/status-page.png (the README shows it).

mod common;

use std::time::Duration;

use common::*;

#[tokio::test]
async fn the_status_page_marks_stale_and_blocked_mirrors_and_links_their_evidence() {
    let primary = TestOrigin::start(Behavior::Status(404)).await;
    primary.set_path(ARTICLE, Behavior::Page(Page::Primary.on(&primary)));
    let stale = TestOrigin::start(Behavior::Status(404)).await;
    stale.set_path(ARTICLE, Behavior::Page(Page::Faithful.on(&stale)));
    let blocked = TestOrigin::start(Behavior::Status(404)).await;
    blocked.set_path(ARTICLE, Behavior::Page(Page::Blocked.on(&blocked)));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mirrorgate.toml");
    let site = SiteSpec::new("news", primary.url(), vec![stale.url(), blocked.url()], vec![ARTICLE])
        .extra("content_selector = \"article\"");
    write_config(
        &config,
        &dir.path().join("store.db"),
        "interval = \"1s\"\ntimeout = \"2s\"\nper_host_rate = 100",
        &[site],
    );
    let daemon = Daemon::start(&config);
    rounds_completed(&daemon, 1).await;
    // The primary updates the article; the mirror keeps the old one.
    primary.set_path(ARTICLE, Behavior::Page(Page::PrimaryV2.on(&primary)));
    eventually("the mirror stale", Duration::from_secs(20), || {
        let url = daemon.url("/status/news");
        let stale = stale.url();
        async move { (bases_of(&get_json(&url).await, ARTICLE)[&stale]["verdict"] == "stale").then_some(()) }
    })
    .await;

    // Without a browser, what a browser asking /status gets is the page too.
    let html = client()
        .get(daemon.url("/status"))
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("<h1>mirrorgate status</h1>"), "{html}");
    let Some(chromium) = chromium() else {
        eprintln!("SKIPPED: no Chromium here; CI installs it");
        return;
    };
    let profile = tempfile::tempdir().unwrap();
    let run = |args: Vec<String>| {
        let profile = profile.path().to_path_buf();
        async move {
            tokio::process::Command::new(chromium)
                .args([
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--no-first-run",
                    "--hide-scrollbars",
                ])
                .arg(format!("--user-data-dir={}", profile.display()))
                .args(args)
                .output()
                .await
                .unwrap()
        }
    };
    let loaded = run(vec![
        "--enable-logging=stderr".into(),
        "--dump-dom".into(),
        daemon.url("/"),
    ])
    .await;
    let dom = String::from_utf8_lossy(&loaded.stdout).to_string();
    // Chromium logs console messages and CSP violations as CONSOLE lines.
    let log = String::from_utf8_lossy(&loaded.stderr);
    assert!(!log.contains(":CONSOLE("), "console messages:\n{log}");
    // Marked in words (not colour alone), in the base table and the matrix.
    assert!(dom.contains("stale on 1 article(s)"), "{dom}");
    assert!(
        dom.contains("block page on 1 article(s)") || dom.contains("diverged (block page)"),
        "{dom}"
    );
    let link = dom
        .split("<a href=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().replace("&amp;", "&"))
        .find(|href| {
            href.starts_with("/status/news/evidence") && href.contains("base=") && {
                let encoded: String = url::form_urlencoded::byte_serialize(stale.url().as_bytes()).collect();
                href.contains(&encoded)
            }
        })
        .unwrap_or_else(|| panic!("an evidence link for the stale mirror in:\n{dom}"));
    let evidence = get_json(&daemon.url(&link)).await;
    assert_eq!(evidence["verdict"], "stale", "{evidence}");
    assert!(
        evidence["diff"].as_str().is_some_and(|d| d.contains("+++")),
        "{evidence}"
    );

    let shot = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/status-page.png");
    let out = run(vec![
        format!("--screenshot={}", shot.display()),
        "--window-size=1200,1400".into(),
        daemon.url("/"),
    ])
    .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{} bytes", png.len());
}
