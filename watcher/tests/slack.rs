//! The Slack channel through the notifier, against a receiver on 127.0.0.1 that answers as Slack's
//! incoming webhooks do: `200 ok` as text, `429` with `Retry-After` in seconds, 4xx with Slack's
//! word for the problem (`no_service`, `invalid_payload`, …), 5xx when Slack has trouble.

use std::time::Duration;

use receiver::{Receiver, Reply};
use tokio_util::sync::CancellationToken;

use watcher::channels::{
    http_client, Channel, Configured, DeliveryError, SlackChannel, SlackConfig,
};
use watcher::notify::Notifier;

mod support;
use support::{alert, ctx, stop, wait_stats, FAST};

const WAIT: Duration = Duration::from_secs(10);
/// A Slack webhook path: the three tokens are the credential.
const PATH: &str = "/services/T0TEAMAAA/B0HOOKBBB/SecretPartXyz123abc";
const TOKENS: [&str; 3] = ["T0TEAMAAA", "B0HOOKBBB", "SecretPartXyz123abc"];

/// Slack's success: `ok` as text.
fn slack_ok() -> Reply {
    Reply::ok("ok").content_type("text/plain")
}

/// A receiver answering `script`, then `200 ok`.
fn slack_receiver(script: Vec<Reply>) -> Receiver {
    let rx = Receiver::scripted(script);
    rx.set_default(slack_ok());
    rx
}

fn start(rx: &Receiver, cancel: &CancellationToken) -> Notifier {
    let spec = SlackConfig::parse(&rx.url(PATH)).expect("a Slack URL");
    Notifier::start(
        &[Configured::unnamed(spec)],
        &ctx(Default::default()),
        FAST,
        cancel.clone(),
    )
}

#[tokio::test]
async fn an_alert_arrives_as_text_and_blocks() {
    let rx = slack_receiver(Vec::new());
    let cancel = CancellationToken::new();
    let notifier = start(&rx, &cancel);
    let name = &notifier.stats()[0].channel;
    assert!(
        name.starts_with("slack http://127.0.0.1:") && name.contains("/services/***/***/*** #"),
        "{name}"
    );

    notifier.send(vec![alert("a1")]);
    let req = rx.next("the Slack message").await;
    assert_eq!((req.method.as_str(), req.path()), ("POST", PATH));
    assert_eq!(req.header("content-type"), Some("application/json"));
    let v = req.json();
    assert_eq!(v["text"], "[DOWN] a1 on web-3: killed by SIGKILL", "{v}");
    assert_eq!(v["blocks"][0]["type"], "header", "{v}");
    assert_eq!(v["blocks"][0]["text"]["text"], "🔴 DOWN · a1", "{v}");
    assert_eq!(v["blocks"][1]["type"], "section", "{v}");
    assert_eq!(v["blocks"][1]["text"]["type"], "mrkdwn", "{v}");
    assert_eq!(
        v["blocks"][1]["text"]["text"],
        "*Host:* web-3\n*Reason:* killed by SIGKILL\n*Since:* 2025-11-21 04:40:00 +00:00\n*Restarts:* 2",
        "{v}"
    );
    let stats = wait_stats(&notifier, WAIT, "delivered == 1", |s| s.delivered == 1).await;
    assert_eq!(
        (stats.retries, stats.failed_permanently),
        (0, 0),
        "{stats:?}"
    );
    stop(&notifier, &cancel, WAIT).await;
    rx.assert_no_more("one alert, one message");
}

/// Premise: without the `Retry-After`, the retry would come after the channel's 1 s spacing
/// (the backoff here is at most 200 ms), so a retry 2 s or more after the 429 shows the header
/// was honoured. The upper bound leaves 3 s for a loaded 2-core machine.
#[tokio::test]
async fn a_429_is_retried_no_sooner_than_its_retry_after() {
    let rx = slack_receiver(vec![Reply::new(429, "rate_limited")
        .content_type("text/plain")
        .retry_after(Duration::from_secs(2))]);
    let cancel = CancellationToken::new();
    let notifier = start(&rx, &cancel);
    assert!(
        SlackChannel::MIN_INTERVAL < Duration::from_secs(2) && FAST.max < Duration::from_secs(2),
        "premise: spacing and backoff alone would retry sooner than the Retry-After"
    );

    notifier.send(vec![alert("a1")]);
    let limited = rx.next("the attempt answered 429").await;
    let retried = rx.next("the retry after Retry-After: 2").await;
    let gap = retried.received_at - limited.received_at;
    assert!(
        gap >= Duration::from_secs(2),
        "retried {gap:?} after the 429, before its Retry-After of 2 s"
    );
    assert!(
        gap < Duration::from_secs(5),
        "retried {gap:?} after the 429: far later than the 2 s asked"
    );
    assert_eq!(
        retried.json()["text"],
        limited.json()["text"],
        "the same message"
    );
    let stats = wait_stats(&notifier, WAIT, "delivered == 1", |s| s.delivered == 1).await;
    assert_eq!(
        (stats.retries, stats.failed_permanently),
        (1, 0),
        "{stats:?}"
    );
    stop(&notifier, &cancel, WAIT).await;
    rx.assert_no_more("delivered on the second attempt");
}

#[tokio::test]
async fn a_5xx_is_retried() {
    let rx = slack_receiver(vec![
        Reply::new(500, "rollup_error").content_type("text/plain")
    ]);
    let cancel = CancellationToken::new();
    let notifier = start(&rx, &cancel);

    notifier.send(vec![alert("a1")]);
    rx.next("the attempt answered 500").await;
    let retry = rx.next("the retry").await;
    assert_eq!(retry.json()["blocks"][0]["text"]["text"], "🔴 DOWN · a1");
    let stats = wait_stats(&notifier, WAIT, "delivered == 1", |s| s.delivered == 1).await;
    assert_eq!(
        (stats.retries, stats.failed_permanently),
        (1, 0),
        "{stats:?}"
    );
    stop(&notifier, &cancel, WAIT).await;
    rx.assert_no_more("delivered on the second attempt");
}

#[tokio::test]
async fn no_service_is_permanent_counted_and_says_slacks_word_without_the_tokens() {
    let rx = slack_receiver(vec![
        Reply::new(404, "no_service").content_type("text/plain"),
        Reply::new(404, format!("no_service {}", TOKENS.join("/"))).content_type("text/plain"),
    ]);
    let cancel = CancellationToken::new();
    let notifier = start(&rx, &cancel);

    notifier.send(vec![alert("a1")]);
    rx.next("the attempt answered 404").await;
    let stats = wait_stats(&notifier, WAIT, "failed_permanently == 1", |s| {
        s.failed_permanently == 1
    })
    .await;
    assert_eq!(
        (stats.delivered, stats.retries, stats.pending),
        (0, 0, 0),
        "{stats:?}"
    );
    stop(&notifier, &cancel, WAIT).await;
    rx.assert_no_more("a permanent failure is not retried");

    // The error itself, as the notifier logs it: Slack's word, no token (even echoed back).
    let channel = SlackChannel::new(
        SlackConfig::parse(&rx.url(PATH)).expect("a Slack URL"),
        http_client().expect("http client"),
    );
    let err = tokio::time::timeout(WAIT, channel.deliver(&[alert("a2")]))
        .await
        .expect("an answer in time")
        .expect_err("404");
    let DeliveryError::Permanent(text) = &err else {
        panic!("404 no_service must be permanent: {err:?}");
    };
    assert!(text.starts_with("HTTP 404 Not Found: no_service"), "{text}");
    for token in TOKENS {
        assert!(!text.contains(token), "the error shows {token}: {text}");
    }
}
