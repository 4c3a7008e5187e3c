//! Command-line tools that the packaging and unit-file tests run (`systemd-analyze`, `dpkg-deb`,
//! `cargo deb`): found on PATH or the test fails saying how to install them — a missing tool is
//! never a silent skip — and run to their end within a deadline.

use std::io::Read;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Instant;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// The path of `tool` on PATH. Panics with `install` (e.g. "apt-get install systemd") when it is
/// not there.
pub fn require(tool: &str, install: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("`{tool}` is not installed (not on PATH): {install}, or run scripts/setup")
        })
}

/// What a finished command said.
#[derive(Debug)]
pub struct Ran {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    /// Panics naming `what` and showing both outputs unless the command exited 0.
    pub fn ok(self, what: &str) -> Ran {
        assert!(
            self.status.success(),
            "{what} failed ({}):\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Runs `cmd` (stdin closed, both outputs captured) in a process group of its own and waits for
/// it until `deadline`; then the whole group (a script's cargo too) is killed and the test fails
/// naming `what`.
pub fn run(mut cmd: Command, what: &str, deadline: Instant) -> Ran {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what} ({cmd:?}): {e}"));
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let out = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let err = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            let _ = child.wait();
            panic!(
                "{what} did not finish within {:.0?} (killed):\n--- stdout ---\n{}\n--- stderr ---\n{}",
                started.elapsed(),
                out.join().unwrap_or_default(),
                err.join().unwrap_or_default()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    Ran {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// The repository's root (the workspace holding this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the repository")
        .to_path_buf()
}

/// `src` at `dst`: a hard link when both are on one file system (a 200 MB debug binary is not
/// copied), a copy otherwise.
pub fn link_or_copy(src: &Path, dst: &Path) {
    if let Some(parent) = dst.parent() {
        std::fs::create_dir_all(parent)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", parent.display()));
    }
    if std::fs::hard_link(src, dst).is_err() {
        std::fs::copy(src, dst)
            .unwrap_or_else(|e| panic!("cannot copy {} to {}: {e}", src.display(), dst.display()));
    }
}

/// A scratch root for `systemd-analyze verify --root`: systemd needs its own units there (the
/// targets a unit is ordered after), so the host's `/usr/lib/systemd/system` is copied in (its
/// symlinks as symlinks), with `lib` pointing at `usr/lib` when the tree has no `lib` of its own.
pub fn systemd_root(root: &Path) {
    let host = Path::new("/usr/lib/systemd/system");
    assert!(
        host.join("multi-user.target").exists(),
        "{} has no multi-user.target: install systemd (apt-get install systemd), or run scripts/setup",
        host.display()
    );
    let dst = root.join("usr/lib/systemd/system");
    std::fs::create_dir_all(&dst).expect("create usr/lib/systemd/system");
    let cp = run(
        {
            let mut c = Command::new("cp");
            c.arg("-a")
                .arg("--no-clobber")
                .arg(format!("{}/.", host.display()))
                .arg(&dst);
            c
        },
        "copying the host's systemd units",
        crate::deadline(30),
    );
    cp.ok("copying the host's systemd units");
    if !root.join("lib").exists() {
        std::os::unix::fs::symlink("usr/lib", root.join("lib")).expect("symlink lib");
    }
}

/// `systemd-analyze verify --root=ROOT UNIT…` and what it found wrong: its exit status must be 0
/// and every line it printed about a unit of ours (naming `flume-watchdog` or `flume-watcher`: the
/// units and their binaries; the scratch root's own path does not) is a problem (an unknown
/// key, a value it cannot parse, a missing binary); it exits 0 on some of them, so the output is
/// what counts.
pub fn verify_units(root: &Path, units: &[&str]) -> Vec<String> {
    let analyze = require("systemd-analyze", "apt-get install systemd");
    let mut cmd = Command::new(analyze);
    cmd.arg("verify")
        .arg("--man=no")
        .arg(format!("--root={}", root.display()))
        .args(units)
        .env("SYSTEMD_LOG_COLOR", "0");
    let ran = run(cmd, "systemd-analyze verify", crate::deadline(60));
    let mut problems: Vec<String> = ran
        .stdout
        .lines()
        .chain(ran.stderr.lines())
        .filter(|l| l.contains("flume-watchdog") || l.contains("flume-watcher"))
        .map(str::to_owned)
        .collect();
    if !ran.status.success() {
        problems.push(format!(
            "systemd-analyze verify exited {}:\n{}{}",
            ran.status, ran.stdout, ran.stderr
        ));
    }
    problems
}
