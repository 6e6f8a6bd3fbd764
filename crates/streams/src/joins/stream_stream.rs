//! Windowed stream-stream joins (Kafka's `KStreamImplJoin` and `KStreamKStreamJoin`): each
//! side's records go through a `KSTREAM-WINDOWED-` node into a window store, then to a
//! join node (`KSTREAM-JOINTHIS-`/`-JOINOTHER-`, for outer sides `KSTREAM-OUTERTHIS-`/
//! `-OUTEROTHER-`) that looks the record up in the other side's store; both join nodes
//! feed a `KSTREAM-MERGE-` node, the join's result.
//!
//! Left and outer joins keep records that found no partner in a shared store
//! (`KSTREAM-OUTERSHARED-<n>-store`) and emit them with a missing partner only when their
//! window has closed: when the join's stream time passes the record's time plus the
//! window's after (for the right side, before) and grace. A partner arriving in time
//! removes the record from that store. This is Kafka's behaviour since 3.1 with
//! `JoinWindows::of_time_difference_*` (KIP-633).
//!
//! The join's time (the largest timestamp either join node has seen, Kafka's
//! `TimeTracker`) and each window store's newest time are kept per task in memory; a task
//! opened again (after a restart or a rebalance) takes them from its restored stores.
//!
//! Stores, as bytes:
//! - window stores: key `<key><time><seq>` (time sortable, `seq` a 4-byte counter for
//!   records of one key and time), value the record's value. Records older than the
//!   store's newest minus `size + grace` are not read, and are purged from time to time
//!   (Kafka drops whole segments); a record that old is not stored and counts as dropped.
//! - the shared store: key `<time><side><key>` (side 1 for left, 0 for right, as Kafka
//!   orders them), value the list of the records' values (length-prefixed).

use std::collections::HashMap;
use std::ops::Bound;
use std::sync::{Arc, Weak};

use bytes::{BufMut, Bytes, BytesMut};
use parking_lot::Mutex;

use super::{
    copartition, java_hash_order, repartition_for_join, time_key, time_of_key, JoinWindows,
    StreamJoined,
};
use crate::error::StreamsError;
use crate::kstream::{processor, KStream};
use crate::serdes::{Serde, SerdeError};
use crate::state::{suffixed_range, unstamp, RawStore, StoreError, StoreKind, StoreSpec};
use crate::task::TaskId;
use crate::topology::{build_with, forward, BuildFn, Ctx, Forward, NodeKind};

/// A joiner from one side's point of view: this side's value, the other side's; `None`
/// where the join kind has no result for the combination.
type Joiner<VT, VO, VR> = Arc<dyn Fn(Option<&VT>, Option<&VO>) -> Option<VR> + Send + Sync>;

const LEFT: usize = 0;
const RIGHT: usize = 1;

/// The side byte of the shared store's keys (Kafka's `TimestampedKeyAndJoinSide`).
fn side_byte(side: usize) -> u8 {
    if side == LEFT {
        1
    } else {
        0
    }
}

