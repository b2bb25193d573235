//! The operators' handlers: status JSON and page, evidence, metrics,
//! `/healthz`, `/mirrors.json` and `/openapi.json`.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::router::{error, html, json, wants_html};
use super::server::AppState;
use crate::clock::now_ms;
use crate::http::status;

/// The OpenAPI 3.1 description of every JSON endpoint (kept true by
/// tests/openapi.rs, which validates real answers against it).
pub(crate) const OPENAPI: &str = include_str!("../../docs/openapi.json");

pub(crate) async fn openapi() -> Response {
    let mut response = Response::new(Body::from(OPENAPI));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// `GET /mirrors.json[?country=IR][&format=v1]`: public, for readers' tools.
pub(crate) async fn mirror_list(State(state): State<AppState>, uri: Uri) -> Response {
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
pub(crate) async fn status_page(State(state): State<AppState>, uri: Uri) -> Response {
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

pub(crate) async fn overview(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
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

pub(crate) async fn site_status(State(state): State<AppState>, Path(site): Path<String>) -> Response {
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
pub(crate) async fn evidence(State(state): State<AppState>, Path(site): Path<String>, uri: Uri) -> Response {
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

pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
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
/// A PostgreSQL server that is down is not this process's trouble: it goes
/// on serving and buffering, and restarting it would only lose its memory,
/// so that outage shows in `/status` and `mirrorgate_store_up`, not here.
pub(crate) async fn healthz(State(state): State<AppState>) -> Response {
    let mut problems: Vec<String> = Vec::new();
    if let Some(heartbeat) = &state.liveness {
        for stalled in heartbeat.stalled(crate::state::liveness::BEAT_EVERY * 5) {
            problems.push(format!("the {stalled} loop has not turned for over 5 s"));
        }
    }
    if let Some(store) = state.store.as_deref()
        && store.backend != "postgres"
        && let Some((_, error)) = store.last_error()
    {
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
