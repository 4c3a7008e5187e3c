//! What the binaries tell systemd, read as systemd reads it: a datagram socket named by
//! `NOTIFY_SOCKET`, and `WATCHDOG_USEC` asking for pings. No systemd is needed to check the
//! protocol: the test is the service manager.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use scenarios::pair::{around_stand_in, watchdog_command, Pair};
use scenarios::{bin, deadline, unique_root, Proc, TempDir, ZkServer};

/// The service manager's end: every datagram received, in order.
struct Manager {
    socket: UnixDatagram,
    got: Vec<String>,
}

impl Manager {
    fn bind(dir: &Path) -> Manager {
        let socket = UnixDatagram::bind(dir.join("notify.sock")).expect("bind the notify socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        Manager {
            socket,
            got: Vec::new(),
        }
    }

    fn path(&self) -> String {
        self.socket
            .local_addr()
            .ok()
            .and_then(|a| a.as_pathname().map(|p| p.display().to_string()))
            .expect("a path")
    }

    /// Reads until a datagram has a line `line_starts`, or fails at `until` saying what came.
    fn wait_for(&mut self, line_starts: &str, until: Instant, what: &str) -> String {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(found) = self
                .got
                .iter()
                .find(|d| d.lines().any(|l| l.starts_with(line_starts)))
            {
                return found.clone();
            }
            assert!(
                Instant::now() < until,
                "waited for {what} ({line_starts:?}); got {:?}",
                self.got
            );
            if let Ok(n) = self.socket.recv(&mut buf) {
                self.got
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
    }

    fn count(&self, line: &str) -> usize {
        self.got
            .iter()
            .filter(|d| d.lines().any(|l| l == line))
            .count()
    }
}

#[test]
fn the_watcher_is_ready_after_its_first_full_view_pings_from_its_loop_and_says_when_it_stops() {
    let dir = TempDir::new("notify-watcher");
    let mut manager = Manager::bind(dir.path());
    let zk = ZkServer::shared();
    let pair = Pair::new(&zk.connect_string(), &unique_root("notify_watcher"));
    let watcher = Proc::spawn(
        "watcher",
        as_a_service(pair.watcher_command("10s"), &manager, Some("500000")),
    );
    let ready = manager.wait_for("READY=1", deadline(30), "READY=1");
    // Not before the first full view: READY=1 comes with the status the view gives (how many
    // agents, and the role it was taken in), which exists only once the view does.
    assert!(
        ready.contains("STATUS=watching 0 agents under /") && ready.contains("leading"),
        "{ready:?}"
    );
    // The log says the same (read from its pipe, which may lag the datagram: waited for).
    watcher.wait_for_line(
        "watcher ready",
        deadline(5),
        "the first full view in the log",
    );
    let pinged = manager.count("WATCHDOG=1");
    manager.wait_for_more("WATCHDOG=1", pinged + 3, deadline(10));
    watcher.signal(Signal::SIGTERM);
    let stopping = manager.wait_for("STOPPING=1", deadline(10), "STOPPING=1 on SIGTERM");
    assert!(stopping.contains("STATUS=stopping"), "{stopping:?}");
    watcher.wait_exit(deadline(10));
}

#[test]
fn a_watcher_that_cannot_reach_zookeeper_is_ready_and_says_it_is_blind() {
    let dir = TempDir::new("notify-blind");
    let mut manager = Manager::bind(dir.path());
    // Nothing listens on port 1: the watcher never gets a session, and must live to say so.
    let mut cmd = Command::new(bin("flume-watcher"));
    cmd.args([
        "run",
        "--zk",
        "127.0.0.1:1",
        "--root",
        &unique_root("notify_blind"),
    ])
    .args([
        "--session-timeout",
        "2s",
        "--blind-after",
        "1s",
        "--console",
    ]);
    let watcher = Proc::spawn("watcher", as_a_service(cmd, &manager, None));
    let first = manager.wait_for("STATUS=", deadline(10), "a first status");
    assert!(
        first.contains("STATUS=connecting to ZooKeeper"),
        "{first:?}"
    );
    let ready = manager.wait_for("READY=1", deadline(30), "READY=1 once blind");
    assert!(ready.contains("STATUS=BLIND: "), "{ready:?}");
    assert!(watcher.is_running(), "a blind watcher keeps running");
    watcher.signal(Signal::SIGTERM);
    watcher.wait_exit(deadline(10));
}

#[test]
fn the_watchdog_is_ready_once_the_agent_runs_which_never_sees_the_notify_socket() {
    let dir = TempDir::new("notify-watchdog");
    let mut manager = Manager::bind(dir.path());
    let pair = Pair::new(
        &ZkServer::shared().connect_string(),
        &unique_root("notify_wd"),
    );
    let mut cmd = watchdog_command(&pair.connect, &pair.root, "nt-a1", "10s");
    around_stand_in(&mut cmd, "nt-a1");
    let wd = Proc::spawn("watchdog", as_a_service(cmd, &manager, Some("500000")));
    let ready = manager.wait_for("READY=1", deadline(20), "READY=1");
    let pid = pair.agent_pid("nt-a1");
    assert!(
        ready.contains(&format!("STATUS=agent nt-a1 up, pid {pid}, registered")),
        "{ready:?}"
    );
    // The agent does not inherit what would let it speak for the watchdog.
    let environ = std::fs::read(format!("/proc/{pid}/environ")).expect("the agent's environment");
    let environ = String::from_utf8_lossy(&environ);
    for var in ["NOTIFY_SOCKET=", "WATCHDOG_USEC=", "WATCHDOG_PID="] {
        assert!(
            !environ.split('\0').any(|kv| kv.starts_with(var)),
            "the agent inherited {var}"
        );
    }
    let pinged = manager.count("WATCHDOG=1");
    manager.wait_for_more("WATCHDOG=1", pinged + 3, deadline(10));
    wd.signal(Signal::SIGTERM);
    let stopping = manager.wait_for("STOPPING=1", deadline(10), "STOPPING=1 on SIGTERM");
    assert!(
        stopping.contains("STATUS=stopping agent nt-a1 (SIGTERM)"),
        "{stopping:?}"
    );
    wd.wait_exit(deadline(20));
}

#[test]
fn a_watchdog_without_zookeeper_is_ready_within_its_startup_wait_and_says_so() {
    let dir = TempDir::new("notify-wd-nozk");
    let mut manager = Manager::bind(dir.path());
    let mut cmd = watchdog_command("127.0.0.1:1", &unique_root("notify_wd_nozk"), "nt-b1", "2s");
    around_stand_in(&mut cmd, "nt-b1");
    let started = Instant::now();
    let wd = Proc::spawn("watchdog", as_a_service(cmd, &manager, None));
    let ready = manager.wait_for("READY=1", deadline(20), "READY=1 without ZooKeeper");
    assert!(
        ready.contains("not registered yet (ZooKeeper does not answer)"),
        "{ready:?}"
    );
    eprintln!("READY=1 without ZooKeeper after {:?}", started.elapsed());
    wd.signal(Signal::SIGTERM);
    wd.wait_exit(deadline(20));
}

/// `cmd` started as systemd starts a notify service: `NOTIFY_SOCKET`, and with `watchdog_usec`
/// `WATCHDOG_USEC` and `WATCHDOG_PID` (the service's own pid: a shell exports its pid, then
/// execs the command, which keeps it).
fn as_a_service(cmd: Command, manager: &Manager, watchdog_usec: Option<&str>) -> Command {
    let mut service = Command::new("/bin/sh");
    service
        .arg("-c")
        .arg("export WATCHDOG_PID=$$; exec \"$@\"")
        .arg("sh")
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .env("NOTIFY_SOCKET", manager.path());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => service.env(k, v),
            None => service.env_remove(k),
        };
    }
    match watchdog_usec {
        Some(usec) => service.env("WATCHDOG_USEC", usec),
        None => service.env_remove("WATCHDOG_USEC"),
    };
    service
}

impl Manager {
    /// Reads until `line` has come in at least `n` datagrams.
    fn wait_for_more(&mut self, line: &str, n: usize, until: Instant) {
        let mut buf = [0u8; 4096];
        while self.count(line) < n {
            assert!(
                Instant::now() < until,
                "waited for {n} datagrams {line:?}; got {:?}",
                self.got
            );
            if let Ok(k) = self.socket.recv(&mut buf) {
                self.got
                    .push(String::from_utf8_lossy(&buf[..k]).into_owned());
            }
        }
    }
}
