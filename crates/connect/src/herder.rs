//! The herder decides what runs: it keeps each connector's configuration and target state
//! (started, paused, stopped), starts the connector to learn its task configurations,
//! runs the tasks on the worker, and answers what the REST API asks. This is the
//! standalone herder (Kafka's `StandaloneHerder`): one worker, connectors given on the
//! command line or through the REST API, configurations kept in memory only.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value as Json};

use crate::api::{Connector, ConnectorType, Plugin, Props};
use crate::config::{ConfigDef, ConfigValue, Importance, Kind, Validator};
use crate::record::SourceMap;
use crate::worker::{sink::group_of, Plugins, State, Target, TaskHandle, TaskSpec, Worker};
use crate::ConnectError;

/// What the herder refuses, as the REST API answers it.
#[derive(Debug, thiserror::Error)]
pub enum HerderError {
    /// No such connector or task (404).
    #[error("{0}")]
    NotFound(String),
    /// A connector of that name exists (409).
    #[error("Connector {0} already exists")]
    AlreadyExists(String),
    /// The request cannot be done as asked (400).
    #[error("{0}")]
    BadRequest(String),
    /// Something failed while doing it (500).
    #[error(transparent)]
    Failed(#[from] ConnectError),
}

/// A connector's configuration and tasks (`GET /connectors/{name}`).
#[derive(Debug, Clone)]
pub struct ConnectorInfo {
    /// Its name.
    pub name: String,
    /// Its configuration.
    pub config: Props,
    /// Its task numbers.
    pub tasks: Vec<i32>,
    /// Source or sink.
    pub kind: ConnectorType,
}

impl ConnectorInfo {
    /// Connect's JSON.
    pub fn to_json(&self) -> Json {
        json!({
            "name": self.name,
            "config": self.config,
            "tasks": self.tasks.iter().map(|t| json!({"connector": self.name, "task": t})).collect::<Vec<_>>(),
            "type": self.kind.name(),
        })
    }
}

/// A connector's and its tasks' states (`GET /connectors/{name}/status`).
#[derive(Debug, Clone)]
pub struct ConnectorStatus {
    /// Its name.
    pub name: String,
    /// The connector's state.
    pub state: State,
    /// The worker running it.
    pub worker_id: String,
    /// Each task's number, state and worker.
    pub tasks: Vec<(i32, State, String)>,
    /// Source or sink.
    pub kind: ConnectorType,
}

fn state_json(id: Option<i32>, state: &State, worker: &str) -> Json {
    let mut j = json!({"state": state.name(), "worker_id": worker});
    if let Some(id) = id {
        j["id"] = json!(id);
    }
    if let Some(trace) = state.trace() {
        j["trace"] = json!(trace);
    }
    j
}

impl ConnectorStatus {
    /// Connect's JSON.
    pub fn to_json(&self) -> Json {
        json!({
            "name": self.name,
            "connector": state_json(None, &self.state, &self.worker_id),
            "tasks": self.tasks.iter().map(|(id, s, w)| state_json(Some(*id), s, w)).collect::<Vec<_>>(),
            "type": self.kind.name(),
        })
    }

