#!/usr/bin/env python3
"""Replication benchmark: starts its own three combined Strom nodes on loopback and measures,
with confluent-kafka (librdkafka) as the client (each producer warmed up first: a new
idempotent producer's first half second is connection and producer-id setup):

1. produce throughput with acks=all at RF=3 (min.insync.replicas=2) against RF=1, same
   client and settings, and the ratio;
2. latency at RF=3 at half of the measured peak rate, same producer settings:
   acknowledgement (produce to delivery report) and end to end (produce to the receipt by a
   consumer in its own process), p50 and p99;
3. failover: SIGKILL of the leader of a partition under a steady acks=all load, to the first
   record produced after the kill that is acknowledged (N kills; p50 and max), the killed
   broker restarted and back in the ISR before the next;
4. follower catch-up: one broker down while --catchup-mb of records are written, then the
   time from its restart until it is back in the ISR of every partition (MB/s);
5. idle CPU of the three processes with 1,000 RF=3 partitions and no traffic (replica
   fetchers long-poll, so this should stay near zero).

Usage: scripts/bench_replication.py [--strom target/release/strom] [--quick]
           [--kills 20] [--catchup-mb 1024] [--dir PARENT]
Every process is killed on exit.
"""
import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time

from confluent_kafka import Consumer, OFFSET_END, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_metadata import CompileWatch, Node, free_ports, log, percentile  # noqa: E402

HOST = "127.0.0.1"


def cluster(strom, data, n=3, extra=()):
    ports = free_ports(2 * n)
    voters = ",".join(f"{i + 1}@{HOST}:{ports[n + i]}" for i in range(n))
    nodes = [Node(strom, i + 1, ports[i], data, ports[n + i], voters, extra) for i in range(n)]
    for node in nodes:
        node.start()
    for node in nodes:
        node.wait_ready()
    return nodes


def bootstrap(nodes):
    return ",".join(n.bootstrap for n in nodes if n.alive())


def create(nodes, name, partitions, rf, configs=None):
    a = AdminClient({"bootstrap.servers": bootstrap(nodes)})
    deadline = time.time() + 60
    while True:
        try:
            a.create_topics([NewTopic(name, partitions, rf, config=configs or {})],
                            operation_timeout=30)[name].result(40)
            return
        except Exception as e:  # noqa: BLE001 - brokers may still be joining
            if time.time() > deadline:
                raise
            log(f"create {name}: {e}; retrying")
            time.sleep(1)


def partitions(nodes, topic):
    a = AdminClient({"bootstrap.servers": bootstrap(nodes)})
    md = a.list_topics(topic, timeout=10)
    return {p: (part.leader, sorted(part.isrs), sorted(part.replicas))
            for p, part in md.topics[topic].partitions.items()}


def wait_full_isr(nodes, topic, timeout=600):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            ps = partitions(nodes, topic)
            if ps and all(isr == reps and leader >= 0 for leader, isr, reps in ps.values()):
                return
        except Exception:  # noqa: BLE001 - retried
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{topic}: ISR not full within {timeout}s")


def producer(nodes, **extra):
    conf = {"bootstrap.servers": bootstrap(nodes), "acks": "all", "linger.ms": 5,
            "batch.size": 262144, "queue.buffering.max.kbytes": 262144,
            "enable.idempotence": True, "message.timeout.ms": 120000,
            "socket.connection.setup.timeout.ms": 2000,
            "topic.metadata.refresh.interval.ms": 1000}
    conf.update(extra)
    return Producer(conf)


def warmed_producer(nodes, topic, **extra):
    """A producer that has connected to every leader of `topic` and got its producer id
    (the first half second of a new idempotent producer is setup, not steady state)."""
    p = producer(nodes, **extra)
    for i in range(30):
        p.produce(topic, b"warm-up", partition=i % 3)
    assert p.flush(30) == 0, "warm-up records not acknowledged"
    return p


