//! One probe: GET one article on one base and say what came back.
//!
//! Every request has the same shape (same headers, no cookies) so that two
//! bases are asked exactly the same question. Redirects are followed by hand,
//! and only within the base: a hop to any other origin is the answer
//! (`redirected_off_site`), since that is where a reader would land. The
//! whole probe, redirects and body included, runs under one deadline, and
//! the body streams chunk by chunk through the fingerprinter: it is never
//! held whole, and reading stops once `max_body` (counted after
//! decompression) is passed.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{
    ACCEPT, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED,
    LOCATION, RETRY_AFTER,
};
use reqwest::{Client, StatusCode};
use url::Url;

use crate::clock::{UnixMillis, now_ms};
use crate::config::ProbeConfig;
use crate::fingerprint::classify::parking_redirect;
use crate::fingerprint::{Fingerprint, Fingerprinter, Normalizer, PageClass, PageFacts, RawHash};
use crate::origin::Origin;
use crate::verdict::observation::{Observation, Outcome, Validators};

/// What a probe saw that only evidence needs: not kept with the result.
#[derive(Debug, Default)]
pub struct ProbeDetail {
    /// The visible text of what was fingerprinted, when normalized.
    pub text: Option<Arc<str>>,
    /// The rule that recognised the page, when one did.
    pub rule: Option<String>,
    /// Subresources and links on another base than the page's own (None:
    /// no page was read, what was found before stands).
    pub leaks: Option<crate::fingerprint::leaks::Leaks>,
    /// Other addresses the page names that are not configured (host, how).
    pub alternates: Vec<(String, &'static str)>,
}

/// Redirect hops followed within a base before calling it a loop.
pub const MAX_REDIRECTS: usize = 10;

const ACCEPT_VALUE: &str = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8";

#[derive(Clone)]
pub struct Prober {
    client: Client,
    timeout: Duration,
    max_body: u64,
}

/// What a base answered for an article last time it was ok.
#[derive(Clone, Debug)]
pub struct Previous {
    pub fingerprint: Fingerprint,
    /// The rules that fingerprint was computed under: reused only under
    /// the same ones.
    pub rules: u64,
    pub http_status: Option<u16>,
    pub validators: Option<Validators>,
    /// Revalidate with If-None-Match / If-Modified-Since rather than fetch
    /// in full. Rounds fetch in full now and then, so a base that keeps
    /// answering 304 while it changed is caught.
    pub conditional: bool,
    /// Evidence needs the page's text: normalize even unchanged bytes.
    pub wants_text: bool,
}

/// What a probe found, and how long the host asked us to stay away.
#[derive(Debug)]
pub struct ProbeReport {
    pub observation: Observation,
    pub retry_after: Option<Duration>,
    pub detail: Option<Box<ProbeDetail>>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client: {0}")]
pub struct ClientError(#[from] reqwest::Error);

impl Prober {
    pub fn new(config: &ProbeConfig) -> Result<Self, ClientError> {
        let mut builder = Client::builder()
            .user_agent(&config.user_agent)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.timeout)
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(90))
            .dns_resolver(Arc::new(SpecialUseResolver));
        if let Some(pem) = &config.ca_pem {
            builder = builder.tls_certs_merge(reqwest::Certificate::from_pem_bundle(pem)?);
        }
        let client = builder.build()?;
        let (timeout, max_body) = (config.timeout, config.max_body);
        Ok(Prober {
            client,
            timeout,
            max_body,
        })
    }

