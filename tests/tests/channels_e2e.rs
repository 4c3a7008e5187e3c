//! The e-mail and Alertmanager channels end to end: a real `flume-watcher run --config FILE`
//! (the channel given by `type = "email"` / `type = "alertmanager"` in the file) on a real
//! ZooKeeper, real `flume-watchdog`s around the stand-in agent, and what a real SMTP server
//! (aiosmtpd) received or a real Alertmanager reports (`GET /api/v2/alerts`).
//!
//! Each file also has a webhook channel to the pair's receiver: a witness of which alerts the
//! watcher decided, and when.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::Signal;
use serde_json::{json, Value};

use scenarios::alertmanager::Alertmanager;
use scenarios::pair::{events_of, Pair};
use scenarios::smtp::{Pki, Smtp};
use scenarios::{bin, deadline, unique_root, TempDir, ZkServer};

/// The watcher's `recovered_after` in these files.
const RECOVERED_AFTER: Duration = Duration::from_secs(1);

/// A pair on the shared ZooKeeper under a root of its own, no watcher yet.
fn pair(test: &str) -> Pair {
    Pair::new(&ZkServer::shared().connect_string(), &unique_root(test))
}

/// A configuration file: ZooKeeper and alert settings for `pair`, a webhook to its receiver
/// (the witness) and `channel` (a `[[channel]]` table).
fn write_config(dir: &TempDir, pair: &Pair, channel: &str) -> PathBuf {
    let path = dir.join("watcher.toml");
    std::fs::write(
        &path,
        format!(
            "[zookeeper]\nconnect = \"{}\"\nroot = \"{}\"\nsession_timeout = \"2s\"\n\
             [alerts]\nrecovered_after = \"{}s\"\nretry_initial = \"100ms\"\nretry_max = \"1s\"\n\
             [[channel]]\nname = \"witness\"\ntype = \"webhook\"\nurl = \"{}\"\n\
             {channel}",
            pair.connect,
            pair.root,
            RECOVERED_AFTER.as_secs(),
            pair.receiver.url("/alerts"),
        ),
    )
    .expect("write the configuration");
    path
}

/// `flume-watcher run --config FILE`, nothing else.
fn watcher_from(path: &std::path::Path) -> Command {
    let mut cmd = Command::new(bin("flume-watcher"));
    for (var, _) in std::env::vars_os() {
        if var.to_string_lossy().starts_with("FLUME_WATCHER_") {
            cmd.env_remove(&var);
        }
    }
    cmd.args(["run", "--config", &path.to_string_lossy()]);
    cmd
}

/// Crashes the running stand-in agent of `id` (SIGUSR1: it exits with code 3); returns the
/// host its liveness node names.
fn crash(pair: &Pair, id: &str) -> String {
    let live = pair.wait_live(id);
    let host = live["host"]
        .as_str()
        .unwrap_or_else(|| panic!("no host in the liveness node of {id}: {live}"))
        .to_owned();
    let pid = pair.agent_pid(id);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGUSR1)
        .expect("SIGUSR1 to the agent");
    host
}

// --- E-mail --------------------------------------------------------------------------------

