//! Grouping and aggregation: [`KStream::group_by_key`] and [`KStream::group_by`] give a
//! [`KGroupedStream`], whose `count`, `reduce` and `aggregate` keep one value per key in a
//! store and return it as a [`KTable`].
//!
//! A grouping after a key change goes through a repartition topic, as in Kafka: the stream
//! is written to `<application.id>-<name>-repartition` (partitioned by the new key) and
//! read back in a new sub-topology, so each key is aggregated by exactly one task. The
//! repartition nodes are named as Kafka names them: from the grouping's or the store's
//! name (`<name>-repartition-filter`, `-sink`, `-source`), or with generated names when
//! the store's name is generated too. Records with a null key are dropped before the
//! repartition topic and skipped by aggregations (Kafka logs and counts them).

use std::sync::Arc;

use crate::kstream::{processor, source_node, Consumed, KStream, Produced, SinkTo};
use crate::ktable::{Change, KTable};
use crate::materialized::{Grouped, Materialized};
use crate::serdes::{I64Serde, Serde};
use crate::state::typed::KvAccess;
use crate::state::StoreKind;
use crate::topology::{build_with, forward, Forward, NodeKind};

/// A stream grouped by key, ready to aggregate (Kafka's `KGroupedStream<K, V>`).
pub struct KGroupedStream<K, V> {
    pub(crate) stream: KStream<K, V>,
    pub(crate) grouped: Grouped<K, V>,
}

impl<K, V> KStream<K, V>
where
    K: Clone + 'static,
    V: Clone + 'static,
{
    /// Groups the records by their key (Kafka's `groupByKey`); a repartition topic comes
    /// first if the key was changed upstream.
    pub fn group_by_key(&self, grouped: Grouped<K, V>) -> KGroupedStream<K, V> {
        KGroupedStream {
            stream: self.clone(),
            grouped,
        }
    }

    /// Groups the records by the key `selector` gives them (Kafka's `groupBy`: a
    /// `KSTREAM-KEY-SELECT-` node, then a repartition topic).
    pub fn group_by<K2>(
        &self,
        selector: impl Fn(&K, &V) -> K2 + Send + Sync + 'static,
        grouped: Grouped<K2, V>,
    ) -> KGroupedStream<K2, V>
    where
        K2: Clone + 'static,
    {
        KGroupedStream {
            stream: self.select_key(selector),
            grouped,
        }
    }

    /// This stream, through a repartition topic named from `prefix` if its key changed
    /// upstream (Kafka's `createRepartitionedSource`); the returned stream is where a
    /// grouping or join attaches.
    pub(crate) fn repartitioned(
        &self,
        prefix: &str,
        key: Arc<dyn Serde<K>>,
        value: Arc<dyn Serde<V>>,
    ) -> KStream<K, V> {
        if !self.key_changed {
            return self.clone();
        }
        let topic = if prefix.ends_with("-repartition") {
            prefix.to_string()
        } else {
            format!("{prefix}-repartition")
        };
        let (sink, filter, source) = {
            let mut g = self.graph.lock();
            // Kafka always takes the three counter values, named or not.
            let names = (
                g.next_name("KSTREAM-SINK-"),
                g.next_name("KSTREAM-FILTER-"),
                g.next_name("KSTREAM-SOURCE-"),
            );
            g.internal_topics.insert(topic.clone());
            if is_generated(prefix) {
                names
            } else {
                (
                    format!("{topic}-sink"),
                    format!("{topic}-filter"),
                    format!("{topic}-source"),
                )
            }
        };
        // The filter is where Kafka drops null keys; here the sink does (it is the one that
        // sees the key's bytes), so the filter passes records on.
        let filter_node = {
            let mut g = self.graph.lock();
            let build = build_with(|down: Forward<K, V>| down);
            g.add(filter, processor(), &[self.node], build)
        };
        let filtered = KStream::<K, V>::at(self.graph.clone(), filter_node);
        let produced = Produced {
            key: key.clone(),
            value: value.clone(),
        };
        filtered.sink(sink, SinkTo::Topic(topic.clone()), produced, true);
        let mut g = self.graph.lock();
        let node = source_node(&mut g, source, vec![topic], Consumed { key, value });
        drop(g);
        KStream::at(self.graph.clone(), node)
    }
}

/// Whether `name` is a generated one (`KSTREAM-...-0000000003`), as Kafka tells them.
fn is_generated(name: &str) -> bool {
    let digits = name.rsplit('-').next().unwrap_or("");
    name.starts_with("KSTREAM") && digits.len() == 10 && digits.bytes().all(|b| b.is_ascii_digit())
}

