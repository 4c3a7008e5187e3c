//! Command-line interface: flags (each also from the environment) and their checks. Every problem
//! is reported at once, before anything starts.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand};

use common::cli::{duration, with_zk_env, ConfigErrors, Refusal, ZkArgs, ZkRunArgs, DURATIONS};
use common::config::ZkConfig;
use common::{AgentId, Layout};

use crate::health::{HealthConfig, Rules};
use crate::registration::Registrant;
use crate::run::RunConfig;
use crate::supervisor::{Policy, EXIT_CONFLICT, EXIT_FAILED};

/// Prefix of the environment variable of every flag (`FLUME_WATCHDOG_ZK`) and of the log filter's.
pub const ENV_PREFIX: &str = "FLUME_WATCHDOG";

#[derive(Parser, Debug)]
#[command(
    name = "flume-watchdog",
    version,
    about = "Supervises a Flume agent and registers it in ZooKeeper",
    after_help = top_help()
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: CliCommand,
}

// Parsed once at start, then taken apart: the size of `run`'s flags does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum CliCommand {
    /// Run a Flume agent under supervision: `flume-watchdog run --zk … -- flume-ng agent -n a1 …`
    #[command(after_help = run_help())]
    Run(RunArgs),
    /// Ask the watchdog of an agent to stop it, from any host, and wait until it has.
    #[command(after_help = stop_help())]
    Stop(StopArgs),
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub zk: ZkRunArgs,
    /// Agent id [default: <hostname>-<agent name from -n>]
    #[arg(long, env = "FLUME_WATCHDOG_ID")]
    pub id: Option<String>,
    /// Label written to the identity node (repeatable)
    #[arg(
        long = "label",
        env = "FLUME_WATCHDOG_LABELS",
        value_delimiter = ',',
        value_name = "KEY=VALUE"
    )]
    pub labels: Vec<String>,
    /// Delay before the first restart after a crash; doubles on each crash in a row
    #[arg(long, env = "FLUME_WATCHDOG_BACKOFF_INITIAL", default_value = "50ms", value_parser = duration)]
    pub backoff_initial: Duration,
    /// Longest delay between restarts
    #[arg(long, env = "FLUME_WATCHDOG_BACKOFF_MAX", default_value = "60s", value_parser = duration)]
    pub backoff_max: Duration,
    /// An agent up this long is healthy: the next crash restarts fast again
    #[arg(long, env = "FLUME_WATCHDOG_BACKOFF_RESET", default_value = "60s", value_parser = duration)]
    pub backoff_reset: Duration,
    /// Give up after this many restarts within --restart-window (default: never give up)
    #[arg(long, env = "FLUME_WATCHDOG_MAX_RESTARTS")]
    pub max_restarts: Option<u32>,
    /// Window for --max-restarts
    #[arg(long, env = "FLUME_WATCHDOG_RESTART_WINDOW", value_parser = duration)]
    pub restart_window: Option<Duration>,
    /// Time between SIGTERM and SIGKILL when stopping the agent
    #[arg(long, env = "FLUME_WATCHDOG_STOP_TIMEOUT", default_value = "30s", value_parser = duration)]
    pub stop_timeout: Duration,
    /// Flume's metrics URL (http://HOST:PORT/metrics) [default: from -Dflume.monitoring.type=http and -Dflume.monitoring.port=N in the command or JAVA_OPTS; without either, no health check]
    #[arg(long, env = "FLUME_WATCHDOG_FLUME_METRICS", value_name = "URL")]
    pub flume_metrics: Option<String>,
    /// Time between two readings of Flume's metrics
    #[arg(long, env = "FLUME_WATCHDOG_HEALTH_INTERVAL", default_value = "10s", value_parser = duration)]
    pub health_interval: Duration,
    /// A channel fuller than this many per cent is full
    #[arg(
        long,
        env = "FLUME_WATCHDOG_HEALTH_FILL",
        default_value_t = 80.0,
        value_name = "PERCENT"
    )]
    pub health_fill: f64,
    /// Readings in a row a condition must last to count (full channel, flat sink, no or bad answer)
    #[arg(
        long,
        env = "FLUME_WATCHDOG_HEALTH_POLLS",
        default_value_t = 2,
        value_name = "N"
    )]
    pub health_polls: u32,
    /// A degraded verdict stays until its reasons have been gone this long
    #[arg(long, env = "FLUME_WATCHDOG_HEALTH_HOLD", default_value = "60s", value_parser = duration)]
    pub health_hold: Duration,
    /// Least time between two health writes for changed figures alone (a verdict change is written at once)
    #[arg(long, env = "FLUME_WATCHDOG_HEALTH_MIN_GAP", default_value = "60s", value_parser = duration)]
    pub health_min_gap: Duration,
    /// Before its first answer, a starting agent's metrics endpoint may be silent this long without being "not answering"
    #[arg(long, env = "FLUME_WATCHDOG_HEALTH_STARTUP_GRACE", default_value = "30s", value_parser = duration)]
    pub health_startup_grace: Duration,
    /// Restart the agent when its metrics endpoint has not answered this long (default: never)
    #[arg(long, env = "FLUME_WATCHDOG_RESTART_ON_HANG", value_parser = duration)]
    pub restart_on_hang: Option<Duration>,
    /// The agent's command, after `--`
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct StopArgs {
    #[command(flatten)]
    pub zk: ZkArgs,
    /// Agent id to stop
    #[arg(long, env = "FLUME_WATCHDOG_ID")]
    pub id: String,
    /// How long to wait for the agent to stop
    #[arg(long, default_value = "60s", value_parser = duration)]
    pub wait: Duration,
}

