//! The log cleaner: compaction for `cleanup.policy=compact` (and `compact,delete`).
//!
//! A pass over one log:
//! 1. The cleanable range ends at the active segment, or earlier at the first segment holding
//!    records younger than `min.compaction.lag.ms`. The dirty part starts at the log's first
//!    dirty offset (the cleaner checkpoint). Nothing happens unless the dirty share of the
//!    bytes reaches `min.cleanable.dirty.ratio` (or a record is older than
//!    `max.compaction.lag.ms`).
//! 2. An offset map `key → latest offset` is built over the dirty part (bounded by the dedupe
//!    buffer size; a pass that fills it stops at that segment and the next pass goes on).
//! 3. Every segment below the end is rewritten under `.cleaned`: a record survives if no later
//!    record in the map has its key. Offsets are kept (gaps are fine). A batch that loses
//!    nothing is copied byte for byte; otherwise it is rebuilt with the same base offset,
//!    codec, producer fields and timestamps. Tombstones (null values) are kept until their
//!    batch's delete horizon (KIP-534: set to now + `delete.retention.ms` by the pass that
//!    first keeps them) has passed. Records without a key are dropped, as Kafka does.
//! 4. Each cleaned segment is fsynced, renamed `.swap`, and swapped in under the append lock;
//!    the old one is renamed `.deleted` and removed later, so readers are never disturbed.
//!
//! Transactions, as Kafka's cleaner treats them: nothing at or past the first unstable
//! offset is cleaned (an open transaction may still abort); records of aborted transactions
//! are removed and never enter the offset map (so they cannot shadow a committed value);
//! a marker stays while any record of its transaction remains; once none does, it gets a
//! delete horizon as a tombstone does (KIP-534) and a later pass removes it, so a consumer
//! that read the transaction's records has `delete.retention.ms` to see how it ended. Each
//! cleaned segment gets the `.txnindex` of the original.
//! Appends and reads of the active segment never wait for a pass.

use std::collections::HashMap;
use std::sync::Arc;

use strom_types::batch::{self, BatchHeader, RecordBatch, TimestampType};
use strom_types::record::BatchBuilder;

use crate::error::{Result, StorageError};
use crate::log::Log;
use crate::segment::{BatchMeta, Segment, CLEANED_SUFFIX, MAX_DECOMPRESSED};

/// What one cleaning pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanStats {
    /// Segments rewritten.
    pub segments_cleaned: usize,
    /// Bytes before.
    pub bytes_read: u64,
    /// Bytes after.
    pub bytes_written: u64,
    /// Records dropped because a later record has the same key (or no key).
    pub records_removed: u64,
    /// Tombstones dropped after their delete horizon.
    pub tombstones_removed: u64,
    /// Transaction markers dropped: no record of their transaction was left and their
    /// delete horizon had passed.
    pub markers_removed: u64,
    /// Offset up to which the log is now clean (the new first dirty offset).
    pub cleaned_up_to: i64,
}

/// How dirty a log is, and whether a pass should run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cleanability {
    /// Dirty bytes / (clean + dirty bytes) in the cleanable range.
    pub dirty_ratio: f64,
    /// Dirty bytes.
    pub dirty_bytes: u64,
    /// Offset where the cleanable range ends.
    pub end_offset: i64,
    /// A pass is due (ratio reached or max.compaction.lag.ms passed).
    pub due: bool,
}

fn cleanable_range(log: &Log, segs: &[Arc<Segment>], now_ms: i64) -> Result<(i64, Vec<usize>)> {
    let config = log.config();
    let active_base = log.active_base_offset();
    let unstable = log.first_unstable_offset().unwrap_or(i64::MAX);
    let mut end = active_base;
    let mut indices = Vec::new();
    for (i, seg) in segs.iter().enumerate() {
        if seg.base_offset() >= active_base {
            break;
        }
        let next_base = segs.get(i + 1).map_or(i64::MAX, |s| s.base_offset());
        if next_base > unstable {
            end = seg.base_offset();
            break;
        }
        if config.min_compaction_lag_ms > 0
            && seg.max_timestamp()? > now_ms.saturating_sub(config.min_compaction_lag_ms)
        {
            end = seg.base_offset();
            break;
        }
        indices.push(i);
    }
    Ok((end, indices))
}

