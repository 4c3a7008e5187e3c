//! A real headless browser (Debian's `chromium`), driven through the Chrome DevTools Protocol over
//! `--remote-debugging-pipe`: JSON messages separated by NUL bytes on file descriptors 3 (to the
//! browser) and 4 (from it). No WebSocket client, no chromedriver, no npm: a pipe pair and
//! serde_json.
//!
//! Used to see a page as a person's browser shows it: load it, let its scripts run, and read the
//! DOM as it is now (so a page that updates itself is seen updating, with no reload asked).

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::Instant;

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use serde_json::{json, Value};

use crate::{deadline, Proc, TempDir};

/// Where Debian puts it.
pub const CHROMIUM: &str = "/usr/bin/chromium";

pub struct Browser {
    to: File,
    from: Receiver<Value>,
    next_id: u64,
    proc: Proc,
    _profile: TempDir,
}

/// One page (a tab), attached with its own CDP session.
pub struct Tab {
    session: String,
}

/// A descriptor number of 10 or more, close-on-exec: out of the way of 3 and 4, which the child
/// gets by `dup2`.
fn high(fd: OwnedFd) -> OwnedFd {
    let raw = fcntl(fd.as_raw_fd(), FcntlArg::F_DUPFD_CLOEXEC(10))
        .unwrap_or_else(|e| panic!("fcntl(F_DUPFD_CLOEXEC): {e}"));
    // SAFETY: fcntl just returned this new descriptor, owned by nobody else.
    unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) }
}

impl Browser {
    /// Starts chromium headless with a fresh profile. Fails, saying how to install it, when it
    /// is not there.
    pub fn start() -> Browser {
        if !Path::new(CHROMIUM).exists() {
            panic!(
                "{CHROMIUM} not found: the status page's browser test needs Debian's chromium: \
                 run scripts/setup (or: apt-get install chromium)"
            );
        }
        let profile = TempDir::new("chromium-profile");
        let (to_child, ours_to) = nix::unistd::pipe2(OFlag::O_CLOEXEC).expect("pipe2");
        let (ours_from, from_child) = nix::unistd::pipe2(OFlag::O_CLOEXEC).expect("pipe2");
        let (to_child, from_child) = (high(to_child), high(from_child));
        let (in_fd, out_fd) = (to_child.as_raw_fd(), from_child.as_raw_fd());
        let mut cmd = Command::new(CHROMIUM);
        cmd.args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--remote-debugging-pipe",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank");
        // SAFETY: dup2 is async-signal-safe; nothing is allocated.
        unsafe {
            cmd.pre_exec(move || {
                nix::unistd::dup2(in_fd, 3).map_err(std::io::Error::from)?;
                nix::unistd::dup2(out_fd, 4).map_err(std::io::Error::from)?;
                Ok(())
            });
        }
        let proc = Proc::spawn("chromium", cmd);
        drop((to_child, from_child));
        let (tx, rx) = channel();
        let reader = File::from(ours_from);
        std::thread::Builder::new()
            .name("cdp-reader".into())
            .spawn(move || {
                let mut r = BufReader::new(reader);
                let mut buf = Vec::new();
                loop {
                    buf.clear();
                    match r.read_until(0, &mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {
                            let msg = buf.strip_suffix(&[0]).unwrap_or(&buf);
                            if let Ok(v) = serde_json::from_slice::<Value>(msg) {
                                if tx.send(v).is_err() {
                                    return;
                                }
                            }
                        }
                    }
                }
            })
            .expect("cannot start the CDP reader thread");
        Browser {
            to: File::from(ours_to),
            from: rx,
            next_id: 0,
            proc,
            _profile: profile,
        }
    }

    /// Sends one command and waits (at most 20 s) for its answer: the `result`, or a panic with
    /// the error.
    pub fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&msg).expect("JSON");
        bytes.push(0);
        self.to
            .write_all(&bytes)
            .unwrap_or_else(|e| panic!("cannot write to chromium ({method}): {e}"));
        let until = deadline(20);
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.from.recv_timeout(left) {
                Ok(v) if v["id"] == id => {
                    if let Some(e) = v.get("error") {
                        panic!("chromium refused {method}: {e}");
                    }
                    return v["result"].clone();
                }
                Ok(_) => continue, // an event, or another answer
                Err(RecvTimeoutError::Timeout) => panic!(
                    "timed out after 20 s: waiting for chromium to answer {method}; its output:\n{}",
                    crate::wait::tail(&self.proc.output(), 30)
                ),
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "chromium closed its pipe while asked {method}; its output:\n{}",
                    crate::wait::tail(&self.proc.output(), 30)
                ),
            }
        }
    }

    /// Opens `url` in a new tab.
    pub fn open(&mut self, url: &str) -> Tab {
        let target = self.call(None, "Target.createTarget", json!({"url": url}));
        let target_id = target["targetId"].clone();
        let attached = self.call(
            None,
            "Target.attachToTarget",
            json!({"targetId": target_id, "flatten": true}),
        );
        let session = attached["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no sessionId in {attached}"))
            .to_owned();
        Tab { session }
    }

    /// Evaluates `expression` in the tab's page; its value (JSON), or a panic with the exception.
    pub fn eval(&mut self, tab: &Tab, expression: &str) -> Value {
        let r = self.call(
            Some(&tab.session),
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true}),
        );
        if let Some(e) = r.get("exceptionDetails") {
            panic!("the page threw on {expression:?}: {e}");
        }
        r["result"]["value"].clone()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Asked to close; the Proc then kills what is left of its tree, and reaps it.
        let mut bytes =
            serde_json::to_vec(&json!({"id": 0, "method": "Browser.close"})).unwrap_or_default();
        bytes.push(0);
        let _ = self.to.write_all(&bytes);
    }
}
