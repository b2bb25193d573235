//! Discovery against a loopback origin that serves robots.txt, a gzipped
//! sitemap index, a Google News sitemap and RSS, Atom and JSON feeds — and
//! hostile ones, each of which must fail alone.

mod common;

use std::io::Write;
use std::time::{Duration, SystemTime};

use common::*;
use serde_json::Value;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn raw(content_type: &str, body: Vec<u8>) -> Behavior {
    Behavior::Raw {
        headers: vec![("content-type", content_type.to_string())],
        body,
    }
}

/// A W3C datetime `hours` ago.
fn hours_ago(hours: u64) -> String {
    humantime::format_rfc3339_seconds(SystemTime::now() - Duration::from_secs(hours * 3600)).to_string()
}

/// An origin that serves a page at each of `paths` (a 404 elsewhere).
async fn site_with(paths: &[&str]) -> TestOrigin {
    let origin = TestOrigin::start(Behavior::Status(404)).await;
    for path in paths {
        origin.set_path(path, Behavior::Page(Page::Primary.on(&origin)));
    }
    origin
}

fn articles_of(detail: &Value) -> Vec<Value> {
    detail["articles"].as_array().unwrap().clone()
}

#[tokio::test]
async fn sitemaps_and_feeds_add_articles_newest_first_and_old_ones_age_out() {
    let discovered = ["/news/1", "/news/2", "/news/rss-1", "/news/atom-1", "/news/json-1"];
    let origin = site_with(&[&[ARTICLE][..], &discovered[..]].concat()).await;
    let base = origin.url();
    origin.set_path(
        "/robots.txt",
        raw(
            "text/plain",
            format!("User-agent: *\nDisallow: /private\nSitemap: {base}/sitemap_index.xml.gz\n").into(),
        ),
    );
    let index = format!(
        "<?xml version=\"1.0\"?><sitemapindex xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\">\
         <sitemap><loc>{base}/news-sitemap.xml</loc></sitemap>\
         <sitemap><loc>{base}/old.xml</loc></sitemap>\
         <sitemap><loc>{base}/sitemap_index.xml.gz</loc></sitemap>\
         <sitemap><loc>https://elsewhere.example/sitemap.xml</loc></sitemap></sitemapindex>"
    );
    origin.set_path(
        "/sitemap_index.xml.gz",
        raw("application/x-gzip", gzip(index.as_bytes())),
    );
    let news = format!(
        "<?xml version=\"1.0\"?><urlset xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\" \
         xmlns:news=\"http://www.google.com/schemas/sitemap-news/0.9\">\
         <url><loc>{base}/news/1?utm_source=sitemap</loc><news:news><news:publication_date>{}</news:publication_date>\
         <news:title>One</news:title></news:news></url>\
         <url><loc>{base}/news/2</loc><lastmod>{}</lastmod></url>\
         <url><loc>https://elsewhere.example/news/3</loc></url>\
         <url><loc>javascript:alert(1)</loc></url>\
         <url><loc>{base}/about</loc></url></urlset>",
        hours_ago(1),
        hours_ago(2)
    );
    origin.set_path("/news-sitemap.xml", raw("application/xml", news.into()));
    let old = format!("<urlset><url><loc>{base}/news/old</loc><lastmod>2020-01-01</lastmod></url></urlset>");
    origin.set_path("/old.xml", raw("application/xml", old.into()));
    let rss = format!(
        "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>Ex</title><link>{base}/</link><description>d</description>\
         <item><title>R</title><link>/news/rss-1</link><pubDate>{}</pubDate></item></channel></rss>",
        httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(600))
    );
    origin.set_path("/rss", raw("application/rss+xml", rss.into()));
    let atom = format!(
        "<?xml version=\"1.0\"?><feed xmlns=\"http://www.w3.org/2005/Atom\"><title>Ex</title><id>urn:x</id><updated>{0}</updated>\
         <entry><title>A</title><id>urn:a</id><link href=\"{base}/news/atom-1\"/><updated>{0}</updated></entry></feed>",
        hours_ago(3)
    );
    origin.set_path("/atom", raw("application/atom+xml", atom.into()));
    let json_feed = serde_json::json!({
        "version": "https://jsonfeed.org/version/1.1", "title": "Ex",
        "items": [{"id": "j1", "url": format!("{base}/news/json-1"), "date_published": hours_ago(4)}]
    });
    origin.set_path("/feed.json", raw("application/feed+json", json_feed.to_string().into()));

    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "[sites.discover]\nsitemaps = [\"auto\"]\nfeeds = [\"{base}/rss\", \"{base}/atom\", \"{base}/feed.json\"]\n\
         interval = \"1h\"\nmax_age = \"30d\"\ninclude = [\"/news/\"]\n"
    );
    let config = dir.path().join("mirrorgate.toml");
    let site = SiteSpec::new("news", base.clone(), vec![], vec![ARTICLE]).extra(&extra);
    write_config(&config, &dir.path().join("store.db"), "", &[site]);
    let daemon = Daemon::start(&config);
    let detail = eventually("discovered articles probed", Duration::from_secs(30), || {
        let url = daemon.url("/status/news");
        async move {
            let detail = get_json(&url).await;
            let articles = articles_of(&detail);
            let probed = articles.len() == 6 && articles.iter().all(|a| a["bases"][0]["verdict"] == "same");
            probed.then_some(detail)
        }
    })
    .await;
    let articles = articles_of(&detail);
    let paths: Vec<&str> = articles.iter().map(|a| a["path"].as_str().unwrap()).collect();
    // Configured first, then discovered, newest first; tracking parameters gone.
    assert_eq!(
        paths,
        [
            ARTICLE,
            "/news/rss-1",
            "/news/1",
            "/news/2",
            "/news/atom-1",
            "/news/json-1"
        ]
    );
    assert_eq!(articles[0]["source"], "config");
    assert_eq!(articles[2]["source"], "discovered");
    assert_eq!(
        articles[2]["discovered_from"],
        format!("{base}/news-sitemap.xml").as_str()
    );
    assert!(articles[2]["published_at"].is_string());
    assert_eq!(articles[1]["discovered_from"], format!("{base}/rss").as_str());

    let status = get_json(&daemon.url("/status")).await;
    let discovery = &status["sites"][0]["discovery"];
    assert_eq!(discovery["articles"], 5, "{status}");
    assert!(discovery["other_hosts"].as_u64().unwrap() >= 3, "{discovery}");
    let sources = discovery["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 4, "{discovery}");
    assert!(sources.iter().all(|s| s["ok"] == true), "{discovery}");
    assert!(discovery["last_run_at"].is_string());
}

