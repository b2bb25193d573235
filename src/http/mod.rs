//! Everything mirrorgate answers over HTTP: the readers' fast path, the
//! router and its handlers, and the documents they render.

pub mod agents;
pub mod front;
pub mod metrics;
pub mod mirror_list;
pub mod operators;
pub mod pages;
pub mod reader;
pub mod reader_probe;
pub mod readers;
pub mod router;
pub mod server;
pub mod status;
pub mod status_page;
