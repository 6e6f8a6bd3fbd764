//! Strom Connect: moving data between Kafka topics and other systems, as Kafka Connect
//! does, built on the native client only (never on broker internals), so it works against
//! Strom and against any Kafka-compatible cluster.
//!
//! This crate owns Connect's data model ([`data`]: schemas, structs and values, with
//! Kafka's type names and logical types) and the converters between it and record bytes
//! ([`converter`]: StringConverter, ByteArrayConverter, JsonConverter with Kafka's
//! schema-and-payload envelope), and config definitions with Kafka's validation messages
//! ([`config`], the shape of Connect's validate answer). The connector API, the workers (standalone and
//! distributed), the REST API and the built-in connectors are still to come.

pub mod config;
pub mod converter;
pub mod data;

/// What Connect refuses, typed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// A value that does not fit its schema, or bytes a converter cannot read (Kafka's
    /// DataException).
    #[error("{0}")]
    Data(String),
    /// A setting that is missing or invalid (Kafka's ConfigException).
    #[error("{0}")]
    Config(String),
}
