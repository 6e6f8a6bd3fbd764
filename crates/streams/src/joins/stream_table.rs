//! Stream-table joins (Kafka's `KStream#join(KTable)` and `leftJoin(KTable)`, processor
//! `KStreamKTableJoinProcessor`): a `KSTREAM-JOIN-` (or `KSTREAM-LEFTJOIN-`) node looks
//! each stream record up in the table's store as the table is when the record arrives.
//! The node uses the table's store, so the table's sub-topology and the stream's become
//! one. Table updates trigger nothing.
//!
//! The table must be materialized (a table from [`StreamsBuilder::table`] or an
//! aggregation is); joining one that is not (after `filter` or `map_values`) is a topology
//! error. Kafka would read such a table through its parent's store.
//!
//! [`StreamsBuilder::table`]: crate::StreamsBuilder::table

use std::sync::Arc;

use super::{copartition, repartition_for_join, Joined};
use crate::kstream::{processor, KStream};
use crate::ktable::KTable;
use crate::serdes::Serde;
use crate::topology::{build_with, forward, Forward, NodeKind};

type Lookup<V, VO, VR> = Arc<dyn Fn(&V, Option<&VO>) -> Option<VR> + Send + Sync>;

impl<K, V> KStream<K, V>
where
    K: Clone + 'static,
    V: Clone + 'static,
{
    /// Joins each record with the table's value for its key (Kafka's `join(KTable,
    /// ValueJoiner)`): `joiner(value, table value)`, with the record's timestamp; records
    /// whose key the table does not hold, and records with a null key, are dropped.
    ///
    /// A stream whose key changed upstream needs [`join_table_with`](Self::join_table_with),
    /// whose serdes write the repartition topic.
    pub fn join_table<VO, VR>(
        &self,
        table: &KTable<K, VO>,
        joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR>
    where
        VO: Clone + 'static,
        VR: Clone + 'static,
    {
        self.table_join(table, false, inner(joiner), None)
    }

    /// [`join_table`](Self::join_table) with serdes and a name (Kafka's `join(KTable,
    /// ValueJoiner, Joined)`).
    pub fn join_table_with<VO, VR>(
        &self,
        table: &KTable<K, VO>,
        joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
        joined: Joined<K, V, VO>,
    ) -> KStream<K, VR>
    where
        VO: Clone + 'static,
        VR: Clone + 'static,
    {
        self.table_join(table, false, inner(joiner), Some(joined))
    }

    /// Like [`join_table`](Self::join_table), but a record whose key the table does not
    /// hold gives `joiner(value, None)` (Kafka's `leftJoin(KTable, ValueJoiner)`); so does
    /// a record with a null key.
    pub fn left_join_table<VO, VR>(
        &self,
        table: &KTable<K, VO>,
        joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR>
    where
        VO: Clone + 'static,
        VR: Clone + 'static,
    {
        self.table_join(table, true, left(joiner), None)
    }

    /// [`left_join_table`](Self::left_join_table) with serdes and a name (Kafka's
    /// `leftJoin(KTable, ValueJoiner, Joined)`).
    pub fn left_join_table_with<VO, VR>(
        &self,
        table: &KTable<K, VO>,
        joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
        joined: Joined<K, V, VO>,
    ) -> KStream<K, VR>
    where
        VO: Clone + 'static,
        VR: Clone + 'static,
    {
        self.table_join(table, true, left(joiner), Some(joined))
    }

    /// Kafka's `join(KTable, ...)` and `doStreamTableJoin`.
    fn table_join<VO, VR>(
        &self,
        table: &KTable<K, VO>,
        left: bool,
        joiner: Lookup<V, VO, VR>,
        joined: Option<Joined<K, V, VO>>,
    ) -> KStream<K, VR>
    where
        VO: Clone + 'static,
        VR: Clone + 'static,
    {
        let graph = self.graph.clone();
        if !Arc::ptr_eq(&graph, &table.graph) {
            graph
                .lock()
                .errors
                .push("join() of a stream and a table from different builders".into());
        }
        let name = joined.as_ref().and_then(|j| j.name.clone());
        let stream = match (&joined, self.key_changed) {
            (Some(j), true) => {
                let prefix = name.clone().unwrap_or_else(|| {
                    let g = graph.lock();
                    g.nodes
                        .get(self.node)
                        .map(|n| n.name.clone())
                        .unwrap_or_default()
                });
                repartition_for_join(self, &prefix, j.key.clone(), j.value.clone())
            }
            (None, true) => {
                graph.lock().errors.push(
                    "a stream whose key changed must be repartitioned before joining a table: \
                     give its serdes with join_table_with/left_join_table_with (Joined)"
                        .into(),
                );
                self.clone()
            }
            _ => self.clone(),
        };
        let value_serde: Option<Arc<dyn Serde<V>>> = joined.map(|j| j.value);
        let mut g = graph.lock();
        copartition(&mut g, stream.node, table.node);
        let prefix = if left {
            "KSTREAM-LEFTJOIN-"
        } else {
            "KSTREAM-JOIN-"
        };
        let generated = g.next_name(prefix);
        let name = name.unwrap_or(generated);
        let Some(access) = table.store.clone() else {
            let table_name = g.nodes.get(table.node).map(|n| n.name.clone());
            g.errors.push(format!(
                "the join {name} needs a materialized table, and {} is not (Kafka would read it \
                 through its parent's store)",
                table_name.unwrap_or_default()
            ));
            let build = build_with(|_down: Forward<K, VR>| forward(|_, _: K, _: V| {}));
            let node = g.add(name, processor(), &[stream.node], build);
            drop(g);
            return KStream::at(graph, node);
        };
        let kind = NodeKind::Processor {
            stores: vec![access.name.clone()],
        };
        let build = build_with(move |down: Forward<K, VR>| {
            forward(move |ctx, k: K, v: V| {
                let kb = access.key_bytes(ctx, &k);
                if ctx.failure.is_some() {
                    return;
                }
                let null_value = match &value_serde {
                    Some(serde) => match serde.serialize(&access.name, &v) {
                        Ok(b) => b.is_none(),
                        Err(source) => {
                            return ctx.fail(crate::error::StreamsError::StoreSerde {
                                store: access.name.clone(),
                                source,
                            })
                        }
                    },
                    None => false,
                };
                if null_value || (kb.is_none() && !left) {
                    ctx.task.dropped_records += 1;
                    return;
                }
                let found = match &kb {
                    Some(kb) => access.get(ctx, kb).map(|(vo, _)| vo),
                    None => None,
                };
                if ctx.failure.is_some() {
                    return;
                }
                if let Some(out) = joiner(&v, found.as_ref()) {
                    down(ctx, k, out);
                }
            })
        });
        let node = g.add(name, kind, &[stream.node], build);
        drop(g);
        KStream::at(graph, node)
    }
}

fn inner<V, VO, VR>(joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static) -> Lookup<V, VO, VR> {
    Arc::new(move |v, o| o.map(|o| joiner(v, o)))
}

fn left<V, VO, VR>(
    joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
) -> Lookup<V, VO, VR> {
    Arc::new(move |v, o| Some(joiner(v, o)))
}
