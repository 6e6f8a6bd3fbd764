//! Kafka's v2 record batch ("magic 2"), the unit Strom stores and serves byte for byte.
//!
//! Layout (big-endian), from the start of the batch:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | base offset |
//! | 8 | 4 | batch length (bytes after this field) |
//! | 12 | 4 | partition leader epoch |
//! | 16 | 1 | magic (2) |
//! | 17 | 4 | CRC-32C of everything from attributes to the end |
//! | 21 | 2 | attributes: codec (bits 0-2), timestamp type (3), transactional (4), control (5), delete horizon (6) |
//! | 23 | 4 | last offset delta |
//! | 27 | 8 | base timestamp |
//! | 35 | 8 | max timestamp |
//! | 43 | 8 | producer id |
//! | 51 | 2 | producer epoch |
//! | 53 | 4 | base sequence |
//! | 57 | 4 | record count |
//! | 61 | … | records, compressed as a whole when a codec is set |
//!
//! The base offset and the leader epoch are outside the CRC, so a broker assigns them in
//! place; LogAppendTime changes the attributes and max timestamp, so the CRC is recomputed.

use crate::compression::{self, Compression, CompressionError};
use crate::record::{RecordError, Records};

/// Bytes before the batch length field counts: base offset and the length itself.
pub const LOG_OVERHEAD: usize = 12;
/// Size of the fixed v2 batch header, up to the first record.
pub const HEADER_LEN: usize = 61;
/// The only record format Strom accepts (Kafka 4 dropped v0 and v1).
pub const MAGIC_V2: i8 = 2;
/// Kafka's "no timestamp".
pub const NO_TIMESTAMP: i64 = -1;

const LENGTH_OFFSET: usize = 8;
const LEADER_EPOCH_OFFSET: usize = 12;
const MAGIC_OFFSET: usize = 16;
const CRC_OFFSET: usize = 17;
const ATTRIBUTES_OFFSET: usize = 21;
const LAST_OFFSET_DELTA_OFFSET: usize = 23;
const BASE_TIMESTAMP_OFFSET: usize = 27;
const MAX_TIMESTAMP_OFFSET: usize = 35;
const PRODUCER_ID_OFFSET: usize = 43;
const PRODUCER_EPOCH_OFFSET: usize = 51;
const BASE_SEQUENCE_OFFSET: usize = 53;
const RECORDS_COUNT_OFFSET: usize = 57;

const TIMESTAMP_TYPE_BIT: i16 = 0x08;
const TRANSACTIONAL_BIT: i16 = 0x10;
const CONTROL_BIT: i16 = 0x20;
const DELETE_HORIZON_BIT: i16 = 0x40;

/// Whose clock a batch's timestamps are (`message.timestamp.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimestampType {
    /// Set by the producer.
    CreateTime,
    /// Set by the broker when it appended the batch.
    LogAppendTime,
}

impl TimestampType {
    /// Kafka's config value: `CreateTime` or `LogAppendTime`.
    pub fn name(self) -> &'static str {
        match self {
            TimestampType::CreateTime => "CreateTime",
            TimestampType::LogAppendTime => "LogAppendTime",
        }
    }
}

impl std::str::FromStr for TimestampType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "CreateTime" => Ok(TimestampType::CreateTime),
            "LogAppendTime" => Ok(TimestampType::LogAppendTime),
            other => Err(format!(
                "'{other}' is not a timestamp type (CreateTime or LogAppendTime)"
            )),
        }
    }
}

