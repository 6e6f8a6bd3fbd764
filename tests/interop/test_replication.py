"""Partition replication on real processes with real clients: three `strom server` nodes,
topics with replication factor 3 and min.insync.replicas=2, and brokers (leaders included)
killed with SIGKILL, paused with SIGSTOP and shut down with SIGTERM while confluent-kafka's
idempotent acks=all producer keeps writing. Every acknowledged record is read back exactly
once, in order, at the offset it was acknowledged with. Also: two of three brokers down
refuses acks=all (nothing acknowledged is lost), consumer groups keep their offsets when
their coordinator dies, and a consumer with `client.rack` fetches from the follower in its
rack (KIP-392)."""
import collections
import json
import random
import signal
import subprocess
import threading
import time
import uuid

from confluent_kafka import (Consumer, KafkaError, KafkaException, OFFSET_BEGINNING, Producer,
                             TopicPartition)
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic
from kafka import KafkaProducer
from kafka.errors import KafkaError as PyKafkaError

from test_cluster import ck_metadata, combined_cluster, wait_ready, wait_until, with_node_logs


def bootstrap(nodes):
    return ",".join(n.addr for n in nodes)


def create(nodes, name, partitions, rf=3, configs=None):
    a = AdminClient({"bootstrap.servers": bootstrap(nodes)})
    t = NewTopic(name, num_partitions=partitions, replication_factor=rf,
                 config=configs or {"min.insync.replicas": "2"})
    a.create_topics([t], operation_timeout=10)[name].result(15)


def partitions_of(nodes, topic):
    """{partition: (leader, [isr])} as a live node reports it."""
    for n in nodes:
        if not n.alive():
            continue
        try:
            md = ck_metadata(n.addr, timeout=3)
        except Exception:  # noqa: BLE001 - try the next node
            continue
        t = md.topics.get(topic)
        if t is not None and not t.error:
            return {p: (part.leader, sorted(part.isrs)) for p, part in t.partitions.items()}
    raise AssertionError("no live node answered Metadata")


def every_nodes_view(nodes, topic):
    """{node id: {partition: (leader, [isr])}} from each live node's own Metadata."""
    out = {}
    for n in nodes:
        if n.alive():
            t = ck_metadata(n.addr, timeout=3).topics.get(topic)
            out[n.id] = None if t is None or t.error else {
                p: (part.leader, sorted(part.isrs)) for p, part in t.partitions.items()}
    return out


def wait_full_isr(nodes, topic, timeout=40):
    """Every live node reports the same leaders and the full ISR for every partition (a node
    just resumed from SIGSTOP reports what it knew before, until it catches up)."""
    ids = sorted(n.id for n in nodes)

    def settled(views):
        first = next(iter(views.values()), None)
        return first is not None and all(v == first for v in views.values()) and all(
            isr == ids and leader in ids for leader, isr in first.values())

    wait_until(f"every node reports the full ISR {ids} for every partition of {topic}",
               lambda: every_nodes_view(nodes, topic), timeout, ok=settled)


class Writer(threading.Thread):
    """confluent-kafka's idempotent acks=all producer writing `v-<n>` round-robin over the
    partitions until stopped; `acked` holds (partition, offset, value) of each delivery."""

    def __init__(self, nodes, topic, partitions):
        super().__init__(daemon=True)
        self.p = Producer({"bootstrap.servers": bootstrap(nodes), "enable.idempotence": True,
                           "acks": "all", "linger.ms": 2, "message.timeout.ms": 120000,
                           # A request in flight to a paused broker is given up (and retried
                           # elsewhere) after these; librdkafka's defaults are 30 and 60 s.
                           # The socket timeout bounds the InitProducerId an idempotent
                           # producer sends after a timed-out produce, to any broker.
                           "request.timeout.ms": 5000, "socket.timeout.ms": 6000,
                           "socket.connection.setup.timeout.ms": 2000,
                           "topic.metadata.refresh.interval.ms": 1000})
        self.topic, self.partitions = topic, partitions
        self.acked, self.errors, self.sent = [], [], 0
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def delivered(self, err, msg):
        with self.lock:
            if err:
                self.errors.append(err)
            else:
                self.acked.append((msg.partition(), msg.offset(), msg.value()))

    def run(self):
        while not self.stop.is_set():
            try:
                self.p.produce(self.topic, value=f"v-{self.sent:07d}".encode(),
                               partition=self.sent % self.partitions, on_delivery=self.delivered)
                self.sent += 1
            except BufferError:
                pass
            self.p.poll(0.002 if self.sent % 20 else 0.01)
        assert self.p.flush(120) == 0, "records still in flight two minutes after the last"

    def acked_count(self):
        with self.lock:
            return len(self.acked)


