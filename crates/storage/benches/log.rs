//! Commit-log benchmarks (criterion). Run: `cargo bench -p strom-storage --bench log`.
//!
//! - `append`: 1 KiB records in 16 KiB and 1 MiB batches, without and with an fsync per batch.
//! - `read`: sequential 1 MiB reads of a 256 MiB log through the buffered path.
//! - `offset_lookup`: finding the batch of a random offset in logs of 10^3, 10^5 and 10^7
//!   records (batches of 10 records); the time should stay flat.
//! - `recovery`: reopening a 1 GiB log after an unclean stop (every batch CRC-checked, the
//!   indexes rebuilt).
//!
//! Data lives under `target/` (a real disk, not tmpfs).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rand::{Rng, SeedableRng};
use strom_storage::{AppendOrigin, Log, LogConfig, OpenOptions};
use strom_types::compression::Compression;
use strom_types::record::BatchBuilder;
use strom_types::TopicPartition;

const NOW: i64 = 1_700_000_000_000;

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

/// A batch of `records` records of `value_len` bytes each.
fn batch(records: usize, value_len: usize) -> Vec<u8> {
    let mut b = BatchBuilder::new(Compression::None);
    let value = vec![b'x'; value_len];
    for i in 0..records {
        b.append(NOW, Some(format!("key-{i}").as_bytes()), Some(&value), &[]);
    }
    b.build(0).unwrap()
}

fn append(c: &mut Criterion) {
    let mut g = c.benchmark_group("append");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    for (name, per_batch) in [("16KiB", 16), ("1MiB", 1024)] {
        let template = batch(per_batch, 1024 - 20);
        g.throughput(Throughput::Bytes(template.len() as u64));
        for fsync in [false, true] {
            let id = format!("{name}_batches{}", if fsync { "_fsync" } else { "" });
            let dir = scratch();
            let mut log = open(dir.path());
            let mut generation = 0;
            g.bench_function(&id, |b| {
                b.iter_batched_ref(
                    || template.clone(),
                    |bytes| {
                        if log.size() > 1 << 30 {
                            // Bound disk use: start over in a fresh directory.
                            log.delete().unwrap();
                            generation += 1;
                            log = open(&dir.path().join(generation.to_string()));
                        }
                        log.append_as_leader(bytes, 0, AppendOrigin::Client, NOW)
                            .unwrap();
                        if fsync {
                            log.flush().unwrap();
                        }
                    },
                    BatchSize::SmallInput,
                )
            });
        }
    }
    g.finish();
}

fn fill(log: &Log, bytes: u64, template: &[u8]) {
    while log.size() < bytes {
        let mut b = template.to_vec();
        log.append_as_leader(&mut b, 0, AppendOrigin::Client, NOW)
            .unwrap();
    }
}

fn read(c: &mut Criterion) {
    let dir = scratch();
    let log = open(dir.path());
    fill(&log, 256 << 20, &batch(16, 1004));
    let mut g = c.benchmark_group("read");
    g.sample_size(10).throughput(Throughput::Bytes(log.size()));
    g.bench_function("sequential_1MiB_reads_256MiB", |b| {
        b.iter(|| {
            let mut offset = 0;
            let mut total = 0;
            while offset < log.log_end_offset() {
                let info = log.read(offset, 1 << 20, None, true).unwrap();
                let region = info.region.unwrap();
                let bytes = region.read_to_vec().unwrap();
                total += bytes.len();
                // The next read starts after the last batch of this one.
                let mut last = 0;
                for b in strom_types::batch::batches(&bytes) {
                    last = b.unwrap().header().next_offset();
                }
                offset = last;
            }
            total
        })
    });
    g.finish();
}

fn offset_lookup(c: &mut Criterion) {
    let mut g = c.benchmark_group("offset_lookup");
    g.sample_size(20);
    let template = batch(10, 8);
    for records in [1_000i64, 100_000, 10_000_000] {
        let dir = scratch();
        let log = open(dir.path());
        let mut b = template.clone();
        while log.log_end_offset() < records {
            log.append_as_leader(&mut b, 0, AppendOrigin::Client, NOW)
                .unwrap();
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        g.throughput(Throughput::Elements(1));
        g.bench_function(format!("records_{records}"), |bench| {
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

fn recovery(c: &mut Criterion) {
    let dir = scratch();
    {
        let log = open(dir.path());
        fill(&log, 1 << 30, &batch(16, 1004));
        // Dropped without close: the next open recovers every segment.
    }
    let size: u64 = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    let mut g = c.benchmark_group("recovery");
    g.sample_size(10).throughput(Throughput::Bytes(size));
    g.bench_function("unclean_open_1GiB", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let started = Instant::now();
                let (log, report) = Log::open(
                    dir.path(),
                    TopicPartition::new("bench", 0),
                    LogConfig::default(),
                    OpenOptions::standalone(),
                )
                .unwrap();
                total += started.elapsed();
                assert!(report.segments_recovered >= 1);
                drop(log);
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, append, read, offset_lookup, recovery);
criterion_main!(benches);
