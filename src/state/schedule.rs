//! Probe rounds: every article on every base, concurrently, politely.
//!
//! Work is grouped by host (`host:port`). Each host gets its own worker with
//! a fair share of the global concurrency (`concurrency / hosts`, at least
//! one), so a host that hangs can tie up only its own share and never delays
//! another host's probes. Within a host, requests are spaced by the per-host
//! rate limit, and a 429's Retry-After keeps the whole host quiet for that
//! long. Workers start with a random delay so rounds do not burst.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::clock::{UnixMillis, millis, now_ms};
use crate::config::ProbeConfig;
use crate::fingerprint::Fingerprint;
use crate::probe::{ClientError, Previous, Prober};
use crate::state::engine::{EngineEvent, Evidence, ProbeResult};
use crate::state::snapshot::{ArticleView, Catalog, Snapshot};
use crate::state::tiers::{Tier, failed_on};
use crate::store::{Claim, ClaimLimits, WorkPair};
use crate::verdict::Verdict;

/// The longest a host worker waits before its first probe of a round.
const MAX_START_JITTER: Duration = Duration::from_millis(500);

/// Which (site, article, base) pairs this instance probes when several
/// share a store: rendezvous hashing over the live instances, so each pair
/// has one owner and the pairs of an instance that goes away pass to the
/// others at their next round. Alone (or not yet a member): every pair.
#[derive(Clone, Debug, Default)]
pub struct Share {
    me: String,
    members: Vec<String>,
}

impl Share {
    pub fn new(me: &str, members: Vec<String>) -> Share {
        Share {
            me: me.to_string(),
            members,
        }
    }

    pub fn owns(&self, site: &str, article: &str, base: &str) -> bool {
        if self.members.len() < 2 || !self.members.contains(&self.me) {
            return true;
        }
        let weight = |member: &str| {
            // FNV-1a: the same on every instance (std's hasher is seeded per process).
            let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
            for part in [member, site, article, base] {
                for &byte in part.as_bytes().iter().chain(&[0xff]) {
                    hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
                }
            }
            hash
        };
        self.members
            .iter()
            .max_by_key(|m| (weight(m), m.as_str()))
            .is_some_and(|m| *m == self.me)
    }
}

pub struct Scheduler {
    catalog: Arc<Catalog>,
    prober: Prober,
    concurrency: usize,
    interval: Duration,
    timeout: Duration,
    per_host_rate: f64,
    hosts: HashMap<String, Arc<Host>>,
    evidence: Evidence,
    /// When each base (site, base) last answered a path that cannot exist.
    not_found_checked: Arc<Mutex<HashMap<(usize, usize), Instant>>>,
}

/// How often each base is asked for a path that cannot exist, to learn its
/// soft-404 page.
pub const NOT_FOUND_CHECK_EVERY: Duration = Duration::from_secs(24 * 3600);

/// The path asked for: no site has it.
fn not_found_path() -> String {
    format!("/mirrorgate-not-found-check-{:016x}", fastrand::u64(..))
}

/// Per-host politeness that outlives a round.
struct Host {
    limiter: Option<DefaultDirectRateLimiter>,
    quiet_until: Mutex<Option<Instant>>,
}

impl Host {
    fn quiet_until(&self) -> Option<Instant> {
        self.quiet_until.lock().ok().and_then(|q| *q)
    }

    fn stay_quiet_for(&self, delay: Duration) {
        if let Ok(mut quiet) = self.quiet_until.lock() {
            *quiet = Some(Instant::now() + delay);
        }
    }
}

#[derive(Clone, Copy)]
struct Job {
    site: usize,
    base: usize,
    /// An article, or for [`Job::NOT_FOUND`], the soft-404 check.
    article: usize,
    /// The fencing token of its lease, when instances share the work.
    lease: Option<i64>,
}

impl Job {
    const NOT_FOUND: usize = usize::MAX;
}

