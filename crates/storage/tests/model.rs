//! Model-based property test: random sequences of append, read, truncate, roll, advance of
//! the log start offset, clean reopen, kill-and-recover and torn tails, applied to a real log
//! and to a plain in-memory model. After every step the log must read exactly as the model.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use proptest::prelude::*;
use strom_storage::{AppendOrigin, Log, LogConfig, OpenOptions};
use strom_types::batch;
use strom_types::compression::Compression;
use strom_types::record::BatchBuilder;

const NOW: i64 = 1_700_000_000_000;

#[derive(Debug, Clone)]
enum Op {
    Append {
        n: usize,
        codec: usize,
        value_len: usize,
        nulls: bool,
    },
    Read {
        at: f64,
        max_bytes: u64,
        bound: Option<f64>,
        min_one: bool,
    },
    Truncate(f64),
    Roll,
    AdvanceStart(f64),
    Reopen,
    Kill,
    KillWithGarbageTail(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (1usize..6, 0usize..5, 0usize..120, any::<bool>())
            .prop_map(|(n, codec, value_len, nulls)| Op::Append { n, codec, value_len, nulls }),
        4 => (0.0..=1.0f64, 1u64..3000, proptest::option::of(0.0..=1.0f64), any::<bool>())
            .prop_map(|(at, max_bytes, bound, min_one)| Op::Read { at, max_bytes, bound, min_one }),
        1 => (0.0..=1.0f64).prop_map(Op::Truncate),
        1 => Just(Op::Roll),
        1 => (0.0..=1.0f64).prop_map(Op::AdvanceStart),
        1 => Just(Op::Reopen),
        1 => Just(Op::Kill),
        1 => (1usize..200).prop_map(Op::KillWithGarbageTail),
    ]
}

#[derive(Debug, Clone)]
struct ModelBatch {
    base: i64,
    records: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl ModelBatch {
    fn last(&self) -> i64 {
        self.base + self.records.len() as i64 - 1
    }
}

#[derive(Debug, Default)]
struct Model {
    batches: Vec<ModelBatch>,
    start: i64,
    end: i64,
}

impl Model {
    fn visible(&self) -> Vec<(i64, Vec<u8>, Option<Vec<u8>>)> {
        let mut out = Vec::new();
        for b in &self.batches {
            for (i, (k, v)) in b.records.iter().enumerate() {
                let o = b.base + i as i64;
                if o >= self.start {
                    out.push((o, k.clone(), v.clone()));
                }
            }
        }
        out
    }

