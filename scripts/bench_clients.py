#!/usr/bin/env python3
"""Load test of a running broker with confluent-kafka (librdkafka), until `strom perf` exists.

Usage: scripts/bench_clients.py [--bootstrap 127.0.0.1:9092] [--records 300000]

Prints produce and consume throughput (MB/s, records/s) for 100 B and 1 KiB records with
acks=1 and acks=all, and end-to-end latency percentiles at a fixed moderate rate.
"""
import argparse
import statistics
import struct
import threading
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_BEGINNING, OFFSET_END


def produce(bootstrap, topic, n, size, acks, idempotent=False):
    p = Producer({"bootstrap.servers": bootstrap, "acks": acks, "linger.ms": 5,
                  "enable.idempotence": idempotent,
                  "batch.size": 1 << 20, "queue.buffering.max.messages": 1000000,
                  "queue.buffering.max.kbytes": 1 << 21, "compression.type": "none"})
    value = b"x" * size
    start = time.perf_counter()
    for i in range(n):
        while True:
            try:
                p.produce(topic, value=value)
                break
            except BufferError:
                p.poll(0.01)
        if i % 10000 == 0:
            p.poll(0)
    p.flush(120)
    elapsed = time.perf_counter() - start
    return n / elapsed, n * size / elapsed / 1e6


def consume(bootstrap, topic, n):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-" + uuid.uuid4().hex,
                  "enable.auto.commit": False, "fetch.max.bytes": 50 << 20,
                  "max.partition.fetch.bytes": 10 << 20})
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    got, nbytes, start = 0, 0, None
    while got < n:
        msgs = c.consume(10000, 1.0)
        if start is None and msgs:
            start = time.perf_counter()
        for m in msgs:
            if not m.error():
                got += 1
                nbytes += len(m.value())
    elapsed = time.perf_counter() - start
    c.close()
    return got / elapsed, nbytes / elapsed / 1e6


def latency(bootstrap, topic, rate, seconds):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "lat-" + uuid.uuid4().hex,
                  "fetch.wait.max.ms": 100, "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, OFFSET_END)])
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})
    p.produce(topic, value=struct.pack(">d", 0.0) + b"warm")
    p.flush(10)
    lat, done = [], threading.Event()

    def reader():
        while not done.is_set():
            m = c.poll(0.2)
            if m is not None and not m.error():
                sent = struct.unpack(">d", m.value()[:8])[0]
                if sent > 0:
                    lat.append((time.time() - sent) * 1000)

    t = threading.Thread(target=reader)
    t.start()
    time.sleep(1)
    interval = 1.0 / rate
    end = time.time() + seconds
    nxt = time.time()
    while time.time() < end:
        p.produce(topic, value=struct.pack(">d", time.time()) + b"y" * 92)
        p.poll(0)
        nxt += interval
        time.sleep(max(0, nxt - time.time()))
    p.flush(10)
    time.sleep(1)
    done.set()
    t.join()
    c.close()
    lat.sort()
    q = lambda f: lat[min(len(lat) - 1, int(f * len(lat)))]
    return len(lat), q(0.5), q(0.99), statistics.mean(lat)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--records", type=int, default=300000)
    args = ap.parse_args()
    for size in (100, 1024):
        for acks, idem in (("1", False), ("all", False), ("all", True)):
            topic = f"bench-{size}-{acks}-{uuid.uuid4().hex[:6]}"
            n = args.records if size == 100 else args.records // 3
            rps, mbs = produce(args.bootstrap, topic, n, size, acks, idem)
            label = f"acks={acks}" + (" idempotent" if idem else "")
            print(f"produce {size:>5} B {label:<20}: {rps:>10,.0f} records/s {mbs:>8.1f} MB/s ({n} records)")
            rps, mbs = consume(args.bootstrap, topic, n)
            print(f"consume {size:>5} B {'':<20}: {rps:>10,.0f} records/s {mbs:>8.1f} MB/s")
    n, p50, p99, mean = latency(args.bootstrap, "latency-" + uuid.uuid4().hex[:6], 1000, 10)
    print(f"end-to-end latency at 1000 records/s, acks=all: p50 {p50:.2f} ms, p99 {p99:.2f} ms, mean {mean:.2f} ms ({n} samples)")


if __name__ == "__main__":
    main()
