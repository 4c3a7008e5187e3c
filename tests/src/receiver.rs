//! A real HTTP endpoint on 127.0.0.1 that records what it receives (alert webhooks, DingTalk).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The default reply: a success for the generic webhook and for DingTalk alike.
pub const OK_BODY: &str = r#"{"errcode":0,"errmsg":"ok"}"#;

/// One recorded HTTP request.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// E.g. `/robot/send?access_token=T&timestamp=…`.
    pub path_and_query: String,
    /// Header names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub received_at: Instant,
}

impl Request {
    /// The path without the query.
    pub fn path(&self) -> &str {
        self.path_and_query.split('?').next().unwrap_or("")
    }

    /// A query parameter, percent-decoded (`+` is a space).
    pub fn query(&self, name: &str) -> Option<String> {
        let q = self.path_and_query.split_once('?')?.1;
        q.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k) == name).then(|| percent_decode(v))
        })
    }

    /// A header by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics (showing the body) if it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "request {} {} body is not JSON ({e}): {}",
                self.method,
                self.path_and_query,
                self.body_str()
            )
        })
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[derive(Clone)]
struct Reply {
    status: u16,
    body: String,
}

struct State {
    requests: Vec<Request>,
    default_reply: Reply,
    queued: VecDeque<Reply>,
    delay: Duration,
}

struct Shared {
    state: Mutex<State>,
    cond: Condvar,
    stop: AtomicBool,
}

