//! Strom's shared vocabulary, with no I/O.
//!
//! - [`Offset`], [`LeaderEpoch`], [`NodeId`], [`TopicPartition`]: newtypes so that an offset is
//!   never confused with a position, a count or an epoch.
//! - [`batch`]: Kafka's v2 record batch header: parse, validate (lengths, CRC32C), and the few
//!   in-place rewrites a broker makes (base offset, leader epoch, LogAppendTime).
//! - [`record`]: the records inside a batch: a zero-copy iterator and a batch builder.
//! - [`compression`]: the four codecs Kafka batches use (gzip, snappy, lz4, zstd).
//! - [`control`]: transaction markers (COMMIT and ABORT control batches).
//! - [`acl`]: access control lists: bindings, filters, and Kafka's codes for their enums.
//! - [`quota`]: client quotas: their entities and keys.
//! - [`properties`]: Java properties text, as Kafka's config files are written.
//! - [`scram`]: the SCRAM mechanisms' names and wire codes.
//! - [`varint`]: Kafka's zig-zag varints.

pub mod acl;
pub mod batch;
pub mod compression;
pub mod control;
pub mod properties;
pub mod quota;
pub mod record;
pub mod scram;
pub mod varint;

mod ids;

pub use ids::{LeaderEpoch, NodeId, Offset, TopicPartition};
pub use scram::ScramMechanism;
