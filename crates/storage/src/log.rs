//! [`Log`]: one partition's commit log, a sequence of [`Segment`]s in one directory.
//!
//! Thread-safety: every method takes `&self`. Appends, rolls, truncations and segment
//! deletions are serialized by the append lock; reads never take it. A read sees the log end
//! offset published after the bytes were written, so it never returns a partial batch.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::{Mutex, RwLock};
use strom_types::batch::{self, BatchHeader, TimestampType, NO_TIMESTAMP};
use strom_types::TopicPartition;

use crate::checkpoint::LEADER_EPOCH_CHECKPOINT;
use crate::config::LogConfig;
use crate::deleter::FileDeleter;
use crate::epoch_cache::LeaderEpochCache;
use crate::error::{IoContext, Result, StorageError};
use crate::handles::FileHandles;
use crate::producer_state::{self, ProducerState, SequenceCheck, PRODUCER_ID_EXPIRATION_MS};
use crate::region::FileRegion;
use crate::segment::{
    self, BatchMeta, Segment, CLEANED_SUFFIX, DELETED_SUFFIX, LOG_SUFFIX, SWAP_SUFFIX,
};
use crate::txn_index::{self, AbortedTxn};
use crate::validator::{recompress_for, validate_batches};

#[path = "log_txn.rs"]
mod txn;

/// Who is appending: a producer's batches are fully validated and get offsets assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOrigin {
    /// A producer, through the Produce API.
    Client,
    /// The broker itself (coordinators, transaction markers): control batches allowed.
    Coordinator,
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset of the first record appended.
    pub first_offset: i64,
    /// Offset of the last record appended.
    pub last_offset: i64,
    /// Largest record timestamp (the append time under LogAppendTime).
    pub max_timestamp: i64,
    /// The append time when the log uses LogAppendTime, else -1 (Kafka's ProduceResponse field).
    pub log_append_time: i64,
    /// The log start offset after the append.
    pub log_start_offset: i64,
    /// Records appended.
    pub records: i64,
    /// Bytes appended.
    pub bytes: u64,
}

/// What a read returns: whole batches (possibly none) plus the log's bounds at that moment.
#[derive(Debug, Clone)]
pub struct ReadInfo {
    /// The batches, as a region of one segment file; `None` when nothing is readable.
    pub region: Option<FileRegion>,
    /// The log start offset.
    pub log_start_offset: i64,
    /// The log end offset (next offset to be assigned).
    pub log_end_offset: i64,
}

/// How the log was opened: lets the manager say what recovery did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Segments checked batch by batch.
    pub segments_recovered: usize,
    /// Bytes cut off as invalid.
    pub bytes_truncated: u64,
    /// Segments removed because they followed an invalid tail.
    pub segments_dropped: usize,
}

struct AppendState {
    active: Arc<Segment>,
    next_offset: i64,
    unflushed_records: i64,
    /// Wall time of the last flush (or of open).
    last_flush_ms: i64,
    /// Idempotent producers' sequences, kept in step with the appends.
    producers: ProducerState,
}

/// One partition's log. See the module docs for concurrency.
pub struct Log {
    tp: TopicPartition,
    dir: RwLock<PathBuf>,
    handles: Arc<FileHandles>,
    deleter: Arc<FileDeleter>,
    config: RwLock<Arc<LogConfig>>,
    segments: RwLock<BTreeMap<i64, Arc<Segment>>>,
    append: Mutex<AppendState>,
    log_end: AtomicI64,
    log_start: AtomicI64,
    recovery_point: AtomicI64,
    /// First offset not yet compacted (Kafka's cleaner checkpoint).
    first_dirty: AtomicI64,
    end_watch: tokio::sync::watch::Sender<i64>,
    epochs: Mutex<LeaderEpochCache>,
    closed: AtomicBool,
    /// Files were created or renamed since the directory was last fsynced.
    dir_dirty: AtomicBool,
    /// A segment was rolled since the last flush: the background flush makes it durable
    /// and moves the recovery point past it (as Kafka flushes rolled segments).
    rolled: AtomicBool,
    /// Serializes compaction passes of this log.
    pub(crate) cleaning: Mutex<()>,
    /// Aborted transactions, ordered by marker offset (the `.txnindex` files' contents).
    aborted: RwLock<Vec<AbortedTxn>>,
    /// The first unstable offset, [`txn::NONE_UNSTABLE`] when no transaction is open.
    first_unstable: AtomicI64,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("tp", &self.tp)
            .field("log_start", &self.log_start_offset())
            .field("log_end", &self.log_end_offset())
            .finish()
    }
}

/// Wall clock in ms since the epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Options for [`Log::open`] beyond the directory and config.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Shared fd budget.
    pub handles: Arc<FileHandles>,
    /// Shared deletion queue.
    pub deleter: Arc<FileDeleter>,
    /// Offset below which everything was flushed (from the recovery-point checkpoint).
    pub recovery_point: i64,
    /// Log start offset from its checkpoint, if any.
    pub log_start_offset: Option<i64>,
    /// First dirty offset from the cleaner checkpoint, if any.
    pub first_dirty_offset: Option<i64>,
    /// The directory was shut down cleanly: skip recovery.
    pub clean_shutdown: bool,
}

impl OpenOptions {
    /// Standalone options: own fd budget and deleter, unclean (recover everything).
    pub fn standalone() -> Self {
        OpenOptions {
            handles: FileHandles::new(FileHandles::default_limit()),
            deleter: Arc::new(FileDeleter::new()),
            recovery_point: 0,
            log_start_offset: None,
            first_dirty_offset: None,
            clean_shutdown: false,
        }
    }
}

