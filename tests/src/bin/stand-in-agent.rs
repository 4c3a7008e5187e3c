//! A stand-in for `flume-ng agent` in tests.
//!
//! `stand-in-agent agent -n NAME -c DIR -f FILE [--exit-code N] [--crash-after 200ms]
//! [--ignore-term] [anything else, ignored]`
//!
//! * prints `stand-in agent NAME started pid=PID` (then `stand-in agent NAME args: …`) and waits;
//! * SIGUSR1: prints `stand-in agent NAME exiting with code N`, exits N (default 3);
//! * `--crash-after D`: the same after D (`200ms`, `2s`, `1.5s`; bare numbers are ms);
//! * SIGTERM / SIGINT: prints `stand-in agent NAME stopping on SIGTERM` and exits 0 (like Flume's
//!   shutdown hook), unless `--ignore-term`: then prints `… ignoring SIGTERM` and carries on.
//! * `-Dflume.monitoring.type=http -Dflume.monitoring.port=N` (as arguments of their own or inside
//!   one argument, as JAVA_OPTS would hold them): serves Flume's `GET /metrics` on port N, in
//!   Flume's shape (`SOURCE.r1`, `CHANNEL.c1` of capacity 1,000, `SINK.k1`, every value a string;
//!   the sink drains 10 events per request). `GET /control?…` changes what it serves and answers
//!   the state at once (so a test knows the change is made): `size=N` events in the channel,
//!   `stall=1` (the sink drains nothing), `unhealthy=1` (the channel's `Unhealthy`), `stop=1` (the
//!   sink's `StopTime`), `hang=1` (a hung JVM: `/metrics` accepts the connection and never
//!   replies), `garbage=1`…`4` (not JSON, a non-numeric figure, not an object, a 2 MB body),
//!   `resume` (all back to healthy). `GET /control` alone answers the state, with `served=N`, the
//!   number of `/metrics` requests answered or held so far.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::unistd::getpid;

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    // The watchdog may have gone: never die of a closed pipe.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn parse_duration(s: &str) -> Option<Duration> {
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "ms"),
    };
    let n: f64 = num.parse().ok()?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" | "min" => n * 60.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut name = String::from("agent");
    let mut exit_code: i32 = 3;
    let mut crash_after = None;
    let mut ignore_term = false;
    let mut http = false;
    let mut port = None;
    for word in args.iter().flat_map(|a| a.split_whitespace()) {
        if let Some(kind) = word.strip_prefix("-Dflume.monitoring.type=") {
            http = kind == "http";
        } else if let Some(p) = word.strip_prefix("-Dflume.monitoring.port=") {
            port = p.parse::<u16>().ok();
        }
    }
    let mut i = 0;
    while i < args.len() {
        let next = args.get(i + 1).cloned();
        match args[i].as_str() {
            "-n" | "--name" => {
                name = next.unwrap_or_default();
                i += 1;
            }
            "--exit-code" => {
                exit_code = next.and_then(|v| v.parse().ok()).expect("--exit-code N");
                i += 1;
            }
            "--crash-after" => {
                crash_after = Some(
                    next.as_deref()
                        .and_then(parse_duration)
                        .expect("--crash-after 200ms"),
                );
                i += 1;
            }
            "--ignore-term" => ignore_term = true,
            _ => {}
        }
        i += 1;
    }

    // Block the signals before any thread starts, so every thread inherits the mask and the
    // signals wait for sigwait below.
    let mut set = SigSet::empty();
    set.add(Signal::SIGUSR1);
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None).expect("sigmask");

    let pid = getpid();
    say(&format!("stand-in agent {name} started pid={pid}"));
    say(&format!("stand-in agent {name} args: {}", args.join(" ")));

    if let Some(port) = port.filter(|_| http) {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the monitoring port");
        say(&format!("stand-in agent {name} metrics on port {port}"));
        let state = Arc::new(Mutex::new(Metrics::default()));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = Arc::clone(&state);
                std::thread::spawn(move || serve(stream, &state));
            }
        });
    }

    if let Some(d) = crash_after {
        std::thread::spawn(move || {
            std::thread::sleep(d);
            let _ = kill(pid, Signal::SIGUSR1);
        });
    }

    loop {
        match set.wait() {
            Ok(Signal::SIGUSR1) => {
                say(&format!(
                    "stand-in agent {name} exiting with code {exit_code}"
                ));
                std::process::exit(exit_code);
            }
            Ok(sig) if ignore_term => say(&format!("stand-in agent {name} ignoring {sig}")),
            Ok(sig) => {
                say(&format!("stand-in agent {name} stopping on {sig}"));
                std::process::exit(0);
            }
            Err(_) => {}
        }
    }
}

