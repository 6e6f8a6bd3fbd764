//! A sink task's loop (Kafka's `WorkerSinkTask`): consume the connector's topics in the
//! consumer group `connect-<name>`, convert and transform each record, give them to the
//! task, and every `offset.flush.interval.ms` (or when the task asks, or on pause and
//! stop) ask the task which offsets are safe (`pre_commit`, which flushes) and commit
//! those. Offsets are never committed past what the task made durable, so a crash
//! replays at most the uncommitted records (at least once).
//!
//! Records that fail conversion or a transformation, or that the task reports as errant,
//! follow `errors.tolerance`: the task fails, or the record is skipped and, with a
//! dead-letter queue, produced there as it was read.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use strom_client::{Consumer, ConsumerConfig, ConsumerRecord, Producer, StartAt};

use super::{apply_client_props, Pipeline, State, TaskRun};
use crate::api::{SinkTask, SinkTaskContext, TopicPartition};
use crate::errors::{Origin, RawRecord, Stage};
use crate::record::{Record, SinkRecord};
use crate::ConnectError;

/// How long a sink waits before giving a task the same records again after a
/// retriable failure of `put` (Kafka's default for `RetriableException` backoff is the
/// consumer's; this is the same order).
const PUT_RETRY_BACKOFF: Duration = Duration::from_millis(500);

/// Group changes seen by the consumer's listener, handled after `poll`.
#[derive(Default)]
struct Moves {
    assigned: Vec<TopicPartition>,
    revoked: Vec<TopicPartition>,
}

struct Listener(Arc<Mutex<Moves>>);

impl strom_client::RebalanceListener for Listener {
    fn on_partitions_assigned(&mut self, partitions: &[strom_client::TopicPartition]) {
        self.0.lock().assigned.extend_from_slice(partitions);
    }

    fn on_partitions_revoked(&mut self, partitions: &[strom_client::TopicPartition]) {
        self.0.lock().revoked.extend_from_slice(partitions);
    }
}

/// Runs the task until it is stopped or fails.
pub(crate) async fn run(mut run: TaskRun, mut task: Box<dyn SinkTask>) {
    if let Err(e) = drive(&mut run, task.as_mut()).await {
        run.set(State::Failed(e.to_string()));
    }
    if let Err(e) = task.stop().await {
        tracing::warn!(task = %run.spec.id(), "stopping the task: {e}");
    }
}

/// The consumer group a sink connector's tasks share.
pub fn group_of(connector: &str) -> String {
    format!("connect-{connector}")
}

