//! Fingerprints: the SHA-256 of a body as served and of its normalized content.
//!
//! Normalization is what lets a faithful mirror hash equal to its primary
//! while a changed article does not. Rather than rewriting the HTML and
//! hashing the result, the page is tokenized (lol_html, streaming, no tree,
//! so depth costs no stack) and a canonical form is emitted: start tags with
//! sorted attributes and text with whitespace folded. What never reaches the
//! canonical form cannot make two copies differ: comments, doctype, end tags
//! (so implicitly closed elements need no special case), and the contents of
//! script/style/noscript/iframe/template. With a `content_selector`, only
//! the selected elements count; a page where it matches nothing (a block
//! page) is fingerprinted by the text of the whole page, so such pages stay
//! distinct. Every spelling of any of the site's
//! bases is rewritten to the primary's origin, and origin-relative URLs in
//! attributes are made absolute, so `/x`, `https://mirror/x` and
//! `//primary/x` all read the same. Pure: no I/O.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use encoding_rs::Encoding;
use lol_html::html_content::{TextChunk, TextType};
use lol_html::send::{Element, HtmlRewriter};
use lol_html::{AsciiCompatibleEncoding, MemorySettings, Settings, element, text};
use sha2::{Digest, Sha256};

use crate::origin::Origin;

/// A SHA-256 digest, written `sha256:<hex>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
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
        f.write_str("sha256:")?;
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fingerprint {
    pub raw: Hash,
    pub normalized: Hash,
}

/// A validated `content_selector`, kept with the selectors derived from it.
#[derive(Clone, Debug)]
pub struct ContentSelector {
    source: String,
    /// Matches the selected elements and everything inside them.
    element_and_descendants: String,
}

