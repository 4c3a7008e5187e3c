//! Real ZooKeeper servers (Debian's `zookeeper` package) and a synchronous probe client.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use zookeeper_client::{Acls, Client, CreateMode, Error as ZkError, SessionState, Stat};

use crate::procs::describe;
use crate::scratch::{forget_kill_at_exit, free_port, kill_at_exit, TempDir};
use crate::wait::{deadline, tail};

const ZK_JAR: &str = "/usr/share/java/zookeeper.jar";
const INSTALL_HINT: &str = "install it with `sudo apt-get install -y zookeeper` (Debian/Ubuntu), \
     or run `scripts/setup` from the repository root";
const START_SECS: u64 = 30;

fn java() -> PathBuf {
    if let Some(home) = std::env::var_os("JAVA_HOME") {
        let p = Path::new(&home).join("bin/java");
        if p.is_file() {
            return p;
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("java");
            if p.is_file() {
                return p;
            }
        }
    }
    panic!(
        "ZooKeeper fixture: no `java` on PATH (nor $JAVA_HOME/bin/java); {INSTALL_HINT} \
         (the zookeeper package brings a JRE)"
    );
}

/// `$ZK_CLASSPATH` if set, else Debian's zookeeper.jar (its manifest names its dependencies)
/// plus the slf4j → log4j 1.2 binding so the server logs into its own directory.
fn classpath() -> String {
    if let Ok(cp) = std::env::var("ZK_CLASSPATH") {
        return cp;
    }
    if !Path::new(ZK_JAR).is_file() {
        panic!("ZooKeeper fixture: {ZK_JAR} not found, ZooKeeper is not installed; {INSTALL_HINT}");
    }
    let mut cp = vec![ZK_JAR.to_string()];
    for jar in [
        "/usr/share/java/slf4j-log4j12.jar",
        "/usr/share/java/log4j-1.2.jar",
    ] {
        if Path::new(jar).is_file() {
            cp.push(jar.to_string());
        }
    }
    cp.join(":")
}

/// Sends a four-letter word to 127.0.0.1:port; None if nothing answers.
pub fn four_letter_word(port: u16, word: &str) -> Option<String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(word.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    (!out.is_empty()).then_some(out)
}

fn mode_of(srvr: &str) -> Option<String> {
    srvr.lines()
        .find_map(|l| l.strip_prefix("Mode: "))
        .map(|m| m.trim().to_string())
}

/// One ZooKeeper JVM with its own directory (zoo.cfg, log4j.properties, data/, logs).
struct Node {
    label: String,
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Node {
    fn new(label: String, dir: PathBuf, port: u16, extra_cfg: &str, myid: Option<usize>) -> Node {
        let data = dir.join("data");
        std::fs::create_dir_all(&data).expect("create ZooKeeper dataDir");
        if let Some(id) = myid {
            std::fs::write(data.join("myid"), format!("{id}\n")).expect("write myid");
        }
        // maxSessionTimeout: the fault suite runs its faults shorter than the session with a 12 s
        // session, above the default maximum (20 ticks, 10 s), which would be negotiated down.
        let cfg = format!(
            "tickTime=500\n\
             initLimit=10\n\
             syncLimit=5\n\
             dataDir={}\n\
             clientPort={port}\n\
             clientPortAddress=127.0.0.1\n\
             admin.enableServer=false\n\
             minSessionTimeout=1000\n\
             maxSessionTimeout=30000\n\
             4lw.commands.whitelist=*\n\
             {extra_cfg}",
            data.display()
        );
        std::fs::write(dir.join("zoo.cfg"), cfg).expect("write zoo.cfg");
        let log4j = format!(
            "log4j.rootLogger=INFO, FILE\n\
             log4j.appender.FILE=org.apache.log4j.FileAppender\n\
             log4j.appender.FILE.File={}\n\
             log4j.appender.FILE.layout=org.apache.log4j.PatternLayout\n\
             log4j.appender.FILE.layout.ConversionPattern=%d{{ISO8601}} %-5p [%t:%C{{1}}@%L] - %m%n\n",
            dir.join("zookeeper.log").display()
        );
        std::fs::write(dir.join("log4j.properties"), log4j).expect("write log4j.properties");
        Node {
            label,
            dir,
            port,
            child: None,
        }
    }

    fn launch(&mut self, kill_with_process: bool) {
        assert!(self.child.is_none(), "{} is already running", self.label);
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("jvm.out"))
            .expect("open jvm.out");
        let mut cmd = Command::new(java());
        // Small and quick to start for tests; the benchmark sets ZK_PRODUCTION_JVM for a server
        // run as in production: a fixed heap, the default collector (G1) and the full JIT.
        let jvm: &[&str] = if std::env::var_os("ZK_PRODUCTION_JVM").is_some() {
            &["-Xms512m", "-Xmx512m"]
        } else {
            &[
                "-Xms16m",
                "-Xmx256m",
                "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1",
            ]
        };
        cmd.current_dir(&self.dir)
            .args(jvm)
            .arg("-XX:-UsePerfData") // no /tmp/hsperfdata_* left behind by SIGKILL
            .arg("-Djava.awt.headless=true")
            .arg(format!(
                "-Dlog4j.configuration=file:{}",
                self.dir.join("log4j.properties").display()
            ))
            .arg(format!("-Dzookeeper.log.dir={}", self.dir.display()))
            .arg("-cp")
            .arg(classpath())
            .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
            .arg(self.dir.join("zoo.cfg"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup jvm.out"))
            .stderr(out);
        let child = crate::spawn::spawn_tied(cmd)
            .unwrap_or_else(|e| panic!("cannot start {} (java): {e}; {INSTALL_HINT}", self.label));
        if kill_with_process {
            kill_at_exit(child.id() as i32);
        }
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            forget_kill_at_exit(c.id() as i32);
        }
    }

    fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.id() as i32)
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    fn mode(&self) -> Option<String> {
        four_letter_word(self.port, "srvr")
            .as_deref()
            .and_then(mode_of)
    }

