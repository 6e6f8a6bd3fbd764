//! Retention (retention.ms, retention.bytes, asynchronous deletion) and compaction
//! (latest record per key, offsets kept, tombstones, lags, dirty ratio) end to end.

mod common;

use common::*;
use strom_storage::cleaner::clean_log;
use strom_storage::{AppendOrigin, LogConfig};

const NOW: i64 = 1_700_000_000_000;
const HOUR: i64 = 3_600_000;

#[test]
fn retention_ms_deletes_whole_segments_by_their_newest_record() {
    let dir = tempfile::tempdir().unwrap();
    let one = batch(1, 100, NOW).len() as u64;
    let mut config = LogConfig::default();
    config.segment_bytes = one * 2;
    config.retention_ms = HOUR;
    config.file_delete_delay_ms = 0;
    let log = open(dir.path(), config);
    // Segments [0,1] [2,3] [4,5]: record timestamps NOW-3h, NOW-2h, … NOW+2h.
    for i in 0..6 {
        let mut b = batch(1, 100, NOW + (i - 3) * HOUR);
        log.append_as_leader(&mut b, 0, AppendOrigin::Client, NOW)
            .unwrap();
    }
    assert_eq!(log.segment_base_offsets(), vec![0, 2, 4]);
    // A reader holding a region of the oldest segment keeps it through deletion.
    let held = log.read(0, 1 << 20, None, true).unwrap().region.unwrap();
    // At NOW the first segment's newest record (NOW-2h) is past retention; the second's
    // (NOW) is not.
    assert_eq!(log.delete_old_segments(NOW).unwrap(), 1);
    assert_eq!(log.segment_base_offsets(), vec![2, 4]);
    assert_eq!(log.log_start_offset(), 2);
    assert!(matches!(
        log.read(1, 100, None, true),
        Err(strom_storage::StorageError::OffsetOutOfRange { .. })
    ));
    // Deleted files are renamed first and removed later, by the deleter.
    assert!(dir.path().join("00000000000000000000.log.deleted").exists());
    std::fs::remove_file(dir.path().join("00000000000000000000.log.deleted")).unwrap();
    assert_eq!(records_of(&held.read_to_vec().unwrap()).len(), 2);
    // Much later everything is expired: the active segment is rolled, so the log keeps
    // an empty active segment at the end offset.
    assert_eq!(log.delete_old_segments(NOW + 10 * HOUR).unwrap(), 2);
    assert_eq!(log.segment_base_offsets(), vec![6]);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (6, 6));
    assert!(read_all(&log).is_empty());
    let mut b = batch(1, 100, NOW);
    assert_eq!(
        log.append_as_leader(&mut b, 0, AppendOrigin::Client, NOW)
            .unwrap()
            .first_offset,
        6
    );
}

#[test]
fn retention_bytes_keeps_the_newest_segments_within_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let one = batch(1, 100, NOW).len() as u64;
    let mut config = LogConfig::default();
    config.segment_bytes = one * 2;
    config.retention_bytes = (one * 5) as i64;
    let log = open(dir.path(), config);
    for _ in 0..9 {
        let mut b = batch(1, 100, NOW);
        log.append_as_leader(&mut b, 0, AppendOrigin::Client, NOW)
            .unwrap();
    }
    // 9 batches in [0,1][2,3][4,5][6,7][8]: deleting two segments leaves 5 batches.
    assert_eq!(log.delete_old_segments(NOW).unwrap(), 2);
    assert_eq!(log.segment_base_offsets(), vec![4, 6, 8]);
    assert!(log.size() <= one * 5);
    assert_eq!(log.delete_old_segments(NOW).unwrap(), 0);
    // retention only applies with cleanup.policy delete.
    let mut c = (*log.config()).clone();
    c.set("cleanup.policy", "compact").unwrap();
    c.retention_bytes = 0;
    log.set_config(c);
    assert_eq!(log.delete_old_segments(NOW).unwrap(), 0);
}

#[test]
fn an_empty_log_survives_retention_and_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = LogConfig::default();
    config.set("cleanup.policy", "compact,delete").unwrap();
    config.retention_ms = 0;
    let log = open(dir.path(), config);
    assert_eq!(log.delete_old_segments(NOW).unwrap(), 0);
    assert!(clean_log(&log, NOW, 1 << 20, true).unwrap().is_none());
    assert_eq!(log.segment_count(), 1);
}

fn compacted_config() -> LogConfig {
    let mut config = LogConfig::default();
    config.set("cleanup.policy", "compact").unwrap();
    config.segment_bytes = 300;
    config.delete_retention_ms = HOUR;
    config.min_cleanable_dirty_ratio = 0.0;
    config.file_delete_delay_ms = 0;
    config
}

fn append_kv(log: &strom_storage::Log, records: &[(&str, Option<&str>)], ts: i64) {
    let mut b = kv_batch(records, ts);
    log.append_as_leader(&mut b, 0, AppendOrigin::Client, ts)
        .unwrap();
}

