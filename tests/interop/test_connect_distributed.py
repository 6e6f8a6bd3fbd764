"""Strom Connect in distributed mode against a real `strom server`: several
`strom connect distributed` workers in one group share a connector's tasks, a write sent
to any worker is carried out (forwarded to the leader), every worker answers the same,
and the tasks of a worker killed with SIGKILL move to the survivors after
scheduled.rebalance.max.delay.ms, resuming from their stored offsets. The connector is
Kafka's VerifiableSource, whose records number themselves per task, so a gap in a task's
sequence numbers would show a record lost in a move."""
import json
import os
import queue
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import STROM, Server
from test_connect import Worker, props, wait_for

TOPIC = "verifiable"
PARTITIONS = 3
SCHEDULED_DELAY_S = 3
SESSION_TIMEOUT_S = 6


def verifiable(tasks, throughput=200, **extra):
    return {"connector.class": "VerifiableSource", "tasks.max": str(tasks), "topic": TOPIC,
            "throughput": str(throughput), **extra}


class DistributedWorker(Worker):
    """A `strom connect distributed` process; the first line it prints ends with the
    `host:port` of its REST listener, which is also its worker id. Its stderr goes to a
    log file and its stdout is drained, so a long run never blocks on a full pipe."""

    def __init__(self, worker_props, log_path):
        self.args = [STROM, "connect", "distributed", str(worker_props)]
        self.log_path = log_path
        self.start()

    def start(self):
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=self.log,
                                     env={**os.environ, "RUST_LOG": "info"}, text=True)
        lines = queue.Queue()

        def drain(out):
            for line in out:
                lines.put(line)
            lines.put("")

        threading.Thread(target=drain, args=(self.proc.stdout,), daemon=True).start()
        try:
            line = lines.get(timeout=30)
        except queue.Empty:
            line = ""
        if not line:
            self.kill()
            raise AssertionError(f"the worker did not start: {self.tail()}")
        self.addr = line.split()[-1]
        self.url = "http://" + self.addr

    def call(self, method, path, body=None, timeout=10):
        """(status, JSON body); (None, None) when the worker does not answer in time (it
        is down, or stuck in a rebalance), so that polling goes on within its bound."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                raw = r.read()
                return r.status, (json.loads(raw) if raw else None)
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, (json.loads(raw) if raw else None)
            except ValueError:
                return e.code, {"raw": raw.decode(errors="replace")}
        except (urllib.error.URLError, OSError, ValueError):
            return None, None

    def alive(self):
        return self.proc.poll() is None

    def tail(self, n=40):
        self.log.flush()
        try:
            with open(self.log_path) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""


class Cluster:
    """The workers of one group, all with the same worker properties."""

    def __init__(self, tmp_path, broker):
        self.tmp_path = tmp_path
        self.broker = broker
        self.workers = []
        self.props = props(tmp_path / "worker.properties", **{
            "bootstrap.servers": broker.addr,
            "group.id": "strom-connect-cluster",
            "listeners": "http://127.0.0.1:0",
            "config.storage.topic": "connect-configs",
            "offset.storage.topic": "connect-offsets",
            "status.storage.topic": "connect-status",
            "config.storage.replication.factor": "1",
            "offset.storage.replication.factor": "1",
            "status.storage.replication.factor": "1",
            "offset.flush.interval.ms": "1000",
            "scheduled.rebalance.max.delay.ms": str(SCHEDULED_DELAY_S * 1000),
            "session.timeout.ms": str(SESSION_TIMEOUT_S * 1000),
            "heartbeat.interval.ms": "1000",
            "key.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "key.converter.schemas.enable": "false",
            "value.converter.schemas.enable": "false",
        })

    def start(self):
        w = DistributedWorker(self.props, self.tmp_path / f"worker-{len(self.workers)}.log")
        self.workers.append(w)
        return w

    def live(self):
        return [w for w in self.workers if w.alive()]

    def stop_all(self):
        """SIGTERM to every live worker at once (one by one, each departure would start a
        rebalance among the rest), then each must exit cleanly."""
        live = self.live()
        for w in live:
            w.proc.send_signal(signal.SIGTERM)
        for w in live:
            assert w.proc.wait(timeout=30) == 0, f"worker {w.addr} exit: {w.tail()}"

    def kill_all(self):
        for w in self.workers:
            if w.alive():
                w.proc.kill()
            try:
                w.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            w.log.close()


@pytest.fixture
def kafka(tmp_path):
    # No initial rebalance delay: the workers' group forms as soon as they join.
    s = Server(tmp_path / "data", "num.partitions=1", "group.initial.rebalance.delay.ms=0")
    yield s
    s.kill()


@pytest.fixture
def cluster(tmp_path, kafka):
    c = Cluster(tmp_path, kafka)
    yield c
    # Shown only when the test failed (pytest captures it otherwise).
    for w in c.workers:
        print(f"--- worker {getattr(w, 'addr', '?')} log tail ---\n{w.tail()}")
    c.kill_all()


def create_topic(broker, name, partitions):
    """Creates the topic; answers the cluster's id. (The admin client is dropped on return:
    one kept alive would go on trying to reach the broker after the test stops it.)"""
    admin = AdminClient({"bootstrap.servers": broker.addr})
    for f in admin.create_topics([NewTopic(name, partitions, 1)], operation_timeout=10).values():
        f.result(timeout=30)
    wait_for(f"{name}'s metadata", lambda: len(
        admin.list_topics(name, timeout=10).topics[name].partitions) == partitions, timeout=30)
    return admin.list_topics(timeout=10).cluster_id


def ready(workers):
    wait_for("every worker's REST API", lambda: all(w.call("GET", "/connectors")[0] == 200
                                                     for w in workers), timeout=60)


def write(worker, method, path, body=None, timeout=60):
    """Sends a write, again while it is refused with 409 because the group is rebalancing
    (Connect's answer to a write it cannot carry out now) or goes unanswered. Answers the
    final (status, body), the 409 bodies seen before it, and how many tries went
    unanswered."""
    conflicts, lost = [], 0
    deadline = time.time() + timeout
    while True:
        code, got = worker.call(method, path, body)
        rebalancing = code == 409 and "already exists" not in (got or {}).get("message", "")
        if code is not None and not rebalancing:
            return code, got, conflicts, lost
        if rebalancing:
            conflicts.append(got)
        else:
            lost += 1
        if time.time() > deadline:
            raise AssertionError(f"{method} {path}: still {code} {got} after {timeout} s")
        time.sleep(0.2)


def create(worker, name, config):
    """POST /connectors through `worker`: (status, body, 409s seen while rebalancing). A
    try that went unanswered may have been carried out, so "already exists" after one is
    the creation's success."""
    code, got, conflicts, lost = write(worker, "POST", "/connectors", {"name": name, "config": config})
    if code == 409 and lost:
        code, got = 201, worker.call("GET", f"/connectors/{name}")[1]
    return code, got, conflicts


def normalized(status):
    if not status:
        return status
    return {**status, "tasks": sorted(status["tasks"], key=lambda t: t["id"])}


def same_everywhere(workers, path):
    """The answer every worker gives, once they all give the same 200."""
    def check():
        answers = [w.call("GET", path) for w in workers]
        codes = {a[0] for a in answers}
        bodies = [normalized(a[1]) if "/status" in path else a[1] for a in answers]
        # In a list, as the answer may be empty (falsy).
        return codes == {200} and all(b == bodies[0] for b in bodies) and [bodies[0]]
    return wait_for(f"every worker to answer the same to {path}", check, timeout=60)[0]


def spread(worker, name, workers, per_worker, tasks, timeout=60):
    """Waits until `tasks` tasks run, `per_worker` on each of `workers` (and on no other),
    as `worker` answers; the status then. A timeout shows the last status seen."""
    ids = {w.addr for w in workers}
    last = []

    def check():
        code, s = worker.call("GET", f"/connectors/{name}/status")
        last[:] = [(code, s)]
        if code != 200 or s["connector"]["state"] != "RUNNING" or s["connector"]["worker_id"] not in ids:
            return None
        if len(s["tasks"]) != tasks or any(t["state"] != "RUNNING" for t in s["tasks"]):
            return None
        owners = Counter(t["worker_id"] for t in s["tasks"])
        return set(owners) == ids and all(n == per_worker for n in owners.values()) and s
    try:
        return wait_for(f"{tasks} tasks, {per_worker} on each of {sorted(ids)}", check, timeout)
    except AssertionError as e:
        raise AssertionError(f"{e}; the last status: {last}") from None


def stored_seqnos(worker, name, tasks):
    code, body = worker.call("GET", f"/connectors/{name}/offsets")
    if code != 200:
        return None
    got = {o["partition"]["id"]: o["offset"]["seqno"] for o in body["offsets"]}
    return got if set(got) == set(range(tasks)) else None


def end_offsets(broker, topic, partitions):
    c = Consumer({"bootstrap.servers": broker.addr, "group.id": "watermarks"})
    try:
        return sum(c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                   for p in range(partitions))
    finally:
        c.close()


def decode(m):
    """A VerifiableSource record: (task, data). The key is the task id (an INT32, JSON
    `3`); the value is a JSON document, which JsonConverter writes as a JSON string."""
    key = json.loads(m.key())
    value = json.loads(m.value())
    if isinstance(value, str):
        value = json.loads(value)
    return key, value


def read_all(broker, topic, partitions, timeout=60):
    c = Consumer({"bootstrap.servers": broker.addr, "group.id": "verify-check",
                  "enable.auto.commit": False})
    try:
        ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in range(partitions)}
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        pending = {p for p, end in ends.items() if end > 0}
        got = []
        deadline = time.time() + timeout
        while pending:
            if time.time() > deadline:
                raise AssertionError(f"read {len(got)} of {sum(ends.values())} records")
            for m in c.consume(5000, 1):
                if m.error():
                    continue
                got.append(decode(m))
                if m.offset() + 1 >= ends[m.partition()]:
                    pending.discard(m.partition())
        return got
    finally:
        c.close()


