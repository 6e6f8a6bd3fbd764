//! Windowed aggregations: [`KGroupedStream::windowed_by`] (tumbling and hopping windows),
//! [`KGroupedStream::windowed_by_sliding`] and [`KGroupedStream::windowed_by_session`]
//! give a [`TimeWindowedKStream`] or a [`SessionWindowedKStream`], whose `count`, `reduce`
//! and `aggregate` keep one aggregate per key and window and return them as a
//! `KTable<Windowed<K>, _>`, as Kafka's `KStreamWindowAggregate`,
//! `KStreamSlidingWindowAggregate` and `KStreamSessionWindowAggregate` do.
//!
//! - Stream time is the processor's own (Kafka's `observedStreamTime`): the largest
//!   timestamp of the records it has seen in its task. A window closes when stream time
//!   reaches its end plus the grace period (plus the inactivity gap for sessions); a
//!   record for a closed window is dropped, logged at debug level and counted in the
//!   task's dropped records (once per closed window, as Kafka's sensor counts).
//! - A time window's row carries the largest timestamp of its records; a session's, its
//!   end. Merged-away sessions are deleted and forwarded as deletes.
//! - Stores expire as Kafka's in-memory window and session stores do: a window whose
//!   start (a session whose end) is at or before the store's stream time (the largest
//!   start or end written) minus the retention is gone. The record's own key is expired
//!   exactly before each record; other keys by a sweep of the whole store each time the
//!   expiry horizon advances by half the retention (Kafka's segments linger similarly).
//!   Expiry writes no changelog record: the changelog's own retention removes them.
//!
//! Processor state that Kafka keeps in the processor instance (stream time, the store's
//! stream time) is kept per task in `TaskLocal`, and starts afresh when the task's store
//! is a new instance (the task was reopened), as a new Kafka processor would.

use std::collections::{HashMap, HashSet};
use std::ops::Bound;
use std::sync::{Arc, Weak};

use bytes::Bytes;
use parking_lot::Mutex;

use crate::error::StreamsError;
use crate::kgrouped::KGroupedStream;
use crate::kstream::KStream;
use crate::ktable::{Change, KTable, WindowedTable};
use crate::materialized::{Grouped, Materialized};
use crate::serdes::{I64Serde, Serde};
use crate::state::typed::KvAccess;
use crate::state::{
    fetch_windows, find_sessions, session_key, split_session_key, split_window_key, suffixed_range,
    unstamp, window_key, RawStore, StoreError, StoreKind,
};
use crate::task::TaskId;
use crate::topology::{build_with, forward, BuildFn, Ctx, Forward, NodeKind};
use crate::windows::{
    SessionWindowedSerde, SessionWindows, Shared, SlidingWindows, TimeWindowedSerde, TimeWindows,
    Window, Windowed,
};

/// State a processor keeps per task, tied to the instance of one of the task's stores:
/// when the task's store is another instance (the task was closed and opened again), the
/// state is made afresh.
pub(crate) struct TaskLocal<T> {
    slots: Mutex<HashMap<TaskId, Slot<T>>>,
}

/// A task's state and the store instance it belongs to.
type Slot<T> = (Weak<dyn RawStore>, T);

impl<T> Default for TaskLocal<T> {
    fn default() -> Self {
        TaskLocal {
            slots: Mutex::new(HashMap::new()),
        }
    }
}

impl<T> TaskLocal<T> {
    /// The task's state for store `store` and the store itself; `open` makes the state
    /// from the store when there is none for this store instance. A failure is recorded.
    pub fn take(
        &self,
        ctx: &mut Ctx,
        store: &str,
        open: impl FnOnce(&dyn RawStore) -> Result<T, StoreError>,
    ) -> Option<(Arc<dyn RawStore>, T)> {
        let Some(raw) = ctx.task.stores.get(store).map(|s| s.raw.clone()) else {
            ctx.fail(StreamsError::InvalidTopology(format!(
                "store {store} is not connected to task {}",
                ctx.task.id
            )));
            return None;
        };
        let kept = self.slots.lock().remove(&ctx.task.id);
        if let Some((weak, state)) = kept {
            // The weak reference keeps the old allocation, so an equal address is the same
            // store.
            if std::ptr::addr_eq(weak.as_ptr(), Arc::as_ptr(&raw)) {
                return Some((raw, state));
            }
        }
        match open(raw.as_ref()) {
            Ok(state) => Some((raw, state)),
            Err(source) => {
                ctx.fail(StreamsError::Store {
                    store: store.to_string(),
                    source,
                });
                None
            }
        }
    }

    /// Keeps `state` for task `id` and store `raw` until the next record.
    pub fn put_back(&self, id: TaskId, raw: &Arc<dyn RawStore>, state: T) {
        self.slots.lock().insert(id, (Arc::downgrade(raw), state));
    }
}

/// Kafka's `ConsumerRecord.NO_TIMESTAMP`: stream time before any record.
const NO_TIMESTAMP: i64 = -1;

/// How a store's keys carry time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// Window store keys: the window start.
    Window,
    /// Session store keys: the session end (then start).
    Session,
}

/// A windowed aggregation's state in one task.
#[derive(Debug, Clone, Copy)]
struct AggState {
    /// The largest record timestamp the processor has seen (Kafka's `observedStreamTime`).
    observed: i64,
    /// The store's stream time: the largest window start (session end) it holds.
    store_time: i64,
    /// The expiry horizon of the last sweep of the whole store.
    swept: i64,
}