    /// One task's JSON.
    pub fn task_json(&self, id: i32) -> Option<Json> {
        self.tasks
            .iter()
            .find(|(t, _, _)| *t == id)
            .map(|(t, s, w)| state_json(Some(*t), s, w))
    }
}

struct Entry {
    config: Props,
    plugin: Plugin,
    target: Target,
    connector: Option<Box<dyn Connector>>,
    state: State,
    task_configs: Vec<Props>,
    tasks: Vec<Option<TaskHandle>>,
}

/// The standalone herder.
pub struct Herder {
    worker: Arc<Worker>,
    connectors: tokio::sync::Mutex<BTreeMap<String, Entry>>,
}

/// The settings every connector has (Kafka's `ConnectorConfig`), and a sink's.
pub fn common_def(kind: ConnectorType) -> ConfigDef {
    let def = ConfigDef::new()
        .define("name", Kind::String, None, Importance::High, "Globally unique name to use for this connector.")
        .validated(Validator::NonEmpty)
        .define("connector.class", Kind::String, None, Importance::High, "Name or alias of the class for this connector.")
        .define("tasks.max", Kind::Int, Some("1"), Importance::High, "Maximum number of tasks to use for this connector.")
        .validated(Validator::AtLeast(1.0))
        .define("key.converter", Kind::Class, None, Importance::Low, "Converter class used to convert between Kafka Connect format and the serialized form that is written to Kafka.")
        .nullable()
        .define("value.converter", Kind::Class, None, Importance::Low, "Converter class used to convert between Kafka Connect format and the serialized form that is written to Kafka.")
        .nullable()
        .define("transforms", Kind::List, Some(""), Importance::Low, "Aliases for the transformations to be applied to records.")
        .define("predicates", Kind::List, Some(""), Importance::Low, "Aliases for the predicates used by transformations.")
        .define("errors.retry.timeout", Kind::Long, Some("0"), Importance::Medium, "The maximum duration in milliseconds that a failed operation will be reattempted. -1 for infinite retries.")
        .define("errors.retry.delay.max.ms", Kind::Long, Some("60000"), Importance::Medium, "The maximum duration in milliseconds between consecutive retry attempts.")
        .define("errors.tolerance", Kind::String, Some("none"), Importance::Medium, "Behavior for tolerating errors during connector operation. 'none' is the default value and signals that any error will result in an immediate connector task failure; 'all' changes the behavior to skip over problematic records.")
        .validated(Validator::OneOf(vec!["none".into(), "all".into()]))
        .define("errors.log.enable", Kind::Boolean, Some("false"), Importance::Medium, "If true, write each error and the details of the failed operation and problematic record to the Connect application log.")
        .define("errors.log.include.messages", Kind::Boolean, Some("false"), Importance::Medium, "Whether to include in the log the Connect record that resulted in a failure.");
    match kind {
        ConnectorType::Source => def,
        ConnectorType::Sink => def
            .define("topics", Kind::List, Some(""), Importance::High, "List of topics to consume, separated by commas")
            .define("topics.regex", Kind::String, Some(""), Importance::High, "Regular expression giving topics to consume.")
            .define("errors.deadletterqueue.topic.name", Kind::String, Some(""), Importance::Medium, "The name of the topic to be used as the dead letter queue (DLQ) for messages that result in an error when processed by this sink connector, or its transformations or converters. The topic name is blank by default, which means that no messages are to be recorded in the DLQ.")
            .define("errors.deadletterqueue.topic.replication.factor", Kind::Int, Some("3"), Importance::Medium, "Replication factor used to create the dead letter queue topic when it doesn't already exist.")
            .define("errors.deadletterqueue.context.headers.enable", Kind::Boolean, Some("false"), Importance::Medium, "If true, add headers containing error context to the messages written to the dead letter queue."),
    }
}

/// Checks what only makes sense together: a sink's topics, its dead-letter queue.
fn sink_checks(props: &Props, values: &mut [ConfigValue]) {
    let set = |k: &str| props.get(k).is_some_and(|v| !v.trim().is_empty());
    let mut add = |name: &str, message: String| {
        if let Some(v) = values.iter_mut().find(|v| v.name == name) {
            v.errors.push(message);
        }
    };
    match (set("topics"), set("topics.regex")) {
        (false, false) => {
            let m = "Must configure one of topics or topics.regex".to_string();
            add("topics", m.clone());
            add("topics.regex", m);
        }
        (true, true) => {
            let m = "topics and topics.regex are mutually exclusive options, but both are set."
                .to_string();
            add("topics", m.clone());
            add("topics.regex", m);
        }
        _ => {}
    }
    if let (Some(dlq), Some(topics)) = (
        props.get("errors.deadletterqueue.topic.name"),
        props.get("topics"),
    ) {
        let dlq = dlq.trim();
        if !dlq.is_empty() && topics.split(',').any(|t| t.trim() == dlq) {
            add(
                "errors.deadletterqueue.topic.name",
                format!("The DLQ topic '{dlq}' may not be included in the list of topics ('topics={topics}') consumed by the connector"),
            );
        }
    }
}

/// The result of validating a connector configuration.
pub struct Validation {
    /// The plugin's class.
    pub class: String,
    /// The definitions that were checked.
    pub def: ConfigDef,
    /// Each setting's result.
    pub values: Vec<ConfigValue>,
}

impl Validation {
    /// The error messages, in order.
    pub fn errors(&self) -> Vec<String> {
        self.values
            .iter()
            .flat_map(|v| v.errors.iter().cloned())
            .collect()
    }