/// Measures how dirty `log` is now.
pub fn cleanability(log: &Log, now_ms: i64) -> Result<Cleanability> {
    let config = log.config();
    let segs = log.segments_snapshot();
    let (end, indices) = cleanable_range(log, &segs, now_ms)?;
    let first_dirty = log.first_dirty_offset();
    let (mut clean, mut dirty) = (0u64, 0u64);
    let mut lag_due = false;
    for &i in &indices {
        let seg = &segs[i];
        let next_base = segs.get(i + 1).map(|s| s.base_offset()).unwrap_or(i64::MAX);
        if next_base <= first_dirty {
            clean += seg.size();
        } else {
            dirty += seg.size();
            if config.max_compaction_lag_ms != i64::MAX && seg.size() > 0 {
                let ts = seg.rolling_base_timestamp()?;
                lag_due |= ts >= 0 && now_ms.saturating_sub(ts) > config.max_compaction_lag_ms;
            }
        }
    }
    let total = clean + dirty;
    let ratio = if total == 0 {
        0.0
    } else {
        dirty as f64 / total as f64
    };
    Ok(Cleanability {
        dirty_ratio: ratio,
        dirty_bytes: dirty,
        end_offset: end,
        due: config.cleanup_policy.compact
            && dirty > 0
            && (ratio >= config.min_cleanable_dirty_ratio || lag_due),
    })
}