    /// `previous`: what this base served for this article last time, if it
    /// was ok. It lets an unchanged body skip normalization and, when
    /// `conditional`, lets the base answer 304 instead of sending it again.
    pub async fn probe(
        &self,
        base: &Origin,
        article: &str,
        normalizer: &Normalizer,
        previous: Option<Previous>,
    ) -> ProbeReport {
        let started = Instant::now();
        let checked_at = now_ms();
        let fetch = self.fetch(base, article, normalizer, previous.as_ref());
        let result = tokio::time::timeout(self.timeout, fetch).await;
        let mut detail = None;
        let mut page = PageFacts::default();
        let (outcome, http_status, retry_after, fingerprint, validators) = match result {
            Err(_) => (Outcome::Timeout, None, None, None, None),
            Ok(Fetched::Body {
                status,
                fingerprint,
                validators,
                detail: body_detail,
            }) => {
                detail = body_detail;
                page = fingerprint.page;
                (Outcome::Ok, Some(status), None, Some(fingerprint), validators)
            }
            // 304 confirms the last full answer: report that answer.
            Ok(Fetched::Unchanged) => match previous {
                Some(previous) => {
                    page = previous.fingerprint.page;
                    (
                        Outcome::Ok,
                        previous.http_status,
                        None,
                        Some(previous.fingerprint),
                        previous.validators,
                    )
                }
                None => (Outcome::HttpStatus, Some(304), None, None, None),
            },
            Ok(Fetched::Failed {
                outcome,
                status,
                retry_after,
                class,
            }) => {
                if let Some((class, rule)) = class {
                    page.class = Some(class);
                    detail = Some(Box::new(ProbeDetail {
                        text: None,
                        rule: Some(rule),
                        leaks: None,
                        alternates: Vec::new(),
                    }));
                }
                (outcome, status, retry_after, None, None)
            }
        };
        let latency_ms = started.elapsed().as_millis().min(u32::MAX as u128) as u32;
        ProbeReport {
            observation: Observation {
                outcome,
                http_status,
                latency_ms,
                raw_hash: fingerprint.map(|f| f.raw),
                hash: fingerprint.map(|f| f.normalized),
                page,
                rules: normalizer.key(),
                checked_at,
                last_ok_at: (outcome == Outcome::Ok).then_some(checked_at as UnixMillis),
                validators,
            },
            retry_after,
            detail,
        }
    }

    async fn fetch(
        &self,
        base: &Origin,
        article: &str,
        normalizer: &Normalizer,
        previous: Option<&Previous>,
    ) -> Fetched {
        let Ok(mut url) = Url::parse(&base.join(article)) else {
            return Fetched::failed(Outcome::Connect, None);
        };
        let mut visited = HashSet::new();
        for _ in 0..=MAX_REDIRECTS {
            if !visited.insert(url.clone()) {
                return Fetched::failed(Outcome::RedirectLoop, None);
            }
            let mut request = self.client.get(url.clone()).header(ACCEPT, ACCEPT_VALUE);
            // The same request every time, but for these two when revalidating,
            // which only helps if the last answer's fingerprint can stand.
            let validators = previous
                .filter(|p| p.conditional && p.rules == normalizer.key() && !p.wants_text)
                .and_then(|p| p.validators.as_ref());
            if let Some(validators) = validators {
                if let Some(etag) = validators.etag() {
                    request = request.header(IF_NONE_MATCH, etag);
                }
                if let Some(last_modified) = validators.last_modified() {
                    request = request.header(IF_MODIFIED_SINCE, last_modified);
                }
            }
            let response = match request.send().await {
                Ok(response) => response,
                Err(e) => return Fetched::failed(classify(&e), None),
            };
            let status = response.status();
            if status == StatusCode::NOT_MODIFIED && validators.is_some() {
                return Fetched::Unchanged;
            }
            if status.is_redirection() {
                let Some(next) = redirect_target(&url, &response) else {
                    return Fetched::failed(Outcome::HttpStatus, Some(status.as_u16()));
                };
                if Origin::of_url(&next).as_ref() != Some(base) {
                    // Where it sends readers may say what it is: a parking
                    // service, a censor's block page.
                    let class = header_class(normalizer, &response)
                        .or_else(|| parking_redirect(next.as_str()).map(|rule| (PageClass::Parked, rule)));
                    return Fetched::Failed {
                        outcome: Outcome::RedirectedOffSite,
                        status: Some(status.as_u16()),
                        retry_after: None,
                        class,
                    };
                }
                url = next;
                continue;
            }
            if status == StatusCode::TOO_MANY_REQUESTS {
                return Fetched::Failed {
                    outcome: Outcome::RateLimited,
                    status: Some(429),
                    retry_after: retry_after(&response),
                    class: None,
                };
            }
            if !status.is_success() {
                let class = header_class(normalizer, &response);
                let class = match class {
                    Some(class) => Some(class),
                    None => self.error_body_class(normalizer, response).await,
                };
                return Fetched::Failed {
                    outcome: Outcome::HttpStatus,
                    status: Some(status.as_u16()),
                    retry_after: None,
                    class,
                };
            }
            let header_block = header_class(normalizer, &response);
            let reusable = previous
                .filter(|p| p.rules == normalizer.key() && !p.wants_text)
                .map(|p| p.fingerprint);
            let mut fetched = self.read_body(response, normalizer, reusable).await;
            if let (
                Fetched::Body {
                    fingerprint, detail, ..
                },
                Some((class, rule)),
            ) = (&mut fetched, header_block)
            {
                fingerprint.page.class = Some(class);
                detail.get_or_insert_with(Default::default).rule = Some(rule);
            }
            return fetched;
        }
        Fetched::failed(Outcome::RedirectLoop, None)
    }

