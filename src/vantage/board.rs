//! The daemon's side of the agents: the work it hands out, the results it
//! accepts, and what they come to per country.
//!
//! Each agent result becomes a *signal* for its base: reachable, or
//! blocked with OONI's kind, found by comparing it with what the daemon
//! sees (its addresses, its verdict for the same article). A country's
//! state for a base is what a quorum of its fresh, online agents signal,
//! and it changes only after holding for two consecutive agent cycles, so
//! one flaky cycle moves no reader.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;

use crate::clock::{UnixMillis, rfc3339};
use crate::config::{Config, SiteConfig, VantageConfig};
use crate::country::Country;
use crate::fingerprint::{CANONICAL_FORM_VERSION, Hash};
use crate::state::snapshot::{BaseState, Snapshot};
use crate::vantage::geoip::Geo;
use crate::verdict::observation::Outcome;
use crate::verdict::{self, Seen, Verdict};

use super::protocol::{Accepted, ProbeSettings, Probed, Results, Work, WorkSite};
use super::view::{AgentStatus, BlockKind, CountryState, CountryStatus, Reach, SiteRoutes, VantageView};

/// Work handed out that results may still name.
const ISSUED_KEPT: usize = 4;
/// Errors an answer lists, at most.
const ERRORS_LISTED: usize = 10;
/// Results not this fresh (in agent cycles) say nothing.
const FRESH_CYCLES: i64 = 3;

/// What one result says about its base from the agent's network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
enum Signal {
    Reachable,
    Blocked(BlockKind),
}

struct Agent {
    name: String,
    country: Country,
    asn: Option<u32>,
    last_seen: Option<UnixMillis>,
    control_ok: bool,
    accepted: u64,
    rejected: u64,
    issued: VecDeque<Issued>,
}

struct Issued {
    id: u64,
    cycle: i64,
    issued_at: UnixMillis,
    /// (site, article index) pairs the agent was asked for.
    articles: HashSet<(usize, usize)>,
}

struct AgentProbe {
    verdict: Verdict,
    checked_at: UnixMillis,
}

struct BaseSignal {
    signal: Signal,
    at: UnixMillis,
}

#[derive(Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Decided {
    state: CountryState,
    kind: Option<BlockKind>,
}

struct Published {
    decided: Decided,
    /// A different state seen, and the cycle it was first seen in.
    pending: Option<(Decided, i64)>,
    agents: usize,
    checked_at: Option<UnixMillis>,
}

pub struct Board {
    config: VantageConfig,
    sites: Vec<SiteConfig>,
    probe: ProbeSettings,
    agents: Vec<Agent>,
    next_work_id: u64,
    /// (agent, site, base, article) -> the agent's latest verdict there.
    probes: HashMap<(usize, usize, usize, usize), AgentProbe>,
    /// (agent, site, base) -> what its latest batch said about the base.
    signals: HashMap<(usize, usize, usize), BaseSignal>,
    states: HashMap<(Country, usize, usize), Published>,
    /// Host -> what the daemon's resolver answers for it.
    daemon_addresses: HashMap<String, Vec<IpAddr>>,
    geo: Geo,
}

/// Separates the names in a kept entry's key.
const KEPT_SEPARATOR: char = '\u{1f}';

#[derive(serde::Serialize, serde::Deserialize)]
struct KeptAgent {
    last_seen: Option<UnixMillis>,
    control_ok: bool,
    accepted: u64,
    rejected: u64,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct KeptSignal {
    signal: Signal,
    at: UnixMillis,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct KeptState {
    decided: Decided,
    pending: Option<(Decided, i64)>,
    agents: usize,
    checked_at: Option<UnixMillis>,
}

/// Why a batch was refused as a whole.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    UnknownWork(u64),
}

impl Board {
    pub fn new(config: &Config, geo: Geo) -> Self {
        let agents = config
            .vantage
            .agents
            .iter()
            .map(|a| Agent {
                name: a.name.clone(),
                country: a.country,
                asn: a.asn,
                last_seen: None,
                control_ok: false,
                accepted: 0,
                rejected: 0,
                issued: VecDeque::new(),
            })
            .collect();
        Board {
            config: config.vantage.clone(),
            sites: config.sites.clone(),
            probe: ProbeSettings {
                timeout_ms: config.probe.timeout.as_millis() as u64,
                max_body: config.probe.max_body,
                user_agent: config.probe.user_agent.clone(),
                concurrency: config.probe.concurrency.min(64),
            },
            agents,
            next_work_id: 1,
            probes: HashMap::new(),
            signals: HashMap::new(),
            states: HashMap::new(),
            daemon_addresses: HashMap::new(),
            geo,
        }
    }

