//! The records inside a v2 batch: a validating, zero-copy iterator and a batch builder.
//!
//! Record layout (after decompression): `length: varint`, then `attributes: i8`,
//! `timestampDelta: varlong`, `offsetDelta: varint`, `key: varint-length bytes (-1 = null)`,
//! `value: varint-length bytes (-1 = null)`, `headers: varint count` of
//! `(key: varint-length string, value: varint-length bytes or null)`.

use std::borrow::Cow;

use crate::batch::{self, BatchError, RecordBatch, TimestampType, NO_TIMESTAMP};
use crate::compression::{self, Compression, CompressionError};
use crate::varint::{read_varint, read_varlong, write_varint, write_varlong, VarintError};

/// What is wrong with a record inside a batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// A record's bytes do not parse.
    #[error("record {index} is malformed: {reason}")]
    Malformed {
        /// Position of the record in the batch, from 0.
        index: i32,
        /// What did not parse.
        reason: &'static str,
    },
    /// The header's record count differs from the records present.
    #[error("batch declares {declared} records but holds {actual}")]
    CountMismatch {
        /// Count in the header.
        declared: i32,
        /// Records found.
        actual: i32,
    },
    /// Bytes follow the last declared record.
    #[error("{0} bytes follow the last record")]
    TrailingBytes(usize),
    /// Inner offsets must be 0, 1, 2… in a batch from a producer.
    #[error("record {index} has offset delta {delta}, expected {index}")]
    NonSequentialOffset {
        /// Position of the record.
        index: i32,
        /// Offset delta it carries.
        delta: i32,
    },
    /// The header's last offset delta does not match the record count.
    #[error("last offset delta {last_offset_delta} does not match record count {count}")]
    OffsetRangeMismatch {
        /// From the header.
        last_offset_delta: i32,
        /// From the header.
        count: i32,
    },
}

/// One record, borrowed from its (decompressed) batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// Unused by Kafka today.
    pub attributes: i8,
    /// Timestamp minus the batch's base timestamp.
    pub timestamp_delta: i64,
    /// Offset minus the batch's base offset.
    pub offset_delta: i32,
    /// Key, `None` for a null key.
    pub key: Option<&'a [u8]>,
    /// Value, `None` for a null value (a tombstone).
    pub value: Option<&'a [u8]>,
    headers_raw: &'a [u8],
    headers_count: i32,
}

impl<'a> Record<'a> {
    /// The record's headers, in order (duplicate keys kept, as KIP-82 allows).
    pub fn headers(&self) -> Headers<'a> {
        Headers {
            rest: self.headers_raw,
            remaining: self.headers_count,
        }
    }

    /// Number of headers.
    pub fn headers_count(&self) -> i32 {
        self.headers_count
    }
}

/// Iterator over a record's headers: `(key, value)`.
pub struct Headers<'a> {
    rest: &'a [u8],
    remaining: i32,
}

impl<'a> Iterator for Headers<'a> {
    type Item = (&'a [u8], Option<&'a [u8]>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining <= 0 {
            return None;
        }
        self.remaining -= 1;
        // Validated when the record was parsed, so a failure here cannot happen; stop quietly.
        let mut cur = Cursor::new(self.rest, 0);
        let key = cur.bytes().ok()??;
        let value = cur.bytes().ok()?;
        self.rest = &self.rest[cur.pos..];
        Some((key, value))
    }
}

/// The records section of a batch, borrowed when uncompressed, owned when decompressed.
pub struct Records<'a> {
    data: Cow<'a, [u8]>,
    count: i32,
}

impl<'a> Records<'a> {
    pub(crate) fn borrowed(data: &'a [u8], count: i32) -> Self {
        Records {
            data: Cow::Borrowed(data),
            count,
        }
    }

    pub(crate) fn owned(data: Vec<u8>, count: i32) -> Self {
        Records {
            data: Cow::Owned(data),
            count,
        }
    }

    /// Iterates the records; each item is an error at the first malformed record, after which
    /// iteration stops. After the last declared record, trailing bytes are reported as an error.
    pub fn iter(&self) -> RecordIter<'_> {
        RecordIter {
            data: &self.data,
            pos: 0,
            index: 0,
            count: self.count,
            failed: false,
        }
    }

    /// Bytes of the (decompressed) records section.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when the records section is empty.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// Iterator returned by [`Records::iter`].
