//! Child processes with captured output.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

use crate::wait::{poll_until, tail};

/// A workspace binary (`flume-watchdog`, `flume-watcher`, `stand-in-agent`) in the target directory
/// of the running test executable (`target/<profile>/deps/<test>-<hash>` → `target/<profile>/<name>`).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let mut dirs = Vec::new();
    if let Some(dir) = exe.parent() {
        if dir.file_name().is_some_and(|n| n == "deps") {
            if let Some(up) = dir.parent() {
                dirs.push(up.to_path_buf());
            }
        }
        dirs.push(dir.to_path_buf());
    }
    for d in &dirs {
        let p = d.join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "binary `{name}` not found in {dirs:?}: run `cargo build --workspace --bins` first \
         (same profile as the tests)"
    );
}

/// The stand-in for `flume-ng agent` (built by cargo for this package's tests).
pub fn stand_in_agent() -> PathBuf {
    bin("stand-in-agent")
}

/// True while `pid` exists and is not a zombie.
pub fn pid_alive(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next());
    !matches!(state, Some("Z" | "X" | "x"))
}

/// Waits until `pid` is gone (or a zombie); panics at `deadline` naming `what`.
pub fn wait_pid_gone(pid: i32, deadline: Instant, what: &str) {
    poll_until(
        deadline,
        &format!("{what} (pid {pid}) to be gone"),
        || (!pid_alive(pid)).then_some(()),
        || {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            format!("pid {pid} still alive: {cmdline}")
        },
    )
}

/// Parent pid of every process, from /proc.
fn ppid_map() -> HashMap<i32, Vec<i32>> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return children;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let Some(ppid) = rest
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        children.entry(ppid).or_default().push(pid);
    }
    children
}

fn descendants(root: i32) -> Vec<i32> {
    let map = ppid_map();
    let mut out = Vec::new();
    let mut todo = vec![root];
    while let Some(p) = todo.pop() {
        if let Some(kids) = map.get(&p) {
            for &k in kids {
                out.push(k);
                todo.push(k);
            }
        }
    }
    out
}

struct OutState {
    lines: Vec<String>,
    open_streams: u8,
}

struct Output {
    state: Mutex<OutState>,
    cond: Condvar,
}

/// A child process whose stdout and stderr are captured line by line (and echoed to the test's
/// stderr as `[label] line`). It runs in its own process group; Drop SIGKILLs it, its
/// descendants and its process group, and reaps it.
pub struct Proc {
    label: String,
    pid: i32,
    child: Mutex<Child>,
    exit: Mutex<Option<ExitStatus>>,
    out: Arc<Output>,
}

impl Proc {
    /// Spawns `cmd` (stdin from /dev/null; stdout and stderr captured). Panics if it cannot start.
    pub fn spawn(label: &str, mut cmd: Command) -> Proc {
        cmd.stderr(Stdio::piped());
        Proc::spawn_with_stderr(label, cmd)
    }

    /// Spawns `cmd` with stdout captured and stderr as `cmd` sets it (a broken pipe, a file).
    pub fn spawn_with_stderr(label: &str, mut cmd: Command) -> Proc {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .process_group(0);
        let desc = format!("{cmd:?}");
        let mut child = crate::spawn::spawn_tied(cmd)
            .unwrap_or_else(|e| panic!("cannot start [{label}] {desc}: {e}"));
        let pid = child.id() as i32;
        let out = Arc::new(Output {
            state: Mutex::new(OutState {
                lines: Vec::new(),
                open_streams: 2,
            }),
            cond: Condvar::new(),
        });
        let stdout = child.stdout.take().expect("piped stdout");
        let mut streams = vec![Box::new(stdout) as Box<dyn Read + Send>];
        if let Some(stderr) = child.stderr.take() {
            streams.push(Box::new(stderr));
        }
        out.state.lock().unwrap().open_streams = streams.len() as u8;
        // Reader threads are spawned from the test's thread so their eprintln! is captured with
        // the test's output.
        for stream in streams {
            let out = out.clone();
            let prefix = format!("[{label}] ");
            std::thread::Builder::new()
                .name(format!("{label}-output"))
                .spawn(move || {
                    let mut r = BufReader::new(stream);
                    let mut buf = Vec::new();
                    loop {
                        buf.clear();
                        match r.read_until(b'\n', &mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(_) => {
                                let line = String::from_utf8_lossy(&buf);
                                let line = line.trim_end_matches(['\n', '\r']).to_string();
                                eprintln!("{prefix}{line}");
                                out.state.lock().unwrap().lines.push(line);
                                out.cond.notify_all();
                            }
                        }
                    }
                    out.state.lock().unwrap().open_streams -= 1;
                    out.cond.notify_all();
                })
                .expect("cannot start an output reader thread");
        }
        Proc {
            label: label.to_string(),
            pid,
            child: Mutex::new(child),
            exit: Mutex::new(None),
            out,
        }
    }

