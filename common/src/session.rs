//! Opening, preparing and closing ZooKeeper sessions, with the crate's pitfalls handled once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::{debug, error, info, warn};
use zookeeper_client as zk;

use crate::config::{AclGrant, ZkAuth, ZkConfig};

/// Why no session could be opened, said so that an operator can act on it: a name that does not
/// resolve, a port nobody listens on and a host that never answers are different problems with
/// different fixes, and the client library calls them all "timeout".
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// No server name of the connect string resolves: found at once, no session tried.
    #[error("cannot resolve {0}: check the host names in the connect string")]
    Unresolvable(String),
    /// No session within the session timeout; what each server did when probed.
    #[error("no session: {0}")]
    Unreachable(String),
    /// The probe found every server refusing: said at once.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Zk(#[from] zk::Error),
}

impl ConnectError {
    /// The client library's error, for callers that tell terminal states apart.
    pub fn zk(&self) -> Option<&zk::Error> {
        match self {
            ConnectError::Zk(e) => Some(e),
            _ => None,
        }
    }
}

/// How long a probe of one server may take: a host that does not answer a TCP handshake in this
/// time is called silent.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// What one server does when asked for a TCP connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    Unresolvable(String),
    Accepted,
    Refused,
    Silent,
    Failed(String),
}

impl Probe {
    fn describe(&self, server: &str) -> String {
        match self {
            Probe::Unresolvable(why) => format!("{server}: the name does not resolve ({why})"),
            Probe::Accepted => format!(
                "{server} accepts connections but opened no session (not a ZooKeeper port, or a server that is not serving, e.g. without quorum)"
            ),
            Probe::Refused => format!(
                "{server} refused the connection (nothing listens on that port: is ZooKeeper running, is the port right?)"
            ),
            Probe::Silent => format!(
                "{server} did not answer within {} (a host that is down, or a firewall dropping packets)",
                crate::time::human(PROBE_TIMEOUT)
            ),
            Probe::Failed(why) => format!("{server}: {why}"),
        }
    }
}

/// Resolves every server of `cfg`; every address, or why none.
async fn resolve(host: &str, port: u16) -> Result<Vec<std::net::SocketAddr>, String> {
    match tokio::time::timeout(PROBE_TIMEOUT, tokio::net::lookup_host((host, port))).await {
        Ok(Ok(addrs)) => {
            let addrs: Vec<_> = addrs.collect();
            if addrs.is_empty() {
                Err("no address".to_owned())
            } else {
                Ok(addrs)
            }
        }
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "no answer from the resolver within {}",
            crate::time::human(PROBE_TIMEOUT)
        )),
    }
}

/// A server as the messages name it: `zk1:2181`, `[::1]:2181`.
fn shown(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Tries a TCP connection to each server, all at once.
pub async fn probe(cfg: &ZkConfig) -> Vec<(String, Probe)> {
    let probes = cfg
        .connect
        .servers()
        .into_iter()
        .map(|(host, port)| async move {
            let shown = shown(&host, port);
            let addrs = match resolve(&host, port).await {
                Ok(addrs) => addrs,
                Err(why) => return (shown, Probe::Unresolvable(why)),
            };
            let mut verdict = Probe::Silent;
            for addr in addrs {
                match tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(addr))
                    .await
                {
                    Ok(Ok(_)) => return (shown, Probe::Accepted),
                    Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                        verdict = Probe::Refused
                    }
                    Ok(Err(e)) => verdict = Probe::Failed(e.to_string()),
                    Err(_) => {}
                }
            }
            (shown, verdict)
        });
    futures::future::join_all(probes).await
}