pub struct RecordIter<'a> {
    data: &'a [u8],
    pos: usize,
    index: i32,
    count: i32,
    failed: bool,
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<Record<'a>, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if self.index >= self.count.max(0) {
            if self.pos < self.data.len() {
                self.failed = true;
                return Some(Err(RecordError::TrailingBytes(self.data.len() - self.pos)));
            }
            return None;
        }
        if self.pos >= self.data.len() {
            self.failed = true;
            return Some(Err(RecordError::CountMismatch {
                declared: self.count,
                actual: self.index,
            }));
        }
        match parse_record(self.data, self.pos, self.index) {
            Ok((record, next)) => {
                self.pos = next;
                self.index += 1;
                Some(Ok(record))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(buf: &'a [u8], pos: usize) -> Self {
        Cursor { buf, pos }
    }

    fn varint(&mut self) -> Result<i32, VarintError> {
        let (v, n) = read_varint(&self.buf[self.pos..])?;
        self.pos += n;
        Ok(v)
    }

    fn varlong(&mut self) -> Result<i64, VarintError> {
        let (v, n) = read_varlong(&self.buf[self.pos..])?;
        self.pos += n;
        Ok(v)
    }

    /// Varint-length-prefixed bytes, -1 = null. `Err(())` when out of bounds.
    fn bytes(&mut self) -> Result<Option<&'a [u8]>, ()> {
        let len = self.varint().map_err(|_| ())?;
        if len < 0 {
            return if len == -1 { Ok(None) } else { Err(()) };
        }
        let len = len as usize;
        if self.buf.len() - self.pos < len {
            return Err(());
        }
        let out = &self.buf[self.pos..self.pos + len];
        self.pos += len;
        Ok(Some(out))
    }
}

fn parse_record(data: &[u8], start: usize, index: i32) -> Result<(Record<'_>, usize), RecordError> {
    let bad = |reason| RecordError::Malformed { index, reason };
    let (length, used) = read_varint(&data[start..]).map_err(|_| bad("bad length varint"))?;
    if length < 1 {
        return Err(bad("record length is not positive"));
    }
    let body_start = start + used;
    let end = body_start
        .checked_add(length as usize)
        .filter(|&e| e <= data.len())
        .ok_or_else(|| bad("record length runs past the batch"))?;
    let body = &data[..end];
    let attributes = data[body_start] as i8;
    let mut cur = Cursor::new(body, body_start + 1);
    let timestamp_delta = cur.varlong().map_err(|_| bad("bad timestamp delta"))?;
    let offset_delta = cur.varint().map_err(|_| bad("bad offset delta"))?;
    let key = cur.bytes().map_err(|_| bad("bad key length"))?;
    let value = cur.bytes().map_err(|_| bad("bad value length"))?;
    let headers_count = cur.varint().map_err(|_| bad("bad header count"))?;
    if headers_count < 0 {
        return Err(bad("negative header count"));
    }
    let headers_start = cur.pos;
    for _ in 0..headers_count {
        match cur.bytes() {
            Ok(Some(_)) => {}
            Ok(None) => return Err(bad("null header key")),
            Err(()) => return Err(bad("bad header key")),
        }
        cur.bytes().map_err(|_| bad("bad header value"))?;
    }
    if cur.pos != end {
        return Err(bad("record length does not match its fields"));
    }
    Ok((
        Record {
            attributes,
            timestamp_delta,
            offset_delta,
            key,
            value,
            headers_raw: &body[headers_start..end],
            headers_count,
        },
        end,
    ))
}

/// What validating a produced batch learned about its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordsSummary {
    /// Records in the batch.
    pub count: i32,
    /// Smallest record timestamp.
    pub min_timestamp: i64,
    /// Largest record timestamp.
    pub max_timestamp: i64,
    /// Offset delta of the first record with the largest timestamp.
    pub max_timestamp_offset_delta: i32,
    /// Some record has a null key (refused by compacted topics).
    pub has_null_key: bool,
}

/// Validates every record of a batch from a producer as Kafka's broker does: the records parse
/// exactly, their count matches the header, and their offset deltas run 0, 1, 2….
/// Compressed batches are decompressed (at most `max_decompressed` bytes) to check them.
pub fn validate_producer_batch(
    batch: &RecordBatch<'_>,
    max_decompressed: usize,
) -> Result<RecordsSummary, BatchError> {
    let header = batch.header();
    if header.records_count < 1 || header.last_offset_delta != header.records_count - 1 {
        return Err(RecordError::OffsetRangeMismatch {
            last_offset_delta: header.last_offset_delta,
            count: header.records_count,
        }
        .into());
    }
    let records = batch.records(max_decompressed)?;
    let mut summary = RecordsSummary {
        count: 0,
        min_timestamp: i64::MAX,
        max_timestamp: NO_TIMESTAMP,
        max_timestamp_offset_delta: 0,
        has_null_key: false,
    };
    for (index, record) in records.iter().enumerate() {
        let record = record?;
        let index = index as i32;
        if record.offset_delta != index {
            return Err(RecordError::NonSequentialOffset {
                index,
                delta: record.offset_delta,
            }
            .into());
        }
        let ts = header.base_timestamp.saturating_add(record.timestamp_delta);
        if ts > summary.max_timestamp {
            summary.max_timestamp = ts;
            summary.max_timestamp_offset_delta = index;
        }
        summary.min_timestamp = summary.min_timestamp.min(ts);
        summary.has_null_key |= record.key.is_none();
        summary.count += 1;
    }
    Ok(summary)
}

