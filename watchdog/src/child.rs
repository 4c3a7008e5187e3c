//! The agent process: spawned in its own process group, signalled as a group.
//!
//! Orphans: the child gets `PR_SET_PDEATHSIG(SIGKILL)`, so when the watchdog dies — even by
//! SIGKILL — the kernel kills the agent at once and a restarted watchdog never finds a duplicate.
//! The death signal fires when the *thread* that forked exits, which is why the watchdog runs a
//! current-thread runtime and spawns from its main thread. `flume-ng` ends by `exec`ing java, so
//! the signal reaches the JVM itself.

use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::{getppid, Pid};
use tokio::process::{Child, Command};

use crate::supervisor::{ChildExit, Sig};

pub struct Agent {
    child: Child,
    pid: u32,
}

impl Agent {
    pub fn spawn(argv: &[String]) -> std::io::Result<Agent> {
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| std::io::Error::other("empty command"))?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .process_group(0);
        // The agent has no business with the watchdog's ZooKeeper credentials.
        cmd.env_remove("FLUME_WATCHDOG_ZK_AUTH")
            .env_remove("FLUME_WATCHDOG_ZK_AUTH_FILE");
        // systemd's notify variables are the watchdog's own: the agent must not speak for it.
        for var in common::systemd::ENV {
            cmd.env_remove(var);
        }
        let parent = std::process::id() as i32;
        // SAFETY: only async-signal-safe calls (prctl, getppid, _exit) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)?;
                // The watchdog may have died between fork and prctl: then nobody would kill us.
                if getppid().as_raw() != parent {
                    nix::libc::_exit(1);
                }
                Ok(())
            });
        }
        let child = cmd.spawn()?;
        let pid = child
            .id()
            .ok_or_else(|| std::io::Error::other("child exited before its pid was read"))?;
        Ok(Agent { child, pid })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Waits for the exit; cancel-safe, so it can sit in a `select!`.
    pub async fn wait(&mut self) -> std::io::Result<ChildExit> {
        let status = self.child.wait().await?;
        // Stragglers of the group (a wrapper's children) must not outlive the agent.
        let _ = killpg(Pid::from_raw(self.pid as i32), Signal::SIGKILL);
        Ok(exit_of(status))
    }
}

pub fn exit_of(status: ExitStatus) -> ChildExit {
    match (status.code(), status.signal()) {
        (Some(code), _) => ChildExit::Code(code),
        (None, Some(sig)) => ChildExit::Signal(sig),
        (None, None) => ChildExit::Code(-1),
    }
}

/// Signals the agent's whole process group; a group already gone is not an error.
pub fn signal_group(pid: u32, sig: Sig) -> nix::Result<()> {
    let signal = match sig {
        Sig::Term => Signal::SIGTERM,
        Sig::Kill => Signal::SIGKILL,
    };
    match killpg(Pid::from_raw(pid as i32), signal) {
        Err(nix::errno::Errno::ESRCH) => Ok(()),
        other => other,
    }
}

/// Whether the watchdog that wrote a liveness node on this host still runs: a process with that
/// pid exists, is not a zombie (a watchdog killed by SIGKILL whose parent has not reaped it yet is
/// gone, though `kill(pid, 0)` still succeeds), and runs the same program as this one (the pid
/// may have been reused since by something else).
pub fn watchdog_alive(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    if raw <= 0 {
        return false;
    }
    if matches!(
        nix::sys::signal::kill(Pid::from_raw(raw), None),
        Err(nix::errno::Errno::ESRCH)
    ) {
        return false;
    }
    // Where /proc cannot tell (hidden pids), the process is taken to exist, as `kill` said.
    let Some((state, comm)) = proc_stat(raw) else {
        return true;
    };
    if matches!(state, 'Z' | 'X' | 'x') {
        return false;
    }
    match proc_stat(std::process::id() as i32) {
        Some((_, ours)) => comm == ours,
        None => true,
    }
}

/// The state letter and the program name (`comm`) of a process, from `/proc/<pid>/stat`:
/// `pid (comm) S …`, where `comm` may itself hold spaces and parentheses.
fn proc_stat(pid: i32) -> Option<(char, String)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

fn parse_stat(text: &str) -> Option<(char, String)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_owned();
    let state = text.get(close + 1..)?.trim_start().chars().next()?;
    Some((state, comm))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_are_read_with_odd_program_names() {
        assert_eq!(
            parse_stat("31843 (flume-watchdog) Z 1 31843 …"),
            Some(('Z', "flume-watchdog".to_owned()))
        );
        assert_eq!(
            parse_stat("7 (a) b) (c) S 1 7"),
            Some(('S', "a) b) (c".to_owned()))
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_is_alive_and_a_reaped_or_zombie_child_is_not() {
        assert!(watchdog_alive(std::process::id()));
        assert!(!watchdog_alive(0));
        assert!(!watchdog_alive(u32::MAX));
        // A child that exited and is not reaped yet: a zombie, so gone.
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let pid = child.id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while proc_stat(pid as i32).map(|(s, _)| s) != Some('Z') {
            assert!(
                std::time::Instant::now() < deadline,
                "waited 10 s for `true` (pid {pid}) to become a zombie; /proc says {:?}",
                proc_stat(pid as i32)
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(!watchdog_alive(pid), "a zombie counts as gone");
        child.wait().expect("reap");
        assert!(!watchdog_alive(pid), "a reaped pid is gone");
    }

    #[test]
    fn a_pid_reused_by_another_program_is_not_a_watchdog() {
        let mut other = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let alive = watchdog_alive(other.id());
        let _ = other.kill();
        let _ = other.wait();
        assert!(!alive, "`sleep` is not this program");
    }
}
