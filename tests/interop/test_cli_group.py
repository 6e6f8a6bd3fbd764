"""`strom group list|describe|reset-offsets|delete` against groups that real clients
(confluent-kafka, classic and KIP-848) form, checked through confluent-kafka's own view of
the committed offsets."""
import json
import time

from confluent_kafka import Consumer, Producer, TopicPartition

from conftest import Server
from test_cli import strom


def produce(addr, topic, n, partition=0, ts0=None):
    p = Producer({"bootstrap.servers": addr})
    for i in range(n):
        kw = {"timestamp": ts0 + i * 1000} if ts0 is not None else {}
        p.produce(topic, value=f"v{i}".encode(), partition=partition, **kw)
    assert p.flush(10) == 0


def wait_for(what, cond, timeout=60, tick=None):
    deadline = time.time() + timeout
    while not cond():
        assert time.time() < deadline, what
        if tick:
            tick()
        else:
            time.sleep(0.1)


def committed(addr, group, topic, partitions):
    c = Consumer({"bootstrap.servers": addr, "group.id": group})
    got = c.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
    c.close()
    return [tp.offset for tp in got]


def test_describe_lag_reset_and_delete_a_classic_group(tmp_path):
    s = Server(tmp_path / "d", "group.initial.rebalance.delay.ms=0")
    try:
        strom(s, "topic", "create", "gt", "-p", "2")
        ts0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z; one record per second after it
        produce(s.addr, "gt", 100, partition=0, ts0=ts0)
        produce(s.addr, "gt", 40, partition=1)
        c = Consumer({"bootstrap.servers": s.addr, "group.id": "billing", "client.id": "biller",
                      "auto.offset.reset": "earliest", "enable.auto.commit": False})
        c.subscribe(["gt"])
        seen = []

        def poll():
            m = c.poll(0.1)
            if m is not None and not m.error():
                seen.append(m)

        wait_for("140 records", lambda: len(seen) >= 140, tick=poll)
        c.commit(offsets=[TopicPartition("gt", 0, 60), TopicPartition("gt", 1, 40)],
                 asynchronous=False)

        listed = json.loads(strom(s, "group", "list", "--output", "json").stdout)
        assert {"group": "billing", "state": "Stable", "type": "classic",
                "protocol_type": "consumer"} in listed
        d = json.loads(strom(s, "group", "describe", "billing", "--output", "json").stdout)[0]
        assert d["state"] == "Stable" and d["assignor"] == "range"
        assert (d["type"], d["protocol_type"]) == ("classic", "consumer")
        assert [m["client_id"] for m in d["members"]] == ["biller"]
        member = d["members"][0]
        assert sorted(a["partition"] for a in member["assignment"]) == [0, 1]
        rows = {o["partition"]: o for o in d["offsets"]}
        assert (rows[0]["committed"], rows[0]["log_end"], rows[0]["lag"]) == (60, 100, 40)
        assert (rows[1]["committed"], rows[1]["lag"]) == (40, 0)
        assert rows[0]["member_id"] == member["member_id"]
        text = strom(s, "group", "describe", "billing").stdout
        assert "LAG" in text and "biller" in text and "CURRENT-OFFSET" in text

        # An active group: no reset, no delete.
        r = strom(s, "group", "reset-offsets", "billing", "--topic", "gt", "--to-earliest",
                  "--execute", check=False)
        assert r.returncode == 1 and "inactive" in r.stderr
        r = strom(s, "group", "delete", "billing", check=False)
        assert r.returncode == 1 and "NON_EMPTY_GROUP" in r.stderr
        c.close()

        # A dry run shows the plan and changes nothing.
        plan = json.loads(strom(s, "group", "reset-offsets", "billing", "--topic", "gt",
                                "--to-earliest", "--output", "json").stdout)
        assert not plan["executed"]
        assert [(o["partition"], o["current"], o["new"]) for o in plan["offsets"]] == \
            [(0, 60, 0), (1, 40, 0)]
        assert "dry run" in strom(s, "group", "reset-offsets", "billing", "--all-topics",
                                  "--to-latest").stdout
        assert committed(s.addr, "billing", "gt", [0, 1]) == [60, 40]

        def reset(*how):
            strom(s, "group", "reset-offsets", "billing", *how, "--execute")
            return committed(s.addr, "billing", "gt", [0, 1])

        assert reset("--topic", "gt", "--to-earliest") == [0, 0]
        assert reset("--topic", "gt:0", "--to-offset", "75") == [75, 0]
        assert reset("--topic", "gt:0", "--shift-by", "-25") == [50, 0]
        assert reset("--topic", "gt:0", "--shift-by", "1000") == [100, 0], "clamped to the end"
        assert reset("--topic", "gt:0", "--to-datetime", "2026-01-01T00:00:30Z") == [30, 0]
        assert reset("--topic", "gt:0", "--to-datetime", "2026-01-01T01:00:30+01:00") == [30, 0]
        assert reset("--all-topics", "--to-latest") == [100, 40]
        r = strom(s, "group", "reset-offsets", "billing", "--topic", "gt", check=False)
        assert r.returncode == 2, "a target is required"

        strom(s, "group", "delete", "billing")
        r = strom(s, "group", "describe", "billing", check=False)
        assert r.returncode == 1 and "GROUP_ID_NOT_FOUND" in r.stderr
        assert "billing" not in strom(s, "group", "list").stdout
    finally:
        s.stop()


