//! The validated configuration: plain data, built only by the parser.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use super::{DiscoverConfig, GeoipConfig, ScheduleConfig, SinkConfig, VantageConfig};
use crate::fingerprint::{BlockFingerprints, ContentSelector};
use crate::origin::Origin;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Config {
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub probe: ProbeConfig,
    pub schedule: ScheduleConfig,
    pub verdicts: VerdictsConfig,
    pub log: LogConfig,
    pub geoip: GeoipConfig,
    pub vantage: VantageConfig,
    pub alerts: Vec<SinkConfig>,
    pub sites: Vec<SiteConfig>,
}

#[derive(Clone, Debug, Default)]
pub struct VerdictsConfig {
    /// The file `blockpage_fingerprints` names, if any.
    pub blockpage_fingerprints_path: Option<PathBuf>,
    /// Its fingerprints (empty without one).
    pub blockpage_fingerprints: Arc<BlockFingerprints>,
}

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Runtime worker threads; None leaves it to tokio (`TOKIO_WORKER_THREADS` or one per core).
    pub workers: Option<usize>,
    /// How long probes in flight may finish after SIGTERM before they are cancelled.
    pub shutdown_grace: Duration,
    /// When set, /status and /metrics require `Authorization: Bearer <token>`.
    /// From `status_token` or the file `status_token_file` names.
    pub status_token: Option<Secret>,
    /// A client must send its request headers within this (slowloris
    /// readers), and take each answer within it too.
    pub request_header_timeout: Duration,
    /// Reader connections open at once; past it a new one gets a 503.
    pub max_connections: usize,
    /// Templates for the readers' error pages (`503.html`, `400.html`,
    /// `404.html`) that replace the built-in ones, if set.
    pub error_page_dir: Option<PathBuf>,
    /// Proxies whose `X-Forwarded-For` / `Forwarded` names the reader.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `/r/` answers browsers with the reader-side probe page.
    pub reader_probe: bool,
}

/// A credential: compared and used, never printed (`Debug` shows only that
/// one is there), so it stays out of logs and panic messages.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    pub fn new(value: &str) -> Self {
        Secret(Arc::from(value))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The default `max_connections`: three quarters of the open-file limit,
/// leaving the rest for probes, the store and logs; 64 to 100,000.
pub fn default_max_connections() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only into the struct we pass.
    let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        limit.rlim_cur
    } else {
        1024
    };
    usize::try_from(soft / 4 * 3).unwrap_or(usize::MAX).clamp(64, 100_000)
}

#[derive(Clone, Debug)]
pub struct StoreConfig {
    pub backend: StoreBackend,
    /// The SQLite file (`backend = "sqlite"`).
    pub path: PathBuf,
    /// `[store] url`: a PostgreSQL database the instances naming it share.
    pub postgres: Option<PostgresConfig>,
    /// Holds PostgreSQL's password (its first line), read when the store is opened.
    pub password_file: Option<PathBuf>,
    /// This instance's name among those sharing a store (`[store] instance`).
    pub instance: String,
    pub retention: Duration,
    /// Raw probe rows are kept this long; hourly rollups for `retention`.
    pub raw_retention: Duration,
    /// How long a write waits on a lock another process holds before it fails (and is retried).
    pub busy_timeout: Duration,
}

/// Where a PostgreSQL store is. The URL may hold a password, so it is a
/// [`Secret`]; everything shown to people uses `shown`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostgresConfig {
    pub url: Secret,
    /// The URL with any password removed.
    pub shown: String,
    /// The URL itself carries a password (warned about: use `password_file`).
    pub password_in_url: bool,
    /// `sslmode=verify-ca` or `verify-full`: the server's certificate is
    /// checked, not only used to encrypt.
    pub verify_server: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreBackend {
    Sqlite,
    Postgres,
    /// Nothing is stored and nothing survives a restart: for benchmarks and throwaway runs.
    None,
}

#[derive(Clone, Debug)]
pub struct ProbeConfig {
    pub interval: Duration,
    pub timeout: Duration,
    pub concurrency: usize,
    /// Requests per second per host; 0 turns the limit off.
    pub per_host_rate: f64,
    pub max_body: u64,
    pub user_agent: String,
    /// Consecutive failed probes before a base counts as down.
    pub down_after: u32,
    /// Extra trusted roots (PEM), beside the system's, for mirrors behind a private CA.
    pub ca_pem: Option<Vec<u8>>,
    /// Threads of the probe runtime (None: one per core).
    pub threads: Option<usize>,
    /// An observation older than this says nothing: its base is `unknown`
    /// for the article and no candidate.
    pub max_age: Duration,
}

#[derive(Clone, Debug)]
pub struct LogConfig {
    pub level: Option<String>,
}

#[derive(Clone, Debug)]
pub struct SiteConfig {
    pub name: String,
    pub primary: Origin,
    pub mirrors: Vec<Origin>,
    /// Hosts that belong to the bases (their own CDNs), mapped like them.
    pub aliases: Vec<String>,
    pub articles: Vec<String>,
    pub content_selector: Option<ContentSelector>,
    /// Elements that never count (view counters, "updated 4 minutes ago").
    pub content_exclude: Vec<ContentSelector>,
    pub prefer_primary: bool,
    /// A small image every base serves, which the reader-side probe page
    /// loads to see whether a base works from the reader's network.
    pub probe_asset: String,
    /// `[sites.discover]`: find articles in the site's sitemaps and feeds.
    pub discover: Option<DiscoverConfig>,
    /// Articles' own dates, as discovery found them (publication date,
    /// else lastmod or the feed's updated): empty as parsed.
    pub article_dates: std::collections::HashMap<String, crate::clock::UnixMillis>,
    /// Phrases that introduce the site's other addresses in its pages
    /// (empty: the English ones built in).
    pub alternate_phrases: Vec<String>,
}

impl SiteConfig {
    /// Every base, primary first, then mirrors in config order.
    pub fn bases(&self) -> impl Iterator<Item = &Origin> {
        std::iter::once(&self.primary).chain(self.mirrors.iter())
    }
}
