//! mirrorgate: watch every article on every mirror of a blocked news site,
//! and send readers to a live base that serves the right content.
//!
//! The pure cores are [`fingerprint`], [`verdict`] and [`route`]; the
//! [`engine`] owns live state and publishes [`snapshot`]s; [`schedule`] and
//! [`probe`] talk to the bases; [`store`] persists; [`serve`] answers HTTP.
//! [`daemon`], [`check`] and [`demo`] wire them into the commands.

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