/// A crash and the restart: the `down` mail, then the `recovered` mail, as the server got them.
///
/// Timing premise: the watchdog restarts the agent after its default 50 ms backoff and the
/// watcher says `recovered` only after `recovered_after` (1 s) live again, while a mail to a
/// local server takes milliseconds: so the two alerts go out as two mails, in order. Checked:
/// exactly two mails, `[DOWN]` first.
fn down_then_recovered_by_mail(test: &str, starttls: bool) {
    let dir = TempDir::new(test);
    let mut pair = pair(test);
    let pki = Pki::new(dir.path());
    let smtp = if starttls {
        Smtp::start(dir.path(), &pki.starttls_args())
    } else {
        Smtp::start::<&str>(dir.path(), &[])
    };
    let tls = if starttls {
        format!("ca_file = \"{}\"\n", pki.ca.display())
    } else {
        "tls = \"none\"\n".to_owned()
    };
    let path = write_config(
        &dir,
        &pair,
        &format!(
            "[[channel]]\nname = \"mail\"\ntype = \"email\"\nsmtp = \"{}\"\n{tls}\
             from = \"Flume Watcher <flume-watcher@example.com>\"\n\
             to = [\"oncall@example.com\"]\ntimeout = \"3s\"\n",
            smtp.url("smtp")
        ),
    );
    pair.start_watcher_from(watcher_from(&path));
    let id = "m1";
    let _wd = pair.watchdog(id, &[], &["--exit-code", "3"]);
    let host = crash(&pair, id);

    let mails = smtp.wait_received(2, deadline(15), "the down and the recovered mail");
    pair.wait_events(id, &["down", "recovered"], 5);
    assert_eq!(mails.len(), 2, "one mail per alert: {mails:?}");
    let (down, recovered) = (&mails[0], &mails[1]);
    assert_eq!(
        down.subject(),
        format!("[DOWN] {id} on {host}: exited with code 3"),
        "{down:?}"
    );
    for part in [down.text(), down.html()] {
        assert!(part.contains("exited with code 3"), "{part}");
        assert!(part.contains(id) && part.contains(&host), "{part}");
    }
    assert!(
        recovered
            .subject()
            .starts_with(&format!("[RECOVERED] {id} on {host}: ")),
        "{recovered:?}"
    );
    assert!(recovered.text().contains(id), "{}", recovered.text());
    for mail in &mails {
        assert_eq!(mail.envelope["mail_from"], "flume-watcher@example.com");
        assert_eq!(mail.envelope["rcpt_tos"], json!(["oncall@example.com"]));
        assert_eq!(mail.envelope["encrypted"], starttls, "{:?}", mail.envelope);
        assert_eq!(
            mail.mail["from"],
            "Flume Watcher <flume-watcher@example.com>"
        );
    }
}

#[test]
fn email_a_crash_is_a_down_mail_then_a_recovered_mail() {
    down_then_recovered_by_mail("email_plain", false);
}

#[test]
fn email_over_starttls_trusting_the_ca_file() {
    down_then_recovered_by_mail("email_starttls", true);
}

// --- Alertmanager --------------------------------------------------------------------------

/// `[[channel]] type = "alertmanager"` posting to `am`, re-posted every `repeat`.
fn am_channel(am: &Alertmanager, repeat: &str) -> String {
    format!(
        "[[channel]]\nname = \"am\"\ntype = \"alertmanager\"\nurl = \"{}\"\nrepeat = \"{repeat}\"\n",
        am.url("")
    )
}

fn active(alerts: &[Value]) -> bool {
    !alerts.is_empty() && alerts.iter().all(|a| a["status"]["state"] == "active")
}

/// One active `FlumeAgentDown` for `id` on `host`, with its labels as the channel sets them.
fn assert_down(alerts: &[Value], id: &str, host: &str) {
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(
        alerts[0]["labels"],
        json!({
            "alertname": "FlumeAgentDown",
            "agent": id,
            "host": host,
            "severity": "critical",
        }),
        "{alerts:#?}"
    );
    assert_eq!(alerts[0]["status"]["state"], "active", "{alerts:#?}");
}

fn time(v: &Value) -> SystemTime {
    let s = v.as_str().unwrap_or_else(|| panic!("not a time: {v}"));
    common::time::parse(s).unwrap_or_else(|| panic!("not RFC 3339: {s}"))
}

