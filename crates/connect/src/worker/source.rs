//! A source task's loop (Kafka's `WorkerSourceTask`): poll the task, transform and
//! convert each record, hand it to the producer, and every `offset.flush.interval.ms`
//! (and when stopping or pausing) store the source offsets of the records Kafka has
//! acknowledged, then tell the task they are committed. A record is never recorded as
//! delivered before its acknowledgement, so a crash replays from the last stored offsets
//! (at least once).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use futures_util::FutureExt as _;
use strom_client::{Producer, ProducerRecord, RecordMetadata};

use super::{Pipeline, State, TaskRun};
use crate::api::{SourceTask, SourceTaskContext};
use crate::errors::{Origin, Stage};
use crate::offsets::ConnectorOffsets;
use crate::record::{SourceMap, SourceRecord};
use crate::ConnectError;

type Delivery = Pin<Box<dyn Future<Output = strom_client::Result<RecordMetadata>> + Send>>;

/// A record handed to the producer (or skipped), and the offset it takes its source
/// partition to once it is delivered.
struct Sent {
    partition: SourceMap,
    offset: SourceMap,
    delivery: Option<Delivery>,
}

/// Records handed to the producer whose outcome is not known yet, at most: past this the
/// loop waits for the oldest before polling again, so memory stays bounded whatever the
/// flush interval.
const MAX_OUTSTANDING: usize = 50_000;

/// The offsets waiting for deliveries, in order, and the ones delivered.
#[derive(Default)]
struct Offsets {
    outstanding: VecDeque<Sent>,
    /// The latest delivered offset per partition. A task has few partitions, so a list
    /// searched by equality beats hashing each record's partition.
    delivered: Vec<(SourceMap, SourceMap)>,
}

impl Offsets {
    fn deliver(&mut self, sent: Sent) {
        // Records from a source with no partition (standard input) have no offset.
        if sent.partition.is_empty() {
            return;
        }
        match self
            .delivered
            .iter_mut()
            .find(|(p, _)| *p == sent.partition)
        {
            Some(entry) => entry.1 = sent.offset,
            None => self.delivered.push((sent.partition, sent.offset)),
        }
    }

    /// Takes the deliveries that are done, in order, up to the first that is not.
    fn reap(&mut self, run: &TaskRun, pipeline: &Pipeline) -> Result<(), ConnectError> {
        while let Some(front) = self.outstanding.front_mut() {
            let outcome = match &mut front.delivery {
                None => Ok(()),
                Some(d) => match d.now_or_never() {
                    None => return Ok(()),
                    Some(r) => r.map(|_| ()),
                },
            };
            let sent = self.outstanding.pop_front().expect("front exists");
            settle(run, pipeline, outcome)?;
            self.deliver(sent);
        }
        Ok(())
    }

    /// Waits for the oldest deliveries until at most `keep` are outstanding.
    async fn wait_down_to(
        &mut self,
        keep: usize,
        run: &TaskRun,
        pipeline: &Pipeline,
    ) -> Result<(), ConnectError> {
        while self.outstanding.len() > keep {
            let Some(sent) = self.outstanding.pop_front() else {
                break;
            };
            let outcome = match sent.delivery {
                None => Ok(()),
                Some(d) => d.await.map(|_| ()),
            };
            settle(run, pipeline, outcome)?;
            self.deliver(Sent {
                delivery: None,
                ..sent
            });
        }
        Ok(())
    }
}

/// A failed delivery fails the task, unless errors.tolerance=all (then it is logged and
/// its offset passed, as Kafka does since KIP-779).
fn settle(
    run: &TaskRun,
    pipeline: &Pipeline,
    outcome: strom_client::Result<()>,
) -> Result<(), ConnectError> {
    match outcome {
        Ok(()) => Ok(()),
        Err(e) => {
            let e = ConnectError::Kafka(e);
            pipeline.policy.log_failure(
                &run.spec.id(),
                Stage::KafkaProduce,
                &Origin::default(),
                &e,
            );
            if pipeline.policy.tolerate_all {
                Ok(())
            } else {
                Err(e)
            }
        }
    }
}

/// Runs the task until it is stopped or fails.
pub(crate) async fn run(mut run: TaskRun, mut task: Box<dyn SourceTask>) {
    match drive(&mut run, task.as_mut()).await {
        Ok(()) => {}
        Err(e) => run.set(State::Failed(e.to_string())),
    }
    if let Err(e) = task.stop().await {
        tracing::warn!(task = %run.spec.id(), "stopping the task: {e}");
    }
}

