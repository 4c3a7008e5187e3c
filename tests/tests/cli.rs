//! Bad input through the real binaries: exit code 2, every problem named, nothing started.

use std::net::TcpListener;
use std::process::{Command, Output};

use scenarios::bin;

fn run(binary: &str, args: &[&str]) -> (Option<i32>, String) {
    run_with_env(binary, args, &[])
}

fn run_with_env(binary: &str, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let out = output(binary, args, env);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `binary` with `env` as its only FLUME_WATCHDOG_*/FLUME_WATCHER_* variables, so that the
/// environment of whoever runs the tests cannot change what it does.
fn output(binary: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(bin(binary));
    for (var, _) in std::env::vars_os() {
        let name = var.to_string_lossy();
        if name.starts_with("FLUME_WATCHDOG_") || name.starts_with("FLUME_WATCHER_") {
            cmd.env_remove(&var);
        }
    }
    cmd.args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("run {binary}: {e}"))
}

/// Asserts that the flags were refused as bad flags are (exit code 2), with each of `problems`
/// named in stderr, and a pointer to the help after them.
fn assert_refused(what: &str, (code, stderr): &(Option<i32>, String), problems: &[&str]) {
    assert_eq!(*code, Some(2), "{what}:\n{stderr}");
    for problem in problems {
        assert!(
            stderr.contains(problem),
            "{what}: {problem:?} not named in:\n{stderr}"
        );
    }
    assert!(
        stderr.trim_end().ends_with(" --help'."),
        "{what}: no pointer to the help:\n{stderr}"
    );
}

/// Bad command lines for every command of both binaries, several problems each, with a good
/// connect string to a port that counts connections: every problem is listed, and nothing is
/// started — no agent, no ZooKeeper session.
#[test]
fn every_command_lists_every_problem_and_starts_nothing() {
    let marker = std::env::temp_dir().join(format!("flume-watchdog-cli-{}", std::process::id()));
    let touch = format!("touch {}", marker.display());
    let cases: [(&str, &[&str], &[&str]); 4] = [
        (
            "flume-watchdog",
            &[
                "run",
                "--zk",
                "ZK",
                "--bogus",
                "--session-timeout",
                "xyz",
                "--stop-timeout",
                "soon",
                "--root",
                "relative",
                "--id",
                "no/slash",
                "--label",
                "nokey",
                "--max-restarts",
                "3",
                "--backoff-initial",
                "-1s",
                "--",
                "sh",
                "-c",
                &touch,
            ],
            &[
                "unexpected argument '--bogus'",
                "invalid value 'xyz' for '--session-timeout",
                "invalid value 'soon' for '--stop-timeout",
                "--root: root \"relative\"",
                "--id: agent id \"no/slash\"",
                "--label \"nokey\"",
                "--max-restarts and --restart-window",
                "invalid value '-1s' for '--backoff-initial <BACKOFF_INITIAL>': \
                 a duration cannot be negative",
            ],
        ),
        (
            "flume-watchdog",
            &[
                "stop", "--zk", "ZK", "--id", "bad id", "--wait", "never", "--root", "rel",
                "--zk-acl", "nobody", "--bogus",
            ],
            &[
                "unexpected argument '--bogus'",
                "invalid value 'never' for '--wait",
                "--id: agent id \"bad id\"",
                "--root: root \"rel\"",
                // stop creates no node: the ACL of created nodes is not its flag.
                "unexpected argument '--zk-acl'",
            ],
        ),
        (
            "flume-watcher",
            &[
                "run",
                "--zk",
                "ZK",
                "--webhook",
                "not a url",
                "--dingtalk",
                "https://oapi.dingtalk.com/robot/send?access_token=T0K3N;secret=S3CR3T",
                "--recovered-after",
                "soon",
                "--retry-initial",
                "0s",
                "--bogus",
                "--root",
                "nope/",
            ],
            &[
                "unexpected argument '--bogus'",
                "invalid value 'not a url' for '--webhook",
                "invalid value 'https://oapi.dingtalk.com/robot/send?access_token=***;secret=***' \
                 for '--dingtalk <URL[,secret=S]>': the secret must follow the URL after a comma: \
                 write URL,secret=S",
                "invalid value 'soon' for '--recovered-after",
                "--retry-initial must be more than 0",
                "--root: root \"nope/\"",
            ],
        ),
        (
            "flume-watcher",
            &[
                "status",
                "--zk",
                "ZK",
                "--root",
                "rel",
                "--session-timeout",
                "1ms",
                "--json",
                "--bogus",
            ],
            &[
                "unexpected argument '--bogus'",
                "--root: root \"rel\"",
                // status holds no session past its end: the timeout is not its flag.
                "unexpected argument '--session-timeout'",
            ],
        ),
    ];
    for (binary, args, problems) in cases {
        let trap = ZkTrap::new();
        let zk = trap.connect_string();
        let args: Vec<&str> = args
            .iter()
            .map(|&a| if a == "ZK" { zk.as_str() } else { a })
            .collect();
        let what = format!("{binary} {args:?}");
        let refused = run(binary, &args);
        assert_refused(&what, &refused, problems);
        let lines = refused.1.lines();
        let listed = lines
            .filter(|l| l.starts_with(&format!("{binary}: ")))
            .count();
        assert_eq!(
            listed,
            problems.len(),
            "{what}: one line per problem:\n{}",
            refused.1
        );
        assert_eq!(trap.connections(), 0, "{what}: ZooKeeper was contacted");
        for secret in ["T0K3N", "S3CR3T"] {
            assert!(
                !refused.1.contains(secret),
                "{what}: shows {secret}:\n{}",
                refused.1
            );
        }
    }
    assert!(!marker.exists(), "the agent must not have been started");
}

