#!/usr/bin/env python3
"""Metadata-quorum benchmark: starts its own Strom nodes (1 and 3 combined nodes on loopback)
and measures, with confluent-kafka (librdkafka) for the admin operations:

1. metadata commit latency: CreateTopics (1 partition, RF 1) one at a time, p50/p99;
   on 3 nodes also through a node that is not the active controller (forwarding);
2. bulk creation: 1,000 topics x 10 partitions in CreateTopics calls of 100 topics;
3. failover: kill -9 the active controller, time until a CreateTopics through a surviving
   node succeeds (x3, median);
4. snapshot: 10,000 topics on 1 node, the snapshot file's size, the metadata log's size, and
   the time from process start until a Metadata request lists all 10,000 topics (x3).

Usage: scripts/bench_metadata.py [--strom target/release/strom] [--quick] [--keep]
           [--failover-cap 60] [--stagger-ms 0] [--dir PARENT]
(BENCH_RUST_LOG overrides the nodes' RUST_LOG=warn, e.g. warn,openraft=info; node stderr goes
to node-N.stderr.log in the data directory, kept with --keep or when the run fails.)

librdkafka always sends CreateTopics to the controller that Metadata names, and Strom names
the active controller, so confluent-kafka cannot send one through another node; the
"through a follower" rows use a minimal CreateTopics v4 client on a raw socket instead (the
same client also gives a "through the leader" row, so the two differ only in forwarding).

Data directories are on a normal temporary directory on disk (not tmpfs): the fsync of
each metadata log append is part of the commit. Every process is killed on exit.
"""
import argparse
import json
import logging
import os
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

HOST = "127.0.0.1"
RDKAFKA_LOG = logging.getLogger("rdkafka")
RDKAFKA_LOG.propagate = False


