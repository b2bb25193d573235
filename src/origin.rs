//! A base: the scheme + host (+ port) origin a site is served from.
//!
//! Origins are compared in their ASCII serialization (lower-case host,
//! punycode, default port omitted), which is also the form readers are
//! redirected to, so "is this a configured base?" is one string comparison.

use std::fmt;

use url::Url;

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Origin {
    /// `https://host[:port]`, no trailing slash.
    serialized: String,
    /// `host[:port]` as it appears after `//`; what rate limits are keyed by.
    authority: String,
    host: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OriginError {
    #[error("has no scheme (write \"https://{0}\")")]
    NoScheme(String),
    #[error("is not a URL: {0}")]
    Invalid(String),
    #[error("must use http or https, not {0}")]
    Scheme(String),
    #[error("must be an origin only (scheme and host), without {0}")]
    NotAnOrigin(&'static str),
}

impl Origin {
    pub fn parse(text: &str) -> Result<Self, OriginError> {
        let url = match Url::parse(text) {
            Ok(url) => url,
            Err(url::ParseError::RelativeUrlWithoutBase) => {
                return Err(OriginError::NoScheme(text.to_string()));
            }
            Err(e) => return Err(OriginError::Invalid(e.to_string())),
        };
        if url.scheme() != "http" && url.scheme() != "https" {
            // "www.example.com:8080" parses with scheme "www.example.com".
            if !text.contains("://") {
                return Err(OriginError::NoScheme(text.to_string()));
            }
            return Err(OriginError::Scheme(url.scheme().to_string()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(OriginError::NotAnOrigin("user info"));
        }
        if url.path() != "/" {
            return Err(OriginError::NotAnOrigin("a path"));
        }
        if url.query().is_some() {
            return Err(OriginError::NotAnOrigin("a query"));
        }
        if url.fragment().is_some() {
            return Err(OriginError::NotAnOrigin("a fragment"));
        }
        Self::of_url(&url).ok_or_else(|| OriginError::Invalid("no host".into()))
    }

    /// The origin of an absolute http(s) URL, or None for anything else.
    pub fn of_url(url: &Url) -> Option<Self> {
        if url.scheme() != "http" && url.scheme() != "https" {
            return None;
        }
        let host = url.host_str()?.to_string();
        let serialized = url.origin().ascii_serialization();
        let authority = serialized.split_once("://").map(|(_, rest)| rest.to_string())?;
        Some(Origin {
            serialized,
            authority,
            host,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.serialized
    }

    pub fn authority(&self) -> &str {
        &self.authority
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &str {
        self.serialized.split_once("://").map_or("", |(scheme, _)| scheme)
    }

    /// The URL of `path_and_query` (which starts with `/`) on this base.
    pub fn join(&self, path_and_query: &str) -> String {
        let mut url = String::with_capacity(self.serialized.len() + path_and_query.len());
        url.push_str(&self.serialized);
        url.push_str(path_and_query);
        url
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.serialized)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_case_and_default_port() {
        let origin = Origin::parse("HTTPS://WWW.Example.COM:443/").unwrap();
        assert_eq!(origin.as_str(), "https://www.example.com");
        assert_eq!(origin.authority(), "www.example.com");
        let origin = Origin::parse("http://127.0.0.1:8081").unwrap();
        assert_eq!(origin.authority(), "127.0.0.1:8081");
    }

    #[test]
    fn rejects_what_is_not_an_origin() {
        assert_eq!(
            Origin::parse("www.example.co.uk"),
            Err(OriginError::NoScheme("www.example.co.uk".into()))
        );
        assert_eq!(
            Origin::parse("www.example.co.uk:8080"),
            Err(OriginError::NoScheme("www.example.co.uk:8080".into()))
        );
        assert!(matches!(
            Origin::parse("ftp://example.com"),
            Err(OriginError::Scheme(_))
        ));
        assert!(matches!(
            Origin::parse("https://example.com/news"),
            Err(OriginError::NotAnOrigin("a path"))
        ));
        assert!(matches!(
            Origin::parse("https://user@example.com"),
            Err(OriginError::NotAnOrigin("user info"))
        ));
    }
}
