"""Multi-node Strom clusters (one `strom server` process per node, on loopback) seen through
confluent-kafka, kafka-python, kcat and `strom cluster`: every node reports the same brokers
and controller, topics are placed over all brokers and known everywhere, clients route
produce and fetch to the leaders, the metadata quorum survives the loss of its leader (and
the lost node catches up, from a snapshot when its log is too far behind), split controller
and broker roles, and a duplicate node.id is refused.

Records surviving failures are test_replication.py's subject; here only metadata is
checked across them."""
import collections
import functools
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import uuid

import pytest
from confluent_kafka import (Consumer, KafkaError, KafkaException, OFFSET_BEGINNING, Producer,
                             TopicPartition)
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaAdminClient, KafkaProducer

from conftest import STROM

SESSION = ["broker.session.timeout.ms=3000", "broker.heartbeat.interval.ms=500",
           "http.listeners=http://127.0.0.1:0"]
SNAPSHOT_OFTEN = ["metadata.log.max.record.bytes.between.snapshots=2000",
                  "metadata.log.segment.bytes=4096",
                  "metadata.log.max.snapshot.interval.ms=500"]

SERVER_LINE = re.compile(r"^strom server listening on 127\.0\.0\.1:(\d+), "
                         r"controller on 127\.0\.0\.1:(\d+), data in (.+)$")
SERVER_ONLY_LINE = re.compile(r"^strom server listening on 127\.0\.0\.1:(\d+), data in (.+)$")
CONTROLLER_LINE = re.compile(r"^strom controller listening on 127\.0\.0\.1:(\d+), data in (.+)$")

# Every node started by the running test, so a failure can show their logs.
_NODES = []


def free_ports(n):
    """`n` distinct free loopback ports (all bound at once, then released)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Node:
    """One `strom server` process. `bport` is its PLAINTEXT port (None for a controller-only
    node), `cport` its CONTROLLER port (None for a broker-only node)."""

    def __init__(self, base, node_id, voters, bport=None, cport=None, extra=(), name=None):
        self.id = node_id
        self.voters = voters
        self.name = name or f"node-{node_id}"
        self.bport, self.cport = bport, cport
        self.dir = base / self.name
        self.log_path = base / f"{self.name}.log"
        roles = [r for r, p in (("broker", bport), ("controller", cport)) if p is not None]
        listeners = [f"{l}://127.0.0.1:{p}" for l, p in (("PLAINTEXT", bport), ("CONTROLLER", cport))
                     if p is not None]
        self.overrides = [f"node.id={node_id}", f"process.roles={','.join(roles)}",
                          f"listeners={','.join(listeners)}",
                          "controller.listener.names=CONTROLLER",
                          f"controller.quorum.voters={voters}", f"log.dirs={self.dir}",
                          *SESSION, *extra]
        self.proc = None
        self.lines = []
        self.first_line = None
        _NODES.append(self)

    @property
    def addr(self):
        return f"127.0.0.1:{self.bport}"

    @property
    def http(self):
        """host:port of its HTTP listener (metrics, health), from its second start line."""
        assert self.first_line.wait(20)
        deadline = time.time() + 20
        while time.time() < deadline:
            found = [l.split()[-1] for l in self.lines if l.startswith("strom http on ")]
            if found:
                return found[0]
            time.sleep(0.05)
        raise AssertionError(f"{self.name} printed no HTTP listener{self.tail()}")

    @property
    def is_broker(self):
        return self.bport is not None

    def start(self, wait=True):
        args = [STROM, "server"]
        for o in self.overrides:
            args += ["--override", o]
        log = open(self.log_path, "a")
        log.write(f"----- starting {self.name} at {time.strftime('%H:%M:%S')}: {' '.join(args)}\n")
        log.flush()
        self.lines, self.first_line = [], threading.Event()
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, text=True,
                                     env={**os.environ, "RUST_LOG": os.environ.get("STROM_TEST_LOG", "warn")})
        log.close()
        threading.Thread(target=self._drain, args=(self.proc, self.lines, self.first_line),
                         daemon=True).start()
        if wait:
            self.wait_listening()
        return self

    @staticmethod
    def _drain(proc, lines, first):
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            first.set()
        first.set()

    def wait_listening(self, timeout=20):
        """Waits for the start line and checks it names this node's ports and data dir."""
        assert self.first_line.wait(timeout), f"{self.name} printed nothing in {timeout}s{self.tail()}"
        assert self.lines, f"{self.name} exited ({self.proc.poll()}) before listening{self.tail()}"
        line = self.lines[0]
        if self.is_broker and self.cport is not None:
            m = SERVER_LINE.match(line)
            assert m, f"{self.name}: unexpected start line {line!r}"
            assert (int(m[1]), int(m[2]), m[3]) == (self.bport, self.cport, str(self.dir)), line
        elif self.is_broker:
            m = SERVER_ONLY_LINE.match(line)
            assert m, f"{self.name}: unexpected start line {line!r}"
            assert (int(m[1]), m[2]) == (self.bport, str(self.dir)), line
        else:
            m = CONTROLLER_LINE.match(line)
            assert m, f"{self.name}: unexpected start line {line!r}"
            assert (int(m[1]), m[2]) == (self.cport, str(self.dir)), line

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """kill -9."""
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(10)

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, n=25):
        lines = re.sub(r"\x1b\[[0-9;]*m", "", self.log_text()).splitlines()[-n:]
        return f"\n--- {self.name} ({self.log_path}), last {len(lines)} lines:\n" + "\n".join(lines)


