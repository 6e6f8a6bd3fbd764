"""SASL with real clients: SCRAM-SHA-256/512 users managed through the Kafka admin API
(AlterUserScramCredentials, DescribeUserScramCredentials) and used by confluent-kafka,
kafka-python and kcat over SASL_SSL; PLAIN with the listener's JAAS users over
SASL_PLAINTEXT; wrong passwords, unknown users, requests before authentication, an exchange
cut midway, a silent client and an expired session each refused on their own connection while
the broker keeps serving everyone else."""
import json
import re
import socket
import ssl
import struct
import subprocess
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import (AdminClient, ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialDeletion,
                                   UserScramCredentialUpsertion)
from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError

from conftest import STROM, Server

PLAIN_JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
              'username="admin" password="admin-secret" user_admin="admin-secret" '
              'user_bob="bob-secret";')


def start(tmp_path, pki, *extra):
    s = Server(tmp_path,
               "listeners=PLAINTEXT://127.0.0.1:0,SASL_SSL://127.0.0.1:0,"
               "SASL_PLAINTEXT://127.0.0.1:0",
               f"ssl.keystore.location={pki['store']}",
               f"listener.name.sasl_plaintext.plain.sasl.jaas.config={PLAIN_JAAS}",
               "listener.name.sasl_plaintext.sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256",
               *extra)
    ports = dict(re.findall(r"(\w+) on (127\.0\.0\.1:\d+)", s.line))
    s.sasl_ssl, s.sasl_plain = ports["SASL_SSL"], ports["SASL_PLAINTEXT"]
    return s


@pytest.fixture
def sasl_server(tmp_path, pki):
    s = start(tmp_path, pki)
    add_user(s, "alice", "alice-secret")
    yield s
    s.stop()


def add_user(server, user, password, mechanisms=(ScramMechanism.SCRAM_SHA_256,
                                                  ScramMechanism.SCRAM_SHA_512)):
    admin = AdminClient({"bootstrap.servers": server.addr})
    ups = [UserScramCredentialUpsertion(user, ScramCredentialInfo(m, 8192), password.encode())
           for m in mechanisms]
    for f in admin.alter_user_scram_credentials(ups).values():
        f.result(timeout=15)


def scram_conf(server, pki, user="alice", password="alice-secret", mechanism="SCRAM-SHA-512"):
    return {"bootstrap.servers": server.sasl_ssl, "security.protocol": "sasl_ssl",
            "ssl.ca.location": pki["ca"], "sasl.mechanism": mechanism,
            "sasl.username": user, "sasl.password": password}


