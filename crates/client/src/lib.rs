//! Strom's native Kafka client, for any Rust program: it speaks the Kafka wire protocol, so
//! it works against Strom and against Apache Kafka alike.
//!
//! - [`connection`]: one connection to a broker, with ApiVersions negotiation and pipelined
//!   requests matched to responses by correlation id.
//! - [`partitioner`]: Kafka's default partitioner, byte for byte (murmur2 of the key; sticky
//!   partitions for records without a key, KIP-480).
//! - [`error`]: typed errors that name the Kafka error.
//!
//! The producer, consumer and admin clients are built on these (issue 5, in progress).

pub mod connection;
pub mod error;
pub mod partitioner;

pub use connection::Connection;
pub use error::{ClientError, Result};
pub use partitioner::{murmur2, partition_for_key, StickyPartitioner};
