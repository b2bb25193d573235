//! The canonical form of a page: what a reader sees, written straight into
//! hashers as the tree builder reports it.
//!
//! What counts (see the README's "What counts as the same article"):
//! - the document's title, and in the body: elements, visible text, and the
//!   attributes that carry content or a destination ([`URL_ATTRIBUTES`],
//!   [`SHOWN_ATTRIBUTES`]);
//! - not head metadata, scripts, styles, templates (a declarative shadow
//!   root is rendered, so it counts), comments, attributes that only style
//!   or restate a default, nor anything hidden (`hidden`,
//!   `aria-hidden="true"`, an inline style that removes it) or excluded by
//!   `content_exclude`;
//! - URL attributes resolved against the page (and `<base href>`) and mapped
//!   to the primary's origin ([`SiteHosts`]); character references decoded
//!   (by the tokenizer); whitespace folded the way rendering folds it: runs
//!   become one space, and none is kept at the edges of block elements.
//!
//! Formatting elements (`a`, `b`, `em`...) are not nesting structure here but
//! a property of the text they cover (its "signature"), because that is what
//! survives the tree builder's re-opening and adoption of misnested
//! formatting, and what a re-serialized copy writes out.
//!
//! Records are unambiguous: every byte that separates fields is escaped
//! inside names, values and text.
//!
//! Two streams come out of one pass: the whole page (full canonical form
//! without a selector; its text only with one, for a page whose selector
//! matched nothing) and, with a `content_selector`, the selected content.
//! Content that the tree builder foster-parents before a table is written
//! before it: a table's own output is held back until it closes.

use std::collections::HashMap;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use url::Url;

use super::names::{Name, Ns, n};
use super::selector::Selector;
use super::style;
use super::tree::{Attrs, Entry, NewElement, OpenElements, Place, TreeSink};
use super::urls::SiteHosts;

/// Attributes that carry a destination: resolved, then mapped to the primary.
pub(crate) const URL_ATTRIBUTES: [&[u8]; 11] = [
    b"href",
    b"src",
    b"poster",
    b"data",
    b"action",
    b"formaction",
    b"cite",
    b"longdesc",
    b"background",
    b"xlink:href",
    b"srcset",
];

/// Attributes whose value a reader sees (or, for `srcdoc`, the document a
/// frame shows; `type` counts on lists only). With [`URL_ATTRIBUTES`], the
/// attributes that count.
pub(crate) const SHOWN_ATTRIBUTES: [&[u8]; 10] = [
    b"alt",
    b"title",
    b"value",
    b"label",
    b"placeholder",
    b"srcdoc",
    b"start",
    b"reversed",
    b"open",
    b"type",
];

pub(crate) fn counted_attribute(name: &[u8]) -> bool {
    URL_ATTRIBUTES.contains(&name) || SHOWN_ATTRIBUTES.contains(&name)
}

/// Everything needed to read one site's pages, shared by its probes.
#[derive(Debug)]
pub(crate) struct Rules {
    pub hosts: SiteHosts,
    pub selector: Option<Selector>,
    pub exclude: Option<Selector>,
}

impl Rules {
    /// Selector bits handed out: the content selector's, then the exclusion's.
    pub(crate) fn bits(&self) -> usize {
        self.selector.as_ref().map_or(0, Selector::compound_count)
            + self.exclude.as_ref().map_or(0, Selector::compound_count)
    }

    fn exclude_offset(&self) -> usize {
        self.selector.as_ref().map_or(0, Selector::compound_count)
    }
}

/// Per open element: where it stands.
#[derive(Clone, Debug, Default)]
pub(crate) struct Info {
    flags: u32,
    /// For a formatting element, its canonical start tag (index into `tags`).
    tag: u32,
    page_segment: u32,
    selection_segment: u32,
    /// Formatting elements that left the stack but, in the tree, still
    /// hold this one (`tags` indices): they count on what it holds.
    carried: Vec<u32>,
}

/// Inside `<body>` (or a frameset): what can be rendered at all.
const RENDERED: u32 = 1;
/// Not shown, whatever its descendants say (`hidden`, `display: none`...).
const REMOVED: u32 = 1 << 1;
/// `visibility: hidden` in effect; a descendant may show itself again.
const INVISIBLE: u32 = 1 << 2;
const EXCLUDED: u32 = 1 << 3;
/// Never rendered: head content, scripts, template contents.
const INERT: u32 = 1 << 4;
/// Its text children are not rendered (`iframe` fallback text).
const TEXT_NOT_RENDERED: u32 = 1 << 5;
/// In the selected content.
const SELECTED: u32 = 1 << 6;
const FORMATTING: u32 = 1 << 7;
const BLOCK: u32 = 1 << 8;
/// Written into the streams as an element (not hidden, not formatting).
const SHOWN: u32 = 1 << 9;
/// Written into the selection stream too.
const TAGGED_SELECTION: u32 = 1 << 10;
/// Holds its own output segment (a table).
const OWN_PAGE_SEGMENT: u32 = 1 << 11;
const OWN_SELECTION_SEGMENT: u32 = 1 << 12;
/// Already has a declarative shadow root.
const SHADOW_HOST: u32 = 1 << 13;
/// A declarative shadow root's template: its content is rendered.
const SHADOW_ROOT: u32 = 1 << 14;
/// The document's title element.
const TITLE: u32 = 1 << 15;
/// Renders content of its own without text (an image, a frame): the
/// formatting around it is written before it.
const REPLACED: u32 = 1 << 16;
const TEMPLATE: u32 = 1 << 17;

const INHERITED: u32 = RENDERED | REMOVED | INVISIBLE | EXCLUDED | INERT | SELECTED;

fn visible(flags: u32) -> bool {
    flags & RENDERED != 0 && flags & (REMOVED | INVISIBLE | EXCLUDED | INERT) == 0
}

