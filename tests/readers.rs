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

/// Reads until `count` whole responses (each with its body) are in, the
/// peer closes, or five seconds pass; returns the status codes and whether
/// the connection was closed.
async fn read_responses(stream: &mut TcpStream, count: usize) -> (Vec<u16>, bool) {
    let mut bytes = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let statuses = parse_responses(&bytes);
        if statuses.len() >= count {
            // Give a close that follows the last answer a moment to arrive.
            let mut extra = [0u8; 64];
            let closed = matches!(
                tokio::time::timeout(Duration::from_millis(300), stream.read(&mut extra)).await,
                Ok(Ok(0))
            );
            return (statuses, closed);
        }
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return (parse_responses(&bytes), true),
            Ok(Ok(n)) => bytes.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The status codes of the complete responses in `bytes` (bodies by
/// Content-Length).
fn parse_responses(mut bytes: &[u8]) -> Vec<u16> {
    let mut statuses = Vec::new();
    while let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let total = end + 4 + length;
        if bytes.len() < total {
            break;
        }
        statuses.push(head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0));
        bytes = &bytes[total..];
    }
    statuses
}

#[tokio::test]
async fn pipelined_and_unusual_requests_get_the_routers_answers() {
    let dir = tempfile::tempdir().unwrap();
    let primary = serving(Page::Primary).await;
    let daemon = daemon_with(dir.path(), &primary, "", "").await;
    rounds_completed(&daemon, 1).await;
    let r = format!("GET /r/news{ARTICLE} HTTP/1.1\r\nHost: x\r\n\r\n");
    let go = format!(
        "GET /go?url={}{ARTICLE}%3Fa%3D1 HTTP/1.1\r\nHost: x\r\n\r\n",
        primary.url().replace(':', "%3A").replace('/', "%2F")
    );

    // Pipelined: two redirects, then an operator endpoint, then a redirect
    // again, in one write; answered in order on one connection.
    let mut stream = TcpStream::connect(daemon.addr).await.unwrap();
    let batch = format!("{r}{go}GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n{r}");
    stream.write_all(batch.as_bytes()).await.unwrap();
    let (statuses, closed) = read_responses(&mut stream, 4).await;
    assert_eq!(statuses, [302, 302, 200, 302]);
    assert!(!closed, "keep-alive connections stay open");
    // And the connection is still usable after all that.
    stream.write_all(r.as_bytes()).await.unwrap();
    assert_eq!(read_responses(&mut stream, 1).await.0, [302]);

    // A body on a GET is read and skipped, not taken for the next request.
    let mut stream = TcpStream::connect(daemon.addr).await.unwrap();
    let with_body = format!("GET /r/news{ARTICLE} HTTP/1.1\r\nHost: x\r\nContent-Length: 14\r\n\r\nGET /nope HTTP{r}");
    stream.write_all(with_body.as_bytes()).await.unwrap();
    assert_eq!(read_responses(&mut stream, 2).await.0, [302, 302]);

    // Other methods are the router's: 405.
    let mut stream = TcpStream::connect(daemon.addr).await.unwrap();
    let post = format!("POST /r/news{ARTICLE} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    stream.write_all(post.as_bytes()).await.unwrap();
    assert_eq!(read_responses(&mut stream, 1).await.0, [405]);

    // Connection: close, and HTTP/1.0 without keep-alive, close after the answer.
    for request in [
        format!("GET /r/news{ARTICLE} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        format!("GET /r/news{ARTICLE} HTTP/1.0\r\n\r\n"),
    ] {
        let mut stream = TcpStream::connect(daemon.addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let (statuses, closed) = read_responses(&mut stream, 1).await;
        assert_eq!(statuses, [302], "{request:?}");
        assert!(closed, "{request:?} left the connection open");
    }
    let mut stream = TcpStream::connect(daemon.addr).await.unwrap();
    let keep = format!("GET /r/news{ARTICLE} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    stream.write_all(keep.as_bytes()).await.unwrap();
    assert_eq!(read_responses(&mut stream, 1).await, (vec![302], false));

    // HEAD: the redirect's headers, no body.
    let mut stream = TcpStream::connect(daemon.addr).await.unwrap();
    let head = format!("HEAD /r/news{ARTICLE} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response)).await;
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 302 Found\r\n"), "{text}");
    let location = text
        .lines()
        .find_map(|l| l.to_ascii_lowercase().starts_with("location:").then(|| l[9..].trim()));
    assert_eq!(location, Some(format!("{}{ARTICLE}", primary.url()).as_str()), "{text}");
    assert!(text.ends_with("\r\n\r\n"), "no body after a HEAD: {text:?}");
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

// The origins get threads of their own, and probes a timeout far beyond
// what the load delays them by: the probe threads run at a lower priority
// than the readers', so on a busy 2-core machine a 2 s probe can time out
// and, rightly, take the bases out of rotation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_connections_of_redirects_while_rounds_run() {
    let dir = tempfile::tempdir().unwrap();
    let primary = serving(Page::Primary).await;
    let mirror = serving(Page::Relative).await;
    let config = dir.path().join("mirrorgate.toml");
    write_config(
        &config,
        &dir.path().join("s.db"),
        "interval = \"200ms\"\nmax_age = \"1m\"\ntimeout = \"30s\"\nper_host_rate = 1000",
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

/// Sends raw bytes on a new connection and returns everything written back.
async fn raw_exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response)).await;
    String::from_utf8_lossy(&response).into_owned()
}

fn header_values<'a>(response: &'a str, name: &str) -> Vec<&'a str> {
    response
        .split("\r\n\r\n")
        .next()
        .unwrap_or("")
        .lines()
        .filter_map(|line| line.split_once(':'))
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .collect()
}

/// What RFC 3986 allows in a URI (with `%` only as a `%XX` escape).
fn uri_chars_only(url: &str) -> bool {
    let bytes = url.as_bytes();
    (0..bytes.len()).all(|at| {
        let b = bytes[at];
        b.is_ascii_alphanumeric()
            || b"-._~:/?#[]@!$&'()*+,;=".contains(&b)
            || (b == b'%' && bytes.len() > at + 2 && bytes[at + 1..at + 3].iter().all(u8::is_ascii_hexdigit))
    })
}

#[tokio::test]
async fn a_readers_path_cannot_add_link_values_or_leave_the_bases() {
    let dir = tempfile::tempdir().unwrap();
    let primary = serving(Page::Primary).await;
    let mirror = serving(Page::Primary).await;
    let config = dir.path().join("mirrorgate.toml");
    write_config(
        &config,
        &dir.path().join("s.db"),
        "",
        &[SiteSpec::new("news", primary.url(), vec![mirror.url()], vec![ARTICLE])],
    );
    let daemon = Daemon::start(&config);
    rounds_completed(&daemon, 1).await;
    let bases = [primary.url(), mirror.url()];
    let attacks = [
        format!("/r/news{ARTICLE}>;rel=preload;as=script,<https://evil.example/x.js"),
        format!("/r/news{ARTICLE}?a=>;rel=preload,<https://evil.example/x.js"),
        "/r/news/a\"b`c{d}|e\\f^g".to_string(),
        "/r/news/caf\u{e9}".to_string(),
        "/r/news/%zz%3E".to_string(),
        format!(
            "/go?url={}",
            url::form_urlencoded::byte_serialize(
                format!("{}{ARTICLE}>;rel=preload,<https://evil.example/x.js", primary.url()).as_bytes()
            )
            .collect::<String>()
        ),
    ];
    for target in &attacks {
        let request = format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let response = raw_exchange(daemon.addr, request.as_bytes()).await;
        if !response.starts_with("HTTP/1.1 302") {
            // hyper refuses some raw bytes outright; that is no redirect at all.
            assert!(response.starts_with("HTTP/1.1 400"), "{target}: {response}");
            continue;
        }
        let locations = header_values(&response, "location");
        assert_eq!(locations.len(), 1, "{target}: {response}");
        let links = header_values(&response, "link");
        assert!(!links.is_empty(), "{target}: the mirror is a duplicate: {response}");
        let mut targets: Vec<&str> = locations.clone();
        for link in &links {
            let parsed = mirrorgate::route::parse_link_field(link)
                .unwrap_or_else(|e| panic!("{target}: Link {link:?} does not parse: {e}"));
            assert_eq!(parsed.len(), 1, "{target}: one link-value per Link: {link:?}");
            assert!(link.ends_with("; rel=duplicate"), "{target}: {link:?}");
            targets.extend(parsed);
        }
        for url in targets {
            assert!(uri_chars_only(url), "{target}: {url:?} holds what a URI may not");
            assert!(
                bases
                    .iter()
                    .any(|b| url.strip_prefix(b.as_str()).is_some_and(|r| r.starts_with('/'))),
                "{target}: {url:?} is off the bases"
            );
        }
    }
    // Raw '<', '>', '"' and '`' make the request-target invalid HTTP: both
    // paths answer 400, with no Location or Link at all.
    let request = format!("GET {} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", attacks[0]);
    let response = raw_exchange(daemon.addr, request.as_bytes()).await;
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    assert!(header_values(&response, "location").is_empty() && header_values(&response, "link").is_empty());
    // Sent as a browser sends it, or inside `url=`: escaped in place.
    let encoded = format!("{ARTICLE}%3E;rel=preload;as=script,%3Chttps://evil.example/x.js");
    for target in [
        format!("/r/news{encoded}"),
        format!(
            "/go?url={}",
            url::form_urlencoded::byte_serialize(
                format!(
                    "{}{ARTICLE}>;rel=preload;as=script,<https://evil.example/x.js",
                    primary.url()
                )
                .as_bytes()
            )
            .collect::<String>()
        ),
    ] {
        let request = format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let response = raw_exchange(daemon.addr, request.as_bytes()).await;
        let locations = header_values(&response, "location");
        assert!(
            locations == [format!("{}{encoded}", primary.url())] || locations == [format!("{}{encoded}", mirror.url())],
            "{target}: {response}"
        );
        let links = header_values(&response, "link");
        assert_eq!(links.len(), 1, "{response}");
        assert_eq!(
            mirrorgate::route::parse_link_field(links[0]).unwrap().len(),
            1,
            "{response}"
        );
    }
    // What hyper takes raw ('|', '^', '{', non-ASCII) is encoded in the answer.
    let response = raw_exchange(
        daemon.addr,
        "GET /r/news/a|b^c{d}\u{e9}?q=|x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".as_bytes(),
    )
    .await;
    let locations = header_values(&response, "location");
    assert_eq!(locations.len(), 1, "{response}");
    assert!(locations[0].ends_with("/a%7Cb%5Ec%7Bd%7D%C3%A9?q=%7Cx"), "{response}");

    // HTTP/1.0: answered as 1.0; keep-alive echoed and kept, else closed.
    let request =
        format!("GET /r/news{ARTICLE} HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /r/news{ARTICLE} HTTP/1.0\r\n\r\n");
    let response = raw_exchange(daemon.addr, request.as_bytes()).await;
    assert_eq!(response.matches("HTTP/1.0 302 Found").count(), 2, "{response}");
    assert_eq!(
        response.to_ascii_lowercase().matches("connection: keep-alive").count(),
        1,
        "{response}"
    );
}

#[tokio::test]
async fn connections_past_the_cap_get_a_503_and_slow_readers_are_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let primary = serving(Page::Primary).await;
    let daemon = daemon_with(
        dir.path(),
        &primary,
        "",
        "max_connections = 4\nrequest_header_timeout = \"2s\"",
    )
    .await;
    rounds_completed(&daemon, 1).await;
    let mut held = Vec::new();
    // The status polls before may still count for a moment on a loaded
    // machine (the server has not read their close yet): a 503 then is
    // retried, anything else is wrong.
    let mut retries = 0;
    while held.len() < 4 {
        let mut stream = TcpStream::connect(daemon.addr).await.unwrap();
        stream
            .write_all(b"GET /r/news/x HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buffer = [0u8; 512];
        let n = stream.read(&mut buffer).await.unwrap();
        let answer = String::from_utf8_lossy(&buffer[..n]).to_string();
        if answer.starts_with("HTTP/1.1 503") && retries < 20 {
            retries += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        assert!(answer.starts_with("HTTP/1.1 302"), "{answer}");
        held.push(stream);
    }
    let refused = raw_exchange(daemon.addr, b"GET /r/news/x HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert_eq!(header_values(&refused, "retry-after"), ["1"], "{refused}");
    drop(held);
    let metrics = eventually("the connections to close", Duration::from_secs(5), || {
        let url = daemon.url("/metrics");
        async move {
            let metrics = get_text(&url).await;
            // This scrape's own connection is the one open.
            (metric(&metrics, "mirrorgate_connections_open") == Some(1.0)).then_some(metrics)
        }
    })
    .await;
    assert!(metric(&metrics, "mirrorgate_connections_refused_total").unwrap() >= 1.0);

    // A reader that pipelines without reading is cut off within the timeout.
    let mut greedy = TcpStream::connect(daemon.addr).await.unwrap();
    let batch = format!("GET /r/news{ARTICLE} HTTP/1.1\r\nHost: x\r\n\r\n").repeat(2000);
    let started = std::time::Instant::now();
    let mut closed = false;
    for _ in 0..200 {
        if tokio::time::timeout(Duration::from_secs(1), greedy.write_all(batch.as_bytes()))
            .await
            .is_err_and(|_| started.elapsed() > Duration::from_secs(1))
        {
            // Our side is blocked too now; the daemon's deadline runs.
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        if started.elapsed() > Duration::from_secs(4) {
            break;
        }
    }
    let metrics = get_text(&daemon.url("/metrics")).await;
    assert!(
        metric(&metrics, "mirrorgate_writes_timed_out_total").unwrap() >= 1.0,
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("connections"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let mut rest = Vec::new();
    let drained = tokio::time::timeout(Duration::from_secs(5), greedy.read_to_end(&mut rest)).await;
    closed |= matches!(drained, Ok(Ok(_)) | Ok(Err(_)));
    assert!(closed, "the daemon closed the greedy connection");
}

#[tokio::test]
async fn the_token_can_come_from_a_file_and_never_reaches_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let primary = serving(Page::Primary).await;
    std::fs::write(dir.path().join("status.token"), format!("{TOKEN}\n")).unwrap();
    let daemon = daemon_with(dir.path(), &primary, "", "status_token_file = \"status.token\"").await;
    rounds_completed_with_token(&daemon).await;
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let response = client()
            .get(daemon.url("/status"))
            .header("authorization", format!("{scheme} {TOKEN}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{scheme}");
    }
    assert_eq!(get(daemon.url("/status")).await.status(), 401);
    daemon.signal("HUP");
    eventually("the reload", Duration::from_secs(10), || async {
        (!daemon.log_entries(&[("message", "config reloaded")]).is_empty()).then_some(())
    })
    .await;
    assert!(!daemon.log_text().contains(TOKEN), "the token is in the log");
}

async fn rounds_completed_with_token(daemon: &Daemon) {
    eventually("a first round", Duration::from_secs(20), || {
        let url = daemon.url("/status");
        async move {
            let status = get_json_authorized(&url, TOKEN).await?;
            (status["round"]["completed"].as_u64()? >= 1).then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn error_pages_are_html_for_browsers_json_otherwise_and_replaceable() {
    let dir = tempfile::tempdir().unwrap();
    let primary = TestOrigin::start(Behavior::Status(502)).await;
    let pages = dir.path().join("pages");
    std::fs::create_dir(&pages).unwrap();
    std::fs::write(
        pages.join("503.html"),
        "<html><body><h1>Our mirrors are being renewed</h1><p>{{site}} {{path}}</p><ul>{{bases}}</ul></body></html>",
    )
    .unwrap();
    let daemon = daemon_with(dir.path(), &primary, "", "error_page_dir = \"pages\"").await;
    rounds_completed(&daemon, 1).await;
    let browser = |path: &str| {
        client()
            .get(daemon.url(path))
            .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
            .send()
    };
    // 503: the operator's template, filled and escaped.
    let response = browser(&format!("/r/news{ARTICLE}?a=<b>")).await.unwrap();
    assert_eq!(response.status(), 503);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = response.text().await.unwrap();
    assert!(page.contains("Our mirrors are being renewed"), "{page}");
    assert!(page.contains(&format!("news {ARTICLE}?a=%3Cb%3E")), "{page}");
    assert!(
        page.contains(&format!("<li><a href=\"{}{ARTICLE}", primary.url())),
        "{page}"
    );
    // 400 and 404: the built-in pages for browsers, JSON for tools.
    for (path, status) in [("/go?url=https://evil.example/a", 400), ("/r/nope/a", 404)] {
        let response = browser(path).await.unwrap();
        assert_eq!(response.status(), status, "{path}");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{path}"
        );
        let page = response.text().await.unwrap();
        assert!(page.contains("<h1>"), "{path}: {page}");
        let response = get(daemon.url(path)).await;
        assert_eq!(response.status(), status, "{path}");
        let json: serde_json::Value = response.json().await.unwrap();
        assert!(json["error"].is_string(), "{path}: {json}");
    }
}
