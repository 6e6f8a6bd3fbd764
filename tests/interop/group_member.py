"""One consumer-group member in its own process, so tests can kill it with SIGKILL.

Usage: group_member.py BOOTSTRAP GROUP TOPIC [key=value client config ...]

Prints one JSON object per line: {"assigned": [partitions]} after every rebalance, and
{"p": partition, "o": offset, "k": key} for each record, printed only after its offset is
committed synchronously. Stops cleanly (closing the consumer, which leaves the group) on
SIGTERM.
"""
import json
import signal
import sys

from confluent_kafka import Consumer, KafkaException

bootstrap, group, topic = sys.argv[1:4]
conf = {"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
        "enable.auto.commit": False, "session.timeout.ms": 6000, "heartbeat.interval.ms": 500}
for kv in sys.argv[4:]:
    k, v = kv.split("=", 1)
    conf[k] = v
if conf.get("group.protocol") == "consumer":
    # KIP-848: the broker owns session and heartbeat timing.
    conf.pop("session.timeout.ms")
    conf.pop("heartbeat.interval.ms")
running = True
fatal = []


def on_error(err):
    if err.fatal():
        fatal.append(err.name())


conf["error_cb"] = on_error


def stop(*_):
    global running
    running = False


signal.signal(signal.SIGTERM, stop)


def emit(obj):
    print(json.dumps(obj), flush=True)


owned = set()


def report(**extra):
    emit({**extra, "assigned": sorted({p for _, p in owned}),
          "tps": sorted(f"{t}:{p}" for t, p in owned)})


def assigned(_consumer, partitions):
    # Eager assignors revoke everything first; cooperative ones add and remove increments.
    owned.update((tp.topic, tp.partition) for tp in partitions)
    report()


def revoked(_consumer, partitions):
    owned.difference_update((tp.topic, tp.partition) for tp in partitions)
    report(revoked=sorted(tp.partition for tp in partitions))


c = Consumer(conf)
c.subscribe([topic], on_assign=assigned, on_revoke=revoked, on_lost=revoked)
while running:
    if fatal:
        emit({"fatal": fatal[0]})
        break
    m = c.poll(0.2)
    if m is None:
        continue
    if m.error():
        if m.error().fatal():
            emit({"fatal": m.error().name()})
            break
        continue
    try:
        c.commit(message=m, asynchronous=False)
    except KafkaException:
        continue  # a rebalance took the partition: its next owner reads it again
    emit({"p": m.partition(), "o": m.offset(), "k": m.key().decode()})
c.close()
emit({"closed": True})