    fn log_tail(&self, n: usize) -> String {
        let log = std::fs::read_to_string(self.dir.join("zookeeper.log")).unwrap_or_default();
        let out = std::fs::read_to_string(self.dir.join("jvm.out")).unwrap_or_default();
        format!(
            "--- {} zookeeper.log (last {n} lines) ---\n{}\n--- {} stdout/stderr ---\n{}",
            self.label,
            tail(&log, n),
            self.label,
            tail(&out, n)
        )
    }

    fn bind_failed(&self) -> bool {
        let log = std::fs::read_to_string(self.dir.join("zookeeper.log")).unwrap_or_default();
        let out = std::fs::read_to_string(self.dir.join("jvm.out")).unwrap_or_default();
        log.contains("Address already in use") || out.contains("Address already in use")
    }

    /// Waits until `srvr` answers with one of `modes`. Err(description) if the JVM exits first
    /// or at the deadline.
    fn wait_mode(&mut self, modes: &[&str], deadline: Instant) -> Result<String, String> {
        let started = Instant::now();
        let mut last = None;
        loop {
            if let Some(status) = self.exited() {
                let pid = self.pid().unwrap_or(0);
                return Err(format!(
                    "{} (pid {pid}) exited ({})",
                    self.label,
                    describe(status)
                ));
            }
            let answer = four_letter_word(self.port, "srvr");
            if let Some(mode) = answer.as_deref().and_then(mode_of) {
                if modes.contains(&mode.as_str()) {
                    return Ok(mode);
                }
            }
            if answer.is_some() {
                last = answer;
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} on 127.0.0.1:{} did not answer `srvr` with Mode: {} within {:.1?}; last answer: {}",
                    self.label,
                    self.port,
                    modes.join("|"),
                    Instant::now() - started,
                    last.as_deref().unwrap_or("(none: port closed)").trim()
                ));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A standalone ZooKeeper server on 127.0.0.1 with its own temporary data directory.
/// Drop SIGKILLs it; it also dies with the test process (PDEATHSIG).
pub struct ZkServer {
    node: Node,
    shared: bool,
    _dir: TempDir,
}

impl ZkServer {
    /// Starts a server and waits (at most 30 s) until `srvr` answers `Mode: standalone`.
    /// Takes about 0.4–1 s. Panics, with the server's log tail, if it does not come up, and with
    /// install instructions if ZooKeeper or java is missing.
    pub fn start() -> ZkServer {
        Self::start_inner(false)
    }