    fn cycle_ms(&self) -> i64 {
        self.config.cycle.as_millis().max(1) as i64
    }

    fn cycle_of(&self, at: UnixMillis) -> i64 {
        at.div_euclid(self.cycle_ms())
    }

    /// Every base host the daemon resolves for DNS comparisons.
    pub fn hosts(&self) -> Vec<(String, u16)> {
        let mut hosts: Vec<(String, u16)> = self
            .sites
            .iter()
            .flat_map(|s| s.bases())
            .filter_map(|o| {
                let url = url::Url::parse(o.as_str()).ok()?;
                Some((url.host_str()?.to_string(), url.port_or_known_default()?))
            })
            .collect();
        hosts.sort();
        hosts.dedup();
        hosts
    }

    pub fn set_daemon_addresses(&mut self, host: String, addresses: Vec<IpAddr>) {
        self.daemon_addresses.insert(host, addresses);
    }

    /// This cycle's work for `agent`: every base of every site, and a
    /// rotating sample of each site's articles.
    pub fn work(&mut self, agent: usize, now: UnixMillis) -> Work {
        let cycle = self.cycle_of(now);
        let sample = self.config.sample;
        let mut asked = HashSet::new();
        let sites = self
            .sites
            .iter()
            .enumerate()
            .map(|(site_index, site)| {
                let n = site.articles.len();
                let take = sample.min(n);
                let start = if n == 0 {
                    0
                } else {
                    (cycle.unsigned_abs() as usize * take) % n
                };
                let articles = (0..take)
                    .map(|k| {
                        let index = (start + k) % n;
                        asked.insert((site_index, index));
                        site.articles[index].clone()
                    })
                    .collect();
                WorkSite {
                    name: site.name.clone(),
                    bases: site.bases().map(|b| b.as_str().to_string()).collect(),
                    aliases: site.aliases.clone(),
                    content_selector: site.content_selector.as_ref().map(|s| s.as_str().to_string()),
                    content_exclude: site.content_exclude.iter().map(|s| s.as_str().to_string()).collect(),
                    articles,
                }
            })
            .collect();
        let id = self.next_work_id;
        self.next_work_id += 1;
        let record = &mut self.agents[agent];
        record.last_seen = Some(now);
        record.issued.push_back(Issued {
            id,
            cycle,
            issued_at: now,
            articles: asked,
        });
        while record.issued.len() > ISSUED_KEPT {
            record.issued.pop_front();
        }
        Work {
            agent: record.name.clone(),
            country: record.country.to_string(),
            work_id: id,
            cycle_secs: self.config.cycle.as_secs().max(1),
            control_url: self.config.control_url.clone(),
            canonical_form: CANONICAL_FORM_VERSION,
            probe: self.probe.clone(),
            sites,
        }
    }

    /// Takes a batch of `agent`'s results, judged against `snapshot`.
    pub fn ingest(
        &mut self,
        agent: usize,
        results: Results,
        snapshot: &Snapshot,
        now: UnixMillis,
    ) -> Result<Accepted, Refused> {
        let Some(issued) = self.agents[agent].issued.iter().find(|w| w.id == results.work_id) else {
            return Err(Refused::UnknownWork(results.work_id));
        };
        let (cycle, issued_at) = (issued.cycle, issued.issued_at);
        let asked = issued.articles.clone();
        let mut answer = Accepted::default();
        let mut batch: HashMap<(usize, usize), HashMap<Signal, usize>> = HashMap::new();
        for probed in &results.results {
            match self.judge(probed, &asked, issued_at, snapshot, now) {
                Ok((site, base, article, verdict, signal)) => {
                    answer.accepted += 1;
                    self.probes.insert(
                        (agent, site, base, article),
                        AgentProbe {
                            verdict,
                            checked_at: probed.checked_at as i64,
                        },
                    );
                    *batch.entry((site, base)).or_default().entry(signal).or_default() += 1;
                }
                Err(error) => {
                    answer.rejected += 1;
                    if answer.errors.len() < ERRORS_LISTED {
                        answer.errors.push(error);
                    }
                }
            }
        }
        let record = &mut self.agents[agent];
        record.last_seen = Some(now);
        record.control_ok = results.control_ok;
        record.accepted += answer.accepted as u64;
        record.rejected += answer.rejected as u64;
        let country = record.country;
        for ((site, base), counts) in batch {
            // The base's signal for this batch: the commonest; a tie goes
            // to "reachable", which moves no reader away.
            let signal = counts
                .iter()
                .max_by_key(|(signal, count)| (**count, **signal == Signal::Reachable))
                .map(|(signal, _)| *signal)
                .unwrap_or(Signal::Reachable);
            self.signals.insert((agent, site, base), BaseSignal { signal, at: now });
        }
        self.evaluate_country(country, cycle, true, snapshot, now);
        Ok(answer)
    }

