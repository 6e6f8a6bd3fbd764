//! Idempotent producers' state for one partition (Kafka's ProducerStateManager): for each
//! producer id its epoch and the metadata of its last five batches, which is what the leader
//! needs to refuse a batch out of sequence and to answer a retried batch with the offsets it
//! was first written at instead of writing it twice.
//!
//! The state is rebuilt from the log: from the newest snapshot file
//! (`<20-digit offset>.snapshot`, written when a segment rolls and at close) plus a scan of the
//! batch headers after it. Snapshots use Kafka's version-1 layout, so they keep one batch per
//! producer (as Kafka's do): after a restart only the last batch of each producer is known as a
//! possible duplicate.
//!
//! Transactions: a producer's first transactional batch opens a transaction here at its
//! offset; the COMMIT or ABORT marker closes it and is reported as a [`CompletedTxn`]. The
//! smallest open first offset is the partition's first unstable offset, which bounds the
//! last stable offset. Snapshots keep each open transaction's first offset and the
//! coordinator epoch of the last marker, as Kafka's do.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};

use strom_types::batch::BatchHeader;
use strom_types::control::{ControlType, Marker};

use crate::error::{IoContext, Result, StorageError};

/// How many batches per producer are remembered for duplicate detection (Kafka's value, which
/// is also the most a client may have in flight with idempotence on).
pub const MAX_CACHED_BATCHES: usize = 5;

/// Suffix of producer snapshot files.
pub const SNAPSHOT_SUFFIX: &str = "snapshot";

/// Kafka's producer.id.expiration.ms default (1 day): a producer silent this long is forgotten.
pub const PRODUCER_ID_EXPIRATION_MS: i64 = 24 * 3600 * 1000;

/// Snapshots kept per partition: the newest two, so a snapshot that a crash left ahead of the
/// recovered log end still has an older one to fall back on.
const SNAPSHOTS_KEPT: usize = 2;

/// One appended batch of a producer, as remembered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerBatch {
    /// Sequence number of the first record.
    pub first_seq: i32,
    /// Sequence number of the last record.
    pub last_seq: i32,
    /// Offset of the first record.
    pub first_offset: i64,
    /// Offset of the last record.
    pub last_offset: i64,
    /// The batch's max timestamp.
    pub max_timestamp: i64,
}

/// What is known of one producer.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<ProducerBatch>,
    /// Newest batch timestamp, for producer.id.expiration.ms.
    last_timestamp: i64,
    /// First offset of the transaction open in this partition, if any.
    txn_first_offset: Option<i64>,
    /// Coordinator epoch of the last marker written for this producer (-1: none yet).
    coordinator_epoch: i32,
    /// The epoch was raised by a marker (transaction version 2 bumps it at every end), so
    /// the producer's next batch at that epoch must start at sequence 0.
    epoch_from_marker: bool,
}

impl Default for ProducerEntry {
    fn default() -> Self {
        ProducerEntry {
            epoch: 0,
            batches: VecDeque::new(),
            last_timestamp: -1,
            txn_first_offset: None,
            coordinator_epoch: -1,
            epoch_from_marker: false,
        }
    }
}

/// A transaction a marker ended in this partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletedTxn {
    /// The producer.
    pub producer_id: i64,
    /// Offset of its first record in this partition.
    pub first_offset: i64,
    /// Offset of the marker.
    pub last_offset: i64,
    /// Ended by an ABORT marker.
    pub aborted: bool,
}

impl ProducerEntry {
    fn set_epoch(&mut self, epoch: i16) {
        if epoch != self.epoch {
            self.batches.clear();
            self.epoch = epoch;
        }
    }

    /// A batch without a sequence (a marker, a coordinator's transactional batch): the
    /// epoch only moves forward, the newest timestamp is kept.
    fn advance_to(&mut self, h: &BatchHeader) {
        if h.is_control() && h.producer_epoch > self.epoch {
            self.epoch_from_marker = true;
        }
        self.set_epoch(h.producer_epoch.max(self.epoch));
        self.last_timestamp = self.last_timestamp.max(h.max_timestamp);
    }

    fn push(&mut self, epoch: i16, batch: ProducerBatch) {
        self.set_epoch(epoch);
        self.epoch_from_marker = false;
        if self.batches.len() == MAX_CACHED_BATCHES {
            self.batches.pop_front();
        }
        self.batches.push_back(batch);
        self.last_timestamp = self.last_timestamp.max(batch.max_timestamp);
    }
}

