//! After a ZooKeeper outage: N real watchdogs (`flume-watchdog run` around the stand-in agent)
//! registered, ZooKeeper stopped for longer than their sessions last, then started again on the
//! same data and port. Measured: how long until every watchdog registered again (its liveness node
//! exists, owned by a new session), and the rate of connection requests the server saw meanwhile.
//!
//! The jitter of the reconnect schedules (`common::session::Backoff`) is what this watches: without
//! it the watchdogs, which all lost their sessions at the same moment, knock again in lockstep.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use scenarios::faults::sleep_until;
use scenarios::{bin, poll_until, stand_in_agent, Proc, ZkProbe, ZkServer};

use crate::stats::{summary, Summary};

pub struct Plan {
    /// Watchdogs started (each with one stand-in agent).
    pub n: usize,
    /// Asked by every watchdog (`--session-timeout`).
    pub session_timeout: Duration,
    /// ZooKeeper down this long: above 7/5 of the session timeout, when the client library
    /// declares its own session expired, so every watchdog must open a new session.
    pub pause: Duration,
    /// The watchdog binary (another build, e.g. one without jitter, for a comparison).
    pub watchdog_bin: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
pub struct ReconnectFigures {
    pub n: usize,
    pub watchdog_bin: String,
    pub session_timeout_ms: f64,
    /// Stopped → answering again (the pause, then the JVM's start and the data's load).
    pub pause_ms: f64,
    /// How much later than `mntr` the fixture's `srvr` poll saw the server answer.
    pub srvr_late_ms: f64,
    /// Start of the N processes → every liveness node there.
    pub first_registration_ms: f64,
    /// ZooKeeper answering again → each liveness node created by a new session (its
    /// `ctime`, the server's clock, which is this machine's: the probe's polling adds nothing).
    pub reregistered: Summary,
    /// Connection requests (`zk_connection_request_count` of `mntr`) per second, the highest over
    /// the sampling windows (about 100 ms each) from the restart until all registered again.
    pub peak_connect_rate_per_s: f64,
    /// The highest count in one window, and that window's length.
    pub peak_window_requests: u64,
    pub peak_window_ms: f64,
    /// All connection requests from the restart until all registered again.
    pub connect_requests: u64,
    /// Requests per window (its start in ms since ZooKeeper answered again; the first one starts
    /// before, at the last unanswered sample), from the restart on: one burst or a spread.
    pub windows: Vec<(f64, u64)>,
}

/// How often the server's counters are read.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

pub fn run(zk: &mut ZkServer, plan: &Plan) -> ReconnectFigures {
    eprintln!("== reconnect: {} watchdogs", plan.n);
    allow_many_connections(zk);
    let connect = zk.connect_string();
    let root = "/bench-reconnect";
    let live_dir = format!("{root}/live");
    let ids: Vec<String> = (0..plan.n).map(|i| format!("wd-{i:04}")).collect();
    let program = plan
        .watchdog_bin
        .clone()
        .unwrap_or_else(|| bin("flume-watchdog"));

    let started = Instant::now();
    let watchdogs: Vec<Proc> = ids
        .iter()
        .map(|id| watchdog(&program, &connect, root, id, plan.session_timeout))
        .collect();
    let old = {
        let probe = ZkProbe::connect(&connect);
        let owners = wait_owned(
            &probe,
            &live_dir,
            &ids,
            &HashSet::new(),
            started + Duration::from_secs(120),
            "every watchdog's first registration",
        );
        owners
            .into_iter()
            .map(|(_, (owner, _, _))| owner)
            .collect::<HashSet<i64>>()
    };
    let first_registration = started.elapsed();
    eprintln!(
        "all {} registered in {first_registration:.1?}; stopping zookeeper for {:?}",
        plan.n, plan.pause
    );

    // The sampler reads `mntr` from the stop on: the first answer after the restart is the
    // counter since the JVM started (it starts at 0).
    let stop_sampling = Arc::new(AtomicBool::new(false));
    let sampler = {
        let port = zk.port();
        let stop = stop_sampling.clone();
        std::thread::spawn(move || sample_requests(port, &stop))
    };
    zk.stop();
    let stopped = Instant::now();
    // The outage itself: its length is the measurement's premise, nothing to wait for.
    sleep_until(stopped + plan.pause);
    zk.start_again();
    let answering = Instant::now();
    let answering_wall = SystemTime::now();
    eprintln!(
        "zookeeper answers again after {:.1?} down",
        answering - stopped
    );
    let probe = ZkProbe::connect_with_session_timeout(&connect, Duration::from_secs(10));
    let again = wait_owned(
        &probe,
        &live_dir,
        &ids,
        &old,
        answering + Duration::from_secs(120),
        "every watchdog to register again with a new session",
    );
    drop(probe);
    stop_sampling.store(true, Ordering::Relaxed);
    let samples = sampler.join().expect("the mntr sampler");
    let last = again
        .values()
        .map(|(_, _, at)| *at)
        .max()
        .unwrap_or(answering);
    // ZooKeeper answers again at the first answer seen, to `srvr` (polled every 25 ms by the
    // fixture) or to the sampler's `mntr`: under a burst of reconnections `srvr` can come late.
    let up = first_answer(&samples).map_or(answering, |at| at.min(answering));
    let up_wall = answering_wall - (answering - up);
    let since_epoch = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap_or_default();
    // A node created before then (the samples are 100 ms apart) counts as at once.
    let times: Vec<Duration> = again
        .values()
        .map(|(_, ctime, _)| {
            Duration::from_millis(*ctime as u64).saturating_sub(since_epoch(up_wall))
        })
        .collect();
    let windows = windows(&samples, up, last);
    drop(watchdogs); // SIGKILLs each watchdog's process group (its stand-in agent too)
    let peak = windows
        .iter()
        .copied()
        .max_by(|a, b| rate(a).total_cmp(&rate(b)))
        .unwrap_or((SAMPLE_EVERY, 0, 0.0));
    ReconnectFigures {
        n: plan.n,
        watchdog_bin: program.display().to_string(),
        session_timeout_ms: ms(plan.session_timeout),
        pause_ms: ms(up - stopped),
        srvr_late_ms: ms(answering - up),
        first_registration_ms: ms(first_registration),
        reregistered: summary(&times),
        peak_connect_rate_per_s: rate(&peak),
        peak_window_requests: peak.1,
        peak_window_ms: ms(peak.0),
        connect_requests: windows.iter().map(|w| w.1).sum(),
        windows: windows.iter().map(|w| (w.2, w.1)).collect(),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Requests per second of a window (length, requests, start in ms since the restart).
fn rate(w: &(Duration, u64, f64)) -> f64 {
    w.1 as f64 / w.0.as_secs_f64().max(1e-3)
}

/// ZooKeeper accepts 60 connections from one address by default (`maxClientCnxns`), and here
/// every watchdog comes from 127.0.0.1: lift the limit (the fixture takes no extra settings, so
/// it is written into the server's zoo.cfg and the server started again on it).
fn allow_many_connections(zk: &mut ZkServer) {
    let cfg = zk
        .data_dir()
        .parent()
        .expect("the server's directory")
        .join("zoo.cfg");
    let text = std::fs::read_to_string(&cfg).expect("read zoo.cfg");
    zk.stop();
    std::fs::write(&cfg, format!("{text}maxClientCnxns=0\n")).expect("write zoo.cfg");
    zk.start_again();
}

/// One real watchdog, as cheap as it gets: warnings only in its log, its agent the stand-in.
fn watchdog(program: &PathBuf, connect: &str, root: &str, id: &str, session: Duration) -> Proc {
    let mut cmd = Command::new(program);
    cmd.args(["run", "--zk", connect, "--root", root, "--id", id])
        .arg("--session-timeout")
        .arg(format!("{}ms", session.as_millis()))
        .env("FLUME_WATCHDOG_LOG", "warn,zookeeper_client=error")
        .arg("--")
        .arg(stand_in_agent())
        .args(["agent", "-n", id, "-c", "conf", "-f", "conf/flume.conf"]);
    Proc::spawn(&format!("watchdog {id}"), cmd)
}

/// Waits until every id's liveness node exists owned by a session not in `old`; returns each one's
/// owner, creation time (`ctime`, ms since the epoch) and the moment it was first seen so. Polls every 20 ms (a list, then the owners of the
/// nodes not yet seen, pipelined); panics at `deadline` naming what is missing.
fn wait_owned(
    probe: &ZkProbe,
    dir: &str,
    ids: &[String],
    old: &HashSet<i64>,
    deadline: Instant,
    what: &str,
) -> BTreeMap<String, (i64, i64, Instant)> {
    let seen: RefCell<BTreeMap<String, (i64, i64, Instant)>> = RefCell::default();
    let stale: RefCell<HashMap<String, i64>> = RefCell::default();
    let client = probe.client().clone();
    poll_until(
        deadline,
        what,
        || {
            let mut seen = seen.borrow_mut();
            let mut stale = stale.borrow_mut();
            let todo: Vec<&String> = ids.iter().filter(|id| !seen.contains_key(*id)).collect();
            let stats = probe.block_on(async {
                let pending: Vec<_> = todo
                    .iter()
                    .map(|id| (*id, client.check_stat(&format!("{dir}/{id}"))))
                    .collect();
                let mut out = Vec::new();
                for (id, f) in pending {
                    // A connection loss while the server is busy: asked again on the next poll.
                    if let Ok(Some(stat)) = f.await {
                        out.push((id.clone(), stat.ephemeral_owner, stat.ctime));
                    }
                }
                out
            });
            let now = Instant::now();
            for (id, owner, ctime) in stats {
                if old.contains(&owner) {
                    stale.insert(id, owner);
                } else {
                    stale.remove(&id);
                    seen.insert(id, (owner, ctime, now));
                }
            }
            (seen.len() == ids.len()).then(|| seen.clone())
        },
        || {
            let (seen, stale) = (seen.borrow(), stale.borrow());
            let missing: Vec<&String> = ids.iter().filter(|id| !seen.contains_key(*id)).collect();
            format!(
                "{} of {} registered; {} missing, e.g. {:?}; {} still owned by an old session",
                seen.len(),
                ids.len(),
                missing.len(),
                &missing[..missing.len().min(5)],
                stale.len()
            )
        },
    )
}

/// `(when, zk_connection_request_count)` every [`SAMPLE_EVERY`] while the server answers, until
/// `stop`; a `None` count marks a sample the server did not answer (it was down).
fn sample_requests(port: u16, stop: &AtomicBool) -> Vec<(Instant, Option<u64>)> {
    let mut samples = Vec::new();
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let count = connection_requests(port);
        samples.push((Instant::now(), count));
        next += SAMPLE_EVERY;
        // A fixed sampling period, not a wait for an event.
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    // One after the stop, so that the requests since the last one are counted.
    samples.push((Instant::now(), connection_requests(port)));
    samples
}

/// `zk_connection_request_count` of the server's `mntr`; None if it does not answer.
fn connection_requests(port: u16) -> Option<u64> {
    scenarios::zk::four_letter_word(port, "mntr").and_then(|m| {
        m.lines().find_map(|l| {
            l.strip_prefix("zk_connection_request_count")?
                .trim()
                .parse()
                .ok()
        })
    })
}

/// When the server first answered `mntr` after it went down.
fn first_answer(samples: &[(Instant, Option<u64>)]) -> Option<Instant> {
    let down = samples.iter().position(|(_, c)| c.is_none())?;
    samples[down..]
        .iter()
        .find_map(|(at, c)| c.is_some().then_some(*at))
}

/// The windows between samples after the restart, up to the first sample after `until`:
/// (length, requests, start in ms since `restart`, negative before it). The first window starts at the last sample the
/// server did not answer (it began listening somewhere in it), so its rate is a lower bound. A
/// window shorter than half the period (a late sample, then a quick one) joins the next, so that a
/// few requests in a sliver do not read as a peak rate.
fn windows(
    samples: &[(Instant, Option<u64>)],
    restart: Instant,
    until: Instant,
) -> Vec<(Duration, u64, f64)> {
    let Some(down) = samples.iter().position(|(_, c)| c.is_none()) else {
        return Vec::new();
    };
    let Some(up) = samples[down..]
        .iter()
        .position(|(_, c)| c.is_some())
        .map(|i| down + i)
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut prev = (samples[up - 1].0, 0u64);
    for &(at, count) in &samples[up..] {
        let Some(count) = count else { continue };
        if at - prev.0 < SAMPLE_EVERY / 2 && at <= until {
            continue;
        }
        out.push((
            at - prev.0,
            count.saturating_sub(prev.1),
            if prev.0 >= restart {
                ms(prev.0 - restart)
            } else {
                -ms(restart - prev.0)
            },
        ));
        prev = (at, count);
        if at > until {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_start_at_the_last_unanswered_sample_and_merge_slivers() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let samples = [
            (at(0), Some(7)), // before the stop: the old JVM's counter
            (at(100), None),
            (at(200), None),
            (at(300), Some(40)), // the new JVM's counter, from 0
            (at(320), Some(45)), // a sliver after a late sample: joins the next
            (at(400), Some(90)),
            (at(500), None), // a busy server: the next window spans it
            (at(600), Some(100)),
            (at(700), Some(101)),
        ];
        let restart = at(250);
        assert_eq!(first_answer(&samples), Some(at(300)));
        let w = windows(&samples, restart, at(550));
        let got: Vec<(u64, u64, f64)> = w
            .iter()
            .map(|(len, n, start)| (len.as_millis() as u64, *n, *start))
            .collect();
        assert_eq!(
            got,
            [(100, 40, -50.0), (100, 50, 50.0), (200, 10, 150.0)],
            "the window after `until` closes the list"
        );
        assert_eq!(rate(&w[1]), 500.0);
    }
}
