//! Per-log configuration under Kafka's topic-level config names (`segment.bytes`,
//! `retention.ms`, `cleanup.policy`…), with Kafka's defaults and validation.
//!
//! The broker maps its `log.*` server properties onto these names and layers per-topic
//! overrides on top; this module only knows the topic-level names.

use strom_types::batch::TimestampType;
use strom_types::compression::Compression;

use crate::error::{Result, StorageError};

/// What happens to old data: `cleanup.policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CleanupPolicy {
    /// Old segments are deleted by retention.ms / retention.bytes.
    pub delete: bool,
    /// The log cleaner keeps the latest record per key.
    pub compact: bool,
}

impl CleanupPolicy {
    /// `delete`, Kafka's default.
    pub const DELETE: CleanupPolicy = CleanupPolicy {
        delete: true,
        compact: false,
    };
    /// `compact`.
    pub const COMPACT: CleanupPolicy = CleanupPolicy {
        delete: false,
        compact: true,
    };

    /// Kafka's spelling: `delete`, `compact` or `compact,delete`.
    pub fn name(&self) -> String {
        match (self.compact, self.delete) {
            (true, true) => "compact,delete".into(),
            (true, false) => "compact".into(),
            (false, true) => "delete".into(),
            (false, false) => "".into(),
        }
    }

    fn parse(value: &str) -> Option<CleanupPolicy> {
        let mut policy = CleanupPolicy::default();
        for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match item {
                "delete" => policy.delete = true,
                "compact" => policy.compact = true,
                _ => return None,
            }
        }
        Some(policy)
    }
}

