//! The receiver itself, spoken to in raw HTTP/1.1 so that what it parses is exactly what was sent.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use receiver::{Receiver, Reply, OK_BODY};

/// The request as written (it must ask for `Connection: close`), the reply as read.
fn http(port: u16, raw: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the receiver");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("a read timeout");
    s.write_all(raw.as_bytes()).expect("write the request");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read the reply");
    out
}

fn post(port: u16, path: &str, body: &str) -> String {
    http(
        port,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
}

fn deadline(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}

#[test]
fn records_requests_and_answers_from_the_script_then_the_default() {
    let rx = Receiver::start();
    assert!(rx.url("/hook").starts_with("http://127.0.0.1:"));

    let reply = post(
        rx.port(),
        "/robot/send?access_token=T&sign=a%2Bb%3D&note=a+b",
        r#"{"msgtype":"markdown"}"#,
    );
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    assert!(reply.contains("content-type: application/json"), "{reply}");
    assert!(reply.ends_with(OK_BODY), "{reply}");

    let reqs = rx.wait_for(|r| !r.is_empty(), deadline(2), "one request");
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path(), "/robot/send");
    assert_eq!(r.query("access_token").as_deref(), Some("T"));
    assert_eq!(r.query("sign").as_deref(), Some("a+b="));
    assert_eq!(r.raw_query("sign"), Some("a%2Bb%3D"));
    assert_eq!(r.query("note").as_deref(), Some("a b"));
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert!(
        r.headers.iter().all(|(k, _)| *k == k.to_ascii_lowercase()),
        "{:?}",
        r.headers
    );
    assert_eq!(r.json()["msgtype"], "markdown");
    assert!(r.alerts().is_empty(), "not a webhook body");

    rx.queue(Reply::new(429, r#"{"ok":false}"#).retry_after(Duration::from_secs(7)));
    rx.queue(Reply::ok("ok").content_type("text/plain"));
    rx.set_reply(200, r#"{"errcode":130101,"errmsg":"send too fast"}"#);
    let first = post(rx.port(), "/hook", r#"{"alerts":[{"n":1},{"n":2}]}"#);
    assert!(first.starts_with("HTTP/1.1 429 "), "{first}");
    assert!(first.contains("retry-after: 7\r\n"), "{first}");
    let second = post(rx.port(), "/hook", r#"{"alerts":[{"n":3}]}"#);
    assert!(second.contains("content-type: text/plain\r\n"), "{second}");
    assert!(second.ends_with("\r\n\r\nok"), "{second}");
    assert_eq!(rx.script_left(), 0);
    let third = post(rx.port(), "/hook", r#"{"alerts":[]}"#);
    assert!(
        third.contains("130101"),
        "the default once the script is used up: {third}"
    );
    let alerts = rx.wait_for_alerts(|a| a.len() >= 3, deadline(2), "three alerts");
    let ns: Vec<i64> = alerts.iter().filter_map(|a| a["n"].as_i64()).collect();
    assert_eq!(ns, vec![1, 2, 3]);

    // A chunked body, as a streaming client sends it, arrives whole.
    http(
        rx.port(),
        "POST /chunked HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n",
    );
    let reqs = rx.wait_for_count(5, deadline(2), "the chunked request");
    assert_eq!(reqs[4].json()["a"], 1);
    assert_eq!(rx.since(3).len(), 2);

    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rx.wait_for(
            |r| r.len() > 10,
            Instant::now() + Duration::from_millis(100),
            "eleven requests",
        )
    }))
    .expect_err("the wait runs out");
    let msg = err.downcast_ref::<String>().expect("a formatted panic");
    assert!(
        msg.contains("eleven requests") && msg.contains("/chunked"),
        "says what it waited for and every request seen: {msg}"
    );
}

#[test]
fn a_delayed_reply_is_recorded_on_arrival_and_answered_later() {
    let rx = Receiver::scripted([Reply::ok("late").delay(Duration::from_millis(300))]);
    let port = rx.port();
    let sent = Instant::now();
    let client = std::thread::spawn(move || post(port, "/slow", "{}"));
    let reqs = rx.wait_for_count(1, deadline(5), "the delayed request");
    let answered = client.join().expect("the client thread");
    assert!(answered.ends_with("late"), "{answered}");
    assert!(
        sent.elapsed() >= Duration::from_millis(300),
        "answered after the delay"
    );
    assert!(
        reqs[0].received_at - sent < Duration::from_millis(300),
        "recorded before the delay ran out"
    );
}

#[test]
fn wait_since_sees_each_new_request_once() {
    let rx = Receiver::start();
    post(rx.port(), "/a", r#"{"alerts":[{"agent":"a1"}]}"#);
    let from = rx.count();
    post(
        rx.port(),
        "/b",
        r#"{"alerts":[{"agent":"b1"},{"agent":"b2"}]}"#,
    );
    let mut seen = Vec::new();
    let held = rx.wait_since(from, deadline(5), |fresh| {
        seen.extend(fresh.iter().flat_map(|r| r.agents()));
        seen.len() >= 2
    });
    assert!(held);
    assert_eq!(seen, ["b1", "b2"]);
    let missed = rx.wait_since(
        rx.count(),
        Instant::now() + Duration::from_millis(50),
        |f| !f.is_empty(),
    );
    assert!(!missed, "nothing new arrived");
}

#[tokio::test]
async fn async_tests_take_requests_one_by_one_and_hold_replies() {
    let (held, release) = Reply::new(200, "held").held();
    let rx = Receiver::scripted([held]);
    let port = rx.port();
    let first =
        tokio::task::spawn_blocking(move || post(port, "/one", r#"{"alerts":[{"agent":"x"}]}"#));
    let req = rx.next("the held request").await;
    assert_eq!((req.path(), req.agents()), ("/one", vec!["x".to_owned()]));
    assert!(!first.is_finished(), "its reply is held");
    assert!(release.release(), "the reply was still held");
    let reply = first.await.expect("the client task");
    assert!(reply.ends_with("held"), "{reply}");
    rx.assert_no_more("one request so far");

    let second = tokio::task::spawn_blocking(move || post(port, "/two", "{}"));
    second.await.expect("the client task");
    let arrived = rx.take_arrived();
    assert_eq!(arrived.len(), 1);
    assert_eq!(arrived[0].path(), "/two");
    assert_eq!(rx.taken(), 2);
    rx.assert_no_more("two requests");
}
