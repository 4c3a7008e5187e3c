//! The Alertmanager channel against a real Prometheus Alertmanager (Debian's
//! `prometheus-alertmanager`, one per test, on a loopback port; the fixture is
//! `scenarios::alertmanager`, shared with the end-to-end scenarios), and
//! against the scripted HTTP receiver for the answers a healthy Alertmanager does not give.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use receiver::{Receiver, Reply};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use scenarios::alertmanager::Alertmanager;
use scenarios::free_port;
use watcher::alert::{Alert, AlertKind};
use watcher::channels::alertmanager::{AlertmanagerChannel, AlertmanagerSpec};
use watcher::channels::{Channel, DeliveryError};

fn spec(urls: &[String], repeat: &str) -> AlertmanagerSpec {
    AlertmanagerSpec {
        urls: Some(urls.to_vec()),
        repeat: Some(repeat.to_owned()),
        labels: BTreeMap::from([("team".to_owned(), "logs".to_owned())]),
        ..AlertmanagerSpec::default()
    }
}

fn channel(urls: &[String], repeat: &str) -> AlertmanagerChannel {
    spec(urls, repeat)
        .build(None)
        .unwrap_or_else(|p| panic!("a valid spec: {p:?}"))
}

/// Now minus `ago`, to the millisecond (what RFC 3339 in the API carries).
fn ago(ago: Duration) -> SystemTime {
    let ms = (SystemTime::now() - ago)
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    UNIX_EPOCH + Duration::from_millis(ms as u64)
}

fn alert(event: AlertKind, agent: &str, at: SystemTime) -> Alert {
    Alert {
        host: Some("web-3".to_owned()),
        restarts: Some(2),
        crashes: 1,
        ..Alert::new(event, agent, "killed by SIGKILL", at)
    }
}

fn recovered(agent: &str, outage: Duration) -> Alert {
    let mut a = alert(AlertKind::Recovered, agent, ago(Duration::ZERO));
    a.reason = "recovered".to_owned();
    a.outage = Some(outage);
    a
}

fn time(v: &Value) -> SystemTime {
    let s = v.as_str().unwrap_or_else(|| panic!("not a time: {v}"));
    common::time::parse(s).unwrap_or_else(|| panic!("not RFC 3339: {s}"))
}

fn names(alerts: &[Value]) -> Vec<&str> {
    let mut n: Vec<&str> = alerts
        .iter()
        .map(|a| a["labels"]["alertname"].as_str().unwrap_or_default())
        .collect();
    n.sort();
    n
}

fn active(alerts: &[Value]) -> bool {
    alerts.iter().all(|a| a["status"]["state"] == "active")
}

#[tokio::test]
async fn a_down_and_a_failed_appear_with_their_labels_annotations_and_start() {
    let am = Alertmanager::start();
    let ch = channel(&[am.url("")], "1m");
    let down_at = ago(Duration::from_secs(30));
    ch.deliver(&[alert(AlertKind::Down, "web-3-a1", down_at)])
        .await
        .expect("Alertmanager takes a down");

    let alerts = am
        .wait_alerts_async("web-3-a1", "the down, active", |a| {
            a.len() == 1 && active(a)
        })
        .await;
    let a = &alerts[0];
    assert_eq!(
        a["labels"],
        json!({
            "alertname": "FlumeAgentDown",
            "agent": "web-3-a1",
            "host": "web-3",
            "severity": "critical",
            "team": "logs",
        })
    );
    assert_eq!(
        a["annotations"]["summary"],
        "Flume agent web-3-a1 on web-3 is down: killed by SIGKILL"
    );
    assert_eq!(a["annotations"]["reason"], "killed by SIGKILL");
    let description = a["annotations"]["description"].as_str().unwrap();
    assert!(
        description.contains("Restarts by the watchdog: 2."),
        "{description}"
    );
    assert_eq!(
        time(&a["startsAt"]),
        down_at,
        "startsAt is when the outage began"
    );
    // Valid for 4 repeats: Alertmanager keeps it that long without hearing from us.
    let ends = time(&a["endsAt"]);
    assert!(ends > SystemTime::now() + Duration::from_secs(200), "{a}");

    ch.deliver(&[alert(AlertKind::Failed, "web-3-a1", ago(Duration::ZERO))])
        .await
        .expect("Alertmanager takes a failed");
    let alerts = am
        .wait_alerts_async("web-3-a1", "the failed beside the down", |a| {
            a.len() == 2 && active(a)
        })
        .await;
    assert_eq!(names(&alerts), ["FlumeAgentDown", "FlumeAgentFailed"]);
}

