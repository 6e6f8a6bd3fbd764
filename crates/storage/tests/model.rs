//! Model-based property test of one partition's log.
//!
//! Random sequences of appends (every codec, null keys and values, out-of-order timestamps),
//! reads, truncations, rolls, flushes, advances of the log start offset, clean reopens,
//! kill-and-recover and torn tails (garbage appended to, or the last batch cut from, the
//! newest `.log`) are applied to a real [`Log`] in a temporary directory and to a plain
//! in-memory model: the batches appended (offset range, size, records), the log start offset
//! and the log end offset. After every step the log must agree with the model:
//! - the start and end offsets;
//! - `read_all` returns exactly the model's records at or above the log start;
//! - random reads return exactly the batches the model predicts (see [`expected_read`]),
//!   which implies: they begin with the batch holding the offset, never exceed `max_bytes`
//!   unless that batch alone with `min_one_batch`, never include a batch reaching the upper
//!   bound, and stop only at `max_bytes`, the bound or the end of a segment;
//! - offsets outside `[log start, log end]` are OFFSET_OUT_OF_RANGE;
//! - `offset_for_timestamp` finds the first readable record at or past a timestamp.
//!
//! Segment boundaries are the one thing the model does not predict: the expected read takes
//! them from `segment_base_offsets()` (a read never crosses a segment).

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use strom_storage::segment::file_name;
use strom_storage::{AppendOrigin, Log, LogConfig, OpenOptions, StorageError};
use strom_types::batch::{self, BatchHeader, TimestampType};
use strom_types::compression::Compression;
use strom_types::record::BatchBuilder;

const NOW: i64 = 1_700_000_000_000;

/// A torn tail whose last batch begins below the checkpointed log start: like Kafka's
/// `LogLoader`, `Log::open` then restarts the log empty at the checkpoint instead of moving
/// the start backwards (this test found that bug; keep it on).
const TORN_TAIL_BELOW_LOG_START: bool = true;

/// Wall-clock step per operation: `now` of step `i` is `NOW + STEP_MS * i`.
const STEP_MS: i64 = 8;

// ---------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------

/// One record to append: key, value and timestamp (`now` of the step plus `ts_delta`).
#[derive(Clone)]
struct NewRecord {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    ts_delta: i64,
}

/// Compact, so a failing sequence stays readable: `[b; n]` for runs, hex otherwise.
fn show(bytes: &Option<Vec<u8>>) -> String {
    match bytes.as_deref() {
        None => "null".into(),
        Some([]) => "[]".into(),
        Some(b @ [first, ..]) if b.iter().all(|x| x == first) => {
            format!("[{first:#04x}; {}]", b.len())
        }
        Some(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
    }
}

impl std::fmt::Debug for NewRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "({} => {} @+{})",
            show(&self.key),
            show(&self.value),
            self.ts_delta
        )
    }
}

/// A read: the offset is `at` of `[log start, log end]`, the bound `bound` of
/// `[log start, log end + 2]` (beyond the end means no bound).
#[derive(Debug, Clone)]
struct ReadSpec {
    at: Index,
    max_bytes: u64,
    bound: Option<Index>,
    min_one: bool,
}

/// What happens to the newest `.log` file while the broker is down after a kill.
#[derive(Debug, Clone)]
enum Tail {
    /// Nothing: recovery must keep every record.
    Intact,
    /// Bytes appended (a torn write of a batch that never completed): cut away, nothing lost.
    Garbage(Vec<u8>),
    /// The last `1 + cut.index(size)` bytes of the last batch are gone: exactly that batch
    /// is lost. Done only when the last batch is in the newest segment (and, while
    /// [`TORN_TAIL_BELOW_LOG_START`] is off, begins at or above a checkpointed log start);
    /// otherwise the tail stays intact.
    Cut(Index),
    /// The `.index` and `.timeindex` of segment `segment.index(count)` are deleted, or torn
    /// (a partial entry appended): they must be rebuilt, whether or not recovery runs there.
    Indexes { segment: Index, delete: bool },
}

