//! Reference selection and per-base verdicts for one article. Pure.
//!
//! The reference is what the article should read like right now: the
//! primary's content when the primary answers, otherwise what most answering
//! bases agree on. A base that serves an older version of the primary's is
//! stale rather than diverged, which is why the primary's version history is
//! an input.

use serde::Serialize;

use crate::clock::UnixMillis;
use crate::fingerprint::Hash;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Same,
    Stale,
    Diverged,
    Unknown,
    Unreachable,
}

impl Verdict {
    pub const ALL: [Verdict; 5] = [
        Verdict::Same,
        Verdict::Stale,
        Verdict::Diverged,
        Verdict::Unknown,
        Verdict::Unreachable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Same => "same",
            Verdict::Stale => "stale",
            Verdict::Diverged => "diverged",
            Verdict::Unknown => "unknown",
            Verdict::Unreachable => "unreachable",
        }
    }
}

/// A version the primary served: its normalized hash and when it last did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Version {
    pub hash: Hash,
    pub last_seen: UnixMillis,
}

/// `served[i]` is base i's normalized hash if its last probe was ok, base 0
/// being the primary. Ties in the consensus go to the version the primary
/// served most recently, then to the base listed first.
///
/// Without the primary, a hash must be corroborated to become the
/// reference: either the primary served it before, or at least two bases
/// serve it. Otherwise one seized mirror answering with a block page while
/// everything else is down would be "the majority", and readers would be
/// sent to it.
pub fn reference(served: &[Option<Hash>], history: &[Version]) -> Option<Hash> {
    if let Some(Some(primary)) = served.first() {
        return Some(*primary);
    }
    let mut tally: Vec<(Hash, usize, usize)> = Vec::new(); // hash, votes, first base
    for (base, hash) in served.iter().enumerate() {
        let Some(hash) = hash else { continue };
        match tally.iter_mut().find(|(h, _, _)| h == hash) {
            Some(entry) => entry.1 += 1,
            None => tally.push((*hash, 1, base)),
        }
    }
    let recency = |hash: &Hash| history.iter().find(|v| v.hash == *hash).map(|v| v.last_seen);
    tally
        .into_iter()
        .filter(|(hash, votes, _)| *votes >= 2 || recency(hash).is_some())
        .max_by(|a, b| {
            a.1.cmp(&b.1)
                .then_with(|| recency(&a.0).cmp(&recency(&b.0)))
                .then_with(|| b.2.cmp(&a.2))
        })
        .map(|(hash, _, _)| hash)
}

/// The verdict for a base that served `served` (None: its probe was not ok).
pub fn verdict(served: Option<Hash>, reference: Option<Hash>, history: &[Version]) -> Verdict {
    let Some(hash) = served else {
        return Verdict::Unreachable;
    };
    match reference {
        None => Verdict::Unknown,
        Some(reference) if hash == reference => Verdict::Same,
        Some(_) if history.iter().any(|v| v.hash == hash) => Verdict::Stale,
        Some(_) => Verdict::Diverged,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(n: u8) -> Hash {
        Hash([n; 32])
    }

    fn v(n: u8, last_seen: i64) -> Version {
        Version { hash: h(n), last_seen }
    }

    #[test]
    fn primary_defines_the_reference_when_it_answers() {
        let served = [Some(h(1)), Some(h(2)), Some(h(2))];
        assert_eq!(reference(&served, &[]), Some(h(1)));
    }

    #[test]
    fn consensus_when_the_primary_is_down() {
        let served = [None, Some(h(2)), Some(h(3)), Some(h(2))];
        assert_eq!(reference(&served, &[]), Some(h(2)));
    }

    #[test]
    fn consensus_ties_go_to_the_primarys_latest_version() {
        let served = [None, Some(h(1)), Some(h(2)), Some(h(9))];
        let history = [v(1, 100), v(2, 200)];
        assert_eq!(reference(&served, &history), Some(h(2)));
        // Without history, a two-two tie goes to the base listed first.
        let served = [None, Some(h(2)), Some(h(1)), Some(h(1)), Some(h(2))];
        assert_eq!(reference(&served, &[]), Some(h(2)));
    }

    #[test]
    fn a_lone_uncorroborated_hash_is_no_reference() {
        // Primary down, one base answering with something the primary never served.
        assert_eq!(reference(&[None, Some(h(6)), None], &[v(1, 100)]), None);
        // The same lone answer is fine when it is a version the primary served.
        assert_eq!(reference(&[None, Some(h(1)), None], &[v(1, 100)]), Some(h(1)));
        // A known version beats an uncorroborated newcomer, whatever the order.
        assert_eq!(reference(&[None, Some(h(6)), Some(h(1))], &[v(1, 100)]), Some(h(1)));
    }

    #[test]
    fn no_reference_when_nothing_answers() {
        assert_eq!(reference(&[None, None], &[v(1, 1)]), None);
    }

    #[test]
    fn verdicts() {
        let history = [v(1, 100), v(2, 200)];
        assert_eq!(verdict(Some(h(2)), Some(h(2)), &history), Verdict::Same);
        assert_eq!(verdict(Some(h(1)), Some(h(2)), &history), Verdict::Stale);
        assert_eq!(verdict(Some(h(7)), Some(h(2)), &history), Verdict::Diverged);
        assert_eq!(verdict(Some(h(7)), None, &history), Verdict::Unknown);
        assert_eq!(verdict(None, Some(h(2)), &history), Verdict::Unreachable);
    }
}
