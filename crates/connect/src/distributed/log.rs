//! A compacted topic read as a log of keyed changes (Kafka's `KafkaBasedLog`): every worker
//! reads the whole topic from the beginning, then follows it; writes go through an
//! idempotent producer with acks=all and return once the cluster has them. The three
//! storage topics (configs, offsets, statuses) are each one of these. This module owns
//! creating the topic when it is missing, the follower task, and "read to the end": wait
//! until everything written before the call has been applied.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use strom_client::{
    Admin, Consumer, ConsumerConfig, OffsetSpec, Producer, ProducerConfig, ProducerRecord, StartAt,
};
use tokio::sync::Notify;

use crate::worker::{apply_client_props, WorkerConfig};
use crate::ConnectError;

/// Applies one record (key, value; a `None` value is a tombstone) in topic order.
pub type Apply = Box<dyn FnMut(i32, i64, Option<Bytes>, Option<Bytes>) + Send>;

/// How one storage topic is made when missing.
#[derive(Debug, Clone)]
pub struct TopicSpec {
    /// Its name.
    pub name: String,
    /// Its partition count.
    pub partitions: i32,
    /// Its replication factor (-1: the broker's default).
    pub replication_factor: i16,
}

/// One storage topic, followed.
pub struct KafkaLog {
    topic: String,
    writer: LogWriter,
    admin: Admin,
    partitions: i32,
    /// The next offset to apply, per partition.
    positions: Arc<Mutex<HashMap<i32, i64>>>,
    progress: Arc<Notify>,
    follower: tokio::task::JoinHandle<()>,
}

impl Drop for KafkaLog {
    fn drop(&mut self) {
        self.follower.abort();
    }
}