/// Why bytes are not a valid record batch. Each names the reason Kafka's broker would give.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// Fewer bytes than the header or the declared length needs.
    #[error("record batch is truncated: needs {needed} bytes, {available} available")]
    Truncated {
        /// Bytes the batch needs.
        needed: usize,
        /// Bytes there are.
        available: usize,
    },
    /// The batch length field is smaller than a header or negative.
    #[error("record batch length {0} is invalid")]
    InvalidLength(i32),
    /// A magic byte other than 2.
    #[error("record batch magic {0} is not supported (only v2)")]
    UnsupportedMagic(i8),
    /// The stored CRC does not match the bytes.
    #[error("record batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch {
        /// CRC in the header.
        stored: u32,
        /// CRC of the bytes.
        computed: u32,
    },
    /// The records section could not be decompressed.
    #[error("record batch could not be decompressed")]
    Compression(#[from] CompressionError),
    /// A record inside is malformed or inconsistent with the header.
    #[error("invalid record in batch")]
    Record(#[from] RecordError),
}

/// The fixed header of a v2 record batch, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Bytes after the length field.
    pub batch_length: i32,
    /// Epoch of the leader that appended the batch.
    pub partition_leader_epoch: i32,
    /// Format version (2).
    pub magic: i8,
    /// CRC-32C over attributes..end.
    pub crc: u32,
    /// Codec, timestamp type and flags.
    pub attributes: i16,
    /// Last record's offset minus the base offset.
    pub last_offset_delta: i32,
    /// First record's timestamp (or the delete horizon, see [`BatchHeader::has_delete_horizon`]).
    pub base_timestamp: i64,
    /// Largest timestamp in the batch (the append time for LogAppendTime).
    pub max_timestamp: i64,
    /// Idempotent/transactional producer id, or -1.
    pub producer_id: i64,
    /// Producer epoch, or -1.
    pub producer_epoch: i16,
    /// Sequence of the first record, or -1.
    pub base_sequence: i32,
    /// Number of records.
    pub records_count: i32,
}

impl BatchHeader {
    /// Decodes the header at the start of `buf`, which needs at least [`HEADER_LEN`] bytes.
    /// Checks the length field and the magic byte, not the CRC.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        if buf.len() < HEADER_LEN {
            return Err(BatchError::Truncated {
                needed: HEADER_LEN,
                available: buf.len(),
            });
        }
        let batch_length = be_i32(buf, LENGTH_OFFSET);
        if batch_length < (HEADER_LEN - LOG_OVERHEAD) as i32 {
            return Err(BatchError::InvalidLength(batch_length));
        }
        let magic = buf[MAGIC_OFFSET] as i8;
        if magic != MAGIC_V2 {
            return Err(BatchError::UnsupportedMagic(magic));
        }
        Ok(BatchHeader {
            base_offset: be_i64(buf, 0),
            batch_length,
            partition_leader_epoch: be_i32(buf, LEADER_EPOCH_OFFSET),
            magic,
            crc: be_i32(buf, CRC_OFFSET) as u32,
            attributes: be_i16(buf, ATTRIBUTES_OFFSET),
            last_offset_delta: be_i32(buf, LAST_OFFSET_DELTA_OFFSET),
            base_timestamp: be_i64(buf, BASE_TIMESTAMP_OFFSET),
            max_timestamp: be_i64(buf, MAX_TIMESTAMP_OFFSET),
            producer_id: be_i64(buf, PRODUCER_ID_OFFSET),
            producer_epoch: be_i16(buf, PRODUCER_EPOCH_OFFSET),
            base_sequence: be_i32(buf, BASE_SEQUENCE_OFFSET),
            records_count: be_i32(buf, RECORDS_COUNT_OFFSET),
        })
    }

    /// Total bytes of the batch including the offset and length fields.
    pub fn size(&self) -> usize {
        self.batch_length as usize + LOG_OVERHEAD
    }

    /// Offset of the last record.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// The offset after this batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }

    /// The codec of the records section.
    pub fn compression(&self) -> Result<Compression, CompressionError> {
        Compression::from_attributes(self.attributes)
    }

    /// CreateTime or LogAppendTime.
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// Part of a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    /// A control batch (transaction marker), never from a client.
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }

    /// The base timestamp field holds the delete horizon set by the log cleaner (KIP-534).
    pub fn has_delete_horizon(&self) -> bool {
        self.attributes & DELETE_HORIZON_BIT != 0
    }

    /// The delete horizon in ms, when the cleaner has set one.
    pub fn delete_horizon_ms(&self) -> Option<i64> {
        self.has_delete_horizon().then_some(self.base_timestamp)
    }
}

