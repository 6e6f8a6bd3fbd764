#!/usr/bin/env python3
"""`strom perf produce` against a librdkafka producer (confluent-kafka) with the same
settings, on the same running broker: records/s, MB/s and latency percentiles (send to
acknowledgement; librdkafka's own per-message latency), for 100 B records with acks=1 and
1 KiB records with acks=all; at full speed (librdkafka also without delivery callbacks,
whose Python cost would otherwise slow it down) and at a fixed rate both reach, for latency.

Usage: scripts/bench_perf_vs_librdkafka.py --bootstrap 127.0.0.1:19092 [--strom target/release/strom]
"""
import argparse
import os
import re
import subprocess
import time
import uuid

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

CASES = [  # (record size, records, acks, records/s limit or -1)
    (100, 1_000_000, "1", -1),
    (1024, 300_000, "all", -1),
    # Latency is compared at a rate both reach, so queueing does not dominate it.
    (100, 200_000, "1", 50_000),
    (1024, 100_000, "all", 20_000),
]


def pct(sorted_ms, q):
    return sorted_ms[min(len(sorted_ms) - 1, int(q * len(sorted_ms)))]


def librdkafka(bootstrap, topic, n, size, acks, settings, rate=-1, callbacks=True):
    lat = []
    delivered_count = [0]

    def delivered(err, msg):
        if err is None:
            lat.append(msg.latency() * 1000.0)

    p = Producer({"bootstrap.servers": bootstrap, "acks": acks,
                  "queue.buffering.max.messages": 2_000_000,
                  "queue.buffering.max.kbytes": 1 << 21, **settings})
    value = b"x" * size
    start = time.perf_counter()
    kwargs = {"on_delivery": delivered} if callbacks else {}
    for i in range(n):
        if rate > 0:
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        while True:
            try:
                p.produce(topic, value=value, **kwargs)
                break
            except BufferError:
                p.poll(0.005)
        if i % 5000 == 0 or rate > 0 and i % 100 == 0:
            p.poll(0)
    p.flush(300)
    elapsed = time.perf_counter() - start
    if not callbacks:
        return {"rec/s": n / elapsed, "MB/s": n * size / elapsed / 1e6}
    lat.sort()
    return {"rec/s": len(lat) / elapsed, "MB/s": len(lat) * size / elapsed / 1e6,
            "p50": pct(lat, .5), "p95": pct(lat, .95), "p99": pct(lat, .99),
            "p99.9": pct(lat, .999), "max": lat[-1]}


def strom_perf(strom, bootstrap, topic, n, size, acks, settings, rate=-1):
    args = [strom, "perf", "produce", topic, "--records", str(n), "--record-size", str(size),
            f"--throughput={rate}",
            "--acks", acks, "--batch-size", str(settings["batch.size"]),
            "--linger-ms", str(settings["linger.ms"]), "--compression",
            settings["compression.type"], "-X",
            f"enable.idempotence={settings['enable.idempotence']}".lower(), "-X",
            f"max.in.flight.requests.per.connection={settings['max.in.flight']}"]
    out = subprocess.run(args, capture_output=True, text=True, check=True,
                         env={**os.environ, "STROM_BROKERS": bootstrap}).stdout
    num = lambda k: float(re.search(k, out).group(1))  # noqa: E731
    return {"rec/s": num(r"([\d.]+) records/s"), "MB/s": num(r"\(([\d.]+) MB/s"),
            "p50": num(r"p50 ([\d.]+)"), "p95": num(r"p95 ([\d.]+)"),
            "p99": num(r"p99 ([\d.]+)"), "p99.9": num(r"p99.9 ([\d.]+)"),
            "max": num(r"([\d.]+) ms max")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--strom", default="target/release/strom")
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    admin = AdminClient({"bootstrap.servers": a.bootstrap})
    settings = {"batch.size": 1 << 20, "linger.ms": 5, "compression.type": "none",
                "enable.idempotence": False, "max.in.flight": 5}
    rd = {"batch.size": settings["batch.size"], "linger.ms": settings["linger.ms"],
          "compression.type": "none", "enable.idempotence": False,
          "max.in.flight.requests.per.connection": 5}
    print("| records | client | records/s | MB/s | p50 ms | p95 ms | p99 ms | p99.9 ms | max ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for size, n, acks, rate in CASES:
        names = ["strom perf", "librdkafka"] + (["librdkafka, no callbacks"] if rate < 0 else [])
        for _ in range(a.rounds):
            for name in names:
                topic = "bench-" + uuid.uuid4().hex[:8]
                admin.create_topics([NewTopic(topic, 1, 1)])[topic].result()
                if name == "strom perf":
                    r = strom_perf(a.strom, a.bootstrap, topic, n, size, acks, settings, rate)
                else:
                    r = librdkafka(a.bootstrap, topic, n, size, acks, rd, rate,
                                   callbacks=name == "librdkafka")
                lat = " | ".join(f"{r[k]:.2f}" if k in r else "-"
                                 for k in ("p50", "p95", "p99", "p99.9", "max"))
                limit = f" at {rate:,}/s" if rate > 0 else ""
                print(f"| {size} B acks={acks}{limit} | {name} | {r['rec/s']:,.0f} | "
                      f"{r['MB/s']:.1f} | {lat} |", flush=True)
                admin.delete_topics([topic])[topic].result()


if __name__ == "__main__":
    main()
