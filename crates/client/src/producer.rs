//! The producer: `send` places a record in its partition's open batch (Kafka's partitioner)
//! and returns a future of its offset; a sender task ships batches when they reach
//! batch.size, when linger.ms has passed, or on flush, one request per leader, with up to
//! max.in.flight.requests.per.connection batches of a partition in flight.
//!
//! Idempotence (enable.idempotence, on by default as in Kafka 3+, with acks=all and at most 5
//! in flight) takes a producer id from InitProducerId and numbers each partition's batches;
//! the broker drops a retried batch it already has and refuses one that would skip a
//! number, so a retried batch and those after it go back in sequence order and records keep
//! their order and are written once. Without idempotence, one batch per partition is in
//! flight when max.in.flight is 1. buffer.memory bounds what waits (send waits for room);
//! delivery.timeout.ms bounds how long a record may take.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{InitProducerIdRequest, ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use parking_lot::Mutex;
use strom_types::compression::Compression;
use strom_types::record::BatchBuilder;
use tokio::sync::{oneshot, Notify, OwnedSemaphorePermit, Semaphore};

use crate::cluster::Cluster;
use crate::connection::Connection;
use crate::error::{ClientError, Result};
use crate::partitioner::{partition_for_key, StickyPartitioner};

/// Producer settings, under Kafka's client property names.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// bootstrap.servers.
    pub bootstrap_servers: Vec<String>,
    /// client.id.
    pub client_id: String,
    /// security.protocol, ssl.*, sasl.* ([`crate::security`]).
    pub security: crate::security::SecurityConfig,
    /// acks: 0, 1 or -1 (all; Kafka's default).
    pub acks: i16,
    /// linger.ms (5, Kafka 4's default).
    pub linger: Duration,
    /// batch.size in bytes (16384).
    pub batch_size: usize,
    /// compression.type (none).
    pub compression: Compression,
    /// request.timeout.ms (30 s).
    pub request_timeout: Duration,
    /// delivery.timeout.ms (120 s).
    pub delivery_timeout: Duration,
    /// retry.backoff.ms (100).
    pub retry_backoff: Duration,
    /// buffer.memory in bytes (32 MiB).
    pub buffer_memory: usize,
    /// enable.idempotence (true). In effect with acks=all and max.in.flight at most 5, and
    /// when the broker serves InitProducerId; otherwise off, as Kafka does when it is not
    /// set explicitly.
    pub enable_idempotence: bool,
    /// max.in.flight.requests.per.connection (5): batches of one partition in flight.
    pub max_in_flight: usize,
    /// transactional.id (none): makes the producer transactional (idempotence on; see
    /// [`Producer::init_transactions`]).
    pub transactional_id: Option<String>,
    /// transaction.timeout.ms (60 s): how long the coordinator lets a transaction stay open.
    pub transaction_timeout: Duration,
    /// max.block.ms (60 s): how long `send` waits for a topic that is not in the metadata
    /// yet (being auto-created, or just created).
    pub max_block: Duration,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            bootstrap_servers: vec!["localhost:9092".into()],
            client_id: "strom-producer".into(),
            security: Default::default(),
            acks: -1,
            linger: Duration::from_millis(5),
            batch_size: 16_384,
            compression: Compression::None,
            request_timeout: Duration::from_secs(30),
            delivery_timeout: Duration::from_secs(120),
            retry_backoff: Duration::from_millis(100),
            buffer_memory: 32 << 20,
            enable_idempotence: true,
            max_in_flight: 5,
            transactional_id: None,
            transaction_timeout: Duration::from_secs(60),
            max_block: Duration::from_secs(60),
        }
    }
}

