//! What the three storage topics hold, as each worker has read it: the connector
//! configurations, target states and task configurations (`config.storage.topic`), the
//! connector and task statuses (`status.storage.topic`), and source offsets
//! (`offset.storage.topic`). The keys and JSON values are Kafka Connect's:
//!
//! - configs: `connector-<name>` → `{"properties": {...}}` (a tombstone deletes it),
//!   `target-state-<name>` → `{"state": "STARTED|PAUSED|STOPPED"}`, `task-<name>-<n>` →
//!   `{"properties": {...}}`, `commit-<name>` → `{"tasks": <count>}` (the task configs
//!   written before it take effect together), `restart-connector-<name>` →
//!   `{"include-tasks": bool, "only-failed": bool}`; and Strom's `restart-task-<name>-<n>`
//!   (Kafka forwards a task restart to the worker running it instead).
//! - statuses: `status-connector-<name>` and `status-task-<name>-<n>` → `{"state",
//!   "trace", "worker_id", "generation"}`.
//! - offsets: `["<connector>", {partition}]` → `{offset}`, as the standalone file keys them.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use serde_json::{json, Value as Json};

use super::assign::Work;
use super::log::KafkaLog;
use crate::api::Props;
use crate::offsets::{OffsetMap, OffsetStore};
use crate::record::SourceMap;
use crate::worker::{State, Target};
use crate::ConnectError;

/// A restart asked through the config topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restart {
    /// `POST /connectors/{name}/restart`.
    Connector {
        /// The connector.
        name: String,
        /// includeTasks.
        include_tasks: bool,
        /// onlyFailed.
        only_failed: bool,
    },
    /// `POST /connectors/{name}/tasks/{n}/restart`.
    Task(String, i32),
}

/// The config topic, applied.
#[derive(Debug, Default)]
pub struct Configs {
    /// Each connector's configuration.
    pub connectors: BTreeMap<String, Props>,
    /// Each connector's target state (started when none was written).
    pub targets: BTreeMap<String, Target>,
    /// Each connector's committed task configurations.
    pub tasks: BTreeMap<String, Vec<Props>>,
    staged: BTreeMap<String, BTreeMap<i32, Props>>,
    /// Restarts read since the last look (only those written after the worker started).
    pub restarts: Vec<Restart>,
    /// Whether the first read to the end is done (restarts before it are history).
    pub live: bool,
    /// The next offset to read.
    pub offset: i64,
}

fn properties(value: &Json) -> Props {
    value["properties"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            let text = match v {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), text)
        })
        .collect()
}

/// `<name>-<n>` split at its last dash.
fn name_and_number(rest: &str) -> Option<(String, i32)> {
    let (name, n) = rest.rsplit_once('-')?;
    Some((name.to_string(), n.parse().ok()?))
}

/// Kafka's name of a target state.
pub fn target_name(t: Target) -> &'static str {
    match t {
        Target::Started => "STARTED",
        Target::Paused => "PAUSED",
        Target::Stopped => "STOPPED",
    }
}

impl Configs {
    /// Applies one record of the config topic.
    pub fn apply(&mut self, offset: i64, key: Option<Bytes>, value: Option<Bytes>) {
        self.offset = self.offset.max(offset + 1);
        let Some(key) = key.as_deref().and_then(|k| std::str::from_utf8(k).ok()) else {
            return;
        };
        let value: Option<Json> = value.and_then(|v| serde_json::from_slice(&v).ok());
        if let Some(name) = key.strip_prefix("connector-") {
            match value {
                Some(v) => {
                    self.connectors.insert(name.to_string(), properties(&v));
                }
                None => {
                    self.connectors.remove(name);
                    self.targets.remove(name);
                    self.tasks.remove(name);
                    self.staged.remove(name);
                }
            }
        } else if let Some(name) = key.strip_prefix("target-state-") {
            let target = match value.as_ref().and_then(|v| v["state"].as_str()) {
                Some("PAUSED") => Target::Paused,
                Some("STOPPED") => Target::Stopped,
                Some(_) => Target::Started,
                None => {
                    self.targets.remove(name);
                    return;
                }
            };
            self.targets.insert(name.to_string(), target);
        } else if let Some(rest) = key.strip_prefix("task-") {
            if let (Some((name, n)), Some(v)) = (name_and_number(rest), value) {
                self.staged
                    .entry(name)
                    .or_default()
                    .insert(n, properties(&v));
            }
        } else if let Some(name) = key.strip_prefix("commit-") {
            let count = value
                .as_ref()
                .and_then(|v| v["tasks"].as_i64())
                .unwrap_or(0)
                .max(0) as i32;
            let staged = self.staged.remove(name).unwrap_or_default();
            let tasks: Option<Vec<Props>> = (0..count).map(|n| staged.get(&n).cloned()).collect();
            match tasks {
                Some(tasks) => {
                    self.tasks.insert(name.to_string(), tasks);
                }
                None => tracing::warn!(
                    connector = name,
                    "a task commit names task configs that were not written; ignored"
                ),
            }
        } else if let Some(name) = key.strip_prefix("restart-connector-") {
            if self.live {
                let v = value.unwrap_or(Json::Null);
                self.restarts.push(Restart::Connector {
                    name: name.to_string(),
                    include_tasks: v["include-tasks"].as_bool().unwrap_or(false),
                    only_failed: v["only-failed"].as_bool().unwrap_or(false),
                });
            }
        } else if let Some(rest) = key.strip_prefix("restart-task-") {
            if let (true, Some((name, n))) = (self.live, name_and_number(rest)) {
                self.restarts.push(Restart::Task(name, n));
            }
        }
    }

