//! The figures as Markdown tables, ours beside the baseline, with the ratio ours / baseline.

use std::fmt::Write;

use crate::floor::Floor;
use crate::reconnect::ReconnectFigures;
use crate::stats::Summary;
use crate::watchdog_run::WatchdogFigures;
use crate::watcher_run::WatcherFigures;

fn ratio(ours: f64, base: f64) -> String {
    if base > 0.0 {
        format!("{:.3}", ours / base)
    } else {
        "—".into()
    }
}

fn shown(v: f64, unit: &str) -> String {
    if v.abs() >= 100.0 || v == v.trunc() {
        format!("{v:.0} {unit}")
    } else {
        format!("{v:.2} {unit}")
    }
}

fn row(out: &mut String, what: &str, ours: f64, base: Option<f64>, unit: &str) {
    let _ = writeln!(
        out,
        "| {what} | {} | {} | {} |",
        shown(ours, unit),
        base.map_or("—".into(), |b| shown(b, unit)),
        base.map_or("—".into(), |b| ratio(ours, b))
    );
}

/// One figure of a watcher run: none when not reached (a run stopped at its limit).
type Figure = fn(&WatcherFigures) -> Option<f64>;

/// A removal latency, if any removal was measured (or the run was not stopped: then 0, as before).
fn removal(w: &WatcherFigures, f: fn(&Summary) -> f64) -> Option<f64> {
    (w.stopped.is_none() || w.removal.count > 0).then(|| f(&w.removal))
}

/// A figure as shown: its value, or "stopped at N s" when the run was stopped before it.
fn cell(w: &WatcherFigures, v: Option<f64>, unit: &str) -> String {
    match (v, &w.stopped) {
        (Some(v), _) => shown(v, unit),
        (None, Some(s)) => format!("stopped at {:.0} s", s.limit_s),
        (None, None) => "—".into(),
    }
}

fn watcher_row(
    out: &mut String,
    what: &str,
    ours: &WatcherFigures,
    base: Option<&WatcherFigures>,
    figure: Figure,
    unit: &str,
) {
    let (o, b) = (figure(ours), base.and_then(figure));
    let _ = writeln!(
        out,
        "| {what} | {} | {} | {} |",
        cell(ours, o, unit),
        base.map_or("—".into(), |w| cell(w, b, unit)),
        match (o, b) {
            (Some(o), Some(b)) => ratio(o, b),
            _ => "—".into(),
        }
    );
}