    /// Checks one result and says what it means; Err names what is wrong.
    fn judge(
        &self,
        probed: &Probed,
        asked: &HashSet<(usize, usize)>,
        issued_at: UnixMillis,
        snapshot: &Snapshot,
        now: UnixMillis,
    ) -> Result<(usize, usize, usize, Verdict, Signal), String> {
        let catalog = &snapshot.catalog;
        let site = *catalog
            .by_name
            .get(&probed.site)
            .ok_or_else(|| format!("unknown site \"{}\"", probed.site))?;
        let meta = &catalog.sites[site];
        let origin = crate::origin::Origin::parse(&probed.base)
            .map_err(|_| format!("base \"{}\" is not a base URL", probed.base))?;
        let base = meta
            .bases
            .iter()
            .position(|b| *b == origin)
            .ok_or_else(|| format!("\"{}\" is not a base of site \"{}\"", probed.base, probed.site))?;
        let article = *meta
            .article_index
            .get(probed.article.as_str())
            .filter(|&&index| asked.contains(&(site, index)))
            .ok_or_else(|| {
                format!(
                    "article \"{}\" of site \"{}\" was not in the work given",
                    probed.article, probed.site
                )
            })?;
        let checked_at = i64::try_from(probed.checked_at).unwrap_or(i64::MAX);
        let slack = self.cycle_ms().max(60_000);
        if checked_at < issued_at - slack || checked_at > now + 60_000 {
            return Err(format!(
                "checked_at {} is outside the work's cycle ({} to now)",
                probed.checked_at,
                rfc3339(issued_at)
            ));
        }
        if probed.latency_ms > 3_600_000 {
            return Err(format!("latency_ms {} is not a probe's", probed.latency_ms));
        }
        let hash = match (&probed.hash, probed.outcome) {
            (Some(text), _) => Some(Hash::parse(text).ok_or_else(|| format!("hash \"{text}\" is not sha256:<hex>"))?),
            (None, Outcome::Ok) => return Err("an ok result needs its hash".into()),
            (None, _) => None,
        };
        let view = snapshot
            .sites
            .get(site)
            .and_then(|s| s.articles.get(article))
            .ok_or_else(|| "the daemon has no view of this article yet".to_string())?;
        let rules = meta.rules(catalog.max_age, now);
        let seen = Seen {
            outcome: probed.outcome,
            http_status: probed.http_status,
            hash,
            page: probed.page.map(Into::into).unwrap_or_default(),
            rules: rules.key,
            checked_at,
        };
        let (verdict, _) = verdict::verdict(&seen, view.reference.as_ref(), &view.history, &rules, None);
        // The same bytes as the daemon gets there count as reachable even
        // when that is not the article (a stale mirror is stale everywhere).
        let as_daemon_sees =
            probed.outcome == Outcome::Ok && hash.is_some() && view.observation(base).and_then(|o| o.hash) == hash;
        let signal = if verdict == Verdict::Same || as_daemon_sees {
            Signal::Reachable
        } else if self.dns_differs(&meta.bases[base], &probed.addresses) {
            Signal::Blocked(BlockKind::Dns)
        } else {
            let https = meta.bases[base].scheme() == "https";
            Signal::Blocked(match probed.outcome {
                Outcome::Dns => BlockKind::Dns,
                // TCP opened, then reset: in the TLS handshake (SNI
                // filtering) for https, in the HTTP exchange for http.
                Outcome::Connect if probed.tcp_connected == Some(true) && https => BlockKind::Tls,
                Outcome::Connect if probed.tcp_connected == Some(true) => BlockKind::HttpFailure,
                Outcome::Connect => BlockKind::TcpIp,
                Outcome::Tls => BlockKind::Tls,
                Outcome::Ok | Outcome::HttpStatus | Outcome::RedirectedOffSite => BlockKind::HttpDiff,
                _ => BlockKind::HttpFailure,
            })
        };
        Ok((site, base, article, verdict, signal))
    }

