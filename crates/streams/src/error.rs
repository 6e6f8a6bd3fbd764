//! The crate's one error type: what can go wrong building a topology, configuring a
//! [`crate::KafkaStreams`], or processing (each processing failure names the record or
//! topic involved and keeps its cause).

use strom_client::ClientError;

use crate::serdes::SerdeError;

/// A Streams failure.
#[derive(Debug, thiserror::Error)]
pub enum StreamsError {
    /// A required property is missing.
    #[error("the property {0} is required")]
    MissingConfig(&'static str),
    /// A property has a value Streams does not accept.
    #[error("invalid value '{value}' for {key}: {reason}")]
    InvalidConfig {
        /// The property.
        key: String,
        /// Its value.
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// A client property the consumer or producer refused.
    #[error("the client refused the property {key}")]
    ClientConfig {
        /// The property.
        key: String,
        /// The client's refusal.
        #[source]
        source: ClientError,
    },
    /// The topology cannot run (Kafka's TopologyException).
    #[error("invalid topology: {0}")]
    InvalidTopology(String),
    /// An operation that the current state does not allow.
    #[error("{operation} is not allowed in state {state}")]
    IllegalState {
        /// What was asked.
        operation: &'static str,
        /// The state the client was in.
        state: crate::State,
    },
    /// `start()` outside a tokio runtime.
    #[error("start() must be called inside a tokio runtime")]
    NoRuntime,
    /// A consumed record's key or value could not be read, and the deserialization
    /// exception handler said to fail.
    #[error("deserializing the {part} of the record at {topic}-{partition} offset {offset}")]
    Deserialization {
        /// `key` or `value`.
        part: &'static str,
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// Offset.
        offset: i64,
        /// The serde's failure.
        #[source]
        source: SerdeError,
    },
    /// An output record's key or value could not be written.
    #[error("serializing the {part} of a record to {topic} (from {source_topic}-{partition} offset {offset})")]
    Serialization {
        /// `key` or `value`.
        part: &'static str,
        /// The output topic.
        topic: String,
        /// The input record's topic.
        source_topic: String,
        /// The input record's partition.
        partition: i32,
        /// The input record's offset.
        offset: i64,
        /// The serde's failure.
        #[source]
        source: SerdeError,
    },
    /// An output record could not be sent or was not acknowledged.
    #[error("producing to {topic}")]
    Produce {
        /// The output topic.
        topic: String,
        /// The producer's failure.
        #[source]
        source: ClientError,
    },
    /// The consumer failed (poll, commit, group membership).
    #[error("the consumer failed while it was {doing}")]
    Consumer {
        /// What it was doing.
        doing: &'static str,
        /// The consumer's failure.
        #[source]
        source: ClientError,
    },
    /// A state store failed.
    #[error("state store {store} failed")]
    Store {
        /// The store.
        store: String,
        /// The cause.
        #[source]
        source: crate::state::StoreError,
    },
    /// A store key or value could not be written or read.
    #[error("the serde of store {store} failed")]
    StoreSerde {
        /// The store.
        store: String,
        /// The serde's failure.
        #[source]
        source: SerdeError,
    },
    /// A store cannot be queried now (Kafka's InvalidStateStoreException).
    #[error("store {store} cannot be queried: {reason}")]
    StoreUnavailable {
        /// The store.
        store: String,
        /// Why.
        reason: String,
    },
    /// A source topic does not exist (Kafka's MissingSourceTopicException).
    #[error("source topic {0} is missing")]
    MissingSourceTopic(String),
    /// Topics that must have as many partitions do not (Kafka's co-partitioning check).
    #[error("topics not co-partitioned: {0}")]
    NotCopartitioned(String),
    /// Creating or describing the application's internal topics failed.
    #[error("setting up internal topic {topic}")]
    InternalTopic {
        /// The topic.
        topic: String,
        /// The admin client's failure.
        #[source]
        source: ClientError,
    },
    /// The processing task ended abnormally (a panic in user code).
    #[error("the stream thread died")]
    ThreadDied(#[source] tokio::task::JoinError),
}
