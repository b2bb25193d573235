//! The daemon's lifecycle: open the store, resume from it, bind, report
//! ready, probe in rounds, reload on SIGHUP, and stop without losing what
//! was already probed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::clock::now_ms;
use crate::cmd::notify;
use crate::cmd::shared_work::{SharedWork, Window};
use crate::config::{Config, StoreBackend, StoreConfig};
use crate::http::metrics::Counters;
use crate::http::server::{self, AppState};
use crate::probe::ClientError;
use crate::state::engine::{self, Engine, EngineEvent, LATENCY_SAMPLES};
use crate::state::liveness::{BEAT_EVERY, Heartbeat, Loop};
use crate::state::schedule::Scheduler;
use crate::state::snapshot::Catalog;
use crate::state::snapshot::Snapshots;
use crate::store::{
    NullStore, PostgresStore, PostgresTarget, Retention, SqliteStore, Store, StoreError, StoreWriter, StoredState,
};

pub use crate::cmd::reload::Reload;
use crate::cmd::reload::Reloader;
use crate::http::server::ServerSettings;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("cannot start the probe runtime: {0}")]
    Runtime(std::io::Error),
    #[error("GeoIP: {0}")]
    Geoip(String),
}

pub struct Daemon {
    /// Probing, the engine and the store writer run here, apart from the
    /// runtime that serves readers (see [`probe_runtime`]).
    probe_runtime: tokio::runtime::Runtime,
    local_addr: SocketAddr,
    rounds: JoinHandle<()>,
    engine: JoinHandle<Engine>,
    writer: StoreWriter,
    writer_task: JoinHandle<()>,
    keeper: Arc<crate::cmd::keep::Keeper>,
    membership: Arc<crate::cmd::cluster::Membership>,
    server: JoinHandle<std::io::Result<()>>,
    reloader: Option<JoinHandle<()>>,
    shutdown: CancellationToken,
    /// `server.shutdown_grace` in milliseconds; a reload changes it.
    grace_ms: Arc<AtomicU64>,
}

/// What a reload swaps: the scheduler the rounds loop picks up next.
type Schedulers = Arc<ArcSwap<Scheduler>>;