impl<K, V> KGroupedStream<K, V>
where
    K: Clone + 'static,
    V: Clone + 'static,
{
    /// The number of records per key (`KSTREAM-AGGREGATE-`), as a table of `i64`.
    /// `Materialized::default()` stands for Kafka's `count()`; any other `Materialized`
    /// without a name for `count(Materialized)`, which takes one more name from the counter
    /// (Kafka keeps doing so for compatibility).
    pub fn count(&self, materialized: Materialized<K, i64>) -> KTable<K, i64> {
        if materialized.name.is_none() && !materialized.is_default() {
            self.stream
                .graph
                .lock()
                .next_name("KSTREAM-AGGREGATE-STATE-STORE-");
        }
        let materialized = Materialized {
            value: materialized.value.or_else(|| Some(Arc::new(I64Serde))),
            ..materialized
        };
        self.aggregate_as("KSTREAM-AGGREGATE-", || 0, |_k, _v, n| n + 1, materialized)
    }

    /// Each key's records combined by `reducer(aggregate, value)`, the first record's value
    /// as the start (`KSTREAM-REDUCE-`).
    pub fn reduce(
        &self,
        reducer: impl Fn(V, V) -> V + Send + Sync + 'static,
        materialized: Materialized<K, V>,
    ) -> KTable<K, V> {
        let materialized = Materialized {
            value: materialized
                .value
                .or_else(|| Some(self.grouped.value.clone())),
            ..materialized
        };
        self.aggregate_with(
            "KSTREAM-REDUCE-",
            materialized,
            move |_k, v, agg| match agg {
                Some(a) => reducer(a, v),
                None => v,
            },
        )
    }

    /// Each key's records folded by `aggregator(key, value, aggregate)` from
    /// `initializer()` (`KSTREAM-AGGREGATE-`). `materialized` must give the aggregate's
    /// value serde.
    pub fn aggregate<VA>(
        &self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        aggregator: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        materialized: Materialized<K, VA>,
    ) -> KTable<K, VA>
    where
        VA: Clone + 'static,
    {
        self.aggregate_as("KSTREAM-AGGREGATE-", initializer, aggregator, materialized)
    }

    fn aggregate_as<VA>(
        &self,
        prefix: &'static str,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        aggregator: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        materialized: Materialized<K, VA>,
    ) -> KTable<K, VA>
    where
        VA: Clone + 'static,
    {
        self.aggregate_with(prefix, materialized, move |k, v, agg| {
            aggregator(k, v, agg.unwrap_or_else(&initializer))
        })
    }

    /// The aggregation node: `step(key, value, current)` gives the key's new aggregate.
    fn aggregate_with<VA>(
        &self,
        prefix: &'static str,
        materialized: Materialized<K, VA>,
        step: impl Fn(&K, V, Option<VA>) -> VA + Send + Sync + 'static,
    ) -> KTable<K, VA>
    where
        VA: Clone + 'static,
    {
        let graph = self.stream.graph.clone();
        // Kafka's order: the store's name, the processor's, then the repartition nodes.
        let (store_name, name) = {
            let mut g = graph.lock();
            let store = match &materialized.name {
                Some(n) => n.clone(),
                None => g.next_name(&format!("{prefix}STATE-STORE-")),
            };
            (store, g.next_name(prefix))
        };
        let prefix_for_topic = self.grouped.name.clone().unwrap_or(store_name.clone());
        let input = self.stream.repartitioned(
            &prefix_for_topic,
            self.grouped.key.clone(),
            self.grouped.value.clone(),
        );
        let Some(value) = materialized.value.clone() else {
            graph.lock().errors.push(format!(
                "the aggregation {name} needs a value serde for its store (Materialized::with_value_serde)"
            ));
            return KTable::at(graph, input.node, None);
        };
        let store = KvAccess {
            name: store_name.clone(),
            key: materialized
                .key
                .clone()
                .unwrap_or_else(|| self.grouped.key.clone()),
            value,
        };
        let access = store.clone();
        let build = build_with(move |down: Forward<K, Change<VA>>| {
            forward(move |ctx, k: K, v: V| {
                let Some(kb) = access.key_bytes(ctx, &k) else {
                    return;
                };
                let (old, old_ts) = match access.get(ctx, &kb) {
                    Some((a, ts)) => (Some(a), ts),
                    None => (None, i64::MIN),
                };
                if ctx.failure.is_some() {
                    return;
                }
                let new = step(&k, v, old.clone());
                let ts = ctx.timestamp.max(old_ts);
                access.put(ctx, kb, Some(&new), ts);
                if ctx.failure.is_none() {
                    let input_ts = std::mem::replace(&mut ctx.timestamp, ts);
                    down(
                        ctx,
                        k,
                        Change {
                            new: Some(new),
                            old,
                        },
                    );
                    ctx.timestamp = input_ts;
                }
            })
        });
        let mut g = graph.lock();
        g.add_store(materialized.spec(&store_name, StoreKind::KeyValue));
        let kind = NodeKind::Processor {
            stores: vec![store_name],
        };
        let node = g.add(name, kind, &[input.node], build);
        drop(g);
        KTable::at(graph, node, Some(store))
    }
}
