//! Snapshots for tests and the fuzz target, built through the real config
//! parser and engine rather than by hand, so they hold what the daemon
//! would. Compiled only for tests and with the `fixtures` feature.

use std::sync::Arc;
use std::time::Duration;

use crate::fingerprint::Hash;
use crate::state::engine::{Engine, ProbeResult};
use crate::state::snapshot::{Catalog, Snapshot};
use crate::verdict::observation::{Observation, Outcome};

/// A snapshot built through the real config parser and engine, for
/// property tests and the fuzz target: site "news" has its primary down and
/// two mirrors agreeing; site "other" has nothing probed yet.
pub fn sample_snapshot() -> Arc<Snapshot> {
    const SAMPLE: &str = r#"
[[sites]]
name = "news"
primary = "https://www.example.com"
mirrors = ["https://www.example.co.uk", "http://mirror.example.net:8080", "https://blocked.example.org"]
articles = ["/a", "/Detail/2017/01/24/507408/Trump-Russia-Daesh", "/q?id=1"]

[[sites]]
name = "other"
primary = "https://other.example.org"
articles = ["/x"]
"#;
    let config = crate::config::parse("sample.toml", SAMPLE).expect("the sample config is valid");
    let catalog = Arc::new(Catalog::new(&config));
    let mut engine = Engine::new(catalog.clone(), 2, Duration::from_secs(3600), None);
    for article in 0..3 {
        for base in 0..4 {
            let (outcome, hash) = match base {
                0 => (Outcome::Connect, None),
                3 => (Outcome::Ok, Some(Hash([9; 32]))),
                _ => (Outcome::Ok, Some(Hash([1; 32]))),
            };
            let observation = Observation {
                outcome,
                http_status: hash.map(|_| 200),
                latency_ms: 5,
                raw_hash: hash.map(|h| crate::fingerprint::RawHash(h.0)),
                hash,
                page: Default::default(),
                rules: catalog.sites[0].normalizer.key(),
                // Now: older observations would be too old to count.
                checked_at: crate::clock::now_ms(),
                last_ok_at: None,
                validators: None,
            };
            engine.apply(ProbeResult {
                catalog: catalog.clone(),
                site: 0,
                base,
                article,
                observation,
                detail: None,
                lease: None,
            });
        }
    }
    engine.publish(false);
    engine.snapshots().load_full()
}
