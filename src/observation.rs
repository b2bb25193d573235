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

/// What a base said identifies the version it served (its ETag and
/// Last-Modified), for conditional requests.
///
/// One per article and base is held for every configured article, so it is
/// kept small: one shared allocation, `etag`, a newline, `last_modified`
/// (header values cannot hold a newline). With an ETag, Last-Modified is not
/// kept at all: a server must ignore If-Modified-Since when If-None-Match is
/// sent (RFC 9110, 13.1.3), so it would never count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validators(std::sync::Arc<str>);

impl Validators {
    /// None when the base sent neither.
    pub fn new(etag: Option<&str>, last_modified: Option<&str>) -> Option<Self> {
        if etag.is_none() && last_modified.is_none() {
            return None;
        }
        let last_modified = if etag.is_some() { None } else { last_modified };
        let (etag, last_modified) = (etag.unwrap_or(""), last_modified.unwrap_or(""));
        if etag.contains('\n') || last_modified.contains('\n') {
            return None;
        }
        Some(Validators(format!("{etag}\n{last_modified}").into()))
    }

    pub fn etag(&self) -> Option<&str> {
        self.parts().0
    }

    pub fn last_modified(&self) -> Option<&str> {
        self.parts().1
    }

    fn parts(&self) -> (Option<&str>, Option<&str>) {
        let (etag, last_modified) = self.0.split_once('\n').unwrap_or((&self.0, ""));
        fn present(part: &str) -> Option<&str> {
            (!part.is_empty()).then_some(part)
        }
        (present(etag), present(last_modified))
    }
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
    pub validators: Option<Validators>,
}

impl Observation {
    pub fn is_ok(&self) -> bool {
        self.outcome == Outcome::Ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validators_round_trip_through_one_allocation() {
        let both = Validators::new(Some("\"abc\""), Some("Wed, 25 Nov 2026 20:00:00 GMT")).unwrap();
        assert_eq!(both.etag(), Some("\"abc\""));
        // If-Modified-Since would be ignored beside If-None-Match: not kept.
        assert_eq!(both.last_modified(), None);
        let etag_only = Validators::new(Some("W/\"x\""), None).unwrap();
        assert_eq!((etag_only.etag(), etag_only.last_modified()), (Some("W/\"x\""), None));
        let date_only = Validators::new(None, Some("Tue, 24 Nov 2026 08:00:00 GMT")).unwrap();
        assert_eq!(date_only.etag(), None);
        assert_eq!(Validators::new(None, None), None);
    }
}
