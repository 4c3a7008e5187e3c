//! The exec channel against real shell scripts, written to a temporary directory by each test:
//! what reaches their stdin, how their exit codes are judged, a run past its timeout killed with
//! its children, and output cut in the log.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use watcher::channels::{Channel, DeliveryError, ExecChannel, ExecConfig};
use watcher::notify::Notifier;

mod support;
use support::{alert, stop, wait_stats, FAST};

const WAIT: Duration = Duration::from_secs(10);
/// A directory of its own for one test, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Scratch {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "exec-{test}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        Scratch(dir)
    }

    /// An executable `/bin/sh` script named `name` with `body`.
    fn script(&self, name: &str, body: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write the script");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path.to_string_lossy().into_owned()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn exec(script: &str, timeout: &str, env: &[(&str, &str)]) -> ExecChannel {
    let env: BTreeMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let config = ExecConfig::new(vec![script.to_owned()], Some(timeout), env)
        .unwrap_or_else(|p| panic!("a valid exec channel: {p:?}"));
    ExecChannel::new(config)
}

fn notifier(channel: ExecChannel, cancel: &CancellationToken) -> Notifier {
    let mut notifier = Notifier::new(FAST, cancel.clone());
    assert!(notifier.add_channel(channel));
    notifier
}

fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("the script's stdin copy {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("stdin was not JSON ({e}): {text}"))
}

#[tokio::test]
async fn the_alerts_arrive_on_stdin_as_the_webhooks_json() {
    let dir = Scratch::new("stdin");
    let out = dir.path("stdin.json");
    let script = dir.script("save.sh", "cat > \"$OUT\"");
    let channel = exec(&script, "10s", &[("OUT", &out.to_string_lossy())]);
    assert_eq!(
        channel.name().rsplit_once(" #").map(|(n, _)| n),
        Some(format!("exec {script}").as_str())
    );
    let cancel = CancellationToken::new();
    let notifier = notifier(channel, &cancel);

    notifier.send(vec![alert("a1"), alert("a2")]);
    let stats = wait_stats(&notifier, WAIT, "delivered == 2", |s| s.delivered == 2).await;
    assert_eq!(
        (stats.retries, stats.failed_permanently),
        (0, 0),
        "{stats:?}"
    );
    let v = read_json(&out);
    let alerts = v["alerts"].as_array().expect("an alerts array");
    assert_eq!(alerts.len(), 2, "{v}");
    assert_eq!(alerts[0]["id"], "a1/down/2025-11-21T04:40:00.123Z", "{v}");
    assert_eq!(alerts[0]["event"], "down", "{v}");
    assert_eq!(alerts[0]["agent"], "a1", "{v}");
    assert_eq!(alerts[0]["reason"], "killed by SIGKILL", "{v}");
    assert_eq!(alerts[1]["agent"], "a2", "{v}");
    stop(&notifier, &cancel, WAIT).await;
}

#[tokio::test]
async fn exit_75_is_retried_then_delivered() {
    let dir = Scratch::new("tempfail");
    let script = dir.script(
        "flaky.sh",
        "if [ -e \"$DIR/tried\" ]; then cat > \"$DIR/stdin.json\"; exit 0; fi\n\
         touch \"$DIR/tried\"; cat > /dev/null; echo 'gateway busy' >&2; exit 75",
    );
    let channel = exec(&script, "10s", &[("DIR", &dir.0.to_string_lossy())]);
    let cancel = CancellationToken::new();
    let notifier = notifier(channel, &cancel);

    notifier.send(vec![alert("a1")]);
    let stats = wait_stats(&notifier, WAIT, "delivered == 1", |s| s.delivered == 1).await;
    assert_eq!(
        (stats.retries, stats.failed_permanently),
        (1, 0),
        "{stats:?}"
    );
    assert_eq!(
        read_json(&dir.path("stdin.json"))["alerts"][0]["agent"],
        "a1"
    );
    stop(&notifier, &cancel, WAIT).await;
}