/// The command line of the issue, through both binaries.
#[test]
fn the_issues_example_is_answered_in_full() {
    let args = [
        "run",
        "--zk",
        "bad::",
        "--bogus",
        "--session-timeout",
        "xyz",
        "--id",
        "no/slash",
        "--",
        "x",
    ];
    let common = [
        "unexpected argument '--bogus'",
        "invalid value 'xyz' for '--session-timeout",
        "write durations like 500ms",
        "invalid ZooKeeper connect string \"bad::\"",
    ];
    let watchdog = run("flume-watchdog", &args);
    assert_refused("flume-watchdog", &watchdog, &common);
    assert_refused(
        "flume-watchdog",
        &watchdog,
        &["--id: agent id \"no/slash\""],
    );
    // The watcher has no --id, and no positional arguments.
    let watcher = run("flume-watcher", &args);
    assert_refused("flume-watcher", &watcher, &common);
    assert_refused(
        "flume-watcher",
        &watcher,
        &[
            "unexpected argument '--id'",
            "unexpected argument 'x'",
            "no alert channel",
        ],
    );
    assert!(!watcher.1.contains("no/slash"), "{}", watcher.1);
}

/// `FLUME_WATCHDOG` for `flume-watchdog`: what its environment variables start with.
fn prefix(binary: &str) -> String {
    binary.to_uppercase().replace('-', "_")
}

/// A port where nothing speaks ZooKeeper but every connection is counted.
struct ZkTrap(TcpListener);

impl ZkTrap {
    fn new() -> ZkTrap {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        listener.set_nonblocking(true).expect("non-blocking");
        ZkTrap(listener)
    }

    fn connect_string(&self) -> String {
        self.0.local_addr().expect("local address").to_string()
    }

    /// Connections made so far: the kernel completes them without the test accepting, so they
    /// are all queued, also from a process that has exited.
    fn connections(&self) -> usize {
        std::iter::from_fn(|| self.0.accept().ok()).count()
    }
}

