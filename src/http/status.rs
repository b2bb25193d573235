//! The operators' JSON views of a snapshot: `/status`, `/status/{site}`,
//! and `mirrorgate check --format json`. Hashes are `sha256:<hex>`, times
//! RFC 3339 UTC.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::clock::{UnixMillis, rfc3339};
use crate::country::Country;
use crate::fingerprint::Hash;
use crate::state::evidence::{Evidence, EvidenceStore};
use crate::state::snapshot::{ArticleView, BaseState, Catalog, SiteMeta, Snapshot};
use crate::state::tiers::Tier;
use crate::store::StoreHealth;
use crate::vantage::view::{AgentStatus, CountryStatus, VantageView};
use crate::verdict::observation::Outcome;
use crate::verdict::{Reason, Source, Verdict};
use std::sync::atomic::Ordering::Relaxed;

#[derive(Serialize)]
pub struct Overview<'a> {
    pub generated_at: String,
    pub round: Round,
    pub store: StoreStatus,
    pub cluster: ClusterStatus,
    pub config: ConfigStatus,
    /// Vantage-point agents (`[[vantage.agents]]`).
    pub agents: Vec<AgentStatus>,
    /// What readers' own browsers reported failing (`/p/`), kept apart
    /// from the agents': anyone can send one.
    pub reader_reports: Vec<crate::vantage::reports::ReportStatus>,
    /// Hosts the primary's pages name as the site's other addresses that
    /// the config does not list; never routed to until added.
    pub proposed_mirrors: Vec<crate::state::evidence::Proposal>,
    pub sites: Vec<SiteSummary<'a>>,
}

/// The instances sharing this store, as this one's last heartbeat found
/// them (on SQLite: this one, leading).
#[derive(Serialize)]
pub struct ClusterStatus {
    pub backend: &'static str,
    pub instance: String,
    pub leader: Option<String>,
    pub instances: Vec<Member>,
}

#[derive(Serialize)]
pub struct Member {
    pub name: String,
    pub last_seen: String,
    pub leader: bool,
    pub probes_last_interval: u64,
    pub config_hash: String,
}

/// Whether the last reload worked, and why not.
#[derive(Serialize, Default)]
pub struct ConfigStatus {
    pub last_reload_ok: bool,
    pub last_reload_error: Option<String>,
    pub last_reload_error_at: Option<String>,
    pub reloads_succeeded: u64,
    pub reloads_failed: u64,
}

#[derive(Serialize)]
pub struct Round {
    pub completed: u64,
    /// Rounds that outlasted `probe.interval` since start.
    pub overruns: u64,
    pub last_started_at: Option<String>,
    pub last_finished_at: Option<String>,
    pub last_duration_ms: Option<u64>,
}

#[derive(Serialize)]
pub struct StoreStatus {
    /// `sqlite`, `postgres` or `none`.
    pub backend: &'static str,
    /// This daemon's `[store] instance` name.
    pub instance: String,
    pub ok: bool,
    pub error: Option<String>,
    pub error_at: Option<String>,
    /// Results waiting to be written (a backlog while writes fail).
    pub backlog: usize,
    /// Results dropped because the backlog was full.
    pub dropped: u64,
    /// When the next write is tried, while writes fail.
    pub next_retry_at: Option<String>,
}

#[derive(Serialize)]
pub struct SiteSummary<'a> {
    pub name: &'a str,
    pub articles: usize,
    /// Articles no base serves the reference of now: readers get a 503.
    pub articles_without_base: usize,
    pub bases: Vec<BaseSummary<'a>>,
    /// Articles by tier (`[schedule]`), and what that costs per interval.
    pub schedule: ScheduleSummary,
    /// The last discovery run, when the site has `[sites.discover]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discovery: Option<DiscoverySummary>,
}

