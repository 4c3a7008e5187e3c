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

use crate::receiver::alerts_of;
use crate::wait::poll_until;
use crate::{Request, ZkProbe};

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
