//! [`TopologyTestDriver`]: runs a topology with no broker (Kafka's `TopologyTestDriver`).
//! Records piped into an input topic are processed at once, one at a time, in partition 0
//! of every topic; what sinks write is kept per output topic to be read back; records
//! written to a repartition topic are processed again straight away, as the sub-topology
//! reading it would. Stores are kept in memory (whatever the topology asks for) and can be
//! read while the driver runs. Time is the records' timestamps; nothing waits.
//!
//! ```
//! use strom_streams::{Consumed, Grouped, Materialized, Produced, StreamsBuilder, StringSerde,
//!     I64Serde, Nullable, TopologyTestDriver};
//! let b = StreamsBuilder::new();
//! b.stream("words", Consumed::with(StringSerde, StringSerde))
//!     .group_by(|_, w| w.clone(), Grouped::with(StringSerde, StringSerde))
//!     .count(Materialized::named("counts"))
//!     .to_stream()
//!     .to("counts-out", Produced::with(StringSerde, Nullable(I64Serde)));
//! let driver = TopologyTestDriver::new(b.build(), [("application.id", "wc")]).unwrap();
//! let input = driver.input_topic("words", StringSerde, StringSerde);
//! input.pipe(&"".into(), &"a".into(), 10).unwrap();
//! input.pipe(&"".into(), &"a".into(), 20).unwrap();
//! let out = driver.output_topic("counts-out", StringSerde, Nullable(I64Serde));
//! assert_eq!(out.read_key_values().unwrap(), vec![("a".into(), Some(1)), ("a".into(), Some(2))]);
//! ```

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use strom_client::{ConsumerRecord, ProducerRecord};

use crate::config::DeserializationHandler;
use crate::error::StreamsError;
use crate::global::apply_to;
use crate::kafka_streams::on_deserialization_error;
use crate::query::{ReadOnlyKeyValueStore, ReadOnlyWindowStore, StoreInstances};
use crate::serdes::{Serde, SerdeError};
use crate::state::{MemoryStore, RawStore};
use crate::task::{StateDir, Store, Task, TaskId};
use crate::topology::{Compiled, RecordError, Topology};

/// A record read from an output topic: bytes, as a sink wrote them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRecord {
    /// The key.
    pub key: Option<Bytes>,
    /// The value.
    pub value: Option<Bytes>,
    /// The timestamp.
    pub timestamp: i64,
    /// The headers.
    pub headers: Vec<(String, Option<Bytes>)>,
}

struct Inner {
    compiled: Compiled,
    tasks: HashMap<TaskId, Task>,
    state: StateDir,
    outputs: HashMap<String, VecDeque<TestRecord>>,
    offsets: HashMap<String, i64>,
    handler: DeserializationHandler,
    repartition: Vec<String>,
    /// The simulated wall clock (ms).
    wall_clock: i64,
    /// Global tables' stores (in memory), by topic.
    globals: HashMap<String, Store>,
}

/// Runs a [`Topology`] without a broker.
pub struct TopologyTestDriver {
    inner: RefCell<Inner>,
}

impl std::fmt::Debug for TopologyTestDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopologyTestDriver").finish_non_exhaustive()
    }
}

