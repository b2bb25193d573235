//! `content_selector`: the part of CSS that can be decided while a page
//! streams, and the chain of open elements it is matched against.
//!
//! Supported: type and `*`, `#id`, `.class`, attribute selectors (`[a]`,
//! `=`, `~=`, `|=`, `^=`, `$=`, `*=`, with an `i` flag), `:first-child`,
//! `:nth-child(an+b)`, `:not(…)` of simple conditions, the descendant and
//! child combinators, and lists. Whatever needs to see later siblings or
//! the rest of the page (`:last-child`, `+`, `~`, `:has`) cannot be decided
//! when an element opens, and is refused with a message saying so.
//!
//! Everything an element can match on its own (its name, attributes and
//! position among its siblings) is worked out once, when it opens, as a
//! bit per compound selector. Each open element also remembers the nearest
//! open element at or above it matching each compound, so a descendant
//! combinator jumps straight to its candidate instead of walking the whole
//! chain: deep pages cost no more per element than shallow ones.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::tokenizer::{StartTag, TagName};

/// A parsed selector list.
#[derive(Debug)]
pub(super) struct Selector {
    compounds: Vec<Compound>,
    complexes: Vec<Complex>,
}

/// `div > p.lead`: the subject compound (`p.lead`) and the steps leftwards.
#[derive(Debug)]
struct Complex {
    subject: usize,
    ancestors: Vec<(Combinator, usize)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Combinator {
    Descendant,
    Child,
}

#[derive(Debug, Default)]
struct Compound {
    name: Option<TagName>,
    conditions: Vec<Condition>,
}

#[derive(Debug)]
enum Condition {
    Id(Vec<u8>),
    Class(Vec<u8>),
    Attribute { name: Vec<u8>, test: Option<AttributeTest> },
    NthChild { step: i64, offset: i64 },
    Not(Vec<Condition>),
}

#[derive(Debug)]
struct AttributeTest {
    operator: Operator,
    value: Vec<u8>,
    ignore_case: bool,
}

#[derive(Clone, Copy, Debug)]
enum Operator {
    Equals,
    Includes,
    DashMatch,
    Prefix,
    Suffix,
    Substring,
}

/// More compounds than fit the per-element bit set.
const MAX_COMPOUNDS: usize = 64;

impl Selector {
    pub(super) fn parse(source: &str) -> Result<Self, String> {
        let mut parser = Parser {
            bytes: source.as_bytes(),
            at: 0,
        };
        let mut selector = Selector {
            compounds: Vec::new(),
            complexes: Vec::new(),
        };
        loop {
            parser.skip_space();
            let complex = parser.complex(&mut selector.compounds)?;
            selector.complexes.push(complex);
            parser.skip_space();
            match parser.peek() {
                None => break,
                Some(b',') => parser.at += 1,
                Some(_) => return Err(parser.unexpected()),
            }
        }
        if selector.compounds.len() > MAX_COMPOUNDS {
            return Err(format!("more than {MAX_COMPOUNDS} compound selectors"));
        }
        Ok(selector)
    }

    /// The compounds an opening element matches on its own, as bits.
    pub(super) fn compound_mask(&self, tag: &StartTag<'_>, sibling_index: u32) -> u64 {
        let mut mask = 0;
        for (k, compound) in self.compounds.iter().enumerate() {
            if compound.matches(tag, sibling_index) {
                mask |= 1 << k;
            }
        }
        mask
    }

    /// Whether the element about to open (matching `mask`) is selected,
    /// given the elements open above it.
    pub(super) fn matches(&self, mask: u64, open: &OpenElements) -> bool {
        self.complexes
            .iter()
            .any(|complex| mask & (1 << complex.subject) != 0 && ancestors_match(&complex.ancestors, open, open.len()))
    }

