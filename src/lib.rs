//! mirrorgate: watch every article on every mirror of a blocked news site,
//! and send readers to a live base that serves the right content.
//!
//! The crate's map, lowest layer first. A module uses only modules above
//! it in this list (`tests/layout.rs` fails on an arrow pointing up or on
//! an import circle):
//!
//! - [`clock`], [`origin`], [`country`]: small value types everyone uses.
//! - [`fingerprint`]: what a reader sees, hashed (tokenizer, tree, canonical form). Pure.
//! - [`config`]: TOML to a validated `Config`, every feature's settings types included.
//! - [`verdict`]: what a base answered (`observation`), the reference, verdicts, reasons. Pure.
//! - [`probe`]: one bounded HTTP request to a base and what it saw.
//! - [`store`]: the `Store` trait and its backends (SQLite, PostgreSQL), behind one writer task.
//! - [`state`]: the engine that folds results into snapshots, the schedule of rounds, uptime, evidence.
//! - [`discover`]: articles from sitemaps and feeds.
//! - [`vantage`]: agents in other countries, their board and view, readers' reports, GeoIP.
//! - [`alert`]: conditions over a snapshot and their delivery to sinks.
//! - [`route`]: the redirect decision over a snapshot. Pure: reaches no I/O.
//! - [`http`]: the readers' fast path, the router, status, metrics, pages.
//! - [`cmd`]: the commands (`run`, `check`, `demo`, `healthcheck`, `agent`), wiring all of the above.

pub mod alert;
pub mod clock;
pub mod cmd;
pub mod config;
pub mod country;
pub mod discover;
pub mod fingerprint;
pub mod http;
pub mod origin;
pub mod probe;
pub mod route;
pub mod state;
pub mod store;
pub mod vantage;
pub mod verdict;
