//! Tree construction (the HTML standard's 13.2.6), streamed.
//!
//! What a reader sees depends on the tree a browser builds, not only on the
//! tokens: an `<li>` closes the open one, `</article>` inside a table cell
//! is ignored, text in a table lands before it, `<b>` is reopened in the
//! next paragraph, `<p>` inside `<svg>` leaves the SVG. This module runs the
//! insertion modes of the standard over the tokens, keeping the stack of
//! open elements and the list of active formatting elements, and reports
//! each element inserted, each piece of text and each element closed to a
//! [`TreeSink`] in document order. It builds no tree: where the standard
//! moves nodes already inserted (the adoption agency's furthest block), the
//! sink sees the stack change but not the move.
//!
//! It follows the standard as html5ever implements it (the customizable
//! `<select>` included), with scripting disabled: `<noscript>` content is
//! parsed as markup, as readers without scripting see it.

use super::names::{Name, Ns, n};
use super::tokenizer::{Doctype, Next, Tag, TokenSink};

/// One open element.
pub(crate) struct Entry<T> {
    pub name: Name,
    pub ns: Ns,
    /// The stack position of the element it was inserted into (None: the
    /// document, or a parent no longer open).
    pub parent: Option<usize>,
    /// Selector compounds the element matches on its own.
    pub mask: u64,
    /// Children inserted so far, for `:nth-child`.
    pub children: u32,
    /// MathML `annotation-xml` with an HTML encoding.
    html_integration_point: bool,
    id: u32,
    pub data: T,
    /// Elements taken off the stack while this one stayed open inside
    /// them (`</form>` with the form not current): in the tree they still
    /// hold it, so they close when it does.
    deferred: Vec<Entry<T>>,
}

impl<T> Entry<T> {
    /// Unique within a page: tells two elements apart when one took the
    /// other's place on the stack.
    pub(crate) fn id(&self) -> u32 {
        self.id
    }

    pub(crate) fn is_html(&self, name: u128) -> bool {
        self.ns == Ns::Html && self.name == Name::Short(name)
    }

    fn html_name(&self) -> Option<u128> {
        if self.ns == Ns::Html { self.name.short() } else { None }
    }
}

/// The stack of open elements, with, per element and per selector bit, the
/// nearest element at or above it (by parent links) that has the bit: a
/// descendant combinator finds its candidate without walking the stack.
pub(crate) struct OpenElements<T> {
    entries: Vec<Entry<T>>,
    nearest: Vec<u32>,
    bits: usize,
    top_level_children: u32,
    /// How many of the elements scopes ask about are open, so that asking
    /// about one that is not costs nothing (see [`counted`]).
    counts: [u32; COUNTED_NAMES],
    /// Which element ids are open, one bit each (ids only grow).
    ids: Vec<u64>,
}

const COUNTED_NAMES: usize = 21;

/// The slot of an HTML element that scope checks and the like ask about.
fn counted(entry_ns: Ns, name: &Name) -> Option<usize> {
    if entry_ns != Ns::Html {
        return None;
    }
    Some(match name.short()? {
        n::P => 0,
        n::BUTTON => 1,
        n::TEMPLATE => 2,
        n::TABLE => 3,
        n::SELECT => 4,
        n::LI => 5,
        n::DD => 6,
        n::DT => 7,
        n::BODY => 8,
        n::FORM => 9,
        n::RUBY => 10,
        n::NOBR => 11,
        n::CAPTION => 12,
        n::TR => 13,
        n::TD | n::TH => 14,
        n::TBODY | n::THEAD | n::TFOOT => 15,
        n::APPLET | n::MARQUEE | n::OBJECT => 16,
        n::OPTION | n::OPTGROUP => 17,
        n::H1 | n::H2 | n::H3 | n::H4 | n::H5 | n::H6 => 18,
        n::A => 19,
        n::HTML => 20,
        _ => return None,
    })
}

const NONE: u32 = u32::MAX;

/// Open elements a page may nest; past this it is not read further. Real
/// pages stay far below (Blink stops nesting at 512), and it bounds the
/// work a scope check can cost.
pub(crate) const MAX_DEPTH: usize = 4096;

impl<T> OpenElements<T> {
    fn new(bits: usize) -> Self {
        OpenElements {
            entries: Vec::new(),
            nearest: Vec::new(),
            bits,
            top_level_children: 0,
            counts: [0; COUNTED_NAMES],
            ids: Vec::new(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn get(&self, at: usize) -> &Entry<T> {
        &self.entries[at]
    }

    pub(crate) fn get_mut(&mut self, at: usize) -> &mut Entry<T> {
        &mut self.entries[at]
    }

    pub(crate) fn iter(&self) -> std::slice::Iter<'_, Entry<T>> {
        self.entries.iter()
    }

    fn last(&self) -> Option<&Entry<T>> {
        self.entries.last()
    }

    fn position(&self, id: u32) -> Option<usize> {
        if !self.contains(id) {
            return None;
        }
        self.entries.iter().rposition(|e| e.id == id)
    }

    fn contains(&self, id: u32) -> bool {
        self.ids
            .get(id as usize / 64)
            .is_some_and(|word| word & (1 << (id % 64)) != 0)
    }

    /// Whether an element that `counted` gives this slot may be open
    /// (false means surely not).
    fn may_have(&self, ns: Ns, name: &Name) -> bool {
        counted(ns, name).is_none_or(|slot| self.counts[slot] > 0)
    }

    fn track(&mut self, entry: &Entry<T>, added: bool) {
        if let Some(slot) = counted(entry.ns, &entry.name) {
            if added {
                self.counts[slot] += 1;
            } else {
                self.counts[slot] = self.counts[slot].saturating_sub(1);
            }
        }
        let (word, bit) = (entry.id as usize / 64, 1u64 << (entry.id % 64));
        if word >= self.ids.len() {
            self.ids.resize(word + 1, 0);
        }
        if added {
            self.ids[word] |= bit;
        } else {
            self.ids[word] &= !bit;
        }
    }

    /// The nearest element at or above `at` (by parent links) with `bit`.
    pub(crate) fn nearest(&self, at: usize, bit: usize) -> Option<usize> {
        let found = self.nearest[at * self.bits + bit];
        (found != NONE).then_some(found as usize)
    }

    /// Counts a new child of `parent` and returns its 1-based position.
    pub(crate) fn next_child(&mut self, parent: Option<usize>) -> u32 {
        let count = match parent {
            Some(at) => &mut self.entries[at].children,
            None => &mut self.top_level_children,
        };
        *count = count.saturating_add(1);
        *count
    }

    /// Appends the nearest-element row of the element at `at`.
    fn push_nearest_row(&mut self, at: usize) {
        let entry = &self.entries[at];
        let (mask, parent) = (entry.mask, entry.parent);
        for bit in 0..self.bits {
            let nearest = if mask & (1 << bit) != 0 {
                at as u32
            } else {
                parent.map_or(NONE, |p| self.nearest[p * self.bits + bit])
            };
            self.nearest.push(nearest);
        }
    }

    fn push(&mut self, entry: Entry<T>) {
        self.track(&entry, true);
        self.entries.push(entry);
        self.push_nearest_row(self.entries.len() - 1);
    }

    fn pop(&mut self) -> Option<Entry<T>> {
        let entry = self.entries.pop()?;
        self.track(&entry, false);
        self.nearest.truncate(self.entries.len() * self.bits);
        Some(entry)
    }

    /// Removes the element at `at` from the middle of the stack: those
    /// inserted into it now hang from its parent.
    fn remove(&mut self, at: usize) -> Entry<T> {
        let removed = self.entries.remove(at);
        self.track(&removed, false);
        for entry in &mut self.entries[at..] {
            entry.parent = match entry.parent {
                Some(p) if p == at => removed.parent,
                Some(p) if p > at => Some(p - 1),
                other => other,
            };
        }
        self.recompute_from(at);
        removed
    }

    /// Inserts `entry` just above the element at `parent`, taking over the
    /// open elements that were inserted into it (the adoption agency's new
    /// element, which receives the furthest block's children).
    fn insert_child(&mut self, parent: usize, mut entry: Entry<T>) {
        let at = parent + 1;
        entry.parent = Some(parent);
        self.track(&entry, true);
        self.entries.insert(at, entry);
        for entry in &mut self.entries[at + 1..] {
            entry.parent = match entry.parent {
                Some(p) if p == parent => Some(at),
                Some(p) if p >= at => Some(p + 1),
                other => other,
            };
        }
        self.recompute_from(at);
    }

    fn replace(&mut self, at: usize, mut entry: Entry<T>) -> Entry<T> {
        entry.parent = self.entries[at].parent;
        self.track(&entry, true);
        let old = std::mem::replace(&mut self.entries[at], entry);
        self.track(&old, false);
        self.recompute_from(at);
        old
    }

    fn recompute_from(&mut self, at: usize) {
        self.nearest.truncate(at * self.bits);
        for i in at..self.entries.len() {
            self.push_nearest_row(i);
        }
    }
}

/// Attributes of an element being inserted: from its tag, or kept from an
/// earlier tag (a formatting element reopened).
#[derive(Clone, Copy)]
pub(crate) enum Attrs<'a> {
    Tag(&'a Tag<'a>),
    /// As [`pack`] wrote them.
    Packed(&'a [u8]),
    None,
}

/// Attributes as one buffer of length-prefixed names and values: one
/// allocation for a tag kept in the list of formatting elements.
pub(crate) fn pack<'a>(attrs: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> Box<[u8]> {
    let mut out = Vec::new();
    for (name, value) in attrs {
        for field in [name, value] {
            out.extend_from_slice(&(field.len() as u32).to_le_bytes());
            out.extend_from_slice(field);
        }
    }
    out.into_boxed_slice()
}

/// The pairs [`pack`] wrote.
pub(crate) fn unpack(mut packed: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    std::iter::from_fn(move || {
        let mut field = || {
            let len = u32::from_le_bytes(packed.get(..4)?.try_into().ok()?) as usize;
            let value = packed.get(4..4 + len)?;
            packed = &packed[4 + len..];
            Some(value)
        };
        Some((field()?, field()?))
    })
}

impl<'a> Attrs<'a> {
    pub(crate) fn iter(self) -> Box<dyn Iterator<Item = (&'a [u8], &'a [u8])> + 'a> {
        match self {
            Attrs::Tag(tag) => Box::new(tag.attributes()),
            Attrs::Packed(packed) => Box::new(unpack(packed)),
            Attrs::None => Box::new(std::iter::empty()),
        }
    }

