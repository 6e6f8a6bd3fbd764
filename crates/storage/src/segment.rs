//! One segment of a partition's log: `<base>.log` with its `.index` and `.timeindex` (and
//! the `.txnindex` the log keeps beside it, renamed and deleted with it).
//!
//! The `.log` file is a plain concatenation of v2 record batches, exactly as appended.
//! Appends happen only on the active segment and only under the owning log's append lock;
//! the committed size is published with release ordering after the bytes are written, so a
//! reader that loads it sees only whole batches. Readers take the index lock shared and never
//! block each other. The `.log` fd and (for inactive segments) the indexes are opened lazily
//! and may be closed by [`FileHandles`] when idle.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use strom_types::batch::{BatchHeader, RecordBatch, TimestampType, HEADER_LEN, NO_TIMESTAMP};

use crate::error::{IoContext, Result};
use crate::handles::FileHandles;
use crate::index::{OffsetEntry, OffsetIndex, TimeIndex};
use crate::region::FileRegion;

/// Suffix of a segment's record file.
pub const LOG_SUFFIX: &str = "log";
/// Suffix of the offset index.
pub const INDEX_SUFFIX: &str = "index";
/// Suffix of the time index.
pub const TIME_INDEX_SUFFIX: &str = "timeindex";
/// Suffix added to files awaiting asynchronous deletion.
pub const DELETED_SUFFIX: &str = "deleted";
/// Suffix of a compacted segment being written.
pub const CLEANED_SUFFIX: &str = "cleaned";
/// Suffix of a compacted segment ready to replace the originals.
pub const SWAP_SUFFIX: &str = "swap";

/// `<20-digit base offset>.<suffix>`, Kafka's segment file name.
pub fn file_name(base_offset: i64, suffix: &str) -> String {
    format!("{base_offset:020}.{suffix}")
}

/// What append needs to know of each batch, gathered while validating it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchMeta {
    pub base_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
    pub size: u32,
}

impl BatchMeta {
    pub(crate) fn of(h: &BatchHeader) -> Self {
        BatchMeta {
            base_offset: h.base_offset,
            last_offset: h.last_offset(),
            max_timestamp: h.max_timestamp,
            size: h.size() as u32,
        }
    }
}

/// The indexes plus the running state that decides when to add entries.
#[derive(Debug)]
pub(crate) struct Indexes {
    pub offset: OffsetIndex,
    pub time: TimeIndex,
    bytes_since_entry: u64,
    max_timestamp: i64,
    offset_of_max_timestamp: i64,
}

impl Indexes {
    fn new(max_entries: usize) -> Self {
        Indexes {
            offset: OffsetIndex::new(max_entries),
            time: TimeIndex::new(max_entries * 8 / 12),
            bytes_since_entry: 0,
            max_timestamp: NO_TIMESTAMP,
            offset_of_max_timestamp: -1,
        }
    }

    /// Accounts one batch written at `position`; adds index entries every `interval` bytes.
    fn add_batch(&mut self, base: i64, position: u64, batch: &BatchMeta, interval: u64) {
        if batch.max_timestamp > self.max_timestamp {
            self.max_timestamp = batch.max_timestamp;
            self.offset_of_max_timestamp = batch.base_offset;
        }
        if self.bytes_since_entry > interval {
            self.offset.push(OffsetEntry {
                relative_offset: (batch.base_offset - base) as u32,
                position: position as u32,
            });
            self.push_time_entry(base);
            self.bytes_since_entry = 0;
        }
        self.bytes_since_entry += u64::from(batch.size);
    }

    /// The final time index entry Kafka writes when a segment stops being active, so the last
    /// entry holds the segment's largest timestamp.
    fn seal(&mut self, base: i64) {
        self.push_time_entry(base);
    }

    /// Indexes the largest timestamp so far, unless no record had a timestamp yet (Kafka
    /// never indexes -1: it would point nowhere).
    fn push_time_entry(&mut self, base: i64) {
        if self.max_timestamp >= 0 && self.offset_of_max_timestamp >= base {
            self.time.maybe_push(
                self.max_timestamp,
                (self.offset_of_max_timestamp - base) as u32,
            );
        }
    }

    fn memory(&self) -> usize {
        self.offset.memory() + self.time.memory()
    }
}

