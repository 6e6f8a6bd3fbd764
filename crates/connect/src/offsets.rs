//! Source offsets: the latest position each source partition of each connector was
//! delivered up to. Kept in memory for reads and written through to a backing store: a
//! local file in standalone mode (`offset.storage.file.filename`).
//!
//! The file is JSON (one entry per connector and source partition), replaced atomically
//! on each flush, so a crash leaves either the old offsets or the new ones. Kafka's
//! standalone worker writes Java-serialized maps instead; Strom cannot read those.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::RwLock;
use serde_json::{json, Value as Json};

use crate::api::OffsetReader;
use crate::record::SourceMap;
use crate::ConnectError;

/// Where source offsets are kept.
#[async_trait]
pub trait OffsetStore: Send + Sync {
    /// The stored offset of one source partition of `connector`.
    fn get(&self, connector: &str, partition: &SourceMap) -> Option<SourceMap>;

    /// Every stored (partition, offset) of `connector`.
    fn all(&self, connector: &str) -> Vec<(SourceMap, SourceMap)>;

    /// Stores these offsets of `connector` durably (`None` removes the partition's).
    async fn put(
        &self,
        connector: &str,
        entries: Vec<(SourceMap, Option<SourceMap>)>,
    ) -> Result<(), ConnectError>;
}

/// The key offsets are kept under: the connector and its partition as JSON (Kafka's
/// offsets-topic key, `["connector", {partition}]`).
pub(crate) fn key(connector: &str, partition: &SourceMap) -> String {
    json!([connector, partition]).to_string()
}

/// Offsets in memory, by [`key`]: what every store reads from.
#[derive(Debug, Default)]
pub(crate) struct OffsetMap {
    entries: RwLock<BTreeMap<String, (String, SourceMap, SourceMap)>>,
}

impl OffsetMap {
    /// The offset of one source partition of `connector`.
    pub(crate) fn get(&self, connector: &str, partition: &SourceMap) -> Option<SourceMap> {
        self.entries
            .read()
            .get(&key(connector, partition))
            .map(|(_, _, o)| o.clone())
    }

    /// Every (partition, offset) of `connector`.
    pub(crate) fn all(&self, connector: &str) -> Vec<(SourceMap, SourceMap)> {
        self.entries
            .read()
            .values()
            .filter(|(c, _, _)| c == connector)
            .map(|(_, p, o)| (p.clone(), o.clone()))
            .collect()
    }

    /// Sets (`Some`) or removes (`None`) one partition's offset.
    pub(crate) fn set(&self, connector: &str, partition: SourceMap, offset: Option<SourceMap>) {
        let k = key(connector, &partition);
        let mut map = self.entries.write();
        match offset {
            Some(o) => {
                map.insert(k, (connector.to_string(), partition, o));
            }
            None => {
                map.remove(&k);
            }
        }
    }

    /// Every entry, as (connector, partition, offset).
    fn each(&self) -> Vec<(String, SourceMap, SourceMap)> {
        self.entries.read().values().cloned().collect()
    }
}

/// Offsets in a local file.
pub struct FileOffsetStore {
    path: PathBuf,
    entries: OffsetMap,
    /// Serializes writers so the file is always the latest whole map.
    write: tokio::sync::Mutex<()>,
}

