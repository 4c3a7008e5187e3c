//! Exec: runs a command with the alerts on its stdin, as the generic webhook's JSON
//! (`{"alerts":[…]}`), for what has no HTTP API of its own here: SMS gateways, phone-call
//! services, a site's own paging script.
//!
//! The command is a list, exec'd directly: no shell reads it, so an agent id can never become
//! shell syntax. It runs in a process group of its own and is bounded in time: on `timeout` the
//! whole group is killed (a shell script's children too) and the delivery is retried. Exit 0 is
//! delivered, 75 (`EX_TEMPFAIL`, sysexits.h's "try again later") is retried, anything else —
//! another code, a signal — is permanent: a script that fails the same way each time would
//! otherwise be run forever. What it writes on stdout and stderr is logged, the first
//! [`OUTPUT_LOGGED`] bytes of each: the rest is read and dropped, so a chatty command neither
//! blocks on a full pipe nor fills the watcher's memory.
//!
//! The values of `env` may be credentials (a gateway's API key): they are shown as `***` and
//! scrubbed from the logged output and errors; they count in the channel's name through its
//! fingerprint only. The arguments are not shown either (`--token …` is common), only counted.

use std::collections::BTreeMap;
use std::fmt;
use std::io::ErrorKind;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::{access, AccessFlags, Pid};
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::kinds::{self, KeyProblem, Kind};
use super::{excerpt, fingerprint, scrub, Channel, ChannelSpec, DeliveryError};
use crate::alert::Alert;
use crate::notify::Notifier;

/// `[[channel]] type = "exec"`.
pub const KIND: Kind = Kind {
    name: "exec",
    read: read_table,
};

/// How long one run may take when `timeout` is not set.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of each of stdout and stderr is kept for the log, in bytes.
pub const OUTPUT_LOGGED: usize = 2048;
/// The exit code that asks for another try later (`EX_TEMPFAIL` of sysexits.h).
pub const EX_TEMPFAIL: i32 = 75;
/// How long, once the command has exited, its output may still take to close: a process it left
/// running in the background may hold it open for good, and its exit status is what counts.
const OUTPUT_GRACE: Duration = Duration::from_secs(1);

/// The keys of an exec channel's table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Keys {
    command: Vec<String>,
    timeout: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
}

fn read_table(table: toml::Table) -> Result<Box<dyn ChannelSpec>, Vec<KeyProblem>> {
    let keys: Keys = kinds::keys(table)?;
    let config = ExecConfig::new(keys.command, keys.timeout.as_deref(), keys.env)?;
    Ok(Box::new(config))
}

/// A command to run per message. `Debug`/`Display` show the program, how many arguments, and the
/// variables' names, never their values.
#[derive(Clone, PartialEq, Eq)]
pub struct ExecConfig {
    /// As configured: the program as written, then its arguments.
    command: Vec<String>,
    /// The program found when the configuration was read: what runs.
    program: PathBuf,
    timeout: Duration,
    env: BTreeMap<String, String>,
}

