use std::process::ExitCode;

use tokio_util::sync::CancellationToken;
use watcher::cli::Config;

fn main() -> ExitCode {
    // Before the checks, which may warn (a credentials file others can read).
    common::logging::init(&format!("{}_LOG", watcher::cli::ENV_PREFIX));
    let config = match watcher::cli::parse(std::env::args_os()) {
        Ok(config) => config,
        Err(refusal) => return refusal.report(),
    };
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
    match config {
        Config::Run(cfg) => {
            let cancel = CancellationToken::new();
            match runtime.block_on(watcher::run(cfg, cancel)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("flume-watcher: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Config::Status(args) => {
            match runtime.block_on(watcher::status::read(&args.zk, &args.layout)) {
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