    pub(crate) fn get(self, name: &[u8]) -> Option<&'a [u8]> {
        match self {
            Attrs::Tag(tag) => tag.attribute(name),
            Attrs::Packed(packed) => unpack(packed).find(|(n, _)| *n == name).map(|(_, v)| v),
            Attrs::None => None,
        }
    }
}

/// An element about to be inserted.
pub(crate) struct NewElement<'a> {
    pub name: &'a Name,
    pub ns: Ns,
    pub attrs: Attrs<'a>,
}

/// Where a node goes: into the open element at `parent` (None: the
/// document), and, when foster-parented, just before the table at `before`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Place {
    pub parent: Option<usize>,
    pub before: Option<usize>,
}

pub(crate) trait TreeSink {
    type Data: Clone;
    /// The selector bits an element matches on its own.
    fn mask(&mut self, element: &NewElement<'_>, sibling_index: u32) -> u64;
    /// `element` (matching `mask`) is inserted at `place`.
    fn insert(
        &mut self,
        open: &mut OpenElements<Self::Data>,
        place: Place,
        element: &NewElement<'_>,
        mask: u64,
    ) -> Self::Data;
    fn text(&mut self, open: &OpenElements<Self::Data>, place: Place, text: &[u8]);
    /// `entry` left the stack of open elements. `moved_out`: the adoption
    /// agency moved what was open inside it out of it, so in the tree it
    /// ended before those (which the sink has already seen).
    fn close(&mut self, entry: &Entry<Self::Data>, moved_out: bool);
    /// `<html>` or `<body>` again: attributes the element lacks are added.
    fn add_attributes(&mut self, entry: &mut Entry<Self::Data>, attrs: Attrs<'_>);
    /// `removed` left the stack while `holder`, opened inside it, stays
    /// open: in the tree it still holds `holder`.
    fn adopt(&mut self, holder: &mut Entry<Self::Data>, removed: &Entry<Self::Data>);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Initial,
    BeforeHtml,
    BeforeHead,
    InHead,
    InHeadNoscript,
    AfterHead,
    InBody,
    Text,
    InTable,
    InTableText,
    InCaption,
    InColumnGroup,
    InTableBody,
    InRow,
    InCell,
    InTemplate,
    AfterBody,
    InFrameset,
    AfterFrameset,
    AfterAfterBody,
    AfterAfterFrameset,
}

#[derive(Clone, Copy)]
enum Token<'a> {
    Start(&'a Tag<'a>),
    End(&'a [u8]),
    Text(&'a [u8]),
    /// A NUL character in data.
    Null,
    /// Comments are not content; they matter only by ending a run of table text.
    Comment,
    Eof,
}

enum Step {
    Done,
    /// Reprocess the token in the mode now current.
    Again,
    /// The first `n` bytes of a text token are done; reprocess the rest.
    Rest(usize),
}

enum Formatting {
    Marker,
    Element {
        id: u32,
        name: Name,
        /// Its attributes, [`pack`]ed: reopened elements get them again.
        attrs: Box<[u8]>,
    },
}

pub(crate) struct TreeBuilder<S: TreeSink> {
    pub sink: S,
    /// Start tags the page itself wrote (the tree builder adds `html`,
    /// `head` and `body` to any text).
    pub start_tags: u64,
    /// The page nested deeper than [`MAX_DEPTH`]: nothing after counts.
    pub too_deep: bool,
    open: OpenElements<S::Data>,
    active: Vec<Formatting>,
    mode: Mode,
    original_mode: Mode,
    template_modes: Vec<Mode>,
    head: Option<(u32, S::Data)>,
    form: Option<u32>,
    frameset_ok: bool,
    quirks: bool,
    foster_parenting: bool,
    pending_table_text: Vec<u8>,
    ignore_lf: bool,
    next: Next,
    next_id: u32,
}

fn is_whitespace(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | b'\x0c' | b'\r' | b' ')
}

fn is_special(entry: &Entry<impl Sized>) -> bool {
    match entry.ns {
        Ns::Html => entry.name.short().is_some_and(|name| {
            matches!(
                name,
                n::ADDRESS
                    | n::APPLET
                    | n::AREA
                    | n::ARTICLE
                    | n::ASIDE
                    | n::BASE
                    | n::BASEFONT
                    | n::BGSOUND
                    | n::BLOCKQUOTE
                    | n::BODY
                    | n::BR
                    | n::BUTTON
                    | n::CAPTION
                    | n::CENTER
                    | n::COL
                    | n::COLGROUP
                    | n::DD
                    | n::DETAILS
                    | n::DIR
                    | n::DIV
                    | n::DL
                    | n::DT
                    | n::EMBED
                    | n::FIELDSET
                    | n::FIGCAPTION
                    | n::FIGURE
                    | n::FOOTER
                    | n::FORM
                    | n::FRAME
                    | n::FRAMESET
                    | n::H1
                    | n::H2
                    | n::H3
                    | n::H4
                    | n::H5
                    | n::H6
                    | n::HEAD
                    | n::HEADER
                    | n::HGROUP
                    | n::HR
                    | n::HTML
                    | n::IFRAME
                    | n::IMG
                    | n::INPUT
                    | n::KEYGEN
                    | n::LI
                    | n::LINK
                    | n::LISTING
                    | n::MAIN
                    | n::MARQUEE
                    | n::MENU
                    | n::META
                    | n::NAV
                    | n::NOEMBED
                    | n::NOFRAMES
                    | n::NOSCRIPT
                    | n::OBJECT
                    | n::OL
                    | n::P
                    | n::PARAM
                    | n::PLAINTEXT
                    | n::PRE
                    | n::SCRIPT
                    | n::SEARCH
                    | n::SECTION
                    | n::SELECT
                    | n::SOURCE
                    | n::STYLE
                    | n::SUMMARY
                    | n::TABLE
                    | n::TBODY
                    | n::TD
                    | n::TEMPLATE
                    | n::TEXTAREA
                    | n::TFOOT
                    | n::TH
                    | n::THEAD
                    | n::TITLE
                    | n::TR
                    | n::TRACK
                    | n::UL
                    | n::WBR
                    | n::XMP
            )
        }),
        _ => is_mathml_text_integration_point(entry) || is_svg_integration_point(entry) || is_annotation_xml(entry),
    }
}

fn is_mathml_text_integration_point(entry: &Entry<impl Sized>) -> bool {
    entry.ns == Ns::MathMl
        && entry
            .name
            .short()
            .is_some_and(|name| matches!(name, n::MI | n::MO | n::MN | n::MS | n::MTEXT))
}

fn is_svg_integration_point(entry: &Entry<impl Sized>) -> bool {
    entry.ns == Ns::Svg
        && entry
            .name
            .short()
            .is_some_and(|name| matches!(name, n::FOREIGNOBJECT | n::DESC | n::TITLE))
}

fn is_annotation_xml(entry: &Entry<impl Sized>) -> bool {
    entry.ns == Ns::MathMl && entry.name == Name::Short(n::ANNOTATION_XML)
}

fn is_html_integration_point(entry: &Entry<impl Sized>) -> bool {
    is_svg_integration_point(entry) || entry.html_integration_point
}

/// The same attributes, in any order (names are unique within a tag).
fn same_attributes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len()
        && unpack(a).count() == unpack(b).count()
        && unpack(a).all(|pair| unpack(b).any(|other| other == pair))
}

fn is_heading(name: u128) -> bool {
    matches!(name, n::H1 | n::H2 | n::H3 | n::H4 | n::H5 | n::H6)
}

fn implied_end(name: u128) -> bool {
    matches!(
        name,
        n::DD | n::DT | n::LI | n::OPTION | n::OPTGROUP | n::P | n::RB | n::RP | n::RT | n::RTC
    )
}

fn thoroughly_implied_end(name: u128) -> bool {
    implied_end(name)
        || matches!(
            name,
            n::CAPTION | n::COLGROUP | n::TBODY | n::TD | n::TFOOT | n::TH | n::THEAD | n::TR
        )
}

#[derive(Clone, Copy)]
enum Scope {
    Default,
    ListItem,
    Button,
    Table,
}

impl Scope {
    fn bounds(self, entry: &Entry<impl Sized>) -> bool {
        let html = entry.html_name();
        match self {
            Scope::Table => matches!(html, Some(n::HTML | n::TABLE | n::TEMPLATE)),
            _ => {
                let default = matches!(
                    html,
                    Some(
                        n::APPLET
                            | n::CAPTION
                            | n::HTML
                            | n::TABLE
                            | n::TD
                            | n::TH
                            | n::MARQUEE
                            | n::OBJECT
                            | n::SELECT
                            | n::TEMPLATE
                    )
                ) || is_mathml_text_integration_point(entry)
                    || is_svg_integration_point(entry)
                    || is_annotation_xml(entry);
                default
                    || match self {
                        Scope::ListItem => matches!(html, Some(n::OL | n::UL)),
                        Scope::Button => html == Some(n::BUTTON),
                        _ => false,
                    }
            }
        }
    }
}

/// Doctypes whose public identifier puts a document in quirks mode
/// (13.2.6.4.1), lower-cased: exact ones, then prefixes.
const QUIRKY_PUBLIC: [&[u8]; 3] = [
    b"-//w3o//dtd w3 html strict 3.0//en//",
    b"-/w3c/dtd html 4.0 transitional/en",
    b"html",
];
const QUIRKY_PUBLIC_PREFIXES: [&[u8]; 55] = [
    b"+//silmaril//dtd html pro v0r11 19970101//",
    b"-//as//dtd html 3.0 aswedit + extensions//",
    b"-//advasoft ltd//dtd html 3.0 aswedit + extensions//",
    b"-//ietf//dtd html 2.0 level 1//",
    b"-//ietf//dtd html 2.0 level 2//",
    b"-//ietf//dtd html 2.0 strict level 1//",
    b"-//ietf//dtd html 2.0 strict level 2//",
    b"-//ietf//dtd html 2.0 strict//",
    b"-//ietf//dtd html 2.0//",
    b"-//ietf//dtd html 2.1e//",
    b"-//ietf//dtd html 3.0//",
    b"-//ietf//dtd html 3.2 final//",
    b"-//ietf//dtd html 3.2//",
    b"-//ietf//dtd html 3//",
    b"-//ietf//dtd html level 0//",
    b"-//ietf//dtd html level 1//",
    b"-//ietf//dtd html level 2//",
    b"-//ietf//dtd html level 3//",
    b"-//ietf//dtd html strict level 0//",
    b"-//ietf//dtd html strict level 1//",
    b"-//ietf//dtd html strict level 2//",
    b"-//ietf//dtd html strict level 3//",
    b"-//ietf//dtd html strict//",
    b"-//ietf//dtd html//",
    b"-//metrius//dtd metrius presentational//",
    b"-//microsoft//dtd internet explorer 2.0 html strict//",
    b"-//microsoft//dtd internet explorer 2.0 html//",
    b"-//microsoft//dtd internet explorer 2.0 tables//",
    b"-//microsoft//dtd internet explorer 3.0 html strict//",
    b"-//microsoft//dtd internet explorer 3.0 html//",
    b"-//microsoft//dtd internet explorer 3.0 tables//",
    b"-//netscape comm. corp.//dtd html//",
    b"-//netscape comm. corp.//dtd strict html//",
    b"-//o'reilly and associates//dtd html 2.0//",
    b"-//o'reilly and associates//dtd html extended 1.0//",
    b"-//o'reilly and associates//dtd html extended relaxed 1.0//",
    b"-//sq//dtd html 2.0 hotmetal + extensions//",
    b"-//softquad software//dtd hotmetal pro 6.0::19990601::extensions to html 4.0//",
    b"-//softquad//dtd hotmetal pro 4.0::19971010::extensions to html 4.0//",
    b"-//spyglass//dtd html 2.0 extended//",
    b"-//sun microsystems corp.//dtd hotjava html//",
    b"-//sun microsystems corp.//dtd hotjava strict html//",
    b"-//w3c//dtd html 3 1995-03-24//",
    b"-//w3c//dtd html 3.2 draft//",
    b"-//w3c//dtd html 3.2 final//",
    b"-//w3c//dtd html 3.2//",
    b"-//w3c//dtd html 3.2s draft//",
    b"-//w3c//dtd html 4.0 frameset//",
    b"-//w3c//dtd html 4.0 transitional//",
    b"-//w3c//dtd html experimental 19960712//",
    b"-//w3c//dtd html experimental 970421//",
    b"-//w3c//dtd w3 html//",
    b"-//w3o//dtd w3 html 3.0//",
    b"-//webtechs//dtd mozilla html 2.0//",
    b"-//webtechs//dtd mozilla html//",
];
/// Without a system identifier these are quirky too (with one, limited-quirky).
const HTML4_PUBLIC_PREFIXES: [&[u8]; 2] = [
    b"-//w3c//dtd html 4.01 frameset//",
    b"-//w3c//dtd html 4.01 transitional//",
];

/// Whether a doctype puts the document in quirks mode (limited quirks
/// counts as not: it differs only in line heights, not in parsing).
fn is_quirky(doctype: &Doctype) -> bool {
    if doctype.force_quirks || doctype.name.as_deref() != Some(b"html") {
        return true;
    }
    let public = doctype.public_id.as_deref().map(<[u8]>::to_ascii_lowercase);
    let system = doctype.system_id.as_deref().map(<[u8]>::to_ascii_lowercase);
    let Some(public) = public else {
        return system.as_deref() == Some(b"http://www.ibm.com/data/dtd/v11/ibmxhtml1-transitional.dtd");
    };
    QUIRKY_PUBLIC.contains(&public.as_slice())
        || system.as_deref() == Some(b"http://www.ibm.com/data/dtd/v11/ibmxhtml1-transitional.dtd")
        || QUIRKY_PUBLIC_PREFIXES.iter().any(|p| public.starts_with(p))
        || (system.is_none() && HTML4_PUBLIC_PREFIXES.iter().any(|p| public.starts_with(p)))
}

impl<S: TreeSink> TreeBuilder<S> {
    /// `bits`: how many selector bits [`TreeSink::mask`] hands out.
    pub(crate) fn new(sink: S, bits: usize) -> Self {
        TreeBuilder {
            sink,
            start_tags: 0,
            too_deep: false,
            open: OpenElements::new(bits),
            active: Vec::new(),
            mode: Mode::Initial,
            original_mode: Mode::InBody,
            template_modes: Vec::new(),
            head: None,
            form: None,
            frameset_ok: true,
            quirks: false,
            foster_parenting: false,
            pending_table_text: Vec::new(),
            ignore_lf: false,
            next: Next::Data,
            next_id: 0,
        }
    }

