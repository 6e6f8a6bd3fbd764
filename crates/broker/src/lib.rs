//! Strom's broker: one node speaking the Kafka wire protocol.
//!
//! The request path reads top to bottom: [`server::run`] accepts connections; each
//! connection ([`server`]) reads size-prefixed frames in order; [`handlers::handle`] parses
//! the header, guards and decodes the body and dispatches to one file per API in
//! [`handlers`], which works on the [`Broker`] (partition logs plus the metadata image) and
//! encodes the response. Kafka error codes are chosen in [`errors`]. Each connection's
//! identity and SASL exchange live in [`auth`]; TLS settings in [`tls`]; what a principal
//! may do in [`authz`]; client quotas in [`quotas`] and connection limits in [`limits`].
//!
//! In the cluster: the broker registers with the active controller and heartbeats
//! (`lifecycle`), follows the metadata image into its logs and coordinator
//! (`partitions`), writes transaction markers and state for the transaction
//! coordinator (`txn`), and sends every metadata change to the controller through
//! `strom_metadata::MetadataNode`. Quorum RPCs that arrive on a broker listener (a
//! broker-only node is an observer of the metadata log) are handed to the metadata node.

pub mod auth;
pub mod authz;
pub mod broker;
pub mod config;
pub mod dynamic_config;
pub mod embedded;
pub mod errors;
pub mod fetch_codec;
pub mod handlers;
pub mod health;
mod lifecycle;
pub mod limits;
pub mod metrics;
mod partitions;
pub mod quotas;
mod replica_link;
pub mod server;
pub mod tls;
mod txn;

pub use broker::Broker;
pub use config::BrokerConfig;
