//! The house's shape, so it stays straight: `src/`'s top-level modules
//! import each other one way only, the pure cores reach nothing that does
//! I/O, and the store's seam names no database driver (README,
//! "Layout"; `src/lib.rs` has the same map).
//!
//! Read from the source itself: an arrow A -> B is a `crate::B` path (or
//! `super::`, or a child module named in a `use`) written in a file of A,
//! outside comments, strings and `#[cfg(test)]` code, which may reach
//! anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Layers, lowest first: a module may import its own layer's modules and
/// those below, never one above (and the arrows within a layer must not
/// close a circle either).
const LAYERS: &[&[&str]] = &[
    // Small value types everything may use.
    &["clock", "origin", "country"],
    // Plain data, its parser and validator. It parses `content_selector` and
    // the block-page CSV with the fingerprint core's own parsers, which sit
    // below it in everything but name: see CONFIG_MAY_REACH.
    &["fingerprint"],
    &["config"],
    &["verdict"],
    &["probe", "store"],
    &["state", "discover"],
    &["vantage", "alert"],
    &["route"],
    &["http"],
    &["cmd"],
];

/// What `config` may import: it holds every feature's config types, and no
/// feature module.
const CONFIG_MAY_REACH: &[&str] = &["clock", "origin", "country", "fingerprint"];

/// Crates that do I/O: a pure core must not reach code that names one.
const IO_CRATES: &[&str] = &[
    "tokio",
    "tokio_util",
    "reqwest",
    "hyper",
    "hyper_util",
    "axum",
    "rusqlite",
    "sqlx",
    "tokio_postgres",
    "postgres",
    "deadpool_postgres",
    "sd_notify",
];

/// Database drivers: the store's trait module names none of them.
const BACKEND_CRATES: &[&str] = &[
    "rusqlite",
    "sqlx",
    "tokio_postgres",
    "postgres",
    "deadpool_postgres",
    "deadpool",
];

const MAX_TOP_LEVEL: usize = 16;

/// One source file: its module path (`["state", "snapshot"]`) and its code
/// with comments, string contents and `#[cfg(test)]` items removed.
struct File {
    path: PathBuf,
    module: Vec<String>,
    code: String,
}

struct Tree {
    files: Vec<File>,
}

impl Tree {
    fn read(src: &Path) -> Tree {
        let mut files = Vec::new();
        let mut excluded = BTreeSet::new();
        collect(src, src, &mut files, &mut excluded);
        files.retain(|f: &File| !excluded.contains(&f.path));
        Tree { files }
    }

    fn top_level(&self) -> BTreeSet<String> {
        self.files.iter().filter_map(|f| f.module.first().cloned()).collect()
    }

    /// The file that defines module `path`, if any.
    fn file_of(&self, path: &[String]) -> Option<usize> {
        self.files.iter().position(|f| f.module == path)
    }

    /// Module paths each file names: `crate::a::b`, `super::x`, `self::x`,
    /// and in a `use`, a child module by its bare name.
    fn named_paths(&self, file: &File) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        for path in paths_in(&file.code) {
            let mut segments: Vec<String> = path.split("::").map(str::to_string).collect();
            let absolute = match segments.first().map(String::as_str) {
                Some("crate") => {
                    segments.remove(0);
                    segments
                }
                Some("super") | Some("self") => {
                    let mut base = file.module.clone();
                    while let Some(first) = segments.first() {
                        match first.as_str() {
                            "super" => {
                                base.pop();
                            }
                            "self" => {}
                            _ => break,
                        }
                        segments.remove(0);
                    }
                    base.extend(segments);
                    base
                }
                _ => {
                    // A bare first segment is a child module when one exists.
                    let mut child = file.module.clone();
                    child.extend(segments);
                    if self.file_of(&child[..file.module.len() + 1]).is_none() {
                        continue;
                    }
                    child
                }
            };
            if !absolute.is_empty() {
                out.push(absolute);
            }
        }
        out
    }

    /// Files each file depends on: the most specific file of every path it
    /// names (an item's path ends in its module's file).
    fn file_edges(&self) -> Vec<BTreeSet<usize>> {
        self.files
            .iter()
            .enumerate()
            .map(|(index, file)| {
                self.named_paths(file)
                    .iter()
                    .filter_map(|path| (1..=path.len()).rev().find_map(|n| self.file_of(&path[..n])))
                    .filter(|&target| target != index)
                    .collect()
            })
            .collect()
    }

    /// Top-level arrows, each with one file that makes it.
    fn module_edges(&self) -> BTreeMap<String, BTreeMap<String, PathBuf>> {
        let top = self.top_level();
        let mut edges: BTreeMap<String, BTreeMap<String, PathBuf>> =
            top.iter().map(|m| (m.clone(), BTreeMap::new())).collect();
        for file in &self.files {
            let Some(from) = file.module.first() else { continue };
            for path in self.named_paths(file) {
                let to = &path[0];
                if to != from && top.contains(to) {
                    edges
                        .get_mut(from)
                        .unwrap()
                        .entry(to.clone())
                        .or_insert_with(|| file.path.clone());
                }
            }
        }
        edges
    }

    fn uses_crate(&self, file: &File, crates: &[&str]) -> Option<&'static str> {
        crates
            .iter()
            .find(|name| {
                file.code.match_indices(&format!("{name}::")).any(|(at, _)| {
                    let before = file.code[..at].chars().next_back();
                    !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
                })
            })
            .map(|name| {
                let name: &'static str = IO_CRATES
                    .iter()
                    .chain(BACKEND_CRATES)
                    .find(|c| *c == name)
                    .expect("from the lists");
                name
            })
    }
}