impl<K, V> KStream<K, V>
where
    K: Clone + 'static,
    V: Clone + 'static,
{
    /// Joins this stream with `other` (Kafka's `join(KStream, ValueJoiner, JoinWindows,
    /// StreamJoined)`): each pair of records with the same key and timestamps within
    /// `windows` gives `joiner(this, other)`, with the later of the two timestamps.
    /// Records with a null key or value are dropped.
    pub fn join<VO, VR>(
        &self,
        other: &KStream<K, VO>,
        joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
        joined: StreamJoined<K, V, VO>,
    ) -> KStream<K, VR>
    where
        VO: Clone + 'static,
        VR: Clone + 'static,
    {
        let joiner: Joiner<V, VO, VR> = Arc::new(move |a, b| match (a, b) {
            (Some(a), Some(b)) => Some(joiner(a, b)),
            _ => None,
        });
        self.windowed_join(other, false, false, joiner, windows, joined)
    }

    /// [`join`](Self::join), and each record of this stream that found no partner gives
    /// `joiner(this, None)` once its window has closed (Kafka's `leftJoin`).
    pub fn left_join<VO, VR>(
        &self,
        other: &KStream<K, VO>,
        joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
        joined: StreamJoined<K, V, VO>,
    ) -> KStream<K, VR>
    where
        VO: Clone + 'static,
        VR: Clone + 'static,
    {
        let joiner: Joiner<V, VO, VR> = Arc::new(move |a, b| a.map(|a| joiner(a, b)));
        self.windowed_join(other, true, false, joiner, windows, joined)
    }

    /// [`left_join`](Self::left_join) both ways: a record of either stream that found no
    /// partner gives `joiner(Some(this), None)` or `joiner(None, Some(other))` once its
    /// window has closed (Kafka's `outerJoin`).
    pub fn outer_join<VO, VR>(
        &self,
        other: &KStream<K, VO>,
        joiner: impl Fn(Option<&V>, Option<&VO>) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
        joined: StreamJoined<K, V, VO>,
    ) -> KStream<K, VR>
    where
        VO: Clone + 'static,
        VR: Clone + 'static,
    {
        let joiner: Joiner<V, VO, VR> = Arc::new(move |a, b| match (a, b) {
            (None, None) => None,
            (a, b) => Some(joiner(a, b)),
        });
        self.windowed_join(other, true, true, joiner, windows, joined)
    }

    /// Kafka's `doJoin` and `KStreamImplJoin.join`: repartitions, names, stores, nodes.
    fn windowed_join<VO, VR>(
        &self,
        other: &KStream<K, VO>,
        left_outer: bool,
        right_outer: bool,
        joiner: Joiner<V, VO, VR>,
        windows: JoinWindows,
        sj: StreamJoined<K, V, VO>,
    ) -> KStream<K, VR>
    where
        VO: Clone + 'static,
        VR: Clone + 'static,
    {
        let graph = self.graph.clone();
        if !Arc::ptr_eq(&graph, &other.graph) {
            graph
                .lock()
                .errors
                .push("join() of streams from different builders".into());
        }
        let node_name = |s: usize| {
            let g = graph.lock();
            g.nodes.get(s).map(|n| n.name.clone()).unwrap_or_default()
        };
        let named = |suffix: &str| sj.name.as_ref().map(|n| format!("{n}{suffix}"));
        let prefix = named("-left").unwrap_or_else(|| node_name(self.node));
        let this = repartition_for_join(self, &prefix, sj.key.clone(), sj.value.clone());
        let prefix = named("-right").unwrap_or_else(|| node_name(other.node));
        let other = repartition_for_join(other, &prefix, sj.key.clone(), sj.other.clone());

        let mut g = graph.lock();
        copartition(&mut g, this.node, other.node);
        // Kafka takes every generated name, given names or not.
        let mut name_or = |suffix: &str, prefix: &str| {
            let generated = g.next_name(prefix);
            named(suffix).unwrap_or(generated)
        };
        let this_windowed = name_or("-this-windowed", "KSTREAM-WINDOWED-");
        let other_windowed = name_or("-other-windowed", "KSTREAM-WINDOWED-");
        let (this_suffix, this_prefix) = if right_outer {
            ("-outer-this-join", "KSTREAM-OUTERTHIS-")
        } else {
            ("-this-join", "KSTREAM-JOINTHIS-")
        };
        let (other_suffix, other_prefix) = if left_outer {
            ("-outer-other-join", "KSTREAM-OUTEROTHER-")
        } else {
            ("-other-join", "KSTREAM-JOINOTHER-")
        };
        let this_generated = g.next_name(this_prefix);
        let other_generated = g.next_name(other_prefix);
        let join_this = named(this_suffix).unwrap_or(this_generated.clone());
        let join_other = named(other_suffix).unwrap_or(other_generated.clone());
        let merge_generated = g.next_name("KSTREAM-MERGE-");
        let merge = named("-merge").unwrap_or(merge_generated);

        let stored = |suffix: &str, generated: &str| match &sj.store_name {
            Some(s) => format!("{s}{suffix}-store"),
            None => format!("{generated}-store"),
        };
        let this_store = stored(this_suffix, &this_generated);
        let other_store = stored(other_suffix, &other_generated);
        let shared_store = left_outer.then(|| match &sj.store_name {
            Some(s) if right_outer => format!("{s}-outer-shared-join-store"),
            Some(s) => format!("{s}-left-shared-join-store"),
            None => format!(
                "KSTREAM-OUTERSHARED-{}-store",
                &this_generated[this_prefix.len()..]
            ),
        });
        let window_kind = StoreKind::Window {
            retention_ms: windows.retention_ms(),
        };
        let spec = |name: &str, kind| StoreSpec {
            name: name.to_string(),
            kind,
            persistent: sj.persistent,
            logged: sj.logged,
        };
        g.add_store(spec(&this_store, window_kind));
        g.add_store(spec(&other_store, window_kind));
        if let Some(s) = &shared_store {
            g.add_store(spec(s, StoreKind::KeyValue));
        }

        let shared = Arc::new(Shared {
            windows: [this_store.clone(), other_store.clone()],
            outer: shared_store.clone(),
            join: windows,
            segment_ms: (windows.retention_ms() / 2).max(60_000),
            right_outer,
            tasks: Mutex::new(HashMap::new()),
        });
        let with_shared = |store: &str| {
            let mut stores = vec![store.to_string()];
            stores.extend(shared_store.clone());
            NodeKind::Processor {
                stores: java_hash_order(stores),
            }
        };
        let only = |store: &str| NodeKind::Processor {
            stores: vec![store.to_string()],
        };
        let this_w = g.add(
            this_windowed,
            only(&this_store),
            &[this.node],
            windowed::<K, V>(shared.clone(), LEFT, sj.key.clone(), sj.value.clone()),
        );
        let other_w = g.add(
            other_windowed,
            only(&other_store),
            &[other.node],
            windowed::<K, VO>(shared.clone(), RIGHT, sj.key.clone(), sj.other.clone()),
        );
        let left_side = JoinSide {
            this: LEFT,
            key: sj.key.clone(),
            this_value: sj.value.clone(),
            other_value: sj.other.clone(),
            outer: left_outer,
            joiner: joiner.clone(),
        };
        let reversed: Joiner<VO, V, VR> = Arc::new(move |o, t| joiner(t, o));
        let right_side = JoinSide {
            this: RIGHT,
            key: sj.key.clone(),
            this_value: sj.other.clone(),
            other_value: sj.value.clone(),
            outer: right_outer,
            joiner: reversed,
        };
        let this_j = g.add(
            join_this,
            with_shared(&other_store),
            &[this_w],
            joining(shared.clone(), left_side),
        );
        let other_j = g.add(
            join_other,
            with_shared(&this_store),
            &[other_w],
            joining(shared, right_side),
        );
        let build = build_with(|down: Forward<K, VR>| down);
        let node = g.add(merge, processor(), &[this_j, other_j], build);
        drop(g);
        KStream::at(graph, node)
    }
}

