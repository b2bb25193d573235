//! The redirect side under hostile or heavy use: request limits, the
//! operators' token, raw requests no client library would send, and 64
//! connections hammering /r while probe rounds run.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOKEN: &str = "s3cret-token-for-tests";

async fn daemon_with(dir: &std::path::Path, primary: &TestOrigin, probe: &str, server: &str) -> Daemon {
    let config = dir.join("mirrorgate.toml");
    let text = config_text(
        &dir.join("s.db"),
        probe,
        &[SiteSpec::new("news", primary.url(), vec![], vec![ARTICLE])],
    )
    .replace("[server]\n", &format!("[server]\n{server}\n"));
    std::fs::write(&config, text).unwrap();
    Daemon::start(&config)
}

/// Sends raw bytes and returns the status line (or "" if the server hung up).
async fn raw_request(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let _ = stream.write_all(request).await;
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response)).await;
    String::from_utf8_lossy(&response)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

#[tokio::test]
async fn request_limits_414_431_and_slow_headers() {
    let dir = tempfile::tempdir().unwrap();
    let primary = serving(Page::Primary).await;
    let daemon = daemon_with(dir.path(), &primary, "", "request_header_timeout = \"1s\"").await;
    rounds_completed(&daemon, 1).await;

    // Raw: no client library will even build a 70 KiB URI.
    for length in [9 * 1024, 70 * 1024] {
        let request = format!("GET /r/news/{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(length));
        let status = raw_request(daemon.addr, request.as_bytes()).await;
        assert!(status.starts_with("HTTP/1.1 414"), "URI of {length} bytes: {status}");
    }
    let mut request = client().get(daemon.url(&format!("/r/news{ARTICLE}")));
    for i in 0..100 {
        request = request.header(format!("x-filler-{i}"), "1");
    }
    assert_eq!(request.send().await.unwrap().status(), 431);

    // Headers trickled in and never finished: the connection is closed.
    let mut slow = TcpStream::connect(daemon.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut buffer = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut buffer)).await;
    assert!(closed.is_ok(), "the slow client was not cut off");
    assert!(!String::from_utf8_lossy(&buffer).contains("200 OK"));
    // Everyone else is still served.
    let response = get(daemon.url(&format!("/r/news{ARTICLE}"))).await;
    assert_eq!(response.status(), 302);
}

#[tokio::test]
async fn raw_requests_never_get_a_5xx_or_a_foreign_location() {
    let dir = tempfile::tempdir().unwrap();
    let primary = serving(Page::Primary).await;
    let daemon = daemon_with(dir.path(), &primary, "", "").await;
    rounds_completed(&daemon, 1).await;
    let base = primary.url();
    let cases: &[&[u8]] = &[
        b"GET /r/news//evil.example/ HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /r/news/\\evil.example HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /r/news/%2F%2Fevil.example HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /r/news/../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /r/%FF%FE/x HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /r/news/a\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /r/news/a%0d%0aSet-Cookie:%20x=1 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /r/news/a\r\nSet-Cookie: x=1 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /r/news/a\0b HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /go?url=http://127.0.0.1%0d%0a.evil HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /go?url=%00 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /go?url=%FF HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET http://evil.example/r/news/a HTTP/1.1\r\nHost: evil.example\r\n\r\n",
        b"GARBAGE\r\n\r\n",
    ];
    for case in cases {
        // Closed after the answer, so reading to the end does not wait on keep-alive.
        let host = case.windows(9).position(|w| w == b"Host: x\r\n");
        let case: Vec<u8> = match host {
            Some(at) => [&case[..at + 9], b"Connection: close\r\n", &case[at + 9..]].concat(),
            None => case.to_vec(),
        };
        let case = case.as_slice();
        let mut stream = TcpStream::connect(daemon.addr).await.unwrap();
        stream.write_all(case).await.unwrap();
        let mut response = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response)).await;
        let text = String::from_utf8_lossy(&response);
        let shown = String::from_utf8_lossy(case);
        let status: u16 = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        assert!(
            status == 0 || (300..500).contains(&status) || status == 503,
            "{shown:?} -> {text}"
        );
        for line in text.lines().filter(|l| l.to_ascii_lowercase().starts_with("location:")) {
            let location = line[9..].trim();
            assert!(
                location.starts_with(&format!("{base}/")),
                "{shown:?} -> Location {location}"
            );
        }
        // Percent-encoded CR/LF may stay in a Location; it must never split a header.
        let head = text.split("\r\n\r\n").next().unwrap_or("");
        assert!(
            !head.to_ascii_lowercase().lines().any(|l| l.starts_with("set-cookie")),
            "{shown:?} -> {head}"
        );
    }
}