#[derive(Debug, Clone)]
enum Op {
    Append {
        codec: Compression,
        records: Vec<NewRecord>,
    },
    Read(ReadSpec),
    /// A read below the log start (`below`) or above the log end, by `1 + by`.
    ReadOutOfRange {
        below: bool,
        by: u8,
    },
    /// `offset_for_timestamp(NOW - 10 + at.index(STEP_MS * 90 + 60))`.
    OffsetForTimestamp(Index),
    Truncate(Index),
    Roll,
    Flush,
    AdvanceStart(Index),
    /// `close()`, then reopen as cleanly shut down. With `checkpoint`, the log start offset
    /// is passed as the manager's checkpoint would; without, the log starts at its first
    /// segment (`common::open_clean`).
    Reopen {
        checkpoint: bool,
    },
    /// Drop the log without closing (its writes are in the OS), maybe damage the tail, and
    /// reopen unclean. `checkpoint` passes the log start and the recovery point as the
    /// manager's checkpoints would (so segments below the recovery point are not recovered);
    /// without, everything is recovered and the log starts at its first segment.
    Kill {
        checkpoint: bool,
        tail: Tail,
    },
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..max),
        // Compressible.
        (any::<u8>(), 0..max).prop_map(|(b, n)| vec![b; n]),
    ]
}

fn new_record() -> impl Strategy<Value = NewRecord> {
    (
        proptest::option::weighted(0.9, bytes(8)),
        proptest::option::weighted(0.8, bytes(150)),
        0i64..40,
    )
        .prop_map(|(key, value, ts_delta)| NewRecord {
            key,
            value,
            ts_delta,
        })
}

fn read_spec() -> impl Strategy<Value = ReadSpec> {
    (
        any::<Index>(),
        prop_oneof![0u64..200, 0u64..3000],
        proptest::option::of(any::<Index>()),
        any::<bool>(),
    )
        .prop_map(|(at, max_bytes, bound, min_one)| ReadSpec {
            at,
            max_bytes,
            bound,
            min_one,
        })
}