/// How a window or session store expires.
#[derive(Debug, Clone, Copy)]
struct Expiry {
    layout: Layout,
    retention_ms: i64,
}

impl Expiry {
    /// Windows with a time at or before this are expired.
    fn horizon(&self, store_time: i64) -> i64 {
        store_time.saturating_sub(self.retention_ms)
    }

    fn time_of(&self, key: &Bytes) -> Option<i64> {
        match self.layout {
            Layout::Window => split_window_key(key).map(|(_, start)| start),
            Layout::Session => split_session_key(key).map(|(_, _, end)| end),
        }
    }

    /// The state of a task's store as opened (or restored): its stream time is the
    /// largest time it holds, and whatever that expires is removed.
    fn open(&self, raw: &dyn RawStore) -> Result<AggState, StoreError> {
        let all = raw.range(Bound::Unbounded, Bound::Unbounded)?;
        let timed: Vec<(Bytes, i64)> = all
            .into_iter()
            .filter_map(|(k, _)| self.time_of(&k).map(|t| (k, t)))
            .collect();
        let store_time = timed.iter().map(|(_, t)| *t).fold(NO_TIMESTAMP, i64::max);
        let horizon = self.horizon(store_time);
        for (k, t) in timed {
            if t <= horizon {
                raw.delete(&k)?;
            }
        }
        Ok(AggState {
            observed: NO_TIMESTAMP,
            store_time,
            swept: horizon,
        })
    }

    /// Removes the expired windows of key `kb` (what Kafka's store would no longer return).
    fn expire_key(&self, ctx: &mut Ctx, store: &str, kb: &[u8], state: &AggState) {
        let horizon = self.horizon(state.store_time);
        let layout = self.layout;
        ctx.with_store(store, |raw| {
            let found = match layout {
                Layout::Window => suffixed_range(
                    raw,
                    kb,
                    8,
                    &window_key(&[], i64::MIN),
                    &window_key(&[], horizon),
                )?,
                Layout::Session => suffixed_range(
                    raw,
                    kb,
                    16,
                    &session_key(&[], i64::MIN, i64::MIN),
                    &session_key(&[], i64::MAX, horizon),
                )?,
            };
            for (k, _) in found {
                raw.delete(&k)?;
            }
            Ok(())
        });
    }

    /// Sweeps the whole store when the horizon has moved half a retention since the last
    /// sweep.
    fn maybe_sweep(&self, ctx: &mut Ctx, store: &str, state: &mut AggState) {
        let horizon = self.horizon(state.store_time);
        let every = (self.retention_ms / 2).max(1);
        if horizon < state.swept.saturating_add(every) {
            return;
        }
        let swept = ctx.with_store(store, |raw| {
            for (k, _) in raw.range(Bound::Unbounded, Bound::Unbounded)? {
                if self.time_of(&k).is_some_and(|t| t <= horizon) {
                    raw.delete(&k)?;
                }
            }
            Ok(())
        });
        if swept.is_some() {
            state.swept = horizon;
        }
    }
}

/// `aggregate(key, value, current)`: the new aggregate (`None`: the initializer's).
type Step<K, V, VA> = Arc<dyn Fn(&K, V, Option<VA>) -> VA + Send + Sync>;
/// `merge(key, merged so far, session)` (`None`: the initializer's), for sessions.
type Merge<K, VA> = Arc<dyn Fn(&K, Option<VA>, VA) -> VA + Send + Sync>;

/// What the windowed processors share: the store, its expiry, and the per-task state.
struct Agg<K, VA> {
    access: KvAccess<K, VA>,
    expiry: Expiry,
    local: TaskLocal<AggState>,
}

impl<K: Clone + 'static, VA: Clone + 'static> Agg<K, VA> {
    /// Starts a record: its key bytes (a null key is dropped and counted, as Kafka
    /// does), the task's state with this record's time observed, its key's expired
    /// windows removed.
    fn begin(&self, ctx: &mut Ctx, key: &K) -> Option<(Bytes, Arc<dyn RawStore>, AggState)> {
        let Some(kb) = self.access.key_bytes(ctx, key) else {
            if ctx.failure.is_none() {
                ctx.task.dropped_records += 1;
                tracing::debug!(
                    task = %ctx.task.id, topic = %ctx.topic, partition = ctx.partition,
                    offset = ctx.offset, "skipping record due to null key"
                );
            }
            return None;
        };
        let expiry = self.expiry;
        let (raw, mut state) = self
            .local
            .take(ctx, &self.access.name, |raw| expiry.open(raw))?;
        state.observed = state.observed.max(ctx.timestamp);
        self.expiry.expire_key(ctx, &self.access.name, &kb, &state);
        Some((kb, raw, state))
    }

    /// Ends a record: sweeps if due and keeps the state.
    fn end(&self, ctx: &mut Ctx, raw: &Arc<dyn RawStore>, mut state: AggState) {
        if ctx.failure.is_none() {
            self.expiry.maybe_sweep(ctx, &self.access.name, &mut state);
        }
        self.local.put_back(ctx.task.id, raw, state);
    }

    /// The aggregate stored under `store_key` and its timestamp.
    fn get(&self, ctx: &mut Ctx, store_key: &[u8]) -> Option<(VA, i64)> {
        self.access.get(ctx, store_key)
    }