impl Scheduler {
    pub fn new(catalog: Arc<Catalog>, config: &ProbeConfig, evidence: Evidence) -> Result<Self, ClientError> {
        let prober = Prober::new(config)?;
        let mut hosts = HashMap::new();
        for site in &catalog.sites {
            for base in &site.bases {
                hosts.entry(base.authority().to_string()).or_insert_with(|| {
                    Arc::new(Host {
                        limiter: rate_limiter(config.per_host_rate),
                        quiet_until: Mutex::new(None),
                    })
                });
            }
        }
        Ok(Scheduler {
            catalog,
            prober,
            concurrency: config.concurrency,
            interval: config.interval,
            timeout: config.timeout,
            per_host_rate: config.per_host_rate,
            hosts,
            evidence,
            not_found_checked: Arc::default(),
        })
    }

    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Probes everything once (what `share` gives this instance, when
    /// several share the store but not its work queue). Results go to
    /// `events` as they arrive; returns when every probe has finished or
    /// `stop` was cancelled (probes in flight then still run to their own
    /// timeout).
    ///
    /// `known` is the state at the round's start: what each base served last
    /// time lets an unchanged body skip normalization.
    pub async fn round(
        &self,
        events: &mpsc::Sender<EngineEvent>,
        stop: &CancellationToken,
        known: Option<Arc<Snapshot>>,
        conditional: bool,
        share: Option<&Share>,
    ) {
        let mut jobs = Vec::new();
        let due = Due::new(&self.catalog, known.as_deref(), now_ms());
        for (site, meta) in self.catalog.sites.iter().enumerate() {
            for base in 0..meta.bases.len() {
                let owned = |&article: &usize| {
                    share.is_none_or(|s| s.owns(&meta.name, &meta.articles[article], &meta.base_names[base]))
                };
                jobs.extend(
                    (0..meta.articles.len())
                        .filter(owned)
                        .filter(|&article| due.is_due(site, base, article))
                        .map(|article| Job {
                            site,
                            base,
                            article,
                            lease: None,
                        }),
                );
            }
        }
        let global = Arc::new(Semaphore::new(self.concurrency));
        let batch = Batch {
            events,
            stop,
            known,
            conditional,
            global,
            jitter: true,
        };
        self.run(jobs, batch).await;
    }

    /// Probes the pairs this instance holds the leases of, within the
    /// concurrency `global` allows across batches in flight. Returns the
    /// tokens of claims it does not know (pairs of a config it does not
    /// run), to be given back.
    pub async fn leased(
        &self,
        claims: &[Claim],
        events: &mpsc::Sender<EngineEvent>,
        stop: &CancellationToken,
        known: Option<Arc<Snapshot>>,
        conditional: bool,
        global: Arc<Semaphore>,
    ) -> Vec<i64> {
        let mut jobs = Vec::with_capacity(claims.len());
        let mut unknown = Vec::new();
        for claim in claims {
            match self.catalog.locate(&claim.site, &claim.base, &claim.article) {
                Some((site, base, article)) => jobs.push(Job {
                    site,
                    base,
                    article,
                    lease: Some(claim.token),
                }),
                None => unknown.push(claim.token),
            }
        }
        let batch = Batch {
            events,
            stop,
            known,
            conditional,
            global,
            jitter: false,
        };
        self.run(jobs, batch).await;
        unknown
    }

    /// Every pair of the catalog, for the shared work queue.
    pub fn work_pairs(&self) -> Vec<WorkPair> {
        let mut pairs = Vec::new();
        for meta in &self.catalog.sites {
            for (base, origin) in meta.bases.iter().enumerate() {
                for article in meta.articles.iter() {
                    pairs.push(WorkPair {
                        site: meta.name.to_string(),
                        article: article.to_string(),
                        base: meta.base_names[base].to_string(),
                        host: origin.authority().to_string(),
                    });
                }
            }
        }
        pairs
    }

    /// How much one claim takes: the concurrency's worth, and of one host
    /// no more than its rate limit lets out well within the lease (twice
    /// the probe timeout), so a claimed pair is probed before its lease
    /// runs out. `batches_in_flight` claims share the host's limiter, so
    /// together they may hold only what it lets out in half a timeout: the
    /// last of them then starts by then and ends, at the latest, a timeout
    /// later, with a margin left before the lease runs out.
    pub fn claim_limits(&self, batches_in_flight: usize) -> ClaimLimits {
        let lease = self.timeout * 2;
        let per_host = if self.per_host_rate > 0.0 {
            let released = self.per_host_rate * self.timeout.as_secs_f64() / 2.0;
            (released / batches_in_flight.max(1) as f64).floor().max(1.0) as usize
        } else {
            self.concurrency
        };
        ClaimLimits {
            pairs: self.concurrency,
            per_host: per_host.min(self.concurrency),
            lease_ms: crate::clock::millis(lease),
        }
    }

    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    async fn run(&self, jobs: Vec<Job>, batch: Batch<'_>) {
        // Indices are only comparable under the same catalog (not across a reload).
        let known = batch
            .known
            .filter(|snapshot| Arc::ptr_eq(&snapshot.catalog, &self.catalog));
        let deadline = Instant::now() + self.interval;
        let due = |site: usize, base: usize| {
            self.not_found_checked.lock().is_ok_and(|checked| {
                checked
                    .get(&(site, base))
                    .is_none_or(|at| at.elapsed() >= NOT_FOUND_CHECK_EVERY)
            })
        };
        let mut jobs_by_host: HashMap<&str, Vec<Job>> = HashMap::new();
        let mut bases = std::collections::BTreeSet::new();
        for job in jobs {
            bases.insert((job.site, job.base));
            let origin = &self.catalog.sites[job.site].bases[job.base];
            jobs_by_host.entry(origin.authority()).or_default().push(job);
        }
        for (site, base) in bases {
            // Last: articles come first, and a host that asks us to stay
            // away after them is not asked anything more.
            if due(site, base) {
                let origin = &self.catalog.sites[site].bases[base];
                jobs_by_host.entry(origin.authority()).or_default().push(Job {
                    site,
                    base,
                    article: Job::NOT_FOUND,
                    lease: None,
                });
            }
        }
        let share = (self.concurrency / jobs_by_host.len().max(1)).max(1);
        let mut workers = JoinSet::new();
        for (authority, jobs) in jobs_by_host {
            let Some(host) = self.hosts.get(authority).cloned() else {
                continue;
            };
            let worker = HostWorker {
                catalog: self.catalog.clone(),
                prober: self.prober.clone(),
                evidence: self.evidence.clone(),
                not_found_checked: self.not_found_checked.clone(),
                host,
                share: Arc::new(Semaphore::new(share)),
                global: batch.global.clone(),
                known: known.clone(),
                conditional: batch.conditional,
                events: batch.events.clone(),
                stop: batch.stop.clone(),
                deadline,
                jitter: batch.jitter,
            };
            workers.spawn(worker.run(jobs));
        }
        while workers.join_next().await.is_some() {}
    }
}

/// What one run of probes reports to and shares.
struct Batch<'a> {
    events: &'a mpsc::Sender<EngineEvent>,
    stop: &'a CancellationToken,
    known: Option<Arc<Snapshot>>,
    conditional: bool,
    /// The concurrency across everything in flight.
    global: Arc<Semaphore>,
    /// Start each host at a random moment: a round starts everything at
    /// once, claimed batches come spread out already.
    jitter: bool,
}

