//! When a running agent stops doing its job: from the health nodes its watchdog writes
//! (`<root>/health/<id>`, a verdict with reasons and figures read from Flume's metrics), decide
//! one `degraded` per degradation and one `healthy` when it clears, free of I/O.
//!
//! Why a machine of its own: a degradation is not an outage. The agent is live, its crash outage
//! (if any) is the [`outage`](crate::outage) monitor's business, and the two must not mix: a
//! `down` while degraded supersedes the degradation (the crash says more, and the agent that comes
//! back is judged afresh), so the degradation ends without a `healthy`. Its notices go through
//! the same ledger as crashes, in a record of their own (`<root>/outages/<id>~health`), so a
//! degradation is told once across watcher failover, and a new leader still tells its end.
//!
//! A watcher that finds no health node for an agent (an older watchdog, or no metrics endpoint)
//! treats it as before: nothing is said.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use common::records::{HealthRecord, Verdict};

#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// After (re)connecting, or on taking the lead: the degradations told already (their open
    /// records, by agent, with when each began) and every health node, by agent.
    Snapshot {
        told: BTreeMap<String, SystemTime>,
        nodes: BTreeMap<String, (HealthRecord, i64)>,
        wall: SystemTime,
    },
    /// A health node was written (`Some`, with its modification's zxid) or vanished (`None`).
    Node {
        id: String,
        record: Option<(HealthRecord, i64)>,
        wall: SystemTime,
    },
    /// The agent's outage began (`down` or `failed`): it supersedes a degradation.
    Down { id: String },
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Tell that `id` is degraded, as `record` says (zxid: the health node's write, the same for
    /// every watcher).
    Degraded {
        id: String,
        record: HealthRecord,
        zxid: i64,
        at: SystemTime,
    },
    /// Tell that `id` is healthy again after `lasted`.
    Healthy {
        id: String,
        lasted: Duration,
        zxid: Option<i64>,
        at: SystemTime,
    },
    /// The degradation of `id` ended without a notice (the agent stopped, crashed or lost its
    /// watchdog: that is told, or not, as such): close its record quietly.
    Forget { id: String },
}

/// The degradations told and not yet over, by agent: when each began.
#[derive(Debug, Default)]
pub struct Degradations {
    told: BTreeMap<String, SystemTime>,
}

impl Degradations {
    pub fn new() -> Degradations {
        Degradations::default()
    }

    /// How many agents are degraded now.
    pub fn count(&self) -> usize {
        self.told.len()
    }

    /// Since when `id` is degraded, if it is.
    pub fn since(&self, id: &str) -> Option<SystemTime> {
        self.told.get(id).copied()
    }

    pub fn on_event(&mut self, event: Event) -> Vec<Action> {
        match event {
            Event::Snapshot { told, nodes, wall } => {
                // What the records say was told, and what this watcher decided itself (as a
                // follower, or before its records were written): neither is told again.
                for (id, since) in told {
                    self.told.entry(id).or_insert(since);
                }
                let mut actions = Vec::new();
                let gone: Vec<String> = self
                    .told
                    .keys()
                    .filter(|id| !nodes.contains_key(*id))
                    .cloned()
                    .collect();
                for id in gone {
                    actions.extend(self.node(id, None, wall));
                }
                for (id, record) in nodes {
                    actions.extend(self.node(id, Some(record), wall));
                }
                actions
            }
            Event::Node { id, record, wall } => self.node(id, record, wall),
            Event::Down { id } => match self.told.remove(&id) {
                Some(_) => vec![Action::Forget { id }],
                None => vec![],
            },
        }
    }

    fn node(
        &mut self,
        id: String,
        record: Option<(HealthRecord, i64)>,
        wall: SystemTime,
    ) -> Vec<Action> {
        let told = self.told.get(&id).copied();
        match (record, told) {
            (Some((record, zxid)), None) if record.verdict == Verdict::Degraded => {
                // Since the reading that found it (the watchdog's clock), else since now.
                let at = common::time::parse(&record.at).unwrap_or(wall);
                self.told.insert(id.clone(), at);
                vec![Action::Degraded {
                    id,
                    record,
                    zxid,
                    at,
                }]
            }
            (Some((record, zxid)), Some(since)) if record.verdict == Verdict::Healthy => {
                self.told.remove(&id);
                let at = common::time::parse(&record.at).unwrap_or(wall);
                vec![Action::Healthy {
                    id,
                    lasted: at.duration_since(since).unwrap_or_default(),
                    zxid: Some(zxid),
                    at,
                }]
            }
            (None, Some(_)) => {
                self.told.remove(&id);
                vec![Action::Forget { id }]
            }
            // Degraded and told already (figures change, the degradation is the same), healthy
            // and never told, or no node for an agent never degraded: nothing to say.
            _ => vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::records::HealthReason;
    use std::time::UNIX_EPOCH;

    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_796_000_000 + s)
    }

