use std::io::Write;
use std::process::ExitCode;

use tokio_util::sync::CancellationToken;
use watcher::cli::Config;

/// Writes to stdout and returns the error instead of panicking: `flume-watcher status | head -c
/// 10` closes the pipe early, and `print!` would panic (exit 101) on that.
fn out(text: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()
}

/// Writes one line to stderr, ignoring errors (a closed stderr must not turn into a panic).
fn err(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn main() -> ExitCode {
    // Before the checks, which may warn (a credentials file others can read).
    common::logging::init(&format!("{}_LOG", watcher::cli::ENV_PREFIX));
    let config = match watcher::cli::parse(std::env::args_os()) {
        Ok(config) => config,
        Err(refusal) => return refusal.report(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            err(&format!("flume-watcher: cannot start the runtime: {e}"));
            return ExitCode::from(1);
        }
    };
    match config {
        Config::Run(cfg) => {
            let cancel = CancellationToken::new();
            match runtime.block_on(watcher::run(cfg, cancel)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    err(&format!("flume-watcher: {e}"));
                    ExitCode::from(1)
                }
            }
        }
        Config::TestAlert(cfg) => {
            let results = match runtime.block_on(watcher::test_alert(cfg)) {
                Ok(r) => r,
                Err(e) => {
                    err(&format!("flume-watcher test-alert: {e}"));
                    return ExitCode::from(1);
                }
            };
            let width = results.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
            let mut text = String::new();
            let mut all = true;
            for (name, outcome) in &results {
                let said = match outcome {
                    watcher::TestOutcome::Delivered => "delivered".to_owned(),
                    watcher::TestOutcome::Refused => {
                        "FAILED: refused for good (the reason is logged above)".to_owned()
                    }
                    watcher::TestOutcome::StillFailing { retries } => format!(
                        "FAILED: still failing after {} attempts (the errors are logged above)",
                        retries + 1
                    ),
                };
                all &= *outcome == watcher::TestOutcome::Delivered;
                text.push_str(&format!("{name:width$}  {said}\n"));
            }
            let _ = out(&text);
            if all {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Config::Example => written(watcher::config::EXAMPLE, "config example"),
        Config::Checked { path, file } => {
            written(&watcher::config::summary(&path, &file), "config check")
        }
        Config::SilenceAdd(cfg) => silence_add(&runtime, cfg),
        Config::SilenceList(cfg) => silence_list(&runtime, cfg),
        Config::SilenceRemove(cfg) => silence_remove(&runtime, cfg),
        Config::Status(args) => {
            let status = match runtime.block_on(watcher::status::read(&args.zk, &args.layout)) {
                Ok(status) => status,
                Err(e) => {
                    err(&format!("flume-watcher status: {e}"));
                    return ExitCode::from(1);
                }
            };
            // What was left out goes to stderr first, so that it is seen even when stdout is
            // piped on; the table or JSON on stdout stays whole.
            for note in &status.notes {
                err(&format!("flume-watcher status: {note}"));
            }
            let text = if args.json {
                match serde_json::to_string_pretty(&status) {
                    Ok(text) => text + "\n",
                    Err(e) => {
                        err(&format!("flume-watcher status: {e}"));
                        return ExitCode::from(1);
                    }
                }
            } else {
                watcher::status::leader_line(&status)
                    + &watcher::status::table(&status.agents)
                    + &watcher::status::degraded_lines(&status.agents)
                    + &watcher::status::silence_lines(&status)
            };
            written(&text, "status")
        }
    }
}

/// stdout written, or the exit code: a reader that stopped early (`| head`) is no failure, a
/// full disk is.
fn written(text: &str, command: &str) -> ExitCode {
    match out(text) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            err(&format!(
                "flume-watcher {command}: cannot write the output: {e}"
            ));
            ExitCode::from(1)
        }
    }
}

fn silence_add(runtime: &tokio::runtime::Runtime, cfg: watcher::cli::SilenceAddConfig) -> ExitCode {
    use watcher::silencing;
    let added = match runtime.block_on(silencing::add(&cfg.zk, &cfg.layout, &cfg.record)) {
        Ok(added) => added,
        Err(e) => {
            err(&format!("flume-watcher silence add: {e}"));
            return ExitCode::from(1);
        }
    };
    let zone = watcher::message::Zone::local();
    let r = &cfg.record;
    let when = |s: &str| {
        common::time::parse(s).map_or_else(|| s.to_owned(), |t| silencing::local_and_utc(t, &zone))
    };
    let from =
        if common::time::parse(&r.starts_at).is_some_and(|t| t > std::time::SystemTime::now()) {
            format!("from {} ", when(&r.starts_at))
        } else {
            String::new()
        };
    err(&format!(
        "flume-watcher silence add: silence {} holds back the alerts about {} {from}until {}: {}",
        added.id,
        silencing::matchers(r),
        when(&r.ends_at),
        r.comment
    ));
    notes("silence add", &added.pruned, &added.skipped);
    written(&format!("{}\n", added.id), "silence add")
}

/// What was pruned or skipped on the way, on stderr: never silent.
fn notes(command: &str, pruned: &[String], skipped: &[String]) {
    if !pruned.is_empty() {
        err(&format!(
            "flume-watcher {command}: deleted {} silence(s) that ended more than 5 days ago: {}",
            pruned.len(),
            pruned.join(", ")
        ));
    }
    for note in skipped {
        err(&format!("flume-watcher {command}: {note}"));
    }
}

fn silence_list(
    runtime: &tokio::runtime::Runtime,
    cfg: watcher::cli::SilenceListConfig,
) -> ExitCode {
    use watcher::silencing;
    let listing = match runtime.block_on(silencing::list(&cfg.zk, &cfg.layout)) {
        Ok(listing) => listing,
        Err(e) => {
            err(&format!("flume-watcher silence list: {e}"));
            return ExitCode::from(1);
        }
    };
    notes("silence list", &listing.pruned, &listing.skipped);
    let rows = silencing::listed(&listing.silences, std::time::SystemTime::now(), cfg.all);
    let text = if cfg.json {
        match serde_json::to_string_pretty(&rows) {
            Ok(text) => text + "\n",
            Err(e) => {
                err(&format!("flume-watcher silence list: {e}"));
                return ExitCode::from(1);
            }
        }
    } else {
        silencing::table(&rows, &watcher::message::Zone::local())
    };
    written(&text, "silence list")
}

fn silence_remove(
    runtime: &tokio::runtime::Runtime,
    cfg: watcher::cli::SilenceRemoveConfig,
) -> ExitCode {
    use watcher::silencing;
    match runtime.block_on(silencing::remove(&cfg.zk, &cfg.layout, &cfg.id)) {
        Ok(record) => {
            let what = record
                .map(|r| format!(" ({}: {})", silencing::matchers(&r), r.comment))
                .unwrap_or_default();
            err(&format!(
                "flume-watcher silence remove: removed silence {}{what}",
                cfg.id
            ));
            ExitCode::SUCCESS
        }
        Err(e) => {
            err(&format!("flume-watcher silence remove: {e}"));
            ExitCode::from(1)
        }
    }
}
