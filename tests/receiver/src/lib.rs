//! The HTTP endpoint every test and the bench post alerts to: a real server on 127.0.0.1 (hyper,
//! HTTP/1.1), so the watcher's real client is exercised, that keeps every request it was sent, in
//! arrival order and with its arrival time, and answers from a script the test writes (status,
//! body, content type, a delay, a `Retry-After`, a reply held until the test lets it go), then with
//! a default reply. One fixture for the scenarios, the bench and the watcher's channel tests, so
//! that a receiver speaking another robot's API is a default reply and a few accessors on top.
//!
//! It runs its own tokio runtime on a thread of its own: plain `#[test]` functions and the bench
//! use its blocking waits ([`Receiver::wait_for`] and friends), and `#[tokio::test]` functions its
//! async one ([`Receiver::next`]), whichever runtime they run on. Every wait has a deadline and,
//! when it runs out, panics saying what it waited for and listing every request seen.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::StatusCode;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::sync::{oneshot, watch, Notify};

/// DingTalk's success reply, which the generic webhook client takes as success too: the default
/// reply unless a test sets another.
pub const OK_BODY: &str = r#"{"errcode":0,"errmsg":"ok"}"#;

/// How long [`Receiver::next`] waits for a request: long enough for a retry with backoff on a
/// loaded machine, short enough that a missing request fails the test soon.
pub const NEXT_WITHIN: Duration = Duration::from_secs(10);

/// One request as the receiver read it, whole.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// As sent, still percent-encoded: e.g. `/robot/send?access_token=T&timestamp=…`.
    pub path_and_query: String,
    /// Names lower-cased (as HTTP/1.1 compares them), values as sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// When the body had arrived whole, before the reply: what latencies are measured to.
    pub received_at: Instant,
    /// The same moment on the wall clock, to compare with timestamps the sender wrote.
    pub received_wall: SystemTime,
    /// Parsed once on arrival, so that waits over thousands of alerts stay linear.
    alerts: Vec<Value>,
}

impl Request {
    /// The path without the query.
    pub fn path(&self) -> &str {
        self.path_and_query.split('?').next().unwrap_or("")
    }

