#!/usr/bin/env python3
"""Crash -> alert latency and watchdog idle memory, measured on the real pair.

Starts nothing but the pair: give it a running ZooKeeper (`--zk 127.0.0.1:PORT`) and release
binaries (`cargo build --release --workspace --bins`). A stand-in agent is crashed N times
(SIGUSR1 -> exit code 3); for each crash the time from the signal to the webhook's receipt of the
`down` alert is recorded. The watchdog's RSS is read from /proc after it has idled. Everything it
starts is stopped at the end.
"""
import argparse, http.server, json, os, re, signal, statistics, subprocess, sys, threading, time

ap = argparse.ArgumentParser()
ap.add_argument("--zk", required=True)
ap.add_argument("--crashes", type=int, default=50)
ap.add_argument("--target", default="target/release")
ap.add_argument("--agent", default="target/debug/stand-in-agent", help="the stand-in agent (a test binary)")
args = ap.parse_args()

received = []  # (monotonic time, alert)
cond = threading.Condition()

class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        now = time.monotonic()
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200); self.end_headers(); self.wfile.write(b"{}")
        with cond:
            for a in json.loads(body).get("alerts", []):
                received.append((now, a))
            cond.notify_all()
    def log_message(self, *a): pass

srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
threading.Thread(target=srv.serve_forever, daemon=True).start()
root = f"/bench-{os.getpid()}"
procs = []

def start(cmd, **kw):
    p = subprocess.Popen(cmd, **kw); procs.append(p); return p

def wait(pred, secs, what):
    end = time.monotonic() + secs
    with cond:
        while not pred():
            left = end - time.monotonic()
            if left <= 0: sys.exit(f"timed out waiting for {what}")
            cond.wait(left)

try:
    env = dict(os.environ, FLUME_WATCHER_LOG="warn", FLUME_WATCHDOG_LOG="warn")
    env.update({k: v for k, v in os.environ.items() if k.endswith("_LOG")})
    start([f"{args.target}/flume-watcher", "run", "--zk", args.zk, "--root", root, "--webhook",
           f"http://127.0.0.1:{srv.server_address[1]}/", "--recovered-after", "300ms"], env=env)
    time.sleep(1.0)  # the watcher's first listing; only the crash timings below are measured
    wd = start([f"{args.target}/flume-watchdog", "run", "--zk", args.zk, "--root", root, "--id", "bench",
                "--session-timeout", "4s", "--backoff-initial", "50ms", "--backoff-reset", "200ms", "--",
                args.agent, "agent", "-n", "bench"],
               env=env, stdout=subprocess.PIPE, text=True)
    pids = []
    def reader():
        for line in wd.stdout:
            m = re.search(r"started pid=(\d+)", line)
            if m:
                with cond: pids.append(int(m.group(1))); cond.notify_all()
    threading.Thread(target=reader, daemon=True).start()
    wait(lambda: pids, 10, "the first agent")
    time.sleep(3.0)  # idle
    rss = int(re.search(r"VmRSS:\s+(\d+)", open(f"/proc/{wd.pid}/status").read()).group(1))
    lat = []
    restart = []
    for i in range(args.crashes):
        # Each crash is its own outage: wait until the previous one was reported recovered.
        wait(lambda: i == 0 or received[-1][1]["event"] == "recovered", 10, f"recovered before crash {i}")
        n_alerts, n_pids = len(received), len(pids)
        t0 = time.monotonic()
        os.kill(pids[-1], signal.SIGUSR1)
        wait(lambda: len(received) > n_alerts, 10, f"alert of crash {i}")
        assert received[n_alerts][1]["event"] == "down", received[n_alerts]
        lat.append((received[n_alerts][0] - t0) * 1000)
        wait(lambda: len(pids) > n_pids, 10, f"restart after crash {i}")
        restart.append((time.monotonic() - t0) * 1000)
    q = lambda xs, p: sorted(xs)[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]
    print(json.dumps({
        "crashes": len(lat),
        "crash_to_alert_ms": {"p50": round(q(lat, 50), 2), "p99": round(q(lat, 99), 2), "max": round(max(lat), 2)},
        "crash_to_restart_seen_ms": {"p50": round(q(restart, 50), 2), "max": round(max(restart), 2)},
        "watchdog_idle_rss_kib": rss,
    }, indent=1))
finally:
    for p in reversed(procs):
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try: p.wait(10)
        except subprocess.TimeoutExpired: p.kill()
    srv.shutdown()
