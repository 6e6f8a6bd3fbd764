"""Strom Connect in standalone mode against a real `strom server`: Kafka's quickstart
configs for the file source and sink, the REST API as Kafka Connect tooling calls it,
transforms, the dead-letter queue, a worker killed and restarted, and `strom connect`."""
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from conftest import STROM, Server


def wait_for(what, check, timeout=60):
    deadline = time.time() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def props(path, **kv):
    path.write_text("".join(f"{k.replace('_', '.')}={v}\n" for k, v in kv.items()))
    return path


class Worker:
    """A `strom connect standalone` process on a free REST port."""

    def __init__(self, worker_props, *connectors):
        self.args = [STROM, "connect", "standalone", str(worker_props), *map(str, connectors)]
        self.start()

    def start(self):
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env={**os.environ, "RUST_LOG": "info"}, text=True)
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"the worker did not start: {self.proc.stderr.read()}")
        self.url = "http://" + line.split()[-1]

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                raw = r.read()
                return r.status, (json.loads(raw) if raw else None)
        except urllib.error.HTTPError as e:
            raw = e.read()
            return e.code, (json.loads(raw) if raw else None)

    def status(self, name):
        return self.call("GET", f"/connectors/{name}/status")[1]

    def running(self, name, tasks=1):
        def check():
            s = self.status(name)
            return (s and s["connector"]["state"] == "RUNNING" and len(s["tasks"]) == tasks
                    and all(t["state"] == "RUNNING" for t in s["tasks"])) and s
        return wait_for(f"{name} running", check)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=30) == 0

    def kill(self):
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def broker(tmp_path):
    s = Server(tmp_path / "data", "num.partitions=1")
    yield s
    s.kill()


def worker_props(tmp_path, broker, **extra):
    return props(tmp_path / "worker.properties", **{
        "bootstrap.servers": broker.addr,
        "key.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "key.converter.schemas.enable": "true",
        "value.converter.schemas.enable": "true",
        "offset.storage.file.filename": tmp_path / "connect.offsets",
        "offset.flush.interval.ms": "300",
        "listeners": "http://127.0.0.1:0",
        **extra,
    })


def quickstart(tmp_path):
    """Kafka's own connect-file-source.properties and connect-file-sink.properties."""
    source = props(tmp_path / "connect-file-source.properties", **{
        "name": "local-file-source", "connector.class": "FileStreamSource", "tasks.max": "1",
        "file": tmp_path / "test.txt", "topic": "connect-test"})
    sink = props(tmp_path / "connect-file-sink.properties", **{
        "name": "local-file-sink", "connector.class": "FileStreamSink", "tasks.max": "1",
        "file": tmp_path / "test.sink.txt", "topics": "connect-test"})
    return source, sink


def sink_lines(path):
    return path.read_text().splitlines() if path.exists() else []


