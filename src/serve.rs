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
use crate::front::Front;
use crate::metrics::Counters;
use crate::route::{self, Decision};
use crate::snapshot::Snapshot;
use crate::status;
use crate::store::StoreHealth;

pub type Snapshots = Arc<ArcSwap<Snapshot>>;

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
    pub evidence: crate::engine::Evidence,
    pub counters: Arc<Counters>,
    pub store: Option<Arc<StoreHealth>>,
    /// Required as a bearer token on the operators' endpoints, if set.
    pub status_token: Option<Arc<str>>,
}

pub fn router(state: AppState) -> Router {
    let operators = Router::new()
        .route("/status", get(overview))
        .route("/status/{site}", get(site_status))
        .route("/status/{site}/evidence", get(evidence))
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/r/{*rest}", get(redirect))
        .route("/go", get(go))
        .route("/healthz", get(healthz))
        .merge(operators)
        .fallback(not_found)
        .layer(middleware::from_fn(limit_uri))
        .with_state(state)
}

/// Serves on `listener` until `shutdown`, then lets requests in progress
/// finish (up to five seconds). Connections start in [`Front`], which
/// answers readers' redirects itself and hands the rest to the router.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    header_timeout: Duration,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_headers(MAX_HEADERS)
        .max_buf_size(READ_BUFFER_BYTES);
    let front = Front {
        router: router(state.clone()),
        state,
        http,
        header_timeout,
    };
    let graceful = GracefulShutdown::new();
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
        let _ = stream.set_nodelay(true);
        tokio::spawn(front.clone().serve(stream, graceful.watcher(), shutdown.clone()));
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(5)) => {}
    }
    Ok(())
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
    let Some(expected) = &state.status_token else {
        return next.run(request).await;
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Constant time, so the comparison does not tell how much of a guess was right.
    if bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
        return next.run(request).await;
    }
    let mut response = error(StatusCode::UNAUTHORIZED, "a bearer token is required".into(), None);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"mirrorgate\""),
    );
    response
}

async fn redirect(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    // The raw path, not axum's decoded one: the reader's path and query are
    // passed on exactly as sent.
    let rest = uri.path().strip_prefix("/r/").unwrap_or("");
    let (site, path) = route::split_site(rest);
    let decision = match site {
        Ok(site) => route::redirect(&state.snapshots.load(), &site, path, uri.query()),
        Err(_) => Decision::BadRequest {
            parameter: "site",
            message: "the site name is not valid UTF-8".into(),
        },
    };
    respond(decision, &headers, &state.counters)
}

async fn go(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    let url = route::url_parameter(uri.query());
    respond(
        route::go(&state.snapshots.load(), url.as_deref()),
        &headers,
        &state.counters,
    )
}

async fn overview(State(state): State<AppState>) -> Response {
    let snapshot = state.snapshots.load();
    json(
        StatusCode::OK,
        &status::overview(&snapshot, state.store.as_deref(), now_ms()),
    )
}

async fn site_status(State(state): State<AppState>, Path(site): Path<String>) -> Response {
    let snapshot = state.snapshots.load();
    match snapshot.catalog.by_name.get(&site) {
        Some(&index) if index < snapshot.sites.len() => {
            json(StatusCode::OK, &status::site_detail(&snapshot, index, now_ms(), None))
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
    let body = crate::metrics::render(&state.snapshots.load(), &state.counters, state.store.as_deref());
    let content_type = [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")];
    (StatusCode::OK, content_type, body).into_response()
}

async fn healthz() -> Response {
    (StatusCode::OK, [(header::CACHE_CONTROL, "no-store")], "ok\n").into_response()
}

async fn not_found(uri: Uri) -> Response {
    error(StatusCode::NOT_FOUND, format!("no such endpoint: {}", uri.path()), None)
}

fn respond(decision: Decision, request_headers: &HeaderMap, counters: &Counters) -> Response {
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
                if let Ok(link) = HeaderValue::from_str(&format!("<{alternate}>; rel=duplicate")) {
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
            let wants_html = request_headers
                .get(header::ACCEPT)
                .and_then(|a| a.to_str().ok())
                .is_some_and(|a| a.contains("text/html"));
            let mut response = if wants_html {
                let mut response = Response::new(Body::from(no_candidate_page(&site, &path, &bases)));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                );
                response
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
            *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            let headers = response.headers_mut();
            headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Decision::BadRequest { parameter, message } => error(StatusCode::BAD_REQUEST, message, Some(parameter)),
        Decision::NotFound { message } => error(StatusCode::NOT_FOUND, message, None),
    }
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
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

fn error(status: StatusCode, message: String, parameter: Option<&str>) -> Response {
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

fn no_candidate_page(site: &str, path: &str, bases: &[String]) -> String {
    let items: String = bases
        .iter()
        .map(|url| {
            let url = escape_html(url);
            format!("<li><a href=\"{url}\" rel=\"nofollow\">{url}</a></li>\n")
        })
        .collect();
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Temporarily unavailable</title></head>\n<body>\n<h1>No address currently serves this page</h1>\n<p>None of the addresses of <strong>{site}</strong> is serving <code>{path}</code> right now. One of these may still work:</p>\n<ul>\n{items}</ul>\n</body></html>\n",
        site = escape_html(site),
        path = escape_html(path),
    )
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
