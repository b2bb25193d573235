//! Discovery: the articles a site says it has, from its sitemaps and
//! feeds, so the config need not list every path by hand.
//!
//! Each run fetches the site's sources (conditionally: an unchanged file is
//! not read again), keeps the article URLs on the primary's origin, and
//! returns the newest `max_articles` within `max_age`. Every source fails
//! alone and bounded: a size limit on the bytes (and on gzip's output), a
//! cap on files per run and on index depth, a guard against cycles.

pub mod sitemap;
pub mod task;

use std::collections::{HashMap, HashSet};
use std::io::Read;

use serde::Serialize;
use url::Url;

use crate::clock::{UnixMillis, rfc3339};
use crate::config::DiscoverConfig;
use crate::origin::Origin;
use crate::store::DiscoveredArticle;

/// Bytes one sitemap or feed may have, uncompressed (sitemaps.org's limit).
pub const MAX_FILE_BYTES: u64 = 50 * 1024 * 1024;
/// Files one run may fetch, all sources together.
pub const MAX_FILES_PER_RUN: usize = 200;
/// Sitemap indexes nested deeper than this are not followed.
pub const MAX_INDEX_DEPTH: usize = 3;

/// One source's result in a run, for `/status`.
#[derive(Clone, Debug, Serialize)]
pub struct SourceStatus {
    pub url: String,
    pub ok: bool,
    pub error: Option<String>,
    /// Articles it listed that were kept.
    pub articles: usize,
    pub not_modified: bool,
}

impl SourceStatus {
    fn new(url: &str) -> Self {
        SourceStatus {
            url: url.to_string(),
            ok: true,
            error: None,
            articles: 0,
            not_modified: false,
        }
    }

    /// Logs this source's failure for `site`, if it failed.
    pub fn log_failure(&self, site: &str) {
        if !self.ok {
            tracing::warn!(
                site,
                source = self.url,
                error = self.error.as_deref().unwrap_or(""),
                "discovery source failed"
            );
        }
    }
}

/// Keeps the entries on the primary's origin (counted for the source) and
/// counts the others.
fn keep_on_origin(
    listed: Vec<DiscoveredArticle>,
    primary: &Origin,
    status: &mut SourceStatus,
    other_hosts: &mut usize,
    found: &mut Vec<DiscoveredArticle>,
) {
    for entry in listed {
        match article_path(&entry.path, primary) {
            Some(path) => {
                status.articles += 1;
                found.push(DiscoveredArticle { path, ..entry });
            }
            None => *other_hosts += 1,
        }
    }
}

/// What one run found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Run {
    pub finished_at: Option<String>,
    pub sources: Vec<SourceStatus>,
    /// URLs on other hosts (or not http at all), ignored.
    pub other_hosts: usize,
    pub articles: Vec<DiscoveredArticle>,
}

/// Validators and results of unchanged files, kept between runs.
#[derive(Default)]
pub struct Cache {
    files: HashMap<String, CachedFile>,
}

struct CachedFile {
    etag: Option<String>,
    last_modified: Option<String>,
    found: Vec<DiscoveredArticle>,
    children: Vec<String>,
}

/// Runs discovery once for a site whose primary is `primary`.
pub async fn run(
    client: &reqwest::Client,
    primary: &Origin,
    config: &DiscoverConfig,
    cache: &mut Cache,
    now: UnixMillis,
) -> Run {
    let mut run = Run::default();
    let mut fetched = 0usize;
    let mut found: Vec<DiscoveredArticle> = Vec::new();
    let mut sitemaps: Vec<String> = Vec::new();
    for source in &config.sitemaps {
        if source == "auto" {
            match robots_sitemaps(client, primary, &mut fetched).await {
                Ok(listed) if !listed.is_empty() => sitemaps.extend(listed),
                _ => sitemaps.push(format!("{}/sitemap.xml", primary.as_str())),
            }
        } else {
            sitemaps.push(source.clone());
        }
    }
    sitemaps.dedup();
    let mut seen: HashSet<String> = HashSet::new();
    for root in sitemaps {
        let mut status = SourceStatus::new(&root);
        let mut queue = vec![(root, 0usize)];
        while let Some((url, depth)) = queue.pop() {
            if !seen.insert(url.clone()) {
                continue;
            }
            if !on_origin(&url, primary) {
                run.other_hosts += 1;
                continue;
            }
            if fetched >= MAX_FILES_PER_RUN {
                status.ok = false;
                status.error = Some(format!(
                    "more than {MAX_FILES_PER_RUN} files in one run; the rest waits"
                ));
                break;
            }
            fetched += 1;
            match read_sitemap(client, &url, cache).await {
                Ok((children, listed, unchanged)) => {
                    status.not_modified |= unchanged;
                    if !children.is_empty() && depth >= MAX_INDEX_DEPTH {
                        status.ok = false;
                        status.error = Some(format!("{url}: indexes nest deeper than {MAX_INDEX_DEPTH}"));
                        continue;
                    }
                    queue.extend(children.into_iter().map(|c| (c, depth + 1)));
                    keep_on_origin(listed, primary, &mut status, &mut run.other_hosts, &mut found);
                }
                Err(error) => {
                    status.ok = false;
                    status.error = Some(format!("{url}: {error}"));
                }
            }
        }
        run.sources.push(status);
    }
    for url in &config.feeds {
        let mut status = SourceStatus::new(url);
        if fetched >= MAX_FILES_PER_RUN {
            status.ok = false;
            status.error = Some(format!(
                "more than {MAX_FILES_PER_RUN} files in one run; the rest waits"
            ));
        } else {
            fetched += 1;
            match read_feed(client, url, cache).await {
                Ok((listed, unchanged)) => {
                    status.not_modified = unchanged;
                    keep_on_origin(listed, primary, &mut status, &mut run.other_hosts, &mut found);
                }
                Err(error) => {
                    status.ok = false;
                    status.error = Some(format!("{url}: {error}"));
                }
            }
        }
        run.sources.push(status);
    }
    run.articles = select(found, config, now);
    run.finished_at = Some(rfc3339(now));
    run
}

