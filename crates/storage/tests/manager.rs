//! The LogManager: many partitions under several log dirs, parallel loading, the fd budget,
//! checkpoints and the clean-shutdown marker, background retention, deletion.

mod common;

use std::path::Path;
use std::time::Instant;

use common::*;
use strom_storage::checkpoint::CLEAN_SHUTDOWN_MARKER;
use strom_storage::{AppendOrigin, LogConfig, LogManager, LogManagerConfig};
use strom_types::TopicPartition;

const NOW: i64 = 1_700_000_000_000;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn manager(dirs: &[&Path], max_open: usize) -> std::sync::Arc<LogManager> {
    let mut config = LogManagerConfig::new(dirs.iter().map(|d| d.to_path_buf()).collect());
    config.max_open_segments = max_open;
    config.default_config.segment_bytes = 400;
    LogManager::open(config).unwrap()
}

#[test]
fn ten_thousand_partitions_stay_within_the_fd_budget() {
    let a = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let b = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let fds_before = open_fds();
    let limit = 500;
    let m = manager(&[a.path(), b.path()], limit);
    let mut config = LogConfig::default();
    config.segment_bytes = 400;
    let n = 10_000;
    let started = Instant::now();
    for p in 0..n {
        let log = m
            .get_or_create(&TopicPartition::new("many", p), config.clone())
            .unwrap();
        // Three segments each: every batch is larger than half a segment.
        for _ in 0..3 {
            let mut bytes = batch(1, 250, NOW);
            log.append_as_leader(&mut bytes, 0, AppendOrigin::Client, NOW)
                .unwrap();
        }
        assert!(
            open_fds() <= fds_before + limit + 16,
            "fds grow past the budget"
        );
    }
    eprintln!(
        "created {n} partitions x 3 segments in {:?}",
        started.elapsed()
    );
    assert_eq!(m.handles().limit(), limit);
    assert!(m.handles().open_count() <= limit);
    // Both dirs are used.
    let in_a = std::fs::read_dir(a.path()).unwrap().count();
    assert!(
        in_a > n as usize / 3,
        "partitions spread over log dirs ({in_a} in the first)"
    );
    m.shutdown().unwrap();
    drop(m);
    assert!(open_fds() <= fds_before + 4, "shutdown releases every fd");

    // Reload (parallel, clean: no recovery); measure the memory of idle partitions.
    let rss_before = rss_kib();
    let started = Instant::now();
    let m = manager(&[a.path(), b.path()], limit);
    let load = started.elapsed();
    assert_eq!(m.logs().len(), n as usize);
    assert_eq!(m.load_report().segments_recovered, 0);
    let rss_after = rss_kib();
    let per_log: usize = m.logs().iter().map(|l| l.memory_usage()).sum::<usize>() / n as usize;
    eprintln!(
        "reloaded {n} partitions in {load:?}; heap per idle partition (counted) {per_log} B; \
         RSS growth per partition {} B",
        (rss_after.saturating_sub(rss_before)) * 1024 / n as u64
    );
    // Every partition reads back, and the fd budget holds while doing so.
    for p in (0..n).step_by(7) {
        let log = m.get(&TopicPartition::new("many", p)).unwrap();
        assert_eq!(log.log_end_offset(), 3);
        assert_eq!(read_all(&log).len(), 3);
    }
    assert!(open_fds() <= fds_before + limit + 16);
    m.shutdown().unwrap();
}