impl ProducerConfig {
    /// Sets one property by its Kafka name; an unknown name or a bad value is an error that
    /// names it.
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        if self.security.set(key, value)? {
            return Ok(());
        }
        let bad = || ClientError::Protocol(format!("invalid value '{value}' for {key}"));
        let ms = || {
            value
                .parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| bad())
        };
        match key {
            "bootstrap.servers" => {
                self.bootstrap_servers = value.split(',').map(|s| s.trim().to_string()).collect()
            }
            "client.id" => self.client_id = value.to_string(),
            "acks" => {
                self.acks = match value {
                    "all" | "-1" => -1,
                    "1" => 1,
                    "0" => 0,
                    _ => return Err(bad()),
                }
            }
            "linger.ms" => self.linger = ms()?,
            "batch.size" => self.batch_size = value.parse().map_err(|_| bad())?,
            "compression.type" => {
                self.compression = match value {
                    "none" => Compression::None,
                    "gzip" => Compression::Gzip,
                    "snappy" => Compression::Snappy,
                    "lz4" => Compression::Lz4,
                    "zstd" => Compression::Zstd,
                    _ => return Err(bad()),
                }
            }
            "request.timeout.ms" => self.request_timeout = ms()?,
            "delivery.timeout.ms" => self.delivery_timeout = ms()?,
            "retry.backoff.ms" => self.retry_backoff = ms()?,
            "buffer.memory" => self.buffer_memory = value.parse().map_err(|_| bad())?,
            "enable.idempotence" => {
                self.enable_idempotence = match value {
                    "true" => true,
                    "false" => false,
                    _ => return Err(bad()),
                }
            }
            "transactional.id" => {
                self.transactional_id = Some(value.to_string()).filter(|v| !v.is_empty())
            }
            "transaction.timeout.ms" => self.transaction_timeout = ms()?,
            "max.block.ms" => self.max_block = ms()?,
            "max.in.flight.requests.per.connection" => {
                self.max_in_flight = value.parse().map_err(|_| bad())?;
                if self.max_in_flight == 0 {
                    return Err(bad());
                }
            }
            _ => {
                return Err(ClientError::Protocol(format!(
                    "unknown producer config {key}"
                )))
            }
        }
        Ok(())
    }
}

/// Chooses the partition of records sent without one (Kafka's `partitioner.class`); the
/// default is Kafka's own (murmur2 of the key, sticky batches without a key).
pub trait Partitioner: Send + Sync {
    /// The partition, in `0..partition_count`, for a record of `topic`.
    fn partition(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        partition_count: i32,
    ) -> i32;
}

/// A record to send.
#[derive(Debug, Clone, Default)]
pub struct ProducerRecord {
    /// Topic.
    pub topic: String,
    /// Partition, or `None` for the partitioner's choice.
    pub partition: Option<i32>,
    /// Key.
    pub key: Option<Bytes>,
    /// Value (`None` is a tombstone).
    pub value: Option<Bytes>,
    /// Headers, in order.
    pub headers: Vec<(String, Option<Bytes>)>,
    /// Timestamp (ms), or `None` for now.
    pub timestamp: Option<i64>,
}

/// Where a record was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordMetadata {
    /// Partition.
    pub partition: i32,
    /// Offset (-1 with acks=0).
    pub offset: i64,
    /// The record's timestamp (the broker's under LogAppendTime).
    pub timestamp: i64,
}

type Waiter = oneshot::Sender<Result<RecordMetadata>>;

/// A topic and partition.
type Tp = (String, i32);

const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
const DUPLICATE_SEQUENCE_NUMBER: i16 = 46;

/// Batches taken for sending, each with its partition.
type Taken = Vec<(Tp, Batch)>;

struct Batch {
    builder: BatchBuilder,
    waiters: Vec<(Waiter, i64)>,
    created: Instant,
    bytes: usize,
    _memory: Option<OwnedSemaphorePermit>,
    attempts: u32,
    keyless: bool,
    /// The base sequence, fixed when the batch is first sent (idempotence).
    sequence: Option<i32>,
    /// The producer id and epoch the sequence belongs to.
    producer: Option<(i64, i16)>,
}

#[derive(Default)]
struct Queue {
    open: Option<Batch>,
    ready: VecDeque<Batch>,
    in_flight: usize,
    /// The connection the batches in flight were written to.
    sent_on: Option<Arc<Connection>>,
    retry_at: Option<Instant>,
    /// The next batch's base sequence (idempotence).
    next_sequence: i32,
    /// The partition's window (idempotence): the base sequences numbered under the current
    /// producer id, from the oldest not yet resolved on, each with whether it has been.
    /// The broker recognises a retried batch as a duplicate only among the last five it
    /// wrote, so a batch is numbered only while fewer than max.in.flight are in the window:
    /// however many of them the broker wrote, the oldest unresolved one is still among
    /// its last five.
    numbered: VecDeque<(i32, bool)>,
}

