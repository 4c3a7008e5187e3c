//! A rack lost at once: 2,000 agents on 40 hosts lose contact within about a second. Every chat
//! channel (DingTalk, WeCom, Feishu and Slack robots on 127.0.0.1 answering as each does, and a
//! real SMTP server) must get the first loss at once, on its own, and then one summary within
//! 5 s of it, instead of a hundred messages over minutes; the generic webhook, a machine
//! receiver, must still get every alert. Channels come from one configuration file, as an
//! operator writes them.
//!
//! Printed (`--nocapture`): what each receiver got and when, the figures of the closing note.

use std::time::{Duration, Instant, UNIX_EPOCH};

use receiver::{Receiver, Reply};
use scenarios::smtp::Smtp;
use scenarios::TempDir;
use tokio_util::sync::CancellationToken;
use watcher::alert::{Alert, AlertKind};
use watcher::message::{Lang, Style, Zone};
use watcher::notify::Notifier;

mod support;
use support::{ctx, stop, FAST};

/// The summary must leave within this of the first loss (the issue's figure).
const SUMMARY_WITHIN: Duration = Duration::from_secs(5);
/// Every other wait.
const WAIT: Duration = Duration::from_secs(20);
const AGENTS: usize = 2_000;
const HOSTS: usize = 40;

fn lost(i: usize) -> Alert {
    Alert {
        host: Some(format!("rack7-{:02}", i % HOSTS)),
        restarts: Some(0),
        crashes: 1,
        zxid: Some(0x100 + i as i64),
        ..Alert::new(
            AlertKind::Down,
            format!("rack7-{:02}-a{:02}", i % HOSTS, i / HOSTS),
            watcher::outage::LOST_CONTACT.to_owned(),
            UNIX_EPOCH + Duration::from_millis(1_796_000_000_000 + i as u64 / 2),
        )
    }
}

// The receivers' waits block their thread: the notifier's tasks run on the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_rack_is_one_summary_in_every_chat_and_every_alert_in_the_webhook() {
    // In English, the rack's sessions expire over half a second; in Chinese, every loss is
    // queued at once (a new leader taking over, a watcher that was busy): the first still goes
    // alone and at once.
    lost_rack(Lang::En, true).await;
    lost_rack(Lang::Zh, false).await;
}

