//! [`LogStore`]: openraft's log storage on a Strom partition log.
//!
//! On disk, under `<first log dir>/__cluster_metadata-0/`:
//! - the segments of a `strom-storage` [`Log`]: Raft entry `i` is the one-record batch at
//!   offset `i`, its partition leader epoch the entry's term and its value the entry as JSON
//!   (a metadata command, a membership change or a leader's blank entry);
//! - `quorum-state`: the vote and the last purged log id, as JSON, replaced atomically
//!   (written, fsynced, renamed, directory fsynced) before openraft is told it is saved, so
//!   a voter killed at any moment never votes twice in one term;
//! - `committed`: the last committed log id, a hint written without fsync (losing it only
//!   means waiting for the leader to say again what is committed).
//!
//! Appends are fsynced before openraft hears they are done. Thread-safe: every method takes
//! the inner mutex; the reader openraft asks for is a clone sharing it.

use std::fmt::Debug;
use std::io::Write;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    AnyError, Entry, LogId, LogState, RaftLogReader, StorageError, StorageIOError, Vote,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use strom_storage::{Log, LogConfig, OpenOptions};
use strom_types::batch;
use strom_types::compression::Compression;
use strom_types::record::BatchBuilder;
use strom_types::TopicPartition;

use super::TypeConfig;

/// The durable Raft state besides the entries.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct QuorumState {
    vote: Option<Vote<u64>>,
    purged: Option<LogId<u64>>,
}

/// openraft's log storage; cheap to clone (the clones share one log).
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Inner>,
}

struct Inner {
    log: Arc<Log>,
    dir: PathBuf,
    state: Mutex<QuorumState>,
}

/// Name of the vote file (Kafka's KRaft keeps its `quorum-state` beside the log too).
pub const QUORUM_STATE: &str = "quorum-state";
const COMMITTED: &str = "committed";

type Result<T> = std::result::Result<T, StorageError<u64>>;

fn read_err(e: impl std::error::Error + 'static) -> StorageError<u64> {
    StorageIOError::read_logs(AnyError::new(&e)).into()
}

fn write_err(e: impl std::error::Error + 'static) -> StorageError<u64> {
    StorageIOError::write_logs(AnyError::new(&e)).into()
}

impl LogStore {
    /// Opens the log in `dir` (creating it), with segments of `segment_bytes`.
    pub fn open(
        dir: &Path,
        segment_bytes: u64,
    ) -> std::result::Result<LogStore, crate::MetadataError> {
        std::fs::create_dir_all(dir).map_err(|source| strom_storage::StorageError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let config = LogConfig {
            segment_bytes,
            ..LogConfig::default()
        };
        let (log, report) = Log::open(
            dir,
            TopicPartition::new("__cluster_metadata", 0),
            config,
            OpenOptions::standalone(),
        )?;
        if report.bytes_truncated > 0 {
            tracing::warn!(
                bytes = report.bytes_truncated,
                "metadata log had a torn tail"
            );
        }
        let state = match std::fs::read(dir.join(QUORUM_STATE)) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|source| crate::MetadataError::Corrupt {
                    what: dir.join(QUORUM_STATE).display().to_string(),
                    source,
                })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => QuorumState::default(),
            Err(source) => {
                return Err(strom_storage::StorageError::Io {
                    path: dir.join(QUORUM_STATE),
                    source,
                }
                .into())
            }
        };
        Ok(LogStore {
            inner: Arc::new(Inner {
                log,
                dir: dir.to_path_buf(),
                state: Mutex::new(state),
            }),
        })
    }

    /// Whether this log has ever held Raft state (a vote or an entry).
    pub fn is_fresh(&self) -> bool {
        let state = self.inner.state.lock();
        state.vote.is_none() && state.purged.is_none() && self.inner.log.log_end_offset() == 0
    }

    /// Bytes the segments hold.
    pub fn size(&self) -> u64 {
        self.inner.log.size()
    }

    /// Segments on disk.
    pub fn segment_count(&self) -> usize {
        self.inner.log.segment_count()
    }

    /// Closes the log.
    pub fn close(&self) {
        if let Err(e) = self.inner.log.close() {
            tracing::warn!(error = %e, "closing the metadata log");
        }
    }

    /// Records the purge point as if a snapshot up to `log_id` had been taken before any
    /// entry (used once, when a pre-Raft metadata log becomes the first snapshot).
    pub fn seed_purged(&self, log_id: LogId<u64>) -> Result<()> {
        // Truncate before saving: until quorum-state exists the migration is redone.
        self.inner
            .log
            .truncate_fully_and_start_at(log_id.index as i64 + 1)
            .map_err(write_err)?;
        let mut state = self.inner.state.lock();
        state.purged = Some(log_id);
        self.inner.save(&state)
    }

    fn entries(&self, start: u64, end: u64) -> Result<Vec<Entry<TypeConfig>>> {
        let mut out = Vec::new();
        let end = end.min(i64::MAX as u64) as i64;
        self.scan(start as i64, end, |at, value| {
            let entry: Entry<TypeConfig> =
                serde_json::from_slice(value).map_err(|source| crate::MetadataError::Corrupt {
                    what: format!("metadata log entry at offset {at}"),
                    source,
                })?;
            out.push(entry);
            Ok(())
        })
        .map_err(read_err)?;
        Ok(out)
    }

    /// Calls `f` with the offset and value of every record in the log, in order (to read a
    /// log written before the quorum).
    pub fn for_each_value(
        &self,
        f: impl FnMut(i64, &[u8]) -> std::result::Result<(), crate::MetadataError>,
    ) -> std::result::Result<(), crate::MetadataError> {
        self.scan(0, i64::MAX, f)
    }

    /// Calls `f` for each record with an offset in `start..end`.
    fn scan(
        &self,
        start: i64,
        end: i64,
        mut f: impl FnMut(i64, &[u8]) -> std::result::Result<(), crate::MetadataError>,
    ) -> std::result::Result<(), crate::MetadataError> {
        let log = &self.inner.log;
        let mut offset = start.max(log.log_start_offset());
        let end = end.min(log.log_end_offset());
        while offset < end {
            let info = log.read(offset, 1 << 20, None, true)?;
            let Some(region) = info.region else { break };
            let bytes = region
                .read_to_vec()
                .map_err(|source| strom_storage::StorageError::Io {
                    path: log.dir(),
                    source,
                })?;
            let before = offset;
            for b in batch::batches(&bytes) {
                let b = b?;
                offset = b.header().next_offset();
                b.try_for_each_record(64 << 20, |at, r| {
                    if at >= start && at < end {
                        f(at, r.value.unwrap_or_default())?;
                    }
                    Ok::<(), crate::MetadataError>(())
                })?;
                if offset >= end {
                    break;
                }
            }
            if offset == before {
                break;
            }
        }
        Ok(())
    }
}