def test_kafkas_quickstart_runs_and_a_killed_worker_resumes_from_its_offsets(tmp_path, broker):
    source, sink = quickstart(tmp_path)
    lines = [f"line {i}" for i in range(100)]
    (tmp_path / "test.txt").write_text("".join(l + "\n" for l in lines))
    w = Worker(worker_props(tmp_path, broker), source, sink)
    out = tmp_path / "test.sink.txt"
    wait_for("the sink file", lambda: sink_lines(out) == lines)

    # The records in the topic are what Kafka Connect's JsonConverter writes.
    c = Consumer({"bootstrap.servers": broker.addr, "group.id": "check", "auto.offset.reset": "earliest"})
    c.subscribe(["connect-test"])
    got = []
    wait_for("the topic", lambda: got.extend(m for m in c.consume(100, 1) if not m.error()) or len(got) >= 100)
    c.close()
    assert json.loads(got[0].value()) == {"schema": {"type": "string", "optional": False}, "payload": "line 0"}
    assert got[0].key() is None

    # The REST API, as Connect tooling calls it.
    code, root = w.call("GET", "/")
    assert code == 200 and root["kafka_cluster_id"] and root["version"]
    assert w.call("GET", "/connectors")[1] == ["local-file-sink", "local-file-source"]
    s = w.running("local-file-source")
    assert s["type"] == "source" and s["tasks"][0]["id"] == 0 and s["connector"]["worker_id"]
    assert w.running("local-file-sink")["type"] == "sink"
    size = (tmp_path / "test.txt").stat().st_size
    wait_for("the source offset", lambda: w.call("GET", "/connectors/local-file-source/offsets")[1]["offsets"]
             == [{"partition": {"filename": str(tmp_path / "test.txt")}, "offset": {"position": size}}])
    sink_offsets = wait_for("the sink's commit", lambda: w.call("GET", "/connectors/local-file-sink/offsets")[1]["offsets"])
    assert sink_offsets == [{"partition": {"kafka_topic": "connect-test", "kafka_partition": 0},
                             "offset": {"kafka_offset": 100}}]

    # Killed without a chance to store anything more; lines written meanwhile are read
    # after the restart, from the stored position, and reach the sink.
    w.kill()
    more = [f"more {i}" for i in range(50)]
    with open(tmp_path / "test.txt", "a") as f:
        f.write("".join(l + "\n" for l in more))
    w.start()
    wait_for("the lines after the restart", lambda: sink_lines(out)[-50:] == more)
    # Both offsets were stored before the kill, so nothing is read or written twice: the
    # source resumed at its byte position, the sink at its committed offset.
    assert sink_lines(out) == lines + more
    c = Consumer({"bootstrap.servers": broker.addr, "group.id": "count"})
    assert c.get_watermark_offsets(TopicPartition("connect-test", 0), timeout=10)[1] == 150
    c.close()
    w.stop()


def test_the_rest_api_answers_as_kafka_connect_does(tmp_path, broker):
    source, _ = quickstart(tmp_path)
    (tmp_path / "test.txt").write_text("a\nb\n")
    w = Worker(worker_props(tmp_path, broker), source)
    w.running("local-file-source")

    code, body = w.call("GET", "/connectors/nope/status")
    assert (code, body) == (404, {"error_code": 404, "message": "Connector nope not found"})

    # A sink without topics: refused with Kafka's validation message, and the validate
    # endpoint shows the error against the setting.
    bad = {"connector.class": "FileStreamSink", "file": str(tmp_path / "x")}
    code, body = w.call("POST", "/connectors", {"name": "bad", "config": bad})
    assert code == 400 and body["error_code"] == 400
    assert "Must configure one of topics or topics.regex" in body["message"]
    assert body["message"].startswith("Connector configuration is invalid and contains the following 2 error(s):")
    code, v = w.call("PUT", "/connector-plugins/FileStreamSink/config/validate", {**bad, "name": "bad"})
    assert code == 200 and v["name"] == "org.apache.kafka.connect.file.FileStreamSinkConnector"
    assert v["error_count"] == 2
    topics = next(c for c in v["configs"] if c["value"]["name"] == "topics")
    assert topics["value"]["errors"] == ["Must configure one of topics or topics.regex"]
    assert topics["definition"]["type"] == "LIST"
    code, v = w.call("PUT", "/connector-plugins/FileStreamSink/config/validate",
                     {**bad, "name": "ok", "topics": "t", "tasks.max": "zero"})
    assert v["error_count"] == 1
    tasks_max = next(c for c in v["configs"] if c["value"]["name"] == "tasks.max")
    assert tasks_max["value"]["errors"] == ["Invalid value zero for configuration tasks.max: Not a number of type INT"]
    code, body = w.call("POST", "/connectors", {"name": "x", "config": {"connector.class": "NoSuchConnector"}})
    assert code == 400 and "Failed to find any class that implements Connector" in body["message"]

    # Creating one that exists is a conflict.
    cfg = w.call("GET", "/connectors/local-file-source/config")[1]
    assert cfg["topic"] == "connect-test"
    code, body = w.call("POST", "/connectors", {"name": "local-file-source", "config": cfg})
    assert (code, body["message"]) == (409, "Connector local-file-source already exists")

    code, tasks = w.call("GET", "/connectors/local-file-source/tasks")
    assert code == 200 and tasks[0]["id"] == {"connector": "local-file-source", "task": 0}
    assert tasks[0]["config"]["file"] == str(tmp_path / "test.txt")
    assert w.call("GET", "/connectors/local-file-source/tasks/0/status")[1]["state"] == "RUNNING"
    assert w.call("GET", "/connectors/local-file-source/tasks/7/status")[0] == 404

    # Pause, resume, stop (KIP-875), and offsets that only change while stopped.
    assert w.call("PUT", "/connectors/local-file-source/pause")[0] == 202
    wait_for("paused", lambda: w.status("local-file-source")["tasks"][0]["state"] == "PAUSED")
    assert w.status("local-file-source")["connector"]["state"] == "PAUSED"
    assert w.call("PUT", "/connectors/local-file-source/resume")[0] == 202
    w.running("local-file-source")
    reset = {"offsets": [{"partition": {"filename": str(tmp_path / "test.txt")}, "offset": {"position": 0}}]}
    code, body = w.call("PATCH", "/connectors/local-file-source/offsets", reset)
    assert code == 400 and "must be in the STOPPED state" in body["message"]
    assert w.call("PUT", "/connectors/local-file-source/stop")[0] == 204
    s = w.status("local-file-source")
    assert s["connector"]["state"] == "STOPPED" and s["tasks"] == []
    code, body = w.call("PATCH", "/connectors/local-file-source/offsets", reset)
    assert (code, body) == (200, {"message": "The offsets for this connector have been altered successfully"})
    assert w.call("GET", "/connectors/local-file-source/offsets")[1]["offsets"][0]["offset"] == {"position": 0}

    # Expanded listing and restart with its tasks (KIP-745).
    assert w.call("PUT", "/connectors/local-file-source/resume")[0] == 202
    w.running("local-file-source")
    code, all_ = w.call("GET", "/connectors?expand=status&expand=info")
    assert all_["local-file-source"]["info"]["type"] == "source"
    assert all_["local-file-source"]["status"]["connector"]["state"] == "RUNNING"
    assert w.call("POST", "/connectors/local-file-source/restart")[0] == 204
    code, s = w.call("POST", "/connectors/local-file-source/restart?includeTasks=true&onlyFailed=false")
    assert code == 202 and s["name"] == "local-file-source"
    w.running("local-file-source")

    code, plugins = w.call("GET", "/connector-plugins")
    assert {"class": "org.apache.kafka.connect.file.FileStreamSourceConnector", "type": "source"} in \
        [{"class": p["class"], "type": p["type"]} for p in plugins]
    assert w.call("DELETE", "/connectors/local-file-source")[0] == 204
    assert w.call("GET", "/connectors/local-file-source")[0] == 404
    assert w.call("GET", "/connectors")[1] == []
    w.stop()


