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
//! position among its siblings) is worked out once, when it is inserted, as
//! a bit per compound selector. The stack of open elements
//! ([`OpenElements`]) remembers, per element and bit, the nearest element at
//! or above it with that bit, so a descendant combinator jumps straight to
//! its candidate instead of walking the whole chain: deep pages cost no more
//! per element than shallow ones. Ancestors are followed by parent links, so
//! an element the tree builder put before a table (foster parenting) matches
//! against its real ancestors.

use super::names::{Name, Ns};
use super::tree::{NewElement, OpenElements};

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
    name: Option<Name>,
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

    /// The compounds an element matches on its own, as bits.
    pub(super) fn compound_mask(&self, element: &NewElement<'_>, sibling_index: u32) -> u64 {
        let mut mask = 0;
        for (k, compound) in self.compounds.iter().enumerate() {
            if compound.matches(element, sibling_index) {
                mask |= 1 << k;
            }
        }
        mask
    }

    /// Whether the element being inserted into `parent` (matching `mask`)
    /// is selected. `offset`: where this selector's bits start in the masks
    /// kept by `open`.
    pub(super) fn matches<T>(&self, mask: u64, open: &OpenElements<T>, parent: Option<usize>, offset: usize) -> bool {
        self.complexes.iter().any(|complex| {
            mask & (1 << (offset + complex.subject)) != 0 && ancestors_match(&complex.ancestors, open, parent, offset)
        })
    }

    pub(super) fn compound_count(&self) -> usize {
        self.compounds.len()
    }
}

/// Whether `steps` match, going up from `parent` (the element the subject
/// was inserted into).
fn ancestors_match<T>(
    steps: &[(Combinator, usize)],
    open: &OpenElements<T>,
    parent: Option<usize>,
    offset: usize,
) -> bool {
    let Some(&(combinator, compound)) = steps.first() else {
        return true;
    };
    let Some(parent) = parent else {
        return false;
    };
    let bit = offset + compound;
    match combinator {
        Combinator::Child => {
            let entry = open.get(parent);
            entry.mask & (1 << bit) != 0 && ancestors_match(&steps[1..], open, entry.parent, offset)
        }
        Combinator::Descendant => {
            // When only descendant steps remain, the nearest candidate leaves
            // the most ancestors for them: if it fails, every farther one
            // does too. Only a child step further up needs backtracking.
            let greedy = steps[1..].iter().all(|(c, _)| *c == Combinator::Descendant);
            let mut candidate = open.nearest(parent, bit);
            while let Some(at) = candidate {
                let above = open.get(at).parent;
                if ancestors_match(&steps[1..], open, above, offset) {
                    return true;
                }
                if greedy {
                    return false;
                }
                candidate = above.and_then(|above| open.nearest(above, bit));
            }
            false
        }
    }
}

impl Compound {
    fn matches(&self, element: &NewElement<'_>, sibling_index: u32) -> bool {
        // Type selectors name HTML elements, as in an HTML document's CSS.
        self.name
            .as_ref()
            .is_none_or(|name| element.ns == Ns::Html && name == element.name)
            && self.conditions.iter().all(|c| c.matches(element, sibling_index))
    }
}

impl Condition {
    fn matches(&self, element: &NewElement<'_>, sibling_index: u32) -> bool {
        let attribute = |name: &[u8]| element.attrs.get(name);
        match self {
            Condition::Id(id) => attribute(b"id").is_some_and(|v| v == id.as_slice()),
            Condition::Class(class) => {
                attribute(b"class").is_some_and(|v| v.split(|b| b.is_ascii_whitespace()).any(|c| c == class))
            }
            Condition::Attribute { name, test } => match (attribute(name), test) {
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
            Condition::Not(conditions) => !conditions.iter().all(|c| c.matches(element, sibling_index)),
        }
    }
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
            compound.name = Some(Name::of(&self.identifier()?));
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

#[cfg(test)]
mod tests {
    use super::super::tokenizer::Tokenizer;
    use super::super::tree::{Entry, Place, TreeBuilder, TreeSink};
    use super::*;

    /// Records the ids of the elements a selector selects.
    struct Selected<'s> {
        selector: &'s Selector,
        out: Vec<String>,
    }

    impl TreeSink for Selected<'_> {
        type Data = ();

        fn mask(&mut self, element: &NewElement<'_>, sibling_index: u32) -> u64 {
            self.selector.compound_mask(element, sibling_index)
        }

        fn insert(&mut self, open: &mut OpenElements<()>, place: Place, element: &NewElement<'_>, mask: u64) {
            if self.selector.matches(mask, open, place.parent, 0) {
                let id = element.attrs.get(b"id").unwrap_or(b"");
                self.out.push(String::from_utf8_lossy(id).into_owned());
            }
        }

        fn text(&mut self, _: &OpenElements<()>, _: Place, _: &[u8]) {}
        fn close(&mut self, _: &Entry<()>, _: bool) {}
        fn add_attributes(&mut self, _: &mut Entry<()>, _: super::super::tree::Attrs<'_>) {}
        fn adopt(&mut self, _: &mut Entry<()>, _: &Entry<()>) {}
    }

    /// The ids of the elements `selector` selects in `html`.
    fn select(selector: &str, html: &str) -> Vec<String> {
        let selector = Selector::parse(selector).unwrap_or_else(|e| panic!("{selector}: {e}"));
        let sink = Selected {
            selector: &selector,
            out: Vec::new(),
        };
        let mut builder = TreeBuilder::new(sink, selector.compound_count());
        let mut tokenizer = Tokenizer::new(1 << 20);
        tokenizer.feed(html.as_bytes(), &mut builder);
        tokenizer.finish(&mut builder);
        builder.finish();
        builder.sink.out
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
        assert_eq!(select("b", "<b id=x></b>"), ["x"]);
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
    fn ancestors_are_the_tree_builders() {
        // An implied end tag closes the first item; a table's stray text
        // goes before it, outside the cell.
        assert_eq!(select("li li", "<ul><li id=a>x<li id=b>y</ul>"), Vec::<String>::new());
        assert_eq!(
            select("td b", "<table><tr><td><b id=in>x</b></td></tr><b id=out>y</b></table>"),
            ["in"]
        );
        // `</article>` inside a cell is ignored: what follows stays in the article.
        assert_eq!(
            select(
                "article p",
                "<article><table><tr><td></article><p id=still>x</p></td></tr></table></article>"
            ),
            ["still"]
        );
    }

    #[test]
    fn descendant_search_skips_to_candidates_in_deep_pages() {
        let html = format!("<section id=s>{}<p id=deep></p>", "<div>".repeat(4000));
        assert_eq!(select("section p", &html), ["deep"]);
        let many = format!("<section>{}{}", "<div>".repeat(4000), "<span></span>".repeat(10_000));
        assert_eq!(select("section span", &many).len(), 10_000);
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
