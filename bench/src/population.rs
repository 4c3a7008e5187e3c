//! N agents as the watchers see them: N identity nodes and N liveness nodes, the liveness nodes
//! owned by a pool of sessions (as if by N watchdogs), half of them by one session whose close is
//! the rack losing power.

use scenarios::faults::create_many;
use scenarios::ZkProbe;

/// Sessions owning the other half: removals and planned stops take their agents.
const POOL: usize = 8;

pub struct Population {
    pub root: String,
    /// Owned by the pool: removed one by one, stopped as planned.
    pub pool_ids: Vec<String>,
    /// Owned by `mass`.
    pub mass_ids: Vec<String>,
    mass: Option<ZkProbe>,
    _pool: Vec<ZkProbe>,
}

impl Population {
    pub fn create(connect: &str, root: &str, n: usize) -> Population {
        let ids: Vec<String> = (0..n).map(|i| format!("agent-{i:06}")).collect();
        let (mass_ids, pool_ids) = ids.split_at(n / 2);
        let writer = ZkProbe::connect(connect);
        let identities: Vec<(String, Vec<u8>)> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (format!("{root}/agents/{id}"), identity(id, i)))
            .collect();
        create_many(&writer, &identities, false);
        let mass = ZkProbe::connect(connect);
        create_many(&mass, &lives(root, mass_ids, 0), true);
        let pool: Vec<ZkProbe> = (0..POOL).map(|_| ZkProbe::connect(connect)).collect();
        for (k, probe) in pool.iter().enumerate() {
            let mine: Vec<String> = pool_ids.iter().skip(k).step_by(POOL).cloned().collect();
            create_many(probe, &lives(root, &mine, n / 2), true);
        }
        Population {
            root: root.to_owned(),
            pool_ids: pool_ids.to_vec(),
            mass_ids: mass_ids.to_vec(),
            mass: Some(mass),
            _pool: pool,
        }
    }

    pub fn live_path(&self, id: &str) -> String {
        format!("{}/live/{id}", self.root)
    }

    pub fn identity_path(&self, id: &str) -> String {
        format!("{}/agents/{id}", self.root)
    }

    /// Closes the session owning half the liveness nodes; returns once the close was answered.
    pub fn lose_mass(&mut self) {
        drop(self.mass.take());
    }
}

/// Shaped like a real watchdog's identity node (README), about 300 bytes.
fn identity(id: &str, i: usize) -> Vec<u8> {
    serde_json::json!({
        "id": id,
        "host": host(i),
        "command": ["flume-ng", "agent", "-n", "a1", "-c", "/etc/flume/conf", "-f", "/etc/flume/conf/a1.conf"],
        "labels": {"team": "logs"},
        "registered_at": "2026-11-21T01:00:00.000Z",
        "watchdog_version": "0.1.0",
        "restarts": 0,
        "last_exit": null,
        "state": "running",
    })
    .to_string()
    .into_bytes()
}

fn lives(root: &str, ids: &[String], offset: usize) -> Vec<(String, Vec<u8>)> {
    ids.iter()
        .enumerate()
        .map(|(i, id)| {
            let data = serde_json::json!({
                "host": host(offset + i),
                "watchdog_pid": 10_000 + offset + i,
                "agent_pid": 20_000 + offset + i,
                "since": "2026-11-21T01:00:01.000Z",
            });
            (format!("{root}/live/{id}"), data.to_string().into_bytes())
        })
        .collect()
}

fn host(i: usize) -> String {
    format!("flume-{:05}.dc1.example.com", i)
}
