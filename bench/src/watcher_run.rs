//! One watcher measured at N agents: time to its first view, single removals, planned stops, and
//! half the agents lost at once; its peak memory and CPU time over all of it.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde::Serialize;

use scenarios::{deadline, Receiver, ZkProbe, ZkServer};

use crate::pair::Pair;
use crate::population::Population;
use crate::server::{self, ServerFigures};
use crate::stats::{summary, Summary};
use crate::usage;

#[derive(Debug, Serialize)]
pub struct WatcherFigures {
    pub pair: &'static str,
    pub n: usize,
    /// From the process's start to its `ready` line.
    pub ready_ms: f64,
    /// Liveness node deleted → its `down` received.
    pub removal: Summary,
    /// Removals whose alert did not come within 10 s.
    pub removal_missed: usize,
    pub stops: usize,
    /// Alerts naming an agent stopped as planned (must be 0).
    pub false_alerts: usize,
    pub mass: usize,
    /// The owning session closed → the last of its agents received (if all were).
    pub mass_all_ms: Option<f64>,
    /// Agents of the lost session not received by the deadline (must be 0).
    pub mass_missing: usize,
    /// Webhook messages that carried them.
    pub mass_messages: usize,
    /// A single removal right after the burst was received → its alert: is the watcher still
    /// quick while it notes thousands of deliveries?
    pub after_burst_ms: Option<f64>,
    pub peak_rss_kib: u64,
    /// Resident once it had its first view.
    pub ready_rss_kib: u64,
    pub cpu_secs: f64,
    /// The server holding the N agents and this watcher's watches, before the mass loss.
    pub server: ServerFigures,
}

/// Pause after an alert before the next single removal.
const REMOVAL_GAP: Duration = Duration::from_millis(20);

pub struct Plan {
    pub removals: usize,
    pub stops: usize,
    /// How long the mass loss may take before the missing ones are counted.
    pub mass_deadline: Duration,
}

pub fn run(pair: &Pair, zk: &ZkServer, n: usize, plan: &Plan) -> WatcherFigures {
    let root = format!("/bench-{}-{n}", pair.name());
    eprintln!("== {} watcher, N = {n}: creating the agents", pair.name());
    let mut pop = Population::create(&zk.connect_string(), &root, n);
    let control = ZkProbe::connect(&zk.connect_string());
    let receiver = Receiver::start();

    let started = Instant::now();
    let watcher = pair.watcher(&zk.connect_string(), &root, &receiver.url("/hook"));
    watcher.wait_for_line(pair.ready_line(), deadline(120), "the watcher's first view");
    let ready = started.elapsed();
    let ready_rss = usage::of(watcher.pid()).unwrap_or_default().rss_kib;

    // Single removals, one at a time: the liveness node goes, the identity node stays.
    assert!(
        pop.pool_ids.len() > plan.removals + plan.stops,
        "N = {n} is too small for {} removals and {} stops",
        plan.removals,
        plan.stops
    );
    let pool_ids = pop.pool_ids.clone();
    let (removed, rest) = pool_ids.split_at(plan.removals);
    let (stopped, rest) = rest.split_at(plan.stops);
    let sentinel = rest[0].clone();
    let late = rest[1].clone();
    let mut latencies = Vec::new();
    let mut missed = 0;
    for id in removed {
        // Removals come one at a time, each measured alone: the previous one's bookkeeping (ours
        // notes the delivery in its outage record) is over, as between two real crashes.
        std::thread::sleep(REMOVAL_GAP);
        let from = receiver.count();
        let t = Instant::now();
        control.delete(&pop.live_path(id));
        let mut at = None;
        receiver.wait_since(from, Instant::now() + Duration::from_secs(10), |fresh| {
            at = at.or_else(|| {
                fresh
                    .iter()
                    .find(|r| {
                        r.alerts()
                            .iter()
                            .any(|a| a["agent"] == *id && a["event"] == "down")
                    })
                    .map(|r| r.received_at)
            });
            at.is_some()
        });
        match at {
            Some(at) => latencies.push(at.saturating_duration_since(t)),
            None => missed += 1,
        }
    }

    // Planned stops: identity first, then liveness; then a sentinel removal, whose alert comes
    // after the watcher has handled every stop.
    let from = receiver.count();
    for id in stopped {
        control.delete(&pop.identity_path(id));
        control.delete(&pop.live_path(id));
    }
    control.delete(&pop.live_path(&sentinel));
    let sentinel_seen = receiver.wait_since(from, deadline(60), |fresh| {
        fresh.iter().any(|r| r.agents().contains(&sentinel))
    });
    assert!(
        sentinel_seen,
        "the sentinel's alert after the planned stops"
    );
    let stopped_set: HashSet<&String> = stopped.iter().collect();
    let false_alerts = receiver
        .since(from)
        .iter()
        .flat_map(|r| r.agents())
        .filter(|agent| stopped_set.contains(agent))
        .count();

    let server = server::read(zk);

    // Half the agents lost at once.
    let mut waiting: HashSet<String> = pop.mass_ids.iter().cloned().collect();
    let mass = waiting.len();
    let from = receiver.count();
    let t = Instant::now();
    pop.lose_mass();
    let mut last = None;
    receiver.wait_since(from, Instant::now() + plan.mass_deadline, |fresh| {
        for r in fresh {
            for a in r.alerts() {
                let agent = a["agent"].as_str().unwrap_or_default();
                if a["event"] == "down" && waiting.remove(agent) {
                    last = Some(r.received_at);
                }
            }
        }
        waiting.is_empty()
    });
    let mass_messages = receiver
        .since(from)
        .iter()
        .filter(|r| {
            r.agents()
                .iter()
                .any(|agent| pop.mass_ids.binary_search(agent).is_ok())
        })
        .count();
    let mass_all = waiting
        .is_empty()
        .then(|| last.map(|l| l.saturating_duration_since(t)))
        .flatten();

    let from = receiver.count();
    let t = Instant::now();
    control.delete(&pop.live_path(&late));
    let mut after_burst = None;
    receiver.wait_since(from, deadline(60), |fresh| {
        after_burst = after_burst.or_else(|| {
            fresh
                .iter()
                .find(|r| r.agents().contains(&late))
                .map(|r| r.received_at.saturating_duration_since(t))
        });
        after_burst.is_some()
    });

    let used = usage::of(watcher.pid()).unwrap_or_default();
    // A graceful stop (a profiler wrapping it writes its output then); dropping kills the rest.
    watcher.signal(nix::sys::signal::Signal::SIGTERM);
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        watcher.wait_exit(deadline(30))
    }));
    drop(watcher);
    WatcherFigures {
        pair: pair.name(),
        n,
        ready_ms: ready.as_secs_f64() * 1e3,
        removal: summary(&latencies),
        removal_missed: missed,
        stops: stopped.len(),
        false_alerts,
        mass,
        mass_all_ms: mass_all.map(|d| d.as_secs_f64() * 1e3),
        mass_missing: waiting.len(),
        mass_messages,
        after_burst_ms: after_burst.map(|d| d.as_secs_f64() * 1e3),
        peak_rss_kib: used.peak_kib,
        ready_rss_kib: ready_rss,
        cpu_secs: used.cpu_secs,
        server,
    }
}
