use std::process::ExitCode;

use tokio_util::sync::CancellationToken;
use watcher::cli::{Cli, CliCommand};

fn main() -> ExitCode {
    let cli: Cli = match common::cli::parse_strict(watcher::cli::command(), std::env::args_os()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    common::logging::init(&format!("{}_LOG", watcher::cli::ENV_PREFIX));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("flume-watcher: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match cli.command {
        CliCommand::Run(args) => {
            let cfg = match args.into_config() {
                Ok(cfg) => cfg,
                Err(e) => return usage_error(&e.0),
            };
            let cancel = CancellationToken::new();
            match runtime.block_on(watcher::run(cfg, cancel)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("flume-watcher: {e}");
                    ExitCode::from(1)
                }
            }
        }
        CliCommand::Status(args) => {
            let mut errors = Vec::new();
            let Some((zk, layout)) = args.zk.into_config(&mut errors) else {
                return usage_error(&errors);
            };
            match runtime.block_on(watcher::status::read(&zk, &layout)) {
                Ok(status) if args.json => match serde_json::to_string_pretty(&status) {
                    Ok(text) => {
                        println!("{text}");
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("flume-watcher status: {e}");
                        ExitCode::from(1)
                    }
                },
                Ok(status) => {
                    print!("{}", watcher::status::leader_line(&status));
                    print!("{}", watcher::status::table(&status.agents));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("flume-watcher status: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

fn usage_error(errors: &[String]) -> ExitCode {
    for line in errors {
        eprintln!("flume-watcher: {line}");
    }
    ExitCode::from(2)
}