pub fn markdown(
    floor: &Floor,
    watchers: &[WatcherFigures],
    watchdogs: &[WatchdogFigures],
    reconnect: Option<&ReconnectFigures>,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n### This machine's floor: ZooKeeper round trips, one at a time\n"
    );
    let _ = writeln!(
        out,
        "| request | p50 | p99 | max | samples |\n|---|---|---|---|---|"
    );
    for (what, s) in [
        ("write (create)", &floor.write),
        ("read (getData)", &floor.read),
    ] {
        let _ = writeln!(
            out,
            "| {what} | {:.2} ms | {:.2} ms | {:.2} ms | {} |",
            s.p50_ms, s.p99_ms, s.max_ms, s.count
        );
    }
    let mut ns: Vec<usize> = watchers.iter().map(|w| w.n).collect();
    ns.dedup();
    for n in ns {
        let ours = watchers.iter().find(|w| w.n == n && w.pair == "ours");
        let base = watchers.iter().find(|w| w.n == n && w.pair == "baseline");
        let Some(o) = ours else { continue };
        let _ = writeln!(out, "\n### Watcher, N = {n}\n");
        let _ = writeln!(
            out,
            "| figure | ours | baseline | ours / baseline |\n|---|---|---|---|"
        );
        let rows: [(String, Figure, &str); 13] = [
            ("time to ready".into(), |w| w.ready_ms, "ms"),
            (
                "removal → alert p50".into(),
                |w| removal(w, |s| s.p50_ms),
                "ms",
            ),
            (
                "removal → alert p99".into(),
                |w| removal(w, |s| s.p99_ms),
                "ms",
            ),
            (
                "removal → alert max".into(),
                |w| removal(w, |s| s.max_ms),
                "ms",
            ),
            (
                "removals without an alert in 10 s".into(),
                |w| (w.stopped.is_none() || w.removal.count > 0).then_some(w.removal_missed as f64),
                "",
            ),
            (
                format!("false alerts in {} planned stops", o.stops),
                |w| w.false_alerts.map(|n| n as f64),
                "",
            ),
            (
                format!("{} lost at once → all received", o.mass),
                |w| w.mass_all_ms.or((w.stopped.is_none()).then_some(f64::NAN)),
                "ms",
            ),
            (
                "… ids missing".into(),
                |w| w.mass_missing.map(|n| n as f64),
                "",
            ),
            (
                "… webhook messages".into(),
                |w| w.mass_messages.map(|n| n as f64),
                "",
            ),
            (
                "… then one removal → alert".into(),
                |w| {
                    w.after_burst_ms
                        .or((w.stopped.is_none()).then_some(f64::NAN))
                },
                "ms",
            ),
            (
                "peak RSS".into(),
                |w| Some(w.peak_rss_kib as f64 / 1024.0),
                "MiB",
            ),
            (
                "RSS once ready".into(),
                |w| w.ready_rss_kib.map(|k| k as f64 / 1024.0),
                "MiB",
            ),
            ("CPU time, whole run".into(), |w| Some(w.cpu_secs), "s"),
        ];
        for (what, figure, unit) in rows {
            watcher_row(&mut out, &what, o, base, figure, unit);
        }
        for w in [Some(o), base].into_iter().flatten() {
            if let Some(s) = &w.stopped {
                let _ = writeln!(
                    out,
                    "\n{} was stopped at its limit of {:.0} s, {}: the figures it did not reach say \"stopped at {:.0} s\"; its RSS and CPU time are up to the stop.",
                    if w.pair == "ours" { "Ours" } else { "The baseline" },
                    s.limit_s,
                    s.during,
                    s.limit_s
                );
            }
        }
        if let Some(z) = &o.server {
            let _ = writeln!(
                out,
                "\nZooKeeper with the N agents and our watcher: {} znodes, {:.1} MiB of paths and data, \
                 {} watches, heap in use after a full GC {}.{}",
                z.znodes,
                z.data_bytes as f64 / 1048576.0,
                z.watches,
                z.heap_used_kib
                    .map_or("unknown".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0)),
                base.and_then(|b| b.server.as_ref())
                    .map_or(String::new(), |b| format!(
                        " With the baseline's watcher instead: {} watches.",
                        b.watches
                    ))
            );
        }
    }
    let ours = watchdogs.iter().find(|w| w.pair == "ours");
    let base = watchdogs.iter().find(|w| w.pair == "baseline");
    if let Some(o) = ours {
        let _ = writeln!(
            out,
            "\n### Watchdog (supervising `sleep`, session timeout {:.0} ms)\n",
            o.session_timeout_ms
        );
        let _ = writeln!(
            out,
            "| figure | ours | baseline | ours / baseline |\n|---|---|---|---|"
        );
        let b = |f: fn(&WatchdogFigures) -> f64| base.map(f);
        row(
            &mut out,
            "idle RSS",
            o.idle_rss_kib as f64 / 1024.0,
            b(|w| w.idle_rss_kib as f64 / 1024.0),
            "MiB",
        );
        row(
            &mut out,
            &format!("idle CPU over {:.0} s", o.idle_window_secs),
            o.idle_cpu_secs,
            b(|w| w.idle_cpu_secs),
            "s",
        );
        row(
            &mut out,
            "child crash → restart p50",
            o.restart.p50_ms,
            b(|w| w.restart.p50_ms),
            "ms",
        );
        row(
            &mut out,
            "child crash → restart p99",
            o.restart.p99_ms,
            b(|w| w.restart.p99_ms),
            "ms",
        );
        row(
            &mut out,
            "child crash → alert p50",
            o.crash_alert.p50_ms,
            b(|w| w.crash_alert.p50_ms),
            "ms",
        );
        row(
            &mut out,
            "child crash → alert p99",
            o.crash_alert.p99_ms,
            b(|w| w.crash_alert.p99_ms),
            "ms",
        );
        row(
            &mut out,
            "child crash → alert max",
            o.crash_alert.max_ms,
            b(|w| w.crash_alert.max_ms),
            "ms",
        );
        row(
            &mut out,
            "watchdog SIGKILL → alert p50",
            o.kill_alert.p50_ms,
            b(|w| w.kill_alert.p50_ms),
            "ms",
        );
        row(
            &mut out,
            "watchdog SIGKILL → alert max",
            o.kill_alert.max_ms,
            b(|w| w.kill_alert.max_ms),
            "ms",
        );
        let _ = writeln!(
            out,
            "\nSamples: {} crashes ({} alerts received), {} watchdog kills.",
            o.restart.count, o.crash_alert.count, o.kill_alert.count
        );
    }
    if let Some(r) = reconnect {
        let _ = writeln!(
            out,
            "\n### Reconnection: {} watchdogs after ZooKeeper was down {:.1} s (session timeout {:.0} ms)\n",
            r.n,
            r.pause_ms / 1e3,
            r.session_timeout_ms
        );
        let _ = writeln!(out, "| figure | value |\n|---|---|");
        let _ = writeln!(
            out,
            "| first registration of all | {:.0} ms |",
            r.first_registration_ms
        );
        for (what, v) in [
            (
                "ZooKeeper answering again → registered again, p50",
                r.reregistered.p50_ms,
            ),
            (
                "ZooKeeper answering again → registered again, p99",
                r.reregistered.p99_ms,
            ),
            (
                "ZooKeeper answering again → all registered again",
                r.reregistered.max_ms,
            ),
        ] {
            let _ = writeln!(out, "| {what} | {v:.0} ms |");
        }
        let _ = writeln!(
            out,
            "| peak connection requests | {:.0} /s ({} in {:.0} ms) |",
            r.peak_connect_rate_per_s, r.peak_window_requests, r.peak_window_ms
        );
        let _ = writeln!(
            out,
            "| connection requests until all registered | {} |",
            r.connect_requests
        );
        let shape: Vec<String> = r
            .windows
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(at, n)| format!("{:+.1} s: {n}", at / 1e3))
            .collect();
        let _ = writeln!(
            out,
            "\nConnection requests per window of about 100 ms (its start, from ZooKeeper answering again; empty windows left out): {}.",
            shape.join(", ")
        );
    }
    out
}
