//! The spanned walker: typed reads of one key at a time over toml's
//! spanned tree, each problem recorded with its place and walking on, so
//! an operator sees every problem in one go.

use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::ConfigError;

pub(super) type Value<'i> = Spanned<DeValue<'i>>;

pub(super) struct Walker<'a> {
    pub(super) file: &'a str,
    pub(super) text: &'a str,
    /// Relative paths in the config (ca_file) are relative to this.
    pub(super) base_dir: &'a Path,
    pub(super) errors: Vec<ConfigError>,
}

impl Walker<'_> {
    pub(super) fn error(&mut self, span: Range<usize>, message: String) {
        let (line, column) = line_column(self.text, span.start);
        self.errors.push(ConfigError {
            file: self.file.to_string(),
            line,
            column,
            message,
        });
    }

    pub(super) fn section<'t, 'i>(&mut self, root: &'t DeTable<'i>, name: &str) -> Option<&'t DeTable<'i>> {
        let value = find(root, name)?;
        match value.get_ref() {
            DeValue::Table(table) => Some(table),
            other => {
                let message = format!("`{name}` must be a table, found {}", other.type_str());
                self.error(value.span(), message);
                None
            }
        }
    }

    pub(super) fn unknown_keys(&mut self, table: &DeTable<'_>, place: &str, allowed: &[&str]) {
        for key in table.keys() {
            if allowed.contains(&key.get_ref().as_ref()) {
                continue;
            }
            let mut message = format!("unknown key \"{}\" in {place}", key.get_ref());
            if let Some(suggestion) = closest(key.get_ref(), allowed) {
                message.push_str(&format!(" (did you mean \"{suggestion}\"?)"));
            }
            self.error(key.span(), message);
        }
    }

    pub(super) fn string(&mut self, table: &DeTable<'_>, place: &str, key: &str) -> Option<(String, Range<usize>)> {
        let value = find(table, key)?;
        match value.get_ref() {
            DeValue::String(text) => Some((text.to_string(), value.span())),
            other => {
                let message = format!("`{place}.{key}` must be a string, found {}", other.type_str());
                self.error(value.span(), message);
                None
            }
        }
    }

    /// Outer None: invalid (already reported). Inner None: not set.
    pub(super) fn integer(
        &mut self,
        table: &DeTable<'_>,
        place: &str,
        key: &str,
        min: i64,
        max: i64,
    ) -> Option<Option<usize>> {
        let Some(value) = find(table, key) else {
            return Some(None);
        };
        let parsed = match value.get_ref() {
            DeValue::Integer(int) => i64::from_str_radix(&int.as_str().replace('_', ""), int.radix()).ok(),
            _ => None,
        };
        match parsed {
            Some(n) if (min..=max).contains(&n) => Some(Some(n as usize)),
            _ => {
                let message = format!(
                    "`{place}.{key}` must be an integer from {min} to {max}, found {}",
                    &self.text[value.span()]
                );
                self.error(value.span(), message);
                None
            }
        }
    }

    pub(super) fn boolean(&mut self, table: &DeTable<'_>, place: &str, key: &str) -> Option<Option<bool>> {
        let Some(value) = find(table, key) else {
            return Some(None);
        };
        match value.get_ref() {
            DeValue::Boolean(b) => Some(Some(*b)),
            other => {
                let message = format!("`{place}.{key}` must be true or false, found {}", other.type_str());
                self.error(value.span(), message);
                None
            }
        }
    }

    pub(super) fn duration(
        &mut self,
        table: &DeTable<'_>,
        place: &str,
        key: &str,
        default: Duration,
    ) -> Option<Duration> {
        let (text, span) = match find(table, key) {
            None => return Some(default),
            Some(value) => match value.get_ref() {
                DeValue::String(text) => (text.to_string(), value.span()),
                other => {
                    let message = format!(
                        "`{place}.{key}` must be a duration string such as \"5m\" or \"10s\", found {}",
                        other.type_str()
                    );
                    self.error(value.span(), message);
                    return None;
                }
            },
        };
        match humantime::parse_duration(&text) {
            Ok(duration) if !duration.is_zero() => Some(duration),
            Ok(_) => {
                self.error(
                    span,
                    format!("`{place}.{key}` must be longer than zero, found \"{text}\""),
                );
                None
            }
            Err(e) => {
                self.error(
                    span,
                    format!(
                        "`{place}.{key}` \"{text}\" is not a duration ({e}); write e.g. \"30s\", \"5m\", \"1h 30m\""
                    ),
                );
                None
            }
        }
    }

    pub(super) fn size(&mut self, table: &DeTable<'_>, place: &str, key: &str, default: u64) -> Option<u64> {
        let Some(value) = find(table, key) else {
            return Some(default);
        };
        let parsed = match value.get_ref() {
            DeValue::String(text) => text.trim().parse::<bytesize::ByteSize>().ok().map(|s| s.as_u64()),
            DeValue::Integer(int) => int.as_str().replace('_', "").parse::<u64>().ok(),
            _ => None,
        };
        match parsed {
            Some(bytes) if bytes > 0 => Some(bytes),
            _ => {
                let message = format!(
                    "`{place}.{key}` must be a size such as \"5MiB\" or a number of bytes, found {}",
                    &self.text[value.span()]
                );
                self.error(value.span(), message);
                None
            }
        }
    }
}

pub(super) fn find<'t, 'i>(table: &'t DeTable<'i>, key: &str) -> Option<&'t Value<'i>> {
    table.iter().find(|(k, _)| k.get_ref().as_ref() == key).map(|(_, v)| v)
}

/// 1-based line and column (in characters) of a byte offset.
pub(super) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

pub(super) fn closest<'a>(key: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(key, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = if ca == *cb {
                previous
            } else {
                1 + previous.min(row[j]).min(row[j + 1])
            };
            previous = current;
        }
    }
    row[b.len()]
}