const RUN_EXAMPLES: &str = concat!(
    "  flume-watchdog run --zk zk1:2181,zk2:2181/kafka -- flume-ng agent -n a1 -c conf -f conf/a1.conf\n",
    "  flume-watchdog run --zk zk1:2181/kafka --label team=logs --max-restarts 5 --restart-window 10m \\\n",
    "      -- flume-ng agent -n a1 -c conf -f conf/a1.conf",
);

const STOP_EXAMPLES: &str = concat!(
    "  flume-watchdog stop --zk zk1:2181,zk2:2181/kafka --id web7-a1\n",
    "  flume-watchdog stop --zk zk1:2181/kafka --zk-auth-file /etc/flume-watchdog/zk-auth --id web7-a1 --wait 2m",
);

/// The exit codes of `run`, from the constants the supervisor exits with.
fn run_exit_codes() -> String {
    format!(
        "  0  stopped as asked (flume-watchdog stop, SIGTERM or SIGINT)
  1  could not start itself (no runtime, no signal handlers)
  2  bad flags (every problem is listed)
  {EXIT_FAILED}  gave up after --max-restarts restarts within --restart-window
  {EXIT_CONFLICT}  the id is live elsewhere (another watchdog holds it)"
    )
}

/// The exit codes of `stop`, as main gives them.
const STOP_EXIT_CODES: &str = concat!(
    "  0  stopped: the agent's liveness node is gone\n",
    "  1  timed out (still live after --wait) or failed (ZooKeeper unreachable, not authorized, no such id)\n",
    "  2  bad flags (every problem is listed)",
);

/// After the options of `run --help`: what a new operator looks for first.
fn run_help() -> String {
    format!(
        "Examples:\n{RUN_EXAMPLES}\n\nExit codes:\n{}\n\n{DURATIONS}",
        run_exit_codes()
    )
}

fn stop_help() -> String {
    format!("Examples:\n{STOP_EXAMPLES}\n\nExit codes:\n{STOP_EXIT_CODES}\n\n{DURATIONS}")
}

fn top_help() -> String {
    format!(
        "Examples:\n{}\n{}\n\n\
         Exit codes of run:\n{}\n\nExit codes of stop:\n{STOP_EXIT_CODES}\n\n{DURATIONS}",
        RUN_EXAMPLES.lines().next().unwrap_or_default(),
        STOP_EXAMPLES.lines().next().unwrap_or_default(),
        run_exit_codes()
    )
}

