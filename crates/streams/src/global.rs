//! Global tables (Kafka's `GlobalKTable`): every instance holds the whole topic, all
//! partitions, in a store of its own, so a stream can join it by any key it computes,
//! without co-partitioning or repartitioning ([`KStream::join_global`],
//! [`KStream::left_join_global`]).
//!
//! A global store has no changelog: its topic is one. Before the stream thread starts, the
//! instance reads the topic from the offsets in `<state.dir>/<application.id>/global/
//! .checkpoint` (persistent stores after a clean close) or from the start, to its end; then
//! a background task (Kafka's global stream thread) keeps applying new records while the
//! application runs. Records are applied as they are: a null value deletes the key.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use strom_client::{Consumer, ConsumerConfig, StartAt};
use tokio::sync::watch;

use crate::error::StreamsError;
use crate::kstream::{processor, source_node, Consumed, KStream, StreamsBuilder};
use crate::materialized::Materialized;
use crate::serdes::{BytesSerde, Nullable, Serde};
use crate::state::fjall_store::FjallDb;
use crate::state::typed::KvAccess;
use crate::state::{stamp, MemoryStore, RawStore, StoreKind, StoreSpec};
use crate::task::{Offsets, StateDir, Store};
use crate::topology::{build_with, forward, Forward, Graph, NodeKind};

/// A global table as the topology declares it.
#[derive(Debug, Clone)]
pub(crate) struct GlobalSpec {
    pub topic: String,
    pub store: Arc<StoreSpec>,
    /// The source node (its sub-topology is the global one).
    pub source: usize,
}

