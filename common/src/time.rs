//! Timestamps as they appear in node data: RFC 3339 UTC with milliseconds, readable by people
//! and by scripts alike.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub fn format(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

pub fn now() -> String {
    format(SystemTime::now())
}

pub fn parse(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(s).ok()
}

/// A znode's `ctime`/`mtime` (milliseconds since the epoch) as a `SystemTime`.
pub fn from_millis(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

/// Short human form of a duration for messages: `3m 12s`, `850ms`.
pub fn human(d: Duration) -> String {
    let rounded = if d >= Duration::from_secs(1) {
        Duration::from_secs(d.as_secs())
    } else {
        Duration::from_millis(d.as_millis() as u64)
    };
    humantime::format_duration(rounded).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_millis() {
        let t = UNIX_EPOCH + Duration::from_millis(1_763_700_000_123);
        assert_eq!(parse(&format(t)), Some(t));
        assert_eq!(from_millis(1_763_700_000_123), t);
        assert_eq!(parse("yesterday"), None);
    }

    #[test]
    fn human_durations() {
        assert_eq!(human(Duration::from_millis(850)), "850ms");
        assert_eq!(human(Duration::from_millis(192_400)), "3m 12s");
    }
}
