//! The canonical form of a page, written straight into hashers as the
//! tokenizer reports it.
//!
//! What reaches the canonical form: start tags (lower-cased name,
//! attributes sorted by name, each value trimmed, every spelling of the
//! site's bases rewritten to the primary's origin, origin-relative URLs
//! made absolute) and text nodes (bases rewritten, whitespace runs folded
//! to one space, each node on its own line). What never does, so it cannot
//! make two copies differ: comments, doctypes, end tags (so implicitly
//! closed elements need no special case), script/style/noscript/iframe and
//! templates with all they contain.
//!
//! Two hashes come out of one pass: the selected content's (tags and text
//! inside elements the `content_selector` selects) and the whole page's
//! (tags and text without a selector; only text with one, for the page
//! whose selector matched nothing).

use std::borrow::Cow;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::selector::{OpenElements, Selector};
use super::tokenizer::{Sink, StartTag, TagName, names};
use crate::origin::Origin;

/// Deeper than this, a page stops being read: the chain of open elements
/// is the one thing a page could otherwise grow without bound.
const MAX_OPEN_ELEMENTS: usize = 1 << 18;

pub(super) struct Canon {
    rewriter: Arc<BaseRewriter>,
    selector: Option<Arc<Selector>>,
    open: OpenElements,
    /// Depth of the outermost open selected element.
    selection_root: Option<usize>,
    /// Depth of the outermost open `<template>`.
    template_root: Option<usize>,
    whole: Sha256,
    selected: Sha256,
    /// An element was selected: the selector matched this page.
    selected_any: bool,
    /// The canonical text, kept for tests and debugging.
    whole_out: Option<Vec<u8>>,
    selected_out: Option<Vec<u8>>,
    /// Reused for each tag's attributes: their bytes and where each lies.
    scratch: Vec<u8>,
    attributes: Vec<(std::ops::Range<usize>, std::ops::Range<usize>)>,
    piece: Vec<u8>,
    /// The page nested deeper than [`MAX_OPEN_ELEMENTS`]: nothing after counts.
    pub(super) stopped: bool,
}

impl Canon {
    pub(super) fn new(rewriter: Arc<BaseRewriter>, selector: Option<Arc<Selector>>, keep_text: bool) -> Self {
        Canon {
            open: OpenElements::new(selector.as_deref()),
            rewriter,
            selector,
            selection_root: None,
            template_root: None,
            whole: Sha256::new(),
            selected: Sha256::new(),
            selected_any: false,
            whole_out: keep_text.then(Vec::new),
            selected_out: keep_text.then(Vec::new),
            scratch: Vec::new(),
            attributes: Vec::new(),
            piece: Vec::new(),
            stopped: false,
        }
    }

    /// The hash that counts, and the canonical text when it was kept.
    pub(super) fn finish(self) -> (super::Hash, Option<String>) {
        let (hasher, out) = if self.selector.is_some() && self.selected_any {
            (self.selected, self.selected_out)
        } else {
            (self.whole, self.whole_out)
        };
        let text = out.map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
        (super::Hash(hasher.finalize().into()), text)
    }

    fn emit(&mut self, selected: bool, to_whole: bool) {
        if to_whole {
            self.whole.update(&self.piece);
            if let Some(out) = &mut self.whole_out {
                out.extend_from_slice(&self.piece);
            }
        }
        if selected {
            self.selected.update(&self.piece);
            if let Some(out) = &mut self.selected_out {
                out.extend_from_slice(&self.piece);
            }
        }
    }

    /// Writes `<name a="v" …>` into `piece`.
    fn write_tag(&mut self, tag: &StartTag<'_>) {
        self.scratch.clear();
        self.attributes.clear();
        for (name, value) in tag.attributes() {
            let name_at = self.scratch.len();
            self.scratch.extend(name.iter().map(u8::to_ascii_lowercase));
            let value_at = self.scratch.len();
            self.rewriter.write_attribute_value(value, &mut self.scratch);
            self.attributes.push((name_at..value_at, value_at..self.scratch.len()));
        }
        let scratch = &self.scratch;
        // Stable: of an attribute written twice, the first stays first and wins.
        self.attributes
            .sort_by(|a, b| scratch[a.0.clone()].cmp(&scratch[b.0.clone()]));
        self.attributes
            .dedup_by(|later, first| scratch[later.0.clone()] == scratch[first.0.clone()]);
        let piece = &mut self.piece;
        piece.clear();
        piece.push(b'<');
        piece.extend(tag.raw_name.iter().map(u8::to_ascii_lowercase));
        for (name, value) in &self.attributes {
            piece.push(b' ');
            piece.extend_from_slice(&scratch[name.clone()]);
            piece.extend_from_slice(b"=\"");
            piece.extend_from_slice(&scratch[value.clone()]);
            piece.push(b'"');
        }
        piece.push(b'>');
    }
}

