//! The WHATWG HTML tokenizer, as a push state machine.
//!
//! Browsers decide what a page shows from this state machine; a fingerprint
//! that reads a page any other way can be fooled by markup that a browser
//! and the fingerprint read differently (`<!-->`, `--!>`, script escapes,
//! CDATA in SVG). So this follows the standard's tokenization section state
//! for state, and is checked against the html5lib tokenizer suite
//! (`html5lib_suite` below, every case listed in tests/html5lib-tests/).
//!
//! Input arrives as UTF-8 in chunks split anywhere. Every state keeps what
//! it needs between chunks (the tag, comment or reference being read), so a
//! chunk boundary never changes a token: the tokens, and the fingerprint
//! made from them, do not depend on how the body was split. Runs of plain
//! characters are found with `memchr` rather than byte by byte.
//!
//! Characters are handed over as UTF-8 bytes. All the standard's syntax is
//! ASCII, so a multi-byte character is always "anything else" and passes
//! through untouched. Adjacent characters are handed over as one text run,
//! once the next non-text token starts (or the input ends).
//!
//! A token longer than the budget stops tokenizing there, deterministically:
//! the tokens before it are all emitted, nothing after it is.

use std::ops::Range;

use memchr::{memchr, memchr2, memchr3};

use super::entities::NAMED;

const REPLACEMENT: &[u8] = "\u{FFFD}".as_bytes();

/// Which state the tree builder puts the tokenizer in after a start tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    Data,
    RcData,
    RawText,
    ScriptData,
    Plaintext,
}

/// Where tokens go, in document order.
pub(crate) trait TokenSink {
    fn start_tag(&mut self, tag: &Tag<'_>) -> Next;
    fn end_tag(&mut self, tag: &Tag<'_>);
    /// A run of characters, entities decoded, CR/LF normalized.
    fn text(&mut self, text: &[u8]);
    fn comment(&mut self, text: &[u8]);
    fn doctype(&mut self, doctype: &Doctype);
    /// The adjusted current node is an element not in the HTML namespace,
    /// where `<![CDATA[` opens a CDATA section.
    fn cdata_allowed(&self) -> bool;
}

/// A start or end tag: its lower-cased name and its attributes, values
/// decoded. Of an attribute written twice, only the first is kept.
pub(crate) struct Tag<'a> {
    pub name: &'a [u8],
    pub self_closing: bool,
    attributes: &'a [Attribute],
    bytes: &'a [u8],
}

#[derive(Clone, Debug)]
struct Attribute {
    name: Range<usize>,
    value: Range<usize>,
    /// Its name is complete; bytes appended now belong to the value.
    named: bool,
}

impl<'a> Tag<'a> {
    pub fn attributes(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        let bytes = self.bytes;
        self.attributes
            .iter()
            .map(move |a| (&bytes[a.name.clone()], &bytes[a.value.clone()]))
    }

    /// The value of the attribute named `name` (lower case), if present.
    pub fn attribute(&self, name: &[u8]) -> Option<&'a [u8]> {
        self.attributes().find(|(n, _)| *n == name).map(|(_, v)| v)
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Doctype {
    pub name: Option<Vec<u8>>,
    pub public_id: Option<Vec<u8>>,
    pub system_id: Option<Vec<u8>>,
    pub force_quirks: bool,
}

/// The tokenizer states of the standard (13.2.5), by their names there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    Data,
    RcData,
    RawText,
    ScriptData,
    Plaintext,
    TagOpen,
    EndTagOpen,
    TagName,
    RcDataLessThanSign,
    RcDataEndTagOpen,
    RcDataEndTagName,
    RawTextLessThanSign,
    RawTextEndTagOpen,
    RawTextEndTagName,
    ScriptDataLessThanSign,
    ScriptDataEndTagOpen,
    ScriptDataEndTagName,
    ScriptDataEscapeStart,
    ScriptDataEscapeStartDash,
    ScriptDataEscaped,
    ScriptDataEscapedDash,
    ScriptDataEscapedDashDash,
    ScriptDataEscapedLessThanSign,
    ScriptDataEscapedEndTagOpen,
    ScriptDataEscapedEndTagName,
    ScriptDataDoubleEscapeStart,
    ScriptDataDoubleEscaped,
    ScriptDataDoubleEscapedDash,
    ScriptDataDoubleEscapedDashDash,
    ScriptDataDoubleEscapedLessThanSign,
    ScriptDataDoubleEscapeEnd,
    BeforeAttributeName,
    AttributeName,
    AfterAttributeName,
    BeforeAttributeValue,
    AttributeValueDoubleQuoted,
    AttributeValueSingleQuoted,
    AttributeValueUnquoted,
    AfterAttributeValueQuoted,
    SelfClosingStartTag,
    BogusComment,
    MarkupDeclarationOpen,
    CommentStart,
    CommentStartDash,
    Comment,
    CommentLessThanSign,
    CommentLessThanSignBang,
    CommentLessThanSignBangDash,
    CommentLessThanSignBangDashDash,
    CommentEndDash,
    CommentEnd,
    CommentEndBang,
    Doctype,
    BeforeDoctypeName,
    DoctypeName,
    AfterDoctypeName,
    /// Reading `PUBLIC` or `SYSTEM` after a doctype name (the standard
    /// looks six characters ahead; a push tokenizer reads them one by one).
    AfterDoctypeNameKeyword,
    AfterDoctypePublicKeyword,
    BeforeDoctypePublicIdentifier,
    DoctypePublicIdentifierDoubleQuoted,
    DoctypePublicIdentifierSingleQuoted,
    AfterDoctypePublicIdentifier,
    BetweenDoctypePublicAndSystemIdentifiers,
    AfterDoctypeSystemKeyword,
    BeforeDoctypeSystemIdentifier,
    DoctypeSystemIdentifierDoubleQuoted,
    DoctypeSystemIdentifierSingleQuoted,
    AfterDoctypeSystemIdentifier,
    BogusDoctype,
    CdataSection,
    CdataSectionBracket,
    CdataSectionEnd,
    CharacterReference,
    NamedCharacterReference,
    AmbiguousAmpersand,
    NumericCharacterReference,
    HexadecimalCharacterReferenceStart,
    DecimalCharacterReferenceStart,
    HexadecimalCharacterReference,
    DecimalCharacterReference,
    NumericCharacterReferenceEnd,
}

/// The longest named reference without its `&` (`CounterClockwiseContourIntegral;`
/// has 31 letters): collecting more letters cannot find a longer match.
const MAX_REFERENCE_NAME: usize = 32;

pub(crate) struct Tokenizer {
    state: State,
    /// Where a character reference returns to.
    return_state: State,
    /// The last byte of the previous chunk was a CR: an LF starting this
    /// one belongs to it.
    after_cr: bool,
    /// Characters not yet handed over.
    text: Vec<u8>,
    /// The tag being read.
    tag_name: Vec<u8>,
    tag_is_end: bool,
    self_closing: bool,
    attributes: Vec<Attribute>,
    attribute_bytes: Vec<u8>,
    /// For a tag with many attributes: each name's hash, to the index of the
    /// first attribute with it, so the duplicate check stays linear in the
    /// tag (a hostile tag carries 200,000 attributes). Random keys, so a
    /// page cannot be built to collide.
    attribute_index: std::collections::HashMap<u64, usize>,
    attribute_hasher: std::collections::hash_map::RandomState,
    /// The name of the last start tag emitted, for "appropriate end tag".
    last_start_tag: Vec<u8>,
    /// The standard's temporary buffer.
    temp: Vec<u8>,
    comment: Vec<u8>,
    doctype: Doctype,
    reference_code: u32,
    budget: usize,
    failed: bool,
}

/// Past this many attributes in one tag, duplicates are found by hash.
const INDEXED_ATTRIBUTES: usize = 16;
/// Attributes kept per tag; later ones are read and dropped.
pub(crate) const MAX_ATTRIBUTES: usize = 1024;

impl Tokenizer {
    /// `budget`: the longest token (text run, tag, comment) tokenized; a
    /// longer one stops the pass there.
    pub(crate) fn new(budget: usize) -> Self {
        Tokenizer {
            state: State::Data,
            return_state: State::Data,
            after_cr: false,
            text: Vec::new(),
            tag_name: Vec::new(),
            tag_is_end: false,
            self_closing: false,
            attributes: Vec::new(),
            attribute_bytes: Vec::new(),
            attribute_index: std::collections::HashMap::new(),
            attribute_hasher: std::collections::hash_map::RandomState::new(),
            last_start_tag: Vec::new(),
            temp: Vec::new(),
            comment: Vec::new(),
            doctype: Doctype::default(),
            reference_code: 0,
            budget,
            failed: false,
        }
    }