fn collect(src: &Path, dir: &Path, files: &mut Vec<File>, excluded: &mut BTreeSet<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect(src, &path, files, excluded);
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let relative = path.strip_prefix(src).unwrap();
        let mut module: Vec<String> = relative
            .with_extension("")
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if module.last().is_some_and(|m| m == "mod") {
            module.pop();
        }
        if module == ["lib"] || module == ["main"] {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let (code, test_modules) = without_tests(&strip(&text));
        // `#[cfg(test)] mod name;` files are test code too.
        let folder = if path.file_name().is_some_and(|n| n == "mod.rs") {
            path.parent().unwrap().to_path_buf()
        } else {
            path.with_extension("")
        };
        for name in test_modules {
            excluded.insert(folder.join(format!("{name}.rs")));
            excluded.insert(folder.join(&name).join("mod.rs"));
        }
        files.push(File { path, module, code });
    }
}

/// The code with comments removed and string and character literals
/// emptied, so only real paths remain.
fn strip(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while at < bytes.len() {
        let rest = &text[at..];
        if rest.starts_with("//") {
            at += rest.find('\n').unwrap_or(rest.len());
        } else if rest.starts_with("/*") {
            let mut depth = 0;
            while at < bytes.len() {
                if text[at..].starts_with("/*") {
                    depth += 1;
                    at += 2;
                } else if text[at..].starts_with("*/") {
                    depth -= 1;
                    at += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    at += 1;
                }
            }
        } else if let Some(hashes) = raw_string_start(rest) {
            let close = format!("\"{}", "#".repeat(hashes));
            let body = at + 2 + hashes;
            at = text[body..]
                .find(&close)
                .map_or(bytes.len(), |end| body + end + close.len());
            out.push_str("\"\"");
        } else if bytes[at] == b'"' {
            at += 1;
            while at < bytes.len() && bytes[at] != b'"' {
                at += if bytes[at] == b'\\' { 2 } else { 1 };
            }
            at += 1;
            out.push_str("\"\"");
        } else if bytes[at] == b'\'' && char_literal_len(rest).is_some() {
            at += char_literal_len(rest).unwrap();
            out.push_str("' '");
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            at += c.len_utf8();
        }
    }
    out
}

/// `r"`, `r#"`, `br##"`...: the number of hashes.
fn raw_string_start(rest: &str) -> Option<usize> {
    let rest = rest.strip_prefix('b').unwrap_or(rest);
    let rest = rest.strip_prefix('r')?;
    let hashes = rest.bytes().take_while(|&b| b == b'#').count();
    rest[hashes..].starts_with('"').then_some(hashes)
}

/// The length of a character literal starting here (`'a'`, `'\n'`,
/// `'\u{1F600}'`), or None for a lifetime.
fn char_literal_len(rest: &str) -> Option<usize> {
    let mut chars = rest.char_indices().skip(1);
    let (_, first) = chars.next()?;
    if first == '\\' {
        let close = rest[2..].find('\'')?;
        return Some(2 + close + 1);
    }
    let (at, next) = chars.next()?;
    (next == '\'').then_some(at + 1)
}

