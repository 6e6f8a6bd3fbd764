#!/usr/bin/env python3
"""Group coordinator benchmark against a running broker, with confluent-kafka (librdkafka).

Usage: scripts/bench_groups.py [--bootstrap 127.0.0.1:9092]

The broker should run with group.initial.rebalance.delay.ms=0 (the default delay of 3 s would
dominate) and, for the KIP-848 rows, a short group.consumer.heartbeat.interval.ms, since
members learn of a new target assignment at their next heartbeat.

Prints, for groups of 1, 10 and 50 members on a 100-partition topic, the time from a new
member's subscribe until every member holds its share of the new assignment (classic
protocol with the range assignor, and KIP-848 with the uniform assignor), then synchronous
and asynchronous offset-commit throughput.
"""
import argparse
import threading
import time
import uuid

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


class Member(threading.Thread):
    def __init__(self, bootstrap, group, topic, protocol, heartbeat_ms):
        super().__init__(daemon=True)
        conf = {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
        if protocol == "consumer":
            conf["group.protocol"] = "consumer"
        else:
            conf["heartbeat.interval.ms"] = heartbeat_ms
            conf["session.timeout.ms"] = 30000
        self.c = Consumer(conf)
        self.owned = set()
        self.topic = topic
        self.running = True

    def run(self):
        self.c.subscribe([self.topic], on_assign=self._assigned, on_revoke=self._revoked,
                         on_lost=self._revoked)
        while self.running:
            self.c.poll(0.05)
        self.c.close()

    def _assigned(self, _c, parts):
        self.owned.update(tp.partition for tp in parts)

    def _revoked(self, _c, parts):
        self.owned.difference_update(tp.partition for tp in parts)


def settled(members, partitions):
    counts = [len(m.owned) for m in members]
    union = set().union(*(m.owned for m in members))
    fair = partitions // len(members)
    return len(union) == partitions and sum(counts) == partitions and min(counts) >= fair


def time_to_stable(bootstrap, topic, n, protocol, heartbeat_ms):
    group = f"bench-{protocol}-{n}-{uuid.uuid4().hex[:6]}"
    members = []
    for _ in range(n - 1):
        m = Member(bootstrap, group, topic, protocol, heartbeat_ms)
        m.start()
        members.append(m)
    deadline = time.time() + 120
    while members and not settled(members, 100) and time.time() < deadline:
        time.sleep(0.01)
    newcomer = Member(bootstrap, group, topic, protocol, heartbeat_ms)
    start = time.perf_counter()
    newcomer.start()
    members.append(newcomer)
    while not settled(members, 100) and time.time() < deadline:
        time.sleep(0.002)
    elapsed = time.perf_counter() - start
    for m in members:
        m.running = False
    for m in members:
        m.join()
    return elapsed


def commit_rate(bootstrap, topic, asynchronous, seconds=3.0):
    """Committed offsets per second: synchronous commits one at a time, or asynchronous ones
    with at most 1000 in flight, counting only those the broker acknowledged."""
    done = [0]

    def on_commit(err, _parts):
        if err is None:
            done[0] += 1

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "commits-" + uuid.uuid4().hex[:6],
                  "enable.auto.commit": False, "on_commit": on_commit})
    issued, offset = 0, 0
    end = time.time() + seconds
    start = time.perf_counter()
    while time.time() < end:
        offset += 1
        if asynchronous:
            while issued - done[0] > 1000:
                c.poll(0.001)
            c.commit(offsets=[TopicPartition(topic, offset % 100, offset)], asynchronous=True)
        else:
            c.commit(offsets=[TopicPartition(topic, offset % 100, offset)], asynchronous=False)
            done[0] = issued + 1
        issued += 1
    while done[0] < issued and time.perf_counter() - start < seconds + 30:
        c.poll(0.01)
    elapsed = time.perf_counter() - start
    c.close()
    return done[0] / elapsed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--heartbeat-ms", type=int, default=3000,
                    help="classic members' heartbeat.interval.ms (librdkafka's default 3000)")
    args = ap.parse_args()
    topic = "bench-groups-" + uuid.uuid4().hex[:6]
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    admin.create_topics([NewTopic(topic, 100, 1)])[topic].result(10)
    for protocol in ("classic", "consumer"):
        for n in (1, 10, 50):
            t = time_to_stable(args.bootstrap, topic, n, protocol, args.heartbeat_ms)
            print(f"{protocol:<8} {n:>3} members: new member to settled assignment in {t * 1000:8.0f} ms")
    print(f"offset commits, synchronous : {commit_rate(args.bootstrap, topic, False):>9,.0f} commits/s")
    print(f"offset commits, asynchronous: {commit_rate(args.bootstrap, topic, True):>9,.0f} commits/s")


if __name__ == "__main__":
    main()
