"""confluent-kafka and kafka-python (from PyPI) against the real broker."""
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.admin import AdminClient, NewTopic, NewPartitions, ConfigResource, ConfigEntry, AlterConfigOpType
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KTopicPartition


def consume_all(addr, topic, partitions=1, expected=None, timeout=20):
    c = Consumer({"bootstrap.servers": addr, "group.id": "unused-" + uuid.uuid4().hex,
                  "enable.auto.commit": False, "enable.partition.eof": True})
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    out, eof, deadline = [], set(), time.time() + timeout
    while time.time() < deadline and len(eof) < partitions:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            if m.error().code() == -191:  # _PARTITION_EOF
                eof.add(m.partition())
                if expected is not None and len(out) < expected:
                    eof.discard(m.partition())
            continue
        out.append(m)
    c.close()
    return out


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_confluent_kafka_round_trip_with_keys_headers_and_nulls(server, codec):
    topic = f"ck-{codec}"
    p = Producer({"bootstrap.servers": server.addr, "compression.type": codec, "acks": "all",
                  "linger.ms": 5})
    for i in range(200):
        p.produce(topic, key=f"k{i}".encode(), value=None if i % 50 == 7 else f"v{i}".encode() * 3,
                  headers=[("h", b"1"), ("h", b"2")])
    assert p.flush(20) == 0
    msgs = consume_all(server.addr, topic, expected=200)
    assert len(msgs) == 200
    assert [m.offset() for m in msgs] == list(range(200))
    assert msgs[7].value() is None
    assert msgs[8].value() == b"v8v8v8"
    assert msgs[8].headers() == [("h", b"1"), ("h", b"2")]


def test_messages_near_message_max_bytes_and_too_large(tmp_path):
    from conftest import Server
    s = Server(tmp_path / "d", "message.max.bytes=200000")
    try:
        p = Producer({"bootstrap.servers": s.addr, "message.max.bytes": 1000000})
        delivered = []
        # Separate requests: a batch over the limit is refused whole, as Kafka does.
        p.produce("big", value=b"x" * 190000, on_delivery=lambda e, m: delivered.append(e))
        p.flush(20)
        p.produce("big", value=b"y" * 400000, on_delivery=lambda e, m: delivered.append(e))
        p.flush(20)
        assert delivered[0] is None
        assert delivered[1] is not None and "MSG_SIZE_TOO_LARGE" in str(delivered[1])
        msgs = consume_all(s.addr, "big", expected=1)
        assert len(msgs) == 1 and len(msgs[0].value()) == 190000
    finally:
        s.stop()


def test_kafka_python_produces_and_consumes_across_100_partitions(server):
    admin = AdminClient({"bootstrap.servers": server.addr})
    admin.create_topics([NewTopic("wide", num_partitions=100, replication_factor=1)])["wide"].result(10)
    # kafka-python 3's default producer is idempotent: InitProducerId, then sequenced batches.
    prod = KafkaProducer(bootstrap_servers=server.addr, acks="all", compression_type="gzip")
    futures = [prod.send("wide", key=f"key-{i}".encode(), value=f"value-{i}".encode()) for i in range(1000)]
    prod.flush()
    parts = {f.get(timeout=10).partition for f in futures}
    assert len(parts) > 50
    cons = KafkaConsumer(bootstrap_servers=server.addr, group_id=None, auto_offset_reset="earliest",
                         consumer_timeout_ms=5000)
    cons.assign([KTopicPartition("wide", p) for p in range(100)])
    cons.seek_to_beginning()
    got = {(m.key, m.value) for m in cons}
    assert len(got) == 1000
    cons.close()


def test_admin_client_topics_configs_partitions_records_and_cluster(server):
    a = AdminClient({"bootstrap.servers": server.addr})
    fs = a.create_topics([NewTopic("adm", num_partitions=2, replication_factor=1,
                                   config={"retention.ms": "3600000", "cleanup.policy": "delete"})])
    fs["adm"].result(10)
    with pytest.raises(Exception, match="TOPIC_ALREADY_EXISTS"):
        a.create_topics([NewTopic("adm", num_partitions=1, replication_factor=1)])["adm"].result(10)
    with pytest.raises(Exception, match="INVALID_REPLICATION_FACTOR"):
        a.create_topics([NewTopic("rf3", num_partitions=1, replication_factor=3)])["rf3"].result(10)
    with pytest.raises(Exception, match="INVALID_CONFIG"):
        a.create_topics([NewTopic("badcfg", num_partitions=1, replication_factor=1,
                                  config={"retention.ms": "soon"})])["badcfg"].result(10)
    with pytest.raises(Exception, match="TOPIC_EXCEPTION"):
        a.create_topics([NewTopic("bad name!", num_partitions=1, replication_factor=1)])["bad name!"].result(10)
    assert len(a.list_topics(timeout=10).topics["adm"].partitions) == 2

    a.create_partitions([NewPartitions("adm", 4)])["adm"].result(10)
    assert len(a.list_topics(timeout=10).topics["adm"].partitions) == 4

    res = ConfigResource(ConfigResource.Type.TOPIC, "adm")
    configs = a.describe_configs([res])[res].result(10)
    assert configs["retention.ms"].value == "3600000"
    assert configs["retention.ms"].source == 1  # DYNAMIC_TOPIC_CONFIG
    assert configs["segment.bytes"].source == 5  # DEFAULT_CONFIG
    # Synonyms, most specific first: the topic's override, then the broker default it hides.
    syn = configs["retention.ms"].synonyms
    assert list(syn)[0] == "retention.ms" and syn["retention.ms"].source == 1
    assert syn["log.retention.ms"].value == str(7 * 24 * 3600 * 1000) and syn["log.retention.ms"].source == 5
    a.incremental_alter_configs([ConfigResource(ConfigResource.Type.TOPIC, "adm", incremental_configs=[
        ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)])])[res].result(10)
    assert a.describe_configs([res])[res].result(10)["retention.ms"].value == "1000"

    p = Producer({"bootstrap.servers": server.addr})
    for i in range(10):
        p.produce("adm", value=b"x", partition=0)
    p.flush(10)
    low = a.delete_records([TopicPartition("adm", 0, 6)])
    assert list(low.values())[0].result(10).low_watermark == 6
    assert len(consume_all(server.addr, "adm", expected=4)) == 4

    cluster = a.describe_cluster().result(10)
    assert len(cluster.nodes) == 1 and cluster.controller.id == 1 and len(cluster.cluster_id) == 22

    a.delete_topics(["adm"])["adm"].result(10)
    assert "adm" not in a.list_topics(timeout=10).topics


