//! The unit files in systemd/ as systemd reads them, and as they must be for the binaries they
//! run: `systemd-analyze verify` finds nothing to say about either, and their stop and readiness
//! settings agree with how the binaries stop and what they send.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use scenarios::tools::{link_or_copy, repo_root, run, systemd_root, verify_units};
use scenarios::{bin, deadline, TempDir};

const WATCHDOG_UNIT: &str = "flume-watchdog@.service";
const WATCHER_UNIT: &str = "flume-watcher.service";

/// A scratch root with systemd's own units, ours as an administrator installs them, and the built
/// binaries at the paths the units run (/usr/bin, where the .deb puts them).
fn root_with_units() -> TempDir {
    let root = TempDir::new("systemd-root");
    systemd_root(root.path());
    for unit in [WATCHDOG_UNIT, WATCHER_UNIT] {
        let dst = root.join("etc/systemd/system").join(unit);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(repo_root().join("systemd").join(unit), &dst).unwrap();
    }
    for name in ["flume-watchdog", "flume-watcher"] {
        link_or_copy(&bin(name), &root.join("usr/bin").join(name));
    }
    root
}

#[test]
fn systemd_analyze_verify_finds_nothing_wrong_with_either_unit() {
    let root = root_with_units();
    let problems = verify_units(root.path(), &[WATCHER_UNIT, "flume-watchdog@a1.service"]);
    assert!(
        problems.is_empty(),
        "systemd-analyze verify:\n{}",
        problems.join("\n")
    );
}

/// The check above cannot pass by not looking: the same root with one misspelt value and one
/// binary missing is reported, each by its unit.
#[test]
fn systemd_analyze_verify_reports_a_broken_unit() {
    let root = root_with_units();
    let unit = root.join("etc/systemd/system").join(WATCHER_UNIT);
    let text = std::fs::read_to_string(&unit).unwrap();
    std::fs::write(
        &unit,
        text.replace("ProtectSystem=strict", "ProtectSystem=strikt"),
    )
    .unwrap();
    std::fs::remove_file(root.join("usr/bin/flume-watchdog")).unwrap();
    let problems = verify_units(root.path(), &[WATCHER_UNIT, "flume-watchdog@a1.service"]);
    let all = problems.join("\n");
    assert!(
        problems
            .iter()
            .any(|p| p.contains("flume-watcher.service") && p.contains("strikt")),
        "the misspelt ProtectSystem is not reported:\n{all}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("flume-watchdog@a1.service")
                && p.contains("/usr/bin/flume-watchdog")),
        "the missing binary is not reported:\n{all}"
    );
}

/// `[Service]` of a unit file: key → values in order (a key may repeat).
fn service_section(unit: &str) -> BTreeMap<String, Vec<String>> {
    let text = std::fs::read_to_string(repo_root().join("systemd").join(unit)).unwrap();
    let mut section = String::new();
    let mut keys: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if line.starts_with('[') {
            section = line.to_owned();
        } else if section == "[Service]" {
            let (k, v) = line.split_once('=').expect("key=value");
            keys.entry(k.to_owned()).or_default().push(v.to_owned());
        }
    }
    keys
}

fn one<'a>(keys: &'a BTreeMap<String, Vec<String>>, key: &str, unit: &str) -> &'a str {
    match keys.get(key).map(Vec::as_slice) {
        Some([v]) => v,
        other => panic!("{unit}: expected one {key}=, found {other:?}"),
    }
}

fn seconds(value: &str) -> u64 {
    value
        .strip_suffix('s')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a plain seconds value: {value}"))
}

/// Readiness and liveness come from the main process only (the agent, a child, must not speak for
/// the watchdog), with a watchdog timeout; the stop is the binaries' own graceful one: SIGTERM to
/// the main process alone (mixed), SIGKILL for the rest only after it had its time.
#[test]
fn both_units_are_notify_services_stopped_by_sigterm_to_the_main_process() {
    for unit in [WATCHDOG_UNIT, WATCHER_UNIT] {
        let keys = service_section(unit);
        assert_eq!(one(&keys, "Type", unit), "notify", "{unit}");
        assert_eq!(one(&keys, "NotifyAccess", unit), "main", "{unit}");
        assert!(seconds(one(&keys, "WatchdogSec", unit)) >= 10, "{unit}");
        assert_eq!(one(&keys, "KillMode", unit), "mixed", "{unit}");
        assert_eq!(one(&keys, "KillSignal", unit), "SIGTERM", "{unit}");
        assert_eq!(one(&keys, "NoNewPrivileges", unit), "yes", "{unit}");
        assert_eq!(one(&keys, "PrivateTmp", unit), "yes", "{unit}");
        let exec = one(&keys, "ExecStart", unit);
        let program = exec.split_whitespace().next().unwrap();
        let name = Path::new(program).file_name().unwrap().to_str().unwrap();
        assert_eq!(
            program,
            format!("/usr/bin/{name}"),
            "{unit}: where the .deb installs it"
        );
    }
}

/// systemd SIGKILLs what is left `TimeoutStopSec` after its SIGTERM; the watchdog gives its agent
/// `--stop-timeout` between SIGTERM and SIGKILL. The unit must wait longer, or systemd kills the
/// agent first (and a Flume file channel is not closed cleanly).
#[test]
fn the_watchdog_unit_waits_longer_than_the_watchdogs_stop_timeout() {
    let keys = service_section(WATCHDOG_UNIT);
    let unit_timeout = seconds(one(&keys, "TimeoutStopSec", WATCHDOG_UNIT));
    let mut help = Command::new(bin("flume-watchdog"));
    help.args(["run", "--help"]);
    let help = run(help, "flume-watchdog run --help", deadline(20)).ok("flume-watchdog run --help");
    let stop_timeout = help
        .stdout
        .split("--stop-timeout")
        .nth(1)
        .and_then(|rest| rest.split("[default: ").nth(1))
        .and_then(|rest| rest.split(']').next())
        .map(seconds)
        .unwrap_or_else(|| panic!("no --stop-timeout default in:\n{}", help.stdout));
    assert!(
        unit_timeout >= stop_timeout + 10,
        "TimeoutStopSec={unit_timeout}s leaves no margin over --stop-timeout {stop_timeout}s"
    );
    let env =
        std::fs::read_to_string(repo_root().join("systemd/flume-watchdog.env.example")).unwrap();
    assert!(
        env.contains(&format!("#FLUME_WATCHDOG_STOP_TIMEOUT={stop_timeout}s"))
            && env.contains(&format!("TimeoutStopSec ({unit_timeout}s)")),
        "the example environment file names other values than the unit and the binary"
    );
}

/// The watchdog's unit keeps Flume's default writable places writable under ProtectSystem=strict:
/// the flume user's home (file channel, taildir positions), its log directory and FLUME_HOME/logs.
#[test]
fn the_watchdog_unit_leaves_flumes_default_paths_writable() {
    let keys = service_section(WATCHDOG_UNIT);
    assert_eq!(one(&keys, "ProtectSystem", WATCHDOG_UNIT), "strict");
    assert_eq!(one(&keys, "StateDirectory", WATCHDOG_UNIT), "flume");
    assert_eq!(one(&keys, "LogsDirectory", WATCHDOG_UNIT), "flume");
    let rw = keys
        .get("ReadWritePaths")
        .cloned()
        .unwrap_or_default()
        .join(" ");
    assert!(
        rw.split_whitespace().any(|p| p == "-/opt/flume/logs"),
        "{rw}"
    );
    assert!(
        !keys.contains_key("MemoryDenyWriteExecute"),
        "the JVM's JIT needs writable and executable memory"
    );
}
