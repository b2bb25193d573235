//! What kind of page a body is, when it is not an article: a censor's
//! block page, a parked domain, a "not found" page served with 200.
//!
//! Block pages are recognised by the operator's fingerprints, in the schema
//! of OONI's blocking-fingerprints CSV (`name, scope, location_found,
//! pattern_type, pattern, ...`): a pattern (`full`, `prefix`, `contains` or
//! `regexp`) looked for in the body or in a header (`header.location`,
//! `header.server`...). Rows of scope `fp` mark false positives in OONI's
//! data and are skipped. Besides those, a few built-in rules, each looked for
//! only in a small page (an article is not small): block and seizure notices,
//! parking phrases, a "not found" title; and redirects to known parking hosts.
//! Pure: patterns in, a class out.

use std::fmt;

use aho_corasick::AhoCorasick;
use regex::bytes::Regex;
use sha2::{Digest, Sha256};

/// Why a page is not the article (the reasons verdicts carry).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PageClass {
    BlockPage,
    Parked,
    Soft404,
    NotHtml,
    Truncated,
}

impl PageClass {
    pub fn as_str(self) -> &'static str {
        match self {
            PageClass::BlockPage => "block_page",
            PageClass::Parked => "parked",
            PageClass::Soft404 => "soft_404",
            PageClass::NotHtml => "not_html",
            PageClass::Truncated => "truncated",
        }
    }
}

/// A class and the rule that gave it, for evidence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Classified {
    pub class: PageClass,
    pub rule: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PatternType {
    Full,
    Prefix,
    Contains,
    Regexp,
}

#[derive(Clone, Debug)]
enum Location {
    Body,
    /// A header, by its lower-case name.
    Header(String),
}

#[derive(Clone, Debug)]
struct Pattern {
    name: String,
    location: Location,
    kind: PatternType,
    text: Vec<u8>,
    regex: Option<Regex>,
}

/// Operator-supplied block page fingerprints.
#[derive(Clone, Debug, Default)]
pub struct BlockFingerprints {
    patterns: Vec<Pattern>,
    /// The `contains` patterns on bodies, searched as a body streams.
    contains: Option<AhoCorasick>,
    /// Pattern index for each `contains` automaton pattern.
    contains_index: Vec<usize>,
    longest_contains: usize,
    /// A digest of the file, so that verdicts computed under other
    /// fingerprints are not reused (see [`super::Normalizer::key`]).
    digest: [u8; 32],
}

/// A problem in a fingerprints file, at a line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsvError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for CsvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// The body bytes kept for `full`, `prefix` and `regexp` patterns: block
/// pages are small.
const BODY_HEAD_BYTES: usize = 64 * 1024;