def test_tasks_spread_over_the_workers_and_move_off_a_killed_one_without_a_gap(cluster, kafka):
    cluster_id = create_topic(kafka, TOPIC, PARTITIONS)
    ws = [cluster.start() for _ in range(3)]
    assert len({w.addr for w in ws}) == 3
    ready(ws)
    root = same_everywhere(ws, "/")
    assert root["kafka_cluster_id"] == cluster_id

    # Created through the second worker, which need not be the leader.
    code, info, _ = create(ws[1], "verify", verifiable(6))
    assert code == 201, info
    assert info["name"] == "verify" and info["config"]["topic"] == TOPIC

    s = spread(ws[0], "verify", ws, 2, 6)
    assert s["type"] == "source" and [t["id"] for t in sorted(s["tasks"], key=lambda t: t["id"])] == list(range(6))
    assert same_everywhere(ws, "/connectors") == ["verify"]
    everywhere = same_everywhere(ws, "/connectors/verify/status")
    assert Counter(t["worker_id"] for t in everywhere["tasks"]) == {w.addr: 2 for w in ws}
    code, info = ws[2].call("GET", "/connectors/verify")
    assert code == 200 and [t["task"] for t in info["tasks"]] == list(range(6))
    # A few seconds of records (and of stored offsets) before the kill.
    before = wait_for("every task's stored offset past 300", lambda: (
        lambda got: got and min(got.values()) >= 300 and got)(stored_seqnos(ws[0], "verify", 6)), timeout=30)

    # SIGKILL: no goodbye to the group; the survivors see it gone after the session
    # timeout, and its tasks are reassigned after scheduled.rebalance.max.delay.ms.
    victim, survivors = ws[2], ws[:2]
    killed_at = time.time()
    victim.kill()
    s = spread(ws[0], "verify", survivors, 3, 6)
    recovered = time.time() - killed_at
    print(f"\nBENCH connect distributed: 6 tasks RUNNING again on 2 workers {recovered:.1f} s after "
          f"a SIGKILL (session.timeout.ms={SESSION_TIMEOUT_S * 1000}, "
          f"scheduled.rebalance.max.delay.ms={SCHEDULED_DELAY_S * 1000})")
    same_everywhere(survivors, "/connectors/verify/status")

    # A new worker takes its share.
    joined = cluster.start()
    live = survivors + [joined]
    spread(joined, "verify", live, 2, 6)
    same_everywhere(live, "/connectors/verify/status")
    assert same_everywhere(live, "/connectors") == ["verify"]

    # Every task went on counting, the moved ones too, and goes on where it runs now.
    def past(mark, margin):
        got = stored_seqnos(joined, "verify", 6)
        return got and all(got[t] > mark[t] + margin for t in range(6)) and got
    moved = wait_for("every task's offset past the one before the kill", lambda: past(before, 0), timeout=30)
    after = wait_for("every task's offset still advancing on its last owner",
                     lambda: past(moved, 100), timeout=30)

    cluster.stop_all()
    seqnos = defaultdict(list)
    for task, data in read_all(kafka, TOPIC, PARTITIONS):
        assert data["task"] == task and data["name"] == "verify"
        seqnos[task].append(data["seqno"])
    assert sorted(seqnos) == list(range(6))
    for task, got in sorted(seqnos.items()):
        top = max(got)
        # No gap; a repeat is the replay of what was sent after the last stored offset.
        assert set(got) == set(range(top + 1)), f"task {task}: missing {sorted(set(range(top + 1)) - set(got))[:10]}"
        assert top >= after[task], "a stored offset is never ahead of what Kafka has"
        print(f"task {task}: seqnos 0..{top}, {len(got) - len(set(got))} replayed")