pub(crate) fn is_block(ns: Ns, name: &Name) -> bool {
    ns == Ns::Html
        && name.short().is_some_and(|name| {
            matches!(
                name,
                n::ADDRESS
                    | n::ARTICLE
                    | n::ASIDE
                    | n::BLOCKQUOTE
                    | n::BODY
                    | n::BR
                    | n::CAPTION
                    | n::CENTER
                    | n::COL
                    | n::COLGROUP
                    | n::DD
                    | n::DETAILS
                    | n::DIALOG
                    | n::DIR
                    | n::DIV
                    | n::DL
                    | n::DT
                    | n::FIELDSET
                    | n::FIGCAPTION
                    | n::FIGURE
                    | n::FOOTER
                    | n::FORM
                    | n::FRAMESET
                    | n::H1
                    | n::H2
                    | n::H3
                    | n::H4
                    | n::H5
                    | n::H6
                    | n::HEADER
                    | n::HGROUP
                    | n::HR
                    | n::HTML
                    | n::LEGEND
                    | n::LI
                    | n::LISTING
                    | n::MAIN
                    | n::MENU
                    | n::NAV
                    | n::OL
                    | n::OPTGROUP
                    | n::OPTION
                    | n::P
                    | n::PLAINTEXT
                    | n::PRE
                    | n::SEARCH
                    | n::SECTION
                    | n::SUMMARY
                    | n::TABLE
                    | n::TBODY
                    | n::TD
                    | n::TFOOT
                    | n::TH
                    | n::THEAD
                    | n::TR
                    | n::UL
                    | n::XMP
            )
        })
}

pub(crate) fn is_formatting(ns: Ns, name: &Name) -> bool {
    ns == Ns::Html
        && name.short().is_some_and(|name| {
            matches!(
                name,
                n::A | n::B
                    | n::BIG
                    | n::CODE
                    | n::EM
                    | n::FONT
                    | n::I
                    | n::NOBR
                    | n::S
                    | n::SMALL
                    | n::STRIKE
                    | n::STRONG
                    | n::TT
                    | n::U
            )
        })
}

/// Elements that are never rendered, with everything in them.
pub(crate) fn is_inert(ns: Ns, name: &Name, attrs: Attrs<'_>) -> bool {
    match ns {
        Ns::Html => name.short().is_some_and(|name| {
            matches!(
                name,
                n::HEAD
                    | n::SCRIPT
                    | n::STYLE
                    | n::TITLE
                    | n::META
                    | n::LINK
                    | n::BASE
                    | n::BASEFONT
                    | n::BGSOUND
                    | n::NOEMBED
                    | n::NOFRAMES
                    | n::DATALIST
                    | n::PARAM
            ) || (name == n::INPUT && attrs.get(b"type").is_some_and(|t| t.eq_ignore_ascii_case(b"hidden")))
        }),
        Ns::Svg => name.short().is_some_and(|name| {
            matches!(name, n::SCRIPT | n::STYLE | n::TITLE | n::DESC) || name == super::names::pack(b"metadata")
        }),
        Ns::MathMl => false,
    }
}

pub(crate) fn is_replaced(ns: Ns, name: &Name) -> bool {
    match ns {
        Ns::Html => name.short().is_some_and(|name| {
            matches!(
                name,
                n::IMG | n::INPUT | n::EMBED | n::IFRAME | n::OBJECT | n::SELECT | n::TEXTAREA | n::FRAME | n::AREA
            ) || [
                &b"video"[..],
                b"audio",
                b"canvas",
                b"meter",
                b"progress",
                b"picture",
                b"source",
                b"track",
            ]
            .iter()
            .any(|r| super::names::pack(r) == name)
        }),
        // An SVG or MathML root shows as one unit.
        Ns::Svg => *name == Name::Short(n::SVG),
        Ns::MathMl => *name == Name::Short(n::MATH),
    }
}

/// What a signature was computed for: the parent, the region, the
/// stack's generation.
type SignatureKey = (Option<usize>, u32, u64);

/// The facts about a page, beside its hashes, that verdicts look at.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct PageReading {
    /// Bytes of visible body text, whitespace folded.
    pub text_len: u64,
    pub title: String,
    /// The content selector matched a visible element.
    pub selection_visible: bool,
    /// The content selector matched, but only hidden elements.
    pub selection_hidden: bool,
    /// A fixed or absolute box covers the viewport.
    pub overlay: bool,
    /// Elements inserted (the tree builder's implied ones included).
    pub elements: u64,
    /// Subresources and links on another base than the page's own.
    pub leaks: super::leaks::Leaks,
    /// Hosts of `<link rel="alternate">` (no hreflang, no type).
    pub alternate_links: Vec<String>,
}

/// What a pass over a page comes to.
pub(crate) struct Finished {
    pub hash: super::Hash,
    pub reading: PageReading,
    /// The page's visible text (up to [`EVIDENCE_TEXT_BYTES`]).
    pub page_text: Vec<u8>,
    /// The visible text of what was fingerprinted, for evidence.
    pub evidence: Option<Vec<u8>>,
    /// The canonical form, when kept (tests and debugging).
    pub canonical: Option<String>,
}

/// Canonical text kept for the evidence diff, and no more.
pub(crate) const EVIDENCE_TEXT_BYTES: usize = 64 * 1024;

pub(crate) struct Canon {
    rules: Arc<Rules>,
    document_url: Option<Url>,
    base_url: Option<Url>,
    base_seen: bool,
    /// A URL attribute was read: a `<base>` from now on comes too late.
    urls_resolved: bool,
    page: Stream,
    selection: Option<Stream>,
    /// Start tags of formatting elements, for signatures.
    tags: Vec<FormattingTag>,
    /// Counts the changes to the stack of open elements, so a signature
    /// computed since is known to still hold.
    generation: u64,
    signature_cache: Option<(SignatureKey, u32)>,
    signatures: Signatures,
    title: Option<Vec<u8>>,
    title_done: bool,
    /// The table holding the title read (stack position and id).
    title_table: Option<(usize, u32)>,
    reading: PageReading,
    /// `<html>` or `<body>` turned hidden after the fact: nothing shows.
    page_removed: bool,
    scratch: Vec<u8>,
    leaks: super::leaks::LeakCounter,
}

