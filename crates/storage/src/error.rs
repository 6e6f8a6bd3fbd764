//! The storage crate's error type.

use std::path::PathBuf;

use strom_types::batch::BatchError;

/// Why a log operation failed. Each variant names what the broker maps to a Kafka error code.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A file operation failed.
    #[error("I/O error on {path}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A produced batch failed validation (Kafka: CORRUPT_MESSAGE or INVALID_RECORD).
    #[error("invalid record batch at index {index} of the request")]
    InvalidBatch {
        /// Which batch of the appended buffer, from 0.
        index: usize,
        /// Why.
        #[source]
        source: BatchError,
    },
    /// A batch larger than max.message.bytes (Kafka: MESSAGE_TOO_LARGE).
    #[error("record batch of {size} bytes exceeds max.message.bytes {limit}")]
    BatchTooLarge {
        /// Batch size.
        size: usize,
        /// The topic's max.message.bytes.
        limit: usize,
    },
    /// A policy refused a batch (Kafka: INVALID_RECORD), e.g. a null key on a compacted topic
    /// or a control batch from a client.
    #[error("record batch refused: {0}")]
    PolicyViolation(&'static str),
    /// Records without a key sent to a compacted topic (Kafka: INVALID_RECORD, with the
    /// records named as KIP-467's per-record errors).
    #[error("a compacted topic cannot accept records without a key ({} in the batch)", records.len())]
    NullKeyOnCompactedTopic {
        /// Indexes of the keyless records in their batch, from 0.
        records: Vec<i32>,
    },
    /// Record timestamps outside message.timestamp.before/after.max.ms (Kafka:
    /// INVALID_TIMESTAMP, with the records named as KIP-467's per-record errors).
    #[error("record timestamp {timestamp} is outside the accepted range around now ({now})")]
    InvalidTimestamp {
        /// The first offending timestamp.
        timestamp: i64,
        /// The broker's clock.
        now: i64,
        /// Indexes of the offending records in their batch, from 0.
        records: Vec<i32>,
    },
    /// Offsets of a replicated batch do not follow the log (replication bug or divergence).
    #[error("batch offset {offset} is below the log end offset {log_end}")]
    NonMonotonicOffset {
        /// First offset of the batch.
        offset: i64,
        /// The log end offset.
        log_end: i64,
    },
    /// A read or truncation outside the log's offsets (Kafka: OFFSET_OUT_OF_RANGE).
    #[error("offset {offset} is outside the log's range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        /// The requested offset.
        offset: i64,
        /// Log start offset.
        log_start: i64,
        /// Log end offset.
        log_end: i64,
    },
    /// A config value that does not parse or is out of range (Kafka: INVALID_CONFIG).
    #[error("invalid value '{value}' for config {key}: {reason}")]
    InvalidConfig {
        /// The config name.
        key: String,
        /// The value given.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// An idempotent producer's batch does not follow its last sequence
    /// (Kafka: OUT_OF_ORDER_SEQUENCE_NUMBER).
    #[error("producer {producer_id}: expected sequence {expected}, got {got}")]
    OutOfOrderSequence {
        /// The producer.
        producer_id: i64,
        /// The sequence the batch should have started with.
        expected: i32,
        /// Its first sequence.
        got: i32,
    },
    /// A batch from an older epoch of a producer (Kafka: INVALID_PRODUCER_EPOCH).
    #[error("producer {producer_id}: epoch {epoch} is older than the current epoch {current}")]
    InvalidProducerEpoch {
        /// The producer.
        producer_id: i64,
        /// The batch's epoch.
        epoch: i16,
        /// The newest epoch seen.
        current: i16,
    },
    /// A retried batch inside a multi-batch append (Kafka: DUPLICATE_SEQUENCE_NUMBER). A
    /// single retried batch is not an error: its first offsets are returned.
    #[error("producer {producer_id}: duplicate batch at sequence {sequence}")]
    DuplicateSequence {
        /// The producer.
        producer_id: i64,
        /// The batch's first sequence.
        sequence: i32,
    },
    /// A non-transactional batch from a producer with a transaction open in this
    /// partition, or a transactional one the producer's state does not allow
    /// (Kafka: INVALID_TXN_STATE).
    #[error("producer {producer_id}: {reason}")]
    InvalidTxnState {
        /// The producer.
        producer_id: i64,
        /// What is wrong.
        reason: &'static str,
    },
    /// A transaction marker from an older transaction coordinator than one already seen
    /// (Kafka: TRANSACTION_COORDINATOR_FENCED).
    #[error(
        "producer {producer_id}: marker from coordinator epoch {epoch}, already saw {current}"
    )]
    CoordinatorFenced {
        /// The producer.
        producer_id: i64,
        /// The marker's coordinator epoch.
        epoch: i32,
        /// The newest coordinator epoch seen for the producer.
        current: i32,
    },
    /// The log was closed or deleted.
    #[error("log {0} is closed")]
    Closed(String),
    /// A log directory or partition already exists or does not.
    #[error("{0}")]
    State(String),
}

/// A stored batch that no longer parses (found while the log reads its own data).
impl From<BatchError> for StorageError {
    fn from(source: BatchError) -> Self {
        StorageError::InvalidBatch { index: 0, source }
    }
}

/// Result alias for this crate.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Attaches the path to an `io::Error`.
pub(crate) trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
    /// Like `at`, building the path only on error (for hot paths).
    fn at_with(self, path: impl FnOnce() -> PathBuf) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| StorageError::Io {
            path: path.into(),
            source,
        })
    }

    fn at_with(self, path: impl FnOnce() -> PathBuf) -> Result<T> {
        self.map_err(|source| StorageError::Io {
            path: path(),
            source,
        })
    }
}
