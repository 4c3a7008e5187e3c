//! The Feishu bot through the notifier, against a receiver on 127.0.0.1 answering as Feishu does:
//! `{"code":0,"msg":"success","data":{}}` (or `{"StatusCode":0,…}` from older servers), 11232
//! when sent too fast, 19021 for a bad signature. The signature is checked against Python's
//! standard library.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use receiver::{Receiver, Reply};
use tokio_util::sync::CancellationToken;

use watcher::alert::AlertKind;
use watcher::channels::{feishu, Configured, FeishuChannel, FeishuConfig};
use watcher::message::{Lang, Style, Zone};
use watcher::notify::Notifier;

mod support;
use support::{alert_of, ctx, stop, wait_stats, FAST};

const WAIT: Duration = Duration::from_secs(15);
const HOOK: &str = "0d1c3e4f-aaaa-bbbb-cccc-123456789abc";
const SECRET: &str = "fs3cr3tKEYqwerty+/=";
const OK: &str = r#"{"code":0,"msg":"success","data":{}}"#;

fn bot(rx: &Receiver, secret: Option<&str>) -> Configured {
    let url = rx.url(&format!("/open-apis/bot/v2/hook/{HOOK}"));
    Configured::unnamed(FeishuConfig::new(&url, secret).expect("a valid bot"))
}

