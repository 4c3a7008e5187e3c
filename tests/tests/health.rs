//! Issue 11 end to end: a real ZooKeeper, the real watchdog around the stand-in agent, whose Flume
//! metrics are told what to serve; the verdict is read back from `<root>/health/<id>`.
//!
//! Premise: the watchdogs here poll every 500 ms (`--health-interval 500ms`, so each read times
//! out after 250 ms) and clear a verdict as soon as its reasons are gone (`--health-hold 0s`); the
//! other rules are the defaults (two readings in a row). A condition is then degraded in the node
//! within two polls of its start plus one for the phase of the poll: the bound checked is 3 s,
//! which leaves room for a busy machine.

use std::time::{Duration, Instant};

use scenarios::health::{self, degraded_by, healthy, monitoring_opts};
use scenarios::pair::Pair;
use scenarios::{deadline, free_port, unique_root, ZkServer};

const HEALTH: [&str; 4] = ["--health-interval", "500ms", "--health-hold", "0s"];
const BOUND: Duration = Duration::from_secs(3);

fn pair(name: &str) -> Pair {
    Pair::new(&ZkServer::shared().connect_string(), &unique_root(name))
}

fn health_path(pair: &Pair, id: &str) -> String {
    format!("{}/health/{id}", pair.root)
}

#[test]
fn each_condition_is_degraded_within_two_polls_and_clears_after_resume() {
    let pair = pair("health_conditions");
    let port = free_port();
    let wd = pair.watchdog("h1", &HEALTH, &[&monitoring_opts(port)]);
    let path = health_path(&pair, "h1");
    health::wait_first_healthy(&pair.probe, &path);

    // (what, control query, reason kind)
    let cases = [
        ("a channel 95 % full", "size=950", "channel_full"),
        (
            "a sink that drains nothing",
            "stall=1&size=100",
            "sink_stalled",
        ),
        (
            "a file channel whose replay failed",
            "unhealthy=1",
            "channel_unhealthy",
        ),
        ("a sink that stopped", "stop=1", "component_stopped"),
        ("a hung JVM", "hang=1", "metrics_unanswered"),
        ("garbage from the port", "garbage=1", "metrics_garbled"),
    ];
    for (what, query, kind) in cases {
        let began = Instant::now();
        health::control(port, query, deadline(5));
        let (node, _) = health::wait_for(
            &pair.probe,
            &path,
            &format!("degraded by {kind} ({what})"),
            deadline(10),
            degraded_by(kind),
        );
        let took = began.elapsed();
        eprintln!("{what}: degraded after {took:?}: {node}");
        assert!(
            took <= BOUND,
            "{what}: degraded only after {took:?}: {node}"
        );
        health::control(port, "resume", deadline(5));
        health::wait_for(
            &pair.probe,
            &path,
            &format!("healthy again after {what} ended"),
            deadline(10),
            healthy,
        );
    }
    // The figures of a full channel, as the watcher will show them.
    health::control(port, "size=940", deadline(5));
    let (node, _) = health::wait_for(
        &pair.probe,
        &path,
        "the full channel's figures",
        deadline(10),
        degraded_by("channel_full"),
    );
    let reason = &node["reasons"][0];
    assert_eq!(
        (
            &reason["channel"],
            &reason["pct"],
            &reason["size"],
            &reason["capacity"]
        ),
        (&"c1".into(), &94.into(), &940.into(), &1000.into()),
        "{node}"
    );
    assert_eq!(
        node["channels"]["c1"],
        serde_json::json!({"fill":94,"size":940,"cap":1000}),
        "{node}"
    );
    assert!(wd.is_running(), "{}", wd.output());
}

#[test]
fn a_healthy_agent_writes_its_summary_once_and_no_endpoint_means_no_node() {
    let pair = pair("health_steady");
    let port = free_port();
    // The port given as two arguments of their own this time.
    let _wd = pair.watchdog(
        "h2",
        &HEALTH,
        &[
            "-Dflume.monitoring.type=http",
            &format!("-Dflume.monitoring.port={port}"),
        ],
    );
    let _plain = pair.watchdog("h0", &HEALTH, &[]);
    let path = health_path(&pair, "h2");
    let (first, stat) = health::wait_first_healthy(&pair.probe, &path);
    assert_eq!(
        first["channels"]["c1"],
        serde_json::json!({"fill":0,"size":0,"cap":1000}),
        "{first}"
    );
    assert_eq!(first["v"], 1, "{first}");
    assert!(
        first.to_string().len() < 200,
        "compact: {} bytes: {first}",
        first.to_string().len()
    );
    // Eight more polls (4 s), the sink draining all along: not one write more.
    health::wait_polls(port, 8, deadline(20));
    let (now, after) = health::read(&pair.probe, &path).expect("the health node stays");
    assert_eq!(
        (after.version, after.mzxid),
        (stat.version, stat.mzxid),
        "a steady agent writes once: first {first}, now {now}"
    );
    pair.wait_live("h0");
    assert!(
        pair.probe.exists(&health_path(&pair, "h0")).is_none(),
        "an agent without Flume's monitoring has no health node"
    );
}

