//! What the agents cost ZooKeeper, read off the server after a run: node count, data size and
//! watches (`mntr`), and the JVM heap in use after a full collection (`jcmd`). The scale section
//! of the report extrapolates from these.

use std::process::Command;

use serde::Serialize;

use scenarios::ZkServer;

#[derive(Debug, Default, Serialize)]
pub struct ServerFigures {
    pub znodes: u64,
    /// `zk_approximate_data_size`: paths and data, bytes.
    pub data_bytes: u64,
    pub watches: u64,
    /// Heap in use after a full GC, KiB (None when jcmd could not attach).
    pub heap_used_kib: Option<u64>,
}

pub fn read(zk: &ZkServer) -> ServerFigures {
    let mntr = zk.four_letter_word("mntr").unwrap_or_default();
    let value = |key: &str| {
        mntr.lines()
            .find_map(|l| l.strip_prefix(key)?.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    ServerFigures {
        znodes: value("zk_znode_count"),
        data_bytes: value("zk_approximate_data_size"),
        watches: value("zk_watch_count"),
        heap_used_kib: zk.pid().and_then(heap_after_gc),
    }
}

fn heap_after_gc(pid: i32) -> Option<u64> {
    let jcmd = |what: &str| {
        Command::new("jcmd")
            .args([pid.to_string().as_str(), what])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    jcmd("GC.run")?;
    // G1: "garbage-first heap total …K, used …K"; serial: one such line per generation.
    let info = jcmd("GC.heap_info")?;
    let used: u64 = info
        .lines()
        .filter(|l| l.contains("generation") || l.contains(" heap "))
        .filter_map(|l| {
            l.split("used ")
                .nth(1)?
                .split('K')
                .next()?
                .trim()
                .parse::<u64>()
                .ok()
        })
        .sum();
    (used > 0).then_some(used)
}
