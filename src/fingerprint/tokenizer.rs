//! A streaming HTML tokenizer made for fingerprinting, not for rendering.
//!
//! It finds what the canonical form needs — start tags with their raw
//! attributes, end tags, text nodes — and skips everything else (comments,
//! doctypes, processing instructions, the contents of script/style and the
//! other raw-text elements) with `memchr` rather than byte by byte. It keeps
//! no tree and builds nothing per byte, which is where a full rewriter spends
//! its time.
//!
//! Input arrives in chunks split anywhere. Tokens that are complete are
//! handed to a [`Sink`] at once; the incomplete tail stays buffered and is
//! looked at again only once the buffer has grown by a good share, so a
//! token dripped in one byte at a time costs linear work, not quadratic.
//! Every text node, tag and kept raw text is handed over whole, so the
//! tokens (and the hash made from them) do not depend on how the body was
//! chunked. A token longer than the budget stops tokenizing there, at the
//! same place whatever the chunking.

use memchr::{memchr, memchr2, memmem};

/// What the tokenizer reports, in document order.
pub(super) trait Sink {
    fn start_tag(&mut self, tag: &StartTag<'_>);
    fn end_tag(&mut self, name: TagName);
    /// A whole text node (or the contents of `<title>`/`<textarea>`), raw:
    /// entities are not decoded.
    fn text(&mut self, text: &[u8]);
}

/// A lower-cased tag name packed into a number: names of up to eight bytes
/// exactly, longer ones by hash (top bit set, so the two never meet).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct TagName(u64);

impl TagName {
    pub(super) const fn of(raw: &[u8]) -> Self {
        let mut i = 0;
        if raw.len() <= 8 {
            let mut packed = 0u64;
            while i < raw.len() {
                packed |= (raw[i].to_ascii_lowercase() as u64) << (8 * i);
                i += 1;
            }
            TagName(packed & !(1 << 63))
        } else {
            // FNV-1a: stable across runs, so hashes stay comparable.
            let mut hash = 0xcbf2_9ce4_8422_2325u64;
            while i < raw.len() {
                hash = (hash ^ raw[i].to_ascii_lowercase() as u64).wrapping_mul(0x0100_0000_01b3);
                i += 1;
            }
            TagName(hash | (1 << 63))
        }
    }
}

pub(super) mod names {
    use super::TagName;
    pub const SCRIPT: TagName = TagName::of(b"script");
    pub const STYLE: TagName = TagName::of(b"style");
    pub const XMP: TagName = TagName::of(b"xmp");
    pub const IFRAME: TagName = TagName::of(b"iframe");
    pub const NOEMBED: TagName = TagName::of(b"noembed");
    pub const NOFRAMES: TagName = TagName::of(b"noframes");
    pub const NOSCRIPT: TagName = TagName::of(b"noscript");
    pub const TITLE: TagName = TagName::of(b"title");
    pub const TEXTAREA: TagName = TagName::of(b"textarea");
    pub const PLAINTEXT: TagName = TagName::of(b"plaintext");
    pub const TEMPLATE: TagName = TagName::of(b"template");
}

/// A start tag as written: the name and the raw attribute text.
pub(super) struct StartTag<'a> {
    pub name: TagName,
    /// The name as written (not lower-cased).
    pub raw_name: &'a [u8],
    attributes: &'a [u8],
    pub self_closing: bool,
}

impl<'a> StartTag<'a> {
    /// Attributes as `(name, value)`, both raw; a bare attribute has an
    /// empty value.
    pub fn attributes(&self) -> Attributes<'a> {
        Attributes { rest: self.attributes }
    }
}

pub(super) struct Attributes<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Attributes<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let bytes = self.rest;
        let mut i = skip_while(bytes, 0, |b| is_space(b) || b == b'/');
        if i == bytes.len() {
            self.rest = &[];
            return None;
        }
        // A name runs to whitespace, `/`, `>` or `=` (but may start with `=`).
        let name_start = i;
        i += 1;
        i = skip_while(bytes, i, |b| !(is_space(b) || b == b'/' || b == b'='));
        let name = &bytes[name_start..i];
        let after_name = skip_while(bytes, i, is_space);
        if bytes.get(after_name) != Some(&b'=') {
            self.rest = &bytes[i..];
            return Some((name, &[]));
        }
        let value_start = skip_while(bytes, after_name + 1, is_space);
        let (value, next) = match bytes.get(value_start) {
            Some(&quote @ (b'"' | b'\'')) => {
                let from = value_start + 1;
                match memchr(quote, &bytes[from..]) {
                    Some(len) => (&bytes[from..from + len], from + len + 1),
                    None => (&bytes[from..], bytes.len()),
                }
            }
            _ => {
                let end = skip_while(bytes, value_start, |b| !is_space(b));
                (&bytes[value_start..end], end)
            }
        };
        self.rest = &bytes[next..];
        Some((name, value))
    }
}

