//! The distributed herder (Kafka's `DistributedHerder`). It owns three things:
//!
//! - **The group loop**: join with what this worker runs and how far it read the configs;
//!   as leader, assign (see `assign`); sync; stop what was revoked (and rejoin at once),
//!   run what was given; rejoin when the coordinator rebalances, when held-back work's
//!   delay ends, or (as leader) when the configs add or remove connectors or tasks.
//! - **Running this worker's share**: a connector given here is started to learn its task
//!   configurations, which it writes to the config topic when they changed; a task given
//!   here runs with its committed configuration and the connector's target state. Every
//!   state change is written to the status topic.
//! - **The REST API's answers**: reads come from this worker's copy of the topics, so
//!   every worker answers them; changes are written to the config topic by the leader
//!   (the REST layer forwards them there, or answers 409 while the group rebalances).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parking_lot::{Mutex, RwLock};
use serde_json::Value as Json;
use strom_client::{GroupMember, Joined, MemberSettings};
use tokio::sync::Notify;

use super::assign::{Assignment, Cooperative, Metadata, Work, PROTOCOL};
use super::log::KafkaLog;
use super::state::{
    connector_record, restart_record, status_record, target_record, task_records, Configs,
    KafkaOffsetStore, Restart, Statuses,
};
use super::DistributedConfig;
use crate::api::{Connector, ConnectorType, Props};
use crate::herder::{
    change_offsets_of, checked_config, not_stopped, offsets_of, validate, ConnectorInfo,
    ConnectorStatus, HerderError, Herding, Route, Validation,
};
use crate::worker::{State, Target, TaskHandle, TaskSpec, Worker};
use crate::ConnectError;

/// The storage topics, opened and read.
pub struct Logs {
    /// The config topic's content.
    pub configs: Arc<Mutex<Configs>>,
    /// The status topic's content.
    pub statuses: Arc<RwLock<Statuses>>,
    /// Told on every config record.
    pub changed: Arc<Notify>,
    /// The config topic.
    pub config_log: KafkaLog,
    /// The status topic.
    pub status_log: KafkaLog,
    /// The offset topic.
    pub offsets: Arc<KafkaOffsetStore>,
}

/// What this worker knows of the group.
#[derive(Debug, Default)]
struct View {
    /// Synced and running its share.
    stable: bool,
    leader: bool,
    leader_url: String,
    generation: i32,
    assigned: BTreeSet<Work>,
    everyone: BTreeMap<String, BTreeSet<Work>>,
}

struct RunningConnector {
    instance: Box<dyn Connector>,
    config: Props,
}

