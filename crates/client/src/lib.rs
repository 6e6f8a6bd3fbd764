//! Strom's native Kafka client, for any Rust program: it speaks the Kafka wire protocol, so
//! it works against Strom and against Apache Kafka alike.
//!
//! - [`connection`]: one connection to a broker, with ApiVersions negotiation and pipelined
//!   requests matched to responses by correlation id.
//! - [`partitioner`]: Kafka's default partitioner, byte for byte (murmur2 of the key; sticky
//!   partitions for records without a key, KIP-480).
//! - [`cluster`]: brokers, topics and leaders from Metadata, and a connection per broker.
//! - [`producer`]: batching by batch.size and linger.ms, compression, acks, retries in
//!   order, buffer.memory back-pressure, delivery.timeout.ms.
//! - [`consumer`]: manual assignment, seeks by offset or time, long-poll fetches of any
//!   codec.
//! - [`error`]: typed errors that name the Kafka error.
//!
//! Consumer groups, the admin client and the CLI come next (issue 5, in progress).

pub mod cluster;
pub mod connection;
pub mod consumer;
pub mod error;
pub mod partitioner;
pub mod producer;

pub use connection::Connection;
pub use consumer::{Consumer, ConsumerConfig, ConsumerRecord, StartAt};
pub use error::{ClientError, Result};
pub use partitioner::{murmur2, partition_for_key, StickyPartitioner};
pub use producer::{Producer, ProducerConfig, ProducerRecord, RecordMetadata};
