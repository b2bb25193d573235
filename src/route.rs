//! Request -> redirect decision. Pure: a snapshot and the request in, a
//! decision out.
//!
//! The one invariant that matters: a `Location` is only ever a configured
//! base's origin followed by a path that starts with `/`. The origin comes
//! from the catalog, never from the request, so no path, query or `url=`
//! trick can move the reader to another host.

use crate::snapshot::{ArticleView, SiteMeta, SiteView, Snapshot};

#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    Redirect {
        location: String,
        /// The other candidates, best first (`Link: rel=duplicate`).
        alternates: Vec<String>,
    },
    /// No base qualifies; every base's URL for the path, to try by hand.
    NoCandidate {
        site: String,
        path: String,
        bases: Vec<String>,
        retry_after_secs: u64,
    },
    BadRequest {
        parameter: &'static str,
        message: String,
    },
    NotFound {
        message: String,
    },
}

/// Splits what follows `/r/` into the site, percent-decoded (an error when
/// that is not UTF-8), and the article path from its `/` (`/` when absent).
pub fn split_site(rest: &str) -> (Result<std::borrow::Cow<'_, str>, std::str::Utf8Error>, &str) {
    let (site, path) = match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, "/"),
    };
    (percent_encoding::percent_decode_str(site).decode_utf8(), path)
}

/// The decoded `url` parameter of `/go`'s query, if present.
pub fn url_parameter(query: Option<&str>) -> Option<std::borrow::Cow<'_, str>> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(key, _)| key == "url")
        .map(|(_, value)| value)
}

/// `GET /r/{site}/{path}?{query}`: `site` is percent-decoded, `path` (from
/// its leading `/`) and `query` are exactly as the reader sent them.
pub fn redirect(snapshot: &Snapshot, site: &str, path: &str, query: Option<&str>) -> Decision {
    let Some(&site_index) = snapshot.catalog.by_name.get(site) else {
        return Decision::NotFound {
            message: format!("no site named \"{site}\" is configured"),
        };
    };
    choose(snapshot, site_index, path, query)
}

/// `GET /go?url=...`: `url` is the decoded parameter, if present.
pub fn go(snapshot: &Snapshot, url: Option<&str>) -> Decision {
    let bad = |message: String| Decision::BadRequest {
        parameter: "url",
        message,
    };
    let Some(raw) = url else {
        return bad("missing query parameter `url` (an absolute URL on a configured base)".into());
    };
    if raw.bytes().any(|b| b.is_ascii_control()) {
        return bad("`url` contains control characters".into());
    }
    let parsed = match url::Url::parse(raw) {
        Ok(parsed) => parsed,
        Err(e) => return bad(format!("`url` is not an absolute URL: {e}")),
    };
    let Some(origin) = crate::origin::Origin::of_url(&parsed) else {
        return bad(format!(
            "`url` must be an http or https URL, found scheme \"{}\"",
            parsed.scheme()
        ));
    };
    let Some(&(site_index, _)) = snapshot.catalog.by_origin.get(origin.as_str()) else {
        return bad(format!("`url` origin {origin} is not a configured base of any site"));
    };
    choose(snapshot, site_index, parsed.path(), parsed.query())
}

fn choose(snapshot: &Snapshot, site_index: usize, path: &str, query: Option<&str>) -> Decision {
    let meta = &snapshot.catalog.sites[site_index];
    let candidates = match candidates_for(snapshot, site_index, path, query) {
        Ok(candidates) => candidates,
        Err(decision) => return decision,
    };
    let mut urls = candidates
        .iter()
        .map(|b| with_path(meta.bases[b].as_str(), path, query));
    match urls.next() {
        Some(location) => Decision::Redirect {
            location,
            alternates: urls.collect(),
        },
        None => no_candidate(snapshot, site_index, path, query),
    }
}

/// The bases (indices into the site's `bases`) a reader asking for `path`
/// goes to, best first, or the decision when the request is bad. Empty when
/// none qualifies. `Location` is the first base's origin, then `path`, then
/// `?query`: the checks here are what keep that a safe header value.
pub fn candidates_for<'s>(
    snapshot: &'s Snapshot,
    site_index: usize,
    path: &str,
    query: Option<&str>,
) -> Result<Candidates<'s>, Decision> {
    let meta = &snapshot.catalog.sites[site_index];
    let Some(view) = snapshot.sites.get(site_index) else {
        return Ok(Candidates::Fallback(&[]));
    };
    let unsafe_byte = |b: u8| b.is_ascii_control() || b == b' ';
    if !path.starts_with('/') || path.bytes().any(unsafe_byte) {
        return Err(Decision::BadRequest {
            parameter: "path",
            message: "the path must start with '/' and hold no spaces or control characters".into(),
        });
    }
    if query.is_some_and(|q| q.bytes().any(unsafe_byte)) {
        return Err(Decision::BadRequest {
            parameter: "query",
            message: "the query must hold no spaces or control characters".into(),
        });
    }
    Ok(candidates(view, meta, path, query))
}

