//! Reference selection and per-base verdicts for one article. Pure.
//!
//! The reference is what the article should read like now: the primary's
//! page when it is fresh and trustworthy (HTML, not a block, parking or
//! error page, its selection visible), else the newest version the primary
//! is known to have served, never an older one that mirrors still agree on.
//! Only with no history at all do two or more bases serving the same
//! trustworthy page stand in for it. Every base is then judged against that
//! reference, with a reason when it serves something else.

pub mod observation;

use serde::Serialize;

use crate::clock::UnixMillis;
use crate::fingerprint::{Hash, PageClass, PageFacts};
use observation::Outcome;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Serves the reference.
    Same,
    /// Serves, byte for byte after normalization, an older version of the
    /// primary's.
    Stale,
    /// Serves something else (see [`Reason`]).
    Diverged,
    /// Answers 404 or 410 for an article the site has: not copied yet.
    Missing,
    /// No reference to compare with, or the last observation is too old.
    Unknown,
    /// Could not be reached, or answered with an error.
    Unreachable,
}

impl Verdict {
    pub const ALL: [Verdict; 6] = [
        Verdict::Same,
        Verdict::Stale,
        Verdict::Diverged,
        Verdict::Missing,
        Verdict::Unknown,
        Verdict::Unreachable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Same => "same",
            Verdict::Stale => "stale",
            Verdict::Diverged => "diverged",
            Verdict::Missing => "missing",
            Verdict::Unknown => "unknown",
            Verdict::Unreachable => "unreachable",
        }
    }

    pub fn index(self) -> usize {
        Verdict::ALL.iter().position(|v| *v == self).unwrap_or(0)
    }
}

/// Why a base's page is not the article.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The article's content differs from the reference.
    ContentChanged,
    /// The article is the same but the page around it is not (OONI's
    /// length and title rules, or a box covering the page).
    PageChanged,
    /// The content selector matches nothing visible.
    SelectorMissing,
    BlockPage,
    Parked,
    #[serde(rename = "soft_404")]
    Soft404,
    NotHtml,
    Truncated,
}

impl Reason {
    pub const ALL: [Reason; 8] = [
        Reason::ContentChanged,
        Reason::PageChanged,
        Reason::SelectorMissing,
        Reason::BlockPage,
        Reason::Parked,
        Reason::Soft404,
        Reason::NotHtml,
        Reason::Truncated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::ContentChanged => "content_changed",
            Reason::PageChanged => "page_changed",
            Reason::SelectorMissing => "selector_missing",
            Reason::BlockPage => "block_page",
            Reason::Parked => "parked",
            Reason::Soft404 => "soft_404",
            Reason::NotHtml => "not_html",
            Reason::Truncated => "truncated",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Reason::ALL.into_iter().find(|r| r.as_str() == text)
    }

    pub fn index(self) -> usize {
        Reason::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }

    fn of(class: PageClass) -> Self {
        match class {
            PageClass::BlockPage => Reason::BlockPage,
            PageClass::Parked => Reason::Parked,
            PageClass::Soft404 => Reason::Soft404,
            PageClass::NotHtml => Reason::NotHtml,
            PageClass::Truncated => Reason::Truncated,
        }
    }
}

/// A version the primary served: its normalized hash, the page around it,
/// and when it last did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Version {
    pub hash: Hash,
    pub page: PageFacts,
    /// The rules key it was fingerprinted under.
    pub rules: u64,
    pub last_seen: UnixMillis,
}

/// What one base's last probe of the article found, as verdicts need it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    pub outcome: Outcome,
    pub http_status: Option<u16>,
    /// The normalized hash, for an `ok` outcome.
    pub hash: Option<Hash>,
    pub page: PageFacts,
    /// The rules key the hash was computed under.
    pub rules: u64,
    pub checked_at: UnixMillis,
}

/// What the site's own "not found" page looks like on a base, when it
/// answers a path that cannot exist with 200 (a soft 404).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotFoundPage {
    pub hash: Hash,
    pub page: PageFacts,
}

