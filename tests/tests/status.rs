//! `flume-watcher status` as an operator runs it against a real ZooKeeper: what `--json` gives,
//! what it says about nodes it cannot use, a root that does not exist, and a closed pipe.

use std::process::{Command, Output, Stdio};

use nix::sys::signal::Signal;
use scenarios::pair::watchdog;
use scenarios::{bin, deadline, poll_until, unique_root, ZkProbe, ZkServer};
use serde_json::Value;

fn status(connect: &str, root: &str, extra: &[&str]) -> Output {
    Command::new(bin("flume-watcher"))
        .args(["status", "--zk", connect, "--root", root])
        .args(extra)
        .output()
        .expect("run flume-watcher status")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn json_gives_the_last_exit_as_stored_and_the_labels() {
    let zk = ZkServer::shared();
    let root = unique_root("status_json");
    let probe = ZkProbe::connect(&zk.connect_string());
    let wd = watchdog(
        &zk.connect_string(),
        &root,
        "j1",
        &["--label", "team=logs", "--label", "dc=eu1"],
        &["--exit-code", "3"],
    );
    let identity = format!("{root}/agents/j1");
    let pid = scenarios::pair::started_agent_pid(&wd, "j1");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGUSR1)
        .unwrap_or_else(|e| panic!("kill -USR1 {pid}: {e}"));
    let stored = poll_until(
        deadline(15),
        &format!("{identity} to record the agent's exit"),
        || {
            probe
                .get_json(&identity)
                .filter(|v| v["last_exit"]["code"] == 3)
        },
        || format!("{identity}: {:?}", probe.get_json(&identity)),
    );

    let out = status(&zk.connect_string(), &root, &["--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let json: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("status --json prints JSON ({e}): {}", text(&out.stdout)));
    let row = &json["agents"][0];
    assert_eq!(row["id"], "j1", "{json}");
    assert_eq!(
        row["last_exit"], stored["last_exit"],
        "last_exit as stored in the identity node: {json}"
    );
    assert_eq!(row["last_exit"]["code"], 3, "{json}");
    assert_eq!(row["last_exit"]["signal"], Value::Null, "{json}");
    assert!(row["last_exit"]["at"].is_string(), "{json}");
    assert_eq!(
        row["labels"],
        serde_json::json!({"team": "logs", "dc": "eu1"}),
        "{json}"
    );
    // The layout otherwise as before.
    for key in ["leader", "watchers", "agents"] {
        assert!(json.get(key).is_some(), "{key} in {json}");
    }
    for key in ["id", "host", "state", "since", "restarts"] {
        assert!(row.get(key).is_some(), "{key} in {row}");
    }
    // The table keeps the words.
    let table = status(&zk.connect_string(), &root, &[]);
    assert!(
        text(&table.stdout).contains("exited with code 3 at "),
        "{}",
        text(&table.stdout)
    );
}

#[test]
fn nodes_it_cannot_use_are_named_on_stderr_and_the_rest_is_shown() {
    let zk = ZkServer::shared();
    let root = unique_root("status_skips");
    let probe = ZkProbe::connect(&zk.connect_string());
    probe.create(&root, b"", false);
    probe.create(&format!("{root}/agents"), b"", false);
    probe.create(&format!("{root}/live"), b"", false);
    probe.create(
        &format!("{root}/agents/ok1"),
        br#"{"id":"ok1","host":"h","state":"running","labels":{"team":"logs"}}"#,
        false,
    );
    probe.create(&format!("{root}/live/ok1"), br#"{"host":"h"}"#, true);
    probe.create(&format!("{root}/agents/bad name"), b"{}", false);
    probe.create(&format!("{root}/live/bad name"), b"{}", true);
    probe.create(&format!("{root}/agents/garbled1"), b"not json", false);

    for json in [false, true] {
        let args: &[&str] = if json { &["--json"] } else { &[] };
        let out = status(&zk.connect_string(), &root, args);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        for line in [
            format!("skipped {root}/agents/bad name: not a valid agent id"),
            format!("skipped {root}/live/bad name: not a valid agent id"),
        ] {
            assert_eq!(
                stderr.lines().filter(|l| l.contains(&line)).count(),
                1,
                "one line saying {line:?}; stderr:\n{stderr}"
            );
        }
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(&format!("{root}/agents/garbled1")) && l.contains("not JSON")),
            "the garbled node is named with why; stderr:\n{stderr}"
        );
        let ids: Vec<String> = if json {
            let v: Value = serde_json::from_str(&stdout)
                .unwrap_or_else(|e| panic!("JSON on stdout ({e}): {stdout}"));
            v["agents"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|r| r["id"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        } else {
            stdout
                .lines()
                .skip(2)
                .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
                .collect()
        };
        assert_eq!(ids, ["garbled1", "ok1"], "stdout:\n{stdout}");
        assert!(!stdout.contains("bad name"), "stdout:\n{stdout}");
    }
}

#[test]
fn a_root_that_does_not_exist_is_said_plainly_and_exits_1() {
    let zk = ZkServer::shared();
    let probe = ZkProbe::connect(&zk.connect_string());
    let missing = unique_root("status_no_such_root");
    let chroot = unique_root("status_no_such_chroot");
    let with_chroot = format!("{}{chroot}", zk.connect_string());
    for (connect, root) in [
        (zk.connect_string(), missing.as_str()),
        (with_chroot.clone(), "/flume-watchdog"),
    ] {
        for args in [&[][..], &["--json"][..]] {
            let out = status(&connect, root, args);
            let stderr = text(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{connect} {root}: {stderr}");
            assert!(
                stderr.contains(&format!("{root} does not exist at {connect}"))
                    && stderr.contains("no watchdog has registered there")
                    && stderr.contains("--zk")
                    && stderr.contains("--root"),
                "names the root and the connect string, and what to check: {stderr}"
            );
            assert_eq!(text(&out.stdout), "", "nothing on stdout");
        }
    }
    assert!(
        probe.exists(&chroot).is_none() && probe.exists(&missing).is_none(),
        "status created nothing"
    );

    // An existing root without agents: the empty table, exit 0.
    let empty = unique_root("status_empty_root");
    probe.create(&empty, b"", false);
    let out = status(&zk.connect_string(), &empty, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(
        stdout.lines().count(),
        2,
        "leader line and header: {stdout}"
    );
    assert!(
        stdout.lines().nth(1).is_some_and(|l| l.starts_with("ID ")),
        "{stdout}"
    );
    assert_eq!(text(&out.stderr), "", "nothing to say on stderr");
}

/// A pipe whose read end is closed already, as the child's stdout or stderr.
fn closed_pipe() -> Stdio {
    let (read, write) = nix::unistd::pipe().expect("pipe()");
    drop(read);
    Stdio::from(write)
}

#[test]
fn a_closed_stdout_or_stderr_is_no_panic() {
    let zk = ZkServer::shared();
    let root = unique_root("status_closed_pipe");
    let probe = ZkProbe::connect(&zk.connect_string());
    probe.create(&root, b"", false);
    probe.create(&format!("{root}/agents"), b"", false);
    probe.create(&format!("{root}/agents/a1"), br#"{"host":"h"}"#, false);
    // A node to skip, so that status writes to stderr too.
    probe.create(&format!("{root}/agents/bad name"), b"{}", false);
    let missing = unique_root("status_closed_pipe_missing");

    let run = |root: &str, json: bool, stdout: Stdio, stderr: Stdio| {
        let mut cmd = Command::new(bin("flume-watcher"));
        cmd.args(["status", "--zk", &zk.connect_string(), "--root", root]);
        if json {
            cmd.arg("--json");
        }
        cmd.stdin(Stdio::null()).stdout(stdout).stderr(stderr);
        cmd.output().expect("run flume-watcher status")
    };
    for json in [false, true] {
        // stdout closed: stderr captured, to see any panic message.
        let out = run(&root, json, closed_pipe(), Stdio::piped());
        let stderr = text(&out.stderr);
        assert_ne!(out.status.code(), Some(101), "json={json}: {stderr}");
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "json={json}: {:?} {stderr}",
            out.status
        );
        assert!(!stderr.contains("panicked"), "json={json}: {stderr}");
        // stderr closed: stdout still gets the whole output.
        let out = run(&root, json, Stdio::piped(), closed_pipe());
        assert_eq!(out.status.code(), Some(0), "json={json}");
        assert!(
            text(&out.stdout).contains("a1"),
            "json={json}: {}",
            text(&out.stdout)
        );
    }
    // The error path with stderr closed: exit 1, not a panic.
    let out = run(&missing, false, Stdio::piped(), closed_pipe());
    assert_eq!(out.status.code(), Some(1));
}
