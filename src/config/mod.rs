//! The TOML configuration, read into a validated [`Config`].
//!
//! The file is walked by hand over toml's spanned tree rather than through
//! `#[derive(Deserialize)]`: serde stops at the first problem, and operators
//! should see every problem at once, each as `FILE:LINE:COL: message` naming
//! the key. A config with any problem never yields a `Config`, so the daemon
//! cannot start on a half-valid one.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::fingerprint::{BlockFingerprints, ContentSelector};
use crate::origin::Origin;

mod alerts;
mod discover;
mod vantage;
pub use alerts::{Severity, SinkConfig, SinkKind};
pub use discover::DiscoverConfig;
pub use vantage::{AgentConfig, GeoipConfig, VantageConfig};

pub const DEFAULT_CONFIG_PATH: &str = "/etc/mirrorgate/mirrorgate.toml";

#[derive(Clone, Debug)]
pub struct Config {
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub probe: ProbeConfig,
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
    pub path: PathBuf,
    pub retention: Duration,
    /// Raw probe rows are kept this long; hourly rollups for `retention`.
    pub raw_retention: Duration,
    /// How long a write waits on a lock another process holds before it fails (and is retried).
    pub busy_timeout: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreBackend {
    Sqlite,
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

/// One problem in a config file, located for the operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file, self.line, self.column, self.message)
    }
}

/// Every problem found in one config file.
#[derive(Debug, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

/// Reads and validates the config at `path`. Relative store paths are
/// resolved against the config file's directory, as Prometheus does, so a
/// config means the same thing whatever the working directory.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: file.clone(),
            line: 1,
            column: 1,
            message: format!("cannot read config: {e}"),
        }])
    })?;
    let base_dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut config = parse_in(&file, &text, base_dir)?;
    if config.store.path.is_relative()
        && let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
    {
        config.store.path = dir.join(&config.store.path);
    }
    Ok(config)
}

/// Problems that are not errors: a valid config that cannot do what it
/// asks. Today: a host whose articles, at `per_host_rate`, take longer to
/// probe than `interval`, so every round overruns.
pub fn warnings(config: &Config) -> Vec<String> {
    let rate = config.probe.per_host_rate;
    if rate <= 0.0 {
        return Vec::new();
    }
    // Requests per round per host:port: each article on each base there.
    let mut per_host: Vec<(&str, usize)> = Vec::new();
    for site in &config.sites {
        for base in site.bases() {
            let requests = site.articles.len();
            match per_host.iter_mut().find(|(host, _)| *host == base.authority()) {
                Some((_, total)) => *total += requests,
                None => per_host.push((base.authority(), requests)),
            }
        }
    }
    per_host
        .into_iter()
        .filter_map(|(host, requests)| {
            let round = Duration::from_secs_f64(requests as f64 / rate);
            (round > config.probe.interval).then(|| {
                format!(
                    "{host}: {requests} articles at probe.per_host_rate = {rate}/s take at least {} per round, longer than probe.interval ({}); every round will overrun (raise per_host_rate or interval)",
                    humantime::format_duration(Duration::from_secs(round.as_secs())),
                    humantime::format_duration(config.probe.interval)
                )
            })
        })
        .collect()
}

/// Every key the config accepts, as `section.key` (sites' as `sites.key`).
pub fn all_keys() -> Vec<String> {
    let sections: [(&str, &[&str]); 9] = [
        ("server", SERVER_KEYS),
        ("alerts", alerts::ALERT_KEYS),
        ("geoip", vantage::GEOIP_KEYS),
        ("vantage", vantage::VANTAGE_KEYS),
        ("store", STORE_KEYS),
        ("probe", PROBE_KEYS),
        ("log", LOG_KEYS),
        ("verdicts", VERDICTS_KEYS),
        ("sites", SITE_KEYS),
    ];
    sections
        .iter()
        .flat_map(|(section, keys)| keys.iter().map(move |key| format!("{section}.{key}")))
        .collect()
}

/// `$CREDENTIALS_DIRECTORY/…` or `${CREDENTIALS_DIRECTORY}/…` with the
/// directory systemd put the unit's credentials in.
fn expand_credentials_directory(path: &str) -> String {
    for prefix in ["${CREDENTIALS_DIRECTORY}", "$CREDENTIALS_DIRECTORY"] {
        if let Some(rest) = path.strip_prefix(prefix) {
            let dir = std::env::var("CREDENTIALS_DIRECTORY").unwrap_or_default();
            return format!("{dir}{rest}");
        }
    }
    path.to_string()
}

/// Validates config text; `file` only labels the errors.
pub fn parse(file: &str, text: &str) -> Result<Config, ConfigErrors> {
    parse_in(file, text, Path::new("."))
}

fn parse_in(file: &str, text: &str, base_dir: &Path) -> Result<Config, ConfigErrors> {
    let mut walker = Walker {
        file,
        text,
        base_dir,
        errors: Vec::new(),
    };
    let (root, syntax_errors) = DeTable::parse_recoverable(text);
    if !syntax_errors.is_empty() {
        for error in syntax_errors {
            let span = error.span().unwrap_or(0..0);
            walker.error(span, error.message().trim().to_string());
        }
        return Err(ConfigErrors(walker.errors));
    }
    let config = walker.root(root.get_ref());
    match config {
        Some(config) if walker.errors.is_empty() => Ok(config),
        _ => {
            walker.errors.sort_by_key(|e| (e.line, e.column));
            Err(ConfigErrors(walker.errors))
        }
    }
}

