//! Helpers shared by the storage integration tests.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use strom_storage::{Log, LogConfig, OpenOptions};
use strom_types::batch::{self, RecordBatch};
use strom_types::compression::Compression;
use strom_types::record::BatchBuilder;
use strom_types::TopicPartition;

/// A record as a test sees it: offset, timestamp, key, value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rec {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
}

/// A producer-style batch (base offset 0) of `n` records `key-i`/`value`, timestamps `ts`.
pub fn batch(n: usize, value_len: usize, ts: i64) -> Vec<u8> {
    batch_with(Compression::None, n, value_len, ts, "k")
}

pub fn batch_with(
    c: Compression,
    n: usize,
    value_len: usize,
    ts: i64,
    key_prefix: &str,
) -> Vec<u8> {
    let mut b = BatchBuilder::new(c);
    let value = vec![b'v'; value_len];
    for i in 0..n {
        let key = format!("{key_prefix}-{i}");
        b.append(ts, Some(key.as_bytes()), Some(&value), &[]);
    }
    b.build(0).unwrap()
}

/// A batch of explicit (key, value) records, all at `ts`.
pub fn kv_batch(records: &[(&str, Option<&str>)], ts: i64) -> Vec<u8> {
    let mut b = BatchBuilder::new(Compression::None);
    for (k, v) in records {
        b.append(ts, Some(k.as_bytes()), v.map(str::as_bytes), &[]);
    }
    b.build(0).unwrap()
}

pub fn tp() -> TopicPartition {
    TopicPartition::new("test", 0)
}

pub fn open(dir: &Path, config: LogConfig) -> Arc<Log> {
    Log::open(dir, tp(), config, OpenOptions::standalone())
        .unwrap()
        .0
}

pub fn open_clean(dir: &Path, config: LogConfig, clean: bool) -> Arc<Log> {
    let mut opts = OpenOptions::standalone();
    opts.clean_shutdown = clean;
    Log::open(dir, tp(), config, opts).unwrap().0
}

/// Every record of `bytes` (whole batches).
pub fn records_of(bytes: &[u8]) -> Vec<Rec> {
    let mut out = Vec::new();
    for b in batch::batches(bytes) {
        let b: RecordBatch<'_> = b.unwrap();
        b.validate_crc().unwrap();
        let h = *b.header();
        let records = b.records(1 << 30).unwrap();
        for r in records.iter() {
            let r = r.unwrap();
            out.push(Rec {
                offset: h.base_offset + i64::from(r.offset_delta),
                timestamp: if h.timestamp_type() == batch::TimestampType::LogAppendTime {
                    h.max_timestamp
                } else {
                    h.base_timestamp + r.timestamp_delta
                },
                key: r.key.map(<[u8]>::to_vec),
                value: r.value.map(<[u8]>::to_vec),
            });
        }
    }
    out
}

/// Calls `f` with each region of whole batches of the log from its start, and the offset
/// the read asked for.
pub fn for_each_region(log: &Log, mut f: impl FnMut(i64, &[u8])) {
    let mut offset = log.log_start_offset();
    loop {
        let info = log.read(offset, 1 << 20, None, true).unwrap();
        let Some(region) = info.region else { break };
        let bytes = region.read_to_vec().unwrap();
        f(offset, &bytes);
        offset = batch::batches(&bytes)
            .map(|b| b.unwrap().header().next_offset())
            .last()
            .unwrap();
    }
}

/// Reads the whole log from its start, batch region by batch region.
pub fn read_all(log: &Log) -> Vec<Rec> {
    let mut out = Vec::new();
    for_each_region(log, |offset, bytes| {
        out.extend(records_of(bytes).into_iter().filter(|r| r.offset >= offset));
    });
    out
}