    /// An error page's body, when block page fingerprints look at bodies:
    /// read up to a small bound and scanned.
    async fn error_body_class(
        &self,
        normalizer: &Normalizer,
        mut response: reqwest::Response,
    ) -> Option<(PageClass, String)> {
        if normalizer.fingerprints().is_empty() {
            return None;
        }
        let mut scan = normalizer.fingerprints().scanner();
        let mut read = 0usize;
        while let Ok(Some(chunk)) = response.chunk().await {
            read += chunk.len();
            scan.update(&chunk);
            if read >= ERROR_BODY_LIMIT {
                break;
            }
        }
        scan.finish()
            .map(|name| (PageClass::BlockPage, format!("fingerprint {name}")))
    }

    /// Streams the body through the fingerprinter: nothing past the current
    /// chunk is held, whatever the body's size.
    async fn read_body(
        &self,
        mut response: reqwest::Response,
        normalizer: &Normalizer,
        previous: Option<Fingerprint>,
    ) -> Fetched {
        let status = response.status().as_u16();
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(str::to_string)
        };
        let content_type = header(CONTENT_TYPE);
        let validators = Validators::new(header(ETAG).as_deref(), header(LAST_MODIFIED).as_deref());
        let declared_length = header(CONTENT_LENGTH).and_then(|l| l.parse::<u64>().ok());
        let encoded = header(CONTENT_ENCODING).is_some();
        // Unencoded, the declared length is the decoded length: no need to
        // read a body we already know is too large.
        if !encoded && declared_length.is_some_and(|l| l > self.max_body) {
            return Fetched::failed(Outcome::TooLarge, Some(status));
        }
        let content_type = content_type.as_deref();
        let url = response.url().clone();
        let mut reader = match previous {
            Some(previous) => BodyReader::Held {
                raw: Box::new(blake3::Hasher::new()),
                body: Vec::with_capacity(declared_length.unwrap_or(0).min(HELD_BODY_LIMIT as u64) as usize),
                previous,
            },
            None => BodyReader::Streaming(Box::new(normalizer.start(content_type, Some(&url)))),
        };
        let mut received: u64 = 0;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    received += chunk.len() as u64;
                    if received > self.max_body {
                        return Fetched::failed(Outcome::TooLarge, Some(status));
                    }
                    reader.update(&chunk, normalizer, content_type, &url);
                }
                Ok(None) => break,
                Err(e) => return Fetched::failed(classify(&e), Some(status)),
            }
        }
        let (fingerprint, detail) = reader.finish(normalizer, content_type, &url);
        Fetched::Body {
            status,
            fingerprint,
            validators,
            detail,
        }
    }
}