    /// A query parameter, percent-decoded (`+` is a space), as the receiving robot would read it.
    pub fn query(&self, name: &str) -> Option<String> {
        let query = self.path_and_query.split_once('?')?.1;
        form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// A query parameter as sent, still percent-encoded: to check the sender's encoding itself.
    pub fn raw_query(&self, name: &str) -> Option<&str> {
        let query = self.path_and_query.split_once('?')?.1;
        query.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == name).then_some(v)
        })
    }

    /// A header by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics (showing the body) if it is not JSON, as a test would.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "request {} {} body is not JSON ({e}): {}",
                self.method,
                self.path_and_query,
                self.body_str()
            )
        })
    }

    /// The alerts of a generic-webhook body `{"alerts":[…]}`; none for any other body.
    pub fn alerts(&self) -> &[Value] {
        &self.alerts
    }

    /// The `agent` of each alert (see [`Request::alerts`]), in order.
    pub fn agents(&self) -> Vec<String> {
        self.alerts
            .iter()
            .map(|a| a["agent"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

/// Flattens the alerts of `reqs` (see [`Request::alerts`]) in arrival order.
pub fn alerts_of(reqs: &[Request]) -> Vec<Value> {
    reqs.iter().flat_map(|r| r.alerts.iter().cloned()).collect()
}

fn alerts_in(body: &[u8]) -> Vec<Value> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(mut o)) => match o.remove("alerts") {
            Some(Value::Array(a)) => a,
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// One scripted answer. Built in the test's thread, so a malformed status or header fails there,
/// not in the server.
#[derive(Clone, Debug)]
pub struct Reply {
    status: StatusCode,
    body: Bytes,
    headers: Vec<(HeaderName, HeaderValue)>,
    delay: Duration,
    hold: Option<watch::Receiver<bool>>,
}

impl Reply {
    /// `status` with `body` as `application/json` (what the robots the watcher posts to answer).
    pub fn new(status: u16, body: impl Into<String>) -> Reply {
        let status = StatusCode::from_u16(status)
            .unwrap_or_else(|e| panic!("a scripted reply with status {status}: {e}"));
        Reply {
            status,
            body: Bytes::from(body.into()),
            headers: Vec::new(),
            delay: Duration::ZERO,
            hold: None,
        }
        .content_type("application/json")
    }

    /// 200 with `body`.
    pub fn ok(body: impl Into<String>) -> Reply {
        Reply::new(200, body)
    }

    /// Another content type (e.g. `text/plain` for Slack's `ok`); empty for none.
    pub fn content_type(mut self, value: &str) -> Reply {
        self.headers.retain(|(k, _)| k != CONTENT_TYPE);
        if !value.is_empty() {
            self = self.header(CONTENT_TYPE.as_str(), value);
        }
        self
    }

    /// A header on the reply; panics on a name or value HTTP does not allow.
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        let name = HeaderName::from_bytes(name.as_bytes())
            .unwrap_or_else(|e| panic!("reply header name {name:?}: {e}"));
        let value = HeaderValue::from_str(value)
            .unwrap_or_else(|e| panic!("reply header {name}: {value:?}: {e}"));
        self.headers.push((name, value));
        self
    }

    /// `Retry-After` in whole seconds, as rate-limited robots send it; for the HTTP-date form use
    /// [`Reply::header`].
    pub fn retry_after(self, after: Duration) -> Reply {
        self.header(RETRY_AFTER.as_str(), &after.as_secs().to_string())
    }

    /// Answers only this long after the request arrived (it is recorded at once): to provoke the
    /// client's timeout, or to keep a delivery in flight while something else happens.
    pub fn delay(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }

    /// Answers only once the returned [`Release`] is released or dropped: for a test that must
    /// act while a delivery is in flight, however long that takes.
    pub fn held(mut self) -> (Reply, Release) {
        let (release, hold) = watch::channel(false);
        self.hold = Some(hold);
        (self, Release(release))
    }
}

/// Lets the replies of [`Reply::held`] go out.
pub struct Release(watch::Sender<bool>);

impl Release {
    /// Says whether a reply was still held (or still scripted): false means it had gone out.
    pub fn release(self) -> bool {
        self.0.send(true).is_ok()
    }
}

struct State {
    requests: Vec<Request>,
    /// Every request's alerts, flattened: what [`Receiver::wait_for_alerts`] looks at.
    alerts: Vec<Value>,
    script: VecDeque<Reply>,
    default: Reply,
    delay: Duration,
    /// How many requests [`Receiver::next`] and [`Receiver::take_arrived`] have handed out.
    taken: usize,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the blocking waits.
    arrived: Condvar,
    /// Wakes the async ones, whatever runtime they run on.
    arrived_async: Notify,
}

impl Shared {
    /// A wait whose condition panicked poisons the lock; the requests are still right.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// An HTTP/1.1 server on 127.0.0.1:<ephemeral>; stops when dropped.
pub struct Receiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    /// Answers every request with 200 [`OK_BODY`] until told otherwise.
    pub fn start() -> Receiver {
        Receiver::scripted(Vec::new())
    }

    /// Answers with `script` in order, then with 200 [`OK_BODY`].
    pub fn scripted(script: impl IntoIterator<Item = Reply>) -> Receiver {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 for the receiver");
        let addr = listener.local_addr().expect("the receiver's local address");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener for the receiver");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .expect("a runtime for the receiver");
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                requests: Vec::new(),
                alerts: Vec::new(),
                script: script.into_iter().collect(),
                default: Reply::ok(OK_BODY),
                delay: Duration::ZERO,
                taken: 0,
            }),
            arrived: Condvar::new(),
            arrived_async: Notify::new(),
        });
        let (stop, stopped) = oneshot::channel();
        let sh = shared.clone();
        // The runtime is dropped on this thread too: dropping it inside a test's own runtime
        // would panic.
        let thread = std::thread::Builder::new()
            .name("http-receiver".into())
            .spawn(move || runtime.block_on(serve(listener, sh, stopped)))
            .expect("a thread for the receiver");
        Receiver {
            addr,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:PORT{path}`; `path` starts with `/` and may carry a query.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    // --- What it answers ----------------------------------------------------------------------

    /// The reply to every request once the script is used up.
    pub fn set_default(&self, reply: Reply) {
        self.shared.lock().default = reply;
    }

    /// [`Receiver::set_default`] with a JSON body.
    pub fn set_reply(&self, status: u16, body: &str) {
        self.set_default(Reply::new(status, body));
    }

    /// Like [`Receiver::set_reply`], and returns how many requests had arrived before the switch:
    /// `requests()[..n]` were answered the earlier way, the later ones this way (a request is
    /// recorded and its reply chosen under the same lock as the switch).
    pub fn switch_reply(&self, status: u16, body: &str) -> usize {
        let reply = Reply::new(status, body);
        let mut st = self.shared.lock();
        st.default = reply;
        st.requests.len()
    }

    /// A reply for one upcoming request, after those already scripted.
    pub fn queue(&self, reply: Reply) {
        self.shared.lock().script.push_back(reply);
    }

    /// How many scripted replies have not been used yet.
    pub fn script_left(&self) -> usize {
        self.shared.lock().script.len()
    }

    /// Every reply from now on waits this long more, scripted or not: to hold deliveries in flight
    /// for a while, then let them through (`Duration::ZERO`).
    pub fn set_delay(&self, delay: Duration) {
        self.shared.lock().delay = delay;
    }

    // --- What it received: blocking, for synchronous tests and the bench ----------------------

    /// All requests so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.lock().requests.clone()
    }

    /// How many requests have arrived: a starting point for [`Receiver::since`] and
    /// [`Receiver::wait_since`].
    pub fn count(&self) -> usize {
        self.shared.lock().requests.len()
    }

    /// The requests after the first `from`.
    pub fn since(&self, from: usize) -> Vec<Request> {
        self.shared
            .lock()
            .requests
            .get(from..)
            .unwrap_or_default()
            .to_vec()
    }

    /// The alerts of every generic-webhook request (see [`Request::alerts`]), in arrival order.
    pub fn alerts(&self) -> Vec<Value> {
        self.shared.lock().alerts.clone()
    }

    /// Waits until `cond(&requests)` holds and returns the requests; panics at `deadline` showing
    /// `what` and every request seen.
    pub fn wait_for(
        &self,
        mut cond: impl FnMut(&[Request]) -> bool,
        deadline: Instant,
        what: &str,
    ) -> Vec<Request> {
        let st = self.wait_state(|st| cond(&st.requests), deadline, what);
        st.requests.clone()
    }

    /// Waits for at least `n` requests.
    pub fn wait_for_count(&self, n: usize, deadline: Instant, what: &str) -> Vec<Request> {
        self.wait_for(|r| r.len() >= n, deadline, what)
    }

    /// Waits until `cond(&alerts)` holds (see [`Receiver::alerts`]) and returns the alerts.
    pub fn wait_for_alerts(
        &self,
        mut cond: impl FnMut(&[Value]) -> bool,
        deadline: Instant,
        what: &str,
    ) -> Vec<Value> {
        let st = self.wait_state(|st| cond(&st.alerts), deadline, what);
        st.alerts.clone()
    }

    /// Waits until `done` holds for the requests after the first `from`, at most until
    /// `deadline`, and says whether it held: for a measurement, where a miss is a figure, not a
    /// failure. `done` sees each request once, when it is new, so that it can keep a tally and a
    /// wait over thousands of requests stays linear.
    pub fn wait_since(
        &self,
        from: usize,
        deadline: Instant,
        mut done: impl FnMut(&[Request]) -> bool,
    ) -> bool {
        let mut st = self.shared.lock();
        let mut seen = from;
        loop {
            let fresh = st.requests.get(seen..).unwrap_or_default();
            seen = st.requests.len().max(seen);
            if done(fresh) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            st = self
                .shared
                .arrived
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn wait_state(
        &self,
        mut cond: impl FnMut(&State) -> bool,
        deadline: Instant,
        what: &str,
    ) -> MutexGuard<'_, State> {
        let started = Instant::now();
        let mut st = self.shared.lock();
        loop {
            if cond(&st) {
                return st;
            }
            let now = Instant::now();
            if now >= deadline {
                let seen = describe(&st.requests);
                drop(st);
                panic!(
                    "timed out after {:.1?} waiting for {what} at the HTTP receiver {}\n--- requests seen ---\n{seen}",
                    now - started,
                    self.addr
                );
            }
            st = self
                .shared
                .arrived
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    // --- One request at a time: for async tests that check each request as it comes ----------

    /// The next request not handed out yet, waiting up to [`NEXT_WITHIN`] for it; panics saying
    /// `what` it waited for and every request seen.
    pub async fn next(&self, what: &str) -> Request {
        let deadline = tokio::time::Instant::now() + NEXT_WITHIN;
        loop {
            // Registered before looking, so that an arrival in between still wakes us.
            let mut arrived = pin!(self.shared.arrived_async.notified());
            arrived.as_mut().enable();
            {
                let mut st = self.shared.lock();
                if let Some(r) = st.requests.get(st.taken).cloned() {
                    st.taken += 1;
                    return r;
                }
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                let st = self.shared.lock();
                panic!(
                    "no request within {NEXT_WITHIN:?} while waiting for {what} at the HTTP receiver {}; {} handed out before\n--- requests seen ---\n{}",
                    self.addr,
                    st.taken,
                    describe(&st.requests)
                );
            }
        }
    }

    /// Every request that has arrived and not been handed out yet, without waiting.
    pub fn take_arrived(&self) -> Vec<Request> {
        let mut st = self.shared.lock();
        let fresh = st.requests[st.taken..].to_vec();
        st.taken = st.requests.len();
        fresh
    }

    /// How many requests [`Receiver::next`] and [`Receiver::take_arrived`] have handed out.
    pub fn taken(&self) -> usize {
        self.shared.lock().taken
    }

    /// Panics if any request arrived beyond those handed out, naming `context` and showing it.
    pub fn assert_no_more(&self, context: &str) {
        let st = self.shared.lock();
        if let Some(r) = st.requests.get(st.taken) {
            panic!(
                "{context}: expected {} requests, got another: {} {} {}",
                st.taken,
                r.method,
                r.path_and_query,
                r.body_str()
            );
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Joined so that the port is closed when the receiver is gone: dropping its runtime
        // drops every connection, held replies included.
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Every request seen, for a failed wait's message; long bodies cut, as only their start helps.
fn describe(reqs: &[Request]) -> String {
    const SHOWN: usize = 1000;
    let Some(first) = reqs.first() else {
        return "(none)".into();
    };
    reqs.iter()
        .enumerate()
        .map(|(i, r)| {
            let body = r.body_str();
            let cut = match body.char_indices().nth(SHOWN) {
                Some((at, _)) => format!("{}…", &body[..at]),
                None => body,
            };
            format!(
                "#{i} +{:.3?} {} {}\n    {cut}",
                r.received_at - first.received_at,
                r.method,
                r.path_and_query,
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

async fn serve(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    mut stop: oneshot::Receiver<()>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("the HTTP receiver cannot listen: {e}");
            return;
        }
    };
    loop {
        let accepted = tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // E.g. out of file descriptors: let some close rather than spin.
                eprintln!("the HTTP receiver cannot accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| answer(req, shared.clone()));
            // A client that goes away mid-request is the client's business.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(
    req: hyper::Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes().to_vec(),
        // Not recorded: the request never arrived whole.
        Err(_) => return Ok(respond(StatusCode::BAD_REQUEST, Bytes::new(), &[])),
    };
    let request = Request {
        method: parts.method.to_string(),
        path_and_query: parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
                (k.as_str().to_owned(), v)
            })
            .collect(),
        alerts: alerts_in(&body),
        body,
        received_at: Instant::now(),
        received_wall: SystemTime::now(),
    };
    let (reply, extra_delay) = {
        let mut st = shared.lock();
        st.alerts.extend(request.alerts.iter().cloned());
        st.requests.push(request);
        let reply = st.script.pop_front().unwrap_or_else(|| st.default.clone());
        (reply, st.delay)
    };
    shared.arrived.notify_all();
    shared.arrived_async.notify_waiters();
    let delay = reply.delay + extra_delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if let Some(mut hold) = reply.hold {
        // Released, or the test dropped its `Release`: either way, answer.
        let _ = hold.wait_for(|released| *released).await;
    }
    Ok(respond(reply.status, reply.body, &reply.headers))
}

fn respond(
    status: StatusCode,
    body: Bytes,
    headers: &[(HeaderName, HeaderValue)],
) -> hyper::Response<Full<Bytes>> {
    let mut response = hyper::Response::new(Full::new(body));
    *response.status_mut() = status;
    for (k, v) in headers {
        response.headers_mut().append(k.clone(), v.clone());
    }
    response
}
