"""The HTTP listener: `/metrics` read with Prometheus' own parser after a known workload
(records and bytes in, partition offsets, consumer-group lag, request and error counts),
the health probes, and a cluster's replication health (an ISR shrink, under-replicated
partitions) seen in the metrics when a broker dies."""
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client.parser import text_string_to_metric_families

from conftest import STROM, Server
from test_cluster import combined_cluster, wait_until, with_node_logs


def scrape(http):
    """{(sample name, frozenset(labels)): value} of one scrape, parsed by prometheus_client."""
    with urllib.request.urlopen(f"http://{http}/metrics", timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = r.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


def total(samples, name, **labels):
    """The sum of `name` over every sample whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def get(http, path):
    try:
        with urllib.request.urlopen(f"http://{http}{path}", timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def cluster_health(nodes):
    """`strom cluster health --output json`, checking its exit status agrees."""
    r = subprocess.run([STROM, "cluster", "health", "-b", ",".join(n.addr for n in nodes),
                        "--output", "json"], capture_output=True, text=True, timeout=30,
                       env={**os.environ, "RUST_LOG": "warn"})
    report = json.loads(r.stdout)
    assert r.returncode == (0 if report["healthy"] else 1), (r.returncode, r.stderr)
    return report


def test_metrics_after_a_known_workload_match_it(server):
    a = AdminClient({"bootstrap.servers": server.addr})
    a.create_topics([NewTopic("m", num_partitions=2, replication_factor=1)])["m"].result(15)
    p = Producer({"bootstrap.servers": server.addr, "acks": "all", "linger.ms": 5})
    for i in range(1500):
        p.produce("m", value=b"x" * (10 + i % 7), key=str(i).encode(), partition=0 if i < 1000 else 1)
    assert p.flush(30) == 0
    c = Consumer({"bootstrap.servers": server.addr, "group.id": "mg", "enable.auto.commit": False})
    c.commit(offsets=[TopicPartition("m", 0, 600), TopicPartition("m", 1, 100)], asynchronous=False)
    c.close()
    # A DeleteTopics of a topic that does not exist is answered UNKNOWN_TOPIC_OR_PARTITION.
    try:
        a.delete_topics(["no-such-topic"])["no-such-topic"].result(15)
    except Exception:  # noqa: BLE001 - the error is the point
        pass
    s = scrape(server.http)

    assert value(s, "strom_topic_messages_in_total", topic="m") == 1500
    for part, end in ((0, 1000), (1, 500)):
        labels = {"topic": "m", "partition": str(part)}
        assert value(s, "strom_partition_log_end_offset", **labels) == end
        assert value(s, "strom_partition_high_watermark", **labels) == end
        assert value(s, "strom_partition_log_start_offset", **labels) == 0
        assert value(s, "strom_partition_segments", **labels) == 1
    # Every byte appended is in the logs (nothing deleted yet).
    assert value(s, "strom_topic_bytes_in_total", topic="m") == \
        total(s, "strom_partition_size_bytes", topic="m") > 1500 * 10
    assert value(s, "strom_consumer_group_lag", group="mg", topic="m", partition="0") == 400
    assert value(s, "strom_consumer_group_lag", group="mg", topic="m", partition="1") == 400
    assert value(s, "strom_consumer_group_members", group="mg", state="Empty", type="classic") == 0
    produces = total(s, "strom_requests_total", request="Produce")
    assert produces >= 1
    assert value(s, "strom_request_total_time_seconds_count", request="Produce") == produces
    assert value(s, "strom_request_errors_total", request="DeleteTopics",
                 error="UNKNOWN_TOPIC_OR_PARTITION") == 1
    assert total(s, "strom_request_errors_total", request="Produce") == 0
    assert value(s, "strom_partitions") >= 2
    assert value(s, "strom_leader_partitions") >= 2
    assert value(s, "strom_under_replicated_partitions") == 0
    assert value(s, "strom_active_controller") == 1
    assert value(s, "strom_brokers", state="active") == 1
    assert value(s, "process_open_fds") > 0

    # A consumer's reads are counted out, at least the bytes it was sent.
    c = Consumer({"bootstrap.servers": server.addr, "group.id": "reader",
                  "auto.offset.reset": "earliest", "enable.partition.eof": True})
    c.assign([TopicPartition("m", 1, 0)])
    got, deadline = 0, time.time() + 30
    while got < 500 and time.time() < deadline:
        for m in c.consume(500, 1):
            if not m.error():
                got += 1
    c.close()
    assert got == 500
    s = scrape(server.http)
    out = value(s, "strom_topic_bytes_out_total", topic="m")
    assert out >= value(s, "strom_partition_size_bytes", topic="m", partition="1"), out
    assert value(s, "strom_connections_created_total", listener="PLAINTEXT") >= 3


def test_health_probes_answer_ready_and_live(server):
    assert get(server.http, "/health/live") == (200, {"live": True})
    # Ready once registered and unfenced (503, saying what is missing, until then).
    status, body = wait_until("ready", lambda: get(server.http, "/health/ready"), 20,
                              ok=lambda r: r[0] == 200)
    assert body["ready"] is True, body
    assert {c["name"] for c in body["checks"]} == {"metadata", "log_dirs", "listeners"}
    assert all(c["ok"] for c in body["checks"]), body


def test_no_http_listener_when_turned_off(tmp_path):
    s = Server(tmp_path / "data", "http.listeners=")
    assert s.http is None
    s.stop()
    rest = s.proc.stdout.read()
    assert "strom http on" not in s.line + rest, rest


@with_node_logs
def test_a_stalled_broker_shows_as_isr_shrinks_and_under_replicated_partitions(tmp_path):
    # A paused broker stops fetching: its leaders drop it from their ISRs after
    # replica.lag.time.max.ms (1 s here), before the controller fences it (3 s), and those
    # shrinks are what the leaders count (as Kafka's IsrShrinksPerSec).
    nodes = combined_cluster(tmp_path, extra=["replica.lag.time.max.ms=1000"])
    a = AdminClient({"bootstrap.servers": ",".join(n.addr for n in nodes)})
    a.create_topics([NewTopic("r", num_partitions=6, replication_factor=3)])["r"].result(15)
    wait_until("every partition led, fully in sync",
               lambda: [(value(x, "strom_leader_partitions"),
                         value(x, "strom_under_replicated_partitions"))
                        for x in map(scrape, (n.http for n in nodes))], 30,
               ok=lambda v: sum(led for led, _ in v) >= 6 and all(u == 0 for _, u in v))
    healthy = cluster_health(nodes)
    assert healthy["healthy"] is True and all(c["ok"] for c in healthy["checks"]), healthy
    victim, rest = nodes[2], nodes[:2]
    before = {n.id: value(scrape(n.http), "strom_isr_shrinks_total") for n in rest}
    os.kill(victim.proc.pid, signal.SIGSTOP)
    try:
        wait_until("the survivors report the topic's partitions under-replicated",
                   lambda: sum(value(scrape(n.http), "strom_under_replicated_partitions")
                               for n in rest), 40, ok=lambda under: under >= 6)
        shrinks = sum(value(scrape(n.http), "strom_isr_shrinks_total") - before[n.id]
                      for n in rest)
        assert shrinks >= 1
        s = scrape(rest[0].http)
        assert value(s, "strom_brokers", state="active") + \
            value(s, "strom_brokers", state="fenced") == 3
        assert value(s, "strom_offline_partitions") == 0
        leaders = [value(scrape(n.http), "strom_metadata_quorum_leader") for n in rest]
        assert leaders[0] == leaders[1] and leaders[0] in (1, 2), leaders
        assert sum(value(scrape(n.http), "strom_active_controller") for n in rest) == 1
        sick = wait_until("strom cluster health sees the fenced broker",
                          lambda: cluster_health(rest), 20,
                          ok=lambda h: not next(c for c in h["checks"] if c["name"] == "brokers")["ok"])
        assert sick["healthy"] is False
        assert len(sick["under_replicated_partitions"]) >= 6, sick
        assert "fenced: 3" in next(c for c in sick["checks"] if c["name"] == "brokers")["detail"]
    finally:
        os.kill(victim.proc.pid, signal.SIGCONT)
    # Back in the ISRs once it catches up: expansions are counted too.
    wait_until("the ISRs expand again",
               lambda: sum(value(scrape(n.http), "strom_isr_expands_total") for n in nodes), 40,
               ok=lambda e: e >= 1)


def test_strom_top_shows_throughput_per_topic_and_lag_per_group(server):
    import threading
    a = AdminClient({"bootstrap.servers": server.addr})
    a.create_topics([NewTopic("busy", num_partitions=2, replication_factor=1)])["busy"].result(15)
    c = Consumer({"bootstrap.servers": server.addr, "group.id": "slow", "enable.auto.commit": False})
    c.commit(offsets=[TopicPartition("busy", 0, 0), TopicPartition("busy", 1, 0)], asynchronous=False)
    c.close()
    stop = threading.Event()

    def write():
        p = Producer({"bootstrap.servers": server.addr, "linger.ms": 5})
        while not stop.is_set():
            for _ in range(200):
                p.produce("busy", value=b"x" * 100)
            p.poll(0)
            time.sleep(0.05)
        p.flush(10)

    t = threading.Thread(target=write, daemon=True)
    t.start()
    try:
        r = subprocess.run([STROM, "top", "-b", server.addr, "--interval", "1", "--iterations", "3"],
                           capture_output=True, text=True, timeout=60,
                           env={**os.environ, "RUST_LOG": "warn"})
    finally:
        stop.set()
        t.join(30)
    assert r.returncode == 0, r.stderr
    screens = r.stdout.split("--\n")
    assert len(screens) == 3, r.stdout
    last = screens[-1].splitlines()
    topic = next(l.split() for l in last if l.startswith("busy "))
    assert int(topic[1]) > 0 and int(topic[2]) > 0, last      # records/s, bytes/s
    group = next(l.split() for l in last if l.startswith("slow "))
    assert group[1] == "Empty" and int(group[3]) > 0, last     # state, lag
    assert not any(l.startswith("__consumer_offsets") for l in last), "internal topics hidden"