/// Builds a v2 batch record by record (tests, the log cleaner, later the client).
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    compression: Compression,
    timestamp_type: TimestampType,
    partition_leader_epoch: i32,
    producer: (i64, i16, i32),
    transactional: bool,
    control: bool,
    delete_horizon_ms: Option<i64>,
    base_timestamp: Option<i64>,
    max_timestamp: i64,
    last_offset_delta: i32,
    count: i32,
    records: Vec<u8>,
    scratch: Vec<u8>,
}

impl BatchBuilder {
    /// An empty batch with the given codec, CreateTime, no producer id.
    pub fn new(compression: Compression) -> Self {
        BatchBuilder {
            compression,
            timestamp_type: TimestampType::CreateTime,
            partition_leader_epoch: -1,
            producer: (-1, -1, -1),
            transactional: false,
            control: false,
            delete_horizon_ms: None,
            base_timestamp: None,
            max_timestamp: NO_TIMESTAMP,
            last_offset_delta: -1,
            count: 0,
            records: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// Sets the timestamp type written in the attributes.
    pub fn timestamp_type(mut self, t: TimestampType) -> Self {
        self.timestamp_type = t;
        self
    }

    /// Sets producer id, epoch and base sequence.
    pub fn producer(mut self, id: i64, epoch: i16, base_sequence: i32) -> Self {
        self.producer = (id, epoch, base_sequence);
        self
    }

    /// Marks the batch transactional.
    pub fn transactional(mut self, yes: bool) -> Self {
        self.transactional = yes;
        self
    }

    /// Marks the batch as a control batch.
    pub fn control(mut self, yes: bool) -> Self {
        self.control = yes;
        self
    }

    /// Sets the partition leader epoch.
    pub fn partition_leader_epoch(mut self, epoch: i32) -> Self {
        self.partition_leader_epoch = epoch;
        self
    }

    /// Stores a delete horizon (KIP-534) in the base timestamp; must be set before any append.
    pub fn delete_horizon_ms(mut self, horizon: i64) -> Self {
        self.delete_horizon_ms = Some(horizon);
        self.base_timestamp = Some(horizon);
        self
    }

    /// Appends the next record with the next offset delta.
    pub fn append(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&[u8], Option<&[u8]>)],
    ) {
        let delta = self.last_offset_delta + 1;
        self.append_with_offset_delta(delta, timestamp, key, value, headers);
    }

    /// Appends a record at an explicit offset delta (greater than the previous one; gaps
    /// allowed, as in compacted logs).
    pub fn append_with_offset_delta(
        &mut self,
        offset_delta: i32,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&[u8], Option<&[u8]>)],
    ) {
        let base = *self.base_timestamp.get_or_insert(timestamp);
        let body = &mut self.scratch;
        body.clear();
        body.push(0);
        write_varlong(body, timestamp - base);
        write_varint(body, offset_delta);
        write_bytes(body, key);
        write_bytes(body, value);
        write_varint(body, headers.len() as i32);
        for (k, v) in headers {
            write_bytes(body, Some(k));
            write_bytes(body, *v);
        }
        write_varint(&mut self.records, body.len() as i32);
        self.records.extend_from_slice(body);
        self.max_timestamp = self.max_timestamp.max(timestamp);
        self.last_offset_delta = offset_delta;
        self.count += 1;
    }

    /// Records appended so far.
    pub fn len(&self) -> i32 {
        self.count
    }

    /// True when no record was appended.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Uncompressed size of the records so far, plus the header.
    pub fn estimated_size(&self) -> usize {
        batch::HEADER_LEN + self.records.len()
    }

    /// Encodes the batch at `base_offset`, compressing the records.
    pub fn build(&self, base_offset: i64) -> Result<Vec<u8>, CompressionError> {
        let compressed;
        let records: &[u8] = if self.compression == Compression::None {
            &self.records
        } else {
            compressed = compression::compress(self.compression, &self.records)?;
            &compressed
        };
        let attributes = batch::attributes(
            self.compression,
            self.timestamp_type,
            self.transactional,
            self.control,
            self.delete_horizon_ms.is_some(),
        );
        Ok(batch::encode_batch(
            base_offset,
            self.partition_leader_epoch,
            attributes,
            self.last_offset_delta.max(0),
            self.base_timestamp.unwrap_or(NO_TIMESTAMP),
            self.max_timestamp,
            self.producer,
            self.count,
            records,
        ))
    }
}

fn write_bytes(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => write_varint(out, -1),
        Some(b) => {
            write_varint(out, b.len() as i32);
            out.extend_from_slice(b);
        }
    }
}
