//! Evidence: why a base's verdict is `stale` or `diverged`, shown as the
//! first differing passages of its visible text against the reference's.
//!
//! Probes that normalize a page hand over its visible text (a line per
//! block, at most 64 KiB). The engine keeps recent texts in a bounded
//! cache, and when a base's verdict is stale or diverged and both its text
//! and the reference's are at hand, it keeps a short unified diff of them
//! (a few KiB) with the facts behind the verdict. Both stores have a byte
//! budget and drop their oldest entries past it, so a seized mirror with a
//! million block pages costs a bounded amount of memory. Evidence,
//! proposals and leaks are kept in the store ([`Kept`]); the texts are
//! not (they are large, and the next probes bring them again).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::clock::{UnixMillis, rfc3339};
use crate::fingerprint::leaks::Leaks;
use crate::fingerprint::{Hash, PageFacts};
use crate::verdict::{Reason, Reference, Verdict};

/// The longest diff kept for one base and article.
pub const MAX_DIFF_BYTES: usize = 4 * 1024;
/// What the texts waiting to be diffed may take together.
const TEXT_BUDGET: usize = 64 * 1024 * 1024;
/// What all evidence may take together.
const EVIDENCE_BUDGET: usize = 32 * 1024 * 1024;

type Key = (Arc<str>, Arc<str>, Arc<str>);

/// One base's evidence for one article.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Evidence {
    pub verdict: Verdict,
    pub diverged_reason: Option<Reason>,
    /// The rule that recognised the page (a block page fingerprint, a
    /// parking phrase...), when one did.
    pub rule: Option<String>,
    pub hash: Option<Hash>,
    pub reference: Option<Hash>,
    pub checked_at: String,
    /// The page around the article against the reference's.
    pub page: PageComparison,
    /// A unified diff of visible text, reference first; None when a text is
    /// not at hand (`note` says which).
    pub diff: Option<String>,
    /// The diff was cut at [`MAX_DIFF_BYTES`].
    pub diff_truncated: bool,
    pub note: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PageComparison {
    pub text_len: u32,
    pub reference_text_len: Option<u32>,
    pub title_words_match: Option<bool>,
    pub overlay: bool,
    /// What OONI's rules found different, if anything.
    pub differs: Option<String>,
}

impl Evidence {
    fn bytes(&self) -> usize {
        256 + self.diff.as_ref().map_or(0, String::len)
            + self.rule.as_ref().map_or(0, String::len)
            + self.note.as_ref().map_or(0, String::len)
    }

    /// Whether this evidence is for the same pages and complete.
    fn covers(&self, hash: Option<Hash>, reference: Option<Hash>) -> bool {
        self.hash == hash && self.reference == reference && (self.diff.is_some() || hash.is_none())
    }
}

/// What a verdict was made from, to build its evidence.
pub struct Judged<'a> {
    pub verdict: Verdict,
    pub reason: Option<Reason>,
    pub rule: Option<String>,
    pub hash: Option<Hash>,
    pub page: PageFacts,
    pub checked_at: UnixMillis,
    pub reference: Option<&'a Reference>,
}

/// Evidence by site, article and base, and the texts it is made from.
#[derive(Default)]
pub struct EvidenceStore {
    /// Each with the generation it was recorded at.
    evidence: HashMap<Key, (Arc<Evidence>, u64)>,
    /// Oldest first; an entry whose generation no longer matches was
    /// replaced or removed since.
    evidence_order: VecDeque<(Key, u64)>,
    evidence_bytes: usize,
    generation: u64,
    texts: HashMap<(Arc<str>, Arc<str>, Hash), Arc<str>>,
    text_order: VecDeque<(Arc<str>, Arc<str>, Hash)>,
    text_bytes: usize,
    /// The last rule that recognised each base's page, kept with its hash.
    rules: HashMap<Key, (Option<Hash>, String)>,
    /// Each base's page's leaks to other bases, where it has any. Bounded
    /// by the catalog (one entry per article and base at most).
    leaks: HashMap<Key, Arc<Leaks>>,
    /// Hosts the primary's pages name as other addresses, by site.
    proposals: HashMap<(Arc<str>, String), Proposal>,
    /// Counts changes to each kept part, so an unchanged one is not
    /// written again: evidence, proposals, leaks.
    changes: [u64; 3],
}