    /// For the html5lib suite: start in another state, as if after a start
    /// tag named `last_start_tag`.
    #[cfg(test)]
    pub(crate) fn start_in(&mut self, state: State, last_start_tag: Option<&str>) {
        self.state = state;
        self.last_start_tag = last_start_tag.unwrap_or("").as_bytes().to_vec();
    }

    /// True once a token exceeded the budget: what follows it was not read.
    pub(crate) fn failed(&self) -> bool {
        self.failed
    }

    pub(crate) fn feed(&mut self, chunk: &[u8], sink: &mut impl TokenSink) {
        if self.failed || chunk.is_empty() {
            return;
        }
        // The input stream has CR and CR LF as LF (13.2.3.5): only chunks
        // holding a CR pay for a copy.
        let mut chunk = chunk;
        if self.after_cr && chunk[0] == b'\n' {
            chunk = &chunk[1..];
        }
        self.after_cr = false;
        if memchr(b'\r', chunk).is_none() {
            self.run(chunk, sink);
            return;
        }
        let mut normalized = Vec::with_capacity(chunk.len());
        let mut rest = chunk;
        while let Some(cr) = memchr(b'\r', rest) {
            normalized.extend_from_slice(&rest[..cr]);
            normalized.push(b'\n');
            rest = &rest[cr + 1..];
            if rest.first() == Some(&b'\n') {
                rest = &rest[1..];
            } else if rest.is_empty() {
                self.after_cr = true;
            }
        }
        normalized.extend_from_slice(rest);
        self.run(&normalized, sink);
    }

    /// The end of the input: what is pending is emitted as the standard
    /// says for end-of-file in the current state.
    pub(crate) fn finish(&mut self, sink: &mut impl TokenSink) {
        if self.failed {
            return;
        }
        while !self.step(None, sink) {
            if self.failed {
                return;
            }
        }
        self.flush_text(sink);
    }

    fn fail(&mut self) {
        self.failed = true;
        self.text = Vec::new();
        self.comment = Vec::new();
        self.attribute_bytes = Vec::new();
        self.tag_name = Vec::new();
    }

    fn run(&mut self, input: &[u8], sink: &mut impl TokenSink) {
        let mut i = 0;
        while i < input.len() {
            i += self.plain_run(&input[i..]);
            if i == input.len() {
                break;
            }
            if self.step(Some(input[i]), sink) {
                i += 1;
            }
            if self.failed {
                return;
            }
        }
        if self.pending_len() > self.budget {
            self.fail();
        }
    }

    /// Consumes the leading bytes of `input` that the current state only
    /// appends somewhere; returns how many.
    fn plain_run(&mut self, input: &[u8]) -> usize {
        let (found, target) = match self.state {
            State::Data | State::RcData => (memchr3(b'<', b'&', 0, input), Target::Text),
            State::RawText | State::ScriptData => (memchr2(b'<', 0, input), Target::Text),
            State::Plaintext => (memchr(0, input), Target::Text),
            State::ScriptDataEscaped | State::ScriptDataDoubleEscaped => (memchr3(b'-', b'<', 0, input), Target::Text),
            State::AttributeValueDoubleQuoted => (memchr3(b'"', b'&', 0, input), Target::Attribute),
            State::AttributeValueSingleQuoted => (memchr3(b'\'', b'&', 0, input), Target::Attribute),
            State::Comment => (memchr3(b'-', b'<', 0, input), Target::Comment),
            State::BogusComment => (memchr2(b'>', 0, input), Target::Comment),
            _ => return 0,
        };
        let n = found.unwrap_or(input.len());
        let run = &input[..n];
        match target {
            Target::Text => self.text.extend_from_slice(run),
            Target::Attribute => self.attribute_bytes.extend_from_slice(run),
            Target::Comment => self.comment.extend_from_slice(run),
        }
        n
    }

    /// The longest of the buffers a token is read into.
    fn pending_len(&self) -> usize {
        let doctype = &self.doctype;
        let id = |v: &Option<Vec<u8>>| v.as_ref().map_or(0, Vec::len);
        [
            self.text.len(),
            self.attribute_bytes.len(),
            self.comment.len(),
            self.tag_name.len(),
            self.temp.len(),
            id(&doctype.name) + id(&doctype.public_id) + id(&doctype.system_id),
        ]
        .into_iter()
        .max()
        .unwrap_or(0)
    }

    fn flush_text(&mut self, sink: &mut impl TokenSink) {
        if self.text.is_empty() {
            return;
        }
        if self.text.len() > self.budget {
            self.fail();
            return;
        }
        sink.text(&self.text);
        self.text.clear();
    }

    fn start_tag(&mut self) {
        self.tag_name.clear();
        self.tag_is_end = false;
        self.self_closing = false;
        self.attributes.clear();
        if !self.attribute_index.is_empty() {
            self.attribute_index.clear();
            self.attribute_index.shrink_to(256);
        }
        self.attribute_bytes.clear();
    }

    fn start_end_tag(&mut self) {
        self.start_tag();
        self.tag_is_end = true;
    }

    fn start_attribute(&mut self) {
        self.finish_attribute();
        let at = self.attribute_bytes.len();
        self.attributes.push(Attribute {
            name: at..at,
            value: at..at,
            named: false,
        });
    }

    /// The name of the attribute being read is complete.
    fn attribute_name_done(&mut self) {
        if let Some(last) = self.attributes.last_mut() {
            let end = self.attribute_bytes.len();
            last.name.end = end;
            last.value = end..end;
            last.named = true;
        }
    }