/// The worker's security settings and its `prefix` client settings, as pairs.
fn client_pairs(config: &WorkerConfig, prefix: &str) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = config
        .props
        .iter()
        .filter(|(k, _)| {
            k.starts_with("security.") || k.starts_with("ssl.") || k.starts_with("sasl.")
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    pairs.extend(config.client_props(prefix, &Default::default()));
    pairs
}

/// An admin client with the worker's settings.
pub fn admin_of(config: &WorkerConfig) -> Result<Admin, ConnectError> {
    let mut security = strom_client::SecurityConfig::default();
    for (k, v) in client_pairs(config, "admin.") {
        if security.set(&k, &v).is_err() {
            continue; // not a security setting
        }
    }
    let bootstrap = config
        .bootstrap_servers
        .split(',')
        .map(|s| s.trim().to_string())
        .collect();
    Ok(Admin::secured(
        bootstrap,
        "connect-worker-admin",
        Duration::from_secs(30),
        &security,
    ))
}

impl KafkaLog {
    /// Creates the topic if it is missing (compacted, as Kafka's worker does), reads it to
    /// its end through `apply`, and keeps following it.
    pub async fn open(
        config: &WorkerConfig,
        spec: &TopicSpec,
        client_id: &str,
        mut apply: Apply,
    ) -> Result<KafkaLog, ConnectError> {
        let admin = admin_of(config)?;
        let compact = [("cleanup.policy".to_string(), "compact".to_string())];
        match admin
            .create_topic(
                &spec.name,
                spec.partitions,
                spec.replication_factor,
                &compact,
            )
            .await
        {
            Ok(()) => tracing::info!(topic = %spec.name, "created a Connect storage topic"),
            // TOPIC_ALREADY_EXISTS: another worker made it, or it was there.
            Err(strom_client::ClientError::Kafka { code: 36, .. }) => {}
            Err(e) => return Err(ConnectError::Kafka(e)),
        }
        let partitions = wait_for_partitions(&admin, &spec.name).await?;

        let mut producer = ProducerConfig {
            client_id: format!("{client_id}-producer"),
            ..ProducerConfig::default()
        };
        apply_client_props(&client_pairs(config, "producer."), |k, v| {
            producer.set(k, v)
        })?;
        // What the worker's settings cannot weaken: every write is acknowledged by all
        // in-sync replicas, once, in order.
        producer.set("acks", "all").map_err(ConnectError::Kafka)?;
        producer
            .set("enable.idempotence", "true")
            .map_err(ConnectError::Kafka)?;
        producer
            .set("linger.ms", "0")
            .map_err(ConnectError::Kafka)?;
        let producer = Arc::new(Producer::new(producer));

        let mut consumer = ConsumerConfig {
            client_id: format!("{client_id}-consumer"),
            group_id: None,
            enable_auto_commit: false,
            auto_offset_reset: StartAt::Earliest,
            ..ConsumerConfig::default()
        };
        apply_client_props(&client_pairs(config, "consumer."), |k, v| {
            consumer.set(k, v)
        })?;
        consumer.group_id = None;
        let mut consumer = Consumer::new(consumer);
        let all: Vec<(String, i32, StartAt)> = (0..partitions)
            .map(|p| (spec.name.clone(), p, StartAt::Earliest))
            .collect();
        consumer.assign(&all).await.map_err(ConnectError::Kafka)?;

        let positions = Arc::new(Mutex::new(HashMap::new()));
        let progress = Arc::new(Notify::new());
        let follower = {
            let positions = positions.clone();
            let progress = progress.clone();
            let topic = spec.name.clone();
            tokio::spawn(async move {
                loop {
                    match consumer.poll().await {
                        Ok(records) => {
                            if records.is_empty() {
                                continue;
                            }
                            let mut at = HashMap::new();
                            for r in records {
                                at.insert(r.partition, r.offset + 1);
                                apply(r.partition, r.offset, r.key, r.value);
                            }
                            positions.lock().extend(at);
                            progress.notify_waiters();
                        }
                        Err(e) => {
                            tracing::warn!(%topic, "reading a Connect storage topic: {e}");
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                    }
                }
            })
        };
        let log = KafkaLog {
            topic: spec.name.clone(),
            writer: LogWriter {
                topic: spec.name.clone(),
                producer,
            },
            admin,
            partitions,
            positions,
            progress,
            follower,
        };
        log.read_to_end().await?;
        Ok(log)
    }

    /// Waits until every record written before this call has been applied.
    pub async fn read_to_end(&self) -> Result<(), ConnectError> {
        let parts: Vec<(String, i32)> = (0..self.partitions)
            .map(|p| (self.topic.clone(), p))
            .collect();
        let ends = self
            .admin
            .list_offsets(&parts, OffsetSpec::Latest)
            .await
            .map_err(ConnectError::Kafka)?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let notified = self.progress.notified();
            let behind = {
                let at = self.positions.lock();
                ends.iter()
                    .any(|((_, p), end)| end.offset > *at.get(p).unwrap_or(&0))
            };
            if !behind {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(ConnectError::Connect(format!(
                    "could not read the topic {} to its end within 60 s",
                    self.topic
                )));
            }
        }
    }

    /// Writes one record (`None` value: a tombstone) and waits for the cluster to have it.
    pub async fn send(&self, key: String, value: Option<Bytes>) -> Result<(), ConnectError> {
        self.writer.send(key, value).await
    }

    /// Writes these records in order, then waits for all of them.
    pub async fn send_all(
        &self,
        records: Vec<(String, Option<Bytes>)>,
    ) -> Result<(), ConnectError> {
        self.writer.send_all(records).await
    }

    /// A writer to the topic that can be moved into another task.
    pub fn writer(&self) -> LogWriter {
        self.writer.clone()
    }
}

/// Writes to one storage topic.
#[derive(Clone)]
pub struct LogWriter {
    topic: String,
    producer: Arc<Producer>,
}

impl LogWriter {
    /// Writes one record (`None` value: a tombstone) and waits for the cluster to have it.
    /// The key picks the partition, so one key's records stay in order.
    pub async fn send(&self, key: String, value: Option<Bytes>) -> Result<(), ConnectError> {
        self.send_all(vec![(key, value)]).await
    }

    /// Writes these records in order, then waits for all of them.
    pub async fn send_all(
        &self,
        records: Vec<(String, Option<Bytes>)>,
    ) -> Result<(), ConnectError> {
        let mut acks = Vec::with_capacity(records.len());
        for (key, value) in records {
            let record = ProducerRecord {
                topic: self.topic.clone(),
                partition: None,
                key: Some(Bytes::from(key)),
                value,
                headers: Vec::new(),
                timestamp: None,
            };
            acks.push(
                self.producer
                    .send(record)
                    .await
                    .map_err(ConnectError::Kafka)?,
            );
        }
        for ack in acks {
            ack.await.map_err(ConnectError::Kafka)?;
        }
        Ok(())
    }
}

/// The topic's partition count, once its metadata is out.
async fn wait_for_partitions(admin: &Admin, topic: &str) -> Result<i32, ConnectError> {
    let mut last = None;
    for _ in 0..100 {
        match admin.describe_topics(&[topic.to_string()]).await {
            Ok(d) => {
                if let Some(t) = d.first().filter(|t| !t.partitions.is_empty()) {
                    return Ok(t.partitions.len() as i32);
                }
            }
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(match last {
        Some(e) => ConnectError::Kafka(e),
        None => ConnectError::Connect(format!("the topic {topic} has no partitions")),
    })
}
