//! What the watcher knows about itself, published for the HTTP listener: whether it sees
//! (a working ZooKeeper session and a full view), whether it leads, how many outages it saw open,
//! and what its channels did with their alerts.
//!
//! The watch loop and the channel tasks write here with short, non-blocking critical sections
//! (a `std` mutex never held across an `await`); the listener only reads. So a slow or stuck HTTP
//! client can never hold alerting up: at worst it waits for a copy of a few numbers.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::alert::{Alert, AlertKind};
use crate::notify::Settlement;

/// Upper bounds (seconds) of the delivery latency histogram: from a few milliseconds (a webhook
/// on the same network) to minutes (a robot's spacing, retries with backoff).
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// How the watcher sees ZooKeeper, as the watch loop last said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sight {
    /// Its session is connected (not cut off since the last listing).
    pub connected: bool,
    /// It holds the leader latch: it records and delivers.
    pub leading: bool,
    /// `None` while it has a working session and a full view; otherwise since when it has not
    /// (from its start until the first full view, too). The dead-man switch's own notion.
    pub blind_since: Option<SystemTime>,
    /// It has had a full view at least once since it started.
    pub viewed: bool,
}

/// A histogram of delivery latencies: counts per bucket of [`LATENCY_BUCKETS`] (not cumulative;
/// the encoder adds them up), and the rest past the last bound.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Latency {
    pub buckets: [u64; LATENCY_BUCKETS.len()],
    pub count: u64,
    pub sum: f64,
}

impl Latency {
    pub fn observe(&mut self, seconds: f64) {
        let seconds = seconds.max(0.0);
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| seconds <= *b) {
            self.buckets[i] += 1;
        }
        self.count += 1;
        self.sum += seconds;
    }
}

/// The last settlement of one channel, for the status page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastResult {
    pub at: SystemTime,
    pub delivered: bool,
    pub alerts: usize,
    pub event: &'static str,
}

