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

use crate::config::ProbeConfig;
use crate::engine::{EngineEvent, ProbeResult};
use crate::fingerprint::Fingerprint;
use crate::probe::{ClientError, Previous, Prober};
use crate::snapshot::{Catalog, Snapshot};

/// The longest a host worker waits before its first probe of a round.
const MAX_START_JITTER: Duration = Duration::from_millis(500);

pub struct Scheduler {
    catalog: Arc<Catalog>,
    prober: Prober,
    concurrency: usize,
    interval: Duration,
    hosts: HashMap<String, Arc<Host>>,
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
    article: usize,
}

impl Scheduler {
    pub fn new(catalog: Arc<Catalog>, config: &ProbeConfig) -> Result<Self, ClientError> {
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
            hosts,
        })
    }

    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Probes everything once. Results go to `events` as they arrive;
    /// returns when every probe has finished or `stop` was cancelled (probes
    /// in flight then still run to their own timeout).
    ///
    /// `known` is the state at the round's start: what each base served last
    /// time lets an unchanged body skip normalization.
    pub async fn round(
        &self,
        events: &mpsc::Sender<EngineEvent>,
        stop: &CancellationToken,
        known: Option<Arc<Snapshot>>,
        conditional: bool,
    ) {
        // Indices are only comparable under the same catalog (not across a reload).
        let known = known.filter(|snapshot| Arc::ptr_eq(&snapshot.catalog, &self.catalog));
        let started = Instant::now();
        let deadline = started + self.interval;
        let mut jobs_by_host: HashMap<&str, Vec<Job>> = HashMap::new();
        for (site, meta) in self.catalog.sites.iter().enumerate() {
            for (base, origin) in meta.bases.iter().enumerate() {
                let jobs = jobs_by_host.entry(origin.authority()).or_default();
                jobs.extend((0..meta.articles.len()).map(|article| Job { site, base, article }));
            }
        }
        let share = (self.concurrency / jobs_by_host.len().max(1)).max(1);
        let global = Arc::new(Semaphore::new(self.concurrency));
        let mut workers = JoinSet::new();
        for (authority, jobs) in jobs_by_host {
            let Some(host) = self.hosts.get(authority).cloned() else {
                continue;
            };
            let worker = HostWorker {
                catalog: self.catalog.clone(),
                prober: self.prober.clone(),
                host,
                share: Arc::new(Semaphore::new(share)),
                global: global.clone(),
                known: known.clone(),
                conditional,
                events: events.clone(),
                stop: stop.clone(),
                deadline,
            };
            workers.spawn(worker.run(jobs));
        }
        while workers.join_next().await.is_some() {}
    }
}

struct HostWorker {
    catalog: Arc<Catalog>,
    prober: Prober,
    host: Arc<Host>,
    share: Arc<Semaphore>,
    global: Arc<Semaphore>,
    known: Option<Arc<Snapshot>>,
    conditional: bool,
    events: mpsc::Sender<EngineEvent>,
    stop: CancellationToken,
    deadline: Instant,
}

impl HostWorker {
    async fn run(self, jobs: Vec<Job>) {
        let jitter = MAX_START_JITTER.mul_f64(fastrand::f64());
        if self.wait(tokio::time::sleep(jitter)).await.is_none() {
            return;
        }
        let mut probes = JoinSet::new();
        for job in jobs {
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
            let previous = self.previous(job);
            let prober = self.prober.clone();
            let catalog = self.catalog.clone();
            let host = self.host.clone();
            let events = self.events.clone();
            probes.spawn(async move {
                let site = &catalog.sites[job.site];
                let report = prober
                    .probe(
                        &site.bases[job.base],
                        &site.articles[job.article],
                        &site.normalizer,
                        previous,
                    )
                    .await;
                drop((own, global));
                if let Some(delay) = report.retry_after {
                    host.stay_quiet_for(delay);
                }
                let result = ProbeResult {
                    catalog: catalog.clone(),
                    site: job.site,
                    base: job.base,
                    article: job.article,
                    observation: report.observation,
                };
                let _ = events.send(EngineEvent::Result(result)).await;
            });
            while probes.try_join_next().is_some() {}
        }
        while probes.join_next().await.is_some() {}
    }

    /// What the job's base served for its article last time, if it was ok.
    fn previous(&self, job: Job) -> Option<Previous> {
        let article = self.known.as_ref()?.sites.get(job.site)?.articles.get(job.article)?;
        let observation = article.observation(job.base).filter(|o| o.is_ok())?;
        Some(Previous {
            fingerprint: Fingerprint {
                raw: observation.raw_hash?,
                normalized: observation.hash?,
                page: Default::default(),
            },
            http_status: observation.http_status,
            validators: observation.validators,
            conditional: self.conditional,
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

fn rate_limiter(per_second: f64) -> Option<DefaultDirectRateLimiter> {
    if per_second <= 0.0 {
        return None;
    }
    let period = Duration::from_secs_f64(1.0 / per_second);
    // A burst of one: the limit holds over any window, not just on average.
    let quota = Quota::with_period(period)?.allow_burst(NonZeroU32::MIN);
    Some(RateLimiter::direct(quota))
}