/// The verdict on a producer's batch before it is appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SequenceCheck {
    /// In sequence (or not idempotent): append it.
    Append,
    /// A retry of a batch already in the log: answer with its offsets, write nothing.
    Duplicate(ProducerBatch),
}

/// The sequence number of a batch's last record (sequences wrap at `i32::MAX` to 0).
pub fn last_sequence(h: &BatchHeader) -> i32 {
    let last = i64::from(h.base_sequence) + i64::from(h.last_offset_delta);
    if last > i64::from(i32::MAX) {
        (last - i64::from(i32::MAX) - 1) as i32
    } else {
        last as i32
    }
}

fn next_sequence(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

fn batch_of(h: &BatchHeader) -> ProducerBatch {
    ProducerBatch {
        first_seq: h.base_sequence,
        last_seq: last_sequence(h),
        first_offset: h.base_offset,
        last_offset: h.base_offset + i64::from(h.last_offset_delta),
        max_timestamp: h.max_timestamp,
    }
}

/// True when the header is an idempotent producer's (a producer id and a sequence).
fn is_idempotent(h: &BatchHeader) -> bool {
    h.producer_id >= 0 && h.base_sequence >= 0
}

/// Every producer of one partition.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ProducerState {
    producers: HashMap<i64, ProducerEntry>,
    /// Open transactions as (first offset, producer id), smallest first.
    ongoing: BTreeSet<(i64, i64)>,
}

impl ProducerState {
    /// Producers known.
    pub(crate) fn len(&self) -> usize {
        self.producers.len()
    }

    /// The first offset of the oldest open transaction (Kafka's first unstable offset).
    pub(crate) fn first_unstable_offset(&self) -> Option<i64> {
        self.ongoing.iter().next().map(|(offset, _)| *offset)
    }

    /// True while `producer_id` has a transaction open here at `epoch`.
    pub(crate) fn in_transaction(&self, producer_id: i64, epoch: i16) -> bool {
        self.producers
            .get(&producer_id)
            .is_some_and(|e| e.txn_first_offset.is_some() && e.epoch == epoch)
    }

    /// Open transactions as (producer id, first offset), oldest first.
    pub(crate) fn ongoing(&self) -> Vec<(i64, i64)> {
        self.ongoing.iter().map(|(o, p)| (*p, *o)).collect()
    }

    /// Known producers as (id, epoch, last sequence, newest timestamp, coordinator epoch,
    /// open transaction's first offset), for DescribeProducers.
    pub(crate) fn describe(&self) -> Vec<ProducerInfo> {
        let mut out: Vec<ProducerInfo> = self
            .producers
            .iter()
            .map(|(id, e)| ProducerInfo {
                producer_id: *id,
                epoch: e.epoch,
                last_sequence: e.batches.back().map_or(-1, |b| b.last_seq),
                last_timestamp: e.last_timestamp,
                coordinator_epoch: e.coordinator_epoch,
                txn_first_offset: e.txn_first_offset,
            })
            .collect();
        out.sort_by_key(|p| p.producer_id);
        out
    }

    /// Checks a marker against the producer: an older producer epoch or an older
    /// coordinator epoch than already seen is fenced.
    pub(crate) fn check_marker(&self, h: &BatchHeader, marker: &Marker) -> Result<()> {
        let Some(e) = self.producers.get(&h.producer_id) else {
            return Ok(());
        };
        if h.producer_epoch < e.epoch {
            return Err(StorageError::InvalidProducerEpoch {
                producer_id: h.producer_id,
                epoch: h.producer_epoch,
                current: e.epoch,
            });
        }
        if marker.coordinator_epoch < e.coordinator_epoch {
            return Err(StorageError::CoordinatorFenced {
                producer_id: h.producer_id,
                epoch: marker.coordinator_epoch,
                current: e.coordinator_epoch,
            });
        }
        Ok(())
    }

    /// Checks a client's batch against what is known of its producer (Kafka's rules):
    /// an older epoch is fenced; a newer epoch must start at sequence 0; within an epoch a
    /// batch equal to one of the last five is a duplicate and any other must follow the last
    /// sequence. A producer with no state left (never seen, expired, or its batches deleted)
    /// may start at any sequence, as in Kafka.
    pub(crate) fn check(&self, h: &BatchHeader) -> Result<SequenceCheck> {
        check_entry(self.producers.get(&h.producer_id), h)
    }