/// Counters per channel and event, latencies per channel, and each channel's last result.
#[derive(Clone, Debug, Default)]
pub struct Deliveries {
    /// `(channel, event)` → (alerts delivered, alerts refused for good).
    pub counts: BTreeMap<(String, &'static str), (u64, u64)>,
    pub latency: BTreeMap<String, Latency>,
    pub last: BTreeMap<String, LastResult>,
}

#[derive(Debug)]
struct Inner {
    sight: Mutex<Sight>,
    outages_opened: AtomicU64,
    /// Agents whose outage this watcher saw open (a `down`, or a `failed` with no `down` before
    /// it), until their `recovered`: a `failed` within an open outage opens none.
    open: Mutex<HashSet<String>>,
    deliveries: Mutex<Deliveries>,
}

/// Shared between the watch loop, the channels (through [`Board::observer`]) and the listener.
/// Cheap to clone.
#[derive(Clone, Debug)]
pub struct Board {
    inner: Arc<Inner>,
}

impl Default for Board {
    fn default() -> Board {
        Board::new(SystemTime::now())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Board {
    /// A board of a watcher started at `started`: blind (no view yet) since then.
    pub fn new(started: SystemTime) -> Board {
        Board {
            inner: Arc::new(Inner {
                sight: Mutex::new(Sight {
                    connected: false,
                    leading: false,
                    blind_since: Some(started),
                    viewed: false,
                }),
                outages_opened: AtomicU64::new(0),
                open: Mutex::default(),
                deliveries: Mutex::default(),
            }),
        }
    }

    /// The watch loop's view of itself; called whenever it may have changed.
    pub fn saw(&self, connected: bool, leading: bool, blind_since: Option<SystemTime>) {
        let mut sight = lock(&self.inner.sight);
        sight.connected = connected;
        sight.leading = leading;
        sight.viewed |= blind_since.is_none();
        sight.blind_since = blind_since;
    }

    pub fn sight(&self) -> Sight {
        lock(&self.inner.sight).clone()
    }

    /// Alerts the monitor decided (every watcher decides alike, leader or not): counts the
    /// outages they open.
    pub fn decided(&self, alerts: &[Alert]) {
        if alerts.is_empty() {
            return;
        }
        let mut open = lock(&self.inner.open);
        for alert in alerts {
            let opened = match alert.event {
                AlertKind::Down => {
                    open.insert(alert.agent.clone());
                    true
                }
                AlertKind::Failed => open.insert(alert.agent.clone()),
                AlertKind::Recovered => {
                    open.remove(&alert.agent);
                    false
                }
                _ => false,
            };
            if opened {
                self.inner.outages_opened.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub fn outages_opened(&self) -> u64 {
        self.inner.outages_opened.load(Ordering::Relaxed)
    }

    /// What a channel did with a message: counted per event, and for delivered alerts the time
    /// from each alert's `at` (when its transition happened) to the delivery.
    pub fn settled(&self, s: &Settlement<'_>) {
        let mut d = lock(&self.inner.deliveries);
        for alert in s.alerts {
            let event = alert.event.as_str();
            let entry = d.counts.entry((s.channel.to_owned(), event)).or_default();
            if s.delivered {
                entry.0 += 1;
                let seconds = s
                    .done
                    .duration_since(alert.at)
                    .map(|d| d.as_secs_f64())
                    .unwrap_or(0.0);
                d.latency
                    .entry(s.channel.to_owned())
                    .or_default()
                    .observe(seconds);
            } else {
                entry.1 += 1;
            }
        }
        if let Some(first) = s.alerts.first() {
            d.last.insert(
                s.channel.to_owned(),
                LastResult {
                    at: s.done,
                    delivered: s.delivered,
                    alerts: s.alerts.len(),
                    event: first.event.as_str(),
                },
            );
        }
    }

    /// The observer to give [`crate::notify::Notifier::observe`].
    pub fn observer(&self) -> crate::notify::Observer {
        let board = self.clone();
        Arc::new(move |s: &Settlement<'_>| board.settled(s))
    }

    pub fn deliveries(&self) -> Deliveries {
        lock(&self.inner.deliveries).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn alert(agent: &str, event: AlertKind, at: SystemTime) -> Alert {
        Alert {
            crashes: 1,
            ..Alert::new(event, agent, String::new(), at)
        }
    }

    #[test]
    fn outages_are_counted_once_each() {
        let b = Board::default();
        let t = SystemTime::now();
        b.decided(&[alert("a", AlertKind::Down, t)]);
        // The watchdog gave up while the agent was down: the same outage.
        b.decided(&[alert("a", AlertKind::Failed, t)]);
        assert_eq!(b.outages_opened(), 1);
        // Failed at once (never live): an outage of its own.
        b.decided(&[alert("b", AlertKind::Failed, t)]);
        assert_eq!(b.outages_opened(), 2);
        b.decided(&[alert("a", AlertKind::Recovered, t)]);
        b.decided(&[
            alert("a", AlertKind::Down, t),
            alert("w", AlertKind::Blind, t),
        ]);
        assert_eq!(b.outages_opened(), 3);
    }

    #[test]
    fn settlements_count_per_event_and_time_deliveries() {
        let b = Board::default();
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let alerts = [
            alert("a", AlertKind::Down, at),
            alert("b", AlertKind::Down, at),
        ];
        b.settled(&Settlement {
            channel: "ops",
            alerts: &alerts,
            delivered: true,
            done: at + Duration::from_millis(30),
        });
        b.settled(&Settlement {
            channel: "ops",
            alerts: &alerts[..1],
            delivered: false,
            done: at + Duration::from_secs(1),
        });
        let d = b.deliveries();
        assert_eq!(d.counts[&("ops".to_owned(), "down")], (2, 1));
        let l = &d.latency["ops"];
        assert_eq!(
            (l.count, l.buckets[3]),
            (2, 2),
            "two in the 25–50 ms bucket"
        );
        assert!((l.sum - 0.06).abs() < 1e-9, "{}", l.sum);
        assert!(!d.last["ops"].delivered);
    }
}