/// The signature as Python computes it: base64(HMAC-SHA256(key = "ts\nsecret", msg = b"")).
fn python_sign(secret: &str, timestamp: &str) -> String {
    let program = "import sys, hmac, hashlib, base64\n\
                   ts, secret = sys.argv[1], sys.argv[2]\n\
                   mac = hmac.new(f'{ts}\\n{secret}'.encode(), b'', digestmod=hashlib.sha256).digest()\n\
                   print(base64.b64encode(mac).decode())";
    let out = std::process::Command::new("python3")
        .args(["-c", program, timestamp, secret])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn a_signed_card_reaches_the_bot_signed_like_the_reference() {
    let rx = Receiver::scripted([Reply::ok(OK)]);
    let cancel = CancellationToken::new();
    let notifier = Notifier::start(
        &[bot(&rx, Some(SECRET))],
        &ctx(Style::default()),
        FAST,
        cancel.clone(),
    );
    let name = notifier.stats()[0].channel.clone();
    assert!(
        name.starts_with(&format!(
            "feishu http://127.0.0.1:{}/open-apis/bot/v2/hook/*** (signed) #",
            rx.port()
        )),
        "{name}"
    );
    assert!(!name.contains(HOOK) && !name.contains(SECRET), "{name}");

    let before = now_s();
    notifier.send(vec![alert_of("a1", AlertKind::Down)]);
    let req = rx.next("the signed card").await;
    let after = now_s();
    assert_eq!(req.path(), format!("/open-apis/bot/v2/hook/{HOOK}"));
    assert_eq!(req.header("content-type"), Some("application/json"));
    let v = req.json();
    let timestamp = v["timestamp"]
        .as_str()
        .unwrap_or_else(|| panic!("timestamp is a string of seconds: {v}"));
    let ts: u64 = timestamp.parse().expect("seconds");
    assert!(
        (before..=after).contains(&ts),
        "{ts} not in [{before}, {after}]"
    );
    let expected = python_sign(SECRET, timestamp);
    assert_eq!(v["sign"], expected.as_str(), "{v}");
    assert_eq!(feishu::sign(SECRET, ts), expected);

    assert_eq!(v["msg_type"], "interactive", "{v}");
    assert_eq!(v["card"]["header"]["template"], "red", "{v}");
    assert_eq!(
        v["card"]["header"]["title"],
        serde_json::json!({"tag": "plain_text", "content": "Flume agent a1 down"})
    );
    assert_eq!(
        v["card"]["elements"],
        serde_json::json!([{"tag": "markdown", "content":
            "<font color='red'>**DOWN**</font> **a1**\n**Host:** web-3\n**Reason:** killed by SIGKILL\n**Since:** 2025-11-21 04:40:00 +00:00\n**Restarts:** 2"}])
    );
    let stats = wait_stats(&notifier, WAIT, "delivered == 1", |s| s.delivered == 1).await;
    assert_eq!(
        (stats.retries, stats.failed_permanently),
        (0, 0),
        "{stats:?}"
    );
    stop(&notifier, &cancel, WAIT).await;
    rx.assert_no_more("one alert, one card");
}

/// 11232 is Feishu's rate answer: the same card again after the spacing; an older server's
/// `StatusCode` 0 is success too.
#[tokio::test]
async fn the_rate_answer_is_retried_and_an_older_success_counts() {
    let rx = Receiver::scripted([
        Reply::ok(
            r#"{"code":11232,"msg":"frequency limited psm[lark.oapi.app_platform_runtime]appID[1]","data":{}}"#,
        ),
        Reply::ok(r#"{"Extra":null,"StatusCode":0,"StatusMessage":"success"}"#),
    ]);
    let cancel = CancellationToken::new();
    let zh = Style {
        lang: Lang::Zh,
        zone: Zone::parse("Asia/Shanghai").expect("zone"),
    };
    let notifier = Notifier::start(&[bot(&rx, None)], &ctx(zh), FAST, cancel.clone());
    notifier.send(vec![
        alert_of("a1", AlertKind::Recovered),
        alert_of("a2", AlertKind::Recovered),
    ]);
    let first = rx.next("the attempt answered 11232").await;
    let second = rx.next("the retry").await;
    assert_eq!(
        first.body, second.body,
        "the same card again (unsigned: no timestamp)"
    );
    let gap = second.received_at - first.received_at;
    assert!(gap >= FeishuChannel::MIN_INTERVAL, "retried after {gap:?}");
    let v = second.json();
    assert!(v.get("sign").is_none(), "an unsigned bot: {v}");
    assert_eq!(v["card"]["header"]["template"], "green", "{v}");
    assert_eq!(
        v["card"]["header"]["title"]["content"],
        "2 条 Flume agent 告警"
    );
    let text = v["card"]["elements"][0]["content"].as_str().unwrap();
    assert!(
        text.starts_with("<font color='green'>**已恢复**</font> **a1**\n**主机:** web-3\n**原因:** 已恢复在线\n**恢复时间:** 2025-11-21 12:40:00 +08:00"),
        "{text}"
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

/// 19021 (signature mismatch) will not mend itself: dropped, counted, not retried.
#[tokio::test]
async fn a_signature_mismatch_is_permanent_and_not_retried() {
    let rx = Receiver::scripted([Reply::ok(
        r#"{"code":19021,"msg":"sign match fail or timestamp is not within one hour from current time","data":{}}"#,
    )]);
    let cancel = CancellationToken::new();
    let notifier = Notifier::start(
        &[bot(&rx, Some(SECRET))],
        &ctx(Style::default()),
        FAST,
        cancel.clone(),
    );
    notifier.send(vec![alert_of("a1", AlertKind::Down)]);
    rx.next("the attempt answered 19021").await;
    let stats = wait_stats(&notifier, WAIT, "failed_permanently == 1", |s| {
        s.failed_permanently == 1
    })
    .await;
    assert_eq!((stats.delivered, stats.retries), (0, 0), "{stats:?}");
    stop(&notifier, &cancel, WAIT).await;
    rx.assert_no_more("19021 is not retried");
}

/// A bad request answered with HTTP 400 and Feishu's code: a configuration error, not retried.
#[tokio::test]
async fn a_400_is_permanent() {
    let rx = Receiver::scripted([Reply::new(
        400,
        r#"{"code":9499,"msg":"Bad Request","data":{}}"#,
    )]);
    let cancel = CancellationToken::new();
    let notifier = Notifier::start(
        &[bot(&rx, None)],
        &ctx(Style::default()),
        FAST,
        cancel.clone(),
    );
    notifier.send(vec![alert_of("a1", AlertKind::Down)]);
    rx.next("the attempt answered 400").await;
    wait_stats(&notifier, WAIT, "failed_permanently == 1", |s| {
        s.failed_permanently == 1
    })
    .await;
    stop(&notifier, &cancel, WAIT).await;
    rx.assert_no_more("400 is not retried");
}
