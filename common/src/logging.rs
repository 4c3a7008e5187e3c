//! Where both binaries' logs go and how much of them.
//!
//! Under systemd, stderr is a stream to journald and systemd says so in `JOURNAL_STREAM`; then the
//! lines go to journald itself, each field (`agent`, `exit`, `error`, …) a journal field of its
//! own (`F_AGENT`, `F_EXIT`; `journalctl -o verbose` shows them, `journalctl F_AGENT=web7-a1`
//! selects by them) and the level its priority. Anywhere else they are plain lines on stderr.
//!
//! Logging must never stop the agent or the watcher: journald restarting, a log shipper dying or a
//! closed terminal leave stderr a broken pipe, and `eprintln!` (or tracing-subscriber's own
//! report of a failed write, which uses it) panics on that. So log lines go through [`LogWriter`],
//! which drops what cannot be written, and the subscriber's internal error report is off. The
//! journald layer drops a datagram it cannot send, too.

use std::ffi::OsStr;
use std::io::{IsTerminal as _, Write};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::EnvFilter;

/// What is logged when the variable is unset or unreadable: the client library's own chatter about
/// every reconnection attempt would drown what the pair says about them.
const DEFAULT_FILTER: &str = "info,zookeeper_client=warn";

/// Where log lines go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sink {
    /// To journald's socket, with structured fields.
    Journald,
    /// Plain lines on stderr.
    Stderr,
}

/// Sends logs to journald when stderr is systemd's stream to it (see [`choose_sink`]), else to
/// stderr, filtered by the environment variable `var` (such as `FLUME_WATCHDOG_LOG=debug`).
/// Stderr, because stdout carries the agent's own output and the watcher's alerts and `status`.
/// Colours only on a terminal, and never with `NO_COLOR` set. A journal that cannot be reached
/// (its socket absent, as in a container that passed `JOURNAL_STREAM` on) means stderr and a
/// warning, never a failure: logging must not keep the agent from running.
pub fn init(var: &str) {
    let filter = || EnvFilter::try_from_env(var).unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let sink = choose_sink(
        std::env::var_os("JOURNAL_STREAM").as_deref(),
        stderr_identity(),
    );
    if sink == Sink::Journald {
        match tracing_journald::layer() {
            Ok(journald) => {
                tracing_subscriber::registry()
                    .with(filter())
                    .with(journald)
                    .init();
                return;
            }
            Err(e) => {
                init_stderr(filter());
                tracing::warn!(
                    error = %e,
                    "JOURNAL_STREAM says stderr goes to the journal, but journald's socket cannot \
                     be used: logging to stderr"
                );
                return;
            }
        }
    }
    init_stderr(filter());
}

fn init_stderr(filter: EnvFilter) {
    let colour = use_colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(LogWriter)
        .with_ansi(colour)
        // Its report of a failed write is an `eprintln!`, which panics on a broken stderr.
        .log_internal_errors(false)
        .init();
}

/// Journald when `journal_stream` (the value of `JOURNAL_STREAM`, `DEV:INODE` in decimal, as
/// systemd sets it for a unit whose stderr is the journal) names the file that stderr is
/// (`stderr`: its device and inode), else stderr. The comparison matters: the variable is
/// inherited by every child, also when their stderr went elsewhere (`flume-watcher status
/// 2>file` typed in a shell started by a unit, or a test harness under systemd), and then the
/// lines belong where stderr goes. A value that does not parse is not the journal.
pub fn choose_sink(journal_stream: Option<&OsStr>, stderr: Option<(u64, u64)>) -> Sink {
    let named = journal_stream
        .and_then(OsStr::to_str)
        .and_then(|v| v.split_once(':'))
        .and_then(|(dev, ino)| Some((dev.parse::<u64>().ok()?, ino.parse::<u64>().ok()?)));
    match (named, stderr) {
        (Some(named), Some(actual)) if named == actual => Sink::Journald,
        _ => Sink::Stderr,
    }
}

/// Device and inode of this process's stderr, `None` when it is closed.
fn stderr_identity() -> Option<(u64, u64)> {
    use std::os::fd::AsFd as _;
    use std::os::unix::fs::MetadataExt as _;
    let fd = std::io::stderr().as_fd().try_clone_to_owned().ok()?;
    let meta = std::fs::File::from(fd).metadata().ok()?;
    Some((meta.dev(), meta.ino()))
}

/// Whether log lines get ANSI colours: only for a terminal, and not when `NO_COLOR` is set to
/// anything but the empty string (<https://no-color.org>).
pub fn use_colour(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && !matches!(no_color, Some(v) if !v.is_empty())
}

/// Stderr for log lines: a line that cannot be written is dropped, never a panic.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogWriter;

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> LogWriter {
        LogWriter
    }
}

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    /// One call per log line: the line is written whole or dropped.
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        let _ = std::io::stderr().lock().write_all(buf);
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journald_only_when_journal_stream_names_stderr() {
        let stderr = Some((64769, 123456));
        let pick = |v: &str| choose_sink(Some(OsStr::new(v)), stderr);
        assert_eq!(pick("64769:123456"), Sink::Journald);
        assert_eq!(choose_sink(None, stderr), Sink::Stderr, "not under systemd");
        assert_eq!(
            pick("64769:999"),
            Sink::Stderr,
            "stderr redirected since (another inode)"
        );
        assert_eq!(pick("1:123456"), Sink::Stderr, "another device");
        assert_eq!(
            choose_sink(Some(OsStr::new("64769:123456")), None),
            Sink::Stderr,
            "stderr closed"
        );
        for garbage in [
            "",
            ":",
            "64769",
            "64769:",
            ":123456",
            "a:b",
            "64769:123456:7",
            "-1:5",
        ] {
            assert_eq!(pick(garbage), Sink::Stderr, "{garbage:?}");
        }
    }

    #[test]
    fn this_processs_stderr_has_an_identity() {
        // The test harness's stderr is a pipe or a terminal, either way open: the decision must
        // have something to compare with.
        let (dev, ino) = stderr_identity().expect("stderr is open");
        assert_ne!(ino, 0);
        let value = format!("{dev}:{ino}");
        assert_eq!(
            choose_sink(Some(OsStr::new(&value)), stderr_identity()),
            Sink::Journald
        );
    }

    #[test]
    fn colour_only_on_a_terminal_and_without_no_color() {
        assert!(use_colour(true, None));
        assert!(
            use_colour(true, Some(OsStr::new(""))),
            "an empty NO_COLOR is unset"
        );
        assert!(!use_colour(true, Some(OsStr::new("1"))));
        assert!(!use_colour(false, None), "a file, a pipe or journald");
        assert!(!use_colour(false, Some(OsStr::new("1"))));
    }
}