fn view(log: &strom_storage::Log) -> Vec<(i64, String, Option<String>)> {
    read_all(log)
        .into_iter()
        .map(|r| {
            (
                r.offset,
                String::from_utf8(r.key.unwrap()).unwrap(),
                r.value.map(|v| String::from_utf8(v).unwrap()),
            )
        })
        .collect()
}

#[test]
fn compaction_keeps_the_latest_record_per_key_with_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), compacted_config());
    append_kv(
        &log,
        &[("a", Some("a0")), ("b", Some("b0")), ("c", Some("c0"))],
        NOW,
    );
    append_kv(&log, &[("a", Some("a1")), ("d", Some("d0"))], NOW);
    append_kv(&log, &[("b", Some("b1")), ("a", Some("a2"))], NOW);
    append_kv(&log, &[("e", Some("e0"))], NOW);
    append_kv(&log, &[("c", Some("c1"))], NOW);
    log.roll().unwrap(); // everything before the active segment is cleanable
    let before = log.size();
    let stats = clean_log(&log, NOW, 1 << 20, false)
        .unwrap()
        .expect("a pass ran");
    assert!(stats.records_removed >= 4, "{stats:?}");
    assert!(log.size() < before);
    assert_eq!(
        view(&log),
        vec![
            (4, "d".into(), Some("d0".into())),
            (5, "b".into(), Some("b1".into())),
            (6, "a".into(), Some("a2".into())),
            (7, "e".into(), Some("e0".into())),
            (8, "c".into(), Some("c1".into())),
        ]
    );
    // Reading from a removed offset starts at the next surviving one.
    let r = log.read(1, 1 << 20, None, true).unwrap().region.unwrap();
    assert!(records_of(&r.read_to_vec().unwrap())
        .iter()
        .any(|r| r.offset == 4));
    // Appends carry on at the end offset; the state survives a reopen.
    append_kv(&log, &[("a", Some("a3"))], NOW);
    assert_eq!(log.log_end_offset(), 10);
    log.close().unwrap();
    let log = open_clean(dir.path(), compacted_config(), true);
    assert_eq!(view(&log).last(), Some(&(9, "a".into(), Some("a3".into()))));
    assert_eq!(view(&log).len(), 6);
}

#[test]
fn tombstones_stay_for_delete_retention_ms_then_go() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), compacted_config());
    append_kv(&log, &[("a", Some("a0")), ("b", Some("b0"))], NOW);
    append_kv(&log, &[("a", None)], NOW);
    append_kv(&log, &[("c", Some("c0"))], NOW);
    log.roll().unwrap();
    clean_log(&log, NOW, 1 << 20, true).unwrap().unwrap();
    // The tombstone hides a0 and is itself kept, so consumers see the delete.
    assert_eq!(
        view(&log),
        vec![
            (1, "b".into(), Some("b0".into())),
            (2, "a".into(), None),
            (3, "c".into(), Some("c0".into())),
        ]
    );
    // Before the horizon (NOW + delete.retention.ms) a pass keeps it...
    let s = clean_log(&log, NOW + HOUR / 2, 1 << 20, true).unwrap();
    assert_eq!(s.map(|s| s.tombstones_removed).unwrap_or(0), 0);
    assert_eq!(view(&log).len(), 3);
    // ...after it, the tombstone is removed.
    append_kv(&log, &[("z", Some("z0"))], NOW + 2 * HOUR);
    log.roll().unwrap();
    let s = clean_log(&log, NOW + 2 * HOUR, 1 << 20, true)
        .unwrap()
        .unwrap();
    assert_eq!(s.tombstones_removed, 1);
    assert_eq!(
        view(&log),
        vec![
            (1, "b".into(), Some("b0".into())),
            (3, "c".into(), Some("c0".into())),
            (4, "z".into(), Some("z0".into())),
        ]
    );
}

#[test]
fn a_log_of_only_tombstones_compacts_to_nothing_but_keeps_its_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = compacted_config();
    config.delete_retention_ms = 0;
    let log = open(dir.path(), config);
    append_kv(&log, &[("a", None), ("b", None)], NOW);
    append_kv(&log, &[("a", None)], NOW);
    log.roll().unwrap();
    clean_log(&log, NOW, 1 << 20, true).unwrap().unwrap();
    assert_eq!(
        view(&log),
        vec![(1, "b".into(), None), (2, "a".into(), None)]
    );
    log.roll().unwrap();
    // New dirty data is needed for a pass; append and roll once more.
    append_kv(&log, &[("c", None)], NOW + 10);
    log.roll().unwrap();
    let s = clean_log(&log, NOW + 10, 1 << 20, true).unwrap().unwrap();
    assert!(s.tombstones_removed >= 2, "{s:?}");
    assert_eq!(view(&log), vec![(3, "c".into(), None)]);
    assert_eq!(log.log_end_offset(), 4);
    append_kv(&log, &[("d", Some("d0"))], NOW + 10);
    assert_eq!(view(&log).last(), Some(&(4, "d".into(), Some("d0".into()))));
}

