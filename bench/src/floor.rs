//! What this machine allows at best: ZooKeeper's own write and read round trips, from one client,
//! one request at a time. An alert's path holds at least one write (the watchdog's delete; ours
//! also records the outage before delivering it), so these bound what any watcher can reach here.

use std::time::Instant;

use serde::Serialize;
use zookeeper_client as zk;

use scenarios::{ZkProbe, ZkServer};

use crate::stats::{summary, Summary};

#[derive(Debug, Serialize)]
pub struct Floor {
    /// Creating a persistent node, answered.
    pub write: Summary,
    /// Reading a node, answered.
    pub read: Summary,
}

pub fn measure(zk_server: &ZkServer, samples: usize) -> Floor {
    let probe = ZkProbe::connect(&zk_server.connect_string());
    let client = probe.client().clone();
    let opts = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    let mut writes = Vec::with_capacity(samples);
    let mut reads = Vec::with_capacity(samples);
    probe.block_on(async {
        let _ = client.create("/floor", b"", &opts).await;
        for i in 0..samples {
            let path = format!("/floor/n{i}");
            let t = Instant::now();
            if client.create(&path, b"0123456789", &opts).await.is_ok() {
                writes.push(t.elapsed());
            }
            let t = Instant::now();
            if client.get_data(&path).await.is_ok() {
                reads.push(t.elapsed());
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    });
    Floor {
        write: summary(&writes),
        read: summary(&reads),
    }
}
