//! The fault suite: what the pair does when processes freeze or die, when ZooKeeper stops, loses
//! its leader or its quorum, when the watcher is cut off, and when a thousand agents go at once.
//!
//! Every scenario states the alerts it expects and asserts exactly those (the sentinel or an
//! awaited event says the watcher is done; sleeps are only the durations of faults), and that the
//! stand-in agent kept running where it should. Figures are printed as `FIGURE …` lines
//! (`cargo test -p scenarios --test faults -- --nocapture | grep FIGURE`); tests/FAULTS.md has
//! the table. Numbers are those of the issue; 5, 6 and 10 are not built yet.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use scenarios::faults::{
    check_longer_than_session, check_shorter_than_session, create_many, delete_many,
    dumped_sessions, events_without_sentinels, logged_session, messages_naming, session_hex,
    signal_pid, sleep_until, start_pair_with_session, start_watcher_with_session,
    wait_negotiated_timeout, wait_sessions_connected, wait_sessions_gone, watchdog_with_session,
    with_premise, TcpProxy, SHORT_FAULT_SESSION,
};
use scenarios::pair::{events_of, Pair};
use scenarios::{
    deadline, pid_alive, poll_until, unique_root, wait_pid_gone, Proc, ZkEnsemble, ZkProbe,
    ZkServer,
};
use serde_json::Value;

fn shared(name: &str) -> Pair {
    Pair::start(&ZkServer::shared().connect_string(), &unique_root(name))
}

fn watcher(pair: &Pair) -> &Proc {
    pair.watcher.as_ref().expect("a watcher")
}

/// The session timeout a standalone server negotiated for session `owner` (the watchdog's, or
/// the watcher's).
fn negotiated(zk: &ZkServer, owner: &str, what: &str) -> Duration {
    wait_negotiated_timeout(
        || zk.four_letter_word("cons").into_iter().collect(),
        owner,
        what,
    )
}

/// The watcher's current session, as it logged it.
fn watcher_session(pair: &Pair) -> String {
    logged_session(watcher(pair)).unwrap_or_else(|| {
        panic!(
            "the watcher logs its session id:\n{}",
            watcher(pair).output()
        )
    })
}

/// The alerts received so far, per agent, sentinels left out.
fn seen(pair: &Pair) -> BTreeMap<String, Vec<String>> {
    events_without_sentinels(&pair.receiver.alerts())
}

fn expected(items: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
    items
        .iter()
        .map(|(id, evs)| (id.to_string(), evs.iter().map(|e| e.to_string()).collect()))
        .collect()
}

fn live_stat(pair: &Pair, id: &str) -> scenarios::Stat {
    pair.probe
        .exists(&pair.live_path(id))
        .unwrap_or_else(|| panic!("no liveness node for {id}"))
}

/// The first time a webhook message carrying `event` for `id` arrived.
fn arrival(pair: &Pair, id: &str, event: &str) -> Option<Instant> {
    pair.receiver.requests().iter().find_map(|r| {
        scenarios::receiver::alerts_of(std::slice::from_ref(r))
            .iter()
            .any(|a| a["agent"] == id && a["event"] == event)
            .then_some(r.received_at)
    })
}

/// Waits for a liveness node of `id` owned by a session other than `old_owner`; returns its
/// owner and data.
fn wait_new_owner(pair: &Pair, id: &str, old_owner: i64, secs: u64) -> (i64, Value) {
    let path = pair.live_path(id);
    poll_until(
        deadline(secs),
        &format!("{path} owned by a session other than {old_owner:#x}"),
        || {
            let (data, stat) = pair.probe.get(&path)?;
            (stat.ephemeral_owner != old_owner).then(|| {
                (
                    stat.ephemeral_owner,
                    serde_json::from_slice(&data).unwrap_or(Value::Null),
                )
            })
        },
        || format!("{path}: {:?}", pair.probe.get_json(&path)),
    )
}

/// Once the watcher has processed everything (sentinel), an outage still open waits for its
/// `recovered` (it is due `--recovered-after` after the agent is live again).
fn settle(pair: &Pair, sentinel: &str, id: &str) -> Vec<String> {
    pair.sentinel(sentinel);
    let evs = events_of(&pair.receiver.alerts(), id);
    if evs.last().map(String::as_str) == Some("down") {
        pair.receiver.wait_for_alerts(
            |a| events_of(a, id).last().map(String::as_str) == Some("recovered"),
            deadline(15),
            &format!("the recovered closing {id}'s outage"),
        );
    }
    events_of(&pair.receiver.alerts(), id)
}

fn assert_agent_kept(wd: &Proc, id: &str, pid: i32) {
    assert!(pid_alive(pid), "the agent {id} (pid {pid}) kept running");
    assert!(wd.is_running(), "the watchdog of {id} kept running");
    assert_eq!(
        wd.count_lines(&format!("stand-in agent {id} started")),
        1,
        "the agent was started once:\n{}",
        wd.output()
    );
}

// ---------------------------------------------------------------------------------------------
// 1. A frozen watchdog.

