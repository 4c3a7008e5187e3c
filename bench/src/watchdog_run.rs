//! One watchdog measured: idle cost supervising `sleep`, child crash → restart and → alert, and
//! the watchdog itself SIGKILLed → alert (found at its session's expiry).

use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::Serialize;

use scenarios::{deadline, poll_until, Receiver, ZkProbe, ZkServer};

use crate::pair::Pair;
use crate::stats::{summary, Summary};
use crate::usage;

#[derive(Debug, Serialize)]
pub struct WatchdogFigures {
    pub pair: &'static str,
    pub idle_rss_kib: u64,
    /// CPU seconds over `idle_window_secs` of idling.
    pub idle_cpu_secs: f64,
    pub idle_window_secs: f64,
    /// Child SIGKILLed → the watchdog says it started the next one.
    pub restart: Summary,
    /// Child SIGKILLed → the `down` received.
    pub crash_alert: Summary,
    /// Watchdog SIGKILLed → the `down` received, against its session timeout.
    pub kill_alert: Summary,
    pub session_timeout_ms: f64,
}

pub struct Plan {
    pub crashes: usize,
    pub kills: usize,
    pub idle: Duration,
    pub session_timeout: Duration,
}

const ID: &str = "wd-1";

pub fn run(pair: &Pair, zk: &ZkServer, plan: &Plan) -> WatchdogFigures {
    eprintln!("== {} watchdog", pair.name());
    let connect = zk.connect_string();
    let root = format!("/bench-wd-{}", pair.name());
    let control = ZkProbe::connect(&connect);
    let receiver = Receiver::start();
    let watcher = pair.watcher(&connect, &root, &receiver.url("/hook"));
    watcher.wait_for_line(pair.ready_line(), deadline(60), "the watcher's first view");
    let live = format!("{root}/live/{ID}");
    let agent = ["sleep", "1000000"];
    let start = || pair.watchdog(&connect, &root, ID, plan.session_timeout, &agent);

    let mut wd = start();
    let mut child = agent_pid(&control, &live, None);
    // Idle: let start-up settle, then take the CPU used over a quiet window.
    std::thread::sleep(Duration::from_secs(2));
    let before = usage::of(wd.pid()).unwrap_or_default();
    std::thread::sleep(plan.idle);
    let after = usage::of(wd.pid()).unwrap_or_default();

    let mut restarts = Vec::new();
    let mut alerts = Vec::new();
    for _ in 0..plan.crashes {
        let mark = wd.mark();
        let from = receiver.count();
        let t = Instant::now();
        let _ = kill(Pid::from_raw(child), Signal::SIGKILL);
        wd.wait_for_line_since(
            mark,
            |l| l.contains(pair.started_line()),
            deadline(10),
            "the restart",
        );
        restarts.push(t.elapsed());
        if let Some(at) = down_after(&receiver, from, Duration::from_secs(10)) {
            alerts.push(at.saturating_duration_since(t));
        }
        child = agent_pid(&control, &live, Some(child));
        settle(pair, &receiver, from);
        if matches!(pair, Pair::Ours) {
            // The outage's bookkeeping (its record noted as delivered, then pruned) is over before
            // the next crash, as it would be between two real crashes.
            control.wait_until_gone(&format!("{root}/outages/{ID}"), deadline(10));
        }
    }

    let mut kills = Vec::new();
    for _ in 0..plan.kills {
        let from = receiver.count();
        let t = Instant::now();
        wd.signal(Signal::SIGKILL);
        if let Some(at) = down_after(
            &receiver,
            from,
            plan.session_timeout * 3 + Duration::from_secs(10),
        ) {
            kills.push(at.saturating_duration_since(t));
        }
        drop(wd); // kills what is left of its process group (the baseline's orphaned child)
        let from = receiver.count();
        wd = start();
        child = agent_pid(&control, &live, Some(child));
        settle(pair, &receiver, from);
    }
    drop(wd);
    drop(watcher);
    WatchdogFigures {
        pair: pair.name(),
        idle_rss_kib: after.rss_kib,
        idle_cpu_secs: after.cpu_secs - before.cpu_secs,
        idle_window_secs: plan.idle.as_secs_f64(),
        restart: summary(&restarts),
        crash_alert: summary(&alerts),
        kill_alert: summary(&kills),
        session_timeout_ms: plan.session_timeout.as_secs_f64() * 1e3,
    }
}

/// The agent pid in the liveness node, once the node names one other than `old`.
fn agent_pid(control: &ZkProbe, live: &str, old: Option<i32>) -> i32 {
    let read = || {
        control
            .get_json(live)
            .and_then(|v| v["agent_pid"].as_i64())
            .map(|p| p as i32)
    };
    poll_until(
        deadline(30),
        &format!("{live} to name a new agent (old {old:?})"),
        || read().filter(|p| Some(*p) != old),
        || format!("agent pid {:?}", read()),
    )
}

fn down_after(receiver: &Receiver, from: usize, within: Duration) -> Option<Instant> {
    let mut at = None;
    receiver.wait_since(from, Instant::now() + within, |fresh| {
        at = at.or_else(|| {
            fresh
                .iter()
                .find(|r| {
                    r.alerts()
                        .iter()
                        .any(|a| a["agent"] == ID && a["event"] == "down")
                })
                .map(|r| r.received_at)
        });
        at.is_some()
    });
    at
}

/// Our watcher reports each outage once: wait for its `recovered` so that the next crash is a new
/// outage. The baseline alerts every removal and has nothing to wait for.
fn settle(pair: &Pair, receiver: &Receiver, from: usize) {
    if matches!(pair, Pair::Ours) {
        let ok = receiver.wait_since(from, deadline(10), |fresh| {
            fresh
                .iter()
                .flat_map(|r| r.alerts())
                .any(|a| a["agent"] == ID && a["event"] == "recovered")
        });
        assert!(ok, "the recovered after a restart");
    }
}
