//! The daemon's live state: the engine folds probe results into article
//! views and publishes immutable snapshots; uptime and evidence are what
//! it keeps beside them; the schedule runs rounds of probes from it.

pub mod engine;
pub mod evidence;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod kept;
pub mod liveness;
pub mod schedule;
pub mod snapshot;
pub mod tiers;
pub mod uptime;
