//! Bad input through the real binaries: exit code 2, every problem named, nothing started.

use std::process::Command;

use scenarios::bin;

fn run(binary: &str, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(bin(binary))
        .args(args)
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
