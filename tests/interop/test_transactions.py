"""Transactions with real clients: confluent-kafka (librdkafka) and kafka-python producers
and read_committed consumers, zombie fencing, timeouts, a consume-transform-produce loop
killed with SIGKILL, a broker killed mid-transaction, `strom produce --transactional-id`
and `strom txn`, and in a 3-node cluster the coordinator's broker killed mid-transaction."""
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KTopicPartition

from conftest import Server

HERE = os.path.dirname(__file__)


def create(addr, topic, partitions):
    a = AdminClient({"bootstrap.servers": addr})
    for f in a.create_topics([NewTopic(topic, partitions, 1)]).values():
        f.result()


def read(addr, topic, partitions, isolation, timeout=20):
    """Every value of `topic` as a consumer with `isolation` sees it, up to the end."""
    c = Consumer({"bootstrap.servers": addr, "group.id": "r-" + uuid.uuid4().hex,
                  "isolation.level": isolation, "enable.partition.eof": True,
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    out, eof, deadline = [], set(), time.time() + timeout
    while len(eof) < partitions and time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            if m.error().code() == -191:
                eof.add(m.partition())
            continue
        out.append(m.value().decode())
    c.close()
    assert len(eof) == partitions, f"{topic}: reached the end of {len(eof)}/{partitions}"
    return out


def kafka_python_read(addr, topic, partitions):
    c = KafkaConsumer(bootstrap_servers=addr, isolation_level="read_committed",
                      enable_auto_commit=False, consumer_timeout_ms=3000)
    tps = [KTopicPartition(topic, p) for p in range(partitions)]
    c.assign(tps)
    c.seek_to_beginning(*tps)
    out = [m.value.decode() for m in c]
    c.close()
    return out


def transactions(p, topic, plan, partitions=2, per_txn=10):
    """Runs one transaction per entry of `plan` (True commits, False aborts); the records are
    flushed to the broker before the end, so aborted ones are really in the log."""
    for i, commit in enumerate(plan):
        p.begin_transaction()
        for k in range(per_txn):
            p.produce(topic, key=str(k), value=f"t{i}-{k}", partition=k % partitions)
        assert p.flush(10) == 0
        if commit:
            p.commit_transaction(30)
        else:
            p.abort_transaction(30)


def test_commit_abort_commit_read_back_by_read_committed_and_read_uncommitted(server):
    create(server.addr, "tx", 2)
    p = Producer({"bootstrap.servers": server.addr, "transactional.id": "tx-a"})
    p.init_transactions(30)
    transactions(p, "tx", [True, False, True])
    committed = read(server.addr, "tx", 2, "read_committed")
    assert sorted(committed) == sorted(f"t{i}-{k}" for i in (0, 2) for k in range(10))
    everything = read(server.addr, "tx", 2, "read_uncommitted")
    assert sorted(everything) == sorted(f"t{i}-{k}" for i in range(3) for k in range(10))
    assert sorted(kafka_python_read(server.addr, "tx", 2)) == sorted(committed)


def test_kafka_python_transactional_producer(server):
    create(server.addr, "kp", 2)
    p = KafkaProducer(bootstrap_servers=server.addr, transactional_id="kp-1")
    p.init_transactions()
    for i, commit in enumerate([True, False, True]):
        p.begin_transaction()
        for k in range(6):
            p.send("kp", value=f"k{i}-{k}".encode(), partition=k % 2)
        p.flush()
        if commit:
            p.commit_transaction()
        else:
            p.abort_transaction()
    p.close()
    expected = sorted(f"k{i}-{k}" for i in (0, 2) for k in range(6))
    assert sorted(read(server.addr, "kp", 2, "read_committed")) == expected
    assert sorted(kafka_python_read(server.addr, "kp", 2)) == expected
    assert len(read(server.addr, "kp", 2, "read_uncommitted")) == 18


def test_an_open_transaction_holds_back_read_committed_consumers(server):
    create(server.addr, "lso", 1)
    p = Producer({"bootstrap.servers": server.addr, "transactional.id": "lso-1"})
    p.init_transactions(30)
    p.begin_transaction()
    p.produce("lso", value=b"pending", partition=0)
    assert p.flush(10) == 0
    plain = Producer({"bootstrap.servers": server.addr})
    plain.produce("lso", value=b"after", partition=0)
    assert plain.flush(10) == 0
    # The non-transactional record after the open transaction is not stable yet.
    assert read(server.addr, "lso", 1, "read_committed") == []
    assert read(server.addr, "lso", 1, "read_uncommitted") == ["pending", "after"]
    p.commit_transaction(30)
    assert read(server.addr, "lso", 1, "read_committed") == ["pending", "after"]


def test_a_second_producer_with_the_same_id_fences_the_first(server):
    create(server.addr, "zombie", 1)
    old = Producer({"bootstrap.servers": server.addr, "transactional.id": "z"})
    old.init_transactions(30)
    old.begin_transaction()
    old.produce("zombie", value=b"zombie", partition=0)
    assert old.flush(10) == 0
    new = Producer({"bootstrap.servers": server.addr, "transactional.id": "z"})
    new.init_transactions(30)  # aborts the zombie's open transaction
    new.begin_transaction()
    new.produce("zombie", value=b"successor", partition=0)
    new.commit_transaction(30)
    # The zombie's next batch is refused as fenced; when it then tries to end its
    # transaction the coordinator fences it, which librdkafka reports as fatal.
    with pytest.raises(KafkaException):
        old.produce("zombie", value=b"late", partition=0)
        old.flush(10)
        old.commit_transaction(10)
    with pytest.raises(KafkaException) as e:
        old.abort_transaction(10)
    assert e.value.args[0].fatal(), e.value.args[0]
    assert e.value.args[0].code() == KafkaError._FENCED, e.value.args[0]
    assert read(server.addr, "zombie", 1, "read_committed") == ["successor"]


def test_a_transaction_past_its_timeout_is_aborted_by_the_coordinator(tmp_path):
    s = Server(tmp_path / "d",
               "transaction.abort.timed.out.transaction.cleanup.interval.ms=200")
    try:
        create(s.addr, "slow", 1)
        p = Producer({"bootstrap.servers": s.addr, "transactional.id": "slow-1",
                      "transaction.timeout.ms": 1500})
        p.init_transactions(30)
        p.begin_transaction()
        p.produce("slow", value=b"abandoned", partition=0)
        assert p.flush(10) == 0
        time.sleep(3)
        # The coordinator aborted it: nothing visible, and the partition is stable again.
        other = Producer({"bootstrap.servers": s.addr, "transactional.id": "slow-2"})
        other.init_transactions(30)
        other.begin_transaction()
        other.produce("slow", value=b"later", partition=0)
        other.commit_transaction(30)
        assert read(s.addr, "slow", 1, "read_committed") == ["later"]
        with pytest.raises(KafkaException):
            p.commit_transaction(10)
    finally:
        s.stop()


def test_consume_transform_produce_killed_repeatedly_outputs_each_input_exactly_once(tmp_path):
    s = Server(tmp_path / "d")
    try:
        create(s.addr, "in", 2)
        create(s.addr, "out", 2)
        n = 600
        feed = Producer({"bootstrap.servers": s.addr, "enable.idempotence": True})
        for i in range(n):
            feed.produce("in", key=str(i), value=f"v{i}", partition=i % 2)
        assert feed.flush(20) == 0

        def start():
            return subprocess.Popen([sys.executable, os.path.join(HERE, "txn_processor.py"), s.addr,
                                     "ctp", "in", "out", "ctp-1"], stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, text=True)
        kills = 0
        while kills < 4:
            proc = start()
            done = 0
            # Let it commit a few transactions, then kill it mid-stream.
            while done < 3:
                line = proc.stdout.readline()
                if not line:
                    break
                done += 1
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
        proc = start()
        deadline = time.time() + 60
        while time.time() < deadline:
            out = read(s.addr, "out", 2, "read_committed")
            if len(out) >= n:
                break
            time.sleep(1)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        out = read(s.addr, "out", 2, "read_committed")
        assert sorted(out) == sorted(f"v{i}-out" for i in range(n)), \
            f"{len(out)} outputs, {len(set(out))} distinct, for {n} inputs"
        # The aborted attempts of the killed processors are in the log all the same.
        assert len(read(s.addr, "out", 2, "read_uncommitted")) >= n
    finally:
        s.stop()


def test_a_broker_killed_mid_transaction_leaves_nothing_hanging(tmp_path):
    s = Server(tmp_path / "d")
    create(s.addr, "crash", 2)
    committed = Producer({"bootstrap.servers": s.addr, "transactional.id": "c-done"})
    committed.init_transactions(30)
    transactions(committed, "crash", [True], per_txn=8)
    open_txn = Producer({"bootstrap.servers": s.addr, "transactional.id": "c-open"})
    open_txn.init_transactions(30)
    open_txn.begin_transaction()
    for k in range(8):
        open_txn.produce("crash", value=f"open-{k}", partition=k % 2)
    assert open_txn.flush(10) == 0
    s.kill()
    s = Server(tmp_path / "d")
    try:
        # The restarted broker still has the open transaction: a new producer with its id
        # aborts it, and read_committed consumers then see the committed one only.
        successor = Producer({"bootstrap.servers": s.addr, "transactional.id": "c-open"})
        successor.init_transactions(60)
        transactions(successor, "crash", [True], per_txn=4)
        out = read(s.addr, "crash", 2, "read_committed")
        assert sorted(out) == sorted([f"t0-{k}" for k in range(8)] + [f"t0-{k}" for k in range(4)])
        assert not any(v.startswith("open-") for v in out)
    finally:
        s.stop()


def strom(addr, *args, **kwargs):
    """`strom` against the brokers at `addr` (test_cli's runner)."""
    import types
    import test_cli
    return test_cli.strom(types.SimpleNamespace(addr=addr), *args, **kwargs)


def test_strom_produce_in_a_transaction_and_the_txn_tools(server):
    import json
    create(server.addr, "cli-tx", 1)
    strom(server.addr, "produce", "cli-tx", "--transactional-id", "cli-1", stdin="a\nb\nc\n")
    assert read(server.addr, "cli-tx", 1, "read_committed") == ["a", "b", "c"]
    listed = json.loads(strom(server.addr, "txn", "list", "--output", "json").stdout)
    assert {"transactional_id": "cli-1", "producer_id": listed[0]["producer_id"],
            "state": "CompleteCommit"} in listed
    # A transaction left open: described as Ongoing with its partition, and its first
    # offset shown by the partition's producers.
    p = Producer({"bootstrap.servers": server.addr, "transactional.id": "cli-open"})
    p.init_transactions(30)
    p.begin_transaction()
    p.produce("cli-tx", value=b"hanging", partition=0)
    assert p.flush(10) == 0
    d = json.loads(strom(server.addr, "txn", "describe", "cli-open", "--output", "json").stdout)[0]
    assert d["state"] == "Ongoing" and d["partitions"] == ["cli-tx-0"] and d["coordinator"] == 1
    ongoing = json.loads(strom(server.addr, "txn", "list", "--state", "Ongoing", "--output",
                               "json").stdout)
    assert [t["transactional_id"] for t in ongoing] == ["cli-open"]
    # ListTransactions v2: ids the whole pattern matches.
    matching = json.loads(strom(server.addr, "txn", "list", "--pattern", "cli-o.*", "--output",
                                "json").stdout)
    assert [t["transactional_id"] for t in matching] == ["cli-open"]
    bad_pattern = strom(server.addr, "txn", "list", "--pattern", "cli-(", check=False)
    assert bad_pattern.returncode == 1 and "INVALID_REGULAR_EXPRESSION" in bad_pattern.stderr
    producers = json.loads(strom(server.addr, "txn", "producers", "cli-tx", "0", "--output",
                                 "json").stdout)
    start = [x["current_txn_start_offset"] for x in producers if x["current_txn_start_offset"] >= 0]
    assert start == [4]  # after a, b, c and their COMMIT marker
    # The open transaction holds read_committed consumers back; aborting it by hand frees them.
    plain = Producer({"bootstrap.servers": server.addr})
    plain.produce("cli-tx", value=b"d", partition=0)
    assert plain.flush(10) == 0
    assert read(server.addr, "cli-tx", 1, "read_committed") == ["a", "b", "c"]
    r = strom(server.addr, "txn", "abort", "--topic", "cli-tx", "--partition", "0",
              "--start-offset", "4")
    assert "aborted" in r.stdout
    assert read(server.addr, "cli-tx", 1, "read_committed") == ["a", "b", "c", "d"]
    bad = strom(server.addr, "txn", "abort", "--topic", "cli-tx", "--partition", "0",
                "--start-offset", "4", check=False)
    assert bad.returncode == 1 and "no open transaction" in bad.stderr


def test_strom_perf_produce_in_transactions(server):
    import json
    create(server.addr, "perf-tx", 2)
    out = strom(server.addr, "perf", "produce", "perf-tx", "--records", "2500", "--record-size",
                "16", "--transactional-id", "perf-1", "--transaction-records", "1000").stdout
    assert out.startswith("2500 records sent,") and "3 transactions committed" in out
    assert len(read(server.addr, "perf-tx", 2, "read_committed")) == 2500
    d = json.loads(strom(server.addr, "txn", "describe", "perf-1", "--output", "json").stdout)[0]
    # Transaction version 2: each of the three commits bumped the epoch.
    assert (d["state"], d["producer_epoch"]) == ("CompleteCommit", 3)


@pytest.fixture
def cluster_helpers():
    import test_cluster
    return test_cluster


def cluster_with_topic(tc, tmp_path, topic, partitions):
    """A 3-node cluster with `topic` replicated 3 times (min.insync.replicas 2)."""
    nodes = tc.combined_cluster(tmp_path)
    boot = ",".join(n.addr for n in nodes)
    a = AdminClient({"bootstrap.servers": boot})
    a.create_topics([NewTopic(topic, partitions, 3, config={"min.insync.replicas": "2"})],
                    operation_timeout=10)[topic].result(15)
    return nodes, boot, a


def test_in_a_cluster_the_coordinators_broker_killed_mid_transaction(tmp_path, cluster_helpers):
    import json
    tc = cluster_helpers

    @tc.with_node_logs
    def run():
        nodes, boot, _ = cluster_with_topic(tc, tmp_path, "ctx", 2)
        p = Producer({"bootstrap.servers": boot, "transactional.id": "cluster-1",
                      "transaction.timeout.ms": 60000})
        p.init_transactions(60)
        transactions(p, "ctx", [True], per_txn=10)
        p.begin_transaction()
        for k in range(10):
            p.produce("ctx", value=f"t1-{k}", partition=k % 2)
        assert p.flush(15) == 0
        d = json.loads(strom(boot, "txn", "describe", "cluster-1", "--output", "json").stdout)[0]
        assert d["state"] == "Ongoing"
        victim = next(n for n in nodes if n.id == d["coordinator"])
        victim.kill()
        # The coordinator's partition moves to a replica, which replays the transaction log
        # and finishes the commit.
        p.commit_transaction(60)
        live = [n for n in nodes if n is not victim]
        live_boot = ",".join(n.addr for n in live)
        out = read(live_boot, "ctx", 2, "read_committed", timeout=30)
        assert sorted(out) == sorted(f"t{i}-{k}" for i in (0, 1) for k in range(10))
        d = json.loads(strom(live_boot, "txn", "describe", "cluster-1", "--output",
                             "json").stdout)[0]
        assert d["state"] == "CompleteCommit" and d["coordinator"] != victim.id
        # The producer goes on with the new coordinator, and the killed node comes back.
        victim.start()
        for commit in (False, True):
            p.begin_transaction()
            for k in range(4):
                p.produce("ctx", value=f"after-{commit}-{k}", partition=k % 2)
            assert p.flush(15) == 0
            p.commit_transaction(60) if commit else p.abort_transaction(60)
        out = read(boot, "ctx", 2, "read_committed", timeout=30)
        assert sorted(out) == sorted([f"t{i}-{k}" for i in (0, 1) for k in range(10)] +
                                     [f"after-True-{k}" for k in range(4)])
    run()


def test_in_a_cluster_the_native_producer_at_transaction_version_2(tmp_path, cluster_helpers):
    """`strom produce --transactional-id` speaks KIP-890 part 2: every partition leader that
    is not the coordinator adds its partition by AddPartitionsToTxn v5 to it, the markers
    carry the bumped epoch, and read_committed clients (librdkafka) see each run whole."""
    import json
    tc = cluster_helpers

    @tc.with_node_logs
    def run():
        _, boot, a = cluster_with_topic(tc, tmp_path, "ctv2", 3)
        leaders = {p.leader for p in a.list_topics("ctv2", timeout=10).topics["ctv2"]
                   .partitions.values()}
        assert len(leaders) > 1, "the partitions' leaders are spread over the brokers"
        lines = "".join(f"k{i}:v{i}\n" for i in range(60))
        for run_no in range(2):
            strom(boot, "produce", "ctv2", "--transactional-id", "native-tv2",
                  "--key-separator", ":", stdin=lines)
            d = json.loads(strom(boot, "txn", "describe", "native-tv2", "--output",
                                 "json").stdout)[0]
            assert d["state"] == "CompleteCommit", d
            # InitProducerId bumps once per run, and the commit once more (version 2).
            assert d["producer_epoch"] == 2 * run_no + 1, d
        out = read(boot, "ctv2", 3, "read_committed", timeout=30)
        assert sorted(out) == sorted(f"v{i}" for i in range(60) for _ in range(2))
        # Every partition got records and its marker at the bumped epoch.
        for p in range(3):
            producers = json.loads(strom(boot, "txn", "producers", "ctv2", str(p), "--output",
                                         "json").stdout)
            assert [x["producer_epoch"] for x in producers] == [3], producers
            assert all(x["current_txn_start_offset"] == -1 for x in producers)
    run()
