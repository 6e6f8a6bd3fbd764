//! The consumer, manual assignment so far: `assign` partitions with a starting point
//! (earliest, latest, an offset, or a timestamp through ListOffsets), then `poll` fetches
//! from each partition's leader (long poll: fetch.min.bytes / fetch.max.wait.ms), decodes the
//! batches (any codec) and returns records in offset order per partition. Positions advance
//! as records are returned; OFFSET_OUT_OF_RANGE resets a position per auto.offset.reset.
//! Consumer groups come on top of this.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, ListOffsetsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use strom_types::batch;

use crate::cluster::Cluster;
use crate::error::{ClientError, Result};

/// Where a partition starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// The log start offset.
    Earliest,
    /// The log end offset (only new records).
    Latest,
    /// This offset.
    Offset(i64),
    /// The first record at or after this timestamp (ms); the end if none.
    Timestamp(i64),
}

/// Consumer settings, under Kafka's client property names.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// bootstrap.servers.
    pub bootstrap_servers: Vec<String>,
    /// client.id.
    pub client_id: String,
    /// fetch.min.bytes (1).
    pub fetch_min_bytes: i32,
    /// fetch.max.wait.ms (500).
    pub fetch_max_wait: Duration,
    /// fetch.max.bytes (50 MiB).
    pub fetch_max_bytes: i32,
    /// max.partition.fetch.bytes (1 MiB).
    pub max_partition_fetch_bytes: i32,
    /// auto.offset.reset: where an out-of-range position goes (latest, Kafka's default).
    pub auto_offset_reset: StartAt,
    /// request.timeout.ms (30 s).
    pub request_timeout: Duration,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            bootstrap_servers: vec!["localhost:9092".into()],
            client_id: "strom-consumer".into(),
            fetch_min_bytes: 1,
            fetch_max_wait: Duration::from_millis(500),
            fetch_max_bytes: 50 << 20,
            max_partition_fetch_bytes: 1 << 20,
            auto_offset_reset: StartAt::Latest,
            request_timeout: Duration::from_secs(30),
        }
    }
}

impl ConsumerConfig {
    /// Sets one property by its Kafka name.
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let bad = || ClientError::Protocol(format!("invalid value '{value}' for {key}"));
        let int = || value.parse::<i32>().map_err(|_| bad());
        match key {
            "bootstrap.servers" => {
                self.bootstrap_servers = value.split(',').map(|s| s.trim().to_string()).collect()
            }
            "client.id" => self.client_id = value.to_string(),
            "fetch.min.bytes" => self.fetch_min_bytes = int()?,
            "fetch.max.wait.ms" => {
                self.fetch_max_wait = Duration::from_millis(int()?.max(0) as u64)
            }
            "fetch.max.bytes" => self.fetch_max_bytes = int()?,
            "max.partition.fetch.bytes" => self.max_partition_fetch_bytes = int()?,
            "auto.offset.reset" => {
                self.auto_offset_reset = match value {
                    "earliest" => StartAt::Earliest,
                    "latest" => StartAt::Latest,
                    _ => return Err(bad()),
                }
            }
            "request.timeout.ms" => {
                self.request_timeout = Duration::from_millis(int()?.max(0) as u64)
            }
            _ => {
                return Err(ClientError::Protocol(format!(
                    "unknown consumer config {key}"
                )))
            }
        }
        Ok(())
    }
}

/// A consumed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Timestamp (ms).
    pub timestamp: i64,
    /// Key.
    pub key: Option<Bytes>,
    /// Value.
    pub value: Option<Bytes>,
    /// Headers, in order (duplicates kept).
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// A consumer with manually assigned partitions.
#[derive(Debug)]
pub struct Consumer {
    config: ConsumerConfig,
    cluster: Arc<Cluster>,
    /// Next offset to read, per assigned partition.
    positions: HashMap<(String, i32), i64>,
}

impl Consumer {
    /// A consumer with nothing assigned.
    pub fn new(config: ConsumerConfig) -> Consumer {
        let cluster = Cluster::new(
            config.bootstrap_servers.clone(),
            &config.client_id,
            config.request_timeout + config.fetch_max_wait,
        );
        Consumer {
            config,
            cluster,
            positions: HashMap::new(),
        }
    }

    /// Assigns partitions (replacing the assignment), each from its starting point.
    pub async fn assign(&mut self, partitions: &[(String, i32, StartAt)]) -> Result<()> {
        self.positions.clear();
        for (topic, partition, start) in partitions {
            let offset = self.resolve(topic, *partition, *start).await?;
            self.positions.insert((topic.clone(), *partition), offset);
        }
        Ok(())
    }

    /// Moves a partition's position.
    pub async fn seek(&mut self, topic: &str, partition: i32, start: StartAt) -> Result<()> {
        let offset = self.resolve(topic, partition, start).await?;
        self.positions
            .insert((topic.to_string(), partition), offset);
        Ok(())
    }

    /// The next offset to be read from a partition.
    pub fn position(&self, topic: &str, partition: i32) -> Option<i64> {
        self.positions.get(&(topic.to_string(), partition)).copied()
    }