/// The join's time as both of its join nodes see it in one task (Kafka's `TimeTracker`,
/// plus the window stores' observed times).
#[derive(Debug, Clone, Copy)]
struct JoinTime {
    /// The largest timestamp either join node has seen.
    stream_time: i64,
    /// No record in the shared store is older (`i64::MAX` when it is empty).
    min_time: i64,
    /// Per window store, the largest timestamp put into it.
    observed: [i64; 2],
    /// Per window store, when (in its observed time) to purge it next.
    next_purge: [i64; 2],
}

/// A task's join time and the store it was taken from.
type TaskTime = (Weak<dyn RawStore>, JoinTime);

/// What the four nodes of one join share.
struct Shared {
    /// The window stores: left's, right's.
    windows: [String; 2],
    /// The shared store of records without a partner (left and outer joins).
    outer: Option<String>,
    join: JoinWindows,
    /// How much a window store's observed time advances between purges (Kafka's segment
    /// interval).
    segment_ms: i64,
    /// Whether right records are kept in the shared store too (outer joins).
    right_outer: bool,
    /// Per task: its join time, and the left window store it was taken from (a task
    /// opened again has new stores, and its time is taken from them again).
    tasks: Mutex<HashMap<TaskId, TaskTime>>,
}

fn store_failed(ctx: &mut Ctx, store: &str, source: StoreError) {
    ctx.fail(StreamsError::Store {
        store: store.to_string(),
        source,
    });
}

fn serde_failed(ctx: &mut Ctx, store: &str, source: SerdeError) {
    ctx.fail(StreamsError::StoreSerde {
        store: store.to_string(),
        source,
    });
}

/// A window store key: the record key, its time, its sequence number.
fn window_entry(key: &[u8], ts: i64, seq: u32) -> Bytes {
    let mut b = BytesMut::with_capacity(key.len() + 12);
    b.put_slice(key);
    b.put_slice(&time_key(ts));
    b.put_u32(seq);
    b.freeze()
}

