//! The Processor API under the DSL (Kafka's `org.apache.kafka.streams.processor.api`): a
//! [`Processor`] gets each record with a [`ProcessorContext`] to forward records, schedule
//! punctuations (by stream time or wall-clock time) and use state stores added with
//! [`StreamsBuilder::add_state_store`]. [`KStream::process`] puts one in a topology.
//!
//! One processor instance per task, made by the supplier when the task first needs it
//! (Kafka's `ProcessorSupplier.get()`), then `init`; it lives as long as the task.
//! Punctuations fire between records: stream-time ones when a record moves the task's
//! stream time past them (once, however far it jumped; the first at the first record),
//! wall-clock ones when the stream thread finds them due (the first one interval after
//! scheduling).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::kstream::{KStream, StreamsBuilder};
use crate::serdes::Serde;
use crate::state::typed::KvAccess;
use crate::state::{StoreKind, StoreSpec};
use crate::task::{Schedule, TaskId};
use crate::topology::{build_fn, fan_out, forward, typed, Ctx, Forward, NodeKind};

/// Which clock a punctuation follows (Kafka's `PunctuationType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PunctuationType {
    /// The task's stream time (the largest record timestamp it processed).
    StreamTime,
    /// The machine's clock.
    WallClockTime,
}

/// A punctuation firing: which schedule, and the time it fires at.
#[derive(Debug, Clone)]
pub struct Punctuation {
    pub(crate) node: String,
    /// The id [`ProcessorContext::schedule`] returned.
    pub id: u64,
    /// Its clock.
    pub kind: PunctuationType,
    /// The stream time or wall-clock time (ms) it fires at; records forwarded from the
    /// punctuation carry it.
    pub timestamp: i64,
}

/// A record as the Processor API passes it (Kafka's `Record<K, V>`).
#[derive(Debug, Clone, PartialEq)]
pub struct Record<K, V> {
    /// The key.
    pub key: K,
    /// The value.
    pub value: V,
    /// The timestamp (ms).
    pub timestamp: i64,
    /// The headers.
    pub headers: Vec<(String, Option<Bytes>)>,
}

impl<K, V> Record<K, V> {
    /// A record with no headers.
    pub fn new(key: K, value: V, timestamp: i64) -> Record<K, V> {
        Record {
            key,
            value,
            timestamp,
            headers: Vec::new(),
        }
    }
}

/// A record processor (Kafka's `Processor<KIn, VIn, KOut, VOut>`).
pub trait Processor<KIn, VIn, KOut, VOut>: Send + 'static {
    /// Called once, before the first record of the task.
    fn init(&mut self, _ctx: &mut ProcessorContext<'_, KOut, VOut>) {}
    /// Processes one record.
    fn process(&mut self, ctx: &mut ProcessorContext<'_, KOut, VOut>, record: Record<KIn, VIn>);
    /// A punctuation this processor scheduled is due.
    fn punctuate(&mut self, _ctx: &mut ProcessorContext<'_, KOut, VOut>, _p: Punctuation) {}
}

/// What a processor can do (Kafka's `ProcessorContext<KOut, VOut>`).
pub struct ProcessorContext<'a, KOut, VOut> {
    ctx: &'a mut Ctx,
    down: &'a Forward<KOut, VOut>,
    node: &'a str,
}

impl<KOut, VOut> ProcessorContext<'_, KOut, VOut> {
    /// Sends `record` to the processor's children.
    pub fn forward(&mut self, record: Record<KOut, VOut>) {
        let ts = std::mem::replace(&mut self.ctx.timestamp, record.timestamp);
        let headers = std::mem::replace(&mut self.ctx.headers, record.headers);
        (self.down)(self.ctx, record.key, record.value);
        self.ctx.timestamp = ts;
        self.ctx.headers = headers;
    }

    /// Schedules a punctuation every `interval` on `kind`'s clock; returns its id, for
    /// [`cancel`](Self::cancel) and to tell punctuations apart.
    pub fn schedule(&mut self, interval: Duration, kind: PunctuationType) -> u64 {
        let task = &mut self.ctx.task;
        let id = task.schedules.iter().map(|s| s.id + 1).max().unwrap_or(0);
        let interval = interval.as_millis().clamp(1, i64::MAX as u128) as i64;
        let next = match kind {
            PunctuationType::StreamTime => None,
            PunctuationType::WallClockTime => Some(task.wall_clock.saturating_add(interval)),
        };
        task.schedules.push(Schedule {
            node: self.node.to_string(),
            id,
            kind,
            interval,
            next,
            cancelled: false,
        });
        id
    }

    /// Stops punctuation `id`.
    pub fn cancel(&mut self, id: u64) {
        let node = self.node;
        for s in &mut self.ctx.task.schedules {
            if s.id == id && s.node == node {
                s.cancelled = true;
            }
        }
    }

    /// The task running the processor.
    pub fn task_id(&self) -> TaskId {
        self.ctx.task.id
    }

    /// The task's stream time (-1 before its first record).
    pub fn current_stream_time_ms(&self) -> i64 {
        self.ctx.task.stream_time
    }

    /// Where the record being processed came from: topic, partition, offset (`None` in a
    /// punctuation).
    pub fn record_metadata(&self) -> Option<(&str, i32, i64)> {
        (self.ctx.offset >= 0).then_some((
            self.ctx.topic.as_str(),
            self.ctx.partition,
            self.ctx.offset,
        ))
    }
}

