//! Deadlines and polling.

use std::time::{Duration, Instant};

/// How often [`poll_until`] looks at its condition.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// `Instant::now() + secs` seconds.
pub fn deadline(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}

/// `Instant::now() + ms` milliseconds.
pub fn deadline_ms(ms: u64) -> Instant {
    Instant::now() + Duration::from_millis(ms)
}

/// Polls `check` every 20 ms until it returns `Some`, or panics at `deadline` with
/// "timed out after …: waiting for {what}; saw: {seen()}".
pub fn poll_until<T>(
    deadline: Instant,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
    seen: impl FnOnce() -> String,
) -> T {
    let started = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        let now = Instant::now();
        if now >= deadline {
            panic!(
                "timed out after {:.1?}: waiting for {what}\n--- saw ---\n{}",
                now - started,
                seen()
            );
        }
        std::thread::sleep(POLL_INTERVAL.min(deadline - now));
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