#[tokio::test]
async fn hostile_sitemaps_and_feeds_each_fail_alone() {
    let origin = site_with(&[ARTICLE, "/news/good"]).await;
    let base = origin.url();
    let bomb = format!(
        "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;\">\
         <!ENTITY xxe SYSTEM \"file:///etc/passwd\">]><urlset><url><loc>{base}/news/&lol2;&xxe;</loc></url></urlset>"
    );
    origin.set_path("/bomb.xml", raw("application/xml", bomb.into()));
    origin.set_path("/huge.xml", Behavior::Bytes { size: 60 * 1024 * 1024 });
    origin.set_path(
        "/gzbomb.xml.gz",
        raw("application/gzip", gzip(&vec![b' '; 60 * 1024 * 1024])),
    );
    origin.set_path(
        "/broken.xml",
        raw("application/xml", b"<urlset><url><loc>x</url>".to_vec()),
    );
    let nested: String = format!("<sitemapindex><sitemap><loc>{base}/nest/1.xml</loc></sitemap></sitemapindex>");
    origin.set_path("/nest/0.xml", raw("application/xml", nested.into()));
    for depth in 1..8 {
        let next = format!(
            "<sitemapindex><sitemap><loc>{base}/nest/{}.xml</loc></sitemap></sitemapindex>",
            depth + 1
        );
        origin.set_path(&format!("/nest/{depth}.xml"), raw("application/xml", next.into()));
    }
    let good = format!("<urlset><url><loc>{base}/news/good</loc></url></urlset>");
    origin.set_path("/good.xml", raw("application/xml", good.into()));
    origin.set_path("/notafeed", raw("text/html", b"<html><body>no</body></html>".to_vec()));
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "[sites.discover]\nsitemaps = [\"{base}/bomb.xml\", \"{base}/huge.xml\", \"{base}/gzbomb.xml.gz\", \
         \"{base}/broken.xml\", \"{base}/nest/0.xml\", \"{base}/good.xml\"]\nfeeds = [\"{base}/notafeed\"]\n"
    );
    let config = dir.path().join("mirrorgate.toml");
    let site = SiteSpec::new("news", base.clone(), vec![], vec![ARTICLE]).extra(&extra);
    write_config(&config, &dir.path().join("store.db"), "", &[site]);
    let daemon = Daemon::start(&config);
    let status = eventually("a discovery run", Duration::from_secs(30), || {
        let url = daemon.url("/status");
        async move {
            let status = get_json(&url).await;
            status["sites"][0]["discovery"]["last_run_at"]
                .is_string()
                .then_some(status)
        }
    })
    .await;
    let sources = status["sites"][0]["discovery"]["sources"].as_array().unwrap().clone();
    let error_of = |suffix: &str| -> String {
        let source = sources
            .iter()
            .find(|s| s["url"].as_str().unwrap().ends_with(suffix))
            .unwrap_or_else(|| panic!("{suffix} in {sources:?}"));
        source["error"].as_str().unwrap_or("").to_string()
    };
    assert!(
        error_of("/bomb.xml").contains("never expanded"),
        "{}",
        error_of("/bomb.xml")
    );
    assert!(
        error_of("/huge.xml").contains("larger than 50 MB"),
        "{}",
        error_of("/huge.xml")
    );
    assert!(error_of("/gzbomb.xml.gz").contains("decompresses to more than"));
    assert!(
        error_of("/broken.xml").contains("malformed XML"),
        "{}",
        error_of("/broken.xml")
    );
    assert!(
        error_of("/nest/0.xml").contains("deeper than 3"),
        "{}",
        error_of("/nest/0.xml")
    );
    assert!(
        error_of("/notafeed").contains("not a feed"),
        "{}",
        error_of("/notafeed")
    );
    assert_eq!(error_of("/good.xml"), "");
    let detail = eventually("the good sitemap's article", Duration::from_secs(20), || {
        let url = daemon.url("/status/news");
        async move {
            let detail = get_json(&url).await;
            let articles = articles_of(&detail);
            let probed = articles.iter().all(|a| a["bases"][0]["verdict"] == "same");
            (articles.len() == 2 && probed).then_some(detail)
        }
    })
    .await;
    assert_eq!(articles_of(&detail)[1]["path"], "/news/good");
    // The daemon still answers readers.
    let status = get(daemon.url(&format!("/r/news{ARTICLE}"))).await.status();
    let detail = get_json(&daemon.url("/status/news")).await;
    assert_eq!(status, 302, "{detail}");
}

