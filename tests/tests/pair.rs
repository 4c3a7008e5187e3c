//! The core pair end to end: real ZooKeeper, real watchdog and watcher binaries, a stand-in agent
//! that can be told to crash, real signals, alerts read off a real HTTP receiver.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use scenarios::pair::{events_of, Pair};
use scenarios::{deadline, pid_alive, unique_root, wait_pid_gone, ZkServer};

fn shared(name: &str) -> Pair {
    Pair::start(&ZkServer::shared().connect_string(), &unique_root(name))
}

fn signal_pid(pid: i32, sig: Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig)
        .unwrap_or_else(|e| panic!("kill -{sig} {pid}: {e}"));
}

#[test]
fn crash_with_exit_code_3_is_one_down_then_recovered_through_a_chroot() {
    // Kafka-style chroot in the connect string: everything must live below it.
    let zk = ZkServer::shared();
    let chroot = unique_root("chroot");
    let probe = scenarios::ZkProbe::connect(&zk.connect_string());
    probe.create(&chroot, b"", false);
    let pair = Pair::start(
        &format!("{}{chroot}", zk.connect_string()),
        "/flume-watchdog",
    );
    let _wd = pair.watchdog("a1", &[], &["--exit-code", "3"]);
    let pid = pair.agent_pid("a1");
    assert!(
        probe
            .exists(&format!("{chroot}/flume-watchdog/live/a1"))
            .is_some(),
        "the nodes must be created under the chroot"
    );

    let crashed_at = Instant::now();
    signal_pid(pid, Signal::SIGUSR1);
    let down = pair.wait_events("a1", &["down"], 10);
    let latency = pair
        .receiver
        .requests()
        .iter()
        .find(|r| String::from_utf8_lossy(&r.body).contains("\"down\""))
        .map(|r| r.received_at - crashed_at);
    eprintln!("crash -> down alert received: {latency:?}");
    assert!(
        down[0]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("exited with code 3"),
        "{}",
        down[0]
    );
    assert_eq!(down[0]["restarts"], 1, "{}", down[0]);
    assert_eq!(down[0]["last_exit"]["code"], 3, "{}", down[0]);

    let new_pid = pair.wait_restarted("a1", pid);
    assert!(pid_alive(new_pid), "the restarted agent runs");
    let alerts = pair.wait_events("a1", &["down", "recovered"], 15);
    assert!(
        alerts[1]["outage_seconds"].as_f64().is_some(),
        "{}",
        alerts[1]
    );
    let identity = pair
        .probe
        .get_json(&pair.identity_path("a1"))
        .expect("identity node");
    assert_eq!(identity["restarts"], 1, "{identity}");
    assert_eq!(identity["state"], "running", "{identity}");
}

#[test]
fn sigkill_of_the_agent_is_reported_as_sigkill() {
    let pair = shared("sigkill_agent");
    let _wd = pair.watchdog("k1", &[], &[]);
    let pid = pair.agent_pid("k1");
    signal_pid(pid, Signal::SIGKILL);
    let down = pair.wait_events("k1", &["down"], 10);
    assert_eq!(down[0]["reason"], "killed by SIGKILL", "{}", down[0]);
    assert_eq!(down[0]["last_exit"]["signal"], "SIGKILL", "{}", down[0]);
    pair.wait_restarted("k1", pid);
}

#[test]
fn planned_stop_raises_no_alert_and_leaves_no_process() {
    let pair = shared("planned_stop");
    let wd = pair.watchdog("s1", &[], &[]);
    let pid = pair.agent_pid("s1");
    let out = std::process::Command::new(scenarios::bin("flume-watchdog"))
        .args([
            "stop",
            "--zk",
            &pair.connect,
            "--root",
            &pair.root,
            "--id",
            "s1",
            "--wait",
            "20s",
        ])
        .output()
        .expect("run flume-watchdog stop");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stop failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("stopped s1"), "{stdout}");
    let status = wd.wait_exit(deadline(10));
    assert_eq!(
        status.code(),
        Some(0),
        "the watchdog exits 0 after a planned stop"
    );
    wait_pid_gone(pid, deadline(5), "the stopped agent");
    assert!(
        wd.output().contains("stopping on SIGTERM"),
        "the agent was asked to stop with SIGTERM:\n{}",
        wd.output()
    );
    pair.sentinel("sentinel");
    assert_eq!(
        events_of(&pair.receiver.alerts(), "s1"),
        Vec::<String>::new(),
        "a planned stop is not an alert"
    );
    assert!(
        pair.probe.exists(&pair.identity_path("s1")).is_none()
            && pair.probe.exists(&pair.live_path("s1")).is_none()
    );
}

