//! `[[alerts]]`: where alerts go.

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;
use toml::de::{DeTable, DeValue};

use super::walker::{Walker, find, line_column};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "info" => Some(Severity::Info),
            "warning" => Some(Severity::Warning),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinkKind {
    Webhook,
    Slack,
    Ntfy,
}

/// One `[[alerts]]` entry.
#[derive(Clone, Debug)]
pub struct SinkConfig {
    pub name: String,
    pub kind: SinkKind,
    pub url: String,
    /// How long a condition must hold before it is sent.
    pub hold: Duration,
    /// Only these sites (empty: all).
    pub sites: Vec<String>,
    pub min_severity: Severity,
    pub headers: Vec<(String, String)>,
}

pub(super) const ALERT_KEYS: &[&str] = &["name", "type", "url", "for", "sites", "min_severity", "headers"];

impl Walker<'_> {
    pub(super) fn alerts(&mut self, root: &DeTable<'_>) -> Option<Vec<SinkConfig>> {
        let Some(value) = find(root, "alerts") else {
            return Some(Vec::new());
        };
        let DeValue::Array(entries) = value.get_ref() else {
            let message = format!(
                "`alerts` must be an array of tables ([[alerts]]), found {}",
                value.get_ref().type_str()
            );
            self.error(value.span(), message);
            return None;
        };
        let mut sinks = Some(Vec::new());
        let mut names: HashMap<String, usize> = HashMap::new();
        for (index, entry) in entries.iter().enumerate() {
            let place = format!("alerts[{index}]");
            let DeValue::Table(table) = entry.get_ref() else {
                self.error(entry.span(), format!("`{place}` must be a table"));
                sinks = None;
                continue;
            };
            self.unknown_keys(table, &format!("[[alerts]] #{}", index + 1), ALERT_KEYS);
            let name = match self.string(table, &place, "name") {
                None => {
                    self.error(entry.span(), format!("`{place}.name` is missing"));
                    None
                }
                Some((name, span)) => {
                    if let Some(first) = names.get(&name) {
                        let (line, _) = line_column(self.text, *first);
                        self.error(
                            span,
                            format!("duplicate alert name \"{name}\" (first used on line {line})"),
                        );
                        None
                    } else if name.is_empty() {
                        self.error(span, format!("`{place}.name` must not be empty"));
                        None
                    } else {
                        names.insert(name.clone(), span.start);
                        Some(name)
                    }
                }
            };
            let kind = match self.string(table, &place, "type") {
                None => {
                    self.error(
                        entry.span(),
                        format!("`{place}.type` is missing: \"webhook\", \"slack\" or \"ntfy\""),
                    );
                    None
                }
                Some((text, span)) => match text.as_str() {
                    "webhook" => Some(SinkKind::Webhook),
                    "slack" => Some(SinkKind::Slack),
                    "ntfy" => Some(SinkKind::Ntfy),
                    _ => {
                        self.error(
                            span,
                            format!("`{place}.type` must be \"webhook\", \"slack\" or \"ntfy\", found \"{text}\""),
                        );
                        None
                    }
                },
            };
            let url = match self.string(table, &place, "url") {
                None => {
                    self.error(entry.span(), format!("`{place}.url` is missing"));
                    None
                }
                Some((text, span)) => match url::Url::parse(&text) {
                    Ok(url) if matches!(url.scheme(), "http" | "https") => Some(text),
                    _ => {
                        self.error(
                            span,
                            format!("`{place}.url` must be an http or https URL, found \"{text}\""),
                        );
                        None
                    }
                },
            };
            let hold = self.duration(table, &place, "for", Duration::from_secs(120));
            let sites = self.strings(table, &place, "sites", |_| Ok(()));
            let min_severity = match self.string(table, &place, "min_severity") {
                None => Some(Severity::Warning),
                Some((text, span)) => {
                    match Severity::parse(&text) {
                        Some(severity) => Some(severity),
                        None => {
                            self.error(
                            span,
                            format!("`{place}.min_severity` must be \"info\", \"warning\" or \"critical\", found \"{text}\""),
                        );
                            None
                        }
                    }
                }
            };
            let headers = match find(table, "headers") {
                None => Some(Vec::new()),
                Some(value) => match value.get_ref() {
                    DeValue::Table(headers) => {
                        let mut out = Some(Vec::new());
                        for (key, value) in headers.iter() {
                            match value.get_ref() {
                                DeValue::String(text)
                                    if http::HeaderName::from_bytes(key.get_ref().as_bytes()).is_ok()
                                        && http::HeaderValue::from_str(text).is_ok() =>
                                {
                                    if let Some(list) = out.as_mut() {
                                        list.push((key.get_ref().to_string(), text.to_string()));
                                    }
                                }
                                _ => {
                                    self.error(
                                        value.span(),
                                        format!(
                                            "`{place}.headers.{}` must be a valid header name with a string value",
                                            key.get_ref()
                                        ),
                                    );
                                    out = None;
                                }
                            }
                        }
                        out
                    }
                    other => {
                        let message = format!(
                            "`{place}.headers` must be a table of strings, found {}",
                            other.type_str()
                        );
                        self.error(value.span(), message);
                        None
                    }
                },
            };
            match (name, kind, url, hold, sites, min_severity, headers) {
                (Some(name), Some(kind), Some(url), Some(hold), Some(sites), Some(min_severity), Some(headers)) => {
                    if let Some(list) = sinks.as_mut() {
                        list.push(SinkConfig {
                            name,
                            kind,
                            url,
                            hold,
                            sites,
                            min_severity,
                            headers,
                        });
                    }
                }
                _ => sinks = None,
            }
        }
        sinks
    }
}