#[test]
fn s1_watchdog_frozen_longer_than_its_session_is_one_down_then_one_recovered() {
    let pair = shared("s1_sigstop_long");
    let wd = pair.watchdog("f1", &[], &[]);
    let pid = pair.agent_pid("f1");
    let owner = live_stat(&pair, "f1").ephemeral_owner;
    let mark = wd.mark();

    wd.signal(Signal::SIGSTOP);
    let frozen = Instant::now();
    let gone = pair
        .probe
        .wait_until_gone(&pair.live_path("f1"), deadline(10));
    let down = pair.wait_events("f1", &["down"], 10);
    let down_at = arrival(&pair, "f1", "down").expect("down arrived");
    assert!(
        down[0]["reason"]
            .as_str()
            .unwrap_or("")
            .starts_with("lost contact"),
        "{}",
        down[0]
    );
    assert!(
        pid_alive(pid),
        "the agent runs while its watchdog is frozen"
    );
    // The fault: frozen for 4 s, twice the session timeout. Its premise (longer than the
    // session) holds by construction: SIGCONT comes only after the server removed the liveness
    // node, i.e. after the session expired.
    sleep_until(frozen + Duration::from_secs(4));
    wd.signal(Signal::SIGCONT);
    let thawed = Instant::now();

    wd.wait_for_line_since(
        mark,
        |l| l.contains("zookeeper session lost"),
        deadline(10),
        "the watchdog to notice its session ended",
    );
    let (_, live) = wait_new_owner(&pair, "f1", owner, 15);
    let registered = thawed.elapsed();
    assert_eq!(live["agent_pid"], pid, "the same agent registered: {live}");
    pair.wait_events("f1", &["down", "recovered"], 15);
    let recovered_at = arrival(&pair, "f1", "recovered").expect("recovered arrived");
    pair.sentinel("sentinel");
    assert_eq!(
        seen(&pair),
        expected(&[("f1", &["down", "recovered"])]),
        "exactly one down and one recovered, nothing else"
    );
    assert_agent_kept(&wd, "f1", pid);
    eprintln!(
        "FIGURE s1: freeze 4 s; liveness gone after {:?}; down alert after {:?}; \
         re-registered {:?} after SIGCONT; recovered {:?} after SIGCONT",
        gone - frozen,
        down_at - frozen,
        registered,
        recovered_at - thawed
    );
}

#[test]
fn s1_watchdog_frozen_shorter_than_its_session_is_no_alert() {
    with_premise("s1-short", s1_short);
}

