//! Typed access to a task's store from inside a processor: keys and values through the
//! store's serdes, failures recorded on the record's context.

use std::sync::Arc;

use bytes::Bytes;

use crate::error::StreamsError;
use crate::serdes::Serde;
use crate::topology::Ctx;

/// A key-value store as a processor sees it: its name and serdes.
pub(crate) struct KvAccess<K, V> {
    pub name: String,
    pub key: Arc<dyn Serde<K>>,
    pub value: Arc<dyn Serde<V>>,
}

impl<K, V> Clone for KvAccess<K, V> {
    fn clone(&self) -> Self {
        KvAccess {
            name: self.name.clone(),
            key: self.key.clone(),
            value: self.value.clone(),
        }
    }
}

impl<K: 'static, V: 'static> KvAccess<K, V> {
    fn serde_failed(&self, ctx: &mut Ctx, source: crate::serdes::SerdeError) {
        ctx.fail(StreamsError::StoreSerde {
            store: self.name.clone(),
            source,
        });
    }

    /// The bytes of `key`; `None` for a null key (which stateful operations skip) or a
    /// failure (recorded).
    pub fn key_bytes(&self, ctx: &mut Ctx, key: &K) -> Option<Bytes> {
        match self.key.serialize(&self.name, key) {
            Ok(b) => b,
            Err(e) => {
                self.serde_failed(ctx, e);
                None
            }
        }
    }

    /// The bytes of `value`, or a recorded failure.
    pub fn value_bytes(&self, ctx: &mut Ctx, value: &V) -> Option<Option<Bytes>> {
        match self.value.serialize(&self.name, value) {
            Ok(b) => Some(b),
            Err(e) => {
                self.serde_failed(ctx, e);
                None
            }
        }
    }

    /// The value under the key bytes `kb`, and its timestamp.
    pub fn get(&self, ctx: &mut Ctx, kb: &[u8]) -> Option<(V, i64)> {
        let (ts, bytes) = ctx.get(&self.name, kb)?;
        match self.value.deserialize(&self.name, Some(&bytes)) {
            Ok(v) => Some((v, ts)),
            Err(e) => {
                self.serde_failed(ctx, e);
                None
            }
        }
    }

    /// Writes `value` (or removes the key) with `timestamp`, through the changelog.
    pub fn put(&self, ctx: &mut Ctx, kb: Bytes, value: Option<&V>, timestamp: i64) {
        let bytes = match value {
            Some(v) => match self.value_bytes(ctx, v) {
                Some(b) => b,
                None => return,
            },
            None => None,
        };
        ctx.put(&self.name, kb, bytes, timestamp);
    }
}