#[derive(Serialize, Default)]
pub struct ScheduleSummary {
    pub hot: usize,
    pub warm: usize,
    pub cold: usize,
    /// Articles one of whose bases is due for a probe now.
    pub due_now: usize,
    /// Probes the tiers ask for per `[probe] interval`, over every base.
    pub probes_per_interval: u64,
}

impl ScheduleSummary {
    fn of(catalog: &Catalog, site: usize, view: &crate::state::snapshot::SiteView, now: UnixMillis) -> Self {
        let mut summary = ScheduleSummary::default();
        let mut probes = 0.0;
        let bases = catalog.sites[site].bases.len();
        for (article, article_view) in view.articles.iter().enumerate() {
            let plan = catalog.plan(site, article, article_view, now);
            match plan.tier {
                Tier::Hot => summary.hot += 1,
                Tier::Warm => summary.warm += 1,
                Tier::Cold => summary.cold += 1,
            }
            if plan.next_probe_at <= now {
                summary.due_now += 1;
            }
            probes += catalog.probes_per_interval(plan.tier, bases);
        }
        summary.probes_per_interval = probes.round() as u64;
        summary
    }
}

#[derive(Serialize)]
pub struct DiscoverySummary {
    pub last_run_at: Option<String>,
    /// Articles discovery adds to the configured ones.
    pub articles: usize,
    /// URLs on other hosts (or not http), ignored.
    pub other_hosts: usize,
    pub sources: Vec<crate::discover::SourceStatus>,
}

#[derive(Serialize)]
pub struct BaseSummary<'a> {
    pub url: &'a str,
    pub role: &'static str,
    pub state: BaseState,
    pub uptime: UptimeRatios,
    pub latency_ms: Latency,
    pub verdicts: VerdictCounts,
    /// Diverged articles by reason (every reason, zero or not).
    pub reasons: BTreeMap<&'static str, usize>,
    /// The base as agents in each country with agents see it.
    pub countries: BTreeMap<Country, CountryStatus>,
    /// Its pages' subresources and links on other bases.
    pub leaks: LeakTotals,
}

#[derive(Serialize, Default, Clone, Copy)]
pub struct LeakTotals {
    /// Articles whose page has any.
    pub articles: usize,
    pub resources: u64,
    pub links: u64,
}

#[derive(Serialize)]
pub struct UptimeRatios {
    #[serde(rename = "1h")]
    pub hour: Option<f64>,
    #[serde(rename = "24h")]
    pub day: Option<f64>,
    #[serde(rename = "7d")]
    pub week: Option<f64>,
    #[serde(rename = "30d")]
    pub month: Option<f64>,
}

#[derive(Serialize)]
pub struct Latency {
    pub p50: Option<u32>,
    pub p95: Option<u32>,
}

#[derive(Serialize)]
pub struct VerdictCounts {
    pub same: usize,
    pub stale: usize,
    pub diverged: usize,
    pub missing: usize,
    pub unknown: usize,
    pub unreachable: usize,
}

#[derive(Serialize)]
pub struct SiteDetail<'a> {
    pub generated_at: String,
    pub name: &'a str,
    pub articles: Vec<ArticleDetail<'a>>,
}

#[derive(Serialize)]
pub struct ArticleDetail<'a> {
    pub path: &'a str,
    /// `config`, or `discovered`.
    pub source: &'static str,
    /// The sitemap or feed that listed it, when discovered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discovered_from: Option<String>,
    /// Its lastmod or publication date, when discovered with one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published_at: Option<String>,
    pub reference: Option<Hash>,
    /// `primary` (served now), `history` (the newest version the primary
    /// served, while it serves none it can be trusted with), `consensus`.
    pub reference_source: Option<Source>,
    pub redirect_to: Option<String>,
    /// `hot`, `warm` or `cold` (`[schedule]`).
    pub tier: Tier,
    /// The earliest of its bases' next probes.
    pub next_probe_at: String,
    pub bases: Vec<BaseDetail<'a>>,
}