struct RunningTask {
    handle: TaskHandle,
    connector_config: Props,
    task_config: Props,
    target: Target,
    reporter: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct Runtime {
    connectors: BTreeMap<String, RunningConnector>,
    tasks: BTreeMap<(String, i32), RunningTask>,
    /// Connector states written last, so a state is written once per change.
    connector_states: BTreeMap<String, State>,
}

/// The distributed herder.
pub struct DistributedHerder {
    worker: Arc<Worker>,
    settings: DistributedConfig,
    url: String,
    logs: Logs,
    view: Mutex<View>,
    runtime: tokio::sync::Mutex<Runtime>,
    stop: Notify,
    loop_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl DistributedHerder {
    /// Starts the group loop.
    pub fn start(worker: Arc<Worker>, settings: DistributedConfig, logs: Logs) -> Arc<Self> {
        let url = format!("http://{}", worker.id);
        let herder = Arc::new(DistributedHerder {
            worker,
            settings,
            url,
            logs,
            view: Mutex::new(View::default()),
            runtime: tokio::sync::Mutex::new(Runtime::default()),
            stop: Notify::new(),
            loop_task: Mutex::new(None),
        });
        let task = tokio::spawn(herder.clone().group_loop());
        *herder.loop_task.lock() = Some(task);
        herder
    }

    /// Stops everything this worker runs and leaves the group.
    pub async fn shutdown(&self) {
        self.stop.notify_one();
        let task = self.loop_task.lock().take();
        if let Some(task) = task {
            let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
        }
    }

    fn cluster(&self) -> Arc<strom_client::cluster::Cluster> {
        let config = &self.worker.config;
        let mut security = strom_client::SecurityConfig::default();
        for (k, v) in &config.props {
            let _ = security.set(k, v);
        }
        strom_client::cluster::Cluster::secured(
            config
                .bootstrap_servers
                .split(',')
                .map(|s| s.trim().to_string())
                .collect(),
            &format!("connect-{}", self.settings.group_id),
            Duration::from_secs(30),
            Duration::from_secs(300),
            &security,
        )
    }

    async fn group_loop(self: Arc<Self>) {
        let member = GroupMember::new(
            MemberSettings {
                group_id: self.settings.group_id.clone(),
                protocol_type: "connect".into(),
                session_timeout: self.settings.session_timeout,
                heartbeat_interval: self.settings.heartbeat_interval,
                rebalance_timeout: self.settings.rebalance_timeout,
            },
            self.cluster(),
        );
        let mut assignor = Cooperative::new(self.settings.max_delay);
        loop {
            self.view.lock().stable = false;
            let metadata = Metadata {
                url: self.url.clone(),
                config_offset: self.logs.configs.lock().offset,
                owned: self.view.lock().assigned.clone(),
            };
            let protocols = [(PROTOCOL.to_string(), metadata.encode())];
            let joined = tokio::select! {
                j = member.join(&protocols) => j,
                _ = self.stop.notified() => break,
            };
            let joined = match joined {
                Ok(j) => j,
                Err(e) => {
                    tracing::warn!("joining the Connect group: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            // As leader: the work the assignment was made for; once the configs hold other
            // work (a connector wrote its task configs, one was deleted), rebalance again.
            let mut planned = None;
            let assignments = if joined.is_leader() {
                match self.assign(&joined, &mut assignor).await {
                    Ok((a, all)) => {
                        planned = Some(all);
                        a
                    }
                    Err(e) => {
                        tracing::warn!("assigning the Connect group's work: {e}");
                        Vec::new()
                    }
                }
            } else {
                Vec::new()
            };
            let assignment = match member.sync(&joined, assignments).await {
                Ok(Some(bytes)) => match Assignment::decode(&bytes) {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!("{e}");
                        continue;
                    }
                },
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!("syncing with the Connect group: {e}");
                    continue;
                }
            };
            let revoked = !assignment.revoked.is_empty();
            if let Err(e) = self.apply(&joined, assignment.clone()).await {
                tracing::warn!("applying the assignment: {e}");
            }
            tracing::info!(
                generation = joined.generation,
                leader = joined.is_leader(),
                assigned = assignment.assigned.len(),
                revoked = assignment.revoked.len(),
                delay_ms = assignment.delay.as_millis() as u64,
                "joined the Connect group"
            );
            if revoked {
                continue; // what was revoked can now go elsewhere
            }
            let rejoin_at = (!assignment.delay.is_zero())
                .then(|| tokio::time::Instant::now() + assignment.delay);
            loop {
                let changed = self.logs.changed.notified();
                if let Some(all) = &planned {
                    if *all != self.logs.configs.lock().all_work() {
                        break;
                    }
                }
                tokio::select! {
                    _ = member.rebalance_pending() => break,
                    _ = async {
                        match rejoin_at {
                            Some(at) => tokio::time::sleep_until(at).await,
                            None => std::future::pending().await,
                        }
                    } => break,
                    _ = changed => self.reconcile().await,
                    _ = self.stop.notified() => {
                        self.stop_all().await;
                        if let Err(e) = member.leave("the worker is shutting down").await {
                            tracing::debug!("leaving the Connect group: {e}");
                        }
                        return;
                    }
                }
            }
        }
        self.stop_all().await;
        let _ = member.leave("the worker is shutting down").await;
    }

    /// The leader's round: every member's share, encoded.
    async fn assign(
        &self,
        joined: &Joined,
        assignor: &mut Cooperative,
    ) -> Result<(Vec<(String, bytes::Bytes)>, BTreeSet<Work>), ConnectError> {
        self.logs.config_log.read_to_end().await?;
        let (all, offset) = {
            let c = self.logs.configs.lock();
            (c.all_work(), c.offset)
        };
        let mut urls: BTreeMap<String, String> = BTreeMap::new();
        let mut members: BTreeMap<String, BTreeSet<Work>> = BTreeMap::new();
        for (id, bytes) in &joined.members {
            let m = Metadata::decode(bytes)?;
            urls.insert(id.clone(), m.url.clone());
            members.insert(m.url, m.owned);
        }
        assignor.remember(&self.view.lock().everyone);
        let (shares, delay) = assignor.assign(Instant::now(), &members, &all);
        let everyone: BTreeMap<String, BTreeSet<Work>> = shares
            .iter()
            .map(|(url, s)| (url.clone(), s.assigned.clone()))
            .collect();
        let leader_url = self.url.clone();
        let encoded = urls
            .into_iter()
            .map(|(id, url)| {
                let share = shares.get(&url).cloned().unwrap_or_default();
                let a = Assignment {
                    leader: joined.member_id.clone(),
                    leader_url: leader_url.clone(),
                    config_offset: offset,
                    assigned: share.assigned,
                    revoked: share.revoked,
                    delay,
                    everyone: everyone.clone(),
                };
                (id, a.encode())
            })
            .collect();
        Ok((encoded, all))
    }

    /// Takes a new assignment: stops what was revoked, then runs the share.
    async fn apply(&self, joined: &Joined, a: Assignment) -> Result<(), ConnectError> {
        {
            let mut view = self.view.lock();
            view.assigned = a.assigned.clone();
            view.leader = joined.is_leader();
            view.leader_url = a.leader_url.clone();
            view.generation = joined.generation;
            view.everyone = a.everyone.clone();
        }
        self.logs.config_log.read_to_end().await?;
        // Offsets a previous owner of a task stored must be seen before the task starts.
        self.logs.offsets.read_to_end().await?;
        self.view.lock().stable = true;
        self.reconcile().await;
        Ok(())
    }

    fn generation(&self) -> i32 {
        self.view.lock().generation
    }

    async fn write_status(&self, name: &str, task: Option<i32>, state: &State) {
        let (k, v) = status_record(name, task, state, &self.worker.id, self.generation());
        if let Err(e) = self.logs.status_log.send(k, v).await {
            tracing::warn!(connector = name, "writing a status: {e}");
        }
    }

    /// Makes what runs here match the assignment and the configs.
    async fn reconcile(&self) {
        let mut rt = self.runtime.lock().await;
        let assigned = self.view.lock().assigned.clone();
        let (connectors, targets, tasks, restarts) = {
            let mut c = self.logs.configs.lock();
            let targets: BTreeMap<String, Target> = c
                .connectors
                .keys()
                .map(|n| (n.clone(), c.target(n)))
                .collect();
            (
                c.connectors.clone(),
                targets,
                c.tasks.clone(),
                std::mem::take(&mut c.restarts),
            )
        };
        for r in restarts {
            self.restart_here(&mut rt, &r).await;
        }

        // Stop what is no longer ours, or runs with an old configuration.
        let stale: Vec<(String, i32)> = rt
            .tasks
            .iter()
            .filter(|((name, n), t)| {
                !assigned.contains(&Work::Task(name.clone(), *n))
                    || targets.get(name) == Some(&Target::Stopped)
                    || connectors.get(name) != Some(&t.connector_config)
                    || tasks.get(name).and_then(|ts| ts.get(*n as usize)) != Some(&t.task_config)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in stale {
            if let Some(t) = rt.tasks.remove(&key) {
                t.reporter.abort();
                t.handle.stop().await;
                if !assigned.contains(&Work::Task(key.0.clone(), key.1)) {
                    self.write_status(&key.0, Some(key.1), &State::Unassigned)
                        .await;
                }
            }
        }
        let stale: Vec<String> = rt
            .connectors
            .iter()
            .filter(|(name, c)| {
                !assigned.contains(&Work::Connector((*name).clone()))
                    || targets.get(*name) == Some(&Target::Stopped)
                    || connectors.get(*name) != Some(&c.config)
            })
            .map(|(n, _)| n.clone())
            .collect();
        for name in stale {
            if let Some(mut c) = rt.connectors.remove(&name) {
                if let Err(e) = c.instance.stop().await {
                    tracing::warn!(connector = %name, "stopping the connector: {e}");
                }
            }
            if !assigned.contains(&Work::Connector(name.clone())) {
                rt.connector_states.remove(&name);
                if connectors.contains_key(&name) {
                    self.write_status(&name, None, &State::Unassigned).await;
                }
            }
        }

        // Run what is ours.
        for w in &assigned {
            match w {
                Work::Connector(name) => {
                    let Some(config) = connectors.get(name) else {
                        continue;
                    };
                    let target = targets.get(name).copied().unwrap_or(Target::Started);
                    self.run_connector(&mut rt, name, config, target, tasks.get(name))
                        .await;
                }
                Work::Task(name, n) => {
                    let (Some(config), Some(task_config)) = (
                        connectors.get(name),
                        tasks.get(name).and_then(|t| t.get(*n as usize)),
                    ) else {
                        continue;
                    };
                    let target = targets.get(name).copied().unwrap_or(Target::Started);
                    if target == Target::Stopped {
                        continue;
                    }
                    self.run_task(&mut rt, name, *n, config, task_config, target);
                }
            }
        }
    }

    async fn run_connector(
        &self,
        rt: &mut Runtime,
        name: &str,
        config: &Props,
        target: Target,
        committed: Option<&Vec<Props>>,
    ) {
        let state = if target == Target::Stopped {
            // A stopped connector has no tasks (KIP-875).
            if committed.is_some_and(|t| !t.is_empty()) {
                self.write_tasks(name, &[]).await;
            }
            State::Stopped
        } else if rt.connectors.contains_key(name) {
            match target {
                Target::Paused => State::Paused,
                _ => State::Running,
            }
        } else {
            match self.start_connector(name, config).await {
                Ok((instance, task_configs)) => {
                    if committed != Some(&task_configs) {
                        self.write_tasks(name, &task_configs).await;
                    }
                    rt.connectors.insert(
                        name.to_string(),
                        RunningConnector {
                            instance,
                            config: config.clone(),
                        },
                    );
                    match target {
                        Target::Paused => State::Paused,
                        _ => State::Running,
                    }
                }
                Err(e) => {
                    tracing::error!(connector = name, "the connector failed to start: {e}");
                    State::Failed(e.to_string())
                }
            }
        };
        if rt.connector_states.get(name) != Some(&state) {
            self.write_status(name, None, &state).await;
            rt.connector_states.insert(name.to_string(), state);
        }
    }

    async fn start_connector(
        &self,
        name: &str,
        config: &Props,
    ) -> Result<(Box<dyn Connector>, Vec<Props>), ConnectError> {
        let class = config.get("connector.class").cloned().unwrap_or_default();
        let plugin = self.worker.plugins.find(&class).ok_or_else(|| {
            ConnectError::Config(format!("no connector plugin named {class} on this worker"))
        })?;
        let mut instance = (plugin.connector)();
        instance.start(config.clone()).await?;
        let max = config
            .get("tasks.max")
            .and_then(|t| t.trim().parse::<usize>().ok())
            .unwrap_or(1)
            .max(1);
        let mut configs = instance.task_configs(max);
        configs.truncate(max);
        tracing::info!(connector = name, tasks = configs.len(), "connector started");
        Ok((instance, configs))
    }

    /// Writes a connector's task configurations to the config topic. The worker running the
    /// connector writes them itself (Kafka's leader writes them for it); they depend only
    /// on the connector's configuration, so a stale writer writes the same ones.
    async fn write_tasks(&self, name: &str, tasks: &[Props]) {
        if let Err(e) = self
            .logs
            .config_log
            .send_all(task_records(name, tasks))
            .await
        {
            tracing::warn!(connector = name, "writing task configurations: {e}");
        }
    }

    fn run_task(
        &self,
        rt: &mut Runtime,
        name: &str,
        n: i32,
        config: &Props,
        task_config: &Props,
        target: Target,
    ) {
        let key = (name.to_string(), n);
        if let Some(t) = rt.tasks.get_mut(&key) {
            if t.target != target {
                t.handle.set_target(target);
                t.target = target;
            }
            return;
        }
        let class = config.get("connector.class").cloned().unwrap_or_default();
        let Some(plugin) = self.worker.plugins.find(&class) else {
            return;
        };
        let handle = self.worker.start_task(
            TaskSpec {
                connector: name.to_string(),
                task: n,
                connector_config: config.clone(),
                task_config: task_config.clone(),
                plugin,
            },
            target,
        );
        let reporter = {
            let mut states = handle.watch();
            let log_key = (name.to_string(), n);
            let worker_id = self.worker.id.clone();
            let generation = self.generation();
            let status_log = self.logs.status_log.writer();
            tokio::spawn(async move {
                loop {
                    let state = states.borrow_and_update().clone();
                    if state != State::Unassigned {
                        let (k, v) = status_record(
                            &log_key.0,
                            Some(log_key.1),
                            &state,
                            &worker_id,
                            generation,
                        );
                        if let Err(e) = status_log.send(k, v).await {
                            tracing::warn!("writing a task status: {e}");
                        }
                    }
                    if states.changed().await.is_err() {
                        return;
                    }
                }
            })
        };
        rt.tasks.insert(
            key,
            RunningTask {
                handle,
                connector_config: config.clone(),
                task_config: task_config.clone(),
                target,
                reporter,
            },
        );
    }

    /// Acts on a restart request for what runs here.
    async fn restart_here(&self, rt: &mut Runtime, r: &Restart) {
        let failed = |s: Option<&State>| matches!(s, Some(State::Failed(_)));
        match r {
            Restart::Connector {
                name,
                include_tasks,
                only_failed,
            } => {
                if !*only_failed || failed(rt.connector_states.get(name)) {
                    if let Some(mut c) = rt.connectors.remove(name) {
                        let _ = c.instance.stop().await;
                    }
                    // Forgotten, so the reconcile below starts it again and writes its state.
                    rt.connector_states.remove(name);
                }
                if *include_tasks {
                    let keys: Vec<(String, i32)> = rt
                        .tasks
                        .iter()
                        .filter(|((c, _), t)| {
                            c == name && (!*only_failed || failed(Some(&t.handle.state())))
                        })
                        .map(|(k, _)| k.clone())
                        .collect();
                    for k in keys {
                        if let Some(t) = rt.tasks.remove(&k) {
                            t.reporter.abort();
                            t.handle.stop().await;
                        }
                    }
                }
            }
            Restart::Task(name, n) => {
                if let Some(t) = rt.tasks.remove(&(name.clone(), *n)) {
                    t.reporter.abort();
                    t.handle.stop().await;
                }
            }
        }
    }

    async fn stop_all(&self) {
        let mut rt = self.runtime.lock().await;
        for (_, t) in std::mem::take(&mut rt.tasks) {
            t.reporter.abort();
            t.handle.stop().await;
        }
        for (name, mut c) in std::mem::take(&mut rt.connectors) {
            if let Err(e) = c.instance.stop().await {
                tracing::warn!(connector = %name, "stopping the connector: {e}");
            }
        }
        self.view.lock().assigned.clear();
    }

    fn exists(&self, name: &str) -> Result<(), HerderError> {
        if self.logs.configs.lock().connectors.contains_key(name) {
            Ok(())
        } else {
            Err(not_found(name))
        }
    }

    /// Writes config records (as the leader) and waits until this worker has read them.
    async fn write_configs(
        &self,
        records: Vec<(String, Option<bytes::Bytes>)>,
    ) -> Result<(), HerderError> {
        self.logs.config_log.send_all(records).await?;
        self.logs.config_log.read_to_end().await?;
        Ok(())
    }

    fn kind_of(&self, name: &str) -> Result<ConnectorType, HerderError> {
        let class = self
            .logs
            .configs
            .lock()
            .connectors
            .get(name)
            .ok_or_else(|| not_found(name))?
            .get("connector.class")
            .cloned()
            .unwrap_or_default();
        self.worker
            .plugins
            .find(&class)
            .map(|p| p.kind())
            .ok_or_else(|| HerderError::BadRequest(format!("no connector plugin named {class}")))
    }
}

fn not_found(name: &str) -> HerderError {
    HerderError::NotFound(format!("Connector {name} not found"))
}

#[async_trait]
impl Herding for DistributedHerder {
    fn worker(&self) -> &Arc<Worker> {
        &self.worker
    }

    fn route(&self) -> Route {
        let view = self.view.lock();
        if !view.stable {
            Route::Rebalancing
        } else if view.leader {
            Route::Here
        } else {
            Route::Leader(view.leader_url.clone())
        }
    }

    fn validate(&self, plugin: &str, props: &Props) -> Result<Validation, HerderError> {
        validate(&self.worker.plugins, plugin, props)
    }

    async fn connectors(&self) -> Vec<String> {
        self.logs
            .configs
            .lock()
            .connectors
            .keys()
            .cloned()
            .collect()
    }

    async fn put(
        &self,
        name: &str,
        config: Props,
        replace: bool,
    ) -> Result<(bool, ConnectorInfo), HerderError> {
        let (config, _plugin) = checked_config(&self.worker.plugins, name, config)?;
        let exists = self.logs.configs.lock().connectors.contains_key(name);
        if exists && !replace {
            return Err(HerderError::AlreadyExists(name.to_string()));
        }
        let mut records = vec![connector_record(name, Some(&config))];
        if !exists {
            records.push(target_record(name, Some(Target::Started)));
        }
        self.write_configs(records).await?;
        tracing::info!(
            connector = name,
            created = !exists,
            "connector configuration stored"
        );
        Ok((!exists, self.info(name).await?))
    }

    async fn info(&self, name: &str) -> Result<ConnectorInfo, HerderError> {
        let kind = self.kind_of(name)?;
        let c = self.logs.configs.lock();
        let config = c
            .connectors
            .get(name)
            .cloned()
            .ok_or_else(|| not_found(name))?;
        let n = c.tasks.get(name).map_or(0, Vec::len) as i32;
        Ok(ConnectorInfo {
            name: name.to_string(),
            config,
            tasks: (0..n).collect(),
            kind,
        })
    }

    async fn task_configs(&self, name: &str) -> Result<Vec<Props>, HerderError> {
        self.exists(name)?;
        Ok(self
            .logs
            .configs
            .lock()
            .tasks
            .get(name)
            .cloned()
            .unwrap_or_default())
    }

    async fn status(&self, name: &str) -> Result<ConnectorStatus, HerderError> {
        let kind = self.kind_of(name)?;
        let n = self.logs.configs.lock().tasks.get(name).map_or(0, Vec::len) as i32;
        let statuses = self.logs.statuses.read();
        let (state, worker_id) = statuses
            .get(name, None)
            .map_or((State::Unassigned, String::new()), |s| {
                (s.state, s.worker_id)
            });
        Ok(ConnectorStatus {
            name: name.to_string(),
            state,
            worker_id,
            tasks: (0..n)
                .map(|t| {
                    let s = statuses.get(name, Some(t));
                    s.map_or((t, State::Unassigned, String::new()), |s| {
                        (t, s.state, s.worker_id)
                    })
                })
                .collect(),
            kind,
        })
    }

    async fn set_target(&self, name: &str, target: Target) -> Result<(), HerderError> {
        self.exists(name)?;
        self.write_configs(vec![target_record(name, Some(target))])
            .await?;
        tracing::info!(connector = name, ?target, "connector target state changed");
        Ok(())
    }

    async fn restart(
        &self,
        name: &str,
        include_tasks: bool,
        only_failed: bool,
    ) -> Result<(), HerderError> {
        self.exists(name)?;
        let r = Restart::Connector {
            name: name.to_string(),
            include_tasks,
            only_failed,
        };
        self.write_configs(vec![restart_record(&r)]).await
    }

    async fn restart_task(&self, name: &str, task: i32) -> Result<(), HerderError> {
        let count = self.task_configs(name).await?.len() as i32;
        if task < 0 || task >= count {
            return Err(HerderError::NotFound(format!(
                "Task {name}-{task} not found"
            )));
        }
        self.write_configs(vec![restart_record(&Restart::Task(name.to_string(), task))])
            .await
    }

    async fn delete(&self, name: &str) -> Result<(), HerderError> {
        self.exists(name)?;
        self.write_configs(vec![
            connector_record(name, None),
            target_record(name, None),
        ])
        .await?;
        tracing::info!(connector = name, "connector deleted");
        Ok(())
    }

    async fn offsets(&self, name: &str) -> Result<Json, HerderError> {
        let kind = self.kind_of(name)?;
        offsets_of(&self.worker, name, kind).await
    }

    async fn change_offsets(
        &self,
        name: &str,
        offsets: Option<&Json>,
    ) -> Result<&'static str, HerderError> {
        let kind = self.kind_of(name)?;
        if self.logs.configs.lock().target(name) != Target::Stopped {
            return Err(not_stopped(name));
        }
        change_offsets_of(&self.worker, name, kind, offsets).await
    }
}