impl TopologyTestDriver {
    /// A driver for `topology`. Properties: `application.id` (default `test-driver`), and
    /// `default.deserialization.exception.handler`; others are ignored.
    pub fn new<I, K, V>(topology: Topology, props: I) -> Result<TopologyTestDriver, StreamsError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut props: Vec<(String, String)> = props
            .into_iter()
            .map(|(k, v)| (k.as_ref().to_string(), v.as_ref().to_string()))
            .collect();
        if !props.iter().any(|(k, _)| k == "application.id") {
            props.push(("application.id".into(), "test-driver".into()));
        }
        props.retain(|(k, _)| {
            matches!(
                k.as_str(),
                "application.id"
                    | "default.deserialization.exception.handler"
                    | "deserialization.exception.handler"
            )
        });
        props.push(("bootstrap.servers".into(), "unused:9092".into()));
        let config = crate::config::StreamsConfig::from_props(props)?;
        let mut compiled = topology.compile(&config.application_id)?;
        // Stores are in memory here.
        for plan in &mut compiled.subtopologies {
            for spec in &mut plan.stores {
                let mut s = (**spec).clone();
                s.persistent = false;
                *spec = Arc::new(s);
            }
        }
        let repartition = compiled.repartition_topics();
        let globals = compiled
            .globals
            .iter()
            .map(|g| {
                let store = Store {
                    spec: g.store.clone(),
                    raw: Arc::new(MemoryStore::default()) as Arc<dyn RawStore>,
                    changelog: None,
                };
                (g.topic.clone(), store)
            })
            .collect();
        Ok(TopologyTestDriver {
            inner: RefCell::new(Inner {
                compiled,
                tasks: HashMap::new(),
                state: StateDir::new(std::path::Path::new("."), &config.application_id),
                outputs: HashMap::new(),
                offsets: HashMap::new(),
                handler: config.deserialization_handler,
                repartition,
                wall_clock: 0,
                globals,
            }),
        })
    }

    /// Processes one record of `topic` (bytes), and whatever it sends to repartition
    /// topics.
    pub fn pipe_raw(
        &self,
        topic: &str,
        key: Option<Bytes>,
        value: Option<Bytes>,
        timestamp: i64,
    ) -> Result<(), StreamsError> {
        let mut queue = VecDeque::from([(topic.to_string(), key, value, timestamp, Vec::new())]);
        let mut inner = self.inner.borrow_mut();
        while let Some((topic, key, value, timestamp, headers)) = queue.pop_front() {
            let offset = {
                let o = inner.offsets.entry(topic.clone()).or_insert(0);
                *o += 1;
                *o - 1
            };
            if let Some(g) = inner.globals.get(&topic) {
                let r = ConsumerRecord {
                    topic: topic.clone(),
                    partition: 0,
                    offset,
                    timestamp,
                    key,
                    value,
                    headers,
                };
                apply_to(g.raw.as_ref(), &r, &g.spec.name)?;
                continue;
            }
            let Some((source, sub)) = inner.compiled.sources.get(&topic).cloned() else {
                return Err(StreamsError::InvalidTopology(format!(
                    "{topic} is not a source topic of the topology"
                )));
            };
            let r = ConsumerRecord {
                topic,
                partition: 0,
                offset,
                timestamp,
                key,
                value,
                headers,
            };
            let id = TaskId {
                subtopology: sub,
                partition: 0,
            };
            let task = match inner.tasks.remove(&id) {
                Some(t) => t,
                None => {
                    let specs = inner.compiled.subtopologies[sub].stores.clone();
                    let mut task = inner.state.open_task(id, &specs).map_err(|source| {
                        StreamsError::Store {
                            store: format!("(task {id})"),
                            source,
                        }
                    })?;
                    for g in inner.globals.values() {
                        task.stores.insert(g.spec.name.clone(), g.clone());
                    }
                    task
                }
            };
            let mut task = task;
            task.wall_clock = inner.wall_clock;
            let (task, outcome) = Compiled::run(&source, task, &r);
            let (task, punctuated) = match &outcome {
                Ok(_) if !task.schedules.is_empty() => inner.compiled.punctuate(task, None),
                _ => (task, Ok(Vec::new())),
            };
            inner.tasks.insert(id, task);
            let mut out = match outcome {
                Ok(out) => out,
                Err(RecordError::Fatal(e)) => return Err(e),
                Err(RecordError::Deserialization(e)) => {
                    on_deserialization_error(inner.handler, e)?;
                    continue;
                }
            };
            out.extend(punctuated?);
            for ProducerRecord {
                topic,
                key,
                value,
                headers,
                timestamp: ts,
                ..
            } in out
            {
                let ts = ts.unwrap_or(timestamp);
                if inner.repartition.contains(&topic) {
                    queue.push_back((topic, key, value, ts, headers));
                } else if !topic.ends_with("-changelog") {
                    inner
                        .outputs
                        .entry(topic)
                        .or_default()
                        .push_back(TestRecord {
                            key,
                            value,
                            timestamp: ts,
                            headers,
                        });
                }
            }
        }
        Ok(())
    }

    /// Moves the simulated wall clock on by `by` and fires the wall-clock punctuations now
    /// due (Kafka's `advanceWallClockTime`); what they forward is written like any output.
    pub fn advance_wall_clock_time(&self, by: std::time::Duration) -> Result<(), StreamsError> {
        let mut inner = self.inner.borrow_mut();
        inner.wall_clock = inner
            .wall_clock
            .saturating_add(by.as_millis().min(i64::MAX as u128) as i64);
        let now = inner.wall_clock;
        let ids: Vec<TaskId> = inner.tasks.keys().copied().collect();
        let mut produced = Vec::new();
        for id in ids {
            let Some(mut task) = inner.tasks.remove(&id) else {
                continue;
            };
            task.wall_clock = now;
            let (task, out) = inner.compiled.punctuate(task, Some(now));
            inner.tasks.insert(id, task);
            produced.extend(out?);
        }
        let repartition = inner.repartition.clone();
        drop(inner);
        for r in produced {
            if repartition.contains(&r.topic) {
                self.pipe_raw(&r.topic, r.key, r.value, r.timestamp.unwrap_or(now))?;
            } else if !r.topic.ends_with("-changelog") {
                self.inner
                    .borrow_mut()
                    .outputs
                    .entry(r.topic)
                    .or_default()
                    .push_back(TestRecord {
                        key: r.key,
                        value: r.value,
                        timestamp: r.timestamp.unwrap_or(now),
                        headers: r.headers,
                    });
            }
        }
        Ok(())
    }

    /// An input topic taking typed records (Kafka's `createInputTopic`).
    pub fn input_topic<K, V>(
        &self,
        topic: &str,
        key: impl Serde<K>,
        value: impl Serde<V>,
    ) -> TestInputTopic<'_, K, V> {
        TestInputTopic {
            driver: self,
            topic: topic.to_string(),
            key: Box::new(key),
            value: Box::new(value),
        }
    }

    /// An output topic read as typed records (Kafka's `createOutputTopic`).
    pub fn output_topic<K, V>(
        &self,
        topic: &str,
        key: impl Serde<K>,
        value: impl Serde<V>,
    ) -> TestOutputTopic<'_, K, V> {
        TestOutputTopic {
            driver: self,
            topic: topic.to_string(),
            key: Box::new(key),
            value: Box::new(value),
        }
    }

    /// Takes the records written to `topic` so far.
    pub fn read_raw(&self, topic: &str) -> Vec<TestRecord> {
        self.inner
            .borrow_mut()
            .outputs
            .get_mut(topic)
            .map(|q| q.drain(..).collect())
            .unwrap_or_default()
    }

    /// Records the tasks' processors dropped so far (late records, null keys): Kafka's
    /// `dropped-records-total`.
    pub fn dropped_records(&self) -> u64 {
        self.inner
            .borrow()
            .tasks
            .values()
            .map(|t| t.dropped_records)
            .sum()
    }

    fn instances(&self, name: &str) -> StoreInstances {
        let inner = self.inner.borrow();
        if let Some(g) = inner.globals.values().find(|g| g.spec.name == name) {
            return StoreInstances {
                name: name.to_string(),
                parts: vec![g.raw.clone()],
            };
        }
        StoreInstances {
            name: name.to_string(),
            parts: inner
                .tasks
                .values()
                .filter_map(|t| t.stores.get(name).map(|s| s.raw.clone()))
                .collect(),
        }
    }

    /// Key-value store `name`, read with these serdes (Kafka's `getKeyValueStore`).
    pub fn key_value_store<K, V>(
        &self,
        name: &str,
        key: impl Serde<K>,
        value: impl Serde<V>,
    ) -> ReadOnlyKeyValueStore<K, V> {
        ReadOnlyKeyValueStore {
            store: self.instances(name),
            key: Arc::new(key),
            value: Arc::new(value),
        }
    }

    /// Window store `name`, read with these serdes (Kafka's `getWindowStore`).
    pub fn window_store<K, V>(
        &self,
        name: &str,
        key: impl Serde<K>,
        value: impl Serde<V>,
    ) -> ReadOnlyWindowStore<K, V> {
        ReadOnlyWindowStore {
            store: self.instances(name),
            key: Arc::new(key),
            value: Arc::new(value),
        }
    }
}