    /// Closes the attribute being read; a duplicate name drops it.
    fn finish_attribute(&mut self) {
        let Some(last) = self.attributes.last_mut() else {
            return;
        };
        if last.named {
            last.value.end = self.attribute_bytes.len();
        } else {
            last.name.end = self.attribute_bytes.len();
            last.value = last.name.end..last.name.end;
            last.named = true;
        }
        let (last, earlier) = self.attributes.split_last().expect("checked above");
        let bytes = &self.attribute_bytes;
        let same_name = |a: &Attribute| bytes[a.name.clone()] == bytes[last.name.clone()];
        let duplicate = if earlier.len() < INDEXED_ATTRIBUTES {
            earlier.iter().any(same_name)
        } else {
            let hash = |name: &[u8]| std::hash::BuildHasher::hash_one(&self.attribute_hasher, name);
            if self.attribute_index.is_empty() {
                for (index, a) in earlier.iter().enumerate() {
                    self.attribute_index
                        .entry(hash(&bytes[a.name.clone()]))
                        .or_insert(index);
                }
            }
            match self.attribute_index.entry(hash(&bytes[last.name.clone()])) {
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(earlier.len());
                    false
                }
                // Equal hashes: the same name, unless (almost never) two collide.
                std::collections::hash_map::Entry::Occupied(first) => {
                    same_name(&earlier[*first.get()]) || earlier.iter().any(same_name)
                }
            }
        };
        // Past the cap an attribute is read but not kept: no page has that
        // many, and keeping them would make memory grow with the tag.
        if duplicate || self.attributes.len() > MAX_ATTRIBUTES {
            let start = last.name.start;
            self.attributes.pop();
            self.attribute_bytes.truncate(start);
        }
    }

    fn emit_tag(&mut self, sink: &mut impl TokenSink) {
        self.finish_attribute();
        self.flush_text(sink);
        if self.failed {
            return;
        }
        if self.tag_name.len() + self.attribute_bytes.len() > self.budget {
            self.fail();
            return;
        }
        let tag = Tag {
            name: &self.tag_name,
            self_closing: self.self_closing,
            attributes: &self.attributes,
            bytes: &self.attribute_bytes,
        };
        if self.tag_is_end {
            sink.end_tag(&tag);
            return;
        }
        let next = sink.start_tag(&tag);
        self.last_start_tag.clear();
        self.last_start_tag.extend_from_slice(&self.tag_name);
        self.state = match next {
            Next::Data => State::Data,
            Next::RcData => State::RcData,
            Next::RawText => State::RawText,
            Next::ScriptData => State::ScriptData,
            Next::Plaintext => State::Plaintext,
        };
    }

    fn emit_comment(&mut self, sink: &mut impl TokenSink) {
        self.flush_text(sink);
        if self.failed {
            return;
        }
        if self.comment.len() > self.budget {
            self.fail();
            return;
        }
        sink.comment(&self.comment);
        self.comment.clear();
    }

    fn emit_doctype(&mut self, sink: &mut impl TokenSink) {
        self.flush_text(sink);
        if self.failed {
            return;
        }
        let doctype = std::mem::take(&mut self.doctype);
        sink.doctype(&doctype);
    }

    fn appropriate_end_tag(&self) -> bool {
        !self.last_start_tag.is_empty() && self.tag_name == self.last_start_tag
    }

    fn in_attribute(&self) -> bool {
        matches!(
            self.return_state,
            State::AttributeValueDoubleQuoted | State::AttributeValueSingleQuoted | State::AttributeValueUnquoted
        )
    }

    /// The standard's "flush code points consumed as a character reference".
    fn flush_reference(&mut self) {
        if self.in_attribute() {
            self.attribute_bytes.extend_from_slice(&self.temp);
        } else {
            self.text.extend_from_slice(&self.temp);
        }
        self.temp.clear();
    }

    /// `</` and the temporary buffer, as characters: an end tag in raw text
    /// that was not the appropriate one.
    fn not_an_end_tag(&mut self, back_to: State) {
        self.text.extend_from_slice(b"</");
        self.text.extend_from_slice(&self.temp);
        self.state = back_to;
    }

    /// The "end tag name" states of RCDATA, RAWTEXT and script data.
    fn raw_end_tag_name(&mut self, c: Option<u8>, back_to: State, sink: &mut impl TokenSink) -> bool {
        match c {
            Some(b'\t' | b'\n' | b'\x0c' | b' ') if self.appropriate_end_tag() => {
                self.state = State::BeforeAttributeName;
                true
            }
            Some(b'/') if self.appropriate_end_tag() => {
                self.state = State::SelfClosingStartTag;
                true
            }
            Some(b'>') if self.appropriate_end_tag() => {
                self.state = State::Data;
                self.emit_tag(sink);
                true
            }
            Some(c) if c.is_ascii_alphabetic() => {
                self.tag_name.push(c.to_ascii_lowercase());
                self.temp.push(c);
                true
            }
            _ => {
                self.not_an_end_tag(back_to);
                false
            }
        }
    }