struct HostWorker {
    catalog: Arc<Catalog>,
    prober: Prober,
    evidence: Evidence,
    not_found_checked: Arc<Mutex<HashMap<(usize, usize), Instant>>>,
    host: Arc<Host>,
    share: Arc<Semaphore>,
    global: Arc<Semaphore>,
    known: Option<Arc<Snapshot>>,
    conditional: bool,
    events: mpsc::Sender<EngineEvent>,
    stop: CancellationToken,
    deadline: Instant,
    jitter: bool,
}

impl HostWorker {
    async fn run(self, jobs: Vec<Job>) {
        if self.jitter {
            let jitter = MAX_START_JITTER.mul_f64(fastrand::f64());
            if self.wait(tokio::time::sleep(jitter)).await.is_none() {
                return;
            }
        }
        let mut probes = JoinSet::new();
        // Articles first, then the soft-404 checks once their answers are
        // in: a host that asked us to stay away is not asked anything more.
        let (checks, articles): (Vec<Job>, Vec<Job>) = jobs.into_iter().partition(|j| j.article == Job::NOT_FOUND);
        let mut phases = [articles, checks].into_iter();
        let mut phase = phases.next().unwrap_or_default().into_iter();
        // Whether the host served a page this round: a soft 404 is only a
        // question for a host that answers 200, and a host that answers
        // nothing (or only errors) is not asked anything more.
        let answered = Arc::new(std::sync::atomic::AtomicBool::new(false));
        loop {
            let job = match phase.next() {
                Some(job) => job,
                None => {
                    while probes.join_next().await.is_some() {}
                    match phases.next() {
                        Some(next) if answered.load(std::sync::atomic::Ordering::Relaxed) => {
                            phase = next.into_iter();
                            continue;
                        }
                        _ => break,
                    }
                }
            };
            // Permits before the rate limiter: a token is only taken when the
            // request can go out at once, so requests never bunch up.
            let Some(Ok(own)) = self.wait(self.share.clone().acquire_owned()).await else {
                break;
            };
            let Some(Ok(global)) = self.wait(self.global.clone().acquire_owned()).await else {
                break;
            };
            if let Some(quiet_until) = self.host.quiet_until() {
                if quiet_until > self.deadline {
                    // Asked to stay away past this round: keep the last results.
                    break;
                }
                if self.wait(tokio::time::sleep_until(quiet_until)).await.is_none() {
                    break;
                }
            }
            if let Some(limiter) = &self.host.limiter
                && self.wait(limiter.until_ready()).await.is_none()
            {
                break;
            }
            if job.article == Job::NOT_FOUND
                && let Ok(mut checked) = self.not_found_checked.lock()
            {
                checked.insert((job.site, job.base), Instant::now());
            }
            let previous = self.previous(job);
            let prober = self.prober.clone();
            let catalog = self.catalog.clone();
            let host = self.host.clone();
            let events = self.events.clone();
            let answered = answered.clone();
            probes.spawn(async move {
                let site = &catalog.sites[job.site];
                let not_found = job.article == Job::NOT_FOUND;
                let path = if not_found {
                    not_found_path()
                } else {
                    site.articles[job.article].to_string()
                };
                let report = prober
                    .probe(&site.bases[job.base], &path, &site.normalizer, previous)
                    .await;
                drop((own, global));
                if report.observation.is_ok() {
                    answered.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                if let Some(delay) = report.retry_after {
                    host.stay_quiet_for(delay);
                }
                let event = if not_found {
                    EngineEvent::NotFound {
                        catalog: catalog.clone(),
                        site: job.site,
                        base: job.base,
                        observation: report.observation,
                    }
                } else {
                    EngineEvent::Result(ProbeResult {
                        catalog: catalog.clone(),
                        site: job.site,
                        base: job.base,
                        article: job.article,
                        observation: report.observation,
                        detail: report.detail,
                        lease: job.lease,
                    })
                };
                let _ = events.send(event).await;
            });
            while probes.try_join_next().is_some() {}
        }
        while probes.join_next().await.is_some() {}
    }

    /// What the job's base served for its article last time, if it was ok.
    fn previous(&self, job: Job) -> Option<Previous> {
        let snapshot = self.known.as_ref()?;
        let article = snapshot.sites.get(job.site)?.articles.get(job.article)?;
        let observation = article.observation(job.base).filter(|o| o.is_ok())?;
        // Evidence wants the text of a page that differs (or, on the
        // primary, of the reference) when it does not have it yet.
        let meta = &self.catalog.sites[job.site];
        let differs = matches!(article.verdict(job.base), Some(Verdict::Stale | Verdict::Diverged));
        let wants_text = (differs || job.base == 0)
            && self.evidence.lock().is_ok_and(|evidence| {
                evidence.wants_text(
                    &meta.name,
                    &meta.articles[job.article],
                    &meta.base_names[job.base],
                    job.base == 0,
                )
            });
        Some(Previous {
            fingerprint: Fingerprint {
                raw: observation.raw_hash?,
                normalized: observation.hash?,
                page: observation.page,
            },
            rules: observation.rules,
            http_status: observation.http_status,
            validators: observation.validators,
            conditional: self.conditional && !wants_text,
            wants_text,
        })
    }

    /// Awaits `future` unless the round is stopped first.
    async fn wait<T>(&self, future: impl std::future::Future<Output = T>) -> Option<T> {
        tokio::select! {
            biased;
            _ = self.stop.cancelled() => None,
            value = future => Some(value),
        }
    }
}

/// Which pairs a round takes: those whose tier's period has passed since
/// their last probe, judged from the state at the round's start.
struct Due<'a> {
    catalog: &'a Catalog,
    known: Option<&'a Snapshot>,
    now: UnixMillis,
    /// Per site and base of `catalog`, from the known state.
    bases: Vec<Vec<BaseHealth>>,
    /// Per site, one bit per article: readers asked for it since the last round.
    asked: Vec<Vec<u64>>,
}

