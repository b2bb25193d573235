//! SIGHUP: re-read the config, swap in what can change while running, and
//! name every key that changed and whether it took effect or needs a
//! restart. No changed key is ever silently ignored: [`changes`] lists
//! every key of the config, and its test fails when a new key is not in it.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::cmd::notify;
use crate::config::{self, Config};
use crate::http::metrics::Counters;
use crate::http::server::ServerSettings;
use crate::state::engine::{EngineEvent, Evidence};
use crate::state::schedule::Scheduler;
use crate::state::snapshot::Catalog;
use crate::store::StoreWriter;

/// Whether a changed key took effect on reload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    Applied,
    RestartNeeded,
}

/// Every key whose value differs between `old` and `new`, with its effect.
/// `log_level_reloads` says whether the running logger can change level.
/// Sites' keys are named per site (`sites[news].articles`), added and
/// removed sites as `sites[name]`; all of them apply.
pub fn changes(old: &Config, new: &Config, log_level_reloads: bool) -> Vec<(String, Effect)> {
    use Effect::{Applied, RestartNeeded};
    let (os, ns) = (&old.server, &new.server);
    let (ost, nst) = (&old.store, &new.store);
    let (op, np) = (&old.probe, &new.probe);
    let (osc, nsc) = (&old.schedule, &new.schedule);
    let log_effect = if log_level_reloads { Applied } else { RestartNeeded };
    let (ov, nv) = (&old.vantage, &new.vantage);
    let agents = |v: &crate::config::VantageConfig| {
        v.agents
            .iter()
            .map(|a| (a.name.clone(), a.country, a.asn, a.token.clone()))
            .collect::<Vec<_>>()
    };
    // The agents' side exists with or without agents, so every change applies.
    let vantage = Applied;
    let keys: [(&'static str, bool, Effect); 47] = [
        // A changed sink starts afresh; the others keep their queues.
        (
            "alerts",
            format!("{:?}", old.alerts) != format!("{:?}", new.alerts),
            Applied,
        ),
        ("server.listen", os.listen != ns.listen, RestartNeeded),
        ("server.workers", os.workers != ns.workers, RestartNeeded),
        ("server.shutdown_grace", os.shutdown_grace != ns.shutdown_grace, Applied),
        // Also `status_token_file`: the token it holds is what is compared.
        ("server.status_token", os.status_token != ns.status_token, Applied),
        (
            "server.request_header_timeout",
            os.request_header_timeout != ns.request_header_timeout,
            Applied,
        ),
        (
            "server.max_connections",
            os.max_connections != ns.max_connections,
            Applied,
        ),
        ("server.error_page_dir", os.error_page_dir != ns.error_page_dir, Applied),
        (
            "server.trusted_proxies",
            os.trusted_proxies != ns.trusted_proxies,
            Applied,
        ),
        ("server.reader_probe", os.reader_probe != ns.reader_probe, Applied),
        // The databases are reopened on every reload, changed or not.
        (
            "geoip.country_db",
            old.geoip.country_db != new.geoip.country_db,
            Applied,
        ),
        ("geoip.asn_db", old.geoip.asn_db != new.geoip.asn_db, Applied),
        // The agents' board is rebuilt, keeping what it knew by name.
        ("vantage.control_url", ov.control_url != nv.control_url, vantage),
        ("vantage.quorum", ov.quorum != nv.quorum, vantage),
        ("vantage.cycle", ov.cycle != nv.cycle, vantage),
        ("vantage.sample", ov.sample != nv.sample, vantage),
        ("vantage.agents", agents(ov) != agents(nv), vantage),
        ("store.backend", ost.backend != nst.backend, RestartNeeded),
        ("store.path", ost.path != nst.path, RestartNeeded),
        (
            "store.url",
            ost.postgres.as_ref().map(|p| &p.url) != nst.postgres.as_ref().map(|p| &p.url),
            RestartNeeded,
        ),
        // Its contents are read at every connect; which file, at start.
        (
            "store.password_file",
            ost.password_file != nst.password_file,
            RestartNeeded,
        ),
        ("store.instance", ost.instance != nst.instance, RestartNeeded),
        ("store.retention", ost.retention != nst.retention, Applied),
        ("store.raw_retention", ost.raw_retention != nst.raw_retention, Applied),
        ("store.busy_timeout", ost.busy_timeout != nst.busy_timeout, Applied),
        ("probe.interval", op.interval != np.interval, Applied),
        ("probe.timeout", op.timeout != np.timeout, Applied),
        ("probe.concurrency", op.concurrency != np.concurrency, Applied),
        ("probe.per_host_rate", op.per_host_rate != np.per_host_rate, Applied),
        ("probe.max_body", op.max_body != np.max_body, Applied),
        ("probe.user_agent", op.user_agent != np.user_agent, Applied),
        ("probe.down_after", op.down_after != np.down_after, Applied),
        ("probe.ca_file", op.ca_pem != np.ca_pem, Applied),
        ("probe.threads", op.threads != np.threads, RestartNeeded),
        ("probe.max_age", op.max_age != np.max_age, Applied),
        // Tiers are part of the catalog every reload builds anew.
        ("schedule.hot_for", osc.hot_for != nsc.hot_for, Applied),
        ("schedule.warm_for", osc.warm_for != nsc.warm_for, Applied),
        (
            "schedule.warm_interval",
            osc.warm_interval != nsc.warm_interval,
            Applied,
        ),
        (
            "schedule.cold_interval",
            osc.cold_interval != nsc.cold_interval,
            Applied,
        ),
        (
            "schedule.hot_min_articles",
            osc.hot_min_articles != nsc.hot_min_articles,
            Applied,
        ),
        (
            "schedule.canary_articles",
            osc.canary_articles != nsc.canary_articles,
            Applied,
        ),
        (
            "schedule.max_verdict_age",
            osc.max_verdict_age != nsc.max_verdict_age,
            Applied,
        ),
        ("log.level", old.log.level != new.log.level, log_effect),
        (
            "verdicts.blockpage_fingerprints",
            old.verdicts.blockpage_fingerprints_path != new.verdicts.blockpage_fingerprints_path
                || old.verdicts.blockpage_fingerprints.digest() != new.verdicts.blockpage_fingerprints.digest(),
            Applied,
        ),
        // Keys whose change shows only through another's value are listed
        // for the coverage test; they never fire on their own.
        ("server.status_token_file", false, Applied),
        ("verdicts", false, Applied),
        ("log", false, Applied),
    ];
    let mut changed: Vec<(String, Effect)> = keys
        .into_iter()
        .filter(|(_, changed, _)| *changed)
        .map(|(key, _, effect)| (key.to_string(), effect))
        .collect();
    changed.extend(
        site_changes(&old.sites, &new.sites)
            .into_iter()
            .map(|key| (key, Applied)),
    );
    changed
}

/// The sites' changed keys, by site name.
fn site_changes(old: &[crate::config::SiteConfig], new: &[crate::config::SiteConfig]) -> Vec<String> {
    let mut keys = Vec::new();
    for site in new {
        let Some(before) = old.iter().find(|o| o.name == site.name) else {
            keys.push(format!("sites[{}]", site.name));
            continue;
        };
        let debug = |v: &dyn std::fmt::Debug| format!("{v:?}");
        let fields: [(&str, bool); 10] = [
            ("alternate_phrases", before.alternate_phrases != site.alternate_phrases),
            ("probe_asset", before.probe_asset != site.probe_asset),
            ("discover", before.discover != site.discover),
            ("primary", before.primary != site.primary),
            ("mirrors", before.mirrors != site.mirrors),
            ("aliases", before.aliases != site.aliases),
            ("articles", before.articles != site.articles),
            (
                "content_selector",
                debug(&before.content_selector) != debug(&site.content_selector),
            ),
            (
                "content_exclude",
                debug(&before.content_exclude) != debug(&site.content_exclude),
            ),
            ("prefer_primary", before.prefer_primary != site.prefer_primary),
        ];
        keys.extend(
            fields
                .iter()
                .filter(|(_, changed)| *changed)
                .map(|(field, _)| format!("sites[{}].{field}", site.name)),
        );
    }
    for site in old {
        if !new.iter().any(|n| n.name == site.name) {
            keys.push(format!("sites[{}]", site.name));
        }
    }
    keys
}

/// Sets the running logger's filter (`log.level` syntax).
pub type LevelSetter = Arc<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// How the config is re-read on SIGHUP.
#[derive(Clone, Default)]
pub struct Reload {
    /// The file to re-read; None turns reloading off.
    pub path: Option<PathBuf>,
    /// A listen address given on the command line, which wins over the file's.
    pub listen_override: Option<std::net::SocketAddr>,
    /// Changes the running logger's level (`log.level`), when it can.
    pub set_log_level: Option<LevelSetter>,
}

impl std::fmt::Debug for Reload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reload")
            .field("path", &self.path)
            .field("listen_override", &self.listen_override)
            .field("set_log_level", &self.set_log_level.is_some())
            .finish()
    }
}

