//! Transactions in one partition: the first unstable offset, the aborted-transaction index
//! (`.txnindex`) and how both survive a clean reopen, a crash, truncation and compaction.

mod common;

use common::*;
use strom_storage::cleaner::clean_log;
use strom_storage::{AbortedTxn, AppendOrigin, Log, LogConfig, StorageError};
use strom_types::compression::Compression;
use strom_types::control::{marker_batch, ControlType};
use strom_types::record::BatchBuilder;

const NOW: i64 = 1_700_000_000_000;

/// A transactional batch of producer `pid` with `keys`, first sequence `seq`.
fn txn(pid: i64, seq: i32, keys: &[&str]) -> Vec<u8> {
    let mut b = BatchBuilder::new(Compression::None)
        .producer(pid, 0, seq)
        .transactional(true);
    for k in keys {
        b.append(
            NOW,
            Some(k.as_bytes()),
            Some(format!("{pid}").as_bytes()),
            &[],
        );
    }
    b.build(0).unwrap()
}

fn append(log: &Log, mut bytes: Vec<u8>) -> Result<i64, StorageError> {
    log.append_as_leader(&mut bytes, 0, AppendOrigin::Client, NOW)
        .map(|i| i.first_offset)
}

fn end(log: &Log, pid: i64, control: ControlType) -> Result<i64, StorageError> {
    let mut bytes = marker_batch(pid, 0, control, 1, NOW);
    log.append_as_leader(&mut bytes, 0, AppendOrigin::Coordinator, NOW)
        .map(|i| i.first_offset)
}

fn aborted(pid: i64, first: i64, last: i64) -> (i64, i64, i64) {
    (pid, first, last)
}

fn entries(log: &Log) -> Vec<(i64, i64, i64)> {
    log.all_aborted_transactions()
        .iter()
        .map(|t: &AbortedTxn| (t.producer_id, t.first_offset, t.last_offset))
        .collect()
}

/// Producer 1 aborts [0, 3], producer 2 commits [1, 5], producer 3 stays open from 4.
fn three_producers(log: &Log) {
    assert_eq!(append(log, txn(1, 0, &["a", "b"])).unwrap(), 0);
    assert_eq!(append(log, txn(2, 0, &["c"])).unwrap(), 2);
    assert_eq!(end(log, 1, ControlType::Abort).unwrap(), 3);
    assert_eq!(append(log, txn(3, 0, &["d"])).unwrap(), 4);
    assert_eq!(end(log, 2, ControlType::Commit).unwrap(), 5);
}

#[test]
fn markers_close_transactions_and_aborts_are_indexed() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default());
    assert_eq!(log.first_unstable_offset(), None);
    assert_eq!(append(&log, txn(1, 0, &["a", "b"])).unwrap(), 0);
    assert_eq!(log.first_unstable_offset(), Some(0));
    assert_eq!(append(&log, txn(2, 0, &["c"])).unwrap(), 2);
    assert_eq!(end(&log, 1, ControlType::Abort).unwrap(), 3);
    // Producer 2's transaction is the oldest open one now.
    assert_eq!(log.first_unstable_offset(), Some(2));
    assert_eq!(append(&log, txn(3, 0, &["d"])).unwrap(), 4);
    assert_eq!(end(&log, 2, ControlType::Commit).unwrap(), 5);
    assert_eq!(log.first_unstable_offset(), Some(4));
    assert_eq!(entries(&log), vec![aborted(1, 0, 3)]);
    assert_eq!(log.ongoing_transactions(), vec![(3, 4)]);
    // A fetch of [2, 6) overlaps producer 1's aborted range; one of [4, 6) does not.
    assert_eq!(log.aborted_transactions(2, 6).len(), 1);
    assert!(log.aborted_transactions(4, 6).is_empty());
    assert!(dir.path().join("00000000000000000000.txnindex").exists());
}