/// The time and sequence number of a window store key.
fn window_entry_time(k: &[u8]) -> Option<(i64, u32)> {
    let at = k.len().checked_sub(12)?;
    let ts = time_of_key(&k[at..at + 8])?;
    let seq = u32::from_be_bytes(k[at + 8..].try_into().ok()?);
    Some((ts, seq))
}

/// A shared store key: time, side, record key.
fn outer_entry(ts: i64, side: usize, key: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(9 + key.len());
    b.put_slice(&time_key(ts));
    b.put_u8(side_byte(side));
    b.put_slice(key);
    b.freeze()
}

/// The time, side and record key of a shared store key.
fn split_outer_entry(k: &Bytes) -> Option<(i64, usize, Bytes)> {
    let ts = time_of_key(k.get(..8)?)?;
    let side = if *k.get(8)? == 1 { LEFT } else { RIGHT };
    Some((ts, side, k.slice(9..)))
}

/// The values of a shared store entry.
fn decode_list(mut b: &[u8]) -> Option<Vec<Bytes>> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let len = u32::from_be_bytes(b.get(..4)?.try_into().ok()?) as usize;
        out.push(Bytes::copy_from_slice(b.get(4..4 + len)?));
        b = &b[4 + len..];
    }
    Some(out)
}

fn encode_item(list: &mut BytesMut, value: &[u8]) {
    list.put_u32(value.len() as u32);
    list.put_slice(value);
}

impl Shared {
    /// The oldest time window store `side` still answers for.
    fn live_from(&self, t: &JoinTime, side: usize) -> i64 {
        t.observed[side]
            .saturating_sub(self.join.retention_ms())
            .saturating_add(1)
    }

    /// The task's join time; the first time in a task, taken from its stores (which a
    /// restore may have filled), purging what has expired.
    fn load(&self, ctx: &mut Ctx) -> Option<JoinTime> {
        let store = match ctx.task.stores.get(&self.windows[LEFT]) {
            Some(s) => Arc::downgrade(&s.raw),
            None => {
                ctx.fail(StreamsError::InvalidTopology(format!(
                    "store {} is not connected to task {}",
                    self.windows[LEFT], ctx.task.id
                )));
                return None;
            }
        };
        if let Some((s, t)) = self.tasks.lock().get(&ctx.task.id) {
            if Weak::ptr_eq(s, &store) {
                return Some(*t);
            }
        }
        let mut t = JoinTime {
            stream_time: -1,
            min_time: i64::MAX,
            observed: [-1, -1],
            next_purge: [i64::MIN, i64::MIN],
        };
        for side in [LEFT, RIGHT] {
            let name = self.windows[side].clone();
            let newest = ctx.with_store(&name, |raw| {
                let all = raw.range(Bound::Unbounded, Bound::Unbounded)?;
                Ok(all
                    .iter()
                    .filter_map(|(k, _)| window_entry_time(k))
                    .map(|(ts, _)| ts)
                    .max())
            })?;
            t.observed[side] = newest.unwrap_or(-1);
            self.purge(ctx, &mut t, side)?;
        }
        t.stream_time = t.observed[LEFT].max(t.observed[RIGHT]);
        if let Some(outer) = &self.outer {
            let first = ctx.with_store(outer, |raw| {
                let all = raw.range(Bound::Unbounded, Bound::Unbounded)?;
                Ok(all.first().and_then(|(k, _)| split_outer_entry(k)))
            })?;
            if let Some((ts, _, _)) = first {
                t.min_time = ts;
            }
        }
        self.tasks.lock().insert(ctx.task.id, (store, t));
        Some(t)
    }

    fn save(&self, ctx: &Ctx, t: JoinTime) {
        if let Some(entry) = self.tasks.lock().get_mut(&ctx.task.id) {
            entry.1 = t;
        }
    }

    /// Removes window store `side`'s expired records (from the store only: its changelog
    /// expires them by retention, as Kafka's segments do).
    fn purge(&self, ctx: &mut Ctx, t: &mut JoinTime, side: usize) -> Option<()> {
        let from = self.live_from(t, side);
        let name = self.windows[side].clone();
        ctx.with_store(&name, |raw| {
            for (k, _) in raw.range(Bound::Unbounded, Bound::Unbounded)? {
                if window_entry_time(&k).is_some_and(|(ts, _)| ts < from) {
                    raw.delete(&k)?;
                }
            }
            Ok(())
        })?;
        t.next_purge[side] = t.observed[side].saturating_add(self.segment_ms);
        Some(())
    }

