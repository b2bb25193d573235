//! The daemon's lifecycle: open the store, resume from it, bind, probe in
//! rounds, serve, and shut down without losing what was already probed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::clock::now_ms;
use crate::config::Config;
use crate::engine::{self, Engine, EngineEvent, LATENCY_SAMPLES};
use crate::probe::ClientError;
use crate::schedule::Scheduler;
use crate::serve::{self, Snapshots};
use crate::snapshot::Catalog;
use crate::store::{SqliteStore, Store, StoreError, StoreWriter};

/// How long probes in flight may finish after a stop is requested.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

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
}

pub struct Daemon {
    local_addr: SocketAddr,
    snapshots: Snapshots,
    scheduler: JoinHandle<()>,
    engine: JoinHandle<Engine>,
    writer: StoreWriter,
    writer_task: JoinHandle<()>,
    server: JoinHandle<std::io::Result<()>>,
    shutdown: CancellationToken,
}

impl Daemon {
    /// Starts everything; returns once the listener is bound and the stored
    /// state is being served.
    pub async fn start(config: Config, shutdown: CancellationToken) -> Result<Self, StartError> {
        let catalog = Arc::new(Catalog::new(&config));
        let path = config.store.path.clone();
        let (store, restored) = tokio::task::spawn_blocking(move || {
            let mut store = SqliteStore::open(&path)?;
            let restored = store.load_snapshot(LATENCY_SAMPLES)?;
            Ok::<_, StoreError>((store, restored))
        })
        .await
        .expect("opening the store does not panic")?;
        tracing::info!(
            path = %config.store.path.display(),
            results = restored.latest.len(),
            versions = restored.versions.len(),
            "store opened"
        );
        let mut engine = Engine::new(
            catalog.clone(),
            config.probe.down_after,
            config.store.retention,
            Some(restored),
        );
        let (writer, writer_task) = StoreWriter::spawn(Box::new(store) as Box<dyn Store>, config.store.retention);
        engine.set_store_health(writer.health.clone());
        let snapshots = engine.snapshots();
        let addr = config.server.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Listen { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| StartError::Listen { addr, source })?;
        let scheduler = Scheduler::new(catalog.clone(), &config.probe)?;
        let (events, engine_task) = engine::spawn(engine, Some(writer.clone()));
        let app = serve::router(snapshots.clone());
        let server = tokio::spawn(
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown.clone().cancelled_owned())
                .into_future(),
        );
        let articles: usize = catalog.sites.iter().map(|s| s.articles.len()).sum();
        let bases: usize = catalog.sites.iter().map(|s| s.bases.len()).sum();
        tracing::info!(%local_addr, sites = catalog.sites.len(), articles, bases, "serving");
        let scheduler = tokio::spawn(probe_rounds(scheduler, events, config.probe.interval, shutdown.clone()));
        Ok(Daemon {
            local_addr,
            snapshots,
            scheduler,
            engine: engine_task,
            writer,
            writer_task,
            server,
            shutdown,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn snapshots(&self) -> Snapshots {
        self.snapshots.clone()
    }

    /// Waits for shutdown to be requested and completed: probes in flight
    /// get [`SHUTDOWN_GRACE`], then every result is flushed to the store.
    pub async fn finished(self) -> std::io::Result<()> {
        self.shutdown.cancelled().await;
        let mut scheduler = self.scheduler;
        if tokio::time::timeout(SHUTDOWN_GRACE, &mut scheduler).await.is_err() {
            tracing::warn!(grace = ?SHUTDOWN_GRACE, "probes still running after the grace period; cancelling them");
            scheduler.abort();
            let _ = scheduler.await;
        }
        // The scheduler owned the last event sender, so the engine drains and stops.
        let _ = self.engine.await;
        self.writer.flush().await;
        drop(self.writer);
        let _ = self.writer_task.await;
        tracing::info!("stopped; every probe result is stored");
        self.server.await.unwrap_or(Ok(()))
    }
}

async fn probe_rounds(
    scheduler: Scheduler,
    events: mpsc::Sender<EngineEvent>,
    interval: Duration,
    stop: CancellationToken,
) {
    loop {
        let started = Instant::now();
        let _ = events.send(EngineEvent::RoundStarted { at: now_ms() }).await;
        scheduler.round(&events, &stop).await;
        let duration = started.elapsed();
        let _ = events.send(EngineEvent::RoundFinished { at: now_ms(), duration }).await;
        tracing::info!(duration_ms = duration.as_millis() as u64, "probe round finished");
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep_until(started + interval) => {}
        }
    }
}
