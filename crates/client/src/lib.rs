//! Strom's native Kafka client, for any Rust program: it speaks the Kafka wire protocol, so
//! it works against Strom and against Apache Kafka alike.
//!
//! - [`connection`]: one connection to a broker, with ApiVersions negotiation and pipelined
//!   requests matched to responses by correlation id.
//! - [`partitioner`]: Kafka's default partitioner, byte for byte (murmur2 of the key; sticky
//!   partitions for records without a key, KIP-480).
//! - [`admin`]: topics, topic configs, records and the cluster; [`group_admin`]: groups,
//!   committed offsets and partition offsets.
//! - [`cluster`]: brokers, topics and leaders from Metadata, and a connection per broker.
//! - [`producer`]: batching by batch.size and linger.ms, compression, acks, retries in
//!   order, buffer.memory back-pressure, delivery.timeout.ms.
//! - [`consumer`]: manual assignment or consumer groups, seeks by offset or time, long-poll
//!   fetches of any codec sent ahead of `poll`, commits (sync, async, automatic).
//! - [`group`]: group membership under the classic protocol or KIP-848, and committed
//!   offsets; [`assignor`]: the classic protocol's range, roundrobin and cooperative-sticky
//!   assignors.
//! - [`member`]: a member of a classic group of any protocol type (Connect's workers).
//! - [`acl_admin`]: ACLs (CreateAcls, DescribeAcls, DeleteAcls).
//! - [`quota_admin`]: client quotas (AlterClientQuotas, DescribeClientQuotas).
//! - [`user_admin`]: SCRAM users (AlterUserScramCredentials, DescribeUserScramCredentials).
//! - [`security`]: TLS and SASL (PLAIN, SCRAM) under Kafka's client property names.
//! - [`jaas`]: Kafka's JAAS configuration text (`sasl.jaas.config`).
//! - [`error`]: typed errors that name the Kafka error.

pub mod acl_admin;
pub mod admin;
pub mod assignor;
pub mod cluster;
pub mod connection;
pub mod consumer;
pub mod error;
pub mod group;
pub mod group_admin;
pub mod jaas;
pub mod member;
pub mod partitioner;
pub mod producer;
pub mod quota_admin;
pub mod security;
pub mod txn_admin;
pub mod user_admin;

pub use admin::{Admin, BrokerDescription, ClusterDescription, QuorumDescription, QuorumReplica};
pub use assignor::Assignor;
pub use connection::Connection;
pub use consumer::{Consumer, ConsumerConfig, ConsumerRecord, RebalanceListener, StartAt};
pub use error::{ClientError, Result};
pub use group::{GroupMetadata, GroupProtocol, TopicPartition};
pub use group_admin::{
    CommittedOffset, GroupDescription, GroupListing, ListedOffset, MemberDescription, OffsetSpec,
};
pub use member::{GroupMember, Joined, MemberSettings};
pub use partitioner::{murmur2, partition_for_key, StickyPartitioner};
pub use producer::{Partitioner, Producer, ProducerConfig, ProducerRecord, RecordMetadata};
pub use security::{Connector, SecurityConfig};
pub use txn_admin::{ProducerDescription, TransactionDescription, TransactionListing};
pub use user_admin::{ScramMechanism, UserCredentials};
