//! Suppression: [`KTable::suppress`] holds a table's updates back and forwards each key's
//! latest one later (Kafka's `KTableSuppressProcessor` over its
//! `InMemoryTimeOrderedKeyValueChangeBuffer`):
//!
//! - [`Suppressed::until_window_closes`] emits a windowed table's final result: one record
//!   per window, once stream time reaches the window's end plus the grace period (plus
//!   the inactivity gap for sessions). Deletes (merged-away sessions) are not emitted.
//! - [`Suppressed::until_time_limit`] emits a key's latest update once stream time is the
//!   limit past the key's first buffered update (a rate limit); deletes are emitted.
//!
//! Stream time is the processor's own: the largest timestamp of the updates it has seen in
//! its task. An emitted record carries the timestamp, headers and origin of the update it
//! holds. The buffer is a key-value store (`KTABLE-SUPPRESS-STATE-STORE-`), in memory and
//! logged unless logging is disabled, so a restored task finds what it held: each entry is
//! the key's bytes mapped to the buffer time, the latest new value, the value before the
//! first buffered update, and the record context. A bounded buffer emits its oldest
//! entries early when full (Kafka's `emitEarlyWhenFull`).

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::StreamsError;
use crate::ktable::{Change, KTable};
use crate::kwindowed::TaskLocal;
use crate::serdes::Serde;
use crate::state::{unstamp, RawStore, StoreError, StoreKind, StoreSpec};
use crate::topology::{build_with, forward, Ctx, Forward, NodeKind};
use crate::windows::Windowed;

/// A bound on a suppression buffer; a bounded buffer emits its oldest entries early when
/// full (Kafka's `BufferConfig` / `EagerBufferConfig`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BufferConfig {
    max_records: u64,
    max_bytes: u64,
    logging: bool,
}

/// An unbounded buffer, as waiting for windows to close requires (Kafka's
/// `StrictBufferConfig` from `BufferConfig.unbounded()`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrictBufferConfig {
    logging: bool,
}

impl BufferConfig {
    /// No bound (Kafka's `unbounded()`).
    pub fn unbounded() -> StrictBufferConfig {
        StrictBufferConfig { logging: true }
    }

    /// At most `n` keys buffered.
    pub fn max_records(n: u64) -> BufferConfig {
        BufferConfig {
            max_records: n,
            max_bytes: u64::MAX,
            logging: true,
        }
    }

    /// At most `n` bytes buffered (keys and buffered values).
    pub fn max_bytes(n: u64) -> BufferConfig {
        BufferConfig {
            max_records: u64::MAX,
            max_bytes: n,
            logging: true,
        }
    }

    /// Also at most `n` keys.
    pub fn with_max_records(mut self, n: u64) -> BufferConfig {
        self.max_records = n;
        self
    }

    /// Also at most `n` bytes.
    pub fn with_max_bytes(mut self, n: u64) -> BufferConfig {
        self.max_bytes = n;
        self
    }

    /// No changelog for the buffer: a restarted task loses what it held.
    pub fn with_logging_disabled(mut self) -> BufferConfig {
        self.logging = false;
        self
    }
}

impl StrictBufferConfig {
    /// No changelog for the buffer: a restarted task loses what it held.
    pub fn with_logging_disabled(mut self) -> StrictBufferConfig {
        self.logging = false;
        self
    }
}