#[derive(Serialize)]
pub struct BaseDetail<'a> {
    pub url: &'a str,
    pub role: &'static str,
    pub verdict: Option<Verdict>,
    /// Why, when `diverged`.
    pub diverged_reason: Option<Reason>,
    /// Where the evidence is, when `stale` or `diverged`.
    pub evidence: Option<String>,
    /// The evidence itself (`mirrorgate check`, which has no endpoint).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence_detail: Option<Arc<Evidence>>,
    pub outcome: Option<Outcome>,
    pub http_status: Option<u16>,
    pub latency_ms: Option<u32>,
    pub hash: Option<Hash>,
    pub raw_hash: Option<crate::fingerprint::RawHash>,
    pub checked_at: Option<String>,
    pub last_ok_at: Option<String>,
    /// The verdict agents in each country got, when they probed it lately.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub countries: BTreeMap<Country, Verdict>,
    /// Subresources and links of its latest page on another base (a warning,
    /// not a verdict: the page breaks where that base is blocked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leaks: Option<Arc<crate::fingerprint::leaks::Leaks>>,
}

fn role(base: usize) -> &'static str {
    if base == 0 { "primary" } else { "mirror" }
}

fn time(ms: Option<UnixMillis>) -> Option<String> {
    ms.map(rfc3339)
}

/// `store` is read live: its health is a fact of now, not of the last round.
pub fn overview<'a>(
    snapshot: &'a Snapshot,
    store: Option<&StoreHealth>,
    counters: Option<&crate::http::metrics::Counters>,
    vantage: Option<&VantageView>,
    now: UnixMillis,
) -> Overview<'a> {
    let store_error = store.and_then(StoreHealth::last_error);
    let sites = snapshot
        .catalog
        .sites
        .iter()
        .zip(&snapshot.sites)
        .enumerate()
        .map(|(site_index, (meta, view))| SiteSummary {
            name: &meta.name,
            articles: meta.articles.len(),
            articles_without_base: view.articles_without_base(),
            schedule: ScheduleSummary::of(&snapshot.catalog, site_index, view, now),
            discovery: None,
            bases: meta
                .base_names
                .iter()
                .zip(&view.bases)
                .enumerate()
                .map(|(index, (url, base))| {
                    let [same, stale, diverged, missing, unknown, unreachable] = base.verdict_counts;
                    BaseSummary {
                        url,
                        role: role(index),
                        state: base.state,
                        uptime: UptimeRatios {
                            hour: base.uptime.hour,
                            day: base.uptime.day,
                            week: base.uptime.week,
                            month: base.uptime.month,
                        },
                        latency_ms: Latency {
                            p50: base.latency_p50,
                            p95: base.latency_p95,
                        },
                        verdicts: VerdictCounts {
                            same,
                            stale,
                            diverged,
                            missing,
                            unknown,
                            unreachable,
                        },
                        reasons: Reason::ALL
                            .iter()
                            .map(|r| (r.as_str(), base.reason_counts[r.index()]))
                            .collect(),
                        countries: vantage
                            .and_then(|v| v.countries.get(site_index)?.get(index).cloned())
                            .unwrap_or_default(),
                        leaks: LeakTotals::default(),
                    }
                })
                .collect(),
        })
        .collect();
    Overview {
        generated_at: rfc3339(now),
        round: Round {
            completed: snapshot.round.completed,
            overruns: counters.map_or(0, |c| c.rounds_overrun.load(std::sync::atomic::Ordering::Relaxed)),
            last_started_at: time(snapshot.round.last_started_at),
            last_finished_at: time(snapshot.round.last_finished_at),
            last_duration_ms: snapshot.round.last_duration_ms,
        },
        cluster: {
            let cluster = store
                .map(|s| s.cluster.lock().map(|c| c.clone()).unwrap_or_default())
                .unwrap_or_default();
            ClusterStatus {
                backend: store.map_or("none", |s| s.backend),
                instance: store.map(|s| s.instance.clone()).unwrap_or_default(),
                leader: cluster.leader,
                instances: cluster
                    .members
                    .into_iter()
                    .map(|m| Member {
                        name: m.name,
                        last_seen: rfc3339(m.last_seen),
                        leader: m.leader,
                        probes_last_interval: m.probes_last_interval,
                        config_hash: m.config_hash,
                    })
                    .collect(),
            }
        },
        store: StoreStatus {
            backend: store.map_or("none", |s| s.backend),
            instance: store.map(|s| s.instance.clone()).unwrap_or_default(),
            ok: store_error.is_none(),
            error: store_error.as_ref().map(|(_, e)| e.clone()),
            error_at: store_error.as_ref().map(|(at, _)| rfc3339(*at)),
            backlog: store.map_or(0, |s| s.pending.load(Relaxed)),
            dropped: store.map_or(0, |s| s.dropped.load(Relaxed)),
            next_retry_at: store
                .map(|s| s.retry_at.load(Relaxed))
                .filter(|&at| at > 0)
                .map(rfc3339),
        },
        config: counters.map_or_else(ConfigStatus::default, |c| {
            let error = c.reload_error();
            ConfigStatus {
                last_reload_ok: c.reload_successful.load(Relaxed),
                last_reload_error: error.as_ref().map(|(_, e)| e.clone()),
                last_reload_error_at: error.map(|(at, _)| rfc3339(at)),
                reloads_succeeded: c.reloads_succeeded.load(Relaxed),
                reloads_failed: c.reloads_failed.load(Relaxed),
            }
        }),
        agents: vantage.map(|v| v.agents.clone()).unwrap_or_default(),
        reader_reports: Vec::new(),
        proposed_mirrors: Vec::new(),
        sites,
    }
}

