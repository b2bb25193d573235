//! Request -> redirect decision. Pure: a snapshot and the request in, a
//! decision out.
//!
//! The one invariant that matters: a `Location` is only ever a configured
//! base's origin followed by a path that starts with `/`. The origin comes
//! from the catalog, never from the request, so no path, query or `url=`
//! trick can move the reader to another host.

use crate::snapshot::{SiteView, Snapshot};

#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    Redirect {
        location: String,
        /// The other candidates, best first (`Link: rel=duplicate`).
        alternates: Vec<String>,
    },
    /// No base qualifies; every base's URL for the path, to try by hand.
    NoCandidate {
        site: String,
        path: String,
        bases: Vec<String>,
        retry_after_secs: u64,
    },
    BadRequest {
        parameter: &'static str,
        message: String,
    },
    NotFound {
        message: String,
    },
}

/// `GET /r/{site}/{path}?{query}`: `site` is percent-decoded, `path` (from
/// its leading `/`) and `query` are exactly as the reader sent them.
pub fn redirect(snapshot: &Snapshot, site: &str, path: &str, query: Option<&str>) -> Decision {
    let Some(&site_index) = snapshot.catalog.by_name.get(site) else {
        return Decision::NotFound {
            message: format!("no site named \"{site}\" is configured"),
        };
    };
    choose(snapshot, site_index, path, query)
}

/// `GET /go?url=...`: `url` is the decoded parameter, if present.
pub fn go(snapshot: &Snapshot, url: Option<&str>) -> Decision {
    let bad = |message: String| Decision::BadRequest {
        parameter: "url",
        message,
    };
    let Some(raw) = url else {
        return bad("missing query parameter `url` (an absolute URL on a configured base)".into());
    };
    if raw.bytes().any(|b| b.is_ascii_control()) {
        return bad("`url` contains control characters".into());
    }
    let parsed = match url::Url::parse(raw) {
        Ok(parsed) => parsed,
        Err(e) => return bad(format!("`url` is not an absolute URL: {e}")),
    };
    let Some(origin) = crate::origin::Origin::of_url(&parsed) else {
        return bad(format!(
            "`url` must be an http or https URL, found scheme \"{}\"",
            parsed.scheme()
        ));
    };
    let Some(&(site_index, _)) = snapshot.catalog.by_origin.get(origin.as_str()) else {
        return bad(format!("`url` origin {origin} is not a configured base of any site"));
    };
    choose(snapshot, site_index, parsed.path(), parsed.query())
}

fn choose(snapshot: &Snapshot, site_index: usize, path: &str, query: Option<&str>) -> Decision {
    let meta = &snapshot.catalog.sites[site_index];
    let Some(view) = snapshot.sites.get(site_index) else {
        return no_candidate(snapshot, site_index, path, query);
    };
    if !path.starts_with('/') || path.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Decision::BadRequest {
            parameter: "path",
            message: "the path must start with '/' and hold no spaces or control characters".into(),
        };
    }
    let candidates = candidates(view, &meta.article_index, path, query);
    let mut urls = candidates
        .iter()
        .map(|&b| with_path(meta.bases[b].as_str(), path, query));
    match urls.next() {
        Some(location) => Decision::Redirect {
            location,
            alternates: urls.collect(),
        },
        None => no_candidate(snapshot, site_index, path, query),
    }
}

/// A configured article (matched with its query, then without) uses its own
/// verdicts; any other path goes by base health.
fn candidates<'v>(
    view: &'v SiteView,
    articles: &std::collections::HashMap<std::sync::Arc<str>, usize>,
    path: &str,
    query: Option<&str>,
) -> &'v [usize] {
    let with_query = query.map(|q| format!("{path}?{q}"));
    let article = with_query
        .as_deref()
        .and_then(|p| articles.get(p))
        .or_else(|| articles.get(path));
    match article {
        Some(&index) => &view.articles[index].candidates,
        None => &view.fallback,
    }
}

fn no_candidate(snapshot: &Snapshot, site_index: usize, path: &str, query: Option<&str>) -> Decision {
    let meta = &snapshot.catalog.sites[site_index];
    Decision::NoCandidate {
        site: meta.name.to_string(),
        path: with_path("", path, query),
        bases: meta.bases.iter().map(|b| with_path(b.as_str(), path, query)).collect(),
        retry_after_secs: crate::snapshot::retry_after_secs(snapshot.catalog.interval),
    }
}

fn with_path(base: &str, path: &str, query: Option<&str>) -> String {
    let mut url = String::with_capacity(base.len() + path.len() + query.map_or(0, |q| q.len() + 1));
    url.push_str(base);
    url.push_str(path);
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    url
}