impl Log {
    /// Opens (or creates) the log in `dir`, recovering what was written after the recovery
    /// point unless the shutdown was clean.
    pub fn open(
        dir: &Path,
        tp: TopicPartition,
        config: LogConfig,
        opts: OpenOptions,
    ) -> Result<(Arc<Log>, LoadReport)> {
        std::fs::create_dir_all(dir).at(dir)?;
        let mut report = LoadReport::default();
        let mut bases = Vec::new();
        let mut swaps = Vec::new();
        for entry in std::fs::read_dir(dir).at(dir)? {
            let entry = entry.at(dir)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if name.ends_with(&format!(".{DELETED_SUFFIX}"))
                || name.ends_with(&format!(".{CLEANED_SUFFIX}"))
                || name.ends_with(".tmp")
            {
                std::fs::remove_file(&path).at(&path)?;
            } else if let Some(stem) = name.strip_suffix(&format!(".{LOG_SUFFIX}.{SWAP_SUFFIX}")) {
                if let Ok(base) = stem.parse::<i64>() {
                    swaps.push(base);
                }
            } else if let Some(stem) = name.strip_suffix(&format!(".{LOG_SUFFIX}")) {
                if let Ok(base) = stem.parse::<i64>() {
                    bases.push((base, entry.metadata().at(&path)?.len()));
                }
            }
        }
        bases.sort_unstable();
        let interval = config.index_interval_bytes;
        let max_entries = config.max_index_entries();
        let mut segments: BTreeMap<i64, Arc<Segment>> = bases
            .into_iter()
            .map(|(base, size)| {
                (
                    base,
                    Segment::existing(dir, base, opts.handles.clone(), interval, max_entries, size),
                )
            })
            .collect();

        // A crash during a compaction swap: the `.swap` segment is complete (it was fsynced
        // before being renamed), so finish the swap by replacing what it covers.
        for base in swaps {
            let path = dir.join(format!(
                "{}.{SWAP_SUFFIX}",
                segment::file_name(base, LOG_SUFFIX)
            ));
            let size = std::fs::metadata(&path).at(&path)?.len();
            let seg =
                Segment::existing(dir, base, opts.handles.clone(), interval, max_entries, size);
            seg.set_extra_suffix(Some(SWAP_SUFFIX));
            let outcome = seg.recover()?;
            let end = outcome.next_offset.unwrap_or(base + 1);
            let covered: Vec<i64> = segments.range(base..end).map(|(b, _)| *b).collect();
            for b in covered {
                if let Some(old) = segments.remove(&b) {
                    old.close();
                    for p in old.rename(Some(DELETED_SUFFIX))? {
                        std::fs::remove_file(&p).at(&p)?;
                    }
                }
            }
            seg.rename(None)?;
            segments.insert(base, seg);
            tracing::info!(partition = %tp, base, "completed an interrupted compaction swap");
        }

        let start_hint = opts.log_start_offset.unwrap_or(0).max(0);
        if segments.is_empty() {
            let seg =
                Segment::create(dir, start_hint, opts.handles.clone(), interval, max_entries)?;
            segments.insert(start_hint, seg);
        }

        // Recovery: every segment from the one holding the recovery point, unless clean.
        let last_base = *segments.keys().next_back().unwrap_or(&0);
        if let Some(last) = segments.get(&last_base) {
            last.reactivate_flag();
        }
        let mut next_offset = None;
        if !opts.clean_shutdown {
            let from = segments
                .range(..=opts.recovery_point.max(0))
                .next_back()
                .map(|(b, _)| *b)
                .unwrap_or(i64::MIN);
            let to_recover: Vec<i64> = segments.range(from..).map(|(b, _)| *b).collect();
            let mut cut = false;
            for base in to_recover {
                if cut {
                    if let Some(seg) = segments.remove(&base) {
                        seg.close();
                        for p in seg.rename(Some(DELETED_SUFFIX))? {
                            std::fs::remove_file(&p).at(&p)?;
                        }
                        report.segments_dropped += 1;
                    }
                    continue;
                }
                let Some(seg) = segments.get(&base) else {
                    continue;
                };
                let outcome = seg.recover()?;
                seg.flush()?;
                report.segments_recovered += 1;
                if outcome.truncated_bytes > 0 {
                    report.bytes_truncated += outcome.truncated_bytes;
                    cut = true;
                    next_offset = outcome.next_offset.or(Some(base));
                }
            }
            if report.segments_dropped > 0 {
                tracing::warn!(partition = %tp, dropped = report.segments_dropped, "removed segments after an invalid tail");
            }
        }
        // The last segment becomes the active one (after a cut, the segment that was cut).
        let active = match segments.iter().next_back() {
            Some((_, s)) => s.clone(),
            None => Segment::create(dir, start_hint, opts.handles.clone(), interval, max_entries)?,
        };
        segments.insert(active.base_offset(), active.clone());
        active.reactivate()?;
        let log_end = match next_offset {
            Some(n) if n >= active.base_offset() => n,
            _ => active.scan_next_offset()?.unwrap_or(active.base_offset()),
        };

        // Recovery cut the log below its checkpointed start (records already deleted by
        // DeleteRecords or retention were the ones lost): restart empty at that start rather
        // than move the start backwards under clients (Kafka's LogLoader does the same).
        let (active, log_end) = match opts.log_start_offset {
            Some(start) if start > log_end => {
                tracing::warn!(partition = %tp, log_end, start, "recovered log ends below its log start offset; restarting it empty there");
                for (_, seg) in std::mem::take(&mut segments) {
                    seg.close();
                    for p in seg.rename(Some(DELETED_SUFFIX))? {
                        std::fs::remove_file(&p).at(&p)?;
                    }
                }
                let fresh =
                    Segment::create(dir, start, opts.handles.clone(), interval, max_entries)?;
                segments.insert(start, fresh.clone());
                (fresh, start)
            }
            _ => (active, log_end),
        };
        let first_base = *segments.keys().next().unwrap_or(&0);
        let log_start = opts
            .log_start_offset
            .unwrap_or(first_base)
            .max(first_base)
            .min(log_end);
        let mut epochs = LeaderEpochCache::load(dir.join(LEADER_EPOCH_CHECKPOINT))?;
        epochs.truncate_from_end(log_end)?;
        let (producers, replayed_from, rebuilt) = rebuild_producers(dir, &segments, log_end)?;
        epochs.truncate_from_start(log_start)?;
        let bases: Vec<i64> = segments.keys().copied().collect();
        let mut aborted = txn_index::load(dir, &bases)?;
        aborted.retain(|t| t.last_offset < replayed_from.min(log_end));
        let first_unstable = producers
            .first_unstable_offset()
            .unwrap_or(txn::NONE_UNSTABLE);

        let (end_watch, _) = tokio::sync::watch::channel(log_end);
        let log = Log {
            tp,
            dir: RwLock::new(dir.to_path_buf()),
            handles: opts.handles,
            deleter: opts.deleter,
            config: RwLock::new(Arc::new(config)),
            segments: RwLock::new(segments),
            append: Mutex::new(AppendState {
                active,
                next_offset: log_end,
                unflushed_records: 0,
                last_flush_ms: now_ms(),
                producers,
            }),
            log_end: AtomicI64::new(log_end),
            log_start: AtomicI64::new(log_start),
            recovery_point: AtomicI64::new(log_end),
            first_dirty: AtomicI64::new(
                opts.first_dirty_offset.unwrap_or(log_start).max(log_start),
            ),
            end_watch,
            epochs: Mutex::new(epochs),
            closed: AtomicBool::new(false),
            dir_dirty: AtomicBool::new(true),
            rolled: AtomicBool::new(false),
            cleaning: Mutex::new(()),
            aborted: RwLock::new(aborted),
            first_unstable: AtomicI64::new(first_unstable),
        };
        // The index files from the replayed offset on are written again from the replay.
        log.reset_aborted_from(replayed_from, rebuilt)?;
        Ok((Arc::new(log), report))
    }

