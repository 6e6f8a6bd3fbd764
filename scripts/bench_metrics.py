#!/usr/bin/env python3
"""Metrics benchmark: starts its own Strom nodes and measures

1. the cost of metrics on the hot path: `strom perf produce` throughput against a node with
   its HTTP listener (metrics recorded) and one without (`http.listeners=`, nothing
   recorded), the same client and settings, runs interleaved A B A B so drift cancels;
2. the time to scrape `/metrics` of a node holding `--partitions` partitions (median and
   p99 of 20 scrapes) and the size of the text.

Usage: scripts/bench_metrics.py [--strom target/release/strom] [--records 1000000]
                                [--partitions 10000] [--runs 5]
"""
import argparse
import re
import shutil
import statistics
import subprocess
import tempfile
import time
import urllib.request

from confluent_kafka.admin import AdminClient, NewTopic


def start(strom, data, http):
    p = subprocess.Popen([strom, "server", "--override", "listeners=PLAINTEXT://127.0.0.1:0",
                          "--override", f"http.listeners={http}",
                          "--override", f"log.dirs={data}"], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True, env={"RUST_LOG": "warn"})
    line = p.stdout.readline()
    addr = next(w for w in line.split() if w.startswith("127.0.0.1:")).rstrip(",")
    http_addr = p.stdout.readline().split()[-1] if http else None
    return p, addr, http_addr


def perf(strom, addr, topic, records):
    out = subprocess.run([strom, "perf", "produce", topic, "-b", addr, "--records", str(records),
                          "--record-size", "100", "--acks", "1"],
                         capture_output=True, text=True, check=True).stdout
    m = re.search(r"([\d.]+) records/s", out)
    assert m, out
    return float(m[1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--strom", default="target/release/strom")
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--partitions", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    base = tempfile.mkdtemp(prefix="strom-bench-metrics-")
    nodes = []
    try:
        on = start(a.strom, f"{base}/on", "http://127.0.0.1:0")
        off = start(a.strom, f"{base}/off", "")
        nodes += [on[0], off[0]]
        for _, addr, _ in (on, off):
            admin = AdminClient({"bootstrap.servers": addr})
            admin.create_topics([NewTopic("perf", 4, 1)])["perf"].result(30)
        rates = {"on": [], "off": []}
        for _ in range(a.runs):
            rates["on"].append(perf(a.strom, on[1], "perf", a.records))
            rates["off"].append(perf(a.strom, off[1], "perf", a.records))
        ratios = [x / y for x, y in zip(rates["on"], rates["off"])]
        print(f"produce, {a.records} x 100 B, acks=1, {a.runs} interleaved runs each:")
        for k in ("on", "off"):
            print(f"  metrics {k:3}: median {statistics.median(rates[k]):,.0f} records/s "
                  f"(min {min(rates[k]):,.0f}, max {max(rates[k]):,.0f})")
        print(f"  on/off: median ratio {statistics.median(ratios):.3f} "
              f"(min {min(ratios):.3f}, max {max(ratios):.3f})")
        del admin
        for p in nodes:
            p.terminate()
            p.wait(30)
        nodes = []

        big = start(a.strom, f"{base}/big", "http://127.0.0.1:0")
        nodes.append(big[0])
        admin = AdminClient({"bootstrap.servers": big[1]})
        per_topic = 100
        topics = [NewTopic(f"t{i:04}", per_topic, 1) for i in range(a.partitions // per_topic)]
        for i in range(0, len(topics), 20):
            for f in admin.create_topics(topics[i:i + 20], operation_timeout=60).values():
                f.result(120)
        url = f"http://{big[2]}/metrics"
        deadline = time.time() + 300
        while True:
            text = urllib.request.urlopen(url, timeout=60).read().decode()
            held = text.count("strom_partition_log_end_offset{")
            if held >= a.partitions or time.time() > deadline:
                break
            time.sleep(1)
        times = []
        for _ in range(20):
            t = time.perf_counter()
            body = urllib.request.urlopen(url, timeout=60).read()
            times.append(time.perf_counter() - t)
        times.sort()
        print(f"scrape of /metrics with {held} partitions: median {statistics.median(times) * 1000:.1f} ms, "
              f"p99 {times[-1] * 1000:.1f} ms, {len(body) / 1e6:.1f} MB of text")
    finally:
        for p in nodes:
            p.terminate()
            p.wait(30)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
