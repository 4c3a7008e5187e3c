//! Where both binaries' logs go and how much of them.

use tracing_subscriber::EnvFilter;

/// What is logged when the variable is unset or unreadable: the client library's own chatter about
/// every reconnection attempt would drown what the pair says about them.
const DEFAULT_FILTER: &str = "info,zookeeper_client=warn";

/// Sends logs to stderr, filtered by the environment variable `var` (such as
/// `FLUME_WATCHDOG_LOG=debug`). Stderr, because stdout carries the agent's own output and the
/// watcher's alerts and `status`.
pub fn init(var: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env(var).unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER)),
        )
        .with_writer(std::io::stderr)
        .init();
}