    /// The agent's resolver answered addresses the daemon's never does,
    /// and (with an ASN database) none in a network the daemon's are in:
    /// a CDN answering each country from nearby shares its networks.
    fn dns_differs(&self, base: &crate::origin::Origin, addresses: &[IpAddr]) -> bool {
        let Some(host) = url::Url::parse(base.as_str())
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
        else {
            return false;
        };
        let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        if addresses.is_empty() || host.parse::<IpAddr>().is_ok() {
            return false;
        }
        let Some(daemon) = self.daemon_addresses.get(&host).filter(|a| !a.is_empty()) else {
            return false;
        };
        if addresses.iter().any(|a| daemon.contains(a)) {
            return false;
        }
        let geo = self.geo.load();
        let theirs: HashSet<u32> = daemon.iter().filter_map(|a| geo.asn(*a)).collect();
        let shared_network = addresses
            .iter()
            .filter_map(|a| geo.asn(*a))
            .any(|asn| theirs.contains(&asn));
        !shared_network
    }

    fn fresh(&self, agent: usize, at: UnixMillis, now: UnixMillis) -> bool {
        self.agents[agent].control_ok && now - at <= FRESH_CYCLES * self.cycle_ms()
    }

    /// Re-decides every base's state in `country`. Only a batch (`results`)
    /// is evidence for a state; between batches the state can only lapse
    /// to `unknown` as results age.
    fn evaluate_country(&mut self, country: Country, cycle: i64, results: bool, snapshot: &Snapshot, now: UnixMillis) {
        let members: Vec<usize> = (0..self.agents.len())
            .filter(|&a| self.agents[a].country == country)
            .collect();
        let quorum = self.config.quorum_of(members.len());
        for site in 0..snapshot.catalog.sites.len() {
            for base in 0..snapshot.catalog.sites[site].bases.len() {
                let mut counts: HashMap<Signal, usize> = HashMap::new();
                let mut fresh_agents = 0;
                let mut checked_at = None;
                for &agent in &members {
                    if let Some(signal) = self.signals.get(&(agent, site, base))
                        && self.fresh(agent, signal.at, now)
                    {
                        fresh_agents += 1;
                        *counts.entry(signal.signal).or_default() += 1;
                        checked_at = checked_at.max(Some(signal.at));
                    }
                }
                let reachable = counts.get(&Signal::Reachable).copied().unwrap_or(0);
                let blocked: usize = counts
                    .iter()
                    .filter(|(s, _)| **s != Signal::Reachable)
                    .map(|(_, c)| c)
                    .sum();
                let kind = counts
                    .iter()
                    .filter_map(|(s, c)| match s {
                        Signal::Blocked(kind) => Some((*c, std::cmp::Reverse(*kind), *kind)),
                        Signal::Reachable => None,
                    })
                    .max()
                    .map(|(_, _, kind)| kind);
                let daemon_down = snapshot
                    .sites
                    .get(site)
                    .and_then(|s| s.bases.get(base))
                    .is_some_and(|b| b.state == BaseState::Down);
                let decided = if reachable >= quorum {
                    Decided {
                        state: CountryState::Reachable,
                        kind: None,
                    }
                } else if blocked >= quorum && daemon_down {
                    Decided {
                        state: CountryState::Down,
                        kind: None,
                    }
                } else if blocked >= quorum {
                    Decided {
                        state: CountryState::Blocked,
                        kind,
                    }
                } else {
                    Decided {
                        state: CountryState::Unknown,
                        kind: None,
                    }
                };
                let published = self.states.entry((country, site, base)).or_insert(Published {
                    decided: Decided {
                        state: CountryState::Unknown,
                        kind: None,
                    },
                    pending: None,
                    agents: 0,
                    checked_at: None,
                });
                published.agents = fresh_agents;
                published.checked_at = checked_at.or(published.checked_at);
                if decided == published.decided {
                    published.pending = None;
                    continue;
                }
                let evidence = results || decided.state == CountryState::Unknown;
                match published.pending {
                    Some((pending, since)) if pending == decided => {
                        if cycle > since && evidence {
                            published.decided = decided;
                            published.pending = None;
                        }
                    }
                    _ => published.pending = Some((decided, cycle)),
                }
            }
        }
    }

