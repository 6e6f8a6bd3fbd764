//! [`KTable`]: a changelog stream read as a table, one current value per key (Kafka's
//! `KTable<K, V>`), from a topic ([`StreamsBuilder::table`]) or an aggregation.
//!
//! Inside the topology a table's node forwards [`Change`]s: the key's new value and the one
//! it replaces (`None` for an insert or a delete), so downstream tables can undo what an
//! old value contributed. A table's output record carries the timestamp of the update that
//! made it (for aggregations, the largest timestamp of the records aggregated, as Kafka's
//! timestamped stores give).
//!
//! A windowed aggregation's table (`KTable<Windowed<K>, V>`, from [`crate::kwindowed`])
//! also knows its serdes and when its windows close, which [`KTable::suppress`] needs;
//! `filter` and `map_values` pass on what still applies.
//!
//! Updates are forwarded as they happen (Kafka's behaviour with
//! `statestore.cache.max.bytes=0`); there is no record cache that would collapse several
//! updates of a key between commits.

use std::marker::PhantomData;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::kstream::{processor, source_node, Consumed, KStream, StreamsBuilder};
use crate::materialized::Materialized;
use crate::serdes::{Serde, SerdeError};
use crate::state::typed::KvAccess;
use crate::state::StoreKind;
use crate::topology::{build_with, forward, Forward, Graph, NodeKind};

/// An update of a table row: the new value and the one it replaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Change<V> {
    pub new: Option<V>,
    pub old: Option<V>,
}

/// A table: for each key, its latest value (Kafka's `KTable<K, V>`).
pub struct KTable<K, V> {
    pub(crate) graph: Arc<Mutex<Graph>>,
    pub(crate) node: usize,
    /// The store holding the table, when it is materialized.
    pub(crate) store: Option<KvAccess<K, V>>,
    /// The key and value serdes when known without a key-value store (windowed tables and
    /// tables derived from them keep what they can), for processors that buffer rows.
    pub(crate) key_serde: Option<Arc<dyn Serde<K>>>,
    pub(crate) value_serde: Option<Arc<dyn Serde<V>>>,
    /// For a windowed table: its window or session store, and how long after a window's
    /// end its row may still change (the grace period, plus the inactivity gap for
    /// sessions: what Kafka's `GraphGraceSearchUtil` finds upstream).
    pub(crate) windowed: Option<WindowedTable>,
    _types: PhantomData<fn() -> (K, V)>,
}

/// What a windowed table knows of its windows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WindowedTable {
    /// The window or session store holding the table (none for a table derived from it).
    pub store: Option<String>,
    /// Stream time at which a window is final: its end plus this (ms).
    pub close_after_ms: i64,
}

impl<K, V> Clone for KTable<K, V> {
    fn clone(&self) -> Self {
        KTable {
            graph: self.graph.clone(),
            node: self.node,
            store: self.store.clone(),
            key_serde: self.key_serde.clone(),
            value_serde: self.value_serde.clone(),
            windowed: self.windowed.clone(),
            _types: PhantomData,
        }
    }
}

impl<K, V> std::fmt::Debug for KTable<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let g = self.graph.lock();
        let name = g.nodes.get(self.node).map(|n| n.name.as_str());
        f.debug_struct("KTable")
            .field("node", &name)
            .field("store", &self.store.as_ref().map(|s| s.name.as_str()))
            .finish()
    }
}

/// Reads a value that may be null (a table's delete) with a serde of non-null values.
struct OrNull<V>(Arc<dyn Serde<V>>);

impl<V: 'static> Serde<Option<V>> for OrNull<V> {
    fn serialize(&self, topic: &str, data: &Option<V>) -> Result<Option<bytes::Bytes>, SerdeError> {
        match data {
            Some(v) => self.0.serialize(topic, v),
            None => Ok(None),
        }
    }

    fn deserialize(&self, topic: &str, data: Option<&[u8]>) -> Result<Option<V>, SerdeError> {
        data.map(|d| self.0.deserialize(topic, Some(d))).transpose()
    }
}

impl StreamsBuilder {
    /// The topic read as a table (Kafka's `StreamsBuilder.table`): a `KSTREAM-SOURCE-` node
    /// and a `KTABLE-SOURCE-` node keeping the latest value per key in a store (named by
    /// `materialized`, else `<topic>-STATE-STORE-<n>`). A null value deletes the key;
    /// records with a null key are skipped.
    pub fn table<K, V>(
        &self,
        topic: &str,
        consumed: Consumed<K, V>,
        materialized: Materialized<K, V>,
    ) -> KTable<K, V>
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
        let store = KvAccess {
            name: store_name.clone(),
            key: materialized
                .key
                .clone()
                .unwrap_or_else(|| consumed.key.clone()),
            value: materialized
                .value
                .clone()
                .unwrap_or_else(|| consumed.value.clone()),
        };
        g.add_store(materialized.spec(&store_name, StoreKind::KeyValue));
        let raw = Consumed {
            key: consumed.key,
            value: Arc::new(OrNull(consumed.value)) as Arc<dyn Serde<Option<V>>>,
        };
        let source = source_node(&mut g, source, vec![topic.to_string()], raw);
        let access = store.clone();
        let build = build_with(move |down: Forward<K, Change<V>>| {
            forward(move |ctx, k: K, v: Option<V>| {
                let Some(kb) = access.key_bytes(ctx, &k) else {
                    return;
                };
                let old = access.get(ctx, &kb).map(|(v, _)| v);
                let ts = ctx.timestamp;
                access.put(ctx, kb, v.as_ref(), ts);
                if ctx.failure.is_none() {
                    down(ctx, k, Change { new: v, old })
                }
            })
        });
        let kind = NodeKind::Processor {
            stores: vec![store_name],
        };
        let node = g.add(table, kind, &[source], build);
        drop(g);
        KTable::at(self.graph.clone(), node, Some(store))
    }
}

