//! `GET /mirrors.json`: the live mirror list in the Bypass Censorship
//! `bypass-mirrors` format, for the tools readers already use. Only
//! mirrors that are up and serving the reference now are listed (for a
//! country, also not blocked there by its agents); it is public, as those
//! tools fetch it without credentials.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Serialize;

use crate::clock::{UnixMillis, rfc3339};
use crate::country::Country;
use crate::state::snapshot::{BaseState, Snapshot};
use crate::vantage::view::{Reach, VantageView};

#[derive(Serialize)]
pub struct ListV2 {
    pub version: &'static str,
    pub sites: Vec<SiteV2>,
}

#[derive(Serialize)]
pub struct SiteV2 {
    pub main_domain: String,
    pub available_alternatives: Vec<Alternative>,
}

#[derive(Serialize)]
pub struct Alternative {
    pub proto: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub url: String,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Serialize)]
pub struct ListV1 {
    pub version: &'static str,
    pub sites: Vec<SiteV1>,
}

#[derive(Serialize)]
pub struct SiteV1 {
    pub main_domain: String,
    pub available_mirrors: Vec<String>,
}

/// When each mirror was first listed, for `created_at` (kept in the
/// store, so a restart does not make every mirror new).
#[derive(Default)]
pub struct ListedSince(Mutex<HashMap<String, UnixMillis>>);

impl crate::state::kept::Keeps for ListedSince {
    fn kind(&self) -> &'static str {
        "mirror_list.listed"
    }

    fn export(&self) -> Vec<(String, String)> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.iter().map(|(url, at)| (url.clone(), at.to_string())).collect()
    }

    fn restore(&self, entries: &[(String, String)]) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for (url, at) in entries {
            if let Ok(at) = at.parse() {
                map.insert(url.clone(), at);
            }
        }
    }
}

impl ListedSince {
    fn first(&self, url: &str, now: UnixMillis) -> UnixMillis {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry(url.to_string()).or_insert(now)
    }
}

/// The mirrors of each site fit to list now, as (site, base index) pairs
/// in config order.
fn live(snapshot: &Snapshot, view: Option<&VantageView>, country: Option<Country>) -> Vec<(usize, Vec<usize>)> {
    snapshot
        .catalog
        .sites
        .iter()
        .enumerate()
        .map(|(site, meta)| {
            let routes = view.and_then(|v| v.site_routes(country, site));
            let bases = (1..meta.bases.len())
                .filter(|&b| {
                    snapshot
                        .sites
                        .get(site)
                        .and_then(|s| s.bases.get(b))
                        .is_some_and(|base| base.state != BaseState::Down && base.healthy)
                        && routes.is_none_or(|r| r.bases.get(b) != Some(&Reach::Blocked))
                })
                .collect();
            (site, bases)
        })
        .collect()
}

pub fn v2(
    snapshot: &Snapshot,
    view: Option<&VantageView>,
    country: Option<Country>,
    listed: &ListedSince,
    now: UnixMillis,
) -> ListV2 {
    let updated = snapshot.round.last_finished_at.unwrap_or(now);
    ListV2 {
        version: "2.0",
        sites: live(snapshot, view, country)
            .into_iter()
            .map(|(site, bases)| {
                let meta = &snapshot.catalog.sites[site];
                SiteV2 {
                    main_domain: meta.bases[0].authority().to_string(),
                    available_alternatives: bases
                        .into_iter()
                        .map(|b| {
                            let url = meta.base_names[b].to_string();
                            Alternative {
                                proto: meta.bases[b].scheme().to_string(),
                                kind: "mirror",
                                created_at: rfc3339(listed.first(&url, now)),
                                updated_at: rfc3339(updated),
                                url,
                            }
                        })
                        .collect(),
                }
            })
            .collect(),
    }
}

pub fn v1(snapshot: &Snapshot, view: Option<&VantageView>, country: Option<Country>) -> ListV1 {
    ListV1 {
        version: "1.0",
        sites: live(snapshot, view, country)
            .into_iter()
            .map(|(site, bases)| {
                let meta = &snapshot.catalog.sites[site];
                SiteV1 {
                    main_domain: meta.bases[0].authority().to_string(),
                    available_mirrors: bases.into_iter().map(|b| meta.base_names[b].to_string()).collect(),
                }
            })
            .collect(),
    }
}