/// Error bodies read for block page fingerprints, at most.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// A response header that matches a block page fingerprint.
fn header_class(normalizer: &Normalizer, response: &reqwest::Response) -> Option<(PageClass, String)> {
    let fingerprints = normalizer.fingerprints();
    if fingerprints.is_empty() {
        return None;
    }
    response.headers().iter().find_map(|(name, value)| {
        let value = value.to_str().ok()?;
        fingerprints
            .header_match(name.as_str(), value)
            .map(|found| (PageClass::BlockPage, format!("fingerprint {found} (header {name})")))
    })
}

/// Bodies up to this size are held while only their raw hash is computed,
/// when the base served the article before (see [`BodyReader::Held`]).
const HELD_BODY_LIMIT: usize = 2 * 1024 * 1024;

/// How a body becomes a fingerprint.
enum BodyReader {
    /// The base served this article before: hash the raw bytes only (BLAKE3,
    /// several GiB/s) and hold them; normalize only if they changed.
    /// Most probes in a steady state find nothing changed. (The same bytes
    /// under a changed charset header keep their old normalization: rare,
    /// and corrected by the next change of bytes.)
    Held {
        // Boxed: a BLAKE3 hasher keeps its chunk stack inline (~2 KB).
        raw: Box<blake3::Hasher>,
        body: Vec<u8>,
        previous: Fingerprint,
    },
    /// First sight, or a body past the hold limit: normalize as it streams.
    Streaming(Box<Fingerprinter>),
}

impl BodyReader {
    fn update(&mut self, chunk: &[u8], normalizer: &Normalizer, content_type: Option<&str>, url: &Url) {
        match self {
            BodyReader::Streaming(fingerprinter) => fingerprinter.update(chunk),
            BodyReader::Held { body, .. } if body.len() + chunk.len() > HELD_BODY_LIMIT => {
                let mut fingerprinter = normalizer.start(content_type, Some(url));
                fingerprinter.update(body);
                fingerprinter.update(chunk);
                *self = BodyReader::Streaming(Box::new(fingerprinter));
            }
            BodyReader::Held { raw, body, .. } => {
                raw.update(chunk);
                body.extend_from_slice(chunk);
            }
        }
    }

    /// The fingerprint, and what only evidence needs (for a page that was
    /// normalized now).
    fn finish(
        self,
        normalizer: &Normalizer,
        content_type: Option<&str>,
        url: &Url,
    ) -> (Fingerprint, Option<Box<ProbeDetail>>) {
        let reading = match self {
            BodyReader::Streaming(fingerprinter) => fingerprinter.finish(),
            BodyReader::Held { raw, body, previous } => {
                if RawHash(*raw.finalize().as_bytes()) == previous.raw {
                    return (previous, None);
                }
                normalizer.read(&body, content_type, Some(url))
            }
        };
        let detail = ProbeDetail {
            text: reading.text.map(Into::into),
            rule: reading.rule,
            leaks: Some(reading.leaks),
            alternates: reading.alternates,
        };
        (reading.fingerprint, Some(Box::new(detail)))
    }
}

enum Fetched {
    Body {
        status: u16,
        fingerprint: Fingerprint,
        validators: Option<Validators>,
        detail: Option<Box<ProbeDetail>>,
    },
    /// 304 to a conditional request: the last full answer still holds.
    Unchanged,
    Failed {
        outcome: Outcome,
        status: Option<u16>,
        retry_after: Option<Duration>,
        /// What the answer was recognised as, and by which rule.
        class: Option<(PageClass, String)>,
    },
}

impl Fetched {
    fn failed(outcome: Outcome, status: Option<u16>) -> Self {
        Fetched::Failed {
            outcome,
            status,
            retry_after: None,
            class: None,
        }
    }
}

