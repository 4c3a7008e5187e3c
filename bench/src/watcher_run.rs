//! One watcher measured at N agents: time to its first view, single removals, planned stops, and
//! half the agents lost at once; its peak memory and CPU time over all of it.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde::Serialize;

use scenarios::{deadline, Proc, Receiver, ZkProbe, ZkServer};

use crate::pair::Pair;
use crate::population::Population;
use crate::server::{self, ServerFigures};
use crate::stats::{summary, Summary};
use crate::usage;

#[derive(Debug, Serialize)]
pub struct WatcherFigures {
    pub pair: &'static str,
    pub n: usize,
    /// From the process's start to its `ready` line; none if stopped before.
    pub ready_ms: Option<f64>,
    /// Liveness node deleted → its `down` received.
    pub removal: Summary,
    /// Removals whose alert did not come within 10 s.
    pub removal_missed: usize,
    pub stops: usize,
    /// Alerts naming an agent stopped as planned (must be 0); none if stopped before the
    /// sentinel's alert came.
    pub false_alerts: Option<usize>,
    pub mass: usize,
    /// The owning session closed → the last of its agents received (if all were).
    pub mass_all_ms: Option<f64>,
    /// Agents of the lost session not received by the deadline (must be 0); none if stopped
    /// before the deadline.
    pub mass_missing: Option<usize>,
    /// Webhook messages that carried them (so far, if stopped during the loss).
    pub mass_messages: Option<usize>,
    /// A single removal right after the burst was received → its alert: is the watcher still
    /// quick while it notes thousands of deliveries?
    pub after_burst_ms: Option<f64>,
    pub peak_rss_kib: u64,
    /// Resident once it had its first view.
    pub ready_rss_kib: Option<u64>,
    /// Up to the end of the run, or to its stop.
    pub cpu_secs: f64,
    /// The server holding the N agents and this watcher's watches, before the mass loss.
    pub server: Option<ServerFigures>,
    /// Set when the run reached its time limit (`--baseline-limit`) and was stopped there: the
    /// figures not reached by then are none.
    pub stopped: Option<Stopped>,
}

/// Where a run was stopped at its time limit.
#[derive(Debug, Serialize)]
pub struct Stopped {
    /// The limit, from the watcher's start.
    pub limit_s: f64,
    /// What it was doing then, e.g. `waiting for its first view`.
    pub during: String,
}

/// The time limit of one run, from the watcher's start; none: no limit (every wait has its own
/// deadline, as without the limit).
struct Limit {
    limit: Option<Duration>,
    end: Option<Instant>,
}

impl Limit {
    fn new(from: Instant, limit: Option<Duration>) -> Limit {
        Limit {
            limit,
            end: limit.map(|l| from + l),
        }
    }

    /// `deadline`, or the limit if it comes first.
    fn cap(&self, deadline: Instant) -> Instant {
        self.end.map_or(deadline, |end| end.min(deadline))
    }

    /// `Err` once the limit has passed, saying what the run was doing.
    fn check(&self, during: impl FnOnce() -> String) -> Result<(), Stopped> {
        match (self.limit, self.end) {
            (Some(limit), Some(end)) if Instant::now() >= end => Err(Stopped {
                limit_s: limit.as_secs_f64(),
                during: during(),
            }),
            _ => Ok(()),
        }
    }
}

/// Pause after an alert before the next single removal.
const REMOVAL_GAP: Duration = Duration::from_millis(20);

pub struct Plan {
    pub removals: usize,
    pub stops: usize,
    /// How long the mass loss may take before the missing ones are counted.
    pub mass_deadline: Duration,
    /// The baseline's whole run may take this long from its start (`--baseline-limit`); what it
    /// has not reached by then is reported as stopped. Ours has no limit.
    pub baseline_limit: Option<Duration>,
}

