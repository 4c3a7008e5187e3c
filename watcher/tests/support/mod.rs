//! What the channel tests share (each test file is a crate of its own and includes this module):
//! a sample alert, quick retries, the context channels start with, and waits with deadlines.

#![allow(dead_code)] // Each test crate uses a part.

use std::time::{Duration, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;
use watcher::alert::{Alert, AlertKind};
use watcher::channels::{http_client, Context};
use watcher::message::Style;
use watcher::notify::{ChannelStats, Notifier, RetryPolicy};

/// Retries a test can wait for.
pub const FAST: RetryPolicy = RetryPolicy {
    initial: Duration::from_millis(50),
    max: Duration::from_millis(200),
};

/// A `down` of `agent` on web-3, killed by SIGKILL, restarted twice.
pub fn alert(agent: &str) -> Alert {
    alert_of(agent, AlertKind::Down)
}

/// The same, of another event.
pub fn alert_of(agent: &str, event: AlertKind) -> Alert {
    Alert {
        host: Some("web-3".to_owned()),
        restarts: Some(2),
        crashes: 1,
        ..Alert::new(
            event,
            agent,
            "killed by SIGKILL",
            UNIX_EPOCH + Duration::from_millis(1_763_700_000_123),
        )
    }
}

/// The shared HTTP client, messages written in `style`.
pub fn ctx(style: Style) -> Context {
    Context {
        http: http_client().expect("http client"),
        style,
    }
}

/// Polls the first channel's stats (they change only inside the notifier's tasks) until `done`,
/// or fails after `within` saying what it waited for and what it saw.
pub async fn wait_stats(
    notifier: &Notifier,
    within: Duration,
    what: &str,
    done: impl Fn(&ChannelStats) -> bool,
) -> ChannelStats {
    let waited = tokio::time::timeout(within, async {
        loop {
            let stats = notifier.stats().remove(0);
            if done(&stats) {
                return stats;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    waited.unwrap_or_else(|_| {
        panic!(
            "within {within:?}, stats never showed {what}; last: {:?}",
            notifier.stats()
        )
    })
}

/// Cancels the notifier and waits (at most `within`) for its tasks to stop.
pub async fn stop(notifier: &Notifier, cancel: &CancellationToken, within: Duration) {
    cancel.cancel();
    tokio::time::timeout(within, notifier.wait_stopped())
        .await
        .expect("notifier tasks stop after cancel");
}
