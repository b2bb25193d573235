//! The HTTP front: readers' redirects (`/r/...`, `/go`), operators' status
//! (`/status`, `/status/{site}`) and `/healthz`.
//!
//! Handlers read the current snapshot (one atomic load) and turn a
//! [`Decision`] into a response; they never wait on the prober or the store.
//!
//! Connections are served by our own accept loop over hyper's HTTP/1
//! builder rather than `axum::serve`, because readers are strangers: the
//! loop bounds how long request headers may take, how many there may be
//! and how long the URI may be.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use arc_swap::ArcSwap;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper::server::conn::http1;
use hyper_util::rt::TokioTimer;
use hyper_util::server::graceful::GracefulShutdown;
use serde::Serialize;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::clock::now_ms;
use crate::config::Secret;
use crate::http::front::Front;
use crate::http::metrics::Counters;
use crate::http::status;
use crate::route::{self, Decision, ReaderPlace};
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

pub fn router(state: AppState) -> Router {
    let operators = Router::new()
        .route("/", get(status_page))
        .route("/status", get(overview))
        .route("/status/{site}", get(site_status))
        .route("/status/{site}/evidence", get(evidence))
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/r/{*rest}", get(redirect))
        .route("/go", get(go))
        .route(
            crate::http::reader_probe::REPORT_PATH,
            axum::routing::post(reader_report).layer(axum::extract::DefaultBodyLimit::max(
                crate::http::reader_probe::MAX_REPORT_BYTES,
            )),
        )
        .route("/p/{*rest}", get(probe_page))
        .route(crate::vantage::protocol::WORK_PATH, get(crate::http::agents::work))
        .route(
            crate::vantage::protocol::RESULTS_PATH,
            axum::routing::post(crate::http::agents::results).layer(axum::extract::DefaultBodyLimit::max(
                crate::http::agents::MAX_RESULTS_BODY,
            )),
        )
        .route("/healthz", get(healthz))
        .route("/mirrors.json", get(mirror_list))
        .route("/openapi.json", get(openapi))
        .merge(operators)
        .fallback(not_found)
        .layer(middleware::from_fn(limit_uri))
        .with_state(state)
}

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

async fn limit_uri(request: Request, next: Next) -> Response {
    let length = request.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if length > MAX_URI_BYTES {
        return error(
            StatusCode::URI_TOO_LONG,
            format!("the URI is {length} bytes; at most {MAX_URI_BYTES} are accepted"),
            None,
        );
    }
    next.run(request).await
}

async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let settings = state.settings.load();
    let Some(expected) = &settings.status_token else {
        return next.run(request).await;
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .unwrap_or("");
    // Constant time, so the comparison does not tell how much of a guess was right.
    if bool::from(presented.as_bytes().ct_eq(expected.expose().as_bytes())) {
        return next.run(request).await;
    }
    let mut response = error(StatusCode::UNAUTHORIZED, "a bearer token is required".into(), None);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"mirrorgate\""),
    );
    response
}

/// The credentials of `Authorization: Bearer <token>`; the scheme is
/// case-insensitive (RFC 9110 §11.1), with one or more spaces after it.
pub(crate) fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, rest) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim_start_matches(' '))
}

/// The reader's place for a request hyper parsed.
fn place_of<'v>(
    state: &'v AppState,
    peer: Option<&Peer>,
    headers: &HeaderMap,
    view: &'v VantageView,
) -> ReaderPlace<'v> {
    if view.routes.is_empty() && !state.reports.active() {
        return ReaderPlace::default();
    }
    let fields: Vec<(&str, &[u8])> = headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_bytes()))
        .collect();
    ReaderPlace {
        view: Some(view),
        country: state.reader_country(peer.map(|p| p.0.ip()), fields.iter().copied()),
        reports: Some(&state.reports),
    }
}