def test_describe_a_kip848_group(tmp_path):
    s = Server(tmp_path / "d", "group.consumer.heartbeat.interval.ms=300")
    try:
        strom(s, "topic", "create", "kt", "-p", "3")
        c = Consumer({"bootstrap.servers": s.addr, "group.id": "modern", "client.id": "m1",
                      "group.protocol": "consumer", "auto.offset.reset": "earliest"})
        c.subscribe(["kt"])
        wait_for("an assignment", lambda: len(c.assignment()) == 3, tick=lambda: c.poll(0.1))
        d = json.loads(strom(s, "group", "describe", "modern", "--output", "json").stdout)[0]
        assert d["type"] == "consumer" and d["state"] == "Stable"
        assert d["protocol_type"] == "consumer" and d["assignor"]
        assert [m["client_id"] for m in d["members"]] == ["m1"]
        assert sorted(a["partition"] for a in d["members"][0]["assignment"]) == [0, 1, 2]
        assert {"group": "modern", "state": "Stable", "type": "consumer",
                "protocol_type": "consumer"} in json.loads(
                    strom(s, "group", "list", "--output", "json").stdout)
        c.close()
    finally:
        s.stop()


def test_several_groups_at_once_and_kafkas_refusals(tmp_path):
    """Describe and delete go group by group: a missing one is an error line (exit 1) and the
    others are still shown or deleted. A shift needs a committed offset to shift from."""
    s = Server(tmp_path / "d", "group.initial.rebalance.delay.ms=0")
    try:
        strom(s, "topic", "create", "mt", "-p", "2")
        ts0 = 1_767_225_600_000
        produce(s.addr, "mt", 10, partition=0, ts0=ts0)
        # Offsets-only groups, given offsets by an admin (a reset of a group with none yet).
        for g in ("ga", "gb"):
            strom(s, "group", "reset-offsets", g, "--topic", "mt:0", "--to-offset", "4",
                  "--execute")
        assert committed(s.addr, "ga", "mt", [0]) == [4]

        listed = strom(s, "group", "list").stdout.splitlines()
        assert listed[0].split() == ["GROUP", "STATE", "TYPE", "PROTOCOL"]
        assert ["ga", "Empty"] == next(r.split() for r in listed if r.startswith("ga"))[:2]

        r = strom(s, "group", "describe", "ga", "missing", "gb", "--output", "json",
                  check=False)
        assert r.returncode == 1
        assert r.stderr.count("error:") == 1 and "missing" in r.stderr \
            and "GROUP_ID_NOT_FOUND" in r.stderr
        shown = json.loads(r.stdout)
        assert [g["group"] for g in shown] == ["ga", "gb"]
        assert shown[0]["state"] == "Empty" and shown[0]["members"] == []
        assert shown[0]["offsets"] == [{"topic": "mt", "partition": 0, "committed": 4,
                                        "log_end": 10, "lag": 6, "member_id": None}]

        # No committed offset on partition 1: nothing to shift from, as Kafka says.
        r = strom(s, "group", "reset-offsets", "ga", "--topic", "mt", "--shift-by", "1",
                  check=False)
        assert r.returncode == 1 and "no committed offset" in r.stderr
        # A time after the last record: the log end, as Kafka does.
        plan = json.loads(strom(s, "group", "reset-offsets", "ga", "--topic", "mt:0",
                                "--to-datetime", "2026-01-01T00:10:00Z", "--output",
                                "json").stdout)
        assert [(o["current"], o["new"]) for o in plan["offsets"]] == [(4, 10)]
        r = strom(s, "group", "reset-offsets", "ga", "--topic", "mt:0", "--to-datetime",
                  "yesterday", check=False)
        assert r.returncode == 1 and "--to-datetime" in r.stderr
        r = strom(s, "group", "reset-offsets", "ga", "--topic", "mt", "--to-earliest",
                  "--to-latest", check=False)
        assert r.returncode == 2, "exactly one target"

        r = strom(s, "group", "delete", "ga", "missing", "gb", check=False)
        assert r.returncode == 1 and "GROUP_ID_NOT_FOUND" in r.stderr
        assert "deleted ga, gb" in r.stdout
        assert "ga" not in strom(s, "group", "list").stdout
    finally:
        s.stop()


def test_every_subcommand_has_help_with_examples():
    import subprocess
    from conftest import STROM
    for cmd in (["server"], ["topic", "create"], ["topic", "list"], ["topic", "describe"],
                ["topic", "delete"], ["topic", "alter-config"], ["topic", "add-partitions"],
                ["produce"], ["consume"], ["group", "list"], ["group", "describe"],
                ["group", "reset-offsets"], ["group", "delete"], ["perf", "produce"],
                ["perf", "consume"], ["cluster", "info"]):
        out = subprocess.run([STROM, *cmd, "--help"], capture_output=True, text=True).stdout
        assert "Example" in out and "strom " + cmd[0] in out, cmd