/// The code without `#[cfg(test)]` items (a `mod x { ... }` block, a
/// `mod x;` declaration, or any other item up to its end), and the names of
/// the test modules declared by file.
fn without_tests(code: &str) -> (String, Vec<String>) {
    let mut out = String::with_capacity(code.len());
    let mut files = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let item = &rest[at + "#[cfg(test)]".len()..];
        let trimmed = item.trim_start();
        let declared = trimmed
            .strip_prefix("pub ")
            .unwrap_or(trimmed)
            .strip_prefix("mod ")
            .map(|m| {
                m.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .next()
                    .unwrap_or("")
            });
        // The item ends at its first `;` outside braces, or its outer `}`.
        let mut depth = 0usize;
        let mut end = item.len();
        for (i, c) in item.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                ';' if depth == 0 => {
                    if let Some(name) = declared {
                        files.push(name.to_string());
                    }
                    end = i + 1;
                    break;
                }
                _ => {}
            }
        }
        rest = &item[end..];
    }
    out.push_str(rest);
    (out, files)
}

/// Every path written in the code (`a::b::c`), `use` groups expanded one
/// level deep: `use crate::{a, b::c}` gives `crate::a` and `crate::b::c`.
/// Paths whose first segment is not lowercase (`Self::`, `Outcome::Ok`)
/// name no module and are left out.
fn paths_in(code: &str) -> Vec<String> {
    let bytes = code.as_bytes();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let starts_ident = |at: usize| at < bytes.len() && (bytes[at].is_ascii_alphabetic() || bytes[at] == b'_');
    // The path starting at `at` and where it ends (before any `::{`).
    let path_at = |mut at: usize| {
        let start = at;
        loop {
            while at < bytes.len() && is_ident(bytes[at]) {
                at += 1;
            }
            if code[at..].starts_with("::") && starts_ident(at + 2) {
                at += 2;
                continue;
            }
            return (&code[start..at], at);
        }
    };
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let follows_path = at > 0 && (is_ident(bytes[at - 1]) || bytes[at - 1] == b':');
        if !starts_ident(at) || follows_path {
            at += 1;
            continue;
        }
        let (path, end) = path_at(at);
        at = end;
        if code[end..].starts_with("::{") {
            let open = end + 2;
            let mut depth = 0;
            let mut close = code.len();
            for (i, c) in code[open..].char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            close = open + i;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            // Each member's own path, from where it starts after `{` or `,`.
            let mut member_starts = vec![open + 1];
            let mut depth = 0;
            for (i, c) in code[open + 1..close].char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => member_starts.push(open + 2 + i),
                    _ => {}
                }
            }
            for start in member_starts {
                let skip = code[start..close].len() - code[start..close].trim_start().len();
                if starts_ident(start + skip) {
                    let (inner, _) = path_at(start + skip);
                    if inner != "self" {
                        out.push(format!("{path}::{inner}"));
                    }
                }
            }
            out.push(path.to_string());
            at = close + 1;
        } else if path.contains("::") {
            out.push(path.to_string());
        }
    }
    out.retain(|p| p.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b == b'_'));
    out
}