    /// Connect's validate JSON.
    pub fn to_json(&self) -> Json {
        self.def.validation_json_of(&self.class, &self.values)
    }
}

/// Where a request that changes something must be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// By this worker.
    Here,
    /// By the group's leader, at this REST URL.
    Leader(String),
    /// Nowhere yet: the group is rebalancing (409).
    Rebalancing,
}

/// What the REST API asks of a herder, standalone or distributed.
#[async_trait]
pub trait Herding: Send + Sync {
    /// The worker.
    fn worker(&self) -> &Arc<Worker>;

    /// Where changes are served; standalone: always here.
    fn route(&self) -> Route {
        Route::Here
    }

    /// Validates a configuration for `plugin` (a class name or alias).
    fn validate(&self, plugin: &str, props: &Props) -> Result<Validation, HerderError>;

    /// The connectors' names, sorted.
    async fn connectors(&self) -> Vec<String>;

    /// Creates a connector, or (with `replace`) changes an existing one's configuration.
    /// True when it was created.
    async fn put(
        &self,
        name: &str,
        config: Props,
        replace: bool,
    ) -> Result<(bool, ConnectorInfo), HerderError>;

    /// A connector's configuration and tasks.
    async fn info(&self, name: &str) -> Result<ConnectorInfo, HerderError>;

    /// Its tasks' configurations.
    async fn task_configs(&self, name: &str) -> Result<Vec<Props>, HerderError>;

    /// Its state and its tasks'.
    async fn status(&self, name: &str) -> Result<ConnectorStatus, HerderError>;

    /// Pauses (`Target::Paused`), resumes (`Started`) or stops (`Stopped`) a connector.
    async fn set_target(&self, name: &str, target: Target) -> Result<(), HerderError>;

    /// Restarts the connector (if `only_failed`, only when it failed) and, with
    /// `include_tasks`, its tasks (the failed ones only, with `only_failed`), as KIP-745.
    async fn restart(
        &self,
        name: &str,
        include_tasks: bool,
        only_failed: bool,
    ) -> Result<(), HerderError>;

    /// Restarts one task.
    async fn restart_task(&self, name: &str, task: i32) -> Result<(), HerderError>;

    /// Stops and removes a connector (its offsets stay, as in Kafka).
    async fn delete(&self, name: &str) -> Result<(), HerderError>;

    /// A connector's offsets, as `GET /connectors/{name}/offsets` shows them (KIP-875).
    async fn offsets(&self, name: &str) -> Result<Json, HerderError>;

    /// Alters (`Some`) or resets (`None`) a stopped connector's offsets (KIP-875).
    async fn change_offsets(
        &self,
        name: &str,
        offsets: Option<&Json>,
    ) -> Result<&'static str, HerderError>;
}

impl Herder {
    /// A herder over this worker.
    pub fn new(worker: Arc<Worker>) -> Herder {
        Herder {
            worker,
            connectors: tokio::sync::Mutex::new(BTreeMap::new()),
        }
    }

    /// Starts the connector (unless stopped) and its tasks.
    async fn start_entry(&self, name: &str, entry: &mut Entry) {
        if entry.target == Target::Stopped {
            entry.state = State::Stopped;
            return;
        }
        let mut connector = (entry.plugin.connector)();
        if let Err(e) = connector.start(entry.config.clone()).await {
            tracing::error!(connector = name, "the connector failed to start: {e}");
            entry.state = State::Failed(e.to_string());
            return;
        }
        let max = entry
            .config
            .get("tasks.max")
            .and_then(|t| t.trim().parse::<usize>().ok())
            .unwrap_or(1)
            .max(1);
        let mut configs = connector.task_configs(max);
        configs.truncate(max);
        entry.task_configs = configs;
        entry.connector = Some(connector);
        entry.state = match entry.target {
            Target::Paused => State::Paused,
            _ => State::Running,
        };
        let tasks = (0..entry.task_configs.len())
            .map(|i| Some(self.start_task(name, entry, i)))
            .collect();
        entry.tasks = tasks;
    }

