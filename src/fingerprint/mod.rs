//! Fingerprints: what a body is, as a hash of what a reader sees.
//!
//! Normalization is what lets a faithful copy hash equal to the primary
//! while a changed article does not. A body is decoded to UTF-8 (BOM, then
//! the header's charset, then the standard's prescan of the first 1024
//! bytes, else UTF-8), tokenized as a browser tokenizes ([`tokenizer`],
//! checked against the html5lib suite), run through the standard's tree
//! construction ([`tree`]) and written into hashers in a canonical form
//! ([`canon`]) as it streams: no body is held whole and no tree is built.
//! With a `content_selector` ([`selector`]), only the selected, visible
//! elements count; the page around them is summarized in [`PageFacts`] so
//! verdicts can compare it too. A page that is not an article is classified
//! ([`classify`]): block page, parking page, soft 404, not HTML, truncated.
//! Non-HTML bodies are hashed as they are. Pure: no I/O.

pub mod alternates;
mod canon;
mod charset;
pub mod classify;
mod entities;
pub mod leaks;
mod names;
mod selector;
mod style;
mod tokenizer;
mod tree;
mod urls;

use std::fmt;
use std::sync::Arc;

use encoding_rs::Encoding;
use sha2::{Digest, Sha256};
use url::Url;

use crate::origin::Origin;
use canon::{Canon, Rules};
pub use classify::{BlockFingerprints, Classified, PageClass};
use selector::Selector;
use tokenizer::Tokenizer;
use tree::TreeBuilder;
use urls::SiteHosts;

/// Changes whenever what a canonical form holds changes: hashes computed
/// under other rules are never reused.
pub const CANONICAL_FORM_VERSION: u32 = 3;

/// A SHA-256 digest, written `sha256:<hex>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    pub fn of(bytes: &[u8]) -> Self {
        Hash(Sha256::digest(bytes).into())
    }

    pub fn parse(text: &str) -> Option<Self> {
        let hex = text.strip_prefix("sha256:")?;
        if hex.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Hash(out))
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_digest(f, "sha256:", &self.0)
    }
}

/// BLAKE3 of the bytes as served, written `blake3:<hex>`. It only tells
/// "the same bytes as last time" (skip normalizing them again), so it must
/// resist collisions (a mirror could otherwise craft a body that passes for
/// an old faithful one) but need not be SHA-256, which is slow on CPUs
/// without SHA extensions; BLAKE3 is fast everywhere through SIMD.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RawHash(pub [u8; 32]);

impl RawHash {
    pub fn of(bytes: &[u8]) -> Self {
        RawHash(*blake3::hash(bytes).as_bytes())
    }
}

impl fmt::Display for RawHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_digest(f, "blake3:", &self.0)
    }
}

/// `prefix` then the digest in lower-case hex.
fn write_digest(f: &mut fmt::Formatter<'_>, prefix: &str, digest: &[u8; 32]) -> fmt::Result {
    f.write_str(prefix)?;
    for byte in digest {
        write!(f, "{byte:02x}")?;
    }
    Ok(())
}

impl fmt::Debug for RawHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for RawHash {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for Hash {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Hash {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Hash::parse(&text).ok_or_else(|| serde::de::Error::custom(format!("not a sha256: hash: {text}")))
    }
}

/// What a page looks like around its article: compared the way OONI's
/// web_connectivity compares a measurement with its control (visible text
/// length within a 0.7 proportion, the same title words of 5+ characters),
/// so a block page or an overlay that carries the article is not the article.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageFacts {
    /// Bytes of visible body text, whitespace folded (saturating).
    pub text_len: u32,
    /// A digest of the set of the title's words of five or more characters
    /// (0: none).
    pub title_words: u32,
    pub flags: u8,
    pub class: Option<PageClass>,
}