impl Canon {
    pub(crate) fn new(rules: Arc<Rules>, document_url: Option<Url>, keep: bool) -> Self {
        let full_page = rules.selector.is_none();
        // Evidence follows what is fingerprinted: the selection, else the page.
        let selection = rules.selector.is_some().then(|| Stream::new(true, keep, true));
        let leaks = super::leaks::LeakCounter::new(&rules.hosts, document_url.as_ref());
        Canon {
            leaks,
            base_url: document_url.clone(),
            document_url,
            base_seen: false,
            urls_resolved: false,
            page: Stream::new(full_page, keep, true),
            selection,
            rules,
            tags: Vec::new(),
            generation: 0,
            signature_cache: None,
            signatures: Signatures::default(),
            title: None,
            title_done: false,
            title_table: None,
            reading: PageReading::default(),
            page_removed: false,
            scratch: Vec::new(),
        }
    }

    pub(crate) fn finish(mut self) -> Finished {
        let title = self.title.take().unwrap_or_default();
        self.reading.title = collapse_whitespace(&String::from_utf8_lossy(&title));
        let context = Context {
            hosts: &self.rules.hosts,
            signatures: &self.signatures.bytes,
        };
        let page = std::mem::replace(&mut self.page, Stream::new(false, false, false)).finish(&context);
        let selection = self.selection.take().map(|s| s.finish(&context));
        self.reading.text_len = if self.page_removed { 0 } else { page.text_len };
        self.reading.leaks = std::mem::take(&mut self.leaks.leaks);
        if self.page_removed {
            self.reading.selection_visible = false;
        }
        let page_text = page.text.unwrap_or_default();
        let selected = self.rules.selector.is_some() && self.reading.selection_visible;
        let (kind, digest, kept, evidence) = match selection {
            Some(end) if selected => (&b"selection"[..], end.digest, end.kept, end.text),
            _ => (&b"page"[..], page.digest, page.kept, Some(page_text.clone())),
        };
        let mut hasher = Sha256::new();
        hasher.update(b"mirrorgate canonical form 3\n");
        hasher.update(kind);
        hasher.update(b"\n");
        if kind == b"page" {
            // The page's title counts with the page; with a selection it is
            // compared apart (see `PageReading`).
            let mut escaped = Vec::new();
            escape_into(self.reading.title.as_bytes(), &mut escaped, ESCAPED_IN_TEXT);
            hasher.update(b"title ");
            hasher.update(&escaped);
            hasher.update(b"\n");
            hasher.update(if self.page_removed {
                &b"removed\n"[..]
            } else {
                b"shown\n"
            });
        }
        hasher.update(digest);
        let canonical = kept.map(|k| {
            let mut out = String::new();
            if kind == b"page" {
                out.push_str(&format!("title {}\n", self.reading.title));
            }
            out.push_str(&String::from_utf8_lossy(&k));
            out
        });
        Finished {
            hash: super::Hash(hasher.finalize().into()),
            reading: self.reading,
            page_text,
            evidence,
            canonical,
        }
    }

    fn late_base(&mut self, base: Option<&Url>) {
        let mut marker = b"<#base href=\"".to_vec();
        let mut mapped = Vec::new();
        if let Some(base) = base {
            self.rules.hosts.write_url(base.as_str().as_bytes(), None, &mut mapped);
        }
        escape_into(&mapped, &mut marker, ESCAPED_IN_FIELDS);
        marker.extend_from_slice(b"\">");
        let context = Context {
            hosts: &self.rules.hosts,
            signatures: &self.signatures.bytes,
        };
        self.page.marker(&marker, &context);
        if let Some(selection) = &mut self.selection {
            selection.marker(&marker, &context);
        }
    }

    fn write_tag(&mut self, element: &NewElement<'_>) {
        self.urls_resolved |= element.attrs.iter().any(|(name, _)| URL_ATTRIBUTES.contains(&name));
        self.scratch.clear();
        canonical_tag(
            &self.rules.hosts,
            self.base_url.as_ref(),
            element.name,
            element.ns,
            element.attrs.iter(),
            &mut self.scratch,
        );
    }

    /// The signature (formatting elements around a position) of content
    /// inserted into `parent`, within what `region` flags mark.
    fn signature(&mut self, open: &OpenElements<Info>, parent: Option<usize>, region: u32) -> u32 {
        // Text runs come many to one parent between two changes of the stack.
        let key = (parent, region, self.generation);
        if let Some((cached, id)) = self.signature_cache
            && cached == key
        {
            return id;
        }
        let id = self.compute_signature(open, parent, region);
        self.signature_cache = Some((key, id));
        id
    }

    fn compute_signature(&mut self, open: &OpenElements<Info>, parent: Option<usize>, region: u32) -> u32 {
        let mut chain = Vec::new();
        let mut at = parent;
        while let Some(i) = at {
            let entry = open.get(i);
            if entry.data.flags & region == 0 {
                break;
            }
            if entry.data.flags & FORMATTING != 0 {
                chain.push(entry.data.tag);
            }
            chain.extend_from_slice(&entry.data.carried);
            at = entry.parent;
        }
        chain.reverse();
        chain.retain(|tag| (*tag as usize) < self.tags.len());
        for &tag in &chain {
            let tag = &mut self.tags[tag as usize];
            if let FormattingTag::Pending {
                name,
                packed,
                base_changed,
            } = tag
            {
                // The base is the document's, or the one `<base>` set
                // (which comes before these in any page that has one).
                let base = if *base_changed {
                    self.base_url.as_ref()
                } else {
                    self.document_url.as_ref()
                };
                let mut canonical = Vec::new();
                canonical_tag(
                    &self.rules.hosts,
                    base,
                    name,
                    Ns::Html,
                    super::tree::unpack(packed),
                    &mut canonical,
                );
                *tag = FormattingTag::Written(canonical);
            }
        }
        self.signatures.intern(&chain, &self.tags)
    }