/// Runs one compaction pass over `log` if it is due (or `force`), keeping at most
/// `dedupe_buffer_bytes` of keys in the offset map. `None` when nothing was due.
pub fn clean_log(
    log: &Log,
    now_ms: i64,
    dedupe_buffer_bytes: usize,
    force: bool,
) -> Result<Option<CleanStats>> {
    let _pass = log.cleaning.lock();
    let config = log.config();
    if !config.cleanup_policy.compact || log.is_closed() {
        return Ok(None);
    }
    let state = cleanability(log, now_ms)?;
    if !(state.due || force && state.dirty_bytes > 0) {
        return Ok(None);
    }
    let segs = log.segments_snapshot();
    let (mut end, indices) = cleanable_range(log, &segs, now_ms)?;
    let first_dirty = log.first_dirty_offset();
    let aborted = Aborted::of(log);

    // 1. The offset map over the dirty segments.
    let mut map: HashMap<Box<[u8]>, i64> = HashMap::new();
    let mut map_bytes = 0usize;
    for &i in &indices {
        let seg = &segs[i];
        let next_base = segs.get(i + 1).map(|s| s.base_offset()).unwrap_or(i64::MAX);
        if next_base <= first_dirty {
            continue;
        }
        seg.for_each_batch(|b| {
            if b.header().is_control() || aborted.holds(b.header()) {
                return Ok(());
            }
            b.try_for_each_record(MAX_DECOMPRESSED, |offset, r| {
                if let (Some(key), true) = (r.key, offset >= first_dirty) {
                    if let Some(slot) = map.get_mut(key) {
                        *slot = offset;
                    } else {
                        map_bytes += key.len() + 48;
                        map.insert(key.into(), offset);
                    }
                }
                Ok::<(), StorageError>(())
            })?;
            Ok(())
        })?;
        if map_bytes >= dedupe_buffer_bytes && next_base < end {
            end = next_base;
            break;
        }
    }

    // 2. Rewrite every segment below the end.
    let mut stats = CleanStats {
        cleaned_up_to: end,
        ..CleanStats::default()
    };
    // Per producer, whether its transaction seen so far in this pass kept any record.
    let mut kept_data: HashMap<i64, bool> = HashMap::new();
    for (i, seg) in segs
        .iter()
        .enumerate()
        .filter(|(_, s)| s.base_offset() < end)
    {
        if log.is_active_segment(seg) {
            break;
        }
        let next_base = segs.get(i + 1).map(|s| s.base_offset());
        let cleaned = Segment::create_named(
            &log.dir(),
            seg.base_offset(),
            log.handles().clone(),
            config.index_interval_bytes,
            config.max_index_entries(),
            Some(CLEANED_SUFFIX),
        )?;
        let mut changed = false;
        seg.for_each_batch(|b| {
            let h = *b.header();
            if aborted.holds(&h) {
                kept_data.entry(h.producer_id).or_insert(false);
                stats.records_removed += h.records_count.max(0) as u64;
                changed = true;
                return Ok(());
            }
            let out = if h.is_control() {
                let data_left = kept_data.remove(&h.producer_id).unwrap_or(false);
                let out = filter_marker(&b, data_left, now_ms, config.delete_retention_ms)?;
                if matches!(out, Filtered::Drop) {
                    stats.markers_removed += 1;
                }
                out
            } else {
                filter_batch(&b, &map, now_ms, config.delete_retention_ms, &mut stats)?
            };
            if h.is_transactional() && !h.is_control() {
                *kept_data.entry(h.producer_id).or_insert(false) |= !matches!(out, Filtered::Drop);
            }
            match out {
                Filtered::Keep => {
                    cleaned.append(b.as_bytes(), &[BatchMeta::of(b.header())])?;
                }
                Filtered::Drop => changed = true,
                Filtered::Rebuilt(bytes) => {
                    changed = true;
                    let header = BatchHeader::parse(&bytes)
                        .map_err(|source| StorageError::InvalidBatch { index: 0, source })?;
                    cleaned.append(&bytes, &[BatchMeta::of(&header)])?;
                }
            }
            Ok(())
        })?;
        stats.bytes_read += seg.size();
        if !changed {
            // Nothing to remove here: keep the original file, discard the copy.
            cleaned.close();
            for p in cleaned.rename(Some(crate::segment::DELETED_SUFFIX))? {
                let _ = std::fs::remove_file(p);
            }
            stats.bytes_written += seg.size();
            continue;
        }
        cleaned.become_inactive()?;
        log.write_txn_index(seg.base_offset(), next_base, CLEANED_SUFFIX)?;
        stats.bytes_written += cleaned.size();
        if log.swap_segment(seg, cleaned)? {
            stats.segments_cleaned += 1;
        }
    }
    log.set_first_dirty(end.max(log.log_start_offset()));
    tracing::info!(
        partition = %log.topic_partition(),
        segments = stats.segments_cleaned,
        bytes_read = stats.bytes_read,
        bytes_written = stats.bytes_written,
        records_removed = stats.records_removed,
        tombstones_removed = stats.tombstones_removed,
        "compacted log"
    );
    Ok(Some(stats))
}

/// The aborted transactions of a log, by producer: which batches a pass removes.
struct Aborted(HashMap<i64, Vec<(i64, i64)>>);

impl Aborted {
    fn of(log: &Log) -> Self {
        let mut by_producer: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
        for t in log.all_aborted_transactions() {
            by_producer
                .entry(t.producer_id)
                .or_default()
                .push((t.first_offset, t.last_offset));
        }
        Aborted(by_producer)
    }

    /// True for a data batch of a transaction that was aborted.
    fn holds(&self, h: &BatchHeader) -> bool {
        h.is_transactional()
            && !h.is_control()
            && self.0.get(&h.producer_id).is_some_and(|ranges| {
                ranges
                    .iter()
                    .any(|(first, last)| (*first..=*last).contains(&h.base_offset))
            })
    }
}

enum Filtered {
    Keep,
    Drop,
    Rebuilt(Vec<u8>),
}

