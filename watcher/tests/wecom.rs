//! The WeCom robot through the notifier, against a receiver on 127.0.0.1 answering as WeCom does:
//! `{"errcode":0,"errmsg":"ok"}`, 45009 when sent too fast, 93000 for a key it does not know.

use std::time::Duration;

use receiver::{Receiver, Reply};
use tokio_util::sync::CancellationToken;

use watcher::alert::Alert;
use watcher::channels::wecom::{Mentions, MAX_CONTENT_BYTES};
use watcher::channels::{Configured, WeComChannel, WeComConfig};
use watcher::message::{Lang, Style, Zone};
use watcher::notify::Notifier;

mod support;
use support::{alert, ctx, stop, wait_stats, FAST};

const WAIT: Duration = Duration::from_secs(15);
const KEY: &str = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa";
const OK: &str = r#"{"errcode":0,"errmsg":"ok"}"#;

fn robot(rx: &Receiver, mentions: Mentions) -> Configured {
    let url = rx.url(&format!("/cgi-bin/webhook/send?key={KEY}"));
    Configured::unnamed(WeComConfig::new(&url, mentions).expect("a valid robot"))
}

fn content(req: &receiver::Request) -> String {
    let v = req.json();
    assert_eq!(v["msgtype"], "markdown", "{v}");
    v["markdown"]["content"]
        .as_str()
        .unwrap_or_else(|| panic!("no markdown content in {v}"))
        .to_owned()
}

#[tokio::test]
async fn a_markdown_message_reaches_the_robot_and_the_key_is_never_shown() {
    let rx = Receiver::scripted([Reply::ok(OK)]);
    let cancel = CancellationToken::new();
    let notifier = Notifier::start(
        &[robot(&rx, Mentions::default())],
        &ctx(Style::default()),
        FAST,
        cancel.clone(),
    );
    let name = notifier.stats()[0].channel.clone();
    assert!(
        name.starts_with(&format!(
            "wecom http://127.0.0.1:{}/cgi-bin/webhook/send?key=*** #",
            rx.port()
        )),
        "{name}"
    );
    assert!(!name.contains(KEY), "{name}");

    notifier.send(vec![alert("a1")]);
    let req = rx.next("the markdown message").await;
    assert_eq!(req.method, "POST");
    assert_eq!(req.query("key").as_deref(), Some(KEY));
    assert_eq!(req.header("content-type"), Some("application/json"));
    let text = content(&req);
    assert_eq!(
        text,
        "### <font color=\"warning\">DOWN</font> a1\n> **Host:** web-3\n> **Reason:** killed by SIGKILL\n> **Since:** 2025-11-21 04:40:00 +00:00\n> **Restarts:** 2"
    );
    let stats = wait_stats(&notifier, WAIT, "delivered == 1", |s| s.delivered == 1).await;
    assert_eq!(
        (stats.retries, stats.failed_permanently),
        (0, 0),
        "{stats:?}"
    );
    stop(&notifier, &cancel, WAIT).await;
    rx.assert_no_more("one alert, one message, no mentions configured");
}

