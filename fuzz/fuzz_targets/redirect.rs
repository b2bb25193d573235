//! Request -> redirect decision, from arbitrary bytes: whatever the path,
//! query or `url=` value, a redirect goes only to a configured base
//! followed by '/', and carries no control characters.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use mirrorgate::route::{Decision, go, redirect, sample_snapshot};
use mirrorgate::snapshot::Snapshot;

fn snapshot() -> &'static Arc<Snapshot> {
    static SNAPSHOT: OnceLock<Arc<Snapshot>> = OnceLock::new();
    SNAPSHOT.get_or_init(sample_snapshot)
}

fn check(decision: Decision, snapshot: &Snapshot) {
    if let Decision::Redirect { location, alternates } = decision {
        for url in std::iter::once(&location).chain(&alternates) {
            let on_a_base = snapshot.catalog.sites.iter().flat_map(|s| &s.bases).any(|base| {
                url.strip_prefix(base.as_str()).is_some_and(|rest| rest.starts_with('/'))
            });
            assert!(on_a_base, "redirect off the configured bases: {url:?}");
            assert!(!url.bytes().any(|b| b.is_ascii_control()), "control byte in {url:?}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the endpoint; the rest is the input, split at the
    // first '?' into path and query for /r.
    let Some((&which, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    let snapshot = snapshot();
    match which % 3 {
        0 => {
            let (path, query) = match text.split_once('?') {
                Some((path, query)) => (path, Some(query)),
                None => (text.as_ref(), None),
            };
            check(redirect(snapshot, "news", &format!("/{path}"), query), snapshot);
        }
        1 => check(go(snapshot, Some(&text)), snapshot),
        _ => check(redirect(snapshot, &text, "/a", None), snapshot),
    }
});