async fn lost_rack(lang: Lang, staggered: bool) {
    let ok = r#"{"errcode":0,"errmsg":"ok"}"#;
    let dingtalk = Receiver::start();
    dingtalk.set_default(Reply::ok(ok));
    let wecom = Receiver::start();
    wecom.set_default(Reply::ok(ok));
    let feishu = Receiver::start();
    feishu.set_default(Reply::ok(r#"{"code":0,"msg":"success","data":{}}"#));
    let slack = Receiver::start();
    slack.set_default(Reply::ok("ok"));
    let webhook = Receiver::start();
    let dir = TempDir::new("burst-smtp");
    let smtp = Smtp::start::<&str>(dir.path(), &[]);
    let toml = format!(
        r#"
[[channel]]
name = "dingtalk"
type = "dingtalk"
url = "{}"

[[channel]]
name = "wecom"
type = "wecom"
url = "{}"

[[channel]]
name = "feishu"
type = "feishu"
url = "{}"

[[channel]]
name = "slack"
type = "slack"
url = "{}"

[[channel]]
name = "mail"
type = "email"
smtp = "smtp://127.0.0.1:{}"
tls = "none"
from = "flume-watcher@example.com"
to = ["oncall@example.com"]

[[channel]]
name = "webhook"
type = "webhook"
url = "{}"
"#,
        dingtalk.url("/robot/send?access_token=T0KEN"),
        wecom.url("/cgi-bin/webhook/send?key=K3Y"),
        feishu.url("/open-apis/bot/v2/hook/H00K"),
        slack.url("/services/T000/B000/XXXX"),
        smtp.port,
        webhook.url("/hook"),
    );
    let config = watcher::config::parse(&toml).unwrap_or_else(|p| panic!("{p:?}"));
    let style = Style {
        lang,
        zone: Zone::parse("Asia/Shanghai").expect("zone"),
    };
    let cancel = CancellationToken::new();
    let notifier = Notifier::start(&config.channels, &ctx(style), FAST, cancel.clone());

    // The first loss, then the rest of the rack over about a second, as sessions expire.
    let rack: Vec<Alert> = (0..AGENTS).map(lost).collect();
    let first = Instant::now();
    if staggered {
        notifier.send(vec![rack[0].clone()]);
        for chunk in rack[1..].chunks(100) {
            tokio::time::sleep(Duration::from_millis(25)).await;
            notifier.send(chunk.to_vec());
        }
    } else {
        notifier.send(rack.clone());
    }
    let sent_all = first.elapsed();
    // The premise of "one summary": the whole rack is handed over well before the summary
    // gathers what is queued (the notifier's BURST_GATHER after the first alert of the burst).
    assert!(
        sent_all + Duration::from_millis(500) < watcher::notify::BURST_GATHER,
        "premise: the rack handed over within {:?}, took {sent_all:?}",
        watcher::notify::BURST_GATHER - Duration::from_millis(500)
    );

    let deadline = first + SUMMARY_WITHIN;
    let robots: [(&str, &Receiver); 4] = [
        ("DingTalk", &dingtalk),
        ("WeCom", &wecom),
        ("Feishu", &feishu),
        ("Slack", &slack),
    ];
    let mut report = vec![format!(
        "{lang:?}: {AGENTS} losses handed over within {sent_all:?} ({})",
        if staggered {
            "over half a second"
        } else {
            "at once"
        }
    )];
    for (name, rx) in robots {
        let got = rx.wait_for_count(
            2,
            deadline,
            &format!("{name}: the first loss and a summary"),
        );
        let text = |v: &serde_json::Value| -> String {
            let s = match name {
                "DingTalk" => v["markdown"]["text"].as_str().map(str::to_owned),
                "WeCom" => v["markdown"]["content"].as_str().map(str::to_owned),
                "Feishu" => Some(v["card"].to_string()),
                _ => Some(v["blocks"].to_string()),
            };
            s.unwrap_or_else(|| panic!("{name}: unexpected body {v}"))
        };
        let (one, summary) = (text(&got[0].json()), text(&got[1].json()));
        assert!(
            one.contains("rack7-00-a00"),
            "{name}: the first message is the first loss: {one}"
        );
        let title = match lang {
            Lang::En => "2,000 Flume agents lost contact on 40 hosts",
            Lang::Zh => "2,000 个 Flume agent 失去联系（40 台主机）",
        };
        assert!(
            summary.contains(title),
            "{name}: the second is the summary: {summary}"
        );
        for (i, req) in got.iter().enumerate() {
            report.push(format!(
                "  {name} message {} at {:?} after the first loss, {} bytes",
                i + 1,
                req.received_at.duration_since(first),
                req.body.len()
            ));
        }
        report.push(format!("  {name} summary: {summary}"));
    }
    let mails = smtp.wait_received(2, deadline, "the first loss and a summary by mail");
    assert!(
        mails[0].subject().contains("rack7-00-a00"),
        "{}",
        mails[0].subject()
    );
    assert!(
        mails[1].subject().contains("2,000"),
        "{}",
        mails[1].subject()
    );
    let body = mails[1].mail["text"].as_str().unwrap_or_default();
    // Ids are whole words of the list, between spaces, punctuation and brackets.
    let listed: std::collections::BTreeSet<&str> = body
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| w.starts_with("rack7-") && w.contains("-a"))
        .collect();
    assert_eq!(listed.len(), AGENTS, "the summary mail lists every agent");
    report.push(format!(
        "  e-mail: {:?} then {:?}",
        mails[0].subject(),
        mails[1].subject()
    ));

    // The machine receiver gets every alert, each once.
    let mut agents: Vec<String> = webhook
        .wait_for_alerts(
            |a| a.len() >= AGENTS,
            Instant::now() + WAIT,
            "every alert at the webhook",
        )
        .iter()
        .filter_map(|a| a["agent"].as_str().map(str::to_owned))
        .collect();
    agents.sort();
    agents.dedup();
    assert_eq!(agents.len(), AGENTS, "every agent once at the webhook");
    report.push(format!(
        "  webhook: {} alerts in {} requests",
        AGENTS,
        webhook.count()
    ));

    // Nothing more reaches the chats: the summary covered every alert (the stats say all were
    // delivered), and no straggler message follows.
    let until = Instant::now() + WAIT;
    while notifier.stats().iter().any(|s| s.delivered < AGENTS as u64) {
        assert!(
            Instant::now() < until,
            "within {WAIT:?}, not every channel counted {AGENTS} delivered: {:?}",
            notifier.stats()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop(&notifier, &cancel, WAIT).await;
    for (name, rx) in robots {
        assert_eq!(rx.count(), 2, "{name}: only the first loss and one summary");
    }
    assert_eq!(
        smtp.received().len(),
        2,
        "mail: only the first loss and one summary"
    );
    println!("{}", report.join("\n"));
}