pub fn run(pair: &Pair, zk: &ZkServer, n: usize, plan: &Plan) -> WatcherFigures {
    let root = format!("/bench-{}-{n}", pair.name());
    eprintln!("== {} watcher, N = {n}: creating the agents", pair.name());
    let mut pop = Population::create(&zk.connect_string(), &root, n);
    let control = ZkProbe::connect(&zk.connect_string());
    let receiver = Receiver::start();
    assert!(
        pop.pool_ids.len() > plan.removals + plan.stops,
        "N = {n} is too small for {} removals and {} stops",
        plan.removals,
        plan.stops
    );

    let started = Instant::now();
    let limit = match pair {
        Pair::Ours => None,
        Pair::Baseline { .. } => plan.baseline_limit,
    };
    let limit = Limit::new(started, limit);
    let watcher = pair.watcher(&zk.connect_string(), &root, &receiver.url("/hook"));
    let mut f = WatcherFigures {
        pair: pair.name(),
        n,
        ready_ms: None,
        removal: summary(&[]),
        removal_missed: 0,
        stops: plan.stops,
        false_alerts: None,
        mass: pop.mass_ids.len(),
        mass_all_ms: None,
        mass_missing: None,
        mass_messages: None,
        after_burst_ms: None,
        peak_rss_kib: 0,
        ready_rss_kib: None,
        cpu_secs: 0.0,
        server: None,
        stopped: None,
    };
    let run = Run {
        watcher: &watcher,
        ready_line: pair.ready_line(),
        zk,
        control: &control,
        receiver: &receiver,
        plan,
        limit: &limit,
    };
    if let Err(stopped) = run.measure(&mut pop, started, &mut f) {
        eprintln!(
            "== {} watcher, N = {n}: stopped at its limit of {:.0} s, {}",
            pair.name(),
            stopped.limit_s,
            stopped.during
        );
        f.stopped = Some(stopped);
    }

    let used = usage::of(watcher.pid()).unwrap_or_default();
    f.peak_rss_kib = used.peak_kib;
    f.cpu_secs = used.cpu_secs;
    // A graceful stop (a profiler wrapping it writes its output then); dropping kills the rest.
    watcher.signal(nix::sys::signal::Signal::SIGTERM);
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        watcher.wait_exit(deadline(30))
    }));
    drop(watcher);
    f
}

/// One watcher's run, measured step by step into a [`WatcherFigures`].
struct Run<'a> {
    watcher: &'a Proc,
    ready_line: &'static str,
    zk: &'a ZkServer,
    control: &'a ZkProbe,
    receiver: &'a Receiver,
    plan: &'a Plan,
    limit: &'a Limit,
}

