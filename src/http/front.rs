//! The connection loop readers reach first.
//!
//! A reader's redirect is the one request that must be fast, and most of
//! its cost in a general HTTP stack is the stack (routing, header maps,
//! boxed futures, a dozen small allocations), not the decision. So every
//! connection starts here: requests are parsed with `httparse`, and a
//! `GET`/`HEAD` of `/r/...` or `/go?url=...` whose decision is a redirect
//! is answered from the snapshot straight into the socket's write buffer,
//! pipelined requests in one write.
//!
//! Anything else — operators' endpoints, errors and 503 pages, requests
//! with a body, `Expect`, absolute-form targets, oversized or malformed
//! requests — hands the connection, with the bytes already read, to hyper
//! and the axum router, which keep every limit and answer as before. The
//! two paths give the same answer for the same request: the fast one only
//! writes the 302s the router would write.

use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BytesMut};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::Watcher;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::http::server::{AppState, MAX_HEADERS, MAX_URI_BYTES, http1_builder};
use crate::route::{self, Decision, ReaderPlace};

/// What a connection needs besides its socket.
#[derive(Clone)]
pub struct Front {
    pub state: AppState,
    pub router: axum::Router,
}

/// Answers of pipelined requests are written once this much is waiting,
/// before more requests are parsed: a reader that pipelines without reading
/// cannot make the daemon hold its answers.
const MAX_PENDING_OUTPUT: usize = 64 * 1024;

/// What the fast path made of one parsed request.
enum Answer {
    /// Written to the output; keep the connection open or not.
    Written { keep_alive: bool },
    /// Not a fast-path request: hyper takes the connection from here.
    HandOff,
}

