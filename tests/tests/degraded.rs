//! Issue 11, the watcher's side: a real ZooKeeper, the real watchdog around the stand-in agent
//! (told what Flume metrics to serve), the real watcher with a webhook: a stalled sink is one
//! `degraded` (with the figures), its end one `healthy` (with how long it lasted), told once even
//! when the watcher restarts in between; a crash while degraded supersedes the degradation.
//!
//! Premise: the watchdog polls every 500 ms and clears a verdict as soon as its reasons are gone
//! (`--health-hold 0s`); the rules are otherwise the defaults (two readings in a row).

use std::time::Instant;

use nix::sys::signal::Signal;
use scenarios::health::{self, monitoring_opts};
use scenarios::pair::{events_of, Pair};
use scenarios::{deadline, free_port, unique_root, ZkServer};
use serde_json::Value;

const HEALTH: [&str; 4] = ["--health-interval", "500ms", "--health-hold", "0s"];
/// How soon a condition must be told (see where it is checked).
const BOUND: std::time::Duration = std::time::Duration::from_secs(3);

fn alerts_of(pair: &Pair, id: &str, event: &str) -> Vec<Value> {
    pair.receiver
        .alerts()
        .into_iter()
        .filter(|a| a["agent"] == id && a["event"] == event)
        .collect()
}

fn wait_event(pair: &Pair, id: &str, events: &[&str], what: &str) -> Vec<Value> {
    pair.receiver
        .wait_for_alerts(|all| events_of(all, id) == events, deadline(20), what)
}

