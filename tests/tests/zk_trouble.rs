//! ZooKeeper trouble never reaches the agent: it starts without ZooKeeper, keeps running through an
//! outage longer than the session, and the watchdog registers again when ZooKeeper returns.

use nix::sys::signal::Signal;
use scenarios::pair::{started_agent_pid, watchdog, Pair};
use scenarios::{deadline, pid_alive, poll_until, unique_root, wait_pid_gone, ZkProbe, ZkServer};

#[test]
fn zookeeper_unreachable_at_start_the_agent_starts_and_registers_later() {
    let mut zk = ZkServer::start();
    zk.stop();
    let root = unique_root("zk_away_at_start");
    let wd = watchdog(&zk.connect_string(), &root, "z1", &[], &[]);
    let pid = started_agent_pid(&wd, "z1");
    wd.wait_for_line(
        "starting the agent anyway",
        deadline(10),
        "the watchdog saying it did not wait for ZooKeeper",
    );
    zk.start_again();
    let probe = ZkProbe::connect(&zk.connect_string());
    probe.wait_until_exists(&format!("{root}/live/z1"), deadline(30));
    let live = probe
        .get_json(&format!("{root}/live/z1"))
        .expect("liveness node");
    assert_eq!(
        live["agent_pid"], pid,
        "the agent registered is the one started without ZooKeeper: {live}"
    );
    assert!(
        probe.exists(&format!("{root}/agents/z1")).is_some(),
        "identity node registered too"
    );
    assert!(pid_alive(pid));
}

#[test]
fn an_outage_longer_than_the_session_keeps_the_agent_and_registers_again() {
    let mut zk = ZkServer::start();
    let root = unique_root("zk_outage");
    let pair = Pair::new(&zk.connect_string(), &root);
    let wd = pair.watchdog("o1", &[], &[]);
    let pid = pair.agent_pid("o1");
    let before = pair
        .probe
        .exists(&pair.live_path("o1"))
        .expect("liveness node")
        .ephemeral_owner;
    drop(pair);
    let mark = wd.mark();
    zk.stop();
    // The client declares its session expired about 1.4 × the timeout after it last heard from the server.
    wd.wait_for_line_since(
        mark,
        |l| l.contains("zookeeper session lost"),
        deadline(20),
        "the watchdog to see its session end",
    );
    assert!(
        pid_alive(pid),
        "the agent keeps running while ZooKeeper is away"
    );
    zk.start_again();
    let probe = ZkProbe::connect(&zk.connect_string());
    let path = format!("{root}/live/o1");
    let owner = poll_until(
        deadline(30),
        "a liveness node owned by a new session",
        || {
            probe
                .exists(&path)
                .map(|s| s.ephemeral_owner)
                .filter(|o| *o != before)
        },
        || format!("{path}: {:?}", probe.get_json(&path)),
    );
    assert_ne!(owner, before);
    let live = probe.get_json(&path).expect("liveness node");
    assert_eq!(
        live["agent_pid"], pid,
        "same agent, never restarted: {live}"
    );
    assert_eq!(
        wd.count_lines("stand-in agent o1 started"),
        1,
        "the agent was started once:\n{}",
        wd.output()
    );
}

#[test]
fn identity_deleted_while_the_watchdog_was_away_stops_the_agent() {
    let pair = Pair::new(
        &ZkServer::shared().connect_string(),
        &unique_root("stopped_while_away"),
    );
    let wd = pair.watchdog("e1", &[], &[]);
    let pid = pair.agent_pid("e1");
    // Freeze the watchdog until ZooKeeper expires its session, then stop it "from another host".
    wd.signal(Signal::SIGSTOP);
    pair.probe
        .wait_until_gone(&pair.live_path("e1"), deadline(15));
    pair.probe.delete(&pair.identity_path("e1"));
    assert!(
        pid_alive(pid),
        "the agent runs on while its watchdog is frozen"
    );
    wd.signal(Signal::SIGCONT);
    let status = wd.wait_exit(deadline(20));
    assert_eq!(
        status.code(),
        Some(0),
        "a stop requested meanwhile is a graceful stop:\n{}",
        wd.output()
    );
    wait_pid_gone(pid, deadline(5), "the agent of the stopped watchdog");
    assert!(
        wd.output().contains("stopping on SIGTERM"),
        "the agent was stopped gracefully:\n{}",
        wd.output()
    );
    assert!(
        pair.probe.exists(&pair.live_path("e1")).is_none(),
        "no liveness node re-created"
    );
}

#[test]
fn a_watcher_without_zookeeper_says_it_is_blind_and_then_that_it_sees() {
    let mut zk = ZkServer::start();
    let mut pair = Pair::new(&zk.connect_string(), &unique_root("blind"));
    pair.start_watcher_with(&["--blind-after", "1s"]);
    let _wd = pair.watchdog("b1", &[], &[]);
    let pid = pair.agent_pid("b1");
    zk.stop();
    let events = |a: &[serde_json::Value]| {
        a.iter()
            .map(|x| x["event"].as_str().unwrap_or("?").to_owned())
            .collect::<Vec<_>>()
    };
    pair.receiver.wait_for_alerts(
        |a| events(a) == ["blind"],
        deadline(15),
        "the watcher saying it is blind",
    );
    zk.start_again();
    let alerts = pair.receiver.wait_for_alerts(
        |a| events(a) == ["blind", "sighted"],
        deadline(30),
        "the watcher saying it sees again",
    );
    assert!(
        alerts[0]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("no working ZooKeeper session"),
        "{}",
        alerts[0]
    );
    assert!(pid_alive(pid), "the agent ran on throughout");
}
