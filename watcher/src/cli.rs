//! Command-line interface of flume-watcher: flags (each also from the environment) and checks.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, Parser, Subcommand};

use common::cli::{
    duration, with_zk_env, ConfigErrors, EnvList, Refusal, ZkArgs, ZkRunArgs, DURATIONS,
};
use common::config::ZkConfig;
use common::silence::SilenceRecord;
use common::Layout;

use crate::channels::{
    parse_dingtalk, parse_webhook, Configured, ConsoleChannel, DingTalkConfig, WebhookConfig,
};
use crate::config::{self, FileConfig};
use crate::message::{Lang, Style, Zone};
use crate::routing::Pattern;
use crate::watch::WatchConfig;

/// Prefix of the environment variable of every flag (`FLUME_WATCHER_ZK`) and of the log filter's.
pub const ENV_PREFIX: &str = "FLUME_WATCHER";

#[derive(Parser, Debug)]
#[command(
    name = "flume-watcher",
    version,
    about = "Alerts when a Flume agent supervised by flume-watchdog dies",
    after_help = top_help()
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: CliCommand,
}

#[derive(Subcommand, Debug)]
pub enum CliCommand {
    /// Watch every agent under the root and send alerts
    #[command(after_help = run_help())]
    Run(Box<RunArgs>),
    /// Show one row per agent: id, host, state, since, restarts, last exit
    #[command(after_help = status_help())]
    Status(StatusArgs),
    /// Check a configuration file, or print a commented example of one
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Send a clearly marked test message through every channel (or one) and print each result
    #[command(after_help = TEST_ALERT_HELP)]
    TestAlert(TestAlertArgs),
    /// Maintenance windows: hold back the alerts about some agents for a while
    #[command(subcommand, after_help = silence_help())]
    Silence(SilenceCommand),
}

#[derive(Subcommand, Debug)]
pub enum SilenceCommand {
    /// Silence the agents that match, for a time; prints the new silence's id
    #[command(after_help = silence_add_help())]
    Add(SilenceAddArgs),
    /// List the silences in force and pending (--all: the expired ones too)
    #[command(after_help = silence_list_help())]
    List(SilenceListArgs),
    /// Lift a silence now
    #[command(after_help = silence_remove_help())]
    Remove(SilenceRemoveArgs),
}

#[derive(Args, Debug)]
pub struct SilenceAddArgs {
    #[command(flatten)]
    pub zk: OneShotArgs,
    /// Glob on the agent id (web7-*); `*` silences every agent, and must be said so
    #[arg(long, value_name = "GLOB")]
    pub agent: String,
    /// Glob on the agent's host [default: any host]
    #[arg(long, value_name = "GLOB")]
    pub host: Option<String>,
    /// Glob on one of the agent's labels, KEY=GLOB (repeatable: every one must match)
    #[arg(long = "label", value_name = "KEY=GLOB")]
    pub labels: Vec<String>,
    /// How long it lasts from its start (2h, 90m); give this or --until
    #[arg(long = "for", value_name = "DURATION", value_parser = duration)]
    pub for_: Option<Duration>,
    /// When it ends: RFC 3339 with an offset (2026-12-03T02:00+08:00, 2026-12-02T18:00Z); give
    /// this or --for
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub until: Option<String>,
    /// When it begins, as --until [default: now]
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub start: Option<String>,
    /// Why (kernel upgrade): the next person on call reads it to know whether it may be lifted
    #[arg(long, value_name = "TEXT", allow_hyphen_values = true)]
    pub comment: String,
}

#[derive(Args, Debug)]
pub struct SilenceListArgs {
    #[command(flatten)]
    pub zk: OneShotArgs,
    /// Print JSON (an array of objects) instead of a table
    #[arg(long)]
    pub json: bool,
    /// Also the expired silences (kept 5 days after they end)
    #[arg(long)]
    pub all: bool,
}

#[derive(Args, Debug)]
pub struct SilenceRemoveArgs {
    #[command(flatten)]
    pub zk: OneShotArgs,
    /// The silence's id, as `silence add` printed it and `silence list` shows it (3f9a1c2e)
    #[arg(value_name = "ID")]
    pub id: String,
}

const TEST_ALERT_HELP: &str = concat!(
    "Examples:\n",
    "  flume-watcher test-alert --config /etc/flume-watchdog/watcher.toml\n",
    "  flume-watcher test-alert --config watcher.toml --channel ops\n\n",
    "Exit codes:\n",
    "  0  every channel took the test message\n",
    "  1  a channel refused it, or still failed when --wait ran out\n",
    "  2  bad flags or configuration (every problem is listed)",
);

#[derive(Args, Debug)]
pub struct TestAlertArgs {
    /// The configuration file (TOML) whose channels to test
    #[arg(long, env = "FLUME_WATCHER_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Only the channel of this name (its `name` in the file)
    #[arg(long, value_name = "NAME")]
    pub channel: Option<String>,
    /// A generic webhook to test too (repeatable; the variable, as run's, holds URLs separated by
    /// spaces): the channels run would use are tested
    #[arg(long = "webhook", env = "FLUME_WATCHER_WEBHOOK", hide_env_values = true, value_parser = parse_webhook, value_name = "URL")]
    pub webhooks: Vec<WebhookConfig>,
    /// A DingTalk robot to test too (repeatable; the variable, as run's)
    #[arg(long = "dingtalk", env = "FLUME_WATCHER_DINGTALK", hide_env_values = true, value_parser = parse_dingtalk, value_name = "URL[,secret=S]")]
    pub dingtalk: Vec<DingTalkConfig>,
    /// Language of the message: en or zh [default: the file's, else en]
    #[arg(long, env = "FLUME_WATCHER_LANG", value_parser = Lang::parse, value_name = "LANG")]
    pub lang: Option<Lang>,
    /// Time zone of the message's time [default: the file's, else this machine's]
    #[arg(long, env = "FLUME_WATCHER_TIMEZONE", value_parser = Zone::parse, value_name = "ZONE")]
    pub timezone: Option<Zone>,
    /// How long a channel that fails may be retried before it counts as failed
    #[arg(long, default_value = "15s", value_parser = duration)]
    pub wait: Duration,
}

/// `test-alert`, checked: the channels to test and how to write the message.
#[derive(Debug)]
pub struct TestAlertConfig {
    pub channels: Vec<Configured>,
    pub style: Style,
    pub wait: Duration,
}