#[tokio::test]
async fn discovered_articles_survive_a_restart_and_a_failing_source() {
    let origin = site_with(&[ARTICLE, "/news/kept"]).await;
    let base = origin.url();
    let sitemap = format!("<urlset><url><loc>{base}/news/kept</loc></url></urlset>");
    origin.set_path("/sitemap.xml", raw("application/xml", sitemap.into()));
    let dir = tempfile::tempdir().unwrap();
    let extra = "[sites.discover]\nsitemaps = [\"auto\"]\ninterval = \"1h\"\n";
    let config = dir.path().join("mirrorgate.toml");
    let site = SiteSpec::new("news", base.clone(), vec![], vec![ARTICLE]).extra(extra);
    write_config(&config, &dir.path().join("store.db"), "", &[site]);
    let paths = |detail: &Value| -> Vec<String> {
        articles_of(detail)
            .iter()
            .map(|a| a["path"].as_str().unwrap().to_string())
            .collect()
    };
    {
        let mut daemon = Daemon::start(&config);
        eventually("the sitemap's article", Duration::from_secs(20), || {
            let url = daemon.url("/status/news");
            async move { (articles_of(&get_json(&url).await).len() == 2).then_some(()) }
        })
        .await;
        daemon.signal("TERM");
        assert_eq!(daemon.wait_exit(Duration::from_secs(15)), Some(0));
    }
    // The sitemap is gone now; what was found stays, from the store.
    origin.set_path("/sitemap.xml", Behavior::Status(503));
    origin.set_path("/robots.txt", Behavior::Status(503));
    let daemon = Daemon::start(&config);
    let first = get_json(&daemon.url("/status/news")).await;
    assert_eq!(paths(&first), [ARTICLE, "/news/kept"], "{first}");
    let status = eventually("the failed run", Duration::from_secs(20), || {
        let url = daemon.url("/status");
        async move {
            let status = get_json(&url).await;
            status["sites"][0]["discovery"]["last_run_at"]
                .is_string()
                .then_some(status)
        }
    })
    .await;
    let source = &status["sites"][0]["discovery"]["sources"][0];
    assert_eq!(source["ok"], false, "{status}");
    assert!(source["error"].as_str().unwrap().contains("503"), "{source}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        paths(&get_json(&daemon.url("/status/news")).await),
        [ARTICLE, "/news/kept"]
    );
}