impl ExecConfig {
    /// Checks `command` (a program that exists and may be executed, then its arguments),
    /// `timeout` (a humantime duration; default [`DEFAULT_TIMEOUT`]) and `env`; or lists every
    /// problem, none showing a variable's value.
    pub fn new(
        command: Vec<String>,
        timeout: Option<&str>,
        env: BTreeMap<String, String>,
    ) -> Result<ExecConfig, Vec<KeyProblem>> {
        let mut problems: Vec<KeyProblem> = Vec::new();
        let program = match command.first() {
            None => {
                problems.push((
                    "command".to_owned(),
                    "is empty: give the program and its arguments, \
                     e.g. [\"/usr/local/bin/send-sms\", \"--to\", \"13800000000\"]"
                        .to_owned(),
                ));
                None
            }
            Some(program) => find_program(program)
                .map_err(|e| problems.push(("command[0]".to_owned(), e)))
                .ok(),
        };
        for (i, arg) in command.iter().enumerate().skip(1) {
            if arg.contains('\0') {
                problems.push((
                    format!("command[{i}]"),
                    "contains a NUL character".to_owned(),
                ));
            }
        }
        let timeout = match timeout {
            None => Some(DEFAULT_TIMEOUT),
            Some(s) => match humantime::parse_duration(s.trim()) {
                Ok(d) if d.is_zero() => {
                    problems.push(("timeout".to_owned(), "must be more than zero".to_owned()));
                    None
                }
                Ok(d) => Some(d),
                Err(e) => {
                    problems.push((
                        "timeout".to_owned(),
                        format!("`{s}` is not a duration like \"30s\" or \"2m\": {e}"),
                    ));
                    None
                }
            },
        };
        for (name, value) in &env {
            if name.is_empty() || name.contains(['=', '\0']) {
                problems.push((
                    format!("env.{name}"),
                    "is not a variable name (not empty, no `=`)".to_owned(),
                ));
            }
            if value.contains('\0') {
                problems.push((
                    format!("env.{name}"),
                    "its value contains a NUL character".to_owned(),
                ));
            }
        }
        match (program, timeout) {
            (Some(program), Some(timeout)) if problems.is_empty() => Ok(ExecConfig {
                command,
                program,
                timeout,
                env,
            }),
            _ => Err(problems),
        }
    }

    /// The program as configured.
    pub fn program(&self) -> &str {
        self.command.first().map_or("", String::as_str)
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// `exec <program> #<fingerprint of the command and the environment>`: see
    /// [`Channel::name`]. The timeout is not part of it: changing it does not change who is told.
    pub fn channel_name(&self) -> String {
        let identity = serde_json::json!({ "command": self.command, "env": self.env });
        format!(
            "exec {} {}",
            self.program(),
            fingerprint(&identity.to_string())
        )
    }
}

/// The program to run: a path (with a `/`) as it is, a bare name looked up in `PATH` now, so that
/// what was checked is what runs. It must be a file this user may execute.
fn find_program(program: &str) -> Result<PathBuf, String> {
    if program.is_empty() {
        return Err("the program is empty".to_owned());
    }
    if program.contains('\0') {
        return Err("contains a NUL character".to_owned());
    }
    if program.contains('/') {
        let path = PathBuf::from(program);
        return executable(&path).map(|()| path);
    }
    let search = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&search) {
        let path = dir.join(program);
        if executable(&path).is_ok() {
            return Ok(path);
        }
    }
    Err(format!(
        "`{program}` is not found in PATH ({}): give its full path",
        search.to_string_lossy()
    ))
}

/// `path` is a file this user may execute.
fn executable(path: &Path) -> Result<(), String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        ErrorKind::NotFound => format!("{shown} does not exist"),
        _ => format!("cannot look at {shown}: {e}"),
    })?;
    if !meta.is_file() {
        return Err(format!("{shown} is not a file"));
    }
    access(path, AccessFlags::X_OK).map_err(|e| {
        use std::os::unix::fs::PermissionsExt;
        format!(
            "{shown} is not executable by this user (mode {:o}: {e})",
            meta.permissions().mode() & 0o7777
        )
    })
}

impl fmt::Display for ExecConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.program())?;
        match self.command.len().saturating_sub(1) {
            0 => {}
            1 => f.write_str(" (+1 argument)")?,
            n => write!(f, " (+{n} arguments)")?,
        }
        if !self.env.is_empty() {
            let names: Vec<String> = self.env.keys().map(|k| format!("{k}=***")).collect();
            write!(f, ", env {}", names.join(" "))?;
        }
        write!(f, ", timeout {}", common::time::human(self.timeout))
    }
}

impl fmt::Debug for ExecConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecConfig")
            .field("program", &self.program)
            .field("arguments", &self.command.len().saturating_sub(1))
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl ChannelSpec for ExecConfig {
    fn describe(&self) -> String {
        format!("exec {self}")
    }
    fn key(&self) -> String {
        self.channel_name()
    }
    fn start(&self, label: &str, notifier: &mut Notifier, _ctx: &super::Context) -> bool {
        notifier.add_channel_as(label, ExecChannel::new(self.clone()))
    }
}

