"""The authorizer with real clients: SCRAM users over SASL_PLAINTEXT, ACLs managed through
Kafka's admin API (confluent-kafka, kafka-python) and `strom acl`, enforced per Kafka's
per-API table. With the authorizer on and no ACLs, everything is denied; a prefixed WRITE
allows producing there and nowhere else; groups need their own READ; a DENY beats an
ALLOW; super users pass; Metadata hides what a principal may not describe."""
import json
import re
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation,
                                   AclPermissionType, AdminClient, NewTopic,
                                   ResourcePatternType, ResourceType, ScramCredentialInfo,
                                   ScramMechanism, UserScramCredentialUpsertion)

from conftest import Server
from test_sasl import strom

AUTHORIZER = "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer"


def start(tmp_path, *extra):
    # The PLAINTEXT listener is the operator's (its ANONYMOUS principal a super user); users
    # log in with SCRAM on the SASL_PLAINTEXT one.
    s = Server(tmp_path, "listeners=PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
               AUTHORIZER, "super.users=User:ANONYMOUS;User:admin", *extra)
    s.sasl = dict(re.findall(r"(\w+) on (127\.0\.0\.1:\d+)", s.line))["SASL_PLAINTEXT"]
    return s


@pytest.fixture
def acl_server(tmp_path):
    s = start(tmp_path)
    admin = AdminClient({"bootstrap.servers": s.addr})
    ups = [UserScramCredentialUpsertion(u, ScramCredentialInfo(
        ScramMechanism.SCRAM_SHA_512, 4096), f"{u}-secret".encode())
           for u in ("alice", "bob", "admin")]
    for f in admin.alter_user_scram_credentials(ups).values():
        f.result(timeout=15)
    topics = [NewTopic(t, 1, 1) for t in ("orders.eu", "orders.us", "payments", "public",
                                          "secret")]
    for f in admin.create_topics(topics).values():
        f.result(timeout=15)
    s.admin = admin
    yield s
    s.stop()


def conf(server, user):
    return {"bootstrap.servers": server.sasl, "security.protocol": "sasl_plaintext",
            "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": user,
            "sasl.password": f"{user}-secret"}


def allow(server, principal, op, resource, name, pattern=ResourcePatternType.LITERAL,
          permission=AclPermissionType.ALLOW):
    b = AclBinding(resource, name, pattern, principal, "*", op, permission)
    for f in server.admin.create_acls([b]).values():
        f.result(timeout=15)


def produce(conf_, topic, n=5, **extra):
    """The delivery error codes of `n` records (None for a delivered one)."""
    outcomes = []
    p = Producer({**conf_, "message.timeout.ms": 10000, **extra})
    for i in range(n):
        p.produce(topic, value=f"{topic}-{i}".encode(),
                  on_delivery=lambda err, _m: outcomes.append(err and err.code()))
    p.flush(20)
    return outcomes


