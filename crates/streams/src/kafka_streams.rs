//! [`KafkaStreams`]: runs a topology. One stream thread (a tokio task) owns a consumer in the
//! group `application.id`, subscribed to the source topics, and one producer. It processes
//! each polled record through the topology, in offset order per partition, and sends what
//! the sinks produced.
//!
//! At-least-once: before each poll the producer is flushed and every send acknowledged, so
//! whatever the consumer commits inside a poll (when a rebalance revokes partitions) or at
//! close covers only records whose outputs are written. Every `commit.interval.ms` the
//! thread commits, itself, the offset after the last processed record of each partition.
//! A record is processed completely (all its outputs queued) before the next one starts;
//! a killed instance (dropped without `close`) commits nothing more, so a successor replays
//! from the last commit.
//!
//! States and their changes follow Kafka's `KafkaStreams.State`. Thread-safety: the handle's
//! methods may be called from any task; `state()` and `error()` never wait.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use strom_client::{
    ClientError, Consumer, ConsumerRecord, Producer, RebalanceListener, RecordMetadata,
    TopicPartition,
};
use tokio::sync::watch;

use crate::config::{DeserializationHandler, StreamsConfig};
use crate::error::StreamsError;
use crate::topology::{Compiled, Ctx, Topology};

/// The life of a [`KafkaStreams`] (Kafka's `KafkaStreams.State`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Made, not started.
    Created,
    /// Joining the group or taking over partitions.
    Rebalancing,
    /// Processing.
    Running,
    /// `close()` was called; the thread is committing and leaving.
    PendingShutdown,
    /// Closed.
    NotRunning,
    /// A fatal error occurred; the thread is cleaning up.
    PendingError,
    /// Stopped by a fatal error ([`KafkaStreams::error`] has the cause).
    Error,
}

impl State {
    /// Whether Kafka allows going from `self` to `to`.
    fn can_become(self, to: State) -> bool {
        use State::*;
        matches!(
            (self, to),
            (Created, Rebalancing | PendingShutdown | PendingError)
                | (
                    Rebalancing,
                    Running | PendingShutdown | PendingError | Rebalancing
                )
                | (Running, Rebalancing | PendingShutdown | PendingError)
                | (PendingShutdown, NotRunning)
                | (PendingError, Error)
        )
    }

    /// Whether the instance is (or will be) processing: Kafka's `isRunningOrRebalancing`.
    pub fn is_running_or_rebalancing(self) -> bool {
        matches!(self, State::Running | State::Rebalancing)
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            State::Created => "CREATED",
            State::Rebalancing => "REBALANCING",
            State::Running => "RUNNING",
            State::PendingShutdown => "PENDING_SHUTDOWN",
            State::NotRunning => "NOT_RUNNING",
            State::PendingError => "PENDING_ERROR",
            State::Error => "ERROR",
        })
    }
}

type StateListener = Box<dyn Fn(State, State) + Send + Sync>;

/// What the handle and the thread share.
struct Shared {
    inner: Mutex<Inner>,
    listener: Mutex<Option<StateListener>>,
}

struct Inner {
    state: State,
    error: Option<Arc<StreamsError>>,
    /// The source partitions the thread owns now.
    assignment: BTreeSet<TopicPartition>,
    /// Partitions revoked since the thread last looked: their offsets were committed by the
    /// consumer, and are no longer this instance's to commit.
    revoked: Vec<TopicPartition>,
}

impl Shared {
    /// Moves to `to` if Kafka allows it from the current state; tells the listener.
    fn become_state(&self, to: State) -> bool {
        let from = {
            let mut inner = self.inner.lock();
            let from = inner.state;
            if !from.can_become(to) {
                return false;
            }
            inner.state = to;
            from
        };
        if let Some(l) = &*self.listener.lock() {
            l(to, from);
        }
        true
    }

    fn state(&self) -> State {
        self.inner.lock().state
    }

    /// Records the cause of a fatal error and goes to ERROR (through PENDING_ERROR).
    fn fail(&self, error: StreamsError) {
        tracing::error!(error = %error, "the stream thread failed");
        self.inner.lock().error = Some(Arc::new(error));
        self.become_state(State::PendingError);
        self.become_state(State::Error);
    }
}

/// A Kafka Streams instance: runs a [`Topology`] with the given properties.
pub struct KafkaStreams {
    config: StreamsConfig,
    compiled: Option<Compiled>,
    topics: Vec<String>,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    thread: Option<tokio::task::AbortHandle>,
    supervisor: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for KafkaStreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaStreams")
            .field("application_id", &self.config.application_id)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

impl KafkaStreams {
    /// An instance in state CREATED; refuses bad properties (see [`StreamsConfig`]) and a
    /// topology that cannot run.
    pub fn new<I, K, V>(topology: Topology, props: I) -> Result<KafkaStreams, StreamsError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let config = StreamsConfig::from_props(props)?;
        let topics = topology.source_topics();
        let compiled = topology.compile()?;
        Ok(KafkaStreams {
            config,
            compiled: Some(compiled),
            topics,
            shared: Arc::new(Shared {
                inner: Mutex::new(Inner {
                    state: State::Created,
                    error: None,
                    assignment: BTreeSet::new(),
                    revoked: Vec::new(),
                }),
                listener: Mutex::new(None),
            }),
            stop: watch::channel(false).0,
            thread: None,
            supervisor: None,
        })
    }