fn consumer_for(run: &TaskRun) -> Result<Consumer, ConnectError> {
    let mut config = ConsumerConfig {
        client_id: format!("connector-consumer-{}", run.spec.id()),
        group_id: Some(group_of(&run.spec.connector)),
        enable_auto_commit: false,
        auto_offset_reset: StartAt::Earliest,
        ..ConsumerConfig::default()
    };
    let pairs = run
        .worker
        .config
        .client_props("consumer.", &run.spec.connector_config);
    apply_client_props(&pairs, |k, v| config.set(k, v))?;
    // The framework commits; a group id set by hand would split the connector's tasks.
    config.group_id = Some(group_of(&run.spec.connector));
    config.enable_auto_commit = false;
    let mut consumer = Consumer::new(config);
    let c = &run.spec.connector_config;
    let topics: Vec<&str> = c
        .get("topics")
        .map(|t| {
            t.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let subscribed = match c
        .get("topics.regex")
        .map(|r| r.trim())
        .filter(|r| !r.is_empty())
    {
        Some(regex) if topics.is_empty() => consumer.subscribe_pattern(regex),
        _ => consumer.subscribe(&topics),
    };
    subscribed.map_err(ConnectError::Kafka)?;
    Ok(consumer)
}

/// The dead-letter queue's producer, made when the first record goes there (the topic
/// created with its replication factor if missing, as Kafka does).
struct DeadLetters {
    producer: Option<Producer>,
}

impl DeadLetters {
    async fn send(
        &mut self,
        run: &TaskRun,
        record: strom_client::ProducerRecord,
        replication_factor: i16,
    ) -> Result<(), ConnectError> {
        if self.producer.is_none() {
            let config = super::producer_config(run, "connector-dlq-producer")?;
            let admin = strom_client::Admin::secured(
                config.bootstrap_servers.clone(),
                &format!("connector-dlq-adminclient-{}", run.spec.id()),
                Duration::from_secs(30),
                &config.security,
            );
            match admin
                .create_topic(&record.topic, 1, replication_factor, &[])
                .await
            {
                Ok(()) => {
                    tracing::info!(topic = %record.topic, "created the dead-letter queue topic")
                }
                Err(strom_client::ClientError::Kafka { code: 36, .. }) => {}
                Err(e) => return Err(ConnectError::Kafka(e)),
            }
            self.producer = Some(Producer::new(config));
        }
        let Some(producer) = &self.producer else {
            return Ok(());
        };
        let delivery = producer.send(record).await.map_err(ConnectError::Kafka)?;
        delivery.await.map_err(ConnectError::Kafka)?;
        Ok(())
    }
}

struct Sink<'a> {
    run: &'a mut TaskRun,
    task: &'a mut dyn SinkTask,
    context: SinkTaskContext,
    consumer: Consumer,
    pipeline: Pipeline,
    moves: Arc<Mutex<Moves>>,
    /// The next offset to read of each partition the task has records of.
    next: HashMap<TopicPartition, i64>,
    dead: DeadLetters,
}

async fn drive(run: &mut TaskRun, task: &mut dyn SinkTask) -> Result<(), ConnectError> {
    let pipeline = Pipeline::new(&run.worker.config, &run.spec.connector_config)?;
    let mut consumer = consumer_for(run)?;
    let moves = Arc::new(Mutex::new(Moves::default()));
    consumer.set_rebalance_listener(Box::new(Listener(moves.clone())));
    let context = SinkTaskContext::default();
    task.start(context.clone(), run.spec.task_config.clone())
        .await?;
    run.set(State::Running);
    let mut sink = Sink {
        run,
        task,
        context,
        consumer,
        pipeline,
        moves,
        next: HashMap::new(),
        dead: DeadLetters { producer: None },
    };
    let result = sink.work().await;
    let last = sink.commit().await;
    let open: Vec<_> = sink.next.keys().cloned().collect();
    if let Err(e) = sink.task.close(&open).await {
        tracing::warn!(task = %sink.run.spec.id(), "closing partitions: {e}");
    }
    if let Some(p) = &sink.dead.producer {
        p.close().await;
    }
    let closed = sink.consumer.close().await.map_err(ConnectError::Kafka);
    result.and(last).and(closed)
}

impl Sink<'_> {
    async fn work(&mut self) -> Result<(), ConnectError> {
        let interval = self.run.worker.config.offset_flush_interval;
        let mut next_commit = Instant::now() + interval;
        loop {
            if self.run.target() == super::Target::Paused {
                self.commit().await?;
            }
            if !self.run.hold_while_paused().await {
                return Ok(());
            }
            let polled = self.consumer.poll().await;
            self.handle_moves().await?;
            let records = match polled {
                Ok(r) => r,
                Err(e) if e.is_retriable() => {
                    tracing::warn!(task = %self.run.spec.id(), "consume failed, to be tried again: {e}");
                    continue;
                }
                Err(e) => return Err(ConnectError::Kafka(e)),
            };
            if !records.is_empty() {
                let batch = self.convert(records).await?;
                self.put(batch).await?;
                self.errant().await?;
            }
            if Instant::now() >= next_commit || self.context.take_commit_request() {
                self.commit().await?;
                next_commit = Instant::now() + interval;
            }
        }
    }

    /// Tells the task about partitions the group gave it or took away.
    async fn handle_moves(&mut self) -> Result<(), ConnectError> {
        let (assigned, revoked) = {
            let mut m = self.moves.lock();
            (
                std::mem::take(&mut m.assigned),
                std::mem::take(&mut m.revoked),
            )
        };
        if !revoked.is_empty() {
            // Their records were given to the task; it flushes them and may no longer
            // commit for them (the new owner reads from the last commit).
            self.task.close(&revoked).await?;
            for tp in &revoked {
                self.next.remove(tp);
            }
        }
        if !assigned.is_empty() {
            self.task.open(&assigned).await?;
        }
        Ok(())
    }

    /// Converts and transforms consumed records; the ones that fail follow the policy.
    async fn convert(
        &mut self,
        records: Vec<ConsumerRecord>,
    ) -> Result<Vec<SinkRecord>, ConnectError> {
        let mut out = Vec::with_capacity(records.len());
        for r in records {
            self.next
                .insert((r.topic.clone(), r.partition), r.offset + 1);
            let key = self.pipeline.key.decode(&r.topic, r.key.as_deref());
            let value = self.pipeline.value.decode(&r.topic, r.value.as_deref());
            let (key, value) = match (key, value) {
                (Err(e), _) => {
                    let class = self.pipeline.key_class.clone();
                    self.failed(&r, Stage::KeyConverter, &class, e).await?;
                    continue;
                }
                (_, Err(e)) => {
                    let class = self.pipeline.value_class.clone();
                    self.failed(&r, Stage::ValueConverter, &class, e).await?;
                    continue;
                }
                (Ok(k), Ok(v)) => (k, v),
            };
            let record = Record {
                topic: r.topic.clone(),
                partition: Some(r.partition),
                key_schema: key.schema,
                key: key.value,
                value_schema: value.schema,
                value: value.value,
                timestamp: Some(r.timestamp),
                headers: r.headers.clone(),
            };
            match self.pipeline.chain.apply(record) {
                Ok(Some(record)) => out.push(SinkRecord {
                    record,
                    offset: r.offset,
                }),
                Ok(None) => {}
                Err(e) => {
                    self.failed(&r, Stage::Transformation, "transformation", e)
                        .await?
                }
            }
        }
        Ok(out)
    }

    /// One record failed: the task fails, or (errors.tolerance=all) it is logged and goes
    /// to the dead-letter queue if there is one.
    async fn failed(
        &mut self,
        r: &ConsumerRecord,
        stage: Stage,
        class: &str,
        e: ConnectError,
    ) -> Result<(), ConnectError> {
        let origin = Origin {
            consumed: Some((r.topic.clone(), r.partition, r.offset)),
            raw: Some(RawRecord {
                key: r.key.clone(),
                value: r.value.clone(),
                headers: r.headers.clone(),
                timestamp: r.timestamp,
            }),
            class: class.to_string(),
        };
        let policy = &self.pipeline.policy;
        policy.log_failure(&self.run.spec.id(), stage, &origin, &e);
        if !policy.tolerate_all {
            return Err(ConnectError::Connect(format!(
                "Tolerance exceeded in error handler: {} failed on {}-{} at offset {}: {e}",
                stage.name(),
                r.topic,
                r.partition,
                r.offset
            )));
        }
        let letter = policy.dead_letter(
            &self.run.spec.connector,
            self.run.spec.task,
            stage,
            &origin,
            &e,
        );
        let replication = policy.dlq_replication_factor;
        if let Some(letter) = letter {
            self.dead.send(self.run, letter, replication).await?;
        }
        Ok(())
    }

    /// Gives the task the records, again after a pause while it fails retriably.
    async fn put(&mut self, batch: Vec<SinkRecord>) -> Result<(), ConnectError> {
        loop {
            match self.task.put(batch.clone()).await {
                Ok(()) => return Ok(()),
                Err(ConnectError::Retriable(why)) => {
                    tracing::warn!(task = %self.run.spec.id(), "put failed, to be tried again: {why}");
                    tokio::time::sleep(PUT_RETRY_BACKOFF).await;
                    if self.run.target() == super::Target::Stopped {
                        return Err(ConnectError::Retriable(why));
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Records the task reported as errant.
    async fn errant(&mut self) -> Result<(), ConnectError> {
        for errant in self.context.take_errant() {
            let rec = &errant.record;
            let consumed = ConsumerRecord {
                topic: rec.record.topic.clone(),
                partition: rec.record.partition.unwrap_or(0),
                offset: rec.offset,
                timestamp: rec.record.timestamp.unwrap_or(-1),
                key: None,
                value: None,
                headers: rec.record.headers.clone(),
            };
            // The bytes as read are gone by now; the key and value go as the converters
            // write them back.
            let key = self
                .pipeline
                .key
                .encode(
                    &rec.record.topic,
                    rec.record.key_schema.as_deref(),
                    &rec.record.key,
                )
                .ok()
                .flatten();
            let value = self
                .pipeline
                .value
                .encode(
                    &rec.record.topic,
                    rec.record.value_schema.as_deref(),
                    &rec.record.value,
                )
                .ok()
                .flatten();
            let consumed = ConsumerRecord {
                key: key.map(Into::into),
                value: value.map(Into::into),
                ..consumed
            };
            self.failed(
                &consumed,
                Stage::TaskPut,
                "task",
                ConnectError::Connect(errant.error),
            )
            .await?;
        }
        Ok(())
    }

    /// Commits the offsets the task says are safe.
    async fn commit(&mut self) -> Result<(), ConnectError> {
        if self.next.is_empty() {
            return Ok(());
        }
        let safe = self.task.pre_commit(self.next.clone()).await?;
        let offsets: Vec<(TopicPartition, i64)> = safe
            .into_iter()
            .filter(|(tp, _)| self.next.contains_key(tp))
            .collect();
        if offsets.is_empty() {
            return Ok(());
        }
        match self.consumer.commit_offsets(&offsets).await {
            Ok(()) => Ok(()),
            // A rebalance took partitions away meanwhile: their new owner goes on from the
            // last commit; the task's records are written, so nothing is lost.
            Err(e)
                if e.is_retriable()
                    || matches!(
                        e,
                        strom_client::ClientError::Kafka {
                            code: 22 | 25 | 27,
                            ..
                        }
                    ) =>
            {
                tracing::warn!(task = %self.run.spec.id(), "offset commit failed: {e}");
                Ok(())
            }
            Err(e) => Err(ConnectError::Kafka(e)),
        }
    }
}