impl Inner {
    /// Replaces `quorum-state` durably.
    fn save(&self, state: &QuorumState) -> Result<()> {
        let bytes = serde_json::to_vec(state).map_err(write_err)?;
        write_atomically(&self.dir, QUORUM_STATE, &bytes, true)
            .map_err(|e| StorageIOError::write_vote(AnyError::new(&e)).into())
    }
}

/// Writes `name` in `dir` by a rename, so a reader sees the old or the new content, never a
/// mix; with `durable`, the file and the directory are fsynced first.
pub(crate) fn write_atomically(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    durable: bool,
) -> std::io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    if durable {
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(name))?;
    if durable {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>> {
        let start = match range.start_bound() {
            Bound::Included(s) => *s,
            Bound::Excluded(s) => s + 1,
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(e) => e.saturating_add(1),
            Bound::Excluded(e) => *e,
            Bound::Unbounded => u64::MAX,
        };
        self.entries(start, end)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>> {
        let purged = self.inner.state.lock().purged;
        let end = self.inner.log.log_end_offset();
        let has_entry = end > 0 && purged.is_none_or(|p| (end - 1) as u64 > p.index);
        let last = if has_entry {
            self.entries((end - 1) as u64, end as u64)?
                .pop()
                .map(|e| e.log_id)
        } else {
            None
        };
        Ok(LogState {
            last_purged_log_id: purged,
            last_log_id: last.or(purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<()> {
        let mut state = self.inner.state.lock();
        let mut next = state.clone();
        next.vote = Some(*vote);
        self.inner.save(&next)?;
        *state = next;
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>> {
        Ok(self.inner.state.lock().vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId<u64>>) -> Result<()> {
        let bytes = serde_json::to_vec(&committed).map_err(write_err)?;
        write_atomically(&self.inner.dir, COMMITTED, &bytes, false).map_err(write_err)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>> {
        // A torn or missing hint is no hint.
        Ok(std::fs::read(self.inner.dir.join(COMMITTED))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let log = &self.inner.log;
        let now = strom_storage::now_ms();
        let mut bytes = Vec::new();
        for entry in entries {
            let value = serde_json::to_vec(&entry).map_err(write_err)?;
            let mut builder = BatchBuilder::new(Compression::None)
                .partition_leader_epoch(entry.log_id.leader_id.term.min(i32::MAX as u64) as i32);
            builder.append(now, None, Some(&value), &[]);
            let b = builder
                .build(entry.log_id.index as i64)
                .map_err(write_err)?;
            bytes.extend_from_slice(&b);
        }
        if !bytes.is_empty() {
            log.append_as_follower(&bytes, now).map_err(write_err)?;
        }
        let flushed = log.flush().map_err(std::io::Error::other);
        callback.log_io_completed(flushed);
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<()> {
        self.inner
            .log
            .truncate_to(log_id.index as i64)
            .map_err(write_err)?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<()> {
        let mut state = self.inner.state.lock();
        let mut next = state.clone();
        next.purged = Some(log_id);
        self.inner.save(&next)?;
        *state = next;
        drop(state);
        let log = &self.inner.log;
        let start = (log_id.index as i64 + 1).min(log.log_end_offset());
        log.advance_log_start_offset(start).map_err(write_err)?;
        Ok(())
    }
}