#[tokio::test]
async fn exit_1_is_permanent_and_counted() {
    let dir = Scratch::new("fail");
    let script = dir.script(
        "broken.sh",
        "cat > /dev/null; echo \"no credit left for $KEY\" >&2; exit 1",
    );
    let cancel = CancellationToken::new();
    let notifier = notifier(exec(&script, "10s", &[("KEY", "K3YSECRET")]), &cancel);

    notifier.send(vec![alert("a1")]);
    let stats = wait_stats(&notifier, WAIT, "failed_permanently == 1", |s| {
        s.failed_permanently == 1
    })
    .await;
    assert_eq!((stats.delivered, stats.retries), (0, 0), "{stats:?}");
    stop(&notifier, &cancel, WAIT).await;

    // The error as the notifier logs it: the code and stderr, the variable's value scrubbed.
    let err = exec(&script, "10s", &[("KEY", "K3YSECRET")])
        .deliver(&[alert("a1")])
        .await
        .expect_err("exit 1");
    assert_eq!(
        err,
        DeliveryError::Permanent(format!(
            "{script} exited with code 1: no credit left for ***"
        ))
    );
}

/// Processes whose environment holds `marker`: the script and every child it started.
fn marked_processes(marker: &str) -> Vec<String> {
    let needle = format!("EXEC_TEST_MARKER={marker}");
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        // Gone meanwhile, or not ours to read: not one of the script's.
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if environ.split(|b| *b == 0).any(|v| v == needle.as_bytes()) {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            found.push(format!(
                "{name}: {}",
                String::from_utf8_lossy(&cmdline).replace('\0', " ")
            ));
        }
    }
    found
}

/// Polls `/proc` (there is no event for "these processes are gone") until `done`, or panics at
/// the deadline saying what it waited for.
async fn wait_processes(marker: &str, what: &str, done: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let found = marked_processes(marker);
        if done(&found) {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "within {WAIT:?}, never saw {what}; processes with the marker: {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_run_past_its_timeout_is_killed_with_its_children_and_retried() {
    let dir = Scratch::new("timeout");
    let script = dir.script(
        "hang.sh",
        "sleep 60 &\nsh -c 'sleep 60; echo never' &\ncat > /dev/null\nsleep 60",
    );
    let marker = format!("{}-{}", std::process::id(), dir.0.display());
    let channel = exec(&script, "500ms", &[("EXEC_TEST_MARKER", &marker)]);
    let started = Instant::now();
    let run = tokio::spawn(async move { channel.deliver(&[alert("a1")]).await });

    // Premise: the script and its children are running (4: it, two sleeps, the inner sh; its
    // sleep makes 5, if it has started yet).
    wait_processes(&marker, "the script with its background children", |p| {
        p.len() >= 4
    })
    .await;
    let result = tokio::time::timeout(WAIT, run)
        .await
        .expect("the run ends soon after its timeout")
        .expect("the delivery task");
    let took = started.elapsed();
    let err = result.expect_err("a run past its timeout fails");
    assert!(err.is_retry(), "a timeout is worth retrying: {err:?}");
    assert_eq!(
        err.to_string(),
        format!("{script} did not finish within 500ms: killed with its process group")
    );
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(5),
        "took {took:?} for a 500 ms timeout"
    );
    wait_processes(
        &marker,
        "every process of the script's group gone",
        <[String]>::is_empty,
    )
    .await;
}

/// Collects what tracing writes, for the test to read.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_big_output_is_cut_in_the_log() {
    let dir = Scratch::new("output");
    let script = dir.script(
        "chatty.sh",
        "cat > /dev/null; head -c 100000 /dev/zero | tr '\\0' x; echo 'a warning' >&2",
    );
    let log = Log::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);

    exec(&script, "10s", &[])
        .deliver(&[alert("a1")])
        .await
        .expect("exit 0 is delivered, however much it wrote");
    let text =
        String::from_utf8_lossy(&log.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned();
    let line = text
        .lines()
        .find(|l| l.contains("alert command output"))
        .unwrap_or_else(|| panic!("no output logged:\n{text}"));
    assert!(
        line.contains("(100000 bytes in all, the first 2048 shown)"),
        "the cut is said: {line}"
    );
    assert!(line.contains("stderr=a warning"), "{line}");
    let xs = line.matches('x').count();
    assert!(
        (2048..2048 + 20).contains(&xs),
        "{xs} x's logged, of 100000 written: the first 2048 and no more"
    );
}