/// An HTTP/1.1 server on 127.0.0.1:<ephemeral> in a background thread. Every request is answered
/// (after the configured delay) with the next queued reply, else the default one
/// (200 `{"errcode":0,"errmsg":"ok"}`), and `Connection: close`.
pub struct Receiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    pub fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 for the receiver");
        let addr = listener.local_addr().expect("receiver local_addr");
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                requests: Vec::new(),
                default_reply: Reply {
                    status: 200,
                    body: OK_BODY.into(),
                },
                queued: VecDeque::new(),
                delay: Duration::ZERO,
            }),
            cond: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let sh = shared.clone();
        let thread = std::thread::Builder::new()
            .name("http-receiver".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if sh.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let sh = sh.clone();
                    let _ = std::thread::Builder::new()
                        .name("http-receiver-conn".into())
                        .spawn(move || handle(conn, &sh));
                }
            })
            .expect("cannot start the receiver thread");
        Receiver {
            addr,
            shared,
            thread: Some(thread),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:PORT{path}`; `path` starts with `/` and may carry a query.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The reply to every request from now on (after any queued replies).
    pub fn set_reply(&self, status: u16, body: &str) {
        self.shared.state.lock().unwrap().default_reply = Reply {
            status,
            body: body.into(),
        };
    }

    /// Like [`Receiver::set_reply`], and returns how many requests had arrived before the switch:
    /// `requests()[..n]` were answered with the earlier reply, the later ones with this one (a
    /// request is recorded and its reply chosen under the same lock as the switch).
    pub fn switch_reply(&self, status: u16, body: &str) -> usize {
        let mut st = self.shared.state.lock().unwrap();
        st.default_reply = Reply {
            status,
            body: body.into(),
        };
        st.requests.len()
    }

    /// A reply for one upcoming request (queued replies are used first, in order).
    pub fn queue_reply(&self, status: u16, body: &str) {
        self.shared.state.lock().unwrap().queued.push_back(Reply {
            status,
            body: body.into(),
        });
    }

    /// Wait this long after reading a request before replying (to provoke client timeouts).
    pub fn set_delay(&self, delay: Duration) {
        self.shared.state.lock().unwrap().delay = delay;
    }

    /// All requests so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.state.lock().unwrap().requests.clone()
    }

    /// Waits until `cond(&requests)` holds and returns the requests; panics at `deadline` showing
    /// `what` and every request seen.
    pub fn wait_for(
        &self,
        mut cond: impl FnMut(&[Request]) -> bool,
        deadline: Instant,
        what: &str,
    ) -> Vec<Request> {
        let started = Instant::now();
        let mut st = self.shared.state.lock().unwrap();
        loop {
            if cond(&st.requests) {
                return st.requests.clone();
            }
            let now = Instant::now();
            if now >= deadline {
                let seen = describe_requests(&st.requests);
                drop(st);
                panic!(
                    "timed out after {:.1?} waiting for {what} at the HTTP receiver {}\n--- requests seen ---\n{seen}",
                    now - started,
                    self.addr
                );
            }
            st = self.shared.cond.wait_timeout(st, deadline - now).unwrap().0;
        }
    }

    /// Waits for at least `n` requests.
    pub fn wait_for_count(&self, n: usize, deadline: Instant, what: &str) -> Vec<Request> {
        self.wait_for(|r| r.len() >= n, deadline, what)
    }

    /// The alerts of all generic-webhook requests (bodies `{"alerts":[…]}`), flattened in
    /// arrival order. Requests of other shapes are skipped.
    pub fn alerts(&self) -> Vec<serde_json::Value> {
        alerts_of(&self.requests())
    }

    /// Waits until `cond(&alerts)` holds (see [`Receiver::alerts`]) and returns the alerts.
    pub fn wait_for_alerts(
        &self,
        mut cond: impl FnMut(&[serde_json::Value]) -> bool,
        deadline: Instant,
        what: &str,
    ) -> Vec<serde_json::Value> {
        let reqs = self.wait_for(|r| cond(&alerts_of(r)), deadline, what);
        alerts_of(&reqs)
    }
}

/// Flattens the `alerts` arrays of JSON bodies `{"alerts":[…]}`.
pub fn alerts_of(reqs: &[Request]) -> Vec<serde_json::Value> {
    reqs.iter()
        .filter_map(|r| serde_json::from_slice::<serde_json::Value>(&r.body).ok())
        .filter_map(|v| match v.get("alerts") {
            Some(serde_json::Value::Array(a)) => Some(a.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

fn describe_requests(reqs: &[Request]) -> String {
    if reqs.is_empty() {
        return "(none)".into();
    }
    let t0 = reqs[0].received_at;
    reqs.iter()
        .enumerate()
        .map(|(i, r)| {
            format!(
                "#{i} +{:.3?} {} {}\n    {}",
                r.received_at - t0,
                r.method,
                r.path_and_query,
                r.body_str()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn handle(conn: TcpStream, sh: &Shared) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(mut writer) = conn.try_clone() else {
        return;
    };
    let mut r = BufReader::new(conn);
    let mut line = String::new();
    if r.read_line(&mut line).unwrap_or(0) == 0 {
        return; // the wake-up connection of Drop, or a client that gave up
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path_and_query = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).unwrap_or(0) == 0 {
            return;
        }
        let h = h.trim_end_matches(['\r', '\n']);
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    if get("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
        let _ = writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
    }
    let mut body = Vec::new();
    if get("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        loop {
            let mut size = String::new();
            if r.read_line(&mut size).unwrap_or(0) == 0 {
                return;
            }
            let size = size.trim().split(';').next().unwrap_or("");
            let Ok(n) = usize::from_str_radix(size, 16) else {
                return;
            };
            if n == 0 {
                // trailers up to the empty line
                loop {
                    let mut t = String::new();
                    if r.read_line(&mut t).unwrap_or(0) == 0 || t.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            let mut chunk = vec![0; n + 2];
            if r.read_exact(&mut chunk).is_err() {
                return;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body = vec![0; n];
        if r.read_exact(&mut body).is_err() {
            return;
        }
    }
    let (reply, delay) = {
        let mut st = sh.state.lock().unwrap();
        st.requests.push(Request {
            method,
            path_and_query,
            headers,
            body,
            received_at: Instant::now(),
        });
        let reply = st
            .queued
            .pop_front()
            .unwrap_or_else(|| st.default_reply.clone());
        (reply, st.delay)
    };
    sh.cond.notify_all();
    if !delay.is_zero() {
        std::thread::sleep(delay);
    }
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reply.status,
        reason(reply.status),
        reply.body.len()
    );
    let _ = writer.write_all(head.as_bytes());
    let _ = writer.write_all(reply.body.as_bytes());
    let _ = writer.flush();
}
