//! Tasks and their state: a task is one sub-topology's work on one partition number
//! (Kafka's `TaskId`, printed `<subtopology>_<partition>`). It owns its stores, its stream
//! time, and, on disk, `<state.dir>/<application.id>/<task id>/.checkpoint`: the changelog
//! offsets its persistent stores hold everything before, so a restart restores only the
//! rest.
//!
//! The checkpoint file is Kafka's `OffsetCheckpoint` text: a version line (`0`), a count
//! line, then `topic partition offset` per changelog, written to a temporary file and
//! renamed. An offset is the next changelog offset to apply.
//!
//! Under at-least-once a checkpoint is written at each commit (after the store is flushed
//! and every changelog write acknowledged) and at close; a crash leaves the last one, and
//! replaying the changelog from it is harmless because changelog values are whole values,
//! not deltas. Under exactly-once the checkpoint is removed while the task runs (Kafka's
//! rule): a crash then wipes the store and restores it from the committed changelog alone.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use strom_client::{Consumer, StartAt};

use crate::error::StreamsError;
use crate::processor::{Punctuation, PunctuationType};
use crate::state::fjall_store::FjallDb;
use crate::state::{stamp, MemoryStore, RawStore, StoreError, StoreSpec};

/// A task's identity: sub-topology and partition number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId {
    /// The sub-topology.
    pub subtopology: usize,
    /// The partition number of its source topics.
    pub partition: i32,
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.subtopology, self.partition)
    }
}

/// One of a task's stores.
#[derive(Clone)]
pub(crate) struct Store {
    pub spec: Arc<StoreSpec>,
    pub raw: Arc<dyn RawStore>,
    /// The changelog topic, if the store is logged.
    pub changelog: Option<String>,
}

/// A task's running state.
pub(crate) struct Task {
    pub id: TaskId,
    pub stores: HashMap<String, Store>,
    /// The largest record timestamp the task has processed (Kafka's stream time); `-1`
    /// before the first record, as Kafka has it.
    pub stream_time: i64,
    /// Records dropped by its processors (late for their window, null keys): Kafka's
    /// `dropped-records-total` task metric.
    pub dropped_records: u64,
    /// Processor API instances of this task, by node name (made on first use).
    pub processors: HashMap<String, Mutex<Box<dyn std::any::Any + Send>>>,
    /// Punctuations scheduled by the task's processors.
    pub schedules: Vec<Schedule>,
    /// The wall-clock time (ms) the stream thread last gave the task.
    pub wall_clock: i64,
}

/// A punctuation a processor scheduled.
#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    pub node: String,
    pub id: u64,
    pub kind: PunctuationType,
    pub interval: i64,
    /// When it fires next (stream time or wall-clock ms); `None` until the first record
    /// sets the start (stream time), or right away (wall clock).
    pub next: Option<i64>,
    pub cancelled: bool,
}

impl Task {
    /// The punctuations due now, each with its time; their next times are moved on (a
    /// punctuation fires once however far time jumped, as Kafka's do).
    pub fn due_punctuations(&mut self, now: Option<i64>) -> Vec<Punctuation> {
        self.schedules.retain(|s| !s.cancelled);
        let stream_time = self.stream_time;
        let mut due = Vec::new();
        for s in &mut self.schedules {
            let t = match s.kind {
                PunctuationType::StreamTime if stream_time >= 0 => stream_time,
                PunctuationType::WallClockTime => match now {
                    Some(n) => n,
                    None => continue,
                },
                PunctuationType::StreamTime => continue,
            };
            let next = *s.next.get_or_insert(t);
            if t >= next {
                due.push(Punctuation {
                    node: s.node.clone(),
                    id: s.id,
                    kind: s.kind,
                    timestamp: t,
                });
                let interval = s.interval.max(1);
                s.next = Some(t - (t - next) % interval + interval);
            }
        }
        due
    }
}

impl Task {
    /// A task with no stores.
    #[cfg(test)]
    pub fn stateless(id: TaskId) -> Task {
        Task {
            id,
            stores: HashMap::new(),
            stream_time: -1,
            dropped_records: 0,
            processors: HashMap::new(),
            schedules: Vec::new(),
            wall_clock: 0,
        }
    }
}

/// The wall clock in ms since the epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Changelog offsets per `(topic, partition)`.
pub(crate) type Offsets = BTreeMap<(String, i32), i64>;