/// What the stand-in's Flume metrics say, as the control path set it.
#[derive(Default)]
struct Metrics {
    size: u64,
    drained: u64,
    stall: bool,
    unhealthy: bool,
    stop: bool,
    hang: bool,
    garbage: u8,
    served: u64,
}

const CAPACITY: u64 = 1000;

impl Metrics {
    fn state(&self) -> String {
        format!(
            "size={} stall={} unhealthy={} stop={} hang={} garbage={} served={}",
            self.size,
            u8::from(self.stall),
            u8::from(self.unhealthy),
            u8::from(self.stop),
            u8::from(self.hang),
            self.garbage,
            self.served
        )
    }

    fn control(&mut self, query: &str) {
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let n: u64 = value.parse().unwrap_or(0);
            match key {
                "size" => self.size = n.min(CAPACITY),
                "stall" => self.stall = n != 0,
                "unhealthy" => self.unhealthy = n != 0,
                "stop" => self.stop = n != 0,
                "hang" => self.hang = n != 0,
                "garbage" => self.garbage = n as u8,
                "resume" => {
                    *self = Metrics {
                        drained: self.drained,
                        served: self.served,
                        ..Metrics::default()
                    }
                }
                _ => {}
            }
        }
    }

    /// Flume's reply (see `flume-metrics-sample.json` in watchdog/tests/data).
    fn json(&mut self) -> Vec<u8> {
        if !self.stall {
            self.drained += 10;
        }
        let size = match self.garbage {
            2 => "\"lots\"".to_owned(),
            _ => format!("\"{}\"", self.size),
        };
        match self.garbage {
            1 => return b"<html><body>502 Bad Gateway</body></html>".to_vec(),
            3 => return b"[\"CHANNEL.c1\"]".to_vec(),
            4 => return vec![b' '; 2 << 20],
            _ => {}
        }
        let fill = self.size as f64 * 100.0 / CAPACITY as f64;
        let stop = if self.stop { "1442566411897" } else { "0" };
        format!(
            r#"{{"SOURCE.r1":{{"Type":"SOURCE","EventAcceptedCount":"{d}","EventReceivedCount":"{d}","OpenConnectionCount":"0","StartTime":"1442566410435","StopTime":"0"}},"CHANNEL.c1":{{"Type":"CHANNEL","ChannelSize":{size},"ChannelCapacity":"{CAPACITY}","ChannelFillPercentage":"{fill}","EventPutSuccessCount":"{d}","EventTakeSuccessCount":"{d}","Unhealthy":"{u}","StartTime":"1442566410326","StopTime":"0"}},"SINK.k1":{{"Type":"SINK","EventDrainSuccessCount":"{d}","EventDrainAttemptCount":"{d}","BatchCompleteCount":"0","StartTime":"1442566411897","StopTime":"{stop}"}}}}"#,
            d = self.drained,
            u = u8::from(self.unhealthy),
        )
        .into_bytes()
    }
}

/// One HTTP/1.1 request, answered with `Connection: close`.
fn serve(mut stream: TcpStream, state: &Mutex<Metrics>) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head);
    let target = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let lock = || state.lock().unwrap_or_else(|p| p.into_inner());
    let (status, body) = match path {
        "/metrics" => {
            let mut m = lock();
            m.served += 1;
            if m.hang {
                drop(m);
                // A JVM stuck in GC: the socket accepted, no reply. Held until resumed, then
                // dropped unanswered (the reader gave up long ago).
                while lock().hang {
                    std::thread::sleep(Duration::from_millis(20));
                }
                return;
            }
            ("200 OK", m.json())
        }
        "/control" => {
            let mut m = lock();
            m.control(query);
            ("200 OK", m.state().into_bytes())
        }
        _ => ("404 Not Found", b"not found".to_vec()),
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(&body);
}