    fn compound_count(&self) -> usize {
        self.compounds.len()
    }
}

/// Whether `steps` match, going up from the element whose parent chain is
/// `open[..below]`.
fn ancestors_match(steps: &[(Combinator, usize)], open: &OpenElements, below: usize) -> bool {
    let Some(&(combinator, compound)) = steps.first() else {
        return true;
    };
    if below == 0 {
        return false;
    }
    match combinator {
        Combinator::Child => {
            let parent = below - 1;
            open.chain[parent].mask & (1 << compound) != 0 && ancestors_match(&steps[1..], open, parent)
        }
        Combinator::Descendant => {
            // When only descendant steps remain, the nearest candidate leaves
            // the most ancestors for them: if it fails, every farther one
            // does too. Only a child step further up needs backtracking.
            let greedy = steps[1..].iter().all(|(c, _)| *c == Combinator::Descendant);
            let mut candidate = open.nearest(below - 1, compound);
            while let Some(at) = candidate {
                if ancestors_match(&steps[1..], open, at) {
                    return true;
                }
                if greedy {
                    return false;
                }
                candidate = at.checked_sub(1).and_then(|above| open.nearest(above, compound));
            }
            false
        }
    }
}

impl Compound {
    fn matches(&self, tag: &StartTag<'_>, sibling_index: u32) -> bool {
        self.name.is_none_or(|name| name == tag.name) && self.conditions.iter().all(|c| c.matches(tag, sibling_index))
    }
}

impl Condition {
    fn matches(&self, tag: &StartTag<'_>, sibling_index: u32) -> bool {
        match self {
            Condition::Id(id) => attribute(tag, b"id").is_some_and(|v| v == id.as_slice()),
            Condition::Class(class) => {
                attribute(tag, b"class").is_some_and(|v| v.split(|b| b.is_ascii_whitespace()).any(|c| c == class))
            }
            Condition::Attribute { name, test } => match (attribute(tag, name), test) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some(value), Some(test)) => test.matches(value),
            },
            Condition::NthChild { step, offset } => {
                let distance = i64::from(sibling_index) - offset;
                match *step {
                    0 => distance == 0,
                    step => distance % step == 0 && distance / step >= 0,
                }
            }
            Condition::Not(conditions) => !conditions.iter().all(|c| c.matches(tag, sibling_index)),
        }
    }
}

/// The value of an attribute; the first wins when one is written twice.
fn attribute<'a>(tag: &StartTag<'a>, name: &[u8]) -> Option<&'a [u8]> {
    tag.attributes()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, value)| value)
}

impl AttributeTest {
    fn matches(&self, value: &[u8]) -> bool {
        let expected = self.value.as_slice();
        let eq = |a: &[u8], b: &[u8]| {
            if self.ignore_case {
                a.eq_ignore_ascii_case(b)
            } else {
                a == b
            }
        };
        let n = expected.len();
        match self.operator {
            Operator::Equals => eq(value, expected),
            Operator::Includes => n > 0 && value.split(|b| b.is_ascii_whitespace()).any(|word| eq(word, expected)),
            Operator::DashMatch => {
                eq(value, expected) || (value.len() > n && value[n] == b'-' && eq(&value[..n], expected))
            }
            Operator::Prefix => n > 0 && value.len() >= n && eq(&value[..n], expected),
            Operator::Suffix => n > 0 && value.len() >= n && eq(&value[value.len() - n..], expected),
            Operator::Substring => n > 0 && value.windows(n).any(|window| eq(window, expected)),
        }
    }
}