/// An instance's state directory: where tasks keep their persistent stores and checkpoints.
pub(crate) struct StateDir {
    app_dir: PathBuf,
    application_id: String,
    db: Option<FjallDb>,
}

fn dir_err(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Dir {
        path: path.display().to_string(),
        source,
    }
}

impl StateDir {
    /// The directory `<state_dir>/<application_id>` (created when first needed).
    pub fn new(state_dir: &Path, application_id: &str) -> StateDir {
        StateDir {
            app_dir: state_dir.join(application_id),
            application_id: application_id.to_string(),
            db: None,
        }
    }

    fn task_dir(&self, id: TaskId) -> PathBuf {
        self.app_dir.join(id.to_string())
    }

    /// The instance's fjall database (opened on first use).
    pub fn db(&mut self) -> Result<&FjallDb, StoreError> {
        if self.db.is_none() {
            self.db = Some(FjallDb::open(&self.app_dir.join("fjall"))?);
        }
        self.db
            .as_ref()
            .ok_or_else(|| StoreError::Corrupt("(database)".into()))
    }

    /// Opens task `id` with `specs` as its stores (persistent ones as they were left).
    pub fn open_task(&mut self, id: TaskId, specs: &[Arc<StoreSpec>]) -> Result<Task, StoreError> {
        let mut stores = HashMap::new();
        for spec in specs {
            let raw: Arc<dyn RawStore> = if spec.persistent {
                Arc::new(self.db()?.store(&format!("{id}.{}", spec.name))?)
            } else {
                Arc::new(MemoryStore::default())
            };
            let changelog = spec.logged.then(|| spec.changelog(&self.application_id));
            stores.insert(
                spec.name.clone(),
                Store {
                    spec: spec.clone(),
                    raw,
                    changelog,
                },
            );
        }
        Ok(Task {
            id,
            stores,
            stream_time: -1,
            dropped_records: 0,
            processors: HashMap::new(),
            schedules: Vec::new(),
            wall_clock: 0,
        })
    }

    /// The checkpointed offsets of task `id` (empty without a checkpoint; an unreadable
    /// file counts as none, so the stores are restored in full).
    pub fn read_checkpoint(&self, id: TaskId) -> Offsets {
        let path = self.task_dir(id).join(".checkpoint");
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Offsets::new();
        };
        match parse_checkpoint(&text) {
            Some(o) => o,
            None => {
                tracing::warn!(path = %path.display(), "ignoring an unreadable checkpoint file");
                Offsets::new()
            }
        }
    }

    /// Writes task `id`'s checkpoint.
    pub fn write_checkpoint(&self, id: TaskId, offsets: &Offsets) -> Result<(), StoreError> {
        write_checkpoint_file(&self.task_dir(id), offsets)
    }

    /// The global stores' checkpointed offsets (`<app dir>/global/.checkpoint`).
    pub fn read_global_checkpoint(&self) -> Offsets {
        let text = std::fs::read_to_string(self.app_dir.join("global").join(".checkpoint"));
        text.ok()
            .and_then(|t| parse_checkpoint(&t))
            .unwrap_or_default()
    }

    /// Writes the global stores' checkpoint.
    pub fn write_global_checkpoint(&self, offsets: &Offsets) -> Result<(), StoreError> {
        write_checkpoint_file(&self.app_dir.join("global"), offsets)
    }

    /// Removes task `id`'s checkpoint (its stores may now run ahead of any offset).
    pub fn delete_checkpoint(&self, id: TaskId) -> Result<(), StoreError> {
        let path = self.task_dir(id).join(".checkpoint");
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(dir_err(&path)(e)),
            _ => Ok(()),
        }
    }
}

/// Writes `<dir>/.checkpoint` through a temporary file and a rename.
fn write_checkpoint_file(dir: &Path, offsets: &Offsets) -> Result<(), StoreError> {
    std::fs::create_dir_all(dir).map_err(dir_err(dir))?;
    let mut text = format!("0\n{}\n", offsets.len());
    for ((topic, partition), offset) in offsets {
        text.push_str(&format!("{topic} {partition} {offset}\n"));
    }
    let tmp = dir.join(".checkpoint.tmp");
    let mut f = std::fs::File::create(&tmp).map_err(dir_err(&tmp))?;
    f.write_all(text.as_bytes()).map_err(dir_err(&tmp))?;
    f.sync_all().map_err(dir_err(&tmp))?;
    let path = dir.join(".checkpoint");
    std::fs::rename(&tmp, &path).map_err(dir_err(&path))
}