impl Front {
    /// Serves one connection until the peer closes it, the header timeout
    /// passes, `shutdown` fires between requests, or it is handed to hyper.
    pub async fn serve(self, mut stream: TcpStream, watcher: Watcher, shutdown: CancellationToken) {
        let timeout = self.state.settings.load().header_timeout;
        let peer = stream.peer_addr().ok();
        let mut input = BytesMut::with_capacity(4096);
        let mut output = Vec::with_capacity(1024);
        // When the request being waited for must be complete. Set at the
        // first wait for it, so a trickle of bytes does not renew it.
        let mut deadline = None;
        loop {
            // Answer every complete request read so far, in order.
            let mut handed_off = false;
            let mut keep_alive = true;
            while keep_alive && output.len() < MAX_PENDING_OUTPUT {
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut request = httparse::Request::new(&mut headers);
                match request.parse(&input) {
                    Ok(httparse::Status::Complete(length)) => match self.answer(&request, peer, &mut output) {
                        Answer::Written { keep_alive: keep } => {
                            input.advance(length);
                            keep_alive = keep;
                            deadline = None;
                        }
                        Answer::HandOff => {
                            handed_off = true;
                            break;
                        }
                    },
                    Ok(httparse::Status::Partial) => break,
                    // hyper answers malformed requests (and too many headers) itself.
                    Err(_) => {
                        handed_off = true;
                        break;
                    }
                }
            }
            // Stopped at the bound with requests still to answer: write, then go on.
            let more_waiting = keep_alive && !handed_off && output.len() >= MAX_PENDING_OUTPUT;
            if !output.is_empty() {
                // A reader that does not take its answer within the timeout
                // loses the connection, and shutdown does not wait for it.
                let written = tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => return,
                    written = tokio::time::timeout(timeout, stream.write_all(&output)) => written,
                };
                match written {
                    Ok(Ok(())) => output.clear(),
                    Ok(Err(_)) => return,
                    Err(_) => {
                        self.state.counters.writes_timed_out.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
            }
            if more_waiting {
                continue;
            }
            if !keep_alive {
                let _ = stream.shutdown().await;
                return;
            }
            // A partial request past the URI limit goes to hyper for its 414/431.
            if handed_off || input.len() > MAX_URI_BYTES {
                return self.hand_off(stream, peer, input, watcher).await;
            }
            let until = *deadline.get_or_insert_with(|| tokio::time::Instant::now() + timeout);
            if input.capacity() - input.len() < 1024 {
                input.reserve(4096);
            }
            let read = tokio::select! {
                biased;
                _ = shutdown.cancelled() => return,
                read = tokio::time::timeout_at(until, stream.read_buf(&mut input)) => read,
            };
            match read {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
                Ok(Ok(_)) => {}
            }
        }
    }

    async fn hand_off(self, stream: TcpStream, peer: Option<std::net::SocketAddr>, read: BytesMut, watcher: Watcher) {
        let timeout = self.state.settings.load().header_timeout;
        let router = self.router.layer(axum::middleware::map_request(
            move |mut request: axum::extract::Request| async move {
                if let Some(peer) = peer {
                    request.extensions_mut().insert(crate::http::server::Peer(peer));
                }
                request
            },
        ));
        let service = TowerToHyperService::new(router);
        let io = Replay {
            read,
            stream,
            write_timeout: timeout,
            write_deadline: None,
            counters: self.state.counters.clone(),
        };
        // Client errors (resets, timeouts, bad requests) end only this connection.
        let _ = watcher
            .watch(http1_builder(timeout).serve_connection(TokioIo::new(io), service))
            .await;
    }

    fn answer(
        &self,
        request: &httparse::Request<'_, '_>,
        peer: Option<std::net::SocketAddr>,
        output: &mut Vec<u8>,
    ) -> Answer {
        let (Some(method), Some(target), Some(version)) = (request.method, request.path, request.version) else {
            return Answer::HandOff;
        };
        // A target that needs percent-encoding is the router's to encode.
        if !matches!(method, "GET" | "HEAD")
            || target.len() > MAX_URI_BYTES
            || target.contains('#')
            || !route::target_is_canonical(target)
        {
            return Answer::HandOff;
        }
        let http10 = version == 0;
        // As hyper decides it: HTTP/1.1 stays open unless any `Connection`
        // field lists `close`; HTTP/1.0 closes unless one lists `keep-alive`,
        // and a `close` anywhere wins over a `keep-alive` before or after it.
        let mut keep_alive = !http10;
        let mut saw_close = false;
        let mut accepts_html = false;
        for header in request.headers.iter() {
            let name = header.name;
            if name.eq_ignore_ascii_case("accept") {
                accepts_html |= header.value.windows(9).any(|w| w.eq_ignore_ascii_case(b"text/html"));
            } else if name.eq_ignore_ascii_case("content-length") {
                if header.value != b"0" {
                    return Answer::HandOff;
                }
            } else if name.eq_ignore_ascii_case("transfer-encoding")
                || name.eq_ignore_ascii_case("expect")
                || name.eq_ignore_ascii_case("upgrade")
            {
                return Answer::HandOff;
            } else if name.eq_ignore_ascii_case("connection") {
                let Ok(value) = std::str::from_utf8(header.value) else {
                    return Answer::HandOff;
                };
                if !value.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b)) {
                    return Answer::HandOff;
                }
                let has = |token: &str| value.split(',').any(|t| t.trim().eq_ignore_ascii_case(token));
                if saw_close || has("close") {
                    saw_close = true;
                    keep_alive = false;
                } else if !keep_alive {
                    keep_alive = has("keep-alive");
                }
            }
        }
        // hyper remembers an HTTP/1.0 peer that keeps the connection and
        // answers its later requests (even malformed ones) as HTTP/1.0; a
        // fresh hyper connection after a hand-off would not. Such peers are
        // rare (old tools), so they are hyper's from the start.
        if http10 && keep_alive {
            return Answer::HandOff;
        }
        let version = if http10 { Version::Http10 } else { Version::Http11 };
        let (path, query) = match target.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (target, None),
        };
        let snapshot = self.state.snapshots.load();
        let view = self.state.countries.load();
        // A country is only looked up when agents report on some country.
        let reports = self.state.reports.active();
        let place = if view.routes.is_empty() && !reports {
            ReaderPlace::default()
        } else {
            let fields = request.headers.iter().map(|h| (h.name, h.value));
            ReaderPlace {
                view: Some(&view),
                country: self.state.reader_country(peer.map(|p| p.ip()), fields),
                reports: Some(&self.state.reports),
            }
        };
        if let Some(rest) = path.strip_prefix("/r/") {
            // Browsers get the reader-side probe page: the router's to write.
            if accepts_html && self.state.settings.load().reader_probe {
                return Answer::HandOff;
            }
            let (Ok(site), article) = route::split_site(rest) else {
                return Answer::HandOff;
            };
            let Some(&site_index) = snapshot.catalog.by_name.get(site.as_ref()) else {
                return Answer::HandOff;
            };
            // The common case, without building a Decision's strings.
            match route::candidates_for(&snapshot, site_index, article, query) {
                Ok(candidates) => {
                    let bases = &snapshot.catalog.sites[site_index].bases;
                    let demoted = place.demoted(site_index, bases.len());
                    let mut urls = candidates
                        .ordered(place.routes(site_index), demoted.as_deref())
                        .map(|b| Url {
                            base: bases[b].as_str(),
                            path: article,
                            query,
                        });
                    self.written(output, urls.next(), urls, version, keep_alive, method == "HEAD")
                }
                Err(_) => Answer::HandOff,
            }
        } else if path == "/go" {
            let url = route::url_parameter(query);
            let Decision::Redirect { location, alternates } = route::go_from(&snapshot, place, url.as_deref()) else {
                return Answer::HandOff;
            };
            let location = Url::whole(&location);
            self.written(
                output,
                Some(location),
                alternates.iter().map(|a| Url::whole(a)),
                version,
                keep_alive,
                method == "HEAD",
            )
        } else {
            Answer::HandOff
        }
    }

    fn written<'u>(
        &self,
        output: &mut Vec<u8>,
        location: Option<Url<'u>>,
        alternates: impl Iterator<Item = Url<'u>>,
        version: Version,
        keep_alive: bool,
        head: bool,
    ) -> Answer {
        let Some(location) = location else {
            return Answer::HandOff;
        };
        self.state.counters.redirects_served.fetch_add(1, Ordering::Relaxed);
        write_redirect(output, location, alternates, version, keep_alive, head);
        Answer::Written { keep_alive }
    }
}