fn tail() -> impl Strategy<Value = Tail> {
    prop_oneof![
        2 => Just(Tail::Intact),
        1 => prop_oneof![
            vec(any::<u8>(), 1..200),
            (1usize..200).prop_map(|n| vec![0u8; n]),
        ]
        .prop_map(Tail::Garbage),
        1 => any::<Index>().prop_map(Tail::Cut),
        1 => (any::<Index>(), any::<bool>())
            .prop_map(|(segment, delete)| Tail::Indexes { segment, delete }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let codec = prop::sample::select(vec![
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ]);
    prop_oneof![
        12 => (codec, vec(new_record(), 1..=5))
            .prop_map(|(codec, records)| Op::Append { codec, records }),
        3 => read_spec().prop_map(Op::Read),
        1 => (any::<bool>(), any::<u8>()).prop_map(|(below, by)| Op::ReadOutOfRange { below, by }),
        1 => any::<Index>().prop_map(Op::OffsetForTimestamp),
        2 => any::<Index>().prop_map(Op::Truncate),
        1 => Just(Op::Roll),
        1 => Just(Op::Flush),
        2 => any::<Index>().prop_map(Op::AdvanceStart),
        1 => any::<bool>().prop_map(|checkpoint| Op::Reopen { checkpoint }),
        2 => (any::<bool>(), tail()).prop_map(|(checkpoint, tail)| Op::Kill { checkpoint, tail }),
    ]
}

// ---------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
struct ModelRecord {
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
}

#[derive(Debug, Clone)]
struct ModelBatch {
    base: i64,
    /// Bytes of the batch as stored.
    size: u64,
    records: Vec<ModelRecord>,
}

impl ModelBatch {
    fn last(&self) -> i64 {
        self.base + self.records.len() as i64 - 1
    }
}

/// Every batch appended and not truncated (including those below the log start, which may
/// still be in the log and come back when it reopens without a start checkpoint).
#[derive(Debug, Default)]
struct Model {
    batches: Vec<ModelBatch>,
    start: i64,
    end: i64,
}

impl Model {
    /// The records a consumer can read: at or above the log start.
    fn visible(&self) -> Vec<Rec> {
        let mut out = Vec::new();
        for b in &self.batches {
            for (i, r) in b.records.iter().enumerate() {
                let offset = b.base + i as i64;
                if offset >= self.start {
                    out.push(Rec {
                        offset,
                        timestamp: r.timestamp,
                        key: r.key.clone(),
                        value: r.value.clone(),
                    });
                }
            }
        }
        out
    }

    /// `truncate_to(offset)`: whole batches go; a batch holding `offset` goes entirely. At or
    /// below the log start, or when no readable record would be left, the log restarts empty
    /// at its start offset (Kafka's truncateFullyAndStartAt). Returns the new end.
    fn truncate(&mut self, offset: i64) -> i64 {
        if offset >= self.end {
            return self.end;
        }
        if offset <= self.start {
            self.batches.clear();
            self.start = offset;
            self.end = offset;
            return self.end;
        }
        self.batches.retain(|b| b.last() < offset);
        let new_end = self.batches.last().map_or(self.start, |b| b.last() + 1);
        if new_end < self.start {
            self.batches.clear();
            self.end = self.start;
        } else {
            self.end = new_end;
        }
        self.end
    }

    /// `offset_for_timestamp`: the first readable record at or past `ts`.
    fn offset_for_timestamp(&self, ts: i64) -> Option<(i64, i64)> {
        self.visible()
            .into_iter()
            .find(|r| r.timestamp >= ts)
            .map(|r| (r.offset, r.timestamp))
    }
}

/// The batches `read(offset, max_bytes, bound, min_one)` must return, whole and in order:
/// from the batch holding `offset`, within its segment (`segments` are the base offsets),
/// before the first batch reaching the bound, as many as fit `max_bytes` (or the first alone
/// if it does not fit and `min_one`). Nothing at the log end or at/after the bound.
fn expected_read<'m>(
    model: &'m Model,
    segments: &[i64],
    offset: i64,
    max_bytes: u64,
    bound: Option<i64>,
    min_one: bool,
) -> Vec<&'m ModelBatch> {
    let bound = bound.filter(|&b| b < model.end);
    if offset >= model.end || bound.is_some_and(|b| offset >= b) {
        return Vec::new();
    }
    let Some(first) = model.batches.iter().position(|b| b.last() >= offset) else {
        return Vec::new();
    };
    let segment_end = segments
        .iter()
        .copied()
        .find(|&s| s > model.batches[first].base);
    let mut out = Vec::new();
    let mut total = 0;
    for b in &model.batches[first..] {
        if segment_end.is_some_and(|e| b.base >= e) || bound.is_some_and(|bd| b.last() >= bd) {
            break;
        }
        if total + b.size > max_bytes {
            if out.is_empty() && min_one {
                out.push(b);
            }
            break;
        }
        total += b.size;
        out.push(b);
    }
    out
}

// ---------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------

/// `lo + index` over `[lo, hi]`.
fn pick(lo: i64, hi: i64, at: &Index) -> i64 {
    lo + at.index((hi - lo + 1) as usize) as i64
}

