//! `GET /metrics`: the Prometheus text exposition format 0.0.4, written here.
//!
//! Why not the `prometheus-client` crate: it writes OpenMetrics (`# EOF`, `_created` series,
//! `# HELP` of a counter without its `_total`), which Debian's `promtool check metrics` (2.42)
//! rejects, and most of these figures are a snapshot rendered per scrape (agents come and go)
//! rather than long-lived instruments. The format is small: `# HELP` and `# TYPE` once per family,
//! label values escaped, a histogram's buckets cumulative up to `+Inf` with `_sum` and `_count`.
//! A test pipes a real scrape through promtool.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::notify::ChannelStats;
use crate::status::Row;

use super::board::{Deliveries, Sight, LATENCY_BUCKETS};

/// The agent states always exported (zero when none is in that state), so that a dashboard's
/// series exist from the start. `degraded` is the watchdog's coming health report.
pub const STATES: [&str; 5] = ["up", "down", "failed", "degraded", "stopped"];

/// The content type Prometheus asks for by default and promtool reads.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Everything one scrape shows.
pub struct Scrape<'a> {
    pub sight: &'a Sight,
    pub outages_opened: u64,
    pub deliveries: &'a Deliveries,
    /// The notifier's counters per channel (pending notices).
    pub channels: &'a [ChannelStats],
    /// The agents as ZooKeeper has them now; `None` when it could not be read (then no agent
    /// series at all rather than stale ones).
    pub agents: Option<&'a [Row]>,
    /// Silences in force, from the same read as the agents (`Status::silences`); `None` when
    /// it could not be read (then no series, as for the agents: 0 would say "none in force").
    pub silences: Option<u64>,
}

