//! Every way a copy can spell the same destination, mapped to one.
//!
//! A mirror writes its own host into its links, a crawler copy makes them
//! relative to the page, a proxy rewrites the host everywhere, even inside
//! percent-encoded and JSON-escaped URLs. So a URL attribute is resolved
//! against the page's own URL (and its `<base href>`) first, as a browser
//! would, and then any of the site's bases or their aliases (with or
//! without `www.`, any scheme) is replaced by the primary's origin. Text
//! gets the same host replacement for the spellings it can hold, and a
//! host named on its own ("read us at www.example.co.uk") becomes the
//! primary's host, as a proxy that rewrites hosts everywhere writes it.

use std::borrow::Cow;

use url::Url;

use crate::origin::Origin;

/// The hosts of one site and the origin they all map to.
#[derive(Clone, Debug)]
pub(crate) struct SiteHosts {
    primary: String,
    /// The primary's `host[:port]`, for hosts named without a scheme.
    primary_authority: String,
    /// Lower-case `host[:port]` of every base and alias and their www/non-www
    /// twins, longest first so a longer host wins over its suffix.
    authorities: Vec<String>,
    /// Each base's `host[:port]` and its www twin (no aliases), by base.
    bases: Vec<[String; 2]>,
}

impl SiteHosts {
    /// `aliases`: extra hosts (`img.example.co.uk`, `cdn.example.com:8443`)
    /// that belong to the site's bases.
    pub(crate) fn new<'a>(
        primary: &Origin,
        bases: impl IntoIterator<Item = &'a Origin>,
        aliases: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        let bases: Vec<&Origin> = bases.into_iter().collect();
        let base_authorities = bases
            .iter()
            .map(|b| {
                let authority = b.authority().to_ascii_lowercase();
                let twin = match authority.strip_prefix("www.") {
                    Some(bare) => bare.to_string(),
                    None => format!("www.{authority}"),
                };
                [authority, twin]
            })
            .collect();
        let mut authorities = Vec::new();
        let mut add = |authority: String, host: &str| {
            // IP literals have no www twin.
            if host.parse::<std::net::IpAddr>().is_err() && !host.starts_with('[') {
                authorities.push(match authority.strip_prefix("www.") {
                    Some(bare) => bare.to_string(),
                    None => format!("www.{authority}"),
                });
            }
            authorities.push(authority);
        };
        for base in bases {
            add(base.authority().to_ascii_lowercase(), base.host());
        }
        for alias in aliases {
            let alias = alias.to_ascii_lowercase();
            let host = alias.rsplit_once(':').map_or(alias.as_str(), |(h, _)| h).to_string();
            add(alias, &host);
        }
        authorities.sort_by_key(|a| std::cmp::Reverse(a.len()));
        authorities.dedup();
        SiteHosts {
            primary: primary.as_str().to_string(),
            primary_authority: primary.authority().to_ascii_lowercase(),
            authorities,
            bases: base_authorities,
        }
    }

    /// The key of what this mapping depends on, for caches.
    pub(crate) fn describe(&self) -> String {
        format!("{} {}", self.primary, self.authorities.join(","))
    }

    fn is_site_authority(&self, url: &Url) -> bool {
        let Some(host) = url.host_str() else {
            return false;
        };
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host,
        };
        self.authorities.contains(&authority)
    }

    /// A base's or alias's `host[:port]` (or its www twin).
    pub(crate) fn is_known_authority(&self, authority: &str) -> bool {
        self.authorities.iter().any(|a| a == authority)
    }

    /// The base (index) whose `host[:port]` (or its www twin) this is.
    pub(crate) fn base_of_authority(&self, authority: &str) -> Option<usize> {
        self.bases.iter().position(|pair| pair.iter().any(|a| a == authority))
    }

    /// The canonical form of a URL attribute's value, written to `out`.
    pub(crate) fn write_url(&self, value: &[u8], base: Option<&Url>, out: &mut Vec<u8>) {
        let text = String::from_utf8_lossy(value);
        let trimmed = text.trim_matches(|c: char| c.is_ascii_whitespace());
        let parsed = match base {
            Some(base) => base.join(trimmed),
            None => Url::parse(trimmed),
        };
        let Ok(mut url) = parsed else {
            out.extend_from_slice(&self.rewrite(trimmed.as_bytes()));
            return;
        };
        if matches!(url.scheme(), "http" | "https") && self.is_site_authority(&url) {
            let path = url.path().to_string();
            let query = url.query().map(str::to_string);
            let fragment = url.fragment().map(str::to_string);
            let (path, query) = undo_crawler_file_names(&path, query);
            out.extend_from_slice(self.primary.as_bytes());
            out.extend_from_slice(path.as_bytes());
            if let Some(query) = query {
                out.push(b'?');
                out.extend_from_slice(&self.rewrite(query.as_bytes()));
            }
            if let Some(fragment) = fragment {
                out.push(b'#');
                out.extend_from_slice(fragment.as_bytes());
            }
            return;
        }
        // Another site's URL can still carry one of ours (a share link).
        url.set_fragment(url.fragment().map(str::to_string).as_deref());
        out.extend_from_slice(&self.rewrite(url.as_str().as_bytes()));
    }

    /// Finds `//host`, the JSON-escaped `\/\/host` and the percent-encoded
    /// `%2F%2Fhost` (each with or without its `http:`/`https:` scheme) for
    /// every site host and writes the primary's origin in their place.
    pub(crate) fn rewrite<'t>(&self, text: &'t [u8]) -> Cow<'t, [u8]> {
        let mut out: Option<Vec<u8>> = None;
        let mut copied = 0;
        let mut at = 0;
        while let Some(found) = memchr::memchr3(b'/', b'\\', b'%', &text[at..]) {
            let start = at + found;
            let rest = &text[start..];
            let slashes = if rest.starts_with(b"//") {
                2
            } else if rest.starts_with(br"\/\/") {
                4
            } else if rest.len() >= 6 && rest[..6].eq_ignore_ascii_case(b"%2F%2F") {
                6
            } else {
                at = start + 1;
                continue;
            };
            let host_start = start + slashes;
            let Some(host_len) = self.match_authority(&text[host_start..]) else {
                at = host_start;
                continue;
            };
            let scheme = scheme_start(text, start);
            let out = out.get_or_insert_with(|| Vec::with_capacity(text.len()));
            out.extend_from_slice(&text[copied..scheme]);
            out.extend_from_slice(self.primary.as_bytes());
            copied = host_start + host_len;
            at = copied;
        }
        match out {
            None => Cow::Borrowed(text),
            Some(mut out) => {
                out.extend_from_slice(&text[copied..]);
                Cow::Owned(out)
            }
        }
    }

    /// [`Self::rewrite`], and then site hosts named on their own (not part
    /// of a longer name, a path or an encoded URL) replaced by the
    /// primary's host: for text and for attribute values that are not URLs.
    pub(crate) fn rewrite_text<'t>(&self, text: &'t [u8]) -> Cow<'t, [u8]> {
        let text = self.rewrite(text);
        // Every host has a dot, or is an IP literal with one (or brackets).
        if memchr::memchr2(b'.', b'[', &text).is_none() {
            return text;
        }
        let mut out: Option<Vec<u8>> = None;
        let mut copied = 0;
        let mut at = 0;
        while at < text.len() {
            let starts_name = at == 0
                || !(text[at - 1].is_ascii_alphanumeric()
                    || matches!(text[at - 1], b'.' | b'-' | b'_' | b'/' | b'\\' | b'%' | b':'));
            if starts_name && let Some(n) = self.match_authority(&text[at..]) {
                let out = out.get_or_insert_with(|| Vec::with_capacity(text.len()));
                out.extend_from_slice(&text[copied..at]);
                out.extend_from_slice(self.primary_authority.as_bytes());
                copied = at + n;
                at = copied;
                continue;
            }
            at += 1;
        }
        match out {
            None => text,
            Some(mut out) => {
                out.extend_from_slice(&text[copied..]);
                Cow::Owned(out)
            }
        }
    }

    fn match_authority(&self, rest: &[u8]) -> Option<usize> {
        for authority in &self.authorities {
            let Some(n) = authority_prefix(rest, authority) else {
                continue;
            };
            // After a port only more digits would continue it.
            let ends = if authority.ends_with(|c: char| c.is_ascii_digit()) && authority.contains(':') {
                !rest.get(n).is_some_and(u8::is_ascii_alphanumeric)
            } else {
                ends_authority(&rest[n..])
            };
            if ends {
                return Some(n);
            }
        }
        None
    }
}