/// The command line, its ZooKeeper flags' variables named for this binary.
pub fn command() -> clap::Command {
    with_zk_env(Cli::command(), ENV_PREFIX)
}

/// What a command line asks for, checked.
#[derive(Debug)]
pub enum Config {
    Run(Box<RunConfig>),
    Stop(StopConfig),
}

#[derive(Debug)]
pub struct StopConfig {
    pub zk: ZkConfig,
    pub layout: Layout,
    pub id: AgentId,
    pub wait: Duration,
}

/// Reads the command line (`args` starts with the program's name) and checks it, listing every
/// problem at once.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Config, Refusal> {
    common::cli::parse(command(), args, |cli: Cli| match cli.command {
        CliCommand::Run(run) => run.into_config().map(|c| Config::Run(Box::new(c))),
        CliCommand::Stop(stop) => stop.into_config().map(Config::Stop),
    })
}

pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".to_owned())
}

impl RunArgs {
    pub fn into_config(self) -> Result<RunConfig, ConfigErrors> {
        let mut errors = Vec::new();
        let zk = self.zk.into_config(&mut errors);
        let host = hostname();
        let id = match &self.id {
            Some(id) => AgentId::parse(id)
                .map_err(|e| errors.push(format!("--id: {e}")))
                .ok(),
            None => match AgentId::default_for(&host, &self.command) {
                Some(Ok(id)) => Some(id),
                Some(Err(e)) => {
                    errors.push(format!("the default id <hostname>-<agent name> is not valid ({e}); give one with --id"));
                    None
                }
                None => {
                    errors.push(
                        "the command names no agent (-n NAME); give an id with --id".to_owned(),
                    );
                    None
                }
            },
        };
        let mut labels = BTreeMap::new();
        for label in &self.labels {
            match label.split_once('=') {
                Some((k, v)) if !k.is_empty() => {
                    labels.insert(k.to_owned(), v.to_owned());
                }
                _ => errors.push(format!("--label {label:?} is not KEY=VALUE")),
            }
        }
        if self.backoff_initial.is_zero() {
            errors.push("--backoff-initial must be more than 0".to_owned());
        }
        if self.backoff_max < self.backoff_initial {
            errors.push("--backoff-max must not be shorter than --backoff-initial".to_owned());
        }
        // Checked here rather than by clap, so that it is listed with every other problem.
        if self.max_restarts.is_some() != self.restart_window.is_some() {
            errors.push("--max-restarts and --restart-window go together: give both".to_owned());
        }
        let max_restarts = self.max_restarts.zip(self.restart_window);
        let health = self.health_config(&mut errors);
        match (zk, id) {
            (Some((zk, layout)), Some(id)) if errors.is_empty() => {
                let startup_wait = zk.session_timeout.min(Duration::from_secs(3));
                Ok(RunConfig {
                    registrant: Registrant {
                        zk,
                        layout,
                        id,
                        host,
                        command: self.command,
                        labels,
                        watchdog_pid: std::process::id(),
                    },
                    policy: Policy {
                        backoff_initial: self.backoff_initial,
                        backoff_max: self.backoff_max,
                        backoff_reset: self.backoff_reset,
                        max_restarts,
                        stop_timeout: self.stop_timeout,
                    },
                    startup_wait,
                    health,
                })
            }
            _ => Err(ConfigErrors(errors)),
        }
    }
}