fn details(probes: &[(String, Probe)]) -> String {
    probes
        .iter()
        .map(|(server, p)| p.describe(server))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Opens a session, sending the `digest` credentials of `cfg` (again on every reconnection).
/// A connect string none of whose names resolves fails at once; otherwise this fails after about
/// the session timeout while no server answers, saying what each server did; callers retry with
/// [`Backoff`].
///
/// ZooKeeper accepts any `digest` credentials when they are sent: wrong ones only show later, as
/// [`zk::Error::NoAuth`] on a node created with other credentials (see [`ensure_dir`]). A server
/// that refuses them outright ends the session with `AuthFailed`, which is logged here.
pub async fn connect(cfg: &ZkConfig) -> Result<zk::Client, ConnectError> {
    // All at once: a resolver that hangs costs its timeout once, not once per server.
    let resolved =
        futures::future::join_all(cfg.connect.servers().into_iter().map(
            |(host, port)| async move { (shown(&host, port), resolve(&host, port).await.err()) },
        ))
        .await;
    if let Some(e) = none_resolves(resolved) {
        return Err(e);
    }
    session(cfg).await
}

/// [`connect`] for a command that runs once (`status`, `stop`): the servers are probed first, so
/// that a port nobody listens on is said at once rather than after the session timeout.
pub async fn connect_now(cfg: &ZkConfig) -> Result<zk::Client, ConnectError> {
    let probes = probe(cfg).await;
    if !probes.iter().any(|(_, p)| *p == Probe::Accepted) {
        let unresolved = probes.iter().map(|(server, p)| match p {
            Probe::Unresolvable(why) => (server.clone(), Some(why.clone())),
            _ => (server.clone(), None),
        });
        if let Some(e) = none_resolves(unresolved) {
            return Err(e);
        }
        let details = details(&probes);
        return Err(if probes.iter().all(|(_, p)| *p == Probe::Refused) {
            ConnectError::Refused(details)
        } else {
            ConnectError::Unreachable(details)
        });
    }
    session(cfg).await
}

/// [`ConnectError::Unresolvable`] when no server resolves, from `(server, why it does not
/// resolve)`; none when one does (or there are none).
fn none_resolves(
    servers: impl IntoIterator<Item = (String, Option<String>)>,
) -> Option<ConnectError> {
    let mut unresolved = Vec::new();
    for (server, why) in servers {
        unresolved.push(format!("{server} ({})", why?));
    }
    (!unresolved.is_empty()).then(|| ConnectError::Unresolvable(unresolved.join(", ")))
}

/// Opens the session; when none could be had in time, says what each server did.
async fn session(cfg: &ZkConfig) -> Result<zk::Client, ConnectError> {
    match open(cfg).await {
        Ok(client) => Ok(client),
        Err(zk::Error::AuthFailed) => {
            error!("{}", auth_failed_message(cfg));
            Err(ConnectError::Zk(zk::Error::AuthFailed))
        }
        Err(e @ (zk::Error::Timeout | zk::Error::ConnectionLoss)) => {
            let probes = probe(cfg).await;
            debug!(error = %e, "no zookeeper session; probed the servers");
            Err(ConnectError::Unreachable(details(&probes)))
        }
        Err(e) => Err(ConnectError::Zk(e)),
    }
}

/// The session itself, with the negotiated timeout checked and `AuthFailed` watched for.
async fn open(cfg: &ZkConfig) -> Result<zk::Client, zk::Error> {
    let mut connector = zk::Client::connector().with_session_timeout(cfg.session_timeout);
    if let Some(auth) = &cfg.auth {
        connector = connector.with_auth("digest", auth.credentials().expose().as_bytes());
    }
    let client = connector.connect(cfg.connect.as_str()).await?;
    debug!(session = %client.session_id(), timeout = %crate::time::human(client.session_timeout()), user = cfg.auth.as_ref().map(ZkAuth::user), "zookeeper session open");
    let negotiated = client.session_timeout();
    if let Some(message) = negotiation_note(cfg.session_timeout, negotiated) {
        if first_in(
            &WARNED_NEGOTIATED,
            &format!("{:?}/{:?}", cfg.session_timeout, negotiated),
            None,
        ) {
            warn!(
                asked = %crate::time::human(cfg.session_timeout),
                negotiated = %crate::time::human(negotiated),
                "{message}"
            );
        }
    }
    // The states end with a terminal one, so this task ends with the session.
    let mut states = client.state_watcher();
    let message = auth_failed_message(cfg);
    tokio::spawn(async move {
        loop {
            match states.changed().await {
                zk::SessionState::AuthFailed => {
                    error!("{message}");
                    return;
                }
                s if s.is_terminated() => return,
                _ => {}
            }
        }
    });
    Ok(client)
}

/// What to say when ZooKeeper gave another session timeout than the one asked for: the server
/// bounds it by its `minSessionTimeout` and `maxSessionTimeout`, and the operator set the value
/// for a reason (how long a dead host goes unnoticed). Differences under a second are rounding.
pub fn negotiation_note(asked: Duration, negotiated: Duration) -> Option<String> {
    let gap = asked.abs_diff(negotiated);
    (gap >= Duration::from_secs(1) && !negotiated.is_zero()).then(|| {
        format!(
            "ZooKeeper set the session timeout to {} instead of the {} asked for (the server bounds it by its minSessionTimeout and maxSessionTimeout, by default 2 and 20 times its tickTime): a dead host is noticed after about {}",
            crate::time::human(negotiated),
            crate::time::human(asked),
            crate::time::human(negotiated)
        )
    })
}

static WARNED_NEGOTIATED: Mutex<Option<HashMap<String, Instant>>> = Mutex::new(None);

fn auth_failed_message(cfg: &ZkConfig) -> String {
    match &cfg.auth {
        Some(auth) => format!(
            "zookeeper refused the credentials of user {} (authentication failed): check --zk-auth / --zk-auth-file; retrying",
            auth.user()
        ),
        None => "zookeeper requires authentication (authentication failed): give credentials with --zk-auth or --zk-auth-file; retrying".to_owned(),
    }
}

/// The ACL of every node the pair creates, as configured (`--zk-acl`, derived from `--zk-auth`).
pub fn acls(cfg: &ZkConfig) -> zk::Acls<'_> {
    cfg.acl.acls()
}

