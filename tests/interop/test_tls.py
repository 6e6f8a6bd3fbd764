"""TLS listeners with real clients: confluent-kafka (librdkafka), kafka-python and kcat over an
SSL listener beside the PLAINTEXT one, mutual TLS (`ssl.client.auth=required`) on a listener
of its own, each listener answering Metadata with its own endpoints, and bad TLS settings
refused at start with a clear error."""
import re
import socket
import subprocess
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient
from kafka import KafkaConsumer, KafkaProducer

from conftest import STROM, Server


@pytest.fixture
def tls_server(tmp_path, pki):
    s = Server(tmp_path, "listeners=PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0,MTLS://127.0.0.1:0",
               "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SSL:SSL,MTLS:SSL",
               f"ssl.keystore.location={pki['store']}", f"ssl.truststore.location={pki['ca']}",
               "listener.name.mtls.ssl.client.auth=required")
    ports = dict(re.findall(r"(\w+) on (127\.0\.0\.1:\d+)", s.line))
    s.ssl, s.mtls = ports["SSL"], ports["MTLS"]
    yield s
    s.stop()


def ssl_conf(addr, pki, **extra):
    return {"bootstrap.servers": addr, "security.protocol": "ssl", "ssl.ca.location": pki["ca"],
            **extra}