    /// The settings in use.
    pub fn config(&self) -> &StreamsConfig {
        &self.config
    }

    /// Calls `listener(new, old)` at each state change (Kafka's `setStateListener`).
    pub fn set_state_listener(&self, listener: impl Fn(State, State) + Send + Sync + 'static) {
        *self.shared.listener.lock() = Some(Box::new(listener));
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.shared.state()
    }

    /// The fatal error that put the instance in ERROR, if any.
    pub fn error(&self) -> Option<Arc<StreamsError>> {
        self.shared.inner.lock().error.clone()
    }

    /// The source partitions this instance processes now (the active tasks' partitions of
    /// Kafka's `metadataForLocalThreads`).
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.shared
            .inner
            .lock()
            .assignment
            .iter()
            .cloned()
            .collect()
    }

    /// Starts the stream thread on the current tokio runtime; only from CREATED.
    pub fn start(&mut self) -> Result<(), StreamsError> {
        let state = self.state();
        let (Some(compiled), State::Created) = (self.compiled.take(), state) else {
            return Err(StreamsError::IllegalState {
                operation: "start()",
                state,
            });
        };
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| StreamsError::NoRuntime)?;
        self.shared.become_state(State::Rebalancing);
        let thread = StreamThread {
            config: self.config.clone(),
            topics: self.topics.clone(),
            compiled,
            shared: self.shared.clone(),
            stop: self.stop.subscribe(),
        };
        let task = runtime.spawn(thread.run());
        self.thread = Some(task.abort_handle());
        let shared = self.shared.clone();
        self.supervisor = Some(runtime.spawn(async move {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => shared.fail(e),
                Err(e) if e.is_panic() => shared.fail(StreamsError::ThreadDied(e)),
                Err(_) => {} // aborted: the instance was dropped
            }
        }));
        Ok(())
    }

    /// Stops processing: the thread finishes the records in hand, flushes the producer,
    /// commits, and leaves the group. Ends in NOT_RUNNING (or stays in ERROR).
    pub async fn close(&mut self) {
        if self.state() == State::Created {
            self.shared.become_state(State::PendingShutdown);
            self.shared.become_state(State::NotRunning);
            return;
        }
        self.shared.become_state(State::PendingShutdown);
        let _ = self.stop.send(true);
        if let Some(s) = self.supervisor.take() {
            let _ = s.await;
        }
        self.thread = None;
        self.shared.become_state(State::NotRunning);
    }
}

impl Drop for KafkaStreams {
    /// Without `close`, the thread is killed where it is: nothing more is flushed or
    /// committed (what a crashed process leaves behind).
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            t.abort();
        }
        if let Some(s) = self.supervisor.take() {
            s.abort();
        }
    }
}

/// Tells the shared state about rebalances (called inside the consumer's poll).
struct Listener {
    shared: Arc<Shared>,
}

impl RebalanceListener for Listener {
    fn on_partitions_assigned(&mut self, partitions: &[TopicPartition]) {
        let mut inner = self.shared.inner.lock();
        inner.assignment.extend(partitions.iter().cloned());
        tracing::info!(?partitions, "partitions assigned");
    }

    fn on_partitions_revoked(&mut self, partitions: &[TopicPartition]) {
        {
            let mut inner = self.shared.inner.lock();
            for p in partitions {
                inner.assignment.remove(p);
            }
            inner.revoked.extend(partitions.iter().cloned());
        }
        tracing::info!(?partitions, "partitions revoked");
        if self.shared.state() == State::Running {
            self.shared.become_state(State::Rebalancing);
        }
    }
}

type Delivery = Pin<Box<dyn Future<Output = strom_client::Result<RecordMetadata>> + Send>>;

/// The one stream thread.
struct StreamThread {
    config: StreamsConfig,
    topics: Vec<String>,
    compiled: Compiled,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
}

/// Outputs sent and not yet known to be written, with their topics.
#[derive(Default)]
struct Pending {
    deliveries: Vec<(String, Delivery)>,
}

impl Pending {
    /// Flushes the producer and waits for every delivery; the first failure is returned.
    async fn flush(&mut self, producer: &Producer) -> Result<(), StreamsError> {
        if self.deliveries.is_empty() {
            return Ok(());
        }
        producer.flush().await;
        for (topic, d) in self.deliveries.drain(..) {
            d.await
                .map_err(|source| StreamsError::Produce { topic, source })?;
        }
        Ok(())
    }
}