#[test]
fn stop_of_an_unknown_agent_is_a_clear_error() {
    let pair = shared("stop_unknown");
    let out = std::process::Command::new(scenarios::bin("flume-watchdog"))
        .args([
            "stop",
            "--zk",
            &pair.connect,
            "--root",
            &pair.root,
            "--id",
            "nobody",
            "--wait",
            "2s",
        ])
        .output()
        .expect("run flume-watchdog stop");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no agent nobody is registered"), "{stderr}");
}

#[test]
fn sigterm_to_the_watchdog_is_a_planned_stop() {
    let pair = shared("sigterm_watchdog");
    let wd = pair.watchdog("t1", &["--stop-timeout", "5s"], &[]);
    let pid = pair.agent_pid("t1");
    wd.signal(Signal::SIGTERM);
    assert_eq!(wd.wait_exit(deadline(10)).code(), Some(0));
    wait_pid_gone(pid, deadline(5), "the agent after SIGTERM to its watchdog");
    pair.sentinel("sentinel");
    assert_eq!(
        events_of(&pair.receiver.alerts(), "t1"),
        Vec::<String>::new(),
        "SIGTERM to the watchdog is not an alert"
    );
}

#[test]
fn an_agent_that_ignores_sigterm_is_killed_after_the_stop_timeout() {
    let pair = shared("stop_timeout");
    let wd = pair.watchdog("i1", &["--stop-timeout", "500ms"], &["--ignore-term"]);
    let pid = pair.agent_pid("i1");
    wd.signal(Signal::SIGINT);
    assert_eq!(wd.wait_exit(deadline(10)).code(), Some(0));
    wait_pid_gone(pid, deadline(2), "the agent that ignored SIGTERM");
    assert!(wd.output().contains("ignoring SIGTERM"), "{}", wd.output());
    pair.sentinel("sentinel");
    assert_eq!(
        events_of(&pair.receiver.alerts(), "i1"),
        Vec::<String>::new()
    );
}

#[test]
fn sigkill_of_the_watchdog_is_down_within_the_session_timeout_and_leaves_no_orphan() {
    let pair = shared("sigkill_watchdog");
    let wd = pair.watchdog("w1", &[], &[]);
    let pid = pair.agent_pid("w1");
    let killed_at = Instant::now();
    wd.signal(Signal::SIGKILL);
    wait_pid_gone(
        pid,
        deadline(2),
        "the agent of a SIGKILLed watchdog (parent-death signal)",
    );
    // Session timeout (2 s) + 2 s.
    let down = pair.receiver.wait_for_alerts(
        |a| events_of(a, "w1") == ["down"],
        killed_at + Duration::from_secs(4),
        "w1 down within 4 s of the SIGKILL",
    );
    eprintln!("watchdog SIGKILL -> down alert: {:?}", killed_at.elapsed());
    let down: Vec<_> = down.into_iter().filter(|a| a["agent"] == "w1").collect();
    assert!(
        down[0]["reason"]
            .as_str()
            .unwrap_or("")
            .starts_with("lost contact"),
        "{}",
        down[0]
    );
}

#[test]
fn a_watcher_started_after_the_agent_died_reports_it_once() {
    let mut pair = Pair::new(
        &ZkServer::shared().connect_string(),
        &unique_root("late_watcher"),
    );
    let wd = pair.watchdog("l1", &[], &[]);
    pair.agent_pid("l1");
    wd.signal(Signal::SIGKILL);
    pair.probe
        .wait_until_gone(&pair.live_path("l1"), deadline(10));
    pair.start_watcher();
    // Not live when the watcher first looks: down once the 10 s start-up grace is over (an agent
    // still starting would have come up by then).
    let down = pair.wait_events("l1", &["down"], 25);
    assert!(
        down[0]["reason"]
            .as_str()
            .unwrap_or("")
            .starts_with("registered but not live for 10s"),
        "{}",
        down[0]
    );
    pair.sentinel("sentinel");
    assert_eq!(
        events_of(&pair.receiver.alerts(), "l1"),
        ["down"],
        "exactly one down"
    );
}