/// The start tag at the beginning of `bytes` (which start with `<`), if
/// it is complete there.
pub(super) fn parse_start_tag(bytes: &[u8]) -> Option<StartTag<'_>> {
    let name_end = tag_name_end(bytes, 1);
    let gt = tag_end(bytes, name_end)?;
    let raw_name = &bytes[1..name_end];
    Some(StartTag {
        name: TagName::of(raw_name),
        raw_name,
        attributes: &bytes[name_end..gt],
        self_closing: gt > name_end && bytes[gt - 1] == b'/',
    })
}

/// Where the tag name starting at `from` ends: at whitespace, `/` or `>`.
fn tag_name_end(bytes: &[u8], from: usize) -> usize {
    skip_while(bytes, from, |b| !(is_space(b) || b == b'/' || b == b'>'))
}

fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r' | b'\x0c')
}

fn skip_while(bytes: &[u8], mut i: usize, keep: impl Fn(u8) -> bool) -> usize {
    while i < bytes.len() && keep(bytes[i]) {
        i += 1;
    }
    i
}

/// The end of the tag whose name ends at `from`: the index of its `>`,
/// following the attribute states so a `>` inside a quoted value does not
/// end it. `None` when the tag is not complete yet.
fn tag_end(bytes: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    loop {
        // A quote that does not follow `=` is part of a name: only `=` opens a value.
        let at = i + memchr2(b'>', b'=', &bytes[i..])?;
        match bytes[at] {
            b'>' => return Some(at),
            _ => {
                let value = skip_while(bytes, at + 1, is_space);
                match *bytes.get(value)? {
                    quote @ (b'"' | b'\'') => i = value + 1 + memchr(quote, &bytes[value + 1..])? + 1,
                    b'>' => return Some(value),
                    _ => {
                        let end = skip_while(bytes, value, |b| !is_space(b) && b != b'>');
                        if end == bytes.len() {
                            return None;
                        }
                        i = end;
                    }
                }
            }
        }
    }
}

/// How the tokenizer reads what follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Data,
    /// Inside a comment, looking for `-->`; what is read is dropped.
    Comment,
    /// Inside `<!…>`, `<?…>` or a malformed end tag, looking for `>`.
    Bogus,
    /// Inside a raw-text element, looking for its end tag. Kept (title,
    /// textarea) or dropped (script, style and the like).
    RawText {
        name: TagName,
        keep: bool,
    },
    /// After `<plaintext>`: everything to the end is text.
    Plaintext,
}

/// A dropped region keeps this many trailing bytes, enough for a partial
/// `</noframes` or `-->` at a chunk boundary.
const DROP_KEEPS: usize = 16;

/// An incomplete tail is looked at again after at least this many new bytes.
const MIN_RETRY: usize = 4096;

pub(super) struct Tokenizer {
    buf: Vec<u8>,
    mode: Mode,
    /// `buf` is not tokenized again before it is this long.
    retry_len: usize,
    budget: usize,
    failed: bool,
}

enum Step {
    /// Advanced to this offset.
    To(usize),
    /// The token at the current offset is not complete yet.
    Incomplete,
}

impl Tokenizer {
    /// `budget`: the longest token (tag, text node, kept raw text) that is
    /// tokenized; a longer one stops the pass there.
    pub(super) fn new(budget: usize) -> Self {
        Tokenizer {
            buf: Vec::new(),
            mode: Mode::Data,
            retry_len: 0,
            budget,
            failed: false,
        }
    }

    /// True once a token exceeded the budget (or the sink stopped it).
    #[cfg(test)]
    pub(super) fn failed(&self) -> bool {
        self.failed
    }

    pub(super) fn fail(&mut self) {
        self.failed = true;
        self.buf = Vec::new();
    }

    pub(super) fn feed(&mut self, chunk: &[u8], sink: &mut impl Sink) {
        if self.failed {
            return;
        }
        if self.buf.is_empty() {
            // Nothing held back: tokenize the chunk where it lies and keep
            // only its incomplete tail.
            let consumed = self.tokenize(chunk, sink, false);
            self.hold(&chunk[consumed..]);
            return;
        }
        self.buf.extend_from_slice(chunk);
        if self.buf.len() < self.retry_len && self.buf.len() <= self.budget {
            return;
        }
        self.run(sink, false);
    }

