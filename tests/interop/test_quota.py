"""Client quotas with real clients: set with `strom quota`, stored in the metadata log, and
enforced as Kafka does. A producer capped at 1 MB/s measures close to 1 MB/s while an
unthrottled one beside it is unaffected; a capped consumer likewise; partition mutations
beyond controller_mutation_rate are refused with THROTTLING_QUOTA_EXCEEDED; a client over
request_percentage is held back."""
import json
import socket
import struct
import threading
import time

from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

from conftest import Server
from test_sasl import read_response, strom

MB = 1 << 20
# Three one-second samples: a rate is measured over at least two seconds, so the first
# burst is at most about two seconds' worth (Kafka's default of 11 samples takes ten).
WINDOWS = ["quota.window.num=3", "quota.window.size.seconds=1"]


def quota(server, *args):
    strom("quota", "set", *args, "-b", server.addr)


def pump(server, client_id, topic, seconds, out):
    """Produces 10 KiB records as fast as it may for `seconds`; records (time, bytes) of each
    delivery and the throttle times the broker reported."""
    value = b"x" * 10240
    deliveries, throttles = [], []

    def delivered(err, msg):
        if err is None:
            deliveries.append((time.time(), len(msg.value())))

    p = Producer({"bootstrap.servers": server.addr, "client.id": client_id, "linger.ms": 5,
                  "acks": 1, "throttle_cb": lambda e: throttles.append(e.throttle_time)})
    start = time.time()
    while time.time() - start < seconds:
        try:
            p.produce(topic, value=value, on_delivery=delivered)
        except BufferError:
            p.poll(0.01)
        p.poll(0)
    p.flush(30)
    out[client_id] = (start, deliveries, throttles)


def rate(start, deliveries, after, until):
    """Bytes per second delivered between `after` and `until` seconds from the start."""
    total = sum(n for t, n in deliveries if start + after <= t < start + until)
    return total / (until - after)


