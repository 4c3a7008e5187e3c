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

/// Whether a process with this pid exists on this host.
pub fn pid_alive(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    if raw <= 0 {
        return false;
    }
    !matches!(
        nix::sys::signal::kill(Pid::from_raw(raw), None),
        Err(nix::errno::Errno::ESRCH)
    )
}