#[tokio::test]
async fn the_status_token_guards_operator_endpoints_only() {
    let dir = tempfile::tempdir().unwrap();
    let primary = serving(Page::Primary).await;
    let daemon = daemon_with(dir.path(), &primary, "", &format!("status_token = \"{TOKEN}\"")).await;
    // Wait for a round through the only door that needs no token.
    eventually("a first round", Duration::from_secs(20), || {
        let url = daemon.url(&format!("/r/news{ARTICLE}"));
        async move { (client().get(url).send().await.ok()?.status() == 302).then_some(()) }
    })
    .await;
    for path in ["/status", "/status/news", "/metrics"] {
        let bare = get(daemon.url(path)).await;
        assert_eq!(bare.status(), 401, "{path}");
        assert!(
            bare.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
        let wrong = client()
            .get(daemon.url(path))
            .bearer_auth("s3cret-token-for-testz")
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 401, "{path}");
        let short = client()
            .get(daemon.url(path))
            .bearer_auth("s3cret")
            .send()
            .await
            .unwrap();
        assert_eq!(short.status(), 401, "{path}");
        let right = client().get(daemon.url(path)).bearer_auth(TOKEN).send().await.unwrap();
        assert_eq!(right.status(), 200, "{path}");
    }
    assert_eq!(get(daemon.url("/healthz")).await.status(), 200);
    let go = format!("{}{ARTICLE}", primary.url());
    let response = client()
        .get(daemon.url("/go"))
        .query(&[("url", go.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 302);
}

#[tokio::test]
async fn sixty_four_connections_of_redirects_while_rounds_run() {
    let dir = tempfile::tempdir().unwrap();
    let primary = serving(Page::Primary).await;
    let mirror = serving(Page::Relative).await;
    let config = dir.path().join("mirrorgate.toml");
    write_config(
        &config,
        &dir.path().join("s.db"),
        "interval = \"200ms\"\ntimeout = \"2s\"\nper_host_rate = 1000",
        &[SiteSpec::new("news", primary.url(), vec![mirror.url()], vec![ARTICLE])],
    );
    let daemon = Daemon::start(&config);
    rounds_completed(&daemon, 1).await;
    let rounds_before = get_json(&daemon.url("/status")).await["round"]["completed"]
        .as_u64()
        .unwrap();
    let url = daemon.url(&format!("/r/news{ARTICLE}?ref=load"));
    let mut workers = Vec::new();
    for _ in 0..64 {
        let url = url.clone();
        workers.push(tokio::spawn(async move {
            // One connection per worker, kept alive, like wrk.
            let client = client();
            let mut statuses = Vec::new();
            for _ in 0..150 {
                statuses.push(client.get(&url).send().await.map(|r| r.status().as_u16()).unwrap_or(0));
            }
            statuses
        }));
    }
    let mut counts = std::collections::BTreeMap::new();
    for worker in workers {
        for status in worker.await.unwrap() {
            *counts.entry(status).or_insert(0) += 1;
        }
    }
    // Both bases stay faithful throughout, so every answer is a redirect.
    assert_eq!(
        counts,
        std::collections::BTreeMap::from([(302, 64 * 150)]),
        "{counts:?}"
    );
    let rounds_after = get_json(&daemon.url("/status")).await["round"]["completed"]
        .as_u64()
        .unwrap();
    assert!(rounds_after > rounds_before, "probe rounds kept running under load");
}