/// What a reload reaches into.
pub struct Reloader {
    pub reload: Reload,
    pub running: Config,
    pub events: mpsc::Sender<EngineEvent>,
    pub schedulers: Arc<ArcSwap<Scheduler>>,
    pub evidence: Evidence,
    pub wake: Arc<Notify>,
    pub counters: Arc<Counters>,
    pub settings: Arc<ArcSwap<ServerSettings>>,
    pub grace_ms: Arc<AtomicU64>,
    pub writer: StoreWriter,
    pub geo: crate::vantage::geoip::Geo,
    /// The alert tasks, which take the reloaded `[[alerts]]`.
    pub alerts: crate::alert::Alerts,
    /// The agents' side, rebuilt for the reloaded `[vantage]` and sites.
    pub vantage: crate::vantage::Vantage,
    /// Articles discovery found, merged into every catalog built here.
    pub discovered: crate::discover::task::Discovered,
    /// The sites as configured, for the discovery loop to follow.
    pub sites: Arc<ArcSwap<Vec<crate::config::SiteConfig>>>,
    /// Discovery found other articles: build the catalog again.
    pub rediscovered: mpsc::Receiver<()>,
    /// Publishes the reloaded config's hash to the other instances.
    pub membership: Arc<crate::cmd::cluster::Membership>,
}