    fn start_task(&self, name: &str, entry: &Entry, i: usize) -> TaskHandle {
        self.worker.start_task(
            TaskSpec {
                connector: name.to_string(),
                task: i as i32,
                connector_config: entry.config.clone(),
                task_config: entry.task_configs[i].clone(),
                plugin: entry.plugin,
            },
            entry.target,
        )
    }

    /// Stops everything (the worker is shutting down).
    pub async fn shutdown(&self) {
        let mut connectors = self.connectors.lock().await;
        for entry in connectors.values_mut() {
            stop_entry(entry).await;
        }
    }

    async fn kind_of(&self, name: &str) -> Result<ConnectorType, HerderError> {
        let connectors = self.connectors.lock().await;
        Ok(connectors
            .get(name)
            .ok_or_else(|| not_found(name))?
            .plugin
            .kind())
    }
}

#[async_trait]
impl Herding for Herder {
    fn worker(&self) -> &Arc<Worker> {
        &self.worker
    }

    fn validate(&self, plugin: &str, props: &Props) -> Result<Validation, HerderError> {
        validate(&self.worker.plugins, plugin, props)
    }

    async fn connectors(&self) -> Vec<String> {
        self.connectors.lock().await.keys().cloned().collect()
    }

    async fn put(
        &self,
        name: &str,
        config: Props,
        replace: bool,
    ) -> Result<(bool, ConnectorInfo), HerderError> {
        let (config, plugin) = checked_config(&self.worker.plugins, name, config)?;
        let mut connectors = self.connectors.lock().await;
        let created = match connectors.remove(name) {
            Some(old) if !replace => {
                connectors.insert(name.to_string(), old);
                return Err(HerderError::AlreadyExists(name.to_string()));
            }
            Some(mut old) => {
                stop_entry(&mut old).await;
                let mut entry = new_entry(config, plugin, old.target);
                self.start_entry(name, &mut entry).await;
                connectors.insert(name.to_string(), entry);
                false
            }
            None => {
                let mut entry = new_entry(config, plugin, Target::Started);
                self.start_entry(name, &mut entry).await;
                connectors.insert(name.to_string(), entry);
                true
            }
        };
        tracing::info!(connector = name, created, "connector configuration stored");
        let info = info_of(name, &connectors[name]);
        Ok((created, info))
    }

    async fn info(&self, name: &str) -> Result<ConnectorInfo, HerderError> {
        let connectors = self.connectors.lock().await;
        let entry = connectors.get(name).ok_or_else(|| not_found(name))?;
        Ok(info_of(name, entry))
    }

    async fn task_configs(&self, name: &str) -> Result<Vec<Props>, HerderError> {
        let connectors = self.connectors.lock().await;
        let entry = connectors.get(name).ok_or_else(|| not_found(name))?;
        Ok(entry.task_configs.clone())
    }

