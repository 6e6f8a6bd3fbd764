//! The public API of one partition's log: append, read, rolling, indexes, timestamps,
//! truncation, log start offset, flush and reopen.

mod common;

use common::*;
use strom_storage::{AppendOrigin, LogConfig, StorageError};
use strom_types::batch::{self, BatchHeader, TimestampType};
use strom_types::compression::Compression;
use strom_types::record::BatchBuilder;

const NOW: i64 = 1_700_000_000_000;

#[test]
fn append_assigns_offsets_and_reads_back_bytes_as_stored() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default());
    let mut b1 = batch(3, 10, NOW);
    let info = log
        .append_as_leader(&mut b1, 5, AppendOrigin::Client, NOW)
        .unwrap();
    assert_eq!(
        (info.first_offset, info.last_offset, info.records),
        (0, 2, 3)
    );
    assert_eq!(info.log_append_time, -1);
    let mut b2 = batch(2, 10, NOW + 1);
    let info = log
        .append_as_leader(&mut b2, 5, AppendOrigin::Client, NOW)
        .unwrap();
    assert_eq!((info.first_offset, info.last_offset), (3, 4));
    assert_eq!(log.log_end_offset(), 5);

    // The bytes served are the bytes appended, with the offsets and epoch written in.
    let read = log.read(0, 1 << 20, None, true).unwrap();
    let bytes = read.region.unwrap().read_to_vec().unwrap();
    assert_eq!(bytes, [b1.as_slice(), b2.as_slice()].concat());
    let h = BatchHeader::parse(&b2).unwrap();
    assert_eq!((h.base_offset, h.partition_leader_epoch), (3, 5));

    // A read from the middle of a batch starts with that batch.
    let read = log.read(4, 1 << 20, None, true).unwrap();
    assert_eq!(read.region.unwrap().read_to_vec().unwrap(), b2);
    assert_eq!(
        read_all(&log).iter().map(|r| r.offset).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
    assert_eq!(log.leader_epochs(), vec![(5, 0)]);
}

