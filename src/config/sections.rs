//! The daemon's own sections: the root table, `[server]`, `[store]`,
//! `[probe]`, `[verdicts]` and `[log]`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::walker::{Walker, find, line_column};
use super::{
    Config, LogConfig, PostgresConfig, ProbeConfig, Secret, ServerConfig, StoreBackend, StoreConfig, VerdictsConfig,
    default_max_connections, expand_credentials_directory,
};
use crate::fingerprint::BlockFingerprints;
use std::time::Duration;

use toml::de::{DeTable, DeValue};

pub(super) const ROOT_KEYS: &[&str] = &[
    "server", "store", "probe", "schedule", "verdicts", "log", "geoip", "vantage", "alerts", "sites",
];
pub(super) const SERVER_KEYS: &[&str] = &[
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
pub(super) const STORE_KEYS: &[&str] = &[
    "backend",
    "path",
    "url",
    "password_file",
    "instance",
    "retention",
    "raw_retention",
    "busy_timeout",
];
pub(super) const PROBE_KEYS: &[&str] = &[
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
pub(super) const VERDICTS_KEYS: &[&str] = &["blockpage_fingerprints"];
pub(super) const LOG_KEYS: &[&str] = &["level"];

impl Walker<'_> {
    pub(super) fn root(&mut self, root: &DeTable<'_>) -> Option<Config> {
        self.unknown_keys(root, "the top level", ROOT_KEYS);
        let empty = DeTable::new();
        let server = self.section(root, "server").unwrap_or(&empty);
        let store = self.section(root, "store").unwrap_or(&empty);
        let probe = self.section(root, "probe").unwrap_or(&empty);
        let schedule = self.section(root, "schedule").unwrap_or(&empty);
        let verdicts = self.section(root, "verdicts").unwrap_or(&empty);
        let log = self.section(root, "log").unwrap_or(&empty);
        let geoip = self.section(root, "geoip").unwrap_or(&empty);
        let vantage = self.section(root, "vantage").unwrap_or(&empty);
        let server = self.server(server);
        let store = self.store(store);
        let probe = self.probe(probe);
        let schedule = self.schedule(schedule, probe.as_ref().map(|p| p.interval));
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
            schedule: schedule?,
            verdicts: verdicts?,
            log: log?,
            geoip: geoip?,
            vantage: vantage?,
            alerts: alerts?,
            sites: sites?,
        })
    }

    pub(super) fn server(&mut self, table: &DeTable<'_>) -> Option<ServerConfig> {
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
    pub(super) fn status_token(&mut self, table: &DeTable<'_>) -> Option<Option<Secret>> {
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

    pub(super) fn store(&mut self, table: &DeTable<'_>) -> Option<StoreConfig> {
        self.unknown_keys(table, "[store]", STORE_KEYS);
        let path_key = self.string(table, "store", "path");
        let path = match &path_key {
            Some((text, span)) if text.is_empty() => {
                self.error(span.clone(), "`store.path` must not be empty".into());
                None
            }
            Some((text, _)) => Some(PathBuf::from(text)),
            None => Some(default_store_path()),
        };
        let url_key = self.string(table, "store", "url");
        if let (Some((_, url_span)), Some((_, path_span))) = (&url_key, &path_key) {
            let (url_line, url_column) = line_column(self.text, url_span.start);
            let (path_line, path_column) = line_column(self.text, path_span.start);
            self.error(
                url_span.clone(),
                format!(
                    "`store.url` ({url_line}:{url_column}) and `store.path` ({path_line}:{path_column}) are both set: \
                     url selects PostgreSQL and path an SQLite file; keep one"
                ),
            );
        }
        let postgres = match url_key {
            None => Some(None),
            Some((text, span)) => match postgres_url(&text) {
                Ok(url) => Some(Some(url)),
                Err(message) => {
                    self.error(span, format!("`store.url` {message}"));
                    None
                }
            },
        };
        let password_file = match self.string(table, "store", "password_file") {
            None => Some(None),
            Some((file, span)) => {
                let path = self.base_dir.join(expand_credentials_directory(&file));
                match std::fs::read_to_string(&path) {
                    Ok(_) => Some(Some(path)),
                    Err(e) => {
                        let message = format!("`store.password_file` \"{}\" cannot be read: {e}", path.display());
                        self.error(span, message);
                        None
                    }
                }
            }
        };
        let instance = match self.string(table, "store", "instance") {
            None => Some(default_instance_name()),
            Some((name, span)) if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) => {
                self.error(span, "`store.instance` must be 1 to 100 printable characters".into());
                None
            }
            Some((name, _)) => Some(name),
        };
        let retention = self.duration(table, "store", "retention", Duration::from_secs(30 * 86400));
        let raw_retention = self.duration(table, "store", "raw_retention", Duration::from_secs(2 * 86400));
        let busy_timeout = self.duration(table, "store", "busy_timeout", Duration::from_secs(5));
        let has_url = matches!(postgres, Some(Some(_)));
        let backend = match self.string(table, "store", "backend") {
            None if has_url => Some(StoreBackend::Postgres),
            None => Some(StoreBackend::Sqlite),
            Some((name, _)) if name == "postgres" && has_url => Some(StoreBackend::Postgres),
            Some((name, span)) if name == "postgres" => {
                self.error(span, "`store.backend = \"postgres\"` needs `store.url`".into());
                None
            }
            Some((name, span)) if has_url && (name == "sqlite" || name == "none") => {
                self.error(
                    span,
                    format!("`store.backend = \"{name}\"` contradicts `store.url`, which selects PostgreSQL"),
                );
                None
            }
            Some((name, _)) if name == "sqlite" => Some(StoreBackend::Sqlite),
            Some((name, _)) if name == "none" => Some(StoreBackend::None),
            Some((name, span)) => {
                self.error(
                    span,
                    format!("`store.backend` must be \"sqlite\", \"postgres\" or \"none\", found \"{name}\""),
                );
                None
            }
        };
        let password_file = password_file?;
        let postgres = postgres?.map(|url| PostgresConfig {
            url: Secret::new(&url.for_driver),
            shown: url.shown,
            password_in_url: url.password_in_url,
            verify_server: url.verify_server,
        });
        Some(StoreConfig {
            backend: backend?,
            path: path?,
            postgres,
            password_file,
            instance: instance?,
            retention: retention?,
            raw_retention: raw_retention?,
            busy_timeout: busy_timeout?,
        })
    }

    pub(super) fn probe(&mut self, table: &DeTable<'_>) -> Option<ProbeConfig> {
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

    pub(super) fn rate(&mut self, table: &DeTable<'_>) -> Option<f64> {
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

    pub(super) fn verdicts(&mut self, table: &DeTable<'_>) -> Option<VerdictsConfig> {
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

    pub(super) fn log(&mut self, table: &DeTable<'_>) -> Option<LogConfig> {
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
}

pub(super) fn postgres_config(text: &str) -> Result<PostgresConfig, String> {
    postgres_url(text).map(|url| PostgresConfig {
        url: Secret::new(&url.for_driver),
        shown: url.shown,
        password_in_url: url.password_in_url,
        verify_server: url.verify_server,
    })
}

/// Query parameters the driver understands, as libpq spells them.
const POSTGRES_PARAMETERS: &[&str] = &[
    "user",
    "password",
    "dbname",
    "options",
    "application_name",
    "sslmode",
    "sslnegotiation",
    "host",
    "hostaddr",
    "port",
    "connect_timeout",
    "tcp_user_timeout",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_retries",
    "target_session_attrs",
    "channel_binding",
    "load_balance_hosts",
];

/// A checked `[store] url`: what the driver is given, what people see.
struct PostgresUrl {
    /// libpq's sslmode names mapped onto the driver's three: `allow` is
    /// `prefer`, `verify-ca` and `verify-full` are `require` plus
    /// `verify_server`.
    for_driver: String,
    verify_server: bool,
    /// Without the password.
    shown: String,
    password_in_url: bool,
}

/// `postgres://` or `postgresql://` with a host and known parameters.
fn postgres_url(text: &str) -> Result<PostgresUrl, String> {
    let mut url = url::Url::parse(text).map_err(|e| format!("is not a URL ({e})"))?;
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        return Err(format!(
            "must be a postgres:// or postgresql:// URL, found {}://",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("must name a host (postgres://USER@HOST:PORT/DATABASE)".into());
    }
    let mut pairs = Vec::new();
    let mut verify_server = false;
    for (key, value) in url.query_pairs() {
        if !POSTGRES_PARAMETERS.contains(&&*key) {
            return Err(format!(
                "has an unknown parameter `{key}` (known: {})",
                POSTGRES_PARAMETERS.join(", ")
            ));
        }
        let value = match (&*key, &*value) {
            ("sslmode", "disable" | "prefer" | "require") => value.to_string(),
            ("sslmode", "allow") => "prefer".into(),
            ("sslmode", "verify-ca" | "verify-full") => {
                verify_server = true;
                "require".into()
            }
            ("sslmode", other) => {
                return Err(format!(
                    "has sslmode={other}; use disable, allow, prefer, require, verify-ca or verify-full"
                ));
            }
            _ => value.to_string(),
        };
        pairs.push((key.to_string(), value));
    }
    let password_in_url = url.password().is_some() || pairs.iter().any(|(key, _)| key == "password");
    let with_query = |url: &mut url::Url, pairs: &[&(String, String)]| {
        if pairs.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut()
                .clear()
                .extend_pairs(pairs.iter().map(|(key, value)| (key, value)));
        }
    };
    let mut for_driver = url.clone();
    with_query(&mut for_driver, &pairs.iter().collect::<Vec<_>>());
    let _ = url.set_password(None);
    with_query(
        &mut url,
        &pairs.iter().filter(|(key, _)| key != "password").collect::<Vec<_>>(),
    );
    Ok(PostgresUrl {
        for_driver: for_driver.to_string(),
        shown: url.to_string(),
        password_in_url,
        verify_server,
    })
}

/// `hostname-pid`: unique among instances on a network, and readable in
/// `/status`.
fn default_instance_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "mirrorgate".into());
    format!("{host}-{}", std::process::id())
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