impl Queue {
    /// Numbers the next batch from 0 (a new producer id or epoch).
    pub(crate) fn restart_sequences(&mut self) {
        self.next_sequence = 0;
        self.numbered.clear();
    }

    /// Marks a numbered batch resolved and slides the window past the resolved ones.
    fn resolve(&mut self, sequence: i32) {
        if let Some(entry) = self.numbered.iter_mut().find(|(s, _)| *s == sequence) {
            entry.1 = true;
        }
        while self.numbered.front().is_some_and(|(_, done)| *done) {
            self.numbered.pop_front();
        }
    }

    /// Whether the batch at the head of the queue may go now (idempotence). A batch
    /// already numbered goes again only as the oldest unresolved one, so that after a
    /// failure the partition's batches reach the broker strictly in order, one at a time,
    /// until the retries are through (as Kafka's producer does); a new batch is numbered
    /// only while the window has room.
    fn head_may_go(&self, producer: (i64, i16), max_in_flight: usize) -> bool {
        match self.ready.front() {
            Some(b) if b.sequence.is_some() && b.producer == Some(producer) => {
                self.numbered.front().map(|(seq, _)| *seq) == b.sequence
            }
            _ => self.numbered.len() < max_in_flight,
        }
    }
}

#[derive(Default)]
struct State {
    queues: HashMap<(String, i32), Queue>,
    flushing: usize,
    closed: bool,
}

impl State {
    fn idle(&self) -> bool {
        self.queues
            .values()
            .all(|q| q.open.is_none() && q.ready.is_empty() && q.in_flight == 0)
    }
}

struct Inner {
    config: ProducerConfig,
    cluster: Arc<Cluster>,
    sticky: StickyPartitioner,
    custom: Option<Arc<dyn Partitioner>>,
    state: Mutex<State>,
    wake: Notify,
    drained: Notify,
    memory: Arc<Semaphore>,
    /// The producer id and epoch once InitProducerId answered; `None` while idempotence
    /// waits for it or is off.
    producer_id: Mutex<Option<(i64, i16)>>,
    /// Idempotence in effect (turned off if the broker has no InitProducerId).
    idempotent: std::sync::atomic::AtomicBool,
    /// Transactions (with a transactional.id).
    txn: Mutex<txn::TxnState>,
    /// Serializes the calls that add partitions to the open transaction.
    txn_calls: tokio::sync::Mutex<()>,
}