    /// Puts a record into window store `side`, unless it is too old to be read.
    fn put_window(&self, ctx: &mut Ctx, side: usize, key: &[u8], value: Bytes) {
        let Some(mut t) = self.load(ctx) else { return };
        let ts = ctx.timestamp;
        t.observed[side] = t.observed[side].max(ts);
        if ts < self.live_from(&t, side) {
            ctx.task.dropped_records += 1;
            self.save(ctx, t);
            return;
        }
        let name = self.windows[side].clone();
        let (lo, hi) = (window_entry(&[], ts, 0), window_entry(&[], ts, u32::MAX));
        let Some(last) = ctx.with_store(&name, |raw| {
            let same = suffixed_range(raw, key, 12, &lo, &hi)?;
            Ok(same.last().and_then(|(k, _)| window_entry_time(k)))
        }) else {
            return;
        };
        let seq = last.map_or(0, |(_, s)| s.saturating_add(1));
        ctx.put(&name, window_entry(key, ts, seq), Some(value), ts);
        if t.observed[side] >= t.next_purge[side] && self.purge(ctx, &mut t, side).is_none() {
            return;
        }
        self.save(ctx, t);
    }

    /// The records of `key` in window store `side` with times in `[from, to]`: time and
    /// value bytes, oldest first.
    fn fetch(
        &self,
        ctx: &mut Ctx,
        t: &JoinTime,
        side: usize,
        key: &[u8],
        from: i64,
        to: i64,
    ) -> Option<Vec<(i64, Bytes)>> {
        let from = from.max(self.live_from(t, side));
        if to < from {
            return Some(Vec::new());
        }
        let name = self.windows[side].clone();
        let (lo, hi) = (window_entry(&[], from, 0), window_entry(&[], to, u32::MAX));
        let found = ctx.with_store(&name, |raw| suffixed_range(raw, key, 12, &lo, &hi))?;
        let mut out = Vec::with_capacity(found.len());
        for (k, stored) in found {
            let Some((ts, _)) = window_entry_time(&k) else {
                continue;
            };
            match unstamp(&name, &stored) {
                Ok((_, v)) => out.push((ts, v)),
                Err(e) => {
                    store_failed(ctx, &name, e);
                    return None;
                }
            }
        }
        Some(out)
    }

    /// The join time a record of `side` at `ts` waits for before it is emitted without a
    /// partner.
    fn lookback(&self, side: usize) -> i64 {
        if side == LEFT {
            self.join.after_ms
        } else {
            self.join.before_ms
        }
    }

    /// Adds a record without a partner to the shared store.
    fn put_outer(&self, ctx: &mut Ctx, outer: &str, side: usize, key: &[u8], value: &[u8]) {
        let ts = ctx.timestamp;
        let k = outer_entry(ts, side, key);
        let mut list = BytesMut::new();
        if let Some((_, existing)) = ctx.get(outer, &k) {
            list.put_slice(&existing);
        }
        encode_item(&mut list, value);
        ctx.put(outer, k, Some(list.freeze()), ts);
    }

    /// Removes the shared store's entry for a record that found a partner.
    fn remove_outer(&self, ctx: &mut Ctx, outer: &str, side: usize, key: &[u8], ts: i64) {
        let k = outer_entry(ts, side, key);
        if ctx.get(outer, &k).is_some() {
            let now = ctx.timestamp;
            ctx.put(outer, k, None, now);
        }
    }
}

