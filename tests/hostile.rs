//! Bases that misbehave: each gets the right outcome in bounded time and
//! memory, and never stalls the probes of other bases. Every server here
//! listens on 127.0.0.1; nothing is sent anywhere else.

mod common;

use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::header;
use axum::response::Response;
use common::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A raw TCP origin: reads a request head, then does whatever `answer` does.
async fn raw_origin<F, Fut>(answer: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buffer = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buffer[..n]),
                    }
                }
                answer(stream).await;
            });
        }
    });
    addr
}

const HEAD_200: &str = "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n";

fn compressed(encoding: &str, size: usize) -> Vec<u8> {
    let zeros = vec![0u8; size];
    match encoding {
        "gzip" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            e.write_all(&zeros).unwrap();
            e.finish().unwrap()
        }
        "deflate" => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
            e.write_all(&zeros).unwrap();
            e.finish().unwrap()
        }
        _ => {
            let mut out = Vec::new();
            let mut e = brotli::CompressorWriter::new(&mut out, 4096, 11, 22);
            e.write_all(&zeros).unwrap();
            drop(e);
            out
        }
    }
}

fn bomb(encoding: &'static str) -> impl Fn() -> Response + Clone + Send + Sync + 'static {
    let body = compressed(encoding, 64 << 20);
    move || {
        Response::builder()
            .header(header::CONTENT_TYPE, "text/html")
            .header(header::CONTENT_ENCODING, encoding)
            .body(Body::from(body.clone()))
            .unwrap()
    }
}

async fn axum_origin(app: axum::Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

fn rss_high_water_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap()
}

/// How long the hanging servers hold a connection.
const HANG: Duration = Duration::from_secs(300);
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn misbehaving_bases_get_their_outcome_in_bounded_time_and_memory() {
    let dir = tempfile::tempdir().unwrap();
    let healthy = serving(Page::Primary).await;

    // The hanging servers hold far longer than the probe timeout, and the
    // timeout is far longer than any honest base here takes even on a
    // loaded machine (probe threads run at a lower priority, and a debug
    // build fingerprints the heavy pages slowly): a case reads `timeout`
    // only because it hangs.
    let silent = raw_origin(|stream| async move {
        tokio::time::sleep(HANG).await;
        drop(stream);
    })
    .await;
    let slowloris = raw_origin(|mut stream| async move {
        let _ = stream
            .write_all(format!("{HEAD_200}Content-Length: 100000\r\n\r\n").as_bytes())
            .await;
        for _ in 0..HANG.as_secs() {
            if stream.write_all(b"x").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
    .await;
    let closes_mid_body = raw_origin(|mut stream| async move {
        let _ = stream
            .write_all(format!("{HEAD_200}Content-Length: 100000\r\n\r\n<p>half").as_bytes())
            .await;
    })
    .await;
    let resets = raw_origin(|stream| async move {
        // Linger zero sends a reset on close; it cannot block the drop.
        #[allow(deprecated)]
        let _ = stream.set_linger(Some(Duration::ZERO));
        drop(stream);
    })
    .await;
    let endless_chunked = raw_origin(|mut stream| async move {
        let _ = stream
            .write_all(format!("{HEAD_200}Transfer-Encoding: chunked\r\n\r\n").as_bytes())
            .await;
        let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, "y".repeat(64 * 1024));
        while stream.write_all(chunk.as_bytes()).await.is_ok() {}
    })
    .await;
    let mut bombs = Vec::new();
    for encoding in ["gzip", "deflate", "br"] {
        let respond = bomb(encoding);
        bombs.push(axum_origin(axum::Router::new().fallback(move || std::future::ready(respond()))).await);
    }
    let long_chain = TestOrigin::start(Behavior::Status(404)).await;
    long_chain.set_path(ARTICLE, Behavior::Redirect("/hop/1".into()));
    for hop in 1..=11 {
        long_chain.set_path(&format!("/hop/{hop}"), Behavior::Redirect(format!("/hop/{}", hop + 1)));
    }
    let short_chain = TestOrigin::start(Behavior::Status(404)).await;
    short_chain.set_path(ARTICLE, Behavior::Redirect("/hop/1".into()));
    for hop in 1..=8 {
        short_chain.set_path(&format!("/hop/{hop}"), Behavior::Redirect(format!("/hop/{}", hop + 1)));
    }
    short_chain.set_path("/hop/9", Behavior::Page(Page::Primary.on(&short_chain)));
    let looping = TestOrigin::start(Behavior::Status(404)).await;
    looping.set_path(ARTICLE, Behavior::Redirect("/b".into()));
    looping.set_path("/b", Behavior::Redirect(ARTICLE.into()));
    let to_file = TestOrigin::start(Behavior::Redirect("file:///etc/passwd".into())).await;
    // Never followed, so never contacted: the answer is the redirect itself.
    let to_private = TestOrigin::start(Behavior::Redirect("http://10.0.0.1/admin".into())).await;
    let server_error = TestOrigin::start(Behavior::Status(503)).await;
    let not_found = TestOrigin::start(Behavior::Status(404)).await;
    let invalid_utf8 = raw_origin(|mut stream| async move {
        let body = b"<html><body><article><p>caf\xe9 \xff\xfe broken</p></article></body></html>";
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let _ = stream.write_all(head.as_bytes()).await;
        let _ = stream.write_all(body).await;
    })
    .await;
    let wrong_charset = TestOrigin::start(Behavior::Status(404)).await;
    wrong_charset.set(Behavior::Page(
        "<meta charset=\"koi8-r\"><article><p>unclosed <b><i>tags".into(),
    ));
    let one_long_line = TestOrigin::start(Behavior::Page(format!(
        "<article><p>{}</p></article>",
        "w".repeat(1 << 20)
    )))
    .await;
    let deeply_nested = TestOrigin::start(Behavior::Page(format!(
        "<article>{}deep</article>",
        "<div>".repeat(200_000)
    )))
    .await;
    // One element with 50,000 attributes (a quadratic duplicate check takes
    // minutes on it), then 1,000 elements with 20 each.
    let attribute_heavy = TestOrigin::start(Behavior::Page(format!(
        "<article><div {}>one</div>{}</article>",
        (0..50_000).map(|i| format!("a{i}=x")).collect::<Vec<_>>().join(" "),
        format!(
            "<p {}>many</p>",
            (0..20)
                .map(|i| format!("data-k{i}=\"v{i}\""))
                .collect::<Vec<_>>()
                .join(" ")
        )
        .repeat(1_000)
    )))
    .await;

    let raw = |addr: SocketAddr| format!("http://{addr}");
    let cases: Vec<(String, &str)> = vec![
        (raw(silent), "timeout"),
        (raw(slowloris), "timeout"),
        (raw(closes_mid_body), "connect"),
        (raw(resets), "connect"),
        (raw(endless_chunked), "too_large"),
        (raw(bombs[0]), "too_large"),
        (raw(bombs[1]), "too_large"),
        (raw(bombs[2]), "too_large"),
        (long_chain.url(), "redirect_loop"),
        (short_chain.url(), "ok"),
        (looping.url(), "redirect_loop"),
        (to_file.url(), "redirected_off_site"),
        (to_private.url(), "redirected_off_site"),
        (server_error.url(), "http_status"),
        (not_found.url(), "http_status"),
        (raw(invalid_utf8), "ok"),
        (wrong_charset.url(), "ok"),
        (one_long_line.url(), "ok"),
        (deeply_nested.url(), "ok"),
        (attribute_heavy.url(), "ok"),
        ("http://mirror.invalid".to_string(), "dns"),
    ];
    let config = dir.path().join("mirrorgate.toml");
    write_config(
        &config,
        &dir.path().join("s.db"),
        &format!(
            "interval = \"1h\"\ntimeout = \"{}s\"\nper_host_rate = 100\nmax_body = \"5MiB\"\nconcurrency = 64",
            PROBE_TIMEOUT.as_secs()
        ),
        &[SiteSpec::new(
            "news",
            healthy.url(),
            cases.iter().map(|(url, _)| url.clone()).collect(),
            vec![ARTICLE],
        )
        .extra("content_selector = \"article\"")],
    );
    let started = Instant::now();
    let daemon = Daemon::start(&config);
    rounds_completed(&daemon, 1).await;
    let round = started.elapsed();
    let detail = get_json(&daemon.url("/status/news")).await;
    let bases = bases_of(&detail, ARTICLE);
    let outcomes: HashMap<&str, &str> = cases
        .iter()
        .map(|(url, _)| (url.as_str(), bases[url]["outcome"].as_str().unwrap_or("null")))
        .collect();
    for (url, want) in &cases {
        assert_eq!(
            outcomes[url.as_str()],
            *want,
            "{url} (expected {want}): {:#}",
            bases[url]
        );
    }
    assert_eq!(bases[&long_chain.url()]["http_status"], Value::Null);
    assert_eq!(bases[&server_error.url()]["http_status"], 503);
    assert_eq!(bases[&healthy.url()]["verdict"], "same");
    assert_eq!(
        bases[&short_chain.url()]["verdict"],
        "same",
        "redirects within the base are followed"
    );
    for ok in [
        raw(invalid_utf8),
        wrong_charset.url(),
        one_long_line.url(),
        deeply_nested.url(),
    ] {
        assert!(bases[&ok]["hash"].as_str().unwrap().starts_with("sha256:"), "{ok}");
    }
    assert_eq!(to_private.request_count(), 1, "the private address was never contacted");
    // The slowest possible probe is one timeout: the round ends long before
    // the hanging servers would let go (generous: loaded CI machines).
    assert!(round < HANG - PROBE_TIMEOUT, "round took {round:?}");
    let hwm = rss_high_water_kib(daemon.pid());
    // A figure for the record, not an assertion (timings belong in bench/).
    let healthy_ms = &bases[&healthy.url()]["latency_ms"];
    eprintln!("round {round:?}, healthy base's probe {healthy_ms} ms, daemon peak RSS {hwm} KiB");
    assert!(hwm < 100 * 1024, "peak RSS {hwm} KiB");
}

#[tokio::test]
async fn a_rate_limited_host_is_left_alone_for_its_retry_after_and_is_not_down() {
    let dir = tempfile::tempdir().unwrap();
    let primary = serving(Page::Primary).await;
    let limited = TestOrigin::start(Behavior::RateLimited { retry_after_secs: 3600 }).await;
    let config = dir.path().join("mirrorgate.toml");
    write_config(
        &config,
        &dir.path().join("s.db"),
        "interval = \"300ms\"\nmax_age = \"1m\"\ntimeout = \"2s\"\nper_host_rate = 100",
        &[SiteSpec::new(
            "news",
            primary.url(),
            vec![limited.url()],
            vec![ARTICLE, "/second", "/third"],
        )],
    );
    let daemon = Daemon::start(&config);
    rounds_completed(&daemon, 1).await;
    // Requests already in flight when the first 429 came back are fine;
    // after it, the host hears nothing until its Retry-After has passed.
    let answered = limited.request_count();
    assert!((1..=3).contains(&answered));
    let primary_before = primary.request_count();
    rounds_completed(&daemon, 4).await;
    assert_eq!(limited.request_count(), answered, "silence for the Retry-After");
    // Round 2 may have begun before the count above: one full round is sure.
    assert!(
        primary.request_count() >= primary_before + 3,
        "the other host kept being probed"
    );
    let status = get_json(&daemon.url("/status")).await;
    let mirror = &status["sites"][0]["bases"][1];
    assert_ne!(mirror["state"], "down");
    let detail = get_json(&daemon.url("/status/news")).await;
    assert_eq!(bases_of(&detail, ARTICLE)[&limited.url()]["outcome"], "rate_limited");
}

#[tokio::test]
async fn the_per_host_rate_limit_is_never_exceeded() {
    let dir = tempfile::tempdir().unwrap();
    let primary = TestOrigin::start(Behavior::Status(404)).await;
    let articles: Vec<String> = (0..12).map(|i| format!("/a/{i}")).collect();
    let config = dir.path().join("mirrorgate.toml");
    write_config(
        &config,
        &dir.path().join("s.db"),
        "interval = \"1h\"\ntimeout = \"2s\"\nper_host_rate = 5\nconcurrency = 64",
        &[SiteSpec::new(
            "news",
            primary.url(),
            vec![],
            articles.iter().map(String::as_str).collect(),
        )],
    );
    let daemon = Daemon::start(&config);
    rounds_completed(&daemon, 1).await;
    let times: Vec<Instant> = primary.requests.lock().unwrap().iter().map(|(t, _)| *t).collect();
    assert_eq!(times.len(), 12);
    // 5 per second, no bursts: any 6 consecutive requests span at least a
    // second (less a little for when the server's clock read them).
    for window in times.windows(6) {
        let span = window[5] - window[0];
        assert!(span >= Duration::from_millis(900), "6 requests within {span:?}");
    }
}

/// A CA, and HTTPS origins with certificates of every kind of wrong.
mod tls {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    use tokio_rustls::TlsAcceptor;
    use tokio_rustls::rustls::ServerConfig;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

    pub struct Ca {
        pub pem: String,
        issuer: Issuer<'static, KeyPair>,
    }

    impl Ca {
        pub fn new() -> Self {
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            let key = KeyPair::generate().unwrap();
            let pem = params.self_signed(&key).unwrap().pem();
            Ca {
                pem,
                issuer: Issuer::new(params, key),
            }
        }

        /// A leaf for `names`, signed by this CA, valid `days_valid` from now
        /// (negative: expired).
        pub fn leaf(&self, names: &[&str], expired: bool) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
            let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
            if expired {
                params.not_before = rcgen::date_time_ymd(2020, 1, 1);
                params.not_after = rcgen::date_time_ymd(2021, 1, 1);
            }
            let key = KeyPair::generate().unwrap();
            let cert = params.signed_by(&key, &self.issuer).unwrap();
            (
                cert.der().clone(),
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
        }
    }

    pub fn self_signed(names: &[&str]) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (
            cert.der().clone(),
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
    }

    /// An HTTPS origin on 127.0.0.1 answering every request with `body`.
    pub async fn origin(identity: (CertificateDer<'static>, PrivateKeyDer<'static>), body: String) -> SocketAddr {
        let config = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![identity.0], identity.1)
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (acceptor, body) = (acceptor.clone(), body.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let mut buffer = [0u8; 4096];
                    let _ = tls.read(&mut buffer).await;
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tls.write_all(response.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        addr
    }
}

#[tokio::test]
async fn tls_failures_are_tls_and_a_trusted_certificate_is_ok() {
    let _ = tokio_rustls::rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let ca = tls::Ca::new();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let page = "<article><p>the article</p></article>".to_string();
    let valid = tls::origin(ca.leaf(&["127.0.0.1"], false), page.clone()).await;
    let expired = tls::origin(ca.leaf(&["127.0.0.1"], true), page.clone()).await;
    let wrong_host = tls::origin(ca.leaf(&["other.example"], false), page.clone()).await;
    let self_signed = tls::origin(tls::self_signed(&["127.0.0.1"]), page.clone()).await;
    let https = |addr: SocketAddr| format!("https://{addr}");
    let config = dir.path().join("mirrorgate.toml");
    write_config(
        &config,
        &dir.path().join("s.db"),
        "interval = \"1h\"\ntimeout = \"3s\"\nper_host_rate = 100\nca_file = \"ca.pem\"",
        &[SiteSpec::new(
            "news",
            https(valid),
            vec![https(expired), https(wrong_host), https(self_signed)],
            vec![ARTICLE],
        )],
    );
    let daemon = Daemon::start(&config);
    rounds_completed(&daemon, 1).await;
    let detail = get_json(&daemon.url("/status/news")).await;
    let bases = bases_of(&detail, ARTICLE);
    assert_eq!(bases[&https(valid)]["outcome"], "ok", "{:#}", bases[&https(valid)]);
    for addr in [expired, wrong_host, self_signed] {
        assert_eq!(
            bases[&https(addr)]["outcome"],
            "tls",
            "{addr}: {:#}",
            bases[&https(addr)]
        );
    }
}