def with_node_logs(test):
    """On failure, prints the tail of every node's log (pytest shows it with the failure)."""

    @functools.wraps(test)
    def run(*args, **kwargs):
        _NODES.clear()
        try:
            return test(*args, **kwargs)
        except BaseException:
            for n in _NODES:
                print(n.tail(40))
            raise
        finally:
            for n in _NODES:
                n.kill()
            _NODES.clear()

    return run


def wait_until(what, check, timeout, ok=bool, interval=0.25):
    """Calls `check` until `ok` holds for what it returns (that value is returned) or
    `timeout` seconds pass (then fails, naming `what` and the last value or error seen)."""
    deadline, last = time.time() + timeout, None
    while True:
        try:
            v = check()
            if ok(v):
                return v
            last = v
        except Exception as e:  # noqa: BLE001 - a failed attempt is retried
            last = f"{type(e).__name__}: {e}"
        if time.time() >= deadline:
            raise AssertionError(f"{what}: not within {timeout}s; last seen: {last}")
        time.sleep(interval)


def combined_cluster(base, n=3, extra=()):
    """`n` broker+controller nodes, ids 1..n, started and ready."""
    ports = free_ports(2 * n)
    bports, cports = ports[:n], ports[n:]
    voters = ",".join(f"{i + 1}@127.0.0.1:{cports[i]}" for i in range(n))
    nodes = [Node(base, i + 1, voters, bports[i], cports[i], extra) for i in range(n)]
    for node in nodes:
        node.start(wait=False)
    for node in nodes:
        node.wait_listening()
    wait_ready(nodes, nodes)
    return nodes


def wait_ready(brokers, all_nodes, timeout=20):
    """Every broker's Metadata lists exactly `brokers`, and the quorum has a leader."""
    want = {b.id: b.addr for b in brokers}
    for b in brokers:
        wait_until(f"{b.name} lists brokers {want}", lambda: ck_brokers(b.addr), timeout,
                   ok=lambda got: got == want)
    wait_until("the metadata quorum has a leader", lambda: quorum(brokers[0].addr)["leader_id"],
               timeout, ok=lambda l: l in {n.id for n in all_nodes})


# --- what the clients report -------------------------------------------------------------

def admin(addr):
    return AdminClient({"bootstrap.servers": addr, "socket.connection.setup.timeout.ms": 3000})


def ck_metadata(addr, timeout=5):
    return admin(addr).list_topics(timeout=timeout)


def ck_brokers(addr):
    """confluent-kafka's Metadata: {id: "host:port"}."""
    return {i: f"{b.host}:{b.port}" for i, b in ck_metadata(addr).brokers.items()}


def strom_json(addr, *args):
    r = subprocess.run([STROM, *args, "-b", addr, "--output", "json"], capture_output=True,
                       text=True, timeout=20, env={**os.environ, "RUST_LOG": "warn"})
    assert r.returncode == 0, f"strom {' '.join(args)} -b {addr}: {r.stderr}"
    return json.loads(r.stdout)


def quorum(addr):
    return strom_json(addr, "cluster", "quorum")


