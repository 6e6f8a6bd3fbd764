"""The PostgreSQL connectors of Strom Connect against a real PostgreSQL server (started by the
test, see pg.py) and a real `strom server`, with records produced by confluent-kafka in
Kafka Connect's JsonConverter envelope."""
import json
import threading
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from pg import PostgreSQL
from test_connect import Worker, broker, props, wait_for, worker_props  # noqa: F401 (fixture)

import pytest

KEY_SCHEMA = {"type": "int64", "optional": False}
VALUE_SCHEMA = {"type": "struct", "optional": True, "fields": [
    {"field": "name", "type": "string", "optional": False},
    {"field": "n", "type": "int64", "optional": False},
]}


def envelope(schema, payload):
    return json.dumps({"schema": schema, "payload": payload})


@pytest.fixture
def postgres():
    p = PostgreSQL()
    yield p
    p.stop()


def sink_config(tmp_path, pg, **extra):
    return props(tmp_path / "pg-sink.properties", **{
        "name": "pg-sink",
        "connector.class": "io.confluent.connect.jdbc.JdbcSinkConnector",
        "tasks.max": "2",
        "topics": "accounts",
        "connection.url": pg.url,
        "connection.user": "postgres",
        "insert.mode": "upsert",
        "pk.mode": "record_key",
        "pk.fields": "id",
        "auto.create": "true",
        "delete.enabled": "true",
        **extra,
    })


def test_an_upserting_sink_killed_mid_stream_ends_with_the_latest_value_per_key(tmp_path, broker, postgres):
    keys, total = 10_000, 100_000
    admin = AdminClient({"bootstrap.servers": broker.addr})
    admin.create_topics([NewTopic("accounts", 3, 1)])["accounts"].result(timeout=30)
    w = Worker(worker_props(tmp_path, broker, **{"offset.flush.interval.ms": "500"}),
               sink_config(tmp_path, postgres))
    w.running("pg-sink", tasks=2)

    # Every key is written ten times, and every hundredth key is then deleted by a tombstone.
    def produce():
        p = Producer({"bootstrap.servers": broker.addr, "linger.ms": 5, "enable.idempotence": True})
        for i in range(total):
            k = i % keys
            p.produce("accounts", key=envelope(KEY_SCHEMA, k),
                      value=envelope(VALUE_SCHEMA, {"name": f"account {k}", "n": i}))
            if i % 1000 == 0:
                p.flush()
                time.sleep(0.05)  # a stream, not one burst: the kill lands in it
        for k in range(0, keys, 100):
            p.produce("accounts", key=envelope(KEY_SCHEMA, k), value=None)
        p.flush()

    producing = threading.Thread(target=produce)
    producing.start()
    # Killed while records are still arriving, with rows in the table and offsets committed
    # behind them.
    wait_for("rows in the table", lambda: postgres.sql(
        "select count(*) from information_schema.tables where table_name = 'accounts'") == [["1"]]
        and int(postgres.sql("select count(*) from accounts")[0][0]) >= 1000)
    assert producing.is_alive(), "the kill comes mid-stream"
    w.kill()
    producing.join()
    w.start()

    expected = {k: 9 * keys + k for k in range(keys) if k % 100 != 0}

    def table():
        return {int(r[0]): (r[1], int(r[2])) for r in postgres.sql("select id, name, n from accounts")}

    wait_for("the table to hold the latest value per key",
             lambda: {k: n for k, (_, n) in table().items()} == expected, timeout=120)
    got = table()
    assert all(name == f"account {k}" for k, (name, _) in got.items())
    # The columns were created from the record schema, the key as the primary key.
    columns = dict(map(tuple, postgres.sql(
        "select column_name, data_type from information_schema.columns where table_name = 'accounts'")))
    assert columns == {"id": "bigint", "name": "text", "n": "bigint"}
    assert postgres.sql("select a.attname from pg_index i join pg_attribute a on a.attrelid = i.indrelid "
                        "and a.attnum = any(i.indkey) where i.indrelid = 'accounts'::regclass "
                        "and i.indisprimary") == [["id"]]
    # And the consumer offsets reached the end of every partition.
    end = total + keys // 100
    wait_for("the sink's committed offsets at the end", lambda: sum(
        o["offset"]["kafka_offset"] for o in w.call("GET", "/connectors/pg-sink/offsets")[1]["offsets"]) == end)
    w.stop()


def test_a_bad_sink_config_is_refused_with_kafkas_validation_message(tmp_path, broker, postgres):
    w = Worker(worker_props(tmp_path, broker))
    cfg = {"connector.class": "PostgresSink", "topics": "t", "connection.url": postgres.url,
           "delete.enabled": "true", "pk.mode": "record_value", "pk.fields": "id"}
    code, body = w.call("POST", "/connectors", {"name": "bad", "config": cfg})
    assert code == 400 and body["error_code"] == 400
    assert "pk.mode=record_key" in body["message"]
    # Kafka's validation JSON puts the message under the setting at fault.
    code, v = w.call("PUT", "/connector-plugins/PostgresSink/config/validate", {**cfg, "name": "bad"})
    assert code == 200 and v["error_count"] >= 1
    errors = {c["value"]["name"]: c["value"]["errors"] for c in v["configs"]}
    assert any("record_key" in e for e in errors["delete.enabled"])
    w.stop()