def test_rest_errors_in_a_group(cluster, kafka):
    create_topic(kafka, TOPIC, PARTITIONS)
    a = cluster.start()
    ready([a])

    for method, path in [("GET", "/connectors/x"), ("GET", "/connectors/x/status"),
                         ("GET", "/connectors/x/config")]:
        code, body = a.call(method, path)
        assert (code, body) == (404, {"error_code": 404, "message": "Connector x not found"}), path
    code, body, *_ = write(a, "DELETE", "/connectors/x")
    assert (code, body) == (404, {"error_code": 404, "message": "Connector x not found"})

    # A second worker joins, and writes are sent at once, to it and to the first, while
    # the group rebalances. Whether a 409 comes depends on timing (the join may be over
    # before the first request), so the test cannot insist on one: it retries until the
    # write goes through, checks the shape of every 409 it got, and reports whether it
    # saw one.
    b = cluster.start()
    code, info, conflicts_b = create(b, "racy", verifiable(2, 10))
    assert code == 201, info
    code, info, conflicts_a = create(a, "racy2", verifiable(2, 10))
    assert code == 201, info
    conflicts = conflicts_a + conflicts_b
    for c in conflicts:
        assert c["error_code"] == 409 and c["message"], c
    print(f"\n409 during the rebalance: {'seen ' + str(len(conflicts)) + ' time(s)' if conflicts else 'not seen (the join was over first)'}")
    ready([a, b])
    for name in ("racy", "racy2"):
        wait_for(f"{name}'s 2 tasks running", lambda: (lambda s: s and len(s["tasks"]) == 2 and all(
            t["state"] == "RUNNING" and t["worker_id"] in (a.addr, b.addr) for t in s["tasks"]))(
            a.call("GET", f"/connectors/{name}/status")[1]), timeout=60)

    # Invalid configuration, through either worker: Kafka's validation message.
    for w in (a, b):
        code, body, *_ = write(w, "POST", "/connectors", {"name": "bad", "config": {
            "connector.class": "VerifiableSource", "tasks.max": "1"}})
        assert code == 400 and body["error_code"] == 400, body
        assert 'Missing required configuration "topic" which has no default value.' in body["message"]
        assert body["message"].startswith("Connector configuration is invalid and contains the following 1 error(s):")
    code, v = b.call("PUT", "/connector-plugins/VerifiableSource/config/validate",
                     {"connector.class": "VerifiableSource", "name": "bad", "tasks.max": "1"})
    assert code == 200 and v["error_count"] == 1
    assert v["name"] == "org.apache.kafka.connect.tools.VerifiableSourceConnector"
    topic = next(c for c in v["configs"] if c["value"]["name"] == "topic")
    assert topic["value"]["errors"] == ['Missing required configuration "topic" which has no default value.']

    # Creating one that exists, through the other worker: a conflict, not a rebalance.
    code, body, *_ = write(a, "POST", "/connectors", {"name": "racy", "config": verifiable(2, 10)})
    assert (code, body) == (409, {"error_code": 409, "message": "Connector racy already exists"})
    assert same_everywhere([a, b], "/connectors") == ["racy", "racy2"]
    for w in (a, b):
        assert w.call("GET", "/connectors/bad")[0] == 404
    cluster.stop_all()


