//! mirrorgate: watch every article on every mirror of a blocked news site,
//! and send readers to a live base that serves the right content.

pub mod clock;
pub mod config;
pub mod fingerprint;
pub mod origin;