impl Daemon {
    /// Starts everything; returns once the listener is bound and the stored
    /// state is being served (and then tells systemd it is ready).
    pub async fn start(config: Config, reload: Reload, shutdown: CancellationToken) -> Result<Self, StartError> {
        let store_config = config.store.clone();
        let (store, restored, found, kept, away) = tokio::task::spawn_blocking(move || {
            let (mut store, away) = open_store_or_away(&store_config)?;
            if let Some(away) = away {
                return Ok((store, StoredState::default(), Default::default(), None, Some(away)));
            }
            let restored = store.load_snapshot(LATENCY_SAMPLES)?;
            let found = store.load_discovered()?;
            let kept = store.load_kept()?;
            Ok::<_, StoreError>((store, restored, found, Some(kept), None))
        })
        .await
        .expect("opening the store does not panic")?;
        // Articles found before the restart are probed from the start;
        // discovery runs again soon and replaces them if they changed.
        let mut found = found;
        found.retain(|site, _| config.sites.iter().any(|s| &s.name == site && s.discover.is_some()));
        let discovered: crate::discover::task::Discovered = Arc::new(std::sync::Mutex::new(found));
        let catalog = {
            let mut merged = config.clone();
            let found = discovered.lock().unwrap_or_else(|e| e.into_inner());
            merged.sites = crate::discover::task::with_discovered(&config.sites, &found);
            Arc::new(Catalog::new(&merged))
        };
        match &away {
            None => tracing::info!(
                store = %store_name(&config.store),
                results = restored.latest.len(),
                versions = restored.versions.len(),
                "store opened"
            ),
            Some(error) => tracing::error!(
                %error,
                "store unreachable; serving from memory, and writing once it is back"
            ),
        }
        let engine = Engine::new(
            catalog.clone(),
            config.probe.down_after,
            config.store.retention,
            Some(restored),
        );
        let snapshots = engine.snapshots();
        let evidence = engine.evidence();
        let addr = config.server.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Listen { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| StartError::Listen { addr, source })?;
        let schedulers: Schedulers = Arc::new(ArcSwap::from_pointee(Scheduler::new(
            catalog.clone(),
            &config.probe,
            evidence.clone(),
        )?));
        let heartbeat = Heartbeat::new();
        let counters = Arc::new(Counters::default());
        for warning in crate::config::warnings(&config) {
            tracing::warn!("{warning}");
        }
        if !config.server.listen.ip().is_loopback() && config.server.status_token.is_none() {
            tracing::warn!(
                listen = %config.server.listen,
                "listening beyond loopback without server.status_token: /status and /metrics are open to anyone who can reach this address"
            );
        }
        let wake_rounds = Arc::new(Notify::new());
        let probe_runtime = probe_runtime(config.probe.threads).map_err(StartError::Runtime)?;
        // The probe side is spawned onto its own runtime; no await in between.
        let (writer, writer_task, events, engine_task, rounds) = {
            let _probe_side = probe_runtime.enter();
            let retention = Retention {
                rollups: config.store.retention,
                raw: config.store.raw_retention,
                busy_timeout: config.store.busy_timeout,
            };
            let (writer, writer_task) = StoreWriter::spawn(store, retention, config.store.instance.clone());
            if let Some(away) = &away {
                // Shown before the first write fails, in /status and /metrics.
                writer.health.started_away(away.to_string());
            }
            let (events, engine_task) = engine::spawn(engine, Some(writer.clone()), Some(heartbeat.clone()));
            let rounds = tokio::spawn(probe_rounds(Rounds {
                snapshots: snapshots.clone(),
                schedulers: schedulers.clone(),
                events: events.clone(),
                wake: wake_rounds.clone(),
                heartbeat: heartbeat.clone(),
                counters: counters.clone(),
                writer: writer.clone(),
                stop: shutdown.clone(),
            }));
            (writer, writer_task, events, engine_task, rounds)
        };
        let settings = Arc::new(ArcSwap::from_pointee(ServerSettings::from_config(&config.server)));
        let geo = crate::vantage::geoip::Geo::new(
            crate::vantage::geoip::Databases::open(&config.geoip).map_err(StartError::Geoip)?,
        );
        tokio::spawn(watch_geoip(geo.clone(), shutdown.clone()));
        let countries: Arc<ArcSwap<crate::vantage::view::VantageView>> = Default::default();
        // Built even with no agents configured: a reload may add some.
        let vantage = crate::vantage::Vantage::new(
            crate::vantage::board::Board::new(&config, geo.clone()),
            countries.clone(),
        );
        let discovery: crate::discover::task::DiscoveryStatus = Default::default();
        let alert_book: Arc<crate::alert::Book> = Default::default();
        let listed: Arc<crate::http::mirror_list::ListedSince> = Default::default();
        let reports: Arc<crate::vantage::reports::ReaderReports> = Default::default();
        let mut kept_parts: Vec<Arc<dyn crate::state::kept::Keeps>> = vec![
            alert_book.clone(),
            listed.clone(),
            Arc::new(crate::vantage::reports::KeptReports {
                reports: reports.clone(),
                snapshots: snapshots.clone(),
            }),
        ];
        kept_parts.extend(crate::state::evidence::Kept::parts(&evidence));
        kept_parts.push(Arc::new(vantage.clone()));
        let keeper = crate::cmd::keep::Keeper::restore(kept_parts, kept);
        // Who leads is known before anything only the leader does starts.
        let membership =
            crate::cmd::cluster::Membership::new(&config, writer.clone(), alert_book.clone(), events.clone());
        membership.beat().await;
        tokio::spawn(membership.clone().run(shutdown.clone()));
        // After the restore: its first publish shows the countries as they were.
        tokio::spawn(vantage.clone().upkeep(snapshots.clone(), shutdown.clone()));
        tokio::spawn(keeper.clone().run(writer.clone(), shutdown.clone()));
        // Spawned even with no [[alerts]]: a reload may add some.
        let alerts = {
            let (store_health, reload_counters, view) = (writer.health.clone(), counters.clone(), countries.clone());
            crate::alert::spawn(
                config.alerts.clone(),
                snapshots.clone(),
                move || crate::alert::Health {
                    store_error: store_health.last_error().map(|(_, e)| e),
                    reload_error: reload_counters.reload_error().map(|(_, e)| e),
                    agents_offline: view
                        .load()
                        .agents
                        .iter()
                        .filter(|a| !a.online && a.last_seen.is_some())
                        .map(|a| (a.name.clone(), a.country.to_string()))
                        .collect(),
                },
                {
                    let health = writer.health.clone();
                    move || health.leader.load(Ordering::Relaxed)
                },
                alert_book.clone(),
                shutdown.clone(),
            )
        };
        let app = AppState {
            alerts: alerts.counters.clone(),
            listed,
            discovery: discovery.clone(),
            discovered: discovered.clone(),
            reports,
            geo: geo.clone(),
            countries,
            vantage: Some(vantage.clone()),
            snapshots: snapshots.clone(),
            evidence: evidence.clone(),
            counters: counters.clone(),
            store: Some(writer.health.clone()),
            settings: settings.clone(),
            liveness: Some(heartbeat.clone()),
        };
        let server = tokio::spawn(server::serve(listener, app, shutdown.clone()));
        let (sites, articles) = size(&catalog);
        tracing::info!(%local_addr, sites, articles, "serving");
        let grace_ms = Arc::new(AtomicU64::new(config.server.shutdown_grace.as_millis() as u64));
        let reloader = reload.path.is_some().then(|| {
            let sites = Arc::new(ArcSwap::from_pointee(config.sites.clone()));
            let (changed, rediscovered) = tokio::sync::mpsc::channel(1);
            // On the probe runtime: parsing a 50 MB sitemap must not hold a
            // thread that serves readers.
            probe_runtime.spawn(crate::discover::task::run(
                sites.clone(),
                config.probe.user_agent.clone(),
                discovered.clone(),
                discovery.clone(),
                changed,
                Some(writer.clone()),
                shutdown.clone(),
            ));
            let reloader = Reloader {
                discovered: discovered.clone(),
                sites,
                rediscovered,
                reload,
                running: config.clone(),
                events: events.clone(),
                schedulers: schedulers.clone(),
                evidence,
                wake: wake_rounds.clone(),
                counters,
                settings,
                grace_ms: grace_ms.clone(),
                writer: writer.clone(),
                geo,
                alerts: alerts.clone(),
                vantage: vantage.clone(),
                membership: membership.clone(),
            };
            tokio::spawn(reloader.run(shutdown.clone()))
        });
        notify::spawn_watchdog(heartbeat, shutdown.clone());
        notify::status(&format!(
            "probing {sites} sites, {articles} articles; first round running"
        ));
        notify::ready();
        Ok(Daemon {
            probe_runtime,
            local_addr,
            rounds,
            engine: engine_task,
            writer,
            writer_task,
            keeper,
            membership,
            server,
            reloader,
            shutdown,
            grace_ms,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Waits for shutdown to be requested and completed: probes in flight
    /// get the grace period, then every result is flushed to the store.
    pub async fn finished(self) -> std::io::Result<()> {
        self.shutdown.cancelled().await;
        notify::stopping();
        notify::status("stopping: finishing probes in flight");
        let mut rounds = self.rounds;
        let grace = Duration::from_millis(self.grace_ms.load(Ordering::Relaxed));
        if tokio::time::timeout(grace, &mut rounds).await.is_err() {
            tracing::warn!(?grace, "probes still running after the grace period; cancelling them");
            rounds.abort();
            let _ = rounds.await;
        }
        if let Some(reloader) = self.reloader {
            let _ = reloader.await;
        }
        // The rounds loop, the reloader and the membership held the last
        // event senders, so the engine drains what is queued and stops.
        self.membership.stop_refreshing();
        let _ = self.engine.await;
        self.keeper.save(&self.writer).await;
        self.writer.flush().await;
        self.membership.leave().await;
        // The membership holds a sender too: the writer stops after the last.
        drop(self.membership);
        drop(self.writer);
        let _ = self.writer_task.await;
        tracing::info!("stopped; every finished probe result is stored");
        // Dropping a runtime from async code would block: let it go in the background.
        self.probe_runtime.shutdown_background();
        self.server.await.unwrap_or(Ok(()))
    }
}

/// Reopens the GeoIP databases when a file changes on disk (a weekly
/// `geoipupdate` replaces them), as SIGHUP does.
async fn watch_geoip(geo: crate::vantage::geoip::Geo, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
        if geo.changed_on_disk() {
            // The files in use now: a reload may have named others since start.
            match geo.reopen(&geo.files()) {
                Ok(()) => tracing::info!("a GeoIP database changed on disk; reopened"),
                Err(error) => {
                    tracing::error!(%error, "a GeoIP database changed on disk but cannot be read; the old one stays")
                }
            }
        }
    }
}

/// Every this many rounds, probes fetch in full instead of revalidating, so a
/// base that answers 304 while its content changed is caught within the hour
/// at the default interval.
const FULL_FETCH_EVERY: u64 = 12;

/// The runtime probes run on. Readers wait on the other one, so these
/// threads ask the kernel for a lower priority: when the machine is busy, a
/// redirect goes before a probe. (Best effort: a sandbox may refuse it.)
fn probe_runtime(threads: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = threads {
        builder.worker_threads(threads);
    }
    builder
        .thread_name("mirrorgate-probe")
        .on_thread_start(lower_thread_priority)
        .enable_all()
        .build()
}

fn lower_thread_priority() {
    // On Linux, PRIO_PROCESS with who = 0 is the calling thread alone.
    // SAFETY: setpriority takes plain integers and touches no memory of ours.
    let result = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, PROBE_NICENESS) };
    if result != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "probe threads keep the default priority");
    }
}

