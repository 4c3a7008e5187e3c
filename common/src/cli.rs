//! Command-line parts both binaries share: the ZooKeeper flags, and a parse that lists every
//! problem of a command line at once (clap alone stops at the first).

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Arg, ArgMatches, Args, Command, FromArgMatches};

use crate::config::{parse_duration, zk_security, ConnectString, Secret, ZkConfig};
use crate::layout::DEFAULT_ROOT;
use crate::Layout;

/// The ZooKeeper connection flags of every command of both binaries. They carry no environment
/// variable here: each binary names them with its own prefix through [`with_zk_env`].
#[derive(Args, Debug)]
pub struct ZkArgs {
    /// ZooKeeper connect string, e.g. zk1:2181,zk2:2181/kafka
    #[arg(long = "zk")]
    pub zk: String,
    /// Root of the watchdogs' nodes
    #[arg(long, default_value = DEFAULT_ROOT)]
    pub root: String,
    /// ZooKeeper digest credentials USER:PASSWORD, the same for all watchdogs and watchers of a
    /// root (command lines are visible to other users: prefer --zk-auth-file or the environment)
    #[arg(
        long = "zk-auth",
        hide_env_values = true,
        allow_hyphen_values = true,
        value_name = "USER:PASSWORD",
        value_parser = Secret::from_arg
    )]
    pub zk_auth: Option<Secret>,
    /// File holding the ZooKeeper credentials USER:PASSWORD (one line; keep it mode 0600)
    #[arg(long = "zk-auth-file", value_name = "PATH")]
    pub zk_auth_file: Option<PathBuf>,
}

/// The session timeout of a command that does one thing and ends (`stop`, `status`). Such a
/// command creates no node, so neither the timeout nor an ACL is its user's concern: the timeout
/// only bounds how long it waits for ZooKeeper to answer.
pub const ONE_SHOT_SESSION_TIMEOUT: Duration = Duration::from_secs(10);

impl ZkArgs {
    /// The settings of a one-shot command ([`ONE_SHOT_SESSION_TIMEOUT`], the default ACL),
    /// adding every problem to `errors`; `None` if there was one.
    pub fn into_config(&self, errors: &mut Vec<String>) -> Option<(ZkConfig, Layout)> {
        self.config(ONE_SHOT_SESSION_TIMEOUT, None, errors)
    }

    fn config(
        &self,
        session_timeout: Duration,
        acl: Option<&str>,
        errors: &mut Vec<String>,
    ) -> Option<(ZkConfig, Layout)> {
        let before = errors.len();
        let connect = ConnectString::parse(&self.zk)
            .map_err(|e| errors.push(e.to_string()))
            .ok();
        let layout = Layout::new(&self.root)
            .map_err(|e| errors.push(format!("--root: {e}")))
            .ok();
        let security = zk_security(
            self.zk_auth.as_ref(),
            self.zk_auth_file.as_deref(),
            acl,
            errors,
        );
        let (auth, acl) = security.filter(|_| errors.len() == before)?;
        Some((
            ZkConfig {
                connect: connect?,
                session_timeout,
                auth,
                acl,
            },
            layout?,
        ))
    }
}

/// The ZooKeeper flags of a command that stays (`run`): the connection flags, and the two that
/// only matter to a session that lives on and creates nodes.
#[derive(Args, Debug)]
pub struct ZkRunArgs {
    #[command(flatten)]
    pub connection: ZkArgs,
    /// ZooKeeper session timeout: how long a dead host goes unnoticed
    #[arg(long, default_value = "10s", value_parser = duration)]
    pub session_timeout: Duration,
    /// ACL of the nodes created: creator-all,world-read (default with credentials), creator-all,
    /// or world-all (default without)
    #[arg(long = "zk-acl", value_name = "GRANTS")]
    pub zk_acl: Option<String>,
}

impl ZkRunArgs {
    /// Checks the flags, adding every problem to `errors`; the settings if there were none.
    pub fn into_config(&self, errors: &mut Vec<String>) -> Option<(ZkConfig, Layout)> {
        let short = self.session_timeout < Duration::from_millis(100);
        if short {
            errors.push(format!(
                "--session-timeout {:?} is too short",
                self.session_timeout
            ));
        }
        let config = self
            .connection
            .config(self.session_timeout, self.zk_acl.as_deref(), errors);
        config.filter(|_| !short)
    }
}

/// How every duration flag is written, for the help of every command (see [`duration`]).
pub const DURATIONS: &str = "Durations: 500ms, 10s, 2m, 1h 30m (no negative values).";