impl Reloader {
    pub async fn run(mut self, stop: CancellationToken) {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(hangups) => hangups,
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGHUP; config reload is off");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = hangups.recv() => self.reload().await,
                Some(()) = self.rediscovered.recv() => self.apply_discovered().await,
            }
        }
    }

    /// The running config with what discovery found.
    fn catalog_for(&self, config: &Config) -> Catalog {
        let discovered = self.discovered.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut merged = config.clone();
        merged.sites = crate::discover::task::with_discovered(&config.sites, &discovered);
        let mut catalog = Catalog::new(&merged);
        catalog.inherit_first_seen(self.schedulers.load().catalog(), &merged);
        catalog
    }

    /// Discovery changed a site's articles: the same config, a new catalog.
    async fn apply_discovered(&mut self) {
        let catalog = Arc::new(self.catalog_for(&self.running));
        let scheduler = match Scheduler::new(catalog.clone(), &self.running.probe, self.evidence.clone()) {
            Ok(scheduler) => scheduler,
            Err(error) => {
                tracing::error!(%error, "discovered articles not applied");
                return;
            }
        };
        let _ = self
            .events
            .send(EngineEvent::Reconfigure {
                catalog,
                down_after: self.running.probe.down_after,
                retention: self.running.store.retention,
            })
            .await;
        self.schedulers.store(Arc::new(scheduler));
        // New articles are probed now, not at the next interval.
        self.wake.notify_one();
    }

    async fn reload(&mut self) {
        let Some(path) = self.reload.path.clone() else { return };
        notify::reloading();
        tracing::info!(path = %path.display(), "SIGHUP: reloading config");
        let loaded = config::load(&path).map(|mut config| {
            if let Some(listen) = self.reload.listen_override {
                config.server.listen = listen;
            }
            config
        });
        let config = match loaded {
            Ok(config) => config,
            Err(errors) => {
                for error in &errors.0 {
                    tracing::error!(%error, "config reload rejected; still running on the previous config");
                }
                self.failed(errors.to_string());
                return;
            }
        };
        let scheduler = match Scheduler::new(
            Arc::new(self.catalog_for(&config)),
            &config.probe,
            self.evidence.clone(),
        ) {
            Ok(scheduler) => scheduler,
            Err(error) => {
                tracing::error!(%error, "config reload rejected; still running on the previous config");
                self.failed(error.to_string());
                return;
            }
        };
        // RUST_LOG, when set, wins over log.level until it is unset.
        let rust_log_set = std::env::var_os("RUST_LOG").is_some_and(|v| !v.is_empty());
        let log_level_reloads = self.reload.set_log_level.is_some() && !rust_log_set;
        for (key, effect) in changes(&self.running, &config, log_level_reloads) {
            let key = key.as_str();
            match effect {
                Effect::Applied => tracing::info!(key, "config key changed; applied"),
                Effect::RestartNeeded => tracing::warn!(
                    key,
                    "config key changed; takes effect only after a restart (still running on the old value)"
                ),
            }
        }
        if log_level_reloads
            && self.running.log.level != config.log.level
            && let Some(set) = &self.reload.set_log_level
            && let Err(error) = set(config.log.level.as_deref().unwrap_or("info"))
        {
            tracing::warn!(%error, "log.level could not be applied");
        }
        let catalog = scheduler.catalog().clone();
        let _ = self
            .events
            .send(EngineEvent::Reconfigure {
                catalog: catalog.clone(),
                down_after: config.probe.down_after,
                retention: config.store.retention,
            })
            .await;
        self.schedulers.store(Arc::new(scheduler));
        self.settings
            .store(Arc::new(ServerSettings::from_config(&config.server)));
        if let Err(error) = self.geo.reopen(&config.geoip) {
            tracing::error!(%error, "GeoIP databases not reopened; the ones in use stay");
        }
        self.grace_ms
            .store(config.server.shutdown_grace.as_millis() as u64, Ordering::Relaxed);
        if format!("{:?}", self.running.alerts) != format!("{:?}", config.alerts) {
            self.alerts.reconfigure(config.alerts.clone()).await;
        }
        self.vantage.reconfigure(&config, self.geo.clone());
        self.writer
            .configure(
                config.store.retention,
                config.store.raw_retention,
                config.store.busy_timeout,
            )
            .await;
        self.wake.notify_one();
        self.counters.reload_succeeded();
        let sites = catalog.sites.len();
        let articles: usize = catalog.sites.iter().map(|s| s.articles.len()).sum();
        tracing::info!(sites, articles, "config reloaded");
        // What restarts need stays as it runs, so a later reload still warns.
        let mut config = config;
        config.server.listen = self.running.server.listen;
        config.server.workers = self.running.server.workers;
        config.store.backend = self.running.store.backend;
        config.store.path = self.running.store.path.clone();
        config.store.postgres = self.running.store.postgres.clone();
        config.store.password_file = self.running.store.password_file.clone();
        config.store.instance = self.running.store.instance.clone();
        config.probe.threads = self.running.probe.threads;
        if !log_level_reloads {
            config.log.level = self.running.log.level.clone();
        }
        self.sites.store(Arc::new(config.sites.clone()));
        self.membership.reconfigured(&config);
        self.running = config;
        notify::ready();
    }

    fn failed(&self, reason: String) {
        self.counters.reload_failed(reason);
        notify::status("config reload failed; running on the previous config");
        notify::ready();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[server]
listen = "127.0.0.1:8080"
[[sites]]
name = "news"
primary = "https://www.example.com"
articles = ["/a"]
"#;

    /// One changed value per key of the config, in the section it belongs to.
    const CHANGED: &[(&str, &str, &str)] = &[
        ("server", "listen", "\"127.0.0.1:9090\""),
        ("server", "workers", "3"),
        ("server", "shutdown_grace", "\"3s\""),
        ("server", "status_token", "\"0123456789abcdef0123\""),
        ("server", "request_header_timeout", "\"2s\""),
        ("server", "max_connections", "77"),
        ("server", "error_page_dir", "\".\""),
        ("server", "trusted_proxies", "[\"10.0.0.0/8\"]"),
        ("server", "reader_probe", "true"),
        ("geoip", "country_db", "\"tests/geoip/GeoLite2-Country-Test.mmdb\""),
        ("geoip", "asn_db", "\"tests/geoip/GeoLite2-ASN-Test.mmdb\""),
        ("vantage", "control_url", "\"http://127.0.0.1:1/\""),
        ("vantage", "quorum", "2"),
        ("vantage", "cycle", "\"5m\""),
        ("vantage", "sample", "5"),
        ("store", "backend", "\"none\""),
        ("store", "path", "\"other.db\""),
        ("store", "url", "\"postgres://mirrorgate@127.0.0.1:5432/other\""),
        ("store", "password_file", "\"Cargo.toml\""),
        ("store", "instance", "\"other\""),
        ("store", "retention", "\"7d\""),
        ("store", "raw_retention", "\"1d\""),
        ("store", "busy_timeout", "\"1s\""),
        ("probe", "interval", "\"10m\""),
        ("probe", "timeout", "\"3s\""),
        ("probe", "concurrency", "7"),
        ("probe", "per_host_rate", "2.5"),
        ("probe", "max_body", "\"1MiB\""),
        ("probe", "user_agent", "\"other/1\""),
        ("probe", "down_after", "5"),
        ("probe", "threads", "2"),
        ("probe", "max_age", "\"1h\""),
        ("schedule", "hot_for", "\"1d\""),
        ("schedule", "warm_for", "\"10d\""),
        ("schedule", "warm_interval", "\"1h\""),
        ("schedule", "cold_interval", "\"2d\""),
        ("schedule", "hot_min_articles", "10"),
        ("schedule", "canary_articles", "5"),
        ("schedule", "max_verdict_age", "\"3d\""),
        ("log", "level", "\"debug\""),
    ];

    /// One change per site key: (key, text in BASE, its replacement).
    const SITE_CHANGED: &[(&str, &str, &str)] = &[
        ("name", "name = \"news\"", "name = \"other\""),
        (
            "primary",
            "primary = \"https://www.example.com\"",
            "primary = \"https://www.example.net\"",
        ),
        ("articles", "articles = [\"/a\"]", "articles = [\"/b\"]"),
        (
            "mirrors",
            "articles = [\"/a\"]",
            "articles = [\"/a\"]\nmirrors = [\"https://m.example.org\"]",
        ),
        (
            "content_selector",
            "articles = [\"/a\"]",
            "articles = [\"/a\"]\ncontent_selector = \"article\"",
        ),
        (
            "content_exclude",
            "articles = [\"/a\"]",
            "articles = [\"/a\"]\ncontent_exclude = [\".ad\"]",
        ),
        (
            "prefer_primary",
            "articles = [\"/a\"]",
            "articles = [\"/a\"]\nprefer_primary = false",
        ),
        (
            "probe_asset",
            "articles = [\"/a\"]",
            "articles = [\"/a\"]\nprobe_asset = \"/logo.png\"",
        ),
        (
            "alternate_phrases",
            "articles = [\"/a\"]",
            "articles = [\"/a\"]\nalternate_phrases = [\"auch erreichbar unter\"]",
        ),
        (
            "discover",
            "articles = [\"/a\"]",
            "articles = [\"/a\"]\n[sites.discover]\nsitemaps = [\"auto\"]",
        ),
    ];

    #[test]
    fn every_changed_site_key_is_named_by_site() {
        let base = config::parse("test.toml", BASE).unwrap();
        for (field, from, to) in SITE_CHANGED {
            let edited = config::parse("test.toml", &BASE.replace(from, to)).unwrap();
            let names: Vec<String> = changes(&base, &edited, true).into_iter().map(|(k, _)| k).collect();
            // A renamed site is one removed and one added.
            let expected = if *field == "name" {
                vec!["sites[other]".to_string(), "sites[news]".to_string()]
            } else {
                vec![format!("sites[news].{field}")]
            };
            assert_eq!(names, expected, "{field}");
        }
    }

    fn with(section: &str, key: &str, value: &str) -> Config {
        let text = if section == "server" {
            let base = BASE.replace("listen = \"127.0.0.1:8080\"\n", "");
            let listen = if key == "listen" {
                String::new()
            } else {
                "listen = \"127.0.0.1:8080\"\n".into()
            };
            base.replace("[server]\n", &format!("[server]\n{listen}{key} = {value}\n"))
        } else {
            format!("{BASE}\n[{section}]\n{key} = {value}\n")
        };
        config::parse("test.toml", &text).unwrap_or_else(|e| panic!("{section}.{key}: {e}"))
    }

    #[test]
    fn every_changed_key_is_named_with_its_effect() {
        let base = config::parse("test.toml", BASE).unwrap();
        for (section, key, value) in CHANGED {
            let name = format!("{section}.{key}");
            let found = changes(&base, &with(section, key, value), true);
            assert!(
                found.iter().any(|(k, _)| *k == name),
                "{name} changed but the reload would not say so: {found:?}"
            );
        }
        assert_eq!(
            changes(&base, &with("server", "listen", "\"127.0.0.1:9090\""), true),
            [("server.listen".to_string(), Effect::RestartNeeded)]
        );
        assert_eq!(
            changes(&base, &with("store", "busy_timeout", "\"1s\""), true),
            [("store.busy_timeout".to_string(), Effect::Applied)]
        );
        // Sites' keys by site.
        let edited = config::parse(
            "test.toml",
            &BASE.replace(
                "articles = [\"/a\"]",
                "articles = [\"/a\", \"/b\"]\ncontent_selector = \"article\"",
            ),
        )
        .unwrap();
        let names: Vec<String> = changes(&base, &edited, true).into_iter().map(|(k, _)| k).collect();
        assert_eq!(names, ["sites[news].articles", "sites[news].content_selector"]);
    }

    #[test]
    fn every_key_the_config_accepts_has_a_reload_decision() {
        let base = config::parse("test.toml", BASE).unwrap();
        let listed: Vec<String> = changes(&base, &base, true).into_iter().map(|(k, _)| k).collect();
        assert!(listed.is_empty(), "nothing changed, yet {listed:?}");
        for key in config::all_keys() {
            let known = CHANGED.iter().any(|(s, k, _)| format!("{s}.{k}") == key)
                || [
                    "server.status_token_file",
                    "probe.ca_file",
                    "verdicts.blockpage_fingerprints",
                    "vantage.agents",
                ]
                .contains(&key.as_str())
                || key.starts_with("alerts.")
                || key
                    .strip_prefix("sites.")
                    .is_some_and(|field| SITE_CHANGED.iter().any(|(f, _, _)| *f == field));
            assert!(
                known,
                "{key}: add it to `changes` (applied or restart) and to this test"
            );
        }
    }
}
