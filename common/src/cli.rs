//! Command-line parts both binaries share: the ZooKeeper flags and the type of their problems.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Command, FromArgMatches};

use crate::config::{parse_duration, zk_security, ConnectString, Secret, ZkConfig};
use crate::layout::DEFAULT_ROOT;
use crate::Layout;

/// The ZooKeeper flags of every command of both binaries. They carry no environment variable
/// here: each binary names them with its own prefix through [`with_zk_env`].
#[derive(Args, Debug)]
pub struct ZkArgs {
    /// ZooKeeper connect string, e.g. zk1:2181,zk2:2181/kafka
    #[arg(long = "zk")]
    pub zk: String,
    /// Root of the watchdogs' nodes
    #[arg(long, default_value = DEFAULT_ROOT)]
    pub root: String,
    /// ZooKeeper session timeout: how long a dead host goes unnoticed
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub session_timeout: Duration,
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
    /// ACL of the nodes created: creator-all,world-read (default with credentials), creator-all,
    /// or world-all (default without)
    #[arg(long = "zk-acl", value_name = "GRANTS")]
    pub zk_acl: Option<String>,
}

impl ZkArgs {
    /// Checks the flags, adding every problem to `errors`; the settings if there were none.
    pub fn into_config(&self, errors: &mut Vec<String>) -> Option<(ZkConfig, Layout)> {
        let connect = ConnectString::parse(&self.zk)
            .map_err(|e| errors.push(e.to_string()))
            .ok();
        let layout = Layout::new(&self.root)
            .map_err(|e| errors.push(format!("--root: {e}")))
            .ok();
        if self.session_timeout < Duration::from_millis(100) {
            errors.push(format!(
                "--session-timeout {:?} is too short",
                self.session_timeout
            ));
        }
        let (auth, acl) = zk_security(
            self.zk_auth.as_ref(),
            self.zk_auth_file.as_deref(),
            self.zk_acl.as_deref(),
            errors,
        )?;
        Some((
            ZkConfig {
                connect: connect?,
                session_timeout: self.session_timeout,
                auth,
                acl,
            },
            layout?,
        ))
    }
}

/// Gives each ZooKeeper flag, wherever `cmd` or its subcommands have it, the environment variable
/// `<prefix>_<ID>` (`FLUME_WATCHDOG_ZK_AUTH` for `--zk-auth`): the variables are a documented
/// contract that differs between the binaries only by this prefix.
pub fn with_zk_env(cmd: Command, prefix: &str) -> Command {
    let ids: Vec<String> = ZkArgs::augment_args(Command::new("zk"))
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
/// stopping at the first problem as clap does.
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Parser, Subcommand};

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(subcommand)]
        command: Sub,
    }

    #[derive(Subcommand, Debug)]
    enum Sub {
        One {
            #[command(flatten)]
            zk: ZkArgs,
            #[arg(long)]
            other: Option<String>,
        },
        Two {
            #[arg(long)]
            other: Option<String>,
        },
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
}
