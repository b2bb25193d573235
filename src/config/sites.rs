//! `[[sites]]`: each site's bases, articles and how its pages are read.

use std::collections::HashMap;

use super::SiteConfig;
use super::walker::{Value, Walker, find, line_column};
use crate::fingerprint::ContentSelector;
use crate::origin::Origin;
use std::ops::Range;

use toml::de::{DeTable, DeValue};

pub(super) const SITE_KEYS: &[&str] = &[
    "name",
    "primary",
    "mirrors",
    "articles",
    "content_selector",
    "content_exclude",
    "prefer_primary",
    "probe_asset",
    "discover",
    "alternate_phrases",
];
pub(super) const BASE_KEYS: &[&str] = &["url", "aliases"];

impl Walker<'_> {
    pub(super) fn sites(&mut self, root: &DeTable<'_>) -> Option<Vec<SiteConfig>> {
        let Some(value) = find(root, "sites") else {
            self.error(0..0, "no [[sites]] configured: add at least one site".into());
            return None;
        };
        let DeValue::Array(array) = value.get_ref() else {
            let message = format!(
                "`sites` must be an array of tables ([[sites]]), found {}",
                value.get_ref().type_str()
            );
            self.error(value.span(), message);
            return None;
        };
        if array.is_empty() {
            self.error(value.span(), "`sites` is empty: add at least one site".into());
            return None;
        }
        let mut sites = Vec::new();
        let mut ok = true;
        let mut names: HashMap<String, usize> = HashMap::new();
        // A base may serve only one site: `/go?url=` must map an origin to one site.
        let mut bases: HashMap<Origin, usize> = HashMap::new();
        for (index, entry) in array.iter().enumerate() {
            let DeValue::Table(table) = entry.get_ref() else {
                self.error(entry.span(), format!("`sites[{index}]` must be a table"));
                ok = false;
                continue;
            };
            match self.site(index, entry.span(), table, &mut names, &mut bases) {
                Some(site) => sites.push(site),
                None => ok = false,
            }
        }
        ok.then_some(sites)
    }

    pub(super) fn site(
        &mut self,
        index: usize,
        span: Range<usize>,
        table: &DeTable<'_>,
        names: &mut HashMap<String, usize>,
        bases: &mut HashMap<Origin, usize>,
    ) -> Option<SiteConfig> {
        let place = format!("sites[{index}]");
        self.unknown_keys(table, &format!("[[sites]] #{}", index + 1), SITE_KEYS);
        let name = match self.string(table, &place, "name") {
            None => {
                self.error(span.clone(), format!("`{place}.name` is missing"));
                None
            }
            Some((name, span)) => {
                let valid = !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
                if !valid {
                    let message = format!(
                        "`{place}.name` \"{name}\" must be non-empty and use only letters, digits, '-', '_' and '.' (it is a URL path segment)"
                    );
                    self.error(span, message);
                    None
                } else if let Some(first) = names.get(&name) {
                    let (line, _) = line_column(self.text, *first);
                    let message =
                        format!("duplicate site name \"{name}\" in `{place}.name` (first used on line {line})");
                    self.error(span, message);
                    None
                } else {
                    names.insert(name.clone(), span.start);
                    Some(name)
                }
            }
        };
        let mut aliases = Some(Vec::new());
        let primary = match find(table, "primary") {
            None => {
                self.error(span.clone(), format!("`{place}.primary` is missing"));
                None
            }
            Some(value) => match self.base(value, &format!("{place}.primary"), "primary", bases) {
                Some((origin, found)) => {
                    if let (Some(list), Some(found)) = (aliases.as_mut(), found) {
                        list.extend(found);
                    } else {
                        aliases = None;
                    }
                    Some(origin)
                }
                None => None,
            },
        };
        let mut mirrors = Some(Vec::new());
        if let Some(value) = find(table, "mirrors") {
            match value.get_ref() {
                DeValue::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        let key = format!("{place}.mirrors[{i}]");
                        match self.base(item, &key, "mirror", bases) {
                            Some((origin, found)) => {
                                if let Some(list) = mirrors.as_mut() {
                                    list.push(origin);
                                }
                                match (aliases.as_mut(), found) {
                                    (Some(list), Some(found)) => list.extend(found),
                                    _ => aliases = None,
                                }
                            }
                            None => mirrors = None,
                        }
                    }
                }
                other => {
                    let message = format!(
                        "`{place}.mirrors` must be an array of base URLs, found {}",
                        other.type_str()
                    );
                    self.error(value.span(), message);
                    mirrors = None;
                }
            }
        }
        let articles = self.articles(table, &place, span);
        let content_selector = match self.string(table, &place, "content_selector") {
            None => Some(None),
            Some((text, span)) => match ContentSelector::parse(&text) {
                Ok(selector) => Some(Some(selector)),
                Err(e) => {
                    self.error(
                        span,
                        format!("`{place}.content_selector` \"{text}\" is not a supported CSS selector: {e}"),
                    );
                    None
                }
            },
        };
        let content_exclude = self.selectors(table, &place, "content_exclude");
        let prefer_primary = self.boolean(table, &place, "prefer_primary");
        let probe_asset = match self.string(table, &place, "probe_asset") {
            None => Some("/favicon.ico".to_string()),
            Some((path, span)) => match check_article_path(&path) {
                Ok(()) => Some(path),
                Err(why) => {
                    self.error(span, format!("`{place}.probe_asset` \"{path}\" {why}"));
                    None
                }
            },
        };
        let discover = match find(table, "discover") {
            None => Some(None),
            Some(value) => match value.get_ref() {
                DeValue::Table(discover) => self.discover(discover, &place).map(Some),
                other => {
                    let message = format!(
                        "`{place}.discover` must be a table ([sites.discover]), found {}",
                        other.type_str()
                    );
                    self.error(value.span(), message);
                    None
                }
            },
        };
        let alternate_phrases = self.strings(table, &place, "alternate_phrases", |text| {
            if text.trim().chars().count() >= 4 {
                Ok(())
            } else {
                Err("is too short to introduce addresses (4 characters at least)")
            }
        });
        Some(SiteConfig {
            alternate_phrases: alternate_phrases?,
            discover: discover?,
            probe_asset: probe_asset?,
            name: name?,
            primary: primary?,
            mirrors: mirrors?,
            aliases: aliases?,
            articles: articles?,
            content_selector: content_selector?,
            content_exclude: content_exclude?,
            prefer_primary: prefer_primary?.unwrap_or(true),
            article_dates: Default::default(),
        })
    }

    /// A list of selectors (`content_exclude`), each checked on its own.
    pub(super) fn selectors(&mut self, table: &DeTable<'_>, place: &str, key: &str) -> Option<Vec<ContentSelector>> {
        let Some(value) = find(table, key) else {
            return Some(Vec::new());
        };
        let DeValue::Array(items) = value.get_ref() else {
            let message = format!(
                "`{place}.{key}` must be an array of CSS selectors such as [\".views\", \"time.updated\"], found {}",
                value.get_ref().type_str()
            );
            self.error(value.span(), message);
            return None;
        };
        let mut selectors = Some(Vec::new());
        for (i, item) in items.iter().enumerate() {
            let DeValue::String(text) = item.get_ref() else {
                let message = format!(
                    "`{place}.{key}[{i}]` must be a selector string, found {}",
                    item.get_ref().type_str()
                );
                self.error(item.span(), message);
                selectors = None;
                continue;
            };
            match ContentSelector::parse(text) {
                Ok(selector) => {
                    if let Some(list) = selectors.as_mut() {
                        list.push(selector);
                    }
                }
                Err(e) => {
                    let message = format!("`{place}.{key}[{i}]` \"{text}\" is not a supported CSS selector: {e}");
                    self.error(item.span(), message);
                    selectors = None;
                }
            }
        }
        selectors
    }

    /// `aliases = [...]` of a base: host names (with a port if not the
    /// default), no scheme or path.
    pub(super) fn aliases(&mut self, value: &Value<'_>, key: &str) -> Option<Vec<String>> {
        let DeValue::Array(items) = value.get_ref() else {
            let message = format!(
                "`{key}` must be an array of host names, found {}",
                value.get_ref().type_str()
            );
            self.error(value.span(), message);
            return None;
        };
        let mut out = Some(Vec::new());
        for (i, item) in items.iter().enumerate() {
            let DeValue::String(text) = item.get_ref() else {
                self.error(item.span(), format!("`{key}[{i}]` must be a host name string"));
                out = None;
                continue;
            };
            let host = text.trim().to_ascii_lowercase();
            let (name, port) = match host.rsplit_once(':') {
                Some((name, port)) if port.parse::<u16>().is_ok() => (name, Some(port)),
                _ => (host.as_str(), None),
            };
            let valid = !name.is_empty()
                && name.len() <= 253
                && name
                    .split('.')
                    .all(|label| !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
            if !valid {
                let hint = if text.contains("://") {
                    " (write the host alone, without a scheme)"
                } else if text.contains('/') {
                    " (write the host alone, without a path)"
                } else {
                    ""
                };
                self.error(item.span(), format!("`{key}[{i}]` \"{text}\" is not a host name{hint}"));
                out = None;
                continue;
            }
            if let Some(list) = out.as_mut() {
                list.push(match port {
                    Some(port) => format!("{name}:{port}"),
                    None => name.to_string(),
                });
            }
        }
        out
    }

    /// A base: `"https://host"`, or `{ url = "https://host", aliases = [...] }`.
    /// Returns its origin and its aliases (None: they were invalid).
    #[allow(clippy::type_complexity)]
    pub(super) fn base(
        &mut self,
        value: &Value<'_>,
        key: &str,
        role: &str,
        bases: &mut HashMap<Origin, usize>,
    ) -> Option<(Origin, Option<Vec<String>>)> {
        if let DeValue::Table(table) = value.get_ref() {
            self.unknown_keys(table, &format!("`{key}`"), BASE_KEYS);
            let aliases = match find(table, "aliases") {
                None => Some(Vec::new()),
                Some(list) => self.aliases(list, &format!("{key}.aliases")),
            };
            let Some(url) = find(table, "url") else {
                self.error(
                    value.span(),
                    format!("`{key}.url` is missing: a base table needs its URL"),
                );
                return None;
            };
            let origin = self.base_url(url, &format!("{key}.url"), role, bases)?;
            return Some((origin, aliases));
        }
        let origin = self.base_url(value, key, role, bases)?;
        Some((origin, Some(Vec::new())))
    }

    pub(super) fn base_url(
        &mut self,
        value: &Value<'_>,
        key: &str,
        role: &str,
        bases: &mut HashMap<Origin, usize>,
    ) -> Option<Origin> {
        let DeValue::String(text) = value.get_ref() else {
            let message = format!(
                "`{key}` must be a base URL string such as \"https://www.example.com\" (or a table with `url` and `aliases`), found {}",
                value.get_ref().type_str()
            );
            self.error(value.span(), message);
            return None;
        };
        match Origin::parse(text) {
            Err(e) => {
                self.error(value.span(), format!("`{key}`: {role} \"{text}\" {e}"));
                None
            }
            Ok(origin) => {
                if let Some(first) = bases.get(&origin) {
                    let (line, _) = line_column(self.text, *first);
                    let message = format!(
                        "`{key}`: base \"{origin}\" is listed twice (first on line {line}); a base belongs to one site, once"
                    );
                    self.error(value.span(), message);
                    return None;
                }
                bases.insert(origin.clone(), value.span().start);
                Some(origin)
            }
        }
    }

    pub(super) fn articles(
        &mut self,
        table: &DeTable<'_>,
        place: &str,
        site_span: Range<usize>,
    ) -> Option<Vec<String>> {
        let Some(value) = find(table, "articles") else {
            self.error(
                site_span,
                format!("`{place}.articles` is missing: a site needs at least one article path"),
            );
            return None;
        };
        let DeValue::Array(items) = value.get_ref() else {
            let message = format!(
                "`{place}.articles` must be an array of paths, found {}",
                value.get_ref().type_str()
            );
            self.error(value.span(), message);
            return None;
        };
        if items.is_empty() {
            self.error(
                value.span(),
                format!("`{place}.articles` is empty: a site needs at least one article path"),
            );
            return None;
        }
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut articles = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let key = format!("{place}.articles[{i}]");
            let DeValue::String(path) = item.get_ref() else {
                let message = format!("`{key}` must be a path string, found {}", item.get_ref().type_str());
                self.error(item.span(), message);
                ok = false;
                continue;
            };
            if let Err(problem) = check_article_path(path) {
                self.error(item.span(), format!("`{key}` \"{path}\" {problem}"));
                ok = false;
                continue;
            }
            if let Some(first) = seen.get(path.as_ref()) {
                let (line, _) = line_column(self.text, *first);
                self.error(
                    item.span(),
                    format!("`{key}`: article \"{path}\" is listed twice (first on line {line})"),
                );
                ok = false;
                continue;
            }
            seen.insert(path, item.span().start);
            articles.push(path.to_string());
        }
        ok.then_some(articles)
    }
}

pub fn check_article_path(path: &str) -> Result<(), &'static str> {
    if !path.starts_with('/') {
        return Err("must be a path starting with '/' (the base is added per mirror)");
    }
    if path.starts_with("//") {
        return Err("must not start with '//' (that would name another host)");
    }
    if path.contains('#') {
        return Err("must not contain a fragment ('#'): servers never see it");
    }
    if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters (percent-encode them)");
    }
    Ok(())
}