/// A URL in pieces, written without being assembled first. `route` has
/// checked that the pieces hold no byte a header value cannot.
struct Url<'a> {
    base: &'a str,
    path: &'a str,
    query: Option<&'a str>,
}

impl<'a> Url<'a> {
    fn whole(url: &'a str) -> Self {
        Url {
            base: "",
            path: url,
            query: None,
        }
    }

    fn write(&self, output: &mut Vec<u8>) {
        output.extend_from_slice(self.base.as_bytes());
        output.extend_from_slice(self.path.as_bytes());
        if let Some(query) = self.query {
            output.push(b'?');
            output.extend_from_slice(query.as_bytes());
        }
    }
}

/// The request's HTTP version, which the answer's status line and
/// connection header follow (as hyper's do).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Version {
    Http10,
    Http11,
}

fn write_redirect<'u>(
    output: &mut Vec<u8>,
    location: Url<'u>,
    alternates: impl Iterator<Item = Url<'u>>,
    version: Version,
    keep_alive: bool,
    head: bool,
) {
    output.extend_from_slice(match version {
        Version::Http10 => b"HTTP/1.0 302 Found\r\nlocation: ",
        Version::Http11 => b"HTTP/1.1 302 Found\r\nlocation: ",
    });
    location.write(output);
    output.extend_from_slice(b"\r\ncache-control: private, max-age=30\r\n");
    for alternate in alternates {
        output.extend_from_slice(b"link: <");
        alternate.write(output);
        output.extend_from_slice(b">; rel=duplicate\r\n");
    }
    // Byte for byte as hyper writes it behind the router: the connection
    // field it decided goes before `content-length`, except for HEAD, where
    // axum has already put `content-length` in the header map.
    let connection: &[u8] = match (version, keep_alive) {
        (Version::Http11, false) => b"connection: close\r\n",
        (Version::Http10, true) => b"connection: keep-alive\r\n",
        _ => b"",
    };
    if head {
        output.extend_from_slice(b"content-length: 0\r\n");
        output.extend_from_slice(connection);
    } else {
        output.extend_from_slice(connection);
        output.extend_from_slice(b"content-length: 0\r\n");
    }
    output.extend_from_slice(b"date: ");
    DATE.with(|date| output.extend_from_slice(&date.now()));
    output.extend_from_slice(b"\r\n\r\n");
}

