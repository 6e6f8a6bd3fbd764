//! Crash recovery: torn writes, flipped bytes, garbage, lost indexes. Recovery keeps exactly
//! the valid batches before the damage, reports what it cut, and the log goes on appending at
//! the right offset.

mod common;

use std::fs::OpenOptions as FsOpen;
use std::io::Write;
use std::path::Path;

use common::*;
use strom_storage::{AppendOrigin, Log, LogConfig, OpenOptions};
use strom_types::compression::Compression;

const NOW: i64 = 1_700_000_000_000;
const SEGMENT: &str = "00000000000000000000.log";

/// Writes `n` batches of 3 records (the last one gzip-compressed) and returns each batch's
/// start position and the file size.
fn fill(dir: &Path, n: usize) -> (Vec<u64>, u64) {
    let log = open(dir, LogConfig::default());
    let mut starts = Vec::new();
    for i in 0..n {
        starts.push(log.size());
        let c = if i == n - 1 {
            Compression::Gzip
        } else {
            Compression::None
        };
        let mut b = batch_with(c, 3, 40, NOW + i as i64, "k");
        log.append_as_leader(&mut b, 0, AppendOrigin::Client, NOW)
            .unwrap();
    }
    let size = log.size();
    drop(log); // a kill: no close, no flush, no clean-shutdown marker
    (starts, size)
}

fn reopen(dir: &Path) -> (std::sync::Arc<Log>, strom_storage::LoadReport) {
    Log::open(dir, tp(), LogConfig::default(), OpenOptions::standalone()).unwrap()
}

fn check_recovered(dir: &Path, kept_batches: usize, kept_bytes: u64) {
    let (log, report) = reopen(dir);
    assert_eq!(log.log_end_offset(), 3 * kept_batches as i64);
    assert_eq!(log.size(), kept_bytes);
    let recs = read_all(&log);
    assert_eq!(recs.len(), 3 * kept_batches);
    assert!(recs.iter().enumerate().all(|(i, r)| r.offset == i as i64));
    assert!(report.segments_recovered >= 1);
    // New appends continue right after the last valid batch.
    let mut b = batch(2, 10, NOW);
    let info = log
        .append_as_leader(&mut b, 0, AppendOrigin::Client, NOW)
        .unwrap();
    assert_eq!(info.first_offset, 3 * kept_batches as i64);
    assert_eq!(read_all(&log).len(), 3 * kept_batches + 2);
}

#[test]
fn a_torn_last_batch_is_cut_at_every_byte_offset() {
    let template = tempfile::tempdir().unwrap();
    let (starts, size) = fill(template.path(), 4);
    let last_start = *starts.last().unwrap();
    for cut in last_start..size {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(template.path(), dir.path());
        let f = FsOpen::new()
            .write(true)
            .open(dir.path().join(SEGMENT))
            .unwrap();
        f.set_len(cut).unwrap();
        drop(f);
        check_recovered(dir.path(), 3, last_start);
    }
    // Uncut, everything survives the unclean stop.
    check_recovered(template.path(), 4, size);
}

#[test]
fn a_flipped_byte_anywhere_in_the_last_batch_is_detected() {
    let template = tempfile::tempdir().unwrap();
    let (starts, size) = fill(template.path(), 4);
    let last_start = *starts.last().unwrap();
    for pos in last_start..size {
        // Bytes 0..8 (base offset) and 12..16 (leader epoch) are outside the CRC: a flip there
        // yields a valid-looking batch with other offsets; the base offset check catches
        // offsets going backwards, a flipped epoch is indistinguishable (as in Kafka).
        let rel = pos - last_start;
        if (12..16).contains(&rel) {
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        copy_dir(template.path(), dir.path());
        let path = dir.path().join(SEGMENT);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[pos as usize] ^= 0x5a;
        std::fs::write(&path, &bytes).unwrap();
        let (log, _) = reopen(dir.path());
        let recs = read_all(&log);
        if rel < 8 {
            // A base offset moved forward is a gap (allowed); backward is cut.
            assert!(
                recs.len() == 9 || recs.len() == 12,
                "flip at {rel}: {}",
                recs.len()
            );
        } else {
            assert_eq!(recs.len(), 9, "flip at byte {rel} of the last batch");
            assert_eq!(log.size(), last_start);
        }
    }
}

#[test]
fn garbage_after_the_last_batch_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let (_, size) = fill(dir.path(), 5);
    let mut f = FsOpen::new()
        .append(true)
        .open(dir.path().join(SEGMENT))
        .unwrap();
    f.write_all(&[0xab; 1000]).unwrap();
    drop(f);
    let (_, report) = reopen(dir.path());
    assert_eq!(report.bytes_truncated, 1000);
    check_recovered(dir.path(), 5, size);
    // Zeros (a preallocated tail after a power cut) likewise.
    let mut f = FsOpen::new()
        .append(true)
        .open(dir.path().join(SEGMENT))
        .unwrap();
    f.write_all(&[0; 100]).unwrap();
    drop(f);
    let (log, report) = reopen(dir.path());
    assert_eq!(report.bytes_truncated, 100);
    assert_eq!(log.log_end_offset(), 17);
}