def read_all(conf, topic, n, timeout=20):
    c = Consumer({**conf, "group.id": "g-" + uuid.uuid4().hex, "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    out = []
    deadline = time.time() + timeout
    while len(out) < n and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            out.append(m.value().decode())
    c.close()
    return out


def test_librdkafka_over_tls_sees_the_tls_endpoints_and_moves_data(tls_server, pki):
    conf = ssl_conf(tls_server.ssl, pki)
    md = AdminClient(conf).list_topics(timeout=10)
    assert [f"{b.host}:{b.port}" for b in md.brokers.values()] == [tls_server.ssl]
    plain = AdminClient({"bootstrap.servers": tls_server.addr}).list_topics(timeout=10)
    assert [f"{b.host}:{b.port}" for b in plain.brokers.values()] == [tls_server.addr]
    p = Producer({**conf, "enable.idempotence": True})
    for i in range(200):
        p.produce("tls-topic", value=f"v{i}".encode())
    assert p.flush(15) == 0
    got = read_all(conf, "tls-topic", 200)
    assert sorted(got) == sorted(f"v{i}" for i in range(200))


def test_kafka_python_and_kcat_over_tls(tls_server, pki):
    p = KafkaProducer(bootstrap_servers=tls_server.ssl, security_protocol="SSL",
                      ssl_cafile=pki["ca"])
    for i in range(20):
        p.send("kp-tls", f"k{i}".encode())
    p.flush(10)
    p.close()
    c = KafkaConsumer("kp-tls", bootstrap_servers=tls_server.ssl, security_protocol="SSL",
                      ssl_cafile=pki["ca"], auto_offset_reset="earliest",
                      consumer_timeout_ms=5000)
    assert sorted(m.value.decode() for m in c) == sorted(f"k{i}" for i in range(20))
    c.close()
    kcat = ["kcat", "-b", tls_server.ssl, "-X", "security.protocol=ssl",
            "-X", f"ssl.ca.location={pki['ca']}"]
    subprocess.run(kcat + ["-P", "-t", "kcat-tls"], input=b"a\nb\nc\n", check=True, timeout=30)
    out = subprocess.run(kcat + ["-C", "-t", "kcat-tls", "-e", "-o", "beginning"],
                         capture_output=True, check=True, timeout=30).stdout.decode().split()
    assert out == ["a", "b", "c"]


def test_mutual_tls_lets_in_only_clients_with_a_certificate(tls_server, pki):
    without = AdminClient(ssl_conf(tls_server.mtls, pki))
    with pytest.raises(KafkaException):
        without.list_topics(timeout=5)
    with_cert = AdminClient(ssl_conf(tls_server.mtls, pki,
                                     **{"ssl.certificate.location": pki["client_cert"],
                                        "ssl.key.location": pki["client_key"]}))
    md = with_cert.list_topics(timeout=10)
    assert [f"{b.host}:{b.port}" for b in md.brokers.values()] == [tls_server.mtls]


def test_a_plaintext_peer_on_the_tls_port_is_dropped_and_others_go_on(tls_server, pki):
    host, port = tls_server.ssl.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        # An ApiVersions request in the clear: not a TLS record.
        s.sendall(bytes.fromhex("0000000a00120000000000010000"))
        s.settimeout(10)
        # The broker answers with at most a TLS alert, then closes (a timeout fails here).
        received = b""
        while chunk := s.recv(4096):
            received += chunk
        assert not received or received[0] == 0x15, received  # 0x15: a TLS alert record
    assert AdminClient(ssl_conf(tls_server.ssl, pki)).list_topics(timeout=10).brokers


@pytest.mark.parametrize("settings,message", [
    ([], "has no key"),
    (["ssl.keystore.type=JKS", "ssl.keystore.location=/x.jks"], "only PEM"),
    (["ssl.keystore.location=/nonexistent/broker.pem"], "/nonexistent/broker.pem"),
    (["ssl.client.auth=required", "KEYSTORE"], "no truststore"),
    (["listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SSL:SASL_SSL", "KEYSTORE",
      "sasl.enabled.mechanisms=PLAIN"], "names no users"),
    (["listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SSL:SASL_SSL", "KEYSTORE",
      "sasl.enabled.mechanisms=GSSAPI"], "GSSAPI is not supported"),
    (["listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SSL:SASL_SSL", "KEYSTORE",
      "inter.broker.listener.name=SSL",
      'listener.name.ssl.plain.sasl.jaas.config=M required user_a="x";'], "username"),
])
def test_bad_tls_settings_stop_the_start_with_a_clear_error(tmp_path, pki, settings, message):
    settings = [f"ssl.keystore.location={pki['store']}" if s == "KEYSTORE" else s
                for s in settings]
    args = [STROM, "server", "--override", "listeners=PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0",
            "--override", f"log.dirs={tmp_path}", "--override", "http.listeners=http://127.0.0.1:0"]
    for s in settings:
        args += ["--override", s]
    r = subprocess.run(args, capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert message in r.stderr, r.stderr


def test_the_strom_tools_speak_tls_and_mutual_tls(tls_server, pki):
    def strom(*args, check=True):
        r = subprocess.run([STROM, *args], capture_output=True, text=True, timeout=60)
        if check:
            assert r.returncode == 0, r.stderr
        return r

    tls = ["-X", "security.protocol=SSL", "-X", f"ssl.ca.location={pki['ca']}"]
    strom("topic", "create", "cli-tls", "-b", tls_server.ssl, *tls)
    subprocess.run([STROM, "produce", "cli-tls", "-b", tls_server.ssl, *tls], input="x\ny\n",
                   text=True, check=True, timeout=60)
    out = strom("consume", "cli-tls", "--from", "beginning", "-e", "-b", tls_server.ssl,
                *tls).stdout.split()
    assert out == ["x", "y"]
    # Mutual TLS: refused without a certificate, served with one.
    assert strom("topic", "list", "-b", tls_server.mtls, *tls, check=False).returncode == 1
    mine = ["-X", f"ssl.certificate.location={pki['client_cert']}",
            "-X", f"ssl.key.location={pki['client_key']}"]
    assert "cli-tls" in strom("topic", "list", "-b", tls_server.mtls, *tls, *mine).stdout
    # A CA that did not sign the broker's certificate: the handshake fails.
    assert strom("topic", "list", "-b", tls_server.ssl, "-X", "security.protocol=SSL",
                 "-X", f"ssl.ca.location={pki['client_cert']}", check=False).returncode == 1
