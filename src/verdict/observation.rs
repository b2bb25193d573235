//! What one probe of one article on one base found.

use serde::Serialize;

use crate::clock::UnixMillis;
use crate::fingerprint::{Hash, PageFacts, RawHash};

/// How a probe ended. Every probe ends in exactly one of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
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

    /// The base itself failed to answer (as opposed to answering about
    /// this article: a 404, a redirect, a block page). Only these count
    /// toward a base being down.
    pub fn is_transport_failure(self, http_status: Option<u16>) -> bool {
        match self {
            Outcome::Timeout | Outcome::Connect | Outcome::Dns | Outcome::Tls => true,
            Outcome::HttpStatus => http_status.is_some_and(|s| s >= 500),
            _ => false,
        }
    }
}

/// What a base said identifies the version it served (its ETag, else its
/// Last-Modified), for conditional requests.
///
/// One is held for every configured article on every base, so it is kept
/// small and, for the values servers actually send, free of allocations.
/// With an ETag, Last-Modified is not kept at all: a server must ignore
/// If-Modified-Since when If-None-Match is sent (RFC 9110, 13.1.3), so it
/// would never count.
#[derive(Clone, PartialEq, Eq)]
pub struct Validators(Stored);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    ETag,
    LastModified,
}

/// Room for an HTTP date (29 bytes) and the ETags common servers send
/// (nginx's `"6565f1a2-1fbd0"`, Apache's `"1fbd0-5f3e1c2b12345"`) in place.
const INLINE_TEXT: usize = 29;

/// The kind sits inside each variant so that the whole fits in 32 bytes,
/// `Option` included: the variant tag leaves room for `None`.
#[derive(Clone, PartialEq, Eq)]
enum Stored {
    Inline {
        kind: Kind,
        len: u8,
        bytes: [u8; INLINE_TEXT],
    },
    Heap {
        kind: Kind,
        text: Box<str>,
    },
}

impl Validators {
    /// None when the base sent neither.
    pub fn new(etag: Option<&str>, last_modified: Option<&str>) -> Option<Self> {
        let (kind, text) = match (etag, last_modified) {
            (Some(etag), _) => (Kind::ETag, etag),
            (None, Some(date)) => (Kind::LastModified, date),
            (None, None) => return None,
        };
        if text.len() > INLINE_TEXT {
            return Some(Validators(Stored::Heap {
                kind,
                text: text.into(),
            }));
        }
        let mut bytes = [0; INLINE_TEXT];
        bytes[..text.len()].copy_from_slice(text.as_bytes());
        Some(Validators(Stored::Inline {
            kind,
            len: text.len() as u8,
            bytes,
        }))
    }

    pub fn etag(&self) -> Option<&str> {
        let (kind, text) = self.parts();
        (kind == Kind::ETag).then_some(text)
    }

    pub fn last_modified(&self) -> Option<&str> {
        let (kind, text) = self.parts();
        (kind == Kind::LastModified).then_some(text)
    }

    fn parts(&self) -> (Kind, &str) {
        match &self.0 {
            // Copied from a whole &str in `new`, so always valid UTF-8.
            Stored::Inline { kind, len, bytes } => (*kind, std::str::from_utf8(&bytes[..*len as usize]).unwrap_or("")),
            Stored::Heap { kind, text } => (*kind, text),
        }
    }
}

impl std::fmt::Debug for Validators {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, text) = self.parts();
        write!(f, "{kind:?}({text:?})")
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    pub outcome: Outcome,
    pub http_status: Option<u16>,
    pub latency_ms: u32,
    /// Both hashes are set exactly when the outcome is `ok`.
    pub raw_hash: Option<RawHash>,
    pub hash: Option<Hash>,
    /// What the page is besides its hash (for `ok`), or what the answer
    /// was recognised as (a redirect to a parking host, a block page).
    pub page: PageFacts,
    /// The key of the rules the hashes were computed under
    /// ([`crate::fingerprint::Normalizer::key`]): a body is only taken to
    /// fingerprint the same again under the same rules.
    pub rules: u64,
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
    fn validators_keep_the_one_that_counts() {
        let both = Validators::new(Some("\"abc\""), Some("Wed, 25 Nov 2026 20:00:00 GMT")).unwrap();
        assert_eq!(both.etag(), Some("\"abc\""));
        // If-Modified-Since would be ignored beside If-None-Match: not kept.
        assert_eq!(both.last_modified(), None);
        let etag_only = Validators::new(Some("W/\"x\""), None).unwrap();
        assert_eq!((etag_only.etag(), etag_only.last_modified()), (Some("W/\"x\""), None));
        let date_only = Validators::new(None, Some("Tue, 24 Nov 2026 08:00:00 GMT")).unwrap();
        assert_eq!(date_only.etag(), None);
        assert_eq!(date_only.last_modified(), Some("Tue, 24 Nov 2026 08:00:00 GMT"));
        assert_eq!(Validators::new(None, None), None);
        let long = format!("\"{}\"", "x".repeat(100));
        assert_eq!(Validators::new(Some(&long), None).unwrap().etag(), Some(long.as_str()));
        for len in [INLINE_TEXT, INLINE_TEXT + 1] {
            let text = "y".repeat(len);
            let stored = Validators::new(None, Some(&text)).unwrap();
            assert_eq!(matches!(stored.0, Stored::Inline { .. }), len <= INLINE_TEXT);
            assert_eq!(stored.last_modified(), Some(text.as_str()));
        }
    }

    #[test]
    fn validators_take_no_more_room_than_inline_text() {
        // Held per article and base: the enum tags must fit in spare bits.
        assert_eq!(std::mem::size_of::<Option<Validators>>(), 32);
    }
}
