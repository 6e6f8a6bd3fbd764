#!/usr/bin/env python3
"""Transactions benchmark: starts its own single Strom node and measures, with confluent-kafka
(librdkafka) as the client, 1 KiB records, one topic of 4 partitions:

1. produce throughput of a transactional producer at 10, 100 and 1,000 records per
   transaction, against the same client idempotent and non-transactional (one run, same
   settings), and the ratio;
2. EndTxn latency: commit_transaction() of transactions of 100 records (flushed first, so
   the time is the coordinator's: EndTxn, PrepareCommit logged, answer), p50 and p99;
3. consume throughput of read_committed against read_uncommitted over the same committed
   data (the topic of step 1, with its markers).

Usage: scripts/bench_transactions.py [--strom target/release/strom] [--records 200000]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_metadata import percentile  # noqa: E402

VALUE = b"x" * 1024
PARTITIONS = 4


def start(strom, data):
    p = subprocess.Popen([strom, "server", "--override", "listeners=PLAINTEXT://127.0.0.1:0",
                          "--override", "http.listeners=http://127.0.0.1:0",
                          "--override", f"log.dirs={data}"], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True,
                         env={**os.environ, "RUST_LOG": "warn"})
    line = p.stdout.readline()
    addr = next(w for w in line.split() if w.startswith("127.0.0.1:")).rstrip(",")
    return p, addr


def create(addr, topic):
    a = AdminClient({"bootstrap.servers": addr})
    for f in a.create_topics([NewTopic(topic, PARTITIONS, 1)]).values():
        f.result()


def settings(addr, **extra):
    return {"bootstrap.servers": addr, "linger.ms": 5, "batch.size": 262144,
            "queue.buffering.max.kbytes": 1048576, **extra}


def idempotent_run(addr, topic, n):
    p = Producer(settings(addr, **{"enable.idempotence": True}))
    p.produce(topic, VALUE)
    p.flush(10)
    t = time.perf_counter()
    for i in range(n):
        while True:
            try:
                p.produce(topic, VALUE, partition=i % PARTITIONS)
                break
            except BufferError:
                p.poll(0.01)
        if i % 1000 == 0:
            p.poll(0)
    p.flush(60)
    return n / (time.perf_counter() - t)


def transactional_run(addr, topic, n, per_txn, txn_id, end_times=None):
    p = Producer(settings(addr, **{"transactional.id": txn_id}))
    p.init_transactions(30)
    t = time.perf_counter()
    sent = 0
    while sent < n:
        p.begin_transaction()
        for i in range(min(per_txn, n - sent)):
            while True:
                try:
                    p.produce(topic, VALUE, partition=(sent + i) % PARTITIONS)
                    break
                except BufferError:
                    p.poll(0.01)
        sent += min(per_txn, n - sent)
        if end_times is not None:
            p.flush(30)
            e = time.perf_counter()
            p.commit_transaction(30)
            end_times.append(time.perf_counter() - e)
        else:
            p.commit_transaction(30)
    return n / (time.perf_counter() - t)


def consume_rate(addr, topic, isolation):
    c = Consumer({"bootstrap.servers": addr, "group.id": f"bench-{isolation}-{time.time()}",
                  "isolation.level": isolation, "enable.partition.eof": True,
                  "enable.auto.commit": False, "fetch.max.bytes": 52428800})
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    got, eof, t = 0, set(), None
    while len(eof) < PARTITIONS:
        for m in c.consume(10000, 1.0):
            if m.error():
                if m.error().code() == -191:
                    eof.add(m.partition())
                continue
            if t is None:
                t = time.perf_counter()
            got += 1
    elapsed = time.perf_counter() - t
    c.close()
    return got, got / elapsed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--strom", default="target/release/strom")
    ap.add_argument("--records", type=int, default=200_000)
    args = ap.parse_args()
    data = tempfile.mkdtemp(prefix="strom-bench-txn-")
    proc, addr = start(args.strom, os.path.join(data, "d"))
    try:
        n = args.records
        create(addr, "idem")
        idem = idempotent_run(addr, "idem", n)
        print(f"idempotent, not transactional: {idem:,.0f} records/s")
        for per in (10, 100, 1000):
            topic = f"txn{per}"
            create(addr, topic)
            count = n if per >= 100 else n // 10
            rate = transactional_run(addr, topic, count, per, f"bench-{per}")
            print(f"transactional, {per:>4} records per transaction: {rate:,.0f} records/s "
                  f"({rate / idem:.2f} of idempotent; {count:,} records)")
        create(addr, "endtxn")
        ends = []
        transactional_run(addr, "endtxn", 100 * 500, 100, "bench-end", ends)
        print(f"EndTxn (commit_transaction after flush), {len(ends)} transactions: "
              f"p50 {statistics.median(ends) * 1000:.2f} ms, "
              f"p99 {percentile(ends, 99) * 1000:.2f} ms")
        for iso in ("read_uncommitted", "read_committed"):
            got, rate = consume_rate(addr, "txn1000", iso)
            print(f"consume {iso}: {rate:,.0f} records/s ({got:,} records)")
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
