//! The worker: runs connector tasks. It owns the worker's settings (Kafka's worker
//! property names), the plugins it knows, where source offsets are kept, and one tokio
//! task per connector task that moves records between the task and Kafka
//! ([`source`]: poll, transform, convert, produce, store offsets; [`sink`]: consume,
//! convert, transform, put, commit offsets). A task's state is watched by the herder,
//! which decides what runs.

pub mod sink;
pub mod source;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::{Plugin, Props};
use crate::converter::{self, Converter};
use crate::errors::ErrorPolicy;
use crate::offsets::OffsetStore;
use crate::transforms::Chain;
use crate::ConnectError;

/// The worker's settings.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Every property as given.
    pub props: Props,
    /// bootstrap.servers.
    pub bootstrap_servers: String,
    /// offset.flush.interval.ms (60 s): how often source offsets are stored and sink
    /// offsets committed.
    pub offset_flush_interval: Duration,
    /// listeners: the REST API's (the first one is served), `http://:8083` by default.
    pub listener: String,
    /// offset.storage.file.filename (standalone).
    pub offset_file: Option<String>,
    /// task.shutdown.graceful.timeout.ms (5 s): how long a stopping task may take.
    pub task_shutdown_timeout: Duration,
}

impl WorkerConfig {
    /// The settings in `props`.
    pub fn from_props(props: Props) -> Result<WorkerConfig, ConnectError> {
        let ms = |k: &str, default: u64| -> Result<Duration, ConnectError> {
            match props.get(k) {
                None => Ok(Duration::from_millis(default)),
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .map(Duration::from_millis)
                    .map_err(|_| {
                        ConnectError::Config(format!(
                            "Invalid value {v} for configuration {k}: Not a number of type LONG"
                        ))
                    }),
            }
        };
        let listener = match (props.get("listeners"), props.get("rest.port")) {
            (Some(l), _) => l
                .split(',')
                .next()
                .map(str::trim)
                .unwrap_or_default()
                .to_string(),
            (None, Some(port)) => format!(
                "http://{}:{}",
                props.get("rest.host.name").map_or("", |h| h.as_str()),
                port.trim()
            ),
            (None, None) => "http://:8083".to_string(),
        };
        Ok(WorkerConfig {
            bootstrap_servers: props
                .get("bootstrap.servers")
                .cloned()
                .unwrap_or_else(|| "localhost:9092".into()),
            offset_flush_interval: ms("offset.flush.interval.ms", 60_000)?,
            task_shutdown_timeout: ms("task.shutdown.graceful.timeout.ms", 5_000)?,
            offset_file: props.get("offset.storage.file.filename").cloned(),
            listener,
            props,
        })
    }

    /// The address the REST listener binds: `http://host:port`, an empty host meaning
    /// every interface.
    pub fn listen_address(&self) -> Result<String, ConnectError> {
        let rest = self.listener.strip_prefix("http://").ok_or_else(|| {
            ConnectError::Config(format!(
                "Invalid value {} for configuration listeners: only http:// listeners are served",
                self.listener
            ))
        })?;
        Ok(match rest.strip_prefix(':') {
            Some(port) => format!("0.0.0.0:{port}"),
            None => rest.to_string(),
        })
    }

    /// A client's settings: `bootstrap.servers`, then the worker's `prefix` ones
    /// (`producer.`, `consumer.`, `admin.`), then the connector's `<prefix>override.` ones.
    pub fn client_props(&self, prefix: &str, connector: &Props) -> Vec<(String, String)> {
        let mut out = vec![(
            "bootstrap.servers".to_string(),
            self.bootstrap_servers.clone(),
        )];
        let strip = |props: &Props, p: &str| -> Vec<(String, String)> {
            props
                .iter()
                .filter_map(|(k, v)| k.strip_prefix(p).map(|k| (k.to_string(), v.clone())))
                .collect()
        };
        out.extend(strip(&self.props, prefix));
        out.extend(strip(connector, &format!("{prefix}override.")));
        out
    }
}

/// Applies client settings one by one; an unknown one is logged and left, as Kafka's
/// clients do ("supplied but isn't a known config"), a bad value is an error.
pub(crate) fn apply_client_props(
    pairs: &[(String, String)],
    mut set: impl FnMut(&str, &str) -> strom_client::Result<()>,
) -> Result<(), ConnectError> {
    for (k, v) in pairs {
        match set(k, v) {
            Ok(()) => {}
            Err(e) if e.to_string().contains("unknown") => {
                tracing::warn!("The configuration '{k}' was supplied but isn't a known config.");
            }
            Err(e) => return Err(ConnectError::Config(e.to_string())),
        }
    }
    Ok(())
}