impl From<StrictBufferConfig> for BufferConfig {
    fn from(s: StrictBufferConfig) -> BufferConfig {
        BufferConfig {
            max_records: u64::MAX,
            max_bytes: u64::MAX,
            logging: s.logging,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Until {
    /// The window's end plus the table's grace (found upstream).
    WindowCloses,
    /// The first buffered update's timestamp plus this (ms).
    TimeLimit(i64),
}

/// The buffer time of an update: from its key and timestamp.
type TimeOf<K> = Arc<dyn Fn(&K, i64) -> i64 + Send + Sync>;

/// How a table's updates are held back (Kafka's `Suppressed<K>`).
pub struct Suppressed<K> {
    until: Until,
    time_of: TimeOf<K>,
    buffer: BufferConfig,
    name: Option<String>,
}

impl<K> std::fmt::Debug for Suppressed<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Suppressed")
            .field("until", &self.until)
            .field("buffer", &self.buffer)
            .field("name", &self.name)
            .finish()
    }
}

impl<K: 'static> Suppressed<Windowed<K>> {
    /// Only each window's final result, when the window closes (Kafka's
    /// `untilWindowCloses`).
    pub fn until_window_closes(buffer: StrictBufferConfig) -> Suppressed<Windowed<K>> {
        Suppressed {
            until: Until::WindowCloses,
            time_of: Arc::new(|k: &Windowed<K>, _| k.window.end),
            buffer: buffer.into(),
            name: None,
        }
    }
}

impl<K: 'static> Suppressed<K> {
    /// A key's latest update, once stream time is `limit` past its first buffered update
    /// (Kafka's `untilTimeLimit`).
    pub fn until_time_limit(limit: Duration, buffer: impl Into<BufferConfig>) -> Suppressed<K> {
        Suppressed {
            until: Until::TimeLimit(i64::try_from(limit.as_millis()).unwrap_or(i64::MAX)),
            time_of: Arc::new(|_: &K, ts| ts),
            buffer: buffer.into(),
            name: None,
        }
    }

    /// Names the node `name` and its store `<name>-store` (Kafka's `withName`).
    pub fn with_name(mut self, name: &str) -> Suppressed<K> {
        self.name = Some(name.to_string());
        self
    }
}

/// One buffered key's entry, as stored (after the value's timestamp, which is the
/// update's).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    /// Its place in the buffer: the window end, or the first update's timestamp.
    time: i64,
    /// The latest update's new value.
    new: Option<Bytes>,
    /// The value before the first buffered update (what downstream last saw).
    prior: Option<Bytes>,
    topic: String,
    partition: i32,
    offset: i64,
    headers: Vec<(String, Option<Bytes>)>,
}

fn put_opt(b: &mut BytesMut, v: &Option<Bytes>) {
    match v {
        None => b.put_u8(0),
        Some(v) => {
            b.put_u8(1);
            b.put_u32(v.len() as u32);
            b.put_slice(v);
        }
    }
}

fn get_bytes(b: &mut &[u8]) -> Option<Bytes> {
    let len = get_u32(b)? as usize;
    if b.len() < len {
        return None;
    }
    let v = Bytes::copy_from_slice(&b[..len]);
    b.advance(len);
    Some(v)
}

fn get_u32(b: &mut &[u8]) -> Option<u32> {
    (b.len() >= 4).then(|| b.get_u32())
}

fn get_opt(b: &mut &[u8]) -> Option<Option<Bytes>> {
    if b.is_empty() {
        return None;
    }
    match b.get_u8() {
        0 => Some(None),
        1 => get_bytes(b).map(Some),
        _ => None,
    }
}

fn get_string(b: &mut &[u8]) -> Option<String> {
    String::from_utf8(get_bytes(b)?.to_vec()).ok()
}

impl Entry {
    fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        b.put_i64(self.time);
        put_opt(&mut b, &self.new);
        put_opt(&mut b, &self.prior);
        b.put_u32(self.topic.len() as u32);
        b.put_slice(self.topic.as_bytes());
        b.put_i32(self.partition);
        b.put_i64(self.offset);
        b.put_u32(self.headers.len() as u32);
        for (k, v) in &self.headers {
            b.put_u32(k.len() as u32);
            b.put_slice(k.as_bytes());
            put_opt(&mut b, v);
        }
        b.freeze()
    }

    fn decode(mut b: &[u8]) -> Option<Entry> {
        let b = &mut b;
        if b.len() < 8 {
            return None;
        }
        let time = b.get_i64();
        let new = get_opt(b)?;
        let prior = get_opt(b)?;
        let topic = get_string(b)?;
        if b.len() < 12 {
            return None;
        }
        let partition = b.get_i32();
        let offset = b.get_i64();
        let n = get_u32(b)?;
        let mut headers = Vec::new();
        for _ in 0..n {
            let k = get_string(b)?;
            headers.push((k, get_opt(b)?));
        }
        b.is_empty().then_some(Entry {
            time,
            new,
            prior,
            topic,
            partition,
            offset,
            headers,
        })
    }
}