    /// One server per test process, for tests that do not disrupt ZooKeeper; each test keeps to
    /// its own [`crate::unique_root`]. Never stopped: it is SIGKILLed when the process exits.
    pub fn shared() -> &'static ZkServer {
        static SHARED: OnceLock<ZkServer> = OnceLock::new();
        SHARED.get_or_init(|| Self::start_inner(true))
    }

    fn start_inner(shared: bool) -> ZkServer {
        let mut last_err = String::new();
        for _attempt in 0..3 {
            let dir = TempDir::new(if shared { "zk-shared" } else { "zk" });
            let port = free_port();
            let mut node = Node::new(
                format!("zookeeper:{port}"),
                dir.path().to_path_buf(),
                port,
                "",
                None,
            );
            node.launch(shared);
            match node.wait_mode(&["standalone"], deadline(START_SECS)) {
                Ok(_) => {
                    return ZkServer {
                        node,
                        shared,
                        _dir: dir,
                    }
                }
                Err(e) => {
                    let retry = node.bind_failed();
                    last_err = format!("{e}\n{}", node.log_tail(40));
                    node.kill();
                    if !retry {
                        break;
                    }
                }
            }
        }
        panic!("ZooKeeper server did not start: {last_err}");
    }

    /// `127.0.0.1:PORT`.
    pub fn connect_string(&self) -> String {
        format!("127.0.0.1:{}", self.node.port)
    }

    pub fn port(&self) -> u16 {
        self.node.port
    }

    /// The JVM's pid while running.
    pub fn pid(&self) -> Option<i32> {
        self.node.pid()
    }

    pub fn is_running(&self) -> bool {
        self.node.child.is_some()
    }

    /// The answer to `srvr`, None if it does not answer.
    pub fn srvr(&self) -> Option<String> {
        four_letter_word(self.node.port, "srvr")
    }

    /// Any four-letter word (`cons`, `dump`, `wchc`, `mntr`, …).
    pub fn four_letter_word(&self, word: &str) -> Option<String> {
        four_letter_word(self.node.port, word)
    }

    /// The last `n` lines of the server's log and of the JVM's stdout/stderr.
    pub fn log_tail(&self, n: usize) -> String {
        self.node.log_tail(n)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.node.dir.join("data")
    }

    /// SIGKILLs the JVM and reaps it (a crash: no clean shutdown). Panics on the shared server.
    pub fn stop(&mut self) {
        assert!(
            !self.shared,
            "do not stop the shared ZooKeeper server; use ZkServer::start()"
        );
        self.node.kill();
    }

    /// Starts the server again on the same port with the same data (sessions and nodes survive as
    /// after a crash), and waits until it answers `Mode: standalone`.
    pub fn start_again(&mut self) {
        assert!(
            !self.is_running(),
            "start_again: the server is still running; stop() it first"
        );
        self.node.launch(self.shared);
        if let Err(e) = self.node.wait_mode(&["standalone"], deadline(START_SECS)) {
            panic!(
                "ZooKeeper did not start again: {e}\n{}",
                self.node.log_tail(40)
            );
        }
    }
}

/// A 3-node ZooKeeper ensemble on 127.0.0.1 (server.N=127.0.0.1:peer:election, a myid per data
/// directory). Indexes are 0, 1, 2 (myid is index + 1). Drop SIGKILLs all three.
pub struct ZkEnsemble {
    nodes: Vec<Node>,
    _dir: TempDir,
}

