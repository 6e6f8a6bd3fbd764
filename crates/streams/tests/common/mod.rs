//! Shared by the Streams tests: a single-node Strom broker in this process ([`Broker`], as
//! in `crates/connect/tests/pg`), and helpers to create topics, produce input and read
//! output back.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use strom_client::{
    Admin, Consumer, ConsumerConfig, ConsumerRecord, Producer, ProducerConfig, ProducerRecord,
    StartAt,
};

/// A broker listening on a loopback port, stopped when dropped.
pub struct Broker {
    /// host:port.
    pub addr: String,
    _node: strom_broker::embedded::Embedded,
    _dir: tempfile::TempDir,
}

impl Broker {
    /// Starts one, waiting until it answers metadata requests.
    pub async fn start() -> Broker {
        let dir = tempfile::tempdir().unwrap();
        let node = strom_broker::embedded::Embedded::start(dir.path(), &[])
            .await
            .unwrap();
        Broker {
            addr: node.addr.clone(),
            _node: node,
            _dir: dir,
        }
    }

    /// Creates `topic` with `partitions` partitions.
    pub async fn create(&self, topic: &str, partitions: i32) {
        let admin = Admin::new(vec![self.addr.clone()], "test", Duration::from_secs(5));
        admin.create_topic(topic, partitions, 1, &[]).await.unwrap();
    }

    /// A producer to this broker.
    pub fn producer(&self) -> Producer {
        Producer::new(ProducerConfig {
            bootstrap_servers: vec![self.addr.clone()],
            ..Default::default()
        })
    }

    /// Sends `records` (key, value, timestamp) to `topic` by the default partitioner and
    /// returns where each went: (partition, offset).
    pub async fn produce(
        &self,
        topic: &str,
        records: &[(Option<Bytes>, Option<Bytes>, i64)],
    ) -> Vec<(i32, i64)> {
        let producer = self.producer();
        let mut waits = Vec::new();
        for (key, value, ts) in records {
            let record = ProducerRecord {
                topic: topic.to_string(),
                key: key.clone(),
                value: value.clone(),
                timestamp: Some(*ts),
                headers: vec![("origin".to_string(), Some(Bytes::from_static(b"test")))],
                ..Default::default()
            };
            waits.push(producer.send(record).await.unwrap());
        }
        producer.flush().await;
        let mut out = Vec::new();
        for w in waits {
            let m = w.await.unwrap();
            out.push((m.partition, m.offset));
        }
        producer.close().await;
        out
    }

    /// Every record of `topic` (all `partitions`) from the start: reads until `at_least`
    /// records are there (panicking after `timeout`), then for `settle` more, so records
    /// that should not be there have time to show up.
    pub async fn read(
        &self,
        topic: &str,
        partitions: i32,
        at_least: usize,
        timeout: Duration,
        settle: Duration,
    ) -> Vec<ConsumerRecord> {
        self.read_until(topic, partitions, timeout, settle, |r| r.len() >= at_least)
            .await
    }

    /// Every record of `topic` from the start: reads until `done` holds for what was read
    /// (panicking after `timeout`), then for `settle` more.
    pub async fn read_until(
        &self,
        topic: &str,
        partitions: i32,
        timeout: Duration,
        settle: Duration,
        done: impl Fn(&[ConsumerRecord]) -> bool,
    ) -> Vec<ConsumerRecord> {
        let mut consumer = Consumer::new(ConsumerConfig {
            bootstrap_servers: vec![self.addr.clone()],
            fetch_max_wait: Duration::from_millis(100),
            ..Default::default()
        });
        let parts: Vec<(String, i32, StartAt)> = (0..partitions)
            .map(|p| (topic.to_string(), p, StartAt::Earliest))
            .collect();
        consumer.assign(&parts).await.unwrap();
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        while !done(&out) {
            assert!(
                Instant::now() < deadline,
                "the records expected did not arrive in {topic} ({} there)",
                out.len()
            );
            out.extend(consumer.poll().await.unwrap());
        }
        let end = Instant::now() + settle;
        while Instant::now() < end {
            out.extend(consumer.poll().await.unwrap());
        }
        out
    }

    /// The offsets committed by `group` for `topic`'s partitions.
    pub async fn committed(&self, group: &str, topic: &str, partitions: i32) -> Vec<Option<i64>> {
        let consumer = Consumer::new(ConsumerConfig {
            bootstrap_servers: vec![self.addr.clone()],
            group_id: Some(group.to_string()),
            enable_auto_commit: false,
            ..Default::default()
        });
        let tps: Vec<(String, i32)> = (0..partitions).map(|p| (topic.to_string(), p)).collect();
        let c = consumer.committed(&tps).await.unwrap();
        tps.iter().map(|tp| c.get(tp).copied()).collect()
    }
}

/// Waits until `cond` holds, panicking with `what` after `timeout`.
pub async fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Streams properties for the tests: quick commits and a short session, so a killed
/// instance's partitions move on within seconds.
pub fn props(broker: &Broker, app: &str) -> Vec<(String, String)> {
    [
        ("application.id", app.to_string()),
        ("bootstrap.servers", broker.addr.clone()),
        ("commit.interval.ms", "200".to_string()),
        ("session.timeout.ms", "6000".to_string()),
        ("heartbeat.interval.ms", "500".to_string()),
        ("max.poll.interval.ms", "10000".to_string()),
        ("consumer.fetch.max.wait.ms", "100".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}
