//! What one probe of one article on one base found.

use serde::Serialize;

use crate::clock::UnixMillis;
use crate::fingerprint::Hash;

/// How a probe ended. Every probe ends in exactly one of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    HttpStatus,
    Timeout,
    Connect,
    Dns,
    Tls,
    TooLarge,
    RedirectLoop,
    RedirectedOffSite,
    RateLimited,
}

impl Outcome {
    pub const ALL: [Outcome; 10] = [
        Outcome::Ok,
        Outcome::HttpStatus,
        Outcome::Timeout,
        Outcome::Connect,
        Outcome::Dns,
        Outcome::Tls,
        Outcome::TooLarge,
        Outcome::RedirectLoop,
        Outcome::RedirectedOffSite,
        Outcome::RateLimited,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::HttpStatus => "http_status",
            Outcome::Timeout => "timeout",
            Outcome::Connect => "connect",
            Outcome::Dns => "dns",
            Outcome::Tls => "tls",
            Outcome::TooLarge => "too_large",
            Outcome::RedirectLoop => "redirect_loop",
            Outcome::RedirectedOffSite => "redirected_off_site",
            Outcome::RateLimited => "rate_limited",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == text)
    }
}

/// What a base said identifies the version it served, for conditional requests.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    pub outcome: Outcome,
    pub http_status: Option<u16>,
    pub latency_ms: u32,
    /// Both hashes are set exactly when the outcome is `ok`.
    pub raw_hash: Option<Hash>,
    pub hash: Option<Hash>,
    pub checked_at: UnixMillis,
    /// The last time this base served this article with `ok`, this probe included.
    pub last_ok_at: Option<UnixMillis>,
    /// The ETag / Last-Modified of the ok response, if the base sent any.
    /// Kept in memory only: after a restart the first round fetches in full.
    pub validators: Option<std::sync::Arc<Validators>>,
}

impl Observation {
    pub fn is_ok(&self) -> bool {
        self.outcome == Outcome::Ok
    }
}