/// The system resolver, except that `.invalid` names fail at once without
/// a query leaving the machine, as RFC 6761 asks of resolver APIs.
struct SpecialUseResolver;

impl Resolve for SpecialUseResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().trim_end_matches('.').to_ascii_lowercase();
        Box::pin(async move {
            if host == "invalid" || host.ends_with(".invalid") {
                let error =
                    std::io::Error::new(std::io::ErrorKind::NotFound, format!("{host}: .invalid never resolves"));
                return Err(Box::new(DnsFailure(error)) as Box<dyn std::error::Error + Send + Sync>);
            }
            let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| Box::new(DnsFailure(e)) as Box<dyn std::error::Error + Send + Sync>)?
                .collect();
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

fn redirect_target(current: &Url, response: &reqwest::Response) -> Option<Url> {
    let location = response.headers().get(LOCATION)?.to_str().ok()?;
    current.join(location.trim()).ok()
}

/// Retry-After as seconds or an HTTP date; capped so a hostile host cannot
/// silence itself for a year.
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    const CAP: Duration = Duration::from_secs(6 * 3600);
    let value = response.headers().get(RETRY_AFTER)?.to_str().ok()?.trim();
    let delay = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => httpdate::parse_http_date(value)
            .ok()?
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    };
    Some(delay.min(CAP))
}

/// A name that did not resolve: our resolver's own error type, so a probe
/// failure is recognised as DNS by its type in the source chain.
#[derive(Debug, thiserror::Error)]
#[error("name resolution failed: {0}")]
struct DnsFailure(std::io::Error);

/// Maps a transport error to an outcome by the types and kinds in its
/// source chain, never by its text: the text carries the URL, and a host
/// named `tls.example` must not turn a refused connection into `tls`.
fn classify(error: &reqwest::Error) -> Outcome {
    if error.is_timeout() {
        return Outcome::Timeout;
    }
    let mut timed_out = false;
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.is::<DnsFailure>() {
            return Outcome::Dns;
        }
        if is_tls(e) {
            return Outcome::Tls;
        }
        // io::Error's `source` skips the error it wraps; connectors nest
        // them (Other around InvalidData around rustls's), so look inside.
        let mut wrapped = e.downcast_ref::<std::io::Error>();
        while let Some(io) = wrapped {
            timed_out |= io.kind() == std::io::ErrorKind::TimedOut;
            let inner = io.get_ref().map(|inner| inner as &(dyn std::error::Error + 'static));
            if inner.is_some_and(|inner| is_tls(inner) || inner.is::<DnsFailure>()) {
                return if inner.is_some_and(is_tls) {
                    Outcome::Tls
                } else {
                    Outcome::Dns
                };
            }
            wrapped = inner.and_then(|inner| inner.downcast_ref::<std::io::Error>());
        }
        source = e.source();
    }
    if timed_out {
        Outcome::Timeout
    } else {
        // Refused, reset, closed mid-body: the base did not deliver.
        Outcome::Connect
    }
}

/// A TLS failure: rustls refused the peer (certificate, handshake, alert).
fn is_tls(error: &(dyn std::error::Error + 'static)) -> bool {
    error.is::<rustls::Error>()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A refused connection whose URL says "tls", "certificate" and "dns
    /// error" is still a refused connection: the words are the reader's.
    #[tokio::test]
    async fn outcomes_come_from_error_types_not_from_the_url() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let client = Client::builder()
            .dns_resolver(Arc::new(SpecialUseResolver))
            .build()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}/tls/handshake/certificate/dns%20error/timed%20out");
        let error = client.get(&url).send().await.unwrap_err();
        assert!(error.to_string().contains("tls"), "{error}");
        assert_eq!(classify(&error), Outcome::Connect, "{error:?}");
        let error = client.get("http://tls-handshake.invalid/").send().await.unwrap_err();
        assert_eq!(classify(&error), Outcome::Dns, "{error:?}");
    }
}
