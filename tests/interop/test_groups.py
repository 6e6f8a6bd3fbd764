"""Consumer groups with real clients: confluent-kafka members in their own processes (so
one can be killed with SIGKILL), kafka-python's group consumer, static membership, the
cooperative-sticky assignor, committed offsets across a broker restart, and the admin
group operations."""
import json
import os
import subprocess
import sys
import threading
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition, ConsumerGroupTopicPartitions
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer, KafkaProducer

from conftest import Server

HERE = os.path.dirname(__file__)


class Member:
    """A group_member.py process and what it has reported."""

    def __init__(self, addr, group, topic, *conf):
        self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "group_member.py"),
                                      addr, group, topic, *conf],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.log = []
        self.assigned = None
        self.records = []
        self.assignments = []
        self.revocations = []
        self.tps = []
        self.fatal = None
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=lambda: self.log.extend(self.proc.stderr), daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            ev = json.loads(line)
            with self.lock:
                if "revoked" in ev:
                    self.assigned = ev["assigned"]
                    self.tps = ev["tps"]
                    self.revocations.append(ev["revoked"])
                elif "assigned" in ev:
                    self.assigned = ev["assigned"]
                    self.tps = ev["tps"]
                    self.assignments.append(ev["assigned"])
                elif "fatal" in ev:
                    self.fatal = ev["fatal"]
                elif "k" in ev:
                    self.records.append(ev["k"])

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)

    def kill(self):
        self.proc.kill()
        self.proc.wait()


def wait_for(what, cond, timeout=40):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def produce(addr, topic, keys):
    p = Producer({"bootstrap.servers": addr})
    for i, k in enumerate(keys):
        p.produce(topic, key=str(k).encode(), value=b"v", partition=i % 6)
    assert p.flush(20) == 0


@pytest.fixture
def group_server(tmp_path):
    s = Server(tmp_path / "data", "group.initial.rebalance.delay.ms=0",
               "group.min.session.timeout.ms=1000")
    yield s
    if s.proc.poll() is None:
        s.stop()


def create(addr, topic, partitions=6):
    admin = AdminClient({"bootstrap.servers": addr})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(10)


def test_three_members_share_six_partitions_leave_and_get_evicted(group_server):
    addr = group_server.addr
    create(addr, "six")
    members = [Member(addr, "trio", "six") for _ in range(3)]
    try:
        wait_for("two partitions each", lambda: all(m.assigned is not None and len(m.assigned) == 2
                                                    for m in members)
                 and sorted(sum((m.assigned for m in members), [])) == list(range(6)))
        produce(addr, "six", range(600))
        wait_for("600 records", lambda: sum(len(m.records) for m in members) >= 600)
        keys = sum((m.records for m in members), [])
        assert sorted(keys, key=int) == [str(i) for i in range(600)], "each record exactly once"

        # One leaves cleanly (LeaveGroup): the other two take over three partitions each.
        members[0].stop()
        wait_for("three each", lambda: all(m.assigned is not None and len(m.assigned) == 3
                                           for m in members[1:]))
        produce(addr, "six", range(600, 900))
        wait_for("300 more", lambda: sum(len(m.records) for m in members[1:]) >= 900 - len(members[0].records))
        keys = sum((m.records for m in members), [])
        assert sorted(keys, key=int) == [str(i) for i in range(900)], "committed: nothing read twice"

        # One is killed: no LeaveGroup; the coordinator evicts it after session.timeout.ms.
        killed_at = time.time()
        members[1].kill()
        wait_for("the survivor owns all six", lambda: members[2].assigned == list(range(6)))
        assert time.time() - killed_at >= 5, "evicted by the session timeout, not before"
        produce(addr, "six", range(900, 1000))
        wait_for("the last 100", lambda: len(set(sum((m.records for m in members), []))) >= 1000)
        keys = sum((m.records for m in members), [])
        assert set(keys) == {str(i) for i in range(1000)}
    finally:
        for m in members:
            if m.proc.poll() is None:
                m.kill()


