//! What Kafka's LogValidator does for an append from a producer: every batch is checked
//! (sizes, CRC, the records inside, control batches, null keys on compacted topics,
//! timestamp bounds) before anything is written, and a topic's `compression.type` may ask
//! for the batches to be rewritten in another codec. The refusals that concern single
//! records name them by index (KIP-467); finding them is work done on the error path only.

use strom_types::batch::{self, RecordBatch, TimestampType};
use strom_types::record::validate_producer_batch;

use crate::config::LogConfig;
use crate::error::{Result, StorageError};
use crate::log::AppendOrigin;
use crate::segment::MAX_DECOMPRESSED;

/// One batch of an append buffer, validated.
pub(crate) struct Validated {
    pub size: usize,
    pub count: i32,
    pub max_timestamp: i64,
    pub header_max_timestamp: i64,
}

pub(crate) fn validate_batches(
    records: &[u8],
    config: &LogConfig,
    origin: AppendOrigin,
    now_ms: i64,
) -> Result<Vec<Validated>> {
    let mut out = Vec::with_capacity(1);
    for (index, b) in batch::batches(records).enumerate() {
        let invalid = |source| StorageError::InvalidBatch { index, source };
        let b: RecordBatch<'_> = match b {
            Ok(b) => b,
            Err(e) => return Err(invalid(e)),
        };
        if b.size() > config.max_message_bytes {
            return Err(StorageError::BatchTooLarge {
                size: b.size(),
                limit: config.max_message_bytes,
            });
        }
        b.validate_crc().map_err(invalid)?;
        let h = *b.header();
        if origin == AppendOrigin::Client && h.is_control() {
            return Err(StorageError::PolicyViolation(
                "clients may not write control batches",
            ));
        }
        let limit = decompression_limit(config);
        let summary = validate_producer_batch(&b, limit).map_err(invalid)?;
        if config.cleanup_policy.compact && summary.has_null_key {
            // The error path alone walks the records again, to name each one (KIP-467).
            let records = offending_records(&b, index, limit, |r, _| r.key.is_none())?;
            return Err(StorageError::NullKeyOnCompactedTopic { records });
        }
        if config.message_timestamp_type == TimestampType::CreateTime {
            let earliest = now_ms.saturating_sub(config.message_timestamp_before_max_ms);
            let latest = now_ms.saturating_add(config.message_timestamp_after_max_ms);
            let out_of_range = |ts: i64| ts < earliest || ts > latest;
            if out_of_range(summary.min_timestamp) || out_of_range(summary.max_timestamp) {
                let base = h.base_timestamp;
                let records = offending_records(&b, index, limit, |_, delta| {
                    out_of_range(base.saturating_add(delta))
                })?;
                let timestamp = if out_of_range(summary.min_timestamp) {
                    summary.min_timestamp
                } else {
                    summary.max_timestamp
                };
                return Err(StorageError::InvalidTimestamp {
                    timestamp,
                    now: now_ms,
                    records,
                });
            }
        }
        out.push(Validated {
            size: b.size(),
            count: summary.count,
            max_timestamp: summary.max_timestamp,
            header_max_timestamp: h.max_timestamp,
        });
    }
    let total: usize = out.iter().map(|v| v.size).sum();
    if out.is_empty() || total != records.len() {
        return Err(StorageError::PolicyViolation("no record batches to append"));
    }
    Ok(out)
}

/// The batches of `records` rewritten in the topic's `compression.type`, or `None` when
/// every batch already has it (or the topic keeps the producer's codec).
pub(crate) fn recompress_for(records: &[u8], config: &LogConfig) -> Result<Option<Vec<u8>>> {
    let Some(target) = config.compression_type else {
        return Ok(None);
    };
    let codec_of = |b: &RecordBatch<'_>| b.header().compression();
    let all_match =
        batch::batches(records).all(|b| b.is_ok_and(|b| codec_of(&b).is_ok_and(|c| c == target)));
    if all_match {
        return Ok(None);
    }
    let limit = decompression_limit(config);
    let mut out = Vec::with_capacity(records.len());
    for (index, b) in batch::batches(records).enumerate() {
        let invalid = |source| StorageError::InvalidBatch { index, source };
        let b = b.map_err(invalid)?;
        if codec_of(&b).map_err(|e| invalid(e.into()))? == target {
            out.extend_from_slice(b.as_bytes());
        } else {
            out.extend_from_slice(&batch::recompress(&b, target, limit).map_err(invalid)?);
        }
    }
    Ok(Some(out))
}

/// How far a produced batch may decompress: far above any real batch of the topic, and
/// bounded against decompression bombs.
fn decompression_limit(config: &LogConfig) -> usize {
    config
        .max_message_bytes
        .saturating_mul(64)
        .clamp(16 << 20, MAX_DECOMPRESSED)
}

/// The indexes, within their batch, of the records `refused` picks (given the record and
/// its timestamp delta). Only on the path that refuses a batch, never on a good append.
fn offending_records(
    b: &RecordBatch<'_>,
    batch_index: usize,
    max_decompressed: usize,
    refused: impl Fn(&strom_types::record::Record<'_>, i64) -> bool,
) -> Result<Vec<i32>> {
    let invalid = |source| StorageError::InvalidBatch {
        index: batch_index,
        source,
    };
    let records = b.records(max_decompressed).map_err(invalid)?;
    let mut out = Vec::new();
    for (index, record) in records.iter().enumerate() {
        let record = record.map_err(|e| invalid(e.into()))?;
        if refused(&record, record.timestamp_delta) {
            out.push(index as i32);
        }
    }
    Ok(out)
}