/// Clap value parser of every duration flag: [`parse_duration`], with a clear word for a
/// negative value (humantime alone answers "expected number at 0").
pub fn duration(s: &str) -> Result<Duration, String> {
    if s.trim_start().starts_with('-') {
        return Err(
            "a duration cannot be negative (write durations like 500ms, 10s, 2m, 1h 30m)"
                .to_owned(),
        );
    }
    parse_duration(s)
}

/// Gives each ZooKeeper flag, wherever `cmd` or its subcommands have it, the environment variable
/// `<prefix>_<ID>` (`FLUME_WATCHDOG_ZK_AUTH` for `--zk-auth`): the variables are a documented
/// contract that differs between the binaries only by this prefix.
pub fn with_zk_env(cmd: Command, prefix: &str) -> Command {
    let ids: Vec<String> = ZkRunArgs::augment_args(Command::new("zk"))
        .get_arguments()
        .map(|a| a.get_id().to_string())
        .collect();
    name_env(cmd, prefix, &ids)
}

fn name_env(cmd: Command, prefix: &str, ids: &[String]) -> Command {
    cmd.mut_args(|arg| {
        let id = arg.get_id().as_str();
        if ids.iter().any(|i| i == id) {
            let var = format!("{prefix}_{}", id.to_uppercase());
            arg.env(var)
        } else {
            arg
        }
    })
    .mut_subcommands(|sub| name_env(sub, prefix, ids))
}

/// Parses `args` with `cmd` (the command of `C`, changed at run time such as by [`with_zk_env`]),
/// stopping at the first problem as clap does: for tests that look at clap's error or at the
/// flags before they are checked. Programs use [`parse`].
pub fn parse_strict<C, I, T>(mut cmd: Command, args: I) -> Result<C, clap::Error>
where
    C: FromArgMatches,
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    C::from_arg_matches(&cmd.try_get_matches_from_mut(args)?)
}

/// Every problem found in flags that clap accepted, one line each.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct ConfigErrors(pub Vec<String>);

/// Why a command line is not carried out.
#[derive(Debug)]
pub enum Refusal {
    /// `--help` or `--version`, or the help shown for a missing subcommand: clap's own output.
    Clap(clap::Error),
    /// Every problem found.
    Problems(Problems),
}

impl Refusal {
    /// Prints it (help and version on stdout, the rest on stderr) and gives the exit code: 0 for
    /// help and version, 2 otherwise.
    pub fn report(&self) -> ExitCode {
        match self {
            Refusal::Clap(e) => {
                // A closed stdout (`--help | head`) is no reason to fail.
                let _ = e.print();
                ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
            }
            Refusal::Problems(problems) => {
                // Nor is a closed stderr: the exit code still says the flags were bad.
                let _ = write!(std::io::stderr(), "{problems}");
                ExitCode::from(2)
            }
        }
    }
}

/// Every problem of a command line, and where to read how to write it; `Display` gives them one
/// line each, after the binary's name, then the usage.
#[derive(Debug)]
pub struct Problems {
    /// The binary's name.
    pub name: String,
    pub problems: Vec<String>,
    /// The usage of the (sub)command the problems concern.
    pub usage: String,
    /// How to ask for that (sub)command's help, e.g. `flume-watchdog run --help`.
    pub help: String,
}

impl std::fmt::Display for Problems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for problem in &self.problems {
            writeln!(f, "{}: {problem}", self.name)?;
        }
        writeln!(
            f,
            "\n{}\nFor more information, try '{}'.",
            self.usage, self.help
        )
    }
}

/// How many times a command line is parsed again without the part clap refused: each round
/// removes at least one argument or variable, so this only bounds pathological input.
const MAX_ROUNDS: usize = 32;

/// A flag whose environment variable holds a list split at `delimiter` (`FLUME_WATCHER_WEBHOOK`
/// holds URLs separated by spaces), while a value given on the command line is one value, judged
/// whole: the flag is repeated for more.
#[derive(Clone, Copy, Debug)]
pub struct EnvList {
    /// The flag's long name, without `--`.
    pub long: &'static str,
    pub delimiter: char,
}

/// Parses `args` with `cmd` (the command of `C`) and checks the result with `check`, listing every
/// problem at once: see [`parse_with_env_lists`].
pub fn parse<C, T, I, A>(
    cmd: Command,
    args: I,
    check: impl FnOnce(C) -> Result<T, ConfigErrors>,
) -> Result<T, Refusal>
where
    C: FromArgMatches,
    I: IntoIterator<Item = A>,
    A: Into<OsString>,
{
    parse_with_env_lists(cmd, &[], args, check)
}