    /// The end of the input: every element still open is closed.
    pub(crate) fn finish(&mut self) {
        self.process(Token::Eof);
        while let Some(entry) = self.open.pop() {
            self.close(entry);
        }
    }

    fn process(&mut self, token: Token<'_>) {
        if self.too_deep {
            return;
        }
        if self.open.len() >= MAX_DEPTH {
            self.too_deep = true;
            return;
        }
        let mut token = token;
        // Bounded: every reprocessing step changes the mode or shrinks the
        // stack, but a bound keeps a mistake from looping forever.
        for _ in 0..10_000 {
            if matches!(token, Token::Comment) && self.mode != Mode::InTableText {
                return;
            }
            let step = if self.is_foreign(token) {
                self.foreign(token)
            } else {
                self.step(self.mode, token)
            };
            match step {
                Step::Done => return,
                Step::Again => {}
                Step::Rest(n) => match token {
                    Token::Text(text) if n < text.len() => token = Token::Text(&text[n..]),
                    _ => return,
                },
            }
        }
    }

    // ---- the stack of open elements ----

    fn current(&self) -> Option<&Entry<S::Data>> {
        self.open.last()
    }

    fn current_is(&self, name: u128) -> bool {
        self.current().is_some_and(|e| e.is_html(name))
    }

    fn current_is_in(&self, test: impl Fn(u128) -> bool) -> bool {
        self.current().and_then(Entry::html_name).is_some_and(test)
    }

    fn has_open(&self, name: u128) -> bool {
        self.open.may_have(Ns::Html, &Name::Short(name)) && self.open.iter().any(|e| e.is_html(name))
    }

    fn in_scope(&self, scope: Scope, target: impl Fn(&Entry<S::Data>) -> bool) -> bool {
        for entry in self.open.iter().rev() {
            if target(entry) {
                return true;
            }
            if scope.bounds(entry) {
                return false;
            }
        }
        false
    }

    fn in_scope_named(&self, scope: Scope, name: u128) -> bool {
        self.open.may_have(Ns::Html, &Name::Short(name)) && self.in_scope(scope, |e| e.is_html(name))
    }

    fn pop(&mut self) {
        if let Some(entry) = self.open.pop() {
            self.close(entry);
        }
    }

    /// Tells the sink an element closed, and then the elements waiting on it.
    fn close(&mut self, entry: Entry<S::Data>) {
        self.close_as(entry, false);
    }

    /// `moved_out`: what was open inside it was moved out of it (and so out
    /// of the elements that waited on it).
    fn close_as(&mut self, entry: Entry<S::Data>, moved_out: bool) {
        self.sink.close(&entry, moved_out);
        for waiting in entry.deferred {
            self.close_as(waiting, moved_out);
        }
    }

    /// Pops elements up to and including the first that passes `test`.
    fn pop_until(&mut self, test: impl Fn(&Entry<S::Data>) -> bool) {
        while let Some(entry) = self.open.pop() {
            let done = test(&entry);
            self.close(entry);
            if done {
                return;
            }
        }
    }

    fn pop_until_named(&mut self, name: u128) {
        self.pop_until(|e| e.is_html(name));
    }

    /// Pops until the current node passes `test` (the table contexts).
    fn pop_until_current(&mut self, test: impl Fn(u128) -> bool) {
        while self.current().is_some_and(|e| !e.html_name().is_some_and(&test)) {
            self.pop();
        }
    }

    /// Takes an element off the stack; if elements opened inside it are
    /// still open, it keeps holding them and closes after them.
    fn remove_from_stack(&mut self, id: u32) {
        if let Some(at) = self.open.position(id) {
            // The open elements it holds directly, by where they will be.
            let children: Vec<usize> = (at + 1..self.open.len())
                .filter(|&i| self.open.get(i).parent == Some(at))
                .map(|i| i - 1)
                .collect();
            let entry = self.open.remove(at);
            if at < self.open.len() {
                for child in children {
                    self.sink.adopt(self.open.get_mut(child), &entry);
                }
                self.open.get_mut(at).deferred.push(entry);
            } else {
                self.close(entry);
            }
        }
    }

    fn generate_implied_end_tags(&mut self, except: Option<u128>) {
        while self.current_is_in(|name| implied_end(name) && Some(name) != except) {
            self.pop();
        }
    }

    fn generate_all_implied_end_tags(&mut self) {
        while self.current_is_in(thoroughly_implied_end) {
            self.pop();
        }
    }

    fn close_p(&mut self) {
        self.generate_implied_end_tags(Some(n::P));
        self.pop_until_named(n::P);
    }

    fn close_p_in_button_scope(&mut self) {
        if self.in_scope_named(Scope::Button, n::P) {
            self.close_p();
        }
    }

    // ---- inserting ----

    /// The standard's "appropriate place for inserting a node".
    fn place(&self) -> Place {
        let Some(target) = self.open.len().checked_sub(1) else {
            return Place {
                parent: None,
                before: None,
            };
        };
        let current = self.open.get(target);
        let foster_target = matches!(
            current.html_name(),
            Some(n::TABLE | n::TBODY | n::TFOOT | n::THEAD | n::TR)
        );
        if !(self.foster_parenting && foster_target) {
            return Place {
                parent: Some(target),
                before: None,
            };
        }
        let last_template = self.open.iter().rposition(|e| e.is_html(n::TEMPLATE));
        let last_table = self.open.iter().rposition(|e| e.is_html(n::TABLE));
        match (last_template, last_table) {
            (Some(template), table) if table.is_none_or(|table| template > table) => Place {
                parent: Some(template),
                before: None,
            },
            (_, None) => Place {
                parent: Some(0),
                before: None,
            },
            (_, Some(table)) => Place {
                parent: self.open.get(table).parent.or(table.checked_sub(1)),
                before: Some(table),
            },
        }
    }