def test_a_producer_capped_at_1_mb_per_second_measures_close_to_it(tmp_path):
    s = Server(tmp_path, *WINDOWS)
    try:
        quota(s, "--client-id", "capped", "--add-config", f"producer_byte_rate={MB}")
        out = {}
        threads = [threading.Thread(target=pump, args=(s, c, t, 8, out))
                   for c, t in (("capped", "q-capped"), ("free", "q-free"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        start, deliveries, throttles = out["capped"]
        capped = rate(start, deliveries, 3, 8)
        assert 0.7 * MB < capped < 1.35 * MB, f"capped producer at {capped / MB:.2f} MB/s"
        assert throttles and max(throttles) > 0, "the broker told the producer to wait"
        start, deliveries, free_throttles = out["free"]
        free = rate(start, deliveries, 3, 8)
        assert free > 5 * capped, f"unthrottled producer at {free / MB:.2f} MB/s"
        assert not any(free_throttles), "the unthrottled producer was throttled"
    finally:
        s.stop()


def test_a_consumer_capped_at_1_mb_per_second_measures_close_to_it(tmp_path):
    s = Server(tmp_path, *WINDOWS)
    try:
        p = Producer({"bootstrap.servers": s.addr, "linger.ms": 5})
        for _ in range(1000):  # 10 MiB
            p.produce("q-read", value=b"y" * 10240)
            p.poll(0)
        assert p.flush(30) == 0
        quota(s, "--client-id", "slow", "--add-config", f"consumer_byte_rate={MB}")

        def read(client_id, seconds):
            c = Consumer({"bootstrap.servers": s.addr, "client.id": client_id,
                          "group.id": client_id, "auto.offset.reset": "earliest",
                          "fetch.max.bytes": 262144, "max.partition.fetch.bytes": 262144,
                          "message.max.bytes": 262144})
            c.subscribe(["q-read"])
            got, start = [], None
            while start is None or time.time() - start < seconds:
                m = c.poll(0.2)
                if m is not None and not m.error():
                    start = start or time.time()
                    got.append((time.time(), len(m.value())))
                if len(got) == 1000:
                    break
            c.close()
            return start, got

        start, got = read("slow", 7)
        slow = rate(start, got, 3, 7)
        assert 0.6 * MB < slow < 1.4 * MB, f"capped consumer at {slow / MB:.2f} MB/s"
        start, got = read("fast", 10)
        assert len(got) == 1000, "the unthrottled consumer read everything"
        fast = sum(n for _, n in got) / max(got[-1][0] - start, 0.001)
        assert fast > 3 * MB, f"unthrottled consumer at {fast / MB:.2f} MB/s"
    finally:
        s.stop()


def test_quotas_are_described_replaced_removed_and_checked(tmp_path):
    s = Server(tmp_path)
    try:
        quota(s, "--user", "alice", "--add-config",
              "producer_byte_rate=1048576,consumer_byte_rate=2097152")
        quota(s, "--user-default", "--client-id", "etl", "--add-config", "request_percentage=50")
        quota(s, "--client-id-default", "--add-config", "controller_mutation_rate=10")
        listed = json.loads(strom("quota", "describe", "--output", "json", "-b", s.addr).stdout)
        got = {(q["user"], q["client_id"]): q["quotas"] for q in listed}
        assert got == {
            ("alice", None): {"producer_byte_rate": 1048576.0, "consumer_byte_rate": 2097152.0},
            ("<default>", "etl"): {"request_percentage": 50.0},
            (None, "<default>"): {"controller_mutation_rate": 10.0},
        }
        only = json.loads(strom("quota", "describe", "--user", "alice", "--output", "json",
                                "-b", s.addr).stdout)
        assert [(q["user"], q["client_id"]) for q in only] == [("alice", None)]
        quota(s, "--user", "alice", "--add-config", "producer_byte_rate=4096",
              "--delete-config", "consumer_byte_rate")
        s.stop()
        s = Server(tmp_path)  # kept in the metadata log
        only = json.loads(strom("quota", "describe", "--user", "alice", "--output", "json",
                                "-b", s.addr).stdout)
        assert only[0]["quotas"] == {"producer_byte_rate": 4096.0}
        for bad, why in [("producer_byte_rate=1.5", "whole number"),
                         ("producer_byte_rate=-1", "positive"),
                         ("connection_creation_rate=5", "not a quota key")]:
            r = strom("quota", "set", "--user", "bob", "--add-config", bad, "-b", s.addr,
                      check=False)
            assert r.returncode == 1 and why in r.stderr, r.stderr
    finally:
        s.stop()


def test_partition_mutations_beyond_the_rate_are_refused_until_it_refills(tmp_path):
    s = Server(tmp_path, "controller.quota.window.num=1")
    try:
        quota(s, "--client-id", "creator", "--add-config", "controller_mutation_rate=5")
        admin = AdminClient({"bootstrap.servers": s.addr, "client.id": "creator"})
        # A bucket of 5: the first request may overdraw it (librdkafka's), the next must
        # wait: refused at CreateTopics v6+ and CreatePartitions v3+ (the native client's).
        admin.create_topics([NewTopic("m1", 10, 1)])["m1"].result(timeout=15)
        as_creator = ["-X", "client.id=creator", "-b", s.addr]
        r = strom("topic", "create", "m2", *as_creator, check=False)
        assert r.returncode == 1 and "THROTTLING_QUOTA_EXCEEDED" in r.stderr, r.stderr
        r = strom("topic", "add-partitions", "m1", "--total", "12", *as_creator, check=False)
        assert r.returncode == 1 and "THROTTLING_QUOTA_EXCEEDED" in r.stderr, r.stderr
        # Another client id has its own bucket.
        strom("topic", "create", "m3", "-p", "10", "-X", "client.id=someone-else",
              "-b", s.addr)
        time.sleep(1.2)  # 5 tokens back: the bucket is above zero again
        strom("topic", "create", "m2", *as_creator)
    finally:
        s.stop()


def metadata_request(correlation, client_id):
    client = client_id.encode()
    body = struct.pack(">i", -1)  # Metadata v1: every topic
    header = struct.pack(">hhih", 3, 1, correlation, len(client)) + client
    return struct.pack(">i", len(header) + len(body)) + header + body


def slowest_answer(server, client_id, n):
    """The longest a Metadata request of `n` in a row waited for its answer."""
    host, port = server.addr.split(":")
    worst = 0.0
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        for i in range(n):
            t = time.time()
            sock.sendall(metadata_request(i, client_id))
            read_response(sock)
            worst = max(worst, time.time() - t)
    return worst


def test_a_client_over_its_request_percentage_is_held_back(tmp_path):
    s = Server(tmp_path, *WINDOWS)
    try:
        admin = AdminClient({"bootstrap.servers": s.addr})
        topics = [NewTopic(f"r{i}", 8, 1) for i in range(20)]
        for f in admin.create_topics(topics).values():
            f.result(timeout=15)
        # 0.01% of a thread is 0.1 ms of handling a second: a few Metadata requests of 160
        # partitions take it over, and the connection is then not read for a while.
        quota(s, "--client-id", "greedy", "--add-config", "request_percentage=0.01")
        assert slowest_answer(s, "greedy", 40) > 0.3
        assert slowest_answer(s, "modest", 40) < 0.3
    finally:
        s.stop()