/// An asynchronous Kafka producer.
pub struct Producer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("client_id", &self.inner.config.client_id)
            .finish()
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Producer {
    /// A producer; its sender task runs on the current tokio runtime.
    pub fn new(config: ProducerConfig) -> Producer {
        Producer::build(config, None)
    }

    /// A producer whose records without a partition go where `partitioner` says.
    pub fn with_partitioner(config: ProducerConfig, partitioner: Arc<dyn Partitioner>) -> Producer {
        Producer::build(config, Some(partitioner))
    }

    fn build(config: ProducerConfig, custom: Option<Arc<dyn Partitioner>>) -> Producer {
        let cluster = Cluster::secured(
            config.bootstrap_servers.clone(),
            &config.client_id,
            config.request_timeout,
            Duration::from_secs(300),
            &config.security,
        );
        let mut config = config;
        if config.transactional_id.is_some() {
            // Transactions need idempotence, hence acks=all and at most 5 in flight.
            config.acks = -1;
            config.max_in_flight = config.max_in_flight.min(5);
        }
        let idempotent = config.transactional_id.is_some()
            || (config.enable_idempotence && config.acks == -1 && config.max_in_flight <= 5);
        let inner = Arc::new(Inner {
            memory: Arc::new(Semaphore::new(config.buffer_memory.min(u32::MAX as usize))),
            producer_id: Mutex::new(None),
            idempotent: std::sync::atomic::AtomicBool::new(idempotent),
            txn: Mutex::new(txn::TxnState::default()),
            txn_calls: tokio::sync::Mutex::new(()),
            config,
            cluster,
            sticky: StickyPartitioner::default(),
            custom,
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            drained: Notify::new(),
        });
        tokio::spawn(sender(inner.clone()));
        Producer { inner }
    }

    /// The topic's partition count; while the metadata does not have the topic (it is being
    /// auto-created, or was just created elsewhere), asks again for up to max.block.ms, as
    /// Kafka's producer does, then fails with the last error.
    async fn partition_count(&self, topic: &str) -> Result<i32> {
        let inner = &self.inner;
        let deadline = Instant::now() + inner.config.max_block;
        let mut backoff = inner.config.retry_backoff;
        loop {
            match inner.cluster.partition_count(topic).await {
                // UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE.
                Err(ClientError::Kafka { code: 3 | 5, .. })
                    if Instant::now() + backoff < deadline =>
                {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                outcome => return outcome,
            }
        }
    }

    /// Queues `record`; the returned future resolves once the broker has it (per acks). Waits
    /// for room when buffer.memory is full.
    pub async fn send(
        &self,
        record: ProducerRecord,
    ) -> Result<impl Future<Output = Result<RecordMetadata>>> {
        let inner = &self.inner;
        let count = self.partition_count(&record.topic).await?;
        let partition = match (record.partition, &record.key, &inner.custom) {
            (Some(p), _, _) => p,
            (None, key, Some(custom)) => custom.partition(
                &record.topic,
                key.as_deref(),
                record.value.as_deref(),
                count,
            ),
            (None, Some(k), None) => partition_for_key(k, count),
            (None, None, None) => inner.sticky.partition(&record.topic, count),
        };
        if partition < 0 || partition >= count {
            return Err(ClientError::kafka(3)); // UNKNOWN_TOPIC_OR_PARTITION
        }
        if inner.config.transactional_id.is_some() {
            inner
                .add_to_transaction(&(record.topic.clone(), partition))
                .await?;
        }
        let size = 32
            + record.key.as_ref().map_or(0, |k| k.len())
            + record.value.as_ref().map_or(0, |v| v.len())
            + record
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.as_ref().map_or(0, |v| v.len()) + 8)
                .sum::<usize>();
        let permit = inner
            .memory
            .clone()
            .acquire_many_owned(size.min(inner.config.buffer_memory) as u32)
            .await
            .map_err(|_| ClientError::Closed)?;
        let timestamp = record.timestamp.unwrap_or_else(now_ms);
        let (tx, rx) = oneshot::channel();
        let wake_sender;
        {
            let mut state = inner.state.lock();
            if state.closed {
                return Err(ClientError::Closed);
            }
            let q = state
                .queues
                .entry((record.topic.clone(), partition))
                .or_default();
            let full = q
                .open
                .as_ref()
                .is_some_and(|b| b.bytes + size > inner.config.batch_size);
            // The sender learns of a batch to ship or a new linger deadline; appending to a
            // batch it already knows of needs no wake-up (no per-record work there).
            wake_sender = full || q.open.is_none();
            if full {
                if let Some(b) = q.open.take() {
                    if b.keyless {
                        inner.sticky.next_batch(&record.topic, partition, count);
                    }
                    q.ready.push_back(b);
                }
            }
            let batch = q.open.get_or_insert_with(|| Batch {
                builder: BatchBuilder::new(inner.config.compression),
                waiters: Vec::new(),
                created: Instant::now(),
                bytes: 0,
                _memory: None,
                attempts: 0,
                keyless: record.key.is_none() && record.partition.is_none(),
                sequence: None,
                producer: None,
            });
            let headers: Vec<(&[u8], Option<&[u8]>)> = record
                .headers
                .iter()
                .map(|(k, v)| (k.as_bytes(), v.as_deref()))
                .collect();
            batch.builder.append(
                timestamp,
                record.key.as_deref(),
                record.value.as_deref(),
                &headers,
            );
            batch.bytes += size;
            batch.waiters.push((tx, timestamp));
            match &mut batch._memory {
                Some(p) => p.merge(permit),
                slot => *slot = Some(permit),
            }
        }
        // A full batch goes now; a new one may end its linger sooner than what the sender
        // sleeps for. Either way the sender looks again.
        if wake_sender {
            inner.wake.notify_one();
        }
        Ok(async move { rx.await.unwrap_or(Err(ClientError::Closed)) })
    }

    /// Sends everything queued now and waits until each of it has an outcome.
    pub async fn flush(&self) {
        self.inner.state.lock().flushing += 1;
        self.inner.wake.notify_one();
        loop {
            // Registered before the check, so the sender's notice cannot slip between them.
            let drained = self.inner.drained.notified();
            if self.inner.state.lock().idle() {
                break;
            }
            drained.await;
        }
        self.inner.state.lock().flushing -= 1;
    }

    /// Flushes, then stops the sender.
    pub async fn close(&self) {
        self.flush().await;
        self.inner.state.lock().closed = true;
        self.inner.wake.notify_one();
    }
}

