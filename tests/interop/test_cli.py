"""The `strom` client subcommands end to end against the real broker, and interop both ways
with confluent-kafka; the partitioner checked against kafka-python's murmur2 (which matches
Java's) for 10,000 random keys and several partition counts."""
import json
import os
import random
import string
import subprocess

import time
import uuid

from confluent_kafka import Consumer, OFFSET_BEGINNING, Producer, TopicPartition
from kafka.partitioner.default import murmur2

from conftest import STROM


def strom(server, *args, stdin=None, check=True):
    env = {**os.environ, "STROM_BROKERS": server.addr, "RUST_LOG": "warn"}
    r = subprocess.run([STROM, *args], input=stdin, capture_output=True, text=True, env=env,
                       timeout=60)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def test_topic_subcommands_and_cluster_info(server):
    strom(server, "topic", "create", "cli-t", "-p", "3", "-c", "retention.ms=3600000")
    r = strom(server, "topic", "create", "cli-t", check=False)
    assert r.returncode == 1 and "TOPIC_ALREADY_EXISTS" in r.stderr
    listed = json.loads(strom(server, "topic", "list", "--output", "json").stdout)
    assert {"name": "cli-t", "partitions": 3, "internal": False} in listed
    strom(server, "topic", "alter-config", "cli-t", "--set", "segment.bytes=1048576",
          "--delete", "retention.ms")
    strom(server, "topic", "add-partitions", "cli-t", "--total", "4")
    d = json.loads(strom(server, "topic", "describe", "cli-t", "--output", "json").stdout)
    assert len(d["partitions"]) == 4 and d["configs"] == {"segment.bytes": "1048576"}
    assert d["partitions"][0]["isr"] == [1]
    text = strom(server, "topic", "describe", "cli-t").stdout
    assert "HIGH-WATERMARK" in text and "segment.bytes=1048576" in text
    info = json.loads(strom(server, "cluster", "info", "--output", "json").stdout)
    assert info["controller"] == 1 and info["brokers"][0]["address"] == server.addr
    strom(server, "topic", "delete", "cli-t")
    r = strom(server, "topic", "delete", "cli-t", check=False)
    assert r.returncode == 1 and "UNKNOWN_TOPIC_OR_PARTITION" in r.stderr


def test_produce_with_strom_consume_with_confluent_and_back(server):
    strom(server, "topic", "create", "both", "-p", "2")
    lines = "".join(f"k{i}:value {i}\n" for i in range(500))
    strom(server, "produce", "both", "--key-separator", ":", "-H", "src=strom",
          "--compression", "zstd", stdin=lines)
    msgs = read_exactly(server.addr, "both", 2, 500)
    got = {(m.key().decode(), m.value().decode()) for m in msgs}
    assert got == {(f"k{i}", f"value {i}") for i in range(500)}
    assert all(m.headers() == [("src", b"strom")] for m in msgs)

    p = Producer({"bootstrap.servers": server.addr, "compression.type": "lz4"})
    for i in range(100):
        p.produce("back", key=f"c{i}".encode(), value=f"from confluent {i}".encode(),
                  headers=[("h", b"x")], partition=0)
    assert p.flush(10) == 0
    out = strom(server, "consume", "back", "--from", "beginning", "-e",
                "-f", "{offset} {key} {value} {headers}").stdout.splitlines()
    assert out[0] == "0 c0 from confluent 0 h=x" and len(out) == 100
    out = strom(server, "consume", "back", "--from", "95", "-e", "--print-keys").stdout
    assert out.splitlines() == [f"c{i}\tfrom confluent {i}" for i in range(95, 100)]
    out = strom(server, "consume", "back", "--from", "beginning", "-n", "3").stdout
    assert out.splitlines() == [f"from confluent {i}" for i in range(3)]