async fn redirect(
    State(state): State<AppState>,
    peer: Option<axum::Extension<Peer>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    // The raw path, not axum's decoded one: the reader's path and query are
    // passed on exactly as sent.
    let rest = uri.path().strip_prefix("/r/").unwrap_or("");
    let (site, path) = route::split_site(rest);
    if state.settings.load().reader_probe && wants_html(&headers) {
        return probe_page_for(&state, peer.as_deref(), &headers, rest, uri.query());
    }
    let view = state.countries.load();
    let place = place_of(&state, peer.as_deref(), &headers, &view);
    let decision = match site {
        Ok(site) => route::redirect_from(&state.snapshots.load(), place, &site, path, uri.query()),
        Err(_) => Decision::BadRequest {
            parameter: "site",
            message: "the site name is not valid UTF-8".into(),
        },
    };
    respond(decision, &headers, &state)
}

async fn go(
    State(state): State<AppState>,
    peer: Option<axum::Extension<Peer>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let url = route::url_parameter(uri.query());
    let view = state.countries.load();
    let place = place_of(&state, peer.as_deref(), &headers, &view);
    respond(
        route::go_from(&state.snapshots.load(), place, url.as_deref()),
        &headers,
        &state,
    )
}

/// `GET /p/{site}/{path}`: the reader-side probe page for `/r/{site}/{path}`.
async fn probe_page(
    State(state): State<AppState>,
    peer: Option<axum::Extension<Peer>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let rest = uri.path().strip_prefix("/p/").unwrap_or("");
    probe_page_for(&state, peer.as_deref(), &headers, rest, uri.query())
}

/// The probe page when there are candidates to try and it fits; else
/// whatever `/r/` answers (the 302, the 503, the 400).
fn probe_page_for(
    state: &AppState,
    peer: Option<&Peer>,
    headers: &HeaderMap,
    rest: &str,
    query: Option<&str>,
) -> Response {
    let (site, path) = route::split_site(rest);
    let Ok(site) = site else {
        let decision = Decision::BadRequest {
            parameter: "site",
            message: "the site name is not valid UTF-8".into(),
        };
        return respond(decision, headers, state);
    };
    let snapshot = state.snapshots.load();
    let view = state.countries.load();
    let place = place_of(state, peer, headers, &view);
    let decision = route::redirect_from(&snapshot, place, &site, path, query);
    let Decision::Redirect { location, alternates } = &decision else {
        return respond(decision, headers, state);
    };
    let Some(&site_index) = snapshot.catalog.by_name.get(site.as_ref()) else {
        return respond(decision, headers, state);
    };
    let meta = &snapshot.catalog.sites[site_index];
    let candidates: Vec<crate::http::reader_probe::Candidate<'_>> = std::iter::once(location)
        .chain(alternates)
        .filter_map(|url| {
            let base = meta
                .base_names
                .iter()
                .find(|b| url.strip_prefix(b.as_ref()).is_some_and(|rest| rest.starts_with('/')))?;
            Some(crate::http::reader_probe::Candidate {
                base,
                asset: format!("{base}{}", meta.probe_asset),
                url: url.clone(),
            })
        })
        .collect();
    let Some((page, csp)) = crate::http::reader_probe::page(&meta.name, &candidates, location) else {
        return respond(decision, headers, state);
    };
    state.counters.redirects_served.fetch_add(1, Ordering::Relaxed);
    let mut response = html(StatusCode::OK, page);
    let out = response.headers_mut();
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    out.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    out.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if let Ok(csp) = HeaderValue::from_str(&csp) {
        out.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    response
}

/// `POST /p/report`: a probe page's list of candidates that failed. Counted
/// per country only, one in a while per network; 204 whatever it said, so
/// a page learns nothing from the answer.
async fn reader_report(
    State(state): State<AppState>,
    peer: Option<axum::Extension<Peer>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let no_content = || StatusCode::NO_CONTENT.into_response();
    let Ok(report) = serde_json::from_slice::<crate::http::reader_probe::Report>(&body) else {
        return error(StatusCode::BAD_REQUEST, "the body is not a report".into(), None);
    };
    let fields: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes())).collect();
    let settings = state.settings.load();
    let Some(address) = peer.and_then(|axum::Extension(Peer(p))| {
        crate::http::reader::reader_address(p.ip(), &settings.trusted_proxies, fields.iter().copied())
    }) else {
        return no_content();
    };
    let Some(country) = state.geo.load().country(address) else {
        return no_content();
    };
    if !state.reports.admit(crate::vantage::reports::network_prefix(address)) {
        let mut response = error(
            StatusCode::TOO_MANY_REQUESTS,
            "one report a minute per network".into(),
            None,
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
        return response;
    }
    let snapshot = state.snapshots.load();
    let Some(&site) = snapshot.catalog.by_name.get(&report.site) else {
        return no_content();
    };
    let meta = &snapshot.catalog.sites[site];
    let now = now_ms();
    let mut bases: Vec<usize> = report
        .failed
        .iter()
        .filter_map(|url| {
            meta.base_names
                .iter()
                .position(|b| b.as_ref() == url.trim_end_matches('/'))
        })
        .collect();
    bases.sort_unstable();
    bases.dedup();
    for base in bases {
        state.reports.record(country, site, base, now);
    }
    no_content()
}