fn check_read(
    log: &Log,
    model: &Model,
    offset: i64,
    max_bytes: u64,
    bound: Option<i64>,
    min_one: bool,
    ctx: &str,
) {
    let what = format!("{ctx}: read({offset}, {max_bytes}, {bound:?}, {min_one})");
    let info = log
        .read(offset, max_bytes, bound, min_one)
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(
        (info.log_start_offset, info.log_end_offset),
        (model.start, model.end),
        "{what}: bounds"
    );
    let bytes = match &info.region {
        Some(region) => region.read_to_vec().unwrap(),
        None => Vec::new(),
    };
    let headers: Vec<BatchHeader> = batch::batches(&bytes)
        .map(|b| *b.unwrap().header())
        .collect();
    let total: usize = headers.iter().map(BatchHeader::size).sum();
    assert_eq!(total, bytes.len(), "{what}: whole batches only");

    // The properties a fetch relies on, checked on their own for clear failure messages.
    if let Some(first) = headers.first() {
        assert!(
            first.base_offset <= offset && offset <= first.last_offset(),
            "{what}: begins with batch {}..={}, not the one holding the offset",
            first.base_offset,
            first.last_offset()
        );
        assert!(
            bytes.len() as u64 <= max_bytes || (headers.len() == 1 && min_one),
            "{what}: {} bytes in {} batches exceed max_bytes",
            bytes.len(),
            headers.len()
        );
        if let Some(bd) = bound.filter(|&b| b < model.end) {
            assert!(
                headers.iter().all(|h| h.last_offset() < bd),
                "{what}: includes a batch reaching the upper bound"
            );
        }
    }

    // Exactly the batches (and records) the model predicts.
    let segments = log.segment_base_offsets();
    let expected = expected_read(model, &segments, offset, max_bytes, bound, min_one);
    let got: Vec<(i64, i64, u64)> = headers
        .iter()
        .map(|h| (h.base_offset, h.last_offset(), h.size() as u64))
        .collect();
    let want: Vec<(i64, i64, u64)> = expected
        .iter()
        .map(|b| (b.base, b.last(), b.size))
        .collect();
    assert_eq!(got, want, "{what}: batches (segments {segments:?})");
    let records: Vec<ModelRecord> = records_of(&bytes)
        .into_iter()
        .map(|r| ModelRecord {
            timestamp: r.timestamp,
            key: r.key,
            value: r.value,
        })
        .collect();
    let want: Vec<ModelRecord> = expected
        .iter()
        .flat_map(|b| b.records.iter().cloned())
        .collect();
    assert_eq!(records, want, "{what}: records");
}

fn check_read_spec(log: &Log, model: &Model, spec: &ReadSpec, ctx: &str) {
    let offset = pick(model.start, model.end, &spec.at);
    let bound = spec
        .bound
        .as_ref()
        .map(|b| pick(model.start, model.end + 2, b));
    check_read(log, model, offset, spec.max_bytes, bound, spec.min_one, ctx);
}

fn check_everything(log: &Log, model: &Model, rng: &mut StdRng, ctx: &str) {
    assert_eq!(log.log_end_offset(), model.end, "{ctx}: log end offset");
    assert_eq!(
        log.log_start_offset(),
        model.start,
        "{ctx}: log start offset"
    );
    let segments = log.segment_base_offsets();
    assert!(
        segments.first().is_some_and(|&s| s <= model.start)
            && segments.last().is_some_and(|&s| s <= model.end),
        "{ctx}: segments {segments:?} do not cover [{}, {}]",
        model.start,
        model.end
    );
    assert_eq!(read_all(log), model.visible(), "{ctx}: contents");
    for _ in 0..2 {
        let offset = rng.gen_range(model.start..=model.end);
        let max_bytes = rng.gen_range(0..2500);
        let bound = rng
            .gen_bool(0.3)
            .then(|| rng.gen_range(model.start..=model.end + 2));
        let min_one = rng.gen_bool(0.7);
        check_read(log, model, offset, max_bytes, bound, min_one, ctx);
    }
}

// ---------------------------------------------------------------------------------------
// Reopening
// ---------------------------------------------------------------------------------------

/// Reopens as the manager does, with its log-start and recovery-point checkpoints.
fn open_checkpointed(
    dir: &Path,
    config: &LogConfig,
    clean: bool,
    log_start: i64,
    recovery_point: i64,
) -> Arc<Log> {
    let mut opts = OpenOptions::standalone();
    opts.clean_shutdown = clean;
    opts.log_start_offset = Some(log_start);
    opts.recovery_point = recovery_point;
    Log::open(dir, tp(), config.clone(), opts).unwrap().0
}

/// Without a start checkpoint the log starts at its first segment: the model's start moves
/// down to it (records of that segment below the old start become readable again).
fn adopt_first_segment_as_start(log: &Log, model: &mut Model, ctx: &str) {
    let first = log.segment_base_offsets()[0];
    assert!(
        first <= model.start
            && (first == model.start
                || first == model.end
                || model.batches.iter().any(|b| b.base == first)),
        "{ctx}: first segment {first} is not a batch boundary at or below the start {}",
        model.start
    );
    model.start = first;
}