/// One segment. Shared (`Arc`) between the log, readers and the handle registry.
#[derive(Debug)]
pub struct Segment {
    id: u64,
    base_offset: i64,
    dir: PathBuf,
    handles: Arc<FileHandles>,
    index_interval: u64,
    max_index_entries: usize,
    /// Committed bytes of the `.log` file.
    size: AtomicU64,
    /// Largest timestamp in the segment; `i64::MIN` while unknown (not yet loaded).
    max_timestamp: AtomicI64,
    /// Max timestamp of the first batch (Kafka's rolling-based timestamp), or NO_TIMESTAMP.
    first_batch_timestamp: AtomicI64,
    last_used: AtomicU64,
    active: AtomicBool,
    file: Mutex<Option<Arc<File>>>,
    indexes: RwLock<Option<Indexes>>,
    /// Extra suffix the files carry now (`cleaned`, `swap`, `deleted`), if any.
    extra_suffix: RwLock<Option<&'static str>>,
    /// Renamed for deletion: keep the fd open so readers holding the segment still work.
    deleted: AtomicBool,
    /// Bytes were written since the last fsync.
    unflushed: AtomicBool,
}

const UNKNOWN_TIMESTAMP: i64 = i64::MIN;
/// Cap on a stored batch's decompressed records when the log itself reads them.
pub(crate) const MAX_DECOMPRESSED: usize = 1 << 30;

impl Segment {
    fn build(
        dir: &Path,
        base_offset: i64,
        handles: Arc<FileHandles>,
        index_interval: u64,
        max_index_entries: usize,
        size: u64,
    ) -> Segment {
        Segment {
            id: handles.next_id(),
            base_offset,
            dir: dir.to_path_buf(),
            index_interval,
            max_index_entries,
            size: AtomicU64::new(size),
            max_timestamp: AtomicI64::new(UNKNOWN_TIMESTAMP),
            first_batch_timestamp: AtomicI64::new(UNKNOWN_TIMESTAMP),
            last_used: AtomicU64::new(handles.tick()),
            active: AtomicBool::new(false),
            file: Mutex::new(None),
            indexes: RwLock::new(None),
            extra_suffix: RwLock::new(None),
            deleted: AtomicBool::new(false),
            unflushed: AtomicBool::new(false),
            handles,
        }
    }

    /// Creates a new, empty, active segment (its files are created now).
    pub(crate) fn create(
        dir: &Path,
        base_offset: i64,
        handles: Arc<FileHandles>,
        index_interval: u64,
        max_index_entries: usize,
    ) -> Result<Arc<Segment>> {
        Segment::create_named(
            dir,
            base_offset,
            handles,
            index_interval,
            max_index_entries,
            None,
        )
    }