/// The ZooKeeper flags are defined once for both binaries; each must still read its own variables,
/// the documented ones, and not the other binary's. The one-shot commands (`stop`, `status`) read
/// only the connection's: the session timeout and the ACL belong to `run`.
#[test]
fn each_binary_reads_its_own_zookeeper_variables() {
    for (binary, command, stays) in [
        (
            "flume-watchdog",
            &["stop", "--id", "a1", "--wait", "1s"][..],
            false,
        ),
        (
            "flume-watchdog",
            &["run", "--id", "a1", "--", "true"][..],
            true,
        ),
        ("flume-watcher", &["status"][..], false),
        ("flume-watcher", &["run", "--console"][..], true),
    ] {
        let own = prefix(binary);
        let other = prefix(if binary == "flume-watchdog" {
            "flume-watcher"
        } else {
            "flume-watchdog"
        });
        let var = |name: &str| format!("{own}_{name}");
        let zk = var("ZK");
        let what = format!("{binary} {command:?}");
        let timeout = var("SESSION_TIMEOUT");
        let bad = [
            (var("ZK"), "envzk::"),
            (var("ROOT"), "envroot"),
            (var("ZK_AUTH_FILE"), "/nonexistent/envfile"),
            (var("ZK_ACL"), "envgrant"),
            (timeout.clone(), "envsoon"),
        ];
        let env: Vec<(&str, &str)> = bad.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let named = format!("(from {timeout})");
        let (read, unread) = bad.split_at(if stays { bad.len() } else { 3 });
        let mut problems: Vec<&str> = read.iter().map(|(_, v)| *v).collect();
        if stays {
            problems.extend([
                "invalid value 'envsoon' for '--session-timeout <SESSION_TIMEOUT>'",
                &named,
            ]);
        }
        let refused = run_with_env(binary, command, &env);
        assert_refused(&what, &refused, &problems);
        for (var, value) in unread {
            assert!(
                !refused.1.contains(value),
                "{what} read {var}:\n{}",
                refused.1
            );
        }
        let (_, stderr) = run_with_env(
            binary,
            command,
            &[(&zk, "envzk::"), (&var("ZK_AUTH"), "nocolon")],
        );
        assert!(
            stderr.contains("--zk-auth: it has no ':'") && !stderr.contains("nocolon"),
            "{binary} {command:?}:\n{stderr}"
        );
        assert_refused(
            &format!("{what} with only {other}_ZK"),
            &run_with_env(binary, command, &[(&format!("{other}_ZK"), "z:1")]),
            &["the following required arguments were not provided: --zk <ZK>"],
        );
    }
    // And a good connect string from the variable alone is where the short-lived commands go.
    for (binary, command) in [
        (
            "flume-watchdog",
            &["stop", "--id", "a1", "--wait", "1s"][..],
        ),
        ("flume-watcher", &["status"][..]),
    ] {
        let trap = ZkTrap::new();
        let zk = format!("{}_ZK", prefix(binary));
        let (code, stderr) = run_with_env(binary, command, &[(&zk, &trap.connect_string())]);
        assert_eq!(code, Some(1), "{binary}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "cannot reach ZooKeeper at {}",
                trap.connect_string()
            )),
            "{binary}: {stderr}"
        );
        assert!(trap.connections() > 0, "{binary} did not try {zk}");
    }
}