impl TopologyTestDriver {
    /// Session store `name`, read with these serdes (Kafka's `getSessionStore`).
    pub fn session_store<K, V>(
        &self,
        name: &str,
        key: impl Serde<K>,
        value: impl Serde<V>,
    ) -> crate::query::ReadOnlySessionStore<K, V> {
        crate::query::ReadOnlySessionStore {
            store: self.instances(name),
            key: Arc::new(key),
            value: Arc::new(value),
        }
    }
}

/// Typed input for a [`TopologyTestDriver`] (Kafka's `TestInputTopic`).
pub struct TestInputTopic<'a, K, V> {
    driver: &'a TopologyTestDriver,
    topic: String,
    key: Box<dyn Serde<K>>,
    value: Box<dyn Serde<V>>,
}

impl<K: 'static, V: 'static> TestInputTopic<'_, K, V> {
    /// Pipes one record with this timestamp.
    pub fn pipe(&self, key: &K, value: &V, timestamp: i64) -> Result<(), StreamsError> {
        let serde = |source: SerdeError| StreamsError::StoreSerde {
            store: format!("(input topic {})", self.topic),
            source,
        };
        let k = self.key.serialize(&self.topic, key).map_err(serde)?;
        let v = self.value.serialize(&self.topic, value).map_err(serde)?;
        self.driver.pipe_raw(&self.topic, k, v, timestamp)
    }

    /// Pipes a record whose value is null (a table's delete).
    pub fn pipe_null(&self, key: &K, timestamp: i64) -> Result<(), StreamsError> {
        let k =
            self.key
                .serialize(&self.topic, key)
                .map_err(|source| StreamsError::StoreSerde {
                    store: format!("(input topic {})", self.topic),
                    source,
                })?;
        self.driver.pipe_raw(&self.topic, k, None, timestamp)
    }
}