    /// Creates a new, empty segment whose files carry an extra suffix (e.g. `.cleaned`).
    pub(crate) fn create_named(
        dir: &Path,
        base_offset: i64,
        handles: Arc<FileHandles>,
        index_interval: u64,
        max_index_entries: usize,
        extra_suffix: Option<&'static str>,
    ) -> Result<Arc<Segment>> {
        let seg = Segment::build(
            dir,
            base_offset,
            handles,
            index_interval,
            max_index_entries,
            0,
        );
        seg.set_extra_suffix(extra_suffix);
        let path = seg.path(LOG_SUFFIX);
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .at(&path)?;
        for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            let p = seg.path(suffix);
            File::create(&p).at(&p)?;
        }
        seg.max_timestamp.store(NO_TIMESTAMP, Ordering::Relaxed);
        seg.first_batch_timestamp
            .store(NO_TIMESTAMP, Ordering::Relaxed);
        *seg.indexes.write() = Some(Indexes::new(max_index_entries));
        seg.active.store(true, Ordering::Release);
        Ok(Arc::new(seg))
    }

    /// A handle on an existing segment whose `.log` has `size` bytes; nothing is read yet.
    pub(crate) fn existing(
        dir: &Path,
        base_offset: i64,
        handles: Arc<FileHandles>,
        index_interval: u64,
        max_index_entries: usize,
        size: u64,
    ) -> Arc<Segment> {
        Arc::new(Segment::build(
            dir,
            base_offset,
            handles,
            index_interval,
            max_index_entries,
            size,
        ))
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Offset of the first record this segment may hold.
    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }

    /// Committed size of the `.log` file in bytes.
    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    /// Path of one of this segment's files, as it is named now.
    pub fn path(&self, suffix: &str) -> PathBuf {
        let name = file_name(self.base_offset, suffix);
        match *self.extra_suffix.read() {
            Some(extra) => self.dir.join(format!("{name}.{extra}")),
            None => self.dir.join(name),
        }
    }

    /// Sets the extra suffix of a segment that is being created under a temporary name.
    pub(crate) fn set_extra_suffix(&self, extra: Option<&'static str>) {
        *self.extra_suffix.write() = extra;
    }

    pub(crate) fn last_used(&self) -> u64 {
        self.last_used.load(Ordering::Relaxed)
    }

    pub(crate) fn is_active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    /// The open `.log` file, opening it if needed.
    pub(crate) fn file(self: &Arc<Self>) -> Result<Arc<File>> {
        self.last_used.store(self.handles.tick(), Ordering::Relaxed);
        let mut guard = self.file.lock();
        if let Some(f) = guard.as_ref() {
            return Ok(f.clone());
        }
        let path = self.path(LOG_SUFFIX);
        let f = Arc::new(
            OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .at(&path)?,
        );
        *guard = Some(f.clone());
        drop(guard);
        self.handles.register(self);
        Ok(f)
    }

    /// Runs `f` on the indexes, loading (or rebuilding) them first if needed.
    fn with_indexes<T>(self: &Arc<Self>, f: impl FnOnce(&Indexes) -> T) -> Result<T> {
        self.last_used.store(self.handles.tick(), Ordering::Relaxed);
        {
            let guard = self.indexes.read();
            if let Some(ix) = guard.as_ref() {
                return Ok(f(ix));
            }
        }
        let loaded = self.load_indexes()?;
        let mut guard = self.indexes.write();
        let ix = guard.get_or_insert(loaded);
        let out = f(ix);
        drop(guard);
        // Loaded indexes count as an open handle so idle segments drop them again.
        self.file()?;
        Ok(out)
    }

    /// Reads the index files; rebuilds them from the `.log` if missing or inconsistent.
    fn load_indexes(self: &Arc<Self>) -> Result<Indexes> {
        let size = self.size();
        let offset_path = self.path(INDEX_SUFFIX);
        let time_path = self.path(TIME_INDEX_SUFFIX);
        let offset = OffsetIndex::read(&offset_path, self.max_index_entries).at(&offset_path)?;
        let time = TimeIndex::read(&time_path, self.max_index_entries).at(&time_path)?;
        match (offset, time) {
            (Some(offset), Some(time))
                if offset.is_consistent(size)
                    && time.is_consistent()
                    && self.last_entry_points_at_a_batch(&offset, size)? =>
            {
                let max_ts = time.last().map(|e| e.timestamp).unwrap_or(NO_TIMESTAMP);
                let max_off = time
                    .last()
                    .map(|e| self.base_offset + i64::from(e.relative_offset))
                    .unwrap_or(-1);
                Ok(Indexes {
                    offset,
                    time,
                    bytes_since_entry: 0,
                    max_timestamp: max_ts,
                    offset_of_max_timestamp: max_off,
                })
            }
            _ => {
                tracing::warn!(segment = %self.path(LOG_SUFFIX).display(), "index missing or corrupt; rebuilding it from the log");
                let file = self.file()?;
                self.rebuild_indexes(&file, size)
            }
        }
    }

    /// True when the offset index's last entry points at a batch header with its offset (an
    /// index cut short or left stale by a power loss fails this).
    fn last_entry_points_at_a_batch(
        self: &Arc<Self>,
        offset: &OffsetIndex,
        size: u64,
    ) -> Result<bool> {
        let Some(last) = offset.last() else {
            return Ok(true);
        };
        let file = self.file()?;
        let header =
            read_header(&file, u64::from(last.position), size).at_with(|| self.path(LOG_SUFFIX))?;
        Ok(header
            .is_some_and(|h| h.base_offset == self.base_offset + i64::from(last.relative_offset)))
    }

    /// Rebuilds both indexes from the batches in `[0, size)` and writes them out.
    fn rebuild_indexes(&self, file: &File, size: u64) -> Result<Indexes> {
        let mut ix = Indexes::new(self.max_index_entries);
        let mut pos = 0;
        let mut headers = HeaderCursor::new(file, size);
        while pos < size {
            let Some(h) = headers.at(pos).at_with(|| self.path(LOG_SUFFIX))? else {
                break;
            };
            ix.add_batch(
                self.base_offset,
                pos,
                &BatchMeta::of(&h),
                self.index_interval,
            );
            pos += h.size() as u64;
        }
        if !self.is_active() {
            ix.seal(self.base_offset);
        }
        let offset_path = self.path(INDEX_SUFFIX);
        let time_path = self.path(TIME_INDEX_SUFFIX);
        ix.offset.write_all(&offset_path).at(&offset_path)?;
        ix.time.write_all(&time_path).at(&time_path)?;
        Ok(ix)
    }

    /// Closes the fd and drops indexes of an idle inactive segment. False if busy.
    pub(crate) fn try_close_handles(&self) -> bool {
        if self.deleted.load(Ordering::Acquire) {
            return true;
        }
        let Some(mut file) = self.file.try_lock() else {
            return false;
        };
        if !self.is_active() {
            let Some(mut ix) = self.indexes.try_write() else {
                return false;
            };
            *ix = None;
        }
        *file = None;
        true
    }

    /// True when the offset index or the time index has no room for another entry, or the
    /// offsets no longer fit a relative u32.
    pub(crate) fn index_full(&self) -> bool {
        self.indexes
            .read()
            .as_ref()
            .is_some_and(|ix| ix.offset.is_full() || ix.time.is_full())
    }

    /// The timestamp segment.ms counts from: the first batch's max timestamp.
    pub(crate) fn rolling_base_timestamp(self: &Arc<Self>) -> Result<i64> {
        let ts = self.first_batch_timestamp.load(Ordering::Relaxed);
        if ts != UNKNOWN_TIMESTAMP {
            return Ok(ts);
        }
        let size = self.size();
        let file = self.file()?;
        let ts = read_header(&file, 0, size)
            .at_with(|| self.path(LOG_SUFFIX))?
            .map(|h| h.max_timestamp)
            .unwrap_or(NO_TIMESTAMP);
        self.first_batch_timestamp.store(ts, Ordering::Relaxed);
        Ok(ts)
    }

    /// Appends batches whose offsets are assigned; `metas` describes each batch of `data`.
    /// Caller holds the log's append lock.
    pub(crate) fn append(self: &Arc<Self>, data: &[u8], metas: &[BatchMeta]) -> Result<()> {
        let position = self.size.load(Ordering::Relaxed);
        let file = self.file()?;
        file.write_all_at(data, position)
            .at_with(|| self.path(LOG_SUFFIX))?;
        // Marked after the write: a concurrent flush that clears the mark either ran its
        // fsync after these bytes were written, or leaves the mark for the next flush.
        self.unflushed.store(true, Ordering::Release);
        let mut guard = self.indexes.write();
        if guard.is_none() {
            drop(guard);
            let loaded = self.load_indexes()?;
            guard = self.indexes.write();
            *guard = Some(loaded);
        }
        if let Some(ix) = guard.as_mut() {
            let mut pos = position;
            for m in metas {
                ix.add_batch(self.base_offset, pos, m, self.index_interval);
                pos += u64::from(m.size);
            }
            self.max_timestamp
                .store(ix.max_timestamp, Ordering::Relaxed);
        }
        drop(guard);
        if position == 0 {
            if let Some(first) = metas.first() {
                self.first_batch_timestamp
                    .store(first.max_timestamp, Ordering::Relaxed);
            }
        }
        self.size
            .store(position + data.len() as u64, Ordering::Release);
        Ok(())
    }

    /// When the `.log` file was last written, in ms (Kafka's retention fallback).
    pub(crate) fn last_modified_ms(&self) -> i64 {
        std::fs::metadata(self.path(LOG_SUFFIX))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as i64)
            .unwrap_or(i64::MAX)
    }

    /// The largest timestamp of any record here (NO_TIMESTAMP when empty).
    pub fn max_timestamp(self: &Arc<Self>) -> Result<i64> {
        let ts = self.max_timestamp.load(Ordering::Relaxed);
        if ts != UNKNOWN_TIMESTAMP {
            return Ok(ts);
        }
        let ts = self.with_indexes(|ix| ix.max_timestamp)?;
        self.max_timestamp.store(ts, Ordering::Relaxed);
        Ok(ts)
    }

    /// Finds the first batch whose last offset is at or past `offset`, scanning at most from
    /// the nearest index entry up to `limit` bytes. Returns its position and header.
    pub(crate) fn find_batch(
        self: &Arc<Self>,
        offset: i64,
        limit: u64,
    ) -> Result<Option<(u64, BatchHeader)>> {
        let file = self.file()?;
        let mut headers = HeaderCursor::new(&file, limit);
        self.find_batch_with(&mut headers, offset)
    }

    /// [`Segment::find_batch`] through a caller's header cursor (so later scans reuse it).
    fn find_batch_with(
        self: &Arc<Self>,
        headers: &mut HeaderCursor<'_>,
        offset: i64,
    ) -> Result<Option<(u64, BatchHeader)>> {
        let rel = (offset - self.base_offset).clamp(0, u32::MAX as i64) as u32;
        let start = self.with_indexes(|ix| ix.offset.lookup(rel).position)?;
        let mut pos = u64::from(start);
        while pos < headers.limit {
            let Some(h) = headers.at(pos).at_with(|| self.path(LOG_SUFFIX))? else {
                return Ok(None);
            };
            if h.last_offset() >= offset {
                return Ok(Some((pos, h)));
            }
            pos += h.size() as u64;
        }
        Ok(None)
    }

    /// Reads whole batches from the one holding `offset`, ending before the first batch that
    /// reaches `upper_bound` (exclusive; `None` = no bound), within `max_bytes` unless
    /// `min_one_batch` and the first batch alone is larger. `None` when no batch qualifies.
    pub(crate) fn read(
        self: &Arc<Self>,
        offset: i64,
        max_bytes: u64,
        upper_bound: Option<i64>,
        min_one_batch: bool,
    ) -> Result<Option<(FileRegion, BatchHeader)>> {
        let size = self.size();
        let file = self.file()?;
        let mut headers = HeaderCursor::new(&file, size);
        let Some((start, first)) = self.find_batch_with(&mut headers, offset)? else {
            return Ok(None);
        };
        let mut end_limit = size;
        if let Some(bound) = upper_bound {
            if first.last_offset() >= bound {
                return Ok(None);
            }
            if let Some((pos, _)) = self.find_batch_with(&mut headers, bound)? {
                end_limit = pos;
            }
        }
        let end = if end_limit - start <= max_bytes {
            end_limit
        } else if first.size() as u64 > max_bytes {
            // Not even the first batch fits: it alone, or nothing.
            if min_one_batch {
                start + first.size() as u64
            } else {
                start
            }
        } else {
            let target = start + max_bytes;
            let hint = self.with_indexes(|ix| {
                u64::from(
                    ix.offset
                        .lookup_position(target.min(u32::MAX as u64) as u32)
                        .position,
                )
            })?;
            let mut pos = hint.max(start);
            while pos < end_limit {
                let Some(h) = headers.at(pos).at_with(|| self.path(LOG_SUFFIX))? else {
                    break;
                };
                if pos + h.size() as u64 > target {
                    break;
                }
                pos += h.size() as u64;
            }
            pos
        };
        Ok(Some((
            FileRegion::new(file, start, end - start, first.base_offset),
            first,
        )))
    }

    /// The first offset at or after `min_offset` whose record timestamp is at or past
    /// `timestamp`, with that record's timestamp.
    pub(crate) fn offset_for_timestamp(
        self: &Arc<Self>,
        timestamp: i64,
        min_offset: i64,
    ) -> Result<Option<(i64, i64)>> {
        let size = self.size();
        let base = self.base_offset;
        let start = self.with_indexes(|ix| {
            let from = ix
                .time
                .lookup(timestamp)
                .map(|e| e.relative_offset)
                .unwrap_or(0)
                .max((min_offset - base).clamp(0, u32::MAX as i64) as u32);
            u64::from(ix.offset.lookup(from).position)
        })?;
        let file = self.file()?;
        let path = self.path(LOG_SUFFIX);
        let mut pos = start;
        let mut headers = HeaderCursor::new(&file, size);
        while pos < size {
            let Some(h) = headers.at(pos).at(&path)? else {
                break;
            };
            if h.max_timestamp >= timestamp && h.last_offset() >= min_offset {
                let mut buf = vec![0u8; h.size()];
                file.read_exact_at(&mut buf, pos).at(&path)?;
                if let Some(found) = first_record_at_or_after(&buf, timestamp, min_offset) {
                    return Ok(Some(found));
                }
            }
            pos += h.size() as u64;
        }
        Ok(None)
    }

    /// Removes every batch whose last offset is at or past `offset`. Returns bytes removed.
    pub(crate) fn truncate_to(self: &Arc<Self>, offset: i64) -> Result<u64> {
        let size = self.size();
        let Some((pos, _)) = self.find_batch(offset, size)? else {
            return Ok(0);
        };
        let file = self.file()?;
        file.set_len(pos).at_with(|| self.path(LOG_SUFFIX))?;
        self.unflushed.store(true, Ordering::Release);
        // Truncation is rare (replica divergence, tests): rebuild the indexes from what is left.
        let ix = self.rebuild_indexes(&file, pos)?;
        self.max_timestamp
            .store(ix.max_timestamp, Ordering::Relaxed);
        *self.indexes.write() = Some(ix);
        if pos == 0 {
            self.first_batch_timestamp
                .store(NO_TIMESTAMP, Ordering::Relaxed);
        }
        self.size.store(pos, Ordering::Release);
        Ok(size - pos)
    }

    /// Marks the segment active before recovery, so recovery does not seal its time index.
    pub(crate) fn reactivate_flag(&self) {
        self.active.store(true, Ordering::Release);
    }

    /// Makes this segment active again (after a truncation removed the segments after it).
    pub(crate) fn reactivate(self: &Arc<Self>) -> Result<()> {
        self.with_indexes(|_| ())?;
        self.active.store(true, Ordering::Release);
        Ok(())
    }

    /// Called when a newer segment takes over appends: seals and writes the indexes.
    pub(crate) fn become_inactive(self: &Arc<Self>) -> Result<()> {
        let mut guard = self.indexes.write();
        if let Some(ix) = guard.as_mut() {
            ix.seal(self.base_offset);
            self.max_timestamp
                .store(ix.max_timestamp, Ordering::Relaxed);
        }
        drop(guard);
        self.flush_indexes()?;
        self.active.store(false, Ordering::Release);
        Ok(())
    }

    /// Writes pending index entries to their files.
    pub(crate) fn flush_indexes(&self) -> Result<()> {
        let mut guard = self.indexes.write();
        if let Some(ix) = guard.as_mut() {
            let p = self.path(INDEX_SUFFIX);
            ix.offset.persist(&p).at(&p)?;
            let p = self.path(TIME_INDEX_SUFFIX);
            ix.time.persist(&p).at(&p)?;
        }
        Ok(())
    }

    /// fsyncs the `.log` and writes the indexes.
    pub(crate) fn flush(self: &Arc<Self>) -> Result<()> {
        if self.unflushed.swap(false, Ordering::AcqRel) {
            // Reopened if the budget closed the fd: fsync covers the inode, whatever the fd.
            let synced = self
                .file()
                .and_then(|f| f.sync_data().at_with(|| self.path(LOG_SUFFIX)));
            if let Err(e) = synced {
                self.unflushed.store(true, Ordering::Release);
                return Err(e);
            }
        }
        self.flush_indexes()
    }

    /// Checks every batch from the start, truncates at the first invalid byte, and rebuilds the
    /// indexes. `min_offset` is the lowest base offset a batch may have.
    pub(crate) fn recover(self: &Arc<Self>) -> Result<RecoveryOutcome> {
        let path = self.path(LOG_SUFFIX);
        let file = self.file()?;
        let file_len = file.metadata().at(&path)?.len();
        let mut reader =
            BufReader::with_capacity(1 << 20, PositionalReader::new(&file, 0, file_len));
        let mut ix = Indexes::new(self.max_index_entries);
        let mut pos: u64 = 0;
        let mut next_offset = self.base_offset;
        let mut batches = 0u64;
        let mut buf = Vec::with_capacity(64 * 1024);
        let mut problem: Option<String> = None;
        loop {
            if pos == file_len {
                break;
            }
            if file_len - pos < HEADER_LEN as u64 {
                problem = Some(format!(
                    "{} trailing bytes, too short for a batch",
                    file_len - pos
                ));
                break;
            }
            buf.resize(HEADER_LEN, 0);
            reader.read_exact(&mut buf).at(&path)?;
            let header = match BatchHeader::parse(&buf) {
                Ok(h) => h,
                Err(e) => {
                    problem = Some(e.to_string());
                    break;
                }
            };
            let size = header.size() as u64;
            if size > file_len - pos {
                problem = Some(format!(
                    "batch at position {pos} claims {size} bytes, only {} remain",
                    file_len - pos
                ));
                break;
            }
            buf.resize(size as usize, 0);
            reader.read_exact(&mut buf[HEADER_LEN..]).at(&path)?;
            let batch = match RecordBatch::parse_prefix(&buf) {
                Ok(b) => b,
                Err(e) => {
                    problem = Some(e.to_string());
                    break;
                }
            };
            if let Err(e) = batch.validate_crc() {
                problem = Some(format!("batch at position {pos}: {e}"));
                break;
            }
            if header.base_offset < next_offset
                || header.last_offset_delta < 0
                || header.last_offset() - self.base_offset > u32::MAX as i64
            {
                problem = Some(format!(
                    "batch at position {pos} has offsets {}..={} out of order (expected from {next_offset})",
                    header.base_offset,
                    header.last_offset()
                ));
                break;
            }
            ix.add_batch(
                self.base_offset,
                pos,
                &BatchMeta::of(&header),
                self.index_interval,
            );
            next_offset = header.next_offset();
            pos += size;
            batches += 1;
        }
        let truncated = file_len - pos;
        // Recovered data may have been only in the page cache: it must be fsynced before the
        // recovery point moves past it.
        self.unflushed.store(true, Ordering::Release);
        if truncated > 0 {
            file.set_len(pos).at(&path)?;
            tracing::warn!(
                segment = %path.display(),
                valid_bytes = pos,
                truncated_bytes = truncated,
                reason = problem.as_deref().unwrap_or("unknown"),
                "log recovery truncated an invalid tail"
            );
        }
        let offset_path = self.path(INDEX_SUFFIX);
        let time_path = self.path(TIME_INDEX_SUFFIX);
        if !self.is_active() {
            ix.seal(self.base_offset);
        }
        ix.offset.write_all(&offset_path).at(&offset_path)?;
        ix.time.write_all(&time_path).at(&time_path)?;
        self.max_timestamp
            .store(ix.max_timestamp, Ordering::Relaxed);
        self.first_batch_timestamp
            .store(UNKNOWN_TIMESTAMP, Ordering::Relaxed);
        *self.indexes.write() = Some(ix);
        self.size.store(pos, Ordering::Release);
        Ok(RecoveryOutcome {
            next_offset: (batches > 0).then_some(next_offset),
            truncated_bytes: truncated,
            batches,
        })
    }

    /// The offset after the last batch, by scanning from the last index entry; `None` if empty.
    pub(crate) fn scan_next_offset(self: &Arc<Self>) -> Result<Option<i64>> {
        let size = self.size();
        let start = self.with_indexes(|ix| ix.offset.last().map(|e| e.position).unwrap_or(0))?;
        let file = self.file()?;
        let mut pos = u64::from(start);
        let mut next = None;
        let mut headers = HeaderCursor::new(&file, size);
        while pos < size {
            let Some(h) = headers.at(pos).at_with(|| self.path(LOG_SUFFIX))? else {
                break;
            };
            next = Some(h.next_offset());
            pos += h.size() as u64;
        }
        Ok(next)
    }

    /// Calls `f` with every batch header of the segment and its file position, in order
    /// (headers only: one small buffered read per few batches). Stops at the first header
    /// that does not parse, or when `f` fails.
    pub(crate) fn for_each_header(
        self: &Arc<Self>,
        mut f: impl FnMut(u64, &BatchHeader) -> Result<()>,
    ) -> Result<()> {
        let size = self.size();
        let file = self.file()?;
        let mut headers = HeaderCursor::new(&file, size);
        let mut pos = 0u64;
        while pos < size {
            let Some(h) = headers.at(pos).at_with(|| self.path(LOG_SUFFIX))? else {
                break;
            };
            f(pos, &h)?;
            pos += h.size() as u64;
        }
        Ok(())
    }

    /// The bytes of the batch `h` at `pos` (a small one: recovery reads markers this way).
    pub(crate) fn read_batch(self: &Arc<Self>, pos: u64, h: &BatchHeader) -> Result<Vec<u8>> {
        if pos + h.size() as u64 > self.size() {
            return Err(strom_types::batch::BatchError::Truncated {
                needed: h.size(),
                available: self.size().saturating_sub(pos) as usize,
            }
            .into());
        }
        let mut buf = vec![0u8; h.size()];
        self.file()?
            .read_exact_at(&mut buf, pos)
            .at_with(|| self.path(LOG_SUFFIX))?;
        Ok(buf)
    }

    /// Reads every batch of the segment, in order, calling `f` with each.
    pub(crate) fn for_each_batch(
        self: &Arc<Self>,
        mut f: impl FnMut(RecordBatch<'_>) -> Result<()>,
    ) -> Result<()> {
        let path = self.path(LOG_SUFFIX);
        let size = self.size();
        let file = self.file()?;
        let mut reader = BufReader::with_capacity(1 << 20, PositionalReader::new(&file, 0, size));
        let mut buf = Vec::new();
        let mut pos = 0u64;
        while pos < size {
            buf.resize(HEADER_LEN, 0);
            reader.read_exact(&mut buf).at(&path)?;
            let header = BatchHeader::parse(&buf)?;
            if header.size() as u64 > size - pos {
                // A corrupt length: refuse it rather than allocate what it claims.
                return Err(strom_types::batch::BatchError::Truncated {
                    needed: header.size(),
                    available: (size - pos) as usize,
                }
                .into());
            }
            buf.resize(header.size(), 0);
            reader.read_exact(&mut buf[HEADER_LEN..]).at(&path)?;
            let batch = RecordBatch::parse_prefix(&buf)?;
            f(batch)?;
            pos += header.size() as u64;
        }
        Ok(())
    }

    /// Renames every file of the segment to carry `to` as extra suffix (`None` = the final
    /// name). Returns the new paths.
    pub(crate) fn rename(&self, to: Option<&'static str>) -> Result<Vec<PathBuf>> {
        let mut guard = self.extra_suffix.write();
        let mut out = Vec::new();
        for suffix in [
            LOG_SUFFIX,
            INDEX_SUFFIX,
            TIME_INDEX_SUFFIX,
            crate::txn_index::TXN_INDEX_SUFFIX,
        ] {
            let name = file_name(self.base_offset, suffix);
            let with = |extra: Option<&str>| match extra {
                Some(e) => self.dir.join(format!("{name}.{e}")),
                None => self.dir.join(&name),
            };
            let (from, dest) = (with(*guard), with(to));
            match std::fs::rename(&from, &dest) {
                Ok(()) => out.push(dest),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).at(&from),
            }
        }
        *guard = to;
        Ok(out)
    }

    /// Renames the files to `.deleted` for asynchronous removal. The fd and indexes are loaded
    /// first and kept, so readers still holding this segment keep reading it.
    pub(crate) fn mark_deleted(self: &Arc<Self>) -> Result<Vec<PathBuf>> {
        self.file()?;
        self.with_indexes(|_| ())?;
        self.deleted.store(true, Ordering::Release);
        self.handles.unregister(self.id);
        self.rename(Some(DELETED_SUFFIX))
    }

    /// Releases the fd and registry entry (log close).
    pub(crate) fn close(&self) {
        *self.file.lock() = None;
        self.handles.unregister(self.id);
    }

    /// Bytes of heap this segment holds now (struct plus loaded indexes).
    pub(crate) fn memory(&self) -> usize {
        std::mem::size_of::<Segment>()
            + self.dir.as_os_str().len()
            + self
                .indexes
                .read()
                .as_ref()
                .map(Indexes::memory)
                .unwrap_or(0)
    }
}

