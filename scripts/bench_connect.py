#!/usr/bin/env python3
"""Connect benchmark: starts its own Strom node and measures

1. the file source: a standalone worker reading a file of `--records` lines of
   `--line-size` bytes into a topic (StringConverter values, as bytes on the wire), in
   records/s from the worker's start until the topic holds every line;
2. the physical limit of the same pipeline: `strom produce` of the same file (one record per
   line, the native producer, acks=all), timed the same way;
3. the file sink: the same topic written back to a file by a FileStreamSink, records/s.

Runs are interleaved (source, produce, source, produce ...) so drift cancels; medians are
printed with the ratio source/produce.

Usage: scripts/bench_connect.py [--strom target/release/strom] [--records 1000000]
                                [--line-size 100] [--runs 3]
"""
import argparse
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time

from confluent_kafka import Consumer, TopicPartition


def start_broker(strom, data):
    p = subprocess.Popen([strom, "server", "--override", "listeners=PLAINTEXT://127.0.0.1:0",
                          "--override", "http.listeners=", "--override", f"log.dirs={data}",
                          "--override", "num.partitions=1"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                         env={**os.environ, "RUST_LOG": "warn"})
    line = p.stdout.readline()
    return p, next(w for w in line.split() if w.startswith("127.0.0.1:")).rstrip(",")


def end_offset(addr, topic):
    c = Consumer({"bootstrap.servers": addr, "group.id": "bench-watch"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=5)[1]
    except Exception:
        return 0
    finally:
        c.close()


def wait_end(addr, topic, records):
    while end_offset(addr, topic) < records:
        time.sleep(0.05)


def props(path, pairs):
    with open(path, "w") as f:
        f.writelines(f"{k}={v}\n" for k, v in pairs.items())
    return path


def worker(strom, work, addr, name, connector):
    w = props(os.path.join(work, f"{name}-worker.properties"), {
        "bootstrap.servers": addr,
        "key.converter": "org.apache.kafka.connect.storage.StringConverter",
        "value.converter": "org.apache.kafka.connect.storage.StringConverter",
        "offset.storage.file.filename": os.path.join(work, f"{name}.offsets"),
        "offset.flush.interval.ms": "10000",
        "listeners": "http://127.0.0.1:0",
    })
    c = props(os.path.join(work, f"{name}.properties"), connector)
    p = subprocess.Popen([strom, "connect", "standalone", w, c], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True, env={**os.environ, "RUST_LOG": "warn"})
    return p


def stop(p):
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=60)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--strom", default="target/release/strom")
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--line-size", type=int, default=100)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="strom-bench-connect-")
    broker, addr = start_broker(a.strom, os.path.join(work, "data"))
    lines = os.path.join(work, "lines.txt")
    with open(lines, "w") as f:
        pad = "x" * max(0, a.line_size - 12)
        f.writelines(f"{i:011d}{pad}\n" for i in range(a.records))
    source, produce, sink = [], [], []
    try:
        for run in range(a.runs):
            topic = f"source-{run}"
            t0 = time.monotonic()
            w = worker(a.strom, work, addr, f"src{run}", {
                "name": f"src{run}", "connector.class": "FileStreamSource", "file": lines,
                "topic": topic, "batch.size": "10000"})
            wait_end(addr, topic, a.records)
            source.append(a.records / (time.monotonic() - t0))
            stop(w)

            topic = f"produce-{run}"
            t0 = time.monotonic()
            with open(lines) as f:
                subprocess.run([a.strom, "produce", topic, "-b", addr, "--acks", "all"], stdin=f,
                               check=True, stderr=subprocess.DEVNULL)
            wait_end(addr, topic, a.records)
            produce.append(a.records / (time.monotonic() - t0))

            out = os.path.join(work, f"sink-{run}.txt")
            t0 = time.monotonic()
            w = worker(a.strom, work, addr, f"sink{run}", {
                "name": f"sink{run}", "connector.class": "FileStreamSink", "file": out,
                "topics": f"source-{run}"})
            while True:
                try:
                    if os.path.getsize(out) >= a.records * a.line_size:
                        break
                except FileNotFoundError:
                    pass
                time.sleep(0.05)
            sink.append(a.records / (time.monotonic() - t0))
            stop(w)
            print(f"run {run}: source {source[-1]:,.0f}/s, produce {produce[-1]:,.0f}/s, sink {sink[-1]:,.0f}/s")
    finally:
        broker.kill()
        shutil.rmtree(work, ignore_errors=True)
    s, p, k = statistics.median(source), statistics.median(produce), statistics.median(sink)
    print(f"file source   {s:,.0f} records/s (median of {a.runs})")
    print(f"strom produce {p:,.0f} records/s (same lines, the physical limit)")
    print(f"ratio source/produce {s / p:.2f}")
    print(f"file sink     {k:,.0f} records/s")


if __name__ == "__main__":
    main()