def consume(conf_, topic, group, want, timeout=20):
    """The values read, or the first error code."""
    c = Consumer({**conf_, "group.id": group, "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    got, deadline = [], time.time() + timeout
    try:
        while len(got) < want and time.time() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() != KafkaError._PARTITION_EOF:
                    return m.error().code()
                continue
            got.append(m.value().decode())
    finally:
        c.close()
    return got


def test_with_no_acls_everything_is_denied_but_super_users_pass(acl_server):
    alice = conf(acl_server, "alice")
    md = AdminClient(alice).list_topics(timeout=10)
    assert md.topics == {}, "Metadata lists no topic alice may not describe"
    assert produce(alice, "orders.eu", 2) == [KafkaError.TOPIC_AUTHORIZATION_FAILED] * 2
    assert consume(alice, "public", "g", 1) in (KafkaError.TOPIC_AUTHORIZATION_FAILED,
                                                KafkaError.GROUP_AUTHORIZATION_FAILED)
    # Describing ACLs needs DESCRIBE on the cluster (librdkafka drops DescribeAcls' top-level
    # error, so the native client asks).
    r = strom("acl", "list", "-b", acl_server.sasl, "-X", "security.protocol=SASL_PLAINTEXT",
              "-X", "sasl.mechanism=SCRAM-SHA-512", "-X", "sasl.username=alice",
              "-X", "sasl.password=alice-secret", check=False)
    assert r.returncode == 1 and "CLUSTER_AUTHORIZATION_FAILED" in r.stderr, r.stderr
    # kcat sees no topic either.
    import subprocess
    kcat = subprocess.run(["kcat", "-b", acl_server.sasl, "-X", "security.protocol=sasl_plaintext",
                           "-X", "sasl.mechanisms=SCRAM-SHA-512", "-X", "sasl.username=alice",
                           "-X", "sasl.password=alice-secret", "-L", "-J"],
                          capture_output=True, text=True, timeout=30)
    assert kcat.returncode == 0, kcat.stderr
    assert json.loads(kcat.stdout)["topics"] == []
    # A super user over SCRAM, and the operator's PLAINTEXT listener.
    admin = conf(acl_server, "admin")
    assert "orders.eu" in AdminClient(admin).list_topics(timeout=10).topics
    assert produce(admin, "orders.eu", 3) == [None] * 3
    assert sorted(consume(admin, "orders.eu", "admins", 3)) == [f"orders.eu-{i}"
                                                                 for i in range(3)]


def test_a_prefixed_write_produces_there_and_nowhere_else(acl_server):
    allow(acl_server, "User:alice", AclOperation.WRITE, ResourceType.TOPIC, "orders.",
          ResourcePatternType.PREFIXED)
    alice = conf(acl_server, "alice")
    # Idempotent (the default in librdkafka here): WRITE on some topic stands for
    # IDEMPOTENT_WRITE (KIP-679).
    assert produce(alice, "orders.eu", 5, **{"enable.idempotence": True}) == [None] * 5
    assert produce(alice, "orders.us", 2) == [None] * 2
    assert produce(alice, "payments", 2) == [KafkaError.TOPIC_AUTHORIZATION_FAILED] * 2
    # WRITE implies DESCRIBE: she sees exactly the topics she may write.
    assert set(AdminClient(alice).list_topics(timeout=10).topics) == {"orders.eu", "orders.us"}
    # ... and may not read them.
    assert consume(alice, "orders.eu", "g", 1) in (KafkaError.TOPIC_AUTHORIZATION_FAILED,
                                                   KafkaError.GROUP_AUTHORIZATION_FAILED)
    # KIP-430: the operations she may do, from the authorizer.
    from confluent_kafka import TopicCollection
    alice_admin = AdminClient(alice)
    desc = alice_admin.describe_topics(
        TopicCollection(["orders.eu"]), include_authorized_operations=True)
    ops = desc["orders.eu"].result(timeout=15).authorized_operations
    assert sorted(o.name for o in ops) == ["DESCRIBE", "WRITE"]


def test_a_consumer_needs_read_on_its_group_too(acl_server):
    admin = conf(acl_server, "admin")
    assert produce(admin, "public", 4) == [None] * 4
    allow(acl_server, "User:bob", AclOperation.READ, ResourceType.TOPIC, "public")
    bob = conf(acl_server, "bob")
    assert consume(bob, "public", "bobs", 4) == KafkaError.GROUP_AUTHORIZATION_FAILED
    allow(acl_server, "User:bob", AclOperation.READ, ResourceType.GROUP, "bobs")
    assert sorted(consume(bob, "public", "bobs", 4)) == [f"public-{i}" for i in range(4)]
    # Committed offsets of that group, and no other.
    c = Consumer({**bob, "group.id": "bobs"})
    from confluent_kafka import TopicPartition
    committed = c.committed([TopicPartition("public", 0)], timeout=10)
    assert committed[0].offset == 4
    c.close()
    assert consume(bob, "public", "others", 1) == KafkaError.GROUP_AUTHORIZATION_FAILED


def test_a_deny_beats_an_allow(acl_server):
    admin = conf(acl_server, "admin")
    produce(admin, "public", 2)
    produce(admin, "secret", 2)
    allow(acl_server, "User:*", AclOperation.ALL, ResourceType.TOPIC, "*")
    allow(acl_server, "User:*", AclOperation.READ, ResourceType.GROUP, "*")
    allow(acl_server, "User:bob", AclOperation.READ, ResourceType.TOPIC, "secret",
          permission=AclPermissionType.DENY)
    bob = conf(acl_server, "bob")
    assert sorted(consume(bob, "public", "b1", 2)) == ["public-0", "public-1"]
    assert consume(bob, "secret", "b2", 1) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    alice = conf(acl_server, "alice")
    assert sorted(consume(alice, "secret", "a1", 2)) == ["secret-0", "secret-1"]


def test_transactions_need_write_on_the_transactional_id(acl_server):
    allow(acl_server, "User:alice", AclOperation.WRITE, ResourceType.TOPIC, "orders.eu")
    alice = conf(acl_server, "alice")
    p = Producer({**alice, "transactional.id": "tx-denied"})
    with pytest.raises(KafkaException, match="TRANSACTIONAL_ID_AUTHORIZATION_FAILED"):
        p.init_transactions(15)
    allow(acl_server, "User:alice", AclOperation.WRITE, ResourceType.TRANSACTIONAL_ID, "tx-",
          ResourcePatternType.PREFIXED)
    p = Producer({**alice, "transactional.id": "tx-orders"})
    p.init_transactions(15)
    p.begin_transaction()
    for i in range(3):
        p.produce("orders.eu", value=f"t{i}".encode())
    p.commit_transaction(15)
    admin = conf(acl_server, "admin")
    got = consume({**admin, "isolation.level": "read_committed"}, "orders.eu", "t", 3)
    assert sorted(got) == ["t0", "t1", "t2"]


def test_acls_are_managed_by_every_client_and_strom_acl(acl_server):
    # confluent-kafka creates, `strom acl` lists and deletes, kafka-python describes.
    allow(acl_server, "User:carol", AclOperation.READ, ResourceType.TOPIC, "logs.",
          ResourcePatternType.PREFIXED)
    strom("acl", "create", "--allow-principal", "User:carol", "--consumer", "--topic",
          "metrics", "--group", "dash", "-b", acl_server.addr)
    listed = json.loads(strom("acl", "list", "--principal", "User:carol", "--output", "json",
                              "-b", acl_server.addr).stdout)
    got = sorted((a["resource_type"], a["name"], a["pattern_type"], a["operation"])
                 for a in listed)
    assert got == [("GROUP", "dash", "LITERAL", "READ"),
                   ("TOPIC", "logs.", "PREFIXED", "READ"),
                   ("TOPIC", "metrics", "LITERAL", "DESCRIBE"),
                   ("TOPIC", "metrics", "LITERAL", "READ")]
    # MATCH: every ACL that applies to one topic.
    matching = json.loads(strom("acl", "list", "--topic", "logs.app",
                                "--resource-pattern-type", "match", "--output", "json",
                                "-b", acl_server.addr).stdout)
    assert [(a["name"], a["pattern_type"]) for a in matching] == [("logs.", "PREFIXED")]

    from kafka.admin import (ACLFilter, ACLOperation, ACLPermissionType,
                             ACLResourcePatternType, KafkaAdminClient, ResourcePatternFilter)
    from kafka.admin import ResourceType as KResourceType
    kp = KafkaAdminClient(bootstrap_servers=acl_server.addr)
    acls, error = kp.describe_acls(ACLFilter(
        principal="User:carol", host=None, operation=ACLOperation.ANY,
        permission_type=ACLPermissionType.ANY,
        resource_pattern=ResourcePatternFilter(KResourceType.TOPIC, "metrics",
                                               ACLResourcePatternType.LITERAL)))
    assert error.errno == 0
    assert sorted(a.operation.name for a in acls) == ["DESCRIBE", "READ"]
    kp.close()

    out = strom("acl", "delete", "--topic", "metrics", "--output", "json",
                "-b", acl_server.addr)
    assert len(json.loads(out.stdout)) == 2
    left = json.loads(strom("acl", "list", "--output", "json", "-b", acl_server.addr).stdout)
    assert sorted(a["name"] for a in left) == ["dash", "logs."]
    bad = strom("acl", "create", "--allow-principal", "carol", "--operation", "READ",
                "--topic", "t", "-b", acl_server.addr, check=False)
    assert bad.returncode == 1 and "principal" in bad.stderr, bad.stderr


def test_acls_survive_a_restart_and_a_broker_without_authorizer_refuses_them(tmp_path):
    s = start(tmp_path / "a")
    try:
        strom("acl", "create", "--allow-principal", "User:dave", "--operation", "WRITE",
              "--topic", "d", "-b", s.addr)
    finally:
        s.stop()
    s = start(tmp_path / "a")
    try:
        listed = json.loads(strom("acl", "list", "--output", "json", "-b", s.addr).stdout)
        assert [(a["principal"], a["name"]) for a in listed] == [("User:dave", "d")]
    finally:
        s.stop()
    plain = Server(tmp_path / "b")
    try:
        r = strom("acl", "list", "-b", plain.addr, check=False)
        assert r.returncode == 1 and "SECURITY_DISABLED" in r.stderr.upper(), r.stderr
    finally:
        plain.stop()


def test_an_unknown_authorizer_or_bad_super_user_stops_the_start(tmp_path):
    import subprocess
    from conftest import STROM
    for bad in ["authorizer.class.name=com.example.MyAuthorizer",
                "super.users=admin"]:
        extra = [] if bad.startswith("authorizer") else ["--override", AUTHORIZER]
        r = subprocess.run([STROM, "server", "--override", f"log.dirs={tmp_path}",
                            "--override", "listeners=PLAINTEXT://127.0.0.1:0",
                            "--override", bad, "--override", "http.listeners=http://127.0.0.1:0", *extra],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode != 0, bad
        assert bad.split("=")[0] in r.stderr, r.stderr