/// The OpenAPI 3.1 description of every JSON endpoint (kept true by
/// tests/openapi.rs, which validates real answers against it).
const OPENAPI: &str = include_str!("../../docs/openapi.json");

async fn openapi() -> Response {
    let mut response = Response::new(Body::from(OPENAPI));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// `GET /mirrors.json[?country=IR][&format=v1]`: public, for readers' tools.
async fn mirror_list(State(state): State<AppState>, uri: Uri) -> Response {
    let parameter = |name: &str| {
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    };
    let country = match parameter("country") {
        None => None,
        Some(code) => match crate::country::Country::parse(&code) {
            Some(country) => Some(country),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("`country` must be a two-letter ISO 3166 code such as IR, found \"{code}\""),
                    Some("country"),
                );
            }
        },
    };
    let snapshot = state.snapshots.load();
    let view = state.countries.load();
    let view = country.and(Some(&**view));
    let mut response = match parameter("format").as_deref() {
        None | Some("v2") => json(
            StatusCode::OK,
            &crate::http::mirror_list::v2(&snapshot, view, country, &state.listed, now_ms()),
        ),
        Some("v1") => json(StatusCode::OK, &crate::http::mirror_list::v1(&snapshot, view, country)),
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("`format` must be v1 or v2, found \"{other}\""),
                Some("format"),
            );
        }
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=60"));
    // Browser extensions fetch it from other origins.
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    response
}

/// `GET /` (and `/status` for browsers): the status page.
async fn status_page(State(state): State<AppState>, uri: Uri) -> Response {
    let page = url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .find(|(key, _)| key == "page")
        .and_then(|(_, value)| value.parse::<usize>().ok())
        .unwrap_or(1);
    let body = crate::http::status_page::render(&state.snapshots.load(), &state.countries.load(), page, now_ms());
    let mut response = html(StatusCode::OK, body);
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    );
    response
}

async fn overview(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    if wants_html(&headers) {
        return status_page(State(state), uri).await;
    }
    let snapshot = state.snapshots.load();
    json(StatusCode::OK, &{
        let mut overview = status::overview(
            &snapshot,
            state.store.as_deref(),
            Some(&state.counters),
            Some(&state.countries.load()),
            now_ms(),
        );
        overview.reader_reports = state.reports.status(&snapshot.catalog.sites, now_ms());
        if let Ok(store) = state.evidence.lock() {
            status::add_leak_totals(&mut overview, &store);
            overview.proposed_mirrors = status::proposals(&snapshot, &store);
        }
        let runs = state.discovery.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let found = state.discovered.lock().unwrap_or_else(|e| e.into_inner());
        for site in &mut overview.sites {
            if let Some(run) = runs.get(site.name) {
                site.discovery = Some(status::DiscoverySummary {
                    last_run_at: run.finished_at.clone(),
                    articles: found.get(site.name).map_or(0, Vec::len),
                    other_hosts: run.other_hosts,
                    sources: run.sources.clone(),
                });
            }
        }
        overview
    })
}