fn s1_short() -> Result<(), String> {
    let pair = shared("s1_sigstop_short");
    let wd = watchdog_with_session(&pair, "g1", SHORT_FAULT_SESSION);
    let pid = pair.agent_pid("g1");
    let before = live_stat(&pair, "g1");
    let session = negotiated(
        ZkServer::shared(),
        &session_hex(before.ephemeral_owner),
        "the watchdog",
    );
    wd.signal(Signal::SIGSTOP);
    let frozen = Instant::now();
    // The fault: frozen for 1 s, well under the session timeout.
    sleep_until(frozen + Duration::from_secs(1));
    wd.signal(Signal::SIGCONT);
    let away = frozen.elapsed();
    check_shorter_than_session("the watchdog's freeze", away, session)?;
    pair.sentinel("sentinel");
    assert_eq!(seen(&pair), expected(&[]), "a short freeze is not an alert");
    let after = live_stat(&pair, "g1");
    assert_eq!(
        (after.ephemeral_owner, after.czxid),
        (before.ephemeral_owner, before.czxid),
        "the same liveness node of the same session"
    );
    assert!(
        !wd.output().contains("session lost"),
        "the watchdog kept its session:\n{}",
        wd.output()
    );
    assert_agent_kept(&wd, "g1", pid);
    eprintln!("FIGURE s1-short: watchdog frozen {away:.2?} (session {session:?}); no alert");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 2. Standalone ZooKeeper stopped.

/// The probe's session in the scenarios of faults shorter than the session: it writes the
/// sentinel afterwards, so it must not lose its session either.
const SHORT_PROBE_SESSION: Duration = Duration::from_secs(12);

/// Waits until the watchdog is connected again with its session `owner` (the server's `cons`
/// lists it); panics, quoting the log, if the watchdog gave its session up instead.
fn wait_watchdog_back_with_session(wd: &Proc, mark: usize, owner: i64, cons: impl Fn() -> String) {
    let hex = scenarios::faults::session_hex(owner);
    let lost = poll_until(
        deadline(15),
        &format!("the watchdog connected again with session {hex}, or giving it up"),
        || {
            if let Some(l) = wd.lines()[mark..]
                .iter()
                .find(|l| l.contains("zookeeper session lost"))
            {
                return Some(Some(l.clone()));
            }
            scenarios::faults::connected_sessions(&cons())
                .contains(&hex)
                .then_some(None)
        },
        &cons,
    );
    if let Some(line) = lost {
        panic!(
            "the watchdog gave up its session {hex} although ZooKeeper was away for less than \
             the session timeout: {line}\n{}",
            wd.output()
        );
    }
}

// ZooKeeper answers again 1.2-1.7 s after the stop here (1 s + JVM start), 3.3-3.5 s on a loaded
// 2-core machine. With the scenarios' 2 s session that was a cliff edge: zookeeper-client gives its
// session up 2.8 s after it last heard. Hence a 12 s session (for the watcher, the watchdog and the
// probe), and the premise measured: ZooKeeper away under half of it.
#[test]
fn s2_zookeeper_stopped_shorter_than_the_session_is_no_alert() {
    with_premise("s2-short", s2_short);
}

fn s2_short() -> Result<(), String> {
    let mut zk = ZkServer::start();
    let mut pair = start_pair_with_session(
        &zk.connect_string(),
        &unique_root("s2_short"),
        SHORT_FAULT_SESSION,
    );
    // The probe writes the sentinel afterwards: it must keep its session too.
    pair.probe = ZkProbe::connect_with_session_timeout(&zk.connect_string(), SHORT_PROBE_SESSION);
    let wd = watchdog_with_session(&pair, "z1", SHORT_FAULT_SESSION);
    let pid = pair.agent_pid("z1");
    let before = live_stat(&pair, "z1");
    let session = negotiated(&zk, &session_hex(before.ephemeral_owner), "the watchdog")
        .min(negotiated(&zk, &watcher_session(&pair), "the watcher"));
    let wd_mark = wd.mark();
    let w_mark = watcher(&pair).mark();

    let stopped = Instant::now();
    zk.stop();
    // The fault: ZooKeeper away for 1 s (plus the time its JVM takes to start again).
    std::thread::sleep(Duration::from_secs(1));
    zk.start_again();
    let back = stopped.elapsed();
    check_shorter_than_session(
        "ZooKeeper's absence (stopped until it answered again)",
        back,
        session,
    )?;
    wait_watchdog_back_with_session(&wd, wd_mark, before.ephemeral_owner, || {
        zk.four_letter_word("cons").unwrap_or_default()
    });
    let reconnected = stopped.elapsed();
    let w_line = watcher(&pair).wait_for_line_since(
        w_mark,
        |l| l.contains("re-listing") || l.contains("session established"),
        deadline(15),
        "the watcher to be back",
    );
    pair.sentinel("sentinel");
    assert_eq!(
        seen(&pair),
        expected(&[]),
        "ZooKeeper away for less than the session timeout is not an alert"
    );
    let after = live_stat(&pair, "z1");
    assert_eq!(
        (after.ephemeral_owner, after.czxid),
        (before.ephemeral_owner, before.czxid),
        "the same liveness node of the same session"
    );
    assert_agent_kept(&wd, "z1", pid);
    eprintln!(
        "FIGURE s2-short: ZooKeeper answering again after {back:?} (1 s stopped + JVM start; \
         session {session:?}); the watchdog back with its session after {reconnected:?}; the \
         watcher: {}",
        if w_line.contains("re-listing") {
            "same session"
        } else {
            "new session"
        }
    );
    Ok(())
}

#[test]
fn s2_zookeeper_frozen_shorter_than_the_session_is_no_alert() {
    with_premise("s2-frozen", s2_frozen);
}

fn s2_frozen() -> Result<(), String> {
    // A 1 s stall of the server (a GC pause): SIGSTOP, then SIGCONT, no JVM start.
    let zk = ZkServer::start();
    let pair = start_pair_with_session(
        &zk.connect_string(),
        &unique_root("s2_frozen"),
        SHORT_FAULT_SESSION,
    );
    let wd = watchdog_with_session(&pair, "z4", SHORT_FAULT_SESSION);
    let pid = pair.agent_pid("z4");
    let before = live_stat(&pair, "z4");
    let session = negotiated(&zk, &session_hex(before.ephemeral_owner), "the watchdog")
        .min(negotiated(&zk, &watcher_session(&pair), "the watcher"));
    let wd_mark = wd.mark();
    let jvm = zk.pid().expect("ZooKeeper runs");
    signal_pid(jvm, Signal::SIGSTOP);
    let frozen = Instant::now();
    // The fault: ZooKeeper frozen for 1 s.
    sleep_until(frozen + Duration::from_secs(1));
    signal_pid(jvm, Signal::SIGCONT);
    let away = frozen.elapsed();
    check_shorter_than_session("ZooKeeper's freeze", away, session)?;
    wait_watchdog_back_with_session(&wd, wd_mark, before.ephemeral_owner, || {
        zk.four_letter_word("cons").unwrap_or_default()
    });
    pair.sentinel("sentinel");
    assert_eq!(
        seen(&pair),
        expected(&[]),
        "ZooKeeper stalled for less than the session timeout is not an alert"
    );
    let after = live_stat(&pair, "z4");
    assert_eq!(
        (after.ephemeral_owner, after.czxid),
        (before.ephemeral_owner, before.czxid),
        "the same liveness node of the same session"
    );
    assert_agent_kept(&wd, "z4", pid);
    eprintln!(
        "FIGURE s2-frozen: ZooKeeper frozen {away:.2?} (session {session:?}); no alert; the \
         watchdog's session kept: {}",
        !wd.output().contains("session lost")
    );
    Ok(())
}

#[test]
fn s2_zookeeper_unreachable_shorter_than_the_session_is_no_alert() {
    with_premise("s2-unreachable", s2_unreachable);
}

fn s2_unreachable() -> Result<(), String> {
    // ZooKeeper keeps running; the watcher and the watchdog reach it through a proxy that cuts
    // them off for 1 s (the probe and the sentinel go direct).
    let zk = ZkServer::shared();
    let proxy = TcpProxy::start(&zk.connect_string());
    let mut pair = Pair::new(&zk.connect_string(), &unique_root("s2_unreachable"));
    pair.connect = proxy.connect_string();
    start_watcher_with_session(&mut pair, SHORT_FAULT_SESSION);
    let wd = watchdog_with_session(&pair, "z3", SHORT_FAULT_SESSION);
    let pid = pair.agent_pid("z3");
    let before = live_stat(&pair, "z3");
    let session = negotiated(zk, &session_hex(before.ephemeral_owner), "the watchdog")
        .min(negotiated(zk, &watcher_session(&pair), "the watcher"));
    let wd_mark = wd.mark();
    let w_mark = watcher(&pair).mark();

    proxy.block();
    let cut = Instant::now();
    // The fault: ZooKeeper unreachable for 1 s.
    sleep_until(cut + Duration::from_secs(1));
    proxy.unblock();
    let away = cut.elapsed();
    check_shorter_than_session("the cut", away, session)?;
    wait_watchdog_back_with_session(&wd, wd_mark, before.ephemeral_owner, || {
        zk.four_letter_word("cons").unwrap_or_default()
    });
    let reconnected = cut.elapsed();
    // The watcher either resumes its session or (when the cut hits a read it was making) opens
    // a new one; either way it re-lists, and the sentinel proves it is done.
    let w_line = watcher(&pair).wait_for_line_since(
        w_mark,
        |l| l.contains("re-listing") || l.contains("session established"),
        deadline(15),
        "the watcher to be back",
    );
    pair.sentinel("sentinel");
    assert_eq!(
        seen(&pair),
        expected(&[]),
        "ZooKeeper unreachable for less than the session timeout is not an alert"
    );
    let after = live_stat(&pair, "z3");
    assert_eq!(
        (after.ephemeral_owner, after.czxid),
        (before.ephemeral_owner, before.czxid),
        "the same liveness node of the same session"
    );
    assert_agent_kept(&wd, "z3", pid);
    eprintln!(
        "FIGURE s2-unreachable: cut off {away:.2?} (session {session:?}); the watchdog back with \
         its session after {reconnected:?}; the watcher: {}",
        if w_line.contains("re-listing") {
            "same session"
        } else {
            "new session"
        }
    );
    Ok(())
}

#[test]
fn s2_zookeeper_stopped_longer_than_the_session_is_no_alert() {
    with_premise("s2-long", s2_long);
}

fn s2_long() -> Result<(), String> {
    let mut zk = ZkServer::start();
    let mut pair = Pair::start(&zk.connect_string(), &unique_root("s2_long"));
    let wd = pair.watchdog("z2", &[], &[]);
    let pid = pair.agent_pid("z2");
    let owner = live_stat(&pair, "z2").ephemeral_owner;
    let session = negotiated(&zk, &session_hex(owner), "the watchdog").max(negotiated(
        &zk,
        &watcher_session(&pair),
        "the watcher",
    ));
    let old_sessions = dumped_sessions(&zk.four_letter_word("dump").unwrap_or_default());
    let wd_mark = wd.mark();
    let w_mark = watcher(&pair).mark();

    let stopped = Instant::now();
    zk.stop();
    // The fault: ZooKeeper away for 5 s, longer than every client's session.
    std::thread::sleep(Duration::from_secs(5));
    // Surely away until now (it answers only some time after this).
    let away = stopped.elapsed();
    zk.start_again();
    let restarted = Instant::now();
    check_longer_than_session("ZooKeeper's absence", away, session, Duration::from_secs(1))?;
    wd.wait_for_line_since(
        wd_mark,
        |l| l.contains("zookeeper session lost"),
        deadline(10),
        "the watchdog to give up its old session",
    );
    watcher(&pair).wait_for_line_since(
        w_mark,
        |l| l.contains("zookeeper session lost"),
        deadline(10),
        "the watcher to give up its old session",
    );
    // The probe's own session may have ended too.
    pair.probe = ZkProbe::connect(&zk.connect_string());
    let (_, live) = wait_new_owner(&pair, "z2", owner, 20);
    let registered = restarted.elapsed();
    assert_eq!(live["agent_pid"], pid, "the same agent registered: {live}");
    // The server restored the old sessions at its restart; wait until they expired, so that
    // nothing they own can still vanish.
    wait_sessions_gone(
        || zk.four_letter_word("dump"),
        &old_sessions,
        deadline(20),
        "every session from before the outage",
    );
    let events = settle(&pair, "sentinel", "z2");
    eprintln!(
        "FIGURE s2-long: ZooKeeper away {:?} in all; re-registered {registered:?} after it \
         answered; alerts for z2: {events:?}; all alerts: {:?}",
        restarted - stopped,
        pair.receiver.alerts()
    );
    assert_eq!(
        seen(&pair),
        BTreeMap::new(),
        "no alert: the agent never stopped (ZooKeeper away for 5 s)"
    );
    assert_agent_kept(&wd, "z2", pid);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 3. A 3-node ensemble: leader lost, follower lost, quorum lost.

fn cons_of_running(ens: &ZkEnsemble) -> Vec<String> {
    (0..ens.len())
        .filter(|&i| ens.is_running(i))
        .filter_map(|i| scenarios::zk::four_letter_word(port_of(ens, i), "cons"))
        .collect()
}

fn port_of(ens: &ZkEnsemble, i: usize) -> u16 {
    ens.connect_string_of(i)
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port")
}

/// The sessions of scenario 3: phases A and B are faults shorter than the session (the ensemble
/// is without a leader for well under 4 s), phase C one longer (20 s without a quorum, against
/// 12.4 s, that is 7/5 plus 3/20 of 8 s, after which every client has given its session up). A
/// longer session would make phase C wait longer for the old sessions to expire.
const S3_SESSION: &str = "8s";

#[test]
fn s3_ensemble_leader_loss_follower_loss_and_quorum_loss_are_no_alert() {
    with_premise("s3", s3_ensemble);
}

fn s3_ensemble() -> Result<(), String> {
    let mut ens = ZkEnsemble::start();
    let mut pair = start_pair_with_session(
        &ens.connect_string(),
        &unique_root("s3_ensemble"),
        S3_SESSION,
    );
    pair.probe =
        ZkProbe::connect_with_session_timeout(&ens.connect_string(), Duration::from_secs(8));
    let wd = watchdog_with_session(&pair, "q1", S3_SESSION);
    let pid = pair.agent_pid("q1");
    let before = live_stat(&pair, "q1");
    let (shortest, longest) = {
        let ask = || cons_of_running(&ens);
        let wd_session =
            wait_negotiated_timeout(ask, &session_hex(before.ephemeral_owner), "the watchdog");
        let w_session = wait_negotiated_timeout(ask, &watcher_session(&pair), "the watcher");
        (wd_session.min(w_session), wd_session.max(w_session))
    };
    let all_sessions = || -> BTreeSet<String> {
        cons_of_running(&ens)
            .iter()
            .flat_map(|c| scenarios::faults::connected_sessions(c))
            .collect()
    };
    let sessions = all_sessions();
    assert!(
        sessions.len() >= 3,
        "watcher, watchdog, probe: {sessions:?}"
    );

    // A. The leader dies.
    let leader = ens.leader_index();
    let t = Instant::now();
    ens.stop(leader);
    let new_leader = ens.leader_index();
    let elected = t.elapsed();
    check_shorter_than_session(
        "the ensemble without a leader (leader killed until another was elected)",
        elected,
        shortest,
    )?;
    wait_sessions_connected(
        || cons_of_running(&ens),
        &sessions,
        deadline(15),
        "every client after the leader died",
    );
    let reconnected = t.elapsed();
    pair.sentinel("sentinel-a");
    assert_eq!(
        seen(&pair),
        expected(&[]),
        "losing the leader is not an alert"
    );
    let now = live_stat(&pair, "q1");
    assert_eq!(
        (now.ephemeral_owner, now.czxid),
        (before.ephemeral_owner, before.czxid)
    );
    eprintln!(
        "FIGURE s3-leader: node {leader} (leader) killed; node {new_leader} leads after \
         {elected:?}; every session connected again after {reconnected:?}"
    );
    ens.start_again(leader);

    // B. A follower dies: the one the watchdog is connected to, if it is on a follower.
    let leader = ens.leader_index();
    let wd_hex = scenarios::faults::session_hex(before.ephemeral_owner);
    let serves_watchdog = |i: usize| {
        scenarios::zk::four_letter_word(port_of(&ens, i), "cons")
            .is_some_and(|c| scenarios::faults::connected_sessions(&c).contains(&wd_hex))
    };
    let follower = (0..3)
        .filter(|&i| i != leader)
        .find(|&i| serves_watchdog(i))
        .unwrap_or_else(|| (0..3).find(|&i| i != leader).expect("a follower"));
    let had_watchdog = serves_watchdog(follower);
    let t = Instant::now();
    ens.stop(follower);
    ens.leader_index();
    check_shorter_than_session(
        "the ensemble without a leader (a follower killed)",
        t.elapsed(),
        shortest,
    )?;
    wait_sessions_connected(
        || cons_of_running(&ens),
        &sessions,
        deadline(15),
        "every client after a follower died",
    );
    let reconnected = t.elapsed();
    pair.sentinel("sentinel-b");
    assert_eq!(
        seen(&pair),
        expected(&[]),
        "losing a follower is not an alert"
    );
    let now = live_stat(&pair, "q1");
    assert_eq!(
        (now.ephemeral_owner, now.czxid),
        (before.ephemeral_owner, before.czxid)
    );
    eprintln!(
        "FIGURE s3-follower: node {follower} killed (the watchdog's server: {had_watchdog}); \
         every session connected again after {reconnected:?}"
    );
    ens.start_again(follower);

    // C. Quorum lost: two of three stopped for 20 s.
    let leader = ens.leader_index();
    let follower = (0..3).find(|&i| i != leader).expect("a follower");
    let old_sessions = dumped_sessions(
        &scenarios::zk::four_letter_word(port_of(&ens, leader), "dump").unwrap_or_default(),
    );
    assert!(
        old_sessions.contains(&scenarios::faults::session_hex(before.ephemeral_owner)),
        "the leader's dump lists the watchdog's session: {old_sessions:?}"
    );
    let wd_mark = wd.mark();
    let t = Instant::now();
    ens.stop(leader);
    ens.stop(follower);
    // The fault: no quorum for 20 s.
    std::thread::sleep(Duration::from_secs(20));
    // Surely without a quorum until now (the first node restarted restores it some time after).
    check_longer_than_session(
        "the quorum loss",
        t.elapsed(),
        longest,
        Duration::from_secs(2),
    )?;
    assert!(pid_alive(pid), "the agent runs on without a quorum");
    ens.start_again(leader);
    ens.start_again(follower);
    let restored = Instant::now();
    wd.wait_for_line_since(
        wd_mark,
        |l| l.contains("zookeeper session lost"),
        deadline(5),
        "the watchdog to give up its old session",
    );
    pair.probe =
        ZkProbe::connect_with_session_timeout(&ens.connect_string(), Duration::from_secs(8));
    let (_, live) = wait_new_owner(&pair, "q1", before.ephemeral_owner, 30);
    let registered = restored.elapsed();
    assert_eq!(live["agent_pid"], pid, "the same agent registered: {live}");
    let leader = ens.leader_index();
    wait_sessions_gone(
        || scenarios::zk::four_letter_word(port_of(&ens, leader), "dump"),
        &old_sessions,
        deadline(20),
        "every session from before the quorum loss",
    );
    let events = settle(&pair, "sentinel-c", "q1");
    eprintln!(
        "FIGURE s3-quorum: quorum lost for {:?}; q1 re-registered {registered:?} after the \
         quorum was back; alerts for q1: {events:?}",
        restored - t
    );
    assert_eq!(
        events,
        Vec::<String>::new(),
        "no alert: the agent never stopped (quorum lost for 20 s)"
    );
    assert_agent_kept(&wd, "q1", pid);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 4. A watchdog killed and restarted at once.

// The premise: the new watchdog comes before the old session expires (else there is no stale node
// to replace). With the scenarios' 2 s session that was 2 s against 0.14-0.18 s seen; on a loaded
// machine, too close. Hence the 12 s session, and the premise measured.
#[test]
fn s4_watchdog_sigkilled_and_restarted_at_once_is_one_down_one_recovered_and_replaces_the_node() {
    with_premise("s4", s4_kill_restart);
}

fn s4_kill_restart() -> Result<(), String> {
    let pair = shared("s4_kill_restart");
    let first = watchdog_with_session(&pair, "k4", SHORT_FAULT_SESSION);
    let old_agent = pair.agent_pid("k4");
    let old = live_stat(&pair, "k4");
    let session = negotiated(
        ZkServer::shared(),
        &session_hex(old.ephemeral_owner),
        "the first watchdog",
    );
    first.signal(Signal::SIGKILL);
    let killed = Instant::now();
    first.wait_exit(deadline(5));
    let second = watchdog_with_session(&pair, "k4", SHORT_FAULT_SESSION);
    wait_pid_gone(
        old_agent,
        deadline(2),
        "the agent of the SIGKILLed watchdog (parent-death signal)",
    );
    let path = pair.live_path("k4");
    let second_pid = second.pid() as i64;
    let (live, stat) = poll_until(
        deadline(10),
        "a liveness node written by the new watchdog",
        || {
            let (data, stat) = pair.probe.get(&path)?;
            let v: Value = serde_json::from_slice(&data).ok()?;
            (v["watchdog_pid"] == second_pid).then_some((v, stat))
        },
        || format!("{path}: {:?}", pair.probe.get_json(&path)),
    );
    let replaced = killed.elapsed();
    check_shorter_than_session(
        "the restart (SIGKILL until the new watchdog's liveness node)",
        replaced,
        session,
    )?;
    assert_ne!(
        stat.ephemeral_owner, old.ephemeral_owner,
        "a new session owns it"
    );
    let new_agent = live["agent_pid"].as_i64().expect("agent_pid") as i32;
    assert!(new_agent != old_agent && pid_alive(new_agent), "{live}");
    assert!(
        second.output().contains("replacing a stale liveness node"),
        "the new watchdog replaced the stale node:\n{}",
        second.output()
    );
    let alerts = pair.wait_events("k4", &["down", "recovered"], 15);
    pair.sentinel("sentinel");
    assert_eq!(
        seen(&pair),
        expected(&[("k4", &["down", "recovered"])]),
        "one down (the old agent died with its watchdog), one recovered, never two downs"
    );
    eprintln!(
        "FIGURE s4: new liveness node {replaced:?} after the SIGKILL; down reason {:?}; down \
         after {:?}",
        alerts[0]["reason"],
        arrival(&pair, "k4", "down").map(|t| t - killed)
    );
    assert!(second.is_running());
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 7. A liveness node deleted and created again while the watcher does not look.

fn probe_agent(pair: &Pair, owner: &ZkProbe, id: &str) -> scenarios::Stat {
    pair.probe.create(
        &pair.identity_path(id),
        format!(r#"{{"id":"{id}","host":"probe-host","state":"running"}}"#).as_bytes(),
        false,
    );
    owner.create(
        &pair.live_path(id),
        br#"{"host":"probe-host","watchdog_pid":1,"agent_pid":2}"#,
        true,
    )
}

#[test]
fn s7_liveness_recreated_while_the_watcher_is_frozen_is_one_down_one_recovered() {
    with_premise("s7-frozen", s7_frozen);
}

fn s7_frozen() -> Result<(), String> {
    let pair = start_pair_with_session(
        &ZkServer::shared().connect_string(),
        &unique_root("s7_frozen"),
        SHORT_FAULT_SESSION,
    );
    let session = negotiated(ZkServer::shared(), &watcher_session(&pair), "the watcher");
    let owner = ZkProbe::connect(&pair.connect);
    let first = probe_agent(&pair, &owner, "v1");
    pair.sentinel("sentinel-0"); // the watcher has seen v1 live
    let w = watcher(&pair);
    w.signal(Signal::SIGSTOP);
    let frozen = Instant::now();
    owner.delete(&pair.live_path("v1"));
    let second = owner.create(
        &pair.live_path("v1"),
        br#"{"host":"probe-host","watchdog_pid":1,"agent_pid":3}"#,
        true,
    );
    assert_ne!(first.czxid, second.czxid);
    // The fault: the watcher frozen for 1 s (well under its session).
    sleep_until(frozen + Duration::from_secs(1));
    w.signal(Signal::SIGCONT);
    check_shorter_than_session("the watcher's freeze", frozen.elapsed(), session)?;
    pair.wait_events("v1", &["down", "recovered"], 15);
    pair.sentinel("sentinel-1");
    assert_eq!(seen(&pair), expected(&[("v1", &["down", "recovered"])]));
    assert!(
        !w.output().contains("session lost"),
        "the watcher kept its session:\n{}",
        w.output()
    );
    Ok(())
}

#[test]
fn s7_liveness_recreated_while_the_watcher_is_disconnected_is_one_down_one_recovered() {
    with_premise("s7-disconnected", s7_disconnected);
}

fn s7_disconnected() -> Result<(), String> {
    // The watcher talks to ZooKeeper through a proxy that cuts it off; everyone else is direct.
    let zk = ZkServer::shared();
    let proxy = TcpProxy::start(&zk.connect_string());
    let mut pair = Pair::new(&zk.connect_string(), &unique_root("s7_disconnected"));
    pair.connect = proxy.connect_string();
    start_watcher_with_session(&mut pair, SHORT_FAULT_SESSION);
    pair.connect = zk.connect_string();
    let owner = ZkProbe::connect(&pair.connect);
    let first = probe_agent(&pair, &owner, "v2");
    pair.sentinel("sentinel-0"); // the watcher has seen v2 live
    let w = watcher(&pair);
    let mark = w.mark();

    let session = watcher_session(&pair);
    let timeout = negotiated(zk, &session, "the watcher");
    proxy.block();
    let cut = Instant::now();
    // The server has seen the watcher's connection close: it can send it nothing more.
    poll_until(
        deadline(5),
        &format!("the server to drop the watcher's connection (session {session})"),
        || {
            (!scenarios::faults::connected_sessions(&zk.four_letter_word("cons")?)
                .contains(&session))
            .then_some(())
        },
        || zk.four_letter_word("cons").unwrap_or_default(),
    );
    owner.delete(&pair.live_path("v2"));
    let second = owner.create(
        &pair.live_path("v2"),
        br#"{"host":"probe-host","watchdog_pid":1,"agent_pid":3}"#,
        true,
    );
    assert_ne!(first.czxid, second.czxid);
    // The fault: the watcher cut off for 1 s (well under its session, so it comes back with it).
    sleep_until(cut + Duration::from_secs(1));
    proxy.unblock();
    check_shorter_than_session("the watcher's cut", cut.elapsed(), timeout)?;
    w.wait_for_line_since(
        mark,
        |l| l.contains("re-listing") || l.contains("session lost"),
        deadline(10),
        "the watcher to reconnect",
    );
    assert!(
        !w.output().contains("session lost"),
        "the watcher came back with its session:\n{}",
        w.output()
    );
    pair.wait_events("v2", &["down", "recovered"], 15);
    pair.sentinel("sentinel-1");
    assert_eq!(seen(&pair), expected(&[("v2", &["down", "recovered"])]));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 8 and 9. A thousand agents.

const MANY: usize = 1000;

fn many_ids() -> Vec<String> {
    (0..MANY).map(|i| format!("bulk-{i:04}")).collect()
}

/// A thousand agents: identity nodes (the pair's probe) and liveness nodes owned by `owner`.
fn many_agents(pair: &Pair, owner: &ZkProbe) -> Vec<String> {
    let ids = many_ids();
    let identities: Vec<(String, Vec<u8>)> = ids
        .iter()
        .map(|id| {
            (
                pair.identity_path(id),
                format!(r#"{{"id":"{id}","host":"bulk-host","state":"running"}}"#).into_bytes(),
            )
        })
        .collect();
    create_many(&pair.probe, &identities, false);
    let lives: Vec<(String, Vec<u8>)> = ids
        .iter()
        .map(|id| {
            (
                pair.live_path(id),
                br#"{"host":"bulk-host","watchdog_pid":1,"agent_pid":2}"#.to_vec(),
            )
        })
        .collect();
    create_many(owner, &lives, true);
    ids
}

/// Waits until the webhook has a `down` for each of `ids` (a thousand).
fn wait_all_down(pair: &Pair, ids: &[String]) {
    let wanted: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
    pair.receiver.wait_for_alerts(
        |a| {
            a.iter()
                .filter(|x| x["event"] == "down")
                .filter_map(|x| x["agent"].as_str())
                .filter(|x| wanted.contains(x))
                .collect::<BTreeSet<_>>()
                .len()
                == MANY
        },
        deadline(90),
        "a down for each of the 1,000 agents at the webhook",
    );
}

/// Closes the session owning the liveness nodes of a thousand agents and waits until each has
/// its down (exactly one, lost contact, nothing else). Returns the webhook messages that named
/// them (arrival, number of their alerts) and the instant of the close.
fn thousand_lost(pair: &Pair) -> (Vec<(Instant, usize)>, Instant) {
    let owner = ZkProbe::connect(&pair.connect);
    let ids = many_agents(pair, &owner);
    pair.sentinel("sentinel-0"); // the watcher has seen them all live
    let closed = Instant::now();
    drop(owner);
    wait_all_down(pair, &ids);
    pair.sentinel("sentinel-1");
    let got = seen(pair);
    let want: BTreeMap<String, Vec<String>> = ids
        .iter()
        .map(|id| (id.clone(), vec!["down".to_owned()]))
        .collect();
    if got != want {
        let wrong: Vec<_> = got
            .iter()
            .filter(|(k, v)| want.get(*k) != Some(v))
            .take(10)
            .collect();
        panic!("each agent exactly one down; first differences: {wrong:?}");
    }
    for a in pair.receiver.alerts() {
        if a["agent"].as_str().is_some_and(|x| x.starts_with("bulk-")) {
            assert!(
                a["reason"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("lost contact"),
                "{a}"
            );
        }
    }
    let msgs = messages_naming(&pair.receiver.requests(), |a| a.starts_with("bulk-"));
    (msgs, closed)
}

#[test]
fn s8_a_thousand_agents_lost_at_once_are_each_reported_down_once() {
    let pair = shared("s8_thousand_lost");
    let (msgs, closed) = thousand_lost(&pair);
    let first = msgs.iter().map(|(t, _)| *t).min().expect("messages");
    let last = msgs.iter().map(|(t, _)| *t).max().expect("messages");
    let biggest = msgs.iter().map(|(_, n)| *n).max().unwrap_or(0);
    eprintln!(
        "FIGURE s8: receiver answering at once: {MANY} downs in {} webhook messages (largest \
         {biggest} alerts); first {:?}, last {:?} after the session closed",
        msgs.len(),
        first - closed,
        last - closed
    );
    assert!(
        last - closed < Duration::from_secs(30),
        "the last down arrived {:?} after the session closed",
        last - closed
    );
}

#[test]
fn s8_a_thousand_downs_decided_during_one_slow_delivery_go_in_the_next_message() {
    // The receiver takes 2 s per message: every down decided while the first message is in
    // flight goes in the next one (at most 500 alerts per webhook message).
    let pair = shared("s8_thousand_batched");
    pair.sentinel("sentinel-warmup");
    pair.receiver.set_delay(Duration::from_secs(2));
    let (msgs, closed) = thousand_lost(&pair);
    let last = msgs.iter().map(|(t, _)| *t).max().expect("messages");
    let sizes: Vec<usize> = msgs.iter().map(|(_, n)| *n).collect();
    eprintln!(
        "FIGURE s8-slow: receiver taking 2 s a message: {MANY} downs in {} messages {sizes:?}; \
         last received {:?} after the session closed",
        msgs.len(),
        last - closed
    );
    assert!(
        sizes.len() <= 5,
        "alerts decided during one delivery go in the next message (500 at most): {sizes:?}"
    );
}

#[test]
fn s8_a_thousand_agents_lost_at_once_reach_a_chat_robot_as_the_first_loss_and_one_summary() {
    // A DingTalk robot beside the webhook: 20 messages a minute would take 50 minutes for a
    // thousand sections; the group gets the first loss at once and then one summary.
    let robot = receiver::Receiver::start();
    robot.set_default(receiver::Reply::ok(r#"{"errcode":0,"errmsg":"ok"}"#));
    let mut pair = Pair::new(
        &ZkServer::shared().connect_string(),
        &unique_root("s8_thousand_chat"),
    );
    pair.start_watcher_with(&["--dingtalk", &robot.url("/robot/send?access_token=T0KEN")]);
    let owner = ZkProbe::connect(&pair.connect);
    let ids = many_agents(&pair, &owner);
    pair.sentinel("sentinel-0"); // the watcher has seen them all live
    robot.wait_for_count(1, deadline(20), "the sentinel's message to the robot");
    // Premise: a quiet period before the loss, longer than the notifier's burst gathering
    // (`watcher::notify::BURST_GATHER`, 2 s), so that the first loss is the first alert of a
    // quiet period. A duration of the scenario, not a wait for an event.
    std::thread::sleep(Duration::from_millis(2_500));
    let before = robot.count();
    let closed = Instant::now();
    drop(owner);
    wait_all_down(&pair, &ids);
    let got = robot.wait_for_count(before + 2, deadline(20), "the first loss and a summary");
    let text = |r: &receiver::Request| {
        r.json()["markdown"]["text"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let (first, summary) = (&got[before], &got[before + 1]);
    let agents_named = |t: &str| t.matches("bulk-").count() - t.matches("bulk-host").count();
    let named = agents_named(&text(first));
    assert_eq!(
        named,
        1,
        "the first message is one loss, alone: {}",
        text(first)
    );
    assert!(
        text(summary).contains("1,000 Flume agents lost contact on 1 host"),
        "the second sums up the rack, the first loss included: {}",
        text(summary)
    );
    let after_first = summary.received_at - first.received_at;
    eprintln!(
        "FIGURE s8-chat: {MANY} agents lost at once → DingTalk: the first loss {:?} after the \
         session closed, one summary {:?} after it ({} messages in all)",
        first.received_at - closed,
        after_first,
        got.len() - before
    );
    assert!(
        after_first < Duration::from_secs(5),
        "the summary came {after_first:?} after the first loss"
    );
    // Nothing more follows: the summary covered every loss (a later sentinel proves the watcher
    // has nothing left to send, and the robot gets only its own message).
    pair.sentinel("sentinel-1");
    let all = robot.wait_for_count(before + 3, deadline(20), "the sentinel's message after");
    assert!(
        all[before + 2..]
            .iter()
            .all(|r| agents_named(&text(r)) == 0),
        "no message after the summary names a lost agent: {:?}",
        all[before + 2..].iter().map(text).collect::<Vec<_>>()
    );
}

#[test]
fn s9_a_thousand_planned_stops_are_no_alert() {
    let pair = shared("s9_thousand_stopped");
    let owner = ZkProbe::connect(&pair.connect);
    let ids = many_agents(&pair, &owner);
    pair.sentinel("sentinel-0"); // the watcher has seen them all live
    let t = Instant::now();
    let identities: Vec<String> = ids.iter().map(|id| pair.identity_path(id)).collect();
    delete_many(&pair.probe, &identities);
    drop(owner);
    pair.sentinel("sentinel-1");
    let done = t.elapsed();
    assert_eq!(
        seen(&pair),
        expected(&[]),
        "planned stops are never alerted"
    );
    assert!(
        pair.probe
            .children(&format!("{}/live", pair.root))
            .iter()
            .all(|n| n.starts_with("sentinel")),
        "every liveness node went with its session"
    );
    eprintln!(
        "FIGURE s9: {MANY} planned stops, no alert; the watcher processed them all within {done:?}"
    );
}
