//! Strom Connect: moving data between Kafka topics and other systems, as Kafka Connect
//! does, built on the native client only (never on broker internals), so it works against
//! Strom and against any Kafka-compatible cluster.
//!
//! - [`api`]: the connector API (connectors, source and sink tasks, plugins).
//! - [`data`], [`record`]: Connect's typed data (schemas, structs, logical types) and the
//!   records tasks exchange with the framework.
//! - [`converter`]: StringConverter, ByteArrayConverter and JsonConverter (Kafka's
//!   schema-and-payload envelope), between typed values and record bytes.
//! - [`config`]: config definitions with Kafka's validation messages.
//! - [`transforms`]: single message transforms and predicates, by Kafka's class names.
//! - [`errors`]: error tolerance, retries, error logs and the dead-letter queue.
//! - [`worker`]: runs tasks (poll, convert, produce, store offsets; consume, convert, put,
//!   commit); [`offsets`]: where source offsets are kept.
//! - [`herder`]: what runs, and the answers of [`rest`], Kafka Connect's REST API.
//! - [`standalone`]: a single worker with its offsets in a file.
//! - [`distributed`]: workers sharing connectors and tasks through a group, with their
//!   state in three compacted topics.
//! - [`file`]: the FileStreamSource and FileStreamSink connectors.
//! - [`postgres`]: the PostgreSQL connectors: the sink (Confluent's JDBC sink settings), the
//!   query source (the JDBC source's) and the change-data-capture source (pgoutput).

pub mod api;
pub mod config;
pub mod converter;
pub mod data;
pub mod distributed;
pub mod errors;
pub mod file;
pub mod herder;
pub mod offsets;
pub mod postgres;
pub mod record;
pub mod rest;
pub mod standalone;
pub mod tools;
pub mod transforms;
pub mod worker;

/// What Connect refuses or fails at, typed (each is the Java exception Kafka would throw;
/// [`errors::exception_class`] names it).
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// A value that does not fit its schema, or bytes a converter cannot read (Kafka's
    /// DataException).
    #[error("{0}")]
    Data(String),
    /// A setting that is missing or invalid (Kafka's ConfigException).
    #[error("{0}")]
    Config(String),
    /// A failure that may pass if the operation is tried again (RetriableException).
    #[error("{0}")]
    Retriable(String),
    /// A connector or task failed (ConnectException).
    #[error("{0}")]
    Connect(String),
    /// The Kafka cluster refused or could not be reached.
    #[error(transparent)]
    Kafka(#[from] strom_client::ClientError),
}
