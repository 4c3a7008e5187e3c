//! Defects a new operator hit, end to end against a real ZooKeeper and the real binaries: an agent
//! that cannot start, a watcher started while watchdogs register, a dead watchdog nobody reaped,
//! a broken log pipe, a chroot that does not exist, and connection problems that say what they are.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use scenarios::pair::{around_stand_in, events_of, watchdog_command, Pair, SESSION_TIMEOUT};
use scenarios::{bin, deadline, poll_until, unique_root, Proc, ZkServer};

fn shared(name: &str) -> Pair {
    Pair::start(&ZkServer::shared().connect_string(), &unique_root(name))
}

/// `flume-watchdog run` around `program` (not the stand-in agent), with the scenarios' flags.
fn watchdog_of(pair: &Pair, id: &str, extra: &[&str], program: &str) -> Proc {
    let mut cmd = watchdog_command(&pair.connect, &pair.root, id, SESSION_TIMEOUT);
    cmd.args(extra).args(["--", program, "agent", "-n", id]);
    Proc::spawn(&format!("watchdog {id}"), cmd)
}

// ---------------------------------------------------------------------------------------------
// 1. An agent that cannot start
// ---------------------------------------------------------------------------------------------

#[test]
fn an_agent_that_cannot_start_is_down_with_the_reason_then_failed_when_the_watchdog_gives_up() {
    let pair = shared("cannot_start");
    let started = Instant::now();
    let wd = watchdog_of(
        &pair,
        "nx2",
        &["--max-restarts", "2", "--restart-window", "1m"],
        "/nonexistent/flume-ng",
    );
    // Not after a grace: the watchdog recorded why, so the watcher says so at once.
    pair.receiver.wait_for_alerts(
        |all| events_of(all, "nx2").first().map(String::as_str) == Some("down"),
        deadline(20),
        "a down for nx2",
    );
    let down_after = started.elapsed();
    assert!(
        down_after < Duration::from_secs(8),
        "the down came {down_after:?} after the watchdog started (the grace for a silent start is 10 s)"
    );
    let status = wd.wait_exit(deadline(20));
    assert_eq!(
        status.code(),
        Some(3),
        "the watchdog gives up after 2 restarts: exit 3\n{}",
        wd.output()
    );
    let alerts = pair.wait_events("nx2", &["down", "failed"], 20);
    assert_eq!(
        alerts[0]["reason"], "cannot start /nonexistent/flume-ng: No such file or directory",
        "{alerts:#?}"
    );
    assert_eq!(alerts[0]["last_exit"]["code"], 127, "{alerts:#?}");
    assert!(
        alerts[1]["reason"]
            .as_str()
            .unwrap_or_default()
            .ends_with("last: cannot start /nonexistent/flume-ng: No such file or directory"),
        "{alerts:#?}"
    );
    let identity = pair
        .probe
        .get_json(&pair.identity_path("nx2"))
        .expect("the identity node stays: the agent is meant to run");
    assert_eq!(identity["state"], "failed", "{identity}");
    assert!(
        wd.output()
            .contains("cannot start /nonexistent/flume-ng: No such file or directory"),
        "the watchdog's log says why:\n{}",
        wd.output()
    );
}

#[test]
fn a_program_that_is_not_executable_is_down_at_once_while_the_watchdog_keeps_trying() {
    let pair = shared("not_executable");
    let _wd = watchdog_of(&pair, "pw", &[], "/etc/passwd");
    let alerts = pair.wait_events("pw", &["down"], 20);
    assert_eq!(
        alerts[0]["reason"], "cannot start /etc/passwd: Permission denied",
        "{alerts:#?}"
    );
}

#[test]
fn registered_but_never_live_is_down_after_the_grace() {
    // A watchdog that registered its agent and died before the liveness node: only the identity
    // node, in state `starting`. Made by hand so that nothing else can explain the outage.
    let pair = shared("never_live");
    let registered = Instant::now();
    pair.probe.create(
        &pair.identity_path("nl"),
        br#"{"id":"nl","host":"web9","state":"starting","restarts":0,"last_exit":null}"#,
        false,
    );
    let alerts = pair.wait_events("nl", &["down"], 30);
    let after = registered.elapsed();
    assert!(
        after >= Duration::from_secs(10) && after < Duration::from_secs(25),
        "down {after:?} after the registration; the grace is 10 s"
    );
    assert!(
        alerts[0]["reason"]
            .as_str()
            .unwrap_or_default()
            .starts_with("registered but not live for 10s"),
        "{alerts:#?}"
    );
    assert_eq!(alerts[0]["host"], "web9");
}