impl RunArgs {
    /// The health check, if the agent has a metrics endpoint; its problems go to `errors`.
    fn health_config(&self, errors: &mut Vec<String>) -> Option<HealthConfig> {
        if self.health_interval.is_zero() {
            errors.push("--health-interval must be more than 0".to_owned());
        }
        if !(self.health_fill > 0.0 && self.health_fill < 100.0) {
            errors.push(format!(
                "--health-fill {} must be more than 0 and less than 100 (per cent)",
                self.health_fill
            ));
        }
        if self.health_polls == 0 {
            errors.push("--health-polls must be at least 1".to_owned());
        }
        if self.restart_on_hang.is_some_and(|d| d.is_zero()) {
            errors.push("--restart-on-hang must be more than 0".to_owned());
        }
        let url = match &self.flume_metrics {
            Some(url) => match reqwest::Url::parse(url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => {
                    Some(url.clone())
                }
                _ => {
                    errors.push(format!(
                        "--flume-metrics {url:?} is not an http:// URL such as http://127.0.0.1:34545/metrics"
                    ));
                    return None;
                }
            },
            None => crate::health::url_from_command(
                &self.command,
                std::env::var("JAVA_OPTS").ok().as_deref(),
            ),
        };
        let Some(url) = url else {
            if self.restart_on_hang.is_some() {
                errors.push("--restart-on-hang needs Flume's metrics: start the agent with -Dflume.monitoring.type=http -Dflume.monitoring.port=N, or give --flume-metrics URL".to_owned());
            }
            return None;
        };
        Some(HealthConfig {
            url,
            interval: self.health_interval,
            rules: Rules {
                fill_threshold: self.health_fill,
                polls: self.health_polls,
                hold: self.health_hold,
                min_gap: self.health_min_gap,
                restart_on_hang: self.restart_on_hang,
                startup_grace: self.health_startup_grace,
                wiring: Default::default(),
            },
        })
    }
}

