//! Where the binaries log when systemd's `JOURNAL_STREAM` is set: to journald only when it names
//! the very file stderr is, and never a failure when journald cannot be reached.

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::process::{Command, Stdio};

use scenarios::{bin, deadline, TempDir};

const SOCKET: &str = "/run/systemd/journal/socket";
const FALLBACK: &str = "journald's socket cannot be used: logging to stderr";

/// `flume-watcher config example` with stderr a file and `JOURNAL_STREAM` set to `value(file's
/// dev, file's inode)`: its exit status, stdout and what reached the file.
fn run_with_journal_stream(value: impl Fn(u64, u64) -> String) -> (bool, String, String) {
    let dir = TempDir::new("journald");
    let path = dir.join("stderr");
    let file = std::fs::File::create(&path).unwrap();
    let meta = file.metadata().unwrap();
    let mut cmd = Command::new(bin("flume-watcher"));
    cmd.args(["config", "example"])
        .env("JOURNAL_STREAM", value(meta.dev(), meta.ino()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(file));
    let mut child = cmd.spawn().expect("start flume-watcher");
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut s);
        s
    });
    let end = deadline(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() >= end {
            let _ = child.kill();
            panic!("flume-watcher config example did not end within 20 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let out = reader.join().unwrap();
    (
        status.success(),
        out,
        std::fs::read_to_string(&path).unwrap(),
    )
}

#[test]
fn journal_stream_naming_stderr_without_journald_logs_to_stderr_with_a_warning() {
    let (ok, out, err) = run_with_journal_stream(|dev, ino| format!("{dev}:{ino}"));
    assert!(ok, "it must still work; stderr:\n{err}");
    assert!(out.contains("[zookeeper]"), "the example on stdout:\n{out}");
    if Path::new(SOCKET).exists() {
        // A machine with journald: the lines went there, none to stderr.
        assert!(!err.contains(FALLBACK), "{err}");
    } else {
        assert!(
            err.contains("WARN") && err.contains(FALLBACK),
            "no warning about the missing journal on stderr:\n{err}"
        );
    }
}

#[test]
fn journal_stream_naming_another_file_is_not_the_journal() {
    let (ok, _, err) = run_with_journal_stream(|dev, ino| format!("{dev}:{}", ino + 1));
    assert!(ok);
    assert!(
        !err.contains(FALLBACK),
        "stderr is not the journal, yet journald was tried:\n{err}"
    );
}
