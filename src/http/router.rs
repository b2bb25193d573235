//! The routes, the middleware every request passes (URI length, the
//! operators' token) and the response helpers handlers share.

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use subtle::ConstantTimeEq;

use super::operators::{evidence, healthz, metrics, mirror_list, openapi, overview, site_status, status_page};
use super::readers::{go, probe_page, reader_report, redirect};
use super::server::{AppState, MAX_URI_BYTES};

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

pub(crate) async fn limit_uri(request: Request, next: Next) -> Response {
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

pub(crate) async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
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

pub(crate) async fn not_found(uri: Uri) -> Response {
    error(StatusCode::NOT_FOUND, format!("no such endpoint: {}", uri.path()), None)
}

/// A browser asks for HTML; tools and scripts get JSON.
pub(crate) fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|a| a.to_str().ok())
        .any(|a| a.to_ascii_lowercase().contains("text/html"))
}

pub(crate) fn html(status: StatusCode, body: String) -> Response {
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