impl NotFoundPage {
    /// The page is this base's "not found" page: the same, or, since the
    /// requested path often shows in it, with the same title and about the
    /// same length, unless the article itself has that title (a site that
    /// answers every path with the article's page tells nothing that way).
    fn is(&self, hash: Hash, page: &PageFacts, article: &PageFacts) -> bool {
        if hash == self.hash {
            return true;
        }
        let (a, b) = (u64::from(page.text_len), u64::from(self.page.text_len));
        let close = a.max(b) == 0 || (a.min(b) as f64) / (a.max(b) as f64) > 0.9;
        self.page.title_words != 0
            && self.page.title_words != article.title_words
            && page.title_words == self.page.title_words
            && close
    }
}

/// Where the reference came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The primary serves it now.
    Primary,
    /// The newest version the primary served; the primary does not serve a
    /// trustworthy page now.
    History,
    /// No history: what two or more bases serve alike.
    Consensus,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reference {
    pub hash: Hash,
    pub page: PageFacts,
    pub source: Source,
}

/// How to judge a site's pages.
#[derive(Clone, Copy, Debug)]
pub struct Rules {
    /// The normalizer's key: hashes computed under other rules say nothing.
    pub key: u64,
    pub has_selector: bool,
    /// Observations older than this say nothing.
    pub max_age_ms: i64,
    pub now: UnixMillis,
}

impl Rules {
    fn fresh(&self, seen: &Seen) -> bool {
        seen.checked_at >= self.now.saturating_sub(self.max_age_ms)
    }

    /// The page was fingerprinted under these rules (a failed probe has no
    /// fingerprint to be wrong about).
    fn current(&self, seen: &Seen) -> bool {
        seen.hash.is_none() || seen.rules == self.key
    }
}

/// Whether a page the primary serves may be the reference.
///
/// Looking like the base's answer to a path that cannot exist discredits a
/// page only when the article once read otherwise: a site that serves one
/// page on every path (an app shell) has no other article to fall back to.
pub fn trusted(seen: &Seen, rules: &Rules, not_found: Option<&NotFoundPage>, history: &[Version]) -> bool {
    let Some(hash) = seen.hash else {
        return false;
    };
    let reads_otherwise_before = || history.iter().any(|v| v.hash != hash);
    seen.outcome == Outcome::Ok
        && seen.page.trusted(rules.has_selector)
        && !(not_found.is_some_and(|n| n.hash == hash) && reads_otherwise_before())
}

/// `seen[i]` is base i's last observation (None: not probed), base 0
/// being the primary; `history` the primary's trusted versions, any order.
pub fn reference(
    seen: &[Option<Seen>],
    history: &[Version],
    rules: &Rules,
    not_found: &[Option<NotFoundPage>],
) -> Option<Reference> {
    if let Some(Some(primary)) = seen.first()
        && rules.fresh(primary)
        && rules.current(primary)
        && trusted(primary, rules, not_found.first().copied().flatten().as_ref(), history)
        && let Some(hash) = primary.hash
    {
        return Some(Reference {
            hash,
            page: primary.page,
            source: Source::Primary,
        });
    }
    if let Some(newest) = history.iter().max_by_key(|v| v.last_seen) {
        // Versions hashed under other rules (before a reload changed the
        // selector) cannot be compared with anything probed now; nor can
        // a majority tell a stale copy from the article without them.
        return (newest.rules == rules.key).then_some(Reference {
            hash: newest.hash,
            page: newest.page,
            source: Source::History,
        });
    }
    // No history: two or more bases serving the same trustworthy page. A
    // lone answer (one seized mirror while everything else is down) is not
    // enough.
    let mut tally: Vec<(Hash, PageFacts, usize)> = Vec::new();
    for (base, seen) in seen.iter().enumerate() {
        let Some(seen) = seen else { continue };
        let not_found = not_found.get(base).copied().flatten();
        if !rules.fresh(seen) || !rules.current(seen) || !trusted(seen, rules, not_found.as_ref(), history) {
            continue;
        }
        let Some(hash) = seen.hash else { continue };
        match tally.iter_mut().find(|(h, _, _)| *h == hash) {
            Some(entry) => entry.2 += 1,
            None => tally.push((hash, seen.page, 1)),
        }
    }
    tally
        .into_iter()
        .filter(|(_, _, votes)| *votes >= 2)
        // Ties go to the base listed first (the earliest in the tally).
        .fold(None::<(Hash, PageFacts, usize)>, |best, entry| match best {
            Some(best) if best.2 >= entry.2 => Some(best),
            _ => Some(entry),
        })
        .map(|(hash, page, _)| Reference {
            hash,
            page,
            source: Source::Consensus,
        })
}

