//! The watcher's configuration file through the real binary: `config example` and `config check`,
//! a watcher run from a file (plus a flag), and a channel moved from a flag to the file that is not
//! sent again what it took.

use std::process::{Command, Output};
use std::time::Duration;

use nix::sys::signal::Signal;
use receiver::Receiver;
use scenarios::pair::{events_of, Pair};
use scenarios::{bin, deadline, unique_root, Proc, TempDir, ZkServer};

/// `flume-watcher` with `args` and no FLUME_WATCHER_* variable from whoever runs the tests.
fn watcher(args: &[&str]) -> Output {
    let mut cmd = Command::new(bin("flume-watcher"));
    for (var, _) in std::env::vars_os() {
        if var.to_string_lossy().starts_with("FLUME_WATCHER_") {
            cmd.env_remove(&var);
        }
    }
    cmd.args(args)
        .output()
        .unwrap_or_else(|e| panic!("run flume-watcher: {e}"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn the_example_passes_the_check_and_the_check_shows_no_secret() {
    let dir = TempDir::new("config-example");
    let example = watcher(&["config", "example"]);
    assert_eq!(example.status.code(), Some(0), "{}", text(&example.stderr));
    let path = dir.join("watcher.toml");
    std::fs::write(&path, &example.stdout).expect("write the example");
    let check = watcher(&["config", "check", "--config", &path.to_string_lossy()]);
    let shown = text(&check.stdout);
    assert_eq!(
        check.status.code(),
        Some(0),
        "the example must pass:\n{}{}",
        shown,
        text(&check.stderr)
    );
    for want in [
        ": ok",
        "connect          127.0.0.1:2181/kafka",
        "hook     webhook http://127.0.0.1:8080/alerts",
        "access_token=***,secret=***, mentions 13800000000",
        "delivery state kept as: dingtalk https://oapi.dingtalk.com/robot/send?access_token=*** (signed) #",
    ] {
        assert!(shown.contains(want), "{want:?} missing in:\n{shown}");
    }
    assert!(
        !shown.contains("TOKEN") && !shown.contains("SECRET"),
        "a secret shown:\n{shown}"
    );
}

#[test]
fn a_bad_file_is_every_problem_with_its_place_and_exit_2() {
    let dir = TempDir::new("config-bad");
    let path = dir.join("bad.toml");
    std::fs::write(
        &path,
        r#"
[zookeeper]
conect = "zk1:2181"
[alerts]
recovered_after = "-5s"
[[channel]]
type = "dingtalk"
url = "https://oapi.dingtalk.com/robot/send?access_token=T0K3N"
secret_file = "/nonexistent/dingtalk.secret"
[[channel]]
type = "slack-ish"
"#,
    )
    .expect("write");
    let path = path.to_string_lossy().into_owned();
    for args in [
        vec!["config", "check", "--config", &path],
        vec!["run", "--config", &path],
    ] {
        let out = watcher(&args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}:\n{err}");
        for want in [
            "zookeeper.conect: unknown key",
            "alerts.recovered_after: `-5s`: a duration cannot be negative",
            "channel[1].secret_file: cannot read /nonexistent/dingtalk.secret",
            "channel[2].type: unknown channel type `slack-ish`",
        ] {
            assert!(
                err.contains(&format!("{path}: {want}")),
                "{args:?}: {want:?} missing in:\n{err}"
            );
        }
        assert!(!err.contains("T0K3N"), "a secret shown:\n{err}");
        assert!(text(&out.stdout).is_empty(), "{args:?}: nothing else said");
    }
}

/// The file gives ZooKeeper, the root, the alert settings and a webhook; a flag adds a second
/// webhook. A crash reaches both, with the file's `recovered_after`.
#[test]
fn a_watcher_runs_from_the_file_and_a_flag_adds_a_channel() {
    let dir = TempDir::new("config-run");
    let mut pair = Pair::new(
        &ZkServer::shared().connect_string(),
        &unique_root("config_run"),
    );
    let second = Receiver::start();
    let path = dir.join("watcher.toml");
    std::fs::write(
        &path,
        format!(
            "[zookeeper]\nconnect = \"{}\"\nroot = \"{}\"\nsession_timeout = \"2s\"\n\
             [alerts]\nrecovered_after = \"1s\"\nretry_initial = \"100ms\"\nretry_max = \"1s\"\n\
             [[channel]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{}\"\n",
            pair.connect,
            pair.root,
            pair.receiver.url("/alerts")
        ),
    )
    .expect("write");
    let mut cmd = Command::new(bin("flume-watcher"));
    cmd.args(["run", "--config", &path.to_string_lossy()])
        .args(["--webhook", &second.url("/second")]);
    pair.start_watcher_from(cmd);
    let _wd = pair.watchdog("f1", &[], &["--exit-code", "3"]);
    let pid = pair.agent_pid("f1");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGUSR1).expect("signal");
    let alerts = pair.wait_events("f1", &["down", "recovered"], 15);
    assert!(
        alerts[1]["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("live again for 1s")),
        "the file's recovered_after: {}",
        alerts[1]
    );
    second.wait_for(
        |r| events_of(&receiver::alerts_of(r), "f1") == ["down", "recovered"],
        deadline(10),
        "the down and recovered at the flag's webhook too",
    );
    let log = pair.watcher.as_ref().expect("watcher").output();
    assert!(
        log.contains("channel=hook"),
        "the file's channel is named in the logs:\n{log}"
    );
}

/// A webhook given by a flag takes a `down`; the watcher is stopped while the outage is open and
/// started again with the same webhook moved into the file, under a name. It sends the
/// `recovered`, and not the `down` again: delivery state is kept per receiver, not per name.
#[test]
fn a_channel_moved_from_a_flag_to_the_file_is_not_sent_again_what_it_took() {
    let dir = TempDir::new("config-move");
    let mut pair = Pair::new(
        &ZkServer::shared().connect_string(),
        &unique_root("config_move"),
    );
    let url = pair.receiver.url("/alerts");
    let flags = |cmd: &mut Command| {
        cmd.args(["--recovered-after", "10s"]).args([
            "--retry-initial",
            "100ms",
            "--retry-max",
            "1s",
        ]);
    };
    let mut first = Command::new(bin("flume-watcher"));
    first.args([
        "run",
        "--zk",
        &pair.connect,
        "--root",
        &pair.root,
        "--webhook",
        &url,
    ]);
    flags(&mut first);
    pair.start_watcher_from(first);
    let _wd = pair.watchdog("m1", &[], &["--exit-code", "3"]);
    let pid = pair.agent_pid("m1");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGUSR1).expect("signal");
    pair.wait_events("m1", &["down"], 10);
    let old: Proc = pair.watcher.take().expect("watcher");
    // Its last words include noting the delivery in the outage record.
    old.signal(Signal::SIGTERM);
    assert_eq!(old.wait_exit(deadline(10)).code(), Some(0));
    drop(old);

    let path = dir.join("watcher.toml");
    std::fs::write(
        &path,
        format!("[[channel]]\nname = \"moved\"\ntype = \"webhook\"\nurl = \"{url}\"\n"),
    )
    .expect("write");
    let mut second = Command::new(bin("flume-watcher"));
    second.args([
        "run",
        "--config",
        &path.to_string_lossy(),
        "--zk",
        &pair.connect,
        "--root",
        &pair.root,
    ]);
    flags(&mut second);
    pair.start_watcher_from(second);
    pair.wait_events("m1", &["down", "recovered"], 20);
    pair.sentinel("sentinel");
    assert_eq!(
        events_of(&pair.receiver.alerts(), "m1"),
        ["down", "recovered"],
        "the down once, then the recovered"
    );
}

/// Routes through the real binary: `r-web*` agents and agents labelled `team=web` go to one
/// webhook, the rest to the default channel; each receiver gets only its agents' alerts (with
/// their labels), and every outage record is pruned in the end (a notice counts as done for the
/// channels its routes skip).
#[test]
fn routes_send_each_agent_to_its_channels_and_records_are_pruned() {
    let dir = TempDir::new("config-routes");
    let mut pair = Pair::new(
        &ZkServer::shared().connect_string(),
        &unique_root("config_routes"),
    );
    let web = Receiver::start();
    let path = dir.join("watcher.toml");
    std::fs::write(
        &path,
        format!(
            "[zookeeper]\nconnect = \"{}\"\nroot = \"{}\"\n\
             [alerts]\nrecovered_after = \"1s\"\nretry_initial = \"100ms\"\nretry_max = \"1s\"\n\
             default_channels = [\"rest\"]\n\
             [[channel]]\nname = \"web\"\ntype = \"webhook\"\nurl = \"{}\"\n\
             [[channel]]\nname = \"rest\"\ntype = \"webhook\"\nurl = \"{}\"\n\
             [[route]]\nagents = [\"r-web*\"]\nchannels = [\"web\"]\n\
             [[route]]\nlabels = {{ team = \"web\" }}\nchannels = [\"web\"]\n",
            pair.connect,
            pair.root,
            web.url("/web"),
            pair.receiver.url("/alerts"),
        ),
    )
    .expect("write");
    let check = watcher(&["config", "check", "--config", &path.to_string_lossy()]);
    let shown = text(&check.stdout);
    assert!(
        shown.contains(
            "  1. agent r-web* -> web\n  2. label team=web -> web\n  otherwise -> rest\n"
        ),
        "{shown}{}",
        text(&check.stderr)
    );
    let mut cmd = Command::new(bin("flume-watcher"));
    cmd.args(["run", "--config", &path.to_string_lossy()]);
    pair.start_watcher_from(cmd);
    let _web1 = pair.watchdog("r-web1", &[], &["--exit-code", "3"]);
    let _db1 = pair.watchdog("r-db1", &[], &["--exit-code", "3"]);
    let _api1 = pair.watchdog("r-api1", &["--label", "team=web"], &["--exit-code", "3"]);
    for id in ["r-web1", "r-db1", "r-api1"] {
        let pid = pair.agent_pid(id);
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGUSR1).expect("signal");
    }
    web.wait_for(
        |r| events_of(&receiver::alerts_of(r), "r-web1") == ["down", "recovered"],
        deadline(15),
        "r-web1's down and recovered at the web channel",
    );
    web.wait_for(
        |r| events_of(&receiver::alerts_of(r), "r-api1") == ["down", "recovered"],
        deadline(15),
        "r-api1's down and recovered at the web channel, by its label",
    );
    let api = receiver::alerts_of(&web.requests())
        .into_iter()
        .find(|a| a["agent"] == "r-api1")
        .expect("r-api1's alert");
    assert_eq!(
        api["labels"]["team"], "web",
        "the agent's labels go along: {api}"
    );
    pair.wait_events("r-db1", &["down", "recovered"], 15);
    pair.sentinel("sentinel");
    for id in ["r-web1", "r-api1"] {
        assert!(
            events_of(&pair.receiver.alerts(), id).is_empty(),
            "{id} is routed to the web channel only"
        );
    }
    assert!(
        events_of(&receiver::alerts_of(&web.requests()), "r-db1").is_empty(),
        "r-db1 goes to the default channel only"
    );
    let outages = format!("{}/outages", pair.root);
    scenarios::poll_until(
        deadline(10),
        "every outage record pruned",
        || {
            pair.probe
                .children(&outages)
                .iter()
                .all(|c| c.starts_with("sentinel"))
                .then_some(())
        },
        || format!("{:?}", pair.probe.children(&outages)),
    );
}

/// `test-alert` sends a test notice through each channel and says what each did: a webhook that
/// takes it is `delivered`, one that answers 404 has FAILED (exit 1); `--channel` tests one.
#[test]
fn test_alert_says_what_each_channel_did() {
    let dir = TempDir::new("config-test-alert");
    let (good, bad) = (Receiver::start(), Receiver::start());
    bad.set_reply(404, "no such hook");
    let path = dir.join("watcher.toml");
    std::fs::write(
        &path,
        format!(
            "[[channel]]\nname = \"good\"\ntype = \"webhook\"\nurl = \"{}\"\n\
             [[channel]]\nname = \"bad\"\ntype = \"webhook\"\nurl = \"{}\"\n",
            good.url("/hook"),
            bad.url("/hook")
        ),
    )
    .expect("write");
    let path = path.to_string_lossy().into_owned();
    let both = watcher(&["test-alert", "--config", &path, "--wait", "3s"]);
    let said = text(&both.stdout);
    assert_eq!(both.status.code(), Some(1), "{said}{}", text(&both.stderr));
    assert!(said.contains("good  delivered\n"), "{said}");
    assert!(said.contains("bad   FAILED: refused for good"), "{said}");
    let got = receiver::alerts_of(&good.requests());
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["event"], "test");
    assert!(
        got[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("nothing is wrong")),
        "{}",
        got[0]
    );

    let one = watcher(&["test-alert", "--config", &path, "--channel", "good"]);
    assert_eq!(one.status.code(), Some(0), "{}", text(&one.stderr));
    assert_eq!(text(&one.stdout), "good  delivered\n");
    let none = watcher(&["test-alert", "--config", &path, "--channel", "nobody"]);
    assert_eq!(none.status.code(), Some(2));
    assert!(
        text(&none.stderr).contains("--channel: no channel is named `nobody` (named: good, bad)"),
        "{}",
        text(&none.stderr)
    );
}

