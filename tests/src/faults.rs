//! Fixtures for the fault suite (`tests/tests/faults.rs`): a TCP proxy that cuts one client off
//! ZooKeeper on demand, pipelined bulk writes for thousands of nodes, waiting for a ZooKeeper
//! session to be gone from the server, and checks over the alerts received.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::Value;
use zookeeper_client::{Acls, CreateMode, Error as ZkError};

use crate::pair::Pair;
use crate::receiver::alerts_of;
use crate::wait::poll_until;
use crate::{Proc, Request, ZkProbe};

/// `kill -SIG pid`; panics if it fails.
pub fn signal_pid(pid: i32, sig: Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig)
        .unwrap_or_else(|e| panic!("kill -{sig} {pid}: {e}"));
}

// ---------------------------------------------------------------------------------------------
// A TCP proxy in front of ZooKeeper.

struct ProxyShared {
    blocked: AtomicBool,
    stop: AtomicBool,
    /// Both ends of every proxied connection, to be shut down by `block`.
    conns: Mutex<Vec<TcpStream>>,
}

/// A TCP proxy on 127.0.0.1 in front of one upstream address. [`TcpProxy::block`] cuts every
/// proxied connection and makes new ones fail at once (accepted, then closed) until
/// [`TcpProxy::unblock`]: the clients behind it are disconnected while everyone else still talks
/// to ZooKeeper. Drop stops it and closes everything.
pub struct TcpProxy {
    addr: SocketAddr,
    shared: Arc<ProxyShared>,
    thread: Option<JoinHandle<()>>,
}

impl TcpProxy {
    /// Proxies to `upstream` (`127.0.0.1:PORT`).
    pub fn start(upstream: &str) -> TcpProxy {
        let upstream: SocketAddr = upstream
            .parse()
            .unwrap_or_else(|e| panic!("TcpProxy: upstream {upstream:?} is not an address: {e}"));
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 for the proxy");
        let addr = listener.local_addr().expect("proxy local_addr");
        let shared = Arc::new(ProxyShared {
            blocked: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            conns: Mutex::new(Vec::new()),
        });
        let sh = shared.clone();
        let thread = std::thread::Builder::new()
            .name("tcp-proxy".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if sh.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(down) = conn else { continue };
                    if sh.blocked.load(Ordering::SeqCst) {
                        let _ = down.shutdown(Shutdown::Both);
                        continue;
                    }
                    let Ok(up) = TcpStream::connect_timeout(&upstream, Duration::from_secs(1))
                    else {
                        let _ = down.shutdown(Shutdown::Both);
                        continue;
                    };
                    let _ = down.set_nodelay(true);
                    let _ = up.set_nodelay(true);
                    let (Ok(d2), Ok(u2), Ok(d3), Ok(u3)) = (
                        down.try_clone(),
                        up.try_clone(),
                        down.try_clone(),
                        up.try_clone(),
                    ) else {
                        continue;
                    };
                    sh.conns.lock().unwrap().extend([d3, u3]);
                    pump(down, up);
                    pump(u2, d2);
                }
            })
            .expect("cannot start the proxy thread");
        TcpProxy {
            addr,
            shared,
            thread: Some(thread),
        }
    }

    /// `127.0.0.1:PORT` of the proxy.
    pub fn connect_string(&self) -> String {
        self.addr.to_string()
    }

    /// Cuts every connection through the proxy; new ones are closed at once until `unblock`.
    pub fn block(&self) {
        self.shared.blocked.store(true, Ordering::SeqCst);
        for c in self.shared.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    pub fn unblock(&self) {
        self.shared.blocked.store(false, Ordering::SeqCst);
    }
}

/// Copies `from` → `to` in a thread until either side closes, then closes both.
fn pump(mut from: TcpStream, mut to: TcpStream) {
    let _ = std::thread::Builder::new()
        .name("tcp-proxy-pump".into())
        .spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match from.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = from.shutdown(Shutdown::Both);
            let _ = to.shutdown(Shutdown::Both);
        });
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.block();
        // Wake the accept loop.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Bulk writes, pipelined: every request is sent when its future is made, then all are awaited.

fn mkdir(probe: &ZkProbe, dir: &str) {
    let client = probe.client().clone();
    let dir = dir.to_owned();
    probe
        .block_on(async move {
            client
                .mkdir(&dir, &CreateMode::Persistent.with_acls(Acls::anyone_all()))
                .await
        })
        .or_else(|e| match e {
            ZkError::NodeExists => Ok(()),
            e => Err(e),
        })
        .unwrap_or_else(|e| panic!("bulk mkdir: {e}"));
}