    /// [`ProducerState::check`] over the batches of one append, each seen after the ones
    /// before it. A duplicate is only an answer when it is the append's only batch (what
    /// clients send); inside a larger append it is DUPLICATE_SEQUENCE_NUMBER.
    pub(crate) fn check_all(&self, headers: &[BatchHeader]) -> Result<SequenceCheck> {
        if let [h] = headers {
            return self.check(h);
        }
        let mut pending: HashMap<i64, ProducerEntry> = HashMap::new();
        for h in headers.iter().filter(|h| is_idempotent(h)) {
            let entry = pending
                .get(&h.producer_id)
                .or_else(|| self.producers.get(&h.producer_id));
            if let SequenceCheck::Duplicate(_) = check_entry(entry, h)? {
                return Err(StorageError::DuplicateSequence {
                    producer_id: h.producer_id,
                    sequence: h.base_sequence,
                });
            }
            let mut next = entry.cloned().unwrap_or_else(|| ProducerEntry {
                epoch: h.producer_epoch,
                ..Default::default()
            });
            next.push(h.producer_epoch, batch_of(h));
            pending.insert(h.producer_id, next);
        }
        Ok(SequenceCheck::Append)
    }
}

/// What DescribeProducers shows of one producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerInfo {
    /// Producer id.
    pub producer_id: i64,
    /// Its epoch.
    pub epoch: i16,
    /// Last sequence written (-1: none remembered).
    pub last_sequence: i32,
    /// Newest batch timestamp.
    pub last_timestamp: i64,
    /// Coordinator epoch of its last marker (-1: none).
    pub coordinator_epoch: i32,
    /// First offset of its open transaction here.
    pub txn_first_offset: Option<i64>,
}

/// The rules of [`ProducerState::check`] against one producer's entry.
fn check_entry(entry: Option<&ProducerEntry>, h: &BatchHeader) -> Result<SequenceCheck> {
    if !is_idempotent(h) {
        return Ok(SequenceCheck::Append);
    }
    let Some(entry) = entry else {
        return Ok(SequenceCheck::Append);
    };
    if entry.txn_first_offset.is_some() && !h.is_transactional() && h.producer_epoch == entry.epoch
    {
        return Err(StorageError::InvalidTxnState {
            producer_id: h.producer_id,
            reason: "a non-transactional batch while its transaction is open",
        });
    }
    if h.producer_epoch < entry.epoch {
        return Err(StorageError::InvalidProducerEpoch {
            producer_id: h.producer_id,
            epoch: h.producer_epoch,
            current: entry.epoch,
        });
    }
    if h.producer_epoch > entry.epoch {
        if h.base_sequence != 0 {
            return Err(StorageError::OutOfOrderSequence {
                producer_id: h.producer_id,
                expected: 0,
                got: h.base_sequence,
            });
        }
        return Ok(SequenceCheck::Append);
    }
    let last_seq = last_sequence(h);
    if let Some(dup) = entry
        .batches
        .iter()
        .find(|b| b.first_seq == h.base_sequence && b.last_seq == last_seq)
    {
        return Ok(SequenceCheck::Duplicate(*dup));
    }
    match entry.batches.back() {
        None if entry.epoch_from_marker && h.base_sequence != 0 => {
            Err(StorageError::OutOfOrderSequence {
                producer_id: h.producer_id,
                expected: 0,
                got: h.base_sequence,
            })
        }
        Some(last) if h.base_sequence != next_sequence(last.last_seq) => {
            Err(StorageError::OutOfOrderSequence {
                producer_id: h.producer_id,
                expected: next_sequence(last.last_seq),
                got: h.base_sequence,
            })
        }
        _ => Ok(SequenceCheck::Append),
    }
}