async fn site_status(State(state): State<AppState>, Path(site): Path<String>) -> Response {
    let snapshot = state.snapshots.load();
    match snapshot.catalog.by_name.get(&site) {
        Some(&index) if index < snapshot.sites.len() => {
            let mut detail = status::site_detail(&snapshot, index, now_ms(), None);
            status::add_country_verdicts(&mut detail, index, &state.countries.load());
            if let Ok(store) = state.evidence.lock() {
                status::add_leaks(&mut detail, &store);
            }
            if let Some(found) = state.discovered.lock().unwrap_or_else(|e| e.into_inner()).get(&site) {
                status::add_discovery_sources(&mut detail, found);
            }
            json(StatusCode::OK, &detail)
        }
        _ => error(
            StatusCode::NOT_FOUND,
            format!("no site named \"{site}\" is configured"),
            None,
        ),
    }
}

/// `GET /status/{site}/evidence?path=…&base=…`: why a base's verdict for
/// an article is what it is.
async fn evidence(State(state): State<AppState>, Path(site): Path<String>, uri: Uri) -> Response {
    let snapshot = state.snapshots.load();
    let Some(&index) = snapshot.catalog.by_name.get(&site) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no site named \"{site}\" is configured"),
            None,
        );
    };
    let meta = &snapshot.catalog.sites[index];
    let parameter = |name: &str| {
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    };
    let Some(path) = parameter("path") else {
        return error(
            StatusCode::BAD_REQUEST,
            "missing query parameter `path` (an article path, as in /status/{site})".into(),
            Some("path"),
        );
    };
    let Some(base) = parameter("base") else {
        return error(
            StatusCode::BAD_REQUEST,
            "missing query parameter `base` (a base URL, as in /status/{site})".into(),
            Some("base"),
        );
    };
    let Some(path) = meta.article_index.get_key_value(path.as_str()).map(|(p, _)| p.clone()) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("\"{path}\" is not an article of site \"{site}\""),
            Some("path"),
        );
    };
    let base = base.trim_end_matches('/').to_string();
    let Some(base) = meta.base_names.iter().find(|b| ***b == *base).cloned() else {
        return error(
            StatusCode::NOT_FOUND,
            format!("\"{base}\" is not a base of site \"{site}\""),
            Some("base"),
        );
    };
    let found = state
        .evidence
        .lock()
        .ok()
        .and_then(|store| store.get(&meta.name, &path, &base));
    match found {
        Some(evidence) => json(
            StatusCode::OK,
            &status::EvidenceDocument {
                generated_at: crate::clock::rfc3339(now_ms()),
                site: &meta.name,
                path: &path,
                base: &base,
                evidence: &evidence,
            },
        ),
        None => error(
            StatusCode::NOT_FOUND,
            format!(
                "no evidence for {base} on {path}: its verdict is not stale or diverged, or it was not probed since the daemon started"
            ),
            None,
        ),
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let snapshot = state.snapshots.load();
    let mut body = crate::http::metrics::render(
        &snapshot,
        &state.counters,
        state.store.as_deref(),
        &state.countries.load(),
    );
    if let Ok(store) = state.evidence.lock() {
        body.push_str(&crate::http::metrics::render_leaks(&snapshot, &store));
    }
    body.push_str(&crate::http::metrics::render_alerts(&state.alerts));
    let content_type = [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")];
    (StatusCode::OK, content_type, body).into_response()
}

/// 200 while the scheduler and engine loops turn (the same beats the
/// systemd watchdog waits for) and the store takes writes; 503 with the
/// reasons otherwise, so a container's HEALTHCHECK sees a wedged daemon.
async fn healthz(State(state): State<AppState>) -> Response {
    let mut problems: Vec<String> = Vec::new();
    if let Some(heartbeat) = &state.liveness {
        for stalled in heartbeat.stalled(crate::state::liveness::BEAT_EVERY * 5) {
            problems.push(format!("the {stalled} loop has not turned for over 5 s"));
        }
    }
    if let Some((_, error)) = state.store.as_deref().and_then(StoreHealth::last_error) {
        problems.push(format!("the store does not take writes: {error}"));
    }
    #[derive(Serialize)]
    struct Health {
        status: &'static str,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        problems: Vec<String>,
    }
    let status = if problems.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut response = json(
        status,
        &Health {
            status: if problems.is_empty() { "ok" } else { "unhealthy" },
            problems,
        },
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn not_found(uri: Uri) -> Response {
    error(StatusCode::NOT_FOUND, format!("no such endpoint: {}", uri.path()), None)
}

fn respond(decision: Decision, request_headers: &HeaderMap, state: &AppState) -> Response {
    let counters = &state.counters;
    let settings = state.settings.load();
    let counter = match &decision {
        Decision::Redirect { .. } => &counters.redirects_served,
        Decision::NoCandidate { .. } => &counters.redirects_no_candidate,
        Decision::BadRequest { .. } | Decision::NotFound { .. } => &counters.redirects_bad_request,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    match decision {
        Decision::Redirect { location, alternates } => {
            let Ok(location) = HeaderValue::from_str(&location) else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "the path cannot be used in a URL".into(),
                    Some("path"),
                );
            };
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::FOUND;
            let headers = response.headers_mut();
            headers.insert(header::LOCATION, location);
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=30"));
            for alternate in alternates {
                if let Ok(link) = HeaderValue::from_str(&route::link_value(&alternate)) {
                    headers.append(header::LINK, link);
                }
            }
            response
        }
        Decision::NoCandidate {
            site,
            path,
            bases,
            retry_after_secs,
        } => {
            let mut response = if wants_html(request_headers) {
                html(
                    StatusCode::SERVICE_UNAVAILABLE,
                    settings.error_pages.unavailable(&site, &path, &bases),
                )
            } else {
                #[derive(Serialize)]
                struct Body<'a> {
                    error: &'a str,
                    site: &'a str,
                    path: &'a str,
                    bases: &'a [String],
                }
                let body = Body {
                    error: "no base currently serves this content; try these addresses",
                    site: &site,
                    path: &path,
                    bases: &bases,
                };
                json(StatusCode::SERVICE_UNAVAILABLE, &body)
            };
            let headers = response.headers_mut();
            headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Decision::BadRequest { parameter, message } if wants_html(request_headers) => {
            let _ = parameter;
            html(StatusCode::BAD_REQUEST, settings.error_pages.bad_request(&message))
        }
        Decision::BadRequest { parameter, message } => error(StatusCode::BAD_REQUEST, message, Some(parameter)),
        Decision::NotFound { message } if wants_html(request_headers) => {
            html(StatusCode::NOT_FOUND, settings.error_pages.not_found(&message))
        }
        Decision::NotFound { message } => error(StatusCode::NOT_FOUND, message, None),
    }
}

/// A browser asks for HTML; tools and scripts get JSON.
fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|a| a.to_str().ok())
        .any(|a| a.to_ascii_lowercase().contains("text/html"))
}

fn html(status: StatusCode, body: String) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

pub(crate) fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => {
            let mut response = Response::new(Body::from(body));
            *response.status_mut() = status;
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

pub(crate) fn error(status: StatusCode, message: String, parameter: Option<&str>) -> Response {
    #[derive(Serialize)]
    struct ErrorBody<'a> {
        error: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        parameter: Option<&'a str>,
    }
    json(
        status,
        &ErrorBody {
            error: message,
            parameter,
        },
    )
}