#[test]
fn reads_respect_max_bytes_min_one_batch_and_upper_bound() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default());
    let mut sizes = Vec::new();
    for _ in 0..10 {
        let mut b = batch(1, 100, NOW);
        sizes.push(b.len() as u64);
        log.append_as_leader(&mut b, 0, AppendOrigin::Client, NOW)
            .unwrap();
    }
    let one = sizes[0];
    // max_bytes holds 3.5 batches: 3 whole batches come back, never a partial one.
    let r = log
        .read(0, one * 7 / 2, None, true)
        .unwrap()
        .region
        .unwrap();
    assert_eq!(r.len(), one * 3);
    // Too small for one batch: the first batch anyway when min_one_batch, else nothing.
    assert_eq!(
        log.read(2, 10, None, true).unwrap().region.unwrap().len(),
        one
    );
    assert!(log.read(2, 10, None, false).unwrap().region.is_none());
    // The upper bound (high watermark) stops before the batch that reaches it.
    let r = log.read(0, 1 << 20, Some(4), true).unwrap().region.unwrap();
    assert_eq!(r.len(), one * 4);
    assert!(log
        .read(4, 1 << 20, Some(4), true)
        .unwrap()
        .region
        .is_none());
    // At the log end: nothing; past it or below the start: out of range.
    let r = log.read(10, 100, None, true).unwrap();
    assert!(r.region.is_none());
    assert_eq!(r.log_end_offset, 10);
    assert!(matches!(
        log.read(11, 100, None, true),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    assert!(matches!(
        log.read(-1, 100, None, true),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn segments_roll_at_exact_size_boundaries_with_kafka_names() {
    let dir = tempfile::tempdir().unwrap();
    let one = batch(1, 100, NOW).len() as u64;
    let mut config = LogConfig::default();
    config.segment_bytes = one * 3; // exactly three batches per segment
    let log = open(dir.path(), config);
    for _ in 0..7 {
        let mut b = batch(1, 100, NOW);
        log.append_as_leader(&mut b, 0, AppendOrigin::Client, NOW)
            .unwrap();
    }
    assert_eq!(log.segment_base_offsets(), vec![0, 3, 6]);
    for name in [
        "00000000000000000000.log",
        "00000000000000000003.log",
        "00000000000000000006.log",
        "00000000000000000003.index",
        "00000000000000000003.timeindex",
    ] {
        assert!(dir.path().join(name).exists(), "{name}");
    }
    assert_eq!(
        std::fs::metadata(dir.path().join("00000000000000000000.log"))
            .unwrap()
            .len(),
        one * 3
    );
    // A read that starts at the end of one segment continues in the next.
    let r = log.read(3, 1 << 20, None, true).unwrap().region.unwrap();
    assert_eq!(r.first_batch_offset(), 3);
    assert_eq!(read_all(&log).len(), 7);
}

#[test]
fn segments_roll_on_segment_ms_and_when_the_index_fills() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = LogConfig::default();
    config.segment_ms = 1000;
    let log = open(dir.path(), config);
    let mut b = batch(1, 10, NOW);
    log.append_as_leader(&mut b, 0, AppendOrigin::Client, NOW)
        .unwrap();
    let mut b = batch(1, 10, NOW + 1000);
    log.append_as_leader(&mut b, 0, AppendOrigin::Client, NOW + 1000)
        .unwrap();
    assert_eq!(log.segment_count(), 1, "not yet older than segment.ms");
    let mut b = batch(1, 10, NOW + 1001);
    log.append_as_leader(&mut b, 0, AppendOrigin::Client, NOW + 1001)
        .unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, 2]);

    let dir = tempfile::tempdir().unwrap();
    let mut config = LogConfig::default();
    config.index_interval_bytes = 0; // an index entry for every batch after the first
    config.segment_index_bytes = 8 * 4; // room for four entries
    let log = open(dir.path(), config);
    for _ in 0..6 {
        let mut b = batch(1, 10, NOW);
        log.append_as_leader(&mut b, 0, AppendOrigin::Client, NOW)
            .unwrap();
    }
    assert_eq!(log.segment_base_offsets(), vec![0, 5]);
    log.close().unwrap();
    assert_eq!(
        std::fs::metadata(dir.path().join("00000000000000000000.index"))
            .unwrap()
            .len(),
        32
    );
}

#[test]
fn index_entries_follow_index_interval_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let one = batch(1, 100, NOW).len() as u64;
    let mut config = LogConfig::default();
    config.index_interval_bytes = one * 2; // an entry once more than two batches were written
    let log = open(dir.path(), config);
    for _ in 0..10 {
        let mut b = batch(1, 100, NOW);
        log.append_as_leader(&mut b, 0, AppendOrigin::Client, NOW)
            .unwrap();
    }
    log.flush().unwrap();
    let index = std::fs::read(dir.path().join("00000000000000000000.index")).unwrap();
    let entries: Vec<(u32, u32)> = index
        .chunks(8)
        .map(|c| {
            (
                u32::from_be_bytes(c[..4].try_into().unwrap()),
                u32::from_be_bytes(c[4..].try_into().unwrap()),
            )
        })
        .collect();
    assert_eq!(
        entries,
        vec![
            (3, 3 * one as u32),
            (6, 6 * one as u32),
            (9, 9 * one as u32)
        ]
    );
    // Every offset is found through the sparse index plus a short scan.
    for o in 0..10 {
        let r = log.read(o, one, None, true).unwrap().region.unwrap();
        assert_eq!(r.first_batch_offset(), o);
        assert_eq!(r.position(), o as u64 * one);
    }
}

#[test]
fn log_append_time_rewrites_timestamp_and_crc() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = LogConfig::default();
    config.message_timestamp_type = TimestampType::LogAppendTime;
    let log = open(dir.path(), config);
    let mut b = batch(2, 10, 5);
    let info = log
        .append_as_leader(&mut b, 0, AppendOrigin::Client, NOW)
        .unwrap();
    assert_eq!(info.log_append_time, NOW);
    let bytes = log
        .read(0, 1 << 20, None, true)
        .unwrap()
        .region
        .unwrap()
        .read_to_vec()
        .unwrap();
    let parsed = batch::RecordBatch::parse_prefix(&bytes).unwrap();
    parsed.validate_crc().unwrap();
    assert_eq!(
        parsed.header().timestamp_type(),
        TimestampType::LogAppendTime
    );
    assert_eq!(parsed.header().max_timestamp, NOW);
    assert!(read_all(&log).iter().all(|r| r.timestamp == NOW));
}

#[test]
fn compressed_batches_of_every_codec_are_validated_and_stored_verbatim() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default());
    let mut expected = 0;
    for c in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let mut b = batch_with(c, 50, 200, NOW, c.name());
        let copy = b.clone();
        let info = log
            .append_as_leader(&mut b, 0, AppendOrigin::Client, NOW)
            .unwrap();
        assert_eq!(info.first_offset, expected);
        expected += 50;
        assert_eq!(
            b[16..],
            copy[16..],
            "only base offset and leader epoch changed ({c})"
        );
    }
    let all = read_all(&log);
    assert_eq!(all.len(), 200);
    assert_eq!(all[60].key.as_deref(), Some(&b"snappy-10"[..]));
}