async fn drive(run: &mut TaskRun, task: &mut dyn SourceTask) -> Result<(), ConnectError> {
    let pipeline = Pipeline::new(&run.worker.config, &run.spec.connector_config)?;
    let producer = Producer::new(super::producer_config(run, "connector-producer")?);
    let context = SourceTaskContext {
        offsets: Arc::new(ConnectorOffsets {
            store: run.worker.offsets.clone(),
            connector: run.spec.connector.clone(),
        }),
    };
    task.start(context, run.spec.task_config.clone()).await?;
    run.set(State::Running);
    let mut offsets = Offsets::default();
    let interval = run.worker.config.offset_flush_interval;
    let mut next_flush = Instant::now() + interval;
    let result = async {
        loop {
            if run.target() == super::Target::Paused {
                commit(run, task, &producer, &pipeline, &mut offsets).await?;
            }
            if !run.hold_while_paused().await {
                return Ok(());
            }
            // A retriable failure of poll is polled again, as Kafka does.
            let records = match task.poll().await {
                Ok(r) => r,
                Err(ConnectError::Retriable(why)) => {
                    tracing::warn!(task = %run.spec.id(), "poll failed, to be tried again: {why}");
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    Vec::new()
                }
                Err(e) => return Err(e),
            };
            for r in records {
                send(run, &producer, &pipeline, &mut offsets, r).await?;
            }
            offsets.reap(run, &pipeline)?;
            offsets
                .wait_down_to(MAX_OUTSTANDING, run, &pipeline)
                .await?;
            if Instant::now() >= next_flush {
                commit(run, task, &producer, &pipeline, &mut offsets).await?;
                next_flush = Instant::now() + interval;
            }
        }
    }
    .await;
    // Whatever was delivered before a stop or a failure is stored.
    let last = commit(run, task, &producer, &pipeline, &mut offsets).await;
    producer.close().await;
    result.and(last)
}

/// Transforms, converts and sends one record.
async fn send(
    run: &TaskRun,
    producer: &Producer,
    pipeline: &Pipeline,
    offsets: &mut Offsets,
    record: SourceRecord,
) -> Result<(), ConnectError> {
    let SourceRecord {
        record,
        source_partition,
        source_offset,
    } = record;
    let mut sent = Sent {
        partition: source_partition,
        offset: source_offset,
        delivery: None,
    };
    let policy = &pipeline.policy;
    let fail = |stage: Stage, class: &str, e: ConnectError| -> Result<(), ConnectError> {
        let origin = Origin {
            class: class.to_string(),
            ..Origin::default()
        };
        policy.log_failure(&run.spec.id(), stage, &origin, &e);
        if policy.tolerate_all {
            Ok(())
        } else {
            Err(e)
        }
    };
    let transformed = match pipeline.chain.apply(record) {
        Ok(t) => t,
        Err(e) => {
            fail(Stage::Transformation, "transformation", e)?;
            offsets.outstanding.push_back(sent);
            return Ok(());
        }
    };
    if let Some(r) = transformed {
        let key = pipeline
            .key
            .encode(&r.topic, r.key_schema.as_deref(), &r.key);
        let value = pipeline
            .value
            .encode(&r.topic, r.value_schema.as_deref(), &r.value);
        match (key, value) {
            (Err(e), _) => fail(Stage::KeyConverter, &pipeline.key_class, e)?,
            (_, Err(e)) => fail(Stage::ValueConverter, &pipeline.value_class, e)?,
            (Ok(key), Ok(value)) => {
                let record = ProducerRecord {
                    topic: r.topic,
                    partition: r.partition,
                    key: key.map(Into::into),
                    value: value.map(Into::into),
                    headers: r.headers,
                    timestamp: r.timestamp,
                };
                match producer.send(record).await {
                    Ok(delivery) => sent.delivery = Some(Box::pin(delivery)),
                    Err(e) => fail(Stage::KafkaProduce, "producer", ConnectError::Kafka(e))?,
                }
            }
        }
    }
    offsets.outstanding.push_back(sent);
    Ok(())
}

/// Waits for the outstanding deliveries, stores the delivered offsets and tells the task.
async fn commit(
    run: &TaskRun,
    task: &mut dyn SourceTask,
    producer: &Producer,
    pipeline: &Pipeline,
    offsets: &mut Offsets,
) -> Result<(), ConnectError> {
    if offsets.outstanding.is_empty() && offsets.delivered.is_empty() {
        return Ok(());
    }
    producer.flush().await;
    let drained = offsets.wait_down_to(0, run, pipeline).await;
    let delivered: Vec<_> = offsets
        .delivered
        .drain(..)
        .map(|(p, o)| (p, Some(o)))
        .collect();
    if !delivered.is_empty() {
        run.worker
            .offsets
            .put(&run.spec.connector, delivered)
            .await?;
    }
    drained?;
    task.commit().await
}
