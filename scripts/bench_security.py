#!/usr/bin/env python3
"""Security benchmark: starts its own single Strom node with a PLAINTEXT, an SSL and a
SASL_SSL listener (certificates made with openssl; a SCRAM-SHA-512 user created through the
admin API) and measures, with confluent-kafka (librdkafka) as the client, 1 KiB records, one
topic of 4 partitions, produce (acks=all) and consume throughput over each listener,
alternating, `--rounds` times; then the TLS handshake rate (sequential connections, each a
full handshake and one ApiVersions round trip, Python's ssl module as the client).
Plaintext fetches use sendfile; TLS ones read the segment bytes and encrypt them.

Usage: scripts/bench_security.py [--strom target/release/strom] [--records 200000]
       [--rounds 2] [--handshakes 500]
"""
import argparse
import os
import re
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import time

from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.admin import (AdminClient, NewTopic, ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialUpsertion)

VALUE = b"x" * 1024


def openssl(*args):
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


def make_pki(d):
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{d}/ca.key", "-out",
            f"{d}/ca.pem", "-days", "2", "-subj", "/CN=bench CA")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{d}/b.key", "-out", f"{d}/b.csr",
            "-subj", "/CN=localhost")
    with open(f"{d}/b.ext", "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", f"{d}/b.csr", "-CA", f"{d}/ca.pem", "-CAkey", f"{d}/ca.key",
            "-CAcreateserial", "-out", f"{d}/b.crt", "-days", "2", "-extfile", f"{d}/b.ext")
    with open(f"{d}/broker.pem", "w") as out:
        out.write(open(f"{d}/b.key").read() + open(f"{d}/b.crt").read())


def produce(conf, topic, n):
    p = Producer({**conf, "acks": "all", "linger.ms": 5, "enable.idempotence": True})
    start = time.time()
    for i in range(n):
        while True:
            try:
                p.produce(topic, VALUE, partition=i % 4)
                break
            except BufferError:
                p.poll(0.01)
    assert p.flush(60) == 0
    return n / (time.time() - start)


def consume(conf, topic, n):
    c = Consumer({**conf, "group.id": f"b-{time.time()}", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(4)])
    got, start = 0, time.time()
    while got < n:
        for m in c.consume(10000, 1.0):
            if not m.error():
                got += 1
    rate = n / (time.time() - start)
    c.close()
    return rate


def handshake_rate(addr, ca, n):
    """Full TLS handshakes (no session resumption) plus one ApiVersions v0 each, per second."""
    host, port = addr.split(":")
    ctx = ssl.create_default_context(cafile=ca)
    api_versions = bytes.fromhex("0000000a00120000000000010000")
    start = time.time()
    for _ in range(n):
        with socket.create_connection((host, int(port))) as raw:
            with ctx.wrap_socket(raw, server_hostname=host) as s:
                s.sendall(api_versions)
                (size,) = struct.unpack(">i", s.recv(4))
                left = size
                while left:
                    left -= len(s.recv(left))
    return n / (time.time() - start)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--strom", default="target/release/strom")
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--handshakes", type=int, default=500)
    a = ap.parse_args()
    d = tempfile.mkdtemp()
    try:
        make_pki(d)
        p = subprocess.Popen(
            [a.strom, "server", "--override", "http.listeners=http://127.0.0.1:0", "--override",
             "listeners=PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0,SASL_SSL://127.0.0.1:0",
             "--override", f"log.dirs={d}/data", "--override",
             f"ssl.keystore.location={d}/broker.pem"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            env={**os.environ, "RUST_LOG": "warn"})
        line = p.stdout.readline()
        plain = next(w for w in line.split() if w.startswith("127.0.0.1:")).rstrip(",")
        tls = re.search(r"; SSL on (127\.0\.0\.1:\d+)", line).group(1)
        sasl = re.search(r"SASL_SSL on (127\.0\.0\.1:\d+)", line).group(1)
        confs = {"plaintext": {"bootstrap.servers": plain},
                 "tls": {"bootstrap.servers": tls, "security.protocol": "ssl",
                         "ssl.ca.location": f"{d}/ca.pem"},
                 "sasl_ssl": {"bootstrap.servers": sasl, "security.protocol": "sasl_ssl",
                              "ssl.ca.location": f"{d}/ca.pem",
                              "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "bench",
                              "sasl.password": "bench-secret"}}
        admin = AdminClient(confs["plaintext"])
        up = UserScramCredentialUpsertion(
            "bench", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), b"bench-secret")
        for f in admin.alter_user_scram_credentials([up]).values():
            f.result(10)
        created = admin.create_topics(
            [NewTopic(f"{k}-{r}", 4, 1) for k in confs for r in range(a.rounds)])
        for f in created.values():
            f.result(10)
        results = {k: {"produce": [], "consume": []} for k in confs}
        for r in range(a.rounds):
            for k, conf in confs.items():
                topic = f"{k}-{r}"
                results[k]["produce"].append(produce(conf, topic, a.records))
                results[k]["consume"].append(consume(conf, topic, a.records))
        for what in ("produce", "consume"):
            pl = results["plaintext"][what]
            parts = [f"plaintext {', '.join(f'{x:,.0f}' for x in pl)} rec/s"]
            for k in ("tls", "sasl_ssl"):
                xs = results[k][what]
                parts.append(f"{k} {', '.join(f'{x:,.0f}' for x in xs)} rec/s "
                             f"(ratio {sum(xs) / sum(pl):.2f})")
            print(f"{what}: " + "; ".join(parts))
        print(f"TLS handshakes: {handshake_rate(tls, f'{d}/ca.pem', a.handshakes):,.0f}/s "
              f"(each with one ApiVersions round trip)")
        p.terminate()
        p.wait(30)
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