pub struct ExecChannel {
    config: ExecConfig,
    /// The variables' values, scrubbed from what is logged.
    secrets: Vec<String>,
}

/// The first bytes of a stream, and how many there were in all.
#[derive(Default)]
struct Captured {
    kept: Vec<u8>,
    total: u64,
}

impl Captured {
    /// For the log: on one line, secrets scrubbed, saying when it was cut.
    fn shown(&self, secrets: &[String]) -> String {
        let text = scrub(&String::from_utf8_lossy(&self.kept), secrets);
        let mut shown = excerpt(text.trim_end(), OUTPUT_LOGGED);
        if self.total > self.kept.len() as u64 {
            shown.push_str(&format!(
                " … ({} bytes in all, the first {} shown)",
                self.total,
                self.kept.len()
            ));
        }
        shown
    }
}

/// Kills a command's process group when dropped, unless disarmed: a delivery given up on (the
/// notifier's shutdown grace ran out) takes the command and its children with it.
///
/// Disarmed as soon as the command has been reaped: from then on its pid, the group's id, may be
/// given to an unrelated process once the group is empty, and must not be signalled.
struct Group {
    pgid: Option<Pid>,
}

impl Group {
    fn kill(&mut self) {
        if let Some(pgid) = self.pgid {
            // ESRCH: every member is gone already.
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }
    fn disarm(&mut self) {
        self.pgid = None;
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill();
    }
}

/// How one run ended.
enum Ended {
    Exited(ExitStatus),
    TimedOut,
}

impl ExecChannel {
    pub const MAX_BATCH: usize = 100;

    pub fn new(config: ExecConfig) -> ExecChannel {
        let secrets = config
            .env
            .values()
            .filter(|v| v.len() >= 3)
            .cloned()
            .collect();
        ExecChannel { config, secrets }
    }

    async fn run(&self, batch: &[Alert]) -> Result<(), DeliveryError> {
        let input = super::webhook::body(batch);
        let program = self.config.program();
        let mut cmd = tokio::process::Command::new(&self.config.program);
        // systemd's notify variables are the watcher's own: a command must not speak for it.
        for var in common::systemd::ENV {
            cmd.env_remove(var);
        }
        cmd.arg0(program)
            .args(&self.config.command[1..])
            .envs(&self.config.env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| {
            let text = format!("cannot run {program}: {e}");
            match e.kind() {
                ErrorKind::NotFound | ErrorKind::PermissionDenied => DeliveryError::Permanent(text),
                // Out of processes or descriptors: later may work.
                _ => DeliveryError::Retry(text),
            }
        })?;
        // Declared after the child, so dropped before it: the group goes while its leader,
        // not yet reaped, still holds its id.
        let mut group = Group {
            pgid: child.id().map(|id| Pid::from_raw(id as i32)),
        };
        let deadline = Instant::now() + self.config.timeout;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let io = futures::future::join3(feed(stdin, input), capture(stdout), capture(stderr));
        tokio::pin!(io);
        let mut output = None;
        let ended = loop {
            tokio::select! {
                done = &mut io, if output.is_none() => output = Some(done),
                status = child.wait() => match status {
                    Ok(status) => break Ended::Exited(status),
                    Err(e) => return Err(DeliveryError::Retry(format!("cannot wait for {program}: {e}"))),
                },
                _ = tokio::time::sleep_until(deadline) => break Ended::TimedOut,
            }
        };
        match ended {
            Ended::Exited(_) => group.disarm(),
            Ended::TimedOut => {
                group.kill();
                // Killed: reaped at once. Bounded all the same, as everything here.
                if let Ok(Ok(_)) = tokio::time::timeout(OUTPUT_GRACE, child.wait()).await {
                    group.disarm();
                }
            }
        }
        let (fed, out, err) = match output {
            Some(done) => done,
            None => match tokio::time::timeout(OUTPUT_GRACE, &mut io).await {
                Ok(done) => done,
                Err(_) => {
                    warn!(
                        program,
                        "the alert command's output stayed open after it ended \
                         (a process it left running?); not read further"
                    );
                    (Ok(()), Captured::default(), Captured::default())
                }
            },
        };
        if let Err(e) = fed {
            debug!(program, error = %e, "the alert command did not read all its input");
        }
        let result = match ended {
            Ended::TimedOut => Err(DeliveryError::Retry(format!(
                "{program} did not finish within {}: killed with its process group",
                common::time::human(self.config.timeout)
            ))),
            Ended::Exited(status) => judge(program, status, &err.shown(&self.secrets)),
        };
        self.log(&result, &out, &err);
        result
    }

