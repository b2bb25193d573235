//! Request -> redirect decision. Pure: a snapshot and the request in, a
//! decision out.
//!
//! The one invariant that matters: a `Location` is only ever a configured
//! base's origin followed by a path that starts with `/`. The origin comes
//! from the catalog, never from the request, so no path, query or `url=`
//! trick can move the reader to another host.

use crate::country::Country;
use crate::state::snapshot::{ArticleView, SiteMeta, SiteView, Snapshot};
use crate::vantage::reports::{ReaderReports, demote};
use crate::vantage::view::{SiteRoutes, VantageView, order_for_country};
use crate::verdict::Verdict;

/// Where the reader is, as far as routing goes: the agents' per-country
/// view and the reader's country (either may be unknown, and then readers
/// are routed as from anywhere).
#[derive(Clone, Copy, Default)]
pub struct ReaderPlace<'a> {
    pub view: Option<&'a VantageView>,
    pub country: Option<Country>,
    /// Readers' own failure reports, which may move a base last.
    pub reports: Option<&'a ReaderReports>,
}

impl<'a> ReaderPlace<'a> {
    pub fn routes(&self, site: usize) -> Option<&'a SiteRoutes> {
        self.view?.site_routes(self.country, site)
    }

    /// The bases readers here reported failing lately, to be offered last.
    pub fn demoted(&self, site: usize, bases: usize) -> Option<Vec<bool>> {
        let reports = self.reports.filter(|r| r.active())?;
        reports.demoted(self.country?, site, bases, crate::clock::now_ms())
    }
}

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
    redirect_from(snapshot, ReaderPlace::default(), site, path, query)
}

/// [`redirect`] for a reader at `place`.
pub fn redirect_from(
    snapshot: &Snapshot,
    place: ReaderPlace<'_>,
    site: &str,
    path: &str,
    query: Option<&str>,
) -> Decision {
    let Some(&site_index) = snapshot.catalog.by_name.get(site) else {
        return Decision::NotFound {
            message: format!("no site named \"{site}\" is configured"),
        };
    };
    choose(snapshot, place, site_index, path, query)
}

/// `GET /go?url=...`: `url` is the decoded parameter, if present.
pub fn go(snapshot: &Snapshot, url: Option<&str>) -> Decision {
    go_from(snapshot, ReaderPlace::default(), url)
}

/// [`go`] for a reader at `place`.
pub fn go_from(snapshot: &Snapshot, place: ReaderPlace<'_>, url: Option<&str>) -> Decision {
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
    choose(snapshot, place, site_index, parsed.path(), parsed.query())
}