/// A transaction marker: kept while records of its transaction remain (`data_left`); once
/// none do, rewritten with a delete horizon of now + `delete.retention.ms`, and dropped by
/// the first pass after it.
fn filter_marker(
    b: &RecordBatch<'_>,
    data_left: bool,
    now_ms: i64,
    delete_retention_ms: i64,
) -> Result<Filtered> {
    let h = *b.header();
    if data_left || strom_types::control::marker_of(b).is_none() {
        return Ok(Filtered::Keep);
    }
    match h.delete_horizon_ms() {
        Some(horizon) if now_ms > horizon => return Ok(Filtered::Drop),
        Some(_) => return Ok(Filtered::Keep),
        None => {}
    }
    let invalid = |source| StorageError::InvalidBatch { index: 0, source };
    let records = b.records(MAX_DECOMPRESSED).map_err(invalid)?;
    let mut builder = BatchBuilder::new(strom_types::compression::Compression::None)
        .timestamp_type(h.timestamp_type())
        .producer(h.producer_id, h.producer_epoch, h.base_sequence)
        .transactional(true)
        .control(true)
        .partition_leader_epoch(h.partition_leader_epoch)
        .delete_horizon_ms(now_ms.saturating_add(delete_retention_ms));
    for r in records.iter() {
        let r = r.map_err(|e| invalid(e.into()))?;
        builder.append_with_offset_delta(
            r.offset_delta,
            h.base_timestamp.saturating_add(r.timestamp_delta),
            r.key,
            r.value,
            &[],
        );
    }
    let bytes = builder
        .build(h.base_offset)
        .map_err(|e| invalid(e.into()))?;
    Ok(Filtered::Rebuilt(bytes))
}

fn filter_batch(
    b: &RecordBatch<'_>,
    map: &HashMap<Box<[u8]>, i64>,
    now_ms: i64,
    delete_retention_ms: i64,
    stats: &mut CleanStats,
) -> Result<Filtered> {
    let h = *b.header();
    if h.is_control() {
        return Ok(Filtered::Keep);
    }
    let invalid = |source| StorageError::InvalidBatch { index: 0, source };
    let records = b.records(MAX_DECOMPRESSED).map_err(invalid)?;
    let horizon_passed = h.delete_horizon_ms().is_some_and(|hz| now_ms > hz);
    let mut kept = Vec::new();
    let mut all_kept = true;
    let mut has_tombstone = false;
    for r in records.iter() {
        let r = r.map_err(|e| invalid(e.into()))?;
        let offset = h.base_offset + i64::from(r.offset_delta);
        let latest = match r.key {
            Some(key) => map.get(key).is_none_or(|&o| offset >= o),
            None => false,
        };
        if !latest {
            stats.records_removed += 1;
            all_kept = false;
            continue;
        }
        if r.value.is_none() {
            if horizon_passed {
                stats.tombstones_removed += 1;
                all_kept = false;
                continue;
            }
            has_tombstone = true;
        }
        kept.push(r);
    }
    let needs_horizon = has_tombstone && !h.has_delete_horizon();
    if all_kept && !needs_horizon {
        return Ok(Filtered::Keep);
    }
    if kept.is_empty() {
        return Ok(Filtered::Drop);
    }
    let compression = h.compression().map_err(|e| invalid(e.into()))?;
    let mut builder = BatchBuilder::new(compression)
        .timestamp_type(h.timestamp_type())
        .producer(h.producer_id, h.producer_epoch, h.base_sequence)
        .transactional(h.is_transactional())
        .partition_leader_epoch(h.partition_leader_epoch);
    if has_tombstone {
        let horizon = h
            .delete_horizon_ms()
            .unwrap_or_else(|| now_ms.saturating_add(delete_retention_ms));
        builder = builder.delete_horizon_ms(horizon);
    }
    for r in &kept {
        let headers: Vec<(&[u8], Option<&[u8]>)> = r.headers().collect();
        builder.append_with_offset_delta(
            r.offset_delta,
            h.base_timestamp.saturating_add(r.timestamp_delta),
            r.key,
            r.value,
            &headers,
        );
    }
    let mut bytes = builder
        .build(h.base_offset)
        .map_err(|e| invalid(e.into()))?;
    if h.timestamp_type() == TimestampType::LogAppendTime {
        batch::set_max_timestamp(&mut bytes, TimestampType::LogAppendTime, h.max_timestamp);
    }
    Ok(Filtered::Rebuilt(bytes))
}
