//! The records connectors exchange with the framework, as Kafka Connect's `ConnectRecord`,
//! `SourceRecord` and `SinkRecord`: typed keys and values with their schemas, a topic and
//! partition, a timestamp and headers; a source record also carries where it came from
//! (its source partition and offset), a sink record where it was read (its Kafka offset).

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Map as JsonMap, Value as Json};

use crate::data::{Schema, Value};

/// A source partition or a source offset: a JSON object, as Connect's `Map<String, ?>`
/// (what the offsets topic and `GET /connectors/{name}/offsets` show).
pub type SourceMap = JsonMap<String, Json>;

/// What every Connect record has, and what transformations see and change.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The topic.
    pub topic: String,
    /// The partition, or `None` for the producer's partitioner.
    pub partition: Option<i32>,
    /// The key's schema (`None`: schemaless).
    pub key_schema: Option<Arc<Schema>>,
    /// The key.
    pub key: Value,
    /// The value's schema (`None`: schemaless).
    pub value_schema: Option<Arc<Schema>>,
    /// The value ([`Value::Null`] in a tombstone).
    pub value: Value,
    /// The timestamp (ms), or `None` for the producer's clock.
    pub timestamp: Option<i64>,
    /// Headers, in order, as the bytes on the wire (Strom passes header values through
    /// untouched rather than converting them).
    pub headers: Vec<(String, Option<Bytes>)>,
}

impl Record {
    /// A record for `topic` with a schemaless null key and value, no timestamp and no
    /// headers (to be filled in).
    pub fn new(topic: impl Into<String>) -> Record {
        Record {
            topic: topic.into(),
            partition: None,
            key_schema: None,
            key: Value::Null,
            value_schema: None,
            value: Value::Null,
            timestamp: None,
            headers: Vec::new(),
        }
    }

    /// The same record with this value and schema.
    pub fn with_value(mut self, schema: Option<Arc<Schema>>, value: Value) -> Record {
        self.value_schema = schema;
        self.value = value;
        self
    }

    /// The same record with this key and schema.
    pub fn with_key(mut self, schema: Option<Arc<Schema>>, key: Value) -> Record {
        self.key_schema = schema;
        self.key = key;
        self
    }

    /// Whether the value is null (a tombstone).
    pub fn is_tombstone(&self) -> bool {
        self.value == Value::Null
    }
}

/// A record a source task produced, with its position in the source.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRecord {
    /// The record.
    pub record: Record,
    /// Which part of the source it comes from (a file, a table).
    pub source_partition: SourceMap,
    /// Where in that part it is; the framework stores the latest delivered one and gives
    /// it back to the task after a restart.
    pub source_offset: SourceMap,
}

/// A record read from Kafka for a sink task.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkRecord {
    /// The record (its partition is always set).
    pub record: Record,
    /// Its offset in the partition.
    pub offset: i64,
}

impl SinkRecord {
    /// The topic and partition it was read from.
    pub fn topic_partition(&self) -> (String, i32) {
        (
            self.record.topic.clone(),
            self.record.partition.unwrap_or(0),
        )
    }
}