    async fn status(&self, name: &str) -> Result<ConnectorStatus, HerderError> {
        let connectors = self.connectors.lock().await;
        let entry = connectors.get(name).ok_or_else(|| not_found(name))?;
        let worker = self.worker.id.clone();
        Ok(ConnectorStatus {
            name: name.to_string(),
            state: entry.state.clone(),
            worker_id: worker.clone(),
            tasks: entry
                .tasks
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    let state = t.as_ref().map_or(State::Unassigned, TaskHandle::state);
                    (i as i32, state, worker.clone())
                })
                .collect(),
            kind: entry.plugin.kind(),
        })
    }

    async fn set_target(&self, name: &str, target: Target) -> Result<(), HerderError> {
        let mut connectors = self.connectors.lock().await;
        let entry = connectors.get_mut(name).ok_or_else(|| not_found(name))?;
        let was = entry.target;
        entry.target = target;
        match (was, target) {
            (_, Target::Stopped) => {
                stop_entry(entry).await;
                entry.state = State::Stopped;
                entry.task_configs.clear();
            }
            (Target::Stopped, _) => self.start_entry(name, entry).await,
            (_, t) => {
                if !matches!(entry.state, State::Failed(_)) {
                    entry.state = if t == Target::Paused {
                        State::Paused
                    } else {
                        State::Running
                    };
                }
                for task in entry.tasks.iter().flatten() {
                    task.set_target(t);
                }
            }
        }
        tracing::info!(connector = name, ?target, "connector target state changed");
        Ok(())
    }

    async fn restart(
        &self,
        name: &str,
        include_tasks: bool,
        only_failed: bool,
    ) -> Result<(), HerderError> {
        let mut connectors = self.connectors.lock().await;
        let entry = connectors.get_mut(name).ok_or_else(|| not_found(name))?;
        if entry.target == Target::Stopped {
            return Ok(());
        }
        let connector_failed = matches!(entry.state, State::Failed(_));
        if !only_failed || connector_failed {
            if include_tasks {
                stop_entry(entry).await;
                self.start_entry(name, entry).await;
                return Ok(());
            }
            if let Some(mut c) = entry.connector.take() {
                let _ = c.stop().await;
            }
            let mut c = (entry.plugin.connector)();
            match c.start(entry.config.clone()).await {
                Ok(()) => {
                    entry.connector = Some(c);
                    entry.state = if entry.target == Target::Paused {
                        State::Paused
                    } else {
                        State::Running
                    };
                }
                Err(e) => entry.state = State::Failed(e.to_string()),
            }
        }
        if include_tasks {
            for i in 0..entry.tasks.len() {
                let failed = entry.tasks[i]
                    .as_ref()
                    .is_none_or(|t| matches!(t.state(), State::Failed(_)));
                if !only_failed || failed {
                    if let Some(t) = entry.tasks[i].take() {
                        t.stop().await;
                    }
                    let task = self.start_task(name, entry, i);
                    entry.tasks[i] = Some(task);
                }
            }
        }
        Ok(())
    }

    async fn restart_task(&self, name: &str, task: i32) -> Result<(), HerderError> {
        let mut connectors = self.connectors.lock().await;
        let entry = connectors.get_mut(name).ok_or_else(|| not_found(name))?;
        let i = usize::try_from(task)
            .ok()
            .filter(|i| *i < entry.tasks.len())
            .ok_or_else(|| HerderError::NotFound(format!("Task {name}-{task} not found")))?;
        if let Some(t) = entry.tasks[i].take() {
            t.stop().await;
        }
        let restarted = self.start_task(name, entry, i);
        entry.tasks[i] = Some(restarted);
        Ok(())
    }

    async fn delete(&self, name: &str) -> Result<(), HerderError> {
        let mut connectors = self.connectors.lock().await;
        let mut entry = connectors.remove(name).ok_or_else(|| not_found(name))?;
        stop_entry(&mut entry).await;
        tracing::info!(connector = name, "connector deleted");
        Ok(())
    }

    async fn offsets(&self, name: &str) -> Result<Json, HerderError> {
        let kind = self.kind_of(name).await?;
        offsets_of(&self.worker, name, kind).await
    }

    async fn change_offsets(
        &self,
        name: &str,
        offsets: Option<&Json>,
    ) -> Result<&'static str, HerderError> {
        let kind = {
            let connectors = self.connectors.lock().await;
            let entry = connectors.get(name).ok_or_else(|| not_found(name))?;
            if entry.target != Target::Stopped {
                return Err(not_stopped(name));
            }
            entry.plugin.kind()
        };
        change_offsets_of(&self.worker, name, kind, offsets).await
    }
}

/// The plugin `connector.class` names, or Kafka's message.
fn plugin_of(plugins: &Plugins, class: &str) -> Result<Plugin, HerderError> {
    plugins.find(class).ok_or_else(|| {
        let known: Vec<_> = plugins.all().iter().map(|p| p.class).collect();
        HerderError::BadRequest(format!(
            "Failed to find any class that implements Connector and which name matches {class}, available connectors are: {}",
            known.join(", ")
        ))
    })
}

