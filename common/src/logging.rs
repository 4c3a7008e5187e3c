//! Where both binaries' logs go and how much of them.
//!
//! Logging must never stop the agent or the watcher: journald restarting, a log shipper dying or a
//! closed terminal leave stderr a broken pipe, and `eprintln!` (or tracing-subscriber's own
//! report of a failed write, which uses it) panics on that. So log lines go through [`LogWriter`],
//! which drops what cannot be written, and the subscriber's internal error report is off.

use std::io::{IsTerminal as _, Write};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// What is logged when the variable is unset or unreadable: the client library's own chatter about
/// every reconnection attempt would drown what the pair says about them.
const DEFAULT_FILTER: &str = "info,zookeeper_client=warn";

/// Sends logs to stderr, filtered by the environment variable `var` (such as
/// `FLUME_WATCHDOG_LOG=debug`). Stderr, because stdout carries the agent's own output and the
/// watcher's alerts and `status`. Colours only on a terminal, and never with `NO_COLOR` set.
pub fn init(var: &str) {
    let colour = use_colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env(var).unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER)),
        )
        .with_writer(LogWriter)
        .with_ansi(colour)
        // Its report of a failed write is an `eprintln!`, which panics on a broken stderr.
        .log_internal_errors(false)
        .init();
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
    use std::ffi::OsStr;

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