def end_offset(consumer, tp, timeout=20):
    """The partition's high watermark, once its leader can vouch for it: a leader elected a
    moment ago answers OFFSET_NOT_AVAILABLE until its followers' fetches settle the high
    watermark (librdkafka passes that on rather than retrying)."""
    deadline = time.time() + timeout
    while True:
        try:
            return consumer.get_watermark_offsets(tp, timeout=10)[1]
        except KafkaException as e:
            if e.args[0].code() != KafkaError.OFFSET_NOT_AVAILABLE or time.time() > deadline:
                raise
            time.sleep(0.1)


def read_all(nodes, topic, partitions, timeout=60):
    """Every record of the topic, per partition: [(offset, value)]."""
    c = Consumer({"bootstrap.servers": bootstrap(nodes), "group.id": "check-" + uuid.uuid4().hex,
                  "enable.auto.commit": False, "enable.partition.eof": True})
    ends = {}
    for p in range(partitions):
        ends[p] = end_offset(c, TopicPartition(topic, p))
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    out = collections.defaultdict(list)
    deadline = time.time() + timeout
    try:
        while any(len(out[p]) < ends[p] for p in ends) and time.time() < deadline:
            for m in c.consume(500, 0.5):
                if m.error():
                    assert m.error().code() == KafkaError._PARTITION_EOF, m.error()
                    continue
                out[m.partition()].append((m.offset(), m.value()))
    finally:
        c.close()
    return out, ends


def check_exactly_once_in_order(writer, got, ends):
    values_at = {p: dict(records) for p, records in got.items()}
    values_in = {p: {v for _, v in records} for p, records in got.items()}
    for p, offset, value in writer.acked:
        if offset is None:
            # librdkafka's idempotent producer acknowledges a message whose request timed out
            # once a later one of the same producer succeeds, without its offset.
            assert value in values_in.get(p, set()), f"acknowledged {value!r} missing from {p}"
            continue
        assert values_at.get(p, {}).get(offset) == value, \
            f"acknowledged {value!r} at {p}@{offset} reads back as {values_at.get(p, {}).get(offset)!r}"
    every = [v for records in got.values() for _, v in records]
    dupes = [v for v, n in collections.Counter(every).items() if n > 1]
    assert not dupes, f"records stored twice: {dupes[:5]}"
    for p, records in got.items():
        ns = [int(v.decode()[2:]) for _, v in records]
        assert ns == sorted(ns), f"partition {p} is out of order"
        assert len(records) == ends[p], f"partition {p}: read {len(records)} of {ends[p]}"


