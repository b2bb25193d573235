//! `mirrorgate check`: one probe round over everything, then a report.
//!
//! It runs the same scheduler and engine as the daemon, without a server and
//! without writing. If the daemon's store exists it is read for the
//! primary's version history, so stale mirrors are told from diverged ones.

use std::fmt::Write as _;
use std::sync::Arc;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::clock::now_ms;
use crate::cmd::run::StartError;
use crate::config::Config;
use crate::config::StoreBackend;
use crate::http::status;
use crate::state::engine::{self, Engine, EngineEvent, Evidence};
use crate::state::schedule::Scheduler;
use crate::state::snapshot::{Catalog, Snapshot};
use crate::store::{SqliteStore, Store, StoredState};

pub struct Report {
    pub snapshot: Arc<Snapshot>,
    pub evidence: Evidence,
}

impl Report {
    /// True when every article has a reachable base serving the reference.
    pub fn all_served(&self) -> bool {
        self.snapshot
            .sites
            .iter()
            .all(|site| site.articles.iter().all(|a| a.has_candidate()))
    }

    pub fn json(&self) -> String {
        #[derive(Serialize)]
        struct Json<'a> {
            ok: bool,
            generated_at: String,
            sites: Vec<status::SiteDetail<'a>>,
            proposed_mirrors: Vec<crate::state::evidence::Proposal>,
        }
        let now = now_ms();
        let store = self.evidence.lock().ok();
        let json = Json {
            ok: self.all_served(),
            generated_at: crate::clock::rfc3339(now),
            sites: (0..self.snapshot.sites.len())
                .map(|s| status::site_detail(&self.snapshot, s, now, store.as_deref()))
                .collect(),
            proposed_mirrors: store
                .as_deref()
                .map(|s| status::proposals(&self.snapshot, s))
                .unwrap_or_default(),
        };
        serde_json::to_string_pretty(&json).unwrap_or_default()
    }

    /// Each site's bases first (state and verdict counts), then only the
    /// articles that are not fine (some base not serving the reference), each
    /// with every base's verdict and the evidence; a closing count.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let (mut articles, mut unserved) = (0, 0);
        let store = self.evidence.lock().ok();
        let now = crate::clock::now_ms();
        for (site_index, (meta, site)) in self.snapshot.catalog.sites.iter().zip(&self.snapshot.sites).enumerate() {
            let _ = writeln!(
                out,
                "site {}: {} bases, {} articles",
                meta.name,
                meta.base_names.len(),
                meta.articles.len()
            );
            let _ = writeln!(
                out,
                "  {:<8} {:<9} {:>5} {:>5} {:>8} {:>7} {:>7} {:>11}  base",
                "role", "state", "same", "stale", "diverged", "missing", "unknown", "unreachable"
            );
            for (index, (url, base)) in meta.base_names.iter().zip(&site.bases).enumerate() {
                let [same, stale, diverged, missing, unknown, unreachable] = base.verdict_counts;
                let role = if index == 0 { "primary" } else { "mirror" };
                let state = base.state.as_str();
                let _ = writeln!(
                    out,
                    "  {role:<8} {state:<9} {same:>5} {stale:>5} {diverged:>8} {missing:>7} {unknown:>7} {unreachable:>11}  {url}"
                );
            }
            let mut not_fine = 0;
            for (article, (path, view)) in meta.articles.iter().zip(&site.articles).enumerate() {
                articles += 1;
                let fine = (0..meta.base_names.len()).all(|b| view.verdict(b) == Some(crate::verdict::Verdict::Same));
                if !view.has_candidate() {
                    unserved += 1;
                }
                if fine {
                    continue;
                }
                if not_fine == 0 {
                    let _ = writeln!(out, "  articles not served the same by every base:");
                }
                not_fine += 1;
                let plan = self.snapshot.catalog.plan(site_index, article, view, now);
                let detail = status::article_detail(meta, path, view, store.as_deref(), plan);
                match &detail.redirect_to {
                    Some(to) => {
                        let _ = writeln!(out, "  {path}  ->  {to}");
                    }
                    None => {
                        let _ = writeln!(out, "  {path}  ->  NO BASE SERVES THE REFERENCE");
                    }
                }
                for base in &detail.bases {
                    let verdict = match (base.verdict, base.diverged_reason) {
                        (Some(verdict), Some(reason)) => format!("{} ({})", verdict.as_str(), reason.as_str()),
                        (Some(verdict), None) => verdict.as_str().to_string(),
                        (None, _) => "-".to_string(),
                    };
                    let outcome = base.outcome.map_or("-", |o| o.as_str());
                    let status = base.http_status.map_or(String::new(), |s| s.to_string());
                    let latency = base.latency_ms.map_or(String::new(), |l| format!("{l} ms"));
                    let _ = writeln!(
                        out,
                        "    {verdict:<28} {outcome:<20} {status:>3} {latency:>8}  {}",
                        base.url
                    );
                    if let Some(evidence) = &base.evidence_detail {
                        write_evidence(&mut out, evidence);
                    }
                }
            }
            if not_fine == 0 {
                let _ = writeln!(out, "  every base serves the reference of every article");
            }
        }
        let proposals = store
            .as_deref()
            .map(|s| status::proposals(&self.snapshot, s))
            .unwrap_or_default();
        if !proposals.is_empty() {
            let _ = writeln!(out, "proposed mirrors (named by the primary's pages, not configured):");
            for p in &proposals {
                let _ = writeln!(
                    out,
                    "  {} {}: seen in {} on {} page(s), e.g. {}\n    {}",
                    p.site, p.host, p.via, p.pages, p.seen_on, p.config
                );
            }
        }
        let _ = writeln!(
            out,
            "{} of {articles} articles have a live base serving the reference content",
            articles - unserved
        );
        out
    }
}

