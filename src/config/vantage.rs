//! `[geoip]`, `[vantage]` and the reader-address keys of `[server]`: where
//! readers are, and the agents that see the bases from there.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use toml::de::{DeTable, DeValue};

use super::walker::{Walker, find, line_column};
use super::{Secret, expand_credentials_directory};
use crate::country::{Country, Database};

pub(super) const GEOIP_KEYS: &[&str] = &["country_db", "asn_db"];
pub(super) const VANTAGE_KEYS: &[&str] = &["control_url", "quorum", "cycle", "sample", "agents"];
pub(super) const AGENT_KEYS: &[&str] = &["name", "country", "asn", "token_file"];

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GeoipConfig {
    /// A GeoIP2/GeoLite2 Country (or City) database: the reader's country.
    pub country_db: Option<PathBuf>,
    /// A GeoLite2 ASN database: tells a poisoned DNS answer from a CDN's
    /// other address.
    pub asn_db: Option<PathBuf>,
}

#[derive(Clone, Debug)]
pub struct VantageConfig {
    /// What every agent checks its own connectivity against (None: the
    /// daemon's `/healthz`, through the URL the agent reaches it by).
    pub control_url: Option<String>,
    /// Agents of a country that must agree (None: a majority of them).
    pub quorum: Option<usize>,
    /// How often agents probe.
    pub cycle: Duration,
    /// Articles per site an agent probes each cycle (they rotate).
    pub sample: usize,
    pub agents: Vec<AgentConfig>,
}

impl Default for VantageConfig {
    fn default() -> Self {
        VantageConfig {
            control_url: None,
            quorum: None,
            cycle: Duration::from_secs(60),
            sample: 20,
            agents: Vec::new(),
        }
    }
}

impl VantageConfig {
    /// Agreeing fresh agents a country's state needs, of `agents` there.
    pub fn quorum_of(&self, agents: usize) -> usize {
        self.quorum.unwrap_or(agents / 2 + 1).min(agents).max(1)
    }
}

#[derive(Clone, Debug)]
pub struct AgentConfig {
    pub name: String,
    pub country: Country,
    pub asn: Option<u32>,
    pub token: Secret,
}