#[tokio::test]
async fn a_mirror_that_loads_from_the_primary_is_reported_with_examples() {
    let primary = site_with(&[ARTICLE]).await;
    let mirror = TestOrigin::start(Behavior::Status(404)).await;
    let authority = primary.authority();
    let leaking = Page::Faithful.on(&mirror).replace(
        "</head>",
        &format!(
            "<script src=\"//{authority}/app.js\"></script><link rel=\"stylesheet\" href=\"{}/own.css\"></head>",
            mirror.url()
        ),
    );
    let leaking = leaking.replacen(
        "<article>",
        &format!(
            "<article><img src=\"http://{authority}/img/1.jpg\" alt=\"\"><p style=\"background: url('{0}/bg.png')\"></p>\
             <a href=\"{0}/about\">about</a> <a href=\"/local\">local</a>",
            primary.url()
        ),
        1,
    );
    mirror.set_path(ARTICLE, Behavior::Page(leaking));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mirrorgate.toml");
    let site = SiteSpec::new("news", primary.url(), vec![mirror.url()], vec![ARTICLE]);
    write_config(&config, &dir.path().join("store.db"), "", &[site]);
    let daemon = Daemon::start(&config);
    rounds_completed(&daemon, 1).await;
    let detail = get_json(&daemon.url("/status/news")).await;
    let bases = bases_of(&detail, ARTICLE);
    let leaks = &bases[&mirror.url()]["leaks"];
    assert_eq!(leaks["resources"], 3, "{detail}");
    assert_eq!(leaks["links"], 1, "{detail}");
    let examples = leaks["examples"].as_array().unwrap();
    assert_eq!(examples.len(), 3);
    assert!(
        examples.iter().any(|e| e.as_str().unwrap().contains("/app.js")),
        "{leaks}"
    );
    assert!(bases[&primary.url()].get("leaks").is_none(), "{detail}");
    let status = get_json(&daemon.url("/status")).await;
    let totals = &base_summary(&status["sites"][0], &mirror.url())["leaks"];
    assert_eq!(
        (totals["articles"].as_u64(), totals["resources"].as_u64()),
        (Some(1), Some(3))
    );
    let metrics = get_text(&daemon.url("/metrics")).await;
    let series = format!(
        "mirrorgate_base_leaks{{site=\"news\",base=\"{}\",kind=\"links\"}}",
        mirror.url()
    );
    assert_eq!(metric(&metrics, &series), Some(1.0), "{metrics}");
}