impl TestAlertArgs {
    fn into_config(self) -> Result<TestAlertConfig, ConfigErrors> {
        let file = match &self.config {
            Some(path) => config::load(path).map_err(|p| ConfigErrors(in_file(path, p)))?,
            None => FileConfig::default(),
        };
        let mut channels = file.channels;
        channels.extend(self.webhooks.into_iter().map(Configured::unnamed));
        channels.extend(self.dingtalk.into_iter().map(Configured::unnamed));
        if let Some(name) = &self.channel {
            let known: Vec<String> = channels.iter().map(|c| c.label.clone()).collect();
            channels.retain(|c| &c.label == name);
            if channels.is_empty() {
                return Err(ConfigErrors(vec![format!(
                    "--channel: no channel is named `{name}` (named: {})",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                )]));
            }
        }
        if channels.is_empty() {
            return Err(ConfigErrors(vec![
                "no channel to test: give --config with [[channel]] tables, or --webhook, --dingtalk"
                    .to_owned(),
            ]));
        }
        Ok(TestAlertConfig {
            channels,
            style: Style {
                lang: self.lang.or(file.alerts.lang).unwrap_or_default(),
                zone: self
                    .timezone
                    .or(file.alerts.timezone)
                    .unwrap_or_else(Zone::local),
            },
            wait: self.wait,
        })
    }
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Read the file, list every problem (exit 2) or what it understood (exit 0), secrets as ***
    Check(ConfigCheckArgs),
    /// Print a commented example of every key, valid as it is
    Example,
}

#[derive(Args, Debug)]
pub struct ConfigCheckArgs {
    /// The configuration file (TOML)
    #[arg(long, env = "FLUME_WATCHER_CONFIG", value_name = "PATH")]
    pub config: PathBuf,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Configuration file (TOML; `flume-watcher config example` shows every key). Flags and
    /// variables override it; channel flags add channels to its own
    #[arg(long, env = "FLUME_WATCHER_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub zk: ZkRunArgs,
    /// Generic webhook: POST {"alerts":[…]} (repeatable; the variable holds URLs separated by
    /// spaces)
    #[arg(long = "webhook", env = "FLUME_WATCHER_WEBHOOK", hide_env_values = true, value_parser = parse_webhook, value_name = "URL")]
    pub webhooks: Vec<WebhookConfig>,
    /// DingTalk robot, optionally signed: URL[,secret=S] (repeatable; the variable holds robots
    /// separated by spaces)
    #[arg(long = "dingtalk", env = "FLUME_WATCHER_DINGTALK", hide_env_values = true, value_parser = parse_dingtalk, value_name = "URL[,secret=S]")]
    pub dingtalk: Vec<DingTalkConfig>,
    /// Print alerts on stdout, one line each
    #[arg(long, env = "FLUME_WATCHER_CONSOLE")]
    pub console: bool,
    /// Language of the messages people read: en or zh [default: en]
    #[arg(long, env = "FLUME_WATCHER_LANG", value_parser = Lang::parse, value_name = "LANG")]
    pub lang: Option<Lang>,
    /// Time zone of the times in messages: an IANA name (Asia/Shanghai), UTC or +08:00
    /// [default: this machine's]
    #[arg(long, env = "FLUME_WATCHER_TIMEZONE", value_parser = Zone::parse, value_name = "ZONE")]
    pub timezone: Option<Zone>,
    /// An agent live again for this long is reported recovered
    #[arg(long, env = "FLUME_WATCHER_RECOVERED_AFTER", default_value = "30s", value_parser = duration)]
    pub recovered_after: Duration,
    /// Without a working ZooKeeper session for this long, tell the channels the watcher is blind
    #[arg(long, env = "FLUME_WATCHER_BLIND_AFTER", default_value = "60s", value_parser = duration)]
    pub blind_after: Duration,
    /// First delay before a failed delivery is tried again; doubles up to --retry-max
    #[arg(long, env = "FLUME_WATCHER_RETRY_INITIAL", default_value = "1s", value_parser = duration)]
    pub retry_initial: Duration,
    /// Longest delay between delivery attempts
    #[arg(long, env = "FLUME_WATCHER_RETRY_MAX", default_value = "60s", value_parser = duration)]
    pub retry_max: Duration,
    /// Serve a read-only status page, /metrics, /healthz and /api/v1/agents on this address
    /// (e.g. 127.0.0.1:9107; port 0 picks one and logs it). Off by default. Anything but
    /// loopback lets whoever reaches it read agent ids, hosts and labels
    #[arg(long, env = "FLUME_WATCHER_LISTEN", value_name = "ADDR:PORT")]
    pub listen: Option<std::net::SocketAddr>,
}

/// The ZooKeeper flags of `status` and `silence`: on the command line, in the environment, or in
/// the watcher's own file, so that an operator on the watcher's host types no connect string.
#[derive(Args, Debug)]
pub struct OneShotArgs {
    /// The watcher's configuration file: its [zookeeper] connect, root and auth_file are used
    /// where no flag or variable gives them
    #[arg(long, env = "FLUME_WATCHER_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub connection: ZkArgs,
}