/// The `Date` header, formatted once per second per thread.
struct CachedDate {
    second: std::cell::Cell<u64>,
    text: std::cell::Cell<[u8; 29]>,
}

thread_local! {
    static DATE: CachedDate = const {
        CachedDate {
            second: std::cell::Cell::new(u64::MAX),
            text: std::cell::Cell::new([b' '; 29]),
        }
    };
}

impl CachedDate {
    fn now(&self) -> [u8; 29] {
        let now = SystemTime::now();
        let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if second != self.second.get() {
            let mut text = [b' '; 29];
            let formatted = httpdate::fmt_http_date(now);
            let n = formatted.len().min(29);
            text[..n].copy_from_slice(&formatted.as_bytes()[..n]);
            self.text.set(text);
            self.second.set(second);
        }
        self.text.get()
    }
}

/// A socket whose first bytes were already read: they are read again
/// before the socket's own. Its writes fail once one has waited for the
/// reader longer than `write_timeout`, which hyper has no setting for.
struct Replay {
    read: BytesMut,
    stream: TcpStream,
    write_timeout: Duration,
    write_deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    counters: std::sync::Arc<crate::http::metrics::Counters>,
}

impl Replay {
    /// Ready with an error once a write has been blocked past the timeout.
    fn write_stalled(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let timeout = self.write_timeout;
        let deadline = self
            .write_deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match deadline.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.counters.writes_timed_out.fetch_add(1, Ordering::Relaxed);
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the reader did not take the answer in time",
                )))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for Replay {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.read.is_empty() {
            return Pin::new(&mut self.stream).poll_read(cx, buf);
        }
        let n = self.read.len().min(buf.remaining());
        buf.put_slice(&self.read[..n]);
        self.read.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Replay {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.stream).poll_write(cx, buf) {
            Poll::Pending => self.write_stalled(cx).map(|r| r.map(|()| 0)),
            ready => {
                self.write_deadline = None;
                ready
            }
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.stream).poll_write_vectored(cx, bufs) {
            Poll::Pending => self.write_stalled(cx).map(|r| r.map(|()| 0)),
            ready => {
                self.write_deadline = None;
                ready
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The fast path against hyper and the router, on real sockets: the same
/// bytes sent to a connection that starts in [`Front::serve`] and to one
/// handed to hyper from its first byte must get the same answers.
#[cfg(test)]
mod differential {
    use super::*;
    use proptest::prelude::*;
    use std::sync::Arc;
    use tokio::net::TcpListener;

    fn front() -> Front {
        let settings = crate::http::server::ServerSettings {
            status_token: None,
            header_timeout: Duration::from_secs(5),
            max_connections: 64,
            error_pages: Default::default(),
            trusted_proxies: Arc::from([]),
            reader_probe: false,
        };
        let state = AppState::new(
            Arc::new(arc_swap::ArcSwap::new(crate::state::fixtures::sample_snapshot())),
            settings,
        );
        Front {
            router: crate::http::router::router(state.clone()),
            state,
        }
    }

    /// Sends `request` on a new connection served by the fast path or by
    /// hyper alone, and returns everything written back until the close.
    async fn exchange(fast: bool, request: &[u8]) -> Vec<u8> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let watcher = graceful.watcher();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            if fast {
                front().serve(stream, watcher, CancellationToken::new()).await;
            } else {
                front().hand_off(stream, None, BytesMut::new(), watcher).await;
            }
        });
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.write_all(request).await.unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut answer)).await;
        server.abort();
        answer
    }

    /// Each answer's `date` value is the clock's, not the path's.
    fn without_dates(answer: &[u8]) -> String {
        String::from_utf8_lossy(answer)
            .split("\r\n")
            .map(|line| if line.starts_with("date: ") { "date: *" } else { line })
            .collect::<Vec<_>>()
            .join("\r\n")
    }

    const TARGETS: &[&str] = &[
        "/r/news/a",
        "/r/news/a?x=1",
        "/r/news/q?id=1",
        "/r/news/Detail/2017/01/24/507408/Trump-Russia-Daesh",
        "/r/news/a%3E;rel=preload",
        "/r/news/a|b",
        "/r/news/a%zz",
        "/r/news/a\"b",
        "/r/news/{x}",
        "/r/news/a^b`c",
        "/r/news/a?q=<x>",
        "/r/news/caf\u{e9}",
        "/r/news/a?q=\u{e9}",
        "/r/news/a%20b",
        "/r/news//a",
        "/r/news",
        "/r/news/",
        "/r/%6Eews/a",
        "/r/other/x",
        "/r/nope/a",
        "/go?url=https://www.example.com/a",
        "/go?url=https%3A%2F%2Fwww.example.com%2Fa%3Fx%3D1",
        "/go?url=https://www.example.com/a|b",
        "/go?url=https://evil.example/a",
        "/go",
        "/healthz",
        "/nothing",
        "http://www.example.com/r/news/a",
        "*",
    ];
    const METHODS: &[&str] = &["GET", "HEAD", "POST", "OPTIONS", "get"];
    const CONNECTION: &[&[&str]] = &[
        &[],
        &["close"],
        &["keep-alive"],
        &["Keep-Alive"],
        &["keep-alive, close"],
        &["close, keep-alive"],
        &["keep-alive", "close"],
        &["close", "keep-alive"],
        &["TE, keep-alive"],
        &["Upgrade"],
        &[" keep-alive "],
        &["keepalive"],
    ];

    fn request() -> impl Strategy<Value = String> {
        (
            prop::sample::select(METHODS),
            prop::sample::select(TARGETS),
            prop::bool::ANY,
            prop::sample::select(CONNECTION),
            prop::bool::ANY,
        )
            .prop_map(|(method, target, http10, connection, body)| {
                let mut request = format!(
                    "{method} {target} HTTP/1.{}\r\nHost: gate.example\r\n",
                    if http10 { 0 } else { 1 }
                );
                for value in connection {
                    request.push_str(&format!("Connection: {value}\r\n"));
                }
                if body {
                    request.push_str("Content-Length: 0\r\n");
                }
                request.push_str("\r\n");
                request
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

        #[test]
        fn both_paths_give_the_same_answers(batch in prop::collection::vec(request(), 1..4)) {
            // A closing request last, so both connections end without a wait.
            let mut bytes = batch.concat();
            bytes.push_str("GET /healthz HTTP/1.1\r\nHost: gate.example\r\nConnection: close\r\n\r\n");
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let (fast, routed) = runtime.block_on(async {
                (exchange(true, bytes.as_bytes()).await, exchange(false, bytes.as_bytes()).await)
            });
            prop_assert_eq!(without_dates(&fast), without_dates(&routed), "for {:?}", bytes);
        }
    }

    #[tokio::test]
    async fn http10_keep_alive_is_echoed_and_the_connection_stays() {
        let request = b"GET /r/news/a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /r/news/a HTTP/1.0\r\n\r\n";
        let fast = without_dates(&exchange(true, request).await);
        assert_eq!(fast, without_dates(&exchange(false, request).await));
        assert_eq!(fast.matches("HTTP/1.0 302 Found").count(), 2, "{fast}");
        assert_eq!(fast.matches("connection: keep-alive").count(), 1, "{fast}");
    }
}