    /// One input character (None: the end of the input) in the current
    /// state. Returns true when it was consumed, false when it is to be
    /// reconsumed (in the state now current); at the end of the input,
    /// true means everything is emitted.
    fn step(&mut self, c: Option<u8>, sink: &mut impl TokenSink) -> bool {
        use State as S;
        const WS: [u8; 4] = [b'\t', b'\n', b'\x0c', b' '];
        let is_ws = |c: u8| WS.contains(&c);
        match self.state {
            S::Data => match c {
                Some(b'&') => {
                    self.return_state = S::Data;
                    self.state = S::CharacterReference;
                }
                Some(b'<') => self.state = S::TagOpen,
                // The tree builder decides what a NUL in data is.
                Some(c) => self.text.push(c),
                None => return true,
            },
            S::RcData => match c {
                Some(b'&') => {
                    self.return_state = S::RcData;
                    self.state = S::CharacterReference;
                }
                Some(b'<') => self.state = S::RcDataLessThanSign,
                Some(0) => self.text.extend_from_slice(REPLACEMENT),
                Some(c) => self.text.push(c),
                None => return true,
            },
            S::RawText | S::ScriptData | S::Plaintext => match c {
                Some(b'<') if self.state == S::RawText => self.state = S::RawTextLessThanSign,
                Some(b'<') if self.state == S::ScriptData => self.state = S::ScriptDataLessThanSign,
                Some(0) => self.text.extend_from_slice(REPLACEMENT),
                Some(c) => self.text.push(c),
                None => return true,
            },
            S::TagOpen => match c {
                Some(b'!') => {
                    self.temp.clear();
                    self.state = S::MarkupDeclarationOpen;
                }
                Some(b'/') => self.state = S::EndTagOpen,
                Some(c) if c.is_ascii_alphabetic() => {
                    self.start_tag();
                    self.state = S::TagName;
                    return false;
                }
                Some(b'?') => {
                    self.comment.clear();
                    self.state = S::BogusComment;
                    return false;
                }
                _ => {
                    self.text.push(b'<');
                    self.state = S::Data;
                    return false;
                }
            },
            S::EndTagOpen => match c {
                Some(c) if c.is_ascii_alphabetic() => {
                    self.start_end_tag();
                    self.state = S::TagName;
                    return false;
                }
                Some(b'>') => self.state = S::Data,
                None => {
                    self.text.extend_from_slice(b"</");
                    self.state = S::Data;
                    return false;
                }
                Some(_) => {
                    self.comment.clear();
                    self.state = S::BogusComment;
                    return false;
                }
            },
            S::TagName => match c {
                Some(c) if is_ws(c) => self.state = S::BeforeAttributeName,
                Some(b'/') => self.state = S::SelfClosingStartTag,
                Some(b'>') => {
                    self.state = S::Data;
                    self.emit_tag(sink);
                }
                Some(0) => self.tag_name.extend_from_slice(REPLACEMENT),
                Some(c) => self.tag_name.push(c.to_ascii_lowercase()),
                None => return true,
            },
            S::RcDataLessThanSign | S::RawTextLessThanSign => {
                let (open, back_to) = if self.state == S::RcDataLessThanSign {
                    (S::RcDataEndTagOpen, S::RcData)
                } else {
                    (S::RawTextEndTagOpen, S::RawText)
                };
                if c == Some(b'/') {
                    self.temp.clear();
                    self.state = open;
                } else {
                    self.text.push(b'<');
                    self.state = back_to;
                    return false;
                }
            }
            S::RcDataEndTagOpen | S::RawTextEndTagOpen | S::ScriptDataEndTagOpen | S::ScriptDataEscapedEndTagOpen => {
                let (name, back_to) = match self.state {
                    S::RcDataEndTagOpen => (S::RcDataEndTagName, S::RcData),
                    S::RawTextEndTagOpen => (S::RawTextEndTagName, S::RawText),
                    S::ScriptDataEndTagOpen => (S::ScriptDataEndTagName, S::ScriptData),
                    _ => (S::ScriptDataEscapedEndTagName, S::ScriptDataEscaped),
                };
                match c {
                    Some(c) if c.is_ascii_alphabetic() => {
                        self.start_end_tag();
                        self.state = name;
                    }
                    _ => {
                        self.text.extend_from_slice(b"</");
                        self.state = back_to;
                    }
                }
                return false;
            }
            S::RcDataEndTagName => return self.raw_end_tag_name(c, S::RcData, sink),
            S::RawTextEndTagName => return self.raw_end_tag_name(c, S::RawText, sink),
            S::ScriptDataEndTagName => return self.raw_end_tag_name(c, S::ScriptData, sink),
            S::ScriptDataEscapedEndTagName => return self.raw_end_tag_name(c, S::ScriptDataEscaped, sink),
            S::ScriptDataLessThanSign => match c {
                Some(b'/') => {
                    self.temp.clear();
                    self.state = S::ScriptDataEndTagOpen;
                }
                Some(b'!') => {
                    self.state = S::ScriptDataEscapeStart;
                    self.text.extend_from_slice(b"<!");
                }
                _ => {
                    self.text.push(b'<');
                    self.state = S::ScriptData;
                    return false;
                }
            },
            S::ScriptDataEscapeStart | S::ScriptDataEscapeStartDash => {
                if c == Some(b'-') {
                    self.text.push(b'-');
                    self.state = if self.state == S::ScriptDataEscapeStart {
                        S::ScriptDataEscapeStartDash
                    } else {
                        S::ScriptDataEscapedDashDash
                    };
                } else {
                    self.state = S::ScriptData;
                    return false;
                }
            }
            S::ScriptDataEscaped | S::ScriptDataEscapedDash | S::ScriptDataEscapedDashDash => match c {
                Some(b'-') => {
                    self.text.push(b'-');
                    self.state = match self.state {
                        S::ScriptDataEscaped => S::ScriptDataEscapedDash,
                        _ => S::ScriptDataEscapedDashDash,
                    };
                }
                Some(b'<') => self.state = S::ScriptDataEscapedLessThanSign,
                Some(b'>') if self.state == S::ScriptDataEscapedDashDash => {
                    self.text.push(b'>');
                    self.state = S::ScriptData;
                }
                Some(0) => {
                    self.text.extend_from_slice(REPLACEMENT);
                    self.state = S::ScriptDataEscaped;
                }
                Some(c) => {
                    self.text.push(c);
                    self.state = S::ScriptDataEscaped;
                }
                None => return true,
            },
            S::ScriptDataEscapedLessThanSign => match c {
                Some(b'/') => {
                    self.temp.clear();
                    self.state = S::ScriptDataEscapedEndTagOpen;
                }
                Some(c) if c.is_ascii_alphabetic() => {
                    self.temp.clear();
                    self.text.push(b'<');
                    self.state = S::ScriptDataDoubleEscapeStart;
                    return false;
                }
                _ => {
                    self.text.push(b'<');
                    self.state = S::ScriptDataEscaped;
                    return false;
                }
            },
            S::ScriptDataDoubleEscapeStart | S::ScriptDataDoubleEscapeEnd => {
                let (matched, otherwise) = if self.state == S::ScriptDataDoubleEscapeStart {
                    (S::ScriptDataDoubleEscaped, S::ScriptDataEscaped)
                } else {
                    (S::ScriptDataEscaped, S::ScriptDataDoubleEscaped)
                };
                match c {
                    Some(c) if is_ws(c) || c == b'/' || c == b'>' => {
                        self.state = if self.temp == b"script" { matched } else { otherwise };
                        self.text.push(c);
                    }
                    Some(c) if c.is_ascii_alphabetic() => {
                        self.temp.push(c.to_ascii_lowercase());
                        self.text.push(c);
                    }
                    _ => {
                        self.state = otherwise;
                        return false;
                    }
                }
            }
            S::ScriptDataDoubleEscaped | S::ScriptDataDoubleEscapedDash | S::ScriptDataDoubleEscapedDashDash => match c
            {
                Some(b'-') => {
                    self.text.push(b'-');
                    self.state = match self.state {
                        S::ScriptDataDoubleEscaped => S::ScriptDataDoubleEscapedDash,
                        _ => S::ScriptDataDoubleEscapedDashDash,
                    };
                }
                Some(b'<') => {
                    self.text.push(b'<');
                    self.state = S::ScriptDataDoubleEscapedLessThanSign;
                }
                Some(b'>') if self.state == S::ScriptDataDoubleEscapedDashDash => {
                    self.text.push(b'>');
                    self.state = S::ScriptData;
                }
                Some(0) => {
                    self.text.extend_from_slice(REPLACEMENT);
                    self.state = S::ScriptDataDoubleEscaped;
                }
                Some(c) => {
                    self.text.push(c);
                    self.state = S::ScriptDataDoubleEscaped;
                }
                None => return true,
            },
            S::ScriptDataDoubleEscapedLessThanSign => {
                if c == Some(b'/') {
                    self.temp.clear();
                    self.text.push(b'/');
                    self.state = S::ScriptDataDoubleEscapeEnd;
                } else {
                    self.state = S::ScriptDataDoubleEscaped;
                    return false;
                }
            }
            S::BeforeAttributeName => match c {
                Some(c) if is_ws(c) => {}
                Some(b'/' | b'>') | None => {
                    self.state = S::AfterAttributeName;
                    return false;
                }
                Some(b'=') => {
                    self.start_attribute();
                    self.attribute_bytes.push(b'=');
                    self.state = S::AttributeName;
                }
                Some(_) => {
                    self.start_attribute();
                    self.state = S::AttributeName;
                    return false;
                }
            },
            S::AttributeName => match c {
                Some(c) if is_ws(c) || c == b'/' || c == b'>' => {
                    self.attribute_name_done();
                    self.state = S::AfterAttributeName;
                    return false;
                }
                None => {
                    self.attribute_name_done();
                    self.state = S::AfterAttributeName;
                    return false;
                }
                Some(b'=') => {
                    self.attribute_name_done();
                    self.state = S::BeforeAttributeValue;
                }
                Some(0) => self.attribute_bytes.extend_from_slice(REPLACEMENT),
                Some(c) => self.attribute_bytes.push(c.to_ascii_lowercase()),
            },
            S::AfterAttributeName => match c {
                Some(c) if is_ws(c) => {}
                Some(b'/') => self.state = S::SelfClosingStartTag,
                Some(b'=') => self.state = S::BeforeAttributeValue,
                Some(b'>') => {
                    self.state = S::Data;
                    self.emit_tag(sink);
                }
                None => return true,
                Some(_) => {
                    self.start_attribute();
                    self.state = S::AttributeName;
                    return false;
                }
            },
            S::BeforeAttributeValue => match c {
                Some(c) if is_ws(c) => {}
                Some(b'"') => self.state = S::AttributeValueDoubleQuoted,
                Some(b'\'') => self.state = S::AttributeValueSingleQuoted,
                Some(b'>') => {
                    self.state = S::Data;
                    self.emit_tag(sink);
                }
                _ => {
                    self.state = S::AttributeValueUnquoted;
                    return false;
                }
            },
            S::AttributeValueDoubleQuoted | S::AttributeValueSingleQuoted => {
                let quote = if self.state == S::AttributeValueDoubleQuoted {
                    b'"'
                } else {
                    b'\''
                };
                match c {
                    Some(q) if q == quote => self.state = S::AfterAttributeValueQuoted,
                    Some(b'&') => {
                        self.return_state = self.state;
                        self.state = S::CharacterReference;
                    }
                    Some(0) => self.attribute_bytes.extend_from_slice(REPLACEMENT),
                    Some(c) => self.attribute_bytes.push(c),
                    None => return true,
                }
            }
            S::AttributeValueUnquoted => match c {
                Some(c) if is_ws(c) => self.state = S::BeforeAttributeName,
                Some(b'&') => {
                    self.return_state = S::AttributeValueUnquoted;
                    self.state = S::CharacterReference;
                }
                Some(b'>') => {
                    self.state = S::Data;
                    self.emit_tag(sink);
                }
                Some(0) => self.attribute_bytes.extend_from_slice(REPLACEMENT),
                Some(c) => self.attribute_bytes.push(c),
                None => return true,
            },
            S::AfterAttributeValueQuoted => match c {
                Some(c) if is_ws(c) => self.state = S::BeforeAttributeName,
                Some(b'/') => self.state = S::SelfClosingStartTag,
                Some(b'>') => {
                    self.state = S::Data;
                    self.emit_tag(sink);
                }
                None => return true,
                Some(_) => {
                    self.state = S::BeforeAttributeName;
                    return false;
                }
            },
            S::SelfClosingStartTag => match c {
                Some(b'>') => {
                    self.self_closing = true;
                    self.state = S::Data;
                    self.emit_tag(sink);
                }
                None => return true,
                Some(_) => {
                    self.state = S::BeforeAttributeName;
                    return false;
                }
            },
            S::BogusComment => match c {
                Some(b'>') => {
                    self.state = S::Data;
                    self.emit_comment(sink);
                }
                None => {
                    self.emit_comment(sink);
                    return true;
                }
                Some(0) => self.comment.extend_from_slice(REPLACEMENT),
                Some(c) => self.comment.push(c),
            },
            S::MarkupDeclarationOpen => return self.markup_declaration_open(c, sink),
            S::CommentStart => match c {
                Some(b'-') => self.state = S::CommentStartDash,
                Some(b'>') => {
                    self.state = S::Data;
                    self.emit_comment(sink);
                }
                _ => {
                    self.state = S::Comment;
                    return false;
                }
            },
            S::CommentStartDash => match c {
                Some(b'-') => self.state = S::CommentEnd,
                Some(b'>') => {
                    self.state = S::Data;
                    self.emit_comment(sink);
                }
                None => {
                    self.emit_comment(sink);
                    return true;
                }
                Some(_) => {
                    self.comment.push(b'-');
                    self.state = S::Comment;
                    return false;
                }
            },
            S::Comment => match c {
                Some(b'<') => {
                    self.comment.push(b'<');
                    self.state = S::CommentLessThanSign;
                }
                Some(b'-') => self.state = S::CommentEndDash,
                Some(0) => self.comment.extend_from_slice(REPLACEMENT),
                Some(c) => self.comment.push(c),
                None => {
                    self.emit_comment(sink);
                    return true;
                }
            },
            S::CommentLessThanSign => match c {
                Some(b'!') => {
                    self.comment.push(b'!');
                    self.state = S::CommentLessThanSignBang;
                }
                Some(b'<') => self.comment.push(b'<'),
                _ => {
                    self.state = S::Comment;
                    return false;
                }
            },
            S::CommentLessThanSignBang => {
                if c == Some(b'-') {
                    self.state = S::CommentLessThanSignBangDash;
                } else {
                    self.state = S::Comment;
                    return false;
                }
            }
            S::CommentLessThanSignBangDash => {
                if c == Some(b'-') {
                    self.state = S::CommentLessThanSignBangDashDash;
                } else {
                    self.state = S::CommentEndDash;
                    return false;
                }
            }
            S::CommentLessThanSignBangDashDash => {
                // `>`, the end, or a nested-comment error: all go on as the end.
                self.state = S::CommentEnd;
                return false;
            }
            S::CommentEndDash => match c {
                Some(b'-') => self.state = S::CommentEnd,
                None => {
                    self.emit_comment(sink);
                    return true;
                }
                Some(_) => {
                    self.comment.push(b'-');
                    self.state = S::Comment;
                    return false;
                }
            },
            S::CommentEnd => match c {
                Some(b'>') => {
                    self.state = S::Data;
                    self.emit_comment(sink);
                }
                Some(b'!') => self.state = S::CommentEndBang,
                Some(b'-') => self.comment.push(b'-'),
                None => {
                    self.emit_comment(sink);
                    return true;
                }
                Some(_) => {
                    self.comment.extend_from_slice(b"--");
                    self.state = S::Comment;
                    return false;
                }
            },
            S::CommentEndBang => match c {
                Some(b'-') => {
                    self.comment.extend_from_slice(b"--!");
                    self.state = S::CommentEndDash;
                }
                Some(b'>') => {
                    self.state = S::Data;
                    self.emit_comment(sink);
                }
                None => {
                    self.emit_comment(sink);
                    return true;
                }
                Some(_) => {
                    self.comment.extend_from_slice(b"--!");
                    self.state = S::Comment;
                    return false;
                }
            },
            S::Doctype => match c {
                Some(c) if is_ws(c) => self.state = S::BeforeDoctypeName,
                None => {
                    self.doctype = Doctype {
                        force_quirks: true,
                        ..Doctype::default()
                    };
                    self.emit_doctype(sink);
                    return true;
                }
                Some(_) => {
                    self.state = S::BeforeDoctypeName;
                    return false;
                }
            },
            S::BeforeDoctypeName => match c {
                Some(c) if is_ws(c) => {}
                Some(b'>') => {
                    self.doctype = Doctype {
                        force_quirks: true,
                        ..Doctype::default()
                    };
                    self.state = S::Data;
                    self.emit_doctype(sink);
                }
                None => {
                    self.doctype = Doctype {
                        force_quirks: true,
                        ..Doctype::default()
                    };
                    self.emit_doctype(sink);
                    return true;
                }
                Some(c) => {
                    let first = if c == 0 {
                        REPLACEMENT.to_vec()
                    } else {
                        vec![c.to_ascii_lowercase()]
                    };
                    self.doctype = Doctype {
                        name: Some(first),
                        ..Doctype::default()
                    };
                    self.state = S::DoctypeName;
                }
            },
            S::DoctypeName => match c {
                Some(c) if is_ws(c) => self.state = S::AfterDoctypeName,
                Some(b'>') => {
                    self.state = S::Data;
                    self.emit_doctype(sink);
                }
                None => return self.doctype_ends_early(sink),
                Some(c) => {
                    let name = self.doctype.name.get_or_insert_with(Vec::new);
                    if c == 0 {
                        name.extend_from_slice(REPLACEMENT);
                    } else {
                        name.push(c.to_ascii_lowercase());
                    }
                }
            },
            S::AfterDoctypeName => match c {
                Some(c) if is_ws(c) => {}
                Some(b'>') => {
                    self.state = S::Data;
                    self.emit_doctype(sink);
                }
                None => return self.doctype_ends_early(sink),
                Some(_) => {
                    self.temp.clear();
                    self.state = S::AfterDoctypeNameKeyword;
                    return false;
                }
            },
            S::AfterDoctypeNameKeyword => {
                let lower = c.map(|c| c.to_ascii_lowercase());
                let mut candidate = self.temp.clone();
                if let Some(l) = lower {
                    candidate.push(l);
                }
                let keyword = [&b"public"[..], b"system"]
                    .into_iter()
                    .find(|k| lower.is_some() && k.starts_with(&candidate));
                match keyword {
                    Some(k) if k.len() == candidate.len() => {
                        self.state = if k == b"public" {
                            S::AfterDoctypePublicKeyword
                        } else {
                            S::AfterDoctypeSystemKeyword
                        };
                    }
                    Some(_) => self.temp = candidate,
                    None => {
                        // Not a keyword: the bogus state ignores what was read.
                        self.doctype.force_quirks = true;
                        self.state = S::BogusDoctype;
                        return false;
                    }
                }
            }
            S::AfterDoctypePublicKeyword | S::AfterDoctypeSystemKeyword => {
                let public = self.state == S::AfterDoctypePublicKeyword;
                match c {
                    Some(c) if is_ws(c) => {
                        self.state = if public {
                            S::BeforeDoctypePublicIdentifier
                        } else {
                            S::BeforeDoctypeSystemIdentifier
                        };
                    }
                    Some(q @ (b'"' | b'\'')) => self.open_doctype_identifier(public, q),
                    Some(b'>') => {
                        self.doctype.force_quirks = true;
                        self.state = S::Data;
                        self.emit_doctype(sink);
                    }
                    None => return self.doctype_ends_early(sink),
                    Some(_) => {
                        self.doctype.force_quirks = true;
                        self.state = S::BogusDoctype;
                        return false;
                    }
                }
            }
            S::BeforeDoctypePublicIdentifier | S::BeforeDoctypeSystemIdentifier => {
                let public = self.state == S::BeforeDoctypePublicIdentifier;
                match c {
                    Some(c) if is_ws(c) => {}
                    Some(q @ (b'"' | b'\'')) => self.open_doctype_identifier(public, q),
                    Some(b'>') => {
                        self.doctype.force_quirks = true;
                        self.state = S::Data;
                        self.emit_doctype(sink);
                    }
                    None => return self.doctype_ends_early(sink),
                    Some(_) => {
                        self.doctype.force_quirks = true;
                        self.state = S::BogusDoctype;
                        return false;
                    }
                }
            }
            S::DoctypePublicIdentifierDoubleQuoted
            | S::DoctypePublicIdentifierSingleQuoted
            | S::DoctypeSystemIdentifierDoubleQuoted
            | S::DoctypeSystemIdentifierSingleQuoted => {
                let (public, quote) = match self.state {
                    S::DoctypePublicIdentifierDoubleQuoted => (true, b'"'),
                    S::DoctypePublicIdentifierSingleQuoted => (true, b'\''),
                    S::DoctypeSystemIdentifierDoubleQuoted => (false, b'"'),
                    _ => (false, b'\''),
                };
                match c {
                    Some(q) if q == quote => {
                        self.state = if public {
                            S::AfterDoctypePublicIdentifier
                        } else {
                            S::AfterDoctypeSystemIdentifier
                        };
                    }
                    Some(b'>') => {
                        self.doctype.force_quirks = true;
                        self.state = S::Data;
                        self.emit_doctype(sink);
                    }
                    None => return self.doctype_ends_early(sink),
                    Some(c) => {
                        let id = if public {
                            &mut self.doctype.public_id
                        } else {
                            &mut self.doctype.system_id
                        };
                        let id = id.get_or_insert_with(Vec::new);
                        if c == 0 {
                            id.extend_from_slice(REPLACEMENT);
                        } else {
                            id.push(c);
                        }
                    }
                }
            }
            S::AfterDoctypePublicIdentifier | S::BetweenDoctypePublicAndSystemIdentifiers => match c {
                Some(c) if is_ws(c) => self.state = S::BetweenDoctypePublicAndSystemIdentifiers,
                Some(b'>') => {
                    self.state = S::Data;
                    self.emit_doctype(sink);
                }
                Some(q @ (b'"' | b'\'')) => self.open_doctype_identifier(false, q),
                None => return self.doctype_ends_early(sink),
                Some(_) => {
                    self.doctype.force_quirks = true;
                    self.state = S::BogusDoctype;
                    return false;
                }
            },
            S::AfterDoctypeSystemIdentifier => match c {
                Some(c) if is_ws(c) => {}
                Some(b'>') => {
                    self.state = S::Data;
                    self.emit_doctype(sink);
                }
                None => return self.doctype_ends_early(sink),
                Some(_) => {
                    // A parse error, but not a quirky one.
                    self.state = S::BogusDoctype;
                    return false;
                }
            },
            S::BogusDoctype => match c {
                Some(b'>') => {
                    self.state = S::Data;
                    self.emit_doctype(sink);
                }
                None => {
                    self.emit_doctype(sink);
                    return true;
                }
                Some(_) => {}
            },
            S::CdataSection => match c {
                Some(b']') => self.state = S::CdataSectionBracket,
                Some(c) => self.text.push(c),
                None => return true,
            },
            S::CdataSectionBracket => {
                if c == Some(b']') {
                    self.state = S::CdataSectionEnd;
                } else {
                    self.text.push(b']');
                    self.state = S::CdataSection;
                    return false;
                }
            }
            S::CdataSectionEnd => match c {
                Some(b']') => self.text.push(b']'),
                Some(b'>') => self.state = S::Data,
                _ => {
                    self.text.extend_from_slice(b"]]");
                    self.state = S::CdataSection;
                    return false;
                }
            },
            S::CharacterReference => {
                self.temp.clear();
                self.temp.push(b'&');
                match c {
                    Some(c) if c.is_ascii_alphanumeric() => {
                        self.state = S::NamedCharacterReference;
                        return false;
                    }
                    Some(b'#') => {
                        self.temp.push(b'#');
                        self.state = S::NumericCharacterReference;
                    }
                    _ => {
                        self.flush_reference();
                        self.state = self.return_state;
                        return false;
                    }
                }
            }
            S::NamedCharacterReference => match c {
                Some(c) if c.is_ascii_alphanumeric() && self.temp.len() <= MAX_REFERENCE_NAME => self.temp.push(c),
                next => return self.named_reference(next),
            },
            S::AmbiguousAmpersand => match c {
                Some(c) if c.is_ascii_alphanumeric() => {
                    if self.in_attribute() {
                        self.attribute_bytes.push(c);
                    } else {
                        self.text.push(c);
                    }
                }
                _ => {
                    self.state = self.return_state;
                    return false;
                }
            },
            S::NumericCharacterReference => {
                self.reference_code = 0;
                match c {
                    Some(x @ (b'x' | b'X')) => {
                        self.temp.push(x);
                        self.state = S::HexadecimalCharacterReferenceStart;
                    }
                    _ => {
                        self.state = S::DecimalCharacterReferenceStart;
                        return false;
                    }
                }
            }
            S::HexadecimalCharacterReferenceStart | S::DecimalCharacterReferenceStart => {
                let hex = self.state == S::HexadecimalCharacterReferenceStart;
                match c {
                    Some(c) if (hex && c.is_ascii_hexdigit()) || (!hex && c.is_ascii_digit()) => {
                        self.state = if hex {
                            S::HexadecimalCharacterReference
                        } else {
                            S::DecimalCharacterReference
                        };
                    }
                    _ => {
                        self.flush_reference();
                        self.state = self.return_state;
                    }
                }
                return false;
            }
            S::HexadecimalCharacterReference | S::DecimalCharacterReference => {
                let radix = if self.state == S::HexadecimalCharacterReference {
                    16
                } else {
                    10
                };
                match c.and_then(|c| (c as char).to_digit(radix)) {
                    Some(digit) => {
                        // Saturates: anything past U+10FFFF is out of range alike.
                        self.reference_code = (self.reference_code * radix + digit).min(0x11_0000);
                    }
                    None if c == Some(b';') => self.state = S::NumericCharacterReferenceEnd,
                    None => {
                        self.state = S::NumericCharacterReferenceEnd;
                        return false;
                    }
                }
            }
            S::NumericCharacterReferenceEnd => {
                let decoded = numeric_reference(self.reference_code);
                self.temp.clear();
                let mut utf8 = [0; 4];
                self.temp.extend_from_slice(decoded.encode_utf8(&mut utf8).as_bytes());
                self.flush_reference();
                self.state = self.return_state;
                return false;
            }
        }
        true
    }