#[tokio::test]
async fn recovered_takes_both_alerts_off_the_active_list() {
    let am = Alertmanager::start();
    let ch = channel(&[am.url("")], "1m");
    ch.deliver(&[alert(AlertKind::Down, "a1", ago(Duration::from_secs(60)))])
        .await
        .unwrap();
    ch.deliver(&[alert(AlertKind::Failed, "a1", ago(Duration::from_secs(10)))])
        .await
        .unwrap();
    ch.deliver(&[alert(AlertKind::Down, "a2", ago(Duration::from_secs(60)))])
        .await
        .unwrap();
    am.wait_alerts_async("a1", "both of a1's alerts", |a| a.len() == 2)
        .await;
    let started = Instant::now();
    ch.deliver(&[recovered("a1", Duration::from_secs(60))])
        .await
        .expect("Alertmanager takes the resolve");
    // Gone within seconds, while it was valid for 4 more minutes: resolved, not expired.
    am.wait_alerts_async("a1", "a1 resolved", |a| a.is_empty())
        .await;
    assert!(started.elapsed() < Duration::from_secs(5));
    let others = am.alerts_of_async("a2").await;
    assert_eq!(names(&others), ["FlumeAgentDown"], "a2 still fires");
}

#[tokio::test]
async fn a_recovered_resolves_what_another_channel_instance_posted() {
    // A restarted watcher, or a new leader, has not posted the down itself.
    let am = Alertmanager::start();
    let first = channel(&[am.url("")], "1m");
    first
        .deliver(&[alert(AlertKind::Down, "a1", ago(Duration::from_secs(60)))])
        .await
        .unwrap();
    am.wait_alerts_async("a1", "the down", |a| a.len() == 1)
        .await;
    drop(first);
    let second = channel(&[am.url("")], "1m");
    assert_eq!(second.name(), channel(&[am.url("")], "1m").name());
    second
        .deliver(&[recovered("a1", Duration::from_secs(60))])
        .await
        .unwrap();
    am.wait_alerts_async("a1", "a1 resolved by a fresh channel", |a| a.is_empty())
        .await;
}

#[tokio::test]
async fn resolve_quietly_takes_the_alert_off_the_active_list() {
    let am = Alertmanager::start();
    let ch = channel(&[am.url("")], "1m");
    ch.deliver(&[alert(AlertKind::Down, "a1", ago(Duration::from_secs(5)))])
        .await
        .unwrap();
    ch.deliver(&[alert(AlertKind::Down, "a2", ago(Duration::from_secs(5)))])
        .await
        .unwrap();
    am.wait_alerts_async("a1", "the down", |a| a.len() == 1)
        .await;
    // A planned stop while down: no `recovered` will come.
    ch.resolve_quietly("a1");
    am.wait_alerts_async("a1", "a1 resolved quietly", |a| a.is_empty())
        .await;
    assert_eq!(
        am.alerts_of_async("a2").await.len(),
        1,
        "only a1 was resolved"
    );
}