struct Parser<'s> {
    bytes: &'s [u8],
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn skip_space(&mut self) -> bool {
        let start = self.at;
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.at += 1;
        }
        self.at > start
    }

    fn unexpected(&self) -> String {
        let rest = String::from_utf8_lossy(&self.bytes[self.at..]);
        match rest.chars().next() {
            None => "unexpected end".to_string(),
            Some(c @ ('+' | '~')) => {
                format!(
                    "the sibling combinator `{c}` is not supported (later siblings are not known while a page streams)"
                )
            }
            Some(c) => format!("unexpected `{c}` at character {}", self.at + 1),
        }
    }

    fn complex(&mut self, compounds: &mut Vec<Compound>) -> Result<Complex, String> {
        let mut chain = vec![self.compound(compounds)?];
        let mut combinators = Vec::new();
        loop {
            let spaced = self.skip_space();
            let combinator = match self.peek() {
                Some(b'>') => {
                    self.at += 1;
                    self.skip_space();
                    Combinator::Child
                }
                None | Some(b',') => break,
                Some(_) if spaced => Combinator::Descendant,
                Some(_) => return Err(self.unexpected()),
            };
            combinators.push(combinator);
            chain.push(self.compound(compounds)?);
        }
        let subject = chain.pop().expect("a complex selector has at least one compound");
        let ancestors = combinators.into_iter().rev().zip(chain.into_iter().rev()).collect();
        Ok(Complex { subject, ancestors })
    }

    /// Parses one compound, stores it and returns its index.
    fn compound(&mut self, compounds: &mut Vec<Compound>) -> Result<usize, String> {
        let mut compound = Compound::default();
        let start = self.at;
        if self.peek() == Some(b'*') {
            self.at += 1;
        } else if self.peek().is_some_and(starts_identifier) {
            compound.name = Some(TagName::of(&self.identifier()?));
        }
        while let Some(condition) = self.condition()? {
            compound.conditions.push(condition);
        }
        if self.at == start {
            return Err(self.unexpected());
        }
        compounds.push(compound);
        Ok(compounds.len() - 1)
    }

    fn condition(&mut self) -> Result<Option<Condition>, String> {
        let condition = match self.peek() {
            Some(b'#') => {
                self.at += 1;
                Condition::Id(self.identifier()?)
            }
            Some(b'.') => {
                self.at += 1;
                Condition::Class(self.identifier()?)
            }
            Some(b'[') => {
                self.at += 1;
                self.attribute()?
            }
            Some(b':') => {
                self.at += 1;
                self.pseudo_class()?
            }
            _ => return Ok(None),
        };
        Ok(Some(condition))
    }

    fn attribute(&mut self) -> Result<Condition, String> {
        self.skip_space();
        let name = self.identifier()?.to_ascii_lowercase();
        self.skip_space();
        let operator = match (self.peek(), self.bytes.get(self.at + 1)) {
            (Some(b']'), _) => {
                self.at += 1;
                return Ok(Condition::Attribute { name, test: None });
            }
            (Some(b'='), _) => Operator::Equals,
            (Some(b'~'), Some(b'=')) => Operator::Includes,
            (Some(b'|'), Some(b'=')) => Operator::DashMatch,
            (Some(b'^'), Some(b'=')) => Operator::Prefix,
            (Some(b'$'), Some(b'=')) => Operator::Suffix,
            (Some(b'*'), Some(b'=')) => Operator::Substring,
            _ => return Err(self.unexpected()),
        };
        self.at += if matches!(operator, Operator::Equals) { 1 } else { 2 };
        self.skip_space();
        let value = match self.peek() {
            Some(quote @ (b'"' | b'\'')) => self.string(quote)?,
            _ => self.identifier()?,
        };
        self.skip_space();
        let ignore_case = match self.peek() {
            Some(b'i' | b'I') => {
                self.at += 1;
                true
            }
            Some(b's' | b'S') => {
                self.at += 1;
                false
            }
            _ => false,
        };
        self.skip_space();
        if self.peek() != Some(b']') {
            return Err(self.unexpected());
        }
        self.at += 1;
        Ok(Condition::Attribute {
            name,
            test: Some(AttributeTest {
                operator,
                value,
                ignore_case,
            }),
        })
    }

    fn pseudo_class(&mut self) -> Result<Condition, String> {
        if self.peek() == Some(b':') {
            return Err("pseudo-elements (`::…`) select no element".to_string());
        }
        let name = String::from_utf8_lossy(&self.identifier()?).to_ascii_lowercase();
        match name.as_str() {
            "first-child" => Ok(Condition::NthChild { step: 0, offset: 1 }),
            "nth-child" => {
                let argument = self.parenthesized()?;
                let (step, offset) = parse_nth(&argument)
                    .ok_or_else(|| format!("`:nth-child({argument})` is not of the form an+b, odd or even"))?;
                Ok(Condition::NthChild { step, offset })
            }
            "not" => {
                let argument = self.parenthesized()?;
                let mut inner = Parser {
                    bytes: argument.as_bytes(),
                    at: 0,
                };
                inner.skip_space();
                let mut conditions = Vec::new();
                if inner.peek().is_some_and(starts_identifier) || inner.peek() == Some(b'*') {
                    return Err(format!(
                        "`:not({argument})`: only #id, .class, [attribute] and :nth-child go inside :not, not a type"
                    ));
                }
                while let Some(condition) = inner.condition()? {
                    conditions.push(condition);
                }
                inner.skip_space();
                if conditions.is_empty() || inner.peek().is_some() {
                    return Err(format!("`:not({argument})`: expected one compound of conditions"));
                }
                Ok(Condition::Not(conditions))
            }
            "last-child" | "only-child" | "nth-last-child" | "last-of-type" | "only-of-type" | "nth-last-of-type"
            | "has" => Err(format!(
                "`:{name}` needs the rest of the page and cannot be decided while it streams"
            )),
            _ => Err(format!("the pseudo-class `:{name}` is not supported")),
        }
    }

    fn parenthesized(&mut self) -> Result<String, String> {
        if self.peek() != Some(b'(') {
            return Err(self.unexpected());
        }
        let start = self.at + 1;
        let mut depth = 0;
        while let Some(byte) = self.peek() {
            self.at += 1;
            match byte {
                b'(' => depth += 1,
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(String::from_utf8_lossy(&self.bytes[start..self.at - 1]).into_owned());
                    }
                }
                _ => {}
            }
        }
        Err("unclosed `(`".to_string())
    }

    fn identifier(&mut self) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        while let Some(byte) = self.peek() {
            if byte == b'\\' {
                self.at += 1;
                self.escape(&mut out)?;
            } else if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_') || byte >= 0x80 {
                out.push(byte);
                self.at += 1;
            } else {
                break;
            }
        }
        if out.is_empty() {
            return Err(format!(
                "expected a name {}",
                self.unexpected().replace("unexpected", "at")
            ));
        }
        Ok(out)
    }

    /// After a backslash: up to six hex digits (and one optional space), or
    /// any other character taken literally.
    fn escape(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
        let hex_len = self.bytes[self.at..]
            .iter()
            .take(6)
            .take_while(|b| b.is_ascii_hexdigit())
            .count();
        if hex_len == 0 {
            let rest = std::str::from_utf8(&self.bytes[self.at..]).map_err(|e| e.to_string())?;
            let c = rest.chars().next().ok_or("a lone `\\` at the end")?;
            out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
            self.at += c.len_utf8();
            return Ok(());
        }
        let digits = std::str::from_utf8(&self.bytes[self.at..self.at + hex_len]).map_err(|e| e.to_string())?;
        let code = u32::from_str_radix(digits, 16).map_err(|e| e.to_string())?;
        let c = char::from_u32(code).filter(|&c| c != '\0').unwrap_or('\u{FFFD}');
        out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
        self.at += hex_len;
        if self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.at += 1;
        }
        Ok(())
    }

    fn string(&mut self, quote: u8) -> Result<Vec<u8>, String> {
        self.at += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err("unclosed string".to_string()),
                Some(b) if b == quote => {
                    self.at += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.at += 1;
                    self.escape(&mut out)?;
                }
                Some(b) => {
                    out.push(b);
                    self.at += 1;
                }
            }
        }
    }
}

