//! Wall-clock time as Unix milliseconds, the one time representation
//! stored, compared and rendered (RFC 3339 UTC) across the crate.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub type UnixMillis = i64;

pub fn now_ms() -> UnixMillis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub fn rfc3339(ms: UnixMillis) -> String {
    let time = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(time).to_string()
}

pub fn millis(duration: Duration) -> i64 {
    duration.as_millis().min(i64::MAX as u128) as i64
}
