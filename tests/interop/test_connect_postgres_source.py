"""The PostgreSQL source connectors of Strom Connect (query mode and change data capture)
against a real PostgreSQL server (pg.py) and a real `strom server`, run by the real
`strom connect standalone` binary: rows are inserted, updated and deleted while the worker
runs, the worker is SIGKILLed mid-stream and restarted, and the topics are read with
confluent-kafka.

What is asserted about delivery: source offsets are stored every
`offset.flush.interval.ms`, so a SIGKILL replays the records produced after the last
stored offset (at-least-once, as Kafka Connect). Each topic must therefore be the expected
sequence of changes with at most one contiguous stretch repeated where the worker
restarted: `expected[:j] + expected[i:]` with `i <= j`. Nothing may be missing, out of
order, or repeated anywhere else."""
import json
import threading
import time

from confluent_kafka import Consumer, TopicPartition

from test_connect import Worker, broker, props, wait_for, worker_props  # noqa: F401 (fixture)
from test_connect_postgres import postgres  # noqa: F401 (fixture)


def high_watermark(broker, topic):
    c = Consumer({"bootstrap.servers": broker.addr, "group.id": "watermarks"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=5)[1]
    except Exception:  # the topic is not there yet
        return 0
    finally:
        c.close()


def read_topic(broker, topic):
    """The records of the topic's one partition up to its current end, as (key, value)
    parsed from JSON."""
    end = high_watermark(broker, topic)
    c = Consumer({"bootstrap.servers": broker.addr, "group.id": f"read-{time.time()}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    got = []
    deadline = time.time() + 30
    while len(got) < end and time.time() < deadline:
        for m in c.consume(500, 1):
            if not m.error() and m.offset() < end:
                got.append((json.loads(m.key()) if m.key() else None,
                            json.loads(m.value()) if m.value() else None))
    c.close()
    assert len(got) == end, f"read {len(got)} of {end} records of {topic}"
    return got


def replay_split(got, expected):
    """The (i, j) for which got == expected[:j] + expected[i:] with i <= j, or None."""
    n = len(got) - len(expected)
    if n < 0:
        return None
    for j in range(len(expected) + 1):
        i = j - n
        if i >= 0 and got == expected[:j] + expected[i:]:
            return i, j
    return None


def replayed_tail_then_new(as_read):
    """Whether `as_read` is A + R + N: A and N without repeats, in timestamp order; R the
    replay, a part of A's records in A's order; N none of A's. (A query source reads
    versions; a row updated since A was read has its old version gone from the replay.)"""
    seen, k = set(), len(as_read)
    for x, v in enumerate(as_read):
        if v in seen:
            k = x
            break
        seen.add(v)
    a, b = as_read[:k], as_read[k:]
    r_len = next((x for x, v in enumerate(b) if v not in seen), len(b))
    r, n = b[:r_len], b[r_len:]
    in_a = {v: x for x, v in enumerate(a)}
    positions = [in_a[v] for v in r]
    return (positions == sorted(set(positions))
            and len(set(n)) == len(n) and not set(n) & seen
            and all([ts for ts, _, _ in part] == sorted(ts for ts, _, _ in part) for part in (a, n)))


def test_a_query_source_killed_mid_stream_delivers_the_latest_version_of_every_row(tmp_path, broker, postgres):
    postgres.sql("create table accounts (id serial primary key, name text not null, "
                 "updated timestamptz not null default clock_timestamp())")
    connector = props(tmp_path / "pg-source.properties", **{
        "name": "pg-source",
        "connector.class": "io.confluent.connect.jdbc.JdbcSourceConnector",
        "connection.url": postgres.url,
        "connection.user": "postgres",
        "mode": "timestamp+incrementing",
        "incrementing.column.name": "id",
        "timestamp.column.name": "updated",
        "table.whitelist": "accounts",
        "topic.prefix": "pg-",
        "poll.interval.ms": "100",
        "batch.max.rows": "20",
    })
    w = Worker(worker_props(tmp_path, broker), connector)
    w.running("pg-source")

    # One writer, a transaction per round: five inserts and an update of an older row.
    def write():
        for r in range(60):
            postgres.sql("insert into accounts (name) select 'new' from generate_series(1, 5); "
                         f"update accounts set name = 'round {r}', updated = clock_timestamp() "
                         f"where id = {r * 2 + 1}")
            time.sleep(0.03)

    writing = threading.Thread(target=write)
    writing.start()
    wait_for("rows in the topic", lambda: high_watermark(broker, "pg-accounts") >= 50)
    assert writing.is_alive(), "the kill comes mid-stream"
    w.kill()
    writing.join()
    w.start()

    # Every row version the table ends with is in the topic, after the restart too.
    final = {(int(i), n, int(us)) for i, n, us in postgres.sql(
        "select id, name, ((extract(epoch from updated) * 1000000)::int8) from accounts")}
    assert len(final) == 300

    def versions():
        return [(v["payload"]["id"], v["payload"]["name"], v["payload"]["updated"])
                for _, v in read_topic(broker, "pg-accounts")]

    wait_for("the latest version of every row", lambda: {(i, n) for i, n, _ in versions()}
             >= {(i, n) for i, n, _ in final}, timeout=40)
    got = versions()
    assert all(k is None for k, _ in read_topic(broker, "pg-accounts")), "query records have no key"
    # Read in the query's (updated, id) order, each version once, except that the restart
    # reads again from the stored offset: those of the versions read before the kill that
    # the table still has, in the same order, then the new ones.
    as_read = [(ts, i, n) for i, n, ts in got]
    assert replayed_tail_then_new(as_read), "records lost, reordered or repeated beyond a replay"
    ordered = list(dict.fromkeys(as_read))
    # Every version in the topic is one the table had: ids only from the table, and the
    # rows' latest versions with their timestamps (milliseconds) among them.
    assert {i for _, i, _ in ordered} == {i for i, _, _ in final}
    assert {(i, n, us // 1000) for i, n, us in final} <= {(i, n, ts) for ts, i, n in ordered}
    w.stop()


def test_a_cdc_source_killed_mid_stream_delivers_every_change_in_order(tmp_path, broker, postgres):
    postgres.sql("create table customers (id int primary key, name text, n int)")
    postgres.sql("create table orders (id int primary key, customer int, total int)")
    connector = props(tmp_path / "pg-cdc.properties", **{
        "name": "pg-cdc",
        "connector.class": "PostgresCdcSource",
        "connection.url": postgres.url,
        "connection.user": "postgres",
        "table.include.list": "customers,orders",
        "poll.interval.ms": "100",
        "max.batch.size": "50",
    })
    w = Worker(worker_props(tmp_path, broker), connector)
    w.running("pg-cdc")

    # What the topics must hold, per table, in commit order: (op, key, after).
    expected = {"customers": [], "orders": []}

    def change(table, op, key, after=None):
        expected[table].append((op, key, after))
        if op == "d":
            expected[table].append(("tombstone", key, None))

    def write():
        for r in range(40):
            base = r * 3
            # A transaction over both tables: inserts, an update, and a delete.
            postgres.sql(f"begin; insert into customers values ({base}, 'c{base}', 0), "
                         f"({base + 1}, 'c{base + 1}', 0), ({base + 2}, 'c{base + 2}', 0); "
                         f"insert into orders values ({r}, {base}, {r * 10}); "
                         f"update customers set n = {r} where id = {base}; "
                         f"delete from customers where id = {base + 1}; commit")
            for i in range(3):
                change("customers", "c", base + i, {"id": base + i, "name": f"c{base + i}", "n": 0})
            change("orders", "c", r, {"id": r, "customer": base, "total": r * 10})
            change("customers", "u", base, {"id": base, "name": f"c{base}", "n": r})
            change("customers", "d", base + 1)
            if r % 4 == 3:
                postgres.sql(f"delete from orders where id = {r - 1}")
                change("orders", "d", r - 1)
            time.sleep(0.05)

    writing = threading.Thread(target=write)
    writing.start()
    wait_for("changes in the topic", lambda: high_watermark(broker, "strom.public.customers") >= 30)
    assert writing.is_alive(), "the kill comes mid-stream"
    w.kill()
    writing.join()
    w.start()

    def changes(table):
        out = []
        for k, v in read_topic(broker, f"strom.public.{table}"):
            key = k["payload"]["id"]
            if v is None:
                out.append(("tombstone", key, None))
            else:
                p = v["payload"]
                out.append((p["op"], key, p["after"]))
        return out

    for table in ("customers", "orders"):
        want = expected[table]
        wait_for(f"every change of {table}", lambda: high_watermark(
            broker, f"strom.public.{table}") >= len(want) and changes(table)[-1] == want[-1], timeout=40)
        got = changes(table)
        assert replay_split(got, want) is not None, (
            f"{table}: changes lost, reordered or repeated beyond a replayed stretch "
            f"({len(got)} records for {len(want)} changes)")
    # The envelope is Debezium's: before, after, source, op, ts_ms.
    _, first = read_topic(broker, "strom.public.customers")[0]
    assert set(first["payload"]) == {"before", "after", "source", "op", "ts_ms"}
    assert first["payload"]["source"]["table"] == "customers"
    assert first["schema"]["name"] == "strom.public.customers.Envelope"
    # Once the offsets are stored the slot is advanced: it holds back no more than the tail.
    wait_for("the slot advanced to the end", lambda: postgres.sql(
        "select pg_current_wal_lsn() - confirmed_flush_lsn < 1000000 from pg_replication_slots "
        "where slot_name = 'strom'") == [["t"]])
    w.stop()