    /// Between batches: agents that fell silent stop counting.
    pub fn tick(&mut self, snapshot: &Snapshot, now: UnixMillis) {
        let cycle = self.cycle_of(now);
        let mut countries: Vec<Country> = self.agents.iter().map(|a| a.country).collect();
        countries.sort();
        countries.dedup();
        for country in countries {
            self.evaluate_country(country, cycle, false, snapshot, now);
        }
    }

    /// What a restart must not forget, by names (agent, site, base URL,
    /// country) rather than indexes, so a changed config maps it back:
    /// each agent's counts and last sight, its latest signal per base, and
    /// each country's published state. The agents' per-article verdicts are
    /// not kept; the next cycle brings them.
    pub fn export_kept(&self) -> Vec<(String, String)> {
        let base_url =
            |site: usize, base: usize| -> Option<String> { Some(self.sites.get(site)?.bases().nth(base)?.to_string()) };
        let mut entries = Vec::new();
        for agent in &self.agents {
            let kept = KeptAgent {
                last_seen: agent.last_seen,
                control_ok: agent.control_ok,
                accepted: agent.accepted,
                rejected: agent.rejected,
            };
            if let Ok(value) = serde_json::to_string(&kept) {
                entries.push((format!("agent{S}{}", agent.name, S = KEPT_SEPARATOR), value));
            }
        }
        for (&(agent, site, base), signal) in &self.signals {
            let (Some(agent), Some(url)) = (self.agents.get(agent), base_url(site, base)) else {
                continue;
            };
            let kept = KeptSignal {
                signal: signal.signal,
                at: signal.at,
            };
            if let Ok(value) = serde_json::to_string(&kept) {
                let name = &self.sites[site].name;
                entries.push((
                    format!("signal{S}{}{S}{name}{S}{url}", agent.name, S = KEPT_SEPARATOR),
                    value,
                ));
            }
        }
        for (&(country, site, base), published) in &self.states {
            let Some(url) = base_url(site, base) else { continue };
            let kept = KeptState {
                decided: published.decided,
                pending: published.pending,
                agents: published.agents,
                checked_at: published.checked_at,
            };
            if let Ok(value) = serde_json::to_string(&kept) {
                let name = &self.sites[site].name;
                entries.push((format!("state{S}{country}{S}{name}{S}{url}", S = KEPT_SEPARATOR), value));
            }
        }
        entries
    }

    /// Takes back what [`export_kept`](Self::export_kept) wrote; entries
    /// for agents, sites or bases no longer configured are dropped.
    pub fn restore_kept(&mut self, entries: &[(String, String)]) {
        let site_of = |name: &str| self.sites.iter().position(|s| s.name == name);
        let base_of = |site: usize, url: &str| self.sites[site].bases().position(|b| b.to_string() == url);
        let agent_of = |name: &str| self.agents.iter().position(|a| a.name == name);
        let mut agents = Vec::new();
        let mut signals = Vec::new();
        let mut states = Vec::new();
        for (key, value) in entries {
            let parts: Vec<&str> = key.split(KEPT_SEPARATOR).collect();
            match parts.as_slice() {
                ["agent", name] => {
                    if let (Some(agent), Ok(kept)) = (agent_of(name), serde_json::from_str::<KeptAgent>(value)) {
                        agents.push((agent, kept));
                    }
                }
                ["signal", agent, site, url] => {
                    let found = agent_of(agent)
                        .zip(site_of(site))
                        .and_then(|(a, s)| Some((a, s, base_of(s, url)?)));
                    if let (Some(at), Ok(kept)) = (found, serde_json::from_str::<KeptSignal>(value)) {
                        signals.push((at, kept));
                    }
                }
                ["state", country, site, url] => {
                    let found = Country::parse(country)
                        .zip(site_of(site))
                        .and_then(|(c, s)| Some((c, s, base_of(s, url)?)));
                    if let (Some(at), Ok(kept)) = (found, serde_json::from_str::<KeptState>(value)) {
                        states.push((at, kept));
                    }
                }
                _ => {}
            }
        }
        for (agent, kept) in agents {
            let agent = &mut self.agents[agent];
            agent.last_seen = kept.last_seen;
            agent.control_ok = kept.control_ok;
            agent.accepted = kept.accepted;
            agent.rejected = kept.rejected;
        }
        for (key, kept) in signals {
            self.signals.insert(
                key,
                BaseSignal {
                    signal: kept.signal,
                    at: kept.at,
                },
            );
        }
        for (key, kept) in states {
            self.states.insert(
                key,
                Published {
                    decided: kept.decided,
                    pending: kept.pending,
                    agents: kept.agents,
                    checked_at: kept.checked_at,
                },
            );
        }
    }