    fn log(&self, result: &Result<(), DeliveryError>, out: &Captured, err: &Captured) {
        if out.total == 0 && err.total == 0 {
            return;
        }
        let program = self.config.program();
        let stdout = out.shown(&self.secrets);
        let stderr = err.shown(&self.secrets);
        if result.is_ok() {
            info!(program, %stdout, %stderr, "alert command output");
        } else {
            warn!(program, %stdout, %stderr, "alert command output");
        }
    }
}

/// Exit 0 delivered, [`EX_TEMPFAIL`] retried, anything else permanent; `stderr` (already made
/// fit to show) says why.
fn judge(program: &str, status: ExitStatus, stderr: &str) -> Result<(), DeliveryError> {
    let why = if stderr.is_empty() {
        String::new()
    } else {
        format!(": {}", excerpt(stderr, 200))
    };
    match (status.code(), status.signal()) {
        (Some(0), _) => Ok(()),
        (Some(EX_TEMPFAIL), _) => Err(DeliveryError::Retry(format!(
            "{program} exited with {EX_TEMPFAIL} (EX_TEMPFAIL: try again later){why}"
        ))),
        (Some(code), _) => Err(DeliveryError::Permanent(format!(
            "{program} exited with code {code}{why}"
        ))),
        (None, Some(signal)) => {
            let name =
                Signal::try_from(signal).map_or_else(|_| signal.to_string(), |s| s.to_string());
            Err(DeliveryError::Permanent(format!(
                "{program} was killed by {name}{why}"
            )))
        }
        (None, None) => Err(DeliveryError::Permanent(format!(
            "{program} ended without an exit code{why}"
        ))),
    }
}

/// Writes `input` to the command's stdin and closes it, so that it sees the end.
async fn feed(stdin: Option<tokio::process::ChildStdin>, input: Vec<u8>) -> std::io::Result<()> {
    let Some(mut stdin) = stdin else {
        return Ok(());
    };
    stdin.write_all(&input).await?;
    stdin.shutdown().await
}

/// Reads `stream` to its end, keeping the first [`OUTPUT_LOGGED`] bytes.
async fn capture(stream: Option<impl AsyncRead + Unpin>) -> Captured {
    let mut captured = Captured::default();
    let Some(mut stream) = stream else {
        return captured;
    };
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                captured.total += n as u64;
                let room = OUTPUT_LOGGED.saturating_sub(captured.kept.len());
                captured.kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
    captured
}

impl Channel for ExecChannel {
    fn name(&self) -> String {
        self.config.channel_name()
    }

    fn max_batch(&self) -> usize {
        Self::MAX_BATCH
    }