/// A host the primary's pages name as one of the site's addresses, which
/// the config does not list.
#[derive(Clone, Debug, Serialize)]
pub struct Proposal {
    pub site: Arc<str>,
    pub host: String,
    /// `link` (`<link rel="alternate">`) or `text` (a notice).
    pub via: &'static str,
    /// A page that names it.
    pub seen_on: Arc<str>,
    pub first_seen: String,
    pub last_seen: String,
    /// Pages that name it.
    pub pages: usize,
    /// What to add to the site's `mirrors` to use it.
    pub config: String,
    #[serde(skip)]
    paths: std::collections::HashSet<Arc<str>>,
}

/// Proposals kept per site, at most.
const PROPOSALS_PER_SITE: usize = 100;

impl EvidenceStore {
    pub fn get(&self, site: &str, article: &str, base: &str) -> Option<Arc<Evidence>> {
        let key: Key = (site.into(), article.into(), base.into());
        self.evidence.get(&key).map(|(evidence, _)| evidence.clone())
    }

    /// Keeps a page's visible text, to diff against.
    pub fn keep_text(&mut self, site: &Arc<str>, article: &Arc<str>, hash: Hash, text: Arc<str>) {
        let key = (site.clone(), article.clone(), hash);
        if self.texts.contains_key(&key) {
            return;
        }
        self.text_bytes += text.len();
        self.texts.insert(key.clone(), text);
        self.text_order.push_back(key);
        while self.text_bytes > TEXT_BUDGET {
            let Some(oldest) = self.text_order.pop_front() else {
                break;
            };
            if let Some(text) = self.texts.remove(&oldest) {
                self.text_bytes -= text.len();
            }
        }
    }

    pub fn keep_rule(
        &mut self,
        site: &Arc<str>,
        article: &Arc<str>,
        base: &Arc<str>,
        hash: Option<Hash>,
        rule: String,
    ) {
        self.rules
            .insert((site.clone(), article.clone(), base.clone()), (hash, rule));
    }

