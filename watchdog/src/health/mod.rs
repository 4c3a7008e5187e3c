//! Issue 11: a hung or stalled Flume agent is found, not only a dead one.
//!
//! When Flume's HTTP monitoring is on (found in the wrapped command line or `JAVA_OPTS`, or given
//! with `--flume-metrics`), the watchdog reads `GET /metrics` every `--health-interval`, judges
//! it ([`machine`], pure) and publishes a compact summary in the EPHEMERAL node
//! `<root>/health/<id>` (`common::records::HealthRecord`) when it changes materially. Parsing is
//! [`metrics`] (pure), finding the port and the sinks' channels is [`cmdline`] (pure), and
//! [`poller`] is the only part that does I/O.

pub mod cmdline;
pub mod machine;
pub mod metrics;
pub mod poller;

use std::time::Duration;

pub use machine::Rules;

/// Where and how often to read the metrics, and the rules to judge them by.
#[derive(Clone, Debug, PartialEq)]
pub struct HealthConfig {
    pub url: String,
    pub interval: Duration,
    pub rules: Rules,
}

impl HealthConfig {
    /// Each read is bounded well inside the interval, so that a hung endpoint shows as one
    /// unanswered reading per poll and readings never pile up.
    pub fn timeout(&self) -> Duration {
        (self.interval / 2).min(Duration::from_secs(10))
    }
}

/// The metrics URL of an agent whose command line (or `JAVA_OPTS`) turns on Flume's HTTP
/// monitoring: Flume serves it on every interface, so loopback reaches it.
pub fn url_from_command(argv: &[String], java_opts: Option<&str>) -> Option<String> {
    cmdline::monitoring_port(argv, java_opts).map(|port| format!("http://127.0.0.1:{port}/metrics"))
}

/// Which channel each sink drains, from the agent's properties file when it can be read; the
/// stall rule then looks at the sink's own channel rather than at any channel.
pub fn wiring_from_command(argv: &[String]) -> std::collections::BTreeMap<String, String> {
    let Some((agent, path)) = cmdline::agent_conf(argv) else {
        return Default::default();
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => cmdline::sink_channels(&text, &agent),
        Err(e) => {
            tracing::debug!(path = %path, error = %e, "cannot read the agent's properties file; a sink counts as stalled when any channel holds events");
            Default::default()
        }
    }
}