/// Evidence under its verdict, indented.
fn write_evidence(out: &mut String, evidence: &crate::state::evidence::Evidence) {
    let indent = "        ";
    if let Some(rule) = &evidence.rule {
        let _ = writeln!(out, "{indent}recognised by: {rule}");
    }
    if let Some(differs) = &evidence.page.differs {
        let _ = writeln!(out, "{indent}page: {differs}");
    }
    if let Some(note) = &evidence.note {
        let _ = writeln!(out, "{indent}({note})");
    }
    if let Some(diff) = &evidence.diff {
        for line in diff.lines() {
            let _ = writeln!(out, "{indent}{line}");
        }
        if evidence.diff_truncated {
            let _ = writeln!(
                out,
                "{indent}[diff cut at {} bytes]",
                crate::state::evidence::MAX_DIFF_BYTES
            );
        }
    }
}

/// One discovery pass for every site with `[sites.discover]`, so `check`
/// sees the articles the daemon would.
async fn discover_once(config: &Config) -> std::collections::HashMap<String, Vec<crate::store::DiscoveredArticle>> {
    let mut found = std::collections::HashMap::new();
    let Ok(client) = reqwest::Client::builder()
        .user_agent(config.probe.user_agent.clone())
        .timeout(std::time::Duration::from_secs(60))
        .build()
    else {
        return found;
    };
    for site in &config.sites {
        let Some(discover) = &site.discover else { continue };
        let mut cache = crate::discover::Cache::default();
        let run = crate::discover::run(&client, &site.primary, discover, &mut cache, now_ms()).await;
        for source in &run.sources {
            source.log_failure(&site.name);
        }
        found.insert(site.name.clone(), run.articles);
    }
    found
}

pub async fn check(config: &Config) -> Result<Report, StartError> {
    let discovered = discover_once(config).await;
    let mut merged = config.clone();
    merged.sites = crate::discover::task::with_discovered(&config.sites, &discovered);
    let config = &merged;
    let catalog = Arc::new(Catalog::new(config));
    let restored = stored_history(config).await;
    let engine = Engine::new(
        catalog.clone(),
        config.probe.down_after,
        config.store.retention,
        restored,
    );
    let evidence = engine.evidence();
    let scheduler = Scheduler::new(catalog, &config.probe, evidence.clone())?;
    let (events, task) = engine::spawn(engine, None, None);
    let started = tokio::time::Instant::now();
    scheduler
        .round(&events, &CancellationToken::new(), None, false, None)
        .await;
    let _ = events
        .send(EngineEvent::RoundFinished {
            at: now_ms(),
            duration: started.elapsed(),
        })
        .await;
    drop(events);
    let engine = task.await.expect("the engine task does not panic");
    Ok(Report {
        snapshot: engine.snapshots().load_full(),
        evidence,
    })
}

/// The primary's version history from the daemon's store, if there is one.
async fn stored_history(config: &Config) -> Option<StoredState> {
    let store = config.store.clone();
    let loaded = match store.backend {
        StoreBackend::None => return None,
        StoreBackend::Sqlite if !store.path.exists() => return None,
        // Read-only, so `check` beside a running daemon never takes its lock.
        StoreBackend::Sqlite => {
            tokio::task::spawn_blocking(move || SqliteStore::open_read_only(&store.path)?.load_snapshot(0)).await
        }
        StoreBackend::Postgres => {
            tokio::task::spawn_blocking(move || crate::cmd::run::open_store(&store)?.load_snapshot(0)).await
        }
    }
    .ok()?;
    match loaded {
        Ok(state) => Some(StoredState {
            versions: state.versions,
            ..StoredState::default()
        }),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the store's version history; stale copies will show as diverged");
            None
        }
    }
}