impl<K, V> KTable<K, V>
where
    K: Clone + 'static,
    V: Clone + 'static,
{
    pub(crate) fn at(
        graph: Arc<Mutex<Graph>>,
        node: usize,
        store: Option<KvAccess<K, V>>,
    ) -> KTable<K, V> {
        KTable {
            graph,
            node,
            store,
            key_serde: None,
            value_serde: None,
            windowed: None,
            _types: PhantomData,
        }
    }

    /// The serde of the table's keys, if known.
    pub(crate) fn known_key_serde(&self) -> Option<Arc<dyn Serde<K>>> {
        self.key_serde
            .clone()
            .or_else(|| self.store.as_ref().map(|s| s.key.clone()))
    }

    /// The window information a table derived from this one keeps (not the store).
    pub(crate) fn derived_window(&self) -> Option<WindowedTable> {
        self.windowed.as_ref().map(|w| WindowedTable {
            store: None,
            close_after_ms: w.close_after_ms,
        })
    }

    /// The serde of the table's values, if known.
    pub(crate) fn known_value_serde(&self) -> Option<Arc<dyn Serde<V>>> {
        self.value_serde
            .clone()
            .or_else(|| self.store.as_ref().map(|s| s.value.clone()))
    }

    /// The name of the store holding this table, if it is materialized (for interactive
    /// queries; Kafka's `queryableStoreName`).
    pub fn queryable_store_name(&self) -> Option<String> {
        match (&self.store, &self.windowed) {
            (Some(s), _) => Some(s.name.clone()),
            (None, Some(w)) => w.store.clone(),
            (None, None) => None,
        }
    }

    /// Adds a table processor `<prefix><n>` below this table.
    fn then<K2, V2>(
        &self,
        prefix: &str,
        make: impl FnOnce(Forward<K2, Change<V2>>) -> Forward<K, Change<V>> + Send + 'static,
    ) -> KTable<K2, V2>
    where
        K2: Clone + 'static,
        V2: Clone + 'static,
    {
        let mut g = self.graph.lock();
        let name = g.next_name(prefix);
        let node = g.add(name, processor(), &[self.node], build_with(make));
        KTable::at(self.graph.clone(), node, None)
    }

    /// The rows for which `predicate` holds (`KTABLE-FILTER-`): a row that stops matching
    /// is deleted downstream.
    pub fn filter(&self, predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> Self {
        let mut table = self.then("KTABLE-FILTER-", move |down: Forward<K, Change<V>>| {
            forward(move |ctx, k: K, c: Change<V>| {
                let keep = |v: Option<V>| v.filter(|v| predicate(&k, v));
                let new = keep(c.new);
                let old = keep(c.old);
                if new.is_some() || old.is_some() {
                    down(ctx, k, Change { new, old })
                }
            })
        });
        table.key_serde = self.known_key_serde();
        table.value_serde = self.known_value_serde();
        table.windowed = self.derived_window();
        table
    }

    /// The rows for which `predicate` does not hold (`KTABLE-FILTER-`).
    pub fn filter_not(&self, predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> Self {
        self.filter(move |k, v| !predicate(k, v))
    }

    /// Each value replaced, the key kept (`KTABLE-MAPVALUES-`).
    pub fn map_values<V2>(&self, mapper: impl Fn(&V) -> V2 + Send + Sync + 'static) -> KTable<K, V2>
    where
        V2: Clone + 'static,
    {
        let mut table = self.then("KTABLE-MAPVALUES-", move |down: Forward<K, Change<V2>>| {
            forward(move |ctx, k, c: Change<V>| {
                let change = Change {
                    new: c.new.as_ref().map(&mapper),
                    old: c.old.as_ref().map(&mapper),
                };
                down(ctx, k, change)
            })
        });
        table.key_serde = self.known_key_serde();
        table.windowed = self.derived_window();
        table
    }

    /// The table's updates as a stream (`KTABLE-TOSTREAM-`): each update's new value,
    /// `None` for a delete (a tombstone when written with a `Nullable` serde).
    pub fn to_stream(&self) -> KStream<K, Option<V>> {
        let mut g = self.graph.lock();
        let name = g.next_name("KTABLE-TOSTREAM-");
        let build = build_with(move |down: Forward<K, Option<V>>| {
            forward(move |ctx, k, c: Change<V>| down(ctx, k, c.new))
        });
        let node = g.add(name, processor(), &[self.node], build);
        KStream::at(self.graph.clone(), node)
    }
}