/// A crash: `FlumeAgentDown` is active in Alertmanager with its labels; after the recovery it is
/// no longer.
///
/// Timing premise: the watchdog restarts the agent 2 s after the crash (`--backoff-initial`)
/// and the watcher says `recovered` 1 s later, so the alert is active for about 3 s: plenty for
/// a poll every 100 ms. It is posted valid for 4 × `repeat` = 4 min, so leaving the active list
/// within seconds is a resolve, not an expiry.
#[test]
fn alertmanager_a_crash_fires_and_the_recovery_resolves() {
    let dir = TempDir::new("am_crash");
    let mut pair = pair("am_crash");
    let am = Alertmanager::start();
    let path = write_config(&dir, &pair, &am_channel(&am, "1m"));
    pair.start_watcher_from(watcher_from(&path));
    let id = "a1";
    let _wd = pair.watchdog(id, &["--backoff-initial", "2s"], &["--exit-code", "3"]);
    let host = crash(&pair, id);

    let alerts = am.wait_alerts(id, "FlumeAgentDown active", deadline(5), active);
    assert_down(&alerts, id, &host);
    let annotations = &alerts[0]["annotations"];
    assert_eq!(annotations["reason"], "exited with code 3", "{annotations}");
    assert!(
        pair.probe.get_json(&pair.live_path(id)).is_none(),
        "premise: still down while the alert was seen active"
    );

    pair.wait_events(id, &["down", "recovered"], 15);
    let resolved = Instant::now();
    am.wait_alerts(id, "FlumeAgentDown resolved", deadline(5), |a| a.is_empty());
    assert!(
        resolved.elapsed() < Duration::from_secs(5),
        "resolved, not expired"
    );
}

/// An agent crashed and kept down (a 60 s backoff) is stopped as planned: its watchdog, on
/// SIGTERM, deletes the identity node first. The outage ends without a notice, and the alert
/// is resolved in Alertmanager (`ended_quietly`); no `recovered` is sent.
///
/// Timing premise: the alert is valid for 4 × `repeat` = 4 min and the agent would be restarted
/// only after 60 s: leaving the active list within seconds of the stop is the quiet resolve.
#[test]
fn alertmanager_a_planned_stop_while_down_resolves_quietly() {
    let dir = TempDir::new("am_stop");
    let mut pair = pair("am_stop");
    let am = Alertmanager::start();
    let path = write_config(&dir, &pair, &am_channel(&am, "1m"));
    pair.start_watcher_from(watcher_from(&path));
    let id = "s1";
    let wd = pair.watchdog(id, &["--backoff-initial", "60s"], &["--exit-code", "3"]);
    let host = crash(&pair, id);
    let alerts = am.wait_alerts(id, "FlumeAgentDown active", deadline(5), active);
    assert_down(&alerts, id, &host);
    pair.wait_events(id, &["down"], 5);

    let mark = pair.watcher.as_ref().expect("watcher").mark();
    let stopped = Instant::now();
    wd.signal(Signal::SIGTERM);
    assert_eq!(
        wd.wait_exit(deadline(10)).code(),
        Some(0),
        "stopped as asked"
    );
    assert!(
        pair.probe.get_json(&pair.identity_path(id)).is_none(),
        "a planned stop deletes the identity node"
    );
    am.wait_alerts(id, "FlumeAgentDown resolved quietly", deadline(5), |a| {
        a.is_empty()
    });
    assert!(
        stopped.elapsed() < Duration::from_secs(5),
        "{:?}",
        stopped.elapsed()
    );
    pair.watcher.as_ref().expect("watcher").wait_for_line_since(
        mark,
        |l| l.contains("resolving its alerts in Alertmanager") && l.contains(id),
        deadline(1),
        "the watcher saying it resolves the quietly ended outage",
    );
    pair.sentinel("sentinel");
    assert_eq!(
        events_of(&pair.receiver.alerts(), id),
        ["down"],
        "no recovered for a planned stop"
    );
}