def test_committed_offsets_survive_a_broker_restart(tmp_path):
    s = Server(tmp_path / "d", "group.initial.rebalance.delay.ms=0")
    try:
        create(s.addr, "durable")
        produce(s.addr, "durable", range(100))
        m = Member(s.addr, "keeper", "durable")
        wait_for("100 records", lambda: len(m.records) >= 100)
        m.stop()
        s.kill()
        s = Server(tmp_path / "d", "group.initial.rebalance.delay.ms=0")
        produce(s.addr, "durable", range(100, 150))
        m = Member(s.addr, "keeper", "durable")
        wait_for("the next 50", lambda: len(m.records) >= 50)
        time.sleep(1)
        assert sorted(m.records, key=int) == [str(i) for i in range(100, 150)], "resumed, not replayed"
        m.stop()
        # The records in __consumer_offsets use Kafka's schemas: key version 1 for offsets.
        c = Consumer({"bootstrap.servers": s.addr, "group.id": "reader", "enable.auto.commit": False})
        c.assign([TopicPartition("__consumer_offsets", p, 0) for p in range(50)])
        keys = []
        deadline = time.time() + 10
        while time.time() < deadline and not keys:
            msg = c.poll(0.5)
            if msg is not None and not msg.error() and msg.key()[:2] == b"\x00\x01":
                keys.append(msg.key())
        c.close()
        assert keys and b"keeper" in keys[0] and b"durable" in keys[0]
    finally:
        s.stop()


def test_static_member_restarts_without_a_rebalance_and_duplicates_are_fenced(group_server):
    addr = group_server.addr
    create(addr, "static")
    conf = ("group.instance.id=instance-a", "session.timeout.ms=10000")
    a = Member(addr, "statics", "static", *conf)
    b = Member(addr, "statics", "static", "group.instance.id=instance-b", "session.timeout.ms=10000")
    try:
        wait_for("three each", lambda: a.assigned is not None and b.assigned is not None
                 and len(a.assigned) == 3 and len(b.assigned) == 3)
        before_b = len(b.assignments)
        a_parts = a.assigned
        # A static member's close does not leave the group (KIP-345); it comes back within
        # its session timeout and gets the same partitions; the other member sees nothing.
        a.kill()
        a = Member(addr, "statics", "static", *conf)
        wait_for("a's partitions back", lambda: a.assigned is not None)
        assert a.assigned == a_parts
        time.sleep(2)
        assert len(b.assignments) == before_b, "no rebalance for the other member"
        # A second process with the same instance id fences the first.
        dup = Member(addr, "statics", "static", *conf)
        wait_for("the newcomer takes the instance", lambda: dup.assigned is not None)
        # librdkafka reports FENCED_INSTANCE_ID as a fatal error (logged; the Python
        # binding does not surface it to poll).
        wait_for("the old one is fenced",
                 lambda: a.fatal is not None or any("fenced" in line for line in a.log), timeout=20)
        dup.kill()
    finally:
        for m in (a, b):
            if m.proc.poll() is None:
                m.kill()


def test_kafka_python_group_consumer_commits_and_resumes(group_server):
    addr = group_server.addr
    create(addr, "kp", 3)
    prod = KafkaProducer(bootstrap_servers=addr)
    for i in range(90):
        prod.send("kp", key=str(i).encode(), value=b"x", partition=i % 3)
    prod.flush()
    c = KafkaConsumer("kp", bootstrap_servers=addr, group_id="kpg", auto_offset_reset="earliest",
                      enable_auto_commit=False, consumer_timeout_ms=4000)
    got = [m.key for m in c]
    assert len(got) == 90
    c.commit()
    c.close()
    for i in range(90, 120):
        prod.send("kp", key=str(i).encode(), value=b"x", partition=i % 3)
    prod.flush()
    c = KafkaConsumer("kp", bootstrap_servers=addr, group_id="kpg", auto_offset_reset="earliest",
                      consumer_timeout_ms=4000)
    got = sorted(int(m.key) for m in c)
    c.close()
    assert got == list(range(90, 120))