/// A run in which some source failed adds to what was found before rather
/// than replacing it: a sitemap that is down for an hour takes no article
/// out of the catalog.
pub fn keep_previous(previous: &[DiscoveredArticle], run: &mut Run, config: &DiscoverConfig, now: UnixMillis) {
    if run.sources.iter().all(|s| s.ok) {
        return;
    }
    let mut all = previous.to_vec();
    all.append(&mut run.articles);
    run.articles = select(all, config, now);
}

/// The newest `max_articles` within `max_age` that pass include/exclude,
/// one per path (the newest date wins).
fn select(found: Vec<DiscoveredArticle>, config: &DiscoverConfig, now: UnixMillis) -> Vec<DiscoveredArticle> {
    let oldest = now - config.max_age.as_millis().min(i64::MAX as u128) as i64;
    let mut by_path: HashMap<String, DiscoveredArticle> = HashMap::new();
    for entry in found {
        let path = &entry.path;
        if !config.include.is_empty() && !config.include.iter().any(|p| path.starts_with(p.as_str())) {
            continue;
        }
        if config.exclude.iter().any(|p| path.starts_with(p.as_str())) {
            continue;
        }
        if entry.date.is_some_and(|d| d < oldest) {
            continue;
        }
        match by_path.get(path) {
            Some(kept) if kept.date >= entry.date => {}
            _ => {
                by_path.insert(path.clone(), entry);
            }
        }
    }
    let mut articles: Vec<DiscoveredArticle> = by_path.into_values().collect();
    // Newest first; undated last, in path order for a stable list.
    articles.sort_by(|a, b| b.date.cmp(&a.date).then_with(|| a.path.cmp(&b.path)));
    articles.truncate(config.max_articles);
    articles
}

fn on_origin(url: &str, primary: &Origin) -> bool {
    Url::parse(url)
        .ok()
        .and_then(|u| Origin::of_url(&u))
        .is_some_and(|o| o == *primary)
}

/// Query parameters that only say where a reader came from.
fn is_tracking(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key.starts_with("utm_") || matches!(key.as_str(), "fbclid" | "gclid" | "mc_cid" | "mc_eid" | "ref" | "ocid")
}

/// The article's path (and query, tracking parameters dropped) when `url`
/// is on the primary's origin.
pub fn article_path(url: &str, primary: &Origin) -> Option<String> {
    let parsed = Url::parse(url.trim()).ok()?;
    if Origin::of_url(&parsed)? != *primary {
        return None;
    }
    let kept: Vec<(String, String)> = parsed
        .query_pairs()
        .filter(|(k, _)| !is_tracking(k))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut path = parsed.path().to_string();
    if !kept.is_empty() {
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(kept)
            .finish();
        path.push('?');
        path.push_str(&query);
    }
    crate::config::check_article_path(&path).ok()?;
    Some(path)
}