/// A configured article (matched with its query, then without) uses its own
/// verdicts; any other path goes by base health.
fn candidates<'v>(view: &'v SiteView, meta: &SiteMeta, path: &str, query: Option<&str>) -> Candidates<'v> {
    let articles = &meta.article_index;
    let with_query = query.map(|q| format!("{path}?{q}"));
    let article = with_query
        .as_deref()
        .and_then(|p| articles.get(p))
        .or_else(|| articles.get(path));
    match article {
        Some(&index) => Candidates::Article {
            view: &view.articles[index],
            prefer_primary: meta.prefer_primary,
        },
        None => Candidates::Fallback(&view.fallback),
    }
}

/// Where [`candidates_for`] sends a reader: an article's own order, derived
/// from its verdicts, or the site's fallback order.
#[derive(Clone, Copy)]
pub enum Candidates<'v> {
    Article {
        view: &'v ArticleView,
        prefer_primary: bool,
    },
    Fallback(&'v [usize]),
}

impl<'v> Candidates<'v> {
    /// Base indices, best first.
    pub fn iter(self) -> impl Iterator<Item = usize> + 'v {
        let (article, fallback) = match self {
            Candidates::Article { view, prefer_primary } => (Some(view.candidates(prefer_primary)), None),
            Candidates::Fallback(order) => (None, Some(order.iter().copied())),
        };
        article.into_iter().flatten().chain(fallback.into_iter().flatten())
    }
}

fn no_candidate(snapshot: &Snapshot, site_index: usize, path: &str, query: Option<&str>) -> Decision {
    let meta = &snapshot.catalog.sites[site_index];
    Decision::NoCandidate {
        site: meta.name.to_string(),
        path: with_path("", path, query),
        bases: meta.bases.iter().map(|b| with_path(b.as_str(), path, query)).collect(),
        retry_after_secs: crate::snapshot::retry_after_secs(snapshot.catalog.interval),
    }
}

fn with_path(base: &str, path: &str, query: Option<&str>) -> String {
    let mut url = String::with_capacity(base.len() + path.len() + query.map_or(0, |q| q.len() + 1));
    url.push_str(base);
    url.push_str(path);
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    url
}