/// One complete batch, borrowed from a buffer: header decoded, CRC not yet checked.
#[derive(Debug, Clone, Copy)]
pub struct RecordBatch<'a> {
    bytes: &'a [u8],
    header: BatchHeader,
}

impl<'a> RecordBatch<'a> {
    /// The batch at the start of `buf`; `buf` may continue past it.
    pub fn parse_prefix(buf: &'a [u8]) -> Result<RecordBatch<'a>, BatchError> {
        let header = BatchHeader::parse(buf)?;
        let size = header.size();
        if buf.len() < size {
            return Err(BatchError::Truncated {
                needed: size,
                available: buf.len(),
            });
        }
        Ok(RecordBatch {
            bytes: &buf[..size],
            header,
        })
    }

    /// The decoded header.
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// The whole batch, as stored.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Total size in bytes.
    pub fn size(&self) -> usize {
        self.bytes.len()
    }

    /// Checks the stored CRC-32C against the bytes.
    pub fn validate_crc(&self) -> Result<(), BatchError> {
        let computed = compute_crc(self.bytes);
        if computed != self.header.crc {
            return Err(BatchError::CrcMismatch {
                stored: self.header.crc,
                computed,
            });
        }
        Ok(())
    }

    /// The records section exactly as stored (compressed when the batch has a codec).
    pub fn raw_records(&self) -> &'a [u8] {
        &self.bytes[HEADER_LEN..]
    }

    /// The records, decompressed when needed (output capped at `max_decompressed` bytes).
    pub fn records(&self, max_decompressed: usize) -> Result<Records<'a>, BatchError> {
        let codec = self.header.compression()?;
        let count = self.header.records_count;
        if codec == Compression::None {
            Ok(Records::borrowed(self.raw_records(), count))
        } else {
            let data = compression::decompress(codec, self.raw_records(), max_decompressed)?;
            Ok(Records::owned(data, count))
        }
    }

    /// Calls `f` with each record and its absolute offset, in order, decompressing first;
    /// stops at the first error (a malformed record, or one `f` returns).
    pub fn try_for_each_record<E: From<BatchError>>(
        &self,
        max_decompressed: usize,
        mut f: impl FnMut(i64, crate::record::Record<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let records = self.records(max_decompressed)?;
        for r in records.iter() {
            let r = r.map_err(|e| E::from(BatchError::from(e)))?;
            f(self.header.base_offset + i64::from(r.offset_delta), r)?;
        }
        Ok(())
    }
}

/// Iterates over the complete batches in `buf`, which must hold only whole, well-formed batches.
pub fn batches(buf: &[u8]) -> Batches<'_> {
    Batches { rest: buf }
}

/// Iterator returned by [`batches`]; yields an error once and stops at the first malformed batch.
pub struct Batches<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Batches<'a> {
    type Item = Result<RecordBatch<'a>, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        match RecordBatch::parse_prefix(self.rest) {
            Ok(batch) => {
                self.rest = &self.rest[batch.size()..];
                Some(Ok(batch))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

/// The CRC-32C a v2 batch carries: over attributes to the end.
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..])
}

/// Writes the base offset of the batch at the start of `batch` (outside the CRC).
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Writes the partition leader epoch (outside the CRC).
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[LEADER_EPOCH_OFFSET..LEADER_EPOCH_OFFSET + 4].copy_from_slice(&epoch.to_be_bytes());
}

