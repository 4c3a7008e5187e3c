//! Alerts are durable: recorded in ZooKeeper before delivery, delivered once the receiver works,
//! also across a watcher restart, and never repeated by a watcher that restarts.
//!
//! Fault scenario 6 (tests/FAULTS.md) is the `s6_…` tests: a webhook answering 500 and a DingTalk
//! robot answering errcode 130101 for 10 s (2 minutes with `FLUME_SOAK=1`), four crashes and a
//! watcher restart meanwhile. Figures are printed as `FIGURE s6-…` lines
//! (`cargo test -p scenarios --test outbox -- --nocapture 2>&1 | grep FIGURE`).

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use scenarios::faults::{signal_pid, sleep_until};
use scenarios::pair::{events_of, Pair};
use scenarios::receiver::{alerts_of, OK_BODY};
use scenarios::{deadline, poll_until, unique_root, Proc, Receiver, Request, ZkServer};
use serde_json::Value;

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

// ---------------------------------------------------------------------------------------------
// Fault scenario 6 (tests/FAULTS.md): both receivers refuse for a while, several alerts pend,
// the watcher restarts in the middle; once the receivers work, everything arrives, once, in order.

/// What a DingTalk robot answers when it is sent to too fast (HTTP 200, non-zero errcode).
const DINGTALK_TOO_FAST: &str = r#"{"errcode":130101,"errmsg":"send too fast"}"#;

/// The agents in the order they crash: not alphabetical, so the order delivered must come from
/// the crashes, not from the names of the outage records.
const CRASH_ORDER: [&str; 4] = ["s6-d", "s6-b", "s6-c", "s6-a"];

/// How long both receivers refuse: 10 s, or 2 minutes with `FLUME_SOAK=1`.
fn refusal_length() -> Duration {
    if std::env::var("FLUME_SOAK").as_deref() == Ok("1") {
        Duration::from_secs(120)
    } else {
        Duration::from_secs(10)
    }
}

/// (agent, event) of the alerts in generic-webhook requests, in arrival order.
fn webhook_alerts(reqs: &[Request]) -> Vec<(String, String)> {
    alerts_of(reqs)
        .iter()
        .map(|a| {
            (
                a["agent"].as_str().unwrap_or("?").to_owned(),
                a["event"].as_str().unwrap_or("?").to_owned(),
            )
        })
        .collect()
}

/// (agent, event) of the alerts in DingTalk robot requests, in arrival order. Each alert is a
/// markdown section headed `#### <mark> **DOWN** <agent>`; the title names the one alert or
/// counts them, and is checked against the sections.
fn dingtalk_alerts(reqs: &[Request]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for r in reqs {
        assert_eq!(r.path(), "/robot/send", "a DingTalk request: {r:?}");
        let body = r.json();
        assert_eq!(body["msgtype"], "markdown", "{body}");
        let title = body["markdown"]["title"].as_str().unwrap_or_default();
        let text = body["markdown"]["text"].as_str().unwrap_or_default();
        let sections: Vec<(String, String)> = text
            .lines()
            .filter_map(|l| l.strip_prefix("#### "))
            .map(
                |heading| match heading.split_whitespace().collect::<Vec<_>>()[..] {
                    [_mark, event, agent]
                        if event.len() > 4 && event.starts_with("**") && event.ends_with("**") =>
                    {
                        (agent.to_owned(), event.trim_matches('*').to_lowercase())
                    }
                    _ => panic!("unexpected DingTalk section heading {heading:?} in:\n{text}"),
                },
            )
            .collect();
        let title_fits = match &sections[..] {
            [] => false,
            [(agent, event)] => title == format!("Flume agent {agent} {event}"),
            many => title == format!("{} Flume agent alerts", many.len()),
        };
        assert!(
            title_fits,
            "title {title:?} does not fit the sections {sections:?}:\n{text}"
        );
        out.extend(sections);
    }
    out
}

fn is_sentinel(alert: &(String, String)) -> bool {
    alert.0.starts_with("sentinel")
}

/// Every crashed agent's `recovered` is there.
fn all_recovered(alerts: &[(String, String)]) -> bool {
    CRASH_ORDER
        .iter()
        .all(|id| alerts.iter().any(|(a, e)| a == id && e == "recovered"))
}

