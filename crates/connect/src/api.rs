//! The connector API, as Kafka Connect's: a [`Connector`] takes its configuration and
//! splits the work into task configurations (at most `tasks.max`); each task is a
//! [`SourceTask`] (polls records from the outside world, with where each came from) or a
//! [`SinkTask`] (is given records read from Kafka, flushes them, and says which offsets
//! may be committed). A [`Plugin`] names a connector class and makes its connector and
//! task instances, so a task can run on any worker.
//!
//! The framework calls a task from one tokio task at a time; `poll` and `put` may wait,
//! but should return within about a second when there is nothing to do, so that pause and
//! stop take effect.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;

use crate::config::{ConfigDef, ConfigValue};
use crate::record::{SinkRecord, SourceMap, SourceRecord};
use crate::ConnectError;

/// String properties, as connectors and tasks are configured.
pub type Props = BTreeMap<String, String>;

/// A topic and partition.
pub type TopicPartition = (String, i32);

/// Whether a connector moves data into Kafka or out of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectorType {
    /// Into Kafka.
    Source,
    /// Out of Kafka.
    Sink,
}

impl ConnectorType {
    /// Connect's name for it (`source`, `sink`), as the REST API shows.
    pub fn name(self) -> &'static str {
        match self {
            ConnectorType::Source => "source",
            ConnectorType::Sink => "sink",
        }
    }
}

/// A connector: its configuration, and how its work splits into tasks.
#[async_trait]
pub trait Connector: Send {
    /// The settings it takes, beyond the ones every connector has.
    fn config_def(&self) -> ConfigDef;

    /// Checks a configuration; by default against [`Connector::config_def`]. A connector
    /// overrides this to check settings that depend on each other.
    fn validate(&self, props: &Props) -> Vec<ConfigValue> {
        self.config_def().validate(props)
    }

    /// Starts with this configuration (already validated).
    async fn start(&mut self, props: Props) -> Result<(), ConnectError>;

    /// The configurations of its tasks, at most `max_tasks` of them.
    fn task_configs(&self, max_tasks: usize) -> Vec<Props>;

    /// Stops; the tasks are stopped first.
    async fn stop(&mut self) -> Result<(), ConnectError> {
        Ok(())
    }
}

/// Reads the source offsets stored for the running connector (Kafka's
/// `OffsetStorageReader`).
pub trait OffsetReader: Send + Sync {
    /// The latest committed offset of this source partition, if any.
    fn offset(&self, partition: &SourceMap) -> Option<SourceMap>;
}

/// What a source task gets from the framework.
#[derive(Clone)]
pub struct SourceTaskContext {
    /// The connector's stored offsets.
    pub offsets: Arc<dyn OffsetReader>,
}

/// A task that reads the outside world and hands records to the framework to produce.
#[async_trait]
pub trait SourceTask: Send {
    /// Starts with this task configuration.
    async fn start(&mut self, context: SourceTaskContext, props: Props)
        -> Result<(), ConnectError>;

    /// The next records (none: nothing yet). Their offsets are stored once Kafka has them.
    async fn poll(&mut self) -> Result<Vec<SourceRecord>, ConnectError>;

    /// Called after the offsets of the records returned so far were stored.
    async fn commit(&mut self) -> Result<(), ConnectError> {
        Ok(())
    }

    /// Stops.
    async fn stop(&mut self) -> Result<(), ConnectError> {
        Ok(())
    }
}

/// A record a sink task could not handle, for the framework's error handling (the
/// dead-letter queue); Kafka's `ErrantRecordReporter` (KIP-610).
#[derive(Debug, Clone)]
pub struct ErrantRecord {
    /// The record.
    pub record: SinkRecord,
    /// Why.
    pub error: String,
}

/// What a sink task gets from the framework.
#[derive(Clone, Default)]
pub struct SinkTaskContext {
    commit_requested: Arc<AtomicBool>,
    errant: Arc<parking_lot::Mutex<Vec<ErrantRecord>>>,
}

