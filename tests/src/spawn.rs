//! Spawning children that die with the test process.
//!
//! `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits, and cargo test runs
//! every test in its own thread, so all children are forked by one dedicated spawner thread that
//! lives as long as the process. Each child gets `PR_SET_PDEATHSIG(SIGKILL)`: when the test
//! process exits (normally, by panic or by a signal), the kernel kills it.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Mutex, OnceLock};

type Request = (Command, Sender<io::Result<Child>>);

fn spawner() -> Sender<Request> {
    static SPAWNER: OnceLock<Mutex<Sender<Request>>> = OnceLock::new();
    SPAWNER
        .get_or_init(|| {
            let (tx, rx) = channel::<Request>();
            std::thread::Builder::new()
                .name("fixture-spawner".into())
                .spawn(move || {
                    // Never returns while the process lives: the senders are held by a static.
                    for (mut cmd, reply) in rx {
                        let _ = reply.send(cmd.spawn());
                    }
                    // Unreachable in practice; keep the thread (and its children) alive anyway.
                    loop {
                        std::thread::park();
                    }
                })
                .expect("cannot start the fixture spawner thread");
            Mutex::new(tx)
        })
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
}

/// Spawns `cmd` from the spawner thread with `PR_SET_PDEATHSIG(SIGKILL)`.
pub fn spawn_tied(mut cmd: Command) -> io::Result<Child> {
    let parent = nix::unistd::getpid();
    // SAFETY: prctl and getppid are async-signal-safe; the closure does not allocate.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                .map_err(io::Error::from)?;
            // The parent may have died between fork and prctl.
            if nix::unistd::getppid() != parent {
                return Err(io::Error::from_raw_os_error(nix::libc::ESRCH));
            }
            Ok(())
        });
    }
    let (tx, rx) = channel();
    spawner()
        .send((cmd, tx))
        .map_err(|_| io::Error::other("fixture spawner thread is gone"))?;
    rx.recv()
        .map_err(|_| io::Error::other("fixture spawner thread is gone"))?
}