fn tree() -> Tree {
    Tree::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"))
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// The modules `from` reaches, directly or through others.
fn reach(edges: &BTreeMap<String, BTreeMap<String, PathBuf>>, from: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![from.to_string()];
    while let Some(module) = todo.pop() {
        for to in edges[&module].keys() {
            if seen.insert(to.clone()) {
                todo.push(to.clone());
            }
        }
    }
    seen
}

#[test]
fn top_level_modules_are_few_and_each_has_a_layer() {
    let top = tree().top_level();
    assert!(
        top.len() <= MAX_TOP_LEVEL,
        "{} top-level modules (at most {MAX_TOP_LEVEL}): {top:?}",
        top.len()
    );
    let unplaced: Vec<&String> = top.iter().filter(|m| layer_of(m).is_none()).collect();
    assert!(
        unplaced.is_empty(),
        "top-level modules in no layer of tests/layout.rs (place them, and in src/lib.rs): {unplaced:?}"
    );
}

#[test]
fn no_module_imports_one_above_it_and_there_is_no_circle() {
    let tree = tree();
    let edges = tree.module_edges();
    let mut upward = Vec::new();
    for (from, targets) in &edges {
        for (to, file) in targets {
            if let (Some(a), Some(b)) = (layer_of(from), layer_of(to))
                && b > a
            {
                upward.push(format!("{from} -> {to} ({})", file.display()));
            }
        }
    }
    assert!(upward.is_empty(), "imports that point up the layers: {upward:#?}");
    for module in edges.keys() {
        assert!(
            !reach(&edges, module).contains(module),
            "{module} reaches itself: a circle through {:?}",
            reach(&edges, module)
                .into_iter()
                .filter(|other| reach(&edges, other).contains(module))
                .collect::<Vec<_>>()
        );
    }
}

#[test]
fn config_imports_no_feature_module() {
    let edges = tree().module_edges();
    let features: Vec<String> = edges["config"]
        .iter()
        .filter(|(to, _)| !CONFIG_MAY_REACH.contains(&to.as_str()))
        .map(|(to, file)| format!("{to} ({})", file.display()))
        .collect();
    assert!(
        features.is_empty(),
        "config imports feature modules (their config types belong in config/): {features:?}"
    );
}

#[test]
fn the_pure_cores_reach_no_io() {
    let tree = tree();
    let edges = tree.module_edges();
    let io_modules: BTreeMap<String, String> = tree
        .files
        .iter()
        .filter_map(|file| {
            let name = tree.uses_crate(file, IO_CRATES)?;
            Some((file.module[0].clone(), format!("{} uses {name}", file.path.display())))
        })
        .collect();
    for pure in ["fingerprint", "verdict"] {
        let reached = reach(&edges, pure);
        let io: Vec<&String> = reached
            .iter()
            .chain(std::iter::once(&pure.to_string()))
            .filter_map(|m| io_modules.get(m))
            .collect();
        assert!(io.is_empty(), "{pure} reaches {reached:?}, which do I/O: {io:?}");
    }
    // The routing decision sits above the snapshot, in a module of its own:
    // every file it reaches, directly or not, is pure.
    let file_edges = tree.file_edges();
    let route = tree.file_of(&["route".to_string()]).expect("src/route.rs");
    let mut seen = BTreeSet::from([route]);
    let mut todo = vec![route];
    while let Some(file) = todo.pop() {
        for &next in &file_edges[file] {
            if seen.insert(next) {
                todo.push(next);
            }
        }
    }
    let io: Vec<String> = seen
        .iter()
        .filter_map(|&f| {
            let file = &tree.files[f];
            let name = tree.uses_crate(file, IO_CRATES)?;
            Some(format!("{} uses {name}", file.path.display()))
        })
        .collect();
    assert!(io.is_empty(), "the routing decision reaches I/O: {io:?}");
    // A sanity check of the reading itself: route does reach the snapshot.
    assert!(
        seen.iter().any(|&f| tree.files[f].module == ["state", "snapshot"]),
        "route.rs should reach src/state/snapshot.rs; the file graph is misread"
    );
}

#[test]
fn the_store_seam_names_no_database_driver() {
    let tree = tree();
    let seam = tree
        .files
        .iter()
        .find(|f| f.module == ["store"])
        .expect("src/store/mod.rs, the Store trait");
    let named: Vec<&&str> = BACKEND_CRATES
        .iter()
        .filter(|name| {
            seam.code
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .any(|word| word == **name)
        })
        .collect();
    assert!(
        named.is_empty(),
        "{} names {named:?}: backends live beside it",
        seam.path.display()
    );
}

#[test]
fn the_reading_finds_real_arrows() {
    // Without this, a parser that read nothing would pass every test above.
    let edges = tree().module_edges();
    assert!(edges["cmd"].contains_key("http"), "cmd -> http: {:?}", edges["cmd"]);
    assert!(
        edges["state"].contains_key("verdict"),
        "state -> verdict: {:?}",
        edges["state"]
    );
    assert!(paths_in("use crate::{a, b::c};").contains(&"crate::b::c".to_string()));
    assert_eq!(strip("let x = \"crate::no\"; // crate::no"), "let x = \"\"; ");
    assert_eq!(without_tests("a #[cfg(test)] mod tests { crate::x } b").0, "a  b");
}