/// `inline`: the evidence store, to put evidence in the document itself
/// rather than link to it.
pub fn site_detail<'a>(
    snapshot: &'a Snapshot,
    site: usize,
    now: UnixMillis,
    inline: Option<&EvidenceStore>,
) -> SiteDetail<'a> {
    let meta = &snapshot.catalog.sites[site];
    let articles = meta
        .articles
        .iter()
        .zip(&snapshot.sites[site].articles)
        .enumerate()
        .map(|(article, (path, view))| {
            let plan = snapshot.catalog.plan(site, article, view, now);
            article_detail(meta, path, view, inline, plan)
        })
        .collect();
    SiteDetail {
        generated_at: rfc3339(now),
        name: &meta.name,
        articles,
    }
}

/// Hosts the primary's pages name as other addresses and no site lists.
pub fn proposals(snapshot: &Snapshot, store: &EvidenceStore) -> Vec<crate::state::evidence::Proposal> {
    store.proposals(|site, host| {
        snapshot
            .catalog
            .by_name
            .get(site)
            .and_then(|&s| snapshot.catalog.sites.get(s))
            .is_some_and(|meta| {
                meta.bases.iter().any(|b| {
                    let authority = b.authority().to_ascii_lowercase();
                    authority == host
                        || authority.strip_prefix("www.") == Some(host)
                        || host.strip_prefix("www.") == Some(&authority)
                })
            })
    })
}

/// Fills each base's leaks from the evidence store.
pub fn add_leaks(detail: &mut SiteDetail<'_>, store: &EvidenceStore) {
    let site = detail.name;
    for article in &mut detail.articles {
        for base in &mut article.bases {
            base.leaks = store.leaks(site, article.path, base.url);
        }
    }
}

/// Fills each base's leak totals from the evidence store.
pub fn add_leak_totals(overview: &mut Overview<'_>, store: &EvidenceStore) {
    for site in &mut overview.sites {
        let totals = store.leak_totals(site.name);
        for base in &mut site.bases {
            if let Some(&(articles, resources, links)) = totals.get(base.url) {
                base.leaks = LeakTotals {
                    articles,
                    resources,
                    links,
                };
            }
        }
    }
}

