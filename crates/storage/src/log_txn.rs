//! The transactional side of [`Log`]: markers on append, the first unstable offset, the
//! aborted-transaction index and what DescribeProducers shows.

use std::sync::atomic::Ordering;

use strom_types::batch::{BatchHeader, RecordBatch};
use strom_types::control::{marker_of, Marker};

use super::{AppendState, Log};
use crate::error::{Result, StorageError};
use crate::producer_state::{CompletedTxn, ProducerInfo};
use crate::txn_index::{self, AbortedTxn};

/// No transaction open: the first unstable offset as stored.
pub(super) const NONE_UNSTABLE: i64 = i64::MAX;

/// The marker each control batch of `records` holds (`None` for data batches), parallel to
/// `headers`.
pub(super) fn markers_of(records: &[u8], headers: &[BatchHeader]) -> Vec<Option<Marker>> {
    let mut pos = 0usize;
    headers
        .iter()
        .map(|h| {
            let at = pos;
            pos += h.size();
            if !h.is_control() {
                return None;
            }
            let bytes = records.get(at..at + h.size())?;
            marker_of(&RecordBatch::parse_prefix(bytes).ok()?)
        })
        .collect()
}

/// A control batch from the broker must be a marker its producer's state allows.
pub(super) fn check_markers(
    state: &AppendState,
    headers: &[BatchHeader],
    markers: &[Option<Marker>],
) -> Result<()> {
    for (h, m) in headers.iter().zip(markers) {
        if !h.is_control() {
            continue;
        }
        let Some(m) = m else {
            return Err(StorageError::PolicyViolation(
                "a control batch that is not a transaction marker",
            ));
        };
        state.producers.check_marker(h, m)?;
    }
    Ok(())
}

impl Log {
    /// Brings producer state up to appended batches (with their final offsets) and records
    /// the transactions their markers aborted, in the index of the active segment.
    pub(super) fn apply_producers(
        &self,
        state: &mut AppendState,
        headers: &[BatchHeader],
        markers: &[Option<Marker>],
    ) -> Result<()> {
        let mut aborted = Vec::new();
        for (h, m) in headers.iter().zip(markers) {
            if let Some(done) = state.producers.update(h, *m) {
                if done.aborted {
                    aborted.push(done);
                }
            }
        }
        if !aborted.is_empty() {
            let dir = self.dir();
            let base = state.active.base_offset();
            for done in aborted {
                let entry = self.aborted_entry(state, &done);
                self.aborted.write().push(entry);
                txn_index::append(&dir, base, &entry)?;
            }
        }
        self.publish_unstable(state);
        Ok(())
    }

    fn aborted_entry(&self, state: &AppendState, done: &CompletedTxn) -> AbortedTxn {
        AbortedTxn {
            producer_id: done.producer_id,
            first_offset: done.first_offset,
            last_offset: done.last_offset,
            last_stable_offset: state
                .producers
                .first_unstable_offset()
                .unwrap_or(done.last_offset + 1),
        }
    }

    pub(super) fn publish_unstable(&self, state: &AppendState) {
        self.first_unstable.store(
            state
                .producers
                .first_unstable_offset()
                .unwrap_or(NONE_UNSTABLE),
            Ordering::Release,
        );
    }

    /// Replaces the aborted transactions from `from` on by `rebuilt` (what a replay of the log
    /// from `from` found) and rewrites the index files of the segments from `from` on.
    pub(super) fn reset_aborted_from(&self, from: i64, rebuilt: Vec<AbortedTxn>) -> Result<()> {
        let mut all = self.aborted.write();
        all.retain(|t| t.last_offset < from);
        all.extend(rebuilt);
        all.sort_by_key(|t| t.last_offset);
        let dir = self.dir();
        let segs = self.segments.read();
        let bases: Vec<i64> = segs.keys().copied().collect();
        for (i, base) in bases.iter().enumerate() {
            let next = bases.get(i + 1).copied();
            if next.is_some_and(|n| n <= from) {
                continue;
            }
            txn_index::rewrite(&dir, *base, txn_index::in_range(&all, *base, next))?;
        }
        Ok(())
    }

    /// Forgets aborted transactions whose marker is below `offset` (their segments are gone).
    pub(super) fn drop_aborted_below(&self, offset: i64) {
        self.aborted.write().retain(|t| t.last_offset >= offset);
    }

    /// Writes the index file of a segment based at `base` that covers up to `next` (a
    /// compacted segment replacing others), under the extra suffix `suffix` its other files
    /// carry until they are swapped in.
    pub(crate) fn write_txn_index(&self, base: i64, next: Option<i64>, suffix: &str) -> Result<()> {
        let all = self.aborted.read();
        let path = self.dir().join(format!(
            "{}.{suffix}",
            crate::segment::file_name(base, txn_index::TXN_INDEX_SUFFIX)
        ));
        txn_index::write_file(&path, txn_index::in_range(&all, base, next))
    }

    /// The first offset of the oldest transaction still open here (Kafka's first unstable
    /// offset); the last stable offset is the smaller of it and the high watermark.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        let v = self.first_unstable.load(Ordering::Acquire);
        (v != NONE_UNSTABLE).then_some(v)
    }

    /// The aborted transactions a read_committed fetch of `[from, to)` must be told of.
    pub fn aborted_transactions(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        txn_index::collect(&self.aborted.read(), from, to)
    }

    /// Every aborted transaction this log knows, ordered by marker offset.
    pub fn all_aborted_transactions(&self) -> Vec<AbortedTxn> {
        self.aborted.read().clone()
    }

    /// Open transactions as (producer id, first offset), oldest first.
    pub fn ongoing_transactions(&self) -> Vec<(i64, i64)> {
        self.append.lock().producers.ongoing()
    }

    /// The producers this partition knows (DescribeProducers).
    pub fn producers(&self) -> Vec<ProducerInfo> {
        self.append.lock().producers.describe()
    }
}

impl Log {
    /// True while `producer_id` has a transaction open in this partition at `epoch` (a
    /// batch at a newer epoch belongs to a later transaction, whose partition must be
    /// added anew: at transaction version 2 each transaction has its own epoch).
    pub fn in_transaction(&self, producer_id: i64, epoch: i16) -> bool {
        self.append
            .lock()
            .producers
            .in_transaction(producer_id, epoch)
    }
}