impl ProducerState {
    /// Records a batch now in the log (appended, replicated or replayed). `h` carries its
    /// final base offset; `marker` is what a control batch holds. A marker ends the
    /// producer's open transaction, which is returned.
    pub(crate) fn update(
        &mut self,
        h: &BatchHeader,
        marker: Option<Marker>,
    ) -> Option<CompletedTxn> {
        if h.is_control() {
            let marker = marker?;
            if h.producer_id < 0 {
                return None;
            }
            let e = self.entry_of(h);
            e.advance_to(h);
            e.coordinator_epoch = e.coordinator_epoch.max(marker.coordinator_epoch);
            let first = e.txn_first_offset.take()?;
            self.ongoing.remove(&(first, h.producer_id));
            return Some(CompletedTxn {
                producer_id: h.producer_id,
                first_offset: first,
                last_offset: h.base_offset,
                aborted: marker.control == ControlType::Abort,
            });
        }
        // Transactional batches without sequences are the coordinators' own (TxnOffsetCommit
        // writes them to __consumer_offsets): they open a transaction all the same.
        if !(is_idempotent(h) || h.is_transactional() && h.producer_id >= 0) {
            return None;
        }
        let e = self.entry_of(h);
        if is_idempotent(h) {
            e.push(h.producer_epoch, batch_of(h));
        } else {
            e.advance_to(h);
        }
        if h.is_transactional() && e.txn_first_offset.is_none() {
            e.txn_first_offset = Some(h.base_offset);
            self.ongoing.insert((h.base_offset, h.producer_id));
        }
        None
    }

    /// The entry of `h`'s producer, created at its epoch if new.
    fn entry_of(&mut self, h: &BatchHeader) -> &mut ProducerEntry {
        self.producers
            .entry(h.producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch: h.producer_epoch,
                ..Default::default()
            })
    }

    /// Forgets producers whose newest batch is older than `expiration_ms` before `now_ms`
    /// (producer.id.expiration.ms); one with a transaction open stays.
    pub(crate) fn expire(&mut self, now_ms: i64, expiration_ms: i64) {
        let horizon = now_ms.saturating_sub(expiration_ms);
        self.producers
            .retain(|_, e| e.last_timestamp >= horizon || e.txn_first_offset.is_some());
    }

    /// Kafka's version-1 snapshot body: version, CRC-32C of the rest, then the entries.
    fn encode(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(4 + self.producers.len() * 46);
        let mut ids: Vec<&i64> = self.producers.keys().collect();
        ids.sort_unstable();
        body.extend_from_slice(&(ids.len() as i32).to_be_bytes());
        for id in ids {
            let e = &self.producers[id];
            // A producer known only by its markers has no batch: Kafka writes -1s then.
            let (last_seq, last_offset, delta) = match e.batches.back() {
                Some(last) => (
                    last.last_seq,
                    last.last_offset,
                    (last.last_offset - last.first_offset) as i32,
                ),
                None => (-1, -1, 0),
            };
            body.extend_from_slice(&id.to_be_bytes());
            body.extend_from_slice(&e.epoch.to_be_bytes());
            body.extend_from_slice(&last_seq.to_be_bytes());
            body.extend_from_slice(&last_offset.to_be_bytes());
            body.extend_from_slice(&delta.to_be_bytes());
            body.extend_from_slice(&e.last_timestamp.to_be_bytes());
            body.extend_from_slice(&e.coordinator_epoch.to_be_bytes());
            body.extend_from_slice(&e.txn_first_offset.unwrap_or(-1).to_be_bytes());
        }
        let mut out = Vec::with_capacity(6 + body.len());
        out.extend_from_slice(&1i16.to_be_bytes());
        out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// Parses a snapshot; `None` if it is damaged in any way.
    fn decode(buf: &[u8]) -> Option<ProducerState> {
        const ENTRY: usize = 8 + 2 + 4 + 8 + 4 + 8 + 4 + 8;
        let version = i16::from_be_bytes(buf.get(0..2)?.try_into().ok()?);
        let crc = u32::from_be_bytes(buf.get(2..6)?.try_into().ok()?);
        let body = buf.get(6..)?;
        if version != 1 || crc32c::crc32c(body) != crc {
            return None;
        }
        let count = i32::from_be_bytes(body.get(0..4)?.try_into().ok()?);
        let entries = body.get(4..)?;
        if count < 0 || entries.len() != count as usize * ENTRY {
            return None;
        }
        let mut state = ProducerState::default();
        for e in entries.chunks_exact(ENTRY) {
            let i64_at = |at: usize| i64::from_be_bytes(e[at..at + 8].try_into().unwrap_or([0; 8]));
            let i32_at = |at: usize| i32::from_be_bytes(e[at..at + 4].try_into().unwrap_or([0; 4]));
            let producer_id = i64_at(0);
            let epoch = i16::from_be_bytes([e[8], e[9]]);
            let last_seq = i32_at(10);
            let last_offset = i64_at(14);
            let delta = i32_at(22);
            let timestamp = i64_at(26);
            let coordinator_epoch = i32_at(34);
            let txn_first = i64_at(38);
            let first_seq = last_seq.wrapping_sub(delta).max(0);
            let mut entry = ProducerEntry {
                epoch,
                last_timestamp: timestamp,
                coordinator_epoch,
                txn_first_offset: (txn_first >= 0).then_some(txn_first),
                ..Default::default()
            };
            if last_offset >= 0 && last_seq >= 0 {
                entry.push(
                    epoch,
                    ProducerBatch {
                        first_seq,
                        last_seq,
                        first_offset: last_offset - i64::from(delta),
                        last_offset,
                        max_timestamp: timestamp,
                    },
                );
            }
            if txn_first >= 0 {
                state.ongoing.insert((txn_first, producer_id));
            }
            state.producers.insert(producer_id, entry);
        }
        Some(state)
    }
}