/// Nodes read by one request in [`read_named`]: one `multiRead` (ZooKeeper 3.6+) carries this
/// many `getData` operations. The server's cost is per request far more than per node, so 100,000
/// nodes read one request each took seconds; batched, a few hundred requests. 200 identity
/// records of the usual 300–600 bytes make a reply of about 100 KB.
const READ_BATCH: usize = 200;

/// Batches in flight at once in [`read_named`]: enough to keep the server busy while the previous
/// replies are parsed, few enough that the raw replies held at once stay small (about 1 MB).
const BATCHES_IN_FLIGHT: usize = 8;

/// The children of `dir` that `keep` accepts: none if `dir` is missing.
pub async fn child_names(
    client: &zk::Client,
    dir: &str,
    mut keep: impl FnMut(&str) -> bool,
) -> Result<Vec<String>, zk::Error> {
    match client.list_children(dir).await {
        Ok(names) => Ok(names.into_iter().filter(|n| keep(n)).collect()),
        Err(zk::Error::NoNode) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// The children `names` of `dir`, each read and handed to `convert` (with its data and stat) as
/// soon as its batch arrives, so that the raw data of thousands of nodes is never held at once; a
/// child that vanished between listing and reading is left out. The order is that of `names`.
///
/// Reads go in batches ([`READ_BATCH`] nodes per `multiRead` request, [`BATCHES_IN_FLIGHT`]
/// requests in flight); a batch the server refuses as a whole (other than by ending the
/// connection or the session) is read again node by node.
pub async fn read_named<T>(
    client: &zk::Client,
    dir: &str,
    names: Vec<String>,
    mut convert: impl FnMut(String, Vec<u8>, zk::Stat) -> T,
) -> Result<Vec<T>, zk::Error> {
    use futures::StreamExt;
    let started = Instant::now();
    let count = names.len();
    let mut out = Vec::with_capacity(count);
    let mut names = names.into_iter();
    let mut batches = futures::stream::iter(std::iter::from_fn(|| {
        let batch: Vec<String> = names.by_ref().take(READ_BATCH).collect();
        (!batch.is_empty()).then_some(batch)
    }))
    .map(|batch| read_batch(client, dir, batch))
    .buffered(BATCHES_IN_FLIGHT);
    while let Some(batch) = batches.next().await {
        for (name, data, stat) in batch? {
            out.push(convert(name, data, stat));
        }
    }
    debug!(
        dir,
        nodes = count,
        read = out.len(),
        took_ms = started.elapsed().as_millis() as u64,
        "children read"
    );
    Ok(out)
}

/// One batch of [`read_named`]: the nodes that exist, with their data and stat.
async fn read_batch(
    client: &zk::Client,
    dir: &str,
    names: Vec<String>,
) -> Result<Vec<(String, Vec<u8>, zk::Stat)>, zk::Error> {
    let mut reader = client.new_multi_reader();
    for name in &names {
        reader.add_get_data(&format!("{dir}/{name}"))?;
    }
    let results = match reader.commit().await {
        Ok(results) if results.len() == names.len() => results,
        Ok(results) => {
            warn!(
                dir,
                asked = names.len(),
                answered = results.len(),
                "a batched read was answered in part; reading its nodes one by one"
            );
            return read_one_by_one(client, dir, names).await;
        }
        Err(
            e @ (zk::Error::ConnectionLoss
            | zk::Error::SessionExpired
            | zk::Error::ClientClosed
            | zk::Error::AuthFailed),
        ) => return Err(e),
        Err(e) => {
            warn!(dir, error = %e, "a batched read was refused; reading its nodes one by one");
            return read_one_by_one(client, dir, names).await;
        }
    };
    let mut children = Vec::with_capacity(names.len());
    for (name, result) in names.into_iter().zip(results) {
        match result {
            zk::MultiReadResult::Data { data, stat } => children.push((name, data, stat)),
            zk::MultiReadResult::Error {
                err: zk::Error::NoNode,
            } => {}
            zk::MultiReadResult::Error { err } => return Err(err),
            // Only data was asked for.
            _ => {}
        }
    }
    Ok(children)
}

/// The nodes of a batch read one request each, pipelined (a request is sent when its future is
/// made).
async fn read_one_by_one(
    client: &zk::Client,
    dir: &str,
    names: Vec<String>,
) -> Result<Vec<(String, Vec<u8>, zk::Stat)>, zk::Error> {
    let reads: Vec<_> = names
        .iter()
        .map(|n| client.get_data(&format!("{dir}/{n}")))
        .collect();
    let mut children = Vec::with_capacity(names.len());
    for (name, read) in names.into_iter().zip(reads) {
        match read.await {
            Ok((data, stat)) => children.push((name, data, stat)),
            Err(zk::Error::NoNode) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(children)
}

/// Every child of `dir` that `keep` accepts, with its data and stat: none if `dir` is missing,
/// and a child that vanished between listing and reading is left out (see [`read_named`]).
pub async fn read_children(
    client: &zk::Client,
    dir: &str,
    keep: impl FnMut(&str) -> bool,
) -> Result<Vec<(String, Vec<u8>, zk::Stat)>, zk::Error> {
    let names = child_names(client, dir, keep).await?;
    read_named(client, dir, names, |name, data, stat| (name, data, stat)).await
}

/// `mkdir -p` for the pair's persistent folders, with [`acls`]. A folder that exists already is
/// checked: one this client may not create or delete nodes in is an error
/// ([`zk::Error::NoAuth`], logged with what to do), and one open to anyone while credentials are
/// configured is warned about (without credentials, anyone could then delete identity nodes:
/// ZooKeeper checks a delete against the folder's ACL).
pub async fn ensure_dir(client: &zk::Client, cfg: &ZkConfig, path: &str) -> Result<(), zk::Error> {
    let existed = match client.check_stat(path).await {
        Ok(stat) => stat.is_some(),
        Err(zk::Error::NoAuth) => {
            not_authorized(cfg, path);
            return Err(zk::Error::NoAuth);
        }
        Err(e) => return Err(e),
    };
    if !existed {
        // Creating checks the parent's ACL before whether the node exists: so look first.
        let mode = zk::CreateMode::Persistent.with_acls(acls(cfg));
        let mut made = client.mkdir(path, &mode).await;
        if made == Err(zk::Error::NoNode) {
            // `mkdir` makes every parent: only a chroot that does not exist is missing then.
            create_chroot(cfg).await?;
            made = client.mkdir(path, &mode).await;
        }
        return match made {
            Ok(()) | Err(zk::Error::NodeExists) => Ok(()),
            Err(zk::Error::NoAuth) => {
                not_authorized(cfg, path);
                Err(zk::Error::NoAuth)
            }
            Err(e) => Err(e),
        };
    }
    let acl = match client.get_acl(path).await {
        Ok((acl, _)) => acl,
        // Gone meanwhile: the caller's next step finds out.
        Err(zk::Error::NoNode) => return Ok(()),
        Err(zk::Error::NoAuth) => {
            not_authorized(cfg, path);
            return Err(zk::Error::NoAuth);
        }
        Err(e) => return Err(e),
    };
    if folder_access(&acl, cfg.auth.as_ref()) == Access::Denied {
        not_authorized(cfg, path);
        return Err(zk::Error::NoAuth);
    }
    if cfg.auth.is_some() && !cfg.acl.spec().grants().contains(&AclGrant::WorldAll) {
        let open = world_permission(&acl)
            & (zk::Permission::WRITE
                | zk::Permission::CREATE
                | zk::Permission::DELETE
                | zk::Permission::ADMIN);
        if open != zk::Permission::NONE && first_in(&WARNED_OPEN, path, None) {
            warn!(
                path,
                world = %open,
                "folder {path} lets anyone (world:anyone) {open}: without credentials a client can delete identity nodes and so silence alerts; restrict it (zkCli: addauth digest USER:PASSWORD, then setAcl -R {path} auth::cdrwa,world:anyone:r)"
            );
        }
    }
    Ok(())
}

/// Creates the chroot of the connect string (`/kafka` in `zk1:2181/kafka`) through a session
/// without it, as Kafka's broker does: a session under a chroot that does not exist can create
/// nothing, and would otherwise retry forever with "node not exists". Logged once per chroot.
async fn create_chroot(cfg: &ZkConfig) -> Result<(), zk::Error> {
    let Some(chroot) = cfg.connect.chroot() else {
        return Err(zk::Error::NoNode);
    };
    let mut plain = cfg.clone();
    plain.connect = cfg.connect.without_chroot();
    let client = open(&plain).await?;
    let made = client
        .mkdir(chroot, &zk::CreateMode::Persistent.with_acls(acls(cfg)))
        .await;
    close(client, Duration::from_secs(2)).await;
    match made {
        Ok(()) => {
            if first_in(&LOGGED_CHROOT, chroot, None) {
                info!(chroot, servers = %plain.connect, "created the chroot {chroot}, which did not exist (as Kafka's broker does)");
            }
            Ok(())
        }
        Err(zk::Error::NodeExists) => Ok(()),
        Err(zk::Error::NoAuth) => {
            not_authorized(cfg, chroot);
            Err(zk::Error::NoAuth)
        }
        Err(e) => Err(e),
    }
}

static LOGGED_CHROOT: Mutex<Option<HashMap<String, Instant>>> = Mutex::new(None);

/// Whether this client may create and delete nodes in a folder with this ACL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Granted,
    Denied,
    /// The ACL names schemes this client cannot judge (`ip`, `sasl`, `x509`…): ZooKeeper decides.
    Unknown,
}

/// Decides [`Access`] to a folder from its ACL: `world:anyone` applies to everyone, `digest`
/// entries to the holder of the matching credentials.
pub fn folder_access(acl: &[zk::Acl], auth: Option<&ZkAuth>) -> Access {
    let digest = auth.map(ZkAuth::digest_id);
    let mut perms = zk::Permission::NONE;
    let mut unknown = false;
    for entry in acl {
        match (entry.scheme(), entry.id()) {
            ("world", "anyone") => perms = perms | entry.permission(),
            ("digest", id) if Some(id) == digest.as_deref() => perms = perms | entry.permission(),
            ("world", _) | ("digest", _) => {}
            _ => unknown = true,
        }
    }
    if perms.has(zk::Permission::CREATE | zk::Permission::DELETE) {
        Access::Granted
    } else if unknown {
        Access::Unknown
    } else {
        Access::Denied
    }
}

/// What `world:anyone` may do on a node with this ACL.
pub fn world_permission(acl: &[zk::Acl]) -> zk::Permission {
    acl.iter()
        .filter(|a| a.scheme() == "world" && a.id() == "anyone")
        .fold(zk::Permission::NONE, |p, a| p | a.permission())
}

/// The words for a `NoAuth` answer, naming what to do.
pub fn not_authorized_message(cfg: &ZkConfig, path: &str) -> String {
    match &cfg.auth {
        None => format!(
            "not authorized: ZooKeeper refuses this client (no credentials) to create or delete nodes in {path}; give the credentials the nodes were created with: --zk-auth USER:PASSWORD or --zk-auth-file PATH"
        ),
        Some(auth) => format!(
            "not authorized: ZooKeeper refuses user {} to create or delete nodes in {path}: these are not the credentials its nodes were created with (a wrong password?); check --zk-auth / --zk-auth-file",
            auth.user()
        ),
    }
}

/// Logs [`not_authorized_message`] as an error, at most every 30 s per path (callers retry).
fn not_authorized(cfg: &ZkConfig, path: &str) {
    if first_in(&LOGGED_NOAUTH, path, Some(Duration::from_secs(30))) {
        error!(path, "{}; retrying", not_authorized_message(cfg, path));
    }
}

static LOGGED_NOAUTH: Mutex<Option<HashMap<String, Instant>>> = Mutex::new(None);
static WARNED_OPEN: Mutex<Option<HashMap<String, Instant>>> = Mutex::new(None);

/// True the first time for `key`, and again once `every` has passed (never again without it).
fn first_in(
    seen: &Mutex<Option<HashMap<String, Instant>>>,
    key: &str,
    every: Option<Duration>,
) -> bool {
    let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
    let seen = seen.get_or_insert_with(HashMap::new);
    let now = Instant::now();
    let due = match (seen.get(key), every) {
        (None, _) => true,
        (Some(at), Some(every)) => now.duration_since(*at) >= every,
        (Some(_), None) => false,
    };
    if due {
        seen.insert(key.to_owned(), now);
    }
    due
}

/// Closes a session so that its ephemeral nodes vanish now, not at expiry.
///
/// Dropping the last `Client` only asks the session task to close; a process that exits right
/// after may leave its ephemerals behind until the session expires. So wait for `Closed`.
pub async fn close(client: zk::Client, timeout: Duration) {
    let mut states = client.state_watcher();
    let session = client.session_id();
    drop(client);
    if states.peek_state().is_terminated() {
        return;
    }
    let closed = async {
        loop {
            match states.changed().await {
                zk::SessionState::Closed
                | zk::SessionState::Expired
                | zk::SessionState::AuthFailed => return,
                _ => continue,
            }
        }
    };
    if tokio::time::timeout(timeout, closed).await.is_err() {
        warn!(%session, "zookeeper session did not confirm close in time");
    }
}

/// Capped exponential backoff with jitter, for every reconnect and retry schedule of the pair.
///
/// The n-th delay (from 0) is drawn uniformly from `[d/2, d)`, where `d = min(initial · 2ⁿ, max)`
/// is the plain doubling step ("equal jitter"). Why this shape:
/// - after a ZooKeeper outage every watchdog of a data centre loses its session at the same
///   moment; without jitter 10,000 of them knock again in lockstep (200, 400, 800 ms …). Each delay
///   here is spread over half its step, and the spread compounds from one attempt to the next;
/// - one client alone stays as quick as before: no delay is ever longer than the unjittered
///   step, the first is between `initial/2` and `initial`, and none exceeds `max` (so a stated
///   `--retry-max` holds);
/// - the floor at `d/2` keeps a retry loop from spinning, which "full jitter" (`[0, d)`) allows.
///
/// The schedule is backon's exponential one, asked for half the steps (`initial/2`, capped at
/// `max/2`) with its jitter, which turns a step `s` into a delay in `[s, 2s)`: that is `[d/2, d)`.
/// Backon computes in `f32` seconds, so a delay may be off by its rounding (a few hundred
/// nanoseconds at a minute); the final `min(max)` keeps the cap exact. Each process's generator is
/// seeded on its own (backon's `std` feature), so two watchdogs do not draw the same delays.
#[derive(Debug)]
pub struct Backoff {
    schedule: backon::ExponentialBuilder,
    max: Duration,
    delays: <backon::ExponentialBuilder as backon::BackoffBuilder>::Backoff,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        let schedule = backon::ExponentialBuilder::default()
            .with_min_delay(initial / 2)
            .with_max_delay(max / 2)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times();
        Backoff {
            schedule,
            max,
            delays: backon::BackoffBuilder::build(schedule),
        }
    }

    /// The delay to wait now; the step of the following one doubles (up to `max`).
    pub fn next_delay(&mut self) -> Duration {
        // The schedule is endless (`without_max_times`, no total); `max` is said should it end.
        self.delays.next().unwrap_or(self.max).min(self.max)
    }

    /// Starts the schedule again from `initial` (a fresh draw of the jitter).
    pub fn reset(&mut self) {
        self.delays = backon::BackoffBuilder::build(self.schedule);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(scheme: &str, id: &str, perm: zk::Permission) -> zk::Acl {
        zk::Acl::new(perm, zk::AuthId::new(scheme, id))
    }

    #[test]
    fn access_to_folders() {
        use zk::Permission as P;
        let alice = ZkAuth::parse("alice:secret").unwrap();
        let wrong = ZkAuth::parse("alice:wrong").unwrap();
        let ours = [
            acl("digest", &alice.digest_id(), P::ALL),
            acl("world", "anyone", P::READ),
        ];
        assert_eq!(folder_access(&ours, Some(&alice)), Access::Granted);
        assert_eq!(folder_access(&ours, Some(&wrong)), Access::Denied);
        assert_eq!(folder_access(&ours, None), Access::Denied);
        let open = zk::Acls::anyone_all().to_vec();
        assert_eq!(folder_access(&open, None), Access::Granted);
        assert_eq!(folder_access(&open, Some(&wrong)), Access::Granted);
        // Create from one entry, delete from another.
        let split = [
            acl("world", "anyone", P::CREATE | P::READ),
            acl("digest", &alice.digest_id(), P::DELETE),
        ];
        assert_eq!(folder_access(&split, Some(&alice)), Access::Granted);
        assert_eq!(folder_access(&split, None), Access::Denied);
        let other = [
            acl("ip", "10.0.0.0/8", P::ALL),
            acl("world", "anyone", P::READ),
        ];
        assert_eq!(folder_access(&other, Some(&alice)), Access::Unknown);
        assert_eq!(world_permission(&ours), P::READ);
        assert_eq!(world_permission(&open), P::ALL);
        assert_eq!(world_permission(&other[..1]), P::NONE);
    }

    #[test]
    fn acls_follow_the_config() {
        let alice = ZkAuth::parse("alice:secret").unwrap();
        let mut cfg = ZkConfig::new(
            crate::config::ConnectString::parse("zk1:2181").unwrap(),
            Duration::from_secs(10),
        );
        assert_eq!(&*acls(&cfg), &*zk::Acls::anyone_all());
        cfg.acl =
            crate::config::NodeAcl::new(crate::config::AclSpec::default_for(true), Some(&alice))
                .unwrap();
        cfg.auth = Some(alice.clone());
        let got: Vec<_> = acls(&cfg)
            .iter()
            .map(|a| format!("{}:{}:{}", a.scheme(), a.id(), a.permission()))
            .collect();
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(
            got[0].starts_with(&format!("digest:{}:", alice.digest_id())),
            "{got:?}"
        );
        assert!(got[1].starts_with("world:anyone:"), "{got:?}");
        let msg = not_authorized_message(&cfg, "/r/agents");
        assert!(
            msg.starts_with("not authorized: ") && msg.contains("alice"),
            "{msg}"
        );
        assert!(!msg.contains("secret"), "{msg}");
        assert!(!auth_failed_message(&cfg).contains("secret"));
    }

    #[test]
    fn rate_limited_logging() {
        static SEEN: Mutex<Option<HashMap<String, Instant>>> = Mutex::new(None);
        assert!(first_in(&SEEN, "/a", None));
        assert!(!first_in(&SEEN, "/a", None));
        assert!(first_in(&SEEN, "/b", Some(Duration::ZERO)));
        assert!(first_in(&SEEN, "/b", Some(Duration::ZERO)));
        assert!(!first_in(&SEEN, "/a", Some(Duration::from_secs(60))));
    }

    #[test]
    fn a_negotiated_timeout_is_said_only_when_it_differs() {
        let s = Duration::from_secs;
        let note = negotiation_note(s(3600), s(10)).expect("1h cut to 10s");
        assert!(
            note.starts_with(
                "ZooKeeper set the session timeout to 10s instead of the 1h asked for"
            ),
            "{note}"
        );
        assert_eq!(negotiation_note(s(10), s(10)), None);
        assert_eq!(
            negotiation_note(s(10), Duration::from_millis(10_400)),
            None,
            "rounding"
        );
        assert!(negotiation_note(Duration::from_millis(500), s(2)).is_some());
    }

    #[test]
    fn each_connection_problem_reads_as_what_it_is() {
        let s = "zk1:2181";
        assert!(Probe::Refused
            .describe(s)
            .contains("zk1:2181 refused the connection"));
        assert!(Probe::Silent
            .describe(s)
            .contains("did not answer within 2s"));
        assert!(Probe::Accepted
            .describe(s)
            .contains("accepts connections but opened no session"));
        assert!(Probe::Unresolvable("Name or service not known".into())
            .describe(s)
            .contains("does not resolve"));
        for p in [Probe::Refused, Probe::Silent, Probe::Accepted] {
            assert!(!p.describe(s).contains("timeout"), "{p:?}");
        }
    }

    /// Schedules drawn per test: enough for the spread checks below to hold except with a
    /// probability under 10⁻¹³⁰ (see `in_both_halves`).
    const SCHEDULES: usize = 1000;

    /// The plain doubling step of the n-th delay: the upper bound of its jitter.
    fn step(initial: Duration, max: Duration, n: u32) -> Duration {
        initial.saturating_mul(2u32.saturating_pow(n)).min(max)
    }

    /// `[d/2, d]`, widened by a microsecond for backon's `f32` rounding (below the cap only: the
    /// cap itself is exact).
    fn within_jitter(delay: Duration, d: Duration, max: Duration) -> bool {
        let slack = Duration::from_micros(1);
        delay <= max && delay + slack >= d / 2 && delay <= d + slack
    }

    /// Standard deviation over mean: 0 for a schedule without jitter, about 0.19 for delays
    /// uniform in `[d/2, d]` (σ = d/(2√12), mean 3d/4).
    fn coefficient_of_variation(values: &[Duration]) -> f64 {
        let xs: Vec<f64> = values.iter().map(Duration::as_secs_f64).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        var.sqrt() / mean
    }

    /// At least 10 % of `values` on each side of `mid`, where each value falls on either side
    /// with probability 1/2: by Hoeffding's inequality a side gets fewer than 100 of 1,000 with
    /// probability at most exp(-2 · 1000 · 0.4²) = e⁻³²⁰ ≈ 10⁻¹³⁹.
    fn in_both_halves(values: &[Duration], mid: Duration) -> bool {
        let below = values.iter().filter(|v| **v < mid).count();
        let tenth = values.len() / 10;
        below >= tenth && values.len() - below >= tenth
    }

    /// The n-th delays of `SCHEDULES` fresh schedules.
    fn nth_delays(initial: Duration, max: Duration, n: usize) -> Vec<Duration> {
        (0..SCHEDULES)
            .map(|_| {
                let mut b = Backoff::new(initial, max);
                (0..n).for_each(|_| {
                    b.next_delay();
                });
                b.next_delay()
            })
            .collect()
    }

    #[test]
    fn each_delay_lies_in_half_its_doubling_step_and_never_above_the_cap() {
        // The watchdog's reconnect schedule (200 ms to 1 s) and the watcher's alert retries.
        for (initial, max) in [
            (Duration::from_millis(200), Duration::from_secs(1)),
            (Duration::from_secs(1), Duration::from_secs(60)),
            (Duration::from_millis(100), Duration::from_millis(500)),
        ] {
            for _ in 0..SCHEDULES {
                let mut b = Backoff::new(initial, max);
                for n in 0..20 {
                    let d = step(initial, max, n);
                    let delay = b.next_delay();
                    assert!(
                        within_jitter(delay, d, max),
                        "delay {n} of ({initial:?}, {max:?}) is {delay:?}, outside [{:?}, {d:?}]",
                        d / 2
                    );
                }
            }
        }
    }

    #[test]
    fn schedules_spread_where_a_plain_doubling_does_not() {
        let (initial, max) = (Duration::from_millis(200), Duration::from_secs(1));
        // The first delay (the one 10,000 watchdogs would share after an outage), one on the way
        // up, and one at the cap, where a long outage keeps every client.
        for n in [0, 2, 6] {
            let delays = nth_delays(initial, max, n);
            let d = step(initial, max, n as u32);
            let cv = coefficient_of_variation(&delays);
            // Sample CV ≈ 0.19 ± 0.004 here; 0.1 is over 20 standard errors away.
            assert!(cv > 0.1, "delay {n}: coefficient of variation {cv:.3}");
            assert!(
                in_both_halves(&delays, d * 3 / 4),
                "delay {n} not spread over [d/2, d]: {:?}…",
                &delays[..10]
            );
            let distinct: std::collections::BTreeSet<_> = delays.iter().collect();
            // 2²⁴ possible jitters: two equal draws among 1,000 are already rare (p ≈ 0.03).
            assert!(
                distinct.len() > SCHEDULES / 2,
                "{} distinct",
                distinct.len()
            );
        }
        // The measure does tell: the old schedule (no jitter) has no spread at all.
        let plain = vec![step(initial, max, 2); SCHEDULES];
        assert!(coefficient_of_variation(&plain) < 0.1);
        assert!(!in_both_halves(&plain, step(initial, max, 2) * 3 / 4));
    }

    #[test]
    fn the_time_of_the_nth_attempt_spreads_too() {
        // When the 7th attempt goes out, counted from the outage: the sum of six delays, symmetric
        // about its mean 3/4 · (200 + 400 + 800 + 3 · 1000) ms = 3.3 s.
        let (initial, max) = (Duration::from_millis(200), Duration::from_secs(1));
        let at: Vec<Duration> = (0..SCHEDULES)
            .map(|_| {
                let mut b = Backoff::new(initial, max);
                (0..6).map(|_| b.next_delay()).sum()
            })
            .collect();
        assert!(in_both_halves(&at, Duration::from_millis(3300)));
        let earliest = at.iter().min().unwrap();
        let latest = at.iter().max().unwrap();
        // Range of six uniform draws over 1,000 schedules: ≈ 1.3 s of the 2.2 s possible; it is
        // under 0.5 s only if all 1,000 sums fall in a quarter of their range around the mean,
        // far less likely than the halves check failing.
        assert!(
            *latest - *earliest > Duration::from_millis(500),
            "7th attempts between {earliest:?} and {latest:?}"
        );
    }

    #[test]
    fn reset_starts_again_near_initial() {
        let (initial, max) = (Duration::from_millis(100), Duration::from_millis(500));
        let mut firsts = Vec::new();
        let mut b = Backoff::new(initial, max);
        for _ in 0..SCHEDULES {
            for _ in 0..8 {
                b.next_delay();
            }
            // At the cap before the reset...
            assert!(within_jitter(b.next_delay(), max, max));
            b.reset();
            // ...back to the first step after it.
            let first = b.next_delay();
            assert!(within_jitter(first, initial, max), "{first:?}");
            firsts.push(first);
            b.reset();
        }
        assert!(in_both_halves(&firsts, initial * 3 / 4));
    }

    #[test]
    fn a_cap_below_the_first_step_holds_from_the_start() {
        let mut b = Backoff::new(Duration::from_secs(2), Duration::from_secs(1));
        for _ in 0..100 {
            assert!(b.next_delay() <= Duration::from_secs(1));
        }
        let mut zero = Backoff::new(Duration::ZERO, Duration::from_secs(1));
        assert_eq!(zero.next_delay(), Duration::ZERO);
    }
}