    /// Hosts the primary's page for `article` names as other addresses.
    pub fn keep_proposals(
        &mut self,
        site: &Arc<str>,
        article: &Arc<str>,
        hosts: &[(String, &'static str)],
        now: UnixMillis,
    ) {
        if !hosts.is_empty() {
            self.changes[PROPOSALS] += 1;
        }
        for (host, via) in hosts {
            let key = (site.clone(), host.clone());
            let per_site = self.proposals.keys().filter(|(s, _)| s == site).count();
            if !self.proposals.contains_key(&key) && per_site >= PROPOSALS_PER_SITE {
                continue;
            }
            let proposal = self.proposals.entry(key).or_insert_with(|| Proposal {
                site: site.clone(),
                host: host.clone(),
                via,
                seen_on: article.clone(),
                first_seen: rfc3339(now),
                last_seen: rfc3339(now),
                pages: 0,
                config: format!("mirrors = [\"https://{host}\"]   # add to [[sites]] name = \"{site}\""),
                paths: Default::default(),
            });
            proposal.last_seen = rfc3339(now);
            if proposal.paths.len() < 10_000 {
                proposal.paths.insert(article.clone());
            }
            proposal.pages = proposal.paths.len();
        }
    }

    /// Every proposal, by site then host; `configured` drops hosts a
    /// reload has since added.
    pub fn proposals(&self, configured: impl Fn(&str, &str) -> bool) -> Vec<Proposal> {
        let mut out: Vec<Proposal> = self
            .proposals
            .values()
            .filter(|p| !configured(&p.site, &p.host))
            .cloned()
            .collect();
        out.sort_by(|a, b| (&a.site, &a.host).cmp(&(&b.site, &b.host)));
        out
    }

    /// What the base's latest full answer for the article leaked.
    pub fn keep_leaks(&mut self, site: &Arc<str>, article: &Arc<str>, base: &Arc<str>, leaks: Leaks) {
        let key = (site.clone(), article.clone(), base.clone());
        if self
            .leaks
            .get(&key)
            .map(|kept| **kept == leaks)
            .unwrap_or(leaks.is_empty())
        {
            return;
        }
        self.changes[LEAKS] += 1;
        if leaks.is_empty() {
            self.leaks.remove(&key);
        } else {
            self.leaks.insert(key, Arc::new(leaks));
        }
    }

    pub fn leaks(&self, site: &str, article: &str, base: &str) -> Option<Arc<Leaks>> {
        let key: Key = (site.into(), article.into(), base.into());
        self.leaks.get(&key).cloned()
    }

    /// Per base of `site`: articles with leaks, and their resources and links.
    pub fn leak_totals(&self, site: &str) -> HashMap<Arc<str>, (usize, u64, u64)> {
        let mut totals: HashMap<Arc<str>, (usize, u64, u64)> = HashMap::new();
        for ((s, _, base), leaks) in &self.leaks {
            if &**s == site {
                let entry = totals.entry(base.clone()).or_default();
                entry.0 += 1;
                entry.1 += u64::from(leaks.resources);
                entry.2 += u64::from(leaks.links);
            }
        }
        totals
    }

    fn text(&self, site: &Arc<str>, article: &Arc<str>, hash: Hash) -> Option<&Arc<str>> {
        self.texts.get(&(site.clone(), article.clone(), hash))
    }

    /// Whether a probe of `base` should hand over its page's text: its
    /// evidence lacks it (or, for the primary, another base's lacks the
    /// reference's).
    pub fn wants_text(&self, site: &Arc<str>, article: &Arc<str>, base: &Arc<str>, primary: bool) -> bool {
        let incomplete = |evidence: &Evidence| evidence.diff.is_none() && evidence.hash.is_some();
        if primary {
            self.evidence
                .iter()
                .any(|((s, a, _), (e, _))| s == site && a == article && incomplete(e))
        } else {
            self.evidence
                .get(&(site.clone(), article.clone(), base.clone()))
                .is_some_and(|(e, _)| incomplete(e))
        }
    }

    /// Records (or drops, for verdicts that need none) one base's evidence.
    pub fn update(&mut self, site: &Arc<str>, article: &Arc<str>, base: &Arc<str>, judged: Judged<'_>) {
        let key: Key = (site.clone(), article.clone(), base.clone());
        if !matches!(judged.verdict, Verdict::Stale | Verdict::Diverged) {
            self.remove(&key);
            self.rules.remove(&key);
            return;
        }
        let reference_hash = judged.reference.map(|r| r.hash);
        if let Some((existing, _)) = self.evidence.get(&key)
            && existing.covers(judged.hash, reference_hash)
            && existing.verdict == judged.verdict
            && existing.diverged_reason == judged.reason
        {
            return;
        }
        let rule = judged.rule.or_else(|| {
            self.rules
                .get(&key)
                .filter(|(hash, _)| *hash == judged.hash)
                .map(|(_, rule)| rule.clone())
        });
        let base_text = judged.hash.and_then(|h| self.text(site, article, h)).cloned();
        let reference_text = reference_hash.and_then(|h| self.text(site, article, h)).cloned();
        let (diff, diff_truncated, note) = match (&base_text, &reference_text, judged.hash) {
            (_, _, None) => (None, false, Some("the base sent no page to compare".to_string())),
            (Some(base_text), Some(reference_text), _) => {
                let (diff, truncated) = unified_diff(reference_text, base_text, MAX_DIFF_BYTES);
                (Some(diff), truncated, None)
            }
            (None, _, _) => (
                None,
                false,
                Some("the base's text is not at hand yet; the next probe brings it".into()),
            ),
            (_, None, _) => (
                None,
                false,
                Some("the reference's text is not at hand yet; the next probe of the primary brings it".into()),
            ),
        };
        let reference_page = judged.reference.map(|r| r.page);
        let evidence = Evidence {
            verdict: judged.verdict,
            diverged_reason: judged.reason,
            rule,
            hash: judged.hash,
            reference: reference_hash,
            checked_at: rfc3339(judged.checked_at),
            page: PageComparison {
                text_len: judged.page.text_len,
                reference_text_len: reference_page.map(|p| p.text_len),
                title_words_match: reference_page.map(|p| p.title_words == judged.page.title_words),
                overlay: judged.page.has(PageFacts::OVERLAY),
                differs: reference_page.and_then(|p| judged.page.differs_from(&p)),
            },
            diff,
            diff_truncated,
            note,
        };
        self.insert(key, evidence);
    }

    /// Adds one base's evidence, dropping the oldest past the budget.
    fn insert(&mut self, key: Key, evidence: Evidence) {
        self.changes[EVIDENCE] += 1;
        self.remove(&key);
        self.generation += 1;
        self.evidence_bytes += evidence.bytes();
        self.evidence.insert(key.clone(), (Arc::new(evidence), self.generation));
        self.evidence_order.push_back((key, self.generation));
        while self.evidence_bytes > EVIDENCE_BUDGET {
            let Some((oldest, generation)) = self.evidence_order.pop_front() else {
                break;
            };
            if self.evidence.get(&oldest).is_some_and(|(_, g)| *g == generation) {
                self.remove(&oldest);
            }
        }
        // Entries replaced or removed leave their old place behind: sweep
        // those out before the order outgrows the map.
        if self.evidence_order.len() > 2 * self.evidence.len() + 1024 {
            let evidence = &self.evidence;
            self.evidence_order
                .retain(|(key, generation)| evidence.get(key).is_some_and(|(_, g)| g == generation));
        }
    }

    fn remove(&mut self, key: &Key) {
        if let Some((gone, _)) = self.evidence.remove(key) {
            self.evidence_bytes -= gone.bytes();
            self.changes[EVIDENCE] += 1;
        }
    }
}

/// Indexes of [`EvidenceStore::changes`].
const EVIDENCE: usize = 0;
const PROPOSALS: usize = 1;
const LEAKS: usize = 2;

/// Separates the parts of a kept entry's key (site, article, base...).
const SEPARATOR: char = '\u{1f}';

fn split3(key: &str) -> Option<(Arc<str>, Arc<str>, Arc<str>)> {
    let mut parts = key.splitn(3, SEPARATOR);
    Some((parts.next()?.into(), parts.next()?.into(), parts.next()?.into()))
}

/// A proposal as kept in the store, with the pages that named it.
#[derive(Serialize, Deserialize)]
struct KeptProposal {
    via: String,
    seen_on: String,
    first_seen: String,
    last_seen: String,
    paths: Vec<String>,
}

/// One part of the evidence store, kept in the store: its diffs, its
/// proposals or its leaks (each its own kind, so proposals seen again every
/// round do not rewrite the diffs).
pub struct Kept {
    store: Arc<std::sync::Mutex<EvidenceStore>>,
    part: usize,
}

impl Kept {
    pub fn parts(store: &Arc<std::sync::Mutex<EvidenceStore>>) -> Vec<Arc<dyn crate::state::kept::Keeps>> {
        [EVIDENCE, PROPOSALS, LEAKS]
            .into_iter()
            .map(|part| {
                Arc::new(Kept {
                    store: store.clone(),
                    part,
                }) as Arc<dyn crate::state::kept::Keeps>
            })
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, EvidenceStore> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl crate::state::kept::Keeps for Kept {
    fn kind(&self) -> &'static str {
        ["evidence.diffs", "evidence.proposals", "evidence.leaks"][self.part]
    }

    fn changes(&self) -> Option<u64> {
        Some(self.lock().changes[self.part])
    }

    fn export(&self) -> Vec<(String, String)> {
        let store = self.lock();
        let key3 = |(s, a, b): &Key| format!("{s}{SEPARATOR}{a}{SEPARATOR}{b}");
        match self.part {
            EVIDENCE => store
                .evidence
                .iter()
                .filter_map(|(key, (evidence, _))| Some((key3(key), json(&**evidence)?)))
                .collect(),
            PROPOSALS => store
                .proposals
                .values()
                .filter_map(|p| {
                    let kept = KeptProposal {
                        via: p.via.to_string(),
                        seen_on: p.seen_on.to_string(),
                        first_seen: p.first_seen.clone(),
                        last_seen: p.last_seen.clone(),
                        paths: p.paths.iter().map(|a| a.to_string()).collect(),
                    };
                    Some((format!("{}{SEPARATOR}{}", p.site, p.host), json(&kept)?))
                })
                .collect(),
            _ => store
                .leaks
                .iter()
                .filter_map(|(key, leaks)| Some((key3(key), json(&**leaks)?)))
                .collect(),
        }
    }

    fn restore(&self, entries: &[(String, String)]) {
        let mut store = self.lock();
        for (key, value) in entries {
            match self.part {
                EVIDENCE => {
                    if let (Some(key), Ok(evidence)) = (split3(key), serde_json::from_str::<Evidence>(value)) {
                        store.insert(key, evidence);
                    }
                }
                PROPOSALS => {
                    let Some((site, host)) = key.split_once(SEPARATOR) else {
                        continue;
                    };
                    let Ok(kept) = serde_json::from_str::<KeptProposal>(value) else {
                        continue;
                    };
                    let via = if kept.via == "link" { "link" } else { "text" };
                    let site: Arc<str> = site.into();
                    let paths: std::collections::HashSet<Arc<str>> =
                        kept.paths.iter().map(|p| Arc::from(p.as_str())).collect();
                    let proposal = Proposal {
                        site: site.clone(),
                        host: host.to_string(),
                        via,
                        seen_on: kept.seen_on.into(),
                        first_seen: kept.first_seen,
                        last_seen: kept.last_seen,
                        pages: paths.len(),
                        config: format!("mirrors = [\"https://{host}\"]   # add to [[sites]] name = \"{site}\""),
                        paths,
                    };
                    store.proposals.insert((site, host.to_string()), proposal);
                }
                _ => {
                    if let (Some(key), Ok(leaks)) = (split3(key), serde_json::from_str::<Leaks>(value)) {
                        store.leaks.insert(key, Arc::new(leaks));
                    }
                }
            }
        }
    }
}

fn json<T: Serialize>(value: &T) -> Option<String> {
    serde_json::to_string(value).ok()
}

/// A unified diff (reference, then base) of two texts' lines, at most
/// `limit` bytes: the first differing passages, with two lines of context.
pub fn unified_diff(reference: &str, base: &str, limit: usize) -> (String, bool) {
    let diff = similar::TextDiff::configure()
        .timeout(std::time::Duration::from_millis(50))
        .diff_lines(reference, base);
    let text = diff
        .unified_diff()
        .context_radius(2)
        .header("reference", "base")
        .to_string();
    if text.len() <= limit {
        return (text, false);
    }
    let mut cut = limit;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let cut = text[..cut].rfind('\n').map_or(cut, |newline| newline + 1);
    (text[..cut].to_string(), true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::Source;

    fn arc(text: &str) -> Arc<str> {
        Arc::from(text)
    }

    #[test]
    fn a_diff_shows_the_changed_line_and_is_bounded() {
        let (diff, truncated) = unified_diff("one\ntwo\nthree\n", "one\n2\nthree\n", 1000);
        assert!(!truncated);
        assert!(diff.contains("-two\n+2\n"), "{diff}");
        let long_a: String = (0..2000).map(|i| format!("line {i}\n")).collect();
        let long_b: String = (0..2000).map(|i| format!("other {i}\n")).collect();
        let (diff, truncated) = unified_diff(&long_a, &long_b, MAX_DIFF_BYTES);
        assert!(truncated && diff.len() <= MAX_DIFF_BYTES);
    }

    #[test]
    fn evidence_waits_for_both_texts_and_goes_when_the_base_is_same_again() {
        let mut store = EvidenceStore::default();
        let (site, article, base) = (arc("s"), arc("/a"), arc("https://m"));
        let reference = Reference {
            hash: Hash([1; 32]),
            page: PageFacts::default(),
            source: Source::Primary,
        };
        let judged = |verdict| Judged {
            verdict,
            reason: Some(Reason::ContentChanged),
            rule: None,
            hash: Some(Hash([2; 32])),
            page: PageFacts::default(),
            checked_at: 0,
            reference: Some(&reference),
        };
        store.keep_text(&site, &article, Hash([2; 32]), arc("Story.\nChanged.\n"));
        store.update(&site, &article, &base, judged(Verdict::Diverged));
        let first = store.get("s", "/a", "https://m").unwrap();
        assert!(first.diff.is_none() && first.note.as_deref().unwrap().contains("reference"));
        assert!(
            store.wants_text(&site, &article, &base, true),
            "the primary should bring its text"
        );
        store.keep_text(&site, &article, Hash([1; 32]), arc("Story.\nOriginal.\n"));
        store.update(&site, &article, &base, judged(Verdict::Diverged));
        let diff = store.get("s", "/a", "https://m").unwrap().diff.clone().unwrap();
        assert!(diff.contains("-Original.\n+Changed.\n"), "{diff}");
        store.update(&site, &article, &base, judged(Verdict::Same));
        assert!(store.get("s", "/a", "https://m").is_none());
    }
}