#[tokio::test]
async fn the_primarys_pages_propose_the_mirrors_they_name() {
    let primary = TestOrigin::start(Behavior::Status(404)).await;
    let page = Page::Primary
        .on(&primary)
        .replace(
            "</head>",
            "<link rel=\"alternate\" href=\"https://new-mirror.example/\">\
             <link rel=\"alternate\" hreflang=\"fr\" href=\"https://fr.example/\">\
             <link rel=\"alternate\" type=\"application/rss+xml\" href=\"https://feeds.example/rss\"></head>",
        )
        .replace(
            "can also be accessed at alternate addresses.",
            "can also be accessed at the following alternate addresses: www.example.co.uk, mirror.example.net.",
        );
    primary.set_path(ARTICLE, Behavior::Page(page));
    let mirror = site_with(&[ARTICLE]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mirrorgate.toml");
    let site = SiteSpec::new("news", primary.url(), vec![mirror.url()], vec![ARTICLE]);
    write_config(&config, &dir.path().join("store.db"), "", &[site]);
    let daemon = Daemon::start(&config);
    let status = rounds_completed(&daemon, 1).await;
    let proposed = status["proposed_mirrors"].as_array().unwrap();
    let hosts: Vec<(&str, &str)> = proposed
        .iter()
        .map(|p| (p["host"].as_str().unwrap(), p["via"].as_str().unwrap()))
        .collect();
    assert_eq!(
        hosts,
        [
            ("mirror.example.net", "text"),
            ("new-mirror.example", "link"),
            ("www.example.co.uk", "text")
        ],
        "{status}"
    );
    assert_eq!(proposed[0]["pages"], 1);
    assert_eq!(proposed[0]["seen_on"], ARTICLE);
    assert!(
        proposed[0]["config"]
            .as_str()
            .unwrap()
            .contains("\"https://mirror.example.net\"")
    );
    // Never routed to.
    let location = get(daemon.url(&format!("/r/news{ARTICLE}"))).await;
    assert!(!location.headers()["location"].to_str().unwrap().contains("example."));
    // `check` lists them with a line to paste.
    // Asynchronously: the origins run on this test's own runtime.
    let output = tokio::process::Command::new(binary())
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("proposed mirrors"), "{text}");
    assert!(text.contains("mirrors = [\"https://new-mirror.example\"]"), "{text}");
}

const TIERED_PATHS: [&str; 4] = [ARTICLE, "/news/new", "/news/old-1", "/news/old-2"];

/// A primary whose sitemap dates `/news/new` this morning and the
/// `/news/old-*` articles in 2020, a mirror serving all four faithfully,
/// and a daemon with one-second rounds, tiers from one article up and two
/// canaries, once every article has been probed.
async fn tiered_site(dir: &std::path::Path) -> (Daemon, TestOrigin, TestOrigin) {
    let (primary, mirror) = primary_and_mirror(&TIERED_PATHS).await;
    let base = primary.url();
    let sitemap = format!(
        "<?xml version=\"1.0\"?><urlset xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\">\
         <url><loc>{base}/news/new</loc><lastmod>{}</lastmod></url>\
         <url><loc>{base}/news/old-1</loc><lastmod>2020-01-01</lastmod></url>\
         <url><loc>{base}/news/old-2</loc><lastmod>2020-01-02</lastmod></url></urlset>",
        hours_ago(1)
    );
    primary.set_path("/sitemap.xml", raw("application/xml", sitemap.into()));
    let extra = format!(
        "content_selector = \"article\"\n[sites.discover]\nsitemaps = [\"{base}/sitemap.xml\"]\ninterval = \"1h\"\nmax_age = \"100000d\"\n"
    );
    let site = SiteSpec::new("news", base.clone(), vec![mirror.url()], vec![ARTICLE]).extra(&extra);
    let config = dir.join("mirrorgate.toml");
    let mut text = config_text(
        &dir.join("store.db"),
        "interval = \"1s\"\ntimeout = \"1s\"\nper_host_rate = 100\ndown_after = 2",
        &[site],
    );
    text.push_str(
        "\n[schedule]\nhot_min_articles = 1\nhot_for = \"1d\"\nwarm_for = \"2d\"\nwarm_interval = \"1h\"\ncold_interval = \"1d\"\ncanary_articles = 2\n",
    );
    std::fs::write(&config, text).unwrap();
    let daemon = Daemon::start(&config);
    eventually("every article probed", Duration::from_secs(30), || {
        let url = daemon.url("/status/news");
        async move {
            let articles = articles_of(&get_json(&url).await);
            (articles.len() == 4 && articles.iter().all(|a| a["bases"][1]["verdict"] == "same")).then_some(())
        }
    })
    .await;
    (daemon, primary, mirror)
}