impl StopArgs {
    pub fn into_config(self) -> Result<StopConfig, ConfigErrors> {
        let mut errors = Vec::new();
        let zk = self.zk.into_config(&mut errors);
        let id = AgentId::parse(&self.id)
            .map_err(|e| errors.push(format!("--id: {e}")))
            .ok();
        match (zk, id) {
            (Some((zk, layout)), Some(id)) if errors.is_empty() => Ok(StopConfig {
                zk,
                layout,
                id,
                wait: self.wait,
            }),
            _ => Err(ConfigErrors(errors)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clap_parse(args: &[&str]) -> Result<Cli, clap::Error> {
        common::cli::parse_strict(
            command(),
            std::iter::once("flume-watchdog").chain(args.iter().copied()),
        )
    }

    fn run_args(args: &[&str]) -> RunArgs {
        match clap_parse(args).expect("flags parse").command {
            CliCommand::Run(r) => r,
            other => panic!("expected run, got {other:?}"),
        }
    }

    #[test]
    fn run_flags_build_a_config() {
        let cfg = run_args(&[
            "run",
            "--zk",
            "zk1:2181/kafka",
            "--label",
            "team=logs",
            "--session-timeout",
            "500ms",
            "--",
            "flume-ng",
            "agent",
            "-n",
            "a1",
        ])
        .into_config()
        .expect("valid");
        assert_eq!(
            cfg.registrant.zk.session_timeout,
            Duration::from_millis(500)
        );
        assert_eq!(cfg.registrant.id.as_str(), format!("{}-a1", hostname()));
        assert_eq!(
            cfg.registrant.labels.get("team").map(String::as_str),
            Some("logs")
        );
        assert_eq!(cfg.registrant.command, ["flume-ng", "agent", "-n", "a1"]);
        assert_eq!(cfg.policy.stop_timeout, Duration::from_secs(30));
    }

    #[test]
    fn every_problem_is_listed_at_once() {
        let err = run_args(&[
            "run", "--zk", "zk1:x", "--root", "relative", "--id", "bad id", "--label", "nokey",
            "--", "sleep", "1",
        ])
        .into_config()
        .expect_err("invalid");
        let text = err.to_string();
        for want in ["invalid port", "--root", "--id", "--label"] {
            assert!(text.contains(want), "missing {want:?} in:\n{text}");
        }
        assert_eq!(err.0.len(), 4, "{text}");
    }

    #[test]
    fn a_command_without_agent_name_needs_an_id() {
        let err = run_args(&["run", "--zk", "zk1:2181", "--", "sleep", "10"])
            .into_config()
            .expect_err("no id");
        assert!(err.to_string().contains("--id"), "{err}");
    }

    #[test]
    fn credentials_and_acl_reach_the_config() {
        let cfg = run_args(&[
            "run",
            "--zk",
            "zk1:2181",
            "--zk-auth",
            "alice:s3cr3t",
            "--",
            "flume-ng",
            "agent",
            "-n",
            "a1",
        ])
        .into_config()
        .expect("valid");
        let zk = &cfg.registrant.zk;
        assert_eq!(zk.auth.as_ref().map(|a| a.user()), Some("alice"));
        assert_eq!(zk.acl.spec().to_string(), "creator-all,world-read");
        assert!(!format!("{cfg:?}").contains("s3cr3t"));

        let StopConfig { zk, .. } = match clap_parse(&[
            "stop",
            "--zk",
            "zk1:2181",
            "--id",
            "a1",
            "--zk-auth",
            "-alice:s3cr3t",
        ])
        .expect("flags parse")
        .command
        {
            CliCommand::Stop(s) => s.into_config().expect("valid"),
            other => panic!("expected stop, got {other:?}"),
        };
        assert_eq!(zk.auth.as_ref().map(|a| a.user()), Some("-alice"));
        // stop creates no node and holds no session past its end: neither flag is its own.
        assert_eq!(zk.acl.spec().to_string(), "creator-all,world-read");
        assert_eq!(zk.session_timeout, Duration::from_secs(10));

        let plain = run_args(&["run", "--zk", "zk1:2181", "--id", "a1", "--", "x"])
            .into_config()
            .expect("valid");
        assert!(plain.registrant.zk.auth.is_none());
        assert_eq!(plain.registrant.zk.acl.spec().to_string(), "world-all");
    }

    #[test]
    fn bad_credentials_are_config_errors_that_do_not_show_them() {
        let args = run_args(&[
            "run",
            "--zk",
            "zk1:x",
            "--zk-auth",
            "alices3cr3t",
            "--id",
            "a1",
            "--",
            "x",
        ]);
        assert!(!format!("{args:?}").contains("s3cr3t"), "{args:?}");
        let err = args.into_config().expect_err("invalid");
        let text = err.to_string();
        assert_eq!(err.0.len(), 2, "{text}");
        assert!(text.contains("--zk-auth: "), "{text}");
        assert!(!text.contains("s3cr3t"), "{text}");

        let err = run_args(&[
            "run",
            "--zk",
            "zk1:2181",
            "--id",
            "a1",
            "--zk-auth-file",
            "/nonexistent/zk-auth",
            "--zk-acl",
            "creator-all,world-write",
            "--",
            "x",
        ])
        .into_config()
        .expect_err("invalid");
        let text = err.to_string();
        assert_eq!(err.0.len(), 2, "{text}");
        assert!(text.contains("/nonexistent/zk-auth"), "{text}");
        assert!(text.contains("world-write"), "{text}");

        let err = run_args(&[
            "run",
            "--zk",
            "zk1:2181",
            "--id",
            "a1",
            "--zk-acl",
            "creator-all",
            "--",
            "x",
        ])
        .into_config()
        .expect_err("creator-all needs credentials");
        assert!(err.to_string().contains("--zk-auth"), "{err}");
    }

    #[test]
    fn stop_refuses_the_flags_of_a_session_that_stays() {
        let found = problems(&[
            "stop",
            "--zk",
            "z:1",
            "--id",
            "a1",
            "--session-timeout",
            "5s",
            "--zk-acl",
            "creator-all",
        ]);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].starts_with("unexpected argument '--session-timeout' found"));
        assert!(found[1].starts_with("unexpected argument '--zk-acl' found"));
    }

    #[test]
    fn a_negative_duration_is_refused_with_every_other_problem() {
        let found = problems(&[
            "run",
            "--zk",
            "z:1",
            "--backoff-initial",
            "-1s",
            "--stop-timeout",
            "soon",
            "--bogus",
            "--id",
            "no/slash",
            "--",
            "agent",
        ]);
        let text = found.join("\n");
        for want in [
            "invalid value '-1s' for '--backoff-initial <BACKOFF_INITIAL>': a duration cannot be negative",
            "invalid value 'soon' for '--stop-timeout",
            "unexpected argument '--bogus'",
            "--id: ",
        ] {
            assert!(text.contains(want), "{want:?} missing in:\n{text}");
        }
        assert_eq!(found.len(), 4, "{text}");
        // What looks like a long flag stays a flag (the value is missing), and the agent's own
        // flags stay the agent's.
        let found = problems(&["run", "--zk", "z:1", "--id", "--bogus", "--", "x"]);
        assert_eq!(found.len(), 2, "{found:?}");
        let text = found.join("\n");
        assert!(text.contains("a value is required for '--id"), "{text}");
        assert!(text.contains("unexpected argument '--bogus'"), "{text}");
        let cfg = run_args(&["run", "--zk", "z:1", "--", "flume-ng", "agent", "-n", "-a1"])
            .into_config()
            .expect("valid");
        assert_eq!(cfg.registrant.command, ["flume-ng", "agent", "-n", "-a1"]);
    }

    #[test]
    fn every_help_ends_with_examples_exit_codes_and_durations() {
        let mut cmd = command();
        let top = cmd.render_long_help().to_string();
        for sub in ["run", "stop"] {
            let sub_help = cmd
                .find_subcommand_mut(sub)
                .expect("subcommand")
                .render_long_help()
                .to_string();
            for help in [&top, &sub_help] {
                for want in [
                    &format!("flume-watchdog {sub} --zk zk1:2181,zk2:2181/kafka"),
                    "  0  ",
                    "  2  bad flags (every problem is listed)",
                    "Durations: 500ms, 10s, 2m, 1h 30m (no negative values).",
                ] {
                    assert!(help.contains(want), "{want:?} missing in:\n{help}");
                }
            }
        }
        let run = command()
            .find_subcommand_mut("run")
            .expect("run")
            .render_long_help()
            .to_string();
        assert!(run.contains(&format!("  {EXIT_FAILED}  gave up")), "{run}");
        assert!(
            run.contains(&format!("  {EXIT_CONFLICT}  the id is live")),
            "{run}"
        );
        // Every duration of the help is one the flags accept.
        for example in ["500ms", "10s", "2m", "1h 30m"] {
            assert!(duration(example).is_ok(), "{example}");
        }
    }

    #[test]
    fn the_credentials_flag_hides_its_environment_value() {
        let cmd = command();
        for sub in ["run", "stop"] {
            let sub = cmd.find_subcommand(sub).expect("subcommand");
            let arg = sub
                .get_arguments()
                .find(|a| a.get_id() == "zk_auth")
                .expect("--zk-auth");
            assert!(arg.is_hide_env_values_set());
        }
    }

    fn problems(args: &[&str]) -> Vec<String> {
        let args = std::iter::once("flume-watchdog").chain(args.iter().copied());
        match parse(args.map(OsString::from)) {
            Err(Refusal::Problems(p)) => p.problems,
            other => panic!("expected problems, got {other:?}"),
        }
    }

    #[test]
    fn what_clap_refuses_and_what_the_checks_find_are_listed_together() {
        let found = problems(&[
            "run",
            "--zk",
            "bad::",
            "--bogus",
            "--stop-timeout",
            "soon",
            "--id",
            "no/slash",
            "--",
            "x",
        ]);
        let text = found.join("\n");
        for want in ["'--bogus'", "'soon'", "500ms", "\"bad::\"", "--id: "] {
            assert!(text.contains(want), "{want:?} missing in:\n{text}");
        }
        assert_eq!(found.len(), 4, "{text}");
    }

    #[test]
    fn a_refused_value_brings_no_second_problem() {
        for args in [
            ["--max-restarts", "many", "--restart-window", "5m"],
            ["--backoff-initial", "2m", "--backoff-max", "long"],
        ] {
            let mut line = vec!["run", "--zk", "z:1", "--id", "a1"];
            line.extend(args);
            line.extend(["--", "x"]);
            let found = problems(&line);
            assert_eq!(found.len(), 1, "{found:?}");
            assert!(found[0].starts_with("invalid value"), "{found:?}");
        }
        let found = problems(&[
            "run",
            "--zk",
            "z:1",
            "--id",
            "a1",
            "--restart-window",
            "5m",
            "--",
            "x",
        ]);
        assert_eq!(
            found,
            ["--max-restarts and --restart-window go together: give both"]
        );
    }

    #[test]
    fn health_is_on_only_with_a_metrics_endpoint() {
        let base = ["run", "--zk", "z:1", "--id", "a1"];
        let cfg = |extra: &[&str], agent: &[&str]| {
            let mut line: Vec<&str> = base.to_vec();
            line.extend(extra);
            line.push("--");
            line.extend(agent);
            run_args(&line).into_config()
        };
        let plain = cfg(&[], &["flume-ng", "agent", "-n", "a1"]).expect("valid");
        assert_eq!(plain.health, None, "no endpoint: nothing changes");
        let found = cfg(
            &["--health-interval", "500ms"],
            &[
                "flume-ng",
                "agent",
                "-n",
                "a1",
                "-Xmx1g -Dflume.monitoring.type=http -Dflume.monitoring.port=34545",
            ],
        )
        .expect("valid")
        .health
        .expect("health on");
        assert_eq!(found.url, "http://127.0.0.1:34545/metrics");
        assert_eq!(found.interval, Duration::from_millis(500));
        assert_eq!(found.timeout(), Duration::from_millis(250));
        assert_eq!(found.rules, Rules::default());
        let given = cfg(
            &[
                "--flume-metrics",
                "http://10.0.0.7:41414/metrics",
                "--restart-on-hang",
                "1m",
                "--health-fill",
                "90",
                "--health-polls",
                "3",
            ],
            &["flume-ng", "agent", "-n", "a1"],
        )
        .expect("valid")
        .health
        .expect("health on");
        assert_eq!(given.url, "http://10.0.0.7:41414/metrics");
        assert_eq!(given.timeout(), Duration::from_secs(5));
        assert_eq!(given.rules.restart_on_hang, Some(Duration::from_secs(60)));
        assert_eq!((given.rules.fill_threshold, given.rules.polls), (90.0, 3));

        let err = cfg(
            &[
                "--restart-on-hang",
                "1m",
                "--health-fill",
                "100",
                "--health-polls",
                "0",
                "--health-interval",
                "0s",
            ],
            &["flume-ng", "agent", "-n", "a1"],
        )
        .expect_err("invalid");
        let text = err.to_string();
        for want in [
            "--health-interval",
            "--health-fill 100",
            "--health-polls",
            "--restart-on-hang needs Flume's metrics",
        ] {
            assert!(text.contains(want), "{want:?} missing in:\n{text}");
        }
        assert_eq!(err.0.len(), 4, "{text}");
        let err = cfg(&["--flume-metrics", "localhost:34545"], &["x"]).expect_err("not a URL");
        assert!(err.to_string().contains("is not an http:// URL"), "{err}");
        let help = command()
            .find_subcommand_mut("run")
            .expect("run")
            .render_long_help()
            .to_string();
        for var in [
            "FLUME_METRICS",
            "HEALTH_INTERVAL",
            "HEALTH_FILL",
            "HEALTH_POLLS",
            "HEALTH_HOLD",
            "HEALTH_MIN_GAP",
            "HEALTH_STARTUP_GRACE",
            "RESTART_ON_HANG",
        ] {
            assert!(
                help.contains(&format!("[env: FLUME_WATCHDOG_{var}")),
                "{var} missing in:\n{help}"
            );
        }
    }
}
