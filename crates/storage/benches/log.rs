//! Commit-log benchmarks (criterion).
//!
//! Run all: `cargo bench -p strom-storage --bench log` (about 1.5 minutes on 2 cores).
//! One group: `cargo bench -p strom-storage --bench log -- recovery` (each bench builds its
//! data on first use, so a filtered run only pays for what it runs).
//!
//! - `append`: [`Log::append_as_leader`] of 1 KiB records in 16 KiB and in 1 MiB batches,
//!   without fsync (the page cache absorbs the writes) and with [`Log::flush`] (fsync) after
//!   every batch. Throughput is batch bytes per second. The batch buffer is built once and
//!   reused (the log assigns offsets in place); every 1 GiB the log is replaced by a fresh one
//!   (untimed) to bound disk use.
//! - `read`: walks a 256 MiB log from start to end with 1 MiB [`Log::read`]s, copying each
//!   region with `FileRegion::read_to_vec` (the buffered path, not sendfile). The log was just
//!   written, so this reads from the page cache.
//! - `offset_lookup`: `Log::read(random offset, 1 byte, None, true)`: index search plus batch
//!   header scan, without reading the bytes, in logs of 10^3, 10^5 and 10^7 records (batches of
//!   10 records of 8 bytes, one segment). The time per lookup should stay flat as the log grows.
//! - `recovery`: [`Log::open`] with `OpenOptions::standalone()` (unclean, recovery point 0) of a
//!   1 GiB single-segment log that was dropped without `close()`: every batch is read and
//!   CRC-checked, the indexes rebuilt, the segment fsynced. `warm_cache` is a process crash (the
//!   data is still in the page cache); `cold_cache` is a machine crash (the segment is evicted
//!   from the page cache with `dd iflag=nocache` before each open; skipped without GNU dd).
//!
//! Scratch data lives in `target/bench-data` (a real disk; /tmp may be tmpfs), at most about
//! 1.1 GiB at a time, and is removed when each bench is done.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use rand::{Rng, SeedableRng};
use strom_storage::{AppendOrigin, Log, LogConfig, OpenOptions};
use strom_types::batch;
use strom_types::compression::Compression;
use strom_types::record::BatchBuilder;
use strom_types::TopicPartition;

const NOW: i64 = 1_700_000_000_000;
const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;
/// Value length that makes a record (with its `key-N` key and framing) about 1 KiB.
const KIB_RECORD_VALUE: usize = 1004;

fn scratch() -> tempfile::TempDir {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-data");
    std::fs::create_dir_all(&base).unwrap();
    tempfile::tempdir_in(base).unwrap()
}

fn open(dir: &Path) -> Arc<Log> {
    Log::open(
        dir,
        TopicPartition::new("bench", 0),
        LogConfig::default(),
        OpenOptions::standalone(),
    )
    .unwrap()
    .0
}

/// A producer batch (base offset 0) of `records` records with `value_len`-byte values.
fn batch(records: usize, value_len: usize) -> Vec<u8> {
    let mut b = BatchBuilder::new(Compression::None);
    let value = vec![b'x'; value_len];
    for i in 0..records {
        b.append(NOW, Some(format!("key-{i}").as_bytes()), Some(&value), &[]);
    }
    b.build(0).unwrap()
}

/// Appends copies of `template` while the log stays within `bytes`.
fn fill(log: &Log, bytes: u64, template: &[u8]) {
    let mut b = template.to_vec();
    while log.size() + b.len() as u64 <= bytes {
        log.append_as_leader(&mut b, 0, AppendOrigin::Client, NOW)
            .unwrap();
    }
}

/// The offset after the last batch in `bytes` (whole batches).
fn next_offset_after(bytes: &[u8]) -> i64 {
    batch::batches(bytes)
        .map(|b| b.unwrap().header().next_offset())
        .last()
        .expect("a read returned no batch")
}

fn append(c: &mut Criterion) {
    let mut g = c.benchmark_group("append");
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8));
    for (name, records) in [("16KiB", 16), ("1MiB", 1024)] {
        let mut buf = batch(records, KIB_RECORD_VALUE);
        let batch_len = buf.len() as u64;
        g.throughput(Throughput::Bytes(batch_len));
        for fsync in [false, true] {
            let id = format!("{name}_batches{}", if fsync { "_fsync" } else { "" });
            // Set up on first use, so a filtered run does not pay for benches it skips.
            let mut state = None;
            g.bench_function(&id, |b| {
                let (log, generation, dir) = state.get_or_insert_with(|| {
                    let dir = scratch();
                    (open(&dir.path().join("0")), 0u32, dir)
                });
                b.iter_custom(|iters| {
                    let mut timed = Duration::ZERO;
                    for _ in 0..iters {
                        if log.size() + batch_len > GIB {
                            // Bound disk use: continue in a fresh log, untimed.
                            let old = dir.path().join(generation.to_string());
                            *generation += 1;
                            *log = open(&dir.path().join(generation.to_string()));
                            std::fs::remove_dir_all(old).unwrap();
                        }
                        let started = Instant::now();
                        log.append_as_leader(&mut buf, 0, AppendOrigin::Client, NOW)
                            .unwrap();
                        if fsync {
                            log.flush().unwrap();
                        }
                        timed += started.elapsed();
                    }
                    timed
                })
            });
        }
    }
    g.finish();
}