def test_transforms_route_and_enrich_and_bad_records_go_to_the_dead_letter_queue(tmp_path, broker):
    (tmp_path / "in.txt").write_text("x\ny\n")
    source = props(tmp_path / "source.properties", **{
        "name": "src", "connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
        "file": tmp_path / "in.txt", "topic": "lines-raw",
        "transforms": "route",
        "transforms.route.type": "org.apache.kafka.connect.transforms.RegexRouter",
        "transforms.route.regex": "(.*)-raw", "transforms.route.replacement": "$1-routed",
    })
    sink = props(tmp_path / "sink.properties", **{
        "name": "sink", "connector.class": "FileStreamSink", "topics": "events",
        "file": tmp_path / "events.txt",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "false",
        "errors.tolerance": "all",
        "errors.deadletterqueue.topic.name": "events-dlq",
        "errors.deadletterqueue.topic.replication.factor": "1",
        "errors.deadletterqueue.context.headers.enable": "true",
        "transforms": "onlyKept,origin",
        "transforms.origin.type": "org.apache.kafka.connect.transforms.InsertField$Value",
        "transforms.origin.static.field": "origin",
        "transforms.origin.static.value": "strom",
        "transforms.onlyKept.type": "org.apache.kafka.connect.transforms.Filter",
        "transforms.onlyKept.predicate": "isDropped",
        "predicates": "isDropped",
        "predicates.isDropped.type": "org.apache.kafka.connect.transforms.predicates.HasHeaderKey",
        "predicates.isDropped.name": "drop",
    })
    p = Producer({"bootstrap.servers": broker.addr})
    p.produce("events", b'{"n": 1}')
    p.produce("events", b"{not json")
    p.produce("events", b'{"n": 2}', headers=[("drop", b"1")])
    p.produce("events", b'{"n": 3}')
    p.flush(10)
    w = Worker(worker_props(tmp_path, broker), source, sink)

    out = tmp_path / "events.txt"
    wait_for("the good records", lambda: len(sink_lines(out)) >= 2)
    assert [json.loads(l) for l in sink_lines(out)] == [{"n": 1, "origin": "strom"}, {"n": 3, "origin": "strom"}]
    c = Consumer({"bootstrap.servers": broker.addr, "group.id": "dlq", "auto.offset.reset": "earliest"})
    c.subscribe(["events-dlq"])
    dead = wait_for("the dead letter", lambda: [m for m in c.consume(10, 1) if not m.error()])
    assert dead[0].value() == b"{not json"
    headers = {k: v.decode() for k, v in dead[0].headers()}
    assert headers["__connect.errors.topic"] == "events"
    assert headers["__connect.errors.offset"] == "1"
    assert headers["__connect.errors.stage"] == "VALUE_CONVERTER"
    assert headers["__connect.errors.connector.name"] == "sink"
    assert headers["__connect.errors.exception.class.name"] == "org.apache.kafka.connect.errors.DataException"
    c.close()
    assert w.running("sink")["tasks"][0]["state"] == "RUNNING", "the poison record did not stop the task"

    c = Consumer({"bootstrap.servers": broker.addr, "group.id": "routed", "auto.offset.reset": "earliest"})
    c.subscribe(["lines-routed"])
    got = []
    wait_for("routed records", lambda: got.extend(m for m in c.consume(10, 1) if not m.error()) or len(got) >= 2)
    c.close()
    assert [json.loads(m.value())["payload"] for m in got] == ["x", "y"]
    w.stop()