#[path = "transaction.rs"]
mod txn;

/// What the sender takes out of the queues in one round: per partition, one batch.
fn take_ready(inner: &Inner) -> (Taken, Option<Instant>) {
    let now = Instant::now();
    let idempotent = inner.is_idempotent();
    let producer = *inner.producer_id.lock();
    if idempotent && producer.is_none() {
        return (Vec::new(), None); // InitProducerId first
    }
    let max_in_flight = inner.config.max_in_flight;
    let mut state = inner.state.lock();
    let flushing = state.flushing > 0 || state.closed;
    let linger = inner.config.linger;
    let mut out = Vec::new();
    let mut next: Option<Instant> = None;
    for (tp, q) in state.queues.iter_mut() {
        if q.in_flight >= max_in_flight {
            continue;
        }
        if let Some(at) = q.retry_at {
            // A retry waits for the backoff and for every batch still in flight, so the
            // batches go out again in order.
            if q.in_flight > 0 {
                continue;
            }
            if at > now {
                next = Some(next.map_or(at, |n| n.min(at)));
                continue;
            }
            q.retry_at = None;
        }
        if q.ready.is_empty() {
            let due = q.open.as_ref().map(|b| {
                let due =
                    flushing || b.created + linger <= now || b.bytes >= inner.config.batch_size;
                (due, b.created + linger)
            });
            match due {
                Some((true, _)) => {
                    if let Some(b) = q.open.take() {
                        q.ready.push_back(b);
                    }
                }
                Some((false, at)) => next = Some(next.map_or(at, |n| n.min(at))),
                None => {}
            }
        }
        if let (Some(pid), true) = (producer, idempotent) {
            if !q.head_may_go(pid, max_in_flight) {
                continue;
            }
        }
        if let Some(mut b) = q.ready.pop_front() {
            if let (Some((id, epoch)), true) = (producer, idempotent) {
                // A batch numbered under a producer id since replaced is numbered again.
                if b.sequence.is_none() || b.producer != Some((id, epoch)) {
                    let seq = q.next_sequence;
                    // Sequences wrap to 0 after i32::MAX, as Kafka's do.
                    let next = i64::from(seq) + i64::from(b.builder.len());
                    q.next_sequence = (next % (i64::from(i32::MAX) + 1)) as i32;
                    b.sequence = Some(seq);
                    b.producer = Some((id, epoch));
                    q.numbered.push_back((seq, false));
                    let builder =
                        std::mem::replace(&mut b.builder, BatchBuilder::new(Compression::None));
                    b.builder = builder
                        .producer(id, epoch, seq)
                        .transactional(inner.config.transactional_id.is_some());
                }
            }
            q.in_flight += 1;
            out.push((tp.clone(), b));
        }
    }
    (out, next)
}