def roundtrip(conf, topic, n=100):
    p = Producer({**conf, "enable.idempotence": True})
    for i in range(n):
        p.produce(topic, value=f"v{i}".encode())
    assert p.flush(20) == 0
    c = Consumer({**conf, "group.id": "g-" + uuid.uuid4().hex, "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    got, deadline = [], time.time() + 20
    while len(got) < n and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got.append(m.value().decode())
    c.close()
    assert sorted(got) == sorted(f"v{i}" for i in range(n))


def test_scram_credentials_are_kept_and_described_without_secrets(sasl_server):
    admin = AdminClient({"bootstrap.servers": sasl_server.addr})
    described = admin.describe_user_scram_credentials().result(timeout=15)
    infos = {(i.mechanism, i.iterations) for i in described["alice"].scram_credential_infos}
    assert infos == {(ScramMechanism.SCRAM_SHA_256, 8192), (ScramMechanism.SCRAM_SHA_512, 8192)}

    few = admin.alter_user_scram_credentials([UserScramCredentialUpsertion(
        "carol", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 100), b"pw")])
    with pytest.raises(KafkaException, match="(?i)too few iterations"):
        few["carol"].result(timeout=15)
    missing = admin.alter_user_scram_credentials([UserScramCredentialDeletion(
        "nobody", ScramMechanism.SCRAM_SHA_256)])
    with pytest.raises(KafkaException, match="(?i)does not exist"):
        missing["nobody"].result(timeout=15)
    with pytest.raises(KafkaException, match="(?i)does not exist"):
        admin.describe_user_scram_credentials(["nobody"])["nobody"].result(timeout=15)

    done = admin.alter_user_scram_credentials([UserScramCredentialDeletion(
        "alice", ScramMechanism.SCRAM_SHA_256)])
    done["alice"].result(timeout=15)
    described = admin.describe_user_scram_credentials(["alice"])["alice"].result(timeout=15)
    assert [i.mechanism for i in described.scram_credential_infos] == [
        ScramMechanism.SCRAM_SHA_512]


def test_credentials_survive_a_restart(tmp_path, pki):
    s = start(tmp_path, pki)
    add_user(s, "dave", "dave-secret", [ScramMechanism.SCRAM_SHA_256])
    s.stop()
    s = start(tmp_path, pki)
    try:
        conf = scram_conf(s, pki, "dave", "dave-secret", "SCRAM-SHA-256")
        assert AdminClient(conf).list_topics(timeout=10).brokers
    finally:
        s.stop()


def test_confluent_kafka_over_sasl_ssl_with_scram_sha_512_and_256(sasl_server, pki):
    conf = scram_conf(sasl_server, pki)
    md = AdminClient(conf).list_topics(timeout=10)
    assert [f"{b.host}:{b.port}" for b in md.brokers.values()] == [sasl_server.sasl_ssl]
    roundtrip(conf, "scram-512")
    roundtrip(scram_conf(sasl_server, pki, mechanism="SCRAM-SHA-256"), "scram-256", 20)


def test_kafka_python_and_kcat_over_sasl_ssl_with_scram(sasl_server, pki):
    kw = dict(bootstrap_servers=sasl_server.sasl_ssl, security_protocol="SASL_SSL",
              ssl_cafile=pki["ca"], sasl_mechanism="SCRAM-SHA-512",
              sasl_plain_username="alice", sasl_plain_password="alice-secret")
    p = KafkaProducer(**kw)
    for i in range(20):
        p.send("kp-scram", f"k{i}".encode())
    p.flush(10)
    p.close()
    c = KafkaConsumer("kp-scram", auto_offset_reset="earliest", consumer_timeout_ms=5000, **kw)
    assert sorted(m.value.decode() for m in c) == sorted(f"k{i}" for i in range(20))
    c.close()
    kcat = ["kcat", "-b", sasl_server.sasl_ssl, "-X", "security.protocol=sasl_ssl",
            "-X", f"ssl.ca.location={pki['ca']}", "-X", "sasl.mechanisms=SCRAM-SHA-512",
            "-X", "sasl.username=alice", "-X", "sasl.password=alice-secret"]
    subprocess.run(kcat + ["-P", "-t", "kcat-scram"], input=b"a\nb\nc\n", check=True, timeout=30)
    out = subprocess.run(kcat + ["-C", "-t", "kcat-scram", "-e", "-o", "beginning"],
                         capture_output=True, check=True, timeout=30).stdout.decode().split()
    assert out == ["a", "b", "c"]


def test_plain_users_from_the_jaas_config_over_sasl_plaintext(sasl_server):
    conf = {"bootstrap.servers": sasl_server.sasl_plain, "security.protocol": "sasl_plaintext",
            "sasl.mechanism": "PLAIN", "sasl.username": "bob", "sasl.password": "bob-secret"}
    roundtrip(conf, "plain-topic", 20)
    c = KafkaConsumer(bootstrap_servers=sasl_server.sasl_plain,
                      security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
                      sasl_plain_username="bob", sasl_plain_password="bob-secret")
    assert "plain-topic" in c.topics()
    c.close()
    # SCRAM-SHA-512 is not enabled on this listener.
    wrong_mech = {**conf, "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "alice",
                  "sasl.password": "alice-secret"}
    with pytest.raises(KafkaException):
        AdminClient(wrong_mech).list_topics(timeout=5)


@pytest.mark.parametrize("user,password", [("alice", "wrong"), ("mallory", "alice-secret")])
def test_a_wrong_password_or_unknown_user_is_refused_and_others_go_on(sasl_server, pki, user,
                                                                      password):
    errors = []
    bad = AdminClient({**scram_conf(sasl_server, pki, user, password),
                       "error_cb": lambda e: errors.append(e)})
    with pytest.raises(KafkaException):
        bad.list_topics(timeout=5)
    bad.poll(1)  # delivers the errors to error_cb
    del bad
    text = " ".join(str(e) for e in errors)
    assert "Authentication failed" in text, text
    assert "mallory" not in text and "wrong" not in text
    with pytest.raises(KafkaError):
        KafkaProducer(bootstrap_servers=sasl_server.sasl_ssl, security_protocol="SASL_SSL",
                      ssl_cafile=pki["ca"], sasl_mechanism="SCRAM-SHA-256",
                      sasl_plain_username=user, sasl_plain_password=password,
                      bootstrap_timeout_ms=5000)
    assert AdminClient(scram_conf(sasl_server, pki)).list_topics(timeout=10).brokers


# Raw Kafka frames, to do what no well-behaved client does.

def request(api_key, version, correlation, body):
    client = b"raw"
    header = struct.pack(">hhih", api_key, version, correlation, len(client)) + client
    frame = header + body
    return struct.pack(">i", len(frame)) + frame


def string(s):
    return struct.pack(">h", len(s)) + s


def read_response(sock):
    head = recv_exact(sock, 4)
    if head is None:
        return None
    (size,) = struct.unpack(">i", head)
    return recv_exact(sock, size)


def recv_exact(sock, n):
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            return None
        out += chunk
    return out


def closed(sock, timeout=15):
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def plain_login(sock, user, password):
    """SaslHandshake v1 PLAIN, then SaslAuthenticate v1: (error code, session lifetime)."""
    sock.sendall(request(17, 1, 1, string(b"PLAIN")))
    r = read_response(sock)
    assert struct.unpack(">h", r[4:6])[0] == 0
    token = b"\0" + user + b"\0" + password
    sock.sendall(request(36, 1, 2, struct.pack(">i", len(token)) + token))
    r = read_response(sock)
    (error,) = struct.unpack(">h", r[4:6])
    (msg_len,) = struct.unpack(">h", r[6:8])
    at = 8 + max(msg_len, 0)
    (token_len,) = struct.unpack(">i", r[at:at + 4])
    (lifetime,) = struct.unpack(">q", r[at + 4 + token_len:at + 12 + token_len])
    return error, lifetime


METADATA_V1_ALL = struct.pack(">i", -1)


def connect(addr):
    host, port = addr.split(":")
    return socket.create_connection((host, int(port)), timeout=15)


def test_requests_before_authentication_and_a_cut_exchange_close_only_their_connection(
        sasl_server, pki):
    # Metadata before any handshake: the connection closes, nothing is answered.
    with connect(sasl_server.sasl_plain) as s:
        s.sendall(request(3, 1, 1, METADATA_V1_ALL))
        assert read_response(s) is None
    # A SCRAM exchange cut after the client's first message.
    with connect(sasl_server.sasl_plain) as s:
        s.sendall(request(17, 1, 1, string(b"SCRAM-SHA-256")))
        assert read_response(s) is not None
        first = b"n,,n=alice,r=abcdefghijklmnop"
        s.sendall(request(36, 1, 2, struct.pack(">i", len(first)) + first))
        assert read_response(s) is not None
    # Garbage where a PLAIN token belongs: refused with SASL_AUTHENTICATION_FAILED (58).
    with connect(sasl_server.sasl_plain) as s:
        s.sendall(request(17, 1, 1, string(b"PLAIN")))
        read_response(s)
        s.sendall(request(36, 1, 2, struct.pack(">i", 3) + b"\xff\xfe\xfd"))
        r = read_response(s)
        assert struct.unpack(">h", r[4:6])[0] == 58
        assert closed(s)
    # An unsupported mechanism: UNSUPPORTED_SASL_MECHANISM (33) and the enabled list.
    with connect(sasl_server.sasl_plain) as s:
        s.sendall(request(17, 1, 1, string(b"GSSAPI")))
        r = read_response(s)
        assert struct.unpack(">h", r[4:6])[0] == 33
        assert b"PLAIN" in r and b"SCRAM-SHA-256" in r
        assert closed(s)
    # A frame far above sasl.server.max.receive.size before authentication: closed unread.
    with connect(sasl_server.sasl_plain) as s:
        s.sendall(struct.pack(">i", 10 << 20) + b"\0" * 1024)
        assert closed(s)
    # A quorum RPC on a voter's Kafka listener (this node votes; the quorum has its own).
    with connect(sasl_server.addr) as s:
        s.sendall(request(1001, 0, 1, b"{}"))
        assert read_response(s) is None
    with connect(sasl_server.sasl_plain) as s:
        assert plain_login(s, b"bob", b"bob-secret")[0] == 0
        s.sendall(request(3, 1, 3, METADATA_V1_ALL))
        assert read_response(s) is not None, "an authenticated connection is served"
    conf = {"bootstrap.servers": sasl_server.sasl_plain, "security.protocol": "sasl_plaintext",
            "sasl.mechanism": "PLAIN", "sasl.username": "bob", "sasl.password": "bob-secret"}
    assert AdminClient(conf).list_topics(timeout=10).brokers


def test_a_silent_client_is_dropped_before_the_idle_timeout(sasl_server):
    with connect(sasl_server.sasl_plain) as s:
        started = time.time()
        assert closed(s, timeout=30)
        assert time.time() - started < 25


def test_an_expired_session_must_reauthenticate(tmp_path, pki):
    s = start(tmp_path, pki, "connections.max.reauth.ms=1500")
    try:
        with connect(s.sasl_plain) as sock:
            error, lifetime = plain_login(sock, b"bob", b"bob-secret")
            assert (error, lifetime) == (0, 1500)
            time.sleep(2)
            sock.sendall(request(3, 1, 3, METADATA_V1_ALL))
            assert read_response(sock) is None, "a request past the session's end closes"
        with connect(s.sasl_plain) as sock:
            assert plain_login(sock, b"bob", b"bob-secret")[0] == 0
            time.sleep(2)
            # Re-authentication (KIP-368) on the same connection, then requests again.
            assert plain_login(sock, b"bob", b"bob-secret")[0] == 0
            sock.sendall(request(3, 1, 3, METADATA_V1_ALL))
            assert read_response(sock) is not None
        with connect(s.sasl_plain) as sock:
            assert plain_login(sock, b"bob", b"bob-secret")[0] == 0
            # Re-authenticating as someone else is refused.
            assert plain_login(sock, b"admin", b"admin-secret")[0] == 58
        # librdkafka keeps producing past several session lifetimes.
        conf = {"bootstrap.servers": s.sasl_plain, "security.protocol": "sasl_plaintext",
                "sasl.mechanism": "PLAIN", "sasl.username": "bob", "sasl.password": "bob-secret"}
        p = Producer(conf)
        for i in range(8):
            p.produce("reauth", value=f"v{i}".encode())
            assert p.flush(10) == 0
            time.sleep(0.5)
    finally:
        s.stop()


def test_bad_sasl_settings_stop_the_start(tmp_path, pki):
    args = [STROM, "server", "--override", "listeners=PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
            "--override", f"log.dirs={tmp_path}", "--override", "http.listeners=http://127.0.0.1:0", "--override",
            "listener.name.sasl_plaintext.plain.sasl.jaas.config=PlainLoginModule required "
            "user_bob=\"bob-secret\"", "--override", "sasl.enabled.mechanisms=PLAIN"]
    r = subprocess.run(args, capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "end with ';'" in r.stderr and "bob-secret" not in r.stderr, r.stderr


# The strom tools: the same settings as any Kafka client's, with -X or --command-config.

def strom(*args, stdin=None, check=True, timeout=60):
    r = subprocess.run([STROM, *args], input=stdin, capture_output=True, text=True,
                       timeout=timeout)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def scram_flags(server, pki, user="carol", password="carol-secret"):
    return ["-b", server.sasl_ssl, "-X", "security.protocol=SASL_SSL",
            "-X", f"ssl.ca.location={pki['ca']}", "-X", "sasl.mechanism=SCRAM-SHA-512",
            "-X", f"sasl.username={user}", "-X", f"sasl.password={password}"]


def test_strom_user_manages_scram_users_and_the_tools_speak_sasl_ssl(sasl_server, pki, tmp_path):
    strom("user", "create", "carol", "--password", "carol-secret", "-b", sasl_server.addr)
    listed = json.loads(strom("user", "list", "--output", "json", "-b",
                              sasl_server.addr).stdout)
    carol = next(u for u in listed if u["user"] == "carol")
    assert sorted(c["mechanism"] for c in carol["credentials"]) == ["SCRAM-SHA-256",
                                                                    "SCRAM-SHA-512"]
    assert all(c["iterations"] == 8192 for c in carol["credentials"])
    assert "carol-secret" not in json.dumps(listed)

    flags = scram_flags(sasl_server, pki)
    strom("topic", "create", "cli-sasl", "-p", "2", *flags)
    strom("produce", "cli-sasl", *flags, stdin="one\ntwo\nthree\n")
    out = strom("consume", "cli-sasl", "--from", "beginning", "-e", *flags).stdout.split()
    assert sorted(out) == ["one", "three", "two"]

    # A properties file, as Kafka's tools take with --command-config.
    props = tmp_path / "client.properties"
    props.write_text(
        "security.protocol=SASL_SSL\n"
        f"ssl.ca.location={pki['ca']}\n"
        "sasl.mechanism=SCRAM-SHA-256\n"
        'sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required '
        'username="carol" password="carol-secret";\n')
    topics = strom("topic", "list", "-b", sasl_server.sasl_ssl, "--command-config",
                   str(props)).stdout
    assert "cli-sasl" in topics

    wrong = strom("topic", "list", *scram_flags(sasl_server, pki, password="nope"), check=False)
    assert wrong.returncode == 1
    assert "authentication failed" in wrong.stderr.lower(), wrong.stderr
    # PLAIN over SASL_PLAINTEXT too.
    plain = strom("topic", "list", "-b", sasl_server.sasl_plain,
                  "-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanism=PLAIN",
                  "-X", "sasl.username=bob", "-X", "sasl.password=bob-secret").stdout
    assert "cli-sasl" in plain

    strom("user", "delete", "carol", "-b", sasl_server.addr)
    gone = strom("topic", "list", *flags, check=False)
    assert gone.returncode == 1, "a deleted user cannot log in"


def test_the_native_client_keeps_working_past_its_sasl_session_lifetime(tmp_path, pki):
    s = start(tmp_path, pki, "connections.max.reauth.ms=1500")
    try:
        flags = ["-b", s.sasl_plain, "-X", "security.protocol=SASL_PLAINTEXT",
                 "-X", "sasl.mechanism=PLAIN", "-X", "sasl.username=bob",
                 "-X", "sasl.password=bob-secret"]
        # About four seconds of records: past two session lifetimes, nothing lost.
        r = strom("perf", "produce", "reauth-cli", "--records", "400", "--throughput", "100",
                  "--acks", "all", *flags)
        assert "400 records sent" in r.stdout, r.stdout
        out = strom("consume", "reauth-cli", "--from", "beginning", "-e", "-f", "{offset}",
                    *flags).stdout.split()
        assert len(out) == 400
    finally:
        s.stop()


def test_bad_client_security_settings_fail_before_connecting(sasl_server):
    r = strom("topic", "list", "-b", sasl_server.sasl_ssl, "-X", "security.protocol=SASL_SSL",
              "-X", "sasl.mechanism=GSSAPI", check=False)
    assert r.returncode == 1 and "GSSAPI" in r.stderr, r.stderr
    r = strom("topic", "list", "-b", sasl_server.sasl_ssl, "-X", "security.protocol=SSL",
              "-X", "ssl.ca.location=/nonexistent/ca.pem", check=False)
    assert r.returncode == 1 and "/nonexistent/ca.pem" in r.stderr, r.stderr


def test_brokers_replicate_over_sasl_ssl_and_the_quorum_speaks_mutual_tls(tmp_path, pki):
    """Three nodes whose inter-broker listener is SASL_SSL with PLAIN and whose controller
    listener is SSL with mutual TLS: followers fetch over the first, so acks=all writes with
    min.insync.replicas=3 succeed only if they authenticate; the quorum elects and commits
    over the second, and a peer without a certificate is refused there. The authorizer is
    on: the brokers are super users, and ACLs created through one broker hold on the
    others."""
    from test_cluster import free_ports
    ports = free_ports(9)
    plain, secure, control = ports[:3], ports[3:6], ports[6:]
    voters = ",".join(f"{i + 1}@127.0.0.1:{control[i]}" for i in range(3))
    jaas = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
            'username="broker" password="broker-secret" user_broker="broker-secret" '
            'user_alice="alice-secret";')
    procs = []
    try:
        for i in range(3):
            args = [STROM, "server"]
            for o in [f"node.id={i + 1}", "process.roles=broker,controller",
                      f"listeners=PLAINTEXT://127.0.0.1:{plain[i]},SECURE://127.0.0.1:{secure[i]},"
                      f"CONTROLLER://127.0.0.1:{control[i]}",
                      "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SECURE:SASL_SSL,"
                      "CONTROLLER:SSL", "listener.name.controller.ssl.client.auth=required",
                      "inter.broker.listener.name=SECURE", "controller.listener.names=CONTROLLER",
                      f"controller.quorum.voters={voters}", f"log.dirs={tmp_path / str(i)}",
                      f"ssl.keystore.location={pki['store']}",
                      f"ssl.truststore.location={pki['ca']}",
                      "sasl.mechanism.inter.broker.protocol=PLAIN",
                      "listener.name.secure.sasl.enabled.mechanisms=PLAIN",
                      f"listener.name.secure.plain.sasl.jaas.config={jaas}",
                      "min.insync.replicas=3",
                      "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                      "super.users=User:broker", "http.listeners=http://127.0.0.1:0"]:
                args += ["--override", o]
            procs.append(subprocess.Popen(args, stdout=subprocess.PIPE,
                                          stderr=subprocess.DEVNULL, text=True))
        for p in procs:
            assert p.stdout.readline().startswith("strom server listening")
        conf = {"bootstrap.servers": f"127.0.0.1:{secure[0]}", "security.protocol": "sasl_ssl",
                "ssl.ca.location": pki["ca"], "sasl.mechanism": "PLAIN",
                "sasl.username": "alice", "sasl.password": "alice-secret"}
        admin = AdminClient({**conf, "sasl.username": "broker", "sasl.password": "broker-secret"})
        deadline = time.time() + 30
        while len(admin.list_topics(timeout=10).brokers) < 3:
            assert time.time() < deadline, "the brokers did not all register"
            time.sleep(0.3)
        from confluent_kafka.admin import NewTopic
        admin.create_topics([NewTopic("replicated", 1, 3)])["replicated"].result(timeout=20)
        # Alice may do nothing until ACLs say so; they are created through broker 1 and
        # enforced by every broker (she is sent to the partition leader and the group
        # coordinator, wherever they are).
        assert AdminClient(conf).list_topics(timeout=10).topics == {}
        flags = ["-X", "security.protocol=SASL_SSL", "-X", f"ssl.ca.location={pki['ca']}",
                 "-X", "sasl.mechanism=PLAIN", "-X", "sasl.username=broker",
                 "-X", "sasl.password=broker-secret"]
        strom("acl", "create", "--allow-principal", "User:alice", "--producer", "--consumer",
              "--topic", "replicated", "--group", "g", "-b", f"127.0.0.1:{secure[0]}", *flags)
        for port in secure[1:]:
            deadline = time.time() + 15
            while True:
                listed = json.loads(strom("acl", "list", "--output", "json",
                                          "-b", f"127.0.0.1:{port}", *flags).stdout)
                if len(listed) == 6:
                    break
                assert time.time() < deadline, f"broker at {port} has ACLs {listed}"
                time.sleep(0.2)
        p = Producer({**conf, "acks": "all", "enable.idempotence": True})
        for i in range(50):
            p.produce("replicated", value=f"r{i}".encode())
        assert p.flush(30) == 0, "acks=all with min.insync.replicas=3 needs every follower"
        isr = admin.list_topics("replicated", timeout=10).topics["replicated"].partitions[0].isrs
        assert sorted(isr) == [1, 2, 3]
        c = Consumer({**conf, "group.id": "g", "auto.offset.reset": "earliest"})
        c.subscribe(["replicated"])
        got, deadline = [], time.time() + 20
        while len(got) < 50 and time.time() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got.append(m.value().decode())
        c.close()
        assert sorted(got) == sorted(f"r{i}" for i in range(50))
        # The controller listener: no certificate, no quorum.
        ctx = ssl.create_default_context(cafile=pki["ca"])
        with socket.create_connection(("127.0.0.1", control[0]), timeout=10) as raw:
            with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
                with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                    s.sendall(request(1004, 0, 1, b"null"))
                    assert s.recv(4) == b"", "answered a quorum RPC without a certificate"
                    raise ConnectionResetError("closed, as it must be")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)


def test_connection_limits_refuse_and_hold_back_connections(tmp_path):
    """max.connections.per.ip closes a connection over the limit at once; a listener's
    max.connections holds new ones back until one closes (the broker-wide one spares the
    inter-broker listener, this node's only one); the others keep being served."""
    s = Server(tmp_path, "max.connections.per.ip=3", "listener.name.plaintext.max.connections=4")
    try:
        def api_versions(sock):
            sock.sendall(request(18, 0, 7, b""))
            return read_response(sock)

        first = [connect(s.addr) for _ in range(3)]
        for c in first:
            assert api_versions(c) is not None
        over = connect(s.addr)
        assert closed(over, timeout=10), "a fourth from one address is closed"
        assert api_versions(first[0]) is not None, "the others are served"
        # From another loopback address: per-IP has room, the listener's limit has one more.
        other = socket.create_connection(("127.0.0.1", int(s.addr.split(":")[1])),
                                         source_address=("127.0.0.2", 0), timeout=15)
        assert api_versions(other) is not None
        held = socket.create_connection(("127.0.0.1", int(s.addr.split(":")[1])),
                                        source_address=("127.0.0.2", 0), timeout=15)
        held.settimeout(1)
        held.sendall(request(18, 0, 7, b""))
        try:
            got = held.recv(4)
        except socket.timeout:
            got = "timeout"
        assert got == "timeout", f"a fifth connection is held back, got {got!r}"
        first[0].close()
        held.settimeout(15)
        assert read_response(held) is not None, "served once a connection closed"
        for c in first[1:] + [other, held, over]:
            c.close()
    finally:
        s.stop()