/// robots.txt's `Sitemap:` lines (case-insensitive, any group).
async fn robots_sitemaps(
    client: &reqwest::Client,
    primary: &Origin,
    fetched: &mut usize,
) -> Result<Vec<String>, String> {
    *fetched += 1;
    let url = format!("{}/robots.txt", primary.as_str());
    let Fetched::Body { bytes, .. } = fetch(client, &url, None, None, 512 * 1024).await? else {
        return Ok(Vec::new());
    };
    Ok(String::from_utf8_lossy(&bytes)
        .lines()
        .filter_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case("sitemap")
                .then(|| value.trim().to_string())
        })
        .filter(|url| !url.is_empty())
        .collect())
}

/// `url`'s body and validators, fetched with the validators of the copy
/// in `cache`; None when it is unchanged (and so in `cache`).
async fn fetch_changed(
    client: &reqwest::Client,
    url: &str,
    cache: &Cache,
) -> Result<Option<(Vec<u8>, Option<String>, Option<String>)>, String> {
    let cached = cache.files.get(url);
    let fetched = fetch(
        client,
        url,
        cached.and_then(|c| c.etag.as_deref()),
        cached.and_then(|c| c.last_modified.as_deref()),
        MAX_FILE_BYTES,
    )
    .await?;
    match fetched {
        Fetched::NotModified if cached.is_some() => Ok(None),
        Fetched::NotModified => Err("304 without a cached copy".into()),
        Fetched::Body {
            bytes,
            etag,
            last_modified,
        } => Ok(Some((bytes, etag, last_modified))),
    }
}

/// A sitemap's children and entries (`DiscoveredArticle` with the full URL in `path`),
/// and whether it was unchanged.
async fn read_sitemap(
    client: &reqwest::Client,
    url: &str,
    cache: &mut Cache,
) -> Result<(Vec<String>, Vec<DiscoveredArticle>, bool), String> {
    let Some((bytes, etag, last_modified)) = fetch_changed(client, url, cache).await? else {
        let cached = &cache.files[url];
        return Ok((cached.children.clone(), cached.found.clone(), true));
    };
    let (children, found) = match sitemap::parse(&bytes)? {
        sitemap::Sitemap::Index(children) => (children, Vec::new()),
        sitemap::Sitemap::UrlSet(entries) => (
            Vec::new(),
            entries
                .into_iter()
                .map(|e| DiscoveredArticle {
                    path: e.loc,
                    date: e.date.as_deref().and_then(parse_date),
                    source: url.to_string(),
                })
                .collect(),
        ),
    };
    cache.files.insert(
        url.to_string(),
        CachedFile {
            etag,
            last_modified,
            found: found.clone(),
            children: children.clone(),
        },
    );
    Ok((children, found, false))
}

async fn read_feed(
    client: &reqwest::Client,
    url: &str,
    cache: &mut Cache,
) -> Result<(Vec<DiscoveredArticle>, bool), String> {
    let Some((bytes, etag, last_modified)) = fetch_changed(client, url, cache).await? else {
        return Ok((cache.files[url].found.clone(), true));
    };
    let feed =
        feed_rs::parser::parse(bytes.as_slice()).map_err(|e| format!("not a feed (RSS, Atom or JSON Feed): {e}"))?;
    let found: Vec<DiscoveredArticle> = feed
        .entries
        .into_iter()
        .filter_map(|entry| {
            let href = &entry
                .links
                .iter()
                .find(|l| l.rel.as_deref().is_none_or(|r| r == "alternate"))
                .or(entry.links.first())?
                .href;
            // Feeds in the wild write links relative to the feed.
            let link = Url::parse(url)
                .and_then(|feed| feed.join(href.trim()))
                .map_or_else(|_| href.clone(), String::from);
            let date = entry.published.or(entry.updated).map(|d| d.timestamp_millis());
            Some(DiscoveredArticle {
                path: link,
                date,
                source: url.to_string(),
            })
        })
        .collect();
    cache.files.insert(
        url.to_string(),
        CachedFile {
            etag,
            last_modified,
            found: found.clone(),
            children: Vec::new(),
        },
    );
    Ok((found, false))
}

/// A sitemap date: W3C datetime (`2026-11-20`, `2026-11-20T10:00Z`,
/// `2026-11-20T10:00:00+02:00`) or RFC 2822.
pub fn parse_date(text: &str) -> Option<UnixMillis> {
    let text = text.trim();
    if let Ok(t) = humantime::parse_rfc3339_weak(text) {
        return system_ms(t);
    }
    if text.len() == 10
        && let Ok(t) = humantime::parse_rfc3339_weak(&format!("{text}T00:00:00Z"))
    {
        return system_ms(t);
    }
    // Offsets other than Z: humantime takes only UTC, so shift by hand.
    if text.len() > 19 {
        let (stamp, offset) = text.split_at(text.len() - 6);
        if let (Some(sign), Some((h, m))) = (offset.chars().next(), offset[1..].split_once(':'))
            && matches!(sign, '+' | '-')
            && let (Ok(h), Ok(m)) = (h.parse::<i64>(), m.parse::<i64>())
        {
            let base = humantime::parse_rfc3339_weak(stamp).ok().and_then(system_ms)?;
            let shift = (h * 60 + m) * 60_000;
            return Some(if sign == '+' { base - shift } else { base + shift });
        }
    }
    httpdate::parse_http_date(text).ok().and_then(system_ms)
}

