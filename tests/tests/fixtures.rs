//! Tests of the fixtures themselves (the HTTP receiver has its own, in tests/receiver).

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use scenarios::{
    deadline, pid_alive, stand_in_agent, unique_root, wait_pid_gone, Proc, ZkEnsemble, ZkProbe,
    ZkServer,
};

#[test]
fn zk_server_starts_and_probe_round_trips() {
    let t0 = Instant::now();
    let zk = ZkServer::start();
    eprintln!("ZooKeeper up in {:?}", t0.elapsed());
    assert!(zk.srvr().unwrap().contains("Mode: standalone"));
    assert!(zk.connect_string().starts_with("127.0.0.1:"));

    let zk_probe = ZkProbe::connect(&zk.connect_string());
    let root = unique_root("round_trip");
    let stat = zk_probe.create(&format!("{root}/a/b"), b"hello", false);
    assert_eq!(stat.ephemeral_owner, 0);
    let (data, stat2) = zk_probe.get(&format!("{root}/a/b")).unwrap();
    assert_eq!(data, b"hello");
    assert_eq!(stat2.czxid, stat.czxid);
    zk_probe.set(&format!("{root}/a/b"), br#"{"x":1}"#);
    assert_eq!(zk_probe.get_json(&format!("{root}/a/b")).unwrap()["x"], 1);

    let e = zk_probe.create(&format!("{root}/a/eph"), b"", true);
    assert_eq!(e.ephemeral_owner, zk_probe.session_id());
    assert_eq!(zk_probe.children(&format!("{root}/a")), vec!["b", "eph"]);
    assert!(zk_probe.children(&format!("{root}/none")).is_empty());
    assert!(zk_probe.get(&format!("{root}/none")).is_none());

    zk_probe.delete(&format!("{root}/a/b"));
    zk_probe.delete(&format!("{root}/a/b")); // absent: no error
    assert!(zk_probe.exists(&format!("{root}/a/b")).is_none());

    // Another session's ephemeral node goes as soon as that probe is dropped.
    let other = ZkProbe::connect(&zk.connect_string());
    other.create(&format!("{root}/other"), b"", true);
    let dropped = Instant::now();
    drop(other);
    let gone = zk_probe.wait_until_gone(&format!("{root}/other"), deadline(2));
    assert!(
        gone - dropped < Duration::from_secs(1),
        "ephemeral took {:?}",
        gone - dropped
    );

    zk_probe.delete_recursive(&root);
    assert!(zk_probe.exists(&root).is_none());
}

#[test]
fn zk_server_restart_keeps_data() {
    let mut zk = ZkServer::start();
    let port = zk.port();
    let probe = ZkProbe::connect(&zk.connect_string());
    probe.create("/kept/node", b"data", false);

    zk.stop();
    assert!(!zk.is_running());
    assert!(zk.srvr().is_none(), "server still answers after stop()");
    zk.start_again();
    assert_eq!(zk.port(), port);

    // The same probe reconnects (same session) and sees the data.
    assert_eq!(probe.get("/kept/node").unwrap().0, b"data");
    let waiter = std::thread::spawn({
        let cs = zk.connect_string();
        move || {
            let p = ZkProbe::connect(&cs);
            p.wait_until_exists("/kept/later", deadline(10))
        }
    });
    probe.create("/kept/later", b"", false);
    let stat = waiter.join().unwrap();
    assert!(stat.czxid > 0);
}

#[test]
fn zk_waits_fail_with_what_they_saw() {
    let zk = ZkServer::shared();
    let probe = ZkProbe::connect(&zk.connect_string());
    let root = unique_root("waits_fail");
    probe.create(&format!("{root}/stays"), b"still here", false);
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        probe.wait_until_gone(&format!("{root}/stays"), scenarios::deadline_ms(200))
    }))
    .unwrap_err();
    let msg = err.downcast_ref::<String>().unwrap();
    assert!(
        msg.contains("to be gone") && msg.contains("still here"),
        "{msg}"
    );
    probe.delete_recursive(&root);
}

#[test]
fn shared_server_is_reused() {
    let a = ZkServer::shared();
    let b = std::thread::spawn(|| ZkServer::shared().port())
        .join()
        .unwrap();
    assert_eq!(a.port(), b);
    assert!(a.srvr().unwrap().contains("Mode: standalone"));
    assert_ne!(unique_root("x"), unique_root("x"));
}