/// Parses `args` with `cmd` (the command of `C`) and checks the result with `check`, listing every
/// problem at once: clap stops at the first unknown argument or bad value, so each one it refuses
/// is noted and taken out (with the value of an unknown flag, which may be a secret), and the rest
/// is parsed again. A checked problem that names a flag whose value was refused is left out: it
/// judged the default, not what was given.
///
/// A value that starts with `-` is given to its flag (see [`attach_hyphen_values`]), and the
/// variables of `env_lists` are split while their flags' values are not. A refused value of a flag
/// that hides its environment value (a secret may be in it) is shown with its secrets masked.
pub fn parse_with_env_lists<C, T, I, A>(
    cmd: Command,
    env_lists: &[EnvList],
    args: I,
    check: impl FnOnce(C) -> Result<T, ConfigErrors>,
) -> Result<T, Refusal>
where
    C: FromArgMatches,
    I: IntoIterator<Item = A>,
    A: Into<OsString>,
{
    parse_with_sources(cmd, env_lists, args, |c, _| check(c))
}

/// [`parse_with_env_lists`], `check` also told where each value came from (the matches'
/// [`ArgMatches::value_source`]): a value a flag or variable gave overrides a configuration
/// file, a default does not.
pub fn parse_with_sources<C, T, I, A>(
    mut cmd: Command,
    env_lists: &[EnvList],
    args: I,
    check: impl FnOnce(C, &ArgMatches) -> Result<T, ConfigErrors>,
) -> Result<T, Refusal>
where
    C: FromArgMatches,
    I: IntoIterator<Item = A>,
    A: Into<OsString>,
{
    let mut args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    attach_hyphen_values(&cmd, &mut args);
    let mut problems: Vec<String> = Vec::new();
    let mut refused: Vec<String> = Vec::new();
    let mut parsed = None;
    for _ in 0..MAX_ROUNDS {
        // A fresh copy each round: clap builds the command it parses with, and a built command
        // is not meant to be changed (a refused variable is forgotten below).
        let error =
            match split_env_lists(cmd.clone(), env_lists, &args).try_get_matches_from_mut(&args) {
                Ok(matches) => {
                    match C::from_arg_matches(&matches) {
                        Ok(c) => parsed = Some((c, matches)),
                        Err(e) => problems.push(one_line(&e)),
                    }
                    break;
                }
                Err(e) => e,
            };
        if matches!(
            error.kind(),
            ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        ) {
            if problems.is_empty() {
                return Err(Refusal::Clap(error));
            }
            break;
        }
        let mut problem = masked(one_line(&error), &error, &cmd);
        let taken_out = match error.kind() {
            ErrorKind::UnknownArgument => take_out_unknown(&error, &mut args, &cmd),
            ErrorKind::InvalidValue | ErrorKind::ValueValidation => {
                match take_out_value(&error, &mut args, &mut cmd) {
                    Some((flag, from_env)) => {
                        if let Some(var) = from_env {
                            problem.push_str(&format!(" (from {var})"));
                        }
                        refused.push(flag);
                        true
                    }
                    None => false,
                }
            }
            _ => false,
        };
        if !problems.contains(&problem) {
            problems.push(problem);
        }
        if !taken_out {
            break;
        }
    }
    if let Some((c, matches)) = parsed {
        match check(c, &matches) {
            Ok(t) if problems.is_empty() => return Ok(t),
            Ok(_) => {}
            Err(ConfigErrors(found)) => problems.extend(
                found
                    .into_iter()
                    .filter(|p| !refused.iter().any(|flag| mentions(p, flag))),
            ),
        }
    }
    let (usage, help) = usage(&cmd, &args);
    Err(Refusal::Problems(Problems {
        name: cmd.get_name().to_owned(),
        problems,
        usage,
        help,
    }))
}