impl SinkTaskContext {
    /// Asks for an offset commit (a `pre_commit`) as soon as the current `put` returns.
    pub fn request_commit(&self) {
        self.commit_requested.store(true, Ordering::Release);
    }

    /// Reports a record the task cannot write; with `errors.tolerance=all` it goes to the
    /// dead-letter queue (if one is set) and the task goes on, otherwise the task fails.
    pub fn report(&self, record: SinkRecord, error: impl Into<String>) {
        self.errant.lock().push(ErrantRecord {
            record,
            error: error.into(),
        });
    }

    /// Takes a pending commit request.
    pub(crate) fn take_commit_request(&self) -> bool {
        self.commit_requested.swap(false, Ordering::AcqRel)
    }

    /// Takes the records reported so far.
    pub(crate) fn take_errant(&self) -> Vec<ErrantRecord> {
        std::mem::take(&mut *self.errant.lock())
    }
}

/// A task that writes records read from Kafka to the outside world.
#[async_trait]
pub trait SinkTask: Send {
    /// Starts with this task configuration.
    async fn start(&mut self, context: SinkTaskContext, props: Props) -> Result<(), ConnectError>;

    /// These partitions were assigned to the task.
    async fn open(&mut self, partitions: &[TopicPartition]) -> Result<(), ConnectError> {
        let _ = partitions;
        Ok(())
    }

    /// These partitions were taken away (their records were flushed first).
    async fn close(&mut self, partitions: &[TopicPartition]) -> Result<(), ConnectError> {
        let _ = partitions;
        Ok(())
    }

    /// Writes (or buffers) these records. [`ConnectError::Retriable`] has the same records
    /// given again after a pause; any other error fails the task.
    async fn put(&mut self, records: Vec<SinkRecord>) -> Result<(), ConnectError>;

    /// Makes everything given so far durable; `offsets` are the next offsets to read.
    async fn flush(&mut self, offsets: &HashMap<TopicPartition, i64>) -> Result<(), ConnectError> {
        let _ = offsets;
        Ok(())
    }

    /// The offsets that may be committed, given the next offsets to read; by default it
    /// flushes and answers those.
    async fn pre_commit(
        &mut self,
        offsets: HashMap<TopicPartition, i64>,
    ) -> Result<HashMap<TopicPartition, i64>, ConnectError> {
        self.flush(&offsets).await?;
        Ok(offsets)
    }

    /// Stops.
    async fn stop(&mut self) -> Result<(), ConnectError> {
        Ok(())
    }
}

/// Makes a plugin's task instances.
#[derive(Clone, Copy)]
pub enum TaskFactory {
    /// A source connector's tasks.
    Source(fn() -> Box<dyn SourceTask>),
    /// A sink connector's tasks.
    Sink(fn() -> Box<dyn SinkTask>),
}

/// A connector class: its names, and how to make its connector and tasks.
#[derive(Clone, Copy)]
pub struct Plugin {
    /// Kafka's class name (what `connector.class` names and the REST API shows).
    pub class: &'static str,
    /// Other names `connector.class` accepts.
    pub aliases: &'static [&'static str],
    /// Its version.
    pub version: &'static str,
    /// Makes a connector.
    pub connector: fn() -> Box<dyn Connector>,
    /// Makes its tasks.
    pub tasks: TaskFactory,
}

impl Plugin {
    /// Source or sink.
    pub fn kind(&self) -> ConnectorType {
        match self.tasks {
            TaskFactory::Source(_) => ConnectorType::Source,
            TaskFactory::Sink(_) => ConnectorType::Sink,
        }
    }

    /// Whether `name` names this plugin: its class, the class's last part, or an alias.
    pub fn is_named(&self, name: &str) -> bool {
        let short = self.class.rsplit('.').next().unwrap_or(self.class);
        name == self.class || name == short || self.aliases.contains(&name)
    }
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("class", &self.class)
            .finish()
    }
}
