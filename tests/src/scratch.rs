//! Scratch space and ports.
//!
//! Every temporary directory lives under one directory per test process,
//! `$TMPDIR/flume-wd-scenarios-<pid>`, removed at process exit (an `atexit` hook, which also
//! SIGKILLs the processes registered with [`kill_at_exit`]). Directories of test processes that
//! died without running it are removed by the next test process.

use std::collections::HashSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

const PREFIX: &str = "flume-wd-scenarios-";

static EXIT_KILLS: Mutex<Vec<i32>> = Mutex::new(Vec::new());

extern "C" fn at_exit() {
    let pids = match EXIT_KILLS.lock() {
        Ok(g) => g.clone(),
        Err(p) => p.into_inner().clone(),
    };
    for pid in pids {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    if let Some(root) = ROOT.get() {
        let _ = std::fs::remove_dir_all(root);
    }
}

static ROOT: OnceLock<PathBuf> = OnceLock::new();

/// This process's scratch directory (created on first use).
pub fn process_root() -> &'static Path {
    ROOT.get_or_init(|| {
        let tmp = std::env::temp_dir();
        sweep_stale(&tmp);
        let root = tmp.join(format!("{PREFIX}{}", std::process::id()));
        std::fs::create_dir_all(&root)
            .unwrap_or_else(|e| panic!("cannot create scratch dir {}: {e}", root.display()));
        // SAFETY: registering a plain extern "C" fn with the C library.
        unsafe {
            nix::libc::atexit(at_exit);
        }
        root
    })
}

/// SIGKILL `pid` when this process exits normally (belt and braces next to PDEATHSIG, for
/// processes owned by statics that are never dropped).
pub fn kill_at_exit(pid: i32) {
    process_root();
    EXIT_KILLS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(pid);
}

/// Forget a pid registered with [`kill_at_exit`] (it was killed and reaped: the number may be reused).
pub fn forget_kill_at_exit(pid: i32) {
    EXIT_KILLS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .retain(|&p| p != pid);
}

fn sweep_stale(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(PREFIX)) else {
            continue;
        };
        let Ok(pid) = pid.parse::<i32>() else {
            continue;
        };
        if pid as u32 != std::process::id() && !crate::procs::pid_alive(pid) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// A directory removed (with its contents) on Drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// A new empty directory `<process root>/<prefix>-<n>`.
    pub fn new(prefix: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let path = process_root().join(format!("{prefix}-{}", N.fetch_add(1, Ordering::Relaxed)));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, p: impl AsRef<Path>) -> PathBuf {
        self.path.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago. Chosen at random in 20000..32000, below
/// Linux's ephemeral range (32768..60999), so outgoing connections never take it meanwhile;
/// never the same port twice in one process.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    static SEED: AtomicU64 = AtomicU64::new(0);
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    let given = given.get_or_insert_with(HashSet::new);
    let mut x = SEED.load(Ordering::Relaxed);
    if x == 0 {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
        x = t ^ ((std::process::id() as u64) << 32) | 1;
    }
    for _ in 0..1000 {
        // xorshift64
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let port = 20000 + (x % 12000) as u16;
        if given.contains(&port) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.insert(port);
            SEED.store(x, Ordering::Relaxed);
            return port;
        }
    }
    panic!("no free TCP port found on 127.0.0.1 in 20000..32000 after 1000 tries");
}