fn starts_identifier(byte: u8) -> bool {
    byte.is_ascii_alphabetic() || matches!(byte, b'-' | b'_' | b'\\') || byte >= 0x80
}

/// `an+b`, `odd`, `even` → (a, b).
fn parse_nth(argument: &str) -> Option<(i64, i64)> {
    let text: String = argument.chars().filter(|c| !c.is_whitespace()).collect();
    let text = text.to_ascii_lowercase();
    match text.as_str() {
        "odd" => return Some((2, 1)),
        "even" => return Some((2, 0)),
        _ => {}
    }
    let Some((step, offset)) = text.split_once('n') else {
        return Some((0, text.parse().ok()?));
    };
    let step = match step {
        "" | "+" => 1,
        "-" => -1,
        number => number.parse().ok()?,
    };
    let offset = match offset {
        "" => 0,
        signed if signed.starts_with(['+', '-']) => signed.parse().ok()?,
        _ => return None,
    };
    Some((step, offset))
}

/// Hashes a tag name by one multiplication: they are already well mixed.
#[derive(Default)]
struct TagNameHasher(u64);

impl Hasher for TagNameHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x100_0000_01b3);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// The chain of open elements from the root to the current one, with what
/// selector matching needs of each.
pub(super) struct OpenElements {
    chain: Vec<Open>,
    top_level_children: u32,
    /// Per open element and compound: the nearest open element at or above
    /// it that matches the compound (`u32::MAX`: none).
    nearest: Vec<u32>,
    compounds: usize,
    /// How many elements of each name are open, so a stray end tag is
    /// dismissed without a walk down the chain.
    open_by_name: HashMap<TagName, u32, BuildHasherDefault<TagNameHasher>>,
}