impl FileOffsetStore {
    /// Opens the file (missing: no offsets yet).
    pub fn open(path: PathBuf) -> Result<FileOffsetStore, ConnectError> {
        let entries = OffsetMap::default();
        match std::fs::read(&path) {
            Ok(bytes) => {
                let parsed: Json = serde_json::from_slice(&bytes).map_err(|e| {
                    ConnectError::Config(format!(
                        "the offsets file {} is not Strom's JSON: {e}",
                        path.display()
                    ))
                })?;
                for entry in parsed.as_array().into_iter().flatten() {
                    let (Some(c), Some(p), Some(o)) = (
                        entry.get("connector").and_then(Json::as_str),
                        entry.get("partition").and_then(Json::as_object),
                        entry.get("offset").and_then(Json::as_object),
                    ) else {
                        return Err(ConnectError::Config(format!(
                            "the offsets file {} has an entry without connector, partition and offset",
                            path.display()
                        )));
                    };
                    entries.set(c, p.clone(), Some(o.clone()));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(ConnectError::Config(format!(
                    "cannot read the offsets file {}: {e}",
                    path.display()
                )))
            }
        }
        Ok(FileOffsetStore {
            path,
            entries,
            write: tokio::sync::Mutex::new(()),
        })
    }

    fn snapshot(&self) -> Vec<u8> {
        let list: Vec<Json> = self
            .entries
            .each()
            .into_iter()
            .map(|(c, p, o)| json!({"connector": c, "partition": p, "offset": o}))
            .collect();
        serde_json::to_vec_pretty(&list).unwrap_or_default()
    }
}

#[async_trait]
impl OffsetStore for FileOffsetStore {
    fn get(&self, connector: &str, partition: &SourceMap) -> Option<SourceMap> {
        self.entries.get(connector, partition)
    }

    fn all(&self, connector: &str) -> Vec<(SourceMap, SourceMap)> {
        self.entries.all(connector)
    }

    async fn put(
        &self,
        connector: &str,
        entries: Vec<(SourceMap, Option<SourceMap>)>,
    ) -> Result<(), ConnectError> {
        let _writer = self.write.lock().await;
        for (p, o) in entries {
            self.entries.set(connector, p, o);
        }
        let bytes = self.snapshot();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || write_atomically(&path, &bytes))
            .await
            .map_err(|e| ConnectError::Connect(format!("offset writer: {e}")))?
            .map_err(|e| ConnectError::Connect(format!("cannot write the offsets file: {e}")))
    }
}

/// Writes `bytes` to a temporary file beside `path`, syncs it, renames it over `path` and
/// syncs the directory.
fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or_else(|| std::path::Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// One connector's view of a store, as its source tasks read it.
pub struct ConnectorOffsets {
    /// The store.
    pub store: Arc<dyn OffsetStore>,
    /// The connector.
    pub connector: String,
}

impl OffsetReader for ConnectorOffsets {
    fn offset(&self, partition: &SourceMap) -> Option<SourceMap> {
        self.store.get(&self.connector, partition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(k: &str, v: Json) -> SourceMap {
        let mut m = SourceMap::new();
        m.insert(k.into(), v);
        m
    }

    #[tokio::test]
    async fn offsets_survive_a_reopen_and_are_kept_per_connector() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("offsets.json");
        let store = FileOffsetStore::open(path.clone()).expect("open");
        let file = map("filename", json!("a.txt"));
        store
            .put(
                "one",
                vec![(file.clone(), Some(map("position", json!(10))))],
            )
            .await
            .expect("put");
        store
            .put(
                "two",
                vec![(file.clone(), Some(map("position", json!(99))))],
            )
            .await
            .expect("put");
        store
            .put(
                "one",
                vec![(file.clone(), Some(map("position", json!(20))))],
            )
            .await
            .expect("put");

        let again = FileOffsetStore::open(path.clone()).expect("reopen");
        assert_eq!(again.get("one", &file), Some(map("position", json!(20))));
        assert_eq!(again.get("two", &file), Some(map("position", json!(99))));
        assert_eq!(again.all("one").len(), 1);

        again
            .put("one", vec![(file.clone(), None)])
            .await
            .expect("reset");
        let third = FileOffsetStore::open(path.clone()).expect("reopen");
        assert_eq!(third.get("one", &file), None);
        assert!(third.get("two", &file).is_some());

        std::fs::write(&path, b"not json").expect("corrupt");
        assert!(
            FileOffsetStore::open(path).is_err(),
            "a corrupt file stops the start"
        );
    }
}