    /// The agent whose token this is (compared in constant time with
    /// every agent's, so the time taken does not tell which nearly matched).
    pub fn agent_for_token(config: &VantageConfig, presented: &str) -> Option<usize> {
        use subtle::ConstantTimeEq;
        let mut found = None;
        for (index, agent) in config.agents.iter().enumerate() {
            if bool::from(presented.as_bytes().ct_eq(agent.token.expose().as_bytes())) {
                found = Some(index);
            }
        }
        found
    }

    pub fn agent_name(&self, agent: usize) -> &str {
        &self.agents[agent].name
    }

    pub fn config(&self) -> &VantageConfig {
        &self.config
    }

    /// What routing and status read, as of `now`.
    pub fn view(&self, snapshot: &Snapshot, now: UnixMillis) -> VantageView {
        let catalog = &snapshot.catalog;
        let mut countries: Vec<Country> = self.agents.iter().map(|a| a.country).collect();
        countries.sort();
        countries.dedup();
        let mut routes = HashMap::new();
        for &country in &countries {
            let sites = catalog
                .sites
                .iter()
                .enumerate()
                .map(|(site, meta)| {
                    let bases = (0..meta.bases.len())
                        .map(
                            |base| match self.states.get(&(country, site, base)).map(|p| p.decided.state) {
                                Some(CountryState::Reachable) => Reach::Reachable,
                                Some(CountryState::Blocked) => Reach::Blocked,
                                _ => Reach::NoData,
                            },
                        )
                        .collect();
                    SiteRoutes {
                        bases,
                        articles: self.article_verdicts(country, site, meta.bases.len(), now),
                    }
                })
                .collect();
            routes.insert(country, sites);
        }
        let status = catalog
            .sites
            .iter()
            .enumerate()
            .map(|(site, meta)| {
                (0..meta.bases.len())
                    .map(|base| {
                        countries
                            .iter()
                            .map(|&country| {
                                let published = self.states.get(&(country, site, base));
                                let status = CountryStatus {
                                    state: published.map_or(CountryState::Unknown, |p| p.decided.state),
                                    kind: published.and_then(|p| p.decided.kind),
                                    agents: published.map_or(0, |p| p.agents),
                                    checked_at: published.and_then(|p| p.checked_at).map(rfc3339),
                                };
                                (country, status)
                            })
                            .collect::<BTreeMap<_, _>>()
                    })
                    .collect()
            })
            .collect();
        let agents = self
            .agents
            .iter()
            .map(|a| AgentStatus {
                name: a.name.clone(),
                country: a.country,
                asn: a.asn,
                last_seen: a.last_seen.map(rfc3339),
                online: a.control_ok && a.last_seen.is_some_and(|at| now - at <= FRESH_CYCLES * self.cycle_ms()),
                results_accepted: a.accepted,
                results_rejected: a.rejected,
            })
            .collect();
        VantageView {
            routes,
            agents,
            countries: status,
        }
    }

    /// Per sampled article of `site`, the verdict most of `country`'s fresh
    /// agents got on each base (a tie goes to the verdict that is not `same`).
    fn article_verdicts(
        &self,
        country: Country,
        site: usize,
        bases: usize,
        now: UnixMillis,
    ) -> HashMap<u32, Box<[Option<Verdict>]>> {
        let mut tallies: HashMap<usize, Vec<HashMap<Verdict, usize>>> = HashMap::new();
        for (&(agent, probe_site, base, article), probe) in &self.probes {
            if probe_site != site || self.agents[agent].country != country || !self.fresh(agent, probe.checked_at, now)
            {
                continue;
            }
            let per_base = tallies.entry(article).or_insert_with(|| vec![HashMap::new(); bases]);
            if let Some(tally) = per_base.get_mut(base) {
                *tally.entry(probe.verdict).or_default() += 1;
            }
        }
        tallies
            .into_iter()
            .map(|(article, per_base)| {
                let verdicts = per_base
                    .into_iter()
                    .map(|tally| {
                        tally
                            .into_iter()
                            .filter(|(verdict, _)| *verdict != Verdict::Unknown)
                            .max_by_key(|(verdict, count)| (*count, *verdict != Verdict::Same))
                            .map(|(verdict, _)| verdict)
                    })
                    .collect();
                (article as u32, verdicts)
            })
            .collect()
    }
}

/// The board and the view it last published, shared by the handlers.
pub type SharedBoard = Arc<std::sync::Mutex<Board>>;