/// A key-value store as a processor uses it: made once (with the serdes) from the name of
/// a store added with [`StreamsBuilder::add_state_store`].
pub struct KeyValueStore<K, V> {
    access: KvAccess<K, V>,
}

impl<K: 'static, V: 'static> KeyValueStore<K, V> {
    /// Store `name`, read and written with these serdes.
    pub fn new(name: &str, key: impl Serde<K>, value: impl Serde<V>) -> KeyValueStore<K, V> {
        KeyValueStore {
            access: KvAccess {
                name: name.to_string(),
                key: Arc::new(key),
                value: Arc::new(value),
            },
        }
    }

    /// The value under `key`.
    pub fn get<KO, VO>(&self, ctx: &mut ProcessorContext<'_, KO, VO>, key: &K) -> Option<V> {
        let kb = self.access.key_bytes(ctx.ctx, key)?;
        self.access.get(ctx.ctx, &kb).map(|(v, _)| v)
    }

    /// Sets `key` to `value` (through the changelog), stamped with the current record's
    /// timestamp.
    pub fn put<KO, VO>(&self, ctx: &mut ProcessorContext<'_, KO, VO>, key: &K, value: &V) {
        if let Some(kb) = self.access.key_bytes(ctx.ctx, key) {
            let ts = ctx.ctx.timestamp;
            self.access.put(ctx.ctx, kb, Some(value), ts);
        }
    }

    /// Removes `key` (a tombstone in the changelog).
    pub fn delete<KO, VO>(&self, ctx: &mut ProcessorContext<'_, KO, VO>, key: &K) {
        if let Some(kb) = self.access.key_bytes(ctx.ctx, key) {
            let ts = ctx.ctx.timestamp;
            self.access.put(ctx.ctx, kb, None, ts);
        }
    }

    /// Every entry, in key-byte order.
    pub fn all<KO, VO>(&self, ctx: &mut ProcessorContext<'_, KO, VO>) -> Vec<(K, V)> {
        let name = self.access.name.clone();
        let entries = ctx
            .ctx
            .with_store(&name, |s| {
                s.range(std::ops::Bound::Unbounded, std::ops::Bound::Unbounded)
            })
            .unwrap_or_default();
        let mut out = Vec::with_capacity(entries.len());
        for (k, _) in entries {
            let Ok(key) = self.access.key.deserialize(&name, Some(&k)) else {
                continue;
            };
            if let Some((v, _)) = self.access.get(ctx.ctx, &k) {
                out.push((key, v));
            }
        }
        out
    }
}

/// A store to add to a topology for Processor API nodes (Kafka's `StoreBuilder`, from
/// `Stores.keyValueStoreBuilder`).
#[derive(Debug, Clone)]
pub struct StoreBuilder {
    spec: StoreSpec,
}

impl StoreBuilder {
    /// A persistent key-value store named `name`, with a changelog.
    pub fn key_value(name: &str) -> StoreBuilder {
        StoreBuilder {
            spec: StoreSpec {
                name: name.to_string(),
                kind: StoreKind::KeyValue,
                persistent: true,
                logged: true,
            },
        }
    }