impl OneShotArgs {
    /// The session settings, flags and variables over the file's; every problem into `errors`.
    fn resolve(mut self, given: &Given, errors: &mut Vec<String>) -> Option<(ZkConfig, Layout)> {
        if let Some(path) = &self.config {
            match config::load(path) {
                Ok(file) => {
                    let (zk, c) = (&file.zookeeper, &mut self.connection);
                    c.zk = given.pick("zk", std::mem::take(&mut c.zk), zk.connect.clone());
                    c.root = given.pick("root", std::mem::take(&mut c.root), zk.root.clone());
                    if c.zk_auth.is_none() && c.zk_auth_file.is_none() {
                        c.zk_auth_file = zk.auth_file.clone();
                    }
                }
                Err(problems) => errors.extend(in_file(path, problems)),
            }
        }
        if self.connection.zk.is_empty() && !given.by_user("zk") {
            errors.insert(
                0,
                if self.config.is_some() {
                    "no ZooKeeper given: give --zk, or connect in the file's [zookeeper]"
                } else {
                    "the following required arguments were not provided: --zk <ZK> (or --config with the watcher's file)"
                }
                .to_owned(),
            );
            return None;
        }
        let found = self.connection.into_config(errors);
        found.filter(|_| errors.is_empty())
    }
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub zk: OneShotArgs,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

/// The channel flags: their variables hold lists separated by spaces, while a flag's value is one
/// URL, judged whole (a URL has no blank; `--webhook 'not a url'` is refused as such). The
/// variables hide their values in `--help`: they hold tokens and secrets.
pub const ENV_LISTS: &[EnvList] = &[
    EnvList {
        long: "webhook",
        delimiter: ' ',
    },
    EnvList {
        long: "dingtalk",
        delimiter: ' ',
    },
];

const RUN_EXAMPLES: &str = concat!(
    "  flume-watcher run --zk zk1:2181,zk2:2181/kafka --webhook https://alerts.example/hook\n",
    "  flume-watcher run --config /etc/flume-watchdog/watcher.toml\n",
    "  flume-watcher run --zk zk1:2181/kafka --console \\\n",
    "      --dingtalk 'https://oapi.dingtalk.com/robot/send?access_token=TOKEN,secret=SECRET'",
);

const STATUS_EXAMPLES: &str = concat!(
    "  flume-watcher status --zk zk1:2181,zk2:2181/kafka\n",
    "  flume-watcher status --zk zk1:2181/kafka --zk-auth-file /etc/flume-watchdog/zk-auth --json\n",
    "  flume-watcher status --config /etc/flume-watchdog/watcher.toml",
);

const SILENCE_ADD_EXAMPLES: &str = concat!(
    "  flume-watcher silence add --zk zk1:2181,zk2:2181/kafka --agent 'web7-*' --for 2h --comment 'kernel upgrade'\n",
    "  flume-watcher silence add --zk zk1:2181/kafka --agent '*' --host 'rack7-*' --label team=logs \\\n",
    "      --start 2026-12-03T00:00+08:00 --until 2026-12-03T02:00+08:00 --comment 'rack 7 power work'",
);

const SILENCE_LIST_EXAMPLES: &str = concat!(
    "  flume-watcher silence list --zk zk1:2181,zk2:2181/kafka\n",
    "  flume-watcher silence list --config /etc/flume-watchdog/watcher.toml\n",
    "  flume-watcher silence list --zk zk1:2181/kafka --all --json",
);

const SILENCE_REMOVE_EXAMPLES: &str =
    "  flume-watcher silence remove --zk zk1:2181,zk2:2181/kafka 3f9a1c2e";

const SILENCE_ADD_EXIT_CODES: &str = concat!(
    "  0  added: its id is on stdout\n",
    "  1  cannot write (ZooKeeper unreachable, not authorized)\n",
    "  2  bad flags (every problem is listed)",
);

const SILENCE_LIST_EXIT_CODES: &str = concat!(
    "  0  ok (a node that is not a silence is named on stderr and skipped)\n",
    "  1  cannot read (ZooKeeper unreachable, not authorized, or the root does not exist)\n",
    "  2  bad flags (every problem is listed)",
);

const SILENCE_REMOVE_EXIT_CODES: &str = concat!(
    "  0  removed\n",
    "  1  no silence has that id, or ZooKeeper is unreachable or refused\n",
    "  2  bad flags, or ID is not a silence id (every problem is listed)",
);

/// Times as --until and --start take them.
const SILENCE_TIMES: &str = "Times: RFC 3339 with an offset, seconds optional: \
2026-12-03T02:00+08:00, 2026-12-02T18:00:00Z.";

fn silence_add_help() -> String {
    format!(
        "Examples:\n{SILENCE_ADD_EXAMPLES}\n\nExit codes:\n{SILENCE_ADD_EXIT_CODES}\n\n\
         {DURATIONS}\n{SILENCE_TIMES}"
    )
}

fn silence_list_help() -> String {
    format!("Examples:\n{SILENCE_LIST_EXAMPLES}\n\nExit codes:\n{SILENCE_LIST_EXIT_CODES}")
}

fn silence_remove_help() -> String {
    format!("Examples:\n{SILENCE_REMOVE_EXAMPLES}\n\nExit codes:\n{SILENCE_REMOVE_EXIT_CODES}")
}

fn silence_help() -> String {
    format!(
        "Examples:\n{SILENCE_ADD_EXAMPLES}\n{SILENCE_LIST_EXAMPLES}\n{SILENCE_REMOVE_EXAMPLES}\n\n\
         Exit codes of add:\n{SILENCE_ADD_EXIT_CODES}\n\nExit codes of list:\n{SILENCE_LIST_EXIT_CODES}\n\n\
         Exit codes of remove:\n{SILENCE_REMOVE_EXIT_CODES}\n\n{DURATIONS}\n{SILENCE_TIMES}"
    )
}

/// The exit codes of `run`, as main gives them.
const RUN_EXIT_CODES: &str = concat!(
    "  0  stopped by SIGTERM or SIGINT\n",
    "  1  could not start\n",
    "  2  bad flags (every problem is listed)",
);

/// The exit codes of `status`, as main gives them.
const STATUS_EXIT_CODES: &str = concat!(
    "  0  ok\n",
    "  1  cannot read (ZooKeeper unreachable, not authorized, or the root does not exist)\n",
    "  2  bad flags (every problem is listed)",
);

/// After the options of `run --help`: what a new operator looks for first.
fn run_help() -> String {
    format!("Examples:\n{RUN_EXAMPLES}\n\nExit codes:\n{RUN_EXIT_CODES}\n\n{DURATIONS}")
}

fn status_help() -> String {
    // No durations: status takes none.
    format!("Examples:\n{STATUS_EXAMPLES}\n\nExit codes:\n{STATUS_EXIT_CODES}")
}

fn top_help() -> String {
    format!(
        "Examples:\n{}\n{}\n{}\n\n\
         Exit codes of run:\n{RUN_EXIT_CODES}\n\nExit codes of status:\n{STATUS_EXIT_CODES}\n\n\
         Exit codes of silence: see flume-watcher silence --help\n\n{DURATIONS}",
        RUN_EXAMPLES.lines().next().unwrap_or_default(),
        STATUS_EXAMPLES.lines().next().unwrap_or_default(),
        SILENCE_ADD_EXAMPLES.lines().next().unwrap_or_default(),
    )
}

/// The command line, its ZooKeeper flags' variables named for this binary. `run` may take its
/// connect string from a configuration file instead of `--zk`.
pub fn command() -> clap::Command {
    let optional = |zk: clap::Arg| zk.required(false).default_value("");
    with_zk_env(Cli::command(), ENV_PREFIX)
        .mut_subcommand("run", |c| c.mut_arg("zk", optional))
        .mut_subcommand("status", |c| c.mut_arg("zk", optional))
        .mut_subcommand("silence", |silence| {
            ["add", "list", "remove"]
                .into_iter()
                .fold(silence, |s, name| {
                    s.mut_subcommand(name, |c| c.mut_arg("zk", optional))
                })
        })
}

/// What a command line asks for, checked.
#[derive(Debug)]
pub enum Config {
    Run(RunConfig),
    Status(StatusConfig),
    /// `config check`: the file, read and checked.
    Checked {
        path: PathBuf,
        file: FileConfig,
    },
    /// `config example`.
    Example,
    /// `test-alert`.
    TestAlert(TestAlertConfig),
    /// `silence add`: the record to store.
    SilenceAdd(SilenceAddConfig),
    /// `silence list`.
    SilenceList(SilenceListConfig),
    /// `silence remove`.
    SilenceRemove(SilenceRemoveConfig),
}

#[derive(Debug)]
pub struct SilenceAddConfig {
    pub zk: ZkConfig,
    pub layout: Layout,
    pub record: SilenceRecord,
}

#[derive(Debug)]
pub struct SilenceListConfig {
    pub zk: ZkConfig,
    pub layout: Layout,
    pub json: bool,
    pub all: bool,
}

#[derive(Debug)]
pub struct SilenceRemoveConfig {
    pub zk: ZkConfig,
    pub layout: Layout,
    pub id: String,
}

#[derive(Debug)]
pub struct StatusConfig {
    pub zk: ZkConfig,
    pub layout: Layout,
    pub json: bool,
}

/// Reads the command line (`args` starts with the program's name) and checks it, listing every
/// problem at once.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Config, Refusal> {
    common::cli::parse_with_sources(command(), ENV_LISTS, args, |cli: Cli, matches| {
        match cli.command {
            CliCommand::Run(run) => {
                let given = Given(matches.subcommand_matches("run"));
                run.into_config(&given).map(Config::Run)
            }
            CliCommand::Status(status) => {
                let given = Given(matches.subcommand_matches("status"));
                status.into_config(&given).map(Config::Status)
            }
            CliCommand::Config(ConfigCommand::Check(check)) => match config::load(&check.config) {
                Ok(file) => Ok(Config::Checked {
                    path: check.config,
                    file,
                }),
                Err(problems) => Err(ConfigErrors(in_file(&check.config, problems))),
            },
            CliCommand::Config(ConfigCommand::Example) => Ok(Config::Example),
            CliCommand::TestAlert(args) => args.into_config().map(Config::TestAlert),
            CliCommand::Silence(SilenceCommand::Add(args)) => args
                .into_config(
                    &silence_given(matches, "add"),
                    SystemTime::now(),
                    &crate::silencing::author(),
                )
                .map(Config::SilenceAdd),
            CliCommand::Silence(SilenceCommand::List(args)) => {
                let given = silence_given(matches, "list");
                one_shot(args.zk, &given, Vec::new()).map(|(zk, layout)| {
                    Config::SilenceList(SilenceListConfig {
                        zk,
                        layout,
                        json: args.json,
                        all: args.all,
                    })
                })
            }
            CliCommand::Silence(SilenceCommand::Remove(args)) => {
                let mut errors = Vec::new();
                if !common::silence::is_id(&args.id) {
                    errors.push(format!(
                        "ID: `{}` is not a silence id (8 lowercase hex digits, as `silence list` shows them)",
                        args.id
                    ));
                }
                let given = silence_given(matches, "remove");
                one_shot(args.zk, &given, errors).map(|(zk, layout)| {
                    Config::SilenceRemove(SilenceRemoveConfig {
                        zk,
                        layout,
                        id: args.id,
                    })
                })
            }
        }
    })
}