fn expect_invalid(log: &strom_storage::Log, mut bytes: Vec<u8>) -> StorageError {
    let before = log.log_end_offset();
    let size = log.size();
    let err = log
        .append_as_leader(&mut bytes, 0, AppendOrigin::Client, NOW)
        .unwrap_err();
    assert_eq!(log.log_end_offset(), before, "nothing appended");
    assert_eq!(log.size(), size, "nothing written");
    err
}

#[test]
fn bad_batches_are_refused_with_a_reason_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = LogConfig::default();
    config.max_message_bytes = 2000;
    let log = open(dir.path(), config);
    let good = batch(2, 10, NOW);

    let mut bad_crc = good.clone();
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 0xff;
    let e = expect_invalid(&log, bad_crc);
    assert!(format!("{:?}", e).contains("CrcMismatch"), "{e:?}");

    let mut bad_magic = good.clone();
    bad_magic[16] = 1;
    assert!(format!("{:?}", expect_invalid(&log, bad_magic)).contains("UnsupportedMagic"));

    let truncated = good[..good.len() - 3].to_vec();
    assert!(format!("{:?}", expect_invalid(&log, truncated)).contains("Truncated"));

    let mut trailing = good.clone();
    trailing.extend_from_slice(&[0; 5]);
    assert!(matches!(
        expect_invalid(&log, trailing),
        StorageError::InvalidBatch { index: 1, .. }
    ));

    assert!(matches!(
        expect_invalid(&log, batch(1, 3000, NOW)),
        StorageError::BatchTooLarge { limit: 2000, .. }
    ));

    // Offset deltas that do not run 0, 1, 2… (CRC made valid so the check is the record one).
    let mut b = BatchBuilder::new(Compression::None);
    b.append_with_offset_delta(0, NOW, Some(b"a"), Some(b"1"), &[]);
    b.append_with_offset_delta(2, NOW, Some(b"b"), Some(b"2"), &[]);
    let e = expect_invalid(&log, b.build(0).unwrap());
    assert!(
        format!("{e:?}").contains("OffsetRangeMismatch")
            || format!("{e:?}").contains("NonSequentialOffset"),
        "{e:?}"
    );

    // A control batch from a client.
    let mut b = BatchBuilder::new(Compression::None).control(true);
    b.append(NOW, Some(b"\0\0\0\0"), Some(b"\0\0\0\0\0\0"), &[]);
    assert!(matches!(
        expect_invalid(&log, b.build(0).unwrap()),
        StorageError::PolicyViolation(_)
    ));

    // A compressed batch whose inner record count lies.
    let mut lying = batch_with(Compression::Gzip, 3, 10, NOW, "x");
    lying[57..61].copy_from_slice(&4i32.to_be_bytes());
    lying[23..27].copy_from_slice(&3i32.to_be_bytes());
    let crc = batch::compute_crc(&lying);
    lying[17..21].copy_from_slice(&crc.to_be_bytes());
    assert!(format!("{:?}", expect_invalid(&log, lying)).contains("CountMismatch"));

    assert!(matches!(
        expect_invalid(&log, Vec::new()),
        StorageError::PolicyViolation(_)
    ));

    // The log still works.
    let mut g = good;
    assert_eq!(
        log.append_as_leader(&mut g, 0, AppendOrigin::Client, NOW)
            .unwrap()
            .first_offset,
        0
    );
}

#[test]
fn compacted_topics_refuse_null_keys_and_timestamps_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = LogConfig::default();
    config.set("cleanup.policy", "compact").unwrap();
    config.message_timestamp_before_max_ms = 1000;
    config.message_timestamp_after_max_ms = 1000;
    let log = open(dir.path(), config);
    // Every keyless record is named by its index in the batch (KIP-467's record errors).
    let mut b = BatchBuilder::new(Compression::Lz4);
    for i in 0..10 {
        let key = (i % 4 != 0).then_some(&b"k"[..]);
        b.append(NOW, key, Some(b"v"), &[]);
    }
    match expect_invalid(&log, b.build(0).unwrap()) {
        StorageError::NullKeyOnCompactedTopic { records } => assert_eq!(records, [0, 4, 8]),
        e => panic!("expected NullKeyOnCompactedTopic, got {e:?}"),
    }
    let mut b = BatchBuilder::new(Compression::None);
    b.append(NOW, Some(b"k"), Some(b"v"), &[]);
    b.append(NOW - 5000, Some(b"k"), Some(b"v"), &[]);
    b.append(NOW, Some(b"k"), Some(b"v"), &[]);
    match expect_invalid(&log, b.build(0).unwrap()) {
        StorageError::InvalidTimestamp {
            timestamp, records, ..
        } => assert_eq!((timestamp, records), (NOW - 5000, vec![1])),
        e => panic!("expected InvalidTimestamp, got {e:?}"),
    }
    assert!(matches!(
        expect_invalid(&log, batch(1, 1, NOW - 5000)),
        StorageError::InvalidTimestamp { .. }
    ));
    assert!(matches!(
        expect_invalid(&log, batch(1, 1, NOW + 5000)),
        StorageError::InvalidTimestamp { .. }
    ));
    let mut ok = batch(1, 1, NOW - 500);
    log.append_as_leader(&mut ok, 0, AppendOrigin::Client, NOW)
        .unwrap();
}

