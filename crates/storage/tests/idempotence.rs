//! Idempotent producers: a retried batch is answered with its first offsets and not written
//! twice, gaps and old epochs are refused, and all of it holds across a clean reopen (from
//! the producer snapshot), a crash (from a scan of the batches), rolls and truncation.

mod common;

use std::sync::Arc;

use common::*;
use strom_storage::{AppendOrigin, Log, LogConfig, StorageError};
use strom_types::compression::Compression;
use strom_types::record::BatchBuilder;

const NOW: i64 = 1_700_000_000_000;

/// A batch of `n` records from producer `pid` at `epoch`, first sequence `seq`.
fn pbatch(pid: i64, epoch: i16, seq: i32, n: usize) -> Vec<u8> {
    let mut b = BatchBuilder::new(Compression::None).producer(pid, epoch, seq);
    for i in 0..n {
        b.append(NOW, Some(format!("k{seq}-{i}").as_bytes()), Some(b"v"), &[]);
    }
    b.build(0).unwrap()
}

fn append(log: &Log, mut bytes: Vec<u8>) -> Result<(i64, i64), StorageError> {
    log.append_as_leader(&mut bytes, 0, AppendOrigin::Client, NOW)
        .map(|i| (i.first_offset, i.records))
}

#[test]
fn retries_are_answered_with_the_first_offsets_and_gaps_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default());
    assert_eq!(append(&log, pbatch(7, 0, 0, 3)).unwrap(), (0, 3));
    assert_eq!(append(&log, pbatch(8, 0, 0, 2)).unwrap(), (3, 2));
    // The same batch again (a retry after a lost response): its offsets, nothing written.
    assert_eq!(append(&log, pbatch(7, 0, 0, 3)).unwrap(), (0, 0));
    assert_eq!(log.log_end_offset(), 5);
    // A gap in the sequence.
    assert!(matches!(
        append(&log, pbatch(7, 0, 4, 1)),
        Err(StorageError::OutOfOrderSequence {
            producer_id: 7,
            expected: 3,
            got: 4
        })
    ));
    assert_eq!(append(&log, pbatch(7, 0, 3, 1)).unwrap(), (5, 1));
    // A new epoch starts at 0; the old epoch is fenced.
    assert!(matches!(
        append(&log, pbatch(7, 1, 4, 1)),
        Err(StorageError::OutOfOrderSequence { expected: 0, .. })
    ));
    assert_eq!(append(&log, pbatch(7, 1, 0, 1)).unwrap(), (6, 1));
    assert!(matches!(
        append(&log, pbatch(7, 0, 4, 1)),
        Err(StorageError::InvalidProducerEpoch {
            epoch: 0,
            current: 1,
            ..
        })
    ));
    // Batches without a producer id are never checked.
    assert_eq!(append(&log, batch(1, 1, NOW)).unwrap(), (7, 1));
    assert_eq!(log.producer_count(), 2);
    assert_eq!(log.log_end_offset(), 8);
}

/// Writes 30 batches of producer 1 across several segments, then checks what a reopened log
/// knows: the last batch is a duplicate, the next sequence is 30, anything else is refused.
fn check_state_after_reopen(clean: bool, rolls: bool) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = LogConfig::default();
    if rolls {
        config.segment_bytes = 400;
    }
    let log = open(dir.path(), config.clone());
    for seq in 0..30 {
        append(&log, pbatch(1, 0, seq, 1)).unwrap();
    }
    if rolls {
        assert!(log.segment_count() > 3);
    }
    if clean {
        log.close().unwrap();
    } else {
        log.flush().unwrap();
    }
    drop(log);
    let log: Arc<Log> = open_clean(dir.path(), config, clean);
    assert_eq!(log.producer_count(), 1);
    assert_eq!(append(&log, pbatch(1, 0, 29, 1)).unwrap(), (29, 0));
    assert!(matches!(
        append(&log, pbatch(1, 0, 31, 1)),
        Err(StorageError::OutOfOrderSequence { expected: 30, .. })
    ));
    assert_eq!(append(&log, pbatch(1, 0, 30, 1)).unwrap(), (30, 1));
}

#[test]
fn state_survives_a_clean_reopen() {
    check_state_after_reopen(true, false);
    check_state_after_reopen(true, true);
}

#[test]
fn state_is_rebuilt_after_a_crash_from_snapshots_and_batches() {
    check_state_after_reopen(false, false);
    check_state_after_reopen(false, true);
}

#[test]
fn damaged_snapshots_fall_back_to_a_scan() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default());
    for seq in 0..5 {
        append(&log, pbatch(3, 2, seq * 2, 2)).unwrap();
    }
    log.close().unwrap();
    drop(log);
    let snapshots: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "snapshot"))
        .collect();
    assert_eq!(snapshots.len(), 1, "close writes a snapshot");
    std::fs::write(&snapshots[0], b"garbage").unwrap();
    let log = open_clean(dir.path(), LogConfig::default(), true);
    assert_eq!(append(&log, pbatch(3, 2, 8, 2)).unwrap(), (8, 0));
    assert_eq!(append(&log, pbatch(3, 2, 10, 1)).unwrap(), (10, 1));
}

#[test]
fn truncation_rewinds_producer_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = LogConfig::default();
    config.segment_bytes = 400;
    let log = open(dir.path(), config);
    for seq in 0..20 {
        append(&log, pbatch(5, 0, seq, 1)).unwrap();
    }
    assert_eq!(log.truncate_to(12).unwrap(), 12);
    // Sequence 12 is gone from the log: it must be accepted again (at offset 12), and 11 is
    // now the duplicate.
    assert_eq!(append(&log, pbatch(5, 0, 11, 1)).unwrap(), (11, 0));
    assert_eq!(append(&log, pbatch(5, 0, 12, 1)).unwrap(), (12, 1));
    log.truncate_fully_and_start_at(100).unwrap();
    assert_eq!(log.producer_count(), 0);
    assert_eq!(append(&log, pbatch(5, 0, 13, 1)).unwrap(), (100, 1));
}
