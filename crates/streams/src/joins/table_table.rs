//! Table-table joins (Kafka's `KTable#join/leftJoin/outerJoin(KTable)`, processors
//! `KTableKTableInnerJoin`, `-LeftJoin`, `-RightJoin`, `-OuterJoin` and
//! `KTableKTableJoinMerger`): an update of either table (`KTABLE-JOINTHIS-`,
//! `KTABLE-JOINOTHER-`) looks the key up in the other table's store and forwards the
//! joined row's new value and the one it replaces; both feed `KTABLE-MERGE-`, the result
//! table, which keeps it in a store when materialized.
//!
//! A row's result carries the later of the two rows' timestamps. Deleting a row on either
//! side deletes the joined row where the join kind no longer has one (inner: either side
//! gone; left: the left row gone; outer: both gone).
//!
//! Both tables must be materialized (see [`crate::joins`]); joining one that is not is a
//! topology error.

use std::sync::Arc;

use super::copartition;
use crate::kstream::processor;
use crate::ktable::{Change, KTable};
use crate::materialized::Materialized;
use crate::state::typed::KvAccess;
use crate::state::StoreKind;
use crate::topology::{build_with, forward, BuildFn, Forward, NodeKind};

/// A joiner from one side's point of view; `None` where the join kind has no row.
type Joiner<VT, VO, VR> = Arc<dyn Fn(Option<&VT>, Option<&VO>) -> Option<VR> + Send + Sync>;

impl<K, V> KTable<K, V>
where
    K: Clone + 'static,
    V: Clone + 'static,
{
    /// The rows both tables have, as `joiner(this, other)` (Kafka's `join(KTable,
    /// ValueJoiner)`).
    pub fn join<VO, VR>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR>
    where
        VO: Clone + 'static,
        VR: Clone + 'static,
    {
        self.table_table(other, false, false, inner(joiner), None)
    }

    /// [`join`](Self::join), the result kept in a store (Kafka's `join(KTable,
    /// ValueJoiner, Materialized)`); `materialized` must give the value serde.
    pub fn join_materialized<VO, VR>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR>
    where
        VO: Clone + 'static,
        VR: Clone + 'static,
    {
        self.table_table(other, false, false, inner(joiner), Some(materialized))
    }

    /// Every row of this table, as `joiner(this, other)` with the other table's row if it
    /// has one (Kafka's `leftJoin(KTable, ValueJoiner)`).
    pub fn left_join<VO, VR>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR>
    where
        VO: Clone + 'static,
        VR: Clone + 'static,
    {
        self.table_table(other, true, false, left(joiner), None)
    }

    /// [`left_join`](Self::left_join), the result kept in a store.
    pub fn left_join_materialized<VO, VR>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR>
    where
        VO: Clone + 'static,
        VR: Clone + 'static,
    {
        self.table_table(other, true, false, left(joiner), Some(materialized))
    }

    /// Every row of either table, as `joiner(this, other)` with whichever rows exist
    /// (Kafka's `outerJoin(KTable, ValueJoiner)`).
    pub fn outer_join<VO, VR>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(Option<&V>, Option<&VO>) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR>
    where
        VO: Clone + 'static,
        VR: Clone + 'static,
    {
        self.table_table(other, true, true, outer(joiner), None)
    }

    /// [`outer_join`](Self::outer_join), the result kept in a store.
    pub fn outer_join_materialized<VO, VR>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(Option<&V>, Option<&VO>) -> VR + Send + Sync + 'static,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR>
    where
        VO: Clone + 'static,
        VR: Clone + 'static,
    {
        self.table_table(other, true, true, outer(joiner), Some(materialized))
    }

    /// Kafka's `KTableImpl.doJoin`.
    fn table_table<VO, VR>(
        &self,
        other: &KTable<K, VO>,
        left_outer: bool,
        right_outer: bool,
        joiner: Joiner<V, VO, VR>,
        materialized: Option<Materialized<K, VR>>,
    ) -> KTable<K, VR>
    where
        VO: Clone + 'static,
        VR: Clone + 'static,
    {
        let graph = self.graph.clone();
        let mut g = graph.lock();
        if !Arc::ptr_eq(&graph, &other.graph) {
            g.errors
                .push("join() of tables from different builders".into());
        }
        // Kafka names the result's store before the join's nodes.
        let store_name = materialized.as_ref().map(|m| match &m.name {
            Some(n) => n.clone(),
            None => g.next_name("KTABLE-MERGE-STATE-STORE-"),
        });
        let merge = g.next_name("KTABLE-MERGE-");
        copartition(&mut g, self.node, other.node);
        let join_this = g.next_name("KTABLE-JOINTHIS-");
        let join_other = g.next_name("KTABLE-JOINOTHER-");

        let (this_store, other_store) = match (&self.store, &other.store) {
            (Some(a), Some(b)) => (a.clone(), b.clone()),
            (a, b) => {
                let name_of = |n: usize| g.nodes.get(n).map(|x| x.name.clone());
                let missing: Vec<String> = [(a.is_none(), self.node), (b.is_none(), other.node)]
                    .into_iter()
                    .filter(|(m, _)| *m)
                    .filter_map(|(_, n)| name_of(n))
                    .collect();
                let e = format!(
                    "the join {merge} needs materialized tables, and {} is not (Kafka would \
                     read it through its parent's store)",
                    missing.join(" and ")
                );
                g.errors.push(e);
                let none = |_down: Forward<K, Change<VR>>| forward(|_, _: K, _: Change<V>| {});
                let node = g.add(merge, processor(), &[self.node], build_with(none));
                drop(g);
                return KTable::at(graph, node, None);
            }
        };

        let result = match (materialized, store_name) {
            (Some(m), Some(name)) => match m.value.clone() {
                Some(value) => {
                    g.add_store(m.spec(&name, StoreKind::KeyValue));
                    Some(KvAccess {
                        name,
                        key: m.key.clone().unwrap_or_else(|| this_store.key.clone()),
                        value,
                    })
                }
                None => {
                    g.errors.push(format!(
                        "the join {merge} needs a value serde for its store \
                         (Materialized::with_value_serde)"
                    ));
                    None
                }
            },
            _ => None,
        };

        // Kafka's inner join needs the other row on both sides; a left join's right side
        // needs the left row.
        let this_j = g.add(
            join_this,
            NodeKind::Processor {
                stores: vec![other_store.name.clone()],
            },
            &[self.node],
            joining(other_store, !left_outer, joiner.clone()),
        );
        let reversed: Joiner<VO, V, VR> = Arc::new(move |o, t| joiner(t, o));
        let other_j = g.add(
            join_other,
            NodeKind::Processor {
                stores: vec![this_store.name.clone()],
            },
            &[other.node],
            joining(this_store, !right_outer, reversed),
        );
        let kind = NodeKind::Processor {
            stores: result.iter().map(|s| s.name.clone()).collect(),
        };
        let node = g.add(merge, kind, &[this_j, other_j], merging(result.clone()));
        drop(g);
        KTable::at(graph, node, result)
    }
}