    /// Decodes a stored value found by a range read.
    fn decode(&self, ctx: &mut Ctx, stored: &Bytes) -> Option<(VA, i64)> {
        let (ts, bytes) = match unstamp(&self.access.name, stored) {
            Ok(v) => v,
            Err(source) => {
                ctx.fail(StreamsError::Store {
                    store: self.access.name.clone(),
                    source,
                });
                return None;
            }
        };
        match self
            .access
            .value
            .deserialize(&self.access.name, Some(&bytes))
        {
            Ok(v) => Some((v, ts)),
            Err(source) => {
                ctx.fail(StreamsError::StoreSerde {
                    store: self.access.name.clone(),
                    source,
                });
                None
            }
        }
    }
}

/// Forwards `(k, v)` with timestamp `ts`, the record's own restored afterwards.
fn emit<K, V>(ctx: &mut Ctx, down: &Forward<K, V>, k: K, v: V, ts: i64) {
    let input = std::mem::replace(&mut ctx.timestamp, ts);
    down(ctx, k, v);
    ctx.timestamp = input;
}

/// Drops the record for a closed window: logged and counted (Kafka's
/// `logSkippedRecordForExpiredWindow`).
fn skip_late(ctx: &mut Ctx, window: Window, close: i64, observed: i64) {
    ctx.task.dropped_records += 1;
    tracing::debug!(
        task = %ctx.task.id, topic = %ctx.topic, partition = ctx.partition, offset = ctx.offset,
        timestamp = ctx.timestamp, window_start = window.start, window_end = window.end,
        expiration = close, stream_time = observed, "skipping record for expired window"
    );
}

/// The tumbling or hopping window processor (Kafka's `KStreamWindowAggregate`): the
/// record is aggregated into each of its windows that has not closed
/// (`end > stream time - grace`).
fn time_windows<K, V, VA>(windows: TimeWindows, agg: Agg<K, VA>, step: Step<K, V, VA>) -> BuildFn
where
    K: Clone + 'static,
    V: Clone + 'static,
    VA: Clone + 'static,
{
    build_with(move |down: Forward<Windowed<K>, Change<VA>>| {
        forward(move |ctx, k: K, v: V| {
            let Some((kb, raw, mut state)) = agg.begin(ctx, &k) else {
                return;
            };
            let ts = ctx.timestamp;
            let close = state.observed.saturating_sub(windows.grace_ms());
            for w in windows.windows_for(ts) {
                if ctx.failure.is_some() {
                    break;
                }
                if w.end <= close {
                    skip_late(ctx, w, close, state.observed);
                    continue;
                }
                let wk = window_key(&kb, w.start);
                let found = agg.get(ctx, &wk);
                if ctx.failure.is_some() {
                    break;
                }
                let (old, new_ts) = match found {
                    Some((a, t)) => (Some(a), t.max(ts)),
                    None => (None, ts),
                };
                let new = step(&k, v.clone(), old.clone());
                agg.access.put(ctx, wk, Some(&new), new_ts);
                if ctx.failure.is_some() {
                    break;
                }
                state.store_time = state.store_time.max(w.start);
                let change = Change {
                    new: Some(new),
                    old,
                };
                emit(ctx, &down, Windowed::new(k.clone(), w), change, new_ts);
            }
            agg.end(ctx, &raw, state);
        })
    })
}

/// One record's pass through the sliding window processor.
struct Slide<'a, K, V, VA> {
    agg: &'a Agg<K, VA>,
    step: &'a Step<K, V, VA>,
    down: &'a Forward<Windowed<K>, Change<VA>>,
    kb: &'a Bytes,
    key: &'a K,
    value: &'a V,
    ts: i64,
    diff: i64,
    close: i64,
}

