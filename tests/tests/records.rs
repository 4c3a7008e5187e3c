//! Outage records the watcher cannot read are kept, never deleted, and alerting goes on.

use nix::sys::signal::Signal;
use scenarios::pair::{events_of, Pair};
use scenarios::{unique_root, ZkServer};

#[test]
fn an_unreadable_outage_record_is_kept_and_the_agent_is_still_alerted() {
    let pair = Pair::start(
        &ZkServer::shared().connect_string(),
        &unique_root("unreadable"),
    );
    // Another tool's, a later version's or a hand-edited record: not JSON this watcher can read.
    let path = format!("{}/outages/u1", pair.root);
    pair.probe
        .create(&format!("{}/outages", pair.root), b"", false);
    pair.probe
        .create(&path, b"{\"written by\": a later tool", false);
    let _wd = pair.watchdog("u1", &[], &[]);
    let pid = pair.agent_pid("u1");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGUSR1).expect("crash");
    pair.wait_events("u1", &["down", "recovered"], 30);
    pair.sentinel("sentinel");
    assert_eq!(
        events_of(&pair.receiver.alerts(), "u1"),
        ["down", "recovered"],
        "each once"
    );
    let (data, _) = pair.probe.get(&path).expect("the record is never deleted");
    assert_eq!(data, b"{\"written by\": a later tool", "nor overwritten");
    let watcher = pair.watcher.as_ref().expect("watcher");
    assert_eq!(
        watcher.count_lines("outage record cannot be read"),
        1,
        "logged once:\n{}",
        watcher.output()
    );
}