/// The file's problems, each saying which file.
fn in_file(path: &std::path::Path, problems: config::FileProblems) -> Vec<String> {
    problems
        .0
        .into_iter()
        .map(|p| format!("{}: {p}", path.display()))
        .collect()
}

/// The matches of `silence <name>`.
fn silence_given<'m>(matches: &'m ArgMatches, name: &str) -> Given<'m> {
    Given(
        matches
            .subcommand_matches("silence")
            .and_then(|m| m.subcommand_matches(name)),
    )
}

/// Which of `run`'s values a flag or a variable gave (they override the file), and which are
/// defaults (the file overrides them).
struct Given<'m>(Option<&'m ArgMatches>);

impl Given<'_> {
    fn by_user(&self, id: &str) -> bool {
        self.0
            .and_then(|m| m.value_source(id))
            .is_some_and(|s| s != ValueSource::DefaultValue)
    }

    /// The flag's value if given, else the file's, else the flag's default.
    fn pick<T>(&self, id: &str, flag: T, file: Option<T>) -> T {
        match file {
            Some(v) if !self.by_user(id) => v,
            _ => flag,
        }
    }
}

/// The ZooKeeper flags of a one-shot command, as `status` takes them, after the command's own
/// `errors`: every problem at once.
fn one_shot(
    zk: OneShotArgs,
    given: &Given,
    mut errors: Vec<String>,
) -> Result<(ZkConfig, Layout), ConfigErrors> {
    match zk.resolve(given, &mut errors) {
        Some(found) if errors.is_empty() => Ok(found),
        _ => Err(ConfigErrors(errors)),
    }
}

/// `--until` and `--start`: RFC 3339 with an offset (jiff takes `02:00` without seconds too).
/// A time without an offset is refused rather than guessed in some zone.
fn parse_time(flag: &str, s: &str) -> Result<SystemTime, String> {
    s.trim()
        .parse::<jiff::Timestamp>()
        .map(SystemTime::from)
        .map_err(|_| {
            format!(
                "--{flag}: `{s}` is not a time with an offset: write RFC 3339, e.g. \
                 2026-12-03T02:00+08:00 or 2026-12-02T18:00:00Z"
            )
        })
}

impl SilenceAddArgs {
    /// The record to store, or every problem; `now` and `author` given so that tests need no
    /// clock and no user.
    fn into_config(
        self,
        given: &Given,
        now: SystemTime,
        author: &str,
    ) -> Result<SilenceAddConfig, ConfigErrors> {
        let mut errors = Vec::new();
        let record = self.record(now, author, &mut errors);
        let zk = self.zk.resolve(given, &mut errors);
        match (zk, record) {
            (Some((zk, layout)), Some(record)) if errors.is_empty() => {
                Ok(SilenceAddConfig { zk, layout, record })
            }
            _ => Err(ConfigErrors(errors)),
        }
    }