def throughput(nodes, topic, count, size):
    p = warmed_producer(nodes, topic)
    payload = os.urandom(size)
    done = [0]

    def cb(err, _msg):
        if err is None:
            done[0] += 1

    t = time.perf_counter()
    for i in range(count):
        while True:
            try:
                p.produce(topic, payload, partition=i % 3, on_delivery=cb)
                break
            except BufferError:
                p.poll(0.001)
        if i % 1000 == 0:
            p.poll(0)
    p.flush(300)
    took = time.perf_counter() - t
    assert done[0] == count, f"{done[0]} of {count} acknowledged"
    return count / took, count * size / took / 1e6


def _consume_e2e(bootstrap_servers, topic, seconds, ready, out):
    """In its own process (its own interpreter lock, so the consumer's Python work does
    not delay the producer's delivery reports): end-to-end latencies in ms, from the send
    time each record carries to its receipt."""
    c = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": f"lat-{time.time()}",
                  "fetch.wait.max.ms": 100, "fetch.min.bytes": 1})
    c.assign([TopicPartition(topic, p, OFFSET_END) for p in range(3)])
    for _ in range(20):
        c.poll(0.1)
    ready.set()
    e2e = []
    deadline = time.time() + seconds
    while time.time() < deadline:
        for m in c.consume(1000, 0.2):
            if m.error() is None and m.value() and m.value() != b"warm-up":
                e2e.append((time.time() - float(m.value()[:20].decode())) * 1000)
    c.close()
    out.put(e2e)


def latency(nodes, topic, rate, seconds, size):
    """Produce at `rate` records/s; returns (ack latencies, e2e latencies) in ms."""
    import multiprocessing
    ctx = multiprocessing.get_context("spawn")
    ready, out = ctx.Event(), ctx.Queue()
    consumer = ctx.Process(target=_consume_e2e,
                           args=(bootstrap(nodes), topic, seconds + 5, ready, out))
    consumer.start()
    ready.wait(30)
    acks = []
    # The producer settings of the throughput runs, so "half of peak" is half of what this
    # producer reached (with linger.ms=1 batches stay tiny and the peak is far lower).
    p = warmed_producer(nodes, topic)
    pad = b"x" * max(0, size - 20)
    start = time.perf_counter()
    n = 0
    while time.perf_counter() - start < seconds:
        due = start + n / rate
        now = time.perf_counter()
        if due > now:
            time.sleep(min(due - now, 0.01))
            p.poll(0)
            continue
        sent = time.perf_counter()

        def cb(err, _m, sent=sent):
            if err is None:
                acks.append((time.perf_counter() - sent) * 1000)

        p.produce(topic, f"{time.time():20.6f}".encode() + pad, partition=n % 3, on_delivery=cb)
        n += 1
        p.poll(0)
    p.flush(60)
    e2e = out.get(timeout=60)
    consumer.join(10)
    return acks, e2e


def failover(nodes, topic, kills):
    """Seconds from each SIGKILL of partition 0's leader to the first acknowledgement of a
    record produced after it."""
    p = producer(nodes, **{"linger.ms": 1})
    lock = threading.Lock()
    acked_after = []  # (produce time, ack time) of partition-0 records
    stop = threading.Event()

    def run():
        n = 0
        while not stop.is_set():
            sent = time.perf_counter()

            def cb(err, msg, sent=sent):
                if err is None and msg.partition() == 0:
                    with lock:
                        acked_after.append((sent, time.perf_counter()))

            try:
                p.produce(topic, b"f" * 100, partition=n % 3, on_delivery=cb)
                n += 1
            except BufferError:
                pass
            p.poll(0.002)
        p.flush(120)

    th = threading.Thread(target=run, daemon=True)
    th.start()
    times = []
    by_id = {n.id: n for n in nodes}
    for i in range(kills):
        wait_full_isr(nodes, topic)
        time.sleep(1)
        leader = partitions(nodes, topic)[0][0]
        victim = by_id[leader]
        t0 = time.perf_counter()
        victim.kill9()
        deadline = t0 + 60
        took = None
        while time.perf_counter() < deadline:
            with lock:
                after = [a for s, a in acked_after if s > t0]
            if after:
                took = min(after) - t0
                break
            time.sleep(0.01)
        times.append(took if took is not None else float("inf"))
        log(f"kill {i + 1}: leader {leader} -> first ack after {times[-1]:.3f}s")
        victim.start()
        victim.wait_ready()
    stop.set()
    th.join(150)
    return times