    fn truncate(&mut self, offset: i64) {
        if offset >= self.end {
            return;
        }
        if offset <= self.start {
            self.batches.clear();
            self.start = offset;
            self.end = offset;
            return;
        }
        self.batches.retain(|b| b.last() < offset);
        let new_end = self
            .batches
            .last()
            .map(|b| b.last() + 1)
            .unwrap_or(self.start);
        if new_end < self.start {
            self.batches.clear();
            self.end = self.start;
        } else {
            self.end = new_end;
        }
    }
}

fn pick(lo: i64, hi: i64, frac: f64) -> i64 {
    lo + ((hi - lo) as f64 * frac).round() as i64
}

fn reopen(dir: &Path, config: &LogConfig, start: i64, clean: bool) -> Arc<Log> {
    let mut opts = OpenOptions::standalone();
    opts.clean_shutdown = clean;
    opts.log_start_offset = Some(start);
    Log::open(dir, tp(), config.clone(), opts).unwrap().0
}

fn check_read(
    log: &Log,
    model: &Model,
    at: f64,
    max_bytes: u64,
    bound: Option<f64>,
    min_one: bool,
) {
    let offset = pick(model.start, model.end, at);
    let bound = bound.map(|b| pick(offset, model.end, b));
    let info = log.read(offset, max_bytes, bound, min_one).unwrap();
    assert_eq!(
        (info.log_start_offset, info.log_end_offset),
        (model.start, model.end)
    );
    let Some(region) = info.region else {
        // Nothing only when there is nothing before the bound, or the first batch is too big.
        let first = model.batches.iter().find(|b| b.last() >= offset);
        if let Some(first) = first {
            let beyond_bound = bound.is_some_and(|bd| first.last() >= bd);
            assert!(
                beyond_bound || !min_one,
                "no data at {offset} though batch {first:?} is readable"
            );
        }
        return;
    };
    let bytes = region.read_to_vec().unwrap();
    let headers: Vec<_> = batch::batches(&bytes)
        .map(|b| *b.unwrap().header())
        .collect();
    assert!(!headers.is_empty());
    if headers.len() > 1 || !min_one {
        assert!(bytes.len() as u64 <= max_bytes, "read exceeds max_bytes");
    }
    if let Some(bd) = bound {
        assert!(
            headers.iter().all(|h| h.last_offset() < bd),
            "read passes the upper bound"
        );
    }
    // The batches are consecutive model batches, starting with the one holding `offset`.
    let first = model
        .batches
        .iter()
        .position(|b| b.last() >= offset)
        .unwrap();
    for (i, h) in headers.iter().enumerate() {
        let m = &model.batches[first + i];
        assert_eq!((h.base_offset, h.last_offset()), (m.base, m.last()));
    }
}

fn run(ops: Vec<Op>, segment_bytes: u64, index_interval: u64) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = LogConfig::default();
    config.segment_bytes = segment_bytes;
    config.index_interval_bytes = index_interval;
    let mut log = open(dir.path(), config.clone());
    let mut model = Model::default();
    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::Append {
                n,
                codec,
                value_len,
                nulls,
            } => {
                let c = [
                    Compression::None,
                    Compression::Gzip,
                    Compression::Snappy,
                    Compression::Lz4,
                    Compression::Zstd,
                ][codec];
                let mut b = BatchBuilder::new(c);
                let mut recs = Vec::new();
                for i in 0..n {
                    let key = format!("k{step}-{i}").into_bytes();
                    let value =
                        (!(nulls && i % 2 == 1)).then(|| vec![b'a' + (step % 26) as u8; value_len]);
                    b.append(NOW + step as i64, Some(&key), value.as_deref(), &[]);
                    recs.push((key, value));
                }
                let mut bytes = b.build(0).unwrap();
                let info = log
                    .append_as_leader(&mut bytes, 0, AppendOrigin::Client, NOW)
                    .unwrap();
                assert_eq!(info.first_offset, model.end);
                model.batches.push(ModelBatch {
                    base: model.end,
                    records: recs,
                });
                model.end += n as i64;
            }
            Op::Read {
                at,
                max_bytes,
                bound,
                min_one,
            } => {
                check_read(&log, &model, at, max_bytes, bound, min_one);
            }
            Op::Truncate(f) => {
                let offset = pick(model.start, model.end, f);
                log.truncate_to(offset).unwrap();
                model.truncate(offset);
            }
            Op::Roll => log.roll().unwrap(),
            Op::AdvanceStart(f) => {
                let offset = pick(model.start, model.end, f);
                log.advance_log_start_offset(offset).unwrap();
                model.start = model.start.max(offset);
            }
            Op::Reopen => {
                log.close().unwrap();
                drop(log);
                log = reopen(dir.path(), &config, model.start, true);
            }
            Op::Kill => {
                drop(log);
                log = reopen(dir.path(), &config, model.start, false);
            }
            Op::KillWithGarbageTail(n) => {
                let newest = log.segment_base_offsets().last().copied().unwrap();
                drop(log);
                let path = dir.path().join(format!("{newest:020}.log"));
                let mut bytes = std::fs::read(&path).unwrap();
                bytes.extend((0..n).map(|i| (i * 7 + 3) as u8));
                std::fs::write(&path, bytes).unwrap();
                log = reopen(dir.path(), &config, model.start, false);
            }
        }
        assert_eq!(
            log.log_end_offset(),
            model.end,
            "end offset after step {step}"
        );
        assert_eq!(
            log.log_start_offset(),
            model.start,
            "start offset after step {step}"
        );
        let actual: Vec<_> = read_all(&log)
            .into_iter()
            .map(|r| (r.offset, r.key.unwrap(), r.value))
            .collect();
        assert_eq!(actual, model.visible(), "contents after step {step}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn the_log_behaves_like_the_model(
        ops in proptest::collection::vec(op(), 30..80),
        segment_bytes in 600u64..2000,
        index_interval in 0u64..300,
    ) {
        run(ops, segment_bytes, index_interval);
    }
}