/// Hands memory that is free but still mapped back to the kernel. A round
/// allocates and frees per-probe buffers and a job list across threads;
/// glibc keeps such pages mapped (its per-thread arenas trim only from the
/// top), so without this the resident size reflects the busiest moment of
/// any round rather than what the state needs.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages to the kernel; it touches
    // no memory that is in use and may be called from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Nice value of the probe threads: low enough that readers come first.
const PROBE_NICENESS: libc::c_int = 10;

fn size(catalog: &Catalog) -> (usize, usize) {
    (
        catalog.sites.len(),
        catalog.sites.iter().map(|s| s.articles.len()).sum(),
    )
}

/// What the rounds loop reads and reports to.
struct Rounds {
    snapshots: Snapshots,
    schedulers: Schedulers,
    events: mpsc::Sender<EngineEvent>,
    /// A reload: probe what is new at once.
    wake: Arc<Notify>,
    heartbeat: Arc<Heartbeat>,
    counters: Arc<Counters>,
    /// Its work queue (PostgreSQL) or its cluster (which pairs are this
    /// instance's while the queue cannot be reached) says what to probe.
    writer: StoreWriter,
    stop: CancellationToken,
}

async fn probe_rounds(rounds: Rounds) {
    let Rounds {
        snapshots,
        schedulers,
        events,
        wake,
        heartbeat,
        counters,
        writer,
        stop,
    } = rounds;
    let store = writer.health.clone();
    let mut shared = store.shares_work.then(|| {
        SharedWork::new(
            writer.clone(),
            events.clone(),
            snapshots.clone(),
            stop.clone(),
            wake.clone(),
        )
    });
    let mut claims_failing = false;
    let mut beat = tokio::time::interval(BEAT_EVERY);
    let mut completed: u64 = 0;
    loop {
        let scheduler = schedulers.load_full();
        let started = Instant::now();
        let next = started + scheduler.interval();
        let _ = events.send(EngineEvent::RoundStarted { at: now_ms() }).await;
        // Revalidate (If-None-Match / If-Modified-Since) except every
        // FULL_FETCH_EVERY-th round, which fetches everything in full.
        let conditional = !completed.is_multiple_of(FULL_FETCH_EVERY);
        let probing = async {
            if let Some(shared) = shared.as_mut() {
                let window = shared.window(scheduler.clone(), conditional, next).await;
                match window {
                    Ok(window) => {
                        if std::mem::take(&mut claims_failing) {
                            tracing::info!("claiming work from the store again");
                        }
                        return match window {
                            Window::Ran { drained } => (drained.unwrap_or_else(|| started.elapsed()), false),
                            Window::Woken { drained } => (drained.unwrap_or_else(|| started.elapsed()), true),
                        };
                    }
                    Err(error) => {
                        if !std::mem::replace(&mut claims_failing, true) {
                            tracing::warn!(
                                %error,
                                "cannot claim work from the store; probing this instance's share of every pair meanwhile"
                            );
                        }
                    }
                }
            }
            // Instances sharing a store split the pairs among them.
            let share = {
                let cluster = store.cluster.lock().unwrap_or_else(|e| e.into_inner());
                crate::state::schedule::Share::new(
                    &store.instance,
                    cluster.members.iter().map(|m| m.name.clone()).collect(),
                )
            };
            scheduler
                .round(&events, &stop, Some(snapshots.load_full()), conditional, Some(&share))
                .await;
            (started.elapsed(), false)
        };
        tokio::pin!(probing);
        let (duration, woken) = loop {
            tokio::select! {
                done = &mut probing => break done,
                _ = beat.tick() => heartbeat.beat(Loop::Scheduler),
            }
        };
        completed += 1;
        let _ = events.send(EngineEvent::RoundFinished { at: now_ms(), duration }).await;
        release_free_memory();
        let (sites, articles) = size(scheduler.catalog());
        tracing::info!(duration_ms = duration.as_millis() as u64, "probe round finished");
        if duration > scheduler.interval() && !stop.is_cancelled() {
            counters.rounds_overrun.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                duration_ms = duration.as_millis() as u64,
                interval_ms = scheduler.interval().as_millis() as u64,
                "probe round took longer than probe.interval; the next one starts at once (raise probe.interval or probe.per_host_rate, or lower the article count)"
            );
        }
        notify::status(&format!(
            "probing {sites} sites, {articles} articles; last round {:.1}s",
            duration.as_secs_f64()
        ));
        if woken {
            continue;
        }
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep_until(next) => break,
                // A reload: probe what is new at once.
                _ = wake.notified() => break,
                _ = beat.tick() => heartbeat.beat(Loop::Scheduler),
            }
        }
    }
}