/// Sets the timestamp type and max timestamp, and recomputes the CRC when anything changed.
/// Used for LogAppendTime and to correct a producer's max timestamp.
pub fn set_max_timestamp(batch: &mut [u8], timestamp_type: TimestampType, max_timestamp: i64) {
    let attributes = be_i16(batch, ATTRIBUTES_OFFSET);
    let new_attributes = match timestamp_type {
        TimestampType::CreateTime => attributes & !TIMESTAMP_TYPE_BIT,
        TimestampType::LogAppendTime => attributes | TIMESTAMP_TYPE_BIT,
    };
    if new_attributes == attributes && be_i64(batch, MAX_TIMESTAMP_OFFSET) == max_timestamp {
        return;
    }
    batch[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&new_attributes.to_be_bytes());
    batch[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8]
        .copy_from_slice(&max_timestamp.to_be_bytes());
    let crc = compute_crc(batch);
    batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Writes a complete v2 header for `records` (already compressed if `attributes` says so)
/// into a new buffer, with the CRC computed.
#[allow(clippy::too_many_arguments)]
pub fn encode_batch(
    base_offset: i64,
    partition_leader_epoch: i32,
    attributes: i16,
    last_offset_delta: i32,
    base_timestamp: i64,
    max_timestamp: i64,
    producer: (i64, i16, i32),
    records_count: i32,
    records: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + records.len());
    out.extend_from_slice(&base_offset.to_be_bytes());
    let length = (HEADER_LEN - LOG_OVERHEAD + records.len()) as i32;
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(&partition_leader_epoch.to_be_bytes());
    out.push(MAGIC_V2 as u8);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&attributes.to_be_bytes());
    out.extend_from_slice(&last_offset_delta.to_be_bytes());
    out.extend_from_slice(&base_timestamp.to_be_bytes());
    out.extend_from_slice(&max_timestamp.to_be_bytes());
    out.extend_from_slice(&producer.0.to_be_bytes());
    out.extend_from_slice(&producer.1.to_be_bytes());
    out.extend_from_slice(&producer.2.to_be_bytes());
    out.extend_from_slice(&records_count.to_be_bytes());
    out.extend_from_slice(records);
    let crc = compute_crc(&out);
    out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    out
}

/// The same batch with its records compressed by `to` instead (Kafka's topic-level
/// `compression.type`): header fields, flags and the records themselves are kept, only the
/// codec bits, the length and the CRC change. Decompression is capped at `max_decompressed`.
pub fn recompress(
    batch: &RecordBatch<'_>,
    to: Compression,
    max_decompressed: usize,
) -> Result<Vec<u8>, BatchError> {
    let h = batch.header();
    let raw = match h.compression()? {
        Compression::None => std::borrow::Cow::Borrowed(batch.raw_records()),
        from => std::borrow::Cow::Owned(compression::decompress(
            from,
            batch.raw_records(),
            max_decompressed,
        )?),
    };
    let records = compression::compress(to, &raw)?;
    let attributes = (h.attributes & !CODEC_BITS) | to.id();
    Ok(encode_batch(
        h.base_offset,
        h.partition_leader_epoch,
        attributes,
        h.last_offset_delta,
        h.base_timestamp,
        h.max_timestamp,
        (h.producer_id, h.producer_epoch, h.base_sequence),
        h.records_count,
        &records,
    ))
}

/// The codec's bits of the attributes.
const CODEC_BITS: i16 = 0x7;

/// Attribute bits for a batch.
pub fn attributes(
    compression: Compression,
    timestamp_type: TimestampType,
    transactional: bool,
    control: bool,
    delete_horizon: bool,
) -> i16 {
    let mut a = compression.id();
    if timestamp_type == TimestampType::LogAppendTime {
        a |= TIMESTAMP_TYPE_BIT;
    }
    if transactional {
        a |= TRANSACTIONAL_BIT;
    }
    if control {
        a |= CONTROL_BIT;
    }
    if delete_horizon {
        a |= DELETE_HORIZON_BIT;
    }
    a
}

#[inline]
pub(crate) fn be_i16(buf: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([buf[at], buf[at + 1]])
}

#[inline]
pub(crate) fn be_i32(buf: &[u8], at: usize) -> i32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&buf[at..at + 4]);
    i32::from_be_bytes(b)
}

#[inline]
pub(crate) fn be_i64(buf: &[u8], at: usize) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    i64::from_be_bytes(b)
}