fn parse_checkpoint(text: &str) -> Option<Offsets> {
    let mut lines = text.lines();
    if lines.next()?.trim() != "0" {
        return None;
    }
    let n: usize = lines.next()?.trim().parse().ok()?;
    let mut out = Offsets::new();
    for line in lines.take(n) {
        let mut parts = line.split(' ');
        let topic = parts.next()?.to_string();
        let partition = parts.next()?.parse().ok()?;
        let offset = parts.next()?.parse().ok()?;
        out.insert((topic, partition), offset);
    }
    (out.len() == n).then_some(out)
}

/// What a restore did.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Restored {
    pub records: u64,
    pub bytes: u64,
}

/// Brings `task`'s logged stores up to their changelogs' ends, from `checkpoint` where a
/// persistent store has one (else from the start, after wiping the store). Returns the
/// changelog offsets the stores now hold everything before.
pub(crate) async fn restore(
    task: &Task,
    checkpoint: &Offsets,
    consumer: &mut Consumer,
) -> Result<(Offsets, Restored), StreamsError> {
    let mut done = Offsets::new();
    let mut stats = Restored::default();
    let fail = |store: &str| {
        let store = store.to_string();
        move |source: StoreError| StreamsError::Store { store, source }
    };
    let partition = task.id.partition;
    for store in task.stores.values() {
        let Some(changelog) = &store.changelog else {
            continue;
        };
        let name = &store.spec.name;
        let key = (changelog.clone(), partition);
        let from = match checkpoint.get(&key) {
            Some(&o) if store.raw.persistent() => o,
            _ => {
                store.raw.clear().map_err(fail(name))?;
                0
            }
        };
        let consumer_err = |source| StreamsError::Consumer {
            doing: "restoring a store",
            source,
        };
        let end = consumer
            .resolve(changelog, partition, StartAt::Latest)
            .await
            .map_err(consumer_err)?;
        if from < end {
            consumer
                .assign(&[(changelog.clone(), partition, StartAt::Offset(from))])
                .await
                .map_err(consumer_err)?;
            while consumer.position(changelog, partition).unwrap_or(end) < end {
                for r in consumer.poll().await.map_err(consumer_err)? {
                    if r.offset >= end {
                        continue;
                    }
                    let Some(k) = r.key else { continue };
                    stats.records += 1;
                    match r.value {
                        Some(v) => {
                            stats.bytes += (k.len() + v.len()) as u64;
                            store.raw.put(k, stamp(r.timestamp, &v))
                        }
                        None => store.raw.delete(&k),
                    }
                    .map_err(fail(name))?;
                }
            }
            consumer.assign(&[]).await.map_err(consumer_err)?;
        }
        tracing::debug!(task = %task.id, store = %name, from, end, "store restored");
        done.insert(key, end.max(from));
    }
    Ok((done, stats))
}

/// Flushes `task`'s stores (before a checkpoint names what they hold).
pub(crate) fn flush(task: &Task) -> Result<(), StreamsError> {
    for store in task.stores.values() {
        store.raw.flush().map_err(|source| StreamsError::Store {
            store: store.spec.name.clone(),
            source,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_round_trip_and_bad_ones_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path(), "app");
        let id = TaskId {
            subtopology: 1,
            partition: 3,
        };
        assert!(state.read_checkpoint(id).is_empty());
        let mut o = Offsets::new();
        o.insert(("app-counts-changelog".into(), 3), 42);
        o.insert(("app-other-changelog".into(), 3), 7);
        state.write_checkpoint(id, &o).unwrap();
        assert_eq!(state.read_checkpoint(id), o);
        let text = std::fs::read_to_string(dir.path().join("app/1_3/.checkpoint")).unwrap();
        assert_eq!(
            text,
            "0\n2\napp-counts-changelog 3 42\napp-other-changelog 3 7\n"
        );
        std::fs::write(dir.path().join("app/1_3/.checkpoint"), "0\n3\nx 1 2\n").unwrap();
        assert!(state.read_checkpoint(id).is_empty());
        state.delete_checkpoint(id).unwrap();
        state.delete_checkpoint(id).unwrap();
        assert!(state.read_checkpoint(id).is_empty());
    }
}