    fn is_selection_root_candidate(&self, open: &OpenElements<Info>, place: Place, mask: u64) -> bool {
        self.rules
            .selector
            .as_ref()
            .is_some_and(|s| s.matches(mask, open, place.parent, 0))
    }

    fn is_excluded(&self, open: &OpenElements<Info>, place: Place, mask: u64) -> bool {
        let offset = self.rules.exclude_offset();
        self.rules
            .exclude
            .as_ref()
            .is_some_and(|s| s.matches(mask, open, place.parent, offset))
    }
}

impl TreeSink for Canon {
    type Data = Info;

    fn mask(&mut self, element: &NewElement<'_>, sibling_index: u32) -> u64 {
        let mut mask = 0;
        if let Some(selector) = &self.rules.selector {
            mask |= selector.compound_mask(element, sibling_index);
        }
        if let Some(exclude) = &self.rules.exclude {
            mask |= exclude.compound_mask(element, sibling_index) << self.rules.exclude_offset();
        }
        mask
    }

    fn insert(&mut self, open: &mut OpenElements<Info>, place: Place, element: &NewElement<'_>, mask: u64) -> Info {
        self.reading.elements += 1;
        self.generation += 1;
        let parent = place.parent.map(|p| open.get(p).data.clone()).unwrap_or_default();
        let mut flags = parent.flags & INHERITED;
        if parent.flags & TEMPLATE != 0 && parent.flags & SHADOW_ROOT == 0 {
            flags |= INERT;
        }
        let (ns, name, attrs) = (element.ns, element.name, element.attrs);
        let html = |short: u128| ns == Ns::Html && *name == Name::Short(short);
        if html(n::BODY) || html(n::FRAMESET) {
            flags |= RENDERED;
        }
        if is_inert(ns, name, attrs) {
            flags |= INERT;
        }
        if html(n::IFRAME) {
            flags |= TEXT_NOT_RENDERED;
        }
        if html(n::TEMPLATE) {
            flags |= TEMPLATE;
            let mode = attrs.get(b"shadowrootmode");
            let declares = mode.is_some_and(|m| m.eq_ignore_ascii_case(b"open") || m.eq_ignore_ascii_case(b"closed"));
            let host = place.parent.filter(|_| open.len() > 1);
            if declares && let Some(host) = host {
                let host = open.get_mut(host);
                if host.data.flags & SHADOW_HOST == 0 {
                    host.data.flags |= SHADOW_HOST;
                    flags |= SHADOW_ROOT;
                }
            }
        }
        if html(n::TEMPLATE) && flags & SHADOW_ROOT == 0 {
            // A template's content is a fragment no one sees.
            flags |= INERT;
        }
        if html(n::BASE)
            && !self.base_seen
            && let Some(href) = attrs.get(b"href")
        {
            self.base_seen = true;
            let href = String::from_utf8_lossy(href);
            let resolved = match &self.document_url {
                Some(document) => document.join(href.trim()).ok(),
                None => Url::parse(href.trim()).ok(),
            };
            if resolved.is_some() && resolved != self.base_url {
                if self.urls_resolved {
                    // Browsers resolve every URL against the document's base,
                    // wherever `<base>` is; what was read before it cannot be
                    // read again, so the change itself is written down.
                    self.late_base(resolved.as_ref());
                }
                self.base_url = resolved;
                self.leaks.base_changed(&self.rules.hosts, self.base_url.as_ref());
            }
        }
        self.leaks.element(&self.rules.hosts, ns, name, attrs);
        if html(n::LINK)
            && self.reading.alternate_links.len() < 20
            && attrs.get(b"hreflang").is_none()
            && attrs.get(b"type").is_none()
            && attrs.get(b"rel").is_some_and(|rel| {
                rel.split(|b| b.is_ascii_whitespace())
                    .any(|t| t.eq_ignore_ascii_case(b"alternate"))
            })
            && let Some(host) = attrs.get(b"href").and_then(super::alternates::host_of_link)
            && !self.reading.alternate_links.contains(&host)
        {
            self.reading.alternate_links.push(host);
        }
        if html(n::TITLE) {
            // The document's title is the first in tree order. While the
            // table holding the current one is open, a title read outside
            // it was put before it: that one comes first.
            let table_of = |start: Option<usize>| {
                let mut at = start;
                while let Some(i) = at {
                    if open.get(i).is_html(n::TABLE) {
                        return Some((i, open.get(i).id()));
                    }
                    at = open.get(i).parent;
                }
                None
            };
            let chain_has = |start: Option<usize>, wanted: usize| {
                let mut at = start;
                while let Some(i) = at {
                    if i == wanted {
                        return true;
                    }
                    at = open.get(i).parent;
                }
                false
            };
            let earlier = self.title_table.is_some_and(|(table, id)| {
                table < open.len() && open.get(table).id() == id && !chain_has(place.parent, table)
            });
            if self.title.is_none() || earlier {
                flags |= TITLE;
                self.title = Some(Vec::new());
                self.title_done = false;
                self.title_table = table_of(place.parent);
            }
        }
        if attrs.get(b"hidden").is_some()
            || attrs
                .get(b"aria-hidden")
                .is_some_and(|v| v.trim_ascii().eq_ignore_ascii_case(b"true"))
        {
            flags |= REMOVED;
        }
        if let Some(css) = attrs.get(b"style") {
            let effect = style::effect(css);
            if effect.removed {
                flags |= REMOVED;
            }
            match effect.visible {
                Some(false) => flags |= INVISIBLE,
                Some(true) => flags &= !INVISIBLE,
                None => {}
            }
            if effect.covers_viewport && visible(flags) {
                self.reading.overlay = true;
            }
        }
        if self.is_excluded(open, place, mask) {
            flags |= EXCLUDED;
        }
        if flags & SELECTED == 0 && self.is_selection_root_candidate(open, place, mask) {
            if visible(flags) {
                flags |= SELECTED;
                self.reading.selection_visible = true;
            } else {
                self.reading.selection_hidden = true;
            }
        }
        // Formatting counts where its descendants can show: under
        // `visibility: hidden`, a descendant may show itself again.
        let descendants_may_show = flags & RENDERED != 0 && flags & (REMOVED | INERT | EXCLUDED) == 0;
        if is_formatting(ns, name) && descendants_may_show {
            flags |= FORMATTING;
        }
        if is_block(ns, name) {
            flags |= BLOCK;
        }
        if is_replaced(ns, name) {
            flags |= REPLACED;
        }
        let mut info = Info {
            flags,
            tag: 0,
            page_segment: parent.page_segment,
            selection_segment: parent.selection_segment,
            carried: Vec::new(),
        };
        // Put before a table, it is inside what holds the table.
        if let Some(table) = place.before {
            info.carried = open.get(table).data.carried.clone();
        }
        // A formatting element is not written: it becomes part of the
        // signature of what it covers (canonicalized when first needed:
        // most links in a menu never are).
        if flags & FORMATTING != 0 {
            info.tag = self.tags.len() as u32;
            let packed = super::tree::pack(attrs.iter().filter(|(name, _)| counted_attribute(name)));
            self.tags.push(FormattingTag::Pending {
                name: name.clone(),
                packed,
                base_changed: self.base_url != self.document_url,
            });
            self.urls_resolved |= attrs.iter().any(|(name, _)| URL_ATTRIBUTES.contains(&name));
            return info;
        }
        if !visible(flags) || html(n::BODY) || html(n::FRAMESET) || html(n::HTML) {
            return info;
        }
        let full_page = self.page.full;
        if full_page || flags & SELECTED != 0 {
            self.write_tag(element);
        }
        info.flags |= SHOWN;
        let tag = if flags & SHADOW_ROOT != 0 {
            b"<#shadow>".to_vec()
        } else {
            std::mem::take(&mut self.scratch)
        };
        let table = html(n::TABLE);
        let replaced = flags & REPLACED != 0;
        let page_signature = (full_page && replaced).then(|| self.signature(open, place.parent, RENDERED));
        let selection_signature =
            (flags & SELECTED != 0 && replaced).then(|| self.signature(open, place.parent, RENDERED));
        let context = Context {
            hosts: &self.rules.hosts,
            signatures: &self.signatures.bytes,
        };
        info.page_segment = self.page.open_element(
            parent.page_segment,
            &tag,
            flags & BLOCK != 0,
            table,
            page_signature,
            &context,
        );
        if table {
            info.flags |= OWN_PAGE_SEGMENT;
        }
        if let Some(selection) = &mut self.selection {
            if flags & SELECTED != 0 {
                info.selection_segment = selection.open_element(
                    parent.selection_segment,
                    &tag,
                    flags & BLOCK != 0,
                    table,
                    selection_signature,
                    &context,
                );
                info.flags |= TAGGED_SELECTION;
                if table {
                    info.flags |= OWN_SELECTION_SEGMENT;
                }
            } else if table {
                // A selected element inside this table may yet be preceded
                // (in the tree) by one the tree builder puts before it.
                info.selection_segment = selection.hold(parent.selection_segment);
                info.flags |= OWN_SELECTION_SEGMENT;
            }
        }
        self.scratch = tag;
        info
    }

