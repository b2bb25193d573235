//! The readers' handlers: `/r/...`, `/go`, the reader probe page and its
//! reports. Each reads the current snapshot (one atomic load) and turns a
//! [`Decision`] into a response; none waits on the prober or the store.

use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::router::{error, html, json, wants_html};
use super::server::{AppState, Peer};
use crate::clock::now_ms;
use crate::route::{self, Decision, ReaderPlace};
use crate::vantage::view::VantageView;

/// The reader's place for a request hyper parsed.
pub(crate) fn place_of<'v>(
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

pub(crate) async fn redirect(
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

pub(crate) async fn go(
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
pub(crate) async fn probe_page(
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
pub(crate) fn probe_page_for(
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
pub(crate) async fn reader_report(
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

pub(crate) fn respond(decision: Decision, request_headers: &HeaderMap, state: &AppState) -> Response {
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
