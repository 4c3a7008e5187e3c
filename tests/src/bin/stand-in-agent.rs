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

use std::io::Write;
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
