//! Several watchers on one root: one leads and delivers, the others follow with a warm view and
//! take over when the leader's session ends — each alert delivered once.

use nix::sys::signal::Signal;
use scenarios::pair::{events_of, wait_took_over, Pair};
use scenarios::receiver::alerts_of;
use scenarios::{deadline, unique_root, Request, ZkServer};

fn two_watchers(name: &str) -> (Pair, scenarios::Proc) {
    let pair = Pair::start(&ZkServer::shared().connect_string(), &unique_root(name));
    let follower = pair.spawn_watcher("follower", &[]);
    follower.wait_for_line(
        "another watcher leads; following",
        deadline(15),
        "the second watcher to follow",
    );
    follower.wait_for_line("watcher ready", deadline(15), "the follower's first view");
    (pair, follower)
}

#[test]
fn two_watchers_deliver_each_alert_once() {
    let (pair, _follower) = two_watchers("ha_once");
    let _wd = pair.watchdog("h1", &[], &[]);
    let pid = pair.agent_pid("h1");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGUSR1)
        .expect("signal the agent");
    pair.wait_events("h1", &["down", "recovered"], 15);
    pair.sentinel("sentinel");
    assert_eq!(
        events_of(&pair.receiver.alerts(), "h1"),
        ["down", "recovered"],
        "one watcher delivers, once"
    );
}

#[test]
fn the_follower_takes_over_a_dead_leader_and_delivers_its_pending_alert_once() {
    let (mut pair, follower) = two_watchers("ha_takeover");
    let _wd = pair.watchdog("h2", &[], &[]);
    let pid = pair.agent_pid("h2");
    pair.receiver.set_reply(500, "receiver broken");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGUSR1)
        .expect("signal the agent");
    pair.receiver.wait_for(
        |r| {
            events_of(&alerts_of(r), "h2")
                .iter()
                .filter(|e| *e == "down")
                .count()
                >= 2
        },
        deadline(10),
        "the leader retrying the refused down",
    );
    pair.kill_watcher();
    pair.receiver.set_reply(200, r#"{"errcode":0}"#);
    let from = pair.receiver.requests().len();
    let accepted = |reqs: &[Request]| events_of(&alerts_of(&reqs[from.min(reqs.len())..]), "h2");
    wait_took_over(&follower);
    pair.receiver.wait_for(
        |r| accepted(r) == ["down", "recovered"],
        deadline(20),
        "the pending down, then recovered, from the new leader",
    );
    pair.sentinel("sentinel");
    assert_eq!(
        accepted(&pair.receiver.requests()),
        ["down", "recovered"],
        "each once"
    );
}

#[test]
fn a_leader_killed_while_its_message_is_in_flight_is_repeated_with_the_same_notice_id() {
    let (mut pair, follower) = two_watchers("ha_in_flight");
    let _wd = pair.watchdog("h3", &[], &[]);
    let pid = pair.agent_pid("h3");
    // The receiver takes the message but answers only after the leader is dead: the leader can
    // never note the delivery, so the next leader must send it again.
    pair.receiver.set_delay(std::time::Duration::from_secs(5));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGUSR1)
        .expect("signal the agent");
    pair.receiver.wait_for(
        |r| events_of(&alerts_of(r), "h3").contains(&"down".to_owned()),
        deadline(10),
        "the leader's down, taken by the receiver and not yet answered",
    );
    pair.kill_watcher();
    pair.receiver.set_delay(std::time::Duration::ZERO);
    wait_took_over(&follower);
    pair.receiver.wait_for(
        |r| events_of(&alerts_of(r), "h3").last().map(String::as_str) == Some("recovered"),
        deadline(20),
        "the recovered from the new leader",
    );
    pair.sentinel("sentinel");
    let alerts: Vec<serde_json::Value> = pair
        .receiver
        .alerts()
        .into_iter()
        .filter(|a| a["agent"] == "h3")
        .collect();
    let downs: Vec<&serde_json::Value> = alerts.iter().filter(|a| a["event"] == "down").collect();
    assert_eq!(
        downs.len(),
        2,
        "the down in flight is sent again by the new leader (at-least-once at this edge): {alerts:?}"
    );
    // The repeat is the recorded notice itself when the leader recorded it before it died, or
    // the new leader's own notice of the same transition when it died first (the record is
    // written beside the first delivery attempt, not before it): the same id either way, and the
    // same content but for the time each watcher saw it.
    let without_at = |a: &serde_json::Value| {
        let mut a = a.clone();
        a.as_object_mut().map(|o| o.remove("at"));
        a
    };
    assert_eq!(
        without_at(downs[0]),
        without_at(downs[1]),
        "the repeat is the same notice, same id"
    );
    let mut ids: Vec<&str> = alerts.iter().filter_map(|a| a["id"].as_str()).collect();
    assert_eq!(
        ids.len(),
        alerts.len(),
        "every alert carries an id: {alerts:?}"
    );
    ids.dedup();
    let events: Vec<&str> = ids
        .iter()
        .map(|id| id.split('/').nth(1).unwrap_or(""))
        .collect();
    assert_eq!(
        events,
        ["down", "recovered"],
        "dropping repeats by id leaves each notice once: {alerts:?}"
    );
}

