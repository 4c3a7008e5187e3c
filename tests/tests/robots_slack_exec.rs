//! End to end: a real ZooKeeper, `flume-watcher run --config FILE` with a Slack or an exec
//! channel, a watchdog around a stand-in agent crashed with SIGUSR1 → the message as the Slack
//! stand-in received it, and the alerts as the exec channel's script read them on stdin.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use nix::sys::signal::Signal;
use receiver::{Receiver, Reply};
use scenarios::pair::Pair;
use scenarios::{bin, deadline, poll_until, unique_root, TempDir, ZkServer};

/// The watcher's config: this pair's ZooKeeper and root, quick retries, then `channel`.
fn config(pair: &Pair, channel: &str) -> String {
    format!(
        "[zookeeper]\nconnect = \"{}\"\nroot = \"{}\"\nsession_timeout = \"2s\"\n\
         [alerts]\nlang = \"zh\"\ntimezone = \"+08:00\"\nrecovered_after = \"1s\"\n\
         retry_initial = \"100ms\"\nretry_max = \"1s\"\n{channel}",
        pair.connect, pair.root
    )
}

fn run_watcher(pair: &mut Pair, dir: &TempDir, config: &str) {
    let path = dir.join("watcher.toml");
    std::fs::write(&path, config).expect("write the config");
    let mut cmd = Command::new(bin("flume-watcher"));
    cmd.args(["run", "--config", &path.to_string_lossy()]);
    pair.start_watcher_from(cmd);
}

fn crash(pair: &Pair, id: &str) {
    let pid = pair.agent_pid(id);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGUSR1).expect("signal");
}

#[test]
fn a_crash_reaches_slack_as_a_message_in_chinese_in_the_operators_zone() {
    let dir = TempDir::new("robots-slack");
    let mut pair = Pair::new(
        &ZkServer::shared().connect_string(),
        &unique_root("robots_slack"),
    );
    let slack = Receiver::start();
    slack.set_default(Reply::ok("ok").content_type("text/plain"));
    let path = "/services/T0TEAMAAA/B0HOOKBBB/SecretPartXyz123abc";
    let cfg = config(
        &pair,
        &format!(
            "[[channel]]\nname = \"slack\"\ntype = \"slack\"\nurl = \"{}\"\n",
            slack.url(path)
        ),
    );
    run_watcher(&mut pair, &dir, &cfg);
    let _wd = pair.watchdog("s1", &[], &["--exit-code", "3"]);
    crash(&pair, "s1");

    let reqs = slack.wait_for(
        |r| r.iter().any(|r| r.body_str().contains("宕机")),
        deadline(15),
        "the Slack message about s1 going down",
    );
    let down = reqs
        .iter()
        .find(|r| r.body_str().contains("宕机"))
        .expect("found above");
    assert_eq!(down.path(), path);
    let v = down.json();
    println!("the Slack message as received:\n{v:#}");
    let text = v["text"].as_str().unwrap_or_default();
    assert!(text.starts_with("【宕机】s1（"), "{v}");
    assert_eq!(v["blocks"][0]["text"]["text"], "🔴 宕机 · s1", "{v}");
    let section = v["blocks"][1]["text"]["text"].as_str().unwrap_or_default();
    assert!(section.starts_with("*主机:* "), "{section}");
    assert!(section.contains("\n*原因:* 退出码 3\n"), "{section}");
    assert!(
        section.contains("\n*发生时间:* ") && section.contains(" +08:00"),
        "{section}"
    );
    let log = pair.watcher.as_ref().expect("watcher").output();
    for token in ["T0TEAMAAA", "B0HOOKBBB", "SecretPartXyz123abc"] {
        assert!(
            !log.contains(token),
            "the watcher's log shows {token}:\n{log}"
        );
    }
}

#[test]
fn a_crash_reaches_the_exec_commands_stdin_as_json() {
    let dir = TempDir::new("robots-exec");
    let mut pair = Pair::new(
        &ZkServer::shared().connect_string(),
        &unique_root("robots_exec"),
    );
    let script = dir.join("page.sh");
    let inbox = dir.join("inbox");
    std::fs::create_dir_all(&inbox).expect("inbox");
    // One file per run, named uniquely, so that a later run never overwrites the down alert.
    std::fs::write(
        &script,
        "#!/bin/sh\nf=\"$INBOX/$$.json\"\ncat > \"$f.tmp\" && mv \"$f.tmp\" \"$f\"\n",
    )
    .expect("write the script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let cfg = config(
        &pair,
        &format!(
            "[[channel]]\nname = \"sms\"\ntype = \"exec\"\ncommand = [\"{}\"]\ntimeout = \"10s\"\n\
             env = {{ INBOX = \"{}\" }}\n",
            script.display(),
            inbox.display()
        ),
    );
    run_watcher(&mut pair, &dir, &cfg);
    let _wd = pair.watchdog("x1", &[], &["--exit-code", "3"]);
    crash(&pair, "x1");

    let down = poll_until(
        deadline(15),
        "the exec script's stdin holding x1's down alert",
        || {
            std::fs::read_dir(&inbox).ok()?.flatten().find_map(|e| {
                let path = e.path();
                if path.extension().is_none_or(|x| x != "json") {
                    return None;
                }
                let v: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
                v["alerts"]
                    .as_array()?
                    .iter()
                    .find(|a| a["agent"] == "x1" && a["event"] == "down")
                    .cloned()
            })
        },
        || {
            let names: Vec<String> = std::fs::read_dir(&inbox)
                .map(|d| {
                    d.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            format!("files in the inbox: {names:?}")
        },
    );
    println!("the down alert as the script read it: {down:#}");
    assert!(
        down["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("x1/down/")),
        "{down}"
    );
    assert_eq!(down["reason"], "exited with code 3", "{down}");
    assert!(down["host"].is_string(), "{down}");
}