impl<K, V, VA> Slide<'_, K, V, VA>
where
    K: Clone + 'static,
    V: Clone + 'static,
    VA: Clone + 'static,
{
    fn window(&self, start: i64) -> Window {
        Window::new(start, start.saturating_add(self.diff))
    }

    /// Adds the record to window `start`, from `seed` (the aggregate to start from and its
    /// timestamp; `None`: the initializer); `existed` says whether the window was in the
    /// store (else the change has no old value). Closed windows (`end < stream time -
    /// grace`) drop the record.
    fn update(
        &self,
        ctx: &mut Ctx,
        state: &mut AggState,
        start: i64,
        seed: Option<(VA, i64)>,
        existed: bool,
    ) {
        let w = self.window(start);
        if w.end < self.close {
            skip_late(ctx, w, self.close, state.observed);
            return;
        }
        let (seed, new_ts) = match seed {
            Some((a, t)) => (Some(a), t.max(self.ts)),
            None => (None, self.ts),
        };
        let new = (self.step)(self.key, self.value.clone(), seed.clone());
        self.agg
            .access
            .put(ctx, window_key(self.kb, start), Some(&new), new_ts);
        if ctx.failure.is_some() {
            return;
        }
        state.store_time = state.store_time.max(start);
        let old = if existed { seed } else { None };
        let change = Change {
            new: Some(new),
            old,
        };
        emit(
            ctx,
            self.down,
            Windowed::new(self.key.clone(), w),
            change,
            new_ts,
        );
    }

    /// Creates the record's right window (the records after it, within the time
    /// difference) holding `right`: the aggregate of those records and their largest
    /// timestamp. The record itself is not in it.
    fn create_right(&self, ctx: &mut Ctx, state: &mut AggState, right: (VA, i64)) {
        let start = self.ts.saturating_add(1);
        let (value, ts) = right;
        self.agg
            .access
            .put(ctx, window_key(self.kb, start), Some(&value), ts);
        if ctx.failure.is_some() {
            return;
        }
        state.store_time = state.store_time.max(start);
        let change = Change {
            new: Some(value),
            old: None,
        };
        emit(
            ctx,
            self.down,
            Windowed::new(self.key.clone(), self.window(start)),
            change,
            ts,
        );
    }

    /// The key's windows starting from `from` to `to`, by start, decoded.
    fn fetch(&self, ctx: &mut Ctx, from: i64, to: i64) -> Option<Vec<(i64, VA, i64)>> {
        let name = &self.agg.access.name;
        let kb = self.kb;
        let found = ctx.with_store(name, |raw| fetch_windows(raw, kb, from, to))?;
        let mut out = Vec::with_capacity(found.len());
        for (start, stored) in found {
            let (agg, ts) = self.agg.decode(ctx, &stored)?;
            out.push((start, agg, ts));
        }
        Some(out)
    }

    /// Kafka's `processReverse`: the key's windows from `ts - 2 * diff` to `ts + 1`,
    /// latest first, are updated if they hold the record; the record's left window (ending
    /// at it), its right window, and the right window of the record before it are created
    /// where missing.
    fn process(&self, ctx: &mut Ctx, state: &mut AggState) {
        let (ts, diff) = (self.ts, self.diff);
        let from = ts.saturating_sub(diff.saturating_mul(2)).max(0);
        let Some(mut windows) = self.fetch(ctx, from, ts.saturating_add(1)) else {
            return;
        };
        windows.reverse();
        let mut starts = HashSet::new();
        let mut left_agg: Option<(VA, i64)> = None;
        let mut right_agg: Option<(VA, i64)> = None;
        let (mut left_exists, mut right_exists) = (false, false);
        let mut previous: Option<i64> = None;
        for (start, agg, max_ts) in windows {
            if ctx.failure.is_some() {
                return;
            }
            starts.insert(start);
            let end = start.saturating_add(diff);
            if start == ts.saturating_add(1) {
                right_exists = true;
            } else if end > ts {
                if right_agg.is_none() {
                    right_agg = Some((agg.clone(), max_ts));
                }
                self.update(ctx, state, start, Some((agg, max_ts)), true);
            } else if end == ts {
                left_exists = true;
                self.update(ctx, state, start, Some((agg, max_ts)), true);
                if max_ts < ts {
                    previous = Some(max_ts);
                } else {
                    // A record at the same time made the windows this one needs.
                    return;
                }
            } else {
                left_agg = Some((agg, max_ts));
                previous = Some(max_ts);
                break;
            }
        }
        if ctx.failure.is_some() {
            return;
        }
        if let Some(prev) = previous {
            // The previous record's right window, if it misses and holds this record.
            let start = prev.saturating_add(1);
            if !starts.contains(&start) && start.saturating_add(diff) >= ts {
                self.update(ctx, state, start, None, false);
            }
        }
        if !left_exists {
            let seed = match (previous, left_agg) {
                (Some(prev), Some((agg, _))) if ts.saturating_sub(diff) <= prev => Some((agg, ts)),
                _ => None,
            };
            self.update(ctx, state, ts.saturating_sub(diff), seed, false);
        }
        if let Some(right) = right_agg.filter(|(_, t)| !right_exists && *t > ts) {
            self.create_right(ctx, state, right);
        }
    }

    /// Kafka's `processEarly`, for a record earlier than the time difference: its left
    /// window would start before 0, so the window `[0, diff]` holds every such record.
    fn process_early(&self, ctx: &mut Ctx, state: &mut AggState) {
        let ts = self.ts;
        let Some(windows) = self.fetch(ctx, 0, ts.saturating_add(1)) else {
            return;
        };
        let mut starts = HashSet::new();
        let mut combined: Option<(VA, i64)> = None;
        let mut right_agg: Option<(VA, i64)> = None;
        let mut right_exists = false;
        let mut previous: Option<i64> = None;
        for (start, agg, max_ts) in windows {
            if ctx.failure.is_some() {
                return;
            }
            starts.insert(start);
            if start == 0 {
                if max_ts < ts {
                    previous = Some(max_ts);
                }
                combined = Some((agg, max_ts));
            } else if start <= ts {
                right_agg = Some((agg.clone(), max_ts));
                self.update(ctx, state, start, Some((agg, max_ts)), true);
            } else {
                right_exists = true;
            }
        }
        if ctx.failure.is_some() {
            return;
        }
        if right_agg.is_none() {
            right_agg = combined.clone().filter(|(_, t)| *t > ts);
        }
        if let Some(right) = right_agg.filter(|(_, t)| !right_exists && *t > ts) {
            self.create_right(ctx, state, right);
        }
        if let Some(prev) = previous {
            let start = prev.saturating_add(1);
            if !starts.contains(&start) {
                self.update(ctx, state, start, None, false);
            }
        }
        match combined {
            None => self.update(ctx, state, 0, None, false),
            Some(c) => self.update(ctx, state, 0, Some(c), true),
        }
    }
}