impl PageFacts {
    pub const HTML: u8 = 1;
    /// The content selector matched a visible element.
    pub const SELECTION_VISIBLE: u8 = 1 << 1;
    /// The content selector matched only hidden elements.
    pub const SELECTION_HIDDEN: u8 = 1 << 2;
    /// A fixed or absolute box covers the viewport.
    pub const OVERLAY: u8 = 1 << 3;

    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// Why this page is not like `reference`'s around the article, if it is not.
    pub fn differs_from(&self, reference: &PageFacts) -> Option<String> {
        let (a, b) = (u64::from(self.text_len), u64::from(reference.text_len));
        let (small, large) = (a.min(b), a.max(b));
        if large > 0 && (small as f64) / (large as f64) <= 0.7 {
            return Some(format!(
                "visible text is {a} bytes against the reference's {b} (proportion {:.2}, at most 0.7)",
                small as f64 / large as f64
            ));
        }
        if self.title_words != reference.title_words {
            return Some("the title's words of five or more characters differ from the reference's".into());
        }
        if self.has(Self::OVERLAY) && !reference.has(Self::OVERLAY) {
            return Some("a box covers the whole page, which the reference has not".into());
        }
        None
    }

    /// Whether this page may stand as the reference: HTML that is not a
    /// block, parking or error page, with the selection visible if there
    /// is a selector.
    pub fn trusted(&self, has_selector: bool) -> bool {
        self.class.is_none() && (!has_selector || !self.has(Self::HTML) || self.has(Self::SELECTION_VISIBLE))
    }
}