/// A `KSTREAM-WINDOWED-` node: passes records on, then keeps those with a key and a value
/// in its window store (Kafka's `KStreamJoinWindow`).
fn windowed<K, V>(
    shared: Arc<Shared>,
    side: usize,
    key: Arc<dyn Serde<K>>,
    value: Arc<dyn Serde<V>>,
) -> BuildFn
where
    K: Clone + 'static,
    V: Clone + 'static,
{
    build_with(move |down: Forward<K, V>| {
        forward(move |ctx, k: K, v: V| {
            let store = &shared.windows[side];
            let kb = match key.serialize(store, &k) {
                Ok(b) => b,
                Err(e) => return serde_failed(ctx, store, e),
            };
            let vb = match (&kb, value.serialize(store, &v)) {
                (None, _) => None,
                (Some(_), Ok(b)) => b,
                (Some(_), Err(e)) => return serde_failed(ctx, store, e),
            };
            down(ctx, k, v);
            if let (Some(kb), Some(vb)) = (kb, vb) {
                if ctx.failure.is_none() {
                    shared.put_window(ctx, side, &kb, vb);
                }
            }
        })
    })
}

/// One side of the join, from its join node's point of view.
struct JoinSide<K, VT, VO, VR> {
    this: usize,
    key: Arc<dyn Serde<K>>,
    this_value: Arc<dyn Serde<VT>>,
    other_value: Arc<dyn Serde<VO>>,
    /// Whether this side's records without a partner are emitted (Kafka's `outer`).
    outer: bool,
    joiner: Joiner<VT, VO, VR>,
}

/// Runs `f` with the context's timestamp set to `ts`.
fn at_time<T>(ctx: &mut Ctx, ts: i64, f: impl FnOnce(&mut Ctx) -> T) -> T {
    let input = std::mem::replace(&mut ctx.timestamp, ts);
    let out = f(ctx);
    ctx.timestamp = input;
    out
}

/// A join node (Kafka's `KStreamKStreamJoinProcessor`).
fn joining<K, VT, VO, VR>(shared: Arc<Shared>, side: JoinSide<K, VT, VO, VR>) -> BuildFn
where
    K: Clone + 'static,
    VT: Clone + 'static,
    VO: Clone + 'static,
    VR: Clone + 'static,
{
    let (before, after) = if side.this == LEFT {
        (shared.join.before_ms, shared.join.after_ms)
    } else {
        (shared.join.after_ms, shared.join.before_ms)
    };
    let other = 1 - side.this;
    build_with(move |down: Forward<K, VR>| {
        forward(move |ctx, k: K, v: VT| {
            let Some(mut t) = shared.load(ctx) else {
                return;
            };
            let ts = ctx.timestamp;
            t.stream_time = t.stream_time.max(ts);
            let store = shared.windows[side.this].clone();
            let kb = match side.key.serialize(&store, &k) {
                Ok(b) => b,
                Err(e) => return serde_failed(ctx, &store, e),
            };
            let vb = match side.this_value.serialize(&store, &v) {
                Ok(b) => b,
                Err(e) => return serde_failed(ctx, &store, e),
            };
            let (Some(kb), Some(vb)) = (kb, vb.clone()) else {
                shared.save(ctx, t);
                if side.outer && vb.is_some() {
                    // A null key cannot join; outer sides emit it at once (KIP-962).
                    if let Some(out) = (side.joiner)(Some(&v), None) {
                        down(ctx, k, out);
                    }
                } else {
                    ctx.task.dropped_records += 1;
                }
                return;
            };
            if ts == t.stream_time {
                if let Some(outer) = &shared.outer {
                    emit_closed(ctx, &shared, &side, &mut t, outer, &down);
                }
            }
            let from = ts.saturating_sub(before).max(0);
            let to = ts.saturating_add(after).max(0);
            let Some(partners) = shared.fetch(ctx, &t, other, &kb, from, to) else {
                return;
            };
            let lonely = side.outer && partners.is_empty();
            let other_store = shared.windows[other].clone();
            for (pts, pv) in partners {
                if let Some(outer) = &shared.outer {
                    shared.remove_outer(ctx, outer, other, &kb, pts);
                }
                let partner = match side.other_value.deserialize(&other_store, Some(&pv)) {
                    Ok(p) => p,
                    Err(e) => return serde_failed(ctx, &other_store, e),
                };
                if let Some(out) = (side.joiner)(Some(&v), Some(&partner)) {
                    at_time(ctx, ts.max(pts), |ctx| down(ctx, k.clone(), out));
                }
            }
            if lonely {
                match &shared.outer {
                    Some(outer) if to >= t.stream_time => {
                        t.min_time = t.min_time.min(ts);
                        shared.put_outer(ctx, outer, side.this, &kb, &vb);
                    }
                    // Its window has already ended: no partner can come.
                    _ => {
                        if let Some(out) = (side.joiner)(Some(&v), None) {
                            down(ctx, k, out);
                        }
                    }
                }
            }
            shared.save(ctx, t);
        })
    })
}