    /// The end of the body: an unfinished text node counts, an unfinished
    /// tag or comment does not.
    pub(super) fn finish(&mut self, sink: &mut impl Sink) {
        if !self.failed {
            self.run(sink, true);
        }
    }

    fn run(&mut self, sink: &mut impl Sink, eof: bool) {
        let mut buf = std::mem::take(&mut self.buf);
        let consumed = self.tokenize(&buf, sink, eof);
        buf.drain(..consumed);
        self.buf = buf;
        self.hold_checked();
    }

    /// Keeps an incomplete tail for the next chunk.
    fn hold(&mut self, tail: &[u8]) {
        self.buf.extend_from_slice(tail);
        self.hold_checked();
    }

    fn hold_checked(&mut self) {
        let tail = self.buf.len();
        if tail > self.budget {
            self.fail();
            return;
        }
        self.retry_len = tail + tail.max(MIN_RETRY);
    }

    /// Hands every complete token of `buf` to `sink`; returns how many
    /// bytes are done with (all of them once failed).
    fn tokenize(&mut self, buf: &[u8], sink: &mut impl Sink, eof: bool) -> usize {
        let mut at = 0;
        while at < buf.len() && !self.failed {
            let step = match self.mode {
                Mode::Data => self.data(buf, at, eof, sink),
                Mode::Comment => self.drop_until(buf, at, b"-->"),
                Mode::Bogus => self.drop_until(buf, at, b">"),
                Mode::RawText { name, keep } => self.raw_text(buf, at, name, keep, eof, sink),
                Mode::Plaintext => self.plaintext(buf, at, eof, sink),
            };
            match step {
                Step::To(next) => at = next,
                Step::Incomplete => break,
            }
        }
        if self.failed {
            return buf.len();
        }
        // Dropped regions need not be kept: only the bytes that may begin
        // their terminator.
        if matches!(
            self.mode,
            Mode::Comment | Mode::Bogus | Mode::RawText { keep: false, .. }
        ) {
            at = at.max(buf.len().saturating_sub(DROP_KEEPS));
        }
        at.min(buf.len())
    }

    /// A token of `len` bytes: past the budget, tokenizing stops here.
    fn within_budget(&mut self, len: usize) -> bool {
        if len > self.budget {
            self.fail();
        }
        !self.failed
    }

    fn data(&mut self, buf: &[u8], at: usize, eof: bool, sink: &mut impl Sink) -> Step {
        // A text node runs to the next `<` that opens markup.
        let mut search = at;
        let lt = loop {
            match memchr(b'<', &buf[search..]) {
                None => {
                    if !eof {
                        return Step::Incomplete;
                    }
                    if self.within_budget(buf.len() - at) {
                        sink.text(&buf[at..]);
                    }
                    return Step::To(buf.len());
                }
                Some(offset) => {
                    let lt = search + offset;
                    match buf.get(lt + 1) {
                        None if !eof => return Step::Incomplete,
                        Some(b) if b.is_ascii_alphabetic() || matches!(b, b'/' | b'!' | b'?') => break lt,
                        _ => search = lt + 1,
                    }
                }
            }
        };
        if lt > at {
            if self.within_budget(lt - at) {
                sink.text(&buf[at..lt]);
            }
            // The markup is read on the next step, so an incomplete tag
            // leaves this text behind it consumed.
            return Step::To(lt);
        }
        self.markup(buf, lt, sink)
    }