#[test]
fn a_hung_agent_is_restarted_with_the_cause_on_record() {
    let pair = pair("health_hang");
    let port = free_port();
    let mut args = HEALTH.to_vec();
    args.extend(["--restart-on-hang", "1500ms", "--stop-timeout", "2s"]);
    let wd = pair.watchdog("h3", &args, &[&monitoring_opts(port)]);
    let path = health_path(&pair, "h3");
    let pid = pair.agent_pid("h3");
    health::wait_first_healthy(&pair.probe, &path);

    let began = Instant::now();
    health::control(port, "hang=1", deadline(5));
    let new_pid = pair.wait_restarted("h3", pid);
    eprintln!("hung -> restarted after {:?}", began.elapsed());
    let identity = pair
        .probe
        .get_json(&pair.identity_path("h3"))
        .expect("identity node");
    assert_eq!(identity["restarts"], 1, "{identity}");
    assert_eq!(
        identity["restarted_for"]["cause"], "metrics_hung",
        "{identity}"
    );
    let ms = identity["restarted_for"]["ms"].as_u64().unwrap_or(0);
    assert!((1500..10_000).contains(&ms), "{identity}");
    // The stand-in ends on SIGTERM with code 0, as Flume's shutdown hook does.
    assert_eq!(identity["last_exit"]["code"], 0, "{identity}");
    assert!(
        wd.output().contains("restarted: metrics endpoint hung for"),
        "{}",
        wd.output()
    );
    // The new agent answers: healthy again, in a node of its own run.
    health::wait_for(
        &pair.probe,
        &path,
        "healthy after the restart",
        deadline(20),
        healthy,
    );
    assert_ne!(new_pid, pid);
}

#[test]
fn garbage_never_crashes_the_watchdog() {
    let pair = pair("health_garbage");
    let port = free_port();
    let wd = pair.watchdog("h4", &HEALTH, &[&monitoring_opts(port)]);
    let path = health_path(&pair, "h4");
    health::wait_first_healthy(&pair.probe, &path);
    // Not JSON, a figure that is no number, not an object, a 2 MB body: three polls each.
    for kind in 1..=4 {
        health::control(port, &format!("garbage={kind}"), deadline(5));
        health::wait_polls(port, 3, deadline(20));
        assert!(wd.is_running(), "garbage={kind}:\n{}", wd.output());
        let (node, _) = health::wait_for(
            &pair.probe,
            &path,
            &format!("degraded by garbage={kind}"),
            deadline(10),
            degraded_by("metrics_garbled"),
        );
        assert!(node["reasons"][0]["error"].is_string(), "{node}");
    }
    health::control(port, "resume", deadline(5));
    health::wait_for(
        &pair.probe,
        &path,
        "healthy after the garbage",
        deadline(10),
        healthy,
    );
    assert!(wd.is_running(), "{}", wd.output());
}

#[test]
fn a_verdict_found_while_zookeeper_is_away_is_written_in_the_new_session() {
    let mut zk = ZkServer::start();
    let root = unique_root("health_zk_away");
    let pair = Pair::new(&zk.connect_string(), &root);
    let port = free_port();
    let wd = pair.watchdog("h5", &HEALTH, &[&monitoring_opts(port)]);
    let path = health_path(&pair, "h5");
    let (_, before) = health::wait_first_healthy(&pair.probe, &path);
    drop(pair);
    let mark = wd.mark();
    zk.stop();
    wd.wait_for_line_since(
        mark,
        |l| l.contains("zookeeper session lost"),
        deadline(20),
        "the watchdog to see its session end",
    );
    // Judged and not writable: the summary waits for the next session.
    health::control(port, "size=950", deadline(5));
    health::wait_polls(port, 3, deadline(10));
    zk.start_again();
    let probe = scenarios::ZkProbe::connect(&zk.connect_string());
    let (node, after) = health::wait_for(
        &probe,
        &path,
        "the degraded verdict, in a node of the new session",
        deadline(30),
        degraded_by("channel_full"),
    );
    assert_ne!(after.ephemeral_owner, before.ephemeral_owner, "{node}");
    assert!(wd.is_running(), "{}", wd.output());
}
