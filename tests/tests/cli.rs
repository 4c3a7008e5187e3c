//! Bad input through the real binaries: exit code 2, every problem named, nothing started.

use std::net::TcpListener;
use std::process::Command;

use scenarios::bin;

fn run(binary: &str, args: &[&str]) -> (Option<i32>, String) {
    run_with_env(binary, args, &[])
}

/// Runs `binary` with `env` as its only FLUME_WATCHDOG_*/FLUME_WATCHER_* variables, so that the
/// environment of whoever runs the tests cannot change them.
fn run_with_env(binary: &str, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = Command::new(bin(binary));
    for (var, _) in std::env::vars_os() {
        let name = var.to_string_lossy();
        if name.starts_with("FLUME_WATCHDOG_") || name.starts_with("FLUME_WATCHER_") {
            cmd.env_remove(&var);
        }
    }
    let out = cmd
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("run {binary}: {e}"));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_watchdog_lists_every_problem_and_starts_nothing() {
    let marker = std::env::temp_dir().join(format!("flume-watchdog-cli-{}", std::process::id()));
    let touch = format!("touch {}", marker.display());
    let (code, stderr) = run(
        "flume-watchdog",
        &[
            "run",
            "--zk",
            "zk1:notaport",
            "--root",
            "relative",
            "--id",
            "bad id",
            "--label",
            "nokey",
            "--",
            "sh",
            "-c",
            &touch,
        ],
    );
    assert_eq!(code, Some(2), "{stderr}");
    for problem in ["invalid port", "--root", "--id", "--label"] {
        assert!(
            stderr.contains(problem),
            "{problem:?} not named in:\n{stderr}"
        );
    }
    assert!(!marker.exists(), "the agent must not have been started");
}

#[test]
fn unknown_flags_and_bad_durations_are_refused() {
    let (code, stderr) = run(
        "flume-watchdog",
        &["run", "--zk", "127.0.0.1:2181", "--bogus", "--", "true"],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--bogus"), "{stderr}");
    let (code, stderr) = run(
        "flume-watcher",
        &[
            "run",
            "--zk",
            "127.0.0.1:2181",
            "--console",
            "--recovered-after",
            "soon",
        ],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("500ms"),
        "the error shows how to write a duration:\n{stderr}"
    );
}

#[test]
fn the_watcher_needs_a_channel_and_a_valid_root() {
    let (code, stderr) = run(
        "flume-watcher",
        &["run", "--zk", "127.0.0.1:2181", "--root", "nope/"],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("no alert channel") && stderr.contains("--root"),
        "{stderr}"
    );
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
/// the documented ones, and not the other binary's.
#[test]
fn each_binary_reads_its_own_zookeeper_variables() {
    for (binary, command) in [
        (
            "flume-watchdog",
            &["stop", "--id", "a1", "--wait", "1s"][..],
        ),
        ("flume-watchdog", &["run", "--id", "a1", "--", "true"][..]),
        ("flume-watcher", &["status"][..]),
        ("flume-watcher", &["run", "--console"][..]),
    ] {
        let own = prefix(binary);
        let other = prefix(if binary == "flume-watchdog" {
            "flume-watcher"
        } else {
            "flume-watchdog"
        });
        let var = |name: &str| format!("{own}_{name}");
        let zk = var("ZK");
        let bad = [
            (var("ZK"), "envzk::"),
            (var("ROOT"), "envroot"),
            (var("ZK_ACL"), "envgrant"),
            (var("ZK_AUTH_FILE"), "/nonexistent/envfile"),
        ];
        let env: Vec<(&str, &str)> = bad.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let (code, stderr) = run_with_env(binary, command, &env);
        assert_eq!(code, Some(2), "{binary} {command:?}: {stderr}");
        for (var, value) in &bad {
            assert!(
                stderr.contains(value),
                "{binary} {command:?}: {var}={value} not used:\n{stderr}"
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
        let (code, stderr) = run_with_env(binary, command, &[(&format!("{other}_ZK"), "z:1")]);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(
            stderr.contains("--zk <ZK>"),
            "{binary} must not read {other}_ZK:\n{stderr}"
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
        let (code, stderr) = run_with_env(
            binary,
            &[command, &["--session-timeout", "1s"]].concat(),
            &[(&zk, &trap.connect_string())],
        );
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

#[test]
fn help_names_every_variable_and_exits_0() {
    const ZK: &str = "ZK ROOT SESSION_TIMEOUT ZK_AUTH ZK_AUTH_FILE ZK_ACL";
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
        let vars = ZK.split(' ').chain(own.split_whitespace());
        let out = Command::new(bin(binary))
            .args([sub, "--help"])
            .output()
            .expect("run --help");
        let help = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{binary} {sub} --help");
        for var in vars {
            let env = format!("[env: {}_{var}", prefix(binary));
            assert!(
                help.contains(&format!("{env}=")) || help.contains(&format!("{env}]")),
                "{binary} {sub} --help lacks {env}:\n{help}"
            );
        }
    }
    for binary in ["flume-watchdog", "flume-watcher"] {
        let out = Command::new(bin(binary))
            .arg("--version")
            .output()
            .expect("run --version");
        assert_eq!(out.status.code(), Some(0), "{binary} --version");
        assert!(String::from_utf8_lossy(&out.stdout).starts_with(binary));
    }
}