/// 45009 is WeCom's "api freq out of limit": the same message again, after the 3 s spacing.
#[tokio::test]
async fn the_rate_answer_is_retried_after_the_spacing() {
    let rx = Receiver::scripted([
        Reply::ok(r#"{"errcode":45009,"errmsg":"api freq out of limit"}"#),
        Reply::ok(OK),
    ]);
    let cancel = CancellationToken::new();
    let notifier = Notifier::start(
        &[robot(&rx, Mentions::default())],
        &ctx(Style::default()),
        FAST,
        cancel.clone(),
    );
    notifier.send(vec![alert("a1"), alert("a2")]);
    let first = rx.next("the attempt answered 45009").await;
    let second = rx.next("the retry").await;
    assert_eq!(content(&first), content(&second), "the same message again");
    assert!(content(&first).starts_with("**2 Flume agent alerts**"));
    let gap = second.received_at - first.received_at;
    assert!(
        gap >= WeComChannel::MIN_INTERVAL,
        "retried after {gap:?}, sooner than the spacing"
    );
    let stats = wait_stats(&notifier, WAIT, "delivered == 2", |s| s.delivered == 2).await;
    assert_eq!(
        (stats.retries, stats.failed_permanently),
        (1, 0),
        "{stats:?}"
    );
    stop(&notifier, &cancel, WAIT).await;
    rx.assert_no_more("delivered on the second attempt");
}

/// 93000 says the key is not valid: dropped, counted, not retried; the key is not in the logs.
#[tokio::test]
async fn an_invalid_key_is_permanent_and_not_retried() {
    let rx = Receiver::scripted([Reply::ok(format!(
        r#"{{"errcode":93000,"errmsg":"invalid webhook url, key {KEY}"}}"#
    ))]);
    let cancel = CancellationToken::new();
    let notifier = Notifier::start(
        &[robot(&rx, Mentions::default())],
        &ctx(Style::default()),
        FAST,
        cancel.clone(),
    );
    notifier.send(vec![alert("a1")]);
    rx.next("the attempt answered 93000").await;
    let stats = wait_stats(&notifier, WAIT, "failed_permanently == 1", |s| {
        s.failed_permanently == 1
    })
    .await;
    assert_eq!((stats.delivered, stats.retries), (0, 0), "{stats:?}");
    let shown = format!("{stats:?}");
    assert!(!shown.contains(KEY), "{shown}");
    stop(&notifier, &cancel, WAIT).await;
    rx.assert_no_more("93000 is not retried");
}

/// Mentions ring only from a `text` message: the alerts as markdown, then one line in the
/// style's language mentioning the mobiles and everyone.
#[tokio::test]
async fn mentions_follow_the_markdown_as_a_text_message() {
    let rx = Receiver::start();
    let cancel = CancellationToken::new();
    let zh = Style {
        lang: Lang::Zh,
        zone: Zone::parse("Asia/Shanghai").expect("zone"),
    };
    let mentions = Mentions {
        mobiles: vec!["13800000000".to_owned(), "+86-13900000000".to_owned()],
        all: true,
    };
    let notifier = Notifier::start(&[robot(&rx, mentions)], &ctx(zh), FAST, cancel.clone());
    notifier.send(vec![alert("a1"), alert("a2")]);
    let markdown = content(&rx.next("the markdown message").await);
    assert!(
        markdown.starts_with("**2 条 Flume agent 告警**\n\n### <font color=\"warning\">宕机</font> a1\n> **主机:** web-3\n> **原因:** killed by SIGKILL\n> **发生时间:** 2025-11-21 12:40:00 +08:00"),
        "{markdown}"
    );
    let ping = rx.next("the text message mentioning people").await.json();
    assert_eq!(
        ping,
        serde_json::json!({"msgtype": "text", "text": {
            "content": "以上 2 条 Flume agent 告警",
            "mentioned_mobile_list": ["13800000000", "+86-13900000000", "@all"]}})
    );
    let stats = wait_stats(&notifier, WAIT, "delivered == 2", |s| s.delivered == 2).await;
    assert_eq!(stats.retries, 0, "{stats:?}");
    stop(&notifier, &cancel, WAIT).await;
    rx.assert_no_more("one markdown and one text message");
}

/// More alerts than one message holds, every field long and in Chinese: split by the notifier
/// into messages that each fit 4,096 bytes, in order, none refused.
#[tokio::test]
async fn long_chinese_alerts_go_in_messages_that_fit_and_a_burst_in_one_summary() {
    let rx = Receiver::start();
    let cancel = CancellationToken::new();
    let zh = Style {
        lang: Lang::Zh,
        zone: Zone::parse("+08:00").expect("zone"),
    };
    let notifier = Notifier::start(
        &[robot(&rx, Mentions::default())],
        &ctx(zh),
        FAST,
        cancel.clone(),
    );
    let long = "采集通道故障".repeat(200);
    let long_alert = |i: usize| Alert {
        host: Some(long.clone()),
        reason: long.clone(),
        ..alert(&format!("a{i}-{long}"))
    };
    // As many as fit one message go in it, every field cut visibly.
    notifier.send((0..3).map(long_alert).collect());
    let text = content(&rx.next("the message of three").await);
    assert!(text.len() <= MAX_CONTENT_BYTES, "{} bytes", text.len());
    assert!(text.contains('…'), "long fields are cut visibly: {text}");
    let agents: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("### <font color=\"warning\">宕机</font> "))
        .map(|a| a.split('-').next().unwrap_or_default())
        .collect();
    assert_eq!(agents, ["a0", "a1", "a2"], "every alert once, in order");

    // More than one message would carry: one summary, within the limit. It comes within the
    // burst of the three (less than BURST_GATHER after them), so it counts them too.
    let n = WeComChannel::MAX_BATCH + 2;
    notifier.send((3..3 + n).map(long_alert).collect());
    let text = content(&rx.next("the summary").await);
    assert!(text.len() <= MAX_CONTENT_BYTES, "{} bytes", text.len());
    let all = 3 + n;
    assert!(
        text.starts_with(&format!(
            "### <font color=\"warning\">{all} 个 Flume agent 宕机（1 台主机）</font>"
        )),
        "{text}"
    );
    assert!(text.contains("> **Agent:** a0-"), "{text}");
    assert!(
        text.contains(&format!("（共 {all} 个，以上为最先的 10 个）")),
        "{text}"
    );
    wait_stats(&notifier, WAIT, "all delivered", |s| {
        s.delivered == 3 + n as u64
    })
    .await;
    stop(&notifier, &cancel, WAIT).await;
    rx.assert_no_more("one message and one summary");
}
