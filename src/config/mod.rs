//! The TOML configuration, read into a validated [`Config`].
//!
//! The file is walked by hand over toml's spanned tree rather than through
//! `#[derive(Deserialize)]`: serde stops at the first problem, and operators
//! should see every problem at once, each as `FILE:LINE:COL: message` naming
//! the key. A config with any problem never yields a `Config`, so the daemon
//! cannot start on a half-valid one.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use toml::de::DeTable;

mod alerts;
mod discover;
mod schedule;
mod schema;
mod sections;
mod sites;
mod vantage;
mod walker;
pub use alerts::{Severity, SinkConfig, SinkKind};
pub use discover::DiscoverConfig;
pub use schedule::ScheduleConfig;
pub use schema::*;
use sections::{LOG_KEYS, PROBE_KEYS, SERVER_KEYS, STORE_KEYS, VERDICTS_KEYS};
use sites::SITE_KEYS;
pub use sites::check_article_path;
pub use vantage::{AgentConfig, GeoipConfig, VantageConfig};
use walker::Walker;

pub const DEFAULT_CONFIG_PATH: &str = "/etc/mirrorgate/mirrorgate.toml";

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
/// A PostgreSQL store's URL checked as `[store] url` is (for `store copy`,
/// which takes one on the command line).
pub fn postgres_store(url: &str) -> Result<PostgresConfig, String> {
    sections::postgres_config(url)
}

pub fn warnings(config: &Config) -> Vec<String> {
    let mut warnings = Vec::new();
    if config.store.postgres.as_ref().is_some_and(|p| p.password_in_url) {
        warnings.push(
            "store.url holds a password: anyone who can read the config can read it; put it in store.password_file (with systemd, LoadCredential=) instead".to_string(),
        );
    }
    let rate = config.probe.per_host_rate;
    if rate <= 0.0 {
        return warnings;
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
        .for_each(|warning| warnings.push(warning));
    warnings
}

/// Every key the config accepts, as `section.key` (sites' as `sites.key`).
pub fn all_keys() -> Vec<String> {
    let sections: [(&str, &[&str]); 10] = [
        ("server", SERVER_KEYS),
        ("alerts", alerts::ALERT_KEYS),
        ("geoip", vantage::GEOIP_KEYS),
        ("vantage", vantage::VANTAGE_KEYS),
        ("store", STORE_KEYS),
        ("probe", PROBE_KEYS),
        ("schedule", schedule::SCHEDULE_KEYS),
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
    fn schedule_keys_are_checked_where_they_are_written() {
        let config = parse("test.toml", GOOD).unwrap();
        assert_eq!(config.schedule, ScheduleConfig::for_interval(Duration::from_secs(300)));
        assert_eq!(config.schedule.warm_interval, Duration::from_secs(1800));
        let text =
            format!("{GOOD}\n[schedule]\nhot_for = \"3d\"\nwarm_for = \"1d\"\ncold_interval = \"1m\"\nhot_min = 5\n");
        let found = errors(&text);
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(
            found[2].starts_with("test.toml:29:1: unknown key \"hot_min\" in [schedule]"),
            "{found:#?}"
        );
        let text = format!("{GOOD}\n[schedule]\nhot_for = \"3d\"\nwarm_for = \"1d\"\ncold_interval = \"1m\"\n");
        let found = errors(&text);
        assert!(
            found[0]
                .starts_with("test.toml:27:12: `schedule.warm_for` (1day) must be at least `schedule.hot_for` (3days)"),
            "{found:#?}"
        );
        assert!(
            found[1].starts_with(
                "test.toml:28:17: `schedule.cold_interval` (1m) must be at least `schedule.warm_interval` (30m)"
            ),
            "{found:#?}"
        );
        let found = errors(&format!("{GOOD}\n[schedule]\nhot_min_articles = -1\n"));
        assert!(
            found[0].contains("`schedule.hot_min_articles` must be an integer"),
            "{found:#?}"
        );
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
