/*
 * Baseline watchdog: the "published design" the benchmark compares flume-watchdog with.
 *
 * The usual Curator recipe for "register a supervised process": a persistent identity node
 * <root>/agents/<id> (the agent is supposed to run) and an EPHEMERAL liveness node <root>/live/<id>
 * (it runs now, tied to this JVM's session), a child started with ProcessBuilder and restarted after
 * a fixed backoff when it exits unasked. On SIGTERM the identity node is deleted first, so the
 * watcher reads the liveness node's disappearance as a planned stop. It is the baseline because it
 * is what one writes first with Curator: no process group, no PDEATHSIG, no check that the id is live
 * elsewhere, no growing backoff, a JVM per agent.
 *
 *   java -cp "$(cat target/bench-baseline/classpath)" BaselineWatchdog --zk HOST:PORT --root /r --id ID \
 *       [--session-timeout-ms 10000] [--backoff-ms 50] -- CMD ARGS...
 *
 * Prints "started pid=N" each time it starts the child; logs to stderr; exits 0 on SIGTERM.
 */
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.state.ConnectionState;
import org.apache.curator.retry.ExponentialBackoffRetry;
import org.apache.curator.utils.ZKPaths;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.data.Stat;

public final class BaselineWatchdog {
    static final DateTimeFormatter RFC3339_MS =
            DateTimeFormatter.ofPattern("yyyy-MM-dd'T'HH:mm:ss.SSS'Z'").withZone(ZoneOffset.UTC);

    interface ZkOp { void run() throws Exception; }

    final CuratorFramework client;
    final String id, host, identityPath, livePath;
    final List<String> command;
    final long backoffMs;
    volatile Process child;
    volatile boolean stopping;
    volatile int exitStatus; // the JVM's, set before System.exit: the shutdown hook halts with it
    volatile String lastExit = "null";
    volatile int restarts;

    BaselineWatchdog(Map<String, String> opt, List<String> command) {
        String root = opt.get("--root").replaceAll("/+$", "");
        this.id = opt.get("--id");
        this.identityPath = ZKPaths.makePath(root, "agents", id);
        this.livePath = ZKPaths.makePath(root, "live", id);
        this.command = command;
        this.backoffMs = Long.parseLong(opt.getOrDefault("--backoff-ms", "50"));
        this.host = hostname();
        int sessionMs = Integer.parseInt(opt.getOrDefault("--session-timeout-ms", "10000"));
        this.client = CuratorFrameworkFactory.builder().connectString(opt.get("--zk")).sessionTimeoutMs(sessionMs)
                .connectionTimeoutMs(Math.min(3000, sessionMs)).retryPolicy(new ExponentialBackoffRetry(1000, 3)).build();
    }

    public static void main(String[] args) throws Exception {
        System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", "warn");
        System.setProperty("org.slf4j.simpleLogger.log.org.apache.zookeeper.ClientCnxn", "error"); // a WARN at every close
        int dashes = Arrays.asList(args).indexOf("--");
        Map<String, String> opt = new HashMap<>();
        for (int i = 0; i + 1 < (dashes < 0 ? args.length : dashes); i += 2) opt.put(args[i], args[i + 1]);
        if (dashes < 0 || dashes == args.length - 1 || !opt.containsKey("--zk") || !opt.containsKey("--root")
                || !opt.containsKey("--id")) {
            System.err.println("usage: BaselineWatchdog --zk HOST:PORT --root /r --id ID [--session-timeout-ms MS]"
                    + " [--backoff-ms MS] -- CMD ARGS...");
            System.exit(2);
        }
        new BaselineWatchdog(opt, Arrays.asList(args).subList(dashes + 1, args.length)).run();
    }