    fn open_doctype_identifier(&mut self, public: bool, quote: u8) {
        use State as S;
        if public {
            self.doctype.public_id = Some(Vec::new());
            self.state = if quote == b'"' {
                S::DoctypePublicIdentifierDoubleQuoted
            } else {
                S::DoctypePublicIdentifierSingleQuoted
            };
        } else {
            self.doctype.system_id = Some(Vec::new());
            self.state = if quote == b'"' {
                S::DoctypeSystemIdentifierDoubleQuoted
            } else {
                S::DoctypeSystemIdentifierSingleQuoted
            };
        }
    }

    /// The input ended inside a doctype: it is emitted, forced into quirks.
    fn doctype_ends_early(&mut self, sink: &mut impl TokenSink) -> bool {
        self.doctype.force_quirks = true;
        self.emit_doctype(sink);
        true
    }

    /// `<!` was read: a comment, a doctype, a CDATA section or a bogus
    /// comment, told apart by the next characters, collected in `temp`
    /// (the standard looks up to seven characters ahead; a push tokenizer
    /// reads them one at a time).
    fn markup_declaration_open(&mut self, c: Option<u8>, sink: &impl TokenSink) -> bool {
        use State as S;
        let Some(c) = c else {
            return self.bogus_from_temp();
        };
        self.temp.push(c);
        let read = self.temp.as_slice();
        if read == b"--" {
            self.temp.clear();
            self.comment.clear();
            self.state = S::CommentStart;
            return true;
        }
        if read.eq_ignore_ascii_case(b"doctype") {
            self.temp.clear();
            self.state = S::Doctype;
            return true;
        }
        if read == b"[CDATA[" {
            self.temp.clear();
            if sink.cdata_allowed() {
                self.state = S::CdataSection;
            } else {
                self.comment.clear();
                self.comment.extend_from_slice(b"[CDATA[");
                self.state = S::BogusComment;
            }
            return true;
        }
        let lower = read.to_ascii_lowercase();
        if b"--".starts_with(read) || b"doctype".starts_with(&lower) || b"[CDATA[".starts_with(read) {
            return true;
        }
        // Nothing was consumed after all: the characters read go to a bogus
        // comment, and the current one is read again there.
        self.temp.pop();
        self.bogus_from_temp()
    }