struct Open {
    name: TagName,
    /// The compounds it matches on its own.
    mask: u64,
    /// Children seen so far, for `:nth-child`.
    children: u32,
}

impl OpenElements {
    pub(super) fn new(selector: Option<&Selector>) -> Self {
        OpenElements {
            chain: Vec::new(),
            top_level_children: 0,
            nearest: Vec::new(),
            compounds: selector.map_or(0, Selector::compound_count),
            open_by_name: HashMap::default(),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.chain.len()
    }

    /// Counts a new child of the current element and returns its 1-based
    /// position among its siblings.
    pub(super) fn next_child(&mut self) -> u32 {
        let count = match self.chain.last_mut() {
            Some(parent) => &mut parent.children,
            None => &mut self.top_level_children,
        };
        *count = count.saturating_add(1);
        *count
    }

    pub(super) fn push(&mut self, name: TagName, mask: u64) {
        let depth = self.chain.len();
        for compound in 0..self.compounds {
            let nearest = if mask & (1 << compound) != 0 {
                depth as u32
            } else if depth > 0 {
                self.nearest[(depth - 1) * self.compounds + compound]
            } else {
                u32::MAX
            };
            self.nearest.push(nearest);
        }
        self.chain.push(Open {
            name,
            mask,
            children: 0,
        });
        *self.open_by_name.entry(name).or_insert(0) += 1;
    }

    /// Closes the nearest open element named `name` and everything opened
    /// inside it; returns the depth it had, or `None` when none is open
    /// (a stray end tag, ignored).
    pub(super) fn close(&mut self, name: TagName) -> Option<usize> {
        if self.open_by_name.get(&name).copied().unwrap_or(0) == 0 {
            return None;
        }
        while let Some(closed) = self.chain.pop() {
            if let Some(count) = self.open_by_name.get_mut(&closed.name) {
                *count -= 1;
            }
            if closed.name == name {
                self.nearest.truncate(self.chain.len() * self.compounds);
                return Some(self.chain.len());
            }
        }
        self.nearest.clear();
        None
    }

    fn nearest(&self, at: usize, compound: usize) -> Option<usize> {
        let nearest = self.nearest[at * self.compounds + compound];
        (nearest != u32::MAX).then_some(nearest as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tokenizer::{Sink, Tokenizer};
    use super::*;

    /// The text of the selected elements, as a list of what was selected
    /// (each selected element's tag name as written).
    struct Selected<'s> {
        selector: &'s Selector,
        open: OpenElements,
        out: Vec<String>,
    }

    impl Sink for Selected<'_> {
        fn start_tag(&mut self, tag: &StartTag<'_>) {
            let index = self.open.next_child();
            let mask = self.selector.compound_mask(tag, index);
            if self.selector.matches(mask, &self.open) {
                let id = tag
                    .attributes()
                    .find(|(n, _)| *n == b"id")
                    .map(|(_, v)| v)
                    .unwrap_or(b"");
                self.out.push(String::from_utf8_lossy(id).into_owned());
            }
            if !tag.self_closing {
                self.open.push(tag.name, mask);
            }
        }

        fn end_tag(&mut self, name: TagName) {
            self.open.close(name);
        }

        fn text(&mut self, _: &[u8]) {}
    }

    /// The ids of the elements `selector` selects in `html`.
    fn select(selector: &str, html: &str) -> Vec<String> {
        let selector = Selector::parse(selector).unwrap_or_else(|e| panic!("{selector}: {e}"));
        let mut sink = Selected {
            open: OpenElements::new(Some(&selector)),
            selector: &selector,
            out: Vec::new(),
        };
        let mut tokenizer = Tokenizer::new(1 << 20);
        tokenizer.feed(html.as_bytes(), &mut sink);
        tokenizer.finish(&mut sink);
        sink.out
    }

    const PAGE: &str = r#"<main id=m><article id=a1 class="story lead" data-kind="news-item">
        <p id=p1>one</p><p id=p2 lang=en-GB>two</p><div id=d1><p id=p3>three</p></div>
      </article><ARTICLE id=a2 class=Story></ARTICLE></main><p id=p4>out</p>"#;

    #[test]
    fn simple_selectors() {
        assert_eq!(select("article", PAGE), ["a1", "a2"]);
        assert_eq!(select("#p2", PAGE), ["p2"]);
        assert_eq!(select(".story", PAGE), ["a1"]);
        assert_eq!(select("article.story.lead", PAGE), ["a1"]);
        assert_eq!(select("[data-kind]", PAGE), ["a1"]);
        assert_eq!(select("[data-kind^=news]", PAGE), ["a1"]);
        assert_eq!(select("[data-kind$='item']", PAGE), ["a1"]);
        assert_eq!(select("[data-kind*=\"s-i\"]", PAGE), ["a1"]);
        assert_eq!(select("[class~=lead]", PAGE), ["a1"]);
        assert_eq!(select("[lang|=en]", PAGE), ["p2"]);
        assert_eq!(select("[class=story i]", PAGE), ["a2"]);
        assert_eq!(select("*", "<b id=x></b>"), ["x"]);
    }

    #[test]
    fn combinators_and_lists() {
        assert_eq!(select("article p", PAGE), ["p1", "p2", "p3"]);
        assert_eq!(select("article > p", PAGE), ["p1", "p2"]);
        assert_eq!(select("main > article > div > p", PAGE), ["p3"]);
        assert_eq!(select("main p", PAGE), ["p1", "p2", "p3"]);
        assert_eq!(select("#d1 p, #p4", PAGE), ["p3", "p4"]);
        assert_eq!(select("div > article p", PAGE), Vec::<String>::new());
    }

    #[test]
    fn pseudo_classes() {
        assert_eq!(select("p:first-child", PAGE), ["p1", "p3"]);
        assert_eq!(select("article > :nth-child(2)", PAGE), ["p2"]);
        assert_eq!(select("article > :nth-child(odd)", PAGE), ["p1", "d1"]);
        assert_eq!(select("article > :nth-child(-n+2)", PAGE), ["p1", "p2"]);
        assert_eq!(select("p:not(#p1):not([lang])", PAGE), ["p3", "p4"]);
    }

    #[test]
    fn descendant_search_skips_to_candidates_in_deep_pages() {
        let html = format!("<section id=s>{}<p id=deep></p>", "<div>".repeat(100_000));
        assert_eq!(select("section p", &html), ["deep"]);
        let many = format!("<section>{}{}", "<div>".repeat(10_000), "<p></p>".repeat(10_000));
        assert_eq!(select("section p", &many).len(), 10_000);
    }

    #[test]
    fn what_cannot_be_decided_while_streaming_is_refused() {
        for (selector, says) in [
            ("h1 + p", "sibling combinator `+`"),
            ("h1 ~ p", "sibling combinator `~`"),
            ("p:last-child", "cannot be decided"),
            ("div:has(p)", "cannot be decided"),
            ("p:hover", "`:hover` is not supported"),
            ("p::before", "pseudo-elements"),
            ("", "unexpected end"),
            ("div >", "unexpected end"),
            ("[x", "unexpected end"),
            ("a,", "unexpected end"),
            ("p:nth-child(x)", "an+b"),
            ("p:not(div)", "not a type"),
        ] {
            let error = Selector::parse(selector).unwrap_err();
            assert!(error.contains(says), "{selector:?}: {error}");
        }
    }

    #[test]
    fn escapes_and_case() {
        assert_eq!(select("#a\\31", "<b id=a1></b>"), ["a1"]);
        assert_eq!(select("DIV", "<div id=x></div>"), ["x"]);
        assert_eq!(select(".A", "<div id=x class=a></div>"), Vec::<String>::new());
    }

    #[test]
    fn nth_arguments() {
        assert_eq!(parse_nth("2n+1"), Some((2, 1)));
        assert_eq!(parse_nth(" -n + 3 "), Some((-1, 3)));
        assert_eq!(parse_nth("n"), Some((1, 0)));
        assert_eq!(parse_nth("+5"), Some((0, 5)));
        assert_eq!(parse_nth("even"), Some((2, 0)));
        assert_eq!(parse_nth("2n1"), None);
    }
}