    /// A connector's target state.
    pub fn target(&self, name: &str) -> Target {
        self.targets.get(name).copied().unwrap_or(Target::Started)
    }

    /// Every connector and task there is to run.
    pub fn all_work(&self) -> std::collections::BTreeSet<Work> {
        let mut all = std::collections::BTreeSet::new();
        for name in self.connectors.keys() {
            all.insert(Work::Connector(name.clone()));
            let n = self.tasks.get(name).map_or(0, Vec::len);
            for t in 0..n as i32 {
                all.insert(Work::Task(name.clone(), t));
            }
        }
        all
    }
}

/// The records that write a connector's configuration.
pub fn connector_record(name: &str, config: Option<&Props>) -> (String, Option<Bytes>) {
    (
        format!("connector-{name}"),
        config.map(|c| Bytes::from(json!({ "properties": c }).to_string())),
    )
}

/// The record of a target state (`None`: forget it).
pub fn target_record(name: &str, target: Option<Target>) -> (String, Option<Bytes>) {
    (
        format!("target-state-{name}"),
        target.map(|t| Bytes::from(json!({"state": target_name(t)}).to_string())),
    )
}

/// The records that replace a connector's task configurations.
pub fn task_records(name: &str, tasks: &[Props]) -> Vec<(String, Option<Bytes>)> {
    let mut out: Vec<(String, Option<Bytes>)> = tasks
        .iter()
        .enumerate()
        .map(|(n, c)| {
            (
                format!("task-{name}-{n}"),
                Some(Bytes::from(json!({ "properties": c }).to_string())),
            )
        })
        .collect();
    out.push((
        format!("commit-{name}"),
        Some(Bytes::from(json!({"tasks": tasks.len()}).to_string())),
    ));
    out
}

/// The record of a restart request.
pub fn restart_record(r: &Restart) -> (String, Option<Bytes>) {
    match r {
        Restart::Connector {
            name,
            include_tasks,
            only_failed,
        } => (
            format!("restart-connector-{name}"),
            Some(Bytes::from(
                json!({"include-tasks": include_tasks, "only-failed": only_failed}).to_string(),
            )),
        ),
        Restart::Task(name, n) => (format!("restart-task-{name}-{n}"), Some(Bytes::from("{}"))),
    }
}

/// One status as the status topic holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The state.
    pub state: State,
    /// The worker it is on.
    pub worker_id: String,
}

/// The status topic, applied.
#[derive(Debug, Default)]
pub struct Statuses {
    map: BTreeMap<String, Status>,
}

/// The status key of a connector (`None`) or task.
pub fn status_key(name: &str, task: Option<i32>) -> String {
    match task {
        None => format!("status-connector-{name}"),
        Some(n) => format!("status-task-{name}-{n}"),
    }
}

impl Statuses {
    /// Applies one record of the status topic.
    pub fn apply(&mut self, key: Option<Bytes>, value: Option<Bytes>) {
        let Some(key) = key.and_then(|k| String::from_utf8(k.to_vec()).ok()) else {
            return;
        };
        let Some(v) = value.and_then(|v| serde_json::from_slice::<Json>(&v).ok()) else {
            self.map.remove(&key);
            return;
        };
        let trace = v["trace"].as_str().unwrap_or_default().to_string();
        let state = match v["state"].as_str().unwrap_or_default() {
            "RUNNING" => State::Running,
            "PAUSED" => State::Paused,
            "STOPPED" => State::Stopped,
            "FAILED" => State::Failed(trace),
            "RESTARTING" => State::Restarting,
            _ => State::Unassigned,
        };
        let worker_id = v["worker_id"].as_str().unwrap_or_default().to_string();
        self.map.insert(key, Status { state, worker_id });
    }

    /// A connector's (`None`) or task's status, if one was written.
    pub fn get(&self, name: &str, task: Option<i32>) -> Option<Status> {
        self.map.get(&status_key(name, task)).cloned()
    }
}

/// The record of a status.
pub fn status_record(
    name: &str,
    task: Option<i32>,
    state: &State,
    worker_id: &str,
    generation: i32,
) -> (String, Option<Bytes>) {
    (
        status_key(name, task),
        Some(Bytes::from(
            json!({"state": state.name(), "trace": state.trace(), "worker_id": worker_id, "generation": generation})
                .to_string(),
        )),
    )
}