    fn new_entry(&mut self, name: Name, ns: Ns, attrs: Attrs<'_>, place: Place) -> Entry<S::Data> {
        let sibling_index = self.open.next_child(place.parent);
        let element = NewElement { name: &name, ns, attrs };
        let mask = self.sink.mask(&element, sibling_index);
        let data = self.sink.insert(&mut self.open, place, &element, mask);
        let html_integration_point = ns == Ns::MathMl
            && name == Name::Short(n::ANNOTATION_XML)
            && attrs.get(b"encoding").is_some_and(|e| {
                e.eq_ignore_ascii_case(b"text/html") || e.eq_ignore_ascii_case(b"application/xhtml+xml")
            });
        self.next_id += 1;
        Entry {
            name,
            ns,
            parent: place.parent,
            mask,
            children: 0,
            html_integration_point,
            id: self.next_id,
            data,
            deferred: Vec::new(),
        }
    }

    fn insert(&mut self, name: Name, ns: Ns, attrs: Attrs<'_>) -> u32 {
        let place = self.place();
        let entry = self.new_entry(name, ns, attrs, place);
        let id = entry.id;
        self.open.push(entry);
        id
    }

    fn insert_html(&mut self, tag: &Tag<'_>) -> u32 {
        self.insert(Name::of(tag.name), Ns::Html, Attrs::Tag(tag))
    }

    /// A void element, or one closed at once.
    fn insert_and_pop(&mut self, tag: &Tag<'_>) {
        self.insert_html(tag);
        self.pop();
    }

    fn insert_implied(&mut self, name: u128) -> u32 {
        self.insert(Name::Short(name), Ns::Html, Attrs::None)
    }

    fn insert_text(&mut self, text: &[u8]) {
        if text.is_empty() {
            return;
        }
        let place = self.place();
        if place.parent.is_some() {
            self.sink.text(&self.open, place, text);
        }
    }

    /// The generic raw text and RCDATA element parsing algorithms.
    fn raw_text(&mut self, tag: &Tag<'_>, next: Next) -> Step {
        self.insert_html(tag);
        self.original_mode = self.mode;
        self.mode = Mode::Text;
        self.next = next;
        Step::Done
    }

    // ---- active formatting elements ----

    fn push_formatting(&mut self, tag: &Tag<'_>) {
        let name = Name::of(tag.name);
        let attrs = pack(tag.attributes());
        // Noah's Ark: at most three identical entries after the last marker;
        // the earliest goes. Counted without collecting: this runs for every `<a>`.
        let mut same = 0;
        let mut earliest = None;
        for (i, f) in self.active.iter().enumerate().rev() {
            match f {
                Formatting::Marker => break,
                Formatting::Element {
                    name: other,
                    attrs: other_attrs,
                    ..
                } if *other == name && same_attributes(other_attrs, &attrs) => {
                    same += 1;
                    earliest = Some(i);
                }
                Formatting::Element { .. } => {}
            }
        }
        if same >= 3
            && let Some(earliest) = earliest
        {
            self.active.remove(earliest);
        }
        let id = self.insert_html(tag);
        self.active.push(Formatting::Element { id, name, attrs });
    }

    fn is_open_id(&self, id: u32) -> bool {
        self.open.contains(id)
    }

    fn reconstruct_formatting(&mut self) {
        let Some(last) = self.active.last() else {
            return;
        };
        let open_or_marker = |this: &Self, f: &Formatting| match f {
            Formatting::Marker => true,
            Formatting::Element { id, .. } => this.is_open_id(*id),
        };
        if open_or_marker(self, last) {
            return;
        }
        let mut at = self.active.len() - 1;
        while at > 0 {
            if open_or_marker(self, &self.active[at - 1]) {
                break;
            }
            at -= 1;
        }
        for index in at..self.active.len() {
            let Formatting::Element { name, attrs, .. } = &self.active[index] else {
                continue;
            };
            let (name, attrs) = (name.clone(), attrs.clone());
            let id = self.insert(name.clone(), Ns::Html, Attrs::Packed(&attrs));
            self.active[index] = Formatting::Element { id, name, attrs };
        }
    }

    fn clear_formatting_to_marker(&mut self) {
        while let Some(entry) = self.active.pop() {
            if matches!(entry, Formatting::Marker) {
                return;
            }
        }
    }

    fn formatting_position(&self, id: u32) -> Option<usize> {
        self.active
            .iter()
            .position(|f| matches!(f, Formatting::Element { id: other, .. } if *other == id))
    }

    /// The adoption agency algorithm for an end tag named `subject`.
    fn adoption_agency(&mut self, subject: u128) {
        if let Some(current) = self.current()
            && current.is_html(subject)
            && self.formatting_position(current.id).is_none()
        {
            self.pop();
            return;
        }
        for _ in 0..8 {
            let found = self
                .active
                .iter()
                .enumerate()
                .rev()
                .take_while(|(_, f)| !matches!(f, Formatting::Marker))
                .find_map(|(i, f)| match f {
                    Formatting::Element { id, name, .. } if *name == Name::Short(subject) => Some((i, *id)),
                    _ => None,
                });
            let Some((format_index, format_id)) = found else {
                self.any_other_end_tag(&Name::Short(subject));
                return;
            };
            let Some(format_at) = self.open.position(format_id) else {
                self.active.remove(format_index);
                return;
            };
            if !self.in_scope(Scope::Default, |e| e.id == format_id) {
                return;
            }
            let furthest = (format_at + 1..self.open.len()).find(|&i| is_special(self.open.get(i)));
            let Some(mut furthest_at) = furthest else {
                while self.open.len() > format_at {
                    self.pop();
                }
                self.active.remove(format_index);
                return;
            };
            let format_attrs = match &self.active[format_index] {
                Formatting::Element { attrs, .. } => attrs.clone(),
                Formatting::Marker => Box::default(),
            };
            let furthest_id = self.open.get(furthest_at).id;
            // The bookmark: where the new formatting entry goes in the list.
            let mut bookmark_after: Option<u32> = None;
            let mut node_at = furthest_at;
            let mut last_node_id = furthest_id;
            let mut inner = 0;
            loop {
                inner += 1;
                node_at -= 1;
                let node_id = self.open.get(node_at).id;
                if node_id == format_id {
                    break;
                }
                let in_list = self.formatting_position(node_id);
                if inner > 3
                    && let Some(position) = in_list
                {
                    self.active.remove(position);
                }
                let Some(position) = self.formatting_position(node_id).filter(|_| inner <= 3) else {
                    // The tree moves the furthest block out of it: it ended
                    // before the furthest block began.
                    let removed = self.open.remove(node_at);
                    self.close_as(removed, true);
                    furthest_at -= 1;
                    continue;
                };
                let Formatting::Element { name, attrs, .. } = &self.active[position] else {
                    break;
                };
                let (name, attrs) = (name.clone(), attrs.clone());
                let place = Place {
                    parent: self.open.get(node_at).parent,
                    before: None,
                };
                let entry = self.new_entry(name.clone(), Ns::Html, Attrs::Packed(&attrs), place);
                let new_id = entry.id;
                let old = self.open.replace(node_at, entry);
                self.close(old);
                self.active[position] = Formatting::Element {
                    id: new_id,
                    name,
                    attrs,
                };
                if last_node_id == furthest_id {
                    bookmark_after = Some(new_id);
                }
                last_node_id = new_id;
            }
            // The new element takes the formatting element's place in the
            // list and goes inside the furthest block.
            let place = Place {
                parent: Some(furthest_at),
                before: None,
            };
            let entry = self.new_entry(Name::Short(subject), Ns::Html, Attrs::Packed(&format_attrs), place);
            let new_id = entry.id;
            let new_formatting = Formatting::Element {
                id: new_id,
                name: Name::Short(subject),
                attrs: format_attrs,
            };
            match bookmark_after.and_then(|id| self.formatting_position(id)) {
                Some(position) => {
                    self.active.insert(position + 1, new_formatting);
                    if let Some(old) = self.formatting_position(format_id) {
                        self.active.remove(old);
                    }
                }
                None => {
                    if let Some(old) = self.formatting_position(format_id) {
                        self.active[old] = new_formatting;
                    }
                }
            }
            // The furthest block moved out of the formatting element: it ends
            // here, holding nothing still open.
            if let Some(at) = self.open.position(format_id) {
                let removed = self.open.remove(at);
                self.close_as(removed, true);
            }
            if let Some(furthest_at) = self.open.position(furthest_id) {
                self.open.insert_child(furthest_at, entry);
            }
        }
    }

    /// "Any other end tag" in body.
    fn any_other_end_tag(&mut self, name: &Name) {
        for at in (0..self.open.len()).rev() {
            let entry = self.open.get(at);
            if entry.ns == Ns::Html && entry.name == *name {
                let except = name.short();
                self.generate_implied_end_tags(except);
                while self.open.len() > at {
                    self.pop();
                }
                return;
            }
            if is_special(entry) {
                return;
            }
        }
    }

    fn reset_insertion_mode(&mut self) {
        for at in (0..self.open.len()).rev() {
            let last = at == 0;
            let entry = self.open.get(at);
            let Some(name) = entry.html_name() else {
                continue;
            };
            let mode = match name {
                n::TD | n::TH if !last => Mode::InCell,
                n::TR => Mode::InRow,
                n::TBODY | n::THEAD | n::TFOOT => Mode::InTableBody,
                n::CAPTION => Mode::InCaption,
                n::COLGROUP => Mode::InColumnGroup,
                n::TABLE => Mode::InTable,
                n::TEMPLATE => *self.template_modes.last().unwrap_or(&Mode::InBody),
                n::HEAD if !last => Mode::InHead,
                n::BODY => Mode::InBody,
                n::FRAMESET => Mode::InFrameset,
                n::HTML => {
                    if self.head.is_none() {
                        Mode::BeforeHead
                    } else {
                        Mode::AfterHead
                    }
                }
                _ => continue,
            };
            self.mode = mode;
            return;
        }
        self.mode = Mode::InBody;
    }

    fn close_the_cell(&mut self) {
        self.generate_implied_end_tags(None);
        self.pop_until(|e| matches!(e.html_name(), Some(n::TD | n::TH)));
        self.clear_formatting_to_marker();
    }