/// The sliding window processor (Kafka's `KStreamSlidingWindowAggregate`, KIP-450).
fn sliding_windows<K, V, VA>(
    windows: SlidingWindows,
    agg: Agg<K, VA>,
    step: Step<K, V, VA>,
) -> BuildFn
where
    K: Clone + 'static,
    V: Clone + 'static,
    VA: Clone + 'static,
{
    let diff = windows.time_difference_ms();
    let grace = windows.grace_ms();
    build_with(move |down: Forward<Windowed<K>, Change<VA>>| {
        forward(move |ctx, k: K, v: V| {
            let Some((kb, raw, mut state)) = agg.begin(ctx, &k) else {
                return;
            };
            let ts = ctx.timestamp;
            let close = state.observed.saturating_sub(grace);
            let slide = Slide {
                agg: &agg,
                step: &step,
                down: &down,
                kb: &kb,
                key: &k,
                value: &v,
                ts,
                diff,
                close,
            };
            if ts.saturating_add(diff) < close {
                // Even the record's right-most window has closed.
                skip_late(ctx, slide.window(ts), close, state.observed);
            } else if ts < 0 {
                // Kafka fails the task here; a window cannot start before 0.
                ctx.task.dropped_records += 1;
                tracing::debug!(
                    task = %ctx.task.id, topic = %ctx.topic, partition = ctx.partition,
                    offset = ctx.offset, timestamp = ts,
                    "skipping record with a negative timestamp for sliding windows"
                );
            } else if ts < diff {
                slide.process_early(ctx, &mut state);
            } else {
                slide.process(ctx, &mut state);
            }
            agg.end(ctx, &raw, state);
        })
    })
}

/// The session window processor (Kafka's `KStreamSessionWindowAggregate`): the record's
/// sessions (those ending at most a gap before it and starting at most a gap after it)
/// are merged with it into one session; the merged ones are deleted (and forwarded as
/// deletes), the new one stored and forwarded with its end as timestamp.
fn session_windows<K, V, VA>(
    windows: SessionWindows,
    agg: Agg<K, VA>,
    step: Step<K, V, VA>,
    merge: Merge<K, VA>,
) -> BuildFn
where
    K: Clone + 'static,
    V: Clone + 'static,
    VA: Clone + 'static,
{
    let gap = windows.inactivity_gap_ms();
    let grace = windows.grace_ms();
    build_with(move |down: Forward<Windowed<K>, Change<VA>>| {
        forward(move |ctx, k: K, v: V| {
            let Some((kb, raw, mut state)) = agg.begin(ctx, &k) else {
                return;
            };
            let ts = ctx.timestamp;
            let close = state.observed.saturating_sub(grace).saturating_sub(gap);
            let name = agg.access.name.clone();
            let found = ctx.with_store(&name, |raw| {
                find_sessions(raw, &kb, ts.saturating_sub(gap), ts.saturating_add(gap))
            });
            let mut sessions = Vec::new();
            for (start, end, stored) in found.unwrap_or_default() {
                match agg.decode(ctx, &stored) {
                    Some((value, _)) => sessions.push((Window::new(start, end), value)),
                    None => break,
                }
            }
            if ctx.failure.is_none() {
                let record = Window::new(ts, ts);
                let mut merged = record;
                let mut running: Option<VA> = None;
                for (w, value) in &sessions {
                    running = Some(merge(&k, running, value.clone()));
                    merged = Window::new(merged.start.min(w.start), merged.end.max(w.end));
                }
                if merged.end < close {
                    skip_late(ctx, merged, close, state.observed);
                } else {
                    // The old value of a session rewritten in place (a record at the time of
                    // a one-record session); Kafka forwards none.
                    let mut old = None;
                    for (w, value) in sessions {
                        if merged == record {
                            old = Some(value);
                            continue;
                        }
                        if ctx.failure.is_some() {
                            break;
                        }
                        agg.access
                            .put(ctx, session_key(&kb, w.start, w.end), None, w.end);
                        let change = Change {
                            new: None,
                            old: Some(value),
                        };
                        emit(ctx, &down, Windowed::new(k.clone(), w), change, w.end);
                    }
                    if ctx.failure.is_none() {
                        let new = step(&k, v, running);
                        let sk = session_key(&kb, merged.start, merged.end);
                        agg.access.put(ctx, sk, Some(&new), merged.end);
                        if ctx.failure.is_none() {
                            state.store_time = state.store_time.max(merged.end);
                            let change = Change {
                                new: Some(new),
                                old,
                            };
                            emit(ctx, &down, Windowed::new(k, merged), change, merged.end);
                        }
                    }
                }
            }
            agg.end(ctx, &raw, state);
        })
    })
}

/// What a windowed aggregation node needs besides its processor.
struct Plan<K, VA> {
    /// `KSTREAM-AGGREGATE-` or `KSTREAM-REDUCE-`.
    prefix: &'static str,
    /// Takes a store name first, as Kafka's `count(Materialized)` does with an unnamed
    /// store ("we used to burn a topology name here").
    burn: bool,
    materialized: Materialized<K, VA>,
    /// Why the windows are invalid, if they are.
    invalid: Option<String>,
    layout: Layout,
    /// The smallest retention the windows allow (and the default), and how Kafka words
    /// the requirement.
    min_retention_ms: i64,
    requirement: String,
    /// How long after its end a window closes (what `suppress` waits for).
    close_after_ms: i64,
}