/// The text of one scrape.
pub fn render(s: &Scrape<'_>) -> String {
    let mut t = Text::default();
    let bit = |b: bool| if b { 1.0 } else { 0.0 };

    t.family(
        "flume_watcher_zookeeper_connected",
        "gauge",
        "Whether this watcher's ZooKeeper session is connected (1) or not (0).",
    );
    t.sample(
        "flume_watcher_zookeeper_connected",
        &[],
        bit(s.sight.connected),
    );
    t.family(
        "flume_watcher_blind",
        "gauge",
        "Whether this watcher is blind (1): no working ZooKeeper session and full view, so it cannot see outages.",
    );
    t.sample(
        "flume_watcher_blind",
        &[],
        bit(s.sight.blind_since.is_some()),
    );
    t.family(
        "flume_watcher_leader",
        "gauge",
        "Whether this watcher leads (1: it records and delivers alerts) or follows (0).",
    );
    t.sample("flume_watcher_leader", &[], bit(s.sight.leading));
    if let Some(n) = s.silences {
        t.family(
            "flume_watcher_silences_active",
            "gauge",
            "Silences in force now (begun, not ended), whatever they cover; left out when ZooKeeper could not be read.",
        );
        t.sample("flume_watcher_silences_active", &[], n as f64);
    }
    t.family(
        "flume_watcher_agents_read_ok",
        "gauge",
        "Whether the agents could be read from ZooKeeper for this scrape (1); at 0 no agent series are exported.",
    );
    t.sample("flume_watcher_agents_read_ok", &[], bit(s.agents.is_some()));

    if let Some(agents) = s.agents {
        let mut by_state: BTreeMap<&str, u64> = STATES.iter().map(|s| (*s, 0)).collect();
        for row in agents {
            *by_state.entry(row.state).or_default() += 1;
        }
        t.family(
            "flume_watcher_agents",
            "gauge",
            "Agents registered under the root, by state (up, down, failed, degraded, stopped).",
        );
        for (state, n) in &by_state {
            t.sample("flume_watcher_agents", &[("state", state)], *n as f64);
        }
        t.family(
            "flume_watcher_agent_up",
            "gauge",
            "Whether the agent is live (1) or not (0).",
        );
        for row in agents {
            let labels = [("agent", row.id.as_str()), ("host", host(row))];
            t.sample("flume_watcher_agent_up", &labels, bit(row.state == "up"));
        }
        t.family(
            "flume_watcher_agent_restarts",
            "gauge",
            "Restarts of the agent counted by its watchdog (from its identity node).",
        );
        for row in agents {
            if let Some(n) = row.restarts {
                let labels = [("agent", row.id.as_str()), ("host", host(row))];
                t.sample("flume_watcher_agent_restarts", &labels, n as f64);
            }
        }
    }

    t.family(
        "flume_watcher_outages_opened_total",
        "counter",
        "Agent outages this watcher saw open (a down, or a failed without a down before it).",
    );
    t.sample(
        "flume_watcher_outages_opened_total",
        &[],
        s.outages_opened as f64,
    );
    t.family(
        "flume_watcher_alerts_sent_total",
        "counter",
        "Alerts a channel took, by channel and event.",
    );
    for ((channel, event), (sent, _)) in &s.deliveries.counts {
        let labels = [("channel", channel.as_str()), ("event", *event)];
        t.sample("flume_watcher_alerts_sent_total", &labels, *sent as f64);
    }
    t.family(
        "flume_watcher_alerts_failed_total",
        "counter",
        "Alerts a channel refused for good (a configuration problem), by channel and event.",
    );
    for ((channel, event), (_, failed)) in &s.deliveries.counts {
        let labels = [("channel", channel.as_str()), ("event", *event)];
        t.sample("flume_watcher_alerts_failed_total", &labels, *failed as f64);
    }
    t.family(
        "flume_watcher_delivery_latency_seconds",
        "histogram",
        "Time from an alert's transition (its at) to its delivery, by channel.",
    );
    for (channel, l) in &s.deliveries.latency {
        let mut cumulative = 0;
        for (bound, n) in LATENCY_BUCKETS.iter().zip(l.buckets) {
            cumulative += n;
            let le = bound.to_string();
            t.sample(
                "flume_watcher_delivery_latency_seconds_bucket",
                &[("channel", channel), ("le", &le)],
                cumulative as f64,
            );
        }
        t.sample(
            "flume_watcher_delivery_latency_seconds_bucket",
            &[("channel", channel), ("le", "+Inf")],
            l.count as f64,
        );
        t.sample(
            "flume_watcher_delivery_latency_seconds_sum",
            &[("channel", channel)],
            l.sum,
        );
        t.sample(
            "flume_watcher_delivery_latency_seconds_count",
            &[("channel", channel)],
            l.count as f64,
        );
    }
    t.family(
        "flume_watcher_pending_notices",
        "gauge",
        "Alerts queued for a channel or in flight to it, by channel.",
    );
    for c in s.channels {
        t.sample(
            "flume_watcher_pending_notices",
            &[("channel", &c.label)],
            c.pending as f64,
        );
    }
    t.0
}

fn host(row: &Row) -> &str {
    row.host.as_deref().unwrap_or("")
}

/// The exposition text being written.
#[derive(Default)]
struct Text(String);

impl Text {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", escape_label(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }
}