/// What recovering a segment found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecoveryOutcome {
    /// Offset after the last valid batch, `None` if no batch survived.
    pub next_offset: Option<i64>,
    /// Bytes cut from the end.
    pub truncated_bytes: u64,
    /// Valid batches kept.
    pub batches: u64,
}

/// Reads the header of the batch at `pos`; `None` when fewer than a header's bytes remain
/// before `limit` or the header does not parse (only possible past committed data).
pub(crate) fn read_header(
    file: &File,
    pos: u64,
    limit: u64,
) -> std::io::Result<Option<BatchHeader>> {
    if limit.saturating_sub(pos) < HEADER_LEN as u64 {
        return Ok(None);
    }
    let mut buf = [0u8; HEADER_LEN];
    file.read_exact_at(&mut buf, pos)?;
    Ok(BatchHeader::parse(&buf).ok())
}

fn first_record_at_or_after(batch: &[u8], timestamp: i64, min_offset: i64) -> Option<(i64, i64)> {
    let batch = RecordBatch::parse_prefix(batch).ok()?;
    let h = *batch.header();
    if h.timestamp_type() == TimestampType::LogAppendTime {
        return Some((h.base_offset.max(min_offset), h.max_timestamp));
    }
    let records = batch.records(MAX_DECOMPRESSED).ok()?;
    for r in records.iter() {
        let r = r.ok()?;
        let offset = h.base_offset + i64::from(r.offset_delta);
        let ts = h.base_timestamp.saturating_add(r.timestamp_delta);
        if offset >= min_offset && ts >= timestamp {
            return Some((offset, ts));
        }
    }
    None
}

