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
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::Watcher;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::route::{self, Decision};
use crate::serve::{AppState, MAX_HEADERS, MAX_URI_BYTES};

/// What a connection needs besides its socket.
#[derive(Clone)]
pub struct Front {
    pub state: AppState,
    pub router: axum::Router,
    pub http: http1::Builder,
    pub header_timeout: Duration,
}

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
        let mut input = BytesMut::with_capacity(4096);
        let mut output = Vec::with_capacity(1024);
        // When the request being waited for must be complete. Set at the
        // first wait for it, so a trickle of bytes does not renew it.
        let mut deadline = None;
        loop {
            // Answer every complete request read so far, in order.
            let mut handed_off = false;
            let mut keep_alive = true;
            while keep_alive {
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut request = httparse::Request::new(&mut headers);
                match request.parse(&input) {
                    Ok(httparse::Status::Complete(length)) => match self.answer(&request, &mut output) {
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
            if !output.is_empty() {
                if stream.write_all(&output).await.is_err() {
                    return;
                }
                output.clear();
            }
            if !keep_alive {
                let _ = stream.shutdown().await;
                return;
            }
            // A partial request past the URI limit goes to hyper for its 414/431.
            if handed_off || input.len() > MAX_URI_BYTES {
                return self.hand_off(stream, input, watcher).await;
            }
            let until = *deadline.get_or_insert_with(|| tokio::time::Instant::now() + self.header_timeout);
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

    async fn hand_off(self, stream: TcpStream, read: BytesMut, watcher: Watcher) {
        let service = TowerToHyperService::new(self.router);
        let io = Replay { read, stream };
        // Client errors (resets, timeouts, bad requests) end only this connection.
        let _ = watcher
            .watch(self.http.serve_connection(TokioIo::new(io), service))
            .await;
    }

    fn answer(&self, request: &httparse::Request<'_, '_>, output: &mut Vec<u8>) -> Answer {
        let (Some(method), Some(target), Some(version)) = (request.method, request.path, request.version) else {
            return Answer::HandOff;
        };
        if !matches!(method, "GET" | "HEAD") || target.len() > MAX_URI_BYTES || target.contains('#') {
            return Answer::HandOff;
        }
        let mut keep_alive = version == 1;
        for header in request.headers.iter() {
            let name = header.name;
            if name.eq_ignore_ascii_case("content-length") {
                if header.value != b"0" {
                    return Answer::HandOff;
                }
            } else if name.eq_ignore_ascii_case("transfer-encoding") || name.eq_ignore_ascii_case("expect") {
                return Answer::HandOff;
            } else if name.eq_ignore_ascii_case("connection") {
                let value = header.value;
                if value.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if value.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive = true;
                } else {
                    return Answer::HandOff;
                }
            }
        }
        let (path, query) = match target.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (target, None),
        };
        let snapshot = self.state.snapshots.load();
        if let Some(rest) = path.strip_prefix("/r/") {
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
                    let mut urls = candidates.iter().map(|b| Url {
                        base: bases[b].as_str(),
                        path: article,
                        query,
                    });
                    self.written(output, urls.next(), urls, keep_alive)
                }
                Err(_) => Answer::HandOff,
            }
        } else if path == "/go" {
            let url = route::url_parameter(query);
            let Decision::Redirect { location, alternates } = route::go(&snapshot, url.as_deref()) else {
                return Answer::HandOff;
            };
            let location = Url::whole(&location);
            self.written(
                output,
                Some(location),
                alternates.iter().map(|a| Url::whole(a)),
                keep_alive,
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
        keep_alive: bool,
    ) -> Answer {
        let Some(location) = location else {
            return Answer::HandOff;
        };
        self.state.counters.redirects_served.fetch_add(1, Ordering::Relaxed);
        write_redirect(output, location, alternates, keep_alive);
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

fn write_redirect<'u>(
    output: &mut Vec<u8>,
    location: Url<'u>,
    alternates: impl Iterator<Item = Url<'u>>,
    keep_alive: bool,
) {
    output.extend_from_slice(b"HTTP/1.1 302 Found\r\nlocation: ");
    location.write(output);
    output.extend_from_slice(b"\r\ncache-control: private, max-age=30\r\n");
    for alternate in alternates {
        output.extend_from_slice(b"link: <");
        alternate.write(output);
        output.extend_from_slice(b">; rel=duplicate\r\n");
    }
    if !keep_alive {
        output.extend_from_slice(b"connection: close\r\n");
    }
    output.extend_from_slice(b"content-length: 0\r\ndate: ");
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
/// before the socket's own.
struct Replay {
    read: BytesMut,
    stream: TcpStream,
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
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
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