/// Configuration of one partition's log. Field docs name the Kafka config and its default.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// `segment.bytes` (1 GiB): roll the active segment past this size.
    pub segment_bytes: u64,
    /// `segment.ms` (7 days): roll the active segment this long after its first batch.
    pub segment_ms: i64,
    /// `segment.jitter.ms` (0): random reduction of segment.ms, to spread rolls.
    pub segment_jitter_ms: i64,
    /// `segment.index.bytes` (10 MiB): size bound of a segment's offset index.
    pub segment_index_bytes: u64,
    /// `index.interval.bytes` (4096): bytes between index entries.
    pub index_interval_bytes: u64,
    /// `flush.messages` (never): fsync after this many records.
    pub flush_messages: i64,
    /// `flush.ms` (never): fsync when the oldest unflushed data is this old.
    pub flush_ms: i64,
    /// `retention.ms` (7 days; -1 = forever): delete segments whose newest record is older.
    pub retention_ms: i64,
    /// `retention.bytes` (-1 = unlimited): delete oldest segments while the log is larger.
    pub retention_bytes: i64,
    /// `cleanup.policy` (delete).
    pub cleanup_policy: CleanupPolicy,
    /// `delete.retention.ms` (1 day): how long tombstones stay after compaction.
    pub delete_retention_ms: i64,
    /// `min.cleanable.dirty.ratio` (0.5): compact once this share of the log is dirty.
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms` (0): records younger than this are not compacted.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms` (forever): compact records older than this regardless of ratio.
    pub max_compaction_lag_ms: i64,
    /// `max.message.bytes` (1048588): largest batch accepted.
    pub max_message_bytes: usize,
    /// `message.timestamp.type` (CreateTime).
    pub message_timestamp_type: TimestampType,
    /// `message.timestamp.before.max.ms` (forever): how far in the past a CreateTime may be.
    pub message_timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms` (forever): how far in the future a CreateTime may be.
    pub message_timestamp_after_max_ms: i64,
    /// `file.delete.delay.ms` (60000): delay before a `.deleted` file is removed.
    pub file_delete_delay_ms: i64,
    /// `compression.type` (`producer`, as `None`): the codec batches are stored with;
    /// batches that arrive with another one are recompressed on append.
    pub compression_type: Option<Compression>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            segment_jitter_ms: 0,
            segment_index_bytes: 10 * 1024 * 1024,
            index_interval_bytes: 4096,
            flush_messages: i64::MAX,
            flush_ms: i64::MAX,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            cleanup_policy: CleanupPolicy::DELETE,
            delete_retention_ms: 24 * 3600 * 1000,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            max_message_bytes: 1024 * 1024 + 12,
            message_timestamp_type: TimestampType::CreateTime,
            message_timestamp_before_max_ms: i64::MAX,
            message_timestamp_after_max_ms: i64::MAX,
            file_delete_delay_ms: 60_000,
            compression_type: None,
        }
    }
}

/// Every config name [`LogConfig::set`] understands.
pub const LOG_CONFIG_NAMES: &[&str] = &[
    "segment.bytes",
    "segment.ms",
    "segment.jitter.ms",
    "segment.index.bytes",
    "index.interval.bytes",
    "flush.messages",
    "flush.ms",
    "retention.ms",
    "retention.bytes",
    "cleanup.policy",
    "delete.retention.ms",
    "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms",
    "max.compaction.lag.ms",
    "max.message.bytes",
    "message.timestamp.type",
    "message.timestamp.before.max.ms",
    "message.timestamp.after.max.ms",
    "file.delete.delay.ms",
    "compression.type",
];

impl LogConfig {
    /// Sets one config by its Kafka name. `Ok(false)` when the name is not a log config (the
    /// caller may own it); `Err(InvalidConfig)` when the value does not parse or is out of range.
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool> {
        let invalid = |reason: &str| StorageError::InvalidConfig {
            key: key.to_string(),
            value: value.to_string(),
            reason: reason.to_string(),
        };
        let long = |min: i64| -> Result<i64> {
            let v: i64 = value
                .trim()
                .parse()
                .map_err(|_| invalid("not a whole number"))?;
            if v < min {
                return Err(invalid(&format!("must be at least {min}")));
            }
            Ok(v)
        };
        match key {
            "segment.bytes" => self.segment_bytes = long(14)?.min(i32::MAX as i64) as u64,
            "segment.ms" => self.segment_ms = long(1)?,
            "segment.jitter.ms" => self.segment_jitter_ms = long(0)?,
            "segment.index.bytes" => {
                self.segment_index_bytes = long(4)?.min(i32::MAX as i64) as u64
            }
            "index.interval.bytes" => self.index_interval_bytes = long(0)? as u64,
            "flush.messages" => self.flush_messages = long(1)?,
            "flush.ms" => self.flush_ms = long(0)?,
            "retention.ms" => self.retention_ms = long(-1)?,
            "retention.bytes" => self.retention_bytes = long(-1)?,
            "cleanup.policy" => {
                self.cleanup_policy = CleanupPolicy::parse(value)
                    .ok_or_else(|| invalid("expected a list of 'delete' and 'compact'"))?
            }
            "delete.retention.ms" => self.delete_retention_ms = long(0)?,
            "min.cleanable.dirty.ratio" => {
                let v: f64 = value.trim().parse().map_err(|_| invalid("not a number"))?;
                if !(0.0..=1.0).contains(&v) {
                    return Err(invalid("must be between 0 and 1"));
                }
                self.min_cleanable_dirty_ratio = v;
            }
            "min.compaction.lag.ms" => self.min_compaction_lag_ms = long(0)?,
            "max.compaction.lag.ms" => self.max_compaction_lag_ms = long(1)?,
            "max.message.bytes" => self.max_message_bytes = long(0)?.min(i32::MAX as i64) as usize,
            "message.timestamp.type" => {
                self.message_timestamp_type =
                    value.trim().parse().map_err(|e: String| invalid(&e))?
            }
            "message.timestamp.before.max.ms" => self.message_timestamp_before_max_ms = long(0)?,
            "message.timestamp.after.max.ms" => self.message_timestamp_after_max_ms = long(0)?,
            "file.delete.delay.ms" => self.file_delete_delay_ms = long(0)?,
            "compression.type" => {
                // Kafka's names: `producer`, `uncompressed` and the four codecs.
                self.compression_type = match value.trim() {
                    "producer" => None,
                    "uncompressed" => Some(Compression::None),
                    "none" => {
                        return Err(invalid(
                            "expected producer, uncompressed, gzip, snappy, lz4 or zstd",
                        ))
                    }
                    other => Some(other.parse().map_err(|_| {
                        invalid("expected producer, uncompressed, gzip, snappy, lz4 or zstd")
                    })?),
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// A config from Kafka name/value pairs over the defaults; unknown names are an error.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self> {
        let mut config = LogConfig::default();
        for (k, v) in pairs {
            if !config.set(k, v)? {
                return Err(StorageError::InvalidConfig {
                    key: k.to_string(),
                    value: v.to_string(),
                    reason: "unknown log config".into(),
                });
            }
        }
        Ok(config)
    }

    /// The current value of every config, by Kafka name, as Kafka prints it.
    pub fn entries(&self) -> Vec<(&'static str, String)> {
        vec![
            ("segment.bytes", self.segment_bytes.to_string()),
            ("segment.ms", self.segment_ms.to_string()),
            ("segment.jitter.ms", self.segment_jitter_ms.to_string()),
            ("segment.index.bytes", self.segment_index_bytes.to_string()),
            (
                "index.interval.bytes",
                self.index_interval_bytes.to_string(),
            ),
            ("flush.messages", self.flush_messages.to_string()),
            ("flush.ms", self.flush_ms.to_string()),
            ("retention.ms", self.retention_ms.to_string()),
            ("retention.bytes", self.retention_bytes.to_string()),
            ("cleanup.policy", self.cleanup_policy.name()),
            ("delete.retention.ms", self.delete_retention_ms.to_string()),
            (
                "min.cleanable.dirty.ratio",
                self.min_cleanable_dirty_ratio.to_string(),
            ),
            (
                "min.compaction.lag.ms",
                self.min_compaction_lag_ms.to_string(),
            ),
            (
                "max.compaction.lag.ms",
                self.max_compaction_lag_ms.to_string(),
            ),
            ("max.message.bytes", self.max_message_bytes.to_string()),
            (
                "message.timestamp.type",
                self.message_timestamp_type.name().to_string(),
            ),
            (
                "message.timestamp.before.max.ms",
                self.message_timestamp_before_max_ms.to_string(),
            ),
            (
                "message.timestamp.after.max.ms",
                self.message_timestamp_after_max_ms.to_string(),
            ),
            (
                "file.delete.delay.ms",
                self.file_delete_delay_ms.to_string(),
            ),
            (
                "compression.type",
                match self.compression_type {
                    None => "producer".to_string(),
                    Some(Compression::None) => "uncompressed".to_string(),
                    Some(c) => c.name().to_string(),
                },
            ),
        ]
    }

    /// Entries an offset index may hold before the segment must roll.
    pub(crate) fn max_index_entries(&self) -> usize {
        (self.segment_index_bytes / 8).max(1) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_kafka() {
        let c = LogConfig::default();
        assert_eq!(c.segment_bytes, 1_073_741_824);
        assert_eq!(c.max_message_bytes, 1_048_588);
        assert_eq!(c.retention_ms, 604_800_000);
        assert_eq!(c.cleanup_policy.name(), "delete");
    }

    #[test]
    fn set_parses_and_validates() {
        let mut c = LogConfig::default();
        assert!(c.set("cleanup.policy", "compact,delete").unwrap());
        assert_eq!(c.cleanup_policy.name(), "compact,delete");
        assert!(c.set("retention.ms", "-1").unwrap());
        assert!(c.set("compression.type", "uncompressed").unwrap());
        assert_eq!(c.compression_type, Some(Compression::None));
        assert!(!c.set("min.insync.replicas", "2").unwrap());
        for (k, v) in [
            ("segment.bytes", "abc"),
            ("segment.bytes", "10"),
            ("cleanup.policy", "shred"),
            ("min.cleanable.dirty.ratio", "1.5"),
            ("message.timestamp.type", "Now"),
            ("retention.ms", "-2"),
            ("compression.type", "none"),
            ("compression.type", "brotli"),
        ] {
            let err = c.set(k, v).unwrap_err();
            assert!(err.to_string().contains(k), "{err}");
        }
        let entries = c.entries();
        assert_eq!(entries.len(), LOG_CONFIG_NAMES.len());
        let mut d = LogConfig::default();
        for (k, v) in &entries {
            assert!(d.set(k, v).unwrap(), "{k}");
        }
        assert_eq!(c, d);
    }
}