impl Walker<'_> {
    pub(super) fn geoip(&mut self, table: &DeTable<'_>) -> Option<GeoipConfig> {
        self.unknown_keys(table, "[geoip]", GEOIP_KEYS);
        let database = |walker: &mut Self, key: &str| -> Option<Option<PathBuf>> {
            let Some((file, span)) = walker.string(table, "geoip", key) else {
                return Some(None);
            };
            let path = walker.base_dir.join(&file);
            match Database::open(&path) {
                Ok(_) => Some(Some(path)),
                Err(e) => {
                    walker.error(span, format!("`geoip.{key}` {e}"));
                    None
                }
            }
        };
        let country_db = database(self, "country_db");
        let asn_db = database(self, "asn_db");
        Some(GeoipConfig {
            country_db: country_db?,
            asn_db: asn_db?,
        })
    }

    pub(super) fn vantage(&mut self, table: &DeTable<'_>) -> Option<VantageConfig> {
        self.unknown_keys(table, "[vantage]", VANTAGE_KEYS);
        let defaults = VantageConfig::default();
        let control_url = match self.string(table, "vantage", "control_url") {
            None => Some(None),
            Some((text, span)) => match url::Url::parse(&text) {
                Ok(url) if matches!(url.scheme(), "http" | "https") => Some(Some(text)),
                _ => {
                    self.error(
                        span,
                        format!("`vantage.control_url` must be an http or https URL, found \"{text}\""),
                    );
                    None
                }
            },
        };
        let quorum = self.integer(table, "vantage", "quorum", 1, 1000);
        let cycle = self.duration(table, "vantage", "cycle", defaults.cycle);
        let sample = self.integer(table, "vantage", "sample", 1, 10_000);
        let agents = self.agents(table);
        Some(VantageConfig {
            control_url: control_url?,
            quorum: quorum?,
            cycle: cycle?,
            sample: sample?.unwrap_or(defaults.sample),
            agents: agents?,
        })
    }

    fn agents(&mut self, table: &DeTable<'_>) -> Option<Vec<AgentConfig>> {
        let Some(value) = find(table, "agents") else {
            return Some(Vec::new());
        };
        let DeValue::Array(entries) = value.get_ref() else {
            let message = format!(
                "`vantage.agents` must be an array of tables ([[vantage.agents]]), found {}",
                value.get_ref().type_str()
            );
            self.error(value.span(), message);
            return None;
        };
        let mut agents = Some(Vec::new());
        let mut names: HashMap<String, usize> = HashMap::new();
        let mut tokens: Vec<Secret> = Vec::new();
        for (index, entry) in entries.iter().enumerate() {
            let place = format!("vantage.agents[{index}]");
            let DeValue::Table(agent) = entry.get_ref() else {
                self.error(entry.span(), format!("`{place}` must be a table"));
                agents = None;
                continue;
            };
            self.unknown_keys(agent, &format!("[[vantage.agents]] #{}", index + 1), AGENT_KEYS);
            let name = match self.string(agent, &place, "name") {
                None => {
                    self.error(entry.span(), format!("`{place}.name` is missing"));
                    None
                }
                Some((name, span)) => {
                    let valid = !name.is_empty()
                        && name.len() <= 64
                        && name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
                    if !valid {
                        self.error(
                            span,
                            format!("`{place}.name` \"{name}\" must be 1 to 64 letters, digits, '-', '_' or '.'"),
                        );
                        None
                    } else if let Some(first) = names.get(&name) {
                        let (line, _) = line_column(self.text, *first);
                        self.error(
                            span,
                            format!("duplicate agent name \"{name}\" in `{place}.name` (first used on line {line})"),
                        );
                        None
                    } else {
                        names.insert(name.clone(), span.start);
                        Some(name)
                    }
                }
            };
            let country = match self.string(agent, &place, "country") {
                None => {
                    self.error(
                        entry.span(),
                        format!("`{place}.country` is missing: the ISO 3166 code of where the agent runs"),
                    );
                    None
                }
                Some((text, span)) => {
                    match Country::parse(&text) {
                        Some(country) => Some(country),
                        None => {
                            self.error(
                            span,
                            format!("`{place}.country` must be a two-letter ISO 3166 code such as \"IR\", found \"{text}\""),
                        );
                            None
                        }
                    }
                }
            };
            let asn = self.integer(agent, &place, "asn", 1, i64::from(u32::MAX));
            let token = match self.string(agent, &place, "token_file") {
                None => {
                    self.error(
                        entry.span(),
                        format!("`{place}.token_file` is missing: the file holding the agent's bearer token"),
                    );
                    None
                }
                Some((file, span)) => {
                    let path = self.base_dir.join(expand_credentials_directory(&file));
                    match std::fs::read_to_string(&path) {
                        Err(e) => {
                            self.error(
                                span,
                                format!("`{place}.token_file` \"{}\" cannot be read: {e}", path.display()),
                            );
                            None
                        }
                        Ok(text) => {
                            let token = text.lines().next().unwrap_or("").trim().to_string();
                            if token.len() < 16 || !token.bytes().all(|b| b.is_ascii_graphic()) {
                                self.error(
                                    span,
                                    format!(
                                        "the token in `{place}.token_file` \"{}\" must be at least 16 printable characters without spaces",
                                        path.display()
                                    ),
                                );
                                None
                            } else if tokens.iter().any(|t| t.expose() == token) {
                                self.error(
                                    span,
                                    format!("`{place}.token_file` holds the same token as another agent: each agent needs its own"),
                                );
                                None
                            } else {
                                let token = Secret::new(&token);
                                tokens.push(token.clone());
                                Some(token)
                            }
                        }
                    }
                }
            };
            match (name, country, asn, token) {
                (Some(name), Some(country), Some(asn), Some(token)) => {
                    if let Some(list) = agents.as_mut() {
                        list.push(AgentConfig {
                            name,
                            country,
                            asn: asn.map(|n| n as u32),
                            token,
                        });
                    }
                }
                _ => agents = None,
            }
        }
        agents
    }

    /// `server.trusted_proxies`: CIDRs (or single addresses) whose
    /// `X-Forwarded-For` / `Forwarded` is believed.
    pub(super) fn trusted_proxies(&mut self, table: &DeTable<'_>) -> Option<Vec<ipnet::IpNet>> {
        let Some(value) = find(table, "trusted_proxies") else {
            return Some(Vec::new());
        };
        let DeValue::Array(items) = value.get_ref() else {
            let message = format!(
                "`server.trusted_proxies` must be an array of CIDRs such as [\"10.0.0.0/8\"], found {}",
                value.get_ref().type_str()
            );
            self.error(value.span(), message);
            return None;
        };
        let mut nets = Some(Vec::new());
        for (i, item) in items.iter().enumerate() {
            let parsed = match item.get_ref() {
                DeValue::String(text) => text
                    .trim()
                    .parse::<ipnet::IpNet>()
                    .or_else(|_| text.trim().parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .ok(),
                _ => None,
            };
            match parsed {
                Some(net) => {
                    if let Some(list) = nets.as_mut() {
                        list.push(net.trunc());
                    }
                }
                None => {
                    let message = format!(
                        "`server.trusted_proxies[{i}]` must be an address or CIDR such as \"10.0.0.0/8\", found {}",
                        &self.text[item.span()]
                    );
                    self.error(item.span(), message);
                    nets = None;
                }
            }
        }
        nets
    }
}
