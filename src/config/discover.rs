//! `[sites.discover]`: where a site lists its articles.

use std::time::Duration;

use toml::de::{DeTable, DeValue};

use super::sites::check_article_path;
use super::walker::{Walker, find};

/// `[sites.discover]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoverConfig {
    /// URLs, or `auto`: robots.txt's `Sitemap:` lines, else `/sitemap.xml`.
    pub sitemaps: Vec<String>,
    pub feeds: Vec<String>,
    pub interval: Duration,
    pub max_articles: usize,
    pub max_age: Duration,
    /// Path prefixes an article must have (any), and must not have.
    pub include: Vec<String>,
    pub exclude: Vec<String>,
}

pub(super) const DISCOVER_KEYS: &[&str] = &[
    "sitemaps",
    "feeds",
    "interval",
    "max_articles",
    "max_age",
    "include",
    "exclude",
];

impl Walker<'_> {
    pub(super) fn discover(&mut self, table: &DeTable<'_>, site: &str) -> Option<DiscoverConfig> {
        let place = format!("{site}.discover");
        self.unknown_keys(table, &format!("[{place}]"), DISCOVER_KEYS);
        let sitemaps = self.strings(table, &place, "sitemaps", |text| {
            if text == "auto" || is_http_url(text) {
                Ok(())
            } else {
                Err("must be \"auto\" or an http(s) URL")
            }
        });
        let feeds = self.strings(table, &place, "feeds", |text| {
            if is_http_url(text) {
                Ok(())
            } else {
                Err("must be an http(s) URL")
            }
        });
        let interval = self.duration(table, &place, "interval", Duration::from_secs(15 * 60));
        let max_articles = self.integer(table, &place, "max_articles", 1, 1_000_000);
        let max_age = self.duration(table, &place, "max_age", Duration::from_secs(30 * 86400));
        let include = self.strings(table, &place, "include", check_article_path);
        let exclude = self.strings(table, &place, "exclude", check_article_path);
        let (sitemaps, feeds) = (sitemaps?, feeds?);
        if sitemaps.is_empty() && feeds.is_empty() {
            let span = find(table, "sitemaps").map_or(0..0, |v| v.span());
            self.error(span, format!("`{place}` needs `sitemaps` (e.g. [\"auto\"]) or `feeds`"));
            return None;
        }
        Some(DiscoverConfig {
            sitemaps,
            feeds,
            interval: interval?,
            max_articles: max_articles?.unwrap_or(10_000),
            max_age: max_age?,
            include: include?,
            exclude: exclude?,
        })
    }

    /// An array of strings, each passing `check`.
    pub(super) fn strings(
        &mut self,
        table: &DeTable<'_>,
        place: &str,
        key: &str,
        check: impl Fn(&str) -> Result<(), &'static str>,
    ) -> Option<Vec<String>> {
        let Some(value) = find(table, key) else {
            return Some(Vec::new());
        };
        let DeValue::Array(items) = value.get_ref() else {
            let message = format!(
                "`{place}.{key}` must be an array of strings, found {}",
                value.get_ref().type_str()
            );
            self.error(value.span(), message);
            return None;
        };
        let mut out = Some(Vec::new());
        for (i, item) in items.iter().enumerate() {
            let DeValue::String(text) = item.get_ref() else {
                self.error(item.span(), format!("`{place}.{key}[{i}]` must be a string"));
                out = None;
                continue;
            };
            match check(text) {
                Ok(()) => {
                    if let Some(list) = out.as_mut() {
                        list.push(text.to_string());
                    }
                }
                Err(why) => {
                    self.error(item.span(), format!("`{place}.{key}[{i}]` \"{text}\" {why}"));
                    out = None;
                }
            }
        }
        out
    }
}

fn is_http_url(text: &str) -> bool {
    url::Url::parse(text).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
}
