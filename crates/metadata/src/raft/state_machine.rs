//! [`StateMachine`]: committed Raft entries replayed into the [`MetadataImage`], which it
//! publishes on a watch channel (the image every broker acts on), and the snapshots of it.
//!
//! A snapshot is the image serialized as JSON. On disk it is `snapshot` in the metadata
//! log's directory: one line with openraft's snapshot meta (last log id, membership), then
//! the image; replaced atomically and fsynced, so a node killed mid-snapshot keeps the
//! previous one. At open the snapshot is the state; openraft then replays the committed
//! entries after it.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    AnyError, BasicNode, Entry, EntryPayload, LogId, RaftSnapshotBuilder, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership,
};
use parking_lot::Mutex;
use tokio::sync::{watch, Notify};

use super::log_store::write_atomically;
use super::TypeConfig;
use crate::image::MetadataImage;

/// The snapshot file's name.
pub const SNAPSHOT_FILE: &str = "snapshot";

type Result<T> = std::result::Result<T, StorageError<u64>>;
type Meta = SnapshotMeta<u64, BasicNode>;

/// The metadata state machine; clones share one state.
#[derive(Clone)]
pub struct StateMachine {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    state: Mutex<State>,
    image_tx: watch::Sender<Arc<MetadataImage>>,
    snapshot: Mutex<Option<(Meta, Arc<Vec<u8>>)>>,
    bytes_since_snapshot: AtomicU64,
    snapshot_due_bytes: u64,
    snapshot_due: Notify,
}

#[derive(Clone)]
struct State {
    last_applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, BasicNode>,
    image: Arc<MetadataImage>,
}

fn sm_err(e: impl std::error::Error + 'static) -> StorageError<u64> {
    StorageIOError::write_state_machine(AnyError::new(&e)).into()
}

fn snapshot_err(e: impl std::error::Error + 'static) -> StorageError<u64> {
    StorageIOError::write_snapshot(None, AnyError::new(&e)).into()
}

/// Parses a snapshot file: the meta line, then the image.
fn parse_snapshot(bytes: &[u8]) -> std::result::Result<(Meta, MetadataImage), serde_json::Error> {
    let split = bytes
        .iter()
        .position(|b| *b == b'\n')
        .unwrap_or(bytes.len());
    let meta = serde_json::from_slice(&bytes[..split])?;
    let image = serde_json::from_slice(bytes.get(split + 1..).unwrap_or_default())?;
    Ok((meta, image))
}

impl StateMachine {
    /// Loads the snapshot in `dir`, if there is one. A snapshot becomes due once
    /// `snapshot_due_bytes` of records were applied after the last one.
    pub fn open(
        dir: &Path,
        snapshot_due_bytes: u64,
    ) -> std::result::Result<Self, crate::MetadataError> {
        let mut state = State {
            last_applied: None,
            membership: StoredMembership::default(),
            image: Arc::new(MetadataImage {
                offset: -1,
                ..MetadataImage::default()
            }),
        };
        let mut snapshot = None;
        let path = dir.join(SNAPSHOT_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let (meta, mut image) =
                    parse_snapshot(&bytes).map_err(|source| crate::MetadataError::Corrupt {
                        what: path.display().to_string(),
                        source,
                    })?;
                let data =
                    serde_json::to_vec(&image).map_err(|source| crate::MetadataError::Corrupt {
                        what: path.display().to_string(),
                        source,
                    })?;
                image.reindex();
                state.last_applied = meta.last_log_id;
                state.membership = meta.last_membership.clone();
                state.image = Arc::new(image);
                snapshot = Some((meta, Arc::new(data)));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(strom_storage::StorageError::Io { path, source }.into());
            }
        }
        let (image_tx, _) = watch::channel(state.image.clone());
        Ok(StateMachine {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                state: Mutex::new(state),
                image_tx,
                snapshot: Mutex::new(snapshot),
                bytes_since_snapshot: AtomicU64::new(0),
                snapshot_due_bytes,
                snapshot_due: Notify::new(),
            }),
        })
    }

    /// Whether a snapshot is on disk.
    pub fn has_snapshot(&self) -> bool {
        self.inner.snapshot.lock().is_some()
    }

    /// The latest applied image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.inner.state.lock().image.clone()
    }

    /// Every applied image, newest first.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.inner.image_tx.subscribe()
    }

    /// Bytes of records applied since the last snapshot.
    pub fn bytes_since_snapshot(&self) -> u64 {
        self.inner.bytes_since_snapshot.load(Ordering::Acquire)
    }

    /// Resolves when enough bytes were applied since the last snapshot for a new one.
    pub async fn snapshot_due(&self) {
        self.inner.snapshot_due.notified().await
    }

    /// The size of the current snapshot's data in bytes, if there is one.
    pub fn snapshot_size(&self) -> Option<usize> {
        self.inner.snapshot.lock().as_ref().map(|(_, d)| d.len())
    }

    /// Writes `image` as the snapshot at `meta` (the first snapshot of a migrated log).
    pub fn seed(&self, meta: Meta, image: MetadataImage) -> Result<()> {
        self.inner.store(meta, image)
    }
}