    /// The partition this log stores.
    pub fn topic_partition(&self) -> &TopicPartition {
        &self.tp
    }

    /// The partition's directory.
    pub fn dir(&self) -> PathBuf {
        self.dir.read().clone()
    }

    /// The config in force.
    pub fn config(&self) -> Arc<LogConfig> {
        self.config.read().clone()
    }

    /// Replaces the config (dynamic topic config change); takes effect at the next append,
    /// roll, retention or cleaning pass.
    pub fn set_config(&self, config: LogConfig) {
        *self.config.write() = Arc::new(config);
    }

    /// The next offset to be assigned.
    pub fn log_end_offset(&self) -> i64 {
        self.log_end.load(Ordering::Acquire)
    }

    /// The first offset that may be read.
    pub fn log_start_offset(&self) -> i64 {
        self.log_start.load(Ordering::Acquire)
    }

    /// Everything below this offset has been fsynced.
    pub fn recovery_point(&self) -> i64 {
        self.recovery_point.load(Ordering::Acquire)
    }

    /// First offset the cleaner has not compacted yet.
    pub fn first_dirty_offset(&self) -> i64 {
        self.first_dirty.load(Ordering::Acquire)
    }

    /// A receiver of the log end offset, changed after every append (and truncation): the
    /// broker's long-poll fetches wait on it instead of polling.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<i64> {
        self.end_watch.subscribe()
    }

    /// Number of segments.
    pub fn segment_count(&self) -> usize {
        self.segments.read().len()
    }

    /// Total bytes of all segments.
    pub fn size(&self) -> u64 {
        self.segments.read().values().map(|s| s.size()).sum()
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments.read().keys().copied().collect()
    }

    pub(crate) fn segments_snapshot(&self) -> Vec<Arc<Segment>> {
        self.segments.read().values().cloned().collect()
    }

    /// The leader-epoch entries `(epoch, start offset)`.
    pub fn leader_epochs(&self) -> Vec<(i32, i64)> {
        self.epochs.lock().entries().to_vec()
    }

    /// Kafka's OffsetForLeaderEpoch answer: `(epoch, end offset)` for the largest epoch at or
    /// below `epoch`.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        self.epochs
            .lock()
            .end_offset_for(epoch, self.log_end_offset())
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StorageError::Closed(self.tp.to_string()));
        }
        Ok(())
    }

    /// Appends a producer's (or the broker's own) batches: validates every batch as Kafka's
    /// broker does, assigns offsets (and the append time under LogAppendTime) in place, and
    /// writes the bytes as they are. On error nothing is written.
    pub fn append_as_leader(
        &self,
        records: &mut [u8],
        leader_epoch: i32,
        origin: AppendOrigin,
        now_ms: i64,
    ) -> Result<AppendInfo> {
        self.check_open()?;
        let config = self.config();
        let mut validated = validate_batches(records, &config, origin, now_ms)?;
        // compression.type set to a codec: batches in another one are stored recompressed
        // (the one path where the stored bytes are not the bytes that arrived).
        let mut recompressed;
        let records: &mut [u8] = match recompress_for(records, &config)? {
            Some(bytes) => {
                recompressed = bytes;
                validated = validate_batches(&recompressed, &config, origin, now_ms)?;
                &mut recompressed
            }
            None => records,
        };
        let mut state = self.append.lock();
        self.check_open()?;
        let mut headers = Vec::with_capacity(validated.len());
        let mut pos = 0usize;
        for v in &validated {
            headers.push(BatchHeader::parse(&records[pos..pos + v.size])?);
            pos += v.size;
        }
        let markers = txn::markers_of(records, &headers);
        if origin == AppendOrigin::Coordinator {
            txn::check_markers(&state, &headers, &markers)?;
        }
        if let SequenceCheck::Duplicate(b) = state.producers.check_all(&headers)? {
            // A producer's retry of a batch already written: Kafka answers with the offsets
            // it was first written at and writes nothing.
            return Ok(AppendInfo {
                first_offset: b.first_offset,
                last_offset: b.last_offset,
                max_timestamp: b.max_timestamp,
                log_append_time: if config.message_timestamp_type == TimestampType::LogAppendTime {
                    b.max_timestamp
                } else {
                    -1
                },
                log_start_offset: self.log_start_offset(),
                records: 0,
                bytes: 0,
            });
        }
        let first_offset = state.next_offset;
        let mut next = first_offset;
        let mut metas = Vec::with_capacity(validated.len());
        let mut max_timestamp = NO_TIMESTAMP;
        let mut pos = 0usize;
        let log_append = config.message_timestamp_type == TimestampType::LogAppendTime;
        for (v, h) in validated.iter().zip(headers.iter_mut()) {
            let bytes = &mut records[pos..pos + v.size];
            batch::set_base_offset(bytes, next);
            h.base_offset = next;
            batch::set_partition_leader_epoch(bytes, leader_epoch);
            let ts = if log_append {
                batch::set_max_timestamp(bytes, TimestampType::LogAppendTime, now_ms);
                now_ms
            } else {
                if v.header_max_timestamp != v.max_timestamp {
                    batch::set_max_timestamp(bytes, TimestampType::CreateTime, v.max_timestamp);
                }
                v.max_timestamp
            };
            max_timestamp = max_timestamp.max(ts);
            h.max_timestamp = ts;
            metas.push(BatchMeta {
                base_offset: next,
                last_offset: next + i64::from(v.count) - 1,
                max_timestamp: ts,
                size: v.size as u32,
            });
            next += i64::from(v.count);
            pos += v.size;
        }
        self.write_locked(
            &mut state,
            &records[..pos],
            &metas,
            leader_epoch,
            &config,
            now_ms,
        )?;
        self.apply_producers(&mut state, &headers, &markers)?;
        let records_appended = next - first_offset;
        let flush_now = self.note_unflushed(&mut state, records_appended, &config, now_ms);
        drop(state);
        if flush_now {
            self.flush()?;
        }
        Ok(AppendInfo {
            first_offset,
            last_offset: next - 1,
            max_timestamp,
            log_append_time: if log_append { now_ms } else { -1 },
            log_start_offset: self.log_start_offset(),
            records: records_appended,
            bytes: pos as u64,
        })
    }

    /// Appends batches that already carry their offsets (a follower copying its leader, or
    /// the log cleaner's tests): checks lengths, CRCs and that offsets keep increasing.
    pub fn append_as_follower(&self, records: &[u8], now_ms: i64) -> Result<AppendInfo> {
        self.check_open()?;
        let config = self.config();
        let mut state = self.append.lock();
        self.check_open()?;
        let mut metas = Vec::new();
        let mut expected = state.next_offset;
        let mut epochs = Vec::new();
        let mut headers = Vec::new();
        let mut pos = 0;
        for (index, b) in batch::batches(records).enumerate() {
            let b = b.map_err(|source| StorageError::InvalidBatch { index, source })?;
            b.validate_crc()
                .map_err(|source| StorageError::InvalidBatch { index, source })?;
            let h = *b.header();
            if h.base_offset < expected || h.last_offset_delta < 0 {
                return Err(StorageError::NonMonotonicOffset {
                    offset: h.base_offset,
                    log_end: expected,
                });
            }
            epochs.push((h.partition_leader_epoch, h.base_offset));
            metas.push(BatchMeta::of(&h));
            headers.push(h);
            expected = h.next_offset();
            pos += b.size();
        }
        let Some(first) = metas.first().copied() else {
            return Err(StorageError::PolicyViolation("no record batches to append"));
        };
        if first.base_offset > state.next_offset && self.log_end_offset() == self.log_start_offset()
        {
            // A follower starting mid-log (after DeleteRecords on the leader) begins there.
            drop(state);
            self.truncate_fully_and_start_at(first.base_offset)?;
            state = self.append.lock();
        }
        let mut max_ts = NO_TIMESTAMP;
        for m in &metas {
            max_ts = max_ts.max(m.max_timestamp);
        }
        let epoch = epochs.first().map(|e| e.0).unwrap_or(-1);
        self.write_locked(&mut state, &records[..pos], &metas, epoch, &config, now_ms)?;
        let markers = txn::markers_of(&records[..pos], &headers);
        self.apply_producers(&mut state, &headers, &markers)?;
        {
            let mut cache = self.epochs.lock();
            for (e, start) in epochs {
                cache.assign(e, start)?;
            }
        }
        let count = expected - first.base_offset;
        let flush_now = self.note_unflushed(&mut state, count, &config, now_ms);
        drop(state);
        if flush_now {
            self.flush()?;
        }
        Ok(AppendInfo {
            first_offset: first.base_offset,
            last_offset: expected - 1,
            max_timestamp: max_ts,
            log_append_time: -1,
            log_start_offset: self.log_start_offset(),
            records: count,
            bytes: pos as u64,
        })
    }

    /// Rolls if needed, writes, updates the epoch cache and publishes the new end offset.
    fn write_locked(
        &self,
        state: &mut AppendState,
        data: &[u8],
        metas: &[BatchMeta],
        leader_epoch: i32,
        config: &LogConfig,
        now_ms: i64,
    ) -> Result<()> {
        let (Some(first), Some(last)) = (metas.first(), metas.last()) else {
            return Ok(());
        };
        if self.should_roll(state, data.len() as u64, last.last_offset, config, now_ms)? {
            self.roll_locked(state, first.base_offset)?;
        }
        // The epoch is recorded before the data (Kafka's order): a failure here leaves no
        // bytes behind that the next append would reuse the offsets of.
        if leader_epoch >= 0 {
            self.epochs.lock().assign(leader_epoch, first.base_offset)?;
        }
        state.active.append(data, metas)?;
        state.next_offset = last.last_offset + 1;
        self.log_end.store(state.next_offset, Ordering::Release);
        self.end_watch.send_replace(state.next_offset);
        Ok(())
    }

    fn note_unflushed(
        &self,
        state: &mut AppendState,
        records: i64,
        config: &LogConfig,
        now_ms: i64,
    ) -> bool {
        state.unflushed_records += records;
        state.unflushed_records >= config.flush_messages
            || (config.flush_ms != i64::MAX && now_ms - state.last_flush_ms >= config.flush_ms)
    }

    fn should_roll(
        &self,
        state: &AppendState,
        incoming: u64,
        last_offset: i64,
        config: &LogConfig,
        now_ms: i64,
    ) -> Result<bool> {
        let active = &state.active;
        let size = active.size();
        if size == 0 {
            return Ok(false);
        }
        if size + incoming > config.segment_bytes
            || active.index_full()
            || last_offset - active.base_offset() > i64::from(u32::MAX)
        {
            return Ok(true);
        }
        let base_ts = active.rolling_base_timestamp()?;
        let jitter = if config.segment_jitter_ms > 0 {
            // Stable per partition, so one partition's rolls stay regular.
            (fxhash(&self.tp) % config.segment_jitter_ms.max(1) as u64) as i64
        } else {
            0
        };
        Ok(base_ts != NO_TIMESTAMP && now_ms - base_ts > config.segment_ms - jitter)
    }

    fn roll_locked(&self, state: &mut AppendState, base_offset: i64) -> Result<()> {
        if state.active.size() == 0 && state.active.base_offset() == base_offset {
            return Ok(());
        }
        let config = self.config();
        let dir = self.dir();
        // The producers as of the new segment's base: after a crash, recovery replays only
        // the segments from here (Kafka snapshots producer state at each roll too).
        state.producers.expire(now_ms(), PRODUCER_ID_EXPIRATION_MS);
        if let Err(e) = producer_state::write_snapshot(&dir, base_offset, &state.producers) {
            tracing::warn!(partition = %self.tp, error = %e, "could not write a producer snapshot");
        }
        let seg = Segment::create(
            &dir,
            base_offset,
            self.handles.clone(),
            config.index_interval_bytes,
            config.max_index_entries(),
        )?;
        state.active.become_inactive()?;
        self.dir_dirty.store(true, Ordering::Release);
        self.rolled.store(true, Ordering::Release);
        self.segments.write().insert(base_offset, seg.clone());
        tracing::debug!(partition = %self.tp, base_offset, "rolled a new segment");
        state.active = seg;
        Ok(())
    }

    /// Starts a new segment at the log end offset now (no-op if the active one is empty).
    pub fn roll(&self) -> Result<()> {
        self.check_open()?;
        let mut state = self.append.lock();
        let next = state.next_offset;
        self.roll_locked(&mut state, next)
    }

    /// Reads whole batches starting with the one that holds `offset`, within `max_bytes`
    /// (or the first batch alone if larger and `min_one_batch`), stopping before any batch
    /// that reaches `upper_bound` (the high watermark; `None` = the log end).
    /// An offset outside `[log start, log end]` is OFFSET_OUT_OF_RANGE.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: u64,
        upper_bound: Option<i64>,
        min_one_batch: bool,
    ) -> Result<ReadInfo> {
        let log_end = self.log_end_offset();
        let log_start = self.log_start_offset();
        if offset < log_start || offset > log_end {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start,
                log_end,
            });
        }
        let bound = upper_bound.filter(|&b| b < log_end);
        let mut info = ReadInfo {
            region: None,
            log_start_offset: log_start,
            log_end_offset: log_end,
        };
        if offset == log_end || bound.is_some_and(|b| offset >= b) {
            return Ok(info);
        }
        // Walk segments one at a time from the one holding `offset` (usually the first one
        // answers), taking the map's lock only to find the next.
        let mut next = {
            let segs = self.segments.read();
            segs.range(..=offset)
                .next_back()
                .or_else(|| segs.iter().next())
                .map(|(_, s)| s.clone())
        };
        while let Some(seg) = next.take() {
            if bound.is_some_and(|b| seg.base_offset() >= b) {
                break;
            }
            match seg.read(
                offset.max(seg.base_offset()),
                max_bytes,
                bound,
                min_one_batch,
            ) {
                Ok(Some((region, _))) => {
                    if !region.is_empty() {
                        info.region = Some(region);
                    }
                    return Ok(info);
                }
                Ok(None) => {
                    next = self
                        .segments
                        .read()
                        .range(seg.base_offset() + 1..)
                        .next()
                        .map(|(_, s)| s.clone());
                }
                Err(e) => {
                    // The segment was deleted under us (retention): the log has moved on.
                    if self.log_start_offset() > offset {
                        return Err(StorageError::OffsetOutOfRange {
                            offset,
                            log_start: self.log_start_offset(),
                            log_end,
                        });
                    }
                    return Err(e);
                }
            }
        }
        Ok(info)
    }

    /// The first offset whose record timestamp is at or past `timestamp`, with that record's
    /// timestamp (ListOffsets by time); `None` when every record is older.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>> {
        let log_start = self.log_start_offset();
        for seg in self.segments_snapshot() {
            if seg.max_timestamp()? < timestamp {
                continue;
            }
            if let Some(found) = seg.offset_for_timestamp(timestamp, log_start)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// The offset and timestamp of the first record with the largest timestamp
    /// (ListOffsets MAX_TIMESTAMP); `None` for an empty log.
    pub fn max_timestamp_offset(&self) -> Result<Option<(i64, i64)>> {
        let mut best = NO_TIMESTAMP;
        for seg in self.segments_snapshot() {
            best = best.max(seg.max_timestamp()?);
        }
        if best == NO_TIMESTAMP || self.log_end_offset() == self.log_start_offset() {
            return Ok(None);
        }
        self.offset_for_timestamp(best)
    }

    /// Removes every record at or after `offset` (replica divergence). Truncation happens at
    /// a batch boundary: a batch that holds `offset` goes entirely. Returns the new end offset.
    pub fn truncate_to(&self, offset: i64) -> Result<i64> {
        self.check_open()?;
        // A compaction pass holds an offset map of what is being cut: let it finish first
        // (Kafka aborts and pauses cleaning around a truncation).
        let _no_cleaning = self.cleaning.lock();
        let mut state = self.append.lock();
        if offset >= state.next_offset {
            return Ok(state.next_offset);
        }
        if offset <= self.log_start_offset() {
            drop(state);
            self.truncate_fully_locked(offset.max(0))?;
            return Ok(self.log_end_offset());
        }
        let removed: Vec<Arc<Segment>> = {
            let mut segs = self.segments.write();
            let later: Vec<i64> = segs.range(offset + 1..).map(|(b, _)| *b).collect();
            later.into_iter().filter_map(|b| segs.remove(&b)).collect()
        };
        self.schedule_delete(&removed)?;
        let seg = self
            .segments
            .read()
            .range(..=offset)
            .next_back()
            .map(|(_, s)| s.clone())
            .ok_or_else(|| {
                StorageError::State(format!("{}: no segment holds {offset}", self.tp))
            })?;
        seg.truncate_to(offset)?;
        seg.reactivate()?;
        let new_end = seg.scan_next_offset()?.unwrap_or(seg.base_offset());
        if new_end < self.log_start_offset() {
            // The batch holding `offset` began below the log start: nothing readable is left.
            let start = self.log_start_offset();
            drop(state);
            self.truncate_fully_locked(start)?;
            return Ok(start);
        }
        state.active = seg;
        state.next_offset = new_end;
        let dir = self.dir();
        producer_state::remove_snapshots_from(&dir, new_end + 1)?;
        let (producers, replayed_from, rebuilt) =
            rebuild_producers(&dir, &self.segments.read(), new_end)?;
        state.producers = producers;
        self.reset_aborted_from(replayed_from.min(new_end), rebuilt)?;
        self.publish_unstable(&state);
        self.log_end.store(new_end, Ordering::Release);
        self.recovery_point.fetch_min(new_end, Ordering::AcqRel);
        self.first_dirty.fetch_min(new_end, Ordering::AcqRel);
        self.epochs.lock().truncate_from_end(new_end)?;
        self.end_watch.send_replace(new_end);
        tracing::info!(partition = %self.tp, offset, new_end, "truncated log");
        Ok(new_end)
    }

    /// Deletes every segment and restarts the log empty at `offset`.
    pub fn truncate_fully_and_start_at(&self, offset: i64) -> Result<()> {
        self.check_open()?;
        let _no_cleaning = self.cleaning.lock();
        self.truncate_fully_locked(offset)
    }

    /// [`Log::truncate_fully_and_start_at`] with the cleaning lock already held.
    fn truncate_fully_locked(&self, offset: i64) -> Result<()> {
        let mut state = self.append.lock();
        let config = self.config();
        let old: Vec<Arc<Segment>> = std::mem::take(&mut *self.segments.write())
            .into_values()
            .collect();
        self.schedule_delete(&old)?;
        let seg = Segment::create(
            &self.dir(),
            offset,
            self.handles.clone(),
            config.index_interval_bytes,
            config.max_index_entries(),
        )?;
        self.segments.write().insert(offset, seg.clone());
        self.dir_dirty.store(true, Ordering::Release);
        state.active = seg;
        state.next_offset = offset;
        state.producers = ProducerState::default();
        self.publish_unstable(&state);
        self.aborted.write().clear();
        producer_state::remove_snapshots_from(&self.dir(), i64::MIN)?;
        self.log_start.store(offset, Ordering::Release);
        self.log_end.store(offset, Ordering::Release);
        self.recovery_point.store(offset, Ordering::Release);
        self.first_dirty.store(offset, Ordering::Release);
        {
            let mut cache = self.epochs.lock();
            cache.truncate_from_end(offset)?;
            cache.truncate_from_start(offset)?;
        }
        self.end_watch.send_replace(offset);
        Ok(())
    }

    /// Advances the log start offset (DeleteRecords): records below it are no longer
    /// readable, and segments wholly below it are deleted. Beyond the end is out of range.
    pub fn advance_log_start_offset(&self, offset: i64) -> Result<i64> {
        self.check_open()?;
        let log_end = self.log_end_offset();
        if offset > log_end || offset < 0 {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start: self.log_start_offset(),
                log_end,
            });
        }
        let new_start = self
            .log_start
            .fetch_max(offset, Ordering::AcqRel)
            .max(offset);
        self.epochs.lock().truncate_from_start(new_start)?;
        self.first_dirty.fetch_max(new_start, Ordering::AcqRel);
        self.delete_segments_below_start()?;
        Ok(new_start)
    }

    fn delete_segments_below_start(&self) -> Result<usize> {
        let start = self.log_start_offset();
        self.delete_prefix(
            |_, next_base, _| next_base.is_some_and(|n| n <= start),
            "log start offset",
        )
    }

    /// Applies retention.ms and retention.bytes (when cleanup.policy has `delete`) and the log
    /// start offset: deletes whole segments from the oldest. Returns segments deleted.
    pub fn delete_old_segments(&self, now_ms: i64) -> Result<usize> {
        self.check_open()?;
        let config = self.config();
        let mut deleted = self.delete_segments_below_start()?;
        if !config.cleanup_policy.delete {
            return Ok(deleted);
        }
        if config.retention_ms >= 0 {
            let retention = config.retention_ms;
            deleted += self.delete_prefix(
                |seg, _, _| {
                    // Without record timestamps, the file's modification time (as Kafka).
                    let ts = match seg.max_timestamp() {
                        Ok(ts) if ts >= 0 => ts,
                        Ok(_) => seg.last_modified_ms(),
                        Err(_) => return false,
                    };
                    now_ms.saturating_sub(ts) > retention
                },
                "retention.ms",
            )?;
        }
        if config.retention_bytes >= 0 {
            let mut excess = self.size() as i64 - config.retention_bytes;
            deleted += self.delete_prefix(
                |seg, _, _| {
                    if excess - seg.size() as i64 >= 0 {
                        excess -= seg.size() as i64;
                        true
                    } else {
                        false
                    }
                },
                "retention.bytes",
            )?;
        }
        Ok(deleted)
    }

    /// Deletes the longest prefix of segments for which `deletable(segment, next base, is
    /// active)` holds. If that would include the active segment and it has data, a new empty
    /// segment is rolled first (as Kafka does); the last segment always stays.
    fn delete_prefix(
        &self,
        mut deletable: impl FnMut(&Arc<Segment>, Option<i64>, bool) -> bool,
        reason: &str,
    ) -> Result<usize> {
        let mut state = self.append.lock();
        let segs = self.segments_snapshot();
        let mut doomed = Vec::new();
        for (i, seg) in segs.iter().enumerate() {
            let next_base = segs.get(i + 1).map(|s| s.base_offset());
            let active = Arc::ptr_eq(seg, &state.active);
            if !deletable(seg, next_base, active) {
                break;
            }
            if active {
                if seg.size() == 0 {
                    break;
                }
                let next = state.next_offset;
                self.roll_locked(&mut state, next)?;
            }
            doomed.push(seg.clone());
        }
        if doomed.is_empty() {
            return Ok(0);
        }
        // The start moves first: a concurrent read then fails with OFFSET_OUT_OF_RANGE
        // rather than finding no segment for its offset.
        let new_start = self
            .segments
            .read()
            .range(doomed[doomed.len() - 1].base_offset() + 1..)
            .next()
            .map(|(b, _)| *b)
            .unwrap_or(state.next_offset);
        self.log_start.fetch_max(new_start, Ordering::AcqRel);
        {
            let mut map = self.segments.write();
            for seg in &doomed {
                map.remove(&seg.base_offset());
            }
        }
        drop(state);
        let start = self
            .log_start
            .fetch_max(new_start, Ordering::AcqRel)
            .max(new_start);
        self.first_dirty.fetch_max(start, Ordering::AcqRel);
        self.epochs.lock().truncate_from_start(start)?;
        self.drop_aborted_below(new_start);
        self.schedule_delete(&doomed)?;
        tracing::info!(partition = %self.tp, segments = doomed.len(), reason, log_start = start, "deleted old segments");
        Ok(doomed.len())
    }

    pub(crate) fn schedule_delete(&self, segs: &[Arc<Segment>]) -> Result<()> {
        let delay = self.config().file_delete_delay_ms;
        let due = now_ms().saturating_add(delay);
        for seg in segs {
            let paths = seg.mark_deleted()?;
            self.deleter.schedule(due, paths);
        }
        Ok(())
    }

    /// Replaces `old` (still in the log) by `new`, a segment with the same base offset written
    /// under the `.cleaned` suffix. Returns false (and discards `new`) if `old` has gone.
    pub(crate) fn swap_segment(&self, old: &Arc<Segment>, new: Arc<Segment>) -> Result<bool> {
        new.flush()?;
        new.rename(Some(SWAP_SUFFIX))?;
        let state = self.append.lock();
        let present = !self.is_closed()
            && self
                .segments
                .read()
                .get(&old.base_offset())
                .is_some_and(|s| Arc::ptr_eq(s, old))
            && !Arc::ptr_eq(old, &state.active);
        if !present {
            drop(state);
            new.close();
            for p in new.rename(Some(DELETED_SUFFIX))? {
                std::fs::remove_file(&p).at(&p)?;
            }
            return Ok(false);
        }
        self.schedule_delete(std::slice::from_ref(old))?;
        new.rename(None)?;
        self.segments.write().insert(new.base_offset(), new);
        drop(state);
        crate::checkpoint::sync_dir(&self.dir())?;
        Ok(true)
    }

    pub(crate) fn set_first_dirty(&self, offset: i64) {
        self.first_dirty.store(offset, Ordering::Release);
    }

    pub(crate) fn active_base_offset(&self) -> i64 {
        self.append.lock().active.base_offset()
    }

    pub(crate) fn handles(&self) -> &Arc<FileHandles> {
        &self.handles
    }

    /// fsyncs everything appended so far and advances the recovery point.
    pub fn flush(&self) -> Result<()> {
        let end = self.log_end_offset();
        let from = self.recovery_point();
        let segs: Vec<Arc<Segment>> = {
            let map = self.segments.read();
            let first = map
                .range(..=from)
                .next_back()
                .map(|(b, _)| *b)
                .unwrap_or(i64::MIN);
            map.range(first..).map(|(_, s)| s.clone()).collect()
        };
        for seg in segs {
            seg.flush()?;
        }
        // New segment files must be durable in the directory, too (only after a change:
        // with flush.messages=1 every append flushes, and one fsync is enough then).
        if self.dir_dirty.swap(false, Ordering::AcqRel) {
            if let Err(e) = crate::checkpoint::sync_dir(&self.dir()) {
                self.dir_dirty.store(true, Ordering::Release);
                return Err(e);
            }
        }
        self.recovery_point.fetch_max(end, Ordering::AcqRel);
        let mut state = self.append.lock();
        state.unflushed_records = 0;
        state.last_flush_ms = now_ms();
        Ok(())
    }

    /// Flushes if flush.ms has passed since the last flush and something is unflushed.
    pub fn flush_if_due(&self, now_ms: i64) -> Result<bool> {
        let config = self.config();
        let due = {
            let state = self.append.lock();
            state.unflushed_records > 0
                && config.flush_ms != i64::MAX
                && now_ms - state.last_flush_ms >= config.flush_ms
        } || self.rolled.swap(false, Ordering::AcqRel);
        if due {
            self.flush()?;
        }
        Ok(due)
    }

    /// Seals the active segment, flushes everything and releases file handles. Later calls
    /// fail with [`StorageError::Closed`].
    pub fn close(&self) -> Result<()> {
        let state = self.append.lock();
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        state.active.become_inactive()?;
        producer_state::write_snapshot(&self.dir(), state.next_offset, &state.producers)?;
        drop(state);
        self.flush()?;
        for seg in self.segments_snapshot() {
            seg.close();
        }
        Ok(())
    }

    /// Closes the log and removes its directory: renamed to `<dir>.<n>-delete` at once, then
    /// removed by the deleter after file.delete.delay.ms (Kafka's scheme).
    pub fn delete(&self) -> Result<()> {
        let _no_cleaning = self.cleaning.lock();
        {
            let _state = self.append.lock();
            self.closed.store(true, Ordering::Release);
        }
        for seg in self.segments_snapshot() {
            seg.close();
        }
        let dir = self.dir();
        let doomed = PathBuf::from(format!("{}.{}-delete", dir.display(), now_ms()));
        std::fs::rename(&dir, &doomed).at(&dir)?;
        *self.dir.write() = doomed.clone();
        let delay = self.config().file_delete_delay_ms;
        self.deleter
            .schedule(now_ms().saturating_add(delay), [doomed]);
        Ok(())
    }

    /// True once closed or deleted.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Heap bytes this log holds now: segment structs and loaded indexes.
    pub fn memory_usage(&self) -> usize {
        std::mem::size_of::<Log>()
            + self
                .segments
                .read()
                .values()
                .map(|s| s.memory() + 64)
                .sum::<usize>()
    }

    /// Idempotent producers whose sequences this log tracks.
    pub fn producer_count(&self) -> usize {
        self.append.lock().producers.len()
    }

    /// Records appended since the last flush.
    pub fn unflushed_records(&self) -> i64 {
        self.append.lock().unflushed_records
    }

    /// Checks whether `segment` still belongs to the log as its active segment.
    pub(crate) fn is_active_segment(&self, seg: &Arc<Segment>) -> bool {
        Arc::ptr_eq(&self.append.lock().active, seg)
    }
}