/// The watcher is restarted (SIGTERM, started again from the same file) while an outage is
/// open. The new watcher, leading, finds the outage still open in its record and has the
/// channel re-post it (`still_open`): the alert stays active across and after the restart,
/// then resolves on recovery.
///
/// Timing premise: `repeat` = 300 ms, so each post is valid for 1.2 s. The old watcher posted
/// at most 300 ms before its stop, so without the new watcher's re-posts the alert would leave
/// the active list at most 1.2 s after the stop. Checked: the new watcher is leading within
/// 0.9 s of the stop (else the alert could lapse in between: the test fails saying so); the
/// alert is active at every poll (every 50 ms) from before the stop until the agent is back,
/// which is at least 1.2 s + 4 × 300 ms after the stop (the agent's backoff is 6 s: checked too).
#[test]
fn alertmanager_keeps_firing_across_a_watcher_restart() {
    const REPEAT: Duration = Duration::from_millis(300);
    let dir = TempDir::new("am_restart");
    let mut pair = pair("am_restart");
    let am = Alertmanager::start();
    let path = write_config(&dir, &pair, &am_channel(&am, "300ms"));
    pair.start_watcher_from(watcher_from(&path));
    let id = "r1";
    let _wd = pair.watchdog(id, &["--backoff-initial", "6s"], &["--exit-code", "3"]);
    let host = crash(&pair, id);
    let first = am.wait_alerts(id, "FlumeAgentDown active", deadline(5), active);
    assert_down(&first, id, &host);
    pair.wait_events(id, &["down"], 5);

    let old = pair.watcher.take().expect("watcher");
    let stop = Instant::now();
    let stop_wall = SystemTime::now();
    old.signal(Signal::SIGTERM);
    assert_eq!(old.wait_exit(deadline(10)).code(), Some(0));
    drop(old);
    let new = scenarios::Proc::spawn("watcher2", watcher_from(&path));

    // Watch Alertmanager from now until the agent is back.
    let live = pair.live_path(id);
    let mut polls = 0;
    let mut leading_after = None;
    let mut last = first.clone();
    let back = loop {
        let alerts = am.alerts_of(id);
        assert!(
            active(&alerts),
            "the alert lapsed {:.1?} after the old watcher's stop (poll {polls}; the new \
             watcher {}); last seen:\n{last:#?}\nnow: {alerts:#?}\n--- new watcher ---\n{}",
            stop.elapsed(),
            match leading_after {
                Some(d) => format!("leading {d:.1?} after the stop"),
                None => "not leading yet".to_owned(),
            },
            new.output()
        );
        assert_down(&alerts, id, &host);
        last = alerts;
        polls += 1;
        if leading_after.is_none() && new.output().contains("leading the watchers") {
            leading_after = Some(stop.elapsed());
        }
        if pair.probe.get_json(&live).is_some() {
            break stop.elapsed();
        }
        assert!(
            stop.elapsed() < Duration::from_secs(10),
            "the agent was not restarted within 10 s of the watcher's stop (backoff 6 s)"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let leading_after = leading_after.unwrap_or_else(|| {
        panic!(
            "the new watcher never said it leads; its output:\n{}",
            new.output()
        )
    });
    eprintln!(
        "watcher stopped; the new one led after {leading_after:.1?}; agent back after {back:.1?}; \
         {polls} polls, all active"
    );
    assert!(
        leading_after < REPEAT * 3,
        "premise: the new watcher leads within 3 × repeat of the stop (took {leading_after:.1?})"
    );
    assert!(
        back > REPEAT * 8,
        "premise: the outage outlasts the old watcher's last post by several repeats (back after {back:.1?})"
    );
    // Re-posted by the new watcher: valid until well after anything the old one posted.
    let ends = time(&last[0]["endsAt"]);
    assert!(
        ends > stop_wall + REPEAT * 4 + REPEAT * 2,
        "endsAt {:?} after the stop: re-posted by the new watcher",
        ends.duration_since(stop_wall)
    );
    assert_eq!(
        last[0]["startsAt"], first[0]["startsAt"],
        "the same outage, not a new alert"
    );

    pair.watcher = Some(new);
    pair.wait_events(id, &["down", "recovered"], 10);
    am.wait_alerts(
        id,
        "FlumeAgentDown resolved on recovery",
        deadline(5),
        |a| a.is_empty(),
    );
    assert_eq!(
        events_of(&pair.receiver.alerts(), id),
        ["down", "recovered"],
        "the new watcher did not send the down again"
    );
}