/// Marks the articles discovery found (and not configured too).
pub fn add_discovery_sources(detail: &mut SiteDetail<'_>, found: &[crate::store::DiscoveredArticle]) {
    let by_path: std::collections::HashMap<&str, &crate::store::DiscoveredArticle> =
        found.iter().map(|f| (f.path.as_str(), f)).collect();
    for article in &mut detail.articles {
        if let Some(found) = by_path.get(article.path) {
            article.source = "discovered";
            article.discovered_from = Some(found.source.clone());
            article.published_at = found.date.map(rfc3339);
        }
    }
}

/// Adds what each country's agents got for each article of `site`.
pub fn add_country_verdicts(detail: &mut SiteDetail<'_>, site: usize, vantage: &VantageView) {
    for (&country, sites) in &vantage.routes {
        let Some(routes) = sites.get(site) else { continue };
        for (&article, verdicts) in &routes.articles {
            let Some(entry) = detail.articles.get_mut(article as usize) else {
                continue;
            };
            for (base, verdict) in entry.bases.iter_mut().zip(verdicts.iter()) {
                if let Some(verdict) = verdict {
                    base.countries.insert(country, *verdict);
                }
            }
        }
    }
}

/// Where one base's evidence for an article is served.
pub fn evidence_link(site: &str, path: &str, base: &str) -> String {
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("path", path)
        .append_pair("base", base)
        .finish();
    let site: String = url::form_urlencoded::byte_serialize(site.as_bytes()).collect();
    format!("/status/{site}/evidence?{query}")
}

pub fn article_detail<'a>(
    meta: &'a SiteMeta,
    path: &'a str,
    view: &ArticleView,
    inline: Option<&EvidenceStore>,
    plan: crate::state::tiers::Plan,
) -> ArticleDetail<'a> {
    let bases = &meta.base_names;
    ArticleDetail {
        path,
        source: "config",
        discovered_from: None,
        published_at: None,
        reference: view.reference.map(|r| r.hash),
        reference_source: view.reference.map(|r| r.source),
        redirect_to: (view.candidates(meta.prefer_primary).next()).map(|b| format!("{}{}", bases[b], path)),
        tier: plan.tier,
        next_probe_at: rfc3339(plan.next_probe_at),
        bases: bases
            .iter()
            .enumerate()
            .map(|(index, url)| {
                let observation = view.observation(index);
                let observation = observation.as_ref();
                let verdict = view.verdict(index);
                let has_evidence = matches!(verdict, Some(Verdict::Stale | Verdict::Diverged));
                BaseDetail {
                    url,
                    role: role(index),
                    verdict,
                    diverged_reason: view.reason(index),
                    evidence: has_evidence.then(|| evidence_link(&meta.name, path, url)),
                    evidence_detail: inline
                        .filter(|_| has_evidence)
                        .and_then(|store| store.get(&meta.name, path, url)),
                    outcome: observation.map(|o| o.outcome),
                    http_status: observation.and_then(|o| o.http_status),
                    latency_ms: observation.map(|o| o.latency_ms),
                    hash: observation.and_then(|o| o.hash),
                    raw_hash: observation.and_then(|o| o.raw_hash),
                    checked_at: time(observation.map(|o| o.checked_at)),
                    last_ok_at: time(observation.and_then(|o| o.last_ok_at)),
                    countries: BTreeMap::new(),
                    leaks: inline.and_then(|store| store.leaks(&meta.name, path, url)),
                }
            })
            .collect(),
    }
}

/// `GET /status/{site}/evidence?path=…&base=…`.
#[derive(Serialize)]
pub struct EvidenceDocument<'a> {
    pub generated_at: String,
    pub site: &'a str,
    pub path: &'a str,
    pub base: &'a str,
    #[serde(flatten)]
    pub evidence: &'a Evidence,
}