type OffsetEntries = Arc<OffsetMap>;

/// Source offsets in the offset topic.
pub struct KafkaOffsetStore {
    entries: OffsetEntries,
    log: KafkaLog,
}

/// The map the offset topic's records are applied to, and the function applying them.
pub(crate) fn offset_entries() -> (OffsetEntries, super::log::Apply) {
    let entries: OffsetEntries = Arc::default();
    let into = entries.clone();
    let apply = Box::new(
        move |_p: i32, _o: i64, key: Option<Bytes>, value: Option<Bytes>| {
            let Some(key) = key else { return };
            let Ok(Json::Array(k)) = serde_json::from_slice::<Json>(&key) else {
                return;
            };
            let (Some(connector), Some(partition)) = (
                k.first().and_then(Json::as_str),
                k.get(1).and_then(Json::as_object),
            ) else {
                return;
            };
            let offset = match value.and_then(|v| serde_json::from_slice::<Json>(&v).ok()) {
                Some(Json::Object(offset)) => Some(offset),
                _ => None,
            };
            into.set(connector, partition.clone(), offset);
        },
    );
    (entries, apply)
}

impl KafkaOffsetStore {
    /// The store over an opened offset topic and the map its records go to.
    pub(crate) fn new(entries: OffsetEntries, log: KafkaLog) -> KafkaOffsetStore {
        KafkaOffsetStore { entries, log }
    }

    /// Waits until every offset written before the call has been read (before a task that
    /// moved here starts).
    pub async fn read_to_end(&self) -> Result<(), ConnectError> {
        self.log.read_to_end().await
    }
}

#[async_trait]
impl OffsetStore for KafkaOffsetStore {
    fn get(&self, connector: &str, partition: &SourceMap) -> Option<SourceMap> {
        self.entries.get(connector, partition)
    }

    fn all(&self, connector: &str) -> Vec<(SourceMap, SourceMap)> {
        self.entries.all(connector)
    }

    async fn put(
        &self,
        connector: &str,
        entries: Vec<(SourceMap, Option<SourceMap>)>,
    ) -> Result<(), ConnectError> {
        let records: Vec<(String, Option<Bytes>)> = entries
            .iter()
            .map(|(p, o)| {
                (
                    crate::offsets::key(connector, p),
                    o.as_ref()
                        .map(|o| Bytes::from(Json::Object(o.clone()).to_string())),
                )
            })
            .collect();
        self.log.send_all(records).await?;
        for (p, o) in entries {
            self.entries.set(connector, p, o);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(c: &mut Configs, offset: i64, r: (String, Option<Bytes>)) {
        c.apply(offset, Some(Bytes::from(r.0)), r.1);
    }

    #[test]
    fn configs_take_effect_at_their_commit_and_go_with_a_tombstone() {
        let mut c = Configs::default();
        let config: Props = [("connector.class".to_string(), "X".to_string())].into();
        apply(&mut c, 0, connector_record("my-conn", Some(&config)));
        assert_eq!(c.connectors["my-conn"], config);
        assert_eq!(c.target("my-conn"), Target::Started);
        let task: Props = [("id".to_string(), "0".to_string())].into();
        let records = task_records("my-conn", &[task.clone(), task.clone()]);
        apply(&mut c, 1, records[0].clone());
        apply(&mut c, 2, records[1].clone());
        assert!(!c.tasks.contains_key("my-conn"), "not before the commit");
        apply(&mut c, 3, records[2].clone());
        assert_eq!(c.tasks["my-conn"].len(), 2);
        assert_eq!(c.all_work().len(), 3);
        apply(&mut c, 4, target_record("my-conn", Some(Target::Paused)));
        assert_eq!(c.target("my-conn"), Target::Paused);
        apply(&mut c, 5, connector_record("my-conn", None));
        assert!(c.all_work().is_empty());
        assert_eq!(c.offset, 6);
    }

    #[test]
    fn restarts_count_only_once_live() {
        let mut c = Configs::default();
        let r = Restart::Task("a-b".into(), 3);
        apply(&mut c, 0, restart_record(&r));
        assert!(c.restarts.is_empty());
        c.live = true;
        apply(&mut c, 1, restart_record(&r));
        assert_eq!(c.restarts, vec![r]);
    }

    #[test]
    fn statuses_round_trip_with_their_worker() {
        let mut s = Statuses::default();
        let (k, v) = status_record("c", Some(1), &State::Failed("boom".into()), "w:1", 3);
        s.apply(Some(Bytes::from(k)), v);
        assert_eq!(
            s.get("c", Some(1)),
            Some(Status {
                state: State::Failed("boom".into()),
                worker_id: "w:1".into()
            })
        );
        assert_eq!(s.get("c", None), None);
    }
}