#[tokio::test]
async fn reposting_keeps_an_alert_alive_that_would_expire_without() {
    // Premise: a firing alert is posted valid for 4 repeats (here 4 × 300 ms); Alertmanager
    // drops it from the active list once that has passed without a re-post. So an alert still
    // active after 3 s, with an `endsAt` that moved forward, was re-posted; and once the channel
    // is dropped (its task stops) the same alert expires within about 1.2 s.
    let am = Alertmanager::start();
    let ch = channel(&[am.url("")], "300ms");
    ch.deliver(&[alert(AlertKind::Down, "a1", ago(Duration::from_secs(1)))])
        .await
        .unwrap();
    let first = am
        .wait_alerts_async("a1", "the down", |a| a.len() == 1)
        .await;
    let (ends0, updated0) = (time(&first[0]["endsAt"]), time(&first[0]["updatedAt"]));
    assert!(
        ends0 <= SystemTime::now() + Duration::from_millis(1300),
        "{first:?}"
    );

    tokio::time::sleep(Duration::from_secs(3)).await;
    let later = am.alerts_of_async("a1").await;
    assert_eq!(later.len(), 1, "re-posts kept it alive: {later:?}");
    assert!(
        time(&later[0]["endsAt"]) > ends0 + Duration::from_secs(1),
        "{later:?}"
    );
    assert!(time(&later[0]["updatedAt"]) > updated0, "{later:?}");
    assert_eq!(time(&later[0]["startsAt"]), time(&first[0]["startsAt"]));

    drop(ch);
    let dropped = Instant::now();
    am.wait_alerts_async("a1", "the alert to expire once nobody re-posts it", |a| {
        a.is_empty()
    })
    .await;
    assert!(dropped.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn a_cluster_with_one_dead_member_still_gets_the_alert() {
    let am = Alertmanager::start();
    let dead = format!("http://127.0.0.1:{}", free_port());
    let ch = channel(&[dead.clone(), am.url("")], "1m");
    ch.deliver(&[alert(AlertKind::Down, "a1", ago(Duration::from_secs(5)))])
        .await
        .expect("one Alertmanager of two took it: delivered");
    am.wait_alerts_async("a1", "the down at the live member", |a| a.len() == 1)
        .await;

    let all_dead = channel(&[dead, format!("http://127.0.0.1:{}", free_port())], "1m");
    let err = all_dead
        .deliver(&[alert(AlertKind::Down, "a1", ago(Duration::ZERO))])
        .await
        .expect_err("no Alertmanager took it");
    assert!(
        err.is_retry(),
        "a connection refused is worth retrying: {err}"
    );
    assert_eq!(
        err.to_string().matches("http://127.0.0.1:").count(),
        2,
        "{err}"
    );
}

#[tokio::test]
async fn a_wrong_path_at_a_real_alertmanager_is_permanent() {
    let am = Alertmanager::start();
    let ch = channel(&[am.url("/no/such/prefix")], "1m");
    let err = ch
        .deliver(&[alert(AlertKind::Down, "a1", ago(Duration::ZERO))])
        .await
        .expect_err("404");
    assert!(
        matches!(&err, DeliveryError::Permanent(m) if m.contains("404")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_400_is_permanent_with_alertmanagers_text_and_no_secret() {
    // Alertmanager's own answer to a start after the end (the channel never sends one).
    let receiver = Receiver::scripted([
        Reply::new(503, ""),
        Reply::new(400, r#""start time must be before end time""#),
    ]);
    let url = format!("http://flume:S3CRETpw@127.0.0.1:{}/am", receiver.port());
    let ch = channel(&[url], "1m");
    let down = alert(AlertKind::Down, "web-3-a1", ago(Duration::from_secs(30)));
    let err = ch
        .deliver(std::slice::from_ref(&down))
        .await
        .expect_err("503");
    assert!(err.is_retry(), "{err}");
    let err = ch.deliver(&[down]).await.expect_err("400");
    let DeliveryError::Permanent(text) = &err else {
        panic!("a 400 is permanent: {err:?}");
    };
    assert!(text.contains("400"), "{text}");
    assert!(
        text.contains("start time must be before end time"),
        "{text}"
    );
    assert!(!text.contains("S3CRETpw"), "{text}");

    let req = &receiver.requests()[1];
    assert_eq!(
        (req.method.as_str(), req.path()),
        ("POST", "/am/api/v2/alerts")
    );
    assert!(
        req.header("authorization")
            .is_some_and(|h| h.starts_with("Basic ")),
        "user info becomes basic auth: {:?}",
        req.headers
    );
    let body = req.json();
    eprintln!(
        "posted body:\n{}",
        serde_json::to_string_pretty(&body).unwrap()
    );
    let items = body.as_array().expect("a JSON array");
    assert_eq!(items.len(), 1);
    for key in ["labels", "annotations", "startsAt", "endsAt"] {
        assert!(items[0].get(key).is_some(), "{key}: {body}");
    }
}

#[tokio::test]
async fn reposts_stop_when_the_token_is_cancelled() {
    let receiver = Receiver::start();
    let cancel = CancellationToken::new();
    let ch = channel(&[receiver.url("")], "100ms").with_cancel(&cancel);
    ch.deliver(&[alert(AlertKind::Down, "a1", ago(Duration::ZERO))])
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let seen = tokio::task::spawn_blocking({
        let r = receiver;
        move || {
            r.wait_for_count(3, deadline, "the delivery and two re-posts");
            r
        }
    })
    .await
    .unwrap();
    cancel.cancel();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let n = seen.count();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(seen.count(), n, "no re-post after cancellation");
    drop(ch);
}