    fn text(&mut self, open: &OpenElements<Info>, place: Place, text: &[u8]) {
        let Some(parent_at) = place.parent else {
            return;
        };
        let parent = &open.get(parent_at).data;
        let (flags, page_segment, selection_segment) = (parent.flags, parent.page_segment, parent.selection_segment);
        if flags & TITLE != 0 {
            if !self.title_done
                && let Some(title) = &mut self.title
                && title.len() < 4096
            {
                title.extend_from_slice(text);
            }
            return;
        }
        if !visible(flags) || flags & TEXT_NOT_RENDERED != 0 {
            return;
        }
        let page_signature = if self.page.full {
            self.signature(open, place.parent, RENDERED)
        } else {
            0
        };
        // Formatting around the selection shows on it too.
        let selection_signature = if flags & SELECTED != 0 {
            Some(self.signature(open, place.parent, RENDERED))
        } else {
            None
        };
        let context = Context {
            hosts: &self.rules.hosts,
            signatures: &self.signatures.bytes,
        };
        self.page.text(page_segment, text, page_signature, &context);
        if let (Some(signature), Some(selection)) = (selection_signature, &mut self.selection) {
            selection.text(selection_segment, text, signature, &context);
        }
    }

    fn close(&mut self, entry: &Entry<Info>, moved_out: bool) {
        self.generation += 1;
        let info = &entry.data;
        if info.flags & TITLE != 0 {
            self.title_done = true;
        }
        if info.flags & SHOWN == 0 {
            // Body and the like end the words in them all the same.
            if visible(info.flags) && info.flags & FORMATTING == 0 {
                let context = Context {
                    hosts: &self.rules.hosts,
                    signatures: &self.signatures.bytes,
                };
                self.page.boundary(info.page_segment, info.flags & BLOCK != 0, &context);
            }
            return;
        }
        let mut buffer = [0u8; 16];
        let name: &[u8] = if info.flags & SHADOW_ROOT != 0 {
            b"#shadow"
        } else {
            entry.name.write(&mut buffer)
        };
        let context = Context {
            hosts: &self.rules.hosts,
            signatures: &self.signatures.bytes,
        };
        // An element whose content was moved out ended before that content
        // in the tree: its end breaks no line now.
        let block = info.flags & BLOCK != 0 && !moved_out;
        self.page.close_element(
            info.page_segment,
            name,
            entry.ns,
            block,
            info.flags & OWN_PAGE_SEGMENT != 0,
            &context,
        );
        if info.flags & TAGGED_SELECTION == 0
            && info.flags & OWN_SELECTION_SEGMENT != 0
            && let Some(selection) = &mut self.selection
        {
            selection.release(info.selection_segment, &context);
        }
        if info.flags & TAGGED_SELECTION != 0
            && let Some(selection) = &mut self.selection
        {
            selection.close_element(
                info.selection_segment,
                name,
                entry.ns,
                block,
                info.flags & OWN_SELECTION_SEGMENT != 0,
                &context,
            );
        }
    }