    // ---- dispatch ----

    fn is_foreign(&self, token: Token<'_>) -> bool {
        let Some(current) = self.current() else {
            return false;
        };
        if current.ns == Ns::Html || matches!(token, Token::Eof) {
            return false;
        }
        let is_text = matches!(token, Token::Text(_) | Token::Null);
        let start = match token {
            Token::Start(tag) => Some(tag.name),
            _ => None,
        };
        if is_mathml_text_integration_point(current)
            && (is_text || start.is_some_and(|name| name != b"mglyph" && name != b"malignmark"))
        {
            return false;
        }
        if is_annotation_xml(current) && start == Some(b"svg") {
            return false;
        }
        if is_html_integration_point(current) && (is_text || start.is_some()) {
            return false;
        }
        true
    }

    /// The rules for parsing tokens in foreign content.
    fn foreign(&mut self, token: Token<'_>) -> Step {
        match token {
            Token::Null => {
                self.insert_text("\u{FFFD}".as_bytes());
                Step::Done
            }
            Token::Text(text) => {
                if text.iter().any(|b| !is_whitespace(*b)) {
                    self.frameset_ok = false;
                }
                self.insert_text(text);
                Step::Done
            }
            Token::Start(tag) => {
                let breaks_out = matches!(
                    tag.name,
                    b"b" | b"big"
                        | b"blockquote"
                        | b"body"
                        | b"br"
                        | b"center"
                        | b"code"
                        | b"dd"
                        | b"div"
                        | b"dl"
                        | b"dt"
                        | b"em"
                        | b"embed"
                        | b"h1"
                        | b"h2"
                        | b"h3"
                        | b"h4"
                        | b"h5"
                        | b"h6"
                        | b"head"
                        | b"hr"
                        | b"i"
                        | b"img"
                        | b"li"
                        | b"listing"
                        | b"menu"
                        | b"meta"
                        | b"nobr"
                        | b"ol"
                        | b"p"
                        | b"pre"
                        | b"ruby"
                        | b"s"
                        | b"small"
                        | b"span"
                        | b"strong"
                        | b"strike"
                        | b"sub"
                        | b"sup"
                        | b"table"
                        | b"tt"
                        | b"u"
                        | b"ul"
                        | b"var"
                ) || (tag.name == b"font"
                    && tag
                        .attributes()
                        .any(|(name, _)| matches!(name, b"color" | b"face" | b"size")));
                if breaks_out {
                    self.leave_foreign_content();
                    return self.step(self.mode, token);
                }
                let ns = self.current().map_or(Ns::Html, |e| e.ns);
                self.insert(Name::of(tag.name), ns, Attrs::Tag(tag));
                if tag.self_closing {
                    self.pop();
                }
                Step::Done
            }
            Token::End(name) => {
                if name == b"br" || name == b"p" {
                    self.leave_foreign_content();
                    return self.step(self.mode, token);
                }
                let wanted = Name::of(name);
                let mut at = self.open.len() - 1;
                let mut first = true;
                loop {
                    if at == 0 {
                        return Step::Done;
                    }
                    let entry = self.open.get(at);
                    if !first && entry.ns == Ns::Html {
                        return self.step(self.mode, token);
                    }
                    if entry.name == wanted {
                        while self.open.len() > at {
                            self.pop();
                        }
                        return Step::Done;
                    }
                    first = false;
                    at -= 1;
                }
            }
            Token::Comment | Token::Eof => Step::Done,
        }
    }

    fn leave_foreign_content(&mut self) {
        while let Some(current) = self.current() {
            if current.ns == Ns::Html || is_mathml_text_integration_point(current) || is_html_integration_point(current)
            {
                return;
            }
            self.pop();
        }
    }

    /// Handles a leading run of whitespace the way the mode splits it off:
    /// `whitespace` gets it; the rest is reprocessed in `anything_else`'s mode.
    fn split_whitespace(&mut self, text: &[u8], insert_whitespace: bool) -> Option<Step> {
        let ws = text.iter().take_while(|b| is_whitespace(**b)).count();
        if ws == 0 {
            return None;
        }
        if insert_whitespace {
            self.insert_text(&text[..ws]);
        }
        Some(if ws == text.len() { Step::Done } else { Step::Rest(ws) })
    }