/// A label value as the format wants it: `\`, `"` and line feeds escaped. Hosts come from
/// ZooKeeper and may hold anything.
pub fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::board::{LastResult, Latency};
    use std::time::SystemTime;

    fn row(id: &str, host: Option<&str>, state: &'static str, restarts: Option<u64>) -> Row {
        Row {
            id: id.to_owned(),
            host: host.map(str::to_owned),
            state,
            since: None,
            restarts,
            last_exit: None,
            labels: Default::default(),
            health: None,
            silenced: Vec::new(),
        }
    }

    fn sight() -> Sight {
        Sight {
            connected: true,
            leading: true,
            blind_since: None,
            viewed: true,
        }
    }

    #[test]
    fn families_samples_and_escaping() {
        let mut deliveries = Deliveries::default();
        deliveries.counts.insert(("ops".to_owned(), "down"), (3, 1));
        let mut l = Latency::default();
        l.observe(0.02);
        l.observe(7.0);
        l.observe(1000.0);
        deliveries.latency.insert("ops".to_owned(), l);
        deliveries.last.insert(
            "ops".to_owned(),
            LastResult {
                at: SystemTime::now(),
                delivered: true,
                alerts: 1,
                event: "down",
            },
        );
        let agents = [
            row("a1", Some("web\"7\\\nx"), "up", Some(2)),
            row("b2", None, "down", None),
        ];
        let channels = [ChannelStats {
            label: "ops".into(),
            pending: 4,
            ..Default::default()
        }];
        let text = render(&Scrape {
            sight: &sight(),
            outages_opened: 5,
            deliveries: &deliveries,
            channels: &channels,
            agents: Some(&agents),
            silences: Some(2),
        });
        for want in [
            "# TYPE flume_watcher_agents gauge\n",
            "flume_watcher_agents{state=\"up\"} 1\n",
            "flume_watcher_agents{state=\"down\"} 1\n",
            "flume_watcher_agents{state=\"degraded\"} 0\n",
            "flume_watcher_agent_up{agent=\"a1\",host=\"web\\\"7\\\\\\nx\"} 1\n",
            "flume_watcher_agent_up{agent=\"b2\",host=\"\"} 0\n",
            "flume_watcher_agent_restarts{agent=\"a1\",host=\"web\\\"7\\\\\\nx\"} 2\n",
            "flume_watcher_outages_opened_total 5\n",
            "flume_watcher_alerts_sent_total{channel=\"ops\",event=\"down\"} 3\n",
            "flume_watcher_alerts_failed_total{channel=\"ops\",event=\"down\"} 1\n",
            "flume_watcher_delivery_latency_seconds_bucket{channel=\"ops\",le=\"0.025\"} 1\n",
            "flume_watcher_delivery_latency_seconds_bucket{channel=\"ops\",le=\"10\"} 2\n",
            "flume_watcher_delivery_latency_seconds_bucket{channel=\"ops\",le=\"300\"} 2\n",
            "flume_watcher_delivery_latency_seconds_bucket{channel=\"ops\",le=\"+Inf\"} 3\n",
            "flume_watcher_delivery_latency_seconds_count{channel=\"ops\"} 3\n",
            "flume_watcher_pending_notices{channel=\"ops\"} 4\n",
            "flume_watcher_zookeeper_connected 1\n",
            "flume_watcher_leader 1\n",
            "flume_watcher_blind 0\n",
            "flume_watcher_silences_active 2\n",
        ] {
            assert!(text.contains(want), "{want:?} missing in:\n{text}");
        }
        assert!(!text.contains("b2\",host=\"\"} 0\nflume_watcher_agent_restarts{agent=\"b2\""));
        // One HELP and one TYPE per family, and no line break inside a sample.
        for line in text.lines() {
            assert!(
                line.starts_with("# HELP flume_watcher_")
                    || line.starts_with("# TYPE flume_watcher_")
                    || line.starts_with("flume_watcher_"),
                "{line:?}"
            );
        }
    }

    #[test]
    fn unreadable_agents_export_no_agent_series() {
        let text = render(&Scrape {
            sight: &Sight {
                connected: false,
                leading: false,
                blind_since: Some(SystemTime::now()),
                viewed: false,
            },
            outages_opened: 0,
            deliveries: &Deliveries::default(),
            channels: &[],
            agents: None,
            silences: None,
        });
        assert!(text.contains("flume_watcher_agents_read_ok 0\n"), "{text}");
        assert!(text.contains("flume_watcher_blind 1\n"), "{text}");
        assert!(!text.contains("flume_watcher_agents{"), "{text}");
        assert!(!text.contains("flume_watcher_agent_up{"), "{text}");
        assert!(!text.contains("flume_watcher_silences_active"), "{text}");
    }
}