    /// Not a comment, doctype or CDATA section: what was read after `<!`
    /// starts a bogus comment, and the current character is read again there.
    fn bogus_from_temp(&mut self) -> bool {
        self.comment.clear();
        self.comment.extend_from_slice(&self.temp);
        self.temp.clear();
        self.state = State::BogusComment;
        false
    }

    /// The letters and digits after `&` are read (`next` follows them):
    /// decode the longest named reference they start with.
    fn named_reference(&mut self, next: Option<u8>) -> bool {
        let name = &self.temp[1..];
        let with_semicolon = if next == Some(b';') {
            let mut key = name.to_vec();
            key.push(b';');
            lookup(&key).map(|replacement| (name.len(), replacement))
        } else {
            None
        };
        let matched = with_semicolon.map(|(len, r)| (len, r, true)).or_else(|| {
            (1..=name.len())
                .rev()
                .find_map(|len| lookup(&name[..len]).map(|r| (len, r, false)))
        });
        let Some((len, replacement, semicolon)) = matched else {
            self.flush_reference();
            self.state = State::AmbiguousAmpersand;
            return false;
        };
        // In an attribute, `&copy=` and `&copyx` are left as written (so
        // that URLs with such parameters survive).
        let follower = if len < name.len() { Some(name[len]) } else { next };
        if self.in_attribute() && !semicolon && follower.is_some_and(|f| f == b'=' || f.is_ascii_alphanumeric()) {
            self.flush_reference();
            self.state = self.return_state;
            return false;
        }
        let rest = name[len..].to_vec();
        self.temp.clear();
        self.temp.extend_from_slice(replacement.as_bytes());
        self.temp.extend_from_slice(&rest);
        self.flush_reference();
        self.state = self.return_state;
        semicolon
    }
}