def catchup(nodes, topic, megabytes):
    victim = nodes[2]
    victim.kill9()
    time.sleep(1)
    size = 16384
    count = megabytes * 1_000_000 // size
    t = time.perf_counter()
    throughput(nodes, topic, count, size)
    wrote = time.perf_counter() - t
    log(f"wrote {megabytes} MB with broker {victim.id} down in {wrote:.1f}s")
    t = time.perf_counter()
    victim.start()
    victim.wait_ready()
    wait_full_isr(nodes, topic, timeout=1800)
    took = time.perf_counter() - t
    return megabytes / took, took


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def idle_cpu(nodes, seconds):
    before = {n.id: cpu_seconds(n.proc.pid) for n in nodes}
    time.sleep(seconds)
    after = {n.id: cpu_seconds(n.proc.pid) for n in nodes}
    return {i: (after[i] - before[i]) / seconds * 100 for i in before}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--strom", default="target/release/strom")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--catchup-mb", type=int, default=1024)
    ap.add_argument("--dir", default=None)
    args = ap.parse_args()
    strom = os.path.abspath(args.strom)
    count = 50_000 if args.quick else 200_000
    kills = 3 if args.quick else args.kills
    catchup_mb = 100 if args.quick else args.catchup_mb
    watch = CompileWatch()
    watch.start()
    base = tempfile.mkdtemp(prefix="strom-bench-repl-", dir=args.dir)
    nodes = []
    try:
        nodes = cluster(strom, base)
        time.sleep(2)
        create(nodes, "rf1", 3, 1)
        create(nodes, "rf3", 3, 3, {"min.insync.replicas": "2"})
        wait_full_isr(nodes, "rf3")
        results = {}
        for topic in ("rf1", "rf3", "rf1", "rf3"):
            rps, mbps = throughput(nodes, topic, count, 1024)
            results.setdefault(topic, []).append((rps, mbps))
            log(f"{topic}: {rps:,.0f} records/s, {mbps:.1f} MB/s (1 KiB records, acks=all)")
        rf1 = statistics.median(r for r, _ in results["rf1"])
        rf3 = statistics.median(r for r, _ in results["rf3"])
        log(f"throughput RF=3 / RF=1: {rf3 / rf1:.2f} (median of 2 runs each)")
        create(nodes, "lat", 3, 3, {"min.insync.replicas": "2"})
        wait_full_isr(nodes, "lat")
        acks, e2e = latency(nodes, "lat", rf3 / 2, 10 if args.quick else 20, 1024)
        log(f"latency at {rf3 / 2:,.0f} records/s, RF=3: ack p50 {percentile(acks, 50):.2f} ms, "
            f"p99 {percentile(acks, 99):.2f} ms; end to end p50 {percentile(e2e, 50):.2f} ms, "
            f"p99 {percentile(e2e, 99):.2f} ms ({len(acks)} records)")
        create(nodes, "fo", 3, 3, {"min.insync.replicas": "2"})
        times = failover(nodes, "fo", kills)
        log(f"failover over {kills} kills: p50 {statistics.median(times):.3f}s, "
            f"max {max(times):.3f}s")
        create(nodes, "catchup", 3, 3, {"min.insync.replicas": "2"})
        wait_full_isr(nodes, "catchup")
        mbps, took = catchup(nodes, "catchup", catchup_mb)
        log(f"catch-up of {catchup_mb} MB: {took:.1f}s, {mbps:.1f} MB/s")
        create(nodes, "many", 1000, 3)
        wait_full_isr(nodes, "many", timeout=300)
        time.sleep(5)
        cpu = idle_cpu(nodes, 10 if args.quick else 30)
        log("idle CPU with 1,000 RF=3 partitions (+ the topics above): " +
            ", ".join(f"node {i}: {c:.1f}%" for i, c in sorted(cpu.items())))
        if watch.busy:
            log(f"note: a cargo/rustc process ran during {watch.busy} of {watch.samples} samples")
    finally:
        for n in nodes:
            n.kill9()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