def test_acknowledged_records_survive_kill_9(tmp_path):
    from conftest import Server
    s = Server(tmp_path / "d")
    p = Producer({"bootstrap.servers": s.addr, "acks": "all"})
    acked = []
    for i in range(2000):
        p.produce("k9", key=str(i).encode(), value=b"v" * 100,
                  on_delivery=lambda e, m: acked.append(int(m.key())) if e is None else None)
        if i % 100 == 0:
            p.poll(0)
    p.flush(20)
    s.kill()
    s = Server(tmp_path / "d")
    try:
        keys = {int(m.key()) for m in consume_all(s.addr, "k9", expected=len(acked))}
        assert set(acked) <= keys and len(acked) == 2000
    finally:
        s.stop()


def test_idempotent_producer_loses_responses_and_a_broker_without_duplicates(tmp_path):
    """librdkafka's idempotent producer sends through a relay that drops responses to requests
    the broker has already written (then closes the connection), and the broker is also killed
    with SIGKILL and restarted mid-stream. Every retry of a batch already in the log must be
    recognised, from memory or from the log after the restart: the topic holds every record
    exactly once, in order."""
    from conftest import CuttingProxy, Server
    proxy = CuttingProxy(cut_every=10)
    adv = f"advertised.listeners=PLAINTEXT://127.0.0.1:{proxy.port}"
    s = Server(tmp_path / "d", adv)
    port = s.addr.rsplit(":", 1)[1]
    proxy.upstream = ("127.0.0.1", int(port))
    p = Producer({"bootstrap.servers": f"127.0.0.1:{proxy.port}", "enable.idempotence": True,
                  "linger.ms": 2, "batch.size": 2000, "message.timeout.ms": 60000,
                  "retry.backoff.ms": 20,
                  "reconnect.backoff.ms": 10, "reconnect.backoff.max.ms": 100})
    acked, errors = [], []

    def on_delivery(err, msg):
        (errors if err else acked).append(err or int(msg.key()))

    n = 4000
    try:
        for i in range(n):
            p.produce("idem", key=str(i).encode(), value=b"v" * 200, on_delivery=on_delivery)
            if i % 20 == 0:
                p.poll(0.005)
            if i == n // 2:
                s.kill()
                s = Server(tmp_path / "d", adv, f"listeners=PLAINTEXT://127.0.0.1:{port}")
        assert p.flush(60) == 0
        assert errors == [] and len(acked) == n
        assert proxy.cuts >= 5, "the relay lost responses"
        proxy.cut_every = 0
        keys = [int(m.key()) for m in consume_all(s.addr, "idem", expected=n, timeout=30)]
        assert keys == list(range(n))
    finally:
        s.stop()


def test_confluent_kafka_learns_which_records_a_compacted_topic_refused(server):
    """KIP-467: keyless records in one batch to a compacted topic are each named in the
    produce response, so librdkafka fails those with INVALID_RECORD and the batch's others
    with _INVALID_DIFFERENT_RECORD (instead of failing all ten as the same error)."""
    from confluent_kafka import KafkaError
    topic = "ck-compacted-" + uuid.uuid4().hex[:8]
    admin = AdminClient({"bootstrap.servers": server.addr})
    admin.create_topics([NewTopic(topic, 1, 1, config={"cleanup.policy": "compact"})])[topic].result(10)
    p = Producer({"bootstrap.servers": server.addr, "linger.ms": 200, "batch.num.messages": 100})
    results = {}

    def report(err, msg):
        results[msg.value().decode()] = err.code() if err else None

    for i in range(10):
        p.produce(topic, key=None if i % 4 == 0 else f"k{i}".encode(), value=f"v{i}".encode(),
                  partition=0, on_delivery=report)
    assert p.flush(20) == 0
    refused = sorted(v for v, code in results.items() if code == KafkaError.INVALID_RECORD)
    others = {code for v, code in results.items() if v not in refused}
    assert refused == ["v0", "v4", "v8"]
    assert others == {KafkaError._INVALID_DIFFERENT_RECORD}
