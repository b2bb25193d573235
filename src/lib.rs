//! mirrorgate: watch every article on every mirror of a blocked news site,
//! and send readers to a live base that serves the right content.
//!
//! The pure cores are [`fingerprint`], [`verdict`] and [`route`]; the
//! [`engine`] owns live state and publishes [`snapshot`]s; [`schedule`] and
//! [`probe`] talk to the bases; [`store`] persists; [`serve`] answers HTTP.
//! [`daemon`], [`check`] and [`demo`] wire them into the commands.

pub mod alerts;
pub mod check;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod discover;
pub mod engine;
pub mod evidence;
pub mod fingerprint;
pub mod front;
pub mod geoip;
pub mod healthcheck;
pub mod metrics;
pub mod mirrors;
pub mod notify;
pub mod observation;
pub mod origin;
pub mod pages;
pub mod probe;
pub mod reader;
pub mod reader_probe;
pub mod reload;
pub mod route;
pub mod schedule;
pub mod serve;
pub mod snapshot;
pub mod status;
pub mod status_page;
pub mod store;
pub mod uptime;
pub mod vantage;
pub mod verdict;