/// Emits the shared store's records whose window has closed, with a missing partner, and
/// removes them (Kafka's `emitNonJoinedOuterRecords`).
fn emit_closed<K, VT, VO, VR>(
    ctx: &mut Ctx,
    shared: &Shared,
    side: &JoinSide<K, VT, VO, VR>,
    t: &mut JoinTime,
    outer: &str,
    down: &Forward<K, VR>,
) where
    K: Clone + 'static,
    VT: Clone + 'static,
    VO: Clone + 'static,
    VR: Clone + 'static,
{
    let grace = shared.join.grace_ms;
    // The shortest wait of the sides the store holds records of.
    let wait = if shared.right_outer {
        shared.join.after_ms.min(shared.join.before_ms)
    } else {
        shared.join.after_ms
    };
    let newest_closed = t
        .stream_time
        .saturating_sub(grace)
        .saturating_sub(wait)
        .saturating_sub(1);
    if t.min_time == i64::MAX || t.min_time > newest_closed {
        return;
    }
    let upper = time_key(newest_closed.saturating_add(1));
    let Some(entries) = ctx.with_store(outer, |raw: &dyn RawStore| {
        raw.range(Bound::Unbounded, Bound::Excluded(&upper))
    }) else {
        return;
    };
    let mut min_open = i64::MAX;
    for (k, stored) in entries {
        let Some((ts, entry_side, kb)) = split_outer_entry(&k) else {
            continue;
        };
        if ts
            .saturating_add(shared.lookback(entry_side))
            .saturating_add(grace)
            >= t.stream_time
        {
            min_open = min_open.min(ts);
            continue;
        }
        let values = match unstamp(outer, &stored) {
            Ok((_, list)) => decode_list(&list),
            Err(e) => return store_failed(ctx, outer, e),
        };
        let Some(values) = values else {
            return store_failed(ctx, outer, StoreError::Corrupt(outer.to_string()));
        };
        let key = match side.key.deserialize(outer, Some(&kb)) {
            Ok(k) => k,
            Err(e) => return serde_failed(ctx, outer, e),
        };
        for vb in values {
            let out = if entry_side == side.this {
                match side.this_value.deserialize(outer, Some(&vb)) {
                    Ok(v) => (side.joiner)(Some(&v), None),
                    Err(e) => return serde_failed(ctx, outer, e),
                }
            } else {
                match side.other_value.deserialize(outer, Some(&vb)) {
                    Ok(o) => (side.joiner)(None, Some(&o)),
                    Err(e) => return serde_failed(ctx, outer, e),
                }
            };
            if let Some(out) = out {
                at_time(ctx, ts, |ctx| down(ctx, key.clone(), out));
            }
        }
        let now = ctx.timestamp;
        ctx.put(outer, k, None, now);
    }
    t.min_time = min_open.min(newest_closed.saturating_add(1));
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use strom_client::ConsumerRecord;

    use super::*;
    use crate::kstream::{Consumed, Produced, StreamsBuilder};
    use crate::serdes::StringSerde;
    use crate::task::{StateDir, Task};
    use crate::topology::{Compiled, RecordError, Topology};

    fn left_join() -> Topology {
        let b = StreamsBuilder::new();
        let l = b.stream("l", Consumed::with(StringSerde, StringSerde));
        let r = b.stream("r", Consumed::with(StringSerde, StringSerde));
        l.left_join(
            &r,
            |a: &String, b: Option<&String>| format!("{a}+{}", b.map_or("null", |s| s)),
            JoinWindows::of_time_difference_with_no_grace(Duration::from_millis(5)),
            StreamJoined::with(StringSerde, StringSerde, StringSerde).in_memory(),
        )
        .to("out", Produced::with(StringSerde, StringSerde));
        b.build()
    }

    fn open(compiled: &Compiled) -> Task {
        let id = TaskId {
            subtopology: 0,
            partition: 0,
        };
        let mut dir = StateDir::new(&std::env::temp_dir(), "joins-unit");
        dir.open_task(id, &compiled.subtopologies[0].stores)
            .unwrap()
    }

    /// Runs one record; returns the task and the values written to `out`, with their
    /// timestamps.
    fn run(
        compiled: &Compiled,
        task: Task,
        (topic, key, value, ts): (&str, &str, &str, i64),
    ) -> (Task, Vec<(String, i64)>) {
        let r = ConsumerRecord {
            topic: topic.to_string(),
            partition: 0,
            offset: 0,
            timestamp: ts,
            key: Some(Bytes::copy_from_slice(key.as_bytes())),
            value: Some(Bytes::copy_from_slice(value.as_bytes())),
            headers: Vec::new(),
        };
        let (source, _) = compiled.sources[topic].clone();
        let (task, out) = Compiled::run(&source, task, &r);
        let out = match out {
            Ok(out) => out,
            Err(RecordError::Fatal(e) | RecordError::Deserialization(e)) => panic!("{e}"),
        };
        let text = |b: &Option<Bytes>| String::from_utf8(b.clone().unwrap().to_vec()).unwrap();
        let out = out
            .iter()
            .filter(|p| p.topic == "out")
            .map(|p| (text(&p.value), p.timestamp.unwrap()))
            .collect();
        (task, out)
    }

    fn pairs(list: &[(&str, i64)]) -> Vec<(String, i64)> {
        list.iter().map(|(v, t)| (v.to_string(), *t)).collect()
    }

    #[test]
    fn a_restarted_task_emits_what_its_restored_stores_hold() {
        let first = left_join().compile("app").unwrap();
        let task = open(&first);
        let (task, out) = run(&first, task, ("l", "k", "A", 10));
        assert!(out.is_empty());
        let (task, out) = run(&first, task, ("l", "k", "B", 12));
        assert!(out.is_empty());
        // A new instance of the topology (no join time in memory) on the same stores.
        let second = left_join().compile("app").unwrap();
        let (task, out) = run(&second, task, ("l", "j", "C", 100));
        assert_eq!(out, pairs(&[("A+null", 10), ("B+null", 12)]));
        // The stores' times came back from their records too: a right record older than
        // the left store's retention finds nothing there.
        let (_task, out) = run(&second, task, ("r", "k", "x", 11));
        assert_eq!(out, []);
    }

    #[test]
    fn window_stores_are_purged_as_time_passes() {
        let compiled = left_join().compile("app").unwrap();
        let task = open(&compiled);
        let store = "KSTREAM-JOINTHIS-0000000004-store";
        let len = |t: &Task| t.stores[store].raw.approximate_len();
        let (task, _) = run(&compiled, task, ("l", "k", "A", 0));
        let (task, _) = run(&compiled, task, ("l", "k", "B", 1));
        assert_eq!(len(&task), 2);
        // A segment (60 s at least) later, what is older than the retention goes.
        let (task, out) = run(&compiled, task, ("l", "k2", "C", 70_000));
        assert_eq!(out, pairs(&[("A+null", 0), ("B+null", 1)]));
        assert_eq!(len(&task), 1);
        // Two records of one key and time are both kept.
        let (task, _) = run(&compiled, task, ("l", "k2", "D", 70_000));
        assert_eq!(len(&task), 2);
        let (_task, out) = run(&compiled, task, ("r", "k2", "y", 70_001));
        assert_eq!(out, pairs(&[("C+y", 70_001), ("D+y", 70_001)]));
    }

    #[test]
    fn store_keys_round_trip() {
        let k = window_entry(b"key", -3, 7);
        assert_eq!(window_entry_time(&k), Some((-3, 7)));
        assert!(window_entry(b"key", 5, 0) < window_entry(b"key", 5, 1));
        assert!(window_entry(b"key", 5, u32::MAX) < window_entry(b"key", 6, 0));
        let o = outer_entry(42, LEFT, b"k");
        assert_eq!(
            split_outer_entry(&o),
            Some((42, LEFT, Bytes::from_static(b"k")))
        );
        // Kafka's order: time, then right before left.
        assert!(outer_entry(42, RIGHT, b"z") < outer_entry(42, LEFT, b"a"));
        let mut list = BytesMut::new();
        encode_item(&mut list, b"ab");
        encode_item(&mut list, b"");
        encode_item(&mut list, b"c");
        assert_eq!(
            decode_list(&list).unwrap(),
            [&b"ab"[..], &b""[..], &b"c"[..]]
        );
        assert!(decode_list(&[0, 0, 0, 9, 1]).is_none());
    }
}
