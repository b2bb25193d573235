//! What agents and the daemon say to each other, as JSON over HTTP:
//! `GET /agent/v1/work` answers a [`Work`], `POST /agent/v1/results` takes
//! [`Results`] and answers [`Accepted`].

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::fingerprint::{PageClass, PageFacts};
use crate::verdict::observation::Outcome;

pub const WORK_PATH: &str = "/agent/v1/work";
pub const RESULTS_PATH: &str = "/agent/v1/results";
/// Agents name themselves in this header (`--name`); a name that is not
/// the token's agent is refused, so a token copied to the wrong box shows.
pub const AGENT_NAME_HEADER: &str = "x-mirrorgate-agent";

/// Results one batch may carry.
pub const MAX_RESULTS_PER_BATCH: usize = 10_000;

/// One cycle's work for one agent.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Work {
    pub agent: String,
    pub country: String,
    /// Results must name it: an agent posts only for work it was given.
    pub work_id: u64,
    pub cycle_secs: u64,
    /// What the agent checks its own connectivity against (None: the
    /// daemon's `/healthz`).
    pub control_url: Option<String>,
    /// Hashes are only comparable under the same canonical form.
    pub canonical_form: u32,
    pub probe: ProbeSettings,
    pub sites: Vec<WorkSite>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProbeSettings {
    pub timeout_ms: u64,
    pub max_body: u64,
    pub user_agent: String,
    pub concurrency: usize,
}

/// A site as the agent needs it to fingerprint pages as the daemon does.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WorkSite {
    pub name: String,
    /// Every base, primary first.
    pub bases: Vec<String>,
    pub aliases: Vec<String>,
    pub content_selector: Option<String>,
    pub content_exclude: Vec<String>,
    /// This cycle's sample of the site's articles.
    pub articles: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Results {
    pub work_id: u64,
    /// The agent reached the control this cycle: without it, its failures
    /// say nothing about blocking.
    pub control_ok: bool,
    pub results: Vec<Probed>,
}

/// One probe of one article on one base, from the agent's network.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Probed {
    pub site: String,
    pub base: String,
    pub article: String,
    /// Unix milliseconds.
    pub checked_at: u64,
    pub outcome: Outcome,
    pub http_status: Option<u16>,
    pub latency_ms: u32,
    /// `sha256:…` of the canonical form, when `ok`.
    pub hash: Option<String>,
    pub page: Option<WirePage>,
    /// What the agent's resolver answered for the base's host.
    #[serde(default)]
    pub addresses: Vec<IpAddr>,
    /// For a `connect` outcome: whether a plain TCP connection to the base
    /// succeeded from there (the failure then came after it: a reset in
    /// the TLS handshake or the HTTP exchange, not at TCP).
    #[serde(default)]
    pub tcp_connected: Option<bool>,
}

/// [`PageFacts`] on the wire.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct WirePage {
    pub text_len: u32,
    pub title_words: u32,
    pub flags: u8,
    pub class: Option<PageClass>,
}

impl From<PageFacts> for WirePage {
    fn from(page: PageFacts) -> Self {
        WirePage {
            text_len: page.text_len,
            title_words: page.title_words,
            flags: page.flags,
            class: page.class,
        }
    }
}

impl From<WirePage> for PageFacts {
    fn from(page: WirePage) -> Self {
        PageFacts {
            text_len: page.text_len,
            title_words: page.title_words,
            flags: page.flags,
            class: page.class,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Accepted {
    pub accepted: usize,
    pub rejected: usize,
    /// Why results were rejected (the first few).
    pub errors: Vec<String>,
}
