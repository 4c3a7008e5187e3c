//! The health check end to end (issue 11): the stand-in agent's Flume metrics, told what to serve
//! through its control path, and the watchdog's health node read back from ZooKeeper.

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{poll_until, Stat, ZkProbe};

/// `-Dflume.monitoring.type=http -Dflume.monitoring.port=N` as one argument, as `JAVA_OPTS`
/// would hold them among other JVM options.
pub fn monitoring_opts(port: u16) -> String {
    format!("-Xmx64m -Dflume.monitoring.type=http -Dflume.monitoring.port={port}")
}

/// Tells the stand-in agent on `port` what to serve (`size=950`, `stall=1&size=100`, `hang=1`,
/// `resume`, or "" to ask only) and returns its state line (`size=… served=N`). The change is made
/// when this returns. Retries until `deadline` while the agent is not listening yet.
pub fn control(port: u16, query: &str, deadline: Instant) -> String {
    let last = RefCell::new(String::new());
    poll_until(
        deadline,
        &format!("the stand-in agent's control path on port {port} (?{query})"),
        || match ask(port, query) {
            Ok(state) => Some(state),
            Err(e) => {
                *last.borrow_mut() = e.to_string();
                None
            }
        },
        || last.borrow().clone(),
    )
}

fn ask(port: u16, query: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET /control?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)?;
    match reply.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.1 200") => Ok(body.to_owned()),
        _ => Err(std::io::Error::other(format!(
            "unexpected reply: {reply:?}"
        ))),
    }
}

/// How many `/metrics` requests the stand-in agent has had (its `served=N`).
pub fn served(port: u16, deadline: Instant) -> u64 {
    let state = control(port, "", deadline);
    state
        .split_whitespace()
        .find_map(|w| w.strip_prefix("served="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no served=N in {state:?}"))
}

/// Waits until the stand-in agent has had `more` further `/metrics` requests: that many polls of
/// the watchdog have happened (a hung request counts when it arrives).
pub fn wait_polls(port: u16, more: u64, deadline: Instant) -> u64 {
    let start = served(port, deadline);
    let seen = Cell::new(start);
    poll_until(
        deadline,
        &format!("{more} more polls of the metrics on port {port} (from {start})"),
        || {
            seen.set(served(port, deadline));
            (seen.get() >= start + more).then_some(seen.get())
        },
        || format!("served={}", seen.get()),
    )
}

/// The health node's JSON and stat, if there is one.
pub fn read(probe: &ZkProbe, path: &str) -> Option<(Value, Stat)> {
    let (data, stat) = probe.get(path)?;
    let value = serde_json::from_slice(&data).unwrap_or_else(|e| {
        panic!(
            "{path} holds no JSON ({e}): {:?}",
            String::from_utf8_lossy(&data)
        )
    });
    Some((value, stat))
}

/// Waits until the health node at `path` satisfies `want` (described by `what`); says what it
/// held last when the deadline passes.
pub fn wait_for(
    probe: &ZkProbe,
    path: &str,
    what: &str,
    deadline: Instant,
    want: impl Fn(&Value) -> bool,
) -> (Value, Stat) {
    let last = RefCell::new(None);
    poll_until(
        deadline,
        &format!("{path}: {what}"),
        || {
            let found = read(probe, path);
            *last.borrow_mut() = found.as_ref().map(|(v, s)| (v.clone(), s.version));
            found.filter(|(v, _)| want(v))
        },
        || match &*last.borrow() {
            Some((v, version)) => format!("{v} (version {version})"),
            None => "no node".to_owned(),
        },
    )
}

/// A degraded verdict with a reason of this `kind` (`channel_full`, `sink_stalled`, …).
pub fn degraded_by(kind: &str) -> impl Fn(&Value) -> bool + '_ {
    move |v| {
        v["verdict"] == "degraded"
            && v["reasons"]
                .as_array()
                .is_some_and(|rs| rs.iter().any(|r| r["kind"] == kind))
    }
}

/// Waits for the first summary of a watchdog that has just started, healthy (its agent answers
/// and is idle): where every health scenario begins.
pub fn wait_first_healthy(probe: &ZkProbe, path: &str) -> (Value, Stat) {
    wait_for(
        probe,
        path,
        "a first, healthy summary",
        crate::deadline(20),
        healthy,
    )
}

pub fn healthy(v: &Value) -> bool {
    v["verdict"] == "healthy" && v.get("reasons").is_none()
}