type Value<'i> = Spanned<DeValue<'i>>;

struct Walker<'a> {
    file: &'a str,
    text: &'a str,
    /// Relative paths in the config (ca_file) are relative to this.
    base_dir: &'a Path,
    errors: Vec<ConfigError>,
}

const ROOT_KEYS: &[&str] = &[
    "server", "store", "probe", "verdicts", "log", "geoip", "vantage", "alerts", "sites",
];
const VERDICTS_KEYS: &[&str] = &["blockpage_fingerprints"];
const BASE_KEYS: &[&str] = &["url", "aliases"];
const SERVER_KEYS: &[&str] = &[
    "listen",
    "workers",
    "shutdown_grace",
    "status_token",
    "status_token_file",
    "request_header_timeout",
    "max_connections",
    "error_page_dir",
    "trusted_proxies",
    "reader_probe",
];
const STORE_KEYS: &[&str] = &["backend", "path", "retention", "raw_retention", "busy_timeout"];
const PROBE_KEYS: &[&str] = &[
    "interval",
    "timeout",
    "concurrency",
    "per_host_rate",
    "max_body",
    "user_agent",
    "down_after",
    "ca_file",
    "threads",
    "max_age",
];
const LOG_KEYS: &[&str] = &["level"];
const SITE_KEYS: &[&str] = &[
    "name",
    "primary",
    "mirrors",
    "articles",
    "content_selector",
    "content_exclude",
    "prefer_primary",
    "probe_asset",
    "discover",
    "alternate_phrases",
];