    async fn deliver(&self, batch: &[Alert]) -> Result<(), DeliveryError> {
        self.run(batch).await.map_err(|e| e.scrub(&self.secrets))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn config(
        command: &[&str],
        timeout: Option<&str>,
        env: &[(&str, &str)],
    ) -> Result<ExecConfig, Vec<KeyProblem>> {
        ExecConfig::new(
            command.iter().map(|s| s.to_string()).collect(),
            timeout,
            env.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn problems(command: &[&str], timeout: Option<&str>) -> Vec<String> {
        config(command, timeout, &[])
            .expect_err("problems")
            .into_iter()
            .map(|(k, m)| format!("{k}: {m}"))
            .collect()
    }

    #[test]
    fn the_program_must_exist_and_be_executable() {
        let dir = std::env::temp_dir().join(format!("exec-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let plain = dir.join("not-executable.sh");
        std::fs::write(&plain, "#!/bin/sh\n").expect("write");
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let plain = plain.to_string_lossy().into_owned();
        let dir_s = dir.to_string_lossy().into_owned();

        let said = problems(&[], None);
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(said[0].starts_with("command: is empty"), "{said:?}");
        let said = problems(&["/nonexistent/send-sms", "--to", "1"], None);
        assert_eq!(said, ["command[0]: /nonexistent/send-sms does not exist"]);
        let said = problems(&[&plain], None);
        assert!(
            said.len() == 1 && said[0].contains("is not executable by this user (mode 644"),
            "{said:?}"
        );
        assert_eq!(
            problems(&[&dir_s], None),
            [format!("command[0]: {dir_s} is not a file")]
        );
        let said = problems(&["no-such-program-here"], None);
        assert!(said[0].contains("is not found in PATH"), "{said:?}");
        // Every problem at once.
        let said = problems(&["/nonexistent/x"], Some("soon"));
        assert_eq!(said.len(), 2, "{said:?}");
        assert!(
            said[1].starts_with("timeout: `soon` is not a duration"),
            "{said:?}"
        );
        assert_eq!(
            problems(&["/bin/cat"], Some("0s")),
            ["timeout: must be more than zero"]
        );
        let bad_env = config(&["/bin/cat"], None, &[("A=B", "x")]).expect_err("bad name");
        assert_eq!(bad_env[0].0, "env.A=B");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_bare_name_is_found_in_path_and_defaults_apply() {
        let c = config(&["sh", "-c", "cat"], None, &[]).expect("sh is in PATH");
        assert!(c.program.is_absolute(), "{:?}", c.program);
        assert_eq!(c.timeout(), DEFAULT_TIMEOUT);
        let c = config(&["/bin/cat"], Some("500ms"), &[]).expect("valid");
        assert_eq!(c.timeout(), Duration::from_millis(500));
    }

    #[test]
    fn names_and_descriptions_hide_values_and_arguments() {
        let c = config(
            &["/bin/cat", "--token", "ARGSECRET"],
            Some("10s"),
            &[("SMS_KEY", "ENVSECRET")],
        )
        .expect("valid");
        let spec: &dyn ChannelSpec = &c;
        assert_eq!(
            spec.describe(),
            "exec /bin/cat (+2 arguments), env SMS_KEY=***, timeout 10s"
        );
        for shown in [format!("{c:?}"), spec.describe(), c.channel_name()] {
            assert!(!shown.contains("SECRET"), "{shown}");
        }
        // `printf %s '{"command":["/bin/cat","--token","ARGSECRET"],"env":{"SMS_KEY":"ENVSECRET"}}' | sha256sum`
        assert_eq!(c.channel_name(), "exec /bin/cat #0c14b899");
        let other = config(
            &["/bin/cat", "--token", "ARGSECRET"],
            None,
            &[("SMS_KEY", "ENVSECRET2")],
        )
        .expect("valid");
        assert_ne!(other.channel_name(), c.channel_name(), "env counts");
        let slower = config(
            &["/bin/cat", "--token", "ARGSECRET"],
            Some("1m"),
            &[("SMS_KEY", "ENVSECRET")],
        )
        .expect("valid");
        assert_eq!(
            slower.channel_name(),
            c.channel_name(),
            "the timeout does not"
        );
    }

    #[test]
    fn exit_statuses_are_judged() {
        let status = |raw: i32| ExitStatus::from_raw(raw);
        assert!(judge("p", status(0), "").is_ok());
        let tempfail = judge("p", status(75 << 8), "busy").unwrap_err();
        assert!(tempfail.is_retry(), "{tempfail}");
        assert_eq!(
            tempfail.to_string(),
            "p exited with 75 (EX_TEMPFAIL: try again later): busy"
        );
        assert_eq!(
            judge("p", status(1 << 8), "").unwrap_err(),
            DeliveryError::Permanent("p exited with code 1".into())
        );
        let killed = judge("p", status(9), "").unwrap_err();
        assert_eq!(
            killed,
            DeliveryError::Permanent("p was killed by SIGKILL".into())
        );
    }
}