    fn step(&mut self, mode: Mode, token: Token<'_>) -> Step {
        use Mode as M;
        use Token as T;
        match mode {
            M::Initial => {
                if let T::Text(text) = token
                    && let Some(step) = self.split_whitespace(text, false)
                {
                    return step;
                }
                self.quirks = true;
                self.mode = M::BeforeHtml;
                Step::Again
            }
            M::BeforeHtml => {
                if let T::Text(text) = token
                    && let Some(step) = self.split_whitespace(text, false)
                {
                    return step;
                }
                match token {
                    T::Start(tag) if tag.name == b"html" => {
                        self.insert_html(tag);
                        self.mode = M::BeforeHead;
                        Step::Done
                    }
                    T::End(name) if !matches!(name, b"head" | b"body" | b"html" | b"br") => Step::Done,
                    _ => {
                        self.insert_implied(n::HTML);
                        self.mode = M::BeforeHead;
                        Step::Again
                    }
                }
            }
            M::BeforeHead => {
                if let T::Text(text) = token
                    && let Some(step) = self.split_whitespace(text, false)
                {
                    return step;
                }
                match token {
                    T::Start(tag) if tag.name == b"html" => self.step(M::InBody, token),
                    T::Start(tag) if tag.name == b"head" => {
                        let id = self.insert_html(tag);
                        self.remember_head(id);
                        self.mode = M::InHead;
                        Step::Done
                    }
                    T::End(name) if !matches!(name, b"head" | b"body" | b"html" | b"br") => Step::Done,
                    _ => {
                        let id = self.insert_implied(n::HEAD);
                        self.remember_head(id);
                        self.mode = M::InHead;
                        Step::Again
                    }
                }
            }
            M::InHead => self.in_head(token),
            M::InHeadNoscript => {
                if let T::Text(text) = token
                    && let Some(step) = self.split_whitespace(text, true)
                {
                    return step;
                }
                match token {
                    T::Start(tag) if tag.name == b"html" => self.step(M::InBody, token),
                    T::End(b"noscript") => {
                        self.pop();
                        self.mode = M::InHead;
                        Step::Done
                    }
                    T::Start(tag)
                        if matches!(
                            tag.name,
                            b"basefont" | b"bgsound" | b"link" | b"meta" | b"noframes" | b"style"
                        ) =>
                    {
                        self.in_head(token)
                    }
                    T::Start(tag) if matches!(tag.name, b"head" | b"noscript") => Step::Done,
                    T::End(name) if name != b"br" => Step::Done,
                    _ => {
                        self.pop();
                        self.mode = M::InHead;
                        Step::Again
                    }
                }
            }
            M::AfterHead => {
                if let T::Text(text) = token
                    && let Some(step) = self.split_whitespace(text, true)
                {
                    return step;
                }
                match token {
                    T::Start(tag) if tag.name == b"html" => self.step(M::InBody, token),
                    T::Start(tag) if tag.name == b"body" => {
                        self.insert_html(tag);
                        self.frameset_ok = false;
                        self.mode = M::InBody;
                        Step::Done
                    }
                    T::Start(tag) if tag.name == b"frameset" => {
                        self.insert_html(tag);
                        self.mode = M::InFrameset;
                        Step::Done
                    }
                    T::Start(tag)
                        if matches!(
                            tag.name,
                            b"base"
                                | b"basefont"
                                | b"bgsound"
                                | b"link"
                                | b"meta"
                                | b"noframes"
                                | b"script"
                                | b"style"
                                | b"template"
                                | b"title"
                        ) =>
                    {
                        // Back into the head for this one element.
                        let Some((head_id, data)) = self.head.clone() else {
                            return self.in_head(token);
                        };
                        let parent = Some(0).filter(|_| self.open.len() > 0);
                        self.open.push(Entry {
                            name: Name::Short(n::HEAD),
                            ns: Ns::Html,
                            parent,
                            mask: 0,
                            children: 0,
                            html_integration_point: false,
                            id: head_id,
                            data,
                            deferred: Vec::new(),
                        });
                        let step = self.in_head(token);
                        if let Some(at) = self.open.position(head_id) {
                            self.open.remove(at);
                        }
                        step
                    }
                    T::End(b"template") => self.in_head(token),
                    T::Start(tag) if tag.name == b"head" => Step::Done,
                    T::End(name) if !matches!(name, b"body" | b"html" | b"br") => Step::Done,
                    _ => {
                        self.insert_implied(n::BODY);
                        self.mode = M::InBody;
                        Step::Again
                    }
                }
            }
            M::InBody => self.in_body(token),
            M::Text => match token {
                T::Text(text) => {
                    self.insert_text(text);
                    Step::Done
                }
                T::Null => Step::Done,
                T::Eof => {
                    self.pop();
                    self.mode = self.original_mode;
                    Step::Again
                }
                T::End(_) => {
                    self.pop();
                    self.mode = self.original_mode;
                    Step::Done
                }
                T::Start(_) | T::Comment => Step::Done,
            },
            M::InTable => self.in_table(token),
            M::InTableText => match token {
                T::Null => Step::Done,
                T::Text(text) => {
                    self.pending_table_text.extend_from_slice(text);
                    Step::Done
                }
                _ => {
                    let pending = std::mem::take(&mut self.pending_table_text);
                    if pending.iter().any(|b| !is_whitespace(*b)) {
                        self.foster_parenting = true;
                        self.in_body(T::Text(&pending));
                        self.foster_parenting = false;
                    } else {
                        self.insert_text(&pending);
                    }
                    self.mode = self.original_mode;
                    Step::Again
                }
            },
            M::InCaption => match token {
                T::Start(tag)
                    if matches!(
                        tag.name,
                        b"caption" | b"col" | b"colgroup" | b"tbody" | b"td" | b"tfoot" | b"th" | b"thead" | b"tr"
                    ) =>
                {
                    self.close_caption(true)
                }
                T::End(b"table") => self.close_caption(true),
                T::End(b"caption") => self.close_caption(false),
                T::End(
                    b"body" | b"col" | b"colgroup" | b"html" | b"tbody" | b"td" | b"tfoot" | b"th" | b"thead" | b"tr",
                ) => Step::Done,
                _ => self.in_body(token),
            },
            M::InColumnGroup => {
                if let T::Text(text) = token
                    && let Some(step) = self.split_whitespace(text, true)
                {
                    return step;
                }
                match token {
                    T::Start(tag) if tag.name == b"html" => self.in_body(token),
                    T::Start(tag) if tag.name == b"col" => {
                        self.insert_and_pop(tag);
                        Step::Done
                    }
                    T::End(b"colgroup") => {
                        if self.current_is(n::COLGROUP) {
                            self.pop();
                            self.mode = M::InTable;
                        }
                        Step::Done
                    }
                    T::End(b"col") => Step::Done,
                    T::Start(tag) if tag.name == b"template" => self.in_head(token),
                    T::End(b"template") => self.in_head(token),
                    T::Eof => self.in_body(token),
                    _ => {
                        if self.current_is(n::COLGROUP) {
                            self.pop();
                            self.mode = M::InTable;
                            Step::Again
                        } else {
                            Step::Done
                        }
                    }
                }
            }
            M::InTableBody => match token {
                T::Start(tag) if tag.name == b"tr" => {
                    self.pop_until_current(|name| {
                        matches!(name, n::TBODY | n::TFOOT | n::THEAD | n::TEMPLATE | n::HTML)
                    });
                    self.insert_html(tag);
                    self.mode = M::InRow;
                    Step::Done
                }
                T::Start(tag) if matches!(tag.name, b"th" | b"td") => {
                    self.pop_until_current(|name| {
                        matches!(name, n::TBODY | n::TFOOT | n::THEAD | n::TEMPLATE | n::HTML)
                    });
                    self.insert_implied(n::TR);
                    self.mode = M::InRow;
                    Step::Again
                }
                T::End(name @ (b"tbody" | b"tfoot" | b"thead")) => {
                    if self.in_scope_named(Scope::Table, Name::of(name).short().unwrap_or(0)) {
                        self.pop_until_current(|name| {
                            matches!(name, n::TBODY | n::TFOOT | n::THEAD | n::TEMPLATE | n::HTML)
                        });
                        self.pop();
                        self.mode = M::InTable;
                    }
                    Step::Done
                }
                T::Start(tag)
                    if matches!(
                        tag.name,
                        b"caption" | b"col" | b"colgroup" | b"tbody" | b"tfoot" | b"thead"
                    ) =>
                {
                    self.leave_table_body()
                }
                T::End(b"table") => self.leave_table_body(),
                T::End(b"body" | b"caption" | b"col" | b"colgroup" | b"html" | b"td" | b"th" | b"tr") => Step::Done,
                _ => self.in_table(token),
            },
            M::InRow => match token {
                T::Start(tag) if matches!(tag.name, b"th" | b"td") => {
                    self.pop_until_current(|name| matches!(name, n::TR | n::TEMPLATE | n::HTML));
                    self.insert_html(tag);
                    self.mode = M::InCell;
                    self.active.push(Formatting::Marker);
                    Step::Done
                }
                T::End(b"tr") => {
                    if self.in_scope_named(Scope::Table, n::TR) {
                        self.pop_until_current(|name| matches!(name, n::TR | n::TEMPLATE | n::HTML));
                        self.pop();
                        self.mode = M::InTableBody;
                    }
                    Step::Done
                }
                T::Start(tag)
                    if matches!(
                        tag.name,
                        b"caption" | b"col" | b"colgroup" | b"tbody" | b"tfoot" | b"thead" | b"tr"
                    ) =>
                {
                    self.leave_row()
                }
                T::End(b"table") => self.leave_row(),
                T::End(name @ (b"tbody" | b"tfoot" | b"thead")) => {
                    if !self.in_scope_named(Scope::Table, Name::of(name).short().unwrap_or(0)) {
                        return Step::Done;
                    }
                    self.leave_row()
                }
                T::End(b"body" | b"caption" | b"col" | b"colgroup" | b"html" | b"td" | b"th") => Step::Done,
                _ => self.in_table(token),
            },
            M::InCell => match token {
                T::End(name @ (b"td" | b"th")) => {
                    let name = Name::of(name).short().unwrap_or(0);
                    if self.in_scope_named(Scope::Table, name) {
                        self.generate_implied_end_tags(None);
                        self.pop_until_named(name);
                        self.clear_formatting_to_marker();
                        self.mode = M::InRow;
                    }
                    Step::Done
                }
                T::Start(tag)
                    if matches!(
                        tag.name,
                        b"caption" | b"col" | b"colgroup" | b"tbody" | b"td" | b"tfoot" | b"th" | b"thead" | b"tr"
                    ) =>
                {
                    if self.in_scope(Scope::Table, |e| matches!(e.html_name(), Some(n::TD | n::TH))) {
                        self.close_the_cell();
                        self.mode = M::InRow;
                        Step::Again
                    } else {
                        Step::Done
                    }
                }
                T::End(b"body" | b"caption" | b"col" | b"colgroup" | b"html") => Step::Done,
                T::End(name @ (b"table" | b"tbody" | b"tfoot" | b"thead" | b"tr")) => {
                    if self.in_scope_named(Scope::Table, Name::of(name).short().unwrap_or(0)) {
                        self.close_the_cell();
                        self.mode = M::InRow;
                        Step::Again
                    } else {
                        Step::Done
                    }
                }
                _ => self.in_body(token),
            },
            M::InTemplate => match token {
                T::Text(_) | T::Null => self.in_body(token),
                T::Start(tag)
                    if matches!(
                        tag.name,
                        b"base"
                            | b"basefont"
                            | b"bgsound"
                            | b"link"
                            | b"meta"
                            | b"noframes"
                            | b"script"
                            | b"style"
                            | b"template"
                            | b"title"
                    ) =>
                {
                    self.in_head(token)
                }
                T::End(b"template") => self.in_head(token),
                T::Start(tag) => {
                    let next = match tag.name {
                        b"caption" | b"colgroup" | b"tbody" | b"tfoot" | b"thead" => M::InTable,
                        b"col" => M::InColumnGroup,
                        b"tr" => M::InTableBody,
                        b"td" | b"th" => M::InRow,
                        _ => M::InBody,
                    };
                    self.template_modes.pop();
                    self.template_modes.push(next);
                    self.mode = next;
                    Step::Again
                }
                T::End(_) | T::Comment => Step::Done,
                T::Eof => {
                    if !self.has_open(n::TEMPLATE) {
                        return Step::Done;
                    }
                    self.pop_until_named(n::TEMPLATE);
                    self.clear_formatting_to_marker();
                    self.template_modes.pop();
                    self.reset_insertion_mode();
                    Step::Again
                }
            },
            M::AfterBody => {
                if let T::Text(text) = token {
                    let ws = text.iter().take_while(|b| is_whitespace(**b)).count();
                    if ws > 0 {
                        self.in_body(T::Text(&text[..ws]));
                        return if ws == text.len() { Step::Done } else { Step::Rest(ws) };
                    }
                }
                match token {
                    T::Start(tag) if tag.name == b"html" => self.in_body(token),
                    T::End(b"html") => {
                        self.mode = M::AfterAfterBody;
                        Step::Done
                    }
                    T::Eof => Step::Done,
                    _ => {
                        self.mode = M::InBody;
                        Step::Again
                    }
                }
            }
            M::InFrameset | M::AfterFrameset => {
                if let T::Text(text) = token {
                    // Only whitespace is kept; other characters are dropped.
                    let ws: Vec<u8> = text.iter().copied().filter(|b| is_whitespace(*b)).collect();
                    self.insert_text(&ws);
                    return Step::Done;
                }
                match token {
                    T::Start(tag) if tag.name == b"html" => self.in_body(token),
                    T::Start(tag) if tag.name == b"frameset" && mode == M::InFrameset => {
                        self.insert_html(tag);
                        Step::Done
                    }
                    T::End(b"frameset") if mode == M::InFrameset => {
                        if self.open.len() > 1 {
                            self.pop();
                            if !self.current_is(n::FRAMESET) {
                                self.mode = M::AfterFrameset;
                            }
                        }
                        Step::Done
                    }
                    T::Start(tag) if tag.name == b"frame" && mode == M::InFrameset => {
                        self.insert_and_pop(tag);
                        Step::Done
                    }
                    T::End(b"html") if mode == M::AfterFrameset => {
                        self.mode = M::AfterAfterFrameset;
                        Step::Done
                    }
                    T::Start(tag) if tag.name == b"noframes" => self.in_head(token),
                    _ => Step::Done,
                }
            }
            M::AfterAfterBody | M::AfterAfterFrameset => {
                if let T::Text(text) = token {
                    let ws = text.iter().take_while(|b| is_whitespace(**b)).count();
                    if ws > 0 {
                        self.in_body(T::Text(&text[..ws]));
                        return if ws == text.len() { Step::Done } else { Step::Rest(ws) };
                    }
                }
                match token {
                    T::Start(tag) if tag.name == b"html" => self.in_body(token),
                    T::Eof => Step::Done,
                    T::Start(tag) if tag.name == b"noframes" && mode == M::AfterAfterFrameset => self.in_head(token),
                    _ if mode == M::AfterAfterBody => {
                        self.mode = M::InBody;
                        Step::Again
                    }
                    _ => Step::Done,
                }
            }
        }
    }

    fn remember_head(&mut self, id: u32) {
        if let Some(entry) = self.open.last() {
            self.head = Some((id, entry.data.clone()));
        }
    }

    fn close_caption(&mut self, reprocess: bool) -> Step {
        if !self.in_scope_named(Scope::Table, n::CAPTION) {
            return Step::Done;
        }
        self.generate_implied_end_tags(None);
        self.pop_until_named(n::CAPTION);
        self.clear_formatting_to_marker();
        self.mode = Mode::InTable;
        if reprocess { Step::Again } else { Step::Done }
    }

    fn leave_table_body(&mut self) -> Step {
        if !self.in_scope(Scope::Table, |e| {
            matches!(e.html_name(), Some(n::TBODY | n::THEAD | n::TFOOT))
        }) {
            return Step::Done;
        }
        self.pop_until_current(|name| matches!(name, n::TBODY | n::TFOOT | n::THEAD | n::TEMPLATE | n::HTML));
        self.pop();
        self.mode = Mode::InTable;
        Step::Again
    }

