//! Persistent stores on fjall, an embedded LSM store in pure Rust (Kafka Streams uses
//! RocksDB; fjall gives the same shape without a C++ build).
//!
//! One fjall database per instance, under `<state.dir>/<application.id>/fjall`, holds one
//! keyspace per task and store (`<task id>.<store>`): fjall's background threads and its
//! journal are shared by all of the instance's stores. fjall locks its directory, so two
//! instances cannot share a state directory (Kafka's rule too).

use std::ops::Bound;
use std::path::Path;

use bytes::Bytes;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use super::{RawStore, StoreError};

/// The database holding an instance's persistent stores.
#[derive(Clone)]
pub struct FjallDb {
    db: Database,
}

impl std::fmt::Debug for FjallDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FjallDb").finish_non_exhaustive()
    }
}

fn fjall_err(store: &str) -> impl FnOnce(fjall::Error) -> StoreError + '_ {
    move |source| StoreError::Fjall {
        store: store.to_string(),
        source,
    }
}

impl FjallDb {
    /// Opens (or creates) the database in `dir`.
    pub fn open(dir: &Path) -> Result<FjallDb, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
            path: dir.display().to_string(),
            source,
        })?;
        let db = Database::builder(dir)
            .open()
            .map_err(fjall_err("(database)"))?;
        Ok(FjallDb { db })
    }

    /// The store `name` (created empty if new).
    pub fn store(&self, name: &str) -> Result<FjallStore, StoreError> {
        let keyspace = self
            .db
            .keyspace(name, KeyspaceCreateOptions::default)
            .map_err(fjall_err(name))?;
        Ok(FjallStore {
            name: name.to_string(),
            db: self.db.clone(),
            keyspace,
        })
    }
}

/// A persistent store: one fjall keyspace.
pub struct FjallStore {
    name: String,
    db: Database,
    keyspace: Keyspace,
}

impl RawStore for FjallStore {
    fn get(&self, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        let v = self.keyspace.get(key).map_err(fjall_err(&self.name))?;
        Ok(v.map(|v| Bytes::copy_from_slice(&v)))
    }

    fn put(&self, key: Bytes, value: Bytes) -> Result<(), StoreError> {
        self.keyspace
            .insert(key.as_ref(), value.as_ref())
            .map_err(fjall_err(&self.name))
    }

    fn delete(&self, key: &[u8]) -> Result<(), StoreError> {
        self.keyspace.remove(key).map_err(fjall_err(&self.name))
    }

    fn range(
        &self,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
    ) -> Result<Vec<(Bytes, Bytes)>, StoreError> {
        if let (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) =
            (from, to)
        {
            if a > b {
                return Ok(Vec::new());
            }
        }
        let mut out = Vec::new();
        for guard in self.keyspace.range::<&[u8], _>((from, to)) {
            let (k, v) = guard.into_inner().map_err(fjall_err(&self.name))?;
            out.push((Bytes::copy_from_slice(&k), Bytes::copy_from_slice(&v)));
        }
        Ok(out)
    }

    fn clear(&self) -> Result<(), StoreError> {
        self.keyspace.clear().map_err(fjall_err(&self.name))
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db
            .persist(PersistMode::SyncData)
            .map_err(fjall_err(&self.name))
    }

    fn persistent(&self) -> bool {
        true
    }

    fn approximate_len(&self) -> usize {
        self.keyspace.approximate_len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = FjallDb::open(dir.path()).unwrap();
            let s = db.store("0_0.counts").unwrap();
            s.put(Bytes::from_static(b"a"), Bytes::from_static(b"1"))
                .unwrap();
            s.put(Bytes::from_static(b"b"), Bytes::from_static(b"2"))
                .unwrap();
            s.put(Bytes::from_static(b"c"), Bytes::from_static(b"3"))
                .unwrap();
            s.delete(b"b").unwrap();
            s.flush().unwrap();
        }
        let db = FjallDb::open(dir.path()).unwrap();
        let s = db.store("0_0.counts").unwrap();
        assert_eq!(s.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(s.get(b"b").unwrap(), None);
        let all = s.range(Bound::Unbounded, Bound::Unbounded).unwrap();
        assert_eq!(all.len(), 2);
        let some = s
            .range(Bound::Excluded(&b"a"[..]), Bound::Included(&b"z"[..]))
            .unwrap();
        assert_eq!(
            some,
            vec![(Bytes::from_static(b"c"), Bytes::from_static(b"3"))]
        );
        s.clear().unwrap();
        assert!(s
            .range(Bound::Unbounded, Bound::Unbounded)
            .unwrap()
            .is_empty());
        // Another store of the same database is separate.
        assert!(db.store("1_0.counts").unwrap().get(b"a").unwrap().is_none());
    }
}