/// The snapshot file for `offset` in `dir`.
pub(crate) fn snapshot_path(dir: &Path, offset: i64) -> PathBuf {
    dir.join(crate::segment::file_name(offset, SNAPSHOT_SUFFIX))
}

/// Snapshot offsets present in `dir`, ascending.
pub(crate) fn list_snapshots(dir: &Path) -> Result<Vec<i64>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(stem) = name.strip_suffix(&format!(".{SNAPSHOT_SUFFIX}")) {
            if let Ok(offset) = stem.parse::<i64>() {
                out.push(offset);
            }
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Writes the state as the snapshot at `offset` (tmp file, then rename) and removes all but
/// the newest [`SNAPSHOTS_KEPT`]. Not fsynced: a torn snapshot fails its CRC at load and an
/// older one (or a scan) takes its place.
pub(crate) fn write_snapshot(dir: &Path, offset: i64, state: &ProducerState) -> Result<()> {
    let path = snapshot_path(dir, offset);
    let tmp = path.with_extension(format!("{SNAPSHOT_SUFFIX}.tmp"));
    std::fs::write(&tmp, state.encode()).at(&tmp)?;
    std::fs::rename(&tmp, &path).at(&path)?;
    let all = list_snapshots(dir)?;
    if all.len() > SNAPSHOTS_KEPT {
        for old in &all[..all.len() - SNAPSHOTS_KEPT] {
            let p = snapshot_path(dir, *old);
            std::fs::remove_file(&p).at(&p)?;
        }
    }
    Ok(())
}

/// Removes every snapshot at or above `offset` (they describe records no longer in the log).
pub(crate) fn remove_snapshots_from(dir: &Path, offset: i64) -> Result<()> {
    for s in list_snapshots(dir)? {
        if s >= offset {
            let p = snapshot_path(dir, s);
            std::fs::remove_file(&p).at(&p)?;
        }
    }
    Ok(())
}

/// The newest readable snapshot at or below `log_end`: its offset and state. Damaged
/// snapshots and snapshots beyond the log end are deleted on the way.
pub(crate) fn load_latest(dir: &Path, log_end: i64) -> Result<Option<(i64, ProducerState)>> {
    for offset in list_snapshots(dir)?.into_iter().rev() {
        let path = snapshot_path(dir, offset);
        if offset > log_end {
            std::fs::remove_file(&path).at(&path)?;
            continue;
        }
        let bytes = std::fs::read(&path).at(&path)?;
        match ProducerState::decode(&bytes) {
            Some(state) => return Ok(Some((offset, state))),
            None => {
                tracing::warn!(path = %path.display(), "removing a damaged producer snapshot");
                std::fs::remove_file(&path).at(&path)?;
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(pid: i64, epoch: i16, seq: i32, base: i64, count: i32) -> BatchHeader {
        BatchHeader {
            base_offset: base,
            batch_length: 0,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: count - 1,
            base_timestamp: 1_000,
            max_timestamp: 1_000,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            records_count: count,
        }
    }

    #[test]
    fn sequences_epochs_and_duplicates() {
        let mut s = ProducerState::default();
        assert_eq!(
            s.check(&header(7, 0, 5, 0, 1)).ok(),
            Some(SequenceCheck::Append)
        );
        s.update(&header(7, 0, 0, 0, 3), None);
        let dup = s.check(&header(7, 0, 0, 99, 3)).ok();
        assert!(
            matches!(dup, Some(SequenceCheck::Duplicate(b)) if b.first_offset == 0 && b.last_offset == 2)
        );
        assert!(matches!(
            s.check(&header(7, 0, 4, 3, 1)),
            Err(StorageError::OutOfOrderSequence {
                expected: 3,
                got: 4,
                ..
            })
        ));
        assert_eq!(
            s.check(&header(7, 0, 3, 3, 1)).ok(),
            Some(SequenceCheck::Append)
        );
        assert!(matches!(
            s.check(&header(7, 1, 3, 3, 1)),
            Err(StorageError::OutOfOrderSequence { expected: 0, .. })
        ));
        s.update(&header(7, 1, 0, 3, 1), None);
        assert!(matches!(
            s.check(&header(7, 0, 1, 4, 1)),
            Err(StorageError::InvalidProducerEpoch {
                epoch: 0,
                current: 1,
                ..
            })
        ));
        // Non-idempotent batches are never checked.
        assert_eq!(
            s.check(&header(-1, -1, -1, 0, 1)).ok(),
            Some(SequenceCheck::Append)
        );
    }

    #[test]
    fn five_batches_are_remembered_and_sequences_wrap() {
        let mut s = ProducerState::default();
        for i in 0..7 {
            s.update(&header(1, 0, i, i64::from(i), 1), None);
        }
        for i in 2..7 {
            assert!(matches!(
                s.check(&header(1, 0, i, 0, 1)),
                Ok(SequenceCheck::Duplicate(_))
            ));
        }
        assert!(s.check(&header(1, 0, 1, 0, 1)).is_err());
        let mut w = ProducerState::default();
        w.update(&header(2, 0, i32::MAX - 1, 0, 2), None);
        assert_eq!(last_sequence(&header(2, 0, i32::MAX - 1, 0, 3)), 0);
        assert_eq!(
            w.check(&header(2, 0, 0, 2, 1)).ok(),
            Some(SequenceCheck::Append)
        );
    }

    #[test]
    fn snapshot_round_trip_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ProducerState::default();
        s.update(&header(1, 3, 10, 100, 4), None);
        s.update(&header(2, 0, 0, 104, 1), None);
        write_snapshot(dir.path(), 105, &s).unwrap();
        let (at, loaded) = load_latest(dir.path(), 200).unwrap().unwrap();
        assert_eq!(at, 105);
        assert!(matches!(
            loaded.check(&header(1, 3, 10, 0, 4)),
            Ok(SequenceCheck::Duplicate(b)) if b.first_offset == 100 && b.last_offset == 103
        ));
        assert!(loaded.check(&header(1, 3, 15, 0, 1)).is_err());
        // Beyond the log end: removed. Damaged: removed, the older one is used.
        write_snapshot(dir.path(), 300, &s).unwrap();
        assert_eq!(load_latest(dir.path(), 200).unwrap().unwrap().0, 105);
        write_snapshot(dir.path(), 150, &s).unwrap();
        let p = snapshot_path(dir.path(), 150);
        let mut bytes = std::fs::read(&p).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&p, bytes).unwrap();
        assert_eq!(load_latest(dir.path(), 200).unwrap().unwrap().0, 105);
        assert_eq!(list_snapshots(dir.path()).unwrap(), vec![105]);
    }

    #[test]
    fn expiry() {
        let mut s = ProducerState::default();
        s.update(&header(1, 0, 0, 0, 1), None);
        s.expire(1_000 + 10, 100);
        assert_eq!(s.len(), 1);
        s.expire(1_000 + 101, 100);
        assert_eq!(s.len(), 0);
    }

    fn txn_header(pid: i64, epoch: i16, seq: i32, base: i64, count: i32) -> BatchHeader {
        BatchHeader {
            attributes: 0x10,
            ..header(pid, epoch, seq, base, count)
        }
    }

    fn marker_header(pid: i64, epoch: i16, at: i64) -> BatchHeader {
        BatchHeader {
            attributes: 0x30,
            base_sequence: -1,
            records_count: 1,
            last_offset_delta: 0,
            ..header(pid, epoch, 0, at, 1)
        }
    }

    fn marker(control: ControlType, coordinator_epoch: i32) -> Option<Marker> {
        Some(Marker {
            control,
            coordinator_epoch,
        })
    }

    #[test]
    fn transactions_open_at_their_first_batch_and_close_at_their_marker() {
        let mut s = ProducerState::default();
        s.update(&header(9, 0, 0, 0, 2), None);
        assert_eq!(s.first_unstable_offset(), None);
        s.update(&txn_header(1, 0, 0, 2, 2), None);
        s.update(&txn_header(2, 0, 0, 4, 1), None);
        s.update(&txn_header(1, 0, 2, 5, 1), None);
        assert_eq!(s.first_unstable_offset(), Some(2));
        assert_eq!(s.ongoing(), vec![(1, 2), (2, 4)]);
        // A non-transactional batch in the middle of its transaction is refused.
        assert!(matches!(
            s.check(&header(1, 0, 3, 6, 1)),
            Err(StorageError::InvalidTxnState { .. })
        ));
        let done = s.update(&marker_header(1, 0, 6), marker(ControlType::Abort, 3));
        assert_eq!(
            done,
            Some(CompletedTxn {
                producer_id: 1,
                first_offset: 2,
                last_offset: 6,
                aborted: true
            })
        );
        assert_eq!(s.first_unstable_offset(), Some(4));
        // A retried marker finds nothing open; an older coordinator is fenced.
        assert_eq!(
            s.update(&marker_header(1, 0, 7), marker(ControlType::Abort, 3)),
            None
        );
        assert!(matches!(
            s.check_marker(
                &marker_header(1, 0, 8),
                &Marker {
                    control: ControlType::Commit,
                    coordinator_epoch: 2
                }
            ),
            Err(StorageError::CoordinatorFenced { .. })
        ));
        assert!(s
            .update(&marker_header(2, 0, 8), marker(ControlType::Commit, 3))
            .is_some_and(|t| !t.aborted && t.first_offset == 4));
        assert_eq!(s.first_unstable_offset(), None);
    }

    #[test]
    fn a_snapshot_keeps_open_transactions_and_marker_only_producers() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ProducerState::default();
        s.update(&txn_header(1, 2, 0, 10, 3), None);
        s.update(&marker_header(5, 4, 13), marker(ControlType::Commit, 6));
        write_snapshot(dir.path(), 14, &s).unwrap();
        let (_, loaded) = load_latest(dir.path(), 14).unwrap().unwrap();
        assert_eq!(loaded.first_unstable_offset(), Some(10));
        assert!(matches!(
            loaded.check(&header(5, 3, 0, 14, 1)),
            Err(StorageError::InvalidProducerEpoch { current: 4, .. })
        ));
        assert!(loaded
            .check_marker(
                &marker_header(5, 4, 14),
                &Marker {
                    control: ControlType::Abort,
                    coordinator_epoch: 5
                }
            )
            .is_err());
        assert_eq!(loaded, s);
    }

    #[test]
    fn a_marker_that_bumps_the_epoch_starts_the_next_transaction_at_sequence_0() {
        // Transaction version 2: data at epoch 0, the marker at epoch 1.
        let mut s = ProducerState::default();
        s.update(&txn_header(1, 0, 0, 0, 3), None);
        assert!(s.in_transaction(1, 0));
        assert!(
            !s.in_transaction(1, 1),
            "a later epoch is a later transaction"
        );
        s.update(&marker_header(1, 1, 3), marker(ControlType::Commit, 0));
        assert!(!s.in_transaction(1, 0));
        // A late write of the finished transaction is fenced by the epoch alone.
        assert!(matches!(
            s.check(&txn_header(1, 0, 3, 4, 1)),
            Err(StorageError::InvalidProducerEpoch { .. })
        ));
        // The next transaction starts over at sequence 0, and only there.
        assert!(matches!(
            s.check(&txn_header(1, 1, 1, 4, 1)),
            Err(StorageError::OutOfOrderSequence { expected: 0, .. })
        ));
        assert_eq!(
            s.check(&txn_header(1, 1, 0, 4, 1)).unwrap(),
            SequenceCheck::Append
        );
        s.update(&txn_header(1, 1, 0, 4, 1), None);
        assert_eq!(
            s.check(&txn_header(1, 1, 1, 5, 1)).unwrap(),
            SequenceCheck::Append
        );
        assert!(s.in_transaction(1, 1));
    }
}