/// A join node: on an update of this side, the joined row's new and old values against the
/// other side's current row. With `needs_other`, nothing is forwarded while the other side
/// has no row (Kafka's inner join, and a left join's right side).
fn joining<K, VT, VO, VR>(
    other: KvAccess<K, VO>,
    needs_other: bool,
    joiner: Joiner<VT, VO, VR>,
) -> BuildFn
where
    K: Clone + 'static,
    VT: Clone + 'static,
    VO: Clone + 'static,
    VR: Clone + 'static,
{
    build_with(move |down: Forward<K, Change<VR>>| {
        forward(move |ctx, k: K, c: Change<VT>| {
            let Some(kb) = other.key_bytes(ctx, &k) else {
                if ctx.failure.is_none() {
                    ctx.task.dropped_records += 1;
                }
                return;
            };
            let found = other.get(ctx, &kb);
            if ctx.failure.is_some() {
                return;
            }
            let (o, ts) = match &found {
                Some((o, ots)) => (Some(o), ctx.timestamp.max(*ots)),
                None if needs_other || (c.new.is_none() && c.old.is_none()) => return,
                None => (None, ctx.timestamp),
            };
            let change = Change {
                new: joiner(c.new.as_ref(), o),
                old: joiner(c.old.as_ref(), o),
            };
            let input = std::mem::replace(&mut ctx.timestamp, ts);
            down(ctx, k, change);
            ctx.timestamp = input;
        })
    })
}

/// The merge node: keeps the result in its store when materialized, and passes it on.
fn merging<K, VR>(store: Option<KvAccess<K, VR>>) -> BuildFn
where
    K: Clone + 'static,
    VR: Clone + 'static,
{
    build_with(move |down: Forward<K, Change<VR>>| {
        forward(move |ctx, k: K, c: Change<VR>| {
            if let Some(store) = &store {
                let Some(kb) = store.key_bytes(ctx, &k) else {
                    return;
                };
                let ts = ctx.timestamp;
                store.put(ctx, kb, c.new.as_ref(), ts);
                if ctx.failure.is_some() {
                    return;
                }
            }
            down(ctx, k, c)
        })
    })
}

fn inner<V, VO, VR>(joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static) -> Joiner<V, VO, VR> {
    Arc::new(move |a, b| match (a, b) {
        (Some(a), Some(b)) => Some(joiner(a, b)),
        _ => None,
    })
}

fn left<V, VO, VR>(
    joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
) -> Joiner<V, VO, VR> {
    Arc::new(move |a, b| a.map(|a| joiner(a, b)))
}

fn outer<V, VO, VR>(
    joiner: impl Fn(Option<&V>, Option<&VO>) -> VR + Send + Sync + 'static,
) -> Joiner<V, VO, VR> {
    Arc::new(move |a, b| match (a, b) {
        (None, None) => None,
        (a, b) => Some(joiner(a, b)),
    })
}