    fn adopt(&mut self, holder: &mut Entry<Info>, removed: &Entry<Info>) {
        self.generation += 1;
        if removed.data.flags & FORMATTING != 0 {
            holder.data.carried.push(removed.data.tag);
        }
        holder.data.carried.extend_from_slice(&removed.data.carried);
    }

    fn add_attributes(&mut self, entry: &mut Entry<Info>, attrs: Attrs<'_>) {
        // Only missing attributes are added: what hides matters, late or not.
        let hides = attrs.get(b"hidden").is_some()
            || attrs.get(b"style").is_some_and(|s| style::effect(s).removed)
            || attrs
                .get(b"aria-hidden")
                .is_some_and(|v| v.trim_ascii().eq_ignore_ascii_case(b"true"));
        if hides && (entry.is_html(n::BODY) || entry.is_html(n::HTML)) {
            self.page_removed = true;
        }
    }
}

/// The canonical start tag of an element: `<name a="v" …>`, counted
/// attributes only, sorted, values normalized and escaped.
pub(crate) fn canonical_tag<'a>(
    hosts: &SiteHosts,
    base_url: Option<&Url>,
    name: &Name,
    ns: Ns,
    attrs: impl Iterator<Item = (&'a [u8], &'a [u8])>,
    out: &mut Vec<u8>,
) {
    let is_list = ns == Ns::Html && matches!(name.short(), Some(n::OL | n::LI));
    let mut attributes = Vec::new();
    for (name, value) in attrs {
        if !counted_attribute(name) || (name == b"type" && !is_list) {
            continue;
        }
        let mut canonical = Vec::new();
        if name == b"srcset" {
            write_srcset(hosts, base_url, value, &mut canonical);
        } else if URL_ATTRIBUTES.contains(&name) {
            if value.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            hosts.write_url(value, base_url, &mut canonical);
        } else if matches!(name, b"reversed" | b"open") {
            // Boolean: present is all that counts.
        } else {
            let folded = collapse_whitespace(&String::from_utf8_lossy(value));
            if folded.is_empty() {
                continue;
            }
            canonical.extend_from_slice(&hosts.rewrite_text(folded.as_bytes()));
        }
        attributes.push((name.to_vec(), canonical));
    }
    attributes.sort();
    out.push(b'<');
    match ns {
        Ns::Svg => out.extend_from_slice(b"svg:"),
        Ns::MathMl => out.extend_from_slice(b"math:"),
        Ns::Html => {}
    }
    escape_into(&name.bytes(), out, ESCAPED_IN_FIELDS);
    for (name, value) in &attributes {
        out.push(b' ');
        escape_into(name, out, ESCAPED_IN_FIELDS);
        out.extend_from_slice(b"=\"");
        escape_into(value, out, ESCAPED_IN_FIELDS);
        out.push(b'"');
    }
    out.push(b'>');
}

/// `srcset`: each candidate's URL resolved and mapped, descriptors kept.
fn write_srcset(hosts: &SiteHosts, base_url: Option<&Url>, value: &[u8], out: &mut Vec<u8>) {
    let text = String::from_utf8_lossy(value);
    let mut first = true;
    for candidate in text.split(',') {
        let mut parts = candidate.split_ascii_whitespace();
        let Some(url) = parts.next() else {
            continue;
        };
        if !first {
            out.extend_from_slice(b", ");
        }
        first = false;
        hosts.write_url(url.as_bytes(), base_url, out);
        for descriptor in parts {
            out.push(b' ');
            out.extend_from_slice(descriptor.as_bytes());
        }
    }
}

/// A formatting element's start tag: as read, until a signature needs it.
enum FormattingTag {
    Pending {
        name: Name,
        /// Its counted attributes, packed (see [`super::tree::pack`]).
        packed: Box<[u8]>,
        /// A `<base>` had set another base URL when it was read.
        base_changed: bool,
    },
    Written(Vec<u8>),
}

impl FormattingTag {
    fn bytes(&self) -> &[u8] {
        match self {
            FormattingTag::Written(bytes) => bytes,
            FormattingTag::Pending { .. } => &[],
        }
    }
}

/// Interned signatures: a list of formatting tags, as one id (0: none).
#[derive(Default)]
struct Signatures {
    by_bytes: HashMap<Vec<u8>, u32>,
    bytes: Vec<Vec<u8>>,
}

impl Signatures {
    /// A signature is the set of formatting around text, told apart by what
    /// it writes: `<b>x</b><b>y</b>` reads as `<b>xy</b>`, and `<b><i>` as
    /// `<i><b>` (the tree builder reorders misnested formatting; a reader
    /// sees bold italic either way).
    fn intern(&mut self, chain: &[u32], tags: &[FormattingTag]) -> u32 {
        if chain.is_empty() {
            return 0;
        }
        let mut set: Vec<&[u8]> = chain.iter().map(|t| tags[*t as usize].bytes()).collect();
        set.sort_unstable();
        set.dedup();
        let bytes: Vec<u8> = set.concat();
        let _ = tags;
        if let Some(id) = self.by_bytes.get(&bytes) {
            return *id;
        }
        if self.bytes.is_empty() {
            self.bytes.push(Vec::new());
        }
        let id = self.bytes.len() as u32;
        self.bytes.push(bytes.clone());
        self.by_bytes.insert(bytes, id);
        id
    }
}