    /// The offset `start` stands for (ListOffsets for all but an explicit offset).
    pub async fn resolve(&self, topic: &str, partition: i32, start: StartAt) -> Result<i64> {
        let timestamp = match start {
            StartAt::Offset(o) => return Ok(o),
            StartAt::Earliest => -2,
            StartAt::Latest => -1,
            StartAt::Timestamp(t) => t,
        };
        let conn = self.cluster.leader(topic, partition).await?;
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(partition)
                    .with_timestamp(timestamp)])]);
        let r = conn.send(&request).await?;
        let p = r
            .topics
            .first()
            .and_then(|t| t.partitions.first())
            .ok_or_else(|| ClientError::Protocol("empty ListOffsets response".into()))?;
        if p.error_code != 0 {
            return Err(ClientError::kafka(p.error_code));
        }
        if p.offset < 0 {
            // No record at or after the timestamp: the end.
            return Box::pin(self.resolve(topic, partition, StartAt::Latest)).await;
        }
        Ok(p.offset)
    }

    /// Fetches what is there (waiting up to fetch.max.wait.ms for fetch.min.bytes) from every
    /// assigned partition and returns it in offset order per partition.
    pub async fn poll(&mut self) -> Result<Vec<ConsumerRecord>> {
        let mut by_leader: HashMap<String, Vec<(String, i32, i64)>> = HashMap::new();
        for ((t, p), o) in &self.positions {
            let conn = self.cluster.leader(t, *p).await?;
            by_leader
                .entry(conn.addr().to_string())
                .or_default()
                .push((t.clone(), *p, *o));
        }
        let mut out = Vec::new();
        for (addr, parts) in by_leader {
            let conn = self.cluster.connection(&addr).await?;
            let mut topics: HashMap<String, Vec<FetchPartition>> = HashMap::new();
            for (t, p, o) in &parts {
                topics.entry(t.clone()).or_default().push(
                    FetchPartition::default()
                        .with_partition(*p)
                        .with_fetch_offset(*o)
                        .with_partition_max_bytes(self.config.max_partition_fetch_bytes)
                        .with_log_start_offset(-1)
                        .with_current_leader_epoch(-1),
                );
            }
            let request = FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(self.config.fetch_max_wait.as_millis() as i32)
                .with_min_bytes(self.config.fetch_min_bytes)
                .with_max_bytes(self.config.fetch_max_bytes)
                .with_session_epoch(-1)
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(t, ps)| {
                            FetchTopic::default()
                                .with_topic(TopicName(StrBytes::from_string(t)))
                                .with_partitions(ps)
                        })
                        .collect(),
                );
            let r = conn.send(&request).await?;
            if r.error_code != 0 {
                return Err(ClientError::kafka(r.error_code));
            }
            for t in r.responses {
                let topic = t.topic.0.to_string();
                for p in t.partitions {
                    let key = (topic.clone(), p.partition_index);
                    let Some(position) = self.positions.get(&key).copied() else {
                        continue;
                    };
                    match p.error_code {
                        0 => {}
                        1 => {
                            // OFFSET_OUT_OF_RANGE: auto.offset.reset decides.
                            let reset = self.config.auto_offset_reset;
                            let o = self.resolve(&topic, p.partition_index, reset).await?;
                            self.positions.insert(key, o);
                            continue;
                        }
                        code => {
                            let e = ClientError::kafka(code);
                            if e.is_retriable() {
                                self.cluster.invalidate(&topic);
                                continue;
                            }
                            return Err(e);
                        }
                    }
                    let Some(records) = p.records else { continue };
                    let next = decode(&topic, p.partition_index, position, &records, &mut out)?;
                    self.positions.insert(key, next);
                }
            }
        }
        Ok(out)
    }
}

/// Appends the records of `bytes` at or after `from`, returning the next position. A batch
/// cut at the end of a fetch (Kafka may send one) is left for the next fetch.
fn decode(
    topic: &str,
    partition: i32,
    from: i64,
    bytes: &[u8],
    out: &mut Vec<ConsumerRecord>,
) -> Result<i64> {
    let mut next = from;
    for b in batch::batches(bytes) {
        let Ok(b) = b else { break };
        let h = *b.header();
        if h.is_control() {
            next = next.max(h.next_offset());
            continue;
        }
        let records = b
            .records(256 << 20)
            .map_err(|e| ClientError::Protocol(format!("{topic}-{partition}: {e}")))?;
        let log_append = h.timestamp_type() == batch::TimestampType::LogAppendTime;
        for r in records.iter() {
            let r = r.map_err(|e| ClientError::Protocol(format!("{topic}-{partition}: {e}")))?;
            let offset = h.base_offset + i64::from(r.offset_delta);
            if offset < from {
                continue;
            }
            out.push(ConsumerRecord {
                topic: topic.to_string(),
                partition,
                offset,
                timestamp: if log_append {
                    h.max_timestamp
                } else {
                    h.base_timestamp + r.timestamp_delta
                },
                key: r.key.map(Bytes::copy_from_slice),
                value: r.value.map(Bytes::copy_from_slice),
                headers: r
                    .headers()
                    .map(|(k, v)| {
                        (
                            String::from_utf8_lossy(k).into_owned(),
                            v.map(Bytes::copy_from_slice),
                        )
                    })
                    .collect(),
            });
        }
        next = next.max(h.next_offset());
    }
    Ok(next)
}
