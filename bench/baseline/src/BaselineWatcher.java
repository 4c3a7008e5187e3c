/*
 * Baseline watcher: the "published design" the benchmark compares flume-watcher with.
 *
 * The usual recipe for "tell me when an agent dies" on ZooKeeper: a Curator PathChildrenCache on
 * the folder of ephemeral liveness nodes, and, for each CHILD_REMOVED whose persistent identity
 * node still exists, one webhook POST, sent synchronously from the cache's event thread, so one
 * agent at a time. No outage records, no batching, no retries, no reconciliation after a
 * reconnection (PathChildrenCache re-lists, but misses a delete + re-create of the same name while
 * disconnected, CURATOR-391). It is the baseline because it is what one writes first with Curator.
 *
 *   java -cp "$(cat target/bench-baseline/classpath)" BaselineWatcher --zk HOST:PORT --root /r \
 *       --webhook http://127.0.0.1:P/path [--session-timeout-ms 10000]
 *
 * Prints "baseline watcher ready agents=N" once the cache has its initial view; logs to stderr.
 */
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.HashMap;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.cache.ChildData;
import org.apache.curator.framework.recipes.cache.PathChildrenCache;
import org.apache.curator.framework.recipes.cache.PathChildrenCacheEvent;
import org.apache.curator.retry.ExponentialBackoffRetry;
import org.apache.curator.utils.ZKPaths;
import org.apache.zookeeper.KeeperException;

@SuppressWarnings("deprecation") // PathChildrenCache is deprecated in Curator 5: it is the design being measured
public final class BaselineWatcher {
    static final DateTimeFormatter RFC3339_MS =
            DateTimeFormatter.ofPattern("yyyy-MM-dd'T'HH:mm:ss.SSS'Z'").withZone(ZoneOffset.UTC);
    static final Pattern HOST = Pattern.compile("\"host\"\\s*:\\s*\"((?:[^\"\\\\]|\\\\.)*)\"");

    public static void main(String[] args) throws Exception {
        System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", "warn");
        System.setProperty("org.slf4j.simpleLogger.log.org.apache.zookeeper.ClientCnxn", "error"); // a WARN at every close
        Map<String, String> opt = parseArgs(args);
        String root = opt.get("--root").replaceAll("/+$", "");
        String live = ZKPaths.makePath(root, "live"), agents = ZKPaths.makePath(root, "agents");
        URI webhook = URI.create(opt.get("--webhook"));
        int sessionMs = Integer.parseInt(opt.getOrDefault("--session-timeout-ms", "10000"));

        CuratorFramework client = CuratorFrameworkFactory.builder().connectString(opt.get("--zk"))
                .sessionTimeoutMs(sessionMs).connectionTimeoutMs(Math.min(3000, sessionMs))
                .retryPolicy(new ExponentialBackoffRetry(1000, 3)).build();
        client.start();
        // Persistent folders: PathChildrenCache would otherwise create <root>/live as a container node,
        // which the server deletes once it becomes empty.
        for (String folder : new String[] {live, agents}) {
            try {
                client.create().creatingParentsIfNeeded().forPath(folder);
            } catch (KeeperException.NodeExistsException e) {
                // already there
            }
        }

        HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
                .connectTimeout(Duration.ofSeconds(5)).build();
        PathChildrenCache cache = new PathChildrenCache(client, live, true);
        cache.getListenable().addListener((c, event) -> {
            if (event.getType() == PathChildrenCacheEvent.Type.INITIALIZED) {
                System.out.println("baseline watcher ready agents=" + event.getInitialData().size());
                System.out.flush();
            } else if (event.getType() == PathChildrenCacheEvent.Type.CHILD_REMOVED) {
                ChildData gone = event.getData();
                String id = ZKPaths.getNodeFromPath(gone.getPath());
                if (c.checkExists().forPath(ZKPaths.makePath(agents, id)) == null) {
                    System.err.println("planned stop of " + id + ": no alert");
                    return;
                }
                post(http, webhook, alert(id, gone.getData()));
            }
        });
        cache.start(PathChildrenCache.StartMode.POST_INITIALIZED_EVENT);

        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                cache.close();
            } catch (Exception e) {
                System.err.println("closing the cache: " + e);
            }
            client.close();
            Runtime.getRuntime().halt(0); // SIGTERM is how it is stopped: exit 0, not 143
        }));
        Thread.currentThread().join(); // the cache's thread does the work
    }

    /** {"alerts":[{"event":"down",...}]}; the host is copied, still JSON-escaped, from the node's data. */
    static String alert(String id, byte[] data) {
        String host = "null";
        if (data != null) {
            Matcher m = HOST.matcher(new String(data, StandardCharsets.UTF_8));
            if (m.find()) host = "\"" + m.group(1) + "\"";
        }
        return "{\"alerts\":[{\"event\":\"down\",\"agent\":\"" + id.replace("\\", "\\\\").replace("\"", "\\\"")
                + "\",\"host\":" + host + ",\"reason\":\"lost contact\",\"at\":\""
                + RFC3339_MS.format(Instant.now()) + "\"}]}";
    }

    /** One synchronous POST; a failure is logged, never retried. */
    static void post(HttpClient http, URI webhook, String body) {
        try {
            HttpResponse<String> r = http.send(HttpRequest.newBuilder(webhook).timeout(Duration.ofSeconds(10))
                    .header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString());
            if (r.statusCode() / 100 != 2) System.err.println("webhook answered " + r.statusCode() + " to " + body);
        } catch (Exception e) {
            System.err.println("webhook failed (" + e + ") for " + body);
        }
    }

    static Map<String, String> parseArgs(String[] args) {
        Map<String, String> opt = new HashMap<>();
        for (int i = 0; i + 1 < args.length; i += 2) opt.put(args[i], args[i + 1]);
        for (String need : new String[] {"--zk", "--root", "--webhook"}) {
            if (!opt.containsKey(need)) {
                System.err.println("usage: BaselineWatcher --zk HOST:PORT --root /r --webhook URL [--session-timeout-ms MS]");
                System.exit(2);
            }
        }
        return opt;
    }
}