/// FLUME_WATCHER_WEBHOOK and FLUME_WATCHER_DINGTALK hold lists separated by spaces, while a
/// flag's value is one URL: the variable is split, the flag is not.
#[test]
fn a_channel_variable_is_a_list_and_a_channel_flag_one_url() {
    let two = "http://127.0.0.1:9/a http://127.0.0.1:9/b";
    let robot = "https://oapi.dingtalk.com/robot/send?access_token=T0K3N";
    let robots = format!("{robot},secret=S3CR3T {robot}");
    // Two good URLs in each variable: the only problem left is the connect string.
    let (code, stderr) = run_with_env(
        "flume-watcher",
        &["run", "--zk", "bad::"],
        &[
            ("FLUME_WATCHER_WEBHOOK", two),
            ("FLUME_WATCHER_DINGTALK", &robots),
        ],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.starts_with("flume-watcher: "))
            .count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains("\"bad::\""), "{stderr}");
    // A bad one in the variable is named alone, with the variable.
    let refused = run_with_env(
        "flume-watcher",
        &["run", "--zk", "z:1"],
        &[("FLUME_WATCHER_WEBHOOK", "http://127.0.0.1:9/a not-a-url")],
    );
    assert_refused(
        "a bad URL in the variable",
        &refused,
        &[
            "invalid value 'not-a-url' for '--webhook <URL>'",
            "(from FLUME_WATCHER_WEBHOOK)",
        ],
    );
    // The same list in one flag is one value, refused whole.
    let refused = run("flume-watcher", &["run", "--zk", "z:1", "--webhook", two]);
    assert_refused(
        "two URLs in one flag",
        &refused,
        &[&format!("invalid value '{two}' for '--webhook <URL>'")],
    );
    let refused = run(
        "flume-watcher",
        &["run", "--zk", "z:1", "--dingtalk", &robots],
    );
    assert_refused(
        "two robots in one flag",
        &refused,
        &["give one --dingtalk per URL"],
    );
    assert!(
        !refused.1.contains("T0K3N") && !refused.1.contains("S3CR3T"),
        "{}",
        refused.1
    );
}

/// A pipe whose reader is gone, as a command's stdout or stderr.
fn closed_pipe() -> std::io::PipeWriter {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    writer
}

/// Runs `flume-watchdog args` with stdout and stderr closed pipes; its exit code.
fn exit_code_unread(args: &[&str]) -> Option<i32> {
    Command::new(bin("flume-watchdog"))
        .args(args)
        .env_remove("FLUME_WATCHDOG_ZK")
        .stdout(closed_pipe())
        .stderr(closed_pipe())
        .status()
        .unwrap_or_else(|e| panic!("run flume-watchdog {args:?}: {e}"))
        .code()
}

/// `flume-watchdog` must say what happened by its exit code even when nobody reads what it
/// writes: a closed pipe on stdout and stderr (a reader that went away) is no reason to panic
/// (exit 101).
#[test]
fn a_closed_output_changes_no_exit_code() {
    // A port where nothing listens: stop fails, and says so on stderr, without a log line.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .to_string();
    for (args, code) in [
        (&["run", "--bogus"][..], 2),
        (
            &["stop", "--zk", port.as_str(), "--id", "a1", "--wait", "1s"],
            1,
        ),
    ] {
        assert_eq!(
            exit_code_unread(args),
            Some(code),
            "flume-watchdog {args:?}"
        );
    }
}

/// The same, when the command logs a warning first (ZooKeeper does not answer): tracing's
/// subscriber used to report its own failed write with `eprintln!`, which panics on the closed
/// stderr (`common::logging` turns that report off and drops what it cannot write).
#[test]
fn a_closed_output_changes_no_exit_code_after_a_log_line() {
    let trap = ZkTrap::new();
    let zk = trap.connect_string();
    let args = ["stop", "--zk", zk.as_str(), "--id", "a1", "--wait", "1s"];
    assert_eq!(exit_code_unread(&args), Some(1), "flume-watchdog {args:?}");
    assert!(trap.connections() > 0, "stop did not try ZooKeeper");
}

