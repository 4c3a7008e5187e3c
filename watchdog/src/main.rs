use std::io::Write;
use std::process::ExitCode;

use watchdog::cli::{Config, StopConfig};
use watchdog::stop::StopOutcome;

fn main() -> ExitCode {
    // Before the checks, which may warn (a credentials file others can read).
    common::logging::init(&format!("{}_LOG", watchdog::cli::ENV_PREFIX));
    let config = match watchdog::cli::parse(std::env::args_os()) {
        Ok(config) => config,
        Err(refusal) => return refusal.report(),
    };
    // One thread on purpose: the agent's parent-death signal is tied to the thread that forked it.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            say(
                std::io::stderr(),
                format_args!("flume-watchdog: cannot start the runtime: {e}"),
            );
            return ExitCode::from(1);
        }
    };
    match config {
        Config::Run(cfg) => match runtime.block_on(watchdog::run::run(*cfg)) {
            Ok(code) => ExitCode::from(code as u8),
            Err(e) => {
                say(std::io::stderr(), format_args!("flume-watchdog: {e}"));
                // Only a conflict is "live elsewhere" (4, which systemd must not restart); a
                // watchdog that could not set itself up is a failure to start (1), retried.
                let code = match e {
                    watchdog::run::RunError::Conflict { .. } => watchdog::supervisor::EXIT_CONFLICT,
                    watchdog::run::RunError::Signals(_) => 1,
                };
                ExitCode::from(code as u8)
            }
        },
        Config::Stop(StopConfig {
            zk,
            layout,
            id,
            wait,
        }) => match runtime.block_on(watchdog::stop::stop(&zk, &layout, &id, wait)) {
            Ok(StopOutcome::Stopped { after }) => {
                say(
                    std::io::stdout(),
                    format_args!(
                        "stopped {id}: its liveness node is gone after {}",
                        common::time::human(after)
                    ),
                );
                ExitCode::SUCCESS
            }
            Ok(StopOutcome::StillLive {
                waited,
                host,
                watchdog_pid,
            }) => {
                let host = host.unwrap_or_else(|| "an unknown host".into());
                let pid = watchdog_pid.map_or_else(|| "unknown".into(), |p| p.to_string());
                say(
                    std::io::stdout(),
                    format_args!(
                        "timed out after {}: {id} was told to stop but is still live on {host} (watchdog pid {pid})",
                        common::time::human(waited)
                    ),
                );
                ExitCode::from(1)
            }
            Err(e) => {
                say(std::io::stderr(), format_args!("flume-watchdog stop: {e}"));
                ExitCode::from(1)
            }
        },
    }
}

/// Writes one line to `out`, ignoring a failure: with the reader gone (`… | head`, a closed
/// pipe) `println!` would panic and exit 101, hiding the exit code that says what happened.
fn say(mut out: impl Write, line: std::fmt::Arguments) {
    let _ = writeln!(out, "{line}");
}