/// wget's `--adjust-extension` and `--convert-links` (and HTTrack) save
/// `/a/b` as `/a/b.html`, `/a/` as `/a/index.html` and `/a?x=1` as
/// `/a%3Fx=1.html`, and link to those names: read them back.
fn undo_crawler_file_names(path: &str, query: Option<String>) -> (String, Option<String>) {
    let lower = path.to_ascii_lowercase();
    for index in ["/index.html", "/index.htm"] {
        if lower.ends_with(index) {
            return (path[..path.len() - index.len() + 1].to_string(), query);
        }
    }
    let stripped = [".html", ".htm"]
        .iter()
        .find(|ext| lower.ends_with(*ext))
        .map(|ext| &path[..path.len() - ext.len()]);
    let Some(stripped) = stripped.filter(|s| !s.ends_with('/') && !s.is_empty()) else {
        return (path.to_string(), query);
    };
    if query.is_none()
        && let Some(at) = stripped.to_ascii_lowercase().find("%3f")
    {
        return (stripped[..at].to_string(), Some(stripped[at + 3..].to_string()));
    }
    (stripped.to_string(), query)
}

/// The length of `authority` (`host` or `host:port`) at the start of `text`,
/// written plainly or with its port separator percent-encoded
/// (`host%3A8443`), and a trailing dot on the host (the same host).
fn authority_prefix(text: &[u8], authority: &str) -> Option<usize> {
    let (host, port) = match authority.find(']') {
        // An IPv6 literal: its colons are not the port's.
        Some(end) => (&authority[..=end], authority[end + 1..].strip_prefix(':')),
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    if text.len() < host.len() || !text[..host.len()].eq_ignore_ascii_case(host.as_bytes()) {
        return None;
    }
    let mut n = host.len();
    if text.get(n) == Some(&b'.') {
        n += 1;
    }
    let Some(port) = port else {
        return Some(n);
    };
    let separator = if text.get(n) == Some(&b':') {
        1
    } else if text.get(n..n + 3).is_some_and(|s| s.eq_ignore_ascii_case(b"%3A")) {
        3
    } else {
        return None;
    };
    let port_at = n + separator;
    (text.get(port_at..port_at + port.len()) == Some(port.as_bytes())).then_some(port_at + port.len())
}

/// True when what follows a host cannot continue it: `example.com.evil` and
/// `example.com:8443` are other hosts.
fn ends_authority(after: &[u8]) -> bool {
    match after.first() {
        None => true,
        Some(c) if c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_' | b'@') => false,
        Some(b':') => !after.get(1).is_some_and(u8::is_ascii_digit),
        // `%3A8443`: an encoded port.
        Some(b'%') => !after.get(1..3).is_some_and(|p| p.eq_ignore_ascii_case(b"3A")),
        Some(_) => true,
    }
}

/// Where the URL whose slashes start at `slash` starts: at its `http:` or
/// `https:` scheme (or `https%3A`) if it has one.
fn scheme_start(bytes: &[u8], slash: usize) -> usize {
    for scheme in [&b"https:"[..], b"http:", b"https%3A", b"http%3A"] {
        if slash >= scheme.len() && bytes[slash - scheme.len()..slash].eq_ignore_ascii_case(scheme) {
            return slash - scheme.len();
        }
    }
    slash
}

/// The `host[:port]` an absolute or scheme-relative URL names (lower case,
/// the scheme's default port dropped, a trailing dot dropped), read
/// without parsing the whole URL: links are many and this runs for each.
/// None for a relative URL or another scheme.
pub(crate) fn authority_of(value: &[u8]) -> Option<String> {
    let value = value.trim_ascii();
    let (default_port, rest) = if let Some(rest) = strip_prefix_ignore_case(value, b"https:") {
        (Some("443"), rest)
    } else if let Some(rest) = strip_prefix_ignore_case(value, b"http:") {
        (Some("80"), rest)
    } else {
        (None, value)
    };
    // Browsers take backslashes for slashes in http(s) URLs.
    let rest = match rest {
        [b'/' | b'\\', b'/' | b'\\', rest @ ..] => rest,
        _ => return None,
    };
    let end = rest
        .iter()
        .position(|b| matches!(b, b'/' | b'\\' | b'?' | b'#'))
        .unwrap_or(rest.len());
    let authority = &rest[..end];
    // Credentials before `@` are not the host.
    let authority = match authority.iter().rposition(|&b| b == b'@') {
        Some(at) => &authority[at + 1..],
        None => authority,
    };
    let mut text = String::from_utf8_lossy(authority).to_ascii_lowercase();
    if let Some((host, port)) = text.rsplit_once(':')
        && default_port == Some(port)
    {
        text = host.to_string();
    }
    if let Some(stripped) = text.strip_suffix('.') {
        text = stripped.to_string();
    }
    (!text.is_empty()).then_some(text)
}

fn strip_prefix_ignore_case<'v>(value: &'v [u8], prefix: &[u8]) -> Option<&'v [u8]> {
    (value.len() >= prefix.len() && value[..prefix.len()].eq_ignore_ascii_case(prefix)).then(|| &value[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts() -> SiteHosts {
        let bases: Vec<Origin> = [
            "https://www.example.com",
            "https://www.example.co.uk",
            "http://127.0.0.1:8081",
        ]
        .iter()
        .map(|b| Origin::parse(b).unwrap())
        .collect();
        SiteHosts::new(&bases[0], &bases, ["img.example.co.uk"])
    }

    fn url(value: &str, page: &str) -> String {
        let mut out = Vec::new();
        hosts().write_url(value.as_bytes(), Some(&Url::parse(page).unwrap()), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn hosts_named_in_text_map_to_the_primarys() {
        let hosts = hosts();
        let text = |t: &str| String::from_utf8(hosts.rewrite_text(t.as_bytes()).into_owned()).unwrap();
        for (written, want) in [
            ("www.example.co.uk", "www.example.com"),
            ("(example.co.uk).", "(www.example.com)."),
            ("news@www.example.co.uk", "news@www.example.com"),
            ("127.0.0.1:8081,", "www.example.com,"),
            ("127.0.0.1:8081.", "www.example.com."),
            ("WWW.EXAMPLE.CO.UK", "www.example.com"),
            // Other names that merely contain one of ours stay as written.
            ("www.example.co.uk.evil.test", "www.example.co.uk.evil.test"),
            ("notexample.co.uk", "notexample.co.uk"),
            ("127.0.0.1:80815", "127.0.0.1:80815"),
            ("dispute.", "dispute."),
        ] {
            assert_eq!(text(written), want, "{written}");
        }
    }

    #[test]
    fn urls_resolve_against_the_page_then_map_to_the_primary() {
        let page = "https://www.example.co.uk/Detail/2017/01/24/story";
        let want = "https://www.example.com/Detail/2017/01/23/related";
        for spelling in [
            "https://www.example.com/Detail/2017/01/23/related",
            "../23/related",
            "/Detail/2017/01/23/related",
            "//example.co.uk/Detail/2017/01/23/related",
            "HTTP://WWW.EXAMPLE.CO.UK/Detail/2017/01/23/related",
            "../23/related.html",
            " \n../23/related ",
        ] {
            assert_eq!(url(spelling, page), want, "{spelling}");
        }
        assert_eq!(
            url("https://img.example.co.uk/x.jpg", page),
            "https://www.example.com/x.jpg"
        );
        assert_eq!(url("http://127.0.0.1:8081/", page), "https://www.example.com/");
        // A proxy that rewrites hosts with ports, in every spelling.
        for spelling in [
            "https://social.test/share?u=http%3A%2F%2F127.0.0.1%3A8081%2Fa",
            "https://social.test/share?u=http%3a%2f%2f127.0.0.1%3a8081%2fa",
            r"https://social.test/share?u=http:\/\/127.0.0.1:8081\/a",
        ] {
            assert!(
                url(spelling, page).starts_with("https://social.test/share?u=https://www.example.com"),
                "{spelling}: {}",
                url(spelling, page)
            );
        }
        assert!(!url("https://social.test/share?u=http%3A%2F%2F127.0.0.1%3A80819", page).contains("example.com"));
        assert_eq!(url("../../index.html", page), "https://www.example.com/Detail/2017/");
        assert_eq!(
            url("a%3Fid=7.html", page),
            "https://www.example.com/Detail/2017/01/24/a?id=7"
        );
        assert_eq!(url("https://evil.test/a", page), "https://evil.test/a");
        assert_eq!(
            url("https://www.example.co.uk.evil.test/a", page),
            "https://www.example.co.uk.evil.test/a"
        );
        assert_eq!(
            url("https://www.example.com:8443/a", page),
            "https://www.example.com:8443/a"
        );
    }

    #[test]
    fn encoded_hosts_inside_other_urls() {
        let page = "https://www.example.co.uk/a";
        assert_eq!(
            url("https://social.test/share?u=https%3A%2F%2Fwww.example.co.uk%2Fa", page),
            url("https://social.test/share?u=https%3A%2F%2Fwww.example.com%2Fa", page),
        );
        let text = hosts()
            .rewrite(br#"{"u":"https:\/\/www.example.co.uk\/a"}"#)
            .into_owned();
        assert_eq!(
            String::from_utf8(text).unwrap(),
            r#"{"u":"https://www.example.com\/a"}"#
        );
    }
}