/// Creates every `(path, data)` (all in one parent folder, created if missing), pipelined in
/// chunks of 500. Ephemeral nodes belong to `probe`'s session. Panics on any error.
pub fn create_many(probe: &ZkProbe, nodes: &[(String, Vec<u8>)], ephemeral: bool) {
    if let Some((first, _)) = nodes.first() {
        if let Some(i) = first.rfind('/').filter(|&i| i > 0) {
            mkdir(probe, &first[..i]);
        }
    }
    let mode = if ephemeral {
        CreateMode::Ephemeral
    } else {
        CreateMode::Persistent
    };
    let client = probe.client().clone();
    for chunk in nodes.chunks(500) {
        probe.block_on(async {
            let opts = mode.with_acls(Acls::anyone_all());
            let pending: Vec<_> = chunk
                .iter()
                .map(|(p, d)| (p, client.create(p, d, &opts)))
                .collect();
            for (p, f) in pending {
                if let Err(e) = f.await {
                    panic!("bulk create {p}: {e}");
                }
            }
        });
    }
}

/// Deletes every path (any version), pipelined in chunks of 500; a missing node is fine.
pub fn delete_many(probe: &ZkProbe, paths: &[String]) {
    let client = probe.client().clone();
    for chunk in paths.chunks(500) {
        probe.block_on(async {
            let pending: Vec<_> = chunk.iter().map(|p| (p, client.delete(p, None))).collect();
            for (p, f) in pending {
                match f.await {
                    Ok(()) | Err(ZkError::NoNode) => {}
                    Err(e) => panic!("bulk delete {p}: {e}"),
                }
            }
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Sessions on the server.

/// `0x…` as ZooKeeper prints session ids.
pub fn session_hex(session: i64) -> String {
    format!("0x{:x}", session as u64)
}

/// The session ids of the client connections a server lists in `cons` (`sid=0x…`).
pub fn connected_sessions(cons: &str) -> BTreeSet<String> {
    cons.split(['(', ',', ')'])
        .filter_map(|t| t.trim().strip_prefix("sid="))
        .map(|s| s.to_owned())
        .collect()
}

/// The session ids a server's `dump` lists (live sessions, and sessions holding ephemerals).
pub fn dumped_sessions(dump: &str) -> BTreeSet<String> {
    dump.lines()
        .map(|l| l.trim().trim_end_matches(':'))
        .filter(|l| {
            l.strip_prefix("0x")
                .is_some_and(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit()))
        })
        .map(|l| l.to_owned())
        .collect()
}

/// Waits until every session in `want` is connected again, as `cons` (asked of every server
/// that runs, through `ask`) lists them: the clients came back with their old sessions.
pub fn wait_sessions_connected(
    ask: impl Fn() -> Vec<String>,
    want: &BTreeSet<String>,
    deadline: Instant,
    what: &str,
) {
    let last = RefCell::new(BTreeSet::new());
    poll_until(
        deadline,
        &format!("sessions {want:?} ({what}) to be connected again"),
        || {
            let now: BTreeSet<String> = ask().iter().flat_map(|c| connected_sessions(c)).collect();
            let ok = want.is_subset(&now);
            *last.borrow_mut() = now;
            ok.then_some(())
        },
        || format!("connected now: {:?}", last.borrow()),
    )
}

/// Waits until the server's `dump` (ask the leader in an ensemble) lists none of `gone`: those
/// sessions expired or were closed, and their ephemeral nodes are gone.
pub fn wait_sessions_gone(
    ask: impl Fn() -> Option<String>,
    gone: &BTreeSet<String>,
    deadline: Instant,
    what: &str,
) {
    let last = RefCell::new(String::new());
    poll_until(
        deadline,
        &format!("sessions {gone:?} ({what}) to be gone from the server"),
        || match ask() {
            Some(dump) if dump.contains("Session") => {
                let listed = dumped_sessions(&dump);
                *last.borrow_mut() = dump;
                listed.is_disjoint(gone).then_some(())
            }
            other => {
                *last.borrow_mut() = other.unwrap_or_else(|| "(no answer)".into());
                None
            }
        },
        || last.borrow().clone(),
    )
}

/// Sleeps until `t` (for the duration of a fault, never as synchronisation).
pub fn sleep_until(t: Instant) {
    if let Some(d) = t.checked_duration_since(Instant::now()) {
        std::thread::sleep(d);
    }
}

// ---------------------------------------------------------------------------------------------
// Alerts.

/// Events per agent, in arrival order.
pub fn events_by_agent(alerts: &[Value]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for a in alerts {
        out.entry(a["agent"].as_str().unwrap_or("?").to_owned())
            .or_default()
            .push(a["event"].as_str().unwrap_or("?").to_owned());
    }
    out
}

/// Events per agent, leaving out the agents whose name starts with `sentinel`.
pub fn events_without_sentinels(alerts: &[Value]) -> BTreeMap<String, Vec<String>> {
    let mut m = events_by_agent(alerts);
    m.retain(|k, _| !k.starts_with("sentinel"));
    m
}

/// The webhook requests whose alerts name any agent for which `pick` holds, with their
/// arrival instants.
pub fn messages_naming(reqs: &[Request], pick: impl Fn(&str) -> bool) -> Vec<(Instant, usize)> {
    reqs.iter()
        .filter_map(|r| {
            let n = alerts_of(std::slice::from_ref(r))
                .iter()
                .filter(|a| pick(a["agent"].as_str().unwrap_or("")))
                .count();
            (n > 0).then_some((r.received_at, n))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Timing premises.
//
// A scenario such as "ZooKeeper away for less than the session timeout" tests the product only if
// the fault really was shorter than the session. On a loaded 2-core machine a restarted ZooKeeper
// JVM may take 3.5 s to answer, so with a 2 s session that premise is a cliff edge. These
// scenarios therefore run with [`SHORT_FAULT_SESSION`], measure how long the fault really lasted
// and compare it with the session the server negotiated ([`check_shorter_than_session`]); a run
// whose premise did not hold is retried once with a fresh setup and otherwise called
// inconclusive ([`with_premise`]), never a product failure.

/// The session timeout of the scenarios whose premise is "a fault shorter than the session": long
/// enough that a 1 s fault plus a slow JVM start (3.5 s seen under load) stays well inside half of
/// it. The fixtures' servers allow up to 30 s (`maxSessionTimeout`).
pub const SHORT_FAULT_SESSION: &str = "12s";

/// A client keeps its session through a fault of length `away` if `away` is under half the
/// session timeout `s`: its last reply was at most 3/20 s before the fault (zookeeper-client pings
/// after 3/20 s of silence), and its reconnection attempts come 0, 0.1, 0.3, 0.7, 1.5, 3.1, 6.3 s
/// … after the loss, so it reaches a server back after `away` by 2·away + 0.1 s at the latest:
/// under the server's expiry (s after the last reply, or s after a restart) and under the client's
/// own give-up (7/5 s after the last reply).
pub fn check_shorter_than_session(
    what: &str,
    away: Duration,
    session: Duration,
) -> Result<(), String> {
    let limit = session / 2;
    if away < limit {
        Ok(())
    } else {
        Err(format!(
            "{what} lasted {away:.2?}, not under half the negotiated session timeout \
             {session:.2?} ({limit:.2?})"
        ))
    }
}

/// A client loses its session through a fault of length `away` if `away` is over 7/5 of the
/// session `s` (when zookeeper-client gives its session up after its last reply) plus the 3/20 s
/// that reply may precede the fault, plus `margin` for a loaded machine.
pub fn check_longer_than_session(
    what: &str,
    away: Duration,
    session: Duration,
    margin: Duration,
) -> Result<(), String> {
    let limit = session * 7 / 5 + session * 3 / 20 + margin;
    if away > limit {
        Ok(())
    } else {
        Err(format!(
            "{what} lasted {away:.2?}, not over 7/5 + 3/20 of the negotiated session timeout \
             {session:.2?} plus {margin:.2?} ({limit:.2?})"
        ))
    }
}

/// Runs a timing-based scenario. `attempt` sets up everything afresh, makes the fault, and
/// returns `Err(figures)` as soon as it sees that its premise did not hold (before asserting
/// anything about the product, which that run cannot judge). Such a run is retried once; if the
/// premise fails again this panics with a message starting `inconclusive:`.
pub fn with_premise<T>(scenario: &str, mut attempt: impl FnMut() -> Result<T, String>) -> T {
    let first = match attempt() {
        Ok(v) => return v,
        Err(e) => e,
    };
    eprintln!("FIGURE {scenario}: premise did not hold ({first}); trying again with a fresh setup");
    match attempt() {
        Ok(v) => v,
        Err(second) => panic!(
            "inconclusive: {scenario}: the scenario's timing premise did not hold twice, so this \
             run says nothing about the product; first: {first}; second: {second}"
        ),
    }
}

/// The session timeout the server negotiated for session `hex` (`0x…`), from a `cons` answer
/// (`…sid=0x…,…,to=12000,…`).
pub fn negotiated_timeout(cons: &str, hex: &str) -> Option<Duration> {
    cons.lines().find_map(|l| {
        let fields: Vec<&str> = l.split(['(', ',', ')']).map(str::trim).collect();
        fields
            .iter()
            .any(|f| f.strip_prefix("sid=") == Some(hex))
            .then_some(())?;
        fields
            .iter()
            .find_map(|f| f.strip_prefix("to=")?.parse::<u64>().ok())
            .map(Duration::from_millis)
    })
}

/// Waits until a server (through `cons`, asked of every server that runs) lists session `hex`
/// and returns its negotiated timeout.
pub fn wait_negotiated_timeout(ask: impl Fn() -> Vec<String>, hex: &str, what: &str) -> Duration {
    let last = RefCell::new(Vec::new());
    poll_until(
        crate::deadline(10),
        &format!("a server to list session {hex} ({what}) in `cons`"),
        || {
            let answers = ask();
            let found = answers.iter().find_map(|c| negotiated_timeout(c, hex));
            *last.borrow_mut() = answers;
            found
        },
        || last.borrow().join("\n"),
    )
}

/// The session id a watcher or watchdog logged last (`zookeeper session established
/// session=0x…`), as `0x…`. The log may be coloured (`session` and `=` wrapped in ANSI escapes),
/// so escapes are dropped first.
pub fn logged_session(proc: &Proc) -> Option<String> {
    proc.lines().iter().rev().find_map(|l| {
        let plain = strip_ansi(l);
        if !plain.contains("zookeeper session established") {
            return None;
        }
        let id = plain.split("session=").nth(1)?.split_whitespace().next()?;
        (id.starts_with("0x") && id[2..].chars().all(|c| c.is_ascii_hexdigit()))
            .then(|| id.to_owned())
    })
}

/// `text` without ANSI escape sequences (`ESC [ … letter`).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Starts `pair`'s watcher (webhook to its receiver, as [`Pair::start_watcher`] does) with
/// `--session-timeout session` instead of the scenarios' 2 s, and waits until it is ready.
pub fn start_watcher_with_session(pair: &mut Pair, session: &str) {
    let cmd = pair.watcher_command(session);
    pair.start_watcher_from(cmd);
}

/// A pair whose watcher has `--session-timeout session`.
pub fn start_pair_with_session(connect: &str, root: &str, session: &str) -> Pair {
    let mut pair = Pair::new(connect, root);
    start_watcher_with_session(&mut pair, session);
    pair
}

/// `flume-watchdog run` around a stand-in agent named `id`, as [`Pair::watchdog`] starts it but
/// with `--session-timeout session`.
pub fn watchdog_with_session(pair: &Pair, id: &str, session: &str) -> Proc {
    let mut cmd = crate::pair::watchdog_command(&pair.connect, &pair.root, id, session);
    crate::pair::around_stand_in(&mut cmd, id);
    Proc::spawn(&format!("watchdog {id}"), cmd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_premise_that_fails_twice_is_inconclusive_and_once_is_retried() {
        let mut runs = 0;
        let got = with_premise("retried", || {
            runs += 1;
            if runs == 1 {
                Err("too slow".to_owned())
            } else {
                Ok(runs)
            }
        });
        assert_eq!(got, 2);
        let panic = std::panic::catch_unwind(|| {
            with_premise("never", || -> Result<(), String> { Err("3.5 s".into()) })
        })
        .expect_err("a premise failing twice panics");
        let msg = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(msg.starts_with("inconclusive: never:"), "{msg}");
        assert!(msg.contains("3.5 s"), "{msg}");
    }

    #[test]
    fn premises_against_the_session() {
        let s = Duration::from_secs(12);
        assert!(check_shorter_than_session("x", Duration::from_millis(5900), s).is_ok());
        let e = check_shorter_than_session("x", Duration::from_secs(6), s).unwrap_err();
        assert!(e.starts_with("x lasted 6.00s"), "{e}");
        let two = Duration::from_secs(2);
        assert!(check_longer_than_session("y", Duration::from_secs(5), two, two / 2).is_ok());
        assert!(check_longer_than_session("y", Duration::from_secs(4), two, two / 2).is_err());
    }

    #[test]
    fn negotiated_timeouts_and_logged_sessions_are_read() {
        let cons = " /127.0.0.1:1[1](queued=0,sid=0x10,lop=PING,to=12000,lcxid=0x5)\n \
                    /127.0.0.1:2[1](queued=0,sid=0x100,to=2000)\n";
        assert_eq!(
            negotiated_timeout(cons, "0x10"),
            Some(Duration::from_secs(12))
        );
        assert_eq!(
            negotiated_timeout(cons, "0x100"),
            Some(Duration::from_secs(2))
        );
        assert_eq!(negotiated_timeout(cons, "0x1"), None);
        let coloured = "\u{1b}[2m2026\u{1b}[0m INFO zookeeper session established \
                        \u{1b}[3msession\u{1b}[0m\u{1b}[2m=\u{1b}[0m0x100000e54b80001";
        assert_eq!(
            strip_ansi(coloured),
            "2026 INFO zookeeper session established session=0x100000e54b80001"
        );
    }
}