/// The buffer of one task: its order by buffer time, and its size.
struct Buffer {
    /// The largest update timestamp the processor has seen (Kafka's `observedStreamTime`).
    observed: i64,
    /// `(buffer time, key bytes)` of every entry, with the entry's size.
    order: BTreeMap<(i64, Bytes), u64>,
    bytes: u64,
}

impl Buffer {
    /// The buffer as its store holds it (after a restore).
    fn open(raw: &dyn RawStore, store: &str) -> Result<Buffer, StoreError> {
        let mut b = Buffer {
            observed: -1,
            order: BTreeMap::new(),
            bytes: 0,
        };
        for (k, stored) in raw.range(Bound::Unbounded, Bound::Unbounded)? {
            let (_, v) = unstamp(store, &stored)?;
            let entry = Entry::decode(&v).ok_or_else(|| StoreError::Corrupt(store.to_string()))?;
            let size = (k.len() + v.len()) as u64;
            b.bytes += size;
            b.order.insert((entry.time, k), size);
        }
        Ok(b)
    }
}

/// What the suppression processor needs.
struct Suppressor<K, V> {
    store: String,
    key: Arc<dyn Serde<K>>,
    value: Arc<dyn Serde<V>>,
    time_of: TimeOf<K>,
    /// How far behind stream time an entry's buffer time must be to be emitted.
    wait_ms: i64,
    /// Whether deletes need not be emitted (final results).
    drop_tombstones: bool,
    max_records: u64,
    max_bytes: u64,
    local: TaskLocal<Buffer>,
}

impl<K: 'static, V: 'static> Suppressor<K, V> {
    fn serde_failed(&self, ctx: &mut Ctx, source: crate::serdes::SerdeError) {
        ctx.fail(StreamsError::StoreSerde {
            store: self.store.clone(),
            source,
        });
    }

    fn corrupt(&self, ctx: &mut Ctx) {
        ctx.fail(StreamsError::Store {
            store: self.store.clone(),
            source: StoreError::Corrupt(self.store.clone()),
        });
    }

    fn value_bytes(&self, ctx: &mut Ctx, v: Option<&V>) -> Option<Option<Bytes>> {
        match v.map(|v| self.value.serialize(&self.store, v)).transpose() {
            Ok(b) => Some(b.flatten()),
            Err(e) => {
                self.serde_failed(ctx, e);
                None
            }
        }
    }

    fn value_of(&self, ctx: &mut Ctx, b: Option<Bytes>) -> Option<Option<V>> {
        match b
            .map(|b| self.value.deserialize(&self.store, Some(&b)))
            .transpose()
        {
            Ok(v) => Some(v),
            Err(e) => {
                self.serde_failed(ctx, e);
                None
            }
        }
    }

    /// The entry buffered under `kb` and its timestamp.
    fn entry(&self, ctx: &mut Ctx, kb: &[u8]) -> Option<(Entry, i64)> {
        let (ts, bytes) = ctx.get(&self.store, kb)?;
        match Entry::decode(&bytes) {
            Some(e) => Some((e, ts)),
            None => {
                self.corrupt(ctx);
                None
            }
        }
    }