    fn record(
        &self,
        now: SystemTime,
        author: &str,
        errors: &mut Vec<String>,
    ) -> Option<SilenceRecord> {
        let before = errors.len();
        if self.agent.trim().is_empty() {
            errors.push(
                "--agent: empty; give a glob on the agent id (`*` for every agent)".to_owned(),
            );
        } else if let Err(e) = Pattern::new(&self.agent) {
            errors.push(format!("--agent: {e}"));
        }
        if let Some(host) = &self.host {
            if let Err(e) = Pattern::new(host) {
                errors.push(format!("--host: {e}"));
            }
        }
        let mut labels = BTreeMap::new();
        for label in &self.labels {
            match label.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() => {
                    if let Err(e) = Pattern::new(v) {
                        errors.push(format!("--label {k}: {e}"));
                    }
                    if labels.insert(k.to_owned(), v.to_owned()).is_some() {
                        errors.push(format!("--label {k}: given twice"));
                    }
                }
                _ => errors.push(format!("--label: `{label}` is not KEY=GLOB (team=logs)")),
            }
        }
        if self.comment.trim().is_empty() {
            errors.push(
                "--comment: empty; say why (kernel upgrade): the next person on call reads it"
                    .to_owned(),
            );
        }
        let starts = match &self.start {
            None => Some(now),
            Some(s) => parse_time("start", s).map_err(|e| errors.push(e)).ok(),
        };
        let ends = match (self.for_, &self.until) {
            (Some(_), Some(_)) => {
                errors.push("--for and --until: give one of them, not both".to_owned());
                None
            }
            (None, None) => {
                errors.push("--for or --until: give one (how long, or until when)".to_owned());
                None
            }
            (Some(d), None) if d.is_zero() => {
                errors.push("--for: must be more than 0 (2h, 90m)".to_owned());
                None
            }
            (Some(d), None) => starts.and_then(|s| s.checked_add(d)),
            (None, Some(u)) => parse_time("until", u).map_err(|e| errors.push(e)).ok(),
        };
        if let (Some(starts), Some(ends)) = (starts, ends) {
            if ends <= now {
                errors.push(format!(
                    "--{}: the silence would end in the past ({}; now is {})",
                    if self.until.is_some() { "until" } else { "for" },
                    common::time::format(ends),
                    common::time::format(now)
                ));
            } else if ends <= starts {
                errors.push(format!(
                    "--until: {} is not after --start {}",
                    common::time::format(ends),
                    common::time::format(starts)
                ));
            }
        }
        let (starts, ends) = (starts?, ends?);
        (errors.len() == before).then(|| SilenceRecord {
            v: 1,
            agent: self.agent.clone(),
            host: self.host.clone(),
            labels,
            starts_at: common::time::format(starts),
            ends_at: common::time::format(ends),
            created_by: author.to_owned(),
            comment: self.comment.trim().to_owned(),
        })
    }
}

impl StatusArgs {
    fn into_config(self, given: &Given) -> Result<StatusConfig, ConfigErrors> {
        let mut errors = Vec::new();
        match self.zk.resolve(given, &mut errors) {
            Some((zk, layout)) => Ok(StatusConfig {
                zk,
                layout,
                json: self.json,
            }),
            None => Err(ConfigErrors(errors)),
        }
    }
}

#[derive(Debug)]
pub struct RunConfig {
    pub watch: WatchConfig,
    pub channels: Vec<Configured>,
    pub retry: crate::notify::RetryPolicy,
    /// Language and time zone of the messages people read.
    pub style: Style,
    /// `--listen`: the HTTP listener's address, if any.
    pub listen: Option<std::net::SocketAddr>,
}

impl RunArgs {
    /// Takes from the file what no flag or variable gave.
    fn merge(&mut self, file: &FileConfig, given: &Given) {
        let (zk, alerts) = (&file.zookeeper, &file.alerts);
        let c = &mut self.zk.connection;
        c.zk = given.pick("zk", std::mem::take(&mut c.zk), zk.connect.clone());
        c.root = given.pick("root", std::mem::take(&mut c.root), zk.root.clone());
        // Credentials from a flag of either form win over the file's.
        if c.zk_auth.is_none() && c.zk_auth_file.is_none() {
            c.zk_auth_file = zk.auth_file.clone();
        }
        self.zk.session_timeout = given.pick(
            "session_timeout",
            self.zk.session_timeout,
            zk.session_timeout,
        );
        if self.zk.zk_acl.is_none() {
            self.zk.zk_acl = zk.acl.clone();
        }
        self.recovered_after = given.pick(
            "recovered_after",
            self.recovered_after,
            alerts.recovered_after,
        );
        self.blind_after = given.pick("blind_after", self.blind_after, alerts.blind_after);
        self.retry_initial = given.pick("retry_initial", self.retry_initial, alerts.retry_initial);
        self.retry_max = given.pick("retry_max", self.retry_max, alerts.retry_max);
        if self.listen.is_none() {
            self.listen = file.http.listen;
        }
    }

