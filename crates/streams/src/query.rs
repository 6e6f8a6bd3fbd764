//! Reading stores from outside the topology (Kafka's interactive queries): a
//! [`ReadOnlyKeyValueStore`] over one store's instances in the local tasks, typed by the
//! caller's serdes. Reads see what the tasks have written so far (not only what was
//! committed), as Kafka's do.

use std::ops::Bound;
use std::sync::Arc;

use crate::error::StreamsError;
use crate::serdes::Serde;
use crate::state::{fetch_windows, unstamp, RawStore};

/// One store's instances: one per local task that has it.
#[derive(Clone, Default)]
pub(crate) struct StoreInstances {
    pub name: String,
    pub parts: Vec<Arc<dyn RawStore>>,
}

fn store_err(name: &str) -> impl Fn(crate::state::StoreError) -> StreamsError + '_ {
    move |source| StreamsError::Store {
        store: name.to_string(),
        source,
    }
}

fn serde_err(name: &str) -> impl Fn(crate::serdes::SerdeError) -> StreamsError + '_ {
    move |source| StreamsError::StoreSerde {
        store: name.to_string(),
        source,
    }
}

/// A key-value store, read-only (Kafka's `ReadOnlyKeyValueStore<K, V>`).
pub struct ReadOnlyKeyValueStore<K, V> {
    pub(crate) store: StoreInstances,
    pub(crate) key: Arc<dyn Serde<K>>,
    pub(crate) value: Arc<dyn Serde<V>>,
}

impl<K: 'static, V: 'static> ReadOnlyKeyValueStore<K, V> {
    /// The value under `key`.
    pub fn get(&self, key: &K) -> Result<Option<V>, StreamsError> {
        let name = &self.store.name;
        let Some(kb) = self.key.serialize(name, key).map_err(serde_err(name))? else {
            return Ok(None);
        };
        for part in &self.store.parts {
            if let Some(stored) = part.get(&kb).map_err(store_err(name))? {
                let (_, v) = unstamp(name, &stored).map_err(store_err(name))?;
                return Ok(Some(
                    self.value
                        .deserialize(name, Some(&v))
                        .map_err(serde_err(name))?,
                ));
            }
        }
        Ok(None)
    }

    /// Every entry, in key-byte order within each task's part.
    pub fn all(&self) -> Result<Vec<(K, V)>, StreamsError> {
        self.entries(Bound::Unbounded, Bound::Unbounded)
    }

    /// The entries with keys from `from` to `to` (inclusive), by key bytes.
    pub fn range(&self, from: &K, to: &K) -> Result<Vec<(K, V)>, StreamsError> {
        let name = &self.store.name;
        let lo = self.key.serialize(name, from).map_err(serde_err(name))?;
        let hi = self.key.serialize(name, to).map_err(serde_err(name))?;
        let (Some(lo), Some(hi)) = (lo, hi) else {
            return Ok(Vec::new());
        };
        self.entries(Bound::Included(&lo), Bound::Included(&hi))
    }

    /// About how many entries the store holds.
    pub fn approximate_num_entries(&self) -> usize {
        self.store.parts.iter().map(|p| p.approximate_len()).sum()
    }

    fn entries(&self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> Result<Vec<(K, V)>, StreamsError> {
        let name = &self.store.name;
        let mut out = Vec::new();
        for part in &self.store.parts {
            for (k, stored) in part.range(from, to).map_err(store_err(name))? {
                let (_, v) = unstamp(name, &stored).map_err(store_err(name))?;
                out.push((
                    self.key
                        .deserialize(name, Some(&k))
                        .map_err(serde_err(name))?,
                    self.value
                        .deserialize(name, Some(&v))
                        .map_err(serde_err(name))?,
                ));
            }
        }
        Ok(out)
    }
}

/// A window store, read-only (Kafka's `ReadOnlyWindowStore<K, V>`).
pub struct ReadOnlyWindowStore<K, V> {
    pub(crate) store: StoreInstances,
    pub(crate) key: Arc<dyn Serde<K>>,
    pub(crate) value: Arc<dyn Serde<V>>,
}

impl<K: 'static, V: 'static> ReadOnlyWindowStore<K, V> {
    /// The value of `key`'s window starting at `start`.
    pub fn fetch(&self, key: &K, start: i64) -> Result<Option<V>, StreamsError> {
        Ok(self.fetch_range(key, start, start)?.pop().map(|(_, v)| v))
    }

    /// `key`'s windows starting from `from` to `to` (inclusive), by start time.
    pub fn fetch_range(&self, key: &K, from: i64, to: i64) -> Result<Vec<(i64, V)>, StreamsError> {
        let name = &self.store.name;
        let Some(kb) = self.key.serialize(name, key).map_err(serde_err(name))? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for part in &self.store.parts {
            for (start, stored) in
                fetch_windows(part.as_ref(), &kb, from, to).map_err(store_err(name))?
            {
                let (_, v) = unstamp(name, &stored).map_err(store_err(name))?;
                out.push((
                    start,
                    self.value
                        .deserialize(name, Some(&v))
                        .map_err(serde_err(name))?,
                ));
            }
        }
        out.sort_by_key(|(s, _)| *s);
        Ok(out)
    }
}

/// A session store, read-only (Kafka's `ReadOnlySessionStore<K, V>`): sessions by key,
/// each with its window (start and end, both inclusive).
pub struct ReadOnlySessionStore<K, V> {
    pub(crate) store: StoreInstances,
    pub(crate) key: Arc<dyn Serde<K>>,
    pub(crate) value: Arc<dyn Serde<V>>,
}

impl<K: 'static, V: 'static> ReadOnlySessionStore<K, V> {
    /// Every session of `key`, by end then start (Kafka's `fetch(key)`).
    pub fn fetch(&self, key: &K) -> Result<Vec<(crate::windows::Window, V)>, StreamsError> {
        self.find_sessions(key, i64::MIN, i64::MAX)
    }

    /// The sessions of `key` ending at or after `earliest_end` and starting at or before
    /// `latest_start` (Kafka's `findSessions`).
    pub fn find_sessions(
        &self,
        key: &K,
        earliest_end: i64,
        latest_start: i64,
    ) -> Result<Vec<(crate::windows::Window, V)>, StreamsError> {
        let name = &self.store.name;
        let Some(kb) = self.key.serialize(name, key).map_err(serde_err(name))? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for part in &self.store.parts {
            let found = crate::state::find_sessions(part.as_ref(), &kb, earliest_end, latest_start)
                .map_err(store_err(name))?;
            for (start, end, stored) in found {
                let (_, v) = unstamp(name, &stored).map_err(store_err(name))?;
                out.push((
                    crate::windows::Window::new(start, end),
                    self.value
                        .deserialize(name, Some(&v))
                        .map_err(serde_err(name))?,
                ));
            }
        }
        out.sort_by_key(|(w, _)| (w.end, w.start));
        Ok(out)
    }

    /// The value of `key`'s session from `start` to `end` (Kafka's `fetchSession`).
    pub fn fetch_session(&self, key: &K, start: i64, end: i64) -> Result<Option<V>, StreamsError> {
        Ok(self
            .find_sessions(key, end, start)?
            .into_iter()
            .find(|(w, _)| w.start == start && w.end == end)
            .map(|(_, v)| v))
    }
}
