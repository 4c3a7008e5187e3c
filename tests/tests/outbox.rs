//! Alerts are durable: recorded in ZooKeeper before delivery, delivered once the receiver works,
//! also across a watcher restart, and never repeated by a watcher that restarts.

use nix::sys::signal::Signal;
use scenarios::pair::{events_of, Pair};
use scenarios::receiver::alerts_of;
use scenarios::{deadline, unique_root, ZkServer};

fn shared(name: &str) -> Pair {
    Pair::start(&ZkServer::shared().connect_string(), &unique_root(name))
}

#[test]
fn an_alert_the_receiver_refused_is_delivered_after_a_watcher_restart_exactly_once() {
    let mut pair = shared("outbox_restart");
    let _wd = pair.watchdog("r1", &[], &[]);
    let pid = pair.agent_pid("r1");
    pair.receiver.set_reply(500, "receiver broken");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGUSR1)
        .expect("signal the agent");
    // The watcher keeps trying: wait for two refused attempts of the down.
    pair.receiver.wait_for(
        |r| {
            events_of(&alerts_of(r), "r1")
                .iter()
                .filter(|e| *e == "down")
                .count()
                >= 2
        },
        deadline(10),
        "retried downs",
    );
    pair.watcher
        .as_ref()
        .expect("watcher")
        .signal(Signal::SIGKILL);
    pair.watcher.take().expect("watcher").wait_exit(deadline(5));
    pair.receiver.set_reply(200, r#"{"errcode":0}"#);
    let accepted_from = pair.receiver.requests().len();
    pair.start_watcher();
    let accepted = |reqs: &[scenarios::Request]| {
        events_of(&alerts_of(&reqs[accepted_from.min(reqs.len())..]), "r1")
    };
    pair.receiver.wait_for(
        |r| accepted(r) == ["down", "recovered"],
        deadline(20),
        "the down, then recovered, from the restarted watcher",
    );
    pair.sentinel("sentinel");
    let reqs = pair.receiver.requests();
    assert_eq!(accepted(&reqs), ["down", "recovered"], "each once");
    let down = alerts_of(&reqs[accepted_from..])
        .into_iter()
        .find(|a| a["agent"] == "r1")
        .expect("down");
    assert_eq!(
        down["reason"], "exited with code 3",
        "the recorded alert keeps its reason: {down}"
    );
    assert!(
        pair.probe
            .exists(&format!("{}/outages/r1", pair.root))
            .is_none(),
        "a closed and delivered outage record is pruned"
    );
}

#[test]
fn a_restarted_watcher_does_not_repeat_a_reported_outage_and_still_sends_recovered() {
    let mut pair = shared("outbox_no_repeat");
    let wd = pair.watchdog("n1", &[], &[]);
    pair.agent_pid("n1");
    wd.signal(Signal::SIGKILL);
    pair.wait_events("n1", &["down"], 10);
    let watcher = pair.watcher.take().expect("watcher");
    watcher.signal(Signal::SIGTERM);
    assert_eq!(watcher.wait_exit(deadline(10)).code(), Some(0));
    pair.start_watcher();
    pair.sentinel("sentinel-1");
    assert_eq!(
        events_of(&pair.receiver.alerts(), "n1"),
        ["down"],
        "the outage was reported before the restart"
    );
    let _again = pair.watchdog("n1", &[], &[]);
    pair.wait_events("n1", &["down", "recovered"], 15);
    pair.sentinel("sentinel-2");
    assert_eq!(
        events_of(&pair.receiver.alerts(), "n1"),
        ["down", "recovered"]
    );
}