def test_pause_resume_and_delete_through_any_worker_are_seen_by_every_worker(cluster, kafka):
    create_topic(kafka, TOPIC, PARTITIONS)
    ws = [cluster.start() for _ in range(3)]
    ready(ws)
    code, info, _ = create(ws[0], "verify", verifiable(3, 50))
    assert code == 201, info
    spread(ws[0], "verify", ws, 1, 3)

    def every_worker_sees(state):
        def check():
            for w in ws:
                code, s = w.call("GET", "/connectors/verify/status")
                if code != 200 or s["connector"]["state"] != state or len(s["tasks"]) != 3 \
                        or any(t["state"] != state for t in s["tasks"]):
                    return False
            return True
        wait_for(f"every worker to see verify {state}", check, timeout=30)

    # Paused through one worker, resumed through another: at least one of them is not
    # the leader.
    code, *_ = write(ws[1], "PUT", "/connectors/verify/pause")
    assert code == 202
    every_worker_sees("PAUSED")
    paused_at = end_offsets(kafka, TOPIC, PARTITIONS)
    time.sleep(2)
    assert end_offsets(kafka, TOPIC, PARTITIONS) == paused_at, "a paused task sent records"

    code, *_ = write(ws[2], "PUT", "/connectors/verify/resume")
    assert code == 202
    every_worker_sees("RUNNING")
    wait_for("records again", lambda: end_offsets(kafka, TOPIC, PARTITIONS) > paused_at, timeout=30)

    code, *_ = write(ws[1], "DELETE", "/connectors/verify")
    assert code == 204
    assert same_everywhere(ws, "/connectors") == []
    for w in ws:
        assert w.call("GET", "/connectors/verify") == (404, {"error_code": 404, "message": "Connector verify not found"})
    cluster.stop_all()


def test_a_change_while_the_group_rebalances_is_refused_with_409(tmp_path):
    # The coordinator holds the first join of an empty group for
    # group.initial.rebalance.delay.ms, so the worker is in a rebalance that long.
    kafka = Server(tmp_path / "data", "group.initial.rebalance.delay.ms=5000")
    c = Cluster(tmp_path, kafka)
    try:
        w = c.start()
        code, body = w.call("POST", "/connectors", {"name": "early", "config": verifiable(1)})
        assert (code, body) == (409, {"error_code": 409, "message":
                                      "Cannot complete request because of a conflicting operation (e.g. worker rebalance)"})
        # Reads are answered meanwhile, from what the worker has read of the config topic.
        assert w.call("GET", "/connectors") == (200, [])
        # Once the group is formed, the same request goes through.
        code, info, conflicts = create(w, "early", verifiable(1))
        assert code == 201, info
        assert w.call("GET", "/connectors") == (200, ["early"])
        c.stop_all()
    finally:
        c.kill_all()
        kafka.kill()
