//! `mirrorgate agent`: probes the bases from the network it runs in, with
//! the daemon's own prober and fingerprinter, and reports to the daemon.
//!
//! It keeps nothing on disk and needs nothing but the daemon's URL and its
//! token: each cycle it fetches its work, checks it can reach the control
//! (else its failures would read as blocking), probes, and posts. Batches
//! the daemon could not take wait in a bounded backlog; past the bound the
//! oldest go, since an old result says least.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::protocol::{AGENT_NAME_HEADER, Probed, RESULTS_PATH, Results, WORK_PATH, WirePage, Work};
use crate::config::{ProbeConfig, Secret};
use crate::fingerprint::{BlockFingerprints, CANONICAL_FORM_VERSION, ContentSelector, Normalizer, SiteSpec};
use crate::origin::Origin;
use crate::probe::Prober;
use crate::verdict::observation::Outcome;

/// Results held while the daemon cannot be reached.
pub const MAX_BACKLOG_RESULTS: usize = 100_000;
const MAX_BACKOFF: Duration = Duration::from_secs(60);

pub struct AgentOptions {
    pub server: Url,
    pub token: Secret,
    pub name: Option<String>,
}

struct Client {
    http: reqwest::Client,
    options: AgentOptions,
}

impl Client {
    fn request(&self, method: reqwest::Method, path: &str) -> Result<reqwest::RequestBuilder, String> {
        let url = self
            .options
            .server
            .join(path.trim_start_matches('/'))
            .map_err(|e| format!("cannot make the URL of {path}: {e}"))?;
        let mut request = self.http.request(method, url).bearer_auth(self.options.token.expose());
        if let Some(name) = &self.options.name {
            request = request.header(AGENT_NAME_HEADER, name);
        }
        Ok(request)
    }

    async fn work(&self) -> Result<Work, String> {
        let response = self
            .request(reqwest::Method::GET, WORK_PATH)?
            .send()
            .await
            .map_err(|e| format!("cannot reach the daemon: {e}"))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(format!("the daemon answered {status}: {}", body.trim()));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("the daemon's work did not arrive whole: {e}"))?;
        serde_json::from_slice(&body).map_err(|e| format!("the daemon's work is not understood: {e}"))
    }

    /// Ok(true): taken; Ok(false): refused for good (drop it); Err: try again later.
    async fn post(&self, batch: &Results) -> Result<bool, String> {
        let response = self
            .request(reqwest::Method::POST, RESULTS_PATH)?
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(batch).map_err(|e| format!("cannot write the results: {e}"))?)
            .send()
            .await
            .map_err(|e| format!("cannot reach the daemon: {e}"))?;
        let status = response.status();
        if status.is_success() {
            return Ok(true);
        }
        let body = response.text().await.unwrap_or_default();
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            return Err(format!("the daemon answered {status}: {}", body.trim()));
        }
        tracing::warn!(%status, answer = body.trim(), work_id = batch.work_id, "results refused; dropped");
        Ok(false)
    }
}

/// Runs until `shutdown`. Errors only when it cannot start at all.
pub async fn run(options: AgentOptions, shutdown: CancellationToken) -> Result<(), String> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .user_agent(format!("mirrorgate-agent/{}", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let client = Client { http, options };
    let mut backlog: VecDeque<Results> = VecDeque::new();
    let mut backoff = Duration::from_secs(1);
    loop {
        let work = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            work = client.work() => work,
        };
        let work = match work {
            Ok(work) => work,
            Err(why) => {
                tracing::warn!(error = why, retry_in = ?backoff, "no work from the daemon");
                let delay = backoff.mul_f64(0.5 + fastrand::f64() / 2.0);
                backoff = (backoff * 2).min(MAX_BACKOFF);
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(delay) => continue,
                }
            }
        };
        backoff = Duration::from_secs(1);
        let started = tokio::time::Instant::now();
        let cycle = Duration::from_secs(work.cycle_secs.max(1));
        if work.canonical_form != CANONICAL_FORM_VERSION {
            tracing::error!(
                daemon = work.canonical_form,
                agent = CANONICAL_FORM_VERSION,
                "the daemon fingerprints pages another way: run the same mirrorgate version as the daemon"
            );
        } else {
            let control_ok = control(&client, &work).await;
            let results = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                results = probe_all(&work) => results,
            };
            tracing::info!(
                work_id = work.work_id,
                results = results.len(),
                control_ok,
                "cycle probed"
            );
            backlog.push_back(Results {
                work_id: work.work_id,
                control_ok,
                results,
            });
            let mut held: usize = backlog.iter().map(|b| b.results.len()).sum();
            while held > MAX_BACKLOG_RESULTS && backlog.len() > 1 {
                let dropped = backlog.pop_front().map_or(0, |b| b.results.len());
                held -= dropped;
                tracing::warn!(dropped, "backlog full: oldest results dropped");
            }
            while let Some(batch) = backlog.front() {
                match client.post(batch).await {
                    Ok(_) => {
                        backlog.pop_front();
                    }
                    Err(why) => {
                        tracing::warn!(error = why, waiting = backlog.len(), "results kept for later");
                        break;
                    }
                }
            }
        }
        let next = started + cycle;
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep_until(next) => {}
        }
    }
}