def kcat_read(nodes, topic, partition):
    """[(offset, value)] of a whole partition as kcat reads it."""
    r = subprocess.run(["kcat", "-C", "-b", bootstrap(nodes), "-t", topic, "-p", str(partition),
                        "-o", "beginning", "-e", "-q", "-f", "%o %s\\n"],
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out = []
    for line in r.stdout.splitlines():
        offset, value = line.split(b" ", 1)
        out.append((int(offset), value))
    return out


def replica_sizes(nodes, topic):
    """{partition: {broker: bytes}} from every broker's DescribeLogDirs (kafka-python)."""
    from kafka import KafkaAdminClient
    a = KafkaAdminClient(bootstrap_servers=bootstrap(nodes), request_timeout_ms=10000)
    try:
        out = collections.defaultdict(dict)
        for b in a.describe_log_dirs(topic_partitions=[topic]):
            for d in b["log_dirs"]:
                for t in d["topics"]:
                    for p in t["partitions"]:
                        out[p["partition_index"]][b["broker"]] = p["partition_size"]
        return dict(out)
    finally:
        a.close()


def leader_of(nodes, topic, partition):
    return partitions_of(nodes, topic)[partition][0]


@with_node_logs
def test_acks_all_survives_repeated_kills_and_pauses_of_leaders_exactly_once_in_order(tmp_path):
    nodes = combined_cluster(tmp_path)
    create(nodes, "chaos", 3)
    wait_full_isr(nodes, "chaos")
    writer = Writer(nodes, "chaos", 3)
    writer.start()
    by_id = {n.id: n for n in nodes}
    rng = random.Random(7)
    wait_until("the producer is acknowledged", writer.acked_count, 20, ok=lambda n: n > 200)
    for round_ in range(3):
        # SIGKILL the leader of a partition, bring it back, let it rejoin.
        victim = by_id[leader_of(nodes, "chaos", rng.randrange(3))]
        before = writer.acked_count()
        victim.kill()
        wait_until(f"round {round_}: acknowledgements resume after killing {victim.name}",
                   writer.acked_count, 30, ok=lambda n, b=before: n > b + 100)
        victim.start()
        wait_full_isr(nodes, "chaos")
        # SIGSTOP another leader past its session timeout, then let it go on.
        paused = by_id[leader_of(nodes, "chaos", rng.randrange(3))]
        paused.proc.send_signal(signal.SIGSTOP)
        before = writer.acked_count()
        try:
            wait_until(f"round {round_}: acknowledgements resume while {paused.name} is paused",
                       writer.acked_count, 30, ok=lambda n, b=before: n > b + 100)
        finally:
            paused.proc.send_signal(signal.SIGCONT)
        wait_full_isr(nodes, "chaos")
    writer.stop.set()
    writer.join(150)
    assert not writer.is_alive()
    assert writer.errors == [], f"deliveries failed: {writer.errors[:5]}"
    assert writer.acked_count() == writer.sent
    got, ends = read_all(nodes, "chaos", 3)
    check_exactly_once_in_order(writer, got, ends)
    # kcat reads the same records at the same offsets.
    for p in range(3):
        assert kcat_read(nodes, "chaos", p) == [(o, v) for o, v in got[p]], f"partition {p}"
    # Every replica holds the same bytes: followers store the leader's batches as they are.
    wait_until("every replica of every partition has the same size",
               lambda: replica_sizes(nodes, "chaos"), 30,
               ok=lambda sizes: all(len(set(by_broker.values())) == 1 and len(by_broker) == 3
                                    for by_broker in sizes.values()))


@with_node_logs
def test_with_two_of_three_brokers_down_acks_all_is_refused_and_nothing_is_lost(tmp_path):
    nodes = combined_cluster(tmp_path)
    create(nodes, "strict", 1)
    create(nodes, "all3", 1, configs={"min.insync.replicas": "3"})
    wait_full_isr(nodes, "strict")
    wait_full_isr(nodes, "all3")
    p = KafkaProducer(bootstrap_servers=bootstrap(nodes), acks="all", retries=0,
                      request_timeout_ms=5000, max_block_ms=10000)
    kept = [p.send("strict", f"kept-{i}".encode(), partition=0).get(15) for i in range(50)]
    p.send("all3", b"three-in-sync", partition=0).get(15)
    leader = leader_of(nodes, "strict", 0)
    a, b = [n for n in nodes if n.id != leader]
    # One follower down: it leaves the ISR; min.insync.replicas=2 still takes writes, =3 is
    # refused before anything is written.
    a.kill()
    wait_until("the killed follower leaves the ISR", lambda: partitions_of(nodes, "strict")[0],
               20, ok=lambda li: a.id not in li[1])
    wait_until("... of both topics", lambda: partitions_of(nodes, "all3")[0], 20,
               ok=lambda li: a.id not in li[1])
    kept.append(p.send("strict", b"kept-50", partition=0).get(15))
    try:
        p.send("all3", b"refused", partition=0).get(15)
        raise AssertionError("acks=all was acknowledged with 2 in-sync replicas of 3 required")
    except PyKafkaError as e:
        assert type(e).__name__ == "NotEnoughReplicasError", repr(e)
    # The second follower down too (and with it the quorum's majority): acks=all cannot
    # be acknowledged; the producer gets NOT_ENOUGH_REPLICAS or times out.
    b.kill()
    outcome = None
    try:
        p.send("strict", b"unacknowledged", partition=0).get(15)
        raise AssertionError("acks=all was acknowledged with one broker of three alive")
    except PyKafkaError as e:
        outcome = type(e).__name__
        assert outcome in ("NotEnoughReplicasError", "KafkaTimeoutError", "RequestTimedOutError",
                           "NotEnoughReplicasAfterAppendError"), repr(e)
    p.close()
    a.start(wait=False)
    b.start(wait=False)
    a.wait_listening()
    b.wait_listening()
    wait_full_isr(nodes, "strict")
    got, _ = read_all(nodes, "strict", 1)
    values = [v for _, v in got[0]]
    assert values[:51] == [f"kept-{i}".encode() for i in range(51)]
    assert [md.offset for md in kept] == list(range(51))
    if outcome == "NotEnoughReplicasError":
        assert b"unacknowledged" not in values
    got3, _ = read_all(nodes, "all3", 1)
    assert [v for _, v in got3[0]] == [b"three-in-sync"]


@with_node_logs
def test_controlled_shutdown_of_a_leader_under_load_fails_no_produce(tmp_path):
    nodes = combined_cluster(tmp_path, extra=("broker.session.timeout.ms=60000",))
    create(nodes, "graceful", 3)
    wait_full_isr(nodes, "graceful")
    writer = Writer(nodes, "graceful", 3)
    writer.start()
    wait_until("the producer is acknowledged", writer.acked_count, 20, ok=lambda n: n > 200)
    victim = next(n for n in nodes if n.id == leader_of(nodes, "graceful", 0))
    victim.proc.send_signal(signal.SIGTERM)
    assert victim.proc.wait(30) == 0
    before = writer.acked_count()
    wait_until("acknowledgements go on", writer.acked_count, 20, ok=lambda n: n > before + 200)
    writer.stop.set()
    writer.join(150)
    assert writer.errors == [], f"deliveries failed: {writer.errors[:5]}"
    got, ends = read_all([n for n in nodes if n is not victim], "graceful", 3)
    check_exactly_once_in_order(writer, got, ends)


@with_node_logs
def test_a_consumer_group_keeps_its_offsets_when_its_coordinator_dies(tmp_path):
    nodes = combined_cluster(tmp_path)
    create(nodes, "work", 2)
    wait_full_isr(nodes, "work")
    p = Producer({"bootstrap.servers": bootstrap(nodes), "acks": "all"})
    for i in range(100):
        p.produce("work", value=f"job-{i}".encode(), partition=i % 2)
    assert p.flush(20) == 0
    group = "workers"
    c = Consumer({"bootstrap.servers": bootstrap(nodes), "group.id": group,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe(["work"])
    seen = []
    deadline = time.time() + 30
    while len(seen) < 60 and time.time() < deadline:
        for m in c.consume(10, 0.5):
            if not m.error():
                seen.append(m.value())
    c.commit(asynchronous=False)
    committed = {tp.partition: tp.offset for tp in
                 c.committed([TopicPartition("work", 0), TopicPartition("work", 1)], timeout=10)}
    c.close()
    a = AdminClient({"bootstrap.servers": bootstrap(nodes)})
    described = a.describe_consumer_groups([group])[group].result(10)
    coordinator = described.coordinator.id
    assert coordinator in {n.id for n in nodes}, described
    next(n for n in nodes if n.id == coordinator).kill()
    survivors = [n for n in nodes if n.id != coordinator]
    c = Consumer({"bootstrap.servers": bootstrap(survivors), "group.id": group,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    after = wait_until("the group's offsets are served by a new coordinator",
                       lambda: {tp.partition: tp.offset for tp in c.committed(
                           [TopicPartition("work", 0), TopicPartition("work", 1)], timeout=5)},
                       30, ok=lambda got: got == committed)
    assert sum(after.values()) == len(seen)
    c.subscribe(["work"])
    rest = []
    deadline = time.time() + 30
    while len(rest) < 100 - len(seen) and time.time() < deadline:
        for m in c.consume(10, 0.5):
            if not m.error():
                rest.append(m.value())
    c.close()
    assert sorted(seen + rest) == sorted(f"job-{i}".encode() for i in range(100))


@with_node_logs
def test_a_consumer_with_client_rack_fetches_from_the_follower_in_its_rack(tmp_path):
    nodes = combined_cluster(tmp_path, extra=(
        "replica.selector.class=org.apache.kafka.common.replica.RackAwareReplicaSelector",))
    for n in nodes:
        n.kill()
        n.overrides.append(f"broker.rack=rack-{n.id}")
        n.start(wait=False)
    for n in nodes:
        n.wait_listening()
    wait_ready(nodes, nodes, timeout=30)
    create(nodes, "racked", 1)
    wait_full_isr(nodes, "racked")
    leader = leader_of(nodes, "racked", 0)
    follower = next(n for n in nodes if n.id != leader)
    p = Producer({"bootstrap.servers": bootstrap(nodes), "acks": "all"})
    for i in range(30):
        p.produce("racked", value=f"r-{i}".encode(), partition=0)
    assert p.flush(20) == 0
    stats = []
    c = Consumer({"bootstrap.servers": bootstrap(nodes), "group.id": "rack-" + uuid.uuid4().hex,
                  "client.rack": f"rack-{follower.id}", "statistics.interval.ms": 200,
                  "stats_cb": lambda s: stats.append(json.loads(s)),
                  "enable.auto.commit": False})
    c.assign([TopicPartition("racked", 0, OFFSET_BEGINNING)])
    got = []
    deadline = time.time() + 30
    while len(got) < 30 and time.time() < deadline:
        for m in c.consume(30, 0.5):
            if not m.error():
                got.append(m.value())
    for _ in range(10):
        c.poll(0.2)
    c.close()
    assert got == [f"r-{i}".encode() for i in range(30)]
    fetched_from = {s["topics"]["racked"]["partitions"]["0"]["broker"] for s in stats
                    if "racked" in s.get("topics", {})}
    assert follower.id in fetched_from, \
        f"fetched from {fetched_from}, leader {leader}, follower in rack {follower.id}"


def replicas_of(nodes, topic):
    """{partition: [replicas]} as a live node reports it."""
    for n in nodes:
        if n.alive():
            t = ck_metadata(n.addr, timeout=3).topics.get(topic)
            if t is not None and not t.error:
                return {p: list(part.replicas) for p, part in t.partitions.items()}
    raise AssertionError("no live node answered Metadata")


def live_logs(node, topic):
    """The partition directories of `topic` on `node` not yet marked for deletion (a deleted
    log is renamed `...-delete` and removed after `file.delete.delay.ms`)."""
    return [p.name for p in node.dir.glob(f"{topic}-*") if not p.name.endswith("-delete")]


@with_node_logs
def test_a_partition_with_data_moves_to_a_new_broker_under_load(tmp_path):
    """Reassignment (KIP-455) with kafka-python's admin client while the idempotent producer
    writes: broker 4 joins the cluster, the partition moves from [1, 2, 3] to [4, 2, 3],
    broker 1 drops its copy, and broker 4, made leader, serves every acknowledged record.
    Then `strom cluster reassign` moves it back under a throttle: verify reports it in
    progress with the copied size, then complete, and removes the throttle configs."""
    from kafka import KafkaAdminClient
    from kafka import TopicPartition as KTP
    from test_cluster import Node, free_ports, strom_json
    nodes = combined_cluster(tmp_path)
    create(nodes, "moving", 1, configs={"min.insync.replicas": "2"})
    wait_full_isr(nodes, "moving")
    # Broker 1 the first replica (so its leader, the one that leaves) whatever placement did.
    ka = KafkaAdminClient(bootstrap_servers=bootstrap(nodes), request_timeout_ms=30000)
    if replicas_of(nodes, "moving")[0] != [1, 2, 3]:
        assert ka.alter_partition_reassignments({KTP("moving", 0): [1, 2, 3]}) == \
            {KTP("moving", 0): None}
        wait_until("replicas [1, 2, 3]", lambda: replicas_of(nodes, "moving")[0], 20,
                   ok=lambda r: r == [1, 2, 3])
    writer = Writer(nodes, "moving", 1)
    writer.start()
    wait_until("the producer is acknowledged", writer.acked_count, 20, ok=lambda n: n > 2000)
    fourth = Node(tmp_path, 4, nodes[0].voters, bport=free_ports(1)[0]).start()
    everyone = nodes + [fourth]
    wait_ready(everyone, nodes)
    assert replicas_of(everyone, "moving")[0] == [1, 2, 3], "a new broker takes nothing by itself"

    result = ka.alter_partition_reassignments({KTP("moving", 0): [4, 2, 3]})
    assert result == {KTP("moving", 0): None}, result
    wait_until("the reassignment completes", lambda: (
        ka.list_partition_reassignments(), replicas_of(everyone, "moving")[0]), 60,
        ok=lambda r: r[0] == {} and r[1] == [4, 2, 3])
    wait_full_isr([fourth, nodes[1], nodes[2]], "moving")
    wait_until("broker 1 deletes its copy", lambda: live_logs(nodes[0], "moving"), 20,
               ok=lambda left: left == [])
    before = writer.acked_count()
    wait_until("acknowledgements go on after the move", writer.acked_count, 30,
               ok=lambda n: n > before + 500)
    writer.stop.set()
    writer.join(150)
    assert not writer.is_alive()
    assert writer.errors == [], f"deliveries failed: {writer.errors[:5]}"
    # Broker 4 leads (the preferred replica) and so serves the whole partition.
    a = AdminClient({"bootstrap.servers": bootstrap(everyone)})
    if leader_of(everyone, "moving", 0) != 4:
        from confluent_kafka import ElectionType
        a.elect_leaders(ElectionType.PREFERRED, [TopicPartition("moving", 0)]).result()
    wait_until("broker 4 leads", lambda: leader_of(everyone, "moving", 0), 20, ok=lambda l: l == 4)
    got, ends = read_all(everyone, "moving", 1)
    check_exactly_once_in_order(writer, got, ends)

    # Back to [1, 2, 3] with `strom cluster reassign`, throttled to 100 kB/s: with 1.5 MB
    # more in the partition, broker 1 is seconds from caught up when verify first looks.
    bulk = Producer({"bootstrap.servers": bootstrap(everyone), "acks": "all"})
    for i in range(1000):
        bulk.produce("moving", value=bytes([65 + i % 26]) * 1500, partition=0)
    assert bulk.flush(30) == 0
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"version": 1, "partitions": [
        {"topic": "moving", "partition": 0, "replicas": [1, 2, 3], "log_dirs": ["any"] * 3}]}))
    started = strom_json(fourth.addr, "cluster", "reassign", "execute", "--plan", str(plan),
                         "--throttle", "100000")
    assert [r["error_code"] for r in started] == [0], started
    configs = a.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, "moving")])
    topic_configs = list(configs.values())[0].result()
    assert topic_configs["follower.replication.throttled.replicas"].value == "0:1"
    status = strom_json(fourth.addr, "cluster", "reassign", "verify", "--plan", str(plan))
    assert not status["complete"], status
    assert status["partitions"][0]["status"].startswith("in progress: broker 1:"), status
    wait_until("the throttled reassignment completes", lambda: strom_json(
        fourth.addr, "cluster", "reassign", "verify", "--plan", str(plan)), 120,
        ok=lambda s: s["complete"], interval=1)
    assert replicas_of(everyone, "moving")[0] == [1, 2, 3]
    topic_configs = list(a.describe_configs(
        [ConfigResource(ConfigResource.Type.TOPIC, "moving")]).values())[0].result()
    assert topic_configs["follower.replication.throttled.replicas"].value == "", \
        "verify removes the throttle once done"
    wait_until("broker 4 deletes its copy", lambda: live_logs(fourth, "moving"), 20,
               ok=lambda left: left == [])