    fn into_config(mut self, given: &Given) -> Result<RunConfig, ConfigErrors> {
        let mut errors = Vec::new();
        let file = match &self.config {
            Some(path) => match config::load(path) {
                Ok(file) => file,
                Err(problems) => return Err(ConfigErrors(in_file(path, problems))),
            },
            None => FileConfig::default(),
        };
        let from_file = self.config.is_some();
        self.merge(&file, given);
        // An empty --zk given is judged as such; none given at all, and none in the file, is
        // a missing flag.
        let missing = self.zk.connection.zk.is_empty() && !given.by_user("zk");
        let zk = self.zk.into_config(&mut errors);
        if missing {
            // Not also "the connect string is empty": said once, as missing.
            errors.retain(|e| !e.starts_with("invalid ZooKeeper connect string \"\""));
            errors.insert(
                0,
                if from_file {
                    "no ZooKeeper to watch: give --zk, or connect in the file's [zookeeper]"
                } else {
                    "the following required arguments were not provided: --zk <ZK>"
                }
                .to_owned(),
            );
        }
        let router = crate::routing::Router::new(file.routes, file.default_channels);
        let style = Style {
            lang: self.lang.or(file.alerts.lang).unwrap_or_default(),
            zone: self
                .timezone
                .take()
                .or(file.alerts.timezone)
                .unwrap_or_else(Zone::local),
        };
        let mut channels = file.channels;
        channels.extend(self.webhooks.into_iter().map(Configured::unnamed));
        channels.extend(self.dingtalk.into_iter().map(Configured::unnamed));
        if self.console {
            channels.push(Configured::unnamed(ConsoleChannel::new()));
        }
        if channels.is_empty() {
            errors.push(
                "no alert channel: give at least one of --webhook, --dingtalk, --console \
                 (or a [[channel]] in --config)"
                    .to_owned(),
            );
        }
        if self.retry_max < self.retry_initial || self.retry_initial.is_zero() {
            errors.push(
                "--retry-initial must be more than 0 and not longer than --retry-max".to_owned(),
            );
        }
        match zk {
            Some((zk, layout)) if errors.is_empty() => Ok(RunConfig {
                watch: WatchConfig {
                    zk,
                    layout,
                    recovered_after: self.recovered_after,
                    blind_after: self.blind_after,
                    router,
                    board: crate::http::Board::default(),
                },
                channels,
                retry: crate::notify::RetryPolicy {
                    initial: self.retry_initial,
                    max: self.retry_max,
                },
                style,
                listen: self.listen,
            }),
            _ => Err(ConfigErrors(errors)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `run`'s settings from a command line, or every problem.
    fn run_config(args: &[&str]) -> Result<RunConfig, Vec<String>> {
        let args = std::iter::once("flume-watcher").chain(args.iter().copied());
        match parse(args.map(OsString::from)) {
            Ok(Config::Run(cfg)) => Ok(cfg),
            Err(Refusal::Problems(p)) => Err(p.problems),
            other => panic!("expected run, got {other:?}"),
        }
    }

    #[test]
    fn channels_from_flags() {
        let cfg = run_config(&[
            "run",
            "--zk",
            "127.0.0.1:2181/kafka",
            "--webhook",
            "http://127.0.0.1:9/hook",
            "--dingtalk",
            "https://oapi.dingtalk.com/robot/send?access_token=T,secret=S",
            "--console",
            "--recovered-after",
            "2s",
        ])
        .expect("valid");
        assert_eq!(cfg.channels.len(), 3);
        assert_eq!(cfg.watch.recovered_after, Duration::from_secs(2));
    }

    #[test]
    fn listen_is_off_unless_asked() {
        let off = run_config(&["run", "--zk", "z:1", "--console"]).expect("valid");
        assert_eq!(off.listen, None);
        let on = run_config(&["run", "--zk", "z:1", "--console", "--listen", "127.0.0.1:0"])
            .expect("valid");
        assert_eq!(on.listen, Some("127.0.0.1:0".parse().expect("addr")));
        let bad = run_config(&["run", "--zk", "z:1", "--console", "--listen", "9107"])
            .expect_err("not an address");
        assert!(
            bad[0].contains("invalid value '9107' for '--listen <ADDR:PORT>'"),
            "{bad:?}"
        );
    }

    #[test]
    fn all_problems_at_once() {
        let err = run_config(&["run", "--zk", "", "--root", "x"]).expect_err("invalid");
        assert_eq!(err.len(), 3, "{err:?}");
        assert!(err.join("\n").contains("no alert channel"), "{err:?}");
    }

    fn status_args(args: &[&str]) -> StatusArgs {
        let cli: Cli = common::cli::parse_strict(
            command(),
            std::iter::once("flume-watcher").chain(args.iter().copied()),
        )
        .expect("flags parse");
        match cli.command {
            CliCommand::Status(s) => s,
            other => panic!("expected status, got {other:?}"),
        }
    }

    #[test]
    fn credentials_for_run_and_status() {
        let cfg = run_config(&[
            "run",
            "--zk",
            "z:1",
            "--console",
            "--zk-auth",
            "alice:s3cr3t",
        ])
        .expect("valid");
        assert_eq!(cfg.watch.zk.auth.as_ref().map(|a| a.user()), Some("alice"));
        assert_eq!(
            cfg.watch.zk.acl.spec().to_string(),
            "creator-all,world-read"
        );
        assert!(!format!("{cfg:?}").contains("s3cr3t"));

        let args = status_args(&["status", "--zk", "z:1", "--zk-auth", "alice:s3cr3t"]);
        assert!(!format!("{args:?}").contains("s3cr3t"));
        let mut errors = Vec::new();
        let (zk, _) = args.zk.connection.into_config(&mut errors).expect("valid");
        assert_eq!(zk.auth.as_ref().map(|a| a.user()), Some("alice"));

        let args = status_args(&["status", "--zk", "z:1", "--zk-auth", "s3cr3t"]);
        assert!(args.zk.connection.into_config(&mut errors).is_none());
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].starts_with("--zk-auth: "), "{errors:?}");
        assert!(!errors[0].contains("s3cr3t"), "{errors:?}");
    }

    #[test]
    fn the_credentials_flag_hides_its_environment_value() {
        let cmd = command();
        for sub in ["run", "status"] {
            let sub = cmd.find_subcommand(sub).expect("subcommand");
            let arg = sub
                .get_arguments()
                .find(|a| a.get_id() == "zk_auth")
                .expect("--zk-auth");
            assert!(arg.is_hide_env_values_set());
        }
    }

    #[test]
    fn a_refused_channel_is_not_also_missing() {
        let args = [
            "flume-watcher",
            "run",
            "--zk",
            "z:1",
            "--webhook",
            "not a url",
            "--bogus",
        ];
        match parse(args.map(OsString::from)) {
            Err(Refusal::Problems(p)) => {
                let problems = p.problems;
                assert_eq!(problems.len(), 2, "{problems:?}");
                assert!(problems[0].contains("'--bogus'"), "{problems:?}");
                assert!(
                    problems[1].contains("invalid value 'not a url' for '--webhook <URL>'"),
                    "{problems:?}"
                );
            }
            other => panic!("expected problems, got {other:?}"),
        }
    }

    /// `status` and `silence` take the watcher's file for what no flag gives: an operator on the
    /// watcher's host types no connect string; a flag still wins, and what is missing is said.
    #[test]
    fn status_and_silence_take_the_zookeeper_of_the_watchers_file() {
        let path = std::env::temp_dir().join(format!("one-shot-{}.toml", std::process::id()));
        std::fs::write(
            &path,
            "[zookeeper]\nconnect = \"zk1:2181/kafka\"\nroot = \"/flume-prod\"\n",
        )
        .expect("write the file");
        let file = path.to_str().expect("a UTF-8 path");
        let parsed = |args: &[&str]| {
            parse(
                std::iter::once("flume-watcher")
                    .chain(args.iter().copied())
                    .map(OsString::from),
            )
        };
        match parsed(&["status", "--config", file]) {
            Ok(Config::Status(c)) => {
                assert_eq!(c.zk.connect.to_string(), "zk1:2181/kafka");
                assert_eq!(c.layout.root(), "/flume-prod");
            }
            other => panic!("status from the file: {other:?}"),
        }
        match parsed(&["silence", "list", "--config", file, "--zk", "zk9:2181"]) {
            Ok(Config::SilenceList(c)) => {
                assert_eq!(c.zk.connect.to_string(), "zk9:2181", "the flag wins");
                assert_eq!(c.layout.root(), "/flume-prod");
            }
            other => panic!("silence list from the file: {other:?}"),
        }
        match parsed(&["silence", "remove", "--config", file, "3f9a1c2e"]) {
            Ok(Config::SilenceRemove(c)) => assert_eq!(c.layout.root(), "/flume-prod"),
            other => panic!("silence remove from the file: {other:?}"),
        }
        assert_eq!(
            problems(&["silence", "list"]),
            ["the following required arguments were not provided: --zk <ZK> (or --config with the watcher's file)"]
        );
        std::fs::write(&path, "[alerts]\nlang = \"zh\"\n").expect("write the file");
        assert_eq!(
            problems(&["status", "--config", file]),
            ["no ZooKeeper given: give --zk, or connect in the file's [zookeeper]"]
        );
        std::fs::remove_file(&path).expect("remove the file");
        let gone = problems(&[
            "silence",
            "add",
            "--config",
            file,
            "--agent",
            "*",
            "--for",
            "1h",
            "--comment",
            "x",
        ]);
        assert!(
            gone.iter().any(|p| p.starts_with(file)),
            "the file is named: {gone:?}"
        );
    }

    fn problems(args: &[&str]) -> Vec<String> {
        let args = std::iter::once("flume-watcher").chain(args.iter().copied());
        match parse(args.map(OsString::from)) {
            Err(Refusal::Problems(p)) => p.problems,
            other => panic!("expected problems, got {other:?}"),
        }
    }

    #[test]
    fn a_dingtalk_value_is_judged_whole_and_its_secrets_are_not_shown() {
        let robot = "https://oapi.dingtalk.com/robot/send?access_token=T0K3N";
        let found = problems(&[
            "run",
            "--zk",
            "z:1",
            "--dingtalk",
            &format!("{robot};secret=S3CR3T"),
            "--dingtalk",
            &format!("{robot} {robot}"),
            "--retry-initial",
            "-1s",
        ]);
        let text = found.join("\n");
        assert_eq!(found.len(), 3, "{text}");
        for want in [
            "invalid value 'https://oapi.dingtalk.com/robot/send?access_token=***;secret=***' \
             for '--dingtalk <URL[,secret=S]>': the secret must follow the URL after a comma: write URL,secret=S",
            "access_token=*** https://oapi.dingtalk.com/robot/send?access_token=***' for '--dingtalk",
            "invalid value '-1s' for '--retry-initial <RETRY_INITIAL>': a duration cannot be negative",
        ] {
            assert!(text.contains(want), "{want:?} missing in:\n{text}");
        }
        assert!(
            !text.contains("T0K3N") && !text.contains("S3CR3T"),
            "{text}"
        );
    }

    #[test]
    fn status_refuses_the_flags_of_a_session_that_stays() {
        let found = problems(&[
            "status",
            "--zk",
            "z:1",
            "--session-timeout",
            "5s",
            "--zk-acl",
            "creator-all",
        ]);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].starts_with("unexpected argument '--session-timeout' found"));
        assert!(found[1].starts_with("unexpected argument '--zk-acl' found"));
        let cfg = match parse(["flume-watcher", "status", "--zk", "z:1"].map(OsString::from)) {
            Ok(Config::Status(cfg)) => cfg,
            other => panic!("expected status, got {other:?}"),
        };
        assert_eq!(cfg.zk.session_timeout, Duration::from_secs(10));
        assert_eq!(cfg.zk.acl.spec().to_string(), "world-all");
    }

    /// `silence add`'s record at a fixed now, or every problem.
    fn silence_add(args: &[&str], now: SystemTime) -> Result<SilenceRecord, Vec<String>> {
        let full = ["flume-watcher", "silence", "add", "--zk", "z:1"]
            .into_iter()
            .chain(args.iter().copied())
            .map(OsString::from);
        let cli = common::cli::parse_with_sources(command(), ENV_LISTS, full, |cli: Cli, m| {
            match cli.command {
                CliCommand::Silence(SilenceCommand::Add(a)) => {
                    a.into_config(&silence_given(m, "add"), now, "ops@bastion")
                }
                other => panic!("expected silence add, got {other:?}"),
            }
        });
        match cli {
            Ok(cfg) => Ok(cfg.record),
            Err(Refusal::Problems(p)) => Err(p.problems),
            Err(other) => panic!("expected problems, got {other:?}"),
        }
    }

    #[test]
    fn silence_add_takes_for_or_until_and_refuses_what_an_operator_gets_wrong() {
        // 2026-12-02T16:00:00Z
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_227_200);
        let ok = silence_add(
            &[
                "--agent",
                "web7-*",
                "--host",
                "rack7-*",
                "--label",
                "team=lo*",
                "--for",
                "2h",
                "--comment",
                " kernel upgrade ",
            ],
            now,
        )
        .expect("valid");
        assert_eq!(
            ok,
            SilenceRecord {
                v: 1,
                agent: "web7-*".into(),
                host: Some("rack7-*".into()),
                labels: BTreeMap::from([("team".into(), "lo*".into())]),
                starts_at: "2026-12-02T16:00:00.000Z".into(),
                ends_at: "2026-12-02T18:00:00.000Z".into(),
                created_by: "ops@bastion".into(),
                comment: "kernel upgrade".into(),
            }
        );
        // --until with an offset and without seconds; --start in the future (pending).
        let until = silence_add(
            &[
                "--agent",
                "*",
                "--start",
                "2026-12-03T01:00+08:00",
                "--until",
                "2026-12-03T02:00+08:00",
                "--comment",
                "x",
            ],
            now,
        )
        .expect("valid");
        assert_eq!(
            (until.starts_at.as_str(), until.ends_at.as_str()),
            ("2026-12-02T17:00:00.000Z", "2026-12-02T18:00:00.000Z")
        );
        let z = silence_add(
            &[
                "--agent",
                "a",
                "--until",
                "2026-12-02T18:30:00Z",
                "--comment",
                "x",
            ],
            now,
        )
        .expect("valid");
        assert_eq!(z.ends_at, "2026-12-02T18:30:00.000Z");
        assert!(z.host.is_none() && z.labels.is_empty());

        // Each row: the flags, and what the (only) problem says.
        let rows: &[(&[&str], &str)] = &[
            (&["--agent", "a", "--comment", "x"], "--for or --until: give one"),
            (
                &["--agent", "a", "--for", "1h", "--until", "2026-12-03T02:00+08:00", "--comment", "x"],
                "--for and --until: give one of them, not both",
            ),
            (&["--agent", "a", "--for", "0s", "--comment", "x"], "--for: must be more than 0"),
            (
                &["--agent", "a", "--for", "-1h", "--comment", "x"],
                "invalid value '-1h' for '--for <DURATION>': a duration cannot be negative",
            ),
            (
                &["--agent", "a", "--for", "soon", "--comment", "x"],
                "invalid value 'soon' for '--for <DURATION>'",
            ),
            (
                &["--agent", "a", "--until", "2026-12-02T15:00Z", "--comment", "x"],
                "--until: the silence would end in the past (2026-12-02T15:00:00.000Z; now is 2026-12-02T16:00:00.000Z)",
            ),
            (
                &["--agent", "a", "--until", "2026-12-03 02:00", "--comment", "x"],
                "--until: `2026-12-03 02:00` is not a time with an offset",
            ),
            (
                &["--agent", "a", "--start", "2026-12-02T19:00Z", "--until", "2026-12-02T18:00Z", "--comment", "x"],
                "--until: 2026-12-02T18:00:00.000Z is not after --start 2026-12-02T19:00:00.000Z",
            ),
            (&["--agent", "a", "--for", "1h", "--comment", "  "], "--comment: empty"),
            (&["--agent", "a", "--for", "1h"], "required arguments were not provided: --comment <TEXT>"),
            (&["--for", "1h", "--comment", "x"], "required arguments were not provided: --agent <GLOB>"),
            (&["--agent", "", "--for", "1h", "--comment", "x"], "--agent: empty"),
            (&["--agent", "[web", "--for", "1h", "--comment", "x"], "--agent: `[web` is not a glob"),
            (&["--agent", "a", "--host", "{x", "--for", "1h", "--comment", "x"], "--host: `{x` is not a glob"),
            (&["--agent", "a", "--label", "team", "--for", "1h", "--comment", "x"], "--label: `team` is not KEY=GLOB"),
            (&["--agent", "a", "--label", "team=[", "--for", "1h", "--comment", "x"], "--label team: `[` is not a glob"),
        ];
        for (args, want) in rows {
            let problems = silence_add(args, now).expect_err(want);
            assert_eq!(problems.len(), 1, "{args:?}: {problems:?}");
            assert!(
                problems[0].contains(want),
                "{args:?}: {want:?} not in {problems:?}"
            );
        }
        // Every problem at once.
        let all = silence_add(&["--agent", "[", "--comment", ""], now).expect_err("bad");
        assert_eq!(all.len(), 3, "{all:?}");
    }

    #[test]
    fn silence_remove_and_list_take_status_s_flags() {
        let parsed = |args: &[&str]| {
            parse(
                ["flume-watcher", "silence"]
                    .into_iter()
                    .chain(args.iter().copied())
                    .map(OsString::from),
            )
        };
        match parsed(&["remove", "--zk", "z:1", "--root", "/r", "3f9a1c2e"]) {
            Ok(Config::SilenceRemove(c)) => {
                assert_eq!((c.id.as_str(), c.layout.root()), ("3f9a1c2e", "/r"))
            }
            other => panic!("expected remove, got {other:?}"),
        }
        match parsed(&["remove", "--zk", "z:1", "3F9A1C2E"]) {
            Err(Refusal::Problems(p)) => {
                assert_eq!(p.problems.len(), 1, "{:?}", p.problems);
                assert!(p.problems[0].starts_with("ID: `3F9A1C2E` is not a silence id"));
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        match parsed(&[
            "list",
            "--zk",
            "z:1",
            "--json",
            "--all",
            "--zk-auth",
            "alice:pw",
        ]) {
            Ok(Config::SilenceList(c)) => {
                assert!(c.json && c.all);
                assert_eq!(c.zk.acl.spec().to_string(), "creator-all,world-read");
            }
            other => panic!("expected list, got {other:?}"),
        }
        match parsed(&["list", "--zk", "z:1", "--zk-acl", "world-all"]) {
            Err(Refusal::Problems(p)) => {
                assert!(p.problems[0].starts_with("unexpected argument '--zk-acl' found"))
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn every_help_ends_with_examples_and_exit_codes() {
        let mut cmd = command();
        let top = cmd.render_long_help().to_string();
        for (sub, codes) in [("run", RUN_EXIT_CODES), ("status", STATUS_EXIT_CODES)] {
            let help = cmd
                .find_subcommand_mut(sub)
                .expect("subcommand")
                .render_long_help()
                .to_string();
            for text in [&top, &help] {
                for want in [
                    &format!("flume-watcher {sub} --zk zk1:2181,zk2:2181/kafka"),
                    codes,
                ] {
                    assert!(text.contains(want), "{want:?} missing in:\n{text}");
                }
            }
            assert_eq!(help.contains(DURATIONS), sub == "run", "{help}");
        }
        assert!(top.contains(DURATIONS), "{top}");
        assert!(
            top.contains("flume-watcher silence add --zk zk1:2181,zk2:2181/kafka"),
            "{top}"
        );
        let silence = cmd.find_subcommand_mut("silence").expect("silence");
        let group = silence.render_long_help().to_string();
        for (sub, codes) in [
            ("add", SILENCE_ADD_EXIT_CODES),
            ("list", SILENCE_LIST_EXIT_CODES),
            ("remove", SILENCE_REMOVE_EXIT_CODES),
        ] {
            let help = silence
                .find_subcommand_mut(sub)
                .expect("subcommand")
                .render_long_help()
                .to_string();
            for text in [&group, &help] {
                for want in [
                    &format!("flume-watcher silence {sub} --zk zk1:2181,zk2:2181/kafka"),
                    codes,
                ] {
                    assert!(text.contains(want), "{want:?} missing in:\n{text}");
                }
            }
            let tail = help.trim_end();
            assert!(
                tail.ends_with(codes) || tail.ends_with(SILENCE_TIMES),
                "ends with its exit codes (and the syntax it reads):\n{help}"
            );
            assert_eq!(help.contains(DURATIONS), sub == "add", "{help}");
        }
    }
}