def test_a_task_fails_on_a_poison_record_without_tolerance_and_restarts(tmp_path, broker):
    sink = props(tmp_path / "sink.properties", **{
        "name": "strict", "connector.class": "FileStreamSink", "topics": "strict-in",
        "file": tmp_path / "strict.txt",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "false",
    })
    p = Producer({"bootstrap.servers": broker.addr})
    p.produce("strict-in", b'"fine"')
    p.produce("strict-in", b"{broken")
    p.flush(10)
    w = Worker(worker_props(tmp_path, broker), sink)
    failed = wait_for("the task to fail", lambda: (lambda s: s if s["tasks"] and s["tasks"][0]["state"] == "FAILED" else None)(w.status("strict")))
    assert "Tolerance exceeded" in failed["tasks"][0]["trace"]
    assert failed["connector"]["state"] == "RUNNING"

    # strom connect: status, restart of the failed task, list and plugins.
    env = {**os.environ, "STROM_CONNECT_URL": w.url}
    run = lambda *a: subprocess.run([STROM, "connect", *a], env=env, capture_output=True, text=True, timeout=60)
    r = run("status", "strict", "--output", "json")
    assert r.returncode == 0 and json.loads(r.stdout)["tasks"][0]["state"] == "FAILED"
    r = run("status", "strict")
    assert "FAILED" in r.stdout and "task 0" in r.stdout
    r = run("restart", "strict", "--include-tasks", "--only-failed", "--output", "json")
    assert r.returncode == 0, r.stderr
    r = run("list", "--output", "json")
    assert r.returncode == 0 and "strict" in json.loads(r.stdout)
    r = run("plugins")
    assert "org.apache.kafka.connect.file.FileStreamSinkConnector" in r.stdout
    r = run("status", "nope")
    assert r.returncode == 1 and "Connector nope not found" in r.stderr
    r = run("create", "made", "-c", "connector.class=FileStreamSink", "-c", "topics=strict-in",
            "-c", f"file={tmp_path / 'made.txt'}", "-c", "errors.tolerance=all",
            "-c", "value.converter=org.apache.kafka.connect.json.JsonConverter",
            "-c", "value.converter.schemas.enable=false")
    assert r.returncode == 0, r.stderr
    w.running("made")
    # The poison record is skipped under errors.tolerance=all; the rest flows.
    wait_for("made's output", lambda: sink_lines(tmp_path / "made.txt") == ["fine"])
    assert run("delete", "made").returncode == 0
    w.stop()