    /// In memory instead (restored in full from the changelog when a task starts).
    pub fn in_memory(mut self) -> StoreBuilder {
        self.spec.persistent = false;
        self
    }

    /// No changelog.
    pub fn with_logging_disabled(mut self) -> StoreBuilder {
        self.spec.logged = false;
        self
    }
}

impl StreamsBuilder {
    /// Adds a store that [`KStream::process`] nodes can name (Kafka's `addStateStore`).
    pub fn add_state_store(&self, store: StoreBuilder) {
        self.graph.lock().add_store(store.spec);
    }
}

/// The per-task instance of a processor node, once `init` ran.
struct Instance<P>(P);

impl<K, V> KStream<K, V>
where
    K: Clone + 'static,
    V: Clone + 'static,
{
    /// Runs each record through a processor made by `supplier` (one per task), connected
    /// to `stores` (`KSTREAM-PROCESSOR-`, Kafka's `process`); the stream of what it
    /// forwards.
    pub fn process<KOut, VOut, P>(
        &self,
        supplier: impl Fn() -> P + Send + Sync + 'static,
        stores: &[&str],
    ) -> KStream<KOut, VOut>
    where
        KOut: Clone + 'static,
        VOut: Clone + 'static,
        P: Processor<K, V, KOut, VOut>,
    {
        let mut g = self.graph.lock();
        let name = g.next_name("KSTREAM-PROCESSOR-");
        for s in stores {
            if !g.stores.iter().any(|x| x.name == *s) {
                g.errors.push(format!(
                    "processor {name} names the store {s}, which was not added (add_state_store)"
                ));
            }
        }
        let node_name = name.clone();
        let build = build_fn(move |env, children| {
            let down: Forward<KOut, VOut> = fan_out(typed::<KOut, VOut>(children));
            let supplier = Arc::new(supplier);
            // Takes the task's instance out (made and initialised on first use), runs `f`
            // on it, and puts it back.
            let with_instance = {
                let node = node_name.clone();
                let down = down.clone();
                let supplier = supplier.clone();
                Arc::new(move |ctx: &mut Ctx, f: &mut dyn FnMut(&mut P, &mut ProcessorContext<'_, KOut, VOut>)| {
                    let taken = ctx
                        .task
                        .processors
                        .remove(&node)
                        .and_then(|b| b.into_inner().downcast::<Instance<P>>().ok());
                    let mut instance = match taken {
                        Some(i) => *i,
                        None => {
                            let mut p = supplier();
                            let mut pc = ProcessorContext {
                                ctx,
                                down: &down,
                                node: &node,
                            };
                            p.init(&mut pc);
                            Instance(p)
                        }
                    };
                    let mut pc = ProcessorContext {
                        ctx,
                        down: &down,
                        node: &node,
                    };
                    f(&mut instance.0, &mut pc);
                    let boxed: Box<dyn std::any::Any + Send> = Box::new(instance);
                    ctx.task
                        .processors
                        .insert(node.clone(), parking_lot::Mutex::new(boxed));
                })
            };
            let punctuate = with_instance.clone();
            env.punctuators.lock().insert(
                node_name.clone(),
                Arc::new(move |ctx: &mut Ctx, p: Punctuation| {
                    let mut p = Some(p);
                    punctuate(ctx, &mut |proc, pc| {
                        if let Some(p) = p.take() {
                            proc.punctuate(pc, p)
                        }
                    });
                }),
            );
            let process: Forward<K, V> = forward(move |ctx, k: K, v: V| {
                let record = Record {
                    key: k,
                    value: v,
                    timestamp: ctx.timestamp,
                    headers: ctx.headers.clone(),
                };
                let mut record = Some(record);
                with_instance(ctx, &mut |proc, pc| {
                    if let Some(r) = record.take() {
                        proc.process(pc, r)
                    }
                });
            });
            Box::new(process)
        });
        let kind = NodeKind::Processor {
            stores: stores.iter().map(|s| s.to_string()).collect(),
        };
        let node = g.add(name, kind, &[self.node], build);
        drop(g);
        KStream::at(self.graph.clone(), node).key_changed(true)
    }
}