enum Target {
    Text,
    Attribute,
    Comment,
}

fn lookup(name: &[u8]) -> Option<&'static str> {
    NAMED
        .binary_search_by(|(entry, _)| entry.cmp(&name))
        .ok()
        .map(|i| NAMED[i].1)
}

/// What a numeric character reference stands for (13.2.5.80).
fn numeric_reference(code: u32) -> char {
    const C1: [(u32, u32); 27] = [
        (0x80, 0x20AC),
        (0x82, 0x201A),
        (0x83, 0x0192),
        (0x84, 0x201E),
        (0x85, 0x2026),
        (0x86, 0x2020),
        (0x87, 0x2021),
        (0x88, 0x02C6),
        (0x89, 0x2030),
        (0x8A, 0x0160),
        (0x8B, 0x2039),
        (0x8C, 0x0152),
        (0x8E, 0x017D),
        (0x91, 0x2018),
        (0x92, 0x2019),
        (0x93, 0x201C),
        (0x94, 0x201D),
        (0x95, 0x2022),
        (0x96, 0x2013),
        (0x97, 0x2014),
        (0x98, 0x02DC),
        (0x99, 0x2122),
        (0x9A, 0x0161),
        (0x9B, 0x203A),
        (0x9C, 0x0153),
        (0x9E, 0x017E),
        (0x9F, 0x0178),
    ];
    if code == 0 || code > 0x10_FFFF || (0xD800..=0xDFFF).contains(&code) {
        return '\u{FFFD}';
    }
    let code = C1.iter().find(|(from, _)| *from == code).map_or(code, |(_, to)| *to);
    char::from_u32(code).unwrap_or('\u{FFFD}')
}