// ---------------------------------------------------------------------------------------------
// 2. A watcher started while watchdogs register
// ---------------------------------------------------------------------------------------------

#[test]
fn a_watcher_starting_while_agents_register_sends_nothing() {
    // Deterministic: the watcher's first view holds identity nodes in state `starting` without
    // their liveness nodes (what a watchdog has between its two creates).
    let mut pair = Pair::new(
        &ZkServer::shared().connect_string(),
        &unique_root("mid_reg"),
    );
    let ids: Vec<String> = (0..4).map(|i| format!("s{i}")).collect();
    for id in &ids {
        pair.probe.create(
            &pair.identity_path(id),
            format!(r#"{{"id":"{id}","host":"vm","state":"starting","restarts":0}}"#).as_bytes(),
            false,
        );
    }
    pair.start_watcher();
    for id in &ids {
        pair.probe.create(
            &pair.live_path(id),
            br#"{"host":"vm","watchdog_pid":1,"agent_pid":2}"#,
            true,
        );
    }
    // And as the operator did it: the watcher and, a few milliseconds later, 8 real watchdogs.
    let mut pair2 = Pair::new(
        &ZkServer::shared().connect_string(),
        &unique_root("mid_reg2"),
    );
    let watcher = pair2.spawn_watcher("watcher2", &[]);
    let watchdogs: Vec<Proc> = (0..8)
        .map(|i| pair2.watchdog(&format!("w{i}"), &[], &[]))
        .collect();
    watcher.wait_for_line(
        "watcher ready",
        deadline(30),
        "the second watcher's first view",
    );
    pair2.watcher = Some(watcher);
    for i in 0..8 {
        pair2.wait_live(&format!("w{i}"));
    }
    pair.sentinel("sentinel");
    pair2.sentinel("sentinel");
    for (p, name) in [(&pair, "by hand"), (&pair2, "real watchdogs")] {
        let alerts = p.receiver.alerts();
        assert_eq!(
            events_of(&alerts, "sentinel"),
            ["down"],
            "{name}: {alerts:#?}"
        );
        assert_eq!(
            alerts.len(),
            1,
            "{name}: only the sentinel's down: {alerts:#?}"
        );
    }
    drop(watchdogs);
}

// ---------------------------------------------------------------------------------------------
// 3. A dead watchdog that was not reaped
// ---------------------------------------------------------------------------------------------

#[test]
fn a_zombie_watchdog_does_not_block_its_successor_and_the_alert_says_what_happened() {
    let pair = shared("zombie");
    // A long session, so that only the successor's replacement can remove the old node in time.
    let mut cmd = watchdog_command(&pair.connect, &pair.root, "zb", "20s");
    around_stand_in(&mut cmd, "zb");
    let old = Proc::spawn("old watchdog zb", cmd);
    let old_agent = pair.agent_pid("zb");
    // SIGKILL, and no wait(): the test process is its parent and does not reap it yet.
    old.signal(Signal::SIGKILL);
    poll_until(
        deadline(10),
        "the killed watchdog to be a zombie",
        || (proc_state(old.pid()) == Some('Z')).then_some(()),
        || format!("/proc/{}/stat state {:?}", old.pid(), proc_state(old.pid())),
    );
    scenarios::wait_pid_gone(
        old_agent,
        deadline(10),
        "the old agent (parent-death signal)",
    );

    let new = pair.watchdog("zb", &[], &[]);
    let new_agent = pair.wait_restarted("zb", old_agent);
    let live = pair.wait_live("zb");
    assert_eq!(
        live["watchdog_pid"],
        new.pid(),
        "the successor holds the liveness node: {live}"
    );
    assert!(
        new.is_running(),
        "the successor must not refuse:\n{}",
        new.output()
    );
    let alerts = pair.wait_events("zb", &["down", "recovered"], 30);
    assert_eq!(
        alerts[0]["reason"],
        format!(
            "its watchdog (pid {}) died, and the agent with it; a new watchdog took over",
            old.pid()
        ),
        "{alerts:#?}"
    );
    assert!(new_agent != old_agent);
    assert_eq!(
        old.try_exit().and_then(|s| s.signal()),
        Some(9),
        "reaped now"
    );
}

fn proc_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

// ---------------------------------------------------------------------------------------------
// 4. A broken log pipe
// ---------------------------------------------------------------------------------------------

/// A pipe whose reading end is already closed: every write to it fails with EPIPE.
fn broken_pipe() -> Stdio {
    let (read, write) = nix::unistd::pipe().expect("pipe");
    drop(read);
    Stdio::from(write)
}

#[test]
fn a_broken_stderr_stops_neither_the_watchdog_nor_the_watcher() {
    let mut pair = Pair::new(&ZkServer::shared().connect_string(), &unique_root("epipe"));
    // The watcher logs to a broken pipe; its alerts still reach the receiver and the console.
    let mut cmd = pair.watcher_command(SESSION_TIMEOUT);
    cmd.arg("--console").stderr(broken_pipe());
    let watcher = Proc::spawn_with_stderr("watcher (stderr broken)", cmd);
    let mut cmd = watchdog_command(&pair.connect, &pair.root, "bp", SESSION_TIMEOUT);
    around_stand_in(&mut cmd, "bp");
    cmd.stderr(broken_pipe());
    let wd = Proc::spawn_with_stderr("watchdog bp (stderr broken)", cmd);
    let pid = pair.agent_pid("bp");
    // The watcher's console output shows it is ready to alert: the sentinel's down arrives.
    pair.sentinel("sentinel");
    // A crash: the watchdog logs it (to the broken pipe), restarts the agent, the watcher alerts.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGUSR1).expect("crash");
    let restarted = pair.wait_restarted("bp", pid);
    pair.wait_events("bp", &["down", "recovered"], 30);
    watcher.wait_for_line("ALERT [RECOVERED] bp", deadline(10), "the console alert");
    assert!(wd.is_running() && watcher.is_running());
    // A planned stop still works: exit 0, the identity node gone, the agent stopped.
    wd.signal(Signal::SIGTERM);
    let status = wd.wait_exit(deadline(20));
    assert_eq!(status.code(), Some(0), "the watchdog: {status:?}");
    assert!(pair.probe.exists(&pair.identity_path("bp")).is_none());
    scenarios::wait_pid_gone(restarted, deadline(10), "the agent after the stop");
    watcher.signal(Signal::SIGTERM);
    let status = watcher.wait_exit(deadline(20));
    assert_eq!(status.code(), Some(0), "the watcher: {status:?}");
    pair.watcher = None;
    let events: Vec<String> = events_of(&pair.receiver.alerts(), "bp");
    assert_eq!(
        events,
        ["down", "recovered"],
        "no alert for the planned stop"
    );
}

#[test]
fn logs_to_a_pipe_have_no_colour_codes() {
    // NO_COLOR unset, so that only the pipe can turn the colours off.
    let pair = Pair::new(
        &ZkServer::shared().connect_string(),
        &unique_root("no_colour"),
    );
    let mut cmd = pair.watcher_command(SESSION_TIMEOUT);
    cmd.env_remove("NO_COLOR");
    let watcher = Proc::spawn("watcher", cmd);
    let mut cmd = watchdog_command(&pair.connect, &pair.root, "nc", SESSION_TIMEOUT);
    around_stand_in(&mut cmd, "nc");
    cmd.env_remove("NO_COLOR");
    let wd = Proc::spawn("watchdog nc", cmd);
    pair.wait_live("nc");
    watcher.wait_for_line("watcher ready", deadline(30), "the watcher's first view");
    for (name, out) in [("watchdog", wd.output()), ("watcher", watcher.output())] {
        assert!(
            !out.contains('\u{1b}'),
            "{name} wrote ANSI escape codes to a pipe:\n{out}"
        );
        assert!(out.contains(" INFO "), "{name}: {out}");
    }
}

// ---------------------------------------------------------------------------------------------
// 7. A chroot that does not exist
// ---------------------------------------------------------------------------------------------

#[test]
fn a_missing_chroot_is_created_once_and_the_pair_works_under_it() {
    let zk = ZkServer::shared();
    let chroot = unique_root("kafka");
    let connect = format!("{}{chroot}", zk.connect_string());
    let probe = scenarios::ZkProbe::connect(&zk.connect_string());
    assert!(probe.exists(&chroot).is_none(), "the premise: no {chroot}");
    let pair = Pair::start(&connect, "/flume-watchdog");
    let wd = pair.watchdog("ch", &[], &[]);
    pair.wait_live("ch");
    assert!(
        probe
            .exists(&format!("{chroot}/flume-watchdog/live/ch"))
            .is_some(),
        "the nodes live under the chroot"
    );
    let watcher = pair.watcher.as_ref().expect("watcher");
    let said: Vec<String> = watcher
        .lines()
        .into_iter()
        .chain(wd.lines())
        .filter(|l| l.contains("created the chroot"))
        .collect();
    assert_eq!(said.len(), 1, "created once, by one of them: {said:#?}");
    assert!(said[0].contains(&chroot), "{said:?}");
    for (name, p) in [("watcher", watcher), ("watchdog", &wd)] {
        assert!(
            !p.output().contains("node not exists"),
            "{name} kept failing:\n{}",
            p.output()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 8. Connection problems say what they are
// ---------------------------------------------------------------------------------------------

fn one_shot(args: &[&str]) -> (std::process::ExitStatus, String, Duration) {
    let started = Instant::now();
    let out = Command::new(bin("flume-watcher"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run flume-watcher");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status, text, started.elapsed())
}

#[test]
fn an_unknown_host_and_a_refused_port_are_said_at_once() {
    let (status, text, took) = one_shot(&["status", "--zk", "no-such-host.invalid:2181"]);
    assert_eq!(status.code(), Some(1), "{text}");
    assert!(
        text.contains("cannot resolve no-such-host.invalid"),
        "{text}"
    );
    assert!(took < Duration::from_secs(5), "took {took:?}: {text}");

    let port = scenarios::free_port();
    let (status, text, took) = one_shot(&["status", "--zk", &format!("127.0.0.1:{port}")]);
    assert_eq!(status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!("127.0.0.1:{port} refused the connection")),
        "{text}"
    );
    assert!(took < Duration::from_secs(5), "took {took:?}: {text}");
}

#[test]
fn a_server_that_does_not_answer_is_said_so() {
    // A listener whose accept queue (backlog 0: one connection) is full: the kernel drops further
    // SYNs, so a new connection hears nothing, as from a host that is down or behind a firewall.
    use nix::sys::socket::{
        bind, connect, listen, socket, AddressFamily, Backlog, SockFlag, SockType, SockaddrIn,
    };
    let any = SockaddrIn::new(127, 0, 0, 1, 0);
    let listener = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::empty(),
        None,
    )
    .expect("socket");
    bind(std::os::fd::AsRawFd::as_raw_fd(&listener), &any).expect("bind");
    listen(&listener, Backlog::new(0).expect("backlog")).expect("listen");
    let addr: SockaddrIn =
        nix::sys::socket::getsockname(std::os::fd::AsRawFd::as_raw_fd(&listener)).expect("name");
    let filler = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::empty(),
        None,
    )
    .expect("socket");
    connect(std::os::fd::AsRawFd::as_raw_fd(&filler), &addr).expect("the one queued connection");
    let port = addr.port();
    let (status, text, took) = one_shot(&["status", "--zk", &format!("127.0.0.1:{port}")]);
    assert_eq!(status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!("127.0.0.1:{port} did not answer within 2s")),
        "{text}"
    );
    assert!(
        took < Duration::from_secs(8),
        "said after the probe, took {took:?}: {text}"
    );
    drop((filler, listener));
}

#[test]
fn a_port_that_accepts_but_is_not_zookeeper_is_said_so() {
    // Accepts connections and never answers, like a wrong service on that port.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let held = std::thread::spawn(move || {
        let mut kept = Vec::new();
        for conn in listener.incoming().take(8).flatten() {
            kept.push(conn);
        }
        kept
    });
    let (status, text, _) = one_shot(&["status", "--zk", &format!("127.0.0.1:{port}")]);
    assert_eq!(status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "127.0.0.1:{port} accepts connections but opened no session"
        )),
        "{text}"
    );
    assert!(!text.contains("timeout"), "not just 'timeout': {text}");
    drop(held);
}