fn tier_of(detail: &Value, path: &str) -> Value {
    article_of(detail, path)["tier"].clone()
}

async fn mirror_verdicts_become(daemon: &Daemon, mirror: &TestOrigin, paths: &[&str], wanted: &[&str]) -> Value {
    eventually(
        &format!("{paths:?} {wanted:?} on the mirror"),
        Duration::from_secs(20),
        || {
            let url = daemon.url("/status/news");
            async move {
                let detail = get_json(&url).await;
                let all = paths.iter().all(|p| {
                    let verdict = &bases_of(&detail, p)[&mirror.url()]["verdict"];
                    wanted.iter().any(|w| verdict == *w)
                });
                all.then_some(detail)
            }
        },
    )
    .await
}

/// Discovered dates set the tiers: an article from years ago is cold, one
/// from this morning hot. When a mirror goes down (seen on the hot ones),
/// its cold articles are probed again at once, so their verdicts stop
/// naming it within a round instead of a cold period.
#[tokio::test]
async fn old_discovered_articles_are_cold_until_their_mirror_goes_down() {
    let dir = tempfile::tempdir().unwrap();
    let (daemon, _primary, mirror) = tiered_site(dir.path()).await;
    let detail = get_json(&daemon.url("/status/news")).await;
    assert_eq!(
        (tier_of(&detail, "/news/new"), tier_of(&detail, "/news/old-1")),
        ("hot".into(), "cold".into())
    );
    assert_eq!(tier_of(&detail, ARTICLE), "hot", "dated from when it was first seen");
    let probed_before = mirror.request_count();
    rounds_completed(
        &daemon,
        get_json(&daemon.url("/status")).await["round"]["completed"]
            .as_u64()
            .unwrap()
            + 2,
    )
    .await;
    // Two hot articles a round on the mirror; the cold ones wait.
    assert!(
        mirror.request_count() - probed_before <= 6,
        "cold articles probed every round"
    );

    mirror.set(Behavior::Hang);
    for path in TIERED_PATHS {
        mirror.set_path(path, Behavior::Hang);
    }
    let detail = mirror_verdicts_become(&daemon, &mirror, &["/news/old-1", "/news/old-2"], &["unreachable"]).await;
    assert_eq!(
        tier_of(&detail, "/news/old-1"),
        "cold",
        "a failing base makes nothing hot"
    );
}

/// A mirror turned into a block page: its canaries (the two newest
/// articles) fail the same way, so what it served before stops counting
/// for its cold articles at once, and they are probed again.
#[tokio::test]
async fn a_mirror_whose_canaries_all_show_a_block_page_loses_its_cold_articles_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (daemon, primary, mirror) = tiered_site(dir.path()).await;
    for path in TIERED_PATHS {
        mirror.set_path(path, Behavior::Page(Page::Blocked.on(&mirror)));
    }
    mirror_verdicts_become(
        &daemon,
        &mirror,
        &["/news/old-1", "/news/old-2"],
        &["unknown", "diverged"],
    )
    .await;
    assert_eq!(
        daemon.log_entries(&[("message", "every canary of the base fails the same way: not trusting what it served before, probing all its articles")]).len(),
        1,
        "{}",
        daemon.log()
    );
    let detail = mirror_verdicts_become(&daemon, &mirror, &["/news/old-1"], &["diverged"]).await;
    assert_eq!(
        bases_of(&detail, "/news/old-1")[&mirror.url()]["diverged_reason"],
        "block_page"
    );
    let response = client().get(daemon.url("/r/news/news/old-1")).send().await.unwrap();
    assert_eq!(
        response.headers()["location"],
        format!("{}/news/old-1", primary.url()).as_str()
    );

    // The block page goes: the canaries pass, the mirror serves again.
    for path in TIERED_PATHS {
        mirror.set_path(path, Behavior::Page(Page::Faithful.on(&mirror)));
    }
    mirror_verdicts_become(
        &daemon,
        &mirror,
        &["/news/new", "/news/old-1", "/news/old-2"],
        &["same"],
    )
    .await;
}