    /// The markup that starts with the `<` at `lt`.
    fn markup(&mut self, buf: &[u8], lt: usize, sink: &mut impl Sink) -> Step {
        let rest = &buf[lt..];
        match rest[1] {
            b'!' => {
                if rest.len() < 4 {
                    return Step::Incomplete;
                }
                if rest.starts_with(b"<!--") {
                    // From `<!` so that `<!-->` and `<!--->` end at once, as in browsers.
                    self.mode = Mode::Comment;
                    Step::To(lt + 2)
                } else {
                    self.mode = Mode::Bogus;
                    Step::To(lt + 2)
                }
            }
            b'?' => {
                self.mode = Mode::Bogus;
                Step::To(lt + 2)
            }
            b'/' => match rest.get(2) {
                None => Step::Incomplete,
                Some(b'>') => Step::To(lt + 3),
                Some(b) if b.is_ascii_alphabetic() => {
                    let name_end = tag_name_end(buf, lt + 2);
                    let Some(gt) = tag_end(buf, name_end) else {
                        return self.incomplete_tag(buf.len() - lt);
                    };
                    if self.within_budget(gt + 1 - lt) {
                        sink.end_tag(TagName::of(&buf[lt + 2..name_end]));
                    }
                    Step::To(gt + 1)
                }
                Some(_) => {
                    self.mode = Mode::Bogus;
                    Step::To(lt + 2)
                }
            },
            _ => {
                let Some(tag) = parse_start_tag(rest) else {
                    return self.incomplete_tag(rest.len());
                };
                let gt = lt + tag.raw_name.len() + tag.attributes.len() + 1;
                if !self.within_budget(gt + 1 - lt) {
                    return Step::To(gt + 1);
                }
                sink.start_tag(&tag);
                self.mode = match tag.name {
                    names::SCRIPT
                    | names::STYLE
                    | names::XMP
                    | names::IFRAME
                    | names::NOEMBED
                    | names::NOFRAMES
                    | names::NOSCRIPT => Mode::RawText {
                        name: tag.name,
                        keep: false,
                    },
                    names::TITLE | names::TEXTAREA => Mode::RawText {
                        name: tag.name,
                        keep: true,
                    },
                    names::PLAINTEXT => Mode::Plaintext,
                    _ => Mode::Data,
                };
                Step::To(gt + 1)
            }
        }
    }

    fn incomplete_tag(&mut self, len: usize) -> Step {
        if self.within_budget(len) {
            Step::Incomplete
        } else {
            Step::To(usize::MAX)
        }
    }

    fn drop_until(&mut self, buf: &[u8], at: usize, terminator: &[u8]) -> Step {
        match memmem::find(&buf[at..], terminator) {
            Some(offset) => {
                self.mode = Mode::Data;
                Step::To(at + offset + terminator.len())
            }
            None => Step::Incomplete,
        }
    }

    fn raw_text(&mut self, buf: &[u8], at: usize, name: TagName, keep: bool, eof: bool, sink: &mut impl Sink) -> Step {
        let mut search = at;
        let (end, gt) = loop {
            let Some(offset) = memmem::find(&buf[search..], b"</") else {
                if eof {
                    if keep && self.within_budget(buf.len() - at) {
                        sink.text(&buf[at..]);
                    }
                    return Step::To(buf.len());
                }
                return Step::Incomplete;
            };
            let open = search + offset;
            let name_end = open + 2 + skip_while(&buf[open + 2..], 0, |b| b.is_ascii_alphanumeric());
            if name_end == buf.len() {
                if eof {
                    search = open + 2;
                    continue;
                }
                return Step::Incomplete;
            }
            let ends_name = is_space(buf[name_end]) || matches!(buf[name_end], b'/' | b'>');
            if ends_name && TagName::of(&buf[open + 2..name_end]) == name {
                match tag_end(buf, name_end) {
                    Some(gt) => break (open, gt),
                    None if eof => return Step::To(buf.len()),
                    None => return Step::Incomplete,
                }
            }
            search = open + 2;
        };
        if keep && self.within_budget(end - at) {
            sink.text(&buf[at..end]);
        }
        if !self.failed {
            sink.end_tag(name);
        }
        self.mode = Mode::Data;
        Step::To(gt + 1)
    }