impl BlockFingerprints {
    /// Reads OONI's CSV schema; every problem is reported with its line.
    pub fn parse_csv(text: &str) -> Result<Self, Vec<CsvError>> {
        let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(text.as_bytes());
        let headers = match reader.headers() {
            Ok(headers) => headers.clone(),
            Err(e) => {
                return Err(vec![CsvError {
                    line: 1,
                    message: e.to_string(),
                }]);
            }
        };
        let column = |name: &str| headers.iter().position(|h| h.trim() == name);
        let mut errors = Vec::new();
        let required = ["name", "location_found", "pattern_type", "pattern"];
        let columns: Vec<Option<usize>> = required.iter().map(|c| column(c)).collect();
        for (name, found) in required.iter().zip(&columns) {
            if found.is_none() {
                errors.push(CsvError {
                    line: 1,
                    message: format!("the header has no `{name}` column (OONI's schema: name, scope, location_found, pattern_type, pattern, ...)"),
                });
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let [name_at, location_at, type_at, pattern_at] =
            [columns[0], columns[1], columns[2], columns[3]].map(|c| c.unwrap_or(0));
        let scope_at = column("scope");
        let mut patterns = Vec::new();
        for record in reader.records() {
            let record = match record {
                Ok(record) => record,
                Err(e) => {
                    let line = e.position().map_or(0, |p| p.line() as usize);
                    errors.push(CsvError {
                        line,
                        message: e.to_string(),
                    });
                    continue;
                }
            };
            let line = record.position().map_or(0, |p| p.line() as usize);
            let field = |at: usize| record.get(at).unwrap_or("").trim();
            if scope_at.is_some_and(|at| field(at) == "fp") {
                continue;
            }
            let location = match field(location_at) {
                "body" => Location::Body,
                "dns" => continue,
                other => match other.strip_prefix("header.") {
                    Some(header) if !header.is_empty() => Location::Header(header.to_ascii_lowercase()),
                    _ => {
                        errors.push(CsvError {
                            line,
                            message: format!("location_found \"{other}\" is not `body` or `header.NAME`"),
                        });
                        continue;
                    }
                },
            };
            let kind = match field(type_at) {
                "full" => PatternType::Full,
                "prefix" => PatternType::Prefix,
                "contains" => PatternType::Contains,
                "regexp" => PatternType::Regexp,
                other => {
                    errors.push(CsvError {
                        line,
                        message: format!("pattern_type \"{other}\" is not full, prefix, contains or regexp"),
                    });
                    continue;
                }
            };
            // The pattern is taken as written, spaces included.
            let text = record.get(pattern_at).unwrap_or("");
            if text.is_empty() {
                errors.push(CsvError {
                    line,
                    message: "the pattern is empty".into(),
                });
                continue;
            }
            let regex = match kind {
                PatternType::Regexp => match Regex::new(text) {
                    Ok(regex) => Some(regex),
                    Err(e) => {
                        errors.push(CsvError {
                            line,
                            message: format!("pattern is not a regular expression: {e}"),
                        });
                        continue;
                    }
                },
                _ => None,
            };
            patterns.push(Pattern {
                name: field(name_at).to_string(),
                location,
                kind,
                text: text.as_bytes().to_vec(),
                regex,
            });
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut fingerprints = BlockFingerprints {
            patterns,
            digest: Sha256::digest(text.as_bytes()).into(),
            ..BlockFingerprints::default()
        };
        let contains: Vec<(usize, &[u8])> = fingerprints
            .patterns
            .iter()
            .enumerate()
            .filter(|(_, p)| matches!(p.location, Location::Body) && p.kind == PatternType::Contains)
            .map(|(i, p)| (i, p.text.as_slice()))
            .collect();
        if !contains.is_empty() {
            fingerprints.longest_contains = contains.iter().map(|(_, t)| t.len()).max().unwrap_or(0);
            fingerprints.contains_index = contains.iter().map(|(i, _)| *i).collect();
            fingerprints.contains = AhoCorasick::new(contains.iter().map(|(_, t)| *t)).ok();
        }
        Ok(fingerprints)
    }

    pub fn len(&self) -> usize {
        self.patterns.len()
    }

    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// A scanner for one body.
    pub fn scanner(self: &std::sync::Arc<Self>) -> BodyScan {
        BodyScan::new(self.clone())
    }

    /// The first fingerprint a header value matches.
    pub fn header_match(&self, header: &str, value: &str) -> Option<&str> {
        self.patterns.iter().find_map(|p| match &p.location {
            Location::Header(name) if name.eq_ignore_ascii_case(header) && matches_value(p, value.as_bytes(), true) => {
                Some(p.name.as_str())
            }
            _ => None,
        })
    }
}

fn matches_value(pattern: &Pattern, value: &[u8], whole: bool) -> bool {
    match pattern.kind {
        PatternType::Full => whole && value == pattern.text.as_slice(),
        PatternType::Prefix => value.starts_with(&pattern.text),
        PatternType::Contains => memchr::memmem::find(value, &pattern.text).is_some(),
        PatternType::Regexp => pattern.regex.as_ref().is_some_and(|r| r.is_match(value)),
    }
}

/// Looks for the fingerprints in a body as it streams.
pub struct BodyScan {
    fingerprints: std::sync::Arc<BlockFingerprints>,
    head: Vec<u8>,
    /// The end of the previous chunk, for `contains` patterns across chunks.
    tail: Vec<u8>,
    total: usize,
    found: Option<String>,
}

impl BodyScan {
    pub(crate) fn new(fingerprints: std::sync::Arc<BlockFingerprints>) -> Self {
        BodyScan {
            fingerprints,
            head: Vec::new(),
            tail: Vec::new(),
            total: 0,
            found: None,
        }
    }

    pub fn update(&mut self, chunk: &[u8]) {
        self.total += chunk.len();
        if self.head.len() < BODY_HEAD_BYTES {
            let take = chunk.len().min(BODY_HEAD_BYTES - self.head.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        if self.found.is_some() {
            return;
        }
        let Some(automaton) = &self.fingerprints.contains else {
            return;
        };
        let keep = self.fingerprints.longest_contains.saturating_sub(1);
        let mut window = std::mem::take(&mut self.tail);
        window.extend_from_slice(chunk);
        if let Some(m) = automaton.find(&window) {
            let index = self.fingerprints.contains_index[m.pattern().as_usize()];
            self.found = Some(self.fingerprints.patterns[index].name.clone());
        }
        self.tail = window[window.len().saturating_sub(keep)..].to_vec();
    }

    /// The fingerprint the body matched, if any.
    pub fn finish(self) -> Option<String> {
        if self.found.is_some() {
            return self.found;
        }
        let whole = self.total == self.head.len();
        self.fingerprints.patterns.iter().find_map(|p| {
            let body_pattern = matches!(p.location, Location::Body) && p.kind != PatternType::Contains;
            (body_pattern && matches_value(p, &self.head, whole)).then(|| p.name.clone())
        })
    }
}

/// Pages with at most this much visible text are "small": only those are
/// looked at for the built-in phrases.
pub(crate) const SMALL_PAGE_TEXT: u64 = 2000;

const BLOCK_PHRASES: [&str; 14] = [
    "access to this website has been restricted",
    "access to this site has been blocked",
    "this website has been blocked",
    "this site has been blocked",
    "this website is blocked",
    "has been blocked by order",
    "blocked in accordance with",
    "by order of the court",
    "is not available in your country",
    "unavailable for legal reasons",
    "this domain has been seized",
    "this website has been seized",
    "this site has been seized",
    "domain name has been seized",
];

const PARKING_PHRASES: [&str; 12] = [
    "this domain is for sale",
    "this domain may be for sale",
    "domain is for sale",
    "domain may be for sale",
    "buy this domain",
    "this domain is parked",
    "domain has expired",
    "parked free",
    "parked domain",
    "make an offer on this domain",
    "this domain name is available",
    "related searches",
];

/// Hosts (and their subdomains) of domain parking services.
const PARKING_HOSTS: [&str; 16] = [
    "sedoparking.com",
    "sedo.com",
    "parkingcrew.net",
    "bodis.com",
    "above.com",
    "dan.com",
    "afternic.com",
    "hugedomains.com",
    "uniregistry.com",
    "parklogic.com",
    "domainmarket.com",
    "parkingpage.namecheap.com",
    "namebright.com",
    "domainparking.ru",
    "parking.reg.ru",
    "searchhounds.com",
];

const NOT_FOUND_TITLES: [&str; 10] = [
    "404",
    "not found",
    "page not found",
    "no encontrada",
    "introuvable",
    "nicht gefunden",
    "non trovata",
    "não encontrada",
    "не найдена",
    "یافت نشد",
];

/// A redirect to a domain parking service.
pub fn parking_redirect(location: &str) -> Option<String> {
    let host = url::Url::parse(location).ok()?.host_str()?.to_ascii_lowercase();
    let host = host.trim_end_matches('.');
    PARKING_HOSTS
        .iter()
        .find(|p| host == **p || host.ends_with(&format!(".{p}")))
        .map(|p| format!("built-in: redirect to the parking host {p}"))
}

/// The built-in rules for a page's visible text and title.
pub(crate) fn builtin(title: &str, text: &[u8], text_len: u64) -> Option<Classified> {
    let small = text_len <= SMALL_PAGE_TEXT;
    let lower_title = title.to_lowercase();
    let lower_text = String::from_utf8_lossy(text).to_lowercase();
    let found = |phrases: &[&str]| {
        phrases
            .iter()
            .find(|p| lower_title.contains(*p) || lower_text.contains(*p))
            .map(|p| p.to_string())
    };
    if small {
        if let Some(phrase) = found(&BLOCK_PHRASES) {
            return Some(Classified {
                class: PageClass::BlockPage,
                rule: format!("built-in: small page saying \"{phrase}\""),
            });
        }
        if let Some(phrase) = found(&PARKING_PHRASES) {
            return Some(Classified {
                class: PageClass::Parked,
                rule: format!("built-in: small page saying \"{phrase}\""),
            });
        }
        if let Some(host) = PARKING_HOSTS.iter().find(|h| lower_text.contains(*h)) {
            return Some(Classified {
                class: PageClass::Parked,
                rule: format!("built-in: small page naming the parking host {host}"),
            });
        }
    }
    // Only a small page: "Flight 404" or "Body not found in river" are
    // articles, and their titles say nothing about the page.
    if !small {
        return None;
    }
    NOT_FOUND_TITLES
        .iter()
        .find(|t| contains_word(&lower_title, t))
        .map(|t| Classified {
            class: PageClass::Soft404,
            rule: format!("built-in: title \"{title}\" says \"{t}\""),
        })
}

/// `phrase` in `text`, not as part of a longer word or number.
fn contains_word(text: &str, phrase: &str) -> bool {
    text.match_indices(phrase).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + phrase.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

/// The first bytes of a body say it is binary (the MIME sniffing
/// standard's "binary data byte").
pub(crate) fn looks_binary(head: &[u8]) -> bool {
    head.iter()
        .take(512)
        .any(|&b| matches!(b, 0x00..=0x08 | 0x0B | 0x0E..=0x1A | 0x1C..=0x1F))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str = "name,scope,other_names,location_found,pattern_type,pattern,confidence_no_fp,expected_countries,source,exp_url,notes\n\
        t.1,nat,,body,contains,Access to this website has been restricted,5,XX,test,,\n\
        t.2,isp,,header.location,prefix,http://blocked.example.invalid/,5,XX,test,,\n\
        t.3,fp,,body,contains,<title>,5,,test,,never counts\n\
        t.4,isp,,body,regexp,Blocked by [A-Z]+ Filter,5,,test,,\n\
        t.5,isp,,body,full,denied,5,,test,,\n";

    #[test]
    fn csv_in_oonis_schema() {
        let fingerprints = BlockFingerprints::parse_csv(CSV).unwrap();
        assert_eq!(fingerprints.len(), 4, "the fp row is skipped");
        assert_eq!(
            fingerprints.header_match("Location", "http://blocked.example.invalid/?u=x"),
            Some("t.2")
        );
        assert_eq!(fingerprints.header_match("location", "https://elsewhere.test/"), None);
        let scan = |body: &[u8], piece: usize| {
            let mut scan = BodyScan::new(std::sync::Arc::new(fingerprints.clone()));
            for chunk in body.chunks(piece) {
                scan.update(chunk);
            }
            scan.finish()
        };
        let body = b"<html><h1>Access to this website has been restricted</h1>";
        for piece in [1, 3, 7, body.len()] {
            assert_eq!(scan(body, piece).as_deref(), Some("t.1"), "pieces of {piece}");
        }
        assert_eq!(scan(b"<p>Blocked by ACME Filter</p>", 4).as_deref(), Some("t.4"));
        assert_eq!(scan(b"denied", 2).as_deref(), Some("t.5"));
        assert_eq!(scan(b"access denied", 2), None, "full means the whole body");
        assert_eq!(scan(b"<title>an article</title>", 5), None);
    }

    #[test]
    fn csv_problems_name_their_line() {
        let bad = "name,scope,location_found,pattern_type,pattern\n\
            a,nat,body,contains,x\n\
            b,nat,cookie,contains,y\n\
            c,nat,body,glob,z\n\
            d,nat,body,regexp,(\n";
        let errors = BlockFingerprints::parse_csv(bad).unwrap_err();
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [3, 4, 5], "{errors:?}");
        let missing = BlockFingerprints::parse_csv("name,pattern\na,b\n").unwrap_err();
        assert!(missing[0].message.contains("location_found"), "{missing:?}");
    }

    #[test]
    fn builtin_rules_look_at_small_pages_only() {
        let blocked = builtin("Access denied", b"Access to this website has been restricted", 42);
        assert_eq!(blocked.map(|c| c.class), Some(PageClass::BlockPage));
        let parked = builtin("This domain is for sale", b"This domain may be for sale", 30);
        assert_eq!(parked.map(|c| c.class), Some(PageClass::Parked));
        let long_article = "word ".repeat(1000);
        let about_blocking = format!("{long_article} this website has been blocked in some countries");
        assert_eq!(
            builtin("A story", about_blocking.as_bytes(), about_blocking.len() as u64),
            None
        );
        assert_eq!(
            builtin("Page not found | News", b"x", 1).map(|c| c.class),
            Some(PageClass::Soft404)
        );
        // Articles whose titles happen to say it.
        for title in ["Flight 404 lands safely", "Body not found in river"] {
            assert_eq!(builtin(title, long_article.as_bytes(), 5000), None, "{title}");
        }
        assert_eq!(builtin("Route 4040 reopens", b"short", 5), None);
        assert!(parking_redirect("https://www.sedoparking.com/x").is_some());
        assert!(parking_redirect("https://sedoparking.com.evil.test/").is_none());
    }
}