/// Damages the tail of the newest `.log` as `tail` says (the log is dropped); returns the
/// model batch that was cut, if any.
fn damage_tail(
    dir: &Path,
    segments: &[i64],
    model: &Model,
    tail: &Tail,
    checkpoint: bool,
) -> Option<ModelBatch> {
    let newest = *segments.last().unwrap();
    let path = dir.join(file_name(newest, "log"));
    match tail {
        Tail::Intact => None,
        Tail::Garbage(garbage) => {
            let mut data = std::fs::read(&path).unwrap();
            data.extend_from_slice(garbage);
            std::fs::write(&path, data).unwrap();
            None
        }
        Tail::Cut(at) => {
            let last = model.batches.last()?;
            if last.base < newest
                || (checkpoint && last.base < model.start && !TORN_TAIL_BELOW_LOG_START)
            {
                return None;
            }
            let data = std::fs::read(&path).unwrap();
            let len = data.len() as u64;
            assert!(
                len >= last.size,
                "newest segment shorter than its last batch"
            );
            let h = BatchHeader::parse(&data[(len - last.size) as usize..]).unwrap();
            assert_eq!(
                (h.base_offset, h.size() as u64),
                (last.base, last.size),
                "the newest segment does not end with the model's last batch"
            );
            let cut = 1 + at.index(last.size as usize) as u64;
            let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            file.set_len(len - cut).unwrap();
            Some(last.clone())
        }
        Tail::Indexes { segment, delete } => {
            let base = segments[segment.index(segments.len())];
            for (suffix, partial) in [("index", 5), ("timeindex", 7)] {
                let path = dir.join(file_name(base, suffix));
                if *delete {
                    std::fs::remove_file(&path).unwrap();
                } else {
                    let mut data = std::fs::read(&path).unwrap();
                    data.extend(std::iter::repeat_n(0x5a, partial));
                    std::fs::write(&path, data).unwrap();
                }
            }
            None
        }
    }
}

// ---------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Setup {
    segment_bytes: u64,
    index_interval: u64,
    /// segment.index.bytes as entries (few entries: rolls when the index is full).
    index_entries: Option<u64>,
    /// flush.messages (small: the recovery point moves as appends go).
    flush_messages: Option<i64>,
    /// segment.ms (short: segments also roll by time).
    segment_ms: Option<i64>,
    /// message.timestamp.type=LogAppendTime: every record gets the append's `now`.
    log_append_time: bool,
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        600u64..2000,
        0u64..300,
        proptest::option::weighted(0.25, 2u64..20),
        proptest::option::weighted(0.25, 1i64..8),
        proptest::option::weighted(0.25, 20i64..400),
        proptest::bool::weighted(0.2),
    )
        .prop_map(
            |(
                segment_bytes,
                index_interval,
                index_entries,
                flush_messages,
                segment_ms,
                log_append_time,
            )| Setup {
                segment_bytes,
                index_interval,
                index_entries,
                flush_messages,
                segment_ms,
                log_append_time,
            },
        )
}