fn read(c: &mut Criterion) {
    let mut g = c.benchmark_group("read");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    let template = batch(16, KIB_RECORD_VALUE);
    // As many 16 KiB batches as fit in 256 MiB.
    let size = 256 * MIB / template.len() as u64 * template.len() as u64;
    g.throughput(Throughput::Bytes(size));
    let mut state = None;
    g.bench_function("sequential_1MiB_reads_256MiB", |b| {
        let (log, _dir) = state.get_or_insert_with(|| {
            let dir = scratch();
            let log = open(dir.path());
            fill(&log, size, &template);
            assert_eq!(log.size(), size);
            (log, dir)
        });
        let end = log.log_end_offset();
        b.iter(|| {
            let mut offset = log.log_start_offset();
            let mut total = 0u64;
            while offset < end {
                let info = log.read(offset, MIB, None, true).unwrap();
                let region = info.region.expect("no region below the log end");
                let bytes = region.read_to_vec().unwrap();
                total += bytes.len() as u64;
                offset = next_offset_after(&bytes);
            }
            assert_eq!(total, size);
            total
        })
    });
    g.finish();
}

fn offset_lookup(c: &mut Criterion) {
    let mut g = c.benchmark_group("offset_lookup");
    g.sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(1));
    for records in [1_000i64, 100_000, 10_000_000] {
        let mut state = None;
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        g.bench_function(format!("records_{records}"), |bench| {
            let (log, _dir) = state.get_or_insert_with(|| lookup_log(records));
            bench.iter(|| {
                let offset = rng.gen_range(0..records);
                log.read(offset, 1, None, true)
                    .unwrap()
                    .region
                    .unwrap()
                    .position()
            })
        });
    }
    g.finish();
}

/// A log of `records` records in batches of 10 records of 8 bytes.
fn lookup_log(records: i64) -> (Arc<Log>, tempfile::TempDir) {
    let dir = scratch();
    let log = open(dir.path());
    let mut b = batch(10, 8);
    while log.log_end_offset() < records {
        log.append_as_leader(&mut b, 0, AppendOrigin::Client, NOW)
            .unwrap();
    }
    // The lookup finds the batch holding the offset.
    for offset in [0, records / 2 + 3, records - 1] {
        let region = log.read(offset, 1, None, true).unwrap().region.unwrap();
        let base = region.first_batch_offset();
        assert!(
            base <= offset && offset < base + 10,
            "{offset} not in {base}"
        );
    }
    (log, dir)
}

/// Drops `path`'s pages from the page cache (`posix_fadvise(DONTNEED)` through GNU dd).
fn evict(path: &Path) -> bool {
    Command::new("dd")
        .arg(format!("if={}", path.display()))
        .args(["iflag=nocache", "count=0", "status=none"])
        .status()
        .is_ok_and(|s| s.success())
}

/// A 1 GiB single-segment log, dropped without close; its `.log` paths and size.
struct Crashed {
    dir: tempfile::TempDir,
    segments: Vec<PathBuf>,
    size: u64,
}

impl Crashed {
    fn new() -> Self {
        let dir = scratch();
        let size = {
            let log = open(dir.path());
            // Stays within segment.bytes (1 GiB): one segment, all of it recovered.
            fill(&log, GIB, &batch(16, KIB_RECORD_VALUE));
            log.size()
            // Dropped without close: the next open recovers every segment from offset 0.
        };
        let segments: Vec<PathBuf> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        // Write back what the fill left dirty (untimed), so the first open does not pay for
        // it and the cold runs can evict the pages.
        for p in &segments {
            std::fs::File::open(p).unwrap().sync_all().unwrap();
        }
        Crashed {
            dir,
            segments,
            size,
        }
    }

    /// One unclean open: the time `Log::open` took.
    fn recover(&self) -> Duration {
        let started = Instant::now();
        let (log, report) = Log::open(
            self.dir.path(),
            TopicPartition::new("bench", 0),
            LogConfig::default(),
            OpenOptions::standalone(),
        )
        .unwrap();
        let elapsed = started.elapsed();
        assert_eq!(report.segments_recovered, self.segments.len());
        assert_eq!(report.bytes_truncated, 0);
        assert_eq!(log.size(), self.size);
        // Dropped without close again: every open is an unclean one.
        drop(log);
        elapsed
    }
}

fn recovery(c: &mut Criterion) {
    let mut g = c.benchmark_group("recovery");
    // As many 16 KiB batches as fit in 1 GiB.
    let batch_len = batch(16, KIB_RECORD_VALUE).len() as u64;
    let size = GIB / batch_len * batch_len;
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Bytes(size));
    let mut state: Option<Crashed> = None;
    g.bench_function("unclean_open_1GiB/warm_cache", |b| {
        let crashed = state.get_or_insert_with(Crashed::new);
        assert_eq!(crashed.size, size);
        b.iter_custom(|iters| (0..iters).map(|_| crashed.recover()).sum())
    });
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    if evict(&manifest) {
        // About 0.5-1.5 s per open from disk: room for 10 of them.
        g.measurement_time(Duration::from_secs(15));
        g.bench_function("unclean_open_1GiB/cold_cache", |b| {
            let crashed = state.get_or_insert_with(Crashed::new);
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        for p in &crashed.segments {
                            assert!(evict(p), "could not evict {}", p.display());
                        }
                        crashed.recover()
                    })
                    .sum()
            })
        });
    } else {
        eprintln!("recovery/cold_cache skipped: `dd iflag=nocache` is not available");
    }
    g.finish();
}

criterion_group!(benches, append, read, offset_lookup, recovery);
criterion_main!(benches);