    fn leave_row(&mut self) -> Step {
        if !self.in_scope_named(Scope::Table, n::TR) {
            return Step::Done;
        }
        self.pop_until_current(|name| matches!(name, n::TR | n::TEMPLATE | n::HTML));
        self.pop();
        self.mode = Mode::InTableBody;
        Step::Again
    }

    fn in_head(&mut self, token: Token<'_>) -> Step {
        use Token as T;
        if let T::Text(text) = token
            && let Some(step) = self.split_whitespace(text, true)
        {
            return step;
        }
        match token {
            T::Start(tag) => match tag.name {
                b"html" => self.in_body(token),
                b"base" | b"basefont" | b"bgsound" | b"link" | b"meta" => {
                    self.insert_and_pop(tag);
                    Step::Done
                }
                b"title" => self.raw_text(tag, Next::RcData),
                b"noframes" | b"style" => self.raw_text(tag, Next::RawText),
                b"noscript" => {
                    self.insert_html(tag);
                    self.mode = Mode::InHeadNoscript;
                    Step::Done
                }
                b"script" => self.raw_text(tag, Next::ScriptData),
                b"template" => {
                    self.active.push(Formatting::Marker);
                    self.frameset_ok = false;
                    self.mode = Mode::InTemplate;
                    self.template_modes.push(Mode::InTemplate);
                    self.insert_html(tag);
                    Step::Done
                }
                b"head" => Step::Done,
                _ => self.leave_head(),
            },
            T::End(b"head") => {
                self.pop();
                self.mode = Mode::AfterHead;
                Step::Done
            }
            T::End(b"template") => {
                if self.has_open(n::TEMPLATE) {
                    self.generate_all_implied_end_tags();
                    self.pop_until_named(n::TEMPLATE);
                    self.clear_formatting_to_marker();
                    self.template_modes.pop();
                    self.reset_insertion_mode();
                }
                Step::Done
            }
            T::End(name) if !matches!(name, b"body" | b"html" | b"br") => Step::Done,
            _ => self.leave_head(),
        }
    }

    fn leave_head(&mut self) -> Step {
        self.pop();
        self.mode = Mode::AfterHead;
        Step::Again
    }

    fn in_table(&mut self, token: Token<'_>) -> Step {
        use Token as T;
        match token {
            T::Text(_) | T::Null => {
                if self.current_is_in(|name| {
                    matches!(name, n::TABLE | n::TBODY | n::TEMPLATE | n::TFOOT | n::THEAD | n::TR)
                }) {
                    self.pending_table_text.clear();
                    self.original_mode = self.mode;
                    self.mode = Mode::InTableText;
                    Step::Again
                } else {
                    self.foster_in_body(token)
                }
            }
            T::Start(tag) => match tag.name {
                b"caption" => {
                    self.pop_until_current(|name| matches!(name, n::TABLE | n::TEMPLATE | n::HTML));
                    self.active.push(Formatting::Marker);
                    self.insert_html(tag);
                    self.mode = Mode::InCaption;
                    Step::Done
                }
                b"colgroup" => {
                    self.pop_until_current(|name| matches!(name, n::TABLE | n::TEMPLATE | n::HTML));
                    self.insert_html(tag);
                    self.mode = Mode::InColumnGroup;
                    Step::Done
                }
                b"col" => {
                    self.pop_until_current(|name| matches!(name, n::TABLE | n::TEMPLATE | n::HTML));
                    self.insert_implied(n::COLGROUP);
                    self.mode = Mode::InColumnGroup;
                    Step::Again
                }
                b"tbody" | b"tfoot" | b"thead" => {
                    self.pop_until_current(|name| matches!(name, n::TABLE | n::TEMPLATE | n::HTML));
                    self.insert_html(tag);
                    self.mode = Mode::InTableBody;
                    Step::Done
                }
                b"td" | b"th" | b"tr" => {
                    self.pop_until_current(|name| matches!(name, n::TABLE | n::TEMPLATE | n::HTML));
                    self.insert_implied(n::TBODY);
                    self.mode = Mode::InTableBody;
                    Step::Again
                }
                b"table" => {
                    if !self.in_scope_named(Scope::Table, n::TABLE) {
                        return Step::Done;
                    }
                    self.pop_until_named(n::TABLE);
                    self.reset_insertion_mode();
                    Step::Again
                }
                b"style" | b"script" | b"template" => self.in_head(token),
                b"input"
                    if tag
                        .attribute(b"type")
                        .is_some_and(|t| t.eq_ignore_ascii_case(b"hidden")) =>
                {
                    self.insert_and_pop(tag);
                    Step::Done
                }
                b"form" => {
                    if !self.has_open(n::TEMPLATE) && self.form.is_none() {
                        let id = self.insert_html(tag);
                        self.form = Some(id);
                        self.pop();
                    }
                    Step::Done
                }
                _ => self.foster_in_body(token),
            },
            T::End(b"table") => {
                if self.in_scope_named(Scope::Table, n::TABLE) {
                    self.pop_until_named(n::TABLE);
                    self.reset_insertion_mode();
                }
                Step::Done
            }
            T::End(
                b"body" | b"caption" | b"col" | b"colgroup" | b"html" | b"tbody" | b"td" | b"tfoot" | b"th" | b"thead"
                | b"tr",
            ) => Step::Done,
            T::End(b"template") => self.in_head(token),
            T::Eof => self.in_body(token),
            _ => self.foster_in_body(token),
        }
    }

    fn foster_in_body(&mut self, token: Token<'_>) -> Step {
        self.foster_parenting = true;
        let step = self.in_body(token);
        self.foster_parenting = false;
        step
    }

    fn in_body(&mut self, token: Token<'_>) -> Step {
        use Token as T;
        match token {
            T::Null => Step::Done,
            T::Text(text) => {
                self.reconstruct_formatting();
                if text.iter().any(|b| !is_whitespace(*b)) {
                    self.frameset_ok = false;
                }
                self.insert_text(text);
                Step::Done
            }
            T::Eof => {
                if !self.template_modes.is_empty() {
                    return self.step(Mode::InTemplate, token);
                }
                Step::Done
            }
            T::Comment => Step::Done,
            T::Start(tag) => self.start_tag_in_body(tag, token),
            T::End(name) => self.end_tag_in_body(name),
        }
    }