// ---------------------------------------------------------------------------------------------
// 9, 10. What is negotiated is said; a second SIGTERM waits; a conflict is said once
// ---------------------------------------------------------------------------------------------

#[test]
fn a_session_timeout_the_server_cuts_is_said() {
    // The server bounds the session timeout by its maxSessionTimeout: 1 h is cut to that.
    let zk = ZkServer::shared();
    let conf = zk.four_letter_word("conf").unwrap_or_default();
    let max_ms: u64 = conf
        .lines()
        .find_map(|l| l.strip_prefix("maxSessionTimeout="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no maxSessionTimeout in the server's conf:\n{conf}"));
    let max = format!("{}s", max_ms / 1000);
    let pair = Pair::new(&zk.connect_string(), &unique_root("negotiated"));
    let mut cmd = watchdog_command(&pair.connect, &pair.root, "st", "1h");
    around_stand_in(&mut cmd, "st");
    let wd = Proc::spawn("watchdog st", cmd);
    let line = wd.wait_for_line(
        &format!("ZooKeeper set the session timeout to {max} instead of the 1h asked for"),
        deadline(20),
        "the watchdog to say what the server gave",
    );
    assert!(line.contains("WARN"), "{line}");
    pair.wait_live("st");
    assert_eq!(
        wd.count_lines("instead of the 1h asked for"),
        1,
        "said once"
    );
}

#[test]
fn a_second_sigterm_waits_for_the_stop_timeout_and_a_second_sigint_does_not() {
    for (sig, waits) in [(Signal::SIGTERM, true), (Signal::SIGINT, false)] {
        let pair = shared("second_signal");
        // An agent that ignores SIGTERM (a Flume stuck in its shutdown) and a 5 s stop timeout.
        let wd = pair.watchdog("ss", &["--stop-timeout", "5s"], &["--ignore-term"]);
        let pid = pair.agent_pid("ss");
        let first = Instant::now();
        wd.signal(sig);
        wd.wait_for_line("ignoring SIGTERM", deadline(10), "the agent to get SIGTERM");
        wd.signal(sig);
        wd.wait_for_line(
            " again",
            deadline(10),
            "the watchdog to note the second signal",
        );
        scenarios::wait_pid_gone(pid, deadline(20), "the agent");
        let gone = first.elapsed();
        if waits {
            // Killed by the stop timeout's SIGKILL: never before it (a loaded machine can only
            // make it later).
            assert!(
                gone >= Duration::from_millis(4900),
                "{sig}: the agent was gone after {gone:?}"
            );
        } else {
            assert!(
                gone < Duration::from_millis(4900),
                "{sig}: the agent was gone after {gone:?}, not at once"
            );
        }
        assert_eq!(
            wd.wait_exit(deadline(20)).code(),
            Some(0),
            "{sig}\n{}",
            wd.output()
        );
        assert!(pair.probe.exists(&pair.identity_path("ss")).is_none());
    }
}

#[test]
fn an_id_live_elsewhere_is_refused_with_exit_4_said_once() {
    let pair = shared("conflict");
    // Another host's watchdog holds the id: a liveness node of the probe's own session.
    pair.probe.create(
        &pair.live_path("cf"),
        br#"{"host":"web7","watchdog_pid":4242,"agent_pid":4250}"#,
        true,
    );
    let wd = pair.watchdog("cf", &[], &[]);
    let status = wd.wait_exit(deadline(20));
    assert_eq!(status.code(), Some(4), "{}", wd.output());
    let said: Vec<String> = wd
        .lines()
        .into_iter()
        .filter(|l| l.contains("web7"))
        .collect();
    assert_eq!(
        said,
        ["flume-watchdog: agent id cf is already live on host web7 (watchdog pid 4242); refusing to start a second one"],
        "said once, as a person reads it"
    );
}