#[test]
fn help_names_every_variable_and_exits_0() {
    const ZK: &str = "ZK ROOT ZK_AUTH ZK_AUTH_FILE";
    const STAYS: &str = "SESSION_TIMEOUT ZK_ACL";
    for (binary, sub, own) in [
        (
            "flume-watchdog",
            "run",
            "ID LABELS STOP_TIMEOUT MAX_RESTARTS RESTART_WINDOW BACKOFF_INITIAL BACKOFF_MAX BACKOFF_RESET",
        ),
        ("flume-watchdog", "stop", "ID"),
        (
            "flume-watcher",
            "run",
            "WEBHOOK DINGTALK CONSOLE RECOVERED_AFTER BLIND_AFTER RETRY_INITIAL RETRY_MAX",
        ),
        ("flume-watcher", "status", ""),
    ] {
        let stays = sub == "run";
        let vars = ZK
            .split(' ')
            .chain(STAYS.split(' ').filter(|_| stays))
            .chain(own.split_whitespace());
        let out = output(binary, &[sub, "--help"], &[]);
        let help = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{binary} {sub} --help");
        for var in vars {
            let env = format!("[env: {}_{var}", prefix(binary));
            assert!(
                help.contains(&format!("{env}=")) || help.contains(&format!("{env}]")),
                "{binary} {sub} --help lacks {env}:\n{help}"
            );
        }
        for flag in ["--session-timeout", "--zk-acl"] {
            assert_eq!(help.contains(flag), stays, "{binary} {sub} --help:\n{help}");
        }
    }
    for binary in ["flume-watchdog", "flume-watcher"] {
        let out = output(binary, &["--version"], &[]);
        assert_eq!(out.status.code(), Some(0), "{binary} --version");
        assert!(String::from_utf8_lossy(&out.stdout).starts_with(binary));
    }
}

/// After the options, every help shows how to call the command, what its exit codes mean and how
/// to write a duration.
#[test]
fn help_ends_with_examples_exit_codes_and_durations() {
    let durations = "Durations: 500ms, 10s, 2m, 1h 30m (no negative values).";
    let bad_flags = "  2  bad flags (every problem is listed)";
    let cases: [(&str, &[&str], &[&str]); 6] = [
        (
            "flume-watchdog",
            &["run", "--help"],
            &[
                "flume-watchdog run --zk zk1:2181,zk2:2181/kafka -- flume-ng agent",
                "  0  stopped as asked",
                bad_flags,
                "  3  gave up after --max-restarts",
                "  4  the id is live elsewhere",
                durations,
            ],
        ),
        (
            "flume-watchdog",
            &["stop", "--help"],
            &[
                "flume-watchdog stop --zk zk1:2181,zk2:2181/kafka --id web7-a1",
                "  0  stopped",
                "  1  timed out (still live after --wait) or failed",
                bad_flags,
                durations,
            ],
        ),
        (
            "flume-watchdog",
            &["--help"],
            &[
                "flume-watchdog run --zk",
                "flume-watchdog stop --zk",
                "  4  the id is live elsewhere",
                "  1  timed out",
                durations,
            ],
        ),
        (
            "flume-watcher",
            &["run", "--help"],
            &[
                "flume-watcher run --zk zk1:2181,zk2:2181/kafka --webhook https://alerts.example/hook",
                "  0  stopped by SIGTERM or SIGINT",
                "  1  could not start",
                bad_flags,
                durations,
            ],
        ),
        (
            "flume-watcher",
            &["status", "--help"],
            &[
                "flume-watcher status --zk zk1:2181,zk2:2181/kafka",
                "  0  ok",
                "  1  cannot read (ZooKeeper unreachable, not authorized, or the root does not exist)",
                bad_flags,
            ],
        ),
        (
            "flume-watcher",
            &["--help"],
            &[
                "flume-watcher run --zk",
                "flume-watcher status --zk",
                "  1  could not start",
                "  1  cannot read",
                durations,
            ],
        ),
    ];
    // A variable's value stays out of the help: the channels' hold tokens and secrets.
    let env = [(
        "FLUME_WATCHER_DINGTALK",
        "https://oapi.dingtalk.com/robot/send?access_token=T0K3N,secret=S3CR3T",
    )];
    for (binary, args, wants) in cases {
        let out = output(binary, args, &env);
        let help = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{binary} {args:?}");
        let after_options = help.split("Options:").nth(1).unwrap_or_default();
        for want in wants {
            assert!(
                after_options.contains(want),
                "{binary} {args:?}: {want:?} missing after the options:\n{help}"
            );
        }
        assert!(
            !help.contains("T0K3N") && !help.contains("S3CR3T"),
            "{help}"
        );
    }
}