#[derive(Clone, Copy, Default)]
struct BaseHealth {
    /// Down, or its canaries fail: every article of it is due.
    failing: bool,
    /// When its canaries last started to fail.
    canaries_failed_at: Option<UnixMillis>,
}

impl<'a> Due<'a> {
    fn new(catalog: &'a Catalog, known: Option<&'a Snapshot>, now: UnixMillis) -> Self {
        let health = |meta: &crate::state::snapshot::SiteMeta, name: &Arc<str>| {
            let known = known?;
            let s = *known.catalog.by_name.get(&*meta.name)?;
            let b = known.catalog.sites[s].base_names.iter().position(|n| n == name)?;
            let view = known.sites.get(s)?.bases.get(b)?;
            Some(BaseHealth {
                failing: view.state == crate::state::snapshot::BaseState::Down || view.canaries_failed,
                canaries_failed_at: view.canaries_failed_at,
            })
        };
        let bases = catalog
            .sites
            .iter()
            .map(|meta| {
                meta.base_names
                    .iter()
                    .map(|name| health(meta, name).unwrap_or_default())
                    .collect()
            })
            .collect();
        let asked = catalog.sites.iter().map(|meta| meta.take_asked()).collect();
        Due {
            catalog,
            known,
            now,
            bases,
            asked,
        }
    }