/// Reads `[pos, end)` of a shared file with `pread`, leaving the fd's cursor alone (other
/// users of the same fd read and write by position too).
struct PositionalReader<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl<'a> PositionalReader<'a> {
    fn new(file: &'a File, pos: u64, end: u64) -> Self {
        PositionalReader { file, pos, end }
    }
}

impl Read for PositionalReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.end.saturating_sub(self.pos);
        let n = (buf.len() as u64).min(left) as usize;
        if n == 0 {
            return Ok(0);
        }
        let read = self.file.read_at(&mut buf[..n], self.pos)?;
        self.pos += read as u64;
        Ok(read)
    }
}

/// Reads batch headers through one small buffer: a scan from an index entry to the wanted
/// batch costs one or two `pread`s instead of one per batch.
struct HeaderCursor<'a> {
    file: &'a File,
    limit: u64,
    buf: Vec<u8>,
    buf_start: u64,
}

impl<'a> HeaderCursor<'a> {
    /// Enough for the batches between two index entries at the default interval.
    const CHUNK: u64 = 8 * 1024;

    fn new(file: &'a File, limit: u64) -> Self {
        HeaderCursor {
            file,
            limit,
            buf: Vec::new(),
            buf_start: 0,
        }
    }

    /// The header of the batch at `pos`, like [`read_header`].
    fn at(&mut self, pos: u64) -> std::io::Result<Option<BatchHeader>> {
        if self.limit.saturating_sub(pos) < HEADER_LEN as u64 {
            return Ok(None);
        }
        let buffered_end = self.buf_start + self.buf.len() as u64;
        if pos < self.buf_start || pos + HEADER_LEN as u64 > buffered_end {
            let len = Self::CHUNK.min(self.limit - pos) as usize;
            self.buf.resize(len, 0);
            self.file.read_exact_at(&mut self.buf, pos)?;
            self.buf_start = pos;
        }
        let at = (pos - self.buf_start) as usize;
        Ok(BatchHeader::parse(&self.buf[at..at + HEADER_LEN]).ok())
    }
}