    /// Buffers the update: a key already buffered keeps its place and its prior value.
    fn buffer(&self, ctx: &mut Ctx, buf: &mut Buffer, k: &K, c: Change<V>) {
        let kb = match self.key.serialize(&self.store, k) {
            Ok(Some(kb)) => kb,
            Ok(None) => return,
            Err(e) => return self.serde_failed(ctx, e),
        };
        let existing = self.entry(ctx, &kb).map(|(e, _)| e);
        if ctx.failure.is_some() {
            return;
        }
        let Some(new) = self.value_bytes(ctx, c.new.as_ref()) else {
            return;
        };
        let (time, prior) = match existing {
            Some(e) => {
                if let Some(size) = buf.order.remove(&(e.time, kb.clone())) {
                    buf.bytes = buf.bytes.saturating_sub(size);
                }
                (e.time, e.prior)
            }
            None => match self.value_bytes(ctx, c.old.as_ref()) {
                Some(prior) => ((self.time_of)(k, ctx.timestamp), prior),
                None => return,
            },
        };
        let entry = Entry {
            time,
            new,
            prior,
            topic: ctx.topic.clone(),
            partition: ctx.partition,
            offset: ctx.offset,
            headers: ctx.headers.clone(),
        };
        let bytes = entry.encode();
        let size = (kb.len() + bytes.len()) as u64;
        let ts = ctx.timestamp;
        ctx.put(&self.store, kb.clone(), Some(bytes), ts);
        if ctx.failure.is_none() {
            buf.bytes += size;
            buf.order.insert((time, kb), size);
        }
    }

    /// Emits and removes the first entry (the earliest buffer time).
    fn evict_first(&self, ctx: &mut Ctx, buf: &mut Buffer, down: &Forward<K, Change<V>>) {
        let Some(((time, kb), size)) = buf.order.pop_first() else {
            return;
        };
        buf.bytes = buf.bytes.saturating_sub(size);
        let Some((entry, ts)) = self.entry(ctx, &kb) else {
            if ctx.failure.is_none() {
                tracing::warn!(store = %self.store, time, "a buffered key is missing from its store");
            }
            return;
        };
        let now = ctx.timestamp;
        ctx.put(&self.store, kb.clone(), None, now);
        if ctx.failure.is_some() || (entry.new.is_none() && self.drop_tombstones) {
            return;
        }
        let key = match self.key.deserialize(&self.store, Some(&kb)) {
            Ok(k) => k,
            Err(e) => return self.serde_failed(ctx, e),
        };
        let Some(new) = self.value_of(ctx, entry.new) else {
            return;
        };
        let Some(old) = self.value_of(ctx, entry.prior) else {
            return;
        };
        // The update's own record context, as Kafka restores it for the emitted record.
        let saved = (
            std::mem::replace(&mut ctx.timestamp, ts),
            std::mem::replace(&mut ctx.headers, entry.headers),
            std::mem::replace(&mut ctx.topic, entry.topic),
            std::mem::replace(&mut ctx.partition, entry.partition),
            std::mem::replace(&mut ctx.offset, entry.offset),
        );
        down(ctx, key, Change { new, old });
        (
            ctx.timestamp,
            ctx.headers,
            ctx.topic,
            ctx.partition,
            ctx.offset,
        ) = saved;
    }

    /// Emits what stream time has released, then what the bound forces out.
    fn enforce(&self, ctx: &mut Ctx, buf: &mut Buffer, down: &Forward<K, Change<V>>) {
        let expiry = buf.observed.saturating_sub(self.wait_ms);
        while ctx.failure.is_none() {
            match buf.order.first_key_value() {
                Some(((time, _), _)) if *time <= expiry => self.evict_first(ctx, buf, down),
                _ => break,
            }
        }
        while ctx.failure.is_none()
            && !buf.order.is_empty()
            && (buf.order.len() as u64 > self.max_records || buf.bytes > self.max_bytes)
        {
            self.evict_first(ctx, buf, down);
        }
    }
}

