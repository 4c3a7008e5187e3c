//! Silences against a real ZooKeeper and real watchers (issue 12): a planned maintenance never
//! pages, and a forgotten silence never hides an agent that stayed dead.
//!
//! The silences are written as `flume-watcher silence add` writes them (`SilenceRecord`), by the
//! test's own ZooKeeper session, so that what is tested here is the watchers' side alone. The
//! agents are stand-ins made by that session too (an identity node, and a liveness node created
//! and deleted), as the sentinel is: what the watchers see is exactly a crash.

use std::time::{Duration, SystemTime};

use common::silence::SilenceRecord;
use scenarios::pair::{events_of, wait_took_over, Pair};
use scenarios::{deadline, unique_root, ZkServer};

fn put_silence(pair: &Pair, id: &str, agent: &str, ends: SystemTime) {
    let record = SilenceRecord {
        v: 1,
        agent: agent.into(),
        host: None,
        labels: Default::default(),
        starts_at: common::time::format(SystemTime::now() - Duration::from_secs(1)),
        ends_at: common::time::format(ends),
        created_by: "ops@bastion".into(),
        comment: "kernel upgrade".into(),
    };
    let dir = format!("{}/silences", pair.root);
    if pair.probe.exists(&dir).is_none() {
        pair.probe.create(&dir, b"", false);
    }
    pair.probe
        .create(&format!("{dir}/{id}"), &record.to_json(), false);
}

/// An agent that crashes and stays down: its identity node, and a liveness node that vanishes.
fn crash(pair: &Pair, id: &str) {
    pair.probe.create(
        &pair.identity_path(id),
        br#"{"host":"rack7-01","state":"running"}"#,
        false,
    );
    let live = pair.live_path(id);
    pair.probe
        .create(&live, br#"{"host":"rack7-01","watchdog_pid":0}"#, true);
    pair.probe.delete(&live);
}

fn silence_seen(watcher: &scenarios::Proc, id: &str) {
    watcher.wait_for_line_where(
        |l| l.contains("silence set") && l.contains(id),
        deadline(15),
        &format!("the watcher to read silence {id}"),
    );
}

/// Two watchers honour a silence at once; the leader records the silenced agent's outage and
/// sends nothing; killed, it leaves the follower to hush the down again from the record and send
/// it, once, when the silence ends with the agent still down.
#[test]
fn a_silenced_down_is_recorded_and_sent_once_by_the_next_leader_when_the_silence_ends() {
    let mut pair = Pair::start(
        &ZkServer::shared().connect_string(),
        &unique_root("silence_failover"),
    );
    let follower = pair.spawn_watcher("follower", &[]);
    follower.wait_for_line("watcher ready", deadline(15), "the follower's first view");
    // Long enough for a crash, a sentinel and a takeover (a 2 s session to expire) on a loaded
    // machine; checked below before it is relied on.
    let ends = SystemTime::now() + Duration::from_secs(20);
    put_silence(&pair, "0000a001", "maint-*", ends);
    silence_seen(pair.watcher.as_ref().expect("leader"), "0000a001");
    silence_seen(&follower, "0000a001");

    crash(&pair, "maint-a1");
    pair.sentinel("sentinel-1");
    assert_eq!(
        events_of(&pair.receiver.alerts(), "maint-a1"),
        Vec::<String>::new(),
        "a silenced agent's down is not sent"
    );
    let record = pair
        .probe
        .get_json(&format!("{}/outages/maint-a1", pair.root))
        .expect("the silenced outage is recorded all the same");
    assert_eq!(record["closed"], false, "{record}");

    pair.kill_watcher();
    wait_took_over(&follower);
    assert!(
        SystemTime::now() < ends,
        "premise: the takeover happened within the silence (it took too long on this machine)"
    );
    let got = pair.receiver.wait_for_alerts(
        |all| events_of(all, "maint-a1") == ["down"],
        deadline(40),
        "maint-a1's down once the silence ends",
    );
    let arrived = SystemTime::now();
    assert!(
        arrived >= ends,
        "the down came {:?} before the silence ended",
        ends.duration_since(arrived).unwrap_or_default()
    );
    let down = got
        .iter()
        .find(|a| a["agent"] == "maint-a1")
        .expect("maint-a1's down");
    assert_eq!(down["host"], "rack7-01", "{down}");
    assert_eq!(
        (&down["silenced"]["id"], &down["silenced"]["comment"]),
        (
            &serde_json::json!("0000a001"),
            &serde_json::json!("kernel upgrade")
        ),
        "the down says which silence held it: {down}"
    );
    pair.sentinel("sentinel-2");
    assert_eq!(
        events_of(&pair.receiver.alerts(), "maint-a1"),
        ["down"],
        "sent once"
    );
}

/// An agent back within its silence never pages, down or recovered; removing a silence sends at
/// once what it held for an agent still down.
#[test]
fn an_agent_back_within_its_silence_never_pages_and_a_removed_silence_lets_the_down_through() {
    let pair = Pair::start(
        &ZkServer::shared().connect_string(),
        &unique_root("silence_quiet"),
    );
    let watcher = pair.watcher.as_ref().expect("watcher");
    put_silence(
        &pair,
        "0000b001",
        "quiet-*",
        SystemTime::now() + Duration::from_secs(3600),
    );
    silence_seen(watcher, "0000b001");

    crash(&pair, "quiet-a1");
    pair.probe.create(
        &pair.live_path("quiet-a1"),
        br#"{"host":"rack7-01","watchdog_pid":0}"#,
        true,
    );
    watcher.wait_for_line_where(
        |l| l.contains("quiet-a1") && l.contains("recovered"),
        deadline(15),
        "quiet-a1's recovery decided (live again for --recovered-after)",
    );
    crash(&pair, "quiet-a2");
    pair.sentinel("sentinel-1");
    let alerts = pair.receiver.alerts();
    assert_eq!(
        (
            events_of(&alerts, "quiet-a1"),
            events_of(&alerts, "quiet-a2")
        ),
        (Vec::new(), Vec::new()),
        "nothing sent for silenced agents"
    );

    pair.probe
        .delete(&format!("{}/silences/0000b001", pair.root));
    pair.receiver.wait_for_alerts(
        |all| events_of(all, "quiet-a2") == ["down"],
        deadline(10),
        "quiet-a2's down once its silence is removed",
    );
    pair.sentinel("sentinel-2");
    assert_eq!(
        events_of(&pair.receiver.alerts(), "quiet-a1"),
        Vec::<String>::new(),
        "an outage over within the silence is never sent"
    );
}
