//! Telling systemd how the process is doing, for `Type=notify` units: `READY=1` once it serves,
//! `STATUS=` lines a person reads in `systemctl status`, `WATCHDOG=1` from the main loop (so a
//! hung loop is restarted by systemd), `STOPPING=1` when a stop begins.
//!
//! Outside systemd (no `NOTIFY_SOCKET`) every call does nothing. A failed notification is logged
//! once at debug level and never stops the process: supervision and alerting matter more than
//! systemd's view of them. The sd-notify crate does the socket work.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sd_notify::NotifyState;

/// The service manager's end of the notification protocol, as this process found it at start.
#[derive(Debug)]
pub struct Systemd {
    /// systemd's watchdog timeout (`WATCHDOG_USEC`), when it asks for pings.
    watchdog: Option<Duration>,
    ready: AtomicBool,
    warned: AtomicBool,
}

/// The variables systemd gives a notify service: a child (the Flume agent, an exec channel's
/// command) must not inherit them, or it could speak for this process.
pub const ENV: [&str; 3] = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"];

impl Systemd {
    /// Reads the environment; leaves it as it is (children are started without [`ENV`]).
    pub fn from_env() -> Systemd {
        let mut usec = 0;
        let watchdog =
            sd_notify::watchdog_enabled(false, &mut usec).then(|| Duration::from_micros(usec));
        Systemd {
            watchdog: watchdog.filter(|d| !d.is_zero()),
            ready: AtomicBool::new(false),
            warned: AtomicBool::new(false),
        }
    }

    /// How often to send `WATCHDOG=1`: half systemd's timeout, as sd_watchdog_enabled(3)
    /// advises; `None` when systemd does not ask.
    pub fn watchdog_every(&self) -> Option<Duration> {
        self.watchdog.map(|d| d / 2)
    }

    /// `READY=1` (once; later calls only update the status) with a status line.
    pub fn ready(&self, status: &str) {
        if self.ready.swap(true, Ordering::Relaxed) {
            self.status(status);
        } else {
            self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
        }
    }

    /// Whether `READY=1` was sent.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// A `STATUS=` line.
    pub fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(status)]);
    }

    /// `WATCHDOG=1`: the main loop is alive.
    pub fn ping(&self) {
        if self.watchdog.is_some() {
            self.send(&[NotifyState::Watchdog]);
        }
    }

    /// `STOPPING=1` with why.
    pub fn stopping(&self, status: &str) {
        self.send(&[NotifyState::Stopping, NotifyState::Status(status)]);
    }

    fn send(&self, states: &[NotifyState<'_>]) {
        if let Err(e) = sd_notify::notify(false, states) {
            if !self.warned.swap(true, Ordering::Relaxed) {
                tracing::debug!(error = %e, "cannot notify systemd; carrying on");
            }
        }
    }
}