/// A table of a whole topic, on every instance (Kafka's `GlobalKTable<K, V>`).
pub struct GlobalKTable<K, V> {
    graph: Arc<Mutex<Graph>>,
    store: KvAccess<K, V>,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> GlobalKTable<K, V> {
    /// The name of its store (for interactive queries).
    pub fn queryable_store_name(&self) -> &str {
        &self.store.name
    }
}

impl StreamsBuilder {
    /// The topic read as a global table (Kafka's `globalTable`): a `KSTREAM-SOURCE-` and a
    /// `KTABLE-SOURCE-` node in a sub-topology of their own that makes no tasks, and a
    /// store (named by `materialized`, else `<topic>-STATE-STORE-<n>`).
    pub fn global_table<K, V>(
        &self,
        topic: &str,
        consumed: Consumed<K, V>,
        materialized: Materialized<K, V>,
    ) -> GlobalKTable<K, V>
    where
        K: Clone + 'static,
        V: Clone + 'static,
    {
        let mut g = self.graph.lock();
        let store_name = match &materialized.name {
            Some(n) => n.clone(),
            None => g.next_name(&format!("{topic}-STATE-STORE-")),
        };
        let source = g.next_name("KSTREAM-SOURCE-");
        let table = g.next_name("KTABLE-SOURCE-");
        // The nodes are there to be described; records are applied to the store directly.
        let raw = Consumed {
            key: Arc::new(Nullable(BytesSerde)) as Arc<dyn Serde<Option<bytes::Bytes>>>,
            value: Arc::new(Nullable(BytesSerde)) as Arc<dyn Serde<Option<bytes::Bytes>>>,
        };
        let source = source_node(&mut g, source, vec![topic.to_string()], raw);
        let build = build_with(|_down: Forward<(), ()>| {
            forward(|_, _: Option<bytes::Bytes>, _: Option<bytes::Bytes>| {})
        });
        let kind = NodeKind::Processor {
            stores: vec![store_name.clone()],
        };
        g.add(table, kind, &[source], build);
        let mut spec = materialized.spec(&store_name, StoreKind::KeyValue);
        spec.logged = false;
        let spec = Arc::new(spec);
        if g.stores.iter().any(|s| s.name == store_name) {
            g.errors
                .push(format!("the store name {store_name} is already used"));
        }
        g.globals.push(GlobalSpec {
            topic: topic.to_string(),
            store: spec,
            source,
        });
        drop(g);
        GlobalKTable {
            graph: self.graph.clone(),
            store: KvAccess {
                name: store_name,
                key: materialized.key.unwrap_or(consumed.key),
                value: materialized.value.unwrap_or(consumed.value),
            },
            _types: PhantomData,
        }
    }
}

impl<K, V> KStream<K, V>
where
    K: Clone + 'static,
    V: Clone + 'static,
{
    /// Joins each record with the global table's value under `key(key, value)` (Kafka's
    /// `join(GlobalKTable, KeyValueMapper, ValueJoiner)`, `KSTREAM-JOIN-`); records whose
    /// lookup key the table does not hold are dropped. The record keeps its key and
    /// timestamp.
    pub fn join_global<GK, GV, VR>(
        &self,
        table: &GlobalKTable<GK, GV>,
        key: impl Fn(&K, &V) -> GK + Send + Sync + 'static,
        joiner: impl Fn(&V, &GV) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR>
    where
        GK: 'static,
        GV: 'static,
        VR: Clone + 'static,
    {
        self.global_join(table, "KSTREAM-JOIN-", key, move |v, g| {
            g.map(|g| joiner(v, g))
        })
    }

    /// Like [`join_global`](Self::join_global), but a record with no match gives
    /// `joiner(value, None)` (Kafka's `leftJoin(GlobalKTable, ...)`, `KSTREAM-LEFTJOIN-`).
    pub fn left_join_global<GK, GV, VR>(
        &self,
        table: &GlobalKTable<GK, GV>,
        key: impl Fn(&K, &V) -> GK + Send + Sync + 'static,
        joiner: impl Fn(&V, Option<&GV>) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR>
    where
        GK: 'static,
        GV: 'static,
        VR: Clone + 'static,
    {
        self.global_join(table, "KSTREAM-LEFTJOIN-", key, move |v, g| {
            Some(joiner(v, g))
        })
    }

    fn global_join<GK, GV, VR>(
        &self,
        table: &GlobalKTable<GK, GV>,
        prefix: &str,
        key: impl Fn(&K, &V) -> GK + Send + Sync + 'static,
        joiner: impl Fn(&V, Option<&GV>) -> Option<VR> + Send + Sync + 'static,
    ) -> KStream<K, VR>
    where
        GK: 'static,
        GV: 'static,
        VR: Clone + 'static,
    {
        let mut g = self.graph.lock();
        if !Arc::ptr_eq(&self.graph, &table.graph) {
            g.errors
                .push("join() of a stream and a global table from different builders".into());
        }
        let name = g.next_name(prefix);
        let access = table.store.clone();
        let build = build_with(move |down: Forward<K, VR>| {
            forward(move |ctx, k: K, v: V| {
                let lookup = key(&k, &v);
                let found = match access.key_bytes(ctx, &lookup) {
                    Some(kb) => access.get(ctx, &kb).map(|(gv, _)| gv),
                    None => None,
                };
                if ctx.failure.is_some() {
                    return;
                }
                if let Some(out) = joiner(&v, found.as_ref()) {
                    down(ctx, k, out)
                }
            })
        });
        // Kafka lists no store on a global join node (the global store is not the task's).
        let node = g.add(name, processor(), &[self.node], build);
        drop(g);
        KStream::at(self.graph.clone(), node).key_changed(self.key_changed)
    }
}

/// An instance's global stores, kept current from their topics.
pub(crate) struct GlobalStores {
    /// By store name, for the tasks and for queries.
    pub stores: HashMap<String, Store>,
    stop: Option<watch::Sender<bool>>,
    updater: Option<tokio::task::JoinHandle<Result<Offsets, StreamsError>>>,
}

/// Where a global topic's records go.
#[derive(Clone)]
struct Target {
    raw: Arc<dyn RawStore>,
}

fn apply(
    target: &Target,
    r: &strom_client::ConsumerRecord,
    store: &str,
) -> Result<(), StreamsError> {
    apply_to(target.raw.as_ref(), r, store)
}

/// Applies one record of a global topic to its store: a null value deletes the key;
/// records without a key are skipped.
pub(crate) fn apply_to(
    raw: &dyn RawStore,
    r: &strom_client::ConsumerRecord,
    store: &str,
) -> Result<(), StreamsError> {
    let Some(k) = r.key.clone() else {
        return Ok(());
    };
    let written = match &r.value {
        Some(v) => raw.put(k, stamp(r.timestamp, v)),
        None => raw.delete(&k),
    };
    written.map_err(|source| StreamsError::Store {
        store: store.to_string(),
        source,
    })
}

impl GlobalStores {
    /// No global tables.
    pub fn none() -> GlobalStores {
        GlobalStores {
            stores: HashMap::new(),
            stop: None,
            updater: None,
        }
    }

    /// Opens the stores of `globals` (persistent ones in `db`), brings them to their
    /// topics' ends, and starts the task that keeps them current.
    pub async fn start(
        globals: &[GlobalSpec],
        state: &StateDir,
        db: Option<&FjallDb>,
        admin: &strom_client::Admin,
        consumer: ConsumerConfig,
    ) -> Result<GlobalStores, StreamsError> {
        if globals.is_empty() {
            return Ok(GlobalStores::none());
        }
        let checkpoint = state.read_global_checkpoint();
        let mut consumer = Consumer::new(ConsumerConfig {
            group_id: None,
            enable_auto_commit: false,
            client_id: format!("{}-global-consumer", consumer.client_id),
            ..consumer
        });
        let err = |source| StreamsError::Consumer {
            doing: "reading a global table",
            source,
        };
        let mut stores = HashMap::new();
        let mut targets: HashMap<String, (Target, String)> = HashMap::new();
        let mut assign = Vec::new();
        let mut ends = Vec::new();
        for g in globals {
            let raw: Arc<dyn RawStore> = match (g.store.persistent, db) {
                (true, Some(db)) => Arc::new(
                    db.store(&format!("global.{}", g.store.name))
                        .map_err(|source| StreamsError::Store {
                            store: g.store.name.clone(),
                            source,
                        })?,
                ),
                _ => Arc::new(MemoryStore::default()),
            };
            let partitions = match admin.describe_topics(std::slice::from_ref(&g.topic)).await {
                Ok(d) if !d.is_empty() => d[0].partitions.len() as i32,
                _ => return Err(StreamsError::MissingSourceTopic(g.topic.clone())),
            };
            let mut any_checkpoint = false;
            for p in 0..partitions {
                let start = match checkpoint.get(&(g.topic.clone(), p)) {
                    Some(&o) if raw.persistent() => {
                        any_checkpoint = true;
                        StartAt::Offset(o)
                    }
                    _ => StartAt::Earliest,
                };
                let end = consumer
                    .resolve(&g.topic, p, StartAt::Latest)
                    .await
                    .map_err(err)?;
                assign.push((g.topic.clone(), p, start));
                ends.push((g.topic.clone(), p, end));
            }
            if !any_checkpoint {
                raw.clear().map_err(|source| StreamsError::Store {
                    store: g.store.name.clone(),
                    source,
                })?;
            }
            let target = Target { raw: raw.clone() };
            targets.insert(g.topic.clone(), (target, g.store.name.clone()));
            stores.insert(
                g.store.name.clone(),
                Store {
                    spec: g.store.clone(),
                    raw,
                    changelog: None,
                },
            );
        }
        consumer.assign(&assign).await.map_err(err)?;
        // Bootstrap: everything up to the ends seen at start, before any task runs.
        while ends
            .iter()
            .any(|(t, p, end)| consumer.position(t, *p).unwrap_or(*end) < *end)
        {
            for r in consumer.poll().await.map_err(err)? {
                if let Some((target, store)) = targets.get(&r.topic) {
                    apply(target, &r, store)?;
                }
            }
        }
        tracing::info!(stores = stores.len(), "global stores bootstrapped");
        let (stop_tx, mut stop_rx) = watch::channel(false);
        let updater = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop_rx.changed() => break,
                    polled = consumer.poll() => match polled {
                        Ok(records) => {
                            for r in records {
                                if let Some((target, store)) = targets.get(&r.topic) {
                                    apply(target, &r, store)?;
                                }
                            }
                        }
                        Err(e) if e.is_retriable() => {
                            tracing::warn!(error = %e, "global consumer poll failed; retrying");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        Err(source) => {
                            return Err(StreamsError::Consumer {
                                doing: "reading a global table",
                                source,
                            })
                        }
                    },
                }
            }
            // A poll is applied whole, so the positions are what the stores hold.
            let mut offsets = Offsets::new();
            for (t, p, _) in &assign {
                if let Some(o) = consumer.position(t, *p) {
                    offsets.insert((t.clone(), *p), o);
                }
            }
            Ok(offsets)
        });
        Ok(GlobalStores {
            stores,
            stop: Some(stop_tx),
            updater: Some(updater),
        })
    }

    /// Whether the updating task stopped on an error (the instance then fails).
    pub fn failed(&self) -> bool {
        self.updater.as_ref().is_some_and(|u| u.is_finished())
    }

    /// Stops the updates; after a clean stop, flushes the persistent stores and
    /// checkpoints the offsets they hold.
    pub async fn close(mut self, state: &StateDir) -> Result<(), StreamsError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        let Some(updater) = self.updater.take() else {
            return Ok(());
        };
        let offsets = match updater.await {
            Ok(r) => r?,
            Err(e) => return Err(StreamsError::ThreadDied(e)),
        };
        let mut persistent = false;
        for s in self.stores.values() {
            persistent |= s.raw.persistent();
            s.raw.flush().map_err(|source| StreamsError::Store {
                store: s.spec.name.clone(),
                source,
            })?;
        }
        if persistent {
            state
                .write_global_checkpoint(&offsets)
                .map_err(|source| StreamsError::Store {
                    store: "(global checkpoint)".into(),
                    source,
                })?;
        }
        Ok(())
    }
}

impl Drop for GlobalStores {
    fn drop(&mut self) {
        if let Some(u) = self.updater.take() {
            u.abort();
        }
    }
}