/// Joins `--flag VALUE` into `--flag=VALUE` where the flag takes a value and the value starts with
/// one `-` (`--backoff-initial -1s`) but is not a short flag of `cmd`: clap would take such a
/// value for an unknown short flag, and its refusal would then name `-1` instead of judging the
/// value, and hide every problem after it. A value that starts with `--` is left alone: it is
/// far likelier a flag (a mistyped one) than a value, and clap then says the value is missing.
/// Only before `--`: what follows is the agent's.
fn attach_hyphen_values(cmd: &Command, args: &mut Vec<OsString>) {
    let mut built = cmd.clone();
    built.build();
    let mut all = vec![&built];
    let mut i = 0;
    while i < all.len() {
        all.extend(all[i].get_subcommands());
        i += 1;
    }
    let args_of = || all.iter().flat_map(|c| c.get_arguments());
    let takes_value =
        |long: &str| args_of().any(|a| a.get_long() == Some(long) && a.get_action().takes_values());
    let is_flag = |a: &str| {
        a.strip_prefix('-')
            .and_then(|short| short.chars().next())
            .is_some_and(|c| args_of().any(|arg| arg.get_short() == Some(c)))
    };
    let mut i = 1;
    while i + 1 < options_end(args) {
        let (flag, value) = (args[i].to_string_lossy(), args[i + 1].to_string_lossy());
        let joins = flag
            .strip_prefix("--")
            .is_some_and(|long| !long.contains('=') && takes_value(long))
            && value.starts_with('-')
            && !value.starts_with("--")
            && !is_flag(&value);
        if joins {
            let mut joined = args[i].clone();
            joined.push("=");
            joined.push(&args[i + 1]);
            args.splice(i..i + 2, [joined]);
        }
        i += 1;
    }
}

/// `cmd` for one round of [`parse_with_env_lists`]: each flag of `env_lists` that `args` does not
/// give splits its environment variable at its delimiter. Clap applies a delimiter to a flag's
/// values and its variable alike, and reads the variable only when the flag is not given, so the
/// delimiter is set exactly when the variable is what will be read.
fn split_env_lists(cmd: Command, env_lists: &[EnvList], args: &[OsString]) -> Command {
    let end = options_end(args);
    let given = |long: &str| {
        let (flag, attached) = (format!("--{long}"), format!("--{long}="));
        args[1.min(end)..end].iter().any(|a| {
            let a = a.to_string_lossy();
            a == flag || a.starts_with(&attached)
        })
    };
    env_lists
        .iter()
        .filter(|list| !given(list.long))
        .fold(cmd, |cmd, list| {
            map_args(cmd, &|a: Arg| {
                if a.get_long() == Some(list.long) {
                    a.value_delimiter(list.delimiter)
                } else {
                    a
                }
            })
        })
}

/// `problem`, clap's line for `error`, with the refused value's secrets masked when its flag
/// hides its environment value: clap quotes a refused value whole, tokens and all.
fn masked(problem: String, error: &clap::Error, cmd: &Command) -> String {
    let (Some(arg), Some(value)) = (
        context(error, ContextKind::InvalidArg),
        context(error, ContextKind::InvalidValue),
    ) else {
        return problem;
    };
    let long = arg.split(' ').next().and_then(|f| f.strip_prefix("--"));
    if !long
        .and_then(|long| find_arg(cmd, long))
        .is_some_and(Arg::is_hide_env_values_set)
    {
        return problem;
    }
    problem.replace(&format!("'{value}'"), &format!("'{}'", mask_secrets(value)))
}