/// A producer's settings for a task: `client.id` `<prefix>-<connector>-<task>`, then the
/// worker's `producer.` settings and the connector's `producer.override.` ones.
pub(crate) fn producer_config(
    run: &TaskRun,
    prefix: &str,
) -> Result<strom_client::ProducerConfig, ConnectError> {
    let mut config = strom_client::ProducerConfig {
        client_id: format!("{prefix}-{}", run.spec.id()),
        ..strom_client::ProducerConfig::default()
    };
    let pairs = run
        .worker
        .config
        .client_props("producer.", &run.spec.connector_config);
    apply_client_props(&pairs, |k, v| config.set(k, v))?;
    Ok(config)
}

/// The converters, transformations and error policy of one connector.
pub struct Pipeline {
    /// key.converter.
    pub key: Box<dyn Converter>,
    /// Its class.
    pub key_class: String,
    /// value.converter.
    pub value: Box<dyn Converter>,
    /// Its class.
    pub value_class: String,
    /// The transformations.
    pub chain: Chain,
    /// errors.*.
    pub policy: ErrorPolicy,
}

impl Pipeline {
    /// The pipeline a connector's configuration asks for, with the worker's converters
    /// where the connector names none.
    pub fn new(worker: &WorkerConfig, connector: &Props) -> Result<Pipeline, ConnectError> {
        let (key, key_class) = converter_for(worker, connector, "key")?;
        let (value, value_class) = converter_for(worker, connector, "value")?;
        Ok(Pipeline {
            key,
            key_class,
            value,
            value_class,
            chain: Chain::from_config(connector)?,
            policy: ErrorPolicy::from_props(connector)?,
        })
    }
}

/// `key.converter` or `value.converter` and its `schemas.enable`, from the connector's
/// settings if it sets the class, else the worker's (JsonConverter with schemas by
/// default, as Kafka's sample worker configs have).
fn converter_for(
    worker: &WorkerConfig,
    connector: &Props,
    which: &str,
) -> Result<(Box<dyn Converter>, String), ConnectError> {
    let name = format!("{which}.converter");
    let props = if connector.contains_key(&name) {
        connector
    } else {
        &worker.props
    };
    let class = props
        .get(&name)
        .cloned()
        .unwrap_or_else(|| "org.apache.kafka.connect.json.JsonConverter".into());
    let schemas = props
        .get(&format!("{name}.schemas.enable"))
        .is_none_or(|v| !v.trim().eq_ignore_ascii_case("false"));
    Ok((converter::by_class(class.trim(), schemas)?, class))
}

/// The plugins a worker can run.
#[derive(Debug, Clone)]
pub struct Plugins {
    list: Vec<Plugin>,
}

impl Default for Plugins {
    fn default() -> Self {
        Plugins {
            list: vec![
                crate::file::SINK,
                crate::file::SOURCE,
                crate::postgres::sink::SINK,
                crate::postgres::source::SOURCE,
                crate::postgres::cdc::SOURCE,
                crate::tools::VERIFIABLE_SOURCE,
            ],
        }
    }
}

impl Plugins {
    /// The plugin `connector.class` names.
    pub fn find(&self, name: &str) -> Option<Plugin> {
        self.list.iter().copied().find(|p| p.is_named(name.trim()))
    }

    /// Every plugin.
    pub fn all(&self) -> &[Plugin] {
        &self.list
    }

    /// Adds one (a connector built outside this crate).
    pub fn add(&mut self, plugin: Plugin) {
        self.list.push(plugin);
    }
}

/// What the herder wants a task (or connector) to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Run.
    Started,
    /// Hold: no polls, no puts.
    Paused,
    /// Shut down.
    Stopped,
}

/// A task's or connector's state, with Kafka's names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Not running anywhere yet.
    Unassigned,
    /// Running.
    Running,
    /// Paused.
    Paused,
    /// Stopped (connectors only: no tasks).
    Stopped,
    /// Failed, with why.
    Failed(String),
    /// Being restarted.
    Restarting,
}