fn choose(snapshot: &Snapshot, place: ReaderPlace<'_>, site_index: usize, path: &str, query: Option<&str>) -> Decision {
    let meta = &snapshot.catalog.sites[site_index];
    let candidates = match candidates_for(snapshot, site_index, path, query) {
        Ok(candidates) => candidates,
        Err(decision) => return decision,
    };
    let (encoded_path, encoded_query) = (uri_encoded(path, false), query.map(|q| uri_encoded(q, true)));
    let demoted = place.demoted(site_index, meta.bases.len());
    let mut urls = candidates
        .ordered(place.routes(site_index), demoted.as_deref())
        .map(|b| with_path(meta.bases[b].as_str(), &encoded_path, encoded_query.as_deref()));
    match urls.next() {
        Some(location) => Decision::Redirect {
            location,
            alternates: urls.collect(),
        },
        None => no_candidate(snapshot, site_index, path, query, candidates),
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
    let control = |b: u8| b.is_ascii_control();
    if !path.starts_with('/') || path.bytes().any(control) {
        return Err(Decision::BadRequest {
            parameter: "path",
            message: "the path must start with '/' and hold no control characters".into(),
        });
    }
    if query.is_some_and(|q| q.bytes().any(control)) {
        return Err(Decision::BadRequest {
            parameter: "query",
            message: "the query must hold no control characters".into(),
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
        Some(&index) => {
            meta.mark_asked(index);
            Candidates::Article {
                view: &view.articles[index],
                index,
                prefer_primary: meta.prefer_primary,
            }
        }
        None => Candidates::Fallback(&view.fallback),
    }
}

/// Where [`candidates_for`] sends a reader: an article's own order, derived
/// from its verdicts, or the site's fallback order.
#[derive(Clone, Copy)]
pub enum Candidates<'v> {
    Article {
        view: &'v ArticleView,
        /// Its index in the site's articles.
        index: usize,
        prefer_primary: bool,
    },
    Fallback(&'v [usize]),
}

impl<'v> Candidates<'v> {
    /// Base indices, best first.
    pub fn iter(self) -> impl Iterator<Item = usize> + 'v {
        let (article, fallback) = match self {
            Candidates::Article {
                view, prefer_primary, ..
            } => (Some(view.candidates(prefer_primary)), None),
            Candidates::Fallback(order) => (None, Some(order.iter().copied())),
        };
        article.into_iter().flatten().chain(fallback.into_iter().flatten())
    }

    /// Base indices, best first, for a reader in the country of `routes`
    /// (see [`order_for_country`]) with the `demoted` bases last;
    /// [`Self::iter`] without either.
    pub fn ordered(self, routes: Option<&SiteRoutes>, demoted: Option<&[bool]>) -> impl Iterator<Item = usize> + 'v {
        let (plain, by_country) = match (routes, demoted) {
            (None, None) => (Some(self.iter()), None),
            _ => {
                let article = match self {
                    Candidates::Article { index, .. } => Some(index),
                    Candidates::Fallback(_) => None,
                };
                let order = order_for_country(self.iter(), routes, article);
                (None, Some(demote(order, demoted)))
            }
        };
        plain.into_iter().flatten().chain(by_country.into_iter().flatten())
    }
}

/// The 503's list of addresses to try by hand: every base not known to
/// serve something else there. A base just seen serving a block page, a
/// parking page, another or an older article, or a 404 is left out; one
/// that is down or unprobed stays, since it may work from the reader's side.
fn no_candidate(
    snapshot: &Snapshot,
    site_index: usize,
    path: &str,
    query: Option<&str>,
    candidates: Candidates<'_>,
) -> Decision {
    let meta = &snapshot.catalog.sites[site_index];
    let (path, query) = (uri_encoded(path, false), query.map(|q| uri_encoded(q, true)));
    let (path, query) = (path.as_ref(), query.as_deref());
    let worth_trying = |base: usize| match candidates {
        Candidates::Article { view, .. } => !matches!(
            view.verdict(base),
            Some(Verdict::Diverged | Verdict::Stale | Verdict::Missing)
        ),
        Candidates::Fallback(_) => snapshot.sites.get(site_index).is_none_or(|site| {
            let counts = &site.bases[base].verdict_counts;
            counts[Verdict::Diverged.index()] <= counts[Verdict::Same.index()]
        }),
    };
    Decision::NoCandidate {
        site: meta.name.to_string(),
        path: with_path("", path, query),
        bases: (0..meta.bases.len())
            .filter(|&b| worth_trying(b))
            .map(|b| with_path(meta.bases[b].as_str(), path, query))
            .collect(),
        retry_after_secs: crate::state::snapshot::retry_after_secs(snapshot.catalog.interval),
    }
}

/// Whether `byte` may stand for itself in a path (`query` false) or a query
/// of a URI (RFC 3986 §3.3–3.4: unreserved, sub-delims, `:`, `@`, `/`, and
/// `?` in a query). `%` is judged with what follows it.
pub fn uri_byte_allowed(byte: u8, query: bool) -> bool {
    let class = URI_BYTES[usize::from(byte)];
    class == PATH_BYTE || (query && class == QUERY_BYTE)
}

const OTHER_BYTE: u8 = 0;
const PATH_BYTE: u8 = 1;
const QUERY_BYTE: u8 = 2;

/// [`uri_byte_allowed`] as a table: every reader's target is checked on the
/// fast path, so one load per byte.
static URI_BYTES: [u8; 256] = {
    let mut table = [OTHER_BYTE; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        if allowed_in_path(b) {
            table[byte] = PATH_BYTE;
        } else if b == b'?' {
            table[byte] = QUERY_BYTE;
        }
        byte += 1;
    }
    table
};

const fn allowed_in_path(byte: u8) -> bool {
    byte.is_ascii_alphanumeric()
        || matches!(
            byte,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
                | b'/'
        )
}

/// Whether `text[at..]` starts a well-formed `%XX` escape.
fn escape_at(text: &[u8], at: usize) -> bool {
    text.get(at) == Some(&b'%')
        && text.get(at + 1).is_some_and(u8::is_ascii_hexdigit)
        && text.get(at + 2).is_some_and(u8::is_ascii_hexdigit)
}

/// `text` with every byte RFC 3986 does not allow in a path (or a query)
/// percent-encoded, so a reader's `<`, `>`, `"`, space or non-ASCII cannot
/// end a `Link` target or reach a header as itself. Existing `%XX` escapes
/// stay; a `%` that starts none becomes `%25`. Borrowed when nothing needs
/// encoding, which is every ordinary article URL.
pub fn uri_encoded(text: &str, query: bool) -> std::borrow::Cow<'_, str> {
    let bytes = text.as_bytes();
    let fine = |at: usize| uri_byte_allowed(bytes[at], query) || escape_at(bytes, at);
    let Some(first) = (0..bytes.len()).find(|&at| !fine(at)) else {
        return std::borrow::Cow::Borrowed(text);
    };
    let mut out = String::with_capacity(text.len() + 16);
    out.push_str(&text[..first]);
    for at in first..bytes.len() {
        if fine(at) {
            out.push(bytes[at] as char);
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.push('%');
            out.push(HEX[usize::from(bytes[at] >> 4)] as char);
            out.push(HEX[usize::from(bytes[at] & 15)] as char);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Whether the fast path may write `target` as it came: true when no byte
/// of it needs encoding. Anything else goes through the router, which encodes.
pub fn target_is_canonical(target: &str) -> bool {
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    matches!(uri_encoded(path, false), std::borrow::Cow::Borrowed(_))
        && query.is_none_or(|q| matches!(uri_encoded(q, true), std::borrow::Cow::Borrowed(_)))
}

/// One `Link` field value naming `url` as a duplicate of the answer.
pub fn link_value(url: &str) -> String {
    format!("<{url}>; rel=duplicate")
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

/// The reader-path invariant, for the property tests and the fuzz target:
/// every URL a redirect names is a configured base's origin followed by `/`
/// and holds only what RFC 3986 allows, and the `Link` fields as written
/// parse (RFC 8288) into link-values whose targets are exactly those URLs.
#[doc(hidden)]
pub fn check_redirect(snapshot: &Snapshot, decision: &Decision) -> Result<(), String> {
    let Decision::Redirect { location, alternates } = decision else {
        return Ok(());
    };
    let on_a_base = |url: &str| {
        snapshot.catalog.sites.iter().flat_map(|s| &s.bases).any(|base| {
            url.strip_prefix(base.as_str())
                .is_some_and(|rest| rest.starts_with('/'))
        })
    };
    for url in std::iter::once(location).chain(alternates) {
        if !on_a_base(url) {
            return Err(format!("redirect off the configured bases: {url:?}"));
        }
        let bytes = url.as_bytes();
        let gen_delims_in_origin = |b: u8| matches!(b, b'[' | b']');
        if let Some(at) = (0..bytes.len())
            .find(|&at| !(uri_byte_allowed(bytes[at], true) || escape_at(bytes, at) || gen_delims_in_origin(bytes[at])))
        {
            return Err(format!(
                "byte {:?} at {at} is not allowed in a URI: {url:?}",
                bytes[at] as char
            ));
        }
    }
    for alternate in alternates {
        let field = link_value(alternate);
        let targets = parse_link_field(&field)?;
        if targets != [alternate.as_str()] {
            return Err(format!("Link {field:?} parses as targets {targets:?}"));
        }
    }
    Ok(())
}

/// The targets of a `Link` field (RFC 8288 §3): `<URI-Reference>` then
/// `; param`s, link-values separated by commas. Strict: anything else is an
/// error, so a target that smuggles a second link-value shows.
#[doc(hidden)]
pub fn parse_link_field(field: &str) -> Result<Vec<&str>, String> {
    let mut targets = Vec::new();
    let mut rest = field.trim_start_matches([' ', '\t']);
    loop {
        let Some(after) = rest.strip_prefix('<') else {
            return Err(format!("a link-value must start with '<': {rest:?}"));
        };
        let Some(end) = after.find('>') else {
            return Err(format!("unterminated link target: {after:?}"));
        };
        targets.push(&after[..end]);
        rest = &after[end + 1..];
        // Parameters: `; token=(token / quoted-string)`, up to a ',' or the end.
        loop {
            rest = rest.trim_start_matches([' ', '\t']);
            let Some(param) = rest.strip_prefix(';') else { break };
            let param = param.trim_start_matches([' ', '\t']);
            let name_end = param
                .find(|c: char| !(c.is_ascii_alphanumeric() || "!#$&+-.^_`|~*".contains(c)))
                .unwrap_or(param.len());
            if name_end == 0 {
                return Err(format!("a link-param must have a name: {param:?}"));
            }
            rest = &param[name_end..];
            if let Some(value) = rest.strip_prefix('=') {
                if let Some(quoted) = value.strip_prefix('"') {
                    let Some(close) = quoted.find('"') else {
                        return Err(format!("unterminated quoted link-param: {value:?}"));
                    };
                    rest = &quoted[close + 1..];
                } else {
                    let value_end = value
                        .find(|c: char| !(c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)))
                        .unwrap_or(value.len());
                    rest = &value[value_end..];
                }
            }
        }
        if rest.is_empty() {
            return Ok(targets);
        }
        let Some(next) = rest.strip_prefix(',') else {
            return Err(format!("unexpected text after a link-value: {rest:?}"));
        };
        rest = next.trim_start_matches([' ', '\t']);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::fixtures::sample_snapshot;
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
        "<",
        ">",
        ">;rel=preload;as=script,<https://evil.example/x.js",
        "\"",
        "`",
        "{",
        "}",
        "|",
        "^",
        "[",
        "]",
        ",",
        ";",
        "%",
        "%zz",
        "%3E",
        "\u{e9}",
        "\u{1F600}",
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

    fn check(snapshot: &Snapshot, decision: Decision) -> Result<(), TestCaseError> {
        if let Err(problem) = check_redirect(snapshot, &decision) {
            return Err(TestCaseError::fail(problem));
        }
        if let Decision::Redirect { location, .. } = &decision {
            prop_assert!(BASES.iter().any(|base| location.starts_with(base)));
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn r_only_ever_redirects_to_a_configured_base(path in hostile(), query in proptest::option::of(hostile())) {
            let snapshot = sample_snapshot();
            for site in ["news", "other", "nope"] {
                check(&snapshot, redirect(&snapshot, site, &format!("/{path}"), query.as_deref()))?;
            }
        }

        #[test]
        fn go_only_ever_redirects_to_a_configured_base(
            prefix in prop::sample::select(&["", "https://www.example.co.uk", "https://www.example.com", "http://mirror.example.net:8080"][..]),
            rest in hostile(),
        ) {
            let snapshot = sample_snapshot();
            check(&snapshot, go(&snapshot, Some(&format!("{prefix}{rest}"))))?;
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
        // The reader's `>` must not end the Link target and start a second link-value.
        let attack = redirect(
            &snapshot,
            "news",
            "/a>;rel=preload;as=script,<https://evil.example/x.js",
            None,
        );
        assert_eq!(
            attack,
            Decision::Redirect {
                location: "https://www.example.co.uk/a%3E;rel=preload;as=script,%3Chttps://evil.example/x.js".into(),
                alternates: vec![
                    "http://mirror.example.net:8080/a%3E;rel=preload;as=script,%3Chttps://evil.example/x.js".into()
                ],
            }
        );
        check_redirect(&snapshot, &attack).unwrap();
        assert_eq!(
            uri_encoded("/a b\"`{}|\\^\u{e9}%zz%41", false),
            "/a%20b%22%60%7B%7D%7C%5C%5E%C3%A9%25zz%41"
        );
        assert_eq!(uri_encoded("q=?/a", true), "q=?/a");
        assert_eq!(uri_encoded("q=?/a", false), "q=%3F/a");
        assert!(
            parse_link_field("<https://a/x>;rel=preload;as=script,<https://evil/x.js>; rel=duplicate")
                .unwrap()
                .len()
                == 2
        );
        // Found by the property test: a query must not carry a header break into Location.
        assert!(matches!(
            redirect(&snapshot, "news", "/a", Some("\r\nSet-Cookie: x=1")),
            Decision::BadRequest { parameter: "query", .. }
        ));
    }
}