#[test]
fn the_active_segment_and_young_records_are_not_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = compacted_config();
    config.segment_bytes = 1 << 20;
    let log = open(dir.path(), config.clone());
    append_kv(&log, &[("a", Some("1")), ("a", Some("2"))], NOW);
    // Only an active segment: nothing to clean.
    assert!(clean_log(&log, NOW, 1 << 20, true).unwrap().is_none());
    assert_eq!(view(&log).len(), 2);
    // min.compaction.lag.ms keeps records younger than the lag.
    log.roll().unwrap();
    config.min_compaction_lag_ms = HOUR;
    log.set_config(config.clone());
    assert!(clean_log(&log, NOW + 1000, 1 << 20, true)
        .unwrap()
        .is_none());
    assert_eq!(view(&log).len(), 2);
    assert!(clean_log(&log, NOW + 2 * HOUR, 1 << 20, true)
        .unwrap()
        .is_some());
    assert_eq!(view(&log), vec![(1, "a".into(), Some("2".into()))]);
}

#[test]
fn min_cleanable_dirty_ratio_decides_when_a_pass_runs() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = compacted_config();
    config.min_cleanable_dirty_ratio = 0.5;
    let log = open(dir.path(), config);
    for i in 0..10 {
        let v = format!("v{i}");
        append_kv(&log, &[("k", Some(v.as_str())), ("other", Some("x"))], NOW);
    }
    log.roll().unwrap();
    // All dirty: a pass runs (not forced).
    assert!(clean_log(&log, NOW, 1 << 20, false).unwrap().is_some());
    // A little new dirty data against the clean part: below the ratio, no pass.
    append_kv(&log, &[("k", Some("new"))], NOW);
    log.roll().unwrap();
    let c = strom_storage::cleaner::cleanability(&log, NOW).unwrap();
    assert!(c.dirty_ratio > 0.0 && c.dirty_ratio < 0.5, "{c:?}");
    assert!(clean_log(&log, NOW, 1 << 20, false).unwrap().is_none());
}

#[test]
fn compaction_preserves_compressed_batches_headers_and_reads_during_the_pass() {
    use strom_types::compression::Compression;
    use strom_types::record::BatchBuilder;
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), compacted_config());
    for round in 0..3 {
        let mut b = BatchBuilder::new(Compression::Zstd);
        for k in 0..5 {
            let key = format!("key{k}");
            let value = format!("r{round}");
            b.append(
                NOW + round,
                Some(key.as_bytes()),
                Some(value.as_bytes()),
                &[(b"h", Some(b"1")), (b"h", Some(b"2"))],
            );
        }
        let mut bytes = b.build(0).unwrap();
        log.append_as_leader(&mut bytes, 0, AppendOrigin::Client, NOW)
            .unwrap();
    }
    log.roll().unwrap();
    // A reader holding a region of the old segment keeps reading it after the swap.
    let held = log.read(0, 1 << 20, None, true).unwrap().region.unwrap();
    let held_records = records_of(&held.read_to_vec().unwrap());
    assert!(held_records.len() >= 5);
    clean_log(&log, NOW, 1 << 20, true).unwrap().unwrap();
    assert!(dir.path().join("00000000000000000000.log.deleted").exists());
    assert_eq!(records_of(&held.read_to_vec().unwrap()), held_records);
    let recs = read_all(&log);
    assert_eq!(recs.len(), 5);
    assert!(recs.iter().all(|r| r.value.as_deref() == Some(&b"r2"[..])));
    assert_eq!(
        recs.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![10, 11, 12, 13, 14]
    );
    // The surviving batch is still zstd, with both duplicate headers.
    let bytes = log
        .read(10, 1 << 20, None, true)
        .unwrap()
        .region
        .unwrap()
        .read_to_vec()
        .unwrap();
    let batch = strom_types::batch::RecordBatch::parse_prefix(&bytes).unwrap();
    assert_eq!(batch.header().compression().unwrap(), Compression::Zstd);
    let records = batch.records(1 << 20).unwrap();
    let first = records.iter().next().unwrap().unwrap();
    assert_eq!(first.headers().count(), 2);
}

#[test]
fn records_without_timestamps_fall_back_to_the_file_time_for_retention() {
    let dir = tempfile::tempdir().unwrap();
    let one = batch(1, 100, -1).len() as u64;
    let mut config = LogConfig::default();
    config.segment_bytes = one * 2;
    config.index_interval_bytes = 0;
    config.retention_ms = HOUR;
    let log = open(dir.path(), config.clone());
    for _ in 0..6 {
        let mut b = batch(1, 100, -1); // timestamp -1: "no timestamp"
        log.append_as_leader(&mut b, 0, AppendOrigin::Client, NOW)
            .unwrap();
    }
    let now = strom_storage::now_ms();
    // The files were just written: nothing is older than retention.ms.
    assert_eq!(log.delete_old_segments(now).unwrap(), 0);
    // The same after a reload (no time index entry of -1 pointing nowhere).
    log.close().unwrap();
    let log = open_clean(dir.path(), config, true);
    assert_eq!(log.delete_old_segments(now).unwrap(), 0);
    assert_eq!(read_all(&log).len(), 6);
    // Much later, by file time, they expire.
    assert!(log.delete_old_segments(now + 10 * HOUR).unwrap() >= 2);
}