/// Adds a windowed aggregation below `stream` (through a repartition topic if its key
/// changed, as Kafka's `GroupedStreamAggregateBuilder` does) and returns its table.
fn build<K, V, VA>(
    stream: &KStream<K, V>,
    grouped: &Grouped<K, V>,
    plan: Plan<K, VA>,
    window_key_serde: impl FnOnce(Arc<dyn Serde<K>>) -> Arc<dyn Serde<Windowed<K>>>,
    make: impl FnOnce(Agg<K, VA>) -> BuildFn,
) -> KTable<Windowed<K>, VA>
where
    K: Clone + 'static,
    V: Clone + 'static,
    VA: Clone + 'static,
{
    let graph = stream.graph.clone();
    let Plan {
        prefix,
        burn,
        materialized,
        ..
    } = plan;
    // Kafka's order: the store's name, the processor's, then the repartition nodes.
    let (store_name, name) = {
        let mut g = graph.lock();
        if burn {
            g.next_name("KSTREAM-AGGREGATE-STATE-STORE-");
        }
        let store = match &materialized.name {
            Some(n) => n.clone(),
            None => g.next_name(&format!("{prefix}STATE-STORE-")),
        };
        (store, g.next_name(prefix))
    };
    let prefix_for_topic = grouped.name.clone().unwrap_or(store_name.clone());
    let input = stream.repartitioned(
        &prefix_for_topic,
        grouped.key.clone(),
        grouped.value.clone(),
    );
    let Some(value) = materialized.value.clone() else {
        graph.lock().errors.push(format!(
            "the aggregation {name} needs a value serde for its store (Materialized::with_value_serde)"
        ));
        return KTable::at(graph, input.node, None);
    };
    let retention_ms = materialized.retention_ms.unwrap_or(plan.min_retention_ms);
    let mut g = graph.lock();
    if let Some(reason) = plan.invalid {
        g.errors
            .push(format!("the windows of {name} are invalid: {reason}"));
    }
    if retention_ms < plan.min_retention_ms {
        g.errors.push(format!(
            "The retention period of the {} store {store_name} must be no smaller than {}, \
             retention=[{retention_ms}]",
            match plan.layout {
                Layout::Window => "window",
                Layout::Session => "session",
            },
            plan.requirement
        ));
    }
    let access = KvAccess {
        name: store_name.clone(),
        key: materialized
            .key
            .clone()
            .unwrap_or_else(|| grouped.key.clone()),
        value,
    };
    let kind = match plan.layout {
        Layout::Window => StoreKind::Window { retention_ms },
        Layout::Session => StoreKind::Session { retention_ms },
    };
    g.add_store(materialized.spec(&store_name, kind));
    let agg = Agg {
        access: access.clone(),
        expiry: Expiry {
            layout: plan.layout,
            retention_ms,
        },
        local: TaskLocal::default(),
    };
    let node = g.add(
        name,
        NodeKind::Processor {
            stores: vec![store_name.clone()],
        },
        &[input.node],
        make(agg),
    );
    drop(g);
    let mut table = KTable::at(graph, node, None);
    table.key_serde = Some(window_key_serde(access.key));
    table.value_serde = Some(access.value);
    table.windowed = Some(WindowedTable {
        store: Some(store_name),
        close_after_ms: plan.close_after_ms,
    });
    table
}

impl<K, V> KGroupedStream<K, V>
where
    K: Clone + 'static,
    V: Clone + 'static,
{
    /// Aggregates per tumbling or hopping window (Kafka's `windowedBy(TimeWindows)`).
    pub fn windowed_by(&self, windows: TimeWindows) -> TimeWindowedKStream<K, V> {
        TimeWindowedKStream {
            stream: self.stream.clone(),
            grouped: self.grouped.clone(),
            windows: TimeLike::Fixed(windows),
        }
    }

    /// Aggregates per sliding window (Kafka's `windowedBy(SlidingWindows)`).
    pub fn windowed_by_sliding(&self, windows: SlidingWindows) -> TimeWindowedKStream<K, V> {
        TimeWindowedKStream {
            stream: self.stream.clone(),
            grouped: self.grouped.clone(),
            windows: TimeLike::Sliding(windows),
        }
    }

    /// Aggregates per session (Kafka's `windowedBy(SessionWindows)`).
    pub fn windowed_by_session(&self, windows: SessionWindows) -> SessionWindowedKStream<K, V> {
        SessionWindowedKStream {
            stream: self.stream.clone(),
            grouped: self.grouped.clone(),
            windows,
        }
    }
}

#[derive(Debug, Clone)]
enum TimeLike {
    Fixed(TimeWindows),
    Sliding(SlidingWindows),
}

/// A grouped stream cut into time windows, tumbling, hopping or sliding (Kafka's
/// `TimeWindowedKStream<K, V>`).
pub struct TimeWindowedKStream<K, V> {
    stream: KStream<K, V>,
    grouped: Grouped<K, V>,
    windows: TimeLike,
}