/// Exactly the expected alerts: each agent's `down` then `recovered`, once; the downs in the
/// order of the crashes; the sentinel's `down`; nothing else.
fn check_delivered(channel: &str, accepted: &[(String, String)]) {
    let ours: Vec<&(String, String)> = accepted.iter().filter(|a| !is_sentinel(a)).collect();
    for id in CRASH_ORDER {
        let events: Vec<&str> = ours
            .iter()
            .filter(|(a, _)| a == id)
            .map(|(_, e)| e.as_str())
            .collect();
        assert_eq!(
            events,
            ["down", "recovered"],
            "{channel}: {id}'s down, then its recovered, each once; all accepted alerts: {accepted:?}"
        );
    }
    let downs: Vec<&str> = ours
        .iter()
        .filter(|(_, e)| e == "down")
        .map(|(a, _)| a.as_str())
        .collect();
    assert_eq!(
        downs, CRASH_ORDER,
        "{channel}: the downs in the order of the crashes; all accepted alerts: {accepted:?}"
    );
    assert_eq!(
        ours.len(),
        2 * CRASH_ORDER.len(),
        "{channel}: nothing else; all accepted alerts: {accepted:?}"
    );
    let sentinel: Vec<&(String, String)> = accepted.iter().filter(|a| is_sentinel(a)).collect();
    assert_eq!(
        sentinel,
        [&("sentinel".to_owned(), "down".to_owned())],
        "{channel}: the sentinel's down once; all accepted alerts: {accepted:?}"
    );
}

/// The longest and the shortest pause between consecutive attempts, leaving out the pauses that
/// span one of `windows` (from the old watcher's signal to the new one leading).
fn pauses(reqs: &[Request], windows: &[(Instant, Instant)]) -> (Duration, Duration) {
    let mut longest = Duration::ZERO;
    let mut shortest = Duration::MAX;
    for pair in reqs.windows(2) {
        let (a, b) = (pair[0].received_at, pair[1].received_at);
        if !windows.iter().any(|(from, to)| a < *to && b > *from) {
            longest = longest.max(b - a);
            shortest = shortest.min(b - a);
        }
    }
    (longest, shortest)
}

/// `<root>/outages/<id>` as JSON, if there.
fn outage_record(pair: &Pair, id: &str) -> Option<Value> {
    pair.probe.get_json(&format!("{}/outages/{id}", pair.root))
}