/// A snapshot built through the real config parser and engine, for
/// property tests and the fuzz target: site "news" has its primary down and
/// two mirrors agreeing; site "other" has nothing probed yet.
#[doc(hidden)]
pub fn sample_snapshot() -> std::sync::Arc<Snapshot> {
    use std::sync::Arc;
    use std::time::Duration;

    use crate::engine::{Engine, ProbeResult};
    use crate::fingerprint::Hash;
    use crate::observation::{Observation, Outcome};
    use crate::snapshot::Catalog;

    const SAMPLE: &str = r#"
[[sites]]
name = "news"
primary = "https://www.example.com"
mirrors = ["https://www.example.co.uk", "http://mirror.example.net:8080", "https://blocked.example.org"]
articles = ["/a", "/Detail/2017/01/24/507408/Trump-Russia-Daesh", "/q?id=1"]

[[sites]]
name = "other"
primary = "https://other.example.org"
articles = ["/x"]
"#;
    let config = crate::config::parse("sample.toml", SAMPLE).expect("the sample config is valid");
    let catalog = Arc::new(Catalog::new(&config));
    let mut engine = Engine::new(catalog.clone(), 2, Duration::from_secs(3600), None);
    for article in 0..3 {
        for base in 0..4 {
            let (outcome, hash) = match base {
                0 => (Outcome::Connect, None),
                3 => (Outcome::Ok, Some(Hash([9; 32]))),
                _ => (Outcome::Ok, Some(Hash([1; 32]))),
            };
            let observation = Observation {
                outcome,
                http_status: hash.map(|_| 200),
                latency_ms: 5,
                raw_hash: hash,
                hash,
                page: Default::default(),
                rules: catalog.sites[0].normalizer.key(),
                // Now: older observations would be too old to count.
                checked_at: crate::clock::now_ms(),
                last_ok_at: None,
                validators: None,
            };
            engine.apply(ProbeResult {
                catalog: catalog.clone(),
                site: 0,
                base,
                article,
                observation,
                detail: None,
            });
        }
    }
    engine.publish(false);
    engine.snapshots().load_full()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const BASES: [&str; 4] = [
        "https://www.example.com",
        "https://www.example.co.uk",
        "http://mirror.example.net:8080",
        "https://blocked.example.org",
    ];

    /// Pieces readers (and attackers) put in paths and `url=` values.
    const PIECES: &[&str] = &[
        "http://",
        "https://",
        "//",
        "\\\\",
        "/\\",
        "\\",
        "@",
        "#",
        "?",
        "&",
        "=",
        "..",
        "/",
        ".",
        ":",
        "%2F",
        "%252F",
        "%2e%2e",
        "%00",
        "%0d%0a",
        "\r\n",
        "\0",
        "www.example.com",
        "WWW.EXAMPLE.COM",
        "www.example.com.",
        "www.example.co.uk",
        "mirror.example.net:8080",
        "evil.example",
        "www.example.com.evil.example",
        "xn--exmple-cua.com",
        "ex\u{0430}mple.com",
        "\u{ff0f}",
        "url=",
        "news",
        "a",
        "Detail/2017/01/24/507408/Trump-Russia-Daesh",
        " ",
    ];

    fn hostile() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::collection::vec(prop::sample::select(PIECES), 0..16).prop_map(|p| p.concat()),
            ".*",
            (prop::sample::select(PIECES), 1000usize..70_000)
                .prop_map(|(piece, n)| piece.repeat(n / piece.len().max(1))),
        ]
    }

    fn safe(location: &str) -> bool {
        BASES
            .iter()
            .any(|base| location.strip_prefix(base).is_some_and(|rest| rest.starts_with('/')))
            && !location.bytes().any(|b| b.is_ascii_control())
    }

    fn check(decision: Decision) -> Result<(), TestCaseError> {
        if let Decision::Redirect { location, alternates } = &decision {
            prop_assert!(safe(location), "unsafe Location {location:?}");
            for alternate in alternates {
                prop_assert!(safe(alternate), "unsafe Link {alternate:?}");
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn r_only_ever_redirects_to_a_configured_base(path in hostile(), query in proptest::option::of(hostile())) {
            let snapshot = sample_snapshot();
            for site in ["news", "other", "nope"] {
                check(redirect(&snapshot, site, &format!("/{path}"), query.as_deref()))?;
            }
        }

        #[test]
        fn go_only_ever_redirects_to_a_configured_base(
            prefix in prop::sample::select(&["", "https://www.example.co.uk", "https://www.example.com", "http://mirror.example.net:8080"][..]),
            rest in hostile(),
        ) {
            let snapshot = sample_snapshot();
            check(go(&snapshot, Some(&format!("{prefix}{rest}"))))?;
        }
    }

    #[test]
    fn the_sample_routes_as_designed() {
        let snapshot = sample_snapshot();
        // Primary down: the first agreeing mirror, the other as a duplicate, never the odd one out.
        assert_eq!(
            redirect(&snapshot, "news", "/a", Some("x=1")),
            Decision::Redirect {
                location: "https://www.example.co.uk/a?x=1".into(),
                alternates: vec!["http://mirror.example.net:8080/a?x=1".into()],
            }
        );
        let tricks = [
            "https://www.example.com@evil.example/a",
            "https://evil.example#@www.example.com/a",
            "https://www.example.com.evil.example/a",
            "https://www.example.com./a",
            "//www.example.com/a",
            "javascript:alert(1)",
        ];
        for trick in tricks {
            assert!(
                matches!(
                    go(&snapshot, Some(trick)),
                    Decision::BadRequest { parameter: "url", .. }
                ),
                "{trick}: {:?}",
                go(&snapshot, Some(trick))
            );
        }
        // Backslashes are slashes in http(s) URLs (WHATWG), as browsers read them.
        assert!(matches!(
            go(&snapshot, Some("https:\\\\www.example.com\\a")),
            Decision::Redirect { .. }
        ));
        // Upper case and default ports are the same origin.
        assert!(matches!(
            go(&snapshot, Some("HTTPS://WWW.EXAMPLE.COM:443/a")),
            Decision::Redirect { .. }
        ));
        assert!(matches!(
            redirect(&snapshot, "other", "/x", None),
            Decision::NoCandidate { .. }
        ));
        assert!(matches!(
            redirect(&snapshot, "nope", "/x", None),
            Decision::NotFound { .. }
        ));
        // Found by the property test: a query must not carry a header break into Location.
        assert!(matches!(
            redirect(&snapshot, "news", "/a", Some("\r\nSet-Cookie: x=1")),
            Decision::BadRequest { parameter: "query", .. }
        ));
    }
}
