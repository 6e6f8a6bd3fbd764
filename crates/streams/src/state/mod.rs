//! State stores: the bytes under every stateful operation, and how they are kept.
//!
//! A store is an ordered map of bytes ([`RawStore`]), either in memory ([`MemoryStore`]) or
//! persistent on the embedded LSM store fjall ([`fjall_store`]). Typed access, timestamps
//! and the changelog are layered on top (in [`crate::topology::Ctx`] and
//! [`crate::task`]), so both kinds behave the same:
//!
//! - Values are stored as Kafka's `ValueAndTimestamp`: the 8-byte big-endian timestamp of
//!   the record that last wrote the value, then the value's bytes ([`stamp`], [`unstamp`]).
//! - Window stores are key-value stores whose keys are the record key followed by the
//!   window start (8 bytes, big-endian), so one key's windows are contiguous and ordered by
//!   time ([`window_key`]); session stores append the session end, then its start
//!   ([`session_key`]).
//! - A logged store's every write is also sent to its changelog topic
//!   `<application.id>-<store>-changelog` (key: the store key, value: the value without
//!   its timestamp, which the record carries), from which a task restores it.

pub mod fjall_store;
pub(crate) mod typed;

use std::collections::BTreeMap;
use std::ops::Bound;

use bytes::{BufMut, Bytes, BytesMut};
use parking_lot::RwLock;

/// What kind of data a store holds, which decides its changelog's cleanup policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// Key-value (a compacted changelog).
    KeyValue,
    /// Windows kept for `retention_ms` (a compacted and deleted changelog).
    Window {
        /// How long windows are kept (ms).
        retention_ms: i64,
    },
    /// Sessions kept for `retention_ms`.
    Session {
        /// How long sessions are kept (ms).
        retention_ms: i64,
    },
}

/// A store as the topology declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSpec {
    /// Its name (unique in the topology).
    pub name: String,
    /// What it holds.
    pub kind: StoreKind,
    /// On fjall (true) or in memory.
    pub persistent: bool,
    /// Backed by a changelog topic (Kafka's `withLoggingEnabled`, the default).
    pub logged: bool,
}

impl StoreSpec {
    /// The changelog topic's name for `application_id`.
    pub fn changelog(&self, application_id: &str) -> String {
        format!("{application_id}-{}-changelog", self.name)
    }

    /// The changelog topic's configs, as Kafka Streams creates it.
    pub fn changelog_configs(&self) -> Vec<(String, String)> {
        match self.kind {
            StoreKind::KeyValue => vec![("cleanup.policy".into(), "compact".into())],
            StoreKind::Window { retention_ms } | StoreKind::Session { retention_ms } => vec![
                ("cleanup.policy".into(), "compact,delete".into()),
                // Kafka adds a day (windowstore.changelog.additional.retention.ms).
                (
                    "retention.ms".into(),
                    retention_ms.saturating_add(86_400_000).to_string(),
                ),
            ],
        }
    }
}

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The persistent store failed (I/O, corruption).
    #[error("the persistent store {store} failed")]
    Fjall {
        /// The store.
        store: String,
        /// fjall's error.
        #[source]
        source: fjall::Error,
    },
    /// The state directory could not be used.
    #[error("the state directory {path} cannot be used")]
    Dir {
        /// The directory or file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A stored value is shorter than its timestamp.
    #[error("a value in store {0} is corrupt (shorter than its timestamp)")]
    Corrupt(String),
}

/// An ordered map of bytes. Implementations are thread-safe so that interactive queries
/// can read a store while its task writes it.
pub trait RawStore: Send + Sync {
    /// The value under `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Bytes>, StoreError>;
    /// Sets `key` to `value`.
    fn put(&self, key: Bytes, value: Bytes) -> Result<(), StoreError>;
    /// Removes `key`.
    fn delete(&self, key: &[u8]) -> Result<(), StoreError>;
    /// The entries with keys within the bounds, in key order.
    fn range(
        &self,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
    ) -> Result<Vec<(Bytes, Bytes)>, StoreError>;
    /// Removes every entry.
    fn clear(&self) -> Result<(), StoreError>;
    /// Makes what was written durable (a no-op in memory).
    fn flush(&self) -> Result<(), StoreError>;
    /// Whether the store outlives the process (then a checkpoint can spare a restore).
    fn persistent(&self) -> bool;
    /// About how many entries the store holds.
    fn approximate_len(&self) -> usize;
}

