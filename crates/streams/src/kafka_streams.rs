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
    Admin, ClientError, Consumer, ConsumerRecord, Producer, RebalanceListener, RecordMetadata,
    StartAt, TopicPartition,
};
use tokio::sync::watch;

use crate::config::{DeserializationHandler, ProcessingGuarantee, StreamsConfig};
use crate::error::StreamsError;
use crate::global::GlobalStores;
use crate::internal_topics;
use crate::query::{ReadOnlyKeyValueStore, ReadOnlyWindowStore, StoreInstances};
use crate::serdes::Serde;
use crate::state::RawStore;
use crate::task::{self, Offsets, StateDir, Task, TaskId};
use crate::topology::{Compiled, RecordError, Topology};

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
    /// Changelog records applied to restore stores, since start.
    restored_records: u64,
    /// The stores of the tasks running now, by store name (for interactive queries).
    stores: HashMap<String, Vec<Arc<dyn RawStore>>>,
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
    copartition: Vec<Vec<String>>,
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
        let copartition = topology.copartition_groups(&config.application_id);
        let compiled = topology.compile(&config.application_id)?;
        Ok(KafkaStreams {
            config,
            compiled: Some(compiled),
            copartition,
            shared: Arc::new(Shared {
                inner: Mutex::new(Inner {
                    state: State::Created,
                    error: None,
                    assignment: BTreeSet::new(),
                    revoked: Vec::new(),
                    restored_records: 0,
                    stores: HashMap::new(),
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

    /// How many changelog records this instance applied to restore its stores so far (a
    /// restart from a checkpoint applies only what came after it).
    pub fn restored_records(&self) -> u64 {
        self.shared.inner.lock().restored_records
    }

    fn instances(&self, name: &str) -> Result<StoreInstances, StreamsError> {
        let inner = self.shared.inner.lock();
        if inner.state != State::Running {
            return Err(StreamsError::StoreUnavailable {
                store: name.to_string(),
                reason: format!("the instance is {}", inner.state),
            });
        }
        match inner.stores.get(name) {
            Some(parts) => Ok(StoreInstances {
                name: name.to_string(),
                parts: parts.clone(),
            }),
            None => Err(StreamsError::StoreUnavailable {
                store: name.to_string(),
                reason: "no task of this instance holds it".into(),
            }),
        }
    }

    /// Key-value store `name` of this instance's tasks, read with these serdes (Kafka's
    /// `store(StoreQueryParameters.fromNameAndType(name, keyValueStore()))`): only while
    /// RUNNING, and only the keys of the partitions this instance processes.
    pub fn store<K, V>(
        &self,
        name: &str,
        key: impl Serde<K>,
        value: impl Serde<V>,
    ) -> Result<ReadOnlyKeyValueStore<K, V>, StreamsError> {
        Ok(ReadOnlyKeyValueStore {
            store: self.instances(name)?,
            key: Arc::new(key),
            value: Arc::new(value),
        })
    }

    /// Window store `name` of this instance's tasks (see [`store`](Self::store)).
    pub fn window_store<K, V>(
        &self,
        name: &str,
        key: impl Serde<K>,
        value: impl Serde<V>,
    ) -> Result<ReadOnlyWindowStore<K, V>, StreamsError> {
        Ok(ReadOnlyWindowStore {
            store: self.instances(name)?,
            key: Arc::new(key),
            value: Arc::new(value),
        })
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
            state: StateDir::new(&self.config.state_dir, &self.config.application_id),
            config: self.config.clone(),
            copartition: self.copartition.clone(),
            compiled,
            shared: self.shared.clone(),
            stop: self.stop.subscribe(),
            tasks: HashMap::new(),
            written: Offsets::new(),
            stores_changed: false,
            admin: None,
            globals: GlobalStores::none(),
            purge: (HashMap::new(), Instant::now()),
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
    copartition: Vec<Vec<String>>,
    compiled: Compiled,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
    state: StateDir,
    /// The tasks this thread runs now.
    tasks: HashMap<TaskId, Task>,
    /// Per changelog partition, the offset after the last record known written (restored
    /// or acknowledged): what a checkpoint records.
    written: Offsets,
    /// A task with stores was opened: the handle's view of the stores is out of date.
    stores_changed: bool,
    /// Deletes consumed repartition records (set once the thread runs).
    admin: Option<Admin>,
    /// The global tables' stores, kept current in the background.
    globals: GlobalStores,
    /// Committed offsets of repartition topics not purged yet, and the last purge.
    purge: (HashMap<TopicPartition, i64>, Instant),
}

/// Outputs sent and not yet known to be written, with their topics.
#[derive(Default)]
struct Pending {
    deliveries: Vec<(String, Delivery)>,
}

impl Pending {
    /// Flushes the producer and waits for every delivery; the first failure is returned.
    /// Each acknowledged offset is recorded in `written`.
    async fn flush(
        &mut self,
        producer: &Producer,
        written: &mut Offsets,
    ) -> Result<(), StreamsError> {
        if self.deliveries.is_empty() {
            return Ok(());
        }
        producer.flush().await;
        for (topic, d) in self.deliveries.drain(..) {
            let m = d.await.map_err(|source| StreamsError::Produce {
                topic: topic.clone(),
                source,
            })?;
            if m.offset >= 0 {
                let next = written.entry((topic, m.partition)).or_insert(0);
                *next = (*next).max(m.offset + 1);
            }
        }
        Ok(())
    }
}

impl StreamThread {
    async fn run(mut self) -> Result<(), StreamsError> {
        let consumer_config = &self.config.consumer;
        let admin = Admin::secured(
            consumer_config.bootstrap_servers.clone(),
            &format!("{}-admin", self.config.client_id),
            consumer_config.request_timeout,
            &consumer_config.security,
        );
        internal_topics::prepare(
            &admin,
            &self.compiled,
            &self.copartition,
            self.config.replication_factor,
        )
        .await?;
        let db = match self.compiled.globals.iter().any(|g| g.store.persistent) {
            true => Some(
                self.state
                    .db()
                    .map_err(|source| StreamsError::Store {
                        store: "(global)".into(),
                        source,
                    })?
                    .clone(),
            ),
            false => None,
        };
        self.globals = GlobalStores::start(
            &self.compiled.globals,
            &self.state,
            db.as_ref(),
            &admin,
            self.config.consumer.clone(),
        )
        .await?;
        self.publish_stores();
        self.admin = Some(admin);
        let producer = Producer::new(self.config.producer.clone());
        let mut consumer = Consumer::new(self.config.consumer.clone());
        let mut restore_config = self.config.consumer.clone();
        restore_config.group_id = None;
        restore_config.client_id = restore_config
            .client_id
            .replace("-consumer", "-restore-consumer");
        let mut restorer = Consumer::new(restore_config);
        consumer.set_rebalance_listener(Box::new(Listener {
            shared: self.shared.clone(),
        }));
        let topics = self.compiled.source_topics();
        let topics: Vec<&str> = topics.iter().map(|t| t.as_str()).collect();
        consumer
            .subscribe(&topics)
            .map_err(|source| StreamsError::Consumer {
                doing: "subscribing",
                source,
            })?;
        let outcome = self.process(&producer, &mut consumer, &mut restorer).await;
        if outcome.is_ok() {
            // Commits the positions (all processed and flushed) and leaves the group.
            if let Err(e) = consumer.close().await {
                tracing::warn!(error = %e, "closing the consumer");
            }
            let ids: Vec<TaskId> = self.tasks.keys().copied().collect();
            for id in ids {
                self.close_task(id);
            }
            let globals = std::mem::replace(&mut self.globals, GlobalStores::none());
            if let Err(e) = globals.close(&self.state).await {
                tracing::warn!(error = %e, "closing the global stores");
            }
        } else {
            // Dropped without close: its positions may be past records whose outputs were
            // not written, and close would commit them. The group notices the member gone
            // after session.timeout.ms.
            drop(consumer);
        }
        producer.close().await;
        // Nothing is left to query; the handles' stores (fjall databases) are let go.
        self.shared.inner.lock().stores.clear();
        outcome
    }

    /// The processing loop, until asked to stop or a fatal error.
    async fn process(
        &mut self,
        producer: &Producer,
        consumer: &mut Consumer,
        restorer: &mut Consumer,
    ) -> Result<(), StreamsError> {
        if self.eos() {
            return self
                .process_exactly_once(producer, consumer, restorer)
                .await;
        }
        let mut pending = Pending::default();
        // Per partition, the offset after the last processed record, not yet committed.
        let mut processed: HashMap<TopicPartition, i64> = HashMap::new();
        let mut last_commit = Instant::now();
        loop {
            // Whatever the consumer commits inside poll (a revocation) must be written.
            pending.flush(producer, &mut self.written).await?;
            self.close_revoked(&mut processed);
            if last_commit.elapsed() >= self.config.commit_interval {
                self.commit(consumer, &mut processed).await?;
                last_commit = Instant::now();
            }
            if *self.stop.borrow() {
                self.commit(consumer, &mut processed).await?;
                return Ok(());
            }
            let Some(records) = self.poll(consumer).await? else {
                continue;
            };
            self.close_revoked(&mut processed);
            self.punctuate_wall_clock(producer, &mut pending).await?;
            for r in &records {
                if let Err(e) = self.process_one(r, producer, &mut pending, restorer).await {
                    // What was processed before this record is flushed and committed, so
                    // a successor starts at this record.
                    if pending.flush(producer, &mut self.written).await.is_ok() {
                        let _ = self.commit(consumer, &mut processed).await;
                    }
                    return Err(e);
                }
                processed.insert((r.topic.clone(), r.partition), r.offset + 1);
                // A large poll does not hold the commit back: flush, then commit what was
                // processed so far (the consumer's positions may be further on).
                if last_commit.elapsed() >= self.config.commit_interval {
                    pending.flush(producer, &mut self.written).await?;
                    self.commit(consumer, &mut processed).await?;
                    last_commit = Instant::now();
                }
            }
        }
    }

    fn eos(&self) -> bool {
        self.config.processing_guarantee == ProcessingGuarantee::ExactlyOnceV2
    }

    /// One poll; `None` after a retriable failure (already waited for).
    async fn poll(
        &mut self,
        consumer: &mut Consumer,
    ) -> Result<Option<Vec<ConsumerRecord>>, StreamsError> {
        if self.globals.failed() {
            let globals = std::mem::replace(&mut self.globals, GlobalStores::none());
            globals.close(&self.state).await?;
            return Err(StreamsError::InvalidTopology(
                "the global stores stopped being updated".into(),
            ));
        }
        // The poll is not raced against the stop signal: a poll cut short may have
        // advanced positions past records it never returned, which close would commit.
        let records = match consumer.poll().await {
            Ok(r) => r,
            Err(e) if e.is_retriable() => {
                tracing::warn!(error = %e, "poll failed; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                return Ok(None);
            }
            Err(source) => {
                return Err(StreamsError::Consumer {
                    doing: "polling",
                    source,
                })
            }
        };
        if self.shared.state() == State::Rebalancing {
            self.shared.become_state(State::Running);
        }
        Ok(Some(records))
    }

    /// exactly_once_v2: records are processed inside a transaction of the thread's
    /// producer; at each commit the input offsets join it (the group's generation fences a
    /// member that lost its partitions) and it commits, so outputs, changelog writes and
    /// offsets become visible together or not at all. No transaction stays open across a
    /// rebalance: the thread commits before a poll that will rebalance; if a rebalance
    /// comes anyway with a transaction open, it is aborted and every task is rebuilt from
    /// its changelog (Kafka's "task corrupted" path).
    async fn process_exactly_once(
        &mut self,
        producer: &Producer,
        consumer: &mut Consumer,
        restorer: &mut Consumer,
    ) -> Result<(), StreamsError> {
        let fatal = |source| StreamsError::Produce {
            topic: "(transaction)".into(),
            source,
        };
        producer.init_transactions().await.map_err(fatal)?;
        let mut pending = Pending::default();
        let mut processed: HashMap<TopicPartition, i64> = HashMap::new();
        let mut open = false;
        let mut last_commit = Instant::now();
        loop {
            let stopping = *self.stop.borrow();
            if open
                && (stopping
                    || consumer.rebalance_pending()
                    || last_commit.elapsed() >= self.config.commit_interval)
            {
                self.commit_transaction(producer, consumer, &mut pending, &mut processed)
                    .await?;
                open = false;
                last_commit = Instant::now();
            }
            if stopping {
                return Ok(());
            }
            let Some(records) = self.poll(consumer).await? else {
                continue;
            };
            let revoked = !self.shared.inner.lock().revoked.is_empty();
            if revoked && open {
                tracing::warn!("partitions were revoked with a transaction open; aborting it and restoring every task");
                producer.abort_transaction().await.map_err(fatal)?;
                pending.deliveries.clear();
                open = false;
                // Dropped before close_revoked could checkpoint stores holding aborted writes.
                self.tasks.clear();
                self.publish_stores();
                self.close_revoked(&mut processed);
                self.corrupted(consumer, &mut processed).await?;
                continue;
            }
            self.close_revoked(&mut processed);
            if self.tasks.values().any(|t| !t.schedules.is_empty()) {
                if !open {
                    producer.begin_transaction().map_err(fatal)?;
                    open = true;
                }
                self.punctuate_wall_clock(producer, &mut pending).await?;
            }
            let owned: BTreeSet<TopicPartition> = self.shared.inner.lock().assignment.clone();
            for r in &records {
                if !owned.contains(&(r.topic.clone(), r.partition)) {
                    continue;
                }
                if !open {
                    producer.begin_transaction().map_err(fatal)?;
                    open = true;
                }
                if let Err(e) = self.process_one(r, producer, &mut pending, restorer).await {
                    // Nothing of the open transaction is kept: a successor redoes it all.
                    let _ = producer.abort_transaction().await;
                    return Err(e);
                }
                processed.insert((r.topic.clone(), r.partition), r.offset + 1);
            }
        }
    }

    /// Commits the open transaction with the processed offsets.
    async fn commit_transaction(
        &mut self,
        producer: &Producer,
        consumer: &mut Consumer,
        pending: &mut Pending,
        processed: &mut HashMap<TopicPartition, i64>,
    ) -> Result<(), StreamsError> {
        let fatal = |source| StreamsError::Produce {
            topic: "(transaction)".into(),
            source,
        };
        if !processed.is_empty() {
            let group = consumer.group_metadata().ok_or(StreamsError::Consumer {
                doing: "committing a transaction",
                source: ClientError::Protocol("the consumer is not in its group".into()),
            })?;
            let offsets: Vec<(TopicPartition, i64)> =
                processed.iter().map(|(tp, o)| (tp.clone(), *o)).collect();
            producer
                .send_offsets_to_transaction(&offsets, &group)
                .await
                .map_err(fatal)?;
        }
        producer.commit_transaction().await.map_err(fatal)?;
        pending.flush(producer, &mut self.written).await?;
        tracing::debug!(offsets = processed.len(), "transaction committed");
        self.committed(std::mem::take(processed)).await;
        Ok(())
    }

    /// After a commit of `offsets`: every `repartition.purge.interval.ms`, the repartition
    /// records before the committed offsets are deleted (Kafka's purge: nobody reads them
    /// again). A failed purge is only logged; the next one covers it.
    async fn committed(&mut self, offsets: HashMap<TopicPartition, i64>) {
        let repartition = self.compiled.repartition_topics();
        let (pending, last) = &mut self.purge;
        for (tp, o) in offsets {
            if repartition.contains(&tp.0) {
                pending.insert(tp, o);
            }
        }
        if pending.is_empty() || last.elapsed() < self.config.repartition_purge_interval {
            return;
        }
        *last = Instant::now();
        let Some(admin) = &self.admin else { return };
        for ((topic, partition), offset) in std::mem::take(pending) {
            if let Err(e) = admin.delete_records(&topic, partition, offset).await {
                tracing::debug!(%topic, partition, error = %e, "purging a repartition topic");
            }
        }
    }

    /// After an aborted transaction: every task is dropped without a checkpoint (its stores
    /// hold aborted writes, so the next open wipes and restores them) and every partition
    /// goes back to its committed offset.
    async fn corrupted(
        &mut self,
        consumer: &mut Consumer,
        processed: &mut HashMap<TopicPartition, i64>,
    ) -> Result<(), StreamsError> {
        processed.clear();
        let owned: Vec<TopicPartition> = self
            .shared
            .inner
            .lock()
            .assignment
            .iter()
            .cloned()
            .collect();
        let consumer_err = |source| StreamsError::Consumer {
            doing: "rewinding after an aborted transaction",
            source,
        };
        let committed = consumer.committed(&owned).await.map_err(consumer_err)?;
        for tp in owned {
            let start = match committed.get(&tp) {
                Some(&o) => StartAt::Offset(o),
                None => self.config.consumer.auto_offset_reset,
            };
            consumer
                .seek(&tp.0, tp.1, start)
                .await
                .map_err(consumer_err)?;
        }
        Ok(())
    }

    /// The task a record of `topic`-`partition` belongs to, created (and its stores
    /// restored) if new.
    async fn task_for(
        &mut self,
        subtopology: usize,
        partition: i32,
        restorer: &mut Consumer,
    ) -> Result<Task, StreamsError> {
        let id = TaskId {
            subtopology,
            partition,
        };
        if let Some(t) = self.tasks.remove(&id) {
            return Ok(t);
        }
        let specs = self
            .compiled
            .subtopologies
            .get(subtopology)
            .map(|p| p.stores.clone())
            .unwrap_or_default();
        let store_err = |source| StreamsError::Store {
            store: format!("(task {id})"),
            source,
        };
        let mut task = self.state.open_task(id, &specs).map_err(store_err)?;
        task.wall_clock = task::now_ms();
        for (name, store) in &self.globals.stores {
            task.stores.insert(name.clone(), store.clone());
        }
        if !specs.is_empty() {
            let checkpoint = self.state.read_checkpoint(id);
            let started = Instant::now();
            let (offsets, stats) = task::restore(&task, &checkpoint, restorer).await?;
            tracing::info!(task = %id, records = stats.records, bytes = stats.bytes, elapsed = ?started.elapsed(), "task restored");
            self.written.extend(offsets);
            self.shared.inner.lock().restored_records += stats.records;
            self.stores_changed = true;
            if self.eos() {
                // Until a clean close, the stores may hold writes of an open transaction.
                self.state
                    .delete_checkpoint(id)
                    .map_err(|source| StreamsError::Store {
                        store: format!("(task {id} checkpoint)"),
                        source,
                    })?;
            }
        }
        Ok(task)
    }

    /// One record through the topology; its outputs handed to the producer.
    async fn process_one(
        &mut self,
        r: &ConsumerRecord,
        producer: &Producer,
        pending: &mut Pending,
        restorer: &mut Consumer,
    ) -> Result<(), StreamsError> {
        let Some((source, subtopology)) = self.compiled.sources.get(&r.topic).cloned() else {
            return Ok(());
        };
        let task = self.task_for(subtopology, r.partition, restorer).await?;
        let (task, outcome) = Compiled::run(&source, task, r);
        let (task, punctuated) = if task.schedules.is_empty() || outcome.is_err() {
            (task, Ok(Vec::new()))
        } else {
            self.compiled.punctuate(task, None)
        };
        self.tasks.insert(task.id, task);
        if std::mem::take(&mut self.stores_changed) {
            self.publish_stores();
        }
        let mut out = match outcome {
            Ok(out) => out,
            Err(RecordError::Fatal(e)) => return Err(e),
            Err(RecordError::Deserialization(e)) => {
                return on_deserialization_error(self.config.deserialization_handler, e)
            }
        };
        out.extend(punctuated?);
        self.send(out, producer, pending).await
    }

    /// Fires the wall-clock punctuations that are due, in every task.
    async fn punctuate_wall_clock(
        &mut self,
        producer: &Producer,
        pending: &mut Pending,
    ) -> Result<(), StreamsError> {
        let now = task::now_ms();
        let ids: Vec<TaskId> = self
            .tasks
            .iter()
            .filter(|(_, t)| !t.schedules.is_empty())
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let Some(mut t) = self.tasks.remove(&id) else {
                continue;
            };
            t.wall_clock = now;
            let (t, out) = self.compiled.punctuate(t, Some(now));
            self.tasks.insert(id, t);
            self.send(out?, producer, pending).await?;
        }
        Ok(())
    }

    /// Hands `out` to the producer.
    async fn send(
        &mut self,
        out: Vec<strom_client::ProducerRecord>,
        producer: &Producer,
        pending: &mut Pending,
    ) -> Result<(), StreamsError> {
        for out in out {
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

    /// Commits `processed` (everything it covers is flushed), then checkpoints the tasks'
    /// persistent stores. A failed commit is only logged: the offsets stay to be committed
    /// next time, and nothing is lost meanwhile, only replayed.
    async fn commit(
        &mut self,
        consumer: &mut Consumer,
        processed: &mut HashMap<TopicPartition, i64>,
    ) -> Result<(), StreamsError> {
        if processed.is_empty() {
            return Ok(());
        }
        let offsets: Vec<(TopicPartition, i64)> =
            processed.iter().map(|(tp, o)| (tp.clone(), *o)).collect();
        match consumer.commit_offsets(&offsets).await {
            Ok(()) => {
                tracing::debug!(?offsets, "committed");
                self.committed(std::mem::take(processed)).await;
            }
            Err(e) => log_commit_failure(&e),
        }
        for task in self.tasks.values() {
            self.checkpoint(task)?;
        }
        Ok(())
    }

    /// Flushes `task`'s persistent stores and records the changelog offsets they hold.
    fn checkpoint(&self, task: &Task) -> Result<(), StreamsError> {
        let mut offsets = Offsets::new();
        let mut persistent = false;
        for store in task.stores.values() {
            persistent |= store.raw.persistent();
            if let (Some(topic), true) = (&store.changelog, store.raw.persistent()) {
                let key = (topic.clone(), task.id.partition);
                if let Some(&o) = self.written.get(&key) {
                    offsets.insert(key, o);
                }
            }
        }
        if !persistent {
            return Ok(());
        }
        task::flush(task)?;
        self.state
            .write_checkpoint(task.id, &offsets)
            .map_err(|source| StreamsError::Store {
                store: format!("(task {} checkpoint)", task.id),
                source,
            })
    }

    /// Closes task `id`: flushes and checkpoints its stores (everything it processed is
    /// flushed and committed when this is called).
    fn close_task(&mut self, id: TaskId) {
        if let Some(task) = self.tasks.remove(&id) {
            self.publish_stores();
            if let Err(e) = self.checkpoint(&task) {
                tracing::warn!(task = %id, error = %e, "closing a task");
            }
            tracing::debug!(task = %id, "task closed");
        }
    }

    /// Tells the handle which stores the running tasks hold.
    fn publish_stores(&self) {
        let mut stores: HashMap<String, Vec<Arc<dyn RawStore>>> = HashMap::new();
        for task in self.tasks.values() {
            for (name, s) in &task.stores {
                if !self.globals.stores.contains_key(name) {
                    stores.entry(name.clone()).or_default().push(s.raw.clone());
                }
            }
        }
        for (name, s) in &self.globals.stores {
            stores.insert(name.clone(), vec![s.raw.clone()]);
        }
        self.shared.inner.lock().stores = stores;
    }

    /// Closes the tasks of partitions revoked meanwhile, and drops their uncommitted offsets
    /// (the consumer committed them when it gave them up).
    fn close_revoked(&mut self, processed: &mut HashMap<TopicPartition, i64>) {
        let revoked = std::mem::take(&mut self.shared.inner.lock().revoked);
        for p in revoked {
            processed.remove(&p);
            if let Some((_, sub)) = self.compiled.sources.get(&p.0) {
                let id = TaskId {
                    subtopology: *sub,
                    partition: p.1,
                };
                self.close_task(id);
            }
        }
    }
}

/// What the deserialization exception handler makes of `e`: skip the record, or fail.
pub(crate) fn on_deserialization_error(
    handler: DeserializationHandler,
    e: StreamsError,
) -> Result<(), StreamsError> {
    match handler {
        DeserializationHandler::LogAndContinue => {
            let cause = std::error::Error::source(&e)
                .map(|s| s.to_string())
                .unwrap_or_default();
            tracing::warn!(error = %e, %cause, "skipping a record that cannot be deserialized (LogAndContinueExceptionHandler)");
            Ok(())
        }
        DeserializationHandler::LogAndFail => {
            tracing::error!(error = %e, "a record cannot be deserialized (LogAndFailExceptionHandler)");
            Err(e)
        }
    }
}

fn log_commit_failure(e: &ClientError) {
    tracing::warn!(error = %e, "commit failed; the offsets will be committed later");
}
