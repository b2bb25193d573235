//! Request -> redirect decision, from arbitrary bytes: whatever the path,
//! query or `url=` value, a redirect goes only to a configured base
//! followed by '/', its URLs hold only what RFC 3986 allows, and its `Link`
//! fields parse as link-values whose targets are exactly those URLs.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use mirrorgate::route::{Decision, check_redirect, go, redirect};
use mirrorgate::state::fixtures::sample_snapshot;
use mirrorgate::state::snapshot::Snapshot;

fn snapshot() -> &'static Arc<Snapshot> {
    static SNAPSHOT: OnceLock<Arc<Snapshot>> = OnceLock::new();
    SNAPSHOT.get_or_init(sample_snapshot)
}

fn check(decision: Decision, snapshot: &Snapshot) {
    if let Err(problem) = check_redirect(snapshot, &decision) {
        panic!("{problem}");
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