    fn plaintext(&mut self, buf: &[u8], at: usize, eof: bool, sink: &mut impl Sink) -> Step {
        if !eof {
            return Step::Incomplete;
        }
        if self.within_budget(buf.len() - at) {
            sink.text(&buf[at..]);
        }
        Step::To(buf.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tokens written back as a compact trace: `<a href=x>`, `</a>`, `"text"`.
    #[derive(Default)]
    struct Trace(String);

    impl Sink for Trace {
        fn start_tag(&mut self, tag: &StartTag<'_>) {
            self.0.push('<');
            self.0
                .push_str(&String::from_utf8_lossy(tag.raw_name).to_ascii_lowercase());
            for (name, value) in tag.attributes() {
                self.0.push(' ');
                self.0.push_str(&String::from_utf8_lossy(name));
                self.0.push('=');
                self.0.push_str(&String::from_utf8_lossy(value));
            }
            if tag.self_closing {
                self.0.push('/');
            }
            self.0.push('>');
        }

        fn end_tag(&mut self, name: TagName) {
            self.0.push_str(&format!("</{:x}>", name.0));
        }

        fn text(&mut self, text: &[u8]) {
            self.0.push('"');
            self.0.push_str(&String::from_utf8_lossy(text));
            self.0.push('"');
        }
    }

    fn trace_in_pieces(html: &str, piece: usize) -> String {
        let mut tokenizer = Tokenizer::new(1 << 20);
        let mut trace = Trace::default();
        for chunk in html.as_bytes().chunks(piece.max(1)) {
            tokenizer.feed(chunk, &mut trace);
        }
        tokenizer.finish(&mut trace);
        trace.0
    }

    fn trace(html: &str) -> String {
        let whole = trace_in_pieces(html, html.len());
        for piece in [1, 2, 3, 7] {
            assert_eq!(trace_in_pieces(html, piece), whole, "{html:?} in pieces of {piece}");
        }
        whole
    }

    fn end(name: &str) -> String {
        format!("</{:x}>", TagName::of(name.as_bytes()).0)
    }

    #[test]
    fn tags_text_and_attributes() {
        assert_eq!(
            trace("<P Class=\"a b\" id='x' hidden data-v=1>hi <b>there</b></P>"),
            format!(
                "<p Class=a b id=x hidden= data-v=1>\"hi \"<b>\"there\"{}{}",
                end("b"),
                end("p")
            )
        );
        assert_eq!(trace("<img src=\"a.png\"/>"), "<img src=a.png/>");
        assert_eq!(trace("<br/>"), "<br/>");
    }

    #[test]
    fn quoted_values_may_hold_markup() {
        assert_eq!(
            trace("<a title=\"1 > 0\" x='<b>'>t</a>"),
            format!("<a title=1 > 0 x=<b>>\"t\"{}", end("a"))
        );
        assert_eq!(trace("<a b=c=\"d>e\">"), "<a b=c=\"d>\"e\">\"");
    }

    #[test]
    fn comments_doctypes_and_stray_brackets() {
        assert_eq!(
            trace("<!DOCTYPE html><!-- <p>x</p> -->a<!-->b<!--->c<?php x ?>d"),
            "\"a\"\"b\"\"c\"\"d\""
        );
        assert_eq!(trace("1 < 2 <3 </>x</ y>z"), "\"1 < 2 <3 \"\"x\"\"z\"");
        assert_eq!(trace("tail <"), "\"tail <\"");
    }

    #[test]
    fn raw_text_elements() {
        assert_eq!(
            trace("<script>if (a</b) x='</scriptx>'</SCRIPT >after"),
            format!("<script>{}\"after\"", end("script"))
        );
        assert_eq!(
            trace("<title>A <b> &amp; B</title>"),
            format!("<title>\"A <b> &amp; B\"{}", end("title"))
        );
        assert_eq!(
            trace("<noscript><img src=x></noscript>"),
            format!("<noscript>{}", end("noscript"))
        );
        assert_eq!(trace("<plaintext></plaintext><b>"), "<plaintext>\"</plaintext><b>\"");
        assert_eq!(trace("<style>unterminated"), "<style>");
    }

    #[test]
    fn unfinished_tags_at_the_end_are_dropped() {
        assert_eq!(trace("text<a href=\"x"), "\"text\"");
        assert_eq!(trace("text<!-- open"), "\"text\"");
    }

    #[test]
    fn a_token_past_the_budget_stops_the_pass_at_the_same_place() {
        let html = format!("<p>ok</p><p>{}</p><p>never</p>", "x".repeat(100));
        for piece in [1, 5, 64, html.len()] {
            let mut tokenizer = Tokenizer::new(50);
            let mut trace = Trace::default();
            for chunk in html.as_bytes().chunks(piece) {
                tokenizer.feed(chunk, &mut trace);
            }
            tokenizer.finish(&mut trace);
            assert!(tokenizer.failed());
            assert_eq!(trace.0, format!("<p>\"ok\"{}<p>", end("p")), "pieces of {piece}");
        }
    }

    #[test]
    fn dropped_regions_are_not_held() {
        let mut tokenizer = Tokenizer::new(1 << 20);
        let mut trace = Trace::default();
        tokenizer.feed(b"<script>", &mut trace);
        for _ in 0..1000 {
            tokenizer.feed(&[b'x'; 10_000], &mut trace);
        }
        assert!(tokenizer.buf.len() < 2 * MIN_RETRY + 10_000, "{}", tokenizer.buf.len());
        tokenizer.feed(b"</script>y", &mut trace);
        tokenizer.finish(&mut trace);
        assert_eq!(trace.0, format!("<script>{}\"y\"", end("script")));
    }
}
