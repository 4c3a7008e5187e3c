//! Alert channels and the notifier against a real HTTP receiver on 127.0.0.1.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use receiver::{Receiver, Reply, Request};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use watcher::alert::{Alert, NoticeKey};
use watcher::channels::{
    dingtalk, http_client, parse_dingtalk, parse_webhook, Channel, ChannelSpec, Configured,
    DeliveryError, DingTalkChannel, WebhookChannel,
};
use watcher::notify::{Notifier, RetryPolicy, SHUTDOWN_GRACE};

mod support;
use support::{alert, ctx, stop, wait_stats, FAST};

const WAIT: Duration = Duration::from_secs(10);
fn client() -> reqwest::Client {
    http_client().expect("http client")
}

fn webhook(receiver: &Receiver, path: &str) -> Configured {
    Configured::unnamed(parse_webhook(&receiver.url(path)).unwrap())
}

/// The first 8 hex digits of the SHA-256 of `text`, computed by Python's standard library: the
/// documented channel-name fingerprint, from an implementation of its own.
fn python_sha256_8(text: &str) -> String {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, hashlib; print(hashlib.sha256(sys.argv[1].encode()).hexdigest()[:8])",
            text,
        ])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Gaps between the arrivals of consecutive requests.
fn gaps(requests: &[Request]) -> Vec<Duration> {
    requests
        .windows(2)
        .map(|w| w[1].received_at - w[0].received_at)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Webhook

/// A webhook with a body template from the file posts the operator's body, with its content
/// type, made from the same alerts.
#[tokio::test]
async fn a_webhook_template_makes_the_body() {
    let rx = Receiver::start();
    let table: toml::Table = toml::from_str(&format!(
        "url = '{}'\ncontent_type = 'text/plain; charset=utf-8'\n\
         template = '{{% for a in alerts %}}{{{{ a.event|upper }}}} {{{{ a.agent }}}} on {{{{ a.host }}}}: {{{{ a.reason }}}}{{% endfor %}}'",
        rx.url("/sms")
    ))
    .expect("toml");
    let spec = (watcher::channels::kinds::find("webhook")
        .expect("kind")
        .read)(table)
    .expect("valid");
    let cancel = CancellationToken::new();
    let notifier = Notifier::start(
        &[Configured {
            label: "sms".into(),
            spec,
        }],
        &ctx(Default::default()),
        FAST,
        cancel.clone(),
    );
    notifier.send(vec![alert("a1")]);
    let req = rx.next("the templated POST").await;
    assert_eq!(
        req.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(
        String::from_utf8_lossy(&req.body),
        "DOWN a1 on web-3: killed by SIGKILL"
    );
    wait_stats(&notifier, WAIT, "delivered == 1", |s| s.delivered == 1).await;
    stop(&notifier, &cancel, WAIT).await;
}

#[tokio::test]
async fn webhook_posts_alerts_as_json() {
    let rx = Receiver::scripted([Reply::new(204, "")]);
    let cancel = CancellationToken::new();
    let notifier = Notifier::start(
        &[webhook(&rx, "/hook")],
        &ctx(Default::default()),
        FAST,
        cancel.clone(),
    );
    let url = rx.url("/hook");
    assert_eq!(
        notifier.stats()[0].channel,
        format!("webhook {url} #{}", python_sha256_8(&url))
    );

    notifier.send(vec![alert("a1")]);
    let req = rx.next("the webhook POST").await;
    assert_eq!(
        (req.method.as_str(), req.path_and_query.as_str()),
        ("POST", "/hook")
    );
    assert_eq!(
        req.header("content-type"),
        Some("application/json"),
        "headers: {:?}",
        req.headers
    );
    let v = req.json();
    let a = &v["alerts"][0];
    assert_eq!(v["alerts"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(a["event"], "down", "{v}");
    assert_eq!(a["agent"], "a1", "{v}");
    assert_eq!(a["host"], "web-3", "{v}");
    assert_eq!(a["reason"], "killed by SIGKILL", "{v}");
    assert_eq!(a["at"], "2025-11-21T04:40:00.123Z", "{v}");
    assert_eq!(a["restarts"], 2, "{v}");
    assert_eq!(
        a["id"], "a1/down/2025-11-21T04:40:00.123Z",
        "the notice id receivers may drop repeats by: {v}"
    );

    let stats = wait_stats(&notifier, WAIT, "delivered == 1", |s| s.delivered == 1).await;
    assert_eq!(
        (stats.pending, stats.retries, stats.failed_permanently),
        (0, 0, 0),
        "{stats:?}"
    );
    stop(&notifier, &cancel, WAIT).await;
    rx.assert_no_more("one alert, one request");
}

#[tokio::test]
async fn webhook_5xx_is_retried_until_the_receiver_recovers() {
    let rx = Receiver::scripted([
        Reply::new(500, "boom"),
        Reply::new(503, "busy"),
        Reply::new(200, ""),
    ]);
    let cancel = CancellationToken::new();
    let notifier = Notifier::start(
        &[webhook(&rx, "/hook")],
        &ctx(Default::default()),
        FAST,
        cancel.clone(),
    );

    notifier.send(vec![alert("a1")]);
    for what in [
        "first attempt (500)",
        "second attempt (503)",
        "third attempt (200)",
    ] {
        let req = rx.next(what).await;
        assert_eq!(
            req.agents(),
            ["a1"],
            "every attempt carries the same alert ({what})"
        );
    }
    let stats = wait_stats(&notifier, WAIT, "delivered == 1", |s| s.delivered == 1).await;
    assert_eq!(
        (stats.retries, stats.failed_permanently, stats.pending),
        (2, 0, 0),
        "{stats:?}"
    );
    stop(&notifier, &cancel, WAIT).await;
    rx.assert_no_more("delivered on the third attempt");
}

#[tokio::test]
async fn webhook_404_is_permanent_counted_and_not_retried() {
    let rx = Receiver::scripted([Reply::new(404, "no such hook"), Reply::new(200, "")]);
    let cancel = CancellationToken::new();
    let notifier = Notifier::start(
        &[webhook(&rx, "/wrong")],
        &ctx(Default::default()),
        FAST,
        cancel.clone(),
    );

    notifier.send(vec![alert("a1")]);
    assert_eq!(rx.next("the attempt answered 404").await.agents(), ["a1"]);
    let stats = wait_stats(&notifier, WAIT, "failed_permanently == 1", |s| {
        s.failed_permanently == 1
    })
    .await;
    assert_eq!(
        (stats.delivered, stats.retries, stats.pending),
        (0, 0, 0),
        "{stats:?}"
    );

    // The next request carries the next alert, not a retry of the dropped one.
    notifier.send(vec![alert("a2")]);
    assert_eq!(
        rx.next("the request after the permanent failure")
            .await
            .agents(),
        ["a2"],
        "a1 must not be retried"
    );
    wait_stats(&notifier, WAIT, "delivered == 1", |s| s.delivered == 1).await;
    stop(&notifier, &cancel, WAIT).await;
    rx.assert_no_more("404 is not retried");
}

#[tokio::test]
async fn alerts_arriving_during_a_delivery_go_together_in_the_next_message() {
    let (held, release) = Reply::new(200, "").held();
    let rx = Receiver::scripted([held]);
    let cancel = CancellationToken::new();
    let notifier = Notifier::start(
        &[webhook(&rx, "/hook")],
        &ctx(Default::default()),
        FAST,
        cancel.clone(),
    );

    notifier.send(vec![alert("a1")]);
    let first = rx.next("the first delivery (held by the receiver)").await;
    assert_eq!(
        first.agents(),
        ["a1"],
        "the first alert goes out alone, at once"
    );

    notifier.send(vec![alert("a2")]);
    notifier.send(vec![alert("a3"), alert("a4")]);
    assert_eq!(notifier.stats()[0].pending, 4, "{:?}", notifier.stats());
    assert!(
        release.release(),
        "the receiver still holds the first reply"
    );

    let second = rx.next("the second delivery").await;
    assert_eq!(
        second.agents(),
        ["a2", "a3", "a4"],
        "the three queued alerts go together, in order"
    );
    let stats = wait_stats(&notifier, WAIT, "delivered == 4", |s| s.delivered == 4).await;
    assert_eq!(stats.pending, 0, "{stats:?}");
    stop(&notifier, &cancel, WAIT).await;
    rx.assert_no_more("exactly two requests for four alerts");
    assert_eq!(rx.taken(), 2);
}

#[tokio::test]
async fn batches_bigger_than_max_batch_are_split_in_order() {
    let rx = Receiver::start();
    let cancel = CancellationToken::new();
    let notifier = Notifier::start(
        &[webhook(&rx, "/hook")],
        &ctx(Default::default()),
        FAST,
        cancel.clone(),
    );
    let many: Vec<Alert> = (0..WebhookChannel::MAX_BATCH + 3)
        .map(|i| alert(&format!("a{i}")))
        .collect();
    notifier.send(many);
    let first = rx.next("the first chunk").await.agents();
    let second = rx.next("the second chunk").await.agents();
    assert_eq!((first.len(), second.len()), (WebhookChannel::MAX_BATCH, 3));
    assert_eq!((first[0].as_str(), second[2].as_str()), ("a0", "a502"));
    wait_stats(&notifier, WAIT, "all delivered", |s| s.delivered == 503).await;
    stop(&notifier, &cancel, WAIT).await;
}

#[tokio::test]
async fn cancellation_makes_one_last_attempt_then_stops() {
    let rx = Receiver::scripted([Reply::new(500, "down for maintenance")]);
    let cancel = CancellationToken::new();
    let slow = RetryPolicy {
        initial: Duration::from_secs(600),
        max: Duration::from_secs(600),
    };
    let notifier = Notifier::start(
        &[webhook(&rx, "/hook")],
        &ctx(Default::default()),
        slow,
        cancel.clone(),
    );

    notifier.send(vec![alert("a1")]);
    rx.next("the first attempt (500)").await;
    wait_stats(
        &notifier,
        WAIT,
        "retries == 1 (now in a 10-minute backoff)",
        |s| s.retries == 1,
    )
    .await;
    notifier.send(vec![alert("a2")]);
    cancel.cancel();
    let last = rx.next("the last attempt after cancellation").await;
    assert_eq!(last.agents(), ["a1"]);
    let queued = rx
        .next("the last attempt for the alert queued meanwhile")
        .await;
    assert_eq!(queued.agents(), ["a2"]);
    tokio::time::timeout(Duration::from_secs(5), notifier.wait_stopped())
        .await
        .expect("tasks stop within the grace period after cancellation");
    let stats = notifier.stats().remove(0);
    assert_eq!(
        (stats.delivered, stats.pending, stats.abandoned),
        (2, 0, 0),
        "{stats:?}"
    );
}

/// A webhook that declares a spacing between messages, as a rate-limited receiver does, and
/// carries one alert per message: the notifier's pacing at a pace a test can afford.
struct Spaced {
    inner: WebhookChannel,
    spacing: Duration,
}

impl Channel for Spaced {
    fn name(&self) -> String {
        self.inner.name()
    }

    fn max_batch(&self) -> usize {
        1
    }

    fn min_interval(&self) -> Duration {
        self.spacing
    }

    async fn deliver(&self, batch: &[Alert]) -> Result<(), DeliveryError> {
        self.inner.deliver(batch).await
    }
}

#[tokio::test]
async fn last_attempts_at_shutdown_keep_the_channel_spacing() {
    const SPACING: Duration = Duration::from_millis(400);
    let rx = Receiver::scripted([Reply::new(500, "busy")]);
    let cancel = CancellationToken::new();
    let slow = RetryPolicy {
        initial: Duration::from_secs(600),
        max: Duration::from_secs(600),
    };
    let mut notifier = Notifier::new(slow, cancel.clone());
    let inner = WebhookChannel::new(parse_webhook(&rx.url("/hook")).unwrap(), client());
    assert!(notifier.add_channel(Spaced {
        inner,
        spacing: SPACING,
    }));

    notifier.send(vec![alert("a0")]);
    let first = rx.next("the first attempt (500)").await;
    wait_stats(
        &notifier,
        WAIT,
        "retries == 1 (now in a 10-minute backoff)",
        |s| s.retries == 1,
    )
    .await;
    // Ten more, one per message: ten spacings do not fit in the grace period.
    let queued: Vec<Alert> = (1..=10).map(|i| alert(&format!("a{i}"))).collect();
    notifier.send(queued);
    cancel.cancel();
    tokio::time::timeout(WAIT, notifier.wait_stopped())
        .await
        .expect("tasks stop after cancel");

    let mut requests = vec![first];
    requests.extend(rx.take_arrived());
    let agents: Vec<String> = requests.iter().flat_map(Request::agents).collect();
    let expected: Vec<String> = std::iter::once("a0".to_owned())
        .chain((0..=10).map(|i| format!("a{i}")))
        .take(requests.len())
        .collect();
    assert_eq!(
        agents, expected,
        "the refused alert again, then the queued ones in order"
    );
    assert!(
        requests.len() >= 2,
        "the last attempt for a0 fits in the grace period: {agents:?}"
    );
    for (i, gap) in gaps(&requests).into_iter().enumerate() {
        assert!(
            gap >= SPACING,
            "attempts {i} and {} only {gap:?} apart (spacing {SPACING:?}); arrivals: {:?}",
            i + 1,
            gaps(&requests)
        );
    }
    let stats = notifier.stats().remove(0);
    assert_eq!(
        (stats.delivered + stats.abandoned, stats.pending),
        (11, 0),
        "every alert delivered or given up on: {stats:?}"
    );
    assert!(
        stats.delivered >= 1 && stats.abandoned >= 1,
        "some last attempts fit in the {SHUTDOWN_GRACE:?} grace period, not all: {stats:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// DingTalk

const TOKEN: &str = "tok3n0123456789abcdef";
const SECRET: &str = "SEC0123456789abcdef+/=";

fn dingtalk_spec(rx: &Receiver, secret: bool) -> Configured {
    let mut flag = rx.url(&format!("/robot/send?access_token={TOKEN}"));
    if secret {
        flag.push_str(&format!(",secret={SECRET}"));
    }
    Configured::unnamed(parse_dingtalk(&flag).unwrap())
}

/// The expected signature, computed by Python's standard library: (base64, url-encoded).
fn python_sign(secret: &str, timestamp: &str) -> (String, String) {
    let program = "import sys, hmac, hashlib, base64, urllib.parse\n\
                   ts, secret = sys.argv[1], sys.argv[2]\n\
                   mac = hmac.new(secret.encode(), f'{ts}\\n{secret}'.encode(), digestmod=hashlib.sha256).digest()\n\
                   b = base64.b64encode(mac).decode()\n\
                   print(b)\n\
                   print(urllib.parse.quote_plus(b))";
    let out = std::process::Command::new("python3")
        .args(["-c", program, timestamp, secret])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    (
        lines.next().unwrap().to_owned(),
        lines.next().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn dingtalk_signs_requests_like_the_reference_implementation() {
    let rx = Receiver::start();
    let cancel = CancellationToken::new();
    let notifier = Notifier::start(
        &[dingtalk_spec(&rx, true)],
        &ctx(Default::default()),
        FAST,
        cancel.clone(),
    );
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;

    notifier.send(vec![alert("a1")]);
    let req = rx.next("the signed DingTalk request").await;
    assert!(
        req.path_and_query.starts_with("/robot/send?"),
        "{}",
        req.path_and_query
    );
    assert_eq!(
        req.query("access_token").as_deref(),
        Some(TOKEN),
        "{}",
        req.path_and_query
    );
    let timestamp = req
        .query("timestamp")
        .unwrap_or_else(|| panic!("no timestamp in {}", req.path_and_query));
    let ts: u64 = timestamp
        .parse()
        .unwrap_or_else(|_| panic!("timestamp {timestamp:?} is not milliseconds"));
    let after = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(
        (before..=after).contains(&ts),
        "timestamp {ts} not within [{before}, {after}]"
    );

    let (expected_b64, expected_encoded) = python_sign(SECRET, &timestamp);
    assert_eq!(
        req.query("sign").as_deref(),
        Some(expected_b64.as_str()),
        "decoded sign in {}",
        req.path_and_query
    );
    assert_eq!(
        req.raw_query("sign"),
        Some(expected_encoded.as_str()),
        "encoded sign in {}",
        req.path_and_query
    );
    assert_eq!(dingtalk::sign(SECRET, ts), expected_b64);

    assert_eq!(req.header("content-type"), Some("application/json"));
    let v = req.json();
    assert_eq!(v["msgtype"], "markdown", "{v}");
    assert_eq!(v["markdown"]["title"], "Flume agent a1 down", "{v}");
    let text = v["markdown"]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no markdown text in {v}"));
    assert!(
        text.contains("a1") && text.contains("**DOWN**") && text.contains("web-3"),
        "{text}"
    );
    assert!(text.contains("killed by SIGKILL"), "{text}");
    assert_eq!(v["at"]["isAtAll"], false, "{v}");
    assert_eq!(v["at"]["atMobiles"], serde_json::json!([]), "{v}");

    wait_stats(&notifier, WAIT, "delivered == 1", |s| s.delivered == 1).await;
    stop(&notifier, &cancel, WAIT).await;
}

#[tokio::test]
async fn dingtalk_security_failure_is_permanent() {
    let rx = Receiver::scripted([Reply::new(
        200,
        r#"{"errcode":310000,"errmsg":"sign not match"}"#,
    )]);
    let cancel = CancellationToken::new();
    let notifier = Notifier::start(
        &[dingtalk_spec(&rx, true)],
        &ctx(Default::default()),
        FAST,
        cancel.clone(),
    );

    notifier.send(vec![alert("a1")]);
    rx.next("the attempt answered 310000").await;
    let stats = wait_stats(&notifier, WAIT, "failed_permanently == 1", |s| {
        s.failed_permanently == 1
    })
    .await;
    assert_eq!((stats.delivered, stats.retries), (0, 0), "{stats:?}");
    stop(&notifier, &cancel, WAIT).await;
    rx.assert_no_more("310000 is not retried");
}

#[tokio::test]
async fn dingtalk_too_fast_is_retried_until_ok() {
    let rx = Receiver::scripted([
        Reply::new(200, r#"{"errcode":130101,"errmsg":"send too fast"}"#),
        Reply::new(200, "<html>gateway hiccup</html>"),
        Reply::new(200, r#"{"errcode":0,"errmsg":"ok"}"#),
    ]);
    let cancel = CancellationToken::new();
    let notifier = Notifier::start(
        &[dingtalk_spec(&rx, false)],
        &ctx(Default::default()),
        FAST,
        cancel.clone(),
    );

    notifier.send(vec![alert("a1"), alert("a2")]);
    for what in [
        "attempt answered 130101",
        "attempt answered with HTML",
        "attempt answered errcode 0",
    ] {
        let req = rx.next(what).await;
        assert_eq!(
            req.query("sign"),
            None,
            "unsigned robot: {}",
            req.path_and_query
        );
        assert_eq!(req.json()["markdown"]["title"], "2 Flume agent alerts");
    }
    let stats = wait_stats(&notifier, WAIT, "delivered == 2", |s| s.delivered == 2).await;
    assert_eq!(
        (stats.retries, stats.failed_permanently),
        (2, 0),
        "{stats:?}"
    );
    assert_eq!(rx.script_left(), 0);
    stop(&notifier, &cancel, WAIT).await;
    rx.assert_no_more("delivered on the third attempt");
}

const TOO_FAST: &str = r#"{"errcode":130101,"errmsg":"send too fast"}"#;

#[tokio::test]
async fn dingtalk_retries_of_too_fast_keep_the_3s_spacing() {
    let rx = Receiver::scripted([Reply::new(200, TOO_FAST), Reply::new(200, TOO_FAST)]);
    let cancel = CancellationToken::new();
    // A 50 ms backoff: without the spacing the retries would follow at once.
    let notifier = Notifier::start(
        &[dingtalk_spec(&rx, false)],
        &ctx(Default::default()),
        FAST,
        cancel.clone(),
    );

    notifier.send(vec![alert("a1")]);
    let mut requests = Vec::new();
    for what in [
        "attempt answered 130101",
        "retry answered 130101",
        "retry answered errcode 0",
    ] {
        requests.push(rx.next(what).await);
    }
    let stats = wait_stats(&notifier, WAIT, "delivered == 1", |s| s.delivered == 1).await;
    assert_eq!(stats.retries, 2, "{stats:?}");
    let spacing = DingTalkChannel::MIN_INTERVAL;
    let gaps = gaps(&requests);
    for gap in &gaps {
        assert!(
            *gap >= spacing,
            "attempts closer than {spacing:?}: {gaps:?}"
        );
        assert!(
            *gap < 2 * spacing,
            "a retry waits for the spacing, not for much more: {gaps:?}"
        );
    }
    stop(&notifier, &cancel, WAIT).await;
    rx.assert_no_more("delivered on the third attempt");
}

#[tokio::test]
async fn dingtalk_makes_no_last_attempt_sooner_than_3s_after_the_one_before() {
    let rx = Receiver::scripted([Reply::new(200, TOO_FAST)]);
    let cancel = CancellationToken::new();
    let slow = RetryPolicy {
        initial: Duration::from_secs(600),
        max: Duration::from_secs(600),
    };
    let notifier = Notifier::start(
        &[dingtalk_spec(&rx, false)],
        &ctx(Default::default()),
        slow,
        cancel.clone(),
    );

    notifier.send(vec![alert("a1")]);
    rx.next("the attempt answered 130101").await;
    wait_stats(&notifier, WAIT, "retries == 1", |s| s.retries == 1).await;
    notifier.send(vec![alert("a2")]);
    // Cancelled at once (well within 1 s of the refusal): the 3 s spacing ends after the 2 s
    // grace period, so no last attempt may be made.
    cancel.cancel();
    let stopping = Instant::now();
    tokio::time::timeout(WAIT, notifier.wait_stopped())
        .await
        .expect("tasks stop after cancel");
    assert!(
        stopping.elapsed() < SHUTDOWN_GRACE,
        "nothing to wait for: stopped after {:?}",
        stopping.elapsed()
    );
    let stats = notifier.stats().remove(0);
    assert_eq!(
        (stats.delivered, stats.abandoned, stats.pending),
        (0, 2, 0),
        "{stats:?}"
    );
    rx.assert_no_more("no attempt within 3 s of the refused one");
}

// ---------------------------------------------------------------------------------------------
// Secrets

#[tokio::test]
async fn delivery_errors_do_not_contain_the_token_or_secret() {
    // A port nobody listens on.
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let flag = format!("http://{addr}/robot/send?access_token={TOKEN},secret={SECRET}");
    let channel = DingTalkChannel::new(parse_dingtalk(&flag).unwrap(), client());
    let err = tokio::time::timeout(WAIT, channel.deliver(&[alert("a1")]))
        .await
        .expect("refused at once");
    match &err {
        Err(DeliveryError::Retry(text)) => {
            assert!(
                !text.contains(TOKEN) && !text.contains("SEC0123"),
                "error leaks a secret: {text}"
            );
            assert!(!text.is_empty());
        }
        other => panic!("connection refused should be Retry, got {other:?}"),
    }

    // A receiver that echoes the token back in its error message.
    let echo = format!(r#"{{"errcode":310000,"errmsg":"bad token {TOKEN}"}}"#);
    let rx = Receiver::scripted([
        Reply::new(200, &echo),
        Reply::new(403, format!("forbidden {TOKEN}")),
    ]);
    let channel = DingTalkChannel::new(
        parse_dingtalk(&rx.url(&format!("/r?access_token={TOKEN}"))).unwrap(),
        client(),
    );
    for expected in ["errcode 310000", "HTTP 403"] {
        let result = tokio::time::timeout(WAIT, channel.deliver(&[alert("a1")]))
            .await
            .expect("reply in time");
        rx.next(expected).await;
        match result {
            Err(DeliveryError::Permanent(text)) => {
                assert!(text.contains(expected), "{text}");
                assert!(!text.contains(TOKEN), "error leaks the token: {text}");
            }
            other => panic!("expected a permanent error with {expected}, got {other:?}"),
        }
    }
}

#[test]
fn names_and_debug_output_hide_secrets() {
    let flag = format!("https://oapi.dingtalk.com/robot/send?access_token={TOKEN},secret={SECRET}");
    let config = parse_dingtalk(&flag).unwrap();
    let channel = DingTalkChannel::new(config.clone(), reqwest::Client::new());
    let spec: &dyn ChannelSpec = &config;
    for shown in [
        format!("{config:?}"),
        config.to_string(),
        channel.name(),
        format!("{spec:?}"),
        spec.describe(),
    ] {
        assert!(
            !shown.contains(TOKEN) && !shown.contains("SEC0123"),
            "leaks a secret: {shown}"
        );
    }
    assert_eq!(
        channel.name(),
        format!(
            "dingtalk https://oapi.dingtalk.com/robot/send?access_token=*** (signed) #{}",
            python_sha256_8(&flag)
        )
    );
    assert_eq!(spec.key(), channel.name());
    // Another secret for the same robot is another configuration: another name.
    let resigned = parse_dingtalk(&format!(
        "https://oapi.dingtalk.com/robot/send?access_token={TOKEN},secret=SEC9876543210fedcba"
    ))
    .unwrap();
    let resigned = DingTalkChannel::new(resigned, reqwest::Client::new()).name();
    assert_ne!(resigned, channel.name());
    assert!(
        !resigned.contains(TOKEN) && !resigned.contains("SEC98"),
        "{resigned}"
    );
    assert_eq!(
        config.to_string(),
        "https://oapi.dingtalk.com/robot/send?access_token=***,secret=***"
    );
}

#[tokio::test]
async fn two_robots_at_one_address_are_two_channels_with_their_own_receipts() {
    const OTHER_TOKEN: &str = "0th3r0123456789abcdef";
    let rx = Receiver::start();
    let robot_url = |token: &str| rx.url(&format!("/robot/send?access_token={token}"));
    let robot = |token: &str| Configured::unnamed(parse_dingtalk(&robot_url(token)).unwrap());
    let cancel = CancellationToken::new();
    let notifier = Notifier::start(
        &[robot(TOKEN), robot(OTHER_TOKEN)],
        &ctx(Default::default()),
        FAST,
        cancel.clone(),
    );
    let names = notifier.channel_names();
    assert_eq!(names.len(), 2, "{names:?}");
    for (name, token) in names.iter().zip([TOKEN, OTHER_TOKEN]) {
        assert_eq!(
            name,
            &format!(
                "dingtalk {} #{}",
                robot_url("***"),
                python_sha256_8(&robot_url(token))
            )
        );
        assert!(!name.contains(token), "{name}");
    }
    assert_ne!(names[0], names[1]);

    let mut receipts = notifier.take_receipts().expect("receipts not taken yet");
    let key = NoticeKey {
        agent: "a1".to_owned(),
        seq: 0,
    };
    let mut recorded = alert("a1");
    recorded.key = Some(key.clone());
    notifier.send(vec![recorded]);
    let mut tokens = vec![
        rx.next("one robot's message").await.query("access_token"),
        rx.next("the other robot's message")
            .await
            .query("access_token"),
    ];
    tokens.sort();
    assert_eq!(
        tokens,
        [Some(OTHER_TOKEN.to_owned()), Some(TOKEN.to_owned())],
        "each robot gets the alert"
    );
    // Each delivery is receipted under its own robot's name: neither counts for the other.
    let mut receipted = Vec::new();
    for _ in 0..2 {
        let receipt = tokio::time::timeout(WAIT, receipts.recv())
            .await
            .expect("a receipt in time")
            .expect("the notifier is running");
        assert_eq!(receipt.keys, vec![key.clone()]);
        receipted.push(receipt.channel);
    }
    receipted.sort();
    let mut expected = names.clone();
    expected.sort();
    assert_eq!(receipted, expected);
    stop(&notifier, &cancel, WAIT).await;
    rx.assert_no_more("one message per robot");
}

#[tokio::test]
async fn the_same_webhook_given_twice_is_one_channel() {
    let rx = Receiver::start();
    let cancel = CancellationToken::new();
    let notifier = Notifier::start(
        &[webhook(&rx, "/hook"), webhook(&rx, "/hook")],
        &ctx(Default::default()),
        FAST,
        cancel.clone(),
    );
    assert_eq!(notifier.channel_names().len(), 1);
    notifier.send(vec![alert("a1")]);
    assert_eq!(rx.next("the alert").await.agents(), ["a1"]);
    wait_stats(&notifier, WAIT, "delivered == 1", |s| s.delivered == 1).await;
    stop(&notifier, &cancel, WAIT).await;
    rx.assert_no_more("the receiver does not get every alert twice");
}

// ---------------------------------------------------------------------------------------------
// Flag parsing

#[test]
fn parse_webhook_accepts_http_urls_only() {
    assert_eq!(
        parse_webhook("http://127.0.0.1:8080/x")
            .unwrap()
            .url()
            .as_str(),
        "http://127.0.0.1:8080/x"
    );
    assert!(parse_webhook("https://alerts.example.com/flume?team=ops").is_ok());
    for bad in [
        "",
        "localhost:8080",
        "ftp://example.com/x",
        "http://",
        "://x",
    ] {
        let err = parse_webhook(bad).expect_err(bad);
        assert!(err.contains("webhook URL"), "error for {bad:?}: {err}");
    }
}

#[test]
fn parse_dingtalk_flag_form() {
    let plain = parse_dingtalk(&format!(
        "https://oapi.dingtalk.com/robot/send?access_token={TOKEN}"
    ))
    .unwrap();
    assert!(!plain.is_signed());
    let signed = parse_dingtalk(&format!(
        "https://oapi.dingtalk.com/robot/send?access_token={TOKEN},secret={SECRET}"
    ))
    .unwrap();
    assert!(signed.is_signed());
    let err = parse_dingtalk(&format!(
        "https://oapi.dingtalk.com/robot/send?access_token={TOKEN},at=123,secret=S"
    ))
    .unwrap_err();
    assert!(err.contains("`at`"), "the unknown option is named: {err}");
    let err = parse_dingtalk("https://oapi.dingtalk.com/robot/send").unwrap_err();
    assert!(err.contains("access_token"), "{err}");
    let err = parse_dingtalk("oapi.dingtalk.com/robot/send?access_token=x").unwrap_err();
    assert!(err.contains("not a valid URL"), "{err}");
}
