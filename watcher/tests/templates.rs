//! The operator's own template for each chat robot, from the configuration file, as the robot's
//! receiver (on 127.0.0.1, answering as each robot does) gets it: the alert in the operator's
//! words, language and time zone, inside the robot's own message format.

use std::time::{Duration, Instant};

use receiver::{Receiver, Reply};
use tokio_util::sync::CancellationToken;
use watcher::message::{Lang, Style, Zone};
use watcher::notify::Notifier;

mod support;
use support::{alert, ctx, stop, FAST};

const WAIT: Duration = Duration::from_secs(15);
const TEMPLATE: &str =
    "{{ event }}｜{{ agent }}@{{ host }}｜{{ reason }}｜{{ at }}｜#{{ labels.team }}";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_robot_sends_the_alert_in_the_operators_words() {
    let ok = r#"{"errcode":0,"errmsg":"ok"}"#;
    let robots = [
        ("dingtalk", "/robot/send?access_token=T", Reply::ok(ok)),
        ("wecom", "/cgi-bin/webhook/send?key=K", Reply::ok(ok)),
        (
            "feishu",
            "/open-apis/bot/v2/hook/H",
            Reply::ok(r#"{"code":0,"msg":"success"}"#),
        ),
        ("slack", "/services/T/B/X", Reply::ok("ok")),
    ];
    let mut toml = String::new();
    let mut receivers = Vec::new();
    for (kind, path, reply) in robots {
        let rx = Receiver::start();
        rx.set_default(reply);
        toml.push_str(&format!(
            "[[channel]]\nname = \"{kind}\"\ntype = \"{kind}\"\nurl = \"{}\"\ntemplate = \"{}\"\n\n",
            rx.url(path),
            TEMPLATE.replace('"', "\\\"")
        ));
        receivers.push((kind, rx));
    }
    let config = watcher::config::parse(&toml).unwrap_or_else(|p| panic!("{p:?}"));
    let style = Style {
        lang: Lang::Zh,
        zone: Zone::parse("Asia/Shanghai").expect("zone"),
    };
    let cancel = CancellationToken::new();
    let notifier = Notifier::start(&config.channels, &ctx(style), FAST, cancel.clone());
    let mut a = alert("web7-a1");
    a.labels = [("team".to_owned(), "logs".to_owned())].into();
    a.last_exit = Some(common::ExitRecord {
        code: None,
        signal: Some("SIGKILL".to_owned()),
        at: "2025-11-21T04:39:59.900Z".to_owned(),
        error: None,
    });
    notifier.send(vec![a]);
    // The sample alert: killed by SIGKILL on web-3 at 2025-11-21 04:40:00.123 UTC.
    let expected = "宕机｜web7-a1@web-3｜被信号 SIGKILL 终止｜2025-11-21 12:40:00 +08:00｜#logs";
    for (kind, rx) in &receivers {
        let got = rx.wait_for_count(1, Instant::now() + WAIT, &format!("{kind}'s message"));
        let v = got[0].json();
        let text = match *kind {
            "dingtalk" => v["markdown"]["text"].as_str().map(str::to_owned),
            "wecom" => v["markdown"]["content"].as_str().map(str::to_owned),
            "feishu" => v["card"]["elements"][0]["content"]
                .as_str()
                .map(str::to_owned),
            _ => v["blocks"][1]["text"]["text"].as_str().map(str::to_owned),
        }
        .unwrap_or_else(|| panic!("{kind}: no text in {v}"));
        assert_eq!(text, expected, "{kind}: {v}");
    }
    stop(&notifier, &cancel, WAIT).await;
}