/// Bytes escaped with a backslash in names and attribute values.
pub(crate) const ESCAPED_IN_FIELDS: &[u8] = b"\\\"<>={} \n";
/// Bytes escaped with a backslash in text (which holds single spaces).
pub(crate) const ESCAPED_IN_TEXT: &[u8] = b"\\<>{}\n";

pub(crate) fn escape_into(bytes: &[u8], out: &mut Vec<u8>, escaped: &[u8]) {
    for &b in bytes {
        if escaped.contains(&b) {
            out.push(b'\\');
            out.push(if b == b'\n' { b'n' } else { b });
        } else {
            out.push(b);
        }
    }
}

pub(crate) fn collapse_whitespace(text: &str) -> String {
    text.split_ascii_whitespace().collect::<Vec<_>>().join(" ")
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0c')
}

/// What a stream comes to.
struct StreamEnd {
    digest: [u8; 32],
    /// The canonical form, when kept.
    kept: Option<Vec<u8>>,
    /// Bytes of visible text.
    text_len: u64,
    /// The visible text, a line per block (evidence).
    text: Option<Vec<u8>>,
}

/// What completing a word needs: host mapping and the signatures' bytes.
struct Context<'a> {
    hosts: &'a SiteHosts,
    signatures: &'a [Vec<u8>],
}

/// One output of the canonical form: its hasher, the segments held back
/// while tables are open, the visible text it counted and its evidence.
struct Stream {
    /// Tags, attributes and signatures (false: words and block boundaries).
    full: bool,
    /// BLAKE3 over every byte of the stream; the fingerprint is SHA-256 of
    /// the record that holds this digest. The bytes of a page pass through
    /// here, and SHA-256 without SHA extensions would be a third of a
    /// page's time; BLAKE3 is as collision-resistant and fast everywhere.
    /// Boxed: its chunk stack is ~2 KB inline.
    hasher: Box<blake3::Hasher>,
    segments: Vec<Segment>,
    kept: Option<Vec<u8>>,
    text_len: u64,
    evidence: Option<Vec<u8>>,
}

struct Segment {
    bytes: Vec<u8>,
    /// The segment it joins when its table closes.
    parent: u32,
    /// Whitespace was seen since the last word.
    pending_space: bool,
    /// A word was written since the last block boundary.
    has_word: bool,
    /// The last thing written was a block boundary.
    at_boundary: bool,
    /// The word being read (a text run can end mid-word).
    word: Vec<u8>,
    word_signature: u32,
    /// The signature last written.
    signature: u32,
    closed: bool,
    /// Holds output for a table that is not written itself.
    holding: bool,
}

impl Segment {
    fn new(parent: u32) -> Self {
        Segment {
            bytes: Vec::new(),
            parent,
            pending_space: false,
            has_word: false,
            at_boundary: true,
            word: Vec::new(),
            word_signature: 0,
            signature: 0,
            closed: false,
            holding: false,
        }
    }
}

/// Bytes the direct segment gathers before they go into the hasher.
const FLUSH_BYTES: usize = 16 * 1024;

impl Stream {
    fn new(full: bool, keep: bool, evidence: bool) -> Self {
        Stream {
            full,
            hasher: Box::new(blake3::Hasher::new()),
            segments: vec![Segment::new(0)],
            kept: keep.then(Vec::new),
            text_len: 0,
            evidence: evidence.then(Vec::new),
        }
    }

    /// A segment that is still open: `segment`, or the one it joined.
    fn live(&self, mut segment: u32) -> u32 {
        while segment != 0 && self.segments.get(segment as usize).is_none_or(|s| s.closed) {
            segment = self.segments.get(segment as usize).map_or(0, |s| s.parent);
        }
        segment
    }

    fn write(&mut self, segment: u32, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let s = &mut self.segments[segment as usize];
        s.bytes.extend_from_slice(bytes);
        s.at_boundary = false;
        if segment == 0 && s.bytes.len() >= FLUSH_BYTES {
            self.flush();
        }
    }

    fn flush(&mut self) {
        let bytes = std::mem::take(&mut self.segments[0].bytes);
        self.hasher.update(&bytes);
        if let Some(kept) = &mut self.kept {
            kept.extend_from_slice(&bytes);
        }
    }

    /// Ends the word being read and, for a block, the line.
    fn boundary(&mut self, segment: u32, block: bool, context: &Context<'_>) {
        let segment = self.live(segment);
        self.end_word(segment, context);
        if !block {
            return;
        }
        let s = &mut self.segments[segment as usize];
        s.pending_space = false;
        s.has_word = false;
        if !s.at_boundary {
            self.write(segment, b"\n");
            self.segments[segment as usize].at_boundary = true;
            if let Some(evidence) = &mut self.evidence
                && evidence.len() < EVIDENCE_TEXT_BYTES
                && evidence.last().is_some_and(|b| *b != b'\n')
            {
                evidence.push(b'\n');
            }
        }
    }

    /// Writes an element's start into `segment`; returns the segment its
    /// content goes to (a table's own).
    fn open_element(
        &mut self,
        segment: u32,
        tag: &[u8],
        block: bool,
        table: bool,
        signature: Option<u32>,
        context: &Context<'_>,
    ) -> u32 {
        let segment = self.live(segment);
        // A table's output waits in a segment of its own: what the tree
        // builder puts before the table meanwhile must come first.
        let target = if table {
            self.segments.push(Segment::new(segment));
            (self.segments.len() - 1) as u32
        } else {
            self.boundary(segment, block, context);
            segment
        };
        if self.full {
            if let Some(signature) = signature {
                self.write_signature(target, signature, context);
            }
            self.write(target, tag);
        }
        target
    }