/// Validates a configuration for `plugin` (a class name or alias).
pub fn validate(plugins: &Plugins, plugin: &str, props: &Props) -> Result<Validation, HerderError> {
    let plugin = plugin_of(plugins, plugin)?;
    let connector = (plugin.connector)();
    let common = common_def(plugin.kind());
    let mut values = common.validate(props);
    if plugin.kind() == ConnectorType::Sink {
        sink_checks(props, &mut values);
    }
    // The connector's own settings, minus the common ones it may redefine.
    let own = connector.validate(props);
    values.extend(
        own.into_iter()
            .filter(|v| !common.keys().iter().any(|k| k.name == v.name)),
    );
    for (name, message) in crate::transforms::validate(props) {
        match values.iter_mut().find(|v| v.name == name) {
            Some(v) => v.errors.push(message),
            None => values.push(ConfigValue {
                value: props.get(&name).cloned(),
                name,
                errors: vec![message],
            }),
        }
    }
    Ok(Validation {
        class: plugin.class.to_string(),
        def: common.merged(connector.config_def()),
        values,
    })
}

/// Checks a connector configuration as a create or update does: the name, the class,
/// and every setting; the configuration (with its name) and plugin, or the 400 to answer.
pub fn checked_config(
    plugins: &Plugins,
    name: &str,
    mut config: Props,
) -> Result<(Props, Plugin), HerderError> {
    if name.trim().is_empty() || name.chars().any(char::is_control) {
        return Err(HerderError::BadRequest(
            "Connector name cannot be empty and may not contain control characters".into(),
        ));
    }
    match config.get("name") {
        Some(n) if n != name => {
            return Err(HerderError::BadRequest(format!(
            "Connector name configuration ({n}) doesn't match connector name in the URL ({name})"
        )))
        }
        Some(_) => {}
        None => {
            config.insert("name".into(), name.to_string());
        }
    }
    let class = config.get("connector.class").cloned().ok_or_else(|| {
        HerderError::BadRequest(
            "Connector config {} contains no connector type".replace("{}", &format!("{config:?}")),
        )
    })?;
    let validation = validate(plugins, &class, &config)?;
    let errors = validation.errors();
    if !errors.is_empty() {
        return Err(HerderError::BadRequest(format!(
            "Connector configuration is invalid and contains the following {} error(s):\n{}\nYou can also find the above list of errors at the endpoint `/connector-plugins/{{connectorType}}/config/validate`",
            errors.len(),
            errors.join("\n")
        )));
    }
    let plugin = plugin_of(plugins, &class)?;
    Ok((config, plugin))
}

/// A connector's offsets, as `GET /connectors/{name}/offsets` shows them (KIP-875).
pub async fn offsets_of(
    worker: &Worker,
    name: &str,
    kind: ConnectorType,
) -> Result<Json, HerderError> {
    let offsets: Vec<Json> = match kind {
        ConnectorType::Source => worker
            .offsets
            .all(name)
            .into_iter()
            .map(|(p, o)| json!({"partition": p, "offset": o}))
            .collect(),
        ConnectorType::Sink => admin(worker)
            .list_group_offsets(&group_of(name))
            .await
            .map_err(ConnectError::Kafka)?
            .into_iter()
            .map(|c| {
                json!({
                    "partition": {"kafka_topic": c.topic, "kafka_partition": c.partition},
                    "offset": {"kafka_offset": c.offset},
                })
            })
            .collect(),
    };
    Ok(json!({ "offsets": offsets }))
}