impl<K, V> KTable<K, V>
where
    K: Clone + 'static,
    V: Clone + 'static,
{
    /// This table's updates held back as `suppressed` says (`KTABLE-SUPPRESS-`, with the
    /// buffer store `KTABLE-SUPPRESS-STATE-STORE-`, or `<name>` and `<name>-store`).
    /// Waiting for windows to close needs a windowed table (or one derived from it by
    /// `filter` or `map_values`); the buffer needs the table's serdes, which windowed and
    /// materialized tables know.
    pub fn suppress(&self, suppressed: Suppressed<K>) -> KTable<K, V> {
        let graph = self.graph.clone();
        let mut g = graph.lock();
        // Kafka's order: the processor's name, then the store's.
        let name = match &suppressed.name {
            Some(n) => n.clone(),
            None => g.next_name("KTABLE-SUPPRESS-"),
        };
        let wait_ms = match suppressed.until {
            Until::TimeLimit(ms) => ms,
            Until::WindowCloses => match &self.windowed {
                Some(w) => w.close_after_ms,
                None => {
                    let parent = g.nodes.get(self.node).map(|n| n.name.clone());
                    g.errors.push(format!(
                        "Window close time is only defined for windowed computations. Got [{}].",
                        parent.unwrap_or_default()
                    ));
                    0
                }
            },
        };
        let store = match &suppressed.name {
            Some(n) => format!("{n}-store"),
            None => g.next_name("KTABLE-SUPPRESS-STATE-STORE-"),
        };
        let (Some(key), Some(value)) = (self.known_key_serde(), self.known_value_serde()) else {
            g.errors.push(format!(
                "suppress {name} needs the table's key and value serdes (materialize the table)"
            ));
            return self.clone();
        };
        g.add_store(StoreSpec {
            name: store.clone(),
            kind: StoreKind::KeyValue,
            persistent: false,
            logged: suppressed.buffer.logging,
        });
        let suppressor = Suppressor {
            store: store.clone(),
            key: key.clone(),
            value: value.clone(),
            time_of: suppressed.time_of,
            wait_ms,
            drop_tombstones: suppressed.until == Until::WindowCloses,
            max_records: suppressed.buffer.max_records,
            max_bytes: suppressed.buffer.max_bytes,
            local: TaskLocal::default(),
        };
        let build = build_with(move |down: Forward<K, Change<V>>| {
            forward(move |ctx, k: K, c: Change<V>| {
                let s = &suppressor;
                let Some((raw, mut buf)) = s
                    .local
                    .take(ctx, &s.store, |raw| Buffer::open(raw, &s.store))
                else {
                    return;
                };
                buf.observed = buf.observed.max(ctx.timestamp);
                s.buffer(ctx, &mut buf, &k, c);
                if ctx.failure.is_none() {
                    s.enforce(ctx, &mut buf, &down);
                }
                s.local.put_back(ctx.task.id, &raw, buf);
            })
        });
        let kind = NodeKind::Processor {
            stores: vec![store],
        };
        let node = g.add(name, kind, &[self.node], build);
        drop(g);
        let mut table = KTable::at(graph, node, None);
        table.key_serde = Some(key);
        table.value_serde = Some(value);
        table.windowed = self.derived_window();
        table
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_corrupt_ones_are_refused() {
        let e = Entry {
            time: -5,
            new: Some(Bytes::from_static(b"new")),
            prior: None,
            topic: "t".into(),
            partition: 3,
            offset: 42,
            headers: vec![
                ("h".into(), None),
                ("i".into(), Some(Bytes::from_static(b"v"))),
            ],
        };
        let b = e.encode();
        assert_eq!(Entry::decode(&b), Some(e));
        for cut in 0..b.len() {
            assert_eq!(Entry::decode(&b[..cut]), None, "cut at {cut}");
        }
        let mut longer = b.to_vec();
        longer.push(0);
        assert_eq!(Entry::decode(&longer), None);
    }
}