#[test]
fn a_second_watchdog_for_a_live_id_is_refused() {
    let pair = shared("duplicate");
    let _first = pair.watchdog("d1", &[], &[]);
    let live_before = pair.wait_live("d1");
    let first_pid = live_before["watchdog_pid"].clone();
    let second = pair.watchdog("d1", &[], &[]);
    let status = second.wait_exit(deadline(15));
    assert_eq!(
        status.code(),
        Some(4),
        "refused with exit code 4:\n{}",
        second.output()
    );
    let out = second.output();
    assert!(
        out.contains("already live") && out.contains(&format!("watchdog pid {first_pid}")),
        "the error names the holder:\n{out}"
    );
    assert!(
        !out.contains("stand-in agent d1 started"),
        "the second agent must not start:\n{out}"
    );
    assert_eq!(
        pair.probe.get_json(&pair.live_path("d1")),
        Some(live_before),
        "the first registration is untouched"
    );
}

#[test]
fn garbage_in_the_nodes_does_not_stop_the_watcher() {
    let pair = shared("garbage");
    let p = &pair.probe;
    // Identity nodes with garbage; liveness nodes (ephemeral, the probe's) with garbage.
    let huge = vec![b'#'; 1_000_000];
    let cases: [(&str, &[u8], &[u8]); 4] = [
        ("g-notjson", b"not json at all", b"\xff\xfe"),
        ("g-empty", b"", b""),
        (
            "g-types",
            br#"{"host":7,"restarts":"x","last_exit":[],"state":{}}"#,
            br#"{"host":[],"agent_pid":"y"}"#,
        ),
        ("g-huge", &huge, b"[1,2,3]"),
    ];
    for (name, identity, live) in cases {
        p.create(&pair.identity_path(name), identity, false);
        p.create(&pair.live_path(name), live, true);
    }
    // Foreign children: names that are no agent ids, a nested node.
    p.create(&format!("{}/live/not an id!", pair.root), b"x", true);
    p.create(&format!("{}/agents/nested/child", pair.root), b"x", false);
    for (name, _, _) in cases {
        p.delete(&pair.live_path(name));
    }
    for (name, _, _) in cases {
        let down = pair.wait_events(name, &["down"], 15);
        assert!(
            down[0]["reason"]
                .as_str()
                .unwrap_or("")
                .starts_with("lost contact"),
            "{}",
            down[0]
        );
    }
    // And it still works for a real agent.
    let _wd = pair.watchdog("real", &[], &[]);
    let pid = pair.agent_pid("real");
    signal_pid(pid, Signal::SIGUSR1);
    pair.wait_events("real", &["down"], 10);
    assert!(
        pair.watcher.as_ref().is_some_and(|w| w.is_running()),
        "the watcher survived the garbage"
    );
}

#[test]
fn status_shows_one_row_per_agent() {
    let pair = shared("status");
    let _up = pair.watchdog("up1", &[], &[]);
    pair.wait_live("up1");
    let wd = pair.watchdog("down1", &[], &[]);
    pair.wait_live("down1");
    wd.signal(Signal::SIGKILL);
    pair.probe
        .wait_until_gone(&pair.live_path("down1"), deadline(10));
    let out = std::process::Command::new(scenarios::bin("flume-watcher"))
        .args([
            "status",
            "--zk",
            &pair.connect,
            "--root",
            &pair.root,
            "--json",
        ])
        .output()
        .expect("run flume-watcher status");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("status --json prints JSON");
    let leader_pid = pair.watcher.as_ref().map(|w| w.pid() as i64);
    assert_eq!(
        rows["leader"]["pid"].as_i64(),
        leader_pid,
        "status names the leading watcher: {rows}"
    );
    assert_eq!(rows["watchers"], 1, "{rows}");
    let states: Vec<(String, String)> = rows["agents"]
        .as_array()
        .expect("an array of rows")
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap_or("").to_owned(),
                r["state"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("down1".to_owned(), "down".to_owned()),
            ("up1".to_owned(), "up".to_owned())
        ]
    );
}