/// `value` with what may be a secret shown as `***`: a URL's user info, whatever follows an `=`
/// (query values, `secret=S`) up to the next `&`, `,`, `;`, `#` or blank, and path segments
/// that look like tokens (16 characters or more, with a digit). Everything else is kept, so the
/// user still sees what was refused.
pub fn mask_secrets(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let (head, rest) = match value.find("://") {
        Some(at) => value.split_at(at + 3),
        None => ("", value),
    };
    out.push_str(head);
    let mut rest = rest;
    if !head.is_empty() {
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            out.push_str("***");
            rest = &rest[at..];
        }
    }
    let path_end = rest.find(['?', '#', '=']).unwrap_or(rest.len());
    let path = rest[..path_end]
        .split('/')
        .map(|segment| {
            let token = segment.len() >= 16 && segment.bytes().any(|b| b.is_ascii_digit());
            if token {
                "***"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/");
    out.push_str(&path);
    let mut hiding = false;
    for c in rest[path_end..].chars() {
        if hiding && (matches!(c, '&' | ',' | ';' | '#') || c.is_whitespace()) {
            hiding = false;
        }
        if !hiding {
            out.push(c);
        }
        if c == '=' && !hiding {
            out.push_str("***");
            hiding = true;
        }
    }
    out
}

/// Clap's message for `e` on one line, without its usage and its pointer to `--help` (given
/// once, after every problem), its tips in parentheses.
fn one_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let mut line = String::new();
    let mut tips = Vec::new();
    let blocks = text
        .split("\n\n")
        .filter(|b| !b.starts_with("Usage:") && !b.starts_with("For more information"));
    for part in blocks.flat_map(str::lines).map(str::trim) {
        if let Some(tip) = part.strip_prefix("tip: ") {
            tips.push(tip);
        } else if !part.is_empty() {
            // The first line, or what continues it, such as the names of missing arguments.
            line = format!("{line} {}", part.strip_prefix("error: ").unwrap_or(part));
        }
    }
    let line = line.trim_start();
    if tips.is_empty() {
        line.to_owned()
    } else {
        format!("{line} ({})", tips.join("; "))
    }
}

fn context(e: &clap::Error, kind: ContextKind) -> Option<&str> {
    match e.get(kind) {
        Some(ContextValue::String(s)) => Some(s),
        _ => None,
    }
}

/// Where the options end: `--` and what follows are the agent's command.
fn options_end(args: &[OsString]) -> usize {
    args.iter()
        .skip(1)
        .position(|a| a == "--")
        .map_or(args.len(), |i| i + 1)
}

/// Takes out the argument clap did not know, and the value after an unknown flag. Clap names it
/// but not its place: the first such argument among the options, else after `--` (a command
/// without positional arguments refuses those).
fn take_out_unknown(e: &clap::Error, args: &mut Vec<OsString>, cmd: &Command) -> bool {
    let Some(unknown) = context(e, ContextKind::InvalidArg) else {
        return false;
    };
    let with_value = format!("{unknown}=");
    let is_it = |a: &OsString| {
        let a = a.to_string_lossy();
        a == unknown || (unknown.starts_with("--") && a.starts_with(&with_value))
    };
    let end = options_end(args);
    let Some(at) = (1..end)
        .chain(end + 1..args.len())
        .find(|&i| is_it(&args[i]))
    else {
        return false;
    };
    let removed = args.remove(at);
    let takes_next = unknown.starts_with('-') && removed.to_string_lossy() == unknown;
    if takes_next && at + 1 < end {
        let next = args[at].to_string_lossy();
        if !next.starts_with('-') && cmd.find_subcommand(next.as_ref()).is_none() {
            args.remove(at);
        }
    }
    true
}

/// Takes out the flag whose value clap refused, with its value; a value that came from the
/// environment is forgotten instead. Gives the flag and, if so, the variable.
fn take_out_value(
    e: &clap::Error,
    args: &mut Vec<OsString>,
    cmd: &mut Command,
) -> Option<(String, Option<String>)> {
    // "--session-timeout <SESSION_TIMEOUT>"
    let flag = context(e, ContextKind::InvalidArg)?
        .split(' ')
        .next()?
        .to_owned();
    let long = flag.strip_prefix("--")?;
    let value = context(e, ContextKind::InvalidValue).unwrap_or_default();
    let arg = find_arg(cmd, long)?;
    let delimiter = arg.get_value_delimiter();
    let env = arg.get_env().map(OsStr::to_os_string);
    let holds = |given: &str| {
        given == value || delimiter.is_some_and(|d| given.split(d).any(|v| v == value))
    };
    let attached = format!("{flag}=");
    let end = options_end(args);
    for i in 1..end {
        let a = args[i].to_string_lossy();
        if a.strip_prefix(&attached).is_some_and(holds) {
            args.remove(i);
            return Some((flag, None));
        }
        if a == flag {
            let next = args.get(i + 1).filter(|_| i + 1 < end);
            if next.is_some_and(|n| holds(&n.to_string_lossy())) {
                args.drain(i..i + 2);
                return Some((flag, None));
            }
            if value.is_empty() {
                args.remove(i);
                return Some((flag, None));
            }
        }
    }
    let var = env.filter(|var| std::env::var_os(var).is_some())?;
    let forget = |a: Arg| {
        if a.get_long() == Some(long) {
            a.env(None::<&str>)
        } else {
            a
        }
    };
    *cmd = map_args(std::mem::take(cmd), &forget);
    Some((flag, Some(var.to_string_lossy().into_owned())))
}

fn find_arg<'c>(cmd: &'c Command, long: &str) -> Option<&'c Arg> {
    cmd.get_arguments()
        .find(|a| a.get_long() == Some(long))
        .or_else(|| cmd.get_subcommands().find_map(|s| find_arg(s, long)))
}

/// Changes every argument of `cmd` and of its subcommands with `f`.
fn map_args(cmd: Command, f: &impl Fn(Arg) -> Arg) -> Command {
    cmd.mut_args(f).mut_subcommands(|sub| map_args(sub, f))
}

/// Whether `text` names `flag` itself (`--backoff` is not named by `--backoff-max`).
fn mentions(text: &str, flag: &str) -> bool {
    text.match_indices(flag).any(|(i, _)| {
        !text[i + flag.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '-')
    })
}

