//! The html5lib tokenizer suite (tests/html5lib-tests/tokenizer, MIT), run
//! through our tokenizer: every case, from every initial state it names,
//! whole and one byte at a time. A case that does not pass must be listed,
//! with the reason it cannot matter to a fingerprint, in
//! tests/html5lib-tests/NOT-PASSING.md; the list and the failures must agree
//! exactly, so a fix or a regression shows up here.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{Map, Value, json};

use super::{Doctype, Next, State, Tag, TokenSink, Tokenizer};

const SUITE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/html5lib-tests");

/// Tokens as the suite writes them, adjacent characters coalesced.
#[derive(Default)]
struct Recorder {
    tokens: Vec<Value>,
}

impl Recorder {
    fn push_text(&mut self, text: &str) {
        if let Some(Value::Array(last)) = self.tokens.last_mut()
            && last[0] == "Character"
        {
            let joined = format!("{}{text}", last[1].as_str().unwrap_or(""));
            last[1] = Value::String(joined);
            return;
        }
        self.tokens.push(json!(["Character", text]));
    }
}

fn string(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("the tokenizer hands over UTF-8")
}

impl TokenSink for Recorder {
    fn start_tag(&mut self, tag: &Tag<'_>) -> Next {
        let mut attributes = Map::new();
        for (name, value) in tag.attributes() {
            attributes.insert(string(name), Value::String(string(value)));
        }
        let mut token = vec![json!("StartTag"), json!(string(tag.name)), Value::Object(attributes)];
        if tag.self_closing {
            token.push(json!(true));
        }
        self.tokens.push(Value::Array(token));
        Next::Data
    }

    fn end_tag(&mut self, tag: &Tag<'_>) {
        self.tokens.push(json!(["EndTag", string(tag.name)]));
    }

    fn text(&mut self, text: &[u8]) {
        self.push_text(&string(text));
    }

    fn comment(&mut self, text: &[u8]) {
        self.tokens.push(json!(["Comment", string(text)]));
    }

    fn doctype(&mut self, doctype: &Doctype) {
        let text = |v: &Option<Vec<u8>>| v.as_deref().map(string);
        self.tokens.push(json!([
            "DOCTYPE",
            text(&doctype.name),
            text(&doctype.public_id),
            text(&doctype.system_id),
            !doctype.force_quirks
        ]));
    }

    fn cdata_allowed(&self) -> bool {
        false
    }
}

fn state_named(name: &str) -> State {
    match name {
        "Data state" => State::Data,
        "PLAINTEXT state" => State::Plaintext,
        "RCDATA state" => State::RcData,
        "RAWTEXT state" => State::RawText,
        "Script data state" => State::ScriptData,
        "CDATA section state" => State::CdataSection,
        other => panic!("unknown initial state {other:?}"),
    }
}

/// `\uHHHH` escapes of a double-escaped case; None when one is a lone
/// surrogate, which no decoded input can hold.
fn unescape(text: &str) -> Option<String> {
    let mut out = String::new();
    let mut units: Vec<u16> = Vec::new();
    let mut rest = text;
    loop {
        match rest.find("\\u") {
            Some(at) if rest.len() >= at + 6 && rest[at + 2..at + 6].chars().all(|c| c.is_ascii_hexdigit()) => {
                if at > 0 {
                    out.push_str(&String::from_utf16(&units).ok()?);
                    units.clear();
                    out.push_str(&rest[..at]);
                }
                units.push(u16::from_str_radix(&rest[at + 2..at + 6], 16).ok()?);
                rest = &rest[at + 6..];
            }
            _ => {
                out.push_str(&String::from_utf16(&units).ok()?);
                out.push_str(rest);
                return Some(out);
            }
        }
    }
}

fn unescape_value(value: &Value) -> Option<Value> {
    Some(match value {
        Value::String(s) => Value::String(unescape(s)?),
        Value::Array(items) => Value::Array(items.iter().map(unescape_value).collect::<Option<_>>()?),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Some((unescape(k)?, unescape_value(v)?)))
                .collect::<Option<_>>()?,
        ),
        other => other.clone(),
    })
}

fn tokenize(input: &str, state: State, last_start_tag: Option<&str>, piece: usize) -> Vec<Value> {
    let mut tokenizer = Tokenizer::new(usize::MAX);
    tokenizer.start_in(state, last_start_tag);
    let mut recorder = Recorder::default();
    for chunk in input.as_bytes().chunks(piece.max(1)) {
        tokenizer.feed(chunk, &mut recorder);
    }
    tokenizer.finish(&mut recorder);
    recorder.tokens
}

/// `file#index (state)` of every case listed as not passing.
fn listed_as_not_passing() -> BTreeSet<String> {
    let text = std::fs::read_to_string(Path::new(SUITE).join("NOT-PASSING.md")).unwrap_or_default();
    text.lines()
        .filter_map(|line| line.strip_prefix("- `"))
        .filter_map(|line| line.split('`').next())
        .map(str::to_string)
        .collect()
}

#[test]
fn every_case_passes_or_is_listed_with_its_reason() {
    let mut files: Vec<_> = std::fs::read_dir(Path::new(SUITE).join("tokenizer"))
        .expect("the suite is in tests/html5lib-tests")
        .map(|e| e.expect("readable").path())
        .filter(|p| p.extension().is_some_and(|e| e == "test"))
        .collect();
    files.sort();
    let (mut cases, mut runs, mut passed_runs) = (0, 0, 0);
    let mut failing = BTreeSet::new();
    let mut details = Vec::new();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let suite: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        let tests = suite["tests"]
            .as_array()
            .or_else(|| suite["xmlViolationTests"].as_array())
            .unwrap();
        for (index, case) in tests.iter().enumerate() {
            cases += 1;
            let double_escaped = case["doubleEscaped"].as_bool() == Some(true);
            let input = case["input"].as_str().unwrap();
            let (input, expected) = if double_escaped {
                (unescape(input), unescape_value(&case["output"]))
            } else {
                (Some(input.to_string()), Some(case["output"].clone()))
            };
            let states: Vec<String> = match case["initialStates"].as_array() {
                Some(states) => states.iter().map(|s| s.as_str().unwrap().to_string()).collect(),
                None => vec!["Data state".to_string()],
            };
            for state in states {
                runs += 1;
                let id = format!("{name}#{index} ({state})");
                let (Some(input), Some(expected)) = (&input, &expected) else {
                    failing.insert(id);
                    continue;
                };
                let last = case["lastStartTag"].as_str();
                let whole = tokenize(input, state_named(&state), last, usize::MAX);
                let bytewise = tokenize(input, state_named(&state), last, 1);
                if Value::Array(whole.clone()) == *expected && whole == bytewise {
                    passed_runs += 1;
                } else {
                    details.push(format!(
                        "{id}: {}\n  input:    {input:?}\n  expected: {expected}\n  got:      {}\n  bytewise: {}",
                        case["description"],
                        Value::Array(whole),
                        Value::Array(bytewise)
                    ));
                    failing.insert(id);
                }
            }
        }
    }
    eprintln!("html5lib tokenizer suite: {cases} cases, {runs} runs (one per initial state), {passed_runs} passed");
    let listed = listed_as_not_passing();
    let unlisted: Vec<_> = failing.difference(&listed).collect();
    let fixed: Vec<_> = listed.difference(&failing).collect();
    assert!(
        unlisted.is_empty() && fixed.is_empty(),
        "failing but not listed: {unlisted:#?}\nlisted but passing: {fixed:#?}\n{}",
        details.join("\n")
    );
    assert_eq!(cases, 6810, "the whole suite was read");
}