/// Alters (`Some`) or resets (`None`) a stopped connector's offsets (KIP-875).
pub async fn change_offsets_of(
    worker: &Worker,
    name: &str,
    kind: ConnectorType,
    offsets: Option<&Json>,
) -> Result<&'static str, HerderError> {
    let bad = |m: &str| HerderError::BadRequest(m.to_string());
    match (kind, offsets) {
        (ConnectorType::Source, None) => {
            let all = worker
                .offsets
                .all(name)
                .into_iter()
                .map(|(p, _)| (p, None))
                .collect();
            worker.offsets.put(name, all).await?;
        }
        (ConnectorType::Source, Some(list)) => {
            let mut entries = Vec::new();
            for item in list
                .as_array()
                .ok_or_else(|| bad("Offsets must be specified as a list"))?
            {
                let partition: SourceMap = item
                    .get("partition")
                    .and_then(Json::as_object)
                    .cloned()
                    .ok_or_else(|| bad("Source partitions may not be null"))?;
                let offset = match item.get("offset") {
                    None | Some(Json::Null) => None,
                    Some(Json::Object(o)) => Some(o.clone()),
                    Some(_) => return Err(bad("Source offsets must be JSON objects")),
                };
                entries.push((partition, offset));
            }
            worker.offsets.put(name, entries).await?;
        }
        (ConnectorType::Sink, None) => {
            admin(worker)
                .delete_groups(&[group_of(name)])
                .await
                .or_else(|e| match e {
                    // GROUP_ID_NOT_FOUND: nothing was committed.
                    strom_client::ClientError::Kafka { code: 69, .. } => Ok(()),
                    e => Err(e),
                })
                .map_err(ConnectError::Kafka)?;
        }
        (ConnectorType::Sink, Some(list)) => {
            let mut set = Vec::new();
            let mut remove = Vec::new();
            for item in list
                .as_array()
                .ok_or_else(|| bad("Offsets must be specified as a list"))?
            {
                let p = item.get("partition");
                let topic = p.and_then(|p| p.get("kafka_topic")).and_then(Json::as_str);
                let partition = p
                    .and_then(|p| p.get("kafka_partition"))
                    .and_then(Json::as_i64);
                let (Some(topic), Some(partition)) = (topic, partition) else {
                    return Err(bad(
                        "Kafka partitions must contain kafka_topic and kafka_partition",
                    ));
                };
                let tp = (topic.to_string(), partition as i32);
                match item.get("offset") {
                    None | Some(Json::Null) => remove.push(tp),
                    Some(o) => {
                        match o.get("kafka_offset").and_then(Json::as_i64) {
                            Some(off) if off >= 0 => set.push((tp, off)),
                            _ => return Err(bad(
                                "Kafka offsets must be non-negative integers under kafka_offset",
                            )),
                        }
                    }
                }
            }
            let admin = admin(worker);
            if !set.is_empty() {
                admin
                    .alter_group_offsets(&group_of(name), &set)
                    .await
                    .map_err(ConnectError::Kafka)?;
            }
            if !remove.is_empty() {
                admin
                    .delete_group_offsets(&group_of(name), &remove)
                    .await
                    .map_err(ConnectError::Kafka)?;
            }
        }
    }
    Ok(match offsets {
        Some(_) => "The offsets for this connector have been altered successfully",
        None => "The offsets for this connector have been reset successfully",
    })
}

/// The 400 for changing the offsets of a connector that is not stopped.
pub fn not_stopped(name: &str) -> HerderError {
    HerderError::BadRequest(format!(
        "Connectors must be in the STOPPED state before their offsets can be modified. This can be done for the specified connector by issuing a 'PUT' request to the '/connectors/{name}/stop' endpoint"
    ))
}

/// An admin client with the worker's own security settings (and its `admin.` ones).
fn admin(worker: &Worker) -> strom_client::Admin {
    let config = &worker.config;
    let mut security = strom_client::SecurityConfig::default();
    let admin = config.client_props("admin.", &Props::new());
    for (k, v) in config.props.iter().chain(admin.iter().map(|(k, v)| (k, v))) {
        if let Err(e) = security.set(k, v) {
            tracing::warn!("ignoring {k}: {e}");
        }
    }
    let bootstrap = config
        .bootstrap_servers
        .split(',')
        .map(|s| s.trim().to_string())
        .collect();
    strom_client::Admin::secured(
        bootstrap,
        "connect-admin",
        Duration::from_secs(30),
        &security,
    )
}

fn not_found(name: &str) -> HerderError {
    HerderError::NotFound(format!("Connector {name} not found"))
}

fn new_entry(config: Props, plugin: Plugin, target: Target) -> Entry {
    Entry {
        config,
        plugin,
        target,
        connector: None,
        state: State::Unassigned,
        task_configs: Vec::new(),
        tasks: Vec::new(),
    }
}

fn info_of(name: &str, entry: &Entry) -> ConnectorInfo {
    ConnectorInfo {
        name: name.to_string(),
        config: entry.config.clone(),
        tasks: (0..entry.task_configs.len() as i32).collect(),
        kind: entry.plugin.kind(),
    }
}

/// Stops the tasks, then the connector.
async fn stop_entry(entry: &mut Entry) {
    for t in entry.tasks.drain(..).flatten() {
        t.stop().await;
    }
    if let Some(mut c) = entry.connector.take() {
        if let Err(e) = c.stop().await {
            tracing::warn!("stopping a connector: {e}");
        }
    }
}