#[test]
fn clean_shutdown_skips_recovery_and_a_kill_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(&[dir.path()], 0);
    let tp = TopicPartition::new("orders", 3);
    let log = m.get_or_create(&tp, LogConfig::default()).unwrap();
    for _ in 0..10 {
        let mut b = batch(2, 100, NOW);
        log.append_as_leader(&mut b, 0, AppendOrigin::Client, NOW)
            .unwrap();
    }
    m.shutdown().unwrap();
    assert!(dir.path().join(CLEAN_SHUTDOWN_MARKER).exists());
    let rp = std::fs::read_to_string(dir.path().join("recovery-point-offset-checkpoint")).unwrap();
    assert_eq!(rp, "0\n1\norders 3 20\n");
    drop((m, log));

    let m = manager(&[dir.path()], 0);
    assert_eq!(m.load_report().segments_recovered, 0);
    assert!(
        !dir.path().join(CLEAN_SHUTDOWN_MARKER).exists(),
        "marker consumed at start"
    );
    let log = m.get(&tp).unwrap();
    assert_eq!(log.log_end_offset(), 20);
    for _ in 0..5 {
        let mut b = batch(2, 100, NOW);
        log.append_as_leader(&mut b, 0, AppendOrigin::Client, NOW)
            .unwrap();
    }
    // A kill: no shutdown. Everything written is recovered; recovery scans from the
    // checkpointed recovery point.
    drop((m, log));
    let m = manager(&[dir.path()], 0);
    assert!(m.load_report().segments_recovered >= 1);
    let log = m.get(&tp).unwrap();
    assert_eq!(log.log_end_offset(), 30);
    assert_eq!(read_all(&log).len(), 30);
}

#[test]
fn deleting_a_partition_removes_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(&[dir.path()], 0);
    let tp = TopicPartition::new("gone", 0);
    let log = m.get_or_create(&tp, LogConfig::default()).unwrap();
    let mut b = batch(2, 100, NOW);
    log.append_as_leader(&mut b, 0, AppendOrigin::Client, NOW)
        .unwrap();
    assert!(m.delete(&tp).unwrap());
    assert!(m.get(&tp).is_none());
    assert!(!dir.path().join("gone-0").exists());
    let mut b = batch(2, 100, NOW);
    assert!(log
        .append_as_leader(&mut b, 0, AppendOrigin::Client, NOW)
        .is_err());
    // The renamed directory is removed when due, or at the next start.
    assert_eq!(m.delete_due_files(i64::MAX), 1);
    assert_eq!(
        std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().is_dir())
            .count(),
        0
    );
    // A re-created partition starts empty.
    let log = m.get_or_create(&tp, LogConfig::default()).unwrap();
    assert_eq!(log.log_end_offset(), 0);
}

#[test]
fn background_threads_apply_retention_and_delete_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = LogManagerConfig::new(vec![dir.path().to_path_buf()]);
    config.retention_check_interval_ms = 20;
    config.flush_check_interval_ms = 10;
    config.cleaner_backoff_ms = 20;
    let m = LogManager::open(config).unwrap();
    let mut lc = LogConfig::default();
    lc.segment_bytes = 400;
    lc.retention_ms = 1000;
    lc.file_delete_delay_ms = 0;
    lc.flush_ms = 10;
    let log = m
        .get_or_create(&TopicPartition::new("old", 0), lc.clone())
        .unwrap();
    let now = strom_storage::now_ms();
    for _ in 0..4 {
        let mut b = batch(1, 250, now - 10_000);
        log.append_as_leader(&mut b, 0, AppendOrigin::Client, now)
            .unwrap();
    }
    let mut compact = lc.clone();
    compact.set("cleanup.policy", "compact").unwrap();
    compact.min_cleanable_dirty_ratio = 0.0;
    let clog = m
        .get_or_create(&TopicPartition::new("table", 0), compact)
        .unwrap();
    for _ in 0..4 {
        let mut b = kv_batch(&[("same", Some("value-that-is-long-enough-to-fill-segments-quickly-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"))], now);
        clog.append_as_leader(&mut b, 0, AppendOrigin::Client, now)
            .unwrap();
    }
    m.start_background();
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    while (log.log_start_offset() < 4 || read_all(&clog).len() > 2 || log.recovery_point() < 4)
        && Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(log.log_start_offset(), 4, "retention ran");
    assert_eq!(log.recovery_point(), 4, "flush.ms flushed");
    // The cleaner compacted all but the active segment: the latest record of the cleaned
    // part and the one in the active segment remain.
    let offsets: Vec<i64> = read_all(&clog).iter().map(|r| r.offset).collect();
    assert_eq!(offsets, vec![2, 3], "the cleaner compacted");
    std::thread::sleep(std::time::Duration::from_millis(100));
    let leftovers = std::fs::read_dir(dir.path().join("old-0"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".deleted")
        })
        .count();
    assert_eq!(
        leftovers, 0,
        ".deleted files removed by the background deleter"
    );
    m.shutdown().unwrap();
}