impl Walker<'_> {
    fn error(&mut self, span: Range<usize>, message: String) {
        let (line, column) = line_column(self.text, span.start);
        self.errors.push(ConfigError {
            file: self.file.to_string(),
            line,
            column,
            message,
        });
    }

    fn root(&mut self, root: &DeTable<'_>) -> Option<Config> {
        self.unknown_keys(root, "the top level", ROOT_KEYS);
        let empty = DeTable::new();
        let server = self.section(root, "server").unwrap_or(&empty);
        let store = self.section(root, "store").unwrap_or(&empty);
        let probe = self.section(root, "probe").unwrap_or(&empty);
        let verdicts = self.section(root, "verdicts").unwrap_or(&empty);
        let log = self.section(root, "log").unwrap_or(&empty);
        let geoip = self.section(root, "geoip").unwrap_or(&empty);
        let vantage = self.section(root, "vantage").unwrap_or(&empty);
        let server = self.server(server);
        let store = self.store(store);
        let probe = self.probe(probe);
        let verdicts = self.verdicts(verdicts);
        let log = self.log(log);
        let geoip = self.geoip(geoip);
        let vantage = self.vantage(vantage);
        let alerts = self.alerts(root);
        let sites = self.sites(root);
        Some(Config {
            server: server?,
            store: store?,
            probe: probe?,
            verdicts: verdicts?,
            log: log?,
            geoip: geoip?,
            vantage: vantage?,
            alerts: alerts?,
            sites: sites?,
        })
    }

    fn section<'t, 'i>(&mut self, root: &'t DeTable<'i>, name: &str) -> Option<&'t DeTable<'i>> {
        let value = find(root, name)?;
        match value.get_ref() {
            DeValue::Table(table) => Some(table),
            other => {
                let message = format!("`{name}` must be a table, found {}", other.type_str());
                self.error(value.span(), message);
                None
            }
        }
    }

    fn unknown_keys(&mut self, table: &DeTable<'_>, place: &str, allowed: &[&str]) {
        for key in table.keys() {
            if allowed.contains(&key.get_ref().as_ref()) {
                continue;
            }
            let mut message = format!("unknown key \"{}\" in {place}", key.get_ref());
            if let Some(suggestion) = closest(key.get_ref(), allowed) {
                message.push_str(&format!(" (did you mean \"{suggestion}\"?)"));
            }
            self.error(key.span(), message);
        }
    }

    fn server(&mut self, table: &DeTable<'_>) -> Option<ServerConfig> {
        self.unknown_keys(table, "[server]", SERVER_KEYS);
        let listen = match self.string(table, "server", "listen") {
            None => Some("127.0.0.1:8080".parse().expect("a valid literal address")),
            Some((text, span)) => match text.parse::<SocketAddr>() {
                Ok(addr) => Some(addr),
                Err(_) => {
                    let message = format!(
                        "`server.listen` must be an IP address and port such as \"127.0.0.1:8080\", found \"{text}\""
                    );
                    self.error(span, message);
                    None
                }
            },
        };
        let workers = self.integer(table, "server", "workers", 1, 1024);
        let shutdown_grace = self.duration(table, "server", "shutdown_grace", Duration::from_secs(10));
        let status_token = self.status_token(table);
        let request_header_timeout = self.duration(table, "server", "request_header_timeout", Duration::from_secs(10));
        let max_connections = self.integer(table, "server", "max_connections", 1, 10_000_000);
        let error_page_dir = match self.string(table, "server", "error_page_dir") {
            None => Some(None),
            Some((dir, span)) => {
                let path = self.base_dir.join(&dir);
                if path.is_dir() {
                    Some(Some(path))
                } else {
                    let message = format!("`server.error_page_dir` \"{}\" is not a directory", path.display());
                    self.error(span, message);
                    None
                }
            }
        };
        let trusted_proxies = self.trusted_proxies(table);
        let reader_probe = self.boolean(table, "server", "reader_probe");
        Some(ServerConfig {
            trusted_proxies: trusted_proxies?,
            reader_probe: reader_probe?.unwrap_or(false),
            listen: listen?,
            workers: workers?,
            shutdown_grace: shutdown_grace?,
            status_token: status_token?,
            request_header_timeout: request_header_timeout?,
            max_connections: max_connections?.unwrap_or_else(default_max_connections),
            error_page_dir: error_page_dir?,
        })
    }

    /// `status_token`, or the first line of the file `status_token_file`
    /// names (`$CREDENTIALS_DIRECTORY` expands, for systemd's
    /// `LoadCredential=`); not both.
    fn status_token(&mut self, table: &DeTable<'_>) -> Option<Option<Secret>> {
        let inline = self.string(table, "server", "status_token");
        let file = self.string(table, "server", "status_token_file");
        let (token, span, origin) = match (inline, file) {
            (None, None) => return Some(None),
            (Some(_), Some((_, span))) => {
                self.error(
                    span,
                    "set `server.status_token` or `server.status_token_file`, not both".into(),
                );
                return None;
            }
            (Some((token, span)), None) => (token, span, "`server.status_token`".to_string()),
            (None, Some((file, span))) => {
                let expanded = expand_credentials_directory(&file);
                let path = self.base_dir.join(&expanded);
                match std::fs::read_to_string(&path) {
                    Ok(text) => (
                        text.lines().next().unwrap_or("").trim().to_string(),
                        span,
                        format!("the token in `server.status_token_file` \"{}\"", path.display()),
                    ),
                    Err(e) => {
                        let message = format!("`server.status_token_file` \"{}\" cannot be read: {e}", path.display());
                        self.error(span, message);
                        return None;
                    }
                }
            }
        };
        if token.len() < 16 || !token.bytes().all(|b| b.is_ascii_graphic()) {
            self.error(
                span,
                format!("{origin} must be at least 16 printable characters without spaces"),
            );
            return None;
        }
        Some(Some(Secret::new(&token)))
    }

    fn store(&mut self, table: &DeTable<'_>) -> Option<StoreConfig> {
        self.unknown_keys(table, "[store]", STORE_KEYS);
        let path = match self.string(table, "store", "path") {
            Some((text, span)) if text.is_empty() => {
                self.error(span, "`store.path` must not be empty".into());
                None
            }
            Some((text, _)) => Some(PathBuf::from(text)),
            None => Some(default_store_path()),
        };
        let retention = self.duration(table, "store", "retention", Duration::from_secs(30 * 86400));
        let raw_retention = self.duration(table, "store", "raw_retention", Duration::from_secs(2 * 86400));
        let busy_timeout = self.duration(table, "store", "busy_timeout", Duration::from_secs(5));
        let backend = match self.string(table, "store", "backend") {
            None => Some(StoreBackend::Sqlite),
            Some((name, _)) if name == "sqlite" => Some(StoreBackend::Sqlite),
            Some((name, _)) if name == "none" => Some(StoreBackend::None),
            Some((name, span)) => {
                self.error(
                    span,
                    format!("`store.backend` must be \"sqlite\" or \"none\", found \"{name}\""),
                );
                None
            }
        };
        Some(StoreConfig {
            backend: backend?,
            path: path?,
            retention: retention?,
            raw_retention: raw_retention?,
            busy_timeout: busy_timeout?,
        })
    }

    fn probe(&mut self, table: &DeTable<'_>) -> Option<ProbeConfig> {
        self.unknown_keys(table, "[probe]", PROBE_KEYS);
        let interval = self.duration(table, "probe", "interval", Duration::from_secs(300));
        let timeout = self.duration(table, "probe", "timeout", Duration::from_secs(10));
        let concurrency = self.integer(table, "probe", "concurrency", 1, 100_000);
        let per_host_rate = self.rate(table);
        let max_body = self.size(table, "probe", "max_body", 5 * 1024 * 1024);
        let user_agent = match self.string(table, "probe", "user_agent") {
            Some((text, span)) if text.is_empty() || text.chars().any(char::is_control) => {
                self.error(span, "`probe.user_agent` must be non-empty printable text".into());
                None
            }
            Some((text, _)) => Some(text),
            None => Some(format!(
                "mirrorgate/{} (+https://example.org/mirrorgate)",
                env!("CARGO_PKG_VERSION")
            )),
        };
        let down_after = self.integer(table, "probe", "down_after", 1, 1000);
        let threads = self.integer(table, "probe", "threads", 1, 1024);
        let max_age = match (find(table, "max_age"), interval) {
            (None, Some(interval)) => Some(interval.saturating_mul(3)),
            (None, None) => None,
            (Some(_), interval) => {
                let max_age = self.duration(table, "probe", "max_age", Duration::ZERO);
                match (max_age, interval) {
                    (Some(max_age), Some(interval)) if max_age < interval => {
                        let value = find(table, "max_age").expect("found above");
                        self.error(
                            value.span(),
                            format!(
                                "`probe.max_age` ({}) must be at least `probe.interval` ({}): every observation would be too old before the next round",
                                humantime::format_duration(max_age),
                                humantime::format_duration(interval)
                            ),
                        );
                        None
                    }
                    (max_age, _) => max_age,
                }
            }
        };
        let ca_pem = match self.string(table, "probe", "ca_file") {
            None => Some(None),
            Some((file, span)) => {
                let path = self.base_dir.join(&file);
                match std::fs::read(&path) {
                    Err(e) => {
                        self.error(
                            span,
                            format!("`probe.ca_file` \"{}\" cannot be read: {e}", path.display()),
                        );
                        None
                    }
                    // The same parse the prober's TLS client does, without the client.
                    Ok(pem) => match CertificateDer::pem_slice_iter(&pem).collect::<Result<Vec<_>, _>>() {
                        Ok(certs) if !certs.is_empty() => Some(Some(pem)),
                        _ => {
                            let message = format!("`probe.ca_file` \"{}\" holds no PEM certificate", path.display());
                            self.error(span, message);
                            None
                        }
                    },
                }
            }
        };
        Some(ProbeConfig {
            interval: interval?,
            timeout: timeout?,
            concurrency: concurrency?.unwrap_or(64),
            per_host_rate: per_host_rate?,
            max_body: max_body?,
            user_agent: user_agent?,
            down_after: down_after?.unwrap_or(2) as u32,
            ca_pem: ca_pem?,
            threads: threads?,
            max_age: max_age?,
        })
    }

    fn verdicts(&mut self, table: &DeTable<'_>) -> Option<VerdictsConfig> {
        self.unknown_keys(table, "[verdicts]", VERDICTS_KEYS);
        let Some((file, span)) = self.string(table, "verdicts", "blockpage_fingerprints") else {
            return Some(VerdictsConfig::default());
        };
        let path = self.base_dir.join(&file);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) => {
                self.error(
                    span,
                    format!(
                        "`verdicts.blockpage_fingerprints` \"{}\" cannot be read: {e}",
                        path.display()
                    ),
                );
                return None;
            }
        };
        match BlockFingerprints::parse_csv(&text) {
            Ok(fingerprints) => Some(VerdictsConfig {
                blockpage_fingerprints_path: Some(path),
                blockpage_fingerprints: Arc::new(fingerprints),
            }),
            Err(errors) => {
                for error in errors {
                    self.error(
                        span.clone(),
                        format!(
                            "`verdicts.blockpage_fingerprints` \"{}\" {}: {}",
                            path.display(),
                            if error.line > 0 {
                                format!("line {}", error.line)
                            } else {
                                "header".to_string()
                            },
                            error.message
                        ),
                    );
                }
                None
            }
        }
    }

    fn log(&mut self, table: &DeTable<'_>) -> Option<LogConfig> {
        self.unknown_keys(table, "[log]", LOG_KEYS);
        let level = match self.string(table, "log", "level") {
            Some((text, span)) => {
                if tracing_subscriber::EnvFilter::try_new(&text).is_err() {
                    self.error(
                        span,
                        format!("`log.level` \"{text}\" is not a level such as \"info\" or \"mirrorgate=debug\""),
                    );
                    return None;
                }
                Some(text)
            }
            None => None,
        };
        Some(LogConfig { level })
    }

    fn sites(&mut self, root: &DeTable<'_>) -> Option<Vec<SiteConfig>> {
        let Some(value) = find(root, "sites") else {
            self.error(0..0, "no [[sites]] configured: add at least one site".into());
            return None;
        };
        let DeValue::Array(array) = value.get_ref() else {
            let message = format!(
                "`sites` must be an array of tables ([[sites]]), found {}",
                value.get_ref().type_str()
            );
            self.error(value.span(), message);
            return None;
        };
        if array.is_empty() {
            self.error(value.span(), "`sites` is empty: add at least one site".into());
            return None;
        }
        let mut sites = Vec::new();
        let mut ok = true;
        let mut names: HashMap<String, usize> = HashMap::new();
        // A base may serve only one site: `/go?url=` must map an origin to one site.
        let mut bases: HashMap<Origin, usize> = HashMap::new();
        for (index, entry) in array.iter().enumerate() {
            let DeValue::Table(table) = entry.get_ref() else {
                self.error(entry.span(), format!("`sites[{index}]` must be a table"));
                ok = false;
                continue;
            };
            match self.site(index, entry.span(), table, &mut names, &mut bases) {
                Some(site) => sites.push(site),
                None => ok = false,
            }
        }
        ok.then_some(sites)
    }

    fn site(
        &mut self,
        index: usize,
        span: Range<usize>,
        table: &DeTable<'_>,
        names: &mut HashMap<String, usize>,
        bases: &mut HashMap<Origin, usize>,
    ) -> Option<SiteConfig> {
        let place = format!("sites[{index}]");
        self.unknown_keys(table, &format!("[[sites]] #{}", index + 1), SITE_KEYS);
        let name = match self.string(table, &place, "name") {
            None => {
                self.error(span.clone(), format!("`{place}.name` is missing"));
                None
            }
            Some((name, span)) => {
                let valid = !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
                if !valid {
                    let message = format!(
                        "`{place}.name` \"{name}\" must be non-empty and use only letters, digits, '-', '_' and '.' (it is a URL path segment)"
                    );
                    self.error(span, message);
                    None
                } else if let Some(first) = names.get(&name) {
                    let (line, _) = line_column(self.text, *first);
                    let message =
                        format!("duplicate site name \"{name}\" in `{place}.name` (first used on line {line})");
                    self.error(span, message);
                    None
                } else {
                    names.insert(name.clone(), span.start);
                    Some(name)
                }
            }
        };
        let mut aliases = Some(Vec::new());
        let primary = match find(table, "primary") {
            None => {
                self.error(span.clone(), format!("`{place}.primary` is missing"));
                None
            }
            Some(value) => match self.base(value, &format!("{place}.primary"), "primary", bases) {
                Some((origin, found)) => {
                    if let (Some(list), Some(found)) = (aliases.as_mut(), found) {
                        list.extend(found);
                    } else {
                        aliases = None;
                    }
                    Some(origin)
                }
                None => None,
            },
        };
        let mut mirrors = Some(Vec::new());
        if let Some(value) = find(table, "mirrors") {
            match value.get_ref() {
                DeValue::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        let key = format!("{place}.mirrors[{i}]");
                        match self.base(item, &key, "mirror", bases) {
                            Some((origin, found)) => {
                                if let Some(list) = mirrors.as_mut() {
                                    list.push(origin);
                                }
                                match (aliases.as_mut(), found) {
                                    (Some(list), Some(found)) => list.extend(found),
                                    _ => aliases = None,
                                }
                            }
                            None => mirrors = None,
                        }
                    }
                }
                other => {
                    let message = format!(
                        "`{place}.mirrors` must be an array of base URLs, found {}",
                        other.type_str()
                    );
                    self.error(value.span(), message);
                    mirrors = None;
                }
            }
        }
        let articles = self.articles(table, &place, span);
        let content_selector = match self.string(table, &place, "content_selector") {
            None => Some(None),
            Some((text, span)) => match ContentSelector::parse(&text) {
                Ok(selector) => Some(Some(selector)),
                Err(e) => {
                    self.error(
                        span,
                        format!("`{place}.content_selector` \"{text}\" is not a supported CSS selector: {e}"),
                    );
                    None
                }
            },
        };
        let content_exclude = self.selectors(table, &place, "content_exclude");
        let prefer_primary = self.boolean(table, &place, "prefer_primary");
        let probe_asset = match self.string(table, &place, "probe_asset") {
            None => Some("/favicon.ico".to_string()),
            Some((path, span)) => match check_article_path(&path) {
                Ok(()) => Some(path),
                Err(why) => {
                    self.error(span, format!("`{place}.probe_asset` \"{path}\" {why}"));
                    None
                }
            },
        };
        let discover = match find(table, "discover") {
            None => Some(None),
            Some(value) => match value.get_ref() {
                DeValue::Table(discover) => self.discover(discover, &place).map(Some),
                other => {
                    let message = format!(
                        "`{place}.discover` must be a table ([sites.discover]), found {}",
                        other.type_str()
                    );
                    self.error(value.span(), message);
                    None
                }
            },
        };
        let alternate_phrases = self.strings(table, &place, "alternate_phrases", |text| {
            if text.trim().chars().count() >= 4 {
                Ok(())
            } else {
                Err("is too short to introduce addresses (4 characters at least)")
            }
        });
        Some(SiteConfig {
            alternate_phrases: alternate_phrases?,
            discover: discover?,
            probe_asset: probe_asset?,
            name: name?,
            primary: primary?,
            mirrors: mirrors?,
            aliases: aliases?,
            articles: articles?,
            content_selector: content_selector?,
            content_exclude: content_exclude?,
            prefer_primary: prefer_primary?.unwrap_or(true),
        })
    }

    /// A list of selectors (`content_exclude`), each checked on its own.
    fn selectors(&mut self, table: &DeTable<'_>, place: &str, key: &str) -> Option<Vec<ContentSelector>> {
        let Some(value) = find(table, key) else {
            return Some(Vec::new());
        };
        let DeValue::Array(items) = value.get_ref() else {
            let message = format!(
                "`{place}.{key}` must be an array of CSS selectors such as [\".views\", \"time.updated\"], found {}",
                value.get_ref().type_str()
            );
            self.error(value.span(), message);
            return None;
        };
        let mut selectors = Some(Vec::new());
        for (i, item) in items.iter().enumerate() {
            let DeValue::String(text) = item.get_ref() else {
                let message = format!(
                    "`{place}.{key}[{i}]` must be a selector string, found {}",
                    item.get_ref().type_str()
                );
                self.error(item.span(), message);
                selectors = None;
                continue;
            };
            match ContentSelector::parse(text) {
                Ok(selector) => {
                    if let Some(list) = selectors.as_mut() {
                        list.push(selector);
                    }
                }
                Err(e) => {
                    let message = format!("`{place}.{key}[{i}]` \"{text}\" is not a supported CSS selector: {e}");
                    self.error(item.span(), message);
                    selectors = None;
                }
            }
        }
        selectors
    }

    /// `aliases = [...]` of a base: host names (with a port if not the
    /// default), no scheme or path.
    fn aliases(&mut self, value: &Value<'_>, key: &str) -> Option<Vec<String>> {
        let DeValue::Array(items) = value.get_ref() else {
            let message = format!(
                "`{key}` must be an array of host names, found {}",
                value.get_ref().type_str()
            );
            self.error(value.span(), message);
            return None;
        };
        let mut out = Some(Vec::new());
        for (i, item) in items.iter().enumerate() {
            let DeValue::String(text) = item.get_ref() else {
                self.error(item.span(), format!("`{key}[{i}]` must be a host name string"));
                out = None;
                continue;
            };
            let host = text.trim().to_ascii_lowercase();
            let (name, port) = match host.rsplit_once(':') {
                Some((name, port)) if port.parse::<u16>().is_ok() => (name, Some(port)),
                _ => (host.as_str(), None),
            };
            let valid = !name.is_empty()
                && name.len() <= 253
                && name
                    .split('.')
                    .all(|label| !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
            if !valid {
                let hint = if text.contains("://") {
                    " (write the host alone, without a scheme)"
                } else if text.contains('/') {
                    " (write the host alone, without a path)"
                } else {
                    ""
                };
                self.error(item.span(), format!("`{key}[{i}]` \"{text}\" is not a host name{hint}"));
                out = None;
                continue;
            }
            if let Some(list) = out.as_mut() {
                list.push(match port {
                    Some(port) => format!("{name}:{port}"),
                    None => name.to_string(),
                });
            }
        }
        out
    }

    /// A base: `"https://host"`, or `{ url = "https://host", aliases = [...] }`.
    /// Returns its origin and its aliases (None: they were invalid).
    #[allow(clippy::type_complexity)]
    fn base(
        &mut self,
        value: &Value<'_>,
        key: &str,
        role: &str,
        bases: &mut HashMap<Origin, usize>,
    ) -> Option<(Origin, Option<Vec<String>>)> {
        if let DeValue::Table(table) = value.get_ref() {
            self.unknown_keys(table, &format!("`{key}`"), BASE_KEYS);
            let aliases = match find(table, "aliases") {
                None => Some(Vec::new()),
                Some(list) => self.aliases(list, &format!("{key}.aliases")),
            };
            let Some(url) = find(table, "url") else {
                self.error(
                    value.span(),
                    format!("`{key}.url` is missing: a base table needs its URL"),
                );
                return None;
            };
            let origin = self.base_url(url, &format!("{key}.url"), role, bases)?;
            return Some((origin, aliases));
        }
        let origin = self.base_url(value, key, role, bases)?;
        Some((origin, Some(Vec::new())))
    }

    fn base_url(
        &mut self,
        value: &Value<'_>,
        key: &str,
        role: &str,
        bases: &mut HashMap<Origin, usize>,
    ) -> Option<Origin> {
        let DeValue::String(text) = value.get_ref() else {
            let message = format!(
                "`{key}` must be a base URL string such as \"https://www.example.com\" (or a table with `url` and `aliases`), found {}",
                value.get_ref().type_str()
            );
            self.error(value.span(), message);
            return None;
        };
        match Origin::parse(text) {
            Err(e) => {
                self.error(value.span(), format!("`{key}`: {role} \"{text}\" {e}"));
                None
            }
            Ok(origin) => {
                if let Some(first) = bases.get(&origin) {
                    let (line, _) = line_column(self.text, *first);
                    let message = format!(
                        "`{key}`: base \"{origin}\" is listed twice (first on line {line}); a base belongs to one site, once"
                    );
                    self.error(value.span(), message);
                    return None;
                }
                bases.insert(origin.clone(), value.span().start);
                Some(origin)
            }
        }
    }

    fn articles(&mut self, table: &DeTable<'_>, place: &str, site_span: Range<usize>) -> Option<Vec<String>> {
        let Some(value) = find(table, "articles") else {
            self.error(
                site_span,
                format!("`{place}.articles` is missing: a site needs at least one article path"),
            );
            return None;
        };
        let DeValue::Array(items) = value.get_ref() else {
            let message = format!(
                "`{place}.articles` must be an array of paths, found {}",
                value.get_ref().type_str()
            );
            self.error(value.span(), message);
            return None;
        };
        if items.is_empty() {
            self.error(
                value.span(),
                format!("`{place}.articles` is empty: a site needs at least one article path"),
            );
            return None;
        }
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut articles = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let key = format!("{place}.articles[{i}]");
            let DeValue::String(path) = item.get_ref() else {
                let message = format!("`{key}` must be a path string, found {}", item.get_ref().type_str());
                self.error(item.span(), message);
                ok = false;
                continue;
            };
            if let Err(problem) = check_article_path(path) {
                self.error(item.span(), format!("`{key}` \"{path}\" {problem}"));
                ok = false;
                continue;
            }
            if let Some(first) = seen.get(path.as_ref()) {
                let (line, _) = line_column(self.text, *first);
                self.error(
                    item.span(),
                    format!("`{key}`: article \"{path}\" is listed twice (first on line {line})"),
                );
                ok = false;
                continue;
            }
            seen.insert(path, item.span().start);
            articles.push(path.to_string());
        }
        ok.then_some(articles)
    }

    fn string(&mut self, table: &DeTable<'_>, place: &str, key: &str) -> Option<(String, Range<usize>)> {
        let value = find(table, key)?;
        match value.get_ref() {
            DeValue::String(text) => Some((text.to_string(), value.span())),
            other => {
                let message = format!("`{place}.{key}` must be a string, found {}", other.type_str());
                self.error(value.span(), message);
                None
            }
        }
    }

    /// Outer None: invalid (already reported). Inner None: not set.
    fn integer(&mut self, table: &DeTable<'_>, place: &str, key: &str, min: i64, max: i64) -> Option<Option<usize>> {
        let Some(value) = find(table, key) else {
            return Some(None);
        };
        let parsed = match value.get_ref() {
            DeValue::Integer(int) => i64::from_str_radix(&int.as_str().replace('_', ""), int.radix()).ok(),
            _ => None,
        };
        match parsed {
            Some(n) if (min..=max).contains(&n) => Some(Some(n as usize)),
            _ => {
                let message = format!(
                    "`{place}.{key}` must be an integer from {min} to {max}, found {}",
                    &self.text[value.span()]
                );
                self.error(value.span(), message);
                None
            }
        }
    }

    fn rate(&mut self, table: &DeTable<'_>) -> Option<f64> {
        let Some(value) = find(table, "per_host_rate") else {
            return Some(5.0);
        };
        let parsed = match value.get_ref() {
            DeValue::Integer(int) => int.as_str().replace('_', "").parse::<f64>().ok(),
            DeValue::Float(float) => float.as_str().replace('_', "").parse::<f64>().ok(),
            _ => None,
        };
        match parsed {
            Some(rate) if rate.is_finite() && (0.0..=1_000_000.0).contains(&rate) => Some(rate),
            _ => {
                let message = format!(
                    "`probe.per_host_rate` must be a number of requests per second (0 turns the limit off), found {}",
                    &self.text[value.span()]
                );
                self.error(value.span(), message);
                None
            }
        }
    }

    fn boolean(&mut self, table: &DeTable<'_>, place: &str, key: &str) -> Option<Option<bool>> {
        let Some(value) = find(table, key) else {
            return Some(None);
        };
        match value.get_ref() {
            DeValue::Boolean(b) => Some(Some(*b)),
            other => {
                let message = format!("`{place}.{key}` must be true or false, found {}", other.type_str());
                self.error(value.span(), message);
                None
            }
        }
    }

    fn duration(&mut self, table: &DeTable<'_>, place: &str, key: &str, default: Duration) -> Option<Duration> {
        let (text, span) = match find(table, key) {
            None => return Some(default),
            Some(value) => match value.get_ref() {
                DeValue::String(text) => (text.to_string(), value.span()),
                other => {
                    let message = format!(
                        "`{place}.{key}` must be a duration string such as \"5m\" or \"10s\", found {}",
                        other.type_str()
                    );
                    self.error(value.span(), message);
                    return None;
                }
            },
        };
        match humantime::parse_duration(&text) {
            Ok(duration) if !duration.is_zero() => Some(duration),
            Ok(_) => {
                self.error(
                    span,
                    format!("`{place}.{key}` must be longer than zero, found \"{text}\""),
                );
                None
            }
            Err(e) => {
                self.error(
                    span,
                    format!(
                        "`{place}.{key}` \"{text}\" is not a duration ({e}); write e.g. \"30s\", \"5m\", \"1h 30m\""
                    ),
                );
                None
            }
        }
    }

    fn size(&mut self, table: &DeTable<'_>, place: &str, key: &str, default: u64) -> Option<u64> {
        let Some(value) = find(table, key) else {
            return Some(default);
        };
        let parsed = match value.get_ref() {
            DeValue::String(text) => text.trim().parse::<bytesize::ByteSize>().ok().map(|s| s.as_u64()),
            DeValue::Integer(int) => int.as_str().replace('_', "").parse::<u64>().ok(),
            _ => None,
        };
        match parsed {
            Some(bytes) if bytes > 0 => Some(bytes),
            _ => {
                let message = format!(
                    "`{place}.{key}` must be a size such as \"5MiB\" or a number of bytes, found {}",
                    &self.text[value.span()]
                );
                self.error(value.span(), message);
                None
            }
        }
    }
}