impl<K, V> TimeWindowedKStream<K, V>
where
    K: Clone + 'static,
    V: Clone + 'static,
{
    /// The number of records per key and window (`KSTREAM-AGGREGATE-`).
    /// `Materialized::default()` names nodes as Kafka's `count()` does; any other unnamed
    /// `Materialized` as `count(Materialized)` does, which takes one more counter value.
    pub fn count(&self, materialized: Materialized<K, i64>) -> KTable<Windowed<K>, i64> {
        let burn = matches!(self.windows, TimeLike::Fixed(_))
            && materialized.name.is_none()
            && !materialized.is_default();
        let materialized = Materialized {
            value: materialized.value.or_else(|| Some(Arc::new(I64Serde))),
            ..materialized
        };
        self.aggregate_with(
            "KSTREAM-AGGREGATE-",
            burn,
            materialized,
            Arc::new(|_, _, n: Option<i64>| n.unwrap_or(0) + 1),
        )
    }

    /// Each key's records per window combined by `reducer(aggregate, value)`, the first
    /// record's value as the start (`KSTREAM-REDUCE-`).
    pub fn reduce(
        &self,
        reducer: impl Fn(V, V) -> V + Send + Sync + 'static,
        materialized: Materialized<K, V>,
    ) -> KTable<Windowed<K>, V> {
        let materialized = Materialized {
            value: materialized
                .value
                .or_else(|| Some(self.grouped.value.clone())),
            ..materialized
        };
        self.aggregate_with(
            "KSTREAM-REDUCE-",
            false,
            materialized,
            Arc::new(move |_, v, agg| match agg {
                Some(a) => reducer(a, v),
                None => v,
            }),
        )
    }

    /// Each key's records per window folded by `aggregator(key, value, aggregate)` from
    /// `initializer()` (`KSTREAM-AGGREGATE-`). `materialized` must give the aggregate's
    /// value serde.
    pub fn aggregate<VA>(
        &self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        aggregator: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        materialized: Materialized<K, VA>,
    ) -> KTable<Windowed<K>, VA>
    where
        VA: Clone + 'static,
    {
        self.aggregate_with(
            "KSTREAM-AGGREGATE-",
            false,
            materialized,
            Arc::new(move |k, v, agg| aggregator(k, v, agg.unwrap_or_else(&initializer))),
        )
    }

    fn aggregate_with<VA>(
        &self,
        prefix: &'static str,
        burn: bool,
        materialized: Materialized<K, VA>,
        step: Step<K, V, VA>,
    ) -> KTable<Windowed<K>, VA>
    where
        VA: Clone + 'static,
    {
        match &self.windows {
            TimeLike::Fixed(w) => {
                let (size, grace) = (w.size_ms(), w.grace_ms());
                let plan = Plan {
                    prefix,
                    burn,
                    materialized,
                    invalid: w.invalid.clone(),
                    layout: Layout::Window,
                    min_retention_ms: size.saturating_add(grace),
                    requirement: format!(
                        "its window size plus the grace period. Got size=[{size}], \
                         grace=[{grace}]"
                    ),
                    close_after_ms: grace,
                };
                let windows = w.clone();
                build(
                    &self.stream,
                    &self.grouped,
                    plan,
                    move |key| {
                        Arc::new(TimeWindowedSerde::new(
                            Shared(key),
                            std::time::Duration::from_millis(size.max(0) as u64),
                        ))
                    },
                    move |agg| time_windows(windows, agg, step),
                )
            }
            TimeLike::Sliding(w) => {
                let (diff, grace) = (w.time_difference_ms(), w.grace_ms());
                let plan = Plan {
                    prefix,
                    burn,
                    materialized,
                    invalid: w.invalid.clone(),
                    layout: Layout::Window,
                    min_retention_ms: diff.saturating_mul(2).saturating_add(grace),
                    requirement: format!(
                        "2 * time difference plus the grace period. Got time \
                         difference=[{diff}], grace=[{grace}]"
                    ),
                    close_after_ms: grace,
                };
                let windows = w.clone();
                build(
                    &self.stream,
                    &self.grouped,
                    plan,
                    move |key| {
                        Arc::new(TimeWindowedSerde::new(
                            Shared(key),
                            std::time::Duration::from_millis(diff.max(0) as u64),
                        ))
                    },
                    move |agg| sliding_windows(windows, agg, step),
                )
            }
        }
    }
}

/// A grouped stream cut into sessions (Kafka's `SessionWindowedKStream<K, V>`).
pub struct SessionWindowedKStream<K, V> {
    stream: KStream<K, V>,
    grouped: Grouped<K, V>,
    windows: SessionWindows,
}

