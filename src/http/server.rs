//! The server: what every handler shares ([`AppState`]) and the accept
//! loop that hands connections to [`Front`](crate::http::front::Front).
//!
//! Connections are served by our own accept loop over hyper's HTTP/1
//! builder rather than `axum::serve`, because readers are strangers: the
//! loop bounds how long request headers may take, how many there may be
//! and how long the URI may be.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use arc_swap::ArcSwap;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::TokioTimer;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Secret;
use crate::http::front::Front;
use crate::http::metrics::Counters;
use crate::http::router::router;
use crate::state::snapshot::Snapshots;
use crate::store::StoreHealth;
use crate::vantage::view::VantageView;

/// Longer URIs are refused with 414 (hyper itself refuses past 64 KiB).
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// More request headers than this are refused with 431.
pub const MAX_HEADERS: usize = 64;

/// hyper's read buffer: large enough that URIs up to its own 64 KiB limit
/// get a 414 rather than a 431.
const READ_BUFFER_BYTES: usize = 128 * 1024;

/// What every handler can reach: the current snapshot and the counters.
#[derive(Clone)]
pub struct AppState {
    pub snapshots: Snapshots,
    pub evidence: crate::state::engine::Evidence,
    pub counters: Arc<Counters>,
    pub store: Option<Arc<StoreHealth>>,
    /// The `[server]` settings a reload swaps in; read per connection.
    pub settings: Arc<ArcSwap<ServerSettings>>,
    /// Whether the daemon's loops are turning, for `/healthz`.
    pub liveness: Option<Arc<crate::state::liveness::Heartbeat>>,
    /// The readers' country database.
    pub geo: crate::vantage::geoip::Geo,
    /// What agents see from each country (empty without agents).
    pub countries: Arc<ArcSwap<VantageView>>,
    /// The agents' endpoints, when agents are configured.
    pub vantage: Option<crate::vantage::Vantage>,
    /// Readers' reports of bases that failed them (`/p/report`).
    pub reports: Arc<crate::vantage::reports::ReaderReports>,
    /// Each site's last discovery run, and the articles it found.
    pub discovery: crate::discover::task::DiscoveryStatus,
    pub discovered: crate::discover::task::Discovered,
    /// When each mirror was first listed in `/mirrors.json`.
    pub listed: Arc<crate::http::mirror_list::ListedSince>,
    /// Each alert sink's delivered / failed / dropped counts.
    pub alerts: crate::alert::Counters,
}

/// The part of `[server]` that takes effect on reload.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Required as a bearer token on the operators' endpoints, if set.
    pub status_token: Option<Secret>,
    /// For a request's headers, and for a reader to take each answer.
    pub header_timeout: Duration,
    pub max_connections: usize,
    pub error_pages: crate::http::pages::ErrorPages,
    /// Proxies whose forwarding headers name the reader.
    pub trusted_proxies: Arc<[ipnet::IpNet]>,
    /// `/r/` answers browsers with the reader-side probe page.
    pub reader_probe: bool,
}

impl ServerSettings {
    pub fn from_config(server: &crate::config::ServerConfig) -> Self {
        ServerSettings {
            status_token: server.status_token.clone(),
            header_timeout: server.request_header_timeout,
            max_connections: server.max_connections,
            error_pages: crate::http::pages::ErrorPages::load(server.error_page_dir.as_deref()),
            trusted_proxies: server.trusted_proxies.clone().into(),
            reader_probe: server.reader_probe,
        }
    }
}

impl AppState {
    /// State for tests and tools that serve a fixed snapshot.
    pub fn new(snapshots: Snapshots, settings: ServerSettings) -> Self {
        AppState {
            snapshots,
            evidence: Default::default(),
            counters: Default::default(),
            store: None,
            settings: Arc::new(ArcSwap::from_pointee(settings)),
            liveness: None,
            geo: Default::default(),
            countries: Default::default(),
            vantage: None,
            reports: Default::default(),
            discovery: Default::default(),
            discovered: Default::default(),
            listed: Default::default(),
            alerts: Default::default(),
        }
    }

    /// Where the reader of a request from `peer` with these headers is.
    pub fn reader_country<'h>(
        &self,
        peer: Option<std::net::IpAddr>,
        headers: impl Iterator<Item = (&'h str, &'h [u8])> + Clone,
    ) -> Option<crate::country::Country> {
        let peer = peer?;
        let settings = self.settings.load();
        crate::http::reader::reader_country(peer, &settings.trusted_proxies, headers, &self.geo.load())
    }
}

/// The socket's peer, which hyper-served requests carry as an extension.
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub std::net::SocketAddr);

/// Serves on `listener` until `shutdown`, then lets requests in progress
/// finish (up to five seconds). Connections start in [`Front`], which
/// answers readers' redirects itself and hands the rest to the router.
/// At most `max_connections` are open at once: past it, a new connection
/// gets a 503 with `Retry-After` (written only if the socket takes it at
/// once) and is closed, so a flood costs a file descriptor for a moment,
/// not memory or a task.
pub async fn serve(listener: TcpListener, state: AppState, shutdown: CancellationToken) -> std::io::Result<()> {
    let front = Front {
        router: router(state.clone()),
        state: state.clone(),
    };
    let graceful = GracefulShutdown::new();
    let mut last_refusal_logged: Option<std::time::Instant> = None;
    loop {
        let (stream, _) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, most likely: back off, do not spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let limit = state.settings.load().max_connections;
        let Some(open) = OpenConnection::try_new(&state.counters, limit) else {
            state.counters.connections_refused.fetch_add(1, Ordering::Relaxed);
            let _ = stream.try_write(OVER_CAPACITY);
            if last_refusal_logged.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
                last_refusal_logged = Some(std::time::Instant::now());
                tracing::warn!(
                    max_connections = limit,
                    "reader connections at server.max_connections; refusing new ones with 503 (logged once a minute)"
                );
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let front = front.clone();
        let watcher = graceful.watcher();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            front.serve(stream, watcher, shutdown).await;
            drop(open);
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(5)) => {}
    }
    Ok(())
}

/// What a connection past `max_connections` is told before it is closed.
const OVER_CAPACITY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\nretry-after: 1\r\ncache-control: no-store\r\nconnection: close\r\ncontent-length: 44\r\n\r\ntoo many open connections; retry in a second";

/// One open reader connection, counted until dropped.
struct OpenConnection(Arc<Counters>);

impl OpenConnection {
    fn try_new(counters: &Arc<Counters>, limit: usize) -> Option<Self> {
        let open = &counters.connections_open;
        let mut current = open.load(Ordering::Relaxed);
        loop {
            if current >= limit {
                return None;
            }
            match open.compare_exchange_weak(current, current + 1, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return Some(OpenConnection(counters.clone())),
                Err(actual) => current = actual,
            }
        }
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.connections_open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// hyper's HTTP/1 settings for a connection handed to it.
pub fn http1_builder(header_timeout: Duration) -> http1::Builder {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_headers(MAX_HEADERS)
        .max_buf_size(READ_BUFFER_BYTES);
    http
}