/// The configured backend for the daemon: a PostgreSQL server that cannot
/// be reached now is not fatal (the daemon serves from memory and its
/// writer keeps trying); the reason comes back beside the store.
pub fn open_store_or_away(config: &StoreConfig) -> Result<(Box<dyn Store>, Option<StoreError>), StoreError> {
    Ok(match (config.backend, &config.postgres) {
        (StoreBackend::Postgres, Some(postgres)) => {
            let (store, away) =
                PostgresStore::open_or_away(PostgresTarget::of(postgres, config.password_file.as_deref())?)?;
            (Box::new(store), away)
        }
        (StoreBackend::None, _) => (Box::new(NullStore), None),
        _ => (Box::new(SqliteStore::open(&config.path, config.busy_timeout)?), None),
    })
}

/// The configured backend, opened (and, for PostgreSQL, migrated); a
/// server that cannot be reached is an error here (`check`).
pub fn open_store(config: &StoreConfig) -> Result<Box<dyn Store>, StoreError> {
    match open_store_or_away(config)? {
        (store, None) => Ok(store),
        (_, Some(away)) => Err(away),
    }
}

/// What logs call the store: the SQLite file, or the URL without password.
pub fn store_name(config: &StoreConfig) -> String {
    match (config.backend, &config.postgres) {
        (StoreBackend::Postgres, Some(postgres)) => postgres.shown.clone(),
        (StoreBackend::None, _) => "none".into(),
        _ => config.path.display().to_string(),
    }
}