#[test]
fn a_stalled_sink_is_one_degraded_with_its_figures_then_one_healthy_across_a_watcher_restart() {
    let mut pair = Pair::start(
        &ZkServer::shared().connect_string(),
        &unique_root("degraded_stall"),
    );
    let port = free_port();
    let _wd = pair.watchdog("dg-a1", &HEALTH, &[&monitoring_opts(port)]);
    health::wait_first_healthy(&pair.probe, &format!("{}/health/dg-a1", pair.root));
    let stalled = Instant::now();
    health::control(port, "stall=1&size=100", deadline(5));
    let all = wait_event(
        &pair,
        "dg-a1",
        &["degraded"],
        "one degraded for the stalled sink",
    );
    let took = stalled.elapsed();
    let degraded = alerts_of(&pair, "dg-a1", "degraded").remove(0);
    eprintln!("FIGURE degraded: a stalled sink → the degraded alert at the webhook in {took:?}");
    assert!(
        degraded["reason"].as_str().unwrap_or("").contains("sink"),
        "the reason names the sink: {degraded}"
    );
    assert_eq!(
        degraded["health"]["reasons"][0]["kind"], "sink_stalled",
        "the webhook body carries the figures: {degraded}"
    );
    assert!(degraded["health"]["channels"].is_object(), "{degraded}");
    drop(all);
    // `status` shows it degraded, and why.
    let out = std::process::Command::new(scenarios::bin("flume-watcher"))
        .args(["status", "--zk", &pair.connect, "--root", &pair.root])
        .output()
        .expect("status runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let row = text
        .lines()
        .find(|l| l.starts_with("dg-a1 "))
        .unwrap_or_else(|| panic!("no row for dg-a1:\n{text}"));
    assert!(row.contains("degraded"), "{text}");
    assert!(
        text.contains("dg-a1 degraded: sink k1 drained 0 events"),
        "why: {text}"
    );

    // The same degradation over more polls, and a watcher restarted meanwhile: nothing more.
    let mark = pair.receiver.count();
    let old = pair.watcher.take().expect("a watcher");
    old.signal(Signal::SIGTERM);
    old.wait_exit(deadline(20));
    // Its record says the degradation was told: the next watcher does not tell it again.
    let record = format!("{}/outages/dg-a1~health", pair.root);
    assert!(
        pair.probe.get_json(&record).is_some(),
        "the degradation's record {record} was written"
    );
    pair.start_watcher();
    health::wait_polls(port, 4, deadline(10));
    pair.sentinel("sentinel-0");
    assert_eq!(
        alerts_of(&pair, "dg-a1", "degraded").len(),
        1,
        "told once, across the restart: {:?}",
        pair.receiver.since(mark)
    );

    // It clears: one healthy, from the new watcher, with how long it lasted.
    health::control(port, "resume", deadline(5));
    wait_event(
        &pair,
        "dg-a1",
        &["degraded", "healthy"],
        "one healthy after resume",
    );
    let back = alerts_of(&pair, "dg-a1", "healthy").remove(0);
    assert!(
        back["outage_seconds"].as_f64().is_some_and(|s| s > 0.0),
        "how long it lasted: {back}"
    );
}

#[test]
fn a_crash_while_degraded_is_a_down_and_no_healthy() {
    let pair = Pair::start(
        &ZkServer::shared().connect_string(),
        &unique_root("degraded_crash"),
    );
    let port = free_port();
    let _wd = pair.watchdog("dg-b1", &HEALTH, &[&monitoring_opts(port)]);
    let pid = pair.agent_pid("dg-b1");
    health::control(port, "size=950", deadline(5));
    wait_event(&pair, "dg-b1", &["degraded"], "degraded for a full channel");
    // The agent crashes: its down says more; the agent that comes back is judged afresh.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL).expect("kill");
    let restarted = pair.wait_restarted("dg-b1", pid);
    assert_ne!(restarted, pid);
    wait_event(
        &pair,
        "dg-b1",
        &["degraded", "down", "recovered"],
        "the crash's down and recovered",
    );
    pair.sentinel("sentinel-0");
    assert!(
        alerts_of(&pair, "dg-b1", "healthy").is_empty(),
        "a down supersedes the degradation: {:?}",
        events_of(&pair.receiver.alerts(), "dg-b1")
    );
}

#[test]
fn each_condition_is_one_degraded_naming_its_rule_and_one_healthy_after_it_resumes() {
    let pair = Pair::start(
        &ZkServer::shared().connect_string(),
        &unique_root("degraded_each"),
    );
    let port = free_port();
    let _wd = pair.watchdog("dg-c1", &HEALTH, &[&monitoring_opts(port)]);
    health::wait_first_healthy(&pair.probe, &format!("{}/health/dg-c1", pair.root));
    // (what, control query, the rule the alert names)
    let cases = [
        ("a channel 95 % full", "size=950", "channel_full"),
        ("a stalled sink", "stall=1&size=100", "sink_stalled"),
        (
            "a file channel whose replay failed",
            "unhealthy=1",
            "channel_unhealthy",
        ),
        ("a sink that stopped", "stop=1", "component_stopped"),
        ("a hung JVM", "hang=1", "metrics_unanswered"),
        ("garbage from the port", "garbage=1", "metrics_garbled"),
    ];
    let mut events: Vec<&str> = Vec::new();
    for (what, query, rule) in cases {
        let began = Instant::now();
        health::control(port, query, deadline(5));
        events.push("degraded");
        wait_event(&pair, "dg-c1", &events, &format!("one degraded for {what}"));
        let took = began.elapsed();
        let told = alerts_of(&pair, "dg-c1", "degraded")
            .pop()
            .expect("the degraded");
        assert_eq!(told["health"]["reasons"][0]["kind"], rule, "{what}: {told}");
        eprintln!("FIGURE degraded-each: {what}: the degraded alert after {took:?}");
        // Two polls of 500 ms, the phase of the first, a read's 250 ms timeout and delivery:
        // 3 s leaves room for a loaded machine.
        assert!(
            took <= BOUND,
            "{what}: the degraded alert only after {took:?}"
        );
        health::control(port, "resume", deadline(5));
        events.push("healthy");
        wait_event(
            &pair,
            "dg-c1",
            &events,
            &format!("one healthy after {what}"),
        );
    }
}

#[test]
fn a_hung_agent_restarted_by_its_watchdog_is_a_down_that_says_so_then_recovered() {
    let pair = Pair::start(
        &ZkServer::shared().connect_string(),
        &unique_root("degraded_hang"),
    );
    let port = free_port();
    let mut args = HEALTH.to_vec();
    args.extend(["--restart-on-hang", "1500ms", "--stop-timeout", "2s"]);
    let _wd = pair.watchdog("dg-h1", &args, &[&monitoring_opts(port)]);
    let pid = pair.agent_pid("dg-h1");
    health::wait_first_healthy(&pair.probe, &format!("{}/health/dg-h1", pair.root));
    health::control(port, "hang=1", deadline(5));
    pair.wait_restarted("dg-h1", pid);
    // The hang is first a degradation (no answer for two polls), then the restart's down,
    // which supersedes it, then the recovery of the new agent.
    wait_event(
        &pair,
        "dg-h1",
        &["degraded", "down", "recovered"],
        "degraded, then the restart's down, then recovered",
    );
    let down = alerts_of(&pair, "dg-h1", "down").remove(0);
    let reason = down["reason"].as_str().unwrap_or("");
    assert!(
        reason.starts_with("restarted: metrics endpoint hung for "),
        "the down says why the watchdog restarted it: {down}"
    );
}

#[test]
fn garbage_in_a_health_node_never_crashes_the_watcher() {
    let pair = Pair::start(
        &ZkServer::shared().connect_string(),
        &unique_root("degraded_garbage"),
    );
    let dir = format!("{}/health", pair.root);
    pair.probe.create(&dir, b"", false);
    for (i, garbage) in [
        &b"not json"[..],
        b"{}",
        b"{\"v\":1,\"verdict\":\"degraded\",\"reasons\":7}",
        b"{\"v\":1,\"at\":\"x\",\"verdict\":\"weird\"}",
        b"\xff\xfe",
        b"[]",
    ]
    .into_iter()
    .enumerate()
    {
        pair.probe.create(&format!("{dir}/g-{i}"), garbage, true);
    }
    // Foreign names under the folder too.
    pair.probe.create(&format!("{dir}/not an id!"), b"{}", true);
    pair.sentinel("sentinel-0");
    let watcher = pair.watcher.as_ref().expect("a watcher");
    assert!(watcher.is_running(), "{}", watcher.output());
    let told: Vec<Value> = pair
        .receiver
        .alerts()
        .into_iter()
        .filter(|a| a["agent"].as_str().is_some_and(|id| id.starts_with("g-")))
        .collect();
    assert!(told.is_empty(), "garbage is no degradation: {told:?}");
}