/// An escalation survives a failover: the leader that held a down back from the phone is killed
/// before it falls due; the follower takes over, holds it again from the outage record and sends
/// it when due — not at once, not twice. Premise: the leader's session (2 s) ends and the
/// follower takes over well within the 8 s wait, and the agent (restarted only after 20 s) is
/// still down when it runs out.
#[test]
fn an_escalation_held_by_a_dead_leader_is_sent_by_the_next_when_due() {
    use std::time::Duration;
    let dir = scenarios::TempDir::new("ha-escalation");
    let mut pair = Pair::new(
        &ZkServer::shared().connect_string(),
        &unique_root("ha_escalation"),
    );
    let phone = scenarios::receiver::Receiver::start();
    let after = Duration::from_secs(8);
    let path = dir.join("watcher.toml");
    std::fs::write(
        &path,
        format!(
            "[zookeeper]\nconnect = \"{}\"\nroot = \"{}\"\nsession_timeout = \"{}\"\n\
             [alerts]\nrecovered_after = \"1s\"\nretry_initial = \"100ms\"\nretry_max = \"1s\"\n\
             [[channel]]\nname = \"chat\"\ntype = \"webhook\"\nurl = \"{}\"\n\
             [[channel]]\nname = \"phone\"\ntype = \"webhook\"\nurl = \"{}\"\n\
             [[route]]\nchannels = [\"chat\"]\ncontinue = true\n\
             [[route]]\nafter = \"8s\"\nchannels = [\"phone\"]\n",
            pair.connect,
            pair.root,
            scenarios::pair::SESSION_TIMEOUT,
            pair.receiver.url("/alerts"),
            phone.url("/phone"),
        ),
    )
    .expect("write");
    let run = || {
        let mut cmd = std::process::Command::new(scenarios::bin("flume-watcher"));
        cmd.args(["run", "--config", &path.to_string_lossy()]);
        cmd
    };
    pair.start_watcher_from(run());
    let follower = scenarios::Proc::spawn("follower", run());
    follower.wait_for_line(
        "another watcher leads; following",
        deadline(15),
        "the second watcher to follow",
    );
    let _wd = pair.watchdog(
        "h-esc",
        &["--backoff-initial", "20s"],
        &["--exit-code", "3"],
    );
    let pid = pair.agent_pid("h-esc");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGUSR1)
        .expect("signal the agent");
    let down = pair.wait_events("h-esc", &["down"], 10);
    let at = common::time::parse(down[0]["at"].as_str().unwrap_or_default()).expect("its time");
    pair.kill_watcher();
    wait_took_over(&follower);
    let took_over = std::time::SystemTime::now()
        .duration_since(at)
        .unwrap_or_default();
    assert!(
        took_over < after - Duration::from_secs(2),
        "premise: taken over {took_over:?} after the down, well before the escalation"
    );
    assert!(
        events_of(&alerts_of(&phone.requests()), "h-esc").is_empty(),
        "nothing rang the phone before the escalation was due"
    );
    phone.wait_for(
        |r| events_of(&alerts_of(r), "h-esc") == ["down"],
        deadline(20),
        "the held down, from the new leader, when due",
    );
    let request = phone
        .requests()
        .into_iter()
        .find(|r| !events_of(r.alerts(), "h-esc").is_empty())
        .expect("the phone's request");
    let waited = request.received_wall.duration_since(at).unwrap_or_default();
    assert!(
        waited >= after - Duration::from_millis(50),
        "escalated {waited:?} after the down, before its 8 s"
    );
    assert_eq!(
        request.alerts()[0]["id"],
        down[0]["id"],
        "the same notice id as the chat's"
    );
    pair.sentinel("sentinel");
    phone.wait_for(
        |r| alerts_of(r).iter().any(|a| a["agent"] == "sentinel"),
        deadline(20),
        "the sentinel's down escalated too",
    );
    assert_eq!(
        events_of(&alerts_of(&phone.requests()), "h-esc"),
        ["down"],
        "once"
    );
}