/// Whether this network reaches the control at all: any HTTP answer counts.
async fn control(client: &Client, work: &Work) -> bool {
    let url = match &work.control_url {
        Some(url) => Url::parse(url).ok(),
        None => client.options.server.join("healthz").ok(),
    };
    let Some(url) = url else {
        return false;
    };
    let timeout = Duration::from_millis(work.probe.timeout_ms.max(1000));
    matches!(
        tokio::time::timeout(timeout, client.http.get(url).send()).await,
        Ok(Ok(_))
    )
}

/// Every sampled article on every base, `work.probe.concurrency` at a time.
async fn probe_all(work: &Work) -> Vec<Probed> {
    let config = ProbeConfig {
        interval: Duration::from_secs(work.cycle_secs.max(1)),
        timeout: Duration::from_millis(work.probe.timeout_ms.max(1)),
        concurrency: work.probe.concurrency.max(1),
        per_host_rate: 0.0,
        max_body: work.probe.max_body,
        user_agent: work.probe.user_agent.clone(),
        down_after: 1,
        ca_pem: None,
        threads: None,
        max_age: Duration::from_secs(work.cycle_secs.max(1) * 3),
    };
    let prober = match Prober::new(&config) {
        Ok(prober) => prober,
        Err(e) => {
            tracing::error!(error = %e, "cannot probe");
            return Vec::new();
        }
    };
    let permits = Arc::new(Semaphore::new(config.concurrency));
    let mut probes = JoinSet::new();
    for site in &work.sites {
        let Some((normalizer, bases)) = normalizer_for(site) else {
            tracing::warn!(
                site = site.name,
                "the daemon's site description is not understood; skipped"
            );
            continue;
        };
        let normalizer = Arc::new(normalizer);
        for base in bases {
            let addresses = resolve(&base).await;
            for article in &site.articles {
                let (prober, normalizer, base, permits) =
                    (prober.clone(), normalizer.clone(), base.clone(), permits.clone());
                let (site_name, article, addresses) = (site.name.clone(), article.clone(), addresses.clone());
                probes.spawn(async move {
                    let _permit = permits.acquire_owned().await.ok()?;
                    let report = prober.probe(&base, &article, &normalizer, None).await;
                    let observation = report.observation;
                    let tcp_connected = match observation.outcome {
                        Outcome::Connect => Some(tcp_connects(&base, &addresses).await),
                        _ => None,
                    };
                    Some(Probed {
                        site: site_name,
                        base: base.as_str().to_string(),
                        article,
                        checked_at: observation.checked_at.max(0) as u64,
                        outcome: observation.outcome,
                        http_status: observation.http_status,
                        latency_ms: observation.latency_ms,
                        hash: observation.hash.map(|h| h.to_string()),
                        page: Some(WirePage::from(observation.page)),
                        addresses,
                        tcp_connected,
                    })
                });
            }
        }
    }
    let mut results = Vec::new();
    while let Some(done) = probes.join_next().await {
        if let Ok(Some(probed)) = done {
            results.push(probed);
        }
    }
    results
}

/// The site's normalizer as the daemon builds it (hosts, selector,
/// exclusions), and its bases.
fn normalizer_for(site: &super::protocol::WorkSite) -> Option<(Normalizer, Vec<Origin>)> {
    let bases: Vec<Origin> = site
        .bases
        .iter()
        .map(|b| Origin::parse(b).ok())
        .collect::<Option<_>>()?;
    let primary = bases.first()?.clone();
    let selector = site
        .content_selector
        .as_deref()
        .map(ContentSelector::parse)
        .transpose()
        .ok()?;
    let exclude: Vec<ContentSelector> = site
        .content_exclude
        .iter()
        .map(|s| ContentSelector::parse(s))
        .collect::<Result<_, _>>()
        .ok()?;
    let normalizer = Normalizer::new(SiteSpec {
        primary: &primary,
        bases: &bases,
        aliases: &site.aliases,
        selector: selector.as_ref(),
        exclude: &exclude,
        fingerprints: Arc::new(BlockFingerprints::default()),
    });
    Some((normalizer, bases))
}

/// Whether a bare TCP connection to the base's port opens from here.
async fn tcp_connects(base: &Origin, addresses: &[IpAddr]) -> bool {
    let Some(port) = Url::parse(base.as_str()).ok().and_then(|u| u.port_or_known_default()) else {
        return false;
    };
    for address in addresses {
        let connect = tokio::net::TcpStream::connect((*address, port));
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(5), connect).await {
            return true;
        }
    }
    false
}

/// What this network's resolver answers for the base's host.
async fn resolve(base: &Origin) -> Vec<IpAddr> {
    let Ok(url) = Url::parse(base.as_str()) else {
        return Vec::new();
    };
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
        return Vec::new();
    };
    let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
    let lookup = tokio::time::timeout(Duration::from_secs(5), tokio::net::lookup_host((host.as_str(), port))).await;
    let mut addresses: Vec<IpAddr> = match lookup {
        Ok(Ok(found)) => found.map(|a| a.ip()).collect(),
        _ => Vec::new(),
    };
    addresses.sort();
    addresses.dedup();
    addresses
}