impl ContentSelector {
    pub fn parse(source: &str) -> Result<Self, String> {
        let source = source.trim();
        source.parse::<lol_html::Selector>().map_err(|e| e.to_string())?;
        let element_and_descendants = split_selector_list(source)
            .iter()
            .map(|part| format!("{part}, {part} *"))
            .collect::<Vec<_>>()
            .join(", ");
        element_and_descendants
            .parse::<lol_html::Selector>()
            .map_err(|e| e.to_string())?;
        Ok(ContentSelector {
            source: source.to_string(),
            element_and_descendants,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }
}

/// Splits `a, b[x="1,2"]` at its top-level commas.
fn split_selector_list(list: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut quote, mut start) = (0i32, None, 0);
    for (i, c) in list.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '(' | '[') => depth += 1,
            (None, ')' | ']') => depth -= 1,
            (None, ',') if depth == 0 => {
                parts.push(list[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(list[start..].trim());
    parts
}

/// Everything needed to normalize one site's pages.
#[derive(Clone, Debug)]
pub struct Normalizer {
    rewriter: Arc<BaseRewriter>,
    selector: Option<ContentSelector>,
}

impl Normalizer {
    pub fn new<'a>(
        primary: &Origin,
        bases: impl IntoIterator<Item = &'a Origin>,
        selector: Option<ContentSelector>,
    ) -> Self {
        Normalizer {
            rewriter: Arc::new(BaseRewriter::new(primary, bases)),
            selector,
        }
    }

    /// Starts fingerprinting a body whose chunks will be fed in order.
    pub fn start(&self, content_type: Option<&str>) -> Fingerprinter {
        Fingerprinter {
            raw: Sha256::new(),
            state: State::Undecided {
                normalizer: self.clone(),
                content_type: content_type.map(str::to_string),
                head: Vec::new(),
            },
        }
    }

    pub fn fingerprint(&self, body: &[u8], content_type: Option<&str>) -> Fingerprint {
        let mut fingerprinter = self.start(content_type);
        fingerprinter.update(body);
        fingerprinter.finish()
    }

    /// The canonical form of an HTML page (for tests and debugging).
    pub fn normalize_html(&self, body: &[u8], content_type: Option<&str>) -> String {
        let mut pass = HtmlPass::new(self, content_type, body, true);
        pass.feed(body);
        pass.finish().1.unwrap_or_default()
    }
}

/// A fingerprint in progress: bodies are hashed and normalized as they
/// stream in, so no body is ever held whole.
pub struct Fingerprinter {
    raw: Sha256,
    state: State,
}

enum State {
    /// Not yet known whether the body is HTML: no declared type, and too
    /// few bytes seen to sniff.
    Undecided {
        normalizer: Normalizer,
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
        match &mut self.state {
            State::Plain => {}
            State::Html(pass) => pass.feed(chunk),
            State::Undecided { head, content_type, .. } => {
                head.extend_from_slice(chunk);
                let declared = content_type.as_deref().and_then(declared_type).is_some();
                if declared || head.len() >= SNIFF_BYTES {
                    self.decide();
                }
            }
        }
    }

    pub fn finish(mut self) -> Fingerprint {
        if matches!(self.state, State::Undecided { .. }) {
            self.decide();
        }
        let raw = Hash(self.raw.finalize().into());
        let normalized = match self.state {
            State::Html(pass) => pass.finish().0,
            _ => raw,
        };
        Fingerprint { raw, normalized }
    }

    fn decide(&mut self) {
        let State::Undecided {
            normalizer,
            content_type,
            head,
        } = std::mem::replace(&mut self.state, State::Plain)
        else {
            return;
        };
        if is_html(&head, content_type.as_deref()) {
            let mut pass = HtmlPass::new(&normalizer, content_type.as_deref(), &head, false);
            pass.feed(&head);
            self.state = State::Html(Box::new(pass));
        }
    }
}

/// One streaming pass over an HTML body that yields two canonical hashes:
/// of the selected content (tags and text), and of the whole page (tags and
/// text without a selector; its text alone with one). The whole page's
/// counts when the selector matched nothing.
struct HtmlPass {
    rewriter: HtmlRewriter<'static, fn(&[u8])>,
    canon: Arc<Mutex<Canon>>,
    /// For encodings lol_html cannot tokenize (UTF-16): transcode to UTF-8 first.
    transcoder: Option<encoding_rs::Decoder>,
    has_selector: bool,
    /// lol_html panics if used again after an error: once it fails, stop.
    failed: bool,
}

fn discard(_: &[u8]) {}

/// The lock is never contended (one pass, one thread at a time) and a
/// handler cannot panic while holding it, but recover the data regardless.
fn lock(canon: &Mutex<Canon>) -> MutexGuard<'_, Canon> {
    canon.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl HtmlPass {
    fn new(normalizer: &Normalizer, content_type: Option<&str>, head: &[u8], keep_text: bool) -> Self {
        let declared = Encoding::for_bom(head)
            .map(|(encoding, _)| encoding)
            .or_else(|| charset_label(content_type).and_then(|l| Encoding::for_label(l.as_bytes())));
        let (encoding, transcoder) = match declared.map(|e| (e, AsciiCompatibleEncoding::new(e))) {
            Some((_, Some(ascii))) => (ascii, None),
            Some((other, None)) => (
                AsciiCompatibleEncoding::utf_8(),
                Some(other.new_decoder_with_bom_removal()),
            ),
            None => (AsciiCompatibleEncoding::utf_8(), None),
        };
        let canon = Arc::new(Mutex::new(Canon::new(normalizer.rewriter.clone(), keep_text)));
        let mark = |canon: &Arc<Mutex<Canon>>, set: fn(&mut Canon, usize)| {
            let canon = canon.clone();
            move |at: usize| set(&mut lock(&canon), at)
        };
        let skip_element = mark(&canon, |c, at| c.skipped_element = Some(at));
        let skip_text = mark(&canon, |c, at| c.skipped_text = Some(at));
        let select_text = mark(&canon, |c, at| c.selected_text = Some(at));
        let (emit_element, emit_text) = (canon.clone(), canon.clone());
        // Markers are registered first: lol_html runs handlers in
        // registration order, so the emitting handlers see them set.
        let mut settings = Settings::new_send()
            .with_encoding(encoding)
            .with_adjust_charset_on_meta_tag(declared.is_none())
            .with_memory_settings(MemorySettings::new().with_max_allowed_memory_usage(MAX_TOKENIZER_MEMORY))
            .append_element_content_handler(element!(
                "script, style, noscript, iframe, template, template *",
                move |el| {
                    skip_element(el.source_location().bytes().start);
                    Ok(())
                }
            ))
            .append_element_content_handler(text!("template", move |t| {
                skip_text(t.source_location().bytes().start);
                Ok(())
            }));
        // Tags are canonicalized only where they count: inside the selection
        // when there is one (every element there is selected), else everywhere.
        // Outside a selection only text is kept, for the whole-page fallback,
        // which spares the attribute work on menus and link lists.
        let tags_everywhere = normalizer.selector.is_none();
        let tags_where = match &normalizer.selector {
            Some(selector) => selector.element_and_descendants.clone(),
            None => "*".to_string(),
        };
        if let Some(selector) = &normalizer.selector {
            settings = settings.append_element_content_handler(text!(selector.source.as_str(), move |t| {
                select_text(t.source_location().bytes().start);
                Ok(())
            }));
        }
        let settings = settings
            .append_element_content_handler(element!(tags_where.as_str(), move |el| {
                lock(&emit_element).start_tag(el, !tags_everywhere);
                Ok(())
            }))
            .append_element_content_handler(text!("*", move |t| {
                lock(&emit_text).text(t);
                Ok(())
            }));
        HtmlPass {
            rewriter: HtmlRewriter::new(settings, discard as fn(&[u8])),
            canon,
            transcoder,
            has_selector: normalizer.selector.is_some(),
            failed: false,
        }
    }

    fn feed(&mut self, chunk: &[u8]) {
        // A tokenizer error (only the memory limit, on a pathological page)
        // stops the pass where it is; the same bytes stop it at the same
        // place, so the hash stays deterministic.
        if self.failed {
            return;
        }
        let written = match &mut self.transcoder {
            None => self.rewriter.write(chunk),
            Some(decoder) => {
                let mut text =
                    String::with_capacity(decoder.max_utf8_buffer_length(chunk.len()).unwrap_or(chunk.len()));
                let _ = decoder.decode_to_string(chunk, &mut text, false);
                self.rewriter.write(text.as_bytes())
            }
        };
        self.failed = written.is_err();
    }

    /// The normalized hash, and the canonical text when it was kept.
    fn finish(self) -> (Hash, Option<String>) {
        let HtmlPass {
            rewriter,
            canon,
            has_selector,
            failed,
            ..
        } = self;
        if !failed {
            let _ = rewriter.end();
        }
        let mut canon = lock(&canon).clone();
        canon.flush_text();
        let use_selected = has_selector && canon.selected_any;
        let (hasher, text) = if use_selected {
            (canon.selected, canon.selected_text_out)
        } else {
            (canon.whole, canon.whole_text_out)
        };
        (Hash(hasher.finalize().into()), text)
    }
}

/// lol_html's own buffers per page (a giant tag or attribute); past this the
/// pass stops rather than grow.
const MAX_TOKENIZER_MEMORY: usize = 16 * 1024 * 1024;

/// The canonical form as it is produced, written straight into two hashers:
/// the whole page's and the selected content's.
#[derive(Clone)]
struct Canon {
    rewriter: Arc<BaseRewriter>,
    whole: Sha256,
    selected: Sha256,
    /// An element inside the selection was seen: the selector matched.
    selected_any: bool,
    whole_text_out: Option<String>,
    selected_text_out: Option<String>,
    pending_text: String,
    pending_selected: bool,
    skipped_element: Option<usize>,
    skipped_text: Option<usize>,
    selected_text: Option<usize>,
}

impl Canon {
    fn new(rewriter: Arc<BaseRewriter>, keep_text: bool) -> Self {
        Canon {
            rewriter,
            whole: Sha256::new(),
            selected: Sha256::new(),
            selected_any: false,
            whole_text_out: keep_text.then(String::new),
            selected_text_out: keep_text.then(String::new),
            pending_text: String::new(),
            pending_selected: false,
            skipped_element: None,
            skipped_text: None,
            selected_text: None,
        }
    }

    fn emit_selected(&mut self, piece: &str) {
        self.selected.update(piece.as_bytes());
        if let Some(out) = &mut self.selected_text_out {
            out.push_str(piece);
        }
    }

    fn emit(&mut self, piece: &str, selected: bool) {
        self.whole.update(piece.as_bytes());
        if let Some(out) = &mut self.whole_text_out {
            out.push_str(piece);
        }
        if selected {
            self.selected.update(piece.as_bytes());
            if let Some(out) = &mut self.selected_text_out {
                out.push_str(piece);
            }
        }
    }

    /// `selected`: the element is inside the content selection (then its
    /// tag goes to the selected hash only; the whole page keeps text).
    fn start_tag(&mut self, el: &Element, selected: bool) {
        let at = el.source_location().bytes().start;
        if self.skipped_element == Some(at) {
            return;
        }
        self.selected_any |= selected;
        self.flush_text();
        let mut attributes: Vec<(String, String)> = el
            .attributes()
            .iter()
            .map(|a| (a.name(), self.rewriter.attribute_value(&a.value())))
            .collect();
        attributes.sort();
        let mut tag = String::with_capacity(64);
        tag.push('<');
        tag.push_str(&el.tag_name());
        for (name, value) in attributes {
            tag.push(' ');
            tag.push_str(&name);
            tag.push_str("=\"");
            tag.push_str(&value);
            tag.push('"');
        }
        tag.push('>');
        if selected {
            self.emit_selected(&tag);
        } else {
            self.emit(&tag, false);
        }
    }

    fn text(&mut self, chunk: &TextChunk) {
        let at = chunk.source_location().bytes().start;
        let is_code = matches!(chunk.text_type(), TextType::ScriptData | TextType::RawText);
        if !is_code && self.skipped_text != Some(at) {
            if self.pending_text.is_empty() {
                self.pending_selected = self.selected_text == Some(at);
            }
            self.pending_text.push_str(chunk.as_str());
        }
        if chunk.last_in_text_node() {
            self.flush_text();
        }
    }

    /// Emits the pending text node, bases rewritten and whitespace folded:
    /// runs become one space, and a node's leading and trailing whitespace
    /// goes, so re-indented or minified copies compare equal.
    fn flush_text(&mut self) {
        if self.pending_text.is_empty() {
            return;
        }
        let text = std::mem::take(&mut self.pending_text);
        let rewriter = self.rewriter.clone();
        let rewritten = rewriter.rewrite(&text);
        let mut folded = String::with_capacity(rewritten.len() + 1);
        for word in rewritten.split_ascii_whitespace() {
            folded.push(if folded.is_empty() { '\n' } else { ' ' });
            folded.push_str(word);
        }
        let selected = self.pending_selected;
        self.emit(&folded, selected);
        self.pending_text = text;
        self.pending_text.clear();
    }
}

/// Rewrites every spelling of a site's bases to the primary's origin.
#[derive(Clone, Debug)]
struct BaseRewriter {
    primary: String,
    /// Lower-case `host[:port]` of every base and its www/non-www twin,
    /// longest first so a longer host wins over its suffix.
    authorities: Vec<String>,
}

impl BaseRewriter {
    fn new<'a>(primary: &Origin, bases: impl IntoIterator<Item = &'a Origin>) -> Self {
        let mut authorities = Vec::new();
        for base in bases {
            let authority = base.authority().to_ascii_lowercase();
            let twin = match authority.strip_prefix("www.") {
                Some(bare) => bare.to_string(),
                None => format!("www.{authority}"),
            };
            // IP literals have no www twin.
            if base.host().parse::<std::net::IpAddr>().is_err() && !base.host().starts_with('[') {
                authorities.push(twin);
            }
            authorities.push(authority);
        }
        authorities.sort_by_key(|a| std::cmp::Reverse(a.len()));
        authorities.dedup();
        BaseRewriter {
            primary: primary.as_str().to_string(),
            authorities,
        }
    }

    fn attribute_value(&self, value: &str) -> String {
        let rewritten = self.rewrite(value.trim());
        if rewritten.starts_with('/') && !rewritten.starts_with("//") {
            format!("{}{}", self.primary, rewritten)
        } else {
            rewritten.into_owned()
        }
    }

    /// Finds `//host`, `http://host`, `https://host` and the JSON-escaped
    /// `https:\/\/host` for every base host and writes the primary's origin
    /// in their place.
    fn rewrite<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let bytes = text.as_bytes();
        let mut out: Option<String> = None;
        let mut copied = 0;
        let mut at = 0;
        while let Some(found) = memchr::memchr2(b'/', b'\\', &bytes[at..]) {
            let slash = at + found;
            let rest = &bytes[slash..];
            let host_start = if rest.starts_with(b"//") {
                slash + 2
            } else if rest.starts_with(br"\/\/") {
                slash + 4
            } else {
                at = slash + 1;
                continue;
            };
            let Some(host_len) = self.match_authority(&bytes[host_start..]) else {
                at = host_start;
                continue;
            };
            let start = scheme_start(bytes, slash);
            let out = out.get_or_insert_with(|| String::with_capacity(text.len()));
            out.push_str(&text[copied..start]);
            out.push_str(&self.primary);
            copied = host_start + host_len;
            at = copied;
        }
        match out {
            None => Cow::Borrowed(text),
            Some(mut out) => {
                out.push_str(&text[copied..]);
                Cow::Owned(out)
            }
        }
    }