/// A store in memory (Kafka's `Stores.inMemoryKeyValueStore`): restored in full from its
/// changelog whenever its task starts.
#[derive(Debug, Default)]
pub struct MemoryStore {
    map: RwLock<BTreeMap<Bytes, Bytes>>,
}

impl RawStore for MemoryStore {
    fn get(&self, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        Ok(self.map.read().get(key).cloned())
    }

    fn put(&self, key: Bytes, value: Bytes) -> Result<(), StoreError> {
        self.map.write().insert(key, value);
        Ok(())
    }

    fn delete(&self, key: &[u8]) -> Result<(), StoreError> {
        self.map.write().remove(key);
        Ok(())
    }

    fn range(
        &self,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
    ) -> Result<Vec<(Bytes, Bytes)>, StoreError> {
        if let (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) =
            (from, to)
        {
            // BTreeMap::range panics on an inverted range; Kafka answers nothing.
            if a > b {
                return Ok(Vec::new());
            }
        }
        let map = self.map.read();
        Ok(map
            .range::<[u8], _>((from, to))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn clear(&self) -> Result<(), StoreError> {
        self.map.write().clear();
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn persistent(&self) -> bool {
        false
    }

    fn approximate_len(&self) -> usize {
        self.map.read().len()
    }
}

/// `value` as stored: the timestamp, then the bytes (Kafka's `ValueAndTimestamp`).
pub fn stamp(timestamp: i64, value: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(8 + value.len());
    b.put_i64(timestamp);
    b.put_slice(value);
    b.freeze()
}

/// The timestamp and the value bytes of a stored value.
pub fn unstamp(store: &str, stored: &Bytes) -> Result<(i64, Bytes), StoreError> {
    let Some(ts) = stored.get(..8) else {
        return Err(StoreError::Corrupt(store.to_string()));
    };
    let mut t = [0u8; 8];
    t.copy_from_slice(ts);
    Ok((i64::from_be_bytes(t), stored.slice(8..)))
}

/// A time as it sorts in keys: big-endian with the sign bit flipped, so negative times sort
/// first.
fn time_bytes(t: i64) -> [u8; 8] {
    ((t as u64) ^ (1 << 63)).to_be_bytes()
}

fn time_of(b: &[u8]) -> i64 {
    let mut t = [0u8; 8];
    t.copy_from_slice(b);
    (u64::from_be_bytes(t) ^ (1 << 63)) as i64
}

/// A window store key: the record key, then the window start.
pub fn window_key(key: &[u8], start: i64) -> Bytes {
    let mut b = BytesMut::with_capacity(key.len() + 8);
    b.put_slice(key);
    b.put_slice(&time_bytes(start));
    b.freeze()
}

/// The record key and window start of a window store key.
pub fn split_window_key(k: &Bytes) -> Option<(Bytes, i64)> {
    let at = k.len().checked_sub(8)?;
    Some((k.slice(..at), time_of(&k[at..])))
}

/// A session store key: the record key, then the session end, then its start (so sessions
/// of a key sort by end, as Kafka's session stores search them).
pub fn session_key(key: &[u8], start: i64, end: i64) -> Bytes {
    let mut b = BytesMut::with_capacity(key.len() + 16);
    b.put_slice(key);
    b.put_slice(&time_bytes(end));
    b.put_slice(&time_bytes(start));
    b.freeze()
}

/// The record key, session start and session end of a session store key.
pub fn split_session_key(k: &Bytes) -> Option<(Bytes, i64, i64)> {
    let at = k.len().checked_sub(16)?;
    Some((
        k.slice(..at),
        time_of(&k[at + 8..]),
        time_of(&k[at..at + 8]),
    ))
}

/// The entries of `store` whose key is `key` followed by exactly `suffix` bytes that lie
/// between `from` and `to` (inclusive): one key's windows or sessions. Longer keys that
/// merely start with `key` are skipped.
pub fn suffixed_range(
    store: &dyn RawStore,
    key: &[u8],
    suffix: usize,
    from: &[u8],
    to: &[u8],
) -> Result<Vec<(Bytes, Bytes)>, StoreError> {
    let mut lo = key.to_vec();
    lo.extend_from_slice(from);
    let mut hi = key.to_vec();
    hi.extend_from_slice(to);
    let mut out = store.range(Bound::Included(&lo), Bound::Included(&hi))?;
    out.retain(|(k, _)| k.len() == key.len() + suffix && k.starts_with(key));
    Ok(out)
}

/// The window store entries of `key` with window starts in `[from, to]`.
pub fn fetch_windows(
    store: &dyn RawStore,
    key: &[u8],
    from: i64,
    to: i64,
) -> Result<Vec<(i64, Bytes)>, StoreError> {
    if from > to {
        return Ok(Vec::new());
    }
    let found = suffixed_range(store, key, 8, &time_bytes(from), &time_bytes(to))?;
    Ok(found
        .into_iter()
        .filter_map(|(k, v)| split_window_key(&k).map(|(_, start)| (start, v)))
        .collect())
}

/// The session store entries of `key` whose end is at or after `earliest_end` and whose
/// start is at or before `latest_start`: the sessions a record at a time could merge with.
pub fn find_sessions(
    store: &dyn RawStore,
    key: &[u8],
    earliest_end: i64,
    latest_start: i64,
) -> Result<Vec<(i64, i64, Bytes)>, StoreError> {
    let mut from = time_bytes(earliest_end).to_vec();
    from.extend_from_slice(&[0u8; 8]);
    let found = suffixed_range(store, key, 16, &from, &[0xff; 16])?;
    Ok(found
        .into_iter()
        .filter_map(|(k, v)| split_session_key(&k).map(|(_, s, e)| (s, e, v)))
        .filter(|(s, _, _)| *s <= latest_start)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_keys_of_one_key_are_contiguous_and_ordered_by_time() {
        let s = MemoryStore::default();
        for (k, t) in [("a", 5), ("a", -3), ("ab", 0), ("a", 100), ("b", 1)] {
            s.put(window_key(k.as_bytes(), t), stamp(t, b"v")).unwrap();
        }
        let starts: Vec<i64> = fetch_windows(&s, b"a", -10, 200)
            .unwrap()
            .into_iter()
            .map(|(t, _)| t)
            .collect();
        assert_eq!(starts, vec![-3, 5, 100]);
        assert_eq!(fetch_windows(&s, b"a", 6, 99).unwrap().len(), 0);
        assert_eq!(fetch_windows(&s, b"a", 10, 0).unwrap().len(), 0);
    }

    #[test]
    fn sessions_are_found_by_end_then_start() {
        let s = MemoryStore::default();
        s.put(session_key(b"k", 0, 10), stamp(10, b"1")).unwrap();
        s.put(session_key(b"k", 50, 60), stamp(60, b"2")).unwrap();
        s.put(session_key(b"kk", 0, 10), stamp(10, b"3")).unwrap();
        let found = find_sessions(&s, b"k", 5, 55).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!((found[0].0, found[0].1), (0, 10));
        let found = find_sessions(&s, b"k", 11, 100).unwrap();
        assert_eq!((found[0].0, found[0].1), (50, 60));
        assert!(find_sessions(&s, b"k", 5, -1).unwrap().is_empty());
        let k = session_key(b"k", 50, 60);
        assert_eq!(
            split_session_key(&k).unwrap(),
            (Bytes::from_static(b"k"), 50, 60)
        );
    }

    #[test]
    fn stamped_values_keep_their_timestamp() {
        let v = stamp(-7, b"abc");
        assert_eq!(unstamp("s", &v).unwrap(), (-7, Bytes::from_static(b"abc")));
        assert!(unstamp("s", &Bytes::from_static(b"abc")).is_err());
    }
}
