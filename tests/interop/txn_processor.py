"""A consume-transform-produce loop in its own process (librdkafka's exactly-once pattern),
so tests can SIGKILL it mid-stream.

Usage: txn_processor.py BOOTSTRAP GROUP INPUT OUTPUT TRANSACTIONAL_ID

Reads INPUT in consumer group GROUP (read_committed), and for every few records writes
"<value>-out" to OUTPUT in a transaction that also commits the consumed offsets
(send_offsets_to_transaction). Prints {"committed": n} after each commit. Runs until
killed or SIGTERM.
"""
import json
import signal
import sys

from confluent_kafka import Consumer, Producer, TopicPartition

bootstrap, group, source, sink, txn_id = sys.argv[1:6]
consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                     "auto.offset.reset": "earliest", "enable.auto.commit": False,
                     "isolation.level": "read_committed", "session.timeout.ms": 6000,
                     "heartbeat.interval.ms": 500})
producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id,
                     "transaction.timeout.ms": 10000})
producer.init_transactions(30)
consumer.subscribe([source])
running = True


def stop(*_):
    global running
    running = False


signal.signal(signal.SIGTERM, stop)
while running:
    batch = consumer.consume(num_messages=7, timeout=0.5)
    batch = [m for m in batch if m.error() is None]
    if not batch:
        continue
    producer.begin_transaction()
    for m in batch:
        producer.produce(sink, key=m.key(), value=m.value() + b"-out", partition=m.partition())
    offsets = {}
    for m in batch:
        offsets[(m.topic(), m.partition())] = m.offset() + 1
    producer.send_offsets_to_transaction(
        [TopicPartition(t, p, o) for (t, p), o in offsets.items()],
        consumer.consumer_group_metadata(), 30)
    producer.commit_transaction(30)
    print(json.dumps({"committed": len(batch)}), flush=True)
consumer.close()