#[test]
fn zk_ensemble_elects_a_new_leader() {
    let t0 = Instant::now();
    let mut ens = ZkEnsemble::start();
    eprintln!("ensemble up in {:?}", t0.elapsed());
    let leader = ens.leader_index();
    let probe = ZkProbe::connect(&ens.connect_string());
    probe.create("/ens/node", b"x", false);

    let t1 = Instant::now();
    ens.stop(leader);
    let new_leader = ens.leader_index();
    eprintln!(
        "new leader {new_leader} (was {leader}) after {:?}",
        t1.elapsed()
    );
    assert_ne!(new_leader, leader);
    assert_eq!(probe.get("/ens/node").unwrap().0, b"x");

    ens.start_again(leader);
    assert_eq!(ens.mode(leader).as_deref(), Some("follower"));
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "ensemble test took {:?}",
        t0.elapsed()
    );
}

fn agent(extra: &[&str]) -> Proc {
    let mut args = vec![
        "agent",
        "-n",
        "a1",
        "-c",
        "/tmp",
        "-f",
        "/tmp/a1.conf",
        "-Dflume.monitoring.type=http",
    ];
    args.extend_from_slice(extra);
    Proc::start("agent", stand_in_agent(), args)
}

#[test]
fn stand_in_agent_exits_with_code_on_sigusr1() {
    let a = agent(&[]);
    let line = a.wait_for_line("started pid=", deadline(5), "agent start");
    assert_eq!(line, format!("stand-in agent a1 started pid={}", a.pid()));
    a.signal(Signal::SIGUSR1);
    let status = a.wait_exit(deadline(5));
    assert_eq!(status.code(), Some(3));
    assert!(a.output().contains("stand-in agent a1 exiting with code 3"));
    assert!(!a.is_running());
}

#[test]
fn stand_in_agent_stops_on_sigterm() {
    let a = agent(&["--exit-code", "7"]);
    a.wait_for_line("started", deadline(5), "agent start");
    a.signal(Signal::SIGTERM);
    assert_eq!(a.wait_exit(deadline(5)).code(), Some(0));
    assert!(a.output().contains("stand-in agent a1 stopping on SIGTERM"));
}

#[test]
fn stand_in_agent_ignore_term_needs_sigkill() {
    let a = agent(&["--ignore-term"]);
    a.wait_for_line("started", deadline(5), "agent start");
    a.signal(Signal::SIGTERM);
    a.wait_for_line("ignoring SIGTERM", deadline(5), "SIGTERM ignored");
    assert!(a.is_running());
    a.signal(Signal::SIGKILL);
    assert_eq!(a.wait_exit(deadline(5)).signal(), Some(9));
}

#[test]
fn stand_in_agent_crashes_after() {
    let t0 = Instant::now();
    let a = agent(&["--crash-after", "200ms", "--exit-code", "5"]);
    let status = a.wait_exit(deadline(5));
    assert_eq!(status.code(), Some(5));
    assert!(t0.elapsed() >= Duration::from_millis(200));
    // A wait for a line that can no longer come fails at once, not at the deadline.
    let t1 = Instant::now();
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        a.wait_for_line("never printed", deadline(10), "a line that never comes")
    }))
    .unwrap_err();
    assert!(t1.elapsed() < Duration::from_secs(2));
    let msg = err.downcast_ref::<String>().unwrap();
    assert!(
        msg.contains("exit code 5") && msg.contains("exiting with code 5"),
        "{msg}"
    );
}

#[test]
fn proc_is_killed_on_drop_with_its_children_and_survives_its_thread() {
    // Started from a thread that then ends: PDEATHSIG must not fire (the spawner thread forks).
    let a = std::thread::spawn(|| {
        let a = agent(&[]);
        a.wait_for_line("started", deadline(5), "agent start");
        a
    })
    .join()
    .unwrap();
    // Still alive and answering signals.
    a.signal(Signal::SIGTERM);
    assert_eq!(a.wait_exit(deadline(5)).code(), Some(0));

    // A shell whose child (the agent) is in the tree: Drop kills both.
    let sh = Proc::start(
        "sh",
        "/bin/sh",
        [
            "-c",
            &format!("{} agent -n child & wait", stand_in_agent().display()),
        ],
    );
    let line = sh.wait_for_line("started pid=", deadline(5), "grandchild start");
    let child_pid: i32 = line.rsplit('=').next().unwrap().parse().unwrap();
    let sh_pid = sh.pid();
    assert!(pid_alive(child_pid));
    drop(sh);
    wait_pid_gone(sh_pid, deadline(5), "the shell");
    wait_pid_gone(child_pid, deadline(5), "the shell's child agent");
}

#[test]
fn bin_finds_workspace_binaries_or_says_how_to_build() {
    assert!(stand_in_agent().is_file());
    let err = std::panic::catch_unwind(|| scenarios::bin("no-such-binary")).unwrap_err();
    let msg = err.downcast_ref::<String>().unwrap();
    assert!(msg.contains("cargo build --workspace --bins"), "{msg}");
}