#[test]
fn damage_in_an_older_segment_drops_the_segments_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = LogConfig::default();
    config.segment_bytes = 1000;
    let log = open(dir.path(), config.clone());
    for _ in 0..30 {
        let mut b = batch(2, 50, NOW);
        log.append_as_leader(&mut b, 0, AppendOrigin::Client, NOW)
            .unwrap();
    }
    let bases = log.segment_base_offsets();
    assert!(bases.len() >= 4);
    drop(log);
    // Corrupt the last byte of the second segment.
    let second = dir.path().join(format!("{:020}.log", bases[1]));
    let mut bytes = std::fs::read(&second).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 1;
    std::fs::write(&second, &bytes).unwrap();
    let (log, report) = Log::open(dir.path(), tp(), config, OpenOptions::standalone()).unwrap();
    assert_eq!(report.segments_dropped, bases.len() - 2);
    let recs = read_all(&log);
    assert_eq!(recs.len() as i64, log.log_end_offset());
    assert!(log.log_end_offset() < bases[2]);
    assert_eq!(log.segment_base_offsets(), bases[..2].to_vec());
}

#[test]
fn missing_or_corrupt_indexes_are_rebuilt_even_after_a_clean_stop() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = LogConfig::default();
    config.segment_bytes = 4000;
    config.index_interval_bytes = 100;
    let log = open(dir.path(), config.clone());
    for i in 0..60 {
        let mut b = batch(2, 50, NOW + i);
        log.append_as_leader(&mut b, 0, AppendOrigin::Client, NOW)
            .unwrap();
    }
    let expected = read_all(&log);
    let by_time = log.offset_for_timestamp(NOW + 33).unwrap();
    log.close().unwrap();
    std::fs::remove_file(dir.path().join("00000000000000000000.index")).unwrap();
    std::fs::write(dir.path().join("00000000000000000000.timeindex"), [1u8; 13]).unwrap();
    let second = log.segment_base_offsets()[1];
    // An index pointing past the end of its log.
    std::fs::write(
        dir.path().join(format!("{second:020}.index")),
        [0, 0, 0, 1, 0x7f, 0, 0, 0],
    )
    .unwrap();
    let log = open_clean(dir.path(), config, true);
    assert_eq!(read_all(&log), expected);
    assert_eq!(log.offset_for_timestamp(NOW + 33).unwrap(), by_time);
    for o in (0..120).step_by(7) {
        assert_eq!(
            log.read(o, 1, None, true)
                .unwrap()
                .region
                .unwrap()
                .first_batch_offset(),
            o - o % 2
        );
    }
}

#[test]
fn an_empty_or_headerless_log_file_recovers_to_empty() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(SEGMENT), [0u8; 30]).unwrap();
    let (log, report) = reopen(dir.path());
    assert_eq!(report.bytes_truncated, 30);
    assert_eq!(log.log_end_offset(), 0);
    let mut b = batch(1, 1, NOW);
    assert_eq!(
        log.append_as_leader(&mut b, 0, AppendOrigin::Client, NOW)
            .unwrap()
            .first_offset,
        0
    );
}

fn copy_dir(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}