impl<K, V> SessionWindowedKStream<K, V>
where
    K: Clone + 'static,
    V: Clone + 'static,
{
    /// The number of records per key and session (`KSTREAM-AGGREGATE-`); merged
    /// sessions add up. `Materialized::default()` names nodes as Kafka's `count()`.
    pub fn count(&self, materialized: Materialized<K, i64>) -> KTable<Windowed<K>, i64> {
        let burn = materialized.name.is_none() && !materialized.is_default();
        let materialized = Materialized {
            value: materialized.value.or_else(|| Some(Arc::new(I64Serde))),
            ..materialized
        };
        self.aggregate_with(
            "KSTREAM-AGGREGATE-",
            burn,
            materialized,
            Arc::new(|_, _, n: Option<i64>| n.unwrap_or(0) + 1),
            Arc::new(|_, a: Option<i64>, b| a.unwrap_or(0) + b),
        )
    }

    /// Each key's records per session combined by `reducer(aggregate, value)`; merged
    /// sessions are combined by the reducer too (`KSTREAM-REDUCE-`).
    pub fn reduce(
        &self,
        reducer: impl Fn(V, V) -> V + Send + Sync + 'static,
        materialized: Materialized<K, V>,
    ) -> KTable<Windowed<K>, V> {
        let materialized = Materialized {
            value: materialized
                .value
                .or_else(|| Some(self.grouped.value.clone())),
            ..materialized
        };
        let reducer = Arc::new(reducer);
        let r = reducer.clone();
        self.aggregate_with(
            "KSTREAM-REDUCE-",
            false,
            materialized,
            Arc::new(move |_, v, agg| match agg {
                Some(a) => r(a, v),
                None => v,
            }),
            Arc::new(move |_, a, b| match a {
                Some(a) => reducer(a, b),
                None => b,
            }),
        )
    }

    /// Each key's records per session folded by `aggregator(key, value, aggregate)` from
    /// `initializer()`; sessions that a record joins are combined by
    /// `merger(key, aggregate, other)` (`KSTREAM-AGGREGATE-`). `materialized` must give
    /// the aggregate's value serde.
    pub fn aggregate<VA>(
        &self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        aggregator: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        merger: impl Fn(&K, VA, VA) -> VA + Send + Sync + 'static,
        materialized: Materialized<K, VA>,
    ) -> KTable<Windowed<K>, VA>
    where
        VA: Clone + 'static,
    {
        let initializer = Arc::new(initializer);
        let init = initializer.clone();
        self.aggregate_with(
            "KSTREAM-AGGREGATE-",
            false,
            materialized,
            Arc::new(move |k, v, agg| aggregator(k, v, agg.unwrap_or_else(|| initializer()))),
            Arc::new(move |k, a, b| merger(k, a.unwrap_or_else(|| init()), b)),
        )
    }

    fn aggregate_with<VA>(
        &self,
        prefix: &'static str,
        burn: bool,
        materialized: Materialized<K, VA>,
        step: Step<K, V, VA>,
        merge: Merge<K, VA>,
    ) -> KTable<Windowed<K>, VA>
    where
        VA: Clone + 'static,
    {
        let w = &self.windows;
        let (gap, grace) = (w.inactivity_gap_ms(), w.grace_ms());
        let plan = Plan {
            prefix,
            burn,
            materialized,
            invalid: w.invalid.clone(),
            layout: Layout::Session,
            min_retention_ms: gap.saturating_add(grace),
            requirement: format!(
                "the session inactivity gap plus the grace period. Got gap=[{gap}], \
                 grace=[{grace}]"
            ),
            close_after_ms: gap.saturating_add(grace),
        };
        let windows = w.clone();
        build(
            &self.stream,
            &self.grouped,
            plan,
            |key| Arc::new(SessionWindowedSerde(Shared(key))),
            move |agg| session_windows(windows, agg, step, merge),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{stamp, MemoryStore, StoreSpec};
    use crate::task::{Store, Task};

    fn task_with(raw: Arc<dyn RawStore>) -> Task {
        let mut task = Task::stateless(TaskId {
            subtopology: 0,
            partition: 0,
        });
        let spec = Arc::new(StoreSpec {
            name: "s".into(),
            kind: StoreKind::Window { retention_ms: 10 },
            persistent: false,
            logged: false,
        });
        task.stores.insert(
            "s".into(),
            Store {
                spec,
                raw,
                changelog: None,
            },
        );
        task
    }

    fn ctx(task: Task) -> Ctx {
        let r = strom_client::ConsumerRecord {
            topic: "t".into(),
            partition: 0,
            offset: 0,
            timestamp: 0,
            key: None,
            value: None,
            headers: Vec::new(),
        };
        Ctx::new(&r, task)
    }

    #[test]
    fn task_state_is_kept_for_its_store_and_renewed_for_another() {
        let local = TaskLocal::<u32>::default();
        let mut c = ctx(task_with(Arc::new(MemoryStore::default())));
        let (raw, n) = local.take(&mut c, "s", |_| Ok(1)).unwrap();
        local.put_back(c.task.id, &raw, n + 1);
        let (raw, n) = local.take(&mut c, "s", |_| Ok(1)).unwrap();
        assert_eq!(n, 2, "the same store keeps its state");
        local.put_back(c.task.id, &raw, n);
        drop(raw);
        // The task reopened: a new store instance, fresh state.
        let mut c = ctx(task_with(Arc::new(MemoryStore::default())));
        let (_, n) = local.take(&mut c, "s", |_| Ok(1)).unwrap();
        assert_eq!(n, 1);
        assert!(local.take(&mut c, "missing", |_| Ok(1)).is_none());
        assert!(c.failure.is_some());
    }

    #[test]
    fn an_opened_store_takes_its_latest_window_as_stream_time() {
        let s = MemoryStore::default();
        for (k, start) in [("a", 0), ("a", 10), ("b", 5), ("b", 20)] {
            s.put(window_key(k.as_bytes(), start), stamp(start, b"v"))
                .unwrap();
        }
        let expiry = Expiry {
            layout: Layout::Window,
            retention_ms: 10,
        };
        let state = expiry.open(&s).unwrap();
        assert_eq!(
            (state.observed, state.store_time, state.swept),
            (-1, 20, 10)
        );
        // Starts at or before 20 - 10 are gone.
        let left: Vec<i64> = s
            .range(Bound::Unbounded, Bound::Unbounded)
            .unwrap()
            .iter()
            .filter_map(|(k, _)| split_window_key(k).map(|(_, t)| t))
            .collect();
        assert_eq!(left, vec![20]);

        let sessions = MemoryStore::default();
        sessions
            .put(session_key(b"k", 0, 4), stamp(4, b"v"))
            .unwrap();
        sessions
            .put(session_key(b"k", 3, 30), stamp(30, b"v"))
            .unwrap();
        let expiry = Expiry {
            layout: Layout::Session,
            retention_ms: 26,
        };
        let state = expiry.open(&sessions).unwrap();
        assert_eq!(state.store_time, 30);
        assert_eq!(sessions.approximate_len(), 1);
    }
}