def test_cooperative_sticky_assignor_rebalances_incrementally(group_server):
    addr = group_server.addr
    create(addr, "coop")
    conf = ("partition.assignment.strategy=cooperative-sticky",)
    a = Member(addr, "coops", "coop", *conf)
    try:
        wait_for("a owns all", lambda: a.assigned == list(range(6)))
        b = Member(addr, "coops", "coop", *conf)
        wait_for("split", lambda: b.assigned is not None and len(b.assigned) == 3 and len(a.assigned) == 3)
        # Incremental: a gave up only the three partitions that moved, never all six (an eager
        # assignor revokes everything at each rebalance).
        assert a.revocations and all(0 < len(r) <= 3 for r in a.revocations), a.revocations
        assert set(a.assigned).isdisjoint(b.assigned)
        b.stop()
        wait_for("a owns all again", lambda: a.assigned == list(range(6)))
    finally:
        for m in (a,):
            if m.proc.poll() is None:
                m.kill()


def test_admin_lists_describes_deletes_groups_and_offsets(group_server):
    from kafka import TopicPartition as KTP
    from kafka.admin import KafkaAdminClient
    addr = group_server.addr
    create(addr, "adm")
    produce(addr, "adm", range(12))
    m = Member(addr, "admg", "adm")
    a = AdminClient({"bootstrap.servers": addr})
    try:
        wait_for("12 records", lambda: len(m.records) >= 12)
        listed = {g.group_id: g for g in a.list_consumer_groups().result(10).valid}
        assert "admg" in listed and str(listed["admg"].state).endswith("STABLE")
        # ListGroups' state filter.
        from confluent_kafka import ConsumerGroupState
        stable = a.list_consumer_groups(states={ConsumerGroupState.STABLE}).result(10).valid
        empty = a.list_consumer_groups(states={ConsumerGroupState.EMPTY}).result(10).valid
        assert "admg" in {g.group_id for g in stable} and "admg" not in {g.group_id for g in empty}
        d = a.describe_consumer_groups(["admg"])["admg"].result(10)
        assert len(d.members) == 1 and len(d.members[0].assignment.topic_partitions) == 6
        assert d.partition_assignor == "range"
        with pytest.raises(Exception, match="NON_EMPTY_GROUP"):
            a.delete_consumer_groups(["admg"])["admg"].result(10)
        # OffsetDelete (kafka-python's admin): refused while members subscribe to the topic.
        kadmin = KafkaAdminClient(bootstrap_servers=addr)
        res = kadmin.delete_group_offsets("admg", [KTP("adm", 0)])
        assert res[KTP("adm", 0)].__name__ == "GroupSubscribedToTopicError"
    finally:
        m.stop()
    offsets = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions("admg")])["admg"].result(10)
    assert sorted((tp.partition, tp.offset) for tp in offsets.topic_partitions) == [(p, 2) for p in range(6)]
    wait_for("the group is empty", lambda: str({g.group_id: g for g in a.list_consumer_groups().result(10).valid}["admg"].state).endswith("EMPTY"))
    res = kadmin.delete_group_offsets("admg", [KTP("adm", 0)])
    assert res[KTP("adm", 0)].__name__ == "NoError"
    offsets = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions("admg")])["admg"].result(10)
    assert sorted(tp.partition for tp in offsets.topic_partitions if tp.offset >= 0) == [1, 2, 3, 4, 5]
    a.delete_consumer_groups(["admg"])["admg"].result(10)
    with pytest.raises(Exception, match="GROUP_ID_NOT_FOUND"):
        a.delete_consumer_groups(["admg"])["admg"].result(10)
    # Manual assignment commits (no group membership) are stored too.
    c = Consumer({"bootstrap.servers": addr, "group.id": "manual", "enable.auto.commit": False})
    c.commit(offsets=[TopicPartition("adm", 0, 5)], asynchronous=False)
    got = c.committed([TopicPartition("adm", 0)], timeout=10)
    c.close()
    assert got[0].offset == 5
    kadmin.close()