/// The usage of the (innermost) subcommand given in `args` (else of `cmd`, as `silence add` of
/// `silence`) and how to ask for its help.
fn usage(cmd: &Command, args: &[OsString]) -> (String, String) {
    let mut cmd = cmd.clone();
    cmd.build();
    for arg in args[..options_end(args)].iter().skip(1) {
        if let Some(sub) = arg.to_str().and_then(|a| cmd.find_subcommand(a)).cloned() {
            cmd = sub;
        }
    }
    let help = format!("{} --help", cmd.get_bin_name().unwrap_or(cmd.get_name()));
    (cmd.render_usage().to_string(), help)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Parser, Subcommand};

    #[derive(Parser, Debug)]
    #[command(name = "t", version)]
    struct Cli {
        #[command(subcommand)]
        command: Sub,
    }

    #[derive(Subcommand, Debug)]
    enum Sub {
        One {
            #[command(flatten)]
            zk: ZkRunArgs,
            #[arg(long)]
            other: Option<String>,
            #[arg(long, value_delimiter = ',', value_parser = parse_duration)]
            delays: Vec<Duration>,
            /// A flag whose value may hold a secret, refused when it has a blank.
            #[arg(long, env = "TEST_PREFIX_UNSET_HOOK", hide_env_values = true, value_parser = no_blank)]
            hook: Vec<String>,
        },
        Two {
            #[command(flatten)]
            zk: ZkArgs,
            #[arg(long)]
            other: Option<String>,
        },
    }

    fn no_blank(s: &str) -> Result<String, String> {
        if s.contains(' ') {
            Err("it has a blank".to_owned())
        } else {
            Ok(s.to_owned())
        }
    }

    #[test]
    fn the_zk_flags_get_the_prefixed_variables_and_nothing_else_does() {
        use clap::CommandFactory;
        let cmd = with_zk_env(Cli::command(), "TEST_PREFIX");
        let env = |sub: &str, id: &str| {
            let sub = cmd.find_subcommand(sub).expect("subcommand");
            let arg = sub
                .get_arguments()
                .find(|a| a.get_id() == id)
                .expect("argument");
            arg.get_env().map(|e| e.to_string_lossy().into_owned())
        };
        for (id, var) in [
            ("zk", "TEST_PREFIX_ZK"),
            ("root", "TEST_PREFIX_ROOT"),
            ("session_timeout", "TEST_PREFIX_SESSION_TIMEOUT"),
            ("zk_auth", "TEST_PREFIX_ZK_AUTH"),
            ("zk_auth_file", "TEST_PREFIX_ZK_AUTH_FILE"),
            ("zk_acl", "TEST_PREFIX_ZK_ACL"),
        ] {
            assert_eq!(env("one", id).as_deref(), Some(var));
        }
        assert_eq!(env("one", "other"), None);
        assert_eq!(env("two", "other"), None);
        // A one-shot command has the connection flags only, with the same variables.
        let two = cmd.find_subcommand("two").expect("two");
        for (id, var) in [
            ("zk", "TEST_PREFIX_ZK"),
            ("root", "TEST_PREFIX_ROOT"),
            ("zk_auth", "TEST_PREFIX_ZK_AUTH"),
            ("zk_auth_file", "TEST_PREFIX_ZK_AUTH_FILE"),
        ] {
            assert_eq!(env("two", id).as_deref(), Some(var));
        }
        for id in ["session_timeout", "zk_acl"] {
            assert!(
                two.get_arguments().all(|a| a.get_id() != id),
                "two has {id}"
            );
        }
        let zk_auth = cmd
            .find_subcommand("one")
            .and_then(|s| s.get_arguments().find(|a| a.get_id() == "zk_auth"))
            .expect("--zk-auth");
        assert!(zk_auth.is_hide_env_values_set());
    }

    #[test]
    fn the_flags_make_a_config() {
        use clap::CommandFactory;
        let cli: Cli = parse_strict(
            with_zk_env(Cli::command(), "TEST_PREFIX_UNSET"),
            ["t", "one", "--zk", "zk1:2181/kafka", "--root", "/r"],
        )
        .expect("parses");
        let Sub::One { zk, .. } = cli.command else {
            panic!("expected one");
        };
        let mut errors = Vec::new();
        let (cfg, layout) = zk.into_config(&mut errors).expect("valid");
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(cfg.connect.as_str(), "zk1:2181/kafka");
        assert_eq!(cfg.session_timeout, Duration::from_secs(10));
        assert_eq!(layout.root(), "/r");
    }

    #[test]
    fn a_one_shot_command_waits_10s_and_uses_the_default_acl() {
        use clap::CommandFactory;
        for (auth, acl) in [
            (&[][..], "world-all"),
            (&["--zk-auth", "alice:pw"][..], "creator-all,world-read"),
        ] {
            let args = [&["t", "two", "--zk", "z:1"][..], auth].concat();
            let cli: Cli = parse_strict(with_zk_env(Cli::command(), "TEST_PREFIX_UNSET"), args)
                .expect("parses");
            let Sub::Two { zk, .. } = cli.command else {
                panic!("expected two");
            };
            let mut errors = Vec::new();
            let (cfg, _) = zk.into_config(&mut errors).expect("valid");
            assert_eq!(cfg.session_timeout, Duration::from_secs(10));
            assert_eq!(cfg.acl.spec().to_string(), acl);
        }
        let found = problems(&["two", "--zk", "z:1", "--session-timeout", "1s"]);
        assert_eq!(
            found,
            ["unexpected argument '--session-timeout' found"],
            "{found:?}"
        );
    }

    /// The test command's checks: the ZooKeeper flags', and one that judges --session-timeout.
    fn check(cli: Cli) -> Result<(), ConfigErrors> {
        let mut errors = Vec::new();
        match cli.command {
            Sub::One { zk, other, .. } => {
                zk.into_config(&mut errors);
                if other.as_deref() == Some("judge") {
                    errors.push(format!(
                        "--session-timeout {:?} does not suit --other",
                        zk.session_timeout
                    ));
                }
            }
            Sub::Two { zk, .. } => {
                zk.into_config(&mut errors);
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(errors))
        }
    }

    fn refusal(args: &[&str]) -> Refusal {
        use clap::CommandFactory;
        let cmd = with_zk_env(Cli::command(), "TEST_PREFIX_UNSET");
        parse(cmd, std::iter::once("t").chain(args.iter().copied()), check).expect_err("refused")
    }

    fn problems(args: &[&str]) -> Vec<String> {
        match refusal(args) {
            Refusal::Problems(p) => p.problems,
            other => panic!("expected problems, got {other:?}"),
        }
    }

    #[test]
    fn every_refusal_and_every_check_at_once() {
        let found = problems(&[
            "one",
            "--zk",
            "bad::",
            "--bogus",
            "s3cr3t",
            "--session-timeout",
            "xyz",
            "--root",
            "relative",
            "--delays",
            "1s,soon",
            "--other=x",
            "--",
            "stray",
        ]);
        let text = found.join("\n");
        for want in [
            "unexpected argument '--bogus'",
            "invalid value 'xyz' for '--session-timeout",
            "invalid value 'soon' for '--delays",
            "unexpected argument 'stray'",
            "\"bad::\"",
            "--root",
        ] {
            assert!(text.contains(want), "{want:?} missing in:\n{text}");
        }
        assert_eq!(found.len(), 6, "{text}");
        assert!(
            !text.contains("s3cr3t"),
            "the unknown flag's value is shown:\n{text}"
        );
        assert!(!text.contains("Usage"), "{text}");

        // An unknown flag before the subcommand does not take the subcommand for its value.
        let found = problems(&["--bogus", "one", "--zk", "bad::"]);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[1].contains("bad::"), "{found:?}");
    }

    #[test]
    fn a_check_of_a_refused_value_is_left_out() {
        let found = problems(&[
            "one",
            "--zk",
            "z:1",
            "--session-timeout",
            "xyz",
            "--other",
            "judge",
        ]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("'xyz'"), "{found:?}");
        let found = problems(&[
            "one",
            "--zk",
            "z:1",
            "--session-timeout=5s",
            "--other",
            "judge",
        ]);
        assert_eq!(found, ["--session-timeout 5s does not suit --other"]);
    }

    #[test]
    fn help_version_a_missing_flag_and_the_usage() {
        for (args, kind) in [
            (&["one", "--help"][..], ErrorKind::DisplayHelp),
            (&["--version"][..], ErrorKind::DisplayVersion),
            (&[][..], ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand),
        ] {
            match refusal(args) {
                Refusal::Clap(e) => assert_eq!(e.kind(), kind, "{args:?}"),
                other => panic!("{args:?}: {other:?}"),
            }
        }
        // Help is not shown instead of the problems.
        assert_eq!(problems(&["one", "--bogus", "--help"]).len(), 1);
        let Refusal::Problems(found) = refusal(&["one", "--root", "/r"]) else {
            panic!("expected problems");
        };
        let usage = "Usage: t one [OPTIONS] --zk <ZK>";
        assert_eq!(
            found.to_string(),
            format!(
                "t: the following required arguments were not provided: --zk <ZK>\n\
                 \n{usage}\nFor more information, try 't one --help'.\n"
            )
        );
    }

    #[test]
    fn a_value_that_starts_with_a_hyphen_is_judged_and_hides_nothing() {
        let found = problems(&[
            "one",
            "--zk",
            "z:1",
            "--session-timeout",
            "-1s",
            "--bogus",
            "--root",
            "relative",
        ]);
        let text = found.join("\n");
        for want in [
            "invalid value '-1s' for '--session-timeout <SESSION_TIMEOUT>': a duration cannot be negative",
            "unexpected argument '--bogus'",
            "--root",
        ] {
            assert!(text.contains(want), "{want:?} missing in:\n{text}");
        }
        assert_eq!(found.len(), 3, "{text}");
        // Attached already, or in a list: judged the same.
        let found = problems(&["one", "--zk", "z:1", "--delays=-2s", "--other", "-x"]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("'-2s' for '--delays"), "{found:?}");
    }

    #[test]
    fn a_flag_or_the_end_of_the_options_is_not_taken_for_a_value() {
        let joined = |args: &[&str]| {
            use clap::CommandFactory;
            let mut args: Vec<OsString> = args.iter().map(OsString::from).collect();
            attach_hyphen_values(&Cli::command(), &mut args);
            args
        };
        assert_eq!(
            joined(&["t", "one", "--other", "-x", "--zk", "-z"]),
            ["t", "one", "--other=-x", "--zk=-z"]
        );
        for kept in [
            &["t", "one", "--other", "--zk", "z:1"][..],
            &["t", "one", "--other", "--zk=z:1"],
            &["t", "one", "--other", "-h"],
            &["t", "one", "--other", "--"],
            &["t", "one", "--other", "--help"],
            &["t", "one", "--other", "--bogus"],
            // A flag that takes no value, and what follows `--`.
            &["t", "--version", "-x"],
            &["t", "one", "--", "--other", "-x"],
        ] {
            assert_eq!(joined(kept), kept, "{kept:?}");
        }
    }

    #[test]
    fn a_list_variable_is_split_and_a_flag_value_is_not() {
        use clap::CommandFactory;
        let lists = [EnvList {
            long: "hook",
            delimiter: ' ',
        }];
        let delimiter = |args: &[&str]| {
            let args: Vec<OsString> = args.iter().map(OsString::from).collect();
            let cmd = split_env_lists(Cli::command(), &lists, &args);
            let one = cmd.find_subcommand("one").expect("one");
            let hook = one.get_arguments().find(|a| a.get_id() == "hook");
            hook.and_then(Arg::get_value_delimiter)
        };
        assert_eq!(delimiter(&["t", "one", "--zk", "z:1"]), Some(' '));
        assert_eq!(delimiter(&["t", "one", "--hook", "a b"]), None);
        assert_eq!(delimiter(&["t", "one", "--hook=a b"]), None);
        // What follows `--` is not the flag.
        assert_eq!(delimiter(&["t", "one", "--", "--hook"]), Some(' '));
        let found = problems(&["one", "--zk", "z:1", "--hook", "not a url"]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("'not a url'"), "{found:?}");
    }

    #[test]
    fn a_refused_secret_value_is_shown_masked() {
        let found = problems(&[
            "one",
            "--zk",
            "z:1",
            "--hook",
            "https://u:pw@h/a/abcdEFGH1234ijkl?access_token=T0K;secret=S3C x",
        ]);
        assert_eq!(
            found,
            [
                "invalid value 'https://***@h/a/***?access_token=***;secret=*** x' \
              for '--hook <HOOK>': it has a blank"
            ]
        );
        assert_eq!(mask_secrets("not a url"), "not a url");
        assert_eq!(
            mask_secrets("http://h/x?a=1&b=2,secret=S#f"),
            "http://h/x?a=***&b=***,secret=***#f"
        );
    }

    #[test]
    fn a_flag_is_named_only_by_itself() {
        assert!(mentions("--backoff must be more than 0", "--backoff"));
        assert!(mentions("give --backoff, or not", "--backoff"));
        assert!(mentions("at the end: --backoff", "--backoff"));
        assert!(!mentions("--backoff-max must be more", "--backoff"));
        assert!(!mentions("--backoffs", "--backoff"));
    }
}
