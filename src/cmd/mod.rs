//! The commands: each wires the library into one thing a user runs.

pub mod agent;
pub mod check;
pub mod cluster;
pub mod demo;
pub mod healthcheck;
pub mod keep;
pub mod notify;
pub mod reload;
pub mod run;
pub mod shared_work;
pub mod store;