    fn match_authority(&self, rest: &[u8]) -> Option<usize> {
        for authority in &self.authorities {
            let n = authority.len();
            if rest.len() >= n && rest[..n].eq_ignore_ascii_case(authority.as_bytes()) {
                // A trailing dot names the same host.
                let n = if rest.get(n) == Some(&b'.') { n + 1 } else { n };
                if ends_authority(&rest[n..]) {
                    return Some(n);
                }
            }
        }
        None
    }
}

/// True when what follows a host cannot continue it: `example.com.evil` and
/// `example.com:8443` are other hosts.
fn ends_authority(after: &[u8]) -> bool {
    match after.first() {
        None => true,
        Some(c) if c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_' | b'@') => false,
        Some(b':') => !after.get(1).is_some_and(u8::is_ascii_digit),
        Some(_) => true,
    }
}

/// Where the URL whose `//` sits at `slash` starts: at its `http:` or
/// `https:` scheme if it has one.
fn scheme_start(bytes: &[u8], slash: usize) -> usize {
    for scheme in [&b"https:"[..], &b"http:"[..]] {
        if slash >= scheme.len() && bytes[slash - scheme.len()..slash].eq_ignore_ascii_case(scheme) {
            return slash - scheme.len();
        }
    }
    slash
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
mod tests {
    use super::*;

    const PRIMARY: &str = include_str!("../tests/fixtures/primary-v1.html");
    const PRIMARY_V2: &str = include_str!("../tests/fixtures/primary-v2.html");
    const FAITHFUL: &str = include_str!("../tests/fixtures/mirror-faithful-v1.html");
    const RELATIVE: &str = include_str!("../tests/fixtures/mirror-relative-v1.html");
    const TAMPERED: &str = include_str!("../tests/fixtures/mirror-tampered-v1.html");
    const BLOCKPAGE: &str = include_str!("../tests/fixtures/blockpage.html");
    const PARKED: &str = include_str!("../tests/fixtures/parked.html");
    const HTML: Option<&str> = Some("text/html; charset=utf-8");

    fn normalizer(selector: Option<&str>) -> Normalizer {
        let bases: Vec<Origin> = [
            "https://www.example.com",
            "https://www.example.co.uk",
            "https://mirror.example.net",
        ]
        .iter()
        .map(|b| Origin::parse(b).unwrap())
        .collect();
        Normalizer::new(&bases[0], &bases, selector.map(|s| ContentSelector::parse(s).unwrap()))
    }

    fn hash(n: &Normalizer, page: &str) -> Hash {
        n.fingerprint(page.as_bytes(), HTML).normalized
    }

    #[test]
    fn fixtures_with_article_selector() {
        let n = normalizer(Some("article"));
        let reference = hash(&n, PRIMARY);
        assert_eq!(hash(&n, FAITHFUL), reference, "faithful mirror");
        assert_eq!(hash(&n, RELATIVE), reference, "relative-link mirror");
        assert_ne!(hash(&n, TAMPERED), reference, "tampered");
        assert_ne!(hash(&n, BLOCKPAGE), reference, "block page");
        assert_ne!(hash(&n, PARKED), reference, "parked");
        assert_ne!(hash(&n, PRIMARY_V2), reference, "updated article");
    }

    #[test]
    fn pages_without_the_selected_element_are_fingerprinted_by_their_text() {
        let n = normalizer(Some("article"));
        assert_ne!(hash(&n, BLOCKPAGE), hash(&n, PARKED));
        assert_ne!(hash(&n, BLOCKPAGE), hash(&n, "<html><body></body></html>"));
        let canonical = n.normalize_html(BLOCKPAGE.as_bytes(), HTML);
        assert!(
            canonical.contains("Access to this website has been restricted"),
            "{canonical}"
        );
        assert!(!canonical.contains('<'), "text only: {canonical}");
        // Markup outside a selection never costs attribute work, and never counts.
        assert_eq!(
            hash(&n, "<nav class=a><a href=/x>m</a></nav><article>t</article>"),
            hash(&n, "<nav class=b><a href=/y>z</a></nav><article>t</article>")
        );
    }

    #[test]
    fn fixtures_without_selector() {
        let n = normalizer(None);
        let reference = hash(&n, PRIMARY);
        assert_ne!(hash(&n, FAITHFUL), reference, "the banner is page content");
        assert_eq!(hash(&n, RELATIVE), reference, "relative links and scripts");
        assert_ne!(hash(&n, TAMPERED), reference);
        assert_ne!(hash(&n, BLOCKPAGE), reference);
        assert_ne!(hash(&n, PARKED), reference);
        // The banner is the only difference.
        let without_banner = FAITHFUL.replace(
            "<div class=\"mirror-banner\">You are reading a mirror. Bookmark it.</div>\n",
            "\n",
        );
        assert_eq!(hash(&n, &without_banner), reference);
    }

    #[test]
    fn raw_hash_differs_where_normalized_agrees() {
        let n = normalizer(Some("article"));
        let a = n.fingerprint(PRIMARY.as_bytes(), HTML);
        let b = n.fingerprint(RELATIVE.as_bytes(), HTML);
        assert_ne!(a.raw, b.raw);
        assert_eq!(a.normalized, b.normalized);
    }

    #[test]
    fn host_spellings_are_rewritten() {
        let n = normalizer(None);
        let page = |link: &str| format!("<p><a href=\"{link}\">x</a> see {link}</p>");
        let reference = hash(&n, &page("https://www.example.com/a"));
        for spelling in [
            "http://www.example.co.uk/a",
            "HTTPS://WWW.EXAMPLE.CO.UK/a",
            "//mirror.example.net/a",
            "https://example.co.uk/a",
            "https://www.example.com./a",
        ] {
            assert_eq!(hash(&n, &page(spelling)), reference, "{spelling}");
        }
        for other in [
            "https://www.example.co.uk.evil.test/a",
            "https://www.example.com:8443/a",
            "https://evil.test/a",
            "https://www.example.com/b",
        ] {
            assert_ne!(hash(&n, &page(other)), reference, "{other}");
        }
        let json = |host: &str| format!("<div data-x='{{\"u\":\"https:\\/\\/{host}\\/a\"}}'>t</div>");
        assert_eq!(hash(&n, &json("www.example.co.uk")), hash(&n, &json("www.example.com")));
    }

    #[test]
    fn whitespace_comments_and_attribute_order_do_not_matter() {
        let n = normalizer(None);
        let a = "<div class=\"a\" id=\"b\">\n  Hello   <b>world</b>\n</div><!-- x -->";
        let b = "<div id='b' class=a>Hello <b>world</b></div><!-- y --><script>var t=1</script>";
        assert_eq!(hash(&n, a), hash(&n, b));
        assert_ne!(
            hash(&n, a),
            hash(&n, "<div class=\"a\" id=\"b\">Hello <b>World</b></div>")
        );
    }

    #[test]
    fn template_and_noscript_contents_are_ignored() {
        let n = normalizer(None);
        let plain = "<p>text</p>";
        let with = "<p>text</p><template><p>tpl <b>x</b></p></template><noscript><img src=/t.gif></noscript>";
        assert_eq!(hash(&n, plain), hash(&n, with));
    }

    #[test]
    fn nested_selected_elements_are_counted_once() {
        let n = normalizer(Some("article, .story"));
        let single = "<article><p>one</p></article>";
        let nested = "<div>nav</div><article><p>one</p></article><aside>x</aside>";
        assert_eq!(hash(&n, single), hash(&n, nested));
        let out = n.normalize_html(b"<article class=story><p>one <b>two</b></p></article>", None);
        assert_eq!(out.matches("one").count(), 1, "{out}");
        assert_eq!(out.matches("<b>").count(), 1, "{out}");
    }

    #[test]
    fn charset_is_decoded() {
        let n = normalizer(None);
        let utf8 = "<p>café</p>".as_bytes().to_vec();
        let latin1 = b"<p>caf\xe9</p>".to_vec();
        let a = n.fingerprint(&utf8, Some("text/html; charset=utf-8")).normalized;
        let b = n.fingerprint(&latin1, Some("text/html; charset=iso-8859-1")).normalized;
        assert_eq!(a, b);
        let meta = b"<meta charset=\"iso-8859-1\"><p>caf\xe9</p>".to_vec();
        let meta_utf8 = "<meta charset=\"iso-8859-1\"><p>café</p>";
        // The meta tag itself is content, so compare against the same tag in UTF-8.
        let c = n.fingerprint(&meta, Some("text/html")).normalized;
        let d = n
            .fingerprint(meta_utf8.as_bytes(), Some("text/html; charset=utf-8"))
            .normalized;
        assert_eq!(c, d);
    }

    #[test]
    fn non_html_is_hashed_as_is() {
        let n = normalizer(None);
        let body = br#"{"url":"https://www.example.co.uk/a"}"#;
        let fp = n.fingerprint(body, Some("application/json"));
        assert_eq!(fp.raw, fp.normalized);
        assert_eq!(fp.raw, Hash::of(body));
    }

    #[test]
    fn deep_nesting_does_not_overflow() {
        let n = normalizer(Some("article"));
        let page = format!(
            "<article>{}x{}</article>",
            "<div>".repeat(100_000),
            "</div>".repeat(100_000)
        );
        let out = n.normalize_html(page.as_bytes(), None);
        assert!(out.ends_with('x'));
    }

    #[test]
    fn a_page_past_the_tokenizer_budget_stops_deterministically() {
        let n = normalizer(Some("article"));
        let page = format!("<article>{}x</article>", "<div>".repeat(1_000_000));
        let first = n.fingerprint(page.as_bytes(), HTML);
        let second = n.fingerprint(page.as_bytes(), HTML);
        assert_eq!(first, second);
        assert_ne!(first.normalized, hash(&n, "<article>x</article>"));
    }

    #[test]
    fn streaming_in_pieces_equals_one_piece() {
        let n = normalizer(Some("article"));
        let whole = n.fingerprint(FAITHFUL.as_bytes(), HTML);
        for size in [1, 7, 64, 1000] {
            let mut fingerprinter = n.start(HTML);
            for piece in FAITHFUL.as_bytes().chunks(size) {
                fingerprinter.update(piece);
            }
            assert_eq!(fingerprinter.finish(), whole, "pieces of {size}");
        }
        // Undeclared type: sniffed from the first bytes, even one at a time.
        let mut sniffed = n.start(None);
        for byte in FAITHFUL.as_bytes() {
            sniffed.update(std::slice::from_ref(byte));
        }
        assert_eq!(sniffed.finish(), whole);
    }

    #[test]
    fn utf16_pages_are_transcoded() {
        let n = normalizer(None);
        let text = "<p>café</p>";
        let mut utf16 = vec![0xFF, 0xFE];
        for unit in text.encode_utf16() {
            utf16.extend_from_slice(&unit.to_le_bytes());
        }
        assert_eq!(n.fingerprint(&utf16, Some("text/html")).normalized, hash(&n, text));
    }

    #[test]
    fn html_sniffing() {
        assert!(is_html(b"  <!DOCTYPE html><p>", None));
        assert!(is_html(b"<html>", Some("")));
        assert!(!is_html(b"<!DOCTYPE html>", Some("text/plain")));
        assert!(!is_html(b"{}", None));
    }

    #[test]
    fn hash_round_trips_through_text() {
        let h = Hash::of(b"abc");
        assert_eq!(
            h.to_string(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(Hash::parse(&h.to_string()), Some(h));
    }
}