#[test]
fn giving_up_is_reported_as_failed() {
    let pair = shared("gives_up");
    let wd = pair.watchdog(
        "f1",
        &[
            "--max-restarts",
            "2",
            "--restart-window",
            "1m",
            "--backoff-initial",
            "50ms",
        ],
        &["--crash-after", "100ms"],
    );
    let status = wd.wait_exit(deadline(20));
    assert_eq!(
        status.code(),
        Some(3),
        "a watchdog that gave up exits 3:\n{}",
        wd.output()
    );
    let alerts = pair.wait_events("f1", &["down", "failed"], 10);
    assert!(
        alerts[1]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("gave up after 2 restarts"),
        "{}",
        alerts[1]
    );
    let identity = pair
        .probe
        .get_json(&pair.identity_path("f1"))
        .expect("identity stays");
    assert_eq!(identity["state"], "failed", "{identity}");
    assert!(pair.probe.exists(&pair.live_path("f1")).is_none());
}

#[test]
fn a_dingtalk_robot_gets_a_signed_markdown_message_and_no_secret_is_logged() {
    let mut pair = Pair::new(
        &ZkServer::shared().connect_string(),
        &unique_root("dingtalk"),
    );
    let (token, secret) = ("tok-4b1d", "SEC-test+/=9");
    let robot = format!(
        "{},secret={secret}",
        pair.receiver
            .url(&format!("/robot/send?access_token={token}"))
    );
    pair.start_watcher_with(&["--dingtalk", &robot]);
    let _wd = pair.watchdog("dt1", &[], &[]);
    signal_pid(pair.agent_pid("dt1"), Signal::SIGUSR1);
    let reqs = pair.receiver.wait_for(
        |r| r.iter().any(|q| q.path() == "/robot/send"),
        deadline(10),
        "a DingTalk robot request",
    );
    let req = reqs
        .iter()
        .find(|q| q.path() == "/robot/send")
        .expect("found above");
    assert_eq!(req.query("access_token").as_deref(), Some(token));
    let timestamp = req
        .query("timestamp")
        .expect("signed requests carry a timestamp");
    let sign = req.query("sign").expect("signed requests carry a sign");
    // An independent computation of DingTalk's rule: base64(HMAC-SHA256(secret, timestamp + "\n" + secret)).
    let program = "import base64,hashlib,hmac,sys; t,s=sys.argv[1],sys.argv[2]; \
                   print(base64.b64encode(hmac.new(s.encode(), (t+'\\n'+s).encode(), hashlib.sha256).digest()).decode())";
    let out = std::process::Command::new("python3")
        .args(["-c", program, &timestamp, secret])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        sign,
        String::from_utf8_lossy(&out.stdout).trim(),
        "the signature matches an independent computation"
    );
    let body = req.json();
    assert_eq!(body["msgtype"], "markdown", "{body}");
    let text = body["markdown"]["text"].as_str().unwrap_or("");
    assert!(
        text.contains("dt1") && text.contains("exited with code 3"),
        "{text}"
    );
    let log = pair
        .watcher
        .as_ref()
        .map(|w| w.output())
        .unwrap_or_default();
    assert!(
        !log.contains(token) && !log.contains(secret),
        "a secret leaked into the watcher's output:\n{log}"
    );
}

#[test]
fn the_root_deleted_under_a_running_watcher_is_recreated_and_still_watched() {
    let pair = shared("root_deleted");
    // The watcher recreates the folders as soon as they go, so delete them one by one.
    for dir in ["agents", "live", "outages"] {
        pair.probe.delete_recursive(&format!("{}/{dir}", pair.root));
    }
    pair.probe
        .wait_until_exists(&format!("{}/live", pair.root), deadline(10));
    // A death after the deletion is still seen and alerted.
    pair.sentinel("after-deletion");
    assert!(
        pair.watcher.as_ref().is_some_and(|w| w.is_running()),
        "the watcher survived"
    );
}
