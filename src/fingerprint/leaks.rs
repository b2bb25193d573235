//! Leaks back to another base: a mirror whose page loads its images,
//! scripts or styles from the primary (or another mirror) breaks exactly
//! where that base is blocked, even when its article text is the same.
//! Counted per page as the tree builder reports elements: subresources
//! and links whose host is another configured base, not the page's own.

use serde::Serialize;
use url::Url;

use super::names::{Name, Ns, n};
use super::tree::Attrs;
use super::urls::{SiteHosts, authority_of};

/// URLs kept as examples, at most.
const EXAMPLES: usize = 3;
/// An example longer than this is cut.
const EXAMPLE_CHARS: usize = 200;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Leaks {
    /// Subresources (images, scripts, styles, frames, media) from another base.
    pub resources: u32,
    /// Links to another base.
    pub links: u32,
    /// Up to three of the URLs.
    pub examples: Vec<String>,
}

impl Leaks {
    pub fn is_empty(&self) -> bool {
        self.resources == 0 && self.links == 0
    }
}

pub(crate) struct LeakCounter {
    /// The page's own base.
    own: Option<usize>,
    /// The base relative URLs resolve to (the `<base>`'s, else the page's).
    relative: Option<usize>,
    pub(crate) leaks: Leaks,
}

fn base_of(hosts: &SiteHosts, url: Option<&Url>) -> Option<usize> {
    let url = url?;
    let host = url.host_str()?.trim_end_matches('.').to_ascii_lowercase();
    let authority = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host,
    };
    hosts.base_of_authority(&authority)
}

impl LeakCounter {
    pub(crate) fn new(hosts: &SiteHosts, document: Option<&Url>) -> Self {
        let own = base_of(hosts, document);
        LeakCounter {
            own,
            relative: own,
            leaks: Leaks::default(),
        }
    }

    /// A `<base href>` took effect.
    pub(crate) fn base_changed(&mut self, hosts: &SiteHosts, base: Option<&Url>) {
        self.relative = base_of(hosts, base);
    }

    pub(crate) fn element(&mut self, hosts: &SiteHosts, ns: Ns, name: &Name, attrs: Attrs<'_>) {
        if self.own.is_none() {
            return;
        }
        if let Some(style) = attrs.get(b"style")
            && memchr::memmem::find(style, b"url(").is_some()
        {
            for url in css_urls(style) {
                self.check(hosts, url, true);
            }
        }
        if ns != Ns::Html {
            return;
        }
        let Some(short) = name.short() else { return };
        let resource = |key: &[u8]| attrs.get(key);
        match short {
            n::A | n::AREA => {
                if let Some(href) = resource(b"href") {
                    self.check(hosts, href, false);
                }
            }
            n::IMG | n::SOURCE => {
                if let Some(src) = resource(b"src") {
                    self.check(hosts, src, true);
                }
                if let Some(srcset) = resource(b"srcset") {
                    for candidate in srcset.split(|&b| b == b',') {
                        if let Some(url) = candidate.trim_ascii().split(|b| b.is_ascii_whitespace()).next() {
                            self.check(hosts, url, true);
                        }
                    }
                }
            }
            n::SCRIPT | n::IFRAME | n::FRAME | n::EMBED | n::TRACK | n::AUDIO | n::INPUT => {
                if let Some(src) = resource(b"src") {
                    self.check(hosts, src, true);
                }
            }
            n::VIDEO => {
                for key in [&b"src"[..], b"poster"] {
                    if let Some(url) = resource(key) {
                        self.check(hosts, url, true);
                    }
                }
            }
            n::OBJECT => {
                if let Some(data) = resource(b"data") {
                    self.check(hosts, data, true);
                }
            }
            n::LINK => {
                let loads = resource(b"rel").is_some_and(|rel| {
                    rel.split(|b| b.is_ascii_whitespace()).any(|token| {
                        [&b"stylesheet"[..], b"icon", b"preload", b"modulepreload", b"manifest"]
                            .iter()
                            .any(|kind| token.eq_ignore_ascii_case(kind))
                    })
                });
                if loads && let Some(href) = resource(b"href") {
                    self.check(hosts, href, true);
                }
            }
            _ => {}
        }
    }

    fn check(&mut self, hosts: &SiteHosts, value: &[u8], resource: bool) {
        let trimmed = value.trim_ascii();
        if trimmed.is_empty() || trimmed.starts_with(b"#") {
            return;
        }
        let base = match authority_of(trimmed) {
            Some(authority) => hosts.base_of_authority(&authority),
            // Another scheme (mailto:, data:) names no base.
            None if has_scheme(trimmed) => None,
            None => self.relative,
        };
        let Some(base) = base else { return };
        if Some(base) == self.own {
            return;
        }
        if resource {
            self.leaks.resources += 1;
        } else {
            self.leaks.links += 1;
        }
        if self.leaks.examples.len() < EXAMPLES {
            let text: String = String::from_utf8_lossy(trimmed).chars().take(EXAMPLE_CHARS).collect();
            if !self.leaks.examples.contains(&text) {
                self.leaks.examples.push(text);
            }
        }
    }
}

fn has_scheme(value: &[u8]) -> bool {
    let Some(colon) = value.iter().position(|&b| b == b':') else {
        return false;
    };
    colon > 0
        && value[0].is_ascii_alphabetic()
        && value[..colon]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// The URLs of `url(…)` in a style attribute, quoted or not.
fn css_urls(style: &[u8]) -> Vec<&[u8]> {
    let mut urls = Vec::new();
    let mut rest = style;
    while let Some(at) = memchr::memmem::find(rest, b"url(") {
        rest = &rest[at + 4..];
        let end = rest.iter().position(|&b| b == b')').unwrap_or(rest.len());
        let inner = rest[..end].trim_ascii();
        let inner = inner
            .strip_prefix(b"\"")
            .and_then(|i| i.strip_suffix(b"\""))
            .or_else(|| inner.strip_prefix(b"'").and_then(|i| i.strip_suffix(b"'")))
            .unwrap_or(inner);
        urls.push(inner);
        rest = &rest[end.min(rest.len())..];
    }
    urls
}