impl ZkEnsemble {
    /// Starts three servers and waits (at most 30 s) until all answer `srvr` with `leader` or
    /// `follower`. Takes about 1–2 s.
    pub fn start() -> ZkEnsemble {
        let mut last_err = String::new();
        for _attempt in 0..3 {
            let dir = TempDir::new("zk-ensemble");
            let ports: Vec<[u16; 3]> = (0..3)
                .map(|_| [free_port(), free_port(), free_port()])
                .collect();
            let servers: String = ports
                .iter()
                .enumerate()
                .map(|(i, p)| format!("server.{}=127.0.0.1:{}:{}\n", i + 1, p[1], p[2]))
                .collect();
            let mut nodes: Vec<Node> = ports
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let d = dir.join(format!("node{i}"));
                    Node::new(
                        format!("zookeeper#{i}:{}", p[0]),
                        d,
                        p[0],
                        &servers,
                        Some(i + 1),
                    )
                })
                .collect();
            for n in &mut nodes {
                n.launch(false);
            }
            let until = deadline(START_SECS);
            let mut errors = Vec::new();
            for n in &mut nodes {
                if let Err(e) = n.wait_mode(&["leader", "follower"], until) {
                    errors.push(e);
                }
            }
            if errors.is_empty() {
                return ZkEnsemble { nodes, _dir: dir };
            }
            let retry = nodes.iter().any(|n| n.bind_failed());
            last_err = errors.join("\n");
            for n in &nodes {
                last_err.push('\n');
                last_err.push_str(&n.log_tail(25));
            }
            drop(nodes);
            if !retry {
                break;
            }
        }
        panic!("ZooKeeper ensemble did not start: {last_err}");
    }

    /// `127.0.0.1:P0,127.0.0.1:P1,127.0.0.1:P2`.
    pub fn connect_string(&self) -> String {
        (0..self.nodes.len())
            .map(|i| self.connect_string_of(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The client address of node `i` alone.
    pub fn connect_string_of(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.nodes[i].port)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn is_running(&self, i: usize) -> bool {
        self.nodes[i].child.is_some()
    }

    pub fn pid(&self, i: usize) -> Option<i32> {
        self.nodes[i].pid()
    }

    /// `leader`, `follower`, … as node `i` answers `srvr` now; None if it does not serve.
    pub fn mode(&self, i: usize) -> Option<String> {
        self.nodes[i].mode()
    }

    /// SIGKILLs node `i`.
    pub fn stop(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// Starts node `i` again (same ports, same data) and waits until it has joined as leader or
    /// follower.
    pub fn start_again(&mut self, i: usize) {
        assert!(
            !self.is_running(i),
            "start_again({i}): node still running; stop({i}) it first"
        );
        self.nodes[i].launch(false);
        if let Err(e) = self.nodes[i].wait_mode(&["leader", "follower"], deadline(START_SECS)) {
            panic!(
                "ZooKeeper node {i} did not start again: {e}\n{}",
                self.log_tails(25)
            );
        }
    }

    /// The index of the current leader among the running nodes; waits (at most 30 s) while an
    /// election is going on.
    pub fn leader_index(&self) -> usize {
        let until = deadline(START_SECS);
        loop {
            let modes: Vec<Option<String>> = (0..self.nodes.len())
                .map(|i| {
                    if self.is_running(i) {
                        self.mode(i)
                    } else {
                        None
                    }
                })
                .collect();
            if let Some(i) = modes.iter().position(|m| m.as_deref() == Some("leader")) {
                return i;
            }
            if Instant::now() >= until {
                panic!(
                    "no ZooKeeper leader within {START_SECS} s; modes of nodes 0..3: {modes:?}\n{}",
                    self.log_tails(25)
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    pub fn log_tails(&self, n: usize) -> String {
        self.nodes
            .iter()
            .map(|x| x.log_tail(n))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A synchronous ZooKeeper client for inspecting and arranging state in tests. It runs a
/// private tokio runtime (one worker thread keeps the session alive between calls). Reads and
/// writes are retried on connection loss for up to 20 s (a server restart or an ensemble
/// failover); other errors panic with the path. Drop closes the session (its ephemeral nodes go
/// at once).
pub struct ZkProbe {
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
    connect_string: String,
}

const RETRY_FOR: Duration = Duration::from_secs(20);

fn retriable(e: &ZkError) -> bool {
    matches!(e, ZkError::ConnectionLoss | ZkError::Timeout)
}

impl ZkProbe {
    /// Connects with a 4 s session timeout, retrying for up to 30 s while no server answers.
    pub fn connect(connect_string: &str) -> ZkProbe {
        Self::connect_with_session_timeout(connect_string, Duration::from_secs(4))
    }

    pub fn connect_with_session_timeout(
        connect_string: &str,
        session_timeout: Duration,
    ) -> ZkProbe {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("zk-probe")
            .enable_all()
            .build()
            .expect("tokio runtime for ZkProbe");
        let until = deadline(30);
        let client = rt.block_on(async {
            loop {
                let r = Client::connector()
                    .with_session_timeout(session_timeout)
                    .connect(connect_string)
                    .await;
                match r {
                    Ok(c) => break c,
                    Err(e) if Instant::now() < until => {
                        let _ = e;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Err(e) => {
                        panic!("ZkProbe: cannot connect to {connect_string} within 30 s: {e}")
                    }
                }
            }
        });
        ZkProbe {
            rt,
            client: Some(client),
            connect_string: connect_string.to_string(),
        }
    }

    pub fn client(&self) -> &Client {
        self.client.as_ref().expect("client")
    }

    /// Runs a future on the probe's runtime (for direct use of [`ZkProbe::client`]).
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    pub fn session_id(&self) -> i64 {
        self.client().session_id().0
    }

    pub fn connect_string(&self) -> &str {
        &self.connect_string
    }

    fn retry<T, F, Fut>(&self, op: &str, path: &str, mut f: F) -> Result<T, ZkError>
    where
        F: FnMut(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, ZkError>>,
    {
        let until = Instant::now() + RETRY_FOR;
        let client = self.client().clone();
        self.rt.block_on(async {
            loop {
                match f(client.clone()).await {
                    Err(e) if retriable(&e) && Instant::now() < until => {
                        tokio::time::sleep(Duration::from_millis(20)).await
                    }
                    Err(e) if retriable(&e) => {
                        panic!(
                            "ZkProbe {op} {path}: still {e} after {RETRY_FOR:?} ({})",
                            self.connect_string
                        )
                    }
                    r => return r,
                }
            }
        })
    }

    /// Data and stat of `path`, None if there is no such node.
    pub fn get(&self, path: &str) -> Option<(Vec<u8>, Stat)> {
        let p = path.to_string();
        match self.retry("get", path, |c| {
            let p = p.clone();
            async move { c.get_data(&p).await }
        }) {
            Ok(v) => Some(v),
            Err(ZkError::NoNode) => None,
            Err(e) => panic!("ZkProbe get {path}: {e}"),
        }
    }

    /// The data of `path` as JSON (None if no node); panics showing the data if it is not JSON.
    pub fn get_json(&self, path: &str) -> Option<serde_json::Value> {
        let (data, _) = self.get(path)?;
        Some(serde_json::from_slice(&data).unwrap_or_else(|e| {
            panic!(
                "ZkProbe: data of {path} is not JSON ({e}): {}",
                String::from_utf8_lossy(&data)
            )
        }))
    }

    /// The stat of `path`, None if there is no such node.
    pub fn exists(&self, path: &str) -> Option<Stat> {
        let p = path.to_string();
        match self.retry("exists", path, |c| {
            let p = p.clone();
            async move { c.check_stat(&p).await }
        }) {
            Ok(v) => v,
            Err(e) => panic!("ZkProbe exists {path}: {e}"),
        }
    }

    /// The children's names, sorted; empty if there is no such node.
    pub fn children(&self, path: &str) -> Vec<String> {
        let p = path.to_string();
        match self.retry("children", path, |c| {
            let p = p.clone();
            async move { c.list_children(&p).await }
        }) {
            Ok(mut v) => {
                v.sort();
                v
            }
            Err(ZkError::NoNode) => Vec::new(),
            Err(e) => panic!("ZkProbe children {path}: {e}"),
        }
    }

    /// Creates `path` with `data` (persistent parents are created as needed). An ephemeral node
    /// belongs to this probe's session. Panics if the node exists.
    pub fn create(&self, path: &str, data: &[u8], ephemeral: bool) -> Stat {
        if let Some(i) = path.rfind('/').filter(|&i| i > 0) {
            let parent = path[..i].to_string();
            if let Err(e) = self.retry("mkdir", &parent, |c| {
                let p = parent.clone();
                async move {
                    c.mkdir(&p, &CreateMode::Persistent.with_acls(Acls::anyone_all()))
                        .await
                }
            }) {
                panic!("ZkProbe mkdir {parent}: {e}");
            }
        }
        let mode = if ephemeral {
            CreateMode::Ephemeral
        } else {
            CreateMode::Persistent
        };
        let p = path.to_string();
        let mut tries = 0;
        let r = self.retry("create", path, |c| {
            tries += 1;
            let p = p.clone();
            let data = data.to_vec();
            let retried = tries > 1;
            async move {
                match c
                    .create(&p, &data, &mode.with_acls(Acls::anyone_all()))
                    .await
                {
                    // A retried create may have succeeded before the connection was lost.
                    Err(ZkError::NodeExists) if retried => {
                        c.check_stat(&p).await?.ok_or(ZkError::NoNode)
                    }
                    r => r.map(|(stat, _)| stat),
                }
            }
        });
        r.unwrap_or_else(|e| panic!("ZkProbe create {path}: {e}"))
    }

    /// Sets the data of an existing node (any version).
    pub fn set(&self, path: &str, data: &[u8]) -> Stat {
        let p = path.to_string();
        self.retry("set", path, |c| {
            let p = p.clone();
            let data = data.to_vec();
            async move { c.set_data(&p, &data, None).await }
        })
        .unwrap_or_else(|e| panic!("ZkProbe set {path}: {e}"))
    }

    /// Deletes `path` (any version); no error if it does not exist. Panics if it has children.
    pub fn delete(&self, path: &str) {
        let p = path.to_string();
        match self.retry("delete", path, |c| {
            let p = p.clone();
            async move { c.delete(&p, None).await }
        }) {
            Ok(()) | Err(ZkError::NoNode) => {}
            Err(e) => panic!("ZkProbe delete {path}: {e}"),
        }
    }

    /// Deletes `path` and everything below it.
    pub fn delete_recursive(&self, path: &str) {
        for child in self.children(path) {
            self.delete_recursive(&format!("{}/{child}", path.trim_end_matches('/')));
        }
        if path != "/" {
            self.delete(path);
        }
    }

    /// Waits (with a watch, not polling) until `path` does not exist; returns when that was seen.
    /// Panics at `deadline` showing the node's stat and data.
    pub fn wait_until_gone(&self, path: &str, deadline: Instant) -> Instant {
        self.wait_node(path, deadline, false).1
    }

    /// Waits (with a watch) until `path` exists; returns its stat. Panics at `deadline`.
    pub fn wait_until_exists(&self, path: &str, deadline: Instant) -> Stat {
        self.wait_node(path, deadline, true).0.expect("stat")
    }

    fn wait_node(&self, path: &str, deadline: Instant, want: bool) -> (Option<Stat>, Instant) {
        let started = Instant::now();
        let client = self.client().clone();
        let tdeadline = tokio::time::Instant::from_std(deadline);
        let seen = self.rt.block_on(async {
            loop {
                match client.check_and_watch_stat(path).await {
                    Ok((stat, watcher)) => {
                        if stat.is_some() == want {
                            return Ok((stat, Instant::now()));
                        }
                        // Any event (node or session) makes us look again.
                        if tokio::time::timeout_at(tdeadline, watcher.changed())
                            .await
                            .is_err()
                        {
                            return Err(stat);
                        }
                    }
                    Err(e) if retriable(&e) => {
                        if tokio::time::Instant::now() >= tdeadline {
                            return Err(None);
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Err(e) => panic!("ZkProbe watch {path}: {e}"),
                }
            }
        });
        match seen {
            Ok(v) => v,
            Err(_) => {
                let now = self.get(path);
                let shown = match &now {
                    Some((data, stat)) => format!(
                        "exists: ephemeral_owner={:#x} czxid={:#x} data={}",
                        stat.ephemeral_owner,
                        stat.czxid,
                        String::from_utf8_lossy(data)
                    ),
                    None => "does not exist".into(),
                };
                panic!(
                    "timed out after {:.1?} waiting for ZooKeeper node {path} to {} ({}); it {shown}",
                    Instant::now() - started,
                    if want { "exist" } else { "be gone" },
                    self.connect_string
                );
            }
        }
    }
}

impl Drop for ZkProbe {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            // Dropping the last Client closes the session; wait for that so the ephemeral nodes
            // go now, not at session expiry.
            let mut state = client.state_watcher();
            drop(client);
            // (The timeout must be created inside the runtime.)
            let _ = self.rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(3), async {
                    loop {
                        let s = state.state();
                        if s.is_terminated() || s == SessionState::Closed {
                            break;
                        }
                        state.changed().await;
                    }
                })
                .await
            });
        }
    }
}