def free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind((HOST, 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def percentile(values, p):
    v = sorted(values)
    if not v:
        return float("nan")
    k = (len(v) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def dir_size(path):
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


def fs_of(path):
    """(mount point, fs type, device) of the file system holding path."""
    path = os.path.realpath(path)
    best = ("/", "?", "?")
    with open("/proc/mounts") as f:
        for line in f:
            dev, mnt, fstype = line.split()[:3]
            if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best[0]):
                best = (mnt, fstype, dev)
    return best


class CompileWatch(threading.Thread):
    """Samples every 2 s whether a cargo or rustc process runs (another build competing for
    the CPUs makes the figures worse); reported with the results."""

    def __init__(self):
        super().__init__(daemon=True)
        self.samples = self.busy = 0
        self.running = True

    def run(self):
        while self.running:
            seen = False
            for pid in os.listdir("/proc"):
                if pid.isdigit():
                    try:
                        with open(f"/proc/{pid}/comm") as f:
                            if f.read().strip() in ("cargo", "rustc"):
                                seen = True
                                break
                    except OSError:
                        pass
            self.samples += 1
            self.busy += seen
            time.sleep(2)


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------------------------------
# Processes


class Node:
    def __init__(self, strom, node_id, bport, data, cport=None, voters=None, extra=()):
        self.strom, self.id, self.bport, self.cport = strom, node_id, bport, cport
        self.data = data
        self.log_dir = os.path.join(data, f"node-{node_id}")
        self.args = [strom, "server", "--override", f"log.dirs={self.log_dir}",
                     "--override", "http.listeners=http://127.0.0.1:0"]
        if cport is None:
            self.args += ["--override", f"listeners=PLAINTEXT://{HOST}:{bport}"]
        else:
            self.args += [
                "--override", f"node.id={node_id}",
                "--override", "process.roles=broker,controller",
                "--override", f"listeners=PLAINTEXT://{HOST}:{bport},CONTROLLER://{HOST}:{cport}",
                "--override", "controller.listener.names=CONTROLLER",
                "--override", f"controller.quorum.voters={voters}",
            ]
        for e in extra:
            self.args += ["--override", e]
        self.proc = None
        self.ready = threading.Event()
        self.started_at = None
        self.ready_at = None
        self.starts = 0

    @property
    def bootstrap(self):
        return f"{HOST}:{self.bport}"

    @property
    def metadata_dir(self):
        return os.path.join(self.log_dir, "__cluster_metadata-0")

    def start(self):
        self.ready.clear()
        self.starts += 1
        err = open(os.path.join(self.data, f"node-{self.id}.stderr.log"), "ab")
        err.write(f"\n==== start #{self.starts} at {time.time():.3f}\n".encode())
        err.flush()
        env = dict(os.environ, RUST_LOG=os.environ.get("BENCH_RUST_LOG", "warn"))
        self.started_at = time.perf_counter()
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=err,
                                     stdin=subprocess.DEVNULL, env=env)
        err.close()
        threading.Thread(target=self._read_stdout, args=(self.proc,), daemon=True).start()
        return self

    def _read_stdout(self, proc):
        for line in proc.stdout:
            if b"listening on" in line and proc is self.proc:
                self.ready_at = time.perf_counter()
                self.ready.set()

    def wait_ready(self, timeout=60):
        if not self.ready.wait(timeout):
            raise RuntimeError(f"node {self.id} did not print its listening line in {timeout}s"
                               f" (exit code {self.proc.poll()}); see {self.data}")
        return self.ready_at - self.started_at

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def terminate(self, timeout=120):
        """SIGTERM and wait; SIGKILL past timeout. Returns the seconds it took."""
        if not self.alive():
            return 0.0
        t = time.perf_counter()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log(f"node {self.id} did not stop within {timeout}s of SIGTERM; killing it")
            self.kill9()
        return time.perf_counter() - t


class Cluster:
    def __init__(self, strom, data, n, extra=()):
        self.strom, self.data = strom, data
        os.makedirs(data, exist_ok=True)
        if n == 1:
            (bport,) = free_ports(1)
            self.nodes = [Node(strom, 1, bport, data, extra=extra)]
        else:
            ports = free_ports(2 * n)
            bports, cports = ports[:n], ports[n:]
            voters = ",".join(f"{i + 1}@{HOST}:{cports[i]}" for i in range(n))
            self.nodes = [Node(strom, i + 1, bports[i], data, cports[i], voters, extra)
                          for i in range(n)]

    def node(self, node_id):
        return next(n for n in self.nodes if n.id == node_id)

    def start(self, timeout=60, stagger=0.0):
        for i, n in enumerate(self.nodes):
            if i and stagger:
                time.sleep(stagger)
            n.start()
        for n in self.nodes:
            n.wait_ready(timeout)
        self.wait_healthy(timeout)
        return self

    def quorum(self, via=None, timeout=5):
        nodes = [via] if via else [n for n in self.nodes if n.alive()]
        last = None
        for n in nodes:
            try:
                out = subprocess.run([self.strom, "cluster", "quorum", "-b", n.bootstrap,
                                      "--output", "json"], capture_output=True, timeout=timeout,
                                     env=dict(os.environ, RUST_LOG="error"))
                if out.returncode == 0:
                    return json.loads(out.stdout)
                last = out.stderr.decode(errors="replace").strip()
            except (subprocess.TimeoutExpired, ValueError) as e:
                last = repr(e)
        raise RuntimeError(f"strom cluster quorum failed: {last}")

    def leader(self):
        return self.node(self.quorum()["leader_id"])

    def wait_healthy(self, timeout=60):
        """A leader, every voter caught up (lag 0), and every broker live in Metadata."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                q = self.quorum()
                ok = q["leader_id"] >= 0 and all(r.get("lag", 0) == 0 for r in q["replicas"])
                ok = ok and len(q["replicas"]) == len(self.nodes)
                if ok:
                    for n in self.nodes:
                        md = admin(n.bootstrap).list_topics(timeout=5)
                        if len(md.brokers) != len(self.nodes):
                            ok = False
                            last = f"node {n.id} lists brokers {sorted(md.brokers)}"
                            break
                else:
                    last = q
                if ok:
                    return q
            except Exception as e:  # noqa: BLE001 - keep polling until the deadline
                last = repr(e)
            time.sleep(0.2)
        raise RuntimeError(f"cluster not healthy within {timeout}s: {last}")

    def stop(self):
        for n in self.nodes:
            if n.alive():
                n.proc.send_signal(signal.SIGTERM)
        for n in self.nodes:
            if n.proc is not None:
                try:
                    n.proc.wait(30)
                except subprocess.TimeoutExpired:
                    n.kill9()

    def kill_all(self):
        for n in self.nodes:
            try:
                n.kill9()
            except Exception:  # noqa: BLE001
                pass


# ---------------------------------------------------------------------------------------
# Clients


def admin(bootstrap, **extra):
    conf = {"bootstrap.servers": bootstrap, "reconnect.backoff.ms": 10,
            "reconnect.backoff.max.ms": 200, "logger": RDKAFKA_LOG}
    conf.update(extra)
    return AdminClient(conf)


def create_confluent(a, names, partitions=1, rf=1, timeout=60.0, request_timeout=None):
    """Creates the topics in one CreateTopics call and waits; returns the failures."""
    rt = timeout + 5 if request_timeout is None else request_timeout
    fs = a.create_topics([NewTopic(n, partitions, rf) for n in names],
                         operation_timeout=timeout, request_timeout=rt)
    failed = {}
    for name, f in fs.items():
        try:
            f.result(rt + 10)
        except Exception as e:  # noqa: BLE001
            failed[name] = e
    return failed


class RawClient:
    """CreateTopics v4 over one socket, sent to exactly the node it is connected to."""

    def __init__(self, bootstrap, timeout=60.0):
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.corr = 0

    def close(self):
        self.sock.close()

    def _recv(self, n):
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("connection closed")
            buf += chunk
        return bytes(buf)

    def create_topics(self, names, partitions=1, rf=1, timeout_ms=30000):
        """Returns {name: (error_code, error_message)}."""
        self.corr += 1
        client_id = b"bench-metadata"
        body = struct.pack(">hhih", 19, 4, self.corr, len(client_id)) + client_id
        body += struct.pack(">i", len(names))
        for n in names:
            nb = n.encode()
            body += struct.pack(">h", len(nb)) + nb + struct.pack(">ihii", partitions, rf, 0, 0)
        body += struct.pack(">ib", timeout_ms, 0)
        self.sock.sendall(struct.pack(">i", len(body)) + body)
        (size,) = struct.unpack(">i", self._recv(4))
        resp = self._recv(size)
        corr, _throttle, count = struct.unpack_from(">iii", resp, 0)
        if corr != self.corr:
            raise RuntimeError(f"correlation id {corr}, expected {self.corr}")
        pos, out = 12, {}
        for _ in range(count):
            (ln,) = struct.unpack_from(">h", resp, pos)
            name = resp[pos + 2:pos + 2 + ln].decode()
            pos += 2 + ln
            code, mlen = struct.unpack_from(">hh", resp, pos)
            pos += 4
            msg = None
            if mlen >= 0:
                msg = resp[pos:pos + mlen].decode(errors="replace")
                pos += mlen
            out[name] = (code, msg)
        return out


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# ---------------------------------------------------------------------------------------
# Measurements


def latency_confluent(bootstrap, count, prefix):
    a = admin(bootstrap)
    fails = create_confluent(a, [unique(prefix + "-warm")])
    if fails:
        raise RuntimeError(f"warm-up CreateTopics failed: {fails}")
    samples, errors = [], 0
    for i in range(count):
        t = time.perf_counter()
        fails = create_confluent(a, [f"{prefix}-{i}"])
        samples.append((time.perf_counter() - t) * 1000)
        errors += len(fails)
        if fails and errors <= 3:
            log(f"  error: {fails}")
    return samples, errors


def latency_raw(bootstrap, count, prefix):
    c = RawClient(bootstrap)
    c.create_topics([unique(prefix + "-warm")])
    samples, errors = [], 0
    for i in range(count):
        t = time.perf_counter()
        res = c.create_topics([f"{prefix}-{i}"])
        samples.append((time.perf_counter() - t) * 1000)
        bad = {k: v for k, v in res.items() if v[0] != 0}
        errors += len(bad)
        if bad and errors <= 3:
            log(f"  error: {bad}")
    c.close()
    return samples, errors


def bulk(bootstrap, topics, partitions, batch, clients, prefix):
    """topics topics of `partitions` partitions in CreateTopics calls of `batch` topics;
    `clients` AdminClients (one connection each) issue their calls sequentially, in
    parallel with each other. Returns (seconds, errors)."""
    names = [f"{prefix}-{i}" for i in range(topics)]
    batches = [names[i:i + batch] for i in range(0, len(names), batch)]
    admins = [admin(bootstrap) for _ in range(clients)]
    for a in admins:  # connect and learn the controller before the clock starts
        a.list_topics(timeout=10)
    errors, done = [], []  # done: (end, start, topics) of each call, seconds since t

    def work(k):
        for b in batches[k::clients]:
            began = time.perf_counter() - t
            f = create_confluent(admins[k], b, partitions, 1, timeout=120)
            errors.extend(f.items())
            done.append((time.perf_counter() - t, began, len(b)))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(clients)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    elapsed = time.perf_counter() - t
    if errors:
        log(f"  {len(errors)} errors, first: {errors[0]}")
    # Rate over the first and the last calls to finish (does it slow down as topics
    # accumulate?): a tenth of the calls, at least one per client; each window's topics over
    # the time from its earliest start to its latest end.
    done.sort()
    w = min(len(done), max(-(-len(done) // 10), clients))

    def rate(calls):
        return sum(c[2] for c in calls) / (max(c[0] for c in calls) - min(c[1] for c in calls))

    first, last = rate(done[:w]), rate(done[-w:])
    window = sum(c[2] for c in done[:w])
    log(f"  {elapsed:.2f} s, {topics / elapsed:.0f} topics/s (first {window} topics "
        f"{first:.0f}/s, last {window} {last:.0f}/s)")
    return elapsed, len(errors), first, last, window


def failover_once(cluster, attempt_timeout, confluent_cap, cap):
    """Kills the active controller with SIGKILL and, at once, loops CreateTopics through a
    surviving node three ways in parallel until each succeeds: the raw v4 client (reconnects
    after a failure), one long-lived AdminClient made before the kill, and a new
    AdminClient per attempt. Then restarts the killed node and waits until it rejoined."""
    q0 = cluster.quorum()
    leader = cluster.node(q0["leader_id"])
    via = next(n for n in cluster.nodes if n.id != leader.id)
    ms = int(attempt_timeout * 1000)
    long_lived = admin(via.bootstrap)
    long_lived.list_topics(timeout=10)
    results = {}
    go = threading.Event()
    clock = {}

    def elapsed():
        return time.perf_counter() - clock["kill"]

    def raw_loop():
        go.wait()
        attempts, errs, client = 0, [], None
        while elapsed() < cap:
            attempts += 1
            try:
                if client is None:
                    client = RawClient(via.bootstrap, timeout=attempt_timeout)
                res = client.create_topics([unique("failover-raw")], timeout_ms=ms)
                code, msg = next(iter(res.values()))
                if code == 0:
                    results["raw"] = (elapsed(), attempts, errs)
                    client.close()
                    return
                errs.append(f"error code {code}")
            except OSError as e:
                errs.append(type(e).__name__)
                if client is not None:
                    client.close()
                client = None
        results["raw"] = (None, attempts, errs)

    def confluent_loop(key, fresh, cap):
        go.wait()
        attempts, errs = 0, []
        while elapsed() < cap:
            attempts += 1
            a = admin(via.bootstrap) if fresh else long_lived
            fails = create_confluent(a, [unique("failover-ck")], timeout=attempt_timeout,
                                     request_timeout=attempt_timeout)
            a.poll(0)
            if not fails:
                results[key] = (elapsed(), attempts, errs)
                return
            e = next(iter(fails.values()))
            errs.append(e.args[0].name() if isinstance(e, KafkaException) else repr(e))
        results[key] = (None, attempts, errs)

    watcher = admin(via.bootstrap)
    watcher.list_topics(timeout=10)

    stop_watch = threading.Event()
    changes = []  # (seconds after the kill, controller id the survivor's Metadata names)

    def watch_controller():
        go.wait()
        last = leader.id
        while not stop_watch.is_set() and elapsed() < cap:
            try:
                cid = watcher.list_topics(timeout=1).controller_id
                if cid != last:
                    changes.append((elapsed(), cid))
                    last = cid
            except KafkaException:
                pass
            time.sleep(0.02)

    loops = [threading.Thread(target=raw_loop),
             threading.Thread(target=confluent_loop, args=("ck_long", False, confluent_cap)),
             threading.Thread(target=confluent_loop, args=("ck_fresh", True, cap))]
    watch = threading.Thread(target=watch_controller)
    for th in loops + [watch]:
        th.start()
    clock["kill"] = time.perf_counter()
    leader.kill9()
    go.set()
    for th in loops:
        th.join()
    time.sleep(0.1)
    stop_watch.set()
    watch.join()
    q1 = cluster.quorum(via=via)
    # Restart the killed node and wait until it has rejoined (caught up, broker live).
    leader.start()
    leader.wait_ready()
    t = time.perf_counter()
    cluster.wait_healthy(120)
    rejoin = time.perf_counter() - t
    out = {"killed": leader.id, "epoch_before": q0["leader_epoch"], "via": via.id,
           "new_leader": q1["leader_id"], "epoch_after": q1["leader_epoch"], "rejoin": rejoin}
    out.update(results)
    # When Metadata started naming the new leader for good (it may name another node while
    # the election runs: with no leader known, Strom names the first live broker).
    out["named"] = None
    if changes and changes[-1][1] == q1["leader_id"]:
        out["named"] = changes[-1][0]
    out["controller_changes"] = changes
    return out


def summarize_errors(errs):
    counts = {}
    for e in errs:
        counts[e] = counts.get(e, 0) + 1
    return ", ".join(f"{k} x{v}" for k, v in counts.items()) or "none"


def wait_snapshot_stable(path, stable_for=3.0, timeout=60.0):
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        try:
            st = os.stat(path)
            cur = (st.st_size, st.st_mtime_ns)
        except FileNotFoundError:
            cur = None
        if cur != last:
            last, since = cur, time.monotonic()
        elif cur is not None and time.monotonic() - since >= stable_for:
            return cur[0]
        time.sleep(0.2)
    return last[0] if last else None


def time_to_list(node, expect, prefix, timeout=180):
    """Starts node; seconds from process start until Metadata lists `expect` topics with
    `prefix`, and from start to the listening line."""
    node.start()
    t0 = node.started_at
    # Wait until the port accepts (the kernel accepts before the server serves), then ask.
    deadline = t0 + timeout
    while time.perf_counter() < deadline:
        try:
            socket.create_connection((HOST, node.bport), timeout=1).close()
            break
        except OSError:
            if not node.alive():
                raise RuntimeError(f"node exited with {node.proc.poll()}")
            time.sleep(0.002)
    a = admin(node.bootstrap)
    while time.perf_counter() < deadline:
        try:
            md = a.list_topics(timeout=max(1.0, deadline - time.perf_counter()))
            got = sum(1 for t in md.topics if t.startswith(prefix))
            if got >= expect:
                elapsed = time.perf_counter() - t0
                node.wait_ready(10)
                return elapsed, node.ready_at - t0
        except KafkaException:
            pass
        time.sleep(0.005)
    raise RuntimeError(f"Metadata did not list {expect} topics within {timeout}s")


# ---------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description="Strom metadata-quorum benchmark: commit latency, "
                                 "bulk creation, controller failover, snapshot and load.")
    ap.add_argument("--strom", default="target/release/strom", help="the strom binary "
                    "(default target/release/strom)")
    ap.add_argument("--quick", action="store_true", help="small counts, for a smoke test")
    ap.add_argument("--keep", action="store_true", help="keep the data directory")
    ap.add_argument("--failover-cap", type=float, default=60.0, help="seconds after the kill "
                    "to give up on a failover (keeps the run bounded; default 60)")
    ap.add_argument("--stagger-ms", type=float, default=0.0, help="pause between starting the "
                    "nodes of a cluster (default 0: all at once)")
    ap.add_argument("--dir", default=None, help="parent of the data directory (default: the "
                    "system temp dir; must not be tmpfs for realistic fsync cost)")
    args = ap.parse_args()
    strom = os.path.abspath(args.strom)
    if not os.access(strom, os.X_OK):
        sys.exit(f"no executable at {strom}")
    if args.quick:
        lat_n, bulk_topics, bulk_parts, snap_topics, failovers, loads = 20, 100, 10, 500, 1, 1
    else:
        lat_n, bulk_topics, bulk_parts, snap_topics, failovers, loads = 200, 1000, 10, 10000, 3, 3
    batch, par_clients, attempt_timeout, confluent_cap = 100, 4, 2.0, 10.0
    failover_cap = args.failover_cap

    root = tempfile.mkdtemp(prefix="strom-bench-metadata-", dir=args.dir)
    mnt, fstype, dev = fs_of(root)
    rdlog = logging.FileHandler(os.path.join(root, "rdkafka.log"))
    RDKAFKA_LOG.addHandler(rdlog)
    RDKAFKA_LOG.setLevel(logging.INFO)
    load_start = os.getloadavg()
    compiles = CompileWatch()
    compiles.start()
    rust_log = os.environ.get("BENCH_RUST_LOG", "warn")
    built = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(os.stat(strom).st_mtime))
    log(f"strom: {strom} (built {built})")
    log(f"data: {root} on {fstype} ({dev} at {mnt}); fsync of metadata appends is included")
    if fstype in ("tmpfs", "ramfs"):
        log("WARNING: data dir is on a RAM file system; commit latencies are optimistic")

    lat_rows, bulk_rows, fo, notes = [], [], [], []
    clusters = []
    t_start = time.perf_counter()
    ok = False

    def run_cluster(name, n, extra=()):
        c = Cluster(strom, os.path.join(root, name), n, extra)
        clusters.append(c)
        return c.start(stagger=args.stagger_ms / 1000.0)

    def split_local(samples, prefix, bootstrap, local_id):
        """p50 of the samples whose partition landed on the node that took the request,
        and of the others (the node creates its own replicas' logs before answering)."""
        md = admin(bootstrap).list_topics(timeout=10)
        loc, rem = [], []
        for i, v in enumerate(samples):
            t = md.topics.get(f"{prefix}-{i}")
            if t is None or not t.partitions:
                continue
            (loc if t.partitions[0].leader == local_id else rem).append(v)
        return (f"partition on the receiving node: n={len(loc)}, p50 "
                f"{percentile(loc, 50):.2f} ms; elsewhere: n={len(rem)}, p50 "
                f"{percentile(rem, 50):.2f} ms")

    try:
        # ---- 1 node: latency and bulk -----------------------------------------------------
        log(f"1 node: {lat_n} sequential CreateTopics (1 partition, RF 1)")
        c1 = run_cluster("single", 1)
        n1 = c1.nodes[0]
        s, e = latency_confluent(n1.bootstrap, lat_n, "lat1-ck")
        lat_rows.append(("1 node, confluent-kafka", s, e))
        s, e = latency_raw(n1.bootstrap, lat_n, "lat1-raw")
        lat_rows.append(("1 node, raw CreateTopics v4", s, e))
        c1.stop()
        for clients in (1, par_clients):
            log(f"1 node (new): bulk {bulk_topics} x {bulk_parts} partitions, {clients} "
                "client(s)")
            cb = run_cluster(f"bulk1-c{clients}", 1)
            r = bulk(cb.nodes[0].bootstrap, bulk_topics, bulk_parts, batch, clients, "bulk")
            bulk_rows.append((f"1 node, {clients} client{'s' if clients > 1 else ''}",
                              bulk_topics, bulk_parts) + r)
            cb.stop()

        # ---- 3 nodes: latency, bulk, failover ---------------------------------------------
        log("3 nodes: starting")
        c3 = run_cluster("three", 3)
        leader = c3.leader()
        follower = next(n for n in c3.nodes if n.id != leader.id)
        log(f"3 nodes: leader {leader.id}, follower used {follower.id}; {lat_n} sequential "
            "CreateTopics each way")
        s, e = latency_raw(follower.bootstrap, lat_n, "lat3-raw-f")
        lat_rows.append((f"3 nodes, raw v4 via a follower (node {follower.id}; forwarded)", s, e))
        notes.append("3 nodes, raw v4 via the follower: "
                     + split_local(s, "lat3-raw-f", follower.bootstrap, follower.id))
        s, e = latency_raw(leader.bootstrap, lat_n, "lat3-raw-l")
        lat_rows.append((f"3 nodes, raw v4 via the leader (node {leader.id})", s, e))
        notes.append("3 nodes, raw v4 via the leader: "
                     + split_local(s, "lat3-raw-l", leader.bootstrap, leader.id))
        s, e = latency_confluent(follower.bootstrap, lat_n, "lat3-ck")
        lat_rows.append(("3 nodes, confluent-kafka (bootstrap = follower, but librdkafka sends "
                         "to the controller Metadata names = the leader)", s, e))
        if c3.leader().id != leader.id:
            notes.append("the leader changed during the 3-node latency runs")
        c3.wait_healthy(60)
        for i in range(failovers):
            log(f"3 nodes: failover {i + 1}/{failovers}")
            r = failover_once(c3, attempt_timeout, confluent_cap, failover_cap)
            fo.append(r)
            for k in FAILOVER_KINDS:
                secs, att, errs = r[k]
                log(f"  {k}: {'%.3f s' % secs if secs is not None else 'no success'} "
                    f"({att} attempts; failures: {summarize_errors(errs)})")
            log("  Metadata's controller id after the kill: " + ", ".join(
                f"{c} at {t:.2f} s" for t, c in r["controller_changes"]))
            log(f"  killed {r['killed']} (epoch {r['epoch_before']}), new leader "
                f"{r['new_leader']} (epoch {r['epoch_after']}), via node {r['via']}; "
                f"rejoin {r['rejoin']:.1f} s")
        c3.stop()
        for clients in (1, par_clients):
            log(f"3 nodes (new): bulk {bulk_topics} x {bulk_parts} partitions, {clients} "
                "client(s)")
            cb = run_cluster(f"bulk3-c{clients}", 3)
            r = bulk(cb.nodes[0].bootstrap, bulk_topics, bulk_parts, batch, clients, "bulk")
            bulk_rows.append((f"3 nodes, {clients} client{'s' if clients > 1 else ''} "
                              "(to the leader)", bulk_topics, bulk_parts) + r)
            cb.stop()

        # ---- 1 node: snapshot and load -----------------------------------------------------
        log(f"1 node: creating {snap_topics} topics (1 partition) with "
            "metadata.log.max.snapshot.interval.ms=1000")
        cs = run_cluster("snapshot", 1, ["metadata.log.max.snapshot.interval.ms=1000"])
        ns = cs.nodes[0]
        r = bulk(ns.bootstrap, snap_topics, 1, batch, par_clients, "snap")
        bulk_rows.append((f"1 node, {par_clients} clients (the snapshot test's set-up)",
                          snap_topics, 1) + r)
        snap_path = os.path.join(ns.metadata_dir, "snapshot")
        size_running = wait_snapshot_stable(snap_path)
        stop_secs = ns.terminate()
        snap_size = os.path.getsize(snap_path) if os.path.exists(snap_path) else None
        md_size = dir_size(ns.metadata_dir)
        files = sorted(os.listdir(ns.metadata_dir))
        log(f"  snapshot {snap_size} B (while running: {size_running}), metadata dir "
            f"{md_size} B: {files}; SIGTERM took {stop_secs:.2f} s")
        loadt, listen, stops = [], [], [stop_secs]
        for i in range(loads):
            el, li = time_to_list(ns, snap_topics, "snap-")
            loadt.append(el)
            listen.append(li)
            log(f"  load {i + 1}/{loads}: {el:.3f} s to list all topics "
                f"({li:.3f} s to the listening line)")
            stops.append(ns.terminate())
        md_size_after = dir_size(ns.metadata_dir)
        log_dir_size = dir_size(ns.log_dir)
        ok = True
    finally:
        for c in clusters:
            c.kill_all()
        if not ok:
            print(f"\nfailed; data and node logs kept in {root}", file=sys.stderr)

    total = time.perf_counter() - t_start
    compiles.running = False

    # ---- Report ---------------------------------------------------------------------------
    cmd = " ".join(["python3", os.path.relpath(sys.argv[0])] + sys.argv[1:])
    out = ["", "## Strom metadata benchmark", "", f"Command: `{cmd}`", "",
           f"Binary `{strom}` (built {built}); data in a temp dir on disk ({fstype} at {mnt}, "
           f"not tmpfs: the fsync of each metadata log append is part of every commit); "
           f"loopback; {os.cpu_count()} CPUs; RUST_LOG={rust_log}; whole run {total:.0f} s; "
           f"load average (1/5/15 min) {'/'.join(f'{v:.2f}' for v in load_start)} at the start, "
           f"{'/'.join(f'{v:.2f}' for v in os.getloadavg())} at the end (the benchmark itself "
           f"keeps about one core busy); a cargo/rustc process was running in "
           f"{compiles.busy} of {compiles.samples} samples (every 2 s) during the run.", "",
           "| Measurement | Result |", "|---|---|"]
    for what, val, errs in lat_rows:
        out.append(f"| CreateTopics latency (1 partition, RF 1, one at a time), {what}, "
                   f"n={len(val)} | p50 {percentile(val, 50):.2f} ms, p99 "
                   f"{percentile(val, 99):.2f} ms (max {max(val):.2f})"
                   + (f", **{errs} errors**" if errs else "") + " |")
    for what, t, p, el, errs, first, last, window in bulk_rows:
        out.append(f"| Bulk create {t} topics x {p} partition{'s' if p > 1 else ''} (RF 1), "
                   f"{what}, {batch} topics/call | {el:.2f} s: **{t / el:.0f} topics/s, "
                   f"{t * p / el:.0f} partitions/s** (first {window} topics at {first:.0f}/s, "
                   f"last {window} at {last:.0f}/s)" + (f", **{errs} errors**" if errs else "")
                   + " |")
    for k in FAILOVER_KINDS:
        vals = [r[k][0] for r in fo]
        good = [v for v in vals if v is not None]
        each = ", ".join("%.2f s" % v if v is not None else "none" for v in vals)
        if k != "ck_long":
            each = each.replace("none", f"> {failover_cap:.0f} s")
        m = statistics.median([v if v is not None else float("inf") for v in vals])
        if k == "ck_long" and not good:
            med = f"no success in {len(vals)} of {len(vals)}"
        elif m == float("inf"):
            med = f"median **> {failover_cap:.0f} s**"
        else:
            med = f"median **{m:.2f} s**"
        out.append(f"| Failover, kill -9 of the active controller → first successful "
                   f"CreateTopics via a survivor, {FAILOVER_KINDS[k].format(cap=confluent_cap)}"
                   f" ({attempt_timeout:.0f} s per attempt) | {each}; {med} |")
    named = [r["named"] for r in fo]
    out.append("| Failover: kill → survivor's Metadata names the new leader as controller | "
               + ", ".join("%.2f s" % v if v is not None else f"> {failover_cap:.0f} s"
                           for v in named) + " |")
    out.append("| Failover: elections it took (leader epoch after − before) | "
               + ", ".join(f"{r['epoch_after'] - r['epoch_before']} ({r['epoch_before']}→"
                           f"{r['epoch_after']})" for r in fo) + " |")
    out.append("| Failover: restarted node back (voter lag 0, broker in Metadata) | "
               + ", ".join(f"{r['rejoin']:.1f} s" for r in fo) + " |")
    out.append(f"| Snapshot file after {snap_topics} topics x 1 partition (snapshot interval "
               f"1 s, size after SIGTERM) | {snap_size} B"
               + (f" ({snap_size / snap_topics:.0f} B/topic)" if snap_size else " (none!)")
               + " |")
    out.append(f"| Metadata log dir `__cluster_metadata-0`, total | {md_size} B after the first "
               f"stop; {md_size_after} B after {loads} more start/stop "
               f"(+{(md_size_after - md_size) / loads:.0f} B per start/stop) |")
    out.append(f"| Graceful stop (SIGTERM → exit) with {snap_topics} partitions | "
               + ", ".join(f"{v:.2f} s" if v < 120 else "> 120 s (then SIGKILL)"
                           for v in stops) + " |")
    out.append(f"| Load: process start → Metadata (list_topics) returns all {snap_topics} "
               f"topics | " + ", ".join(f"{v:.2f} s" for v in loadt)
               + f"; median **{statistics.median(loadt):.2f} s** (start → listening line: "
               f"median {statistics.median(listen):.2f} s) |")
    out.append(f"| Node's whole log dir ({snap_topics} partition logs + metadata) | "
               f"{log_dir_size} B |")
    out.append("")
    out.append("Notes:")
    out.append("- Latency is the wall time of one CreateTopics call, client included. "
               "librdkafka always sends CreateTopics to the controller id Metadata gives, which "
               "Strom sets to the active controller, so the forwarded rows use a minimal "
               "CreateTopics v4 client on a raw socket (as is the leader row it is compared "
               "with).")
    for n in notes:
        out.append(f"- {n}")
    out.append(f"- Bulk: each run on new nodes (empty metadata); CreateTopics calls of {batch} "
               "topics; each client (one AdminClient, one "
               "connection) waits for its call before sending the next; with several clients "
               "they run in parallel (Strom answers a connection's requests in order). First/"
               "last: the first and the last calls to finish, their topics over the time from "
               "their first start to their last end.")
    out.append(f"- Failover: the three loops (and a Metadata poll every 20 ms) run at the same "
               f"time through the same survivor, each attempt with a new topic name; client "
               f"timeout and CreateTopics timeout_ms are {attempt_timeout:.0f} s, so the "
               f"confluent-kafka figures come in steps of {attempt_timeout:.0f} s. The nodes "
               f"were started " + (f"{args.stagger_ms:.0f} ms apart" if args.stagger_ms else
                                   "at the same moment") + ". Failures seen: "
               + "; ".join(f"{k}: " + summarize_errors([e for r in fo for e in r[k][2]])
                           for k in FAILOVER_KINDS) + ".")
    print("\n".join(out))
    RDKAFKA_LOG.removeHandler(rdlog)  # clients still alive log nowhere from here on
    RDKAFKA_LOG.addHandler(logging.NullHandler())
    rdlog.close()
    if args.keep:
        print(f"\ndata kept in {root}")
    else:
        import shutil
        shutil.rmtree(root, ignore_errors=True)


FAILOVER_KINDS = {
    "raw": "raw v4 client (new connection after a failure)",
    "ck_fresh": "confluent-kafka, a new AdminClient per attempt",
    "ck_long": "confluent-kafka, one AdminClient made before the kill (given up after {cap:.0f} s)",
}


if __name__ == "__main__":
    main()