def kcat_metadata(addr, topic=None):
    """`kcat -L -J` bootstrapped at `addr` only; checks that `addr` itself answered."""
    args = ["kcat", "-b", addr, "-L", "-J", "-m", "5"] + (["-t", topic] if topic else [])
    r = subprocess.run(args, capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, f"{' '.join(args)}: {r.stderr}"
    md = json.loads(r.stdout)
    assert md["originating_broker"]["name"].startswith(addr + "/"), md["originating_broker"]
    return md


def kcat_topics(addr):
    """{topic: {partition: (leader, [replicas])}} from `addr`'s own Metadata."""
    return {t["topic"]: {p["partition"]: (p["leader"], [r["id"] for r in p["replicas"]])
                         for p in t["partitions"]}
            for t in kcat_metadata(addr)["topics"] if not t.get("error")}


def create_topic(addr, name, partitions, rf, timeout=10):
    a = admin(addr)  # kept until the result is in: a destroyed client fails its futures
    a.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=rf)],
                    operation_timeout=timeout)[name].result(timeout + 5)


def ck_describe_cluster(addr):
    a = admin(addr)
    return a.describe_cluster(request_timeout=10).result(15)


def produce(addr, topic, records, partitions):
    """confluent-kafka, bootstrapped at `addr`: record i goes to partition i % partitions."""
    p = Producer({"bootstrap.servers": addr, "acks": "all", "linger.ms": 5,
                  "message.timeout.ms": 20000})
    errors, delivered = [], []
    for i, (k, v) in enumerate(records):
        p.produce(topic, key=k, value=v, partition=i % partitions,
                  on_delivery=lambda e, m: errors.append(e) if e else delivered.append(
                      (m.partition(), m.key(), m.value())))
    assert p.flush(30) == 0, "records still in flight after 30 s"
    assert errors == [], errors
    return delivered


