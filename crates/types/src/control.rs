//! Transaction markers: the control batches that end a transaction in a partition.
//!
//! A marker is a control, transactional batch of one record carrying the producer's id and
//! epoch (sequence -1). The record's key is Kafka's `EndTxnMarker` key (version 0, type 0 for
//! ABORT or 1 for COMMIT) and its value the marker's version 0 body (the coordinator epoch).

use crate::batch::RecordBatch;
use crate::compression::Compression;
use crate::record::BatchBuilder;

/// Which way a transaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlType {
    /// The transaction's records are discarded by read_committed consumers.
    Abort,
    /// The transaction's records become visible.
    Commit,
}

impl ControlType {
    fn id(self) -> i16 {
        match self {
            ControlType::Abort => 0,
            ControlType::Commit => 1,
        }
    }

    /// COMMIT or ABORT.
    pub fn name(self) -> &'static str {
        match self {
            ControlType::Abort => "ABORT",
            ControlType::Commit => "COMMIT",
        }
    }
}

/// A marker as read back from a control batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    /// Commit or abort.
    pub control: ControlType,
    /// The epoch of the transaction coordinator that wrote it (-1 when the value is absent).
    pub coordinator_epoch: i32,
}

/// A marker batch for producer `(producer_id, epoch)`, offsets to be assigned on append.
pub fn marker_batch(
    producer_id: i64,
    producer_epoch: i16,
    control: ControlType,
    coordinator_epoch: i32,
    timestamp: i64,
) -> Vec<u8> {
    let mut key = Vec::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&control.id().to_be_bytes());
    let mut value = Vec::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&coordinator_epoch.to_be_bytes());
    let mut b = BatchBuilder::new(Compression::None)
        .producer(producer_id, producer_epoch, -1)
        .transactional(true)
        .control(true);
    b.append(timestamp, Some(&key), Some(&value), &[]);
    // An uncompressed build cannot fail.
    b.build(0).unwrap_or_default()
}

/// The marker a control batch holds; `None` for a batch that is not a well-formed marker
/// (Kafka ignores unknown control types).
pub fn marker_of(batch: &RecordBatch<'_>) -> Option<Marker> {
    if !batch.header().is_control() {
        return None;
    }
    let records = batch.records(1 << 16).ok()?;
    let record = records.iter().next()?.ok()?;
    let key = record.key?;
    if key.len() < 4 {
        return None;
    }
    let control = match i16::from_be_bytes([key[2], key[3]]) {
        0 => ControlType::Abort,
        1 => ControlType::Commit,
        _ => return None,
    };
    let coordinator_epoch = record
        .value
        .filter(|v| v.len() >= 6)
        .map(|v| i32::from_be_bytes([v[2], v[3], v[4], v[5]]))
        .unwrap_or(-1);
    Some(Marker {
        control,
        coordinator_epoch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_reads_back() {
        for control in [ControlType::Abort, ControlType::Commit] {
            let bytes = marker_batch(42, 3, control, 7, 1_000);
            let batch = RecordBatch::parse_prefix(&bytes).unwrap();
            batch.validate_crc().unwrap();
            let h = batch.header();
            assert!(h.is_control() && h.is_transactional());
            assert_eq!(
                (h.producer_id, h.producer_epoch, h.base_sequence),
                (42, 3, -1)
            );
            assert_eq!(
                marker_of(&batch),
                Some(Marker {
                    control,
                    coordinator_epoch: 7
                })
            );
        }
        let mut plain = BatchBuilder::new(Compression::None);
        plain.append(0, Some(b"\0\0\0\x01"), None, &[]);
        let bytes = plain.build(0).unwrap();
        assert_eq!(marker_of(&RecordBatch::parse_prefix(&bytes).unwrap()), None);
    }
}