def test_kip848_consumer_group_splits_partitions_and_survives_a_member_leaving(tmp_path):
    s = Server(tmp_path / "d", "group.consumer.heartbeat.interval.ms=300")
    conf = ("group.protocol=consumer",)
    a = b = None
    try:
        create(s.addr, "k848")
        a = Member(s.addr, "g848", "k848", *conf)
        wait_for("a owns all", lambda: a.assigned == list(range(6)))
        b = Member(s.addr, "g848", "k848", *conf)
        wait_for("split 3/3", lambda: b.assigned is not None and len(b.assigned) == 3
                 and len(a.assigned) == 3)
        assert set(a.assigned).isdisjoint(b.assigned)
        produce(s.addr, "k848", range(300))
        wait_for("300 records", lambda: len(a.records) + len(b.records) >= 300)
        assert sorted(a.records + b.records, key=int) == [str(i) for i in range(300)]

        admin = AdminClient({"bootstrap.servers": s.addr})
        d = admin.describe_consumer_groups(["g848"])["g848"].result(10)
        assert str(d.type).endswith("CONSUMER") and len(d.members) == 2
        assert sorted(sum(([tp.partition for tp in m.assignment.topic_partitions]
                           for m in d.members), [])) == list(range(6))

        b.stop()
        wait_for("a owns all again", lambda: a.assigned == list(range(6)))
        produce(s.addr, "k848", range(300, 400))
        wait_for("100 more", lambda: len(a.records) + len(b.records) >= 400)
        assert sorted(a.records + b.records, key=int) == [str(i) for i in range(400)]
    finally:
        for m in (a, b):
            if m is not None and m.proc.poll() is None:
                m.kill()
        s.stop()


def test_kip848_membership_survives_a_broker_kill(tmp_path):
    """The group's epochs and assignments are records in __consumer_offsets: after a SIGKILL
    and restart of the broker, members carry on with their epochs, without losing or
    revoking their partitions."""
    s = Server(tmp_path / "d", "group.consumer.heartbeat.interval.ms=300")
    port = s.addr.rsplit(":", 1)[1]
    conf = ("group.protocol=consumer",)
    members = []
    try:
        create(s.addr, "k848r")
        members = [Member(s.addr, "g848r", "k848r", *conf) for _ in range(2)]
        wait_for("split 3/3", lambda: all(m.assigned is not None and len(m.assigned) == 3
                                          for m in members))
        produce(s.addr, "k848r", range(60))
        wait_for("60 records", lambda: sum(len(m.records) for m in members) >= 60)
        before = [(list(m.assigned), len(m.revocations)) for m in members]
        s.kill()
        s = Server(tmp_path / "d", "group.consumer.heartbeat.interval.ms=300",
                   f"listeners=PLAINTEXT://127.0.0.1:{port}")
        produce(s.addr, "k848r", range(60, 120))
        wait_for("60 more", lambda: sum(len(m.records) for m in members) >= 120)
        time.sleep(1)
        assert [(list(m.assigned), len(m.revocations)) for m in members] == before
        keys = sorted(sum((m.records for m in members), []), key=int)
        assert keys == [str(i) for i in range(120)]
    finally:
        for m in members:
            if m.proc.poll() is None:
                m.kill()
        s.stop()


def test_kip848_regex_subscription_follows_new_topics(tmp_path):
    s = Server(tmp_path / "d", "group.consumer.heartbeat.interval.ms=300")
    m = None
    try:
        for t in ("rx-a", "rx-b", "unrelated"):
            create(s.addr, t, 2)
        m = Member(s.addr, "grx", "^rx-.*", "group.protocol=consumer")
        wait_for("rx-a and rx-b", lambda: m.tps == ["rx-a:0", "rx-a:1", "rx-b:0", "rx-b:1"])
        create(s.addr, "rx-c", 1)
        wait_for("the new matching topic", lambda: "rx-c:0" in m.tps)
        assert not any(tp.startswith("unrelated") for tp in m.tps)
    finally:
        if m is not None and m.proc.poll() is None:
            m.kill()
        s.stop()