/// The title words OONI compares: five or more characters, any case.
pub fn title_words(title: &str) -> u32 {
    let mut words: Vec<String> = title
        .split(' ')
        .filter(|w| w.chars().count() >= 5)
        .map(str::to_lowercase)
        .collect();
    if words.is_empty() {
        return 0;
    }
    words.sort();
    words.dedup();
    let digest = Sha256::digest(words.join("\0").as_bytes());
    u32::from_le_bytes([digest[0], digest[1], digest[2], digest[3]]).max(1)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fingerprint {
    pub raw: RawHash,
    pub normalized: Hash,
    pub page: PageFacts,
}

/// A fingerprint, and what the pass saw that only evidence needs.
#[derive(Clone, Debug)]
pub struct Reading {
    pub fingerprint: Fingerprint,
    /// The rule that classified the page, when one did.
    pub rule: Option<String>,
    pub title: String,
    /// The visible text of what was fingerprinted (the selection, else the
    /// page), up to 64 KiB, a line per block.
    pub text: Option<String>,
    /// Subresources and links on another base than the page's own.
    pub leaks: leaks::Leaks,
    /// Hosts the page names as its site's other addresses and that are no
    /// configured base or alias, with how (`link` or `text`).
    pub alternates: Vec<(String, &'static str)>,
}

/// A validated `content_selector` (or `content_exclude` entry).
#[derive(Clone, Debug)]
pub struct ContentSelector {
    source: String,
}

impl ContentSelector {
    pub fn parse(source: &str) -> Result<Self, String> {
        let source = source.trim();
        Selector::parse(source)?;
        Ok(ContentSelector {
            source: source.to_string(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }
}

/// What a site's pages are read with: its hosts, selectors and block page
/// fingerprints.
pub struct SiteSpec<'a> {
    pub primary: &'a Origin,
    pub bases: &'a [Origin],
    /// Hosts that belong to the bases (their CDNs), mapped like them.
    pub aliases: &'a [String],
    pub selector: Option<&'a ContentSelector>,
    pub exclude: &'a [ContentSelector],
    pub fingerprints: Arc<BlockFingerprints>,
}

/// Everything needed to normalize one site's pages.
#[derive(Clone, Debug)]
pub struct Normalizer {
    rules: Arc<Rules>,
    fingerprints: Arc<BlockFingerprints>,
    key: u64,
    /// What introduces the site's other addresses in its pages' text.
    phrases: Arc<[String]>,
}

impl Normalizer {
    pub fn new(spec: SiteSpec<'_>) -> Self {
        let hosts = SiteHosts::new(spec.primary, spec.bases, spec.aliases.iter().map(String::as_str));
        let selector = spec
            .selector
            .map(|s| Selector::parse(&s.source).expect("validated when parsed"));
        let exclude_source = spec
            .exclude
            .iter()
            .map(|s| s.source.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let exclude =
            (!spec.exclude.is_empty()).then(|| Selector::parse(&exclude_source).expect("validated when parsed"));
        let description = format!(
            "{CANONICAL_FORM_VERSION}\n{}\n{}\n{exclude_source}\n{:x?}",
            hosts.describe(),
            spec.selector.map_or("", |s| s.as_str()),
            spec.fingerprints.digest(),
        );
        let digest = Sha256::digest(description.as_bytes());
        Normalizer {
            rules: Arc::new(Rules {
                hosts,
                selector,
                exclude,
            }),
            fingerprints: spec.fingerprints,
            key: u64::from_le_bytes(digest[..8].try_into().expect("eight bytes")),
            phrases: alternates::DEFAULT_PHRASES.iter().map(|p| p.to_string()).collect(),
        }
    }

    /// Phrases that introduce the site's other addresses, instead of the
    /// English ones built in.
    pub fn with_alternate_phrases(mut self, phrases: &[String]) -> Self {
        if !phrases.is_empty() {
            self.phrases = phrases.iter().cloned().collect();
        }
        self
    }

    /// A normalizer for tests and tools: the bases, no aliases, no fingerprints.
    pub fn simple<'a>(
        primary: &Origin,
        bases: impl IntoIterator<Item = &'a Origin>,
        selector: Option<ContentSelector>,
    ) -> Self {
        let bases: Vec<Origin> = bases.into_iter().cloned().collect();
        Normalizer::new(SiteSpec {
            primary,
            bases: &bases,
            aliases: &[],
            selector: selector.as_ref(),
            exclude: &[],
            fingerprints: Arc::default(),
        })
    }

    /// Identifies everything a fingerprint depends on besides the body:
    /// a cached fingerprint is reused only under the same key.
    pub fn key(&self) -> u64 {
        self.key
    }

    pub fn has_selector(&self) -> bool {
        self.rules.selector.is_some()
    }

    pub fn fingerprints(&self) -> &Arc<BlockFingerprints> {
        &self.fingerprints
    }

    /// Starts fingerprinting a body served for `url` (the page's own URL,
    /// which relative links are resolved against).
    pub fn start(&self, content_type: Option<&str>, url: Option<&Url>) -> Fingerprinter {
        Fingerprinter {
            raw: Box::new(blake3::Hasher::new()),
            plain: Some(Sha256::new()),
            state: State::Undecided {
                content_type: content_type.map(str::to_string),
                head: Vec::new(),
            },
            normalizer: self.clone(),
            url: url.cloned(),
            scan: (!self.fingerprints.is_empty()).then(|| classify::BodyScan::new(self.fingerprints.clone())),
            first_bytes: Vec::new(),
            total: 0,
            keep: false,
            declared_utf16: charset_label(content_type)
                .and_then(|label| Encoding::for_label(label.as_bytes()))
                .is_some_and(|e| e == encoding_rs::UTF_16LE || e == encoding_rs::UTF_16BE),
            binary: false,
        }
    }

    pub fn fingerprint(&self, body: &[u8], content_type: Option<&str>) -> Fingerprint {
        self.read(body, content_type, None).fingerprint
    }

    pub fn read(&self, body: &[u8], content_type: Option<&str>, url: Option<&Url>) -> Reading {
        let mut fingerprinter = self.start(content_type, url);
        fingerprinter.update(body);
        fingerprinter.finish()
    }

    /// The canonical form of an HTML page (for tests and debugging).
    pub fn normalize_html(&self, body: &[u8], content_type: Option<&str>, url: Option<&Url>) -> String {
        let mut fingerprinter = self.start(content_type, url);
        fingerprinter.keep = true;
        fingerprinter.decide_now(Some(true));
        fingerprinter.update(body);
        let mut kept = String::new();
        if let State::Html(pass) = fingerprinter.state {
            kept = pass.finish().canonical.unwrap_or_default();
        }
        kept
    }
}

/// A fingerprint in progress: bodies are hashed and normalized as they
/// stream in, so no body is ever held whole.
pub struct Fingerprinter {
    /// Boxed: a BLAKE3 hasher keeps its chunk stack inline (~2 KB).
    raw: Box<blake3::Hasher>,
    /// SHA-256 of the body as served, which is the fingerprint of a body that is
    /// not HTML. It runs until the body is known to be read as HTML (past
    /// the bytes that could still call it binary), so an HTML page pays
    /// for one chunk of it, not the whole body.
    plain: Option<Sha256>,
    state: State,
    normalizer: Normalizer,
    url: Option<Url>,
    scan: Option<classify::BodyScan>,
    /// The first bytes, to tell a binary body.
    first_bytes: Vec<u8>,
    total: u64,
    keep: bool,
    /// UTF-16 text is full of bytes that would otherwise say "binary".
    declared_utf16: bool,
    /// A control byte among the first bytes: not a page, and never read as
    /// one (a body of zeros is otherwise the tokenizer's slowest input).
    binary: bool,
}

enum State {
    /// Not yet known whether the body is HTML: no declared type, and too
    /// few bytes seen to sniff.
    Undecided {
        content_type: Option<String>,
        head: Vec<u8>,
    },
    Plain,
    Html(Box<HtmlPass>),
}

/// Bytes enough to sniff an undeclared body (`<!doctype html` after whitespace).
const SNIFF_BYTES: usize = 512;

impl Fingerprinter {
    pub fn update(&mut self, chunk: &[u8]) {
        self.raw.update(chunk);
        self.total += chunk.len() as u64;
        let sniffing = self.first_bytes.len() < SNIFF_BYTES;
        if sniffing {
            let take = chunk.len().min(SNIFF_BYTES - self.first_bytes.len());
            self.first_bytes.extend_from_slice(&chunk[..take]);
        }
        if let Some(scan) = &mut self.scan {
            scan.update(chunk);
        }
        if sniffing && self.html_looks_binary() {
            self.binary = true;
            self.state = State::Plain;
        }
        match &mut self.state {
            State::Plain => {}
            State::Html(pass) => pass.feed(chunk),
            State::Undecided { head, content_type } => {
                head.extend_from_slice(chunk);
                let declared = content_type.as_deref().and_then(declared_type).is_some();
                if declared || head.len() >= SNIFF_BYTES {
                    self.decide_now(None);
                    if self.html_looks_binary() {
                        self.binary = true;
                        self.state = State::Plain;
                    }
                }
            }
        }
        // Read as HTML and past the sniffed bytes, it can no longer turn
        // plain: the plain hash stops here, before this chunk, so a page
        // read in one piece is not hashed whole for nothing.
        if matches!(self.state, State::Html(_)) && self.first_bytes.len() >= SNIFF_BYTES {
            self.plain = None;
        } else if let Some(plain) = &mut self.plain {
            plain.update(chunk);
        }
    }

    /// A body read as HTML whose first bytes hold control bytes (UTF-16,
    /// full of zero bytes, aside).
    fn html_looks_binary(&self) -> bool {
        let utf16_bom = self.first_bytes.starts_with(&[0xFE, 0xFF]) || self.first_bytes.starts_with(&[0xFF, 0xFE]);
        matches!(self.state, State::Html(_))
            && !self.keep
            && !self.declared_utf16
            && !utf16_bom
            && classify::looks_binary(&self.first_bytes)
    }

    pub fn finish(mut self) -> Reading {
        if matches!(self.state, State::Undecided { .. }) {
            self.decide_now(None);
            if self.html_looks_binary() {
                self.binary = true;
                self.state = State::Plain;
            }
        }
        let raw = RawHash(*self.raw.finalize().as_bytes());
        let plain = self.plain.take().map(|sha| Hash(sha.finalize().into()));
        let mut found_leaks = leaks::Leaks::default();
        let mut found_alternates = Vec::new();
        let block = self.scan.and_then(classify::BodyScan::finish);
        let (normalized, mut page, mut rule, title, text) = match self.state {
            State::Html(pass) => {
                let mut finished = pass.finish();
                found_leaks = std::mem::take(&mut finished.reading.leaks);
                found_alternates = alternates_of(&self.normalizer, &mut finished);
                let reading = &finished.reading;
                let mut flags = PageFacts::HTML;
                if reading.selection_visible {
                    flags |= PageFacts::SELECTION_VISIBLE;
                }
                if reading.selection_hidden {
                    flags |= PageFacts::SELECTION_HIDDEN;
                }
                if reading.overlay {
                    flags |= PageFacts::OVERLAY;
                }
                let page = PageFacts {
                    text_len: reading.text_len.min(u64::from(u32::MAX)) as u32,
                    title_words: title_words(&reading.title),
                    flags,
                    class: None,
                };
                let mut class = None;
                if finished.explicit_tags == 0 {
                    class = Some(Classified {
                        class: PageClass::NotHtml,
                        rule: "the body has no HTML elements".into(),
                    });
                } else if finished.truncated {
                    class = Some(Classified {
                        class: PageClass::Truncated,
                        rule: "the page nests or runs past what is read of a page".into(),
                    });
                } else if let Some(name) = &block {
                    class = Some(Classified {
                        class: PageClass::BlockPage,
                        rule: format!("fingerprint {name}"),
                    });
                } else {
                    class = class.or_else(|| classify::builtin(&reading.title, &finished.page_text, reading.text_len));
                }
                let page = PageFacts {
                    class: class.as_ref().map(|c| c.class),
                    ..page
                };
                let text = finished.evidence.map(|t| String::from_utf8_lossy(&t).into_owned());
                (finished.hash, page, class.map(|c| c.rule), reading.title.clone(), text)
            }
            // Plain bodies keep their SHA-256 from the first byte (see `plain`).
            _ => (
                plain.unwrap_or_default(),
                PageFacts::default(),
                None,
                String::new(),
                None,
            ),
        };
        if self.total == 0 {
            page.class = Some(PageClass::NotHtml);
            rule = Some("the body is empty".into());
        } else if self.binary {
            page.class = Some(PageClass::NotHtml);
            rule = Some("the body is binary (control bytes among its first bytes)".into());
        }
        Reading {
            fingerprint: Fingerprint { raw, normalized, page },
            rule,
            title,
            text,
            leaks: found_leaks,
            alternates: found_alternates,
        }
    }

    /// Decides HTML or not from the declared type (or, for `html`, as told).
    fn decide_now(&mut self, html: Option<bool>) {
        let State::Undecided { content_type, head } = std::mem::replace(&mut self.state, State::Plain) else {
            return;
        };
        if html.unwrap_or_else(|| is_html(&head, content_type.as_deref())) {
            let mut pass = HtmlPass::new(
                &self.normalizer,
                content_type.as_deref(),
                &head,
                self.url.clone(),
                self.keep,
            );
            pass.feed(&head);
            self.state = State::Html(Box::new(pass));
        }
    }
}

/// The other addresses a page names (links, then its notice's text),
/// without the site's own hosts.
fn alternates_of(normalizer: &Normalizer, finished: &mut Finished) -> Vec<(String, &'static str)> {
    let hosts = &normalizer.rules.hosts;
    let mut found: Vec<(String, &'static str)> = Vec::new();
    let links = std::mem::take(&mut finished.reading.alternate_links);
    let text = String::from_utf8_lossy(&finished.page_text);
    let named = alternates::hosts_in_text(&text, &normalizer.phrases);
    for (host, via) in links
        .into_iter()
        .map(|h| (h, "link"))
        .chain(named.into_iter().map(|h| (h, "text")))
    {
        if !hosts.is_known_authority(&host) && !found.iter().any(|(h, _)| *h == host) {
            found.push((host, via));
        }
    }
    found
}

/// One streaming pass over an HTML body: decode, tokenize, build, canonicalize.
struct HtmlPass {
    tokenizer: Tokenizer,
    builder: TreeBuilder<Canon>,
    decoding: Decoding,
}

enum Decoding {
    /// No charset declared by a BOM or the header: the first bytes are held
    /// until the prescan has looked at them.
    Undecided(Vec<u8>),
    /// UTF-8: checked and passed on as it arrives; `carry` holds a
    /// character split at a chunk's end.
    Utf8 { carry: Vec<u8>, bom_checked: bool },
    /// Any other charset: transcoded to UTF-8 first.
    Transcode(encoding_rs::Decoder),
}

/// The longest single token (text run, tag, comment) a page may hold; past
/// it the pass stops where it is.
const MAX_TOKEN_BYTES: usize = 16 * 1024 * 1024;

struct Finished {
    hash: Hash,
    reading: canon::PageReading,
    page_text: Vec<u8>,
    evidence: Option<Vec<u8>>,
    canonical: Option<String>,
    /// Start tags the page itself wrote.
    explicit_tags: u64,
    truncated: bool,
}

impl HtmlPass {
    fn new(normalizer: &Normalizer, content_type: Option<&str>, head: &[u8], url: Option<Url>, keep: bool) -> Self {
        let declared = Encoding::for_bom(head)
            .map(|(encoding, _)| encoding)
            .or_else(|| charset_label(content_type).and_then(|l| Encoding::for_label(l.as_bytes())));
        let bits = normalizer.rules.bits();
        let canon = Canon::new(normalizer.rules.clone(), url, keep);
        HtmlPass {
            tokenizer: Tokenizer::new(MAX_TOKEN_BYTES),
            builder: TreeBuilder::new(canon, bits),
            decoding: match declared {
                Some(encoding) => Decoding::for_encoding(encoding),
                None => Decoding::Undecided(Vec::new()),
            },
        }
    }

    fn feed(&mut self, chunk: &[u8]) {
        match &mut self.decoding {
            Decoding::Utf8 { carry, bom_checked } => {
                let mut bytes = std::mem::take(carry);
                bytes.extend_from_slice(chunk);
                let mut start = 0;
                if !*bom_checked {
                    if bytes.len() < 3 && b"\xEF\xBB\xBF".starts_with(&bytes) {
                        *carry = bytes;
                        return;
                    }
                    *bom_checked = true;
                    if bytes.starts_with(b"\xEF\xBB\xBF") {
                        start = 3;
                    }
                }
                let text = feed_utf8(&bytes[start..], carry);
                self.tokenizer.feed(&text, &mut self.builder);
            }
            Decoding::Transcode(decoder) => {
                let text = transcode(decoder, chunk, false);
                self.tokenizer.feed(text.as_bytes(), &mut self.builder);
            }
            Decoding::Undecided(held) => {
                held.extend_from_slice(chunk);
                if held.len() >= charset::PRESCAN_BYTES {
                    self.decide_from_prescan();
                }
            }
        }
    }

    fn decide_from_prescan(&mut self) {
        let Decoding::Undecided(held) = std::mem::replace(
            &mut self.decoding,
            Decoding::Utf8 {
                carry: Vec::new(),
                bom_checked: false,
            },
        ) else {
            return;
        };
        let encoding = charset::prescan(&held).unwrap_or(encoding_rs::UTF_8);
        self.decoding = Decoding::for_encoding(encoding);
        self.feed(&held);
    }

    fn finish(mut self) -> Finished {
        self.decide_from_prescan();
        match &mut self.decoding {
            Decoding::Transcode(decoder) => {
                let text = transcode(decoder, &[], true);
                self.tokenizer.feed(text.as_bytes(), &mut self.builder);
            }
            Decoding::Utf8 { carry, .. } if !carry.is_empty() => {
                let rest = String::from_utf8_lossy(carry).into_owned();
                self.tokenizer.feed(rest.as_bytes(), &mut self.builder);
            }
            _ => {}
        }
        self.tokenizer.finish(&mut self.builder);
        let truncated = self.tokenizer.failed();
        self.builder.finish();
        let explicit_tags = self.builder.start_tags;
        let too_deep = self.builder.too_deep;
        let canon = self.builder.sink.finish();
        Finished {
            truncated: truncated || too_deep,
            hash: canon.hash,
            reading: canon.reading,
            page_text: canon.page_text,
            evidence: canon.evidence,
            canonical: canon.canonical,
            explicit_tags,
        }
    }
}

/// Passes on the valid UTF-8 of `bytes`, keeping a character cut at the end
/// in `carry`; invalid bytes become U+FFFD, as a browser shows them.
fn feed_utf8<'b>(bytes: &'b [u8], carry: &mut Vec<u8>) -> std::borrow::Cow<'b, [u8]> {
    match std::str::from_utf8(bytes) {
        Ok(_) => std::borrow::Cow::Borrowed(bytes),
        Err(e) if e.error_len().is_none() => {
            let valid = e.valid_up_to();
            carry.extend_from_slice(&bytes[valid..]);
            std::borrow::Cow::Borrowed(&bytes[..valid])
        }
        Err(_) => {
            // Keep an incomplete last character for the next chunk.
            let mut end = bytes.len();
            let tail_start = bytes.len().saturating_sub(3);
            for i in (tail_start..bytes.len()).rev() {
                if bytes[i] & 0xC0 != 0x80 {
                    let needed = match bytes[i] {
                        0xC0..=0xDF => 2,
                        0xE0..=0xEF => 3,
                        0xF0..=0xF7 => 4,
                        _ => 1,
                    };
                    if bytes.len() - i < needed {
                        end = i;
                    }
                    break;
                }
            }
            carry.extend_from_slice(&bytes[end..]);
            std::borrow::Cow::Owned(String::from_utf8_lossy(&bytes[..end]).into_owned().into_bytes())
        }
    }
}

impl Decoding {
    /// UTF-8 is read as it is; anything else goes through a decoder (which
    /// also drops a BOM).
    /// For a BOM's or the header's encoding, or the prescan's (which
    /// already turned a page's own claim of UTF-16 into UTF-8, as the
    /// standard says).
    fn for_encoding(encoding: &'static Encoding) -> Self {
        if encoding == encoding_rs::UTF_8 {
            Decoding::Utf8 {
                carry: Vec::new(),
                bom_checked: false,
            }
        } else {
            Decoding::Transcode(encoding.new_decoder_with_bom_removal())
        }
    }
}

fn transcode(decoder: &mut encoding_rs::Decoder, bytes: &[u8], last: bool) -> String {
    let mut text = String::with_capacity(decoder.max_utf8_buffer_length(bytes.len()).unwrap_or(bytes.len()) + 4);
    let _ = decoder.decode_to_string(bytes, &mut text, last);
    text
}

fn charset_label(content_type: Option<&str>) -> Option<&str> {
    content_type?.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| value.trim().trim_matches('"'))
    })
}

/// The declared media type (`text/html`), if the header names one.
fn declared_type(content_type: &str) -> Option<String> {
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    (!essence.is_empty()).then_some(essence)
}

/// HTML by declared type; with no type, by the first bytes, as browsers sniff.
pub fn is_html(body: &[u8], content_type: Option<&str>) -> bool {
    if let Some(essence) = content_type.and_then(declared_type) {
        return essence == "text/html" || essence == "application/xhtml+xml";
    }
    let start = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map_or(&[][..], |i| &body[i..]);
    let start = start.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(start);
    let head = &start[..start.len().min(14)];
    head.len() >= 5
        && (head.to_ascii_lowercase().starts_with(b"<!doctype html") || head.to_ascii_lowercase().starts_with(b"<html"))
}

#[cfg(test)]
mod differential;
#[cfg(test)]
mod tests;