#[test]
fn offsets_by_timestamp_use_the_time_index() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = LogConfig::default();
    config.index_interval_bytes = 0;
    config.segment_bytes = 2000;
    let log = open(dir.path(), config);
    // 50 batches of 2 records; record timestamps 1000, 1010, 1020… (offset o has 1000 + 10*o).
    for i in 0..50i64 {
        let mut b = BatchBuilder::new(Compression::None);
        b.append(1000 + 20 * i, Some(b"k"), Some(b"v"), &[]);
        b.append(1010 + 20 * i, Some(b"k"), Some(b"v"), &[]);
        let mut bytes = b.build(0).unwrap();
        log.append_as_leader(&mut bytes, 0, AppendOrigin::Client, NOW)
            .unwrap();
    }
    assert!(log.segment_count() > 3);
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((0, 1000)));
    assert_eq!(log.offset_for_timestamp(1010).unwrap(), Some((1, 1010)));
    assert_eq!(log.offset_for_timestamp(1011).unwrap(), Some((2, 1020)));
    assert_eq!(log.offset_for_timestamp(1555).unwrap(), Some((56, 1560)));
    assert_eq!(log.offset_for_timestamp(1990).unwrap(), Some((99, 1990)));
    assert_eq!(log.offset_for_timestamp(1991).unwrap(), None);
    assert_eq!(log.max_timestamp_offset().unwrap(), Some((99, 1990)));
    // After reopening (indexes from disk) the answers are the same.
    log.close().unwrap();
    let log = open_clean(dir.path(), LogConfig::default(), true);
    assert_eq!(log.offset_for_timestamp(1555).unwrap(), Some((56, 1560)));
}

#[test]
fn truncate_removes_whole_batches_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let one = batch(2, 50, NOW).len() as u64;
    let mut config = LogConfig::default();
    config.segment_bytes = one * 3;
    let log = open(dir.path(), config);
    for epoch in 0..10 {
        let mut b = batch(2, 50, NOW);
        log.append_as_leader(&mut b, epoch, AppendOrigin::Client, NOW)
            .unwrap();
    }
    assert_eq!(log.log_end_offset(), 20);
    assert_eq!(
        log.truncate_to(13).unwrap(),
        12,
        "the batch holding 13 goes entirely"
    );
    assert_eq!(log.segment_base_offsets(), vec![0, 6, 12]);
    assert_eq!(log.leader_epochs().last(), Some(&(5, 10)));
    assert_eq!(log.truncate_to(7).unwrap(), 6);
    assert_eq!(log.segment_base_offsets(), vec![0, 6]);
    let mut b = batch(2, 50, NOW);
    assert_eq!(
        log.append_as_leader(&mut b, 9, AppendOrigin::Client, NOW)
            .unwrap()
            .first_offset,
        6
    );
    assert_eq!(
        read_all(&log).iter().map(|r| r.offset).collect::<Vec<_>>(),
        (0..8).collect::<Vec<_>>()
    );
    log.truncate_to(0).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
    assert!(read_all(&log).is_empty());
}