    fn close_element(
        &mut self,
        segment: u32,
        name: &[u8],
        ns: Ns,
        block: bool,
        owns_segment: bool,
        context: &Context<'_>,
    ) {
        let segment = self.live(segment);
        self.end_word(segment, context);
        if self.full {
            let mut tag = b"</".to_vec();
            match ns {
                Ns::Svg => tag.extend_from_slice(b"svg:"),
                Ns::MathMl => tag.extend_from_slice(b"math:"),
                Ns::Html => {}
            }
            escape_into(name, &mut tag, ESCAPED_IN_FIELDS);
            tag.push(b'>');
            self.write(segment, &tag);
        }
        let joined = if owns_segment && segment != 0 {
            self.join(segment, context)
        } else {
            segment
        };
        self.boundary(joined, block, context);
    }

    /// A segment that holds back what is written inside a table that is
    /// not itself written (a selection inside an unselected table).
    fn hold(&mut self, parent: u32) -> u32 {
        let parent = self.live(parent);
        let mut segment = Segment::new(parent);
        segment.holding = true;
        self.segments.push(segment);
        (self.segments.len() - 1) as u32
    }

    /// The table of a holding segment closed.
    fn release(&mut self, segment: u32, context: &Context<'_>) {
        if segment != 0 && !self.segments[segment as usize].closed {
            self.end_word(segment, context);
            self.join(segment, context);
        }
    }

    /// A table closed: its output follows what was put before it.
    fn join(&mut self, segment: u32, context: &Context<'_>) -> u32 {
        let bytes = std::mem::take(&mut self.segments[segment as usize].bytes);
        self.segments[segment as usize].closed = true;
        let holding = self.segments[segment as usize].holding;
        let parent = self.live(self.segments[segment as usize].parent);
        if holding && bytes.is_empty() {
            return parent;
        }
        self.boundary(parent, true, context);
        self.write(parent, &bytes);
        if holding {
            self.segments[parent as usize].at_boundary = self.segments[segment as usize].at_boundary;
        }
        while self.segments.len() > 1 && self.segments.last().is_some_and(|s| s.closed) {
            self.segments.pop();
        }
        parent
    }

    /// Writes a record that is not an element (a late `<base>`) where the
    /// stream is now.
    fn marker(&mut self, marker: &[u8], context: &Context<'_>) {
        let segment = self.live((self.segments.len() - 1) as u32);
        self.end_word(segment, context);
        self.write(segment, marker);
    }

    fn write_signature(&mut self, segment: u32, signature: u32, context: &Context<'_>) {
        if self.segments[segment as usize].signature == signature {
            return;
        }
        self.segments[segment as usize].signature = signature;
        let mut marker = vec![b'{'];
        if let Some(bytes) = context.signatures.get(signature as usize) {
            marker.extend_from_slice(bytes);
        }
        marker.push(b'}');
        self.write(segment, &marker);
    }

    fn text(&mut self, segment: u32, text: &[u8], signature: u32, context: &Context<'_>) {
        let segment = self.live(segment);
        let mut rest = text;
        while !rest.is_empty() {
            let run = rest.iter().position(|b| is_space(*b)).unwrap_or(rest.len());
            if run > 0 {
                let s = &self.segments[segment as usize];
                if !s.word.is_empty() && s.word_signature != signature {
                    // `hel<b>lo`: one word on screen, two signatures here.
                    self.end_word(segment, context);
                }
                let s = &mut self.segments[segment as usize];
                if s.word.is_empty() {
                    s.word_signature = signature;
                }
                s.word.extend_from_slice(&rest[..run]);
                rest = &rest[run..];
            }
            let blanks = rest.iter().take_while(|b| is_space(**b)).count();
            if blanks > 0 {
                self.end_word(segment, context);
                let s = &mut self.segments[segment as usize];
                if s.has_word {
                    s.pending_space = true;
                }
                rest = &rest[blanks..];
            }
        }
    }

    fn end_word(&mut self, segment: u32, context: &Context<'_>) {
        let s = &mut self.segments[segment as usize];
        if s.word.is_empty() {
            return;
        }
        let mut word = std::mem::take(&mut s.word);
        let signature = s.word_signature;
        let space = s.pending_space && s.has_word;
        s.pending_space = false;
        s.has_word = true;
        {
            let mapped = context.hosts.rewrite_text(&word);
            self.text_len += mapped.len() as u64 + u64::from(space);
            if let Some(evidence) = &mut self.evidence
                && evidence.len() < EVIDENCE_TEXT_BYTES
            {
                if space {
                    evidence.push(b' ');
                }
                evidence.extend_from_slice(&mapped);
            }
            if space {
                self.write(segment, b" ");
            }
            if self.full {
                self.write_signature(segment, signature, context);
            }
            let s = &mut self.segments[segment as usize];
            escape_into(&mapped, &mut s.bytes, ESCAPED_IN_TEXT);
            s.at_boundary = false;
        }
        word.clear();
        self.segments[segment as usize].word = word;
        if segment == 0 && self.segments[0].bytes.len() >= FLUSH_BYTES {
            self.flush();
        }
    }

    fn finish(mut self, context: &Context<'_>) -> StreamEnd {
        for segment in (1..self.segments.len()).rev() {
            if !self.segments[segment].closed {
                self.join(segment as u32, context);
            }
        }
        self.end_word(0, context);
        self.flush();
        StreamEnd {
            digest: *self.hasher.finalize().as_bytes(),
            kept: self.kept,
            text_len: self.text_len,
            text: self.evidence,
        }
    }
}