impl StreamThread {
    async fn run(mut self) -> Result<(), StreamsError> {
        let producer = Producer::new(self.config.producer.clone());
        let mut consumer = Consumer::new(self.config.consumer.clone());
        consumer.set_rebalance_listener(Box::new(Listener {
            shared: self.shared.clone(),
        }));
        let topics: Vec<&str> = self.topics.iter().map(|t| t.as_str()).collect();
        consumer
            .subscribe(&topics)
            .map_err(|source| StreamsError::Consumer {
                doing: "subscribing",
                source,
            })?;
        let outcome = self.process(&producer, &mut consumer).await;
        if outcome.is_ok() {
            // Commits the positions (all processed and flushed) and leaves the group.
            if let Err(e) = consumer.close().await {
                tracing::warn!(error = %e, "closing the consumer");
            }
        } else {
            // Dropped without close: its positions may be past records whose outputs were
            // not written, and close would commit them. The group notices the member gone
            // after session.timeout.ms.
            drop(consumer);
        }
        producer.close().await;
        outcome
    }

    /// The processing loop, until asked to stop or a fatal error.
    async fn process(
        &mut self,
        producer: &Producer,
        consumer: &mut Consumer,
    ) -> Result<(), StreamsError> {
        let mut pending = Pending::default();
        // Per partition, the offset after the last processed record, not yet committed.
        let mut processed: HashMap<TopicPartition, i64> = HashMap::new();
        let mut last_commit = Instant::now();
        loop {
            // Whatever the consumer commits inside poll (a revocation) must be written.
            pending.flush(producer).await?;
            self.forget_revoked(&mut processed);
            if last_commit.elapsed() >= self.config.commit_interval {
                commit(consumer, &mut processed).await;
                last_commit = Instant::now();
            }
            if *self.stop.borrow() {
                commit(consumer, &mut processed).await;
                return Ok(());
            }
            // The poll is not raced against the stop signal: a poll cut short may have
            // advanced positions past records it never returned, which close would commit.
            let records = match consumer.poll().await {
                Ok(r) => r,
                Err(e) if e.is_retriable() => {
                    tracing::warn!(error = %e, "poll failed; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
                Err(source) => {
                    return Err(StreamsError::Consumer {
                        doing: "polling",
                        source,
                    })
                }
            };
            self.forget_revoked(&mut processed);
            if self.shared.state() == State::Rebalancing {
                self.shared.become_state(State::Running);
            }
            for r in &records {
                if let Err(e) = self.process_one(r, producer, &mut pending).await {
                    // What was processed before this record is flushed and committed, so
                    // a successor starts at this record.
                    if pending.flush(producer).await.is_ok() {
                        commit(consumer, &mut processed).await;
                    }
                    return Err(e);
                }
                processed.insert((r.topic.clone(), r.partition), r.offset + 1);
                // A large poll does not hold the commit back: flush, then commit what was
                // processed so far (the consumer's positions may be further on).
                if last_commit.elapsed() >= self.config.commit_interval {
                    pending.flush(producer).await?;
                    commit(consumer, &mut processed).await;
                    last_commit = Instant::now();
                }
            }
        }
    }

    /// One record through the topology; its outputs handed to the producer.
    async fn process_one(
        &self,
        r: &ConsumerRecord,
        producer: &Producer,
        pending: &mut Pending,
    ) -> Result<(), StreamsError> {
        let Some(source) = self.compiled.sources.get(&r.topic) else {
            return Ok(());
        };
        let mut ctx = Ctx::new(r);
        if let Err(e) = source(&mut ctx, r) {
            return match self.config.deserialization_handler {
                DeserializationHandler::LogAndContinue => {
                    tracing::warn!(error = %e, cause = %std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_default(), "skipping a record that cannot be deserialized (LogAndContinueExceptionHandler)");
                    Ok(())
                }
                DeserializationHandler::LogAndFail => {
                    tracing::error!(error = %e, "a record cannot be deserialized (LogAndFailExceptionHandler)");
                    Err(e)
                }
            };
        }
        if let Some(e) = ctx.failure.take() {
            return Err(e);
        }
        for out in ctx.out {
            let topic = out.topic.clone();
            match producer.send(out).await {
                Ok(d) => {
                    let d: Delivery = Box::pin(d);
                    pending.deliveries.push((topic, d))
                }
                Err(source) => return Err(StreamsError::Produce { topic, source }),
            }
        }
        Ok(())
    }

    /// Drops the uncommitted offsets of partitions revoked meanwhile (the consumer committed
    /// them when it gave them up).
    fn forget_revoked(&self, processed: &mut HashMap<TopicPartition, i64>) {
        let revoked = std::mem::take(&mut self.shared.inner.lock().revoked);
        for p in revoked {
            processed.remove(&p);
        }
    }
}

/// Commits `processed` (and clears it on success). A failed commit is only logged: the
/// offsets stay to be committed next time, and nothing is lost meanwhile, only replayed.
async fn commit(consumer: &mut Consumer, processed: &mut HashMap<TopicPartition, i64>) {
    if processed.is_empty() {
        return;
    }
    let offsets: Vec<(TopicPartition, i64)> =
        processed.iter().map(|(tp, o)| (tp.clone(), *o)).collect();
    match consumer.commit_offsets(&offsets).await {
        Ok(()) => {
            tracing::debug!(?offsets, "committed");
            processed.clear();
        }
        Err(e) => log_commit_failure(&e),
    }
}

fn log_commit_failure(e: &ClientError) {
    tracing::warn!(error = %e, "commit failed; the offsets will be committed later");
}