#[test]
fn advancing_the_log_start_offset_hides_and_deletes_old_data() {
    let dir = tempfile::tempdir().unwrap();
    let one = batch(1, 50, NOW).len() as u64;
    let mut config = LogConfig::default();
    config.segment_bytes = one * 2;
    let log = open(dir.path(), config);
    for _ in 0..6 {
        let mut b = batch(1, 50, NOW);
        log.append_as_leader(&mut b, 0, AppendOrigin::Client, NOW)
            .unwrap();
    }
    assert_eq!(log.advance_log_start_offset(3).unwrap(), 3);
    assert_eq!(log.segment_base_offsets(), vec![2, 4]);
    assert!(matches!(
        log.read(2, 100, None, true),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    assert_eq!(read_all(&log).first().map(|r| r.offset), Some(3));
    assert_eq!(
        log.advance_log_start_offset(1).unwrap(),
        3,
        "never moves back"
    );
    assert!(log.advance_log_start_offset(7).is_err());
    assert!(dir.path().join("00000000000000000000.log.deleted").exists());
}

#[test]
fn flush_messages_and_flush_advance_the_recovery_point() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = LogConfig::default();
    config.flush_messages = 3;
    let log = open(dir.path(), config);
    let mut b = batch(2, 10, NOW);
    log.append_as_leader(&mut b, 0, AppendOrigin::Client, NOW)
        .unwrap();
    assert_eq!(log.recovery_point(), 0);
    assert_eq!(log.unflushed_records(), 2);
    let mut b = batch(2, 10, NOW);
    log.append_as_leader(&mut b, 0, AppendOrigin::Client, NOW)
        .unwrap();
    assert_eq!(log.recovery_point(), 4);
    assert_eq!(log.unflushed_records(), 0);
}

#[test]
fn clean_reopen_keeps_everything_without_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = LogConfig::default();
    config.segment_bytes = 1000;
    let log = open(dir.path(), config.clone());
    for _ in 0..20 {
        let mut b = batch(3, 30, NOW);
        log.append_as_leader(&mut b, 1, AppendOrigin::Client, NOW)
            .unwrap();
    }
    let before = read_all(&log);
    log.close().unwrap();
    assert!(
        log.read(0, 10, None, true).is_ok(),
        "reads of a closed log still see the files"
    );
    let mut b = batch(1, 1, NOW);
    assert!(matches!(
        log.append_as_leader(&mut b, 1, AppendOrigin::Client, NOW),
        Err(StorageError::Closed(_))
    ));
    let (log, report) = strom_storage::Log::open(dir.path(), tp(), config, {
        let mut o = strom_storage::OpenOptions::standalone();
        o.clean_shutdown = true;
        o
    })
    .unwrap();
    assert_eq!(report.segments_recovered, 0);
    assert_eq!(log.log_end_offset(), 60);
    assert_eq!(read_all(&log), before);
    let mut b = batch(1, 1, NOW);
    assert_eq!(
        log.append_as_leader(&mut b, 1, AppendOrigin::Client, NOW)
            .unwrap()
            .first_offset,
        60
    );
}

#[test]
fn the_end_offset_watch_wakes_waiters() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default());
    let mut rx = log.subscribe();
    assert_eq!(*rx.borrow_and_update(), 0);
    let mut b = batch(4, 10, NOW);
    log.append_as_leader(&mut b, 0, AppendOrigin::Client, NOW)
        .unwrap();
    assert!(rx.has_changed().unwrap());
    assert_eq!(*rx.borrow_and_update(), 4);
}

#[test]
fn follower_appends_keep_offsets_and_check_order() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default());
    let mut b = BatchBuilder::new(Compression::None).partition_leader_epoch(3);
    b.append(NOW, Some(b"a"), Some(b"1"), &[]);
    b.append(NOW, Some(b"b"), Some(b"2"), &[]);
    let first = b.build(0).unwrap();
    let second = b.build(10).unwrap(); // a gap, as after compaction
    let both = [first.as_slice(), second.as_slice()].concat();
    let info = log.append_as_follower(&both, NOW).unwrap();
    assert_eq!((info.first_offset, info.last_offset), (0, 11));
    assert_eq!(log.log_end_offset(), 12);
    assert!(matches!(
        log.append_as_follower(&first, NOW),
        Err(StorageError::NonMonotonicOffset { .. })
    ));
    assert_eq!(log.leader_epochs(), vec![(3, 0)]);
    assert_eq!(log.end_offset_for_epoch(3), Some((3, 12)));
}

#[test]
fn concurrent_readers_never_see_partial_batches() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = LogConfig::default();
    config.segment_bytes = 64 * 1024;
    let log = open(dir.path(), config);
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                let mut reads = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) || reads < 10 {
                    let end = log.log_end_offset();
                    if end > 0 {
                        let offset = end / 2;
                        let r = log.read(offset, 32 * 1024, None, true).unwrap();
                        if let Some(region) = r.region {
                            let bytes = region.read_to_vec().unwrap();
                            // Whole, valid batches only.
                            let recs = records_of(&bytes);
                            assert!(recs.iter().any(|r| r.offset >= offset));
                        }
                    }
                    reads += 1;
                }
            });
        }
        for _ in 0..2000 {
            let mut b = batch(5, 64, NOW);
            log.append_as_leader(&mut b, 0, AppendOrigin::Client, NOW)
                .unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    assert_eq!(log.log_end_offset(), 10_000);
}