/// An escalation route (`after`): the phone gets the down of an outage still open `after` its
/// down, not before, and then its recovered; an outage that ended sooner never reaches it. The
/// chat channel gets every alert at once. Premise: the short outage (a restart after 100 ms,
/// then `recovered_after` 1 s) ends well within the 4 s wait even on a loaded machine, and the
/// long one (a restart only after 8 s) is still open when the wait runs out.
#[test]
fn an_escalation_rings_only_for_an_outage_still_open() {
    let dir = TempDir::new("config-escalation");
    let mut pair = Pair::new(
        &ZkServer::shared().connect_string(),
        &unique_root("config_escalation"),
    );
    let phone = Receiver::start();
    let after = Duration::from_secs(4);
    let path = dir.join("watcher.toml");
    std::fs::write(
        &path,
        format!(
            "[zookeeper]\nconnect = \"{}\"\nroot = \"{}\"\n\
             [alerts]\nrecovered_after = \"1s\"\nretry_initial = \"100ms\"\nretry_max = \"1s\"\n\
             [[channel]]\nname = \"chat\"\ntype = \"webhook\"\nurl = \"{}\"\n\
             [[channel]]\nname = \"phone\"\ntype = \"webhook\"\nurl = \"{}\"\n\
             [[route]]\nchannels = [\"chat\"]\ncontinue = true\n\
             [[route]]\nafter = \"4s\"\nchannels = [\"phone\"]\n",
            pair.connect,
            pair.root,
            pair.receiver.url("/alerts"),
            phone.url("/phone"),
        ),
    )
    .expect("write");
    let check = watcher(&["config", "check", "--config", &path.to_string_lossy()]);
    let shown = text(&check.stdout);
    assert!(
        shown.contains("  2. every alert -> phone after 4s if still down (then its recovered)\n"),
        "{shown}{}",
        text(&check.stderr)
    );
    let mut cmd = Command::new(bin("flume-watcher"));
    cmd.args(["run", "--config", &path.to_string_lossy()]);
    pair.start_watcher_from(cmd);
    let _long = pair.watchdog(
        "e-long",
        &["--backoff-initial", "8s"],
        &["--exit-code", "3"],
    );
    let _short = pair.watchdog(
        "e-short",
        &["--backoff-initial", "100ms"],
        &["--exit-code", "3"],
    );
    for id in ["e-long", "e-short"] {
        let pid = pair.agent_pid(id);
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGUSR1).expect("signal");
    }
    let short = pair.wait_events("e-short", &["down", "recovered"], 15);
    let lasted = short[1]["outage_seconds"].as_f64().unwrap_or(f64::MAX);
    assert!(
        lasted < after.as_secs_f64() - 1.0,
        "premise: the short outage ends well before the escalation ({lasted} s)"
    );
    pair.wait_events("e-long", &["down"], 10);
    phone.wait_for(
        |r| events_of(&receiver::alerts_of(r), "e-long") == ["down", "recovered"],
        deadline(25),
        "e-long's down, escalated, then its recovered at the phone",
    );
    let requests = phone.requests();
    let first = requests
        .iter()
        .find(|r| events_of(r.alerts(), "e-long") == ["down"])
        .expect("the phone's first request carries e-long's down");
    let down = &first.alerts()[0];
    let at = common::time::parse(down["at"].as_str().unwrap_or_default()).expect("the down's time");
    let waited = first
        .received_wall
        .duration_since(at)
        .unwrap_or(Duration::ZERO);
    assert!(
        waited >= after - Duration::from_millis(50),
        "escalated {waited:?} after the down: before its 4 s"
    );
    assert!(
        waited < after + Duration::from_secs(3),
        "escalated {waited:?} after the down: late"
    );
    pair.wait_events("e-long", &["down", "recovered"], 15);
    pair.sentinel("sentinel");
    phone.wait_for(
        |r| {
            receiver::alerts_of(r)
                .iter()
                .any(|a| a["agent"] == "sentinel")
        },
        deadline(10),
        "the sentinel's down escalated too (it stays down)",
    );
    assert!(
        events_of(&receiver::alerts_of(&phone.requests()), "e-short").is_empty(),
        "the short outage never rings the phone"
    );
}