/// The verdict for one base's observation, and the reason when diverged.
pub fn verdict(
    seen: &Seen,
    reference: Option<&Reference>,
    history: &[Version],
    rules: &Rules,
    not_found: Option<&NotFoundPage>,
) -> (Verdict, Option<Reason>) {
    if !rules.fresh(seen) || !rules.current(seen) {
        return (Verdict::Unknown, None);
    }
    let diverged = |reason| (Verdict::Diverged, Some(reason));
    match seen.outcome {
        Outcome::Ok => {}
        Outcome::HttpStatus if matches!(seen.http_status, Some(404 | 410)) => return (Verdict::Missing, None),
        Outcome::HttpStatus if seen.http_status == Some(451) => return diverged(Reason::BlockPage),
        Outcome::TooLarge => return diverged(Reason::Truncated),
        _ => {
            // A redirect to a parking service, a header that names a block
            // page: the base answered, with something that is not the article.
            return match seen.page.class {
                Some(class) => diverged(Reason::of(class)),
                None => (Verdict::Unreachable, None),
            };
        }
    }
    let Some(hash) = seen.hash else {
        return (Verdict::Unreachable, None);
    };
    if let Some(class) = seen.page.class {
        return diverged(Reason::of(class));
    }
    let Some(reference) = reference else {
        return (Verdict::Unknown, None);
    };
    let selection_missing =
        rules.has_selector && seen.page.has(PageFacts::HTML) && !seen.page.has(PageFacts::SELECTION_VISIBLE);
    if hash == reference.hash && !selection_missing {
        if rules.has_selector && seen.page.differs_from(&reference.page).is_some() {
            return diverged(Reason::PageChanged);
        }
        return (Verdict::Same, None);
    }
    if history.iter().any(|v| v.hash == hash && v.rules == rules.key) && !selection_missing {
        return (Verdict::Stale, None);
    }
    // The base's answer to a path that cannot exist says more than "the
    // selector matched nothing" would.
    if not_found.is_some_and(|n| n.is(hash, &seen.page, &reference.page)) {
        return diverged(Reason::Soft404);
    }
    if selection_missing {
        return diverged(Reason::SelectorMissing);
    }
    if reference.page.has(PageFacts::HTML) && !seen.page.has(PageFacts::HTML) {
        return diverged(Reason::NotHtml);
    }
    diverged(Reason::ContentChanged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(n: u8) -> Hash {
        Hash([n; 32])
    }

    fn page() -> PageFacts {
        PageFacts {
            text_len: 1000,
            title_words: 7,
            flags: PageFacts::HTML | PageFacts::SELECTION_VISIBLE,
            class: None,
        }
    }

    fn ok(hash: u8, at: i64) -> Option<Seen> {
        Some(Seen {
            outcome: Outcome::Ok,
            http_status: Some(200),
            hash: Some(h(hash)),
            page: page(),
            rules: RULES.key,
            checked_at: at,
        })
    }

    fn failed(outcome: Outcome, status: Option<u16>, at: i64) -> Option<Seen> {
        Some(Seen {
            outcome,
            http_status: status,
            hash: None,
            page: PageFacts::default(),
            rules: RULES.key,
            checked_at: at,
        })
    }

    fn v(n: u8, last_seen: i64) -> Version {
        Version {
            hash: h(n),
            page: page(),
            rules: RULES.key,
            last_seen,
        }
    }

    const RULES: Rules = Rules {
        key: 7,
        has_selector: true,
        max_age_ms: 1000,
        now: 10_000,
    };

    fn judge(seen: Option<Seen>, reference: Option<Reference>, history: &[Version]) -> (Verdict, Option<Reason>) {
        verdict(&seen.unwrap(), reference.as_ref(), history, &RULES, None)
    }

    #[test]
    fn the_primary_defines_the_reference_when_fresh_and_trusted() {
        let seen = [ok(1, 9_500), ok(2, 9_500), ok(2, 9_500)];
        let reference = reference(&seen, &[], &RULES, &[]).unwrap();
        assert_eq!((reference.hash, reference.source), (h(1), Source::Primary));
    }

    #[test]
    fn a_blocked_or_stale_primary_leaves_the_newest_version_as_reference() {
        let history = [v(1, 100), v(2, 200)];
        // Down: the newest version, though two mirrors agree on the older one.
        let seen = [failed(Outcome::Connect, None, 9_500), ok(1, 9_500), ok(1, 9_500)];
        let found = reference(&seen, &history, &RULES, &[]).unwrap();
        assert_eq!((found.hash, found.source), (h(2), Source::History));
        assert_eq!(judge(seen[1], Some(found), &history).0, Verdict::Stale);
        // A block page on the primary is not the reference either.
        let mut blocked = ok(9, 9_500).unwrap();
        blocked.page.class = Some(PageClass::BlockPage);
        let found = reference(&[Some(blocked), ok(2, 9_500)], &history, &RULES, &[]).unwrap();
        assert_eq!(found.hash, h(2));
        // A primary whose selector matches nothing visible neither.
        let mut hidden = ok(8, 9_500).unwrap();
        hidden.page.flags = PageFacts::HTML | PageFacts::SELECTION_HIDDEN;
        assert_eq!(reference(&[Some(hidden)], &history, &RULES, &[]).unwrap().hash, h(2));
        // An observation of the primary older than max_age neither.
        assert_eq!(reference(&[ok(5, 8_000)], &history, &RULES, &[]).unwrap().hash, h(2));
    }

    #[test]
    fn hashes_from_other_rules_are_never_compared() {
        let mut history = [v(1, 100), v(2, 200)];
        let mut before_reload = ok(2, 9_500).unwrap();
        before_reload.rules = RULES.key + 1;
        let primary = ok(2, 9_500);
        let found = reference(&[primary], &history, &RULES, &[]).unwrap();
        assert_eq!(
            judge(Some(before_reload), Some(found), &history),
            (Verdict::Unknown, None)
        );
        // A primary known only under other rules defines nothing.
        assert_eq!(reference(&[Some(before_reload)], &[], &RULES, &[]), None);
        // Nor does history from before, even with mirrors agreeing now.
        for version in &mut history {
            version.rules = RULES.key + 1;
        }
        let down = failed(Outcome::Connect, None, 9_500);
        assert_eq!(
            reference(&[down, ok(1, 9_500), ok(1, 9_500)], &history, &RULES, &[]),
            None
        );
    }

    #[test]
    fn without_history_two_bases_must_agree() {
        let down = failed(Outcome::Connect, None, 9_500);
        assert_eq!(reference(&[down, ok(6, 9_500), down], &[], &RULES, &[]), None);
        let agreed = reference(&[down, ok(6, 9_500), ok(6, 9_500)], &[], &RULES, &[]).unwrap();
        assert_eq!((agreed.hash, agreed.source), (h(6), Source::Consensus));
    }

    #[test]
    fn verdicts_and_reasons() {
        let history = [v(1, 100), v(2, 200)];
        let reference = Some(Reference {
            hash: h(2),
            page: page(),
            source: Source::Primary,
        });
        assert_eq!(judge(ok(2, 9_500), reference, &history), (Verdict::Same, None));
        assert_eq!(judge(ok(1, 9_500), reference, &history), (Verdict::Stale, None));
        assert_eq!(
            judge(ok(7, 9_500), reference, &history),
            (Verdict::Diverged, Some(Reason::ContentChanged))
        );
        assert_eq!(judge(ok(7, 9_500), None, &history), (Verdict::Unknown, None));
        assert_eq!(
            judge(ok(2, 5_000), reference, &history),
            (Verdict::Unknown, None),
            "too old"
        );
        assert_eq!(
            judge(failed(Outcome::HttpStatus, Some(404), 9_500), reference, &history),
            (Verdict::Missing, None)
        );
        assert_eq!(
            judge(failed(Outcome::Timeout, None, 9_500), reference, &history),
            (Verdict::Unreachable, None)
        );
        assert_eq!(
            judge(failed(Outcome::TooLarge, Some(200), 9_500), reference, &history),
            (Verdict::Diverged, Some(Reason::Truncated))
        );
        let mut parked = failed(Outcome::RedirectedOffSite, Some(302), 9_500).unwrap();
        parked.page.class = Some(PageClass::Parked);
        assert_eq!(
            judge(Some(parked), reference, &history),
            (Verdict::Diverged, Some(Reason::Parked))
        );
        // The article, on a page that is not the reference's around it.
        let mut carried = ok(2, 9_500).unwrap();
        carried.page.title_words = 99;
        assert_eq!(
            judge(Some(carried), reference, &history),
            (Verdict::Diverged, Some(Reason::PageChanged))
        );
        let mut missing_selection = ok(5, 9_500).unwrap();
        missing_selection.page.flags = PageFacts::HTML;
        assert_eq!(
            judge(Some(missing_selection), reference, &history),
            (Verdict::Diverged, Some(Reason::SelectorMissing))
        );
        // A copy of an old version that was also altered is not stale.
        assert_eq!(judge(ok(3, 9_500), reference, &history).0, Verdict::Diverged);
    }

    #[test]
    fn reasons_serialize_as_documented() {
        for reason in Reason::ALL {
            assert_eq!(serde_json::to_value(reason).unwrap(), reason.as_str());
        }
        for verdict in Verdict::ALL {
            assert_eq!(serde_json::to_value(verdict).unwrap(), verdict.as_str());
        }
    }

    #[test]
    fn soft_404s_are_recognised_by_the_base_s_own_not_found_page() {
        let reference = Reference {
            hash: h(2),
            page: page(),
            source: Source::Primary,
        };
        let not_found = NotFoundPage {
            hash: h(40),
            page: PageFacts {
                title_words: 44,
                ..page()
            },
        };
        let mut echoed = ok(41, 9_500).unwrap();
        echoed.page.title_words = 44;
        assert_eq!(
            verdict(&echoed, Some(&reference), &[], &RULES, Some(&not_found)),
            (Verdict::Diverged, Some(Reason::Soft404))
        );
        let before = [v(1, 9_000)];
        let mut the_not_found_page = ok(40, 9_500).unwrap();
        the_not_found_page.page = not_found.page;
        assert!(!trusted(&the_not_found_page, &RULES, Some(&not_found), &before));
        // Without another version known, the page may be all the site has.
        assert!(trusted(&the_not_found_page, &RULES, Some(&not_found), &[]));
        // An updated article keeps its title and length: it is not the
        // not-found page for looking like it.
        assert!(trusted(&echoed, &RULES, Some(&not_found), &before));
        // A site that answers every path with the article's page: a tampered
        // copy with that title is a changed article, not a soft 404.
        let article_like = NotFoundPage {
            hash: h(40),
            page: page(),
        };
        assert_eq!(
            verdict(
                &ok(41, 9_500).unwrap(),
                Some(&reference),
                &[],
                &RULES,
                Some(&article_like)
            ),
            (Verdict::Diverged, Some(Reason::ContentChanged))
        );
    }
}
