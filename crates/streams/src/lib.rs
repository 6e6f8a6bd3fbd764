//! Strom Streams: stream processing with Kafka Streams' model, as a Rust library on the
//! native client only (it runs against any Kafka-compatible cluster).
//!
//! A [`StreamsBuilder`] makes typed [`KStream`]s from topics; operations (`filter`, `map`,
//! `split`, `to`, ...) add nodes named as Kafka names them, and `build()` gives a
//! [`Topology`], which [`Topology::describe`] prints as Kafka's `TopologyDescription`.
//! [`KafkaStreams`] runs it in the consumer group `application.id`, at least once or
//! exactly once (`processing.guarantee=exactly_once_v2`), with its state in stores backed
//! by changelog topics; the [`TopologyTestDriver`] runs it with no broker.
//!
//! ```no_run
//! use strom_streams::{Consumed, KafkaStreams, Produced, StreamsBuilder, StringSerde};
//! # async fn run() -> Result<(), strom_streams::StreamsError> {
//! let builder = StreamsBuilder::new();
//! builder
//!     .stream("in", Consumed::with(StringSerde, StringSerde))
//!     .filter(|_, v| !v.is_empty())
//!     .map_values(|v| v.to_uppercase())
//!     .to("out", Produced::with(StringSerde, StringSerde));
//! let mut streams = KafkaStreams::new(
//!     builder.build(),
//!     [("application.id", "upper"), ("bootstrap.servers", "localhost:9092")],
//! )?;
//! streams.start()?;
//! // ...
//! streams.close().await;
//! # Ok(()) }
//! ```
//!
//! Modules:
//! - [`kstream`]: the typed DSL ([`StreamsBuilder`], [`KStream`], [`BranchedKStream`],
//!   [`Consumed`], [`Produced`], [`Branched`]).
//! - [`kgrouped`], [`kwindowed`], [`windows`], [`ktable`], [`suppress`], [`materialized`]:
//!   grouping, aggregations (windowed or not), tables, and how their state is stored.
//! - [`joins`], [`global`]: stream-stream, stream-table, table-table and
//!   stream-globaltable joins.
//! - [`processor`]: the Processor API (processors, punctuations, stores).
//! - [`topology`]: the processor graph, its description, and its compiled form.
//! - [`state`], [`task`]: stores (memory, fjall), changelogs, restore and checkpoints.
//! - [`kafka_streams`]: the running instance, its states and its processing loops.
//! - [`query`]: interactive queries of stores; [`test_driver`]: the test driver.
//! - [`serdes`], [`config`], [`error`]: serdes, properties, the error type.
//!
//! Not built yet: standby replicas and a state-aware task assignor, more than one stream
//! thread, the foreign-key join, record caches, KIP-1071.

pub mod config;
pub mod error;
pub mod global;
mod internal_topics;
pub mod joins;
pub mod kafka_streams;
pub mod kgrouped;
pub mod kstream;
pub mod ktable;
pub mod kwindowed;
pub mod materialized;
pub mod processor;
pub mod query;
pub mod serdes;
pub mod state;
pub mod suppress;
pub mod task;
pub mod test_driver;
pub mod topology;
pub mod windows;

pub use config::{DeserializationHandler, ProcessingGuarantee, StreamsConfig};
pub use error::StreamsError;
pub use global::GlobalKTable;
pub use joins::{JoinWindows, Joined, StreamJoined};
pub use kafka_streams::{KafkaStreams, State};
pub use kgrouped::KGroupedStream;
pub use kstream::{Branched, BranchedKStream, Consumed, KStream, Produced, StreamsBuilder};
pub use ktable::KTable;
pub use kwindowed::{SessionWindowedKStream, TimeWindowedKStream};
pub use materialized::{Grouped, Materialized};
pub use processor::{
    KeyValueStore, Processor, ProcessorContext, Punctuation, PunctuationType, Record, StoreBuilder,
};
pub use query::{ReadOnlyKeyValueStore, ReadOnlySessionStore, ReadOnlyWindowStore};
pub use serdes::{
    BytesSerde, I32Serde, I64Serde, Json, Nullable, Serde, SerdeError, StringSerde, VoidSerde,
};
pub use suppress::{BufferConfig, StrictBufferConfig, Suppressed};
pub use task::TaskId;
pub use test_driver::{TestInputTopic, TestOutputTopic, TestRecord, TopologyTestDriver};
pub use topology::{
    NodeDescription, NodeKind, RecordContext, SubtopologyDescription, Topology, TopologyDescription,
};
pub use windows::{
    SessionWindowedSerde, SessionWindows, SlidingWindows, TimeWindowedSerde, TimeWindows, Window,
    Windowed,
};