def consume(addr, topic, partitions, count, timeout=30):
    """confluent-kafka, bootstrapped at `addr`: the first `count` records of the topic."""
    c = Consumer({"bootstrap.servers": addr, "group.id": "unused-" + uuid.uuid4().hex,
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    out, deadline = [], time.time() + timeout
    try:
        while len(out) < count and time.time() < deadline:
            for m in c.consume(count, 0.5):
                assert not m.error() or m.error().code() == -191, m.error()  # _PARTITION_EOF
                if not m.error():
                    out.append((m.partition(), m.key(), m.value()))
    finally:
        c.close()
    return out


def check_placement(md, topic, partitions, rf, broker_ids):
    """The topic in a confluent-kafka Metadata has `partitions` partitions of `rf` distinct
    replicas each, every broker is a replica of one, each leader is a replica, and the
    leaders are spread evenly over the brokers."""
    t = md.topics.get(topic)
    assert t is not None and t.error is None, f"{topic}: {t and t.error}"
    assert sorted(t.partitions) == list(range(partitions)), sorted(t.partitions)
    leaders = collections.Counter()
    replicas = set()
    for p in t.partitions.values():
        assert len(p.replicas) == rf and len(set(p.replicas)) == rf, (p.id, p.replicas)
        assert set(p.replicas) <= set(broker_ids), (p.id, p.replicas)
        assert p.leader in p.replicas, (p.id, p.leader, p.replicas)
        leaders[p.leader] += 1
        replicas |= set(p.replicas)
    assert replicas == set(broker_ids), f"{topic}: replicas on {replicas}"
    even = partitions // len(broker_ids)
    assert leaders == {b: even for b in broker_ids}, f"{topic}: leaders per broker {dict(leaders)}"
    return {p.id: (p.leader, list(p.replicas)) for p in t.partitions.values()}


# --- the tests ---------------------------------------------------------------------------

@with_node_logs
def test_every_node_and_client_sees_the_same_three_brokers_and_controller(tmp_path):
    nodes = combined_cluster(tmp_path)
    want = {n.id: n.addr for n in nodes}
    leader = quorum(nodes[0].addr)["leader_id"]
    controllers = set()
    for n in nodes:
        # confluent-kafka: Metadata, then DescribeCluster.
        md = ck_metadata(n.addr)
        assert {i: f"{b.host}:{b.port}" for i, b in md.brokers.items()} == want, n.name
        cluster = ck_describe_cluster(n.addr)
        assert {b.id: f"{b.host}:{b.port}" for b in cluster.nodes} == want, n.name
        controllers |= {md.controller_id, cluster.controller.id}
        cluster_id = cluster.cluster_id

        # kafka-python: DescribeCluster.
        ka = KafkaAdminClient(bootstrap_servers=n.addr, request_timeout_ms=10000)
        try:
            d = ka.describe_cluster()
        finally:
            ka.close()
        assert {b["broker_id"]: f"{b['host']}:{b['port']}" for b in d["brokers"]} == want, n.name
        assert not any(b["is_fenced"] for b in d["brokers"]), d["brokers"]
        assert d["cluster_id"] == cluster_id
        controllers.add(d["controller_id"])

        # kcat: this node's own Metadata.
        k = kcat_metadata(n.addr)
        assert k["originating_broker"]["id"] == n.id
        assert {b["id"]: b["name"] for b in k["brokers"]} == want, n.name
        controllers.add(k["controllerid"])

        # strom cluster info.
        info = strom_json(n.addr, "cluster", "info")
        assert info["cluster_id"] == cluster_id
        assert {b["id"]: b["address"] for b in info["brokers"]} == want, n.name
        assert not any(b["fenced"] for b in info["brokers"]), info
        controllers.add(info["controller"])
    # The active controller is the quorum leader, a broker here, and everyone names it.
    assert controllers == {leader}, f"controller ids reported: {controllers}, quorum leader {leader}"

    q = quorum(nodes[2].addr)
    assert q["leader_id"] == leader
    assert sorted((r["id"], r["role"]) for r in q["replicas"]) == [(1, "voter"), (2, "voter"), (3, "voter")]


@with_node_logs
def test_topics_created_through_each_node_are_placed_on_all_brokers_and_clients_route_to_leaders(tmp_path):
    nodes = combined_cluster(tmp_path)
    ids = [n.id for n in nodes]
    topics = [f"spread-{n.id}" for n in nodes]
    for n, t in zip(nodes, topics):
        create_topic(n.addr, t, 6, 3)

    placements = {}
    for n in nodes:
        md = wait_until(f"{n.name} knows {topics}", lambda: ck_metadata(n.addr), 10,
                        ok=lambda m: all(t in m.topics for t in topics))
        for t in topics:
            placement = check_placement(md, t, 6, 3, ids)
            # Every node reports the same leaders and replicas.
            assert placements.setdefault(t, placement) == placement, (n.name, t)
        # ... and so does the node's own Metadata, read by kcat.
        own = kcat_topics(n.addr)
        for t in topics:
            assert own[t] == placements[t], (n.name, t, own[t])

    # confluent-kafka: produce bootstrapped at node 1, consume bootstrapped at node 3.
    records = [(f"k{i}".encode(), f"value {i}".encode()) for i in range(60)]
    delivered = produce(nodes[0].addr, topics[1], records, 6)
    assert sorted(delivered) == sorted((i % 6, k, v) for i, (k, v) in enumerate(records))
    got = consume(nodes[2].addr, topics[1], 6, 60)
    assert sorted(got) == sorted(delivered)

    # kafka-python produces bootstrapped at node 2; kcat consumes bootstrapped at node 1.
    kp = KafkaProducer(bootstrap_servers=nodes[1].addr, acks="all", request_timeout_ms=10000)
    futures = [kp.send(topics[2], key=f"kp{i}".encode(), value=f"v{i}".encode(), partition=i % 6)
               for i in range(30)]
    kp.flush(20)
    assert sorted(f.get(timeout=10).partition for f in futures) == sorted(i % 6 for i in range(30))
    kp.close(5)
    r = subprocess.run(["kcat", "-b", nodes[0].addr, "-C", "-t", topics[2], "-o", "beginning",
                        "-e", "-q", "-f", "%p %k %s\n"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.splitlines()) == sorted(f"{i % 6} kp{i} v{i}" for i in range(30))


def kill_and_fail_over(nodes, victim, create_name):
    """kill -9 `victim`; waits for the quorum (seen through a survivor) to have another leader
    and for CreateTopics through a survivor to succeed. Returns the survivors."""
    survivors = [n for n in nodes if n is not victim]
    killed_at = time.time()
    victim.kill()
    new_leader = wait_until(f"a new quorum leader after killing node {victim.id}",
                            lambda: quorum(survivors[0].addr)["leader_id"], 15,
                            ok=lambda l: l in {s.id for s in survivors})
    elected = time.time() - killed_at

    def try_create():
        create_topic(survivors[0].addr, create_name, 2, 2, timeout=3)
        return True

    wait_until(f"CreateTopics {create_name} through {survivors[0].name} after the kill",
               try_create, 15, interval=0.1)
    created = time.time() - killed_at
    print(f"killed node {victim.id}: node {new_leader} leads the quorum after {elected:.2f}s, "
          f"CreateTopics through node {survivors[0].id} succeeded {created:.2f}s after the kill")
    assert created < 15
    return survivors


def wait_rejoined(node, via, timeout=20):
    """`node` is a voter of the quorum (seen through `via`) with lag 0."""
    def caught_up():
        q = quorum(via.addr)
        me = [r for r in q["replicas"] if r["id"] == node.id]
        return me and me[0]["role"] == "voter" and me[0]["lag"] == 0 and q
    return wait_until(f"node {node.id} back in the quorum with lag 0", caught_up, timeout)


@with_node_logs
def test_quorum_fails_over_when_the_active_controller_is_killed_and_it_rejoins(tmp_path):
    nodes = combined_cluster(tmp_path)
    create_topic(nodes[0].addr, "before", 6, 3)
    wait_until("every node knows topic before",
               lambda: all("before" in ck_metadata(n.addr).topics for n in nodes), 10)
    old_leader = quorum(nodes[0].addr)["leader_id"]
    victim = next(n for n in nodes if n.id == old_leader)
    survivors = kill_and_fail_over(nodes, victim, "after-failover")
    alive = {s.id: s.addr for s in survivors}

    # Once its session times out the killed broker is fenced: gone from every survivor's
    # Metadata, and the partitions it led have a live leader.
    for s in survivors:
        wait_until(f"{s.name} lists only brokers {alive}", lambda: ck_brokers(s.addr), 15,
                   ok=lambda got: got == alive)

    wait_until("every partition of topic before led by a survivor",
               lambda: {p.id: p.leader for p in
                        ck_metadata(survivors[1].addr).topics["before"].partitions.values()}, 10,
               ok=lambda leaders: set(leaders.values()) <= set(alive))
    controllers = {ck_metadata(s.addr).controller_id for s in survivors}
    assert controllers == {quorum(survivors[1].addr)["leader_id"]}, controllers

    create_topic(survivors[1].addr, "while-down", 3, 2)

    victim.start()
    q = wait_rejoined(victim, survivors[0])
    assert q["leader_id"] in alive
    assert sorted(r["id"] for r in q["replicas"] if r["role"] == "voter") == [1, 2, 3]
    want = {n.id: n.addr for n in nodes}
    wait_until(f"{victim.name} is listed again by every node",
               lambda: [ck_brokers(n.addr) for n in nodes], 20, ok=lambda got: got == [want] * 3)
    expect = {"before": 6, "after-failover": 2, "while-down": 3}
    own = wait_until(f"{victim.name}'s own Metadata knows {sorted(expect)}",
                     lambda: kcat_topics(victim.addr), 15, ok=lambda t: all(k in t for k in expect))
    assert {k: len(own[k]) for k in expect} == expect
    survivor_view = kcat_topics(survivors[0].addr)
    for k in expect:
        assert {p: r for p, (_, r) in own[k].items()} == {p: r for p, (_, r) in survivor_view[k].items()}, k


def metadata_log_start(node):
    """The base offset of the oldest segment of `node`'s metadata log."""
    d = node.dir / "__cluster_metadata-0"
    return min(int(f.name.split(".")[0]) for f in d.iterdir() if f.name.endswith(".log"))


@with_node_logs
def test_a_node_behind_the_leaders_snapshot_catches_up_from_it(tmp_path):
    nodes = combined_cluster(tmp_path, extra=SNAPSHOT_OFTEN)
    q = quorum(nodes[0].addr)
    leader = next(n for n in nodes if n.id == q["leader_id"])
    victim = next(n for n in nodes if n.id != leader.id)
    survivors = [n for n in nodes if n is not victim]
    victim_end = next(r["log_end_offset"] for r in q["replicas"] if r["id"] == victim.id)
    victim.kill()

    names = [f"snap-{i:02d}" for i in range(30)]
    for i, name in enumerate(names):
        create_topic(survivors[i % 2].addr, name, 2, 2)
    # The leader snapshotted past everything the stopped node has and dropped those segments,
    # so only a snapshot can bring it up to date.
    wait_until(f"the leader's metadata log starts past the stopped node's end ({victim_end})",
               lambda: metadata_log_start(leader), 10, ok=lambda start: start > victim_end + 1)
    assert (leader.dir / "__cluster_metadata-0" / "snapshot").exists()

    victim.start()
    wait_rejoined(victim, leader)
    want = {n.id: n.addr for n in nodes}
    wait_until(f"{victim.name} is listed again by every node",
               lambda: [ck_brokers(n.addr) for n in nodes], 20, ok=lambda got: got == [want] * 3)
    own = wait_until(f"{victim.name}'s own Metadata knows all 30 topics",
                     lambda: kcat_topics(victim.addr), 20, ok=lambda t: all(k in t for k in names))
    assert all(len(own[k]) == 2 for k in names)
    # It keeps following the log after the snapshot.
    create_topic(leader.addr, "after-catch-up", 1, 1)
    wait_until(f"{victim.name} knows after-catch-up", lambda: sorted(kcat_topics(victim.addr)), 10,
               ok=lambda t: "after-catch-up" in t)


def split_cluster(base):
    """Three controller-only nodes (1-3) and two broker-only nodes (4, 5), started and ready.
    Returns (controllers, brokers, voters)."""
    ports = free_ports(5)
    cports, bports = ports[:3], ports[3:]
    voters = ",".join(f"{i + 1}@127.0.0.1:{cports[i]}" for i in range(3))
    controllers = [Node(base, i + 1, voters, cport=cports[i]) for i in range(3)]
    brokers = [Node(base, 4 + i, voters, bport=bports[i]) for i in range(2)]
    for n in controllers + brokers:
        n.start(wait=False)
    for n in controllers + brokers:
        n.wait_listening()
    wait_ready(brokers, controllers + brokers)
    return controllers, brokers, voters


@with_node_logs
def test_split_roles_three_controllers_and_two_brokers(tmp_path):
    controllers, brokers, _ = split_cluster(tmp_path)
    want = {b.id: b.addr for b in brokers}

    for b in brokers:
        md = ck_metadata(b.addr)
        assert {i: f"{x.host}:{x.port}" for i, x in md.brokers.items()} == want, b.name
        cluster = ck_describe_cluster(b.addr)
        assert {x.id: f"{x.host}:{x.port}" for x in cluster.nodes} == want, b.name
        ka = KafkaAdminClient(bootstrap_servers=b.addr, request_timeout_ms=10000)
        try:
            d = ka.describe_cluster()
        finally:
            ka.close()
        assert {x["broker_id"]: f"{x['host']}:{x['port']}" for x in d["brokers"]} == want, b.name
        k = kcat_metadata(b.addr)
        assert {x["id"]: x["name"] for x in k["brokers"]} == want, b.name
        # The active controller is not a broker: clients are given the lowest live broker.
        ids = {md.controller_id, cluster.controller.id, d["controller_id"], k["controllerid"]}
        assert ids == {4}, f"{b.name}: controller ids {ids}"

        q = quorum(b.addr)
        assert q["leader_id"] in {1, 2, 3}, q
        roles = sorted((r["id"], r["role"]) for r in q["replicas"])
        assert roles == [(1, "voter"), (2, "voter"), (3, "voter"), (4, "observer"), (5, "observer")], roles

    create_topic(brokers[0].addr, "split", 4, 2)
    md = wait_until("broker 5 knows topic split", lambda: ck_metadata(brokers[1].addr), 10,
                    ok=lambda m: "split" in m.topics)
    placement = check_placement(md, "split", 4, 2, [4, 5])
    assert kcat_topics(brokers[1].addr)["split"] == placement

    records = [(f"s{i}".encode(), f"split {i}".encode()) for i in range(40)]
    delivered = produce(brokers[0].addr, "split", records, 4)
    assert len(delivered) == 40
    assert sorted(consume(brokers[1].addr, "split", 4, 40)) == sorted(delivered)


@with_node_logs
def test_a_second_broker_with_a_live_node_id_is_refused(tmp_path):
    _, brokers, voters = split_cluster(tmp_path)
    (dup_port,) = free_ports(1)
    want = {b.id: b.addr for b in brokers}
    dup = Node(tmp_path, 4, voters, bport=dup_port, name="duplicate-4")
    q0 = quorum(brokers[0].addr)
    dup.start(wait=False)
    wait_until("the duplicate's log says node.id must be unique",
               lambda: "must be unique in the cluster" in dup.log_text(), 15)
    # While it keeps trying (for longer than a broker session), both brokers list the original
    # two, node 4 at its own address, and the quorum is undisturbed.
    watch_until = time.time() + 4
    while time.time() < watch_until:
        for n in brokers:
            assert ck_brokers(n.addr) == want, n.name
            info = strom_json(n.addr, "cluster", "info")
            assert {b["id"]: b["address"] for b in info["brokers"]} == want, (n.name, info)
            assert not any(b["fenced"] for b in info["brokers"]), (n.name, info)
        q = quorum(brokers[1].addr)
        assert (q["leader_id"], q["leader_epoch"]) == (q0["leader_id"], q0["leader_epoch"]), q
        time.sleep(0.2)
    dup.kill()
    for n in brokers:
        assert ck_brokers(n.addr) == want, n.name
    create_topic(brokers[1].addr, "after-dup", 2, 2)
    md = wait_until("broker 4 knows after-dup", lambda: ck_metadata(brokers[0].addr), 10,
                    ok=lambda m: "after-dup" in m.topics)
    check_placement(md, "after-dup", 2, 2, [4, 5])


@with_node_logs
def test_a_broker_only_node_listed_as_a_voter_is_refused_at_startup(tmp_path):
    (cport, bport) = free_ports(2)
    node = Node(tmp_path, 1, f"1@127.0.0.1:{cport}", bport=bport)
    node.start(wait=False)
    assert node.proc.wait(20) != 0
    assert "must not be one of controller.quorum.voters" in node.log_text(), node.tail()


@with_node_logs
def test_with_a_majority_down_metadata_changes_time_out_and_existing_partitions_keep_working(tmp_path):
    nodes = combined_cluster(tmp_path)
    create_topic(nodes[0].addr, "keep", 3, 1)
    md = wait_until("every node knows keep", lambda: ck_metadata(nodes[2].addr), 10,
                    ok=lambda m: "keep" in m.topics)
    survivor = nodes[2]
    mine = next(p for p, part in md.topics["keep"].partitions.items() if part.leader == survivor.id)
    for n in nodes[:2]:
        n.kill()
    # Once the survivor notices it has no leader it names itself as the controller clients
    # should ask (any broker forwards).
    wait_until("the survivor names itself the controller",
               lambda: ck_metadata(survivor.addr).controller_id, 15, ok=lambda c: c == survivor.id)
    # No quorum: a metadata change waits for its own timeout, then fails with
    # REQUEST_TIMED_OUT; it is not silently lost or applied.
    a = admin(survivor.addr)
    start = time.time()
    future = a.create_topics([NewTopic("no-quorum", num_partitions=1, replication_factor=1)],
                             operation_timeout=3, request_timeout=20)["no-quorum"]
    with pytest.raises(KafkaException) as refused:
        future.result(30)
    took = time.time() - start
    assert refused.value.args[0].code() == KafkaError.REQUEST_TIMED_OUT, refused.value
    assert 2.5 <= took < 15, f"the create failed after {took:.1f}s"
    assert "no-quorum" not in ck_metadata(survivor.addr).topics
    # The partition the survivor leads still takes records and serves them.
    p = Producer({"bootstrap.servers": survivor.addr, "acks": "1", "message.timeout.ms": 10000})
    errors = []
    for i in range(20):
        p.produce("keep", value=f"still {i}".encode(), partition=mine,
                  on_delivery=lambda e, m: e and errors.append(e))
    assert p.flush(15) == 0 and errors == [], errors
    c = Consumer({"bootstrap.servers": survivor.addr, "group.id": "unused-" + uuid.uuid4().hex,
                  "enable.auto.commit": False})
    c.assign([TopicPartition("keep", mine, OFFSET_BEGINNING)])
    got, deadline = [], time.time() + 15
    try:
        while len(got) < 20 and time.time() < deadline:
            got += [m.value() for m in c.consume(20, 0.5) if not m.error()]
    finally:
        c.close()
    assert got == [f"still {i}".encode() for i in range(20)]


@with_node_logs
def test_sigterm_moves_a_brokers_leaderships_away_before_it_exits(tmp_path):
    # A long session: leaderships can only move because the broker asked, not by fencing.
    nodes = combined_cluster(tmp_path, extra=("broker.session.timeout.ms=60000",))
    create_topic(nodes[0].addr, "moving", 6, 3)
    md = wait_until("every node knows moving", lambda: ck_metadata(nodes[1].addr), 10,
                    ok=lambda m: "moving" in m.topics)
    leader = quorum(nodes[0].addr)["leader_id"]
    victim = next(n for n in nodes if n.id != leader)
    led = [p for p, part in md.topics["moving"].partitions.items() if part.leader == victim.id]
    assert led, "round-robin placement gives every broker leaderships"
    start = time.time()
    victim.proc.send_signal(signal.SIGTERM)
    assert victim.proc.wait(30) == 0, "a controlled shutdown exits 0"
    took = time.time() - start
    survivor = next(n for n in nodes if n is not victim)
    md = ck_metadata(survivor.addr)
    for p in led:
        part = md.topics["moving"].partitions[p]
        assert part.leader not in (victim.id, -1), (p, part.leader)
        assert victim.id not in part.isrs, (p, part.isrs)
    assert victim.id not in md.brokers, "a broker that shut down is fenced"
    assert took < 10, f"controlled shutdown took {took:.1f}s"


@with_node_logs
def test_a_topic_deleted_while_a_node_was_down_leaves_no_log_on_it(tmp_path):
    nodes = combined_cluster(tmp_path)
    create_topic(nodes[0].addr, "doomed", 3, 3)
    # Not the active controller: this test is about the node's logs, not about failover.
    leader = quorum(nodes[0].addr)["leader_id"]
    victim = next(n for n in nodes if n.id != leader)
    other = next(n for n in nodes if n is not victim)
    wait_until("the victim holds doomed's logs", lambda: sorted(
        d.name for d in victim.dir.iterdir() if d.name.startswith("doomed-")), 10,
        ok=lambda got: got == ["doomed-0", "doomed-1", "doomed-2"])
    victim.kill()
    a = admin(other.addr)
    a.delete_topics(["doomed"], operation_timeout=10)["doomed"].result(15)
    victim.start()
    wait_ready(nodes, nodes)
    assert "doomed" not in ck_metadata(victim.addr).topics
    # Its logs are deleted once it has caught up (renamed `-delete`, then removed).
    wait_until("the victim deleted doomed's logs", lambda: sorted(
        d.name for d in victim.dir.iterdir() if re.fullmatch(r"doomed-\d+", d.name)), 10,
        ok=lambda got: got == [])


def raw_list_offsets(addr, topic, partition):
    """ListOffsets v1 for the latest offset, sent to `addr` itself (no client routing):
    (error code, offset)."""
    import struct
    t = topic.encode()
    body = struct.pack(">i", -1) + struct.pack(">i", 1) + struct.pack(">h", len(t)) + t
    body += struct.pack(">i", 1) + struct.pack(">iq", partition, -1)
    client = b"raw"
    header = struct.pack(">hhih", 2, 1, 7, len(client)) + client
    frame = header + body
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(struct.pack(">i", len(frame)) + frame)
        size = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))[0]
        data = s.recv(size, socket.MSG_WAITALL)
    at = 4 + 4  # correlation id, topic count
    (name_len,) = struct.unpack_from(">h", data, at)
    at += 2 + name_len + 4  # name, partition count
    _, code, _, offset = struct.unpack_from(">ihqq", data, at)
    return code, offset


@with_node_logs
def test_placement_is_rack_aware_and_brokers_refuse_what_they_do_not_lead(tmp_path):
    ports = free_ports(6)
    bports, cports = ports[:3], ports[3:]
    voters = ",".join(f"{i + 1}@127.0.0.1:{cports[i]}" for i in range(3))
    racks = ["a", "a", "b"]
    nodes = [Node(tmp_path, i + 1, voters, bports[i], cports[i], (f"broker.rack={racks[i]}",))
             for i in range(3)]
    for n in nodes:
        n.start(wait=False)
    for n in nodes:
        n.wait_listening()
    wait_ready(nodes, nodes)
    info = strom_json(nodes[1].addr, "cluster", "info")
    assert {b["id"]: b["rack"] for b in info["brokers"]} == {1: "a", 2: "a", 3: "b"}, info

    # Two replicas over racks a, a, b: never both in rack a.
    create_topic(nodes[0].addr, "racked", 6, 2)
    md = wait_until("node 2 knows racked", lambda: ck_metadata(nodes[1].addr), 10,
                    ok=lambda m: "racked" in m.topics)
    for p in md.topics["racked"].partitions.values():
        assert {racks[r - 1] for r in p.replicas} == {"a", "b"}, (p.id, p.replicas)

    # More replicas than brokers.
    with pytest.raises(KafkaException) as refused:
        create_topic(nodes[0].addr, "too-many", 1, 4)
    assert refused.value.args[0].code() == KafkaError.INVALID_REPLICATION_FACTOR, refused.value

    # A broker that does not lead a partition says so; its leader answers.
    leader = md.topics["racked"].partitions[0].leader
    by_id = {n.id: n for n in nodes}
    assert raw_list_offsets(by_id[leader].addr, "racked", 0) == (0, 0)
    for n in nodes:
        if n.id != leader:
            code, _ = raw_list_offsets(n.addr, "racked", 0)
            assert code == 6, (n.name, code)  # NOT_LEADER_OR_FOLLOWER