impl State {
    /// Kafka's name.
    pub fn name(&self) -> &'static str {
        match self {
            State::Unassigned => "UNASSIGNED",
            State::Running => "RUNNING",
            State::Paused => "PAUSED",
            State::Stopped => "STOPPED",
            State::Failed(_) => "FAILED",
            State::Restarting => "RESTARTING",
        }
    }

    /// Why it failed.
    pub fn trace(&self) -> Option<&str> {
        match self {
            State::Failed(t) => Some(t),
            _ => None,
        }
    }
}

/// One task to run.
#[derive(Clone)]
pub struct TaskSpec {
    /// The connector's name.
    pub connector: String,
    /// The task's number.
    pub task: i32,
    /// The connector's configuration (converters, transforms, errors, topics).
    pub connector_config: Props,
    /// The task's configuration, as the connector split it.
    pub task_config: Props,
    /// The plugin.
    pub plugin: Plugin,
}

impl TaskSpec {
    /// `connector-task`, as Kafka names a task in logs and client ids.
    pub fn id(&self) -> String {
        format!("{}-{}", self.connector, self.task)
    }
}

/// A running task, as the herder holds it.
pub struct TaskHandle {
    control: watch::Sender<Target>,
    state: Arc<watch::Sender<State>>,
    join: Option<JoinHandle<()>>,
    shutdown_timeout: Duration,
}

impl TaskHandle {
    /// Its state now.
    pub fn state(&self) -> State {
        self.state.borrow().clone()
    }

    /// Its state, followed: changes as the task runs, pauses or fails.
    pub fn watch(&self) -> watch::Receiver<State> {
        self.state.subscribe()
    }

    /// Pauses or resumes it.
    pub fn set_target(&self, target: Target) {
        self.control.send_replace(target);
    }

    /// Stops it, waiting up to task.shutdown.graceful.timeout.ms before abandoning it.
    pub async fn stop(mut self) {
        self.control.send_replace(Target::Stopped);
        if let Some(join) = self.join.take() {
            let abort = join.abort_handle();
            if tokio::time::timeout(self.shutdown_timeout, join)
                .await
                .is_err()
            {
                tracing::error!(
                    "a task did not stop within task.shutdown.graceful.timeout.ms; abandoned"
                );
                abort.abort();
            }
        }
    }
}

/// A worker: what it runs tasks with.
pub struct Worker {
    /// Its id (`host:port` of its REST listener).
    pub id: String,
    /// Its settings.
    pub config: WorkerConfig,
    /// Its plugins.
    pub plugins: Plugins,
    /// Where source offsets are kept.
    pub offsets: Arc<dyn OffsetStore>,
}

/// What a running task shares with its herder.
pub(crate) struct TaskRun {
    pub spec: TaskSpec,
    pub worker: Arc<Worker>,
    pub control: watch::Receiver<Target>,
    pub state: Arc<watch::Sender<State>>,
}

impl TaskRun {
    pub(crate) fn set(&self, state: State) {
        if let State::Failed(why) = &state {
            tracing::error!(task = %self.spec.id(), "task failed: {why}");
        }
        self.state.send_replace(state);
    }

    /// The target now.
    pub(crate) fn target(&self) -> Target {
        *self.control.borrow()
    }

    /// Waits while paused; false once told to stop.
    pub(crate) async fn hold_while_paused(&mut self) -> bool {
        loop {
            match self.target() {
                Target::Started => return true,
                Target::Stopped => return false,
                Target::Paused => {
                    self.set(State::Paused);
                    if self.control.changed().await.is_err() {
                        return false;
                    }
                    if self.target() == Target::Started {
                        self.set(State::Running);
                    }
                }
            }
        }
    }
}

impl Worker {
    /// Starts a task.
    pub fn start_task(self: &Arc<Self>, spec: TaskSpec, target: Target) -> TaskHandle {
        let (control, rx) = watch::channel(target);
        let state = Arc::new(watch::channel(State::Unassigned).0);
        let run = TaskRun {
            spec: spec.clone(),
            worker: self.clone(),
            control: rx,
            state: state.clone(),
        };
        let join = match spec.plugin.tasks {
            crate::api::TaskFactory::Source(make) => tokio::spawn(source::run(run, make())),
            crate::api::TaskFactory::Sink(make) => tokio::spawn(sink::run(run, make())),
        };
        TaskHandle {
            control,
            state,
            join: Some(join),
            shutdown_timeout: self.config.task_shutdown_timeout,
        }
    }
}