    fn start_tag_in_body(&mut self, tag: &Tag<'_>, token: Token<'_>) -> Step {
        match tag.name {
            b"html" => {
                if !self.has_open(n::TEMPLATE) && self.open.len() > 0 {
                    let entry = self.open.get_mut(0);
                    self.sink.add_attributes(entry, Attrs::Tag(tag));
                }
                Step::Done
            }
            b"base" | b"basefont" | b"bgsound" | b"link" | b"meta" | b"noframes" | b"script" | b"style"
            | b"template" | b"title" => self.in_head(token),
            b"body" => {
                let second_is_body = self.open.len() > 1 && self.open.get(1).is_html(n::BODY);
                if second_is_body && !self.has_open(n::TEMPLATE) {
                    self.frameset_ok = false;
                    let entry = self.open.get_mut(1);
                    self.sink.add_attributes(entry, Attrs::Tag(tag));
                }
                Step::Done
            }
            b"frameset" => {
                let second_is_body = self.open.len() > 1 && self.open.get(1).is_html(n::BODY);
                if !self.frameset_ok || !second_is_body {
                    return Step::Done;
                }
                while self.open.len() > 1 {
                    self.pop();
                }
                self.insert_html(tag);
                self.mode = Mode::InFrameset;
                Step::Done
            }
            b"address" | b"article" | b"aside" | b"blockquote" | b"center" | b"details" | b"dialog" | b"dir"
            | b"div" | b"dl" | b"fieldset" | b"figcaption" | b"figure" | b"footer" | b"header" | b"hgroup"
            | b"main" | b"menu" | b"nav" | b"ol" | b"p" | b"search" | b"section" | b"summary" | b"ul" => {
                self.close_p_in_button_scope();
                self.insert_html(tag);
                Step::Done
            }
            b"h1" | b"h2" | b"h3" | b"h4" | b"h5" | b"h6" => {
                self.close_p_in_button_scope();
                if self.current_is_in(is_heading) {
                    self.pop();
                }
                self.insert_html(tag);
                Step::Done
            }
            b"pre" | b"listing" => {
                self.close_p_in_button_scope();
                self.insert_html(tag);
                self.ignore_lf = true;
                self.frameset_ok = false;
                Step::Done
            }
            b"form" => {
                let in_template = self.has_open(n::TEMPLATE);
                if self.form.is_some() && !in_template {
                    return Step::Done;
                }
                self.close_p_in_button_scope();
                let id = self.insert_html(tag);
                if !in_template {
                    self.form = Some(id);
                }
                Step::Done
            }
            b"li" | b"dd" | b"dt" => {
                self.frameset_ok = false;
                let list = tag.name == b"li";
                let mut to_close = None;
                for entry in self.open.iter().rev() {
                    let name = entry.html_name();
                    let closes = if list {
                        name == Some(n::LI)
                    } else {
                        matches!(name, Some(n::DD | n::DT))
                    };
                    if closes {
                        to_close = name;
                        break;
                    }
                    if is_special(entry) && !matches!(name, Some(n::ADDRESS | n::DIV | n::P)) {
                        break;
                    }
                }
                if let Some(name) = to_close {
                    self.generate_implied_end_tags(Some(name));
                    self.pop_until_named(name);
                }
                self.close_p_in_button_scope();
                self.insert_html(tag);
                Step::Done
            }
            b"plaintext" => {
                self.close_p_in_button_scope();
                self.insert_html(tag);
                self.next = Next::Plaintext;
                Step::Done
            }
            b"button" => {
                if self.in_scope_named(Scope::Default, n::BUTTON) {
                    self.generate_implied_end_tags(None);
                    self.pop_until_named(n::BUTTON);
                }
                self.reconstruct_formatting();
                self.insert_html(tag);
                self.frameset_ok = false;
                Step::Done
            }
            b"a" => {
                let open_a = self
                    .active
                    .iter()
                    .rev()
                    .take_while(|f| !matches!(f, Formatting::Marker))
                    .find_map(|f| match f {
                        Formatting::Element { id, name, .. } if *name == Name::Short(n::A) => Some(*id),
                        _ => None,
                    });
                if let Some(id) = open_a {
                    self.adoption_agency(n::A);
                    if let Some(position) = self.formatting_position(id) {
                        self.active.remove(position);
                    }
                    self.remove_from_stack(id);
                }
                self.reconstruct_formatting();
                self.push_formatting(tag);
                Step::Done
            }
            b"b" | b"big" | b"code" | b"em" | b"font" | b"i" | b"s" | b"small" | b"strike" | b"strong" | b"tt"
            | b"u" => {
                self.reconstruct_formatting();
                self.push_formatting(tag);
                Step::Done
            }
            b"nobr" => {
                self.reconstruct_formatting();
                if self.in_scope_named(Scope::Default, n::NOBR) {
                    self.adoption_agency(n::NOBR);
                    self.reconstruct_formatting();
                }
                self.push_formatting(tag);
                Step::Done
            }
            b"applet" | b"marquee" | b"object" => {
                self.reconstruct_formatting();
                self.insert_html(tag);
                self.active.push(Formatting::Marker);
                self.frameset_ok = false;
                Step::Done
            }
            b"table" => {
                if !self.quirks {
                    self.close_p_in_button_scope();
                }
                self.insert_html(tag);
                self.frameset_ok = false;
                self.mode = Mode::InTable;
                Step::Done
            }
            b"area" | b"br" | b"embed" | b"img" | b"keygen" | b"wbr" => {
                self.reconstruct_formatting();
                self.insert_and_pop(tag);
                self.frameset_ok = false;
                Step::Done
            }
            b"input" => {
                if self.in_scope_named(Scope::Default, n::SELECT) {
                    self.pop_until_named(n::SELECT);
                }
                self.reconstruct_formatting();
                self.insert_and_pop(tag);
                if !tag
                    .attribute(b"type")
                    .is_some_and(|t| t.eq_ignore_ascii_case(b"hidden"))
                {
                    self.frameset_ok = false;
                }
                Step::Done
            }
            b"param" | b"source" | b"track" => {
                self.insert_and_pop(tag);
                Step::Done
            }
            b"hr" => {
                self.close_p_in_button_scope();
                if self.in_scope_named(Scope::Default, n::SELECT) {
                    self.generate_implied_end_tags(None);
                }
                self.insert_and_pop(tag);
                self.frameset_ok = false;
                Step::Done
            }
            b"image" => {
                // Read as `<img>` (a parse error older pages still make).
                self.reconstruct_formatting();
                self.insert(Name::Short(n::IMG), Ns::Html, Attrs::Tag(tag));
                self.pop();
                self.frameset_ok = false;
                Step::Done
            }
            b"textarea" => {
                self.ignore_lf = true;
                self.frameset_ok = false;
                self.raw_text(tag, Next::RcData)
            }
            b"xmp" => {
                self.close_p_in_button_scope();
                self.reconstruct_formatting();
                self.frameset_ok = false;
                self.raw_text(tag, Next::RawText)
            }
            b"iframe" => {
                self.frameset_ok = false;
                self.raw_text(tag, Next::RawText)
            }
            b"noembed" => self.raw_text(tag, Next::RawText),
            b"select" => {
                if self.in_scope_named(Scope::Default, n::SELECT) {
                    self.pop_until_named(n::SELECT);
                } else {
                    self.reconstruct_formatting();
                    self.insert_html(tag);
                    self.frameset_ok = false;
                }
                Step::Done
            }
            b"option" | b"optgroup" => {
                if self.in_scope_named(Scope::Default, n::SELECT) {
                    let except = if tag.name == b"option" { Some(n::OPTGROUP) } else { None };
                    self.generate_implied_end_tags(except);
                } else if self.current_is(n::OPTION) {
                    self.pop();
                }
                self.reconstruct_formatting();
                self.insert_html(tag);
                Step::Done
            }
            b"rb" | b"rtc" => {
                if self.in_scope_named(Scope::Default, n::RUBY) {
                    self.generate_implied_end_tags(None);
                }
                self.insert_html(tag);
                Step::Done
            }
            b"rp" | b"rt" => {
                if self.in_scope_named(Scope::Default, n::RUBY) {
                    self.generate_implied_end_tags(Some(n::RTC));
                }
                self.insert_html(tag);
                Step::Done
            }
            b"math" | b"svg" => {
                self.reconstruct_formatting();
                let ns = if tag.name == b"math" { Ns::MathMl } else { Ns::Svg };
                self.insert(Name::of(tag.name), ns, Attrs::Tag(tag));
                if tag.self_closing {
                    self.pop();
                }
                Step::Done
            }
            b"caption" | b"col" | b"colgroup" | b"frame" | b"head" | b"tbody" | b"td" | b"tfoot" | b"th" | b"thead"
            | b"tr" => Step::Done,
            _ => {
                self.reconstruct_formatting();
                self.insert_html(tag);
                Step::Done
            }
        }
    }

    fn end_tag_in_body(&mut self, name: &[u8]) -> Step {
        match name {
            b"template" => self.in_head(Token::End(name)),
            b"body" | b"html" => {
                if !self.in_scope_named(Scope::Default, n::BODY) {
                    return Step::Done;
                }
                self.mode = Mode::AfterBody;
                if name == b"html" { Step::Again } else { Step::Done }
            }
            b"address" | b"article" | b"aside" | b"blockquote" | b"button" | b"center" | b"details" | b"dialog"
            | b"dir" | b"div" | b"dl" | b"fieldset" | b"figcaption" | b"figure" | b"footer" | b"header" | b"hgroup"
            | b"listing" | b"main" | b"menu" | b"nav" | b"ol" | b"pre" | b"search" | b"section" | b"select"
            | b"summary" | b"ul" => {
                let name = Name::of(name).short().unwrap_or(0);
                if self.in_scope_named(Scope::Default, name) {
                    self.generate_implied_end_tags(None);
                    self.pop_until_named(name);
                }
                Step::Done
            }
            b"form" => {
                if !self.has_open(n::TEMPLATE) {
                    let Some(id) = self.form.take() else {
                        return Step::Done;
                    };
                    if !self.in_scope(Scope::Default, |e| e.id == id) {
                        return Step::Done;
                    }
                    self.generate_implied_end_tags(None);
                    self.remove_from_stack(id);
                } else if self.in_scope_named(Scope::Default, n::FORM) {
                    self.generate_implied_end_tags(None);
                    self.pop_until_named(n::FORM);
                }
                Step::Done
            }
            b"p" => {
                if !self.in_scope_named(Scope::Button, n::P) {
                    self.insert_implied(n::P);
                }
                self.close_p();
                Step::Done
            }
            b"li" | b"dd" | b"dt" => {
                let name = Name::of(name).short().unwrap_or(0);
                let scope = if name == n::LI { Scope::ListItem } else { Scope::Default };
                if self.in_scope_named(scope, name) {
                    self.generate_implied_end_tags(Some(name));
                    self.pop_until_named(name);
                }
                Step::Done
            }
            b"h1" | b"h2" | b"h3" | b"h4" | b"h5" | b"h6" => {
                if self.in_scope(Scope::Default, |e| e.html_name().is_some_and(is_heading)) {
                    self.generate_implied_end_tags(None);
                    self.pop_until(|e| e.html_name().is_some_and(is_heading));
                }
                Step::Done
            }
            b"a" | b"b" | b"big" | b"code" | b"em" | b"font" | b"i" | b"nobr" | b"s" | b"small" | b"strike"
            | b"strong" | b"tt" | b"u" => {
                self.adoption_agency(Name::of(name).short().unwrap_or(0));
                Step::Done
            }
            b"applet" | b"marquee" | b"object" => {
                let name = Name::of(name).short().unwrap_or(0);
                if self.in_scope_named(Scope::Default, name) {
                    self.generate_implied_end_tags(None);
                    self.pop_until_named(name);
                    self.clear_formatting_to_marker();
                }
                Step::Done
            }
            b"br" => {
                // `</br>` is read as `<br>`, without attributes.
                self.reconstruct_formatting();
                self.insert(Name::Short(n::BR), Ns::Html, Attrs::None);
                self.pop();
                self.frameset_ok = false;
                Step::Done
            }
            _ => {
                self.any_other_end_tag(&Name::of(name));
                Step::Done
            }
        }
    }
}

impl<S: TreeSink> TokenSink for TreeBuilder<S> {
    fn start_tag(&mut self, tag: &Tag<'_>) -> Next {
        self.start_tags += 1;
        self.next = Next::Data;
        self.ignore_lf_for(Token::Start(tag));
        self.process(Token::Start(tag));
        std::mem::replace(&mut self.next, Next::Data)
    }

    fn end_tag(&mut self, tag: &Tag<'_>) {
        self.ignore_lf_for(Token::End(tag.name));
        self.process(Token::End(tag.name));
    }

    fn text(&mut self, text: &[u8]) {
        // A newline right after `<pre>`, `<listing>` or `<textarea>` is dropped.
        let mut rest = if std::mem::take(&mut self.ignore_lf) {
            text.strip_prefix(b"\n").unwrap_or(text)
        } else {
            text
        };
        // The tree builder sees a NUL in data as a token of its own.
        while !rest.is_empty() {
            let nul = memchr::memchr(0, rest).unwrap_or(rest.len());
            if nul > 0 {
                self.process(Token::Text(&rest[..nul]));
            }
            if nul < rest.len() {
                self.process(Token::Null);
                rest = &rest[nul + 1..];
            } else {
                rest = &[];
            }
        }
    }

    fn comment(&mut self, _: &[u8]) {
        self.ignore_lf = false;
        self.process(Token::Comment);
    }

    fn doctype(&mut self, doctype: &Doctype) {
        self.ignore_lf = false;
        if self.mode == Mode::Initial {
            self.quirks = is_quirky(doctype);
            self.mode = Mode::BeforeHtml;
        }
    }

    fn cdata_allowed(&self) -> bool {
        self.current().is_some_and(|e| e.ns != Ns::Html)
    }
}

impl<S: TreeSink> TreeBuilder<S> {
    /// `ignore_lf` holds only for the token right after `<pre>`,
    /// `<listing>` or `<textarea>`.
    fn ignore_lf_for(&mut self, token: Token<'_>) {
        if !matches!(token, Token::Text(_)) {
            self.ignore_lf = false;
        }
    }
}
