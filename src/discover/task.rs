//! The daemon's discovery loop: runs each site's discovery when it is due
//! and, when the articles found change, asks for a new catalog (as a reload
//! would) so they are probed — new ones at once, newest first.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Cache, Run};
use crate::clock::now_ms;
use crate::config::SiteConfig;
use crate::store::DiscoveredArticle;

/// Each site's articles found by its last run, by site name.
pub type Discovered = Arc<Mutex<HashMap<String, Vec<DiscoveredArticle>>>>;
/// Each site's last run (articles left out), by site name, for `/status`.
pub type DiscoveryStatus = Arc<Mutex<HashMap<String, Run>>>;

/// How often the loop looks for a site that is due.
const TICK: Duration = Duration::from_secs(1);
/// How often an instance that does not lead reads what the leader found.
const FOLLOW_EVERY: Duration = Duration::from_secs(10);

/// Runs until `stop`. `sites` follows reloads; `changed` is sent a unit
/// whenever some site's articles changed.
pub async fn run(
    sites: Arc<ArcSwap<Vec<SiteConfig>>>,
    user_agent: String,
    discovered: Discovered,
    status: DiscoveryStatus,
    changed: mpsc::Sender<()>,
    store: Option<crate::store::StoreWriter>,
    stop: CancellationToken,
) {
    let client = match reqwest::Client::builder()
        .user_agent(user_agent)
        .timeout(Duration::from_secs(60))
        .connect_timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::limited(5))
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "discovery cannot build its HTTP client; discovery is off");
            return;
        }
    };
    let mut caches: HashMap<String, Cache> = HashMap::new();
    let mut last_run: HashMap<String, (Instant, crate::config::DiscoverConfig)> = HashMap::new();
    let mut followed: Option<Instant> = None;
    loop {
        // Instances sharing a store: the leader alone fetches sitemaps and
        // feeds (a site is asked once, not once per instance); the others
        // take up what it stored.
        if let Some(store) = store.as_ref().filter(|s| !s.health.leader.load(Ordering::Relaxed)) {
            if followed.is_none_or(|at| at.elapsed() >= FOLLOW_EVERY) {
                followed = Some(Instant::now());
                follow(store, &sites.load_full(), &discovered, &changed).await;
            }
            // Leading later starts each site afresh.
            last_run.clear();
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(TICK) => {}
            }
            continue;
        }
        followed = None;
        let current = sites.load_full();
        let mut any_change = false;
        // Sites whose [sites.discover] went away drop what they found.
        let dropped: Vec<String> = {
            let mut found = discovered.lock().unwrap_or_else(|e| e.into_inner());
            let gone: Vec<String> = found
                .keys()
                .filter(|name| !current.iter().any(|s| &s.name == *name && s.discover.is_some()))
                .cloned()
                .collect();
            for name in &gone {
                found.remove(name);
            }
            gone
        };
        any_change |= !dropped.is_empty();
        if let Some(store) = &store {
            for site in dropped {
                store.discovered(site, Vec::new()).await;
            }
        }
        status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|name, _| current.iter().any(|s| &s.name == name && s.discover.is_some()));
        for site in current.iter() {
            let Some(config) = &site.discover else { continue };
            let due = match last_run.get(&site.name) {
                Some((at, used)) => used != config || at.elapsed() >= config.interval,
                None => true,
            };
            if !due {
                continue;
            }
            let cache = caches.entry(site.name.clone()).or_default();
            let run = tokio::select! {
                _ = stop.cancelled() => return,
                run = super::run(&client, &site.primary, config, cache, now_ms()) => run,
            };
            let mut run = run;
            let previous = discovered
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&site.name)
                .cloned()
                .unwrap_or_default();
            super::keep_previous(&previous, &mut run, config, now_ms());
            last_run.insert(site.name.clone(), (Instant::now(), config.clone()));
            for source in &run.sources {
                source.log_failure(&site.name);
            }
            let articles = run.articles.clone();
            let site_changed = {
                let mut found = discovered.lock().unwrap_or_else(|e| e.into_inner());
                let paths = |list: &[DiscoveredArticle]| list.iter().map(|f| f.path.clone()).collect::<Vec<_>>();
                let before = found.get(&site.name).map(|l| paths(l));
                let changed = before.as_deref() != Some(paths(&articles).as_slice());
                found.insert(site.name.clone(), articles.clone());
                changed
            };
            if site_changed {
                any_change = true;
                tracing::info!(
                    site = site.name,
                    articles = articles.len(),
                    "discovered articles changed"
                );
                if let Some(store) = &store {
                    store.discovered(site.name.clone(), articles).await;
                }
            }
            let mut summary = run;
            summary.articles.clear();
            status
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(site.name.clone(), summary);
        }
        if any_change {
            let _ = changed.try_send(());
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(TICK) => {}
        }
    }
}

/// Takes up what the leader stored for the sites this config discovers.
async fn follow(
    store: &crate::store::StoreWriter,
    sites: &[SiteConfig],
    discovered: &Discovered,
    changed: &mpsc::Sender<()>,
) {
    let stored = match store.load_discovered().await {
        Ok(stored) => stored,
        Err(error) => {
            tracing::debug!(%error, "cannot read what the leader discovered");
            return;
        }
    };
    let wanted: HashMap<String, Vec<DiscoveredArticle>> = stored
        .into_iter()
        .filter(|(name, _)| sites.iter().any(|s| &s.name == name && s.discover.is_some()))
        .collect();
    let mut found = discovered.lock().unwrap_or_else(|e| e.into_inner());
    if *found != wanted {
        *found = wanted;
        let _ = changed.try_send(());
    }
}

/// `sites` with each site's discovered articles after its configured ones
/// (newest first, none twice).
pub fn with_discovered(sites: &[SiteConfig], discovered: &HashMap<String, Vec<DiscoveredArticle>>) -> Vec<SiteConfig> {
    sites
        .iter()
        .map(|site| {
            let mut site = site.clone();
            if site.discover.is_some()
                && let Some(found) = discovered.get(&site.name)
            {
                let configured: std::collections::HashSet<String> = site.articles.iter().cloned().collect();
                site.articles.extend(
                    found
                        .iter()
                        .filter(|f| !configured.contains(&f.path))
                        .map(|f| f.path.clone()),
                );
                // A configured article's date too, when a sitemap or feed lists it.
                site.article_dates
                    .extend(found.iter().filter_map(|f| Some((f.path.clone(), f.date?))));
            }
            site
        })
        .collect()
}