    void run() throws InterruptedException {
        // After a (re)connection, register again: a new session has lost the liveness node.
        client.getConnectionStateListenable().addListener((c, state) -> {
            if (state == ConnectionState.CONNECTED || state == ConnectionState.RECONNECTED) register();
        });
        client.start();
        Runtime.getRuntime().addShutdownHook(new Thread(this::stop));
        if (client.blockUntilConnected(3, TimeUnit.SECONDS)) {
            zk("write the identity node", () -> client.create().orSetData().creatingParentsIfNeeded()
                    .forPath(identityPath, identity("running")));
        } // else the child starts anyway, and the listener registers once ZooKeeper answers
        while (true) {
            Process p = null;
            synchronized (this) { // not while stop() runs
                if (stopping) return;
                try {
                    p = child = new ProcessBuilder(command).inheritIO().start();
                } catch (IOException e) {
                    System.err.println("cannot start " + command + ": " + e.getMessage());
                    exitStatus = 1;
                }
            }
            if (p == null) System.exit(1); // outside the lock: the shutdown hook takes it
            System.out.println("started pid=" + p.pid());
            System.out.flush();
            createLive(p);
            int code = p.waitFor();
            if (stopping) return;
            restarts++;
            lastExit = "{\"code\":" + code + ",\"at\":\"" + RFC3339_MS.format(Instant.now()) + "\"}";
            System.err.println("child exited with code " + code + ", restarting in " + backoffMs + " ms");
            zk("record the exit", () -> client.setData().forPath(identityPath, identity("backoff")));
            zk("delete the liveness node", () -> client.delete().quietly().forPath(livePath)); // alerts the watcher
            Thread.sleep(backoffMs);
        }
    }

    /** Identity, then liveness if the child runs; idempotent. */
    void register() {
        if (stopping) return;
        zk("write the identity node", () -> client.create().orSetData().creatingParentsIfNeeded()
                .forPath(identityPath, identity("running")));
        Process p = child;
        if (p != null && p.isAlive()) createLive(p);
    }

    void createLive(Process p) {
        byte[] data = ("{\"host\":\"" + host + "\",\"watchdog_pid\":" + ProcessHandle.current().pid()
                + ",\"agent_pid\":" + p.pid() + "}").getBytes(StandardCharsets.UTF_8);
        zk("create the liveness node", () -> {
            try {
                client.create().creatingParentsIfNeeded().withMode(CreateMode.EPHEMERAL).forPath(livePath, data);
            } catch (KeeperException.NodeExistsException e) {
                Stat st = client.checkExists().forPath(livePath);
                if (st != null && st.getEphemeralOwner() == client.getZookeeperClient().getZooKeeper().getSessionId()) {
                    client.setData().forPath(livePath, data); // ours (a retried create, or a reconnection)
                    return;
                }
                client.delete().quietly().forPath(livePath); // left by an earlier session of this id
                client.create().creatingParentsIfNeeded().withMode(CreateMode.EPHEMERAL).forPath(livePath, data);
            }
        });
    }

    /** SIGTERM: identity node first (a planned stop), then the child, then the liveness node. */
    void stop() {
        Process p;
        synchronized (this) {
            stopping = true;
            p = child;
        }
        zk("delete the identity node", () -> client.delete().quietly().forPath(identityPath));
        if (p != null && p.isAlive()) {
            p.destroy(); // SIGTERM
            try {
                if (!p.waitFor(10, TimeUnit.SECONDS)) {
                    p.destroyForcibly();
                    p.waitFor();
                }
            } catch (InterruptedException e) {
                p.destroyForcibly();
            }
        }
        zk("delete the liveness node", () -> client.delete().quietly().forPath(livePath));
        client.close();
        Runtime.getRuntime().halt(exitStatus); // 0 on SIGTERM, not the JVM's 143
    }

    byte[] identity(String state) {
        return ("{\"id\":\"" + id + "\",\"host\":\"" + host + "\",\"state\":\"" + state + "\",\"restarts\":" + restarts
                + ",\"last_exit\":" + lastExit + "}").getBytes(StandardCharsets.UTF_8);
    }

    static void zk(String what, ZkOp op) {
        try {
            op.run();
        } catch (Exception e) {
            System.err.println("cannot " + what + ": " + e);
        }
    }

    static String hostname() {
        try {
            return Files.readString(Path.of("/proc/sys/kernel/hostname")).trim();
        } catch (IOException e) {
            return "localhost";
        }
    }
}
