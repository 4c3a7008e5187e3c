//! flume-bench: the pair measured beside the baseline it replaces (a watcher on Curator's
//! PathChildrenCache and a watchdog on Curator, `bench/baseline/`), in one run, on one ZooKeeper
//! per measurement started here on loopback. Prints the figures as Markdown tables with the ratios
//! ours / baseline, and writes them as JSON. Everything it starts is stopped when it ends.
//!
//! Run it through `bench/run`, which builds both pairs first.

mod floor;
mod pair;
mod population;
mod reconnect;
mod report;
mod server;
mod stats;
mod usage;
mod watchdog_run;
mod watcher_run;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use pair::Pair;
use scenarios::ZkServer;

#[derive(Parser, Debug)]
#[command(
    name = "flume-bench",
    about = "The pair measured beside the Curator baseline"
)]
struct Args {
    /// Agent counts to measure the watchers at
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    n: Vec<usize>,
    /// Single liveness removals per watcher run (latency samples)
    #[arg(long, default_value_t = 200)]
    removals: usize,
    /// Planned stops per watcher run (each must give no alert)
    #[arg(long, default_value_t = 200)]
    stops: usize,
    /// Child crashes per watchdog
    #[arg(long, default_value_t = 100)]
    crashes: usize,
    /// Watchdog SIGKILLs per watchdog (each waits for a session expiry)
    #[arg(long, default_value_t = 3)]
    kills: usize,
    /// Seconds a half-of-N loss may take before the missing agents are counted
    #[arg(long, default_value_t = 300)]
    mass_deadline: u64,
    /// The classpath file `bench/baseline/build` wrote; without it only ours is measured
    #[arg(long)]
    baseline_classpath: Option<PathBuf>,
    /// Stop each run of the baseline's watcher this long after its start (e.g. 120s); what it
    /// has not reached by then is reported as "stopped at 120 s". Without it, every step waits
    /// as long as its own deadline allows. Ours is never stopped.
    #[arg(long, value_parser = humantime::parse_duration)]
    baseline_limit: Option<Duration>,
    /// Measure only the watchers, only the watchdogs, or only the reconnection after an outage
    #[arg(long, value_parser = ["watchers", "watchdogs", "reconnect"])]
    only: Option<String>,
    /// Watchdogs (real processes) registered again after a ZooKeeper restart; 0 skips it
    #[arg(long, default_value_t = 500)]
    reconnect: usize,
    /// Seconds ZooKeeper stays down in the reconnect measurement (above 4.2 s: 7/5 of the
    /// watchdogs' 3 s session, when their client declares the session expired)
    #[arg(long, default_value_t = 6)]
    reconnect_pause: u64,
    /// The watchdog binary of the reconnect measurement (e.g. another build, for a comparison)
    #[arg(long)]
    reconnect_watchdog: Option<PathBuf>,
    /// Where to write the figures as JSON
    #[arg(long, default_value = "target/bench/results.json")]
    out: PathBuf,
}

fn main() {
    let args = Args::parse();
    // ZooKeeper's JVM as in production (the test fixture's default starts quicker).
    std::env::set_var("ZK_PRODUCTION_JVM", "1");
    let mut pairs = vec![Pair::Ours];
    if let Some(path) = &args.baseline_classpath {
        let classpath = std::fs::read_to_string(path).unwrap_or_else(|e| {
            panic!(
                "cannot read the baseline's classpath {}: {e}",
                path.display()
            )
        });
        pairs.push(Pair::Baseline {
            classpath: classpath.trim().to_owned(),
        });
    }
    let watcher_plan = watcher_run::Plan {
        removals: args.removals,
        stops: args.stops,
        mass_deadline: Duration::from_secs(args.mass_deadline),
        baseline_limit: args.baseline_limit,
    };
    let watchdog_plan = watchdog_run::Plan {
        crashes: args.crashes,
        kills: args.kills,
        idle: Duration::from_secs(10),
        session_timeout: Duration::from_secs(2),
    };
    let only = |what: &str| args.only.as_deref().is_none_or(|o| o == what);
    let floor = {
        let zk = ZkServer::start();
        floor::measure(&zk, 1000)
    };
    let mut watchers = Vec::new();
    let ns = if only("watchers") {
        &args.n[..]
    } else {
        &[][..]
    };
    for &n in ns {
        for pair in &pairs {
            // A fresh server each time: no run pays for another's nodes or sessions.
            let zk = ZkServer::start();
            watchers.push(watcher_run::run(pair, &zk, n, &watcher_plan));
        }
    }
    let mut watchdogs = Vec::new();
    let measured = if only("watchdogs") {
        &pairs[..]
    } else {
        &[][..]
    };
    for pair in measured {
        let zk = ZkServer::start();
        watchdogs.push(watchdog_run::run(pair, &zk, &watchdog_plan));
    }
    // Ours only: the baseline's watchdog is another program with its own reconnect policy.
    let reconnect = (only("reconnect") && args.reconnect > 0).then(|| {
        let mut zk = ZkServer::start();
        reconnect::run(
            &mut zk,
            &reconnect::Plan {
                n: args.reconnect,
                session_timeout: Duration::from_secs(3),
                pause: Duration::from_secs(args.reconnect_pause),
                watchdog_bin: args.reconnect_watchdog.clone(),
            },
        )
    });
    let json = serde_json::json!({ "floor": floor, "watchers": watchers, "watchdogs": watchdogs, "reconnect": reconnect });
    if let Some(dir) = args.out.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    match std::fs::write(&args.out, format!("{json:#}\n")) {
        Ok(()) => eprintln!("figures written to {}", args.out.display()),
        Err(e) => eprintln!("cannot write {}: {e}", args.out.display()),
    }
    print!(
        "{}",
        report::markdown(&floor, &watchers, &watchdogs, reconnect.as_ref())
    );
}