    /// Spawns `program args…`.
    pub fn start<S: AsRef<std::ffi::OsStr>>(
        label: &str,
        program: impl AsRef<std::ffi::OsStr>,
        args: impl IntoIterator<Item = S>,
    ) -> Proc {
        let mut cmd = Command::new(program);
        cmd.args(args);
        Proc::spawn(label, cmd)
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// All output lines so far (stdout and stderr in arrival order).
    pub fn lines(&self) -> Vec<String> {
        self.out.state.lock().unwrap().lines.clone()
    }

    /// All output so far, one line per line.
    pub fn output(&self) -> String {
        self.lines().join("\n")
    }

    /// Number of output lines so far: pass it to [`Proc::wait_for_line_since`] to wait only for
    /// lines that come after this point.
    pub fn mark(&self) -> usize {
        self.out.state.lock().unwrap().lines.len()
    }

    /// How many output lines so far contain `needle`.
    pub fn count_lines(&self, needle: &str) -> usize {
        self.out
            .state
            .lock()
            .unwrap()
            .lines
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// The first output line (from the start) containing `needle`.
    pub fn wait_for_line(&self, needle: &str, deadline: Instant, what: &str) -> String {
        self.wait_for_line_since(
            0,
            |l| l.contains(needle),
            deadline,
            &format!("{what} (a line containing {needle:?})"),
        )
    }

    /// The first output line (from the start) for which `pred` holds.
    pub fn wait_for_line_where(
        &self,
        pred: impl FnMut(&str) -> bool,
        deadline: Instant,
        what: &str,
    ) -> String {
        self.wait_for_line_since(0, pred, deadline, what)
    }

    /// The first output line with index >= `mark` (see [`Proc::mark`]) for which `pred` holds.
    /// Panics at `deadline`, or as soon as the process has exited and closed its output, showing
    /// `what` and the last lines of output.
    pub fn wait_for_line_since(
        &self,
        mark: usize,
        mut pred: impl FnMut(&str) -> bool,
        deadline: Instant,
        what: &str,
    ) -> String {
        let started = Instant::now();
        let mut next = mark;
        let mut st = self.out.state.lock().unwrap();
        loop {
            while next < st.lines.len() {
                if pred(&st.lines[next]) {
                    return st.lines[next].clone();
                }
                next += 1;
            }
            let closed = st.open_streams == 0;
            drop(st);
            if closed {
                if let Some(status) = self.try_exit() {
                    // No more output can come.
                    panic!(
                        "[{}] pid {} exited ({}) before {what}; its last output:\n{}",
                        self.label,
                        self.pid,
                        describe(status),
                        tail(&self.output(), 40)
                    );
                }
            }
            let now = Instant::now();
            if now >= deadline {
                panic!(
                    "timed out after {:.1?} waiting for {what} from [{}] pid {} ({}); its last output:\n{}",
                    now - started,
                    self.label,
                    self.pid,
                    self.state_desc(),
                    tail(&self.output(), 40)
                );
            }
            st = self.out.state.lock().unwrap();
            let wait = (deadline - now).min(Duration::from_millis(50));
            st = self.out.cond.wait_timeout(st, wait).unwrap().0;
        }
    }

    /// Sends `sig` to the process (not its group).
    pub fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.pid), sig)
            .unwrap_or_else(|e| panic!("kill -{sig} [{}] pid {}: {e}", self.label, self.pid));
    }

    /// The exit status if it has exited (reaps it).
    pub fn try_exit(&self) -> Option<ExitStatus> {
        let mut exit = self.exit.lock().unwrap();
        if exit.is_none() {
            if let Ok(Some(s)) = self.child.lock().unwrap().try_wait() {
                *exit = Some(s);
            }
        }
        *exit
    }

    pub fn is_running(&self) -> bool {
        self.try_exit().is_none()
    }

    /// Waits for the process to exit; panics at `deadline` with its last output.
    /// Waits for the exit, then (up to 2 s more) for the output pipes to close, so that what the
    /// process printed last is in [`Proc::output`]. A pipe may stay open longer when a child
    /// inherited it; then the output is as far as read.
    pub fn wait_exit(&self, deadline: Instant) -> ExitStatus {
        let status = poll_until(
            deadline,
            &format!("[{}] pid {} to exit", self.label, self.pid),
            || self.try_exit(),
            || format!("still running; last output:\n{}", tail(&self.output(), 40)),
        );
        let drained_by = Instant::now() + std::time::Duration::from_secs(2);
        let mut st = self.out.state.lock().unwrap();
        while st.open_streams > 0 {
            let now = Instant::now();
            if now >= drained_by {
                break;
            }
            st = self.out.cond.wait_timeout(st, drained_by - now).unwrap().0;
        }
        status
    }

    fn state_desc(&self) -> String {
        match self.try_exit() {
            Some(s) => describe(s),
            None => "running".into(),
        }
    }

    /// SIGKILLs the process, its descendants and its process group, and reaps it.
    pub fn kill(&self) {
        let pid = Pid::from_raw(self.pid);
        if self.try_exit().is_none() {
            // Freeze the tree so it cannot fork while we collect it.
            let _ = kill(pid, Signal::SIGSTOP);
            let mut all = vec![self.pid];
            for _ in 0..3 {
                let found = descendants(self.pid);
                let new: Vec<i32> = found.into_iter().filter(|p| !all.contains(p)).collect();
                if new.is_empty() {
                    break;
                }
                for &p in &new {
                    let _ = kill(Pid::from_raw(p), Signal::SIGSTOP);
                }
                all.extend(new);
            }
            for &p in &all {
                let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
            }
        }
        let _ = killpg(pid, Signal::SIGKILL);
        let mut exit = self.exit.lock().unwrap();
        if exit.is_none() {
            if let Ok(s) = self.child.lock().unwrap().wait() {
                *exit = Some(s);
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// "exit code 3" / "killed by signal SIGKILL".
pub fn describe(status: ExitStatus) -> String {
    if let Some(c) = status.code() {
        format!("exit code {c}")
    } else if let Some(s) = status.signal() {
        match Signal::try_from(s) {
            Ok(sig) => format!("killed by signal {sig}"),
            Err(_) => format!("killed by signal {s}"),
        }
    } else {
        format!("{status}")
    }
}