/// Idempotent producers' state at `log_end`: the newest snapshot at or below it, then the batch
/// headers from the snapshot's offset on (from the first segment when there is none).
/// Producer state at `log_end`: the newest snapshot at or below it, then a replay of the
/// batch headers after it (and of the markers among them). Returns the state, the offset
/// the replay started from, and the transactions the replayed markers aborted.
fn rebuild_producers(
    dir: &Path,
    segments: &BTreeMap<i64, Arc<Segment>>,
    log_end: i64,
) -> Result<(ProducerState, i64, Vec<AbortedTxn>)> {
    let (from, mut state) = producer_state::load_latest(dir, log_end)?.unwrap_or_default();
    let first = segments
        .range(..=from)
        .next_back()
        .map(|(b, _)| *b)
        .unwrap_or(i64::MIN);
    let mut aborted = Vec::new();
    for seg in segments.range(first..).map(|(_, s)| s) {
        seg.for_each_header(|pos, h| {
            if h.base_offset < from || h.next_offset() > log_end {
                return Ok(());
            }
            let marker = if h.is_control() {
                let bytes = seg.read_batch(pos, h)?;
                batch::RecordBatch::parse_prefix(&bytes)
                    .ok()
                    .and_then(|b| strom_types::control::marker_of(&b))
            } else {
                None
            };
            if let Some(done) = state.update(h, marker) {
                if done.aborted {
                    aborted.push(AbortedTxn {
                        producer_id: done.producer_id,
                        first_offset: done.first_offset,
                        last_offset: done.last_offset,
                        last_stable_offset: state
                            .first_unstable_offset()
                            .unwrap_or(done.last_offset + 1),
                    });
                }
            }
            Ok(())
        })?;
    }
    Ok((state, from, aborted))
}

fn fxhash(tp: &TopicPartition) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    tp.hash(&mut h);
    h.finish()
}