impl Run<'_> {
    /// Every measurement in turn; `Err` where the time limit stopped it.
    fn measure(
        &self,
        pop: &mut Population,
        started: Instant,
        f: &mut WatcherFigures,
    ) -> Result<(), Stopped> {
        let (watcher, control, receiver, limit) =
            (self.watcher, self.control, self.receiver, self.limit);
        self.wait_ready()?;
        f.ready_ms = Some(started.elapsed().as_secs_f64() * 1e3);
        f.ready_rss_kib = Some(usage::of(watcher.pid()).unwrap_or_default().rss_kib);

        // Single removals, one at a time: the liveness node goes, the identity node stays.
        let pool_ids = pop.pool_ids.clone();
        let (removed, rest) = pool_ids.split_at(self.plan.removals);
        let (stopped, rest) = rest.split_at(self.plan.stops);
        let sentinel = rest[0].clone();
        let late = rest[1].clone();
        let mut latencies = Vec::new();
        for id in removed {
            limit.check(|| format!("after {} single removals", latencies.len()))?;
            // Removals come one at a time, each measured alone: the previous one's bookkeeping
            // (ours notes the delivery in its outage record) is over, as between two real crashes.
            std::thread::sleep(REMOVAL_GAP);
            let from = receiver.count();
            let t = Instant::now();
            control.delete(&pop.live_path(id));
            let mut at = None;
            receiver.wait_since(
                from,
                limit.cap(Instant::now() + Duration::from_secs(10)),
                |fresh| {
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
                },
            );
            match at {
                Some(at) => latencies.push(at.saturating_duration_since(t)),
                None => {
                    limit.check(|| format!("after {} single removals", latencies.len()))?;
                    f.removal_missed += 1;
                }
            }
            f.removal = summary(&latencies);
        }

        // Planned stops: identity first, then liveness; then a sentinel removal, whose alert comes
        // after the watcher has handled every stop.
        let from = receiver.count();
        for id in stopped {
            control.delete(&pop.identity_path(id));
            control.delete(&pop.live_path(id));
        }
        control.delete(&pop.live_path(&sentinel));
        let sentinel_seen = receiver.wait_since(from, limit.cap(deadline(60)), |fresh| {
            fresh.iter().any(|r| r.agents().contains(&sentinel))
        });
        if !sentinel_seen {
            limit.check(|| "waiting for the alert after the planned stops".to_owned())?;
        }
        assert!(
            sentinel_seen,
            "the sentinel's alert after the planned stops"
        );
        let stopped_set: HashSet<&String> = stopped.iter().collect();
        f.false_alerts = Some(
            receiver
                .since(from)
                .iter()
                .flat_map(|r| r.agents())
                .filter(|agent| stopped_set.contains(agent))
                .count(),
        );

        f.server = Some(server::read(self.zk));
        limit.check(|| "before the mass loss".to_owned())?;

        // Half the agents lost at once.
        let mut waiting: HashSet<String> = pop.mass_ids.iter().cloned().collect();
        let from = receiver.count();
        let t = Instant::now();
        pop.lose_mass();
        let mut last = None;
        receiver.wait_since(
            from,
            limit.cap(Instant::now() + self.plan.mass_deadline),
            |fresh| {
                for r in fresh {
                    for a in r.alerts() {
                        let agent = a["agent"].as_str().unwrap_or_default();
                        if a["event"] == "down" && waiting.remove(agent) {
                            last = Some(r.received_at);
                        }
                    }
                }
                waiting.is_empty()
            },
        );
        f.mass_messages = Some(
            receiver
                .since(from)
                .iter()
                .filter(|r| {
                    r.agents()
                        .iter()
                        .any(|agent| pop.mass_ids.binary_search(agent).is_ok())
                })
                .count(),
        );
        if !waiting.is_empty() {
            limit.check(|| {
                format!(
                    "during the mass loss, {} of {} received",
                    f.mass - waiting.len(),
                    f.mass
                )
            })?;
        }
        f.mass_missing = Some(waiting.len());
        f.mass_all_ms = waiting
            .is_empty()
            .then(|| last.map(|l| l.saturating_duration_since(t).as_secs_f64() * 1e3))
            .flatten();

        let from = receiver.count();
        let t = Instant::now();
        control.delete(&pop.live_path(&late));
        let mut after_burst = None;
        receiver.wait_since(from, limit.cap(deadline(60)), |fresh| {
            after_burst = after_burst.or_else(|| {
                fresh
                    .iter()
                    .find(|r| r.agents().contains(&late))
                    .map(|r| r.received_at.saturating_duration_since(t))
            });
            after_burst.is_some()
        });
        f.after_burst_ms = after_burst.map(|d| d.as_secs_f64() * 1e3);
        if after_burst.is_none() {
            limit.check(|| "waiting for the removal after the mass loss".to_owned())?;
        }
        Ok(())
    }

    /// Waits for the watcher's first full view: 120 s at most, as without a limit, or the limit.
    fn wait_ready(&self) -> Result<(), Stopped> {
        if self.limit.limit.is_none() {
            self.watcher
                .wait_for_line(self.ready_line, deadline(120), "the watcher's first view");
            return Ok(());
        }
        let until = self.limit.cap(deadline(120));
        // Polled, not awaited: waiting for a line panics at its deadline.
        while self.watcher.count_lines(self.ready_line) == 0 {
            self.limit
                .check(|| "waiting for its first view".to_owned())?;
            assert!(
                Instant::now() < until && self.watcher.is_running(),
                "the watcher's first view (a line containing {:?}) did not come; last output:\n{}",
                self.ready_line,
                self.watcher.output()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(())
    }
}