fn system_ms(t: std::time::SystemTime) -> Option<UnixMillis> {
    t.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_millis() as i64)
}

enum Fetched {
    NotModified,
    Body {
        bytes: Vec<u8>,
        etag: Option<String>,
        last_modified: Option<String>,
    },
}

/// GETs `url` with validators, reading at most `limit` bytes (after gzip).
async fn fetch(
    client: &reqwest::Client,
    url: &str,
    etag: Option<&str>,
    last_modified: Option<&str>,
    limit: u64,
) -> Result<Fetched, String> {
    let parsed = Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("not an http(s) URL".into());
    }
    let mut request = client.get(parsed);
    if let Some(etag) = etag {
        request = request.header(reqwest::header::IF_NONE_MATCH, etag);
    }
    if let Some(date) = last_modified {
        request = request.header(reqwest::header::IF_MODIFIED_SINCE, date);
    }
    let mut response = request.send().await.map_err(|e| format!("cannot fetch: {e}"))?;
    if response.status() == reqwest::StatusCode::NOT_MODIFIED {
        return Ok(Fetched::NotModified);
    }
    if !response.status().is_success() {
        return Err(format!("HTTP {}", response.status().as_u16()));
    }
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
            .map(str::to_string)
    };
    let (etag, last_modified) = (header(reqwest::header::ETAG), header(reqwest::header::LAST_MODIFIED));
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| format!("the body broke off: {e}"))? {
        bytes.extend_from_slice(&chunk);
        if bytes.len() as u64 > limit {
            return Err(format!("larger than {} MB", limit / (1024 * 1024)));
        }
    }
    // A .gz file (by its magic bytes; servers label it every which way).
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes.as_slice())
            .take(limit + 1)
            .read_to_end(&mut out)
            .map_err(|e| format!("bad gzip: {e}"))?;
        if out.len() as u64 > limit {
            return Err(format!("decompresses to more than {} MB", limit / (1024 * 1024)));
        }
        bytes = out;
    }
    Ok(Fetched::Body {
        bytes,
        etag,
        last_modified,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn article_paths_stay_on_the_primary_and_lose_tracking() {
        let primary = Origin::parse("https://www.example.com").unwrap();
        assert_eq!(
            article_path("https://www.example.com/a/1?utm_source=x&id=7#top", &primary).as_deref(),
            Some("/a/1?id=7")
        );
        assert_eq!(article_path("https://other.example/a", &primary), None);
        assert_eq!(article_path("javascript:alert(1)", &primary), None);
        assert_eq!(
            article_path("HTTPS://WWW.EXAMPLE.COM:443/b", &primary).as_deref(),
            Some("/b")
        );
    }

    #[test]
    fn dates_in_the_forms_sitemaps_and_feeds_use() {
        let day = parse_date("2026-11-20").unwrap();
        assert_eq!(parse_date("2026-11-20T00:00:00Z"), Some(day));
        assert_eq!(parse_date("2026-11-20T02:00:00+02:00"), Some(day));
        assert_eq!(parse_date("Fri, 20 Nov 2026 00:00:00 GMT"), Some(day));
        assert_eq!(parse_date("yesterday"), None);
    }

    #[test]
    fn selection_keeps_the_newest_within_age_and_prefixes() {
        let config = DiscoverConfig {
            sitemaps: vec![],
            feeds: vec![],
            interval: std::time::Duration::from_secs(900),
            max_articles: 2,
            max_age: std::time::Duration::from_secs(86400),
            include: vec!["/news/".into()],
            exclude: vec!["/news/live".into()],
        };
        let now = 10 * 86_400_000;
        let found = |path: &str, date: Option<i64>| DiscoveredArticle {
            path: path.into(),
            date,
            source: "s".into(),
        };
        let kept = select(
            vec![
                found("/news/old", Some(now - 2 * 86_400_000)),
                found("/news/a", Some(now - 1000)),
                found("/news/b", Some(now - 500)),
                found("/news/c", None),
                found("/news/live/1", Some(now)),
                found("/about", Some(now)),
            ],
            &config,
            now,
        );
        let paths: Vec<&str> = kept.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["/news/b", "/news/a"]);
    }
}
