//! The timestamping receiver: a webhook endpoint on 127.0.0.1 that notes, for every alert, when
//! the message carrying it had fully arrived. Both watchers post `{"alerts":[{"event","agent",…}]}`.
//!
//! Not the test suite's receiver: that one keeps whole requests and re-reads them on every wait,
//! which is quadratic over the thousands of messages the baseline sends one agent at a time.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct Receipt {
    pub agent: String,
    pub event: String,
    pub at: Instant,
    /// The message (HTTP request) that carried it, numbered from 0 in arrival order.
    pub message: usize,
}

#[derive(Default)]
struct State {
    receipts: Vec<Receipt>,
    messages: usize,
}

pub struct Receiver {
    addr: SocketAddr,
    shared: Arc<(Mutex<State>, Condvar)>,
}

impl Receiver {
    pub fn start() -> std::io::Result<Receiver> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let shared: Arc<(Mutex<State>, Condvar)> = Arc::default();
        let sh = shared.clone();
        std::thread::Builder::new()
            .name("bench-receiver".into())
            .spawn(move || {
                for conn in listener.incoming().flatten() {
                    let sh = sh.clone();
                    let _ = std::thread::Builder::new()
                        .name("bench-receiver-conn".into())
                        .spawn(move || serve(conn, &sh));
                }
            })?;
        Ok(Receiver { addr, shared })
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// How many alerts have arrived so far: a starting point for [`Receiver::wait`].
    pub fn count(&self) -> usize {
        self.lock().receipts.len()
    }

    /// The alerts that arrived after the first `from`.
    pub fn since(&self, from: usize) -> Vec<Receipt> {
        self.lock()
            .receipts
            .get(from..)
            .unwrap_or_default()
            .to_vec()
    }

    /// Waits until `done` holds for the alerts after the first `from`, at most until `deadline`;
    /// says whether it held. `done` sees only alerts it has not seen yet, so it can keep a tally
    /// and every wait stays linear.
    pub fn wait(
        &self,
        from: usize,
        deadline: Instant,
        mut done: impl FnMut(&[Receipt]) -> bool,
    ) -> bool {
        let (lock, cond) = &*self.shared;
        let mut st = lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut seen = from;
        loop {
            let fresh = st.receipts.get(seen..).unwrap_or_default();
            seen = st.receipts.len().max(seen);
            if done(fresh) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            st = cond
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn serve(conn: TcpStream, shared: &(Mutex<State>, Condvar)) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(mut writer) = conn.try_clone() else {
        return;
    };
    let mut r = BufReader::new(conn);
    let mut length = 0usize;
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((k, v)) = header.split_once(':') {
            if k.trim().eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    if r.read_exact(&mut body).is_err() {
        return;
    }
    let at = Instant::now();
    let _ = writer
        .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 27\r\nConnection: close\r\n\r\n{\"errcode\":0,\"errmsg\":\"ok\"}");
    let alerts = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("alerts").and_then(|a| a.as_array()).cloned())
        .unwrap_or_default();
    let (lock, cond) = shared;
    let mut st = lock.lock().unwrap_or_else(|e| e.into_inner());
    let message = st.messages;
    st.messages += 1;
    for a in alerts {
        let field = |k: &str| a.get(k).and_then(|v| v.as_str()).unwrap_or("").to_owned();
        st.receipts.push(Receipt {
            agent: field("agent"),
            event: field("event"),
            at,
            message,
        });
    }
    drop(st);
    cond.notify_all();
}