fn run(setup: Setup, ops: Vec<Op>, seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let mut config = LogConfig::default();
    config.segment_bytes = setup.segment_bytes;
    config.index_interval_bytes = setup.index_interval;
    if let Some(n) = setup.index_entries {
        config.segment_index_bytes = 8 * n;
    }
    if let Some(n) = setup.flush_messages {
        config.flush_messages = n;
    }
    if let Some(ms) = setup.segment_ms {
        config.segment_ms = ms;
    }
    if setup.log_append_time {
        config.message_timestamp_type = TimestampType::LogAppendTime;
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut log = open(dir, config.clone());
    let mut model = Model::default();
    // Each reopen is a new leader epoch.
    let mut epoch = 0;
    for (step, op) in ops.into_iter().enumerate() {
        let ctx = format!("step {step} ({op:?})");
        let now = NOW + STEP_MS * step as i64;
        match op {
            Op::Append { codec, records } => {
                let mut b = BatchBuilder::new(codec);
                let mut recs = Vec::new();
                for r in &records {
                    let timestamp = now + r.ts_delta;
                    b.append(timestamp, r.key.as_deref(), r.value.as_deref(), &[]);
                    recs.push(ModelRecord {
                        timestamp: if setup.log_append_time {
                            now
                        } else {
                            timestamp
                        },
                        key: r.key.clone(),
                        value: r.value.clone(),
                    });
                }
                let mut bytes = b.build(0).unwrap();
                let info = log
                    .append_as_leader(&mut bytes, epoch, AppendOrigin::Client, now)
                    .unwrap();
                let n = recs.len() as i64;
                let max_timestamp = recs.iter().map(|r| r.timestamp).max().unwrap();
                let log_append_time = if setup.log_append_time { now } else { -1 };
                assert_eq!(
                    (info.first_offset, info.last_offset, info.records),
                    (model.end, model.end + n - 1, n),
                    "{ctx}: append info"
                );
                assert_eq!(
                    (info.max_timestamp, info.log_append_time, info.bytes),
                    (max_timestamp, log_append_time, bytes.len() as u64),
                    "{ctx}: append info"
                );
                model.batches.push(ModelBatch {
                    base: model.end,
                    size: bytes.len() as u64,
                    records: recs,
                });
                model.end += n;
            }
            Op::Read(spec) => check_read_spec(&log, &model, &spec, &ctx),
            Op::ReadOutOfRange { below, by } => {
                let offset = if below {
                    model.start - 1 - i64::from(by)
                } else {
                    model.end + 1 + i64::from(by)
                };
                match log.read(offset, 1 << 20, None, true) {
                    Err(StorageError::OffsetOutOfRange { .. }) => {}
                    other => panic!("{ctx}: read at {offset}: {other:?}"),
                }
            }
            Op::OffsetForTimestamp(at) => {
                let ts = NOW - 10 + at.index((STEP_MS * 90 + 60) as usize) as i64;
                assert_eq!(
                    log.offset_for_timestamp(ts).unwrap(),
                    model.offset_for_timestamp(ts),
                    "{ctx}: offset_for_timestamp({ts})"
                );
            }
            Op::Truncate(at) => {
                let offset = pick(model.start, model.end, &at);
                let new_end = log.truncate_to(offset).unwrap();
                assert_eq!(new_end, model.truncate(offset), "{ctx}: new end");
            }
            Op::Roll => log.roll().unwrap(),
            Op::Flush => log.flush().unwrap(),
            Op::AdvanceStart(at) => {
                let offset = pick(model.start, model.end, &at);
                let new_start = log.advance_log_start_offset(offset).unwrap();
                model.start = model.start.max(offset);
                assert_eq!(new_start, model.start, "{ctx}: new start");
            }
            Op::Reopen { checkpoint } => {
                log.close().unwrap();
                assert!(
                    matches!(log.roll(), Err(StorageError::Closed(_))),
                    "{ctx}: a closed log still rolls"
                );
                drop(log);
                if checkpoint {
                    log = open_checkpointed(dir, &config, true, model.start, model.end);
                } else {
                    log = open_clean(dir, config.clone(), true);
                    adopt_first_segment_as_start(&log, &mut model, &ctx);
                }
                epoch += 1;
            }
            Op::Kill { checkpoint, tail } => {
                let segments = log.segment_base_offsets();
                let recovery_point = log.recovery_point();
                drop(log);
                if let Some(cut) = damage_tail(dir, &segments, &model, &tail, checkpoint) {
                    model.batches.pop();
                    model.end = cut.base;
                    if checkpoint && model.end < model.start {
                        // Kafka: everything goes, the log restarts empty at the checkpoint.
                        model.batches.clear();
                        model.end = model.start;
                    }
                }
                if checkpoint {
                    log = open_checkpointed(dir, &config, false, model.start, recovery_point);
                } else {
                    log = open_clean(dir, config.clone(), false);
                    adopt_first_segment_as_start(&log, &mut model, &ctx);
                }
                epoch += 1;
            }
        }
        check_everything(&log, &model, &mut rng, &ctx);
    }
    log.close().unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn the_log_behaves_like_the_model(
        setup in setup(),
        ops in vec(op(), 30..80),
        seed in any::<u64>(),
    ) {
        run(setup, ops, seed);
    }
}