#[test]
fn clients_may_not_write_markers_and_stale_markers_are_fenced() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default());
    append(&log, txn(1, 0, &["a"])).unwrap();
    let mut forged = marker_batch(1, 0, ControlType::Commit, 1, NOW);
    assert!(matches!(
        log.append_as_leader(&mut forged, 0, AppendOrigin::Client, NOW),
        Err(StorageError::PolicyViolation(_))
    ));
    assert_eq!(log.first_unstable_offset(), Some(0));
    end(&log, 1, ControlType::Commit).unwrap();
    let mut old = marker_batch(1, 0, ControlType::Abort, 0, NOW);
    assert!(matches!(
        log.append_as_leader(&mut old, 0, AppendOrigin::Coordinator, NOW),
        Err(StorageError::CoordinatorFenced { .. })
    ));
    // A plain batch of a producer inside its transaction is INVALID_TXN_STATE.
    append(&log, txn(1, 1, &["b"])).unwrap();
    let mut plain = BatchBuilder::new(Compression::None).producer(1, 0, 2);
    plain.append(NOW, Some(b"k"), Some(b"v"), &[]);
    assert!(matches!(
        append(&log, plain.build(0).unwrap()),
        Err(StorageError::InvalidTxnState { .. })
    ));
}

fn check_reopen(clean: bool, segment_bytes: u64) {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes,
        ..LogConfig::default()
    };
    let log = open(dir.path(), config.clone());
    three_producers(&log);
    // More aborted transactions, spread over segments when they are small.
    for i in 0..5 {
        let at = append(&log, txn(10 + i, 0, &["x", "y"])).unwrap();
        let marker = end(&log, 10 + i, ControlType::Abort).unwrap();
        assert_eq!(marker, at + 2);
    }
    let before = entries(&log);
    assert_eq!(before.len(), 6);
    log.close().unwrap();
    drop(log);
    let log = open_clean(dir.path(), config, clean);
    assert_eq!(
        entries(&log),
        before,
        "clean={clean} segment_bytes={segment_bytes}"
    );
    assert_eq!(log.first_unstable_offset(), Some(4));
    assert_eq!(log.ongoing_transactions(), vec![(3, 4)]);
    // The open transaction can still be ended after the restart.
    end(&log, 3, ControlType::Abort).unwrap();
    assert_eq!(log.first_unstable_offset(), None);
}

#[test]
fn transactions_survive_a_clean_reopen() {
    check_reopen(true, 1 << 30);
    check_reopen(true, 200);
}

#[test]
fn transactions_are_recovered_after_a_crash() {
    check_reopen(false, 1 << 30);
    check_reopen(false, 200);
}

#[test]
fn a_crash_that_lost_the_index_files_rebuilds_them_from_the_markers() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default());
    three_producers(&log);
    log.close().unwrap();
    drop(log);
    for f in std::fs::read_dir(dir.path()).unwrap() {
        let p = f.unwrap().path();
        let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
        if ext == "txnindex" || ext == "snapshot" {
            std::fs::remove_file(p).unwrap();
        }
    }
    let log = open_clean(dir.path(), LogConfig::default(), false);
    assert_eq!(entries(&log), vec![aborted(1, 0, 3)]);
    assert_eq!(log.first_unstable_offset(), Some(4));
    assert!(dir.path().join("00000000000000000000.txnindex").exists());
}

#[test]
fn truncation_reopens_a_transaction_whose_marker_it_removed() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default());
    three_producers(&log);
    // Cut at producer 1's abort marker: its transaction is open again, no longer aborted.
    log.truncate_to(3).unwrap();
    assert_eq!(entries(&log), vec![]);
    assert_eq!(log.first_unstable_offset(), Some(0));
    assert_eq!(
        log.ongoing_transactions(),
        vec![(1, 0), (2, 2)],
        "both transactions are open again"
    );
    // The follower then copies the leader's marker again.
    end(&log, 1, ControlType::Abort).unwrap();
    assert_eq!(entries(&log), vec![aborted(1, 0, 3)]);
}