/// Elements whose content never counts.
fn is_ignored(name: TagName) -> bool {
    matches!(
        name,
        names::SCRIPT | names::STYLE | names::NOSCRIPT | names::IFRAME | names::TEMPLATE
    )
}

/// Elements that never have content, so never stay open.
fn is_void(name: TagName) -> bool {
    const VOID: [TagName; 16] = [
        TagName::of(b"area"),
        TagName::of(b"base"),
        TagName::of(b"br"),
        TagName::of(b"col"),
        TagName::of(b"embed"),
        TagName::of(b"hr"),
        TagName::of(b"img"),
        TagName::of(b"input"),
        TagName::of(b"link"),
        TagName::of(b"meta"),
        TagName::of(b"source"),
        TagName::of(b"track"),
        TagName::of(b"wbr"),
        TagName::of(b"param"),
        TagName::of(b"keygen"),
        TagName::of(b"frame"),
    ];
    VOID.contains(&name)
}

impl Sink for Canon {
    fn start_tag(&mut self, tag: &StartTag<'_>) {
        if self.stopped {
            return;
        }
        let sibling_index = self.open.next_child();
        let (mask, selected) = match &self.selector {
            None => (0, false),
            Some(selector) => {
                let mask = selector.compound_mask(tag, sibling_index);
                (
                    mask,
                    self.selection_root.is_some() || selector.matches(mask, &self.open),
                )
            }
        };
        if self.template_root.is_none() && !is_ignored(tag.name) {
            // With a selector, tags outside the selection never count, which
            // also spares their attribute work on menus and link lists.
            if selected || self.selector.is_none() {
                self.selected_any |= selected;
                self.write_tag(tag);
                self.emit(selected, !selected);
            }
        }
        if tag.self_closing || is_void(tag.name) {
            return;
        }
        let depth = self.open.len();
        if depth >= MAX_OPEN_ELEMENTS {
            self.stopped = true;
            return;
        }
        self.open.push(tag.name, mask);
        if selected && self.selection_root.is_none() {
            self.selection_root = Some(depth);
        }
        if tag.name == names::TEMPLATE && self.template_root.is_none() {
            self.template_root = Some(depth);
        }
    }

    fn end_tag(&mut self, name: TagName) {
        if self.stopped {
            return;
        }
        if let Some(depth) = self.open.close(name) {
            if self.selection_root.is_some_and(|root| root >= depth) {
                self.selection_root = None;
            }
            if self.template_root.is_some_and(|root| root >= depth) {
                self.template_root = None;
            }
        }
    }

    fn text(&mut self, text: &[u8]) {
        if self.stopped || self.template_root.is_some() {
            return;
        }
        if text.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let rewritten = self.rewriter.rewrite(text);
        let piece = &mut self.piece;
        piece.clear();
        for word in rewritten.split(u8::is_ascii_whitespace).filter(|w| !w.is_empty()) {
            piece.push(if piece.is_empty() { b'\n' } else { b' ' });
            piece.extend_from_slice(word);
        }
        self.emit(self.selection_root.is_some(), true);
    }
}

/// Rewrites every spelling of a site's bases to the primary's origin.
#[derive(Clone, Debug)]
pub(super) struct BaseRewriter {
    primary: String,
    /// Lower-case `host[:port]` of every base and its www/non-www twin,
    /// longest first so a longer host wins over its suffix.
    authorities: Vec<String>,
}

impl BaseRewriter {
    pub(super) fn new<'a>(primary: &Origin, bases: impl IntoIterator<Item = &'a Origin>) -> Self {
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

    /// Trimmed, bases rewritten, an origin-relative URL made absolute.
    fn write_attribute_value(&self, value: &[u8], out: &mut Vec<u8>) {
        let rewritten = self.rewrite(value.trim_ascii());
        if rewritten.starts_with(b"/") && !rewritten.starts_with(b"//") {
            out.extend_from_slice(self.primary.as_bytes());
        }
        out.extend_from_slice(&rewritten);
    }

    /// Finds `//host`, `http://host`, `https://host` and the JSON-escaped
    /// `https:\/\/host` for every base host and writes the primary's origin
    /// in their place.
    pub(super) fn rewrite<'t>(&self, text: &'t [u8]) -> Cow<'t, [u8]> {
        let mut out: Option<Vec<u8>> = None;
        let mut copied = 0;
        let mut at = 0;
        while let Some(found) = memchr::memchr2(b'/', b'\\', &text[at..]) {
            let slash = at + found;
            let rest = &text[slash..];
            let host_start = if rest.starts_with(b"//") {
                slash + 2
            } else if rest.starts_with(br"\/\/") {
                slash + 4
            } else {
                at = slash + 1;
                continue;
            };
            let Some(host_len) = self.match_authority(&text[host_start..]) else {
                at = host_start;
                continue;
            };
            let start = scheme_start(text, slash);
            let out = out.get_or_insert_with(|| Vec::with_capacity(text.len()));
            out.extend_from_slice(&text[copied..start]);
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
