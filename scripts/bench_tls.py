#!/usr/bin/env python3
"""TLS benchmark: starts its own single Strom node with a PLAINTEXT and an SSL listener
(certificates made with openssl) and measures, with confluent-kafka (librdkafka) as the
client, 1 KiB records, one topic of 4 partitions, produce (acks=all) and consume throughput
over each listener, alternating, `--rounds` times. Plaintext fetches use sendfile; TLS ones
read the segment bytes and encrypt them.

Usage: scripts/bench_tls.py [--strom target/release/strom] [--records 200000] [--rounds 2]
"""
import argparse
import os
import re
import shutil
import subprocess
import tempfile
import time

from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.admin import AdminClient, NewTopic

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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--strom", default="target/release/strom")
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    d = tempfile.mkdtemp()
    try:
        make_pki(d)
        p = subprocess.Popen(
            [a.strom, "server", "--override",
             "listeners=PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0",
             "--override", f"log.dirs={d}/data", "--override",
             f"ssl.keystore.location={d}/broker.pem"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            env={**os.environ, "RUST_LOG": "warn"})
        line = p.stdout.readline()
        plain = next(w for w in line.split() if w.startswith("127.0.0.1:")).rstrip(",")
        tls = re.search(r"SSL on (127\.0\.0\.1:\d+)", line).group(1)
        confs = {"plaintext": {"bootstrap.servers": plain},
                 "tls": {"bootstrap.servers": tls, "security.protocol": "ssl",
                         "ssl.ca.location": f"{d}/ca.pem"}}
        admin = AdminClient(confs["plaintext"])
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
            pl, tl = results["plaintext"][what], results["tls"][what]
            print(f"{what}: plaintext {', '.join(f'{x:,.0f}' for x in pl)} rec/s; "
                  f"TLS {', '.join(f'{x:,.0f}' for x in tl)} rec/s; "
                  f"ratio {sum(tl) / sum(pl):.2f}")
        p.terminate()
        p.wait(30)
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