    fn is_due(&self, site: usize, base: usize, article: usize) -> bool {
        let Some((known_base, view)) = self.view(site, base, article) else {
            return true;
        };
        let meta = &self.catalog.sites[site];
        let tiers = &self.catalog.tiers;
        let tier = self.catalog.tier_of(site, article, view, self.now);
        let health = self.bases[site][base];
        // Hot pairs and canaries go in every round, as every pair did
        // before tiers (a restart's first round included). A failing base
        // has all its articles probed at the hot rate, so their verdicts
        // stop sending readers there within a round rather than a cold
        // period, and what it failed on stays at that rate until `same`.
        if tier == Tier::Hot || meta.is_canary(article) || health.failing {
            return true;
        }
        let Some(seen) = view.observation(known_base) else {
            return true;
        };
        let failed_on = failed_on(health.canaries_failed_at, seen.checked_at, view.verdict(known_base));
        // A reader was sent on a verdict older than max_verdict_age.
        let asked = self.asked[site]
            .get(article / 64)
            .is_some_and(|w| w & (1 << (article % 64)) != 0);
        let stale_for_readers = asked && seen.checked_at < self.now - millis(tiers.max_verdict_age());
        // What was judged under other rules is probed again whatever its tier.
        failed_on
            || stale_for_readers
            || seen.rules != meta.normalizer.key()
            || tiers.due(tier, Some(seen.checked_at), self.now)
    }

    /// The article's view in the known state and the base's index there:
    /// the same indices under the same catalog, else found by name (a
    /// reload or a discovery run made a new catalog, and the archive must
    /// not be probed again in full for it).
    fn view(&self, site: usize, base: usize, article: usize) -> Option<(usize, &'a ArticleView)> {
        let known = self.known?;
        let (s, b, a) = if std::ptr::eq(&*known.catalog, self.catalog) {
            (site, base, article)
        } else {
            let meta = &self.catalog.sites[site];
            known
                .catalog
                .locate(&meta.name, &meta.base_names[base], &meta.articles[article])?
        };
        Some((b, known.sites.get(s)?.articles.get(a)?))
    }
}

fn rate_limiter(per_second: f64) -> Option<DefaultDirectRateLimiter> {
    if per_second <= 0.0 {
        return None;
    }
    let period = Duration::from_secs_f64(1.0 / per_second);
    // A burst of one: the limit holds over any window, not just on average.
    let quota = Quota::with_period(period)?.allow_burst(NonZeroU32::MIN);
    Some(RateLimiter::direct(quota))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scheduler(probe: &str) -> Scheduler {
        let text = format!(
            "[probe]\n{probe}\n[[sites]]\nname = \"news\"\nprimary = \"http://127.0.0.1:9\"\narticles = [\"/a\"]\n"
        );
        let config = crate::config::parse("claims.toml", &text).expect("a valid config");
        let catalog = Arc::new(Catalog::new(&config));
        Scheduler::new(catalog, &config.probe, Evidence::default()).expect("a client")
    }

    #[test]
    fn claims_on_a_rate_limited_host_start_within_half_a_timeout() {
        let limits = scheduler("per_host_rate = 1\ntimeout = \"10s\"\nconcurrency = 64").claim_limits(2);
        // Two claims of 2 each: the 4th pair starts after 3 s at 1/s, well
        // within the 20 s lease together with its own 10 s.
        assert_eq!((limits.per_host, limits.pairs, limits.lease_ms), (2, 64, 20_000));
        let unlimited = scheduler("per_host_rate = 0\nconcurrency = 16").claim_limits(2);
        assert_eq!(unlimited.per_host, 16);
        let slow = scheduler("per_host_rate = 0.01\ntimeout = \"10s\"").claim_limits(2);
        assert_eq!(slow.per_host, 1, "a host is never starved of claims");
    }
}
