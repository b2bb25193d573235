//! `GET /agent/v1/work` and `POST /agent/v1/results`: agents authenticate
//! with their own bearer token, are rate-limited one by one, and may only
//! post results for work they were given.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;

use crate::clock::now_ms;
use crate::http::router::{bearer_token, error, json};
use crate::http::server::AppState;
use crate::vantage::Vantage;
use crate::vantage::board::{Board, Refused};
use crate::vantage::protocol::{AGENT_NAME_HEADER, MAX_RESULTS_PER_BATCH, Results};

/// The agent the request's token belongs to, or the answer refusing it.
fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<(Vantage, usize), Box<Response>> {
    let Some(vantage) = state.vantage.clone().filter(|v| !v.config.load().agents.is_empty()) else {
        return Err(Box::new(error(
            StatusCode::NOT_FOUND,
            "no agents are configured ([vantage] agents)".into(),
            None,
        )));
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .unwrap_or("");
    let config = vantage.config.load();
    let Some(agent) = Board::agent_for_token(&config, presented) else {
        let mut response = error(
            StatusCode::UNAUTHORIZED,
            "an agent's bearer token is required".into(),
            None,
        );
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"mirrorgate-agent\""),
        );
        return Err(Box::new(response));
    };
    let name = &config.agents[agent].name;
    if let Some(claimed) = headers.get(AGENT_NAME_HEADER).and_then(|v| v.to_str().ok())
        && claimed != name
    {
        return Err(Box::new(error(
            StatusCode::FORBIDDEN,
            format!("this token belongs to agent \"{name}\", not \"{claimed}\""),
            None,
        )));
    }
    if !vantage.admit(agent) {
        let mut response = error(
            StatusCode::TOO_MANY_REQUESTS,
            format!("agent \"{name}\" is asking too often"),
            None,
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return Err(Box::new(response));
    }
    Ok((vantage, agent))
}

pub async fn work(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (vantage, agent) = match authenticate(&state, &headers) {
        Ok(found) => found,
        Err(response) => return *response,
    };
    let work = vantage
        .board
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .work(agent, now_ms());
    json(StatusCode::OK, &work)
}

pub async fn results(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let (vantage, agent) = match authenticate(&state, &headers) {
        Ok(found) => found,
        Err(response) => return *response,
    };
    let results: Results = match serde_json::from_slice(&body) {
        Ok(results) => results,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the body is not a results batch: {e}"),
                None,
            );
        }
    };
    if results.results.len() > MAX_RESULTS_PER_BATCH {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{} results in one batch; at most {MAX_RESULTS_PER_BATCH}",
                results.results.len()
            ),
            None,
        );
    }
    let snapshot = state.snapshots.load();
    let outcome = {
        let mut board = vantage.board.lock().unwrap_or_else(|e| e.into_inner());
        let outcome = board.ingest(agent, results, &snapshot, now_ms());
        if let Ok(accepted) = &outcome {
            tracing::info!(
                agent = board.agent_name(agent),
                accepted = accepted.accepted,
                rejected = accepted.rejected,
                "agent results"
            );
        }
        outcome
    };
    match outcome {
        Ok(accepted) => {
            vantage.publish(&state.snapshots);
            json(StatusCode::OK, &accepted)
        }
        Err(Refused::UnknownWork(id)) => error(
            StatusCode::CONFLICT,
            format!("work {id} was not given to this agent, or is too old: fetch new work"),
            None,
        ),
    }
}

/// Bodies larger than this are refused before they are parsed.
pub const MAX_RESULTS_BODY: usize = 32 * 1024 * 1024;