/// Typed output of a [`TopologyTestDriver`] (Kafka's `TestOutputTopic`).
pub struct TestOutputTopic<'a, K, V> {
    driver: &'a TopologyTestDriver,
    topic: String,
    key: Box<dyn Serde<K>>,
    value: Box<dyn Serde<V>>,
}

impl<K: 'static, V: 'static> TestOutputTopic<'_, K, V> {
    /// Takes every record written so far: key, value and timestamp.
    pub fn read_records(&self) -> Result<Vec<(K, V, i64)>, StreamsError> {
        let serde = |source: SerdeError| StreamsError::StoreSerde {
            store: format!("(output topic {})", self.topic),
            source,
        };
        self.driver
            .read_raw(&self.topic)
            .into_iter()
            .map(|r| {
                Ok((
                    self.key
                        .deserialize(&self.topic, r.key.as_deref())
                        .map_err(serde)?,
                    self.value
                        .deserialize(&self.topic, r.value.as_deref())
                        .map_err(serde)?,
                    r.timestamp,
                ))
            })
            .collect()
    }

    /// Takes every record written so far as key and value (Kafka's `readKeyValuesToList`).
    pub fn read_key_values(&self) -> Result<Vec<(K, V)>, StreamsError> {
        Ok(self
            .read_records()?
            .into_iter()
            .map(|(k, v, _)| (k, v))
            .collect())
    }

    /// Whether nothing is waiting to be read.
    pub fn is_empty(&self) -> bool {
        self.driver
            .inner
            .borrow()
            .outputs
            .get(&self.topic)
            .is_none_or(|q| q.is_empty())
    }
}
