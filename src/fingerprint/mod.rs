//! Fingerprints: the SHA-256 of a body as served and of its normalized content.
//!
//! Normalization is what lets a faithful mirror hash equal to its primary
//! while a changed article does not. Rather than rewriting the HTML and
//! hashing the result, a body is decoded to UTF-8 (BOM, then the header's
//! charset, then a `<meta>` in the first 1024 bytes), tokenized as it
//! streams in ([`tokenizer`]: no tree, so depth costs no stack) and written
//! into the hashers in a canonical form ([`canon`]). With a
//! `content_selector` ([`selector`]), only the selected elements count; a
//! page where it matches nothing (a block page) is fingerprinted by the
//! text of the whole page, so such pages stay distinct. Non-HTML bodies are
//! hashed as they are. Pure: no I/O.

mod canon;
mod selector;
mod tokenizer;

use std::fmt;
use std::sync::Arc;

use encoding_rs::Encoding;
use sha2::{Digest, Sha256};

use crate::origin::Origin;
use canon::{BaseRewriter, Canon};
use selector::Selector;
use tokenizer::Tokenizer;

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
/// A validated `content_selector`.
#[derive(Clone, Debug)]
pub struct ContentSelector {
    source: String,
    selector: Arc<Selector>,
}

impl ContentSelector {
    pub fn parse(source: &str) -> Result<Self, String> {
        let source = source.trim();
        Ok(ContentSelector {
            source: source.to_string(),
            selector: Arc::new(Selector::parse(source)?),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }
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

/// One streaming pass over an HTML body: decode, tokenize, canonicalize.
struct HtmlPass {
    tokenizer: Tokenizer,
    canon: Canon,
    decoding: Decoding,
}

enum Decoding {
    /// No charset declared by a BOM or the header: the first bytes are held
    /// until a `<meta>` in them can be looked for.
    Undecided(Vec<u8>),
    /// UTF-8 (and ASCII): tokenized as it arrives.
    Utf8,
    /// Any other charset: transcoded to UTF-8 first.
    Transcode(encoding_rs::Decoder),
}

/// How far into a page a `<meta charset>` is looked for (as browsers do).
const META_PRESCAN_BYTES: usize = 1024;

/// The longest single token (tag, text node, title) a page may hold; past
/// it the pass stops where it is.
const MAX_TOKEN_BYTES: usize = 16 * 1024 * 1024;

impl HtmlPass {
    fn new(normalizer: &Normalizer, content_type: Option<&str>, head: &[u8], keep_text: bool) -> Self {
        let declared = Encoding::for_bom(head)
            .map(|(encoding, _)| encoding)
            .or_else(|| charset_label(content_type).and_then(|l| Encoding::for_label(l.as_bytes())));
        let selector = normalizer.selector.as_ref().map(|s| s.selector.clone());
        HtmlPass {
            tokenizer: Tokenizer::new(MAX_TOKEN_BYTES),
            canon: Canon::new(normalizer.rewriter.clone(), selector, keep_text),
            decoding: match declared {
                Some(encoding) => Decoding::for_encoding(encoding, head),
                None => Decoding::Undecided(Vec::new()),
            },
        }
    }

    fn feed(&mut self, chunk: &[u8]) {
        match &mut self.decoding {
            Decoding::Utf8 => self.tokenizer.feed(chunk, &mut self.canon),
            Decoding::Transcode(decoder) => {
                let text = transcode(decoder, chunk, false);
                self.tokenizer.feed(text.as_bytes(), &mut self.canon);
            }
            Decoding::Undecided(held) => {
                held.extend_from_slice(chunk);
                if held.len() >= META_PRESCAN_BYTES {
                    self.decide_from_meta();
                }
            }
        }
        if self.canon.stopped {
            self.tokenizer.fail();
        }
    }

    fn decide_from_meta(&mut self) {
        let Decoding::Undecided(held) = std::mem::replace(&mut self.decoding, Decoding::Utf8) else {
            return;
        };
        let encoding = meta_charset(&held[..held.len().min(META_PRESCAN_BYTES)]).unwrap_or(encoding_rs::UTF_8);
        self.decoding = Decoding::for_encoding(encoding, &held);
        self.feed(&held);
    }

    /// The normalized hash, and the canonical text when it was kept.
    fn finish(mut self) -> (Hash, Option<String>) {
        self.decide_from_meta();
        if let Decoding::Transcode(decoder) = &mut self.decoding {
            let text = transcode(decoder, &[], true);
            self.tokenizer.feed(text.as_bytes(), &mut self.canon);
        }
        self.tokenizer.finish(&mut self.canon);
        self.canon.finish()
    }
}

impl Decoding {
    /// UTF-8 without a BOM is read as it is; anything else goes through a
    /// decoder (which also drops a BOM).
    fn for_encoding(encoding: &'static Encoding, head: &[u8]) -> Self {
        // A page cannot declare itself UTF-16 from inside: bytes that read
        // as ASCII are not UTF-16 (the HTML standard's rule).
        let encoding = if Encoding::for_bom(head).is_none() && !encoding.is_ascii_compatible() {
            encoding_rs::UTF_8
        } else {
            encoding
        };
        if encoding == encoding_rs::UTF_8 && Encoding::for_bom(head).is_none() {
            Decoding::Utf8
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

/// The charset a `<meta charset>` or `<meta http-equiv=content-type>` in
/// the first bytes names.
fn meta_charset(head: &[u8]) -> Option<&'static Encoding> {
    let mut at = 0;
    while let Some(found) = memchr::memmem::find(&head[at..], b"<") {
        let start = at + found;
        at = start + 1;
        if !head
            .get(start + 1..start + 5)
            .is_some_and(|n| n.eq_ignore_ascii_case(b"meta"))
        {
            continue;
        }
        let tag = tokenizer::parse_start_tag(&head[start..])?;
        let mut content_type = None;
        for (name, value) in tag.attributes() {
            if name.eq_ignore_ascii_case(b"charset") {
                return Encoding::for_label(value.trim_ascii());
            }
            if name.eq_ignore_ascii_case(b"content") {
                content_type = Some(String::from_utf8_lossy(value).into_owned());
            }
        }
        if let Some(label) = charset_label(content_type.as_deref()) {
            return Encoding::for_label(label.as_bytes());
        }
    }
    None
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

    const PRIMARY: &str = include_str!("../../tests/fixtures/primary-v1.html");
    const PRIMARY_V2: &str = include_str!("../../tests/fixtures/primary-v2.html");
    const FAITHFUL: &str = include_str!("../../tests/fixtures/mirror-faithful-v1.html");
    const RELATIVE: &str = include_str!("../../tests/fixtures/mirror-relative-v1.html");
    const TAMPERED: &str = include_str!("../../tests/fixtures/mirror-tampered-v1.html");
    const BLOCKPAGE: &str = include_str!("../../tests/fixtures/blockpage.html");
    const PARKED: &str = include_str!("../../tests/fixtures/parked.html");
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

    /// Markup-dense strings: the pieces tokenizers trip on, in any order.
    fn markup() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let piece = prop_oneof![
            Just("<"),
            Just(">"),
            Just("</"),
            Just("/>"),
            Just("<!--"),
            Just("-->"),
            Just("<!"),
            Just("<?"),
            Just("\""),
            Just("'"),
            Just("="),
            Just(" "),
            Just("\n"),
            Just("a"),
            Just("p"),
            Just("article"),
            Just("script"),
            Just("title"),
            Just("template"),
            Just("class=x"),
            Just("https://www.example.co.uk/"),
            Just("é"),
            Just("&amp;"),
        ];
        proptest::collection::vec(piece, 0..80).prop_map(|pieces| pieces.concat())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 1000, ..Default::default() })]

        /// However a body is split into chunks, it fingerprints the same,
        /// and no input makes the normalizer panic.
        #[test]
        fn chunking_never_changes_the_fingerprint(
            page in markup(),
            piece in 1usize..17,
            selector in proptest::option::of(proptest::sample::select(vec!["article", "p.x", "article > p", "*"])),
        ) {
            let n = normalizer(selector);
            let whole = n.fingerprint(page.as_bytes(), HTML);
            let mut pieces = n.start(HTML);
            for chunk in page.as_bytes().chunks(piece) {
                pieces.update(chunk);
            }
            proptest::prop_assert_eq!(pieces.finish(), whole);
        }
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