impl Inner {
    /// Makes (`meta`, `image`) the current state and the snapshot on disk.
    fn store(&self, meta: Meta, image: MetadataImage) -> Result<()> {
        let data = serde_json::to_vec(&image).map_err(snapshot_err)?;
        self.persist(&meta, &data)?;
        {
            let mut state = self.state.lock();
            state.last_applied = meta.last_log_id;
            state.membership = meta.last_membership.clone();
            state.image = Arc::new(image);
            self.image_tx.send_replace(state.image.clone());
        }
        *self.snapshot.lock() = Some((meta, Arc::new(data)));
        self.bytes_since_snapshot.store(0, Ordering::Release);
        Ok(())
    }

    fn persist(&self, meta: &Meta, data: &[u8]) -> Result<()> {
        let mut file = serde_json::to_vec(meta).map_err(snapshot_err)?;
        file.push(b'\n');
        file.extend_from_slice(data);
        write_atomically(&self.dir, SNAPSHOT_FILE, &file, true).map_err(snapshot_err)
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>> {
        let state = self.inner.state.lock().clone();
        let data = serde_json::to_vec(&*state.image).map_err(snapshot_err)?;
        let snapshot_id = match state.last_applied {
            Some(l) => format!(
                "{}-{}-{}",
                l.leader_id.term,
                l.index,
                strom_storage::now_ms()
            ),
            None => format!("none-{}", strom_storage::now_ms()),
        };
        let meta = Meta {
            last_log_id: state.last_applied,
            last_membership: state.membership.clone(),
            snapshot_id,
        };
        self.inner.persist(&meta, &data)?;
        self.inner.bytes_since_snapshot.store(0, Ordering::Release);
        tracing::info!(
            last_index = state.last_applied.map(|l| l.index),
            bytes = data.len(),
            "metadata snapshot written"
        );
        let data = Arc::new(data);
        *self.inner.snapshot.lock() = Some((meta.clone(), data.clone()));
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new((*data).clone())),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>)> {
        let state = self.inner.state.lock();
        Ok((state.last_applied, state.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<()>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut state = self.inner.state.lock();
        let mut image = (*state.image).clone();
        let mut replies = Vec::new();
        let mut bytes = 0u64;
        for entry in entries {
            let index = entry.log_id.index as i64;
            match &entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(command) => {
                    for r in &command.records {
                        image.apply(index, r);
                        bytes += r.to_bytes().len() as u64;
                    }
                }
                EntryPayload::Membership(m) => {
                    state.membership = StoredMembership::new(Some(entry.log_id), m.clone());
                }
            }
            image.offset = index;
            state.last_applied = Some(entry.log_id);
            replies.push(());
        }
        state.image = Arc::new(image);
        self.inner.image_tx.send_replace(state.image.clone());
        drop(state);
        let total = self
            .inner
            .bytes_since_snapshot
            .fetch_add(bytes, Ordering::AcqRel)
            + bytes;
        if bytes > 0 && total >= self.inner.snapshot_due_bytes {
            self.inner.snapshot_due.notify_one();
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<()> {
        let mut image: MetadataImage =
            serde_json::from_slice(snapshot.get_ref()).map_err(sm_err)?;
        image.reindex();
        tracing::info!(
            last_index = meta.last_log_id.map(|l| l.index),
            topics = image.topics.len(),
            "installed a metadata snapshot from the leader"
        );
        self.inner.store(meta.clone(), image)
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>> {
        Ok(self
            .inner
            .snapshot
            .lock()
            .as_ref()
            .map(|(meta, data)| Snapshot {
                meta: meta.clone(),
                snapshot: Box::new(Cursor::new((**data).clone())),
            }))
    }
}