def read_exactly(addr, topic, partitions, count, timeout=60):
    c = Consumer({"bootstrap.servers": addr, "group.id": "x-" + uuid.uuid4().hex,
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    out, deadline = [], time.time() + timeout
    while len(out) < count and time.time() < deadline:
        out.extend(m for m in c.consume(1000, 0.5) if not m.error())
    c.close()
    assert len(out) == count
    return out


def test_partitioner_matches_kafka_for_10000_random_keys(server):
    rng = random.Random(7)
    keys = ["".join(rng.choice(string.ascii_letters + string.digits + "-_./")
                    for _ in range(rng.randint(1, 40))) for _ in range(10000)]
    for n in (3, 7, 16):
        topic = f"murmur-{n}"
        strom(server, "topic", "create", topic, "-p", str(n))
        strom(server, "produce", topic, "--key-separator", "\t",
              stdin="".join(f"{k}\tv\n" for k in keys))
        msgs = read_exactly(server.addr, topic, n, 10000)
        for m in msgs:
            assert m.partition() == (murmur2(m.key()) & 0x7FFFFFFF) % n, m.key()


def test_perf_produce_and_consume_report_what_they_did(server):
    strom(server, "topic", "create", "perf", "-p", "2")
    out = strom(server, "perf", "produce", "perf", "--records", "20000", "--record-size", "64",
                "--acks", "all", "--compression", "lz4").stdout
    assert out.startswith("20000 records sent,") and "p99.9" in out
    msgs = read_exactly(server.addr, "perf", 2, 20000)
    assert all(len(m.value()) == 64 for m in msgs[:100])
    out = strom(server, "perf", "consume", "perf", "--records", "20000").stdout
    assert out.startswith("20000 records consumed,")
    r = strom(server, "perf", "produce", "nope-topic", "--records", "1", "--acks", "7", check=False)
    assert r.returncode == 1 and "acks" in r.stderr


def test_consume_group_shares_partitions_with_confluent_and_commits_on_ctrl_c(server):
    """`strom consume --group` and a librdkafka consumer in one classic group: each side
    decodes the other's assignment (whoever leads), every new record is read once, and
    Ctrl-C commits what strom printed, so the partitions it hands back are not read again."""
    import signal
    import threading
    strom(server, "topic", "create", "shared", "-p", "4")
    p = Producer({"bootstrap.servers": server.addr})

    def produce(lo, hi):
        for i in range(lo, hi):
            p.produce("shared", key=f"k{i}".encode(), value=f"v{i}".encode())
        assert p.flush(10) == 0

    produce(0, 400)
    env = {**os.environ, "STROM_BROKERS": server.addr, "RUST_LOG": "warn"}
    proc = subprocess.Popen([STROM, "consume", "shared", "--group", "mix", "--from", "beginning",
                             "-X", "heartbeat.interval.ms=300", "-f", "{partition} {value}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")),
                              daemon=True)
    reader.start()

    def wait_for(cond, what, timeout=60):
        deadline = time.time() + timeout
        while not cond():
            assert time.time() < deadline, what
            poll_confluent()

    c = None
    mine = []

    def poll_confluent():
        if c is None:
            time.sleep(0.1)
            return
        m = c.poll(0.1)
        if m is not None and not m.error():
            mine.append(m.value().decode())

    wait_for(lambda: len(lines) >= 400, "strom reads the first 400 alone")
    assert sorted(line.split()[1] for line in lines) == sorted(f"v{i}" for i in range(400))
    c = Consumer({"bootstrap.servers": server.addr, "group.id": "mix",
                  "auto.offset.reset": "earliest", "partition.assignment.strategy": "range",
                  "heartbeat.interval.ms": 300})
    c.subscribe(["shared"])
    wait_for(lambda: len(c.assignment()) == 2, "confluent gets half the partitions")
    produce(400, 600)
    wait_for(lambda: len(lines) + len(mine) >= 600, "the 200 new records")
    time.sleep(0.5)
    poll_confluent()
    new = sorted([line.split()[1] for line in lines[400:]] + mine)
    assert new == sorted(f"v{i}" for i in range(400, 600)), "each new record read once"
    theirs = {int(line.split()[0]) for line in lines[400:]}
    assert theirs.isdisjoint({tp.partition for tp in c.assignment()})

    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0, proc.stderr.read()
    wait_for(lambda: len(c.assignment()) == 4, "confluent takes over every partition")
    produce(600, 650)
    wait_for(lambda: len(mine) >= len(new) - len(lines[400:]) + 50, "the last 50")
    time.sleep(1)
    poll_confluent()
    assert sorted(mine[-50:]) == sorted(f"v{i}" for i in range(600, 650))
    assert len(mine) == len(set(mine)), "nothing strom printed was read again"
    c.close()


def test_consume_group_joins_a_group_librdkafka_leads(server):
    """The reverse of the test above: librdkafka is the leader and runs the assignor;
    `strom consume --group` decodes its assignment and reads only the partitions given."""
    import signal
    import threading
    strom(server, "topic", "create", "led", "-p", "4")
    p = Producer({"bootstrap.servers": server.addr})
    for i in range(200):
        p.produce("led", key=f"k{i}".encode(), value=f"v{i}".encode())
    assert p.flush(10) == 0
    c = Consumer({"bootstrap.servers": server.addr, "group.id": "led-by-rdkafka",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "partition.assignment.strategy": "roundrobin", "heartbeat.interval.ms": 300})
    c.subscribe(["led"])
    deadline = time.time() + 60
    while len(c.assignment()) != 4:
        assert time.time() < deadline, "librdkafka alone"
        c.poll(0.1)
    env = {**os.environ, "STROM_BROKERS": server.addr, "RUST_LOG": "warn"}
    proc = subprocess.Popen([STROM, "consume", "led", "--group", "led-by-rdkafka", "--from",
                             "beginning", "-X", "partition.assignment.strategy=roundrobin",
                             "-X", "heartbeat.interval.ms=300", "-f", "{partition} {value}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines = []
    threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")),
                     daemon=True).start()
    while not (len(c.assignment()) == 2 and lines):
        assert time.time() < deadline, "the split and strom's first records"
        c.poll(0.1)
    mine = {tp.partition for tp in c.assignment()}
    time.sleep(1)
    c.poll(0.1)
    theirs = {int(line.split()[0]) for line in lines}
    assert theirs and theirs.isdisjoint(mine), (theirs, mine)
    assert len(theirs | mine) == 4
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0, proc.stderr.read()
    c.close()
