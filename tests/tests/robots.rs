//! The chat robots end to end: a real ZooKeeper, `flume-watcher run --config FILE` with a robot
//! pointed at a receiver speaking its API, a stand-in agent crashed by SIGUSR1 → the message as
//! the robot received it. A webhook in the same file tells the test when the watcher has spoken.

use std::process::Command;

use nix::sys::signal::Signal;
use receiver::{Receiver, Request};
use scenarios::pair::Pair;
use scenarios::{bin, deadline, unique_root, TempDir, ZkServer};
use serde_json::Value;

/// `flume-watcher run --config PATH`, without any FLUME_WATCHER_* variable from whoever runs
/// the tests.
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

/// A file with ZooKeeper, `alerts` (extra keys in `alerts_extra`), a webhook to the pair's
/// receiver and the robot's `[[channel]]`.
fn config(pair: &Pair, alerts_extra: &str, robot: &str) -> String {
    format!(
        "[zookeeper]\nconnect = \"{}\"\nroot = \"{}\"\nsession_timeout = \"2s\"\n\
         [alerts]\nrecovered_after = \"1s\"\nretry_initial = \"100ms\"\nretry_max = \"1s\"\n{alerts_extra}\n\
         [[channel]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{}\"\n\
         {robot}",
        pair.connect,
        pair.root,
        pair.receiver.url("/alerts")
    )
}

/// Starts the watcher from `text`, crashes agent `id` (exit code 3 on SIGUSR1) and returns its
/// `down` as the webhook got it: the agent, host and reason the robot's message must show.
fn crash(pair: &mut Pair, dir: &TempDir, text: &str, id: &str) -> Value {
    let path = dir.join("watcher.toml");
    std::fs::write(&path, text).expect("write the config");
    pair.start_watcher_from(watcher_from(&path));
    let _wd = pair.watchdog(id, &[], &["--exit-code", "3"]);
    let pid = pair.agent_pid(id);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGUSR1).expect("signal");
    let alerts = pair.wait_events(id, &["down"], 20);
    alerts[0].clone()
}

/// The first request at `rx` whose body mentions `id`, waited for.
fn robot_message(rx: &Receiver, id: &str, what: &str) -> Vec<Request> {
    rx.wait_for(
        |r| r.iter().any(|q| q.body_str().contains(id)),
        deadline(20),
        what,
    )
}

#[test]
fn a_crashed_agent_reaches_a_wecom_robot_and_its_mentions_ring() {
    let dir = TempDir::new("robots-wecom");
    let mut pair = Pair::new(
        &ZkServer::shared().connect_string(),
        &unique_root("robots_wecom"),
    );
    let robot = Receiver::start();
    let text = config(
        &pair,
        "lang = \"en\"\ntimezone = \"UTC\"",
        &format!(
            "[[channel]]\nname = \"wecom\"\ntype = \"wecom\"\nurl = \"{}\"\nat_mobiles = [\"13800000000\"]\n",
            robot.url("/cgi-bin/webhook/send?key=K3Y-e2e")
        ),
    );
    let down = crash(&mut pair, &dir, &text, "w1");
    let host = down["host"].as_str().expect("the down names its host");
    let reason = down["reason"].as_str().expect("the down has a reason");
    assert_eq!(reason, "exited with code 3", "{down}");

    let requests = robot_message(&robot, "w1", "the WeCom markdown about w1");
    let (i, markdown) = requests
        .iter()
        .enumerate()
        .find(|(_, q)| q.body_str().contains("w1"))
        .expect("found above");
    assert_eq!(markdown.query("key").as_deref(), Some("K3Y-e2e"));
    let v = markdown.json();
    assert_eq!(v["msgtype"], "markdown", "{v}");
    let content = v["markdown"]["content"].as_str().expect("content");
    println!("WeCom received (en):\n{content}");
    assert!(
        content.contains("<font color=\"warning\">DOWN</font> w1"),
        "{content}"
    );
    assert!(
        content.contains(&format!("> **Host:** {host}")),
        "{content}"
    );
    assert!(
        content.contains("> **Reason:** exited with code 3"),
        "{content}"
    );
    assert!(
        content.contains(" +00:00"),
        "the configured zone: {content}"
    );
    assert!(content.len() <= 4096);

    let ping = robot.wait_for(
        |r| r.len() > i + 1,
        deadline(10),
        "the text message mentioning 13800000000 after the markdown",
    )[i + 1]
        .json();
    assert_eq!(ping["msgtype"], "text", "{ping}");
    assert_eq!(
        ping["text"]["mentioned_mobile_list"],
        serde_json::json!(["13800000000"])
    );
    assert!(
        ping["text"]["content"]
            .as_str()
            .is_some_and(|c| c.ends_with("above")),
        "{ping}"
    );
    let log = pair.watcher.as_ref().expect("watcher").output();
    assert!(!log.contains("K3Y-e2e"), "the key in the logs:\n{log}");
}

#[test]
fn a_crashed_agent_reaches_a_signed_feishu_bot_in_chinese_and_shanghai_time() {
    let dir = TempDir::new("robots-feishu");
    let mut pair = Pair::new(
        &ZkServer::shared().connect_string(),
        &unique_root("robots_feishu"),
    );
    let robot = Receiver::start();
    robot.set_reply(200, r#"{"code":0,"msg":"success","data":{}}"#);
    let secret = dir.join("feishu.secret");
    std::fs::write(&secret, "fsS3CR3T-e2e\n").expect("write the secret");
    let text = config(
        &pair,
        "lang = \"zh\"\ntimezone = \"Asia/Shanghai\"",
        &format!(
            "[[channel]]\nname = \"feishu\"\ntype = \"feishu\"\nurl = \"{}\"\nsecret_file = \"{}\"\n",
            robot.url("/open-apis/bot/v2/hook/e2e-hook-id"),
            secret.display()
        ),
    );
    let down = crash(&mut pair, &dir, &text, "f1");
    let host = down["host"].as_str().expect("the down names its host");

    let requests = robot_message(&robot, "f1", "the Feishu card about f1");
    let card = requests
        .iter()
        .find(|q| q.body_str().contains("f1"))
        .expect("found above");
    assert_eq!(card.path(), "/open-apis/bot/v2/hook/e2e-hook-id");
    let v = card.json();
    assert_eq!(v["msg_type"], "interactive", "{v}");
    assert!(
        v["timestamp"].as_str().is_some() && v["sign"].as_str().is_some(),
        "signed in the body: {v}"
    );
    assert_eq!(v["card"]["header"]["template"], "red", "{v}");
    assert_eq!(
        v["card"]["header"]["title"]["content"], "Flume agent f1 宕机",
        "{v}"
    );
    let block = v["card"]["elements"][0]["content"]
        .as_str()
        .expect("a markdown block");
    println!(
        "Feishu received (zh):\n{}",
        serde_json::to_string_pretty(&v).unwrap_or_default()
    );
    assert!(
        block.starts_with("<font color='red'>**宕机**</font> **f1**"),
        "{block}"
    );
    assert!(block.contains(&format!("**主机:** {host}")), "{block}");
    assert!(block.contains("**原因:** 退出码 3"), "{block}");
    assert!(block.contains(" +08:00"), "Shanghai time: {block}");
    let log = pair.watcher.as_ref().expect("watcher").output();
    assert!(
        !log.contains("e2e-hook-id") && !log.contains("fsS3CR3T"),
        "a secret in the logs:\n{log}"
    );
}