#[test]
fn compaction_removes_aborted_records_and_stops_at_the_first_unstable_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = LogConfig::default();
    config.set("cleanup.policy", "compact").unwrap();
    config.set("min.cleanable.dirty.ratio", "0.01").unwrap();
    config.set("segment.bytes", "200").unwrap();
    let log = open(dir.path(), config);
    // k=committed by 1; an aborted transaction of 2 rewrites k; it must not win.
    append(&log, txn(1, 0, &["k"])).unwrap();
    end(&log, 1, ControlType::Commit).unwrap();
    append(&log, txn(2, 0, &["k"])).unwrap();
    end(&log, 2, ControlType::Abort).unwrap();
    // Producer 3 stays open: nothing from its first offset on may be cleaned.
    let open_at = append(&log, txn(3, 0, &["k"])).unwrap();
    for i in 0..10 {
        append(&log, batch_with_key(&format!("z{i}"))).unwrap();
    }
    clean_log(&log, NOW, 1 << 20, true).unwrap();
    let recs = read_all(&log);
    let k: Vec<(i64, Vec<u8>)> = recs
        .iter()
        .filter(|r| r.key.as_deref() == Some(b"k".as_slice()))
        .map(|r| (r.offset, r.value.clone().unwrap_or_default()))
        .collect();
    // Producer 1's committed value survives (the aborted write did not shadow it); the
    // aborted record is gone; the open transaction's record is untouched.
    assert_eq!(k, vec![(0, b"1".to_vec()), (open_at, b"3".to_vec())]);
    assert_eq!(entries(&log), vec![aborted(2, 2, 3)]);
    // The index survives the swap of the cleaned segments.
    log.close().unwrap();
    drop(log);
    let mut config = LogConfig::default();
    config.set("cleanup.policy", "compact").unwrap();
    let log = open_clean(dir.path(), config, true);
    assert_eq!(entries(&log), vec![aborted(2, 2, 3)]);
}

fn batch_with_key(key: &str) -> Vec<u8> {
    let mut b = BatchBuilder::new(Compression::None);
    b.append(NOW, Some(key.as_bytes()), Some(b"v"), &[]);
    b.build(0).unwrap()
}

#[test]
fn compaction_removes_a_marker_after_its_horizon_once_no_record_of_its_transaction_is_left() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = LogConfig::default();
    config.set("cleanup.policy", "compact").unwrap();
    config.set("min.cleanable.dirty.ratio", "0.01").unwrap();
    config.set("segment.bytes", "200").unwrap();
    config.set("delete.retention.ms", "1000").unwrap();
    let log = open(dir.path(), config);
    // Producer 1 commits k and j; k is overwritten later, j is not.
    append(&log, txn(1, 0, &["k"])).unwrap();
    let first_marker = end(&log, 1, ControlType::Commit).unwrap();
    append(&log, txn(2, 0, &["j"])).unwrap();
    let second_marker = end(&log, 2, ControlType::Commit).unwrap();
    for i in 0..6 {
        append(&log, batch_with_key(if i == 0 { "k" } else { "z" })).unwrap();
    }
    let markers = |log: &Log| -> Vec<i64> {
        let mut out = Vec::new();
        for_each_region(log, |_, bytes| {
            for b in strom_types::batch::batches(bytes) {
                let h = *b.unwrap().header();
                if h.is_control() {
                    out.push(h.base_offset);
                }
            }
        });
        out
    };
    let s1 = clean_log(&log, NOW, 1 << 20, true).unwrap().unwrap();
    // Producer 1's record is gone, but its marker stays until its delete horizon.
    assert_eq!(markers(&log), vec![first_marker, second_marker]);
    assert_eq!(s1.markers_removed, 0);
    append(&log, batch_with_key("z")).unwrap();
    let s2 = clean_log(&log, NOW + 2_000, 1 << 20, true)
        .unwrap()
        .unwrap();
    assert_eq!(s2.markers_removed, 1);
    assert_eq!(
        markers(&log),
        vec![second_marker],
        "j is still there, so is its marker"
    );
    let js: Vec<i64> = read_all(&log)
        .iter()
        .filter(|r| r.key.as_deref() == Some(b"j".as_slice()))
        .map(|r| r.offset)
        .collect();
    assert_eq!(js.len(), 1);
}