/// The events of a record's notices, in order.
fn recorded_events(record: &Value) -> Vec<String> {
    record["notices"]
        .as_array()
        .map(|ns| {
            ns.iter()
                .map(|n| n["alert"]["event"].as_str().unwrap_or("?").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Makes the agent exit (code 3) and waits until its down is recorded in its outage record: it is
/// durable although no receiver takes it.
fn crash(pair: &Pair, id: &str, pid: i32) {
    signal_pid(pid, Signal::SIGUSR1);
    poll_until(
        deadline(10),
        &format!("{id}'s down recorded in its outage record"),
        || {
            outage_record(pair, id)
                .filter(|r| recorded_events(r).iter().any(|e| e == "down"))
                .map(|_| ())
        },
        || format!("{:?}", outage_record(pair, id)),
    );
}

fn show(alerts: &[(String, String)]) -> String {
    alerts
        .iter()
        .map(|(a, e)| format!("{a} {e}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Both channels at once: a generic webhook answering 500 and a DingTalk robot answering
/// errcode 130101. Four agents crash one after another while both refuse: one early (its alerts
/// pend for most of the refusal), two shortly before the watcher is stopped by `restart_by` and
/// started again at 40 % of the refusal (so the restarted watcher finds several records with
/// notices pending, some of them interleaved in time), one after. Then both receivers are fixed.
fn receivers_refuse_with_a_watcher_restart(label: &str, restart_by: Signal) {
    let refusal = refusal_length();
    let mut pair = Pair::new(&ZkServer::shared().connect_string(), &unique_root(label));
    let robot = Receiver::start();
    let robot_url = robot.url("/robot/send?access_token=tok-s6");
    let channels = ["--dingtalk", robot_url.as_str()];
    pair.start_watcher_with(&channels);
    let _watchdogs: Vec<Proc> = CRASH_ORDER
        .iter()
        .map(|id| pair.watchdog(id, &[], &[]))
        .collect();
    let pids: Vec<i32> = CRASH_ORDER.iter().map(|id| pair.agent_pid(id)).collect();
    assert!(
        pair.receiver.requests().is_empty() && robot.requests().is_empty(),
        "no alert for agents that just started"
    );

    pair.receiver.set_reply(500, "receiver broken");
    robot.set_reply(200, DINGTALK_TOO_FAST);
    let t0 = Instant::now();
    let at = |fraction: f64| t0 + refusal.mul_f64(fraction);
    let restart_at = at(0.4);
    sleep_until(at(0.1));
    crash(&pair, CRASH_ORDER[0], pids[0]);
    sleep_until(restart_at - Duration::from_millis(2400));
    crash(&pair, CRASH_ORDER[1], pids[1]);
    sleep_until(restart_at - Duration::from_millis(1200));
    crash(&pair, CRASH_ORDER[2], pids[2]);

    sleep_until(restart_at);
    let old = pair.watcher.take().expect("a watcher");
    let stopped_at = Instant::now();
    old.signal(restart_by);
    let status = old.wait_exit(deadline(10));
    if restart_by == Signal::SIGTERM {
        assert_eq!(status.code(), Some(0), "SIGTERM: a clean exit");
    }
    drop(old);
    pair.start_watcher_with(&channels);
    pair.watcher.as_ref().expect("a watcher").wait_for_line(
        "leading the watchers",
        deadline(20),
        "the restarted watcher to lead",
    );
    let led_at = Instant::now();
    let restarted_after = stopped_at - t0;

    sleep_until(restart_at + Duration::from_millis(1600));
    crash(&pair, CRASH_ORDER[3], pids[3]);

    // Every down and recovered decided and recorded, none taken by a channel (nothing dropped
    // silently: a notice given up on would be marked done).
    let records_due = at(1.0).max(Instant::now()) + Duration::from_secs(15);
    poll_until(
        records_due,
        "each agent's outage record to hold its down and recovered",
        || {
            CRASH_ORDER
                .iter()
                .all(|id| {
                    outage_record(&pair, id)
                        .is_some_and(|r| recorded_events(&r) == ["down", "recovered"])
                })
                .then_some(())
        },
        || {
            CRASH_ORDER
                .iter()
                .map(|id| format!("{id}: {:?}", outage_record(&pair, id)))
                .collect::<Vec<_>>()
                .join("\n")
        },
    );
    sleep_until(at(1.0));
    for id in CRASH_ORDER {
        let record = outage_record(&pair, id).expect("recorded above");
        let untaken = record["notices"].as_array().is_some_and(|ns| {
            ns.iter()
                .all(|n| n["done"].as_array().is_some_and(|d| d.is_empty()))
        });
        assert!(
            untaken,
            "no channel took (or gave up on) a notice while both refused: {record}"
        );
    }

    let refused_webhook = pair.receiver.switch_reply(200, OK_BODY);
    let refused_robot = robot.switch_reply(200, OK_BODY);
    let fixed_at = Instant::now();
    let refused_for = fixed_at - t0;

    let accepted_webhook = pair.receiver.wait_for(
        |r| all_recovered(&webhook_alerts(&r[refused_webhook..])),
        deadline(30),
        "every down and recovered at the webhook once it works",
    );
    let accepted_robot = robot.wait_for(
        |r| all_recovered(&dingtalk_alerts(&r[refused_robot..])),
        deadline(30),
        "every down and recovered at the DingTalk robot once it works",
    );
    let last_alert = |reqs: &[Request], from: usize| {
        reqs[from..]
            .last()
            .map(|r| r.received_at - fixed_at)
            .unwrap_or_default()
    };
    let webhook_done_after = last_alert(&accepted_webhook, refused_webhook);
    let robot_done_after = last_alert(&accepted_robot, refused_robot);

    // Nothing more is on its way: a sentinel's alert comes after anything still queued, on both.
    pair.sentinel("sentinel");
    robot.wait_for(
        |r| dingtalk_alerts(&r[refused_robot..]).iter().any(is_sentinel),
        deadline(20),
        "the sentinel's down at the DingTalk robot",
    );
    // A planned stop closes the sentinel's outage; then every record is closed and delivered.
    pair.probe.delete(&pair.identity_path("sentinel"));
    let outages = format!("{}/outages", pair.root);
    poll_until(
        deadline(20),
        &format!("{outages} to be empty (every record closed, delivered and pruned)"),
        || pair.probe.children(&outages).is_empty().then_some(()),
        || format!("{:?}", pair.probe.children(&outages)),
    );

    let webhook_reqs = pair.receiver.requests();
    let robot_reqs = robot.requests();
    let webhook_got = webhook_alerts(&webhook_reqs[refused_webhook..]);
    let robot_got = dingtalk_alerts(&robot_reqs[refused_robot..]);
    check_delivered("webhook", &webhook_got);
    check_delivered("dingtalk", &robot_got);
    for a in alerts_of(&webhook_reqs[refused_webhook..]) {
        if a["event"] == "down" && a["agent"] != "sentinel" {
            assert_eq!(a["reason"], "exited with code 3", "{a}");
        }
    }
    // What the refused attempts carried was ours too (no stray alert while refusing).
    for (a, e) in webhook_alerts(&webhook_reqs[..refused_webhook])
        .iter()
        .chain(dingtalk_alerts(&robot_reqs[..refused_robot]).iter())
    {
        assert!(
            CRASH_ORDER.contains(&a.as_str()) && (e == "down" || e == "recovered"),
            "a refused attempt carried {a} {e}"
        );
    }
    let log = pair
        .watcher
        .as_ref()
        .map(|w| w.output())
        .unwrap_or_default();
    assert!(
        !log.contains("failed permanently"),
        "a refusal was taken as permanent:\n{log}"
    );

    // Time order of the alerts as decided, to compare with the order received.
    let mut decided: Vec<(String, String, String)> = alerts_of(&webhook_reqs[refused_webhook..])
        .iter()
        .filter(|a| a["agent"] != "sentinel")
        .map(|a| {
            (
                a["at"].as_str().unwrap_or("?").to_owned(),
                a["agent"].as_str().unwrap_or("?").to_owned(),
                a["event"].as_str().unwrap_or("?").to_owned(),
            )
        })
        .collect();
    decided.sort();
    let decided: Vec<(String, String)> = decided.into_iter().map(|(_, a, e)| (a, e)).collect();

    let windows = [(stopped_at, led_at)];
    let (webhook_pause, webhook_shortest) = pauses(&webhook_reqs[..refused_webhook], &windows);
    let (robot_pause, robot_shortest) = pauses(&robot_reqs[..refused_robot], &windows);
    eprintln!(
        "FIGURE s6-{label}: refusal {refused_for:.1?} (watcher {restart_by} at {restarted_after:.1?}, \
         leading again {:.2?} later); refused attempts: webhook {refused_webhook}, dingtalk \
         {refused_robot} (longest pause while a watcher led: webhook {webhook_pause:.2?}, dingtalk \
         {robot_pause:.2?}; shortest: webhook {webhook_shortest:.2?}, dingtalk {robot_shortest:.2?}); after the fix: \
         webhook {} messages, last alert {webhook_done_after:.2?} after the fix; dingtalk {} \
         messages, last alert {robot_done_after:.2?} after the fix",
        led_at - stopped_at,
        webhook_reqs.len() - refused_webhook,
        robot_reqs.len() - refused_robot,
    );
    eprintln!(
        "FIGURE s6-{label}-order: decided {}; webhook received {}; dingtalk received {}",
        show(&decided),
        show(&webhook_got),
        show(&robot_got),
    );
    for (channel, got) in [("webhook", &webhook_got), ("dingtalk", &robot_got)] {
        let got: Vec<(String, String)> = got.iter().filter(|a| !is_sentinel(a)).cloned().collect();
        assert_eq!(
            got, decided,
            "{channel}: every alert in the order it was decided, across agents too"
        );
    }
    // Retries kept going with a capped backoff (--retry-max 1s) while a watcher led.
    for (channel, pause) in [("webhook", webhook_pause), ("dingtalk", robot_pause)] {
        assert!(
            pause <= Duration::from_secs(4),
            "{channel}: {pause:?} without an attempt while alerts were pending"
        );
    }
}

#[test]
fn s6_both_receivers_refuse_with_a_watcher_sigkill_between_every_alert_arrives_once_in_order() {
    receivers_refuse_with_a_watcher_restart("kill", Signal::SIGKILL);
}

#[test]
fn s6_both_receivers_refuse_with_a_watcher_sigterm_between_every_alert_arrives_once_in_order() {
    receivers_refuse_with_a_watcher_restart("term", Signal::SIGTERM);
}