#[cfg(test)]
mod html5lib_suite;

#[cfg(test)]
mod tests {
    use super::*;

    /// Tokens written back as a compact trace.
    #[derive(Default)]
    pub(super) struct Trace(pub String);

    impl TokenSink for Trace {
        fn start_tag(&mut self, tag: &Tag<'_>) -> Next {
            self.0.push('<');
            self.0.push_str(&String::from_utf8_lossy(tag.name));
            for (name, value) in tag.attributes() {
                self.0.push_str(&format!(
                    " {}={}",
                    String::from_utf8_lossy(name),
                    String::from_utf8_lossy(value)
                ));
            }
            if tag.self_closing {
                self.0.push('/');
            }
            self.0.push('>');
            Next::Data
        }

        fn end_tag(&mut self, tag: &Tag<'_>) {
            self.0.push_str(&format!("</{}>", String::from_utf8_lossy(tag.name)));
        }

        fn text(&mut self, text: &[u8]) {
            self.0.push_str(&format!("\"{}\"", String::from_utf8_lossy(text)));
        }

        fn comment(&mut self, text: &[u8]) {
            self.0.push_str(&format!("<!--{}-->", String::from_utf8_lossy(text)));
        }

        fn doctype(&mut self, doctype: &Doctype) {
            let name = doctype.name.as_deref().unwrap_or(b"");
            self.0.push_str(&format!("<!{}>", String::from_utf8_lossy(name)));
        }

        fn cdata_allowed(&self) -> bool {
            false
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

    #[test]
    fn tags_text_and_attributes() {
        assert_eq!(
            trace("<P Class=\"a b\" id='x' hidden data-v=1>hi <b>there</b></P>"),
            "<p class=a b id=x hidden= data-v=1>\"hi \"<b>\"there\"</b></p>"
        );
        assert_eq!(trace("<img src=\"a.png\"/>"), "<img src=a.png/>");
        // A duplicate attribute loses; `=` may start a name; no space is needed between attributes.
        assert_eq!(
            trace("<a href=1 href=2 =x title=\"t\"lang=en>"),
            "<a href=1 =x= title=t lang=en>"
        );
    }

    #[test]
    fn duplicates_among_many_attributes_lose_as_among_few() {
        // Past the indexed threshold: names repeated, first value wins, order kept.
        let names: Vec<String> = (0..40).map(|i| format!("a{}", i % 25)).collect();
        let tag: String = names.iter().enumerate().map(|(i, n)| format!(" {n}={i}")).collect();
        let expected: String = (0..25).map(|i| format!(" a{i}={i}")).collect();
        assert_eq!(
            trace(&format!("<p{tag}><i{tag}>")),
            format!("<p{expected}><i{expected}>")
        );
        // Past MAX_ATTRIBUTES, attributes are dropped, whatever the chunking.
        let many: String = (0..MAX_ATTRIBUTES + 10).map(|i| format!(" k{i}=v")).collect();
        let kept = trace_in_pieces(&format!("<p{many}>"), 7);
        assert_eq!(kept.matches("=v").count(), MAX_ATTRIBUTES);
        assert_eq!(kept, trace_in_pieces(&format!("<p{many}>"), 100_000));
        // The same name 5,000 times in one tag, then a small tag: one attribute each.
        let repeated = " x=1".repeat(5_000);
        assert_eq!(
            trace_in_pieces(&format!("<b{repeated}><u y=2 y=3>"), 4096),
            "<b x=1><u y=2>"
        );
    }

    #[test]
    fn comments_as_browsers_read_them() {
        assert_eq!(
            trace("<!-->a<!--->b<!-- x --!>c"),
            "<!---->\"a\"<!---->\"b\"<!-- x -->\"c\""
        );
        assert_eq!(
            trace("<!x>d<?php e ?>f</ g>h"),
            "<!--x-->\"d\"<!--?php e ?-->\"f\"<!-- g-->\"h\""
        );
    }

    #[test]
    fn character_references() {
        assert_eq!(trace("&rsquo;&#8217;&#x2019;’"), "\"’’’’\"");
        assert_eq!(trace("&notit; &amp &#128; &#0;"), "\"¬it; & € \u{FFFD}\"");
        assert_eq!(trace("<a href=\"?a=1&copy=2&copy;\">"), "<a href=?a=1&copy=2©>");
    }

    #[test]
    fn carriage_returns_become_line_feeds_across_chunks() {
        assert_eq!(trace("a\r\nb\rc\r"), "\"a\nb\nc\n\"");
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
            assert_eq!(trace.0, "<p>\"ok\"</p><p>", "pieces of {piece}");
        }
    }
}
