//! What the agents' results come to, as readers' redirects and operators'
//! status read it: one immutable view, swapped whole after each batch.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::country::Country;
use crate::verdict::Verdict;

/// How a base is doing from one country.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CountryState {
    Reachable,
    Blocked,
    /// Failing from the daemon too: not a censor's doing.
    Down,
    /// No fresh results from enough agents.
    Unknown,
}

impl CountryState {
    pub const ALL: [CountryState; 4] = [
        CountryState::Reachable,
        CountryState::Blocked,
        CountryState::Down,
        CountryState::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CountryState::Reachable => "reachable",
            CountryState::Blocked => "blocked",
            CountryState::Down => "down",
            CountryState::Unknown => "unknown",
        }
    }
}

/// How a base is blocked, in OONI web_connectivity's terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize)]
pub enum BlockKind {
    /// The country's resolvers answer addresses the daemon's do not (and
    /// of no network the daemon's answers are in).
    #[serde(rename = "dns")]
    Dns,
    /// Connecting fails there while it works from the daemon.
    #[serde(rename = "tcp_ip")]
    TcpIp,
    /// The TLS handshake is reset or meets a wrong certificate.
    #[serde(rename = "tls")]
    Tls,
    /// The HTTP exchange fails (timeout, reset after connecting).
    #[serde(rename = "http-failure")]
    HttpFailure,
    /// The base answers, with something else than from the daemon.
    #[serde(rename = "http-diff")]
    HttpDiff,
}

/// Where a base stands for readers of one country.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reach {
    #[default]
    NoData,
    Reachable,
    Blocked,
}

/// One country's routing facts for one site.
#[derive(Clone, Debug, Default)]
pub struct SiteRoutes {
    /// Per base.
    pub bases: Vec<Reach>,
    /// Per sampled article (its index in the site's list): the verdict
    /// from that country's agents, per base (None: no fresh result).
    pub articles: HashMap<u32, Box<[Option<Verdict>]>>,
}

/// Per-country state of one base, for `/status`.
#[derive(Clone, Debug, Serialize)]
pub struct CountryStatus {
    pub state: CountryState,
    pub kind: Option<BlockKind>,
    /// Fresh agents there whose results count.
    pub agents: usize,
    pub checked_at: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct AgentStatus {
    pub name: String,
    pub country: Country,
    pub asn: Option<u32>,
    pub last_seen: Option<String>,
    pub online: bool,
    pub results_accepted: u64,
    pub results_rejected: u64,
}

#[derive(Clone, Debug, Default)]
pub struct VantageView {
    /// Countries with agents -> per site (catalog order).
    pub routes: HashMap<Country, Vec<SiteRoutes>>,
    pub agents: Vec<AgentStatus>,
    /// Per site, per base: the state in each country with agents.
    pub countries: Vec<Vec<BTreeMap<Country, CountryStatus>>>,
}

impl VantageView {
    pub fn site_routes(&self, country: Option<Country>, site: usize) -> Option<&SiteRoutes> {
        self.routes.get(&country?)?.get(site)
    }
}

/// `candidates` (best first, all serving the article from the daemon's
/// side) as a reader in the country of `routes` gets them: without bases
/// blocked there or whose agents there saw another article, and with those
/// agents saw working first. Without routes, unchanged.
pub fn order_for_country(
    candidates: impl Iterator<Item = usize>,
    routes: Option<&SiteRoutes>,
    article: Option<usize>,
) -> Vec<usize> {
    let Some(routes) = routes else {
        return candidates.collect();
    };
    let seen = article.and_then(|a| routes.articles.get(&(a as u32)));
    let mut ranked: Vec<(u8, usize)> = candidates
        .filter_map(|base| {
            let verdict = seen.and_then(|v| v.get(base).copied().flatten());
            let reach = routes.bases.get(base).copied().unwrap_or_default();
            match (verdict, reach) {
                (Some(Verdict::Same), _) => Some((0, base)),
                (Some(_), _) | (None, Reach::Blocked) => None,
                (None, Reach::Reachable) => Some((0, base)),
                (None, Reach::NoData) => Some((1, base)),
            }
        })
        .collect();
    // Stable: within a rank, the daemon's own order.
    ranked.sort_by_key(|(rank, _)| *rank);
    ranked.into_iter().map(|(_, base)| base).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes(bases: &[Reach], article: Option<&[Option<Verdict>]>) -> SiteRoutes {
        let mut articles = HashMap::new();
        if let Some(verdicts) = article {
            articles.insert(0, verdicts.to_vec().into_boxed_slice());
        }
        SiteRoutes {
            bases: bases.to_vec(),
            articles,
        }
    }

    #[test]
    fn blocked_bases_drop_out_and_reachable_ones_come_first() {
        let r = routes(&[Reach::Blocked, Reach::NoData, Reach::Reachable, Reach::NoData], None);
        assert_eq!(order_for_country(0..4, Some(&r), None), vec![2, 1, 3]);
        assert_eq!(order_for_country(0..4, None, None), vec![0, 1, 2, 3]);
    }

    #[test]
    fn the_countrys_article_verdict_overrides_the_base_state() {
        let verdicts = [Some(Verdict::Same), Some(Verdict::Diverged), None, None];
        let r = routes(
            &[Reach::Blocked, Reach::Reachable, Reach::NoData, Reach::Blocked],
            Some(&verdicts),
        );
        // Base 0 is blocked in general but its agents got the article; base 1 served another one.
        assert_eq!(order_for_country(0..4, Some(&r), Some(0)), vec![0, 2]);
        // Another article falls back to the base states.
        assert_eq!(order_for_country(0..4, Some(&r), Some(7)), vec![1, 2]);
    }
}