    fn record(verdict: Verdict, s: u64, pct: u32) -> HealthRecord {
        HealthRecord {
            v: 1,
            at: common::time::format(at(s)),
            verdict,
            reasons: match verdict {
                Verdict::Degraded => vec![HealthReason::ChannelFull {
                    channel: "c1".into(),
                    pct,
                    size: pct as u64 * 10,
                    capacity: 1_000,
                }],
                Verdict::Healthy => vec![],
            },
            channels: Default::default(),
            sinks: Default::default(),
        }
    }

    fn node(id: &str, verdict: Verdict, s: u64, pct: u32) -> Event {
        Event::Node {
            id: id.into(),
            record: Some((record(verdict, s, pct), s as i64)),
            wall: at(s),
        }
    }

    /// What each event leads to, in words: `degraded a1`, `healthy a1 after 40s`, `forget a1`.
    fn said(actions: Vec<Action>) -> Vec<String> {
        actions
            .into_iter()
            .map(|a| match a {
                Action::Degraded { id, .. } => format!("degraded {id}"),
                Action::Healthy { id, lasted, .. } => {
                    format!("healthy {id} after {}", common::time::human(lasted))
                }
                Action::Forget { id } => format!("forget {id}"),
            })
            .collect()
    }

    #[test]
    fn one_degraded_per_degradation_and_one_healthy_with_how_long_it_lasted() {
        use Verdict::{Degraded, Healthy};
        let mut d = Degradations::new();
        let table: Vec<(Event, Vec<&str>)> = vec![
            (node("a1", Healthy, 0, 0), vec![]),
            (node("a1", Degraded, 10, 85), vec!["degraded a1"]),
            // The same degradation, other figures: nothing more.
            (node("a1", Degraded, 20, 94), vec![]),
            (node("a2", Degraded, 25, 90), vec!["degraded a2"]),
            (node("a1", Healthy, 50, 0), vec!["healthy a1 after 40s"]),
            (node("a1", Healthy, 60, 0), vec![]),
            // A new degradation is a new notice.
            (node("a1", Degraded, 70, 99), vec!["degraded a1"]),
            // A down supersedes it: no healthy, its record closed quietly.
            (Event::Down { id: "a1".into() }, vec!["forget a1"]),
            (Event::Down { id: "a1".into() }, vec![]),
            // The node vanishing (agent stopped or gone) ends it quietly too.
            (
                Event::Node {
                    id: "a2".into(),
                    record: None,
                    wall: at(90),
                },
                vec!["forget a2"],
            ),
            (
                Event::Node {
                    id: "a3".into(),
                    record: None,
                    wall: at(90),
                },
                vec![],
            ),
        ];
        for (i, (event, want)) in table.into_iter().enumerate() {
            assert_eq!(said(d.on_event(event.clone())), want, "row {i}: {event:?}");
        }
        assert_eq!(d.count(), 0);
    }

    #[test]
    fn a_new_leader_tells_only_what_changed_since_its_records() {
        use Verdict::{Degraded, Healthy};
        let mut d = Degradations::new();
        let told: BTreeMap<String, SystemTime> = [
            ("still".to_owned(), at(0)),
            ("cleared".to_owned(), at(0)),
            ("gone".to_owned(), at(0)),
        ]
        .into();
        let nodes: BTreeMap<String, (HealthRecord, i64)> = [
            ("still".to_owned(), (record(Degraded, 30, 95), 1)),
            ("cleared".to_owned(), (record(Healthy, 30, 0), 2)),
            ("new".to_owned(), (record(Degraded, 30, 85), 3)),
            ("fine".to_owned(), (record(Healthy, 30, 0), 4)),
        ]
        .into();
        let mut got = said(d.on_event(Event::Snapshot {
            told,
            nodes,
            wall: at(31),
        }));
        got.sort();
        assert_eq!(
            got,
            ["degraded new", "forget gone", "healthy cleared after 30s"]
        );
        assert_eq!(d.since("still"), Some(at(0)));
        assert_eq!(d.count(), 2);
    }
}