fn find<'t, 'i>(table: &'t DeTable<'i>, key: &str) -> Option<&'t Value<'i>> {
    table.iter().find(|(k, _)| k.get_ref().as_ref() == key).map(|(_, v)| v)
}

pub fn check_article_path(path: &str) -> Result<(), &'static str> {
    if !path.starts_with('/') {
        return Err("must be a path starting with '/' (the base is added per mirror)");
    }
    if path.starts_with("//") {
        return Err("must not start with '//' (that would name another host)");
    }
    if path.contains('#') {
        return Err("must not contain a fragment ('#'): servers never see it");
    }
    if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters (percent-encode them)");
    }
    Ok(())
}

/// The store path when the config names none: systemd's StateDirectory when
/// running as a unit, else the working directory.
fn default_store_path() -> PathBuf {
    match std::env::var_os("STATE_DIRECTORY") {
        Some(dirs) if !dirs.is_empty() => {
            let dirs = dirs.to_string_lossy().into_owned();
            let first = dirs.split(':').next().unwrap_or(&dirs).to_string();
            PathBuf::from(first).join("mirrorgate.db")
        }
        _ => PathBuf::from("mirrorgate.db"),
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

fn closest<'a>(key: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(key, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = if ca == *cb {
                previous
            } else {
                1 + previous.min(row[j]).min(row[j + 1])
            };
            previous = current;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[server]
listen = "127.0.0.1:8080"

[store]
path = "/tmp/mg.db"
retention = "30d"

[probe]
interval = "5m"
timeout = "10s"
concurrency = 64
per_host_rate = 5
max_body = "5MiB"
user_agent = "mirrorgate/0.1"

[[sites]]
name = "example-news"
primary = "https://www.example.com"
mirrors = ["https://www.example.co.uk", "https://mirror.example.net"]
articles = ["/Detail/2017/01/24/507408/Trump-Russia-Daesh", "/a?id=1"]
content_selector = "article"
prefer_primary = true
"#;

    fn errors(text: &str) -> Vec<String> {
        match parse("test.toml", text) {
            Ok(_) => vec![],
            Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn the_status_token_never_shows_in_debug_output() {
        let text = "[server]\nstatus_token = \"a-very-secret-token-123\"\n[[sites]]\nname = \"n\"\nprimary = \"https://a.example\"\narticles = [\"/a\"]\n";
        let config = parse("t.toml", text).unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("a-very-secret-token-123"), "{shown}");
        assert!(shown.contains("Secret(<redacted>)"));
        assert_eq!(config.server.status_token.unwrap().expose(), "a-very-secret-token-123");
        let both = text.replace("[server]\n", "[server]\nstatus_token_file = \"x\"\n");
        let errors = parse("t.toml", &both).unwrap_err().to_string();
        assert!(errors.contains("not both"), "{errors}");
    }

    #[test]
    fn accepts_the_documented_example() {
        let config = parse("test.toml", GOOD).unwrap();
        assert_eq!(config.probe.interval, Duration::from_secs(300));
        assert_eq!(config.probe.max_body, 5 * 1024 * 1024);
        assert_eq!(config.sites[0].mirrors.len(), 2);
        assert_eq!(config.sites[0].primary.as_str(), "https://www.example.com");
        assert!(config.sites[0].content_selector.is_some());
    }

    #[test]
    fn the_shipped_example_config_is_valid() {
        let text = include_str!("../../config/mirrorgate.toml");
        if let Err(e) = parse("config/mirrorgate.toml", text) {
            panic!("{e}");
        }
    }

    #[test]
    fn unknown_key_names_line_column_and_suggestion() {
        let text = GOOD.replace("interval = \"5m\"", "intervall = \"5m\"");
        assert_eq!(
            errors(&text),
            vec!["test.toml:10:1: unknown key \"intervall\" in [probe] (did you mean \"interval\"?)"]
        );
    }

    #[test]
    fn reports_every_problem_at_once() {
        let text = GOOD
            .replace("timeout = \"10s\"", "timeout = \"10 parsecs\"")
            .replace("\"https://mirror.example.net\"", "\"mirror.example.net\"")
            + "\n[[sites]]\nname = \"example-news\"\nprimary = \"https://www.example.co.uk\"\narticles = []\n";
        let found = errors(&text);
        assert_eq!(found.len(), 5, "{found:#?}");
        assert!(found[0].starts_with("test.toml:11:11: `probe.timeout` \"10 parsecs\" is not a duration"));
        assert!(
            found[1].starts_with("test.toml:20:41: `sites[0].mirrors[1]`: mirror \"mirror.example.net\" has no scheme")
        );
        assert!(found[2].starts_with("test.toml:26:8: duplicate site name \"example-news\""));
        assert!(
            found[3]
                .starts_with("test.toml:27:11: `sites[1].primary`: base \"https://www.example.co.uk\" is listed twice")
        );
        assert!(found[4].starts_with("test.toml:28:12: `sites[1].articles` is empty"));
    }

    #[test]
    fn syntax_errors_are_located() {
        let found = errors("[probe]\ninterval = 5m\n");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("test.toml:2:12:"), "{found:?}");
    }

    #[test]
    fn wrong_types_and_ranges_are_named() {
        let text = GOOD
            .replace("concurrency = 64", "concurrency = 0")
            .replace("prefer_primary = true", "prefer_primary = \"yes\"")
            .replace("max_body = \"5MiB\"", "max_body = \"lots\"");
        let found = errors(&text);
        assert!(
            found
                .iter()
                .any(|e| e.contains("`probe.concurrency` must be an integer from 1"))
        );
        assert!(
            found
                .iter()
                .any(|e| e.contains("`sites[0].prefer_primary` must be true or false"))
        );
        assert!(found.iter().any(|e| e.contains("`probe.max_body` must be a size")));
    }

    #[test]
    fn article_paths_and_selectors_are_checked() {
        let text = GOOD
            .replace(
                "\"/a?id=1\"",
                "\"a/b\", \"/Detail/2017/01/24/507408/Trump-Russia-Daesh\"",
            )
            .replace("content_selector = \"article\"", "content_selector = \"article >\"");
        let found = errors(&text);
        assert!(
            found
                .iter()
                .any(|e| e.contains("\"a/b\" must be a path starting with '/'"))
        );
        assert!(found.iter().any(|e| e.contains("is listed twice")));
        assert!(found.iter().any(|e| e.contains("content_selector")));
    }

    #[test]
    fn no_sites_is_an_error() {
        let found = errors("[server]\nlisten = \"127.0.0.1:1\"\n");
        assert_eq!(
            found,
            vec!["test.toml:1:1: no [[sites]] configured: add at least one site"]
        );
    }
}