impl Inner {
    fn is_idempotent(&self) -> bool {
        self.idempotent.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Gets a producer id and epoch (InitProducerId, no transactional id), retrying while the
/// cluster is unreachable; a broker without the API turns idempotence off.
async fn init_producer_id(inner: &Inner) {
    let mut backoff = inner.config.retry_backoff;
    loop {
        let outcome = async {
            let conn = inner.cluster.any_connection().await?;
            let r = conn
                .send(
                    &InitProducerIdRequest::default()
                        .with_transaction_timeout_ms(i32::MAX)
                        .with_producer_id((-1).into())
                        .with_producer_epoch(-1),
                )
                .await?;
            match r.error_code {
                0 => Ok((r.producer_id.0, r.producer_epoch)),
                code => Err(ClientError::kafka(code)),
            }
        }
        .await;
        match outcome {
            Ok(pid) => {
                tracing::debug!(producer_id = pid.0, epoch = pid.1, "idempotent producer");
                *inner.producer_id.lock() = Some(pid);
                return;
            }
            Err(e) if e.is_retriable() => {
                tracing::debug!(error = %e, "InitProducerId; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
            Err(e) => {
                tracing::warn!(error = %e, "no producer id; idempotence is off");
                inner
                    .idempotent
                    .store(false, std::sync::atomic::Ordering::Relaxed);
                return;
            }
        }
    }
}

/// Drops the producer id, numbers every partition from 0 again, and asks for a new id.
fn reset_producer_id(inner: &Arc<Inner>) {
    *inner.producer_id.lock() = None;
    for q in inner.state.lock().queues.values_mut() {
        q.restart_sequences();
    }
    let inner = inner.clone();
    tokio::spawn(async move {
        init_producer_id(&inner).await;
        inner.wake.notify_one();
    });
}

async fn sender(inner: Arc<Inner>) {
    // A transactional producer gets its id from init_transactions.
    if inner.is_idempotent() && inner.config.transactional_id.is_none() {
        init_producer_id(&inner).await;
    }
    loop {
        let woken = inner.wake.notified();
        let (batches, next) = take_ready(&inner);
        if batches.is_empty() {
            {
                let state = inner.state.lock();
                if state.idle() {
                    inner.drained.notify_waiters();
                    if state.closed {
                        return;
                    }
                }
            }
            match next {
                Some(at) => {
                    let _ = tokio::time::timeout_at(at.into(), woken).await;
                }
                None => woken.await,
            }
            continue;
        }
        // One request per leader.
        let mut by_leader: HashMap<String, Taken> = HashMap::new();
        for (tp, b) in batches {
            match inner.cluster.leader(&tp.0, tp.1).await {
                Ok(conn) => by_leader
                    .entry(conn.addr().to_string())
                    .or_default()
                    .push((tp, b)),
                // A numbered batch dropped here would leave a gap in its sequence.
                Err(e) => {
                    let retriable = e.is_retriable();
                    retry_or_fail(&inner, tp, b, retriable, e.to_string())
                }
            }
        }
        // Written here, in the order taken, so a partition's batches reach the broker in
        // order; the responses are awaited on their own tasks.
        for (addr, group) in by_leader {
            send_to(&inner, &addr, group).await;
        }
    }
}

async fn send_to(inner: &Arc<Inner>, addr: &str, group: Taken) {
    let conn = match inner.cluster.connection(addr).await {
        Ok(c) => c,
        Err(e) => {
            for (tp, b) in group {
                retry_or_fail(inner, tp, b, e.is_retriable(), e.to_string());
            }
            return;
        }
    };
    // A partition's batches never overtake each other: one whose earlier batches are still
    // out on another connection (closed, their answers not yet handled) waits, as a retry,
    // until they are resolved and re-queued in sequence order. Otherwise a later batch
    // could reach the broker first on the new connection, and the earlier one would be
    // refused as out of sequence on every retry.
    let (group, held): (Taken, Taken) = {
        let state = inner.state.lock();
        group.into_iter().partition(|(tp, _)| {
            state.queues.get(tp).is_none_or(|q| {
                q.in_flight <= 1 || q.sent_on.as_ref().is_none_or(|c| Arc::ptr_eq(c, &conn))
            })
        })
    };
    for (tp, b) in held {
        retry_or_fail(
            inner,
            tp,
            b,
            true,
            "earlier batches are in flight on a connection that closed".into(),
        );
    }
    if group.is_empty() {
        return;
    }
    let mut topics: HashMap<String, Vec<PartitionProduceData>> = HashMap::new();
    let mut pending = Vec::new();
    for ((topic, partition), batch) in group {
        match batch.builder.build(0) {
            Ok(bytes) => {
                topics.entry(topic.clone()).or_default().push(
                    PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(Bytes::from(bytes))),
                );
                pending.push(((topic, partition), batch));
            }
            Err(e) => finish(
                inner,
                (topic, partition),
                batch,
                Err(ClientError::Protocol(format!("compression: {e}"))),
            ),
        }
    }
    let request =
        ProduceRequest::default()
            .with_transactional_id(inner.config.transactional_id.as_deref().map(|t| {
                kafka_protocol::messages::TransactionalId(StrBytes::from_string(t.into()))
            }))
            .with_acks(inner.config.acks)
            .with_timeout_ms(inner.config.request_timeout.as_millis() as i32)
            .with_topic_data(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        TopicProduceData::default()
                            .with_name(TopicName(StrBytes::from_string(t)))
                            .with_partition_data(ps)
                    })
                    .collect(),
            );
    if inner.config.acks == 0 {
        let outcome = match inner.produce_version(&conn) {
            Ok(v) => conn.send_no_response(&request, v).await,
            Err(e) => Err(e),
        };
        for (tp, b) in pending {
            let r = outcome
                .as_ref()
                .map(|_| -1)
                .map_err(|e| ClientError::Protocol(e.to_string()));
            finish(inner, tp, b, r);
        }
        return;
    }
    let response = match inner.produce_version(&conn) {
        Ok(v) => conn.start(&request, v, inner.config.request_timeout).await,
        Err(e) => Err(e),
    };
    let response = match response {
        Ok(r) => r,
        Err(e) => {
            for (tp, b) in pending {
                retry_or_fail(inner, tp, b, e.is_retriable(), e.to_string());
            }
            return;
        }
    };
    {
        let mut state = inner.state.lock();
        for (tp, _) in &pending {
            if let Some(q) = state.queues.get_mut(tp) {
                q.sent_on = Some(conn.clone());
            }
        }
    }
    let inner = inner.clone();
    tokio::spawn(async move { complete(&inner, pending, response.await) });
}

/// Resolves or retries the batches of one Produce request by its response.
fn complete(
    inner: &Arc<Inner>,
    pending: Vec<((String, i32), Batch)>,
    response: Result<kafka_protocol::messages::ProduceResponse>,
) {
    match response {
        Err(e) => {
            let retriable = e.is_retriable();
            for (tp, b) in pending {
                retry_or_fail(inner, tp, b, retriable, e.to_string());
            }
        }
        Ok(response) => {
            let mut results: HashMap<(String, i32), (i16, i64, i64)> = HashMap::new();
            for t in &response.responses {
                for p in &t.partition_responses {
                    if p.error_code != 0 {
                        tracing::debug!(topic = %t.name.0, partition = p.index, code = p.error_code, message = ?p.error_message, "produce refused");
                    }
                    results.insert(
                        (t.name.0.to_string(), p.index),
                        (p.error_code, p.base_offset, p.log_append_time_ms),
                    );
                }
            }
            for (tp, b) in pending {
                match results.get(&tp).copied() {
                    Some((0, base, append_time)) => {
                        finish_with_time(inner, tp, b, Ok(base), append_time)
                    }
                    // Already written by an earlier attempt whose answer was lost (the
                    // broker gives no offset then): delivered.
                    Some((DUPLICATE_SEQUENCE_NUMBER, _, _)) => finish(inner, tp, b, Ok(-1)),
                    // A batch before this one failed and is being retried: this one goes
                    // again after it.
                    Some((OUT_OF_ORDER_SEQUENCE_NUMBER, _, _)) if b.sequence.is_some() => {
                        retry_or_fail(inner, tp, b, true, "out of order sequence".into())
                    }
                    Some((code, _, _)) => {
                        let e = ClientError::kafka(code);
                        if e.is_retriable() {
                            inner.cluster.invalidate(&tp.0);
                        }
                        retry_or_fail(inner, tp, b, e.is_retriable(), e.to_string());
                    }
                    None => retry_or_fail(inner, tp, b, true, "no answer for the partition".into()),
                }
            }
        }
    }
}

/// Puts a failed batch back at the front of its partition's queue after retry.backoff.ms, or
/// fails its records once delivery.timeout.ms has passed or the error is final.
fn retry_or_fail(
    inner: &Arc<Inner>,
    tp: (String, i32),
    mut batch: Batch,
    retriable: bool,
    why: String,
) {
    batch.attempts += 1;
    if retriable && batch.created.elapsed() < inner.config.delivery_timeout {
        tracing::debug!(topic = %tp.0, partition = tp.1, attempts = batch.attempts, sequence = ?batch.sequence, records = batch.builder.len(), %why, "retrying a batch");
        let mut state = inner.state.lock();
        let q = state.queues.entry(tp).or_default();
        // In sequence order among the batches waiting (idempotence); first otherwise.
        let at = match batch.sequence {
            Some(seq) => q
                .ready
                .iter()
                .position(|b| b.sequence.is_none_or(|s| s > seq))
                .unwrap_or(q.ready.len()),
            None => 0,
        };
        q.ready.insert(at, batch);
        q.in_flight = q.in_flight.saturating_sub(1);
        q.retry_at = Some(Instant::now() + inner.config.retry_backoff);
        drop(state);
        inner.wake.notify_one();
        return;
    }
    let err = if retriable {
        ClientError::Timeout(inner.config.delivery_timeout)
    } else {
        ClientError::Protocol(why)
    };
    if inner.config.transactional_id.is_some() {
        // The transaction cannot commit without it: the application aborts, and the gap
        // in the sequence goes with the abort marker.
        inner
            .txn
            .lock()
            .abortable
            .get_or_insert_with(|| format!("a send to {}-{} failed: {err}", tp.0, tp.1));
    } else if batch.producer.is_some() && batch.producer == *inner.producer_id.lock() {
        // A numbered batch is given up: its sequence numbers leave a gap the broker would
        // refuse every later batch of the partition for. As Kafka's producer does, start
        // over with a new producer id and sequences from 0.
        reset_producer_id(inner);
    }
    finish(inner, tp, batch, Err(err));
}

fn finish(inner: &Arc<Inner>, tp: (String, i32), batch: Batch, outcome: Result<i64>) {
    finish_with_time(inner, tp, batch, outcome, -1)
}

/// Resolves every record of a batch and frees its partition for the next request.
fn finish_with_time(
    inner: &Arc<Inner>,
    tp: (String, i32),
    batch: Batch,
    outcome: Result<i64>,
    append_time: i64,
) {
    let partition = tp.1;
    {
        let current = *inner.producer_id.lock();
        let mut state = inner.state.lock();
        if let Some(q) = state.queues.get_mut(&tp) {
            q.in_flight = q.in_flight.saturating_sub(1);
            if let (Some(seq), true) = (
                batch.sequence,
                batch.producer.is_some() && batch.producer == current,
            ) {
                q.resolve(seq);
            }
        }
    }
    match outcome {
        Ok(base) => {
            for (i, (w, ts)) in batch.waiters.into_iter().enumerate() {
                let _ = w.send(Ok(RecordMetadata {
                    partition,
                    offset: if base < 0 { -1 } else { base + i as i64 },
                    timestamp: if append_time >= 0 { append_time } else { ts },
                }));
            }
        }
        Err(e) => {
            let text = e.to_string();
            let mut first = Some(e);
            for (w, _) in batch.waiters {
                let err = first
                    .take()
                    .unwrap_or_else(|| ClientError::Protocol(text.clone()));
                let _ = w.send(Err(err));
            }
        }
    }
    inner.wake.notify_one();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(sequence: Option<i32>, producer: Option<(i64, i16)>) -> Batch {
        Batch {
            builder: BatchBuilder::new(Compression::None),
            waiters: Vec::new(),
            created: Instant::now(),
            bytes: 0,
            _memory: None,
            attempts: 0,
            keyless: false,
            sequence,
            producer,
        }
    }

    const PID: (i64, i16) = (7, 0);

    #[test]
    fn the_window_spans_from_the_oldest_unresolved_batch_whatever_resolved_after_it() {
        let mut q = Queue::default();
        for seq in [0, 10, 20, 30, 40] {
            q.numbered.push_back((seq, false));
        }
        q.ready.push_back(batch(None, None));
        assert!(!q.head_may_go(PID, 5), "five numbered: the window is full");
        // Every batch after the first is answered; the first is not (its answer was lost).
        for seq in [10, 20, 30, 40] {
            q.resolve(seq);
        }
        assert_eq!(
            q.numbered.len(),
            5,
            "the window holds until its oldest resolves"
        );
        assert!(
            !q.head_may_go(PID, 5),
            "a sixth would push 0 out of the broker's cache"
        );
        q.resolve(0);
        assert!(
            q.numbered.is_empty(),
            "the window slides past everything resolved"
        );
        assert!(q.head_may_go(PID, 5));
    }

    #[test]
    fn a_retried_batch_goes_only_as_the_oldest_unresolved_one() {
        let mut q = Queue::default();
        for seq in [0, 10, 20] {
            q.numbered.push_back((seq, false));
        }
        // 0 is out on the wire again; 10 waits to be retried behind it.
        q.ready.push_back(batch(Some(10), Some(PID)));
        assert!(!q.head_may_go(PID, 5));
        q.resolve(0);
        assert!(q.head_may_go(PID, 5));
        // Numbered under a producer id since replaced: numbered again, as a new batch.
        q.ready[0].producer = Some((6, 0));
        q.restart_sequences();
        assert!(q.head_may_go(PID, 5));
        assert_eq!(q.next_sequence, 0);
    }
}
